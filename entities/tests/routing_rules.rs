//! Interface 61's intelligent routing rules: CRUD and validation on every database, the
//! time matcher at fixed instants for every `datetype` (wrap-around and boundaries), the
//! specificity order, and the parsing of `parameters` into actions.

mod common;

use chrono::{NaiveDate, NaiveDateTime};
use entities::repo::routing_rules::{self, RoutingRuleInput};
use entities::routing_rule::{
    active_rule, rule_active, AreaRoutes, DateType, Model, OperationType, RuleAction, RulePrompt,
    Schedule,
};
use entities::Error;

/// `2026-11-dd hh:mm:ss`; 2026-11-22 is a Sunday, 2026-11-27 a Friday.
fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_opt(h, mi, s)
        .unwrap()
}

fn nov(d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
    at(2026, 11, d, h, mi, s)
}

fn model(id: i32, datetype: &str, begin: &str, end: &str, sub: (&str, &str)) -> Model {
    Model {
        id,
        telnum: "4008001000".into(),
        offon: true,
        operationtype: "BUSY_AND_REJECT".into(),
        parameters: String::new(),
        datetype: datetype.into(),
        begintime: begin.into(),
        endtime: end.into(),
        subbegintime: sub.0.into(),
        subendtime: sub.1.into(),
        created_at: 0,
        updated_at: 0,
    }
}

fn input() -> RoutingRuleInput {
    RoutingRuleInput {
        telnum: "4008001000".into(),
        offon: true,
        operationtype: "IVR_SELECT".into(),
        parameters: "3".into(),
        datetype: "WEEK_TYPE".into(),
        begintime: "1".into(),
        endtime: "5".into(),
        subbegintime: "9:00:00".into(),
        subendtime: "18:00:00".into(),
    }
}

