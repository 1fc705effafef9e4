//! Link tokens (the start of a connect flow) and connections (a user's OAuth link to a
//! provider, with sealed tokens). Token refresh is serialised per connection by a short
//! lock and a version number, so a single-use refresh token is spent exactly once even
//! with many workers.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use super::{get_opt_state, get_state, get_uuid, Store};
use crate::events::{ConnectionRef, ProviderRef};
use crate::now_ms;
use crate::seal::hash_api_key;
use crate::states::{ConnectionErrorType, ConnectionStatus};

/// A link token's row, as the connect flow needs it.
#[derive(Debug, Clone)]
pub struct LinkToken {
    pub team_id: Uuid,
    pub user_id: Uuid,
    pub provider: String,
    pub redirect_url: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Connection {
    pub id: Uuid,
    pub team_id: Uuid,
    pub user_id: Uuid,
    pub client_user_id: String,
    pub provider: String,
    pub external_user_id: Option<String>,
    pub status: ConnectionStatus,
    #[serde(skip)]
    pub access_token_sealed: String,
    #[serde(skip)]
    pub refresh_token_sealed: Option<String>,
    pub token_expires_at: Option<i64>,
    pub token_version: i64,
    pub error_type: Option<ConnectionErrorType>,
    pub error_message: Option<String>,
    pub created_at: i64,
    /// When the provider last notified a change for this connection: while it pushes,
    /// polling is a safety net (see `poller::plan::next_poll_at`).
    pub last_push_at: Option<i64>,
}

pub(super) const CONNECTION_COLUMNS: &str = "c.id, c.team_id, c.user_id, u.client_user_id, c.provider, c.external_user_id, c.status, \
    c.access_token_sealed, c.refresh_token_sealed, c.token_expires_at, c.token_version, c.error_type, c.error_message, c.created_at, c.last_push_at";

pub(super) fn connection_from(r: &AnyRow) -> Result<Connection, sqlx::Error> {
    Ok(Connection {
        id: get_uuid(r, "id")?,
        team_id: get_uuid(r, "team_id")?,
        user_id: get_uuid(r, "user_id")?,
        client_user_id: r.try_get("client_user_id")?,
        provider: r.try_get("provider")?,
        external_user_id: r.try_get("external_user_id")?,
        status: get_state(r, "status")?,
        access_token_sealed: r.try_get("access_token_sealed")?,
        refresh_token_sealed: r.try_get("refresh_token_sealed")?,
        token_expires_at: r.try_get("token_expires_at")?,
        token_version: r.try_get("token_version")?,
        error_type: get_opt_state(r, "error_type")?,
        error_message: r.try_get("error_message")?,
        created_at: r.try_get("created_at")?,
        last_push_at: r.try_get("last_push_at")?,
    })
}

impl Connection {
    /// The connection as its events name it.
    pub fn event_ref(&self, provider: ProviderRef) -> ConnectionRef {
        ConnectionRef {
            id: self.id,
            team_id: self.team_id,
            user_id: self.user_id,
            client_user_id: self.client_user_id.clone(),
            provider,
        }
    }
}

/// Sealed tokens from an exchange or a refresh.
#[derive(Debug, Clone)]
pub struct SealedTokens {
    pub access: String,
    pub refresh: Option<String>,
    pub expires_at: Option<i64>,
}

impl Store {
    /// Stores a link token (by hash) for `ttl_ms`.
    pub async fn create_link_token(
        &self,
        token: &str,
        team: Uuid,
        user: Uuid,
        provider: &str,
        redirect_url: &str,
        ttl_ms: i64,
    ) -> Result<i64, sqlx::Error> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO link_tokens (token_hash, team_id, user_id, provider, redirect_url, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(hash_api_key(token))
        .bind(team.to_string())
        .bind(user.to_string())
        .bind(provider)
        .bind(redirect_url)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(now + ttl_ms)
    }

    pub async fn get_link_token(&self, token: &str) -> Result<Option<LinkToken>, sqlx::Error> {
        let row = sqlx::query("SELECT team_id, user_id, provider, redirect_url, expires_at, used_at FROM link_tokens WHERE token_hash = $1")
            .bind(hash_api_key(token))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(LinkToken {
                team_id: get_uuid(&r, "team_id")?,
                user_id: get_uuid(&r, "user_id")?,
                provider: r.try_get("provider")?,
                redirect_url: r.try_get("redirect_url")?,
                expires_at: r.try_get("expires_at")?,
                used_at: r.try_get("used_at")?,
            })
        })
        .transpose()
    }

    /// Marks a link token used; false if it was already used (a replayed callback).
    pub async fn use_link_token(&self, token: &str) -> Result<bool, sqlx::Error> {
        let res = sqlx::query(
            "UPDATE link_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
        )
        .bind(hash_api_key(token))
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    pub async fn get_connection(&self, id: Uuid) -> Result<Option<Connection>, sqlx::Error> {
        Ok(self.get_connections(&[id]).await?.remove(&id))
    }

    /// Connections by id, with one statement: those of a batch of claimed jobs.
    pub async fn get_connections(
        &self,
        ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, Connection>, sqlx::Error> {
        let mut found = std::collections::HashMap::new();
        for chunk in ids.chunks(super::PARAMS_PER_STATEMENT) {
            let sql = format!(
                "SELECT {CONNECTION_COLUMNS} FROM connections c JOIN users u ON u.id = c.user_id WHERE c.id IN ({})",
                super::placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.to_string());
            }
            for r in q.fetch_all(&self.pool).await? {
                let c = connection_from(&r)?;
                found.insert(c.id, c);
            }
        }
        Ok(found)
    }

    pub async fn user_connections(
        &self,
        team: Uuid,
        user: Uuid,
    ) -> Result<Vec<Connection>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections c JOIN users u ON u.id = c.user_id \
             WHERE c.team_id = $1 AND c.user_id = $2 ORDER BY c.provider"
        ))
        .bind(team.to_string())
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(connection_from).collect()
    }

    /// Stores new tokens after a refresh, if nobody refreshed in between (`version`
    /// still current). Releases the refresh lock either way.
    pub async fn swap_tokens(
        &self,
        id: Uuid,
        version: i64,
        tokens: &SealedTokens,
    ) -> Result<bool, sqlx::Error> {
        let res = sqlx::query(
            "UPDATE connections SET access_token_sealed = $3, refresh_token_sealed = COALESCE($4, refresh_token_sealed), \
             token_expires_at = $5, token_version = token_version + 1, refresh_lock_until = 0, updated_at = $6 \
             WHERE id = $1 AND token_version = $2",
        )
        .bind(id.to_string())
        .bind(version)
        .bind(&tokens.access)
        .bind(tokens.refresh.clone())
        .bind(tokens.expires_at)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Takes the right to refresh this connection's tokens for `hold_ms`, if the tokens
    /// are still at `version` and nobody else holds it.
    pub async fn lock_refresh(
        &self,
        id: Uuid,
        version: i64,
        hold_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        let now = now_ms();
        let res = sqlx::query(
            "UPDATE connections SET refresh_lock_until = $3 WHERE id = $1 AND token_version = $2 AND refresh_lock_until < $4",
        )
        .bind(id.to_string())
        .bind(version)
        .bind(now + hold_ms)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    pub async fn unlock_refresh(&self, id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE connections SET refresh_lock_until = 0 WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
