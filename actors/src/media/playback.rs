//! What a leg plays: prompts, music on hold, playlists, tones, and later TTS output.
//!
//! A [`Source`] produces 20 ms frames until it is exhausted. Prompts hold their samples
//! in an `Arc<[i16]>`, loaded once and shared by every stream that plays them, so a
//! thousand callers hearing the same greeting cost one copy of it plus a cursor each.
//! A [`Playback`] wraps a source with what the owner asked for (an id, stop on DTMF)
//! and reports [`PlaybackFinished`] exactly once, whatever ended it.

use std::sync::Arc;

use super::frame::{ms_to_samples, Frame, FRAME_SAMPLES};
use super::tone::{ToneGenerator, ToneSpec};

/// Errors of the playback module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaybackError {
    #[error("{0:?} is not a DTMF key (0-9, *, #, A-D)")]
    NotADigit(char),
}

/// Anything that can produce audio frame by frame (TTS engines plug in through this).
pub trait FrameSource: Send + std::fmt::Debug {
    /// Fills `out` with the next 20 ms. Returns false, with `out` silent, once there is
    /// nothing left; the frame holding the last samples is padded and returns true.
    fn next_frame(&mut self, out: &mut Frame) -> bool;
    /// Starts over from the beginning (for loops and looping playlists).
    fn rewind(&mut self);
}

/// A prompt being played: the shared samples and this stream's cursor.
#[derive(Debug, Clone)]
pub struct PromptSource {
    samples: Arc<[i16]>,
    position: usize,
    looping: bool,
}

impl PromptSource {
    pub fn new(samples: Arc<[i16]>, looping: bool) -> Self {
        Self {
            samples,
            position: 0,
            looping,
        }
    }

    /// Samples left before the end (of this pass, when looping).
    pub fn remaining(&self) -> usize {
        self.samples.len().saturating_sub(self.position)
    }

    pub fn next_frame(&mut self, out: &mut Frame) -> bool {
        let len = self.samples.len();
        if self.position >= len && !(self.looping && len > 0) {
            *out = [0; FRAME_SAMPLES];
            return false;
        }
        let mut filled = 0;
        while filled < FRAME_SAMPLES {
            if self.position >= len {
                if self.looping && len > 0 {
                    // Seamless loop: the next pass continues inside the same frame.
                    self.position = 0;
                } else {
                    out[filled..].fill(0);
                    break;
                }
            }
            let take = (FRAME_SAMPLES - filled).min(len - self.position);
            out[filled..filled + take]
                .copy_from_slice(&self.samples[self.position..self.position + take]);
            filled += take;
            self.position += take;
        }
        true
    }

    pub fn rewind(&mut self) {
        self.position = 0;
    }
}

/// Silence of a given length (pauses in playlists).
#[derive(Debug, Clone, Copy)]
pub struct SilenceSource {
    frames: u32,
    remaining: u32,
}

impl SilenceSource {
    pub fn new(ms: u32) -> Self {
        let frames = ms_to_samples(ms).div_ceil(FRAME_SAMPLES as u32);
        Self {
            frames,
            remaining: frames,
        }
    }
}

/// Items played one after another; optionally over and over. Items change on frame
/// boundaries (an item's last frame is padded), which is inaudible between prompts.
#[derive(Debug)]
pub struct Playlist {
    items: Vec<Source>,
    current: usize,
    looping: bool,
    /// Whether any item produced audio in this pass: a looping list of empty items
    /// must end instead of spinning.
    produced: bool,
}

impl Playlist {
    pub fn new(items: Vec<Source>, looping: bool) -> Self {
        Self {
            items,
            current: 0,
            looping,
            produced: false,
        }
    }

    pub fn next_frame(&mut self, out: &mut Frame) -> bool {
        loop {
            let Some(item) = self.items.get_mut(self.current) else {
                if self.looping && self.produced {
                    self.rewind();
                    continue;
                }
                *out = [0; FRAME_SAMPLES];
                return false;
            };
            if item.next_frame(out) {
                self.produced = true;
                return true;
            }
            self.current += 1;
        }
    }

    pub fn rewind(&mut self) {
        self.items.iter_mut().for_each(Source::rewind);
        self.current = 0;
        self.produced = false;
    }
}

