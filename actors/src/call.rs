//! `Call`: one per call (one call-log row). It owns the caller's `Leg`, the legs it rings
//! (one per contact: forking), and the RTP relay that anchors the media; it resolves the
//! callee, bridges the answer, passes re-INVITEs through, and when the call ends writes
//! its call-log row and publishes the end.

use std::collections::HashMap;
use std::net::SocketAddr;

use actix::prelude::*;
use bytes::Bytes;
use entities::calllog;

use crate::call_log_writer::WriteCallLog;
use crate::conference::{Admit, Conference, Depart, MemberDtmf};
use crate::event_hub::{
    now_ms, CallState, CallStateChanged, Direction, HubEvent, LegDtmf, Party, Publish,
};
use crate::extension::{Extension, GetBindings, PhoneEngaged, PhoneReleased};
use crate::extension::{OfferEnded, OfferOutcome, StartWrapUp};
use crate::ivr::{IvrEvent, TransferTarget};
use crate::ivr_actor::{Ivr, IvrInput, IvrOutput};
use crate::leg::{
    Answer, AnswerReoffer, EndCause, Hangup, Leg, LegEvent, LegEventKind, LegId, Outgoing, Reject,
    Reoffer, Ring,
};
use crate::media::dtmf::{DtmfReceived, DtmfSource};
use crate::media::engine::EndpointId;
use crate::media::engine::Latching;
use crate::media::engine::{Codec as MediaCodec, Endpoint, MediaEvent, Recording};
use crate::media::g711::Law;
use crate::media::playback::{Playback, Source};
use crate::media::wav::WavWriter;
use crate::queue::{Dequeue, Enqueue, OfferResult, Queue, QueueEvent};
use crate::router::GetIvr;
use crate::router::{CallEnded, Resolve, Route};
use crate::services::Services;
use crate::sip::message::{NameAddr, Request, SipUri, Transport};
use crate::sip::sdp::{self, Codec, Direction as SdpDirection, Sdp, SdpSession, SWITCH_CODECS};
use crate::sip::transaction::TransactionKey;
use entities::routing_rule::{RuleAction, RulePrompt};

/// The caller's leg is always leg 0.
const CALLER_LEG: LegId = 0;
/// Max-Forwards of requests we originate when the caller sent none.
const DEFAULT_MAX_FORWARDS: u8 = 70;
/// Playback id of music on hold (a call plays one thing at a time per side).
const MUSIC_ON_HOLD_PLAYBACK: u64 = 1;
/// What a caller hears when the queue gives up on it and there is no overflow.
pub const QUEUE_GOODBYE: &str = "All our agents are busy. Please call again later. Goodbye.";
/// Playback id of a routing rule's PLAY_AND_HANGUP prompt.
const RULE_PROMPT_PLAYBACK: u64 = 2;
/// The voicemail of VOICE_MAIL / ONANSWER_TO_VM rules: a one-node menu.
const VOICEMAIL_MENU: &str = r##"<ivr name="voicemail" start="vm">
  <voicemail id="vm" max="120" terminator="#" next="bye"
             tts="Please leave a message after the tone, then press the hash key."/>
  <hangup id="bye"/>
</ivr>"##;

/// How the pre-routing ends: the numbering plan's route, or a time-based rule.
enum Decision {
    Route(Option<Route>),
    Rule(RuleAction),
}

/// A Call-ID as a file name: only characters that are safe everywhere.
fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Who placed the call.
#[derive(Debug, Clone)]
pub enum Caller {
    Extension {
        number: String,
        ext: Addr<Extension>,
    },
    Trunk {
        name: String,
        number: String,
        allow_transit: bool,
    },
}

impl Caller {
    fn number(&self) -> &str {
        match self {
            Caller::Extension { number, .. } | Caller::Trunk { number, .. } => number,
        }
    }
}

/// Everything the router knows when a new INVITE arrives.
pub struct CallSetup {
    pub invite: Request,
    pub key: TransactionKey,
    pub src: SocketAddr,
    pub transport: Transport,
    pub caller: Caller,
}

/// The call's life; changes only through [`transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPhase {
    /// Finding the callee and ringing nobody yet.
    Routing,
    /// Answered by the switch, waiting in a group's queue (music on hold).
    Queued,
    /// At least one callee phone rings.
    Ringing,
    Talking,
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallInput {
    Alerted,
    Answered,
    /// Joined a queue (or another one, on overflow).
    Enqueued,
    /// The agents rung for a queued call did not answer: back to waiting.
    Requeued,
    /// Taken out of the queue to be routed elsewhere (a rule's no-answer fallback).
    Dequeued,
    Ended,
}

pub fn transition(from: CallPhase, input: CallInput) -> Option<CallPhase> {
    use CallInput as I;
    use CallPhase as P;
    match (from, input) {
        (P::Routing | P::Ringing | P::Queued, I::Alerted) => Some(P::Ringing),
        (P::Routing | P::Ringing | P::Queued, I::Answered) => Some(P::Talking),
        (P::Routing | P::Queued, I::Enqueued) => Some(P::Queued),
        (P::Ringing, I::Requeued) => Some(P::Queued),
        (P::Queued | P::Ringing, I::Dequeued) => Some(P::Routing),
        (P::Routing | P::Ringing | P::Queued | P::Talking, I::Ended) => Some(P::Ended),
        _ => None,
    }
}

/// Which side ended the call, as the call log records it (`hungupside`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    Caller,
    Callee,
    System,
}

impl EndedBy {
    fn as_str(self) -> &'static str {
        match self {
            EndedBy::Caller => "caller",
            EndedBy::Callee => "callee",
            EndedBy::System => "system",
        }
    }
}

/// Which media endpoint: the caller's (A) or the answering callee's (B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

impl Side {
    fn of_leg(leg: LegId) -> Side {
        if leg == CALLER_LEG {
            Side::A
        } else {
            Side::B
        }
    }
}

/// The call's media in the engine: the endpoint facing the caller, the one facing the
/// callee (connected to each other), and the recording of both.
struct CallMedia {
    a: Endpoint,
    b: Endpoint,
    recording: Option<Recording>,
    /// The side hearing music on hold, if any.
    music_on_hold: Option<Side>,
}

impl CallMedia {
    fn side(&self, side: Side) -> &Endpoint {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }
}

fn law_of(codec: &Codec) -> Law {
    if codec.name.eq_ignore_ascii_case("PCMA") {
        Law::Alaw
    } else {
        Law::Ulaw
    }
}

/// A call waiting in (or served from) a group's queue.
struct QueueCall {
    addr: Addr<Queue>,
    enqueued_ms: i64,
    /// When the caller left the queue (an agent answered, it timed out, hung up).
    left_ms: Option<i64>,
    /// The agents rung by the offer in progress.
    offer: Vec<(String, Addr<Extension>)>,
    offer_timer: Option<SpawnHandle>,
    wrap_up_seconds: u32,
    /// The call log's `business` when the caller never reached an agent.
    outcome: Option<&'static str>,
    /// The agent who answered, for its wrap-up when the call ends.
    agent: Option<Addr<Extension>>,
    /// Since when the agents of the current offer were idle, and when it rang them.
    idle_since_ms: Vec<(String, i64)>,
    offered_ms: i64,
    /// `standby`: seconds the answering agent had been idle when this call rang it.
    standby_secs: i32,
}

struct Fork {
    leg: Addr<Leg>,
    /// The extension whose phone this fork rings, if any.
    extension: Option<(String, Addr<Extension>)>,
    call_id: String,
}

pub struct Call {
    id: String,
    services: Services,
    setup: Option<CallSetup>,
    caller: Caller,
    callee: String,
    direction: Direction,
    group: Option<String>,
    trunk_out: Option<String>,
    phase: CallPhase,
    caller_leg: Option<Addr<Leg>>,
    caller_sdp: Option<Sdp>,
    caller_session: Option<SdpSession>,
    callee_session: Option<SdpSession>,
    /// The codec the callee chose (the caller is answered with it).
    codec: Option<Codec>,
    early_media_sent: bool,
    forks: HashMap<LegId, Fork>,
    next_leg: LegId,
    answered: Option<LegId>,
    /// The best failure heard from the forks so far (RFC 3261 §16.7 style).
    best_failure: Option<(u16, String)>,
    /// A re-INVITE in progress: which leg offered.
    reoffer_from: Option<LegId>,
    media: Option<CallMedia>,
    /// The meet-me room the caller is in (the switch answered the call).
    conference: Option<Addr<Conference>>,
    /// The call went to a meet-me room (the call log's `business` is CONFERENCE).
    to_conference: bool,
    queue: Option<QueueCall>,
    /// Legs cancelled by the call that may still answer (see `on_fork_event`).
    withdrawn: HashMap<LegId, Fork>,
    /// A PLAY_AND_HANGUP prompt plays: its end ends the call.
    hang_up_after_prompt: bool,
    /// The IVR running on the caller, and its latest call-log record.
    ivr: Option<Addr<Ivr>>,
    ivr_record: Option<crate::ivr::IvrRecord>,
    /// The access number a trunk call dialled (call log `accessnum`).
    access_number: Option<String>,
    /// The switch answered the caller itself (room, queue): provisional responses and the
    /// agent's answer are not passed to the caller any more.
    answered_locally: bool,
    /// The recording's file (the call log's `recordVoice`).
    record_path: Option<String>,
    ring_timer: Option<SpawnHandle>,
    max_forwards: u8,
    begin_ms: i64,
    ring_ms: Option<i64>,
    pickup_ms: Option<i64>,
    hungup: Option<EndedBy>,
    channel: String,
    peer_call_id: String,
}

