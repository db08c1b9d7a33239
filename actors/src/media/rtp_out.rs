//! RTP headers in and out, without allocation.
//!
//! - [`parse_rtp`] validates an incoming datagram (version, CSRC list, header extension,
//!   padding) and returns borrowed views of its header and payload; every defect is an
//!   [`RtpError`], never a panic, so the caller can drop and count it.
//! - [`RtpSender`] is one outgoing RTP stream of a leg. It owns the SSRC, sequence number
//!   and timestamp and keeps them coherent while the audio behind the stream changes:
//!   a prompt, then forwarded audio from the bridged party, then a prompt again. Phones
//!   drop audio when a stream's sequence jumps or its timestamp goes backwards, and many
//!   reset their jitter buffer only when the marker bit says a new talkspurt begins, so
//!   on every source switch the SSRC is kept, the sequence continues, the timestamp
//!   jumps forward by the wall-clock time that passed, and the marker bit is set once.
//!
//! Packets are written into a caller-provided buffer; nothing here allocates per packet.

use std::time::{Duration, Instant};

use super::frame::{FRAME_TIMESTAMP_STEP, SAMPLE_RATE_HZ};

/// The only RTP version in use (RFC 3550 §5.1).
pub const RTP_VERSION: u8 = 2;
/// Fixed RTP header length (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;
/// Each CSRC identifier is 32 bits.
const CSRC_LEN: usize = 4;
/// Header extension preamble: profile-defined 16 bits + length in 32-bit words.
const EXTENSION_PREAMBLE_LEN: usize = 4;
/// Extension length is counted in 32-bit words.
const EXTENSION_WORD_LEN: usize = 4;
const VERSION_SHIFT: u8 = 6;
const PADDING_BIT: u8 = 0x20;
const EXTENSION_BIT: u8 = 0x10;
const CSRC_COUNT_MASK: u8 = 0x0F;
const MARKER_BIT: u8 = 0x80;
const PAYLOAD_TYPE_MASK: u8 = 0x7F;
/// RFC 5761 §4: with RTP and RTCP multiplexed on one port, a second byte in this range
/// is an RTCP packet type (SR 200, RR 201, …), not a marker bit plus payload type.
const RTCP_PACKET_TYPES: std::ops::RangeInclusive<u8> = 192..=223;
/// A pause in sending longer than this is treated like an explicit source switch: the
/// timestamp follows the wall clock and the marker is set. Shorter pauses are scheduling
/// hiccups of a busy host and must not open a gap in a continuous prompt.
pub const IMPLICIT_SWITCH_GAP: Duration = Duration::from_millis(200);
const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// What is wrong with an RTP datagram, or why a packet could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("RTP packet too short: {0} bytes, the fixed header needs 12")]
    TooShort(usize),
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    #[error("RTCP packet type {0} on the RTP path")]
    Rtcp(u8),
    #[error("RTP {what} runs past the end of the packet ({need} bytes needed, {len} present)")]
    Truncated {
        what: &'static str,
        need: usize,
        len: usize,
    },
    #[error("RTP padding of {padding} bytes does not fit the {available} bytes after the header")]
    BadPadding { padding: usize, available: usize },
    #[error("output buffer of {have} bytes cannot hold an RTP packet of {need} bytes")]
    BufferTooSmall { need: usize, have: usize },
}

/// The fields of an RTP header the media engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrc_count: u8,
    pub has_extension: bool,
    pub has_padding: bool,
}

/// A validated incoming packet, borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    /// The payload, without CSRCs, extension or padding.
    pub payload: &'a [u8],
    /// Where the payload starts in the datagram.
    pub payload_offset: usize,
}

