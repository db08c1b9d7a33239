//! Groups as queues, with SIPp phones as agents and callers on loopback: who rings, in
//! which order and after which timeouts; presence (interface 14) and the live queue
//! (interface 40); a queue timeout; wrap-up; and the call log's queue fields.
//!
//! Agents are SIPp UAS processes registered as extensions 802 and 803 (they answer every
//! call: 180, 200, then wait for the BYE); the caller is SIPp as extension 801 (digest,
//! then a fixed talk time during which it waits in the queue and talks to the agent).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use actors::extension::{AgentSnapshot, GetAgent};
use actors::router::GetExtension;
use common::sipp::{user_line, Sipp, SippProcess};
use ctiswitch::Switch;
use entities::calllog;

const PASSWORD: &str = "1234";

fn config(strategy: &str, extra: &str) -> String {
    format!(
        r#"
[[extensions]]
number = "801"
password = "1234"
[[extensions]]
number = "802"
password = "1234"
[[extensions]]
number = "803"
password = "1234"
[[groups]]
number = "3003"
name = "Sales"
strategy = "{strategy}"
ring_timeout = 2
max_wait = 20
{extra}
"#
    )
}

/// `[[groups]]` entries take members as extension `groups = [...]`: add them.
const MEMBERS: &str = r#"
"#;

async fn start(dir: &Path, text: &str) -> Switch {
    // Membership comes from the extensions' `groups` lists.
    let text = text
        .replace(
            "number = \"802\"\npassword = \"1234\"",
            "number = \"802\"\npassword = \"1234\"\ngroups = [\"3003\"]",
        )
        .replace(
            "number = \"803\"\npassword = \"1234\"",
            "number = \"803\"\npassword = \"1234\"\ngroups = [\"3003\"]",
        );
    common::start(dir, &format!("{text}{MEMBERS}")).await
}

async fn register(switch: &Switch, user: &str, contact: SocketAddr) {
    let out = Sipp::new("register.xml")
        .csv(&user_line(user, PASSWORD, Some(contact)))
        .remote(switch.sip_addr)
        .run()
        .await;
    out.assert_success(&format!("REGISTER {user}"));
}

/// An agent phone that answers up to `calls` calls.
async fn agent(switch: &Switch, number: &str, scenario: &str, calls: u32) -> SippProcess {
    let mut phone = Sipp::new(scenario)
        .calls(calls)
        .timeout(Duration::from_secs(40))
        .spawn();
    phone.bound().await;
    register(switch, number, phone.addr()).await;
    phone
}

/// 801 calls `number`, stays `talk_ms` after the 200 (queue + talk), hangs up.
async fn call(switch: &Switch, number: &str, talk_ms: u64) -> common::sipp::SippOutcome {
    Sipp::new("uac_call.xml")
        .csv(&user_line("801", PASSWORD, None))
        .service(number)
        .pause_ms(talk_ms)
        .remote(switch.sip_addr)
        .timeout(Duration::from_secs(30))
        .run()
        .await
}

/// The call-log rows, oldest first, once there are `n`.
async fn rows(switch: &Switch, n: usize) -> Vec<calllog::Model> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let mut rows = entities::repo::calllog::recent(&switch.db, 50)
            .await
            .expect("call log");
        if rows.len() >= n || Instant::now() > until {
            rows.reverse();
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn agent_state(switch: &Switch, number: &str) -> AgentSnapshot {
    let ext = switch
        .core
        .router
        .send(GetExtension(number.into()))
        .await
        .expect("router")
        .expect("extension");
    ext.send(GetAgent).await.expect("extension actor")
}

async fn http(switch: &Switch, query: &str) -> (u16, String) {
    let resp = common::http()
        .get(common::url(switch, &format!("/bridge/callctrl?{query}")))
        .send()
        .await
        .expect("HTTP");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

/// Longest-idle: the first call goes to the first member (both idle as long), the next
/// to the other (the first just finished a call), the third back to the first. Every row
/// carries the queue time.
#[actix_rt::test]
async fn longest_idle_offers_each_call_to_the_agent_idle_longest() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), &config("longest-idle", "")).await;
    let a802 = agent(&switch, "802", "uas.xml", 2).await;
    let a803 = agent(&switch, "803", "uas.xml", 1).await;
    for n in 1..=3 {
        let out = call(&switch, "3003", 1_200).await;
        out.assert_success(&format!("call {n} to the queue"));
        // Let the agent's BYE settle before the next call.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let rows = rows(&switch, 3).await;
    let answered: Vec<&str> = rows.iter().map(|r| r.callee.as_str()).collect();
    assert_eq!(answered, ["802", "803", "802"], "{rows:#?}");
    for r in &rows {
        assert_eq!(r.state, "STATE_RECEIVED", "{r:?}");
        assert!(
            r.queue_time >= r.begin_time && r.queue_time > 0,
            "queueTime: {r:?}"
        );
        assert!(r.pickup_time >= r.queue_time, "{r:?}");
        assert!(r.queue_duration <= 1, "served at once: {r:?}");
    }
    a802.wait().await.assert_success("802 took two calls");
    a803.wait().await.assert_success("803 took one call");
    switch.stop().await.unwrap();
}

