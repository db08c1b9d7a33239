//! The blacklist (interface 38) and the VIP list (interface 39) on every database: add,
//! remove, query and paging, expiry by `blacklist.forbit.duration` with a fake clock, VIP
//! upsert and level.

mod common;

use entities::repo::{blacklist, settings, vip, VipInput};
use entities::Error;

const HOUR: i64 = 3_600_000;

fn telnums(rows: &[entities::blacklist::Model]) -> Vec<&str> {
    rows.iter().map(|r| r.telnum.as_str()).collect()
}

#[tokio::test]
async fn blacklist_add_remove_query_and_paging() {
    on_each_db!(|db, kind| {
        for i in 0..25 {
            blacklist::add(db, &format!("1350000{i:04}")).await.unwrap();
        }
        blacklist::add(db, "+8613800000000").await.unwrap();
        blacklist::add(db, "*67#").await.unwrap();

        let page1 = blacklist::query(db, 0, 10, None).await.unwrap();
        assert_eq!(page1.len(), 10, "[{kind}]");
        assert_eq!(page1[0].telnum, "13500000000", "[{kind}]");
        assert_eq!(page1[9].telnum, "13500000009", "[{kind}]");
        // `first` is a row offset (D-5), in the order of the first add.
        let page = blacklist::query(db, 20, 10, None).await.unwrap();
        assert_eq!(
            telnums(&page),
            [
                "13500000020",
                "13500000021",
                "13500000022",
                "13500000023",
                "13500000024",
                "+8613800000000",
                "*67#"
            ],
            "[{kind}]"
        );
        assert!(blacklist::query(db, 27, 10, None).await.unwrap().is_empty());
        assert!(blacklist::query(db, 0, 0, None).await.unwrap().is_empty());
        assert_eq!(
            blacklist::query(db, 0, 5000, None).await.unwrap().len(),
            27,
            "[{kind}]"
        );

        // By number: exact match only.
        let one = blacklist::query(db, 0, 10, Some("13500000007"))
            .await
            .unwrap();
        assert_eq!(telnums(&one), ["13500000007"], "[{kind}]");
        assert!(blacklist::query(db, 0, 10, Some("1350000000"))
            .await
            .unwrap()
            .is_empty());
        assert!(blacklist::query(db, 1, 10, Some("13500000007"))
            .await
            .unwrap()
            .is_empty());

        // A second add keeps one row (and its place in the order).
        blacklist::add(db, "13500000000").await.unwrap();
        let all = blacklist::query(db, 0, 100, None).await.unwrap();
        assert_eq!(all.len(), 27, "[{kind}]");
        assert_eq!(all[0].telnum, "13500000000", "[{kind}]");

        // Remove: true once, then false (idempotent).
        assert!(blacklist::remove(db, "13500000007").await.unwrap());
        assert!(!blacklist::remove(db, "13500000007").await.unwrap());
        assert!(blacklist::query(db, 0, 10, Some("13500000007"))
            .await
            .unwrap()
            .is_empty());
        assert!(!blacklist::is_listed_now(db, "13500000007").await.unwrap());
        assert!(blacklist::is_listed_now(db, "13500000008").await.unwrap());
        assert!(blacklist::is_listed_now(db, "*67#").await.unwrap());

        // Validation names the field.
        for bad in ["", "135-000", "abc", "1 2", &"1".repeat(33)] {
            for err in [
                blacklist::add(db, bad).await.unwrap_err(),
                blacklist::remove(db, bad).await.unwrap_err(),
                blacklist::query(db, 0, 10, Some(bad)).await.unwrap_err(),
            ] {
                assert!(
                    matches!(&err, Error::Invalid { field, .. } if field == "telnum"),
                    "[{kind}] {bad:?}: {err:?}"
                );
            }
        }
        // Anything may be asked about; it is simply not listed.
        assert!(!blacklist::is_listed_now(db, "anonymous").await.unwrap());
        assert!(!blacklist::is_listed_now(db, "").await.unwrap());
    });
}

