//! Providers and connections: the provider list, link tokens, the OAuth round trip
//! (link URL → provider consent → callback → the app's `redirect_url`), a user's
//! connections with backfill progress, deregistration and on-demand polling.
//!
//! The link and callback routes are opened by the end user's browser, so they take no
//! API key: the single-use link token and the sealed, expiring `state` carry the
//! authority instead. Every failure after the link is known ends at the app's
//! `redirect_url` with `state=error&error_type=…`, and nothing is half-created: the
//! connection, its jobs and its event are written in one transaction.

use std::num::NonZeroU32;
use std::sync::OnceLock;

use axum::extract::{Path, Query as AxumQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{parse_id, Auth, Body};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::events::{format_ms, ConnectionRef, Envelope, Resource};
use crate::now_ms;
use crate::providers::{self, Provider};
use crate::seal::Purpose;
use crate::states::ConnectionStatus;
use crate::store::SealedTokens;

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderResource {
    name: String,
    /// `summary` (read from /v1/summary) or `timeseries` (from /v1/timeseries).
    kind: String,
    /// How many days one backfill window of it spans.
    backfill_window_days: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    slug: String,
    name: String,
    resources: Vec<ProviderResource>,
    /// How far back the backfill reaches.
    history_days: u32,
    /// How many days one backfill window spans (a resource may span fewer: see its own).
    backfill_window_days: u32,
    poll_interval_secs: u64,
    lookback_days: u32,
    rate_limit: crate::providers::RateLimitSpec,
    /// How the provider pushes notifications (absent: polling only).
    #[serde(skip_serializing_if = "Option::is_none")]
    push: Option<crate::providers::push::PushSpec>,
    /// Where it pushes: `/v1/providers/{provider}/notifications` under the public URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    notification_url: Option<String>,
    /// The app's subscriptions to its notifications, with their state and last error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscriptions: Vec<crate::store::PushSubscription>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderList {
    data: Vec<ProviderView>,
}

#[utoipa::path(get, path = "/providers", tag = "providers", responses((status = 200, description = "every provider", body = ProviderList)))]
pub async fn list_providers(
    State(s): State<AppState>,
    Auth(_): Auth,
) -> ApiResult<Json<ProviderList>> {
    let subs = s.store.push_subscriptions(None).await?;
    let data = providers::registry()
        .iter()
        .map(|p| {
            let m = &p.manifest;
            ProviderView {
                slug: m.id.clone(),
                name: m.name.clone(),
                resources: m
                    .resources
                    .iter()
                    .map(|r| ProviderResource {
                        name: r.name.to_string(),
                        kind: r.kind.clone(),
                        backfill_window_days: p.window_days(r.name),
                    })
                    .collect(),
                history_days: m.history_days,
                backfill_window_days: m.window_days,
                poll_interval_secs: m.poll_interval_secs,
                lookback_days: m.lookback_days,
                rate_limit: m.rate_limit.clone(),
                push: m.push.clone(),
                notification_url: m.push.as_ref().map(|_| s.subscriber.callback_url(p)),
                subscriptions: subs
                    .iter()
                    .filter(|x| x.provider == m.id && x.connection_id.is_none())
                    .cloned()
                    .collect(),
            }
        })
        .collect();
    Ok(Json(ProviderList { data }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    user_id: Uuid,
    /// Straight to this provider's consent screen; without it, the Link page lets the
    /// user choose among every provider.
    #[serde(default)]
    provider: Option<String>,
    /// Where the user lands afterwards, with `state=success|error`.
    #[schema(format = "uri", max_length = 2048)]
    redirect_url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkToken {
    link_token: String,
    /// Send the end user here.
    link_url: String,
    expires_at: String,
}

#[utoipa::path(post, path = "/link/token", tag = "connect", request_body = LinkRequest,
    responses((status = 201, description = "a single-use link", body = LinkToken, links(
        ("open" = (operation_id = "open_link", parameters(("token" = "$response.body#/link_token")))),
        ("open_provider" = (operation_id = "open_link_provider", parameters(("token" = "$response.body#/link_token")))),
    ))))]
pub async fn create_link_token(
    State(s): State<AppState>,
    Auth(team): Auth,
    Body(req): Body<LinkRequest>,
) -> ApiResult<(StatusCode, Json<LinkToken>)> {
    s.store
        .get_user(team.id, req.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let provider = match req.provider.as_deref() {
        Some(id) => providers::find(id)
            .ok_or_else(|| ApiError::validation(format!("provider: unknown provider `{id}`")))?
            .id(),
        // Stored as "": the user picks on the Link page.
        None => "",
    };
    match url::Url::parse(&req.redirect_url) {
        Ok(u)
            if (u.scheme() == "https" || u.scheme() == "http")
                && req.redirect_url.chars().count() <= 2048 => {}
        _ => {
            return Err(ApiError::validation(
                "redirect_url: must be an absolute http(s) URL of at most 2048 characters",
            ))
        }
    }
    let token = crate::seal::random_token(24);
    let ttl = s.config.link_token_ttl_secs as i64 * 1000;
    let expires = s
        .store
        .create_link_token(
            &token,
            team.id,
            req.user_id,
            provider,
            &req.redirect_url,
            ttl,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(LinkToken {
            link_url: format!("{}/v1/link/{token}", s.public_url.trim_end_matches('/')),
            link_token: token,
            expires_at: format_ms(expires),
        }),
    ))
}

/// What the sealed OAuth `state` carries through the provider's consent screen. The
/// names on the wire are one letter each: the state travels in two URLs.
#[derive(Debug, Serialize, Deserialize)]
struct OAuthState {
    #[serde(rename = "l")]
    link_token: String,
    #[serde(rename = "p")]
    provider: String,
    #[serde(rename = "v")]
    pkce_verifier: Option<String>,
    /// Unix ms.
    #[serde(rename = "e")]
    expires_at: i64,
    /// Started from the Link page: outcomes go back to it, not straight to the app.
    #[serde(rename = "pg", default)]
    from_page: bool,
}

fn back_to_app(redirect_url: &str, pairs: &[(&str, &str)]) -> Response {
    let mut url = match url::Url::parse(redirect_url) {
        Ok(u) => u,
        Err(_) => {
            return ApiError::bad_request("the link's redirect_url is invalid").into_response()
        }
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    Redirect::to(url.as_str()).into_response()
}

fn error_redirect(redirect_url: &str, provider: &str, error_type: &str) -> Response {
    back_to_app(
        redirect_url,
        &[
            ("state", "error"),
            ("provider", provider),
            ("error_type", error_type),
        ],
    )
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkPageQuery {
    state: Option<String>,
    provider: Option<String>,
    error_type: Option<String>,
}

/// Opened by the end user. A link for one provider goes straight to its consent
/// screen; a link without one opens the Link page (see `link_page.rs`).
#[utoipa::path(get, path = "/link/{token}", tag = "connect", security(()), params(("token" = String, Path), LinkPageQuery),
    responses((status = 200, description = "the Link page", content_type = "text/html", body = String),
              (status = 303, description = "to the provider's consent screen, or the app's `redirect_url` with an error")))]
pub async fn open_link(
    State(s): State<AppState>,
    Path(token): Path<String>,
    AxumQuery(q): AxumQuery<LinkPageQuery>,
) -> ApiResult<Response> {
    let link = s
        .store
        .get_link_token(&token)
        .await?
        .ok_or_else(|| ApiError::not_found("link"))?;
    if link.provider.is_empty() {
        return link_page(&s, &token, &link, &q).await;
    }
    if link.used_at.is_some() {
        return Ok(error_redirect(
            &link.redirect_url,
            &link.provider,
            "link_already_used",
        ));
    }
    if link.expires_at <= now_ms() {
        return Ok(error_redirect(
            &link.redirect_url,
            &link.provider,
            "link_expired",
        ));
    }
    let p = providers::find(&link.provider).ok_or_else(|| ApiError::not_found("provider"))?;
    start_oauth(&s, token, p, link.expires_at, false)
}

/// The Link page's Connect buttons: the consent screen of the provider chosen.
#[utoipa::path(get, path = "/link/{token}/{provider}", tag = "connect", security(()), params(("token" = String, Path), ("provider" = String, Path)),
    responses((status = 303, description = "to the provider's consent screen, or back to the Link page")))]
