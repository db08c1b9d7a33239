//! The IVR menu definition format (`docs/ivr.md`): an XML document, parsed and validated
//! into an [`IvrDefinition`]. Plain Rust; the interpreter that runs one on a call is
//! `actors::ivr::machine`.
//!
//! It lives in `entities` because the data layer rejects a bad document before storing it
//! ([`super::IvrInput::validate`], run by provisioning and every upsert), the same way it
//! parses routing targets; `actors` re-exports it as `actors::ivr::definition`.
//!
//! [`IvrDefinition::parse`] rejects, with the node and the problem named
//! ([`DefinitionError`]): malformed XML, an unknown node type, an unknown attribute or
//! child element, a bad attribute value, a missing or duplicate id, a missing or dangling
//! `start`, a dangling target (`next`, `invalid`, `no-input`, `error`, a `<case>` or
//! `<default>`), a node that must prompt without a prompt, a variable nothing sets, a loop
//! of branches. Prompt and tone files are checked by [`IvrDefinition::check_files`] against
//! the storage directory, where that directory is known (the switch, when it loads menus).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// Largest accepted document.
pub const MAX_DEFINITION_BYTES: usize = 1 << 20;
/// Variables every menu can read: the call's facts.
pub const BUILTIN_VARS: [&str; 3] = ["caller", "callee", "callid"];
/// Run-time variables given by the starter of the menu (interface 27's `ttsXXX`
/// parameters) start with this; the definition may read them without setting them.
pub const EXTERNAL_VAR_PREFIX: &str = "tts";
/// Default seconds to wait for a key (`timeout` of `<ivr>`, `<collect>`, `<menu>`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of times a prompt is repeated after invalid input or no input.
pub const DEFAULT_RETRIES: u32 = 2;
/// Default seconds an `<http>` query may take (spec D-10: 10 s for interface 13).
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default longest voicemail, seconds.
pub const DEFAULT_VOICEMAIL_MAX: Duration = Duration::from_secs(60);
/// The node types, as written.
pub const NODE_TYPES: [&str; 8] = [
    "play",
    "collect",
    "menu",
    "branch",
    "transfer",
    "http",
    "voicemail",
    "hangup",
];

/// What is wrong with a definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not well-formed XML, not an `<ivr>` document, or too large.
    Syntax,
    /// An element under `<ivr>` that is not a node type.
    UnknownNodeType,
    /// An attribute or child element the node does not take, a missing required attribute
    /// or a value out of range.
    BadAttribute,
    /// Two nodes with the same id.
    DuplicateId,
    /// `<ivr>` without `start`, or `start` naming no node.
    MissingStart,
    /// A target (`next`, `<case next>`, …) naming no node.
    DanglingTarget,
    /// A node that must play a prompt has none.
    MissingPrompt,
    /// A prompt or tone file that does not exist ([`IvrDefinition::check_files`]).
    MissingFile,
    /// `${name}` or a `var` reference that no node sets and is not a call fact.
    UnknownVariable,
    /// Branches that lead back to themselves without waiting for the caller.
    Loop,
}

/// A rejected definition: the node (when the problem is in one), its line and the problem.
/// Displayed as `node "menu" (line 7): <case digits="3"> next="salse" names no node`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    pub kind: ErrorKind,
    /// The id of the node at fault.
    pub node: Option<String>,
    /// 1-based line of the element at fault.
    pub line: Option<u32>,
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.node, self.line) {
            (Some(n), Some(l)) => write!(f, "node {n:?} (line {l}): {}", self.message),
            (Some(n), None) => write!(f, "node {n:?}: {}", self.message),
            (None, Some(l)) => write!(f, "line {l}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DefinitionError {}

fn error(
    kind: ErrorKind,
    node: Option<&str>,
    line: Option<u32>,
    message: impl Into<String>,
) -> DefinitionError {
    DefinitionError {
        kind,
        node: node.map(str::to_owned),
        line,
        message: message.into(),
    }
}

/// Text with `${name}` references, rendered at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(String),
}

impl Template {
    /// Parse `${name}` references; any other `$` is literal.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(at) = rest.find("${") {
            if at > 0 {
                parts.push(Part::Text(rest[..at].to_owned()));
            }
            let after = &rest[at + 2..];
            let Some(end) = after.find('}') else {
                return Err(format!("unclosed \"${{\" in {source:?}"));
            };
            let name = &after[..end];
            if !is_var_name(name) {
                return Err(format!(
                    "\"${{{name}}}\" in {source:?}: a variable name is a letter or _ then letters, digits or _"
                ));
            }
            parts.push(Part::Var(name.to_owned()));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    /// The text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when there is no `${…}` in it.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The variables it reads.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Text(_) => None,
        })
    }

    /// The text with every `${name}` replaced by `lookup(name)`, or by nothing when that
    /// is `None`.
    pub fn render<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
        let mut out = String::with_capacity(self.source.len());
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => out.push_str(lookup(v).unwrap_or("")),
            }
        }
        out
    }
}

/// One thing to play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// A voice (tone) file by id: `tones/<id>.wav` below the storage directory.
    Tone(u32),
    /// A WAV file, relative to the storage directory.
    File(String),
    /// Text spoken by the TTS engine, after variable substitution.
    Tts(Template),
}

/// The file of tone `id`, relative to the storage directory.
pub fn tone_path(id: u32) -> PathBuf {
    PathBuf::from("tones").join(format!("{id}.wav"))
}

