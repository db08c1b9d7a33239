//! DTMF in its three shapes: RFC 4733 telephone-events, in-band tones, SIP INFO bodies.
//!
//! Whatever the shape, one key press becomes exactly one [`DtmfReceived`]:
//!
//! - [`Rfc4733Receiver`] follows the event state machine of RFC 4733 §2.5.2: an event is
//!   identified by its RTP timestamp; updates extend it; the end bit finishes it and is
//!   reported once, however many of the three redundant end packets arrive; a new
//!   timestamp is a new press; an event whose end never arrives is reported when the
//!   next one starts or after [`RFC4733_END_TIMEOUT`].
//! - [`Rfc4733Sender`] plans the packets of one digit: start with the marker, an update
//!   every 50 ms, three end packets (RFC 4733 §2.5.1).
//! - [`InbandDetector`] finds DTMF in 8 kHz PCM with eight Goertzel filters over 102-sample
//!   blocks (12.75 ms), for gateways that send the tones as audio.
//! - [`parse_sip_info`] reads `application/dtmf-relay` and `application/dtmf` bodies.
//!
//! Digits are reported when the press ends, with its duration, which is what IVR digit
//! collection wants and what makes "exactly once" easy to hold to.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::frame::{ms_to_samples, samples_to_ms, FRAME_TIMESTAMP_STEP, SAMPLE_RATE_HZ};
use super::rtp_out::{serial_newer_u32, RtpHeader};

/// RFC 4733 §3.2: events 0–15 are the DTMF keys, in this order.
const DIGITS: &[u8; 16] = b"0123456789*#ABCD";
/// Size of one telephone-event block (RFC 4733 §2.3).
pub const EVENT_PAYLOAD_LEN: usize = 4;
const END_BIT: u8 = 0x80;
const VOLUME_MASK: u8 = 0x3F;
/// An event not updated for this long has ended although its end packets were lost.
/// Senders update every 50 ms, so this is several lost packets in a row.
pub const RFC4733_END_TIMEOUT: Duration = Duration::from_millis(400);
/// RFC 4733 §2.5.1.2 recommends an update every 50 ms.
pub const UPDATE_INTERVAL_MS: u32 = 50;
/// The end packet is sent three times (RFC 4733 §2.5.1.4), one frame apart so that a
/// short burst of loss does not take all three.
pub const END_PACKET_REPEATS: usize = 3;
const END_REPEAT_SPACING_MS: u32 = 20;
/// Digit length when sending: long enough for every receiver (ITU-T Q.24 needs 40 ms).
pub const DEFAULT_DIGIT_MS: u32 = 100;
/// Shortest digit sent: Q.24 receivers may reject anything shorter than 40 ms.
pub const MIN_DIGIT_MS: u32 = 40;
/// Pause between digits of a string being sent (Q.24: at least 40 ms).
pub const DEFAULT_INTER_DIGIT_MS: u32 = 100;
/// Volume field of sent events: -10 dBm0, a typical DTMF level.
pub const DEFAULT_VOLUME: u8 = 10;
/// Duration assumed for a SIP INFO digit that does not state one (Cisco's default).
pub const DEFAULT_INFO_DURATION_MS: u32 = 250;
/// Digits queued before the owner reads them; there are at most two per packet or block.
const QUEUE_CAPACITY: usize = 4;

/// What is wrong with a DTMF input or request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    #[error("telephone-event payload of {0} bytes, at least 4 needed")]
    ShortPayload(usize),
    #[error("{0:?} is not a DTMF key (0-9, *, #, A-D)")]
    NotADigit(String),
    #[error("digit duration {0} ms is longer than one RFC 4733 event can carry")]
    DurationTooLong(u32),
    #[error(
        "unsupported INFO content type {0:?} (application/dtmf-relay or application/dtmf expected)"
    )]
    UnsupportedContentType(String),
    #[error("INFO body is not UTF-8 text")]
    BodyNotText,
    #[error("INFO body has no Signal line")]
    MissingSignal,
    #[error("INFO Duration {0:?} is not a number of milliseconds")]
    BadDuration(String),
}

/// Where a digit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfSource {
    Rfc4733,
    InBand,
    SipInfo,
}

/// One key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfReceived {
    /// `0-9`, `*`, `#` or `A-D`.
    pub digit: char,
    pub duration_ms: u32,
    pub source: DtmfSource,
}

/// The key of an RFC 4733 event code, for codes 0–15.
pub fn event_to_digit(event: u8) -> Option<char> {
    DIGITS.get(usize::from(event)).map(|&d| char::from(d))
}

/// The RFC 4733 event code of a key (`a-d` accepted for `A-D`).
pub fn digit_to_event(digit: char) -> Option<u8> {
    let upper = digit.to_ascii_uppercase();
    DIGITS
        .iter()
        .position(|&d| char::from(d) == upper)
        .map(|p| p as u8)
}

/// The fields of one telephone-event block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    /// In RTP timestamp units (samples).
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(DtmfError::ShortPayload(payload.len()));
        };
        Ok(Self {
            event,
            end: flags & END_BIT != 0,
            volume: flags & VOLUME_MASK,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    pub fn to_bytes(self) -> [u8; EVENT_PAYLOAD_LEN] {
        let [d0, d1] = self.duration.to_be_bytes();
        let end = if self.end { END_BIT } else { 0 };
        [self.event, end | (self.volume & VOLUME_MASK), d0, d1]
    }
}

/// Counters of an RFC 4733 receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rfc4733Stats {
    pub packets: u64,
    pub digits: u64,
    /// Repeated end packets and updates of an event already reported.
    pub duplicates: u64,
    /// Packets of an event older than the current one (reordered).
    pub stale: u64,
    /// Events reported without an end packet (next event or timeout).
    pub missed_ends: u64,
    /// Events 16 and above (flash, tones): not digits.
    pub not_dtmf: u64,
    pub malformed: u64,
}