pub async fn open_link_provider(
    State(s): State<AppState>,
    Path((token, provider)): Path<(String, String)>,
) -> ApiResult<Response> {
    let link = s
        .store
        .get_link_token(&token)
        .await?
        .ok_or_else(|| ApiError::not_found("link"))?;
    let p = providers::find(&provider).ok_or_else(|| ApiError::not_found("provider"))?;
    if !link.provider.is_empty() && link.provider != p.id() {
        return Err(ApiError::not_found("provider"));
    }
    if link.used_at.is_some() || link.expires_at <= now_ms() {
        // The page explains either case.
        return Ok(Redirect::to(&page_url(&s, &token, &[])).into_response());
    }
    start_oauth(&s, token, p, link.expires_at, link.provider.is_empty())
}

fn start_oauth(
    s: &AppState,
    token: String,
    p: &'static Provider,
    expires_at: i64,
    from_page: bool,
) -> ApiResult<Response> {
    let oauth = s.oauth.for_provider(p);
    // The state is sealed (authentic and opaque) and expires with the link; the PKCE
    // verifier rides inside it, so nothing needs storing before the callback.
    let state = OAuthState {
        link_token: token,
        provider: p.id().to_string(),
        pkce_verifier: oauth.new_pkce_verifier(),
        expires_at,
        from_page,
    };
    let sealed = s.sealer.seal(
        Purpose::OAuthState,
        &serde_json::to_string(&state).expect("state serialises"),
    );
    let url = oauth
        .authorize_url(&sealed, state.pkce_verifier.as_deref())
        .map_err(ApiError::internal)?;
    Ok(Redirect::to(&url).into_response())
}

