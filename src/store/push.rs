//! Provider notifications as the store keeps them. Each is recorded once per
//! (provider, key) in the same transaction as everything it causes (a pull queued, a
//! record removed with its `daily.data.<r>.deleted` event, a connection ended), so a
//! provider's retry or replay does nothing twice, and a crash leaves either all of it
//! or none of it (the provider, getting no 2xx, sends it again).

use serde::Serialize;
use sqlx::Row;

use super::connections::{connection_from, Connection, CONNECTION_COLUMNS};
use super::events::{publish_in, Target};
use super::polling::{delete_records, end_connection_in, insert_jobs, NewJob};
use super::Store;
use crate::events::{Envelope, RecordRemoval, Resource};
use crate::now_ms;
use crate::states::{ConnectionErrorType, ConnectionStatus, JobKind};

/// What a verified notification asks of the store.
#[derive(Debug, Clone, PartialEq)]
pub enum NoticeWork {
    /// Queue a pull of `resource` over `window` (Unix ms), or of one record.
    Pull {
        resource: Resource,
        window: (i64, i64),
        record: Option<String>,
    },
    /// Remove the record the provider deleted (its provider id).
    Delete { resource: Resource, record: String },
    /// The user revoked the app's access at the provider.
    Deauthorize,
    /// Nothing to do (logged with its reason).
    Ignore,
}

impl NoticeWork {
    fn action(&self) -> &'static str {
        match self {
            NoticeWork::Pull { .. } => "changed",
            NoticeWork::Delete { .. } => "deleted",
            NoticeWork::Deauthorize => "deauthorized",
            NoticeWork::Ignore => "ignored",
        }
    }

    fn resource(&self) -> Option<Resource> {
        match self {
            NoticeWork::Pull { resource, .. } | NoticeWork::Delete { resource, .. } => {
                Some(*resource)
            }
            _ => None,
        }
    }
}

/// One verified notification.
#[derive(Debug, Clone)]
pub struct IncomingNotice<'a> {
    pub provider: &'a str,
    /// Stable over the provider's retries of it.
    pub key: &'a str,
    /// The provider's id of the user.
    pub user: &'a str,
    pub work: NoticeWork,
}

/// What a notification caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeOutcome {
    /// Pulls queued (one per connection of the user).
    Pulled,
    /// The record removed (where it was stored), with its event.
    Deleted,
    /// The connection ended.
    Deauthorized,
    /// Verified, but nothing to do.
    Ignored,
    /// Verified, for a provider user with no live connection here: acknowledged so the
    /// provider stops retrying, and logged.
    UnknownUser,
    /// Seen before: a retry or replay; nothing done again.
    Duplicate,
}

impl NoticeOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeOutcome::Pulled => "pulled",
            NoticeOutcome::Deleted => "deleted",
            NoticeOutcome::Deauthorized => "deauthorized",
            NoticeOutcome::Ignored => "ignored",
            NoticeOutcome::UnknownUser => "unknown_user",
            NoticeOutcome::Duplicate => "duplicate",
        }
    }

    pub const ALL: [NoticeOutcome; 6] = [
        NoticeOutcome::Pulled,
        NoticeOutcome::Deleted,
        NoticeOutcome::Deauthorized,
        NoticeOutcome::Ignored,
        NoticeOutcome::UnknownUser,
        NoticeOutcome::Duplicate,
    ];
}

/// The events a notification's effects publish, built by the caller (the store knows
/// no providers).
pub trait NoticeEvents: Sync {
    /// `daily.data.<r>.deleted` for a record removed from `conn`.
    fn deleted(&self, conn: &Connection, removal: &RecordRemoval) -> Envelope;
    /// `provider.connection.error` (`deregistered_per_provider`) for `conn`.
    fn deauthorized(&self, conn: &Connection) -> Envelope;
}

/// The message a deauthorized connection keeps as its error.
pub const DEAUTHORIZED_MESSAGE: &str = "the user revoked access at the provider";

