//! `/openapi.json`: generated from the handlers (utoipa), it documents exactly the
//! routes the router serves (read from the router itself), and the real responses of a
//! running gateway, on every backend, match what it documents for their status: the
//! status is listed, the content type too, and a JSON body validates against the schema
//! with no undocumented field. Input the database could not store gets a clear 4xx,
//! never a 500. schemathesis fuzzes the same document from outside in CI (`.ci/run`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;
use wearbridge::fixture_server::FixtureServer;

use crate::backend_tests;
use crate::helpers::{eventually, TestApp, TestDb};

backend_tests!(
    real_responses_match_their_documented_schemas,
    junction_replies_match_their_documented_schemas,
    input_the_database_cannot_store_is_refused_with_4xx,
    requests_the_document_allows_are_taken_and_others_refused,
);

/// Paths the router serves that the document leaves out, on purpose: the document
/// itself, and the webhook portal's pages and assets (for a browser, not a client).
fn undocumented_on_purpose(path: &str) -> bool {
    path == "/openapi.json" || path == "/portal" || path.starts_with("/portal/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_and_the_router_agree_on_every_operation() {
    let app = TestApp::spawn(TestDb::sqlite()).await;
    let res = reqwest::get(format!("{}/openapi.json", app.gateway.url()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let spec: Value = res.json().await.unwrap();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    assert_eq!(
        spec,
        wearbridge::api::openapi_document(),
        "served as generated"
    );
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        spec["components"]["securitySchemes"]["vital_api_key"],
        json!({"type": "apiKey", "in": "header", "name": "x-vital-api-key"})
    );

    // The router's own routes against the document's operations, both ways.
    let routed = router_routes(&wearbridge::api::router(app.gateway.state.clone()));
    assert!(
        routed.contains(&("GET".to_string(), "/health".to_string())),
        "the router's routes were read: {routed:?}"
    );
    let documented: BTreeSet<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let missing: Vec<_> = routed
        .iter()
        .filter(|r| !documented.contains(*r) && !undocumented_on_purpose(&r.1))
        .collect();
    assert!(missing.is_empty(), "routes the document lacks (annotate them with #[utoipa::path] and register them with routes!): {missing:?}");
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "documented operations no route serves: {unrouted:?}"
    );
    assert!(
        documented
            .iter()
            .filter(|(_, p)| p.starts_with("/v1/"))
            .count()
            >= 33,
        "{documented:?}"
    );

    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses
                    .keys()
                    .any(|k| k.starts_with('2') || k.starts_with('3')),
                "{method} {path} documents its success"
            );
            let junction = path.starts_with("/v2/");
            if !path.starts_with("/v1/") && !junction {
                assert_eq!(op["security"], json!([{}]), "{method} {path} needs no key");
                continue;
            }
            let public = op["security"].as_array().is_some_and(|s| {
                s.iter()
                    .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
            for code in ["400", "404", "422"] {
                assert!(
                    responses.contains_key(code),
                    "{method} {path} documents {code}"
                );
            }
            // Provider notifications need no key, but a provider's proof: 401 without it.
            let proven = path.ends_with("/notifications");
            assert_eq!(
                responses.contains_key("401"),
                !public || proven,
                "{method} {path}: 401 exactly when a key (or a provider's proof) is needed"
            );
            if op.get("requestBody").is_some() {
                assert!(
                    responses.contains_key("413") && responses.contains_key("415"),
                    "{method} {path}"
                );
            }
            for (code, response) in responses {
                if code.starts_with('4') {
                    // `/v2` answers errors in Junction's shapes.
                    let schema = match (junction, code.as_str()) {
                        (false, _) => "#/components/schemas/Error",
                        (true, "422") => "#/components/schemas/HTTPValidationError",
                        (true, _) => "#/components/schemas/JunctionError",
                    };
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"], schema,
                        "{method} {path} {code}"
                    );
                }
            }
        }
    }
    // Operation ids are unique (code generators name methods after them), and every
    // link names one.
    let ids: Vec<&str> = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|i| i.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "duplicate operationIds: {ids:?}");
    let mut links = 0;
    for op in spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|i| i.as_object().unwrap().values())
    {
        for response in op["responses"].as_object().unwrap().values() {
            for link in response
                .get("links")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|l| l.values())
            {
                assert!(
                    unique.contains(link["operationId"].as_str().unwrap()),
                    "{link}"
                );
                links += 1;
            }
        }
    }
    assert!(links >= 7, "{links} links");
    let schemas = &spec["components"]["schemas"];
    for schema in [
        "Error",
        "Endpoint",
        "CreatedEndpoint",
        "EventDetail",
        "AttemptView",
        "Stats",
        "SessionLink",
        "User",
    ] {
        assert!(schemas.get(schema).is_some(), "schema {schema}");
    }
    // The constraints the code adds after generation found their targets.
    assert!(schemas["CreateEndpoint"]["properties"]["secret"]["pattern"]
        .as_str()
        .unwrap()
        .starts_with("^whsec_"));
    assert!(schemas["Rotate"]["properties"]["key"]["pattern"].is_string());
    assert!(
        schemas["UpdateEndpoint"]["properties"]["headers"]["propertyNames"]["pattern"]
            .as_str()
            .unwrap()
            .contains("[Hh][Oo][Ss][Tt]")
    );
    assert!(
        schemas["CreateEndpoint"]["properties"]["event_types"]["items"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("webhook.test"))
    );
    assert!(schemas["LinkRequest"]["properties"]["provider"]["enum"]
        .as_array()
        .unwrap()
        .contains(&json!("oura")));
}

