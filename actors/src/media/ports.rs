//! RTP/RTCP port allocation from a configured range.
//!
//! Each allocation binds an even RTP port and the RTCP port above it (RFC 3550 §11) on the
//! switch's media address. The bound sockets are the reservation: a port some other
//! process holds is found by the failed bind and skipped, so no shared table can drift
//! from the OS.
//!
//! A pair whose call has ended is not closed but *rests* (bound, out of the engine's
//! epoll set) and is handed out again once it has rested [`REUSE_QUARANTINE`], drained
//! of whatever arrived meanwhile. Creating, binding and closing four sockets was a tenth
//! of the switch's CPU per call at 2,000 calls/s; a rested pair costs two `recvfrom`s.
//! New pairs are bound round-robin from where the last bind stopped, so a port freed by a
//! call that just ended is not handed out again at once (late packets of the old call
//! would land in the new one); pairs this allocator holds are skipped without a system
//! call.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

/// Default media port range, as in common SIP switch configurations.
pub const DEFAULT_PORT_MIN: u16 = 20_000;
pub const DEFAULT_PORT_MAX: u16 = 29_999;

/// How long a released pair rests before it is handed out again: a peer that has not
/// yet seen the BYE keeps sending for a round trip or a retransmitted BYE (T1 = 500 ms,
/// then 1 s); what it sent is drained at reuse, but packets still arriving afterwards
/// would reach the next call.
pub const REUSE_QUARANTINE: Duration = Duration::from_secs(2);

/// Datagrams drained from a rested socket before it is given up on as flooded (closed,
/// and another pair taken).
const MAX_DRAINED: usize = 256;

/// Descriptors kept for everything but media (signalling, database, HTTP, files): left out
/// of the resting pool's budget, and added to the range when checking the open-file limit.
pub const RESERVED_FDS: u64 = 1_024;

/// Errors from creating an allocator or allocating ports.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("port range {min}-{max} holds no even/odd port pair")]
    EmptyRange { min: u16, max: u16 },
    #[error("no free RTP port pair in {min}-{max}")]
    Exhausted { min: u16, max: u16 },
    #[error("cannot bind media socket on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// Hands out RTP/RTCP port pairs on one IP address. Cheap to share (`&self` API).
#[derive(Debug)]
pub struct PortAllocator {
    ip: IpAddr,
    first: u16,
    pairs: usize,
    range: (u16, u16),
    pool: Arc<Pool>,
    quarantine: Duration,
}

/// The pairs this allocator holds: which slots are bound (in use or resting) and the
/// resting ones in the order they were released.
#[derive(Debug)]
struct Pool {
    state: Mutex<PoolState>,
    /// At most this many pairs rest; more are closed (each holds two descriptors).
    max_resting: usize,
}

#[derive(Debug)]
struct PoolState {
    /// Where the round-robin binding goes on.
    cursor: usize,
    held: Vec<bool>,
    held_count: usize,
    resting: VecDeque<Resting>,
}

#[derive(Debug)]
struct Resting {
    since: Instant,
    slot: usize,
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // The state stays consistent across a panic (plain field updates).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A pair's claim on its slot of the allocator. Dropped with the pair, it frees the slot
/// (the sockets close with the pair); [`Lease::rest`] instead returns the sockets to the
/// allocator for reuse.
#[derive(Debug)]
pub struct Lease {
    pool: Arc<Pool>,
    slot: usize,
    /// The slot's bookkeeping is done (resting, or freed by `rest`): nothing on drop.
    settled: bool,
}

impl Lease {
    fn new(pool: &Arc<Pool>, slot: usize) -> Self {
        Self {
            pool: Arc::clone(pool),
            slot,
            settled: false,
        }
    }

    /// Hands the pair's sockets back to rest. The caller must have taken them out of any
    /// epoll set (they stay open). When the pool is full they are closed instead.
    pub fn rest(mut self, rtp: UdpSocket, rtcp: UdpSocket) {
        let mut state = self.pool.lock();
        if state.resting.len() >= self.pool.max_resting {
            release_slot(&mut state, self.slot);
        } else {
            state.resting.push_back(Resting {
                since: Instant::now(),
                slot: self.slot,
                rtp,
                rtcp,
            });
        }
        self.settled = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.settled {
            release_slot(&mut self.pool.lock(), self.slot);
        }
    }
}

/// A bound RTP socket (even port) and RTCP socket (port + 1). Non-blocking, ready to be
/// handed to the media engine. Dropping it releases both ports; its [`Lease`] can instead
/// return them to the allocator.
#[derive(Debug)]
pub struct PortPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    /// The RTP port (RTCP is `port + 1`).
    pub port: u16,
    pub ip: IpAddr,
    pub lease: Lease,
}

