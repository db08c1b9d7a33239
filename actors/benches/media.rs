//! Media engine throughput on one thread: `cargo bench -p actors --bench media`.
//!
//! Plain `main` with bounded iterations (a few seconds in all), printing one
//! `BENCH name=value` line per figure for scripts to pick up:
//!
//! - `mixer_ns_per_member_per_tick`: conference mixing cost per member per 20 ms tick
//!   (10-member room; 3- and 50-member rooms reported too);
//! - `playback_streams_per_core`: prompt playback + µ-law encode + RTP packetise, frames
//!   per second on one thread / 50;
//! - `recorded_calls_per_core`: decode two µ-law frames + stereo interleave + incremental
//!   WAV write (to files in a temp dir), per call per 20 ms, frames per second / 50;
//! - a few supporting figures (jitter buffer, in-band DTMF, resampling).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::media::dtmf::InbandDetector;
use actors::media::frame::{Frame, FRAMES_PER_SECOND, FRAME_SAMPLES, FRAME_TIMESTAMP_STEP};
use actors::media::g711::Law;
use actors::media::jitter::JitterBuffer;
use actors::media::mixer::{MixMode, Mixer};
use actors::media::playback::{Playback, PlaybackTick, Source};
use actors::media::rtp_out::{RtpSender, RTP_HEADER_LEN};
use actors::media::wav::{resample, WavWriter};

const TICK: Duration = Duration::from_millis(20);

fn speechish(len: usize, seed: u32) -> Vec<i16> {
    // Several sines plus noise: realistic dynamic range without a data file.
    let mut state = seed | 1;
    (0..len)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let t = i as f32 / 8_000.0;
            let v = 3_000.0 * (2.0 * std::f32::consts::PI * 210.0 * t).sin()
                + 2_000.0 * (2.0 * std::f32::consts::PI * 730.0 * t).sin()
                + 1_000.0 * (2.0 * std::f32::consts::PI * 1_900.0 * t).sin()
                + ((state % 1_000) as f32 - 500.0);
            v as i16
        })
        .collect()
}

fn frames_of(samples: &[i16]) -> Vec<Frame> {
    samples
        .chunks_exact(FRAME_SAMPLES)
        .map(|c| {
            let mut f = [0i16; FRAME_SAMPLES];
            f.copy_from_slice(c);
            f
        })
        .collect()
}

fn report(name: &str, value: f64) {
    println!("BENCH {name}={value:.1}");
}

fn bench_mixer(members: u64, ticks: usize) -> f64 {
    let source = frames_of(&speechish(FRAME_SAMPLES * 50, 7));
    let mut mixer = Mixer::new();
    for id in 0..members {
        let mode = match id % 10 {
            8 => MixMode::ListenOnly,
            9 => MixMode::Whisper { to: 0 },
            _ => MixMode::TalkListen,
        };
        let mode = if members < 10 {
            MixMode::TalkListen
        } else {
            mode
        };
        mixer.join(id, mode).expect("room has space");
    }
    let run = |mixer: &mut Mixer, ticks: usize| {
        for t in 0..ticks {
            for id in 0..members {
                let frame = &source[(t + id as usize) % source.len()];
                mixer.set_input(id, frame).expect("member");
            }
            mixer.tick();
            black_box(mixer.output(0));
        }
    };
    run(&mut mixer, 100);
    let start = Instant::now();
    run(&mut mixer, ticks);
    let elapsed = start.elapsed();
    elapsed.as_nanos() as f64 / ticks as f64 / members as f64
}

fn bench_playback(streams: usize, ticks: u64) -> f64 {
    let prompt: Arc<[i16]> = speechish(8_000 * 10, 3).into();
    let mut legs: Vec<(Playback, RtpSender)> = (0..streams)
        .map(|i| {
            (
                Playback::new(i as u64, Source::looping(prompt.clone())),
                RtpSender::new(i as u32, 0, 0, 0),
            )
        })
        .collect();
    let mut frame = [0i16; FRAME_SAMPLES];
    let mut codes = [0u8; FRAME_SAMPLES];
    let mut packet = [0u8; RTP_HEADER_LEN + FRAME_SAMPLES];
    let base = Instant::now();
    let mut frames = 0u64;
    let start = Instant::now();
    for tick in 0..ticks {
        let now = base + TICK * tick as u32;
        for (playback, sender) in legs.iter_mut() {
            if playback.next_frame(&mut frame) == PlaybackTick::Audio {
                Law::Ulaw.encode_frame(&frame, &mut codes);
                let len = sender
                    .write_packet(&codes, FRAME_TIMESTAMP_STEP, now, &mut packet)
                    .expect("buffer fits");
                black_box(&packet[..len]);
                frames += 1;
            }
        }
    }
    frames as f64 / start.elapsed().as_secs_f64()
}

