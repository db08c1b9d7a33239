//! ITU-T G.711 µ-law and A-law companding.
//!
//! Decoding goes through two 256-entry tables built at compile time (one indexed load per
//! sample). Encoding is computed: the segment is the position of the highest set bit,
//! found with one `leading_zeros` instruction, so no 64 KiB table has to stay in cache
//! next to the mixer and the jitter buffers. Both follow the reference algorithm of the
//! ITU's G.191 software tools (the classic Sun `g711.c`) on 16-bit input, so the codes
//! match what phones and gateways produce bit for bit.

use super::frame::{Frame, FRAME_SAMPLES};

/// RTP static payload type of PCMU (RFC 3551 table 4).
pub const PAYLOAD_TYPE_PCMU: u8 = 0;
/// RTP static payload type of PCMA (RFC 3551 table 4).
pub const PAYLOAD_TYPE_PCMA: u8 = 8;

/// µ-law bias added before the segment search (33 in 14-bit units, ×4 for 16-bit input).
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude µ-law can represent once the bias is added without overflowing 15 bits.
const ULAW_CLIP: i32 = 32_635;
/// µ-law inverts all bits on the wire (so that silence is not a run of zeros on T1 lines).
const ULAW_INVERT: u8 = 0xFF;
/// Sign bit of a (non-inverted) companded byte.
const SIGN_BIT: u8 = 0x80;
/// Mantissa (quantisation step within a segment) of a companded byte.
const MANTISSA_MASK: u8 = 0x0F;
/// Segment (exponent) bits of a companded byte.
const SEGMENT_MASK: u8 = 0x70;
const SEGMENT_SHIFT: u32 = 4;
/// A-law inverts the even bits on the wire; positive samples also carry the sign bit.
const ALAW_EVEN_BITS: u8 = 0x55;
const ALAW_POSITIVE_MASK: u8 = 0xD5;
/// A-law quantises 13-bit magnitudes: drop the 3 low bits of 16-bit input.
const ALAW_INPUT_SHIFT: u32 = 3;
/// A-law segment 0 and 1 share one step size; segments ≥ 2 double it each time.
const ALAW_FIRST_LOG_SEGMENT: u32 = 2;
/// Magnitudes below this (13-bit) land in A-law segment 0.
const ALAW_SEGMENT0_LIMIT: i32 = 32;
/// µ-law segments are counted from bit 7 of the biased magnitude.
const ULAW_SEGMENT_BASE_BIT: u32 = 7;
/// Mantissa of µ-law is taken 3 bits above the segment's lowest bit.
const ULAW_MANTISSA_SHIFT: u32 = 3;
/// A-law segments are counted from bit 4 of the 13-bit magnitude.
const ALAW_SEGMENT_BASE_BIT: u32 = 4;

/// Companded silence: what an encoder makes of 0.
pub const ULAW_SILENCE: u8 = 0xFF;
/// Companded silence: what an encoder makes of 0.
pub const ALAW_SILENCE: u8 = 0xD5;

/// Errors of the slice helpers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum G711Error {
    #[error("G.711: output holds {output} samples but the input has {input}")]
    LengthMismatch { input: usize, output: usize },
    #[error("payload type {0} is not G.711 (PCMU is 0, PCMA is 8)")]
    NotG711(u8),
}

/// Which G.711 companding law a stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law (PCMU), North America and Japan.
    Ulaw,
    /// A-law (PCMA), Europe, China and most of the rest of the world.
    Alaw,
}

impl Law {
    /// The law of a static RTP payload type.
    pub fn from_payload_type(pt: u8) -> Result<Law, G711Error> {
        match pt {
            PAYLOAD_TYPE_PCMU => Ok(Law::Ulaw),
            PAYLOAD_TYPE_PCMA => Ok(Law::Alaw),
            other => Err(G711Error::NotG711(other)),
        }
    }

