//! End-to-end calls through a whole switch with SIPp as the phones and the carrier.
//!
//! Every test starts its own switch on loopback (free ports, SQLite in a temp dir) with
//! extensions 801 and 802 (password 1234), and, where a carrier is needed, a default trunk
//! `carrier` whose host is a free loopback port that a SIPp instance plays. The scenarios
//! live in `tests/sipp/`; `tests/common/sipp.rs` runs them (bounded in calls and time).
//!
//! What is checked: digest REGISTER (and the registrar's state), extension calls in both
//! directions with either side hanging up (over UDP, and once over TCP), CANCEL while
//! ringing, refusals (486, 404, 480, trunk transit 403), outgoing and incoming trunk calls,
//! and that a graceful stop ends a call in progress with BYE (and a ringing one with 503 to
//! the caller and CANCEL to the phone) and still writes its call-log row. Each call's
//! call-log row is read back and checked field by field; the INVITE the switch sends on is
//! checked for the caller's and callee's numbers and a decremented Max-Forwards.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use actors::event_hub::PhoneState;
use actors::extension::{ExtensionSnapshot, GetExtensionState};
use actors::router::GetExtension;
use common::sipp::{free_port, user_line, Sipp, SippOutcome, TracedMessage};
use ctiswitch::Switch;
use entities::calllog;

const PASSWORD: &str = "1234";

const EXTENSIONS: &str = r#"
[[extensions]]
number = "801"
password = "1234"
name = "Alice"

[[extensions]]
number = "802"
password = "1234"
name = "Bob"
"#;

/// The talk time the scenarios pause for (`-d`), and so the call-log duration.
const TALK_MS: u64 = 1000;

/// A trunk named `carrier` at `127.0.0.1:<port>`, the default route for outside numbers.
fn trunk(port: u16) -> String {
    format!(
        r#"
[[trunks]]
name = "carrier"
host = "127.0.0.1:{port}"
default = true
"#
    )
}

async fn start(dir: &Path, extra: &str) -> Switch {
    common::start(dir, &format!("{EXTENSIONS}\n{extra}")).await
}

/// The database URL `common::config` gives a switch in `dir`.
fn db_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("test.db").display())
}

/// REGISTERs `user` (right password) with its Contact at `contact`; asserts the 200.
async fn register(switch: &Switch, user: &str, contact: SocketAddr) {
    let out = Sipp::new("register.xml")
        .csv(&user_line(user, PASSWORD, Some(contact)))
        .remote(switch.sip_addr)
        .run()
        .await;
    out.assert_success(&format!("REGISTER {user}"));
    assert_eq!(out.final_status(), Some(200), "{}", out.report());
}

async fn extension_state(switch: &Switch, number: &str) -> ExtensionSnapshot {
    let ext = switch
        .core
        .router
        .send(GetExtension(number.into()))
        .await
        .expect("router")
        .unwrap_or_else(|| panic!("no extension actor for {number}"));
    ext.send(GetExtensionState).await.expect("extension actor")
}