fn bench_recording(calls: usize, ticks: usize, sync: bool) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let caller = frames_of(&speechish(FRAME_SAMPLES * 50, 11));
    let callee = frames_of(&speechish(FRAME_SAMPLES * 50, 13));
    let encode = |frames: &[Frame]| -> Vec<[u8; FRAME_SAMPLES]> {
        frames
            .iter()
            .map(|f| {
                let mut c = [0u8; FRAME_SAMPLES];
                Law::Ulaw.encode_frame(f, &mut c);
                c
            })
            .collect()
    };
    let (caller, callee) = (encode(&caller), encode(&callee));
    let mut writers: Vec<WavWriter> = (0..calls)
        .map(|i| {
            let mut w = WavWriter::create_stereo(&dir.path().join(format!("call-{i}.wav")))
                .expect("create recording");
            w.set_sync(sync);
            w
        })
        .collect();
    let mut left = [0i16; FRAME_SAMPLES];
    let mut right = [0i16; FRAME_SAMPLES];
    let start = Instant::now();
    for t in 0..ticks {
        for (i, w) in writers.iter_mut().enumerate() {
            let k = (t + i) % caller.len();
            Law::Ulaw.decode_frame(&caller[k], &mut left);
            Law::Ulaw.decode_frame(&callee[k], &mut right);
            w.write_stereo(&left, &right).expect("write recording");
        }
    }
    for w in writers {
        w.finish().expect("close recording");
    }
    (calls * ticks) as f64 / start.elapsed().as_secs_f64()
}

fn bench_jitter(streams: usize, ticks: u64) -> f64 {
    let codes = [0x55u8; FRAME_SAMPLES];
    let mut packets: Vec<(RtpSender, JitterBuffer)> = (0..streams)
        .map(|i| (RtpSender::new(i as u32, 0, 0, 0), JitterBuffer::new()))
        .collect();
    let mut buf = [0u8; RTP_HEADER_LEN + FRAME_SAMPLES];
    let mut out = [0i16; FRAME_SAMPLES];
    let base = Instant::now();
    let start = Instant::now();
    for tick in 0..ticks {
        let now = base + TICK * tick as u32;
        for (sender, jb) in packets.iter_mut() {
            let len = sender
                .write_packet(&codes, FRAME_TIMESTAMP_STEP, now, &mut buf)
                .expect("fits");
            black_box(jb.push(&buf[..len], now));
            black_box(jb.pop(&mut out));
        }
    }
    start.elapsed().as_nanos() as f64 / (streams as u64 * ticks) as f64
}

fn bench_inband(frames: usize) -> f64 {
    let audio = frames_of(&speechish(FRAME_SAMPLES * 50, 5));
    let mut detector = InbandDetector::new();
    let start = Instant::now();
    for i in 0..frames {
        detector.process(&audio[i % audio.len()]);
    }
    black_box(detector.take_digit());
    start.elapsed().as_nanos() as f64 / frames as f64
}

fn bench_resample() -> f64 {
    let seconds = 5;
    let input = speechish(44_100 * seconds, 17);
    let start = Instant::now();
    black_box(resample(&input, 44_100, 8_000));
    start.elapsed().as_secs_f64() * 1_000.0 / seconds as f64
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let per_member_10 = bench_mixer(10, 20_000);
    report("mixer_ns_per_member_per_tick", per_member_10);
    report("mixer_ns_per_member_per_tick_3", bench_mixer(3, 20_000));
    let per_member_50 = bench_mixer(50, 4_000);
    report("mixer_ns_per_member_per_tick_50", per_member_50);
    report(
        "mixer_members_per_core",
        TICK.as_nanos() as f64 / per_member_50,
    );

    let playback_fps = bench_playback(1_000, 500);
    report("playback_frames_per_sec", playback_fps);
    report(
        "playback_streams_per_core",
        playback_fps / f64::from(FRAMES_PER_SECOND),
    );

    // 500 calls × 250 ticks = 5 s of each call, 80 MB written through the page cache.
    let recording_fps = bench_recording(500, 250, false);
    report("recording_frames_per_sec", recording_fps);
    report(
        "recorded_calls_per_core",
        recording_fps / f64::from(FRAMES_PER_SECOND),
    );
    // With an fsync every 0.5 s of audio per call: bounded by the disk, not the CPU.
    let synced_fps = bench_recording(50, 100, true);
    report(
        "recorded_calls_per_core_fsync",
        synced_fps / f64::from(FRAMES_PER_SECOND),
    );

    report("jitter_ns_per_packet_push_pop", bench_jitter(1_000, 200));
    report("inband_dtmf_ns_per_frame", bench_inband(200_000));
    report("resample_44k1_ms_per_audio_second", bench_resample());
}