/// The (method, path) pairs an axum router serves, read from its `Debug` output, since
/// axum 0.8 has no API to list them: its path router's `RouteId(n): "path"` entries,
/// and each route's methods from the `Allow` header it has built (HEAD comes with GET).
/// Anything unexpected in that output fails loudly rather than reading nothing.
fn router_routes(router: &axum::Router) -> BTreeSet<(String, String)> {
    let debug = format!("{router:?}");
    let own = debug.split("fallback_router").next().unwrap();
    let (routes, node) = own
        .split_once("node: Node")
        .expect("axum's Router Debug output changed: no `node: Node`");
    let mut paths = BTreeMap::new();
    for entry in node.split("RouteId(").skip(1) {
        let (id, rest) = entry
            .split_once("): \"")
            .expect("axum's Router Debug output changed: a path entry");
        paths.insert(id.to_string(), rest.split('"').next().unwrap().to_string());
    }
    let mut out = BTreeSet::new();
    for entry in routes.split("RouteId(").skip(1) {
        let (id, rest) = entry.split_once(')').unwrap();
        let allow = rest
            .split("allow_header: Bytes(b\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| {
                panic!("axum's Router Debug output changed: no Allow header for route {id}: {rest}")
            });
        let path = paths
            .get(id)
            .unwrap_or_else(|| panic!("route {id} has no path in {paths:?}"));
        for method in allow.split(',').filter(|m| *m != "HEAD") {
            out.insert((method.to_string(), path.clone()));
        }
    }
    assert_eq!(
        paths.len(),
        out.iter().map(|(_, p)| p).collect::<BTreeSet<_>>().len(),
        "every path has methods: {debug}"
    );
    out
}

// ---------------------------------------------------------------------------------
// Real responses against the document.

/// A reply as the checker saw it.
struct Reply {
    status: StatusCode,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

/// Sends requests to the gateway and checks every reply against the document: the
/// operation exists, its status is documented, and so is its content type; a JSON body
/// validates against the documented schema. Remembers which operations it has seen.
struct Checker {
    spec: Value,
    base: String,
    key: String,
    http: reqwest::Client,
    seen: Mutex<BTreeMap<(String, String), BTreeSet<u16>>>,
}

impl Checker {
    async fn new(app: &TestApp) -> Checker {
        let spec: Value = reqwest::get(format!("{}/openapi.json", app.gateway.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Checker {
            spec,
            base: app.gateway.url(),
            key: app.api.key.clone(),
            http,
            seen: Mutex::new(BTreeMap::new()),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }
    async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.request(Method::POST, path).json(&body))
            .await
    }
    async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(self.request(Method::PATCH, path).json(&body))
            .await
    }
    async fn delete(&self, path: &str) -> Reply {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// The document's path template for a concrete path: the one whose literal
    /// segments all match, the most literal one first (as the router picks).
    fn template(&self, path: &str) -> String {
        let segments: Vec<&str> = path.split('/').collect();
        self.spec["paths"]
            .as_object()
            .unwrap()
            .keys()
            .filter_map(|t| {
                let ts: Vec<&str> = t.split('/').collect();
                let fits = ts.len() == segments.len()
                    && ts
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| t.starts_with('{') || t == s);
                fits.then(|| (ts.iter().filter(|t| !t.starts_with('{')).count(), t.clone()))
            })
            .max()
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("no documented path matches {path}"))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let req = req.build().unwrap();
        let method = req.method().as_str().to_lowercase();
        assert!(req.url().as_str().starts_with(&self.base), "{}", req.url());
        let path = req.url().path().to_string();
        let template = self.template(&path);
        let res = self.http.execute(req).await.expect("the gateway answers");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let what = format!("{} {path} ({template}) → {status}", method.to_uppercase());
        let op = &self.spec["paths"][&template][&method];
        assert!(op.is_object(), "{what}: the operation is not documented");
        let doc = op["responses"]
            .get(status.as_str())
            .unwrap_or_else(|| panic!("{what}: the status is not documented; body: {text}"));
        let content_type = headers.get("content-type").map(|v| {
            v.to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim()
                .to_string()
        });
        let body = match (&doc["content"], content_type) {
            (Value::Object(content), Some(ct)) if !text.is_empty() => {
                let schema = content.get(&ct).unwrap_or_else(|| {
                    panic!(
                        "{what}: content type {ct} is not documented ({:?})",
                        content.keys()
                    )
                })["schema"]
                    .clone();
                if ct == "application/json" {
                    let body: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
                    let mut errors = Vec::new();
                    validate(&self.spec, &schema, &body, "$", true, &mut errors);
                    assert!(
                        errors.is_empty(),
                        "{what}: the body does not match its schema:\n  {}\nbody: {body}",
                        errors.join("\n  ")
                    );
                    body
                } else {
                    Value::String(text)
                }
            }
            (Value::Object(content), _) if !content.is_empty() => panic!(
                "{what}: documented with content {:?}, answered none",
                content.keys()
            ),
            _ => {
                assert!(
                    text.is_empty(),
                    "{what}: answered a body where none is documented: {text}"
                );
                Value::Null
            }
        };
        self.seen
            .lock()
            .unwrap()
            .entry((method.to_uppercase(), template))
            .or_default()
            .insert(status.as_u16());
        Reply {
            status,
            body,
            headers,
        }
    }

    /// Every documented operation of the paths `covered` was checked at least once, and
    /// with a success.
    fn assert_all_seen(&self, covered: impl Fn(&str) -> bool) {
        let seen = self.seen.lock().unwrap();
        let mut unseen = Vec::new();
        for (path, item) in self.spec["paths"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(p, _)| covered(p))
        {
            for method in item.as_object().unwrap().keys() {
                match seen.get(&(method.to_uppercase(), path.clone())) {
                    Some(statuses) if statuses.iter().any(|s| *s < 400) => {}
                    other => unseen.push(format!("{} {path} {other:?}", method.to_uppercase())),
                }
            }
        }
        assert!(
            unseen.is_empty(),
            "operations never answered with a success here: {unseen:#?}"
        );
    }
}

