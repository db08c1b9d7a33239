//! The engine thread: sockets, ticks and commands (see the parent module).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[path = "pace.rs"]
mod pace;

use super::{
    Codec, Command, EndpointCounters, EndpointId, EngineCounters, EventSink, Latching, MediaEvent,
    RecordingId, RoomId,
};
use crate::media::dtmf::{
    DtmfReceived, InbandDetector, PlannedEventPacket, Rfc4733Receiver, Rfc4733Sender,
    DEFAULT_DIGIT_MS, DEFAULT_INTER_DIGIT_MS,
};
use crate::media::frame::{Frame, FRAME_DURATION, FRAME_SAMPLES, FRAME_TIMESTAMP_STEP, SILENCE};
use crate::media::jitter::{JitterBuffer, PopKind};
use crate::media::mixer::{MixMode, Mixer};
use crate::media::playback::{Playback, PlaybackFinished, PlaybackTick};
use crate::media::poller::{Poller, Token, Waker};
use crate::media::ports::{Lease, PortPair};
use crate::media::rtp_out::{parse_rtp, EventPacket, RtpSender, RTP_HEADER_LEN, RTP_VERSION};
use crate::media::wav::WavWriter;
use pace::Pacer;

/// Largest datagram handled; a longer one was truncated by `recv_from` and is dropped.
pub const MAX_DATAGRAM: usize = 2048;
/// RTCP common header plus sender SSRC (RFC 3550 §6.4).
const RTCP_MIN_LEN: usize = 8;
/// The waker's token; endpoint tokens are `slot * 2 + kind` and never get this large.
const WAKER_TOKEN: Token = u64::MAX;
/// RTP timeouts are checked once a second (every this many ticks).
const TICKS_PER_TIMEOUT_CHECK: u64 = 50;
/// Consecutive receive errors after which an endpoint is given up as broken.
const MAX_CONSECUTIVE_SOCKET_ERRORS: u32 = 100;
/// A tick this far behind schedule is late; the schedule is then reset rather than
/// running a burst of catch-up ticks that would send audio in a clump.
const LATE_TICK: Duration = Duration::from_millis(40);
const MAX_LATE_BEFORE_RESYNC: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rtp = 0,
    Rtcp = 1,
}

fn token(slot: usize, kind: Kind) -> Token {
    (slot as u64) << 1 | kind as u64
}

/// An outgoing RFC 4733 digit in progress.
#[derive(Debug)]
struct DtmfOut {
    digits: VecDeque<char>,
    current: Option<(Instant, u32, Rfc4733Sender, Option<PlannedEventPacket>)>,
    /// Not before this (inter-digit gap).
    next_start: Instant,
}

#[derive(Debug)]
struct Ep {
    id: EndpointId,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// Returns the sockets to the port allocator when the endpoint closes.
    lease: Lease,
    sdp_rtp: Option<SocketAddr>,
    sdp_rtcp: Option<SocketAddr>,
    latched_rtp: Option<SocketAddr>,
    latched_rtcp: Option<SocketAddr>,
    latching: Latching,
    codec: Codec,
    rfc4733: Rfc4733Receiver,
    rfc4733_seen: bool,
    inband: Option<InbandDetector>,
    peer: Option<usize>,
    receiving: bool,
    sender: RtpSender,
    playback: Option<Playback>,
    room: Option<RoomId>,
    recording: Option<RecordingId>,
    jitter: Option<Box<JitterBuffer>>,
    frame_in: Frame,
    timeout: Option<Duration>,
    last_rx: Instant,
    timed_out: bool,
    errors: u32,
    dtmf_out: Option<DtmfOut>,
    events: EventSink,
    counters: Arc<EndpointCounters>,
}

