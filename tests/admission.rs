//! `[sip] max_calls_per_second`: new calls above the rate get 503 at once (no
//! `Retry-After`: that would bar the whole server), before any call actor exists;
//! retransmissions of a refused INVITE get the same answer without taking a token, the
//! answer to a digest challenge is not counted twice, and once the bucket refills calls are
//! admitted again. Raw INVITEs over loopback UDP.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

fn invite(switch: SocketAddr, local: SocketAddr, call_id: &str, branch: &str) -> String {
    invite_with(switch, local, call_id, branch, "")
}

/// An INVITE with `extra` header lines (each ending in CRLF).
fn invite_with(
    switch: SocketAddr,
    local: SocketAddr,
    call_id: &str,
    branch: &str,
    extra: &str,
) -> String {
    format!(
        "INVITE sip:801@{switch} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
         From: <sip:900@{local}>;tag=t{branch}\r\n\
         To: <sip:801@{switch}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:900@{local}>\r\n\
         Max-Forwards: 70\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
}

/// Final responses by Call-ID (the first one of each, for the Call-IDs `want` accepts:
/// earlier answers are retransmitted meanwhile), read until `n` calls have one or `within`
/// passes.
async fn finals(
    sock: &UdpSocket,
    want: impl Fn(&str) -> bool,
    n: usize,
    within: Duration,
) -> HashMap<String, (u16, String)> {
    let mut got = HashMap::new();
    let until = Instant::now() + within;
    let mut buf = vec![0u8; 65_535];
    while got.len() < n {
        let left = until.saturating_duration_since(Instant::now());
        let Ok(Ok(len)) = tokio::time::timeout(left, sock.recv(&mut buf)).await else {
            break;
        };
        let text = String::from_utf8_lossy(&buf[..len]).to_string();
        let status: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status < 200 {
            continue;
        }
        let call_id = text
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID: "))
            .unwrap_or_default()
            .to_string();
        if want(&call_id) {
            got.entry(call_id).or_insert((status, text));
        }
    }
    got
}

#[actix_rt::test]
async fn calls_above_the_admitted_rate_get_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let switch = common::start(dir.path(), "[sip]\nmax_calls_per_second = 3\n").await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(switch.sip_addr).await.unwrap();
    let local = sock.local_addr().unwrap();

    // A burst of 10 new calls: one second's worth (3) passes, 7 are refused.
    for i in 0..10 {
        let msg = invite(
            switch.sip_addr,
            local,
            &format!("burst-{i}"),
            &format!("b{i}"),
        );
        sock.send(msg.as_bytes()).await.unwrap();
    }
    let answers = finals(
        &sock,
        |id| id.starts_with("burst-"),
        10,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(answers.len(), 10, "every INVITE is answered: {answers:?}");
    let refused: Vec<_> = answers.values().filter(|(s, _)| *s == 503).collect();
    assert_eq!(refused.len(), 7, "{answers:?}");
    for (_, text) in &refused {
        assert!(!text.contains("Retry-After"), "{text}");
    }
    let admitted = answers.values().filter(|(s, _)| *s != 503).count();
    assert_eq!(
        admitted, 3,
        "the others reach the switch (a challenge): {answers:?}"
    );

    // 400 ms later the bucket holds 1.2 tokens. A retransmission of a refused INVITE is
    // absorbed by its transaction (it takes no token), so a new call right after it is
    // still admitted.
    let (refused_id, _) = answers
        .iter()
        .find(|(_, (s, _))| *s == 503)
        .expect("a refused call");
    let i: usize = refused_id
        .trim_start_matches("burst-")
        .parse()
        .expect("index");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let retransmission = invite(switch.sip_addr, local, refused_id, &format!("b{i}"));
    sock.send(retransmission.as_bytes()).await.unwrap();
    // Right after it, a second new call finds the bucket empty again (0.2 tokens).
    for id in ["fresh", "empty"] {
        sock.send(invite(switch.sip_addr, local, id, id).as_bytes())
            .await
            .unwrap();
    }
    let answers = finals(
        &sock,
        |id| id == "fresh" || id == "empty",
        2,
        Duration::from_secs(5),
    )
    .await;
    let status = |id: &str| answers.get(id).map(|(s, _)| *s);
    assert!(
        status("fresh").is_some_and(|s| s != 503),
        "admitted: the retransmission took no token: {answers:?}"
    );
    assert_eq!(status("empty"), Some(503), "{answers:?}");

    // The bucket is empty, yet an INVITE answering a challenge (credentials attached) is
    // the call counted when it was challenged: it goes on (to the digest check).
    let credentials = "Proxy-Authorization: Digest username=\"801\", realm=\"ctiswitch\", \
        nonce=\"x\", uri=\"sip:801@127.0.0.1\", response=\"00\"\r\n";
    let answered = invite_with(switch.sip_addr, local, "answer", "answer", credentials);
    sock.send(answered.as_bytes()).await.unwrap();
    let answer = finals(&sock, |id| id == "answer", 1, Duration::from_secs(5)).await;
    let status = answer.get("answer").map(|(s, _)| *s);
    assert!(
        status.is_some_and(|s| s != 503),
        "a challenge's answer is not rate-limited: {answer:?}"
    );

    // 700 ms on, the bucket holds tokens again: a new call is admitted.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let msg = invite(switch.sip_addr, local, "later", "later");
    sock.send(msg.as_bytes()).await.unwrap();
    let later = finals(&sock, |id| id == "later", 1, Duration::from_secs(5)).await;
    let status = later.get("later").map(|(s, _)| *s);
    assert!(
        status.is_some_and(|s| s != 503),
        "admitted after the refill: {later:?}"
    );
    switch.stop().await.unwrap();
}
