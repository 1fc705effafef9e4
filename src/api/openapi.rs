//! The OpenAPI 3.1 document at `/openapi.json`, generated from the code: every `/v1`
//! route is registered through `utoipa_axum`'s `routes!`, which takes its path, method,
//! parameters and schemas from the handler's `#[utoipa::path]` annotation, so a route
//! cannot exist without its documentation or the other way round. What every
//! operation shares (authentication, the error shape and the error statuses any route
//! may answer) is added here once rather than repeated on each handler.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

use crate::error::ErrorBody;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Wearbridge API",
        description = "Self-hostable ingestion gateway for wearable providers with Standard Webhooks delivery. \
                       Every `/v1` route needs `Authorization: Bearer <API key>` (or a webhook-portal session) and sees only its team; \
                       errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "users", description = "your end users"),
        (name = "connect", description = "the provider connect flow and connections"),
        (name = "providers", description = "the providers and what they share"),
        (name = "data", description = "stored normalised records"),
        (name = "events", description = "event types and example events"),
        (name = "webhooks", description = "endpoints, the delivery log, resend, recover and statistics"),
        (name = "portal", description = "the webhook portal"),
    )
)]
pub struct ApiDoc;

/// Errors any authenticated operation may answer, beside its own.
const COMMON_ERRORS: &[(&str, &str)] = &[
    ("400", "malformed request (bad JSON, bad query string)"),
    ("401", "missing or invalid API key"),
    ("404", "no such resource in this team (other teams' ids answer the same)"),
    ("422", "invalid input; the message names the field"),
];
/// Errors of operations that take a body.
const BODY_ERRORS: &[(&str, &str)] = &[("413", "request body too large"), ("415", "expected `Content-Type: application/json`")];

/// Finishes the generated document: security schemes, and the shared error responses on
/// every operation that lacks them.
pub fn finish(mut spec: OpenApi) -> OpenApi {
    let components = spec.components.get_or_insert_with(Default::default);
    components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("wb_…").build()));
    components.add_security_scheme("portal_session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(super::portal::COOKIE))));
    spec.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    // Closed lists the code holds: the event-type catalogue and the provider registry.
    let event_types: Vec<String> = crate::events::EventType::all().into_iter().map(|t| t.name()).collect();
    let providers: Vec<String> = crate::providers::registry().iter().map(|p| p.id().to_string()).collect();
    set_enum(components, "CreateEndpoint", "event_types", true, &event_types);
    set_enum(components, "UpdateEndpoint", "event_types", true, &event_types);
    set_enum(components, "ExampleRequest", "event_type", false, &event_types);
    set_enum(components, "LinkRequest", "provider", false, &providers);
    for item in spec.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten() {
            add_errors(op);
        }
    }
    spec
}

/// Constrains a string property (or, with `items`, an array's strings) to `values`.
fn set_enum(components: &mut utoipa::openapi::Components, schema: &str, property: &str, items: bool, values: &[String]) {
    let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) else { return };
    let Some(RefOr::T(prop)) = object.properties.get_mut(property) else { return };
    let target = match prop {
        Schema::Array(array) if items => match &mut array.items {
            utoipa::openapi::schema::ArrayItems::RefOrSchema(boxed) => match boxed.as_mut() {
                RefOr::T(Schema::Object(o)) => o,
                _ => return,
            },
            _ => return,
        },
        Schema::Object(o) if !items => o,
        _ => return,
    };
    let mut values: Vec<serde_json::Value> = values.iter().map(|v| serde_json::Value::String(v.clone())).collect();
    // An optional property's null must stay valid.
    if serde_json::to_value(&target.schema_type).is_ok_and(|t| t.as_array().is_some_and(|a| a.contains(&"null".into()))) {
        values.push(serde_json::Value::Null);
    }
    target.enum_values = Some(values);
}

fn add_errors(op: &mut Operation) {
    // `security(())` marks the routes a browser opens without a key.
    let public = op.security.as_ref().is_some_and(|s| s.iter().all(|r| serde_json::to_value(r).map(|v| v.as_object().is_some_and(|o| o.is_empty())).unwrap_or(false)));
    let mut errors: Vec<(&str, &str)> = COMMON_ERRORS.iter().copied().filter(|(code, _)| !(public && *code == "401")).collect();
    if op.request_body.is_some() {
        errors.extend_from_slice(BODY_ERRORS);
    }
    for (code, description) in errors {
        op.responses.responses.entry(code.to_string()).or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build())
                    .build(),
            )
        });
    }
}
