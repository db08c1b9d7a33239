//! Groups as queues, with SIPp phones as agents and callers on loopback: who rings, in
//! which order and after which timeouts; presence (interface 14) and the live queue
//! (interface 40); a queue timeout; wrap-up; and the call log's queue fields.
//!
//! Agents are SIPp UAS processes registered as extensions 802 and 803 (they answer every
//! call: 180, 200, then wait for the BYE); the caller is SIPp as extension 801 (digest,
//! then a fixed talk time during which it waits in the queue and talks to the agent).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use actors::extension::{AgentSnapshot, GetAgent};
use common::pjsua;
use common::sipp::{carrier_trunk, free_port, Sipp, SippOutcome, SippProcess, CUSTOMER, PASSWORD};
use common::{call_logs, callctrl, jsoncfg};
use ctiswitch::Switch;

/// An extension with password 1234, member of `groups`.
fn ext(number: &str, groups: &[&str]) -> String {
    common::extension(number, PASSWORD, groups)
}

/// 801 (the caller), 802 and 803 (agents of group 3003), and group 3003 ("Sales") with
/// `strategy`, a 2 s ring timeout, `max_wait = 20` and `extra` (more keys of the group, then
/// any other tables).
fn config(strategy: &str, extra: &str) -> String {
    format!(
        r#"{}{}{}
[[groups]]
number = "3003"
name = "Sales"
strategy = "{strategy}"
ring_timeout = 2
max_wait = 20
{extra}
"#,
        ext("801", &[]),
        ext("802", &["3003"]),
        ext("803", &["3003"]),
    )
}

/// Access number 1000, the hotline: the queue of group 3003.
const HOTLINE: &str = "[[access_numbers]]\nnumber = \"1000\"\ntarget = \"group:3003\"\n";

/// A switch in `dir` as [`config`] (longest-idle) with the hotline and the default trunk
/// `carrier` at a free port, and that port.
async fn start_with_hotline(dir: &std::path::Path) -> (Switch, u16) {
    let carrier_port = free_port();
    let text = config("longest-idle", "") + &carrier_trunk(carrier_port, true) + HOTLINE;
    (common::start(dir, &text).await, carrier_port)
}

/// An agent phone that answers up to `calls` calls.
async fn agent(switch: &Switch, number: &str, scenario: &str, calls: u32) -> SippProcess {
    Sipp::new(scenario)
        .calls(calls)
        .timeout(Duration::from_secs(40))
        .spawn_registered(switch.sip_addr, number)
        .await
}

/// `user` calls `number`, stays `talk_ms` after the 200 (queue + talk), hangs up.
fn caller(sip: SocketAddr, user: &str, number: &str, talk_ms: u64) -> Sipp {
    Sipp::ext_call("uac_call.xml", sip, user, number)
        .pause_ms(talk_ms)
        .timeout(Duration::from_secs(30))
}

/// 801 calls `number` as [`caller`] and waits for the outcome.
async fn call(switch: &Switch, number: &str, talk_ms: u64) -> SippOutcome {
    caller(switch.sip_addr, "801", number, talk_ms).run().await
}

/// The carrier calls the hotline 1000 from the outside number 0612345678.
async fn customer_call(switch: &Switch, carrier_port: u16) -> SippOutcome {
    Sipp::carrier_call(
        "trunk_call.xml",
        switch.sip_addr,
        carrier_port,
        CUSTOMER,
        "1000",
    )
    .pause_ms(1_000)
    .run()
    .await
}

/// The m=audio line of `sdp`, trimmed (empty if none).
fn audio_line(sdp: &str) -> &str {
    sdp.lines()
        .map(str::trim_end)
        .find(|l| l.starts_with("m=audio "))
        .unwrap_or_default()
}

/// A delayed offer into the queue: the switch answers the customer itself, so its 200
/// offers every codec it relays; the customer's ACK picks PCMA, and only then is the agent
/// called, offered PCMA alone (the relay does not transcode).
#[actix_rt::test]
async fn a_customer_without_an_sdp_offer_chooses_the_codec_the_agent_is_offered() {
    let dir = tempfile::tempdir().unwrap();
    let (switch, carrier_port) = start_with_hotline(dir.path()).await;
    let agent = agent(&switch, "802", "uas.xml", 1).await;
    let customer = Sipp::carrier_call(
        "trunk_call_delayed_offer.xml",
        switch.sip_addr,
        carrier_port,
        CUSTOMER,
        "1000",
    )
    .pause_ms(2_000)
    .run()
    .await;
    customer.assert_success("the customer's offer-less call is answered by the queue");
    let agent = agent.wait().await;
    agent.assert_success("the agent answers");

    let offer = customer.invite_ok_sdp().unwrap_or_default();
    let m = audio_line(&offer);
    assert!(
        m.ends_with(" RTP/AVP 0 8 101"),
        "the queue offers every codec: {offer}"
    );
    let invite = agent.received_invite().map(|m| m.text).unwrap_or_default();
    let m = audio_line(&invite);
    assert!(
        m.ends_with(" RTP/AVP 8 101"),
        "the agent is offered the customer's choice alone: {invite}"
    );
    let rows = call_logs(&switch.db, 1).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].callee, "802", "{:#?}", rows[0]);
    assert_eq!(rows[0].state, "STATE_RECEIVED", "{:#?}", rows[0]);
    switch.stop().await.unwrap();
}

