//! `SipRouter`: receives everything the SIP endpoint delivers and sends it where it
//! belongs — REGISTER to the `Extension` of its address-of-record, a new INVITE to a new
//! `Call` (after the caller's credentials are checked), in-dialog requests and responses to
//! the `Leg` that owns the dialog or transaction. It also holds the directory (numbers to
//! extensions, groups, trunks, access numbers) that calls resolve their callee against.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use actix::prelude::*;
use entities::Target;

use crate::call::{Call, CallSetup, Caller};
use crate::conference::Conference;
use crate::extension::{AuthVerdict, AuthorizeInvite, Extension, HandleRegister};
use crate::leg::SipEvent;
use crate::playout::{PlayInstead, Playout};
use crate::queue::Queue;
use crate::services::Services;
use crate::sip::dialog::DialogKey;
use crate::sip::endpoint::Inbound;
use crate::sip::message::{new_tag, Method, Request, Response, Transport};
use crate::sip::transaction::TransactionKey;

/// Methods the switch handles outside a dialog.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER";
/// Extensions (`Require` option tags) the switch supports: none yet.
const SUPPORTED_EXTENSIONS: &[&str] = &[];

/// A trunk as routing sees it.
#[derive(Debug, Clone)]
pub struct TrunkRoute {
    pub name: String,
    /// Where calls to the trunk go; calls from here are trunk calls.
    pub host: Option<SocketAddr>,
    pub is_default: bool,
    /// Calls from this trunk may leave through a trunk (off: no toll fraud).
    pub allow_transit: bool,
}

/// The numbering plan, loaded from the database at start.
#[derive(Default)]
pub struct Directory {
    pub extensions: HashMap<String, Addr<Extension>>,
    /// Group number → its queue.
    pub queues: HashMap<String, Addr<Queue>>,
    /// IVR menus by id.
    pub ivrs: HashMap<i32, std::sync::Arc<crate::ivr::IvrDefinition>>,
    pub trunks: Vec<TrunkRoute>,
    pub access_numbers: HashMap<String, Target>,
    /// Meet-me rooms by number.
    pub conferences: HashMap<String, Addr<Conference>>,
    /// Where registered gateways send from: source address → trunk name.
    pub gateway_sources: HashMap<SocketAddr, String>,
}

/// What a callee number resolves to.
#[derive(Debug, Clone)]
pub enum Route {
    Extension {
        number: String,
        ext: Addr<Extension>,
    },
    /// A group: the caller waits in its queue for an agent.
    Group {
        number: String,
        queue: Addr<Queue>,
    },
    Trunk {
        name: String,
        dest: SocketAddr,
    },
    /// Out through a gateway that registers to us (a trunk with a password, no host).
    Gateway {
        name: String,
        gateway: Addr<Extension>,
    },
    /// An IVR menu: the switch answers and runs it.
    Ivr {
        id: i32,
        definition: std::sync::Arc<crate::ivr::IvrDefinition>,
    },
    /// A meet-me room: the switch answers and the caller joins the room.
    Conference {
        number: String,
        room: Addr<Conference>,
    },
    /// The call cannot be placed: answer the caller with this status.
    Refuse {
        status: u16,
        reason: &'static str,
    },
}

