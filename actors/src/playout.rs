//! `Playout`: the switch calls an extension and plays something to it — a call's
//! recording (interface 34, `PLAY_CALL_LOG_RECORD`), an announcement — then hangs up.
//!
//! It rings every registered contact of the extension (first answer wins, like a call),
//! owns one media endpoint, plays the source once, and ends with BYE when the source is
//! over, or when the phone hangs up, or after the ring timeout. Asked to play something
//! else while it plays, it switches at once. It leaves a call-log row like any call.

use std::collections::HashMap;

use actix::prelude::*;
use bytes::Bytes;
use entities::calllog;

use crate::call_log_writer::WriteCallLog;
use crate::event_hub::now_ms;
use crate::extension::{Extension, GetBindings, PhoneEngaged, PhoneReleased};
use crate::leg::{AnswerReoffer, Hangup, Leg, LegEvent, LegEventKind, LegId, Outgoing};
use crate::media::engine::Latching;
use crate::media::engine::{Codec as MediaCodec, Endpoint, MediaEvent};
use crate::media::g711::Law;
use crate::media::playback::{Playback, Source};
use crate::services::Services;
use crate::sip::message::{new_call_id, NameAddr, SipUri};
use crate::sip::sdp::{self, Direction as SdpDirection, SdpSession, SWITCH_CODECS};

/// The caller number the extension's phone shows (and the call log records).
pub const PLAYOUT_CALLER: &str = "playback";
/// Max-Forwards of the INVITEs the switch originates.
const MAX_FORWARDS: u8 = 70;

struct Ringing {
    leg: Addr<Leg>,
    call_id: String,
}

pub struct Playout {
    id: String,
    services: Services,
    extension: String,
    ext: Addr<Extension>,
    source: Option<Source>,
    /// Id of what plays now: a playback replaced by another ends without ending the call.
    playback_id: u64,
    endpoint: Option<Endpoint>,
    session: Option<SdpSession>,
    forks: HashMap<LegId, Ringing>,
    answered: Option<LegId>,
    next_leg: LegId,
    begin_ms: i64,
    pickup_ms: Option<i64>,
    hungup_by_phone: bool,
    ended: bool,
}

impl Playout {
    pub fn new(
        services: Services,
        extension: String,
        ext: Addr<Extension>,
        source: Source,
    ) -> Self {
        let host = services.endpoint.advertise().to_string();
        Self {
            id: new_call_id(&host),
            services,
            extension,
            ext,
            source: Some(source),
            playback_id: 0,
            endpoint: None,
            session: None,
            forks: HashMap::new(),
            answered: None,
            next_leg: 1,
            begin_ms: now_ms(),
            pickup_ms: None,
            hungup_by_phone: false,
            ended: false,
        }
    }

    /// The Call-ID of this call (the call log's `callid`).
    pub fn call_id(&self) -> &str {
        &self.id
    }

