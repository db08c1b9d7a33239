//! The media building blocks working together, as the media engine will chain them:
//! prompts and tones through G.711 and RTP into a (simulated) phone's jitter buffer,
//! DTMF in all three shapes, a conference of RTP legs, and a stereo recording.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::media::dtmf::{
    parse_sip_info, tone_amplitude, DtmfSource, InbandDetector, Rfc4733Receiver, Rfc4733Sender,
};
use actors::media::frame::{Frame, FRAME_SAMPLES, FRAME_TIMESTAMP_STEP, SAMPLE_RATE_HZ};
use actors::media::g711::Law;
use actors::media::jitter::{JitterBuffer, PopKind, PushOutcome};
use actors::media::mixer::{MixMode, Mixer};
use actors::media::playback::{Playback, PlaybackTick, Source, StopOnDtmf, StopReason};
use actors::media::rtp_out::{parse_rtp, write_header, EventPacket, RtpSender, RTP_HEADER_LEN};
use actors::media::tone::{ToneGenerator, RINGBACK};
use actors::media::wav::{load_prompt, read_wav, WavWriter};

const PT_TELEPHONE_EVENT: u8 = 101;
const BUF: usize = RTP_HEADER_LEN + FRAME_SAMPLES;

fn sine(freq: f32, samples: usize, amplitude: f32) -> Vec<i16> {
    (0..samples)
        .map(|i| {
            let t = i as f32 / SAMPLE_RATE_HZ as f32;
            (amplitude * (2.0 * std::f32::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn a_prompt_reaches_the_far_end_intact() {
    let prompt: Arc<[i16]> = sine(440.0, 8_000, 8_000.0).into();
    let mut playback = Playback::new(1, Source::prompt(prompt.clone()));
    let mut sender = RtpSender::new(0x1234, Law::Alaw.payload_type(), 7, 1_000);
    let mut phone = JitterBuffer::new();
    let start = Instant::now();
    let mut frame = [0i16; FRAME_SAMPLES];
    let mut codes = [0u8; FRAME_SAMPLES];
    let mut packet = [0u8; BUF];
    let mut received = Vec::new();
    let mut finished = None;
    for tick in 0..60u64 {
        let now = start + ms(20 * tick);
        match playback.next_frame(&mut frame) {
            PlaybackTick::Audio => {
                Law::Alaw.encode_frame(&frame, &mut codes);
                let len = sender
                    .write_packet(&codes, FRAME_TIMESTAMP_STEP, now, &mut packet)
                    .expect("fits");
                assert_eq!(phone.push(&packet[..len], now), PushOutcome::Accepted);
            }
            PlaybackTick::Finished(f) => finished = Some(f),
            PlaybackTick::Idle => {}
        }
        if phone.pop(&mut frame) == PopKind::Audio {
            received.extend_from_slice(&frame);
        }
    }
    let finished = finished.expect("the prompt ended");
    assert_eq!(finished.reason, StopReason::Completed);
    assert_eq!(finished.frames_played, 50);
    assert_eq!(received.len(), 8_000, "every frame arrived once");
    for (i, (&got, &sent)) in received.iter().zip(prompt.iter()).enumerate() {
        assert_eq!(got, Law::Alaw.decode(Law::Alaw.encode(sent)), "sample {i}");
    }
    assert_eq!(phone.stats().late + phone.stats().duplicates, 0);
}

/// A leg hears a prompt, then the bridged party, then a prompt again. The phone's
/// jitter buffer must not drop anything: no late packets, continuous sequence, marker
/// at each switch.
#[test]
fn source_switches_do_not_make_the_phone_drop_audio() {
    let start = Instant::now();
    let mut sender = RtpSender::new(0xABCD, 0, 500, 90_000);
    let mut phone = JitterBuffer::new();
    let mut buf = [0u8; BUF];
    let mut played = 0;
    let mut markers = Vec::new();
    let mut sequences = Vec::new();
    let ringback_codes = [0xFFu8; FRAME_SAMPLES];

    let mut send = |bytes: &[u8], phone: &mut JitterBuffer, now: Instant| {
        let header = parse_rtp(bytes).expect("valid").header;
        markers.push(header.marker);
        sequences.push(header.sequence);
        assert_eq!(header.ssrc, 0xABCD);
        assert_eq!(phone.push(bytes, now), PushOutcome::Accepted);
    };
    let mut tick = 0u64;
    // 1 s of prompt.
    for _ in 0..50 {
        let now = start + ms(20 * tick);
        let len = sender
            .write_packet(&ringback_codes, FRAME_TIMESTAMP_STEP, now, &mut buf)
            .expect("fits");
        send(&buf[..len], &mut phone, now);
        played += usize::from(phone.pop(&mut [0; FRAME_SAMPLES]) == PopKind::Audio);
        tick += 1;
    }
    // The callee answers 60 ms later: 2 s of its stream, with its own numbering.
    sender.switch_source();
    tick += 3;
    for i in 0..100u16 {
        let now = start + ms(20 * tick);
        let mut bridged = vec![0x7Fu8; BUF];
        write_header(
            &mut bridged,
            i == 0,
            0,
            40_000u16.wrapping_add(i),
            7_777_000 + 160 * u32::from(i),
            0x5555,
        )
        .expect("fits");
        let len = sender.forward(&mut bridged, now).expect("valid");
        send(&bridged[..len], &mut phone, now);
        played += usize::from(phone.pop(&mut [0; FRAME_SAMPLES]) == PopKind::Audio);
        tick += 1;
    }
    // Back to a prompt (transfer announcement).
    sender.switch_source();
    for _ in 0..50 {
        let now = start + ms(20 * tick);
        let len = sender
            .write_packet(&ringback_codes, FRAME_TIMESTAMP_STEP, now, &mut buf)
            .expect("fits");
        send(&buf[..len], &mut phone, now);
        played += usize::from(phone.pop(&mut [0; FRAME_SAMPLES]) == PopKind::Audio);
        tick += 1;
    }
    let stats = phone.stats();
    assert_eq!(
        (stats.late, stats.duplicates, stats.ssrc_changes),
        (0, 0, 0)
    );
    assert!(played >= 195, "played {played} of 200 frames");
    let marked: Vec<usize> = markers
        .iter()
        .enumerate()
        .filter_map(|(i, &m)| m.then_some(i))
        .collect();
    assert_eq!(
        marked,
        vec![0, 50, 150],
        "marker on the first packet and at each switch"
    );
    for w in sequences.windows(2) {
        assert_eq!(w[1], w[0].wrapping_add(1), "sequence continuous");
    }
}

#[test]
fn rfc4733_digits_sent_by_us_are_received_once_each() {
    let start = Instant::now();
    let mut sender = RtpSender::new(1, 0, 0, 0);
    let mut receiver = Rfc4733Receiver::new();
    let mut buf = [0u8; 64];
    let mut now = start;
    let mut digits = String::new();
    for digit in "0123456789*#ABCD".chars() {
        let ts = sender.event_timestamp(now);
        let plan = Rfc4733Sender::new(digit, 100).expect("a key");
        let mut last = now;
        for packet in plan {
            let at = now + packet.send_at;
            let event = EventPacket {
                payload_type: PT_TELEPHONE_EVENT,
                marker: packet.marker,
                timestamp: ts,
                duration: packet.duration,
                payload: &packet.payload,
            };
            let len = sender.write_event(&event, at, &mut buf).expect("fits");
            let parsed = parse_rtp(&buf[..len]).expect("valid");
            // The network duplicates every packet.
            for _ in 0..2 {
                receiver
                    .on_packet(&parsed.header, parsed.payload, at)
                    .expect("valid");
            }
            last = at;
        }
        while let Some(d) = receiver.take_digit() {
            assert_eq!(d.source, DtmfSource::Rfc4733);
            assert_eq!(d.duration_ms, 100);
            digits.push(d.digit);
        }
        now = last + ms(100);
    }
    receiver.poll(now + ms(5_000));
    assert!(receiver.take_digit().is_none());
    assert_eq!(digits, "0123456789*#ABCD");
}

#[test]
fn inband_digits_survive_g711() {
    for law in [Law::Ulaw, Law::Alaw] {
        let mut detector = InbandDetector::new();
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut codes = [0u8; FRAME_SAMPLES];
        let mut decoded = [0i16; FRAME_SAMPLES];
        for digit in "147*2580369#ABCD".chars() {
            let mut tone = ToneGenerator::dtmf(digit, 60, 60).expect("a key");
            while tone.next_frame(&mut frame) {
                law.encode_frame(&frame, &mut codes);
                law.decode_frame(&codes, &mut decoded);
                detector.process(&decoded);
            }
        }
        let got: String = std::iter::from_fn(|| detector.take_digit())
            .map(|d| d.digit)
            .collect();
        assert_eq!(got, "147*2580369#ABCD", "{law:?}");
    }
}

#[test]
fn ringback_is_not_taken_for_a_digit() {
    let mut detector = InbandDetector::new();
    let mut tone = ToneGenerator::new(&RINGBACK);
    let mut frame = [0i16; FRAME_SAMPLES];
    for _ in 0..500 {
        tone.next_frame(&mut frame);
        detector.process(&frame);
    }
    assert!(detector.take_digit().is_none());
}

#[test]
fn a_sip_info_digit_stops_a_menu_prompt() {
    let digit =
        parse_sip_info("application/dtmf-relay", b"Signal=#\r\nDuration=160\r\n").expect("valid");
    let mut menu = Playback::new(9, Source::looping(sine(300.0, 800, 3_000.0).into()))
        .with_stop_on_dtmf(StopOnDtmf::keys("#").expect("keys"));
    let mut frame = [0i16; FRAME_SAMPLES];
    assert_eq!(menu.next_frame(&mut frame), PlaybackTick::Audio);
    let finished = menu.on_dtmf(digit.digit).expect("stopped");
    assert_eq!(finished.reason, StopReason::Dtmf('#'));
    assert_eq!(menu.next_frame(&mut frame), PlaybackTick::Idle);
}

/// Three phones send RTP into a conference; each hears the other two.
#[test]
fn a_conference_of_rtp_legs() {
    let start = Instant::now();
    let freqs = [(1u64, 600.0f32), (2, 1_100.0), (3, 1_700.0)];
    let signals: Vec<Vec<i16>> = freqs
        .iter()
        .map(|&(_, f)| sine(f, 160 * 30, 5_000.0))
        .collect();
    let mut legs: Vec<(RtpSender, JitterBuffer)> = freqs
        .iter()
        .map(|&(id, _)| (RtpSender::new(id as u32, 0, 0, 0), JitterBuffer::new()))
        .collect();
    let mut mixer = Mixer::new();
    for &(id, _) in &freqs {
        mixer.join(id, MixMode::TalkListen).expect("join");
    }
    let mut buf = [0u8; BUF];
    let mut codes = [0u8; FRAME_SAMPLES];
    for tick in 0..30usize {
        let now = start + ms(20 * tick as u64);
        for (i, (sender, jb)) in legs.iter_mut().enumerate() {
            let mut frame: Frame = [0; FRAME_SAMPLES];
            frame.copy_from_slice(&signals[i][tick * 160..(tick + 1) * 160]);
            Law::Ulaw.encode_frame(&frame, &mut codes);
            let len = sender
                .write_packet(&codes, FRAME_TIMESTAMP_STEP, now, &mut buf)
                .expect("fits");
            jb.push(&buf[..len], now);
            if let Some(input) = mixer.input_mut(freqs[i].0) {
                jb.pop(input);
            }
        }
        mixer.tick();
    }
    for &(id, own) in &freqs {
        let out = mixer.output(id).expect("member");
        assert!(tone_amplitude(out, own) < 100.0, "{id} hears itself");
        for &(other, f) in &freqs {
            if other != id {
                let level = tone_amplitude(out, f);
                assert!(
                    (level - 5_000.0).abs() < 300.0,
                    "{id} hears {other} at {level}"
                );
            }
        }
    }
}

#[test]
fn a_stereo_recording_has_caller_left_and_callee_right() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("call-42.wav");
    let caller = sine(400.0, 8_000 * 3, 6_000.0);
    let callee = sine(900.0, 8_000 * 3, 6_000.0);
    let mut writer = WavWriter::create_stereo(&path).expect("create");
    let mut codes = [0u8; FRAME_SAMPLES];
    let mut left = [0i16; FRAME_SAMPLES];
    let mut right = [0i16; FRAME_SAMPLES];
    for (a, b) in caller.chunks_exact(160).zip(callee.chunks_exact(160)) {
        // As on the wire: each side arrives µ-law coded.
        Law::Ulaw.encode_slice(a, &mut codes).expect("frame");
        Law::Ulaw.decode_slice(&codes, &mut left).expect("frame");
        Law::Ulaw.encode_slice(b, &mut codes).expect("frame");
        Law::Ulaw.decode_slice(&codes, &mut right).expect("frame");
        writer.write_stereo(&left, &right).expect("write");
    }
    let summary = writer.finish().expect("finish");
    assert_eq!(summary.duration_ms(), 3_000);
    let audio = read_wav("call-42.wav", &std::fs::read(&path).expect("read")).expect("valid");
    let l: Vec<i16> = audio.samples.iter().step_by(2).copied().collect();
    let r: Vec<i16> = audio.samples.iter().skip(1).step_by(2).copied().collect();
    assert!(tone_amplitude(&l[..8_000], 400.0) > 5_800.0);
    assert!(tone_amplitude(&l[..8_000], 900.0) < 60.0);
    assert!(tone_amplitude(&r[..8_000], 900.0) > 5_800.0);
    assert!(tone_amplitude(&r[..8_000], 400.0) < 60.0);
}

#[test]
fn a_16khz_prompt_is_resampled_and_a_24bit_one_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, rate: u32, bits: u16, data: &[u8]| {
        let mut v = Vec::new();
        let align = bits / 8;
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        v.extend_from_slice(&align.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        let path = dir.path().join(name);
        std::fs::write(&path, v).expect("write");
        path
    };
    let wideband: Vec<u8> = (0..16_000)
        .flat_map(|i| {
            let t = i as f32 / 16_000.0;
            ((7_000.0 * (2.0 * std::f32::consts::PI * 700.0 * t).sin()) as i16).to_le_bytes()
        })
        .collect();
    let prompt = load_prompt(&write("welcome.wav", 16_000, 16, &wideband)).expect("valid");
    assert_eq!(prompt.len(), 8_000);
    assert!((tone_amplitude(&prompt[1_000..7_000], 700.0) - 7_000.0).abs() < 150.0);

    let path = write("prompt.wav", 8_000, 24, &[0; 30]);
    let err = load_prompt(&path).expect_err("24-bit");
    assert_eq!(
        err.to_string(),
        format!("{}: unsupported format: 24-bit PCM", path.display())
    );
}

#[test]
fn malformed_rtp_is_dropped_and_counted() {
    let mut jb = JitterBuffer::new();
    let now = Instant::now();
    let junk: [&[u8]; 4] = [
        &[],
        &[0x80; 5],
        &[0x00; 20],
        &[0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1],
    ];
    for bytes in junk {
        assert!(matches!(jb.push(bytes, now), PushOutcome::Malformed(_)));
    }
    assert_eq!(jb.stats().malformed, 4);
    let mut frame = [1i16; FRAME_SAMPLES];
    assert_eq!(jb.pop(&mut frame), PopKind::Silence);
}
