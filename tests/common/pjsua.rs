//! Driving pjsua2 phones (tests/peers/pjphone.py) from tests.
//!
//! Each helper runs the script as a child process (bounded by a timeout, killed on drop)
//! and returns the one JSON object it prints. The Python interpreter is
//! `$CTISWITCH_TEST_PYTHON` (set by scripts/test.sh), else `<repo>/.venv/bin/python`
//! (`make deps` creates it). `CTISWITCH_TEST_PJ_LOG=5` passes `--pj-log 5` to the script
//! for a full SIP trace on stderr, which a failing run prints.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ctiswitch::Switch;
use serde_json::{json, Value};

/// Provisioning for two extensions, 801 / p801 and 802 / p802.
pub const TWO_EXTENSIONS: &str = r#"
[[extensions]]
number = "801"
password = "p801"
[[extensions]]
number = "802"
password = "p802"
"#;

/// [`super::with_switch`] with extensions 801 / p801 and 802 / p802 plus `extra` TOML
/// (sections merge with the test defaults).
pub fn with_switch<F, Fut>(extra: &str, test: F)
where
    F: FnOnce(Switch) -> Fut,
    Fut: Future<Output = Switch>,
{
    super::with_switch(&format!("{TWO_EXTENSIONS}\n{extra}"), test);
}

/// A script's command line from string slices.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Runs the `dial` scenario (one phone calls a number; see pjphone.py) with `list`.
pub async fn dial(sip: SocketAddr, list: &[&str], timeout: Duration) -> Value {
    run(sip, "dial", &args(list), timeout).await
}

/// Spawns the `answer` scenario (a phone that registers and answers; see pjphone.py) with
/// `list`, and waits (15 s at the most) until it has registered with a 200.
pub async fn answering_phone(sip: SocketAddr, list: &[&str]) -> PhoneProcess {
    let mut phone = PhoneProcess::spawn(sip, "answer", &args(list));
    let registered = phone.event("registered", Duration::from_secs(15)).await;
    assert_eq!(registered["code"], 200, "the phone registers: {registered}");
    phone
}

/// Collects failed checks so that one run reports everything that is wrong.
#[derive(Default)]
pub struct Checks(pub Vec<String>);

impl Checks {
    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.0.push(what.into());
        }
    }

    /// A text field (of a call-log row, say) has the value it should: `name got`.
    pub fn field(&mut self, name: &str, got: &str, want: &str) {
        self.check(got == want, format!("{name} {got:?}, expected {want:?}"));
    }

    /// Two moments of the run (seconds; checked when both are known) at most `max` apart.
    pub fn together(&mut self, t1: Option<f64>, t2: Option<f64>, max: f64, what: &str) {
        if let (Some(t1), Some(t2)) = (t1, t2) {
            let apart = (t1 - t2).abs();
            self.check(apart <= max, format!("{what} ({apart:.2} s apart)"));
        }
    }

    /// How a call ended, by its call-log row: its `state` and who hung up.
    pub fn ended(&mut self, row: &entities::calllog::Model, state: &str, hungupside: &str) {
        self.field("state", &row.state, state);
        self.field("hungupside", &row.hungupside, hungupside);
    }

    /// The call-log duration matches the talk time A measured (to a second).
    pub fn duration(&mut self, row: &entities::calllog::Model, r: &Value) {
        let talk = r["caller"]["talk_seconds"].as_f64().unwrap_or(-10.0);
        self.check(
            (f64::from(row.duration) - talk).abs() <= 1.0,
            format!("duration {} s, measured talk {talk:.2} s", row.duration),
        );
    }

    /// A call-log row of a call nobody answered.
    pub fn never_answered(&mut self, row: &entities::calllog::Model) {
        self.check(
            row.duration == 0 && row.pickup_time == 0,
            format!(
                "never answered: duration {} pickupTime {}",
                row.duration, row.pickup_time
            ),
        );
    }

    /// Panics with every failed check and the phones' `result`.
    pub fn assert_ok(self, name: &str, result: &Value) {
        assert!(
            self.0.is_empty(),
            "{name}:\n  - {}\nresult: {result}",
            self.0.join("\n  - ")
        );
    }
}

/// The last call state of one side (`r["caller"]`, `r["callee"]`, …) of a result.
pub fn last_state(side: &Value) -> Option<&str> {
    side["states"].as_array()?.last()?.as_str()
}

/// When (seconds into the run) one side of a result reached `what` (`incoming`,
/// `confirmed`, `disconnected`, …).
pub fn time(side: &Value, what: &str) -> Option<f64> {
    side["times"][what].as_f64()
}

