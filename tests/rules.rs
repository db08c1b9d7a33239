//! Time-based routing rules (interface 61) on calls, with SIPp phones: rules are created
//! through the admin API and apply to the next call at once.

mod common;

use std::time::{Duration, Instant};

use actors::event_hub::PhoneState;
use common::sipp::{extensions, Sipp, SippProcess};
use ctiswitch::Switch;
use entities::calllog;
use reqwest::Method;
use serde_json::{json, Value};

/// A phone (SIPp `scenario`, one call) registered as `user`.
async fn phone(switch: &Switch, user: &str, scenario: &str) -> SippProcess {
    Sipp::new(scenario)
        .calls(1)
        .timeout(Duration::from_secs(30))
        .spawn_registered(switch.sip_addr, user)
        .await
}

/// POST /api/v1/routing_rules; the created rule.
async fn rule(switch: &Switch, body: Value) -> Value {
    let (status, json) =
        common::api(switch, Method::POST, "/api/v1/routing_rules", Some(&body)).await;
    assert_eq!(status, 201, "{json}");
    json
}

async fn delete_rule(switch: &Switch, id: &Value) {
    let path = format!("/api/v1/routing_rules/{id}");
    assert_eq!(
        common::api(switch, Method::DELETE, &path, None).await.0,
        204
    );
}

fn all_day(operation: &str, parameters: &str) -> Value {
    json!({"telnum": "802", "offon": true, "operationtype": operation, "parameters": parameters,
           "datetype": "DAY_TYPE", "begintime": "00:00:00", "endtime": "00:00:00"})
}

/// The newest call-log row, once there are `n`.
async fn last_row(switch: &Switch, n: usize) -> calllog::Model {
    common::call_logs(&switch.db, n).await.pop().expect("a row")
}

#[actix_rt::test]
async fn time_based_rules_reject_transfer_play_and_fall_back_on_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let switch = common::start(dir.path(), &extensions(&["801", "802", "803"])).await;
    let sip = switch.sip_addr;
    // 801 calls 802 (talking 800 ms where the scenario talks).
    let call = |scenario: &str| {
        Sipp::ext_call(scenario, sip, "801", "802")
            .pause_ms(800)
            .timeout(Duration::from_secs(20))
            .run()
    };

    // A rule that is not in force (a past day) changes nothing.
    let past = rule(
        &switch,
        json!({"telnum": "802", "operationtype": "BUSY_AND_REJECT",
        "datetype": "SPECIFIED_DAY", "begintime": "2020-01-01 00:00:00",
        "endtime": "2020-01-02 00:00:00"}),
    )
    .await;
    let p802 = phone(&switch, "802", "uas.xml").await;
    call("uac_call.xml")
        .await
        .assert_success("no rule in force: 802 answers");
    p802.wait().await.assert_success("802 answered");
    delete_rule(&switch, &past["id"]).await;

    // BUSY_AND_REJECT all day: 486.
    let busy = rule(&switch, all_day("BUSY_AND_REJECT", "")).await;
    let out = call("uac_refused.xml").await;
    assert_eq!(out.final_status(), Some(486), "{}", out.report());
    delete_rule(&switch, &busy["id"]).await;

    // TRANSFER_CALL to 803.
    let transfer = rule(&switch, all_day("TRANSFER_CALL", "803")).await;
    let p803 = phone(&switch, "803", "uas.xml").await;
    call("uac_call.xml")
        .await
        .assert_success("transferred to 803");
    p803.wait().await.assert_success("803 answered");
    assert_eq!(last_row(&switch, 3).await.callee, "803");
    delete_rule(&switch, &transfer["id"]).await;

    // PLAY_AND_HANGUP: answered, a spoken prompt, then the switch's BYE.
    let play = rule(
        &switch,
        all_day("PLAY_AND_HANGUP", "tts:We are closed. Goodbye."),
    )
    .await;
    let started = Instant::now();
    let out = call("uac_wait_bye.xml").await;
    out.assert_success("answered, then BYE after the prompt");
    let secs = started.elapsed().as_secs_f64();
    assert!((1.0..8.0).contains(&secs), "the prompt lasted {secs:.1} s");
    delete_rule(&switch, &play["id"]).await;

    // ONANSWER_TRANSFER: 802 rings 2 s unanswered, then 803.
    let fallback = rule(&switch, all_day("ONANSWER_TRANSFER", "803,2")).await;
    let p802 = phone(&switch, "802", "uas_ring.xml").await;
    let p803 = phone(&switch, "803", "uas.xml").await;
    let out = call("uac_call.xml").await;
    out.assert_success("802 rang out, 803 answered");
    p802.wait().await.assert_success("802 was cancelled");
    p803.wait().await.assert_success("803 answered");
    // The phone that rang out is free again, not left looking engaged.
    for ext in ["802", "803"] {
        let until = Instant::now() + Duration::from_secs(3);
        let phone = loop {
            let phone = common::extension_state(&switch, ext).await.phone;
            let free = matches!(phone, PhoneState::Idle | PhoneState::Offline);
            if free || Instant::now() >= until {
                break phone;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            matches!(phone, PhoneState::Idle | PhoneState::Offline),
            "{ext} after the no-answer fallback: {phone:?}"
        );
    }
    delete_rule(&switch, &fallback["id"]).await;

    // Bad rules are refused, naming the field.
    let fly = json!({"telnum": "802", "operationtype": "FLY", "datetype": "DAY_TYPE",
        "begintime": "00:00:00", "endtime": "00:00:00"});
    let (status, body) =
        common::api(&switch, Method::POST, "/api/v1/routing_rules", Some(&fly)).await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "operationtype", "{body}");
    switch.stop().await.unwrap();
}

/// ONANSWER_TRANSFER to a phone that does not answer either: the second phone gets the
/// switch's ring timeout too (`[sip] ring_timeout = 3`), and the caller a 408.
#[actix_rt::test]
async fn a_no_answer_fallback_target_rings_only_for_the_ring_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[sip]\nring_timeout = 3\n{}",
        extensions(&["801", "802", "803"])
    );
    let switch = common::start(dir.path(), &config).await;
    let fallback = rule(&switch, all_day("ONANSWER_TRANSFER", "803,1")).await;
    let p802 = phone(&switch, "802", "uas_ring.xml").await;
    let p803 = phone(&switch, "803", "uas_ring.xml").await;
    let started = Instant::now();
    let out = Sipp::ext_call("uac_refused.xml", switch.sip_addr, "801", "802")
        .timeout(Duration::from_secs(15))
        .run()
        .await;
    assert_eq!(out.final_status(), Some(408), "{}", out.report());
    let secs = started.elapsed().as_secs_f64();
    assert!(
        (3.5..8.0).contains(&secs),
        "1 s on 802, then 3 s on 803: {secs:.1} s"
    );
    p802.wait().await.assert_success("802 was cancelled");
    p803.wait().await.assert_success("803 was cancelled");
    delete_rule(&switch, &fallback["id"]).await;
    switch.stop().await.unwrap();
}