/// 802 rings and never answers: after the group's 2 s ring timeout the call is taken
/// back (CANCEL) and 803 rings and answers; 802's missed count goes up.
#[actix_rt::test]
async fn an_agent_who_does_not_answer_is_skipped_after_the_ring_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), &config("round-robin", "")).await;
    let a802 = agent(&switch, "802", "uas_ring.xml", 1).await;
    let a803 = agent(&switch, "803", "uas.xml", 1).await;
    let out = call(&switch, "3003", 4_000).await;
    out.assert_success("the caller is served by 803");
    let rows = rows(&switch, 1).await;
    let row = &rows[0];
    assert_eq!(row.callee, "803", "{row:?}");
    assert!(
        (2..=3).contains(&row.queue_duration),
        "waited the ring timeout: {row:?}"
    );
    a802.wait()
        .await
        .assert_success("802 rang and was cancelled");
    a803.wait().await.assert_success("803 answered");
    let state = agent_state(&switch, "802").await;
    assert_eq!(state.incoming_missed_count, 1, "{state:?}");
    let state = agent_state(&switch, "803").await;
    assert_eq!(state.status.answered_calls, 1, "{state:?}");
    switch.stop().await.unwrap();
}

/// With its only agent set busy (interface 14) the caller waits, QUEUE_INFO (40) shows
/// it; the agent set online gets the call at once.
#[actix_rt::test]
async fn a_busy_agent_gets_no_call_until_it_is_set_online() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), &config("longest-idle", "")).await;
    let (status, body) = http(
        &switch,
        "opt=SET_EXT_PRESENCE_STATE&extnum=803&state=offline",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "200"));
    let (status, body) = http(
        &switch,
        "opt=SET_EXT_PRESENCE_STATE&extnum=802&state=busy&reason=LeaveSeat",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "200"));
    for (query, want) in [
        ("opt=SET_EXT_PRESENCE_STATE&extnum=802&state=sleepy", 400),
        ("opt=SET_EXT_PRESENCE_STATE&extnum=802", 400),
        ("opt=SET_EXT_PRESENCE_STATE&extnum=899&state=busy", 404),
    ] {
        assert_eq!(http(&switch, query).await.0, want, "{query}");
    }
    let (status, body) = http(&switch, "opt=QUEUE_INFO").await;
    assert_eq!((status, body.as_str()), (200, "[]"), "nobody waits yet");
    let a802 = agent(&switch, "802", "uas.xml", 1).await;
    let _a803 = agent(&switch, "803", "uas.xml", 1).await;
    let caller = {
        let sip = switch.sip_addr;
        tokio::spawn(async move {
            Sipp::new("uac_call.xml")
                .csv(&user_line("801", PASSWORD, None))
                .service("3003")
                .pause_ms(4_000)
                .remote(sip)
                .timeout(Duration::from_secs(30))
                .run()
                .await
        })
    };
    // The caller waits: it shows in QUEUE_INFO.
    let mut shown = serde_json::Value::Null;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, body) = http(&switch, "opt=QUEUE_INFO").await;
        shown = serde_json::from_str(&body).unwrap_or_default();
        if shown[0]["count"] == 1 {
            break;
        }
    }
    assert_eq!(shown[0]["group"], "3003", "{shown}");
    assert_eq!(shown[0]["count"], 1, "{shown}");
    assert_eq!(shown[0]["queue"][0]["caller"], "801", "{shown}");
    assert_eq!(shown[0]["queue"][0]["viplevel"], 0, "{shown}");
    assert_eq!(shown[0]["queue"][0]["target"], "3003", "{shown}");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (status, _) = http(
        &switch,
        "opt=SET_EXT_PRESENCE_STATE&extnum=802&state=online",
    )
    .await;
    assert_eq!(status, 200);
    let out = caller.await.expect("caller task");
    out.assert_success("the caller reaches 802 once it is online");
    let rows = rows(&switch, 1).await;
    assert_eq!(rows[0].callee, "802", "{:?}", rows[0]);
    assert!(rows[0].queue_duration >= 1, "{:?}", rows[0]);
    a802.wait().await.assert_success("802 answered");
    let (_, body) = http(&switch, "opt=QUEUE_INFO").await;
    assert_eq!(body, "[]");
    // The presence is stored, too.
    let stored = entities::repo::extensions::by_number(&switch.db, "803")
        .await
        .unwrap()
        .expect("803");
    assert_eq!(stored.presence.as_str(), "offline");
    switch.stop().await.unwrap();
}

