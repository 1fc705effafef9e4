//! Webhook endpoints: create (with a `webhook.test` event sent to it), read, update,
//! delete, reveal and rotate the secret, send a test event.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{parse_id, Auth, Body};
use crate::app::AppState;
use crate::delivery::sender::RESERVED_HEADERS;
use crate::error::{ApiError, ApiResult};
use crate::events::{format_ms, Envelope, EventType};
use crate::seal::{new_webhook_secret, validate_webhook_secret, Purpose};
use crate::store::{Endpoint, EndpointSpec, EndpointWriteError, Target};

/// The longest webhook URL a caller may send, in characters.
const MAX_URL_CHARS: usize = 2048;
/// The longest normalised URL (what is stored and shown back; ASCII, so characters are
/// bytes): it must fit PostgreSQL's limit for a btree index entry (2704 bytes with the
/// team id), and percent-encoding can make a URL within [`MAX_URL_CHARS`] up to 12
/// times as long.
const MAX_STORED_URL_BYTES: usize = 2600;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    consecutive_failures: i64,
    first_failure_at: Option<String>,
    last_success_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Endpoint)]
pub struct EndpointView {
    id: Uuid,
    url: String,
    description: String,
    event_types: Vec<String>,
    enabled: bool,
    disabled_reason: Option<String>,
    method: String,
    headers: BTreeMap<String, String>,
    rate_limit_per_sec: Option<i64>,
    health: Health,
    created_at: String,
    updated_at: String,
}

