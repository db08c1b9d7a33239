//! RFC 4475 torture messages against a whole running switch, over UDP.
//!
//! `actors/tests/rfc4475.rs` checks the parser alone; this test checks what the switch
//! *does* with each of the 49 messages of `actors/tests/fixtures/rfc4475/` (INDEX.tsv gives
//! the RFC's expected behaviour): malformed requests are answered 400 (505 for a bad
//! version) or dropped when no answer can be addressed; well-formed requests get the answer
//! the RFC names (416, 420, 415, 501, …) or a normal, non-400 answer; responses sent to
//! the switch (it has no transaction for them) are never answered. Afterwards the switch
//! must still be healthy: `/health` answers 200 and a complete SIPp call 801 → 802 works.
//!
//! Two more tests go past what the RFC's messages can show against a switch that does not
//! serve their addresses: the registrar messages of §3.3.12–3.3.14 replayed for provisioned
//! extensions (with digest credentials), checking the bindings; and that the stateless
//! 400/505 for a malformed request goes to the source address like every other answer.
//!
//! Addressing: the messages name hosts like `192.0.2.x` or `host5.example.com` in their
//! top Via, and a UDP server answers to the Via's sent-by (RFC 3261 §18.2.2; `received`
//! only replaces the host, the port stays the Via's or 5060, and there is no `rport`).
//! Sent as they are, the answers would go to TEST-NET hosts or to 127.0.0.1:5060 and never
//! reach the test. So before sending, the sent-by (host and port) of each message's top Via
//! is rewritten to the test socket's own `127.0.0.1:<port>`; every other byte (folding,
//! compact names, bodies, the rest of the Via) is left exactly as in the RFC. Each message
//! has its own socket, so every answer is attributed to the message that caused it.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::sipp::{extensions, free_port, Sipp, PASSWORD};
use tokio::net::UdpSocket;

/// Extensions 801, 802 and 803, password 1234.
fn config() -> String {
    extensions(&["801", "802", "803"])
}

/// How long a message that must not be answered is listened for.
const SILENCE_WINDOW: Duration = Duration::from_millis(1500);
/// How long an answer is waited for at most.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(6);
/// After the first final answer, how long to go on listening for anything else.
const AFTER_FINAL: Duration = Duration::from_millis(300);

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("actors/tests/fixtures/rfc4475")
}

struct Row {
    file: String,
    section: String,
    class: String,
    text: String,
}

fn index() -> Vec<Row> {
    let text = std::fs::read_to_string(fixtures().join("INDEX.tsv")).expect("INDEX.tsv");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.splitn(4, '\t');
            let mut next = || f.next().unwrap_or("").to_string();
            Row {
                file: next(),
                section: next(),
                class: next(),
                text: next(),
            }
        })
        .collect()
}

