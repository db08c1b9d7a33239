//! The media engine end to end, with real pjsua2 phones on loopback: recordings (and
//! their download, interface 33), music on hold, meet-me rooms (mixing, listen-only,
//! whisper), DTMF in its three shapes, and text-to-speech prompts.
//!
//! Every test starts its own switch; runs need the pjsua2 venv and espeak-ng (`make deps`).

mod common;

use std::path::Path;
use std::time::Duration;

use actors::media::dtmf::tone_amplitude;
use actors::media::wav::read_wav;
use base64::Engine as _;
use common::pjsua::{self, with_switch, CallOpts};
use entities::calllog;
use serde_json::{json, Value};

/// 801 calls `callee` and both talk for `talk` s (no DTMF): the phones' result and the
/// call's call-log row.
async fn call(
    switch: &ctiswitch::Switch,
    callee: (&'static str, &'static str),
    talk: f64,
) -> (Value, calllog::Model) {
    let opts = CallOpts {
        dtmf: "",
        talk,
        callee,
        ..CallOpts::default()
    };
    let r = pjsua::call(switch.sip_addr, &opts).await;
    let row = pjsua::caller_row(&switch.db, &r).await;
    (r, row)
}

/// Left and right channels of a stereo WAV.
fn channels(path: &Path) -> (Vec<i16>, Vec<i16>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let wav = read_wav(&path.display().to_string(), &bytes).expect("a WAV file");
    assert_eq!(wav.channels, 2, "a stereo recording");
    assert_eq!(wav.sample_rate, 8_000);
    let left = wav.samples.chunks(2).map(|c| c[0]).collect();
    let right = wav.samples.chunks(2).map(|c| c[1]).collect();
    (left, right)
}

/// Seconds of 100 ms blocks where `freq` carries most of the block's power.
fn seconds_of(samples: &[i16], freq: f32) -> f64 {
    let blocks = samples.chunks(800).filter(|b| b.len() == 800);
    let dominated = blocks
        .filter(|b| {
            let rms = (b.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 800.0).sqrt();
            // A pure tone of amplitude A has RMS A/√2.
            rms > 300.0 && f64::from(tone_amplitude(b, freq)) > rms
        })
        .count();
    dominated as f64 * 0.1
}