#[tokio::test]
async fn blacklist_expiry_with_a_fake_clock() {
    on_each_db!(|db, kind| {
        let t0 = 1_700_000_000_000_i64;
        blacklist::add_at(db, "111", t0).await.unwrap();
        blacklist::add_at(db, "222", t0 + 2 * HOUR).await.unwrap();

        // No expiry: listed forever.
        for hours in [None, Some(0)] {
            assert!(blacklist::is_listed(db, "111", t0 + 1000 * HOUR, hours)
                .await
                .unwrap());
        }
        // 2 hours: blocks while younger than 2 h, not at 2 h exactly.
        let h2 = Some(2);
        assert!(blacklist::is_listed(db, "111", t0, h2).await.unwrap());
        assert!(blacklist::is_listed(db, "111", t0 + 2 * HOUR - 1, h2)
            .await
            .unwrap());
        assert!(!blacklist::is_listed(db, "111", t0 + 2 * HOUR, h2)
            .await
            .unwrap());
        assert!(blacklist::is_listed(db, "222", t0 + 2 * HOUR, h2)
            .await
            .unwrap());
        assert!(!blacklist::is_listed(db, "333", t0, h2).await.unwrap());

        // The query leaves expired entries out too.
        let q = |now, hours| async move {
            blacklist::query_at(db, 0, 10, None, now, hours)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.telnum)
                .collect::<Vec<_>>()
        };
        assert_eq!(q(t0 + 3 * HOUR, h2).await, ["222"], "[{kind}]");
        assert_eq!(q(t0 + 3 * HOUR, None).await, ["111", "222"], "[{kind}]");
        assert!(q(t0 + 4 * HOUR, h2).await.is_empty(), "[{kind}]");
        assert!(
            blacklist::query_at(db, 0, 10, Some("111"), t0 + 3 * HOUR, h2)
                .await
                .unwrap()
                .is_empty()
        );

        // A re-add refreshes the add time: blocked again for 2 h.
        blacklist::add_at(db, "111", t0 + 10 * HOUR).await.unwrap();
        assert!(blacklist::is_listed(db, "111", t0 + 11 * HOUR, h2)
            .await
            .unwrap());
        assert!(!blacklist::is_listed(db, "111", t0 + 12 * HOUR, h2)
            .await
            .unwrap());

        // Housekeeping removes only expired rows.
        assert_eq!(
            blacklist::purge_expired(db, t0 + 11 * HOUR, None)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            blacklist::purge_expired(db, t0 + 11 * HOUR, h2)
                .await
                .unwrap(),
            1,
            "[{kind}]"
        );
        assert_eq!(q(t0 + 11 * HOUR, None).await, ["111"], "[{kind}]");
    });
}

#[tokio::test]
async fn forbid_duration_setting() {
    on_each_db!(|db, kind| {
        assert_eq!(blacklist::forbid_hours(db).await.unwrap(), None);
        // Stored in the `setting` table under the manual's key.
        blacklist::set_forbid_hours(db, Some(24)).await.unwrap();
        assert_eq!(
            settings::get(db, "blacklist.forbit.duration")
                .await
                .unwrap()
                .as_deref(),
            Some("24")
        );
        assert_eq!(blacklist::forbid_hours(db).await.unwrap(), Some(24));
        for (text, hours) in [
            (" 48 ", Some(48)),
            ("0", None),
            ("", None),
            ("-3", None),
            ("1.5", None),
            ("abc", None),
        ] {
            settings::set(db, blacklist::FORBID_DURATION_KEY, text)
                .await
                .unwrap();
            assert_eq!(
                blacklist::forbid_hours(db).await.unwrap(),
                hours,
                "[{kind}] {text:?}"
            );
        }
        blacklist::set_forbid_hours(db, Some(0)).await.unwrap();
        assert_eq!(
            settings::get(db, blacklist::FORBID_DURATION_KEY)
                .await
                .unwrap(),
            None
        );
        blacklist::set_forbid_hours(db, None).await.unwrap();

        // query() and is_listed_now() read it: an entry added 25 h ago is gone under 24 h.
        let now = entities::db::now_ms();
        blacklist::add_at(db, "555", now - 25 * HOUR).await.unwrap();
        blacklist::add(db, "666").await.unwrap();
        assert!(blacklist::is_listed_now(db, "555").await.unwrap());
        assert_eq!(blacklist::query(db, 0, 10, None).await.unwrap().len(), 2);
        blacklist::set_forbid_hours(db, Some(24)).await.unwrap();
        assert!(!blacklist::is_listed_now(db, "555").await.unwrap());
        assert!(blacklist::is_listed_now(db, "666").await.unwrap());
        assert_eq!(
            telnums(&blacklist::query(db, 0, 10, None).await.unwrap()),
            ["666"],
            "[{kind}]"
        );
        // Switching expiry off makes the old entry block again (expiry is decided at read).
        blacklist::set_forbid_hours(db, None).await.unwrap();
        assert!(blacklist::is_listed_now(db, "555").await.unwrap());
    });
}

