//! CRUD, validation and conflicts of the repo modules, on every database.

mod common;

use entities::repo::{
    access_numbers, conferences, extensions, groups, trunks, AccessNumberInput, ConferenceInput,
    ExtensionInput, ExtensionPatch, GroupInput, MemberInput, TrunkInput,
};
use entities::{call_group::Strategy, extension::Presence, Error};
use std::collections::HashMap;

fn ext(number: &str) -> ExtensionInput {
    ExtensionInput {
        number: number.into(),
        password: Some("1234".into()),
        name: format!("Agent {number}"),
        ..Default::default()
    }
}

/// [`ext`] in `groups`.
fn ext_in(number: &str, groups: &[&str]) -> ExtensionInput {
    ExtensionInput {
        groups: groups.iter().map(|g| g.to_string()).collect(),
        ..ext(number)
    }
}

/// [`ext`] with a recording override.
fn ext_recording(number: &str, recording: Option<bool>) -> ExtensionInput {
    ExtensionInput {
        recording,
        ..ext(number)
    }
}

fn group(number: &str) -> GroupInput {
    GroupInput {
        number: number.into(),
        name: format!("Group {number}"),
        ..Default::default()
    }
}

/// [`group`] with a recording override.
fn group_recording(number: &str, recording: Option<bool>) -> GroupInput {
    GroupInput {
        recording,
        ..group(number)
    }
}

fn member(extension: &str, priority: i32) -> MemberInput {
    MemberInput {
        extension: extension.into(),
        priority,
    }
}

/// A trunk reached at `host`.
fn trunk(name: &str, host: &str) -> TrunkInput {
    TrunkInput {
        name: name.into(),
        host: Some(host.into()),
        ..Default::default()
    }
}

/// A trunk that registers with `password`.
fn account(name: &str, password: &str) -> TrunkInput {
    TrunkInput {
        name: name.into(),
        password: Some(password.into()),
        ..Default::default()
    }
}