/// Waits for the recording to be finished (its header counts all the data).
async fn finished_recording(path: &Path) {
    for _ in 0..50 {
        if let Ok(bytes) = std::fs::read(path) {
            let declared = bytes
                .get(40..44)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
            if declared == Some(bytes.len().saturating_sub(44)) && bytes.len() > 44 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An answered call is recorded as a stereo WAV: caller left, callee right, for the
/// length of the talk; the call log's `recordVoice` names it, and interface 33 serves it
/// by call-log id, by call id and by Base64 path — and nothing outside the recordings.
#[test]
fn an_answered_call_is_recorded_caller_left_callee_right_and_downloadable() {
    with_switch("", |switch| async move {
        let (r, row) = call(&switch, ("802", "p802"), 4.0).await;
        pjsua::assert_no_errors(&r);
        let call_id = pjsua::caller_call_id(&r).expect("call id").to_string();
        assert!(!row.record_voice.is_empty(), "recordVoice is set: {row:?}");
        let path = Path::new(&row.record_voice).to_path_buf();
        assert!(path.is_absolute(), "{path:?}");
        finished_recording(&path).await;
        let (left, right) = channels(&path);
        let talk = r["caller"]["talk_seconds"].as_f64().unwrap_or(0.0);
        let secs = left.len() as f64 / 8_000.0;
        assert!(
            (secs - talk).abs() <= 0.6,
            "recorded {secs:.2} s of a {talk:.2} s talk"
        );
        let (a_left, b_left) = (seconds_of(&left, 440.0), seconds_of(&left, 1000.0));
        let (a_right, b_right) = (seconds_of(&right, 440.0), seconds_of(&right, 1000.0));
        assert!(
            a_left >= talk - 1.0,
            "caller's 440 Hz on the left for {a_left:.1} s of {talk:.1}"
        );
        assert!(
            b_right >= talk - 1.0,
            "callee's 1000 Hz on the right for {b_right:.1} s"
        );
        assert!(
            b_left < 0.3 && a_right < 0.3,
            "no cross-talk: {b_left} {a_right}"
        );

        // Interface 33.
        let file = std::fs::read(&path).unwrap();
        let client = common::http();
        let fetch = |query: String| {
            let client = client.clone();
            let url = common::url(&switch, &format!("/Oms/FileDownServlet?{query}"));
            async move {
                let resp = client.get(url).send().await.expect("HTTP");
                let status = resp.status().as_u16();
                let ctype = common::content_type(&resp);
                (
                    status,
                    ctype,
                    resp.bytes().await.unwrap_or_default().to_vec(),
                )
            }
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(row.record_voice.as_bytes());
        for query in [
            format!("logId={}", row.id),
            format!("callid={}", call_id.replace('@', "%40")),
            format!("base64file={}", b64.replace('+', "%2B").replace('=', "%3D")),
        ] {
            let (status, ctype, body) = fetch(query.clone()).await;
            assert_eq!(status, 200, "{query}");
            assert!(ctype.starts_with("audio/"), "{query}: {ctype}");
            assert!(body == file, "{query}: the file, byte for byte");
        }
        let (status, _, body) = fetch(format!("allcallid={call_id}&backpath=true")).await;
        let json: Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(status, 200);
        assert_eq!(json["success"], true, "{json}");
        assert!(
            json["msg"].as_str().unwrap_or_default().ends_with(".wav"),
            "{json}"
        );
        // Outside the recordings folder, unknown ids, nonsense: refused.
        let passwd = base64::engine::general_purpose::STANDARD.encode("/etc/passwd");
        let dotdot = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}/../../test.db",
            path.parent().unwrap().display()
        ));
        for (query, want) in [
            (format!("base64file={passwd}"), 404),
            (format!("base64file={dotdot}"), 404),
            ("base64file=%%%".to_string(), 400),
            ("logId=999999".to_string(), 404),
            ("logId=abc".to_string(), 400),
            ("callid=nope".to_string(), 404),
            (String::new(), 400),
        ] {
            let (status, _, _) = fetch(query.clone()).await;
            assert_eq!(status, want, "{query}");
        }
        switch
    });
}

/// Per-extension settings beat the global one: with recording on, a call to 802
/// (`recording = false`) is not recorded; with it off, a call to 803 (`recording = true`)
/// is.
#[test]
fn extension_recording_settings_override_the_global_one() {
    for (global, callee, want) in [
        (true, ("802", "p802"), false),
        (false, ("803", "p803"), true),
    ] {
        // (An entry's own keys follow it.)
        let config = format!(
            "{}{}recording = false\n{}recording = true\n[recording]\nenabled = {global}\n",
            common::extension("801", "p801", &[]),
            common::extension("802", "p802", &[]),
            common::extension("803", "p803", &[]),
        );
        common::with_switch(&config, |switch| async move {
            let (_, row) = call(&switch, callee, 1.0).await;
            assert_eq!(
                !row.record_voice.is_empty(),
                want,
                "global {global}, callee {}: {row:?}",
                callee.0
            );
            switch
        });
    }
}

/// `[recording] enabled = false`: no file, empty `recordVoice`.
#[test]
fn recording_off_records_nothing() {
    with_switch("[recording]\nenabled = false\n", |switch| async move {
        let (_, row) = call(&switch, ("802", "p802"), 1.0).await;
        assert_eq!(row.record_voice, "", "{row:?}");
        switch
    });
}

// --- Meet-me rooms ----------------------------------------------------------------------

const ROOMS: &str = r#"
[[extensions]]
number = "803"
password = "p803"
[[conferences]]
number = "9000"
name = "open room"
[[conferences]]
number = "9100"
name = "room with a PIN"
pin = "2468"
"#;

const THREE_PHONES: &str = "801:p801,802:p802,803:p803";

/// `dial` arguments: 801 calls the PIN room 9100 without a tone of its own, then `more`.
fn pin_room_call<'a>(more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--caller", "801:p801", "--dial", "9100", "--no-tone"];
    args.extend_from_slice(more);
    args
}

/// The three phones dial room `room`, talk `talk` s after `settle` s: the `multi` scenario.
async fn multi(switch: &ctiswitch::Switch, room: &str, talk: &str, settle: &str) -> Value {
    let args = pjsua::args(&[
        "--phones",
        THREE_PHONES,
        "--dial",
        room,
        "--talk",
        talk,
        "--settle",
        settle,
    ]);
    pjsua::run(switch.sip_addr, "multi", &args, Duration::from_secs(60)).await
}

/// The members of room `room` (the admin API).
async fn members(switch: &ctiswitch::Switch, room: &str) -> Value {
    let path = format!("/api/v1/conferences/{room}/members");
    common::api(switch, reqwest::Method::GET, &path, None)
        .await
        .1
}