/// No agent at all and `max_wait = 2`: the switch hangs up after 2 s; the row says
/// QUEUE_TIMEOUT.
#[actix_rt::test]
async fn a_caller_nobody_takes_is_hung_up_at_max_wait() {
    let dir = tempfile::tempdir().unwrap();
    let text = config("ring-all", "").replace("max_wait = 20", "max_wait = 2");
    let switch = start(dir.path(), &text).await;
    let out = Sipp::new("uac_wait_bye.xml")
        .csv(&user_line("801", PASSWORD, None))
        .service("3003")
        .remote(switch.sip_addr)
        .timeout(Duration::from_secs(15))
        .run()
        .await;
    out.assert_success("answered, then BYE from the switch");
    let rows = rows(&switch, 1).await;
    let row = &rows[0];
    assert_eq!(row.business, "QUEUE_TIMEOUT", "{row:?}");
    assert_eq!(row.hungupside, "system", "{row:?}");
    assert!((2..=3).contains(&row.queue_duration), "{row:?}");
    switch.stop().await.unwrap();
}

/// Wrap-up of 3 s: the agent's second call waits until its after-call work is over.
#[actix_rt::test]
async fn wrap_up_delays_the_agents_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let text = config("longest-idle", "wrap_up = 3");
    let switch = start(dir.path(), &text).await;
    let _off = http(
        &switch,
        "opt=SET_EXT_PRESENCE_STATE&extnum=803&state=offline",
    )
    .await;
    let a802 = agent(&switch, "802", "uas.xml", 2).await;
    call(&switch, "3003", 800)
        .await
        .assert_success("first call");
    call(&switch, "3003", 5_000)
        .await
        .assert_success("second call");
    let rows = rows(&switch, 2).await;
    assert_eq!(rows[0].callee, "802");
    assert_eq!(rows[1].callee, "802");
    assert!(
        (2..=4).contains(&rows[1].queue_duration),
        "the second caller waited for the wrap-up: {:?}",
        rows[1]
    );
    a802.wait().await.assert_success("802 took both calls");
    switch.stop().await.unwrap();
}