impl Store {
    /// Records a verified notification and does what it asks, in one transaction; a
    /// notification seen before does nothing ([`NoticeOutcome::Duplicate`]).
    pub async fn receive_notice(
        &self,
        n: &IncomingNotice<'_>,
        events: &dyn NoticeEvents,
    ) -> Result<NoticeOutcome, sqlx::Error> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO notifications (provider, key, received_at, user_ref, action, resource, outcome, connections) \
             VALUES ($1, $2, $3, $4, $5, $6, 'received', 0) ON CONFLICT (provider, key) DO NOTHING",
        )
        .bind(n.provider)
        .bind(n.key)
        .bind(now)
        .bind(n.user)
        .bind(n.work.action())
        .bind(n.work.resource().map(|r| r.as_str()))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(NoticeOutcome::Duplicate);
        }
        let conns: Vec<Connection> = sqlx::query(&format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections c JOIN users u ON u.id = c.user_id \
             WHERE c.provider = $1 AND c.external_user_id = $2 AND c.status = $3 ORDER BY c.created_at"
        ))
        .bind(n.provider)
        .bind(n.user)
        .bind(ConnectionStatus::Connected.as_str())
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(connection_from)
        .collect::<Result<_, _>>()?;
        let mut queued = false;
        let mut published = false;
        let outcome = if conns.is_empty() {
            NoticeOutcome::UnknownUser
        } else {
            for c in &conns {
                sqlx::query("UPDATE connections SET last_push_at = $2 WHERE id = $1")
                    .bind(c.id.to_string())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            match &n.work {
                NoticeWork::Pull {
                    resource,
                    window,
                    record,
                } => {
                    let job = NewJob {
                        kind: JobKind::Pull,
                        resource: *resource,
                        window_start: window.0,
                        window_end: window.1,
                        chunk_index: 0,
                        chunk_count: 1,
                        run_at: self.clock.now_ms(),
                        backfill_id: None,
                        record_key: record.clone(),
                    };
                    for c in &conns {
                        insert_jobs(&mut tx, c.id, std::slice::from_ref(&job)).await?;
                    }
                    queued = true;
                    NoticeOutcome::Pulled
                }
                NoticeWork::Delete { resource, record } => {
                    for c in &conns {
                        let id = crate::ids::record_id(
                            c.team_id,
                            c.user_id,
                            &c.provider,
                            resource.as_str(),
                            record,
                        );
                        let removed = delete_records(&mut tx, &[id]).await?;
                        let envs: Vec<Envelope> =
                            removed.iter().map(|r| events.deleted(c, r)).collect();
                        if !envs.is_empty() {
                            publish_in(&mut tx, c.team_id, &envs, Target::Subscribers).await?;
                            published = true;
                        }
                    }
                    NoticeOutcome::Deleted
                }
                NoticeWork::Deauthorize => {
                    for c in &conns {
                        let error = (
                            ConnectionErrorType::DeregisteredPerProvider,
                            DEAUTHORIZED_MESSAGE,
                        );
                        published |= end_connection_in(
                            &mut tx,
                            c.id,
                            ConnectionStatus::Error,
                            Some(error),
                            &events.deauthorized(c),
                        )
                        .await?;
                    }
                    NoticeOutcome::Deauthorized
                }
                NoticeWork::Ignore => NoticeOutcome::Ignored,
            }
        };
        sqlx::query(
            "UPDATE notifications SET outcome = $3, connections = $4 WHERE provider = $1 AND key = $2",
        )
        .bind(n.provider)
        .bind(n.key)
        .bind(outcome.as_str())
        .bind(conns.len() as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if queued {
            self.notify_jobs();
        }
        if published {
            self.notify_work();
        }
        Ok(outcome)
    }

    /// The most recent notifications from `provider`, newest first: (key, received at,
    /// action, resource, outcome, connections).
    pub async fn recent_notifications(
        &self,
        provider: &str,
        limit: i64,
    ) -> Result<Vec<NotificationLog>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT key, received_at, user_ref, action, resource, outcome, connections FROM notifications \
             WHERE provider = $1 ORDER BY received_at DESC, key LIMIT $2",
        )
        .bind(provider)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NotificationLog {
                    key: r.try_get("key")?,
                    received_at: r.try_get("received_at")?,
                    user: r.try_get("user_ref")?,
                    action: r.try_get("action")?,
                    resource: r.try_get("resource")?,
                    outcome: r.try_get("outcome")?,
                    connections: r.try_get("connections")?,
                })
            })
            .collect()
    }
}

