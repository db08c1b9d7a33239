//! IVR menus: the definition format (parsing, every validation error naming its node) and
//! the sans-IO interpreter driven by events on a fake clock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actors::ivr::definition::{NodeKind, Prompt, TransferKind};
use actors::ivr::{
    check_answer, encode_query_value, ErrorKind, HttpReply, IvrBusiness, IvrCommand, IvrDefinition,
    IvrEvent, IvrFacts, IvrMachine, IvrOutcome, PromptRef, TransferTarget,
};
use entities::provision::{IvrInput, Provisioning};

const EXAMPLE: &str = include_str!("../../ivr/main.xml");
const CALLID: &str = "63c972e1-72d2-4049-851f-621351540ecc@127.0.0.1:508";
const T0: i64 = 1_691_059_680_144;

fn example() -> Arc<IvrDefinition> {
    Arc::new(IvrDefinition::parse(EXAMPLE).expect("ivr/main.xml is valid"))
}

fn facts() -> IvrFacts {
    IvrFacts {
        caller: "808".into(),
        callee: "1000".into(),
        callid: CALLID.into(),
        vars: BTreeMap::new(),
    }
}

fn tts(text: &str) -> PromptRef {
    PromptRef::Tts(text.into())
}

const WELCOME: &str = "Welcome to ctiswitch.";
const MENU: &str = "For sales, press 1. To hear your account balance, press 2.";
const INVALID: &str = "Sorry, that is not a valid choice.";
const NO_INPUT: &str = "Sorry, we did not hear your choice.";
const ACCOUNT: &str = "Please enter your six digit account number, then the hash key.";
const SORRY: &str = "Sorry, this service is not available right now.";
const GOODBYE: &str = "Thank you for calling. Goodbye.";

/// Drives a machine the way the `Ivr` actor does, on a fake clock: it keeps the timers the
/// machine starts and fires them when the clock passes them, and knows what is playing.
struct Driver {
    m: IvrMachine,
    now: i64,
    timers: Vec<(i64, u64)>,
    playing: Option<u64>,
    http: Option<(u64, String)>,
}

impl Driver {
    fn new(def: Arc<IvrDefinition>, facts: IvrFacts) -> (Self, Vec<IvrCommand>) {
        let mut d = Driver {
            m: IvrMachine::new(def, facts),
            now: T0,
            timers: Vec::new(),
            playing: None,
            http: None,
        };
        let out = d.m.start(d.now);
        d.note(&out);
        (d, out)
    }

    fn note(&mut self, out: &[IvrCommand]) {
        for c in out {
            match c {
                IvrCommand::StartTimer { token, after } => {
                    self.timers
                        .push((self.now + after.as_millis() as i64, *token));
                }
                IvrCommand::Play { id, .. } => self.playing = Some(*id),
                IvrCommand::StopPlayback { id } if self.playing == Some(*id) => self.playing = None,
                IvrCommand::HttpGet { id, url, .. } => self.http = Some((*id, url.clone())),
                _ => {}
            }
        }
    }

    fn send(&mut self, ev: IvrEvent) -> Vec<IvrCommand> {
        let out = self.m.on_event(ev, self.now);
        self.note(&out);
        out
    }

    /// The current playback runs to its end after `ms`.
    fn finish_playback(&mut self, ms: i64) -> Vec<IvrCommand> {
        self.now += ms;
        let id = self.playing.take().expect("something is playing");
        self.send(IvrEvent::PlaybackFinished { id })
    }

    fn key(&mut self, k: char) -> Vec<IvrCommand> {
        self.send(IvrEvent::Dtmf(k))
    }

    fn keys(&mut self, keys: &str) -> Vec<IvrCommand> {
        let mut all = Vec::new();
        for k in keys.chars() {
            self.now += 300;
            all.extend(self.key(k));
        }
        all
    }

    /// Move the clock by `ms`, firing the timers that come due, in order.
    fn advance(&mut self, ms: i64) -> Vec<IvrCommand> {
        let until = self.now + ms;
        let mut all = Vec::new();
        loop {
            self.timers.sort();
            match self.timers.first() {
                Some(&(due, token)) if due <= until => {
                    self.timers.remove(0);
                    self.now = due;
                    all.extend(self.send(IvrEvent::TimerFired(token)));
                }
                _ => break,
            }
        }
        self.now = until;
        all
    }

    fn answer(&mut self, result: Result<HttpReply, String>) -> Vec<IvrCommand> {
        let (id, _) = self.http.clone().expect("an HTTP query is out");
        self.now += 200;
        self.send(IvrEvent::HttpAnswered { id, result })
    }
}

/// The sources of the `Play` commands in `out`.
fn plays(out: &[IvrCommand]) -> Vec<PromptRef> {
    out.iter()
        .filter_map(|c| match c {
            IvrCommand::Play { source, .. } => Some(source.clone()),
            _ => None,
        })
        .collect()
}

fn has(out: &[IvrCommand], want: &IvrCommand) -> bool {
    out.contains(want)
}

