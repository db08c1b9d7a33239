//! Call-progress tones, beeps and DTMF digits, generated 20 ms at a time.
//!
//! Each frequency is a rotating phasor (one complex multiply per sample, renormalised
//! once per frame) rather than a `sin()` per sample: a thousand ringback streams cost
//! next to nothing, and the phase runs on across frames so there is no discontinuity at
//! frame boundaries. Every burst of a cadence is ramped in and out over 5 ms so the
//! on/off switching does not click.
//!
//! # Which tones
//! The default [`RINGBACK`] and [`BUSY`] are the Chinese national tones (450 Hz; ringback
//! 1 s on / 4 s off, busy 0.35 s / 0.35 s, per ITU-T E.180 Suppl. 2), because the CTI API
//! this switch implements comes from, and is deployed in, that market. The European
//! (425 Hz, ETSI) and North American (precise tone plan) sets are here too, for sites
//! that configure them.

use super::dtmf::{COL_HZ, ROW_HZ};
use super::frame::{ms_to_samples, Frame, FRAME_SAMPLES, SAMPLE_RATE_HZ};

/// Amplitude of a 0 dBm0 sine in 16-bit linear PCM (G.711's digital milliwatt is 3.14
/// to 3.17 dB below full scale).
pub const DBM0_AMPLITUDE: f32 = 22_786.0;
/// Ramp at each burst's start and end: 5 ms removes the click and is too short to hear.
const RAMP_SAMPLES: u32 = 40;
/// Longest cadence a generator holds (the UK's double ring has two on/off pairs).
pub const MAX_CADENCE: usize = 4;

/// One on/off step of a cadence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub on_ms: u32,
    pub off_ms: u32,
}

/// A tone: one or two frequencies at a level, with a cadence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneSpec {
    /// Second frequency 0 for a single tone.
    pub freqs_hz: [f32; 2],
    /// Level of each frequency.
    pub level_dbm0: f32,
    /// Empty: continuous.
    pub cadence: &'static [Segment],
    /// Run the cadence forever (ringback, busy) or once (a beep).
    pub repeat: bool,
}

const fn seg(on_ms: u32, off_ms: u32) -> Segment {
    Segment { on_ms, off_ms }
}

/// China: 450 Hz, 1 s on, 4 s off.
pub const RINGBACK_CN: ToneSpec = ToneSpec {
    freqs_hz: [450.0, 0.0],
    level_dbm0: -10.0,
    cadence: &[seg(1_000, 4_000)],
    repeat: true,
};
/// China: 450 Hz, 0.35 s on, 0.35 s off.
pub const BUSY_CN: ToneSpec = ToneSpec {
    freqs_hz: [450.0, 0.0],
    level_dbm0: -10.0,
    cadence: &[seg(350, 350)],
    repeat: true,
};
/// Europe (ETSI TR 101 041): 425 Hz, 1 s on, 4 s off.
pub const RINGBACK_EU: ToneSpec = ToneSpec {
    freqs_hz: [425.0, 0.0],
    level_dbm0: -10.0,
    cadence: &[seg(1_000, 4_000)],
    repeat: true,
};
/// Europe: 425 Hz, 0.5 s on, 0.5 s off.
pub const BUSY_EU: ToneSpec = ToneSpec {
    freqs_hz: [425.0, 0.0],
    level_dbm0: -10.0,
    cadence: &[seg(500, 500)],
    repeat: true,
};
/// North America: 440 + 480 Hz, 2 s on, 4 s off.
pub const RINGBACK_US: ToneSpec = ToneSpec {
    freqs_hz: [440.0, 480.0],
    level_dbm0: -19.0,
    cadence: &[seg(2_000, 4_000)],
    repeat: true,
};
/// North America: 480 + 620 Hz, 0.5 s on, 0.5 s off.
pub const BUSY_US: ToneSpec = ToneSpec {
    freqs_hz: [480.0, 620.0],
    level_dbm0: -24.0,
    cadence: &[seg(500, 500)],
    repeat: true,
};
/// The default ringback (see the module docs for why China's).
pub const RINGBACK: ToneSpec = RINGBACK_CN;
/// The default busy tone.
pub const BUSY: ToneSpec = BUSY_CN;
/// A single 1 kHz beep of 250 ms (before recording, before voicemail).
pub const BEEP: ToneSpec = ToneSpec {
    freqs_hz: [1_000.0, 0.0],
    level_dbm0: -10.0,
    cadence: &[seg(250, 0)],
    repeat: false,
};
/// Level of each tone of a generated DTMF digit (within Q.23's -10 ± 2 dBm0 range for
/// the low group; both groups equal, i.e. no twist).
pub const DTMF_LEVEL_DBM0: f32 = -7.0;

