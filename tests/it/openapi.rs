//! `/openapi.json`: generated from the handlers, it documents every operation the
//! router serves (and the router serves every one it documents), with the shared error
//! responses; and input the database could not store gets a clear 4xx, never a 500.
//! Schema conformance of real responses is checked from outside by schemathesis in CI
//! (`.ci/run`).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{TestApp, TestDb};

backend_tests!(input_the_database_cannot_store_is_refused_with_4xx);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_and_the_router_agree_on_every_operation() {
    let app = TestApp::spawn(TestDb::sqlite()).await;
    let res = reqwest::get(format!("{}/openapi.json", app.gateway.url())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let spec: Value = res.json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"), "{}", spec["openapi"]);
    assert_eq!(spec, serde_json::to_value(wearbridge::api::openapi_document()).unwrap(), "served as generated");
    assert_eq!(spec["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");

    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        assert!(path.starts_with("/v1/"), "{path}");
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let public = op["security"].as_array().is_some_and(|s| s.iter().all(|r| r.as_object().is_some_and(|o| o.is_empty())));
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.keys().any(|k| k.starts_with('2') || k.starts_with('3')), "{method} {path} documents its success");
            for code in ["400", "404", "422"] {
                assert!(responses.contains_key(code), "{method} {path} documents {code}");
            }
            assert_eq!(responses.contains_key("401"), !public, "{method} {path}: 401 exactly when a key is needed");
            if op.get("requestBody").is_some() {
                assert!(responses.contains_key("413") && responses.contains_key("415"), "{method} {path}");
            }
            for err in ["400", "404", "422"] {
                assert_eq!(responses[err]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Error", "{method} {path} {err}");
            }
            // The router serves it: a request reaches a handler, not the fallbacks.
            let concrete: Vec<String> = path
                .split('/')
                .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) if name.ends_with("id") => "0194a0c0-0000-7000-8000-000000000000".to_string(),
                    Some(name) => format!("some-{name}"),
                    None => seg.to_string(),
                })
                .collect();
            let url = format!("{}{}", app.gateway.url(), concrete.join("/"));
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut req = app.api.http.request(m, &url).bearer_auth(&app.api.key);
            if op.get("requestBody").is_some() {
                req = req.json(&json!({}));
            }
            let body: Value = req.send().await.unwrap().json().await.unwrap_or(Value::Null);
            let code = body["error"]["code"].as_str().unwrap_or("");
            assert!(code != "route_not_found" && code != "method_not_allowed", "{method} {path} is documented but not served: {body}");
        }
    }
    assert_eq!(operations, 33, "every /v1 operation is documented");
    for schema in ["Error", "Endpoint", "CreatedEndpoint", "EventDetail", "AttemptView", "Stats", "SessionLink", "User"] {
        assert!(spec["components"]["schemas"].get(schema).is_some(), "schema {schema}");
    }
}

async fn input_the_database_cannot_store_is_refused_with_4xx(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (status, body) = app.api.post("/v1/user", json!({"client_user_id": "a\u{0}b"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_error")), "{body}");
    let (status, body) = app.api.get("/v1/user/resolve/a%00b").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")), "{body}");
    // The six characters \u0000 are text like any other.
    let (status, _) = app.api.post("/v1/user", json!({"client_user_id": "literally \\u0000"})).await;
    assert_eq!(status, StatusCode::CREATED);

    let long = format!("https://example.com/{}", "x".repeat(3000));
    let (status, body) = app.api.post("/v1/webhooks/endpoints", json!({"url": long})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("at most 2048"), "{body}");
    let (status, body) = app.api.post("/v1/webhooks/endpoints", json!({"url": app.receiver.url("/x"), "description": "é".repeat(1000)})).await;
    assert_eq!(status, StatusCode::CREATED, "1000 characters, 2000 bytes: {body}");

    // The framework's own rejections leave as JSON too.
    let res = app.api.http.get(format!("{}/v1/user/%FF", app.gateway.url())).bearer_auth(&app.api.key).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
}
