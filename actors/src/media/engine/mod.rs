//! The media engine: one OS thread that owns every RTP socket of the switch.
//!
//! Each call leg has one [`Endpoint`] (an RTP/RTCP port pair facing one phone or
//! gateway). The engine thread waits on all of them at once (level-triggered epoll, see
//! [`poller`](super::poller)) and every 20 ms runs a tick. A received packet is, by what
//! its endpoint is doing:
//!
//! - forwarded to the connected peer endpoint (a bridged call), rewritten into the
//!   peer's outgoing stream so SSRC, sequence and timestamp stay continuous across
//!   prompts and hold music ([`RtpSender`](super::rtp_out::RtpSender));
//! - fed to a jitter buffer when the switch itself listens: a conference room, a
//!   recording, in-band DTMF detection;
//! - inspected for RFC 4733 telephone-events, each press reported once.
//!
//! On the tick, playbacks (prompts, tones, music on hold) and conference mixes are
//! encoded and sent, recordings get their next 20 ms of both channels, and every second
//! the RTP timeouts are checked.
//!
//! Actors hold [`Endpoint`], [`Room`] and [`Recording`] handles; every method sends a
//! command over a channel and wakes the thread, so no actor message is ever sent per
//! packet. What the engine has to say comes back as [`MediaEvent`]s on the
//! [`EventSink`] given when the endpoint (or recording) was opened. Dropping a handle
//! closes what it controls.

mod worker;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::dtmf::DtmfReceived;
use super::g711::Law;
use super::mixer::MixMode;
use super::playback::{Playback, PlaybackFinished};
use super::poller::Waker;
use super::ports::PortPair;
use super::wav::{WavSummary, WavWriter};

pub type EndpointId = u64;
pub type RoomId = u64;
pub type RecordingId = u64;

/// Where an endpoint's (or recording's) events go: usually an adapter into the owning
/// actor's mailbox.
pub type EventSink = UnboundedSender<MediaEvent>;

/// What the engine tells the owners of endpoints and recordings.
#[derive(Debug)]
pub enum MediaEvent {
    /// A key pressed on the endpoint's phone: once per press, from RFC 4733 or in-band.
    Dtmf {
        endpoint: EndpointId,
        dtmf: DtmfReceived,
    },
    /// A playback on the endpoint ended (ran out, stopped on a key, or stopped).
    PlaybackFinished {
        endpoint: EndpointId,
        finished: PlaybackFinished,
    },
    /// No RTP from the endpoint's phone for its timeout. The endpoint stays open; the
    /// owner decides (usually: hang up).
    Timeout { endpoint: EndpointId },
    /// A socket kept failing; the endpoint no longer receives.
    Failed { endpoint: EndpointId, error: String },
    /// A recording was finished (stopped, or its file failed).
    RecordingFinished {
        recording: RecordingId,
        result: Result<WavSummary, String>,
    },
}

/// Errors of the engine's control API.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("media engine cannot start: {0}")]
    Start(#[from] io::Error),
    #[error("the media engine has stopped")]
    Stopped,
}

/// Counters of one endpoint, updated by the engine thread and read without a message.
#[derive(Debug, Default)]
pub struct EndpointCounters {
    pub received: AtomicU64,
    pub forwarded: AtomicU64,
    /// Packets the switch made itself (prompts, mixes, DTMF).
    pub generated: AtomicU64,
    /// Valid packets not forwarded (not receiving, nowhere to send, send failed).
    pub dropped: AtomicU64,
    /// Failed validation: short, not version 2, truncated.
    pub bad: AtomicU64,
    /// From a source other than the latched one.
    pub rejected: AtomicU64,
    pub rtcp_forwarded: AtomicU64,
}

/// A snapshot of [`EndpointCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EndpointStats {
    pub received: u64,
    pub forwarded: u64,
    pub generated: u64,
    pub dropped: u64,
    pub bad: u64,
    pub rejected: u64,
    pub rtcp_forwarded: u64,
}

impl EndpointCounters {
    pub fn snapshot(&self) -> EndpointStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EndpointStats {
            received: r(&self.received),
            forwarded: r(&self.forwarded),
            generated: r(&self.generated),
            dropped: r(&self.dropped),
            bad: r(&self.bad),
            rejected: r(&self.rejected),
            rtcp_forwarded: r(&self.rtcp_forwarded),
        }
    }
}

/// Engine-wide counters.
#[derive(Debug, Default)]
pub struct EngineCounters {
    pub ticks: AtomicU64,
    /// Ticks that started more than one frame late (the thread was starved).
    pub late_ticks: AtomicU64,
    pub endpoints: AtomicU64,
    pub rooms: AtomicU64,
    pub recordings: AtomicU64,
    pub playbacks: AtomicU64,
}

