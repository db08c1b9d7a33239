//! `Extension`: one per provisioned extension (and per registering gateway trunk). It is
//! the registrar of its address-of-record — digest-authenticated REGISTER, bindings with
//! expiry — checks the credentials of the INVITEs its phone sends, and keeps the phone
//! state the monitoring API reports.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;

use entities::extension::Presence;

use crate::event_hub::{now_ms, ExtensionStateChanged, HubEvent, PhoneState, Publish};
use crate::services::Services;
use crate::sip::dialog::reach;
use crate::sip::digest::{parse_credentials, Verdict};
use crate::sip::message::{Contact, Method, Request, Response, SipUri, Transport};
use crate::sip::transaction::TransactionKey;

/// Registration lifetime granted when the phone names none (RFC 3261 §10.2.1.1).
pub const DEFAULT_EXPIRES: u32 = 3600;
/// Shorter registrations are refused with 423 (RFC 3261 §10.3 step 7).
pub const MIN_EXPIRES: u32 = 60;
/// Longer registrations are shortened to this.
pub const MAX_EXPIRES: u32 = 7200;
/// Phones behind NAT get an OPTIONS this often (by default): it keeps the NAT binding open and notices a
/// phone that vanished (no answer → the binding is dropped).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// What the extension is: a person's phone, or a gateway registering as a trunk account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionKind {
    Phone,
    Gateway,
}

/// One registered contact.
#[derive(Debug, Clone)]
pub struct Binding {
    pub uri: SipUri,
    /// Where requests for this contact are sent (the flow for phones behind NAT).
    pub dest: SocketAddr,
    pub transport: Transport,
    pub expires_at: Instant,
    /// The contact's address is not where the REGISTER came from: the phone is behind NAT.
    pub natted: bool,
    call_id: String,
    cseq: u32,
}

pub struct Extension {
    number: String,
    password: String,
    kind: ExtensionKind,
    services: Services,
    bindings: Vec<Binding>,
    /// Calls the phone takes part in: Call-ID → (outgoing?, remote number, since).
    calls: HashMap<String, ActiveCall>,
    expiry: Option<SpawnHandle>,
    /// Keep-alive OPTIONS in flight: transaction → contact URI it probes.
    probes: HashMap<TransactionKey, String>,
    agent: AgentState,
    /// Queues this agent belongs to, told of every change that matters to them.
    watchers: Vec<Recipient<AgentChanged>>,
}

/// Call-center state of the extension's person (the agent).
#[derive(Debug, Clone)]
struct AgentState {
    presence: Presence,
    presence_reason: String,
    /// Epoch ms since when the phone is idle.
    idle_since_ms: i64,
    answered_calls: u32,
    /// Queue calls that rang out unanswered in a row.
    missed_in_row: u32,
    /// Queue calls that rang out unanswered (`incomingMissedCount`).
    incoming_missed: u32,
    /// Queue calls not offered because the handset was off-hook (`missingCallCount`).
    missing_calls: u32,
    /// The queue call this agent is being offered (ringing) right now.
    reserved_for: Option<String>,
    /// Counts grants, so the expiry of one offer never ends a later offer of the same
    /// call to the same agent.
    reservation_seq: u64,
    /// Epoch ms until which the agent is in wrap-up (after-call work).
    wrap_up_until_ms: Option<i64>,
}

/// Queue calls missed in a row after which the agent is set busy (its phone rings
/// unattended: the caller should not keep waiting on it).
pub const MAX_MISSED_IN_ROW: u32 = 3;
/// The reason shown for an agent set busy that way.
pub const MISSED_CALLS_REASON: &str = "MissedCalls";

/// What a queue knows of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    pub number: String,
    pub registered: bool,
    pub presence: Presence,
    pub phone_idle: bool,
    pub reserved: bool,
    pub in_wrap_up: bool,
    pub idle_since_ms: i64,
    pub answered_calls: u32,
}

impl AgentStatus {
    /// Free to be offered a queue call now.
    pub fn free(&self) -> bool {
        self.registered
            && self.phone_idle
            && !self.reserved
            && !self.in_wrap_up
            && matches!(self.presence, Presence::Online | Presence::Reducing)
    }
}

#[derive(Debug, Clone)]
struct ActiveCall {
    outgoing: bool,
    remote: String,
    pickup_ms: Option<i64>,
}