#[derive(Debug, Clone, Copy)]
struct CurrentEvent {
    timestamp: u32,
    event: u8,
    /// Duration of earlier segments of a long event (RFC 4733 §2.5.1.3).
    earlier_segments: u32,
    duration: u32,
    ended: bool,
    last_packet: Instant,
}

impl CurrentEvent {
    fn total(&self) -> u32 {
        self.earlier_segments + self.duration
    }
}

/// Receives one stream's telephone-events and reports each press once.
#[derive(Debug, Clone)]
pub struct Rfc4733Receiver {
    current: Option<CurrentEvent>,
    digits: VecDeque<DtmfReceived>,
    stats: Rfc4733Stats,
}

impl Default for Rfc4733Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Rfc4733Receiver {
    pub fn new() -> Self {
        Self {
            current: None,
            digits: VecDeque::with_capacity(QUEUE_CAPACITY),
            stats: Rfc4733Stats::default(),
        }
    }

    pub fn stats(&self) -> Rfc4733Stats {
        self.stats
    }

    /// Takes one telephone-event packet (the caller has matched the payload type).
    /// Finished digits are then read with [`Rfc4733Receiver::take_digit`].
    pub fn on_packet(
        &mut self,
        header: &RtpHeader,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), DtmfError> {
        self.stats.packets += 1;
        // Only the first block is read: several events in one packet (§2.5.1.5) are
        // for fax and state events, not for keys.
        let te = match TelephoneEvent::parse(payload) {
            Ok(te) => te,
            Err(e) => {
                self.stats.malformed += 1;
                return Err(e);
            }
        };
        if event_to_digit(te.event).is_none() {
            self.stats.not_dtmf += 1;
            return Ok(());
        }
        let duration = u32::from(te.duration);
        let ts = header.timestamp;
        match self.current {
            Some(ref mut cur) if cur.timestamp == ts => {
                if cur.ended {
                    self.stats.duplicates += 1;
                    return Ok(());
                }
                cur.duration = cur.duration.max(duration);
                cur.last_packet = now;
                if te.end {
                    self.finish(false);
                }
            }
            Some(cur) if serial_newer_u32(cur.timestamp, ts) => {
                self.stats.stale += 1;
            }
            Some(ref mut cur)
                if !cur.ended
                    && cur.event == te.event
                    && !header.marker
                    && ts.wrapping_sub(cur.timestamp) <= cur.duration + FRAME_TIMESTAMP_STEP =>
            {
                // The next segment of an event longer than 0xFFFF samples (§2.5.1.3):
                // same key, new timestamp where the previous segment ended.
                cur.earlier_segments += ts.wrapping_sub(cur.timestamp);
                cur.timestamp = ts;
                cur.duration = duration;
                cur.last_packet = now;
                if te.end {
                    self.finish(false);
                }
            }
            _ => {
                if self.current.is_some_and(|cur| !cur.ended) {
                    // A new press while the previous one never ended: that one is over.
                    self.finish(true);
                }
                self.current = Some(CurrentEvent {
                    timestamp: ts,
                    event: te.event,
                    earlier_segments: 0,
                    duration,
                    ended: false,
                    last_packet: now,
                });
                if te.end {
                    // Start and updates lost: the end alone still is the press.
                    self.finish(false);
                }
            }
        }
        Ok(())
    }

    /// Reports an event whose end packets were all lost, once it has been silent for
    /// [`RFC4733_END_TIMEOUT`]. Call it every tick or so.
    pub fn poll(&mut self, now: Instant) {
        if let Some(cur) = self.current {
            if !cur.ended && now.saturating_duration_since(cur.last_packet) >= RFC4733_END_TIMEOUT {
                self.finish(true);
            }
        }
    }

    /// The next finished press, oldest first.
    pub fn take_digit(&mut self) -> Option<DtmfReceived> {
        self.digits.pop_front()
    }

    fn finish(&mut self, missed_end: bool) {
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        cur.ended = true;
        let Some(digit) = event_to_digit(cur.event) else {
            return;
        };
        if missed_end {
            self.stats.missed_ends += 1;
        }
        self.stats.digits += 1;
        self.digits.push_back(DtmfReceived {
            digit,
            duration_ms: samples_to_ms(cur.total()),
            source: DtmfSource::Rfc4733,
        });
    }
}

/// One packet of an outgoing digit, and when to send it relative to the digit's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedEventPacket {
    pub send_at: Duration,
    pub marker: bool,
    /// Duration so far in samples (also in the payload); see
    /// [`EventPacket::duration`](super::rtp_out::EventPacket).
    pub duration: u32,
    pub payload: [u8; EVENT_PAYLOAD_LEN],
}

/// The packets of one digit sent as RFC 4733 events, as an iterator. All of them carry
/// the timestamp of the digit's start (from
/// [`RtpSender::event_timestamp`](super::rtp_out::RtpSender::event_timestamp)).
#[derive(Debug, Clone)]
pub struct Rfc4733Sender {
    event: u8,
    volume: u8,
    duration: u32,
    next_update: u32,
    ends_sent: usize,
}

