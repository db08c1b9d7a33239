//! The RFC 3261 §17 transaction layer, sans-IO.
//!
//! Four state machines — INVITE/non-INVITE × client/server — each a pure function
//! `(context, state, input) → (state, actions)` ([`client_invite`], [`client_non_invite`],
//! [`server_invite`], [`server_non_invite`]), and a [`TransactionLayer`] that owns the
//! transactions, matches messages to them (RFC 3261 §17.1.3, §17.2.3, with the RFC 2543
//! fallback), keeps their timers in a min-heap and turns actions into [`Event`]s. Time is
//! always passed in (`now`), so tests drive it with a fake clock and a tokio task drives it
//! with `sleep_until(layer.next_deadline())`.
//!
//! # 2xx handling: RFC 6026
//! INVITE transactions follow RFC 6026 rather than RFC 3261's "terminate on 2xx":
//! - the **server** transaction enters `Accepted` when the TU sends a 2xx. In that state it
//!   also does the TU's RFC 3261 §13.3.1.4 job: it retransmits the 2xx (from T1, doubling,
//!   capped at T2) until the ACK arrives, matching the ACK (a new transaction, new branch) by
//!   Call-ID, CSeq number and From-tag. The ACK is handed to the TU once ([`Event::Ack`]);
//!   retransmitted INVITEs are absorbed. Timer L (64·T1) ends the state; if no ACK came by
//!   then the TU gets [`Event::Timeout`] and should send BYE. The 2xx is retransmitted over
//!   every transport: the reliability it provides is end to end (§13.3.1.4).
//! - the **client** transaction enters `Accepted` on a 2xx, hands every 2xx with a new
//!   To-tag (forks) to the TU, and, once the TU has sent its ACK through
//!   [`TransactionLayer::ack_2xx`], answers retransmissions of that 2xx by re-sending the
//!   ACK without bothering the TU. Timer M (64·T1) ends it.
//!
//! # Timer A
//! Timer A doubles without a cap, as RFC 3261 §17.1.1.2 says (0, 0.5, 1.5, 3.5, 7.5, 15.5,
//! 31.5 s, then Timer B at 32 s). The T2 cap applies to Timers E and G and to 2xx resends.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use foldhash::HashMap;

use bytes::Bytes;

use super::message::{
    new_branch, new_tag, stamp_received, Method, Request, Response, SipMessage, Transport,
};

/// RTT estimate (RFC 3261 §17.1.1.1).
pub const T1: Duration = Duration::from_millis(T1_MS);
/// Maximum retransmit interval for non-INVITE requests and INVITE responses.
pub const T2: Duration = Duration::from_secs(4);
/// Maximum time a message stays in the network.
pub const T4: Duration = Duration::from_secs(5);
const T1_MS: u64 = 500;
/// INVITE request retransmit interval, initially T1 (unreliable transports only).
pub const TIMER_A: Duration = T1;
/// INVITE client transaction timeout: 64·T1.
pub const TIMER_B: Duration = Duration::from_millis(64 * T1_MS);
/// Wait time for response retransmits in the INVITE client `Completed` state: > 32 s over
/// unreliable transports, 0 over reliable ones.
pub const TIMER_D: Duration = Duration::from_secs(32);
/// Non-INVITE request retransmit interval, initially T1 (unreliable only).
pub const TIMER_E: Duration = T1;
/// Non-INVITE client transaction timeout: 64·T1.
pub const TIMER_F: Duration = Duration::from_millis(64 * T1_MS);
/// INVITE final response retransmit interval, initially T1 (unreliable only).
pub const TIMER_G: Duration = T1;
/// Wait time for ACK receipt: 64·T1.
pub const TIMER_H: Duration = Duration::from_millis(64 * T1_MS);
/// Wait time for ACK retransmits: T4 over unreliable transports, 0 over reliable ones.
pub const TIMER_I: Duration = T4;
/// Wait time for non-INVITE request retransmits: 64·T1 unreliable, 0 reliable.
pub const TIMER_J: Duration = Duration::from_millis(64 * T1_MS);
/// Wait time for non-INVITE response retransmits: T4 unreliable, 0 reliable.
pub const TIMER_K: Duration = T4;
/// RFC 6026: how long an INVITE server transaction stays `Accepted`: 64·T1.
pub const TIMER_L: Duration = Duration::from_millis(64 * T1_MS);
/// RFC 6026: how long an INVITE client transaction stays `Accepted`: 64·T1.
pub const TIMER_M: Duration = Duration::from_millis(64 * T1_MS);
/// How long an INVITE server transaction waits for the TU's first response before sending
/// `100 Trying` itself (RFC 3261 §17.2.1: unless the TU answers within 200 ms).
pub const TRYING_DELAY: Duration = Duration::from_millis(200);

/// The transaction timers. `Resend2xx` is the UAS 2xx retransmission of RFC 3261 §13.3.1.4,
/// which this layer runs in the RFC 6026 `Accepted` state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerId {
    A,
    B,
    D,
    E,
    F,
    G,
    H,
    I,
    J,
    K,
    L,
    M,
    Resend2xx,
    /// [`TRYING_DELAY`]: send the held `100 Trying`.
    Trying,
}

/// What a state machine is told.
#[derive(Debug, Clone)]
pub enum Input {
    /// A message from the network that matched the transaction: a response for client
    /// transactions; a retransmitted request or an ACK for server transactions.
    Received(SipMessage),
    /// The TU sends a response (server transactions).
    TuResponse(Response),
    /// The TU sent the ACK for a 2xx (INVITE client transaction, `Accepted`): transmit it and
    /// re-send it when that 2xx is retransmitted.
    TuAck {
        to_tag: String,
        ack: Bytes,
        dest: SocketAddr,
    },
    Timer(TimerId),
    TransportError,
}

/// What a state machine asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Transmit {
        data: Bytes,
        dest: SocketAddr,
    },
    /// (Re)arm a timer; a zero duration fires at once.
    StartTimer(TimerId, Duration),
    /// Hand a message to the TU.
    Deliver(SipMessage),
    Timeout,
    TransportError,
    Terminated,
}

fn transmit(data: &Bytes, dest: SocketAddr) -> Action {
    Action::Transmit {
        data: data.clone(),
        dest,
    }
}

/// A timer that is zero over reliable transports (Timers D, I, J, K).
fn unreliable_only(reliable: bool, d: Duration) -> Duration {
    if reliable {
        Duration::ZERO
    } else {
        d
    }
}

/// What a client transaction knows: the request (INVITE only: the ACK of a non-2xx final
/// is built from it), its wire form and where it goes. Both are released once a final
/// response has arrived: the transaction then lives on for up to 32 s (Timers D, K, M)
/// only to absorb retransmissions.
#[derive(Debug, Clone)]
pub struct ClientCtx {
    /// Boxed: released after the final response, while the transaction lives on.
    pub request: Option<Box<Request>>,
    pub bytes: Bytes,
    pub dest: SocketAddr,
    pub reliable: bool,
}

/// What a server transaction knows: where responses go, and (INVITE) what the ACK for its
/// 2xx shares with the request. The request itself goes to the TU, not kept here: a
/// transaction outlives its request by up to 32 s (Timers J and L) and only absorbs
/// retransmissions in that time.
#[derive(Debug, Clone)]
pub struct ServerCtx {
    /// Boxed: only INVITE server transactions have one.
    pub dialog: Option<Box<DialogRef>>,
    pub dest: SocketAddr,
    pub reliable: bool,
}

// ---------------------------------------------------------------------------------------
// INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 §8.4)
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientInviteState {
    Calling {
        a_interval: Duration,
    },
    Proceeding,
    Completed {
        ack: Bytes,
    },
    /// `acks`: the TU's ACK for each 2xx To-tag, with its destination.
    Accepted {
        acks: Vec<(String, Bytes, SocketAddr)>,
    },
    Terminated,
}

impl ClientCtx {
    /// Drops what only an unanswered request needs (see the type's doc).
    fn release_request(&mut self) {
        self.request = None;
        self.bytes = Bytes::new();
    }
}

pub fn client_invite_start(ctx: &ClientCtx) -> (ClientInviteState, Vec<Action>) {
    let mut actions = vec![transmit(&ctx.bytes, ctx.dest)];
    if !ctx.reliable {
        actions.push(Action::StartTimer(TimerId::A, TIMER_A));
    }
    actions.push(Action::StartTimer(TimerId::B, TIMER_B));
    (
        ClientInviteState::Calling {
            a_interval: TIMER_A,
        },
        actions,
    )
}

pub fn client_invite(
    ctx: &ClientCtx,
    state: ClientInviteState,
    input: Input,
) -> (ClientInviteState, Vec<Action>) {
    use ClientInviteState::*;
    match (state, input) {
        (Calling { a_interval }, Input::Timer(TimerId::A)) => {
            let next = a_interval.saturating_mul(2);
            (
                Calling { a_interval: next },
                vec![
                    transmit(&ctx.bytes, ctx.dest),
                    Action::StartTimer(TimerId::A, next),
                ],
            )
        }
        (Calling { .. }, Input::Timer(TimerId::B)) => {
            (Terminated, vec![Action::Timeout, Action::Terminated])
        }
        (Calling { .. } | Proceeding, Input::Received(SipMessage::Response(r))) => match r.status {
            0..=199 => (Proceeding, vec![Action::Deliver(r.into())]),
            200..=299 => (
                Accepted { acks: Vec::new() },
                vec![
                    Action::Deliver(r.into()),
                    Action::StartTimer(TimerId::M, TIMER_M),
                ],
            ),
            _ => {
                // The transaction ACKs non-2xx finals itself (§17.1.1.3), same branch. The
                // layer keeps every INVITE's request until its final response.
                debug_assert!(ctx.request.is_some(), "INVITE client without its request");
                let ack = ctx
                    .request
                    .as_ref()
                    .map(|req| Bytes::from(make_ack(req, &r).to_bytes()))
                    .unwrap_or_default();
                (
                    Completed { ack: ack.clone() },
                    vec![
                        transmit(&ack, ctx.dest),
                        Action::Deliver(r.into()),
                        Action::StartTimer(TimerId::D, unreliable_only(ctx.reliable, TIMER_D)),
                    ],
                )
            }
        },
        (Completed { ack }, Input::Received(SipMessage::Response(r))) if r.status >= 300 => {
            let a = transmit(&ack, ctx.dest);
            (Completed { ack }, vec![a])
        }
        (Completed { .. }, Input::Timer(TimerId::D)) => (Terminated, vec![Action::Terminated]),
        (Accepted { acks }, Input::Received(SipMessage::Response(r))) if r.is_success() => {
            let tag = r.to_tag().unwrap_or_default();
            let actions = match acks.iter().find(|(t, _, _)| *t == tag) {
                Some((_, ack, dest)) => vec![transmit(ack, *dest)],
                None => vec![Action::Deliver(r.into())],
            };
            (Accepted { acks }, actions)
        }
        (Accepted { mut acks }, Input::TuAck { to_tag, ack, dest }) => {
            let a = transmit(&ack, dest);
            acks.retain(|(t, _, _)| *t != to_tag);
            acks.push((to_tag, ack, dest));
            (Accepted { acks }, vec![a])
        }
        (Accepted { .. }, Input::Timer(TimerId::M)) => (Terminated, vec![Action::Terminated]),
        (Terminated, _) => (Terminated, Vec::new()),
        (_, Input::TransportError) => {
            (Terminated, vec![Action::TransportError, Action::Terminated])
        }
        (state, _) => (state, Vec::new()),
    }
}

