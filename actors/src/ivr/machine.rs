//! The IVR interpreter, sans-IO: [`IvrMachine`] runs one [`IvrDefinition`] on one call.
//!
//! The owner (the `Ivr` actor) feeds it [`IvrEvent`]s and carries out the [`IvrCommand`]s
//! it returns, in order:
//!
//! - `Play { id, .. }` → play on the caller's leg (stop on any key when `barge_in`), then
//!   report `PlaybackFinished { id }`, or `PlaybackFailed { id, .. }` when the prompt could
//!   not be played (missing file, TTS engine down). Every `Play` gets exactly one of them;
//!   reports for a playback the machine has stopped are ignored.
//! - `StopPlayback { id }` → stop it if it still plays (no report needed).
//! - `StartTimer { token, after }` → report `TimerFired(token)` after that long. Timers
//!   are never cancelled: the machine ignores tokens it no longer waits for.
//! - `HttpGet { id, url, timeout }` → GET `url` (it is complete: interface 13 parameters
//!   included), report `HttpAnswered { id, result }` with the status, the `Content-Type` and
//!   the body, or `Err` for a transport failure. The machine has its own timer; a late
//!   answer is ignored.
//! - `Transfer(target)` → leave the IVR for the target; report `TransferFailed` if that
//!   fails (the machine then goes to the node's `error` target).
//! - `RecordVoicemail { max }` / `StopVoicemail` → record the caller; report
//!   `VoicemailDone(Ok(path))` (or `Err`) once the file is closed.
//! - `Hangup` → hang the call up. `Warn { node, problem }` → log it.
//!
//! Keys arrive as `Dtmf(key)`, the caller hanging up as `CallerHungUp`. The caller is
//! never left waiting without a timer: every wait for keys, an HTTP answer or the end of a
//! recording has one, and retries that run out lead to the node's failure target or to a
//! hang-up.
//!
//! [`IvrRecord`] is the running call-log record: `ivrAnwerTime`, `ivrAnwerDuration`,
//! `dtmfkey`, `ivrpoint`, `ivrvoicemail` and the `business` the outcome implies.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::definition::{
    tone_path, HttpNode, InputRules, IvrDefinition, Node, NodeKind, Prompt, TransferKind,
};

/// Longest HTTP answer spoken, in characters; a longer one is treated as garbage.
pub const MAX_ANSWER_CHARS: usize = 1000;
/// How long the machine waits for `VoicemailDone` after `StopVoicemail`.
pub const VOICEMAIL_GRACE: Duration = Duration::from_secs(5);
/// Most nodes entered in one step without waiting for anything (a safety net; loops of
/// branches are rejected when the definition is loaded).
pub const MAX_HOPS: u32 = 64;

/// What to play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptRef {
    /// A WAV file, relative to the storage directory (`storage.dir`).
    File(PathBuf),
    /// A voice (tone) file by id: `tones/<id>.wav` below the storage directory.
    Tone(u32),
    /// Text to speak by TTS (variables already substituted).
    Tts(String),
}

impl PromptRef {
    /// The file to play, relative to the storage directory (`None` for TTS).
    pub fn relative_path(&self) -> Option<PathBuf> {
        match self {
            PromptRef::File(p) => Some(p.clone()),
            PromptRef::Tone(id) => Some(tone_path(*id)),
            PromptRef::Tts(_) => None,
        }
    }
}

/// Where a `Transfer` goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransferTarget {
    /// An extension: ring it.
    Ext(String),
    /// A group: queue for its agents.
    Group(String),
    /// An outside number, through the default trunk.
    Number(String),
}

impl TransferTarget {
    /// True for an outside number (business `IVR_OUT_TRANSFER`).
    pub fn is_outside(&self) -> bool {
        matches!(self, TransferTarget::Number(_))
    }
}

impl fmt::Display for TransferTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferTarget::Ext(n) => write!(f, "ext:{n}"),
            TransferTarget::Group(n) => write!(f, "group:{n}"),
            TransferTarget::Number(n) => write!(f, "number:{n}"),
        }
    }
}

/// What the owner must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IvrCommand {
    /// Play `source` to the caller; a key stops it when `barge_in`.
    Play {
        id: u64,
        source: PromptRef,
        barge_in: bool,
    },
    /// Stop playback `id` if it still plays.
    StopPlayback { id: u64 },
    /// Report `TimerFired(token)` after `after`.
    StartTimer { token: u64, after: Duration },
    /// GET `url` (interface 13) within `timeout`; report `HttpAnswered { id, .. }`.
    HttpGet {
        id: u64,
        url: String,
        timeout: Duration,
    },
    /// Leave the IVR for `target`.
    Transfer(TransferTarget),
    /// Record the caller for at most `max`; report `VoicemailDone`.
    RecordVoicemail { max: Duration },
    /// End the recording now; report `VoicemailDone`.
    StopVoicemail,
    /// Hang the call up.
    Hangup,
    /// Something went wrong and the machine took its fallback: log it.
    Warn { node: String, problem: String },
}

