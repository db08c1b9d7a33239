//! The RTP relay over real UDP sockets on 127.0.0.1.
//!
//! Each test takes its own slice of ports below the ephemeral range (so endpoints bound to
//! port 0 never land in it) and bounds every wait and every loop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::time::Duration;

use actors::media::relay::{self, Flow, Latching, RelayConfig, RelayEvent, RelayHandle, Side};
use actors::media::{PortAllocator, RelayError};
use bytes::Bytes;
use rtp::header::Header;
use rtp::packet::Packet;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;
use webrtc_util::marshal::Marshal;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Long enough for loopback under a loaded CI machine, short enough to fail fast.
const WAIT: Duration = Duration::from_secs(2);
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(200);
const PCMU_PT: u8 = 0;
const DTMF_PT: u8 = 101;
const FRAME: usize = 160;

/// A relay on ports `base..base+7`, and the handle/event pair.
fn relay_on(base: u16, config: RelayConfig) -> (RelayHandle, mpsc::Receiver<RelayEvent>) {
    let alloc = PortAllocator::new(LOOPBACK, base..=base + 7).expect("port range");
    let a = alloc.allocate().expect("ports for A");
    let b = alloc.allocate().expect("ports for B");
    relay::spawn(a, b, config).expect("spawn relay")
}

async fn endpoint() -> UdpSocket {
    UdpSocket::bind((LOOPBACK, 0)).await.expect("bind endpoint")
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().expect("local addr")
}

fn rtcp_of(rtp: SocketAddr) -> SocketAddr {
    SocketAddr::new(rtp.ip(), rtp.port() + 1)
}

fn rtp_packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    Packet {
        header: Header {
            version: 2,
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            ..Default::default()
        },
        payload: Bytes::copy_from_slice(payload),
    }
    .marshal()
    .expect("marshal")
    .to_vec()
}

fn voice(seq: u16, ssrc: u32) -> Vec<u8> {
    let fill = u8::try_from(seq % 251).unwrap_or(0);
    rtp_packet(PCMU_PT, seq, u32::from(seq) * 160, ssrc, &[fill; FRAME])
}

/// An RTCP receiver report with no blocks (version 2, PT 201, length 1).
fn rtcp_rr(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 201, 0, 1];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p
}

async fn recv(sock: &UdpSocket, within: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 2048];
    match timeout(within, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, from))) => Some((buf[..n].to_vec(), from)),
        _ => None,
    }
}

async fn send(sock: &UdpSocket, data: &[u8], to: SocketAddr) {
    sock.send_to(data, to).await.expect("send");
}

/// Sends `packet` from `from` to `to` and expects exactly those bytes at `at`.
async fn through(from: &UdpSocket, to: SocketAddr, packet: &[u8], at: &UdpSocket) {
    send(from, packet, to).await;
    let (got, _) = recv(at, WAIT).await.expect("packet relayed");
    assert_eq!(got, packet);
}

