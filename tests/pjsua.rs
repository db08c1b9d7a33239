//! Real SIP phones (pjsua2, tests/peers/pjphone.py) against a whole switch on loopback:
//! digest registration, and A-calls-B with media anchored in the switch — each side plays
//! its own tone and must hear the other's (and not its own), DTMF sent by A as RFC 4733
//! events arrives at B, either side hangs up, and the call log row tells the truth.
//! Default codecs, PCMU only, PCMA only, a delayed offer (no SDP in the INVITE) and TCP
//! signalling.
//!
//! Every test starts its own switch with extensions 801 / p801 and 802 / p802. Runs need the
//! pjsua2 venv (`make deps`); see tests/common/pjsua.rs.

mod common;

use common::pjsua::{self, last_state, CallOpts, Checks};
use serde_json::{json, Value};

/// Thresholds, calibrated on loopback (see the measured values in the report of each
/// run): the other side's tone is ~0.96–0.99 of what a phone hears, its own tone ~1e-5.
const HEARD_MIN_SHARE: f64 = 0.5;
const OWN_MAX_SHARE: f64 = 0.1;
/// The other side's tone must dominate at least this fraction of the talk time (B hears
/// nothing from A while A sends DTMF: RFC 4733 events replace the audio).
const HEARD_MIN_FRACTION: f64 = 0.5;

#[test]
fn extensions_register_with_digest_and_a_wrong_password_is_refused() {
    pjsua::with_switch("", |switch| async move {
        let sip = switch.sip_addr;
        let (a, b, wrong) = tokio::join!(
            pjsua::register(sip, "801", "p801", true),
            pjsua::register(sip, "802", "p802", false),
            pjsua::register(sip, "801", "not-p801", false),
        );
        assert_eq!(a["final"], 200, "801 registers: {a}");
        assert_eq!(a["unregister_codes"], json!([200]), "801 un-registers: {a}");
        assert_eq!(b["final"], 200, "802 registers: {b}");
        let code = wrong["final"].as_i64().unwrap_or(0);
        assert!(
            code == 403 || code == 401,
            "a wrong password is refused with 403 or 401, got {wrong}"
        );
        for r in [&a, &b, &wrong] {
            pjsua::assert_no_errors(r);
        }
        switch
    });
}

#[test]
fn call_caller_hangs_up() {
    call_test(CallOpts {
        hangup: "caller",
        ..CallOpts::default()
    });
}

#[test]
fn call_callee_hangs_up() {
    call_test(CallOpts {
        hangup: "callee",
        ..CallOpts::default()
    });
}

#[test]
fn call_pcmu_only() {
    call_test(CallOpts {
        codec: Some("PCMU"),
        hangup: "caller",
        ..CallOpts::default()
    });
}

#[test]
fn call_pcma_only() {
    call_test(CallOpts {
        codec: Some("PCMA"),
        hangup: "callee",
        ..CallOpts::default()
    });
}

#[test]
fn call_with_a_delayed_offer() {
    // A's INVITE has no SDP: the switch offers the codec B chose in its 200 and takes A's
    // answer from the ACK; tones, DTMF and the call log are checked as for any call.
    call_test(CallOpts {
        no_sdp_offer: true,
        hangup: "callee",
        ..CallOpts::default()
    });
}

#[test]
fn call_over_tcp() {
    call_test(CallOpts {
        transport: "tcp",
        hangup: "caller",
        ..CallOpts::default()
    });
}

fn call_test(opts: CallOpts) {
    pjsua::with_switch("", |switch| async move {
        let result = pjsua::call(switch.sip_addr, &opts).await;
        let mut c = Checks::default();
        check_call(&mut c, &result, &opts);
        check_calllog(&mut c, &switch, &result, &opts).await;
        c.assert_ok(&format!("{opts:?}"), &result);
        switch
    });
}