impl Call {
    pub fn new(setup: CallSetup, services: Services) -> Self {
        let id = setup.invite.call_id().unwrap_or_default().to_string();
        let callee = setup.invite.uri.user.clone().unwrap_or_default();
        let caller = setup.caller.clone();
        let max_forwards = setup
            .invite
            .max_forwards()
            .map(|m| m.saturating_sub(1))
            .unwrap_or(DEFAULT_MAX_FORWARDS);
        let direction = match caller {
            Caller::Trunk { .. } => Direction::Incoming,
            Caller::Extension { .. } => Direction::Internal,
        };
        let channel = setup.src.to_string();
        Self {
            id,
            services,
            caller,
            callee,
            direction,
            group: None,
            trunk_out: None,
            phase: CallPhase::Routing,
            caller_leg: None,
            caller_sdp: None,
            caller_session: None,
            callee_session: None,
            codec: None,
            early_media_sent: false,
            forks: HashMap::new(),
            next_leg: CALLER_LEG + 1,
            answered: None,
            best_failure: None,
            reoffer_from: None,
            media: None,
            conference: None,
            to_conference: false,
            queue: None,
            withdrawn: HashMap::new(),
            access_number: None,
            hang_up_after_prompt: false,
            ivr: None,
            ivr_record: None,
            answered_locally: false,
            record_path: None,
            ring_timer: None,
            max_forwards,
            begin_ms: now_ms(),
            ring_ms: None,
            pickup_ms: None,
            hungup: None,
            channel,
            peer_call_id: String::new(),
            setup: Some(setup),
        }
    }

    fn step(&mut self, input: CallInput) -> bool {
        match transition(self.phase, input) {
            Some(next) => {
                self.phase = next;
                true
            }
            None => false,
        }
    }

    fn publish(&self, state: CallState, leg_call_id: &str, extension: Option<&str>) {
        self.services
            .hub
            .do_send(Publish(HubEvent::Call(CallStateChanged {
                call_id: self.id.clone(),
                leg_call_id: leg_call_id.to_string(),
                caller: self.caller.number().to_string(),
                callee: self.callee.clone(),
                direction: self.direction,
                group: self.group.clone(),
                extension: extension.map(str::to_string),
                state,
                at: now_ms(),
            })));
    }

    /// Refuses the call before it was answered, and ends it.
    fn refuse(&mut self, ctx: &mut Context<Self>, status: u16, reason: &str) {
        if let Some(a) = &self.caller_leg {
            if self.answered_locally {
                // Answered by the switch (IVR, queue): nothing to refuse, hang up.
                a.do_send(Hangup);
            } else {
                a.do_send(Reject {
                    status,
                    reason: reason.to_string(),
                });
            }
        }
        if self.hungup.is_none() {
            self.hungup = Some(EndedBy::System);
        }
        self.end(ctx);
    }