/// Something to play.
#[derive(Debug)]
pub enum Source {
    Prompt(PromptSource),
    Tone(ToneGenerator),
    Silence(SilenceSource),
    Playlist(Playlist),
    /// TTS output and other producers outside this module.
    External(Box<dyn FrameSource>),
}

impl Source {
    /// A prompt played once.
    pub fn prompt(samples: Arc<[i16]>) -> Self {
        Source::Prompt(PromptSource::new(samples, false))
    }

    /// A prompt played in a loop (music on hold).
    pub fn looping(samples: Arc<[i16]>) -> Self {
        Source::Prompt(PromptSource::new(samples, true))
    }

    pub fn tone(spec: &ToneSpec) -> Self {
        Source::Tone(ToneGenerator::new(spec))
    }

    pub fn silence(ms: u32) -> Self {
        Source::Silence(SilenceSource::new(ms))
    }

    pub fn playlist(items: Vec<Source>, looping: bool) -> Self {
        Source::Playlist(Playlist::new(items, looping))
    }

    /// See [`FrameSource::next_frame`].
    pub fn next_frame(&mut self, out: &mut Frame) -> bool {
        match self {
            Source::Prompt(p) => p.next_frame(out),
            Source::Tone(t) => t.next_frame(out),
            Source::Silence(s) => {
                *out = [0; FRAME_SAMPLES];
                if s.remaining == 0 {
                    return false;
                }
                s.remaining -= 1;
                true
            }
            Source::Playlist(p) => p.next_frame(out),
            Source::External(e) => e.next_frame(out),
        }
    }

    pub fn rewind(&mut self) {
        match self {
            Source::Prompt(p) => p.rewind(),
            Source::Tone(t) => t.rewind(),
            Source::Silence(s) => s.remaining = s.frames,
            Source::Playlist(p) => p.rewind(),
            Source::External(e) => e.rewind(),
        }
    }
}

/// Which keys end a playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopOnDtmf {
    /// Keys are ignored (announcements that must be heard in full).
    #[default]
    Never,
    /// Any key (the caller is typing ahead in a menu).
    Any,
    /// Only these keys: a bit per RFC 4733 event code 0-15.
    Keys(u16),
}

impl StopOnDtmf {
    /// Only the keys in `keys` (e.g. `"#*"`).
    pub fn keys(keys: &str) -> Result<Self, PlaybackError> {
        let mut mask = 0u16;
        for key in keys.chars() {
            let event = super::dtmf::digit_to_event(key).ok_or(PlaybackError::NotADigit(key))?;
            mask |= 1 << event;
        }
        Ok(StopOnDtmf::Keys(mask))
    }

    fn stops_on(self, digit: char) -> bool {
        match self {
            StopOnDtmf::Never => false,
            StopOnDtmf::Any => super::dtmf::digit_to_event(digit).is_some(),
            StopOnDtmf::Keys(mask) => {
                super::dtmf::digit_to_event(digit).is_some_and(|e| mask & (1 << e) != 0)
            }
        }
    }
}

/// Why a playback ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The source ran out.
    Completed,
    /// A key it was told to stop on.
    Dtmf(char),
    /// The owner stopped it.
    Stopped,
}

/// The "finished" event of a playback, reported exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaybackFinished {
    pub id: u64,
    pub reason: StopReason,
    pub frames_played: u64,
}

/// What one tick of a playback produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaybackTick {
    /// A frame of audio is in the buffer.
    Audio,
    /// The source ran out on this tick (the buffer is silence). Reported once.
    Finished(PlaybackFinished),
    /// Ended earlier; the buffer is silence.
    Idle,
}

/// One playback on one leg.
#[derive(Debug)]
pub struct Playback {
    id: u64,
    source: Source,
    stop_on_dtmf: StopOnDtmf,
    frames_played: u64,
    ended: Option<StopReason>,
}

impl Playback {
    pub fn new(id: u64, source: Source) -> Self {
        Self {
            id,
            source,
            stop_on_dtmf: StopOnDtmf::Never,
            frames_played: 0,
            ended: None,
        }
    }