/// A snapshot of [`EngineCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineStats {
    pub ticks: u64,
    pub late_ticks: u64,
    pub endpoints: u64,
    pub rooms: u64,
    pub recordings: u64,
    pub playbacks: u64,
}

/// Symmetric RTP policy: where to send an endpoint's media.
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

/// How an endpoint's remote side is reached and what it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    /// The audio codec for what the switch sends itself (and decodes).
    pub law: Law,
    /// The telephone-event payload type the phone's SDP gave: what the switch sends its
    /// events under.
    pub dtmf_pt: Option<u8>,
    /// The telephone-event payload type the switch's SDP to the phone gave, when it may
    /// differ: what an RFC 3264 phone sends its events under. The two differ when the
    /// switch made the offer (an offer-less INVITE, the callee's leg, a re-INVITE passed
    /// through) and the answer chose another number; many phones send under their own
    /// number anyway, so events arrive under either.
    pub declared_dtmf_pt: Option<u8>,
}

impl Codec {
    /// Whether payload type `pt` carries this phone's telephone-events.
    pub fn is_event(&self, pt: u8) -> bool {
        self.dtmf_pt == Some(pt) || self.declared_dtmf_pt == Some(pt)
    }

    /// Whether the phone sends telephone-events at all.
    pub fn has_events(&self) -> bool {
        self.dtmf_pt.is_some() || self.declared_dtmf_pt.is_some()
    }
}

impl Default for Codec {
    fn default() -> Self {
        Self {
            law: Law::Ulaw,
            dtmf_pt: None,
            declared_dtmf_pt: None,
        }
    }
}

#[derive(Debug)]
enum Command {
    Open {
        id: EndpointId,
        ports: PortPair,
        latching: Latching,
        events: EventSink,
        counters: Arc<EndpointCounters>,
    },
    Close(EndpointId),
    SetRemote {
        id: EndpointId,
        rtp: Option<SocketAddr>,
    },
    SetRemoteRtcp {
        id: EndpointId,
        rtcp: Option<SocketAddr>,
    },
    SetCodec {
        id: EndpointId,
        codec: Codec,
    },
    Connect(EndpointId, EndpointId),
    Disconnect(EndpointId),
    SetReceiving {
        id: EndpointId,
        receiving: bool,
    },
    ArmTimeout {
        id: EndpointId,
        timeout: Option<Duration>,
    },
    Play {
        id: EndpointId,
        playback: Box<Playback>,
    },
    StopPlayback(EndpointId),
    SetInbandDtmf {
        id: EndpointId,
        on: bool,
    },
    SendDtmf {
        id: EndpointId,
        digits: String,
    },
    CreateRoom(RoomId),
    CloseRoom(RoomId),
    Join {
        id: EndpointId,
        room: RoomId,
        mode: MixMode,
    },
    Leave(EndpointId),
    SetMixMode {
        id: EndpointId,
        mode: MixMode,
    },
    StartRecording {
        id: RecordingId,
        writer: Box<WavWriter>,
        left: Option<EndpointId>,
        right: Option<EndpointId>,
        events: EventSink,
    },
    SetRecordingChannel {
        id: RecordingId,
        channel: usize,
        endpoint: Option<EndpointId>,
    },
    StopRecording(RecordingId),
    Shutdown,
}

