//! The RTP relay: one tokio task per call forwarding media between two endpoints.
//!
//! Side A and side B each have an RTP and an RTCP socket bound on the switch (from
//! [`PortAllocator`](super::ports::PortAllocator)); a packet received on A's socket is sent
//! out of B's socket to B's endpoint, and the other way round. The task `select!`s over
//! the four sockets, its control channel and one timer; each packet costs one
//! `recv_from` and one `try_send_to` into a buffer allocated once, and is forwarded byte
//! for byte (SSRC, sequence numbers and timestamps untouched).
//!
//! Actors drive it through a [`RelayHandle`] (remote addresses from SDP, pause for hold,
//! start the RTP timeout on answer, stop) and hear back [`RelayEvent`]s (timeout, DTMF).
//! Counters are shared atomics, read without a message.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::ports::PortPair;

/// Default RTP inactivity timeout once a call is answered.
pub const DEFAULT_RTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest datagram relayed. RTP on an Ethernet path stays under 1500 bytes; anything
/// longer than this was truncated by `recv_from` and is dropped as bad.
pub const MAX_DATAGRAM: usize = 2048;
/// Fixed RTP header length (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;
/// RTCP common header plus sender SSRC (RFC 3550 §6.4).
pub const RTCP_MIN_LEN: usize = 8;
/// The only RTP/RTCP version in use.
pub const RTP_VERSION: u8 = 2;
/// Room for events the owner has not read yet; DTMF beyond this is dropped (logged).
pub const EVENT_CHANNEL_CAPACITY: usize = 64;
/// Consecutive receive errors after which a socket is deemed broken and the relay ends,
/// rather than spinning on an error that repeats.
pub const MAX_CONSECUTIVE_SOCKET_ERRORS: u32 = 100;
/// RFC 4733 event payload: event, E/R/volume, duration (16 bits).
const TELEPHONE_EVENT_LEN: usize = 4;
const TELEPHONE_EVENT_END: u8 = 0x80;
/// RFC 4733 §3.2 events 0-15 are the DTMF digits, in this order.
const DTMF_DIGITS: &[u8; 16] = b"0123456789*#ABCD";
/// Receive buffer: one byte more than relayed so a truncated datagram is recognisable.
const BUFFER_LEN: usize = MAX_DATAGRAM + 1;
/// Stand-in deadline for the timer while the timeout is not armed.
const IDLE_TIMER: Duration = Duration::from_secs(3600);

/// Errors from starting or controlling a relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("the relay must be spawned inside a tokio runtime")]
    NoRuntime,
    #[error("cannot register media socket with tokio: {0}")]
    Socket(#[from] io::Error),
    #[error("the relay task has ended")]
    Closed,
}

/// One of the two media endpoints of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// A forwarding direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flow {
    AToB,
    BToA,
}

impl Flow {
    /// The flow carrying packets received from `side`.
    pub fn from_side(side: Side) -> Flow {
        match side {
            Side::A => Flow::AToB,
            Side::B => Flow::BToA,
        }
    }

    fn index(self) -> usize {
        match self {
            Flow::AToB => 0,
            Flow::BToA => 1,
        }
    }
}

/// Symmetric RTP policy: where to send a side's media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latching {
    /// Send to the SDP address only; accept packets from any source.
    Off,
    /// Latch onto the first source that sends (NATed phones), then accept only it.
    #[default]
    Any,
    /// Latch only onto a source with the SDP's IP (port may differ); drop the rest.
    SameIp,
}

/// Relay settings.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// End the relay after this long without RTP on either side, once started;
    /// `None` never times out.
    pub rtp_timeout: Option<Duration>,
    pub latching: Latching,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            rtp_timeout: Some(DEFAULT_RTP_TIMEOUT),
            latching: Latching::default(),
        }
    }
}