    /// The static RTP payload type of this law.
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Ulaw => PAYLOAD_TYPE_PCMU,
            Law::Alaw => PAYLOAD_TYPE_PCMA,
        }
    }

    /// The code an encoder produces for silence, for filling gaps without encoding.
    pub fn silence(self) -> u8 {
        match self {
            Law::Ulaw => ULAW_SILENCE,
            Law::Alaw => ALAW_SILENCE,
        }
    }

    #[inline]
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Ulaw => ulaw_encode(sample),
            Law::Alaw => alaw_encode(sample),
        }
    }

    #[inline]
    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::Ulaw => ulaw_decode(code),
            Law::Alaw => alaw_decode(code),
        }
    }

    /// Encodes `pcm` into `out`; both must have the same length.
    pub fn encode_slice(self, pcm: &[i16], out: &mut [u8]) -> Result<(), G711Error> {
        match self {
            Law::Ulaw => ulaw_encode_slice(pcm, out),
            Law::Alaw => alaw_encode_slice(pcm, out),
        }
    }

    /// Decodes `codes` into `out`; both must have the same length.
    pub fn decode_slice(self, codes: &[u8], out: &mut [i16]) -> Result<(), G711Error> {
        match self {
            Law::Ulaw => ulaw_decode_slice(codes, out),
            Law::Alaw => alaw_decode_slice(codes, out),
        }
    }

    /// Encodes one 20 ms frame (the payload of one RTP packet).
    pub fn encode_frame(self, frame: &Frame, out: &mut [u8; FRAME_SAMPLES]) {
        match self {
            Law::Ulaw => out
                .iter_mut()
                .zip(frame)
                .for_each(|(o, &s)| *o = ulaw_encode(s)),
            Law::Alaw => out
                .iter_mut()
                .zip(frame)
                .for_each(|(o, &s)| *o = alaw_encode(s)),
        }
    }

    /// Decodes one 20 ms frame.
    pub fn decode_frame(self, codes: &[u8; FRAME_SAMPLES], out: &mut Frame) {
        let table = match self {
            Law::Ulaw => &ULAW_DECODE,
            Law::Alaw => &ALAW_DECODE,
        };
        out.iter_mut()
            .zip(codes)
            .for_each(|(o, &c)| *o = table[usize::from(c)]);
    }
}

/// Encodes one sample to µ-law.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    // One's complement for negatives, as the G.191 reference coder does: it keeps
    // -32768 in range and makes the codes match other implementations bit for bit.
    let (magnitude, mask) = if sample < 0 {
        (i32::from(!sample), ULAW_INVERT & !SIGN_BIT)
    } else {
        (i32::from(sample), ULAW_INVERT)
    };
    let biased = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    // biased >> 7 is in 1..=255, so the segment (its highest bit) is 0..=7.
    let segment = highest_bit((biased >> ULAW_SEGMENT_BASE_BIT) as u32);
    let mantissa = (biased >> (segment + ULAW_MANTISSA_SHIFT)) as u8 & MANTISSA_MASK;
    (((segment as u8) << SEGMENT_SHIFT) | mantissa) ^ mask
}

/// Encodes one sample to A-law.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    // One's complement for negatives: A-law is symmetric around -0.5, so -1 maps to
    // the same magnitude as 0 (the reference coder does `-x - 1`).
    let (magnitude, mask) = if sample < 0 {
        (i32::from(!sample), ALAW_EVEN_BITS)
    } else {
        (i32::from(sample), ALAW_POSITIVE_MASK)
    };
    let m13 = magnitude >> ALAW_INPUT_SHIFT;
    let code = if m13 < ALAW_SEGMENT0_LIMIT {
        (m13 >> 1) as u8
    } else {
        // m13 is in 32..=4095: highest bit 5..=11 gives segment 1..=7.
        let segment = highest_bit(m13 as u32) - ALAW_SEGMENT_BASE_BIT;
        let shift = segment.max(ALAW_FIRST_LOG_SEGMENT - 1);
        ((segment as u8) << SEGMENT_SHIFT) | ((m13 >> shift) as u8 & MANTISSA_MASK)
    };
    code ^ mask
}

/// Decodes one µ-law code.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[usize::from(code)]
}

/// Decodes one A-law code.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[usize::from(code)]
}

