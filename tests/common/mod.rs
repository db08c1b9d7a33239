//! Shared by the end-to-end tests: a whole switch on loopback with free ports and a
//! throw-away SQLite database, the HTTP calls the tests make to it (compat API, admin API),
//! its extensions' actors, its call log, and a fake CRM web server.
//!
//! `sipp` drives SIPp peers, `pjsua` pjsua2 phones.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod pjsua;
pub mod sipp;

use actix::Addr;
use actors::extension::Extension;
use ctiswitch::{Config, Switch};
use entities::calllog;
use serde_json::Value;

/// A config for a test switch: loopback, port 0 everywhere, data in `dir`, plus `extra` TOML
/// (its keys win; sections such as `[sip]` merge with the defaults here).
pub fn config(dir: &Path, extra: &str) -> Config {
    let base = format!(
        r#"
[sip]
listen = "127.0.0.1:0"
[http]
listen = "127.0.0.1:0"
[database]
url = "sqlite://{db}?mode=rwc"
[storage]
dir = "{storage}"
[log]
level = "warn"
"#,
        db = dir.join("test.db").display(),
        storage = dir.join("data").display(),
    );
    let mut table: toml::Table = base.parse().expect("base test config");
    let extra: toml::Table = extra.parse().unwrap_or_else(|e| panic!("test config: {e}"));
    for (key, value) in extra {
        match (table.get_mut(&key), value) {
            (Some(toml::Value::Table(mine)), toml::Value::Table(theirs)) => mine.extend(theirs),
            (_, value) => {
                table.insert(key, value);
            }
        }
    }
    let text = toml::to_string(&table).expect("test config serializes");
    Config::from_parts(&text, &BTreeMap::new(), dir.to_path_buf())
        .unwrap_or_else(|e| panic!("test config: {e}"))
}

/// Starts a switch with [`config`]. Its log goes to stderr at `warn`, or at the level in
/// `CTISWITCH_TEST_LOG` (e.g. `debug`; the first subscriber of the process wins).
pub async fn start(dir: &Path, extra: &str) -> Switch {
    let level = std::env::var("CTISWITCH_TEST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = ctiswitch::init_tracing(&level);
    ctiswitch::start(config(dir, extra))
        .await
        .unwrap_or_else(|e| panic!("switch did not start: {e}"))
}

/// Runs `test` in the switch's own actix system (multi-threaded tokio underneath, as in
/// production) against a fresh switch started with `extra` (see [`config`]); stops the
/// switch `test` hands back.
pub fn with_switch<F, Fut>(extra: &str, test: F)
where
    F: FnOnce(Switch) -> Fut,
    Fut: Future<Output = Switch>,
{
    ctiswitch::build_system().block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let switch = start(dir.path(), extra).await;
        let switch = test(switch).await;
        switch.stop().await.unwrap();
    });
}

/// One `[[extensions]]` entry of the provisioning TOML, member of `groups`.
pub fn extension(number: &str, password: &str, groups: &[&str]) -> String {
    let mut entry = format!("[[extensions]]\nnumber = \"{number}\"\npassword = \"{password}\"\n");
    if !groups.is_empty() {
        let list: Vec<String> = groups.iter().map(|g| format!("\"{g}\"")).collect();
        entry.push_str(&format!("groups = [{}]\n", list.join(", ")));
    }
    entry
}

