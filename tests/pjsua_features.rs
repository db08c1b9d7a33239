//! Call features with real SIP phones (pjsua2, tests/peers/pjphone.py) against a whole
//! switch on loopback: re-INVITE pass-through (hold / unhold), the ring timeout (408 to the
//! caller, CANCEL to the callee), busy (486) and decline (603), a ring-all group (every
//! member rings, the first answer wins, the others are cancelled), and the RTP timeout.
//!
//! Every test starts its own switch with extensions 801 / p801 and 802 / p802 (803 / p803
//! for the group) plus the settings it is about. Runs need the pjsua2 venv (`make deps`);
//! see tests/common/pjsua.rs. `CTISWITCH_TEST_PJ_LOG=5` puts the phones' SIP trace into a
//! failure's message; `CTISWITCH_TEST_LOG=debug` turns on the switch's own log (stderr).

mod common;

use std::time::Duration;

use common::pjsua::{self, basics, checked_row, last_state, time, with_switch, CallOpts, Checks};
use serde_json::{json, Value};

/// The built-in music on hold's notes (actors::media::moh::BUILTIN_NOTES_HZ, rounded).
const MUSIC_NOTES: [u32; 3] = [523, 659, 784];

/// Tone thresholds, as in tests/pjsua.rs: the other side's tone is ~0.96–0.99 of what a
/// phone hears, its own ~1e-5.
const HEARD_MIN_SHARE: f64 = 0.5;
/// In a time window, the other side's tone must dominate at least this fraction of the
/// 100 ms blocks (measured: 0.9–1.0; a codec change mid-call can garble a few blocks).
const WINDOW_MIN_FRACTION: f64 = 0.6;
/// ... and at most this fraction where it must not be heard.
const WINDOW_MAX_FRACTION: f64 = 0.2;
/// The RTP timeout the media tests configure, in seconds.
const RTP_TIMEOUT: f64 = 2.0;
/// The ring timeout the ring test configures, in seconds.
const RING_TIMEOUT: f64 = 2.0;
/// Slack on the switch's timers: its timer fires on time, the BYE/408 is one loopback hop.
const TIMER_SLACK: f64 = 3.0;

const EXTENSION_803: &str = r#"
[[extensions]]
number = "803"
password = "p803"
"#;