impl PortPair {
    pub fn rtp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    pub fn rtcp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port.saturating_add(1))
    }
}

impl PortAllocator {
    /// An allocator for `range` (inclusive) on `ip`. Odd bounds are narrowed to whole
    /// even/odd pairs. Released pairs rest for reuse as far as the open-file limit allows
    /// (half of what is left after [`RESERVED_FDS`], the other half for pairs in use).
    pub fn new(ip: IpAddr, range: RangeInclusive<u16>) -> Result<Self, PortError> {
        let fd_limit = open_file_limit().unwrap_or(0);
        let max_resting =
            usize::try_from(fd_limit.saturating_sub(RESERVED_FDS) / 4).unwrap_or(usize::MAX);
        Self::with_reuse(ip, range, max_resting, REUSE_QUARANTINE)
    }

    /// As [`PortAllocator::new`], with at most `max_resting` pairs kept for reuse (0: every
    /// released pair is closed), each resting `quarantine` before reuse.
    pub fn with_reuse(
        ip: IpAddr,
        range: RangeInclusive<u16>,
        max_resting: usize,
        quarantine: Duration,
    ) -> Result<Self, PortError> {
        let (min, max) = (*range.start(), *range.end());
        let first = min.saturating_add(min % 2);
        let empty = PortError::EmptyRange { min, max };
        if first == 0 || first >= max {
            return Err(empty);
        }
        // Whole pairs in first..=max: a lone even port at the top is unusable.
        let pairs = usize::from((max - first).div_ceil(2));
        if pairs == 0 {
            return Err(empty);
        }
        Ok(Self {
            ip,
            first,
            pairs,
            range: (min, max),
            pool: Arc::new(Pool {
                state: Mutex::new(PoolState {
                    cursor: 0,
                    held: vec![false; pairs],
                    held_count: 0,
                    resting: VecDeque::new(),
                }),
                max_resting: max_resting.min(pairs),
            }),
            quarantine,
        })
    }

    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Number of pairs in the range.
    pub fn capacity(&self) -> usize {
        self.pairs
    }

    /// Pairs resting for reuse.
    pub fn resting(&self) -> usize {
        self.pool.lock().resting.len()
    }

    /// A pair that has rested long enough; else a newly bound one; else, when every pair
    /// of the range is held, the longest-resting one.
    pub fn allocate(&self) -> Result<PortPair, PortError> {
        let now = Instant::now();
        let mut state = self.pool.lock();
        while state
            .resting
            .front()
            .is_some_and(|r| now.duration_since(r.since) >= self.quarantine)
        {
            if let Some(pair) = self.reuse(&mut state) {
                return Ok(pair);
            }
        }
        if state.held_count < self.pairs {
            if let Some(pair) = self.bind_next(&mut state)? {
                return Ok(pair);
            }
        }
        while !state.resting.is_empty() {
            if let Some(pair) = self.reuse(&mut state) {
                return Ok(pair);
            }
        }
        Err(PortError::Exhausted {
            min: self.range.0,
            max: self.range.1,
        })
    }

    /// The longest-resting pair, drained; `None` (and the pair closed) if it was flooded.
    fn reuse(&self, state: &mut PoolState) -> Option<PortPair> {
        let Resting {
            slot, rtp, rtcp, ..
        } = state.resting.pop_front()?;
        if !(drain(&rtp) && drain(&rtcp)) {
            release_slot(state, slot);
            return None; // the sockets close here
        }
        Some(PortPair {
            rtp,
            rtcp,
            port: self.port_of(slot),
            ip: self.ip,
            lease: Lease::new(&self.pool, slot),
        })
    }

    fn port_of(&self, slot: usize) -> u16 {
        // slot < pairs <= 32768 and first + 2 * slot <= max (checked in `new`).
        self.first + u16::try_from(slot * 2).unwrap_or(0)
    }

