//! Text-to-speech behind the [`TtsEngine`] trait, producing 8 kHz mono samples ready for
//! [`super::playback::PromptSource`].
//!
//! - [`EspeakEngine`]: runs the local `espeak-ng` program and decodes the WAV it streams.
//! - [`HttpEngine`]: GETs audio from a URL template with the text percent-encoded in it.
//! - [`TtsCache`]: remembers what an engine said, by text, so a prompt spoken to a
//!   thousand callers is synthesized once, and shares one synthesis between concurrent
//!   requests for the same text.

use std::collections::{HashMap, VecDeque};
use std::fmt::{self, Debug};
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::OnceCell;

use super::wav::{decode_prompt, WavError};

/// How long an engine may take for one text before the caller gets [`TtsError::Timeout`].
pub const DEFAULT_TTS_TIMEOUT: Duration = Duration::from_secs(10);
/// Texts a [`TtsCache`] keeps by default: IVR menus use a few dozen sentences, and 256
/// of a few seconds each is a few tens of MB at most.
pub const DEFAULT_TTS_CACHE_ENTRIES: usize = 256;
/// The program [`EspeakEngine`] runs unless told otherwise (found through `PATH`).
pub const DEFAULT_ESPEAK_PROGRAM: &str = "espeak-ng";
/// Most audio accepted from an HTTP engine: a misbehaving server must not fill memory.
/// 32 MiB is over ten minutes of 16-bit 22 kHz audio.
pub const MAX_HTTP_AUDIO_BYTES: usize = 32 << 20;
/// How much of an engine's stderr goes into an error message.
const STDERR_EXCERPT_BYTES: usize = 400;
/// The placeholder in an [`HttpEngine`] URL template.
const TEXT_PLACEHOLDER: &str = "{text}";

// WAV header layout, for repairing the lengths of a streamed header.
const RIFF_HEADER_LEN: usize = 12;
const CHUNK_HEADER_LEN: usize = 8;

/// Why a text could not be spoken. Every variant names the engine.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    #[error("nothing to speak: the text is empty")]
    EmptyText,
    #[error("{engine}: could not start {program}: {source}")]
    Spawn {
        engine: String,
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("{engine}: {program} failed ({status}): {stderr}")]
    Failed {
        engine: String,
        program: String,
        status: String,
        stderr: String,
    },
    #[error("{engine}: no audio within {timeout:?}")]
    Timeout { engine: String, timeout: Duration },
    #[error("{engine}: HTTP status {status}")]
    HttpStatus {
        engine: String,
        status: reqwest::StatusCode,
    },
    #[error("{engine}: HTTP request failed: {source}")]
    Http {
        engine: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{engine}: audio larger than {limit} bytes")]
    TooLarge { engine: String, limit: usize },
    #[error("{engine}: URL template {template:?} has no {{text}} placeholder")]
    BadTemplate { engine: String, template: String },
    #[error("undecodable audio: {0}")]
    Audio(#[from] WavError),
}

/// The future an engine returns; boxed so the trait stays object-safe.
pub type TtsFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<i16>, TtsError>> + Send + 'a>>;

/// Something that turns text into 8 kHz mono 16-bit samples.
pub trait TtsEngine: Send + Sync + Debug {
    fn synthesize<'a>(&'a self, text: &'a str) -> TtsFuture<'a>;
    /// A short name for logs and errors (never holds secrets from the configuration).
    fn name(&self) -> &str;
}

/// Rejects text that would produce nothing (or only silence) to speak.
fn check_text(text: &str) -> Result<(), TtsError> {
    if text.trim().is_empty() {
        Err(TtsError::EmptyText)
    } else {
        Ok(())
    }
}

/// The local `espeak-ng` synthesizer.
#[derive(Debug, Clone)]
pub struct EspeakEngine {
    /// The program to run; a bare name is looked up in `PATH`.
    pub program: PathBuf,
    /// `-v`: a voice such as `en-us` or `fr`; espeak-ng's default when `None`.
    pub voice: Option<String>,
    /// `-s`: words per minute; espeak-ng's default (175) when `None`.
    pub speed_wpm: Option<u32>,
    pub timeout: Duration,
}

impl Default for EspeakEngine {
    fn default() -> Self {
        Self {
            program: PathBuf::from(DEFAULT_ESPEAK_PROGRAM),
            voice: None,
            speed_wpm: None,
            timeout: DEFAULT_TTS_TIMEOUT,
        }
    }
}

impl EspeakEngine {
    fn command(&self, text: &str) -> Command {
        let mut cmd = Command::new(&self.program);
        // -b 1: the text is UTF-8 whatever the locale of the switch's process.
        cmd.arg("--stdout").arg("-b").arg("1");
        if let Some(voice) = &self.voice {
            cmd.arg("-v").arg(voice);
        }
        if let Some(wpm) = self.speed_wpm {
            cmd.arg("-s").arg(wpm.to_string());
        }
        // The text is one argument after `--`, never through a shell, so nothing in it
        // (quotes, `;`, a leading `-`) can become a command or an option.
        cmd.arg("--").arg(text);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A timed-out or abandoned synthesis must not leave the process running.
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, text: &str) -> Result<Vec<i16>, TtsError> {
        check_text(text)?;
        let program = self.program.display().to_string();
        let child = self
            .command(text)
            .spawn()
            .map_err(|source| TtsError::Spawn {
                engine: self.name().to_owned(),
                program: program.clone(),
                source,
            })?;
        // Dropping the wait on timeout drops the child, which kill_on_drop kills.
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| TtsError::Timeout {
                engine: self.name().to_owned(),
                timeout: self.timeout,
            })?
            .map_err(|source| TtsError::Spawn {
                engine: self.name().to_owned(),
                program: program.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(TtsError::Failed {
                engine: self.name().to_owned(),
                program,
                status: output.status.to_string(),
                stderr: excerpt(&output.stderr),
            });
        }
        let mut wav = output.stdout;
        fix_streamed_wav_lengths(&mut wav);
        Ok(decode_prompt(&program, &wav)?)
    }
}

impl TtsEngine for EspeakEngine {
    fn synthesize<'a>(&'a self, text: &'a str) -> TtsFuture<'a> {
        Box::pin(self.run(text))
    }

    fn name(&self) -> &str {
        "espeak-ng"
    }
}

/// The start of a program's stderr, as one readable line.
fn excerpt(stderr: &[u8]) -> String {
    let cut = &stderr[..stderr.len().min(STDERR_EXCERPT_BYTES)];
    let text = String::from_utf8_lossy(cut);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        "no message on stderr".to_owned()
    } else {
        text
    }
}

