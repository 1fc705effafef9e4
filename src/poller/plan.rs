//! Planning, pure: which jobs a connection gets (its backfill windows, newest first, and
//! its recurring polls), which a re-pull gets, and what range a poll covers. No I/O, so
//! every rule here is unit-tested on its own.

use chrono::{DateTime, Utc};

use crate::events::Resource;
use crate::providers::{self, Provider, Window};
use crate::states::JobKind;
use crate::store::{NewJob, AFTER_PREVIOUS_WINDOW};

const DAY_MS: i64 = 86_400_000;

/// `[start, end)` in Unix ms cut into windows of `window_days`, newest first (see
/// [`providers::plan_windows`]).
pub fn windows(start: i64, end: i64, window_days: u32) -> Vec<(i64, i64)> {
    providers::plan_windows(utc(start), utc(end), window_days)
        .into_iter()
        .map(|w| (w.start.timestamp_millis(), w.end.timestamp_millis()))
        .collect()
}

/// A backfill of `resource` over `[start, end)`: its windows newest first, the first due
/// at `now` and each later one waiting for the one before it.
fn backfill(
    p: &Provider,
    resource: Resource,
    start: i64,
    end: i64,
    now: i64,
    backfill_id: Option<&str>,
) -> Vec<NewJob> {
    // A route that takes no window is read whole: one window over the range.
    let ws = match p.resource(resource) {
        Some(spec) if !spec.windowed => {
            if end > start {
                vec![(start, end)]
            } else {
                vec![]
            }
        }
        _ => windows(start, end, p.window_days(resource)),
    };
    let n = ws.len() as i64;
    ws.into_iter()
        .enumerate()
        .map(|(i, (from, to))| NewJob {
            kind: JobKind::Backfill,
            resource,
            window_start: from,
            window_end: to,
            chunk_index: i as i64,
            chunk_count: n,
            run_at: if i == 0 { now } else { AFTER_PREVIOUS_WINDOW },
            backfill_id: backfill_id.map(str::to_string),
            record_key: None,
        })
        .collect()
}

/// The oldest instant a backfill of `p` reaches back to from `now`.
pub fn history_start(p: &Provider, now: i64) -> i64 {
    now - p.manifest.history_days as i64 * DAY_MS
}

/// A new connection's jobs: every resource's backfill and its recurring poll. `resume`
/// is when the connection it replaces (one that ended in an error) last polled
/// successfully: then only the gap since, with the poll's lookback, is backfilled.
pub fn connect_jobs(p: &Provider, now: i64, resume: Option<i64>) -> Vec<NewJob> {
    let m = &p.manifest;
    let lookback = m.lookback_days as i64 * DAY_MS;
    let start = match resume {
        Some(t) => (t - lookback).clamp(history_start(p, now), now),
        None => history_start(p, now),
    };
    let mut jobs = Vec::new();
    // A resource read with another (Polar's profile, with body) has no jobs of its own.
    for r in m
        .resources
        .iter()
        .filter(|r| p.adapter.read_with(r.name).is_none())
    {
        jobs.extend(backfill(p, r.name, start, now, now, None));
        jobs.push(NewJob {
            kind: JobKind::Poll,
            resource: r.name,
            window_start: now - lookback,
            window_end: now,
            chunk_index: 0,
            chunk_count: 1,
            run_at: now + m.poll_interval_secs as i64 * 1000,
            backfill_id: None,
            record_key: None,
        });
    }
    jobs
}

/// Why a re-pull cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepullError {
    #[error("end_date must be after start_date")]
    EmptyRange,
    #[error(
        "start_date is before the {days} days of history {provider} keeps (earliest {earliest})"
    )]
    BeyondHistory {
        provider: &'static str,
        days: u32,
        earliest: String,
    },
    #[error("end_date is in the future")]
    InTheFuture,
    #[error("{provider} has no resource {resource}")]
    UnknownResource {
        provider: &'static str,
        resource: Resource,
    },
}