/// Validates an RTP datagram and splits it into header and payload.
pub fn parse_rtp(buf: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    if buf.len() < RTP_HEADER_LEN {
        return Err(RtpError::TooShort(buf.len()));
    }
    let version = buf[0] >> VERSION_SHIFT;
    if version != RTP_VERSION {
        return Err(RtpError::BadVersion(version));
    }
    if RTCP_PACKET_TYPES.contains(&buf[1]) {
        return Err(RtpError::Rtcp(buf[1]));
    }
    let csrc_count = buf[0] & CSRC_COUNT_MASK;
    let has_extension = buf[0] & EXTENSION_BIT != 0;
    let has_padding = buf[0] & PADDING_BIT != 0;
    let mut offset = RTP_HEADER_LEN + usize::from(csrc_count) * CSRC_LEN;
    if offset > buf.len() {
        return Err(RtpError::Truncated {
            what: "CSRC list",
            need: offset,
            len: buf.len(),
        });
    }
    if has_extension {
        let preamble_end = offset + EXTENSION_PREAMBLE_LEN;
        if preamble_end > buf.len() {
            return Err(RtpError::Truncated {
                what: "header extension",
                need: preamble_end,
                len: buf.len(),
            });
        }
        let words = usize::from(u16::from_be_bytes([buf[offset + 2], buf[offset + 3]]));
        offset = preamble_end + words * EXTENSION_WORD_LEN;
        if offset > buf.len() {
            return Err(RtpError::Truncated {
                what: "header extension",
                need: offset,
                len: buf.len(),
            });
        }
    }
    let mut end = buf.len();
    if has_padding {
        let available = end - offset;
        // The last byte counts itself, so zero is as invalid as too many.
        let padding = buf.last().map_or(0, |&p| usize::from(p));
        if padding == 0 || padding > available {
            return Err(RtpError::BadPadding { padding, available });
        }
        end -= padding;
    }
    Ok(RtpPacket {
        header: RtpHeader {
            marker: buf[1] & MARKER_BIT != 0,
            payload_type: buf[1] & PAYLOAD_TYPE_MASK,
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            csrc_count,
            has_extension,
            has_padding,
        },
        payload: &buf[offset..end],
        payload_offset: offset,
    })
}

/// Writes a 12-byte RTP header (no CSRC, extension or padding) at the start of `out`.
pub fn write_header(
    out: &mut [u8],
    marker: bool,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
) -> Result<(), RtpError> {
    let Some(header) = out.get_mut(..RTP_HEADER_LEN) else {
        return Err(RtpError::BufferTooSmall {
            need: RTP_HEADER_LEN,
            have: out.len(),
        });
    };
    header[0] = RTP_VERSION << VERSION_SHIFT;
    header[1] = (payload_type & PAYLOAD_TYPE_MASK) | if marker { MARKER_BIT } else { 0 };
    header[2..4].copy_from_slice(&sequence.to_be_bytes());
    header[4..8].copy_from_slice(&timestamp.to_be_bytes());
    header[8..12].copy_from_slice(&ssrc.to_be_bytes());
    Ok(())
}

/// Counters of one outgoing stream (what an RTCP sender report needs, plus switches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpSenderStats {
    pub packets: u64,
    /// Payload octets, as RFC 3550 counts them for sender reports.
    pub payload_octets: u64,
    /// Times the timestamp was re-based on the wall clock (explicit or implicit switch).
    pub discontinuities: u64,
}

/// One packet of an RFC 4733 event (or any packet whose timestamp the caller fixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket<'a> {
    pub payload_type: u8,
    pub marker: bool,
    /// The event's start timestamp, from [`RtpSender::event_timestamp`]; the same for
    /// every packet of the event.
    pub timestamp: u32,
    /// How long the event has lasted so far, in samples: audio after the event
    /// continues at `timestamp + duration`.
    pub duration: u32,
    pub payload: &'a [u8],
}

/// Mapping of a forwarded stream onto this one, fixed at the first forwarded packet
/// after a switch so that the source's own timing (gaps, reordering) is preserved.
#[derive(Debug, Clone, Copy)]
struct ForwardMap {
    source_ssrc: u32,
    sequence_offset: u16,
    timestamp_offset: u32,
}