impl Rfc4733Sender {
    /// A digit lasting `duration_ms` (raised to [`MIN_DIGIT_MS`]).
    pub fn new(digit: char, duration_ms: u32) -> Result<Self, DtmfError> {
        let event = digit_to_event(digit).ok_or_else(|| DtmfError::NotADigit(digit.into()))?;
        let duration = ms_to_samples(duration_ms.max(MIN_DIGIT_MS));
        if duration > u32::from(u16::MAX) {
            return Err(DtmfError::DurationTooLong(duration_ms));
        }
        Ok(Self {
            event,
            volume: DEFAULT_VOLUME,
            duration,
            next_update: 0,
            ends_sent: 0,
        })
    }

    /// Total time from the first to the last packet.
    pub fn span(&self) -> Duration {
        let last_end =
            self.duration + ms_to_samples(END_REPEAT_SPACING_MS) * (END_PACKET_REPEATS as u32 - 1);
        samples_duration(last_end)
    }

    fn packet(&self, at: u32, duration: u32, end: bool, marker: bool) -> PlannedEventPacket {
        let te = TelephoneEvent {
            event: self.event,
            end,
            volume: self.volume,
            // new() checked that the total fits 16 bits.
            duration: duration.min(u32::from(u16::MAX)) as u16,
        };
        PlannedEventPacket {
            send_at: samples_duration(at),
            marker,
            duration,
            payload: te.to_bytes(),
        }
    }
}

fn samples_duration(samples: u32) -> Duration {
    Duration::from_micros(u64::from(samples) * 1_000_000 / u64::from(SAMPLE_RATE_HZ))
}

impl Iterator for Rfc4733Sender {
    type Item = PlannedEventPacket;

    fn next(&mut self) -> Option<PlannedEventPacket> {
        let interval = ms_to_samples(UPDATE_INTERVAL_MS);
        if self.next_update < self.duration {
            let at = self.next_update;
            self.next_update += interval;
            // The start packet claims one frame rather than zero: some receivers treat
            // a zero-length event as nothing.
            let duration = at.max(FRAME_TIMESTAMP_STEP).min(self.duration);
            return Some(self.packet(at, duration, false, at == 0));
        }
        if self.ends_sent < END_PACKET_REPEATS {
            let at = self.duration + ms_to_samples(END_REPEAT_SPACING_MS) * self.ends_sent as u32;
            self.ends_sent += 1;
            return Some(self.packet(at, self.duration, true, false));
        }
        None
    }
}

// ---------------------------------------------------------------------------------------
// In-band detection