/// What the switch must do with a message.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// One final answer, with one of these statuses (and nothing else final).
    Answer(&'static [u16]),
    /// No answer at all.
    Silence,
    /// Either of the above (a 400 the RFC asks for, but with nothing to address it with).
    AnswerOrSilence(&'static [u16]),
}

/// The switch's expected behaviour per file, from INDEX.tsv. The switch is a B2BUA: towards
/// these messages it acts as a UAS and registrar, never as a proxy. None of the senders is
/// a provisioned extension or trunk, so INVITEs that get past validation are refused 403,
/// and REGISTERs for addresses that are not extensions get 404.
fn expected(file: &str) -> Expect {
    use Expect::*;
    match file {
        // 3.1.1 valid: answered normally (never 400).
        // wsinv carries a To tag: an in-dialog INVITE for no dialog → 481.
        "wsinv.dat" => Answer(&[481]),
        // Unknown methods: 501 with Allow.
        "intmeth.dat" | "esc02.dat" => Answer(&[501]),
        // INVITEs from senders that are not extensions.
        "esc01.dat" | "longreq.dat" => Answer(&[403]),
        // REGISTER for an address that is not an extension.
        "escnull.dat" | "dblreq.dat" => Answer(&[404]),
        "lwsdisp.dat" | "semiuri.dat" | "transports.dat" => Answer(&[200]),
        // MESSAGE is not served.
        "mpart01.dat" => Answer(&[405]),
        // Responses: nothing to answer.
        "unreason.dat" | "noreason.dat" => Silence,

        // 3.1.2 invalid: 400, or 505 for the version; responses discarded.
        "badinv01.dat" | "clerr.dat" | "ncl.dat" | "scalar02.dat" | "quotbal.dat"
        | "ltgtruri.dat" | "lwsruri.dat" | "lwsstart.dat" | "trws.dat" | "escruri.dat"
        | "regbadct.dat" | "badaspec.dat" | "baddn.dat" | "mismatch01.dat" => Answer(&[400]),
        // "should respond 501; 400 also acceptable".
        "mismatch02.dat" => Answer(&[501, 400]),
        "badvers.dat" => Answer(&[505]),
        "scalarlg.dat" | "bigcode.dat" => Silence,
        // The Date is never used: processed normally (an INVITE from a stranger).
        "baddate.dat" => Answer(&[403]),

        // 3.2 transaction: 400, or RFC 2543 matching and a normal answer.
        "badbranch.dat" => Answer(&[200, 400]),

        // 3.3 application.
        // No Call-ID, From, To: a 400 cannot be addressed properly; dropping is allowed.
        "insuf.dat" => AnswerOrSilence(&[400]),
        "unkscm.dat" => Answer(&[416]),
        "novelsc.dat" => Answer(&[416, 404]),
        // Registrar: To is not a SIP AOR → 400.
        "unksm2.dat" => Answer(&[400]),
        "bext01.dat" => Answer(&[420]),
        "invut.dat" => Answer(&[415]),
        // Unknown auth scheme ignored: a challenge, or 404 for an AOR that is not ours.
        "regaut01.dat" => Answer(&[401, 404]),
        "multi01.dat" | "mcl01.dat" => Answer(&[400]),
        "bcast.dat" => Silence,
        // An endpoint processes Max-Forwards 0 normally (or 483 like a proxy).
        "zeromf.dat" => Answer(&[200, 483]),
        // REGISTERs for addresses that are not extensions (a registrar with them: 200/401).
        "cparam01.dat" | "cparam02.dat" | "regescrt.dat" => Answer(&[404, 401, 200]),
        // 406 (Accept lacks SDP) or 400; a stranger's INVITE is refused first (403).
        "sdp01.dat" => Answer(&[406, 400, 403]),

        // 3.4 backward compatibility: an RFC 2543 INVITE is answered normally.
        "inv2543.dat" => Answer(&[403]),
        other => panic!("{other}: not in the expectation table"),
    }
}

/// Skips linear white space (SP, HTAB, CRLF followed by SP/HTAB) from `i`.
fn skip_lws(b: &[u8], mut i: usize) -> usize {
    loop {
        match b.get(i) {
            Some(b' ' | b'\t') => i += 1,
            Some(b'\r')
                if b.get(i + 1) == Some(&b'\n') && matches!(b.get(i + 2), Some(b' ' | b'\t')) =>
            {
                i += 3
            }
            Some(b'\n') if matches!(b.get(i + 1), Some(b' ' | b'\t')) => i += 2,
            _ => return i,
        }
    }
}

fn take_while(b: &[u8], mut i: usize, f: impl Fn(u8) -> bool) -> usize {
    while i < b.len() && f(b[i]) {
        i += 1;
    }
    i
}

/// The byte range of the sent-by (host[:port]) of the first Via header, if any. Handles
/// compact `v:`, space before the colon, folding and LWS around the `/`s (wsinv.dat).
fn top_via_sent_by(msg: &[u8]) -> Option<(usize, usize)> {
    let head_end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(msg.len());
    let mut line_start = msg.windows(2).position(|w| w == b"\r\n")? + 2;
    while line_start < head_end {
        let line_end = msg[line_start..head_end]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|p| line_start + p)
            .unwrap_or(head_end);
        let line = &msg[line_start..line_end];
        if let Some(colon) = line.iter().position(|&c| c == b':') {
            let name = String::from_utf8_lossy(&line[..colon]);
            let name = name.trim();
            if name.eq_ignore_ascii_case("via") || name.eq_ignore_ascii_case("v") {
                let b = msg;
                let mut i = skip_lws(b, line_start + colon + 1);
                // SIP / version / transport
                i = take_while(b, i, |c| c.is_ascii_alphabetic());
                i = skip_lws(b, i);
                (b.get(i) == Some(&b'/')).then_some(())?;
                i = skip_lws(b, i + 1);
                i = take_while(b, i, |c| c.is_ascii_digit() || c == b'.');
                i = skip_lws(b, i);
                (b.get(i) == Some(&b'/')).then_some(())?;
                i = skip_lws(b, i + 1);
                i = take_while(b, i, |c| c.is_ascii_alphanumeric() || c == b'-');
                let start = skip_lws(b, i);
                let mut end = if b.get(start) == Some(&b'[') {
                    take_while(b, start, |c| c != b']') + 1
                } else {
                    take_while(b, start, |c| {
                        !matches!(c, b';' | b',' | b':' | b' ' | b'\t' | b'\r' | b'\n')
                    })
                };
                let colon = skip_lws(b, end);
                if b.get(colon) == Some(&b':') {
                    let digits = skip_lws(b, colon + 1);
                    let after = take_while(b, digits, |c| c.is_ascii_digit());
                    if after > digits {
                        end = after;
                    }
                }
                return (end > start).then_some((start, end));
            }
        }
        // Next header line (continuation lines belong to this one).
        line_start = line_end + 2;
    }
    None
}

