//! Shared by the end-to-end tests: a whole switch on loopback with free ports and a
//! throw-away SQLite database.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

pub mod pjsua;
pub mod sipp;

use ctiswitch::{Config, Switch};

/// A config for a test switch: loopback, port 0 everywhere, data in `dir`, plus `extra` TOML.
pub fn config(dir: &Path, extra: &str) -> Config {
    let text = format!(
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
{extra}
"#,
        db = dir.join("test.db").display(),
        storage = dir.join("data").display(),
    );
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