/// The answer to an `HttpGet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    /// The `Content-Type` header, if any (its `charset` must be UTF-8 when given).
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl HttpReply {
    /// A `200 text/plain;charset=UTF-8` answer.
    pub fn text(body: &str) -> Self {
        HttpReply {
            status: 200,
            content_type: Some("text/plain;charset=UTF-8".into()),
            body: body.as_bytes().to_vec(),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IvrEvent {
    /// Playback `id` ended (completed, or stopped by a key).
    PlaybackFinished { id: u64 },
    /// Playback `id` could not be played; the machine skips it.
    PlaybackFailed { id: u64, error: String },
    /// The caller pressed a key (`0`-`9`, `*`, `#`, `A`-`D`).
    Dtmf(char),
    /// Timer `token` expired.
    TimerFired(u64),
    /// The answer to `HttpGet { id, .. }`; `Err` for a transport failure.
    HttpAnswered {
        id: u64,
        result: Result<HttpReply, String>,
    },
    /// The voicemail is closed: its path (for `ivrvoicemail` and interface 41), or why it
    /// failed.
    VoicemailDone(Result<String, String>),
    /// The last `Transfer` did not succeed.
    TransferFailed(String),
    /// The caller hung up.
    CallerHungUp,
}

/// The call the menu runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IvrFacts {
    /// The calling number (`${caller}`, interface 13 `caller`).
    pub caller: String,
    /// The routed number, e.g. the access number `1000` (`${callee}`, `callee`).
    pub callee: String,
    /// The call id (`${callid}`, interface 13 `id`).
    pub callid: String,
    /// Values given by whoever started the menu, e.g. interface 27's `ttsXXX` parameters.
    pub vars: BTreeMap<String, String>,
}

/// The call-log `business` an IVR outcome implies (spec Part C.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IvrBusiness {
    /// The call ended in the IVR without a transfer.
    IvrIncoming,
    /// Transferred to an extension or a group.
    IvrTransfer,
    /// Transferred to an outside number.
    IvrOutTransfer,
    /// The call ended in the IVR after the caller left a voicemail.
    VoiceMail,
}

impl IvrBusiness {
    /// The value written to the call log.
    pub fn as_str(self) -> &'static str {
        match self {
            IvrBusiness::IvrIncoming => "IVR_INCOMING",
            IvrBusiness::IvrTransfer => "IVR_TRANSFER",
            IvrBusiness::IvrOutTransfer => "IVR_OUT_TRANSFER",
            IvrBusiness::VoiceMail => "VOICE_MAIL",
        }
    }
}

/// How the IVR ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IvrOutcome {
    /// A `Transfer` was issued.
    Transferred(TransferTarget),
    /// The menu hung up (`<hangup>`, a node without `next`, retries used up, a failure
    /// without a fallback).
    HungUp,
    /// The caller hung up.
    CallerHungUp,
}

/// The running call-log record of the IVR phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IvrRecord {
    /// `ivrAnwerTime`: when the menu started, epoch ms.
    pub answered_at_ms: i64,
    /// When the IVR phase ended (transfer or hang-up), epoch ms.
    pub ended_at_ms: Option<i64>,
    /// `dtmfkey`: every key the caller pressed in the IVR, in order.
    pub dtmfkey: String,
    /// `ivrpoint`: the node that transferred the call; until then, and when the call ends
    /// in the IVR, the last node entered.
    pub ivrpoint: String,
    /// Every node entered, in order (a retry does not enter again).
    pub path: Vec<String>,
    /// `ivrvoicemail`: the voicemail the caller left.
    pub voicemail: Option<String>,
    /// None while the IVR runs.
    pub outcome: Option<IvrOutcome>,
}

impl IvrRecord {
    /// `ivrAnwerDuration`: whole seconds (rounded) from start to the end of the IVR phase,
    /// or to `now_ms` while it runs.
    pub fn duration_secs(&self, now_ms: i64) -> i64 {
        let end = self.ended_at_ms.unwrap_or(now_ms);
        ((end - self.answered_at_ms).max(0) + 500) / 1000
    }

    /// The call-log `business` of the outcome; None while the IVR runs.
    pub fn business(&self) -> Option<IvrBusiness> {
        Some(match self.outcome.as_ref()? {
            IvrOutcome::Transferred(t) if t.is_outside() => IvrBusiness::IvrOutTransfer,
            IvrOutcome::Transferred(_) => IvrBusiness::IvrTransfer,
            IvrOutcome::HungUp | IvrOutcome::CallerHungUp if self.voicemail.is_some() => {
                IvrBusiness::VoiceMail
            }
            IvrOutcome::HungUp | IvrOutcome::CallerHungUp => IvrBusiness::IvrIncoming,
        })
    }
}