impl Ep {
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
    fn admit(&mut self, kind: Kind, src: SocketAddr) -> bool {
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
        match self.latching {
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

    /// The switch listens to this endpoint's audio (and so decodes it every tick).
    fn listened(&self) -> bool {
        self.room.is_some() || self.recording.is_some() || self.inband.is_some()
    }

    fn update_jitter(&mut self) {
        match (self.listened(), self.jitter.is_some()) {
            (true, false) => self.jitter = Some(Box::default()),
            (false, true) => self.jitter = None,
            _ => {}
        }
        if self.jitter.is_none() {
            self.frame_in = SILENCE;
        }
    }

    /// Whether the switch generates what this endpoint sends (so forwarded packets from
    /// its peer are not wanted now).
    fn generating(&self) -> bool {
        self.playback.is_some() || self.room.is_some()
    }

    fn emit(&self, event: MediaEvent) {
        // An owner that went away no longer cares.
        let _ = self.events.send(event);
    }

    fn report_dtmf(&mut self, dtmf: DtmfReceived) {
        if let Some(pb) = self.playback.as_mut() {
            if let Some(finished) = pb.on_dtmf(dtmf.digit) {
                self.playback = None;
                self.emit(MediaEvent::PlaybackFinished {
                    endpoint: self.id,
                    finished,
                });
            }
        }
        self.emit(MediaEvent::Dtmf {
            endpoint: self.id,
            dtmf,
        });
    }

    /// Encodes and sends one frame the switch made.
    fn send_frame(&mut self, frame: &Frame, now: Instant, out: &mut [u8]) {
        let Some(dest) = self.rtp_dest() else {
            return;
        };
        let mut payload = [0u8; FRAME_SAMPLES];
        self.codec.law.encode_frame(frame, &mut payload);
        let Ok(len) = self
            .sender
            .write_packet(&payload, FRAME_TIMESTAMP_STEP, now, out)
        else {
            return;
        };
        match self.rtp.send_to(&out[..len], dest) {
            Ok(_) => self.counters.generated.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.counters.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Sends the RFC 4733 packets that are due. Returns true while a digit is in flight
    /// (the audio of this tick is then suppressed, as RFC 4733 §2.5.1.2 allows).
    fn send_due_dtmf(&mut self, now: Instant, out: &mut [u8]) -> bool {
        let (Some(pt), Some(dest)) = (self.codec.dtmf_pt, self.rtp_dest()) else {
            self.dtmf_out = None;
            return false;
        };
        let Some(state) = self.dtmf_out.as_mut() else {
            return false;
        };
        if state.current.is_none() {
            if now < state.next_start {
                return false;
            }
            let Some(digit) = state.digits.pop_front() else {
                self.dtmf_out = None;
                return false;
            };
            let Ok(mut sender) = Rfc4733Sender::new(digit, DEFAULT_DIGIT_MS) else {
                return false;
            };
            let first = sender.next();
            let ts = self.sender.event_timestamp(now);
            state.current = Some((now, ts, sender, first));
        }
        let mut sent_any = false;
        while let Some((start, ts, sender, pending)) = state.current.as_mut() {
            let Some(packet) = *pending else {
                state.current = None;
                state.next_start = now + Duration::from_millis(u64::from(DEFAULT_INTER_DIGIT_MS));
                break;
            };
            if now < *start + packet.send_at {
                break;
            }
            let event = EventPacket {
                payload_type: pt,
                marker: packet.marker,
                timestamp: *ts,
                duration: packet.duration,
                payload: &packet.payload,
            };
            *pending = sender.next();
            if let Ok(len) = self.sender.write_event(&event, now, out) {
                if self.rtp.send_to(&out[..len], dest).is_ok() {
                    self.counters.generated.fetch_add(1, Ordering::Relaxed);
                }
            }
            sent_any = true;
        }
        sent_any || state.current.is_some()
    }
}

#[derive(Debug)]
struct RoomState {
    mixer: Mixer,
    /// Member endpoint id → slot.
    members: HashMap<EndpointId, usize>,
}

#[derive(Debug)]
struct RecState {
    writer: WavWriter,
    channels: [Option<EndpointId>; 2],
    events: EventSink,
}

pub(super) struct Worker {
    poller: Poller,
    waker: Arc<Waker>,
    rx: mpsc::Receiver<Command>,
    counters: Arc<EngineCounters>,
    slots: Vec<Option<Ep>>,
    free: Vec<usize>,
    index: HashMap<EndpointId, usize>,
    rooms: HashMap<RoomId, RoomState>,
    recordings: HashMap<RecordingId, RecState>,
    buf: Vec<u8>,
    out: Vec<u8>,
    ready: Vec<Token>,
    ticks: u64,
    running: bool,
}

impl Worker {
    pub(super) fn new(
        rx: mpsc::Receiver<Command>,
        waker: Arc<Waker>,
        counters: Arc<EngineCounters>,
    ) -> io::Result<Self> {
        let poller = Poller::new()?;
        poller.add(waker.raw_fd(), WAKER_TOKEN)?;
        Ok(Self {
            poller,
            waker,
            rx,
            counters,
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            rooms: HashMap::new(),
            recordings: HashMap::new(),
            buf: vec![0; MAX_DATAGRAM + 1],
            out: vec![0; MAX_DATAGRAM],
            ready: Vec::with_capacity(crate::media::poller::EVENTS_PER_WAIT),
            ticks: 0,
            running: true,
        })
    }

    pub(super) fn run(&mut self) {
        let mut next_tick = Instant::now() + FRAME_DURATION;
        let mut pacer = Pacer::default();
        while self.running {
            let now = Instant::now();
            if now >= next_tick {
                let behind = now - next_tick;
                if behind > LATE_TICK {
                    self.counters.late_ticks.fetch_add(1, Ordering::Relaxed);
                }
                self.tick(now);
                next_tick += FRAME_DURATION;
                if behind > MAX_LATE_BEFORE_RESYNC {
                    next_tick = now + FRAME_DURATION;
                }
                continue;
            }
            // Under load, at most one wake-up per millisecond (see `pace`).
            if let Some(sleep) = pacer.sleep_before_wait(now, next_tick) {
                std::thread::sleep(sleep);
                continue;
            }
            let mut ready = std::mem::take(&mut self.ready);
            let timeout = pacer.wait_timeout(next_tick - now);
            if let Err(e) = self.poller.wait(timeout, &mut ready) {
                tracing::error!(error = %e, "media engine: epoll_wait failed");
                std::thread::sleep(FRAME_DURATION);
            }
            pacer.after_wait(Instant::now(), ready.len());
            for &t in &ready {
                if t == WAKER_TOKEN {
                    self.waker.reset();
                    self.drain_commands();
                } else {
                    let slot = (t >> 1) as usize;
                    let kind = if t & 1 == 0 { Kind::Rtp } else { Kind::Rtcp };
                    self.on_readable(slot, kind);
                }
            }
            self.ready = ready;
        }
        self.close_everything();
    }

    fn drain_commands(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(cmd) => self.apply(cmd),
                Err(mpsc::TryRecvError::Empty) => return,
                // Every handle (and the engine) is gone: nobody can stop us otherwise.
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.running = false;
                    return;
                }
            }
        }
    }

    fn slot_of(&self, id: EndpointId) -> Option<usize> {
        self.index.get(&id).copied()
    }

    fn ep(&mut self, id: EndpointId) -> Option<&mut Ep> {
        let slot = self.slot_of(id)?;
        self.slots.get_mut(slot)?.as_mut()
    }

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Open {
                id,
                ports,
                latching,
                events,
                counters,
            } => self.open(id, ports, latching, events, counters),
            Command::Close(id) => self.close(id),
            Command::SetRemote { id, rtp } => {
                if let Some(ep) = self.ep(id) {
                    ep.sdp_rtp = rtp;
                    // A new SDP address is a new endpoint (re-INVITE, transfer).
                    ep.latched_rtp = None;
                    ep.latched_rtcp = None;
                }
            }
            Command::SetRemoteRtcp { id, rtcp } => {
                if let Some(ep) = self.ep(id) {
                    ep.sdp_rtcp = rtcp;
                    ep.latched_rtcp = None;
                }
            }
            Command::SetCodec { id, codec } => {
                if let Some(ep) = self.ep(id) {
                    let law_changed = ep.codec.law != codec.law;
                    ep.codec = codec;
                    // New event numbers alone (a re-INVITE renumbering them) leave the
                    // outgoing stream as it is: no marker, no re-based timestamps.
                    if law_changed {
                        ep.sender = RtpSender::new(
                            ep.sender.ssrc(),
                            codec.law.payload_type(),
                            ep.sender.next_sequence(),
                            ep.sender.next_timestamp(),
                        );
                    }
                }
            }
            Command::Connect(a, b) => self.connect(a, b),
            Command::Disconnect(a) => self.disconnect(a),
            Command::SetReceiving { id, receiving } => {
                if let Some(ep) = self.ep(id) {
                    if receiving && !ep.receiving {
                        // Taken off hold: a whole timeout to start sending again.
                        ep.last_rx = Instant::now();
                    }
                    ep.receiving = receiving;
                }
            }
            Command::ArmTimeout { id, timeout } => {
                if let Some(ep) = self.ep(id) {
                    ep.timeout = timeout;
                    ep.last_rx = Instant::now();
                    ep.timed_out = false;
                }
            }
            Command::Play { id, playback } => {
                let counters = Arc::clone(&self.counters);
                if let Some(ep) = self.ep(id) {
                    if let Some(mut old) = ep.playback.take() {
                        counters.playbacks.fetch_sub(1, Ordering::Relaxed);
                        if let Some(finished) = old.stop() {
                            ep.emit(MediaEvent::PlaybackFinished {
                                endpoint: id,
                                finished,
                            });
                        }
                    }
                    ep.sender.switch_source();
                    ep.playback = Some(*playback);
                    counters.playbacks.fetch_add(1, Ordering::Relaxed);
                }
            }
            Command::StopPlayback(id) => self.stop_playback(id, None),
            Command::SetInbandDtmf { id, on } => {
                if let Some(ep) = self.ep(id) {
                    ep.inband = on.then(InbandDetector::new);
                    ep.update_jitter();
                }
            }
            Command::SendDtmf { id, digits } => {
                if let Some(ep) = self.ep(id) {
                    let now = Instant::now();
                    let state = ep.dtmf_out.get_or_insert_with(|| DtmfOut {
                        digits: VecDeque::new(),
                        current: None,
                        next_start: now,
                    });
                    state.digits.extend(
                        digits
                            .chars()
                            .filter(|c| c.is_ascii_alphanumeric() || *c == '*' || *c == '#'),
                    );
                }
            }
            Command::CreateRoom(room) => {
                self.rooms.insert(
                    room,
                    RoomState {
                        mixer: Mixer::new(),
                        members: HashMap::new(),
                    },
                );
                self.counters.rooms.fetch_add(1, Ordering::Relaxed);
            }
            Command::CloseRoom(room) => {
                if let Some(state) = self.rooms.remove(&room) {
                    self.counters.rooms.fetch_sub(1, Ordering::Relaxed);
                    for slot in state.members.into_values() {
                        if let Some(ep) = self.slots.get_mut(slot).and_then(Option::as_mut) {
                            ep.room = None;
                            ep.sender.switch_source();
                            ep.update_jitter();
                        }
                    }
                }
            }
            Command::Join { id, room, mode } => self.join(id, room, mode),
            Command::Leave(id) => self.leave(id),
            Command::SetMixMode { id, mode } => {
                let Some(room) = self.ep(id).and_then(|ep| ep.room) else {
                    return;
                };
                if let Some(state) = self.rooms.get_mut(&room) {
                    if let Err(e) = state.mixer.set_mode(id, mode) {
                        tracing::debug!(error = %e, "media engine: mix mode not set");
                    }
                }
            }
            Command::StartRecording {
                id,
                writer,
                left,
                right,
                events,
            } => {
                self.recordings.insert(
                    id,
                    RecState {
                        writer: *writer,
                        channels: [None, None],
                        events,
                    },
                );
                self.counters.recordings.fetch_add(1, Ordering::Relaxed);
                self.set_recording_channel(id, 0, left);
                self.set_recording_channel(id, 1, right);
            }
            Command::SetRecordingChannel {
                id,
                channel,
                endpoint,
            } => self.set_recording_channel(id, channel, endpoint),
            Command::StopRecording(id) => self.finish_recording(id, None),
            Command::Shutdown => self.running = false,
        }
    }

    fn open(
        &mut self,
        id: EndpointId,
        ports: PortPair,
        latching: Latching,
        events: EventSink,
        counters: Arc<EndpointCounters>,
    ) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let PortPair {
            rtp, rtcp, lease, ..
        } = ports;
        let registered = self
            .poller
            .add(rtp.as_raw_fd(), token(slot, Kind::Rtp))
            .and_then(|()| self.poller.add(rtcp.as_raw_fd(), token(slot, Kind::Rtcp)));
        if let Err(e) = registered {
            let _ = self.poller.remove(rtp.as_raw_fd());
            self.free.push(slot);
            let _ = events.send(MediaEvent::Failed {
                endpoint: id,
                error: e.to_string(),
            });
            return;
        }
        let codec = Codec::default();
        self.slots[slot] = Some(Ep {
            id,
            rtp,
            rtcp,
            lease,
            sdp_rtp: None,
            sdp_rtcp: None,
            latched_rtp: None,
            latched_rtcp: None,
            latching,
            codec,
            rfc4733: Rfc4733Receiver::new(),
            rfc4733_seen: false,
            inband: None,
            peer: None,
            receiving: true,
            sender: RtpSender::with_random_start(codec.law.payload_type()),
            playback: None,
            room: None,
            recording: None,
            jitter: None,
            frame_in: SILENCE,
            timeout: None,
            last_rx: Instant::now(),
            timed_out: false,
            errors: 0,
            dtmf_out: None,
            events,
            counters,
        });
        self.index.insert(id, slot);
        self.counters.endpoints.fetch_add(1, Ordering::Relaxed);
    }

    fn close(&mut self, id: EndpointId) {
        self.disconnect(id);
        self.leave(id);
        self.stop_playback(id, None);
        if let Some(rec) = self.ep(id).and_then(|ep| ep.recording) {
            if let Some(state) = self.recordings.get_mut(&rec) {
                for ch in &mut state.channels {
                    if *ch == Some(id) {
                        *ch = None;
                    }
                }
            }
        }
        let Some(slot) = self.index.remove(&id) else {
            return;
        };
        if let Some(ep) = self.slots.get_mut(slot).and_then(Option::take) {
            self.counters.endpoints.fetch_sub(1, Ordering::Relaxed);
            // The sockets rest in the allocator for the next call, open: out of the epoll
            // set first. One that cannot be taken out (or already was, after socket
            // errors) is closed, which also takes it out.
            let Ep {
                rtp, rtcp, lease, ..
            } = ep;
            let rtp_out = self.poller.remove(rtp.as_raw_fd()).is_ok();
            let rtcp_out = self.poller.remove(rtcp.as_raw_fd()).is_ok();
            if rtp_out && rtcp_out {
                lease.rest(rtp, rtcp);
            }
        }
        self.free.push(slot);
    }

    fn connect(&mut self, a: EndpointId, b: EndpointId) {
        if a == b {
            return;
        }
        self.disconnect(a);
        self.disconnect(b);
        self.leave(a);
        self.leave(b);
        let (Some(sa), Some(sb)) = (self.slot_of(a), self.slot_of(b)) else {
            return;
        };
        if let Some(ep) = self.slots[sa].as_mut() {
            ep.peer = Some(sb);
        }
        if let Some(ep) = self.slots[sb].as_mut() {
            ep.peer = Some(sa);
        }
    }

    fn disconnect(&mut self, id: EndpointId) {
        let Some(slot) = self.slot_of(id) else {
            return;
        };
        let Some(peer) = self.slots[slot].as_mut().and_then(|ep| ep.peer.take()) else {
            return;
        };
        if let Some(p) = self.slots.get_mut(peer).and_then(Option::as_mut) {
            if p.peer == Some(slot) {
                p.peer = None;
            }
        }
    }

    fn join(&mut self, id: EndpointId, room: RoomId, mode: MixMode) {
        self.disconnect(id);
        self.leave(id);
        let Some(slot) = self.slot_of(id) else {
            return;
        };
        let Some(state) = self.rooms.get_mut(&room) else {
            return;
        };
        if let Err(e) = state.mixer.join(id, mode) {
            tracing::warn!(error = %e, "media engine: cannot join room");
            return;
        }
        state.members.insert(id, slot);
        if let Some(ep) = self.slots[slot].as_mut() {
            ep.room = Some(room);
            ep.sender.switch_source();
            ep.update_jitter();
        }
    }

    fn leave(&mut self, id: EndpointId) {
        let Some(room) = self.ep(id).and_then(|ep| ep.room.take()) else {
            return;
        };
        if let Some(state) = self.rooms.get_mut(&room) {
            let _ = state.mixer.leave(id);
            state.members.remove(&id);
        }
        if let Some(ep) = self.ep(id) {
            ep.sender.switch_source();
            ep.update_jitter();
        }
    }

    fn stop_playback(&mut self, id: EndpointId, finished: Option<PlaybackFinished>) {
        let counters = Arc::clone(&self.counters);
        let Some(ep) = self.ep(id) else {
            return;
        };
        let Some(mut pb) = ep.playback.take() else {
            return;
        };
        counters.playbacks.fetch_sub(1, Ordering::Relaxed);
        ep.sender.switch_source();
        if let Some(finished) = finished.or_else(|| pb.stop()) {
            ep.emit(MediaEvent::PlaybackFinished {
                endpoint: id,
                finished,
            });
        }
    }

    fn set_recording_channel(
        &mut self,
        rec: RecordingId,
        channel: usize,
        endpoint: Option<EndpointId>,
    ) {
        let Some(state) = self.recordings.get_mut(&rec) else {
            return;
        };
        let Some(ch) = state.channels.get_mut(channel) else {
            return;
        };
        let old = std::mem::replace(ch, endpoint);
        let still_used = |id| state.channels.contains(&Some(id));
        let release = old.filter(|id| !still_used(*id));
        if let Some(old) = release {
            if let Some(ep) = self.ep(old) {
                ep.recording = None;
                ep.update_jitter();
            }
        }
        if let Some(new) = endpoint {
            if let Some(ep) = self.ep(new) {
                ep.recording = Some(rec);
                ep.update_jitter();
            }
        }
    }

    fn finish_recording(&mut self, rec: RecordingId, error: Option<String>) {
        let Some(state) = self.recordings.remove(&rec) else {
            return;
        };
        self.counters.recordings.fetch_sub(1, Ordering::Relaxed);
        for id in state.channels.into_iter().flatten() {
            if let Some(ep) = self.ep(id) {
                if ep.recording == Some(rec) {
                    ep.recording = None;
                    ep.update_jitter();
                }
            }
        }
        let result = match error {
            Some(e) => Err(e),
            None => state.writer.finish().map_err(|e| e.to_string()),
        };
        let _ = state.events.send(MediaEvent::RecordingFinished {
            recording: rec,
            result,
        });
    }

    fn on_readable(&mut self, slot: usize, kind: Kind) {
        let Some(ep) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let socket = match kind {
            Kind::Rtp => &ep.rtp,
            Kind::Rtcp => &ep.rtcp,
        };
        let (len, src) = match socket.recv_from(&mut self.buf) {
            Ok(r) => {
                ep.errors = 0;
                r
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                ep.errors += 1;
                if ep.errors == MAX_CONSECUTIVE_SOCKET_ERRORS {
                    let _ = self.poller.remove(ep.rtp.as_raw_fd());
                    let _ = self.poller.remove(ep.rtcp.as_raw_fd());
                    ep.emit(MediaEvent::Failed {
                        endpoint: ep.id,
                        error: e.to_string(),
                    });
                }
                return;
            }
        };
        let min_len = match kind {
            Kind::Rtp => RTP_HEADER_LEN,
            Kind::Rtcp => RTCP_MIN_LEN,
        };
        if len < min_len || len > MAX_DATAGRAM || self.buf[0] >> 6 != RTP_VERSION {
            ep.counters.bad.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !ep.admit(kind, src) {
            ep.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let now = Instant::now();
        if kind == Kind::Rtcp {
            self.forward_rtcp(slot, len);
            return;
        }
        ep.counters.received.fetch_add(1, Ordering::Relaxed);
        ep.last_rx = now;
        let packet = &self.buf[..len];
        let pt = packet[1] & 0x7f;
        let is_event = ep.codec.is_event(pt);
        if is_event {
            ep.rfc4733_seen = true;
            if let Ok(parsed) = parse_rtp(packet) {
                let _ = ep.rfc4733.on_packet(&parsed.header, parsed.payload, now);
            }
            while let Some(d) = ep.rfc4733.take_digit() {
                ep.report_dtmf(d);
            }
        } else if let Some(jitter) = ep.jitter.as_mut() {
            jitter.push(packet, now);
        }
        if !ep.receiving {
            ep.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(peer_slot) = ep.peer else {
            if ep.room.is_none() {
                ep.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
            return;
        };
        let counters = Arc::clone(&ep.counters);
        let Some(peer) = self.slots.get_mut(peer_slot).and_then(Option::as_mut) else {
            return;
        };
        let (Some(dest), false) = (peer.rtp_dest(), peer.generating()) else {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let packet = &mut self.buf[..len];
        // Each side gets telephone-events under the number it negotiated: the two may
        // differ (a caller that made no offer answers the switch's in its ACK).
        if let Some(peer_pt) = peer.codec.dtmf_pt.filter(|&p| is_event && p != pt) {
            packet[1] = (packet[1] & 0x80) | (peer_pt & 0x7f);
        }
        let Ok(len) = peer.sender.forward(packet, now) else {
            counters.bad.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // Never wait on a full send buffer: late media is worthless, dropping is right.
        match peer.rtp.send_to(&packet[..len], dest) {
            Ok(_) => counters.forwarded.fetch_add(1, Ordering::Relaxed),
            Err(_) => counters.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }

    fn forward_rtcp(&mut self, slot: usize, len: usize) {
        let Some(peer_slot) = self.slots[slot].as_ref().and_then(|ep| ep.peer) else {
            return;
        };
        let Some(peer) = self.slots.get(peer_slot).and_then(Option::as_ref) else {
            return;
        };
        if let Some(dest) = peer.rtcp_dest() {
            if peer.rtcp.send_to(&self.buf[..len], dest).is_ok() {
                peer.counters.rtcp_forwarded.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        self.ticks += 1;
        self.counters.ticks.fetch_add(1, Ordering::Relaxed);
        let check_timeouts = self.ticks.is_multiple_of(TICKS_PER_TIMEOUT_CHECK);
        let mut out_buf = std::mem::take(&mut self.out);
        let out = &mut out_buf[..];
        // Pass 1: what each endpoint hears from its phone, and what it plays to it.
        for ep in self.slots.iter_mut().flatten() {
            if ep.codec.has_events() {
                ep.rfc4733.poll(now);
                while let Some(d) = ep.rfc4733.take_digit() {
                    ep.report_dtmf(d);
                }
            }
            if let Some(jitter) = ep.jitter.as_mut() {
                if jitter.pop(&mut ep.frame_in) == PopKind::Silence || !ep.receiving {
                    ep.frame_in = SILENCE;
                }
                if let Some(inband) = ep.inband.as_mut() {
                    if !ep.rfc4733_seen {
                        inband.process(&ep.frame_in);
                    }
                    let mut digits = Vec::new();
                    while let Some(d) = inband.take_digit() {
                        digits.push(d);
                    }
                    for d in digits {
                        ep.report_dtmf(d);
                    }
                }
            }
            let dtmf_busy = ep.dtmf_out.is_some() && ep.send_due_dtmf(now, out);
            if let Some(pb) = ep.playback.as_mut() {
                let mut frame = SILENCE;
                let tick = pb.next_frame(&mut frame);
                if let PlaybackTick::Finished(finished) = tick {
                    ep.playback = None;
                    self.counters.playbacks.fetch_sub(1, Ordering::Relaxed);
                    ep.sender.switch_source();
                    ep.emit(MediaEvent::PlaybackFinished {
                        endpoint: ep.id,
                        finished,
                    });
                } else if !dtmf_busy {
                    ep.send_frame(&frame, now, out);
                }
            }
            if check_timeouts {
                if let Some(t) = ep.timeout {
                    if ep.receiving
                        && !ep.timed_out
                        && now.saturating_duration_since(ep.last_rx) >= t
                    {
                        ep.timed_out = true;
                        ep.emit(MediaEvent::Timeout { endpoint: ep.id });
                    }
                }
            }
        }
        // Pass 2: recordings take both channels' frames of this tick.
        let mut failed = Vec::new();
        for (id, rec) in &mut self.recordings {
            let frame_of = |ch: Option<EndpointId>| -> &Frame {
                ch.and_then(|e| self.index.get(&e))
                    .and_then(|&s| self.slots.get(s))
                    .and_then(Option::as_ref)
                    .map_or(&SILENCE, |ep| &ep.frame_in)
            };
            let left = frame_of(rec.channels[0]);
            let right = frame_of(rec.channels[1]);
            if let Err(e) = rec.writer.write_stereo(left, right) {
                failed.push((*id, e.to_string()));
            }
        }
        for (id, error) in failed {
            tracing::warn!(recording = id, %error, "recording failed");
            self.finish_recording(id, Some(error));
        }
        // Pass 3: conference mixes.
        for room in self.rooms.values_mut() {
            for (&id, &slot) in &room.members {
                if let Some(ep) = self.slots.get(slot).and_then(Option::as_ref) {
                    let _ = room.mixer.set_input(id, &ep.frame_in);
                }
            }
            room.mixer.tick();
            for (&id, &slot) in &room.members {
                let Some(ep) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
                    continue;
                };
                if ep.playback.is_some() || ep.dtmf_out.is_some() {
                    continue;
                }
                if let Some(frame) = room.mixer.output(id) {
                    ep.send_frame(frame, now, out);
                }
            }
        }
        self.out = out_buf;
    }

    fn close_everything(&mut self) {
        let recordings: Vec<_> = self.recordings.keys().copied().collect();
        for id in recordings {
            self.finish_recording(id, None);
        }
        let ids: Vec<_> = self.index.keys().copied().collect();
        for id in ids {
            self.close(id);
        }
        self.rooms.clear();
    }
}
