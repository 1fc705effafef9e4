//! Users: the team's end users, keyed by the team's own `client_user_id`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{parse_id, Auth, Body, Query};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::events::format_ms;
use crate::store::{CreateUserError, User};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Your own id for the user, unique in the team: 1–255 characters, not all white
    /// space (which is trimmed from both ends).
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "[^\\u0009-\\u000d \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub(crate) client_user_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserView {
    pub(crate) user_id: Uuid,
    pub(crate) team_id: Uuid,
    pub(crate) client_user_id: String,
    /// RFC 3339.
    pub(crate) created_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            user_id: u.user_id,
            team_id: u.team_id,
            client_user_id: u.client_user_id,
            created_at: format_ms(u.created_at),
        }
    }
}

#[utoipa::path(post, path = "/user", tag = "users", operation_id = "create_user", request_body = CreateUser,
    responses((status = 201, description = "created", body = UserView, links(
                  ("summary" = (operation_id = "summary", parameters(("user_id" = "$response.body#/user_id")))),
                  ("timeseries" = (operation_id = "timeseries", parameters(("user_id" = "$response.body#/user_id")))),
                  ("deregister" = (operation_id = "deregister", parameters(("user_id" = "$response.body#/user_id")))),
                  ("resolve" = (operation_id = "resolve", parameters(("client_user_id" = "$response.body#/client_user_id")))),
              )),
              (status = 409, description = "`client_user_id` exists", body = crate::error::ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    Auth(team): Auth,
    Body(req): Body<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    // Counted as sent, as documented; then trimmed (Rust's white space is the
    // pattern's character class).
    let id = req.client_user_id.trim();
    if id.is_empty() || req.client_user_id.chars().count() > 255 {
        return Err(ApiError::validation(
            "`client_user_id` must be 1 to 255 characters",
        ));
    }
    match s.store.create_user(team.id, id).await {
        Ok(u) => Ok((StatusCode::CREATED, Json(u.into()))),
        Err(CreateUserError::Duplicate(c)) => Err(ApiError::conflict(format!(
            "a user with client_user_id `{c}` already exists"
        ))),
        Err(CreateUserError::Db(e)) => Err(e.into()),
    }
}

#[utoipa::path(get, path = "/user/{user_id}", tag = "users", operation_id = "get_user", params(("user_id" = Uuid, Path)),
    responses((status = 200, description = "the user", body = UserView)))]
pub async fn get(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<UserView>> {
    let id = parse_id(&id, "user")?;
    s.store
        .get_user(team.id, id)
        .await?
        .map(|u| Json(u.into()))
        .ok_or_else(|| ApiError::not_found("user"))
}

#[utoipa::path(get, path = "/user/resolve/{client_user_id}", tag = "users", params(("client_user_id" = String, Path)),
    responses((status = 200, description = "the user with this `client_user_id`", body = UserView)))]
pub async fn resolve(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(client_user_id): Path<String>,
) -> ApiResult<Json<UserView>> {
    s.store
        .resolve_user(team.id, &client_user_id)
        .await?
        .map(|u| Json(u.into()))
        .ok_or_else(|| ApiError::not_found("user"))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Users to skip (≥ 0).
    #[serde(default)]
    #[param(minimum = 0)]
    pub(crate) offset: i64,
    /// Users per page (1–1000, default 50).
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000)]
    pub(crate) limit: i64,
}

fn default_limit() -> i64 {
    50
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub(crate) users: Vec<UserView>,
    pub(crate) total: i64,
    pub(crate) offset: i64,
    pub(crate) limit: i64,
}

#[utoipa::path(get, path = "/user", tag = "users", operation_id = "list_users", params(Page), responses((status = 200, description = "a page of users, oldest first", body = UserList)))]
pub async fn list(
    State(s): State<AppState>,
    Auth(team): Auth,
    Query(p): Query<Page>,
) -> ApiResult<Json<UserList>> {
    if p.offset < 0 || !(1..=1000).contains(&p.limit) {
        return Err(ApiError::validation(
            "`offset` must be ≥ 0 and `limit` between 1 and 1000",
        ));
    }
    let (users, total) = s.store.list_users(team.id, p.offset, p.limit).await?;
    Ok(Json(UserList {
        users: users.into_iter().map(Into::into).collect(),
        total,
        offset: p.offset,
        limit: p.limit,
    }))
}

#[utoipa::path(delete, path = "/user/{user_id}", tag = "users", operation_id = "delete_user", params(("user_id" = Uuid, Path)),
    responses((status = 204, description = "deleted, with its connections and data")))]
pub async fn delete(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id, "user")?;
    if s.store.delete_user(team.id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("user"))
    }
}