/// One logged notification.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NotificationLog {
    pub key: String,
    pub received_at: i64,
    pub user: String,
    pub action: String,
    pub resource: Option<String>,
    pub outcome: String,
    pub connections: i64,
}

/// A subscription to a provider's notifications, as made (or as it failed).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PushSubscription {
    pub id: String,
    pub provider: String,
    /// The connection a per-user subscription belongs to; `None` for the app's.
    pub connection_id: Option<String>,
    /// The provider's id of it.
    pub remote_id: Option<String>,
    pub callback_url: String,
    /// `active` or `failed`.
    pub status: String,
    pub expires_at: Option<i64>,
    pub error: Option<String>,
    pub updated_at: i64,
    /// Sealed ([`crate::seal::Purpose::PushSigningSecret`]); never served.
    #[serde(skip)]
    pub signing_secret_sealed: Option<String>,
}

impl Store {
    /// Saves a subscription (replacing the one with the same id).
    pub async fn save_push_subscription(&self, s: &PushSubscription) -> Result<(), sqlx::Error> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM push_subscriptions WHERE id = $1")
            .bind(&s.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO push_subscriptions (id, provider, connection_id, remote_id, callback_url, status, expires_at, \
             signing_secret_sealed, error, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(&s.id)
        .bind(&s.provider)
        .bind(s.connection_id.clone())
        .bind(s.remote_id.clone())
        .bind(&s.callback_url)
        .bind(&s.status)
        .bind(s.expires_at)
        .bind(s.signing_secret_sealed.clone())
        .bind(s.error.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Removes a subscription.
    pub async fn delete_push_subscription(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM push_subscriptions WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Every subscription of `provider` (all providers when `None`), oldest first.
    pub async fn push_subscriptions(
        &self,
        provider: Option<&str>,
    ) -> Result<Vec<PushSubscription>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, provider, connection_id, remote_id, callback_url, status, expires_at, signing_secret_sealed, \
             error, updated_at FROM push_subscriptions WHERE ($1 IS NULL OR provider = $1) ORDER BY created_at, id",
        )
        .bind(provider.map(str::to_string))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PushSubscription {
                    id: r.try_get("id")?,
                    provider: r.try_get("provider")?,
                    connection_id: r.try_get("connection_id")?,
                    remote_id: r.try_get("remote_id")?,
                    callback_url: r.try_get("callback_url")?,
                    status: r.try_get("status")?,
                    expires_at: r.try_get("expires_at")?,
                    signing_secret_sealed: r.try_get("signing_secret_sealed")?,
                    error: r.try_get("error")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }
}

impl Store {
    /// Whether `provider`'s user `external_user` has a live per-user subscription here
    /// (what proves a Withings notification: it names a user we subscribed).
    pub async fn user_subscribed(
        &self,
        provider: &str,
        external_user: &str,
    ) -> Result<bool, sqlx::Error> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM push_subscriptions s JOIN connections c ON c.id = s.connection_id \
             WHERE s.provider = $1 AND c.external_user_id = $2 AND s.status = 'active' AND c.status = $3",
        )
        .bind(provider)
        .bind(external_user)
        .bind(ConnectionStatus::Connected.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }
}