/// Writes the real lengths into a WAV header written by a streaming writer.
///
/// espeak-ng cannot seek back in a pipe, so `--stdout` leaves placeholder sizes in the
/// RIFF and data headers (0x7FFFF000 in 1.51; other writers use 0 or 0xFFFFFFFF). The
/// decoder tolerates an oversized data chunk but a 0 would hide the audio, so the data
/// chunk, when it is the last one, is made to cover exactly the bytes that came.
fn fix_streamed_wav_lengths(wav: &mut [u8]) {
    if wav.len() < RIFF_HEADER_LEN || &wav[..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return; // Not a WAV: leave it for the decoder to name.
    }
    let mut offset = RIFF_HEADER_LEN;
    while offset + CHUNK_HEADER_LEN <= wav.len() {
        let size = le_u32(&wav[offset + 4..offset + 8]) as usize;
        let body_start = offset + CHUNK_HEADER_LEN;
        let available = wav.len() - body_start;
        if &wav[offset..offset + 4] == b"data" {
            if size == 0 || size > available {
                set_le_u32(&mut wav[offset + 4..offset + 8], available);
                let riff_size = wav.len() - CHUNK_HEADER_LEN;
                set_le_u32(&mut wav[4..8], riff_size);
            }
            return;
        }
        if size > available {
            return; // Broken before the data: the decoder will say how.
        }
        offset = body_start + size + (size & 1);
    }
}

fn le_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn set_le_u32(field: &mut [u8], value: usize) {
    // A WAV over 4 GiB cannot state its length anyway: saturate.
    let value = u32::try_from(value).unwrap_or(u32::MAX);
    field.copy_from_slice(&value.to_le_bytes());
}

/// A remote synthesizer reached by GET on a URL template such as
/// `http://tts.local/speak?voice=en&text={text}`, answering with a WAV file.
#[derive(Clone)]
pub struct HttpEngine {
    url_template: String,
    timeout: Duration,
    client: reqwest::Client,
    /// The template without its query, which may hold an API key.
    name: String,
}