    /// Sets up the caller's leg and the relay; on success resolves the callee.
    fn begin(&mut self, ctx: &mut Context<Self>) -> Result<(), (u16, &'static str)> {
        let Some(setup) = self.setup.take() else {
            return Err((500, "Server Internal Error"));
        };
        let me = ctx.address().recipient();
        let leg = Leg::uas(
            CALLER_LEG,
            me,
            self.services.clone(),
            setup.invite.clone(),
            setup.key.clone(),
            setup.src,
            setup.transport.clone(),
        );
        let leg = match leg {
            Ok(leg) => leg.start(),
            Err(e) => {
                tracing::debug!(call_id = %self.id, "cannot start caller leg: {e}");
                self.setup = Some(setup);
                return Err((400, "Bad Request"));
            }
        };
        self.caller_leg = Some(leg);
        if let Caller::Extension { ext, .. } = &self.caller {
            ext.do_send(PhoneEngaged {
                call_id: self.id.clone(),
                outgoing: true,
                remote: self.callee.clone(),
                pickup_ms: None,
            });
        }
        if setup.invite.body.is_empty() {
            // Offer-less INVITEs (offer in the 200) are not carried yet.
            return Err((488, "Not Acceptable Here"));
        }
        let offer = std::str::from_utf8(&setup.invite.body)
            .ok()
            .and_then(|text| Sdp::parse(text).ok())
            .ok_or((488, "Not Acceptable Here"))?;
        let (codecs, _) = sdp::offered_codecs(&offer, &SWITCH_CODECS);
        if codecs.is_empty() {
            return Err((488, "Not Acceptable Here"));
        }
        let a_ports = self.services.ports.allocate().map_err(|e| {
            tracing::warn!("no RTP ports: {e}");
            (503, "Service Unavailable")
        })?;
        let b_ports = self.services.ports.allocate().map_err(|e| {
            tracing::warn!("no RTP ports: {e}");
            (503, "Service Unavailable")
        })?;
        let ip = self.services.settings.media_ip;
        self.caller_session = Some(SdpSession::new(ip, a_ports.port));
        self.callee_session = Some(SdpSession::new(ip, b_ports.port));
        let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let engine = &self.services.media;
        let unavailable = |e| {
            tracing::warn!("media engine: {e}");
            (503, "Service Unavailable")
        };
        let a = engine
            .open(a_ports, Latching::Any, events_tx.clone())
            .map_err(unavailable)?;
        let b = engine
            .open(b_ports, Latching::Any, events_tx)
            .map_err(unavailable)?;
        // Connected from the start: early media (183) flows before the answer.
        let _ = a.connect(&b);
        let remote = offer.first_audio().and_then(|i| offer.media_addr(i));
        let _ = a.set_remote(remote);
        let me = ctx.address();
        // Media events are rare (timeout, DTMF, end of a prompt): one message each,
        // never per packet.
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if !me.connected() {
                    break;
                }
                me.do_send(MediaNotice(event));
            }
        });
        self.media = Some(CallMedia {
            a,
            b,
            recording: None,
            music_on_hold: None,
        });
        self.caller_sdp = Some(offer);
        self.publish(CallState::Calling, &self.id, None);
        self.pre_route(ctx);
        let ring_timeout = self.services.settings.ring_timeout;
        self.ring_timer = Some(ctx.run_later(ring_timeout, |act, ctx| {
            if matches!(act.phase, CallPhase::Routing | CallPhase::Ringing) {
                act.cancel_forks(None);
                // A fork that already refused (486, 603…) says more than "no answer".
                let (status, reason) = act
                    .best_failure
                    .clone()
                    .filter(|(s, _)| (400..700).contains(s) && *s != 487)
                    .unwrap_or((408, "Request Timeout".into()));
                act.refuse(ctx, status, &reason);
            }
        }));
        Ok(())
    }

    /// Before the numbering plan: the blacklist (calls from and to a listed number are
    /// refused with 403), then, for calls from a trunk, the third-party routing query
    /// (interface 11), whose answer replaces the dialled number when it names an
    /// extension or a group. A query that fails, times out or answers anything else is
    /// logged and the dialled number is used.
    fn pre_route(&mut self, ctx: &mut Context<Self>) {
        let db = self.services.db.clone();
        let http = self.services.http.clone();
        let caller = self.caller.number().to_string();
        let callee = self.callee.clone();
        let from_trunk = matches!(self.caller, Caller::Trunk { .. });
        let allow_transit = matches!(
            self.caller,
            Caller::Trunk {
                allow_transit: true,
                ..
            }
        );
        let routing_url = self
            .services
            .settings
            .routing_url
            .clone()
            .filter(|_| from_trunk);
        let router = self.services.router.clone();
        let lists = self.services.lists.snapshot();
        async move {
            let now = now_ms();
            if let Some(listed) = [&caller, &callee]
                .into_iter()
                .find(|n| lists.is_blacklisted(n, now))
            {
                return Err(listed.clone());
            }
            let resolve = |number: String, from_trunk: bool| Resolve {
                number,
                from_trunk,
                allow_transit,
            };
            let access = (from_trunk && lists.is_access_number(&callee)).then(|| callee.clone());
            // Time-based rules of the dialled number (interface 61).
            let local_now = chrono::Local::now().naive_local();
            let rules = lists.rules_for(&callee);
            if let Some(rule) = entities::routing_rule::active_rule(rules, &callee, local_now) {
                if let Ok(action) = rule.action() {
                    tracing::info!(%callee, rule = rule.id, ?action, "routing rule applies");
                    return Ok((Decision::Rule(action), access));
                }
            }
            if let Some(url) = routing_url {
                if let Some(number) = routing_query(&http, &url, &caller).await {
                    if let Ok(route @ (Route::Extension { .. } | Route::Group { .. })) =
                        router.send(resolve(number.clone(), false)).await
                    {
                        tracing::info!(%caller, %number, "routed by the routing query");
                        return Ok((Decision::Route(Some(route)), access));
                    }
                    tracing::warn!(%caller, %number, "routing query named no extension or group");
                }
            }
            if from_trunk {
                if let Some(ext) = direct_callback_extension(&db, &caller).await {
                    if let Ok(route @ Route::Extension { .. }) =
                        router.send(resolve(ext.clone(), false)).await
                    {
                        tracing::info!(%caller, %ext, "direct callback to the last caller");
                        return Ok((Decision::Route(Some(route)), access));
                    }
                }
            }
            Ok((
                Decision::Route(router.send(resolve(callee, from_trunk)).await.ok()),
                access,
            ))
        }
        .into_actor(self)
        .map(|checked, act, ctx| match checked {
            Err(number) => {
                tracing::info!(call_id = %act.id, %number, "blacklisted: refused");
                act.refuse(ctx, 403, "Forbidden")
            }
            Ok((Decision::Route(Some(route)), access)) => {
                act.access_number = access;
                act.route(ctx, route)
            }
            Ok((Decision::Route(None), _)) => act.refuse(ctx, 500, "Server Internal Error"),
            Ok((Decision::Rule(action), access)) => {
                act.access_number = access;
                act.apply_rule(ctx, action)
            }
        })
        .wait(ctx);
    }

    /// Resolves `number` in the numbering plan and routes there.
    fn route_number(&mut self, ctx: &mut Context<Self>, number: String) {
        let from_trunk = matches!(self.caller, Caller::Trunk { .. }) && !self.answered_locally;
        let allow_transit = matches!(
            self.caller,
            Caller::Trunk {
                allow_transit: true,
                ..
            }
        );
        self.services
            .router
            .send(Resolve {
                number,
                from_trunk,
                allow_transit,
            })
            .into_actor(self)
            .map(|route, act, ctx| match route {
                Ok(route) => act.route(ctx, route),
                Err(_) => act.refuse(ctx, 500, "Server Internal Error"),
            })
            .wait(ctx);
    }

    /// Carries out the time-based rule (interface 61) that applies to the dialled number.
    fn apply_rule(&mut self, ctx: &mut Context<Self>, action: RuleAction) {
        let callee = self.callee.clone();
        match action {
            RuleAction::BusyAndReject => self.refuse(ctx, 486, "Busy Here"),
            RuleAction::TransferCall(number) => self.route_number(ctx, number),
            RuleAction::CallerAreaTransfer(areas) => {
                let number = areas
                    .target_for(self.caller.number())
                    .map(str::to_string)
                    .unwrap_or(callee);
                self.route_number(ctx, number);
            }
            RuleAction::IvrSelect(id) => {
                self.services
                    .router
                    .send(GetIvr(id))
                    .into_actor(self)
                    .map(move |found, act, ctx| match found {
                        Ok(Some(definition)) => act.enter_ivr(ctx, id, definition),
                        _ => {
                            tracing::warn!(call_id = %act.id, ivr = id, "routing rule names no IVR");
                            act.refuse(ctx, 503, "Service Unavailable")
                        }
                    })
                    .wait(ctx);
            }
            RuleAction::PlayAndHangup(prompt) => self.play_and_hang_up(ctx, prompt),
            RuleAction::VoiceMail => self.enter_voicemail(ctx),
            RuleAction::IncomingCallDelay { secs } => {
                ctx.run_later(
                    std::time::Duration::from_secs(u64::from(secs)),
                    move |act, ctx| {
                        if act.phase == CallPhase::Routing {
                            act.route_number(ctx, callee);
                        }
                    },
                );
            }
            RuleAction::DialHttpDocking(url) => {
                let http = self.services.http.clone();
                let query = [
                    ("caller", self.caller.number().to_string()),
                    ("callee", callee.clone()),
                    ("id", self.id.clone()),
                ];
                tokio::spawn(async move {
                    let sent = http
                        .get(&url)
                        .query(&query)
                        .timeout(ROUTING_QUERY_TIMEOUT)
                        .send()
                        .await;
                    if let Err(e) = sent {
                        tracing::warn!("DIAL_HTTP_DOCKING request failed: {}", e.without_url());
                    }
                });
                self.route_number(ctx, callee);
            }
            RuleAction::OnAnswerToVm { after_secs } => {
                self.no_answer_fallback(ctx, after_secs, None);
                self.route_number(ctx, callee);
            }
            RuleAction::OnAnswerTransfer { number, after_secs } => {
                self.no_answer_fallback(ctx, after_secs, Some(number));
                self.route_number(ctx, callee);
            }
        }
    }

    /// Unanswered after `secs`: the caller goes to `number`, or to voicemail.
    fn no_answer_fallback(&mut self, ctx: &mut Context<Self>, secs: u32, number: Option<String>) {
        ctx.run_later(
            std::time::Duration::from_secs(u64::from(secs)),
            move |act, ctx| {
                if act.answered.is_some() || act.phase == CallPhase::Ended || act.ivr.is_some() {
                    return;
                }
                tracing::info!(call_id = %act.id, ?number, "no answer: rule fallback");
                if let Some(handle) = act.ring_timer.take() {
                    ctx.cancel_future(handle);
                }
                act.cancel_forks(None);
                let forks: Vec<_> = act.forks.drain().collect();
                act.withdrawn.extend(forks);
                if let Some(q) = act.queue.take() {
                    q.addr.do_send(Dequeue {
                        call_id: act.id.clone(),
                    });
                    for (_, ext) in q.offer {
                        ext.do_send(OfferEnded {
                            call_id: act.id.clone(),
                            outcome: OfferOutcome::Withdrawn,
                        });
                    }
                }
                act.step(CallInput::Dequeued);
                match number {
                    Some(number) => act.route_number(ctx, number),
                    None => act.enter_voicemail(ctx),
                }
            },
        );
    }

    /// Voicemail: the built-in one-node menu records the caller.
    fn enter_voicemail(&mut self, ctx: &mut Context<Self>) {
        match crate::ivr::IvrDefinition::parse(VOICEMAIL_MENU) {
            Ok(definition) => self.enter_ivr(ctx, 0, std::sync::Arc::new(definition)),
            Err(e) => {
                tracing::error!("built-in voicemail menu: {e}");
                self.refuse(ctx, 503, "Service Unavailable")
            }
        }
    }

    /// PLAY_AND_HANGUP: answers, plays the prompt once, hangs up.
    fn play_and_hang_up(&mut self, ctx: &mut Context<Self>, prompt: RulePrompt) {
        if let Some(handle) = self.ring_timer.take() {
            ctx.cancel_future(handle);
        }
        if !self.answered_locally && self.answer_locally(ctx).is_none() {
            return;
        }
        let storage = self.services.settings.storage_dir.clone();
        let tts = self.services.tts.clone();
        async move {
            let file = match prompt {
                RulePrompt::Tts(text) => {
                    return match tts {
                        Some(tts) => tts.speak(&text).await.map_err(|e| e.to_string()),
                        None => Err("TTS is off".to_string()),
                    }
                }
                RulePrompt::Tone(id) => storage.join("tones").join(format!("{id}.wav")),
                RulePrompt::File(path) => storage.join(path),
            };
            tokio::task::spawn_blocking(move || crate::media::wav::load_prompt_shared(&file))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        }
        .into_actor(self)
        .map(|samples, act, ctx| {
            let played = match (samples, &act.media) {
                (Ok(samples), Some(media)) => media
                    .a
                    .play(Playback::new(RULE_PROMPT_PLAYBACK, Source::prompt(samples)))
                    .is_ok(),
                (Err(e), _) => {
                    tracing::warn!(call_id = %act.id, "PLAY_AND_HANGUP prompt: {e}");
                    false
                }
                _ => false,
            };
            act.hang_up_after_prompt = played;
            if !played {
                act.hungup.get_or_insert(EndedBy::System);
                if let Some(a) = &act.caller_leg {
                    a.do_send(Hangup);
                }
                act.end(ctx);
            }
        })
        .wait(ctx);
    }

    fn route(&mut self, ctx: &mut Context<Self>, route: Route) {
        if self.phase == CallPhase::Ended {
            return;
        }
        match route {
            Route::Refuse { status, reason } => self.refuse(ctx, status, reason),
            Route::Trunk { name, dest } => {
                if matches!(self.caller, Caller::Extension { .. }) {
                    self.direction = Direction::Outgoing;
                }
                self.trunk_out = Some(name);
                let uri = SipUri::sip(
                    Some(&self.callee),
                    &dest.ip().to_string(),
                    Some(dest.port()),
                );
                self.fork(ctx, uri, dest, Transport::Udp, None);
                if self.forks.is_empty() {
                    self.refuse(ctx, 500, "Server Internal Error");
                }
            }
            Route::Gateway { name, gateway } => {
                if matches!(self.caller, Caller::Extension { .. }) {
                    self.direction = Direction::Outgoing;
                }
                self.trunk_out = Some(name);
                gateway
                    .send(GetBindings)
                    .into_actor(self)
                    .map(|bindings, act, ctx| {
                        for binding in bindings.unwrap_or_default() {
                            let uri = SipUri::sip(
                                Some(&act.callee),
                                binding.uri.host_unbracketed(),
                                binding.uri.port,
                            );
                            act.fork(ctx, uri, binding.dest, binding.transport.clone(), None);
                        }
                        if act.forks.is_empty() {
                            act.refuse(ctx, 503, "Service Unavailable");
                        }
                    })
                    .wait(ctx);
            }
            Route::Extension { number, ext } => {
                self.ring_extensions(ctx, vec![(number, ext)]);
            }
            Route::Group { number, queue } => {
                if let Some(handle) = self.ring_timer.take() {
                    ctx.cancel_future(handle);
                }
                self.group = Some(number.clone());
                self.enter_queue(ctx, number, queue);
            }
            Route::Conference { number, room } => self.enter_conference(ctx, number, room),
            Route::Ivr { id, definition } => self.enter_ivr(ctx, id, definition),
        }
    }

    /// Answers the caller itself (the first codec of its offer), for a room or a queue.
    /// Returns the caller's media endpoint, or refuses the call.
    fn answer_locally(&mut self, ctx: &mut Context<Self>) -> Option<EndpointId> {
        let Some(offer) = &self.caller_sdp else {
            self.refuse(ctx, 488, "Not Acceptable Here");
            return None;
        };
        let (codecs, events) = sdp::offered_codecs(offer, &SWITCH_CODECS);
        let Some(codec) = codecs.first().copied() else {
            self.refuse(ctx, 488, "Not Acceptable Here");
            return None;
        };
        self.codec = Some(codec);
        let Some(answer) = self.caller_answer() else {
            self.refuse(ctx, 488, "Not Acceptable Here");
            return None;
        };
        let Some(media) = &self.media else {
            self.refuse(ctx, 503, "Service Unavailable");
            return None;
        };
        let _ = media.a.set_codec(MediaCodec {
            law: law_of(&codec),
            dtmf_pt: events,
        });
        // The switch decodes this caller's audio (room mix, IVR): listening for keys
        // sent as tones costs little and serves gateways without RFC 4733.
        let _ = media.a.set_inband_dtmf(true);
        let _ = media
            .a
            .arm_timeout(Some(self.services.settings.rtp_timeout));
        let endpoint = media.a.id();
        if let Some(a) = &self.caller_leg {
            a.do_send(Answer { sdp: answer });
        }
        self.answered_locally = true;
        Some(endpoint)
    }

    /// Answers the caller itself and hands its media endpoint to the room.
    fn enter_conference(
        &mut self,
        ctx: &mut Context<Self>,
        number: String,
        room: Addr<Conference>,
    ) {
        let Some(endpoint) = self.answer_locally(ctx) else {
            return;
        };
        self.step(CallInput::Answered);
        let now = now_ms();
        self.ring_ms = Some(now);
        self.pickup_ms = Some(now);
        self.callee = number;
        self.publish(CallState::Talking, &self.id, None);
        room.send(Admit {
            call_id: self.id.clone(),
            number: self.caller.number().to_string(),
            endpoint,
            call: ctx.address().recipient(),
        })
        .into_actor(self)
        .map(|admitted, act, ctx| {
            if let Err(e) = admitted
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
            {
                tracing::warn!(call_id = %act.id, "conference refused the call: {e}");
                act.hungup.get_or_insert(EndedBy::System);
                if let Some(a) = &act.caller_leg {
                    a.do_send(Hangup);
                }
                act.end(ctx);
            }
        })
        .wait(ctx);
        self.conference = Some(room);
        self.to_conference = true;
    }

    /// Answers the caller and runs IVR menu `id` on it.
    fn enter_ivr(
        &mut self,
        ctx: &mut Context<Self>,
        id: i32,
        definition: std::sync::Arc<crate::ivr::IvrDefinition>,
    ) {
        if let Some(handle) = self.ring_timer.take() {
            ctx.cancel_future(handle);
        }
        if !self.answered_locally && self.answer_locally(ctx).is_none() {
            return;
        }
        let Some(endpoint) = self.media.as_ref().map(|m| m.a.id()) else {
            return self.refuse(ctx, 503, "Service Unavailable");
        };
        tracing::debug!(call_id = %self.id, ivr = id, "IVR");
        let facts = crate::ivr::IvrFacts {
            caller: self.caller.number().to_string(),
            callee: self.callee.clone(),
            callid: self.id.clone(),
            vars: Default::default(),
        };
        let ivr = Ivr::new(
            definition,
            facts,
            ctx.address().recipient(),
            endpoint,
            self.services.clone(),
        )
        .start();
        self.ivr = Some(ivr);
    }

    /// The IVR sent the caller on: a group's queue, an extension, an outside number.
    fn ivr_transfer(&mut self, ctx: &mut Context<Self>, target: TransferTarget) {
        self.ivr = None;
        let number = match &target {
            TransferTarget::Ext(n) | TransferTarget::Group(n) | TransferTarget::Number(n) => {
                n.clone()
            }
        };
        self.services
            .router
            .send(Resolve {
                number,
                from_trunk: false,
                allow_transit: false,
            })
            .into_actor(self)
            .map(|route, act, ctx| match route {
                Ok(route @ Route::Group { .. }) => act.route(ctx, route),
                Ok(route @ (Route::Extension { .. } | Route::Trunk { .. } | Route::Gateway { .. })) => {
                    // Ringing an extension or a line: the caller gets the ring timeout.
                    let ring_timeout = act.services.settings.ring_timeout;
                    act.ring_timer = Some(ctx.run_later(ring_timeout, |act, ctx| {
                        if matches!(act.phase, CallPhase::Routing | CallPhase::Ringing) {
                            act.cancel_forks(None);
                            act.refuse(ctx, 408, "Request Timeout");
                        }
                    }));
                    act.route(ctx, route)
                }
                _ => {
                    tracing::warn!(call_id = %act.id, "IVR transfer target not reachable: hanging up");
                    act.refuse(ctx, 404, "Not Found")
                }
            })
            .wait(ctx);
    }

    /// Answers the caller, plays it music and puts it in the group's queue.
    fn enter_queue(&mut self, ctx: &mut Context<Self>, number: String, queue: Addr<Queue>) {
        if !self.answered_locally && self.answer_locally(ctx).is_none() {
            return;
        }
        if !self.step(CallInput::Enqueued) {
            return;
        }
        tracing::debug!(call_id = %self.id, group = %number, "caller queued");
        self.play_music(true);
        let previous = self.queue.take();
        self.queue = Some(QueueCall {
            addr: queue.clone(),
            enqueued_ms: previous.as_ref().map_or_else(now_ms, |q| q.enqueued_ms),
            left_ms: None,
            offer: Vec::new(),
            offer_timer: None,
            wrap_up_seconds: 0,
            outcome: None,
            agent: None,
            idle_since_ms: Vec::new(),
            offered_ms: 0,
            standby_secs: 0,
        });
        self.publish(CallState::Queued, &self.id, None);
        let caller = self.caller.number().to_string();
        let vip_level = self.services.lists.snapshot().vip_level(&caller);
        let me = ctx.address().recipient();
        let call_id = self.id.clone();
        async move {
            queue
                .send(Enqueue {
                    call_id,
                    caller,
                    call: me,
                    vip_level,
                    queue_priority: 0,
                })
                .await
        }
        .into_actor(self)
        .map(|position, act, ctx| {
            tracing::debug!(call_id = %act.id, ?position, "queued");
            if let Ok(position) = position {
                act.announce_position(ctx, position);
            }
        })
        .spawn(ctx);
    }

    /// A caller who is not next hears its place in the queue (TTS), then the music.
    fn announce_position(&mut self, ctx: &mut Context<Self>, position: usize) {
        let (Some(tts), Some(music)) = (
            self.services.tts.clone(),
            self.services.settings.music_on_hold.clone(),
        ) else {
            return;
        };
        if position < 2 {
            return;
        }
        // Said from cached phrases and number words: a backlog of callers, each at a
        // different position, must not run the synthesizer once per caller.
        let mut phrases = vec!["You are number"];
        phrases.extend(crate::media::say::number_words(position as u64));
        phrases.push("in the queue. Please hold.");
        async move {
            let mut speech = Vec::with_capacity(phrases.len());
            for phrase in phrases {
                speech.push(tts.speak(phrase).await?);
            }
            Ok::<_, crate::media::tts::TtsError>(speech)
        }
        .into_actor(self)
        .map(move |speech, act, _| {
            let (Ok(speech), Some(media)) = (speech, &act.media) else {
                return;
            };
            if act.phase == CallPhase::Queued {
                let mut items: Vec<Source> = speech.into_iter().map(Source::prompt).collect();
                items.push(Source::looping(music));
                let source = Source::playlist(items, false);
                let _ = media.a.play(Playback::new(MUSIC_ON_HOLD_PLAYBACK, source));
            }
        })
        .spawn(ctx);
    }

    /// Music on hold to the caller (on) or not (off: bridged audio flows again).
    fn play_music(&self, on: bool) {
        let Some(media) = &self.media else {
            return;
        };
        if !on {
            let _ = media.a.stop_playback();
            return;
        }
        if let Some(music) = self.services.settings.music_on_hold.clone() {
            let _ = media.a.play(Playback::new(
                MUSIC_ON_HOLD_PLAYBACK,
                Source::looping(music),
            ));
        }
    }

    /// The queue offers this call to `agents`: ring them (with the codec the caller was
    /// answered with) for at most `ring_timeout`.
    fn offer_to_agents(
        &mut self,
        ctx: &mut Context<Self>,
        agents: Vec<(String, Addr<Extension>)>,
        ring_timeout: std::time::Duration,
        wrap_up_seconds: u32,
    ) {
        let waiting = self.phase == CallPhase::Queued && self.answered.is_none();
        let Some(q) = self.queue.as_mut().filter(|_| waiting) else {
            for (_, ext) in agents {
                ext.do_send(OfferEnded {
                    call_id: self.id.clone(),
                    outcome: OfferOutcome::Withdrawn,
                });
            }
            return;
        };
        q.offer = agents.clone();
        q.wrap_up_seconds = wrap_up_seconds;
        q.offer_timer = Some(ctx.run_later(ring_timeout, |act, ctx| act.offer_failed(ctx, true)));
        self.best_failure = None;
        let lookups = agents.into_iter().map(|(number, ext)| {
            let query = ext.send(GetBindings);
            async move { (number, ext, query.await.unwrap_or_default()) }
        });
        futures::future::join_all(lookups)
            .into_actor(self)
            .map(|found, act, ctx| {
                if act.phase != CallPhase::Queued || act.answered.is_some() {
                    return;
                }
                for (number, ext, bindings) in found {
                    for binding in bindings {
                        act.fork(
                            ctx,
                            binding.uri.clone(),
                            binding.dest,
                            binding.transport.clone(),
                            Some((number.clone(), ext.clone())),
                        );
                    }
                }
                if act.forks.is_empty() {
                    act.offer_failed(ctx, false);
                }
            })
            .wait(ctx);
    }

    /// An agent answered the queued call `leg`: the queue and the agents hear of it.
    fn agent_answered(&mut self, ctx: &mut Context<Self>, leg: LegId) {
        let winner = self
            .forks
            .get(&leg)
            .and_then(|f| f.extension.as_ref())
            .map(|(n, _)| n.clone());
        let Some(q) = self.queue.as_mut() else {
            return;
        };
        if let Some(t) = q.offer_timer.take() {
            ctx.cancel_future(t);
        }
        q.left_ms = Some(now_ms());
        // Answered after all (an overflow to an extension): not a queue timeout.
        q.outcome = None;
        for (number, ext) in q.offer.drain(..) {
            let won = Some(&number) == winner.as_ref();
            if won {
                q.agent = Some(ext.clone());
                if let Some((_, idle)) = q.idle_since_ms.iter().find(|(n, _)| *n == number) {
                    let secs = (q.offered_ms - idle).max(0) / 1_000;
                    q.standby_secs = i32::try_from(secs).unwrap_or(i32::MAX);
                }
            }
            ext.do_send(OfferEnded {
                call_id: self.id.clone(),
                outcome: if won {
                    OfferOutcome::Answered
                } else {
                    OfferOutcome::Withdrawn
                },
            });
        }
        q.addr.do_send(OfferResult {
            call_id: self.id.clone(),
            answered_by: winner,
        });
    }

    /// Nobody took the offered call (rang out, refused, unreachable): the agents are
    /// released (a ring-out counts as missed) and the caller waits again.
    fn offer_failed(&mut self, ctx: &mut Context<Self>, rang_out: bool) {
        if self.answered.is_some() || self.phase == CallPhase::Ended {
            return;
        }
        let Some(q) = self.queue.as_mut() else {
            return;
        };
        if let Some(t) = q.offer_timer.take() {
            ctx.cancel_future(t);
        }
        let agents = std::mem::take(&mut q.offer);
        let addr = q.addr.clone();
        self.cancel_forks(None);
        // Cancelled, but a 200 may still cross the CANCEL: remember them to BYE it.
        let forks: Vec<_> = self.forks.drain().collect();
        self.withdrawn.extend(forks);
        for (_, ext) in &agents {
            ext.do_send(PhoneReleased {
                call_id: self.id.clone(),
            });
            ext.do_send(OfferEnded {
                call_id: self.id.clone(),
                outcome: if rang_out {
                    OfferOutcome::Missed
                } else {
                    OfferOutcome::Withdrawn
                },
            });
        }
        self.step(CallInput::Requeued);
        addr.do_send(OfferResult {
            call_id: self.id.clone(),
            answered_by: None,
        });
        let _ = ctx;
    }

    /// Leaves the queue for the overflow target, or plays a goodbye and hangs up.
    fn queue_timed_out(&mut self, ctx: &mut Context<Self>, overflow: Option<String>) {
        if self.phase != CallPhase::Queued && self.phase != CallPhase::Ringing {
            return;
        }
        if self.phase == CallPhase::Ringing {
            self.offer_failed(ctx, false);
        }
        if let Some(q) = self.queue.as_mut() {
            q.outcome = Some("QUEUE_TIMEOUT");
            q.left_ms = Some(now_ms());
        }
        let target = overflow.and_then(|t| t.parse::<entities::Target>().ok());
        let number = match target {
            Some(entities::Target::Group(n) | entities::Target::Ext(n)) => Some(n),
            Some(entities::Target::Ivr(id)) => {
                // An IVR: typically a voicemail menu.
                self.services
                    .router
                    .send(GetIvr(id))
                    .into_actor(self)
                    .map(move |found, act, ctx| match found {
                        Ok(Some(definition)) => act.enter_ivr(ctx, id, definition),
                        _ => act.play_and_hang_up(ctx, RulePrompt::Tts(QUEUE_GOODBYE.into())),
                    })
                    .wait(ctx);
                return;
            }
            _ => None,
        };
        let Some(number) = number else {
            tracing::info!(call_id = %self.id, "queue timeout: goodbye");
            return self.play_and_hang_up(ctx, RulePrompt::Tts(QUEUE_GOODBYE.into()));
        };
        tracing::info!(call_id = %self.id, %number, "queue timeout: overflow");
        self.services
            .router
            .send(Resolve {
                number,
                from_trunk: false,
                allow_transit: false,
            })
            .into_actor(self)
            .map(|route, act, ctx| match route {
                Ok(Route::Group { number, queue }) => {
                    act.group = Some(number.clone());
                    act.enter_queue(ctx, number, queue);
                }
                Ok(Route::Extension { number, ext }) => {
                    // Ring the extension directly (the caller keeps its music meanwhile).
                    act.offer_to_agents(
                        ctx,
                        vec![(number, ext)],
                        act.services.settings.ring_timeout,
                        0,
                    );
                }
                _ => {
                    act.hungup.get_or_insert(EndedBy::System);
                    if let Some(a) = &act.caller_leg {
                        a.do_send(Hangup);
                    }
                    act.end(ctx);
                }
            })
            .wait(ctx);
    }

    fn ring_extensions(
        &mut self,
        ctx: &mut Context<Self>,
        extensions: Vec<(String, Addr<Extension>)>,
    ) {
        let lookups = extensions.into_iter().map(|(number, ext)| {
            let query = ext.send(GetBindings);
            async move { (number, ext, query.await.unwrap_or_default()) }
        });
        futures::future::join_all(lookups)
            .into_actor(self)
            .map(|found, act, ctx| {
                if act.phase == CallPhase::Ended {
                    return;
                }
                for (number, ext, bindings) in found {
                    for binding in bindings {
                        act.fork(
                            ctx,
                            binding.uri.clone(),
                            binding.dest,
                            binding.transport.clone(),
                            Some((number.clone(), ext.clone())),
                        );
                    }
                }
                if act.forks.is_empty() {
                    act.refuse(ctx, 480, "Temporarily Unavailable");
                }
            })
            .wait(ctx);
    }

    /// Starts a leg that calls `uri` at `dest` with our offer.
    fn fork(
        &mut self,
        ctx: &mut Context<Self>,
        uri: SipUri,
        dest: SocketAddr,
        transport: Transport,
        extension: Option<(String, Addr<Extension>)>,
    ) {
        let (Some(offer), Some(session)) = (&self.caller_sdp, self.callee_session.as_mut()) else {
            return;
        };
        let (mut codecs, events) = sdp::offered_codecs(offer, &SWITCH_CODECS);
        if self.answered_locally {
            // The caller was answered with one codec; the relay does not transcode.
            if let Some(codec) = self.codec {
                codecs = vec![codec];
            }
        }
        let direction = offer
            .first_audio()
            .map(|i| offer.media_direction(i))
            .unwrap_or(SdpDirection::SendRecv);
        let sdp_offer = session.offer_with_events(
            &codecs,
            events.unwrap_or(sdp::TELEPHONE_EVENT_PT),
            direction,
        );
        let host = self.services.endpoint.advertise().to_string();
        let from = NameAddr::new(SipUri::sip(Some(self.caller.number()), &host, None));
        let to_user = extension
            .as_ref()
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| self.callee.clone());
        let to = NameAddr::new(SipUri::sip(
            Some(&to_user),
            uri.host_unbracketed(),
            uri.port,
        ));
        let outgoing = Outgoing {
            request_uri: uri,
            dest,
            transport,
            from,
            to,
            max_forwards: self.max_forwards,
            sdp: Bytes::from(sdp_offer.render()),
        };
        let id = self.next_leg;
        self.next_leg += 1;
        match Leg::uac(
            id,
            ctx.address().recipient(),
            self.services.clone(),
            outgoing,
        ) {
            Ok(leg) => {
                let call_id = leg.call_id().to_string();
                let addr = leg.start();
                self.forks.insert(
                    id,
                    Fork {
                        leg: addr,
                        extension,
                        call_id,
                    },
                );
            }
            Err(e) => tracing::warn!(call_id = %self.id, "cannot start leg: {e}"),
        }
    }

    /// Hangs up every fork but `keep`.
    fn cancel_forks(&mut self, keep: Option<LegId>) {
        for (id, fork) in &self.forks {
            if Some(*id) != keep {
                fork.leg.do_send(Hangup);
            }
        }
    }

    /// The caller's SDP answered with `codec`.
    fn caller_answer(&mut self) -> Option<Bytes> {
        let (Some(offer), Some(session), Some(codec)) =
            (&self.caller_sdp, self.caller_session.as_mut(), self.codec)
        else {
            return None;
        };
        session
            .answer(offer, &[codec])
            .ok()
            .map(|(sdp, _)| Bytes::from(sdp.render()))
    }

    /// Learns the callee's media from its SDP; false if it is unusable.
    fn take_callee_sdp(&mut self, body: &Bytes) -> bool {
        let Some(answer) = std::str::from_utf8(body)
            .ok()
            .and_then(|t| Sdp::parse(t).ok())
        else {
            return false;
        };
        let Ok(neg) = sdp::read_answer(&answer, &SWITCH_CODECS) else {
            return false;
        };
        let Some(codec) = SWITCH_CODECS
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(&neg.name))
            .copied()
        else {
            return false;
        };
        self.codec = Some(codec);
        if let Some(media) = &self.media {
            let law = law_of(&codec);
            let _ = media.b.set_remote(neg.remote);
            let _ = media.b.set_codec(MediaCodec {
                law,
                dtmf_pt: neg.telephone_event_pt,
            });
            let caller_events = self
                .caller_sdp
                .as_ref()
                .and_then(|o| sdp::offered_codecs(o, &SWITCH_CODECS).1);
            let _ = media.a.set_codec(MediaCodec {
                law,
                dtmf_pt: caller_events,
            });
        }
        true
    }

    fn on_fork_event(&mut self, ctx: &mut Context<Self>, id: LegId, kind: LegEventKind) {
        if let Some(fork) = self.withdrawn.get(&id) {
            // A leg the call gave up on (an agent who rang out): an answer crossing the
            // CANCEL is ended at once and never taken for the call's answer.
            match kind {
                LegEventKind::Answered { .. } => fork.leg.do_send(Hangup),
                LegEventKind::Failed { .. } | LegEventKind::Gone | LegEventKind::HungUp { .. } => {
                    self.withdrawn.remove(&id);
                }
                _ => {}
            }
            return;
        }
        if !self.forks.contains_key(&id) {
            return;
        }
        match kind {
            LegEventKind::Ringing { status, sdp } => {
                if self.answered.is_some() {
                    return;
                }
                if self.step(CallInput::Alerted) && self.ring_ms.is_none() {
                    self.ring_ms = Some(now_ms());
                }
                let (call_id, ext) = match self.forks.get(&id) {
                    Some(f) => (f.call_id.clone(), f.extension.clone()),
                    None => return,
                };
                if let Some((number, addr)) = &ext {
                    addr.do_send(PhoneEngaged {
                        call_id: self.id.clone(),
                        outgoing: false,
                        remote: self.caller.number().to_string(),
                        pickup_ms: None,
                    });
                    self.publish(CallState::Ringing, &call_id, Some(number));
                } else {
                    self.publish(CallState::Ringing, &call_id, None);
                }
                if self.answered_locally {
                    // The caller hears music, not the agent's ringback.
                    return;
                }
                let early = match sdp {
                    Some(body) if !self.early_media_sent && self.take_callee_sdp(&body) => {
                        self.caller_answer()
                    }
                    _ => None,
                };
                if let Some(a) = &self.caller_leg {
                    match early {
                        Some(sdp) => {
                            self.early_media_sent = true;
                            a.do_send(Ring {
                                status: 183,
                                sdp: Some(sdp),
                            });
                        }
                        None if status == 180 || !self.early_media_sent => a.do_send(Ring {
                            status: 180,
                            sdp: None,
                        }),
                        None => {}
                    }
                }
            }
            LegEventKind::Answered { sdp } => {
                if self.answered.is_some() || self.phase == CallPhase::Ended {
                    if let Some(f) = self.forks.get(&id) {
                        f.leg.do_send(Hangup);
                    }
                    return;
                }
                let usable = match &sdp {
                    Some(body) => self.take_callee_sdp(body),
                    None => self.early_media_sent,
                };
                let answer = if self.answered_locally {
                    usable.then(Bytes::new)
                } else {
                    usable.then(|| self.caller_answer()).flatten()
                };
                let Some(answer) = answer else {
                    if let Some(f) = self.forks.get(&id) {
                        f.leg.do_send(Hangup);
                    }
                    self.cancel_forks(None);
                    return self.refuse(ctx, 488, "Not Acceptable Here");
                };
                self.answered = Some(id);
                self.cancel_forks(Some(id));
                if let Some(handle) = self.ring_timer.take() {
                    ctx.cancel_future(handle);
                }
                self.step(CallInput::Answered);
                let now = now_ms();
                self.pickup_ms = Some(now);
                if self.ring_ms.is_none() {
                    self.ring_ms = Some(now);
                }
                if self.answered_locally {
                    self.play_music(false);
                    self.agent_answered(ctx, id);
                } else if let Some(a) = &self.caller_leg {
                    a.do_send(Answer { sdp: answer });
                }
                if let Some(media) = &self.media {
                    let timeout = Some(self.services.settings.rtp_timeout);
                    let _ = media.a.arm_timeout(timeout);
                    let _ = media.b.arm_timeout(timeout);
                }
                self.start_recording(ctx);
                let (call_id, ext) = match self.forks.get(&id) {
                    Some(f) => (f.call_id.clone(), f.extension.clone()),
                    None => (String::new(), None),
                };
                self.peer_call_id = call_id.clone();
                if let Some((number, addr)) = &ext {
                    addr.do_send(PhoneEngaged {
                        call_id: self.id.clone(),
                        outgoing: false,
                        remote: self.caller.number().to_string(),
                        pickup_ms: Some(now),
                    });
                    self.callee = number.clone();
                }
                if let Caller::Extension { ext, .. } = &self.caller {
                    ext.do_send(PhoneEngaged {
                        call_id: self.id.clone(),
                        outgoing: true,
                        remote: self.callee.clone(),
                        pickup_ms: Some(now),
                    });
                }
                self.publish(CallState::Talking, &self.id, None);
            }
            LegEventKind::Failed { status, reason } => {
                if let Some(fork) = self.forks.remove(&id) {
                    if let Some((_, ext)) = fork.extension {
                        // This phone is free again unless another fork still rings it.
                        let still = self
                            .forks
                            .values()
                            .any(|f| f.extension.as_ref().is_some_and(|(_, e)| *e == ext));
                        if !still {
                            ext.do_send(PhoneReleased {
                                call_id: self.id.clone(),
                            });
                        }
                    }
                }
                if better_failure(status, self.best_failure.as_ref().map(|f| f.0)) {
                    self.best_failure = Some((status, reason));
                }
                if self.forks.is_empty() && self.queue.is_some() && self.answered.is_none() {
                    // The agent's phone refused the queue call: the caller waits on.
                    return self.offer_failed(ctx, true);
                }
                if self.forks.is_empty()
                    && self.answered.is_none()
                    && self.phase != CallPhase::Ended
                {
                    let (status, reason) = self
                        .best_failure
                        .clone()
                        .unwrap_or((480, "Temporarily Unavailable".into()));
                    // 6xx and the common 4xx go back as they are; others as 480.
                    let status = if (400..700).contains(&status) {
                        status
                    } else {
                        480
                    };
                    self.hungup = Some(EndedBy::Callee);
                    self.refuse(ctx, status, &reason);
                }
            }
            LegEventKind::HungUp { cause } => {
                if Some(id) == self.answered {
                    self.hungup.get_or_insert(match cause {
                        EndCause::Bye => EndedBy::Callee,
                        EndCause::Timeout => EndedBy::System,
                    });
                    if let Some(a) = &self.caller_leg {
                        a.do_send(Hangup);
                    }
                    self.end(ctx);
                }
            }
            LegEventKind::Reoffer { sdp } => self.pass_reoffer(id, &sdp),
            LegEventKind::ReofferAnswered { result } => self.pass_reoffer_answer(id, result),
            LegEventKind::Canceled => {}
            LegEventKind::Dtmf { dtmf } => {
                if Some(id) == self.answered {
                    self.on_dtmf(Side::B, dtmf);
                }
            }
            LegEventKind::Gone => {
                self.forks.remove(&id);
            }
        }
    }

    fn on_caller_event(&mut self, ctx: &mut Context<Self>, kind: LegEventKind) {
        match kind {
            LegEventKind::Canceled => {
                self.hungup = Some(EndedBy::Caller);
                self.cancel_forks(None);
                self.end(ctx);
            }
            LegEventKind::HungUp { cause } => {
                self.hungup.get_or_insert(match cause {
                    EndCause::Bye => EndedBy::Caller,
                    EndCause::Timeout => EndedBy::System,
                });
                self.cancel_forks(None);
                if let Some(b) = self.answered.and_then(|id| self.forks.get(&id)) {
                    b.leg.do_send(Hangup);
                }
                self.end(ctx);
            }
            LegEventKind::Reoffer { sdp } => self.pass_reoffer(CALLER_LEG, &sdp),
            LegEventKind::ReofferAnswered { result } => {
                self.pass_reoffer_answer(CALLER_LEG, result)
            }
            LegEventKind::Dtmf { dtmf } => self.on_dtmf(Side::A, dtmf),
            LegEventKind::Gone if self.phase != CallPhase::Ended => {
                self.hungup.get_or_insert(EndedBy::Caller);
                self.cancel_forks(None);
                self.end(ctx);
            }
            _ => {}
        }
    }

    /// A re-INVITE from one side: our rewrite of its SDP goes to the other side.
    fn pass_reoffer(&mut self, from: LegId, body: &Bytes) {
        let other = if from == CALLER_LEG {
            self.answered
                .and_then(|id| self.forks.get(&id))
                .map(|f| f.leg.clone())
        } else {
            self.caller_leg.clone()
        };
        let parsed = std::str::from_utf8(body)
            .ok()
            .and_then(|t| Sdp::parse(t).ok());
        let (Some(other), Some(mut offer)) = (other, parsed) else {
            self.answer_reoffer(from, Err(488));
            return;
        };
        // Only what the switch relays, as in the first offer (PCMU/PCMA, 8 kHz events).
        if !sdp::retain_codecs(&mut offer, &SWITCH_CODECS) {
            self.answer_reoffer(from, Err(488));
            return;
        }
        if let Some(media) = &self.media {
            let remote = offer.first_audio().and_then(|i| offer.media_addr(i));
            if remote.is_some() {
                let _ = media.side(Side::of_leg(from)).set_remote(remote);
            }
        }
        let session = if from == CALLER_LEG {
            self.callee_session.as_mut()
        } else {
            self.caller_session.as_mut()
        };
        let Some(session) = session else {
            self.answer_reoffer(from, Err(500));
            return;
        };
        let rewritten = session.rewrite(&offer);
        self.reoffer_from = Some(from);
        other.do_send(Reoffer {
            sdp: Bytes::from(rewritten.render()),
        });
    }

    fn pass_reoffer_answer(&mut self, answered_by: LegId, result: Result<Bytes, u16>) {
        let Some(from) = self.reoffer_from.take() else {
            return;
        };
        let result = result.and_then(|body| {
            let answer = std::str::from_utf8(&body)
                .ok()
                .and_then(|t| Sdp::parse(t).ok())
                .ok_or(488u16)?;
            let side = Side::of_leg(answered_by);
            let other = match side {
                Side::A => Side::B,
                Side::B => Side::A,
            };
            let dir = answer
                .first_audio()
                .map(|i| answer.media_direction(i))
                .unwrap_or(SdpDirection::SendRecv);
            if let Some(media) = &self.media {
                let remote = answer.first_audio().and_then(|i| answer.media_addr(i));
                if remote.is_some() {
                    let _ = media.side(side).set_remote(remote);
                }
                // Hold: a side that is not to send is not listened to, which also
                // suspends its RTP timeout (an a=inactive hold carries no RTP at all).
                let _ = media.side(side).set_receiving(dir.sends());
                let _ = media.side(other).set_receiving(dir.receives());
            }
            self.update_music_on_hold(side, dir);
            let session = if from == CALLER_LEG {
                self.caller_session.as_mut()
            } else {
                self.callee_session.as_mut()
            };
            let session = session.ok_or(500u16)?;
            Ok(Bytes::from(session.rewrite(&answer).render()))
        });
        self.answer_reoffer(from, result);
    }

    fn answer_reoffer(&self, leg: LegId, result: Result<Bytes, u16>) {
        let target = if leg == CALLER_LEG {
            self.caller_leg.clone()
        } else {
            self.forks.get(&leg).map(|f| f.leg.clone())
        };
        if let Some(target) = target {
            target.do_send(AnswerReoffer { result });
        }
    }

    /// Ends the call once: log row, events, phones released, relay stopped.
    fn end(&mut self, ctx: &mut Context<Self>) {
        if !self.step(CallInput::Ended) {
            return;
        }
        let end = now_ms();
        let answered = self.pickup_ms.is_some();
        let state = if answered {
            CallState::Hungup
        } else {
            CallState::Canceled
        };
        self.publish(state, &self.id, None);
        if let Caller::Extension { ext, .. } = &self.caller {
            ext.do_send(PhoneReleased {
                call_id: self.id.clone(),
            });
        }
        for fork in self.forks.values() {
            if let Some((_, ext)) = &fork.extension {
                ext.do_send(PhoneReleased {
                    call_id: self.id.clone(),
                });
            }
        }
        if let Some(q) = self.queue.as_mut() {
            if q.left_ms.is_none() {
                // Hung up while waiting (or while an agent rang).
                q.left_ms = Some(end);
                q.outcome.get_or_insert("QUEUE_HUNGUP");
                q.addr.do_send(Dequeue {
                    call_id: self.id.clone(),
                });
            }
            for (_, ext) in q.offer.drain(..) {
                ext.do_send(OfferEnded {
                    call_id: self.id.clone(),
                    outcome: OfferOutcome::Withdrawn,
                });
            }
            if let Some(agent) = &q.agent {
                agent.do_send(StartWrapUp {
                    seconds: q.wrap_up_seconds,
                });
            }
        }
        if let Some(ivr) = self.ivr.take() {
            ivr.do_send(IvrInput(IvrEvent::CallerHungUp));
        }
        if let Some(room) = self.conference.take() {
            room.do_send(Depart {
                call_id: self.id.clone(),
            });
        }
        if let Some(mut media) = self.media.take() {
            // The recording first: it is finished before its endpoints close.
            if let Some(recording) = media.recording.take() {
                recording.stop();
            }
        }
        self.services
            .call_log
            .do_send(WriteCallLog(self.log_row(end)));
        self.services.router.do_send(CallEnded {
            call_id: self.id.clone(),
        });
        ctx.stop();
    }

    /// A key pressed on `side`'s phone: published once; a key sent as SIP INFO is also
    /// passed on to the other phone as RFC 4733 (keys in RTP already flow through).
    fn on_dtmf(&mut self, side: Side, dtmf: DtmfReceived) {
        let (party, number, leg_call_id) = match side {
            Side::A => (
                Party::Caller,
                self.caller.number().to_string(),
                self.id.clone(),
            ),
            Side::B => (
                Party::Callee,
                self.callee.clone(),
                self.peer_call_id.clone(),
            ),
        };
        tracing::debug!(call_id = %self.id, ?party, digit = %dtmf.digit, "DTMF");
        if let (Some(ivr), Side::A) = (&self.ivr, side) {
            ivr.do_send(IvrInput(IvrEvent::Dtmf(dtmf.digit)));
        }
        if let Some(room) = &self.conference {
            room.do_send(MemberDtmf {
                call_id: self.id.clone(),
                digit: dtmf.digit,
            });
        }
        if dtmf.source == DtmfSource::SipInfo && self.phase == CallPhase::Talking {
            if let Some(media) = &self.media {
                let other = match side {
                    Side::A => &media.b,
                    Side::B => &media.a,
                };
                let _ = other.send_dtmf(&dtmf.digit.to_string());
            }
        }
        self.services
            .hub
            .do_send(Publish(HubEvent::DtmfReceived(LegDtmf {
                call_id: self.id.clone(),
                leg_call_id,
                party,
                number,
                digit: dtmf.digit.to_string(),
                source: match dtmf.source {
                    DtmfSource::Rfc4733 => "rfc4733",
                    DtmfSource::InBand => "inband",
                    DtmfSource::SipInfo => "info",
                },
                duration_ms: dtmf.duration_ms,
                at: now_ms(),
            })));
    }

    /// Records the answered call (caller left, callee right) when recording is on.
    fn start_recording(&mut self, ctx: &mut Context<Self>) {
        let settings = &self.services.settings;
        let Some(media) = self.media.as_mut() else {
            return;
        };
        let callee_ext = self
            .answered
            .and_then(|id| self.forks.get(&id))
            .and_then(|f| f.extension.as_ref())
            .map(|(n, _)| n.as_str());
        let caller_ext = match &self.caller {
            Caller::Extension { number, .. } => Some(number.as_str()),
            Caller::Trunk { .. } => None,
        };
        let parties: Vec<&str> = [callee_ext, caller_ext].into_iter().flatten().collect();
        let record = self
            .services
            .recording_overrides
            .read()
            .map(|o| o.decide(&parties, self.group.as_deref(), settings.recording))
            .unwrap_or(settings.recording);
        if !record || media.recording.is_some() {
            return;
        }
        let day = chrono::Local::now().format("%Y-%m-%d").to_string();
        let dir = settings.records_dir.join(day);
        let path = dir.join(format!("{}.wav", file_safe(&self.id)));
        let writer = std::fs::create_dir_all(&dir)
            .map_err(|e| e.to_string())
            .and_then(|()| WavWriter::create_stereo(&path).map_err(|e| e.to_string()));
        let writer = match writer {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(call_id = %self.id, "cannot record: {e}");
                return;
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        match self
            .services
            .media
            .record(writer, Some(&media.a), Some(&media.b), tx)
        {
            Ok(recording) => {
                media.recording = Some(recording);
                self.record_path = Some(path.display().to_string());
                let me = ctx.address();
                tokio::spawn(async move {
                    if let Some(event) = rx.recv().await {
                        if me.connected() {
                            me.do_send(MediaNotice(event));
                        } else if let MediaEvent::RecordingFinished { result: Err(e), .. } = event {
                            tracing::warn!("recording failed: {e}");
                        }
                    }
                });
            }
            Err(e) => tracing::warn!(call_id = %self.id, "cannot record: {e}"),
        }
    }

    /// Music on hold for the party put on hold (it answered the hold re-INVITE with
    /// `recvonly`); stopped when it is taken off hold.
    fn update_music_on_hold(&mut self, answerer: Side, dir: SdpDirection) {
        let Some(music) = self.services.settings.music_on_hold.clone() else {
            return;
        };
        let Some(media) = self.media.as_mut() else {
            return;
        };
        let held = dir == SdpDirection::RecvOnly;
        match (held, media.music_on_hold) {
            (true, None) => {
                let _ = media.side(answerer).play(Playback::new(
                    MUSIC_ON_HOLD_PLAYBACK,
                    Source::looping(music),
                ));
                media.music_on_hold = Some(answerer);
            }
            (false, Some(side)) => {
                let _ = media.side(side).stop_playback();
                media.music_on_hold = None;
            }
            _ => {}
        }
    }

    fn log_row(&self, end: i64) -> calllog::Model {
        let caller = self.caller.number().to_string();
        let secs = |from: i64, to: i64| {
            i32::try_from(((to - from).max(0) + 500) / 1000).unwrap_or(i32::MAX)
        };
        let ivr_business = self
            .ivr_record
            .as_ref()
            .and_then(|r| r.business())
            .map(|b| b.as_str());
        let queue_outcome = self.queue.as_ref().and_then(|q| q.outcome).or(ivr_business);
        let (business, call_type) = match (&self.caller, &self.trunk_out) {
            (Caller::Trunk { .. }, _) if queue_outcome.is_some() => {
                (queue_outcome.unwrap_or_default(), call_type_of(&caller))
            }
            (Caller::Extension { .. }, _) if queue_outcome.is_some() => {
                (queue_outcome.unwrap_or_default(), "CENTREX_CALL")
            }
            (Caller::Trunk { .. }, _) if self.to_conference => {
                ("CONFERENCE", call_type_of(&caller))
            }
            (Caller::Extension { .. }, _) if self.to_conference => ("CONFERENCE", "CENTREX_CALL"),
            (Caller::Trunk { .. }, _) => ("INCOMING", call_type_of(&caller)),
            (Caller::Extension { .. }, Some(_)) => ("OUTGOING", call_type_of(&self.callee)),
            (Caller::Extension { .. }, None) => ("CENTREX_CALL", "CENTREX_CALL"),
        };
        let fxonum = match (&self.caller, &self.trunk_out) {
            (Caller::Trunk { name, .. }, _) => name.clone(),
            (_, Some(name)) => name.clone(),
            _ => String::new(),
        };
        calllog::Model {
            caller,
            callee: self.callee.clone(),
            channel: self.channel.clone(),
            begin_time: self.begin_ms,
            duration: self.pickup_ms.map(|p| secs(p, end)).unwrap_or(0),
            state: if self.pickup_ms.is_some() {
                "STATE_RECEIVED".into()
            } else {
                "STATE_FAILED".into()
            },
            call_type: call_type.into(),
            callid: self.id.clone(),
            business: business.into(),
            fxonum,
            ring_time: self.ring_ms.unwrap_or(0),
            ring_duration: self
                .ring_ms
                .map(|r| secs(r, self.pickup_ms.unwrap_or(end)))
                .unwrap_or(0),
            pickup_time: self.pickup_ms.unwrap_or(0),
            hungupside: self.hungup.unwrap_or(EndedBy::System).as_str().into(),
            peercallid: self.peer_call_id.clone(),
            record_voice: self.record_path.clone().unwrap_or_default(),
            accessnum: self.access_number.clone().unwrap_or_default(),
            standby: self.queue.as_ref().map_or(0, |q| q.standby_secs),
            // The after-call work that follows: the group's wrap-up, for an agent who
            // answered.
            writetime: self
                .queue
                .as_ref()
                .filter(|q| q.agent.is_some())
                .map_or(0, |q| i32::try_from(q.wrap_up_seconds).unwrap_or(i32::MAX)),
            ivr_anwer_time: self.ivr_record.as_ref().map_or(0, |r| r.answered_at_ms),
            ivr_anwer_duration: self.ivr_record.as_ref().map_or(0, |r| {
                i32::try_from(r.duration_secs(end)).unwrap_or(i32::MAX)
            }),
            dtmfkey: self
                .ivr_record
                .as_ref()
                .map(|r| r.dtmfkey.clone())
                .unwrap_or_default(),
            ivrpoint: self
                .ivr_record
                .as_ref()
                .map(|r| r.ivrpoint.clone())
                .unwrap_or_default(),
            ivrvoicemail: self
                .ivr_record
                .as_ref()
                .and_then(|r| r.voicemail.clone())
                .unwrap_or_default(),
            queue_time: self.queue.as_ref().map_or(0, |q| q.enqueued_ms),
            queue_duration: self
                .queue
                .as_ref()
                .map_or(0, |q| secs(q.enqueued_ms, q.left_ms.unwrap_or(end))),
            ..calllog::Model::default()
        }
    }
}

