//! RTP/RTCP port allocation from a configured range.
//!
//! Each allocation binds an even RTP port and the RTCP port above it (RFC 3550 §11) on the
//! switch's media address. The bound sockets are the reservation: dropping the
//! [`PortPair`] closes them and frees the ports, and a port some other process (or call)
//! holds is found by the failed bind and skipped, so no shared table can drift from the OS.
//!
//! Candidates are tried round-robin from where the last allocation stopped, so a port
//! freed by a call that just ended is not handed out again at once (late packets of the old
//! call would land in the new one).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};

use socket2::{Domain, Socket, Type};

/// Default media port range, as in common SIP switch configurations.
pub const DEFAULT_PORT_MIN: u16 = 20_000;
pub const DEFAULT_PORT_MAX: u16 = 29_999;

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
    cursor: AtomicUsize,
    range: (u16, u16),
}

/// A bound RTP socket (even port) and RTCP socket (port + 1). Non-blocking, ready to be
/// handed to tokio. Dropping it releases both ports.
#[derive(Debug)]
pub struct PortPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    /// The RTP port (RTCP is `port + 1`).
    pub port: u16,
    pub ip: IpAddr,
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
    /// even/odd pairs.
    pub fn new(ip: IpAddr, range: RangeInclusive<u16>) -> Result<Self, PortError> {
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
            cursor: AtomicUsize::new(0),
            range: (min, max),
        })
    }

    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Number of pairs in the range.
    pub fn capacity(&self) -> usize {
        self.pairs
    }

    /// Binds the next free pair, trying each pair of the range at most once.
    pub fn allocate(&self) -> Result<PortPair, PortError> {
        for _ in 0..self.pairs {
            let slot = self.cursor.fetch_add(1, Ordering::Relaxed) % self.pairs;
            // slot < pairs <= 32768, so the port fits in u16 (checked in `new`).
            let Ok(offset) = u16::try_from(slot * 2) else {
                continue;
            };
            let port = self.first + offset;
            match bind_pair(self.ip, port) {
                Ok(pair) => return Ok(pair),
                Err(e) if is_taken(&e) => continue,
                Err(e) => {
                    return Err(PortError::Bind {
                        addr: SocketAddr::new(self.ip, port),
                        source: e,
                    })
                }
            }
        }
        Err(PortError::Exhausted {
            min: self.range.0,
            max: self.range.1,
        })
    }
}

fn is_taken(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
    )
}

fn bind_pair(ip: IpAddr, port: u16) -> io::Result<PortPair> {
    let rtp = bind_nonblocking(SocketAddr::new(ip, port))?;
    // If the odd port is taken the RTP socket is dropped here, freeing the even one.
    let rtcp = bind_nonblocking(SocketAddr::new(ip, port + 1))?;
    Ok(PortPair {
        rtp,
        rtcp,
        port,
        ip,
    })
}

/// A UDP socket created non-blocking (and close-on-exec) in the one `socket` call: two
/// system calls per socket instead of three, four sockets per relayed call.
fn bind_nonblocking(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM.nonblocking(), None)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

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

    /// The first even port of `len` consecutive ports in 30500-32767 that all bind now.
    fn free_window(len: u16) -> u16 {
        (30_500..32_768 - len)
            .step_by(usize::from(len))
            .find(|&base| {
                (base..base + len)
                    .map(|p| UdpSocket::bind((LOOPBACK, p)))
                    .all(|s| s.is_ok())
            })
            .expect("a free port window below 32768")
    }
}
