//! `Conference`: one per meet-me room. Dialing the room's number joins it; the room's
//! mixer runs in the media engine, this actor keeps who is in it and how each member
//! takes part (talk, listen-only, whisper to one member, muted).
//!
//! A member is a call (the `Call` actor answered the caller's leg itself and owns its
//! media endpoint); the room drives that endpoint by id: prompts, joining the mix, mode
//! changes. A room with a PIN asks for it (spoken by TTS, a beep if TTS fails) before
//! the caller joins, and lets three wrong tries end the call.

use std::time::Duration;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use crate::call::EndCall;
use crate::event_hub::now_ms;
use crate::media::engine::{EndpointId, Room};
use crate::media::mixer::MixMode;
use crate::media::playback::{Playback, Source, StopOnDtmf};
use crate::media::tone::BEEP;
use crate::services::Services;

/// Wrong PINs before the call is ended.
pub const MAX_PIN_ATTEMPTS: u32 = 3;
/// What a caller is asked when the room has a PIN.
pub const PIN_PROMPT: &str = "Please enter the conference PIN, followed by the pound key.";
pub const PIN_RETRY_PROMPT: &str = "That PIN is not correct. Please try again.";
/// Time to hear the last words before a caller with a wrong PIN is hung up.
const GOODBYE_GRACE: Duration = Duration::from_millis(500);
/// Playback ids, so a finished event can be told apart (only informative here).
const PROMPT_PLAYBACK: u64 = 10;
const BEEP_PLAYBACK: u64 = 11;

/// How a member takes part, as the API names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum MemberMode {
    /// Speaks and hears everyone.
    Talk,
    /// Hears everyone, is heard by nobody (supervisor listening).
    Listen,
    /// Heard only by the member with number `to`, hears everyone (coaching).
    Whisper { to: String },
    /// Hears everyone, is heard by nobody, until unmuted.
    Muted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Asked for the PIN, not in the mix yet.
    Pin,
    Joined,
}

/// A member as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberInfo {
    pub number: String,
    pub call_id: String,
    #[serde(flatten)]
    pub mode: MemberMode,
    pub state: MemberState,
    /// Epoch milliseconds.
    pub joined_at: i64,
}

/// Why a request about a room failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConferenceError {
    #[error("no member {0} in the room")]
    NoSuchMember(String),
    #[error("a member cannot whisper to itself")]
    WhisperToSelf,
    #[error("the room's media is not available")]
    NoMedia,
}

struct Member {
    number: String,
    call_id: String,
    endpoint: EndpointId,
    call: Recipient<EndCall>,
    mode: MemberMode,
    state: MemberState,
    pin_digits: String,
    pin_attempts: u32,
    joined_at: i64,
}

pub struct Conference {
    number: String,
    pin: Option<String>,
    services: Services,
    room: Option<Room>,
    members: Vec<Member>,
}

impl Conference {
    pub fn new(number: String, pin: Option<String>, services: Services) -> Self {
        Self {
            number,
            pin: pin.filter(|p| !p.is_empty()),
            services,
            room: None,
            members: Vec::new(),
        }
    }

