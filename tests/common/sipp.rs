//! Driving SIPp from tests (owned by the SIPp tests).
//!
//! [`Sipp`] builds one SIPp run: a scenario under `tests/sipp/`, an injection CSV (written
//! to a temporary directory), the service (`-s`), the remote address, the local port and
//! any extra arguments. Every run is bounded: `-m` calls, SIPp's own `-timeout` (with
//! `-timeout_error`, so running out of time is a failure) and a harness deadline a little
//! later that kills the process. Each run gets its own directory for `-trace_err`,
//! `-trace_msg` and `-trace_stat`, and free ports for SIP (`-p`), media (`-mp`, which SIPp
//! binds together with `-mp + 2`) and control (`-cp`): SIPp's defaults (6000, 8888) clash
//! when several runs or other programs use them. Everything binds to 127.0.0.1 (`-i`, `-mi`,
//! `-ci`).
//!
//! - [`Sipp::run`] runs in the foreground and returns the [`SippOutcome`].
//! - [`Sipp::spawn`] starts a background run (a UAS: a phone or a carrier) and returns a
//!   [`SippProcess`]; [`SippProcess::wait`] collects its outcome, and dropping it kills it.
//!
//! Waiting is asynchronous (polling `try_wait`), never blocking the thread: the switch under
//! test runs its actors on the test's own thread.
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The SIPp binary (installed by `make deps`): `/usr/bin/sipp`, else `sipp` on the PATH.
pub fn sipp_bin() -> &'static str {
    if Path::new("/usr/bin/sipp").exists() {
        "/usr/bin/sipp"
    } else {
        "sipp"
    }
}

/// SIPp's own global timeout when the test names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long after SIPp's own timeout the harness kills it.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// `tests/sipp/<name>`.
pub fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// Ports handed out in this process, so that two threads never get the same one.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

fn claim(ports: &[u16]) -> bool {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let set = guard.get_or_insert_with(HashSet::new);
    if ports.iter().any(|p| set.contains(p)) {
        return false;
    }
    set.extend(ports.iter().copied());
    true
}

/// A loopback port free on both UDP and TCP right now (bound, then released), never handed
/// out before in this process.
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let Ok(udp) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        if TcpListener::bind(addr).is_err() {
            continue;
        }
        if claim(&[addr.port()]) {
            return addr.port();
        }
    }
    panic!("no free loopback port");
}

/// A UDP port `p` such that `p` and `p + 2` are free (SIPp's `-mp` binds both: audio and
/// video).
pub fn free_media_port() -> u16 {
    for _ in 0..200 {
        let Ok(a) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = a.local_addr() else { continue };
        let p = addr.port();
        if p > u16::MAX - 4 {
            continue;
        }
        let Ok(_b) = UdpSocket::bind(("127.0.0.1", p + 2)) else {
            continue;
        };
        if claim(&[p, p + 2]) {
            return p;
        }
    }
    panic!("no free media port pair");
}

/// A UDP port for SIPp's control socket (`-cp`, bound on `-ci 127.0.0.1`).
fn free_control_port() -> u16 {
    for _ in 0..200 {
        let Ok(s) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = s.local_addr() else { continue };
        if claim(&[addr.port()]) {
            return addr.port();
        }
    }
    panic!("no free control port");
}

/// True when some socket is bound to UDP `127.0.0.1:port` (read from /proc/net/udp, so as
/// not to race the program that is about to bind it).
pub fn udp_port_bound(port: u16) -> bool {
    let wanted = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp")
        .map(|t| {
            t.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(wanted.as_str()))
        })
        .unwrap_or(false)
}

/// True when some socket listens on TCP `127.0.0.1:port` (from /proc/net/tcp).
pub fn tcp_port_listening(port: u16) -> bool {
    let wanted = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .map(|t| {
            t.lines().any(|l| {
                let mut f = l.split_whitespace();
                // sl, local_address, rem_address, st (0A: LISTEN)
                f.nth(1) == Some(wanted.as_str()) && f.nth(1) == Some("0A")
            })
        })
        .unwrap_or(false)
}

