//! `Queue`: one per group. Callers wait here (the `Call` answered them and plays music on
//! hold) until an agent of the group is free; the queue then offers the call to the
//! agent(s) its strategy picks, and, when nobody answers within the ring timeout, to the
//! next. A caller who waits longer than `max_wait` is handed back to its call for the
//! overflow. The decisions themselves are in [`queue_policy`](crate::queue_policy).
//!
//! Agents tell the queue of every change (`AgentChanged`, pushed by their `Extension`
//! actor), so dispatching never polls. An agent is held for one call at a time with
//! `ReserveAgent`, which the extension grants atomically: two queues sharing an agent
//! never ring it for two calls.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use entities::call_group::Strategy;
use serde::Serialize;

use crate::event_hub::{now_ms, EventHub, HubEvent, Publish, QueueChanged, QueueEventKind};
use crate::extension::{AgentChanged, AgentStatus, Extension, ReserveAgent, WatchAgent};
use crate::queue_policy::{next_caller, pick_agents, AgentView, WaitKey};

/// How a group queues.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub strategy: Strategy,
    pub ring_timeout: Duration,
    pub max_wait: Duration,
    /// After-call work of the group's agents.
    pub wrap_up_seconds: u32,
    /// Where callers go when `max_wait` expires (`group:…`, `ext:…`); None: a prompt,
    /// then hang-up.
    pub overflow: Option<String>,
}

/// A member of the group.
#[derive(Debug, Clone)]
pub struct QueueMember {
    pub number: String,
    pub ext: Addr<Extension>,
    /// Lower is offered first.
    pub priority: i32,
}

/// What the queue needs of a waiting call.
pub struct Waiter {
    pub call_id: String,
    pub caller: String,
    pub call: Recipient<QueueEvent>,
    key: WaitKey,
    /// Agents ringing for this caller now.
    ringing: Vec<String>,
    /// A reservation is in flight.
    reserving: bool,
    /// Agents who rang for this caller without answering.
    tried: Vec<String>,
    timer: Option<SpawnHandle>,
}

/// What the queue tells a waiting call.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum QueueEvent {
    /// Ring these agents (held for this call) for at most `ring_timeout`; report the
    /// outcome with [`OfferResult`].
    Offer {
        agents: Vec<(String, Addr<Extension>)>,
        ring_timeout: Duration,
        wrap_up_seconds: u32,
        /// Since when each agent was idle (epoch ms), for the call log's `standby`.
        idle_since_ms: Vec<(String, i64)>,
    },
    /// `max_wait` is over: the call leaves the queue (`overflow` as configured).
    TimedOut { overflow: Option<String> },
}

pub struct Queue {
    number: String,
    config: QueueConfig,
    members: Vec<QueueMember>,
    agents: HashMap<String, AgentStatus>,
    waiting: Vec<Waiter>,
    seq: u64,
    cursor: usize,
    hub: Option<Addr<EventHub>>,
}

impl Queue {
    /// Publishes the queue's events (joined, answered, left, timed out) on `hub`.
    pub fn with_hub(mut self, hub: Addr<EventHub>) -> Self {
        self.hub = Some(hub);
        self
    }

    fn publish(&self, waiter: &Waiter, event: QueueEventKind, agent: Option<String>) {
        if let Some(hub) = &self.hub {
            hub.do_send(Publish(HubEvent::Queue(QueueChanged {
                group: self.number.clone(),
                call_id: waiter.call_id.clone(),
                caller: waiter.caller.clone(),
                event,
                agent,
                count: self.waiting.len(),
                at: now_ms(),
            })));
        }
    }

    pub fn new(number: String, config: QueueConfig, members: Vec<QueueMember>) -> Self {
        Self {
            number,
            config,
            members,
            agents: HashMap::new(),
            waiting: Vec::new(),
            seq: 0,
            cursor: 0,
            hub: None,
        }
    }

    fn views(&self) -> Vec<AgentView> {
        self.members
            .iter()
            .enumerate()
            .map(|(order, m)| {
                let status = self.agents.get(&m.number);
                AgentView {
                    number: m.number.clone(),
                    priority: m.priority,
                    order,
                    free: status.is_some_and(AgentStatus::free),
                    reducing: status
                        .is_some_and(|s| s.presence == entities::extension::Presence::Reducing),
                    idle_since_ms: status.map_or(i64::MAX, |s| s.idle_since_ms),
                    answered_calls: status.map_or(0, |s| s.answered_calls),
                }
            })
            .collect()
    }

