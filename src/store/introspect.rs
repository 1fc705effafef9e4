//! Reads the Junction-compatible `/v2` API needs beyond the `/v1` queries: stored records
//! with the provider and times of their row (Junction's records carry `created_at` and
//! `updated_at`), and, per connection and resource, the state of the backfill and of the
//! records it stored (Junction's introspection endpoints).

use serde_json::Value;
use sqlx::Row;
use uuid::Uuid;

use super::Store;
use crate::events::Resource;
use crate::states::{JobKind, JobStatus};

/// One stored record with its row's provider and times (Unix ms).
#[derive(Debug, Clone)]
pub struct StampedRecord {
    pub provider: String,
    pub data: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The backfill of one (connection, resource), summed over its windows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillState {
    pub resource: String,
    pub windows_total: i64,
    pub windows_done: i64,
    pub windows_failed: i64,
    /// Pending windows that have failed at least once and wait for their retry.
    pub windows_retrying: i64,
    /// The whole range the backfill covers: the oldest window's start, the newest's end.
    pub range_start: i64,
    pub range_end: i64,
    /// When the backfill was planned (the connection was made).
    pub scheduled_at: i64,
    /// When the first window finished (jobs keep no start time of their own).
    pub first_finished_at: Option<i64>,
    /// When the last window finished, once every window has.
    pub last_finished_at: Option<i64>,
}

/// What is stored of one (user, provider, resource), and the last time a job for it ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceState {
    pub resource: String,
    pub records: i64,
    pub oldest: Option<i64>,
    pub newest: Option<i64>,
    /// The latest time a job of this resource changed, and whether one holds an error.
    pub last_run_at: Option<i64>,
    pub last_run_failed: bool,
}

impl Store {
    /// Stored records of a user in `[start, end)`, oldest first, with their row's
    /// provider and times; `provider` empty for every provider.
    pub async fn list_stamped_records(
        &self,
        team: Uuid,
        user: Uuid,
        resource: Resource,
        start: i64,
        end: i64,
        provider: &str,
    ) -> Result<Vec<StampedRecord>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT provider, data, created_at, updated_at FROM records WHERE team_id = $1 AND user_id = $2 \
             AND resource = $3 AND starts_at >= $4 AND starts_at < $5 AND ($6 = '' OR provider = $6) \
             ORDER BY starts_at, id",
        )
        .bind(team.to_string())
        .bind(user.to_string())
        .bind(resource.as_str())
        .bind(start)
        .bind(end)
        .bind(provider)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StampedRecord {
                    provider: r.try_get("provider")?,
                    data: super::get_json(r, "data")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// When a connection last changed (its status, error or tokens).
    pub async fn connection_changed_at(&self, id: Uuid) -> Result<Option<i64>, sqlx::Error> {
        let row = sqlx::query("SELECT updated_at FROM connections WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("updated_at")).transpose()
    }

    /// The backfill of a connection, per resource, in resource order.
    pub async fn backfill_states(
        &self,
        connection: Uuid,
    ) -> Result<Vec<BackfillState>, sqlx::Error> {
        let (done, failed, pending, backfill) = (
            JobStatus::Done.sql(),
            JobStatus::Failed.sql(),
            JobStatus::Pending.sql(),
            JobKind::Backfill.sql(),
        );
        let rows = sqlx::query(&format!(
            "SELECT resource, COUNT(*) AS total, \
             SUM(CASE WHEN status = {done} THEN 1 ELSE 0 END) AS done, \
             SUM(CASE WHEN status = {failed} THEN 1 ELSE 0 END) AS failed, \
             SUM(CASE WHEN status = {pending} AND attempts > 0 THEN 1 ELSE 0 END) AS retrying, \
             MIN(window_start) AS range_start, MAX(window_end) AS range_end, \
             MIN(created_at) AS scheduled_at, \
             MIN(CASE WHEN status = {done} OR status = {failed} THEN updated_at ELSE NULL END) AS first_finished, \
             MAX(CASE WHEN status = {done} OR status = {failed} THEN updated_at ELSE NULL END) AS last_finished \
             FROM jobs WHERE connection_id = $1 AND kind = {backfill} GROUP BY resource ORDER BY resource",
        ))
        .bind(connection.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let total: i64 = r.try_get("total")?;
                let done = r.try_get::<Option<i64>, _>("done")?.unwrap_or(0);
                let failed = r.try_get::<Option<i64>, _>("failed")?.unwrap_or(0);
                let last: Option<i64> = r.try_get("last_finished")?;
                Ok(BackfillState {
                    resource: r.try_get("resource")?,
                    windows_total: total,
                    windows_done: done,
                    windows_failed: failed,
                    windows_retrying: r.try_get::<Option<i64>, _>("retrying")?.unwrap_or(0),
                    range_start: r.try_get("range_start")?,
                    range_end: r.try_get("range_end")?,
                    scheduled_at: r.try_get("scheduled_at")?,
                    first_finished_at: r.try_get("first_finished")?,
                    last_finished_at: if done + failed == total { last } else { None },
                })
            })
            .collect()
    }

    /// Per resource of a connection: its stored records (count, oldest, newest) and its
    /// jobs' last run, in resource order. Resources with neither are left out.
    pub async fn resource_states(
        &self,
        team: Uuid,
        user: Uuid,
        provider: &str,
        connection: Uuid,
    ) -> Result<Vec<ResourceState>, sqlx::Error> {
        let records = sqlx::query(
            "SELECT resource, COUNT(*) AS n, MIN(starts_at) AS oldest, MAX(starts_at) AS newest FROM records \
             WHERE team_id = $1 AND user_id = $2 AND provider = $3 GROUP BY resource",
        )
        .bind(team.to_string())
        .bind(user.to_string())
        .bind(provider)
        .fetch_all(&self.pool)
        .await?;
        // A job "ran" once its row changed after it was planned.
        let jobs = sqlx::query(
            "SELECT resource, MAX(updated_at) AS last_run, \
             SUM(CASE WHEN last_error IS NOT NULL THEN 1 ELSE 0 END) AS failing \
             FROM jobs WHERE connection_id = $1 AND updated_at > created_at GROUP BY resource",
        )
        .bind(connection.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut out: std::collections::BTreeMap<String, ResourceState> = Default::default();
        for r in &records {
            let resource: String = r.try_get("resource")?;
            let state = out.entry(resource.clone()).or_default();
            state.resource = resource;
            state.records = r.try_get("n")?;
            state.oldest = r.try_get("oldest")?;
            state.newest = r.try_get("newest")?;
        }
        for r in &jobs {
            let resource: String = r.try_get("resource")?;
            let state = out.entry(resource.clone()).or_default();
            state.resource = resource;
            state.last_run_at = r.try_get("last_run")?;
            state.last_run_failed = r.try_get::<Option<i64>, _>("failing")?.unwrap_or(0) > 0;
        }
        Ok(out.into_values().collect())
    }
}