// ---------------------------------------------------------------------------------------
// Non-INVITE client transaction (RFC 3261 §17.1.2)
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientNonInviteState {
    Trying { e_interval: Duration },
    Proceeding,
    Completed,
    Terminated,
}

pub fn client_non_invite_start(ctx: &ClientCtx) -> (ClientNonInviteState, Vec<Action>) {
    let mut actions = vec![transmit(&ctx.bytes, ctx.dest)];
    if !ctx.reliable {
        actions.push(Action::StartTimer(TimerId::E, TIMER_E));
    }
    actions.push(Action::StartTimer(TimerId::F, TIMER_F));
    (
        ClientNonInviteState::Trying {
            e_interval: TIMER_E,
        },
        actions,
    )
}

pub fn client_non_invite(
    ctx: &ClientCtx,
    state: ClientNonInviteState,
    input: Input,
) -> (ClientNonInviteState, Vec<Action>) {
    use ClientNonInviteState::*;
    match (state, input) {
        (Trying { e_interval }, Input::Timer(TimerId::E)) => {
            let next = e_interval.saturating_mul(2).min(T2);
            (
                Trying { e_interval: next },
                vec![
                    transmit(&ctx.bytes, ctx.dest),
                    Action::StartTimer(TimerId::E, next),
                ],
            )
        }
        // In Proceeding the interval is T2 outright (§17.1.2.2).
        (Proceeding, Input::Timer(TimerId::E)) => (
            Proceeding,
            vec![
                transmit(&ctx.bytes, ctx.dest),
                Action::StartTimer(TimerId::E, T2),
            ],
        ),
        (Trying { .. } | Proceeding, Input::Timer(TimerId::F)) => {
            (Terminated, vec![Action::Timeout, Action::Terminated])
        }
        (Trying { .. } | Proceeding, Input::Received(SipMessage::Response(r))) => {
            if r.is_provisional() {
                (Proceeding, vec![Action::Deliver(r.into())])
            } else {
                (
                    Completed,
                    vec![
                        Action::Deliver(r.into()),
                        Action::StartTimer(TimerId::K, unreliable_only(ctx.reliable, TIMER_K)),
                    ],
                )
            }
        }
        (Completed, Input::Timer(TimerId::K)) => (Terminated, vec![Action::Terminated]),
        (Terminated, _) => (Terminated, Vec::new()),
        (Trying { .. } | Proceeding, Input::TransportError) => {
            (Terminated, vec![Action::TransportError, Action::Terminated])
        }
        (state, _) => (state, Vec::new()),
    }
}

// ---------------------------------------------------------------------------------------
// INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1)
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerInviteState {
    /// `last`: the latest provisional response, re-sent on INVITE retransmissions.
    /// `held`: `last` is the layer's own `100 Trying`, not sent yet (see [`TRYING_DELAY`]).
    Proceeding {
        last: Option<Bytes>,
        held: bool,
    },
    Completed {
        last: Bytes,
        g_interval: Duration,
    },
    Confirmed,
    Accepted {
        last: Bytes,
        acked: bool,
        resend_interval: Duration,
    },
    Terminated,
}

/// Starts an INVITE server transaction: the request goes to the TU. `trying`, when given,
/// is held for [`TRYING_DELAY`] and sent only if the TU has not answered by then (or the
/// INVITE is retransmitted): a call the TU answers at once (a 407, a 180) costs no 100.
pub fn server_invite_start(
    request: Request,
    trying: Option<Bytes>,
) -> (ServerInviteState, Vec<Action>) {
    let mut actions = vec![Action::Deliver(request.into())];
    if trying.is_some() {
        actions.push(Action::StartTimer(TimerId::Trying, TRYING_DELAY));
    }
    (
        ServerInviteState::Proceeding {
            held: trying.is_some(),
            last: trying,
        },
        actions,
    )
}

pub fn server_invite(
    ctx: &ServerCtx,
    state: ServerInviteState,
    input: Input,
) -> (ServerInviteState, Vec<Action>) {
    use ServerInviteState::*;
    let is_ack = |m: &SipMessage| matches!(m, SipMessage::Request(r) if r.method == Method::Ack);
    match (state, input) {
        (Proceeding { last, .. }, Input::Received(m)) if !is_ack(&m) => {
            let actions = last.iter().map(|b| transmit(b, ctx.dest)).collect();
            (Proceeding { last, held: false }, actions)
        }
        (Proceeding { last, held: true }, Input::Timer(TimerId::Trying)) => {
            let actions = last.iter().map(|b| transmit(b, ctx.dest)).collect();
            (Proceeding { last, held: false }, actions)
        }
        (Proceeding { .. }, Input::TuResponse(r)) => {
            let data = Bytes::from(r.to_bytes());
            let send = transmit(&data, ctx.dest);
            match r.status {
                0..=199 => (
                    Proceeding {
                        last: Some(data),
                        held: false,
                    },
                    vec![send],
                ),
                200..=299 => (
                    Accepted {
                        last: data,
                        acked: false,
                        resend_interval: T1,
                    },
                    vec![
                        send,
                        Action::StartTimer(TimerId::Resend2xx, T1),
                        Action::StartTimer(TimerId::L, TIMER_L),
                    ],
                ),
                _ => {
                    let mut actions = vec![send];
                    if !ctx.reliable {
                        actions.push(Action::StartTimer(TimerId::G, TIMER_G));
                    }
                    actions.push(Action::StartTimer(TimerId::H, TIMER_H));
                    (
                        Completed {
                            last: data,
                            g_interval: TIMER_G,
                        },
                        actions,
                    )
                }
            }
        }
        (Completed { last, g_interval }, Input::Received(m)) => {
            if is_ack(&m) {
                (
                    Confirmed,
                    vec![Action::StartTimer(
                        TimerId::I,
                        unreliable_only(ctx.reliable, TIMER_I),
                    )],
                )
            } else {
                let a = transmit(&last, ctx.dest);
                (Completed { last, g_interval }, vec![a])
            }
        }
        (Completed { last, g_interval }, Input::Timer(TimerId::G)) => {
            let next = g_interval.saturating_mul(2).min(T2);
            let a = transmit(&last, ctx.dest);
            (
                Completed {
                    last,
                    g_interval: next,
                },
                vec![a, Action::StartTimer(TimerId::G, next)],
            )
        }
        (Completed { .. }, Input::Timer(TimerId::H)) => {
            (Terminated, vec![Action::Timeout, Action::Terminated])
        }
        (Confirmed, Input::Timer(TimerId::I)) => (Terminated, vec![Action::Terminated]),
        (
            Accepted {
                last,
                acked,
                resend_interval,
            },
            Input::Received(m),
        ) => {
            let (actions, ack_now) = match m {
                // The first ACK for the 2xx goes to the TU; later ones are absorbed.
                SipMessage::Request(r) if r.method == Method::Ack && !acked => {
                    (vec![Action::Deliver(r.into())], true)
                }
                // A retransmitted INVITE before the ACK: the 2xx may have been lost.
                SipMessage::Request(r) if r.method != Method::Ack && !acked => {
                    (vec![transmit(&last, ctx.dest)], false)
                }
                _ => (Vec::new(), false),
            };
            let acked = acked || ack_now;
            (
                Accepted {
                    // Acknowledged: the 2xx is never sent again, so it need not be kept
                    // for the rest of Timer L.
                    last: if acked { Bytes::new() } else { last },
                    acked,
                    resend_interval,
                },
                actions,
            )
        }
        (
            Accepted {
                acked,
                resend_interval,
                ..
            },
            Input::TuResponse(r),
        ) if r.is_success() => {
            let data = Bytes::from(r.to_bytes());
            let a = transmit(&data, ctx.dest);
            (
                Accepted {
                    last: data,
                    acked,
                    resend_interval,
                },
                vec![a],
            )
        }
        (
            Accepted {
                last,
                acked: false,
                resend_interval,
            },
            Input::Timer(TimerId::Resend2xx),
        ) => {
            let next = resend_interval.saturating_mul(2).min(T2);
            let a = transmit(&last, ctx.dest);
            (
                Accepted {
                    last,
                    acked: false,
                    resend_interval: next,
                },
                vec![a, Action::StartTimer(TimerId::Resend2xx, next)],
            )
        }
        (Accepted { acked, .. }, Input::Timer(TimerId::L)) => {
            let mut actions = Vec::new();
            if !acked {
                actions.push(Action::Timeout);
            }
            actions.push(Action::Terminated);
            (Terminated, actions)
        }
        (Terminated, _) => (Terminated, Vec::new()),
        (_, Input::TransportError) => {
            (Terminated, vec![Action::TransportError, Action::Terminated])
        }
        (state, _) => (state, Vec::new()),
    }
}

// ---------------------------------------------------------------------------------------
// Non-INVITE server transaction (RFC 3261 §17.2.2)
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerNonInviteState {
    Trying,
    Proceeding { last: Bytes },
    Completed { last: Bytes },
    Terminated,
}

/// Starts a non-INVITE server transaction: the request goes to the TU.
pub fn server_non_invite_start(request: Request) -> (ServerNonInviteState, Vec<Action>) {
    (
        ServerNonInviteState::Trying,
        vec![Action::Deliver(request.into())],
    )
}

