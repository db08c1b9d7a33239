//! Text-to-speech: the real espeak-ng, an HTTP engine against a local server started
//! here, and the cache. espeak-ng must be installed (`scripts/deps.sh`): without it the
//! tests fail rather than skip, so a missing engine is never mistaken for a pass.

use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actors::media::tts::{
    EspeakEngine, HttpEngine, TtsCache, TtsEngine, TtsError, TtsFuture, DEFAULT_TTS_TIMEOUT,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const RATE: f64 = 8_000.0;
const SENTENCE: &str = "Your call is important to us";
/// "你好 1+1" as it must appear in the request: RFC 3986, `%20` for the space.
const CHINESE: &str = "你好 1+1";
const CHINESE_ENCODED: &str = "%E4%BD%A0%E5%A5%BD%201%2B1";

/// The engine, after making sure espeak-ng is there: a clear failure, not a skip.
fn espeak() -> EspeakEngine {
    let found = std::process::Command::new("espeak-ng")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "espeak-ng is not installed or does not run: install it with scripts/deps.sh \
         (Debian package espeak-ng); these tests do not skip without it"
    );
    EspeakEngine::default()
}

fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Power of `freq` in `samples` (Goertzel), normalised by length.
fn power_at(samples: &[i16], freq: f64) -> f64 {
    let coeff = 2.0 * (2.0 * PI * freq / RATE).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / samples.len() as f64
}

#[tokio::test]
async fn espeak_speaks_a_sentence_at_8khz() {
    let engine = espeak();
    let started = Instant::now();
    let samples = engine.synthesize(SENTENCE).await.expect("espeak-ng speaks");
    let took = started.elapsed();
    let seconds = samples.len() as f64 / RATE;
    eprintln!(
        "espeak-ng: {SENTENCE:?} -> {} samples ({seconds:.2} s of audio) in {took:?}",
        samples.len()
    );
    assert!(
        (0.8..=4.0).contains(&seconds),
        "implausible length {seconds:.2} s"
    );
    let level = rms(&samples);
    assert!(level > 1_000.0, "too quiet for speech: RMS {level:.0}");

    // Speech, not a click and silence: most 100 ms blocks carry sound.
    let blocks: Vec<&[i16]> = samples.chunks_exact(800).collect();
    let voiced = blocks.iter().filter(|b| rms(b) > 300.0).count();
    assert!(
        voiced * 10 >= blocks.len() * 6,
        "only {voiced} of {} 100 ms blocks are not silent",
        blocks.len()
    );

    // The energy sits in the telephone band (not DC, not the edge of the band where
    // a bad resampler would fold aliases): 50 Hz bins over the voiced blocks.
    let (mut band, mut total) = (0.0, 0.0);
    for block in blocks.iter().filter(|b| rms(b) > 300.0) {
        for bin in 1..80 {
            let freq = f64::from(bin) * 50.0;
            let p = power_at(block, freq);
            total += p;
            if (150.0..=3_500.0).contains(&freq) {
                band += p;
            }
        }
    }
    eprintln!(
        "RMS {level:.0}, {voiced}/{} blocks voiced, {:.1}% of the energy in 150-3500 Hz",
        blocks.len(),
        100.0 * band / total
    );
    assert!(
        band / total > 0.85,
        "only {:.0}% of the energy in 150-3500 Hz",
        100.0 * band / total
    );
}

#[tokio::test]
async fn espeak_takes_text_that_looks_like_options_as_text() {
    // Passed after `--`: "--version" is spoken, not obeyed (which would print text, not
    // a WAV, and fail to decode).
    let samples = espeak()
        .synthesize("--version; echo $(id)")
        .await
        .expect("option-like text is spoken");
    assert!(samples.len() as f64 / RATE > 0.5);
}

#[tokio::test]
async fn espeak_voice_and_speed_are_used() {
    let slow = EspeakEngine {
        voice: Some("en-us".into()),
        speed_wpm: Some(100),
        ..espeak()
    };
    let fast = EspeakEngine {
        speed_wpm: Some(300),
        ..slow.clone()
    };
    let slow = slow.synthesize(SENTENCE).await.expect("slow");
    let fast = fast.synthesize(SENTENCE).await.expect("fast");
    assert!(
        slow.len() > fast.len() * 3 / 2,
        "100 wpm ({}) should be much longer than 300 wpm ({})",
        slow.len(),
        fast.len()
    );
    // Not "no-…": espeak-ng would take that as Norwegian with a variant.
    let bad = EspeakEngine {
        voice: Some("zzqnosuch".into()),
        ..espeak()
    };
    let err = match bad.synthesize(SENTENCE).await {
        Ok(samples) => panic!("an unknown voice spoke {} samples", samples.len()),
        Err(err) => err,
    };
    assert!(matches!(err, TtsError::Failed { .. }), "{err}");
    // The stderr excerpt says why.
    assert!(err.to_string().contains("voice"), "{err}");
}

