//! The conference mixer: every 20 ms, what each member hears.
//!
//! Each tick takes every member's latest frame (silence if none came), adds the frames
//! of all talking members into one total, and gives each member the total minus its own
//! contribution (N−1 mixing in O(N) rather than O(N²)), plus whatever is whispered to it.
//!
//! Modes:
//! - [`MixMode::TalkListen`]: heard by everyone, hears everyone.
//! - [`MixMode::ListenOnly`]: hears everyone, heard by no one (supervisor listen).
//! - [`MixMode::Whisper`]: hears everyone, heard only by one chosen member (coaching).
//! - [`MixMode::Muted`]: hears everyone, heard by no one (a muted participant).
//!
//! Every change of who hears a member — joining, leaving, mute, unmute, whisper on or
//! off — is a linear gain ramp across one 20 ms frame, and a new member's own output
//! fades in the same way, so nothing clicks. The sum is soft-clipped into 16 bits:
//! below the knee it is untouched; above it, compressed smoothly towards full scale
//! instead of wrapping or flat-topping.

use super::frame::{Frame, FRAME_SAMPLES};

/// Identifies a member (the owner's leg id, typically).
pub type MemberId = u64;

/// Members per room. Beyond this, a room is a broadcast and wants another design.
pub const MAX_MEMBERS: usize = 256;
/// Gains are Q15 fixed point: this is 1.0.
const UNITY: i32 = 1 << 15;
const Q15_SHIFT: u32 = 15;
/// Soft-clip knee at 3/4 of full scale: ordinary conversation never gets there, so the
/// mix is bit-exact in normal use.
const SOFT_CLIP_KNEE: i32 = 24_576;
const FULL_SCALE: i32 = i16::MAX as i32;

/// How a member takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixMode {
    TalkListen,
    ListenOnly,
    Whisper { to: MemberId },
    Muted,
}

/// Errors of mixer control.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixerError {
    #[error("member {0} is already in the room")]
    AlreadyJoined(MemberId),
    #[error("member {0} is not in the room")]
    UnknownMember(MemberId),
    #[error("the room is full ({MAX_MEMBERS} members)")]
    RoomFull,
    #[error("member {0} cannot whisper to itself")]
    WhisperToSelf(MemberId),
}

#[derive(Debug, Clone)]
struct Member {
    id: MemberId,
    mode: MixMode,
    leaving: bool,
    input: Frame,
    has_input: bool,
    /// The input of the previous tick was real audio (not stale): a member that leaves
    /// fades out on it, since its own audio has stopped by then.
    had_input: bool,
    /// Gains reached at the end of the previous tick (the ramps start there).
    public_gain: i32,
    whisper_gain: i32,
    output_gain: i32,
    /// Whom the whisper goes to, kept while it fades out after a mode change.
    whisper_to: Option<MemberId>,
    /// This tick's contributions, after the gain ramps.
    public: [i32; FRAME_SAMPLES],
    whisper: [i32; FRAME_SAMPLES],
    public_active: bool,
    whisper_active: bool,
    output: Frame,
}

impl Member {
    fn new(id: MemberId, mode: MixMode) -> Self {
        Self {
            id,
            mode,
            leaving: false,
            input: [0; FRAME_SAMPLES],
            has_input: false,
            had_input: false,
            public_gain: 0,
            whisper_gain: 0,
            output_gain: 0,
            whisper_to: None,
            public: [0; FRAME_SAMPLES],
            whisper: [0; FRAME_SAMPLES],
            public_active: false,
            whisper_active: false,
            output: [0; FRAME_SAMPLES],
        }
    }

    fn targets(&self) -> (i32, i32) {
        if self.leaving {
            return (0, 0);
        }
        match self.mode {
            MixMode::TalkListen => (UNITY, 0),
            MixMode::Whisper { .. } => (0, UNITY),
            MixMode::ListenOnly | MixMode::Muted => (0, 0),
        }
    }
}

