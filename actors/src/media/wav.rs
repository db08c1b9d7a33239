//! WAV files: prompts in, recordings out.
//!
//! - [`load_prompt`] / [`decode_prompt`] read a RIFF/WAVE prompt — 16-bit or 8-bit PCM,
//!   µ-law or A-law, mono or stereo, any sample rate — and return 8 kHz mono samples,
//!   ready for 20 ms framing. Other rates go through a windowed-sinc resampler. Anything
//!   else is refused when the prompt is loaded, with an error naming the file and the
//!   problem (`prompt.wav: unsupported format: 24-bit PCM`), not when a caller hears
//!   silence.
//! - [`WavWriter`] writes 8 kHz 16-bit recordings (stereo: caller left, callee right)
//!   incrementally. Samples are buffered for at most [`FLUSH_INTERVAL_MS`], then written
//!   and the RIFF and data sizes in the header are rewritten, so a process that dies
//!   leaves a valid file missing at most about one second (the buffer plus audio written
//!   after the last header update). With `sync` on, each flush is also `fsync`ed, which
//!   extends the guarantee to a machine crash at the cost of one disk flush per second
//!   per recording.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use super::frame::SAMPLE_RATE_HZ;
use super::g711::{ALAW_DECODE, ULAW_DECODE};

const RIFF: &[u8; 4] = b"RIFF";
const WAVE: &[u8; 4] = b"WAVE";
const FMT: &[u8; 4] = b"fmt ";
const DATA: &[u8; 4] = b"data";
const RIFF_HEADER_LEN: usize = 12;
const CHUNK_HEADER_LEN: usize = 8;
/// The `fmt ` chunk of plain PCM (WAVEFORMAT + wBitsPerSample).
const FMT_PCM_LEN: usize = 16;
/// WAVEFORMATEXTENSIBLE: the real format tag is the first two bytes of the sub-format
/// GUID at this offset in the chunk.
const FMT_EXTENSIBLE_MIN_LEN: usize = 40;
const FMT_EXTENSIBLE_SUBFORMAT_OFFSET: usize = 24;
const FORMAT_PCM: u16 = 0x0001;
const FORMAT_ADPCM: u16 = 0x0002;
const FORMAT_FLOAT: u16 = 0x0003;
const FORMAT_ALAW: u16 = 0x0006;
const FORMAT_MULAW: u16 = 0x0007;
const FORMAT_IMA_ADPCM: u16 = 0x0011;
const FORMAT_GSM610: u16 = 0x0031;
const FORMAT_MP3: u16 = 0x0055;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// Rates beyond this are not audio a telephone switch should be given.
const MAX_SAMPLE_RATE: u32 = 384_000;
/// 8-bit PCM is unsigned with its zero at 128.
const PCM8_ZERO: i16 = 128;
const PCM8_TO_16_SHIFT: u32 = 8;
/// Header of the files written: RIFF + fmt (16) + data chunk header.
const WRITER_HEADER_LEN: u64 = 44;
/// Byte offsets of the two size fields rewritten on each flush.
const RIFF_SIZE_OFFSET: u64 = 4;
const DATA_SIZE_OFFSET: u64 = 40;
/// What the RIFF size counts besides the data: "WAVE" + fmt chunk + data chunk header.
const RIFF_SIZE_OVERHEAD: u64 = WRITER_HEADER_LEN - 8;
/// Longest buffering before samples and header go to the file (see module docs).
pub const FLUSH_INTERVAL_MS: u32 = 500;
const BYTES_PER_SAMPLE: usize = 2;
const BITS_PER_SAMPLE: u16 = 16;

// Resampler.
/// Zero crossings of the sinc on each side of the kernel centre: 12 gives a transition
/// band narrow enough to keep speech up to ~3.5 kHz with ~60 dB of alias rejection.
const SINC_ZERO_CROSSINGS: usize = 12;
/// Table points per zero-crossing interval; linear interpolation between them.
const SINC_TABLE_RESOLUTION: usize = 512;
/// Cut-off as a share of the lower Nyquist frequency, leaving room for the transition.
const RESAMPLER_ROLLOFF: f64 = 0.92;

/// Why a prompt could not be read or a recording written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },
    #[error("{file}: not a WAV file: {reason}")]
    NotWav { file: String, reason: String },
    #[error("{file}: unsupported format: {what}")]
    Unsupported { file: String, what: String },
    #[error("{file}: malformed WAV: {what}")]
    Malformed { file: String, what: String },
    #[error("{file}: left and right channels differ in length ({left} and {right} samples)")]
    ChannelMismatch {
        file: String,
        left: usize,
        right: usize,
    },
    #[error("{file}: recording would exceed the 4 GiB limit of the WAV format")]
    TooLarge { file: String },
}

