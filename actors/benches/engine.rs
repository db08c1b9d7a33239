//! The media engine with real sockets on loopback: `cargo bench -p actors --bench engine`.
//!
//! A generator thread plays the phones: it sends one 20 ms G.711 packet per phone per
//! tick to the engine's endpoints (paced in real time) and never reads what comes back
//! (the kernel drops it once a socket's buffer is full, as it would for a slow phone).
//! The figure is the CPU time of the engine thread itself (`/proc/self/task/<tid>/stat`),
//! over a measuring window once everything runs, plus the engine's late-tick count.
//! Every scenario is bounded in count and time. Printed as `BENCH name=value …` lines:
//!
//! - `engine_relay`: N bridged calls, both parties talking: CPU % of one core per call,
//!   µs per relayed packet. The phones send in step (all packets of a 20 ms tick in one
//!   burst), so the engine finds many ready at each wake-up;
//! - `engine_relay_spread`: the same with each phone's packets spread over the 20 ms, as
//!   unsynchronised phones send them: what the wake-ups cost;
//! - `engine_playback`: N endpoints each playing a looping prompt: CPU per stream and
//!   late ticks (a late tick is a frame sent more than 40 ms late);
//! - `engine_recording`: N bridged calls recorded to stereo WAV files;
//! - `engine_conference`: rooms of 5 talking members: CPU per member per 20 ms tick.
//! - `udp_loopback_floor`: no engine: one thread sends a G.711 packet on one loopback
//!   socket and receives it on another, as fast as it can. On loopback the sender's
//!   `sendto` also runs the receiver's UDP input, so this is what one relayed packet costs
//!   the kernel alone (one receive, one send), and ×100 packets a second the floor under
//!   the relay's CPU per call, whatever the engine does.
//!
//! `BENCH_ENGINE_SCALE` (default 1.0) scales the counts; `BENCH_ENGINE_WINDOW` (s, default 5);
//! `BENCH_ENGINE_ONLY` (comma-separated names without `engine_`, e.g. `relay,relay_spread`)
//! runs only those scenarios.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::media::engine::Latching;
use actors::media::engine::{Codec, Endpoint, EventSink, MediaEngine};
use actors::media::g711::Law;
use actors::media::mixer::MixMode;
use actors::media::playback::{Playback, Source};
use actors::media::rtp_out::write_header;
use actors::media::wav::WavWriter;
use actors::media::PortAllocator;

const TICK: Duration = Duration::from_millis(20);
const PAYLOAD: usize = 160;
/// Longest a scenario may run, whatever the settings.
const SCENARIO_LIMIT: Duration = Duration::from_secs(60);

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of the thread named `name` in this process, in seconds.
fn thread_cpu(name: &str) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let stime: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        return (utime + stime) / ticks;
    }
    0.0
}

struct Rig {
    engine: MediaEngine,
    ports: PortAllocator,
    sink: EventSink,
}

impl Rig {
    fn new() -> Self {
        let (sink, rx) = tokio::sync::mpsc::unbounded_channel();
        // Nobody reads the events here; keep the receiver alive so sends succeed.
        std::mem::forget(rx);
        Self {
            engine: MediaEngine::start().expect("engine"),
            ports: PortAllocator::new("127.0.0.1".parse().unwrap(), 30000..=39999).unwrap(),
            sink,
        }
    }

    /// An endpoint facing `phone`.
    fn endpoint(&self, phone: SocketAddr) -> Endpoint {
        let ep = self
            .engine
            .open(
                self.ports.allocate().expect("ports"),
                Latching::Any,
                self.sink.clone(),
            )
            .expect("open");
        ep.set_remote(Some(phone)).unwrap();
        ep.set_codec(Codec {
            law: Law::Ulaw,
            dtmf_pt: Some(101),
            declared_dtmf_pt: None,
        })
        .unwrap();
        ep
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.engine.shutdown();
    }
}

/// Phones: one socket each, sending to its endpoint.
struct Phones {
    sockets: Vec<(UdpSocket, SocketAddr)>,
}

impl Phones {
    fn new(n: usize) -> Self {
        let sockets = (0..n)
            .map(|_| {
                let s = UdpSocket::bind("127.0.0.1:0").expect("phone socket");
                s.set_nonblocking(true).unwrap();
                (s, "0.0.0.0:0".parse().unwrap())
            })
            .collect();
        Self { sockets }
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.sockets[i].0.local_addr().unwrap()
    }