/// Waits (up to 10 s) until the call log holds `n` rows; returns them oldest first.
async fn call_logs(db: &sea_orm::DatabaseConnection, n: usize) -> Vec<calllog::Model> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = entities::repo::calllog::recent(db, 50)
            .await
            .expect("read call log");
        if rows.len() >= n || Instant::now() >= until {
            assert_eq!(rows.len(), n, "call-log rows: {rows:#?}");
            let mut rows = rows;
            rows.reverse();
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The one call-log row of the switch's only call.
async fn only_call_log(switch: &Switch) -> calllog::Model {
    call_logs(&switch.db, 1).await.remove(0)
}

/// The fields every answered call has, whoever placed it.
fn assert_answered(row: &calllog::Model, caller: &str, callee: &str, hungupside: &str) {
    let ctx = format!("{row:#?}");
    assert_eq!(row.caller, caller, "caller\n{ctx}");
    assert_eq!(row.callee, callee, "callee\n{ctx}");
    assert_eq!(row.state, "STATE_RECEIVED", "state\n{ctx}");
    assert_eq!(row.hungupside, hungupside, "hungupside\n{ctx}");
    assert!(row.begin_time > 0, "beginTime\n{ctx}");
    assert!(
        row.ring_time >= row.begin_time,
        "ringTime ≥ beginTime\n{ctx}"
    );
    assert!(
        row.pickup_time >= row.ring_time,
        "pickupTime ≥ ringTime\n{ctx}"
    );
    // Talk time: the scenario's pause (1 s), rounded to seconds; a loaded machine may add
    // some hundreds of milliseconds.
    let talk = (TALK_MS / 1000) as i32;
    assert!(
        (talk..=talk + 1).contains(&row.duration),
        "duration ≈ {talk} s\n{ctx}"
    );
    assert!(!row.callid.is_empty(), "callid\n{ctx}");
}

fn assert_centrex(row: &calllog::Model) {
    assert_eq!(row.business, "CENTREX_CALL", "business\n{row:#?}");
    assert_eq!(row.call_type, "CENTREX_CALL", "callType\n{row:#?}");
    assert_eq!(row.fxonum, "", "fxonum\n{row:#?}");
}

/// The requests a UAS received, for messages.
fn requests(out: &SippOutcome) -> Vec<String> {
    out.received_requests()
}

/// The INVITE a UAS (a phone, the carrier) received from the switch.
fn received_invite(out: &SippOutcome) -> TracedMessage {
    out.traced()
        .into_iter()
        .find(|m| !m.sent && m.method() == Some("INVITE"))
        .unwrap_or_else(|| panic!("no INVITE received\n{}", out.report()))
}

/// The user part of the URI in a From/To header value.
fn uri_user(value: &str) -> &str {
    let uri = value.split('<').nth(1).unwrap_or(value);
    let uri = uri.trim_start_matches("sip:");
    uri.split('@').next().unwrap_or("")
}

/// The switch's INVITE to the callee: caller and callee numbers, Max-Forwards decremented.
fn assert_invite_for(out: &SippOutcome, from: &str, to: &str) {
    let invite = received_invite(out);
    let header = |name: &str| {
        invite
            .header(name)
            .unwrap_or_else(|| panic!("no {name} in\n{}", invite.text))
            .to_string()
    };
    assert_eq!(uri_user(&header("From")), from, "From\n{}", invite.text);
    assert_eq!(uri_user(&header("To")), to, "To\n{}", invite.text);
    assert_eq!(
        header("Max-Forwards"),
        "69",
        "Max-Forwards\n{}",
        invite.text
    );
    assert!(
        invite.header("Proxy-Authorization").is_none(),
        "the caller's credentials are not passed on\n{}",
        invite.text
    );
}

// ---------------------------------------------------------------------------------------
// 1. REGISTER
// ---------------------------------------------------------------------------------------

#[actix_rt::test]
async fn register_with_digest_and_wrong_password() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), "").await;
    let contact = SocketAddr::from(([127, 0, 0, 1], free_port()));

    // Right password: 401 challenge, then 200.
    let out = Sipp::new("register.xml")
        .csv(&user_line("801", PASSWORD, Some(contact)))
        .remote(switch.sip_addr)
        .run()
        .await;
    out.assert_success("REGISTER 801 with the right password");
    assert_eq!(out.received_statuses(), vec![401, 200], "{}", out.report());

    // The registrar (the Extension actor) holds the binding.
    let state = extension_state(&switch, "801").await;
    assert!(state.registered, "801 registered: {state:?}");
    assert_eq!(
        state.contacts,
        vec![format!("sip:801@{contact}")],
        "801's contact: {state:?}"
    );
    assert_eq!(state.phone, PhoneState::Idle, "{state:?}");

    // Wrong password: challenged, then refused (403, or a new 401).
    let out = Sipp::new("register_wrong.xml")
        .csv(&user_line("802", "not-the-password", Some(contact)))
        .remote(switch.sip_addr)
        .run()
        .await;
    out.assert_success("REGISTER 802 with a wrong password is refused");
    let last = out.final_status();
    assert!(
        matches!(last, Some(403) | Some(401)),
        "refusal: {last:?}\n{}",
        out.report()
    );
    // The scenario that expects a 200 fails with the wrong password.
    let out = Sipp::new("register.xml")
        .csv(&user_line("802", "not-the-password", Some(contact)))
        .remote(switch.sip_addr)
        .timeout(Duration::from_secs(5))
        .run()
        .await;
    out.assert_failure("REGISTER 802 with a wrong password must not get a 200");
    assert!(!out.received_statuses().contains(&200), "{}", out.report());

    let state = extension_state(&switch, "802").await;
    assert!(!state.registered, "802 not registered: {state:?}");
    assert!(state.contacts.is_empty(), "{state:?}");
    assert_eq!(state.phone, PhoneState::Offline, "{state:?}");
    // 801's binding is untouched.
    assert!(extension_state(&switch, "801").await.registered);
    switch.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// 2. Extension to extension