/// The message with its top Via's sent-by replaced by `addr`.
fn rewrite_top_via(msg: &[u8], addr: SocketAddr) -> Vec<u8> {
    match top_via_sent_by(msg) {
        Some((start, end)) => {
            let mut out = Vec::with_capacity(msg.len() + 16);
            out.extend_from_slice(&msg[..start]);
            out.extend_from_slice(addr.to_string().as_bytes());
            out.extend_from_slice(&msg[end..]);
            out
        }
        None => msg.to_vec(),
    }
}

/// An answer the switch sent, read without the switch's parser.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    text: String,
}

impl Answer {
    fn parse(data: &[u8]) -> Option<Answer> {
        let text = String::from_utf8_lossy(data).to_string();
        let status = text
            .lines()
            .next()?
            .strip_prefix("SIP/2.0 ")?
            .get(..3)?
            .parse()
            .ok()?;
        Some(Answer { status, text })
    }

    fn header(&self, name: &str) -> Vec<String> {
        let head = self.text.split("\r\n\r\n").next().unwrap_or("");
        head.lines()
            .skip(1)
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
            .collect()
    }
}

/// Sends `msg` from a fresh socket and collects what comes back.
async fn exchange(switch: SocketAddr, msg: Vec<u8>, expect: Expect) -> (Vec<u8>, Vec<Answer>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let me = sock.local_addr().expect("local addr");
    let wire = rewrite_top_via(&msg, me);
    sock.send_to(&wire, switch).await.expect("send");
    let started = Instant::now();
    let mut answers = Vec::new();
    let mut deadline = started
        + match expect {
            Expect::Silence | Expect::AnswerOrSilence(_) => SILENCE_WINDOW,
            Expect::Answer(_) => ANSWER_TIMEOUT,
        };
    let mut buf = vec![0u8; 65_535];
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        match tokio::time::timeout(deadline - now, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => {
                let answer = Answer::parse(&buf[..n]).unwrap_or(Answer {
                    status: 0,
                    text: String::from_utf8_lossy(&buf[..n]).to_string(),
                });
                if answer.status >= 200 && !answers.iter().any(|a: &Answer| a.status >= 200) {
                    deadline = deadline.min(Instant::now() + AFTER_FINAL);
                }
                answers.push(answer);
            }
            Ok(Err(_)) => break,
            Err(_) => break,
        }
    }
    (wire, answers)
}

