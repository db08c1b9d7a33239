//! IVR menus end to end: a customer behind a trunk (a pjsua2 phone sending from the
//! trunk's host:port, no registration) dials hotline 1000, hears the menu (espeak-ng),
//! presses keys; the call goes to the queue of group 3003 where a pjsua2 agent answers,
//! or to an HTTP query (interface 13) whose answer is spoken.

mod common;

use std::path::Path;
use std::time::Duration;

use common::pjsua;
use common::sipp::CUSTOMER;
use ctiswitch::Switch;

const MENU: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<ivr name="test" start="main" timeout="6" retries="1">
  <menu id="main" invalid="goodbye">
    <prompt tts="For sales, press 1. For your balance, press 2."/>
    <case digits="1" next="sales"/>
    <case digits="2" next="account"/>
  </menu>
  <transfer id="sales" to="group:3003"/>
  <collect id="account" var="acct" length="6" terminator="#" invalid="goodbye" next="lookup"
           tts="Please enter your account number."/>
  <http id="lookup" url="CRM_URL?opt=kuaidi" params="in1=acct" timeout="5" var="answer"
        speak="false" next="answer" error="goodbye"/>
  <play id="answer" tts="${answer}" next="goodbye"/>
  <hangup id="goodbye"/>
</ivr>
"##;

fn config(dir: &Path, carrier_port: u16, crm: &str) -> String {
    let menu = dir.join("menu.xml");
    std::fs::write(&menu, MENU.replace("CRM_URL", crm)).unwrap();
    format!(
        r#"
[[extensions]]
number = "802"
password = "p802"
groups = ["3003"]
[[extensions]]
number = "803"
password = "p803"
groups = ["3003"]
[[groups]]
number = "3003"
name = "Sales"
strategy = "longest-idle"
ring_timeout = 10
[[trunks]]
name = "carrier"
host = "127.0.0.1:{carrier_port}"
[[access_numbers]]
number = "1000"
target = "ivr:1"
[[ivrs]]
id = 1
name = "test"
definition = "{menu}"
"#,
        menu = menu.display()
    )
}

/// A switch in `dir` with the menu (its HTTP node asking `crm`) behind hotline 1000, and
/// the port of its trunk `carrier`.
async fn start(dir: &Path, crm: &str) -> (Switch, u16) {
    let carrier_port = common::sipp::free_port();
    let switch = common::start(dir, &config(dir, carrier_port, crm)).await;
    (switch, carrier_port)
}

/// The customer behind the trunk dials the hotline, presses `dtmf` at `at` and hangs up
/// after `talk` s: the result of the `dial` scenario (`extra`: more of its arguments).
async fn customer_call(
    switch: &Switch,
    carrier_port: u16,
    dtmf: &str,
    at: &str,
    talk: &str,
    extra: &[&str],
) -> serde_json::Value {
    let port = carrier_port.to_string();
    let caller = format!("{CUSTOMER}:x");
    let mut args = vec![
        "--caller",
        &caller,
        "--no-register",
        "--sip-port",
        &port,
        "--dial",
        "1000",
        "--tone-a",
        "440",
        "--dtmf",
        dtmf,
        "--dtmf-at",
        at,
        "--hangup-after",
        talk,
        "--talk",
        talk,
        "--listen-freqs",
        "1000,523,659,784",
    ];
    args.extend_from_slice(extra);
    let r = pjsua::dial(switch.sip_addr, &args, Duration::from_secs(40)).await;
    pjsua::assert_no_errors(&r);
    r
}

/// Press 1: the menu transfers to group 3003; the customer waits with music while the
/// longest-idle registered agent (802; 803 is not registered) rings for 1.5 s, then both
/// talk (440 Hz / 1000 Hz heard across). The row: IVR and queue timings, dtmfkey "1",
/// ivrpoint "sales", business IVR_TRANSFER, accessnum 1000.
#[test]
fn a_customer_presses_1_and_reaches_an_agent_through_the_queue() {
    presses_1_and_reaches_an_agent(&[]);
}

/// The same with a delayed offer: the customer's INVITE has no SDP, so the menu's 200
/// carries the switch's offer (both codecs: the switch decodes the caller itself) and the
/// customer answers in its ACK; the key press, the queue and the agent follow as above.
#[test]
fn a_customer_without_an_sdp_offer_presses_1_and_reaches_an_agent() {
    presses_1_and_reaches_an_agent(&["--no-sdp-offer"]);
}

/// A carrier with a delayed offer answers the menu's offer (telephone-event 101) numbering
/// events 96 in its ACK, then presses 1 under 101, the number our offer gave it (RFC 3264).
/// The menu hears the key (the engine takes events under either number) and transfers to
/// the queue: the row says so.
#[test]
fn a_key_sent_under_the_number_the_switch_offered_is_heard_after_an_answer_that_renumbered() {
    ctiswitch::build_system().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (switch, carrier_port) = start(dir.path(), "http://127.0.0.1:9/x").await;
        let out = common::sipp::Sipp::carrier_call(
            "trunk_call_delayed_offer_events_96.xml",
            switch.sip_addr,
            carrier_port,
            CUSTOMER,
            "1000",
        )
        .pause_ms(4_000)
        .run()
        .await;
        out.assert_success("the carrier answers events as 96 and presses 1 under 101");
        let row = common::call_logs(&switch.db, 1).await.remove(0);
        assert_eq!(row.dtmfkey, "1", "{row:?}");
        assert_eq!(row.ivrpoint, "sales", "{row:?}");
        // Nobody of group 3003 is registered: the customer hangs up while queued.
        assert_eq!(row.business, "QUEUE_HUNGUP", "{row:?}");
        assert!(row.queue_time > 0, "{row:?}");
        switch.stop().await.unwrap();
    });
}