/// An outgoing RTP stream with a stable SSRC across source switches.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    payload_type: u8,
    next_sequence: u16,
    /// Timestamp the next packet gets if the audio continues without a gap.
    next_timestamp: u32,
    /// Timestamp and send time of the latest packet, to measure wall-clock gaps.
    last_timestamp: u32,
    last_sent: Option<Instant>,
    /// Samples per packet of the latest packet: the minimum advance after a switch.
    last_samples: u32,
    switch_pending: bool,
    forward: Option<ForwardMap>,
    stats: RtpSenderStats,
}

impl RtpSender {
    /// A stream with the given identity. RFC 3550 wants `initial_sequence` and
    /// `initial_timestamp` random; [`RtpSender::with_random_start`] does that.
    pub fn new(ssrc: u32, payload_type: u8, initial_sequence: u16, initial_timestamp: u32) -> Self {
        Self {
            ssrc,
            payload_type: payload_type & PAYLOAD_TYPE_MASK,
            next_sequence: initial_sequence,
            next_timestamp: initial_timestamp,
            last_timestamp: initial_timestamp,
            last_sent: None,
            last_samples: FRAME_TIMESTAMP_STEP,
            switch_pending: false,
            forward: None,
            stats: RtpSenderStats::default(),
        }
    }

    /// A stream with random SSRC, initial sequence and timestamp (RFC 3550 §5.1).
    pub fn with_random_start(payload_type: u8) -> Self {
        Self::new(rand::random(), payload_type, rand::random(), rand::random())
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// Sequence number the next packet gets.
    pub fn next_sequence(&self) -> u16 {
        self.next_sequence
    }

    /// Timestamp the next packet gets if no switch or long pause intervenes.
    pub fn next_timestamp(&self) -> u32 {
        self.next_timestamp
    }

    pub fn stats(&self) -> RtpSenderStats {
        self.stats
    }

    /// The audio behind this stream changes (prompt → bridged audio → prompt). The next
    /// packet, generated or forwarded, keeps the SSRC and the sequence, takes a timestamp
    /// advanced by the wall-clock time since the last packet, and carries the marker.
    pub fn switch_source(&mut self) {
        self.switch_pending = true;
        self.forward = None;
    }

    /// Writes one packet of locally generated audio (`samples` long) into `out`;
    /// returns the packet length. On error nothing is consumed.
    pub fn write_packet(
        &mut self,
        payload: &[u8],
        samples: u32,
        now: Instant,
        out: &mut [u8],
    ) -> Result<usize, RtpError> {
        let len = packet_len(payload.len(), out.len())?;
        if self.forward.take().is_some() {
            // Generated audio after forwarded audio without switch_source(): still a
            // change of source for the far end.
            self.switch_pending = true;
        }
        let (timestamp, marker) = self.resolve_timestamp(now);
        write_header(
            out,
            marker,
            self.payload_type,
            self.next_sequence,
            timestamp,
            self.ssrc,
        )?;
        out[RTP_HEADER_LEN..len].copy_from_slice(payload);
        self.commit(timestamp, samples, now, payload.len());
        self.next_sequence = self.next_sequence.wrapping_add(1);
        Ok(len)
    }

    /// The timestamp a telephone event starting now must carry (RFC 4733 §2.3.1: the
    /// start of the event, the same in every packet of it). Resolves a pending switch.
    pub fn event_timestamp(&mut self, now: Instant) -> u32 {
        self.forward = None;
        if self.needs_rebase(now) {
            let timestamp = self.rebased_timestamp(now);
            // The event's first packet will carry the marker anyway (RFC 4733 §2.5.1.2).
            self.switch_pending = false;
            self.stats.discontinuities += 1;
            self.next_timestamp = timestamp;
            self.last_timestamp = timestamp;
            self.last_sent = Some(now);
        }
        self.next_timestamp
    }

    /// Writes one packet of a telephone event (see [`EventPacket`]); returns its length.
    pub fn write_event(
        &mut self,
        event: &EventPacket<'_>,
        now: Instant,
        out: &mut [u8],
    ) -> Result<usize, RtpError> {
        let len = packet_len(event.payload.len(), out.len())?;
        write_header(
            out,
            event.marker,
            event.payload_type,
            self.next_sequence,
            event.timestamp,
            self.ssrc,
        )?;
        out[RTP_HEADER_LEN..len].copy_from_slice(event.payload);
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.last_timestamp = event.timestamp;
        self.next_timestamp = event.timestamp.wrapping_add(event.duration);
        self.last_samples = event.duration.max(1);
        self.last_sent = Some(now);
        self.stats.packets += 1;
        self.stats.payload_octets += event.payload.len() as u64;
        Ok(len)
    }

    /// Re-stamps a packet of the bridged party's stream in place so that it continues
    /// this stream: SSRC replaced, sequence and timestamp shifted by offsets fixed at the
    /// first forwarded packet after a switch (gaps and reordering of the source survive),
    /// marker set on that first packet and kept where the source set it. CSRCs,
    /// extension and payload are left alone. Returns the packet length.
    pub fn forward(&mut self, packet: &mut [u8], now: Instant) -> Result<usize, RtpError> {
        let parsed = parse_rtp(packet)?;
        let (header, payload_len) = (parsed.header, parsed.payload.len() as u64);
        let map = match self.forward {
            Some(map) if map.source_ssrc == header.ssrc => map,
            _ => {
                // First packet of this source (or the source restarted with a new SSRC).
                self.switch_pending = true;
                let (timestamp, _) = self.resolve_timestamp(now);
                let map = ForwardMap {
                    source_ssrc: header.ssrc,
                    sequence_offset: self.next_sequence.wrapping_sub(header.sequence),
                    timestamp_offset: timestamp.wrapping_sub(header.timestamp),
                };
                self.forward = Some(map);
                // resolve_timestamp consumed the pending flag; the marker goes on this packet.
                packet[1] |= MARKER_BIT;
                map
            }
        };
        let sequence = header.sequence.wrapping_add(map.sequence_offset);
        let timestamp = header.timestamp.wrapping_add(map.timestamp_offset);
        packet[2..4].copy_from_slice(&sequence.to_be_bytes());
        packet[4..8].copy_from_slice(&timestamp.to_be_bytes());
        packet[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        // Only move forward: a reordered (older) packet must not pull the continuation
        // point back, or the next switch would reuse sequence numbers.
        if serial_newer_u16(sequence, self.next_sequence.wrapping_sub(1))
            || self.last_sent.is_none()
        {
            self.next_sequence = sequence.wrapping_add(1);
        }
        if serial_newer_u32(timestamp, self.last_timestamp) || timestamp == self.last_timestamp {
            self.commit(timestamp, FRAME_TIMESTAMP_STEP, now, 0);
        } else {
            self.stats.packets += 1;
        }
        self.stats.payload_octets += payload_len;
        Ok(packet.len())
    }

    fn commit(&mut self, timestamp: u32, samples: u32, now: Instant, payload_len: usize) {
        self.last_timestamp = timestamp;
        self.last_samples = samples.max(1);
        self.next_timestamp = timestamp.wrapping_add(samples);
        self.last_sent = Some(now);
        self.stats.packets += 1;
        self.stats.payload_octets += payload_len as u64;
    }

    fn needs_rebase(&self, now: Instant) -> bool {
        match self.last_sent {
            None => false,
            Some(sent) => {
                self.switch_pending || now.saturating_duration_since(sent) > IMPLICIT_SWITCH_GAP
            }
        }
    }

    /// The timestamp for a packet sent at `now`, and whether it starts a new talkspurt.
    fn resolve_timestamp(&mut self, now: Instant) -> (u32, bool) {
        let first = self.last_sent.is_none();
        if first {
            // RFC 3550 §5.1: the first packet of a stream starts a talkspurt.
            self.switch_pending = false;
            return (self.next_timestamp, true);
        }
        if !self.needs_rebase(now) {
            return (self.next_timestamp, false);
        }
        self.switch_pending = false;
        self.stats.discontinuities += 1;
        (self.rebased_timestamp(now), true)
    }

    /// Last timestamp plus the wall-clock time since it was sent, rounded to whole
    /// packets (receivers that place frames by timestamp stay on their grid) and at least
    /// one packet (never overlapping what was already sent).
    fn rebased_timestamp(&self, now: Instant) -> u32 {
        let elapsed = self
            .last_sent
            .map_or(Duration::ZERO, |sent| now.saturating_duration_since(sent));
        let step = u128::from(self.last_samples.max(1));
        let samples = elapsed.as_nanos() * u128::from(SAMPLE_RATE_HZ) / NANOS_PER_SECOND;
        let packets = ((samples + step / 2) / step).max(1);
        // Timestamps wrap modulo 2^32 (RFC 3550); truncating is the intended arithmetic.
        let advance = (packets * step) as u32;
        self.last_timestamp.wrapping_add(advance)
    }
}

fn packet_len(payload_len: usize, have: usize) -> Result<usize, RtpError> {
    let need = RTP_HEADER_LEN + payload_len;
    if need > have {
        Err(RtpError::BufferTooSmall { need, have })
    } else {
        Ok(need)
    }
}

/// `a` is after `b` in RFC 1982 serial-number arithmetic (sequence numbers wrap).
pub fn serial_newer_u16(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

/// `a` is after `b` in RFC 1982 serial-number arithmetic (timestamps wrap).
pub fn serial_newer_u32(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    const PT_PCMU: u8 = 0;
    const FRAME: u32 = 160;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Sends `count` packets of 160 samples every 20 ms from `start`; returns the headers.
    fn send_frames(sender: &mut RtpSender, start: Instant, count: u64) -> Vec<RtpHeader> {
        let payload = [0xFFu8; 160];
        let mut buf = [0u8; 200];
        (0..count)
            .map(|i| {
                let len = sender
                    .write_packet(&payload, FRAME, start + ms(20 * i), &mut buf)
                    .expect("buffer is large enough");
                parse_rtp(&buf[..len]).expect("own packet parses").header
            })
            .collect()
    }

    #[test]
    fn header_layout_is_rfc3550() {
        let mut sender = RtpSender::new(0x1122_3344, PT_PCMU, 0x0506, 0x0708_090A);
        let mut buf = [0u8; 16];
        let len = sender
            .write_packet(&[1, 2, 3, 4], 4, Instant::now(), &mut buf)
            .expect("fits");
        assert_eq!(len, 16);
        assert_eq!(
            buf,
            [0x80, 0x80, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x11, 0x22, 0x33, 0x44, 1, 2, 3, 4],
            "first packet carries the marker"
        );
    }

    #[test]
    fn sequence_and_timestamp_advance_and_wrap() {
        let mut sender = RtpSender::new(7, PT_PCMU, 65_534, u32::MAX - 159);
        let headers = send_frames(&mut sender, Instant::now(), 4);
        let seqs: Vec<u16> = headers.iter().map(|h| h.sequence).collect();
        let tss: Vec<u32> = headers.iter().map(|h| h.timestamp).collect();
        assert_eq!(seqs, [65_534, 65_535, 0, 1]);
        assert_eq!(tss, [u32::MAX - 159, 0, 160, 320]);
        assert!(headers[0].marker);
        assert!(headers[1..].iter().all(|h| !h.marker));
        assert!(headers
            .iter()
            .all(|h| h.ssrc == 7 && h.payload_type == PT_PCMU));
        assert_eq!(sender.stats().packets, 4);
        assert_eq!(sender.stats().payload_octets, 640);
    }

    #[test]
    fn switch_source_keeps_ssrc_and_sequence_and_follows_the_clock() {
        let start = Instant::now();
        let mut sender = RtpSender::new(42, PT_PCMU, 100, 1_000);
        let before = send_frames(&mut sender, start, 3);
        assert_eq!(before[2].timestamp, 1_320);
        sender.switch_source();
        // The new source starts 500 ms after the last packet (sent at +40 ms).
        let after = send_frames(&mut sender, start + ms(540), 3);
        assert_eq!(after[0].sequence, 103, "sequence continues");
        assert_eq!(after[0].ssrc, 42, "SSRC kept");
        assert_eq!(after[0].timestamp, 1_320 + 4_000, "500 ms of wall clock");
        assert!(
            after[0].marker,
            "marker on the first packet after the switch"
        );
        assert!(!after[1].marker && !after[2].marker, "and only there");
        assert_eq!(after[1].timestamp, 1_320 + 4_160);
        assert_eq!(sender.stats().discontinuities, 1);
    }

    #[test]
    fn switch_without_pause_still_advances_one_packet() {
        let start = Instant::now();
        let mut sender = RtpSender::new(1, PT_PCMU, 0, 0);
        send_frames(&mut sender, start, 1);
        sender.switch_source();
        // Sent only 3 ms later: the timestamp must not overlap the previous packet.
        let after = send_frames(&mut sender, start + ms(3), 1);
        assert_eq!(after[0].timestamp, 160);
        assert!(after[0].marker);
    }

    #[test]
    fn gap_rounds_to_whole_packets() {
        let start = Instant::now();
        let mut sender = RtpSender::new(1, PT_PCMU, 0, 0);
        send_frames(&mut sender, start, 1);
        sender.switch_source();
        // 67 ms ≈ 3.35 packets → 3 packets.
        let after = send_frames(&mut sender, start + ms(67), 1);
        assert_eq!(after[0].timestamp, 480);
    }

    #[test]
    fn a_long_pause_is_an_implicit_switch_but_a_hiccup_is_not() {
        let start = Instant::now();
        let mut sender = RtpSender::new(1, PT_PCMU, 0, 0);
        send_frames(&mut sender, start, 1);
        // 100 ms late: scheduling hiccup, audio stays continuous.
        let hiccup = send_frames(&mut sender, start + ms(100), 1);
        assert_eq!(hiccup[0].timestamp, 160);
        assert!(!hiccup[0].marker);
        // 1 s pause: the far end must see the gap.
        let resumed = send_frames(&mut sender, start + ms(1_100), 1);
        assert_eq!(resumed[0].timestamp, 160 + 8_000);
        assert!(resumed[0].marker);
        assert_eq!(resumed[0].sequence, 2);
    }

    fn incoming(ssrc: u32, seq: u16, ts: u32, marker: bool) -> Vec<u8> {
        let mut packet = vec![0u8; RTP_HEADER_LEN + 160];
        write_header(&mut packet, marker, PT_PCMU, seq, ts, ssrc).expect("fits");
        packet
    }

    #[test]
    fn forwarded_audio_continues_the_stream_and_back() {
        let start = Instant::now();
        let mut sender = RtpSender::new(0xAAAA, PT_PCMU, 10, 5_000);
        let prompt = send_frames(&mut sender, start, 2); // seq 10, 11; ts 5000, 5160
        assert_eq!(prompt[1].sequence, 11);
        sender.switch_source();

        // The bridged party's stream, 100 ms after the prompt's last packet.
        let mut p1 = incoming(0xBBBB, 60_000, 900_000, false);
        sender.forward(&mut p1, start + ms(120)).expect("valid");
        let h1 = parse_rtp(&p1).expect("valid").header;
        assert_eq!(
            (h1.ssrc, h1.sequence, h1.timestamp),
            (0xAAAA, 12, 5_160 + 800)
        );
        assert!(h1.marker);

        // A lost packet (60_001) stays visible as a sequence gap; timing is the source's.
        let mut p3 = incoming(0xBBBB, 60_002, 900_320, false);
        sender.forward(&mut p3, start + ms(160)).expect("valid");
        let h3 = parse_rtp(&p3).expect("valid").header;
        assert_eq!(
            (h3.sequence, h3.timestamp, h3.marker),
            (14, 5_960 + 320, false)
        );

        // A late, reordered packet maps consistently and does not rewind the stream.
        let mut p2 = incoming(0xBBBB, 60_001, 900_160, false);
        sender.forward(&mut p2, start + ms(165)).expect("valid");
        let h2 = parse_rtp(&p2).expect("valid").header;
        assert_eq!((h2.sequence, h2.timestamp), (13, 6_120));

        // The source's own talkspurt marker survives.
        let mut p4 = incoming(0xBBBB, 60_003, 901_000, true);
        sender.forward(&mut p4, start + ms(180)).expect("valid");
        assert!(parse_rtp(&p4).expect("valid").header.marker);

        // Back to a prompt 40 ms later: continuous sequence, clock-based timestamp, marker.
        sender.switch_source();
        let back = send_frames(&mut sender, start + ms(220), 1);
        assert_eq!(back[0].sequence, 16);
        assert_eq!(back[0].timestamp, 5_960 + 1_000 + 320);
        assert!(back[0].marker);
        assert_eq!(back[0].ssrc, 0xAAAA);
    }

    #[test]
    fn a_new_source_ssrc_is_a_switch_by_itself() {
        let start = Instant::now();
        let mut sender = RtpSender::new(1, PT_PCMU, 0, 0);
        let mut a = incoming(5, 100, 1_000, false);
        sender.forward(&mut a, start).expect("valid");
        let mut b = incoming(6, 7, 77, false);
        sender.forward(&mut b, start + ms(300)).expect("valid");
        let h = parse_rtp(&b).expect("valid").header;
        assert_eq!(h.sequence, 1);
        assert_eq!(h.timestamp, 2_400, "300 ms after the first packet at ts 0");
        assert!(h.marker);
    }

    #[test]
    fn forwarding_a_bad_packet_is_an_error() {
        let mut sender = RtpSender::new(1, PT_PCMU, 0, 0);
        let mut junk = vec![0u8; 5];
        assert_eq!(
            sender.forward(&mut junk, Instant::now()),
            Err(RtpError::TooShort(5))
        );
        assert_eq!(sender.stats().packets, 0);
    }

    #[test]
    fn event_packets_share_a_timestamp_and_audio_resumes_after_them() {
        let start = Instant::now();
        let mut sender = RtpSender::new(9, PT_PCMU, 0, 0);
        send_frames(&mut sender, start, 2); // ts 0, 160
        let ts = sender.event_timestamp(start + ms(40));
        assert_eq!(ts, 320);
        let mut buf = [0u8; 32];
        for (i, duration) in [160u32, 400, 800].into_iter().enumerate() {
            let event = EventPacket {
                payload_type: 101,
                marker: i == 0,
                timestamp: ts,
                duration,
                payload: &[5, 0x0A, 0, 0],
            };
            let len = sender
                .write_event(&event, start + ms(40 + 50 * i as u64), &mut buf)
                .expect("fits");
            let h = parse_rtp(&buf[..len]).expect("valid").header;
            assert_eq!(
                (h.timestamp, h.sequence, h.payload_type),
                (320, 2 + i as u16, 101)
            );
            assert_eq!(h.marker, i == 0);
        }
        let audio = send_frames(&mut sender, start + ms(160), 1);
        assert_eq!(audio[0].timestamp, 320 + 800);
        assert_eq!(audio[0].sequence, 5);
    }

    #[test]
    fn too_small_buffer_is_an_error_and_consumes_nothing() {
        let mut sender = RtpSender::new(1, PT_PCMU, 3, 0);
        let mut small = [0u8; 20];
        assert_eq!(
            sender.write_packet(&[0; 160], 160, Instant::now(), &mut small),
            Err(RtpError::BufferTooSmall {
                need: 172,
                have: 20
            })
        );
        assert_eq!(sender.next_sequence(), 3);
        assert!(write_header(&mut small[..4], false, 0, 0, 0, 0).is_err());
    }

    #[test]
    fn random_start_differs() {
        let a = RtpSender::with_random_start(PT_PCMU);
        let b = RtpSender::with_random_start(PT_PCMU);
        // 2^-64 chance of a false failure.
        assert!(a.ssrc() != b.ssrc() || a.next_timestamp() != b.next_timestamp());
        assert_eq!(a.payload_type(), PT_PCMU);
    }

    #[test]
    fn parses_csrc_extension_and_padding() {
        let mut packet = vec![0u8; RTP_HEADER_LEN];
        write_header(&mut packet, true, 8, 0x1234, 0xDEAD_BEEF, 0xCAFE_BABE).expect("fits");
        packet[0] |= PADDING_BIT | EXTENSION_BIT | 2; // 2 CSRCs
        packet.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]); // CSRCs
        packet.extend_from_slice(&[0xBE, 0xDE, 0, 1, 9, 9, 9, 9]); // one-word extension
        packet.extend_from_slice(&[0xD5, 0xD5, 0xD5]); // payload
        packet.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding
        let parsed = parse_rtp(&packet).expect("valid");
        assert_eq!(parsed.payload, &[0xD5, 0xD5, 0xD5]);
        assert_eq!(parsed.payload_offset, 28);
        let h = parsed.header;
        assert!(h.marker && h.has_padding && h.has_extension);
        assert_eq!(
            (
                h.payload_type,
                h.sequence,
                h.timestamp,
                h.ssrc,
                h.csrc_count
            ),
            (8, 0x1234, 0xDEAD_BEEF, 0xCAFE_BABE, 2)
        );
    }

    #[test]
    fn malformed_packets_are_errors_not_panics() {
        let mut good = vec![0u8; RTP_HEADER_LEN];
        write_header(&mut good, false, 0, 1, 2, 3).expect("fits");
        assert!(parse_rtp(&good).is_ok(), "empty payload is legal");

        assert_eq!(parse_rtp(&good[..11]), Err(RtpError::TooShort(11)));
        assert_eq!(parse_rtp(&[]), Err(RtpError::TooShort(0)));

        let mut v1 = good.clone();
        v1[0] = 0x40;
        assert_eq!(parse_rtp(&v1), Err(RtpError::BadVersion(1)));

        let mut rtcp = good.clone();
        rtcp[1] = 200;
        assert_eq!(parse_rtp(&rtcp), Err(RtpError::Rtcp(200)));

        let mut csrc = good.clone();
        csrc[0] |= 3;
        assert!(matches!(
            parse_rtp(&csrc),
            Err(RtpError::Truncated {
                what: "CSRC list",
                need: 24,
                len: 12
            })
        ));

        let mut ext = good.clone();
        ext[0] |= EXTENSION_BIT;
        assert!(matches!(parse_rtp(&ext), Err(RtpError::Truncated { .. })));
        ext.extend_from_slice(&[0, 0, 0, 5]); // claims 5 words, has none
        assert!(matches!(
            parse_rtp(&ext),
            Err(RtpError::Truncated { need: 36, .. })
        ));

        let mut pad0 = good.clone();
        pad0[0] |= PADDING_BIT;
        pad0.push(0);
        assert_eq!(
            parse_rtp(&pad0),
            Err(RtpError::BadPadding {
                padding: 0,
                available: 1
            })
        );
        let mut pad_big = good.clone();
        pad_big[0] |= PADDING_BIT;
        pad_big.extend_from_slice(&[1, 9]);
        assert_eq!(
            parse_rtp(&pad_big),
            Err(RtpError::BadPadding {
                padding: 9,
                available: 2
            })
        );
        // Padding with no room at all after the header.
        let mut pad_none = good;
        pad_none[0] |= PADDING_BIT;
        assert!(parse_rtp(&pad_none).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every length up to 64 with pseudo-random bytes.
        let mut state = 0x1234_5678u32;
        for len in 0..64 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 17;
                        state ^= state << 5;
                        (state >> 24) as u8
                    })
                    .collect();
                let _ = parse_rtp(&bytes);
            }
        }
    }

    #[test]
    fn serial_arithmetic() {
        assert!(serial_newer_u16(1, 0));
        assert!(serial_newer_u16(0, 65_535));
        assert!(!serial_newer_u16(65_535, 0));
        assert!(!serial_newer_u16(5, 5));
        assert!(serial_newer_u32(0, u32::MAX));
        assert!(!serial_newer_u32(u32::MAX, 0));
    }
}