/// Checks `value` against `schema` (JSON Schema 2020-12 as OpenAPI 3.1 has it; `$ref`s
/// point into the document) and collects what does not match. It knows the keywords
/// utoipa writes and fails the test on any other rather than let it through unchecked.
/// Stricter than JSON Schema in one way: where `strict`, an object schema that lists
/// its properties and says nothing about others (utoipa's rendering of a struct) takes
/// no others, so every field of a reply is documented.
fn validate(
    spec: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    strict: bool,
    errors: &mut Vec<String>,
) {
    let schema = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => return errors.push(format!("{at}: nothing is allowed here")),
        Value::Object(o) => o,
        other => panic!("{at}: not a schema: {other}"),
    };
    let mut fail = |message: String| errors.push(format!("{at}: {message}"));
    if strict {
        if let Some(object) = value.as_object() {
            let (declared, open) = declared_properties(spec, &Value::Object(schema.clone()));
            if !open {
                for key in object.keys().filter(|k| !declared.contains(*k)) {
                    fail(format!("field `{key}` is not documented"));
                }
            }
        }
    }
    for (keyword, arg) in schema {
        match keyword.as_str() {
            "$ref" => {
                let target = resolve(spec, arg);
                validate(spec, target, value, at, false, errors);
            }
            "allOf" => {
                for s in arg.as_array().unwrap() {
                    validate(spec, s, value, at, false, errors);
                }
            }
            "oneOf" | "anyOf" => {
                let passing = arg
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|s| {
                        let mut e = Vec::new();
                        validate(spec, s, value, at, strict, &mut e);
                        e.is_empty()
                    })
                    .count();
                if passing == 0 || (keyword == "oneOf" && passing > 1) {
                    errors.push(format!("{at}: {passing} of the {keyword} alternatives match {value}"));
                }
            }
            "type" => {
                let types: Vec<&str> = match arg {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
                    other => panic!("{at}: type {other}"),
                };
                if !types.iter().any(|t| has_type(value, t)) {
                    errors.push(format!("{at}: expected {types:?}, got {value}"));
                }
            }
            "enum" => {
                if !arg.as_array().unwrap().contains(value) {
                    errors.push(format!("{at}: {value} is not one of {arg}"));
                }
            }
            "const" => {
                if arg != value {
                    errors.push(format!("{at}: {value} is not {arg}"));
                }
            }
            "properties" => {
                if let Some(object) = value.as_object() {
                    for (name, s) in arg.as_object().unwrap() {
                        if let Some(v) = object.get(name) {
                            validate(spec, s, v, &format!("{at}.{name}"), true, errors);
                        }
                    }
                }
            }
            "required" => {
                if let Some(object) = value.as_object() {
                    for name in arg.as_array().unwrap() {
                        if !object.contains_key(name.as_str().unwrap()) {
                            errors.push(format!("{at}: required field {name} is missing"));
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(object) = value.as_object() {
                    let listed = schema.get("properties").and_then(Value::as_object);
                    for (name, v) in object.iter().filter(|(k, _)| !listed.is_some_and(|l| l.contains_key(*k))) {
                        validate(spec, arg, v, &format!("{at}.{name}"), true, errors);
                    }
                }
            }
            "propertyNames" => {
                if let Some(object) = value.as_object() {
                    for name in object.keys() {
                        validate(spec, arg, &Value::String(name.clone()), &format!("{at} (key {name})"), true, errors);
                    }
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    for (i, v) in items.iter().enumerate() {
                        validate(spec, arg, v, &format!("{at}[{i}]"), true, errors);
                    }
                }
            }
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                if let (Some(n), Some(bound)) = (value.as_f64(), arg.as_f64()) {
                    let ok = match keyword.as_str() {
                        "minimum" => n >= bound,
                        "maximum" => n <= bound,
                        "exclusiveMinimum" => n > bound,
                        _ => n < bound,
                    };
                    if !ok {
                        errors.push(format!("{at}: {n} breaks {keyword} {bound}"));
                    }
                }
            }
            "minLength" | "maxLength" => {
                if let Some(s) = value.as_str() {
                    let (n, bound) = (s.chars().count() as u64, arg.as_u64().unwrap());
                    if (keyword == "minLength" && n < bound) || (keyword == "maxLength" && n > bound) {
                        errors.push(format!("{at}: {n} characters break {keyword} {bound}"));
                    }
                }
            }
            "minItems" | "maxItems" => {
                if let Some(a) = value.as_array() {
                    let (n, bound) = (a.len() as u64, arg.as_u64().unwrap());
                    if (keyword == "minItems" && n < bound) || (keyword == "maxItems" && n > bound) {
                        errors.push(format!("{at}: {n} items break {keyword} {bound}"));
                    }
                }
            }
            "format" => {
                let ok = match (arg.as_str().unwrap(), value) {
                    ("uuid", Value::String(s)) => Uuid::parse_str(s).is_ok(),
                    ("date-time", Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
                    ("date", Value::String(s)) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
                    ("uri", Value::String(s)) => url::Url::parse(s).is_ok(),
                    ("int64", Value::Number(n)) => n.is_i64() || n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.2e18),
                    ("int32", Value::Number(n)) => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
                    ("double" | "float", Value::Number(_)) => true,
                    (f @ ("uuid" | "date-time" | "date" | "uri" | "int64" | "int32" | "double" | "float"), _) => {
                        let _ = f;
                        true // the type keyword speaks for other types
                    }
                    (other, _) => panic!("{at}: format `{other}` is unknown to this validator"),
                };
                if !ok {
                    errors.push(format!("{at}: {value} is not a valid {arg}"));
                }
            }
            "pattern" => {
                // No regex engine here; request schemas carry patterns, replies do not.
                panic!("{at}: a `pattern` in a reply's schema: teach this validator regular expressions");
            }
            "description" | "title" | "default" | "example" | "examples" | "deprecated" | "readOnly" | "writeOnly" | "contentMediaType" => {}
            other => panic!("{at}: keyword `{other}` is unknown to this validator, which would let it through unchecked"),
        }
    }
}

fn resolve<'a>(spec: &'a Value, reference: &Value) -> &'a Value {
    let name = reference
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
    let target = &spec["components"]["schemas"][name];
    assert!(!target.is_null(), "$ref to a missing schema {name}");
    target
}

/// The properties an object schema declares, through `$ref` and `allOf`, and whether
/// it takes others (`additionalProperties`, or no properties listed at all).
fn declared_properties(spec: &Value, schema: &Value) -> (BTreeSet<String>, bool) {
    let mut names = BTreeSet::new();
    let mut open = false;
    let mut listed = false;
    if let Some(r) = schema.get("$ref") {
        let (n, o) = declared_properties(spec, resolve(spec, r));
        names.extend(n);
        open |= o;
        listed = true;
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            let (n, o) = declared_properties(spec, s);
            names.extend(n);
            open |= o;
        }
        listed = true;
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        names.extend(props.keys().cloned());
        listed = true;
    }
    if schema
        .get("additionalProperties")
        .is_some_and(|a| a != &Value::Bool(false))
        || schema.get("oneOf").is_some()
        || schema.get("anyOf").is_some()
    {
        open = true; // checked by the alternatives themselves
    }
    (names, open || !listed)
}