// ---------------------------------------------------------------------------------------

#[actix_rt::test]
async fn call_801_to_802_caller_hangs_up() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), "").await;
    let mut phone = Sipp::new("uas.xml").spawn();
    phone.bound().await;
    register(&switch, "802", phone.addr()).await;

    let caller = Sipp::new("uac_call.xml")
        .csv(&user_line("801", PASSWORD, None))
        .service("802")
        .pause_ms(TALK_MS)
        .remote(switch.sip_addr)
        .run()
        .await;
    caller.assert_success("801 calls 802 and hangs up");
    let statuses = caller.received_statuses();
    assert!(statuses.contains(&407), "challenged: {statuses:?}");
    assert!(statuses.contains(&180), "ringing relayed: {statuses:?}");
    let callee = phone.wait().await;
    callee.assert_success("802's phone: INVITE, ACK, BYE");
    assert_eq!(requests(&callee), ["INVITE", "ACK", "BYE"]);
    assert_invite_for(&callee, "801", "802");

    let row = only_call_log(&switch).await;
    assert_answered(&row, "801", "802", "caller");
    assert_centrex(&row);
    assert_eq!(
        Some(row.callid.clone()),
        caller.call_id(),
        "callid is the caller's"
    );
    assert_eq!(
        Some(row.peercallid.clone()),
        callee.call_id(),
        "peercallid is the callee leg's"
    );
    let state = extension_state(&switch, "801").await;
    assert_eq!(
        state.phone,
        PhoneState::Offline,
        "801 is free again: {state:?}"
    );
    let state = extension_state(&switch, "802").await;
    assert_eq!(
        state.phone,
        PhoneState::Idle,
        "802 is free again: {state:?}"
    );
    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn call_802_to_801_callee_hangs_up() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), "").await;
    let mut phone = Sipp::new("uas_bye.xml").pause_ms(TALK_MS).spawn();
    phone.bound().await;
    register(&switch, "801", phone.addr()).await;

    let caller = Sipp::new("uac_wait_bye.xml")
        .csv(&user_line("802", PASSWORD, None))
        .service("801")
        .remote(switch.sip_addr)
        .run()
        .await;
    caller.assert_success("802 calls 801 and 801 hangs up: the caller gets the BYE");
    let callee = phone.wait().await;
    callee.assert_success("801's phone answers, sends BYE, gets 200");
    assert_invite_for(&callee, "802", "801");

    let row = only_call_log(&switch).await;
    assert_answered(&row, "802", "801", "callee");
    assert_centrex(&row);
    assert_eq!(Some(row.callid.clone()), caller.call_id());
    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn call_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), "").await;
    let mut phone = Sipp::new("uas.xml").tcp().spawn();
    phone.bound().await;
    // The phone registers over TCP with a TCP contact; the caller calls over TCP too.
    let out = Sipp::new("register.xml")
        .tcp()
        .csv(&format!(
            "{};transport=tcp",
            user_line("802", PASSWORD, Some(phone.addr()))
        ))
        .remote(switch.sip_addr)
        .run()
        .await;
    out.assert_success("REGISTER 802 over TCP");
    let caller = Sipp::new("uac_call.xml")
        .tcp()
        .csv(&user_line("801", PASSWORD, None))
        .service("802")
        .pause_ms(TALK_MS)
        .remote(switch.sip_addr)
        .run()
        .await;
    caller.assert_success("801 calls 802 over TCP");
    let callee = phone.wait().await;
    callee.assert_success("802's TCP phone: INVITE, ACK, BYE");
    assert_eq!(requests(&callee), ["INVITE", "ACK", "BYE"]);
    assert!(
        callee.messages.contains("TCP message received"),
        "the switch reached the phone over TCP"
    );
    let row = only_call_log(&switch).await;
    assert_answered(&row, "801", "802", "caller");
    switch.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// 3. CANCEL