    /// Offers waiting callers to free agents, best caller first, until one runs out.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        loop {
            let eligible = self
                .waiting
                .iter()
                .enumerate()
                .filter(|(_, w)| w.ringing.is_empty() && !w.reserving)
                .map(|(i, w)| (i, &w.key));
            let Some(index) = next_caller(eligible) else {
                return;
            };
            let views = self.views();
            let picked = pick_agents(
                self.config.strategy,
                &views,
                &self.waiting[index].tried,
                &mut self.cursor,
                rand::random(),
            );
            if picked.is_empty() {
                return;
            }
            // Not free for anyone else until the extensions answer.
            for number in &picked {
                if let Some(s) = self.agents.get_mut(number) {
                    s.reserved = true;
                }
            }
            let waiter = &mut self.waiting[index];
            waiter.reserving = true;
            let call_id = waiter.call_id.clone();
            let asks: Vec<_> = picked
                .iter()
                .filter_map(|n| self.members.iter().find(|m| &m.number == n))
                .map(|m| {
                    let ask = m.ext.send(ReserveAgent {
                        call_id: call_id.clone(),
                        ring_timeout: self.config.ring_timeout,
                    });
                    let member = (m.number.clone(), m.ext.clone());
                    async move { (member, ask.await.unwrap_or(false)) }
                })
                .collect();
            futures::future::join_all(asks)
                .into_actor(self)
                .map(move |answers, act, ctx| act.reserved(ctx, &call_id, answers))
                .spawn(ctx);
        }
    }

    fn reserved(
        &mut self,
        ctx: &mut Context<Self>,
        call_id: &str,
        answers: Vec<((String, Addr<Extension>), bool)>,
    ) {
        let granted: Vec<(String, Addr<Extension>)> = answers
            .into_iter()
            .filter_map(|(member, ok)| ok.then_some(member))
            .collect();
        let Some(waiter) = self.waiting.iter_mut().find(|w| w.call_id == call_id) else {
            // The caller left meanwhile: let the agents go.
            for (_, ext) in granted {
                ext.do_send(crate::extension::OfferEnded {
                    call_id: call_id.to_string(),
                    outcome: crate::extension::OfferOutcome::Withdrawn,
                });
            }
            return;
        };
        waiter.reserving = false;
        if !granted.is_empty() {
            waiter.ringing = granted.iter().map(|(n, _)| n.clone()).collect();
            let idle_since_ms = granted
                .iter()
                .filter_map(|(n, _)| Some((n.clone(), self.agents.get(n)?.idle_since_ms)))
                .collect();
            waiter.call.do_send(QueueEvent::Offer {
                agents: granted,
                ring_timeout: self.config.ring_timeout,
                wrap_up_seconds: self.config.wrap_up_seconds,
                idle_since_ms,
            });
        }
        self.dispatch(ctx);
    }

    fn position(&self, call_id: &str) -> Option<usize> {
        let key = self.waiting.iter().find(|w| w.call_id == call_id)?.key;
        Some(
            self.waiting
                .iter()
                .filter(|w| w.key.rank() < key.rank())
                .count()
                + 1,
        )
    }
}

impl Actor for Queue {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Hundreds of callers and agents may report at once.
        ctx.set_mailbox_capacity(4096);
        let me = ctx.address().recipient();
        for m in &self.members {
            m.ext.do_send(WatchAgent(me.clone()));
        }
    }
}

impl Handler<AgentChanged> for Queue {
    type Result = ();
    fn handle(&mut self, msg: AgentChanged, ctx: &mut Self::Context) {
        let free = msg.0.free();
        self.agents.insert(msg.0.number.clone(), msg.0);
        if free {
            self.dispatch(ctx);
        }
    }
}

/// A call joins the queue. Returns its position (1 = next).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Enqueue {
    pub call_id: String,
    pub caller: String,
    pub call: Recipient<QueueEvent>,
    pub vip_level: u32,
    pub queue_priority: u32,
}