/// What runs after a prompt sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Then {
    /// Go to the node (none: hang up).
    Next(Option<String>),
    /// Wait for keys at the current `<collect>`/`<menu>`.
    Keys,
    /// Start recording at the current `<voicemail>`.
    Record,
    /// Transfer at the current `<transfer>`.
    Transfer,
    Hangup,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Idle,
    Prompting {
        queue: VecDeque<PromptRef>,
        playing: u64,
        barge_in: bool,
        then: Then,
    },
    Keys {
        timer: u64,
    },
    Http {
        request: u64,
        timer: u64,
        queue: VecDeque<PromptRef>,
        playing: Option<u64>,
    },
    Recording {
        timer: u64,
        stopping: bool,
    },
    Transferred,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Invalid,
    NoInput,
}

/// One menu running on one call. See the module documentation.
#[derive(Debug)]
pub struct IvrMachine {
    def: Arc<IvrDefinition>,
    facts: IvrFacts,
    collected: BTreeMap<String, String>,
    record: IvrRecord,
    phase: Phase,
    node: Option<String>,
    next_id: u64,
    failures: HashMap<String, u32>,
    keys: String,
    typeahead: VecDeque<char>,
    hops: u32,
    caller_gone: bool,
    now_ms: i64,
}

impl IvrMachine {
    /// A machine for `def` on the call `facts`; nothing happens before [`start`](Self::start).
    pub fn new(def: Arc<IvrDefinition>, facts: IvrFacts) -> Self {
        IvrMachine {
            def,
            facts,
            collected: BTreeMap::new(),
            record: IvrRecord::default(),
            phase: Phase::Idle,
            node: None,
            next_id: 0,
            failures: HashMap::new(),
            keys: String::new(),
            typeahead: VecDeque::new(),
            hops: 0,
            caller_gone: false,
            now_ms: 0,
        }
    }

    /// Enter the start node (`now_ms`: epoch ms, the call log's `ivrAnwerTime`). Only the
    /// first call does anything.
    pub fn start(&mut self, now_ms: i64) -> Vec<IvrCommand> {
        let mut out = Vec::new();
        if self.phase != Phase::Idle || self.node.is_some() {
            return out;
        }
        self.now_ms = now_ms;
        self.hops = 0;
        self.record.answered_at_ms = now_ms;
        let start = self.def.start.clone();
        self.enter(&start, &mut out);
        out
    }

    /// Feed one event at `now_ms` (epoch ms); the commands to carry out, in order.
    pub fn on_event(&mut self, event: IvrEvent, now_ms: i64) -> Vec<IvrCommand> {
        let mut out = Vec::new();
        self.now_ms = now_ms;
        self.hops = 0;
        if self.node.is_none() {
            return out;
        }
        match event {
            IvrEvent::CallerHungUp => self.on_caller_hung_up(&mut out),
            IvrEvent::Dtmf(key) => {
                if !matches!(self.phase, Phase::Done | Phase::Transferred) {
                    self.record.dtmfkey.push(key);
                    self.on_key(key, &mut out);
                }
            }
            IvrEvent::PlaybackFinished { id } => self.on_playback_end(id, None, &mut out),
            IvrEvent::PlaybackFailed { id, error } => {
                self.on_playback_end(id, Some(error), &mut out)
            }
            IvrEvent::TimerFired(token) => self.on_timer(token, &mut out),
            IvrEvent::HttpAnswered { id, result } => self.on_http(id, result, &mut out),
            IvrEvent::VoicemailDone(result) => self.on_voicemail(result, &mut out),
            IvrEvent::TransferFailed(reason) => self.on_transfer_failed(reason, &mut out),
        }
        out
    }

    /// The running call-log record.
    pub fn record(&self) -> &IvrRecord {
        &self.record
    }

    /// The variables the menu has set (`var=` of collect, menu, http, voicemail), e.g.
    /// for interface 27's result (`state=1;satisfact=8`).
    pub fn variables(&self) -> &BTreeMap<String, String> {
        &self.collected
    }

    /// The value of `${name}`: a call fact, a variable the menu set, or a starter's value.
    pub fn lookup(&self, name: &str) -> Option<&str> {
        match name {
            "caller" => Some(&self.facts.caller),
            "callee" => Some(&self.facts.callee),
            "callid" => Some(&self.facts.callid),
            _ => self
                .collected
                .get(name)
                .or_else(|| self.facts.vars.get(name))
                .map(String::as_str),
        }
    }

