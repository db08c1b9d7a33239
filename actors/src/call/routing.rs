//! Where the call goes: the pre-routing (blacklist, time-based rules, the routing query
//! of interface 11, the direct callback of interface 37), the rules' actions (interface
//! 61), and the numbering plan's route (a trunk, a gateway, an extension, a group, a
//! meet-me room, an IVR).

use actix::prelude::*;

use crate::conference::{Admit, Conference};
use crate::event_hub::{now_ms, CallState, Direction};
use crate::extension::GetBindings;
use crate::extension::{OfferEnded, OfferOutcome, PhoneReleased};
use crate::leg::Hangup;
use crate::media::playback::{Playback, Source};
use crate::queue::Dequeue;
use crate::router::{Resolve, Route};
use crate::sip::message::{SipUri, Transport};
use entities::routing_rule::{RuleAction, RulePrompt};

use super::{Call, CallInput, CallPhase, Caller, EndedBy, RULE_PROMPT_PLAYBACK};

/// How the pre-routing ends: the numbering plan's route, or a time-based rule.
enum Decision {
    Route(Option<Route>),
    Rule(RuleAction),
}

impl Call {
    /// Before the numbering plan: the blacklist (calls from and to a listed number are
    /// refused with 403), then, for calls from a trunk, the third-party routing query
    /// (interface 11), whose answer replaces the dialled number when it names an
    /// extension or a group. A query that fails, times out or answers anything else is
    /// logged and the dialled number is used.
    pub(super) fn pre_route(&mut self, ctx: &mut Context<Self>) {
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
        self.route_number_then(ctx, number, false);
    }

    /// [`Self::route_number`]; with `ring_timeout`, a phone or line rung there gets the
    /// switch's ring timeout (a queue keeps its own `max_wait`).
    pub(super) fn route_number_then(
        &mut self,
        ctx: &mut Context<Self>,
        number: String,
        ring_timeout: bool,
    ) {
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
            .map(move |route, act, ctx| match route {
                Ok(route) => {
                    let rings = matches!(
                        route,
                        Route::Extension { .. } | Route::Trunk { .. } | Route::Gateway { .. }
                    );
                    if ring_timeout && rings {
                        act.arm_ring_timeout(ctx);
                    }
                    act.route(ctx, route)
                }
                Err(_) => act.refuse(ctx, 500, "Server Internal Error"),
            })
            .wait(ctx);
    }

    /// Refuses the call (408) if nobody answered within the switch's ring timeout.
    pub(super) fn arm_ring_timeout(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.ring_timer.take() {
            ctx.cancel_future(handle);
        }
        let ring_timeout = self.services.settings.ring_timeout;
        self.ring_timer = Some(ctx.run_later(ring_timeout, |act, ctx| {
            if matches!(act.phase, CallPhase::Routing | CallPhase::Ringing) {
                act.cancel_forks(None);
                act.refuse(ctx, 408, "Request Timeout");
            }
        }));
    }

    pub(super) fn route(&mut self, ctx: &mut Context<Self>, route: Route) {
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
            RuleAction::IvrSelect(id) => self.enter_ivr_by_id(ctx, id, move |act, ctx| {
                tracing::warn!(call_id = %act.id, ivr = id, "routing rule names no IVR");
                act.refuse(ctx, 503, "Service Unavailable")
            }),
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
                // Answered, over, or already elsewhere (a menu, a meet-me room).
                if act.answered.is_some()
                    || act.phase == CallPhase::Ended
                    || act.ivr.is_some()
                    || act.conference.is_some()
                {
                    return;
                }
                tracing::info!(call_id = %act.id, ?number, "no answer: rule fallback");
                if let Some(handle) = act.ring_timer.take() {
                    ctx.cancel_future(handle);
                }
                act.cancel_forks(None);
                let forks: Vec<_> = act.forks.drain().collect();
                // The phones that rang are free again (a 200 crossing the CANCEL is
                // still recognised by `withdrawn` and hung up).
                let mut released: Vec<_> = forks
                    .iter()
                    .filter_map(|(_, f)| f.extension.as_ref().map(|(_, ext)| ext.clone()))
                    .collect();
                act.withdrawn.extend(forks);
                if let Some(mut q) = act.queue.take() {
                    // Its offer's ring-out must not fire into the call's next queue.
                    if let Some(t) = q.offer_timer.take() {
                        ctx.cancel_future(t);
                    }
                    q.addr.do_send(Dequeue {
                        call_id: act.id.clone(),
                    });
                    for (_, ext) in q.offer {
                        ext.do_send(OfferEnded {
                            call_id: act.id.clone(),
                            outcome: OfferOutcome::Withdrawn,
                        });
                        released.push(ext);
                    }
                }
                for ext in released {
                    ext.do_send(PhoneReleased {
                        call_id: act.id.clone(),
                    });
                }
                act.step(CallInput::Dequeued);
                match number {
                    Some(number) => act.route_number_then(ctx, number, true),
                    None => act.enter_voicemail(ctx),
                }
            },
        );
    }

    /// PLAY_AND_HANGUP: answers, plays the prompt once, hangs up.
    pub(super) fn play_and_hang_up(&mut self, ctx: &mut Context<Self>, prompt: RulePrompt) {
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