    fn member(&self, key: &str) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.call_id == key || m.number == key)
    }

    fn mix_mode(&self, mode: &MemberMode) -> Result<MixMode, ConferenceError> {
        Ok(match mode {
            MemberMode::Talk => MixMode::TalkListen,
            MemberMode::Listen => MixMode::ListenOnly,
            MemberMode::Muted => MixMode::Muted,
            MemberMode::Whisper { to } => {
                let target = self
                    .member(to)
                    .ok_or_else(|| ConferenceError::NoSuchMember(to.clone()))?;
                MixMode::Whisper {
                    to: self.members[target].endpoint,
                }
            }
        })
    }

    fn join_mix(&mut self, index: usize) {
        let Some(room) = &self.room else {
            return;
        };
        let mode = self
            .mix_mode(&self.members[index].mode)
            .unwrap_or(MixMode::TalkListen);
        let member = &mut self.members[index];
        member.state = MemberState::Joined;
        let engine = &self.services.media;
        let _ = engine.join_room(member.endpoint, room.id(), mode);
        let _ = engine.play_to(
            member.endpoint,
            Playback::new(BEEP_PLAYBACK, Source::tone(&BEEP)),
        );
        tracing::info!(room = %self.number, member = %member.number, "joined the conference");
    }

    /// Speaks `text` to a member (a beep if TTS is unavailable), stopped by any key.
    fn prompt(&self, ctx: &mut Context<Self>, endpoint: EndpointId, text: &'static str) {
        let engine = self.services.media.clone();
        let tts = self.services.tts.clone();
        let speak = async move {
            let source = match tts {
                Some(tts) => match tts.speak(text).await {
                    Ok(samples) => Source::prompt(samples),
                    Err(e) => {
                        tracing::warn!("TTS failed, beeping instead: {e}");
                        Source::tone(&BEEP)
                    }
                },
                None => Source::tone(&BEEP),
            };
            let playback =
                Playback::new(PROMPT_PLAYBACK, source).with_stop_on_dtmf(StopOnDtmf::Any);
            let _ = engine.play_to(endpoint, playback);
        };
        ctx.spawn(speak.into_actor(self));
    }

    fn on_pin_digit(&mut self, ctx: &mut Context<Self>, index: usize, digit: char) {
        let Some(pin) = self.pin.clone() else {
            return;
        };
        let member = &mut self.members[index];
        if digit != '#' {
            member.pin_digits.push(digit);
            if member.pin_digits.len() < pin.len() {
                return;
            }
        }
        let entered = std::mem::take(&mut member.pin_digits);
        if crate::sip::digest::constant_time_eq(entered.as_bytes(), pin.as_bytes()) {
            self.join_mix(index);
            return;
        }
        member.pin_attempts += 1;
        let endpoint = member.endpoint;
        tracing::info!(room = %self.number, member = %member.number, attempt = member.pin_attempts, "wrong conference PIN");
        if member.pin_attempts >= MAX_PIN_ATTEMPTS {
            let call = member.call.clone();
            ctx.run_later(GOODBYE_GRACE, move |_, _| call.do_send(EndCall));
            return;
        }
        self.prompt(ctx, endpoint, PIN_RETRY_PROMPT);
    }
}

impl Actor for Conference {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        match self.services.media.create_room() {
            Ok(room) => self.room = Some(room),
            Err(e) => tracing::error!(room = %self.number, "no conference mixer: {e}"),
        }
    }
}

/// A call asks to join: its caller's leg is answered and its media endpoint is ready.
#[derive(Message)]
#[rtype(result = "Result<(), ConferenceError>")]
pub struct Admit {
    pub call_id: String,
    pub number: String,
    pub endpoint: EndpointId,
    pub call: Recipient<EndCall>,
}

impl Handler<Admit> for Conference {
    type Result = Result<(), ConferenceError>;
    fn handle(&mut self, msg: Admit, ctx: &mut Self::Context) -> Self::Result {
        if self.room.is_none() {
            return Err(ConferenceError::NoMedia);
        }
        self.members.push(Member {
            number: msg.number,
            call_id: msg.call_id,
            endpoint: msg.endpoint,
            call: msg.call,
            mode: MemberMode::Talk,
            state: MemberState::Pin,
            pin_digits: String::new(),
            pin_attempts: 0,
            joined_at: now_ms(),
        });
        let index = self.members.len() - 1;
        if self.pin.is_some() {
            self.prompt(ctx, msg.endpoint, PIN_PROMPT);
        } else {
            self.join_mix(index);
        }
        Ok(())
    }
}

/// A member's call ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Depart {
    pub call_id: String,
}

