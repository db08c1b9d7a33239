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
use common::extension_state;
use common::sipp::{
    carrier_trunk, extensions, free_port, user_line, Sipp, SippOutcome, TracedMessage, CUSTOMER,
};
use ctiswitch::Switch;
use entities::calllog;

/// The talk time the scenarios pause for (`-d`), and so the call-log duration.
const TALK_MS: u64 = 1000;

/// A switch with extensions 801 and 802 (password 1234), plus `extra`.
async fn start(dir: &Path, extra: &str) -> Switch {
    common::start(dir, &format!("{}\n{extra}", extensions(&["801", "802"]))).await
}

/// A switch as [`start`] with the default trunk `carrier` at a free port, and that port.
async fn start_with_carrier(dir: &Path) -> (Switch, u16) {
    let port = free_port();
    (start(dir, &carrier_trunk(port, true)).await, port)
}

/// The database URL `common::config` gives a switch in `dir`.
fn db_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("test.db").display())
}

/// Exactly `n` rows in the call log (waited for), oldest first.
async fn call_logs(db: &sea_orm::DatabaseConnection, n: usize) -> Vec<calllog::Model> {
    let rows = common::call_logs(db, n).await;
    assert_eq!(rows.len(), n, "call-log rows: {rows:#?}");
    rows
}

/// The one call-log row of the switch's only call.
async fn only_call_log(switch: &Switch) -> calllog::Model {
    call_logs(&switch.db, 1).await.remove(0)
}

/// The call-log row of a stopped switch's only call, read through a new connection (stop()
/// closed the pool).
async fn only_call_log_after_stop(dir: &Path) -> calllog::Model {
    let db = entities::connect(&db_url(dir))
        .await
        .expect("reopen the database");
    let row = call_logs(&db, 1).await.remove(0);
    db.close().await.unwrap();
    row
}

