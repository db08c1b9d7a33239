//! Driving pjsua2 phones (tests/peers/pjphone.py) from tests.
//!
//! Each helper runs the script as a child process (bounded by a timeout, killed on drop)
//! and returns the one JSON object it prints. The Python interpreter is
//! `$CTISWITCH_TEST_PYTHON` (set by scripts/test.sh), else `<repo>/.venv/bin/python`
//! (`make deps` creates it). `CTISWITCH_TEST_PJ_LOG=5` passes `--pj-log 5` to the script
//! for a full SIP trace on stderr, which a failing run prints.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use serde_json::Value;

/// Provisioning for two extensions, 801 / p801 and 802 / p802.
pub const TWO_EXTENSIONS: &str = r#"
[[extensions]]
number = "801"
password = "p801"
[[extensions]]
number = "802"
password = "p802"
"#;

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

/// The call log row of `call_id`, polled for up to `timeout` (the log is written in
/// batches).
pub async fn wait_calllog(
    db: &DatabaseConnection,
    call_id: &str,
    timeout: Duration,
) -> Option<entities::calllog::Model> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(row) = entities::repo::calllog::by_callid(db, call_id)
            .await
            .expect("calllog query")
        {
            return Some(row);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