/// Applies a gain ramping linearly from `from` to `to` over the frame.
/// Returns false (and leaves `out` untouched) when the result is all zeros.
#[inline]
fn apply_ramp(
    input: &Frame,
    has_input: bool,
    from: i32,
    to: i32,
    out: &mut [i32; FRAME_SAMPLES],
) -> bool {
    if !has_input || (from == 0 && to == 0) {
        return false;
    }
    if from == UNITY && to == UNITY {
        for (o, &x) in out.iter_mut().zip(input) {
            *o = i32::from(x);
        }
        return true;
    }
    let delta = to - from;
    for (n, (o, &x)) in out.iter_mut().zip(input).enumerate() {
        // Reaches `to` on the last sample; |x × g| ≤ 2^15 × 2^15 fits i32.
        let gain = from + delta * (n as i32 + 1) / FRAME_SAMPLES as i32;
        *o = (i32::from(x) * gain) >> Q15_SHIFT;
    }
    true
}

/// Soft clip into i16: identity up to the knee, then a rational curve with slope 1 at
/// the knee that approaches full scale asymptotically.
#[inline]
pub fn soft_clip(v: i32) -> i16 {
    let magnitude = v.unsigned_abs() as i64;
    let knee = i64::from(SOFT_CLIP_KNEE);
    if magnitude <= knee {
        return v as i16; // |v| ≤ knee < 2^15
    }
    let room = i64::from(FULL_SCALE) - knee;
    let over = magnitude - knee;
    let compressed = knee + over * room / (over + room);
    let signed = if v < 0 { -compressed } else { compressed };
    signed as i16 // |compressed| < FULL_SCALE
}

/// A conference room's mixer.
#[derive(Debug, Default)]
pub struct Mixer {
    members: Vec<Member>,
    total: Vec<i32>,
    ticks: u64,
}

impl Mixer {
    pub fn new() -> Self {
        Self {
            members: Vec::new(),
            total: vec![0; FRAME_SAMPLES],
            ticks: 0,
        }
    }

    /// Members in the room (not counting those fading out).
    pub fn len(&self) -> usize {
        self.members.iter().filter(|m| !m.leaving).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Members and their modes.
    pub fn members(&self) -> impl Iterator<Item = (MemberId, MixMode)> + '_ {
        self.members
            .iter()
            .filter(|m| !m.leaving)
            .map(|m| (m.id, m.mode))
    }

    pub fn mode(&self, id: MemberId) -> Option<MixMode> {
        self.find(id).map(|m| m.mode)
    }

    /// Adds a member; it fades in over the next tick. A member still fading out after
    /// `leave` may rejoin at once.
    pub fn join(&mut self, id: MemberId, mode: MixMode) -> Result<(), MixerError> {
        self.check_mode(id, mode)?;
        if let Some(member) = self.members.iter_mut().find(|m| m.id == id) {
            if !member.leaving {
                return Err(MixerError::AlreadyJoined(id));
            }
            member.leaving = false;
            member.mode = mode;
            return Ok(());
        }
        if self.members.len() >= MAX_MEMBERS {
            return Err(MixerError::RoomFull);
        }
        self.members.push(Member::new(id, mode));
        Ok(())
    }

    /// Removes a member; it fades out over the next tick and is gone after it.
    pub fn leave(&mut self, id: MemberId) -> Result<(), MixerError> {
        let member = self.find_mut(id).ok_or(MixerError::UnknownMember(id))?;
        member.leaving = true;
        if !member.has_input && member.had_input {
            // Fade out on the last frame it sent.
            member.has_input = true;
        }
        Ok(())
    }

    /// Changes how a member takes part (ramped over the next tick).
    pub fn set_mode(&mut self, id: MemberId, mode: MixMode) -> Result<(), MixerError> {
        self.check_mode(id, mode)?;
        let member = self.find_mut(id).ok_or(MixerError::UnknownMember(id))?;
        member.mode = mode;
        Ok(())
    }

    /// Hands in a member's frame for the next tick (the latest one wins).
    pub fn set_input(&mut self, id: MemberId, frame: &Frame) -> Result<(), MixerError> {
        let member = self.find_mut(id).ok_or(MixerError::UnknownMember(id))?;
        member.input = *frame;
        member.has_input = true;
        Ok(())
    }

