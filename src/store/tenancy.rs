//! Teams (tenants), their API keys (stored as hashes) and their users.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use super::{get_uuid, Store};
use crate::now_ms;
use crate::seal::{hash_api_key, new_api_key};

#[derive(Debug, Clone, Serialize)]
pub struct Team {
    pub id: Uuid,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub user_id: Uuid,
    pub team_id: Uuid,
    pub client_user_id: String,
    pub created_at: i64,
}

fn user_from(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        user_id: get_uuid(row, "id")?,
        team_id: get_uuid(row, "team_id")?,
        client_user_id: row.try_get("client_user_id")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("a user with client_user_id `{0}` already exists in this team")]
    Duplicate(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl Store {
    /// Creates a team and its first API key; the key is returned once and kept only as a hash.
    pub async fn create_team(&self, name: &str) -> Result<(Team, String), sqlx::Error> {
        let team = Team {
            id: Uuid::now_v7(),
            name: name.to_string(),
            created_at: now_ms(),
        };
        let key = new_api_key();
        let mut tx = self.writer.begin().await?;
        sqlx::query("INSERT INTO teams (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(team.id.to_string())
            .bind(&team.name)
            .bind(team.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO api_keys (key_hash, team_id, prefix, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(hash_api_key(&key))
        .bind(team.id.to_string())
        .bind(&key[..7])
        .bind(team.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((team, key))
    }

    /// The team an API key belongs to, if the key is valid.
    pub async fn team_for_key(&self, key: &str) -> Result<Option<Team>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT t.id, t.name, t.created_at FROM api_keys k JOIN teams t ON t.id = k.team_id WHERE k.key_hash = $1",
        )
        .bind(hash_api_key(key))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Team {
                id: get_uuid(&r, "id")?,
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }

    pub async fn create_user(
        &self,
        team: Uuid,
        client_user_id: &str,
    ) -> Result<User, CreateUserError> {
        let user = User {
            user_id: Uuid::now_v7(),
            team_id: team,
            client_user_id: client_user_id.to_string(),
            created_at: now_ms(),
        };
        let res = sqlx::query(
            "INSERT INTO users (id, team_id, client_user_id, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(user.user_id.to_string())
        .bind(team.to_string())
        .bind(&user.client_user_id)
        .bind(user.created_at)
        .execute(&self.writer)
        .await;
        match res {
            Ok(_) => Ok(user),
            Err(e) if super::is_unique_violation(&e) => {
                Err(CreateUserError::Duplicate(client_user_id.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_user(&self, team: Uuid, user: Uuid) -> Result<Option<User>, sqlx::Error> {
        sqlx::query("SELECT id, team_id, client_user_id, created_at FROM users WHERE team_id = $1 AND id = $2")
            .bind(team.to_string())
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| user_from(&r))
            .transpose()
    }

    pub async fn resolve_user(
        &self,
        team: Uuid,
        client_user_id: &str,
    ) -> Result<Option<User>, sqlx::Error> {
        sqlx::query("SELECT id, team_id, client_user_id, created_at FROM users WHERE team_id = $1 AND client_user_id = $2")
            .bind(team.to_string())
            .bind(client_user_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| user_from(&r))
            .transpose()
    }

    /// One page of the team's users, oldest first, and the team's total.
    pub async fn list_users(
        &self,
        team: Uuid,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<User>, i64), sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, team_id, client_user_id, created_at FROM users WHERE team_id = $1 \
             ORDER BY created_at, id LIMIT $2 OFFSET $3",
        )
        .bind(team.to_string())
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE team_id = $1")
            .bind(team.to_string())
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok((rows.iter().map(user_from).collect::<Result<_, _>>()?, total))
    }

    /// Deletes a user; true if it existed in this team.
    pub async fn delete_user(&self, team: Uuid, user: Uuid) -> Result<bool, sqlx::Error> {
        // The cascade reaches the user's jobs, which page commits of a running backfill
        // may hold (and want the windows they release): on PostgreSQL the two can
        // deadlock, and the delete is simply tried again.
        super::retry_transient("deleting a user", || async {
            let res = sqlx::query("DELETE FROM users WHERE team_id = $1 AND id = $2")
                .bind(team.to_string())
                .bind(user.to_string())
                .execute(&self.writer)
                .await?;
            Ok(res.rows_affected() == 1)
        })
        .await
    }
}
