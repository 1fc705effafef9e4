//! Webhook endpoints: where a team's events go, with their filters, sealed secrets and
//! health (consecutive failures, since when, why disabled).

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use super::{get_json, get_uuid, is_unique_violation, placeholders, Store};
use crate::now_ms;

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub id: Uuid,
    pub team_id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    pub rate_limit_per_sec: Option<i64>,
    pub disabled_reason: Option<String>,
    pub consecutive_failures: i64,
    pub first_failure_at: Option<i64>,
    pub last_success_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(skip)]
    pub secret_sealed: String,
    #[serde(skip)]
    pub previous_secret_sealed: Option<String>,
    #[serde(skip)]
    pub previous_secret_expires_at: Option<i64>,
}

// `enabled` is read as an integer: the Any driver cannot decode SQLite's BOOLEAN.
const ENDPOINT_COLUMNS: &str = "id, team_id, url, description, event_types, \
    CASE WHEN enabled THEN 1 ELSE 0 END AS enabled, method, headers, \
    rate_limit_per_sec, secret_sealed, previous_secret_sealed, previous_secret_expires_at, disabled_reason, \
    consecutive_failures, first_failure_at, last_success_at, created_at, updated_at";

fn endpoint_from(row: &AnyRow) -> Result<Endpoint, sqlx::Error> {
    Ok(Endpoint {
        id: get_uuid(row, "id")?,
        team_id: get_uuid(row, "team_id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        event_types: get_json(row, "event_types")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        method: row.try_get("method")?,
        headers: get_json(row, "headers")?,
        rate_limit_per_sec: row.try_get("rate_limit_per_sec")?,
        secret_sealed: row.try_get("secret_sealed")?,
        previous_secret_sealed: row.try_get("previous_secret_sealed")?,
        previous_secret_expires_at: row.try_get("previous_secret_expires_at")?,
        disabled_reason: row.try_get("disabled_reason")?,
        consecutive_failures: row.try_get("consecutive_failures")?,
        first_failure_at: row.try_get("first_failure_at")?,
        last_success_at: row.try_get("last_success_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The settable fields of an endpoint, complete (creation and updates both write all).
#[derive(Debug, Clone)]
pub struct EndpointSpec {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    pub rate_limit_per_sec: Option<i64>,
}

impl From<&Endpoint> for EndpointSpec {
    fn from(e: &Endpoint) -> Self {
        EndpointSpec {
            url: e.url.clone(),
            description: e.description.clone(),
            event_types: e.event_types.clone(),
            enabled: e.enabled,
            method: e.method.clone(),
            headers: e.headers.clone(),
            rate_limit_per_sec: e.rate_limit_per_sec,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointWriteError {
    #[error("this team already has an endpoint with URL {0}")]
    DuplicateUrl(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn map_dup(url: &str) -> impl FnOnce(sqlx::Error) -> EndpointWriteError + '_ {
    move |e| {
        if is_unique_violation(&e) {
            EndpointWriteError::DuplicateUrl(url.to_string())
        } else {
            e.into()
        }
    }
}

impl Store {
    pub async fn create_endpoint(
        &self,
        team: Uuid,
        spec: &EndpointSpec,
        secret_sealed: &str,
    ) -> Result<Endpoint, EndpointWriteError> {
        let id = Uuid::now_v7();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO endpoints (id, team_id, url, description, event_types, enabled, method, headers, \
             rate_limit_per_sec, secret_sealed, consecutive_failures, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $11)",
        )
        .bind(id.to_string())
        .bind(team.to_string())
        .bind(&spec.url)
        .bind(&spec.description)
        .bind(serde_json::to_string(&spec.event_types).expect("strings serialise"))
        .bind(spec.enabled)
        .bind(&spec.method)
        .bind(serde_json::to_string(&spec.headers).expect("strings serialise"))
        .bind(spec.rate_limit_per_sec)
        .bind(secret_sealed)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(map_dup(&spec.url))?;
        Ok(self
            .get_endpoint(team, id)
            .await?
            .expect("endpoint just inserted"))
    }

    pub async fn get_endpoint(
        &self,
        team: Uuid,
        id: Uuid,
    ) -> Result<Option<Endpoint>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE team_id = $1 AND id = $2"
        ))
        .bind(team.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(|r| endpoint_from(&r))
        .transpose()
    }

    pub async fn list_endpoints(&self, team: Uuid) -> Result<Vec<Endpoint>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE team_id = $1 ORDER BY created_at, id"
        ))
        .bind(team.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(endpoint_from).collect()
    }

    /// Endpoints by id, whatever their team: for the delivery worker, which holds ids
    /// taken from deliveries that are already scoped.
    pub(crate) async fn endpoints_by_id(&self, ids: &[Uuid]) -> Result<Vec<Endpoint>, sqlx::Error> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id IN ({})",
            placeholders(1, ids.len())
        );
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(id.to_string());
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(endpoint_from)
            .collect()
    }

    /// Writes every settable field. Enabling an endpoint clears its failure record, so
    /// it is not disabled again at once for failures that happened before.
    pub async fn update_endpoint(
        &self,
        team: Uuid,
        id: Uuid,
        spec: &EndpointSpec,
    ) -> Result<Option<Endpoint>, EndpointWriteError> {
        let res = sqlx::query(
            "UPDATE endpoints SET url = $3, description = $4, event_types = $5, method = $6, headers = $7, \
             rate_limit_per_sec = $8, updated_at = $9, \
             disabled_reason = CASE WHEN $10 THEN NULL ELSE disabled_reason END, \
             consecutive_failures = CASE WHEN $10 AND NOT enabled THEN 0 ELSE consecutive_failures END, \
             first_failure_at = CASE WHEN $10 AND NOT enabled THEN NULL ELSE first_failure_at END, \
             enabled = $10 \
             WHERE team_id = $1 AND id = $2",
        )
        .bind(team.to_string())
        .bind(id.to_string())
        .bind(&spec.url)
        .bind(&spec.description)
        .bind(serde_json::to_string(&spec.event_types).expect("strings serialise"))
        .bind(&spec.method)
        .bind(serde_json::to_string(&spec.headers).expect("strings serialise"))
        .bind(spec.rate_limit_per_sec)
        .bind(now_ms())
        .bind(spec.enabled)
        .execute(&self.writer)
        .await
        .map_err(map_dup(&spec.url))?;
        if res.rows_affected() == 0 {
            return Ok(None);
        }
        Ok(self.get_endpoint(team, id).await?)
    }

    pub async fn delete_endpoint(&self, team: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
        // A worker completing a batch may still lock some of these deliveries in another
        // order than the delete does.
        super::retry_transient("deleting an endpoint", || {
            self.delete_endpoint_once(team, id)
        })
        .await
    }

    async fn delete_endpoint_once(&self, team: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
        // Deliveries first, then the endpoint: the order in which a worker completing a
        // delivery locks them (the delivery, then the endpoint's health). Deleting the
        // endpoint alone would lock it first and its deliveries by cascade, the other way
        // round, and deadlock with such a worker on PostgreSQL.
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM deliveries WHERE team_id = $1 AND endpoint_id = $2")
            .bind(team.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let res = sqlx::query("DELETE FROM endpoints WHERE team_id = $1 AND id = $2")
            .bind(team.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    /// Replaces the signing secret; the old one keeps signing until `previous_expires_at`.
    pub async fn rotate_endpoint_secret(
        &self,
        team: Uuid,
        id: Uuid,
        new_sealed: &str,
        previous_expires_at: i64,
    ) -> Result<bool, sqlx::Error> {
        let res = sqlx::query(
            "UPDATE endpoints SET previous_secret_sealed = secret_sealed, previous_secret_expires_at = $3, \
             secret_sealed = $4, updated_at = $5 WHERE team_id = $1 AND id = $2",
        )
        .bind(team.to_string())
        .bind(id.to_string())
        .bind(previous_expires_at)
        .bind(new_sealed)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(res.rows_affected() == 1)
    }
}
