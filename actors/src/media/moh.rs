//! The built-in music on hold: a soft arpeggio that loops, for sites that configure no
//! file of their own. Made from sines so it needs no asset and is easy to recognise in
//! tests (its notes are [`BUILTIN_NOTES_HZ`]).

use super::frame::SAMPLE_RATE_HZ;

/// C5, E5, G5, E5: one bar, then a rest.
pub const BUILTIN_NOTES_HZ: [f32; 4] = [523.25, 659.25, 783.99, 659.25];
const NOTE_MS: u32 = 300;
const REST_MS: u32 = 300;
/// Fade in and out of each note, so notes start and stop without clicks.
const FADE_MS: u32 = 30;
/// About -12 dBFS: present, not loud.
const AMPLITUDE: f32 = 8_000.0;

/// One bar of the built-in music (8 kHz mono), to be played looping.
pub fn builtin() -> Vec<i16> {
    let note_len = (SAMPLE_RATE_HZ * NOTE_MS / 1_000) as usize;
    let fade_len = (SAMPLE_RATE_HZ * FADE_MS / 1_000) as usize;
    let mut out = Vec::with_capacity(note_len * BUILTIN_NOTES_HZ.len() + rest_len());
    for freq in BUILTIN_NOTES_HZ {
        for n in 0..note_len {
            let t = n as f32 / SAMPLE_RATE_HZ as f32;
            let edge = n.min(note_len - 1 - n);
            let gain = (edge as f32 / fade_len as f32).min(1.0);
            let v = AMPLITUDE * gain * (2.0 * std::f32::consts::PI * freq * t).sin();
            out.push(v as i16);
        }
    }
    out.resize(out.len() + rest_len(), 0);
    out
}

fn rest_len() -> usize {
    (SAMPLE_RATE_HZ * REST_MS / 1_000) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::dtmf::tone_amplitude;

    #[test]
    fn one_bar_of_four_notes_and_a_rest() {
        let bar = builtin();
        assert_eq!(bar.len(), 8 * (4 * 300 + 300));
        let note = 8 * 300;
        for (i, f) in BUILTIN_NOTES_HZ.iter().enumerate() {
            let slice = &bar[i * note + 400..(i + 1) * note - 400];
            assert!(tone_amplitude(slice, *f) > 6_000.0, "note {i}");
        }
        assert!(bar[4 * note..].iter().all(|s| *s == 0));
        // No clicks: the first and last samples of a note are near zero.
        assert!(bar[0].abs() < 50 && bar[note - 1].abs() < 400);
    }
}
