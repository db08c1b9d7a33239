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

/// Runs `pjphone.py <scenario> --switch <sip> <args…>` and returns its JSON. Panics, with
/// the script's stderr, on a timeout, a failed exit or output that is not JSON.
pub async fn run(sip: SocketAddr, scenario: &str, args: &[String], timeout: Duration) -> Value {
    // Tone files and recordings live (and die) with this directory.
    let workdir = tempfile::tempdir().expect("pjphone workdir");
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(script())
        .arg(scenario)
        .arg("--switch")
        .arg(sip.to_string())
        .arg("--workdir")
        .arg(workdir.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Ok(level) = std::env::var("CTISWITCH_TEST_PJ_LOG") {
        cmd.arg("--pj-log").arg(level);
    }
    let child = cmd.spawn().expect("spawn pjphone.py");
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
            // With CTISWITCH_TEST_PJ_LOG the whole SIP trace, else the end of it.
            tail(
                &stderr,
                if std::env::var_os("CTISWITCH_TEST_PJ_LOG").is_some() {
                    usize::MAX
                } else {
                    200
                }
            )
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
    run(sip, "call", &args, Duration::from_secs(60)).await
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