async fn jsoncfg(switch: &Switch, query: &str) -> (u16, String) {
    let resp = common::http()
        .get(common::url(switch, &format!("/bridge/jsoncfg?{query}")))
        .send()
        .await
        .expect("HTTP");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Two callers wait for the only agent (busy): 801 first, then 804, a VIP of level 2
/// (interface 39) who came later. QUEUE_INFO lists 804 first; when the agent goes online
/// 804 is served first.
#[actix_rt::test]
async fn a_vip_caller_overtakes_one_who_waited_less_than_its_bonus() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        config("longest-idle", "") + "[[extensions]]\nnumber = \"804\"\npassword = \"1234\"\n";
    let switch = start(dir.path(), &text).await;
    let vip = percent(r#"{"telnum":"804","viplevel":2,"des":"vip customer"}"#);
    assert_eq!(
        jsoncfg(&switch, &format!("opt=VIP_LIST_ADD&json={vip}"))
            .await
            .0,
        200
    );
    http(
        &switch,
        "opt=SET_EXT_PRESENCE_STATE&extnum=803&state=offline",
    )
    .await;
    http(&switch, "opt=SET_EXT_PRESENCE_STATE&extnum=802&state=busy").await;
    let a802 = agent(&switch, "802", "uas.xml", 2).await;
    let sip = switch.sip_addr;
    let caller = |user: &'static str, talk_ms: u64| {
        tokio::spawn(async move {
            Sipp::new("uac_call.xml")
                .csv(&user_line(user, PASSWORD, None))
                .service("3003")
                .pause_ms(talk_ms)
                .remote(sip)
                .timeout(Duration::from_secs(30))
                .run()
                .await
        })
    };
    let plain = caller("801", 7_000);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let vip_call = caller("804", 3_000);
    let mut shown = serde_json::Value::Null;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, body) = http(&switch, "opt=QUEUE_INFO").await;
        shown = serde_json::from_str(&body).unwrap_or_default();
        if shown[0]["count"] == 2 {
            break;
        }
    }
    assert_eq!(shown[0]["count"], 2, "{shown}");
    assert_eq!(
        shown[0]["queue"][0]["caller"], "804",
        "the VIP first: {shown}"
    );
    assert_eq!(shown[0]["queue"][0]["viplevel"], 2, "{shown}");
    assert_eq!(shown[0]["queue"][1]["caller"], "801", "{shown}");
    assert!(
        shown[0]["queue"][1]["waitingtime"].as_i64()
            >= shown[0]["queue"][0]["waitingtime"].as_i64(),
        "801 has waited longer: {shown}"
    );
    http(
        &switch,
        "opt=SET_EXT_PRESENCE_STATE&extnum=802&state=online",
    )
    .await;
    vip_call
        .await
        .expect("task")
        .assert_success("the VIP is served");
    plain
        .await
        .expect("task")
        .assert_success("801 is served after");
    let rows = rows(&switch, 2).await;
    let vip_row = rows.iter().find(|r| r.caller == "804").expect("804's row");
    let plain_row = rows.iter().find(|r| r.caller == "801").expect("801's row");
    assert!(
        vip_row.pickup_time < plain_row.pickup_time,
        "804 answered first: {vip_row:?} {plain_row:?}"
    );
    a802.wait().await.assert_success("802 took both");
    switch.stop().await.unwrap();
}

/// Interface 38: a blacklisted number can neither call nor be called (403).
#[actix_rt::test]
async fn calls_to_and_from_blacklisted_numbers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), &config("longest-idle", "")).await;
    let _a802 = agent(&switch, "802", "uas.xml", 1).await;
    assert_eq!(jsoncfg(&switch, "opt=BLACK_LIST_ADD&json=802").await.0, 200);
    let out = Sipp::new("uac_refused.xml")
        .csv(&user_line("801", PASSWORD, None))
        .service("802")
        .remote(switch.sip_addr)
        .run()
        .await;
    assert_eq!(out.final_status(), Some(403), "{}", out.report());
    assert_eq!(jsoncfg(&switch, "opt=BLACK_LIST_RMV&json=802").await.0, 200);
    assert_eq!(jsoncfg(&switch, "opt=BLACK_LIST_ADD&json=801").await.0, 200);
    let out = Sipp::new("uac_refused.xml")
        .csv(&user_line("801", PASSWORD, None))
        .service("3003")
        .remote(switch.sip_addr)
        .run()
        .await;
    assert_eq!(out.final_status(), Some(403), "{}", out.report());
    let rows = rows(&switch, 2).await;
    assert!(rows.iter().all(|r| r.state == "STATE_FAILED"), "{rows:#?}");
    switch.stop().await.unwrap();
}