/// How a `<collect>` or `<menu>` waits for keys and what it does when they do not come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRules {
    /// Wait for the first key after the prompt, and between keys.
    pub timeout: Duration,
    /// How many times the prompt is repeated after invalid input or no input.
    pub retries: u32,
    /// A key stops the prompt (and counts as input).
    pub barge_in: bool,
    /// Played before the prompt is repeated after invalid input.
    pub invalid_prompts: Vec<Prompt>,
    /// Played before the prompt is repeated after no input.
    pub no_input_prompts: Vec<Prompt>,
    /// Where to go when the retries are used up by invalid input (none: hang up).
    pub invalid: Option<String>,
    /// Where to go when the retries are used up by no input (none: `invalid`, then hang
    /// up).
    pub no_input: Option<String>,
}

/// `<play>`: play prompts, then go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayNode {
    pub prompts: Vec<Prompt>,
    /// A key stops the playback and is kept for the next `<collect>`/`<menu>`.
    pub barge_in: bool,
    /// None: hang up after the prompts.
    pub next: Option<String>,
}

/// `<collect>`: prompt, then read up to `length` keys into `var`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectNode {
    pub prompts: Vec<Prompt>,
    pub var: String,
    /// Fewest keys accepted (before the terminator or a pause).
    pub min: usize,
    /// Most keys: the entry ends by itself when this many are in.
    pub length: usize,
    /// Ends the entry early; not part of the value.
    pub terminator: Option<char>,
    pub input: InputRules,
    pub next: String,
}

/// A `<case digits=… next=…>` of a menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuCase {
    pub digits: String,
    pub next: String,
}

/// `<menu>`: prompt, then go where the keys pressed lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuNode {
    pub prompts: Vec<Prompt>,
    /// Where the keys of the choice are stored, if anywhere.
    pub var: Option<String>,
    pub cases: Vec<MenuCase>,
    /// Any other entry goes here instead of counting as invalid.
    pub default: Option<String>,
    pub input: InputRules,
}

/// A `<case value=… next=…>` of a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchCase {
    pub value: String,
    pub next: String,
}

/// `<branch>`: go on by the value of a variable, without waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchNode {
    pub var: String,
    pub cases: Vec<BranchCase>,
    pub default: String,
}

/// What a transfer reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferKind {
    /// `ext:<number>`: an extension.
    Ext,
    /// `group:<number>`: a group (queue) of agents.
    Group,
    /// `number:<digits>`: an outside number, through the default trunk.
    Number,
}

impl TransferKind {
    /// The prefix as written: `ext`, `group`, `number`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferKind::Ext => "ext",
            TransferKind::Group => "group",
            TransferKind::Number => "number",
        }
    }

    /// Whether `number` is acceptable for this kind: 1-32 digits for an extension or a
    /// group; for an outside number 1-32 of digits, `*` and `#`, optionally after a `+`.
    pub fn accepts(self, number: &str) -> bool {
        match self {
            TransferKind::Ext | TransferKind::Group => crate::validate::is_number(number),
            TransferKind::Number => {
                let digits = number.strip_prefix('+').unwrap_or(number);
                !digits.is_empty()
                    && digits.len() <= crate::validate::NUMBER_MAX
                    && digits
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
            }
        }
    }
}

/// `<transfer>`: leave the IVR for an extension, a group or an outside number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferNode {
    /// Played before the transfer ("connecting you…"); may be empty.
    pub prompts: Vec<Prompt>,
    pub kind: TransferKind,
    /// The number; may contain `${var}` (checked when rendered).
    pub number: Template,
    /// Where to go if the number renders invalid or the transfer fails.
    pub error: Option<String>,
}

/// `<http>`: the IVR self-service query of interface 13.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpNode {
    /// Played while waiting for the answer; may be empty.
    pub prompts: Vec<Prompt>,
    /// The base URL with its static parameters (`http://crm/cti?opt=kuaidi`).
    pub url: String,
    /// `(parameter name, variable)` pairs appended to the query, in order.
    pub params: Vec<(String, String)>,
    pub timeout: Duration,
    /// Where the answer text is stored.
    pub var: String,
    /// Speak the answer by TTS before going on.
    pub speak: bool,
    /// None: hang up afterwards.
    pub next: Option<String>,
    /// Where to go when the query fails (none: the menu's `error`, then hang up).
    pub error: Option<String>,
}

/// `<voicemail>`: record a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicemailNode {
    /// Played before recording ("leave a message after the tone"); may be empty.
    pub prompts: Vec<Prompt>,
    pub max: Duration,
    /// Ends the recording.
    pub terminator: Option<char>,
    /// Where the recording's path is stored (interface 41's `[p]`).
    pub var: String,
    /// None: hang up afterwards.
    pub next: Option<String>,
    pub error: Option<String>,
}

/// `<hangup>`: play the prompts, if any, and hang up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HangupNode {
    pub prompts: Vec<Prompt>,
}

/// A node's behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    Play(PlayNode),
    Collect(CollectNode),
    Menu(MenuNode),
    Branch(BranchNode),
    Transfer(TransferNode),
    Http(HttpNode),
    Voicemail(VoicemailNode),
    Hangup(HangupNode),
}

