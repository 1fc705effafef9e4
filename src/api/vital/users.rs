//! `/v2/user…`: Junction's user routes over the `/v1` user and connection handlers.
//! Junction answers 200 with JSON where `/v1` answers 201 or 204 (its `user.delete`
//! and `user.deregister_provider` return `{"success": true}`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::super::users::{self as v1, CreateUser, Page, UserView};
use super::super::{connect, Auth, Body, Query};
use super::{junction_slug, parse_user_id, path_provider, ClientFacingProvider, JunctionError};
use crate::app::AppState;
use crate::error::ApiResult;
use crate::events::format_ms;
use crate::providers;
use crate::states::{ConnectionErrorType, ConnectionStatus};
use crate::store::{Connection, Team};

/// Junction's `UserCreateBody`. Its optional `fallback_time_zone`,
/// `fallback_birth_date`, `ingestion_start` and `ingestion_end` are not supported:
/// sending one is refused (422) rather than ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreateBody {
    /// Your own id for the user, unique in the team: 1–255 characters, not all white
    /// space (which is trimmed from both ends).
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "[^\\u0009-\\u000d \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    client_user_id: String,
}

/// Junction's `ClientFacingUserKey`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacingUserKey {
    user_id: Uuid,
    client_user_id: String,
}

/// Junction's `ConnectedSourceClientFacing`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectedSourceClientFacing {
    provider: ClientFacingProvider,
    /// When the connection was made.
    #[schema(format = DateTime)]
    created_on: String,
    /// The same provider (Junction's older name for it).
    source: ClientFacingProvider,
}

/// Junction's `ClientFacingUser`. The fallbacks and ingestion bounds are always `null`
/// (not supported).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacingUser {
    user_id: Uuid,
    team_id: Uuid,
    client_user_id: String,
    #[schema(format = DateTime)]
    created_on: String,
    /// The user's live connections (deregistered ones are left out).
    connected_sources: Vec<ConnectedSourceClientFacing>,
    #[schema(value_type = Option<Object>)]
    fallback_time_zone: Option<()>,
    #[schema(value_type = Option<Object>)]
    fallback_birth_date: Option<()>,
    #[schema(value_type = Option<String>)]
    ingestion_start: Option<()>,
    #[schema(value_type = Option<String>)]
    ingestion_end: Option<()>,
}

/// Junction's `PaginatedUsersResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaginatedUsersResponse {
    users: Vec<ClientFacingUser>,
    total: i64,
    offset: i64,
    limit: i64,
}

/// Junction's `UserSuccessResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserSuccessResponse {
    success: bool,
}

/// The live connections of a user: what Junction lists (a deregistered one is gone).
async fn live_connections(s: &AppState, team: Uuid, user: Uuid) -> ApiResult<Vec<Connection>> {
    Ok(s.store
        .user_connections(team, user)
        .await?
        .into_iter()
        .filter(|c| c.status != ConnectionStatus::Deregistered)
        .collect())
}

async fn client_facing(s: &AppState, u: UserView) -> ApiResult<ClientFacingUser> {
    let connected_sources = live_connections(s, u.team_id, u.user_id)
        .await?
        .iter()
        .filter_map(|c| {
            let p = providers::find(&c.provider)?;
            Some(ConnectedSourceClientFacing {
                provider: ClientFacingProvider::of(p),
                created_on: format_ms(c.created_at),
                source: ClientFacingProvider::of(p),
            })
        })
        .collect();
    Ok(ClientFacingUser {
        user_id: u.user_id,
        team_id: u.team_id,
        client_user_id: u.client_user_id,
        created_on: u.created_at,
        connected_sources,
        fallback_time_zone: None,
        fallback_birth_date: None,
        ingestion_start: None,
        ingestion_end: None,
    })
}

async fn user_of(s: &AppState, team: &Team, user: Uuid) -> ApiResult<UserView> {
    let Json(view) = v1::get(State(s.clone()), Auth(team.clone()), Path(user.to_string())).await?;
    Ok(view)
}

/// Creates a user. A `client_user_id` already taken answers 400 with the existing
/// user's `user_id` and `created_on`, as Junction documents
/// (https://docs.junction.com/api-reference/user/create-user).
#[utoipa::path(post, path = "/user", tag = "junction", operation_id = "v2_create_user", request_body = UserCreateBody,
    responses((status = 200, description = "created", body = ClientFacingUserKey),
              (status = 400, description = "`client_user_id` exists: `detail` names the user", body = JunctionError)))]