/// Interface 37: the extension that last called `customer`, when it asked for direct
/// callbacks (`SET_EXT_DIRECT_CALL_BACK offon=true`).
async fn direct_callback_extension(
    db: &sea_orm::DatabaseConnection,
    customer: &str,
) -> Option<String> {
    let ext = entities::repo::calllog::last_extension_calling(db, customer)
        .await
        .ok()??;
    let row = entities::repo::extensions::by_number(db, &ext)
        .await
        .ok()??;
    row.direct_callback.then_some(ext)
}

/// How long the routing query (interface 11) may take before normal routing goes on.
pub const ROUTING_QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Interface 11: `GET url?caller=…`; the answer is a bare extension or group number.
async fn routing_query(http: &reqwest::Client, url: &str, caller: &str) -> Option<String> {
    let answer = http
        .get(url)
        .query(&[("caller", caller)])
        .timeout(ROUTING_QUERY_TIMEOUT)
        .send()
        .await
        .and_then(|r| r.error_for_status());
    let body = match answer {
        Ok(resp) => resp.text().await.unwrap_or_default(),
        Err(e) => {
            tracing::warn!("routing query failed, routing normally: {e}");
            return None;
        }
    };
    let number = body.trim();
    if number.is_empty() || number.len() > 32 || !number.bytes().all(|b| b.is_ascii_digit()) {
        let shown: String = number.chars().take(64).collect();
        tracing::warn!(answer = %shown, "routing query answered no number, routing normally");
        return None;
    }
    Some(number.to_string())
}

