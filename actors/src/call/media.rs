//! The call's media: the endpoints in the engine, the caller answered by the switch, the
//! SDP of the callee's answer, re-INVITEs passed through (hold and its music), DTMF, and
//! the recording.

use actix::prelude::*;
use bytes::Bytes;

use crate::conference::MemberDtmf;
use crate::event_hub::{now_ms, HubEvent, LegDtmf, Party, Publish};
use crate::ivr::IvrEvent;
use crate::ivr_actor::IvrInput;
use crate::leg::{Answer, AnswerReoffer, LegId, Reoffer};
use crate::media::dtmf::{DtmfReceived, DtmfSource};
use crate::media::engine::EndpointId;
use crate::media::engine::{Codec as MediaCodec, Endpoint, MediaEvent, Recording};
use crate::media::g711::Law;
use crate::media::playback::{Playback, Source};
use crate::media::wav::WavWriter;
use crate::sip::sdp::{self, Codec, Direction as SdpDirection, Sdp, SWITCH_CODECS};

use super::{Call, CallPhase, Caller, MediaNotice, CALLER_LEG, MUSIC_ON_HOLD_PLAYBACK};

/// Which media endpoint: the caller's (A) or the answering callee's (B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
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

    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// One side's telephone-event payload types: the one it negotiated (what it sends and
/// wants to receive) and the one the switch's own offer to it declared.
pub(super) struct EventNumbers<'a> {
    pub(super) negotiated: &'a mut Option<u8>,
    pub(super) declared: &'a mut Option<u8>,
}

/// The call's media in the engine: the endpoint facing the caller, the one facing the
/// callee (connected to each other), and the recording of both.
pub(super) struct CallMedia {
    pub(super) a: Endpoint,
    pub(super) b: Endpoint,
    pub(super) recording: Option<Recording>,
    /// The side hearing music on hold, if any.
    pub(super) music_on_hold: Option<Side>,
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

impl Call {
    pub(super) fn events_of(&mut self, side: Side) -> EventNumbers<'_> {
        match side {
            Side::A => EventNumbers {
                negotiated: &mut self.caller_dtmf_pt,
                declared: &mut self.caller_declared_pt,
            },
            Side::B => EventNumbers {
                negotiated: &mut self.callee_dtmf_pt,
                declared: &mut self.callee_declared_pt,
            },
        }
    }

    /// The SDP session (origin and version) of what the switch sends to `side`.
    pub(super) fn session_of(&mut self, side: Side) -> Option<&mut sdp::SdpSession> {
        match side {
            Side::A => self.caller_session.as_mut(),
            Side::B => self.callee_session.as_mut(),
        }
    }