impl Debug for HttpEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the template itself: its query may hold credentials.
        f.debug_struct("HttpEngine")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpEngine {
    /// An engine with its own HTTP client and [`DEFAULT_TTS_TIMEOUT`].
    pub fn new(url_template: impl Into<String>) -> Result<Self, TtsError> {
        let url_template = url_template.into();
        let name = http_engine_name(&url_template);
        let client = reqwest::Client::builder()
            .build()
            .map_err(|source| TtsError::Http {
                engine: name,
                source,
            })?;
        Self::with_client(url_template, client)
    }

    /// An engine sharing the switch's HTTP client (connection pool, TLS settings).
    pub fn with_client(
        url_template: impl Into<String>,
        client: reqwest::Client,
    ) -> Result<Self, TtsError> {
        let url_template = url_template.into();
        let name = http_engine_name(&url_template);
        // Without the placeholder every text would fetch the same audio.
        if !url_template.contains(TEXT_PLACEHOLDER) {
            return Err(TtsError::BadTemplate {
                engine: name,
                template: url_template,
            });
        }
        Ok(Self {
            url_template,
            timeout: DEFAULT_TTS_TIMEOUT,
            client,
            name,
        })
    }

    /// Sets the time allowed for the whole request, body included.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The URL for `text`: every `{text}` replaced by its percent-encoded UTF-8.
    pub fn url_for(&self, text: &str) -> String {
        self.url_template
            .replace(TEXT_PLACEHOLDER, &percent_encode(text))
    }

    async fn run(&self, text: &str) -> Result<Vec<i16>, TtsError> {
        check_text(text)?;
        let url = self.url_for(text);
        let bytes = tokio::time::timeout(self.timeout, self.fetch(&url))
            .await
            .map_err(|_| TtsError::Timeout {
                engine: self.name.clone(),
                timeout: self.timeout,
            })??;
        Ok(decode_prompt(&self.name, &bytes)?)
    }

    async fn fetch(&self, url: &str) -> Result<Vec<u8>, TtsError> {
        // reqwest's errors carry the URL, and with it the text and any key: drop it.
        let transport = |source: reqwest::Error| TtsError::Http {
            engine: self.name.clone(),
            source: source.without_url(),
        };
        let mut response = self.client.get(url).send().await.map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(TtsError::HttpStatus {
                engine: self.name.clone(),
                status,
            });
        }
        let too_large = || TtsError::TooLarge {
            engine: self.name.clone(),
            limit: MAX_HTTP_AUDIO_BYTES,
        };
        let announced = response.content_length().unwrap_or(0);
        if announced > MAX_HTTP_AUDIO_BYTES as u64 {
            return Err(too_large());
        }
        // Read chunk by chunk so a body without Content-Length is bounded too.
        let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_HTTP_AUDIO_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

impl TtsEngine for HttpEngine {
    fn synthesize<'a>(&'a self, text: &'a str) -> TtsFuture<'a> {
        Box::pin(self.run(text))
    }

    fn name(&self) -> &str {
        &self.name
    }
}

fn http_engine_name(template: &str) -> String {
    let base = template.split(['?', '#']).next().unwrap_or(template);
    format!("http tts {base}")
}

/// RFC 3986 percent-encoding of everything but the unreserved characters, so the text
/// is safe in a path segment as well as in a query value (a space is `%20`, `+` is
/// `%2B`: form encoding's `+` for space would be read as a literal plus in a path).
pub fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len() * 3);
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
    out
}

/// Counters of a [`TtsCache`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TtsCacheStats {
    /// Requests answered without running the engine (including those that waited for a
    /// concurrent synthesis of the same text).
    pub hits: u64,
    /// Syntheses run by the engine, failed ones included.
    pub misses: u64,
    /// Texts held now.
    pub entries: usize,
}

/// One text's audio; empty while it is being synthesized. Concurrent callers wait on the
/// same cell, so the engine runs once; if that synthesis fails or is cancelled the next
/// waiter runs it again.
type Slot = Arc<OnceCell<Arc<[i16]>>>;

#[derive(Debug, Default)]
struct Slots {
    by_text: HashMap<String, Slot>,
    /// Texts in insertion order, oldest first, for eviction.
    order: VecDeque<String>,
}

impl Slots {
    fn remove(&mut self, text: &str) {
        self.by_text.remove(text);
        self.order.retain(|t| t != text);
    }
}

