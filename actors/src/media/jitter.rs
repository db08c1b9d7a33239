//! A small adaptive jitter buffer for the audio the switch itself consumes.
//!
//! Forwarded calls never pass through it (the relay forwards packets as they come and the
//! phones de-jitter). It sits in front of what the switch listens to: the conference
//! mixer, the recorder and the in-band DTMF detector, each of which pulls exactly one
//! 20 ms frame per tick and needs that frame in order, once, and on time.
//!
//! - Packets are placed by RTP timestamp into a ring of 20 ms slots, so reordering is
//!   undone and any G.711 packet size (10, 20, 30, 60 ms …) lands on the 20 ms grid.
//! - Duplicates are recognised by sequence number (a 64-packet window), late packets by
//!   timestamp (their slot was already played); both are dropped and counted.
//! - A frame that is missing when its turn comes is concealed by repeating the last good
//!   frame at decreasing gain, then silence.
//! - The playout depth adapts between 20 and 120 ms: it follows the RFC 3550 interarrival
//!   jitter estimate, grows when the buffer runs dry (playout pauses until the target
//!   depth is buffered again, so a delay spike costs no audio) and shrinks by skipping
//!   one frame at a time after a sustained surplus.
//! - A new SSRC, or a timestamp jump the sequence numbers say is not a late packet,
//!   starts over.

use std::time::Instant;

use super::frame::{Frame, FRAME_SAMPLES, FRAME_TIMESTAMP_STEP, SAMPLE_RATE_HZ};
use super::g711::Law;
use super::rtp_out::{parse_rtp, serial_newer_u16, serial_newer_u32, RtpError};

/// Slots in the ring: 320 ms, the largest depth plus room for reordering and bursts.
pub const SLOT_COUNT: usize = 16;
/// Smallest playout depth, in frames (20 ms): enough for packets arriving on time.
pub const MIN_DEPTH_FRAMES: u32 = 1;
/// Largest playout depth, in frames (120 ms): beyond this the delay hurts conversation
/// more than the occasional concealed frame.
pub const MAX_DEPTH_FRAMES: u32 = 6;
/// Depth to start with before any jitter has been measured (40 ms).
pub const INITIAL_DEPTH_FRAMES: u32 = 2;
/// Largest packet accepted, in samples (160 ms of G.711); larger ones are not telephony.
pub const MAX_PACKET_SAMPLES: usize = 8 * FRAME_SAMPLES;
/// Depth above target = jitter × this: three standard deviations of a roughly normal
/// delay distribution (the RFC 3550 estimator approximates the mean deviation).
const JITTER_SAFETY_FACTOR: f64 = 3.0;
/// RFC 3550 §6.4.1: the jitter estimate moves 1/16 of the way to each new sample.
const JITTER_GAIN: f64 = 1.0 / 16.0;
/// Frames of surplus over the target tolerated without shrinking (hysteresis).
const SHRINK_MARGIN_FRAMES: u32 = 1;
/// Consecutive ticks (1 s) of surplus before one frame is skipped: shrinking is slow so
/// that a single burst does not make the depth oscillate.
const SHRINK_AFTER_TICKS: u32 = 50;
/// Concealment gains (Q15) for the 1st, 2nd and 3rd consecutive missing frame; after
/// that, silence. Repeating a frame at full level for long sounds like a stuck record.
const CONCEAL_GAINS_Q15: [i32; 3] = [22_938, 13_107, 4_915]; // 0.7, 0.4, 0.15
const Q15_SHIFT: u32 = 15;
/// Sequence numbers remembered for duplicate detection.
const SEQ_WINDOW: u16 = 64;
const NANOS_PER_SECOND: u128 = 1_000_000_000;
const RING_SAMPLES: usize = SLOT_COUNT * FRAME_SAMPLES;

/// Why a packet was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JitterError {
    #[error("malformed RTP: {0}")]
    Rtp(#[from] RtpError),
    #[error("RTP packet without payload")]
    EmptyPayload,
    #[error("RTP payload of {0} samples is larger than any telephony packet")]
    PayloadTooLarge(usize),
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Accepted,
    /// Already received (same sequence number).
    Duplicate,
    /// Its time has already been played.
    Late,
    /// Not G.711 audio (telephone-event, comfort noise …): the caller routes it.
    NotAudio(u8),
    Malformed(JitterError),
}