/// The queue answers an offer-less customer itself; its ACK then brings no answer to the
/// switch's offer: no media can flow, so the switch hangs up (BYE).
#[actix_rt::test]
async fn a_queued_customer_whose_ack_has_no_answer_is_hung_up() {
    let dir = tempfile::tempdir().unwrap();
    let (switch, carrier_port) = start_with_hotline(dir.path()).await;
    let customer = Sipp::carrier_call(
        "trunk_call_delayed_offer_no_answer.xml",
        switch.sip_addr,
        carrier_port,
        CUSTOMER,
        "1000",
    )
    .run()
    .await;
    customer.assert_success("the queue answers, then hangs up the customer");
    assert_eq!(
        customer.received_requests(),
        vec!["BYE".to_string()],
        "{}",
        customer.report()
    );
    let rows = call_logs(&switch.db, 1).await;
    assert_eq!(rows[0].hungupside, "system", "{:#?}", rows[0]);
    assert_eq!(rows[0].callee, "1000", "{:#?}", rows[0]);
    switch.stop().await.unwrap();
}

async fn agent_state(switch: &Switch, number: &str) -> AgentSnapshot {
    common::extension_actor(switch, number)
        .await
        .send(GetAgent)
        .await
        .expect("extension actor")
}

/// Interface 14: sets `number`'s presence `state` (a query string may follow), asserting 200.
async fn set_presence(switch: &Switch, number: &str, state: &str) {
    let query = format!("opt=SET_EXT_PRESENCE_STATE&extnum={number}&state={state}");
    assert_eq!(
        callctrl(switch, &query).await,
        (200, "200".to_string()),
        "{query}"
    );
}

/// QUEUE_INFO (interface 40), polled (4 s at the most) until the first group has `count`
/// callers waiting.
async fn queue_info_with(switch: &Switch, count: u32) -> serde_json::Value {
    let mut shown = serde_json::Value::Null;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, body) = callctrl(switch, "opt=QUEUE_INFO").await;
        shown = serde_json::from_str(&body).unwrap_or_default();
        if shown[0]["count"] == count {
            break;
        }
    }
    shown
}