// ---------------------------------------------------------------------------------------

#[actix_rt::test]
async fn cancel_while_ringing() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), "").await;
    let mut phone = Sipp::new("uas_ring.xml").spawn();
    phone.bound().await;
    register(&switch, "802", phone.addr()).await;

    let caller = Sipp::new("uac_cancel.xml")
        .csv(&user_line("801", PASSWORD, None))
        .service("802")
        .remote(switch.sip_addr)
        .run()
        .await;
    caller.assert_success("801 cancels: 200 for the CANCEL, 487 for the INVITE");
    let callee = phone.wait().await;
    callee.assert_success("802's phone is cancelled by the switch (CANCEL, then ACK of 487)");
    assert_eq!(requests(&callee), ["INVITE", "CANCEL", "ACK"]);

    let row = only_call_log(&switch).await;
    let ctx = format!("{row:#?}");
    assert_eq!(
        (row.caller.as_str(), row.callee.as_str()),
        ("801", "802"),
        "{ctx}"
    );
    assert_eq!(row.state, "STATE_FAILED", "{ctx}");
    assert_eq!(row.hungupside, "caller", "{ctx}");
    assert_eq!(row.business, "CENTREX_CALL", "{ctx}");
    assert_eq!(row.duration, 0, "{ctx}");
    assert_eq!(row.pickup_time, 0, "{ctx}");
    assert!(
        row.ring_time >= row.begin_time && row.begin_time > 0,
        "{ctx}"
    );
    let state = extension_state(&switch, "802").await;
    assert_eq!(state.phone, PhoneState::Idle, "802 free again: {state:?}");
    switch.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// 4. Refusals
// ---------------------------------------------------------------------------------------

/// 801 calls `number` with the refusal scenario; returns the final status.
async fn refused_call(switch: &Switch, number: &str) -> (Option<u16>, SippOutcome) {
    let out = Sipp::new("uac_refused.xml")
        .csv(&user_line("801", PASSWORD, None))
        .service(number)
        .remote(switch.sip_addr)
        .run()
        .await;
    out.assert_success(&format!("801 calls {number}: refused"));
    (out.final_status(), out)
}

#[actix_rt::test]
async fn busy_callee_gives_486() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), "").await;
    let mut phone = Sipp::new("uas_reject.xml").spawn();
    phone.bound().await;
    register(&switch, "802", phone.addr()).await;

    let (status, out) = refused_call(&switch, "802").await;
    assert_eq!(status, Some(486), "{}", out.report());
    phone
        .wait()
        .await
        .assert_success("802's phone: INVITE, 486, ACK");

    let row = only_call_log(&switch).await;
    assert_eq!(row.state, "STATE_FAILED", "{row:#?}");
    assert_eq!(row.hungupside, "callee", "{row:#?}");
    assert_eq!(row.pickup_time, 0, "{row:#?}");
    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn unknown_number_gives_404_without_a_trunk() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), "").await;
    // Not provisioned; with no trunk, digits have nowhere to go either.
    let (status, out) = refused_call(&switch, "899").await;
    assert_eq!(status, Some(404), "{}", out.report());
    let (status, out) = refused_call(&switch, "0123456789").await;
    assert_eq!(status, Some(404), "{}", out.report());
    let rows = call_logs(&switch.db, 2).await;
    assert!(rows.iter().all(|r| r.state == "STATE_FAILED"), "{rows:#?}");
    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn unregistered_extension_gives_480() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), "").await;
    let (status, out) = refused_call(&switch, "802").await;
    assert_eq!(status, Some(480), "{}", out.report());
    let row = only_call_log(&switch).await;
    assert_eq!(row.state, "STATE_FAILED", "{row:#?}");
    assert_eq!(row.callee, "802", "{row:#?}");
    switch.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// 5. Trunks