#[tokio::test]
async fn empty_text_and_missing_program_are_errors() {
    let engine = espeak();
    for text in ["", "   \n"] {
        let err = engine.synthesize(text).await.unwrap_err();
        assert!(matches!(err, TtsError::EmptyText), "{text:?}: {err}");
    }
    let cache = TtsCache::new(Arc::new(engine));
    assert!(matches!(cache.speak("").await, Err(TtsError::EmptyText)));
    assert_eq!(
        cache.stats().misses,
        0,
        "empty text never reaches the engine"
    );

    let missing = EspeakEngine {
        program: PathBuf::from("/nonexistent/bin/espeak-ng-missing"),
        ..EspeakEngine::default()
    };
    let err = missing.synthesize(SENTENCE).await.unwrap_err();
    assert!(matches!(err, TtsError::Spawn { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("/nonexistent/bin/espeak-ng-missing"),
        "error does not name the program: {err}"
    );
}

/// Runs `engine` on a script, retrying while the freshly written file is "busy": another
/// test's fork may briefly hold the write descriptor (ETXTBSY).
async fn synthesize_script(engine: &EspeakEngine) -> Result<Vec<i16>, TtsError> {
    const ETXTBSY: i32 = 26;
    for _ in 0..50 {
        match engine.synthesize("hello").await {
            Err(TtsError::Spawn { source, .. }) if source.raw_os_error() == Some(ETXTBSY) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
    panic!("script stayed busy");
}

fn write_script(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-tts");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[tokio::test]
async fn a_hung_engine_times_out_and_is_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let script = write_script(
        dir.path(),
        &format!("echo $$ > {}\nexec sleep 30", pid_file.display()),
    );
    let engine = EspeakEngine {
        program: script,
        timeout: Duration::from_millis(500),
        ..EspeakEngine::default()
    };
    let started = Instant::now();
    let err = synthesize_script(&engine).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, TtsError::Timeout { .. }), "{err}");
    assert!(took < Duration::from_secs(3), "timed out after {took:?}");

    // kill_on_drop: the process is gone (or a zombie awaiting reaping), not sleeping.
    let pid = std::fs::read_to_string(&pid_file).expect("script wrote its pid");
    let stat = format!("/proc/{}/stat", pid.trim());
    let mut alive = true;
    for _ in 0..50 {
        alive = match std::fs::read_to_string(&stat) {
            Ok(s) => !s.contains(") Z "),
            Err(_) => false,
        };
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !alive,
        "the timed-out engine process {} still runs",
        pid.trim()
    );
}

#[tokio::test]
async fn a_failing_engine_reports_its_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = write_script(dir.path(), "echo 'synthesis exploded' >&2\nexit 3");
    let engine = EspeakEngine {
        program: script,
        ..EspeakEngine::default()
    };
    let err = synthesize_script(&engine).await.unwrap_err();
    assert!(matches!(err, TtsError::Failed { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("synthesis exploded") && text.contains('3'),
        "{text}"
    );
}

#[tokio::test]
async fn cache_hits_return_the_same_audio() {
    let cache = TtsCache::new(Arc::new(espeak()));
    let first = cache.speak(SENTENCE).await.expect("first");
    let started = Instant::now();
    let second = cache.speak(SENTENCE).await.expect("second");
    eprintln!("cache hit in {:?}", started.elapsed());
    assert!(Arc::ptr_eq(&first, &second), "a hit shares the samples");
    let other = cache.speak("Please hold").await.expect("other");
    assert!(!Arc::ptr_eq(&first, &other));
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (1, 2, 2));
    assert_eq!((cache.hits(), cache.misses()), (1, 2));
}

/// An engine that counts its runs, takes a while, and fails on "fail".
#[derive(Debug, Default)]
struct Counting {
    runs: AtomicUsize,
}

impl TtsEngine for Counting {
    fn synthesize<'a>(&'a self, text: &'a str) -> TtsFuture<'a> {
        Box::pin(async move {
            self.runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            if text == "fail" {
                return Err(TtsError::EmptyText);
            }
            Ok(vec![1; text.len()])
        })
    }

    fn name(&self) -> &str {
        "counting"
    }
}

#[tokio::test]
async fn concurrent_requests_share_one_synthesis() {
    let engine = Arc::new(Counting::default());
    let cache = TtsCache::new(engine.clone());
    let results = futures::future::join_all((0..5).map(|_| cache.speak("same"))).await;
    let results: Vec<Arc<[i16]>> = results.into_iter().map(|r| r.expect("ok")).collect();
    assert_eq!(engine.runs.load(Ordering::SeqCst), 1);
    assert!(results.iter().all(|r| Arc::ptr_eq(r, &results[0])));
    assert_eq!((cache.hits(), cache.misses()), (4, 1));
}

#[tokio::test]
async fn failures_are_not_cached_and_the_oldest_is_evicted() {
    let engine = Arc::new(Counting::default());
    let cache = TtsCache::with_capacity(engine.clone(), 2);
    assert!(cache.speak("fail").await.is_err());
    assert!(cache.speak("fail").await.is_err());
    assert_eq!(
        engine.runs.load(Ordering::SeqCst),
        2,
        "a failure is retried"
    );
    assert_eq!(cache.stats().entries, 0);

    for text in ["a", "b", "c"] {
        cache.speak(text).await.expect("ok");
    }
    assert_eq!(cache.stats().entries, 2);
    cache.speak("c").await.expect("c is kept");
    cache.speak("a").await.expect("a again");
    assert_eq!(
        engine.runs.load(Ordering::SeqCst),
        6,
        "a was evicted, c was not"
    );
    assert_eq!((cache.hits(), cache.misses()), (1, 6));
}

// --- HTTP engine against a local server ---------------------------------------------------

#[derive(Clone)]
enum Reply {
    Wav(Vec<u8>),
    Status500,
    Garbage,
    Silent,
}

/// A one-purpose HTTP/1.1 server on 127.0.0.1:0; returns its port and the request
/// targets it saw.
async fn serve(reply: Reply) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream, reply.clone(), log.clone()));
        }
    });
    (port, seen)
}

