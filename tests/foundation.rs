//! Issue 2: the switch starts on free ports, answers /health, dispatches the compat API by
//! `opt`, serves the admin REST API, provisions idempotently, and the binary handles its
//! command line and bad configuration.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ctiswitch::Switch;
use reqwest::Method;
use serde_json::{json, Value};

#[actix_rt::test]
async fn health_reports_ready_with_database_and_sip() {
    let dir = tempfile::tempdir().unwrap();
    let switch = common::start(dir.path(), "").await;
    let resp = common::http()
        .get(common::url(&switch, "/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "sqlite");
    assert_eq!(body["sip"], switch.sip_addr.to_string());
    // The SIP port is really bound on UDP and TCP.
    assert!(std::net::UdpSocket::bind(switch.sip_addr).is_err());
    assert!(std::net::TcpListener::bind(switch.sip_addr).is_err());
    let http_addr = switch.http_addr;
    switch.stop().await.unwrap();
    assert!(
        std::net::TcpStream::connect_timeout(&http_addr, Duration::from_millis(500)).is_err(),
        "HTTP port closed after stop"
    );
}

/// Extension 801 as the database has it now.
async fn ext_801(switch: &Switch) -> entities::extension::Model {
    entities::repo::extensions::by_number(&switch.db, "801")
        .await
        .unwrap()
        .expect("801")
}

/// (status, body) as the compat API answers: the status repeated in the body.
fn answer(status: u16) -> (u16, String) {
    (status, status.to_string())
}

#[actix_rt::test]
async fn callctrl_dispatches_by_opt() {
    let dir = tempfile::tempdir().unwrap();
    let switch = common::start(
        dir.path(),
        r#"
[[extensions]]
number = "801"
password = "secret801"
"#,
    )
    .await;
    for (path, want) in [
        // Missing opt → 400; unknown opt → 606 in the body with status 200 (not an HTTP
        // status).
        ("/bridge/callctrl", answer(400)),
        ("/bridge/callctrl?opt=", answer(400)),
        ("/bridge/callctrl?opt=NO_SUCH_OPT", (200, "606".into())),
        // opt is case-sensitive, as the manual spells it.
        (
            "/bridge/callctrl?opt=set_worker_id&extnum=801&workerid=1",
            (200, "606".into()),
        ),
        // A manual operation this build does not serve yet says so.
        (
            "/bridge/callctrl?opt=CLICK_TO_DIAL&caller=801&callee=802",
            answer(501),
        ),
        // jsoncfg too.
        ("/bridge/jsoncfg", answer(400)),
        ("/bridge/jsoncfg?opt=WHAT", (200, "606".into())),
    ] {
        assert_eq!(common::get(&switch, path).await, want, "{path}");
    }
    // A real operation over GET, with percent-encoded UTF-8 (interface 35's own example).
    assert_eq!(
        common::callctrl(
            &switch,
            "extnum=801&workerid=41735&department=%E7%A0%94%E5%8F%91&uname=%E5%A4%8F%E5%A4%A9&officehours=9:00-12:30,14:00-18:30&opt=SET_WORKER_ID",
        )
        .await,
        answer(200)
    );
    let ext = ext_801(&switch).await;
    assert_eq!(ext.worker_id.as_deref(), Some("41735"));
    assert_eq!(ext.department.as_deref(), Some("研发"));
    assert_eq!(ext.uname.as_deref(), Some("夏天"));
    assert_eq!(ext.office_hours.as_deref(), Some("9:00-12:30,14:00-18:30"));
    // Raw (not percent-encoded) UTF-8 in a form body is tolerated too (D-3). (Raw bytes
    // in the request line itself are refused by the HTTP layer with 400: every HTTP client
    // percent-encodes them.)
    let body = "opt=SET_WORKER_ID&extnum=801&workerid=41736&department=研发二部";
    let raw = raw_http(
        switch.http_addr,
        &format!(
            "POST /bridge/callctrl HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert_eq!(
        ext_801(&switch).await.department.as_deref(),
        Some("研发二部")
    );
    // Back to the value the checks below expect.
    common::callctrl(
        &switch,
        "extnum=801&workerid=41735&department=%E7%A0%94%E5%8F%91&opt=SET_WORKER_ID",
    )
    .await;
    // Errors of that operation: unknown extension 404, missing parameter 400, bad hours 400.
    for (query, status) in [
        ("opt=SET_WORKER_ID&extnum=999&workerid=1", 404),
        ("opt=SET_WORKER_ID&extnum=801", 400),
        (
            "opt=SET_WORKER_ID&extnum=801&workerid=1&officehours=18:00-9:00",
            400,
        ),
    ] {
        assert_eq!(
            common::callctrl(&switch, query).await,
            answer(status),
            "{query}"
        );
    }
    // The same over POST with a form body (D-3), raw UTF-8 in the form.
    for (form, want) in [
        (
            "opt=SET_EXT_OUT_CALL_DSPLAY&extnum=801&channel=2001&dspnum=02887654321",
            answer(200),
        ),
        ("opt=NOPE", (200, "606".into())),
        ("extnum=801", answer(400)),
    ] {
        assert_eq!(
            common::post_form(&switch, "/bridge/callctrl", form).await,
            want,
            "{form}"
        );
    }
    // Direct callback and pop-up URL (set then delete).
    for (query, status) in [
        ("extnum=801&offon=true&opt=SET_EXT_DIRECT_CALL_BACK", 200),
        ("extnum=801&offon=maybe&opt=SET_EXT_DIRECT_CALL_BACK", 400),
        ("opt=SET_CALLS_POP_UP_URL&extnum=801&urltype=http&domain=127.0.0.1&port=12120&path=srvlt/abc&extend=abc", 200),
    ] {
        assert_eq!(common::callctrl(&switch, query).await, answer(status), "{query}");
    }
    let ext = ext_801(&switch).await;
    assert_eq!(ext.out_channel.as_deref(), Some("2001"));
    assert_eq!(ext.out_display_number.as_deref(), Some("02887654321"));
    assert!(ext.direct_callback);
    assert_eq!(
        ext.screen_pop_url.as_deref(),
        Some("http://127.0.0.1:12120/srvlt/abc?extend=abc")
    );
    assert_eq!(
        common::callctrl(&switch, "opt=SET_CALLS_POP_UP_URL&extnum=801").await,
        answer(200)
    );
    assert_eq!(ext_801(&switch).await.screen_pop_url, None);
    switch.stop().await.unwrap();
}

/// POST `path` (admin API) with `body`: (status, JSON answer).
async fn post(switch: &Switch, path: &str, body: Value) -> (u16, Value) {
    common::api(switch, Method::POST, path, Some(&body)).await
}

/// PUT `path` (admin API) with `body`: (status, JSON answer).
async fn put(switch: &Switch, path: &str, body: Value) -> (u16, Value) {
    common::api(switch, Method::PUT, path, Some(&body)).await
}

/// GET `path` (admin API): (status, JSON answer).
async fn fetch(switch: &Switch, path: &str) -> (u16, Value) {
    common::api(switch, Method::GET, path, None).await
}

#[actix_rt::test]
async fn admin_api_crud_with_validation() {
    let dir = tempfile::tempdir().unwrap();
    let switch = common::start(dir.path(), "").await;

    // A group first, then an extension in it.
    let (status, group) = post(
        &switch,
        "/api/v1/groups",
        json!({"number": "3003", "name": "Sales", "strategy": "longest-idle"}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(group["number"], "3003");

    // The switch learns of admin changes at once: unknown before, challenged after.
    assert_eq!(common::register_status(&switch, "801").await, 404);
    let (status, ext) = post(
        &switch,
        "/api/v1/extensions",
        json!({"number": "801", "password": "s3cret", "name": "Alice", "groups": ["3003"]}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(ext["number"], "801");
    assert_eq!(common::register_status(&switch, "801").await, 401);
    assert!(
        ext.get("password").is_none(),
        "passwords are write-only: {ext}"
    );
    let id = ext["id"].as_i64().unwrap();

    // Validation errors name the field.
    for (collection, body, field) in [
        ("extensions", json!({"number": "80a1"}), "number"),
        ("extensions", json!({"name": "no number"}), "number"),
        (
            "extensions",
            json!({"number": "802", "groups": ["9999"]}),
            "groups",
        ),
        (
            "extensions",
            json!({"number": "803", "supervisor": "yes"}),
            "supervisor",
        ),
        (
            "groups",
            json!({"number": "3004", "strategy": "fastest"}),
            "strategy",
        ),
        (
            "access_numbers",
            json!({"number": "1000", "target": "pizza:1"}),
            "target",
        ),
        (
            "trunks",
            json!({"name": "2001", "host": "not an address"}),
            "host",
        ),
    ] {
        let path = format!("/api/v1/{collection}");
        let (status, err) = post(&switch, &path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body}");
        assert_eq!(err["field"], field, "{path} {body} → {err}");
    }
    // Duplicates conflict.
    let (status, _) = post(&switch, "/api/v1/extensions", json!({"number": "801"})).await;
    assert_eq!(status, 409);

    // Read, list, update, delete; unknown ids 404.
    let ext_url = format!("/api/v1/extensions/{id}");
    assert_eq!(fetch(&switch, &ext_url).await.0, 200);
    let (_, listed) = fetch(&switch, "/api/v1/extensions").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let (status, updated) = put(
        &switch,
        &ext_url,
        json!({"number": "801", "name": "Alice B.", "password": "n3w"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(updated["name"], "Alice B.");

    // Recording overrides round-trip: absent → null; PUT sets, changes and clears them.
    assert_eq!(ext.get("recording"), Some(&Value::Null), "{ext}");
    assert_eq!(group.get("recording"), Some(&Value::Null), "{group}");
    for (body, want) in [
        (
            json!({"number": "801", "name": "Alice B.", "recording": false}),
            json!(false),
        ),
        (
            json!({"number": "801", "name": "Alice B.", "record": true}),
            json!(true),
        ),
        (json!({"number": "801", "name": "Alice B."}), Value::Null),
        (
            json!({"number": "801", "name": "Alice B.", "recording": null}),
            Value::Null,
        ),
        (
            json!({"number": "801", "name": "Alice B.", "recording": false}),
            json!(false),
        ),
    ] {
        let (status, stored) = put(&switch, &ext_url, body.clone()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(stored["recording"], want, "PUT {body} → {stored}");
        let (_, got) = fetch(&switch, &ext_url).await;
        assert_eq!(
            got.get("recording"),
            Some(&want),
            "GET after {body} → {got}"
        );
    }
    let (_, listed) = fetch(&switch, "/api/v1/extensions").await;
    assert_eq!(listed[0]["recording"], false, "{listed}");
    let (status, err) = put(
        &switch,
        &ext_url,
        json!({"number": "801", "recording": "yes"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["field"], "recording");
    let (status, quality) = post(
        &switch,
        "/api/v1/groups",
        json!({"number": "3005", "name": "Quality", "recording": true}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(quality["recording"], true, "{quality}");
    let quality_url = format!("/api/v1/groups/{}", quality["id"]);
    let (status, _) = put(
        &switch,
        &quality_url,
        json!({"number": "3005", "name": "Quality", "record": false}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, got) = fetch(&switch, &quality_url).await;
    assert_eq!(got["recording"], false, "{got}");
    for (method, path, body, want) in [
        (Method::GET, "/api/v1/extensions/99999", None, 404),
        (
            Method::PUT,
            "/api/v1/extensions/99999",
            Some(json!({"number": "805"})),
            404,
        ),
        (Method::GET, "/api/v1/extensions/abc", None, 400),
        (Method::DELETE, &ext_url, None, 204),
        (Method::DELETE, &ext_url, None, 404),
    ] {
        let (status, _) = common::api(&switch, method.clone(), path, body.as_ref()).await;
        assert_eq!(status, want, "{method} {path}");
    }
    assert_eq!(
        common::register_status(&switch, "801").await,
        404,
        "deleted: gone from the switch"
    );

    // Trunks and access numbers round-trip.
    for (path, body) in [
        (
            "/api/v1/trunks",
            json!({"name": "2001", "host": "127.0.0.1:5080", "default": true}),
        ),
        (
            "/api/v1/access_numbers",
            json!({"number": "1000", "target": "group:3003"}),
        ),
    ] {
        assert_eq!(post(&switch, path, body).await.0, 201, "{path}");
    }

    // The OpenAPI document describes every collection.
    let (_, doc) = fetch(&switch, "/api/v1/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for schema in ["ExtensionInput", "Extension", "GroupInput", "Group"] {
        let recording = &doc["components"]["schemas"][schema]["properties"]["recording"];
        assert_eq!(recording["type"], "boolean", "{schema}: {recording}");
        assert_eq!(recording["nullable"], true, "{schema}: {recording}");
    }
    for path in ["extensions", "groups", "trunks", "access_numbers"] {
        assert!(
            doc["paths"][format!("/api/v1/{path}")].is_object(),
            "{path}"
        );
        assert!(
            doc["paths"][format!("/api/v1/{path}/{{id}}")].is_object(),
            "{path}"
        );
    }
    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn provisioning_is_idempotent_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("ivr")).unwrap();
    std::fs::write(
        dir.path().join("ivr/main.xml"),
        r#"<ivr name="main" start="bye"><hangup id="bye"/></ivr>"#,
    )
    .unwrap();
    let provisioning = r#"
[[groups]]
number = "3003"
name = "Sales"
strategy = "longest-idle"
ring_timeout = 20
max_wait = 300
recording = true

[[extensions]]
number = "801"
password = "1234"
name = "Alice"
groups = ["3003"]

[[extensions]]
number = "802"
password = "1234"
groups = ["3003"]
supervisor = true
record = false

[[trunks]]
name = "2001"
host = "127.0.0.1:5080"
default = true

[[access_numbers]]
number = "1000"
target = "ivr:1"

[[conferences]]
number = "9000"

[[ivrs]]
id = 1
name = "main"
definition = "ivr/main.xml"
"#;
    let counts = |db: sea_orm::DatabaseConnection| async move {
        (
            entities::repo::extensions::list(&db).await.unwrap().len(),
            entities::repo::groups::list(&db).await.unwrap().len(),
            entities::repo::trunks::list(&db).await.unwrap().len(),
            entities::repo::access_numbers::list(&db)
                .await
                .unwrap()
                .len(),
        )
    };
    let first = common::start(dir.path(), provisioning).await;
    let after_first = counts(first.db.clone()).await;
    let alice = entities::repo::extensions::by_number(&first.db, "801")
        .await
        .unwrap()
        .unwrap();
    first.stop().await.unwrap();
    let second = common::start(dir.path(), provisioning).await;
    assert_eq!(counts(second.db.clone()).await, after_first);
    assert_eq!(after_first, (2, 1, 1, 1));
    let again = entities::repo::extensions::by_number(&second.db, "801")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.id, again.id, "upsert keeps the row");
    assert_eq!(alice, again, "unchanged entries are not rewritten");
    assert_eq!(
        entities::repo::extensions::recording_overrides(&second.db)
            .await
            .unwrap(),
        [("802".to_owned(), false)].into()
    );
    assert_eq!(
        entities::repo::groups::recording_overrides(&second.db)
            .await
            .unwrap(),
        [("3003".to_owned(), true)].into()
    );
    second.stop().await.unwrap();
}

/// Sends `request` as raw bytes (no client-side encoding) and returns the raw response.
async fn raw_http(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ctiswitch"))
}

#[test]
fn cli_help_and_bad_config() {
    let out = binary().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("serve") && text.contains("migrate") && text.contains("--config"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[sip]\nlisten = \"not-an-address\"\n").unwrap();
    refused(
        binary().args(["serve", "--config"]).arg(&bad),
        &["sip.listen", "not-an-address"],
    );
    refused(
        binary()
            .env("CTISWITCH_MEDIA_RTP_PORTS", "9-1")
            .arg("migrate"),
        &["media.rtp_ports"],
    );
    refused(
        binary()
            .arg("--config")
            .arg(dir.path().join("missing.toml")),
        &["missing.toml"],
    );
    refused(binary().arg("frobnicate"), &[]);
}

/// Runs `cmd`, which must fail with a message naming each of `words` on stderr.
fn refused(cmd: &mut Command, words: &[&str]) {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for word in words {
        assert!(err.contains(word), "{cmd:?}: {word} in {err}");
    }
}

/// The binary with no config file (as `make run` starts it) migrates, serves /health and
/// stops cleanly on SIGTERM. Ports come from the environment so tests don't collide.
#[test]
fn binary_serves_without_config_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let http_port = common::sipp::free_port();
    let sip_port = common::sipp::free_port();
    let migrate = binary()
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(
        dir.path().join("data/ctiswitch.db").exists(),
        "default SQLite under ./data"
    );

    let mut child = binary()
        .current_dir(dir.path())
        .env("CTISWITCH_HTTP_LISTEN", format!("127.0.0.1:{http_port}"))
        .env("CTISWITCH_SIP_LISTEN", format!("127.0.0.1:{sip_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut healthy = false;
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", http_port)) {
            use std::io::Write;
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.write_all(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n");
            let mut resp = String::new();
            let _ = s.read_to_string(&mut resp);
            if resp.starts_with("HTTP/1.0 200") || resp.starts_with("HTTP/1.1 200") {
                healthy = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGTERM via kill(1): graceful stop, exit status 0.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    assert!(healthy, "health never answered 200: {stderr}");
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
}