    pub fn with_stop_on_dtmf(mut self, stop: StopOnDtmf) -> Self {
        self.stop_on_dtmf = stop;
        self
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn stop_on_dtmf(&self) -> StopOnDtmf {
        self.stop_on_dtmf
    }

    pub fn is_finished(&self) -> bool {
        self.ended.is_some()
    }

    pub fn frames_played(&self) -> u64 {
        self.frames_played
    }

    /// Produces the next 20 ms.
    pub fn next_frame(&mut self, out: &mut Frame) -> PlaybackTick {
        if self.ended.is_some() {
            *out = [0; FRAME_SAMPLES];
            return PlaybackTick::Idle;
        }
        if self.source.next_frame(out) {
            self.frames_played += 1;
            return PlaybackTick::Audio;
        }
        PlaybackTick::Finished(self.end(StopReason::Completed))
    }

    /// A key was pressed on the leg; if this playback stops on it, it ends now and the
    /// finished event is returned (and not reported again).
    pub fn on_dtmf(&mut self, digit: char) -> Option<PlaybackFinished> {
        if self.ended.is_some() || !self.stop_on_dtmf.stops_on(digit) {
            return None;
        }
        Some(self.end(StopReason::Dtmf(digit)))
    }

    /// Stops it; the finished event if it was still playing.
    pub fn stop(&mut self) -> Option<PlaybackFinished> {
        if self.ended.is_some() {
            return None;
        }
        Some(self.end(StopReason::Stopped))
    }

    fn end(&mut self, reason: StopReason) -> PlaybackFinished {
        self.ended = Some(reason);
        PlaybackFinished {
            id: self.id,
            reason,
            frames_played: self.frames_played,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::tone::{BEEP, RINGBACK};

    fn ramp(len: usize) -> Arc<[i16]> {
        (0..len).map(|i| i as i16 + 1).collect::<Vec<_>>().into()
    }

    fn collect(source: &mut Source, max_frames: usize) -> (Vec<i16>, usize) {
        let mut out = Vec::new();
        let mut frame = [0; FRAME_SAMPLES];
        let mut frames = 0;
        while frames < max_frames && source.next_frame(&mut frame) {
            out.extend_from_slice(&frame);
            frames += 1;
        }
        (out, frames)
    }

    #[test]
    fn prompt_plays_once_padded_to_whole_frames() {
        let samples = ramp(400);
        let mut source = Source::prompt(samples.clone());
        let (audio, frames) = collect(&mut source, 100);
        assert_eq!(frames, 3);
        assert_eq!(&audio[..400], &samples[..]);
        assert!(audio[400..].iter().all(|&s| s == 0));
        let mut frame = [7; FRAME_SAMPLES];
        assert!(!source.next_frame(&mut frame));
        assert_eq!(frame, [0; FRAME_SAMPLES]);
    }

    #[test]
    fn prompts_share_their_samples() {
        let samples = ramp(16_000);
        let streams: Vec<Source> = (0..1_000)
            .map(|_| Source::prompt(samples.clone()))
            .collect();
        assert_eq!(Arc::strong_count(&samples), 1_001);
        drop(streams);
        assert_eq!(Arc::strong_count(&samples), 1);
    }

    #[test]
    fn music_on_hold_loops_seamlessly() {
        let samples = ramp(250);
        let mut source = Source::looping(samples.clone());
        let (audio, frames) = collect(&mut source, 10);
        assert_eq!(frames, 10);
        for (i, &s) in audio.iter().enumerate() {
            assert_eq!(s, samples[i % 250], "sample {i}");
        }
        // An empty looping prompt ends instead of spinning.
        let mut empty = Source::looping(Arc::from(Vec::new()));
        assert_eq!(collect(&mut empty, 10).1, 0);
    }

    #[test]
    fn playlist_plays_items_in_order() {
        let a = ramp(160);
        let b: Arc<[i16]> = vec![-5i16; 320].into();
        let mut list = Source::playlist(
            vec![
                Source::prompt(a.clone()),
                Source::silence(40),
                Source::prompt(b),
            ],
            false,
        );
        let (audio, frames) = collect(&mut list, 100);
        assert_eq!(frames, 1 + 2 + 2);
        assert_eq!(&audio[..160], &a[..]);
        assert!(audio[160..480].iter().all(|&s| s == 0));
        assert!(audio[480..].iter().all(|&s| s == -5));
    }

    #[test]
    fn looping_playlist_repeats_and_empty_one_ends() {
        let mut list = Source::playlist(vec![Source::prompt(ramp(160)), Source::tone(&BEEP)], true);
        let (_, frames) = collect(&mut list, 100);
        assert_eq!(frames, 100, "loops until stopped");
        let mut empty = Source::playlist(
            vec![Source::prompt(Arc::from(Vec::new())), Source::silence(0)],
            true,
        );
        assert_eq!(collect(&mut empty, 10).1, 0);
        let mut nothing = Source::playlist(Vec::new(), true);
        assert_eq!(collect(&mut nothing, 10).1, 0);
    }

    #[test]
    fn tones_and_external_sources() {
        let mut ring = Source::tone(&RINGBACK);
        assert_eq!(collect(&mut ring, 300).1, 300);

        #[derive(Debug)]
        struct Countdown(u32, u32);
        impl FrameSource for Countdown {
            fn next_frame(&mut self, out: &mut Frame) -> bool {
                if self.0 == 0 {
                    *out = [0; FRAME_SAMPLES];
                    return false;
                }
                self.0 -= 1;
                *out = [100; FRAME_SAMPLES];
                true
            }
            fn rewind(&mut self) {
                self.0 = self.1;
            }
        }
        let mut tts = Source::External(Box::new(Countdown(3, 3)));
        assert_eq!(collect(&mut tts, 10).1, 3);
        tts.rewind();
        assert_eq!(collect(&mut tts, 10).1, 3);
    }

    #[test]
    fn finished_is_reported_exactly_once() {
        let mut playback = Playback::new(7, Source::prompt(ramp(300)));
        let mut frame = [0; FRAME_SAMPLES];
        assert_eq!(playback.next_frame(&mut frame), PlaybackTick::Audio);
        assert_eq!(playback.next_frame(&mut frame), PlaybackTick::Audio);
        assert_eq!(
            playback.next_frame(&mut frame),
            PlaybackTick::Finished(PlaybackFinished {
                id: 7,
                reason: StopReason::Completed,
                frames_played: 2
            })
        );
        assert_eq!(playback.next_frame(&mut frame), PlaybackTick::Idle);
        assert_eq!(playback.stop(), None);
        assert!(playback.is_finished());
    }

    #[test]
    fn stop_on_dtmf() {
        let mut frame = [0; FRAME_SAMPLES];
        let mut deaf = Playback::new(1, Source::looping(ramp(160)));
        assert_eq!(deaf.on_dtmf('5'), None, "stop on DTMF not asked");

        let mut menu =
            Playback::new(2, Source::looping(ramp(160))).with_stop_on_dtmf(StopOnDtmf::Any);
        menu.next_frame(&mut frame);
        let finished = menu.on_dtmf('5').expect("stops");
        assert_eq!(finished.reason, StopReason::Dtmf('5'));
        assert_eq!(finished.frames_played, 1);
        assert_eq!(menu.on_dtmf('6'), None, "only once");
        assert_eq!(menu.next_frame(&mut frame), PlaybackTick::Idle);

        let keys = StopOnDtmf::keys("#*").expect("valid");
        let mut hash_only = Playback::new(3, Source::tone(&RINGBACK)).with_stop_on_dtmf(keys);
        assert_eq!(hash_only.stop_on_dtmf(), keys);
        assert_eq!(hash_only.on_dtmf('1'), None);
        assert_eq!(
            hash_only.on_dtmf('#').map(|f| f.reason),
            Some(StopReason::Dtmf('#'))
        );
        assert_eq!(StopOnDtmf::keys("#x"), Err(PlaybackError::NotADigit('x')));

        let mut stopped = Playback::new(4, Source::tone(&RINGBACK));
        assert_eq!(
            stopped.stop().map(|f| (f.id, f.reason)),
            Some((4, StopReason::Stopped))
        );
        assert_eq!(stopped.id(), 4);
        assert_eq!(stopped.frames_played(), 0);
    }
}