pub struct SipRouter {
    services: Services,
    db: sea_orm::DatabaseConnection,
    directory: Directory,
    // foldhash: looked up for every SIP message.
    dialogs: foldhash::HashMap<DialogKey, Recipient<SipEvent>>,
    transactions: foldhash::HashMap<TransactionKey, Recipient<SipEvent>>,
    calls: foldhash::HashMap<String, Addr<Call>>,
    /// Playback calls to extensions (interface 34), by extension number, with Call-ID.
    playouts: HashMap<String, (Addr<Playout>, String)>,
    /// Shutdown waiting for the last call to end.
    drained: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl SipRouter {
    pub fn new(directory: Directory, services: Services, db: sea_orm::DatabaseConnection) -> Self {
        Self {
            services,
            db,
            directory,
            dialogs: Default::default(),
            transactions: Default::default(),
            playouts: HashMap::new(),
            calls: Default::default(),
            drained: Vec::new(),
        }
    }

    fn reply(&self, key: &TransactionKey, req: &Request, status: u16, reason: &str) {
        let services = &self.services;
        let mut resp = Response::for_request(req, status, reason);
        resp.set_to_tag(&new_tag());
        if matches!(status, 405 | 501) || req.method == Method::Options {
            resp.add_header("Allow", ALLOW);
        }
        resp.set_header("Server", services.settings.user_agent.clone());
        services.endpoint.respond(key, resp);
    }

    fn trunk_at(&self, src: SocketAddr) -> Option<&TrunkRoute> {
        let registered = self.directory.gateway_sources.get(&src);
        self.directory
            .trunks
            .iter()
            .find(|t| t.host == Some(src) || registered == Some(&t.name))
    }

    fn on_request(
        &mut self,
        ctx: &mut Context<Self>,
        key: TransactionKey,
        request: Request,
        src: SocketAddr,
        transport: Transport,
    ) {
        // Inside a dialog: the leg that owns it, or 481.
        if request
            .to()
            .and_then(|t| t.tag().map(str::to_string))
            .is_some()
        {
            match DialogKey::of_request(&request).and_then(|k| self.dialogs.get(&k)) {
                Some(leg) => leg.do_send(SipEvent(Inbound::Request {
                    key,
                    request,
                    src,
                    transport,
                })),
                None => self.reply(&key, &request, 481, "Call/Transaction Does Not Exist"),
            }
            return;
        }
        if !request.uri.is_sip() {
            return self.reply(&key, &request, 416, "Unsupported URI Scheme");
        }
        let unsupported: Vec<String> = request
            .headers
            .get_all("Require")
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty() && !SUPPORTED_EXTENSIONS.contains(&t.as_str()))
            .collect();
        if !unsupported.is_empty() && request.method != Method::Cancel {
            let services = &self.services;
            let mut resp = Response::for_request(&request, 420, "Bad Extension");
            resp.set_to_tag(&new_tag());
            resp.set_header("Unsupported", unsupported.join(", "));
            services.endpoint.respond(&key, resp);
            return;
        }
        match request.method {
            Method::Register => self.on_register(key, request, src, transport),
            Method::Invite => self.on_invite(ctx, key, request, src, transport),
            Method::Options => self.reply(&key, &request, 200, "OK"),
            Method::Bye | Method::Info | Method::Update | Method::Prack => {
                self.reply(&key, &request, 481, "Call/Transaction Does Not Exist")
            }
            Method::Unknown(_) => self.reply(&key, &request, 501, "Not Implemented"),
            _ => self.reply(&key, &request, 405, "Method Not Allowed"),
        }
    }

    fn on_register(
        &mut self,
        key: TransactionKey,
        request: Request,
        src: SocketAddr,
        transport: Transport,
    ) {
        let Some(to) = request.to() else {
            return self.reply(&key, &request, 400, "Bad Request - Missing To");
        };
        if !to.uri.is_sip() {
            return self.reply(&key, &request, 400, "Bad Request - To is not a SIP AOR");
        }
        match self
            .directory
            .extensions
            .get(to.uri.user.as_deref().unwrap_or_default())
        {
            Some(ext) => ext.do_send(HandleRegister {
                key,
                request,
                src,
                transport,
            }),
            None => self.reply(&key, &request, 404, "Not Found"),
        }
    }