/// Waits (15 s at the most) until `number`'s phone state satisfies `ready`, while `caller`
/// (the SIPp run calling it) is still going.
async fn wait_for_phone(
    switch: &Switch,
    number: &str,
    caller: &mut common::sipp::SippProcess,
    ready: impl Fn(&actors::extension::ExtensionSnapshot) -> bool,
    what: &str,
) {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let state = extension_state(switch, number).await;
        if ready(&state) {
            return;
        }
        assert!(!caller.finished(), "the caller ended before: {what}");
        assert!(Instant::now() < until, "not within 15 s: {what}: {state:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// The fields of a call that was never answered, ended by `hungupside`.
fn assert_failed(row: &calllog::Model, hungupside: &str) {
    let ctx = format!("{row:#?}");
    assert_eq!(row.state, "STATE_FAILED", "state\n{ctx}");
    assert_eq!(row.hungupside, hungupside, "hungupside\n{ctx}");
    assert_eq!(row.pickup_time, 0, "pickupTime\n{ctx}");
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
    out.received_invite()
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

/// Runs `caller` while `phone` (a UAS) takes its call; both SIPp runs must succeed, as
/// `what` (caller, phone) says.
async fn call_phone(
    caller: Sipp,
    phone: common::sipp::SippProcess,
    what: (&str, &str),
) -> (SippOutcome, SippOutcome) {
    let caller = caller.run().await;
    caller.assert_success(what.0);
    let callee = phone.wait().await;
    callee.assert_success(what.1);
    (caller, callee)
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
    let out = common::sipp::register(switch.sip_addr, "801", contact, false).await;
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
    let wrong = user_line("802", "not-the-password", Some(contact));
    let out = Sipp::new("register_wrong.xml")
        .csv(&wrong)
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
        .csv(&wrong)
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
    let sip = switch.sip_addr;
    let phone = Sipp::new("uas.xml").spawn_registered(sip, "802").await;

    let (caller, callee) = call_phone(
        Sipp::ext_call("uac_call.xml", sip, "801", "802").pause_ms(TALK_MS),
        phone,
        (
            "801 calls 802 and hangs up",
            "802's phone: INVITE, ACK, BYE",
        ),
    )
    .await;
    let statuses = caller.received_statuses();
    assert!(statuses.contains(&407), "challenged: {statuses:?}");
    assert!(statuses.contains(&180), "ringing relayed: {statuses:?}");
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
    for (number, free) in [("801", PhoneState::Offline), ("802", PhoneState::Idle)] {
        let state = extension_state(&switch, number).await;
        assert_eq!(state.phone, free, "{number} is free again: {state:?}");
    }
    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn call_802_to_801_callee_hangs_up() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), "").await;
    let sip = switch.sip_addr;
    let phone = Sipp::new("uas_bye.xml")
        .pause_ms(TALK_MS)
        .spawn_registered(sip, "801")
        .await;

    let (caller, callee) = call_phone(
        Sipp::ext_call("uac_wait_bye.xml", sip, "802", "801"),
        phone,
        (
            "802 calls 801 and 801 hangs up: the caller gets the BYE",
            "801's phone answers, sends BYE, gets 200",
        ),
    )
    .await;
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
    let sip = switch.sip_addr;
    // The phone registers over TCP with a TCP contact; the caller calls over TCP too.
    let phone = Sipp::new("uas.xml")
        .tcp()
        .spawn_registered(sip, "802")
        .await;
    let (_, callee) = call_phone(
        Sipp::ext_call("uac_call.xml", sip, "801", "802")
            .tcp()
            .pause_ms(TALK_MS),
        phone,
        (
            "801 calls 802 over TCP",
            "802's TCP phone: INVITE, ACK, BYE",
        ),
    )
    .await;
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
    let sip = switch.sip_addr;
    let phone = Sipp::new("uas_ring.xml").spawn_registered(sip, "802").await;

    let (_, callee) = call_phone(
        Sipp::ext_call("uac_cancel.xml", sip, "801", "802"),
        phone,
        (
            "801 cancels: 200 for the CANCEL, 487 for the INVITE",
            "802's phone is cancelled by the switch (CANCEL, then ACK of 487)",
        ),
    )
    .await;
    assert_eq!(requests(&callee), ["INVITE", "CANCEL", "ACK"]);

    let row = only_call_log(&switch).await;
    let ctx = format!("{row:#?}");
    assert_eq!(
        (row.caller.as_str(), row.callee.as_str()),
        ("801", "802"),
        "{ctx}"
    );
    assert_failed(&row, "caller");
    assert_eq!(row.business, "CENTREX_CALL", "{ctx}");
    assert_eq!(row.duration, 0, "{ctx}");
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

/// 801 calls `number` with the refusal scenario; asserts the final status.
async fn refused_call(switch: &Switch, number: &str, status: u16) {
    let out = Sipp::ext_call("uac_refused.xml", switch.sip_addr, "801", number)
        .run()
        .await;
    out.assert_success(&format!("801 calls {number}: refused"));
    assert_eq!(out.final_status(), Some(status), "{}", out.report());
}

#[actix_rt::test]
async fn busy_callee_gives_486() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), "").await;
    let phone = Sipp::new("uas_reject.xml")
        .spawn_registered(switch.sip_addr, "802")
        .await;

    refused_call(&switch, "802", 486).await;
    phone
        .wait()
        .await
        .assert_success("802's phone: INVITE, 486, ACK");

    assert_failed(&only_call_log(&switch).await, "callee");
    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn unknown_number_gives_404_without_a_trunk() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), "").await;
    // Not provisioned; with no trunk, digits have nowhere to go either.
    for number in ["899", "0123456789"] {
        refused_call(&switch, number, 404).await;
    }
    let rows = call_logs(&switch.db, 2).await;
    assert!(rows.iter().all(|r| r.state == "STATE_FAILED"), "{rows:#?}");
    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn unregistered_extension_gives_480() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), "").await;
    refused_call(&switch, "802", 480).await;
    let row = only_call_log(&switch).await;
    assert_eq!(row.state, "STATE_FAILED", "{row:#?}");
    assert_eq!(row.callee, "802", "{row:#?}");
    switch.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// 5. Trunks
// ---------------------------------------------------------------------------------------

/// The row of an answered trunk call from `caller` to `callee`: `business`, through the
/// trunk `carrier`, a national call.
fn assert_trunk_call(row: &calllog::Model, caller: &str, callee: &str, business: &str) {
    assert_answered(row, caller, callee, "caller");
    assert_eq!(row.business, business, "{row:#?}");
    assert_eq!(row.fxonum, "carrier", "{row:#?}");
    assert_eq!(row.call_type, "NATIONAL_CALL", "{row:#?}");
}

#[actix_rt::test]
async fn outgoing_call_through_the_trunk() {
    let dir = tempfile::tempdir().unwrap();
    let (switch, carrier_port) = start_with_carrier(dir.path()).await;
    let mut carrier = Sipp::new("uas.xml").port(carrier_port).spawn();
    carrier.bound().await;

    let (_, carrier) = call_phone(
        Sipp::ext_call("uac_call.xml", switch.sip_addr, "801", "0123456789").pause_ms(TALK_MS),
        carrier,
        (
            "801 dials 0123456789 through the trunk",
            "the carrier answers and gets the BYE",
        ),
    )
    .await;
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
    assert_trunk_call(&row, "801", "0123456789", "OUTGOING");
    switch.stop().await.unwrap();
}

