//! Interfaces 38 (blacklist) and 39 (VIP list) over HTTP on a real switch: every `opt`,
//! URL-encoded JSON as the manual prints it, POST forms, `400`s, and the soft parameter
//! `blacklist.forbit.duration`.

mod common;

use common::percent_encode as encode;
use ctiswitch::Switch;
use serde_json::{json, Value};

const HOUR_MS: i64 = 3_600_000;

/// `yyyy-MM-dd HH:mm:ss`.
fn is_manual_datetime(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

/// GET `/bridge/jsoncfg?opt=<opt>&json=<percent-encoded json>`.
async fn jsoncfg(switch: &Switch, opt: &str, json: &str) -> (u16, String) {
    let encoded = encode(json);
    common::jsoncfg(switch, &format!("opt={opt}&json={encoded}")).await
}

/// POST an `application/x-www-form-urlencoded` body to `/bridge/jsoncfg<query>`.
async fn post_form(switch: &Switch, query: &str, body: &str) -> (u16, String) {
    common::post_form(switch, &format!("/bridge/jsoncfg{query}"), body).await
}

/// A query answer: status 200, `application/json;charset=UTF-8`, parsed.
async fn query(switch: &Switch, opt: &str, condition: &str) -> Value {
    let encoded = encode(condition);
    let resp = common::http()
        .get(common::url(
            switch,
            &format!("/bridge/jsoncfg?opt={opt}&json={encoded}"),
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 200, "{opt} {condition}");
    let content_type = common::content_type(&resp);
    assert_eq!(
        content_type.to_ascii_lowercase().replace(' ', ""),
        "application/json;charset=utf-8"
    );
    let text = resp.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{opt}: {e}: {text}"))
}

fn ok() -> (u16, String) {
    (200, "200".into())
}

fn bad() -> (u16, String) {
    (400, "400".into())
}

async fn vip_level(switch: &Switch, number: &str) -> u32 {
    entities::repo::vip::level(&switch.db, number)
        .await
        .unwrap()
}

#[actix_rt::test]
async fn blacklist_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let switch = common::start(dir.path(), "").await;

    // 38.a, the manual's own URL form: a bare number. Again: still 200, still one entry.
    for _ in 0..2 {
        assert_eq!(
            common::jsoncfg(&switch, "opt=BLACK_LIST_ADD&json=13500000001").await,
            ok()
        );
    }
    // A POST form, with and without opt in the query string; a number sent as a JSON string.
    for (query, form) in [
        ("", "opt=BLACK_LIST_ADD&json=13500000002"),
        ("?opt=BLACK_LIST_ADD", "json=%2B8613500000003"),
    ] {
        assert_eq!(
            post_form(&switch, query, form).await,
            ok(),
            "{query} {form}"
        );
    }
    assert_eq!(jsoncfg(&switch, "BLACK_LIST_ADD", "\"*67#\"").await, ok());
    assert!(
        entities::repo::blacklist::is_listed_now(&switch.db, "+8613500000003")
            .await
            .unwrap()
    );

    // 38.c, the manual's example URL verbatim (percent-encoded braces and quotes).
    assert_eq!(
        common::get(
            &switch,
            "/bridge/jsoncfg?opt=BLACK_LIST_QUERY&json=%7B%22first%22:0,%22maxResults%22:10,%22telnum%22:%2213500000001%22%7D"
        )
        .await,
        (200, r#"["13500000001"]"#.into())
    );
    let all = json!(["13500000001", "13500000002", "+8613500000003", "*67#"]);
    for (condition, want) in [
        // The manual's printed condition, lacking the quote before telnum.
        (
            r#"{"first":0,"maxResults":10,telnum":"13500000002"}"#,
            json!(["13500000002"]),
        ),
        // Everything, then pages by row offset.
        (r#"{"first":0,"maxResults":10}"#, all.clone()),
        ("{}", all.clone()),
        (
            r#"{"first":1,"maxResults":2}"#,
            json!(["13500000002", "+8613500000003"]),
        ),
        (
            r#"{"first":"3","maxResults":"10","telnum":""}"#,
            json!(["*67#"]),
        ),
        (
            r#"{"first":0,"maxResults":10,"telnum":"13999999999"}"#,
            json!([]),
        ),
    ] {
        assert_eq!(
            query(&switch, "BLACK_LIST_QUERY", condition).await,
            want,
            "{condition}"
        );
    }
    // The query as a POST form.
    let (status, body) = post_form(
        &switch,
        "",
        "opt=BLACK_LIST_QUERY&json=%7B%22first%22%3A0%2C%22maxResults%22%3A1%7D",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"["13500000001"]"#));

    // 38.b: remove, and remove again (idempotent).
    for _ in 0..2 {
        assert_eq!(
            common::jsoncfg(&switch, "opt=BLACK_LIST_RMV&json=13500000001").await,
            ok()
        );
    }
    assert_eq!(
        post_form(&switch, "", "opt=BLACK_LIST_RMV&json=13500000002").await,
        ok()
    );
    assert_eq!(
        query(&switch, "BLACK_LIST_QUERY", "{}").await,
        json!(["+8613500000003", "*67#"])
    );

    // 400: missing, blank or bad json; bad numbers; malformed conditions.
    for opt in ["BLACK_LIST_ADD", "BLACK_LIST_RMV", "BLACK_LIST_QUERY"] {
        for query in [format!("opt={opt}"), format!("opt={opt}&json=")] {
            assert_eq!(common::jsoncfg(&switch, &query).await, bad(), "{query}");
        }
        assert_eq!(jsoncfg(&switch, opt, "   ").await, bad(), "{opt}");
    }
    for number in ["abc", "135-0000", "1 2", &"1".repeat(33), "\"135", "{}"] {
        assert_eq!(
            jsoncfg(&switch, "BLACK_LIST_ADD", number).await,
            bad(),
            "{number}"
        );
        assert_eq!(
            jsoncfg(&switch, "BLACK_LIST_RMV", number).await,
            bad(),
            "{number}"
        );
    }
    for condition in [
        "not json",
        "[]",
        "135",
        r#"{"first":-1,"maxResults":10}"#,
        r#"{"first":0,"maxResults":"ten"}"#,
        r#"{"first":0,"maxResults":10,"telnum":"13x"}"#,
        r#"{"first":0,"maxResults":10,"telnum":true}"#,
        r#"{"first":0,"maxResults":10,"telnum":"1""#,
    ] {
        assert_eq!(
            jsoncfg(&switch, "BLACK_LIST_QUERY", condition).await,
            bad(),
            "{condition}"
        );
    }
    // Nothing was added by the failures.
    assert_eq!(
        query(&switch, "BLACK_LIST_QUERY", "{}").await,
        json!(["+8613500000003", "*67#"])
    );

    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn blacklist_entries_expire_with_the_soft_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let switch = common::start(dir.path(), "").await;
    let db = &switch.db;
    for number in ["13600000001", "13600000002"] {
        assert_eq!(jsoncfg(&switch, "BLACK_LIST_ADD", number).await, ok());
    }
    // Pretend the first was added 25 hours ago.
    let now = entities::db::now_ms();
    entities::repo::blacklist::add_at(db, "13600000001", now - 25 * HOUR_MS)
        .await
        .unwrap();
    let both = json!(["13600000001", "13600000002"]);
    assert_eq!(query(&switch, "BLACK_LIST_QUERY", "{}").await, both);

    // The manual's soft parameter, set in the settings table under its own key.
    entities::repo::settings::set(db, "blacklist.forbit.duration", "24")
        .await
        .unwrap();
    assert_eq!(
        entities::repo::blacklist::forbid_hours(db).await.unwrap(),
        Some(24)
    );
    assert_eq!(
        query(&switch, "BLACK_LIST_QUERY", "{}").await,
        json!(["13600000002"])
    );
    assert_eq!(
        query(&switch, "BLACK_LIST_QUERY", r#"{"telnum":"13600000001"}"#).await,
        json!([])
    );
    assert!(!entities::repo::blacklist::is_listed_now(db, "13600000001")
        .await
        .unwrap());
    assert!(entities::repo::blacklist::is_listed_now(db, "13600000002")
        .await
        .unwrap());
    // A second add refreshes the add time: blocked again.
    assert_eq!(
        jsoncfg(&switch, "BLACK_LIST_ADD", "13600000001").await,
        ok()
    );
    assert_eq!(query(&switch, "BLACK_LIST_QUERY", "{}").await, both);
    // A longer duration, then none (0 = never expire).
    entities::repo::blacklist::add_at(db, "13600000001", now - 25 * HOUR_MS)
        .await
        .unwrap();
    for (hours, want) in [
        ("48", both.clone()),
        ("1", json!(["13600000002"])),
        ("0", both),
    ] {
        entities::repo::settings::set(db, "blacklist.forbit.duration", hours)
            .await
            .unwrap();
        assert_eq!(
            query(&switch, "BLACK_LIST_QUERY", "{}").await,
            want,
            "{hours} h"
        );
    }

    switch.stop().await.unwrap();
}

#[actix_rt::test]
async fn vip_list_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let switch = common::start(dir.path(), "").await;

    // 39.a, the manual's example URL (its raw space percent-encoded, as clients send it).
    assert_eq!(
        common::jsoncfg(
            &switch,
            "opt=VIP_LIST_ADD&json=%7B%22telnum%22:%2213500000001%22,%22viplevel%22:5,%22des%22:%22vipcustomer%22,%22createtime%22:%222018-09-11%2015:28:02%22%7D"
        )
        .await,
        ok()
    );
    assert_eq!(vip_level(&switch, "13500000001").await, 5);
    // viplevel as a numeric string; no des, no createtime; a POST form with UTF-8.
    assert_eq!(
        jsoncfg(
            &switch,
            "VIP_LIST_ADD",
            r#"{"telnum":"13500000002","viplevel":"2"}"#
        )
        .await,
        ok()
    );
    let form_json = encode(r#"{"telnum":"13500000003","viplevel":1,"des":"老客户"}"#);
    assert_eq!(
        post_form(&switch, "", &format!("opt=VIP_LIST_ADD&json={form_json}")).await,
        ok()
    );

    // 39.c: the example condition verbatim, then everything.
    let first = json!({
        "telnum": "13500000001",
        "viplevel": 5,
        "des": "vipcustomer",
        "createtime": "2018-09-11 15:28:02"
    });
    assert_eq!(
        common::get(
            &switch,
            "/bridge/jsoncfg?opt=VIP_LIST_QUERY&json=%7B%22first%22:0,%22maxResults%22:10,%22telnum%22:%2213500000001%22%7D"
        )
        .await,
        (
            200,
            r#"[{"telnum":"13500000001","viplevel":5,"des":"vipcustomer","createtime":"2018-09-11 15:28:02"}]"#
                .into()
        )
    );
    let all = query(&switch, "VIP_LIST_QUERY", r#"{"first":0,"maxResults":10}"#).await;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0], first);
    assert_eq!(all[1]["telnum"], "13500000002");
    assert_eq!(all[1]["viplevel"], 2);
    assert_eq!(all[1]["des"], "");
    // No createtime given: the switch's own add time, in the same format.
    let created = all[1]["createtime"].as_str().unwrap();
    assert!(is_manual_datetime(created), "{created}");
    assert_eq!(all[2]["des"], "老客户");
    // The misprinted condition, paging, and the query as a POST form.
    assert_eq!(
        query(
            &switch,
            "VIP_LIST_QUERY",
            r#"{"first":0,"maxResults":10,telnum":"13500000003"}"#
        )
        .await[0]["viplevel"],
        1
    );
    let page = query(&switch, "VIP_LIST_QUERY", r#"{"first":1,"maxResults":1}"#).await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["telnum"], "13500000002");
    let (status, body) = post_form(
        &switch,
        "",
        "opt=VIP_LIST_QUERY&json=%7B%22first%22%3A2%2C%22maxResults%22%3A10%7D",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()[0]["telnum"],
        "13500000003"
    );

    // Adding a listed number replaces its entry.
    assert_eq!(
        jsoncfg(
            &switch,
            "VIP_LIST_ADD",
            r#"{"telnum":"13500000001","viplevel":9,"des":"upgraded","createtime":"2019-01-01 08:00:00"}"#
        )
        .await,
        ok()
    );
    assert_eq!(
        query(&switch, "VIP_LIST_QUERY", r#"{"telnum":"13500000001"}"#).await,
        json!([{"telnum":"13500000001","viplevel":9,"des":"upgraded","createtime":"2019-01-01 08:00:00"}])
    );
    assert_eq!(vip_level(&switch, "13500000001").await, 9);

    // 39.b: remove, and remove again (idempotent); the level is back to 0.
    for _ in 0..2 {
        assert_eq!(
            common::jsoncfg(&switch, "opt=VIP_LIST_RMV&json=13500000001").await,
            ok()
        );
    }
    assert_eq!(
        post_form(&switch, "", "opt=VIP_LIST_RMV&json=13500000002").await,
        ok()
    );
    assert_eq!(vip_level(&switch, "13500000001").await, 0);
    let left = query(&switch, "VIP_LIST_QUERY", "{}").await;
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["telnum"], "13500000003");

    // 400s.
    for opt in ["VIP_LIST_ADD", "VIP_LIST_RMV", "VIP_LIST_QUERY"] {
        assert_eq!(
            common::jsoncfg(&switch, &format!("opt={opt}")).await,
            bad(),
            "{opt}"
        );
        assert_eq!(jsoncfg(&switch, opt, "").await, bad(), "{opt}");
    }
    for entry in [
        "13500000009",
        "not json",
        "[]",
        r#"{"viplevel":5}"#,
        r#"{"telnum":"13500000009"}"#,
        r#"{"telnum":"13500000009","viplevel":101}"#,
        r#"{"telnum":"13500000009","viplevel":-1}"#,
        r#"{"telnum":"13500000009","viplevel":"high"}"#,
        r#"{"telnum":"13500000009","viplevel":2.5}"#,
        r#"{"telnum":"135x","viplevel":5}"#,
        r#"{"telnum":"13500000009","viplevel":5,"createtime":"yesterday"}"#,
        r#"{"telnum":"13500000009","viplevel":5,"des":["x"]}"#,
    ] {
        assert_eq!(
            jsoncfg(&switch, "VIP_LIST_ADD", entry).await,
            bad(),
            "{entry}"
        );
    }
    assert_eq!(jsoncfg(&switch, "VIP_LIST_RMV", "13x").await, bad());
    for condition in ["x", r#"{"first":-5}"#, r#"{"telnum":"abc"}"#] {
        assert_eq!(
            jsoncfg(&switch, "VIP_LIST_QUERY", condition).await,
            bad(),
            "{condition}"
        );
    }
    assert_eq!(vip_level(&switch, "13500000009").await, 0);

    // The blacklist and the VIP list are separate.
    assert_eq!(query(&switch, "BLACK_LIST_QUERY", "{}").await, json!([]));

    switch.stop().await.unwrap();
}