impl Handler<Depart> for Conference {
    type Result = ();
    fn handle(&mut self, msg: Depart, _: &mut Self::Context) {
        let Some(index) = self.members.iter().position(|m| m.call_id == msg.call_id) else {
            return;
        };
        let member = self.members.remove(index);
        let _ = self.services.media.leave_room(member.endpoint);
        // Whispers to the member who left fall back to talking to everyone.
        let whisperers: Vec<usize> = (0..self.members.len())
            .filter(|&i| {
                matches!(&self.members[i].mode, MemberMode::Whisper { to } if *to == member.number || *to == member.call_id)
            })
            .collect();
        for i in whisperers {
            self.members[i].mode = MemberMode::Talk;
            let _ = self
                .services
                .media
                .set_mix_mode(self.members[i].endpoint, MixMode::TalkListen);
        }
        tracing::info!(room = %self.number, member = %member.number, "left the conference");
    }
}

/// A key pressed by a member (PIN entry).
#[derive(Message)]
#[rtype(result = "()")]
pub struct MemberDtmf {
    pub call_id: String,
    pub digit: char,
}

impl Handler<MemberDtmf> for Conference {
    type Result = ();
    fn handle(&mut self, msg: MemberDtmf, ctx: &mut Self::Context) {
        let Some(index) = self.members.iter().position(|m| m.call_id == msg.call_id) else {
            return;
        };
        if self.members[index].state == MemberState::Pin {
            self.on_pin_digit(ctx, index, msg.digit);
        }
    }
}

/// Command: change how a member (by number or call id) takes part.
#[derive(Message)]
#[rtype(result = "Result<MemberInfo, ConferenceError>")]
pub struct SetMemberMode {
    pub member: String,
    pub mode: MemberMode,
}

impl Handler<SetMemberMode> for Conference {
    type Result = Result<MemberInfo, ConferenceError>;
    fn handle(&mut self, msg: SetMemberMode, _: &mut Self::Context) -> Self::Result {
        let index = self
            .member(&msg.member)
            .ok_or_else(|| ConferenceError::NoSuchMember(msg.member.clone()))?;
        if let MemberMode::Whisper { to } = &msg.mode {
            if self.member(to) == Some(index) {
                return Err(ConferenceError::WhisperToSelf);
            }
        }
        let mix = self.mix_mode(&msg.mode)?;
        let member = &mut self.members[index];
        member.mode = msg.mode;
        if member.state == MemberState::Joined {
            let _ = self.services.media.set_mix_mode(member.endpoint, mix);
        }
        Ok(info(member))
    }
}

/// Command: end a member's call.
#[derive(Message)]
#[rtype(result = "Result<(), ConferenceError>")]
pub struct Kick {
    pub member: String,
}

impl Handler<Kick> for Conference {
    type Result = Result<(), ConferenceError>;
    fn handle(&mut self, msg: Kick, _: &mut Self::Context) -> Self::Result {
        let index = self
            .member(&msg.member)
            .ok_or_else(|| ConferenceError::NoSuchMember(msg.member.clone()))?;
        self.members[index].call.do_send(EndCall);
        Ok(())
    }
}

/// Query: the members, in order of arrival.
#[derive(Message)]
#[rtype(result = "Vec<MemberInfo>")]
pub struct ListMembers;

impl Handler<ListMembers> for Conference {
    type Result = MessageResult<ListMembers>;
    fn handle(&mut self, _: ListMembers, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.members.iter().map(info).collect())
    }
}

fn info(m: &Member) -> MemberInfo {
    MemberInfo {
        number: m.number.clone(),
        call_id: m.call_id.clone(),
        mode: m.mode.clone(),
        state: m.state.clone(),
        joined_at: m.joined_at,
    }
}

/// Command: the room's settings changed (admin API, provisioning).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub pin: Option<String>,
}

impl Handler<Reconfigure> for Conference {
    type Result = ();
    fn handle(&mut self, msg: Reconfigure, _: &mut Self::Context) {
        self.pin = msg.pin.filter(|p| !p.is_empty());
    }
}