fn call_id_of(msg: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(msg);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            let n = n.trim();
            (n.eq_ignore_ascii_case("call-id") || n.eq_ignore_ascii_case("i"))
                .then(|| v.trim().to_string())
        })
        .collect()
}

/// The details the RFC names for some messages, checked on their first final answer.
fn specific_checks(file: &str, first: &Answer, answers: &[Answer]) -> Vec<String> {
    let mut problems = Vec::new();
    let has = |name: &str| !first.header(name).is_empty();
    if file == "bext01.dat" && first.status == 420 {
        let unsupported = first.header("Unsupported").join(",");
        for tag in ["nothingSupportsThis", "nothingSupportsThisEither"] {
            if !unsupported.split(',').any(|t| t.trim() == tag) {
                problems.push(format!("Unsupported {unsupported:?} lacks {tag}"));
            }
        }
        if unsupported.contains("noProxiesSupportThis") {
            problems.push("a UAS ignores Proxy-Require".into());
        }
    }
    if matches!(first.status, 405 | 501) && !has("Allow") {
        problems.push(format!("{} without Allow", first.status));
    }
    if first.status == 415 && !first.header("Accept").join(",").contains("application/sdp") {
        problems.push("415 without Accept: application/sdp".into());
    }
    if first.status == 420 && !has("Unsupported") {
        problems.push("420 without Unsupported".into());
    }
    if file == "dblreq.dat"
        && answers
            .iter()
            .any(|a| !a.header("CSeq").iter().all(|c| c.ends_with("REGISTER")))
    {
        // Only the REGISTER is answered, never the INVITE-looking trailer.
        problems.push("the trailing INVITE was answered".into());
    }
    problems
}

#[test]
fn via_rewrite_keeps_everything_else() {
    let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    for row in index() {
        let msg = std::fs::read(fixtures().join(&row.file)).unwrap();
        let (start, end) = top_via_sent_by(&msg)
            .unwrap_or_else(|| panic!("{}: no top Via sent-by found", row.file));
        let host = String::from_utf8_lossy(&msg[start..end]).to_string();
        assert!(
            !host.is_empty() && !host.contains(';') && !host.contains(' '),
            "{}: sent-by {host:?}",
            row.file
        );
        let out = rewrite_top_via(&msg, addr);
        assert_eq!(&out[..start], &msg[..start], "{}", row.file);
        let new_end = start + addr.to_string().len();
        assert_eq!(
            &out[start..new_end],
            addr.to_string().as_bytes(),
            "{}",
            row.file
        );
        assert_eq!(&out[new_end..], &msg[end..], "{}", row.file);
    }
    // The folded Via of wsinv.dat, and a bracketed IPv6 host with a port.
    let wsinv = std::fs::read(fixtures().join("wsinv.dat")).unwrap();
    let (s, e) = top_via_sent_by(&wsinv).unwrap();
    assert_eq!(&wsinv[s..e], b"192.0.2.2");
    let v6 =
        b"OPTIONS sip:a@b SIP/2.0\r\nv : SIP/2.0/UDP [2001:db8::1] : 5070 ;branch=z9hG4bK1\r\n\r\n";
    let out = rewrite_top_via(v6, addr);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "OPTIONS sip:a@b SIP/2.0\r\nv : SIP/2.0/UDP 127.0.0.1:40000 ;branch=z9hG4bK1\r\n\r\n"
    );
}

