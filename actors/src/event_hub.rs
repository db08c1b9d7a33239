//! `EventHub`: one per process. Every state change of a leg, call or extension is
//! published here once, and everything that shows or pushes state (WebSocket pages, CRM
//! callbacks, tests) subscribes instead of polling.

use actix::prelude::*;
use serde::Serialize;

/// Call state as the screen-pop channels name it (spec interfaces 6 and 7 map it to their
/// own words: `ringing` on HTTP, `ring` on WebSocket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallState {
    Calling,
    /// Answered by the switch and waiting in a group's queue.
    Queued,
    Ringing,
    Talking,
    Hungup,
    Canceled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Incoming,
    Outgoing,
    Internal,
}

/// A call (or one of its legs) changed state.
#[derive(Debug, Clone, Serialize)]
pub struct CallStateChanged {
    /// The SIP Call-ID of the caller's leg: the call's id everywhere (call log `callid`).
    pub call_id: String,
    /// The Call-ID of the leg this event is about (equal to `call_id` for the caller's leg).
    pub leg_call_id: String,
    pub caller: String,
    pub callee: String,
    pub direction: Direction,
    /// The group the call came through, if any.
    pub group: Option<String>,
    /// The extension whose phone this event concerns, if any.
    pub extension: Option<String>,
    pub state: CallState,
    /// Epoch milliseconds.
    pub at: i64,
}

/// Phone state as the monitoring API reports it (interface 23 spells `IDEL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PhoneState {
    #[serde(rename = "IDEL")]
    Idle,
    #[serde(rename = "BUSY_INCOMING")]
    BusyIncoming,
    #[serde(rename = "BUSY_OUTGOING")]
    BusyOutgoing,
    #[serde(rename = "OFFLINE")]
    Offline,
}

/// An extension's registration or phone state changed.
#[derive(Debug, Clone, Serialize)]
pub struct ExtensionStateChanged {
    pub extension: String,
    pub registered: bool,
    pub phone: PhoneState,
    pub remote_number: Option<String>,
    /// The agent's presence (`online`, `busy`, `reducing`, `offline`) and its reason.
    pub presence: &'static str,
    pub presence_reason: String,
    /// In after-call work (wrap-up) now.
    pub wrap_up: bool,
    pub at: i64,
}

/// What happened in a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueEventKind {
    /// A caller joined the queue.
    Joined,
    /// An agent answered the caller.
    Answered,
    /// The caller hung up while waiting.
    Left,
    /// The caller waited `max_wait` and went to the overflow (or was hung up).
    TimedOut,
}

/// A caller joined or left a queue; `count` is how many wait now.
#[derive(Debug, Clone, Serialize)]
pub struct QueueChanged {
    pub group: String,
    pub call_id: String,
    pub caller: String,
    pub event: QueueEventKind,
    /// The agent who answered (for `answered`).
    pub agent: Option<String>,
    pub count: usize,
    pub at: i64,
}

/// Which party of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Party {
    Caller,
    Callee,
}

/// A key pressed on one leg of a call: exactly one event per press, whichever way the
/// phone sent it.
#[derive(Debug, Clone, Serialize)]
pub struct LegDtmf {
    pub call_id: String,
    /// The Call-ID of the leg the key came from.
    pub leg_call_id: String,
    pub party: Party,
    /// The number of the party that pressed it.
    pub number: String,
    /// `0-9`, `*`, `#`, `A-D`.
    pub digit: String,
    /// `rfc4733`, `inband` or `info`.
    pub source: &'static str,
    pub duration_ms: u32,
    pub at: i64,
}

#[derive(Debug, Clone, Message, Serialize)]
#[rtype(result = "()")]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubEvent {
    Call(CallStateChanged),
    Extension(ExtensionStateChanged),
    DtmfReceived(LegDtmf),
    Queue(QueueChanged),
}

/// Command: deliver every future event to `subscriber`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<HubEvent>);

/// Command: fan an event out to the subscribers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub HubEvent);

#[derive(Default)]
pub struct EventHub {
    subscribers: Vec<Recipient<HubEvent>>,
}

impl Actor for EventHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Events come in bursts at call set-up; don't make publishers wait on a full mailbox.
        ctx.set_mailbox_capacity(4096);
    }
}

impl Handler<Subscribe> for EventHub {
    type Result = ();
    fn handle(&mut self, msg: Subscribe, _: &mut Self::Context) {
        self.subscribers.push(msg.0);
    }
}

impl Handler<Publish> for EventHub {
    type Result = ();
    fn handle(&mut self, msg: Publish, _: &mut Self::Context) {
        tracing::debug!(event = ?msg.0, "event");
        // Subscribers that stopped are dropped here rather than tracked separately.
        self.subscribers.retain(|s| s.connected());
        for s in &self.subscribers {
            s.do_send(msg.0.clone());
        }
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
