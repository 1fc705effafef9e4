//! The OpenAPI 3.1 document at `/openapi.json`, generated from the code: every `/v1`
//! route (and `/health` and `/metrics`) is registered through `utoipa_axum`'s `routes!`,
//! which takes its path, method, parameters and schemas from the handler's
//! `#[utoipa::path]` annotation, so a route cannot exist without its documentation or
//! the other way round (tests/it/openapi.rs also reads the router's routes and compares).
//! What every operation shares (authentication, the error shape and the error statuses
//! any route may answer) is added here once rather than repeated on each handler, and
//! so are the constraints the code holds as data (the event-type and provider lists,
//! the webhook-secret and header-name rules).

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

use crate::error::ErrorBody;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Wearbridge API",
        description = "Self-hostable ingestion gateway for wearable providers with Standard Webhooks delivery. \
                       Every `/v1` route needs `Authorization: Bearer <API key>` (or a webhook-portal session) and sees only its team; \
                       errors are `{\"error\": {\"code\", \"message\"}}`. \
                       `/v2` is the Junction (formerly Vital) compatible API: Junction's paths and models, the key in `x-vital-api-key` \
                       (or as a bearer token), errors as `{\"detail\": …}`."
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
        (name = "operations", description = "liveness and metrics, for operators (no key)"),
        (name = "junction", description = "the Junction (formerly Vital) compatible API under /v2"),
    )
)]
pub struct ApiDoc;

/// Errors any authenticated operation may answer, beside its own.
const COMMON_ERRORS: &[(&str, &str)] = &[
    ("400", "malformed request (bad JSON, bad query string)"),
    ("401", "missing or invalid API key"),
    (
        "404",
        "no such resource in this team (other teams' ids answer the same)",
    ),
    ("422", "invalid input; the message names the field"),
];
/// Errors of operations that take a body.
const BODY_ERRORS: &[(&str, &str)] = &[
    ("413", "request body too large"),
    ("415", "expected `Content-Type: application/json`"),
];

/// Finishes the generated document: security schemes, and the shared error responses on
/// every operation that lacks them.
pub fn finish(mut spec: OpenApi) -> OpenApi {
    let components = spec.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("wb_…")
                .build(),
        ),
    );
    components.add_security_scheme(
        "portal_session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(super::portal::COOKIE))),
    );
    spec.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    // Closed lists the code holds: the event-type catalogue and the provider registry.
    let event_types: Vec<String> = crate::events::EventType::all()
        .into_iter()
        .map(|t| t.name())
        .collect();
    let providers: Vec<String> = crate::providers::registry()
        .iter()
        .map(|p| p.id().to_string())
        .collect();
    set_enum(
        components,
        "CreateEndpoint",
        "event_types",
        true,
        &event_types,
    );
    set_enum(
        components,
        "UpdateEndpoint",
        "event_types",
        true,
        &event_types,
    );
    set_enum(
        components,
        "ExampleRequest",
        "event_type",
        false,
        &event_types,
    );
    set_enum(components, "LinkRequest", "provider", false, &providers);
    // What `validate_webhook_secret` accepts.
    set_pattern(
        components,
        "CreateEndpoint",
        "secret",
        crate::seal::WEBHOOK_SECRET_PATTERN,
    );
    set_pattern(
        components,
        "Rotate",
        "key",
        crate::seal::WEBHOOK_SECRET_PATTERN,
    );
    // What the endpoint checks take as custom headers: valid names that are not ours,
    // valid values.
    set_header_map(components, "CreateEndpoint", "headers");
    set_header_map(components, "UpdateEndpoint", "headers");
    // Path parameters naming a provider or a resource (anything else is a 404).
    let summaries: Vec<String> = crate::events::Resource::ALL
        .iter()
        .filter(|r| !r.is_timeseries() && r.is_history())
        .map(|r| r.to_string())
        .collect();
    let series: Vec<String> = crate::events::Resource::ALL
        .iter()
        .filter(|r| r.is_timeseries())
        .map(|r| r.to_string())
        .collect();
    set_path_enum(&mut spec, "", "provider", &providers);
    set_path_enum(&mut spec, "/v1/summary/", "resource", &summaries);
    set_path_enum(&mut spec, "/v1/timeseries/", "resource", &series);
    // The `/v2` paths take Junction's provider slugs as well as ours.
    let slugs = super::vital::accepted_slugs();
    set_path_enum(&mut spec, "/v2/", "provider", &slugs);
    set_path_enum(&mut spec, "/v2/", "oauth_provider", &slugs);
    set_path_enum(&mut spec, "/v2/timeseries/", "resource", &series);
    let components = spec.components.get_or_insert_with(Default::default);
    set_enum(components, "LinkTokenExchange", "provider", false, &slugs);
    super::vital::document(&mut spec);
    for (path, item) in spec.paths.paths.iter_mut() {
        // `/health` and `/metrics` document what they answer; the shared errors are the API's.
        if !path.starts_with("/v1/") {
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
    spec
}

/// The document as JSON. utoipa 5 writes a response link's fields in snake_case
/// (`operation_id`; fixed in utoipa 6), which OpenAPI tools do not read, so they are
/// renamed here.
pub fn to_json(spec: &OpenApi) -> serde_json::Value {
    let mut json = serde_json::to_value(spec).expect("the OpenAPI document serialises");
    let operations = json["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|item| item.as_object_mut());
    for op in operations.flat_map(|item| item.values_mut()) {
        let responses = op.get_mut("responses").and_then(|r| r.as_object_mut());
        for response in responses.into_iter().flat_map(|r| r.values_mut()) {
            let links = response.get_mut("links").and_then(|l| l.as_object_mut());
            for link in links
                .into_iter()
                .flat_map(|l| l.values_mut())
                .filter_map(|l| l.as_object_mut())
            {
                for (from, to) in [
                    ("operation_id", "operationId"),
                    ("operation_ref", "operationRef"),
                    ("request_body", "requestBody"),
                ] {
                    if let Some(v) = link.remove(from) {
                        link.insert(to.to_string(), v);
                    }
                }
            }
        }
    }
    json
}

/// Constrains a string property to match `pattern`.
fn set_pattern(
    components: &mut utoipa::openapi::Components,
    schema: &str,
    property: &str,
    pattern: &str,
) {
    if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) {
        if let Some(RefOr::T(Schema::Object(prop))) = object.properties.get_mut(property) {
            prop.pattern = Some(pattern.to_string());
        }
    }
}

/// Constrains the path parameter `name` of the operations under `prefix` to `values`.
fn set_path_enum(spec: &mut OpenApi, prefix: &str, name: &str, values: &[String]) {
    use utoipa::openapi::path::ParameterIn;
    for (_, item) in spec
        .paths
        .paths
        .iter_mut()
        .filter(|(path, _)| path.starts_with(prefix))
    {
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
            for param in op
                .parameters
                .iter_mut()
                .flatten()
                .filter(|p| p.name == name && p.parameter_in == ParameterIn::Path)
            {
                if let Some(RefOr::T(Schema::Object(schema))) = &mut param.schema {
                    schema.enum_values = Some(
                        values
                            .iter()
                            .map(|v| serde_json::Value::String(v.clone()))
                            .collect(),
                    );
                }
            }
        }
    }
}