    fn on_invite(
        &mut self,
        ctx: &mut Context<Self>,
        key: TransactionKey,
        request: Request,
        src: SocketAddr,
        transport: Transport,
    ) {
        if !request.body.is_empty()
            && !request
                .content_type()
                .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("application/sdp"))
        {
            let services = &self.services;
            let mut resp = Response::for_request(&request, 415, "Unsupported Media Type");
            resp.set_to_tag(&new_tag());
            resp.set_header("Accept", "application/sdp");
            services.endpoint.respond(&key, resp);
            return;
        }
        if request.max_forwards() == Some(0) {
            return self.reply(&key, &request, 483, "Too Many Hops");
        }
        let from_user = request
            .from()
            .and_then(|f| f.uri.user.as_deref().map(String::from))
            .unwrap_or_default();
        if let Some(trunk) = self.trunk_at(src) {
            let caller = Caller::Trunk {
                name: trunk.name.clone(),
                number: from_user,
                allow_transit: trunk.allow_transit,
            };
            self.start_call(key, request, src, transport, caller);
            return;
        }
        let Some(ext) = self.directory.extensions.get(&from_user).cloned() else {
            return self.reply(&key, &request, 403, "Forbidden");
        };
        ext.send(AuthorizeInvite::of(&request))
            .into_actor(self)
            .map(move |verdict, act, _| match verdict {
                Ok(AuthVerdict::Accept) => {
                    let caller = Caller::Extension {
                        number: from_user,
                        ext,
                    };
                    act.start_call(key, request, src, transport, caller);
                }
                Ok(AuthVerdict::Challenge { stale }) => {
                    let services = &act.services;
                    let mut resp =
                        Response::for_request(&request, 407, "Proxy Authentication Required");
                    resp.set_to_tag(&new_tag());
                    resp.set_header("Proxy-Authenticate", services.digest.challenge(stale));
                    services.endpoint.respond(&key, resp);
                }
                Ok(AuthVerdict::Forbidden) => act.reply(&key, &request, 403, "Forbidden"),
                Err(_) => act.reply(&key, &request, 500, "Server Internal Error"),
            })
            .spawn(ctx);
    }

    fn start_call(
        &mut self,
        key: TransactionKey,
        request: Request,
        src: SocketAddr,
        transport: Transport,
        caller: Caller,
    ) {
        let services = self.services.clone();
        let call_id = request.call_id().unwrap_or_default().to_string();
        // A second live call with the Call-ID of one still up would be ambiguous (a loop).
        if self.calls.get(&call_id).is_some_and(|old| old.connected()) {
            return self.reply(&key, &request, 482, "Loop Detected");
        }
        let setup = CallSetup {
            invite: request,
            key,
            src,
            transport,
            caller,
        };
        let call = Call::new(setup, services).start();
        self.calls.insert(call_id, call);
    }

    /// The route for `number` dialled by `caller`.
    fn resolve(&self, number: &str, from_trunk: bool, allow_transit: bool) -> Route {
        if let Some(ext) = self.directory.extensions.get(number) {
            return Route::Extension {
                number: number.to_string(),
                ext: ext.clone(),
            };
        }
        if let Some(queue) = self.directory.queues.get(number) {
            return Route::Group {
                number: number.to_string(),
                queue: queue.clone(),
            };
        }
        if let Some(target) = self.directory.access_numbers.get(number) {
            return match target {
                Target::Ext(n) | Target::Group(n) | Target::Conference(n) => {
                    self.resolve(&n.clone(), false, false)
                }
                Target::Ivr(id) => match self.directory.ivrs.get(id) {
                    Some(definition) => Route::Ivr {
                        id: *id,
                        definition: definition.clone(),
                    },
                    None => Route::Refuse {
                        status: 503,
                        reason: "Service Unavailable",
                    },
                },
            };
        }
        if let Some(room) = self.directory.conferences.get(number) {
            return Route::Conference {
                number: number.to_string(),
                room: room.clone(),
            };
        }
        if from_trunk && !allow_transit {
            return Route::Refuse {
                status: 403,
                reason: "Forbidden",
            };
        }
        if !number.is_empty()
            && number
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'+' || b == b'*' || b == b'#')
        {
            if let Some(trunk) = self
                .directory
                .trunks
                .iter()
                .find(|t| t.is_default && t.host.is_some())
            {
                if let Some(dest) = trunk.host {
                    return Route::Trunk {
                        name: trunk.name.clone(),
                        dest,
                    };
                }
            }
        }
        Route::Refuse {
            status: 404,
            reason: "Not Found",
        }
    }
}

impl Actor for SipRouter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Every SIP event passes through here: a deep mailbox absorbs bursts.
        ctx.set_mailbox_capacity(65_536);
        // Lists changed in the database behind the API's back are picked up eventually.
        ctx.run_interval(crate::routing_lists::REFRESH_INTERVAL, |act, ctx| {
            let db = act.db.clone();
            let lists = act.services.lists.clone();
            ctx.spawn(
                async move {
                    if let Err(e) = lists.reload(&db).await {
                        tracing::warn!("routing lists refresh failed (previous copy kept): {e}");
                    }
                }
                .into_actor(act),
            );
        });
    }
}

