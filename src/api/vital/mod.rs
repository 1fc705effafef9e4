//! The Junction-compatible API (`/v2`, Junction was formerly Vital): Junction's paths,
//! shapes and error bodies over the same handlers and store as `/v1`, so an app built
//! on Junction's SDKs switches by changing its base URL. Each handler here parses
//! Junction's request, calls the `/v1` handler (or, for plain reads, the store query)
//! that does the work, and maps the answer to Junction's models.
//!
//! The shapes follow Junction's OpenAPI document (`docs/swagger.json` in the
//! `tryVital/docs` repository, served at https://api.tryvital.io/openapi.json) and the
//! models of its Python SDK (PyPI `vital` 2.1.569, which `tests/vital_sdk.py` drives).
//! Where Junction has a field we cannot fill from what providers gave us, it is `null`
//! when optional; the few required ones we cannot know (a provider's `logo`, a sport's
//! numeric `id`) say so in their documentation.
//!
//! - [`users`]: users, their connections, refresh, deregistration, deletion;
//! - [`link`]: link tokens, the provider OAuth link as JSON, the end of a link flow;
//! - [`data`]: providers, summaries, timeseries (plain and grouped) and devices;
//! - [`introspect`]: per user, provider and resource, what is stored and the backfill.

mod data;
mod introspect;
mod link;
mod users;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::openapi::path::Operation;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::providers::{self, Provider};

/// The header Junction's SDKs send the team key in
/// (https://docs.junction.com/api-details/authentication).
pub const API_KEY_HEADER: &str = "x-vital-api-key";

/// The header Junction's link endpoints take the link token in.
pub const LINK_TOKEN_HEADER: &str = "x-vital-link-token";

/// Every `/v2` route, each registered with its documentation.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(users::get_user, users::delete_user))
        .routes(routes!(users::resolve_user))
        .routes(routes!(users::connected_providers))
        .routes(routes!(users::refresh_user))
        .routes(routes!(users::deregister_provider))
        .routes(routes!(link::link_token))
        .routes(routes!(link::oauth_link))
        .routes(routes!(link::complete))
        .routes(routes!(data::providers))
        .routes(routes!(data::sleep))
        .routes(routes!(data::activity))
        .routes(routes!(data::workouts))
        .routes(routes!(data::body))
        .routes(routes!(data::recovery))
        .routes(routes!(data::profile))
        .routes(routes!(data::timeseries))
        .routes(routes!(data::timeseries_grouped))
        .routes(routes!(data::user_devices))
        .routes(routes!(data::user_device))
        .routes(routes!(data::devices_raw))
        .routes(routes!(introspect::resources))
        .routes(routes!(introspect::historical_pull))
}

pub use crate::events::junction::junction_slug;
use crate::events::junction::JUNCTION_SLUGS;

/// A provider by Junction's slug or ours.
pub fn find_provider(slug: &str) -> Option<&'static Provider> {
    let ours = JUNCTION_SLUGS
        .iter()
        .find(|(_, theirs)| *theirs == slug)
        .map(|(ours, _)| *ours)
        .unwrap_or(slug);
    providers::find(ours)
}

/// A query parameter naming a provider: one of [`accepted_slugs`], or empty for any.
pub fn provider_param_schema() -> utoipa::openapi::schema::Object {
    let mut values = accepted_slugs();
    values.push(String::new());
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values))
        .description(Some(
            "A provider's slug (Junction's, or ours); empty for any.",
        ))
        .build()
}

/// Every slug a `/v2` route takes: Junction's, then ours where they differ.
pub fn accepted_slugs() -> Vec<String> {
    let mut slugs: Vec<String> = providers::registry()
        .iter()
        .map(|p| junction_slug(p.id()).to_string())
        .collect();
    for p in providers::registry() {
        if junction_slug(p.id()) != p.id() {
            slugs.push(p.id().to_string());
        }
    }
    slugs
}

/// A user id from a path. Junction's document types it `uuid` and refuses anything else
/// with a validation error (422), not a 404.
fn parse_user_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::validation("`user_id` must be a UUID"))
}

/// A provider named in a path: 404 when no such provider exists.
fn path_provider(slug: &str) -> ApiResult<&'static Provider> {
    find_provider(slug).ok_or_else(|| ApiError::not_found("provider"))
}