/// An engine with a bounded memory of what it said, by exact text. When full, the text
/// cached first is forgotten. Failures are not cached: the next request tries again.
#[derive(Debug)]
pub struct TtsCache {
    engine: Arc<dyn TtsEngine>,
    max_entries: usize,
    slots: Mutex<Slots>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TtsCache {
    /// A cache of [`DEFAULT_TTS_CACHE_ENTRIES`] texts.
    pub fn new(engine: Arc<dyn TtsEngine>) -> Self {
        Self::with_capacity(engine, DEFAULT_TTS_CACHE_ENTRIES)
    }

    /// A cache of at most `max_entries` texts (at least one).
    pub fn with_capacity(engine: Arc<dyn TtsEngine>, max_entries: usize) -> Self {
        Self {
            engine,
            max_entries: max_entries.max(1),
            slots: Mutex::new(Slots::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn engine(&self) -> &Arc<dyn TtsEngine> {
        &self.engine
    }

    /// The audio for `text`, synthesized now or remembered.
    pub async fn speak(&self, text: &str) -> Result<Arc<[i16]>, TtsError> {
        check_text(text)?;
        let slot = self.slot(text);
        let engine = &self.engine;
        let mut synthesized = false;
        let result = slot
            .get_or_try_init(|| {
                synthesized = true;
                async move {
                    let samples = engine.synthesize(text).await?;
                    Ok::<_, TtsError>(Arc::from(samples))
                }
            })
            .await
            .cloned();
        let counter = if synthesized {
            &self.misses
        } else {
            &self.hits
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            self.forget_failed(text, &slot);
        }
        result
    }

    pub fn stats(&self) -> TtsCacheStats {
        TtsCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.lock().by_text.len(),
        }
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Forgets everything (after a voice or engine change, say); counters stay.
    pub fn clear(&self) {
        let mut slots = self.lock();
        slots.by_text.clear();
        slots.order.clear();
    }

    /// The slot for `text`, created (evicting the oldest when full) if new.
    fn slot(&self, text: &str) -> Slot {
        let mut slots = self.lock();
        if let Some(slot) = slots.by_text.get(text) {
            return Arc::clone(slot);
        }
        while slots.by_text.len() >= self.max_entries {
            let Some(oldest) = slots.order.pop_front() else {
                break;
            };
            // Anyone still waiting on an evicted slot holds its Arc and gets the audio;
            // it is just not kept.
            slots.by_text.remove(&oldest);
        }
        let slot = Slot::default();
        slots.by_text.insert(text.to_owned(), Arc::clone(&slot));
        slots.order.push_back(text.to_owned());
        slot
    }

    /// Drops a slot left empty by a failure, unless it has meanwhile been filled by a
    /// retry or replaced by a newer slot.
    fn forget_failed(&self, text: &str, slot: &Slot) {
        let mut slots = self.lock();
        let same = slots
            .by_text
            .get(text)
            .is_some_and(|current| Arc::ptr_eq(current, slot));
        if same && !slot.initialized() {
            slots.remove(text);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        // The map stays consistent whatever panicked while holding it: keep going.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_is_rfc3986() {
        assert_eq!(percent_encode("a-Z_0.~"), "a-Z_0.~");
        assert_eq!(percent_encode("你好 1+1"), "%E4%BD%A0%E5%A5%BD%201%2B1");
        assert_eq!(percent_encode("a/b?c=d&e"), "a%2Fb%3Fc%3Dd%26e");
    }

    fn streamed_header(data_size: u32, riff_size: u32, data: &[u8]) -> Vec<u8> {
        let mut wav = b"RIFF".to_vec();
        wav.extend_from_slice(&riff_size.to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
        wav.extend_from_slice(&1u16.to_le_bytes()); // mono
        wav.extend_from_slice(&8_000u32.to_le_bytes());
        wav.extend_from_slice(&16_000u32.to_le_bytes());
        wav.extend_from_slice(&2u16.to_le_bytes());
        wav.extend_from_slice(&16u16.to_le_bytes());
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&data_size.to_le_bytes());
        wav.extend_from_slice(data);
        wav
    }

    #[test]
    fn streamed_lengths_are_repaired() {
        let data = [1u8, 0, 2, 0, 3, 0];
        for placeholder in [0, 0xFFFF_FFFF, 0x7FFF_F000] {
            let mut wav = streamed_header(placeholder, placeholder, &data);
            fix_streamed_wav_lengths(&mut wav);
            assert_eq!(le_u32(&wav[40..44]), 6, "data size for {placeholder:#x}");
            assert_eq!(le_u32(&wav[4..8]) as usize, wav.len() - 8);
            assert_eq!(decode_prompt("t", &wav).ok(), Some(vec![1, 2, 3]));
        }
    }

    #[test]
    fn correct_lengths_are_left_alone() {
        // A data chunk followed by another chunk must keep its stated size.
        let mut wav = streamed_header(4, 0, &[1, 0, 2, 0]);
        wav.extend_from_slice(b"LIST\x02\x00\x00\x00ab");
        let before = wav.clone();
        fix_streamed_wav_lengths(&mut wav);
        assert_eq!(wav[8..], before[8..]);
        let mut garbage = b"not a wav at all".to_vec();
        fix_streamed_wav_lengths(&mut garbage);
        assert_eq!(garbage, b"not a wav at all");
    }

    #[test]
    fn template_without_placeholder_is_refused() {
        let err = HttpEngine::new("http://tts/speak?key=secret").unwrap_err();
        assert!(matches!(err, TtsError::BadTemplate { .. }), "{err}");
        let engine = HttpEngine::new("http://tts/speak?key=secret&t={text}").unwrap();
        assert!(!format!("{engine:?}").contains("secret"));
        assert!(!engine.name().contains("secret"));
        assert_eq!(engine.url_for("a b"), "http://tts/speak?key=secret&t=a%20b");
    }
}