#[derive(Debug)]
struct Shared {
    tx: Mutex<mpsc::Sender<Command>>,
    waker: Arc<Waker>,
    next_id: AtomicU64,
    counters: Arc<EngineCounters>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The handle of the engine thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MediaEngine {
    shared: Arc<Shared>,
}

impl MediaEngine {
    /// Starts the engine thread.
    pub fn start() -> Result<Self, EngineError> {
        let (tx, rx) = mpsc::channel();
        let waker = Arc::new(Waker::new()?);
        let counters = Arc::new(EngineCounters::default());
        let mut worker = worker::Worker::new(rx, Arc::clone(&waker), Arc::clone(&counters))?;
        let thread = std::thread::Builder::new()
            .name("media".into())
            .spawn(move || worker.run())?;
        Ok(Self {
            shared: Arc::new(Shared {
                tx: Mutex::new(tx),
                waker,
                next_id: AtomicU64::new(1),
                counters,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    fn next_id(&self) -> u64 {
        self.shared.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn send(&self, cmd: Command) -> Result<(), EngineError> {
        let sent = match self.shared.tx.lock() {
            Ok(tx) => tx.send(cmd).is_ok(),
            Err(_) => false,
        };
        if !sent {
            return Err(EngineError::Stopped);
        }
        self.shared.waker.wake();
        Ok(())
    }

    /// Takes over a port pair as a new endpoint. It receives at once (latching onto the
    /// first source, by `latching`) but sends nothing until it has a remote address and
    /// something to send.
    pub fn open(
        &self,
        ports: PortPair,
        latching: Latching,
        events: EventSink,
    ) -> Result<Endpoint, EngineError> {
        let id = self.next_id();
        let local = ports.rtp_addr();
        let counters = Arc::new(EndpointCounters::default());
        self.send(Command::Open {
            id,
            ports,
            latching,
            events,
            counters: Arc::clone(&counters),
        })?;
        Ok(Endpoint {
            id,
            local,
            counters,
            engine: self.clone(),
        })
    }

    /// A new, empty conference room.
    pub fn create_room(&self) -> Result<Room, EngineError> {
        let id = self.next_id();
        self.send(Command::CreateRoom(id))?;
        Ok(Room {
            id,
            engine: self.clone(),
        })
    }

    /// Starts recording what `left` and `right` send into `writer` (a stereo WAV), one
    /// 20 ms frame per tick; a channel without an endpoint records silence, so the file
    /// keeps wall-clock time.
    pub fn record(
        &self,
        writer: WavWriter,
        left: Option<&Endpoint>,
        right: Option<&Endpoint>,
        events: EventSink,
    ) -> Result<Recording, EngineError> {
        self.record_endpoints(writer, left.map(|e| e.id), right.map(|e| e.id), events)
    }

    /// Plays into an endpoint known by id (for actors that do not own its handle, such
    /// as a conference room playing a prompt to a member).
    pub fn play_to(&self, endpoint: EndpointId, playback: Playback) -> Result<(), EngineError> {
        self.send(Command::Play {
            id: endpoint,
            playback: Box::new(playback),
        })
    }

    pub fn stop_playback_of(&self, endpoint: EndpointId) -> Result<(), EngineError> {
        self.send(Command::StopPlayback(endpoint))
    }

    /// Puts an endpoint known by id into a room (leaving any connection or other room).
    pub fn join_room(
        &self,
        endpoint: EndpointId,
        room: RoomId,
        mode: MixMode,
    ) -> Result<(), EngineError> {
        self.send(Command::Join {
            id: endpoint,
            room,
            mode,
        })
    }

    pub fn leave_room(&self, endpoint: EndpointId) -> Result<(), EngineError> {
        self.send(Command::Leave(endpoint))
    }

    pub fn set_mix_mode(&self, endpoint: EndpointId, mode: MixMode) -> Result<(), EngineError> {
        self.send(Command::SetMixMode { id: endpoint, mode })
    }

    /// [`record`](Self::record) for endpoints known by id (an IVR recording a voicemail
    /// on its call's endpoint).
    pub fn record_endpoints(
        &self,
        writer: WavWriter,
        left: Option<EndpointId>,
        right: Option<EndpointId>,
        events: EventSink,
    ) -> Result<Recording, EngineError> {
        let id = self.next_id();
        self.send(Command::StartRecording {
            id,
            writer: Box::new(writer),
            left,
            right,
            events,
        })?;
        Ok(Recording {
            id,
            engine: self.clone(),
            stopped: false,
        })
    }

    /// Finishes recording `id` (its `RecordingFinished` follows).
    pub fn stop_recording(&self, id: RecordingId) -> Result<(), EngineError> {
        self.send(Command::StopRecording(id))
    }

    pub fn stats(&self) -> EngineStats {
        let c = &self.shared.counters;
        let r = |v: &AtomicU64| v.load(Ordering::Relaxed);
        EngineStats {
            ticks: r(&c.ticks),
            late_ticks: r(&c.late_ticks),
            endpoints: r(&c.endpoints),
            rooms: r(&c.rooms),
            recordings: r(&c.recordings),
            playbacks: r(&c.playbacks),
        }
    }

    /// Finishes every recording, closes every socket and ends the thread.
    pub fn shutdown(&self) {
        let _ = self.send(Command::Shutdown);
        let handle = self.shared.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// One RTP/RTCP port pair of the switch facing one remote party. Dropping it closes the
/// sockets (and leaves any room, connection or recording channel).
#[derive(Debug)]
pub struct Endpoint {
    id: EndpointId,
    local: SocketAddr,
    counters: Arc<EndpointCounters>,
    engine: MediaEngine,
}

impl Endpoint {
    pub fn id(&self) -> EndpointId {
        self.id
    }

    /// The switch's RTP address for this endpoint (for the SDP sent to its phone).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn stats(&self) -> EndpointStats {
        self.counters.snapshot()
    }

    /// Where the phone receives RTP (its SDP); RTCP goes to the port above unless
    /// [`set_remote_rtcp`](Self::set_remote_rtcp) says otherwise. `None` (hold with
    /// `0.0.0.0`) stops sending. Latching starts over.
    pub fn set_remote(&self, rtp: Option<SocketAddr>) -> Result<(), EngineError> {
        self.engine.send(Command::SetRemote { id: self.id, rtp })
    }

    pub fn set_remote_rtcp(&self, rtcp: Option<SocketAddr>) -> Result<(), EngineError> {
        self.engine
            .send(Command::SetRemoteRtcp { id: self.id, rtcp })
    }

    pub fn set_codec(&self, codec: Codec) -> Result<(), EngineError> {
        self.engine.send(Command::SetCodec { id: self.id, codec })
    }

    /// Bridges two endpoints: what each receives goes out of the other.
    pub fn connect(&self, other: &Endpoint) -> Result<(), EngineError> {
        self.engine.send(Command::Connect(self.id, other.id))
    }

    /// Undoes [`connect`](Self::connect) on both sides.
    pub fn disconnect(&self) -> Result<(), EngineError> {
        self.engine.send(Command::Disconnect(self.id))
    }

    /// Whether what the phone sends is used (forwarded, mixed). `false` for a phone on
    /// hold: its packets are dropped and its RTP timeout is suspended.
    pub fn set_receiving(&self, receiving: bool) -> Result<(), EngineError> {
        self.engine.send(Command::SetReceiving {
            id: self.id,
            receiving,
        })
    }

    /// Reports [`MediaEvent::Timeout`] once the phone has sent no RTP for `timeout`
    /// (counted from now); `None` disarms it.
    pub fn arm_timeout(&self, timeout: Option<Duration>) -> Result<(), EngineError> {
        self.engine.send(Command::ArmTimeout {
            id: self.id,
            timeout,
        })
    }

    /// Plays into the phone, replacing what it would otherwise hear (its peer, its
    /// room) until the playback ends; a playback already running is stopped first.
    pub fn play(&self, playback: Playback) -> Result<(), EngineError> {
        self.engine.send(Command::Play {
            id: self.id,
            playback: Box::new(playback),
        })
    }

    pub fn stop_playback(&self) -> Result<(), EngineError> {
        self.engine.send(Command::StopPlayback(self.id))
    }

    /// Listens for DTMF tones in the audio (gateways that do not send RFC 4733).
    /// Suppressed once the phone has sent a telephone-event, so a press is reported once.
    pub fn set_inband_dtmf(&self, on: bool) -> Result<(), EngineError> {
        self.engine.send(Command::SetInbandDtmf { id: self.id, on })
    }

    /// Sends keys to the phone as RFC 4733 events (needs a telephone-event payload type).
    pub fn send_dtmf(&self, digits: &str) -> Result<(), EngineError> {
        self.engine.send(Command::SendDtmf {
            id: self.id,
            digits: digits.to_owned(),
        })
    }

    /// Joins a room (leaving any connection or other room).
    pub fn join(&self, room: &Room, mode: MixMode) -> Result<(), EngineError> {
        self.engine.send(Command::Join {
            id: self.id,
            room: room.id,
            mode,
        })
    }

    pub fn leave_room(&self) -> Result<(), EngineError> {
        self.engine.send(Command::Leave(self.id))
    }

    pub fn set_mix_mode(&self, mode: MixMode) -> Result<(), EngineError> {
        self.engine.send(Command::SetMixMode { id: self.id, mode })
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.engine.send(Command::Close(self.id));
    }
}

/// A conference room in the engine. Dropping it closes the room (its members stay open
/// and go quiet).
#[derive(Debug)]
pub struct Room {
    id: RoomId,
    engine: MediaEngine,
}

impl Room {
    pub fn id(&self) -> RoomId {
        self.id
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        let _ = self.engine.send(Command::CloseRoom(self.id));
    }
}

/// A running recording. Dropping it (or [`stop`](Self::stop)) finishes the file; the
/// result arrives as [`MediaEvent::RecordingFinished`].
#[derive(Debug)]
pub struct Recording {
    id: RecordingId,
    engine: MediaEngine,
    stopped: bool,
}

impl Recording {
    pub fn id(&self) -> RecordingId {
        self.id
    }

    /// Records `endpoint` on channel 0 (left) or 1 (right) from now on: the call went on
    /// with another leg (transfer, pick-up).
    pub fn set_channel(
        &self,
        channel: usize,
        endpoint: Option<&Endpoint>,
    ) -> Result<(), EngineError> {
        self.engine.send(Command::SetRecordingChannel {
            id: self.id,
            channel,
            endpoint: endpoint.map(|e| e.id),
        })
    }

    pub fn stop(mut self) {
        self.stopped = true;
        let _ = self.engine.send(Command::StopRecording(self.id));
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.engine.send(Command::StopRecording(self.id));
        }
    }
}