/// RFC 3261 §16.7 in short: a 6xx beats everything, then 486/404/… over 408/480/5xx.
fn better_failure(new: u16, old: Option<u16>) -> bool {
    let rank = |s: u16| match s {
        600..=699 => 4,
        486 | 404 | 403 | 484 | 488 => 3,
        400..=499 => 2,
        _ => 1,
    };
    match old {
        None => true,
        Some(old) => rank(new) > rank(old),
    }
}

/// The manual's call types by the outside number's shape.
fn call_type_of(number: &str) -> &'static str {
    if number.starts_with("00") || number.starts_with('+') {
        "OVERSEAS_CALL"
    } else if number.starts_with('0') {
        "NATIONAL_CALL"
    } else if number.is_empty() {
        "UNKNOW_CALL"
    } else {
        "LOCAL_CALL"
    }
}

impl Actor for Call {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        if let Err((status, reason)) = self.begin(ctx) {
            if self.caller_leg.is_none() {
                // No leg could be made: answer the INVITE directly.
                if let Some(setup) = &self.setup {
                    let mut resp =
                        crate::sip::message::Response::for_request(&setup.invite, status, reason);
                    resp.set_to_tag(&crate::sip::message::new_tag());
                    self.services.endpoint.respond(&setup.key, resp);
                }
            }
            self.refuse(ctx, status, reason);
        }
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        // Only `end` stops a call; anything else (every address dropped) must still
        // release the phones and agents and write the call's row.
        if self.phase != CallPhase::Ended {
            tracing::warn!(call_id = %self.id, phase = ?self.phase, "call stopped without ending: cleaning up");
            self.end(ctx);
        }
    }
}