/// A header name (an RFC 9110 token) that is none of [`RESERVED_HEADERS`], in any case.
///
/// [`RESERVED_HEADERS`]: crate::delivery::sender::RESERVED_HEADERS
fn custom_header_name_pattern() -> String {
    let any_case = |name: &str| -> String {
        name.chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
                } else {
                    c.to_string()
                }
            })
            .collect()
    };
    let reserved: Vec<String> = crate::delivery::sender::RESERVED_HEADERS
        .iter()
        .map(|h| any_case(h))
        .collect();
    format!(
        "^(?!(?:{})$)[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
        reserved.join("|")
    )
}

/// Constrains a map of header names to values as the endpoint checks do.
fn set_header_map(components: &mut utoipa::openapi::Components, schema: &str, property: &str) {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) else {
        return;
    };
    let Some(RefOr::T(Schema::Object(map))) = object.properties.get_mut(property) else {
        return;
    };
    map.property_names = Some(Box::new(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(custom_header_name_pattern()))
            .into(),
    ));
    // `http::HeaderValue`: no control characters but tab.
    let value = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[^\\u0000-\\u0008\\u000A-\\u001F\\u007F]*$"));
    map.additional_properties = Some(Box::new(AdditionalProperties::RefOr(RefOr::T(
        value.into(),
    ))));
}

/// Constrains a string property (or, with `items`, an array's strings) to `values`.
fn set_enum(
    components: &mut utoipa::openapi::Components,
    schema: &str,
    property: &str,
    items: bool,
    values: &[String],
) {
    let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) else {
        return;
    };
    let Some(RefOr::T(prop)) = object.properties.get_mut(property) else {
        return;
    };
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
    let mut values: Vec<serde_json::Value> = values
        .iter()
        .map(|v| serde_json::Value::String(v.clone()))
        .collect();
    // An optional property's null must stay valid.
    if serde_json::to_value(&target.schema_type)
        .is_ok_and(|t| t.as_array().is_some_and(|a| a.contains(&"null".into())))
    {
        values.push(serde_json::Value::Null);
    }
    target.enum_values = Some(values);
}

fn add_errors(op: &mut Operation) {
    // `security(())` marks the routes a browser opens without a key.
    let public = op.security.as_ref().is_some_and(|s| {
        s.iter().all(|r| {
            serde_json::to_value(r)
                .map(|v| v.as_object().is_some_and(|o| o.is_empty()))
                .unwrap_or(false)
        })
    });
    let mut errors: Vec<(&str, &str)> = COMMON_ERRORS
        .iter()
        .copied()
        .filter(|(code, _)| !(public && *code == "401"))
        .collect();
    if op.request_body.is_some() {
        errors.extend_from_slice(BODY_ERRORS);
    }
    for (code, description) in errors {
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
                                .schema(Some(Ref::from_schema_name("Error")))
                                .build(),
                        )
                        .build(),
                )
            });
    }
}
