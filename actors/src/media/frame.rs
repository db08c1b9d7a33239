//! The media engine's time base: 8 kHz narrowband audio cut into 20 ms frames.
//!
//! Everything the switch generates or consumes (prompts, tones, the mixer, recordings,
//! the jitter buffer's output) runs on this one grid, so frames can be handed between
//! the building blocks without rate or size conversion.

use std::time::Duration;

/// Narrowband telephony sample rate; G.711 is defined at 8 kHz only.
pub const SAMPLE_RATE_HZ: u32 = 8_000;
/// Frame length: 20 ms is the default `ptime` of G.711 (RFC 3551 §4.5) and the tick of
/// the mixer, so one frame is one RTP packet is one mixer tick.
pub const FRAME_MS: u32 = 20;
/// Samples in one frame at [`SAMPLE_RATE_HZ`].
pub const FRAME_SAMPLES: usize = (SAMPLE_RATE_HZ * FRAME_MS / 1_000) as usize;
/// The same, as an RTP timestamp increment (the RTP clock of G.711 is the sample rate).
pub const FRAME_TIMESTAMP_STEP: u32 = FRAME_SAMPLES as u32;
/// Frames per second, for turning frame counts into rates.
pub const FRAMES_PER_SECOND: u32 = 1_000 / FRAME_MS;
/// One frame as a `Duration`, for timers.
pub const FRAME_DURATION: Duration = Duration::from_millis(FRAME_MS as u64);

/// One 20 ms frame of 16-bit linear PCM.
pub type Frame = [i16; FRAME_SAMPLES];

/// A frame of digital silence.
pub const SILENCE: Frame = [0; FRAME_SAMPLES];

/// Milliseconds → samples at 8 kHz.
pub const fn ms_to_samples(ms: u32) -> u32 {
    ms * (SAMPLE_RATE_HZ / 1_000)
}

/// Samples at 8 kHz → whole milliseconds.
pub const fn samples_to_ms(samples: u32) -> u32 {
    samples / (SAMPLE_RATE_HZ / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_160_samples_of_20_ms() {
        assert_eq!(FRAME_SAMPLES, 160);
        assert_eq!(FRAMES_PER_SECOND, 50);
        assert_eq!(ms_to_samples(20), 160);
        assert_eq!(samples_to_ms(800), 100);
        assert_eq!(FRAME_DURATION, Duration::from_millis(20));
    }
}