    /// Like [`Mixer::set_input`], writing in place (saves a copy when decoding).
    pub fn input_mut(&mut self, id: MemberId) -> Option<&mut Frame> {
        let member = self.find_mut(id)?;
        member.has_input = true;
        Some(&mut member.input)
    }

    /// What a member hears, as of the last tick.
    pub fn output(&self, id: MemberId) -> Option<&Frame> {
        self.find(id).map(|m| &m.output)
    }

    /// Every member's output, as of the last tick.
    pub fn outputs(&self) -> impl Iterator<Item = (MemberId, &Frame)> + '_ {
        self.members
            .iter()
            .filter(|m| !m.leaving)
            .map(|m| (m.id, &m.output))
    }

    /// Mixes one 20 ms tick. Inputs are consumed: a member that hands in nothing before
    /// the next tick is silent in it.
    pub fn tick(&mut self) {
        self.ticks += 1;
        self.total.fill(0);
        let mut any_whisper = false;
        for m in &mut self.members {
            let (public_target, whisper_target) = m.targets();
            if let (MixMode::Whisper { to }, false) = (m.mode, m.leaving) {
                // A whisper moved to another target switches at once (not ramped).
                m.whisper_to = Some(to);
            }
            m.public_active = apply_ramp(
                &m.input,
                m.has_input,
                m.public_gain,
                public_target,
                &mut m.public,
            );
            m.whisper_active = m.whisper_to.is_some()
                && apply_ramp(
                    &m.input,
                    m.has_input,
                    m.whisper_gain,
                    whisper_target,
                    &mut m.whisper,
                );
            any_whisper |= m.whisper_active;
            m.public_gain = public_target;
            m.whisper_gain = whisper_target;
            if m.public_active {
                for (t, &p) in self.total.iter_mut().zip(&m.public) {
                    *t += p;
                }
            }
        }
        for j in 0..self.members.len() {
            let id = self.members[j].id;
            let mut mix = [0i32; FRAME_SAMPLES];
            mix.copy_from_slice(&self.total);
            let own = &self.members[j];
            if own.public_active {
                for (x, &p) in mix.iter_mut().zip(&own.public) {
                    *x -= p;
                }
            }
            if any_whisper {
                for w in &self.members {
                    if w.whisper_active && w.whisper_to == Some(id) && w.id != id {
                        for (x, &p) in mix.iter_mut().zip(&w.whisper) {
                            *x += p;
                        }
                    }
                }
            }
            let member = &mut self.members[j];
            let fade_in = member.output_gain < UNITY && !member.leaving;
            for (n, (o, &x)) in member.output.iter_mut().zip(&mix).enumerate() {
                let x = if fade_in {
                    let gain = member.output_gain
                        + (UNITY - member.output_gain) * (n as i32 + 1) / FRAME_SAMPLES as i32;
                    // |x| may exceed 2^15 before clipping: widen for the product.
                    ((i64::from(x) * i64::from(gain)) >> Q15_SHIFT) as i32
                } else {
                    x
                };
                *o = soft_clip(x);
            }
            if !member.leaving {
                member.output_gain = UNITY;
            }
        }
        for m in &mut self.members {
            m.had_input = m.has_input;
            m.has_input = false;
            if m.whisper_gain == 0 {
                // Any whisper has finished fading out during this tick.
                m.whisper_to = None;
            }
        }
        // Faded out during this tick: gone.
        self.members.retain(|m| !m.leaving);
    }

    fn check_mode(&self, id: MemberId, mode: MixMode) -> Result<(), MixerError> {
        match mode {
            MixMode::Whisper { to } if to == id => Err(MixerError::WhisperToSelf(id)),
            MixMode::Whisper { to } if self.find(to).is_none() => {
                Err(MixerError::UnknownMember(to))
            }
            _ => Ok(()),
        }
    }

    fn find(&self, id: MemberId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id && !m.leaving)
    }

    fn find_mut(&mut self, id: MemberId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id && !m.leaving)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::dtmf::tone_amplitude;
    use crate::media::frame::SAMPLE_RATE_HZ;

    const LEVEL: f32 = 4_000.0;
    /// Below this a tone counts as absent (−40 dB relative to LEVEL).
    const ABSENT: f32 = 40.0;

    /// Frame `tick` of a sine at `freq`, phase-continuous across ticks.
    fn sine_frame(freq: f32, tick: u64) -> Frame {
        let mut f = [0i16; FRAME_SAMPLES];
        for (i, s) in f.iter_mut().enumerate() {
            let n = tick as f32 * FRAME_SAMPLES as f32 + i as f32;
            *s = (LEVEL * (2.0 * std::f32::consts::PI * freq * n / SAMPLE_RATE_HZ as f32).sin())
                as i16;
        }
        f
    }

    /// Runs `ticks` ticks with each member sending its own tone; returns the last outputs.
    fn run(mixer: &mut Mixer, tones: &[(MemberId, f32)], ticks: u64) {
        for _ in 0..ticks {
            let t = mixer.ticks();
            for &(id, freq) in tones {
                mixer.set_input(id, &sine_frame(freq, t)).expect("member");
            }
            mixer.tick();
        }
    }

    fn hears(mixer: &Mixer, id: MemberId, freq: f32) -> f32 {
        tone_amplitude(mixer.output(id).expect("member"), freq)
    }

    const A: MemberId = 1;
    const B: MemberId = 2;
    const C: MemberId = 3;
    const L: MemberId = 4;
    const W: MemberId = 5;
    const M: MemberId = 6;
    const FA: f32 = 500.0;
    const FB: f32 = 1_000.0;
    const FC: f32 = 1_500.0;
    const FL: f32 = 2_000.0;
    const FW: f32 = 2_500.0;
    const FM: f32 = 3_000.0;

    fn room() -> Mixer {
        let mut mixer = Mixer::new();
        for id in [A, B, C] {
            mixer.join(id, MixMode::TalkListen).expect("join");
        }
        mixer.join(L, MixMode::ListenOnly).expect("join");
        mixer.join(W, MixMode::Whisper { to: A }).expect("join");
        mixer.join(M, MixMode::Muted).expect("join");
        mixer
    }

    const ALL: [(MemberId, f32); 6] = [(A, FA), (B, FB), (C, FC), (L, FL), (W, FW), (M, FM)];

    #[test]
    fn talkers_hear_each_other_but_not_themselves() {
        let mut mixer = room();
        run(&mut mixer, &ALL, 3);
        for (me, my_freq) in [(A, FA), (B, FB), (C, FC)] {
            assert!(hears(&mixer, me, my_freq) < ABSENT, "{me} hears itself");
            for (other, freq) in [(A, FA), (B, FB), (C, FC)] {
                if other != me {
                    let level = hears(&mixer, me, freq);
                    assert!(
                        (level - LEVEL).abs() < 200.0,
                        "{me} hears {other} at {level}"
                    );
                }
            }
        }
    }

    #[test]
    fn listen_only_hears_all_and_is_heard_by_none() {
        let mut mixer = room();
        run(&mut mixer, &ALL, 3);
        for freq in [FA, FB, FC] {
            assert!(hears(&mixer, L, freq) > LEVEL * 0.95);
        }
        for id in [A, B, C, W, M] {
            assert!(hears(&mixer, id, FL) < ABSENT, "{id} hears the listener");
        }
    }

    #[test]
    fn whisper_is_heard_only_by_its_target() {
        let mut mixer = room();
        run(&mut mixer, &ALL, 3);
        assert!(
            hears(&mixer, A, FW) > LEVEL * 0.95,
            "target hears the whisper"
        );
        for id in [B, C, L, M, W] {
            assert!(hears(&mixer, id, FW) < ABSENT, "{id} hears the whisper");
        }
        // The whisperer hears the conference.
        for freq in [FA, FB, FC] {
            assert!(hears(&mixer, W, freq) > LEVEL * 0.95);
        }
    }

    #[test]
    fn muted_is_not_heard_but_hears() {
        let mut mixer = room();
        run(&mut mixer, &ALL, 3);
        for id in [A, B, C, L, W] {
            assert!(
                hears(&mixer, id, FM) < ABSENT,
                "{id} hears the muted member"
            );
        }
        assert!(hears(&mixer, M, FA) > LEVEL * 0.95);
    }

    #[test]
    fn mode_changes_take_effect() {
        let mut mixer = room();
        run(&mut mixer, &ALL, 2);
        mixer.set_mode(M, MixMode::TalkListen).expect("member");
        mixer
            .set_mode(W, MixMode::Whisper { to: B })
            .expect("member");
        mixer.set_mode(A, MixMode::Muted).expect("member");
        run(&mut mixer, &ALL, 3);
        assert!(hears(&mixer, B, FM) > LEVEL * 0.95, "unmuted");
        assert!(hears(&mixer, B, FW) > LEVEL * 0.95, "whisper moved to B");
        assert!(hears(&mixer, A, FW) < ABSENT, "and left A");
        assert!(hears(&mixer, B, FA) < ABSENT, "A muted");
        assert_eq!(mixer.mode(A), Some(MixMode::Muted));
    }

    #[test]
    fn missing_input_is_silence() {
        let mut mixer = Mixer::new();
        mixer.join(A, MixMode::TalkListen).expect("join");
        mixer.join(B, MixMode::TalkListen).expect("join");
        run(&mut mixer, &[(A, FA), (B, FB)], 2);
        // B's packets stop arriving.
        run(&mut mixer, &[(A, FA)], 1);
        assert!(hears(&mixer, A, FB) < ABSENT);
        assert!(hears(&mixer, B, FA) > LEVEL * 0.95);
    }

    /// Largest jump between consecutive samples over a run of outputs.
    fn max_step(frames: &[Frame]) -> i32 {
        let all: Vec<i32> = frames.iter().flatten().map(|&s| i32::from(s)).collect();
        all.windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn join_and_leave_do_not_click() {
        // A loud DC input is the worst case: without a ramp it is a full step.
        const DC: i16 = 20_000;
        let mut mixer = Mixer::new();
        mixer.join(A, MixMode::TalkListen).expect("join");
        let mut heard = Vec::new();
        for tick in 0..8 {
            if tick == 2 {
                mixer.join(B, MixMode::TalkListen).expect("join");
            }
            if tick == 5 {
                mixer.leave(B).expect("member");
            }
            if mixer.mode(B).is_some() {
                mixer.set_input(B, &[DC; FRAME_SAMPLES]).expect("member");
            }
            mixer.set_input(A, &[0; FRAME_SAMPLES]).expect("member");
            mixer.tick();
            heard.push(*mixer.output(A).expect("member"));
        }
        assert_eq!(heard[4], [DC; FRAME_SAMPLES], "B fully in");
        assert_eq!(heard[6], [0; FRAME_SAMPLES], "B fully out");
        let step = max_step(&heard);
        assert!(step <= i32::from(DC) / 150, "step of {step}");
        assert_eq!(mixer.output(B), None, "gone after fading out");
        assert_eq!(mixer.len(), 1);
    }

    #[test]
    fn a_new_members_own_output_fades_in() {
        const DC: i16 = 20_000;
        let mut mixer = Mixer::new();
        mixer.join(A, MixMode::TalkListen).expect("join");
        mixer.set_input(A, &[DC; FRAME_SAMPLES]).expect("member");
        mixer.tick();
        mixer.join(B, MixMode::ListenOnly).expect("join");
        mixer.set_input(A, &[DC; FRAME_SAMPLES]).expect("member");
        mixer.tick();
        let out = mixer.output(B).expect("member");
        assert!(out[0] < 200 && out[FRAME_SAMPLES - 1] == DC);
    }

    #[test]
    fn mute_and_unmute_do_not_click() {
        const DC: i16 = 16_000;
        let mut mixer = Mixer::new();
        mixer.join(A, MixMode::TalkListen).expect("join");
        mixer.join(B, MixMode::TalkListen).expect("join");
        let mut heard = Vec::new();
        for tick in 0..8 {
            match tick {
                3 => mixer.set_mode(B, MixMode::Muted).expect("member"),
                5 => mixer
                    .set_mode(B, MixMode::Whisper { to: A })
                    .expect("member"),
                6 => mixer.set_mode(B, MixMode::TalkListen).expect("member"),
                _ => {}
            }
            mixer.set_input(B, &[DC; FRAME_SAMPLES]).expect("member");
            mixer.tick();
            if tick >= 1 {
                heard.push(*mixer.output(A).expect("member"));
            }
        }
        assert!(max_step(&heard) <= i32::from(DC) / 150);
        assert_eq!(heard.last(), Some(&[DC; FRAME_SAMPLES]));
    }

    #[test]
    fn loud_sums_are_soft_clipped_not_wrapped() {
        let mut mixer = Mixer::new();
        for id in 0..10 {
            mixer.join(id, MixMode::TalkListen).expect("join");
        }
        mixer.join(99, MixMode::ListenOnly).expect("join");
        for _ in 0..3 {
            for id in 0..10 {
                mixer
                    .set_input(id, &[20_000; FRAME_SAMPLES])
                    .expect("member");
            }
            mixer.tick();
        }
        let out = mixer.output(99).expect("member");
        assert!(out.iter().all(|&s| s > 32_000), "{}", out[0]);
        for id in 0..10 {
            mixer
                .set_input(id, &[-20_000; FRAME_SAMPLES])
                .expect("member");
        }
        mixer.tick();
        assert!(mixer
            .output(99)
            .expect("member")
            .iter()
            .all(|&s| s < -32_000));
    }

    #[test]
    fn soft_clip_curve() {
        assert_eq!(soft_clip(0), 0);
        assert_eq!(soft_clip(24_576), 24_576);
        assert_eq!(soft_clip(-24_576), -24_576);
        assert!(soft_clip(30_000) < 30_000 && soft_clip(30_000) > 27_000);
        assert!(soft_clip(i32::MAX) > 32_700);
        assert!(soft_clip(i32::MIN) < -32_700 && soft_clip(i32::MIN) > i16::MIN);
        let mut previous = i16::MIN;
        for v in (-200_000..200_000).step_by(97) {
            let y = soft_clip(v);
            assert!(y >= previous, "monotonic at {v}");
            previous = y;
        }
    }

    #[test]
    fn control_errors() {
        let mut mixer = Mixer::new();
        assert!(mixer.is_empty());
        mixer.join(A, MixMode::TalkListen).expect("join");
        assert_eq!(
            mixer.join(A, MixMode::Muted),
            Err(MixerError::AlreadyJoined(A))
        );
        assert_eq!(mixer.leave(B), Err(MixerError::UnknownMember(B)));
        assert_eq!(
            mixer.set_input(B, &[0; FRAME_SAMPLES]),
            Err(MixerError::UnknownMember(B))
        );
        assert_eq!(
            mixer.join(B, MixMode::Whisper { to: B }),
            Err(MixerError::WhisperToSelf(B))
        );
        assert_eq!(
            mixer.join(B, MixMode::Whisper { to: C }),
            Err(MixerError::UnknownMember(C))
        );
        assert_eq!(
            mixer.set_mode(C, MixMode::Muted),
            Err(MixerError::UnknownMember(C))
        );
        assert!(mixer.input_mut(C).is_none());
        // Leave then rejoin before the fade-out tick: still one member.
        mixer.leave(A).expect("member");
        assert!(mixer.is_empty());
        mixer.join(A, MixMode::ListenOnly).expect("rejoin");
        assert_eq!(
            mixer.members().collect::<Vec<_>>(),
            vec![(A, MixMode::ListenOnly)]
        );
        for id in 100..(100 + MAX_MEMBERS as u64 - 1) {
            mixer.join(id, MixMode::ListenOnly).expect("room");
        }
        assert_eq!(
            mixer.join(9_999, MixMode::ListenOnly),
            Err(MixerError::RoomFull)
        );
        assert_eq!(mixer.outputs().count(), MAX_MEMBERS);
    }

    #[test]
    fn input_in_place() {
        let mut mixer = Mixer::new();
        mixer.join(A, MixMode::TalkListen).expect("join");
        mixer.join(B, MixMode::ListenOnly).expect("join");
        for _ in 0..2 {
            if let Some(frame) = mixer.input_mut(A) {
                frame.fill(1_234);
            }
            mixer.tick();
        }
        assert_eq!(mixer.output(B), Some(&[1_234; FRAME_SAMPLES]));
    }
}