    /// The node the caller is at (the last one entered).
    pub fn current_node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// True once the IVR is over: transferred or hung up.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done | Phase::Transferred)
    }

    /// The menu being run.
    pub fn definition(&self) -> &Arc<IvrDefinition> {
        &self.def
    }

    // -----------------------------------------------------------------------------------

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn start_timer(&mut self, after: Duration, out: &mut Vec<IvrCommand>) -> u64 {
        let token = self.new_id();
        out.push(IvrCommand::StartTimer { token, after });
        token
    }

    fn current(&self) -> Option<(Arc<IvrDefinition>, String)> {
        Some((Arc::clone(&self.def), self.node.clone()?))
    }

    fn goto(&mut self, target: Option<String>, out: &mut Vec<IvrCommand>) {
        match target {
            Some(t) => self.enter(&t, out),
            None => self.hang_up(out),
        }
    }

    fn enter(&mut self, id: &str, out: &mut Vec<IvrCommand>) {
        self.hops += 1;
        if self.hops > MAX_HOPS {
            out.push(IvrCommand::Warn {
                node: id.to_owned(),
                problem: format!("{MAX_HOPS} nodes entered without waiting for anything"),
            });
            self.hang_up(out);
            return;
        }
        let def = Arc::clone(&self.def);
        let Some(node) = def.node(id) else {
            // Validation makes this unreachable; never leave the caller hanging.
            out.push(IvrCommand::Warn {
                node: id.to_owned(),
                problem: "no such node".into(),
            });
            self.hang_up(out);
            return;
        };
        self.node = Some(id.to_owned());
        self.record.ivrpoint = id.to_owned();
        self.record.path.push(id.to_owned());
        self.keys.clear();
        match &node.kind {
            NodeKind::Play(p) => {
                if !self.typeahead.is_empty() {
                    if p.barge_in {
                        // The caller is typing ahead: skip what may be skipped.
                        self.goto(p.next.clone(), out);
                        return;
                    }
                    self.typeahead.clear();
                }
                self.prompt(&p.prompts, &[], p.barge_in, Then::Next(p.next.clone()), out);
            }
            NodeKind::Collect(_) | NodeKind::Menu(_) => self.begin_input(node, None, out),
            NodeKind::Branch(b) => {
                let value = self.lookup(&b.var).unwrap_or("");
                let next = b
                    .cases
                    .iter()
                    .find(|c| c.value == value)
                    .map_or(&b.default, |c| &c.next)
                    .clone();
                self.enter(&next, out);
            }
            NodeKind::Transfer(t) => {
                self.typeahead.clear();
                self.prompt(&t.prompts, &[], false, Then::Transfer, out);
            }
            NodeKind::Http(h) => {
                self.typeahead.clear();
                self.start_http(h, out);
            }
            NodeKind::Voicemail(v) => {
                self.typeahead.clear();
                self.prompt(&v.prompts, &[], false, Then::Record, out);
            }
            NodeKind::Hangup(h) => {
                self.typeahead.clear();
                self.prompt(&h.prompts, &[], false, Then::Hangup, out);
            }
        }
    }

    fn render(&self, p: &Prompt) -> Option<PromptRef> {
        match p {
            Prompt::Tone(id) => Some(PromptRef::Tone(*id)),
            Prompt::File(f) => Some(PromptRef::File(PathBuf::from(f))),
            Prompt::Tts(t) => {
                let text = t.render(|v| self.lookup(v));
                (!text.trim().is_empty()).then_some(PromptRef::Tts(text))
            }
        }
    }

    /// Play `first` then `then_prompts` (rendered now), then run `then`.
    fn prompt(
        &mut self,
        first: &[Prompt],
        second: &[Prompt],
        barge_in: bool,
        then: Then,
        out: &mut Vec<IvrCommand>,
    ) {
        let queue: VecDeque<PromptRef> = first
            .iter()
            .chain(second)
            .filter_map(|p| self.render(p))
            .collect();
        self.play_next(queue, barge_in, then, out);
    }

    fn play_next(
        &mut self,
        mut queue: VecDeque<PromptRef>,
        barge_in: bool,
        then: Then,
        out: &mut Vec<IvrCommand>,
    ) {
        if let Some(source) = queue.pop_front() {
            let id = self.new_id();
            out.push(IvrCommand::Play {
                id,
                source,
                barge_in,
            });
            self.phase = Phase::Prompting {
                queue,
                playing: id,
                barge_in,
                then,
            };
            return;
        }
        self.after_prompt(then, out);
    }

    fn after_prompt(&mut self, then: Then, out: &mut Vec<IvrCommand>) {
        match then {
            Then::Next(next) => self.goto(next, out),
            Then::Keys => self.await_keys(out),
            Then::Record => {
                let Some((def, id)) = self.current() else {
                    return;
                };
                if let Some(NodeKind::Voicemail(v)) = def.node(&id).map(|n| &n.kind) {
                    out.push(IvrCommand::RecordVoicemail { max: v.max });
                    let timer = self.start_timer(v.max, out);
                    self.phase = Phase::Recording {
                        timer,
                        stopping: false,
                    };
                }
            }
            Then::Transfer => self.transfer(out),
            Then::Hangup => self.hang_up(out),
        }
    }

    fn input_rules<'d>(&self, def: &'d IvrDefinition, id: &str) -> Option<&'d InputRules> {
        match &def.node(id)?.kind {
            NodeKind::Collect(c) => Some(&c.input),
            NodeKind::Menu(m) => Some(&m.input),
            _ => None,
        }
    }

    /// Wait for a key at the current input node.
    fn await_keys(&mut self, out: &mut Vec<IvrCommand>) {
        let Some((def, id)) = self.current() else {
            return;
        };
        let Some(input) = self.input_rules(&def, &id) else {
            return;
        };
        let timer = self.start_timer(input.timeout, out);
        self.phase = Phase::Keys { timer };
    }

    /// Prompt at a `<collect>`/`<menu>`, first time (using type-ahead keys) or as a retry.
    fn begin_input(&mut self, node: &Node, retry: Option<Failure>, out: &mut Vec<IvrCommand>) {
        let (prompts, input) = match &node.kind {
            NodeKind::Collect(c) => (&c.prompts, &c.input),
            NodeKind::Menu(m) => (&m.prompts, &m.input),
            _ => return,
        };
        self.keys.clear();
        match retry {
            None if !self.typeahead.is_empty() => {
                self.await_keys(out);
                let entered = self.record.path.len();
                while let Some(key) = self.typeahead.pop_front() {
                    self.input_key(key, out);
                    if self.record.path.len() != entered
                        || !matches!(self.phase, Phase::Keys { .. })
                    {
                        break;
                    }
                }
            }
            None => self.prompt(prompts, &[], input.barge_in, Then::Keys, out),
            Some(Failure::Invalid) => self.prompt(
                &input.invalid_prompts,
                prompts,
                input.barge_in,
                Then::Keys,
                out,
            ),
            Some(Failure::NoInput) => self.prompt(
                &input.no_input_prompts,
                prompts,
                input.barge_in,
                Then::Keys,
                out,
            ),
        }
    }

    fn on_key(&mut self, key: char, out: &mut Vec<IvrCommand>) {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Prompting {
                playing,
                barge_in: true,
                then: Then::Keys,
                ..
            } => {
                out.push(IvrCommand::StopPlayback { id: playing });
                self.phase = Phase::Keys { timer: 0 };
                self.input_key(key, out);
            }
            Phase::Prompting {
                playing,
                barge_in: true,
                then: Then::Next(next),
                ..
            } => {
                out.push(IvrCommand::StopPlayback { id: playing });
                self.typeahead.push_back(key);
                self.goto(next, out);
            }
            Phase::Keys { timer } => {
                self.phase = Phase::Keys { timer };
                self.input_key(key, out);
            }
            Phase::Recording {
                timer,
                stopping: false,
            } => {
                let terminator = self
                    .current()
                    .and_then(|(def, id)| match &def.node(&id)?.kind {
                        NodeKind::Voicemail(v) => v.terminator,
                        _ => None,
                    });
                if terminator == Some(key) {
                    out.push(IvrCommand::StopVoicemail);
                    let timer = self.start_timer(VOICEMAIL_GRACE, out);
                    self.phase = Phase::Recording {
                        timer,
                        stopping: true,
                    };
                } else {
                    self.phase = Phase::Recording {
                        timer,
                        stopping: false,
                    };
                }
            }
            other => self.phase = other,
        }
    }

    /// A key at a `<collect>`/`<menu>` waiting for keys.
    fn input_key(&mut self, key: char, out: &mut Vec<IvrCommand>) {
        let Some((def, id)) = self.current() else {
            return;
        };
        let Some(node) = def.node(&id) else {
            return;
        };
        match &node.kind {
            NodeKind::Collect(c) => {
                if c.terminator == Some(key) {
                    if self.keys.chars().count() >= c.min {
                        self.accept(&id, Some(&c.var), c.next.clone(), out);
                    } else {
                        self.input_failed(node, Failure::Invalid, out);
                    }
                    return;
                }
                self.keys.push(key);
                if self.keys.chars().count() >= c.length {
                    self.accept(&id, Some(&c.var), c.next.clone(), out);
                } else {
                    self.await_keys(out);
                }
            }
            NodeKind::Menu(m) => {
                self.keys.push(key);
                let keys = self.keys.as_str();
                let longer = m
                    .cases
                    .iter()
                    .any(|c| c.digits.len() > keys.len() && c.digits.starts_with(keys));
                let exact = m.cases.iter().find(|c| c.digits == keys);
                if longer {
                    self.await_keys(out);
                } else if let Some(c) = exact {
                    self.accept(&id, m.var.as_deref(), c.next.clone(), out);
                } else if let Some(d) = &m.default {
                    self.accept(&id, m.var.as_deref(), d.clone(), out);
                } else {
                    self.input_failed(node, Failure::Invalid, out);
                }
            }
            _ => {}
        }
    }

    fn accept(&mut self, id: &str, var: Option<&str>, next: String, out: &mut Vec<IvrCommand>) {
        if let Some(var) = var {
            self.collected.insert(var.to_owned(), self.keys.clone());
        }
        self.failures.remove(id);
        self.keys.clear();
        self.enter(&next, out);
    }

    fn input_failed(&mut self, node: &Node, failure: Failure, out: &mut Vec<IvrCommand>) {
        let input = match &node.kind {
            NodeKind::Collect(c) => &c.input,
            NodeKind::Menu(m) => &m.input,
            _ => return,
        };
        self.typeahead.clear();
        let count = self.failures.entry(node.id.clone()).or_insert(0);
        *count += 1;
        if *count <= input.retries {
            self.begin_input(node, Some(failure), out);
            return;
        }
        self.failures.remove(&node.id);
        let target = match failure {
            Failure::Invalid => input.invalid.clone(),
            Failure::NoInput => input.no_input.clone().or_else(|| input.invalid.clone()),
        };
        self.goto(target, out);
    }

    fn on_playback_end(&mut self, id: u64, error: Option<String>, out: &mut Vec<IvrCommand>) {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Prompting {
                queue,
                playing,
                barge_in,
                then,
            } if playing == id => {
                if let Some(e) = error {
                    self.warn(format!("prompt could not be played: {e}"), out);
                }
                self.play_next(queue, barge_in, then, out);
            }
            Phase::Http {
                request,
                timer,
                mut queue,
                playing: Some(playing),
            } if playing == id => {
                if let Some(e) = error {
                    self.warn(format!("prompt could not be played: {e}"), out);
                }
                let playing = queue.pop_front().map(|source| {
                    let id = self.new_id();
                    out.push(IvrCommand::Play {
                        id,
                        source,
                        barge_in: false,
                    });
                    id
                });
                self.phase = Phase::Http {
                    request,
                    timer,
                    queue,
                    playing,
                };
            }
            other => self.phase = other,
        }
    }

    fn on_timer(&mut self, token: u64, out: &mut Vec<IvrCommand>) {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Keys { timer } if timer == token => {
                self.phase = Phase::Keys { timer };
                self.keys_timed_out(out);
            }
            Phase::Http { timer, playing, .. } if timer == token => {
                if let Some(id) = playing {
                    out.push(IvrCommand::StopPlayback { id });
                }
                let secs = self
                    .current()
                    .and_then(|(def, id)| match &def.node(&id)?.kind {
                        NodeKind::Http(h) => Some(h.timeout.as_secs_f64()),
                        _ => None,
                    })
                    .unwrap_or_default();
                self.http_failed(format!("HTTP query: no answer within {secs} s"), out);
            }
            Phase::Recording {
                timer,
                stopping: false,
            } if timer == token => {
                out.push(IvrCommand::StopVoicemail);
                let timer = self.start_timer(VOICEMAIL_GRACE, out);
                self.phase = Phase::Recording {
                    timer,
                    stopping: true,
                };
            }
            Phase::Recording {
                timer,
                stopping: true,
            } if timer == token => {
                self.voicemail_failed("the recording did not end".into(), out);
            }
            other => self.phase = other,
        }
    }

    fn keys_timed_out(&mut self, out: &mut Vec<IvrCommand>) {
        let Some((def, id)) = self.current() else {
            return;
        };
        let Some(node) = def.node(&id) else {
            return;
        };
        if self.keys.is_empty() {
            self.input_failed(node, Failure::NoInput, out);
            return;
        }
        match &node.kind {
            NodeKind::Collect(c) => {
                if self.keys.chars().count() >= c.min {
                    self.accept(&id, Some(&c.var), c.next.clone(), out);
                } else {
                    self.input_failed(node, Failure::Invalid, out);
                }
            }
            NodeKind::Menu(m) => {
                let exact = m.cases.iter().find(|c| c.digits == self.keys);
                if let Some(c) = exact {
                    self.accept(&id, m.var.as_deref(), c.next.clone(), out);
                } else if let Some(d) = &m.default {
                    self.accept(&id, m.var.as_deref(), d.clone(), out);
                } else {
                    self.input_failed(node, Failure::Invalid, out);
                }
            }
            _ => {}
        }
    }

    fn start_http(&mut self, h: &HttpNode, out: &mut Vec<IvrCommand>) {
        let url = self.http_url(h);
        let request = self.new_id();
        out.push(IvrCommand::HttpGet {
            id: request,
            url,
            timeout: h.timeout,
        });
        let timer = self.start_timer(h.timeout, out);
        let mut queue: VecDeque<PromptRef> =
            h.prompts.iter().filter_map(|p| self.render(p)).collect();
        let playing = queue.pop_front().map(|source| {
            let id = self.new_id();
            out.push(IvrCommand::Play {
                id,
                source,
                barge_in: false,
            });
            id
        });
        self.phase = Phase::Http {
            request,
            timer,
            queue,
            playing,
        };
    }

    /// The URL of interface 13: the node's URL with its static parameters, then each
    /// `params` input, then `caller`, `callee` and `id`, values percent-encoded as UTF-8.
    fn http_url(&self, h: &HttpNode) -> String {
        let mut url = h.url.clone();
        if !url.contains('?') {
            url.push('?');
        }
        let mut add = |name: &str, value: &str| {
            if !url.ends_with('?') && !url.ends_with('&') {
                url.push('&');
            }
            url.push_str(&encode_query_value(name));
            url.push('=');
            url.push_str(&encode_query_value(value));
        };
        for (name, var) in &h.params {
            add(name, self.lookup(var).unwrap_or(""));
        }
        add("caller", &self.facts.caller);
        add("callee", &self.facts.callee);
        add("id", &self.facts.callid);
        url
    }

    fn on_http(&mut self, id: u64, result: Result<HttpReply, String>, out: &mut Vec<IvrCommand>) {
        let (request, playing) = match &self.phase {
            Phase::Http {
                request, playing, ..
            } => (*request, *playing),
            _ => return,
        };
        if request != id {
            return;
        }
        if let Some(p) = playing {
            out.push(IvrCommand::StopPlayback { id: p });
        }
        let Some((def, node_id)) = self.current() else {
            return;
        };
        let Some(NodeKind::Http(h)) = def.node(&node_id).map(|n| &n.kind) else {
            return;
        };
        match result.and_then(|r| check_answer(&r)) {
            Ok(text) => {
                self.collected.insert(h.var.clone(), text.clone());
                if h.speak {
                    let queue = VecDeque::from([PromptRef::Tts(text)]);
                    self.play_next(queue, false, Then::Next(h.next.clone()), out);
                } else {
                    self.goto(h.next.clone(), out);
                }
            }
            Err(problem) => self.http_failed(format!("HTTP query: {problem}"), out),
        }
    }

    fn http_failed(&mut self, problem: String, out: &mut Vec<IvrCommand>) {
        let own = self
            .current()
            .and_then(|(def, id)| match &def.node(&id)?.kind {
                NodeKind::Http(h) => h.error.clone(),
                _ => None,
            });
        self.fail(own, problem, out);
    }

    fn on_voicemail(&mut self, result: Result<String, String>, out: &mut Vec<IvrCommand>) {
        if !matches!(self.phase, Phase::Recording { .. }) {
            return;
        }
        match result {
            Ok(path) => {
                self.record.voicemail = Some(path.clone());
                let Some((def, id)) = self.current() else {
                    return;
                };
                let Some(NodeKind::Voicemail(v)) = def.node(&id).map(|n| &n.kind) else {
                    return;
                };
                self.collected.insert(v.var.clone(), path);
                if self.caller_gone {
                    self.phase = Phase::Done;
                } else {
                    self.goto(v.next.clone(), out);
                }
            }
            Err(e) => self.voicemail_failed(format!("voicemail recording failed: {e}"), out),
        }
    }

    fn voicemail_failed(&mut self, problem: String, out: &mut Vec<IvrCommand>) {
        if self.caller_gone {
            self.warn(problem, out);
            self.phase = Phase::Done;
            return;
        }
        let own = self
            .current()
            .and_then(|(def, id)| match &def.node(&id)?.kind {
                NodeKind::Voicemail(v) => v.error.clone(),
                _ => None,
            });
        self.fail(own, problem, out);
    }

    fn transfer(&mut self, out: &mut Vec<IvrCommand>) {
        let Some((def, id)) = self.current() else {
            return;
        };
        let Some(NodeKind::Transfer(t)) = def.node(&id).map(|n| &n.kind) else {
            return;
        };
        let number = t.number.render(|v| self.lookup(v));
        if !t.kind.accepts(&number) {
            let problem = format!(
                "transfer to {}:{}: {number:?} is not a valid number",
                t.kind.as_str(),
                t.number.source()
            );
            self.fail(t.error.clone(), problem, out);
            return;
        }
        let target = match t.kind {
            TransferKind::Ext => TransferTarget::Ext(number),
            TransferKind::Group => TransferTarget::Group(number),
            TransferKind::Number => TransferTarget::Number(number),
        };
        out.push(IvrCommand::Transfer(target.clone()));
        self.record.outcome = Some(IvrOutcome::Transferred(target));
        self.record.ended_at_ms = Some(self.now_ms);
        self.phase = Phase::Transferred;
    }

    fn on_transfer_failed(&mut self, reason: String, out: &mut Vec<IvrCommand>) {
        if self.phase != Phase::Transferred {
            return;
        }
        self.record.outcome = None;
        self.record.ended_at_ms = None;
        self.phase = Phase::Idle;
        let own = self
            .current()
            .and_then(|(def, id)| match &def.node(&id)?.kind {
                NodeKind::Transfer(t) => t.error.clone(),
                _ => None,
            });
        self.fail(own, format!("transfer failed: {reason}"), out);
    }

    fn on_caller_hung_up(&mut self, out: &mut Vec<IvrCommand>) {
        match self.phase {
            Phase::Done | Phase::Transferred => {}
            Phase::Recording { stopping, .. } => {
                // Hanging up is the usual end of a voicemail: keep it.
                self.caller_gone = true;
                self.finish(IvrOutcome::CallerHungUp);
                if !stopping {
                    out.push(IvrCommand::StopVoicemail);
                }
                let timer = self.start_timer(VOICEMAIL_GRACE, out);
                self.phase = Phase::Recording {
                    timer,
                    stopping: true,
                };
            }
            _ => {
                self.caller_gone = true;
                self.finish(IvrOutcome::CallerHungUp);
                self.phase = Phase::Done;
            }
        }
    }

    /// Report `problem` at the current node, then go to `own` target, the menu's `error`
    /// node (unless that is where it failed) or hang up.
    fn fail(&mut self, own: Option<String>, problem: String, out: &mut Vec<IvrCommand>) {
        self.warn(problem, out);
        let here = self.node.clone();
        let target = own.or_else(|| self.def.error.clone().filter(|e| Some(e) != here.as_ref()));
        self.goto(target, out);
    }

    fn warn(&self, problem: String, out: &mut Vec<IvrCommand>) {
        out.push(IvrCommand::Warn {
            node: self.node.clone().unwrap_or_default(),
            problem,
        });
    }

    fn hang_up(&mut self, out: &mut Vec<IvrCommand>) {
        out.push(IvrCommand::Hangup);
        self.finish(IvrOutcome::HungUp);
        self.phase = Phase::Done;
    }

    fn finish(&mut self, outcome: IvrOutcome) {
        self.record.outcome = Some(outcome);
        self.record.ended_at_ms = Some(self.now_ms);
    }
}

