//! A call in a group's queue: answered with music, its place announced, offered to the
//! queue's agents, the offer's outcome, and the queue's timeout (overflow or goodbye).

use actix::prelude::*;

use crate::event_hub::{now_ms, CallState};
use crate::extension::{Extension, PhoneReleased};
use crate::extension::{OfferEnded, OfferOutcome};
use crate::leg::{Hangup, LegId};
use crate::media::playback::{Playback, Source};
use crate::queue::{Enqueue, OfferResult, Queue};
use crate::router::{Resolve, Route};
use entities::routing_rule::RulePrompt;

use super::{Call, CallInput, CallPhase, EndedBy, MUSIC_ON_HOLD_PLAYBACK};

/// What a caller hears when the queue gives up on it and there is no overflow.
pub const QUEUE_GOODBYE: &str = "All our agents are busy. Please call again later. Goodbye.";

/// A call waiting in (or served from) a group's queue.
pub(super) struct QueueCall {
    pub(super) addr: Addr<Queue>,
    pub(super) enqueued_ms: i64,
    /// When the caller left the queue (an agent answered, it timed out, hung up).
    pub(super) left_ms: Option<i64>,
    /// The agents rung by the offer in progress.
    pub(super) offer: Vec<(String, Addr<Extension>)>,
    pub(super) offer_timer: Option<SpawnHandle>,
    pub(super) wrap_up_seconds: u32,
    /// The call log's `business` when the caller never reached an agent.
    pub(super) outcome: Option<&'static str>,
    /// The agent who answered, for its wrap-up when the call ends.
    pub(super) agent: Option<Addr<Extension>>,
    /// Since when the agents of the current offer were idle, and when it rang them.
    pub(super) idle_since_ms: Vec<(String, i64)>,
    pub(super) offered_ms: i64,
    /// `standby`: seconds the answering agent had been idle when this call rang it.
    pub(super) standby_secs: i32,
}

impl Call {
    /// Answers the caller, plays it music and puts it in the group's queue.
    pub(super) fn enter_queue(
        &mut self,
        ctx: &mut Context<Self>,
        number: String,
        queue: Addr<Queue>,
    ) {
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
    pub(super) fn play_music(&self, on: bool) {
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
    pub(super) fn offer_to_agents(
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
        self.ring_contacts(
            ctx,
            agents,
            |act| act.phase == CallPhase::Queued && act.answered.is_none(),
            |act, ctx| act.offer_failed(ctx, false),
        );
    }

    /// An agent answered the queued call `leg`: the queue and the agents hear of it.
    pub(super) fn agent_answered(&mut self, ctx: &mut Context<Self>, leg: LegId) {
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
    pub(super) fn offer_failed(&mut self, ctx: &mut Context<Self>, rang_out: bool) {
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
    }

    /// Leaves the queue for the overflow target, or plays a goodbye and hangs up.
    pub(super) fn queue_timed_out(&mut self, ctx: &mut Context<Self>, overflow: Option<String>) {
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
                return self.enter_ivr_by_id(ctx, id, |act, ctx| {
                    act.play_and_hang_up(ctx, RulePrompt::Tts(QUEUE_GOODBYE.into()))
                });
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
}
