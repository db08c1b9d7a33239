//! Provisioning: TOML shapes, validation naming the entry, idempotence.

mod common;

use entities::provision::{self, ProvisionReport, Provisioning};
use entities::repo::{access_numbers, conferences, extensions, groups, ivrs, trunks};
use entities::{call_group::Strategy, Error};
use sea_orm::{EntityTrait, PaginatorTrait};

/// The provisioning part of CONTRACT.md's example configuration (other sections included,
/// as the configuration loader sees them).
const CONTRACT_TOML: &str = r#"
[[extensions]]
number = "801"
password = "1234"
name = "Alice"
groups = ["3003"]
supervisor = false

[[extensions]]
number = "802"
password = "5678"
name = "Bob"
groups = ["3003", "3004"]
supervisor = true

[[groups]]
number = "3003"
name = "Sales"
strategy = "longest-idle"
ring_timeout = 20
max_wait = 300

[[groups]]
number = "3004"
name = "Support"

[[trunks]]
name = "2001"
host = "127.0.0.1:5080"
default = true

[[trunks]]
name = "gw2"
password = "secret"

[[access_numbers]]
number = "1000"
target = "ivr:1"

[[access_numbers]]
number = "1001"
target = "group:3003"

[[conferences]]
number = "9000"

[[ivrs]]
id = 1
name = "main"
definition = '<ivr name="main" start="bye"><hangup id="bye"/></ivr>'
"#;

fn contract() -> Provisioning {
    toml::from_str(CONTRACT_TOML).expect("CONTRACT example parses")
}

async fn counts(db: &sea_orm::DatabaseConnection) -> [u64; 8] {
    use entities::prelude::*;
    [
        Extension::find().count(db).await.unwrap(),
        CallGroup::find().count(db).await.unwrap(),
        GroupMember::find().count(db).await.unwrap(),
        Trunk::find().count(db).await.unwrap(),
        AccessNumber::find().count(db).await.unwrap(),
        ConferenceRoom::find().count(db).await.unwrap(),
        IvrMenu::find().count(db).await.unwrap(),
        Setting::find().count(db).await.unwrap(),
    ]
}

#[test]
fn contract_toml_deserializes() {
    let p = contract();
    assert_eq!(p.extensions.len(), 2);
    assert_eq!(p.extensions[0].password.as_deref(), Some("1234"));
    assert_eq!(p.extensions[1].groups, ["3003", "3004"]);
    assert!(p.extensions[1].supervisor);
    assert_eq!(p.groups[0].strategy, "longest-idle");
    assert_eq!(p.groups[1].strategy, "ring-all", "default strategy");
    assert_eq!(p.groups[1].ring_timeout, 20);
    assert_eq!(p.groups[1].max_wait, 300);
    assert!(p.trunks[0].default);
    assert_eq!(p.trunks[0].host.as_deref(), Some("127.0.0.1:5080"));
    assert_eq!(p.trunks[1].password.as_deref(), Some("secret"));
    assert_eq!(p.access_numbers[0].target, "ivr:1");
    assert_eq!(p.conferences[0].number, "9000");
    assert_eq!(p.ivrs[0].id, 1);
    p.validate().expect("valid");

    // Top-level sections of the rest of the configuration are not this struct's business.
    let with_other_sections = format!("[sip]\nlisten = \"0.0.0.0:5060\"\n{CONTRACT_TOML}");
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(flatten)]
        provisioning: Provisioning,
    }
    let c: Config = toml::from_str(&with_other_sections).expect("embedded");
    assert_eq!(c.provisioning, p);
}

#[test]
fn typos_are_reported() {
    let err =
        toml::from_str::<Provisioning>("[[extensions]]\nnumber = \"801\"\npasword = \"1234\"\n")
            .expect_err("typo");
    assert!(err.to_string().contains("pasword"), "{err}");
    let err = toml::from_str::<Provisioning>("[[groups]]\nnumber = \"3003\"\nstrategie = \"x\"\n")
        .expect_err("typo");
    assert!(err.to_string().contains("strategie"), "{err}");
    let err = toml::from_str::<Provisioning>("[[trunks]]\nname = \"a\"\nhots = \"x\"\n")
        .expect_err("typo");
    assert!(err.to_string().contains("hots"), "{err}");
}

#[track_caller]
fn assert_invalid(r: Result<(), Error>, want: &str) {
    match r {
        Err(Error::Invalid { field, .. }) if field == want => {}
        other => panic!("expected Invalid on {want}, got {other:?}"),
    }
}

/// A change to the contract's example.
type Change = fn(&mut Provisioning);

