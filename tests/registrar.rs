//! The registrar and out-of-dialog requests, over raw UDP from the test: digest with the
//! switch's real challenge, several contacts (comma-separated), 423, `Contact: *`
//! unregister, OPTIONS keep-alive to a phone behind NAT, 405/501 for what is not served.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ctiswitch::Switch;
use tokio::net::UdpSocket;

/// A minimal UA: sends a request and waits for its final response.
struct Ua {
    socket: UdpSocket,
    local: SocketAddr,
    switch: SocketAddr,
    seq: u32,
}

impl Ua {
    async fn new(switch: SocketAddr) -> Ua {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = socket.local_addr().unwrap();
        Ua {
            socket,
            local,
            switch,
            seq: 0,
        }
    }

    /// Sends `head` (request line and headers, without Via/CSeq/Content-Length) and returns
    /// the final response's text.
    async fn request(&mut self, method: &str, head: &str, extra: &str) -> String {
        self.seq += 1;
        let msg = format!(
            "{head}\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-t{seq}x;rport\r\nCSeq: {seq} {method}\r\n{extra}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            local = self.local,
            seq = self.seq,
        );
        self.socket
            .send_to(msg.as_bytes(), self.switch)
            .await
            .unwrap();
        loop {
            let text = self.recv().await;
            if text.starts_with("SIP/2.0 1") {
                continue;
            }
            if text.starts_with("SIP/2.0") {
                return text;
            }
        }
    }

    async fn recv(&self) -> String {
        let mut buf = vec![0u8; 8192];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), self.socket.recv_from(&mut buf))
            .await
            .expect("nothing from the switch within 5 s")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// REGISTER for `user`, answering the 401 with the switch's own challenge.
    async fn register(&mut self, user: &str, password: &str, contact: &str, extra: &str) -> String {
        let sip = self.switch;
        let head = format!(
            "REGISTER sip:{sip} SIP/2.0\r\nFrom: <sip:{user}@{sip}>;tag=r{user}\r\nTo: <sip:{user}@{sip}>\r\nCall-ID: reg-{user}-{local}@test\r\nContact: {contact}",
            local = self.local
        );
        let first = self.request("REGISTER", &head, extra).await;
        assert!(first.starts_with("SIP/2.0 401"), "{first}");
        let challenge = header(&first, "WWW-Authenticate").expect("challenge");
        let uri = format!("sip:{sip}");
        let auth =
            actors::sip::digest::respond(&challenge, "REGISTER", &uri, user, password, "c0ffee", 1)
                .expect("answerable challenge");
        self.request(
            "REGISTER",
            &head,
            &format!("{extra}Authorization: {auth}\r\n"),
        )
        .await
    }
}