/// Checks shared by every call: no script errors, the phones registered, A's call ended.
pub fn basics(c: &mut Checks, r: &Value) {
    c.check(
        r["errors"] == json!([]),
        format!("script errors: {}", r["errors"]),
    );
    c.check(
        r["register"]
            .as_object()
            .is_some_and(|m| !m.is_empty() && m.values().all(|v| v == 200)),
        format!("every phone registers: {}", r["register"]),
    );
    c.check(
        last_state(&r["caller"]) == Some("DISCONNECTED"),
        format!("A's call ends: {}", r["caller"]["states"]),
    );
}

/// The script reported no errors.
pub fn assert_no_errors(r: &Value) {
    assert_eq!(r["errors"], json!([]), "script errors: {r}");
}

/// The Call-ID of A's call (the caller's side of a `call` or `dial` result).
pub fn caller_call_id(r: &Value) -> Option<&str> {
    r["caller"]["call_id"].as_str()
}

/// The call-log row of A's call, polled for 3 s (the log is written in batches); a failed
/// check without one.
pub async fn checked_row(
    c: &mut Checks,
    db: &sea_orm::DatabaseConnection,
    r: &Value,
) -> Option<entities::calllog::Model> {
    let Some(call_id) = caller_call_id(r) else {
        c.check(false, "no caller Call-ID");
        return None;
    };
    let row = super::wait_call_log(db, call_id, Duration::from_secs(3)).await;
    c.check(
        row.is_some(),
        format!("a call-log row for Call-ID {call_id} within 3 s"),
    );
    row
}

/// The call-log row of A's call, polled for 3 s (the log is written in batches); panics
/// without one.
pub async fn caller_row(db: &sea_orm::DatabaseConnection, r: &Value) -> entities::calllog::Model {
    let call_id = caller_call_id(r).unwrap_or_else(|| panic!("no caller Call-ID: {r}"));
    super::wait_call_log(db, call_id, Duration::from_secs(3))
        .await
        .unwrap_or_else(|| panic!("no call-log row for Call-ID {call_id} within 3 s"))
}

/// The blocks of `timeline` (one character per 100 ms) among its first `n` in which no
/// single tone dominated (`?`): speech, or anything else that is not a tone.
pub fn untoned_blocks(timeline: &str, n: usize) -> usize {
    timeline.chars().take(n).filter(|c| *c == '?').count()
}

pub fn python() -> PathBuf {
    let path = std::env::var_os("CTISWITCH_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(
        path.exists(),
        "no Python for the pjsua2 phones at {} (run `make deps`, or set CTISWITCH_TEST_PYTHON)",
        path.display()
    );
    path
}

pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pjphone.py")
}