#[actix_rt::test]
async fn torture_messages_against_a_running_switch() {
    let dir = tempfile::tempdir().unwrap();
    let switch = common::start(dir.path(), &config()).await;
    let rows = index();
    assert_eq!(rows.len(), 49, "INDEX.tsv rows");

    // All messages at once, each from its own socket (the answers are waited for in
    // parallel, so the whole run takes about one listening window).
    let mut tasks = tokio::task::JoinSet::new();
    for (i, row) in rows.iter().enumerate() {
        let msg = std::fs::read(fixtures().join(&row.file)).expect("fixture");
        let expect = expected(&row.file);
        let sip = switch.sip_addr;
        tasks.spawn(async move {
            let (wire, answers) = exchange(sip, msg, expect).await;
            (i, wire, answers)
        });
    }
    let mut results = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (i, wire, answers) = done.expect("exchange task");
        results.insert(i, (wire, answers));
    }

    let mut failures = Vec::new();
    println!(
        "{:<15} {:<9} {:<12} {:<28} answers",
        "file", "section", "class", "expected"
    );
    for (i, row) in rows.iter().enumerate() {
        let (wire, answers) = &results[&i];
        let expect = expected(&row.file);
        let finals: Vec<&Answer> = answers.iter().filter(|a| a.status >= 200).collect();
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        let mut problems = Vec::new();
        match expect {
            Expect::Silence => {
                if !answers.is_empty() {
                    problems.push(format!("must not be answered, got {statuses:?}"));
                }
            }
            Expect::Answer(ok) | Expect::AnswerOrSilence(ok) => {
                let silent_ok = matches!(expect, Expect::AnswerOrSilence(_));
                match finals.first() {
                    None if silent_ok && answers.is_empty() => {}
                    None => problems.push(format!("no final answer (got {statuses:?})")),
                    Some(first) => {
                        if !ok.contains(&first.status) {
                            problems
                                .push(format!("answered {}, expected one of {ok:?}", first.status));
                        }
                        // Retransmissions of the same final are fine; a second, different
                        // final answer is not.
                        if finals.iter().any(|a| a.status != first.status) {
                            problems.push(format!("several final answers: {statuses:?}"));
                        }
                        // The answer belongs to this message.
                        let ids = call_id_of(wire);
                        if ids.len() == 1
                            && first.header("Call-ID").first().map(String::as_str)
                                != Some(ids[0].as_str())
                            && first.header("i").first().map(String::as_str)
                                != Some(ids[0].as_str())
                        {
                            problems.push(format!(
                                "answer's Call-ID {:?} is not the request's {:?}",
                                first.header("Call-ID"),
                                ids[0]
                            ));
                        }
                    }
                }
            }
        }
        if let Some(first) = finals.first() {
            problems.extend(specific_checks(&row.file, first, answers));
        }
        let shown: Vec<String> = answers
            .iter()
            .map(|a| {
                a.text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("SIP/2.0 ")
                    .to_string()
            })
            .collect();
        println!(
            "{:<15} {:<9} {:<12} {:<28} {}{}",
            row.file,
            row.section,
            row.class,
            format!("{expect:?}"),
            if shown.is_empty() {
                "—".to_string()
            } else {
                shown.join(" | ")
            },
            if problems.is_empty() {
                ""
            } else {
                "   <-- MISMATCH"
            }
        );
        if !problems.is_empty() {
            failures.push(format!(
                "{} ({} {}): {} — RFC: {}\n  first answer:\n{}",
                row.file,
                row.section,
                row.class,
                problems.join("; "),
                row.text,
                finals
                    .first()
                    .map(|a| a.text.replace("\r\n", "\n    "))
                    .unwrap_or_default()
            ));
        }
    }

    // Still alive: health, and a whole call 801 → 802 through SIPp.
    let (status, body) = common::get(&switch, "/health").await;
    assert_eq!(status, 200, "health after the torture messages: {body}");
    // 802's phone registers, 801 calls it.
    let phone = Sipp::new("uas.xml")
        .spawn_registered(switch.sip_addr, "802")
        .await;
    let call = Sipp::ext_call("uac_call.xml", switch.sip_addr, "801", "802")
        .pause_ms(300)
        .port(free_port())
        .run()
        .await;
    call.assert_success("a call 801 → 802 after the torture messages");
    phone
        .wait()
        .await
        .assert_success("802's phone after the torture messages");
    // Nothing left behind: no call, dialog or media port outlives the calls (transactions
    // may, for their RFC 3261 wait timers).
    let mut core = serde_json::Value::Null;
    for _ in 0..50 {
        let (_, body) = common::get(&switch, "/health").await;
        core = serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default()["core"].clone();
        if ["calls", "dialogs", "media_endpoints"]
            .iter()
            .all(|k| core[*k] == 0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for key in ["calls", "dialogs", "media_endpoints"] {
        assert_eq!(core[key], 0, "{key} left over after the calls: {core}");
    }
    assert!(core["sip_transactions"].is_u64(), "{core}");
    switch.stop().await.unwrap();

    assert!(
        failures.is_empty(),
        "{} of 49 messages handled wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Sends `msg` (top Via rewritten to `sock`) and returns the first final answer.
async fn request(sock: &UdpSocket, switch: SocketAddr, msg: &[u8]) -> Answer {
    let wire = rewrite_top_via(msg, sock.local_addr().unwrap());
    sock.send_to(&wire, switch).await.expect("send");
    let mut buf = vec![0u8; 65_535];
    let until = Instant::now() + ANSWER_TIMEOUT;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let (n, _) = tokio::time::timeout(left, sock.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no final answer to\n{}", String::from_utf8_lossy(&wire)))
            .expect("recv");
        if let Some(a) = Answer::parse(&buf[..n]) {
            if a.status >= 200 {
                return a;
            }
        }
    }
}

/// RFC 4475 §3.3.12–3.3.14 with an address-of-record the switch serves: the REGISTERs of
/// cparam01, cparam02 and regescrt, with the AOR user (To/From) replaced by a provisioned
/// extension and, after the 401, digest credentials added (new branch, CSeq + 1). The
/// Contact headers are the RFC's, byte for byte. They must register (200), and the binding
/// — in the 200's Contact and in the registrar's state — must be the RFC's:
/// - cparam01: `Contact: sip:…;unknownparam` without brackets: `unknownparam` is a
///   contact-param, not part of the URI;
/// - cparam02: `<sip:…;unknownparam>`: a URI parameter, kept;
/// - regescrt: `<sip:user@example.com?Route=%3Csip:sip.example.com%3E>`: the escaped
///   header is kept in the URI.
#[actix_rt::test]
async fn registrar_contacts_of_rfc4475_section_3_3_12_to_14() {
    let dir = tempfile::tempdir().unwrap();
    let switch = common::start(dir.path(), &config()).await;
    let cases = [
        (
            "cparam01.dat",
            "watson",
            "801",
            "sip:+19725552222@gw1.example.net",
        ),
        (
            "cparam02.dat",
            "watson",
            "802",
            "sip:+19725552222@gw1.example.net;unknownparam",
        ),
        (
            "regescrt.dat",
            "user",
            "803",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        ),
    ];
    let mut failures = Vec::new();
    for (file, aor_user, ext, binding) in cases {
        let text = std::fs::read_to_string(fixtures().join(file)).expect("fixture");
        let text: String = text
            .split_inclusive("\r\n")
            .map(|line| {
                if line.starts_with("To:") || line.starts_with("From:") {
                    line.replace(&format!("sip:{aor_user}@"), &format!("sip:{ext}@"))
                } else {
                    line.to_string()
                }
            })
            .collect();
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let challenge = request(&sock, switch.sip_addr, text.as_bytes()).await;
        assert_eq!(challenge.status, 401, "{file}: {}", challenge.text);
        let www = challenge.header("WWW-Authenticate");
        let auth = actors::sip::digest::respond(
            &www[0],
            "REGISTER",
            "sip:example.com",
            ext,
            PASSWORD,
            "0a4f113b",
            1,
        )
        .expect("answer the challenge");
        let cseq_line = text
            .split("\r\n")
            .find(|l| l.starts_with("CSeq:"))
            .expect("CSeq")
            .to_string();
        let n: u32 = cseq_line
            .trim_start_matches("CSeq:")
            .trim()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let (request_line, rest) = text.split_once("\r\n").unwrap();
        let again = format!("{request_line}\r\nAuthorization: {auth}\r\n{rest}")
            .replace("branch=z9hG4bKkdjuw", "branch=z9hG4bKkdjuw.2")
            .replace(&cseq_line, &format!("CSeq: {} REGISTER", n + 1));
        let ok = request(&sock, switch.sip_addr, again.as_bytes()).await;
        if ok.status != 200 {
            failures.push(format!(
                "{file}: REGISTER answered {}:\n{}",
                ok.status, ok.text
            ));
            continue;
        }
        let contacts = ok.header("Contact");
        if !contacts
            .iter()
            .any(|c| c.starts_with(&format!("<{binding}>")))
        {
            failures.push(format!(
                "{file}: the 200's Contact should be <{binding}>;expires=…, is {contacts:?}"
            ));
        }
        let state = common::extension_state(&switch, ext).await;
        if state.contacts != vec![binding.to_string()] {
            failures.push(format!(
                "{file}: the registrar's binding should be {binding}, is {:?}",
                state.contacts
            ));
        }
    }
    switch.stop().await.unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// RFC 3261 §18.2.1/§18.2.2: a server stamps `received` with the source address when the
/// Via's sent-by host differs from it, and a UDP response goes to the `received` address
/// (at the Via's port). That must hold for the 400/505 the endpoint sends statelessly for
/// a malformed request too, not only for requests the transaction layer accepted —
/// otherwise the error goes to whatever IP the Via names (a phone behind NAT never gets it;
/// with the RFC's messages it would go to 192.0.2.x).
///
/// Loopback only: the test binds and sends on 127.0.0.1; the other sent-by,
/// `127.0.0.2:<port>`, is a loopback address that only appears in the Via header (a
/// misdirected answer stays on `lo` and reaches nobody).
#[actix_rt::test]
async fn error_answers_go_to_the_source_address_like_other_answers() {
    let dir = tempfile::tempdir().unwrap();
    let switch = common::start(dir.path(), &config()).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = sock.local_addr().unwrap().port();
    let via_addr: SocketAddr = ([127, 0, 0, 2], port).into();

    let receive = |wait: Duration| {
        let sock = &sock;
        async move {
            let mut buf = vec![0u8; 65_535];
            let until = Instant::now() + wait;
            loop {
                let left = until.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, sock.recv_from(&mut buf)).await {
                    Ok(Ok((n, _))) => match Answer::parse(&buf[..n]) {
                        Some(a) if a.status >= 200 => return Some(a),
                        _ => continue,
                    },
                    _ => return None,
                }
            }
        }
    };

    // Control: a well-formed OPTIONS with that Via is answered at the source address.
    let options = format!(
        "OPTIONS sip:801@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {via_addr};branch=z9hG4bK-src-1\r\nMax-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:801@127.0.0.1>\r\nCall-ID: src-check-1@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(options.as_bytes(), switch.sip_addr)
        .await
        .unwrap();
    let answer = receive(ANSWER_TIMEOUT).await;
    assert_eq!(
        answer.as_ref().map(|a| a.status),
        Some(200),
        "OPTIONS with Via {via_addr} from 127.0.0.1:{port}"
    );

    // The malformed ones: their 400/505 must come back the same way.
    let mut failures = Vec::new();
    for (file, status) in [
        ("mismatch01.dat", 400),
        ("badvers.dat", 505),
        ("scalar02.dat", 400),
    ] {
        let msg = std::fs::read(fixtures().join(file)).expect("fixture");
        let wire = rewrite_top_via(&msg, via_addr);
        sock.send_to(&wire, switch.sip_addr).await.unwrap();
        match receive(Duration::from_secs(2)).await {
            Some(a) if a.status == status => {}
            Some(a) => failures.push(format!("{file}: answered {} instead of {status}", a.status)),
            None => failures.push(format!(
                "{file}: no {status} at the source 127.0.0.1:{port} (Via sent-by {via_addr}): the \
                 stateless error answer went to the Via's host, without `received`"
            )),
        }
    }
    switch.stop().await.unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
