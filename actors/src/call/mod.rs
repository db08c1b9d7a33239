//! `Call`: one per call (one call-log row). It owns the caller's `Leg`, the legs it rings
//! (one per contact: forking), and the RTP relay that anchors the media; it resolves the
//! callee, bridges the answer, passes re-INVITEs through, and when the call ends writes
//! its call-log row and publishes the end.
//!
//! This file holds the actor, its phases and their single [`transition`] function, the
//! call's set-up and end, and the messages it handles. The rest is by concern, each an
//! `impl Call` block of its own:
//! - `legs` — the legs it rings (forks) and what the caller's and the callees' legs report;
//! - `routing` — pre-routing (blacklist, routing query, direct callback), time-based rules,
//!   the numbering plan's route and the meet-me room;
//! - `queue` — waiting in a group's queue, offers to its agents and their outcome;
//! - `ivr` — handing the caller to an IVR menu (voicemail too) and its transfers;
//! - `media` — answering with SDP, re-INVITEs, DTMF, recording, music on hold;
//! - `log` — the call-log row.

mod ivr;
mod legs;
mod log;
mod media;
mod queue;
mod routing;

pub use queue::QUEUE_GOODBYE;
pub use routing::ROUTING_QUERY_TIMEOUT;

use std::collections::HashMap;
use std::net::SocketAddr;

use actix::prelude::*;

use crate::call_log_writer::WriteCallLog;
use crate::conference::{Conference, Depart};
use crate::event_hub::{now_ms, CallState, CallStateChanged, Direction, HubEvent, Publish};
use crate::extension::{Extension, PhoneEngaged, PhoneReleased};
use crate::extension::{OfferEnded, OfferOutcome, StartWrapUp};
use crate::ivr::IvrEvent;
use crate::ivr_actor::{Ivr, IvrInput, IvrOutput};
use crate::leg::{Hangup, Leg, LegEvent, LegId, Reject};
use crate::media::engine::{Latching, MediaEvent};
use crate::queue::{Dequeue, QueueEvent};
use crate::router::CallEnded;
use crate::services::Services;
use crate::sip::message::{Request, Transport};
use crate::sip::sdp::{self, Codec, Sdp, SdpSession, SWITCH_CODECS};
use crate::sip::transaction::TransactionKey;

use legs::{DeferredFork, Fork};
use media::{CallMedia, Side};
use queue::QueueCall;

/// The caller's leg is always leg 0.
const CALLER_LEG: LegId = 0;
/// Max-Forwards of requests we originate when the caller sent none.
const DEFAULT_MAX_FORWARDS: u8 = 70;
/// Playback id of music on hold (a call plays one thing at a time per side).
const MUSIC_ON_HOLD_PLAYBACK: u64 = 1;
/// Playback id of a routing rule's PLAY_AND_HANGUP prompt.
const RULE_PROMPT_PLAYBACK: u64 = 2;

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
    /// The caller's INVITE had no SDP (RFC 3261 §13.2.1): `caller_sdp` is the switch's
    /// [`sdp::assumed_offer`], our 2xx carries the offer and the caller's ACK the answer,
    /// which is awaited while this is set.
    caller_answer_pending: bool,
    /// The caller's telephone-event payload type: from its offer, or from its ACK's answer.
    caller_dtmf_pt: Option<u8>,
    /// The answering callee's telephone-event payload type, from its answer.
    callee_dtmf_pt: Option<u8>,
    /// The telephone-event numbers our SDP gave each side (see
    /// [`crate::media::engine::Codec::declared_dtmf_pt`]).
    caller_declared_pt: Option<u8>,
    callee_declared_pt: Option<u8>,
    /// Legs to start once the caller (answered by the switch before it chose its codec)
    /// has answered in its ACK: the callee is offered the codec the caller chose.
    deferred_forks: Vec<DeferredFork>,
    caller_session: Option<SdpSession>,
    callee_session: Option<SdpSession>,
    /// The codec the callee chose (the caller is answered with it).
    codec: Option<Codec>,
    early_media_sent: bool,
    /// A callee's SDP came in an 18x (its 200 may then carry none).
    callee_sdp_taken: bool,
    forks: HashMap<LegId, Fork>,
    next_leg: LegId,
    answered: Option<LegId>,
    /// The best failure heard from the forks so far (RFC 3261 §16.7 style).
    best_failure: Option<(u16, String)>,
    /// A re-INVITE in progress: which leg offered, and its telephone-event number.
    reoffer_from: Option<LegId>,
    reoffer_events: Option<u8>,
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
        let callee = setup
            .invite
            .uri
            .user
            .as_deref()
            .unwrap_or_default()
            .to_string();
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
            caller_answer_pending: false,
            caller_dtmf_pt: None,
            callee_dtmf_pt: None,
            caller_declared_pt: None,
            callee_declared_pt: None,
            deferred_forks: Vec::new(),
            caller_session: None,
            callee_session: None,
            codec: None,
            early_media_sent: false,
            callee_sdp_taken: false,
            forks: HashMap::new(),
            next_leg: CALLER_LEG + 1,
            answered: None,
            best_failure: None,
            reoffer_from: None,
            reoffer_events: None,
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
        let body = setup.invite.body.clone();
        let CallSetup {
            invite,
            key,
            src,
            transport,
            caller,
        } = setup;
        let leg = Leg::uas(
            CALLER_LEG,
            me,
            self.services.clone(),
            invite,
            key.clone(),
            src,
            transport.clone(),
        );
        let leg = match leg {
            Ok(leg) => leg.start(),
            Err(refused) => {
                let (e, invite) = *refused;
                tracing::debug!(call_id = %self.id, "cannot start caller leg: {e}");
                self.setup = Some(CallSetup {
                    invite,
                    key,
                    src,
                    transport,
                    caller,
                });
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
        // An offer-less INVITE: the callee is offered everything the switch relays, the
        // caller gets the callee's choice as our offer in the 2xx and answers in its ACK.
        let delayed_offer = body.is_empty();
        let offer = if delayed_offer {
            sdp::assumed_offer(self.services.settings.media_ip)
        } else {
            sdp::from_body(&body).ok_or((488, "Not Acceptable Here"))?
        };
        let (codecs, events) = sdp::offered_codecs(&offer, &SWITCH_CODECS);
        if codecs.is_empty() {
            return Err((488, "Not Acceptable Here"));
        }
        self.caller_dtmf_pt = events;
        // Our answer (or, for an offer-less INVITE, our offer) mirrors this number.
        self.caller_declared_pt = events;
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
        // A caller that made no offer says where it receives in its ACK (until then the
        // endpoint latches to where its RTP comes from).
        let remote = if delayed_offer {
            None
        } else {
            offer.first_audio().and_then(|i| offer.media_addr(i))
        };
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
        self.caller_answer_pending = delayed_offer;
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

    /// The switch ends the call (shutdown, a caller that cannot have media): BYE to the
    /// parties once answered, a 503 to the caller and CANCELs before.
    fn end_by_switch(&mut self, ctx: &mut Context<Self>) {
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
        self.end_by_switch(ctx);
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
}
