//! The legs a call rings (forks, one per contact) and what every leg reports: ringing,
//! answers, failures, hang-ups, re-INVITEs and keys, from the caller's leg and the forks.

use std::net::SocketAddr;

use actix::prelude::*;
use bytes::Bytes;

use crate::event_hub::{now_ms, CallState};
use crate::extension::{Extension, GetBindings, PhoneEngaged, PhoneReleased};
use crate::leg::{Answer, EndCause, Hangup, Leg, LegEventKind, LegId, Outgoing, Ring};
use crate::sip::message::{NameAddr, SipUri, Transport};
use crate::sip::sdp::{self, Direction as SdpDirection, SWITCH_CODECS};

use super::media::Side;
use super::{Call, CallInput, CallPhase, Caller, EndedBy, CALLER_LEG};

pub(super) struct Fork {
    pub(super) leg: Addr<Leg>,
    /// The extension whose phone this fork rings, if any.
    pub(super) extension: Option<(String, Addr<Extension>)>,
    pub(super) call_id: String,
}

/// A [`Call::fork`] put off until the caller has chosen its codec.
pub(super) struct DeferredFork {
    pub(super) uri: SipUri,
    pub(super) dest: SocketAddr,
    pub(super) transport: Transport,
    pub(super) extension: Option<(String, Addr<Extension>)>,
}

impl Call {
    pub(super) fn ring_extensions(
        &mut self,
        ctx: &mut Context<Self>,
        extensions: Vec<(String, Addr<Extension>)>,
    ) {
        self.ring_contacts(
            ctx,
            extensions,
            |act| act.phase != CallPhase::Ended,
            |act, ctx| act.refuse(ctx, 480, "Temporarily Unavailable"),
        );
    }

    /// Rings every registered contact of `extensions` once their bindings are known, if
    /// `still_wanted` then; `nothing_rang` when no contact could be rung.
    pub(super) fn ring_contacts(
        &mut self,
        ctx: &mut Context<Self>,
        extensions: Vec<(String, Addr<Extension>)>,
        still_wanted: fn(&Self) -> bool,
        nothing_rang: fn(&mut Self, &mut Context<Self>),
    ) {
        let lookups = extensions.into_iter().map(|(number, ext)| {
            let query = ext.send(GetBindings);
            async move { (number, ext, query.await.unwrap_or_default()) }
        });
        futures::future::join_all(lookups)
            .into_actor(self)
            .map(move |found, act, ctx| {
                if !still_wanted(act) {
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
                    nothing_rang(act, ctx);
                }
            })
            .wait(ctx);
    }

    /// Starts a leg that calls `uri` at `dest` with our offer.
    pub(super) fn fork(
        &mut self,
        ctx: &mut Context<Self>,
        uri: SipUri,
        dest: SocketAddr,
        transport: Transport,
        extension: Option<(String, Addr<Extension>)>,
    ) {
        if self.answered_locally && self.caller_answer_pending {
            // The caller was offered every codec and chooses in its ACK (a few ms away):
            // the callee can only be offered that one, so it is called then.
            self.deferred_forks.push(DeferredFork {
                uri,
                dest,
                transport,
                extension,
            });
            return;
        }
        let (Some(offer), Some(session)) = (&self.caller_sdp, self.callee_session.as_mut()) else {
            return;
        };
        let (mut codecs, _) = sdp::offered_codecs(offer, &SWITCH_CODECS);
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
        let events = self.caller_dtmf_pt.unwrap_or(sdp::TELEPHONE_EVENT_PT);
        self.callee_declared_pt = Some(events);
        let sdp_offer = session.offer_with_events(&codecs, events, direction);
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
    pub(super) fn cancel_forks(&mut self, keep: Option<LegId>) {
        for (id, fork) in &self.forks {
            if Some(*id) != keep {
                fork.leg.do_send(Hangup);
            }
        }
    }

    pub(super) fn on_fork_event(&mut self, ctx: &mut Context<Self>, id: LegId, kind: LegEventKind) {
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
                // A caller that made no offer gets ours in the 2xx only: an SDP in an
                // unreliable 183 would be an offer it cannot answer (no PRACK here). The
                // callee's SDP is still taken, for a callee whose 200 then has none.
                let early = match sdp {
                    Some(body) if !self.early_media_sent && self.take_callee_sdp(&body) => {
                        self.callee_sdp_taken = true;
                        if self.caller_answer_pending {
                            None
                        } else {
                            self.caller_answer()
                        }
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
                    None => self.callee_sdp_taken,
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
            LegEventKind::OfferAnswered { sdp } => {
                if Some(id) == self.answered {
                    self.on_offer_answered(ctx, id, sdp);
                }
            }
            LegEventKind::OfferWanted { last } => self.offer_for_refresh(id, last),
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

    pub(super) fn on_caller_event(&mut self, ctx: &mut Context<Self>, kind: LegEventKind) {
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
            LegEventKind::OfferAnswered { sdp } => self.on_offer_answered(ctx, CALLER_LEG, sdp),
            LegEventKind::OfferWanted { last } => self.offer_for_refresh(CALLER_LEG, last),
            LegEventKind::Dtmf { dtmf } => self.on_dtmf(Side::A, dtmf),
            LegEventKind::Gone if self.phase != CallPhase::Ended => {
                self.hungup.get_or_insert(EndedBy::Caller);
                self.cancel_forks(None);
                self.end(ctx);
            }
            _ => {}
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_rank_like_a_forking_proxy() {
        assert!(better_failure(486, Some(480)));
        assert!(better_failure(603, Some(486)));
        assert!(!better_failure(408, Some(486)));
    }
}