/// How the samples of a WAV file are coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    Pcm16,
    Pcm8,
    Ulaw,
    Alaw,
}

impl SampleFormat {
    fn bytes(self) -> usize {
        match self {
            SampleFormat::Pcm16 => 2,
            SampleFormat::Pcm8 | SampleFormat::Ulaw | SampleFormat::Alaw => 1,
        }
    }
}

/// A decoded WAV file at its own rate and channel count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavAudio {
    pub format: SampleFormat,
    pub sample_rate: u32,
    pub channels: u16,
    /// Interleaved samples.
    pub samples: Vec<i16>,
}

impl WavAudio {
    /// Frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// Down-mixed to mono (stereo averaged).
    pub fn to_mono(&self) -> Vec<i16> {
        if self.channels == 1 {
            return self.samples.clone();
        }
        self.samples
            .chunks_exact(usize::from(self.channels))
            .map(|f| {
                let sum: i32 = f.iter().map(|&s| i32::from(s)).sum();
                // The average of i16 values is an i16.
                (sum / i32::from(self.channels)) as i16
            })
            .collect()
    }
}

/// Reads a prompt file and returns it as 8 kHz mono.
pub fn load_prompt(path: &Path) -> Result<Vec<i16>, WavError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| WavError::Io {
        file: file.clone(),
        source,
    })?;
    decode_prompt(&file, &bytes)
}

/// [`load_prompt`], in the shared form playback wants: one copy for every stream.
pub fn load_prompt_shared(path: &Path) -> Result<Arc<[i16]>, WavError> {
    load_prompt(path).map(Arc::from)
}

/// Decodes the bytes of a WAV prompt to 8 kHz mono; `name` is used in errors.
pub fn decode_prompt(name: &str, bytes: &[u8]) -> Result<Vec<i16>, WavError> {
    let audio = read_wav(name, bytes)?;
    let mono = audio.to_mono();
    Ok(resample(&mono, audio.sample_rate, SAMPLE_RATE_HZ))
}

struct Fmt {
    format: SampleFormat,
    channels: u16,
    sample_rate: u32,
}

/// Parses a WAV file into interleaved 16-bit samples at its own rate.
pub fn read_wav(name: &str, bytes: &[u8]) -> Result<WavAudio, WavError> {
    let not_wav = |reason: &str| WavError::NotWav {
        file: name.to_owned(),
        reason: reason.to_owned(),
    };
    let malformed = |what: String| WavError::Malformed {
        file: name.to_owned(),
        what,
    };
    if bytes.len() < RIFF_HEADER_LEN {
        return Err(not_wav("shorter than a RIFF header"));
    }
    match &bytes[..4] {
        b"RIFF" => {}
        b"RF64" => return Err(unsupported(name, "RF64 (WAV larger than 4 GiB)")),
        b"RIFX" => return Err(unsupported(name, "big-endian RIFX")),
        _ => return Err(not_wav("no RIFF header")),
    }
    if &bytes[8..12] != WAVE {
        return Err(not_wav("RIFF file is not WAVE"));
    }
    let mut fmt = None;
    let mut data: Option<&[u8]> = None;
    let mut offset = RIFF_HEADER_LEN;
    while offset + CHUNK_HEADER_LEN <= bytes.len() {
        let id = &bytes[offset..offset + 4];
        let size = le_u32(&bytes[offset + 4..offset + 8]) as usize;
        let body_start = offset + CHUNK_HEADER_LEN;
        let available = bytes.len() - body_start;
        let body = if size <= available {
            &bytes[body_start..body_start + size]
        } else if id == DATA {
            // A recording cut short (or a streaming writer that never came back to fix
            // the size): use what is there.
            &bytes[body_start..]
        } else {
            return Err(malformed(format!(
                "chunk {:?} claims {size} bytes, {available} left",
                String::from_utf8_lossy(id)
            )));
        };
        if id == FMT {
            fmt = Some(parse_fmt(name, body)?);
        } else if id == DATA && data.is_none() {
            data = Some(body);
        }
        // Chunks are padded to an even length.
        offset = body_start.saturating_add(size).saturating_add(size & 1);
    }
    let fmt = fmt.ok_or_else(|| malformed("no fmt chunk".into()))?;
    let data = data.ok_or_else(|| malformed("no data chunk".into()))?;
    let frame_bytes = fmt.format.bytes() * usize::from(fmt.channels);
    // A trailing partial frame is a cut-off write: drop it.
    let usable = data.len() - data.len() % frame_bytes;
    let data = &data[..usable];
    let samples = match fmt.format {
        SampleFormat::Pcm16 => data
            .chunks_exact(BYTES_PER_SAMPLE)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect(),
        SampleFormat::Pcm8 => data
            .iter()
            .map(|&b| (i16::from(b) - PCM8_ZERO) << PCM8_TO_16_SHIFT)
            .collect(),
        SampleFormat::Ulaw => data.iter().map(|&b| ULAW_DECODE[usize::from(b)]).collect(),
        SampleFormat::Alaw => data.iter().map(|&b| ALAW_DECODE[usize::from(b)]).collect(),
    };
    Ok(WavAudio {
        format: fmt.format,
        sample_rate: fmt.sample_rate,
        channels: fmt.channels,
        samples,
    })
}