fn page_url(s: &AppState, token: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = format!("{}/v1/link/{token}", s.public_url.trim_end_matches('/'));
    if !pairs.is_empty() {
        url.push('?');
        url.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish(),
        );
    }
    url
}

fn app_url(redirect_url: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_url) {
        Ok(mut u) => {
            u.query_pairs_mut().extend_pairs(pairs);
            u.to_string()
        }
        Err(_) => redirect_url.to_string(),
    }
}

async fn link_page(
    s: &AppState,
    token: &str,
    link: &crate::store::LinkToken,
    q: &LinkPageQuery,
) -> ApiResult<Response> {
    use super::link_page::{render, Banner, Row};
    let spent = link.used_at.is_some();
    let expired = link.expires_at <= now_ms();
    let known = |p: &Option<String>| {
        p.as_deref()
            .and_then(providers::find)
            .map(|p| p.id().to_string())
    };
    let banner = match (q.state.as_deref(), known(&q.provider)) {
        (Some("success"), Some(p)) if spent => Banner::Success {
            continue_href: app_url(
                &link.redirect_url,
                &[("state", "success"), ("provider", &p)],
            ),
            provider: p,
        },
        _ if spent => Banner::Spent {
            back_href: app_url(
                &link.redirect_url,
                &[("state", "error"), ("error_type", "link_already_used")],
            ),
        },
        _ if expired => Banner::Expired {
            back_href: app_url(
                &link.redirect_url,
                &[("state", "error"), ("error_type", "link_expired")],
            ),
        },
        (Some("error"), p) => {
            let error_type = match q.error_type.as_deref() {
                Some(e @ ("access_denied" | "token_exchange_failed" | "provider_error")) => {
                    e.to_string()
                }
                _ => "provider_error".to_string(),
            };
            let mut back = vec![("state", "error"), ("error_type", error_type.as_str())];
            if let Some(p) = p.as_deref() {
                back.push(("provider", p));
            }
            Banner::Error {
                back_href: app_url(&link.redirect_url, &back),
                provider: p,
                error_type,
            }
        }
        _ => Banner::None,
    };
    let connections = s.store.user_connections(link.team_id, link.user_id).await?;
    let rows: Vec<Row> = providers::registry()
        .iter()
        .map(|p| Row {
            provider: p,
            status: connections
                .iter()
                .filter(|c| c.provider == p.id() && c.status != ConnectionStatus::Deregistered)
                .map(|c| c.status)
                .next(),
            connect_href: (!spent && !expired)
                .then(|| format!("{}/{}", page_url(s, token, &[]), p.id())),
        })
        .collect();
    let html = render(&rows, &banner);
    Ok((
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::response::Html(html),
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// The provider sends the user back here with a code (or an error).
#[utoipa::path(get, path = "/oauth/callback/{provider}", tag = "connect", security(()), params(("provider" = String, Path), CallbackQuery),
    responses((status = 303, description = "to the app's `redirect_url` (or the Link page) with the outcome")))]
pub async fn callback(
    State(s): State<AppState>,
    Path(provider): Path<String>,
    AxumQuery(q): AxumQuery<CallbackQuery>,
) -> ApiResult<Response> {
    let invalid =
        || ApiError::bad_request("invalid or expired OAuth state; start again from a new link");
    let sealed = q.state.as_deref().ok_or_else(invalid)?;
    let state: OAuthState = s
        .sealer
        .open(Purpose::OAuthState, sealed)
        .ok()
        .and_then(|j| serde_json::from_str(&j).ok())
        .ok_or_else(invalid)?;
    if state.provider != provider {
        return Err(invalid());
    }
    let link = s
        .store
        .get_link_token(&state.link_token)
        .await?
        .ok_or_else(invalid)?;
    let p: &'static Provider =
        providers::find(&provider).ok_or_else(|| ApiError::not_found("provider"))?;
    // From the Link page, outcomes go back to the page (which can retry); otherwise
    // straight to the app.
    let fail = |error_type: &str| -> Response {
        if state.from_page {
            Redirect::to(&page_url(
                &s,
                &state.link_token,
                &[
                    ("state", "error"),
                    ("provider", &provider),
                    ("error_type", error_type),
                ],
            ))
            .into_response()
        } else {
            error_redirect(&link.redirect_url, &provider, error_type)
        }
    };
    if state.expires_at <= now_ms() || link.expires_at <= now_ms() {
        return Ok(fail("link_expired"));
    }
    // Single use: a replayed callback (or a second tab) gets an error, not a second
    // connection. A Link page link is spent only by a success, so the user can retry.
    if !state.from_page && !s.store.use_link_token(&state.link_token).await? {
        return Ok(fail("link_already_used"));
    }
    if let Some(err) = q.error.as_deref() {
        let kind = if err == "access_denied" {
            "access_denied"
        } else {
            "provider_error"
        };
        return Ok(fail(kind));
    }
    let Some(code) = q.code.as_deref() else {
        return Ok(fail("provider_error"));
    };
    // The identity request a code exchange makes (Oura, WHOOP, Google) is a data
    // request: paid for from the provider's shared budget like any other.
    let reservation = match (p.adapter.identity_request(), s.poller.budgets()) {
        (Some(_), Some(b)) => {
            b.take_waiting(p, link.user_id, std::time::Duration::from_secs(30))
                .await
        }
        _ => None,
    };
    let exchanged = s
        .oauth
        .for_provider(p)
        .exchange_code(code, state.pkce_verifier.clone())
        .await;
    if let (Some(b), Some(r)) = (s.poller.budgets(), reservation) {
        b.settle(p, r).await;
    }
    let tokens = match exchanged {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(provider, error = %e, "code exchange failed");
            return Ok(fail("token_exchange_failed"));
        }
    };
    if let Err(e) = s
        .oauth
        .for_provider(p)
        .register_user(&tokens, &link.user_id.to_string())
        .await
    {
        tracing::warn!(provider, error = %e, "registering the user with the provider failed");
        return Ok(fail("provider_error"));
    }
    if state.from_page && !s.store.use_link_token(&state.link_token).await? {
        return Ok(fail("link_already_used"));
    }
    let user = s
        .store
        .get_user(link.team_id, link.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let sealed = SealedTokens {
        access: s.sealer.seal(Purpose::ProviderAccessToken, &tokens.access),
        refresh: tokens
            .refresh
            .as_deref()
            .map(|r| s.sealer.seal(Purpose::ProviderRefreshToken, r)),
        expires_at: tokens.expires_in.map(|d| now_ms() + d.as_millis() as i64),
    };
    let conn = ConnectionRef {
        id: Uuid::new_v4(),
        team_id: link.team_id,
        user_id: user.user_id,
        client_user_id: user.client_user_id.clone(),
        provider: p.event_ref(),
    };
    let resume = s
        .store
        .resume_point(link.team_id, user.user_id, p.id())
        .await?;
    let jobs = crate::poller::plan::connect_jobs(p, now_ms(), resume);
    let resources: Vec<Resource> = p.manifest.resources.iter().map(|r| r.name).collect();
    let event = Envelope::connection_created(&conn, tokens.external_user_id.as_deref(), &resources);
    s.store
        .create_connection(
            conn.id,
            link.team_id,
            user.user_id,
            p.id(),
            tokens.external_user_id.as_deref(),
            &sealed,
            &jobs,
            &event,
        )
        .await?;
    // Where the provider subscribes per user (Withings), the user's subscriptions.
    if let Some(c) = s.store.get_connection(conn.id).await? {
        s.subscriber.subscribe_user(p, &c, &tokens.access).await;
    }
    if state.from_page {
        return Ok(Redirect::to(&page_url(
            &s,
            &state.link_token,
            &[("state", "success"), ("provider", p.id())],
        ))
        .into_response());
    }
    Ok(back_to_app(
        &link.redirect_url,
        &[("state", "success"), ("provider", p.id())],
    ))
}

/// The latest backfill of one resource: the one planned on connect, or the latest
/// re-pull (`POST /v1/user/{user_id}/{provider}/backfill`).
#[derive(Debug, Serialize, ToSchema)]
pub struct BackfillProgress {
    resource: String,
    /// The re-pull this is; null for the backfill planned on connect.
    backfill_id: Option<String>,
    /// `running`, `done`, or `failed` (some windows failed; `last_error` says why).
    status: String,
    windows_done: i64,
    windows_failed: i64,
    windows_total: i64,
    /// The range this backfill covers.
    start: String,
    end: String,
    /// Start of the oldest window stored so far.
    oldest_date_reached: Option<String>,
    last_error: Option<String>,
}

impl From<crate::store::Progress> for BackfillProgress {
    fn from(p: crate::store::Progress) -> Self {
        let status = if p.running {
            "running"
        } else if p.windows_failed > 0 {
            "failed"
        } else {
            "done"
        };
        BackfillProgress {
            resource: p.resource,
            backfill_id: p.backfill_id,
            status: status.into(),
            windows_done: p.windows_done,
            windows_failed: p.windows_failed,
            windows_total: p.windows_total,
            start: format_ms(p.start),
            end: format_ms(p.end),
            oldest_date_reached: p.oldest_date_reached.map(format_ms),
            last_error: p.last_error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    provider: String,
    /// `connected`, `error` or `deregistered`.
    status: String,
    external_user_id: Option<String>,
    error_type: Option<String>,
    error_message: Option<String>,
    created_at: String,
    backfill: Vec<BackfillProgress>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionList {
    data: Vec<ConnectionView>,
}

#[utoipa::path(get, path = "/user/{user_id}/providers", tag = "connect", params(("user_id" = Uuid, Path)),
    responses((status = 200, description = "the user's connections with backfill progress per resource", body = ConnectionList)))]
pub async fn user_connections(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(user): Path<String>,
) -> ApiResult<Json<ConnectionList>> {
    let user = parse_id(&user, "user")?;
    s.store
        .get_user(team.id, user)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let mut data = Vec::new();
    for c in s.store.user_connections(team.id, user).await? {
        let backfill = s
            .store
            .backfill_progress(c.id)
            .await?
            .into_iter()
            .map(BackfillProgress::from)
            .collect();
        data.push(ConnectionView {
            provider: c.provider,
            status: c.status.to_string(),
            external_user_id: c.external_user_id,
            error_type: c.error_type.map(|t| t.to_string()),
            error_message: c.error_message,
            created_at: format_ms(c.created_at),
            backfill,
        });
    }
    Ok(Json(ConnectionList { data }))
}

#[utoipa::path(delete, path = "/user/{user_id}/{provider}", tag = "connect", params(("user_id" = Uuid, Path), ("provider" = String, Path)),
    responses((status = 204, description = "deregistered: its jobs stop and `provider.connection.deleted` is published")))]