    /// Answers the caller itself (the first codec of its offer), for a room or a queue.
    /// Returns the caller's media endpoint, or refuses the call.
    pub(super) fn answer_locally(&mut self, ctx: &mut Context<Self>) -> Option<EndpointId> {
        let Some(offer) = &self.caller_sdp else {
            self.refuse(ctx, 488, "Not Acceptable Here");
            return None;
        };
        let (codecs, _) = sdp::offered_codecs(offer, &SWITCH_CODECS);
        let Some(codec) = codecs.first().copied() else {
            self.refuse(ctx, 488, "Not Acceptable Here");
            return None;
        };
        // A caller that made no offer is offered every codec (the switch decodes its audio
        // itself) and chooses in its ACK; until then its audio is taken as the first.
        let answer = if self.caller_answer_pending {
            self.caller_session
                .as_mut()
                .map(|s| Bytes::from(s.offer(&SWITCH_CODECS, SdpDirection::SendRecv).render()))
        } else {
            self.codec = Some(codec);
            self.caller_answer()
        };
        let Some(answer) = answer else {
            self.refuse(ctx, 488, "Not Acceptable Here");
            return None;
        };
        let Some(media) = &self.media else {
            self.refuse(ctx, 503, "Service Unavailable");
            return None;
        };
        let _ = media.a.set_codec(MediaCodec {
            law: law_of(&codec),
            dtmf_pt: self.caller_dtmf_pt,
            declared_dtmf_pt: self.caller_declared_pt,
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

    /// The caller's SDP answered with `codec`.
    pub(super) fn caller_answer(&mut self) -> Option<Bytes> {
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
    pub(super) fn take_callee_sdp(&mut self, body: &Bytes) -> bool {
        let Some(answer) = sdp::from_body(body) else {
            return false;
        };
        let Ok(neg) = sdp::read_answer(&answer, &SWITCH_CODECS) else {
            return false;
        };
        let Some(codec) = sdp::codec_named(&neg.name, &SWITCH_CODECS) else {
            return false;
        };
        self.codec = Some(codec);
        self.callee_dtmf_pt = neg.telephone_event_pt;
        if let Some(media) = &self.media {
            let law = law_of(&codec);
            let _ = media.b.set_remote(neg.remote);
            let _ = media.b.set_codec(MediaCodec {
                law,
                dtmf_pt: neg.telephone_event_pt,
                declared_dtmf_pt: self.callee_declared_pt,
            });
            let _ = media.a.set_codec(MediaCodec {
                law,
                dtmf_pt: self.caller_dtmf_pt,
                declared_dtmf_pt: self.caller_declared_pt,
            });
        }
        true
    }

    /// An offer for `leg`'s re-INVITE without SDP (a session refresh): the codec the call
    /// uses, alone (the relay does not transcode, so the peer must not switch to another),
    /// from that side's session (its next version). `last` (our last SDP to it) keeps a
    /// hold the other side put on it; otherwise the offer is sendrecv and the peer answers
    /// as it likes (still holding, or resuming).
    pub(super) fn offer_for_refresh(&mut self, leg: LegId, last: Option<Bytes>) {
        let last_direction = last
            .as_deref()
            .and_then(sdp::from_body)
            .and_then(|s| s.first_audio().map(|i| s.media_direction(i)));
        let direction = match last_direction {
            Some(d @ (SdpDirection::SendOnly | SdpDirection::Inactive)) => d,
            _ => SdpDirection::SendRecv,
        };
        let side = Side::of_leg(leg);
        let events = self
            .events_of(side)
            .negotiated
            .unwrap_or(sdp::TELEPHONE_EVENT_PT);
        let codec = self.codec;
        let result = match (codec, self.session_of(side)) {
            (Some(codec), Some(session)) => Ok(Bytes::from(
                session
                    .offer_with_events(&[codec], events, direction)
                    .render(),
            )),
            // No codec chosen yet (cannot happen once answered): nothing to offer.
            _ => Err(500),
        };
        if result.is_ok() {
            *self.events_of(side).declared = Some(events);
        }
        self.answer_reoffer(leg, result);
    }

    /// The answer to the offer our 2xx carried, from `leg`'s ACK (see
    /// [`crate::leg::LegEventKind::OfferAnswered`]): where that side receives, its codec
    /// and its telephone-event number. The caller of an offer-less INVITE whose ACK
    /// answers with nothing usable (no SDP, or none of the codecs offered: the relay does
    /// not transcode) cannot have media, and the call is hung up.
    pub(super) fn on_offer_answered(
        &mut self,
        ctx: &mut Context<Self>,
        leg: LegId,
        body: Option<Bytes>,
    ) {
        let awaited = leg == CALLER_LEG && std::mem::take(&mut self.caller_answer_pending);
        // What was offered: the codec in use, or every codec (a caller the switch answered
        // itself before anyone chose one).
        let offered: Vec<Codec> = match self.codec {
            Some(codec) => vec![codec],
            None => SWITCH_CODECS.to_vec(),
        };
        let negotiated = body
            .as_deref()
            .and_then(sdp::from_body)
            .and_then(|answer| sdp::read_answer(&answer, &offered).ok())
            .and_then(|neg| Some((sdp::codec_named(&neg.name, &offered)?, neg)));
        let Some((codec, neg)) = negotiated else {
            if awaited {
                tracing::info!(
                    call_id = %self.id,
                    "the caller's ACK has no usable answer to the switch's offer: hanging up"
                );
                self.end_by_switch(ctx);
            }
            return;
        };
        let side = Side::of_leg(leg);
        let events = self.events_of(side);
        *events.negotiated = neg.telephone_event_pt;
        let declared = *events.declared;
        if let Some(media) = &self.media {
            let side = media.side(side);
            if neg.remote.is_some() {
                let _ = side.set_remote(neg.remote);
            }
            let _ = side.set_codec(MediaCodec {
                law: law_of(&codec),
                dtmf_pt: neg.telephone_event_pt,
                declared_dtmf_pt: declared,
            });
        }
        if leg == CALLER_LEG {
            // The caller chose among every codec (the switch answered it itself).
            self.codec.get_or_insert(codec);
        }
        for deferred in std::mem::take(&mut self.deferred_forks) {
            self.fork(
                ctx,
                deferred.uri,
                deferred.dest,
                deferred.transport,
                deferred.extension,
            );
        }
    }

    /// A re-INVITE from one side: our rewrite of its SDP goes to the other side.
    pub(super) fn pass_reoffer(&mut self, from: LegId, body: &Bytes) {
        let other = if from == CALLER_LEG {
            self.answered
                .and_then(|id| self.forks.get(&id))
                .map(|f| f.leg.clone())
        } else {
            self.caller_leg.clone()
        };
        let parsed = sdp::from_body(body);
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
        // What goes to the other side is in the other side's session.
        let Some(session) = self.session_of(Side::of_leg(from).other()) else {
            self.answer_reoffer(from, Err(500));
            return;
        };
        let rewritten = session.rewrite(&offer);
        self.reoffer_from = Some(from);
        self.reoffer_events = sdp::offered_codecs(&offer, &SWITCH_CODECS).1;
        other.do_send(Reoffer {
            sdp: Bytes::from(rewritten.render()),
        });
    }

    pub(super) fn pass_reoffer_answer(&mut self, answered_by: LegId, result: Result<Bytes, u16>) {
        let Some(from) = self.reoffer_from.take() else {
            return;
        };
        let result = result.and_then(|body| {
            let answer = sdp::from_body(&body).ok_or(488u16)?;
            let side = Side::of_leg(answered_by);
            let other = side.other();
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
            self.take_renegotiated(&answer, side);
            let session = self.session_of(Side::of_leg(from)).ok_or(500u16)?;
            Ok(Bytes::from(session.rewrite(&answer).render()))
        });
        self.answer_reoffer(from, result);
    }

    /// A re-INVITE passed through was answered by `answerer` with `answer`: both sides now
    /// talk the codec it chose (each saw the other's SDP), and each numbers telephone-events
    /// as its own SDP said (the offerer as in its offer). The engine follows, so that the
    /// relay's event renumbering and the decoding (recording, IVR) stay right.
    fn take_renegotiated(&mut self, answer: &Sdp, answerer: Side) {
        let Ok(neg) = sdp::read_answer(answer, &SWITCH_CODECS) else {
            return;
        };
        let Some(codec) = sdp::codec_named(&neg.name, &SWITCH_CODECS) else {
            return;
        };
        let offerer_events = self.reoffer_events.take();
        let (a_events, b_events) = match answerer {
            Side::A => (neg.telephone_event_pt, offerer_events),
            Side::B => (offerer_events, neg.telephone_event_pt),
        };
        // Each side saw the other's SDP, numbers included (`sdp::rewrite`).
        let (a_declared, b_declared) = (b_events, a_events);
        let unchanged = self.codec == Some(codec)
            && self.caller_dtmf_pt == a_events
            && self.callee_dtmf_pt == b_events
            && self.caller_declared_pt == a_declared
            && self.callee_declared_pt == b_declared;
        if unchanged {
            // The usual hold and unhold: nothing for the engine to change.
            return;
        }
        self.codec = Some(codec);
        self.caller_dtmf_pt = a_events;
        self.callee_dtmf_pt = b_events;
        self.caller_declared_pt = a_declared;
        self.callee_declared_pt = b_declared;
        if let Some(media) = &self.media {
            let law = law_of(&codec);
            let _ = media.a.set_codec(MediaCodec {
                law,
                dtmf_pt: a_events,
                declared_dtmf_pt: a_declared,
            });
            let _ = media.b.set_codec(MediaCodec {
                law,
                dtmf_pt: b_events,
                declared_dtmf_pt: b_declared,
            });
        }
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

    /// A key pressed on `side`'s phone: published once; a key sent as SIP INFO is also
    /// passed on to the other phone as RFC 4733 (keys in RTP already flow through).
    pub(super) fn on_dtmf(&mut self, side: Side, dtmf: DtmfReceived) {
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
                let _ = media.side(side.other()).send_dtmf(&dtmf.digit.to_string());
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
    pub(super) fn start_recording(&mut self, ctx: &mut Context<Self>) {
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
}