pub fn server_non_invite(
    ctx: &ServerCtx,
    state: ServerNonInviteState,
    input: Input,
) -> (ServerNonInviteState, Vec<Action>) {
    use ServerNonInviteState::*;
    match (state, input) {
        // Retransmissions before any response are absorbed (§17.2.2).
        (Trying, Input::Received(_)) => (Trying, Vec::new()),
        (Proceeding { last }, Input::Received(_)) => {
            let a = transmit(&last, ctx.dest);
            (Proceeding { last }, vec![a])
        }
        (Completed { last }, Input::Received(_)) => {
            let a = transmit(&last, ctx.dest);
            (Completed { last }, vec![a])
        }
        (Trying | Proceeding { .. }, Input::TuResponse(r)) => {
            let data = Bytes::from(r.to_bytes());
            let send = transmit(&data, ctx.dest);
            if r.is_provisional() {
                (Proceeding { last: data }, vec![send])
            } else {
                (
                    Completed { last: data },
                    vec![
                        send,
                        Action::StartTimer(TimerId::J, unreliable_only(ctx.reliable, TIMER_J)),
                    ],
                )
            }
        }
        (Completed { .. }, Input::Timer(TimerId::J)) => (Terminated, vec![Action::Terminated]),
        (Terminated, _) => (Terminated, Vec::new()),
        (_, Input::TransportError) => {
            (Terminated, vec![Action::TransportError, Action::Terminated])
        }
        (state, _) => (state, Vec::new()),
    }
}

// ---------------------------------------------------------------------------------------
// Request builders the transaction layer needs
// ---------------------------------------------------------------------------------------

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): the INVITE's Request-URI,
/// Call-ID, From, CSeq number and top Via (same branch) and Route set, the response's To.
pub fn make_ack(invite: &Request, response: &Response) -> Request {
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    if let Some(via) = invite.headers.get("Via") {
        ack.headers.add("Via", via);
    }
    for name in ["From", "Call-ID"] {
        if let Some(v) = invite.headers.get(name) {
            ack.headers.add(name, v);
        }
    }
    if let Some(to) = response.headers.get("To") {
        ack.headers.add("To", to);
    }
    let seq = invite.cseq().map_or(1, |(n, _)| n);
    ack.set_cseq(seq, &Method::Ack);
    for route in invite.headers.get_all("Route") {
        ack.headers.add("Route", route);
    }
    ack.set_max_forwards(70);
    ack
}

/// The CANCEL for an INVITE (RFC 3261 §9.1): same Request-URI, Call-ID, To, From, CSeq
/// number, top Via (same branch) and Route set.
pub fn make_cancel(invite: &Request) -> Request {
    let mut cancel = Request::new(Method::Cancel, invite.uri.clone());
    if let Some(via) = invite.headers.get("Via") {
        cancel.headers.add("Via", via);
    }
    for name in ["From", "To", "Call-ID"] {
        if let Some(v) = invite.headers.get(name) {
            cancel.headers.add(name, v);
        }
    }
    let seq = invite.cseq().map_or(1, |(n, _)| n);
    cancel.set_cseq(seq, &Method::Cancel);
    for route in invite.headers.get_all("Route") {
        cancel.headers.add("Route", route);
    }
    cancel.set_max_forwards(70);
    cancel
}

// ---------------------------------------------------------------------------------------
// Transaction keys (RFC 3261 §17.1.3, §17.2.3)
// ---------------------------------------------------------------------------------------

/// Identifies a transaction. ACK is keyed as INVITE so that the ACK for a non-2xx final
/// finds its INVITE server transaction; CANCEL keeps its own method (own transaction) and is
/// matched to its INVITE through [`TransactionKey::with_method`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransactionKey {
    /// Our own requests: the branch we generated and the CSeq method.
    Client {
        branch: CompactString,
        method: Method,
    },
    /// Requests with an RFC 3261 branch: branch, sent-by and method. Inline strings: a key
    /// is cloned into timers and events several times per transaction.
    Server {
        branch: CompactString,
        sent_by: CompactString,
        method: Method,
    },
    /// RFC 2543 requests (no magic cookie): Request-URI, From-tag, Call-ID, CSeq number,
    /// top Via and method. The To-tag of §17.2.3 is left out so that the ACK (which carries
    /// the tag of our response) and the CANCEL (which carries none) still match.
    /// Boxed: rare, and four strings would double the size of every key.
    Rfc2543(Box<Rfc2543Key>),
}

/// What identifies an RFC 2543 transaction (see [`TransactionKey::Rfc2543`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rfc2543Key {
    pub request_uri: String,
    pub from_tag: String,
    pub call_id: String,
    pub cseq: u32,
    pub top_via: String,
    pub method: Method,
}

fn key_method(m: &Method) -> Method {
    if *m == Method::Ack {
        Method::Invite
    } else {
        m.clone()
    }
}

impl TransactionKey {
    /// The key of a request received from the network (None without a Via or CSeq, which a
    /// parsed request always has).
    pub fn for_server(req: &Request) -> Option<TransactionKey> {
        let via = req.top_via()?;
        let method = key_method(&req.method);
        if via.has_rfc3261_branch() {
            return Some(TransactionKey::Server {
                sent_by: via.sent_by().to_ascii_lowercase(),
                branch: via.branch.clone().unwrap_or_default(),
                method,
            });
        }
        let (cseq, _) = req.cseq()?;
        // The Via as received, before received/rport stamping, identifies the sender.
        let raw_via = req.headers.get("Via").unwrap_or("").to_string();
        Some(TransactionKey::Rfc2543(Box::new(Rfc2543Key {
            request_uri: req.uri.to_string(),
            from_tag: req
                .from()
                .and_then(|f| f.tag().map(str::to_string))
                .unwrap_or_default(),
            call_id: req.call_id().unwrap_or("").to_string(),
            cseq,
            top_via: raw_via,
            method,
        })))
    }

    /// The client transaction a response belongs to: top Via branch + CSeq method.
    pub fn for_response(resp: &Response) -> Option<TransactionKey> {
        let via = resp.top_via()?;
        let (_, method) = resp.cseq()?;
        Some(TransactionKey::Client {
            branch: via.branch.clone()?,
            method: key_method(&method),
        })
    }

    /// The same key with another method (CANCEL → its INVITE).
    pub fn with_method(&self, m: Method) -> TransactionKey {
        let mut k = self.clone();
        match &mut k {
            TransactionKey::Client { method, .. } | TransactionKey::Server { method, .. } => {
                *method = m
            }
            TransactionKey::Rfc2543(k) => k.method = m,
        }
        k
    }

    pub fn method(&self) -> &Method {
        match self {
            TransactionKey::Client { method, .. } | TransactionKey::Server { method, .. } => method,
            TransactionKey::Rfc2543(k) => &k.method,
        }
    }

    pub fn is_server(&self) -> bool {
        !matches!(self, TransactionKey::Client { .. })
    }
}

// ---------------------------------------------------------------------------------------
// The layer
// ---------------------------------------------------------------------------------------

/// What the layer tells its owner (the transport task and the TU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Send these bytes. Over a reliable transport `dest` is the connection's peer.
    Transmit {
        data: Bytes,
        dest: SocketAddr,
        transport: Transport,
    },
    /// A new request for the TU, with the server transaction to answer it on. Its top Via
    /// already carries `received`/`rport` (RFC 3581).
    Request {
        key: TransactionKey,
        request: Request,
        src: SocketAddr,
        transport: Transport,
    },
    /// An ACK for a 2xx. `invite` is the INVITE server transaction it acknowledges when the
    /// layer matched it (the 2xx resends have then stopped); `None` for an ACK the layer knows
    /// nothing of (the dialog layer decides).
    Ack {
        invite: Option<TransactionKey>,
        request: Request,
        src: SocketAddr,
    },
    /// A CANCEL for a pending INVITE. The layer has already answered the CANCEL with 200;
    /// the TU should answer the INVITE (`invite`) with 487 and stop whatever it started.
    Cancel {
        invite: TransactionKey,
        request: Request,
    },
    /// A response for one of our client transactions.
    Response {
        key: TransactionKey,
        response: Response,
    },
    /// A response that matches no transaction (e.g. a 2xx retransmitted after Timer M).
    StrayResponse {
        response: Response,
        src: SocketAddr,
    },
    /// Timer B/F (no final response), Timer H (no ACK for a non-2xx) or Timer L (no ACK
    /// for a 2xx: the TU should send BYE).
    Timeout {
        key: TransactionKey,
    },
    TransportError {
        key: TransactionKey,
    },
    Terminated {
        key: TransactionKey,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    #[error("no such transaction")]
    NoSuchTransaction,
    #[error("ACK is not sent in a transaction; use send_stateless or ack_2xx")]
    AckIsNotATransaction,
    #[error("request has no Via header")]
    MissingVia,
    #[error("a transaction with this branch already exists")]
    Duplicate,
    #[error("the transaction cannot send this response in its current state")]
    InvalidState,
}

/// Tunables of the layer.
#[derive(Debug, Clone)]
pub struct LayerConfig {
    /// Answer a new INVITE with `100 Trying` when the TU has not answered it within
    /// [`TRYING_DELAY`] (RFC 3261 §17.2.1), or at once when it is retransmitted; either way
    /// before the caller's first retransmission (Timer A, 500 ms).
    pub auto_trying: bool,
}

impl Default for LayerConfig {
    fn default() -> Self {
        LayerConfig { auto_trying: true }
    }
}

#[derive(Debug)]
enum Machine {
    InviteClient(ClientCtx, ClientInviteState),
    NonInviteClient(ClientCtx, ClientNonInviteState),
    InviteServer(ServerCtx, ServerInviteState),
    NonInviteServer(ServerCtx, ServerNonInviteState),
}

impl Machine {
    fn step(&mut self, input: Input) -> Vec<Action> {
        macro_rules! run {
            ($ctx:expr, $state:expr, $f:ident, $term:expr) => {{
                let (next, actions) = $f($ctx, std::mem::replace($state, $term), input);
                *$state = next;
                actions
            }};
        }
        match self {
            Machine::InviteClient(c, s) => {
                let actions = run!(c, s, client_invite, ClientInviteState::Terminated);
                if !matches!(
                    s,
                    ClientInviteState::Calling { .. } | ClientInviteState::Proceeding
                ) {
                    c.release_request();
                }
                actions
            }
            Machine::NonInviteClient(c, s) => {
                let actions = run!(c, s, client_non_invite, ClientNonInviteState::Terminated);
                if matches!(
                    s,
                    ClientNonInviteState::Completed | ClientNonInviteState::Terminated
                ) {
                    c.release_request();
                }
                actions
            }
            Machine::InviteServer(c, s) => run!(c, s, server_invite, ServerInviteState::Terminated),
            Machine::NonInviteServer(c, s) => {
                run!(c, s, server_non_invite, ServerNonInviteState::Terminated)
            }
        }
    }