    /// Binds the next free pair round-robin, trying each pair of the range at most once.
    fn bind_next(&self, state: &mut PoolState) -> Result<Option<PortPair>, PortError> {
        for _ in 0..self.pairs {
            let slot = state.cursor % self.pairs;
            state.cursor = state.cursor.wrapping_add(1);
            if state.held.get(slot).copied().unwrap_or(true) {
                continue;
            }
            let port = self.port_of(slot);
            match bind_pair(self.ip, port) {
                Ok((rtp, rtcp)) => {
                    state.held[slot] = true;
                    state.held_count += 1;
                    return Ok(Some(PortPair {
                        rtp,
                        rtcp,
                        port,
                        ip: self.ip,
                        lease: Lease::new(&self.pool, slot),
                    }));
                }
                Err(e) if is_taken(&e) => continue,
                Err(e) => {
                    return Err(PortError::Bind {
                        addr: SocketAddr::new(self.ip, port),
                        source: e,
                    })
                }
            }
        }
        Ok(None)
    }
}

fn release_slot(state: &mut PoolState, slot: usize) {
    if let Some(held) = state.held.get_mut(slot) {
        if *held {
            *held = false;
            state.held_count -= 1;
        }
    }
}

/// Reads and discards what is queued on a non-blocking socket. False if more than
/// [`MAX_DRAINED`] datagrams were waiting (someone is flooding the port).
fn drain(socket: &UdpSocket) -> bool {
    let mut buf = [0u8; 2048];
    for _ in 0..MAX_DRAINED {
        match socket.recv_from(&mut buf) {
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // WouldBlock: empty. Any other error (an ICMP error queued on the socket) is
            // consumed by this read as well; the next read tells.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => continue,
        }
    }
    false
}

fn is_taken(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
    )
}

fn bind_pair(ip: IpAddr, port: u16) -> io::Result<(UdpSocket, UdpSocket)> {
    let rtp = bind_nonblocking(SocketAddr::new(ip, port))?;
    // If the odd port is taken the RTP socket is dropped here, freeing the even one.
    let rtcp = bind_nonblocking(SocketAddr::new(ip, port + 1))?;
    Ok((rtp, rtcp))
}

/// Open-file limits before and after [`raise_open_file_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    pub before: u64,
    pub after: u64,
}

/// Raises this process's soft limit on open files to its hard limit. Every relayed call
/// holds four media sockets (RTP and RTCP per leg), so the usual soft default of 1,024
/// would cap a switch at about 250 calls; servers raise it at start (as nginx and the Go
/// runtime do) rather than fail calls with `EMFILE`. The hard limit is the operator's
/// ceiling and is left alone.
pub fn raise_open_file_limit() -> io::Result<OpenFileLimit> {
    let mut limit = get_open_file_limit()?;
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above; setrlimit only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(OpenFileLimit {
        before,
        after: limit.rlim_cur,
    })
}

fn get_open_file_limit() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

/// This process's soft limit on open files.
pub fn open_file_limit() -> io::Result<u64> {
    get_open_file_limit().map(|l| l.rlim_cur)
}

/// A UDP socket created non-blocking (and close-on-exec) in the one `socket` call: two
/// system calls per socket instead of three, four sockets per relayed call.
fn bind_nonblocking(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM.nonblocking(), None)?;
    socket.bind(&addr.into())?;
    // Only a saving: a kernel that refuses it still relays.
    if let Err(e) = set_dont_fragment(&socket, addr.is_ipv4()) {
        tracing::debug!(%addr, "media socket without DF: {e}");
    }
    Ok(socket.into())
}