// ---------------------------------------------------------------------------------------

#[actix_rt::test]
async fn outgoing_call_through_the_trunk() {
    let dir = tempfile::tempdir().unwrap();
    let carrier_port = free_port();
    let switch = start(dir.path(), &trunk(carrier_port)).await;
    let mut carrier = Sipp::new("uas.xml").port(carrier_port).spawn();
    carrier.bound().await;

    let caller = Sipp::new("uac_call.xml")
        .csv(&user_line("801", PASSWORD, None))
        .service("0123456789")
        .pause_ms(TALK_MS)
        .remote(switch.sip_addr)
        .run()
        .await;
    caller.assert_success("801 dials 0123456789 through the trunk");
    let carrier = carrier.wait().await;
    carrier.assert_success("the carrier answers and gets the BYE");
    let invite = received_invite(&carrier);
    assert!(
        invite
            .first_line()
            .starts_with(&format!("INVITE sip:0123456789@127.0.0.1:{carrier_port}")),
        "Request-URI: {}",
        invite.first_line()
    );
    assert_invite_for(&carrier, "801", "0123456789");

    let row = only_call_log(&switch).await;
    assert_answered(&row, "801", "0123456789", "caller");
    assert_eq!(row.business, "OUTGOING", "{row:#?}");
    assert_eq!(row.fxonum, "carrier", "{row:#?}");
    assert_eq!(row.call_type, "NATIONAL_CALL", "{row:#?}");
    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn incoming_call_from_the_trunk() {
    let dir = tempfile::tempdir().unwrap();
    let carrier_port = free_port();
    let switch = start(dir.path(), &trunk(carrier_port)).await;
    let mut phone = Sipp::new("uas.xml").spawn();
    phone.bound().await;
    register(&switch, "801", phone.addr()).await;

    // The carrier calls from the trunk's host:port, without credentials.
    let carrier = Sipp::new("trunk_call.xml")
        .port(carrier_port)
        .csv("0612345678;x;x")
        .service("801")
        .pause_ms(TALK_MS)
        .remote(switch.sip_addr)
        .run()
        .await;
    carrier.assert_success("the carrier calls 801");
    assert!(
        !carrier.received_statuses().contains(&407),
        "trunk calls are not challenged: {:?}",
        carrier.received_statuses()
    );
    let callee = phone.wait().await;
    callee.assert_success("801's phone answers");
    // The outside caller's number is presented to the phone.
    assert_invite_for(&callee, "0612345678", "801");

    let row = only_call_log(&switch).await;
    assert_answered(&row, "0612345678", "801", "caller");
    assert_eq!(row.business, "INCOMING", "{row:#?}");
    assert_eq!(row.fxonum, "carrier", "{row:#?}");
    assert_eq!(row.call_type, "NATIONAL_CALL", "{row:#?}");
    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn trunk_call_to_an_outside_number_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let carrier_port = free_port();
    let switch = start(dir.path(), &trunk(carrier_port)).await;

    // No transit: a carrier's call for a number that is not ours must not leave through
    // the (default) trunk — here back to the carrier itself, which would then receive an
    // INVITE the scenario does not expect.
    let out = Sipp::new("uac_refused.xml")
        .port(carrier_port)
        .csv("0612345678;x;x")
        .service("0999888777")
        .remote(switch.sip_addr)
        .run()
        .await;
    out.assert_success("the carrier's transit call is refused");
    assert_eq!(out.final_status(), Some(403), "{}", out.report());
    assert!(!out.received_statuses().contains(&407), "{}", out.report());
    assert!(out.received_requests().is_empty(), "{}", out.report());
    switch.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// 6. Graceful shutdown
// ---------------------------------------------------------------------------------------

#[actix_rt::test]
async fn stop_hangs_up_calls_and_writes_their_log() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), "").await;
    let mut phone = Sipp::new("uas.xml").spawn();
    phone.bound().await;
    register(&switch, "802", phone.addr()).await;
    let mut caller = Sipp::new("uac_wait_bye.xml")
        .csv(&user_line("801", PASSWORD, None))
        .service("802")
        .remote(switch.sip_addr)
        .spawn();

    // Wait until the call is answered (802 in a call with a pickup time).
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let state = extension_state(&switch, "802").await;
        if state.phone == PhoneState::BusyIncoming && state.pickup_ms.is_some() {
            break;
        }
        assert!(!caller.finished(), "the caller ended before the answer");
        assert!(
            Instant::now() < until,
            "the call was never answered: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give the caller's ACK time to arrive before the stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    switch.stop().await.expect("graceful stop");

    let callee = phone.wait().await;
    callee.assert_success("the callee got a BYE from the stopping switch");
    assert_eq!(requests(&callee), ["INVITE", "ACK", "BYE"]);
    let caller = caller.wait().await;
    caller.assert_success("the caller got a BYE from the stopping switch");

    // The pool is closed by stop(): read the row through a new connection.
    let db = entities::connect(&db_url(dir.path()))
        .await
        .expect("reopen the database");
    let rows = call_logs(&db, 1).await;
    let row = &rows[0];
    let ctx = format!("{row:#?}");
    assert_eq!(
        (row.caller.as_str(), row.callee.as_str()),
        ("801", "802"),
        "{ctx}"
    );
    assert_eq!(row.state, "STATE_RECEIVED", "{ctx}");
    assert_eq!(row.hungupside, "system", "{ctx}");
    assert!(
        row.pickup_time >= row.ring_time && row.ring_time >= row.begin_time,
        "{ctx}"
    );
    assert_eq!(Some(row.callid.clone()), caller.call_id(), "{ctx}");
    db.close().await.unwrap();
}