    /// Whether the current state reacts to `id` (mirrors the state functions). A timer it
    /// ignores is dropped from the table at once instead of lingering for up to 32 s
    /// (Timer B after the answer, Timer H after the ACK…).
    fn timer_matters(&self, id: TimerId) -> bool {
        use TimerId::*;
        match self {
            Machine::InviteClient(_, s) => matches!(
                (s, id),
                (ClientInviteState::Calling { .. }, A | B)
                    | (ClientInviteState::Completed { .. }, D)
                    | (ClientInviteState::Accepted { .. }, M)
            ),
            Machine::NonInviteClient(_, s) => matches!(
                (s, id),
                (
                    ClientNonInviteState::Trying { .. } | ClientNonInviteState::Proceeding,
                    E | F
                ) | (ClientNonInviteState::Completed, K)
            ),
            Machine::InviteServer(_, s) => matches!(
                (s, id),
                (ServerInviteState::Proceeding { held: true, .. }, Trying)
                    | (ServerInviteState::Completed { .. }, G | H)
                    | (ServerInviteState::Confirmed, I)
                    | (ServerInviteState::Accepted { acked: false, .. }, Resend2xx)
                    | (ServerInviteState::Accepted { .. }, L)
            ),
            Machine::NonInviteServer(_, s) => {
                matches!((s, id), (ServerNonInviteState::Completed { .. }, J))
            }
        }
    }