/// What the relay tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// No RTP for `rtp_timeout` after start; the task has ended and freed its ports.
    Timeout,
    /// An RFC 4733 digit (`0-9*#A-D`) finished on `side` (reported once per press).
    Dtmf { side: Side, digit: char },
    /// A socket kept failing; the task has ended and freed its ports.
    Failed { side: Side, error: String },
}

#[derive(Debug, Default)]
struct FlowCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    rtcp_packets: AtomicU64,
    rtcp_bytes: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct SideCounters {
    bad: AtomicU64,
    rejected: AtomicU64,
}

/// Live counters, updated by the relay task and read through the handle.
#[derive(Debug, Default)]
pub struct RelayStats {
    flows: [FlowCounters; 2],
    sides: [SideCounters; 2],
}

/// Counters of one direction: what was forwarded, and valid packets not forwarded
/// (direction paused, no destination known yet, send failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowStats {
    pub packets: u64,
    pub bytes: u64,
    pub rtcp_packets: u64,
    pub rtcp_bytes: u64,
    pub dropped: u64,
}

/// Counters of packets received on one side and thrown away: `bad` failed validation
/// (short, not version 2, truncated); `rejected` came from a source other than the one
/// latched (or, with [`Latching::SameIp`], from a foreign IP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SideStats {
    pub bad: u64,
    pub rejected: u64,
}

/// A snapshot of [`RelayStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayStatsSnapshot {
    pub a_to_b: FlowStats,
    pub b_to_a: FlowStats,
    pub a: SideStats,
    pub b: SideStats,
}

impl RelayStatsSnapshot {
    pub fn flow(&self, flow: Flow) -> FlowStats {
        match flow {
            Flow::AToB => self.a_to_b,
            Flow::BToA => self.b_to_a,
        }
    }

    pub fn side(&self, side: Side) -> SideStats {
        match side {
            Side::A => self.a,
            Side::B => self.b,
        }
    }
}

impl RelayStats {
    pub fn snapshot(&self) -> RelayStatsSnapshot {
        let flow = |f: &FlowCounters| FlowStats {
            packets: f.packets.load(Ordering::Relaxed),
            bytes: f.bytes.load(Ordering::Relaxed),
            rtcp_packets: f.rtcp_packets.load(Ordering::Relaxed),
            rtcp_bytes: f.rtcp_bytes.load(Ordering::Relaxed),
            dropped: f.dropped.load(Ordering::Relaxed),
        };
        let side = |s: &SideCounters| SideStats {
            bad: s.bad.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
        };
        RelayStatsSnapshot {
            a_to_b: flow(&self.flows[0]),
            b_to_a: flow(&self.flows[1]),
            a: side(&self.sides[0]),
            b: side(&self.sides[1]),
        }
    }
}

#[derive(Debug)]
enum Command {
    SetRemote {
        side: Side,
        rtp: Option<SocketAddr>,
    },
    SetRemoteRtcp {
        side: Side,
        rtcp: Option<SocketAddr>,
    },
    Start,
    Pause(Flow),
    Resume(Flow),
    SetDtmfPayloadType {
        side: Side,
        pt: Option<u8>,
    },
    Stop,
}

/// Controls a relay task. Cheap to clone; the task stops when every handle is dropped.
#[derive(Debug, Clone)]
pub struct RelayHandle {
    tx: mpsc::UnboundedSender<Command>,
    stats: Arc<RelayStats>,
    local: [SocketAddr; 2],
}

impl RelayHandle {
    /// Sets where side's endpoint receives RTP (from its SDP); RTCP goes to the port above
    /// unless [`set_remote_rtcp`](Self::set_remote_rtcp) says otherwise. `None` (hold with
    /// `0.0.0.0`) stops sending to it. Latching starts over for that side.
    pub fn set_remote(&self, side: Side, rtp: Option<SocketAddr>) -> Result<(), RelayError> {
        self.send(Command::SetRemote { side, rtp })
    }