#[actix_rt::test]
async fn stop_while_ringing_refuses_the_caller_and_cancels_the_phone() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), "").await;
    let mut phone = Sipp::new("uas_ring.xml").spawn();
    phone.bound().await;
    register(&switch, "802", phone.addr()).await;
    let mut caller = Sipp::new("uac_refused.xml")
        .csv(&user_line("801", PASSWORD, None))
        .service("802")
        .remote(switch.sip_addr)
        .spawn();
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let state = extension_state(&switch, "802").await;
        if state.phone == PhoneState::BusyIncoming {
            break;
        }
        assert!(!caller.finished(), "the caller ended before 802 rang");
        assert!(Instant::now() < until, "802 never rang: {state:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    switch.stop().await.expect("graceful stop");

    let caller = caller.wait().await;
    caller.assert_success("the caller's INVITE gets a final answer at shutdown");
    assert_eq!(caller.final_status(), Some(503), "{}", caller.report());
    let callee = phone.wait().await;
    callee.assert_success("the ringing phone is cancelled at shutdown (CANCEL, ACK of its 487)");
    assert_eq!(requests(&callee), ["INVITE", "CANCEL", "ACK"]);

    let db = entities::connect(&db_url(dir.path()))
        .await
        .expect("reopen the database");
    let rows = call_logs(&db, 1).await;
    let row = &rows[0];
    assert_eq!(row.state, "STATE_FAILED", "{row:#?}");
    assert_eq!(row.hungupside, "system", "{row:#?}");
    assert_eq!(row.pickup_time, 0, "{row:#?}");
    db.close().await.unwrap();
}