#[test]
fn validation_names_the_entry() {
    // One change to the contract's example each, and the entry the error must name.
    let cases: [(Change, &str); 9] = [
        (
            |p| p.extensions[1].number = "80x".into(),
            "extensions[1].number",
        ),
        (
            |p| p.groups[1].strategy = "nope".into(),
            "groups[1].strategy",
        ),
        (
            |p| {
                p.groups[0].members = Some(vec![entities::repo::MemberInput {
                    extension: "x".into(),
                    priority: 0,
                }])
            },
            "groups[0].members[0].extension",
        ),
        (|p| p.trunks[1].default = true, "trunks[1].default"),
        (
            |p| p.trunks[0].host = Some("nowhere".into()),
            "trunks[0].host",
        ),
        (
            |p| p.access_numbers[1].target = "grp:3003".into(),
            "access_numbers[1].target",
        ),
        (
            |p| p.extensions[1].number = "801".into(),
            "extensions[1].number",
        ),
        (
            |p| p.conferences[0].number = "3003".into(),
            "conferences[0].number",
        ),
        (|p| p.ivrs[0].definition = " ".into(), "ivrs[0].definition"),
    ];
    for (change, field) in cases {
        let mut p = contract();
        change(&mut p);
        assert_invalid(p.validate(), field);
    }
}

/// What an apply reports.
fn report(created: usize, updated: usize, unchanged: usize) -> ProvisionReport {
    ProvisionReport {
        created,
        updated,
        unchanged,
    }
}

#[tokio::test]
async fn apply_is_idempotent() {
    on_each_db!(|db, kind| {
        let p = contract();
        let first = provision::apply(db, &p).await.unwrap();
        let total = 2 + 2 + 2 + 2 + 1 + 1;
        assert_eq!(first, report(total, 0, 0), "[{kind}]");
        let after_first = counts(db).await;
        assert_eq!(after_first, [2, 2, 3, 2, 2, 1, 1, 0], "[{kind}]");

        let alice = extensions::by_number(db, "801").await.unwrap().unwrap();
        assert_eq!(alice.name, "Alice");
        assert_eq!(
            extensions::group_numbers(db, alice.id).await.unwrap(),
            ["3003"]
        );
        let bob = extensions::by_number(db, "802").await.unwrap().unwrap();
        assert!(bob.supervisor);
        assert_eq!(
            extensions::group_numbers(db, bob.id).await.unwrap(),
            ["3003", "3004"]
        );
        let sales = groups::by_number(db, "3003").await.unwrap().unwrap();
        assert_eq!(sales.strategy, Strategy::LongestIdle);
        assert_eq!(
            trunks::default_trunk(db).await.unwrap().unwrap().name,
            "2001"
        );
        assert_eq!(
            access_numbers::by_number(db, "1000")
                .await
                .unwrap()
                .unwrap()
                .target,
            "ivr:1"
        );
        assert!(conferences::by_number(db, "9000").await.unwrap().is_some());
        assert_eq!(
            ivrs::get(db, 1).await.unwrap().unwrap().definition,
            r#"<ivr name="main" start="bye"><hangup id="bye"/></ivr>"#
        );

        // Twice: same rows, everything unchanged, timestamps untouched.
        let second = provision::apply(db, &p).await.unwrap();
        assert_eq!(second, report(0, 0, total), "[{kind}]");
        assert_eq!(counts(db).await, after_first);
        assert_eq!(
            extensions::by_number(db, "801").await.unwrap().unwrap(),
            alice
        );

        // A changed password is one update.
        let mut p2 = p.clone();
        p2.extensions[0].password = Some("9999".into());
        let third = provision::apply(db, &p2).await.unwrap();
        assert_eq!(third, report(0, 1, total - 1), "[{kind}]");
        assert_eq!(
            extensions::by_number(db, "801")
                .await
                .unwrap()
                .unwrap()
                .password,
            "9999"
        );

        // A membership change updates the extension entry.
        let mut p3 = p2.clone();
        p3.extensions[1].groups = vec!["3004".into()];
        let fourth = provision::apply(db, &p3).await.unwrap();
        assert_eq!((fourth.created, fourth.updated), (0, 1), "[{kind}]");
        assert_eq!(
            extensions::group_numbers(db, bob.id).await.unwrap(),
            ["3004"]
        );
        assert_eq!(provision::apply(db, &p3).await.unwrap().updated, 0);

        // A group's members list joins in, with priorities; applying again is stable.
        let mut p4 = p3.clone();
        p4.groups[0].members = Some(vec![entities::repo::MemberInput {
            extension: "802".into(),
            priority: 7,
        }]);
        let fifth = provision::apply(db, &p4).await.unwrap();
        assert_eq!(fifth.updated, 1, "[{kind}] {fifth:?}");
        let members = groups::members(db, sales.id).await.unwrap();
        assert_eq!(
            members
                .iter()
                .map(|m| (m.extension.number.as_str(), m.priority))
                .collect::<Vec<_>>(),
            [("802", 7), ("801", 0)],
            "[{kind}] union of extension lists and group members"
        );
        let sixth = provision::apply(db, &p4).await.unwrap();
        assert_eq!(sixth.updated + sixth.created, 0, "[{kind}] {sixth:?}");

        // Rows not in the file are left alone.
        let mut p5 = p4.clone();
        p5.extensions.truncate(1);
        p5.groups[0].members = None;
        provision::apply(db, &p5).await.unwrap();
        assert!(extensions::by_number(db, "802").await.unwrap().is_some());
    });
}