/// The injection-file line of an extension: `user;x;[authentication …]` (+ `;contact`).
pub fn user_line(user: &str, password: &str, contact: Option<SocketAddr>) -> String {
    let mut line = format!("{user};x;[authentication username={user} password={password}]");
    if let Some(c) = contact {
        line.push_str(&format!(";{c}"));
    }
    line
}

/// The password of every extension the SIPp tests provision.
pub const PASSWORD: &str = "1234";

/// The outside number the carrier calls from in the trunk tests.
pub const CUSTOMER: &str = "0612345678";

/// `[[extensions]]` entries for `numbers`, each with password [`PASSWORD`].
pub fn extensions(numbers: &[&str]) -> String {
    numbers
        .iter()
        .map(|n| super::extension(n, PASSWORD, &[]))
        .collect()
}

/// A trunk named `carrier` at `127.0.0.1:<port>` (a SIPp peer plays it); `default`: the
/// route for outside numbers.
pub fn carrier_trunk(port: u16, default: bool) -> String {
    format!("[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1:{port}\"\ndefault = {default}\n")
}

/// REGISTERs `user` (password [`PASSWORD`]) with its Contact at `contact` (over TCP, with
/// `transport=tcp`, when `tcp`); asserts the 200.
pub async fn register(sip: SocketAddr, user: &str, contact: SocketAddr, tcp: bool) -> SippOutcome {
    let line = user_line(user, PASSWORD, Some(contact));
    let mut run = Sipp::new("register.xml").remote(sip);
    run = if tcp {
        run.tcp().csv(&format!("{line};transport=tcp"))
    } else {
        run.csv(&line)
    };
    let out = run.run().await;
    out.assert_success(&format!("REGISTER {user}"));
    assert_eq!(out.final_status(), Some(200), "{}", out.report());
    out
}

/// One SIPp run, built step by step.
#[derive(Debug, Clone)]
pub struct Sipp {
    scenario: String,
    csv: Option<String>,
    service: Option<String>,
    remote: Option<SocketAddr>,
    port: Option<u16>,
    calls: u32,
    timeout: Duration,
    tcp: bool,
    extra: Vec<String>,
}