fn hears(r: &Value, phone: usize, freq: u32) -> f64 {
    r["phones"][phone]["hears"][freq.to_string()]
        .as_f64()
        .unwrap_or(-1.0)
}

/// Three phones dial room 9000: each hears the two others (about half the power each)
/// and not itself.
#[test]
fn three_members_of_a_room_each_hear_the_two_others_and_not_themselves() {
    with_switch(ROOMS, |switch| async move {
        let r = multi(&switch, "9000", "3", "1").await;
        pjsua::assert_no_errors(&r);
        let tones = [440, 1000, 1500];
        for (i, own) in tones.iter().enumerate() {
            let phone = &r["phones"][i];
            assert_eq!(phone["error"], Value::Null, "{phone}");
            for (j, other) in tones.iter().enumerate() {
                let share = hears(&r, i, *other);
                if i == j {
                    assert!(share < 0.05, "phone {i} hears itself ({own} Hz): {share}");
                } else {
                    assert!(
                        share > 0.3,
                        "phone {i} hears phone {j} ({other} Hz) at only {share}: {phone}"
                    );
                }
            }
        }
        switch
    });
}

/// Modes set through the admin API while the room talks: 803 listens only (nobody hears
/// it, it hears the talkers) and 801 whispers to 802 (only 802 hears it).
#[test]
fn a_listen_only_member_is_heard_by_nobody_and_a_whisper_only_by_its_target() {
    with_switch(ROOMS, |switch| async move {
        let set_modes = async {
            // Once all three are in, set the modes (well before the analysed window).
            for _ in 0..200 {
                let joined = members(&switch, "9000")
                    .await
                    .as_array()
                    .map(|m| m.iter().filter(|m| m["state"] == "joined").count())
                    .unwrap_or(0);
                if joined == 3 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let put = |member: &str, body: Value| {
                let path = format!("/api/v1/conferences/9000/members/{member}");
                let switch = &switch;
                async move { common::api(switch, reqwest::Method::PUT, &path, Some(&body)).await }
            };
            assert_eq!(put("803", json!({"mode": "listen"})).await.0, 200);
            let (status, body) = put("801", json!({"mode": "whisper", "to": "802"})).await;
            assert_eq!(status, 200);
            assert_eq!(body["mode"], "whisper", "{body}");
            assert_eq!(body["to"], "802", "{body}");
            // Bad requests: unknown member, whisper to oneself, nonsense.
            for (member, body, want) in [
                ("899", json!({"mode": "talk"}), 404),
                ("802", json!({"mode": "whisper", "to": "802"}), 400),
                ("802", json!({"mode": "sing"}), 400),
            ] {
                assert_eq!(put(member, body.clone()).await.0, want, "{member}: {body}");
            }
        };
        let (r, ()) = tokio::join!(multi(&switch, "9000", "4", "2"), set_modes);
        pjsua::assert_no_errors(&r);
        // 801 (440 Hz) whispers to 802; 803 (1500 Hz) only listens.
        for (phone, freq, min, what) in [
            (1, 440, 0.3, "802 hears the whisper"),
            (2, 1000, 0.5, "the listener hears 802"),
            (0, 1000, 0.5, "801 hears 802"),
        ] {
            assert!(
                hears(&r, phone, freq) > min,
                "{what}: {}",
                r["phones"][phone]
            );
        }
        for (phone, freq, what) in [
            (2, 440, "803 does not hear the whisper"),
            (0, 1500, "801 does not hear the listener"),
            (1, 1500, "802 does not hear the listener"),
        ] {
            assert!(
                hears(&r, phone, freq) < 0.05,
                "{what}: {}",
                r["phones"][phone]
            );
        }
        switch
    });
}

// --- DTMF and TTS, through a room with a PIN ---------------------------------------------

/// Collects every event of the switch's EventHub.
struct Collector(std::sync::Arc<std::sync::Mutex<Vec<actors::event_hub::HubEvent>>>);

impl actix::Actor for Collector {
    type Context = actix::Context<Self>;
}

impl actix::Handler<actors::event_hub::HubEvent> for Collector {
    type Result = ();
    fn handle(&mut self, ev: actors::event_hub::HubEvent, _: &mut Self::Context) {
        self.0.lock().unwrap().push(ev);
    }
}

fn collect_events(
    switch: &ctiswitch::Switch,
) -> std::sync::Arc<std::sync::Mutex<Vec<actors::event_hub::HubEvent>>> {
    use actix::Actor;
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let collector = Collector(events.clone()).start();
    switch
        .core
        .hub
        .do_send(actors::event_hub::Subscribe(collector.recipient()));
    events
}

fn digits(
    events: &std::sync::Arc<std::sync::Mutex<Vec<actors::event_hub::HubEvent>>>,
) -> Vec<(String, &'static str)> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            actors::event_hub::HubEvent::DtmfReceived(d) => Some((d.digit.clone(), d.source)),
            _ => None,
        })
        .collect()
}