fn warnings(out: &[IvrCommand]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|c| match c {
            IvrCommand::Warn { node, problem } => Some((node.clone(), problem.clone())),
            _ => None,
        })
        .collect()
}

/// Start the example and get to the menu prompt (welcome played to its end).
fn at_menu() -> Driver {
    let (mut d, out) = Driver::new(example(), facts());
    assert_eq!(plays(&out), [tts(WELCOME)]);
    let out = d.finish_playback(1500);
    assert_eq!(plays(&out), [tts(MENU)]);
    d
}

// ---------------------------------------------------------------------------------------
// The format.

#[test]
fn the_example_parses() {
    let def = example();
    assert_eq!(def.name, "main");
    assert_eq!(def.start, "welcome");
    assert_eq!(def.error.as_deref(), Some("sorry"));
    let types: Vec<_> = def
        .nodes()
        .iter()
        .map(|n| (n.id.as_str(), n.kind.type_name()))
        .collect();
    assert_eq!(
        types,
        [
            ("welcome", "play"),
            ("main", "menu"),
            ("sales", "transfer"),
            ("account", "collect"),
            ("lookup", "http"),
            ("answer", "play"),
            ("sorry", "play"),
            ("goodbye", "hangup"),
        ]
    );
    let NodeKind::Menu(menu) = &def.node("main").unwrap().kind else {
        panic!("main is a menu")
    };
    assert_eq!(menu.cases.len(), 2);
    assert_eq!(
        (menu.cases[0].digits.as_str(), menu.cases[0].next.as_str()),
        ("1", "sales")
    );
    assert_eq!(menu.input.retries, 2);
    assert_eq!(menu.input.timeout, Duration::from_secs(5));
    assert_eq!(menu.input.invalid.as_deref(), Some("goodbye"));
    assert_eq!(menu.input.invalid_prompts.len(), 1);
    assert!(menu.input.barge_in);
    let NodeKind::Transfer(sales) = &def.node("sales").unwrap().kind else {
        panic!("sales is a transfer")
    };
    assert_eq!(sales.kind, TransferKind::Group);
    assert_eq!(sales.number.source(), "3003");
    let NodeKind::Collect(acct) = &def.node("account").unwrap().kind else {
        panic!("account is a collect")
    };
    assert_eq!((acct.length, acct.min, acct.terminator), (6, 1, Some('#')));
    let NodeKind::Http(lookup) = &def.node("lookup").unwrap().kind else {
        panic!("lookup is an http node")
    };
    assert_eq!(lookup.params, [("in1".to_owned(), "acct".to_owned())]);
    assert_eq!(lookup.timeout, Duration::from_secs(10));
    assert!(!lookup.speak);
    assert!(matches!(&lookup.prompts[..], [Prompt::Tts(_)]));
    assert_eq!(
        def.variables().into_iter().collect::<Vec<_>>(),
        ["acct", "answer"]
    );
    // All TTS: nothing to find on disk.
    assert!(def.files().is_empty());
}

/// A menu around `body`, starting at `start`.
fn doc(start: &str, body: &str) -> String {
    format!("<ivr name=\"t\" start=\"{start}\">\n{body}\n</ivr>")
}

fn rejected(text: &str) -> actors::ivr::DefinitionError {
    IvrDefinition::parse(text).expect_err("the definition must be rejected")
}

#[test]
fn an_unknown_node_type_is_rejected_naming_the_node() {
    let e = rejected(&doc(
        "a",
        r#"<play id="a" tts="hi" next="b"/>
<dial id="b" number="123"/>"#,
    ));
    assert_eq!(e.kind, ErrorKind::UnknownNodeType);
    assert_eq!(e.node.as_deref(), Some("b"));
    assert_eq!(e.line, Some(3));
    let msg = e.to_string();
    assert!(
        msg.starts_with("node \"b\" (line 3): unknown node type <dial>"),
        "{msg}"
    );
}