impl Sipp {
    /// A run of `tests/sipp/<scenario>`.
    pub fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.to_string(),
            csv: None,
            service: None,
            remote: None,
            port: None,
            calls: 1,
            timeout: DEFAULT_TIMEOUT,
            tcp: false,
            extra: Vec::new(),
        }
    }

    /// Injection data, one line per call (`SEQUENTIAL` is prepended).
    pub fn csv(mut self, lines: &str) -> Self {
        self.csv = Some(lines.to_string());
        self
    }

    /// `-s`: the service (the number dialled, the `[service]` keyword).
    pub fn service(mut self, service: &str) -> Self {
        self.service = Some(service.to_string());
        self
    }

    /// The peer (the switch) for UAC scenarios.
    pub fn remote(mut self, addr: SocketAddr) -> Self {
        self.remote = Some(addr);
        self
    }

    /// `-p`: the local SIP port (a free one when not set).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// `-m`: calls to process before exiting (1 by default).
    pub fn calls(mut self, calls: u32) -> Self {
        self.calls = calls;
        self
    }

    /// SIPp's global `-timeout` (the harness kills it a few seconds later).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `-t t1`: SIP over one TCP connection (UDP, `-t u1`, by default).
    pub fn tcp(mut self) -> Self {
        self.tcp = true;
        self
    }

    /// `-d`: the length of a `<pause/>` without a duration.
    pub fn pause_ms(self, ms: u64) -> Self {
        self.arg("-d").arg(&ms.to_string())
    }

    /// Any other argument.
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra.push(arg.to_string());
        self
    }

    /// Extension `user` (password [`PASSWORD`]) places the call of `scenario` to `number` at
    /// the switch `sip`.
    pub fn ext_call(scenario: &str, sip: SocketAddr, user: &str, number: &str) -> Self {
        Self::new(scenario)
            .csv(&user_line(user, PASSWORD, None))
            .service(number)
            .remote(sip)
    }

    /// The carrier (SIPp on the trunk's port `port`, no credentials) places the call of
    /// `scenario` from `caller` to `number` at the switch `sip`.
    pub fn carrier_call(
        scenario: &str,
        sip: SocketAddr,
        port: u16,
        caller: &str,
        number: &str,
    ) -> Self {
        Self::new(scenario)
            .port(port)
            .csv(&format!("{caller};x;x"))
            .service(number)
            .remote(sip)
    }

    /// Starts SIPp as a phone (a UAS scenario), waits until it has bound its port, and
    /// registers it as extension `user` at the switch `sip` with itself as the contact.
    pub async fn spawn_registered(self, sip: SocketAddr, user: &str) -> SippProcess {
        let tcp = self.tcp;
        let mut phone = self.spawn();
        phone.bound().await;
        register(sip, user, phone.addr(), tcp).await;
        phone
    }

    /// Starts SIPp in the background.
    pub fn spawn(self) -> SippProcess {
        let dir = tempfile::Builder::new()
            .prefix("sipp-")
            .tempdir()
            .expect("SIPp temp dir");
        let port = self.port.unwrap_or_else(free_port);
        let scenario = scenario_path(&self.scenario);
        assert!(scenario.exists(), "no scenario {}", scenario.display());
        let mut cmd = Command::new(sipp_bin());
        if let Some(remote) = self.remote {
            cmd.arg(remote.to_string());
        }
        cmd.arg("-sf").arg(&scenario);
        cmd.args(["-i", "127.0.0.1", "-t", if self.tcp { "t1" } else { "u1" }]);
        cmd.arg("-p").arg(port.to_string());
        cmd.args(["-mi", "127.0.0.1"]);
        cmd.arg("-mp").arg(free_media_port().to_string());
        cmd.args(["-ci", "127.0.0.1"]);
        cmd.arg("-cp").arg(free_control_port().to_string());
        cmd.arg("-m").arg(self.calls.to_string());
        cmd.arg("-timeout")
            .arg(format!("{}s", self.timeout.as_secs().max(1)));
        cmd.args(["-timeout_error", "-nostdin"]);
        cmd.arg("-trace_err")
            .arg("-error_file")
            .arg(dir.path().join("errors.log"));
        cmd.arg("-trace_msg")
            .arg("-message_file")
            .arg(dir.path().join("messages.log"));
        cmd.arg("-trace_stat")
            .arg("-stf")
            .arg(dir.path().join("stat.csv"));
        if let Some(csv) = &self.csv {
            let file = dir.path().join("injection.csv");
            std::fs::write(&file, format!("SEQUENTIAL\n{}\n", csv.trim_end()))
                .expect("write injection CSV");
            cmd.arg("-inf").arg(file);
        }
        if let Some(service) = &self.service {
            cmd.arg("-s").arg(service);
        }
        cmd.args(&self.extra);
        let screen = std::fs::File::create(dir.path().join("screen.txt")).expect("screen file");
        let screen_err = screen.try_clone().expect("screen file");
        cmd.current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(screen)
            .stderr(screen_err);
        let command_line = format!("{cmd:?}");
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start SIPp ({}): {e} — run `make deps`", sipp_bin())
        });
        SippProcess {
            child: Some(child),
            dir,
            port,
            tcp: self.tcp,
            scenario: self.scenario,
            command_line,
            deadline: Instant::now() + self.timeout + KILL_GRACE,
        }
    }

    /// Runs SIPp in the foreground (asynchronously) and returns how it went.
    pub async fn run(self) -> SippOutcome {
        self.spawn().wait().await
    }
}