impl Handler<Enqueue> for Queue {
    type Result = usize;
    fn handle(&mut self, msg: Enqueue, ctx: &mut Self::Context) -> usize {
        self.seq += 1;
        let call_id = msg.call_id.clone();
        let timer = ctx.run_later(self.config.max_wait, move |act, ctx| {
            let Some(i) = act.waiting.iter().position(|w| w.call_id == call_id) else {
                return;
            };
            let waiter = act.waiting.remove(i);
            tracing::info!(queue = %act.number, call_id = %waiter.call_id, "queue timeout");
            act.publish(&waiter, QueueEventKind::TimedOut, None);
            waiter.call.do_send(QueueEvent::TimedOut {
                overflow: act.config.overflow.clone(),
            });
            act.dispatch(ctx);
        });
        self.waiting.push(Waiter {
            call_id: msg.call_id.clone(),
            caller: msg.caller,
            call: msg.call,
            key: WaitKey {
                enqueued_ms: now_ms(),
                vip_level: msg.vip_level,
                queue_priority: msg.queue_priority,
                seq: self.seq,
            },
            ringing: Vec::new(),
            reserving: false,
            tried: Vec::new(),
            timer: Some(timer),
        });
        if let Some(w) = self.waiting.last() {
            self.publish(w, QueueEventKind::Joined, None);
        }
        self.dispatch(ctx);
        self.position(&msg.call_id).unwrap_or(1)
    }
}

/// The outcome of an offer: answered by `answered_by`, or rung out.
#[derive(Message)]
#[rtype(result = "()")]
pub struct OfferResult {
    pub call_id: String,
    pub answered_by: Option<String>,
}

impl Handler<OfferResult> for Queue {
    type Result = ();
    fn handle(&mut self, msg: OfferResult, ctx: &mut Self::Context) {
        let Some(i) = self.waiting.iter().position(|w| w.call_id == msg.call_id) else {
            return;
        };
        if msg.answered_by.is_some() {
            let waiter = self.waiting.remove(i);
            if let Some(t) = waiter.timer {
                ctx.cancel_future(t);
            }
            self.publish(&waiter, QueueEventKind::Answered, msg.answered_by.clone());
        } else {
            let waiter = &mut self.waiting[i];
            let rang = std::mem::take(&mut waiter.ringing);
            waiter.tried.extend(rang);
        }
        self.dispatch(ctx);
    }
}

/// The caller left the queue (hung up, or the call went elsewhere).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Dequeue {
    pub call_id: String,
}

impl Handler<Dequeue> for Queue {
    type Result = ();
    fn handle(&mut self, msg: Dequeue, ctx: &mut Self::Context) {
        if let Some(i) = self.waiting.iter().position(|w| w.call_id == msg.call_id) {
            let waiter = self.waiting.remove(i);
            if let Some(t) = waiter.timer {
                ctx.cancel_future(t);
            }
            self.publish(&waiter, QueueEventKind::Left, None);
        }
        self.dispatch(ctx);
    }
}

/// One waiting caller, as interface 40 shows it.
#[derive(Debug, Clone, Serialize)]
pub struct QueuedCaller {
    pub caller: String,
    pub viplevel: u32,
    pub waitingtime: i64,
    pub target: String,
}

/// A queue, as interface 40 shows it.
#[derive(Debug, Clone, Serialize)]
pub struct QueueSnapshot {
    pub group: String,
    pub count: usize,
    pub queue: Vec<QueuedCaller>,
}

/// Query: the callers waiting now, in the order they will be served.
#[derive(Message)]
#[rtype(result = "QueueSnapshot")]
pub struct GetQueue;

impl Handler<GetQueue> for Queue {
    type Result = MessageResult<GetQueue>;
    fn handle(&mut self, _: GetQueue, _: &mut Self::Context) -> Self::Result {
        let now = now_ms();
        let mut waiting: Vec<&Waiter> = self.waiting.iter().collect();
        waiting.sort_by_key(|w| w.key.rank());
        MessageResult(QueueSnapshot {
            group: self.number.clone(),
            count: waiting.len(),
            queue: waiting
                .iter()
                .map(|w| QueuedCaller {
                    caller: w.caller.clone(),
                    viplevel: w.key.vip_level,
                    waitingtime: ((now - w.key.enqueued_ms).max(0) + 500) / 1_000,
                    target: self.number.clone(),
                })
                .collect(),
        })
    }
}

/// Command: the group's settings or members changed (admin API, provisioning).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReconfigureQueue {
    pub config: QueueConfig,
    pub members: Vec<QueueMember>,
}

impl Handler<ReconfigureQueue> for Queue {
    type Result = ();
    fn handle(&mut self, msg: ReconfigureQueue, ctx: &mut Self::Context) {
        let me = ctx.address().recipient();
        for m in &msg.members {
            if !self.members.iter().any(|old| old.number == m.number) {
                m.ext.do_send(WatchAgent(me.clone()));
            }
        }
        self.agents
            .retain(|n, _| msg.members.iter().any(|m| &m.number == n));
        self.config = msg.config;
        self.members = msg.members;
        self.dispatch(ctx);
    }
}