/// Sends with Don't Fragment and ignores the path MTU (`IP_PMTUDISC_PROBE`).
///
/// RTP and RTCP datagrams are far below any path MTU, so this changes nothing on the
/// wire but the DF bit. It spares the kernel the shared IP-ID generator
/// (`__ip_select_ident`) that it uses for every datagram sent without DF from an
/// unconnected socket: Linux leaves DF off by default on loopback only, and there that
/// generator was ~5 % of the relay's CPU.
fn set_dont_fragment(socket: &Socket, ipv4: bool) -> io::Result<()> {
    let (level, name, value) = if ipv4 {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        )
    } else {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_PROBE,
        )
    };
    // SAFETY: a plain setsockopt on an open socket with a c_int value that outlives it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn open_file_limit_is_raised_to_the_hard_limit() {
        let limit = raise_open_file_limit().expect("getrlimit/setrlimit");
        assert!(limit.after >= limit.before);
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `now` is a live, writable rlimit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) }, 0);
        assert_eq!(
            now.rlim_cur, now.rlim_max,
            "soft limit left below the hard one"
        );
        assert_eq!(now.rlim_cur, limit.after);
    }

    /// The path-MTU mode of `socket` (`IP_MTU_DISCOVER` or its IPv6 twin).
    fn mtu_discover(socket: &UdpSocket, ipv4: bool) -> libc::c_int {
        let (level, name) = if ipv4 {
            (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER)
        } else {
            (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER)
        };
        let mut value: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are live and writable for the call.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        value
    }

    #[test]
    fn media_sockets_send_with_dont_fragment_on_v4_and_v6() {
        let v4 = bind_nonblocking((LOOPBACK, 0).into()).expect("v4 socket");
        assert_eq!(mtu_discover(&v4, true), libc::IP_PMTUDISC_PROBE);
        // Machines without IPv6 cannot bind ::1; nothing to check there.
        if let Ok(v6) = bind_nonblocking((std::net::Ipv6Addr::LOCALHOST, 0).into()) {
            assert_eq!(mtu_discover(&v6, false), libc::IPV6_PMTUDISC_PROBE);
        }
    }

    #[test]
    fn range_validation() {
        assert!(PortAllocator::new(LOOPBACK, 5000..=5000).is_err());
        assert!(PortAllocator::new(LOOPBACK, 5001..=5002).is_err());
        assert!(PortAllocator::new(LOOPBACK, 0..=1).is_err());
        let a = PortAllocator::new(LOOPBACK, 5001..=5010).expect("range");
        assert_eq!(a.capacity(), 4); // 5002/3 .. 5008/9
        let a = PortAllocator::new(LOOPBACK, DEFAULT_PORT_MIN..=DEFAULT_PORT_MAX).expect("range");
        assert_eq!(a.capacity(), 5000);
        let a = PortAllocator::new(LOOPBACK, 65_534..=65_535).expect("range");
        assert_eq!(a.capacity(), 1);
    }

    #[test]
    fn allocates_even_pairs_skips_taken_and_releases_on_drop() {
        // A range of this test's own (unit tests run in parallel in one process), below the
        // kernel's ephemeral ports (32768+) that port-0 sockets of other tests take, and
        // free right now (other test binaries or a benchmark may hold ports there).
        let min = free_window(6);
        let alloc = PortAllocator::new(LOOPBACK, min..=min + 5).expect("range");
        // Someone else holds the odd port of the second pair.
        let squatter = UdpSocket::bind((LOOPBACK, min + 3));
        let first = alloc.allocate().expect("first");
        assert_eq!(first.port % 2, 0);
        assert_eq!(
            first.rtcp.local_addr().map(|a| a.port()).ok(),
            Some(first.port + 1)
        );
        let second = alloc.allocate().expect("second");
        assert_ne!(first.port, second.port);
        if squatter.is_ok() {
            assert_eq!(second.port, min + 4);
            assert!(alloc.allocate().is_err(), "range exhausted");
        }
        let freed = first.port;
        drop(first);
        // Round-robin comes back to the freed pair once the others are taken.
        let again = alloc.allocate().expect("again");
        assert_eq!(again.port, freed);
        assert!(UdpSocket::bind((LOOPBACK, freed)).is_err());
    }

    /// Hands `pair` back to rest, as the engine does when its endpoint closes.
    fn rest(pair: PortPair) {
        let PortPair {
            rtp, rtcp, lease, ..
        } = pair;
        lease.rest(rtp, rtcp);
    }

    const SHORT_QUARANTINE: Duration = Duration::from_millis(150);

    /// An allocator over `len` free ports whose released pairs rest `SHORT_QUARANTINE`.
    fn resting_allocator(len: u16, max_resting: usize) -> PortAllocator {
        let min = free_window(len);
        PortAllocator::with_reuse(LOOPBACK, min..=min + len - 1, max_resting, SHORT_QUARANTINE)
            .expect("range")
    }

    #[test]
    fn a_rested_pair_comes_back_after_its_quarantine_drained() {
        let alloc = resting_allocator(8, 8);
        let first = alloc.allocate().expect("first");
        let (port, rtp_addr) = (first.port, first.rtp_addr());
        rest(first);
        assert_eq!(alloc.resting(), 1);
        // Still bound while resting: nobody else gets the port.
        assert!(UdpSocket::bind(rtp_addr).is_err());
        // Late packets of the old call, to be drained before reuse.
        let peer = UdpSocket::bind((LOOPBACK, 0)).expect("peer");
        for _ in 0..3 {
            peer.send_to(b"late rtp", rtp_addr).expect("send");
        }
        // Within the quarantine a fresh pair is bound instead (not the resting one).
        let fresh = alloc.allocate().expect("fresh");
        assert_ne!(fresh.port, port);
        std::thread::sleep(SHORT_QUARANTINE + Duration::from_millis(50));
        let again = alloc.allocate().expect("rested");
        assert_eq!(again.port, port, "the rested pair is reused");
        assert_eq!(alloc.resting(), 0);
        let mut buf = [0u8; 64];
        assert_eq!(
            again.rtp.recv_from(&mut buf).map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::WouldBlock),
            "late packets drained"
        );
        // Still a working socket.
        peer.send_to(b"new call", rtp_addr).expect("send");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(again.rtp.recv_from(&mut buf).ok().map(|(n, _)| n), Some(8));
    }

    #[test]
    fn a_full_range_reuses_the_longest_resting_pair_at_once() {
        // Two pairs in the range: both held, one resting → handed out within quarantine.
        let alloc = resting_allocator(4, 8);
        let a = alloc.allocate().expect("a");
        let b = alloc.allocate().expect("b");
        let a_port = a.port;
        rest(a);
        let c = alloc.allocate().expect("c: the resting pair");
        assert_eq!(c.port, a_port);
        assert!(matches!(alloc.allocate(), Err(PortError::Exhausted { .. })));
        drop(b);
        assert!(alloc.allocate().is_ok(), "a dropped pair frees its slot");
    }

    #[test]
    fn a_full_pool_closes_what_it_cannot_keep() {
        let alloc = resting_allocator(6, 1);
        let a = alloc.allocate().expect("a");
        let b = alloc.allocate().expect("b");
        let (a_addr, b_addr) = (a.rtp_addr(), b.rtp_addr());
        for pair in [a, b] {
            rest(pair);
        }
        assert_eq!(alloc.resting(), 1);
        assert!(UdpSocket::bind(a_addr).is_err(), "the first rests, bound");
        assert!(UdpSocket::bind(b_addr).is_ok(), "the second was closed");
        // With no resting at all, a released pair closes at once.
        let none = resting_allocator(4, 0);
        let p = none.allocate().expect("p");
        let addr = p.rtp_addr();
        rest(p);
        assert_eq!(none.resting(), 0);
        assert!(UdpSocket::bind(addr).is_ok());
    }

    #[test]
    fn a_flooded_resting_pair_is_closed_not_reused() {
        let alloc = resting_allocator(4, 4);
        let a = alloc.allocate().expect("a");
        let a_port = a.port;
        let addr = a.rtp_addr();
        rest(a);
        let flood = UdpSocket::bind((LOOPBACK, 0)).expect("flood");
        for _ in 0..MAX_DRAINED + 10 {
            let _ = flood.send_to(b"x", addr);
        }
        std::thread::sleep(SHORT_QUARANTINE + Duration::from_millis(50));
        let next = alloc.allocate().expect("next");
        assert_ne!(next.port, a_port, "flooded pair given up");
        assert_eq!(alloc.resting(), 0);
    }

    /// The first even port of `len` consecutive ports in 30500-32767 that all bind now.
    /// Each call searches past the windows earlier calls took (tests run in parallel).
    fn free_window(len: u16) -> u16 {
        static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(30_500);
        loop {
            let base = NEXT.fetch_add(len + len % 2, std::sync::atomic::Ordering::Relaxed);
            assert!(base < 32_768 - len, "no free port window below 32768");
            if (base..base + len).all(|p| UdpSocket::bind((LOOPBACK, p)).is_ok()) {
                return base;
            }
        }
    }
}
