//! `/v2/link…`: link tokens with Junction's `link_web_url`, the provider OAuth link as
//! JSON (Junction's custom-widget flow), and the end of a link flow in Junction's
//! vocabulary.
//!
//! A `/v2` link token is a `/v1` one whose `redirect_url` is this gateway's
//! `/v2/link/complete?r=<the app's URL, sealed>`: the `/v1` connect flow runs unchanged
//! and ends there, and that route forwards the user to the app with Junction's query
//! (`state=success`, or `state=error&error_type=…&error=…`, see
//! https://docs.junction.com/wearables/connecting-providers/errors). The app's URL is
//! sealed so the route cannot be used to send people anywhere else.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::super::{connect, Auth, Body, Query};
use super::{field_provider, junction_slug, path_provider, LINK_TOKEN_HEADER};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::now_ms;
use crate::seal::Purpose;

/// The longest `redirect_url` a `/v2` link takes: sealed and wrapped in the completion
/// URL it must still fit the 2048 characters a `/v1` link's `redirect_url` may have.
const MAX_REDIRECT_CHARS: usize = 1400;

/// Junction's `on_error` / `on_close`: the only value it documents is `redirect`, which
/// is what this gateway does.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkAction {
    Redirect,
}

/// Junction's `LinkTokenExchange`. Its `filter_on_providers` is not supported (refused
/// as an unknown field): leave `provider` out to let the user choose on the Link page.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkTokenExchange {
    user_id: Uuid,
    /// Straight to this provider's consent screen (Junction's slug, or ours).
    #[serde(default)]
    provider: Option<String>,
    /// Where the user lands afterwards, with Junction's `state` query; without it the
    /// flow ends on a page of this gateway saying how it went.
    #[serde(default)]
    #[schema(format = "uri", max_length = 1400)]
    redirect_url: Option<String>,
    #[serde(default)]
    #[allow(dead_code)] // the gateway always redirects
    on_error: Option<LinkAction>,
    #[serde(default)]
    #[allow(dead_code)] // the gateway always redirects
    on_close: Option<LinkAction>,
}

/// Junction's `LinkTokenExchangeResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkTokenExchangeResponse {
    link_token: String,
    /// Send the end user here: the provider's consent screen when the token names one,
    /// else the Link page.
    #[schema(format = "uri")]
    link_web_url: String,
}

/// A sealed value as a URL query value: base64's `+` and `/` become `-` and `_`, the
/// padding goes.
fn url_safe(sealed: &str) -> String {
    sealed
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// The inverse of [`url_safe`].
fn from_url_safe(raw: &str) -> String {
    let mut s = raw.replace('-', "+").replace('_', "/");
    let b64_len = s.split_once('.').map_or(s.len(), |(_, b)| b.len());
    s.extend(std::iter::repeat_n('=', (4 - b64_len % 4) % 4));
    s
}

/// The completion URL a `/v2` link token redirects to, carrying the app's URL sealed.
fn completion_url(s: &AppState, app_url: &str) -> String {
    let sealed = url_safe(&s.sealer.seal(Purpose::LinkRedirect, app_url));
    format!(
        "{}/v2/link/complete?r={sealed}",
        s.public_url.trim_end_matches('/')
    )
}

#[utoipa::path(post, path = "/link/token", tag = "junction", operation_id = "v2_link_token", request_body = LinkTokenExchange,
    responses((status = 200, description = "a single-use link token", body = LinkTokenExchangeResponse)))]