impl Handler<LegEvent> for Call {
    type Result = ();
    fn handle(&mut self, msg: LegEvent, ctx: &mut Self::Context) {
        if msg.leg == CALLER_LEG {
            self.on_caller_event(ctx, msg.kind);
        } else {
            self.on_fork_event(ctx, msg.leg, msg.kind);
        }
    }
}

/// Event from the media engine (timeout, DTMF, end of a prompt): rare, never per packet.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MediaNotice(pub MediaEvent);

impl Handler<MediaNotice> for Call {
    type Result = ();
    fn handle(&mut self, msg: MediaNotice, ctx: &mut Self::Context) {
        let side_of = |act: &Self, endpoint| {
            let media = act.media.as_ref()?;
            if media.a.id() == endpoint {
                Some(Side::A)
            } else if media.b.id() == endpoint {
                Some(Side::B)
            } else {
                None
            }
        };
        match msg.0 {
            MediaEvent::Timeout { endpoint } => {
                tracing::info!(call_id = %self.id, endpoint, "no RTP: hanging up");
                self.hungup.get_or_insert(EndedBy::System);
                if let Some(a) = &self.caller_leg {
                    a.do_send(Hangup);
                }
                if let Some(b) = self.answered.and_then(|id| self.forks.get(&id)) {
                    b.leg.do_send(Hangup);
                }
                self.cancel_forks(None);
                self.end(ctx);
            }
            MediaEvent::Dtmf { endpoint, dtmf } => {
                if let Some(side) = side_of(self, endpoint) {
                    self.on_dtmf(side, dtmf);
                }
            }
            MediaEvent::Failed { endpoint, error } => {
                tracing::warn!(call_id = %self.id, endpoint, "media socket failed: {error}");
            }
            MediaEvent::PlaybackFinished { finished, .. }
                if self.hang_up_after_prompt && finished.id == RULE_PROMPT_PLAYBACK =>
            {
                self.hungup.get_or_insert(EndedBy::System);
                if let Some(a) = &self.caller_leg {
                    a.do_send(Hangup);
                }
                self.end(ctx);
            }
            MediaEvent::PlaybackFinished { endpoint, finished } => {
                if let (Some(ivr), Some(Side::A)) = (&self.ivr, side_of(self, endpoint)) {
                    ivr.do_send(IvrInput(IvrEvent::PlaybackFinished { id: finished.id }));
                }
            }
            MediaEvent::RecordingFinished { result, .. } => {
                if let Err(e) = result {
                    tracing::warn!(call_id = %self.id, "recording failed: {e}");
                }
            }
        }
    }
}