impl Extension {
    pub fn new(number: String, password: String, kind: ExtensionKind, services: Services) -> Self {
        Self {
            number,
            password,
            kind,
            services,
            bindings: Vec::new(),
            calls: HashMap::new(),
            expiry: None,
            probes: HashMap::new(),
            agent: AgentState {
                presence: Presence::Online,
                presence_reason: String::new(),
                idle_since_ms: now_ms(),
                answered_calls: 0,
                missed_in_row: 0,
                incoming_missed: 0,
                missing_calls: 0,
                reserved_for: None,
                reservation_seq: 0,
                wrap_up_until_ms: None,
            },
            watchers: Vec::new(),
        }
    }

    /// Starts with the presence stored in the database.
    pub fn with_presence(mut self, presence: Presence, reason: String) -> Self {
        self.agent.presence = presence;
        self.agent.presence_reason = reason;
        self
    }

    fn agent_status(&self) -> AgentStatus {
        AgentStatus {
            number: self.number.clone(),
            registered: !self.bindings.is_empty(),
            presence: self.agent.presence,
            phone_idle: self.calls.is_empty(),
            reserved: self.agent.reserved_for.is_some(),
            in_wrap_up: self.agent.wrap_up_until_ms.is_some_and(|t| t > now_ms()),
            idle_since_ms: self.agent.idle_since_ms,
            answered_calls: self.agent.answered_calls,
        }
    }

    /// Tells the queues this agent is in about its state.
    fn notify_watchers(&mut self) {
        self.watchers.retain(|w| w.connected());
        let status = self.agent_status();
        for w in &self.watchers {
            w.do_send(AgentChanged(status.clone()));
        }
    }

    fn phone_state(&self) -> PhoneState {
        if self.bindings.is_empty() && self.calls.is_empty() {
            return PhoneState::Offline;
        }
        match self.calls.values().next() {
            None => PhoneState::Idle,
            Some(c) if c.outgoing => PhoneState::BusyOutgoing,
            Some(_) => PhoneState::BusyIncoming,
        }
    }

    fn publish(&mut self) {
        self.notify_watchers();
        if self.kind == ExtensionKind::Gateway {
            // Calls from a registered gateway are trunk calls: the router must know where
            // it sends from.
            self.services.router.do_send(crate::router::GatewaySources {
                trunk: self.number.clone(),
                sources: self.bindings.iter().map(|b| b.dest).collect(),
            });
        }
        let remote = self.calls.values().next().map(|c| c.remote.clone());
        self.services
            .hub
            .do_send(Publish(HubEvent::Extension(ExtensionStateChanged {
                extension: self.number.clone(),
                registered: !self.bindings.is_empty(),
                phone: self.phone_state(),
                remote_number: remote,
                presence: self.agent.presence.as_str(),
                presence_reason: self.agent.presence_reason.clone(),
                wrap_up: self.agent.wrap_up_until_ms.is_some_and(|t| t > now_ms()),
                at: now_ms(),
            })));
    }

    fn respond(&self, key: &TransactionKey, response: Response) {
        self.services.endpoint.respond(key, response);
    }

    fn reply(&self, key: &TransactionKey, req: &Request, status: u16, reason: &str) {
        let mut resp = Response::for_request(req, status, reason);
        resp.set_to_tag(&crate::sip::message::new_tag());
        resp.set_header("Server", self.services.settings.user_agent.clone());
        self.respond(key, resp);
    }

    fn challenge(&self, key: &TransactionKey, req: &Request, stale: bool) {
        let mut resp = Response::for_request(req, 401, "Unauthorized");
        resp.set_to_tag(&crate::sip::message::new_tag());
        resp.set_header("WWW-Authenticate", self.services.digest.challenge(stale));
        self.respond(key, resp);
    }

    /// Checks the credentials in `header` for `method`.
    fn check_credentials(&self, header: Option<&str>, method: &Method) -> AuthVerdict {
        let Some(raw) = header else {
            return AuthVerdict::Challenge { stale: false };
        };
        // An unknown scheme (RFC 4475 regaut01) is no credentials at all: challenge.
        let Ok(creds) = parse_credentials(raw) else {
            return AuthVerdict::Challenge { stale: false };
        };
        if creds.username != self.number || creds.realm != self.services.digest.realm() {
            return AuthVerdict::Forbidden;
        }
        match self.services.digest.verify(
            &creds,
            method.as_str(),
            &self.password,
            SystemTime::now(),
        ) {
            Verdict::Ok => AuthVerdict::Accept,
            Verdict::Stale => AuthVerdict::Challenge { stale: true },
            Verdict::Invalid => AuthVerdict::Forbidden,
        }
    }