/// What [`JitterBuffer::pop`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopKind {
    /// Received audio (a frame partly covered by packets has silence in the gaps).
    Audio,
    /// A missing frame, replaced by an attenuated repeat of the last one.
    Concealed,
    /// Nothing to play: not started, buffering, or a long gap.
    Silence,
}

/// Counters, for monitoring and the "malformed RTP dropped and counted" requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JitterStats {
    pub received: u64,
    pub accepted: u64,
    pub malformed: u64,
    pub not_audio: u64,
    pub duplicates: u64,
    pub late: u64,
    pub ssrc_changes: u64,
    /// Timestamp jumps that restarted playout on the new timeline.
    pub resyncs: u64,
    /// Frames discarded to make room for a burst that overflowed the ring.
    pub overflow_dropped: u64,
    /// Frames skipped to shrink the depth after a sustained surplus.
    pub shrink_dropped: u64,
    pub concealed: u64,
    /// Times the buffer ran dry while playing (playout paused to rebuffer).
    pub underruns: u64,
    pub frames_out: u64,
}

#[derive(Debug, Clone)]
struct Slot {
    samples: Frame,
    /// Timestamp of the slot's first sample, valid while `filled > 0`.
    frame_ts: u32,
    filled: u16,
}

impl Slot {
    const EMPTY: Slot = Slot {
        samples: [0; FRAME_SAMPLES],
        frame_ts: 0,
        filled: 0,
    };

    fn clear(&mut self) {
        if self.filled > 0 {
            self.samples = [0; FRAME_SAMPLES];
            self.filled = 0;
        }
    }
}

enum SeqCheck {
    Newest,
    Older,
    Duplicate,
}

/// Which of the recent sequence numbers were seen (like an SRTP replay window).
#[derive(Debug, Clone, Default)]
struct SeqWindow {
    highest: Option<u16>,
    seen: u64,
}

impl SeqWindow {
    fn check_and_insert(&mut self, seq: u16) -> SeqCheck {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            self.seen = 1;
            return SeqCheck::Newest;
        };
        if serial_newer_u16(seq, highest) {
            let ahead = seq.wrapping_sub(highest);
            self.seen = if ahead >= SEQ_WINDOW {
                0
            } else {
                self.seen << ahead
            };
            self.seen |= 1;
            self.highest = Some(seq);
            return SeqCheck::Newest;
        }
        let behind = highest.wrapping_sub(seq);
        if behind >= SEQ_WINDOW {
            // Too old to remember: let the timestamp decide (it will be late).
            return SeqCheck::Older;
        }
        let bit = 1u64 << behind;
        if self.seen & bit != 0 {
            SeqCheck::Duplicate
        } else {
            self.seen |= bit;
            SeqCheck::Older
        }
    }
}