fn field(e: Error) -> String {
    e.field()
        .unwrap_or_else(|| panic!("{e:?} names no field"))
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// CRUD

#[tokio::test]
async fn crud_and_enabled_for() {
    on_each_db!(|db, kind| {
        assert!(
            routing_rules::list(db).await.unwrap().is_empty(),
            "[{kind}]"
        );

        let a = routing_rules::create(db, input()).await.unwrap();
        assert!(a.id > 0, "[{kind}]");
        assert_eq!(a.telnum, "4008001000");
        assert!(a.offon);
        assert_eq!(a.operationtype, "IVR_SELECT");
        assert_eq!(a.parameters, "3");
        assert_eq!(a.datetype, "WEEK_TYPE");
        assert_eq!((a.begintime.as_str(), a.endtime.as_str()), ("1", "5"));
        // Canonical form: two-digit hour.
        assert_eq!(a.subbegintime, "09:00:00", "[{kind}]");
        assert_eq!(a.subendtime, "18:00:00");
        assert!(a.created_at > 0 && a.updated_at == a.created_at);
        assert_eq!(routing_rules::get(db, a.id).await.unwrap(), Some(a.clone()));

        let b = routing_rules::create(
            db,
            RoutingRuleInput {
                operationtype: "PLAY_AND_HANGUP".into(),
                parameters: "  tts:We are closed  ".into(),
                datetype: "SPECIFIED_DAY".into(),
                begintime: "2026-12-31T18:00:00".into(),
                endtime: "2027-01-02 08:00:00".into(),
                // Ignored with SPECIFIED_DAY: stored empty.
                subbegintime: "whatever".into(),
                subendtime: "".into(),
                ..input()
            },
        )
        .await
        .unwrap();
        assert_eq!(b.parameters, "tts:We are closed", "[{kind}]");
        assert_eq!(b.begintime, "2026-12-31 18:00:00");
        assert_eq!(b.endtime, "2027-01-02 08:00:00");
        assert_eq!((b.subbegintime.as_str(), b.subendtime.as_str()), ("", ""));
        assert_eq!(
            b.action().unwrap(),
            RuleAction::PlayAndHangup(RulePrompt::Tts("We are closed".into()))
        );

        let c = routing_rules::create(
            db,
            RoutingRuleInput {
                telnum: "4008002000".into(),
                operationtype: "TRANSFER_CALL".into(),
                parameters: "13800138000".into(),
                datetype: "DAY_TYPE".into(),
                begintime: "22:00:00".into(),
                endtime: "06:00:00".into(),
                subbegintime: "".into(),
                subendtime: "".into(),
                ..input()
            },
        )
        .await
        .unwrap();
        let d = routing_rules::create(
            db,
            RoutingRuleInput {
                offon: false,
                operationtype: "VOICE_MAIL".into(),
                parameters: "".into(),
                datetype: "MONTH_TYPE".into(),
                begintime: "01".into(),
                endtime: "31".into(),
                ..input()
            },
        )
        .await
        .unwrap();
        assert_eq!(d.begintime, "1", "[{kind}]");
        assert!(!d.offon);

        let ids: Vec<i32> = routing_rules::list(db)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [a.id, b.id, c.id, d.id], "[{kind}]");

        // Enabled rules of one number only, by id.
        let enabled = routing_rules::enabled_for(db, "4008001000").await.unwrap();
        assert_eq!(
            enabled.iter().map(|r| r.id).collect::<Vec<_>>(),
            [a.id, b.id],
            "[{kind}]"
        );
        let other = routing_rules::enabled_for(db, "4008002000").await.unwrap();
        assert_eq!(other, std::slice::from_ref(&c), "[{kind}]");
        assert!(routing_rules::enabled_for(db, "400800100")
            .await
            .unwrap()
            .is_empty());
        assert!(routing_rules::enabled_for(db, "").await.unwrap().is_empty());
        assert!(routing_rules::enabled_for(db, "x' OR 1=1")
            .await
            .unwrap()
            .is_empty());

        // Update replaces; an identical update changes nothing.
        let same = routing_rules::update(db, a.id, input()).await.unwrap();
        assert_eq!(same, a, "[{kind}]");
        let a2 = routing_rules::update(
            db,
            a.id,
            RoutingRuleInput {
                offon: false,
                parameters: "ivr:4".into(),
                ..input()
            },
        )
        .await
        .unwrap();
        assert_eq!(a2.id, a.id);
        assert!(!a2.offon);
        assert_eq!(a2.parameters, "ivr:4");
        assert_eq!(a2.created_at, a.created_at);
        assert!(a2.updated_at >= a.updated_at);
        assert_eq!(a2.action().unwrap(), RuleAction::IvrSelect(4));
        assert_eq!(routing_rules::get(db, a.id).await.unwrap(), Some(a2));
        assert_eq!(
            routing_rules::enabled_for(db, "4008001000")
                .await
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect::<Vec<_>>(),
            [b.id],
            "[{kind}]"
        );

        // Invalid updates leave the row alone.
        let err = routing_rules::update(
            db,
            b.id,
            RoutingRuleInput {
                datetype: "YEAR_TYPE".into(),
                ..input()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(field(err), "datetype");
        assert_eq!(routing_rules::get(db, b.id).await.unwrap(), Some(b.clone()));

        // Unknown ids.
        let missing = d.id + 100;
        assert!(matches!(
            routing_rules::update(db, missing, input()).await,
            Err(Error::NotFound)
        ));
        assert!(matches!(
            routing_rules::delete(db, missing).await,
            Err(Error::NotFound)
        ));
        assert_eq!(routing_rules::get(db, missing).await.unwrap(), None);

        // Delete.
        routing_rules::delete(db, b.id).await.unwrap();
        assert_eq!(routing_rules::get(db, b.id).await.unwrap(), None);
        assert!(matches!(
            routing_rules::delete(db, b.id).await,
            Err(Error::NotFound)
        ));
        assert_eq!(routing_rules::list(db).await.unwrap().len(), 3, "[{kind}]");

        // A rejected create stores nothing.
        let err = routing_rules::create(
            db,
            RoutingRuleInput {
                telnum: "40080a".into(),
                ..input()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(field(err), "telnum");
        assert_eq!(routing_rules::list(db).await.unwrap().len(), 3, "[{kind}]");

        // Long TTS text round-trips (parameters is TEXT).
        let long = "很".repeat(2000);
        let e = routing_rules::create(
            db,
            RoutingRuleInput {
                operationtype: "PLAY_AND_HANGUP".into(),
                parameters: format!("tts:{long}"),
                ..input()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            routing_rules::get(db, e.id)
                .await
                .unwrap()
                .unwrap()
                .parameters,
            format!("tts:{long}"),
            "[{kind}]"
        );
    });
}

/// The call routing's use: the enabled rules of the called number, the one active now,
/// its action.
#[tokio::test]
async fn routing_lookup_from_the_database() {
    on_each_db!(|db, kind| {
        let night = routing_rules::create(
            db,
            RoutingRuleInput {
                operationtype: "PLAY_AND_HANGUP".into(),
                parameters: "tone:19".into(),
                datetype: "DAY_TYPE".into(),
                begintime: "18:00:00".into(),
                endtime: "09:00:00".into(),
                subbegintime: "".into(),
                subendtime: "".into(),
                ..input()
            },
        )
        .await
        .unwrap();
        let holiday = routing_rules::create(
            db,
            RoutingRuleInput {
                operationtype: "ONANSWER_TRANSFER".into(),
                parameters: "13800138000,15".into(),
                datetype: "SPECIFIED_DAY".into(),
                begintime: "2026-12-24 00:00:00".into(),
                endtime: "2026-12-27 00:00:00".into(),
                subbegintime: "".into(),
                subendtime: "".into(),
                ..input()
            },
        )
        .await
        .unwrap();
        let rules = routing_rules::enabled_for(db, "4008001000").await.unwrap();
        let pick = |t| active_rule(&rules, "4008001000", t).map(|r| r.id);
        assert_eq!(pick(nov(27, 20, 0, 0)), Some(night.id), "[{kind}]");
        assert_eq!(pick(nov(27, 12, 0, 0)), None, "[{kind}]");
        assert_eq!(
            pick(at(2026, 12, 25, 20, 0, 0)),
            Some(holiday.id),
            "[{kind}]"
        );
        let rule = active_rule(&rules, "4008001000", at(2026, 12, 25, 3, 0, 0)).unwrap();
        assert_eq!(
            rule.action().unwrap(),
            RuleAction::OnAnswerTransfer {
                number: "13800138000".into(),
                after_secs: 15
            }
        );
        assert_eq!(
            active_rule(&rules, "4008001000", nov(27, 8, 59, 59))
                .unwrap()
                .action()
                .unwrap(),
            RuleAction::PlayAndHangup(RulePrompt::Tone(19)),
            "[{kind}]"
        );
    });
}

// ---------------------------------------------------------------------------------------
// Validation

#[test]
fn valid_inputs() {
    let ok = |i: RoutingRuleInput| i.validate().unwrap_or_else(|e| panic!("{i:?}: {e:?}"));
    ok(input());
    for (datetype, b, e, sb, se) in [
        ("DAY_TYPE", "00:00:00", "23:59:59", "", ""),
        ("DAY_TYPE", "22:00:00", "06:00:00", "", ""),
        ("DAY_TYPE", "00:00:00", "00:00:00", "", ""),
        ("DAY_TYPE", " 9:30:00 ", "17:30:00", "", ""),
        ("WEEK_TYPE", "0", "6", "", ""),
        ("WEEK_TYPE", "5", "1", "22:00:00", "06:00:00"),
        ("WEEK_TYPE", "3", "3", "12:00:00", "12:00:00"),
        ("MONTH_TYPE", "1", "31", "", ""),
        ("MONTH_TYPE", "28", "3", "", ""),
        ("MONTH_TYPE", "15", "15", "", ""),
        (
            "SPECIFIED_DAY",
            "2026-01-01 00:00:00",
            "2026-01-01 00:00:01",
            "",
            "",
        ),
        (
            "SPECIFIED_DAY",
            "2028-02-29 08:00:00",
            "2028-03-01T08:00:00",
            "",
            "",
        ),
    ] {
        ok(RoutingRuleInput {
            datetype: datetype.into(),
            begintime: b.into(),
            endtime: e.into(),
            subbegintime: sb.into(),
            subendtime: se.into(),
            ..input()
        });
    }
    // offon defaults to true; the manual's names; unknown fields are rejected.
    let parsed: RoutingRuleInput = serde_json::from_str(
        r#"{"telnum":"1000","operationtype":"BUSY_AND_REJECT","datetype":"DAY_TYPE",
            "begintime":"18:00:00","endtime":"09:00:00"}"#,
    )
    .unwrap();
    assert!(parsed.offon);
    ok(parsed);
    assert!(serde_json::from_str::<RoutingRuleInput>(r#"{"telnum":"1000","offOn":true}"#).is_err());
    let json = serde_json::to_value(model(7, "DAY_TYPE", "1", "2", ("", ""))).unwrap();
    for key in [
        "id",
        "telnum",
        "offon",
        "operationtype",
        "parameters",
        "datetype",
        "begintime",
        "endtime",
        "subbegintime",
        "subendtime",
    ] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
}

#[test]
fn invalid_inputs_name_the_field() {
    let cases: Vec<(RoutingRuleInput, &str)> = vec![
        (
            RoutingRuleInput {
                telnum: "".into(),
                ..input()
            },
            "telnum",
        ),
        (
            RoutingRuleInput {
                telnum: "+8610".into(),
                ..input()
            },
            "telnum",
        ),
        (
            RoutingRuleInput {
                telnum: "1".repeat(33),
                ..input()
            },
            "telnum",
        ),
        (
            RoutingRuleInput {
                operationtype: "".into(),
                ..input()
            },
            "operationtype",
        ),
        (
            RoutingRuleInput {
                operationtype: "ivr_select".into(),
                ..input()
            },
            "operationtype",
        ),
        (
            RoutingRuleInput {
                operationtype: "HANGUP".into(),
                ..input()
            },
            "operationtype",
        ),
        (
            RoutingRuleInput {
                parameters: "".into(),
                ..input()
            },
            "parameters",
        ),
        (
            RoutingRuleInput {
                parameters: "main".into(),
                ..input()
            },
            "parameters",
        ),
        (
            RoutingRuleInput {
                parameters: "3\n3".into(),
                ..input()
            },
            "parameters",
        ),
        (
            RoutingRuleInput {
                datetype: "".into(),
                ..input()
            },
            "datetype",
        ),
        (
            RoutingRuleInput {
                datetype: "week_type".into(),
                ..input()
            },
            "datetype",
        ),
        (
            RoutingRuleInput {
                datetype: "YEAR_TYPE".into(),
                ..input()
            },
            "datetype",
        ),
        // WEEK_TYPE
        (
            RoutingRuleInput {
                begintime: "7".into(),
                ..input()
            },
            "begintime",
        ),
        (
            RoutingRuleInput {
                begintime: "".into(),
                ..input()
            },
            "begintime",
        ),
        (
            RoutingRuleInput {
                begintime: "Mon".into(),
                ..input()
            },
            "begintime",
        ),
        (
            RoutingRuleInput {
                endtime: "-1".into(),
                ..input()
            },
            "endtime",
        ),
        (
            RoutingRuleInput {
                endtime: "05".into(),
                ..input()
            },
            "endtime",
        ),
        (
            RoutingRuleInput {
                subbegintime: "24:00:00".into(),
                ..input()
            },
            "subbegintime",
        ),
        (
            RoutingRuleInput {
                subbegintime: "9:00".into(),
                ..input()
            },
            "subbegintime",
        ),
        (
            RoutingRuleInput {
                subbegintime: "".into(),
                ..input()
            },
            "subbegintime",
        ),
        (
            RoutingRuleInput {
                subendtime: "".into(),
                ..input()
            },
            "subendtime",
        ),
        (
            RoutingRuleInput {
                subendtime: "18:60:00".into(),
                ..input()
            },
            "subendtime",
        ),
        (
            RoutingRuleInput {
                subendtime: "18:00:00:00".into(),
                ..input()
            },
            "subendtime",
        ),
    ];
    let day = |b: &str, e: &str| RoutingRuleInput {
        datetype: "DAY_TYPE".into(),
        begintime: b.into(),
        endtime: e.into(),
        ..input()
    };
    let month = |b: &str, e: &str| RoutingRuleInput {
        datetype: "MONTH_TYPE".into(),
        begintime: b.into(),
        endtime: e.into(),
        ..input()
    };
    let specified = |b: &str, e: &str| RoutingRuleInput {
        datetype: "SPECIFIED_DAY".into(),
        begintime: b.into(),
        endtime: e.into(),
        ..input()
    };
    let more: Vec<(RoutingRuleInput, &str)> = vec![
        (day("9", "18:00:00"), "begintime"),
        (day("09:00:00", "1"), "endtime"),
        (day("25:00:00", "18:00:00"), "begintime"),
        (day("09:00:00", ""), "endtime"),
        (day("2026-01-01 09:00:00", "18:00:00"), "begintime"),
        (month("0", "5"), "begintime"),
        (month("1", "32"), "endtime"),
        (month("1", "09:00:00"), "endtime"),
        (specified("2026-01-01", "2026-01-02 00:00:00"), "begintime"),
        (
            specified("2026-01-01 00:00:00", "2026-02-30 00:00:00"),
            "endtime",
        ),
        (
            specified("2026-01-02 00:00:00", "2026-01-01 00:00:00"),
            "endtime",
        ),
        (
            specified("2026-01-01 00:00:00", "2026-01-01 00:00:00"),
            "endtime",
        ),
        (
            specified("2026/01/01 00:00:00", "2026-01-02 00:00:00"),
            "begintime",
        ),
    ];
    for (bad, expected) in cases.into_iter().chain(more) {
        let err = bad
            .validate()
            .expect_err(&format!("{bad:?} should be invalid"));
        assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
        assert_eq!(field(err), expected, "{bad:?}");
    }
    // Messages say what was expected.
    let msg = input_error(RoutingRuleInput {
        operationtype: "HANGUP".into(),
        ..input()
    });
    assert!(
        msg.contains("IVR_SELECT") && msg.contains("INCOMING_CALL_DELAY"),
        "{msg}"
    );
    let msg = input_error(RoutingRuleInput {
        begintime: "7".into(),
        ..input()
    });
    assert!(msg.contains("0 (Sunday)"), "{msg}");
}

fn input_error(i: RoutingRuleInput) -> String {
    match i.validate().unwrap_err() {
        Error::Invalid { message, .. } => message,
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The matcher

fn active(m: &Model, t: NaiveDateTime) -> bool {
    assert!(m.schedule().is_ok(), "{m:?}: {:?}", m.schedule());
    rule_active(m, t)
}

#[test]
fn day_type() {
    let office = model(1, "DAY_TYPE", "09:00:00", "18:00:00", ("", ""));
    assert!(!active(&office, nov(27, 8, 59, 59)));
    assert!(active(&office, nov(27, 9, 0, 0)), "begin is inclusive");
    assert!(active(&office, nov(27, 17, 59, 59)));
    assert!(!active(&office, nov(27, 18, 0, 0)), "end is exclusive");
    assert!(active(&office, nov(29, 12, 0, 0)), "every day");

    // 22:00 → 06:00 wraps past midnight.
    let night = model(2, "DAY_TYPE", "22:00:00", "06:00:00", ("", ""));
    assert!(!active(&night, nov(27, 21, 59, 59)));
    assert!(active(&night, nov(27, 22, 0, 0)));
    assert!(active(&night, nov(27, 23, 59, 59)));
    assert!(active(&night, nov(28, 0, 0, 0)));
    assert!(active(&night, nov(28, 5, 59, 59)));
    assert!(!active(&night, nov(28, 6, 0, 0)));
    assert!(!active(&night, nov(28, 12, 0, 0)));

    // Equal times: the whole day.
    let always = model(3, "DAY_TYPE", "00:00:00", "00:00:00", ("", ""));
    for t in [nov(27, 0, 0, 0), nov(27, 12, 0, 0), nov(27, 23, 59, 59)] {
        assert!(active(&always, t));
    }
    // Sub times mean nothing for DAY_TYPE.
    let with_sub = model(4, "DAY_TYPE", "09:00:00", "18:00:00", ("x", "y"));
    assert!(active(&with_sub, nov(27, 10, 0, 0)));

    // Disabled: never active.
    let off = Model {
        offon: false,
        ..office.clone()
    };
    assert!(!rule_active(&off, nov(27, 12, 0, 0)));
    // A row written bypassing validation: never active.
    let broken = model(5, "DAY_TYPE", "9h", "18:00:00", ("", ""));
    assert!(!rule_active(&broken, nov(27, 12, 0, 0)));
    let broken = model(6, "HOLIDAY", "09:00:00", "18:00:00", ("", ""));
    assert!(!rule_active(&broken, nov(27, 12, 0, 0)));
}

#[test]
fn week_type() {
    // Monday to Friday, 09:00–18:00 (2026-11-23 Monday … 2026-11-27 Friday).
    let office = model(1, "WEEK_TYPE", "1", "5", ("09:00:00", "18:00:00"));
    assert!(!active(&office, nov(22, 12, 0, 0)), "Sunday");
    assert!(!active(&office, nov(23, 8, 59, 59)));
    assert!(active(&office, nov(23, 9, 0, 0)), "Monday 09:00");
    assert!(active(&office, nov(25, 13, 0, 0)), "Wednesday");
    assert!(active(&office, nov(27, 17, 59, 59)), "Friday is included");
    assert!(!active(&office, nov(27, 18, 0, 0)), "end time exclusive");
    assert!(!active(&office, nov(28, 12, 0, 0)), "Saturday");

    // Friday → Monday wraps over the weekend (whole days: no sub times).
    let weekend = model(2, "WEEK_TYPE", "5", "1", ("", ""));
    assert!(!active(&weekend, nov(26, 23, 59, 59)), "Thursday");
    assert!(active(&weekend, nov(27, 0, 0, 0)), "Friday");
    assert!(active(&weekend, nov(28, 12, 0, 0)), "Saturday");
    assert!(active(&weekend, nov(29, 12, 0, 0)), "Sunday");
    assert!(active(&weekend, nov(30, 23, 59, 59)), "Monday");
    assert!(!active(&weekend, at(2026, 12, 1, 0, 0, 0)), "Tuesday");

    // Sunday only (0), and 6 → 0 (Saturday and Sunday).
    let sunday = model(3, "WEEK_TYPE", "0", "0", ("", ""));
    assert!(active(&sunday, nov(22, 0, 0, 0)));
    assert!(!active(&sunday, nov(23, 0, 0, 0)));
    let sat_sun = model(4, "WEEK_TYPE", "6", "0", ("", ""));
    assert!(active(&sat_sun, nov(28, 1, 0, 0)));
    assert!(active(&sat_sun, nov(29, 1, 0, 0)));
    assert!(!active(&sat_sun, nov(30, 1, 0, 0)));
    assert!(!active(&sat_sun, nov(27, 23, 0, 0)));
    // 0 → 6: every day.
    let all_week = model(5, "WEEK_TYPE", "0", "6", ("", ""));
    for d in 22..=28 {
        assert!(active(&all_week, nov(d, 3, 0, 0)));
    }

    // A window that wraps past midnight belongs to the day it starts on: Monday–Friday
    // nights are Monday 22:00 … Saturday 06:00.
    let nights = model(6, "WEEK_TYPE", "1", "5", ("22:00:00", "06:00:00"));
    assert!(
        !active(&nights, nov(23, 3, 0, 0)),
        "Monday early morning: Sunday's night"
    );
    assert!(!active(&nights, nov(23, 21, 59, 59)));
    assert!(active(&nights, nov(23, 22, 0, 0)), "Monday night");
    assert!(
        active(&nights, nov(24, 5, 59, 59)),
        "Tuesday morning: Monday's night"
    );
    assert!(!active(&nights, nov(24, 6, 0, 0)));
    assert!(!active(&nights, nov(24, 12, 0, 0)));
    assert!(active(&nights, nov(27, 23, 0, 0)), "Friday night");
    assert!(
        active(&nights, nov(28, 5, 0, 0)),
        "Saturday morning: Friday's night"
    );
    assert!(!active(&nights, nov(28, 22, 0, 0)), "Saturday night");
    assert!(!active(&nights, nov(29, 2, 0, 0)), "Sunday morning");

    // Wrapped days and a wrapped window: Saturday–Sunday nights reach into Monday morning.
    let weekend_nights = model(7, "WEEK_TYPE", "6", "0", ("20:00:00", "08:00:00"));
    assert!(
        !active(&weekend_nights, nov(28, 7, 0, 0)),
        "Saturday morning: Friday's night"
    );
    assert!(active(&weekend_nights, nov(28, 20, 0, 0)));
    assert!(active(&weekend_nights, nov(29, 7, 59, 59)));
    assert!(active(&weekend_nights, nov(29, 21, 0, 0)));
    assert!(
        active(&weekend_nights, nov(30, 7, 59, 59)),
        "Monday morning: Sunday's night"
    );
    assert!(!active(&weekend_nights, nov(30, 8, 0, 0)));
    assert!(!active(&weekend_nights, nov(30, 20, 0, 0)));

    // Equal sub times: whole days.
    let wed = model(8, "WEEK_TYPE", "3", "3", ("12:00:00", "12:00:00"));
    assert!(active(&wed, nov(25, 0, 0, 0)));
    assert!(active(&wed, nov(25, 23, 59, 59)));
    assert!(!active(&wed, nov(26, 0, 0, 0)));
}

#[test]
fn month_type() {
    let first_week = model(1, "MONTH_TYPE", "1", "7", ("", ""));
    assert!(
        active(&first_week, at(2026, 12, 1, 0, 0, 0)),
        "the first day is included"
    );
    assert!(
        active(&first_week, at(2026, 12, 7, 23, 59, 59)),
        "the last day is included"
    );
    assert!(!active(&first_week, at(2026, 12, 8, 0, 0, 0)));
    assert!(!active(&first_week, nov(30, 23, 59, 59)));

    // 28 → 3 wraps over the month's end.
    let turn = model(2, "MONTH_TYPE", "28", "3", ("", ""));
    assert!(!active(&turn, nov(27, 23, 59, 59)));
    assert!(active(&turn, nov(28, 0, 0, 0)));
    assert!(active(&turn, nov(30, 12, 0, 0)));
    assert!(active(&turn, at(2026, 12, 1, 12, 0, 0)));
    assert!(active(&turn, at(2026, 12, 3, 23, 59, 59)));
    assert!(!active(&turn, at(2026, 12, 4, 0, 0, 0)));
    assert!(active(&turn, at(2026, 2, 28, 12, 0, 0)), "February");
    assert!(active(&turn, at(2026, 3, 2, 12, 0, 0)));

    // Days beyond a short month: 31 only in 31-day months; a span to 31 runs to the end.
    let thirty_first = model(3, "MONTH_TYPE", "31", "31", ("", ""));
    assert!(active(&thirty_first, at(2026, 12, 31, 12, 0, 0)));
    assert!(!active(&thirty_first, nov(30, 12, 0, 0)));
    assert!(!active(&thirty_first, at(2026, 12, 1, 0, 0, 0)));
    let second_half = model(4, "MONTH_TYPE", "16", "31", ("", ""));
    assert!(active(&second_half, at(2026, 2, 28, 23, 59, 59)));
    assert!(active(&second_half, at(2028, 2, 29, 12, 0, 0)), "leap day");
    assert!(!active(&second_half, at(2026, 3, 1, 0, 0, 0)));
    let whole = model(5, "MONTH_TYPE", "1", "31", ("", ""));
    for t in [
        at(2026, 2, 1, 0, 0, 0),
        at(2026, 4, 30, 23, 59, 59),
        at(2026, 12, 31, 12, 0, 0),
    ] {
        assert!(active(&whole, t));
    }
    // 31 → 1 wraps: the 31st (where it exists) and the 1st.
    let around = model(6, "MONTH_TYPE", "31", "1", ("", ""));
    assert!(active(&around, at(2026, 12, 31, 0, 0, 0)));
    assert!(active(&around, at(2027, 1, 1, 0, 0, 0)));
    assert!(!active(&around, nov(30, 0, 0, 0)));
    assert!(!active(&around, at(2026, 12, 2, 0, 0, 0)));
}

#[test]
fn specified_day() {
    let holiday = model(
        1,
        "SPECIFIED_DAY",
        "2026-12-31 18:00:00",
        "2027-01-02 08:00:00",
        ("", ""),
    );
    assert!(!active(&holiday, at(2026, 12, 31, 17, 59, 59)));
    assert!(
        active(&holiday, at(2026, 12, 31, 18, 0, 0)),
        "begin is inclusive"
    );
    assert!(active(&holiday, at(2027, 1, 1, 12, 0, 0)));
    assert!(active(&holiday, at(2027, 1, 2, 7, 59, 59)));
    assert!(
        !active(&holiday, at(2027, 1, 2, 8, 0, 0)),
        "end is exclusive"
    );
    assert!(
        !active(&holiday, at(2027, 12, 31, 20, 0, 0)),
        "no repetition"
    );
    // Sub times mean nothing for SPECIFIED_DAY.
    let with_sub = model(
        2,
        "SPECIFIED_DAY",
        "2026-12-31 18:00:00",
        "2027-01-02 08:00:00",
        ("03:00:00", "04:00:00"),
    );
    assert!(active(&with_sub, at(2027, 1, 1, 12, 0, 0)));
}

// ---------------------------------------------------------------------------------------
// Which rule wins

#[test]
fn specificity_order() {
    let t = nov(27, 12, 0, 0); // Friday noon
    let day = model(40, "DAY_TYPE", "00:00:00", "00:00:00", ("", ""));
    let week = model(30, "WEEK_TYPE", "5", "5", ("", ""));
    let month = model(20, "MONTH_TYPE", "27", "27", ("", ""));
    let specified = model(
        10,
        "SPECIFIED_DAY",
        "2026-11-27 00:00:00",
        "2026-11-28 00:00:00",
        ("", ""),
    );
    // Ids are given in the reverse order of specificity: the type decides, not the id.
    let mut rules = vec![day.clone(), week.clone(), month.clone(), specified.clone()];
    let winner = |rules: &[Model], t| active_rule(rules, "4008001000", t).map(|r| r.id);
    assert_eq!(winner(&rules, t), Some(10));
    rules.retain(|r| r.id != 10);
    assert_eq!(winner(&rules, t), Some(20));
    rules.retain(|r| r.id != 20);
    assert_eq!(winner(&rules, t), Some(30));
    rules.retain(|r| r.id != 30);
    assert_eq!(winner(&rules, t), Some(40));
    rules.clear();
    assert_eq!(winner(&rules, t), None);

    // Inactive specific rules do not hide active general ones.
    let rules = vec![day.clone(), week.clone(), month.clone(), specified.clone()];
    assert_eq!(
        winner(&rules, nov(28, 12, 0, 0)),
        Some(40),
        "Saturday the 28th"
    );
    assert_eq!(
        winner(&rules, nov(20, 12, 0, 0)),
        Some(30),
        "Friday the 20th"
    );

    // Same type: the lowest id, whatever the order in the slice.
    let a = model(7, "DAY_TYPE", "08:00:00", "20:00:00", ("", ""));
    let b = model(3, "DAY_TYPE", "11:00:00", "13:00:00", ("", ""));
    let c = model(5, "DAY_TYPE", "00:00:00", "00:00:00", ("", ""));
    assert_eq!(winner(&[a.clone(), b.clone(), c.clone()], t), Some(3));
    assert_eq!(winner(&[a.clone(), c.clone()], t), Some(5));
    assert_eq!(winner(&[a.clone(), b.clone()], nov(27, 19, 0, 0)), Some(7));

    // Other numbers, disabled rules and rows that do not parse are skipped.
    let other_number = Model {
        telnum: "4008002000".into(),
        ..specified.clone()
    };
    let disabled = Model {
        offon: false,
        ..month.clone()
    };
    let bad_action = Model {
        id: 1,
        operationtype: "TRANSFER_CALL".into(),
        parameters: "nowhere".into(),
        ..week.clone()
    };
    let bad_schedule = model(2, "MONTH_TYPE", "27", "99", ("", ""));
    let rules = vec![
        other_number,
        disabled,
        bad_action,
        bad_schedule,
        day.clone(),
    ];
    assert_eq!(winner(&rules, t), Some(40));
    assert_eq!(active_rule(&rules, "4008002000", t).map(|r| r.id), Some(10));
    assert_eq!(active_rule(&rules, "", t), None);
}

#[test]
fn date_types_and_operation_types() {
    assert_eq!(
        DateType::ALL.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        ["DAY_TYPE", "WEEK_TYPE", "MONTH_TYPE", "SPECIFIED_DAY"]
    );
    assert!(DateType::SpecifiedDay.specificity() > DateType::Month.specificity());
    assert!(DateType::Month.specificity() > DateType::Week.specificity());
    assert!(DateType::Week.specificity() > DateType::Day.specificity());
    assert_eq!(
        OperationType::ALL
            .iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>(),
        [
            "IVR_SELECT",
            "BUSY_AND_REJECT",
            "PLAY_AND_HANGUP",
            "TRANSFER_CALL",
            "VOICE_MAIL",
            "ONANSWER_TO_VM",
            "ONANSWER_TRANSFER",
            "DIAL_HTTP_DOCKING",
            "CALLER_AREA_TRANSFER",
            "INCOMING_CALL_DELAY"
        ]
    );
    for o in OperationType::ALL {
        assert_eq!(o.as_str().parse::<OperationType>().unwrap(), *o);
    }
    assert!("ivr_select".parse::<OperationType>().is_err());
    let s = Schedule::parse("WEEK_TYPE", "1", "5", "", "").unwrap();
    assert_eq!(s.date_type(), DateType::Week);
    assert_eq!(
        s.to_fields(),
        ("1".into(), "5".into(), String::new(), String::new())
    );
}

// ---------------------------------------------------------------------------------------
// Actions

fn action(op: &str, p: &str) -> RuleAction {
    RuleAction::parse(op, p).unwrap_or_else(|e| panic!("{op} {p:?}: {e:?}"))
}

fn action_err(op: &str, p: &str) -> (String, String) {
    match RuleAction::parse(op, p) {
        Err(Error::Invalid { field, message }) => (field, message),
        other => panic!("{op} {p:?} should be invalid: {other:?}"),
    }
}

#[test]
fn actions_parse() {
    use RuleAction::*;
    assert_eq!(action("IVR_SELECT", "3"), IvrSelect(3));
    assert_eq!(action("IVR_SELECT", "ivr:12"), IvrSelect(12));
    assert_eq!(action("IVR_SELECT", " 0 "), IvrSelect(0));
    assert_eq!(action("BUSY_AND_REJECT", ""), BusyAndReject);
    assert_eq!(action("BUSY_AND_REJECT", "  "), BusyAndReject);
    assert_eq!(
        action("PLAY_AND_HANGUP", "tone:19"),
        PlayAndHangup(RulePrompt::Tone(19))
    );
    assert_eq!(
        action("PLAY_AND_HANGUP", "19"),
        PlayAndHangup(RulePrompt::Tone(19))
    );
    assert_eq!(
        action("PLAY_AND_HANGUP", "file:prompts/closed.wav"),
        PlayAndHangup(RulePrompt::File("prompts/closed.wav".into()))
    );
    assert_eq!(
        action(
            "PLAY_AND_HANGUP",
            "tts:我们已下班, please call tomorrow: 9:00"
        ),
        PlayAndHangup(RulePrompt::Tts(
            "我们已下班, please call tomorrow: 9:00".into()
        ))
    );
    assert_eq!(
        action("TRANSFER_CALL", "13800138000"),
        TransferCall("13800138000".into())
    );
    assert_eq!(action("VOICE_MAIL", ""), VoiceMail);
    assert_eq!(
        action("ONANSWER_TO_VM", ""),
        OnAnswerToVm { after_secs: 20 }
    );
    assert_eq!(
        action("ONANSWER_TO_VM", "45"),
        OnAnswerToVm { after_secs: 45 }
    );
    assert_eq!(
        action("ONANSWER_TRANSFER", "801"),
        OnAnswerTransfer {
            number: "801".into(),
            after_secs: 20
        }
    );
    assert_eq!(
        action("ONANSWER_TRANSFER", "13800138000, 30"),
        OnAnswerTransfer {
            number: "13800138000".into(),
            after_secs: 30
        }
    );
    assert_eq!(
        action("DIAL_HTTP_DOCKING", "http://crm.local/hook?x=1"),
        DialHttpDocking("http://crm.local/hook?x=1".into())
    );
    let CallerAreaTransfer(routes) =
        action("CALLER_AREA_TRANSFER", "010:801, 0755:802,075:803,*:804")
    else {
        panic!("not CallerAreaTransfer")
    };
    assert_eq!(routes.target_for("01012345678"), Some("801"));
    assert_eq!(
        routes.target_for("075512345678"),
        Some("802"),
        "longest prefix"
    );
    assert_eq!(routes.target_for("07571234567"), Some("803"));
    assert_eq!(routes.target_for("13800138000"), Some("804"), "default");
    assert_eq!(routes.to_string(), "010:801,0755:802,075:803,*:804");
    let no_default = AreaRoutes::parse("021:801").unwrap();
    assert_eq!(no_default.target_for("02112345678"), Some("801"));
    assert_eq!(no_default.target_for("13800138000"), None);
    assert_eq!(
        action("INCOMING_CALL_DELAY", "8"),
        IncomingCallDelay { secs: 8 }
    );

    // The operation type round-trips.
    for (op, p) in [
        ("IVR_SELECT", "1"),
        ("BUSY_AND_REJECT", ""),
        ("PLAY_AND_HANGUP", "1"),
        ("TRANSFER_CALL", "1"),
        ("VOICE_MAIL", ""),
        ("ONANSWER_TO_VM", ""),
        ("ONANSWER_TRANSFER", "1"),
        ("DIAL_HTTP_DOCKING", "https://x"),
        ("CALLER_AREA_TRANSFER", "*:1"),
        ("INCOMING_CALL_DELAY", "1"),
    ] {
        assert_eq!(action(op, p).operation_type().as_str(), op);
    }
    assert_eq!(RulePrompt::Tone(19).to_string(), "tone:19");
    assert_eq!(RulePrompt::File("a.wav".into()).to_string(), "file:a.wav");
    assert_eq!(RulePrompt::Tts("hi".into()).to_string(), "tts:hi");

    // A stored row's action.
    let m = Model {
        operationtype: "INCOMING_CALL_DELAY".into(),
        parameters: "15".into(),
        ..model(1, "DAY_TYPE", "00:00:00", "00:00:00", ("", ""))
    };
    assert_eq!(m.action().unwrap(), IncomingCallDelay { secs: 15 });
    assert_eq!(m.operation().unwrap(), OperationType::IncomingCallDelay);
    assert_eq!(m.date_type().unwrap(), DateType::Day);
}

#[test]
fn bad_actions_are_clear() {
    for (op, p) in [
        ("IVR_SELECT", ""),
        ("IVR_SELECT", "main"),
        ("IVR_SELECT", "ivr:"),
        ("IVR_SELECT", "-1"),
        ("IVR_SELECT", "99999999999"),
        ("BUSY_AND_REJECT", "486"),
        ("PLAY_AND_HANGUP", ""),
        ("PLAY_AND_HANGUP", "closed.wav"),
        ("PLAY_AND_HANGUP", "tone:x"),
        ("PLAY_AND_HANGUP", "file:/etc/passwd.wav"),
        ("PLAY_AND_HANGUP", "file:../secret.wav"),
        ("PLAY_AND_HANGUP", "file:prompts/../../x.wav"),
        ("PLAY_AND_HANGUP", "file:prompts/x.mp3"),
        ("PLAY_AND_HANGUP", "tts:"),
        ("TRANSFER_CALL", ""),
        ("TRANSFER_CALL", "ext:801"),
        ("TRANSFER_CALL", "+8613800138000"),
        ("VOICE_MAIL", "801"),
        ("ONANSWER_TO_VM", "0"),
        ("ONANSWER_TO_VM", "601"),
        ("ONANSWER_TO_VM", "20s"),
        ("ONANSWER_TRANSFER", ""),
        ("ONANSWER_TRANSFER", ",20"),
        ("ONANSWER_TRANSFER", "801,"),
        ("ONANSWER_TRANSFER", "801,0"),
        ("ONANSWER_TRANSFER", "801,20,3"),
        ("DIAL_HTTP_DOCKING", ""),
        ("DIAL_HTTP_DOCKING", "crm.local/hook"),
        ("DIAL_HTTP_DOCKING", "ftp://crm.local"),
        ("CALLER_AREA_TRANSFER", ""),
        ("CALLER_AREA_TRANSFER", "801"),
        ("CALLER_AREA_TRANSFER", "010:801,"),
        ("CALLER_AREA_TRANSFER", "010:801,010:802"),
        ("CALLER_AREA_TRANSFER", "*:801,*:802"),
        ("CALLER_AREA_TRANSFER", "beijing:801"),
        ("CALLER_AREA_TRANSFER", "010:ext"),
        ("INCOMING_CALL_DELAY", ""),
        ("INCOMING_CALL_DELAY", "0"),
        ("INCOMING_CALL_DELAY", "121"),
        ("INCOMING_CALL_DELAY", "1.5"),
    ] {
        let (field, message) = action_err(op, p);
        assert_eq!(field, "parameters", "{op} {p:?}: {message}");
        assert!(
            message.contains(op),
            "{op} {p:?}: {message} should name the type"
        );
    }
    let (field, message) = action_err("PLAY_AND_HANGUP", &format!("tts:{}", "x".repeat(2001)));
    assert_eq!(field, "parameters", "{message}");
    let (field, message) = action_err("REDIRECT", "801");
    assert_eq!(field, "operationtype");
    assert!(
        message.contains("\"REDIRECT\"") && message.contains("TRANSFER_CALL"),
        "{message}"
    );
    // Required parameters say so.
    let (_, message) = action_err("TRANSFER_CALL", "");
    assert!(message.contains("required"), "{message}");
    let (_, message) = action_err("ONANSWER_TRANSFER", "x");
    assert!(message.contains("number,seconds"), "{message}");
}
