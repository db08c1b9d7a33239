//! Admission of new calls: a token bucket on new INVITEs (`[sip] max_calls_per_second`).
//!
//! Past what the switch can carry, every call it accepts costs more than it is worth: the
//! callers retransmit while they wait, the retransmissions take the time the calls in
//! progress need, and goodput collapses (the queue bench saw 300 calls/s get through out of
//! 1,600 offered). Refusing the excess at once with 503 and `Retry-After`, before any actor
//! sees it, keeps the switch carrying its configured rate. Sans-IO: time is passed in.

use std::time::Instant;

/// A bucket of `rate` tokens a second holding at most one second's worth: a burst of
/// `rate` calls passes, then `rate` a second.
#[derive(Debug, Clone)]
pub struct CallAdmission {
    rate: f64,
    capacity: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl CallAdmission {
    /// `None` for 0: no limit.
    pub fn new(calls_per_second: u32, now: Instant) -> Option<Self> {
        (calls_per_second > 0).then(|| {
            let rate = f64::from(calls_per_second);
            Self {
                rate,
                capacity: rate,
                tokens: rate,
                refilled_at: now,
            }
        })
    }

    /// Whether a new call arriving at `now` may go on (and takes its token if so).
    pub fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.refilled_at = now.max(self.refilled_at);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn zero_means_no_limit() {
        assert!(CallAdmission::new(0, Instant::now()).is_none());
    }

    #[test]
    fn a_burst_of_one_seconds_worth_then_the_rate() {
        let t0 = Instant::now();
        let mut bucket = CallAdmission::new(10, t0).expect("limit");
        let burst = (0..25).filter(|_| bucket.admit(t0)).count();
        assert_eq!(burst, 10);
        assert!(!bucket.admit(t0));
        // 100 ms later: one more token.
        let t1 = t0 + Duration::from_millis(100);
        assert!(bucket.admit(t1));
        assert!(!bucket.admit(t1));
        // Over 3 s at 20 offered a second, 10 a second pass.
        let mut passed = 0;
        for i in 1..=60u64 {
            if bucket.admit(t1 + Duration::from_millis(50 * i)) {
                passed += 1;
            }
        }
        assert_eq!(passed, 30);
    }

    #[test]
    fn an_idle_bucket_fills_only_to_its_capacity() {
        let t0 = Instant::now();
        let mut bucket = CallAdmission::new(5, t0).expect("limit");
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..20).filter(|_| bucket.admit(later)).count(), 5);
    }

    #[test]
    fn time_going_backwards_grants_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut bucket = CallAdmission::new(1, t0).expect("limit");
        assert!(bucket.admit(t0));
        assert!(!bucket.admit(t0 - Duration::from_secs(5)));
        assert!(bucket.admit(t0 + Duration::from_secs(1)));
    }
}