impl Handler<IvrOutput> for Call {
    type Result = ();
    fn handle(&mut self, msg: IvrOutput, ctx: &mut Self::Context) {
        match msg {
            IvrOutput::Progress(record) => self.ivr_record = Some(record),
            IvrOutput::Transfer(target) => self.ivr_transfer(ctx, target),
            IvrOutput::Hangup => {
                self.ivr = None;
                self.hungup.get_or_insert(EndedBy::System);
                if let Some(a) = &self.caller_leg {
                    a.do_send(Hangup);
                }
                self.end(ctx);
            }
        }
    }
}

impl Handler<QueueEvent> for Call {
    type Result = ();
    fn handle(&mut self, msg: QueueEvent, ctx: &mut Self::Context) {
        match msg {
            QueueEvent::Offer {
                agents,
                ring_timeout,
                wrap_up_seconds,
                idle_since_ms,
            } => {
                if let Some(q) = self.queue.as_mut() {
                    q.idle_since_ms = idle_since_ms;
                    q.offered_ms = now_ms();
                }
                self.offer_to_agents(ctx, agents, ring_timeout, wrap_up_seconds)
            }
            QueueEvent::TimedOut { overflow } => self.queue_timed_out(ctx, overflow),
        }
    }
}

/// Command (shutdown, force hang-up): end the call now, whatever its state.
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndCall;