/// Something the SIP endpoint delivered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SipInbound(pub Inbound);

impl Handler<SipInbound> for SipRouter {
    type Result = ();
    fn handle(&mut self, msg: SipInbound, ctx: &mut Self::Context) {
        self.services.endpoint.taken();
        match msg.0 {
            Inbound::Request {
                key,
                request,
                src,
                transport,
            } => self.on_request(ctx, key, request, src, transport),
            Inbound::Ack { request, src } => {
                if let Some(leg) =
                    DialogKey::of_request(&request).and_then(|k| self.dialogs.get(&k))
                {
                    leg.do_send(SipEvent(Inbound::Ack { request, src }));
                }
            }
            Inbound::Cancel { invite, request } => {
                if let Some(leg) = self.transactions.get(&invite) {
                    leg.do_send(SipEvent(Inbound::Cancel { invite, request }));
                }
            }
            Inbound::Response { key, response } => {
                let owner = self.transactions.get(&key).or_else(|| {
                    DialogKey::of_response(&response).and_then(|k| self.dialogs.get(&k))
                });
                if let Some(leg) = owner {
                    leg.do_send(SipEvent(Inbound::Response { key, response }));
                }
            }
            Inbound::StrayResponse { response, src } => {
                if let Some(leg) =
                    DialogKey::of_response(&response).and_then(|k| self.dialogs.get(&k))
                {
                    leg.do_send(SipEvent(Inbound::StrayResponse { response, src }));
                }
            }
            Inbound::Timeout { key } => {
                if let Some(leg) = self.transactions.get(&key) {
                    leg.do_send(SipEvent(Inbound::Timeout { key }));
                }
            }
            Inbound::TransportError { key } => {
                if let Some(leg) = self.transactions.get(&key) {
                    leg.do_send(SipEvent(Inbound::TransportError { key }));
                }
            }
            Inbound::Terminated { key } => {
                self.transactions.remove(&key);
            }
        }
    }
}

/// Event from a gateway's `Extension`: the addresses it is registered from now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct GatewaySources {
    pub trunk: String,
    pub sources: Vec<SocketAddr>,
}

impl Handler<GatewaySources> for SipRouter {
    type Result = ();
    fn handle(&mut self, msg: GatewaySources, _: &mut Self::Context) {
        self.directory
            .gateway_sources
            .retain(|_, trunk| *trunk != msg.trunk);
        for src in msg.sources {
            self.directory
                .gateway_sources
                .insert(src, msg.trunk.clone());
        }
    }
}

/// Command: route this dialog's requests and stray responses to `leg`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TrackDialog {
    pub key: DialogKey,
    pub leg: Recipient<SipEvent>,
}

impl Handler<TrackDialog> for SipRouter {
    type Result = ();
    fn handle(&mut self, msg: TrackDialog, _: &mut Self::Context) {
        self.dialogs.insert(msg.key, msg.leg);
    }
}

/// Command: the dialog is over.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UntrackDialog {
    pub key: DialogKey,
}

impl Handler<UntrackDialog> for SipRouter {
    type Result = ();
    fn handle(&mut self, msg: UntrackDialog, _: &mut Self::Context) {
        self.dialogs.remove(&msg.key);
    }
}

/// Command: route this transaction's responses, CANCEL and timeouts to `leg` (until the
/// endpoint reports it terminated).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TrackTransaction {
    pub key: TransactionKey,
    pub leg: Recipient<SipEvent>,
}

impl Handler<TrackTransaction> for SipRouter {
    type Result = ();
    fn handle(&mut self, msg: TrackTransaction, _: &mut Self::Context) {
        self.transactions.insert(msg.key, msg.leg);
    }
}

/// Query: where does `number` go for this caller?
#[derive(Message)]
#[rtype(result = "Route")]
pub struct Resolve {
    pub number: String,
    pub from_trunk: bool,
    pub allow_transit: bool,
}

impl Handler<Resolve> for SipRouter {
    type Result = MessageResult<Resolve>;
    fn handle(&mut self, msg: Resolve, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.resolve(&msg.number, msg.from_trunk, msg.allow_transit))
    }
}