/// A provider named in a query or body: 422 naming the field when unknown.
fn field_provider(slug: &str, field: &str) -> ApiResult<&'static Provider> {
    find_provider(slug)
        .ok_or_else(|| ApiError::validation(format!("`{field}`: unknown provider `{slug}`")))
}

/// Junction's provider reference: `{name, slug, logo}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacingProvider {
    name: String,
    /// Junction's slug (`whoop_v2` for WHOOP).
    slug: String,
    /// Always empty: the gateway hosts no provider logos.
    logo: String,
}

impl ClientFacingProvider {
    fn of(p: &Provider) -> ClientFacingProvider {
        ClientFacingProvider {
            name: p.manifest.name.clone(),
            slug: junction_slug(p.id()).to_string(),
            logo: String::new(),
        }
    }
}

/// Junction's error body for every error but validation: FastAPI's `{"detail": …}`
/// carrying the fields of https://docs.junction.com/api-details/errors.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = JunctionError)]
pub struct JunctionError {
    detail: JunctionErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JunctionErrorDetail {
    /// Stable snake_case kind, e.g. `not_found`, `token_expired`.
    error_type: String,
    /// For people; may change.
    error_message: String,
    /// The HTTP status.
    error_code: u16,
    /// The conflicting user's id (a duplicate `client_user_id` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<Uuid>,
    /// The conflicting user's creation time (a duplicate `client_user_id` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    created_on: Option<String>,
}

/// Junction's validation error (FastAPI's `HTTPValidationError`), answered with 422.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = HTTPValidationError)]
pub struct HttpValidationError {
    detail: Vec<ValidationError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationError {
    /// Where: `body`, `query` or `path`, then the field when one is named.
    loc: Vec<String>,
    msg: String,
    /// Our error code, e.g. `validation_error`, `invalid_body`.
    #[serde(rename = "type")]
    kind: String,
}

/// The field an error message names: its first `` `quoted` `` word, or the word before a
/// leading `field:`.
fn named_field(message: &str) -> Option<&str> {
    let ident =
        |w: &&str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    message
        .split('`')
        .nth(1)
        .filter(ident)
        .or_else(|| message.split_once(':').map(|(w, _)| w).filter(ident))
}

/// Rewrites an error response of the `/v1` shape (`{"error": {"code", "message"}}`) in
/// Junction's: 422 as `HTTPValidationError`, others as [`JunctionError`]. Bodies
/// already in Junction's shape, successes and non-JSON answers pass untouched.
pub(super) async fn junction_errors(res: Response, in_query: bool) -> Response {
    let status = res.status();
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || !json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 1024 * 1024)
        .await
        .unwrap_or_default();
    let ours: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let (Some(code), Some(message)) = (
        ours["error"]["code"].as_str(),
        ours["error"]["message"].as_str(),
    ) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let body = if status == StatusCode::UNPROCESSABLE_ENTITY {
        let mut loc = vec![if in_query { "query" } else { "body" }.to_string()];
        loc.extend(named_field(message).map(str::to_string));
        json!(HttpValidationError {
            detail: vec![ValidationError {
                loc,
                msg: message.to_string(),
                kind: code.to_string(),
            }],
        })
    } else {
        json!(JunctionError {
            detail: JunctionErrorDetail {
                error_type: code.to_string(),
                error_message: message.to_string(),
                error_code: status.as_u16(),
                user_id: None,
                created_on: None,
            },
        })
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body.to_string()))
}

/// Errors any `/v2` operation may answer, beside its own.
const ERRORS: &[(&str, &str, &str)] = &[
    (
        "400",
        "malformed request, or a link token that is spent or expired",
        "JunctionError",
    ),
    ("401", "missing or invalid API key", "JunctionError"),
    (
        "404",
        "no such resource in this team (other teams' ids answer the same)",
        "JunctionError",
    ),
    (
        "422",
        "invalid input; `loc` names the field",
        "HTTPValidationError",
    ),
];
/// Errors of operations that take a body.
const BODY_ERRORS: &[(&str, &str, &str)] = &[
    ("413", "request body too large", "JunctionError"),
    (
        "415",
        "expected `Content-Type: application/json`",
        "JunctionError",
    ),
];