/// Low-group (row) frequencies of the keypad.
pub const ROW_HZ: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// High-group (column) frequencies of the keypad.
pub const COL_HZ: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Goertzel block: 102 samples (12.75 ms) separates the closest keypad tones (70 Hz
/// apart) well enough and gives two whole blocks inside any 40 ms tone.
pub const DETECT_BLOCK: usize = 102;
/// Consecutive blocks a key must be seen in (≥ 25.5 ms of tone): Q.24 wants tones of
/// 40 ms accepted and tones under ~23 ms rejected.
const MIN_ON_BLOCKS: u32 = 2;
/// Consecutive blocks without the key that end a press: a drop-out of one block
/// (Q.24: interruptions up to 10 ms) does not split a press in two.
const MIN_OFF_BLOCKS: u32 = 2;
/// Weakest tone accepted, as a sine amplitude: about -30 dBm0 (0 dBm0 ≈ 22 786).
const MIN_TONE_AMPLITUDE: f32 = 720.0;
/// Column (high group) may be this much stronger than the row ("normal twist").
const MAX_NORMAL_TWIST_DB: f32 = 8.0;
/// Row (low group) may be this much stronger than the column ("reverse twist").
const MAX_REVERSE_TWIST_DB: f32 = 6.0;
/// The strongest row (column) must beat the others of its group by this much: rejects
/// chords and the harmonic-rich spectrum of voice.
const MIN_RELATIVE_PEAK_DB: f32 = 8.0;
/// The two tones must carry this share of the block's energy: rejects voice and music,
/// which have energy everywhere else too.
const MIN_TONE_ENERGY_SHARE: f32 = 0.65;

fn db_to_power_ratio(db: f32) -> f32 {
    10f32.powf(db / 10.0)
}

/// Goertzel filter coefficient `2 cos(2π f / fs)`.
fn goertzel_coeff(freq_hz: f32) -> f32 {
    2.0 * (2.0 * std::f32::consts::PI * freq_hz / SAMPLE_RATE_HZ as f32).cos()
}

/// Squared magnitude of the DFT of `samples` at `freq_hz` (8 kHz sampling).
pub fn goertzel_power(samples: &[i16], freq_hz: f32) -> f32 {
    let coeff = goertzel_coeff(freq_hz);
    let (mut s1, mut s2) = (0f32, 0f32);
    for &x in samples {
        let s0 = f32::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// Amplitude of the sinusoid at `freq_hz` in `samples` (8 kHz), as a sample value:
/// a full-scale sine at exactly that frequency gives about 32 767.
pub fn tone_amplitude(samples: &[i16], freq_hz: f32) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    2.0 * goertzel_power(samples, freq_hz).sqrt() / samples.len() as f32
}

/// Counters of the in-band detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InbandStats {
    pub blocks: u64,
    /// Blocks that looked like a key.
    pub hits: u64,
    pub digits: u64,
}

/// In-band DTMF detector over 8 kHz PCM, one per listened stream.
#[derive(Debug, Clone)]
pub struct InbandDetector {
    coeffs: [f32; 8],
    s1: [f32; 8],
    s2: [f32; 8],
    energy: f32,
    filled: usize,
    candidate: Option<char>,
    candidate_blocks: u32,
    active: Option<char>,
    active_blocks: u32,
    off_blocks: u32,
    digits: VecDeque<DtmfReceived>,
    stats: InbandStats,
}

impl Default for InbandDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl InbandDetector {
    pub fn new() -> Self {
        let mut coeffs = [0f32; 8];
        for (c, &f) in coeffs.iter_mut().zip(ROW_HZ.iter().chain(&COL_HZ)) {
            *c = goertzel_coeff(f);
        }
        Self {
            coeffs,
            s1: [0.0; 8],
            s2: [0.0; 8],
            energy: 0.0,
            filled: 0,
            candidate: None,
            candidate_blocks: 0,
            active: None,
            active_blocks: 0,
            off_blocks: 0,
            digits: VecDeque::with_capacity(QUEUE_CAPACITY),
            stats: InbandStats::default(),
        }
    }

    pub fn stats(&self) -> InbandStats {
        self.stats
    }

    /// Feeds audio (any length; blocks continue across calls).
    pub fn process(&mut self, samples: &[i16]) {
        for &x in samples {
            let x = f32::from(x);
            self.energy += x * x;
            for k in 0..8 {
                let s0 = x + self.coeffs[k] * self.s1[k] - self.s2[k];
                self.s2[k] = self.s1[k];
                self.s1[k] = s0;
            }
            self.filled += 1;
            if self.filled == DETECT_BLOCK {
                let hit = self.evaluate_block();
                self.on_block(hit);
                self.s1 = [0.0; 8];
                self.s2 = [0.0; 8];
                self.energy = 0.0;
                self.filled = 0;
            }
        }
    }

    /// Reports a key still held when the stream ends.
    pub fn finish(&mut self) {
        if self.active.is_some() {
            self.release();
        }
    }

    /// The next finished press, oldest first.
    pub fn take_digit(&mut self) -> Option<DtmfReceived> {
        self.digits.pop_front()
    }

    fn evaluate_block(&self) -> Option<char> {
        let mut power = [0f32; 8];
        for (k, p) in power.iter_mut().enumerate() {
            let (s1, s2) = (self.s1[k], self.s2[k]);
            *p = s1 * s1 + s2 * s2 - self.coeffs[k] * s1 * s2;
        }
        let (rows, cols) = power.split_at(4);
        let (row, row_power) = strongest(rows);
        let (col, col_power) = strongest(cols);
        let n = DETECT_BLOCK as f32;
        // Goertzel power of a sine of amplitude A over n samples is (A n / 2)².
        let min_power = (MIN_TONE_AMPLITUDE * n / 2.0).powi(2);
        if row_power < min_power || col_power < min_power {
            return None;
        }
        if col_power > row_power * db_to_power_ratio(MAX_NORMAL_TWIST_DB)
            || row_power > col_power * db_to_power_ratio(MAX_REVERSE_TWIST_DB)
        {
            return None;
        }
        let peak = db_to_power_ratio(MIN_RELATIVE_PEAK_DB);
        let dominant = |group: &[f32], best: usize, best_power: f32| {
            group
                .iter()
                .enumerate()
                .all(|(i, &p)| i == best || p * peak <= best_power)
        };
        if !dominant(rows, row, row_power) || !dominant(cols, col, col_power) {
            return None;
        }
        // A sine's block energy Σx² = n A²/2 = 2 P / n: compare like with like.
        let tone_energy = 2.0 * (row_power + col_power) / n;
        if tone_energy < MIN_TONE_ENERGY_SHARE * self.energy {
            return None;
        }
        Some(KEYPAD[row][col])
    }

    fn on_block(&mut self, hit: Option<char>) {
        self.stats.blocks += 1;
        if hit.is_some() {
            self.stats.hits += 1;
        }
        if hit == self.candidate {
            self.candidate_blocks += 1;
        } else {
            self.candidate = hit;
            self.candidate_blocks = 1;
        }
        if let Some(active) = self.active {
            if hit == Some(active) {
                self.active_blocks += 1;
                self.off_blocks = 0;
                return;
            }
            self.off_blocks += 1;
            if self.off_blocks < MIN_OFF_BLOCKS {
                return;
            }
            self.release();
        }
        if let Some(digit) = self.candidate {
            if self.candidate_blocks >= MIN_ON_BLOCKS {
                self.active = Some(digit);
                self.active_blocks = self.candidate_blocks;
                self.off_blocks = 0;
            }
        }
    }

    fn release(&mut self) {
        if let Some(digit) = self.active.take() {
            let samples = self.active_blocks * DETECT_BLOCK as u32;
            self.stats.digits += 1;
            self.digits.push_back(DtmfReceived {
                digit,
                duration_ms: samples_to_ms(samples),
                source: DtmfSource::InBand,
            });
        }
        self.active_blocks = 0;
        self.off_blocks = 0;
    }
}

fn strongest(group: &[f32]) -> (usize, f32) {
    group.iter().copied().enumerate().fold(
        (0, f32::MIN),
        |best, (i, p)| if p > best.1 { (i, p) } else { best },
    )
}

// ---------------------------------------------------------------------------------------
// SIP INFO

const CONTENT_TYPE_DTMF_RELAY: &str = "application/dtmf-relay";
const CONTENT_TYPE_DTMF: &str = "application/dtmf";

/// Reads the digit of a SIP INFO request from its `Content-Type` and body:
/// `application/dtmf-relay` (`Signal=5\r\nDuration=160`, Duration in ms) or
/// `application/dtmf` (the key alone). Signals may be the key or its event code
/// (`10` for `*`, `11` for `#`), as some gateways send.
pub fn parse_sip_info(content_type: &str, body: &[u8]) -> Result<DtmfReceived, DtmfError> {
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let text = std::str::from_utf8(body).map_err(|_| DtmfError::BodyNotText)?;
    let (signal, duration_ms) = match media_type.as_str() {
        CONTENT_TYPE_DTMF_RELAY => parse_relay_body(text)?,
        CONTENT_TYPE_DTMF => (text.trim(), DEFAULT_INFO_DURATION_MS),
        _ => return Err(DtmfError::UnsupportedContentType(content_type.to_owned())),
    };
    Ok(DtmfReceived {
        digit: parse_signal(signal)?,
        duration_ms,
        source: DtmfSource::SipInfo,
    })
}

fn parse_relay_body(text: &str) -> Result<(&str, u32), DtmfError> {
    let mut signal = None;
    let mut duration_ms = DEFAULT_INFO_DURATION_MS;
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "signal" => signal = Some(value),
            "duration" => {
                duration_ms = value
                    .parse()
                    .map_err(|_| DtmfError::BadDuration(value.to_owned()))?;
            }
            _ => {}
        }
    }
    Ok((signal.ok_or(DtmfError::MissingSignal)?, duration_ms))
}