    fn register(&mut self, msg: HandleRegister, ctx: &mut Context<Self>) {
        let HandleRegister {
            key,
            request,
            src,
            transport,
        } = msg;
        match request.to().map(|t| t.uri.is_sip()) {
            Some(true) => {}
            _ => return self.reply(&key, &request, 400, "Bad Request - To is not a SIP AOR"),
        }
        match self.check_credentials(request.authorization(), &request.method) {
            AuthVerdict::Accept => {}
            AuthVerdict::Challenge { stale } => return self.challenge(&key, &request, stale),
            AuthVerdict::Forbidden => return self.reply(&key, &request, 403, "Forbidden"),
        }
        let contacts = request.contacts();
        let call_id = request.call_id().unwrap_or_default().to_string();
        let cseq = request.cseq().map(|(n, _)| n).unwrap_or(0);
        let header_expires = request.expires();
        let now = Instant::now();
        let before = self.bindings.len();
        if contacts.iter().any(|c| matches!(c, Contact::Wildcard)) {
            // `Contact: *` only with Expires: 0 and alone (RFC 3261 §10.3 step 6).
            if contacts.len() != 1 || header_expires != Some(0) {
                return self.reply(
                    &key,
                    &request,
                    400,
                    "Bad Request - Invalid wildcard Contact",
                );
            }
            self.bindings.clear();
        } else {
            // Validate every contact before changing anything: the request is atomic.
            let mut changes = Vec::with_capacity(contacts.len());
            for contact in &contacts {
                let Some(addr) = contact.addr() else { continue };
                let expires = contact
                    .expires()
                    .or(header_expires)
                    .unwrap_or(DEFAULT_EXPIRES);
                if expires != 0 && expires < MIN_EXPIRES {
                    let mut resp = Response::for_request(&request, 423, "Interval Too Brief");
                    resp.set_to_tag(&crate::sip::message::new_tag());
                    resp.set_header("Min-Expires", MIN_EXPIRES.to_string());
                    return self.respond(&key, resp);
                }
                changes.push((addr.uri.clone(), expires.min(MAX_EXPIRES)));
            }
            for (uri, expires) in changes {
                let same = |b: &Binding| b.uri.to_string() == uri.to_string();
                if let Some(old) = self.bindings.iter().find(|b| same(b)) {
                    // An older request of the same registration arriving late (§10.3 step 7).
                    if old.call_id == call_id && old.cseq > cseq {
                        return self.reply(
                            &key,
                            &request,
                            500,
                            "Server Internal Error - CSeq out of order",
                        );
                    }
                }
                self.bindings.retain(|b| !same(b));
                if expires == 0 {
                    continue;
                }
                let dest = reach(&uri, &transport, Some(src)).unwrap_or(src);
                let natted = dest == src && reach(&uri, &transport, None) != Some(src);
                self.bindings.push(Binding {
                    uri,
                    dest,
                    natted,
                    transport: transport.clone(),
                    expires_at: now + Duration::from_secs(u64::from(expires)),
                    call_id: call_id.clone(),
                    cseq,
                });
            }
        }
        let mut resp = Response::for_request(&request, 200, "OK");
        resp.set_to_tag(&crate::sip::message::new_tag());
        for b in &self.bindings {
            let left = b.expires_at.saturating_duration_since(now).as_secs();
            resp.add_header("Contact", format!("<{}>;expires={left}", b.uri));
        }
        resp.set_header("Date", httpdate(SystemTime::now()));
        resp.set_header("Server", self.services.settings.user_agent.clone());
        self.respond(&key, resp);
        tracing::debug!(extension = %self.number, bindings = self.bindings.len(), "registered");
        if before != self.bindings.len() || before == 0 {
            self.publish();
        }
        self.schedule_expiry(ctx);
    }

    /// Arms one timer for the earliest binding expiry.
    fn schedule_expiry(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.expiry.take() {
            ctx.cancel_future(handle);
        }
        let Some(next) = self.bindings.iter().map(|b| b.expires_at).min() else {
            return;
        };
        let wait = next.saturating_duration_since(Instant::now()) + Duration::from_millis(10);
        self.expiry = Some(ctx.run_later(wait, |act, ctx| {
            let now = Instant::now();
            let before = act.bindings.len();
            act.bindings.retain(|b| b.expires_at > now);
            if act.bindings.len() != before {
                tracing::info!(extension = %act.number, "registration expired");
                act.publish();
            }
            act.schedule_expiry(ctx);
        }));
    }
}