fn has_type(value: &Value, t: &str) -> bool {
    match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        other => panic!("type `{other}`"),
    }
}

#[test]
fn the_validator_catches_what_it_should() {
    let spec = json!({"components": {"schemas": {
        "Base": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string", "format": "uuid"}}},
        "Both": {"allOf": [{"$ref": "#/components/schemas/Base"}, {"type": "object", "properties": {"n": {"type": ["integer", "null"], "minimum": 1}}}]},
    }}});
    let check = |schema: Value, value: Value| {
        let mut e = Vec::new();
        validate(&spec, &schema, &value, "$", true, &mut e);
        e
    };
    let both = json!({"$ref": "#/components/schemas/Both"});
    let id = Uuid::new_v4().to_string();
    assert!(check(both.clone(), json!({"id": id, "n": 2})).is_empty());
    assert!(check(both.clone(), json!({"id": id, "n": null})).is_empty());
    assert_eq!(
        check(both.clone(), json!({"id": id, "n": 0})).len(),
        1,
        "minimum"
    );
    assert_eq!(check(both.clone(), json!({"id": "x"})).len(), 1, "format");
    assert_eq!(check(both.clone(), json!({"n": 1})).len(), 1, "required");
    assert_eq!(
        check(both.clone(), json!({"id": id, "extra": true})).len(),
        1,
        "an undocumented field"
    );
    assert_eq!(
        check(
            json!({"type": "array", "items": {"type": "string", "maxLength": 2}}),
            json!(["ab", "abc", 1])
        )
        .len(),
        2
    );
    assert_eq!(
        check(
            json!({"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Base"}]}),
            json!({"id": 5})
        )
        .len(),
        1
    );
    assert!(check(
        json!({"type": "object", "additionalProperties": {"type": "integer"}}),
        json!({"a": 1, "b": 2})
    )
    .is_empty());
    assert_eq!(
        check(
            json!({"type": "object", "additionalProperties": {"type": "integer"}}),
            json!({"a": "1"})
        )
        .len(),
        1
    );
    assert!(
        std::panic::catch_unwind(|| check(json!({"if": {}}), json!(1))).is_err(),
        "an unknown keyword fails loudly"
    );
}