impl NodeKind {
    /// The element name.
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::Play(_) => "play",
            NodeKind::Collect(_) => "collect",
            NodeKind::Menu(_) => "menu",
            NodeKind::Branch(_) => "branch",
            NodeKind::Transfer(_) => "transfer",
            NodeKind::Http(_) => "http",
            NodeKind::Voicemail(_) => "voicemail",
            NodeKind::Hangup(_) => "hangup",
        }
    }

    /// Every prompt of the node, retry prompts included.
    pub fn all_prompts(&self) -> Vec<&Prompt> {
        let mut out: Vec<&Prompt> = Vec::new();
        match self {
            NodeKind::Play(n) => out.extend(&n.prompts),
            NodeKind::Collect(n) => {
                out.extend(&n.prompts);
                out.extend(&n.input.invalid_prompts);
                out.extend(&n.input.no_input_prompts);
            }
            NodeKind::Menu(n) => {
                out.extend(&n.prompts);
                out.extend(&n.input.invalid_prompts);
                out.extend(&n.input.no_input_prompts);
            }
            NodeKind::Branch(_) => {}
            NodeKind::Transfer(n) => out.extend(&n.prompts),
            NodeKind::Http(n) => out.extend(&n.prompts),
            NodeKind::Voicemail(n) => out.extend(&n.prompts),
            NodeKind::Hangup(n) => out.extend(&n.prompts),
        }
        out
    }

    /// Every target the node can go to, with what names it (`next`, `<case digits="1">`).
    pub fn targets(&self) -> Vec<(String, &str)> {
        fn opt<'a>(out: &mut Vec<(String, &'a str)>, what: &str, t: &'a Option<String>) {
            if let Some(t) = t {
                out.push((what.to_owned(), t.as_str()));
            }
        }
        let mut out: Vec<(String, &str)> = Vec::new();
        match self {
            NodeKind::Play(n) => opt(&mut out, "next", &n.next),
            NodeKind::Collect(n) => {
                out.push(("next".into(), n.next.as_str()));
                opt(&mut out, "invalid", &n.input.invalid);
                opt(&mut out, "no-input", &n.input.no_input);
            }
            NodeKind::Menu(n) => {
                for c in &n.cases {
                    out.push((
                        format!("<case digits={:?}> next", c.digits),
                        c.next.as_str(),
                    ));
                }
                if let Some(d) = &n.default {
                    out.push(("<default> next".into(), d.as_str()));
                }
                opt(&mut out, "invalid", &n.input.invalid);
                opt(&mut out, "no-input", &n.input.no_input);
            }
            NodeKind::Branch(n) => {
                for c in &n.cases {
                    out.push((format!("<case value={:?}> next", c.value), c.next.as_str()));
                }
                out.push(("<default> next".into(), n.default.as_str()));
            }
            NodeKind::Transfer(n) => opt(&mut out, "error", &n.error),
            NodeKind::Http(n) => {
                opt(&mut out, "next", &n.next);
                opt(&mut out, "error", &n.error);
            }
            NodeKind::Voicemail(n) => {
                opt(&mut out, "next", &n.next);
                opt(&mut out, "error", &n.error);
            }
            NodeKind::Hangup(_) => {}
        }
        out
    }

    /// The variable the node sets, if any.
    pub fn sets_var(&self) -> Option<&str> {
        match self {
            NodeKind::Collect(n) => Some(&n.var),
            NodeKind::Menu(n) => n.var.as_deref(),
            NodeKind::Http(n) => Some(&n.var),
            NodeKind::Voicemail(n) => Some(&n.var),
            _ => None,
        }
    }
}

/// One node of a menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    /// 1-based line of its element.
    pub line: u32,
    pub kind: NodeKind,
}

/// A parsed, validated menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IvrDefinition {
    /// `<ivr name=…>` (informational).
    pub name: String,
    /// The first node.
    pub start: String,
    /// Where failures (HTTP query, transfer, voicemail) go when their node names no
    /// `error` target; none: hang up.
    pub error: Option<String>,
    nodes: Vec<Node>,
    index: HashMap<String, usize>,
}

impl IvrDefinition {
    /// Parse and validate `text` (see the module documentation).
    pub fn parse(text: &str) -> Result<Self, DefinitionError> {
        parse(text)
    }

    /// [`parse`](Self::parse), then [`check_files`](Self::check_files) below
    /// `storage_dir`: what the switch does with a stored menu before running it.
    pub fn load(text: &str, storage_dir: &Path) -> Result<Self, DefinitionError> {
        let def = parse(text)?;
        def.check_files(storage_dir)?;
        Ok(def)
    }