/// A switch with the default trunk `carrier`, whose carrier places the call of `scenario`
/// to 801 (talking [`TALK_MS`] when `talk`), which SIPp phone 801 answers (`phone`, a UAS
/// scenario). Both runs must succeed, as `what` says. The directory returned must outlive
/// the switch.
async fn carrier_calls_801(
    scenario: &str,
    phone: &str,
    talk: bool,
    what: (&str, &str),
) -> (tempfile::TempDir, Switch, SippOutcome, SippOutcome) {
    let dir = tempfile::tempdir().unwrap();
    let (switch, carrier_port) = start_with_carrier(dir.path()).await;
    let sip = switch.sip_addr;
    let phone = Sipp::new(phone).spawn_registered(sip, "801").await;
    let mut carrier = Sipp::carrier_call(scenario, sip, carrier_port, CUSTOMER, "801");
    if talk {
        carrier = carrier.pause_ms(TALK_MS);
    }
    let (carrier, callee) = call_phone(carrier, phone, what).await;
    (dir, switch, carrier, callee)
}

#[actix_rt::test]
async fn incoming_call_from_the_trunk() {
    // The carrier calls from the trunk's host:port, without credentials.
    let (_dir, switch, carrier, callee) = carrier_calls_801(
        "trunk_call.xml",
        "uas.xml",
        true,
        ("the carrier calls 801", "801's phone answers"),
    )
    .await;
    assert!(
        !carrier.received_statuses().contains(&407),
        "trunk calls are not challenged: {:?}",
        carrier.received_statuses()
    );
    // The outside caller's number is presented to the phone.
    assert_invite_for(&callee, CUSTOMER, "801");

    let row = only_call_log(&switch).await;
    assert_trunk_call(&row, CUSTOMER, "801", "INCOMING");
    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn trunk_call_to_an_outside_number_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (switch, carrier_port) = start_with_carrier(dir.path()).await;

    // No transit: a carrier's call for a number that is not ours must not leave through
    // the (default) trunk — here back to the carrier itself, which would then receive an
    // INVITE the scenario does not expect.
    let out = Sipp::carrier_call(
        "uac_refused.xml",
        switch.sip_addr,
        carrier_port,
        CUSTOMER,
        "0999888777",
    )
    .run()
    .await;
    out.assert_success("the carrier's transit call is refused");
    assert_eq!(out.final_status(), Some(403), "{}", out.report());
    assert!(!out.received_statuses().contains(&407), "{}", out.report());
    assert!(out.received_requests().is_empty(), "{}", out.report());
    switch.stop().await.unwrap();
}

/// The SDP of the 200 `carrier` got for its offer-less INVITE, asserted to offer the
/// phone's choice alone (PCMA and telephone-event: the relay does not transcode).
fn assert_offers_the_phones_pcma(carrier: &SippOutcome) -> String {
    let offer = carrier.invite_ok_sdp().unwrap_or_default();
    assert!(
        offer
            .lines()
            .any(|l| l.trim_end().ends_with(" RTP/AVP 8 101")),
        "the 200 offers PCMA alone: {offer}"
    );
    offer
}

#[actix_rt::test]
async fn incoming_call_with_a_delayed_offer() {
    // The carrier's INVITE has no SDP; the scenario checks that the 200 offers PCMA (the
    // phone's choice) with telephone-event, and answers in its ACK.
    let (_dir, switch, carrier, callee) = carrier_calls_801(
        "trunk_call_delayed_offer.xml",
        "uas.xml",
        true,
        (
            "the carrier calls 801 without an offer",
            "801's phone answers",
        ),
    )
    .await;
    let sip = switch.sip_addr;
    // The phone got a full offer (the switch's codecs), as for any call.
    let invite = received_invite(&callee);
    assert!(
        invite.text.contains("RTP/AVP 0 8 101"),
        "the phone is offered PCMU, PCMA and telephone-event:\n{}",
        invite.text
    );
    // The offer in the 200 points at the switch's relay, not at the phone.
    let offer = assert_offers_the_phones_pcma(&carrier);
    assert!(offer.contains(&format!("c=IN IP4 {}", sip.ip())), "{offer}");
    assert!(offer.contains("a=sendrecv"), "{offer}");

    let row = only_call_log(&switch).await;
    assert_trunk_call(&row, CUSTOMER, "801", "INCOMING");
    switch.stop().await.unwrap();
}