impl Handler<EndCall> for Call {
    type Result = ();
    fn handle(&mut self, _: EndCall, ctx: &mut Self::Context) {
        self.hungup.get_or_insert(EndedBy::System);
        self.cancel_forks(None);
        if self.phase == CallPhase::Talking {
            if let Some(a) = &self.caller_leg {
                a.do_send(Hangup);
            }
            self.end(ctx);
        } else {
            self.refuse(ctx, 503, "Service Unavailable");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_phases() {
        assert_eq!(
            transition(CallPhase::Routing, CallInput::Alerted),
            Some(CallPhase::Ringing)
        );
        assert_eq!(
            transition(CallPhase::Ringing, CallInput::Answered),
            Some(CallPhase::Talking)
        );
        assert_eq!(transition(CallPhase::Talking, CallInput::Alerted), None);
        assert_eq!(transition(CallPhase::Ended, CallInput::Ended), None);
    }

    #[test]
    fn failures_rank_like_a_forking_proxy() {
        assert!(better_failure(486, Some(480)));
        assert!(better_failure(603, Some(486)));
        assert!(!better_failure(408, Some(486)));
    }

    #[test]
    fn call_types() {
        assert_eq!(call_type_of("0123456789"), "NATIONAL_CALL");
        assert_eq!(call_type_of("0044123"), "OVERSEAS_CALL");
        assert_eq!(call_type_of("88889999"), "LOCAL_CALL");
    }
}
