//! Wake-up moderation of the engine thread.
//!
//! Real phones are not in step: at a few hundred calls the datagrams arrive spread over
//! each 20 ms, and a thread that goes back to `epoll_wait` after every batch is woken
//! for nearly every packet. On a virtual machine a wake-up (scheduler, timer, epoll
//! entry and exit) costs more than the `recvfrom` and `sendto` it serves. So once the
//! engine has been woken twice within [`MODERATION`], it sleeps out the rest of that
//! period before looking again and then serves everything that came meanwhile in one
//! pass: at most one wake-up per millisecond under load, at most a millisecond more
//! latency (jitter buffers absorb far more), and no change when traffic is sparse (a
//! packet that comes alone is served at once).
//!
//! io_uring was measured as the other way to batch (a multishot `RecvMsg` per socket,
//! `SendMsg` queued and submitted once per pass): on loopback UDP it saved nothing
//! over epoll, since the network stack inside `sendto`/`recvfrom` dominates, not the
//! system-call entry; it needs this moderation just the same.

use std::time::{Duration, Instant};

/// Least time between two wake-ups while packets keep coming.
pub(super) const MODERATION: Duration = Duration::from_millis(1);

/// Decides, around each wait of the engine loop, whether to sleep out a busy period.
#[derive(Debug, Default)]
pub(super) struct Pacer {
    /// When the last wait that returned something returned.
    last_wake: Option<Instant>,
    /// The last wait came soon after the one before: sleep before the next.
    hold: bool,
    /// A sleep was just taken: the next wait only polls (it must not block, or the
    /// wake-up that ends it would be counted as part of the busy period).
    slept: bool,
}

impl Pacer {
    /// Before waiting: how long to sleep first (never past `next_tick`), if at all.
    pub(super) fn sleep_before_wait(
        &mut self,
        now: Instant,
        next_tick: Instant,
    ) -> Option<Duration> {
        if !std::mem::take(&mut self.hold) {
            return None;
        }
        let until = (self.last_wake? + MODERATION).min(next_tick);
        let sleep = until.checked_duration_since(now).filter(|d| !d.is_zero())?;
        self.slept = true;
        Some(sleep)
    }

    /// The timeout of the wait about to be made, given the time left to the next tick.
    pub(super) fn wait_timeout(&self, to_tick: Duration) -> Duration {
        if self.slept {
            Duration::ZERO
        } else {
            to_tick
        }
    }

    /// After a wait that returned `events` ready descriptors at `woke`.
    pub(super) fn after_wait(&mut self, woke: Instant, events: usize) {
        let slept = std::mem::take(&mut self.slept);
        if events == 0 {
            self.hold = false;
            return;
        }
        let soon = self
            .last_wake
            .is_some_and(|last| woke.saturating_duration_since(last) < MODERATION);
        self.hold = slept || soon;
        self.last_wake = Some(woke);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn sparse_packets_are_served_at_once() {
        let mut p = Pacer::default();
        let t0 = Instant::now();
        let tick = t0 + 20 * MS;
        for k in 0..5u32 {
            let woke = t0 + 3 * MS * k;
            assert_eq!(p.sleep_before_wait(woke, tick), None);
            assert_eq!(p.wait_timeout(5 * MS), 5 * MS);
            p.after_wait(woke, 1);
        }
    }

    #[test]
    fn dense_packets_make_one_wake_per_period() {
        let mut p = Pacer::default();
        let t0 = Instant::now();
        let tick = t0 + 20 * MS;
        p.after_wait(t0, 1);
        let t1 = t0 + MS / 10;
        assert_eq!(p.sleep_before_wait(t1, tick), None);
        p.after_wait(t1, 1);
        // Second wake within the period: sleep out the rest of it, then only poll.
        let after = t1 + MS / 10;
        assert_eq!(p.sleep_before_wait(after, tick), Some(MS - MS / 10));
        assert_eq!(p.wait_timeout(5 * MS), Duration::ZERO);
        // The poll found more: keep pacing.
        let t2 = t1 + MS;
        p.after_wait(t2, 3);
        assert_eq!(p.sleep_before_wait(t2, tick), Some(MS));
        // The poll found nothing: back to blocking waits.
        p.after_wait(t2 + MS, 0);
        assert_eq!(p.sleep_before_wait(t2 + MS, tick), None);
        assert_eq!(p.wait_timeout(5 * MS), 5 * MS);
    }

    #[test]
    fn never_sleeps_past_the_tick() {
        let mut p = Pacer::default();
        let t0 = Instant::now();
        p.after_wait(t0, 1);
        p.after_wait(t0 + MS / 2, 1);
        let now = t0 + MS / 2;
        assert_eq!(p.sleep_before_wait(now, now + MS / 4), Some(MS / 4));
        p.after_wait(now + MS / 4, 0);
        // A tick already due: no sleep at all.
        p.after_wait(now + MS / 2, 1);
        p.after_wait(now + MS / 2, 1);
        assert_eq!(p.sleep_before_wait(now + MS / 2, now), None);
        assert_eq!(p.wait_timeout(MS), MS);
    }
}