#[test]
fn a_dangling_branch_is_rejected_naming_the_node_and_the_target() {
    let e = rejected(&doc(
        "m",
        r#"<menu id="m" tts="press 1 or 2">
  <case digits="1" next="sales"/>
  <case digits="2" next="salse"/>
</menu>
<transfer id="sales" to="ext:801"/>"#,
    ));
    assert_eq!(e.kind, ErrorKind::DanglingTarget);
    assert_eq!(e.node.as_deref(), Some("m"));
    let msg = e.to_string();
    assert!(msg.contains("node \"m\""), "{msg}");
    assert!(
        msg.contains("<case digits=\"2\"> next=\"salse\" names no node"),
        "{msg}"
    );

    // A branch on a variable, a `next` and the menu's `error` too.
    let e = rejected(&doc(
        "c",
        r#"<collect id="c" var="x" length="1" tts="a key" next="b"/>
<branch id="b" var="x"><case value="1" next="nowhere"/><default next="c"/></branch>"#,
    ));
    assert_eq!(
        (e.kind, e.node.as_deref()),
        (ErrorKind::DanglingTarget, Some("b"))
    );
    assert!(e.to_string().contains("\"nowhere\""));
    let e = rejected(&doc("p", r#"<play id="p" tts="hi" next="q"/>"#));
    assert_eq!(
        (e.kind, e.node.as_deref()),
        (ErrorKind::DanglingTarget, Some("p"))
    );
    let e = rejected(r#"<ivr start="h" error="oops"><hangup id="h"/></ivr>"#);
    assert_eq!(e.kind, ErrorKind::DanglingTarget);
    assert!(e.to_string().contains("error=\"oops\""));
}

#[test]
fn a_missing_prompt_is_rejected_naming_the_node() {
    let e = rejected(&doc(
        "m",
        r#"<menu id="m"><case digits="1" next="h"/></menu>
<hangup id="h"/>"#,
    ));
    assert_eq!(e.kind, ErrorKind::MissingPrompt);
    assert_eq!(e.node.as_deref(), Some("m"));
    assert!(e
        .to_string()
        .starts_with("node \"m\" (line 2): <menu> has no prompt"));
    let e = rejected(&doc("p", r#"<play id="p" next="p"/>"#));
    assert_eq!(
        (e.kind, e.node.as_deref()),
        (ErrorKind::MissingPrompt, Some("p"))
    );
    let e = rejected(&doc(
        "c",
        r#"<collect id="c" var="x" length="4" next="h"/><hangup id="h"/>"#,
    ));
    assert_eq!(
        (e.kind, e.node.as_deref()),
        (ErrorKind::MissingPrompt, Some("c"))
    );
}

#[test]
fn a_missing_prompt_file_is_rejected_naming_the_node_and_the_file() {
    let text = doc(
        "w",
        r#"<play id="w" tone="19" next="m"/>
<menu id="m" file="prompts/menu.wav"><case digits="1" next="h"/></menu>
<hangup id="h"/>"#,
    );
    let def = IvrDefinition::parse(&text).unwrap();
    assert_eq!(
        def.files(),
        [
            ("w", "tones/19.wav".into()),
            ("m", "prompts/menu.wav".into())
        ]
    );
    let storage = tempfile::tempdir().unwrap();
    let e = def.check_files(storage.path()).unwrap_err();
    assert_eq!(
        (e.kind, e.node.as_deref()),
        (ErrorKind::MissingFile, Some("w"))
    );
    assert!(e.to_string().contains("tones/19.wav"), "{e}");

    std::fs::create_dir_all(storage.path().join("tones")).unwrap();
    std::fs::write(storage.path().join("tones/19.wav"), b"RIFF").unwrap();
    let e = IvrDefinition::load(&text, storage.path()).unwrap_err();
    assert_eq!(
        (e.kind, e.node.as_deref()),
        (ErrorKind::MissingFile, Some("m"))
    );
    assert!(
        e.to_string()
            .starts_with("node \"m\" (line 3): prompt file prompts/menu.wav does not exist"),
        "{e}"
    );

    std::fs::create_dir_all(storage.path().join("prompts")).unwrap();
    std::fs::write(storage.path().join("prompts/menu.wav"), b"RIFF").unwrap();
    assert_eq!(IvrDefinition::load(&text, storage.path()).unwrap(), def);
}

#[test]
fn a_duplicate_id_is_rejected_naming_the_node_and_both_lines() {
    let e = rejected(&doc(
        "a",
        r#"<play id="a" tts="one" next="b"/>
<hangup id="b"/>
<play id="a" tts="two"/>"#,
    ));
    assert_eq!(e.kind, ErrorKind::DuplicateId);
    assert_eq!((e.node.as_deref(), e.line), (Some("a"), Some(4)));
    assert!(
        e.to_string()
            .contains("another node (<play>, line 2) has it"),
        "{e}"
    );
}

#[test]
fn other_problems_are_named_too() {
    // No start, a start naming nothing, not an <ivr>, not XML.
    let e = rejected(r#"<ivr name="x"><hangup id="h"/></ivr>"#);
    assert_eq!(e.kind, ErrorKind::MissingStart);
    let e = rejected(r#"<ivr start="nope"><hangup id="h"/></ivr>"#);
    assert_eq!(e.kind, ErrorKind::MissingStart);
    assert!(e.to_string().contains("start=\"nope\""));
    assert_eq!(rejected("<menu/>").kind, ErrorKind::Syntax);
    assert_eq!(rejected("<ivr start=\"a\">").kind, ErrorKind::Syntax);

    // Bad attributes: unknown, out of range, malformed.
    let cases = [
        (r#"<play id="p" tts="x" colour="red"/>"#, "colour"),
        (
            r#"<play id="p" tts="x" barge-in="yes"/>"#,
            "barge-in=\"yes\"",
        ),
        (
            r#"<play id="p" tts="x" tone="19"/>"#,
            "one of tone=, file=, tts=",
        ),
        (r#"<play id="p" file="/etc/passwd.wav"/>"#, "relative"),
        (r#"<play id="p" file="../x.wav"/>"#, "relative"),
        (r#"<play id="p" file="x.mp3"/>"#, ".wav"),
        (r#"<play id="p" tone="loud"/>"#, "tone=\"loud\""),
        (r#"<play id="p" tts="Hello ${name"/>"#, "unclosed"),
        (r#"<transfer id="p" to="queue:3003"/>"#, "to=\"queue:3003\""),
        (r#"<transfer id="p" to="ext:80a"/>"#, "1-32 digits"),
        (r#"<http id="p" url="ftp://x"/>"#, "url="),
        (
            r#"<http id="p" url="http://x/" params="caller=x"/>"#,
            "always sent",
        ),
        (r#"<voicemail id="p" max="0"/>"#, "max=\"0\""),
        (
            r#"<collect id="p" tts="x" var="v" length="0" next="p"/>"#,
            "length=\"0\"",
        ),
        (r#"<collect id="p" tts="x" var="v" next="p"/>"#, "length="),
        (
            r#"<collect id="p" tts="x" var="v" length="4" min="5" next="p"/>"#,
            "min",
        ),
        (
            r#"<collect id="p" tts="x" var="caller" length="4" next="p"/>"#,
            "call fact",
        ),
        (
            r###"<collect id="p" tts="x" var="v" length="4" terminator="##" next="p"/>"###,
            "one key",
        ),
        (
            r#"<menu id="p" tts="x"><case digits="1a" next="p"/></menu>"#,
            "digits=\"1a\"",
        ),
        (r#"<menu id="p" tts="x"/>"#, "no <case"),
        (
            r#"<menu id="p" tts="x"><case digits="1" next="p"/><say/></menu>"#,
            "<say>",
        ),
        (
            r#"<branch id="p" var="caller"><case value="1" next="p"/></branch>"#,
            "<default",
        ),
        (r#"<play tts="x"/>"#, "no id="),
    ];
    for (body, needle) in cases {
        let e = rejected(&doc("p", body));
        assert_eq!(e.kind, ErrorKind::BadAttribute, "{body}: {e}");
        assert!(e.to_string().contains(needle), "{body}: {e}");
        if !body.starts_with("<play tts") {
            assert_eq!(e.node.as_deref(), Some("p"), "{body}: {e}");
        }
    }

    // A variable nothing sets.
    let e = rejected(&doc(
        "p",
        r#"<play id="p" tts="Your balance is ${balance}"/>"#,
    ));
    assert_eq!(
        (e.kind, e.node.as_deref()),
        (ErrorKind::UnknownVariable, Some("p"))
    );
    assert!(e.to_string().contains("\"balance\""));
    // Call facts and run-time tts… values need no setter.
    IvrDefinition::parse(&doc("p", r#"<play id="p" tts="${caller} ${ttsabc}"/>"#)).unwrap();

    // Branches in a loop.
    let e = rejected(&doc(
        "a",
        r#"<branch id="a" var="caller"><default next="b"/></branch>
<branch id="b" var="callee"><case value="1" next="a"/><default next="h"/></branch>
<hangup id="h"/>"#,
    ));
    assert_eq!(e.kind, ErrorKind::Loop);
    assert!(e.to_string().contains("a -> b -> a"), "{e}");
}

#[test]
fn storing_a_bad_definition_is_refused_with_the_node_named() {
    let input = IvrInput {
        id: 1,
        name: "main".into(),
        definition: doc("p", r#"<play id="p" tts="hi" next="gone"/>"#),
        source_path: Some("ivr/main.xml".into()),
    };
    let e = input.validate().unwrap_err();
    assert_eq!(e.field(), Some("definition"));
    assert!(e.to_string().contains("node \"p\""), "{e}");
    assert!(e.to_string().contains("\"gone\" names no node"), "{e}");

    let p = Provisioning {
        ivrs: vec![input],
        ..Default::default()
    };
    let e = p.validate().unwrap_err();
    assert_eq!(e.field(), Some("ivrs[0].definition"));

    let good = IvrInput {
        definition: EXAMPLE.into(),
        ..p.ivrs[0].clone()
    };
    good.validate().unwrap();
}

// ---------------------------------------------------------------------------------------
// The interpreter.

#[test]
fn pressing_1_transfers_to_group_3003() {
    let mut d = at_menu();
    let out = d.key('1');
    assert!(matches!(out[0], IvrCommand::StopPlayback { .. }), "{out:?}");
    assert!(has(
        &out,
        &IvrCommand::Transfer(TransferTarget::Group("3003".into()))
    ));
    assert!(d.m.is_finished());
    let r = d.m.record();
    assert_eq!(r.dtmfkey, "1");
    assert_eq!(r.ivrpoint, "sales");
    assert_eq!(r.path, ["welcome", "main", "sales"]);
    assert_eq!(r.business(), Some(IvrBusiness::IvrTransfer));
    assert_eq!(r.business().unwrap().as_str(), "IVR_TRANSFER");
    assert_eq!(r.answered_at_ms, T0);
    assert_eq!(r.ended_at_ms, Some(T0 + 1500));
    assert_eq!(r.duration_secs(T0 + 60_000), 2);
    // Nothing more happens after the transfer.
    assert!(d.key('2').is_empty());
    assert!(d.advance(60_000).is_empty());
    assert_eq!(d.m.record().dtmfkey, "1");
}

#[test]
fn a_key_during_the_welcome_is_kept_for_the_menu() {
    let (mut d, _) = Driver::new(example(), facts());
    let out = d.key('1');
    assert!(
        plays(&out).is_empty(),
        "the menu prompt is skipped: {out:?}"
    );
    assert!(has(
        &out,
        &IvrCommand::Transfer(TransferTarget::Group("3003".into()))
    ));
    assert_eq!(d.m.record().path, ["welcome", "main", "sales"]);
}

#[test]
fn invalid_keys_retry_twice_then_hang_up() {
    let mut d = at_menu();
    // First wrong key: "not a valid choice", then the menu again.
    let out = d.key('9');
    assert!(matches!(out[0], IvrCommand::StopPlayback { .. }));
    assert_eq!(plays(&out), [tts(INVALID)]);
    assert_eq!(plays(&d.finish_playback(1000)), [tts(MENU)]);
    // Second: the same.
    let out = d.key('7');
    assert_eq!(plays(&out), [tts(INVALID)]);
    assert_eq!(plays(&d.finish_playback(1000)), [tts(MENU)]);
    // Third: retries used up; goodbye, then hang up.
    let out = d.key('*');
    assert_eq!(plays(&out), [tts(GOODBYE)]);
    assert!(!has(&out, &IvrCommand::Hangup));
    let out = d.finish_playback(2000);
    assert_eq!(out, [IvrCommand::Hangup]);
    let r = d.m.record();
    assert_eq!(r.dtmfkey, "97*");
    assert_eq!(r.ivrpoint, "goodbye");
    assert_eq!(r.outcome, Some(IvrOutcome::HungUp));
    assert_eq!(r.business(), Some(IvrBusiness::IvrIncoming));
    assert_eq!(r.business().unwrap().as_str(), "IVR_INCOMING");
}

#[test]
fn silence_replays_the_menu_with_the_no_input_prompt_then_gives_up() {
    let mut d = at_menu();
    let out = d.finish_playback(4000);
    // The prompt ended: a 5 s timer for the first key.
    assert!(matches!(
        out.as_slice(),
        [IvrCommand::StartTimer { after, .. }] if *after == Duration::from_secs(5)
    ));
    assert!(d.advance(4_999).is_empty());
    let out = d.advance(1);
    assert_eq!(plays(&out), [tts(NO_INPUT)]);
    assert_eq!(plays(&d.finish_playback(1000)), [tts(MENU)]);
    d.finish_playback(4000);
    assert_eq!(plays(&d.advance(5_000)), [tts(NO_INPUT)]);
    d.finish_playback(1000);
    d.finish_playback(4000);
    // Third silence: no-input falls back to invalid="goodbye".
    assert_eq!(plays(&d.advance(5_000)), [tts(GOODBYE)]);
    assert_eq!(d.finish_playback(2000), [IvrCommand::Hangup]);
    assert_eq!(d.m.record().dtmfkey, "");
}

#[test]
fn a_valid_choice_resets_the_retries() {
    let mut d = at_menu();
    d.key('9');
    d.finish_playback(1000);
    d.key('8');
    d.finish_playback(1000);
    // Two failures, then a good choice: the account entry.
    let out = d.key('2');
    assert_eq!(plays(&out), [tts(ACCOUNT)]);
    assert_eq!(d.m.record().dtmfkey, "982");
}

/// Menu → 2 → account prompt playing.
fn at_account() -> Driver {
    let mut d = at_menu();
    let out = d.key('2');
    assert_eq!(plays(&out), [tts(ACCOUNT)]);
    d
}

#[test]
fn six_digits_complete_the_account_entry() {
    let mut d = at_account();
    d.finish_playback(3000);
    let out = d.keys("12345");
    assert!(d.http.is_none(), "{out:?}");
    // Each key restarts the 5 s inter-digit timer.
    assert_eq!(
        out.iter()
            .filter(|c| matches!(c, IvrCommand::StartTimer { .. }))
            .count(),
        5
    );
    let out = d.key('6');
    assert_eq!(
        d.m.variables().get("acct").map(String::as_str),
        Some("123456")
    );
    let (_, url) = d.http.clone().expect("the lookup is queried");
    assert_eq!(
        url,
        format!(
            "http://127.0.0.1:8080/cti?opt=kuaidi&in1=123456&caller=808&callee=1000&id={CALLID}"
        )
    );
    assert!(has(
        &out,
        &IvrCommand::HttpGet {
            id: d.http.as_ref().unwrap().0,
            url: url.clone(),
            timeout: Duration::from_secs(10),
        }
    ));
    // Variables are substituted in the TTS prompt played while waiting.
    assert_eq!(
        plays(&out),
        [tts("Looking up account 123456, one moment please.")]
    );
    // The `#` after six digits is not part of the entry; keys while waiting are logged.
    d.key('#');
    assert_eq!(d.m.record().dtmfkey, "2123456#");
    assert_eq!(d.m.current_node(), Some("lookup"));
}

#[test]
fn the_terminator_ends_a_short_entry_and_barges_in() {
    let mut d = at_account();
    // Typed over the prompt: the first key stops it.
    let out = d.key('4');
    assert!(matches!(out[0], IvrCommand::StopPlayback { .. }));
    let out = d.keys("2#");
    assert_eq!(d.m.variables()["acct"], "42");
    assert!(d.http.as_ref().unwrap().1.contains("&in1=42&"));
    assert!(!plays(&out).is_empty());
}

#[test]
fn a_terminator_before_the_minimum_is_invalid() {
    let def = Arc::new(
        IvrDefinition::parse(&doc(
            "pin",
            r##"<collect id="pin" var="pin" length="6" min="4" terminator="#" retries="1"
         tts="Your PIN, then hash." next="ok" invalid="bad">
  <prompt on="invalid" tts="Too short."/>
</collect>
<play id="ok" tts="PIN ${pin} accepted."/>
<hangup id="bad" tts="Bye."/>"##,
        ))
        .unwrap(),
    );
    let (mut d, out) = Driver::new(def, facts());
    assert_eq!(plays(&out), [tts("Your PIN, then hash.")]);
    d.finish_playback(1000);
    let out = d.keys("12#");
    assert_eq!(plays(&out), [tts("Too short.")]);
    d.finish_playback(500);
    d.finish_playback(1000);
    let out = d.keys("1234#");
    assert_eq!(plays(&out), [tts("PIN 1234 accepted.")]);
    assert_eq!(d.finish_playback(1000), [IvrCommand::Hangup]);
    assert_eq!(d.m.record().dtmfkey, "12#1234#");
}

#[test]
fn a_pause_ends_an_entry_that_reached_the_minimum() {
    let mut d = at_account();
    d.finish_playback(3000);
    d.keys("987");
    assert!(d.http.is_none());
    d.advance(5_000);
    assert_eq!(d.m.variables()["acct"], "987");
    assert!(d.http.is_some());
}

/// Six digits entered: the lookup query is out and its waiting prompt plays.
fn at_lookup() -> Driver {
    let mut d = at_account();
    d.finish_playback(3000);
    d.keys("123456");
    assert!(d.http.is_some());
    d
}

#[test]
fn the_http_answer_is_spoken_then_the_menu_returns() {
    let mut d = at_lookup();
    let waiting = d.playing.expect("the waiting prompt plays");
    let out = d.answer(Ok(HttpReply {
        status: 200,
        content_type: Some("text/html;charset=UTF-8".into()),
        body: "您的余额是 100 元。".as_bytes().to_vec(),
    }));
    assert_eq!(out[0], IvrCommand::StopPlayback { id: waiting });
    assert_eq!(plays(&out), [tts("您的余额是 100 元。")]);
    assert_eq!(d.m.variables()["answer"], "您的余额是 100 元。");
    assert_eq!(d.m.current_node(), Some("answer"));
    // The stopped waiting prompt's late report changes nothing.
    assert!(d
        .send(IvrEvent::PlaybackFinished { id: waiting })
        .is_empty());
    assert_eq!(plays(&d.finish_playback(3000)), [tts(MENU)]);
    // The query's timer fires later, harmlessly.
    d.finish_playback(4000);
    let out = d.advance(4_000);
    assert!(plays(&out).is_empty(), "{out:?}");
}

#[test]
fn an_http_failure_falls_back_to_the_error_target() {
    let bad: Vec<(Result<HttpReply, String>, &str)> = vec![
        (Err("connection refused".into()), "connection refused"),
        (
            Ok(HttpReply {
                status: 500,
                content_type: None,
                body: b"oops".to_vec(),
            }),
            "HTTP status 500",
        ),
        (
            Ok(HttpReply {
                status: 200,
                content_type: None,
                body: vec![0xc4, 0xe3, 0xba, 0xc3],
            }),
            "not UTF-8",
        ),
        (
            Ok(HttpReply {
                status: 200,
                content_type: Some("text/plain; charset=GBK".into()),
                body: b"ok".to_vec(),
            }),
            "gbk",
        ),
        (Ok(HttpReply::text("  \r\n ")), "empty"),
        (
            Ok(HttpReply::text("<html><body>Error 404</body></html>")),
            "markup",
        ),
    ];
    for (result, needle) in bad {
        let mut d = at_lookup();
        let out = d.answer(result);
        let w = warnings(&out);
        assert_eq!(w.len(), 1, "{out:?}");
        assert_eq!(w[0].0, "lookup");
        assert!(w[0].1.contains(needle), "{needle}: {}", w[0].1);
        assert_eq!(plays(&out), [tts(SORRY)], "{needle}");
        assert_eq!(d.m.current_node(), Some("sorry"));
        assert_eq!(plays(&d.finish_playback(2000)), [tts(GOODBYE)]);
        assert_eq!(d.finish_playback(2000), [IvrCommand::Hangup]);
        assert_eq!(d.m.record().business(), Some(IvrBusiness::IvrIncoming));
    }
}

#[test]
fn an_http_timeout_falls_back_and_a_late_answer_is_ignored() {
    let mut d = at_lookup();
    d.finish_playback(2000);
    assert!(d.advance(7_000).is_empty());
    let out = d.advance(1_000);
    let w = warnings(&out);
    assert_eq!(w.len(), 1);
    assert!(w[0].1.contains("no answer within 10 s"), "{}", w[0].1);
    assert_eq!(plays(&out), [tts(SORRY)]);
    assert!(d.answer(Ok(HttpReply::text("too late"))).is_empty());
    assert!(!d.m.variables().contains_key("answer"));
}

#[test]
fn without_an_error_target_a_failed_query_hangs_up() {
    let def = Arc::new(
        IvrDefinition::parse(&doc(
            "q",
            r#"<http id="q" url="http://crm.example/ivr" params="name=ttsname" timeout="3"/>"#,
        ))
        .unwrap(),
    );
    let mut f = facts();
    f.vars.insert("ttsname".into(), "张三 & co/#1".into());
    let (mut d, out) = Driver::new(def, f);
    // The exact URL: non-ASCII as UTF-8 percent-encoding, `&`, `/` and `#` escaped.
    let (_, url) = d.http.clone().unwrap();
    assert_eq!(
        url,
        format!(
            "http://crm.example/ivr?name=%E5%BC%A0%E4%B8%89%20%26%20co%2F%231&caller=808&callee=1000&id={CALLID}"
        )
    );
    assert!(plays(&out).is_empty(), "no waiting prompt was given");
    let out = d.advance(3_000);
    assert_eq!(warnings(&out).len(), 1);
    assert_eq!(out.last(), Some(&IvrCommand::Hangup));
}

#[test]
fn an_answer_spoken_by_the_http_node_itself() {
    // `params` must name a variable a node sets, a call fact or a starter's `tts…` value.
    let e = rejected(&doc(
        "q",
        r#"<http id="q" url="http://crm/q" params="acct"/>"#,
    ));
    assert_eq!(
        (e.kind, e.node.as_deref()),
        (ErrorKind::UnknownVariable, Some("q"))
    );

    let def = Arc::new(
        IvrDefinition::parse(&doc(
            "q",
            r#"<http id="q" url="http://crm/q?a=1&amp;b=2" params="in1=ttsacct" next="bye"/>
<hangup id="bye" tts="Goodbye ${caller}."/>"#,
        ))
        .unwrap(),
    );
    let mut f = facts();
    f.vars.insert("ttsacct".into(), "42".into());
    let (mut d, _) = Driver::new(def, f);
    assert_eq!(
        d.http.as_ref().unwrap().1,
        format!("http://crm/q?a=1&b=2&in1=42&caller=808&callee=1000&id={CALLID}")
    );
    let out = d.answer(Ok(HttpReply::text("Parcel 42 is on its way.\n")));
    assert_eq!(plays(&out), [tts("Parcel 42 is on its way.")]);
    assert!(matches!(
        out.as_slice(),
        [IvrCommand::Play {
            barge_in: false,
            ..
        }]
    ));
    assert_eq!(plays(&d.finish_playback(2000)), [tts("Goodbye 808.")]);
    assert_eq!(d.finish_playback(1000), [IvrCommand::Hangup]);
}

#[test]
fn the_caller_hanging_up_in_the_menu_is_ivr_incoming() {
    let mut d = at_menu();
    d.now += 2_400;
    assert!(d.send(IvrEvent::CallerHungUp).is_empty());
    let r = d.m.record();
    assert_eq!(r.outcome, Some(IvrOutcome::CallerHungUp));
    assert_eq!(r.business(), Some(IvrBusiness::IvrIncoming));
    assert_eq!(r.ivrpoint, "main");
    assert_eq!(r.ended_at_ms, Some(T0 + 3_900));
    assert_eq!(r.duration_secs(T0 + 99_000), 4);
    assert!(d.m.is_finished());
    assert!(d.advance(10_000).is_empty());
}

#[test]
fn outside_transfers_voicemail_and_transfer_failures() {
    let text = doc(
        "m",
        r##"<menu id="m" tts="1 police, 2 voicemail, 3 your extension">
  <case digits="1" next="out"/>
  <case digits="2" next="vm"/>
  <case digits="3" next="ext"/>
</menu>
<transfer id="out" to="number:110"/>
<voicemail id="vm" tts="Leave a message after the tone." max="30" terminator="#" var="mail" next="thanks"/>
<play id="thanks" tts="Thank you."/>
<collect id="ext" var="e" length="3" tts="Extension?" next="dial"/>
<transfer id="dial" to="ext:${e}" error="m"/>"##,
    );
    let def = Arc::new(IvrDefinition::parse(&text).unwrap());

    // 1: an outside number.
    let (mut d, _) = Driver::new(def.clone(), facts());
    let out = d.key('1');
    assert!(has(
        &out,
        &IvrCommand::Transfer(TransferTarget::Number("110".into()))
    ));
    assert_eq!(d.m.record().business(), Some(IvrBusiness::IvrOutTransfer));
    assert_eq!(
        d.m.record().business().unwrap().as_str(),
        "IVR_OUT_TRANSFER"
    );
    assert_eq!(d.m.record().ivrpoint, "out");

    // 2: voicemail, ended by the terminator.
    let (mut d, _) = Driver::new(def.clone(), facts());
    let out = d.key('2');
    assert_eq!(plays(&out), [tts("Leave a message after the tone.")]);
    let out = d.finish_playback(2000);
    assert_eq!(
        out[0],
        IvrCommand::RecordVoicemail {
            max: Duration::from_secs(30)
        }
    );
    let out = d.key('#');
    assert_eq!(out[0], IvrCommand::StopVoicemail);
    let out = d.send(IvrEvent::VoicemailDone(Ok("data/voicemail/1.wav".into())));
    assert_eq!(plays(&out), [tts("Thank you.")]);
    assert_eq!(d.m.variables()["mail"], "data/voicemail/1.wav");
    assert_eq!(d.finish_playback(1000), [IvrCommand::Hangup]);
    let r = d.m.record();
    assert_eq!(r.voicemail.as_deref(), Some("data/voicemail/1.wav"));
    assert_eq!(r.business(), Some(IvrBusiness::VoiceMail));

    // 2 again: the caller hangs up while recording (the usual end of a voicemail).
    let (mut d, _) = Driver::new(def.clone(), facts());
    d.key('2');
    d.finish_playback(2000);
    assert_eq!(d.send(IvrEvent::CallerHungUp)[0], IvrCommand::StopVoicemail);
    assert!(d
        .send(IvrEvent::VoicemailDone(Ok("data/voicemail/2.wav".into())))
        .is_empty());
    assert_eq!(d.m.record().business(), Some(IvrBusiness::VoiceMail));
    assert!(d.m.is_finished());

    // 2, and the recording reaches its maximum: the machine stops it.
    let (mut d, _) = Driver::new(def.clone(), facts());
    d.key('2');
    d.finish_playback(2000);
    let out = d.advance(30_000);
    assert_eq!(out[0], IvrCommand::StopVoicemail);
    // …and the recorder never answers: the caller still is not left in silence.
    let out = d.advance(5_000);
    assert_eq!(warnings(&out).len(), 1);
    assert_eq!(out.last(), Some(&IvrCommand::Hangup));

    // 3: a transfer to a keyed extension, which fails: back to the menu.
    let (mut d, _) = Driver::new(def, facts());
    d.key('3');
    d.finish_playback(1000);
    let out = d.keys("801");
    assert!(has(
        &out,
        &IvrCommand::Transfer(TransferTarget::Ext("801".into()))
    ));
    assert_eq!(d.m.record().business(), Some(IvrBusiness::IvrTransfer));
    let out = d.send(IvrEvent::TransferFailed("486 Busy Here".into()));
    assert!(warnings(&out)[0].1.contains("486 Busy Here"));
    assert_eq!(
        plays(&out),
        [tts("1 police, 2 voicemail, 3 your extension")]
    );
    assert_eq!(d.m.record().outcome, None);
    assert_eq!(d.m.record().dtmfkey, "3801");
    assert_eq!(d.m.record().path, ["m", "ext", "dial", "m"]);
}

#[test]
fn a_prompt_that_cannot_be_played_is_skipped_with_a_warning() {
    let (mut d, out) = Driver::new(example(), facts());
    let IvrCommand::Play { id, .. } = out[0] else {
        panic!("{out:?}")
    };
    let out = d.send(IvrEvent::PlaybackFailed {
        id,
        error: "TTS engine is off".into(),
    });
    assert_eq!(
        warnings(&out),
        [(
            "welcome".to_owned(),
            "prompt could not be played: TTS engine is off".to_owned()
        )]
    );
    assert_eq!(plays(&out), [tts(MENU)]);
}

#[test]
fn answers_are_judged_and_values_encoded() {
    assert_eq!(
        check_answer(&HttpReply::text("\u{feff} ok \n")).unwrap(),
        "ok"
    );
    assert_eq!(check_answer(&HttpReply::text("a\tb")).unwrap(), "a b");
    assert!(check_answer(&HttpReply::text(&"x".repeat(1001))).is_err());
    let utf8 = HttpReply {
        status: 200,
        content_type: Some("text/plain; charset=\"utf-8\"".into()),
        body: b"fine".to_vec(),
    };
    assert_eq!(check_answer(&utf8).unwrap(), "fine");
    assert_eq!(encode_query_value("a b+c&d=e"), "a%20b%2Bc%26d%3De");
    assert_eq!(encode_query_value("*#"), "%2A%23");
    assert_eq!(encode_query_value("你好"), "%E4%BD%A0%E5%A5%BD");
    assert_eq!(encode_query_value("x@1.2.3.4:5060"), "x@1.2.3.4:5060");
}