/// Errors of the tone module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToneError {
    #[error("{0:?} is not a DTMF key (0-9, *, #, A-D)")]
    NotADigit(char),
    #[error("a cadence needs 1 to {MAX_CADENCE} segments, got {0}")]
    BadCadence(usize),
}

/// A sine oscillator as a rotating unit phasor.
#[derive(Debug, Clone, Copy)]
struct Oscillator {
    re: f32,
    im: f32,
    rot_re: f32,
    rot_im: f32,
}

impl Oscillator {
    fn new(freq_hz: f32) -> Self {
        let w = 2.0 * std::f64::consts::PI * f64::from(freq_hz) / f64::from(SAMPLE_RATE_HZ);
        Self {
            re: 1.0,
            im: 0.0,
            rot_re: w.cos() as f32,
            rot_im: w.sin() as f32,
        }
    }

    #[inline]
    fn step(&mut self) -> f32 {
        let out = self.im;
        let re = self.re * self.rot_re - self.im * self.rot_im;
        self.im = self.re * self.rot_im + self.im * self.rot_re;
        self.re = re;
        out
    }

    /// Rounding makes the phasor's length drift; pull it back to 1 once per frame.
    fn renormalise(&mut self) {
        let norm = (self.re * self.re + self.im * self.im).sqrt();
        if norm > 0.0 {
            self.re /= norm;
            self.im /= norm;
        }
    }

    fn reset(&mut self) {
        self.re = 1.0;
        self.im = 0.0;
    }
}

/// Generates a [`ToneSpec`] (or a DTMF digit) frame by frame.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    oscillators: [Oscillator; 2],
    voices: usize,
    amplitude: f32,
    cadence: [(u32, u32); MAX_CADENCE],
    cadence_len: usize,
    repeat: bool,
    /// Position: cadence step and sample within it.
    step: usize,
    position: u32,
    finished: bool,
}

impl ToneGenerator {
    /// A generator for `spec`. A cadence longer than [`MAX_CADENCE`] (none of the
    /// built-in ones is) is cut to its first steps.
    pub fn new(spec: &ToneSpec) -> Self {
        let cadence = &spec.cadence[..spec.cadence.len().min(MAX_CADENCE)];
        Self::build(spec.freqs_hz, spec.level_dbm0, cadence, spec.repeat)
    }

    /// A tone from parts; the cadence must have 1 to [`MAX_CADENCE`] segments, or be
    /// empty for a continuous tone.
    pub fn custom(
        freqs_hz: [f32; 2],
        level_dbm0: f32,
        cadence: &[Segment],
        repeat: bool,
    ) -> Result<Self, ToneError> {
        if cadence.len() > MAX_CADENCE {
            return Err(ToneError::BadCadence(cadence.len()));
        }
        Ok(Self::build(freqs_hz, level_dbm0, cadence, repeat))
    }

    /// One DTMF key: `on_ms` of its two tones then `off_ms` of silence, once.
    pub fn dtmf(digit: char, on_ms: u32, off_ms: u32) -> Result<Self, ToneError> {
        let (row, col) = keypad_position(digit).ok_or(ToneError::NotADigit(digit))?;
        Ok(Self::build(
            [ROW_HZ[row], COL_HZ[col]],
            DTMF_LEVEL_DBM0,
            &[seg(on_ms, off_ms)],
            false,
        ))
    }

    fn build(freqs_hz: [f32; 2], level_dbm0: f32, cadence: &[Segment], repeat: bool) -> Self {
        let mut steps = [(0u32, 0u32); MAX_CADENCE];
        for (s, c) in steps.iter_mut().zip(cadence) {
            *s = (ms_to_samples(c.on_ms), ms_to_samples(c.off_ms));
        }
        let voices = if freqs_hz[1] > 0.0 { 2 } else { 1 };
        Self {
            oscillators: [Oscillator::new(freqs_hz[0]), Oscillator::new(freqs_hz[1])],
            voices,
            amplitude: DBM0_AMPLITUDE * 10f32.powf(level_dbm0 / 20.0),
            cadence: steps,
            cadence_len: cadence.len(),
            repeat,
            step: 0,
            position: 0,
            finished: false,
        }
    }