fn presses_1_and_reaches_an_agent(extra: &[&str]) {
    ctiswitch::build_system().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (switch, carrier_port) = start(dir.path(), "http://127.0.0.1:9/x").await;
        let agent = pjsua::answering_phone(
            switch.sip_addr,
            &[
                "--phone",
                "802:p802",
                "--tone-b",
                "1000",
                "--answer-delay",
                "1.5",
                "--talk",
                "20",
                "--listen-freqs",
                "440",
            ],
        )
        .await;
        let r = customer_call(&switch, carrier_port, "1", "2.0", "9", extra).await;
        if !extra.is_empty() {
            assert_eq!(
                r["caller"]["sdp_created"][0]["answers_an_offer"], true,
                "the customer made no offer and answered the switch's: {}",
                r["caller"]["sdp_created"]
            );
        }
        let a = agent.result(Duration::from_secs(30)).await;
        assert_eq!(r["invite_code"], 200, "{r}");
        let heard = &r["audio"]["caller"];
        // The menu speaks from the answer on (speech: no single tone dominates), for most
        // of the first two seconds.
        let timeline = heard["timeline"].as_str().unwrap_or_default().to_string();
        let speech = pjsua::untoned_blocks(&timeline, 20);
        assert!(speech >= 8, "the menu prompt is heard first: {timeline}");
        // Then the agent's 1000 Hz.
        let agent_secs = heard["1000_seconds"].as_f64().unwrap_or(0.0);
        assert!(
            agent_secs >= 3.0,
            "the customer hears the agent: {agent_secs} s: {timeline}"
        );
        let customer_secs = a["audio"]["callee"]["440_seconds"].as_f64().unwrap_or(0.0);
        assert!(
            customer_secs >= 3.0,
            "the agent hears the customer: {customer_secs} s: {a}"
        );
        let row = pjsua::caller_row(&switch.db, &r).await;
        assert_eq!(row.business, "IVR_TRANSFER", "{row:?}");
        assert_eq!(row.dtmfkey, "1", "{row:?}");
        assert_eq!(row.ivrpoint, "sales", "{row:?}");
        assert_eq!(row.accessnum, "1000", "{row:?}");
        assert_eq!(row.callee, "802", "{row:?}");
        assert_eq!(row.caller, CUSTOMER, "{row:?}");
        assert_eq!(row.state, "STATE_RECEIVED", "{row:?}");
        assert!(
            row.ivr_anwer_time >= row.begin_time && row.ivr_anwer_time > 0,
            "{row:?}"
        );
        assert!((1..=4).contains(&row.ivr_anwer_duration), "{row:?}");
        assert!(row.queue_time >= row.ivr_anwer_time, "{row:?}");
        assert!((1..=3).contains(&row.queue_duration), "rang 1.5 s: {row:?}");
        assert!(
            row.ring_time >= row.queue_time && row.pickup_time > row.ring_time,
            "{row:?}"
        );
        switch.stop().await.unwrap();
    });
}

/// Press 2, key an account number: the IVR asks the CRM (interface 13) with the digits,
/// caller, callee and call id, and speaks the plain-text answer.
#[test]
fn the_http_query_nodes_answer_is_spoken_to_the_caller() {
    ctiswitch::build_system().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (crm, asked) = common::fake_web_server(
            "text/html;charset=UTF-8",
            &["Your balance is forty two yuan and fifty cents."],
        )
        .await;
        let (switch, carrier_port) = start(dir.path(), &format!("http://{crm}/cti")).await;
        let r = customer_call(&switch, carrier_port, "2,123456#", "1.5,4.5", "14", &[]).await;
        let call_id = pjsua::caller_call_id(&r).unwrap_or_default().to_string();
        let request = asked.lock().unwrap().first().cloned().unwrap_or_default();
        let expected = format!(
            "GET /cti?opt=kuaidi&in1=123456&caller=0612345678&callee=1000&id={}",
            call_id
        );
        assert!(request.starts_with(&expected), "{request}\n  vs {expected}");
        // The keys go out from 4.5 s (7 of them, ~0.2 s each); the account prompt is over
        // by then, so the sound after 5 s is the CRM's answer, spoken (about 3 s).
        let rms: Vec<i64> = r["audio"]["caller"]["rms_timeline"]
            .as_array()
            .map(|v| v.iter().filter_map(|x| x.as_i64()).collect())
            .unwrap_or_default();
        let loud = rms.iter().skip(50).filter(|v| **v > 300).count();
        assert!(
            loud >= 20,
            "the answer is spoken (2 s+ of sound after the keys): {rms:?}"
        );
        let row = pjsua::caller_row(&switch.db, &r).await;
        assert_eq!(row.dtmfkey, "2123456#", "{row:?}");
        assert_eq!(row.business, "IVR_INCOMING", "{row:?}");
        switch.stop().await.unwrap();
    });
}