pub async fn link_token(
    State(s): State<AppState>,
    Auth(team): Auth,
    Body(req): Body<LinkTokenExchange>,
) -> ApiResult<Json<LinkTokenExchangeResponse>> {
    let provider = req
        .provider
        .as_deref()
        .map(|p| field_provider(p, "provider").map(|p| p.id()))
        .transpose()?;
    if let Some(u) = req.redirect_url.as_deref() {
        match url::Url::parse(u) {
            Ok(parsed)
                if (parsed.scheme() == "https" || parsed.scheme() == "http")
                    && u.chars().count() <= MAX_REDIRECT_CHARS => {}
            _ => {
                return Err(ApiError::validation(format!(
                    "`redirect_url` must be an absolute http(s) URL of at most {MAX_REDIRECT_CHARS} characters"
                )))
            }
        }
    }
    // The `/v1` handler's own request type, built from its documented JSON so its fields
    // stay private to it.
    let v1_req: connect::LinkRequest = serde_json::from_value(serde_json::json!({
        "user_id": req.user_id,
        "provider": provider,
        "redirect_url": completion_url(&s, req.redirect_url.as_deref().unwrap_or("")),
    }))
    .map_err(ApiError::internal)?;
    let (_, Json(token)) = connect::create_link_token(State(s), Auth(team), Body(v1_req)).await?;
    let token = serde_json::to_value(&token).map_err(ApiError::internal)?;
    let field = |k: &str| token[k].as_str().map(str::to_string);
    match (field("link_token"), field("link_url")) {
        (Some(link_token), Some(link_web_url)) => Ok(Json(LinkTokenExchangeResponse {
            link_token,
            link_web_url,
        })),
        _ => Err(ApiError::internal("the /v1 link token lacks its fields")),
    }
}

/// Junction's `Source`: a provider with, here, the URL of its consent screen.
#[derive(Debug, Serialize, ToSchema)]
pub struct Source {
    /// Its place in the gateway's registry (Junction's own numeric ids are not known).
    id: i64,
    name: String,
    slug: String,
    description: String,
    /// Always empty: the gateway hosts no provider logos.
    logo: String,
    group: Option<String>,
    /// Send the end user here.
    #[schema(format = "uri")]
    oauth_url: Option<String>,
    /// Always `oauth`.
    auth_type: Option<String>,
    /// Always `provider`.
    source_type: Option<String>,
    is_active: Option<bool>,
    /// How many days of history the backfill fetches.
    backfill_num_days: Option<i64>,
}

/// What a provider shares, in words, for Junction's `description`.
pub fn description(p: &crate::providers::Provider) -> String {
    let names: Vec<&str> = p
        .manifest
        .resources
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    format!("{}: {}", p.manifest.name, names.join(", "))
}

pub fn source(p: &'static crate::providers::Provider, oauth_url: Option<String>) -> Source {
    let id = crate::providers::registry()
        .iter()
        .position(|q| q.id() == p.id())
        .map_or(0, |i| i as i64 + 1);
    Source {
        id,
        name: p.manifest.name.clone(),
        slug: junction_slug(p.id()).to_string(),
        description: description(p),
        logo: String::new(),
        group: None,
        oauth_url,
        auth_type: Some("oauth".to_string()),
        source_type: Some("provider".to_string()),
        is_active: Some(true),
        backfill_num_days: Some(p.manifest.history_days as i64),
    }
}

fn link_error(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// The provider's consent screen for a link token, as JSON (Junction's custom-widget
/// flow: https://docs.junction.com/wearables/connecting-providers/custom_widget). Takes
/// the link token in `x-vital-link-token`, no API key. A token made for one provider
/// opens only that one; one made for none ends the flow on the Link page.
#[utoipa::path(get, path = "/link/provider/oauth/{oauth_provider}", tag = "junction", operation_id = "v2_oauth_link", security(()),
    params(("oauth_provider" = String, Path, description = "Junction's slug (`whoop_v2`) or ours"),
           ("x-vital-link-token" = String, Header, description = "the link token")),
    responses((status = 200, description = "the provider, with `oauth_url` to send the user to", body = Source)))]