/// A re-pull of `[start, end)` for `resources` (every resource of the provider when
/// empty): each resource's windows newest first, as on connect, tagged `backfill_id`.
/// The end is capped at `now`.
pub fn repull_jobs(
    p: &'static Provider,
    resources: &[Resource],
    start: i64,
    end: i64,
    now: i64,
    backfill_id: &str,
) -> Result<Vec<NewJob>, RepullError> {
    // A day's grace: dates are whole days and "today" may be a day ahead somewhere.
    if start >= end {
        return Err(RepullError::EmptyRange);
    }
    if start > now {
        return Err(RepullError::InTheFuture);
    }
    // Whole days: a range starting on the history's first day is within it.
    let earliest = history_start(p, now) - history_start(p, now).rem_euclid(DAY_MS);
    if start < earliest {
        return Err(RepullError::BeyondHistory {
            provider: p.id(),
            days: p.manifest.history_days,
            earliest: utc(earliest).format("%Y-%m-%d").to_string(),
        });
    }
    let chosen: Vec<Resource> = if resources.is_empty() {
        p.manifest.resources.iter().map(|r| r.name).collect()
    } else {
        for r in resources {
            if p.resource(*r).is_none() {
                return Err(RepullError::UnknownResource {
                    provider: p.id(),
                    resource: *r,
                });
            }
        }
        resources.to_vec()
    };
    // A resource read with another is re-pulled by re-pulling that one.
    let chosen = chosen
        .into_iter()
        .map(|r| p.adapter.read_with(r).unwrap_or(r))
        .fold(Vec::new(), |mut picked: Vec<Resource>, r| {
            if !picked.contains(&r) {
                picked.push(r);
            }
            picked
        });
    let end = end.min(now);
    Ok(chosen
        .into_iter()
        .flat_map(|r| backfill(p, r, start.max(earliest), end, now, Some(backfill_id)))
        .collect())
}

/// The range a poll at `now` fetches: the provider's lookback, up to now.
pub fn poll_window(p: &Provider, now: i64) -> Window {
    Window {
        start: utc(now - p.manifest.lookback_days as i64 * DAY_MS),
        end: utc(now),
    }
}

/// When the next poll after one finishing at `now` runs: after the provider's poll
/// interval; or, while the provider pushes for the connection (its last notification,
/// `last_push_at`, came within the provider's normal silence), after the longer safety
/// interval, but no later than the moment the pushes would count as stopped, so a
/// connection whose notifications stop is polled normally again from then on.
pub fn next_poll_at(p: &Provider, now: i64, last_push_at: Option<i64>) -> i64 {
    let normal = now + p.manifest.poll_interval_secs as i64 * 1000;
    match (&p.manifest.push, last_push_at) {
        (Some(push), Some(last)) if now - last < push.quiet_secs as i64 * 1000 => {
            let quiet_from = last + push.quiet_secs as i64 * 1000;
            (now + push.safety_poll_secs as i64 * 1000)
                .min(quiet_from)
                .max(normal)
        }
        _ => normal,
    }
}

/// The range a pull covers when its notification names a record but no range, or
/// names neither: the poll window (what a poll at `now` would read).
pub fn pull_window(p: &Provider, window: Option<&Window>, now: i64) -> (i64, i64) {
    let w = window.copied().unwrap_or_else(|| poll_window(p, now));
    (w.start.timestamp_millis(), w.end.timestamp_millis())
}