/// 801 dials the PIN room and keys the PIN one way; every press is one `DtmfReceived`
/// event of that source, and the right PIN lets it in (the members API shows it joined).
fn pin_entry_test(method: &'static str, source: &'static str) {
    with_switch(ROOMS, move |switch| async move {
        let events = collect_events(&switch);
        let watch = async {
            // Sample the member's state while the call is up.
            let mut seen = Vec::new();
            for _ in 0..80 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Some(state) = members(&switch, "9100").await[0]["state"].as_str() {
                    if seen.last().map(String::as_str) != Some(state) {
                        seen.push(state.to_string());
                    }
                }
            }
            seen
        };
        let args = pin_room_call(&[
            "--dtmf",
            "2468",
            "--dtmf-method",
            method,
            "--dtmf-at",
            "1.0",
            "--talk",
            "6",
            "--hangup-after",
            "6",
        ]);
        let (r, states) = tokio::join!(
            pjsua::dial(switch.sip_addr, &args, Duration::from_secs(40)),
            watch
        );
        pjsua::assert_no_errors(&r);
        assert_eq!(r["invite_code"], 200, "{r}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let got = digits(&events);
        let want: Vec<(String, &'static str)> =
            "2468".chars().map(|d| (d.to_string(), source)).collect();
        assert_eq!(
            got, want,
            "one event per press, from {source}; dial result: {r}"
        );
        assert_eq!(
            states,
            vec!["pin".to_string(), "joined".to_string()],
            "asked for the PIN, then in the room"
        );
        let row = pjsua::caller_row(&switch.db, &r).await;
        assert_eq!(row.business, "CONFERENCE", "{row:?}");
        assert_eq!(row.callee, "9100", "{row:?}");
        assert_eq!(row.state, "STATE_RECEIVED", "{row:?}");
        switch
    });
}

#[test]
fn pin_keyed_as_rfc4733_events_is_detected_once_per_press() {
    pin_entry_test("rfc2833", "rfc4733");
}

#[test]
fn pin_keyed_as_sip_info_is_detected_once_per_press() {
    pin_entry_test("info", "info");
}

#[test]
fn pin_keyed_as_inband_tones_is_detected_once_per_press() {
    pin_entry_test("inband", "inband");
}

/// The PIN prompt is spoken by espeak-ng: the caller hears speech-band energy for about
/// as long as espeak-ng takes to say the sentence, starting at the answer.
#[test]
fn the_pin_prompt_is_spoken_by_espeak_ng() {
    with_switch(ROOMS, |switch| async move {
        // What espeak-ng makes of the prompt on its own, for the expected length.
        let engine = actors::media::tts::EspeakEngine::default();
        let samples =
            actors::media::tts::TtsEngine::synthesize(&engine, actors::conference::PIN_PROMPT)
                .await
                .expect("espeak-ng speaks (make deps installs it)");
        let expected = samples.len() as f64 / 8_000.0;
        let args = pin_room_call(&[
            "--talk",
            "8",
            "--hangup-after",
            "7",
            "--listen-freqs",
            "300,1000,2000",
        ]);
        let r = pjsua::dial(switch.sip_addr, &args, Duration::from_secs(40)).await;
        pjsua::assert_no_errors(&r);
        assert_eq!(r["invite_code"], 200, "{r}");
        let audio = &r["audio"]["caller"];
        let heard = audio["heard_seconds"].as_f64().unwrap_or(0.0);
        eprintln!(
            "TTS prompt: expected {expected:.2} s, heard {heard:.1} s from {:.1} to {:.1} s",
            audio["heard_from"], audio["heard_to"]
        );
        // Speech has pauses between words: most of it is non-silent blocks.
        assert!(
            heard >= 0.6 * expected && heard <= expected + 1.0,
            "heard {heard:.1} s of sound for a {expected:.1} s prompt: {}",
            audio["rms_timeline"]
        );
        let from = audio["heard_from"].as_f64().unwrap_or(99.0);
        let to = audio["heard_to"].as_f64().unwrap_or(0.0);
        assert!(
            (to - from) >= 0.8 * expected && (to - from) <= expected + 1.5,
            "sound from {from:.1} s to {to:.1} s for a {expected:.1} s prompt"
        );
        // Not a tone: no single frequency carries the sound.
        for f in ["300", "1000", "2000"] {
            let share = audio[f].as_f64().unwrap_or(1.0);
            assert!(
                share < 0.5,
                "{f} Hz carries {share} of the prompt: not speech"
            );
        }
        switch
    });
}

/// A music-on-hold file the switch cannot play stops the start, naming the file, rather
/// than leaving a held caller in silence later.
#[test]
fn an_unplayable_music_on_hold_file_is_refused_at_start_naming_the_file() {
    ctiswitch::build_system().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("moh.wav"), b"RIFF....WAVEfmt not really").unwrap();
        let config = common::config(dir.path(), "[media]\nmusic_on_hold = \"moh.wav\"\n");
        let err = match ctiswitch::start(config).await {
            Ok(switch) => {
                switch.stop().await.unwrap();
                panic!("the switch started with a broken music-on-hold file");
            }
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("moh.wav") && err.contains("music_on_hold"),
            "{err}"
        );
    });
}