/// `pjphone.py <scenario> --switch <sip> --workdir <workdir> <args…>`, piped, killed on drop.
fn command(
    sip: SocketAddr,
    scenario: &str,
    workdir: &std::path::Path,
    args: &[String],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(script())
        .arg(scenario)
        .arg("--switch")
        .arg(sip.to_string())
        .arg("--workdir")
        .arg(workdir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Ok(level) = std::env::var("CTISWITCH_TEST_PJ_LOG") {
        cmd.arg("--pj-log").arg(level);
    }
    cmd
}

/// How much of a script's stderr a failure message shows: all of it with
/// `CTISWITCH_TEST_PJ_LOG` (the SIP trace), else its end.
fn stderr_tail(stderr: &str) -> String {
    let lines = if std::env::var_os("CTISWITCH_TEST_PJ_LOG").is_some() {
        usize::MAX
    } else {
        200
    };
    tail(stderr, lines)
}

/// Runs `pjphone.py <scenario> --switch <sip> <args…>` and returns its JSON. Panics, with
/// the script's stderr, on a timeout, a failed exit or output that is not JSON.
pub async fn run(sip: SocketAddr, scenario: &str, args: &[String], timeout: Duration) -> Value {
    // Tone files and recordings live (and die) with this directory.
    let workdir = tempfile::tempdir().expect("pjphone workdir");
    let child = command(sip, scenario, workdir.path(), args)
        .spawn()
        .expect("spawn pjphone.py");
    let started = Instant::now();
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(out) => out.expect("wait for pjphone.py"),
        // Dropping the future drops the child, which kills it.
        Err(_) => panic!("pjphone.py {scenario} {args:?} did not finish within {timeout:?}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let parsed = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .and_then(|l| serde_json::from_str::<Value>(l).ok());
    match parsed {
        Some(v) if out.status.success() => {
            if std::env::var_os("CTISWITCH_TEST_PJ_VERBOSE").is_some() {
                eprintln!("pjphone.py {scenario} stderr:\n{stderr}");
            }
            eprintln!(
                "pjphone.py {scenario} ({:.1} s): {v}",
                started.elapsed().as_secs_f64()
            );
            v
        }
        _ => panic!(
            "pjphone.py {scenario} {args:?} failed ({}):\nstdout:\n{stdout}\nstderr (tail):\n{}",
            out.status,
            stderr_tail(&stderr)
        ),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Registers `user:password` once (and un-registers when `unregister`).
pub async fn register(sip: SocketAddr, user: &str, password: &str, unregister: bool) -> Value {
    let mut args = vec!["--phone".to_string(), format!("{user}:{password}")];
    if unregister {
        args.push("--unregister".into());
    }
    run(sip, "register", &args, Duration::from_secs(30)).await
}

/// One A-calls-B run of the `call` scenario.
#[derive(Debug, Clone)]
pub struct CallOpts {
    pub caller: (&'static str, &'static str),
    pub callee: (&'static str, &'static str),
    pub transport: &'static str,
    /// `Some("PCMU")` / `Some("PCMA")`: the only codec both phones enable.
    pub codec: Option<&'static str>,
    pub tone_a: u32,
    pub tone_b: u32,
    /// Seconds of talk before the DTMF.
    pub talk: f64,
    pub dtmf: &'static str,
    /// `"caller"` or `"callee"`.
    pub hangup: &'static str,
    /// Seconds B rings before it answers.
    pub answer_delay: f64,
    /// B's answer: 200, 180 (rings until cancelled) or a refusal (486, 603, …).
    pub answer_code: u16,
    /// What A dials (default: B's number), e.g. a group.
    pub dial: Option<&'static str>,
    /// A third phone C (`callee2` in the result), with its tone, answer and delay.
    pub callee2: Option<(&'static str, &'static str)>,
    pub tone_c: u32,
    pub answer_code2: u16,
    pub answer_delay2: f64,
    /// After `talk`, A holds B for this long, then unholds and talks `talk_after` more.
    pub hold: Option<f64>,
    /// A's hold offer: `"sendonly"` (pjsua's setHold) or `"inactive"` (nobody sends RTP).
    pub hold_dir: &'static str,
    pub talk_after: f64,
    /// This long after the answer, neither phone sends RTP any more (SIP stays up); A then
    /// waits up to `talk` seconds for the switch to hang up.
    pub media_stop_after: Option<f64>,
    /// More frequencies for the analysis (music on hold, prompts), e.g. `"523,659,784"`.
    pub listen_freqs: Option<&'static str>,
    /// A's INVITE carries no SDP (delayed offer: the switch offers in its 200).
    pub no_sdp_offer: bool,
}

impl Default for CallOpts {
    fn default() -> Self {
        CallOpts {
            caller: ("801", "p801"),
            callee: ("802", "p802"),
            transport: "udp",
            codec: None,
            tone_a: 440,
            tone_b: 1000,
            talk: 3.0,
            dtmf: "1234#",
            hangup: "caller",
            answer_delay: 1.5,
            answer_code: 200,
            dial: None,
            callee2: None,
            tone_c: 1500,
            answer_code2: 200,
            answer_delay2: 1.5,
            hold: None,
            hold_dir: "sendonly",
            talk_after: 2.0,
            media_stop_after: None,
            listen_freqs: None,
            no_sdp_offer: false,
        }
    }
}

pub async fn call(sip: SocketAddr, o: &CallOpts) -> Value {
    let mut args: Vec<String> = vec![
        "--caller".into(),
        format!("{}:{}", o.caller.0, o.caller.1),
        "--callee".into(),
        format!("{}:{}", o.callee.0, o.callee.1),
        "--transport".into(),
        o.transport.into(),
        "--tone-a".into(),
        o.tone_a.to_string(),
        "--tone-b".into(),
        o.tone_b.to_string(),
        "--talk".into(),
        o.talk.to_string(),
        "--hangup".into(),
        o.hangup.into(),
        "--answer-delay".into(),
        o.answer_delay.to_string(),
    ];
    if !o.dtmf.is_empty() {
        args.push("--dtmf".into());
        args.push(o.dtmf.into());
    }
    if let Some(codec) = o.codec {
        args.push("--codec".into());
        args.push(codec.into());
    }
    if o.no_sdp_offer {
        args.push("--no-sdp-offer".into());
    }
    if o.answer_code != 200 {
        args.extend(["--answer-code".into(), o.answer_code.to_string()]);
    }
    if let Some(dial) = o.dial {
        args.extend(["--dial".into(), dial.into()]);
    }
    if let Some((user, password)) = o.callee2 {
        args.extend([
            "--callee2".into(),
            format!("{user}:{password}"),
            "--tone-c".into(),
            o.tone_c.to_string(),
            "--answer-code2".into(),
            o.answer_code2.to_string(),
            "--answer-delay2".into(),
            o.answer_delay2.to_string(),
        ]);
    }
    if let Some(hold) = o.hold {
        args.extend([
            "--hold".into(),
            hold.to_string(),
            "--hold-dir".into(),
            o.hold_dir.into(),
            "--talk-after".into(),
            o.talk_after.to_string(),
        ]);
    }
    if let Some(after) = o.media_stop_after {
        args.extend(["--media-stop-after".into(), after.to_string()]);
    }
    if let Some(freqs) = o.listen_freqs {
        args.extend(["--listen-freqs".into(), freqs.to_string()]);
    }
    run(sip, "call", &args, Duration::from_secs(60)).await
}

/// The fraction of window `name`'s 100 ms blocks of `who`'s recording that tone `freq`
/// dominated (0.0 if there is no such window).
pub fn window_share(result: &Value, who: &str, name: &str, freq: u32) -> f64 {
    result["audio"][who]["windows"][name][freq.to_string()]
        .as_f64()
        .unwrap_or(0.0)
}

/// A pjphone.py process the test talks to while it runs (e.g. the `answer` scenario, a
/// phone in its own process that can vanish): its JSON event lines are read as they come.
pub struct PhoneProcess {
    what: String,
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    stderr: tokio::task::JoinHandle<String>,
    _workdir: tempfile::TempDir,
}

/// How a [`PhoneProcess`] ended: its exit code and every JSON line it printed.
#[derive(Debug)]
pub struct Ended {
    pub code: Option<i32>,
    pub lines: Vec<Value>,
    pub stderr: String,
}

impl PhoneProcess {
    pub fn spawn(sip: SocketAddr, scenario: &str, args: &[String]) -> PhoneProcess {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt};
        let workdir = tempfile::tempdir().expect("pjphone workdir");
        let mut child = command(sip, scenario, workdir.path(), args)
            .spawn()
            .expect("spawn pjphone.py");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        // Drained all along, so a chatty pjlib (CTISWITCH_TEST_PJ_LOG=5) never blocks.
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        PhoneProcess {
            what: format!("pjphone.py {scenario} {args:?}"),
            child,
            lines: tokio::io::BufReader::new(stdout).lines(),
            stderr,
            _workdir: workdir,
        }
    }

    /// The next JSON line; None at the end of the output.
    async fn next_json(&mut self) -> Option<Value> {
        loop {
            let line = self.lines.next_line().await.ok()??;
            if let Ok(v) = serde_json::from_str::<Value>(line.trim()) {
                return Some(v);
            }
        }
    }

    /// Waits for the event line `{"event": name, …}`; panics (with stderr) if the script
    /// ends or `timeout` passes first.
    pub async fn event(&mut self, name: &str, timeout: Duration) -> Value {
        let found = tokio::time::timeout(timeout, async {
            while let Some(v) = self.next_json().await {
                if v["event"] == name {
                    return Some(v);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(v)) => {
                eprintln!("{}: {v}", self.what);
                v
            }
            other => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                let stderr = (&mut self.stderr).await.unwrap_or_default();
                panic!(
                    "{}: no {name:?} event ({}):\nstderr (tail):\n{}",
                    self.what,
                    if other.is_err() { "timeout" } else { "ended" },
                    stderr_tail(&stderr)
                )
            }
        }
    }

    /// [`finish`](Self::finish), and the last JSON line: the script's result (`Null` if it
    /// printed none).
    pub async fn result(self, timeout: Duration) -> Value {
        self.finish(timeout)
            .await
            .lines
            .last()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits up to `timeout` for the process to end (then kills it) and collects the rest
    /// of its output.
    pub async fn finish(mut self, timeout: Duration) -> Ended {
        let mut lines = Vec::new();
        let read = tokio::time::timeout(timeout, async {
            while let Some(v) = self.next_json().await {
                lines.push(v);
            }
        })
        .await;
        if read.is_err() {
            let _ = self.child.start_kill();
        }
        let status = self.child.wait().await.expect("wait for pjphone.py");
        let stderr = self.stderr.await.unwrap_or_default();
        if std::env::var_os("CTISWITCH_TEST_PJ_VERBOSE").is_some() {
            eprintln!("{} stderr:\n{stderr}", self.what);
        }
        Ended {
            code: status.code(),
            lines,
            stderr,
        }
    }
}

/// The share of `who`'s recording ("caller" / "callee") that is tone `freq` (0.0 if absent).
pub fn share(result: &Value, who: &str, freq: u32) -> f64 {
    result["audio"][who][freq.to_string()]
        .as_f64()
        .unwrap_or(0.0)
}

/// Seconds of `who`'s recording in which tone `freq` dominated.
pub fn dominated_seconds(result: &Value, who: &str, freq: u32) -> f64 {
    result["audio"][who][format!("{freq}_seconds")]
        .as_f64()
        .unwrap_or(0.0)
}