    fn ring(&mut self, ctx: &mut Context<Self>, bindings: Vec<crate::extension::Binding>) {
        let Some(session) = self.session.as_mut() else {
            return self.end(ctx);
        };
        let offer = session.offer_with_events(
            &SWITCH_CODECS,
            sdp::TELEPHONE_EVENT_PT,
            SdpDirection::SendRecv,
        );
        let body = Bytes::from(offer.render());
        let host = self.services.endpoint.advertise().to_string();
        for binding in bindings {
            let outgoing = Outgoing {
                request_uri: binding.uri.clone(),
                dest: binding.dest,
                transport: binding.transport.clone(),
                from: NameAddr::new(SipUri::sip(Some(PLAYOUT_CALLER), &host, None)),
                to: NameAddr::new(SipUri::sip(
                    Some(&self.extension),
                    binding.uri.host_unbracketed(),
                    binding.uri.port,
                )),
                max_forwards: MAX_FORWARDS,
                sdp: body.clone(),
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
                    self.forks.insert(
                        id,
                        Ringing {
                            leg: leg.start(),
                            call_id,
                        },
                    );
                }
                Err(e) => tracing::warn!(call_id = %self.id, "cannot start leg: {e}"),
            }
        }
        if self.forks.is_empty() {
            return self.end(ctx);
        }
        self.ext.do_send(PhoneEngaged {
            call_id: self.id.clone(),
            outgoing: false,
            remote: PLAYOUT_CALLER.to_string(),
            pickup_ms: None,
        });
        let timeout = self.services.settings.ring_timeout;
        ctx.run_later(timeout, |act, ctx| {
            if act.answered.is_none() {
                act.end(ctx);
            }
        });
    }

    fn on_answer(&mut self, ctx: &mut Context<Self>, id: LegId, sdp: Option<Bytes>) {
        let answer = sdp
            .as_deref()
            .and_then(sdp::from_body)
            .and_then(|s| sdp::read_answer(&s, &SWITCH_CODECS).ok());
        let (Some(neg), Some(endpoint)) = (answer, self.endpoint.as_ref()) else {
            if let Some(f) = self.forks.get(&id) {
                f.leg.do_send(Hangup);
            }
            return self.end(ctx);
        };
        self.answered = Some(id);
        for (other, fork) in &self.forks {
            if *other != id {
                fork.leg.do_send(Hangup);
            }
        }
        let law = if neg.name.eq_ignore_ascii_case("PCMA") {
            Law::Alaw
        } else {
            Law::Ulaw
        };
        let _ = endpoint.set_remote(neg.remote);
        let _ = endpoint.set_codec(MediaCodec {
            law,
            dtmf_pt: neg.telephone_event_pt,
            // Our offer (`ring`) numbered events this way.
            declared_dtmf_pt: Some(sdp::TELEPHONE_EVENT_PT),
        });
        let _ = endpoint.arm_timeout(Some(self.services.settings.rtp_timeout));
        let now = now_ms();
        self.pickup_ms = Some(now);
        self.ext.do_send(PhoneEngaged {
            call_id: self.id.clone(),
            outgoing: false,
            remote: PLAYOUT_CALLER.to_string(),
            pickup_ms: Some(now),
        });
        if let Some(source) = self.source.take() {
            self.playback_id += 1;
            let _ = endpoint.play(Playback::new(self.playback_id, source));
        }
    }

    fn end(&mut self, ctx: &mut Context<Self>) {
        if self.ended {
            return;
        }
        self.ended = true;
        for (id, fork) in &self.forks {
            // The answered leg that hung up itself is gone already; Hangup to it is a no-op.
            if !(self.hungup_by_phone && Some(*id) == self.answered) {
                fork.leg.do_send(Hangup);
            }
        }
        self.endpoint = None;
        self.ext.do_send(PhoneReleased {
            call_id: self.id.clone(),
        });
        let end = now_ms();
        let secs = |from: i64| i32::try_from(((end - from).max(0) + 500) / 1000).unwrap_or(0);
        let row = calllog::Model {
            caller: PLAYOUT_CALLER.into(),
            callee: self.extension.clone(),
            begin_time: self.begin_ms,
            ring_time: self.begin_ms,
            ring_duration: i32::try_from(
                ((self.pickup_ms.unwrap_or(end) - self.begin_ms).max(0) + 500) / 1000,
            )
            .unwrap_or(0),
            pickup_time: self.pickup_ms.unwrap_or(0),
            duration: self.pickup_ms.map(secs).unwrap_or(0),
            state: if self.pickup_ms.is_some() {
                "STATE_RECEIVED".into()
            } else {
                "STATE_FAILED".into()
            },
            call_type: "CENTREX_CALL".into(),
            business: "CENTREX_CALL".into(),
            callid: self.id.clone(),
            hungupside: if self.hungup_by_phone {
                "callee"
            } else {
                "system"
            }
            .into(),
            peercallid: self
                .answered
                .and_then(|id| self.forks.get(&id))
                .map(|f| f.call_id.clone())
                .unwrap_or_default(),
            ..calllog::Model::default()
        };
        self.services.call_log.do_send(WriteCallLog(row));
        ctx.stop();
    }
}

