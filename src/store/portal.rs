//! Webhook-portal sessions. A session begins as a one-time link code (handed to a
//! developer by the team's backend); opening the link spends the code and issues the
//! session token the browser keeps in a cookie. Only SHA-256 hashes of both are stored,
//! like API keys: a leaked database opens no portal.

use sqlx::Row;
use uuid::Uuid;

use super::{get_uuid, Store};
use crate::now_ms;
use crate::seal::hash_api_key;

/// A live portal session: whose it is and until when.
#[derive(Debug, Clone)]
pub struct PortalSession {
    pub id: Uuid,
    pub team: super::Team,
    pub expires_at: i64,
}

impl Store {
    /// Stores a new portal link `code` for `team`, valid for `code_ttl_ms`; once opened,
    /// its session lasts `session_ttl_ms`. Returns when the code expires.
    pub async fn create_portal_session(
        &self,
        team: Uuid,
        code: &str,
        code_ttl_ms: i64,
        session_ttl_ms: i64,
    ) -> Result<i64, sqlx::Error> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO portal_sessions (id, team_id, code_hash, code_expires_at, session_ttl_ms, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(team.to_string())
        .bind(hash_api_key(code))
        .bind(now + code_ttl_ms)
        .bind(session_ttl_ms)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(now + code_ttl_ms)
    }

    /// Spends a portal link code and binds `session_token` to its session. None when
    /// the code is unknown, expired or already used: a link opens one session, once.
    pub async fn open_portal_session(
        &self,
        code: &str,
        session_token: &str,
    ) -> Result<Option<i64>, sqlx::Error> {
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE portal_sessions SET session_hash = $2, opened_at = $3, expires_at = $3 + session_ttl_ms \
             WHERE code_hash = $1 AND opened_at IS NULL AND code_expires_at > $3 RETURNING expires_at",
        )
        .bind(hash_api_key(code))
        .bind(hash_api_key(session_token))
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|r| r.try_get("expires_at")).transpose()
    }

    /// The live session a session token belongs to, if any.
    pub async fn portal_session(
        &self,
        session_token: &str,
    ) -> Result<Option<PortalSession>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT s.id, s.expires_at, t.id AS team_id, t.name, t.created_at FROM portal_sessions s \
             JOIN teams t ON t.id = s.team_id \
             WHERE s.session_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2",
        )
        .bind(hash_api_key(session_token))
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(PortalSession {
                id: get_uuid(&r, "id")?,
                team: super::Team {
                    id: get_uuid(&r, "team_id")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                },
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Ends a session (sign out); its token no longer authenticates.
    pub async fn end_portal_session(&self, id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE portal_sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL")
            .bind(id.to_string())
            .bind(now_ms())
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
