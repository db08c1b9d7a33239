//! The media engine end to end, with real pjsua2 phones on loopback: recordings (and
//! their download, interface 33), music on hold, meet-me rooms (mixing, listen-only,
//! whisper), DTMF in its three shapes, and text-to-speech prompts.
//!
//! Every test starts its own switch; runs need the pjsua2 venv and espeak-ng (`make deps`).

mod common;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use actors::media::dtmf::tone_amplitude;
use actors::media::wav::read_wav;
use base64::Engine as _;
use common::pjsua::{self, CallOpts};

fn with_switch<F, Fut>(extra: &str, test: F)
where
    F: FnOnce(ctiswitch::Switch) -> Fut,
    Fut: Future<Output = ctiswitch::Switch>,
{
    let extra = format!("{}\n{extra}", pjsua::TWO_EXTENSIONS);
    ctiswitch::build_system().block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let switch = common::start(dir.path(), &extra).await;
        let switch = test(switch).await;
        switch.stop().await.unwrap();
    });
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
        let opts = CallOpts {
            dtmf: "",
            talk: 4.0,
            ..CallOpts::default()
        };
        let r = pjsua::call(switch.sip_addr, &opts).await;
        assert_eq!(r["errors"], serde_json::json!([]), "{r}");
        let call_id = r["caller"]["call_id"]
            .as_str()
            .expect("call id")
            .to_string();
        let row = pjsua::wait_calllog(&switch.db, &call_id, Duration::from_secs(3))
            .await
            .expect("a call-log row");
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
                let ctype = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
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
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
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

/// `[recording] enabled = false`: no file, empty `recordVoice`.
#[test]
fn recording_off_records_nothing() {
    with_switch("[recording]\nenabled = false\n", |switch| async move {
        let opts = CallOpts {
            dtmf: "",
            talk: 1.0,
            ..CallOpts::default()
        };
        let r = pjsua::call(switch.sip_addr, &opts).await;
        let call_id = r["caller"]["call_id"]
            .as_str()
            .expect("call id")
            .to_string();
        let row = pjsua::wait_calllog(&switch.db, &call_id, Duration::from_secs(3))
            .await
            .expect("a call-log row");
        assert_eq!(row.record_voice, "", "{row:?}");
        switch
    });
}