fn unsupported(name: &str, what: &str) -> WavError {
    WavError::Unsupported {
        file: name.to_owned(),
        what: what.to_owned(),
    }
}

fn parse_fmt(name: &str, body: &[u8]) -> Result<Fmt, WavError> {
    if body.len() < FMT_PCM_LEN {
        return Err(WavError::Malformed {
            file: name.to_owned(),
            what: format!("fmt chunk of {} bytes, at least 16 needed", body.len()),
        });
    }
    let mut tag = le_u16(&body[0..2]);
    let channels = le_u16(&body[2..4]);
    let sample_rate = le_u32(&body[4..8]);
    let bits = le_u16(&body[14..16]);
    if tag == FORMAT_EXTENSIBLE && body.len() >= FMT_EXTENSIBLE_MIN_LEN {
        let sub = FMT_EXTENSIBLE_SUBFORMAT_OFFSET;
        tag = le_u16(&body[sub..sub + 2]);
    }
    let format = match (tag, bits) {
        (FORMAT_PCM, 16) => SampleFormat::Pcm16,
        (FORMAT_PCM, 8) => SampleFormat::Pcm8,
        (FORMAT_PCM, bits) => return Err(unsupported(name, &format!("{bits}-bit PCM"))),
        (FORMAT_MULAW, 8) => SampleFormat::Ulaw,
        (FORMAT_ALAW, 8) => SampleFormat::Alaw,
        (FORMAT_MULAW | FORMAT_ALAW, bits) => {
            return Err(unsupported(name, &format!("{bits}-bit G.711")))
        }
        (FORMAT_FLOAT, bits) => return Err(unsupported(name, &format!("{bits}-bit float"))),
        (FORMAT_ADPCM, _) => return Err(unsupported(name, "Microsoft ADPCM")),
        (FORMAT_IMA_ADPCM, _) => return Err(unsupported(name, "IMA ADPCM")),
        (FORMAT_GSM610, _) => return Err(unsupported(name, "GSM 6.10")),
        (FORMAT_MP3, _) => return Err(unsupported(name, "MP3")),
        (FORMAT_EXTENSIBLE, _) => {
            return Err(WavError::Malformed {
                file: name.to_owned(),
                what: "WAVE_FORMAT_EXTENSIBLE without a sub-format".into(),
            })
        }
        (other, _) => return Err(unsupported(name, &format!("format tag {other:#06x}"))),
    };
    match channels {
        1 | 2 => {}
        0 => {
            return Err(WavError::Malformed {
                file: name.to_owned(),
                what: "zero channels".into(),
            })
        }
        n => return Err(unsupported(name, &format!("{n} channels"))),
    }
    if sample_rate == 0 || sample_rate > MAX_SAMPLE_RATE {
        return Err(unsupported(name, &format!("sample rate {sample_rate} Hz")));
    }
    Ok(Fmt {
        format,
        channels,
        sample_rate,
    })
}

fn le_u16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

// ---------------------------------------------------------------------------------------
// Resampling

/// The windowed-sinc kernel, tabulated over `0..=SINC_ZERO_CROSSINGS` zero crossings.
fn sinc_table() -> Vec<f32> {
    let len = SINC_ZERO_CROSSINGS * SINC_TABLE_RESOLUTION + 2;
    (0..len)
        .map(|i| {
            let x = i as f64 / SINC_TABLE_RESOLUTION as f64; // in zero crossings
            let sinc = if i == 0 {
                1.0
            } else {
                let px = std::f64::consts::PI * x;
                px.sin() / px
            };
            // Blackman window over the kernel's half width: ~58 dB side lobes.
            let w = x / SINC_ZERO_CROSSINGS as f64;
            let window = if w >= 1.0 {
                0.0
            } else {
                let a = std::f64::consts::PI * w;
                0.42 + 0.5 * a.cos() + 0.08 * (2.0 * a).cos()
            };
            (sinc * window) as f32
        })
        .collect()
}