pub async fn create_user(
    State(s): State<AppState>,
    Auth(team): Auth,
    Body(req): Body<UserCreateBody>,
) -> ApiResult<Response> {
    let created = v1::create(
        State(s.clone()),
        Auth(team.clone()),
        Body(CreateUser {
            client_user_id: req.client_user_id.clone(),
        }),
    )
    .await;
    match created {
        Ok((_, Json(u))) => Ok(Json(ClientFacingUserKey {
            user_id: u.user_id,
            client_user_id: u.client_user_id,
        })
        .into_response()),
        Err(e) if e.status == StatusCode::CONFLICT => {
            let existing = s
                .store
                .resolve_user(team.id, req.client_user_id.trim())
                .await?
                .ok_or(e.clone())?;
            let body = JunctionError {
                detail: super::JunctionErrorDetail {
                    error_type: "duplicate_client_user_id".to_string(),
                    error_message: e.message,
                    error_code: 400,
                    user_id: Some(existing.user_id),
                    created_on: Some(format_ms(existing.created_at)),
                },
            };
            Ok((StatusCode::BAD_REQUEST, Json(body)).into_response())
        }
        Err(e) => Err(e),
    }
}

#[utoipa::path(get, path = "/user", tag = "junction", operation_id = "v2_list_users", params(Page),
    responses((status = 200, description = "a page of users, oldest first", body = PaginatedUsersResponse)))]
pub async fn list_users(
    State(s): State<AppState>,
    Auth(team): Auth,
    Query(p): Query<Page>,
) -> ApiResult<Json<PaginatedUsersResponse>> {
    let Json(page) = v1::list(State(s.clone()), Auth(team.clone()), Query(p)).await?;
    let mut users = Vec::with_capacity(page.users.len());
    for u in page.users {
        users.push(client_facing(&s, u).await?);
    }
    Ok(Json(PaginatedUsersResponse {
        users,
        total: page.total,
        offset: page.offset,
        limit: page.limit,
    }))
}

#[utoipa::path(get, path = "/user/{user_id}", tag = "junction", operation_id = "v2_get_user",
    params(("user_id" = Uuid, Path)),
    responses((status = 200, description = "the user", body = ClientFacingUser)))]
pub async fn get_user(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(user): Path<String>,
) -> ApiResult<Json<ClientFacingUser>> {
    let user = parse_user_id(&user)?;
    let u = user_of(&s, &team, user).await?;
    Ok(Json(client_facing(&s, u).await?))
}

#[utoipa::path(get, path = "/user/resolve/{client_user_id}", tag = "junction", operation_id = "v2_resolve_user",
    params(("client_user_id" = String, Path)),
    responses((status = 200, description = "the user with this `client_user_id`", body = ClientFacingUser)))]
pub async fn resolve_user(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(client_user_id): Path<String>,
) -> ApiResult<Json<ClientFacingUser>> {
    let Json(view) = v1::resolve(State(s.clone()), Auth(team), Path(client_user_id)).await?;
    Ok(Json(client_facing(&s, view).await?))
}

#[utoipa::path(delete, path = "/user/{user_id}", tag = "junction", operation_id = "v2_delete_user",
    params(("user_id" = Uuid, Path)),
    responses((status = 200, description = "deleted, with its connections and data", body = UserSuccessResponse)))]
pub async fn delete_user(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(user): Path<String>,
) -> ApiResult<Json<UserSuccessResponse>> {
    let user = parse_user_id(&user)?;
    v1::delete(State(s), Auth(team), Path(user.to_string())).await?;
    Ok(Json(UserSuccessResponse { success: true }))
}

/// Junction's `ResourceAvailability` (only its `status`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceAvailability {
    /// `available`: the provider shares it and the gateway fetches it.
    status: String,
}

/// Junction's `ClientFacingConnectionErrorDetails`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacingConnectionErrorDetails {
    /// `token_refresh_failed`, `required_scopes_not_granted`, `deregistered_per_provider`
    /// or `unknown` (Junction's vocabulary; `provider_api_error` is reported as `unknown`).
    error_type: String,
    error_message: String,
    /// When the connection last changed (the error is its last change).
    #[schema(format = DateTime)]
    errored_at: String,
}

/// Junction's `ClientFacingProviderWithStatus`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacingProviderWithStatus {
    name: String,
    slug: String,
    /// Always empty: the gateway hosts no provider logos.
    logo: String,
    #[schema(format = DateTime)]
    created_on: String,
    /// `connected` or `error`.
    status: String,
    external_user_id: Option<String>,
    error_details: Option<ClientFacingConnectionErrorDetails>,
    resource_availability: std::collections::BTreeMap<String, ResourceAvailability>,
}

/// `{"providers": [...]}`: a user's connections.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectedProviders {
    providers: Vec<ClientFacingProviderWithStatus>,
}

/// Junction's connection error types (its `ClientFacingConnectionErrorDetailsErrorType`);
/// ours outside them are `unknown`.
fn junction_error_type(ours: Option<ConnectionErrorType>) -> String {
    match ours {
        Some(
            t @ (ConnectionErrorType::TokenRefreshFailed
            | ConnectionErrorType::RequiredScopesNotGranted
            | ConnectionErrorType::DeregisteredPerProvider),
        ) => t.to_string(),
        _ => ConnectionErrorType::Unknown.to_string(),
    }
}

#[utoipa::path(get, path = "/user/providers/{user_id}", tag = "junction", operation_id = "v2_connected_providers",
    params(("user_id" = Uuid, Path)),
    responses((status = 200, description = "the user's connections", body = ConnectedProviders)))]