// --- Interface 34: a recording played to an extension ------------------------------------

/// A recorded call (440 Hz from 801, 1000 Hz from 802), then
/// `PLAY_CALL_LOG_RECORD&callid=…&extnum=802&skipseconds=1`: the switch calls 802, which
/// hears both parties' tones for the recording's length minus the skipped second, and the
/// switch hangs up when it is over.
#[test]
fn play_call_log_record_calls_the_extension_and_plays_the_recording() {
    with_switch("", |switch| async move {
        let (r, row) = call(&switch, ("802", "p802"), 4.0).await;
        let call_id = pjsua::caller_call_id(&r).expect("call id").to_string();
        finished_recording(Path::new(&row.record_voice)).await;
        let (left, _) = channels(Path::new(&row.record_voice));
        let recorded = left.len() as f64 / 8_000.0;

        // Refusals first: nothing is called for them.
        for (query, want) in [
            ("opt=PLAY_CALL_LOG_RECORD&extnum=802".to_string(), 400),
            (format!("opt=PLAY_CALL_LOG_RECORD&callid={call_id}"), 400),
            (
                "opt=PLAY_CALL_LOG_RECORD&callid=nope&extnum=802".to_string(),
                404,
            ),
            (
                format!("opt=PLAY_CALL_LOG_RECORD&callid={call_id}&extnum=899"),
                404,
            ),
            (
                format!("opt=PLAY_CALL_LOG_RECORD&callid={call_id}&extnum=802&skipseconds=x"),
                400,
            ),
        ] {
            let (status, body) = common::callctrl(&switch, &query).await;
            assert_eq!(
                (status, body.trim()),
                (want, want.to_string().as_str()),
                "{query}"
            );
        }

        let phone = pjsua::answering_phone(
            switch.sip_addr,
            &[
                "--phone",
                "802:p802",
                "--no-tone",
                "--listen-freqs",
                "440,1000",
                "--talk",
                "12",
                "--answer-delay",
                "0.3",
            ],
        )
        .await;
        let cid = call_id.replace('@', "%40");
        let (status, body) = common::callctrl(
            &switch,
            &format!("opt=PLAY_CALL_LOG_RECORD&callid={cid}&extnum=802&skipseconds=1"),
        )
        .await;
        assert_eq!((status, body.trim()), (200, "200"));
        let result = phone.result(Duration::from_secs(30)).await;
        pjsua::assert_no_errors(&result);
        let callee = &result["callee"];
        assert_eq!(
            callee["hungup_locally"], false,
            "the switch hangs up: {callee}"
        );
        let audio = &result["audio"]["callee"];
        let (a, b) = (
            audio["440"].as_f64().unwrap_or(0.0),
            audio["1000"].as_f64().unwrap_or(0.0),
        );
        assert!(
            a > 0.25 && b > 0.25,
            "both parties heard: 440 {a:.2}, 1000 {b:.2}: {audio}"
        );
        let heard = audio["heard_seconds"].as_f64().unwrap_or(0.0);
        let talk = callee["talk_seconds"].as_f64().unwrap_or(0.0);
        eprintln!("recording {recorded:.2} s, skip 1 s: heard {heard:.1} s, call {talk:.2} s");
        assert!(
            (heard - (recorded - 1.0)).abs() <= 0.6,
            "heard {heard:.1} s of a {recorded:.2} s recording after skipping 1 s"
        );
        assert!(
            talk <= recorded + 0.5,
            "hung up when the recording ended: {talk:.2} s"
        );
        switch
    });
}