/// Event: a call has ended (its log row is queued).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallEnded {
    pub call_id: String,
}

impl Handler<CallEnded> for SipRouter {
    type Result = ();
    fn handle(&mut self, msg: CallEnded, _: &mut Self::Context) {
        self.calls.remove(&msg.call_id);
        if self.calls.is_empty() {
            for waiter in self.drained.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

/// Query: an extension's actor, for monitoring and control.
#[derive(Message)]
#[rtype(result = "Option<Addr<Extension>>")]
pub struct GetExtension(pub String);

impl Handler<GetExtension> for SipRouter {
    type Result = Option<Addr<Extension>>;
    fn handle(&mut self, msg: GetExtension, _: &mut Self::Context) -> Self::Result {
        self.directory.extensions.get(&msg.0).cloned()
    }
}

/// Command: the configuration in the database changed (admin API); reload the numbering
/// plan. Running extensions keep their registrations.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct ReloadDirectory;

impl Handler<ReloadDirectory> for SipRouter {
    // Atomic: two reloads must not interleave (each would start its own actor for a new
    // extension). SIP routing waits the few milliseconds the queries take.
    type Result = AtomicResponse<Self, Result<(), String>>;
    fn handle(&mut self, _: ReloadDirectory, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        let services = self.services.clone();
        // The current directory is needed to keep running actors; take a snapshot of it.
        let current = Directory {
            extensions: self.directory.extensions.clone(),
            ..Directory::default()
        };
        let gateways = self.directory.gateway_sources.clone();
        AtomicResponse::new(Box::pin(
            async move {
                // The numbering plan still reloads if the lists cannot (the previous
                // copy of the lists stays in force; the periodic refresh tries again).
                if let Err(e) = services.lists.reload(&db).await {
                    tracing::error!("routing lists reload failed (previous copy kept): {e}");
                }
                crate::switchboard::load_directory(&db, &services, &current).await
            }
            .into_actor(self)
            .map(|result, act, _| match result {
                Ok(mut directory) => {
                    directory.gateway_sources = gateways;
                    act.directory = directory;
                    Ok(())
                }
                Err(e) => {
                    tracing::error!("numbering plan reload failed: {e}");
                    Err(e.to_string())
                }
            }),
        ))
    }
}

/// Command from the API: one blacklist or VIP entry was written to the database; apply it
/// to the lists the calls read (the reply comes once the calls see it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ApplyListChange(pub crate::routing_lists::ListChange);

impl Handler<ApplyListChange> for SipRouter {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, msg: ApplyListChange, _: &mut Self::Context) -> Self::Result {
        let lists = self.services.lists.clone();
        Box::pin(async move { lists.apply(msg.0).await })
    }
}

/// What the switching core holds right now: for `GET /health` and for finding leaks.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct RouterStats {
    /// Calls in progress.
    pub calls: usize,
    /// Dialogs routed to a leg.
    pub dialogs: usize,
    /// Client transactions routed to a leg.
    pub transactions: usize,
    /// Transactions in the SIP layer (those absorbing retransmissions included).
    pub sip_transactions: usize,
    /// Media endpoints (RTP port pairs) open.
    pub media_endpoints: u64,
}

#[derive(Message)]
#[rtype(result = "RouterStats")]
pub struct GetRouterStats;

impl Handler<GetRouterStats> for SipRouter {
    type Result = MessageResult<GetRouterStats>;
    fn handle(&mut self, _: GetRouterStats, _: &mut Self::Context) -> Self::Result {
        self.calls.retain(|_, c| c.connected());
        MessageResult(RouterStats {
            calls: self.calls.len(),
            dialogs: self.dialogs.len(),
            transactions: self.transactions.len(),
            sip_transactions: self
                .services
                .endpoint
                .stats()
                .transactions
                .load(std::sync::atomic::Ordering::Relaxed),
            media_endpoints: self.services.media.stats().endpoints,
        })
    }
}

/// How long shutdown waits for calls to finish their BYEs.
pub const HANGUP_GRACE: Duration = Duration::from_secs(3);

/// Command (shutdown): hang up every call; resolves once they have all ended or the grace
/// period is over, with the number of calls still up.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct HangupAll;

impl Handler<HangupAll> for SipRouter {
    type Result = ResponseActFuture<Self, usize>;
    fn handle(&mut self, _: HangupAll, _: &mut Self::Context) -> Self::Result {
        for (playout, _) in self.playouts.values() {
            playout.do_send(crate::call::EndCall);
        }
        self.calls.retain(|_, c| c.connected());
        if self.calls.is_empty() {
            return Box::pin(actix::fut::ready(0));
        }
        for call in self.calls.values() {
            call.do_send(crate::call::EndCall);
        }
        // Woken by the last `CallEnded`, not by polling.
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.drained.push(tx);
        Box::pin(
            async move {
                let _ = tokio::time::timeout(HANGUP_GRACE, rx).await;
            }
            .into_actor(self)
            .map(|_, act, _| {
                act.calls.retain(|_, c| c.connected());
                act.calls.len()
            }),
        )
    }
}

/// Query: the meet-me rooms, by number (for the admin API).
#[derive(Message)]
#[rtype(result = "Vec<(String, Addr<Conference>)>")]
pub struct ListConferences;

impl Handler<ListConferences> for SipRouter {
    type Result = MessageResult<ListConferences>;
    fn handle(&mut self, _: ListConferences, _: &mut Self::Context) -> Self::Result {
        let mut rooms: Vec<_> = self
            .directory
            .conferences
            .iter()
            .map(|(n, a)| (n.clone(), a.clone()))
            .collect();
        rooms.sort_by(|a, b| a.0.cmp(&b.0));
        MessageResult(rooms)
    }
}

/// Why the switch cannot call an extension to play something to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlayoutError {
    #[error("no extension {0}")]
    NoSuchExtension(String),
}

