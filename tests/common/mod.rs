//! Shared by the end-to-end tests: a whole switch on loopback with free ports and a
//! throw-away SQLite database.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

pub mod pjsua;
pub mod sipp;

use ctiswitch::{Config, Switch};

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

pub async fn start(dir: &Path, extra: &str) -> Switch {
    let _ = ctiswitch::init_tracing("warn");
    ctiswitch::start(config(dir, extra))
        .await
        .unwrap_or_else(|e| panic!("switch did not start: {e}"))
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