    /// What the ACK for this server INVITE's 2xx shares with the INVITE.
    fn server_dialog(&self) -> Option<&DialogRef> {
        match self {
            Machine::InviteServer(c, _) => c.dialog.as_deref(),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Transaction {
    machine: Machine,
    transport: Transport,
    /// Where the request came from (server transactions).
    src: Option<SocketAddr>,
    /// Live timers: id → heap sequence number; a popped entry that is not here is stale.
    armed: Vec<(TimerId, u64)>,
    /// To-tag of the INVITE's responses (server; the first the TU sent with one: a UAS
    /// keeps its tag), for the CANCEL's 200 (§9.2).
    to_tag: Option<String>,
    /// In the ACK-for-2xx index (server INVITE in `Accepted`, under its dialog reference).
    ack_indexed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerKind {
    Invite,
    NonInvite,
    Cancel,
}

/// Call-ID, CSeq number and From-tag: what an ACK for a 2xx shares with its INVITE.
pub type DialogRef = (String, u32, String);

fn dialog_ref(req: &Request) -> Option<DialogRef> {
    let (seq, _) = req.cseq()?;
    let from_tag = req
        .from()
        .and_then(|f| f.tag().map(str::to_string))
        .unwrap_or_default();
    Some((req.call_id()?.to_string(), seq, from_tag))
}

/// The sans-IO transaction manager.
#[derive(Debug, Default)]
pub struct TransactionLayer {
    config: LayerConfig,
    /// Boxed: the table is sized for the peak (tens of thousands of transactions live for
    /// 32 s at a few thousand calls/s) and never shrinks, so its slots stay small.
    txs: HashMap<TransactionKey, Box<Transaction>>,
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    timers: HashMap<u64, (TransactionKey, TimerId)>,
    next_seq: u64,
    accepted: HashMap<DialogRef, TransactionKey>,
}

impl TransactionLayer {
    pub fn new(config: LayerConfig) -> Self {
        TransactionLayer {
            config,
            ..Default::default()
        }
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    pub fn contains(&self, key: &TransactionKey) -> bool {
        self.txs.contains_key(key)
    }

    /// When [`TransactionLayer::on_timer`] should next be called. May be early (a timer that
    /// has since been superseded); never late.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// A message received in a UDP datagram from `src`.
    pub fn on_datagram(&mut self, msg: SipMessage, src: SocketAddr, now: Instant) -> Vec<Event> {
        self.on_message(msg, src, Transport::Udp, now)
    }

    /// A message received on a connection (TCP, TLS, WS…) or a datagram, naming the transport.
    pub fn on_message(
        &mut self,
        msg: SipMessage,
        src: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Vec<Event> {
        match msg {
            SipMessage::Request(r) => self.on_request(r, src, transport, now),
            SipMessage::Response(r) => self.on_response(r, src, now),
        }
    }

    fn on_request(
        &mut self,
        mut req: Request,
        src: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        let Some(key) = TransactionKey::for_server(&req) else {
            return out;
        };
        stamp_received(&mut req, src);
        if self.txs.contains_key(&key) {
            // A retransmission, the ACK for a non-2xx final, or an ACK for a 2xx that reused
            // the INVITE's branch.
            self.apply(&key, Input::Received(req.into()), now, &mut out);
            return out;
        }
        match req.method {
            Method::Ack => {
                let invite = dialog_ref(&req).and_then(|d| self.accepted.get(&d).cloned());
                match invite {
                    Some(k) => self.apply(&k, Input::Received(req.into()), now, &mut out),
                    None => out.push(Event::Ack {
                        invite: None,
                        request: req,
                        src,
                    }),
                }
            }
            Method::Cancel => {
                let invite_key = key.with_method(Method::Invite);
                let cancel = req.clone();
                out.extend(self.create_server(&key, ServerKind::Cancel, req, src, transport, now));
                let (status, to_tag, pending) = match self.txs.get(&invite_key) {
                    None => (481, None, false),
                    Some(t) => (
                        200,
                        t.to_tag.clone(),
                        matches!(
                            t.machine,
                            Machine::InviteServer(_, ServerInviteState::Proceeding { .. })
                        ),
                    ),
                };
                let mut resp =
                    Response::for_request(&cancel, status, super::message::default_reason(status));
                resp.set_to_tag(&to_tag.unwrap_or_else(new_tag));
                self.apply(&key, Input::TuResponse(resp), now, &mut out);
                if pending {
                    out.push(Event::Cancel {
                        invite: invite_key,
                        request: cancel,
                    });
                }
            }
            Method::Invite => {
                out.extend(self.create_server(&key, ServerKind::Invite, req, src, transport, now));
            }
            _ => out.extend(self.create_server(
                &key,
                ServerKind::NonInvite,
                req,
                src,
                transport,
                now,
            )),
        }
        out
    }

    fn create_server(
        &mut self,
        key: &TransactionKey,
        kind: ServerKind,
        req: Request,
        src: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Vec<Event> {
        let reliable = transport.is_reliable();
        // Over a connection the response goes back on it; over UDP to the Via (§18.2.2).
        let dest = match (reliable, req.top_via()) {
            (false, Some(via)) => super::message::response_target(via, src),
            _ => src,
        };
        let ctx = ServerCtx {
            dialog: (kind == ServerKind::Invite)
                .then(|| dialog_ref(&req))
                .flatten()
                .map(Box::new),
            dest,
            reliable,
        };
        let (machine, mut actions) = if kind == ServerKind::Invite {
            let trying = self
                .config
                .auto_trying
                .then(|| Bytes::from(Response::for_request(&req, 100, "Trying").to_bytes()));
            let (s, a) = server_invite_start(req, trying);
            (Machine::InviteServer(ctx, s), a)
        } else {
            let (s, a) = server_non_invite_start(req);
            (Machine::NonInviteServer(ctx, s), a)
        };
        if kind == ServerKind::Cancel {
            // The layer answers CANCEL itself; the TU hears of it as Event::Cancel.
            actions.retain(|a| !matches!(a, Action::Deliver(_)));
        }
        self.txs.insert(
            key.clone(),
            Box::new(Transaction {
                machine,
                transport,
                src: Some(src),
                armed: Vec::new(),
                to_tag: None,
                ack_indexed: false,
            }),
        );
        let mut out = Vec::new();
        self.run_actions(key, actions, now, &mut out);
        out
    }

    fn on_response(&mut self, resp: Response, src: SocketAddr, now: Instant) -> Vec<Event> {
        let mut out = Vec::new();
        match TransactionKey::for_response(&resp) {
            Some(key) if self.txs.contains_key(&key) => {
                self.apply(&key, Input::Received(resp.into()), now, &mut out);
            }
            _ => out.push(Event::StrayResponse {
                response: resp,
                src,
            }),
        }
        out
    }

    /// Starts a client transaction for `req` (not ACK). A missing or RFC 2543 branch on the
    /// top Via is replaced by a fresh one.
    pub fn send_request(
        &mut self,
        mut req: Request,
        dest: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Result<(TransactionKey, Vec<Event>), TransactionError> {
        if req.method == Method::Ack {
            return Err(TransactionError::AckIsNotATransaction);
        }
        let via = req.top_via().ok_or(TransactionError::MissingVia)?;
        let branch = match &via.branch {
            Some(branch) if via.has_rfc3261_branch() => branch.clone(),
            _ => {
                let mut via = via.clone();
                let branch = new_branch();
                via.branch = Some(branch.clone());
                req.headers.replace_first("Via", via.to_string());
                branch
            }
        };
        let key = TransactionKey::Client {
            branch,
            method: req.method.clone(),
        };
        if self.txs.contains_key(&key) {
            return Err(TransactionError::Duplicate);
        }
        let invite = req.method == Method::Invite;
        let ctx = ClientCtx {
            bytes: Bytes::from(req.to_bytes()),
            request: invite.then(|| Box::new(req)),
            dest,
            reliable: transport.is_reliable(),
        };
        let (machine, actions) = if invite {
            let (s, a) = client_invite_start(&ctx);
            (Machine::InviteClient(ctx, s), a)
        } else {
            let (s, a) = client_non_invite_start(&ctx);
            (Machine::NonInviteClient(ctx, s), a)
        };
        self.txs.insert(
            key.clone(),
            Box::new(Transaction {
                machine,
                transport,
                src: None,
                armed: Vec::new(),
                to_tag: None,
                ack_indexed: false,
            }),
        );
        let mut out = Vec::new();
        self.run_actions(&key, actions, now, &mut out);
        Ok((key, out))
    }

    /// The TU answers a request on its server transaction.
    pub fn send_response(
        &mut self,
        key: &TransactionKey,
        resp: Response,
        now: Instant,
    ) -> Result<Vec<Event>, TransactionError> {
        let tx = self
            .txs
            .get_mut(key)
            .ok_or(TransactionError::NoSuchTransaction)?;
        let allowed = match &tx.machine {
            Machine::InviteServer(_, ServerInviteState::Proceeding { .. }) => true,
            Machine::InviteServer(_, ServerInviteState::Accepted { .. }) => resp.is_success(),
            Machine::NonInviteServer(
                _,
                ServerNonInviteState::Trying | ServerNonInviteState::Proceeding { .. },
            ) => true,
            _ => false,
        };
        if !allowed {
            return Err(TransactionError::InvalidState);
        }
        // Only a CANCEL of an INVITE needs it, and a dialog keeps its tag: parse the To of
        // an INVITE's responses until one carries a tag, not of every response.
        if tx.to_tag.is_none() && matches!(tx.machine, Machine::InviteServer(..)) {
            tx.to_tag = resp.to_tag();
        }
        let mut out = Vec::new();
        self.apply(key, Input::TuResponse(resp), now, &mut out);
        Ok(out)
    }

    /// Sends the TU's ACK for a 2xx received on the INVITE client transaction `invite`; the
    /// layer then answers retransmissions of that 2xx with this ACK. If the transaction is
    /// gone, the ACK is just sent.
    pub fn ack_2xx(
        &mut self,
        invite: &TransactionKey,
        ack: &Request,
        dest: SocketAddr,
        now: Instant,
    ) -> Vec<Event> {
        let data = Bytes::from(ack.to_bytes());
        let mut out = Vec::new();
        let accepted = matches!(
            self.txs.get(invite).map(|t| &t.machine),
            Some(Machine::InviteClient(_, ClientInviteState::Accepted { .. }))
        );
        if accepted {
            let to_tag = ack.to().and_then(|t| t.tag().map(str::to_string));
            let input = Input::TuAck {
                to_tag: to_tag.unwrap_or_default(),
                ack: data,
                dest,
            };
            self.apply(invite, input, now, &mut out);
        } else {
            let transport = self
                .txs
                .get(invite)
                .map_or(Transport::Udp, |t| t.transport.clone());
            out.push(Event::Transmit {
                data,
                dest,
                transport,
            });
        }
        out
    }

    /// A message sent outside any transaction (ACK for 2xx without tracking, stateless
    /// replies such as a parse error's 400).
    pub fn send_stateless(msg: &SipMessage, dest: SocketAddr, transport: Transport) -> Event {
        Event::Transmit {
            data: Bytes::from(msg.to_bytes()),
            dest,
            transport,
        }
    }

    /// The transport failed to send for this transaction (RFC 3261 §17.1.4, §17.2.4).
    pub fn on_transport_error(&mut self, key: &TransactionKey, now: Instant) -> Vec<Event> {
        let mut out = Vec::new();
        self.apply(key, Input::TransportError, now, &mut out);
        out
    }

    /// Fires every timer due at `now`.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(Reverse((at, seq))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            let Some((key, id)) = self.timers.remove(&seq) else {
                continue;
            };
            let live = self.txs.get_mut(&key).is_some_and(|t| {
                let before = t.armed.len();
                t.armed.retain(|&(i, s)| !(i == id && s == seq));
                t.armed.len() != before
            });
            if live {
                self.apply(&key, Input::Timer(id), now, &mut out);
            }
        }
        out
    }

    /// Feeds one input to a transaction and runs the resulting actions.
    fn apply(&mut self, key: &TransactionKey, input: Input, now: Instant, out: &mut Vec<Event>) {
        let Some(tx) = self.txs.get_mut(key) else {
            return;
        };
        let actions = tx.machine.step(input);
        self.run_actions(key, actions, now, out);
    }

    fn run_actions(
        &mut self,
        key: &TransactionKey,
        actions: Vec<Action>,
        now: Instant,
        out: &mut Vec<Event>,
    ) {
        let mut queue: VecDeque<Action> = actions.into();
        let mut terminated = false;
        while let Some(action) = queue.pop_front() {
            let Some(tx) = self.txs.get_mut(key) else {
                return;
            };
            match action {
                Action::Transmit { data, dest } => out.push(Event::Transmit {
                    data,
                    dest,
                    transport: tx.transport.clone(),
                }),
                // Zero-length timers (D, I, J, K over reliable transports) fire at once.
                Action::StartTimer(id, d) if d.is_zero() => {
                    queue.extend(tx.machine.step(Input::Timer(id)));
                }
                Action::StartTimer(id, d) => {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    tx.armed.retain(|(i, _)| *i != id);
                    tx.armed.push((id, seq));
                    self.heap.push(Reverse((now + d, seq)));
                    self.timers.insert(seq, (key.clone(), id));
                }
                Action::Deliver(SipMessage::Request(request)) => {
                    let src = tx.src.unwrap_or(SOCKET_NONE);
                    if request.method == Method::Ack {
                        out.push(Event::Ack {
                            invite: Some(key.clone()),
                            request,
                            src,
                        });
                    } else {
                        out.push(Event::Request {
                            key: key.clone(),
                            request,
                            src,
                            transport: tx.transport.clone(),
                        });
                    }
                }
                Action::Deliver(SipMessage::Response(response)) => out.push(Event::Response {
                    key: key.clone(),
                    response,
                }),
                Action::Timeout => out.push(Event::Timeout { key: key.clone() }),
                Action::TransportError => out.push(Event::TransportError { key: key.clone() }),
                Action::Terminated => terminated = true,
            }
        }
        if terminated {
            if let Some(tx) = self.txs.remove(key) {
                if tx.ack_indexed {
                    if let Some(d) = tx.machine.server_dialog() {
                        self.accepted.remove(d);
                    }
                }
                for (_, seq) in &tx.armed {
                    self.timers.remove(seq);
                }
            }
            out.push(Event::Terminated { key: key.clone() });
            return;
        }
        // Index INVITE server transactions that have just entered Accepted so that the ACK
        // for their 2xx (a new branch) finds them.
        if let Some(tx) = self.txs.get_mut(key) {
            let timers = &mut self.timers;
            let machine = &tx.machine;
            tx.armed.retain(|&(id, seq)| {
                let keep = machine.timer_matters(id);
                if !keep {
                    timers.remove(&seq);
                }
                keep
            });
            if !tx.ack_indexed
                && matches!(
                    tx.machine,
                    Machine::InviteServer(_, ServerInviteState::Accepted { .. })
                )
            {
                if let Some(d) = tx.machine.server_dialog() {
                    self.accepted.insert(d.clone(), key.clone());
                    tx.ack_indexed = true;
                }
            }
        }
    }
}

/// Placeholder source for deliveries that have none (never reached for server transactions,
/// which always record their source).
const SOCKET_NONE: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{parse, NameAddr, SipUri, Via};

    const PEER: &str = "192.0.2.10:5060";
    const ME: &str = "192.0.2.1:5060";

    fn peer() -> SocketAddr {
        PEER.parse().unwrap()
    }

    fn sip(s: &str) -> SipMessage {
        parse(s.as_bytes()).unwrap_or_else(|e| panic!("{e}: {s}"))
    }

    fn incoming(method: &str, branch: &str, extra: &str) -> SipMessage {
        sip(&format!(
            "{method} sip:100@192.0.2.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:200@example.com>;tag=caller\r\n\
             To: <sip:100@example.com>{extra}\r\nCall-ID: call-1@192.0.2.10\r\n\
             CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        ))
    }

    fn outgoing(method: Method) -> Request {
        let mut r = Request::new(method.clone(), SipUri::parse("sip:200@192.0.2.10").unwrap());
        let mut from = NameAddr::new(SipUri::parse("sip:100@example.com").unwrap());
        from.set_tag("me");
        r.push_via(&Via::new(
            Transport::Udp,
            "192.0.2.1",
            Some(5060),
            &new_branch(),
        ))
        .set_max_forwards(70)
        .set_from(&from)
        .set_to(&NameAddr::new(
            SipUri::parse("sip:200@example.com").unwrap(),
        ))
        .set_call_id("out-1@192.0.2.1")
        .set_cseq(1, &method);
        r
    }

    /// The request as the client transaction put it on the wire (with its branch).
    fn sent_request(c: &ClientCtx) -> Request {
        match crate::sip::message::parse(&c.bytes) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("not a request on the wire: {other:?}"),
        }
    }

    fn response_to(req: &Request, status: u16, tag: Option<&str>) -> SipMessage {
        let mut r =
            Response::for_request(req, status, super::super::message::default_reason(status));
        if let Some(t) = tag {
            r.set_to_tag(t);
        }
        // Through the wire and back, as the network would deliver it.
        sip(std::str::from_utf8(&r.to_bytes()).unwrap())
    }

    fn transmits(ev: &[Event]) -> Vec<String> {
        ev.iter()
            .filter_map(|e| match e {
                Event::Transmit { data, .. } => {
                    let s = String::from_utf8_lossy(data);
                    Some(s.lines().next().unwrap_or("").to_string())
                }
                _ => None,
            })
            .collect()
    }

    fn has(ev: &[Event], f: impl Fn(&Event) -> bool) -> bool {
        ev.iter().any(f)
    }

    /// Runs the layer's timers until `until`, returning (time offset, event) pairs.
    fn run_until(
        layer: &mut TransactionLayer,
        t0: Instant,
        until: Duration,
    ) -> Vec<(Duration, Event)> {
        let mut all = Vec::new();
        while let Some(at) = layer.next_deadline() {
            if at > t0 + until {
                break;
            }
            for e in layer.on_timer(at) {
                all.push((at - t0, e));
            }
        }
        all
    }

    /// A client transaction for `method` started at `t0`: its key and the request as it
    /// went on the wire.
    fn request_sent(
        layer: &mut TransactionLayer,
        method: Method,
        transport: Transport,
        t0: Instant,
    ) -> (TransactionKey, Request) {
        let (key, _) = layer
            .send_request(outgoing(method), peer(), transport, t0)
            .unwrap();
        let sent = match &layer.txs[&key].machine {
            Machine::InviteClient(c, _) | Machine::NonInviteClient(c, _) => sent_request(c),
            _ => unreachable!(),
        };
        (key, sent)
    }

    fn invite_sent(layer: &mut TransactionLayer, t0: Instant) -> (TransactionKey, Request) {
        request_sent(layer, Method::Invite, Transport::Udp, t0)
    }

    /// The key of the request the layer handed to the TU.
    fn delivered_key(ev: &[Event]) -> TransactionKey {
        ev.iter()
            .find_map(|e| match e {
                Event::Request { key, .. } => Some(key.clone()),
                _ => None,
            })
            .expect("a request for the TU")
    }

    fn transmit_times(events: &[(Duration, Event)]) -> Vec<u64> {
        events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Transmit { .. }))
            .map(|(t, _)| t.as_millis() as u64)
            .collect()
    }

    #[test]
    fn timer_a_doubles_and_timer_b_times_out() {
        let mut layer = TransactionLayer::default();
        let t0 = Instant::now();
        let (key, ev) = layer
            .send_request(outgoing(Method::Invite), peer(), Transport::Udp, t0)
            .unwrap();
        assert_eq!(transmits(&ev), ["INVITE sip:200@192.0.2.10 SIP/2.0"]);
        let events = run_until(&mut layer, t0, Duration::from_secs(40));
        // Retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s: intervals 0.5·2^n, no cap.
        assert_eq!(
            transmit_times(&events),
            [500, 1500, 3500, 7500, 15500, 31500]
        );
        let timeout_at = events
            .iter()
            .find(|(_, e)| matches!(e, Event::Timeout { .. }))
            .map(|(t, _)| *t);
        assert_eq!(timeout_at, Some(TIMER_B));
        assert!(events
            .iter()
            .any(|(_, e)| *e == Event::Terminated { key: key.clone() }));
        assert!(layer.is_empty());
    }

    #[test]
    fn timer_matters_agrees_with_the_state_functions() {
        use TimerId::*;
        let b = || Bytes::from_static(b"SIP/2.0 100 Trying\r\n\r\n");
        let client = || ClientCtx {
            request: None,
            bytes: b(),
            dest: peer(),
            reliable: false,
        };
        let server = || ServerCtx {
            dialog: None,
            dest: peer(),
            reliable: false,
        };
        let machines = || {
            vec![
                Machine::InviteClient(client(), ClientInviteState::Calling { a_interval: T1 }),
                Machine::InviteClient(client(), ClientInviteState::Proceeding),
                Machine::InviteClient(client(), ClientInviteState::Completed { ack: b() }),
                Machine::InviteClient(client(), ClientInviteState::Accepted { acks: vec![] }),
                Machine::NonInviteClient(client(), ClientNonInviteState::Trying { e_interval: T1 }),
                Machine::NonInviteClient(client(), ClientNonInviteState::Proceeding),
                Machine::NonInviteClient(client(), ClientNonInviteState::Completed),
                Machine::InviteServer(
                    server(),
                    ServerInviteState::Proceeding {
                        last: Some(b()),
                        held: true,
                    },
                ),
                Machine::InviteServer(
                    server(),
                    ServerInviteState::Proceeding {
                        last: Some(b()),
                        held: false,
                    },
                ),
                Machine::InviteServer(
                    server(),
                    ServerInviteState::Completed {
                        last: b(),
                        g_interval: T1,
                    },
                ),
                Machine::InviteServer(server(), ServerInviteState::Confirmed),
                Machine::InviteServer(
                    server(),
                    ServerInviteState::Accepted {
                        last: b(),
                        acked: false,
                        resend_interval: T1,
                    },
                ),
                Machine::InviteServer(
                    server(),
                    ServerInviteState::Accepted {
                        last: b(),
                        acked: true,
                        resend_interval: T1,
                    },
                ),
                Machine::NonInviteServer(server(), ServerNonInviteState::Trying),
                Machine::NonInviteServer(server(), ServerNonInviteState::Proceeding { last: b() }),
                Machine::NonInviteServer(server(), ServerNonInviteState::Completed { last: b() }),
            ]
        };
        // The state alone: `step` also releases a client's request, which is no reaction.
        let state = |m: &Machine| match m {
            Machine::InviteClient(_, s) => format!("{s:?}"),
            Machine::NonInviteClient(_, s) => format!("{s:?}"),
            Machine::InviteServer(_, s) => format!("{s:?}"),
            Machine::NonInviteServer(_, s) => format!("{s:?}"),
        };
        let timers = [A, B, D, E, F, G, H, I, J, K, L, M, Resend2xx, Trying];
        for id in timers {
            for (mut machine, probe) in machines().into_iter().zip(machines()) {
                let before = state(&machine);
                let actions = machine.step(Input::Timer(id));
                let reacted = !actions.is_empty() || state(&machine) != before;
                assert_eq!(probe.timer_matters(id), reacted, "{id:?} in {before}");
            }
        }
    }

    #[test]
    fn timers_the_state_ignores_leave_the_table_at_once() {
        let mut layer = TransactionLayer::default();
        let t0 = Instant::now();
        let (key, sent) = invite_sent(&mut layer, t0);
        assert_eq!(layer.timers.len(), 2, "Timers A and B while Calling");
        layer.on_datagram(response_to(&sent, 180, Some("callee")), peer(), t0);
        assert!(layer.timers.is_empty(), "no timer runs in Proceeding");
        layer.on_datagram(response_to(&sent, 200, Some("callee")), peer(), t0);
        assert_eq!(layer.timers.len(), 1, "only Timer M while Accepted");
        let events = run_until(&mut layer, t0, TIMER_M + Duration::from_secs(1));
        assert!(events
            .iter()
            .any(|(_, e)| *e == Event::Terminated { key: key.clone() }));
        assert!(layer.is_empty());
        assert!(layer.timers.is_empty());
    }

    #[test]
    fn provisional_stops_timer_a_and_non_2xx_is_acked_by_the_transaction() {
        let mut layer = TransactionLayer::default();
        let t0 = Instant::now();
        let (_, sent) = invite_sent(&mut layer, t0);
        let ev = layer.on_datagram(response_to(&sent, 180, Some("callee")), peer(), t0);
        assert!(has(
            &ev,
            |e| matches!(e, Event::Response { response, .. } if response.status == 180)
        ));
        // No retransmissions after a provisional (and no Timer B in Proceeding).
        let events = run_until(&mut layer, t0, Duration::from_secs(60));
        assert!(transmit_times(&events).is_empty());
        assert_eq!(layer.len(), 1);

        let t1 = t0 + Duration::from_secs(61);
        let ev = layer.on_datagram(response_to(&sent, 486, Some("callee")), peer(), t1);
        let acks = transmits(&ev);
        assert_eq!(acks, ["ACK sip:200@192.0.2.10 SIP/2.0"]);
        let Some(Event::Transmit { data, .. }) = ev.first() else {
            panic!()
        };
        let SipMessage::Request(ack) = parse(data).unwrap() else {
            panic!()
        };
        assert_eq!(
            ack.top_via().unwrap().branch,
            sent.top_via().unwrap().branch
        );
        assert_eq!(ack.cseq(), Some((1, Method::Ack)));
        assert_eq!(ack.to().unwrap().tag(), Some("callee"));
        assert!(has(
            &ev,
            |e| matches!(e, Event::Response { response, .. } if response.status == 486)
        ));
        // A retransmitted 486 is absorbed and re-ACKed.
        let ev = layer.on_datagram(response_to(&sent, 486, Some("callee")), peer(), t1);
        assert_eq!(transmits(&ev), ["ACK sip:200@192.0.2.10 SIP/2.0"]);
        assert!(!has(&ev, |e| matches!(e, Event::Response { .. })));
        // Timer D.
        let events = run_until(&mut layer, t1, Duration::from_secs(40));
        let end = events
            .iter()
            .find(|(_, e)| matches!(e, Event::Terminated { .. }))
            .map(|(t, _)| *t);
        assert_eq!(end, Some(TIMER_D));
    }

    #[test]
    fn client_2xx_goes_to_tu_and_ack_answers_retransmissions() {
        let mut layer = TransactionLayer::default();
        let t0 = Instant::now();
        let (key, sent) = invite_sent(&mut layer, t0);
        let ok = response_to(&sent, 200, Some("b1"));
        let ev = layer.on_datagram(ok.clone(), peer(), t0);
        assert!(has(
            &ev,
            |e| matches!(e, Event::Response { response, .. } if response.status == 200)
        ));
        assert!(
            transmits(&ev).is_empty(),
            "no ACK from the transaction for 2xx"
        );
        // Retransmitted 2xx before the TU's ACK: delivered again.
        let ev = layer.on_datagram(ok.clone(), peer(), t0);
        assert!(has(&ev, |e| matches!(e, Event::Response { .. })));
        let mut ack = Request::new(Method::Ack, SipUri::parse("sip:200@192.0.2.10").unwrap());
        ack.push_via(&Via::new(
            Transport::Udp,
            "192.0.2.1",
            Some(5060),
            &new_branch(),
        ))
        .set_to(&{
            let mut t = NameAddr::new(SipUri::parse("sip:200@example.com").unwrap());
            t.set_tag("b1");
            t
        })
        .set_cseq(1, &Method::Ack);
        let ev = layer.ack_2xx(&key, &ack, peer(), t0);
        assert_eq!(transmits(&ev), ["ACK sip:200@192.0.2.10 SIP/2.0"]);
        // Now the layer re-sends the ACK itself.
        let ev = layer.on_datagram(ok, peer(), t0);
        assert_eq!(transmits(&ev), ["ACK sip:200@192.0.2.10 SIP/2.0"]);
        assert!(!has(&ev, |e| matches!(e, Event::Response { .. })));
        // A 2xx from another fork still reaches the TU.
        let ev = layer.on_datagram(response_to(&sent, 200, Some("b2")), peer(), t0);
        assert!(has(&ev, |e| matches!(e, Event::Response { .. })));
        // Timer M.
        let events = run_until(&mut layer, t0, Duration::from_secs(40));
        assert!(events
            .iter()
            .any(|(t, e)| *t == TIMER_M && matches!(e, Event::Terminated { .. })));
        // After that a 2xx is stray.
        let ev = layer.on_datagram(response_to(&sent, 200, Some("b1")), peer(), t0 + TIMER_M);
        assert!(has(&ev, |e| matches!(e, Event::StrayResponse { .. })));
    }

    #[test]
    fn server_absorbs_invite_retransmissions_and_resends_provisionals() {
        let mut layer = TransactionLayer::default();
        let t0 = Instant::now();
        let ev = layer.on_datagram(incoming("INVITE", "z9hG4bKinv1", ""), peer(), t0);
        let key = ev
            .iter()
            .find_map(|e| match e {
                Event::Request { key, request, .. } => {
                    // received/rport stamped on the top Via.
                    let v = request.top_via().unwrap();
                    assert_eq!(v.rport, Some(Some(5060)));
                    Some(key.clone())
                }
                _ => None,
            })
            .unwrap();
        // The 100 is held for the TU's own answer (TRYING_DELAY)…
        assert!(transmits(&ev).is_empty());
        // …but a retransmission is absorbed and gets it at once.
        let ev = layer.on_datagram(incoming("INVITE", "z9hG4bKinv1", ""), peer(), t0);
        assert_eq!(transmits(&ev), ["SIP/2.0 100 Trying"]);
        assert!(!has(&ev, |e| matches!(e, Event::Request { .. })));
        // Sent once: the held 100 does not go out again at TRYING_DELAY.
        assert!(transmit_times(&run_until(&mut layer, t0, TRYING_DELAY)).is_empty());
        // TU rings; a retransmission now gets the 180.
        let req = match incoming("INVITE", "z9hG4bKinv1", "") {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        };
        let mut ringing = Response::for_request(&req, 180, "Ringing");
        ringing.set_to_tag("uas1");
        let ev = layer.send_response(&key, ringing, t0).unwrap();
        assert_eq!(transmits(&ev), ["SIP/2.0 180 Ringing"]);
        let ev = layer.on_datagram(incoming("INVITE", "z9hG4bKinv1", ""), peer(), t0);
        assert_eq!(transmits(&ev), ["SIP/2.0 180 Ringing"]);
        // Responses go where rport says.
        let Some(Event::Transmit { dest, .. }) = ev.first() else {
            panic!()
        };
        assert_eq!(*dest, peer());
    }

    #[test]
    fn trying_goes_out_only_when_the_tu_is_slow() {
        let mut layer = TransactionLayer::default();
        let t0 = Instant::now();
        // The TU answers within TRYING_DELAY (a 407, a 180): no 100 at all.
        let ev = layer.on_datagram(incoming("INVITE", "z9hG4bKfast", ""), peer(), t0);
        let key = delivered_key(&ev);
        let SipMessage::Request(req) = incoming("INVITE", "z9hG4bKfast", "") else {
            unreachable!()
        };
        let mut challenge = Response::for_request(&req, 407, "Proxy Authentication Required");
        challenge.set_to_tag("c1");
        let ev = layer.send_response(&key, challenge, t0).unwrap();
        assert_eq!(
            transmits(&ev),
            ["SIP/2.0 407 Proxy Authentication Required"]
        );
        let later = run_until(&mut layer, t0, TRYING_DELAY + Duration::from_millis(1));
        assert!(transmit_times(&later).is_empty(), "{later:?}");
        // The TU stays silent: the 100 goes out at TRYING_DELAY, before Timer A.
        let mut layer = TransactionLayer::default();
        layer.on_datagram(incoming("INVITE", "z9hG4bKslow", ""), peer(), t0);
        let events = run_until(&mut layer, t0, Duration::from_millis(400));
        let sent: Vec<_> = events
            .iter()
            .filter_map(|(t, e)| match e {
                Event::Transmit { data, .. } if data.starts_with(b"SIP/2.0 100 ") => Some(*t),
                _ => None,
            })
            .collect();
        assert_eq!(sent, [TRYING_DELAY]);
        assert!(TRYING_DELAY < TIMER_A);
    }

    #[test]
    fn server_non_2xx_timer_g_h_ack_and_timer_i() {
        let mut layer = TransactionLayer::default();
        let t0 = Instant::now();
        let ev = layer.on_datagram(incoming("INVITE", "z9hG4bKinv2", ""), peer(), t0);
        let (key, req) = ev
            .iter()
            .find_map(|e| match e {
                Event::Request { key, request, .. } => Some((key.clone(), request.clone())),
                _ => None,
            })
            .unwrap();
        let mut busy = Response::for_request(&req, 486, "Busy Here");
        busy.set_to_tag("uas2");
        layer.send_response(&key, busy, t0).unwrap();
        // Timer G: 0.5, 1.5, 3.5, 7.5, then every T2 (4 s) until Timer H at 32 s.
        let events = run_until(&mut layer, t0, Duration::from_secs(40));
        assert_eq!(
            transmit_times(&events),
            [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert!(events
            .iter()
            .any(|(t, e)| *t == TIMER_H && matches!(e, Event::Timeout { .. })));
        assert!(layer.is_empty());

        // Same again, this time ACKed.
        let ev = layer.on_datagram(incoming("INVITE", "z9hG4bKinv3", ""), peer(), t0);
        let key = delivered_key(&ev);
        let mut busy = Response::for_request(&req, 486, "Busy Here");
        busy.set_to_tag("uas3");
        layer.send_response(&key, busy, t0).unwrap();
        let ack = incoming("ACK", "z9hG4bKinv3", ";tag=uas3");
        let ev = layer.on_datagram(ack.clone(), peer(), t0 + Duration::from_millis(100));
        assert!(ev.is_empty(), "ACK for non-2xx absorbed: {ev:?}");
        // Confirmed: more ACKs absorbed, no more 486 retransmissions, Timer I = T4.
        assert!(layer.on_datagram(ack, peer(), t0).is_empty());
        let events = run_until(&mut layer, t0, Duration::from_secs(40));
        assert!(transmit_times(&events).is_empty());
        assert!(events
            .iter()
            .any(|(t, e)| *t == Duration::from_millis(100) + TIMER_I
                && matches!(e, Event::Terminated { .. })));
    }

    #[test]
    fn server_2xx_resent_until_ack_then_timer_l() {
        let mut layer = TransactionLayer::default();
        let t0 = Instant::now();
        let ev = layer.on_datagram(incoming("INVITE", "z9hG4bKinv4", ""), peer(), t0);
        let (key, req) = ev
            .iter()
            .find_map(|e| match e {
                Event::Request { key, request, .. } => Some((key.clone(), request.clone())),
                _ => None,
            })
            .unwrap();
        let mut ok = Response::for_request(&req, 200, "OK");
        ok.set_to_tag("uas4");
        let ev = layer.send_response(&key, ok.clone(), t0).unwrap();
        assert_eq!(transmits(&ev), ["SIP/2.0 200 OK"]);
        // 2xx resent at 0.5, 1.5, 3.5 s…
        let events = run_until(&mut layer, t0, Duration::from_millis(4000));
        assert_eq!(transmit_times(&events), [500, 1500, 3500]);
        // …until the ACK (a new branch) arrives; it reaches the TU once.
        let ack = incoming("ACK", "z9hG4bKack4", ";tag=uas4");
        let ev = layer.on_datagram(ack.clone(), peer(), t0 + Duration::from_secs(4));
        assert!(has(
            &ev,
            |e| matches!(e, Event::Ack { invite: Some(k), .. } if *k == key)
        ));
        assert!(layer.on_datagram(ack, peer(), t0).is_empty());
        // INVITE retransmissions in Accepted are absorbed.
        assert!(layer
            .on_datagram(incoming("INVITE", "z9hG4bKinv4", ""), peer(), t0)
            .is_empty());
        let events = run_until(&mut layer, t0, Duration::from_secs(40));
        assert!(transmit_times(&events).is_empty());
        assert!(events
            .iter()
            .any(|(t, e)| *t == TIMER_L && matches!(e, Event::Terminated { .. })));
        assert!(!events
            .iter()
            .any(|(_, e)| matches!(e, Event::Timeout { .. })));
        // A later ACK is unknown to the layer and goes to the TU as such.
        let ev = layer.on_datagram(incoming("ACK", "z9hG4bKack5", ";tag=uas4"), peer(), t0);
        assert!(has(&ev, |e| matches!(e, Event::Ack { invite: None, .. })));
    }

    #[test]
    fn server_2xx_without_ack_times_out() {
        let mut layer = TransactionLayer::default();
        let t0 = Instant::now();
        let ev = layer.on_datagram(incoming("INVITE", "z9hG4bKinv6", ""), peer(), t0);
        let (key, req) = ev
            .iter()
            .find_map(|e| match e {
                Event::Request { key, request, .. } => Some((key.clone(), request.clone())),
                _ => None,
            })
            .unwrap();
        layer
            .send_response(&key, Response::for_request(&req, 200, "OK"), t0)
            .unwrap();
        let events = run_until(&mut layer, t0, Duration::from_secs(40));
        // T1 doubling capped at T2: 0.5 1.5 3.5 7.5 11.5 … 31.5
        assert_eq!(
            transmit_times(&events),
            [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert!(events
            .iter()
            .any(|(t, e)| *t == TIMER_L && *e == Event::Timeout { key: key.clone() }));
        assert!(layer.is_empty());
    }

    #[test]
    fn non_invite_client_timer_e_f_and_k() {
        let mut layer = TransactionLayer::default();
        let t0 = Instant::now();
        layer
            .send_request(outgoing(Method::Options), peer(), Transport::Udp, t0)
            .unwrap();
        let events = run_until(&mut layer, t0, Duration::from_secs(40));
        assert_eq!(
            transmit_times(&events),
            [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert!(events
            .iter()
            .any(|(t, e)| *t == TIMER_F && matches!(e, Event::Timeout { .. })));

        // Provisional → E at T2; final → Completed, retransmitted finals absorbed, Timer K.
        let (_key, sent) = request_sent(&mut layer, Method::Bye, Transport::Udp, t0);
        layer.on_datagram(
            response_to(&sent, 100, None),
            peer(),
            t0 + Duration::from_millis(100),
        );
        let events = run_until(&mut layer, t0, Duration::from_millis(9000));
        assert_eq!(transmit_times(&events), [500, 4500, 8500]);
        let t1 = t0 + Duration::from_secs(9);
        let ev = layer.on_datagram(response_to(&sent, 200, Some("x")), peer(), t1);
        assert!(has(
            &ev,
            |e| matches!(e, Event::Response { response, .. } if response.status == 200)
        ));
        let ev = layer.on_datagram(response_to(&sent, 200, Some("x")), peer(), t1);
        assert!(ev.is_empty());
        let events = run_until(&mut layer, t1, Duration::from_secs(10));
        assert!(transmit_times(&events).is_empty());
        assert!(events
            .iter()
            .any(|(t, e)| *t == TIMER_K && matches!(e, Event::Terminated { .. })));
    }

    #[test]
    fn non_invite_server_absorbs_and_timer_j() {
        let mut layer = TransactionLayer::default();
        let t0 = Instant::now();
        let ev = layer.on_datagram(incoming("OPTIONS", "z9hG4bKopt1", ""), peer(), t0);
        let (key, req) = ev
            .iter()
            .find_map(|e| match e {
                Event::Request { key, request, .. } => Some((key.clone(), request.clone())),
                _ => None,
            })
            .unwrap();
        assert!(transmits(&ev).is_empty(), "no automatic 100 for non-INVITE");
        assert!(layer
            .on_datagram(incoming("OPTIONS", "z9hG4bKopt1", ""), peer(), t0)
            .is_empty());
        layer
            .send_response(&key, Response::for_request(&req, 200, "OK"), t0)
            .unwrap();
        let ev = layer.on_datagram(incoming("OPTIONS", "z9hG4bKopt1", ""), peer(), t0);
        assert_eq!(transmits(&ev), ["SIP/2.0 200 OK"]);
        assert_eq!(
            layer.send_response(&key, Response::for_request(&req, 500, "x"), t0),
            Err(TransactionError::InvalidState)
        );
        let events = run_until(&mut layer, t0, Duration::from_secs(40));
        assert!(events
            .iter()
            .any(|(t, e)| *t == TIMER_J && matches!(e, Event::Terminated { .. })));
    }

    #[test]
    fn cancel_matching() {
        let mut layer = TransactionLayer::default();
        let t0 = Instant::now();
        let ev = layer.on_datagram(incoming("INVITE", "z9hG4bKinv7", ""), peer(), t0);
        let (invite_key, req) = ev
            .iter()
            .find_map(|e| match e {
                Event::Request { key, request, .. } => Some((key.clone(), request.clone())),
                _ => None,
            })
            .unwrap();
        let mut ringing = Response::for_request(&req, 180, "Ringing");
        ringing.set_to_tag("uas7");
        layer.send_response(&invite_key, ringing, t0).unwrap();
        // CANCEL: own transaction, answered 200 with the INVITE's To-tag, TU told.
        let ev = layer.on_datagram(incoming("CANCEL", "z9hG4bKinv7", ""), peer(), t0);
        let Some(Event::Transmit { data, .. }) =
            ev.iter().find(|e| matches!(e, Event::Transmit { .. }))
        else {
            panic!("{ev:?}")
        };
        let SipMessage::Response(ok) = parse(data).unwrap() else {
            panic!()
        };
        assert_eq!((ok.status, ok.cseq()), (200, Some((1, Method::Cancel))));
        assert_eq!(ok.to_tag().as_deref(), Some("uas7"));
        assert!(has(
            &ev,
            |e| matches!(e, Event::Cancel { invite, .. } if *invite == invite_key)
        ));
        assert_eq!(layer.len(), 2);
        // TU answers the INVITE with 487; the ACK with the INVITE's branch completes it.
        let mut term = Response::for_request(&req, 487, "Request Terminated");
        term.set_to_tag("uas7");
        layer.send_response(&invite_key, term, t0).unwrap();
        assert!(layer
            .on_datagram(incoming("ACK", "z9hG4bKinv7", ";tag=uas7"), peer(), t0)
            .is_empty());
        // A CANCEL repeated after the final: 200 (from the CANCEL transaction), no event.
        let ev = layer.on_datagram(incoming("CANCEL", "z9hG4bKinv7", ""), peer(), t0);
        assert_eq!(transmits(&ev), ["SIP/2.0 200 OK"]);
        assert!(!has(&ev, |e| matches!(e, Event::Cancel { .. })));
        // A CANCEL for nothing: 481.
        let ev = layer.on_datagram(incoming("CANCEL", "z9hG4bKnothing", ""), peer(), t0);
        assert_eq!(
            transmits(&ev),
            ["SIP/2.0 481 Call/Transaction Does Not Exist"]
        );
    }

    #[test]
    fn client_cancel_is_its_own_transaction() {
        let mut layer = TransactionLayer::default();
        let t0 = Instant::now();
        let (inv_key, invite) = invite_sent(&mut layer, t0);
        let cancel = make_cancel(&invite);
        let (cancel_key, ev) = layer
            .send_request(cancel.clone(), peer(), Transport::Udp, t0)
            .unwrap();
        assert_eq!(transmits(&ev), ["CANCEL sip:200@192.0.2.10 SIP/2.0"]);
        assert_eq!(cancel_key, inv_key.with_method(Method::Cancel));
        let ev = layer.on_datagram(response_to(&cancel, 200, Some("t")), peer(), t0);
        assert!(has(
            &ev,
            |e| matches!(e, Event::Response { key, .. } if *key == cancel_key)
        ));
        let ev = layer.on_datagram(response_to(&invite, 487, Some("t")), peer(), t0);
        assert!(has(
            &ev,
            |e| matches!(e, Event::Response { key, .. } if *key == inv_key)
        ));
        assert_eq!(transmits(&ev), ["ACK sip:200@192.0.2.10 SIP/2.0"]);
    }

    #[test]
    fn reliable_transport_has_no_retransmissions_and_zero_wait_timers() {
        let mut layer = TransactionLayer::default();
        let t0 = Instant::now();
        let (_key, sent) = request_sent(&mut layer, Method::Invite, Transport::Tcp, t0);
        let events = run_until(&mut layer, t0, Duration::from_secs(31));
        assert!(transmit_times(&events).is_empty(), "no Timer A over TCP");
        // Non-2xx: ACK sent, Timer D = 0 → terminated at once.
        let ev = layer.on_message(
            response_to(&sent, 603, Some("d")),
            peer(),
            Transport::Tcp,
            t0,
        );
        assert_eq!(transmits(&ev), ["ACK sip:200@192.0.2.10 SIP/2.0"]);
        assert!(has(&ev, |e| matches!(e, Event::Terminated { .. })));
        assert!(layer.is_empty());

        // Server over TCP: no Timer G, ACK → Timer I = 0.
        let inv = incoming("INVITE", "z9hG4bKtcp1", "");
        let ev = layer.on_message(inv, peer(), Transport::Tcp, t0);
        let (skey, req) = ev
            .iter()
            .find_map(|e| match e {
                Event::Request { key, request, .. } => Some((key.clone(), request.clone())),
                _ => None,
            })
            .unwrap();
        let mut busy = Response::for_request(&req, 486, "Busy Here");
        busy.set_to_tag("b");
        layer.send_response(&skey, busy, t0).unwrap();
        let events = run_until(&mut layer, t0, Duration::from_secs(20));
        assert!(transmit_times(&events).is_empty(), "no Timer G over TCP");
        let ev = layer.on_message(
            incoming("ACK", "z9hG4bKtcp1", ";tag=b"),
            peer(),
            Transport::Tcp,
            t0,
        );
        assert!(has(&ev, |e| matches!(e, Event::Terminated { .. })));
        // Non-INVITE over TCP: Timer J = 0, no E.
        let ev = layer.on_message(
            incoming("OPTIONS", "z9hG4bKtcp2", ""),
            peer(),
            Transport::Tcp,
            t0,
        );
        let (okey, oreq) = ev
            .iter()
            .find_map(|e| match e {
                Event::Request { key, request, .. } => Some((key.clone(), request.clone())),
                _ => None,
            })
            .unwrap();
        let ev = layer
            .send_response(&okey, Response::for_request(&oreq, 200, "OK"), t0)
            .unwrap();
        assert!(has(&ev, |e| matches!(e, Event::Terminated { .. })));
        assert!(layer.is_empty());
    }

    #[test]
    fn rfc2543_fallback_matching() {
        let mut layer = TransactionLayer::default();
        let t0 = Instant::now();
        // No magic cookie (and the bare cookie of RFC 4475 §3.2.1) → RFC 2543 keys.
        for branch in ["1234", "z9hG4bK"] {
            let ev = layer.on_datagram(incoming("INVITE", branch, ""), peer(), t0);
            let (key, req) = ev
                .iter()
                .find_map(|e| match e {
                    Event::Request { key, request, .. } => Some((key.clone(), request.clone())),
                    _ => None,
                })
                .unwrap();
            assert!(matches!(key, TransactionKey::Rfc2543(_)));
            let ev = layer.on_datagram(incoming("INVITE", branch, ""), peer(), t0);
            assert_eq!(transmits(&ev), ["SIP/2.0 100 Trying"]);
            let mut busy = Response::for_request(&req, 486, "Busy Here");
            busy.set_to_tag("x");
            layer.send_response(&key, busy, t0).unwrap();
            // The ACK carries the To-tag; it still matches.
            let ev = layer.on_datagram(incoming("ACK", branch, ";tag=x"), peer(), t0);
            assert!(ev.is_empty(), "{ev:?}");
            assert!(matches!(
                layer.txs[&key].machine,
                Machine::InviteServer(_, ServerInviteState::Confirmed)
            ));
        }
    }

    #[test]
    fn stray_responses_transport_errors_and_misuse() {
        let mut layer = TransactionLayer::default();
        let t0 = Instant::now();
        let ev = layer.on_datagram(response_to(&outgoing(Method::Bye), 200, None), peer(), t0);
        assert!(has(&ev, |e| matches!(e, Event::StrayResponse { .. })));
        let (key, _) = layer
            .send_request(outgoing(Method::Register), peer(), Transport::Udp, t0)
            .unwrap();
        let ev = layer.on_transport_error(&key, t0);
        assert_eq!(
            ev,
            [
                Event::TransportError { key: key.clone() },
                Event::Terminated { key }
            ]
        );
        assert!(layer.is_empty());
        assert!(layer.on_timer(t0 + Duration::from_secs(100)).is_empty());
        assert_eq!(
            layer
                .send_request(outgoing(Method::Ack), peer(), Transport::Udp, t0)
                .unwrap_err(),
            TransactionError::AckIsNotATransaction
        );
        let mut no_via = outgoing(Method::Options);
        no_via.headers.remove("Via");
        assert_eq!(
            layer
                .send_request(no_via, peer(), Transport::Udp, t0)
                .unwrap_err(),
            TransactionError::MissingVia
        );
        let me: SocketAddr = ME.parse().unwrap();
        let ev =
            TransactionLayer::send_stateless(&outgoing(Method::Ack).into(), me, Transport::Udp);
        assert!(matches!(ev, Event::Transmit { dest, .. } if dest == me));
    }

    #[test]
    fn pure_state_machine_is_usable_without_the_layer() {
        let ctx = ClientCtx {
            request: None,
            bytes: Bytes::from_static(b"OPTIONS"),
            dest: peer(),
            reliable: false,
        };
        let (s, a) = client_non_invite_start(&ctx);
        assert_eq!(a.len(), 3);
        let (s, a) = client_non_invite(&ctx, s, Input::Timer(TimerId::E));
        assert_eq!(
            s,
            ClientNonInviteState::Trying {
                e_interval: Duration::from_secs(1)
            }
        );
        assert_eq!(a[1], Action::StartTimer(TimerId::E, Duration::from_secs(1)));
        let (s, a) = client_non_invite(&ctx, s, Input::Timer(TimerId::F));
        assert_eq!(s, ClientNonInviteState::Terminated);
        assert_eq!(a, [Action::Timeout, Action::Terminated]);
    }
}