impl Extension {
    /// Sends an OPTIONS to every UDP binding behind NAT.
    fn keepalive(&mut self, ctx: &mut Context<Self>) {
        let endpoint = self.services.endpoint.clone();
        let probes: Vec<Binding> = self
            .bindings
            .iter()
            .filter(|b| b.natted && !b.transport.is_reliable())
            .cloned()
            .collect();
        for binding in probes {
            let via = endpoint.via(&binding.transport);
            let key = TransactionKey::Client {
                branch: via.branch.clone().unwrap_or_default(),
                method: Method::Options,
            };
            let host = endpoint.advertise().to_string();
            let mut from =
                crate::sip::message::NameAddr::new(SipUri::sip(Some("ctiswitch"), &host, None));
            from.set_tag(&crate::sip::message::new_tag());
            let mut req = Request::new(Method::Options, binding.uri.clone());
            req.push_via(&via);
            req.set_max_forwards(70);
            req.set_from(&from);
            req.set_to(&crate::sip::message::NameAddr::new(binding.uri.clone()));
            req.set_call_id(&crate::sip::message::new_call_id(&host));
            req.set_cseq(1, &Method::Options);
            self.services
                .router
                .do_send(crate::router::TrackTransaction {
                    key: key.clone(),
                    leg: ctx.address().recipient(),
                });
            self.probes.insert(key, binding.uri.to_string());
            endpoint.send_request(req, binding.dest, binding.transport.clone());
        }
    }
}

impl Actor for Extension {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        let every = self.services.settings.keepalive_interval;
        ctx.run_interval(every, |act, ctx| act.keepalive(ctx));
    }
}

/// Answers (or silence) to our keep-alive OPTIONS.
impl Handler<crate::leg::SipEvent> for Extension {
    type Result = ();
    fn handle(&mut self, msg: crate::leg::SipEvent, _: &mut Self::Context) {
        use crate::sip::endpoint::Inbound;
        match msg.0 {
            // Any final answer, even 404 or 405, proves the phone is there.
            Inbound::Response { key, response } if response.is_final() => {
                self.probes.remove(&key);
            }
            Inbound::Timeout { key } | Inbound::TransportError { key } => {
                if let Some(uri) = self.probes.remove(&key) {
                    let before = self.bindings.len();
                    self.bindings.retain(|b| b.uri.to_string() != uri);
                    if self.bindings.len() != before {
                        tracing::info!(extension = %self.number, contact = %uri, "phone does not answer keep-alive: binding dropped");
                        self.publish();
                    }
                }
            }
            _ => {}
        }
    }
}

/// Command: handle a REGISTER for this address-of-record.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandleRegister {
    pub key: TransactionKey,
    pub request: Request,
    pub src: SocketAddr,
    pub transport: Transport,
}

impl Handler<HandleRegister> for Extension {
    type Result = ();
    fn handle(&mut self, msg: HandleRegister, ctx: &mut Self::Context) {
        self.register(msg, ctx);
    }
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVerdict {
    Accept,
    Challenge { stale: bool },
    Forbidden,
}

/// Query: may this INVITE (from this extension's phone) go ahead? Checks
/// `Proxy-Authorization`; the router answers 407 or 403 on the verdict.
#[derive(Message)]
#[rtype(result = "AuthVerdict")]
pub struct AuthorizeInvite {
    /// The request's `Proxy-Authorization` value, if any.
    pub credentials: Option<String>,
    pub method: Method,
}

impl AuthorizeInvite {
    /// What of `req` the check needs (not the whole request: it stays with the router).
    pub fn of(req: &Request) -> Self {
        AuthorizeInvite {
            credentials: req.proxy_authorization().map(str::to_string),
            method: req.method.clone(),
        }
    }
}

impl Handler<AuthorizeInvite> for Extension {
    type Result = MessageResult<AuthorizeInvite>;
    fn handle(&mut self, msg: AuthorizeInvite, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.check_credentials(msg.credentials.as_deref(), &msg.method))
    }
}

/// Query: the live bindings (contacts to ring).
#[derive(Message)]
#[rtype(result = "Vec<Binding>")]
pub struct GetBindings;

impl Handler<GetBindings> for Extension {
    type Result = MessageResult<GetBindings>;
    fn handle(&mut self, _: GetBindings, _: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        MessageResult(
            self.bindings
                .iter()
                .filter(|b| b.expires_at > now)
                .cloned()
                .collect(),
        )
    }
}