pub fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oura() -> &'static Provider {
        providers::find("oura").unwrap()
    }

    const NOW: i64 = 1_795_000_000_000;

    /// While a provider pushes for a connection, its poll stretches to the safety
    /// interval, but never past the moment the pushes count as stopped; after that, and
    /// for providers that never push, the normal interval.
    #[test]
    fn polling_is_a_safety_net_while_pushes_arrive() {
        let p = providers::find("strava").unwrap();
        let push = p.manifest.push.as_ref().expect("strava pushes");
        let normal = NOW + p.manifest.poll_interval_secs as i64 * 1000;
        let quiet = push.quiet_secs as i64 * 1000;
        let safety = push.safety_poll_secs as i64 * 1000;
        assert!(safety > p.manifest.poll_interval_secs as i64 * 1000);
        assert_eq!(next_poll_at(p, NOW, None), normal);
        // Just pushed: the safety interval, capped where the silence would begin.
        assert_eq!(
            next_poll_at(p, NOW, Some(NOW)),
            (NOW + safety).min(NOW + quiet).max(normal)
        );
        assert!(next_poll_at(p, NOW, Some(NOW)) > normal);
        // Quiet for longer than the provider's normal silence: back to normal.
        assert_eq!(next_poll_at(p, NOW, Some(NOW - quiet)), normal);
        // Quiet almost that long: the next poll comes when the silence would begin.
        assert_eq!(
            next_poll_at(p, NOW, Some(NOW - quiet + 1000)),
            (NOW + 1000).max(normal)
        );
        // A provider that does not push polls at its interval whatever was recorded.
        let dexcom = providers::find("dexcom").unwrap();
        assert!(dexcom.manifest.push.is_none());
        assert_eq!(
            next_poll_at(dexcom, NOW, Some(NOW)),
            NOW + dexcom.manifest.poll_interval_secs as i64 * 1000
        );
    }

    #[test]
    fn a_connection_backfills_its_history_and_polls_every_resource() {
        let p = oura();
        let jobs = connect_jobs(p, NOW, None);
        for r in &p.manifest.resources {
            let mine: Vec<&NewJob> = jobs.iter().filter(|j| j.resource == r.name).collect();
            // A resource read with another (Oura's temperature deltas, with sleep) has
            // no jobs of its own.
            if p.adapter.read_with(r.name).is_some() {
                assert!(mine.is_empty(), "{}", r.name);
                continue;
            }
            let polls = mine.iter().filter(|j| j.kind == JobKind::Poll).count();
            assert_eq!(polls, 1);
            let back: Vec<&&NewJob> = mine
                .iter()
                .filter(|j| j.kind == JobKind::Backfill)
                .collect();
            assert_eq!(back[0].window_end, NOW);
            assert_eq!(back[0].run_at, NOW);
            assert!(back[1..].iter().all(|j| j.run_at == AFTER_PREVIOUS_WINDOW));
            assert_eq!(back.last().unwrap().window_start, history_start(p, NOW));
        }
    }

    #[test]
    fn a_connection_back_from_an_error_backfills_only_the_gap() {
        let p = oura();
        let last_poll = NOW - 3 * DAY_MS;
        let jobs = connect_jobs(p, NOW, Some(last_poll));
        let lookback = p.manifest.lookback_days as i64 * DAY_MS;
        let oldest = jobs
            .iter()
            .filter(|j| j.kind == JobKind::Backfill)
            .map(|j| j.window_start)
            .min()
            .unwrap();
        assert_eq!(oldest, last_poll - lookback);
        // A gap longer than the history is the history.
        let jobs = connect_jobs(p, NOW, Some(0));
        let oldest = jobs.iter().map(|j| j.window_start).min().unwrap();
        assert_eq!(oldest, history_start(p, NOW));
    }

    #[test]
    fn a_repull_plans_windows_and_refuses_what_cannot_be_pulled() {
        let p = oura();
        let jobs = repull_jobs(p, &[Resource::Sleep], NOW - 40 * DAY_MS, NOW, NOW, "b1").unwrap();
        assert!(jobs.iter().all(|j| j.resource == Resource::Sleep));
        assert!(jobs.iter().all(|j| j.backfill_id.as_deref() == Some("b1")));
        assert_eq!(jobs[0].window_end, NOW);
        assert_eq!(jobs.last().unwrap().window_start, NOW - 40 * DAY_MS);
        assert_eq!(jobs[0].chunk_count, jobs.len() as i64);
        let all = repull_jobs(p, &[], NOW - DAY_MS, NOW, NOW, "b2").unwrap();
        let own = p
            .manifest
            .resources
            .iter()
            .filter(|r| p.adapter.read_with(r.name).is_none())
            .count();
        assert_eq!(all.len(), own);
        // Re-pulling a resource read with another re-pulls that one.
        let deltas = repull_jobs(
            p,
            &[Resource::BodyTemperatureDelta],
            NOW - DAY_MS,
            NOW,
            NOW,
            "b3",
        )
        .unwrap();
        assert!(deltas.iter().all(|j| j.resource == Resource::Sleep));
        assert_eq!(
            repull_jobs(p, &[], NOW, NOW - DAY_MS, NOW, "x").unwrap_err(),
            RepullError::EmptyRange
        );
        assert!(matches!(
            repull_jobs(p, &[], 0, NOW, NOW, "x").unwrap_err(),
            RepullError::BeyondHistory { .. }
        ));
        assert_eq!(
            repull_jobs(p, &[], NOW + DAY_MS, NOW + 2 * DAY_MS, NOW, "x").unwrap_err(),
            RepullError::InTheFuture
        );
        assert!(matches!(
            repull_jobs(p, &[Resource::Glucose], NOW - DAY_MS, NOW, NOW, "x").unwrap_err(),
            RepullError::UnknownResource { .. }
        ));
    }
}