/// How many call-log rows the switch wrote (polled: the log is written in batches).
async fn calllog_count(switch: &ctiswitch::Switch) -> usize {
    use sea_orm::{EntityTrait, PaginatorTrait};
    let mut n = 0;
    for _ in 0..10 {
        n = entities::calllog::Entity::find()
            .count(&switch.db)
            .await
            .expect("count call log") as usize;
        if n > 0 {
            // Let a (wrong) second row that is on its way land too.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return entities::calllog::Entity::find()
                .count(&switch.db)
                .await
                .expect("count call log") as usize;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    n
}

// --- 1. re-INVITE pass-through: hold and unhold ------------------------------------------

/// A holds B for 1.5 s (re-INVITE with a=sendonly) and takes it off hold (re-INVITE with
/// a=sendrecv), both through the switch, which passes each re-INVITE to the other leg and
/// rewrites the SDP to its relay.
///
/// While held, B (recvonly) hears the switch's music on hold instead of A, and sends
/// nothing, so A hears silence. Audio is
/// judged in time windows of the recordings: `held` (hold + 0.5 s .. unhold) and
/// `after_unhold` (the last 1.5 s before A hangs up, i.e. from unhold + 0.5 s).
fn hold_test(name: &str, codec: Option<&'static str>) {
    hold_test_with(
        name,
        "",
        CallOpts {
            codec,
            // Longer than one bar of the built-in music (1.5 s): it must loop.
            hold: Some(3.5),
            ..CallOpts::default()
        },
    );
}

/// `hold_test` with `extra` switch config and `opts.hold`, `opts.hold_dir`, `opts.codec`.
fn hold_test_with(name: &str, extra: &str, opts: CallOpts) {
    let opts = CallOpts {
        talk: 2.0,
        talk_after: 2.0,
        dtmf: "",
        answer_delay: 1.0,
        hangup: "caller",
        ..opts
    };
    let codec = opts.codec;
    let inactive = opts.hold_dir == "inactive";
    let music = !extra.contains("music_on_hold") && !inactive;
    let opts = CallOpts {
        listen_freqs: music.then_some("523,659,784"),
        ..opts
    };
    let name = name.to_string();
    with_switch(extra, |switch| async move {
        let r = pjsua::call(switch.sip_addr, &opts).await;
        let mut c = Checks::default();
        basics(&mut c, &r);
        let (a, b) = (&r["caller"], &r["callee"]);
        c.check(
            a["states"]
                == json!([
                    "CALLING",
                    "EARLY",
                    "CONNECTING",
                    "CONFIRMED",
                    "DISCONNECTED"
                ]),
            format!(
                "A's call stays CONFIRMED through both re-INVITEs until A hangs up: {}",
                a["states"]
            ),
        );
        c.check(
            r["unhold_at"].is_number(),
            format!(
                "the call is still up when A takes it off hold ({} s after the hold): {}",
                opts.hold.unwrap_or(0.0),
                a["states"]
            ),
        );
        c.check(
            a["hungup_locally"] == true && b["hungup_locally"] == false,
            "A hung up (nobody else ended the call)",
        );
        c.check(
            r["callee_calls"] == 1 && last_state(b) == Some("DISCONNECTED"),
            format!(
                "B gets one call, ended: {} {}",
                r["callee_calls"], b["states"]
            ),
        );
        // Both re-INVITEs succeed end to end: A's (sent) and B's (received) INVITE
        // transactions: the initial one, hold, unhold.
        let codes = |side: &Value, role: &str| -> Vec<Value> {
            side["invites"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .filter(|t| t["role"] == role)
                        .map(|t| t["code"].clone())
                        .collect()
                })
                .unwrap_or_default()
        };
        c.check(
            codes(a, "uac") == vec![json!(200); 3],
            format!(
                "A's INVITE, hold and unhold re-INVITEs get 200: {}",
                a["invites"]
            ),
        );
        c.check(
            codes(b, "uas") == vec![json!(200); 3],
            format!(
                "B gets the INVITE and both re-INVITEs and answers 200: {}",
                b["invites"]
            ),
        );
        c.check(
            a["media_statuses"] == json!(["ACTIVE", "LOCAL_HOLD", "ACTIVE"]),
            format!("A's media: active, local hold, active: {}", a["media"]),
        );
        c.check(
            b["media_statuses"] == json!(["ACTIVE", "REMOTE_HOLD", "ACTIVE"]),
            format!("B's media: active, remote hold, active: {}", b["media"]),
        );
        // The switch offers B only the codecs it carries (PCMU, PCMA): the call must stay
        // on them when the phones renegotiate through it.
        for (who, side) in [("A", a), ("B", b)] {
            let codecs: Vec<&str> = side["codecs"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            c.check(
                !codecs.is_empty()
                    && codecs
                        .iter()
                        .all(|k| k.eq_ignore_ascii_case("PCMU/8000") || k.eq_ignore_ascii_case("PCMA/8000")),
                format!(
                    "{who}'s call stays on the switch's codecs (PCMU/PCMA) across the re-INVITEs: {codecs:?}"
                ),
            );
            if let Some(only) = codec {
                c.check(
                    codecs
                        .iter()
                        .all(|k| k.eq_ignore_ascii_case(&format!("{only}/8000"))),
                    format!("{who} talks only {only}: {codecs:?}"),
                );
            }
        }
        // Audio around the hold.
        let (ta, tb) = (opts.tone_a, opts.tone_b);
        for (who, heard) in [("caller", tb), ("callee", ta)] {
            let before = pjsua::window_share(&r, who, "before_hold", heard);
            c.check(
                before >= WINDOW_MIN_FRACTION,
                format!("{who} hears {heard} Hz before the hold: {before:.2} of the blocks"),
            );
            let after = pjsua::window_share(&r, who, "after_unhold", heard);
            c.check(
                after >= WINDOW_MIN_FRACTION,
                format!(
                    "{who} hears {heard} Hz again in the last 1.5 s, after the unhold: {after:.2} of the blocks ({})",
                    r["audio"][who]["windows"]["after_unhold"]["timeline"]
                ),
            );
            let own = pjsua::share(&r, who, if heard == ta { tb } else { ta });
            c.check(
                own <= 0.1,
                format!("{who} does not hear its own tone: share {own:.4}"),
            );
        }
        let held = pjsua::window_share(&r, "caller", "held", tb);
        c.check(
            held <= WINDOW_MAX_FRACTION,
            format!("A hears nothing from B (recvonly) while B is held: {held:.2} of the blocks"),
        );
        let held_b = pjsua::window_share(&r, "callee", "held", ta);
        if inactive {
            c.check(
                held_b <= WINDOW_MAX_FRACTION,
                format!("B hears nothing while the call is inactive: {held_b:.2} of the blocks"),
            );
        } else if music {
            c.check(
                held_b <= WINDOW_MAX_FRACTION,
                format!("B (held) hears the switch's music, not A: A's tone in {held_b:.2} of the blocks"),
            );
            // The built-in music: C5, E5, G5, E5 and a rest, looping.
            let notes: f64 = MUSIC_NOTES
                .iter()
                .map(|f| pjsua::window_share(&r, "callee", "held", *f))
                .sum();
            // The second half of the held window (past the first 1.5 s bar) has notes too:
            // the music loops.
            let held_timeline = r["audio"]["callee"]["windows"]["held"]["timeline"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let second_half = &held_timeline[held_timeline.len() / 2..];
            let later_notes = second_half
                .chars()
                .filter(|c| c.is_ascii_lowercase())
                .count();
            c.check(
                later_notes * 3 >= second_half.len(),
                format!("the music loops: {held_timeline}"),
            );
            c.check(
                notes >= 0.4,
                format!(
                    "B (held) hears the music's notes in {notes:.2} of the blocks: {}",
                    r["audio"]["callee"]["windows"]["held"]["timeline"]
                ),
            );
            let after = MUSIC_NOTES
                .iter()
                .map(|f| pjsua::window_share(&r, "callee", "after_unhold", *f))
                .sum::<f64>();
            c.check(
                after <= WINDOW_MAX_FRACTION,
                format!("the music stops at the unhold: {after:.2} of the blocks after"),
            );
        } else {
            c.check(
                held_b >= WINDOW_MIN_FRACTION,
                format!("B (held) still hears what A sends (sendonly): {held_b:.2} of the blocks"),
            );
        }
        // One call-log row, a normal answered call.
        if let Some(row) = checked_row(&mut c, &switch.db, &r).await {
            c.ended(&row, "STATE_RECEIVED", "caller");
            c.field("callee", &row.callee, "802");
            c.duration(&row, &r);
        }
        let rows = calllog_count(&switch).await;
        c.check(rows == 1, format!("one call-log row, got {rows}"));
        c.assert_ok(&name, &r);
        switch
    });
}

#[test]
fn hold_and_unhold_pass_through_pcmu_only() {
    hold_test("hold/unhold, PCMU only", Some("PCMU"));
}

/// The phones offer everything they have (speex, iLBC, GSM, G.722, PCMU, PCMA…), as real
/// phones do, in the re-INVITEs too.
#[test]
fn hold_and_unhold_pass_through_with_the_phones_default_codecs() {
    hold_test("hold/unhold, default codecs", None);
}

/// With `[media] music_on_hold = "off"` the switch plays nothing of its own: the held
/// party hears what the holding phone sends (here A's tone).
#[test]
fn hold_without_music_passes_the_holders_audio_through() {
    hold_test_with(
        "hold/unhold, music on hold off",
        "[media]\nmusic_on_hold = \"off\"\n",
        CallOpts {
            codec: Some("PCMU"),
            hold: Some(1.5),
            ..CallOpts::default()
        },
    );
}

/// A hold with a=inactive (both directions off: no RTP at all) that lasts twice the RTP
/// timeout (`[media] rtp_timeout = 2`, hold 4 s). A held call is not a dead call: it must
/// survive the hold, come back with audio both ways, and end when A hangs up. (The relay
/// suspends its timeout while a direction is paused, "since a held party may send nothing".)
#[test]
fn inactive_hold_longer_than_the_rtp_timeout_keeps_the_call() {
    hold_test_with(
        "a=inactive hold of 2 x rtp_timeout",
        &media_config(),
        CallOpts {
            codec: Some("PCMU"),
            hold: Some(2.0 * RTP_TIMEOUT),
            hold_dir: "inactive",
            ..CallOpts::default()
        },
    );
}

// --- 2. ring timeout ---------------------------------------------------------------------

/// B rings for ever (180, never answers); with `[sip] ring_timeout = 2` the switch gives A a
/// final 408 after ~2 s and cancels B's INVITE (B: 487).
#[test]
fn ring_timeout_gives_the_caller_408_and_cancels_the_callee() {
    let extra = format!("[sip]\nring_timeout = {}\n", RING_TIMEOUT as u64);
    let opts = CallOpts {
        answer_code: 180,
        dtmf: "",
        ..CallOpts::default()
    };
    with_switch(&extra, |switch| async move {
        let r = pjsua::call(switch.sip_addr, &opts).await;
        let mut c = Checks::default();
        basics(&mut c, &r);
        let (a, b) = (&r["caller"], &r["callee"]);
        c.check(
            a["last_code"] == 408 && a["connected"] == false,
            format!("A gets a final 408: {} {}", a["last_code"], a["states"]),
        );
        c.check(a["hungup_locally"] == false, "A did not give up by itself");
        let setup = a["setup_seconds"].as_f64().unwrap_or(-1.0);
        c.check(
            (RING_TIMEOUT - 0.2..=RING_TIMEOUT + TIMER_SLACK).contains(&setup),
            format!("A's INVITE fails after the ring timeout ({RING_TIMEOUT} s): {setup:.2} s"),
        );
        c.check(
            r["callee_calls"] == 1 && b["connected"] == false,
            format!(
                "B rings once and never answers: {} {}",
                r["callee_calls"], b["states"]
            ),
        );
        c.check(
            last_state(b) == Some("DISCONNECTED") && b["last_code"] == 487,
            format!(
                "B's INVITE is cancelled (487): {} {}",
                b["states"], b["last_code"]
            ),
        );
        c.together(
            time(a, "disconnected"),
            time(b, "disconnected"),
            1.0,
            "B's ringing stops with A's call",
        );
        if let Some(row) = checked_row(&mut c, &switch.db, &r).await {
            c.ended(&row, "STATE_FAILED", "system");
            c.field("callee", &row.callee, "802");
            c.never_answered(&row);
            c.check(
                row.ring_time > 0 && (f64::from(row.ring_duration) - RING_TIMEOUT).abs() <= 1.0,
                format!(
                    "B rang for the ring timeout: ringTime {} ringDuration {}",
                    row.ring_time, row.ring_duration
                ),
            );
        }
        c.assert_ok("ring timeout", &r);
        switch
    });
}

// --- 3. busy and decline -----------------------------------------------------------------

/// B refuses with `code` at once; A's INVITE ends with that code.
fn refused_test(code: u16) {
    let opts = CallOpts {
        answer_code: code,
        dtmf: "",
        ..CallOpts::default()
    };
    with_switch("", |switch| async move {
        let r = pjsua::call(switch.sip_addr, &opts).await;
        let mut c = Checks::default();
        basics(&mut c, &r);
        let (a, b) = (&r["caller"], &r["callee"]);
        c.check(
            a["last_code"] == code && a["connected"] == false,
            format!(
                "A's call fails with {code}: {} {}",
                a["last_code"], a["states"]
            ),
        );
        let setup = a["setup_seconds"].as_f64().unwrap_or(-1.0);
        c.check(
            (0.0..=1.0).contains(&setup),
            format!("at once, not after a timeout: {setup:.2} s"),
        );
        c.check(
            r["callee_calls"] == 1 && b["last_code"] == code,
            format!(
                "B got one call and refused it with {code}: {}",
                b["last_code"]
            ),
        );
        if let Some(row) = checked_row(&mut c, &switch.db, &r).await {
            c.ended(&row, "STATE_FAILED", "callee");
            c.field("callee", &row.callee, "802");
            c.never_answered(&row);
        }
        c.assert_ok(&format!("callee refuses with {code}"), &r);
        switch
    });
}

#[test]
fn busy_callee_gives_the_caller_486() {
    refused_test(486);
}

#[test]
fn declining_callee_gives_the_caller_603() {
    refused_test(603);
}

// --- 4. group ring-all -------------------------------------------------------------------

/// A (801) dials group 3003 (ring-all: 802 and 803). The switch answers A (it waits in
/// the queue with music on hold); both phones ring; 802 never answers, 803 answers after
/// 1.5 s; the switch cancels 802 and bridges A with 803.
#[test]
fn ring_all_group_rings_every_member_and_the_first_answer_wins() {
    let extra = format!(
        r#"{EXTENSION_803}
[[groups]]
number = "3003"
strategy = "ring-all"
members = [{{ extension = "802" }}, {{ extension = "803" }}]
"#
    );
    let opts = CallOpts {
        dial: Some("3003"),
        answer_code: 180,
        callee2: Some(("803", "p803")),
        answer_code2: 200,
        answer_delay2: 1.5,
        // From the switch's answer: 1.5 s in the queue, then 2.5 s with 803.
        talk: 4.0,
        dtmf: "",
        hangup: "caller",
        ..CallOpts::default()
    };
    let with_agent = opts.talk - opts.answer_delay2;
    with_switch(&extra, |switch| async move {
        let r = pjsua::call(switch.sip_addr, &opts).await;
        let mut c = Checks::default();
        basics(&mut c, &r);
        let (a, b, m) = (&r["caller"], &r["callee"], &r["callee2"]);
        c.check(
            a["connected"] == true,
            format!("A's call is answered: {}", a["states"]),
        );
        c.check(
            r["callee_calls"] == 1 && r["callee2_calls"] == 1,
            format!(
                "both members ring once: 802 {} / 803 {}",
                r["callee_calls"], r["callee2_calls"]
            ),
        );
        c.together(
            time(b, "incoming"),
            time(m, "incoming"),
            0.5,
            "802 and 803 ring together",
        );
        c.check(
            m["connected"] == true && last_state(m) == Some("DISCONNECTED"),
            format!("803 answers, and the call ends: {}", m["states"]),
        );
        c.check(
            b["connected"] == false
                && b["states"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|x| x == "EARLY"))
                && last_state(b) == Some("DISCONNECTED")
                && b["last_code"] == 487,
            format!(
                "802 rang and was cancelled (487): {} {}",
                b["states"], b["last_code"]
            ),
        );
        c.together(
            time(b, "disconnected"),
            time(m, "confirmed"),
            1.0,
            "802 stops ringing when 803 answers",
        );
        c.check(
            a["call_id"] != m["call_id"] && m["call_id"].is_string(),
            "the switch calls 803 with its own Call-ID",
        );
        // Audio between A and 803.
        for (who, heard, own) in [
            ("caller", opts.tone_c, opts.tone_a),
            ("callee2", opts.tone_a, opts.tone_c),
        ] {
            let heard_share = pjsua::share(&r, who, heard);
            c.check(
                heard_share >= HEARD_MIN_SHARE,
                format!("{who} hears {heard} Hz: share {heard_share:.4}"),
            );
            let own_share = pjsua::share(&r, who, own);
            c.check(
                own_share <= 0.1,
                format!("{who} does not hear its own {own} Hz: share {own_share:.4}"),
            );
            let secs = pjsua::dominated_seconds(&r, who, heard);
            c.check(
                secs >= 0.5 * with_agent,
                format!("{who} hears {heard} Hz for {secs:.1} s of {with_agent} s"),
            );
        }
        let stray = pjsua::share(&r, "caller", opts.tone_b);
        c.check(
            stray <= 0.1,
            format!("A hears nothing of 802: share {stray:.4}"),
        );
        if let Some(row) = checked_row(&mut c, &switch.db, &r).await {
            c.ended(&row, "STATE_RECEIVED", "caller");
            // The member who answered.
            c.field("callee", &row.callee, "803");
            c.field("caller", &row.caller, "801");
            c.check(
                Some(row.peercallid.as_str()) == m["call_id"].as_str(),
                format!(
                    "peercallid {:?} is 803's Call-ID {}",
                    row.peercallid, m["call_id"]
                ),
            );
        }
        let rows = calllog_count(&switch).await;
        c.check(rows == 1, format!("one call-log row, got {rows}"));
        c.assert_ok("ring-all group", &r);
        switch
    });
}

// --- 5. RTP timeout ----------------------------------------------------------------------
//
// What the relay does (actors/src/media/relay.rs): once the call is answered
// (`RelayHandle::start`) it remembers the last time an RTP packet (not RTCP) arrived on
// EITHER side; when none has arrived on either side for `rtp_timeout`, it reports
// `RelayEvent::Timeout` and the call hangs up both legs with BYE (call log: "system").
// The timeout is suspended while a direction is paused, which the call never does today.
// A packet from one side alone keeps the whole call alive.

fn media_config() -> String {
    format!("[media]\nrtp_timeout = {}\n", RTP_TIMEOUT as u64)
}

/// The media path dies while signalling lives: 1 s after the answer, the process running
/// both phones stops its conference bridge (no sound-device clock), so neither phone sends
/// RTP any more, while both still answer SIP. The switch must hang up both within
/// rtp_timeout (+ slack), with BYE.
#[test]
fn rtp_timeout_hangs_up_both_phones_when_no_rtp_flows() {
    let opts = CallOpts {
        media_stop_after: Some(1.0),
        // The longest A waits for the switch's BYE before hanging up itself.
        talk: RTP_TIMEOUT + TIMER_SLACK + 2.0,
        answer_delay: 0.5,
        dtmf: "",
        ..CallOpts::default()
    };
    with_switch(&media_config(), |switch| async move {
        let r = pjsua::call(switch.sip_addr, &opts).await;
        let mut c = Checks::default();
        basics(&mut c, &r);
        let stopped = r["media_stopped_at"].as_f64().unwrap_or(0.0);
        c.check(stopped > 0.0, "the phones stopped their media");
        for (who, side) in [("A", &r["caller"]), ("B", &r["callee"])] {
            c.check(
                side["connected"] == true,
                format!("{who}'s call was answered: {}", side["states"]),
            );
            c.check(
                last_state(side) == Some("DISCONNECTED") && side["hungup_locally"] == false,
                format!(
                    "the switch hung up {who} (BYE): {} locally={}",
                    side["states"], side["hungup_locally"]
                ),
            );
            let after = time(side, "disconnected").unwrap_or(f64::MAX) - stopped;
            c.check(
                (RTP_TIMEOUT - 0.3..=RTP_TIMEOUT + TIMER_SLACK).contains(&after),
                format!("{who} gets the BYE {after:.2} s after the last RTP (rtp_timeout {RTP_TIMEOUT} s)"),
            );
        }
        if let Some(row) = checked_row(&mut c, &switch.db, &r).await {
            c.ended(&row, "STATE_RECEIVED", "system");
            c.duration(&row, &r);
        }
        c.assert_ok("RTP timeout, no RTP at all", &r);
        switch
    });
}

/// A phone that vanishes: B runs in its own process, answers, and 1 s later exits at once
/// (no BYE, no more RTP). A, alive, keeps talking into the call for up to rtp_timeout + 5 s.
/// A caller left alone with dead air must be hung up (BYE) within rtp_timeout (+ slack) of
/// B's last packet, and the call log must say the system ended it.
#[test]
fn rtp_timeout_hangs_up_the_caller_when_the_callee_vanishes() {
    with_switch(&media_config(), |switch| async move {
        let sip = switch.sip_addr;
        // B registers (a 200) before A calls.
        let b = pjsua::answering_phone(
            sip,
            &[
                "--phone",
                "802:p802",
                "--answer-delay",
                "0.5",
                "--die-after",
                "1.0",
                "--setup-timeout",
                "20",
            ],
        )
        .await;
        let talk = (RTP_TIMEOUT + 5.0).to_string();
        let a_args = ["--caller", "801:p801", "--dial", "802", "--talk", &talk];
        let (r, b_end) = tokio::join!(
            pjsua::dial(sip, &a_args, Duration::from_secs(40)),
            b.finish(Duration::from_secs(30)),
        );
        let mut c = Checks::default();
        basics(&mut c, &r);
        let dying = b_end.lines.iter().find(|l| l["event"] == "dying");
        c.check(
            b_end.code == Some(9) && dying.is_some(),
            format!(
                "B vanished (exit 9 after a \"dying\" event): {:?} {:?}",
                b_end.code, b_end.lines
            ),
        );
        let died = dying.and_then(|d| d["t"].as_f64()).unwrap_or(0.0);
        let a = &r["caller"];
        c.check(
            a["connected"] == true,
            format!("A's call was answered: {}", a["states"]),
        );
        c.check(
            a["hungup_locally"] == false,
            format!(
                "the switch hung up A (BYE) rather than A giving up after {} s of dead air",
                RTP_TIMEOUT + 5.0
            ),
        );
        let after = time(a, "disconnected").unwrap_or(f64::MAX) - died;
        c.check(
            after <= RTP_TIMEOUT + TIMER_SLACK,
            format!("A gets the BYE {after:.2} s after B vanished (rtp_timeout {RTP_TIMEOUT} s)"),
        );
        // A heard B's tone until B vanished: the call was real.
        let heard = pjsua::dominated_seconds(&r, "caller", 1000);
        c.check(
            heard >= 0.5,
            format!("A heard B for {heard:.1} s before B vanished"),
        );
        if let Some(row) = checked_row(&mut c, &switch.db, &r).await {
            c.ended(&row, "STATE_RECEIVED", "system");
        }
        c.assert_ok("RTP timeout, the callee vanishes", &r);
        switch
    });
}