/// Judge an interface 13 answer: 2xx, UTF-8 (a `charset` other than UTF-8 is refused),
/// plain text (not an HTML/XML document), not empty, at most [`MAX_ANSWER_CHARS`]
/// characters. The trimmed text, with control characters turned into spaces.
pub fn check_answer(reply: &HttpReply) -> Result<String, String> {
    if !(200..300).contains(&reply.status) {
        return Err(format!("HTTP status {}", reply.status));
    }
    if let Some(ct) = &reply.content_type {
        let charset = ct.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("charset")
                .then(|| v.trim().trim_matches('"').to_ascii_lowercase())
        });
        if let Some(cs) = charset {
            if cs != "utf-8" && cs != "utf8" {
                return Err(format!("the answer's charset is {cs}, not UTF-8"));
            }
        }
    }
    let text = std::str::from_utf8(&reply.body).map_err(|_| "the answer is not UTF-8 text")?;
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Err("the answer is empty".into());
    }
    if text.starts_with('<') {
        return Err("the answer is markup (HTML or XML), not plain text".into());
    }
    if text.chars().count() > MAX_ANSWER_CHARS {
        return Err(format!(
            "the answer is longer than {MAX_ANSWER_CHARS} characters"
        ));
    }
    Ok(text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect())
}

/// Percent-encode a query name or value as UTF-8: everything but the RFC 3986 unreserved
/// characters (`A-Z a-z 0-9 - . _ ~`) and `@` `:` (allowed in a query, and kept like the
/// manual's `id=…@host:port`). A space is `%20`, `#` is `%23`, `你` is `%E4%BD%A0`.
pub fn encode_query_value(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@' | b':') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
    out
}