pub async fn deregister(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path((user, provider)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let user = parse_id(&user, "user")?;
    let conn = s
        .store
        .user_connections(team.id, user)
        .await?
        .into_iter()
        .find(|c| c.provider == provider && c.status != ConnectionStatus::Deregistered)
        .ok_or_else(|| ApiError::not_found("connection"))?;
    let p = providers::find(&provider).ok_or_else(|| ApiError::not_found("provider"))?;
    let event = Envelope::connection_deleted(&conn.event_ref(p.event_ref()));
    if let Ok(token) = s
        .sealer
        .open(Purpose::ProviderAccessToken, &conn.access_token_sealed)
    {
        s.subscriber.unsubscribe_user(p, &conn, &token).await;
    }
    crate::oauth::deregister_at_provider(&s.oauth.for_provider(p), &s.sealer, &conn).await;
    s.store
        .end_connection(conn.id, ConnectionStatus::Deregistered, None, &event)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// A date (`2026-11-01`) or an RFC 3339 instant: the oldest data to pull again.
    start_date: String,
    /// A date (its whole day is included) or an RFC 3339 instant; at most now.
    end_date: String,
    /// The resources to pull again; every resource of the provider when absent or empty.
    #[serde(default)]
    resources: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackfillQueued {
    /// Identifies this re-pull in the connection's progress.
    backfill_id: String,
    resources: Vec<String>,
    /// Windows queued over all resources; each publishes `historical.data.*` with
    /// `is_final` on its resource's last.
    windows: usize,
    start: String,
    end: String,
}

/// `POST /v1/user/{user_id}/{provider}/backfill`: pulls a range of history again.
#[utoipa::path(post, path = "/user/{user_id}/{provider}/backfill", tag = "connect",
    params(("user_id" = Uuid, Path), ("provider" = String, Path)),
    request_body = BackfillRequest,
    responses((status = 202, description = "queued: windows newest first, paced by the provider's budget", body = BackfillQueued),
              (status = 404, description = "no such user or connection", body = crate::error::ErrorBody),
              (status = 409, description = "a backfill of one of these resources is still running", body = crate::error::ErrorBody),
              (status = 422, description = "a bad range or resource, or a range beyond the provider's history", body = crate::error::ErrorBody)))]
