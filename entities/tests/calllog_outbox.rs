//! Call logs (batch insert, look-up, JSON names), the callback outbox and settings.

mod common;

use entities::calllog;
use entities::repo::{calllog as logs, outbox, settings, NewCallback};
use entities::Error;
use sea_orm::ActiveValue::Set;

/// Every key of the spec's call-log dictionary (Part C) that the table stores.
const SPEC_FIELDS: &[&str] = &[
    "id",
    "caller",
    "callee",
    "channel",
    "beginTime",
    "duration",
    "state",
    "callType",
    "estimate",
    "callid",
    "calleruid",
    "calleeuid",
    "record",
    "recordVoice",
    "cname",
    "servicetype",
    "manustate",
    "question",
    "clickcallid",
    "clicktoken",
    "fxonum",
    "accessnum",
    "productid",
    "dtmfkey",
    "ivrpoint",
    "callerworknum",
    "calleeworknum",
    "business",
    "prerecord",
    "robotrecord",
    "earlymedia",
    "ivrvoicemail",
    "ivrAnwerTime",
    "ivrAnwerDuration",
    "queueTime",
    "queueDuration",
    "ringTime",
    "ringDuration",
    "pickupTime",
    "offwork",
    "standby",
    "writetime",
    "holdtime",
    "forward",
    "stttxt",
    "hungupside",
    "callervideo",
    "calleevideo",
    "peercallid",
];