/// Event from a call: the phone is in call `call_id` (ringing or talking).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PhoneEngaged {
    pub call_id: String,
    pub outgoing: bool,
    pub remote: String,
    /// Epoch ms of the answer, once answered.
    pub pickup_ms: Option<i64>,
}

impl Handler<PhoneEngaged> for Extension {
    type Result = ();
    fn handle(&mut self, msg: PhoneEngaged, _: &mut Self::Context) {
        self.calls.insert(
            msg.call_id,
            ActiveCall {
                outgoing: msg.outgoing,
                remote: msg.remote,
                pickup_ms: msg.pickup_ms,
            },
        );
        self.publish();
    }
}

/// Event from a call: the phone left call `call_id`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PhoneReleased {
    pub call_id: String,
}

impl Handler<PhoneReleased> for Extension {
    type Result = ();
    fn handle(&mut self, msg: PhoneReleased, _: &mut Self::Context) {
        if self.calls.remove(&msg.call_id).is_some() {
            if self.calls.is_empty() {
                self.agent.idle_since_ms = now_ms();
            }
            self.publish();
        }
    }
}

/// What monitoring shows of an extension.
#[derive(Debug, Clone)]
pub struct ExtensionSnapshot {
    pub number: String,
    pub kind: ExtensionKind,
    pub registered: bool,
    pub contacts: Vec<String>,
    pub phone: PhoneState,
    pub remote_number: Option<String>,
    pub pickup_ms: Option<i64>,
}

/// Query: the extension's current state.
#[derive(Message)]
#[rtype(result = "ExtensionSnapshot")]
pub struct GetExtensionState;

impl Handler<GetExtensionState> for Extension {
    type Result = MessageResult<GetExtensionState>;
    fn handle(&mut self, _: GetExtensionState, _: &mut Self::Context) -> Self::Result {
        let call = self.calls.values().next();
        MessageResult(ExtensionSnapshot {
            number: self.number.clone(),
            kind: self.kind,
            registered: !self.bindings.is_empty(),
            contacts: self.bindings.iter().map(|b| b.uri.to_string()).collect(),
            phone: self.phone_state(),
            remote_number: call.map(|c| c.remote.clone()),
            pickup_ms: call.and_then(|c| c.pickup_ms),
        })
    }
}

/// Command: the password changed (admin API / provisioning).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPassword(pub String);

impl Handler<SetPassword> for Extension {
    type Result = ();
    fn handle(&mut self, msg: SetPassword, _: &mut Self::Context) {
        self.password = msg.0;
    }
}

/// Command: the extension was deleted; stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

impl Handler<Retire> for Extension {
    type Result = ();
    fn handle(&mut self, _: Retire, ctx: &mut Self::Context) {
        self.bindings.clear();
        self.publish();
        ctx.stop();
    }
}

/// RFC 7231 IMF-fixdate for the `Date` header of REGISTER responses.
fn httpdate(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Event to a queue: an agent's state changed.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct AgentChanged(pub AgentStatus);

/// Command from a queue: send it every change of this agent from now on (and the state
/// now).
#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchAgent(pub Recipient<AgentChanged>);

impl Handler<WatchAgent> for Extension {
    type Result = ();
    fn handle(&mut self, msg: WatchAgent, _: &mut Self::Context) {
        msg.0.do_send(AgentChanged(self.agent_status()));
        self.watchers.push(msg.0);
    }
}

/// Command (interface 14, or the switch itself): the agent's presence.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPresence {
    pub presence: Presence,
    pub reason: String,
}

impl Handler<SetPresence> for Extension {
    type Result = ();
    fn handle(&mut self, msg: SetPresence, _: &mut Self::Context) {
        if msg.presence == Presence::Online {
            self.agent.missed_in_row = 0;
        }
        self.agent.presence = msg.presence;
        self.agent.presence_reason = msg.reason;
        self.publish();
    }
}

/// Query from a queue: hold this free agent for `call_id` (its phone is about to ring).
/// False when it is not free any more (another queue was quicker, the phone went busy).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct ReserveAgent {
    pub call_id: String,
    /// The longest the offer can last (the queue's ring timeout). The hold is let go
    /// [`RESERVATION_GRACE`] later even if no [`OfferEnded`] came: a call that ends
    /// abnormally must not leave its agents reserved for ever.
    pub ring_timeout: Duration,
}