async fn answer(mut stream: TcpStream, reply: Reply, log: Arc<Mutex<Vec<String>>>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&request);
    let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
    log.lock().expect("log").push(target);
    let (status, body) = match reply {
        Reply::Wav(wav) => ("200 OK", wav),
        Reply::Status500 => ("500 Internal Server Error", b"engine down".to_vec()),
        Reply::Garbage => ("200 OK", b"<html>this is not audio</html>".to_vec()),
        Reply::Silent => {
            // Hold the connection open and never answer.
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: audio/wav\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}

/// One second of a 440 Hz tone, PCM16 mono at 16 kHz.
fn tone_wav_16k() -> Vec<u8> {
    const RATE_16K: u32 = 16_000;
    let data: Vec<u8> = (0..RATE_16K)
        .flat_map(|n| {
            let t = f64::from(n) / f64::from(RATE_16K);
            ((10_000.0 * (2.0 * PI * 440.0 * t).sin()) as i16).to_le_bytes()
        })
        .collect();
    let mut wav = b"RIFF".to_vec();
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&RATE_16K.to_le_bytes());
    wav.extend_from_slice(&(RATE_16K * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    wav
}

fn http_engine(port: u16) -> HttpEngine {
    HttpEngine::new(format!("http://127.0.0.1:{port}/tts/{{text}}.wav?voice=x"))
        .expect("engine")
        .with_timeout(Duration::from_millis(500))
}

#[tokio::test]
async fn http_engine_fetches_and_resamples() {
    let (port, seen) = serve(Reply::Wav(tone_wav_16k())).await;
    let engine = http_engine(port);
    assert_eq!(engine.timeout(), Duration::from_millis(500));
    let samples = engine.synthesize(CHINESE).await.expect("http tts");
    let targets = seen.lock().expect("log").clone();
    assert_eq!(
        targets,
        vec![format!("/tts/{CHINESE_ENCODED}.wav?voice=x")],
        "the text is percent-encoded UTF-8 in the URL"
    );
    assert!(
        samples.len().abs_diff(8_000) <= 20,
        "{} samples for 1 s",
        samples.len()
    );
    let tone = power_at(&samples, 440.0);
    for other in [220.0, 350.0, 550.0, 880.0, 1_000.0, 2_000.0, 3_000.0] {
        let p = power_at(&samples, other);
        assert!(
            tone > 100.0 * p,
            "440 Hz ({tone:.0}) not dominant over {other} Hz ({p:.0})"
        );
    }
    // Through the cache: one request, then a hit.
    let cache = TtsCache::new(Arc::new(engine));
    let a = cache.speak(CHINESE).await.expect("a");
    let b = cache.speak(CHINESE).await.expect("b");
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(seen.lock().expect("log").len(), 2);
}

#[tokio::test]
async fn http_errors_name_the_status_or_the_problem() {
    let (port, _) = serve(Reply::Status500).await;
    let err = http_engine(port).synthesize("hello").await.unwrap_err();
    assert!(
        matches!(&err, TtsError::HttpStatus { status, .. } if status.as_u16() == 500),
        "{err}"
    );
    assert!(err.to_string().contains("500"), "{err}");

    let (port, _) = serve(Reply::Garbage).await;
    let err = http_engine(port).synthesize("hello").await.unwrap_err();
    assert!(matches!(err, TtsError::Audio(_)), "{err}");

    let err = http_engine(port).synthesize(" ").await.unwrap_err();
    assert!(matches!(err, TtsError::EmptyText), "{err}");

    // Nothing listens on a port just released: a transport error, not a hang.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let err = http_engine(port).synthesize("hello").await.unwrap_err();
    assert!(matches!(err, TtsError::Http { .. }), "{err}");
    assert!(!err.to_string().contains("hello"), "the text leaks: {err}");
}

#[tokio::test]
async fn a_silent_http_server_times_out() {
    let (port, _) = serve(Reply::Silent).await;
    let engine = http_engine(port);
    let started = Instant::now();
    let err = engine.synthesize("hello").await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, TtsError::Timeout { .. }), "{err}");
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(2),
        "timed out after {took:?} for a 500 ms limit"
    );
    assert_eq!(DEFAULT_TTS_TIMEOUT, Duration::from_secs(10));
}