/// Command: call `extension` and play `source` to it; if a playback call to it is up
/// already, switch that call to `source` (interface 34: "calling the interface again
/// switches to another recording"). Returns the playback call's Call-ID.
#[derive(Message)]
#[rtype(result = "Result<String, PlayoutError>")]
pub struct PlayToExtension {
    pub extension: String,
    pub source: crate::media::playback::Source,
}

impl Handler<PlayToExtension> for SipRouter {
    type Result = Result<String, PlayoutError>;
    fn handle(&mut self, msg: PlayToExtension, _: &mut Self::Context) -> Self::Result {
        self.playouts.retain(|_, (addr, _)| addr.connected());
        if let Some((addr, call_id)) = self.playouts.get(&msg.extension) {
            addr.do_send(PlayInstead(msg.source));
            return Ok(call_id.clone());
        }
        let ext = self
            .directory
            .extensions
            .get(&msg.extension)
            .cloned()
            .ok_or_else(|| PlayoutError::NoSuchExtension(msg.extension.clone()))?;
        let playout = Playout::new(
            self.services.clone(),
            msg.extension.clone(),
            ext,
            msg.source,
        );
        let call_id = playout.call_id().to_string();
        let addr = playout.start();
        self.playouts.insert(msg.extension, (addr, call_id.clone()));
        Ok(call_id)
    }
}

/// Query: the queues, by group number (interface 40).
#[derive(Message)]
#[rtype(result = "Vec<(String, Addr<Queue>)>")]
pub struct ListQueues;

impl Handler<ListQueues> for SipRouter {
    type Result = MessageResult<ListQueues>;
    fn handle(&mut self, _: ListQueues, _: &mut Self::Context) -> Self::Result {
        let mut queues: Vec<_> = self
            .directory
            .queues
            .iter()
            .map(|(n, a)| (n.clone(), a.clone()))
            .collect();
        queues.sort_by(|a, b| a.0.cmp(&b.0));
        MessageResult(queues)
    }
}

/// Query: IVR menu `id` (for a routing rule's IVR_SELECT).
#[derive(Message)]
#[rtype(result = "Option<std::sync::Arc<crate::ivr::IvrDefinition>>")]
pub struct GetIvr(pub i32);

impl Handler<GetIvr> for SipRouter {
    type Result = Option<std::sync::Arc<crate::ivr::IvrDefinition>>;
    fn handle(&mut self, msg: GetIvr, _: &mut Self::Context) -> Self::Result {
        self.directory.ivrs.get(&msg.0).cloned()
    }
}