#[tokio::test]
async fn vip_upsert_level_query() {
    on_each_db!(|db, kind| {
        let entry = VipInput {
            telnum: "13500000001".into(),
            viplevel: 5,
            des: "vip customer".into(),
            createtime: Some("2018-09-11 15:57:41".into()),
        };
        vip::add(db, entry.clone()).await.unwrap();
        assert_eq!(vip::level(db, "13500000001").await.unwrap(), 5);
        assert_eq!(vip::level(db, "13500000002").await.unwrap(), 0);
        assert_eq!(vip::level(db, "anonymous").await.unwrap(), 0);

        // Upsert: same number → one row with the new values.
        vip::add(
            db,
            VipInput {
                viplevel: 3,
                des: "downgraded 降级".into(),
                createtime: Some("2019-01-02T03:04:05".into()),
                ..entry.clone()
            },
        )
        .await
        .unwrap();
        let rows = vip::query(db, 0, 10, None).await.unwrap();
        assert_eq!(rows.len(), 1, "[{kind}]");
        assert_eq!(rows[0].viplevel, 3);
        assert_eq!(rows[0].des, "downgraded 降级");
        assert_eq!(rows[0].createtime.as_deref(), Some("2019-01-02 03:04:05"));
        assert_eq!(vip::level(db, "13500000001").await.unwrap(), 3);

        // Optional fields; level 0 is an ordinary caller.
        vip::add(
            db,
            VipInput {
                telnum: "13500000002".into(),
                viplevel: 0,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        for i in 3..15 {
            vip::add(
                db,
                VipInput {
                    telnum: format!("135000000{i:02}"),
                    viplevel: i,
                    createtime: Some(String::new()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        let two = vip::query(db, 0, 10, Some("13500000002")).await.unwrap();
        assert_eq!(two.len(), 1);
        assert_eq!((two[0].viplevel, two[0].des.as_str()), (0, ""));
        assert_eq!(two[0].createtime, None);
        assert_eq!(vip::level(db, "13500000002").await.unwrap(), 0);
        assert_eq!(vip::level(db, "13500000014").await.unwrap(), 14);

        // Paging by row offset, in the order of the first add.
        let page = vip::query(db, 10, 10, None).await.unwrap();
        let nums: Vec<&str> = page.iter().map(|r| r.telnum.as_str()).collect();
        assert_eq!(
            nums,
            ["13500000011", "13500000012", "13500000013", "13500000014"],
            "[{kind}]"
        );

        // Remove is idempotent.
        assert!(vip::remove(db, "13500000001").await.unwrap());
        assert!(!vip::remove(db, "13500000001").await.unwrap());
        assert_eq!(vip::level(db, "13500000001").await.unwrap(), 0);

        // Validation names the field.
        for (bad, field) in [
            (
                VipInput {
                    viplevel: 101,
                    ..entry.clone()
                },
                "viplevel",
            ),
            (
                VipInput {
                    viplevel: -1,
                    ..entry.clone()
                },
                "viplevel",
            ),
            (
                VipInput {
                    telnum: "135x".into(),
                    ..entry.clone()
                },
                "telnum",
            ),
            (
                VipInput {
                    createtime: Some("yesterday".into()),
                    ..entry.clone()
                },
                "createtime",
            ),
        ] {
            let err = vip::add(db, bad).await.unwrap_err();
            assert!(
                matches!(&err, Error::Invalid { field: f, .. } if f == field),
                "[{kind}] {err:?}"
            );
        }
        assert!(vip::query(db, 0, 10, Some("")).await.is_err());
        assert_eq!(
            vip::wait_credit_secs(vip::level(db, "13500000004").await.unwrap()),
            120
        );
    });
}