/// Recording overrides in the file: `recording` (or `record`) on extensions and groups.
const RECORDING_TOML: &str = r#"
[[groups]]
number = "3003"
recording = true

[[groups]]
number = "3004"
record = false

[[groups]]
number = "3005"

[[extensions]]
number = "801"
record = false

[[extensions]]
number = "802"
recording = true

[[extensions]]
number = "803"
"#;

#[test]
fn recording_overrides_deserialize() {
    let p: Provisioning = toml::from_str(RECORDING_TOML).expect("parses");
    assert_eq!(
        p.groups.iter().map(|g| g.recording).collect::<Vec<_>>(),
        [Some(true), Some(false), None]
    );
    assert_eq!(
        p.extensions.iter().map(|e| e.recording).collect::<Vec<_>>(),
        [Some(false), Some(true), None]
    );
    let err =
        toml::from_str::<Provisioning>("[[extensions]]\nnumber = \"801\"\nrecording = \"no\"\n")
            .expect_err("not a boolean");
    assert!(
        err.to_string().contains("recording") || err.to_string().contains("bool"),
        "{err}"
    );
}

#[tokio::test]
async fn apply_recording_overrides_is_idempotent() {
    on_each_db!(|db, kind| {
        let p: Provisioning = toml::from_str(RECORDING_TOML).unwrap();
        let first = provision::apply(db, &p).await.unwrap();
        assert_eq!((first.created, first.updated), (6, 0), "[{kind}]");
        let ext_want: std::collections::HashMap<String, bool> =
            [("801".to_owned(), false), ("802".to_owned(), true)].into();
        let group_want: std::collections::HashMap<String, bool> =
            [("3003".to_owned(), true), ("3004".to_owned(), false)].into();
        assert_eq!(extensions::recording_overrides(db).await.unwrap(), ext_want);
        assert_eq!(groups::recording_overrides(db).await.unwrap(), group_want);
        let alice = extensions::by_number(db, "801").await.unwrap().unwrap();

        // Twice: everything unchanged, rows untouched.
        let second = provision::apply(db, &p).await.unwrap();
        assert_eq!(second, report(0, 0, 6), "[{kind}]");
        assert_eq!(
            extensions::by_number(db, "801").await.unwrap().unwrap(),
            alice
        );

        // Changing only an override is an update of that entry; removing it from the file
        // clears it (the file is the whole truth for its entries).
        let mut p2 = p.clone();
        p2.extensions[0].recording = Some(true);
        p2.groups[1].recording = None;
        let third = provision::apply(db, &p2).await.unwrap();
        assert_eq!(third, report(0, 2, 4), "[{kind}]");
        assert_eq!(
            extensions::recording_overrides(db).await.unwrap(),
            [("801".to_owned(), true), ("802".to_owned(), true)].into(),
            "[{kind}]"
        );
        assert_eq!(
            groups::recording_overrides(db).await.unwrap(),
            [("3003".to_owned(), true)].into(),
            "[{kind}]"
        );
        let fourth = provision::apply(db, &p2).await.unwrap();
        assert_eq!(fourth.unchanged, 6, "[{kind}] {fourth:?}");
    });
}

#[tokio::test]
async fn apply_is_all_or_nothing() {
    on_each_db!(|db, kind| {
        // An extension names a group that is neither in the file nor in the database: the
        // error names the entry and nothing (not even the trunks before it) is written.
        let mut p = contract();
        p.extensions[1].groups.push("3999".into());
        match provision::apply(db, &p).await {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, "extensions[1].groups"),
            other => panic!("[{kind}] {other:?}"),
        }
        assert_eq!(counts(db).await, [0; 8], "[{kind}] rolled back");

        // A number used by an existing row of another kind is a conflict naming the entry.
        groups::create(
            db,
            entities::repo::GroupInput {
                number: "9000".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        match provision::apply(db, &contract()).await {
            Err(Error::Conflict { field, .. }) => assert_eq!(field, "conferences[0].number"),
            other => panic!("[{kind}] {other:?}"),
        }
        assert_eq!(counts(db).await, [0, 1, 0, 0, 0, 0, 0, 0], "[{kind}]");

        // Validation failures never reach the database.
        let mut bad = contract();
        bad.groups[0].ring_timeout = 0;
        assert_invalid(
            provision::apply(db, &bad).await.map(|_| ()),
            "groups[0].ring_timeout",
        );
    });
}

#[tokio::test]
async fn empty_provisioning_is_a_no_op() {
    on_each_db!(|db, kind| {
        let p = Provisioning::default();
        assert!(p.is_empty());
        assert_eq!(
            provision::apply(db, &p).await.unwrap(),
            ProvisionReport::default(),
            "[{kind}]"
        );
    });
}