    /// Overrides side's RTCP destination (SDP `a=rtcp:`).
    pub fn set_remote_rtcp(&self, side: Side, rtcp: Option<SocketAddr>) -> Result<(), RelayError> {
        self.send(Command::SetRemoteRtcp { side, rtcp })
    }

    /// The call is answered: arm the RTP timeout.
    pub fn start(&self) -> Result<(), RelayError> {
        self.send(Command::Start)
    }

    /// Stops forwarding RTP in one direction (hold); RTCP keeps flowing. The RTP timeout
    /// is suspended while any direction is paused, since a held party may send nothing.
    pub fn pause(&self, flow: Flow) -> Result<(), RelayError> {
        self.send(Command::Pause(flow))
    }

    pub fn resume(&self, flow: Flow) -> Result<(), RelayError> {
        self.send(Command::Resume(flow))
    }

    /// The telephone-event payload type side's endpoint uses (from SDP); `None` turns
    /// DTMF detection off for that side.
    pub fn set_dtmf_payload_type(&self, side: Side, pt: Option<u8>) -> Result<(), RelayError> {
        self.send(Command::SetDtmfPayloadType { side, pt })
    }

    /// Ends the task; its sockets are closed once [`closed`](Self::closed) resolves.
    pub fn stop(&self) -> Result<(), RelayError> {
        self.send(Command::Stop)
    }

    /// Resolves when the task has ended and released its ports.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// The switch's RTP address facing `side` (for the SDP sent to that side).
    pub fn local_addr(&self, side: Side) -> SocketAddr {
        self.local[side.index()]
    }

    pub fn stats(&self) -> RelayStatsSnapshot {
        self.stats.snapshot()
    }

    fn send(&self, cmd: Command) -> Result<(), RelayError> {
        self.tx.send(cmd).map_err(|_| RelayError::Closed)
    }
}

/// Starts a relay between side A's ports and side B's ports. Must be called inside a
/// tokio runtime. The event receiver closes when the task ends.
pub fn spawn(
    a: PortPair,
    b: PortPair,
    config: RelayConfig,
) -> Result<(RelayHandle, mpsc::Receiver<RelayEvent>), RelayError> {
    // from_std panics outside a runtime; say so as an error instead.
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| RelayError::NoRuntime)?;
    let local = [a.rtp_addr(), b.rtp_addr()];
    let sides = [SideState::new(a)?, SideState::new(b)?];
    let (tx, rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
    let stats = Arc::new(RelayStats::default());
    let state = LoopState {
        config,
        stats: Arc::clone(&stats),
        events: events_tx,
        paused: [false; 2],
        started: false,
        last_rx: [Instant::now(); 2],
        errors: 0,
    };
    runtime.spawn(run_task(state, sides, rx));
    Ok((RelayHandle { tx, stats, local }, events_rx))
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Rtp,
    Rtcp,
}

struct SideState {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    sdp_rtp: Option<SocketAddr>,
    sdp_rtcp: Option<SocketAddr>,
    latched_rtp: Option<SocketAddr>,
    latched_rtcp: Option<SocketAddr>,
    dtmf_pt: Option<u8>,
    last_dtmf_end: Option<u32>,
}

impl SideState {
    fn new(ports: PortPair) -> io::Result<Self> {
        Ok(Self {
            rtp: UdpSocket::from_std(ports.rtp)?,
            rtcp: UdpSocket::from_std(ports.rtcp)?,
            sdp_rtp: None,
            sdp_rtcp: None,
            latched_rtp: None,
            latched_rtcp: None,
            dtmf_pt: None,
            last_dtmf_end: None,
        })
    }

    fn rtp_dest(&self) -> Option<SocketAddr> {
        self.latched_rtp.or(self.sdp_rtp)
    }

    fn rtcp_dest(&self) -> Option<SocketAddr> {
        self.latched_rtcp.or(self.sdp_rtcp).or_else(|| {
            let rtp = self.rtp_dest()?;
            Some(SocketAddr::new(rtp.ip(), rtp.port().checked_add(1)?))
        })
    }