fn full_row() -> calllog::ActiveModel {
    calllog::ActiveModel {
        caller: Set("806".into()),
        callee: Set("1000".into()),
        channel: Set("192.168.3.82:5062".into()),
        begin_time: Set(1_691_059_681_306),
        duration: Set(41),
        state: Set("STATE_RECEIVED".into()),
        call_type: Set("LOCAL_CALL".into()),
        estimate: Set("".into()),
        callid: Set("105652437424950-326581766720130@192.168.3.9".into()),
        record: Set("客户要求回电 — a long note ".repeat(40)),
        record_voice: Set("/data/rec/2023/08/03/1.wav".into()),
        cname: Set("张三".into()),
        servicetype: Set("默认".into()),
        clickcallid: Set("0123456789".into()),
        accessnum: Set("1000".into()),
        business: Set("IVR_TRANSFER".into()),
        ivr_anwer_time: Set(1_691_059_680_144),
        ivr_anwer_duration: Set(1),
        queue_time: Set(1_691_059_680_500),
        queue_duration: Set(2),
        ring_time: Set(1_691_059_681_000),
        ring_duration: Set(3),
        pickup_time: Set(1_691_059_681_308),
        offwork: Set(true),
        standby: Set(120),
        writetime: Set(15),
        holdtime: Set(2),
        forward: Set("803".into()),
        hungupside: Set("caller".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn calllog_batch_round_trip() {
    on_each_db!(|db, kind| {
        // A sparse row (only a few columns set) and a full one, in one batch.
        let sparse = calllog::ActiveModel {
            caller: Set("801".into()),
            callee: Set("802".into()),
            callid: Set("abc@10.0.0.1".into()),
            begin_time: Set(1_459_160_867_375),
            state: Set("STATE_FAILED".into()),
            ..Default::default()
        };
        let written = logs::insert_batch(db, vec![sparse, full_row()])
            .await
            .unwrap();
        assert_eq!(written, 2);
        let stored = [
            logs::by_callid(db, "abc@10.0.0.1").await.unwrap().unwrap(),
            logs::by_callid(db, "105652437424950-326581766720130@192.168.3.9")
                .await
                .unwrap()
                .unwrap(),
        ];
        assert!(
            stored[0].id > 0 && stored[1].id > stored[0].id,
            "[{kind}] ids in order"
        );
        assert_eq!(stored[0].record, "", "[{kind}] unset text is empty");
        assert_eq!(stored[0].ivr_anwer_time, 0);
        assert!(!stored[0].offwork);

        let found = logs::by_callid(db, "105652437424950-326581766720130@192.168.3.9")
            .await
            .unwrap()
            .expect("by callid");
        assert_eq!(found, stored[1], "[{kind}] round trip");
        assert_eq!(found.cname, "张三");
        assert!(found.record.len() > 1024, "[{kind}] long notes fit");
        // The %40 form of the manual's examples, and the click-to-call id, find it too.
        for callid in [
            "105652437424950-326581766720130%40192.168.3.9",
            "0123456789",
        ] {
            assert_eq!(
                logs::by_callid(db, callid).await.unwrap().map(|m| m.id),
                Some(found.id),
                "[{kind}] {callid}"
            );
        }
        assert!(logs::by_callid(db, "nope").await.unwrap().is_none());
        assert!(logs::by_callid(db, "").await.unwrap().is_none());
        assert_eq!(
            logs::get(db, stored[0].id).await.unwrap().unwrap(),
            stored[0]
        );

        // JSON: exactly the spec's names, camelCase included, all present.
        let json = serde_json::to_value(&found).unwrap();
        let obj = json.as_object().unwrap();
        for key in SPEC_FIELDS {
            assert!(obj.contains_key(*key), "[{kind}] missing {key}");
        }
        assert_eq!(
            obj.len(),
            SPEC_FIELDS.len(),
            "[{kind}] no extra keys: {obj:?}"
        );
        assert_eq!(json["beginTime"], 1_691_059_681_306_i64);
        assert_eq!(json["callType"], "LOCAL_CALL");
        assert_eq!(json["recordVoice"], "/data/rec/2023/08/03/1.wav");
        assert_eq!(json["ivrAnwerTime"], 1_691_059_680_144_i64);
        assert_eq!(json["ivrAnwerDuration"], 1);
        assert_eq!(json["queueTime"], 1_691_059_680_500_i64);
        assert_eq!(json["ringDuration"], 3);
        assert_eq!(json["pickupTime"], 1_691_059_681_308_i64);
        assert_eq!(json["offwork"], true);
        assert_eq!(json["estimate"], "");
        // And back.
        let back: calllog::Model = serde_json::from_value(json).unwrap();
        assert_eq!(back, found);

        assert_eq!(logs::insert_batch(db, vec![]).await.unwrap(), 0);
    });
}

#[tokio::test]
async fn calllog_batch_larger_than_one_statement() {
    use sea_orm::{EntityTrait, PaginatorTrait};
    on_each_db!(|db, kind| {
        // Far more rows than one multi-row INSERT takes: written in many statements.
        let rows: Vec<calllog::ActiveModel> = (0..2_500)
            .map(|i| calllog::ActiveModel {
                callid: Set(format!("bulk-{i}@host")),
                ..full_row()
            })
            .collect();
        assert_eq!(
            logs::insert_batch(db, rows).await.unwrap(),
            2_500,
            "[{kind}]"
        );
        assert_eq!(
            calllog::Entity::find().count(db).await.unwrap(),
            2_500,
            "[{kind}]"
        );
        let last = logs::by_callid(db, "bulk-2499@host")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(last.cname, "张三", "[{kind}] every column written");
    });
}

#[tokio::test]
async fn calllog_camel_case_columns_in_sql() {
    use sea_orm::{ConnectionTrait, Statement};
    on_each_db!(|db, kind| {
        logs::insert_batch(db, vec![full_row()]).await.unwrap();
        let backend = db.get_database_backend();
        let q = |c: &str| match kind {
            "mysql" => format!("`{c}`"),
            _ => format!("\"{c}\""),
        };
        let sql = format!(
            "SELECT {}, {} FROM calllog",
            q("beginTime"),
            q("ivrAnwerTime")
        );
        let row = db
            .query_one_raw(Statement::from_string(backend, sql))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.try_get::<i64>("", "beginTime").unwrap(),
            1_691_059_681_306
        );
        assert_eq!(
            row.try_get::<i64>("", "ivrAnwerTime").unwrap(),
            1_691_059_680_144
        );
    });
}

fn cb(kind: &str) -> NewCallback {
    NewCallback {
        kind: kind.into(),
        url: "http://crm.local/push".into(),
        method: "POST".into(),
        body: r#"{"client_ip":"127.0.0.1","datas":[]}"#.into(),
        content_type: "application/json;charset=UTF-8".into(),
    }
}

#[tokio::test]
async fn outbox_lifecycle() {
    on_each_db!(|db, kind| {
        let now = entities::db::now_ms();
        let a = outbox::enqueue(db, cb("call_log_push")).await.unwrap();
        let b = outbox::enqueue(db, cb("hangup")).await.unwrap();
        let later = outbox::enqueue_at(db, cb("screen_pop"), now + 60_000)
            .await
            .unwrap();
        assert_eq!(a.attempts, 0);
        assert_eq!(a.delivered_at, None);
        assert_eq!(outbox::pending_count(db).await.unwrap(), 3);

        let due = outbox::due(db, now + 1_000, 10).await.unwrap();
        assert_eq!(
            due.iter().map(|m| m.id).collect::<Vec<_>>(),
            [a.id, b.id],
            "[{kind}] only what is due, oldest first"
        );
        assert_eq!(outbox::due(db, now + 1_000, 1).await.unwrap().len(), 1);

        // a fails: retried later, error kept, attempt counted.
        outbox::reschedule(db, a.id, now + 30_000, "connection refused")
            .await
            .unwrap();
        let a2 = outbox::get(db, a.id).await.unwrap().unwrap();
        assert_eq!(a2.attempts, 1);
        assert_eq!(a2.next_attempt_at, now + 30_000);
        assert_eq!(a2.last_error.as_deref(), Some("connection refused"));
        // b is delivered.
        outbox::mark_delivered(db, b.id).await.unwrap();
        let b2 = outbox::get(db, b.id).await.unwrap().unwrap();
        assert!(b2.delivered_at.is_some());
        assert_eq!(b2.attempts, 1);

        assert!(outbox::due(db, now + 1_000, 10).await.unwrap().is_empty());
        let due = outbox::due(db, now + 60_000, 10).await.unwrap();
        assert_eq!(
            due.iter().map(|m| m.id).collect::<Vec<_>>(),
            [a.id, later.id],
            "[{kind}]"
        );
        assert_eq!(outbox::pending_count(db).await.unwrap(), 2);

        assert!(matches!(
            outbox::mark_delivered(db, 99_999).await,
            Err(Error::NotFound)
        ));
        assert!(matches!(
            outbox::reschedule(db, 99_999, 0, "x").await,
            Err(Error::NotFound)
        ));
        let mut bad = cb("x");
        bad.method = "PUT".into();
        assert!(matches!(
            outbox::enqueue(db, bad).await,
            Err(Error::Invalid { ref field, .. }) if field == "method"
        ));

        assert_eq!(
            outbox::purge_delivered(db, entities::db::now_ms() + 1)
                .await
                .unwrap(),
            1
        );
        assert!(outbox::get(db, b.id).await.unwrap().is_none());
    });
}

/// The soft parameter the settings test uses.
const FORBID: &str = "blacklist.forbit.duration";

async fn forbid_setting(db: &sea_orm::DatabaseConnection) -> Option<String> {
    settings::get(db, FORBID).await.unwrap()
}

#[tokio::test]
async fn settings_get_set() {
    on_each_db!(|db, kind| {
        assert_eq!(forbid_setting(db).await, None);
        settings::set(db, FORBID, "3600").await.unwrap();
        assert_eq!(forbid_setting(db).await.as_deref(), Some("3600"));
        settings::set(db, FORBID, "60").await.unwrap();
        // Same value again (MySQL reports 0 affected rows: must still be fine).
        settings::set(db, FORBID, "60").await.unwrap();
        assert_eq!(forbid_setting(db).await.as_deref(), Some("60"), "[{kind}]");
        settings::set(db, "tts.engine", "").await.unwrap();
        assert_eq!(settings::all(db).await.unwrap().len(), 2);
        settings::delete(db, "tts.engine").await.unwrap();
        assert!(matches!(
            settings::delete(db, "tts.engine").await,
            Err(Error::NotFound)
        ));
        assert!(matches!(
            settings::set(db, "", "x").await,
            Err(Error::Invalid { .. })
        ));
    });
}

#[tokio::test]
async fn concurrent_writers_do_not_fail() {
    use entities::repo::{extensions, ExtensionInput};
    on_each_db!(|db, kind| {
        // Several writers at once (pooled SQLite connections in WAL mode included): write
        // transactions wait for each other instead of failing with "database is locked".
        let mut tasks = Vec::new();
        for i in 0..8 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                for j in 0..5 {
                    let row = calllog::ActiveModel {
                        callid: Set(format!("c{i}-{j}@host")),
                        ..Default::default()
                    };
                    logs::insert_batch(&db, vec![row.clone(), row])
                        .await
                        .unwrap();
                    outbox::enqueue(&db, cb("hangup")).await.unwrap();
                }
                extensions::create(
                    &db,
                    ExtensionInput {
                        number: format!("90{i}"),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(outbox::pending_count(db).await.unwrap(), 40, "[{kind}]");
        assert_eq!(extensions::list(db).await.unwrap().len(), 8, "[{kind}]");
        assert!(logs::by_callid(db, "c7-4@host").await.unwrap().is_some());
    });
}