/// Index of the highest set bit; `value` must be non-zero.
#[inline]
fn highest_bit(value: u32) -> u32 {
    u32::BITS - 1 - value.leading_zeros()
}

fn check_lengths(input: usize, output: usize) -> Result<(), G711Error> {
    if input == output {
        Ok(())
    } else {
        Err(G711Error::LengthMismatch { input, output })
    }
}

pub fn ulaw_encode_slice(pcm: &[i16], out: &mut [u8]) -> Result<(), G711Error> {
    check_lengths(pcm.len(), out.len())?;
    out.iter_mut()
        .zip(pcm)
        .for_each(|(o, &s)| *o = ulaw_encode(s));
    Ok(())
}

pub fn alaw_encode_slice(pcm: &[i16], out: &mut [u8]) -> Result<(), G711Error> {
    check_lengths(pcm.len(), out.len())?;
    out.iter_mut()
        .zip(pcm)
        .for_each(|(o, &s)| *o = alaw_encode(s));
    Ok(())
}

pub fn ulaw_decode_slice(codes: &[u8], out: &mut [i16]) -> Result<(), G711Error> {
    check_lengths(codes.len(), out.len())?;
    out.iter_mut()
        .zip(codes)
        .for_each(|(o, &c)| *o = ULAW_DECODE[usize::from(c)]);
    Ok(())
}

pub fn alaw_decode_slice(codes: &[u8], out: &mut [i16]) -> Result<(), G711Error> {
    check_lengths(codes.len(), out.len())?;
    out.iter_mut()
        .zip(codes)
        .for_each(|(o, &c)| *o = ALAW_DECODE[usize::from(c)]);
    Ok(())
}

const fn ulaw_decode_compute(code: u8) -> i16 {
    let u = !code;
    let mut t = (((u & MANTISSA_MASK) as i32) << ULAW_MANTISSA_SHIFT) + ULAW_BIAS;
    t <<= ((u & SEGMENT_MASK) >> SEGMENT_SHIFT) as u32;
    if u & SIGN_BIT != 0 {
        (ULAW_BIAS - t) as i16
    } else {
        (t - ULAW_BIAS) as i16
    }
}

/// Half a segment-0 step: A-law reconstructs at the middle of each quantisation interval.
const ALAW_HALF_STEP: i32 = 0x08;
/// The implicit leading one of segments ≥ 1, plus the half step.
const ALAW_SEGMENT_OFFSET: i32 = 0x108;

const fn alaw_decode_compute(code: u8) -> i16 {
    let a = code ^ ALAW_EVEN_BITS;
    let mut t = ((a & MANTISSA_MASK) as i32) << 4;
    let segment = ((a & SEGMENT_MASK) >> SEGMENT_SHIFT) as u32;
    match segment {
        0 => t += ALAW_HALF_STEP,
        1 => t += ALAW_SEGMENT_OFFSET,
        _ => {
            t += ALAW_SEGMENT_OFFSET;
            t <<= segment - 1;
        }
    }
    if a & SIGN_BIT != 0 {
        t as i16
    } else {
        -t as i16
    }
}

const fn build_table(law_is_ulaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if law_is_ulaw {
            ulaw_decode_compute(i as u8)
        } else {
            alaw_decode_compute(i as u8)
        };
        i += 1;
    }
    table
}