    /// Whether a packet from `src` is accepted, latching onto it if the policy says so.
    fn admit(&mut self, kind: Kind, src: SocketAddr, mode: Latching) -> bool {
        let expected_ip = match kind {
            Kind::Rtp => self.sdp_rtp,
            Kind::Rtcp => self.sdp_rtcp.or(self.sdp_rtp),
        }
        .map(|a| a.ip());
        let latched = match kind {
            Kind::Rtp => &mut self.latched_rtp,
            Kind::Rtcp => &mut self.latched_rtcp,
        };
        if let Some(l) = *latched {
            return l == src;
        }
        match mode {
            Latching::Off => true,
            Latching::Any => {
                *latched = Some(src);
                true
            }
            Latching::SameIp if expected_ip == Some(src.ip()) => {
                *latched = Some(src);
                true
            }
            Latching::SameIp => false,
        }
    }
}

/// What ended the loop, if it should be reported.
enum Exit {
    Quiet,
    Report(RelayEvent),
}

async fn run_task(
    mut state: LoopState,
    mut sides: [SideState; 2],
    mut rx: mpsc::UnboundedReceiver<Command>,
) {
    let exit = state.run(&mut sides, &mut rx).await;
    // Free the ports before announcing the end, so an owner reacting to `closed()` or
    // `Timeout` can reuse them at once.
    drop(sides);
    drop(rx);
    if let Exit::Report(event) = exit {
        // The task is over, so waiting for room costs no media; an owner that went away
        // makes this return at once.
        let _ = state.events.send(event).await;
    }
}

struct LoopState {
    config: RelayConfig,
    stats: Arc<RelayStats>,
    events: mpsc::Sender<RelayEvent>,
    paused: [bool; 2],
    started: bool,
    /// When each side last sent RTP (or was last expected to start sending).
    last_rx: [Instant; 2],
    errors: u32,
}

impl LoopState {
    fn timeout_armed(&self) -> Option<Duration> {
        let held = self.paused.iter().all(|p| *p);
        self.config.rtp_timeout.filter(|_| self.started && !held)
    }

    /// When the first side that is expected to send (its flow not paused) has been
    /// silent for `t`: a phone that vanishes ends the call even if the other still talks.
    fn deadline(&self, t: Duration) -> Instant {
        [Side::A, Side::B]
            .into_iter()
            .filter(|s| !self.paused[Flow::from_side(*s).index()])
            .map(|s| self.last_rx[s.index()] + t)
            .min()
            .unwrap_or_else(|| Instant::now() + IDLE_TIMER)
    }