    /// The node `id`.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.index.get(id).map(|&i| &self.nodes[i])
    }

    /// Every node, in document order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Every file the menu plays, relative to the storage directory, with its node:
    /// `file=` prompts and `tones/<id>.wav` for `tone=` prompts.
    pub fn files(&self) -> Vec<(&str, PathBuf)> {
        let mut out = Vec::new();
        for n in &self.nodes {
            for p in n.kind.all_prompts() {
                match p {
                    Prompt::File(f) => out.push((n.id.as_str(), PathBuf::from(f))),
                    Prompt::Tone(id) => out.push((n.id.as_str(), tone_path(*id))),
                    Prompt::Tts(_) => {}
                }
            }
        }
        out
    }

    /// Every prompt file and tone file must exist below `storage_dir`; the error names the
    /// first node whose file is missing.
    pub fn check_files(&self, storage_dir: &Path) -> Result<(), DefinitionError> {
        for (id, rel) in self.files() {
            let path = storage_dir.join(&rel);
            if !path.is_file() {
                let line = self.node(id).map(|n| n.line);
                return Err(error(
                    ErrorKind::MissingFile,
                    Some(id),
                    line,
                    format!(
                        "prompt file {} does not exist (looked for {})",
                        rel.display(),
                        path.display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The variables some node sets, sorted.
    pub fn variables(&self) -> BTreeSet<&str> {
        self.nodes
            .iter()
            .filter_map(|n| n.kind.sets_var())
            .collect()
    }
}

/// A name for `${…}`, `var=` and `params=`: a letter or `_`, then letters, digits or `_`;
/// at most 64 characters.
pub fn is_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 64
}

/// A node id: 1-64 of letters, digits, `_`, `-`, `.`.
pub fn is_node_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A telephone key: `0`-`9`, `*`, `#`.
pub fn is_key(c: char) -> bool {
    c.is_ascii_digit() || c == '*' || c == '#'
}

// ---------------------------------------------------------------------------------------
// Parsing.

type XNode<'a, 'i> = roxmltree::Node<'a, 'i>;

struct Cx<'a, 'i> {
    doc: &'a roxmltree::Document<'i>,
    timeout: Duration,
    retries: u32,
}

impl<'a, 'i> Cx<'a, 'i> {
    fn line(&self, n: XNode<'a, 'i>) -> u32 {
        self.doc.text_pos_at(n.range().start).row
    }

    fn err(
        &self,
        kind: ErrorKind,
        id: Option<&str>,
        n: XNode<'a, 'i>,
        message: impl Into<String>,
    ) -> DefinitionError {
        error(kind, id, Some(self.line(n)), message)
    }

    fn bad(
        &self,
        id: Option<&str>,
        n: XNode<'a, 'i>,
        message: impl Into<String>,
    ) -> DefinitionError {
        self.err(ErrorKind::BadAttribute, id, n, message)
    }

    /// Reject attributes not in `allowed`.
    fn only_attrs(
        &self,
        id: Option<&str>,
        n: XNode<'a, 'i>,
        allowed: &[&str],
    ) -> Result<(), DefinitionError> {
        for a in n.attributes() {
            if a.namespace().is_some() || !allowed.contains(&a.name()) {
                return Err(self.bad(
                    id,
                    n,
                    format!(
                        "<{}> has no attribute {:?} (it takes: {})",
                        n.tag_name().name(),
                        a.name(),
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Reject child elements not in `allowed` and non-blank text.
    fn only_children(
        &self,
        id: Option<&str>,
        n: XNode<'a, 'i>,
        allowed: &[&str],
    ) -> Result<(), DefinitionError> {
        for c in n.children() {
            if c.is_element() {
                let name = c.tag_name().name();
                if c.tag_name().namespace().is_some() || !allowed.contains(&name) {
                    let takes = if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed
                            .iter()
                            .map(|a| format!("<{a}>"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    return Err(self.bad(
                        id,
                        c,
                        format!(
                            "<{}> cannot contain <{name}> (child elements it takes: {takes})",
                            n.tag_name().name()
                        ),
                    ));
                }
            } else if c.is_text() && !c.text().unwrap_or("").trim().is_empty() {
                return Err(self.bad(
                    id,
                    c,
                    format!(
                        "unexpected text {:?} in <{}>",
                        c.text().unwrap_or("").trim(),
                        n.tag_name().name()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn req(
        &self,
        id: Option<&str>,
        n: XNode<'a, 'i>,
        name: &str,
    ) -> Result<&'a str, DefinitionError> {
        n.attribute(name).ok_or_else(|| {
            self.bad(
                id,
                n,
                format!("<{}> needs a {name}= attribute", n.tag_name().name()),
            )
        })
    }

    fn target(
        &self,
        id: &str,
        n: XNode<'a, 'i>,
        name: &str,
    ) -> Result<Option<String>, DefinitionError> {
        match n.attribute(name) {
            None => Ok(None),
            Some(v) if is_node_id(v) => Ok(Some(v.to_owned())),
            Some(v) => Err(self.bad(
                Some(id),
                n,
                format!("{name}={v:?} is not a node id (1-64 of letters, digits, _ - .)"),
            )),
        }
    }

    fn req_target(
        &self,
        id: &str,
        n: XNode<'a, 'i>,
        name: &str,
    ) -> Result<String, DefinitionError> {
        self.req(Some(id), n, name)?;
        Ok(self.target(id, n, name)?.unwrap_or_default())
    }

    fn uint(
        &self,
        id: Option<&str>,
        n: XNode<'a, 'i>,
        name: &str,
        default: u32,
        min: u32,
        max: u32,
    ) -> Result<u32, DefinitionError> {
        let Some(v) = n.attribute(name) else {
            return Ok(default);
        };
        match v.trim().parse::<u32>() {
            Ok(x) if (min..=max).contains(&x) && !v.trim().starts_with('+') => Ok(x),
            _ => Err(self.bad(
                id,
                n,
                format!("{name}={v:?} must be a whole number from {min} to {max}"),
            )),
        }
    }

    fn secs(
        &self,
        id: Option<&str>,
        n: XNode<'a, 'i>,
        name: &str,
        default: Duration,
        max: u32,
    ) -> Result<Duration, DefinitionError> {
        let Some(v) = n.attribute(name) else {
            return Ok(default);
        };
        match v.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x > 0.0 && x <= f64::from(max) => {
                Ok(Duration::from_millis((x * 1000.0).round() as u64))
            }
            _ => Err(self.bad(
                id,
                n,
                format!("{name}={v:?} must be a number of seconds above 0, at most {max}"),
            )),
        }
    }

    fn boolean(
        &self,
        id: Option<&str>,
        n: XNode<'a, 'i>,
        name: &str,
        default: bool,
    ) -> Result<bool, DefinitionError> {
        match n.attribute(name) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(self.bad(id, n, format!("{name}={v:?} must be true or false"))),
        }
    }

    fn key(&self, id: &str, n: XNode<'a, 'i>, name: &str) -> Result<Option<char>, DefinitionError> {
        let Some(v) = n.attribute(name) else {
            return Ok(None);
        };
        let mut chars = v.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if is_key(c) => Ok(Some(c)),
            _ => Err(self.bad(
                Some(id),
                n,
                format!("{name}={v:?} must be one key: 0-9, * or #"),
            )),
        }
    }

    fn var(
        &self,
        id: &str,
        n: XNode<'a, 'i>,
        v: &str,
        what: &str,
    ) -> Result<String, DefinitionError> {
        if !is_var_name(v) {
            return Err(self.bad(
                Some(id),
                n,
                format!(
                    "{what}={v:?} is not a variable name (a letter or _, then letters, digits or _)"
                ),
            ));
        }
        Ok(v.to_owned())
    }

    /// A variable the node sets: a name, and not a call fact.
    fn set_var(&self, id: &str, n: XNode<'a, 'i>, v: &str) -> Result<String, DefinitionError> {
        let v = self.var(id, n, v, "var")?;
        if BUILTIN_VARS.contains(&v.as_str()) {
            return Err(self.bad(
                Some(id),
                n,
                format!("var={v:?} is a call fact and cannot be set"),
            ));
        }
        Ok(v)
    }

    fn prompt_value(
        &self,
        id: &str,
        n: XNode<'a, 'i>,
        name: &str,
        v: &str,
    ) -> Result<Prompt, DefinitionError> {
        match name {
            "tone" => match v.trim().parse::<u32>() {
                Ok(t) if v.trim().bytes().all(|b| b.is_ascii_digit()) => Ok(Prompt::Tone(t)),
                _ => Err(self.bad(
                    Some(id),
                    n,
                    format!("tone={v:?} must be a tone (voice file) id, a whole number"),
                )),
            },
            "file" => {
                let p = Path::new(v);
                let relative = !v.is_empty()
                    && !v.contains('\\')
                    && p.components().all(|c| matches!(c, Component::Normal(_)));
                if !relative {
                    return Err(self.bad(
                        Some(id),
                        n,
                        format!("file={v:?} must be a path relative to the storage directory, without \"..\""),
                    ));
                }
                if !v.to_ascii_lowercase().ends_with(".wav") || v.len() > 512 {
                    return Err(self.bad(
                        Some(id),
                        n,
                        format!("file={v:?} must name a .wav file (at most 512 characters)"),
                    ));
                }
                Ok(Prompt::File(v.to_owned()))
            }
            _ => {
                if v.trim().is_empty() {
                    return Err(self.bad(Some(id), n, "tts=\"\" is empty"));
                }
                if v.chars().count() > 2000 {
                    return Err(self.bad(Some(id), n, "tts= is longer than 2000 characters"));
                }
                let t = Template::parse(v).map_err(|m| self.bad(Some(id), n, m))?;
                Ok(Prompt::Tts(t))
            }
        }
    }

    /// The prompt given by `tone=` / `file=` / `tts=` on `n`, if any (at most one).
    fn attr_prompt(&self, id: &str, n: XNode<'a, 'i>) -> Result<Option<Prompt>, DefinitionError> {
        let given: Vec<(&str, &str)> = ["tone", "file", "tts"]
            .into_iter()
            .filter_map(|k| n.attribute(k).map(|v| (k, v)))
            .collect();
        match given.as_slice() {
            [] => Ok(None),
            [(k, v)] => self.prompt_value(id, n, k, v).map(Some),
            _ => Err(self.bad(
                Some(id),
                n,
                format!(
                    "<{}> gives {} at once: one of tone=, file=, tts= per prompt (use <prompt> children for a sequence)",
                    n.tag_name().name(),
                    given.iter().map(|(k, _)| format!("{k}=")).collect::<Vec<_>>().join(" and ")
                ),
            )),
        }
    }

    /// The node's prompts: the shorthand attribute or `<prompt>` children. With `retries`,
    /// `<prompt on="invalid|no-input">` children are the retry prompts.
    fn prompts(
        &self,
        id: &str,
        n: XNode<'a, 'i>,
        retries: bool,
    ) -> Result<Prompts, DefinitionError> {
        let mut out = Prompts::default();
        if let Some(p) = self.attr_prompt(id, n)? {
            out.main.push(p);
        }
        let shorthand = !out.main.is_empty();
        let allowed: &[&str] = if retries {
            &["tone", "file", "tts", "on"]
        } else {
            &["tone", "file", "tts"]
        };
        for c in n.children().filter(|c| c.has_tag_name("prompt")) {
            self.only_attrs(Some(id), c, allowed)?;
            self.only_children(Some(id), c, &[])?;
            let Some(p) = self.attr_prompt(id, c)? else {
                return Err(self.bad(Some(id), c, "<prompt> needs one of tone=, file=, tts="));
            };
            match c.attribute("on") {
                None => {
                    if shorthand {
                        return Err(self.bad(
                            Some(id),
                            c,
                            "give the prompt either as an attribute of the node or as <prompt> children, not both",
                        ));
                    }
                    out.main.push(p);
                }
                Some("invalid") => out.invalid.push(p),
                Some("no-input") => out.no_input.push(p),
                Some(v) => {
                    return Err(self.bad(
                        Some(id),
                        c,
                        format!("on={v:?} must be invalid or no-input"),
                    ))
                }
            }
        }
        Ok(out)
    }

    fn input_rules(
        &self,
        id: &str,
        n: XNode<'a, 'i>,
        p: &mut Prompts,
    ) -> Result<InputRules, DefinitionError> {
        Ok(InputRules {
            timeout: self.secs(Some(id), n, "timeout", self.timeout, 300)?,
            retries: self.uint(Some(id), n, "retries", self.retries, 0, 10)?,
            barge_in: self.boolean(Some(id), n, "barge-in", true)?,
            invalid_prompts: std::mem::take(&mut p.invalid),
            no_input_prompts: std::mem::take(&mut p.no_input),
            invalid: self.target(id, n, "invalid")?,
            no_input: self.target(id, n, "no-input")?,
        })
    }

    fn need_prompt(&self, id: &str, n: XNode<'a, 'i>, p: &Prompts) -> Result<(), DefinitionError> {
        if p.main.is_empty() {
            return Err(self.err(
                ErrorKind::MissingPrompt,
                Some(id),
                n,
                format!(
                    "<{}> has no prompt: give tone=, file=, tts= or <prompt> children",
                    n.tag_name().name()
                ),
            ));
        }
        Ok(())
    }

    fn node(&self, n: XNode<'a, 'i>) -> Result<Node, DefinitionError> {
        let tag = n.tag_name().name();
        let id_attr = n.attribute("id");
        if n.tag_name().namespace().is_some() || !NODE_TYPES.contains(&tag) {
            return Err(self.err(
                ErrorKind::UnknownNodeType,
                id_attr,
                n,
                format!(
                    "unknown node type <{tag}> (the node types are {})",
                    NODE_TYPES.join(", ")
                ),
            ));
        }
        let Some(id) = id_attr else {
            return Err(self.bad(None, n, format!("<{tag}> has no id=")));
        };
        if !is_node_id(id) {
            return Err(self.bad(
                None,
                n,
                format!("<{tag}> id={id:?} is not a node id (1-64 of letters, digits, _ - .)"),
            ));
        }
        let sid = Some(id);
        let kind = match tag {
            "play" => {
                self.only_attrs(sid, n, &["id", "tone", "file", "tts", "barge-in", "next"])?;
                self.only_children(sid, n, &["prompt"])?;
                let p = self.prompts(id, n, false)?;
                self.need_prompt(id, n, &p)?;
                NodeKind::Play(PlayNode {
                    prompts: p.main,
                    barge_in: self.boolean(sid, n, "barge-in", false)?,
                    next: self.target(id, n, "next")?,
                })
            }
            "collect" => {
                self.only_attrs(
                    sid,
                    n,
                    &[
                        "id",
                        "tone",
                        "file",
                        "tts",
                        "var",
                        "length",
                        "min",
                        "terminator",
                        "timeout",
                        "retries",
                        "barge-in",
                        "next",
                        "invalid",
                        "no-input",
                    ],
                )?;
                self.only_children(sid, n, &["prompt"])?;
                let mut p = self.prompts(id, n, true)?;
                self.need_prompt(id, n, &p)?;
                let var = self.set_var(id, n, self.req(sid, n, "var")?)?;
                self.req(sid, n, "length")?;
                let length = self.uint(sid, n, "length", 1, 1, 64)? as usize;
                let min = self.uint(sid, n, "min", 1, 0, 64)? as usize;
                if min > length {
                    return Err(self.bad(
                        sid,
                        n,
                        format!("min=\"{min}\" is more than length=\"{length}\""),
                    ));
                }
                let input = self.input_rules(id, n, &mut p)?;
                NodeKind::Collect(CollectNode {
                    prompts: p.main,
                    var,
                    min,
                    length,
                    terminator: self.key(id, n, "terminator")?,
                    input,
                    next: self.req_target(id, n, "next")?,
                })
            }
            "menu" => {
                self.only_attrs(
                    sid,
                    n,
                    &[
                        "id", "tone", "file", "tts", "var", "timeout", "retries", "barge-in",
                        "invalid", "no-input",
                    ],
                )?;
                self.only_children(sid, n, &["prompt", "case", "default"])?;
                let mut p = self.prompts(id, n, true)?;
                self.need_prompt(id, n, &p)?;
                let var = match n.attribute("var") {
                    Some(v) => Some(self.set_var(id, n, v)?),
                    None => None,
                };
                let mut cases: Vec<MenuCase> = Vec::new();
                for c in n.children().filter(|c| c.has_tag_name("case")) {
                    self.only_attrs(sid, c, &["digits", "next"])?;
                    self.only_children(sid, c, &[])?;
                    let digits = self.req(sid, c, "digits")?;
                    if digits.is_empty() || digits.len() > 16 || !digits.chars().all(is_key) {
                        return Err(self.bad(
                            sid,
                            c,
                            format!("<case digits={digits:?}>: 1-16 keys of 0-9, * and #"),
                        ));
                    }
                    if cases.iter().any(|k| k.digits == digits) {
                        return Err(self.bad(
                            sid,
                            c,
                            format!("<case digits={digits:?}> appears twice"),
                        ));
                    }
                    cases.push(MenuCase {
                        digits: digits.to_owned(),
                        next: self.req_target(id, c, "next")?,
                    });
                }
                if cases.is_empty() {
                    return Err(self.bad(sid, n, "<menu> has no <case digits=… next=…>"));
                }
                let default = self.default_child(id, n)?;
                let input = self.input_rules(id, n, &mut p)?;
                NodeKind::Menu(MenuNode {
                    prompts: p.main,
                    var,
                    cases,
                    default,
                    input,
                })
            }
            "branch" => {
                self.only_attrs(sid, n, &["id", "var"])?;
                self.only_children(sid, n, &["case", "default"])?;
                let var = self.var(id, n, self.req(sid, n, "var")?, "var")?;
                let mut cases: Vec<BranchCase> = Vec::new();
                for c in n.children().filter(|c| c.has_tag_name("case")) {
                    self.only_attrs(sid, c, &["value", "next"])?;
                    self.only_children(sid, c, &[])?;
                    let value = self.req(sid, c, "value")?;
                    cases.push(BranchCase {
                        value: value.to_owned(),
                        next: self.req_target(id, c, "next")?,
                    });
                }
                let Some(default) = self.default_child(id, n)? else {
                    return Err(self.bad(
                        sid,
                        n,
                        "<branch> needs a <default next=…> for values no case matches",
                    ));
                };
                NodeKind::Branch(BranchNode {
                    var,
                    cases,
                    default,
                })
            }
            "transfer" => {
                self.only_attrs(sid, n, &["id", "tone", "file", "tts", "to", "error"])?;
                self.only_children(sid, n, &["prompt"])?;
                let p = self.prompts(id, n, false)?;
                let to = self.req(sid, n, "to")?;
                let forms = "ext:<number>, group:<number> or number:<digits>";
                let (kind, number) = match to.split_once(':') {
                    Some(("ext", v)) => (TransferKind::Ext, v),
                    Some(("group", v)) => (TransferKind::Group, v),
                    Some(("number", v)) => (TransferKind::Number, v),
                    _ => {
                        return Err(self.bad(sid, n, format!("to={to:?} must be {forms}")));
                    }
                };
                let number =
                    Template::parse(number).map_err(|m| self.bad(sid, n, format!("to=: {m}")))?;
                if number.is_literal() && !kind.accepts(number.source()) {
                    return Err(self.bad(
                        sid,
                        n,
                        format!("to={to:?}: the number must be 1-32 digits ({forms})"),
                    ));
                }
                NodeKind::Transfer(TransferNode {
                    prompts: p.main,
                    kind,
                    number,
                    error: self.target(id, n, "error")?,
                })
            }
            "http" => {
                self.only_attrs(
                    sid,
                    n,
                    &[
                        "id", "tone", "file", "tts", "url", "params", "timeout", "var", "speak",
                        "next", "error",
                    ],
                )?;
                self.only_children(sid, n, &["prompt"])?;
                let p = self.prompts(id, n, false)?;
                let url = self.req(sid, n, "url")?;
                let rest = url
                    .strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://"));
                let ok = matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/'))
                    && !url.chars().any(|c| c.is_whitespace() || c.is_control())
                    && !url.contains('#')
                    && url.len() <= 1024;
                if !ok {
                    return Err(self.bad(
                        sid,
                        n,
                        format!(
                            "url={url:?} must be an http:// or https:// URL without spaces or #"
                        ),
                    ));
                }
                let mut params = Vec::new();
                for item in n
                    .attribute("params")
                    .unwrap_or("")
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                {
                    let (name, var) = item.split_once('=').unwrap_or((item, item));
                    let name_ok = !name.is_empty()
                        && name.len() <= 64
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                    if !name_ok {
                        return Err(self.bad(
                            sid,
                            n,
                            format!("params: {item:?} must be name=variable"),
                        ));
                    }
                    if ["caller", "callee", "id"].contains(&name) {
                        return Err(self.bad(
                            sid,
                            n,
                            format!("params: {name:?} is always sent (caller, callee and id are added by the switch)"),
                        ));
                    }
                    let var = self.var(id, n, var, "params")?;
                    params.push((name.to_owned(), var));
                }
                NodeKind::Http(HttpNode {
                    prompts: p.main,
                    url: url.to_owned(),
                    params,
                    timeout: self.secs(sid, n, "timeout", DEFAULT_HTTP_TIMEOUT, 60)?,
                    var: self.set_var(id, n, n.attribute("var").unwrap_or("answer"))?,
                    speak: self.boolean(sid, n, "speak", true)?,
                    next: self.target(id, n, "next")?,
                    error: self.target(id, n, "error")?,
                })
            }
            "voicemail" => {
                self.only_attrs(
                    sid,
                    n,
                    &[
                        "id",
                        "tone",
                        "file",
                        "tts",
                        "max",
                        "terminator",
                        "var",
                        "next",
                        "error",
                    ],
                )?;
                self.only_children(sid, n, &["prompt"])?;
                let p = self.prompts(id, n, false)?;
                NodeKind::Voicemail(VoicemailNode {
                    prompts: p.main,
                    max: self.secs(sid, n, "max", DEFAULT_VOICEMAIL_MAX, 3600)?,
                    terminator: self.key(id, n, "terminator")?,
                    var: self.set_var(id, n, n.attribute("var").unwrap_or("voicemail"))?,
                    next: self.target(id, n, "next")?,
                    error: self.target(id, n, "error")?,
                })
            }
            _ => {
                self.only_attrs(sid, n, &["id", "tone", "file", "tts"])?;
                self.only_children(sid, n, &["prompt"])?;
                let p = self.prompts(id, n, false)?;
                NodeKind::Hangup(HangupNode { prompts: p.main })
            }
        };
        Ok(Node {
            id: id.to_owned(),
            line: self.line(n),
            kind,
        })
    }

    fn default_child(&self, id: &str, n: XNode<'a, 'i>) -> Result<Option<String>, DefinitionError> {
        let mut found = None;
        for c in n.children().filter(|c| c.has_tag_name("default")) {
            self.only_attrs(Some(id), c, &["next"])?;
            self.only_children(Some(id), c, &[])?;
            if found.is_some() {
                return Err(self.bad(Some(id), c, "more than one <default>"));
            }
            found = Some(self.req_target(id, c, "next")?);
        }
        Ok(found)
    }
}

#[derive(Default)]
struct Prompts {
    main: Vec<Prompt>,
    invalid: Vec<Prompt>,
    no_input: Vec<Prompt>,
}

fn parse(text: &str) -> Result<IvrDefinition, DefinitionError> {
    if text.len() > MAX_DEFINITION_BYTES {
        return Err(error(
            ErrorKind::Syntax,
            None,
            None,
            format!("the definition is larger than {MAX_DEFINITION_BYTES} bytes"),
        ));
    }
    let doc = roxmltree::Document::parse(text).map_err(|e| {
        let pos = e.pos();
        error(
            ErrorKind::Syntax,
            None,
            Some(pos.row),
            format!("not well-formed XML: {e}"),
        )
    })?;
    let root = doc.root_element();
    let mut cx = Cx {
        doc: &doc,
        timeout: DEFAULT_TIMEOUT,
        retries: DEFAULT_RETRIES,
    };
    if root.tag_name().name() != "ivr" || root.tag_name().namespace().is_some() {
        return Err(cx.err(
            ErrorKind::Syntax,
            None,
            root,
            format!(
                "the document element is <{}>; an IVR definition is an <ivr> document",
                root.tag_name().name()
            ),
        ));
    }
    cx.only_attrs(
        None,
        root,
        &["name", "start", "error", "timeout", "retries"],
    )?;
    cx.timeout = cx.secs(None, root, "timeout", DEFAULT_TIMEOUT, 300)?;
    cx.retries = cx.uint(None, root, "retries", DEFAULT_RETRIES, 0, 10)?;
    let name = root.attribute("name").unwrap_or("").to_owned();
    let Some(start) = root.attribute("start") else {
        return Err(cx.err(
            ErrorKind::MissingStart,
            None,
            root,
            "<ivr> has no start= naming the first node",
        ));
    };
    let error_target = root.attribute("error").map(str::to_owned);

    let mut nodes: Vec<Node> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for c in root.children() {
        if c.is_text() {
            if let Some(t) = c.text().filter(|t| !t.trim().is_empty()) {
                return Err(cx.bad(None, c, format!("unexpected text {:?} in <ivr>", t.trim())));
            }
            continue;
        }
        if !c.is_element() {
            continue;
        }
        let node = cx.node(c)?;
        if let Some(&first) = index.get(&node.id) {
            return Err(error(
                ErrorKind::DuplicateId,
                Some(&node.id),
                Some(node.line),
                format!(
                    "duplicate id: another node (<{}>, line {}) has it",
                    nodes[first].kind.type_name(),
                    nodes[first].line
                ),
            ));
        }
        index.insert(node.id.clone(), nodes.len());
        nodes.push(node);
    }

    let root_line = Some(cx.line(root));
    if !index.contains_key(start) {
        return Err(error(
            ErrorKind::MissingStart,
            None,
            root_line,
            format!("<ivr start={start:?}> names no node"),
        ));
    }
    if let Some(e) = &error_target {
        if !index.contains_key(e) {
            return Err(error(
                ErrorKind::DanglingTarget,
                None,
                root_line,
                format!("<ivr error={e:?}> names no node"),
            ));
        }
    }
    for n in &nodes {
        for (what, target) in n.kind.targets() {
            if !index.contains_key(target) {
                return Err(error(
                    ErrorKind::DanglingTarget,
                    Some(&n.id),
                    Some(n.line),
                    format!("dangling target: {what}={target:?} names no node"),
                ));
            }
        }
    }

    // Variables: read only what some node sets, a call fact, or a run-time `tts…` value.
    let set: BTreeSet<&str> = nodes.iter().filter_map(|n| n.kind.sets_var()).collect();
    let known = |v: &str| {
        set.contains(v) || BUILTIN_VARS.contains(&v) || v.starts_with(EXTERNAL_VAR_PREFIX)
    };
    for n in &nodes {
        let mut reads: Vec<(&str, &str)> = Vec::new();
        for p in n.kind.all_prompts() {
            if let Prompt::Tts(t) = p {
                reads.extend(t.vars().map(|v| ("tts", v)));
            }
        }
        match &n.kind {
            NodeKind::Branch(b) => reads.push(("var", &b.var)),
            NodeKind::Transfer(t) => reads.extend(t.number.vars().map(|v| ("to", v))),
            NodeKind::Http(h) => reads.extend(h.params.iter().map(|(_, v)| ("params", v.as_str()))),
            _ => {}
        }
        if let Some((what, v)) = reads.into_iter().find(|(_, v)| !known(v)) {
            return Err(error(
                ErrorKind::UnknownVariable,
                Some(&n.id),
                Some(n.line),
                format!(
                    "{what} reads variable {v:?}, which no node sets (set by var= of collect, menu, http or voicemail; or caller, callee, callid; or a run-time tts… value)"
                ),
            ));
        }
    }

    // Branches that loop among themselves would never wait for anything.
    let is_branch = |id: &str| {
        matches!(
            index.get(id).map(|&i| &nodes[i].kind),
            Some(NodeKind::Branch(_))
        )
    };
    for n in &nodes {
        if !matches!(n.kind, NodeKind::Branch(_)) {
            continue;
        }
        // Depth-first search from `n` over branch nodes only.
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(n.id.as_str(), vec![n.id.as_str()])];
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            let node = &nodes[index[at]];
            for (_, t) in node.kind.targets() {
                if t == n.id {
                    let mut cycle = path.clone();
                    cycle.push(t);
                    return Err(error(
                        ErrorKind::Loop,
                        Some(&n.id),
                        Some(n.line),
                        format!(
                            "branches loop without waiting for the caller: {}",
                            cycle.join(" -> ")
                        ),
                    ));
                }
                if is_branch(t) && seen.insert(t) {
                    let mut p = path.clone();
                    p.push(t);
                    stack.push((t, p));
                }
            }
        }
    }

    Ok(IvrDefinition {
        name,
        start: start.to_owned(),
        error: error_target,
        nodes,
        index,
    })
}