/// A phone that answers in a 183 and sends its 200 without SDP, called by a carrier that
/// made no offer: the carrier gets a plain 180 (an SDP there would be an offer it cannot
/// answer without PRACK) and the switch's offer in the 200, built from the 183's answer.
#[actix_rt::test]
async fn a_delayed_offer_meets_a_callee_that_answers_in_its_183() {
    let (_dir, switch, carrier, _) = carrier_calls_801(
        "trunk_call_delayed_offer.xml",
        "uas_sdp_in_183.xml",
        true,
        (
            "the carrier calls 801 without an offer",
            "801 answers in its 183",
        ),
    )
    .await;
    let provisional: Vec<_> = carrier
        .traced()
        .into_iter()
        .filter(|m| !m.sent && m.status().is_some_and(|s| (180..200).contains(&s)))
        .collect();
    assert!(
        !provisional.is_empty()
            && provisional
                .iter()
                .all(|m| m.header("Content-Type").is_none()),
        "ringing without SDP: {provisional:#?}"
    );
    assert_offers_the_phones_pcma(&carrier);
    let row = only_call_log(&switch).await;
    assert_trunk_call(&row, CUSTOMER, "801", "INCOMING");
    switch.stop().await.unwrap();
}

/// A phone that refreshes the session with a re-INVITE without SDP is offered the codec the
/// call uses (PCMA, its own choice) alone, not every codec of the first offer: it could
/// otherwise switch to one the caller does not talk. Its answer comes in the ACK.
#[actix_rt::test]
async fn an_offerless_re_invite_is_offered_the_codec_in_use() {
    let (_dir, switch, _, phone) = carrier_calls_801(
        "trunk_call.xml",
        "uas_reinvite_without_sdp.xml",
        true,
        (
            "the carrier calls 801",
            "801 re-INVITEs without SDP and is offered PCMA alone",
        ),
    )
    .await;
    // The o= version of our SDP to the phone goes up by exactly one (RFC 3264 §8).
    let versions: Vec<u64> = phone
        .traced()
        .into_iter()
        .filter(|m| !m.sent)
        .filter_map(|m| {
            let o = m.text.lines().find(|l| l.starts_with("o=ctiswitch "))?;
            o.split_whitespace().nth(2)?.parse().ok()
        })
        .collect();
    assert_eq!(
        versions.len(),
        2,
        "our INVITE's SDP and our 200's: {}",
        phone.report()
    );
    assert_eq!(versions[1], versions[0] + 1, "{versions:?}");
    let row = only_call_log(&switch).await;
    assert_trunk_call(&row, CUSTOMER, "801", "INCOMING");
    switch.stop().await.unwrap();
}

/// The phone re-INVITEs mid-call and numbers its telephone-events 96 instead of 101; the
/// carrier answers keeping its own 101. The relay must follow: the carrier's digit, sent
/// under 101 before and after the re-INVITE, reaches the phone (whose media is this
/// test's socket) under 101 first and under 96 after.
#[actix_rt::test]
async fn a_re_invite_that_renumbers_telephone_events_is_followed_by_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let (switch, carrier_port) = start_with_carrier(dir.path()).await;
    let sip = switch.sip_addr;
    let media = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let media_port = media.local_addr().unwrap().port().to_string();
    let received = std::thread::spawn(move || event_payload_types(&media, Duration::from_secs(20)));
    let phone = Sipp::new("uas_reinvite_renumbering_events.xml")
        .arg("-set")
        .arg("media")
        .arg(&media_port)
        .spawn_registered(sip, "801")
        .await;
    let carrier = Sipp::carrier_call(
        "trunk_call_events_around_reinvite.xml",
        sip,
        carrier_port,
        CUSTOMER,
        "801",
    );
    call_phone(
        carrier,
        phone,
        (
            "the carrier sends a digit before and after the re-INVITE",
            "801 re-INVITEs renumbering its telephone-events",
        ),
    )
    .await;
    let types = received.join().unwrap();
    // Ten event packets per play (SIPp's dtmf_2833_1.pcap), in order: 101 then 96.
    let switch_at = types
        .iter()
        .position(|&pt| pt != 101)
        .unwrap_or(types.len());
    assert_eq!(
        (&types[..switch_at], &types[switch_at..]),
        (&[101u8; 10][..], &[96u8; 10][..]),
        "payload types the phone received: {types:?}"
    );
    let row = only_call_log(&switch).await;
    assert_trunk_call(&row, CUSTOMER, "801", "INCOMING");
    switch.stop().await.unwrap();
}

