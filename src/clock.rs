//! The scheduling clock: the "now" that retry schedules, leases, poll intervals and
//! rate-limit pauses are computed from and compared with. In production it is the wall
//! clock ([`crate::now_ms`]). Tests use a manual clock: the wall clock plus whatever the
//! test has added with [`Clock::advance`], so "five minutes later" happens at once and a
//! test neither sleeps for real nor flakes under load.
//!
//! A manual clock only ever runs ahead of the wall clock, never behind it. That is what
//! keeps the seam small: a time written from the wall clock (an event published "now",
//! a token's expiry set at the OAuth callback) is never later than the clock's now, so
//! it falls due exactly as it would in production; only the places that schedule work
//! and claim due work need to read this clock. Record timestamps (attempt times,
//! signatures, `created_at`) stay on the wall clock: receivers check them against
//! theirs.
//!
//! Tokio's paused clock does not suit these waits: it does not move `chrono`'s wall
//! clock that every scheduling column is written from, and it jumps ahead on its own
//! whenever the runtime idles, which it does while sqlx waits on SQLite's worker thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Where "now" comes from for scheduling. Cheap to clone; clones share one time.
#[derive(Clone, Default)]
pub struct Clock {
    /// `None` on the wall clock; on a manual clock, how far it runs ahead (ms), behind a
    /// watch channel so idle loops wake when it moves.
    ahead: Option<Arc<watch::Sender<i64>>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.ahead {
            None => f.write_str("Clock::Real"),
            Some(a) => write!(f, "Clock::Manual(+{} ms)", *a.borrow()),
        }
    }
}

impl Clock {
    /// The wall clock: what production runs on.
    pub fn real() -> Clock {
        Clock { ahead: None }
    }

    /// A clock that starts at the wall clock's time and runs with it, plus whatever
    /// [`Clock::advance`] adds.
    pub fn manual() -> Clock {
        Clock {
            ahead: Some(Arc::new(watch::Sender::new(0))),
        }
    }

    /// Milliseconds since the Unix epoch, by this clock.
    pub fn now_ms(&self) -> i64 {
        crate::now_ms() + self.ahead_ms()
    }

    /// How far this clock runs ahead of the wall clock (0 on the wall clock).
    pub fn ahead_ms(&self) -> i64 {
        self.ahead.as_ref().map_or(0, |a| *a.borrow())
    }

    /// Moves a manual clock forward by `by` and wakes whatever waits on
    /// [`Ticks::advanced`]. The wall clock cannot be moved: an error says so.
    pub fn advance(&self, by: Duration) -> Result<(), NotManual> {
        let a = self.ahead.as_ref().ok_or(NotManual)?;
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        a.send_modify(|ms| *ms = ms.saturating_add(by));
        Ok(())
    }

    /// A handle for an idle loop to wait on this clock being advanced.
    pub fn ticks(&self) -> Ticks {
        Ticks(self.ahead.as_ref().map(|a| a.subscribe()))
    }
}

/// Returned by [`Clock::advance`] on the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("only a manual clock can be advanced")]
pub struct NotManual;

/// Advances of one clock, seen by one waiter. An advance made while the waiter was busy
/// is not lost: the next [`Ticks::advanced`] returns at once.
#[derive(Debug)]
pub struct Ticks(Option<watch::Receiver<i64>>);

impl Ticks {
    /// Resolves when the clock has been advanced since the last call; on the wall clock
    /// (or once the clock is gone), never.
    pub async fn advanced(&mut self) {
        if let Some(rx) = &mut self.0 {
            if rx.changed().await.is_ok() {
                return;
            }
        }
        std::future::pending::<()>().await
    }
}

/// Rate limiters (`governor`) read the same clock, so advancing it refills their
/// buckets too. Their instants count nanoseconds from a process-wide origin.
impl governor::clock::Clock for Clock {
    type Instant = governor::nanos::Nanos;

    fn now(&self) -> Self::Instant {
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let since = ORIGIN.get_or_init(Instant::now).elapsed();
        let ahead = Duration::from_millis(self.ahead_ms().max(0) as u64);
        governor::nanos::Nanos::from(since.saturating_add(ahead))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::Clock as _;

    #[test]
    fn the_real_clock_is_the_wall_clock_and_cannot_be_advanced() {
        let c = Clock::real();
        let (before, now, after) = (crate::now_ms(), c.now_ms(), crate::now_ms());
        assert!(before <= now && now <= after);
        assert_eq!(c.advance(Duration::from_secs(1)), Err(NotManual));
        assert_eq!(c.ahead_ms(), 0);
    }

    #[test]
    fn a_manual_clock_runs_with_the_wall_clock_plus_its_advances() {
        let c = Clock::manual();
        let start = c.now_ms();
        assert!(
            (start - crate::now_ms()).abs() < 1_000,
            "starts at the wall clock"
        );
        c.advance(Duration::from_secs(300)).unwrap();
        c.advance(Duration::from_millis(5)).unwrap();
        assert_eq!(c.ahead_ms(), 300_005);
        let now = c.now_ms();
        assert!(now >= start + 300_005, "{now} vs {start}");
        assert!(
            now < start + 301_005,
            "and no further than the wall clock moved"
        );
    }

    #[test]
    fn clones_share_one_time() {
        let c = Clock::manual();
        let other = c.clone();
        other.advance(Duration::from_secs(60)).unwrap();
        assert_eq!(c.ahead_ms(), 60_000);
    }

    #[test]
    fn advancing_by_an_absurd_duration_saturates_instead_of_overflowing() {
        let c = Clock::manual();
        c.advance(Duration::MAX).unwrap();
        c.advance(Duration::MAX).unwrap();
        assert_eq!(c.ahead_ms(), i64::MAX);
    }

    #[test]
    fn rate_limiters_see_the_advance() {
        let c = Clock::manual();
        let t0 = c.now();
        c.advance(Duration::from_secs(2)).unwrap();
        let t1 = c.now();
        assert!(
            governor::clock::Reference::duration_since(&t1, t0) >= Duration::from_secs(2).into()
        );
        // A one-per-second limiter: spent, then refilled by advancing, not by waiting.
        let quota = governor::Quota::per_second(std::num::NonZeroU32::new(1).unwrap());
        let limiter = governor::RateLimiter::direct_with_clock(quota, c.clone());
        assert!(limiter.check().is_ok());
        assert!(limiter.check().is_err());
        c.advance(Duration::from_secs(1)).unwrap();
        assert!(limiter.check().is_ok());
    }

    #[tokio::test]
    async fn ticks_wake_on_an_advance_even_one_made_before_waiting() {
        let c = Clock::manual();
        let mut ticks = c.ticks();
        c.advance(Duration::from_secs(1)).unwrap();
        tokio::time::timeout(Duration::from_secs(5), ticks.advanced())
            .await
            .expect("an advance made before waiting is not lost");
        let waiter = tokio::spawn(async move {
            ticks.advanced().await;
        });
        tokio::task::yield_now().await;
        c.advance(Duration::from_secs(1)).unwrap();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the advance")
            .unwrap();
    }

    #[tokio::test]
    async fn the_real_clock_never_ticks() {
        let mut ticks = Clock::real().ticks();
        let waited = tokio::time::timeout(Duration::from_millis(20), ticks.advanced()).await;
        assert!(waited.is_err());
    }
}