/// A running SIPp. Dropping it kills the process.
pub struct SippProcess {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Its SIP port.
    pub port: u16,
    tcp: bool,
    scenario: String,
    command_line: String,
    deadline: Instant,
}

impl SippProcess {
    /// `127.0.0.1:<port>`: where the switch reaches it (a Contact, a trunk host).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Resolves once SIPp has bound its SIP port (so the switch can reach it), or panics
    /// after 10 s.
    pub async fn bound(&mut self) {
        let until = Instant::now() + Duration::from_secs(10);
        while !(if self.tcp {
            tcp_port_listening(self.port)
        } else {
            udp_port_bound(self.port)
        }) {
            assert!(
                !self.finished(),
                "SIPp {} exited before binding its port",
                self.scenario
            );
            assert!(Instant::now() < until, "SIPp {} never bound", self.scenario);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// True once the process has exited.
    pub fn finished(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Waits for the exit (SIPp's own timeout, then the harness deadline: killed).
    pub async fn wait(mut self) -> SippOutcome {
        let mut child = self.child.take().expect("SIPp child");
        let pid = child.id();
        let (exit, killed) = loop {
            match child.try_wait() {
                Ok(Some(status)) => break (status.code(), false),
                Ok(None) if Instant::now() >= self.deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break (None, true);
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(25)).await,
                Err(e) => panic!("waiting for SIPp: {e}"),
            }
        };
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        SippOutcome {
            scenario: self.scenario.clone(),
            command_line: self.command_line.clone(),
            pid,
            exit,
            killed,
            errors: read("errors.log"),
            messages: read("messages.log"),
            stat: read("stat.csv"),
            screen: read("screen.txt"),
        }
    }
}

impl Drop for SippProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How a SIPp run went.
#[derive(Debug, Clone)]
pub struct SippOutcome {
    pub scenario: String,
    pub command_line: String,
    pub pid: u32,
    /// The exit status (`None`: killed by the harness at its deadline).
    pub exit: Option<i32>,
    pub killed: bool,
    /// `-trace_err`: unexpected messages and the like.
    pub errors: String,
    /// `-trace_msg`: every message sent and received.
    pub messages: String,
    /// `-trace_stat` CSV.
    pub stat: String,
    /// stdout and stderr.
    pub screen: String,
}

/// One SIP message from the `-trace_msg` log.
#[derive(Debug, Clone)]
pub struct TracedMessage {
    pub sent: bool,
    pub text: String,
}

impl TracedMessage {
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }

    /// The status of a response.
    pub fn status(&self) -> Option<u16> {
        let line = self.first_line();
        let rest = line.strip_prefix("SIP/2.0 ")?;
        rest.get(..3)?.parse().ok()
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&str> {
        let line = self.first_line();
        if line.starts_with("SIP/2.0 ") {
            return None;
        }
        line.split(' ').next()
    }

    /// The first header `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.text.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

impl SippOutcome {
    /// Exit 0: every call succeeded.
    pub fn success(&self) -> bool {
        self.exit == Some(0)
    }

    /// Panics with the report unless the run succeeded.
    pub fn assert_success(&self, what: &str) {
        assert!(self.success(), "{what}: SIPp failed\n{}", self.report());
    }

    /// Panics unless the run failed (the scenario was not completed).
    pub fn assert_failure(&self, what: &str) {
        assert!(
            !self.success() && !self.killed,
            "{what}: SIPp should have failed\n{}",
            self.report()
        );
    }

    /// Everything useful for a failure message.
    pub fn report(&self) -> String {
        let tail = |s: &str, n: usize| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        format!(
            "scenario {} (pid {}): exit {:?}{}\ncommand: {}\n--- errors ---\n{}\n--- messages (tail) ---\n{}\n--- screen (tail) ---\n{}",
            self.scenario,
            self.pid,
            self.exit,
            if self.killed { " (killed at the harness deadline)" } else { "" },
            self.command_line,
            tail(&self.errors, 40),
            tail(&self.messages, 120),
            tail(&self.screen, 15),
        )
    }

    /// The messages of the `-trace_msg` log, in order. Each entry is a separator line
    /// (dashes and a date), `UDP message sent (N bytes):` or `UDP message received [N]
    /// bytes :`, a blank line, and the message.
    pub fn traced(&self) -> Vec<TracedMessage> {
        let mut out = Vec::new();
        let mut current: Option<(bool, Vec<&str>)> = None;
        let mut expect_kind = false;
        let flush = |cur: Option<(bool, Vec<&str>)>, out: &mut Vec<TracedMessage>| {
            if let Some((sent, lines)) = cur {
                let text = lines.join("\n").trim().to_string();
                if !text.is_empty() {
                    out.push(TracedMessage { sent, text });
                }
            }
        };
        for line in self.messages.lines() {
            if line.starts_with("----------------------------------------") {
                flush(current.take(), &mut out);
                expect_kind = true;
                continue;
            }
            if expect_kind {
                expect_kind = false;
                if line.contains("message sent") {
                    current = Some((true, Vec::new()));
                } else if line.contains("message received") {
                    current = Some((false, Vec::new()));
                }
                continue;
            }
            if let Some((_, lines)) = current.as_mut() {
                lines.push(line.trim_end_matches('\r'));
            }
        }
        flush(current.take(), &mut out);
        out
    }

    /// Statuses of the responses SIPp received, in order (100 included).
    pub fn received_statuses(&self) -> Vec<u16> {
        self.traced()
            .iter()
            .filter(|m| !m.sent)
            .filter_map(TracedMessage::status)
            .collect()
    }

    /// The last final response received that is not a 401/407 challenge.
    pub fn final_status(&self) -> Option<u16> {
        self.received_statuses()
            .into_iter()
            .rfind(|s| *s >= 200 && *s != 401 && *s != 407)
    }

    /// Methods of the requests SIPp received, in order.
    pub fn received_requests(&self) -> Vec<String> {
        self.traced()
            .iter()
            .filter(|m| !m.sent)
            .filter_map(|m| m.method().map(str::to_string))
            .collect()
    }

    /// The SDP body of the first 200 to an INVITE received (`None`: no such 200, or no SDP).
    pub fn invite_ok_sdp(&self) -> Option<String> {
        let ok = self.traced().into_iter().find(|m| {
            !m.sent
                && m.status() == Some(200)
                && m.header("CSeq").is_some_and(|c| c.ends_with("INVITE"))
        })?;
        if ok.header("Content-Type") != Some("application/sdp") {
            return None;
        }
        let (_, body) = ok
            .text
            .split_once("\r\n\r\n")
            .or_else(|| ok.text.split_once("\n\n"))?;
        Some(body.to_string())
    }

    /// The first INVITE received (a phone's, from the switch), whole.
    pub fn received_invite(&self) -> Option<TracedMessage> {
        self.traced()
            .into_iter()
            .find(|m| !m.sent && m.method() == Some("INVITE"))
    }

    /// The Call-ID of the first message traced (SIPp's call, or the switch's leg for a UAS).
    pub fn call_id(&self) -> Option<String> {
        self.traced()
            .first()
            .and_then(|m| m.header("Call-ID").map(str::to_string))
    }

    /// A counter of the last `-trace_stat` row, e.g. `SuccessfulCall(C)`.
    pub fn stat(&self, column: &str) -> Option<u64> {
        let lines: Vec<&str> = self.stat.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.len() < 2 {
            return None;
        }
        let header: Vec<&str> = lines[0].split(';').collect();
        let last: Vec<&str> = lines[lines.len() - 1].split(';').collect();
        let i = header.iter().position(|h| *h == column)?;
        last.get(i)?.trim().parse().ok()
    }
}