    async fn run(
        &mut self,
        sides: &mut [SideState; 2],
        rx: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Exit {
        // One buffer per socket: the four receives are pending at once inside select!.
        let mut bufs = [
            vec![0u8; BUFFER_LEN],
            vec![0u8; BUFFER_LEN],
            vec![0u8; BUFFER_LEN],
            vec![0u8; BUFFER_LEN],
        ];
        let [buf_a, buf_b, buf_a_rtcp, buf_b_rtcp] = &mut bufs;
        // One timer reset only when it fires or the timeout is (re)armed, not per packet.
        let timer = tokio::time::sleep(IDLE_TIMER);
        tokio::pin!(timer);
        let mut armed = None;
        loop {
            let [a, b] = &mut *sides;
            let outcome = tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.apply(cmd, sides),
                    // Every handle dropped: nobody can control or stop us any more.
                    None => Some(Exit::Quiet),
                },
                r = a.rtp.recv_from(buf_a) => self.on_recv(r, Side::A, Kind::Rtp, buf_a, sides),
                r = b.rtp.recv_from(buf_b) => self.on_recv(r, Side::B, Kind::Rtp, buf_b, sides),
                r = a.rtcp.recv_from(buf_a_rtcp) => {
                    self.on_recv(r, Side::A, Kind::Rtcp, buf_a_rtcp, sides)
                }
                r = b.rtcp.recv_from(buf_b_rtcp) => {
                    self.on_recv(r, Side::B, Kind::Rtcp, buf_b_rtcp, sides)
                }
                () = &mut timer, if armed.is_some() => {
                    let deadline = self.deadline(armed.unwrap_or(IDLE_TIMER));
                    if Instant::now() >= deadline {
                        Some(Exit::Report(RelayEvent::Timeout))
                    } else {
                        timer.as_mut().reset(deadline);
                        None
                    }
                }
            };
            if let Some(exit) = outcome {
                return exit;
            }
            let now_armed = self.timeout_armed();
            if now_armed != armed {
                if let Some(t) = now_armed {
                    // Count from the moment of answer (or of resuming from hold).
                    self.last_rx = [Instant::now(); 2];
                    timer.as_mut().reset(self.deadline(t));
                }
                armed = now_armed;
            }
        }
    }

    fn apply(&mut self, cmd: Command, sides: &mut [SideState; 2]) -> Option<Exit> {
        match cmd {
            Command::SetRemote { side, rtp } => {
                let s = &mut sides[side.index()];
                s.sdp_rtp = rtp;
                // A new SDP address is a new endpoint (re-INVITE, transfer): latch afresh.
                s.latched_rtp = None;
                s.latched_rtcp = None;
            }
            Command::SetRemoteRtcp { side, rtcp } => {
                let s = &mut sides[side.index()];
                s.sdp_rtcp = rtcp;
                s.latched_rtcp = None;
            }
            Command::Start => self.started = true,
            Command::Pause(flow) => self.paused[flow.index()] = true,
            Command::Resume(flow) => {
                // A side taken off hold gets a whole timeout to start sending again.
                let side = match flow {
                    Flow::AToB => Side::A,
                    Flow::BToA => Side::B,
                };
                if self.paused[flow.index()] {
                    self.last_rx[side.index()] = Instant::now();
                }
                self.paused[flow.index()] = false;
            }
            Command::SetDtmfPayloadType { side, pt } => {
                let s = &mut sides[side.index()];
                s.dtmf_pt = pt;
                s.last_dtmf_end = None;
            }
            Command::Stop => return Some(Exit::Quiet),
        }
        None
    }

    fn on_recv(
        &mut self,
        received: io::Result<(usize, SocketAddr)>,
        from: Side,
        kind: Kind,
        buf: &[u8],
        sides: &mut [SideState; 2],
    ) -> Option<Exit> {
        let (len, src) = match received {
            Ok(r) => {
                self.errors = 0;
                r
            }
            Err(e) => {
                self.errors += 1;
                tracing::debug!(?from, error = %e, "media socket receive error");
                if self.errors >= MAX_CONSECUTIVE_SOCKET_ERRORS {
                    return Some(Exit::Report(RelayEvent::Failed {
                        side: from,
                        error: e.to_string(),
                    }));
                }
                return None;
            }
        };
        let side_counters = &self.stats.sides[from.index()];
        let min_len = match kind {
            Kind::Rtp => RTP_HEADER_LEN,
            Kind::Rtcp => RTCP_MIN_LEN,
        };
        let Some(packet) = buf
            .get(..len)
            .filter(|p| p.len() >= min_len && p.len() <= MAX_DATAGRAM && p[0] >> 6 == RTP_VERSION)
        else {
            side_counters.bad.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let [a, b] = sides;
        let (this, other) = match from {
            Side::A => (a, &*b),
            Side::B => (b, &*a),
        };
        if !this.admit(kind, src, self.config.latching) {
            side_counters.rejected.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let flow = Flow::from_side(from);
        let counters = &self.stats.flows[flow.index()];
        let (socket, dest) = match kind {
            Kind::Rtp => {
                self.last_rx[from.index()] = Instant::now();
                if this.dtmf_pt.is_some() {
                    self.detect_dtmf(from, this, packet);
                }
                if self.paused[flow.index()] {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                (&other.rtp, other.rtp_dest())
            }
            Kind::Rtcp => (&other.rtcp, other.rtcp_dest()),
        };
        let Some(dest) = dest else {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        // Never wait on a full send buffer: late media is worthless, dropping is right.
        match socket.try_send_to(packet, dest) {
            Ok(_) => {
                let (packets, bytes) = match kind {
                    Kind::Rtp => (&counters.packets, &counters.bytes),
                    Kind::Rtcp => (&counters.rtcp_packets, &counters.rtcp_bytes),
                };
                packets.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(packet.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(?flow, %dest, error = %e, "media send failed");
            }
        }
        None
    }

    /// Reports an RFC 4733 digit once: on its first end packet (the end packet is sent
    /// three times with the same RTP timestamp, which identifies the event).
    fn detect_dtmf(&self, side: Side, state: &mut SideState, packet: &[u8]) {
        if state.dtmf_pt != Some(packet[1] & 0x7f) {
            return;
        }
        let Some(payload) = rtp_payload(packet) else {
            return;
        };
        let [event, flags, ..] = *payload else {
            return;
        };
        if payload.len() < TELEPHONE_EVENT_LEN || flags & TELEPHONE_EVENT_END == 0 {
            return;
        }
        let timestamp = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        if state.last_dtmf_end == Some(timestamp) {
            return;
        }
        state.last_dtmf_end = Some(timestamp);
        // Event 16 (flash) and the non-DTMF tones are not digits.
        let Some(&digit) = DTMF_DIGITS.get(usize::from(event)) else {
            return;
        };
        let ev = RelayEvent::Dtmf {
            side,
            digit: char::from(digit),
        };
        if self.events.try_send(ev).is_err() {
            tracing::warn!(?side, "relay event channel full or closed; DTMF digit lost");
        }
    }
}

/// The payload of a valid RTP packet: after CSRCs and header extension, before padding.
fn rtp_payload(packet: &[u8]) -> Option<&[u8]> {
    let first = *packet.first()?;
    let csrc_count = usize::from(first & 0x0f);
    let mut start = RTP_HEADER_LEN + 4 * csrc_count;
    if first & 0x10 != 0 {
        // Extension header: profile (16 bits), length in 32-bit words (16 bits).
        let ext = packet.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = packet.len();
    if first & 0x20 != 0 {
        end = end.checked_sub(usize::from(*packet.last()?))?;
    }
    packet.get(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_offsets() {
        let mut p = vec![0x80, 101, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4, 9, 0x80, 0, 160];
        assert_eq!(rtp_payload(&p), Some(&[9, 0x80, 0, 160][..]));
        // One CSRC.
        p[0] = 0x81;
        p.splice(12..12, [0xaa; 4]);
        assert_eq!(rtp_payload(&p), Some(&[9, 0x80, 0, 160][..]));
        // Extension of one word after the CSRC.
        p[0] = 0x91;
        p.splice(16..16, [0xbe, 0xde, 0, 1, 1, 2, 3, 4]);
        assert_eq!(rtp_payload(&p), Some(&[9, 0x80, 0, 160][..]));
        // Padding of 4 bytes.
        p[0] = 0xb1;
        p.extend_from_slice(&[0, 0, 0, 4]);
        assert_eq!(rtp_payload(&p), Some(&[9, 0x80, 0, 160][..]));
        // Lies about lengths are caught, not panics.
        p[0] = 0x8f;
        assert_eq!(rtp_payload(&p[..20]), None);
        let bogus_pad = [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200];
        assert_eq!(rtp_payload(&bogus_pad), None);
        let bogus_ext = [0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        assert_eq!(rtp_payload(&bogus_ext), None);
    }

    #[test]
    fn side_and_flow() {
        assert_eq!(Side::A.other(), Side::B);
        assert_eq!(Flow::from_side(Side::B), Flow::BToA);
    }
}
