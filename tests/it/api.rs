//! The HTTP API: authentication, tenancy, users, endpoints, validation and errors.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use wearbridge::seal::Purpose;

use crate::helpers::{TestApp, TestDb};

crate::backend_tests!(
    every_v1_route_needs_a_valid_key,
    users_crud_with_paging_and_conflicts,
    team_a_cannot_see_or_change_team_b,
    endpoints_validate_input_and_refuse_private_targets,
    endpoint_crud_secret_and_rotation,
    bad_input_gets_clear_json_errors,
    event_types_and_example_events,
    the_first_metrics_scrape_shows_every_family,
);

/// A fresh gateway's first `/metrics` scrape already has every family, each counter at 0
/// for every label value known in advance (each registered provider among them), so
/// dashboards and alerts see a series from the start and its first increase.
async fn the_first_metrics_scrape_shows_every_family(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let text = reqwest::get(format!("{}/metrics", app.api.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (family, kind) in [
        ("deliveries", "counter"),
        ("delivery_attempts", "counter"),
        ("delivery_attempt_duration_seconds", "histogram"),
        ("deliveries_in_flight", "gauge"),
        ("deliveries_due", "gauge"),
        ("jobs_due", "gauge"),
        ("provider_requests", "counter"),
        ("provider_rate_limit_waits", "counter"),
        ("token_refreshes", "counter"),
    ] {
        let declared = format!("# TYPE wearbridge_{family} {kind}");
        assert!(text.contains(&declared), "{declared}:\n{text}");
        let series = text
            .lines()
            .filter(|l| l.starts_with(&format!("wearbridge_{family}")))
            .count();
        assert!(series > 0, "wearbridge_{family} has no series:\n{text}");
    }
    let zero = |series: String| {
        assert!(
            text.lines().any(|l| l == format!("{series} 0")),
            "{series} is not at 0:\n{text}"
        );
    };
    for outcome in ["succeeded", "retrying", "exhausted"] {
        zero(format!(
            r#"wearbridge_deliveries_total{{outcome="{outcome}"}}"#
        ));
    }
    for outcome in ["success", "failure", "gone"] {
        zero(format!(
            r#"wearbridge_delivery_attempts_total{{outcome="{outcome}"}}"#
        ));
    }
    for p in wearbridge::providers::registry() {
        let id = p.id();
        zero(format!(r#"wearbridge_jobs_due{{provider="{id}"}}"#));
        zero(format!(
            r#"wearbridge_provider_requests_total{{provider="{id}",status="200"}}"#
        ));
        for reason in ["limit", "paused", "yielding"] {
            zero(format!(
                r#"wearbridge_provider_rate_limit_waits_total{{provider="{id}",reason="{reason}"}}"#
            ));
        }
        for reason in ["panic", "malformed", "gave_up"] {
            zero(format!(
                r#"wearbridge_jobs_failed_total{{provider="{id}",reason="{reason}"}}"#
            ));
        }
        for outcome in ["success", "refused", "transient"] {
            zero(format!(
                r#"wearbridge_token_refreshes_total{{provider="{id}",outcome="{outcome}"}}"#
            ));
        }
    }
}

async fn every_v1_route_needs_a_valid_key(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let http = reqwest::Client::new();
    for (method, path) in [
        ("GET", "/v1/user"),
        ("POST", "/v1/user"),
        ("GET", "/v1/event-types"),
        ("GET", "/v1/webhooks/endpoints"),
        ("POST", "/v1/events/example"),
    ] {
        let url = format!("{}{}", app.gateway.url(), path);
        let m: reqwest::Method = method.parse().unwrap();
        let r = http.request(m.clone(), &url).send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a key"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        let r = http
            .request(m, &url)
            .bearer_auth("wb_wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a wrong key"
        );
    }
    let r = http
        .get(format!("{}/health", app.gateway.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "health needs no key");
}

async fn users_crud_with_paging_and_conflicts(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let u = app.user("client-1").await;
    let id = u["user_id"].as_str().unwrap();
    assert_eq!(u["client_user_id"], "client-1");
    let (s, dup) = app
        .api
        .post("/v1/user", json!({"client_user_id": "client-1"}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(dup["error"]["code"], "conflict");
    let (s, got) = app.api.get(&format!("/v1/user/{id}")).await;
    assert_eq!((s, &got["user_id"]), (StatusCode::OK, &u["user_id"]));
    let (s, got) = app.api.get("/v1/user/resolve/client-1").await;
    assert_eq!((s, &got["user_id"]), (StatusCode::OK, &u["user_id"]));
    for i in 2..=7 {
        app.user(&format!("client-{i}")).await;
    }
    let (s, page) = app.api.get("/v1/user?offset=2&limit=3").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["total"], 7);
    assert_eq!(page["users"].as_array().unwrap().len(), 3);
    assert_eq!(page["users"][0]["client_user_id"], "client-3");
    let (s, _) = app.api.get("/v1/user?limit=0").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app.api.get("/v1/user?limit=abc").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app.api.delete(&format!("/v1/user/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.api.get(&format!("/v1/user/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.api.delete(&format!("/v1/user/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .api
        .post("/v1/user", json!({"client_user_id": "  "}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn team_a_cannot_see_or_change_team_b(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let b = app.other_team().await;
    // Team A's things.
    let user = app.user("alice").await;
    let uid = user["user_id"].as_str().unwrap().to_string();
    let ep = app.endpoint("/a", json!({})).await;
    let eid = ep["id"].as_str().unwrap().to_string();
    let event_id = ep["test_event_id"].as_str().unwrap().to_string();
    assert!(app.receiver.wait_for(1, Duration::from_secs(10)).await);

    // Team B sees nothing of them: 404 everywhere, exactly as for ids that do not exist.
    for path in [
        format!("/v1/user/{uid}"),
        "/v1/user/resolve/alice".to_string(),
        format!("/v1/webhooks/endpoints/{eid}"),
        format!("/v1/webhooks/endpoints/{eid}/secret"),
        format!("/v1/webhooks/endpoints/{eid}/events"),
        format!("/v1/webhooks/events/{event_id}"),
    ] {
        let (s, body) = b.get(&path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "team B GET {path}: {body}");
    }
    let (_, list) = b.get("/v1/user").await;
    assert_eq!(list["total"], 0);
    let (_, eps) = b.get("/v1/webhooks/endpoints").await;
    assert_eq!(eps["data"].as_array().unwrap().len(), 0);

    // … and changes nothing.
    let (s, _) = b
        .patch(
            &format!("/v1/webhooks/endpoints/{eid}"),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = b
        .post(
            &format!("/v1/webhooks/endpoints/{eid}/secret/rotate"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = b
        .post(
            &format!("/v1/webhooks/endpoints/{eid}/events/{event_id}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = b
        .post(
            &format!("/v1/webhooks/endpoints/{eid}/recover"),
            json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = b
        .post(&format!("/v1/webhooks/endpoints/{eid}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = b.delete(&format!("/v1/webhooks/endpoints/{eid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = b.delete(&format!("/v1/user/{uid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = b
        .post(
            "/v1/events/example",
            json!({"event_type": "webhook.test", "user_id": uid}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "team B cannot publish for team A's user"
    );
    // Team B's example events never reach team A's endpoint.
    let (s, out) = b
        .post("/v1/events/example", json!({"event_type": "webhook.test"}))
        .await;
    assert_eq!((s, &out["deliveries"]), (StatusCode::ACCEPTED, &json!(0)));

    let (s, still) = app.api.get(&format!("/v1/webhooks/endpoints/{eid}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(still["enabled"], true);
    let (s, _) = app.api.get(&format!("/v1/user/{uid}")).await;
    assert_eq!(s, StatusCode::OK);
}

async fn endpoints_validate_input_and_refuse_private_targets(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let cases = [
        (json!({"url": "https://10.0.0.5/hook"}), "private"),
        (
            json!({"url": "https://169.254.169.254/latest"}),
            "link-local",
        ),
        (json!({"url": "https://[::1]/x"}), "loopback"),
        (json!({"url": "ftp://example.com/"}), "scheme"),
        (json!({"url": "nope"}), "not valid"),
        (
            json!({"url": "https://example.com/", "event_types": ["daily.data.sleep.created", "daily.data.naps.created", "x.y"]}),
            "daily.data.naps.created, x.y",
        ),
        (
            json!({"url": "https://example.com/", "method": "PUT"}),
            "method",
        ),
        (
            json!({"url": "https://example.com/", "headers": {"webhook-signature": "x"}}),
            "cannot be overridden",
        ),
        (
            json!({"url": "https://example.com/", "headers": {"bad header": "x"}}),
            "not a valid header name",
        ),
        (
            json!({"url": "https://example.com/", "secret": "not-a-secret"}),
            "whsec_",
        ),
        (
            json!({"url": "https://example.com/", "rate_limit_per_sec": 0}),
            "rate_limit_per_sec",
        ),
    ];
    for (body, needle) in cases {
        let (s, err) = app.api.post("/v1/webhooks/endpoints", body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {err}");
        assert_eq!(err["error"]["code"], "validation_error");
        let msg = err["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(needle),
            "{body}: message {msg:?} should mention {needle:?}"
        );
    }
    // Without the allow-list, loopback is refused too; with http disallowed, http is.
    let strict_db = TestDb::sqlite();
    let strict = TestApp::spawn_with(strict_db, |c| {
        c.allow_private_cidrs.clear();
        c.allow_http = false;
    })
    .await;
    let (s, err) = strict
        .api
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": "https://127.0.0.1:9/x"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let (s, err) = strict
        .api
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": "https://localhost:9/x"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let (s, err) = strict
        .api
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": "http://example.com/x"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("https"));
    let (s, _) = strict
        .api
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": "https://example.com/x"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
}

async fn endpoint_crud_secret_and_rotation(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let ep = app.endpoint("/crud", json!({"description": "main", "event_types": ["daily.data.sleep.created"], "headers": {"X-Tenant": "acme"}})).await;
    let id = ep["id"].as_str().unwrap();
    let secret = ep["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(ep["method"], "POST");
    assert_eq!(ep["headers"]["x-tenant"], "acme");
    // Creating it delivered a webhook.test event to it (despite its filter).
    assert!(app.receiver.wait_for(1, Duration::from_secs(10)).await);
    let first = &app.receiver.received()[0];
    assert!(first.verified);
    assert!(first.body.contains("\"webhook.test\""));
    // Duplicate URL in the same team.
    let (s, err) = app
        .api
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": app.receiver.url("/crud")}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{err}");
    // The secret is sealed at rest.
    let stored = app
        .store()
        .get_endpoint(app.team_id, id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.secret_sealed.contains(&secret[6..]));
    assert_eq!(
        app.sealer
            .open(Purpose::EndpointSecret, &stored.secret_sealed)
            .unwrap(),
        secret
    );
    // A supplied secret is used as is.
    let mine = wearbridge::seal::new_webhook_secret();
    let (s, ep2) = app
        .api
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": app.receiver.url("/mine"), "secret": mine, "enabled": false}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(ep2["secret"], mine.as_str());
    assert!(
        ep2["test_event_id"].is_null(),
        "a disabled endpoint gets no test event"
    );

    let (s, got) = app.api.get(&format!("/v1/webhooks/endpoints/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        got.get("secret").is_none(),
        "the secret is only shown by its own route"
    );
    let (_, sec) = app
        .api
        .get(&format!("/v1/webhooks/endpoints/{id}/secret"))
        .await;
    assert_eq!(sec["key"], secret.as_str());

    let (s, up) = app
        .api
        .patch(
            &format!("/v1/webhooks/endpoints/{id}"),
            json!({"description": "renamed", "method": "get", "rate_limit_per_sec": 10}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{up}");
    assert_eq!(
        (
            up["description"].as_str(),
            up["method"].as_str(),
            up["rate_limit_per_sec"].as_i64()
        ),
        (Some("renamed"), Some("GET"), Some(10))
    );
    assert_eq!(
        up["event_types"],
        json!(["daily.data.sleep.created"]),
        "unpatched fields stay"
    );
    let (_, up) = app
        .api
        .patch(
            &format!("/v1/webhooks/endpoints/{id}"),
            json!({"rate_limit_per_sec": null}),
        )
        .await;
    assert!(up["rate_limit_per_sec"].is_null());
    let (s, _) = app
        .api
        .patch(
            &format!("/v1/webhooks/endpoints/{id}"),
            json!({"url": app.receiver.url("/mine")}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // Rotation: a new key, the old one still valid for the grace period.
    let (s, rot) = app
        .api
        .post(
            &format!("/v1/webhooks/endpoints/{id}/secret/rotate"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let new_key = rot["key"].as_str().unwrap();
    assert_ne!(new_key, secret);
    assert!(rot["previous_key_valid_until"].is_string());
    let (_, sec) = app
        .api
        .get(&format!("/v1/webhooks/endpoints/{id}/secret"))
        .await;
    assert_eq!(sec["key"], new_key);

    let (s, body) = app
        .api
        .delete(&format!("/v1/webhooks/endpoints/{id}"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    let (s, _) = app.api.get(&format!("/v1/webhooks/endpoints/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = app.api.get("/v1/webhooks/endpoints").await;
    let listed: Vec<&Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["id"])
        .collect();
    assert_eq!(
        listed,
        vec![&ep2["id"]],
        "only the other endpoint is listed"
    );
    let (s, _) = app
        .api
        .get(&format!("/v1/webhooks/endpoints/{id}/secret"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nor is its secret served");
}

async fn bad_input_gets_clear_json_errors(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| c.max_body_bytes = 4096).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/user", app.gateway.url());
    let send = |body: String, ct: &'static str| {
        http.post(&url)
            .bearer_auth(&app.api.key)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = send("{not json".into(), "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_json"
    );
    let r = send(
        r#"{"client_user_id": "x", "extra": 1}"#.into(),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused"
    );
    let body = r.json::<Value>().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("extra"),
        "{body}"
    );
    let r = send(r#"{"client_user_id": 5}"#.into(), "application/json")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = send(r#"{"client_user_id": "x"}"#.into(), "text/plain")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = format!(r#"{{"client_user_id": "{}"}}"#, "x".repeat(10_000));
    let r = send(big, "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "payload_too_large"
    );
    for path in [
        "/v1/user/not-a-uuid",
        "/v1/webhooks/endpoints/123",
        "/v1/webhooks/events/zzz",
        "/v1/nothing-here",
    ] {
        let (s, body) = app.api.get(path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
    let (s, body) = app.api.send(reqwest::Method::PUT, "/v1/user", None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
    let ep = app.endpoint("/x", json!({})).await;
    let (s, err) = app
        .api
        .post(
            &format!(
                "/v1/webhooks/endpoints/{}/recover",
                ep["id"].as_str().unwrap()
            ),
            json!({"since": "yesterday"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("RFC 3339"));
    let (s, _) = app
        .api
        .get(&format!(
            "/v1/webhooks/endpoints/{}/events?limit=9999",
            ep["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app
        .api
        .get(&format!(
            "/v1/webhooks/endpoints/{}/events?status=weird",
            ep["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn event_types_and_example_events(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (s, types) = app.api.get("/v1/event-types").await;
    assert_eq!(s, StatusCode::OK);
    let types = types["data"].as_array().unwrap().clone();
    let names: Vec<&str> = types.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for want in [
        "provider.connection.created",
        "historical.data.sleep.created",
        "daily.data.workouts.updated",
        "daily.data.heartrate.created",
        "webhook.test",
    ] {
        assert!(names.contains(&want), "{want} missing from the catalogue");
    }
    assert!(types
        .iter()
        .all(|t| t["example"].is_object() && t["description"].is_string()));

    let sleep_ep = app
        .endpoint(
            "/sleep",
            json!({"event_types": ["daily.data.sleep.created"]}),
        )
        .await;
    app.endpoint("/all", json!({})).await;
    assert!(
        app.receiver.wait_for(2, Duration::from_secs(10)).await,
        "two test events"
    );
    let user = app.user("bob").await;
    let (s, out) = app
        .api
        .post(
            "/v1/events/example",
            json!({"event_type": "daily.data.sleep.created", "user_id": user["user_id"]}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["deliveries"], 2);
    let (_, out) = app
        .api
        .post(
            "/v1/events/example",
            json!({"event_type": "daily.data.workouts.created"}),
        )
        .await;
    assert_eq!(
        out["deliveries"], 1,
        "the sleep-only endpoint is not subscribed to workouts"
    );
    let (s, err) = app
        .api
        .post(
            "/v1/events/example",
            json!({"event_type": "daily.data.naps.created"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(app.receiver.wait_for(5, Duration::from_secs(10)).await);
    let sleep_got: Vec<Value> = app
        .receiver
        .received()
        .iter()
        .filter(|r| r.path == "/sleep")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(sleep_got.len(), 2);
    let ev = sleep_got
        .iter()
        .find(|v| v["event_type"] == "daily.data.sleep.created")
        .unwrap();
    assert_eq!(ev["user_id"], user["user_id"]);
    assert_eq!(ev["client_user_id"], "bob");
    assert_eq!(ev["team_id"], app.team_id.to_string());
    assert_eq!(ev["data"]["user_id"], user["user_id"]);
    assert!(ev["data"]["bedtime_start"].is_string());
    let _ = sleep_ep;
}