/// Interface 11: for a call from the trunk, the switch asks the CRM (`GET
/// url?caller=…`) and rings the extension it names; an answer that names nothing usable
/// (here on the second call) falls back to the dialled number.
#[actix_rt::test]
async fn the_routing_query_chooses_the_extension_and_a_bad_answer_falls_back() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let crm = listener.local_addr().unwrap();
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = asked.clone();
    tokio::spawn(async move {
        for answer in ["803", "<html>oops</html>"] {
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
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    let carrier_port = common::sipp::free_port();
    let text = config("longest-idle", "")
        + &format!(
            "[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1:{carrier_port}\"\n[[access_numbers]]\nnumber = \"1000\"\ntarget = \"group:3003\"\n[callbacks]\nrouting = \"http://{crm}/route\"\n"
        );
    let switch = start(dir.path(), &text).await;
    let a803 = agent(&switch, "803", "uas.xml", 1).await;
    let a802 = agent(&switch, "802", "uas.xml", 1).await;
    http(&switch, "opt=SET_EXT_PRESENCE_STATE&extnum=803&state=busy").await;
    for n in 0..2 {
        let out = Sipp::new("trunk_call.xml")
            .port(carrier_port)
            .csv("0612345678;x;x")
            .service("1000")
            .pause_ms(1_000)
            .remote(switch.sip_addr)
            .run()
            .await;
        out.assert_success(&format!("trunk call {n}"));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let rows = rows(&switch, 2).await;
    // First: the CRM said 803 (rung directly even though it is busy for queues).
    assert_eq!(rows[0].callee, "803", "{rows:#?}");
    // Second: the CRM's answer was no number: access number 1000 → queue 3003 → 802.
    assert_eq!(rows[1].callee, "802", "{rows:#?}");
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(
        asked[0].starts_with("GET /route?caller=0612345678 "),
        "{asked:?}"
    );
    a803.wait().await.assert_success("803 answered the first");
    a802.wait().await.assert_success("802 answered the second");
    switch.stop().await.unwrap();
}

/// Interface 37: 801 (direct callback on) called 0612345678 out through the trunk; when
/// that customer calls the hotline 1000 (→ queue 3003), 801 rings directly. The row
/// records the access number.
#[actix_rt::test]
async fn a_customer_calling_back_reaches_the_extension_that_called_it() {
    let dir = tempfile::tempdir().unwrap();
    let carrier_port = common::sipp::free_port();
    let text = config("longest-idle", "")
        + &format!(
            "[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1:{carrier_port}\"\ndefault = true\n[[access_numbers]]\nnumber = \"1000\"\ntarget = \"group:3003\"\n"
        );
    let switch = start(dir.path(), &text).await;
    let (status, _) = http(
        &switch,
        "opt=SET_EXT_DIRECT_CALL_BACK&extnum=801&offon=true",
    )
    .await;
    assert_eq!(status, 200);
    // 801 calls the customer out.
    let mut carrier = Sipp::new("uas.xml").port(carrier_port).calls(1).spawn();
    carrier.bound().await;
    call(&switch, "0612345678", 500)
        .await
        .assert_success("801 calls out");
    carrier.wait().await.assert_success("the carrier answered");
    // 801's phone, and an agent of 3003 who must not get the call.
    let a801 = agent(&switch, "801", "uas.xml", 1).await;
    let _a802 = agent(&switch, "802", "uas.xml", 1).await;
    let out = Sipp::new("trunk_call.xml")
        .port(carrier_port)
        .csv("0612345678;x;x")
        .service("1000")
        .pause_ms(1_000)
        .remote(switch.sip_addr)
        .run()
        .await;
    out.assert_success("the customer calls back");
    a801.wait()
        .await
        .assert_success("801 answered the callback");
    let rows = rows(&switch, 2).await;
    let back = &rows[1];
    assert_eq!(back.caller, "0612345678", "{back:?}");
    assert_eq!(back.callee, "801", "{back:?}");
    assert_eq!(back.accessnum, "1000", "{back:?}");
    assert_eq!(back.business, "INCOMING", "{back:?}");
    switch.stop().await.unwrap();
}

/// A caller who is not next hears its place in the queue spoken (TTS), then the music on
/// hold: 801 waits first (SIPp), then 803 (a pjsua2 phone) is told "number 2".
#[actix_rt::test]
async fn a_second_caller_hears_its_position_then_music() {
    let dir = tempfile::tempdir().unwrap();
    let text = config("longest-idle", "").replace(
        "number = \"803\"\npassword = \"1234\"",
        "number = \"803\"\npassword = \"p803\"",
    );
    let switch = start(dir.path(), &text).await;
    http(&switch, "opt=SET_EXT_PRESENCE_STATE&extnum=802&state=busy").await;
    let sip = switch.sip_addr;
    let first = tokio::spawn(async move {
        Sipp::new("uac_call.xml")
            .csv(&user_line("801", PASSWORD, None))
            .service("3003")
            .pause_ms(9_000)
            .remote(sip)
            .timeout(Duration::from_secs(30))
            .run()
            .await
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let args: Vec<String> = [
        "--caller",
        "803:p803",
        "--dial",
        "3003",
        "--no-tone",
        "--hangup-after",
        "7",
        "--talk",
        "7",
        "--listen-freqs",
        "523,659,784",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let r = common::pjsua::run(switch.sip_addr, "dial", &args, Duration::from_secs(30)).await;
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    let audio = &r["audio"]["caller"];
    let timeline = audio["timeline"].as_str().unwrap_or_default().to_string();
    // Speech first (no single tone dominates: '?'), music after (the notes: a, b, c).
    let head: String = timeline.chars().take(15).collect();
    let speech = head.chars().filter(|c| *c == '?').count();
    assert!(speech >= 8, "the position is spoken first: {timeline}");
    let notes: f64 = ["523_seconds", "659_seconds", "784_seconds"]
        .iter()
        .map(|k| audio[*k].as_f64().unwrap_or(0.0))
        .sum();
    assert!(notes >= 2.0, "then music on hold: {notes} s: {timeline}");
    first
        .await
        .expect("task")
        .assert_success("the first caller waited and hung up");
    switch.stop().await.unwrap();
}

/// `max_wait = 2` with `overflow = "group:3005"`: the caller nobody in 3003 takes goes to
/// 3005, where 803 answers.
#[actix_rt::test]
async fn a_queue_timeout_overflows_to_another_group() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
[[extensions]]
number = "801"
password = "1234"
[[extensions]]
number = "802"
password = "1234"
groups = ["3003"]
[[extensions]]
number = "803"
password = "1234"
groups = ["3005"]
[[groups]]
number = "3003"
name = "Sales"
strategy = "longest-idle"
ring_timeout = 2
max_wait = 2
overflow = "group:3005"
[[groups]]
number = "3005"
name = "Overflow"
strategy = "ring-all"
ring_timeout = 5
"#;
    let switch = common::start(dir.path(), text).await;
    // 802 (the only member of 3003) is busy; 803 serves 3005.
    http(&switch, "opt=SET_EXT_PRESENCE_STATE&extnum=802&state=busy").await;
    let a803 = agent(&switch, "803", "uas.xml", 1).await;
    call(&switch, "3003", 4_000)
        .await
        .assert_success("overflowed to 3005");
    a803.wait().await.assert_success("803 answered");
    let rows = rows(&switch, 1).await;
    let row = &rows[0];
    assert_eq!(row.callee, "803", "{row:?}");
    assert_eq!(row.state, "STATE_RECEIVED", "{row:?}");
    assert!(row.queue_duration >= 2, "waited max_wait first: {row:?}");
    assert_eq!(
        row.business, "CENTREX_CALL",
        "answered, not a timeout: {row:?}"
    );
    switch.stop().await.unwrap();
}

/// `reducing` agents get calls only when no `online` agent is free: 802 (reducing) is
/// passed over for 803 (online); with 803 offline, 802 gets the next call.
#[actix_rt::test]
async fn a_reducing_agent_gets_calls_only_when_no_online_agent_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), &config("round-robin", "")).await;
    http(
        &switch,
        "opt=SET_EXT_PRESENCE_STATE&extnum=802&state=reducing",
    )
    .await;
    let a802 = agent(&switch, "802", "uas.xml", 1).await;
    let a803 = agent(&switch, "803", "uas.xml", 1).await;
    call(&switch, "3003", 800)
        .await
        .assert_success("first call");
    tokio::time::sleep(Duration::from_millis(300)).await;
    http(
        &switch,
        "opt=SET_EXT_PRESENCE_STATE&extnum=803&state=offline",
    )
    .await;
    call(&switch, "3003", 800)
        .await
        .assert_success("second call");
    let rows = rows(&switch, 2).await;
    assert_eq!(rows[0].callee, "803", "online first: {rows:#?}");
    assert_eq!(rows[1].callee, "802", "then the reducing one: {rows:#?}");
    a802.wait().await.assert_success("802");
    a803.wait().await.assert_success("803");
    switch.stop().await.unwrap();
}