/// The adaptive jitter buffer of one incoming stream.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    slots: Box<[Slot]>,
    ssrc: Option<u32>,
    /// Timestamp of the next frame to play and its slot; `None` before the first packet.
    playout: Option<(u32, usize)>,
    /// Playing, as opposed to (re)buffering up to the target depth.
    playing: bool,
    /// End timestamp of the newest audio received.
    highest_end: u32,
    seq: SeqWindow,
    epoch: Option<Instant>,
    /// Arrival (in samples since `epoch`) and timestamp of the newest packet, for jitter.
    last_transit: Option<(i64, u32)>,
    jitter_samples: f64,
    target_frames: u32,
    surplus_ticks: u32,
    last_frame: Frame,
    concealed_run: usize,
    stats: JitterStats,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl JitterBuffer {
    pub fn new() -> Self {
        Self {
            slots: vec![Slot::EMPTY; SLOT_COUNT].into_boxed_slice(),
            ssrc: None,
            playout: None,
            playing: false,
            highest_end: 0,
            seq: SeqWindow::default(),
            epoch: None,
            last_transit: None,
            jitter_samples: 0.0,
            target_frames: INITIAL_DEPTH_FRAMES,
            surplus_ticks: 0,
            last_frame: [0; FRAME_SAMPLES],
            concealed_run: CONCEAL_GAINS_Q15.len(),
            stats: JitterStats::default(),
        }
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The SSRC being played, once a packet was accepted.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Current target playout depth in milliseconds (20 to 120).
    pub fn target_depth_ms(&self) -> u32 {
        self.target_frames * FRAME_TIMESTAMP_STEP * 1_000 / SAMPLE_RATE_HZ
    }

    /// Interarrival jitter estimate (RFC 3550 §6.4.1) in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter_samples * 1_000.0 / f64::from(SAMPLE_RATE_HZ)
    }

    /// Audio buffered ahead of the playout point, in samples.
    pub fn buffered_samples(&self) -> u32 {
        match self.playout {
            Some((ts, _)) if serial_newer_u32(self.highest_end, ts) => {
                self.highest_end.wrapping_sub(ts)
            }
            _ => 0,
        }
    }

    /// Forgets the stream (new SSRC, or the leg's media was re-negotiated).
    pub fn reset(&mut self) {
        self.slots.iter_mut().for_each(Slot::clear);
        self.ssrc = None;
        self.playout = None;
        self.playing = false;
        self.seq = SeqWindow::default();
        self.last_transit = None;
        self.surplus_ticks = 0;
        self.concealed_run = CONCEAL_GAINS_Q15.len();
    }

    /// Takes one received datagram.
    pub fn push(&mut self, datagram: &[u8], arrival: Instant) -> PushOutcome {
        self.stats.received += 1;
        let packet = match parse_rtp(datagram) {
            Ok(packet) => packet,
            Err(e) => return self.malformed(e.into()),
        };
        let header = packet.header;
        let Ok(law) = Law::from_payload_type(header.payload_type) else {
            self.stats.not_audio += 1;
            return PushOutcome::NotAudio(header.payload_type);
        };
        let codes = packet.payload;
        if codes.is_empty() {
            return self.malformed(JitterError::EmptyPayload);
        }
        if codes.len() > MAX_PACKET_SAMPLES {
            return self.malformed(JitterError::PayloadTooLarge(codes.len()));
        }
        if self.ssrc.is_some_and(|ssrc| ssrc != header.ssrc) {
            self.stats.ssrc_changes += 1;
            self.reset();
        }
        self.ssrc = Some(header.ssrc);
        let newest = match self.seq.check_and_insert(header.sequence) {
            SeqCheck::Duplicate => {
                self.stats.duplicates += 1;
                return PushOutcome::Duplicate;
            }
            SeqCheck::Newest => true,
            SeqCheck::Older => false,
        };
        let len = codes.len() as u32;
        let mut playout_ts = match self.playout {
            Some((ts, _)) => ts,
            None => {
                self.playout = Some((header.timestamp, 0));
                self.highest_end = header.timestamp;
                header.timestamp
            }
        };
        let mut offset = header.timestamp.wrapping_sub(playout_ts) as i32;
        let mut skip = 0usize;
        if offset < 0 {
            let behind = offset.unsigned_abs();
            if behind as usize > RING_SAMPLES && newest {
                // Newer by sequence, far older by timestamp: the source re-based its
                // timeline (restart without a new SSRC). Follow it.
                self.resync(header.timestamp);
                playout_ts = header.timestamp;
                offset = 0;
            } else if behind >= len {
                self.stats.late += 1;
                return PushOutcome::Late;
            } else {
                // The head of the packet was due already; keep its tail.
                skip = behind as usize;
                offset = 0;
            }
        } else if offset as usize >= RING_SAMPLES {
            let gap = header.timestamp.wrapping_sub(self.highest_end) as i32;
            let continues = gap < RING_SAMPLES as i32;
            if !continues && !newest {
                // An old packet from before a jump: stale.
                self.stats.late += 1;
                return PushOutcome::Late;
            }
            if !continues {
                // Far beyond everything received: a jump forward (silence suppression,
                // hold, a re-based source). Restart on the new timeline.
                self.resync(header.timestamp);
                playout_ts = header.timestamp;
                offset = 0;
            }
        }
        let remaining = codes.len() - skip;
        let overflow = (offset as usize + remaining).saturating_sub(RING_SAMPLES);
        if overflow > 0 {
            // A burst larger than the ring (or a short pause while playout waited):
            // give up the oldest frames to keep the newest.
            let frames = overflow.div_ceil(FRAME_SAMPLES);
            for _ in 0..frames {
                if self.advance() {
                    self.stats.overflow_dropped += 1;
                }
            }
            offset -= (frames * FRAME_SAMPLES) as i32;
            playout_ts = self.playout.map_or(playout_ts, |(ts, _)| ts);
        }
        self.write(law, &codes[skip..], offset as usize, playout_ts);
        let end = header.timestamp.wrapping_add(len);
        if serial_newer_u32(end, self.highest_end) {
            self.highest_end = end;
        }
        if newest {
            self.update_jitter(header.timestamp, arrival);
        }
        self.stats.accepted += 1;
        PushOutcome::Accepted
    }

    /// Produces the next 20 ms frame: called once per tick by the consumer.
    pub fn pop(&mut self, out: &mut Frame) -> PopKind {
        let Some((playout_ts, slot_index)) = self.playout else {
            *out = [0; FRAME_SAMPLES];
            return PopKind::Silence;
        };
        if !self.playing {
            if self.buffered_samples() >= self.target_frames * FRAME_TIMESTAMP_STEP {
                self.playing = true;
            } else {
                return self.conceal(out);
            }
        }
        let slot = &self.slots[slot_index];
        if slot.filled > 0 && slot.frame_ts == playout_ts {
            *out = slot.samples;
            self.last_frame = slot.samples;
            self.concealed_run = 0;
            self.advance();
            self.stats.frames_out += 1;
            self.maybe_shrink();
            return PopKind::Audio;
        }
        if self.buffered_samples() == 0 {
            // Ran dry: pause playout here and rebuffer to the target depth, so the
            // packets of a delay spike are played late instead of dropped as late.
            self.playing = false;
            self.stats.underruns += 1;
            self.grow_target();
            return self.conceal(out);
        }
        // Lost (or not yet arrived although later audio has): conceal and move on.
        self.advance();
        self.conceal(out)
    }

    fn malformed(&mut self, error: JitterError) -> PushOutcome {
        self.stats.malformed += 1;
        PushOutcome::Malformed(error)
    }

    fn conceal(&mut self, out: &mut Frame) -> PopKind {
        let Some(&gain) = CONCEAL_GAINS_Q15.get(self.concealed_run) else {
            *out = [0; FRAME_SAMPLES];
            return PopKind::Silence;
        };
        self.concealed_run += 1;
        self.stats.concealed += 1;
        for (o, &s) in out.iter_mut().zip(&self.last_frame) {
            // |s × gain| < 2^15 × 2^15, so the product fits i32 and the result fits i16.
            *o = ((i32::from(s) * gain) >> Q15_SHIFT) as i16;
        }
        PopKind::Concealed
    }

    /// Moves playout one frame on, freeing the slot for the frame `SLOT_COUNT` ahead;
    /// tells whether that slot held audio not yet played.
    fn advance(&mut self) -> bool {
        let Some((ts, index)) = self.playout else {
            return false;
        };
        let slot = &mut self.slots[index];
        let had_audio = slot.filled > 0 && slot.frame_ts == ts;
        slot.clear();
        self.playout = Some((
            ts.wrapping_add(FRAME_TIMESTAMP_STEP),
            (index + 1) % SLOT_COUNT,
        ));
        had_audio
    }

    fn resync(&mut self, timestamp: u32) {
        self.slots.iter_mut().for_each(Slot::clear);
        self.playout = Some((timestamp, 0));
        self.playing = false;
        self.highest_end = timestamp;
        self.last_transit = None;
        self.surplus_ticks = 0;
        self.stats.resyncs += 1;
    }

    /// Decodes `codes` into the slots, `offset` samples after the playout point.
    fn write(&mut self, law: Law, codes: &[u8], mut offset: usize, playout_ts: u32) {
        let Some((_, playout_slot)) = self.playout else {
            return;
        };
        let mut rest = codes;
        while !rest.is_empty() {
            let frame = offset / FRAME_SAMPLES;
            let position = offset % FRAME_SAMPLES;
            let take = rest.len().min(FRAME_SAMPLES - position);
            let frame_ts = playout_ts.wrapping_add((frame * FRAME_SAMPLES) as u32);
            let slot = &mut self.slots[(playout_slot + frame) % SLOT_COUNT];
            if slot.filled > 0 && slot.frame_ts != frame_ts {
                slot.clear();
            }
            slot.frame_ts = frame_ts;
            let (now, later) = rest.split_at(take);
            for (sample, &code) in slot.samples[position..].iter_mut().zip(now) {
                *sample = law.decode(code);
            }
            slot.filled = (usize::from(slot.filled) + take).min(FRAME_SAMPLES) as u16;
            rest = later;
            offset += take;
        }
    }

    fn update_jitter(&mut self, timestamp: u32, arrival: Instant) {
        let epoch = *self.epoch.get_or_insert(arrival);
        let nanos = arrival.saturating_duration_since(epoch).as_nanos();
        let arrival_samples = (nanos * u128::from(SAMPLE_RATE_HZ) / NANOS_PER_SECOND) as i64;
        if let Some((last_arrival, last_ts)) = self.last_transit {
            let sent_delta = i64::from(timestamp.wrapping_sub(last_ts) as i32);
            let d = (arrival_samples - last_arrival) - sent_delta;
            self.jitter_samples += (d.unsigned_abs() as f64 - self.jitter_samples) * JITTER_GAIN;
            let wanted = self.depth_for_jitter();
            if wanted > self.target_frames {
                // Grow at once: a wider jitter is a risk now; shrinking waits for surplus.
                self.target_frames = wanted;
            }
        }
        self.last_transit = Some((arrival_samples, timestamp));
    }

    fn depth_for_jitter(&self) -> u32 {
        let margin = (JITTER_SAFETY_FACTOR * self.jitter_samples / f64::from(FRAME_TIMESTAMP_STEP))
            .ceil() as u32;
        (MIN_DEPTH_FRAMES + margin).clamp(MIN_DEPTH_FRAMES, MAX_DEPTH_FRAMES)
    }

    fn grow_target(&mut self) {
        self.target_frames = (self.target_frames + 1).min(MAX_DEPTH_FRAMES);
    }

    /// Brings the depth down after [`SHRINK_AFTER_TICKS`] ticks in which either the
    /// jitter asked for less than the target or the buffer held more than it.
    fn maybe_shrink(&mut self) {
        let wanted = self.depth_for_jitter();
        // Depth as it was at this pop, counting the frame just played.
        let depth_frames = self.buffered_samples() / FRAME_TIMESTAMP_STEP + 1;
        let too_deep = depth_frames > self.target_frames + SHRINK_MARGIN_FRAMES;
        if wanted >= self.target_frames && !too_deep {
            self.surplus_ticks = 0;
            return;
        }
        self.surplus_ticks += 1;
        if self.surplus_ticks < SHRINK_AFTER_TICKS {
            return;
        }
        self.surplus_ticks = 0;
        if wanted < self.target_frames {
            self.target_frames -= 1;
        }
        if too_deep {
            // Skip one frame: a 20 ms cut, once a second at most, is inaudible next to
            // the delay it removes.
            self.advance();
            self.stats.shrink_dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::{ulaw_encode, PAYLOAD_TYPE_PCMU};
    use crate::media::rtp_out::{write_header, RTP_HEADER_LEN};
    use std::time::Duration;

    /// A packet of `samples` samples whose every sample encodes `value`.
    fn packet(ssrc: u32, seq: u16, ts: u32, samples: usize, value: i16) -> Vec<u8> {
        let mut p = vec![ulaw_encode(value); RTP_HEADER_LEN + samples];
        write_header(&mut p, false, PAYLOAD_TYPE_PCMU, seq, ts, ssrc).expect("fits");
        p
    }

    fn frame_value(frame: &Frame) -> i16 {
        frame[FRAME_SAMPLES / 2]
    }

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    /// µ-law reproduces these values exactly, so frames are recognisable by value.
    const V: [i16; 8] = [1_020, 2_040, 3_068, 4_092, 5_116, 6_140, 7_164, 8_188];

    fn decoded(v: i16) -> i16 {
        crate::media::g711::ulaw_decode(ulaw_encode(v))
    }

    #[test]
    fn plays_in_order_after_prefill() {
        let start = Instant::now();
        let mut jb = JitterBuffer::new();
        let mut out = [0; FRAME_SAMPLES];
        assert_eq!(jb.pop(&mut out), PopKind::Silence, "nothing received yet");
        for i in 0..4u16 {
            let p = packet(
                1,
                100 + i,
                8_000 + 160 * u32::from(i),
                160,
                V[usize::from(i)],
            );
            assert_eq!(
                jb.push(&p, at(start, 20 * u64::from(i))),
                PushOutcome::Accepted
            );
        }
        for &v in &V[..4] {
            assert_eq!(jb.pop(&mut out), PopKind::Audio);
            assert_eq!(frame_value(&out), decoded(v));
        }
        let s = jb.stats();
        assert_eq!(
            (s.accepted, s.frames_out, s.late, s.duplicates),
            (4, 4, 0, 0)
        );
    }

    #[test]
    fn waits_for_the_target_depth_before_playing() {
        let start = Instant::now();
        let mut jb = JitterBuffer::new();
        let mut out = [0; FRAME_SAMPLES];
        jb.push(&packet(1, 0, 0, 160, V[0]), start);
        assert_eq!(
            jb.pop(&mut out),
            PopKind::Silence,
            "20 ms buffered, 40 wanted"
        );
        jb.push(&packet(1, 1, 160, 160, V[1]), at(start, 20));
        assert_eq!(jb.pop(&mut out), PopKind::Audio);
        assert_eq!(frame_value(&out), decoded(V[0]));
    }

    #[test]
    fn reorders() {
        let start = Instant::now();
        let mut jb = JitterBuffer::new();
        for &i in &[0u16, 2, 1, 3] {
            let p = packet(1, i, 160 * u32::from(i), 160, V[usize::from(i)]);
            assert_eq!(jb.push(&p, start), PushOutcome::Accepted);
        }
        let mut out = [0; FRAME_SAMPLES];
        for &v in &V[..4] {
            assert_eq!(jb.pop(&mut out), PopKind::Audio);
            assert_eq!(frame_value(&out), decoded(v));
        }
    }

    #[test]
    fn drops_duplicates_and_late_packets() {
        let start = Instant::now();
        let mut jb = JitterBuffer::new();
        let mut out = [0; FRAME_SAMPLES];
        jb.push(&packet(1, 0, 0, 160, V[0]), start);
        jb.push(&packet(1, 2, 320, 160, V[2]), start);
        assert_eq!(
            jb.push(&packet(1, 2, 320, 160, V[2]), start),
            PushOutcome::Duplicate
        );
        assert_eq!(jb.pop(&mut out), PopKind::Audio); // frame 0
        assert_eq!(jb.pop(&mut out), PopKind::Concealed); // frame 1 missing
        assert_eq!(
            frame_value(&out),
            ((i32::from(decoded(V[0])) * 22_938) >> 15) as i16
        );
        assert_eq!(
            jb.push(&packet(1, 1, 160, 160, V[1]), at(start, 45)),
            PushOutcome::Late
        );
        assert_eq!(jb.pop(&mut out), PopKind::Audio);
        assert_eq!(frame_value(&out), decoded(V[2]));
        let s = jb.stats();
        assert_eq!((s.duplicates, s.late, s.concealed), (1, 1, 1));
    }

    #[test]
    fn concealment_fades_to_silence() {
        let start = Instant::now();
        let mut jb = JitterBuffer::new();
        let mut out = [0; FRAME_SAMPLES];
        jb.push(&packet(1, 0, 0, 160, 8_000), start);
        jb.push(&packet(1, 6, 960, 160, 8_000), start);
        assert_eq!(jb.pop(&mut out), PopKind::Audio);
        let mut levels = Vec::new();
        for _ in 0..5 {
            let kind = jb.pop(&mut out);
            levels.push((kind, frame_value(&out).abs()));
        }
        assert!(levels[..3].iter().all(|&(k, _)| k == PopKind::Concealed));
        assert!(levels[0].1 > levels[1].1 && levels[1].1 > levels[2].1);
        assert_eq!(levels[3], (PopKind::Silence, 0));
        assert_eq!(jb.pop(&mut out), PopKind::Audio, "frame 6 arrives on time");
    }

    #[test]
    fn ten_ms_packets_fill_twenty_ms_frames() {
        let start = Instant::now();
        let mut jb = JitterBuffer::new();
        for i in 0..8u16 {
            let value = V[usize::from(i / 2)];
            let p = packet(3, i, 80 * u32::from(i), 80, value);
            assert_eq!(jb.push(&p, start), PushOutcome::Accepted);
        }
        let mut out = [0; FRAME_SAMPLES];
        for &v in &V[..4] {
            assert_eq!(jb.pop(&mut out), PopKind::Audio);
            assert!(out.iter().all(|&s| s == decoded(v)));
        }
    }

    #[test]
    fn sixty_ms_packets_span_three_frames() {
        let start = Instant::now();
        let mut jb = JitterBuffer::new();
        jb.push(&packet(3, 0, 0, 480, V[5]), start);
        let mut out = [0; FRAME_SAMPLES];
        for _ in 0..3 {
            assert_eq!(jb.pop(&mut out), PopKind::Audio);
            assert_eq!(frame_value(&out), decoded(V[5]));
        }
    }

    #[test]
    fn new_ssrc_resets() {
        let start = Instant::now();
        let mut jb = JitterBuffer::new();
        let mut out = [0; FRAME_SAMPLES];
        jb.push(&packet(1, 0, 0, 160, V[0]), start);
        jb.push(&packet(1, 1, 160, 160, V[1]), start);
        // A different source with an unrelated sequence and timestamp.
        jb.push(&packet(2, 5_000, 777_777, 160, V[3]), start);
        jb.push(&packet(2, 5_001, 777_937, 160, V[4]), start);
        assert_eq!(jb.ssrc(), Some(2));
        assert_eq!(jb.pop(&mut out), PopKind::Audio);
        assert_eq!(frame_value(&out), decoded(V[3]));
        assert_eq!(jb.stats().ssrc_changes, 1);
    }

    #[test]
    fn malformed_and_non_audio_are_counted_and_dropped() {
        let start = Instant::now();
        let mut jb = JitterBuffer::new();
        assert!(matches!(
            jb.push(&[0x80, 0, 1], start),
            PushOutcome::Malformed(JitterError::Rtp(RtpError::TooShort(3)))
        ));
        let mut v1 = packet(1, 0, 0, 160, 0);
        v1[0] = 0x40;
        assert!(matches!(jb.push(&v1, start), PushOutcome::Malformed(_)));
        let empty = packet(1, 0, 0, 0, 0);
        assert_eq!(
            jb.push(&empty, start),
            PushOutcome::Malformed(JitterError::EmptyPayload)
        );
        let huge = packet(1, 0, 0, MAX_PACKET_SAMPLES + 1, 0);
        assert!(matches!(
            jb.push(&huge, start),
            PushOutcome::Malformed(JitterError::PayloadTooLarge(_))
        ));
        let mut dtmf = packet(1, 0, 0, 4, 0);
        dtmf[1] = 101;
        assert_eq!(jb.push(&dtmf, start), PushOutcome::NotAudio(101));
        let s = jb.stats();
        assert_eq!(
            (s.received, s.malformed, s.not_audio, s.accepted),
            (5, 4, 1, 0)
        );
        let mut out = [1; FRAME_SAMPLES];
        assert_eq!(jb.pop(&mut out), PopKind::Silence);
        assert_eq!(out, [0; FRAME_SAMPLES]);
    }

    #[test]
    fn timestamp_jump_forward_resyncs() {
        let start = Instant::now();
        let mut jb = JitterBuffer::new();
        let mut out = [0; FRAME_SAMPLES];
        jb.push(&packet(1, 0, 0, 160, V[0]), start);
        jb.push(&packet(1, 1, 160, 160, V[1]), start);
        jb.pop(&mut out);
        jb.pop(&mut out);
        // Silence suppression: 2 s without packets, then the timestamp has moved on.
        for i in 0..3u16 {
            let ts = 16_320 + 160 * u32::from(i);
            jb.push(
                &packet(1, 2 + i, ts, 160, V[2 + usize::from(i)]),
                at(start, 2_040),
            );
        }
        assert_eq!(jb.pop(&mut out), PopKind::Audio);
        assert_eq!(frame_value(&out), decoded(V[2]));
        assert_eq!(jb.stats().resyncs, 1);
    }

    #[test]
    fn timestamp_rebase_backwards_with_newer_sequence_resyncs() {
        let start = Instant::now();
        let mut jb = JitterBuffer::new();
        let mut out = [0; FRAME_SAMPLES];
        jb.push(&packet(1, 10, 1_000_000, 160, V[0]), start);
        jb.push(&packet(1, 11, 1_000_160, 160, V[1]), start);
        jb.pop(&mut out);
        jb.pop(&mut out);
        jb.push(&packet(1, 12, 500, 160, V[6]), start);
        jb.push(&packet(1, 13, 660, 160, V[7]), start);
        assert_eq!(jb.pop(&mut out), PopKind::Audio);
        assert_eq!(frame_value(&out), decoded(V[6]));
        // A really old packet (older sequence) is still just late.
        assert_eq!(
            jb.push(&packet(1, 9, 999_840, 160, V[0]), start),
            PushOutcome::Late
        );
    }

    #[test]
    fn a_burst_larger_than_the_ring_keeps_the_newest() {
        let start = Instant::now();
        let mut jb = JitterBuffer::new();
        for i in 0..(SLOT_COUNT as u16 + 4) {
            jb.push(
                &packet(1, i, 160 * u32::from(i), 160, V[usize::from(i) % 8]),
                start,
            );
        }
        assert_eq!(jb.stats().overflow_dropped, 4);
        let mut out = [0; FRAME_SAMPLES];
        assert_eq!(jb.pop(&mut out), PopKind::Audio);
        assert_eq!(frame_value(&out), decoded(V[4]));
    }

    #[test]
    fn a_delay_spike_pauses_playout_instead_of_losing_audio() {
        let start = Instant::now();
        let mut jb = JitterBuffer::new();
        let mut out = [0; FRAME_SAMPLES];
        let mut seq = 0u16;
        let mut played = Vec::new();
        // 1 s of regular packets, then 100 ms of nothing, then the held packets at once.
        for tick in 0..80u64 {
            let now = at(start, tick * 20);
            let due: Vec<u64> = if (50..55).contains(&tick) {
                vec![]
            } else if tick == 55 {
                (50..=55).collect()
            } else {
                vec![tick]
            };
            for frame in due {
                let value = (frame as i16 % 50) * 100;
                jb.push(&packet(1, seq, 160 * frame as u32, 160, value), now);
                seq = seq.wrapping_add(1);
            }
            if jb.pop(&mut out) == PopKind::Audio {
                played.push(frame_value(&out));
            }
        }
        let s = jb.stats();
        assert_eq!(s.late, 0, "nothing lost to the spike");
        assert!(s.underruns >= 1);
        // Every frame that was played, was played once and in order.
        let expected: Vec<i16> = (0..played.len() as i16)
            .map(|f| decoded((f % 50) * 100))
            .collect();
        assert_eq!(played, expected);
        assert!(
            jb.target_depth_ms() > 40,
            "the spike made the buffer deeper"
        );
    }

    #[test]
    fn adapts_to_jitter_and_back() {
        let start = Instant::now();
        let mut jb = JitterBuffer::new();
        let mut out = [0; FRAME_SAMPLES];
        let mut state = 12_345u32;
        let mut rng = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        // 10 s with delays uniformly spread over 0-60 ms, delivered in arrival order.
        let mut arrivals: Vec<(u64, u32)> = (0..500u32)
            .map(|i| (u64::from(i) * 20 + u64::from(rng() % 60), i))
            .collect();
        arrivals.sort_unstable();
        let mut next = 0;
        for tick in 0..520u64 {
            let now_ms = tick * 20;
            while next < arrivals.len() && arrivals[next].0 <= now_ms {
                let (arrived, i) = arrivals[next];
                jb.push(
                    &packet(1, i as u16, 160 * i, 160, 1_000),
                    at(start, arrived),
                );
                next += 1;
            }
            jb.pop(&mut out);
        }
        let jittery = jb.target_depth_ms();
        assert!(jb.jitter_ms() > 5.0, "jitter {}", jb.jitter_ms());
        assert!((60..=120).contains(&jittery), "target {jittery} ms");
        let jittery_stats = jb.stats();
        assert!(
            jittery_stats.late + jittery_stats.concealed < 25,
            "few losses once adapted: {jittery_stats:?}"
        );

        // Then 20 s of perfectly regular packets: the depth comes back down.
        for i in 500..1_500u32 {
            let now = at(start, u64::from(i) * 20 + 200);
            jb.push(&packet(1, i as u16, 160 * i, 160, 1_000), now);
            jb.pop(&mut out);
        }
        assert!(
            jb.target_depth_ms() <= 40,
            "target {} ms",
            jb.target_depth_ms()
        );
        assert!(
            jb.buffered_samples() <= 3 * 160,
            "buffered {}",
            jb.buffered_samples()
        );
        assert!(jb.stats().shrink_dropped > 0);
    }

    #[test]
    fn sequence_window_handles_wrap_and_old_packets() {
        let mut w = SeqWindow::default();
        assert!(matches!(w.check_and_insert(65_534), SeqCheck::Newest));
        assert!(matches!(w.check_and_insert(1), SeqCheck::Newest));
        assert!(matches!(w.check_and_insert(65_535), SeqCheck::Older));
        assert!(matches!(w.check_and_insert(65_535), SeqCheck::Duplicate));
        assert!(matches!(w.check_and_insert(1), SeqCheck::Duplicate));
        assert!(matches!(w.check_and_insert(1_000), SeqCheck::Newest));
        assert!(
            matches!(w.check_and_insert(1), SeqCheck::Older),
            "beyond the window"
        );
    }

    #[test]
    fn timestamps_wrap() {
        let start = Instant::now();
        let mut jb = JitterBuffer::new();
        let mut out = [0; FRAME_SAMPLES];
        for i in 0..4u32 {
            let ts = (u32::MAX - 319).wrapping_add(160 * i);
            jb.push(&packet(1, i as u16, ts, 160, V[i as usize]), start);
        }
        for &v in &V[..4] {
            assert_eq!(jb.pop(&mut out), PopKind::Audio);
            assert_eq!(frame_value(&out), decoded(v));
        }
    }
}