/// Resamples mono 16-bit audio from `from_hz` to `to_hz` with a windowed-sinc low-pass
/// at 92 % of the lower Nyquist frequency (band-limited both ways: no aliasing when
/// going down, no imaging when going up). Same rate: a copy.
pub fn resample(input: &[i16], from_hz: u32, to_hz: u32) -> Vec<i16> {
    if from_hz == to_hz || input.is_empty() || from_hz == 0 || to_hz == 0 {
        return input.to_vec();
    }
    let table = sinc_table();
    let step = f64::from(from_hz) / f64::from(to_hz); // input samples per output sample
                                                      // Cut-off in cycles per input sample.
    let cutoff = 0.5 * (f64::from(to_hz) / f64::from(from_hz)).min(1.0) * RESAMPLER_ROLLOFF;
    let crossings_per_sample = 2.0 * cutoff; // zero crossings of the sinc per input sample
    let half_width = SINC_ZERO_CROSSINGS as f64 / crossings_per_sample;
    let gain = 2.0 * cutoff;
    let out_len = (input.len() as u64 * u64::from(to_hz)).div_ceil(u64::from(from_hz)) as usize;
    let last = input.len() as i64 - 1;
    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len {
        let centre = n as f64 * step;
        let first = (centre - half_width).ceil().max(0.0) as i64;
        let end = ((centre + half_width).floor() as i64).min(last);
        let mut acc = 0f64;
        for k in first..=end {
            let pos =
                (k as f64 - centre).abs() * crossings_per_sample * SINC_TABLE_RESOLUTION as f64;
            let i = pos as usize;
            let frac = (pos - i as f64) as f32;
            let (Some(&a), Some(&b)) = (table.get(i), table.get(i + 1)) else {
                continue;
            };
            let h = a + (b - a) * frac;
            acc += f64::from(input[k as usize]) * f64::from(h);
        }
        let y = (acc * gain).round();
        out.push(y.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Writing

/// How much was written, reported when a recording is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavSummary {
    /// Samples per channel.
    pub frames: u64,
    pub channels: u16,
}

impl WavSummary {
    pub fn duration_ms(&self) -> u64 {
        self.frames * 1_000 / u64::from(SAMPLE_RATE_HZ)
    }
}

/// An incrementally written 8 kHz 16-bit WAV recording (see the module docs).
#[derive(Debug)]
pub struct WavWriter {
    file: Option<File>,
    name: String,
    channels: u16,
    buffer: Vec<u8>,
    flush_at: usize,
    data_bytes: u64,
    sync: bool,
}

impl WavWriter {
    /// Creates (truncates) `path` as a recording of 1 or 2 channels.
    pub fn create(path: &Path, channels: u16) -> Result<Self, WavError> {
        let name = path.display().to_string();
        if !(1..=2).contains(&channels) {
            return Err(unsupported(&name, &format!("{channels} channels")));
        }
        let mut file = File::create(path).map_err(|source| WavError::Io {
            file: name.clone(),
            source,
        })?;
        let frame_bytes = BYTES_PER_SAMPLE * usize::from(channels);
        let flush_at = (SAMPLE_RATE_HZ * FLUSH_INTERVAL_MS / 1_000) as usize * frame_bytes;
        let header = wav_header(channels, 0);
        file.write_all(&header).map_err(|source| WavError::Io {
            file: name.clone(),
            source,
        })?;
        Ok(Self {
            file: Some(file),
            name,
            channels,
            buffer: Vec::with_capacity(flush_at),
            flush_at,
            data_bytes: 0,
            sync: false,
        })
    }

    /// A stereo recording: caller left, callee right.
    pub fn create_stereo(path: &Path) -> Result<Self, WavError> {
        Self::create(path, 2)
    }

    /// Also `fsync` on every flush (survives a machine crash, costs disk flushes).
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Samples per channel written so far (buffered included).
    pub fn frames(&self) -> u64 {
        (self.data_bytes + self.buffer.len() as u64)
            / (BYTES_PER_SAMPLE as u64 * u64::from(self.channels))
    }

    /// Appends one stretch of both channels of a stereo recording.
    pub fn write_stereo(&mut self, left: &[i16], right: &[i16]) -> Result<(), WavError> {
        if self.channels != 2 || left.len() != right.len() {
            return Err(WavError::ChannelMismatch {
                file: self.name.clone(),
                left: left.len(),
                right: if self.channels == 2 { right.len() } else { 0 },
            });
        }
        self.check_room(left.len() * 2)?;
        for (&l, &r) in left.iter().zip(right) {
            let [l0, l1] = l.to_le_bytes();
            let [r0, r1] = r.to_le_bytes();
            self.buffer.extend_from_slice(&[l0, l1, r0, r1]);
        }
        self.maybe_flush()
    }

    /// Appends samples of a mono recording (or interleaved samples of a stereo one).
    pub fn write_interleaved(&mut self, samples: &[i16]) -> Result<(), WavError> {
        // Stereo: an odd count would split a frame. (`is_multiple_of` needs Rust 1.87;
        // the workspace supports 1.85.)
        #[allow(clippy::manual_is_multiple_of)]
        let split_frame = samples.len() % usize::from(self.channels) != 0;
        if split_frame {
            return Err(WavError::ChannelMismatch {
                file: self.name.clone(),
                left: samples.len().div_ceil(2),
                right: samples.len() / 2,
            });
        }
        self.check_room(samples.len())?;
        for &s in samples {
            self.buffer.extend_from_slice(&s.to_le_bytes());
        }
        self.maybe_flush()
    }

    /// Writes buffered samples and brings the header sizes up to date.
    pub fn flush(&mut self) -> Result<(), WavError> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let name = &self.name;
        let io = |source| WavError::Io {
            file: name.clone(),
            source,
        };
        if !self.buffer.is_empty() {
            file.write_all(&self.buffer).map_err(io)?;
            self.data_bytes += self.buffer.len() as u64;
            self.buffer.clear();
        }
        // The data is written first: a crash between the two leaves a header that
        // under-counts, which readers accept, never one that over-counts.
        let data = self.data_bytes as u32; // check_room keeps it below 4 GiB
        let riff = (self.data_bytes + RIFF_SIZE_OVERHEAD) as u32;
        file.seek(SeekFrom::Start(RIFF_SIZE_OFFSET)).map_err(io)?;
        file.write_all(&riff.to_le_bytes()).map_err(io)?;
        file.seek(SeekFrom::Start(DATA_SIZE_OFFSET)).map_err(io)?;
        file.write_all(&data.to_le_bytes()).map_err(io)?;
        file.seek(SeekFrom::End(0)).map_err(io)?;
        if self.sync {
            file.sync_data().map_err(io)?;
        }
        Ok(())
    }

    /// Flushes and closes the file.
    pub fn finish(mut self) -> Result<WavSummary, WavError> {
        self.flush()?;
        if let Some(file) = self.file.take() {
            if self.sync {
                file.sync_all().map_err(|source| WavError::Io {
                    file: self.name.clone(),
                    source,
                })?;
            }
        }
        Ok(WavSummary {
            frames: self.data_bytes / (BYTES_PER_SAMPLE as u64 * u64::from(self.channels)),
            channels: self.channels,
        })
    }

    fn check_room(&self, samples: usize) -> Result<(), WavError> {
        let total =
            self.data_bytes + self.buffer.len() as u64 + (samples * BYTES_PER_SAMPLE) as u64;
        if total + RIFF_SIZE_OVERHEAD > u64::from(u32::MAX) {
            return Err(WavError::TooLarge {
                file: self.name.clone(),
            });
        }
        Ok(())
    }

    fn maybe_flush(&mut self) -> Result<(), WavError> {
        if self.buffer.len() >= self.flush_at {
            self.flush()
        } else {
            Ok(())
        }
    }
}

impl Drop for WavWriter {
    fn drop(&mut self) {
        // A writer dropped without finish() (an error path, a panic unwinding) still
        // leaves a complete file; there is no one left to report a failure to.
        if self.file.is_some() {
            let _ = self.flush();
        }
    }
}

/// The 44-byte header of an 8 kHz 16-bit PCM file with `data_bytes` of samples.
fn wav_header(channels: u16, data_bytes: u32) -> [u8; WRITER_HEADER_LEN as usize] {
    let block_align = channels * BYTES_PER_SAMPLE as u16;
    let byte_rate = SAMPLE_RATE_HZ * u32::from(block_align);
    let mut h = [0u8; WRITER_HEADER_LEN as usize];
    h[0..4].copy_from_slice(RIFF);
    h[4..8].copy_from_slice(&(data_bytes + RIFF_SIZE_OVERHEAD as u32).to_le_bytes());
    h[8..12].copy_from_slice(WAVE);
    h[12..16].copy_from_slice(FMT);
    h[16..20].copy_from_slice(&(FMT_PCM_LEN as u32).to_le_bytes());
    h[20..22].copy_from_slice(&FORMAT_PCM.to_le_bytes());
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&SAMPLE_RATE_HZ.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&BITS_PER_SAMPLE.to_le_bytes());
    h[36..40].copy_from_slice(DATA);
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::dtmf::tone_amplitude;
    use crate::media::g711::{alaw_encode, ulaw_encode};

    /// Builds a WAV file with an arbitrary fmt chunk.
    fn wav_bytes(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        v.extend_from_slice(b"WAVE");
        v.extend_from_slice(b"fmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        let align = channels * bits.max(8) / 8;
        v.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        v.extend_from_slice(&align.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        if data.len() % 2 == 1 {
            v.push(0);
        }
        v
    }

    fn pcm16(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    fn sine(freq: f64, rate: u32, seconds: f64, amplitude: f64) -> Vec<i16> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
            })
            .collect()
    }

    fn message(e: WavError) -> String {
        e.to_string()
    }

    #[test]
    fn reads_pcm16_mono_8k_unchanged() {
        let samples = [0i16, 1, -1, 32_767, -32_768, 1234];
        let bytes = wav_bytes(1, 1, 8_000, 16, &pcm16(&samples));
        assert_eq!(decode_prompt("a.wav", &bytes).expect("valid"), samples);
    }

    #[test]
    fn reads_ulaw_alaw_and_pcm8() {
        let ulaw: Vec<u8> = [0i16, 1_000, -8_000]
            .iter()
            .map(|&s| ulaw_encode(s))
            .collect();
        let got = decode_prompt("u.wav", &wav_bytes(7, 1, 8_000, 8, &ulaw)).expect("valid");
        assert_eq!(got, [0, 988, -7_932]);
        let alaw: Vec<u8> = [0i16, 1_000].iter().map(|&s| alaw_encode(s)).collect();
        let got = decode_prompt("a.wav", &wav_bytes(6, 1, 8_000, 8, &alaw)).expect("valid");
        assert_eq!(got, [8, 1_008]);
        let got =
            decode_prompt("p8.wav", &wav_bytes(1, 1, 8_000, 8, &[128, 255, 0])).expect("valid");
        assert_eq!(got, [0, 127 << 8, -128 << 8]);
    }

    #[test]
    fn stereo_is_mixed_down() {
        let interleaved = [1_000i16, 3_000, -2_000, -4_000];
        let bytes = wav_bytes(1, 2, 8_000, 16, &pcm16(&interleaved));
        assert_eq!(
            decode_prompt("s.wav", &bytes).expect("valid"),
            [2_000, -3_000]
        );
        let audio = read_wav("s.wav", &bytes).expect("valid");
        assert_eq!(audio.frames(), 2);
        assert_eq!(audio.channels, 2);
    }

    #[test]
    fn unsupported_formats_name_the_file_and_the_problem() {
        let cases: &[(u16, u16, u32, u16, &str)] = &[
            (
                1,
                1,
                8_000,
                24,
                "prompt.wav: unsupported format: 24-bit PCM",
            ),
            (
                1,
                1,
                8_000,
                32,
                "prompt.wav: unsupported format: 32-bit PCM",
            ),
            (
                3,
                1,
                8_000,
                32,
                "prompt.wav: unsupported format: 32-bit float",
            ),
            (0x55, 1, 8_000, 0, "prompt.wav: unsupported format: MP3"),
            (
                0x11,
                1,
                8_000,
                4,
                "prompt.wav: unsupported format: IMA ADPCM",
            ),
            (
                0x31,
                1,
                8_000,
                0,
                "prompt.wav: unsupported format: GSM 6.10",
            ),
            (
                1,
                6,
                8_000,
                16,
                "prompt.wav: unsupported format: 6 channels",
            ),
            (
                0x1234,
                1,
                8_000,
                16,
                "prompt.wav: unsupported format: format tag 0x1234",
            ),
            (
                1,
                1,
                0,
                16,
                "prompt.wav: unsupported format: sample rate 0 Hz",
            ),
        ];
        for &(tag, channels, rate, bits, expected) in cases {
            let bytes = wav_bytes(tag, channels, rate, bits, &[0; 8]);
            let err = decode_prompt("prompt.wav", &bytes).expect_err(expected);
            assert!(matches!(err, WavError::Unsupported { .. }));
            assert_eq!(message(err), expected);
        }
    }

    #[test]
    fn garbage_is_refused_clearly() {
        assert_eq!(
            message(decode_prompt("x.wav", b"hello").expect_err("short")),
            "x.wav: not a WAV file: shorter than a RIFF header"
        );
        assert_eq!(
            message(decode_prompt("x.mp3", b"ID3\x04\0\0\0\0\0\0\0\0\0\0").expect_err("mp3")),
            "x.mp3: not a WAV file: no RIFF header"
        );
        assert_eq!(
            message(decode_prompt("x.avi", b"RIFF\0\0\0\0AVI LIST").expect_err("avi")),
            "x.avi: not a WAV file: RIFF file is not WAVE"
        );
        let mut no_data = wav_bytes(1, 1, 8_000, 16, &[]);
        no_data.truncate(36);
        assert_eq!(
            message(decode_prompt("n.wav", &no_data).expect_err("no data")),
            "n.wav: malformed WAV: no data chunk"
        );
        let mut bad_fmt = wav_bytes(1, 1, 8_000, 16, &[0, 0]);
        bad_fmt[16] = 200; // fmt chunk claims 200 bytes
        assert!(matches!(
            decode_prompt("f.wav", &bad_fmt),
            Err(WavError::Malformed { .. })
        ));
        let zero_channels = wav_bytes(1, 0, 8_000, 16, &[0, 0]);
        assert!(matches!(
            decode_prompt("z.wav", &zero_channels),
            Err(WavError::Malformed { .. })
        ));
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let err = load_prompt(Path::new("/nonexistent/hello.wav")).expect_err("missing");
        assert!(matches!(err, WavError::Io { .. }));
        assert!(message(err).starts_with("/nonexistent/hello.wav: "));
    }

    #[test]
    fn extra_chunks_odd_sizes_and_a_cut_data_chunk() {
        let samples = [5i16, 6, 7];
        let mut bytes = wav_bytes(1, 1, 8_000, 16, &pcm16(&samples));
        // Insert a LIST chunk of odd length (padded) before fmt.
        let list = [b'L', b'I', b'S', b'T', 3, 0, 0, 0, b'a', b'b', b'c', 0];
        bytes.splice(12..12, list);
        assert_eq!(decode_prompt("l.wav", &bytes).expect("valid"), samples);
        // A data chunk claiming more than is there (crashed writer), with half a sample.
        let mut cut = wav_bytes(1, 1, 8_000, 16, &pcm16(&samples));
        let data_size_at = cut.len() - 6 - 4;
        cut[data_size_at..data_size_at + 4].copy_from_slice(&1_000u32.to_le_bytes());
        cut.pop();
        assert_eq!(decode_prompt("c.wav", &cut).expect("valid"), [5, 6]);
    }

    #[test]
    fn extensible_format_is_understood() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
        bytes.extend_from_slice(&40u32.to_le_bytes());
        let mut fmt = vec![0u8; 40];
        fmt[0..2].copy_from_slice(&0xFFFEu16.to_le_bytes());
        fmt[2..4].copy_from_slice(&1u16.to_le_bytes());
        fmt[4..8].copy_from_slice(&8_000u32.to_le_bytes());
        fmt[14..16].copy_from_slice(&16u16.to_le_bytes());
        fmt[24..26].copy_from_slice(&1u16.to_le_bytes()); // KSDATAFORMAT_SUBTYPE_PCM
        bytes.extend_from_slice(&fmt);
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&4u32.to_le_bytes());
        bytes.extend_from_slice(&pcm16(&[9, -9]));
        assert_eq!(decode_prompt("e.wav", &bytes).expect("valid"), [9, -9]);
    }

    #[test]
    fn resamples_44100_to_8000_keeping_speech_and_removing_aliases() {
        let rate = 44_100;
        // 1 kHz stays; 6 kHz is above the new Nyquist and must not alias to 2 kHz.
        let tone = sine(1_000.0, rate, 1.0, 10_000.0);
        let high = sine(6_000.0, rate, 1.0, 10_000.0);
        let mixed: Vec<i16> = tone
            .iter()
            .zip(&high)
            .map(|(&a, &b)| a / 2 + b / 2)
            .collect();
        let bytes = wav_bytes(1, 1, rate, 16, &pcm16(&mixed));
        let out = decode_prompt("44k.wav", &bytes).expect("valid");
        assert_eq!(out.len(), 8_000);
        let middle = &out[2_000..6_000];
        let kept = tone_amplitude(middle, 1_000.0);
        let alias = tone_amplitude(middle, 2_000.0);
        assert!((kept - 5_000.0).abs() < 150.0, "1 kHz at {kept}");
        assert!(alias < 20.0, "6 kHz aliased to 2 kHz at {alias}");
    }

    #[test]
    fn resamples_up_from_6000_and_across_common_rates() {
        for rate in [6_000u32, 11_025, 16_000, 22_050, 48_000] {
            let input = sine(440.0, rate, 0.5, 8_000.0);
            let out = resample(&input, rate, 8_000);
            assert_eq!(out.len(), 4_000, "{rate} Hz");
            let amplitude = tone_amplitude(&out[1_000..3_000], 440.0);
            assert!(
                (amplitude - 8_000.0).abs() < 200.0,
                "{rate} Hz: {amplitude}"
            );
        }
        assert_eq!(resample(&[1, 2, 3], 8_000, 8_000), [1, 2, 3]);
        assert!(resample(&[], 16_000, 8_000).is_empty());
    }

    #[test]
    fn resampling_does_not_overflow_at_full_scale() {
        let square: Vec<i16> = (0..4_800)
            .map(|i| {
                if (i / 24) % 2 == 0 {
                    i16::MAX
                } else {
                    i16::MIN
                }
            })
            .collect();
        // Gibbs overshoot would exceed i16; it must saturate, not wrap.
        let out = resample(&square, 48_000, 8_000);
        let max = out.iter().copied().max().unwrap_or(0);
        let min = out.iter().copied().min().unwrap_or(0);
        assert!(max > 30_000 && min < -30_000, "{min}..{max}");
    }

    #[test]
    fn writer_round_trip_stereo() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("call.wav");
        let mut w = WavWriter::create_stereo(&path).expect("create");
        let left: Vec<i16> = (0..160).map(|i| i * 10).collect();
        let right: Vec<i16> = (0..160).map(|i| -i * 10).collect();
        for _ in 0..100 {
            w.write_stereo(&left, &right).expect("write");
        }
        assert_eq!(w.frames(), 16_000);
        let summary = w.finish().expect("finish");
        assert_eq!(
            summary,
            WavSummary {
                frames: 16_000,
                channels: 2
            }
        );
        assert_eq!(summary.duration_ms(), 2_000);
        let bytes = std::fs::read(&path).expect("read back");
        assert_eq!(bytes.len(), 44 + 16_000 * 4);
        let audio = read_wav("call.wav", &bytes).expect("valid");
        assert_eq!(
            (audio.channels, audio.sample_rate, audio.format),
            (2, 8_000, SampleFormat::Pcm16)
        );
        assert_eq!(audio.frames(), 16_000);
        assert_eq!(&audio.samples[..6], &[0, 0, 10, -10, 20, -20]);
        // The header is exactly what a standard tool expects.
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(le_u32(&bytes[4..8]), 36 + 64_000);
        assert_eq!(le_u32(&bytes[40..44]), 64_000);
    }

    #[test]
    fn a_crash_loses_at_most_about_a_second() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("crash.wav");
        let mut w = WavWriter::create_stereo(&path).expect("create");
        let frame = [1_000i16; 160];
        // 3.3 s of audio, then the process "dies": no finish(), no Drop.
        for _ in 0..165 {
            w.write_stereo(&frame, &frame).expect("write");
        }
        std::mem::forget(w);
        let bytes = std::fs::read(&path).expect("read back");
        let audio = read_wav("crash.wav", &bytes).expect("a valid file");
        let kept_ms = audio.frames() as u64 * 1_000 / 8_000;
        assert!(kept_ms >= 2_300, "kept {kept_ms} ms of 3 300");
        // What the header claims is on disk in full.
        assert_eq!(le_u32(&bytes[40..44]) as usize, audio.frames() * 4);
    }

    #[test]
    fn an_empty_recording_is_a_valid_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("empty.wav");
        let w = WavWriter::create(&path, 1).expect("create");
        drop(w);
        let bytes = std::fs::read(&path).expect("read back");
        let audio = read_wav("empty.wav", &bytes).expect("valid");
        assert!(audio.samples.is_empty());
    }

    #[test]
    fn writer_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(matches!(
            WavWriter::create(&dir.path().join("x.wav"), 3),
            Err(WavError::Unsupported { .. })
        ));
        let err = WavWriter::create(&dir.path().join("no/such/dir.wav"), 2).expect_err("no dir");
        assert!(message(err).contains("no/such/dir.wav"));
        let mut w = WavWriter::create_stereo(&dir.path().join("m.wav")).expect("create");
        assert!(matches!(
            w.write_stereo(&[1, 2], &[1]),
            Err(WavError::ChannelMismatch {
                left: 2,
                right: 1,
                ..
            })
        ));
        assert!(w.write_interleaved(&[1, 2, 3]).is_err());
        w.write_interleaved(&[1, 2]).expect("one stereo frame");
        let mut mono = WavWriter::create(&dir.path().join("mono.wav"), 1).expect("create");
        assert!(mono.write_stereo(&[1], &[1]).is_err());
        mono.write_interleaved(&[1, 2, 3]).expect("mono");
        assert_eq!(mono.finish().expect("finish").frames, 3);
    }

    #[test]
    fn mono_recording_reads_back_as_a_prompt() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("greeting.wav");
        let tone = sine(500.0, 8_000, 0.5, 6_000.0);
        let mut w = WavWriter::create(&path, 1).expect("create");
        w.set_sync(true);
        w.write_interleaved(&tone).expect("write");
        w.finish().expect("finish");
        assert_eq!(load_prompt(&path).expect("valid"), tone);
        assert_eq!(&*load_prompt_shared(&path).expect("valid"), &tone[..]);
    }
}