impl Actor for Playout {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let opened = self
            .services
            .ports
            .allocate()
            .map_err(|e| e.to_string())
            .and_then(|ports| {
                let port = ports.port;
                self.services
                    .media
                    .open(ports, Latching::Any, tx)
                    .map(|ep| (ep, port))
                    .map_err(|e| e.to_string())
            });
        let (endpoint, port) = match opened {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(call_id = %self.id, "no media for the playback call: {e}");
                return self.end(ctx);
            }
        };
        self.session = Some(SdpSession::new(self.services.settings.media_ip, port));
        self.endpoint = Some(endpoint);
        let me = ctx.address();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                if !me.connected() {
                    break;
                }
                me.do_send(PlayoutMedia(event));
            }
        });
        self.ext
            .send(GetBindings)
            .into_actor(self)
            .map(|bindings, act, ctx| act.ring(ctx, bindings.unwrap_or_default()))
            .wait(ctx);
    }
}

impl Handler<LegEvent> for Playout {
    type Result = ();
    fn handle(&mut self, msg: LegEvent, ctx: &mut Self::Context) {
        match msg.kind {
            LegEventKind::Answered { sdp } if self.answered.is_none() && !self.ended => {
                self.on_answer(ctx, msg.leg, sdp)
            }
            LegEventKind::Answered { .. } if Some(msg.leg) != self.answered => {
                if let Some(f) = self.forks.get(&msg.leg) {
                    f.leg.do_send(Hangup);
                }
            }
            LegEventKind::HungUp { .. } if Some(msg.leg) == self.answered => {
                self.hungup_by_phone = true;
                self.end(ctx);
            }
            // A re-INVITE from the phone: a refresh gets our SDP again; a new offer is
            // refused (488: the session goes on unchanged), as one prompt needs no other.
            LegEventKind::OfferWanted { last } => {
                if let Some(f) = self.forks.get(&msg.leg) {
                    f.leg.do_send(AnswerReoffer {
                        result: last.ok_or(500),
                    });
                }
            }
            LegEventKind::Reoffer { .. } => {
                if let Some(f) = self.forks.get(&msg.leg) {
                    f.leg.do_send(AnswerReoffer { result: Err(488) });
                }
            }
            LegEventKind::Failed { .. } | LegEventKind::Gone if self.answered.is_none() => {
                self.forks.remove(&msg.leg);
                if self.forks.is_empty() {
                    self.end(ctx);
                }
            }
            _ => {}
        }
    }
}

/// Event from the media engine for this call's endpoint.
#[derive(Message)]
#[rtype(result = "()")]
struct PlayoutMedia(MediaEvent);

impl Handler<PlayoutMedia> for Playout {
    type Result = ();
    fn handle(&mut self, msg: PlayoutMedia, ctx: &mut Self::Context) {
        match msg.0 {
            MediaEvent::PlaybackFinished { finished, .. } if finished.id == self.playback_id => {
                self.end(ctx)
            }
            MediaEvent::Timeout { .. } => self.end(ctx),
            _ => {}
        }
    }
}

/// Command: play `source` instead of what plays now (or next, if not answered yet).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PlayInstead(pub Source);

impl Handler<PlayInstead> for Playout {
    type Result = ();
    fn handle(&mut self, msg: PlayInstead, _: &mut Self::Context) {
        match (&self.endpoint, self.pickup_ms) {
            (Some(endpoint), Some(_)) => {
                self.playback_id += 1;
                let _ = endpoint.play(Playback::new(self.playback_id, msg.0));
            }
            _ => self.source = Some(msg.0),
        }
    }
}

impl Handler<crate::call::EndCall> for Playout {
    type Result = ();
    fn handle(&mut self, _: crate::call::EndCall, ctx: &mut Self::Context) {
        self.end(ctx);
    }
}