fn header(msg: &str, name: &str) -> Option<String> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn status(msg: &str) -> u16 {
    msg.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

const EXTENSIONS: &str = r#"
[sip]
keepalive = 1
[[extensions]]
number = "801"
password = "pw801"
"#;

/// A switch with extension 801 / pw801 (OPTIONS keep-alives every second), and a UA.
async fn start(dir: &Path) -> (Switch, Ua) {
    let switch = common::start(dir, EXTENSIONS).await;
    let ua = Ua::new(switch.sip_addr).await;
    (switch, ua)
}

/// An INVITE to 801 from 666, who is neither an extension nor a trunk.
fn stranger_invite(sip: SocketAddr, tag: &str, call_id: &str) -> String {
    format!(
        "INVITE sip:801@{sip} SIP/2.0\r\nFrom: <sip:666@127.0.0.1>;tag={tag}\r\nTo: <sip:801@{sip}>\r\nCall-ID: {call_id}\r\nContact: <sip:666@127.0.0.1:9>"
    )
}

#[actix_rt::test]
async fn digest_contacts_expiry_and_unregister() {
    let dir = tempfile::tempdir().unwrap();
    let (switch, mut ua) = start(dir.path()).await;
    let local = ua.local;

    // Wrong password: 403.
    let resp = ua
        .register("801", "nope", &format!("<sip:801@{local}>"), "")
        .await;
    assert_eq!(status(&resp), 403, "{resp}");

    // Two contacts in one comma-separated header, each with its own expiry.
    let contacts = format!("<sip:801@{local}>;expires=600, <sip:801@127.0.0.1:5999>;expires=120");
    let resp = ua.register("801", "pw801", &contacts, "").await;
    assert_eq!(status(&resp), 200, "{resp}");
    let listed: Vec<&str> = resp.lines().filter(|l| l.starts_with("Contact:")).collect();
    assert_eq!(listed.len(), 2, "{resp}");
    assert!(
        resp.contains("expires=600") || resp.contains("expires=599"),
        "{resp}"
    );

    let state = common::extension_state(&switch, "801").await;
    assert!(state.registered);
    assert_eq!(state.contacts.len(), 2);

    // Too brief: 423 with Min-Expires, nothing changed.
    let resp = ua
        .register(
            "801",
            "pw801",
            &format!("<sip:801@{local}>"),
            "Expires: 10\r\n",
        )
        .await;
    assert_eq!(status(&resp), 423, "{resp}");
    assert_eq!(header(&resp, "Min-Expires").as_deref(), Some("60"));

    // Unregister everything.
    let resp = ua.register("801", "pw801", "*", "Expires: 0\r\n").await;
    assert_eq!(status(&resp), 200, "{resp}");
    let state = common::extension_state(&switch, "801").await;
    assert!(!state.registered, "{state:?}");

    // `*` without Expires: 0 is a bad request.
    let resp = ua.register("801", "pw801", "*", "").await;
    assert_eq!(status(&resp), 400, "{resp}");
    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn phone_behind_nat_gets_keepalive_options() {
    let dir = tempfile::tempdir().unwrap();
    let (switch, mut ua) = start(dir.path()).await;
    // The phone thinks it is 10.0.0.5 (private, behind NAT); its packets come from us.
    let resp = ua
        .register("801", "pw801", "<sip:801@10.0.0.5:5070>", "")
        .await;
    assert_eq!(status(&resp), 200, "{resp}");
    // The switch probes the flow (our socket), not the private address.
    let probe = loop {
        let msg = ua.recv().await;
        if msg.starts_with("OPTIONS ") {
            break msg;
        }
    };
    assert!(
        probe.starts_with("OPTIONS sip:801@10.0.0.5:5070"),
        "{probe}"
    );
    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn out_of_dialog_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (switch, mut ua) = start(dir.path()).await;
    let sip = switch.sip_addr;
    let base = |method: &str| {
        format!(
            "{method} sip:801@{sip} SIP/2.0\r\nFrom: <sip:x@127.0.0.1>;tag=o1\r\nTo: <sip:801@{sip}>\r\nCall-ID: ood-{method}@test"
        )
    };
    let resp = ua.request("OPTIONS", &base("OPTIONS"), "").await;
    assert_eq!(status(&resp), 200, "{resp}");
    assert!(
        header(&resp, "Allow").is_some_and(|a| a.contains("INVITE")),
        "{resp}"
    );
    let resp = ua.request("FROB", &base("FROB"), "").await;
    assert_eq!(status(&resp), 501, "{resp}");
    let resp = ua
        .request("SUBSCRIBE", &base("SUBSCRIBE"), "Event: presence\r\n")
        .await;
    assert_eq!(status(&resp), 405, "{resp}");
    let resp = ua.request("BYE", &base("BYE"), "").await;
    assert_eq!(status(&resp), 481, "{resp}");
    // REGISTER for someone unknown.
    let head = format!(
        "REGISTER sip:{sip} SIP/2.0\r\nFrom: <sip:999@{sip}>;tag=u\r\nTo: <sip:999@{sip}>\r\nCall-ID: u@test\r\nContact: <sip:999@127.0.0.1:9>"
    );
    let resp = ua.request("REGISTER", &head, "").await;
    assert_eq!(status(&resp), 404, "{resp}");
    // INVITE from someone who is neither an extension nor a trunk.
    let resp = ua
        .request("INVITE", &stranger_invite(sip, "i", "inv@test"), "")
        .await;
    assert_eq!(status(&resp), 403, "{resp}");
    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn new_calls_are_shed_with_503_while_the_switch_is_behind() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let (switch, mut ua) = start(dir.path()).await;
    let sip = switch.sip_addr;
    let invite = |n: u32| stranger_invite(sip, &format!("s{n}"), &format!("shed-{n}@test"));
    // Pretend the router is far behind: new calls are refused at the door.
    let backlog = &switch.core.endpoint.stats().backlog;
    backlog.store(actors::sip::endpoint::MAX_BACKLOG + 1000, Ordering::Relaxed);
    let resp = ua.request("INVITE", &invite(1), "").await;
    assert_eq!(status(&resp), 503, "{resp}");
    assert!(header(&resp, "Retry-After").is_some(), "{resp}");
    // Requests inside calls in progress still get through (here: 481, no such dialog).
    let bye = format!(
        "BYE sip:801@{sip} SIP/2.0\r\nFrom: <sip:666@127.0.0.1>;tag=b\r\nTo: <sip:801@{sip}>;tag=x\r\nCall-ID: shed-bye@test"
    );
    let resp = ua.request("BYE", &bye, "").await;
    assert_eq!(status(&resp), 481, "{resp}");
    assert!(switch.core.endpoint.stats().shed.load(Ordering::Relaxed) >= 1);
    // Caught up: handled normally again (403: not an extension).
    backlog.store(0, Ordering::Relaxed);
    let resp = ua.request("INVITE", &invite(2), "").await;
    assert_eq!(status(&resp), 403, "{resp}");
    switch.stop().await.unwrap();
}
