//! Time-based routing rules (interface 61) on calls, with SIPp phones: rules are created
//! through the admin API and apply to the next call at once.

mod common;

use std::time::{Duration, Instant};

use common::sipp::{user_line, Sipp};
use ctiswitch::Switch;
use entities::calllog;
use serde_json::json;

const CONFIG: &str = r#"
[[extensions]]
number = "801"
password = "1234"
[[extensions]]
number = "802"
password = "1234"
[[extensions]]
number = "803"
password = "1234"
"#;

async fn register(switch: &Switch, user: &str, contact: std::net::SocketAddr) {
    Sipp::new("register.xml")
        .csv(&user_line(user, "1234", Some(contact)))
        .remote(switch.sip_addr)
        .run()
        .await
        .assert_success(&format!("REGISTER {user}"));
}

async fn phone(switch: &Switch, user: &str, scenario: &str) -> common::sipp::SippProcess {
    let mut p = Sipp::new(scenario)
        .calls(1)
        .timeout(Duration::from_secs(30))
        .spawn();
    p.bound().await;
    register(switch, user, p.addr()).await;
    p
}

/// POST /api/v1/routing_rules; the created rule.
async fn rule(switch: &Switch, body: serde_json::Value) -> serde_json::Value {
    let resp = common::http()
        .post(common::url(switch, "/api/v1/routing_rules"))
        .json(&body)
        .send()
        .await
        .expect("HTTP");
    let status = resp.status().as_u16();
    let json: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(status, 201, "{json}");
    json
}

async fn delete_rule(switch: &Switch, id: &serde_json::Value) {
    let resp = common::http()
        .delete(common::url(switch, &format!("/api/v1/routing_rules/{id}")))
        .send()
        .await
        .expect("HTTP");
    assert_eq!(resp.status().as_u16(), 204);
}

fn all_day(operation: &str, parameters: &str) -> serde_json::Value {
    json!({"telnum": "802", "offon": true, "operationtype": operation, "parameters": parameters,
           "datetype": "DAY_TYPE", "begintime": "00:00:00", "endtime": "00:00:00"})
}

async fn last_row(switch: &Switch, n: usize) -> calllog::Model {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = entities::repo::calllog::recent(&switch.db, 50)
            .await
            .expect("rows");
        if rows.len() >= n || Instant::now() > until {
            return rows.into_iter().next().expect("a row");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn time_based_rules_reject_transfer_play_and_fall_back_on_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let switch = common::start(dir.path(), CONFIG).await;
    let call = |scenario: &'static str| {
        let sip = switch.sip_addr;
        async move {
            Sipp::new(scenario)
                .csv(&user_line("801", "1234", None))
                .service("802")
                .pause_ms(800)
                .remote(sip)
                .timeout(Duration::from_secs(20))
                .run()
                .await
        }
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
    let out = Sipp::new("uac_wait_bye.xml")
        .csv(&user_line("801", "1234", None))
        .service("802")
        .remote(switch.sip_addr)
        .timeout(Duration::from_secs(20))
        .run()
        .await;
    out.assert_success("answered, then BYE after the prompt");
    let secs = started.elapsed().as_secs_f64();
    assert!((1.0..8.0).contains(&secs), "the prompt lasted {secs:.1} s");
    delete_rule(&switch, &play["id"]).await;

    // ONANSWER_TRANSFER: 802 rings 2 s unanswered, then 803.
    let fallback = rule(&switch, all_day("ONANSWER_TRANSFER", "803,2")).await;
    let p802 = phone(&switch, "802", "uas_ring.xml").await;
    let p803 = phone(&switch, "803", "uas.xml").await;
    let out = Sipp::new("uac_call.xml")
        .csv(&user_line("801", "1234", None))
        .service("802")
        .pause_ms(800)
        .remote(switch.sip_addr)
        .timeout(Duration::from_secs(20))
        .run()
        .await;
    out.assert_success("802 rang out, 803 answered");
    p802.wait().await.assert_success("802 was cancelled");
    p803.wait().await.assert_success("803 answered");
    delete_rule(&switch, &fallback["id"]).await;

    // Bad rules are refused, naming the field.
    let resp = common::http()
        .post(common::url(&switch, "/api/v1/routing_rules"))
        .json(
            &json!({"telnum": "802", "operationtype": "FLY", "datetype": "DAY_TYPE",
            "begintime": "00:00:00", "endtime": "00:00:00"}),
        )
        .send()
        .await
        .expect("HTTP");
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(body["field"], "operationtype", "{body}");
    switch.stop().await.unwrap();
}