/// A new endpoint: the endpoint, its signing secret, and the `webhook.test` event sent
/// to it (none when created disabled).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    endpoint: EndpointView,
    secret: String,
    test_event_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    data: Vec<EndpointView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Secret {
    /// `whsec_…`
    key: String,
    /// While a rotation's grace period runs, the old secret signs too, until then.
    previous_key_valid_until: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestSent {
    event_id: Uuid,
}

impl From<Endpoint> for EndpointView {
    fn from(e: Endpoint) -> Self {
        EndpointView {
            id: e.id,
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            method: e.method,
            headers: e.headers,
            rate_limit_per_sec: e.rate_limit_per_sec,
            health: Health {
                consecutive_failures: e.consecutive_failures,
                first_failure_at: e.first_failure_at.map(format_ms),
                last_success_at: e.last_success_at.map(format_ms),
            },
            created_at: format_ms(e.created_at),
            updated_at: format_ms(e.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// `https` and public, unless the gateway allows otherwise; at most 2048 characters
    /// (and 2600 once normalised, with non-ASCII characters percent-encoded).
    #[schema(format = "uri", max_length = 2048)]
    url: String,
    #[serde(default)]
    #[schema(max_length = 1000)]
    description: String,
    /// Empty: every event type.
    #[serde(default)]
    event_types: Vec<String>,
    #[serde(default = "yes")]
    enabled: bool,
    /// `POST` (the envelope as the body) or `GET` (as query parameters).
    #[serde(default = "post")]
    #[schema(pattern = "^([Pp][Oo][Ss][Tt]|[Gg][Ee][Tt])$")]
    method: String,
    /// Sent with every delivery; `webhook-*` and hop-by-hop headers are ours.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "super::whole::option")]
    #[schema(minimum = 1, maximum = 100000)]
    rate_limit_per_sec: Option<i64>,
    /// A `whsec_` secret of your own; one is generated without it.
    #[serde(default)]
    secret: Option<String>,
}

fn yes() -> bool {
    true
}
fn post() -> String {
    "POST".into()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    #[schema(format = "uri", max_length = 2048)]
    url: Option<String>,
    #[schema(max_length = 1000)]
    description: Option<String>,
    event_types: Option<Vec<String>>,
    enabled: Option<bool>,
    #[schema(pattern = "^([Pp][Oo][Ss][Tt]|[Gg][Ee][Tt])$")]
    method: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    /// null removes the limit.
    #[serde(default, deserialize_with = "super::whole::double_option")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100000)]
    rate_limit_per_sec: Option<Option<i64>>,
}

/// Validates and normalises a spec; every problem is reported at once. `url_sent`: the
/// URL is the caller's (not the stored, already normalised one).
fn validate(state: &AppState, mut spec: EndpointSpec, url_sent: bool) -> ApiResult<EndpointSpec> {
    let mut problems = Vec::new();
    let policy = state.worker.sender().policy();
    // Bounded as sent, and as stored: the normalised URL (the (team, url) index on
    // PostgreSQL cannot hold a longer one).
    match policy.check_url(spec.url.trim()) {
        _ if url_sent && spec.url.chars().count() > MAX_URL_CHARS => problems.push(format!("url: at most {MAX_URL_CHARS} characters")),
        Ok(u) if u.as_str().len() > MAX_STORED_URL_BYTES => problems.push(format!(
            "url: at most {MAX_STORED_URL_BYTES} characters once normalised (non-ASCII and some other characters are percent-encoded)"
        )),
        Ok(u) => spec.url = u.to_string(),
        Err(refusal) => problems.push(format!("url: {refusal}")),
    }
    if spec.description.chars().count() > 1000 {
        problems.push("description: at most 1000 characters".into());
    }
    let unknown: Vec<&str> = spec
        .event_types
        .iter()
        .filter(|t| t.parse::<EventType>().is_err())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        problems.push(format!(
            "event_types: unknown event types: {} (see GET /v1/event-types)",
            unknown.join(", ")
        ));
    }
    spec.event_types.sort();
    spec.event_types.dedup();
    spec.method = spec.method.to_ascii_uppercase();
    if spec.method != "POST" && spec.method != "GET" {
        problems.push(format!(
            "method: must be POST or GET, not `{}`",
            spec.method
        ));
    }
    let mut headers = BTreeMap::new();
    for (k, v) in &spec.headers {
        let lower = k.to_ascii_lowercase();
        if HeaderName::from_bytes(k.as_bytes()).is_err() {
            problems.push(format!("headers: `{k}` is not a valid header name"));
        } else if RESERVED_HEADERS.contains(&lower.as_str()) {
            problems.push(format!(
                "headers: `{k}` is set by Wearbridge and cannot be overridden"
            ));
        } else if HeaderValue::from_str(v).is_err() {
            problems.push(format!(
                "headers: the value of `{k}` is not a valid header value"
            ));
        }
        headers.insert(lower, v.clone());
    }
    spec.headers = headers;
    if let Some(r) = spec.rate_limit_per_sec {
        if !(1..=100_000).contains(&r) {
            problems
                .push("rate_limit_per_sec: must be between 1 and 100000, or null for none".into());
        }
    }
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(ApiError::validation(problems.join("; ")))
    }
}

fn write_error(e: EndpointWriteError) -> ApiError {
    match e {
        EndpointWriteError::DuplicateUrl(url) => {
            ApiError::conflict(format!("this team already has an endpoint with URL {url}"))
        }
        EndpointWriteError::Db(e) => e.into(),
    }
}

async fn send_test_event(state: &AppState, team: Uuid, endpoint: Uuid) -> ApiResult<Uuid> {
    let id = Uuid::new_v4();
    let env = Envelope::webhook_test(id, team, endpoint);
    state
        .store
        .publish(team, &[env], Target::Endpoint(endpoint))
        .await?;
    Ok(id)
}

#[utoipa::path(post, path = "/webhooks/endpoints", tag = "webhooks", operation_id = "create_endpoint", request_body = CreateEndpoint,
    responses((status = 201, description = "created; a `webhook.test` event is on its way", body = CreatedEndpoint, links(
                  ("test_event" = (operation_id = "event_detail", parameters(("event_id" = "$response.body#/test_event_id")))),
              )),
              (status = 409, description = "the team has an endpoint with this URL", body = crate::error::ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    Auth(team): Auth,
    Body(req): Body<CreateEndpoint>,
) -> ApiResult<(StatusCode, Json<CreatedEndpoint>)> {
    let spec = validate(
        &s,
        EndpointSpec {
            url: req.url,
            description: req.description,
            event_types: req.event_types,
            enabled: req.enabled,
            method: req.method,
            headers: req.headers,
            rate_limit_per_sec: req.rate_limit_per_sec,
        },
        true,
    )?;
    let secret = match req.secret {
        Some(secret) => {
            validate_webhook_secret(&secret)
                .map_err(|m| ApiError::validation(format!("secret: {m}")))?;
            secret
        }
        None => new_webhook_secret(),
    };
    let ep = s
        .store
        .create_endpoint(
            team.id,
            &spec,
            &s.sealer.seal(Purpose::EndpointSecret, &secret),
        )
        .await
        .map_err(write_error)?;
    let test_event = if ep.enabled {
        Some(send_test_event(&s, team.id, ep.id).await?)
    } else {
        None
    };
    Ok((
        StatusCode::CREATED,
        Json(CreatedEndpoint {
            endpoint: ep.into(),
            secret,
            test_event_id: test_event,
        }),
    ))
}

#[utoipa::path(get, path = "/webhooks/endpoints", tag = "webhooks", operation_id = "list_endpoints", responses((status = 200, description = "the team's endpoints", body = EndpointList)))]
pub async fn list(State(s): State<AppState>, Auth(team): Auth) -> ApiResult<Json<EndpointList>> {
    let data = s
        .store
        .list_endpoints(team.id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(EndpointList { data }))
}

async fn load(s: &AppState, team: Uuid, raw: &str) -> ApiResult<Endpoint> {
    let id = parse_id(raw, "endpoint")?;
    s.store
        .get_endpoint(team, id)
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint"))
}

#[utoipa::path(get, path = "/webhooks/endpoints/{id}", tag = "webhooks", operation_id = "get_endpoint", params(("id" = Uuid, Path)), responses((status = 200, description = "the endpoint", body = EndpointView)))]
pub async fn get(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointView>> {
    Ok(Json(load(&s, team.id, &id).await?.into()))
}

#[utoipa::path(patch, path = "/webhooks/endpoints/{id}", tag = "webhooks", operation_id = "update_endpoint", params(("id" = Uuid, Path)), request_body = UpdateEndpoint,
    responses((status = 200, description = "updated", body = EndpointView), (status = 409, description = "the team has an endpoint with this URL", body = crate::error::ErrorBody)))]
pub async fn update(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(id): Path<String>,
    Body(req): Body<UpdateEndpoint>,
) -> ApiResult<Json<EndpointView>> {
    let ep = load(&s, team.id, &id).await?;
    let mut spec = EndpointSpec::from(&ep);
    let url_sent = req.url.is_some();
    if let Some(v) = req.url {
        spec.url = v;
    }
    if let Some(v) = req.description {
        spec.description = v;
    }
    if let Some(v) = req.event_types {
        spec.event_types = v;
    }
    if let Some(v) = req.enabled {
        spec.enabled = v;
    }
    if let Some(v) = req.method {
        spec.method = v;
    }
    if let Some(v) = req.headers {
        spec.headers = v;
    }
    if let Some(v) = req.rate_limit_per_sec {
        spec.rate_limit_per_sec = v;
    }
    let spec = validate(&s, spec, url_sent)?;
    let ep = s
        .store
        .update_endpoint(team.id, ep.id, &spec)
        .await
        .map_err(write_error)?
        .ok_or_else(|| ApiError::not_found("endpoint"))?;
    Ok(Json(ep.into()))
}

#[utoipa::path(delete, path = "/webhooks/endpoints/{id}", tag = "webhooks", operation_id = "delete_endpoint", params(("id" = Uuid, Path)), responses((status = 204, description = "deleted")))]
pub async fn delete(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let ep = load(&s, team.id, &id).await?;
    s.store.delete_endpoint(team.id, ep.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/webhooks/endpoints/{id}/secret", tag = "webhooks", params(("id" = Uuid, Path)), responses((status = 200, description = "the signing secret", body = Secret)))]
pub async fn secret(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Secret>> {
    let ep = load(&s, team.id, &id).await?;
    let key = s.sealer.open(Purpose::EndpointSecret, &ep.secret_sealed)?;
    let previous_valid = ep
        .previous_secret_expires_at
        .filter(|t| *t > crate::now_ms())
        .map(format_ms);
    Ok(Json(Secret {
        key,
        previous_key_valid_until: previous_valid,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// A `whsec_` secret of your own; a new one is generated without it.
    #[serde(default)]
    key: Option<String>,
}

#[utoipa::path(post, path = "/webhooks/endpoints/{id}/secret/rotate", tag = "webhooks", params(("id" = Uuid, Path)),
    request_body(content = Option<Rotate>, description = "optional (send no body, or `null`, for a generated secret)"),
    responses((status = 200, description = "the new secret; the old one keeps signing until `previous_key_valid_until`", body = Secret)))]
pub async fn rotate_secret(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(id): Path<String>,
    body: Option<Body<Rotate>>,
) -> ApiResult<Json<Secret>> {
    let ep = load(&s, team.id, &id).await?;
    // The body is optional: none (no `Content-Type`) or `null` generates a new key.
    let req = body.map(|Body(r)| r).unwrap_or_default();
    let key = match req.key {
        Some(k) => {
            validate_webhook_secret(&k).map_err(|m| ApiError::validation(format!("key: {m}")))?;
            k
        }
        None => new_webhook_secret(),
    };
    let grace_until = crate::now_ms() + (s.config.secret_rotation_grace_secs as i64) * 1000;
    s.store
        .rotate_endpoint_secret(
            team.id,
            ep.id,
            &s.sealer.seal(Purpose::EndpointSecret, &key),
            grace_until,
        )
        .await?;
    Ok(Json(Secret {
        key,
        previous_key_valid_until: Some(format_ms(grace_until)),
    }))
}

#[utoipa::path(post, path = "/webhooks/endpoints/{id}/test", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 202, description = "a `webhook.test` event is on its way", body = TestSent),
              (status = 409, description = "the endpoint is disabled", body = crate::error::ErrorBody)))]
pub async fn send_test(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<TestSent>)> {
    let ep = load(&s, team.id, &id).await?;
    if !ep.enabled {
        // The request is fine; the endpoint's state is what stands in the way.
        return Err(ApiError::conflict(
            "the endpoint is disabled; enable it first",
        ));
    }
    let event_id = send_test_event(&s, team.id, ep.id).await?;
    Ok((StatusCode::ACCEPTED, Json(TestSent { event_id })))
}