pub async fn oauth_link(
    State(s): State<AppState>,
    Path(oauth_provider): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Source>> {
    let p = path_provider(&oauth_provider)?;
    let token = headers
        .get(LINK_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| link_error("invalid_token", "`x-vital-link-token` is required"))?;
    let link = s
        .store
        .get_link_token(token)
        .await?
        .ok_or_else(|| link_error("invalid_token", "the link token is not valid"))?;
    if link.used_at.is_some() {
        return Err(link_error(
            "token_consumed",
            "the link token was spent by a connection",
        ));
    }
    if link.expires_at <= now_ms() {
        return Err(link_error("token_expired", "the link token has expired"));
    }
    if !link.provider.is_empty() && link.provider != p.id() {
        return Err(link_error(
            "invalid_token",
            "the link token was made for another provider",
        ));
    }
    // The `/v1` route the Link page's buttons open answers with a redirect to the
    // consent screen; its target is the URL Junction returns.
    let res = connect::open_link_provider(State(s), Path((token.to_string(), p.id().to_string())))
        .await?;
    let url = res
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| ApiError::internal("no consent-screen URL"))?;
    Ok(Json(source(p, Some(url))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Outcome {
    /// The app's URL, sealed by the gateway.
    r: String,
    /// `success` or `error`, as the connect flow ended.
    state: Option<String>,
    provider: Option<String>,
    /// Ours: `access_denied`, `provider_error`, `token_exchange_failed`,
    /// `link_expired`, `link_already_used`.
    error_type: Option<String>,
}

/// Our connect-flow outcome as Junction's link error type, and its message.
fn junction_outcome(ours: &str) -> (&'static str, &'static str) {
    match ours {
        "link_expired" => ("token_expired", "The Link Token has expired."),
        "link_already_used" => (
            "token_consumed",
            "A successful connection had consumed this Link Token.",
        ),
        "access_denied" => (
            "provider_credential_error",
            "The user did not grant access at the provider.",
        ),
        "provider_error" => (
            "provider_credential_error",
            "An error occurred during the provider authentication flow.",
        ),
        _ => (
            "provider_api_error",
            "An unexpected error occurred when connecting to the provider API.",
        ),
    }
}

/// Where every `/v2` link flow ends: forwards the user to the app's `redirect_url`
/// with Junction's query (a 307, as Junction does), or, when the link had none, says
/// how it went on a page.
#[utoipa::path(get, path = "/link/complete", tag = "junction", operation_id = "v2_link_complete", security(()), params(Outcome),
    responses((status = 307, description = "to the app's `redirect_url` with `state=success`, or `state=error&error_type=…&error=…`"),
              (status = 200, description = "the outcome, when the link had no `redirect_url`", content_type = "text/html", body = String)))]
pub async fn complete(State(s): State<AppState>, Query(q): Query<Outcome>) -> ApiResult<Response> {
    let app_url = s
        .sealer
        .open(Purpose::LinkRedirect, &from_url_safe(&q.r))
        .map_err(|_| ApiError::not_found("link"))?;
    let success = q.state.as_deref() == Some("success");
    let pairs: Vec<(&str, &str)> = if success {
        vec![("state", "success")]
    } else {
        let (error_type, error) = junction_outcome(q.error_type.as_deref().unwrap_or(""));
        vec![
            ("state", "error"),
            ("error_type", error_type),
            ("error", error),
        ]
    };
    if app_url.is_empty() {
        let provider = q
            .provider
            .as_deref()
            .and_then(super::find_provider)
            .map_or("the provider", |p| p.manifest.name.as_str());
        let text = if success {
            format!("Connected to {provider}. You can close this window.")
        } else {
            format!("Could not connect to {provider}: {}", pairs[2].1)
        };
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>Wearbridge</title></head><body><p>{text}</p></body></html>"
        );
        return Ok(([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response());
    }
    let mut url = url::Url::parse(&app_url).map_err(ApiError::internal)?;
    url.query_pairs_mut().extend_pairs(&pairs);
    Ok(Redirect::temporary(url.as_str()).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_survives_the_trip_through_a_query() {
        let sealer = crate::seal::Sealer::from_master_key(&crate::seal::random_token(32)).unwrap();
        for app in [
            "",
            "https://app.example/done?x=1",
            &"https://a.example/".repeat(80),
        ] {
            let sealed = sealer.seal(Purpose::LinkRedirect, app);
            let carried = url_safe(&sealed);
            assert!(!carried.contains(['+', '/', '=']), "{carried}");
            assert_eq!(
                sealer
                    .open(Purpose::LinkRedirect, &from_url_safe(&carried))
                    .unwrap(),
                app
            );
        }
    }

    #[test]
    fn outcomes_take_junctions_link_error_types() {
        assert_eq!(junction_outcome("link_expired").0, "token_expired");
        assert_eq!(junction_outcome("link_already_used").0, "token_consumed");
        assert_eq!(
            junction_outcome("access_denied").0,
            "provider_credential_error"
        );
        assert_eq!(
            junction_outcome("token_exchange_failed").0,
            "provider_api_error"
        );
    }
}