pub async fn backfill(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path((user, provider)): Path<(String, String)>,
    Body(req): Body<BackfillRequest>,
) -> ApiResult<(StatusCode, Json<BackfillQueued>)> {
    let user = parse_id(&user, "user")?;
    let p = providers::find(&provider).ok_or_else(|| ApiError::not_found("provider"))?;
    let conn = s
        .store
        .user_connections(team.id, user)
        .await?
        .into_iter()
        .find(|c| c.provider == provider && c.status == ConnectionStatus::Connected)
        .ok_or_else(|| ApiError::not_found("connection"))?;
    let start = super::data::bound(&req.start_date, "start_date", false)?;
    let end = super::data::bound(&req.end_date, "end_date", true)?;
    let resources = req
        .resources
        .iter()
        .map(|r| {
            r.parse::<Resource>()
                .map_err(|_| ApiError::validation(format!("resources: unknown resource `{r}`")))
        })
        .collect::<ApiResult<Vec<Resource>>>()?;
    let backfill_id = Uuid::new_v4().to_string();
    let now = s.store.clock().now_ms();
    let jobs = crate::poller::plan::repull_jobs(p, &resources, start, end, now, &backfill_id)
        .map_err(|e| ApiError::validation(e.to_string()))?;
    let mut names: Vec<String> = jobs.iter().map(|j| j.resource.to_string()).collect();
    names.dedup();
    let (first, last) = (
        jobs.iter().map(|j| j.window_start).min().unwrap_or(start),
        jobs.iter().map(|j| j.window_end).max().unwrap_or(end),
    );
    match s.store.queue_repull(conn.id, &jobs).await? {
        Ok(()) => Ok((
            StatusCode::ACCEPTED,
            Json(BackfillQueued {
                backfill_id,
                resources: names,
                windows: jobs.len(),
                start: format_ms(first),
                end: format_ms(last),
            }),
        )),
        Err(crate::store::RepullConflict::Running(rs)) => Err(ApiError::conflict(format!(
            "a backfill of {} is still running; try again when it is done",
            rs.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
        ))),
        Err(crate::store::RepullConflict::NotConnected) => Err(ApiError::not_found("connection")),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshScheduled {
    polls_scheduled: u64,
}

/// `POST /v1/user/{id}/refresh`: poll now, at most once per 10 s per user.
#[utoipa::path(post, path = "/user/{user_id}/refresh", tag = "connect", params(("user_id" = Uuid, Path)),
    responses((status = 202, description = "polls scheduled", body = RefreshScheduled),
              (status = 429, description = "refreshed moments ago", body = crate::error::ErrorBody)))]
pub async fn refresh(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(user): Path<String>,
) -> ApiResult<(StatusCode, Json<RefreshScheduled>)> {
    static LIMITER: OnceLock<DefaultKeyedRateLimiter<Uuid>> = OnceLock::new();
    let user = parse_id(&user, "user")?;
    s.store
        .get_user(team.id, user)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let limiter = LIMITER.get_or_init(|| {
        RateLimiter::keyed(
            Quota::with_period(std::time::Duration::from_secs(10))
                .expect("non-zero")
                .allow_burst(NonZeroU32::new(1).expect("1")),
        )
    });
    if limiter.check_key(&user).is_err() {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "this user was refreshed moments ago; try again in a few seconds",
        ));
    }
    let n = s.store.poll_now(team.id, user).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RefreshScheduled { polls_scheduled: n }),
    ))
}