pub fn url(switch: &Switch, path: &str) -> String {
    format!("http://{}{}", switch.http_addr, path)
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// Sends a GET and returns (status, body).
pub async fn get(switch: &Switch, path: &str) -> (u16, String) {
    let resp = http().get(url(switch, path)).send().await.expect("GET");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// GET `/bridge/callctrl?<query>` (the compat API): (status, body).
pub async fn callctrl(switch: &Switch, query: &str) -> (u16, String) {
    get(switch, &format!("/bridge/callctrl?{query}")).await
}

/// GET `/bridge/jsoncfg?<query>` (the compat API's lists): (status, body).
pub async fn jsoncfg(switch: &Switch, query: &str) -> (u16, String) {
    get(switch, &format!("/bridge/jsoncfg?{query}")).await
}

/// POSTs `body` as `application/x-www-form-urlencoded` to `path`: (status, body).
pub async fn post_form(switch: &Switch, path: &str, body: &str) -> (u16, String) {
    let resp = http()
        .post(url(switch, path))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .expect("POST");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// The `Content-Type` of an HTTP answer ("" without one).
pub fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// `method path` on the admin REST API with an optional JSON body: the status and the JSON
/// answer (`Null` when the answer is not JSON, e.g. the empty body of a 204).
pub async fn api(
    switch: &Switch,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = http().request(method.clone(), url(switch, path));
    if let Some(body) = body {
        req = req.json(body);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Percent-encodes everything but unreserved characters (as `encodeURIComponent` does).
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The actor of extension `number`.
pub async fn extension_actor(switch: &Switch, number: &str) -> Addr<Extension> {
    switch
        .core
        .router
        .send(actors::router::GetExtension(number.into()))
        .await
        .expect("router")
        .unwrap_or_else(|| panic!("no extension actor for {number}"))
}

/// The registrar's and the phone's state of extension `number`.
pub async fn extension_state(
    switch: &Switch,
    number: &str,
) -> actors::extension::ExtensionSnapshot {
    extension_actor(switch, number)
        .await
        .send(actors::extension::GetExtensionState)
        .await
        .expect("extension actor")
}

/// Waits (up to 10 s: the log is written in batches) until the call log holds at least
/// `n` rows, and returns them oldest first; panics, showing them, if it never does.
pub async fn call_logs(db: &sea_orm::DatabaseConnection, n: usize) -> Vec<calllog::Model> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let mut rows = entities::repo::calllog::recent(db, 50)
            .await
            .expect("read call log");
        if rows.len() >= n || Instant::now() >= until {
            assert!(rows.len() >= n, "{n} call-log rows expected: {rows:#?}");
            rows.reverse();
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The call log row of `call_id`, polled for up to `timeout` (the log is written in
/// batches).
pub async fn wait_call_log(
    db: &sea_orm::DatabaseConnection,
    call_id: &str,
    timeout: Duration,
) -> Option<calllog::Model> {
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

/// A fake CRM on loopback: the n-th request it gets is answered 200 with `answers[n]`
/// (of `content_type`); it stops after the last. Returns its address and the request line
/// of every request, as they come.
pub async fn fake_web_server(
    content_type: &'static str,
    answers: &[&str],
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    let answers: Vec<String> = answers.iter().map(|a| a.to_string()).collect();
    tokio::spawn(async move {
        for answer in answers {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            log.lock()
                .unwrap()
                .push(head.lines().next().unwrap_or_default().to_string());
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    (addr, asked)
}

/// Sends one REGISTER for `user` without credentials over UDP and returns the final status
/// (401 for a known extension, 404 for an unknown one).
pub async fn register_status(switch: &Switch, user: &str) -> u16 {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    let local = socket.local_addr().expect("addr");
    let sip = switch.sip_addr;
    let msg = format!(
        "REGISTER sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{n};rport\r\n\
From: <sip:{user}@{sip}>;tag=t{n}\r\nTo: <sip:{user}@{sip}>\r\nCall-ID: reg-{n}@test\r\n\
CSeq: 1 REGISTER\r\nContact: <sip:{user}@{local}>\r\nMax-Forwards: 70\r\nExpires: 60\r\n\
Content-Length: 0\r\n\r\n",
        n = rand_token()
    );
    socket.send_to(msg.as_bytes(), sip).await.expect("send");
    let mut buf = [0u8; 4096];
    loop {
        let (n, _) = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            socket.recv_from(&mut buf),
        )
        .await
        .expect("no SIP response within 3 s")
        .expect("recv");
        let text = String::from_utf8_lossy(&buf[..n]);
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        if status >= 200 {
            return status;
        }
    }
}

fn rand_token() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