    /// Fills the next 20 ms; false once a non-repeating tone has ended (then `out` is
    /// silence). The frame in which it ends is padded with silence and returns true.
    pub fn next_frame(&mut self, out: &mut Frame) -> bool {
        if self.finished {
            *out = [0; FRAME_SAMPLES];
            return false;
        }
        for sample in out.iter_mut() {
            *sample = if self.finished { 0 } else { self.next_sample() };
        }
        for osc in &mut self.oscillators[..self.voices] {
            osc.renormalise();
        }
        true
    }

    /// Back to the start of the cadence.
    pub fn rewind(&mut self) {
        self.step = 0;
        self.position = 0;
        self.finished = false;
        self.oscillators.iter_mut().for_each(Oscillator::reset);
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    #[inline]
    fn next_sample(&mut self) -> i16 {
        if self.cadence_len == 0 {
            return self.sound(1.0);
        }
        let (on, off) = self.cadence[self.step];
        let value = if self.position < on {
            // Ramps at both ends of the burst (shorter bursts get shorter ramps).
            let from_start = self.position + 1;
            let to_end = on - self.position;
            let envelope = from_start.min(to_end).min(RAMP_SAMPLES) as f32 / RAMP_SAMPLES as f32;
            self.sound(envelope)
        } else {
            0
        };
        self.position += 1;
        if self.position >= on + off {
            self.position = 0;
            self.step += 1;
            if self.step >= self.cadence_len {
                self.step = 0;
                if !self.repeat {
                    self.finished = true;
                }
            }
        }
        value
    }

    #[inline]
    fn sound(&mut self, envelope: f32) -> i16 {
        let mut v = 0f32;
        for osc in &mut self.oscillators[..self.voices] {
            v += osc.step();
        }
        // At most two voices at ≤ 0 dBm0 each: |v × amplitude| < 2 × 22 786, clamp anyway.
        (v * self.amplitude * envelope).clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
    }
}

fn keypad_position(digit: char) -> Option<(usize, usize)> {
    const KEYS: [&str; 4] = ["123A", "456B", "789C", "*0#D"];
    let digit = digit.to_ascii_uppercase();
    KEYS.iter()
        .enumerate()
        .find_map(|(row, keys)| keys.chars().position(|k| k == digit).map(|col| (row, col)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::dtmf::{tone_amplitude, InbandDetector};

    fn render(gen: &mut ToneGenerator, frames: usize) -> Vec<i16> {
        let mut out = Vec::with_capacity(frames * FRAME_SAMPLES);
        let mut frame = [0; FRAME_SAMPLES];
        for _ in 0..frames {
            gen.next_frame(&mut frame);
            out.extend_from_slice(&frame);
        }
        out
    }

    fn expected_amplitude(dbm0: f32) -> f32 {
        DBM0_AMPLITUDE * 10f32.powf(dbm0 / 20.0)
    }

    #[test]
    fn ringback_is_450hz_one_second_on_four_off() {
        let mut gen = ToneGenerator::new(&RINGBACK);
        let audio = render(&mut gen, 250 * 2); // two 5 s cycles
        let on = &audio[800..7_200];
        let amp = tone_amplitude(on, 450.0);
        assert!((amp - expected_amplitude(-10.0)).abs() < 100.0, "{amp}");
        assert!(tone_amplitude(on, 425.0) < amp / 2.0);
        assert!(audio[8_000..40_000].iter().all(|&s| s == 0), "4 s off");
        assert!(
            tone_amplitude(&audio[40_800..47_200], 450.0) > amp * 0.95,
            "second ring"
        );
        assert!(gen.next_frame(&mut [0; FRAME_SAMPLES]), "repeats forever");
    }

    #[test]
    fn busy_cadence_and_eu_us_variants() {
        let audio = render(&mut ToneGenerator::new(&BUSY), 35); // 700 ms
        assert!(tone_amplitude(&audio[200..2_600], 450.0) > 5_000.0);
        assert!(audio[2_800..5_600].iter().all(|&s| s == 0));
        let eu = render(&mut ToneGenerator::new(&BUSY_EU), 25);
        assert!(tone_amplitude(&eu[400..3_600], 425.0) > 5_000.0);
        let us = render(&mut ToneGenerator::new(&RINGBACK_US), 50);
        let a440 = tone_amplitude(&us[400..7_600], 440.0);
        let a480 = tone_amplitude(&us[400..7_600], 480.0);
        assert!(
            (a440 - a480).abs() < 100.0 && a440 > 2_000.0,
            "{a440} {a480}"
        );
        assert!(render(&mut ToneGenerator::new(&RINGBACK_EU), 10)
            .iter()
            .any(|&s| s != 0));
        assert!(render(&mut ToneGenerator::new(&BUSY_US), 10)
            .iter()
            .any(|&s| s != 0));
    }

    #[test]
    fn beep_ends_and_reports_it() {
        let mut gen = ToneGenerator::new(&BEEP);
        let mut frame = [0; FRAME_SAMPLES];
        let mut frames = 0;
        while gen.next_frame(&mut frame) {
            frames += 1;
            assert!(frames < 100, "a beep must end");
        }
        assert_eq!(frames, 13, "250 ms = 12.5 frames, the last one padded");
        assert!(gen.is_finished());
        assert_eq!(frame, [0; FRAME_SAMPLES]);
        gen.rewind();
        assert!(gen.next_frame(&mut frame));
        assert!(frame.iter().any(|&s| s != 0));
    }

    #[test]
    fn phase_is_continuous_across_frames() {
        let audio = render(
            &mut ToneGenerator::custom([1_000.0, 0.0], -3.0, &[], true).expect("valid"),
            50,
        );
        // For a 1 kHz sine at 8 kHz consecutive samples differ by at most A·2·sin(π/8).
        let max_step = expected_amplitude(-3.0) * 2.0 * (std::f32::consts::PI / 8.0).sin() + 2.0;
        for w in audio[RAMP_SAMPLES as usize..].windows(2) {
            assert!(f32::from(w[1] - w[0]).abs() <= max_step);
        }
        // And the level does not drift over a long run.
        let late = &audio[audio.len() - 800..];
        assert!((tone_amplitude(late, 1_000.0) - expected_amplitude(-3.0)).abs() < 50.0);
    }

    #[test]
    fn bursts_start_and_end_without_a_click() {
        let audio = render(&mut ToneGenerator::new(&BUSY), 40);
        // Around the start (sample 0) and the end (sample 2 800) of the first burst.
        assert!(audio[0].abs() < 300);
        assert!(audio[2_799].abs() < 300);
        assert!(audio[2_790..2_800].iter().all(|&s| s.abs() < 2_000));
    }

    #[test]
    fn dtmf_digits_are_detected_by_the_receiver() {
        let mut detector = InbandDetector::new();
        let mut frame = [0; FRAME_SAMPLES];
        for digit in "159#*0D".chars() {
            let mut gen = ToneGenerator::dtmf(digit, 100, 100).expect("valid");
            while gen.next_frame(&mut frame) {
                detector.process(&frame);
            }
        }
        let got: String = std::iter::from_fn(|| detector.take_digit())
            .map(|d| d.digit)
            .collect();
        assert_eq!(got, "159#*0D");
        assert_eq!(
            ToneGenerator::dtmf('x', 100, 100).err(),
            Some(ToneError::NotADigit('x'))
        );
    }

    #[test]
    fn cadence_limits() {
        let long = [seg(1, 1); MAX_CADENCE + 1];
        assert_eq!(
            ToneGenerator::custom([400.0, 0.0], -10.0, &long, true).err(),
            Some(ToneError::BadCadence(MAX_CADENCE + 1))
        );
        let uk_ring = [seg(400, 200), seg(400, 2_000)];
        let mut gen = ToneGenerator::custom([400.0, 450.0], -19.0, &uk_ring, true).expect("valid");
        let audio = render(&mut gen, 150);
        assert!(audio[3_300..4_700].iter().all(|&s| s == 0), "first gap");
        assert!(
            tone_amplitude(&audio[5_000..7_000], 400.0) > 1_000.0,
            "second burst"
        );
    }
}