pub async fn connected_providers(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(user): Path<String>,
) -> ApiResult<Json<ConnectedProviders>> {
    let user = parse_user_id(&user)?;
    user_of(&s, &team, user).await?;
    let mut out = Vec::new();
    for c in live_connections(&s, team.id, user).await? {
        let Some(p) = providers::find(&c.provider) else {
            continue;
        };
        let updated = s
            .store
            .connection_changed_at(c.id)
            .await?
            .unwrap_or(c.created_at);
        let error_details =
            (c.status == ConnectionStatus::Error).then(|| ClientFacingConnectionErrorDetails {
                error_type: junction_error_type(c.error_type),
                error_message: c.error_message.clone().unwrap_or_default(),
                errored_at: format_ms(updated),
            });
        out.push(ClientFacingProviderWithStatus {
            name: p.manifest.name.clone(),
            slug: junction_slug(p.id()).to_string(),
            logo: String::new(),
            created_on: format_ms(c.created_at),
            status: c.status.to_string(),
            external_user_id: c.external_user_id.clone(),
            error_details,
            resource_availability: p
                .manifest
                .resources
                .iter()
                .map(|r| {
                    (
                        r.name.to_string(),
                        ResourceAvailability {
                            status: "available".to_string(),
                        },
                    )
                })
                .collect(),
        });
    }
    Ok(Json(ConnectedProviders { providers: out }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RefreshParams {
    /// Junction's wait for the refresh, in seconds: taken and ignored, since the gateway
    /// only schedules the polls and answers at once.
    #[serde(default)]
    #[param(minimum = 0)]
    #[allow(dead_code)] // parsed so the request is valid, not used (see above)
    timeout: Option<f64>,
}

/// Junction's `UserRefreshSuccessResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserRefreshSuccessResponse {
    success: bool,
    user_id: Uuid,
    /// Connections whose polls now run.
    refreshed_sources: Vec<String>,
    /// Always empty: a refresh is scheduled, never awaited.
    in_progress_sources: Vec<String>,
    /// Connections in error, which a refresh does not poll.
    failed_sources: Vec<String>,
}

/// Polls the user's connections now (at most every 10 s per user; sooner is a 429).
#[utoipa::path(post, path = "/user/refresh/{user_id}", tag = "junction", operation_id = "v2_refresh_user",
    params(("user_id" = Uuid, Path), RefreshParams),
    responses((status = 200, description = "polls scheduled", body = UserRefreshSuccessResponse),
              (status = 429, description = "refreshed moments ago", body = JunctionError)))]
pub async fn refresh_user(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(user): Path<String>,
    Query(_): Query<RefreshParams>,
) -> ApiResult<Json<UserRefreshSuccessResponse>> {
    let user = parse_user_id(&user)?;
    // Its count of scheduled polls has no place in Junction's answer.
    let _ = connect::refresh(State(s.clone()), Auth(team.clone()), Path(user.to_string())).await?;
    let connections = live_connections(&s, team.id, user).await?;
    let slugs = |status: ConnectionStatus| -> Vec<String> {
        connections
            .iter()
            .filter(|c| c.status == status)
            .map(|c| junction_slug(&c.provider).to_string())
            .collect()
    };
    Ok(Json(UserRefreshSuccessResponse {
        success: true,
        user_id: user,
        refreshed_sources: slugs(ConnectionStatus::Connected),
        in_progress_sources: Vec::new(),
        failed_sources: slugs(ConnectionStatus::Error),
    }))
}

/// Ends the user's connection to a provider: its jobs stop and
/// `provider.connection.deleted` is published.
#[utoipa::path(delete, path = "/user/{user_id}/{provider}", tag = "junction", operation_id = "v2_deregister_provider",
    params(("user_id" = Uuid, Path), ("provider" = String, Path, description = "Junction's slug (`whoop_v2`) or ours (`whoop`)")),
    responses((status = 200, description = "deregistered", body = UserSuccessResponse)))]
pub async fn deregister_provider(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path((user, provider)): Path<(String, String)>,
) -> ApiResult<Json<UserSuccessResponse>> {
    let user = parse_user_id(&user)?;
    let p = path_provider(&provider)?;
    connect::deregister(
        State(s),
        Auth(team),
        Path((user.to_string(), p.id().to_string())),
    )
    .await?;
    Ok(Json(UserSuccessResponse { success: true }))
}

#[cfg(test)]
mod tests {
    use super::junction_error_type;
    use crate::states::ConnectionErrorType;

    #[test]
    fn connection_error_types_outside_junctions_list_are_unknown() {
        assert_eq!(
            junction_error_type(Some(ConnectionErrorType::TokenRefreshFailed)),
            "token_refresh_failed"
        );
        assert_eq!(
            junction_error_type(Some(ConnectionErrorType::ProviderApiError)),
            "unknown"
        );
        assert_eq!(junction_error_type(None), "unknown");
    }
}
