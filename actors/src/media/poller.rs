//! A level-triggered `epoll` set and an `eventfd` waker: the media engine's only OS glue.
//!
//! Level-triggered on purpose: a socket with a datagram waiting is reported again on
//! the next wait, so the engine reads exactly one datagram per readiness and never pays
//! the extra `recvfrom` that ends in `EAGAIN` (edge-triggered readiness, as in mio and
//! tokio, must drain every socket to that `EAGAIN`). At 50 packets a second per stream
//! that extra system call was a third of the relay's cost.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Readiness reported by [`Poller::wait`]: the token given at registration.
pub type Token = u64;

/// Events fetched per `epoll_wait`.
pub const EVENTS_PER_WAIT: usize = 256;

/// An epoll instance. Closing it (drop) leaves registered descriptors open.
#[derive(Debug)]
pub struct Poller {
    epoll: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Poller {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain system call; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: `fd` is a fresh descriptor owned by nobody else.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT],
        })
    }

    /// Watches `fd` for input, reporting `token`.
    pub fn add(&self, fd: RawFd, token: Token) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` outlives the call; epoll copies it.
        let rc =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stops watching `fd` (before it is closed, so a reused number is not reported).
    pub fn remove(&self, fd: RawFd) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `add`; the event argument is ignored for DEL but must be valid.
        let rc =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` and appends the ready tokens to `ready` (cleared first).
    pub fn wait(&mut self, timeout: Duration, ready: &mut Vec<Token>) -> io::Result<()> {
        ready.clear();
        // Round up so a 0.4 ms wait does not become a busy 0 ms poll.
        let ms = timeout.as_micros().div_ceil(1_000).min(i32::MAX as u128) as i32;
        // SAFETY: the buffer holds `events.len()` entries, which is what we pass.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        ready.extend(self.events[..n as usize].iter().map(|e| e.u64));
        Ok(())
    }
}

/// Wakes a thread blocked in [`Poller::wait`] from any other thread.
///
/// Wake-ups coalesce: once one is pending, further [`Waker::wake`] calls write nothing
/// until the woken thread calls [`Waker::reset`]. A call set-up sends the engine a burst of
/// commands (open, remote address, codec, connect, timeout for each leg); without this,
/// each was an `eventfd` write and a separate wake-up of the engine thread.
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
    pending: AtomicBool,
}

impl Waker {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain system call; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: `fd` is a fresh descriptor owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            pending: AtomicBool::new(false),
        })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Makes the eventfd readable unless a wake-up is already pending. Call it after
    /// queueing the work: the woken thread looks at the queue only after `reset`, so work
    /// queued while a wake-up is pending is seen. Never blocks; a counter at its maximum
    /// is still readable, so a failed write loses nothing.
    pub fn wake(&self) {
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Clears the readiness (level-triggered: otherwise every wait returns at once). Call
    /// it before looking at the queued work, so a `wake` after that look writes again.
    pub fn reset(&self) {
        // The eventfd is read before `pending` is cleared: the other way round, a sender
        // that wrote in between would have its write consumed while `pending` stayed set,
        // and no later sender would write again (a lost wake-up). This way round the worst
        // is one spurious wake-up.
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
        // A read-modify-write, so it reads the last sender's `swap` and acquires what that
        // sender queued before it (a plain store would not synchronise with it).
        self.pending.swap(false, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn reports_ready_sockets_until_read_and_wakes() {
        let mut poller = Poller::new().unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        poller.add(a.as_raw_fd(), 7).unwrap();
        let waker = Waker::new().unwrap();
        poller.add(waker.raw_fd(), 99).unwrap();
        let mut ready = Vec::new();
        poller.wait(Duration::from_millis(1), &mut ready).unwrap();
        assert!(ready.is_empty());

        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.send_to(b"x", a.local_addr().unwrap()).unwrap();
        poller.wait(Duration::from_millis(500), &mut ready).unwrap();
        assert_eq!(ready, vec![7]);
        // Level-triggered: still ready while unread.
        poller.wait(Duration::from_millis(0), &mut ready).unwrap();
        assert_eq!(ready, vec![7]);
        let mut buf = [0u8; 8];
        a.recv_from(&mut buf).unwrap();
        poller.wait(Duration::from_millis(0), &mut ready).unwrap();
        assert!(ready.is_empty());

        waker.wake();
        poller.wait(Duration::from_millis(500), &mut ready).unwrap();
        assert_eq!(ready, vec![99]);
        waker.reset();
        poller.wait(Duration::from_millis(0), &mut ready).unwrap();
        assert!(ready.is_empty());

        poller.remove(a.as_raw_fd()).unwrap();
        b.send_to(b"y", a.local_addr().unwrap()).unwrap();
        poller.wait(Duration::from_millis(20), &mut ready).unwrap();
        assert!(ready.is_empty());
    }

    /// Reads the eventfd counter without blocking: how many writes reached it.
    fn writes_counted(waker: &Waker) -> u64 {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64.
        let n = unsafe { libc::read(waker.raw_fd(), (&mut value as *mut u64).cast(), 8) };
        if n == 8 {
            value
        } else {
            0
        }
    }

    #[test]
    fn wakes_coalesce_until_reset() {
        let waker = Waker::new().unwrap();
        waker.wake();
        waker.wake();
        waker.wake();
        assert_eq!(writes_counted(&waker), 1, "one write for a burst");
        // Still pending (not reset): nothing more is written.
        waker.wake();
        assert_eq!(writes_counted(&waker), 0);
        waker.reset();
        waker.wake();
        assert_eq!(writes_counted(&waker), 1, "a wake after reset writes again");
    }

    #[test]
    fn work_queued_during_a_pending_wake_is_seen_after_reset() {
        // Many senders against one consumer that sleeps in epoll: every item sent must be
        // received, with no wake-up lost between the consumer's reset and its look.
        let mut poller = Poller::new().unwrap();
        let waker = std::sync::Arc::new(Waker::new().unwrap());
        poller.add(waker.raw_fd(), 1).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<u32>();
        const SENDERS: u32 = 4;
        const PER_SENDER: u32 = 5_000;
        let threads: Vec<_> = (0..SENDERS)
            .map(|_| {
                let (tx, waker) = (tx.clone(), std::sync::Arc::clone(&waker));
                std::thread::spawn(move || {
                    for i in 0..PER_SENDER {
                        tx.send(i).unwrap();
                        waker.wake();
                    }
                })
            })
            .collect();
        drop(tx);
        let mut received = 0;
        let mut ready = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while received < SENDERS * PER_SENDER && std::time::Instant::now() < deadline {
            // Long timeout: a lost wake-up shows as the loop stalling until the deadline.
            poller.wait(Duration::from_secs(5), &mut ready).unwrap();
            if ready.is_empty() {
                break;
            }
            waker.reset();
            while rx.try_recv().is_ok() {
                received += 1;
            }
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(received, SENDERS * PER_SENDER, "a wake-up was lost");
    }
}