/// Slack after the ring timeout before a reservation nobody ended is let go.
pub const RESERVATION_GRACE: Duration = Duration::from_secs(15);

impl Handler<ReserveAgent> for Extension {
    type Result = bool;
    fn handle(&mut self, msg: ReserveAgent, ctx: &mut Self::Context) -> bool {
        let status = self.agent_status();
        if !status.free() {
            if status.registered && !status.phone_idle && !status.reserved {
                self.agent.missing_calls += 1;
            }
            return false;
        }
        let call_id = msg.call_id.clone();
        self.agent.reserved_for = Some(msg.call_id);
        self.agent.reservation_seq += 1;
        let seq = self.agent.reservation_seq;
        ctx.run_later(msg.ring_timeout + RESERVATION_GRACE, move |act, _| {
            if act.agent.reservation_seq == seq
                && act.agent.reserved_for.as_deref() == Some(call_id.as_str())
            {
                tracing::warn!(extension = %act.number, %call_id, "queue offer never ended: reservation let go");
                act.agent.reserved_for = None;
                act.publish();
            }
        });
        self.notify_watchers();
        true
    }
}

/// How a queue call offered to this agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferOutcome {
    /// The agent answered; wrap-up follows the call (see [`StartWrapUp`]).
    Answered,
    /// It rang out (or the phone refused it).
    Missed,
    /// Another agent answered first, or the caller left: not the agent's doing.
    Withdrawn,
}

/// Event from a call: the offer of `call_id` to this agent is over.
#[derive(Message)]
#[rtype(result = "()")]
pub struct OfferEnded {
    pub call_id: String,
    pub outcome: OfferOutcome,
}

impl Handler<OfferEnded> for Extension {
    type Result = ();
    fn handle(&mut self, msg: OfferEnded, _: &mut Self::Context) {
        if self.agent.reserved_for.as_deref() == Some(msg.call_id.as_str()) {
            self.agent.reserved_for = None;
        }
        match msg.outcome {
            OfferOutcome::Answered => {
                self.agent.answered_calls += 1;
                self.agent.missed_in_row = 0;
            }
            OfferOutcome::Missed => {
                self.agent.incoming_missed += 1;
                self.agent.missed_in_row += 1;
                if self.agent.missed_in_row >= MAX_MISSED_IN_ROW
                    && self.agent.presence == Presence::Online
                {
                    tracing::info!(extension = %self.number, "missed {} queue calls in a row: set busy", self.agent.missed_in_row);
                    self.agent.presence = Presence::Busy;
                    self.agent.presence_reason = MISSED_CALLS_REASON.into();
                }
            }
            OfferOutcome::Withdrawn => {}
        }
        self.publish();
    }
}

/// Command from a queue call that ended: after-call work for `seconds`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartWrapUp {
    pub seconds: u32,
}

impl Handler<StartWrapUp> for Extension {
    type Result = ();
    fn handle(&mut self, msg: StartWrapUp, ctx: &mut Self::Context) {
        if msg.seconds == 0 {
            return;
        }
        let until = now_ms() + i64::from(msg.seconds) * 1_000;
        self.agent.wrap_up_until_ms = Some(until);
        self.publish();
        ctx.run_later(
            Duration::from_secs(u64::from(msg.seconds)),
            move |act, _| {
                if act.agent.wrap_up_until_ms == Some(until) {
                    act.agent.wrap_up_until_ms = None;
                    // Idle counts from the end of the after-call work.
                    act.agent.idle_since_ms = now_ms();
                    act.publish();
                }
            },
        );
    }
}

/// Counters and presence as monitoring (interface 23) shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSnapshot {
    pub status: AgentStatus,
    pub presence_reason: String,
    pub incoming_missed_count: u32,
    pub missing_call_count: u32,
    pub missed_in_row: u32,
}

/// Query: the agent's presence and counters.
#[derive(Message)]
#[rtype(result = "AgentSnapshot")]
pub struct GetAgent;

impl Handler<GetAgent> for Extension {
    type Result = MessageResult<GetAgent>;
    fn handle(&mut self, _: GetAgent, _: &mut Self::Context) -> Self::Result {
        MessageResult(AgentSnapshot {
            status: self.agent_status(),
            presence_reason: self.agent.presence_reason.clone(),
            incoming_missed_count: self.agent.incoming_missed,
            missing_call_count: self.agent.missing_calls,
            missed_in_row: self.agent.missed_in_row,
        })
    }
}