async fn wait_stats<F: Fn(&relay::RelayStatsSnapshot) -> bool>(h: &RelayHandle, ok: F) {
    // The counter is bumped just after the send; poll briefly rather than race it.
    for _ in 0..100 {
        if ok(&h.stats()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("stats never matched: {:?}", h.stats());
}

fn no_timeout() -> RelayConfig {
    RelayConfig {
        rtp_timeout: None,
        ..RelayConfig::default()
    }
}

#[tokio::test]
async fn relays_both_directions_byte_for_byte() {
    let (h, _events) = relay_on(31_000, no_timeout());
    let (ea, eb) = (endpoint().await, endpoint().await);
    h.set_remote(Side::A, Some(addr(&ea))).expect("set A");
    h.set_remote(Side::B, Some(addr(&eb))).expect("set B");
    let (to_a, to_b) = (h.local_addr(Side::A), h.local_addr(Side::B));
    assert_ne!(to_a, to_b);

    const N: u16 = 50;
    for seq in 0..N {
        through(&ea, to_a, &voice(seq, 0xaaaa), &eb).await;
        through(&eb, to_b, &voice(1000 + seq, 0xbbbb), &ea).await;
    }
    // The relay sends to each side from that side's own port (symmetric RTP).
    send(&ea, &voice(N, 0xaaaa), to_a).await;
    let (_, src) = recv(&eb, WAIT).await.expect("relayed");
    assert_eq!(src, to_b);

    let n = u64::from(N) + 1;
    let bytes = n * (12 + FRAME as u64);
    wait_stats(&h, |s| s.a_to_b.packets == n && s.b_to_a.packets == n - 1).await;
    let s = h.stats();
    assert_eq!(s.a_to_b.bytes, bytes);
    assert_eq!(s.a_to_b.dropped + s.b_to_a.dropped, 0);
    assert_eq!((s.a.bad, s.b.bad, s.a.rejected, s.b.rejected), (0, 0, 0, 0));
    h.stop().expect("stop");
}

#[tokio::test]
async fn rtcp_is_relayed_on_the_port_above() {
    let (h, _events) = relay_on(31_010, no_timeout());
    let (ea_rtcp, eb, eb_rtcp) = (endpoint().await, endpoint().await, endpoint().await);
    // A's SDP is unknown: its RTCP destination comes from latching alone.
    h.set_remote(Side::B, Some(addr(&eb))).expect("set B");
    h.set_remote_rtcp(Side::B, Some(addr(&eb_rtcp)))
        .expect("set B rtcp");
    let (to_a_rtcp, to_b_rtcp) = (
        rtcp_of(h.local_addr(Side::A)),
        rtcp_of(h.local_addr(Side::B)),
    );
    through(&ea_rtcp, to_a_rtcp, &rtcp_rr(1), &eb_rtcp).await;
    through(&eb_rtcp, to_b_rtcp, &rtcp_rr(2), &ea_rtcp).await;
    // RTCP does not leak onto the RTP sockets.
    assert!(recv(&eb, QUIET).await.is_none());
    wait_stats(&h, |s| {
        s.a_to_b.rtcp_packets == 1 && s.b_to_a.rtcp_packets == 1
    })
    .await;
    assert_eq!(h.stats().a_to_b.packets, 0);
}

#[tokio::test]
async fn latches_to_actual_source_and_rejects_others() {
    let (h, _events) = relay_on(31_020, no_timeout());
    // A's SDP names one port, but A's NAT sends from another.
    let (sdp_a, real_a, intruder, eb) = (
        endpoint().await,
        endpoint().await,
        endpoint().await,
        endpoint().await,
    );
    h.set_remote(Side::A, Some(addr(&sdp_a))).expect("set A");
    h.set_remote(Side::B, Some(addr(&eb))).expect("set B");
    let (to_a, to_b) = (h.local_addr(Side::A), h.local_addr(Side::B));

    through(&real_a, to_a, &voice(1, 0xa), &eb).await;
    through(&eb, to_b, &voice(2, 0xb), &real_a).await;
    assert!(recv(&sdp_a, QUIET).await.is_none(), "SDP address bypassed");

    // Someone else sending to A's port is neither forwarded nor latched.
    send(&intruder, &voice(3, 0xbad), to_a).await;
    assert!(recv(&eb, QUIET).await.is_none());
    through(&eb, to_b, &voice(4, 0xb), &real_a).await;
    wait_stats(&h, |s| s.a.rejected == 1).await;

    // A new SDP address (re-INVITE) starts latching over.
    h.set_remote(Side::A, Some(addr(&sdp_a)))
        .expect("set A again");
    through(&eb, to_b, &voice(5, 0xb), &sdp_a).await;
    through(&intruder, to_a, &voice(6, 0xc), &eb).await;
    through(&eb, to_b, &voice(7, 0xb), &intruder).await;
}

#[tokio::test]
async fn latching_off_and_same_ip() {
    let (h, _events) = relay_on(
        31_030,
        RelayConfig {
            latching: Latching::Off,
            ..no_timeout()
        },
    );
    let (sdp_a, real_a, eb) = (endpoint().await, endpoint().await, endpoint().await);
    h.set_remote(Side::A, Some(addr(&sdp_a))).expect("set A");
    h.set_remote(Side::B, Some(addr(&eb))).expect("set B");
    through(&real_a, h.local_addr(Side::A), &voice(1, 1), &eb).await;
    // Off: media still goes where the SDP says.
    through(&eb, h.local_addr(Side::B), &voice(2, 2), &sdp_a).await;
    h.stop().expect("stop");

    let (h, _events) = relay_on(
        31_040,
        RelayConfig {
            latching: Latching::SameIp,
            ..no_timeout()
        },
    );
    // The SDP claims another loopback IP (nothing is ever sent there in this test):
    // 127.0.0.1 is then a foreign source and must not be latched.
    let elsewhere = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 9);
    h.set_remote(Side::A, Some(elsewhere)).expect("set A");
    h.set_remote(Side::B, Some(addr(&eb))).expect("set B");
    send(&real_a, &voice(3, 1), h.local_addr(Side::A)).await;
    assert!(recv(&eb, QUIET).await.is_none());
    wait_stats(&h, |s| s.a.rejected == 1).await;
    // Same IP, different port: latched.
    h.set_remote(Side::A, Some(addr(&sdp_a))).expect("set A");
    through(&real_a, h.local_addr(Side::A), &voice(4, 1), &eb).await;
    through(&eb, h.local_addr(Side::B), &voice(5, 2), &real_a).await;
}

#[tokio::test]
async fn bad_packets_are_dropped_and_counted() {
    let (h, _events) = relay_on(31_050, no_timeout());
    let (ea, eb) = (endpoint().await, endpoint().await);
    h.set_remote(Side::A, Some(addr(&ea))).expect("set A");
    h.set_remote(Side::B, Some(addr(&eb))).expect("set B");
    let to_a = h.local_addr(Side::A);
    let mut version1 = voice(1, 1);
    version1[0] = 0x40;
    let mut version0 = voice(2, 1);
    version0[0] = 0x00;
    let bad: [&[u8]; 5] = [b"", b"hello", &[0x80; 11], &version1, &version0];
    for p in bad {
        send(&ea, p, to_a).await;
    }
    // STUN-like and oversized datagrams are not RTP either.
    send(&ea, &[0u8; 20], to_a).await;
    let mut huge = voice(3, 1);
    huge.resize(4000, 0);
    send(&ea, &huge, to_a).await;
    assert!(recv(&eb, QUIET).await.is_none());
    wait_stats(&h, |s| s.a.bad == 7).await;
    // Short RTCP is bad too.
    send(&ea, &[0x80, 201, 0], rtcp_of(to_a)).await;
    wait_stats(&h, |s| s.a.bad == 8).await;
    // The relay is still working; bad packets never latched anything.
    through(&ea, to_a, &voice(4, 1), &eb).await;
    let s = h.stats();
    assert_eq!((s.a_to_b.packets, s.a.rejected, s.b.bad), (1, 0, 0));
}

#[tokio::test]
async fn no_destination_yet_drops_and_counts() {
    let (h, _events) = relay_on(31_060, no_timeout());
    let (ea, eb) = (endpoint().await, endpoint().await);
    send(&ea, &voice(1, 1), h.local_addr(Side::A)).await;
    wait_stats(&h, |s| s.a_to_b.dropped == 1).await;
    // B latches by sending; A latched above, so B's media reaches A.
    through(&eb, h.local_addr(Side::B), &voice(2, 2), &ea).await;
    through(&ea, h.local_addr(Side::A), &voice(3, 1), &eb).await;
    // Hold with 0.0.0.0: no destination for B any more (and no latch).
    h.set_remote(Side::B, None).expect("clear B");
    send(&ea, &voice(4, 1), h.local_addr(Side::A)).await;
    wait_stats(&h, |s| s.a_to_b.dropped == 2).await;
    assert!(recv(&eb, QUIET).await.is_none());
}

#[tokio::test]
async fn pause_and_resume_one_direction() {
    let (h, _events) = relay_on(31_070, no_timeout());
    let (ea, eb) = (endpoint().await, endpoint().await);
    h.set_remote(Side::A, Some(addr(&ea))).expect("set A");
    h.set_remote(Side::B, Some(addr(&eb))).expect("set B");
    let (to_a, to_b) = (h.local_addr(Side::A), h.local_addr(Side::B));
    h.pause(Flow::AToB).expect("pause");
    send(&ea, &voice(1, 1), to_a).await;
    assert!(recv(&eb, QUIET).await.is_none());
    through(&eb, to_b, &voice(2, 2), &ea).await;
    wait_stats(&h, |s| s.a_to_b.dropped == 1).await;
    h.resume(Flow::AToB).expect("resume");
    through(&ea, to_a, &voice(3, 1), &eb).await;
}

#[tokio::test]
async fn timeout_fires_after_answer_and_frees_ports() {
    const RTP_TIMEOUT: Duration = Duration::from_millis(300);
    let config = RelayConfig {
        rtp_timeout: Some(RTP_TIMEOUT),
        ..RelayConfig::default()
    };
    let (h, mut events) = relay_on(31_080, config);
    let (ea, eb) = (endpoint().await, endpoint().await);
    h.set_remote(Side::A, Some(addr(&ea))).expect("set A");
    h.set_remote(Side::B, Some(addr(&eb))).expect("set B");
    let to_a = h.local_addr(Side::A);

    // Not answered yet: silence is fine (ringing, no early media).
    assert!(timeout(RTP_TIMEOUT * 2, events.recv()).await.is_err());

    h.start().expect("start");
    let to_b = h.local_addr(Side::B);
    // Media from both sides keeps it alive past the timeout: 20 × 40 ms = 800 ms.
    for seq in 0..20 {
        send(&ea, &voice(seq, 1), to_a).await;
        send(&eb, &voice(seq, 2), to_b).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(events.try_recv().is_err(), "timed out while media flowed");
    }
    // B on hold (its flow paused): A alone keeps the call up.
    h.pause(Flow::BToA).expect("pause");
    for seq in 20..35 {
        send(&ea, &voice(seq, 1), to_a).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(events.try_recv().is_err(), "timed out while B was on hold");
    }
    h.resume(Flow::BToA).expect("resume");

    // B vanished: A still talks, but B's silence ends the call.
    let started = tokio::time::Instant::now();
    let mut seq = 35;
    let ev = loop {
        send(&ea, &voice(seq, 1), to_a).await;
        seq += 1;
        match timeout(Duration::from_millis(40), events.recv()).await {
            Ok(ev) => break ev,
            Err(_) => assert!(started.elapsed() < WAIT, "no timeout event in time"),
        }
    };
    assert_eq!(ev, Some(RelayEvent::Timeout));
    assert!(started.elapsed() >= RTP_TIMEOUT - Duration::from_millis(20));
    // The task has ended: the channel closes and the ports can be bound again.
    assert_eq!(timeout(WAIT, events.recv()).await.expect("closed"), None);
    timeout(WAIT, h.closed()).await.expect("task ended");
    assert!(matches!(h.start(), Err(RelayError::Closed)));
    for side in [Side::A, Side::B] {
        let rtp = h.local_addr(side);
        StdUdpSocket::bind(rtp).expect("RTP port free");
        StdUdpSocket::bind(rtcp_of(rtp)).expect("RTCP port free");
    }
}

#[tokio::test]
async fn stop_releases_ports() {
    let (h, mut events) = relay_on(31_090, RelayConfig::default());
    let local = [h.local_addr(Side::A), h.local_addr(Side::B)];
    for rtp in local {
        assert!(StdUdpSocket::bind(rtp).is_err(), "relay holds {rtp}");
    }
    h.stop().expect("stop");
    timeout(WAIT, h.closed()).await.expect("task ended");
    // Stopped on request: nothing to report, the channel just closes.
    assert_eq!(timeout(WAIT, events.recv()).await.expect("closed"), None);
    for rtp in local {
        StdUdpSocket::bind(rtp).expect("RTP port free");
        StdUdpSocket::bind(rtcp_of(rtp)).expect("RTCP port free");
    }
}

#[tokio::test]
async fn dropping_every_handle_ends_the_task() {
    let (h, mut events) = relay_on(31_100, RelayConfig::default());
    let rtp = h.local_addr(Side::A);
    let clone = h.clone();
    drop(h);
    assert!(!clone.is_closed());
    drop(clone);
    assert_eq!(timeout(WAIT, events.recv()).await.expect("closed"), None);
    // The event channel closes after the sockets are dropped.
    StdUdpSocket::bind(rtp).expect("port free");
}

/// One RFC 4733 press as a phone sends it: 3 start/continuation packets, then the end
/// packet three times, all with the event's timestamp.
fn dtmf_press(event: u8, seq: &mut u16, ts: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (i, end) in [false, false, false, true, true, true]
        .into_iter()
        .enumerate()
    {
        let duration = u16::try_from((i + 1) * 160).unwrap_or(u16::MAX);
        let flags = if end { 0x80 | 10 } else { 10 };
        let [d0, d1] = duration.to_be_bytes();
        let mut p = rtp_packet(DTMF_PT, *seq, ts, 0xd7, &[event, flags, d0, d1]);
        if i == 0 {
            p[1] |= 0x80; // marker on the first packet of the event
        }
        out.push(p);
        // RFC 4733 §2.5.1.4: the repeated end packets share one sequence number.
        if i < 3 {
            *seq = seq.wrapping_add(1);
        }
    }
    *seq = seq.wrapping_add(1);
    out
}

#[tokio::test]
async fn dtmf_reported_once_per_press() {
    let (h, mut events) = relay_on(31_110, no_timeout());
    let (ea, eb) = (endpoint().await, endpoint().await);
    h.set_remote(Side::A, Some(addr(&ea))).expect("set A");
    h.set_remote(Side::B, Some(addr(&eb))).expect("set B");
    h.set_dtmf_payload_type(Side::A, Some(DTMF_PT))
        .expect("dtmf A");
    let to_a = h.local_addr(Side::A);

    let mut seq = 100;
    let presses = [(5u8, '5'), (11, '#'), (5, '5'), (10, '*'), (15, 'D')];
    for (i, (event, _)) in presses.iter().enumerate() {
        let ts = 8000 * (u32::try_from(i).unwrap_or(0) + 1);
        for p in dtmf_press(*event, &mut seq, ts) {
            // Forwarded as-is, too.
            through(&ea, to_a, &p, &eb).await;
        }
        through(&ea, to_a, &voice(seq, 0xd7), &eb).await;
        seq = seq.wrapping_add(1);
    }
    for (_, digit) in presses {
        let ev = timeout(WAIT, events.recv()).await.expect("dtmf event");
        assert_eq!(
            ev,
            Some(RelayEvent::Dtmf {
                side: Side::A,
                digit
            })
        );
    }
    assert!(
        timeout(QUIET, events.recv()).await.is_err(),
        "duplicate DTMF"
    );

    // Side B has no DTMF payload type set: its events are just forwarded.
    let eb_press = dtmf_press(1, &mut seq, 99_000);
    for p in &eb_press {
        through(&eb, h.local_addr(Side::B), p, &ea).await;
    }
    assert!(timeout(QUIET, events.recv()).await.is_err());
    h.set_dtmf_payload_type(Side::B, Some(DTMF_PT))
        .expect("dtmf B");
    for p in dtmf_press(1, &mut seq, 99_160) {
        through(&eb, h.local_addr(Side::B), &p, &ea).await;
    }
    let ev = timeout(WAIT, events.recv()).await.expect("dtmf event");
    assert_eq!(
        ev,
        Some(RelayEvent::Dtmf {
            side: Side::B,
            digit: '1'
        })
    );
}

#[test]
fn spawn_outside_runtime_is_an_error() {
    let alloc = PortAllocator::new(LOOPBACK, 31_120..=31_127).expect("range");
    let a = alloc.allocate().expect("A");
    let b = alloc.allocate().expect("B");
    assert!(matches!(
        relay::spawn(a, b, RelayConfig::default()),
        Err(RelayError::NoRuntime)
    ));
}