/// µ-law code → linear sample.
pub static ULAW_DECODE: [i16; 256] = build_table(true);
/// A-law code → linear sample.
pub static ALAW_DECODE: [i16; 256] = build_table(false);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_encodes_to_the_standard_codes() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(Law::Ulaw.silence(), 0xFF);
        assert_eq!(Law::Alaw.silence(), 0xD5);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(alaw_decode(0xD5), 8);
    }

    #[test]
    fn full_scale_codes() {
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(ulaw_decode(0x80), 32_124);
        assert_eq!(ulaw_decode(0x00), -32_124);
        assert_eq!(alaw_decode(0xAA), 32_256);
        assert_eq!(alaw_decode(0x2A), -32_256);
    }

    #[test]
    fn known_vectors_from_the_reference_coder() {
        // (linear, µ-law, A-law) as the G.191 reference coder produces them.
        let cases: &[(i16, u8, u8)] = &[
            (-1, 0x7F, 0x55),
            (1, 0xFF, 0xD5),
            (100, 0xF2, 0xD3),
            (-100, 0x73, 0x53),
            (1000, 0xCE, 0xFA),
            (-1000, 0x4E, 0x7A),
            (8000, 0xA0, 0x8A),
            (-8000, 0x20, 0x0A),
        ];
        for &(pcm, mu, a) in cases {
            assert_eq!(ulaw_encode(pcm), mu, "µ-law of {pcm}");
            assert_eq!(alaw_encode(pcm), a, "A-law of {pcm}");
        }
    }

    /// A literal port of the G.191 `ulaw_compress` / `alaw_compress` loops, as an
    /// independent check of the bit-twiddling encoders.
    fn g191_ulaw(x: i16) -> u8 {
        let x = i32::from(x);
        let mut absno = if x < 0 {
            ((!x) >> 2) + 33
        } else {
            (x >> 2) + 33
        };
        absno = absno.min(0x1FFF);
        let mut i = absno >> 6;
        let mut segno = 1;
        while i != 0 {
            segno += 1;
            i >>= 1;
        }
        let high = 0x8 - segno;
        let low = 0xF - ((absno >> segno) & 0xF);
        let mut out = (high << 4) | low;
        if x >= 0 {
            out |= 0x80;
        }
        out as u8
    }

    fn g191_alaw(x: i16) -> u8 {
        let x = i32::from(x);
        let mut ix = if x < 0 { (!x) >> 4 } else { x >> 4 };
        if ix > 15 {
            let mut iexp = 1;
            while ix > 16 + 15 {
                ix >>= 1;
                iexp += 1;
            }
            ix -= 16;
            ix += iexp << 4;
        }
        if x >= 0 {
            ix |= 0x80;
        }
        (ix ^ 0x55) as u8
    }

    #[test]
    fn decode_vectors() {
        let mu: &[(u8, i16)] = &[
            (0x00, -32_124),
            (0x0F, -16_764),
            (0x31, -3_772),
            (0x7E, -8),
            (0x7F, 0),
            (0xCE, 988),
            (0xF2, 104),
            (0xFE, 8),
        ];
        for &(code, pcm) in mu {
            assert_eq!(ulaw_decode(code), pcm, "µ-law {code:#04x}");
        }
        let a: &[(u8, i16)] = &[
            (0x00, -5_504),
            (0x0A, -8_064),
            (0x55, -8),
            (0x7A, -1_008),
            (0x8A, 8_064),
            (0xD3, 104),
            (0xFA, 1_008),
        ];
        for &(code, pcm) in a {
            assert_eq!(alaw_decode(code), pcm, "A-law {code:#04x}");
        }
    }

    #[test]
    fn encoders_match_the_reference_for_every_input() {
        for x in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode(x), g191_ulaw(x), "µ-law of {x}");
            assert_eq!(alaw_encode(x), g191_alaw(x), "A-law of {x}");
        }
    }

    #[test]
    fn decode_then_encode_is_identity_for_every_code() {
        for code in 0..=255u8 {
            // µ-law has two zeros (0x7F and 0xFF); both decode to 0 and 0 encodes to 0xFF.
            if code != 0x7F {
                assert_eq!(ulaw_encode(ulaw_decode(code)), code, "µ-law {code:#04x}");
            }
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#04x}");
        }
    }

    #[test]
    fn decode_tables_are_odd_symmetric_and_monotonic() {
        for code in 0..128u8 {
            assert_eq!(ulaw_decode(code), -ulaw_decode(code | 0x80));
            assert_eq!(alaw_decode(code ^ 0x80), -alaw_decode(code));
        }
        let mut previous = i32::MIN;
        for x in (i16::MIN..=i16::MAX).step_by(7) {
            let y = i32::from(ulaw_decode(ulaw_encode(x)));
            assert!(y >= previous, "µ-law not monotonic at {x}");
            previous = y;
        }
        previous = i32::MIN;
        for x in (i16::MIN..=i16::MAX).step_by(7) {
            let y = i32::from(alaw_decode(alaw_encode(x)));
            assert!(y >= previous, "A-law not monotonic at {x}");
            previous = y;
        }
    }

    #[test]
    fn round_trip_error_is_within_half_a_step() {
        // The quantisation step doubles with each segment; the reconstruction sits in
        // the middle of the step, so the error is at most half a step (plus clipping).
        for x in i16::MIN..=i16::MAX {
            let xi = i32::from(x);
            let mu = i32::from(ulaw_decode(ulaw_encode(x)));
            let magnitude = xi.unsigned_abs().min(ULAW_CLIP as u32) as i32;
            let mu_step = 8 << highest_bit(((magnitude + ULAW_BIAS) >> 7) as u32);
            let clipped = xi.clamp(-ULAW_CLIP, ULAW_CLIP);
            assert!(
                (mu - clipped).abs() <= mu_step / 2 + 1,
                "µ-law {x} -> {mu} (step {mu_step})"
            );

            let a = i32::from(alaw_decode(alaw_encode(x)));
            let m = if x < 0 { i32::from(!x) } else { xi };
            let a_step = if m < 512 {
                16
            } else {
                16 << (highest_bit(m as u32) - 8)
            };
            assert!(
                (a - xi).abs() <= a_step / 2 + 1 || m > 32_256 - a_step,
                "A-law {x} -> {a} (step {a_step})"
            );
        }
    }

    #[test]
    fn relative_error_of_speech_levels_is_small() {
        // Above the first few segments G.711 keeps a roughly constant ~3 % relative error
        // (its ~38 dB SNR), which is why it is used for voice.
        for x in [300i16, 1_234, 5_000, 12_345, 30_000] {
            for law in [Law::Ulaw, Law::Alaw] {
                let y = law.decode(law.encode(x));
                let err = (f64::from(y) - f64::from(x)).abs() / f64::from(x);
                assert!(err < 0.035, "{law:?} {x} -> {y}");
            }
        }
    }

    #[test]
    fn slice_helpers_check_lengths() {
        let pcm = [0i16, 1000, -1000];
        let mut codes = [0u8; 3];
        ulaw_encode_slice(&pcm, &mut codes).expect("same length");
        assert_eq!(codes, [0xFF, 0xCE, 0x4E]);
        let mut back = [0i16; 3];
        ulaw_decode_slice(&codes, &mut back).expect("same length");
        assert_eq!(back[0], 0);
        let mut short = [0u8; 2];
        assert_eq!(
            alaw_encode_slice(&pcm, &mut short),
            Err(G711Error::LengthMismatch {
                input: 3,
                output: 2
            })
        );
        let mut short_pcm = [0i16; 2];
        assert!(Law::Alaw.decode_slice(&codes, &mut short_pcm).is_err());
        assert!(Law::Ulaw.encode_slice(&pcm, &mut codes).is_ok());
    }

    #[test]
    fn frame_helpers_match_sample_functions() {
        let mut frame = [0i16; FRAME_SAMPLES];
        for (i, s) in frame.iter_mut().enumerate() {
            *s = ((i as i32 * 409) - 32_000) as i16;
        }
        for law in [Law::Ulaw, Law::Alaw] {
            let mut codes = [0u8; FRAME_SAMPLES];
            law.encode_frame(&frame, &mut codes);
            let mut back = [0i16; FRAME_SAMPLES];
            law.decode_frame(&codes, &mut back);
            for i in 0..FRAME_SAMPLES {
                assert_eq!(codes[i], law.encode(frame[i]));
                assert_eq!(back[i], law.decode(codes[i]));
            }
        }
    }

    #[test]
    fn payload_types() {
        assert_eq!(Law::from_payload_type(0), Ok(Law::Ulaw));
        assert_eq!(Law::from_payload_type(8), Ok(Law::Alaw));
        assert_eq!(Law::from_payload_type(18), Err(G711Error::NotG711(18)));
        assert_eq!(Law::Ulaw.payload_type(), 0);
        assert_eq!(Law::Alaw.payload_type(), 8);
    }
}