    fn target(&mut self, i: usize, to: SocketAddr) {
        self.sockets[i].1 = to;
    }

    /// Sends one packet per phone per tick until `stop`; returns packets sent. `spread`:
    /// phone `n` of `N` sends at `n/N` of each tick rather than all at its start.
    fn run(self, stop: Arc<AtomicBool>, spread: bool) -> std::thread::JoinHandle<u64> {
        std::thread::spawn(move || {
            let mut pkt = [0u8; 12 + PAYLOAD];
            for (i, b) in pkt[12..].iter_mut().enumerate() {
                *b = Law::Ulaw.encode((3_000.0 * (i as f32 * 0.35).sin()) as i16);
            }
            let start = Instant::now();
            let mut tick = 0u64;
            let mut sent = 0u64;
            let phones = self.sockets.len().max(1) as u32;
            while !stop.load(Ordering::Relaxed) && start.elapsed() < SCENARIO_LIMIT {
                for (n, (s, to)) in self.sockets.iter().enumerate() {
                    if spread {
                        let due = start + TICK * tick as u32 + TICK * n as u32 / phones;
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    let seq = tick as u16;
                    let ts = (tick as u32).wrapping_mul(PAYLOAD as u32);
                    let _ = write_header(&mut pkt, false, 0, seq, ts, 0x1000 + n as u32);
                    if s.send_to(&pkt, to).is_ok() {
                        sent += 1;
                    }
                }
                tick += 1;
                let due = start + TICK * tick as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            sent
        })
    }
}

/// Runs `phones` for a warm-up and a window; returns (engine CPU seconds, window seconds).
fn measure(rig: &Rig, phones: Phones, window: Duration, spread: bool) -> (f64, f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let generator = phones.run(stop.clone(), spread);
    std::thread::sleep(Duration::from_secs(1));
    let late0 = rig.engine.stats().late_ticks;
    let c0 = thread_cpu("media");
    let t0 = Instant::now();
    std::thread::sleep(window);
    let c1 = thread_cpu("media");
    let secs = t0.elapsed().as_secs_f64();
    let late = rig.engine.stats().late_ticks - late0;
    stop.store(true, Ordering::Relaxed);
    let _ = generator.join();
    (c1 - c0, secs, late)
}

fn relay(calls: usize, window: Duration, spread: bool) {
    let rig = Rig::new();
    let mut phones = Phones::new(2 * calls);
    let mut eps = Vec::new();
    for c in 0..calls {
        let a = rig.endpoint(phones.addr(2 * c));
        let b = rig.endpoint(phones.addr(2 * c + 1));
        a.connect(&b).unwrap();
        phones.target(2 * c, a.local_addr());
        phones.target(2 * c + 1, b.local_addr());
        eps.push((a, b));
    }
    let (cpu, secs, late) = measure(&rig, phones, window, spread);
    let packets = (2 * calls) as f64 * 50.0 * secs;
    let forwarded: u64 = eps
        .iter()
        .map(|(a, b)| a.stats().forwarded + b.stats().forwarded)
        .sum();
    let name = if spread {
        "engine_relay_spread"
    } else {
        "engine_relay"
    };
    println!(
        "BENCH {name} calls={calls} cpu_percent_of_one_core_per_call={:.4} us_per_packet={:.2} engine_cpu_percent={:.1} late_ticks={late} forwarded_total={forwarded}",
        cpu / secs / calls as f64 * 100.0,
        cpu / packets * 1e6,
        cpu / secs * 100.0,
    );
}

fn playback(streams: usize, window: Duration) {
    let rig = Rig::new();
    let prompt: Arc<[i16]> = (0..8_000)
        .map(|i| (6_000.0 * (i as f32 * 0.3).sin()) as i16)
        .collect::<Vec<_>>()
        .into();
    // The "phones" only receive; the generator sends nothing (no sockets to serve).
    let sinks: Vec<UdpSocket> = (0..streams.min(64))
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut eps = Vec::new();
    for n in 0..streams {
        let ep = rig.endpoint(sinks[n % sinks.len()].local_addr().unwrap());
        ep.play(Playback::new(1, Source::looping(prompt.clone())))
            .unwrap();
        eps.push(ep);
    }
    let (cpu, secs, late) = measure(&rig, Phones::new(0), window, false);
    let generated: u64 = eps.iter().map(|e| e.stats().generated).sum();
    println!(
        "BENCH engine_playback streams={streams} cpu_percent_of_one_core_per_stream={:.4} engine_cpu_percent={:.1} late_ticks={late} streams_per_core_estimate={:.0} generated_total={generated}",
        cpu / secs / streams as f64 * 100.0,
        cpu / secs * 100.0,
        streams as f64 / (cpu / secs).max(1e-9),
    );
}

fn recording(calls: usize, window: Duration) {
    let rig = Rig::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut phones = Phones::new(2 * calls);
    let mut keep = Vec::new();
    for c in 0..calls {
        let a = rig.endpoint(phones.addr(2 * c));
        let b = rig.endpoint(phones.addr(2 * c + 1));
        a.connect(&b).unwrap();
        phones.target(2 * c, a.local_addr());
        phones.target(2 * c + 1, b.local_addr());
        let writer = WavWriter::create_stereo(&dir.path().join(format!("{c}.wav"))).unwrap();
        let rec = rig
            .engine
            .record(writer, Some(&a), Some(&b), rig.sink.clone())
            .unwrap();
        keep.push((a, b, rec));
    }
    let (cpu, secs, late) = measure(&rig, phones, window, false);
    println!(
        "BENCH engine_recording calls={calls} cpu_percent_of_one_core_per_recorded_call={:.4} engine_cpu_percent={:.1} late_ticks={late} recorded_calls_per_core_estimate={:.0}",
        cpu / secs / calls as f64 * 100.0,
        cpu / secs * 100.0,
        calls as f64 / (cpu / secs).max(1e-9),
    );
}

fn conference(rooms: usize, members: usize, window: Duration) {
    let rig = Rig::new();
    let mut phones = Phones::new(rooms * members);
    let mut keep = Vec::new();
    for r in 0..rooms {
        let room = rig.engine.create_room().unwrap();
        for m in 0..members {
            let i = r * members + m;
            let ep = rig.endpoint(phones.addr(i));
            ep.join(&room, MixMode::TalkListen).unwrap();
            phones.target(i, ep.local_addr());
            keep.push(ep);
        }
        std::mem::forget(room);
    }
    let (cpu, secs, late) = measure(&rig, phones, window, false);
    let member_ticks = (rooms * members) as f64 * 50.0 * secs;
    println!(
        "BENCH engine_conference rooms={rooms} members_per_room={members} us_per_member_per_tick={:.2} engine_cpu_percent={:.1} late_ticks={late}",
        cpu / member_ticks * 1e6,
        cpu / secs * 100.0,
    );
}

/// CPU time of the calling thread, in seconds.
fn this_thread_cpu() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn udp_loopback_floor(packets: usize) {
    let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
    b.set_nonblocking(true).expect("nonblocking");
    let dest = b.local_addr().expect("addr");
    let packet = [0x80u8; 12 + PAYLOAD];
    let mut buf = [0u8; 2048];
    let started = Instant::now();
    let cpu0 = this_thread_cpu();
    let mut done = 0usize;
    while done < packets && started.elapsed() < SCENARIO_LIMIT {
        if a.send_to(&packet, dest).is_ok() {
            let _ = b.recv_from(&mut buf);
        }
        done += 1;
    }
    let per_packet = (this_thread_cpu() - cpu0) / done.max(1) as f64;
    println!(
        "BENCH udp_loopback_floor packets={done} us_per_packet={:.2} floor_cpu_percent_of_one_core_per_call={:.4}",
        per_packet * 1e6,
        per_packet * 100.0 * 100.0,
    );
}

fn main() {
    let scale = env_f64("BENCH_ENGINE_SCALE", 1.0).clamp(0.01, 4.0);
    let window = Duration::from_secs_f64(env_f64("BENCH_ENGINE_WINDOW", 5.0).clamp(1.0, 30.0));
    let n = |base: f64| ((base * scale) as usize).max(1);
    let only = std::env::var("BENCH_ENGINE_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only.split(',').any(|o| o.trim() == name);
    if run("relay") {
        relay(n(500.0), window, false);
    }
    if run("relay_spread") {
        relay(n(500.0), window, true);
    }
    if run("playback") {
        playback(n(1000.0), window);
    }
    if run("recording") {
        recording(n(500.0), window);
    }
    if run("conference") {
        conference(n(40.0), 5, window);
    }
    if run("udp_loopback_floor") {
        udp_loopback_floor(n(200_000.0));
    }
}