/// Every documented operation, on a real gateway with a provider connected and
/// deliveries made, answers what the document says: successes and the errors each
/// route can give.
async fn real_responses_match_their_documented_schemas(db: TestDb) {
    let fx = FixtureServer::start().await.unwrap();
    let root = fx.root();
    let app = TestApp::spawn_with(db, move |c| {
        c.providers_base_url = Some(root);
        c.max_body_bytes = 64 * 1024;
    })
    .await;
    let c = Checker::new(&app).await;

    // Operations, catalogues, authentication.
    assert_eq!(
        c.send(c.http.get(format!("{}/health", c.base)))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        c.send(c.http.get(format!("{}/metrics", c.base)))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(c.get("/v1/providers").await.status, StatusCode::OK);
    assert_eq!(c.get("/v1/event-types").await.status, StatusCode::OK);

    // Provider notifications: Strava's handshake with our verify token, and a WHOOP
    // notification signed as WHOOP signs it (for a user not connected here, so only
    // acknowledged); a forged one is refused.
    let strava = wearbridge::providers::find("strava").unwrap();
    let token = app.gateway.state.subscriber.verify_token(strava);
    let r = c
        .send(
            c.http
                .get(format!("{}/v1/providers/strava/notifications", c.base))
                .query(&[
                    ("hub.mode", "subscribe"),
                    ("hub.challenge", "c-123"),
                    ("hub.verify_token", token.as_str()),
                ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["hub.challenge"], "c-123");
    let whoop = wearbridge::providers::find("whoop").unwrap();
    let secrets = app.gateway.state.subscriber.secrets(whoop).await.unwrap();
    let now = chrono::DateTime::from_timestamp_millis(app.clock.now_ms()).unwrap();
    let pushes = whoop.impersonation.push_for(
        &wearbridge::providers::push::FixtureChange {
            user: "10129",
            resource: wearbridge::events::Resource::Sleep,
            kind: wearbridge::providers::push::FixtureChangeKind::Updated,
            item: None,
            record: Some("ecfc6a15-4661-442f-a9a4-f160dd7afae8"),
            at: now,
        },
        &[wearbridge::providers::push::FixtureSubscription {
            callback_url: format!("{}/v1/providers/whoop/notifications", c.base),
            ..Default::default()
        }],
        &secrets,
        now,
    );
    let (url, push) = pushes.first().expect("WHOOP notifies a sleep update");
    let notify = |body: Vec<u8>| {
        let mut req = c
            .http
            .post(url)
            .header("content-type", push.content_type)
            .body(body);
        for (k, v) in &push.headers {
            req = req.header(k, v);
        }
        req
    };
    let r = c.send(notify(push.body.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["outcomes"], json!(["unknown_user"]));
    let mut forged = push.body.clone();
    forged.push(b' ');
    assert_eq!(
        c.send(notify(forged)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        c.send(c.http.get(format!("{}/v1/user", c.base)))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        c.send(
            c.http
                .get(format!("{}/v1/user", c.base))
                .bearer_auth("wb_nope")
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );

    // Users.
    let r = c.post("/v1/user", json!({"client_user_id": "alice"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let uid = r.body["user_id"].as_str().unwrap().to_string();
    assert_eq!(
        c.post("/v1/user", json!({"client_user_id": "alice"}))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        c.post("/v1/user", json!({"client_user_id": " "}))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        c.post("/v1/user", json!({"client_user_id": 5}))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let r = c
        .send(
            c.request(Method::POST, "/v1/user")
                .header("content-type", "text/plain")
                .body("alice"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = json!({"client_user_id": "x".repeat(100_000)});
    assert_eq!(
        c.post("/v1/user", big).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let r = c
        .send(
            c.request(Method::POST, "/v1/user")
                .header("content-type", "application/json")
                .body("{nope"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(c.get("/v1/user?limit=2").await.status, StatusCode::OK);
    assert_eq!(
        c.get("/v1/user?limit=abc").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        c.get("/v1/user?limit=0").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        c.get(&format!("/v1/user/{uid}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        c.get(&format!("/v1/user/{}", Uuid::new_v4())).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(c.get("/v1/user/resolve/alice").await.status, StatusCode::OK);
    assert_eq!(
        c.get("/v1/user/resolve/nobody").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.get(&format!("/v1/user/{uid}/providers")).await.status,
        StatusCode::OK
    );

    // Endpoints, secrets, test and example events.
    let r = c.post("/v1/webhooks/endpoints", json!({"url": app.receiver.url("/hooks"), "headers": {"x-team": "a"}, "rate_limit_per_sec": 50})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    app.receiver
        .set_secret("/hooks", r.body["secret"].as_str().unwrap());
    let eid = r.body["id"].as_str().unwrap().to_string();
    let test_event = r.body["test_event_id"].as_str().unwrap().to_string();
    assert_eq!(
        c.post(
            "/v1/webhooks/endpoints",
            json!({"url": app.receiver.url("/hooks")})
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        c.post(
            "/v1/webhooks/endpoints",
            json!({"url": "ftp://example.com/"})
        )
        .await
        .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(c.get("/v1/webhooks/endpoints").await.status, StatusCode::OK);
    assert_eq!(
        c.get(&format!("/v1/webhooks/endpoints/{eid}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        c.get(&format!("/v1/webhooks/endpoints/{}", Uuid::new_v4()))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = c
        .patch(
            &format!("/v1/webhooks/endpoints/{eid}"),
            json!({"description": "main", "rate_limit_per_sec": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        c.get(&format!("/v1/webhooks/endpoints/{eid}/secret"))
            .await
            .status,
        StatusCode::OK
    );
    let r = c
        .post(
            &format!("/v1/webhooks/endpoints/{eid}/secret/rotate"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.receiver
        .set_secret("/hooks", r.body["key"].as_str().unwrap());
    assert_eq!(
        c.post(&format!("/v1/webhooks/endpoints/{eid}/test"), json!({}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let r = c
        .post(
            "/v1/events/example",
            json!({"event_type": "daily.data.sleep.created", "user_id": uid}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(
        c.post(
            "/v1/events/example",
            json!({"event_type": "daily.data.naps.created"})
        )
        .await
        .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert!(
        app.receiver.wait_for(3, Duration::from_secs(20)).await,
        "three deliveries arrive"
    );

    // The delivery log, an event's attempts, resend, recover, statistics.
    let log = format!("/v1/webhooks/endpoints/{eid}/events");
    assert!(
        eventually(Duration::from_secs(10), || async {
            c.get(&format!("{log}?status=succeeded")).await.body["data"]
                .as_array()
                .unwrap()
                .len()
                >= 3
        })
        .await,
        "the log shows three successes"
    );
    assert_eq!(c.get(&log).await.status, StatusCode::OK);
    assert_eq!(
        c.get(&format!("{log}?status=weird")).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let r = c.get(&format!("/v1/webhooks/events/{test_event}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        !r.body["deliveries"][0]["attempt_log"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{}",
        r.body
    );
    assert_eq!(
        c.get(&format!("/v1/webhooks/events/{}", Uuid::new_v4()))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = c
        .post(
            &format!("/v1/webhooks/endpoints/{eid}/events/{test_event}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = c
        .post(
            &format!("/v1/webhooks/endpoints/{eid}/recover"),
            json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(
        c.post(
            &format!("/v1/webhooks/endpoints/{eid}/recover"),
            json!({"since": "yesterday"})
        )
        .await
        .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(c.get("/v1/webhooks/stats").await.status, StatusCode::OK);
    assert_eq!(
        c.get(&format!("/v1/webhooks/stats?hours=48&endpoint_id={eid}"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        c.get("/v1/webhooks/stats?hours=0").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // The connect flow, as a browser walks it (the gateway's pages need no key).
    let r = c.post("/v1/link/token", json!({"user_id": uid, "provider": "oura", "redirect_url": app.receiver.url("/app/done")})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let mut url = r.body["link_url"].as_str().unwrap().to_string();
    for _ in 0..10 {
        let res = if url.starts_with(&c.base) {
            let r = c.send(c.http.get(&url)).await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{url}: {}", r.body);
            r.headers
        } else {
            c.http.get(&url).send().await.unwrap().headers().clone()
        };
        let next = res.get("location").expect("a redirect").to_str().unwrap();
        url = reqwest::Url::parse(&url)
            .unwrap()
            .join(next)
            .unwrap()
            .to_string();
        if url.contains("/app/done") {
            break;
        }
    }
    assert!(url.contains("state=success"), "{url}");
    let sleep = format!("/v1/summary/sleep/{uid}?start_date=2026-01-01");
    assert!(
        eventually(Duration::from_secs(60), || async {
            c.get(&sleep).await.body["sleep"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
        })
        .await,
        "the backfill stores sleep"
    );
    // Devices: the whole list, none for an Oura user; not a range of history.
    let r = c.get(&format!("/v1/devices/{uid}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["devices"], json!([]));
    assert_eq!(
        c.get(&format!("/v1/summary/devices/{uid}?start_date=2026-01-01"))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let heartrate = format!("/v1/timeseries/{uid}/heartrate?start_date=2026-01-01");
    assert!(
        eventually(Duration::from_secs(60), || async {
            c.get(&heartrate).await.body["data"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
        })
        .await
    );
    assert_eq!(
        c.get(&format!("/v1/summary/sleep/{uid}?start_date=someday"))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let r = c.get(&format!("/v1/user/{uid}/providers")).await;
    assert_eq!(r.body["data"][0]["provider"], "oura", "{}", r.body);
    // A re-pull, once the connect backfill is done.
    let providers = format!("/v1/user/{uid}/providers");
    assert!(
        eventually(Duration::from_secs(60), || async {
            c.get(&providers).await.body["data"][0]["backfill"]
                .as_array()
                .is_some_and(|b| b.iter().all(|p| p["status"] == "done"))
        })
        .await,
        "the connect backfill finishes"
    );
    let backfill = format!("/v1/user/{uid}/oura/backfill");
    let day = |d: i64| {
        (chrono::Utc::now() - chrono::Duration::days(d))
            .format("%Y-%m-%d")
            .to_string()
    };
    let r = c
        .post(&backfill, json!({"start_date": day(5), "end_date": day(1)}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(
        c.post(
            &backfill,
            json!({"start_date": "1990-01-01", "end_date": day(1)})
        )
        .await
        .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        c.post(&format!("/v1/user/{uid}/refresh"), json!({}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        c.post(&format!("/v1/user/{uid}/refresh"), json!({}))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        c.delete(&format!("/v1/user/{uid}/oura")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.delete(&format!("/v1/user/{uid}/oura")).await.status,
        StatusCode::NOT_FOUND
    );
    // The Link page (no provider chosen), one provider from it, a forged callback.
    let r = c
        .post(
            "/v1/link/token",
            json!({"user_id": uid, "redirect_url": app.receiver.url("/app/done")}),
        )
        .await;
    let link = reqwest::Url::parse(r.body["link_url"].as_str().unwrap()).unwrap();
    let page = c.send(c.http.get(link.as_str())).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.as_str().unwrap().contains("Oura"));
    assert_eq!(
        c.send(
            c.http
                .get(format!("{}/oura", link.as_str().split('?').next().unwrap()))
        )
        .await
        .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        c.send(c.http.get(format!("{}/v1/link/nope", c.base)))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.send(c.http.get(format!(
            "{}/v1/oauth/callback/oura?state=forged&code=x",
            c.base
        )))
        .await
        .status,
        StatusCode::BAD_REQUEST
    );

    // The webhook portal: a one-time link, its session, signing out.
    let r = c.send(c.request(Method::POST, "/v1/portal/sessions")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        c.post("/v1/portal/sessions", json!({"session_ttl_secs": 5}))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let r = c
        .post("/v1/portal/sessions", json!({"session_ttl_secs": 600}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let opened = c
        .http
        .get(r.body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let cookie = opened.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let portal = |m: Method| {
        c.http
            .request(m, format!("{}/v1/portal/session", c.base))
            .header("cookie", cookie.clone())
            .header("x-wearbridge-portal", "1")
    };
    assert_eq!(c.send(portal(Method::GET)).await.status, StatusCode::OK);
    assert_eq!(
        c.get("/v1/portal/session").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.send(portal(Method::DELETE)).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.send(portal(Method::GET)).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Deleting.
    assert_eq!(
        c.delete(&format!("/v1/webhooks/endpoints/{eid}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.delete(&format!("/v1/user/{uid}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.delete(&format!("/v1/user/{uid}")).await.status,
        StatusCode::NOT_FOUND
    );

    // `/v2` has a test of its own, below.
    c.assert_all_seen(|p| !p.starts_with("/v2/"));
}

/// The Junction-compatible `/v2` API: every operation's real replies, successes and
/// errors, against the document (Junction's models and error shapes).
async fn junction_replies_match_their_documented_schemas(db: TestDb) {
    let fx = FixtureServer::start().await.unwrap();
    let root = fx.root();
    let app = TestApp::spawn_with(db, move |c| c.providers_base_url = Some(root)).await;
    let c = Checker::new(&app).await;

    // The key in Junction's header, or as a bearer token; a wrong one is a 401.
    let with_header = |key: &str| {
        c.http
            .get(format!("{}/v2/user", c.base))
            .header("x-vital-api-key", key)
    };
    assert_eq!(c.send(with_header(&c.key)).await.status, StatusCode::OK);
    let r = c.send(with_header("wb_wrong")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["detail"]["error_type"], "unauthorized");
    assert_eq!(c.get("/v2/providers").await.status, StatusCode::OK);

    // Users.
    let r = c.post("/v2/user", json!({"client_user_id": "alice"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let uid = r.body["user_id"].as_str().unwrap().to_string();
    let r = c.post("/v2/user", json!({"client_user_id": "alice"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["detail"]["user_id"], uid.as_str());
    let r = c.post("/v2/user", json!({"client_user_id": " "})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.body["detail"][0]["loc"],
        json!(["body", "client_user_id"])
    );
    let r = c
        .post(
            "/v2/user",
            json!({"client_user_id": "bob", "fallback_time_zone": "Europe/Paris"}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not supported, so refused"
    );
    assert_eq!(c.get("/v2/user?limit=2").await.status, StatusCode::OK);
    assert_eq!(
        c.get("/v2/user?limit=0").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        c.get(&format!("/v2/user/{uid}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        c.get("/v2/user/not-a-uuid").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        c.get(&format!("/v2/user/{}", Uuid::new_v4())).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(c.get("/v2/user/resolve/alice").await.status, StatusCode::OK);

    // Link: a token, its OAuth link as JSON, and the flow walked to its end.
    let redirect = app.receiver.url("/app/done");
    let r = c
        .post(
            "/v2/link/token",
            json!({"user_id": uid, "provider": "oura", "redirect_url": redirect}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = r.body["link_token"].as_str().unwrap().to_string();
    let mut url = r.body["link_web_url"].as_str().unwrap().to_string();
    assert_eq!(
        c.post(
            "/v2/link/token",
            json!({"user_id": uid, "provider": "nope", "redirect_url": redirect})
        )
        .await
        .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let oauth = |token: Option<&str>| {
        let req = c
            .http
            .get(format!("{}/v2/link/provider/oauth/oura", c.base));
        match token {
            Some(t) => req.header("x-vital-link-token", t),
            None => req,
        }
    };
    let r = c.send(oauth(Some(&token))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["oauth_url"].as_str().unwrap().contains("state="));
    let r = c.send(oauth(None)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["detail"]["error_type"], "invalid_token");
    for _ in 0..10 {
        let headers = if url.starts_with(&c.base) {
            let r = c.send(c.http.get(&url)).await;
            assert!(
                r.status == StatusCode::SEE_OTHER || r.status == StatusCode::TEMPORARY_REDIRECT,
                "{url}: {}",
                r.status
            );
            r.headers
        } else {
            c.http.get(&url).send().await.unwrap().headers().clone()
        };
        let next = headers
            .get("location")
            .expect("a redirect")
            .to_str()
            .unwrap();
        url = reqwest::Url::parse(&url)
            .unwrap()
            .join(next)
            .unwrap()
            .to_string();
        if url.starts_with(&redirect) {
            break;
        }
    }
    assert_eq!(url, format!("{redirect}?state=success"));
    assert_eq!(
        c.send(c.http.get(format!("{}/v2/link/complete?r=forged", c.base)))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = c.get(&format!("/v2/user/providers/{uid}")).await;
    assert_eq!(r.body["providers"][0]["slug"], "oura", "{}", r.body);

    // Data, once the backfill has stored some.
    let range = "start_date=2000-01-01";
    let sleep = format!("/v2/summary/sleep/{uid}?{range}");
    assert!(
        eventually(Duration::from_secs(60), || async {
            c.get(&sleep).await.body["sleep"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
        })
        .await,
        "the backfill stores sleep"
    );
    for resource in ["activity", "workouts", "body", "recovery"] {
        let r = c
            .get(&format!("/v2/summary/{resource}/{uid}?{range}"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{resource}: {}", r.body);
    }
    // Oura shares no profile: the 404 is checked against the document. Polar's profile,
    // the one a fixture provider shares, is not connected here, so its 200 is not.
    assert_eq!(
        c.get(&format!("/v2/summary/profile/{uid}")).await.status,
        StatusCode::NOT_FOUND
    );
    let heartrate = format!("/v2/timeseries/{uid}/heartrate?{range}");
    assert!(
        eventually(Duration::from_secs(60), || async {
            c.get(&heartrate)
                .await
                .body
                .as_array()
                .is_some_and(|s| !s.is_empty())
        })
        .await
    );
    let r = c
        .get(&format!("/v2/timeseries/{uid}/heartrate/grouped?{range}"))
        .await;
    assert!(r.body["groups"]["oura"][0]["data"]
        .as_array()
        .is_some_and(|d| !d.is_empty()));
    assert_eq!(
        c.get(&format!("/v2/timeseries/{uid}/sleep?{range}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = c
        .get(&format!("/v2/summary/sleep/{uid}?start_date=someday"))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["detail"][0]["loc"], json!(["query", "start_date"]));

    // Devices: a Dexcom user's, listed, one by id, and raw.
    let r = c.post("/v2/user", json!({"client_user_id": "cgm"})).await;
    let cgm = r.body["user_id"].as_str().unwrap().to_string();
    app.connect(&cgm, "dexcom").await;
    let devices = format!("/v2/user/{cgm}/device");
    assert!(
        eventually(Duration::from_secs(60), || async {
            c.get(&devices)
                .await
                .body
                .as_array()
                .is_some_and(|d| d.len() == 2)
        })
        .await,
        "the backfill stores the devices"
    );
    let listed = c.get(&devices).await.body;
    let id = listed[0]["id"].as_str().unwrap();
    let r = c.get(&format!("/v2/user/{cgm}/device/{id}")).await;
    assert_eq!(
        (r.status, r.body["id"].as_str()),
        (StatusCode::OK, Some(id))
    );
    assert_eq!(
        c.get(&format!("/v2/user/{cgm}/device/{uid}")).await.status,
        StatusCode::NOT_FOUND
    );
    let r = c
        .get(&format!("/v2/summary/devices/{cgm}/raw?provider=dexcom"))
        .await;
    assert_eq!(r.body["devices"].as_array().map(Vec::len), Some(2));
    assert_eq!(r.body["devices"][0]["source"]["slug"], "dexcom");
    assert_eq!(
        c.get(&format!("/v2/summary/devices/{cgm}/raw?provider=nope"))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        c.get(&format!("/v2/user/{uid}/device")).await.body,
        json!([]),
        "none for an Oura user"
    );

    // Introspection.
    let r = c
        .get(&format!("/v2/introspect/resources?user_id={uid}"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["data"][0]["provider"]["oura"]["sleep"]["sent_count"].as_i64() > Some(0));
    let r = c.get("/v2/introspect/historical_pull?user_limit=10").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["data"][0]["user_id"], uid.as_str());
    assert_eq!(
        c.get("/v2/introspect/resources?user_limit=0").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Refresh, deregister, delete.
    let refresh = format!("/v2/user/refresh/{uid}");
    assert_eq!(c.post(&refresh, json!({})).await.status, StatusCode::OK);
    assert_eq!(
        c.post(&refresh, json!({})).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let r = c.delete(&format!("/v2/user/{uid}/oura")).await;
    assert_eq!(
        (r.status, &r.body),
        (StatusCode::OK, &json!({"success": true}))
    );
    assert_eq!(
        c.delete(&format!("/v2/user/{uid}/oura")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.delete(&format!("/v2/user/{uid}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        c.delete(&format!("/v2/user/{uid}")).await.status,
        StatusCode::NOT_FOUND
    );

    c.assert_all_seen(|p| p.starts_with("/v2/") && p != "/v2/summary/profile/{user_id}");
}

// ---------------------------------------------------------------------------------
// What schemathesis found.

/// NUL characters, URLs too long for PostgreSQL's index once normalised, limits
/// counted in bytes: each was a 500 (or a wrong answer) before.
async fn input_the_database_cannot_store_is_refused_with_4xx(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (status, body) = app
        .api
        .post("/v1/user", json!({"client_user_id": "a\u{0}b"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_error")),
        "{body}"
    );
    let (status, body) = app.api.get("/v1/user/resolve/a%00b").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request")),
        "{body}"
    );
    let (status, body) = app.api.get("/v1/user?offset=%00").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request")),
        "{body}"
    );
    // The six characters \u0000 are text like any other.
    let (status, _) = app
        .api
        .post("/v1/user", json!({"client_user_id": "literally \\u0000"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // Webhook URLs: at most 2048 characters as sent...
    let long = format!("https://example.com/{}", "x".repeat(3000));
    let (status, body) = app
        .api
        .post("/v1/webhooks/endpoints", json!({"url": long}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 2048"),
        "{body}"
    );
    // ...and stored normalised, where 2000 CJK characters are 18000 percent-encoded
    // bytes (a 500 from PostgreSQL's btree index before).
    let cjk: String = (0..2000u32)
        .map(|i| char::from_u32(0x4e00 + (i * 7919) % 20000).unwrap())
        .collect();
    let (status, body) = app
        .api
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": format!("https://example.com/{cjk}")}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("once normalised"),
        "{body}"
    );
    // A URL that grows past 2048 when normalised but stays storable is taken, and its
    // endpoint can be edited without the stored URL failing the limit for what is sent.
    let grows = format!("https://example.com/{}", "é".repeat(400));
    let (status, ep) = app
        .api
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": grows, "enabled": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");
    assert_eq!(
        ep["url"].as_str().unwrap().len(),
        "https://example.com/".len() + 400 * 6
    );
    let host_only = format!(
        "https://{}.example.com",
        "a".repeat(2048 - "https://.example.com".len())
    );
    assert_eq!(host_only.chars().count(), 2048);
    let (status, ep2) = app
        .api
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": host_only, "enabled": false}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "2048 characters, 2049 once normalised (a trailing slash): {ep2}"
    );
    for ep in [&ep, &ep2] {
        let (status, body) = app
            .api
            .patch(
                &format!("/v1/webhooks/endpoints/{}", ep["id"].as_str().unwrap()),
                json!({"description": "x"}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the stored URL is not held to the limit for what is sent: {body}"
        );
    }

    // Limits count characters, not bytes.
    let (status, body) = app
        .api
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": app.receiver.url("/x"), "description": "é".repeat(1000)}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "1000 characters, 2000 bytes: {body}"
    );
    let (status, body) = app
        .api
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": app.receiver.url("/y"), "description": "é".repeat(1001)}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = app
        .api
        .post("/v1/user", json!({"client_user_id": "𝄞".repeat(255)}))
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "255 characters, 1020 bytes: {body}"
    );
    let (status, _) = app
        .api
        .post("/v1/user", json!({"client_user_id": "𝄞".repeat(256)}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // The framework's own rejections leave as JSON too: a path it cannot decode, a
    // query string it cannot parse, a body over the limit.
    let res = app
        .api
        .http
        .get(format!("{}/v1/user/%FF", app.gateway.url()))
        .bearer_auth(&app.api.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
    let res = app
        .api
        .http
        .get(format!(
            "{}/v1/oauth/callback/oura?code=a&code=b",
            app.gateway.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = res.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
    let (status, body) = app.api.get("/v1/user?limit=abc").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request")),
        "{body}"
    );
    let huge = "x".repeat(app.gateway.state.config.max_body_bytes + 1);
    let res = app
        .api
        .http
        .post(format!("{}/v1/user", app.gateway.url()))
        .bearer_auth(&app.api.key)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = res.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
}

/// Requests the document allows are taken (a `null` optional body, a whole number
/// written `60.0`); requests it does not allow are refused (an array for an object,
/// a test event for a disabled endpoint is a conflict, not bad input).
async fn requests_the_document_allows_are_taken_and_others_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (status, body) = app
        .api
        .send(Method::POST, "/v1/portal/sessions", Some(Value::Null))
        .await;
    assert_eq!(status, StatusCode::CREATED, "`null` is no body: {body}");
    let (status, body) = app
        .api
        .post("/v1/portal/sessions", json!({"session_ttl_secs": 600.0}))
        .await;
    assert_eq!(
        (status, body["session_ttl_secs"].as_i64()),
        (StatusCode::CREATED, Some(600)),
        "{body}"
    );
    let (status, body) = app
        .api
        .post("/v1/portal/sessions", json!({"session_ttl_secs": 600.5}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = app.api.post("/v1/portal/sessions", json!([])).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body")),
        "{body}"
    );
    // Lengths count what is sent (trimmed only after).
    let (status, body) = app
        .api
        .post(
            "/v1/user",
            json!({"client_user_id": format!("a{}", "\u{b}".repeat(255))}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "256 characters as sent: {body}"
    );
    let (status, body) = app
        .api
        .post(
            "/v1/user",
            json!({"client_user_id": format!(" a{} ", "b".repeat(252))}),
        )
        .await;
    assert_eq!(
        (status, body["client_user_id"].as_str().map(str::len)),
        (StatusCode::CREATED, Some(253)),
        "{body}"
    );

    let ep = app
        .endpoint("/x", json!({"rate_limit_per_sec": 10.0}))
        .await;
    assert_eq!(ep["rate_limit_per_sec"], 10);
    let id = ep["id"].as_str().unwrap();
    let (status, body) = app
        .api
        .patch(
            &format!("/v1/webhooks/endpoints/{id}"),
            json!({"rate_limit_per_sec": 20.0}),
        )
        .await;
    assert_eq!(
        (status, body["rate_limit_per_sec"].as_i64()),
        (StatusCode::OK, Some(20)),
        "{body}"
    );
    let rotate = format!("/v1/webhooks/endpoints/{id}/secret/rotate");
    let (status, body) = app.api.send(Method::POST, &rotate, Some(Value::Null)).await;
    assert_eq!(status, StatusCode::OK, "`null` is no body: {body}");
    let (status, body) = app.api.post(&rotate, json!([])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let res = app
        .api
        .http
        .post(format!("{}{rotate}", app.gateway.url()))
        .bearer_auth(&app.api.key)
        .header("content-type", "application/json")
        .body("\t")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "a JSON body that is not JSON"
    );
    let res = app
        .api
        .http
        .post(format!("{}{rotate}", app.gateway.url()))
        .bearer_auth(&app.api.key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "no body at all generates a secret"
    );
    let (status, _) = app
        .api
        .post(&rotate, json!({"key": format!("whsec_{}", "A".repeat(32))}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.api.post(&rotate, json!({"key": "whsec_short"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let (status, body) = app
        .api
        .patch(
            &format!("/v1/webhooks/endpoints/{id}"),
            json!({"headers": {"": "x"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = app
        .api
        .patch(
            &format!("/v1/webhooks/endpoints/{id}"),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .api
        .post(&format!("/v1/webhooks/endpoints/{id}/test"), json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict")),
        "{body}"
    );
}