/// The payload types of the RTP packets `socket` receives until none came for two
/// seconds after the first (or `limit` is up).
fn event_payload_types(socket: &std::net::UdpSocket, limit: Duration) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    let mut types = Vec::new();
    let mut buf = [0u8; 1500];
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut last = None::<Instant>;
    while Instant::now() < deadline && last.is_none_or(|t| t.elapsed() < Duration::from_secs(2)) {
        if let Ok(len) = socket.recv(&mut buf) {
            if len >= 12 {
                types.push(buf[1] & 0x7f);
                last = Some(Instant::now());
            }
        }
    }
    types
}

/// While the caller's ACK (with its answer to the switch's offer) is still due, the phone
/// re-INVITEs (hold): the switch cannot offer the caller anything new yet and answers the
/// phone 491 Request Pending; the call goes on once the ACK comes.
#[actix_rt::test]
async fn a_re_invite_before_the_delayed_answer_gets_491() {
    let (_dir, switch, _, phone) = carrier_calls_801(
        "trunk_call_delayed_offer_slow_ack.xml",
        "uas_reinvite_at_once.xml",
        true,
        (
            "the carrier calls without an offer and ACKs late, with no re-INVITE meanwhile",
            "801 re-INVITEs at once and gets 491",
        ),
    )
    .await;
    assert!(
        phone.received_statuses().contains(&491),
        "{}",
        phone.report()
    );
    let row = only_call_log(&switch).await;
    assert_trunk_call(&row, CUSTOMER, "801", "INCOMING");
    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn a_delayed_offer_never_answered_in_the_ack_is_hung_up() {
    // The ACK carries no answer to the switch's offer: both parties get a BYE.
    let (_dir, switch, carrier, _) = carrier_calls_801(
        "trunk_call_delayed_offer_no_answer.xml",
        "uas.xml",
        false,
        (
            "the carrier is hung up by the switch",
            "801's phone is hung up by the switch",
        ),
    )
    .await;
    assert_eq!(
        carrier.received_requests(),
        vec!["BYE".to_string()],
        "{}",
        carrier.report()
    );

    let row = only_call_log(&switch).await;
    assert_eq!(row.state, "STATE_RECEIVED", "{row:#?}");
    assert_eq!(row.hungupside, "system", "{row:#?}");
    switch.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// 6. Graceful shutdown
// ---------------------------------------------------------------------------------------

#[actix_rt::test]
async fn stop_hangs_up_calls_and_writes_their_log() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), "").await;
    let sip = switch.sip_addr;
    let phone = Sipp::new("uas.xml").spawn_registered(sip, "802").await;
    let mut caller = Sipp::ext_call("uac_wait_bye.xml", sip, "801", "802").spawn();

    // Wait until the call is answered (802 in a call with a pickup time).
    wait_for_phone(
        &switch,
        "802",
        &mut caller,
        |s| s.phone == PhoneState::BusyIncoming && s.pickup_ms.is_some(),
        "the call is answered",
    )
    .await;
    // Give the caller's ACK time to arrive before the stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    switch.stop().await.expect("graceful stop");

    let callee = phone.wait().await;
    callee.assert_success("the callee got a BYE from the stopping switch");
    assert_eq!(requests(&callee), ["INVITE", "ACK", "BYE"]);
    let caller = caller.wait().await;
    caller.assert_success("the caller got a BYE from the stopping switch");

    let row = only_call_log_after_stop(dir.path()).await;
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
}

#[actix_rt::test]
async fn stop_while_ringing_refuses_the_caller_and_cancels_the_phone() {
    let dir = tempfile::tempdir().unwrap();
    let switch = start(dir.path(), "").await;
    let sip = switch.sip_addr;
    let phone = Sipp::new("uas_ring.xml").spawn_registered(sip, "802").await;
    let mut caller = Sipp::ext_call("uac_refused.xml", sip, "801", "802").spawn();
    wait_for_phone(
        &switch,
        "802",
        &mut caller,
        |s| s.phone == PhoneState::BusyIncoming,
        "802 rings",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    switch.stop().await.expect("graceful stop");

    let caller = caller.wait().await;
    caller.assert_success("the caller's INVITE gets a final answer at shutdown");
    assert_eq!(caller.final_status(), Some(503), "{}", caller.report());
    let callee = phone.wait().await;
    callee.assert_success("the ringing phone is cancelled at shutdown (CANCEL, ACK of its 487)");
    assert_eq!(requests(&callee), ["INVITE", "CANCEL", "ACK"]);

    assert_failed(&only_call_log_after_stop(dir.path()).await, "system");
}
