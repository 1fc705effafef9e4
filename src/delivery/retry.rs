//! When the next attempt happens: the schedule's next step with ±20 % jitter (so a
//! receiver that fails for everyone is not hit by a synchronized wave), pushed later by
//! a receiver's `Retry-After` (clamped, so a hostile header cannot park a delivery for
//! a year).

use std::time::Duration;

use rand::Rng;

/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Delay before each attempt; the first is normally 0.
    schedule: Vec<Duration>,
}

impl RetryPolicy {
    pub fn from_secs(schedule: &[u64]) -> RetryPolicy {
        RetryPolicy {
            schedule: schedule.iter().map(|s| Duration::from_secs(*s)).collect(),
        }
    }

    /// Attempts in all.
    pub fn max_attempts(&self) -> i64 {
        self.schedule.len() as i64
    }

    /// Scheduled attempts still to come after attempt number `made` (1-based).
    pub fn pending_after(&self, made: i64) -> i64 {
        (self.max_attempts() - made).max(0)
    }

    /// After `made` failed attempts: the delay before the next one, or None when the
    /// schedule is used up.
    pub fn next_delay(&self, made: i64, retry_after: Option<Duration>) -> Option<Duration> {
        let base = *self.schedule.get(usize::try_from(made).ok()?)?;
        let jittered = jitter(base);
        Some(match retry_after {
            Some(ra) => jittered.max(ra.min(MAX_RETRY_AFTER)),
            None => jittered,
        })
    }
}

/// ±20 %, uniformly.
fn jitter(d: Duration) -> Duration {
    if d.is_zero() {
        return d;
    }
    d.mul_f64(rand::thread_rng().gen_range(0.8..=1.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svix_default() -> RetryPolicy {
        RetryPolicy::from_secs(&[0, 5, 300, 1800, 7200, 18000, 36000, 36000])
    }

    #[test]
    fn the_schedule_steps_through_svix_delays_then_stops() {
        let p = svix_default();
        assert_eq!(p.max_attempts(), 8);
        for (made, base) in [(1, 5.0), (2, 300.0), (3, 1800.0), (7, 36000.0)] {
            let d = p.next_delay(made, None).unwrap().as_secs_f64();
            assert!(
                d >= base * 0.8 - 1e-9 && d <= base * 1.2 + 1e-9,
                "attempt {made}: {d} not within 20% of {base}"
            );
        }
        assert_eq!(
            p.next_delay(8, None),
            None,
            "after the 8th attempt the delivery is exhausted"
        );
        assert_eq!(p.pending_after(1), 7);
        assert_eq!(p.pending_after(8), 0);
    }

    #[test]
    fn jitter_actually_varies() {
        let p = svix_default();
        let ds: std::collections::BTreeSet<_> =
            (0..50).map(|_| p.next_delay(2, None).unwrap()).collect();
        assert!(
            ds.len() > 10,
            "jitter produced only {} distinct delays",
            ds.len()
        );
    }

    #[test]
    fn retry_after_pushes_later_but_is_clamped() {
        let p = svix_default();
        let d = p.next_delay(1, Some(Duration::from_secs(120))).unwrap();
        assert_eq!(
            d,
            Duration::from_secs(120),
            "a longer Retry-After wins over a 5 s step"
        );
        let d = p.next_delay(2, Some(Duration::from_secs(10))).unwrap();
        assert!(
            d >= Duration::from_secs(240),
            "a shorter Retry-After does not pull a retry earlier"
        );
        let d = p
            .next_delay(1, Some(Duration::from_secs(10 * 86400)))
            .unwrap();
        assert_eq!(d, MAX_RETRY_AFTER);
    }
}