/// Longest-idle: the first call goes to the first member (both idle as long), the next
/// to the other (the first just finished a call), the third back to the first. Every row
/// carries the queue time.
#[actix_rt::test]
async fn longest_idle_offers_each_call_to_the_agent_idle_longest() {
    let dir = tempfile::tempdir().unwrap();
    let switch = common::start(dir.path(), &config("longest-idle", "")).await;
    let a802 = agent(&switch, "802", "uas.xml", 2).await;
    let a803 = agent(&switch, "803", "uas.xml", 1).await;
    for n in 1..=3 {
        let out = call(&switch, "3003", 1_200).await;
        out.assert_success(&format!("call {n} to the queue"));
        // Let the agent's BYE settle before the next call.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let rows = call_logs(&switch.db, 3).await;
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
    let switch = common::start(dir.path(), &config("round-robin", "")).await;
    let a802 = agent(&switch, "802", "uas_ring.xml", 1).await;
    let a803 = agent(&switch, "803", "uas.xml", 1).await;
    let out = call(&switch, "3003", 4_000).await;
    out.assert_success("the caller is served by 803");
    let rows = call_logs(&switch.db, 1).await;
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
    let switch = common::start(dir.path(), &config("longest-idle", "")).await;
    set_presence(&switch, "803", "offline").await;
    set_presence(&switch, "802", "busy&reason=LeaveSeat").await;
    for (query, want) in [
        ("opt=SET_EXT_PRESENCE_STATE&extnum=802&state=sleepy", 400),
        ("opt=SET_EXT_PRESENCE_STATE&extnum=802", 400),
        ("opt=SET_EXT_PRESENCE_STATE&extnum=899&state=busy", 404),
    ] {
        assert_eq!(callctrl(&switch, query).await.0, want, "{query}");
    }
    let (status, body) = callctrl(&switch, "opt=QUEUE_INFO").await;
    assert_eq!((status, body.as_str()), (200, "[]"), "nobody waits yet");
    let a802 = agent(&switch, "802", "uas.xml", 1).await;
    let _a803 = agent(&switch, "803", "uas.xml", 1).await;
    let waiting = tokio::spawn(caller(switch.sip_addr, "801", "3003", 4_000).run());
    // The caller waits: it shows in QUEUE_INFO.
    let shown = queue_info_with(&switch, 1).await;
    assert_eq!(shown[0]["group"], "3003", "{shown}");
    assert_eq!(shown[0]["count"], 1, "{shown}");
    assert_eq!(shown[0]["queue"][0]["caller"], "801", "{shown}");
    assert_eq!(shown[0]["queue"][0]["viplevel"], 0, "{shown}");
    assert_eq!(shown[0]["queue"][0]["target"], "3003", "{shown}");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    set_presence(&switch, "802", "online").await;
    let out = waiting.await.expect("caller task");
    out.assert_success("the caller reaches 802 once it is online");
    let rows = call_logs(&switch.db, 1).await;
    assert_eq!(rows[0].callee, "802", "{:?}", rows[0]);
    assert!(rows[0].queue_duration >= 1, "{:?}", rows[0]);
    a802.wait().await.assert_success("802 answered");
    let (_, body) = callctrl(&switch, "opt=QUEUE_INFO").await;
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
    let switch = common::start(dir.path(), &text).await;
    let out = Sipp::ext_call("uac_wait_bye.xml", switch.sip_addr, "801", "3003")
        .timeout(Duration::from_secs(15))
        .run()
        .await;
    out.assert_success("answered, then BYE from the switch");
    let rows = call_logs(&switch.db, 1).await;
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
    let switch = common::start(dir.path(), &config("longest-idle", "wrap_up = 3")).await;
    set_presence(&switch, "803", "offline").await;
    let a802 = agent(&switch, "802", "uas.xml", 2).await;
    for (what, talk_ms) in [("first call", 800), ("second call", 5_000)] {
        call(&switch, "3003", talk_ms).await.assert_success(what);
    }
    let rows = call_logs(&switch.db, 2).await;
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

/// Two callers wait for the only agent (busy): 801 first, then 804, a VIP of level 2
/// (interface 39) who came later. QUEUE_INFO lists 804 first; when the agent goes online
/// 804 is served first.
#[actix_rt::test]
async fn a_vip_caller_overtakes_one_who_waited_less_than_its_bonus() {
    let dir = tempfile::tempdir().unwrap();
    let text = config("longest-idle", "") + &ext("804", &[]);
    let switch = common::start(dir.path(), &text).await;
    let vip = common::percent_encode(r#"{"telnum":"804","viplevel":2,"des":"vip customer"}"#);
    assert_eq!(
        jsoncfg(&switch, &format!("opt=VIP_LIST_ADD&json={vip}"))
            .await
            .0,
        200
    );
    set_presence(&switch, "803", "offline").await;
    set_presence(&switch, "802", "busy").await;
    let a802 = agent(&switch, "802", "uas.xml", 2).await;
    let sip = switch.sip_addr;
    let plain = tokio::spawn(caller(sip, "801", "3003", 7_000).run());
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let vip_call = tokio::spawn(caller(sip, "804", "3003", 3_000).run());
    let shown = queue_info_with(&switch, 2).await;
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
    set_presence(&switch, "802", "online").await;
    vip_call
        .await
        .expect("task")
        .assert_success("the VIP is served");
    plain
        .await
        .expect("task")
        .assert_success("801 is served after");
    let rows = call_logs(&switch.db, 2).await;
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
    let switch = common::start(dir.path(), &config("longest-idle", "")).await;
    let _a802 = agent(&switch, "802", "uas.xml", 1).await;
    // 801 calls 802 while 802 is listed, then the queue while 801 itself is.
    for (listed, dialled) in [("802", "802"), ("801", "3003")] {
        let add = format!("opt=BLACK_LIST_ADD&json={listed}");
        assert_eq!(jsoncfg(&switch, &add).await.0, 200);
        let out = Sipp::ext_call("uac_refused.xml", switch.sip_addr, "801", dialled)
            .run()
            .await;
        assert_eq!(out.final_status(), Some(403), "{}", out.report());
        let remove = format!("opt=BLACK_LIST_RMV&json={listed}");
        assert_eq!(jsoncfg(&switch, &remove).await.0, 200);
    }
    // Both taken off the list: the next call goes through at once.
    Sipp::ext_call("uac_call.xml", switch.sip_addr, "801", "802")
        .run()
        .await
        .assert_success("801 calls 802 once neither is listed");
    let rows = call_logs(&switch.db, 3).await;
    assert!(
        rows[..2].iter().all(|r| r.state == "STATE_FAILED"),
        "{rows:#?}"
    );
    assert_eq!(rows[2].state, "STATE_RECEIVED", "{rows:#?}");
    switch.stop().await.unwrap();
}

/// Interface 11: for a call from the trunk, the switch asks the CRM (`GET
/// url?caller=…`) and rings the extension it names; an answer that names nothing usable
/// (here on the second call) falls back to the dialled number.
#[actix_rt::test]
async fn the_routing_query_chooses_the_extension_and_a_bad_answer_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let (crm, asked) = common::fake_web_server("text/plain", &["803", "<html>oops</html>"]).await;
    let carrier_port = free_port();
    let text = config("longest-idle", "")
        + &carrier_trunk(carrier_port, false)
        + HOTLINE
        + &format!("[callbacks]\nrouting = \"http://{crm}/route\"\n");
    let switch = common::start(dir.path(), &text).await;
    let a803 = agent(&switch, "803", "uas.xml", 1).await;
    let a802 = agent(&switch, "802", "uas.xml", 1).await;
    set_presence(&switch, "803", "busy").await;
    for n in 0..2 {
        let out = customer_call(&switch, carrier_port).await;
        out.assert_success(&format!("trunk call {n}"));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let rows = call_logs(&switch.db, 2).await;
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
    let (switch, carrier_port) = start_with_hotline(dir.path()).await;
    let (status, _) = callctrl(
        &switch,
        "opt=SET_EXT_DIRECT_CALL_BACK&extnum=801&offon=true",
    )
    .await;
    assert_eq!(status, 200);
    // 801 calls the customer out.
    let mut carrier = Sipp::new("uas.xml").port(carrier_port).calls(1).spawn();
    carrier.bound().await;
    call(&switch, CUSTOMER, 500)
        .await
        .assert_success("801 calls out");
    carrier.wait().await.assert_success("the carrier answered");
    // 801's phone, and an agent of 3003 who must not get the call.
    let a801 = agent(&switch, "801", "uas.xml", 1).await;
    let _a802 = agent(&switch, "802", "uas.xml", 1).await;
    let out = customer_call(&switch, carrier_port).await;
    out.assert_success("the customer calls back");
    a801.wait()
        .await
        .assert_success("801 answered the callback");
    let rows = call_logs(&switch.db, 2).await;
    let back = &rows[1];
    assert_eq!(back.caller, CUSTOMER, "{back:?}");
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
    // 803 is a pjsua2 caller here (password p803), not an agent.
    let text = config("longest-idle", "").replace(
        &ext("803", &["3003"]),
        &common::extension("803", "p803", &[]),
    );
    let switch = common::start(dir.path(), &text).await;
    set_presence(&switch, "802", "busy").await;
    let first = tokio::spawn(caller(switch.sip_addr, "801", "3003", 9_000).run());
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = pjsua::dial(
        switch.sip_addr,
        &[
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
        ],
        Duration::from_secs(30),
    )
    .await;
    pjsua::assert_no_errors(&r);
    let audio = &r["audio"]["caller"];
    let timeline = audio["timeline"].as_str().unwrap_or_default().to_string();
    // Speech first (no single tone dominates: '?'), music after (the notes: a, b, c).
    let speech = pjsua::untoned_blocks(&timeline, 15);
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
    let text = ext("801", &[])
        + &ext("802", &["3003"])
        + &ext("803", &["3005"])
        + r#"
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
    let switch = common::start(dir.path(), &text).await;
    // 802 (the only member of 3003) is busy; 803 serves 3005.
    set_presence(&switch, "802", "busy").await;
    let a803 = agent(&switch, "803", "uas.xml", 1).await;
    call(&switch, "3003", 4_000)
        .await
        .assert_success("overflowed to 3005");
    a803.wait().await.assert_success("803 answered");
    let rows = call_logs(&switch.db, 1).await;
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
    let switch = common::start(dir.path(), &config("round-robin", "")).await;
    set_presence(&switch, "802", "reducing").await;
    let a802 = agent(&switch, "802", "uas.xml", 1).await;
    let a803 = agent(&switch, "803", "uas.xml", 1).await;
    call(&switch, "3003", 800)
        .await
        .assert_success("first call");
    tokio::time::sleep(Duration::from_millis(300)).await;
    set_presence(&switch, "803", "offline").await;
    call(&switch, "3003", 800)
        .await
        .assert_success("second call");
    let rows = call_logs(&switch.db, 2).await;
    assert_eq!(rows[0].callee, "803", "online first: {rows:#?}");
    assert_eq!(rows[1].callee, "802", "then the reducing one: {rows:#?}");
    a802.wait().await.assert_success("802");
    a803.wait().await.assert_success("803");
    switch.stop().await.unwrap();
}