fn parse_signal(signal: &str) -> Result<char, DtmfError> {
    let mut chars = signal.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        if let Some(event) = digit_to_event(c) {
            return event_to_digit(event).ok_or_else(|| DtmfError::NotADigit(signal.into()));
        }
    }
    signal
        .parse::<u8>()
        .ok()
        .and_then(event_to_digit)
        .ok_or_else(|| DtmfError::NotADigit(signal.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(ts: u32, seq: u16, marker: bool) -> RtpHeader {
        RtpHeader {
            marker,
            payload_type: 101,
            sequence: seq,
            timestamp: ts,
            ssrc: 1,
            csrc_count: 0,
            has_extension: false,
            has_padding: false,
        }
    }

    fn te(event: u8, end: bool, duration: u16) -> [u8; 4] {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    fn drain(rx: &mut Rfc4733Receiver) -> Vec<(char, u32)> {
        std::iter::from_fn(|| rx.take_digit())
            .map(|d| (d.digit, d.duration_ms))
            .collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn digit_codes() {
        assert_eq!(event_to_digit(0), Some('0'));
        assert_eq!(event_to_digit(10), Some('*'));
        assert_eq!(event_to_digit(11), Some('#'));
        assert_eq!(event_to_digit(15), Some('D'));
        assert_eq!(event_to_digit(16), None);
        assert_eq!(digit_to_event('#'), Some(11));
        assert_eq!(digit_to_event('b'), Some(13));
        assert_eq!(digit_to_event('x'), None);
    }

    #[test]
    fn telephone_event_round_trip_and_short_payload() {
        let bytes = te(5, true, 800);
        assert_eq!(bytes, [5, 0x8A, 0x03, 0x20]);
        let parsed = TelephoneEvent::parse(&bytes).expect("4 bytes");
        assert_eq!(
            (parsed.event, parsed.end, parsed.volume, parsed.duration),
            (5, true, 10, 800)
        );
        assert_eq!(
            TelephoneEvent::parse(&[1, 2]),
            Err(DtmfError::ShortPayload(2))
        );
    }

    #[test]
    fn one_press_with_three_end_packets_is_one_digit() {
        let t = Instant::now();
        let mut rx = Rfc4733Receiver::new();
        let ts = 16_000;
        rx.on_packet(&header(ts, 1, true), &te(5, false, 160), t)
            .expect("valid");
        rx.on_packet(&header(ts, 2, false), &te(5, false, 400), t + ms(50))
            .expect("valid");
        assert!(
            rx.take_digit().is_none(),
            "reported at the end of the press"
        );
        for (i, seq) in (3..6).enumerate() {
            let now = t + ms(100 + 20 * i as u64);
            rx.on_packet(&header(ts, seq, false), &te(5, true, 800), now)
                .expect("valid");
        }
        let digit = rx.take_digit().expect("one digit");
        assert_eq!(digit.digit, '5');
        assert_eq!(digit.duration_ms, 100);
        assert_eq!(digit.source, DtmfSource::Rfc4733);
        assert!(rx.take_digit().is_none());
        assert_eq!(rx.stats().duplicates, 2);
        // A late retransmission long after, and a timeout poll: still nothing new.
        rx.on_packet(&header(ts, 4, false), &te(5, true, 800), t + ms(900))
            .expect("valid");
        rx.poll(t + ms(2_000));
        assert!(rx.take_digit().is_none());
    }

    #[test]
    fn duplicated_updates_do_not_add_digits() {
        let t = Instant::now();
        let mut rx = Rfc4733Receiver::new();
        for _ in 0..3 {
            rx.on_packet(&header(100, 1, true), &te(1, false, 160), t)
                .expect("valid");
        }
        rx.on_packet(&header(100, 2, false), &te(1, true, 640), t + ms(80))
            .expect("valid");
        rx.on_packet(&header(100, 2, false), &te(1, true, 640), t + ms(80))
            .expect("valid");
        assert_eq!(drain(&mut rx), vec![('1', 80)]);
    }

    #[test]
    fn same_key_twice_is_two_presses() {
        let t = Instant::now();
        let mut rx = Rfc4733Receiver::new();
        rx.on_packet(&header(0, 1, true), &te(7, false, 160), t)
            .expect("valid");
        rx.on_packet(&header(0, 2, false), &te(7, true, 800), t + ms(100))
            .expect("valid");
        rx.on_packet(&header(0, 3, false), &te(7, true, 800), t + ms(120))
            .expect("valid");
        rx.on_packet(&header(1_600, 5, true), &te(7, false, 160), t + ms(200))
            .expect("valid");
        rx.on_packet(&header(1_600, 6, false), &te(7, true, 800), t + ms(300))
            .expect("valid");
        assert_eq!(drain(&mut rx), vec![('7', 100), ('7', 100)]);
    }

    #[test]
    fn lost_end_is_reported_by_the_next_press_or_by_timeout() {
        let t = Instant::now();
        let mut rx = Rfc4733Receiver::new();
        rx.on_packet(&header(0, 1, true), &te(2, false, 160), t)
            .expect("valid");
        rx.on_packet(&header(0, 2, false), &te(2, false, 400), t + ms(50))
            .expect("valid");
        // All end packets lost; the next key starts.
        rx.on_packet(&header(2_400, 6, true), &te(3, false, 160), t + ms(300))
            .expect("valid");
        assert_eq!(drain(&mut rx), vec![('2', 50)]);
        // This one's end is lost too, and nothing follows.
        rx.poll(t + ms(500));
        assert!(rx.take_digit().is_none(), "not yet timed out");
        rx.poll(t + ms(700));
        assert_eq!(drain(&mut rx), vec![('3', 20)]);
        assert_eq!(rx.stats().missed_ends, 2);
        // Its end packets turning up afterwards change nothing.
        rx.on_packet(&header(2_400, 9, false), &te(3, true, 800), t + ms(710))
            .expect("valid");
        assert!(rx.take_digit().is_none());
    }

    #[test]
    fn only_end_packets_received_still_count_once() {
        let t = Instant::now();
        let mut rx = Rfc4733Receiver::new();
        for seq in 0..3 {
            rx.on_packet(&header(500, seq, false), &te(11, true, 960), t)
                .expect("valid");
        }
        assert_eq!(drain(&mut rx), vec![('#', 120)]);
    }

    #[test]
    fn reordered_packets_of_an_older_event_are_stale() {
        let t = Instant::now();
        let mut rx = Rfc4733Receiver::new();
        rx.on_packet(&header(1_000, 1, true), &te(4, true, 800), t)
            .expect("valid");
        rx.on_packet(&header(3_000, 4, true), &te(6, false, 160), t + ms(250))
            .expect("valid");
        rx.on_packet(&header(1_000, 2, false), &te(4, true, 800), t + ms(251))
            .expect("valid");
        rx.on_packet(&header(3_000, 5, false), &te(6, true, 800), t + ms(350))
            .expect("valid");
        assert_eq!(drain(&mut rx), vec![('4', 100), ('6', 100)]);
        assert_eq!(rx.stats().stale, 1);
    }

    #[test]
    fn long_event_segments_are_one_press() {
        let t = Instant::now();
        let mut rx = Rfc4733Receiver::new();
        rx.on_packet(&header(0, 1, true), &te(0, false, 160), t)
            .expect("valid");
        rx.on_packet(&header(0, 2, false), &te(0, false, 65_535), t + ms(8_190))
            .expect("valid");
        // Next segment starts where the first ended, without the marker.
        rx.on_packet(&header(65_535, 3, false), &te(0, false, 400), t + ms(8_240))
            .expect("valid");
        rx.on_packet(&header(65_535, 4, false), &te(0, true, 800), t + ms(8_290))
            .expect("valid");
        assert_eq!(drain(&mut rx), vec![('0', 8_291)]);
    }

    #[test]
    fn non_dtmf_events_and_malformed_payloads() {
        let t = Instant::now();
        let mut rx = Rfc4733Receiver::new();
        rx.on_packet(&header(0, 1, true), &te(16, true, 800), t)
            .expect("flash is valid");
        assert!(rx.take_digit().is_none());
        assert_eq!(
            rx.on_packet(&header(0, 2, false), &[1, 2, 3], t),
            Err(DtmfError::ShortPayload(3))
        );
        let s = rx.stats();
        assert_eq!((s.not_dtmf, s.malformed, s.digits), (1, 1, 0));
    }

    #[test]
    fn sender_plan_matches_rfc4733() {
        let plan: Vec<_> = Rfc4733Sender::new('9', 120).expect("valid").collect();
        // Updates at 0, 50, 100 ms; ends at 120, 140, 160 ms.
        let at: Vec<u128> = plan.iter().map(|p| p.send_at.as_millis()).collect();
        assert_eq!(at, [0, 50, 100, 120, 140, 160]);
        let durations: Vec<u32> = plan.iter().map(|p| p.duration).collect();
        assert_eq!(durations, [160, 400, 800, 960, 960, 960]);
        assert!(plan[0].marker);
        assert!(plan[1..].iter().all(|p| !p.marker));
        for (i, p) in plan.iter().enumerate() {
            let te = TelephoneEvent::parse(&p.payload).expect("valid");
            assert_eq!(te.event, 9);
            assert_eq!(te.end, i >= 3);
            assert_eq!(u32::from(te.duration), p.duration);
            assert_eq!(te.volume, DEFAULT_VOLUME);
        }
        assert_eq!(Rfc4733Sender::new('9', 120).expect("valid").span(), ms(160));
    }

    #[test]
    fn sender_limits() {
        let short: Vec<_> = Rfc4733Sender::new('*', 10).expect("valid").collect();
        assert_eq!(
            short.last().map(|p| p.duration),
            Some(320),
            "raised to 40 ms"
        );
        assert_eq!(
            Rfc4733Sender::new('x', 100).err(),
            Some(DtmfError::NotADigit("x".into()))
        );
        assert_eq!(
            Rfc4733Sender::new('1', 9_000).err(),
            Some(DtmfError::DurationTooLong(9_000))
        );
    }

    #[test]
    fn sender_and_receiver_agree() {
        let t = Instant::now();
        let mut rx = Rfc4733Receiver::new();
        for digit in ['1', '#', 'D'] {
            let ts = 10_000 * u32::from(digit_to_event(digit).unwrap_or(0) + 1);
            for (seq, p) in Rfc4733Sender::new(digit, DEFAULT_DIGIT_MS)
                .expect("valid")
                .enumerate()
            {
                rx.on_packet(&header(ts, seq as u16, p.marker), &p.payload, t + p.send_at)
                    .expect("valid");
            }
        }
        assert_eq!(drain(&mut rx), vec![('1', 100), ('#', 100), ('D', 100)]);
    }

    // --- in-band ---

    fn dual_tone(row: f32, col: f32, amplitude: f32, samples: usize, phase0: usize) -> Vec<i16> {
        (0..samples)
            .map(|i| {
                let t = (i + phase0) as f32 / SAMPLE_RATE_HZ as f32;
                let v = amplitude * (2.0 * std::f32::consts::PI * row * t).sin()
                    + amplitude * (2.0 * std::f32::consts::PI * col * t).sin();
                v as i16
            })
            .collect()
    }

    fn detect(signal: &[i16]) -> Vec<char> {
        let mut d = InbandDetector::new();
        // Feed in 20 ms frames, as the media engine does.
        for chunk in signal.chunks(160) {
            d.process(chunk);
        }
        d.finish();
        std::iter::from_fn(|| d.take_digit())
            .map(|x| x.digit)
            .collect()
    }

    fn key(digit: char, on_ms: usize, off_ms: usize, amplitude: f32) -> Vec<i16> {
        let (r, c) = KEYPAD
            .iter()
            .enumerate()
            .find_map(|(r, row)| row.iter().position(|&k| k == digit).map(|c| (r, c)))
            .unwrap_or((0, 0));
        let mut v = dual_tone(ROW_HZ[r], COL_HZ[c], amplitude, on_ms * 8, 0);
        v.extend(std::iter::repeat_n(0, off_ms * 8));
        v
    }

    #[test]
    fn goertzel_measures_amplitude() {
        let tone = dual_tone(1_000.0, 2_000.0, 8_000.0, 160, 0);
        assert!((tone_amplitude(&tone, 1_000.0) - 8_000.0).abs() < 400.0);
        assert!(tone_amplitude(&tone, 1_500.0) < 800.0);
        assert_eq!(tone_amplitude(&[], 1_000.0), 0.0);
    }

    #[test]
    fn detects_every_key_once() {
        let mut signal = Vec::new();
        let keys = "123A456B789C*0#D";
        for k in keys.chars() {
            signal.extend(key(k, 60, 60, 6_000.0));
        }
        let found: String = detect(&signal).into_iter().collect();
        assert_eq!(found, keys);
    }

    #[test]
    fn a_long_press_is_one_digit_with_its_duration() {
        let signal = key('5', 1_000, 100, 6_000.0);
        let mut d = InbandDetector::new();
        d.process(&signal);
        let digit = d.take_digit().expect("one");
        assert_eq!(digit.digit, '5');
        assert!(
            (980..=1_000).contains(&digit.duration_ms),
            "{}",
            digit.duration_ms
        );
        assert_eq!(digit.source, DtmfSource::InBand);
        assert!(d.take_digit().is_none());
    }

    #[test]
    fn minimum_duration_40ms_accepted_20ms_rejected() {
        for offset in [0usize, 37, 80, 101] {
            let mut signal = vec![0i16; offset];
            signal.extend(key('8', 40, 60, 6_000.0));
            assert_eq!(detect(&signal), vec!['8'], "40 ms at offset {offset}");
            let mut short = vec![0i16; offset];
            short.extend(key('8', 20, 60, 6_000.0));
            assert!(detect(&short).is_empty(), "20 ms at offset {offset}");
        }
    }

    #[test]
    fn a_10ms_dropout_does_not_split_a_press() {
        let mut signal = key('3', 80, 0, 6_000.0);
        signal.extend(std::iter::repeat_n(0, 80));
        signal.extend(dual_tone(697.0, 1_477.0, 6_000.0, 640, 720));
        signal.extend(std::iter::repeat_n(0, 800));
        assert_eq!(detect(&signal), vec!['3']);
    }

    #[test]
    fn twist_and_level_limits() {
        // Row 3 dB above column: accepted. Column 10 dB above row: rejected.
        let gain_3db = 10f32.powf(3.0 / 20.0);
        let ok: Vec<i16> = dual_tone(770.0, 0.0, 4_000.0 * gain_3db, 800, 0)
            .iter()
            .zip(dual_tone(0.0, 1_336.0, 4_000.0, 800, 0))
            .map(|(&a, b)| a.saturating_add(b))
            .collect();
        assert_eq!(detect(&ok), vec!['5']);
        let gain_10db = 10f32.powf(10.0 / 20.0);
        let twisted: Vec<i16> = dual_tone(770.0, 0.0, 2_000.0, 800, 0)
            .iter()
            .zip(dual_tone(0.0, 1_336.0, 2_000.0 * gain_10db, 800, 0))
            .map(|(&a, b)| a.saturating_add(b))
            .collect();
        assert!(detect(&twisted).is_empty());
        // Too quiet (-40 dBm0 per tone).
        assert!(detect(&key('5', 200, 50, 228.0)).is_empty());
        // Quiet but valid (-25 dBm0 per tone).
        assert_eq!(detect(&key('5', 200, 50, 1_281.0)), vec!['5']);
    }

    #[test]
    fn rejects_single_tones_and_same_group_pairs() {
        let single = dual_tone(697.0, 0.0, 8_000.0, 4_000, 0);
        assert!(detect(&single).is_empty());
        let rows = dual_tone(697.0, 852.0, 6_000.0, 4_000, 0);
        assert!(detect(&rows).is_empty());
        let dial_tone = dual_tone(350.0, 440.0, 6_000.0, 4_000, 0);
        assert!(detect(&dial_tone).is_empty());
    }

    /// A crude vowel: a 120-220 Hz glottal pulse train's harmonics with formant-like
    /// weighting, its pitch gliding as in speech.
    fn speech_like(samples: usize) -> Vec<i16> {
        let mut phase = 0f32;
        (0..samples)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE_HZ as f32;
                let f0 = 170.0 + 50.0 * (2.0 * std::f32::consts::PI * 3.0 * t).sin();
                phase += 2.0 * std::f32::consts::PI * f0 / SAMPLE_RATE_HZ as f32;
                let mut v = 0f32;
                for h in 1..=20 {
                    let f = f0 * h as f32;
                    let formant = (-((f - 700.0) / 300.0).powi(2)).exp()
                        + 0.7 * (-((f - 1_300.0) / 350.0).powi(2)).exp()
                        + 0.2;
                    v += formant * (phase * h as f32).sin();
                }
                (v * 2_500.0).clamp(-32_000.0, 32_000.0) as i16
            })
            .collect()
    }

    #[test]
    fn rejects_speech_like_audio() {
        let speech = speech_like(8_000 * 5);
        let mut d = InbandDetector::new();
        d.process(&speech);
        d.finish();
        assert!(d.take_digit().is_none(), "hits: {}", d.stats().hits);
    }

    #[test]
    fn detects_in_noise() {
        let mut state = 99u32;
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 1_000) as i32 - 500
        };
        // Tones at 6 000 each; noise ±500 uniform (≈ 23 dB below the tones).
        let signal: Vec<i16> = key('0', 80, 80, 6_000.0)
            .into_iter()
            .chain(key('#', 80, 80, 6_000.0))
            .map(|s| (i32::from(s) + noise()) as i16)
            .collect();
        assert_eq!(detect(&signal), vec!['0', '#']);
    }

    #[test]
    fn key_to_key_without_gap_is_two_digits() {
        let mut signal = key('1', 100, 0, 6_000.0);
        signal.extend(key('2', 100, 100, 6_000.0));
        assert_eq!(detect(&signal), vec!['1', '2']);
    }

    // --- SIP INFO ---

    #[test]
    fn dtmf_relay_bodies() {
        let d = parse_sip_info("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n")
            .expect("valid");
        assert_eq!(
            (d.digit, d.duration_ms, d.source),
            ('5', 160, DtmfSource::SipInfo)
        );
        let d = parse_sip_info(
            "Application/DTMF-Relay; charset=utf-8",
            b"signal= *\nduration = 250",
        )
        .expect("valid");
        assert_eq!((d.digit, d.duration_ms), ('*', 250));
        let d = parse_sip_info("application/dtmf-relay", b"Signal=11").expect("valid");
        assert_eq!((d.digit, d.duration_ms), ('#', DEFAULT_INFO_DURATION_MS));
        let d =
            parse_sip_info("application/dtmf-relay", b"Signal=d\r\nDuration=100").expect("valid");
        assert_eq!(d.digit, 'D');
    }

    #[test]
    fn dtmf_bodies() {
        assert_eq!(
            parse_sip_info("application/dtmf", b"7\r\n").map(|d| d.digit),
            Ok('7')
        );
        assert_eq!(
            parse_sip_info("application/dtmf", b"10").map(|d| d.digit),
            Ok('*')
        );
    }

    #[test]
    fn bad_info_bodies() {
        assert_eq!(
            parse_sip_info("text/plain", b"Signal=1"),
            Err(DtmfError::UnsupportedContentType("text/plain".into()))
        );
        assert_eq!(
            parse_sip_info("application/dtmf-relay", b"Duration=100"),
            Err(DtmfError::MissingSignal)
        );
        assert_eq!(
            parse_sip_info("application/dtmf-relay", b"Signal=1\nDuration=long"),
            Err(DtmfError::BadDuration("long".into()))
        );
        assert_eq!(
            parse_sip_info("application/dtmf-relay", b"Signal=16"),
            Err(DtmfError::NotADigit("16".into()))
        );
        assert_eq!(
            parse_sip_info("application/dtmf-relay", b"Signal=x"),
            Err(DtmfError::NotADigit("x".into()))
        );
        assert_eq!(
            parse_sip_info("application/dtmf", &[0xFF, 0xFE]),
            Err(DtmfError::BodyNotText)
        );
        assert_eq!(
            parse_sip_info("application/dtmf", b""),
            Err(DtmfError::NotADigit("".into()))
        );
    }
}