/// Finishes the `/v2` part of the document: the `x-vital-api-key` scheme (an
/// alternative to the bearer scheme everywhere), Junction's error responses on every
/// `/v2` operation, and the provider and resource lists its paths take.
pub(super) fn document(spec: &mut OpenApi) {
    use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
    use utoipa::PartialSchema;
    let components = spec.components.get_or_insert_with(Default::default);
    // The error bodies every operation may answer, whether or not a handler names them.
    let mut schemas = vec![
        (
            <JunctionError as ToSchema>::name().into_owned(),
            JunctionError::schema(),
        ),
        (
            <HttpValidationError as ToSchema>::name().into_owned(),
            HttpValidationError::schema(),
        ),
    ];
    <JunctionError as ToSchema>::schemas(&mut schemas);
    <HttpValidationError as ToSchema>::schemas(&mut schemas);
    for (name, schema) in schemas {
        components.schemas.entry(name).or_insert(schema);
    }
    components.add_security_scheme(
        "vital_api_key",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(API_KEY_HEADER))),
    );
    spec.security
        .get_or_insert_with(Vec::new)
        .push(SecurityRequirement::new(
            "vital_api_key",
            Vec::<String>::new(),
        ));
    for (path, item) in spec.paths.paths.iter_mut() {
        if !path.starts_with("/v2/") {
            continue;
        }
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            add_errors(op);
        }
    }
}

fn add_errors(op: &mut Operation) {
    // `security(())` marks the routes that take no key.
    let public = op.security.as_ref().is_some_and(|s| {
        s.iter().all(|r| {
            serde_json::to_value(r)
                .map(|v| v.as_object().is_some_and(|o| o.is_empty()))
                .unwrap_or(false)
        })
    });
    let mut errors: Vec<(&str, &str, &str)> = ERRORS
        .iter()
        .copied()
        .filter(|(code, _, _)| !(public && *code == "401"))
        .collect();
    if op.request_body.is_some() {
        errors.extend_from_slice(BODY_ERRORS);
    }
    for (code, description, schema) in errors {
        op.responses
            .responses
            .entry(code.to_string())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name(schema)))
                                .build(),
                        )
                        .build(),
                )
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whoop_is_whoop_v2_and_both_slugs_find_it() {
        assert_eq!(junction_slug("whoop"), "whoop_v2");
        assert_eq!(junction_slug("oura"), "oura");
        assert_eq!(find_provider("whoop_v2").unwrap().id(), "whoop");
        assert_eq!(find_provider("whoop").unwrap().id(), "whoop");
        assert!(find_provider("fitbit").is_none());
        let slugs = accepted_slugs();
        assert!(slugs.contains(&"whoop_v2".to_string()) && slugs.contains(&"whoop".to_string()));
    }

    #[test]
    fn the_field_an_error_names_is_found() {
        assert_eq!(
            named_field("`client_user_id` must be 1 to 255 characters"),
            Some("client_user_id")
        );
        assert_eq!(
            named_field("redirect_url: must be an absolute http(s) URL"),
            Some("redirect_url")
        );
        assert_eq!(
            named_field("unknown field `foo`, expected `client_user_id`"),
            Some("foo")
        );
        assert_eq!(named_field("no field named here"), None);
    }

    #[tokio::test]
    async fn errors_are_rewritten_in_junctions_shape() {
        use axum::response::IntoResponse;
        let res = junction_errors(ApiError::not_found("user").into_response(), false).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let body: Value =
            serde_json::from_slice(&axum::body::to_bytes(res.into_body(), 4096).await.unwrap())
                .unwrap();
        assert_eq!(body["detail"]["error_type"], "not_found");
        assert_eq!(body["detail"]["error_code"], 404);
        let res = junction_errors(
            ApiError::validation("`start_date` must be a date").into_response(),
            true,
        )
        .await;
        let body: Value =
            serde_json::from_slice(&axum::body::to_bytes(res.into_body(), 4096).await.unwrap())
                .unwrap();
        assert_eq!(body["detail"][0]["loc"], json!(["query", "start_date"]));
        assert_eq!(body["detail"][0]["type"], "validation_error");
    }
}