/// Recording overrides by number.
fn overrides(entries: &[(&str, bool)]) -> HashMap<String, bool> {
    entries.iter().map(|(n, r)| (n.to_string(), *r)).collect()
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(r: Result<T, Error>, want_field: &str) {
    match r {
        Err(Error::Invalid { field, .. }) if field == want_field => {}
        other => panic!("expected Invalid on {want_field}, got {other:?}"),
    }
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(r: Result<T, Error>, want_field: &str) {
    match r {
        Err(Error::Conflict { field, .. }) if field == want_field => {}
        other => panic!("expected Conflict on {want_field}, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(r: Result<T, Error>) {
    match r {
        Err(Error::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn extensions_crud() {
    on_each_db!(|db, kind| {
        assert!(extensions::list(db).await.unwrap().is_empty());
        let a = extensions::create(db, ext("801")).await.unwrap();
        assert_eq!(a.number, "801");
        assert_eq!(a.password, "1234");
        assert_eq!(a.presence, Presence::Online);
        assert!(!a.supervisor);
        assert_eq!(a.recording, None);
        assert!(a.created_at > 0 && a.updated_at == a.created_at);

        let b = extensions::create(
            db,
            ExtensionInput {
                number: "802".into(),
                supervisor: true,
                worker_id: Some("41735".into()),
                department: Some("研发".into()),
                office_hours: Some("9:00-12:30,14:00-18:30".into()),
                screen_pop_url: Some("http://crm.local/pop".into()),
                out_display_number: Some("+862112345678".into()),
                out_channel: Some("".into()),
                recording: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(b.password, "", "[{kind}] no password given → empty");
        assert_eq!(
            b.department.as_deref(),
            Some("研发"),
            "[{kind}] UTF-8 round trip"
        );
        assert_eq!(
            b.out_channel, None,
            "[{kind}] empty optional text is stored as None"
        );
        assert_eq!(b.uname, None);
        assert_eq!(b.recording, Some(false));

        let all = extensions::list(db).await.unwrap();
        assert_eq!(
            all.iter().map(|e| e.number.as_str()).collect::<Vec<_>>(),
            ["801", "802"]
        );
        assert_eq!(extensions::get(db, a.id).await.unwrap().unwrap(), a);
        assert_eq!(
            extensions::by_number(db, "802").await.unwrap().unwrap().id,
            b.id
        );
        assert!(extensions::by_number(db, "899").await.unwrap().is_none());
        assert!(extensions::get(db, 99_999).await.unwrap().is_none());

        // Update: replaces fields; password None keeps the old one.
        let a2 = extensions::update(
            db,
            a.id,
            ExtensionInput {
                number: "801".into(),
                password: None,
                name: "Alice".into(),
                supervisor: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(a2.name, "Alice");
        assert_eq!(a2.password, "1234");
        assert!(a2.supervisor);
        assert!(a2.updated_at >= a.updated_at);
        // Same input again: nothing changes.
        let a3 = extensions::update(
            db,
            a.id,
            ExtensionInput {
                number: "801".into(),
                name: "Alice".into(),
                supervisor: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(a3, a2);
        // Renumber.
        let a4 = extensions::update(db, a.id, ext("811")).await.unwrap();
        assert_eq!(a4.number, "811");
        assert!(extensions::by_number(db, "801").await.unwrap().is_none());

        // Patch (interface 35 / presence).
        let p = extensions::patch(
            db,
            a.id,
            ExtensionPatch {
                worker_id: Some("007".into()),
                presence: Some(Presence::Busy),
                presence_reason: Some("lunch".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(p.worker_id.as_deref(), Some("007"));
        assert_eq!(p.presence, Presence::Busy);
        assert_eq!(p.presence_reason, "lunch");
        assert_eq!(p.name, a4.name);
        assert_invalid(
            extensions::patch(
                db,
                a.id,
                ExtensionPatch {
                    office_hours: Some("late".into()),
                    ..Default::default()
                },
            )
            .await,
            "office_hours",
        );
        assert_not_found(extensions::patch(db, 99_999, ExtensionPatch::default()).await);

        // Conflicts.
        assert_conflict(extensions::create(db, ext("802")).await, "number");
        assert_conflict(extensions::update(db, a.id, ext("802")).await, "number");

        // Not found.
        assert_not_found(extensions::update(db, 99_999, ext("850")).await);
        assert_not_found(extensions::delete(db, 99_999).await);

        // Delete.
        extensions::delete(db, b.id).await.unwrap();
        assert!(extensions::get(db, b.id).await.unwrap().is_none());
        assert_eq!(extensions::list(db).await.unwrap().len(), 1);
    });
}

#[tokio::test]
async fn extension_validation() {
    on_each_db!(|db, kind| {
        let cases: Vec<(ExtensionInput, &str)> = vec![
            (ExtensionInput::default(), "number"),
            (ext("80a"), "number"),
            (ext(&"1".repeat(33)), "number"),
            (
                ExtensionInput {
                    password: Some("has space".into()),
                    ..ext("801")
                },
                "password",
            ),
            (
                ExtensionInput {
                    office_hours: Some("9-18".into()),
                    ..ext("801")
                },
                "office_hours",
            ),
            (
                ExtensionInput {
                    screen_pop_url: Some("ftp://x".into()),
                    ..ext("801")
                },
                "screen_pop_url",
            ),
            (
                ExtensionInput {
                    out_display_number: Some("abc".into()),
                    ..ext("801")
                },
                "out_display_number",
            ),
            (ext_in("801", &["30x"]), "groups"),
            (ext_in("801", &["3003", "3003"]), "groups"),
            (
                ExtensionInput {
                    name: "x".repeat(129),
                    ..ext("801")
                },
                "name",
            ),
        ];
        for (input, field) in cases {
            assert_invalid(extensions::create(db, input).await, field);
        }
        // Unknown group → Invalid naming `groups`, and nothing is written.
        assert_invalid(
            extensions::create(db, ext_in("801", &["3999"])).await,
            "groups",
        );
        assert!(
            extensions::list(db).await.unwrap().is_empty(),
            "[{kind}] failed create left a row"
        );
    });
}

#[tokio::test]
async fn membership_from_both_sides() {
    on_each_db!(|db, kind| {
        let sales = groups::create(db, group("3003")).await.unwrap();
        let support = groups::create(db, group("3004")).await.unwrap();
        let a = extensions::create(db, ext_in("801", &["3003", "3004"]))
            .await
            .unwrap();
        assert_eq!(
            extensions::group_numbers(db, a.id).await.unwrap(),
            ["3003", "3004"]
        );
        let b = extensions::create(db, ext_in("802", &["3003"]))
            .await
            .unwrap();
        let m = groups::members(db, sales.id).await.unwrap();
        assert_eq!(m.len(), 2, "[{kind}]");

        // The extension's list is its whole membership.
        extensions::update(db, a.id, ext_in("801", &["3004"]))
            .await
            .unwrap();
        assert_eq!(extensions::group_numbers(db, a.id).await.unwrap(), ["3004"]);

        // A group's members list (when given) is its whole membership, with priorities.
        groups::update(
            db,
            sales.id,
            GroupInput {
                members: Some(vec![member("801", 1), member("802", 5)]),
                ..group("3003")
            },
        )
        .await
        .unwrap();
        let m = groups::members(db, sales.id).await.unwrap();
        assert_eq!(
            m.iter()
                .map(|m| (m.extension.number.as_str(), m.priority))
                .collect::<Vec<_>>(),
            [("802", 5), ("801", 1)]
        );
        // members: None leaves them alone.
        groups::update(
            db,
            sales.id,
            GroupInput {
                name: "Sales".into(),
                ..group("3003")
            },
        )
        .await
        .unwrap();
        assert_eq!(groups::members(db, sales.id).await.unwrap().len(), 2);
        assert_invalid(
            groups::update(
                db,
                sales.id,
                GroupInput {
                    members: Some(vec![member("899", 0)]),
                    ..group("3003")
                },
            )
            .await,
            "members[0].extension",
        );

        // Deleting an extension or a group removes its memberships.
        extensions::delete(db, b.id).await.unwrap();
        assert_eq!(groups::members(db, sales.id).await.unwrap().len(), 1);
        groups::delete(db, support.id).await.unwrap();
        assert_eq!(extensions::group_numbers(db, a.id).await.unwrap(), ["3003"]);
    });
}

/// The extensions' and the groups' recording overrides are exactly these.
async fn assert_overrides(
    db: &sea_orm::DatabaseConnection,
    kind: &str,
    exts: &[(&str, bool)],
    grps: &[(&str, bool)],
) {
    assert_eq!(
        extensions::recording_overrides(db).await.unwrap(),
        overrides(exts),
        "[{kind}] extensions"
    );
    assert_eq!(
        groups::recording_overrides(db).await.unwrap(),
        overrides(grps),
        "[{kind}] groups"
    );
}

#[tokio::test]
async fn recording_overrides() {
    on_each_db!(|db, kind| {
        assert_overrides(db, kind, &[], &[]).await;

        let sales = groups::create(db, group_recording("3003", Some(true)))
            .await
            .unwrap();
        assert_eq!(sales.recording, Some(true), "[{kind}]");
        let quiet = groups::create(db, group_recording("3004", Some(false)))
            .await
            .unwrap();
        groups::create(db, group("3005")).await.unwrap();
        let a = extensions::create(db, ext_recording("801", Some(false)))
            .await
            .unwrap();
        assert_eq!(a.recording, Some(false), "[{kind}]");
        extensions::create(db, ext_recording("802", Some(true)))
            .await
            .unwrap();
        let c = extensions::create(db, ext("803")).await.unwrap();
        assert_eq!(
            c.recording, None,
            "[{kind}] absent: follow the wider setting"
        );
        assert_overrides(
            db,
            kind,
            &[("801", false), ("802", true)],
            &[("3003", true), ("3004", false)],
        )
        .await;

        // Update replaces the override: None clears it, Some sets it; unchanged is a no-op.
        let a2 = extensions::update(db, a.id, ext("801")).await.unwrap();
        assert_eq!(a2.recording, None, "[{kind}]");
        let c2 = extensions::update(db, c.id, ext_recording("803", Some(true)))
            .await
            .unwrap();
        assert_eq!(c2.recording, Some(true), "[{kind}]");
        let c3 = extensions::update(db, c.id, ext_recording("803", Some(true)))
            .await
            .unwrap();
        assert_eq!(c3, c2, "[{kind}] same input: row untouched");
        let q2 = groups::update(db, quiet.id, group_recording("3004", None))
            .await
            .unwrap();
        assert_eq!(q2.recording, None, "[{kind}]");
        assert_overrides(db, kind, &[("802", true), ("803", true)], &[("3003", true)]).await;

        // Patches (compat API) leave the override alone.
        let c4 = extensions::patch(
            db,
            c.id,
            ExtensionPatch {
                name: Some("Carol".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(c4.recording, Some(true), "[{kind}]");

        // A deleted row takes its override with it.
        extensions::delete(db, c.id).await.unwrap();
        groups::delete(db, sales.id).await.unwrap();
        assert_overrides(db, kind, &[("802", true)], &[]).await;
    });
}

#[tokio::test]
async fn groups_crud() {
    on_each_db!(|db, kind| {
        let g = groups::create(db, group("3003")).await.unwrap();
        assert_eq!(g.strategy, Strategy::RingAll);
        assert_eq!((g.ring_timeout, g.max_wait, g.wrap_up), (20, 300, 0));
        assert_eq!(g.overflow, None);
        let g2 = groups::create(
            db,
            GroupInput {
                strategy: "longest-idle".into(),
                ring_timeout: 15,
                max_wait: 60,
                wrap_up: 10,
                overflow: Some("group:3003".into()),
                recording: Some(true),
                ..group("3005")
            },
        )
        .await
        .unwrap();
        assert_eq!(g2.strategy, Strategy::LongestIdle);
        assert_eq!(g2.overflow.as_deref(), Some("group:3003"));
        assert_eq!(
            groups::list(db)
                .await
                .unwrap()
                .iter()
                .map(|g| g.number.as_str())
                .collect::<Vec<_>>(),
            ["3003", "3005"]
        );
        assert_eq!(groups::get(db, g.id).await.unwrap().unwrap(), g);
        assert_eq!(
            groups::by_number(db, "3005").await.unwrap().unwrap().id,
            g2.id
        );
        let u = groups::update(
            db,
            g.id,
            GroupInput {
                strategy: "round-robin".into(),
                ..group("3003")
            },
        )
        .await
        .unwrap();
        assert_eq!(u.strategy, Strategy::RoundRobin);
        assert_conflict(groups::create(db, group("3005")).await, "number");
        assert_conflict(groups::update(db, g.id, group("3005")).await, "number");
        assert_not_found(groups::update(db, 99_999, group("3010")).await);
        assert_not_found(groups::delete(db, 99_999).await);

        for (input, field) in [
            (GroupInput::default(), "number"),
            (
                GroupInput {
                    strategy: "ring-some".into(),
                    ..group("3010")
                },
                "strategy",
            ),
            (
                GroupInput {
                    ring_timeout: 0,
                    ..group("3010")
                },
                "ring_timeout",
            ),
            (
                GroupInput {
                    ring_timeout: 601,
                    ..group("3010")
                },
                "ring_timeout",
            ),
            (
                GroupInput {
                    max_wait: -1,
                    ..group("3010")
                },
                "max_wait",
            ),
            (
                GroupInput {
                    wrap_up: 3601,
                    ..group("3010")
                },
                "wrap_up",
            ),
            (
                GroupInput {
                    overflow: Some("queue:1".into()),
                    ..group("3010")
                },
                "overflow",
            ),
            (
                GroupInput {
                    overflow: Some("group:3010".into()),
                    ..group("3010")
                },
                "overflow",
            ),
            (
                GroupInput {
                    members: Some(vec![member("801", 0), member("801", 1)]),
                    ..group("3010")
                },
                "members[1].extension",
            ),
        ] {
            assert_invalid(groups::create(db, input).await, field);
        }
        groups::delete(db, g2.id).await.unwrap();
        assert_eq!(groups::list(db).await.unwrap().len(), 1, "[{kind}]");
    });
}

#[tokio::test]
async fn trunks_crud() {
    on_each_db!(|db, kind| {
        let gw = trunks::create(
            db,
            TrunkInput {
                default: true,
                ..trunk("2001", "127.0.0.1:5080")
            },
        )
        .await
        .unwrap();
        assert!(gw.is_default);
        assert!(!gw.allow_transit);
        assert_eq!(gw.password, None);
        let reg = trunks::create(
            db,
            TrunkInput {
                allow_transit: true,
                ..account("carrier-b", "s3cret")
            },
        )
        .await
        .unwrap();
        assert_eq!(reg.host, None);
        assert_eq!(
            trunks::by_name(db, "2001").await.unwrap().unwrap().id,
            gw.id
        );
        assert_eq!(trunks::get(db, reg.id).await.unwrap().unwrap(), reg);
        assert_eq!(trunks::list(db).await.unwrap().len(), 2);
        assert_eq!(trunks::default_trunk(db).await.unwrap().unwrap().id, gw.id);

        // Making another trunk the default clears the first.
        let reg2 = trunks::update(
            db,
            reg.id,
            TrunkInput {
                default: true,
                ..account("carrier-b", "s3cret")
            },
        )
        .await
        .unwrap();
        assert!(reg2.is_default);
        assert!(!reg2.allow_transit);
        assert!(!trunks::get(db, gw.id).await.unwrap().unwrap().is_default);
        assert_eq!(trunks::default_trunk(db).await.unwrap().unwrap().id, reg.id);

        let taken = trunk("2001", "10.0.0.1:5060");
        assert_conflict(trunks::create(db, taken.clone()).await, "name");
        assert_conflict(trunks::update(db, reg.id, taken).await, "name");
        for (input, field) in [
            (TrunkInput::default(), "name"),
            (trunk("bad name", "1.2.3.4:5060"), "name"),
            (
                TrunkInput {
                    name: "t".into(),
                    ..Default::default()
                },
                "host",
            ),
            (trunk("t", "1.2.3.4"), "host"),
            (trunk("t", "gw.example.com:99999"), "host"),
            (account("t", ""), "password"),
        ] {
            assert_invalid(trunks::create(db, input).await, field);
        }
        assert!(trunks::create(db, trunk("by-name", "gw.example.com:5060"))
            .await
            .is_ok());
        // Names compare case-sensitively on every database (MySQL tables use utf8mb4_bin).
        let upper = trunks::create(db, trunk("BY-NAME", "gw.example.com:5060"))
            .await
            .unwrap();
        assert_eq!(
            trunks::by_name(db, "BY-NAME").await.unwrap().unwrap().id,
            upper.id
        );
        trunks::delete(db, upper.id).await.unwrap();
        assert_not_found(trunks::delete(db, 99_999).await);
        trunks::delete(db, gw.id).await.unwrap();
        assert_eq!(trunks::list(db).await.unwrap().len(), 2, "[{kind}]");
    });
}

#[tokio::test]
async fn access_numbers_crud() {
    on_each_db!(|db, kind| {
        let input = |n: &str, t: &str| AccessNumberInput {
            number: n.into(),
            target: t.into(),
        };
        let a = access_numbers::create(db, input("1000", "ivr:1"))
            .await
            .unwrap();
        assert_eq!(a.parsed_target(), Some(entities::Target::Ivr(1)));
        let b = access_numbers::create(db, input("1001", "group:3003"))
            .await
            .unwrap();
        assert_eq!(
            b.parsed_target(),
            Some(entities::Target::Group("3003".into()))
        );
        assert_eq!(access_numbers::list(db).await.unwrap().len(), 2);
        assert_eq!(
            access_numbers::by_number(db, "1001")
                .await
                .unwrap()
                .unwrap(),
            b
        );
        assert_eq!(access_numbers::get(db, a.id).await.unwrap().unwrap(), a);
        let a2 = access_numbers::update(db, a.id, input("1000", "conference:9000"))
            .await
            .unwrap();
        assert_eq!(a2.target, "conference:9000");
        assert_conflict(
            access_numbers::create(db, input("1001", "ext:801")).await,
            "number",
        );
        assert_conflict(
            access_numbers::update(db, a.id, input("1001", "ext:801")).await,
            "number",
        );
        for (i, field) in [
            (input("", "ivr:1"), "number"),
            (input("10x", "ivr:1"), "number"),
            (input("1002", ""), "target"),
            (input("1002", "ivr:one"), "target"),
            (input("1002", "queue:3003"), "target"),
            (input("1002", "ext:"), "target"),
        ] {
            assert_invalid(access_numbers::create(db, i).await, field);
        }
        assert_not_found(access_numbers::update(db, 99_999, input("1003", "ext:801")).await);
        assert_not_found(access_numbers::delete(db, 99_999).await);
        access_numbers::delete(db, a.id).await.unwrap();
        assert_eq!(access_numbers::list(db).await.unwrap().len(), 1, "[{kind}]");
    });
}

#[tokio::test]
async fn conferences_crud() {
    on_each_db!(|db, kind| {
        let c = conferences::create(
            db,
            ConferenceInput {
                number: "9000".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(c.pin, None);
        let c2 = conferences::update(
            db,
            c.id,
            ConferenceInput {
                number: "9000".into(),
                name: "Board".into(),
                pin: Some("4321".into()),
            },
        )
        .await
        .unwrap();
        assert_eq!(c2.pin.as_deref(), Some("4321"));
        assert_eq!(
            conferences::by_number(db, "9000").await.unwrap().unwrap(),
            c2
        );
        assert_conflict(
            conferences::create(
                db,
                ConferenceInput {
                    number: "9000".into(),
                    ..Default::default()
                },
            )
            .await,
            "number",
        );
        assert_invalid(
            conferences::create(
                db,
                ConferenceInput {
                    number: "9001".into(),
                    pin: Some("12a".into()),
                    ..Default::default()
                },
            )
            .await,
            "pin",
        );
        conferences::delete(db, c.id).await.unwrap();
        assert!(conferences::list(db).await.unwrap().is_empty(), "[{kind}]");
    });
}

#[tokio::test]
async fn one_numbering_plan() {
    on_each_db!(|db, kind| {
        extensions::create(db, ext("801")).await.unwrap();
        groups::create(db, group("3003")).await.unwrap();
        // A group, access number or room may not reuse an extension's number, and so on.
        assert_conflict(groups::create(db, group("801")).await, "number");
        assert_conflict(
            access_numbers::create(
                db,
                AccessNumberInput {
                    number: "3003".into(),
                    target: "group:3003".into(),
                },
            )
            .await,
            "number",
        );
        assert_conflict(
            conferences::create(
                db,
                ConferenceInput {
                    number: "801".into(),
                    ..Default::default()
                },
            )
            .await,
            "number",
        );
        assert_conflict(extensions::create(db, ext("3003")).await, "number");
        // A trunk may not be named like an extension (same SIP account)...
        assert_conflict(trunks::create(db, account("801", "x")).await, "name");
        // ... and the other way round.
        trunks::create(db, account("2001", "x")).await.unwrap();
        assert_conflict(extensions::create(db, ext("2001")).await, "number");
        // But a group may be numbered like a trunk.
        groups::create(db, group("2001")).await.unwrap();
        println!("[{kind}] numbering plan ok");
    });
}

#[tokio::test]
async fn unique_violation_from_the_database_is_a_conflict() {
    use entities::extension;
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    on_each_db!(|db, kind| {
        extensions::create(db, ext("801")).await.unwrap();
        // Bypass the pre-check: the database itself must refuse, and the error must map.
        let dup = extension::ActiveModel {
            number: Set("801".into()),
            password: Set(String::new()),
            name: Set(String::new()),
            worker_id: Set(None),
            department: Set(None),
            uname: Set(None),
            office_hours: Set(None),
            presence: Set(Presence::Online),
            presence_reason: Set(String::new()),
            supervisor: Set(false),
            screen_pop_url: Set(None),
            out_channel: Set(None),
            out_display_number: Set(None),
            direct_callback: Set(false),
            recording: Set(None),
            created_at: Set(0),
            updated_at: Set(0),
            ..Default::default()
        };
        let err = dup.insert(db).await.expect_err("duplicate number");
        let mapped = Error::from_db_unique(err, "number", "801");
        assert!(
            matches!(mapped, Error::Conflict { ref field, .. } if field == "number"),
            "[{kind}] {mapped:?}"
        );
        assert_eq!(mapped.http_status(), 409);
    });
}

#[tokio::test]
async fn compat_extension_settings() {
    use entities::repo::extensions::WorkerInfo;
    on_each_db!(|db, kind| {
        let a = extensions::create(db, ext("801")).await.unwrap();
        let g = groups::create(db, group("3003")).await.unwrap();

        extensions::set_worker_info(
            db,
            "801",
            WorkerInfo {
                worker_id: "41735".into(),
                department: Some("夏天".into()),
                uname: None,
                office_hours: Some("9:00-12:30,14:00-18:30".into()),
            },
        )
        .await
        .unwrap();
        let e = extensions::get(db, a.id).await.unwrap().unwrap();
        assert_eq!(e.worker_id.as_deref(), Some("41735"));
        assert_eq!(e.department.as_deref(), Some("夏天"));
        assert_eq!(e.uname, None);
        assert_eq!(e.office_hours.as_deref(), Some("9:00-12:30,14:00-18:30"));

        extensions::set_out_call_display(db, "801", "2001", "02112345678")
            .await
            .unwrap();
        extensions::set_direct_callback(db, "801", true)
            .await
            .unwrap();
        extensions::set_screen_pop_url(db, "801", Some("http://crm.local:80/pop"))
            .await
            .unwrap();
        let e = extensions::get(db, a.id).await.unwrap().unwrap();
        assert_eq!(
            (e.out_channel.as_deref(), e.out_display_number.as_deref()),
            (Some("2001"), Some("02112345678"))
        );
        assert!(e.direct_callback);
        assert_eq!(e.screen_pop_url.as_deref(), Some("http://crm.local:80/pop"));
        extensions::set_screen_pop_url(db, "801", None)
            .await
            .unwrap();
        assert_eq!(
            extensions::get(db, a.id)
                .await
                .unwrap()
                .unwrap()
                .screen_pop_url,
            None
        );
        // A group number sets the group's URL.
        extensions::set_screen_pop_url(db, "3003", Some("https://crm/q"))
            .await
            .unwrap();
        assert_eq!(
            groups::get(db, g.id)
                .await
                .unwrap()
                .unwrap()
                .screen_pop_url
                .as_deref(),
            Some("https://crm/q")
        );

        assert_not_found(extensions::set_direct_callback(db, "899", true).await);
        assert_not_found(extensions::set_screen_pop_url(db, "899", None).await);
        assert_invalid(
            extensions::set_worker_info(
                db,
                "801",
                WorkerInfo {
                    worker_id: "1".into(),
                    office_hours: Some("all day".into()),
                    ..Default::default()
                },
            )
            .await,
            "office_hours",
        );
        assert_invalid(
            extensions::set_screen_pop_url(db, "801", Some("javascript:x")).await,
            "screen_pop_url",
        );
        println!("[{kind}] compat settings ok");
    });
}