/// Everything the phones saw.
fn check_call(c: &mut Checks, r: &Value, o: &CallOpts) {
    c.check(
        r["errors"] == json!([]),
        format!("script errors: {}", r["errors"]),
    );
    c.check(
        r["register"]["a"] == 200 && r["register"]["b"] == 200,
        format!("both phones register: {}", r["register"]),
    );
    let (a, b) = (&r["caller"], &r["callee"]);
    c.check(
        a["connected"] == true,
        format!("A's call is answered: {}", a["states"]),
    );
    c.check(
        r["callee_calls"] == 1 && b["connected"] == true,
        format!(
            "B gets one call and answers it: {} {}",
            r["callee_calls"], b["states"]
        ),
    );
    c.check(
        last_state(a) == Some("DISCONNECTED") && last_state(b) == Some("DISCONNECTED"),
        format!("both calls end: {} / {}", a["states"], b["states"]),
    );
    c.check(
        a["call_id"].is_string() && a["call_id"] != b["call_id"],
        format!(
            "the B2BUA uses its own Call-ID towards B: {} / {}",
            a["call_id"], b["call_id"]
        ),
    );
    if o.no_sdp_offer {
        c.check(
            a["sdp_created"][0]["answers_an_offer"] == true,
            format!(
                "A made no offer and answered the switch's: {}",
                a["sdp_created"]
            ),
        );
    }
    if let Some(codec) = o.codec {
        for (who, side) in [("A", a), ("B", b)] {
            let got = side["codec"].as_str().unwrap_or("");
            c.check(
                got.eq_ignore_ascii_case(&format!("{codec}/8000")),
                format!("{who} talks {codec}, got {got:?}"),
            );
        }
    }
    // Audio: each hears the other's tone, not its own.
    for (who, heard, own) in [
        ("caller", o.tone_b, o.tone_a),
        ("callee", o.tone_a, o.tone_b),
    ] {
        let heard_share = pjsua::share(r, who, heard);
        let own_share = pjsua::share(r, who, own);
        c.check(
            heard_share >= HEARD_MIN_SHARE,
            format!(
                "{who} hears the other's {heard} Hz: share {heard_share:.4} < {HEARD_MIN_SHARE}"
            ),
        );
        c.check(
            own_share <= OWN_MAX_SHARE,
            format!("{who} does not hear its own {own} Hz: share {own_share:.4} > {OWN_MAX_SHARE}"),
        );
        let secs = pjsua::dominated_seconds(r, who, heard);
        c.check(
            secs >= HEARD_MIN_FRACTION * o.talk,
            format!(
                "{who} hears {heard} Hz for {secs:.1} s of a {} s talk",
                o.talk
            ),
        );
    }
    // DTMF: exactly the digits A sent, as RFC 4733 events, at B; nothing back at A.
    c.check(
        b["dtmf"] == o.dtmf,
        format!("B receives DTMF {:?}, got {}", o.dtmf, b["dtmf"]),
    );
    if !o.dtmf.is_empty() {
        c.check(
            b["dtmf_methods"] == json!(["rfc2833"]),
            format!("B's digits come as RFC 4733 events: {}", b["dtmf_methods"]),
        );
    }
    c.check(
        a["dtmf"] == "",
        format!("A receives no DTMF, got {}", a["dtmf"]),
    );
}

/// The call log row of the caller's Call-ID.
async fn check_calllog(c: &mut Checks, switch: &ctiswitch::Switch, r: &Value, o: &CallOpts) {
    let Some(row) = pjsua::checked_row(c, &switch.db, r).await else {
        return;
    };
    c.field(
        "callid",
        &row.callid,
        pjsua::caller_call_id(r).unwrap_or_default(),
    );
    c.field("caller", &row.caller, o.caller.0);
    c.field("callee", &row.callee, o.callee.0);
    c.ended(&row, "STATE_RECEIVED", o.hangup);
    c.field("business", &row.business, "CENTREX_CALL");
    c.field("callType", &row.call_type, "CENTREX_CALL");
    c.check(
        Some(row.peercallid.as_str()) == r["callee"]["call_id"].as_str(),
        format!(
            "peercallid {:?} is B's Call-ID {}",
            row.peercallid, r["callee"]["call_id"]
        ),
    );
    c.duration(&row, r);
    let ring = r["callee"]["ring_seconds"].as_f64().unwrap_or(-10.0);
    c.check(
        (f64::from(row.ring_duration) - ring).abs() <= 1.0,
        format!("ringDuration {} s, B rang {ring:.2} s", row.ring_duration),
    );
    // The millisecond stamps agree with the phones' clocks to well under a second.
    let ring_ms = (row.pickup_time - row.ring_time) as f64 / 1000.0;
    c.check(
        row.ring_time > 0 && (ring_ms - ring).abs() <= 0.5,
        format!("pickupTime - ringTime = {ring_ms:.3} s, B rang {ring:.2} s"),
    );
    c.check(
        row.begin_time > 0 && row.begin_time <= row.ring_time,
        format!("beginTime {} <= ringTime {}", row.begin_time, row.ring_time),
    );
}
