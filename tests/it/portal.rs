//! The webhook portal's server side: one-time links, the session cookie and its CSRF
//! header, tenancy through the same `/v1` routes, sign-out, the pages' security headers,
//! and the delivery statistics its charts draw.

use std::time::Duration;

use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use wearbridge::receiver::Behaviour;

use crate::backend_tests;
use crate::helpers::{TestApp, TestDb};

backend_tests!(
    a_portal_link_opens_one_session_scoped_to_its_team,
    stats_count_attempts_per_hour_by_outcome
);

/// A browser-like client: no redirects followed, cookies handled by hand.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Opens a portal link; returns the session cookie (`wb_portal=…`).
async fn open(link: &str) -> String {
    let res = browser().get(link).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "a fresh link redirects into the portal"
    );
    assert_eq!(res.headers()[LOCATION], "/portal/");
    let cookie = res.headers()[SET_COOKIE].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attr), "cookie lacks {attr}: {cookie}");
    }
    cookie.split(';').next().unwrap().to_string()
}

async fn portal_call(
    app: &TestApp,
    cookie: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    csrf: bool,
) -> (StatusCode, Value) {
    let mut req = browser()
        .request(method, format!("{}{path}", app.gateway.url()))
        .header(COOKIE, cookie);
    if csrf {
        req = req.header("X-Wearbridge-Portal", "1");
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn a_portal_link_opens_one_session_scoped_to_its_team(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let mine = app.endpoint("/mine", json!({"description": "ours"})).await;
    let other = app.other_team().await;
    let (_, theirs) = other
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": app.receiver.url("/theirs")}),
        )
        .await;

    let (status, link) = app
        .api
        .post("/v1/portal/sessions", json!({"session_ttl_secs": 600}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/portal/open/", app.gateway.url())),
        "{url}"
    );
    assert_eq!(link["session_ttl_secs"], 600);
    // An empty POST takes the defaults; out-of-range lifetimes are refused.
    let res = app
        .api
        .http
        .post(format!("{}/v1/portal/sessions", app.gateway.url()))
        .bearer_auth(&app.api.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let (status, err) = app
        .api
        .post("/v1/portal/sessions", json!({"session_ttl_secs": 5}))
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_error"))
    );

    let cookie = open(url).await;
    // Single use: the same link again is gone, and starts no session.
    let again = browser().get(url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::GONE);
    assert!(again.headers().get(SET_COOKIE).is_none());
    assert!(again
        .text()
        .await
        .unwrap()
        .contains("expired or was already used"));

    // The session acts for its team through the ordinary routes, and only with the header.
    let (status, _) = portal_call(
        &app,
        &cookie,
        Method::GET,
        "/v1/webhooks/endpoints",
        None,
        false,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a cookie without the portal header is no credential"
    );
    let (status, list) = portal_call(
        &app,
        &cookie,
        Method::GET,
        "/v1/webhooks/endpoints",
        None,
        true,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![mine["id"].as_str().unwrap()]);
    let (status, _) = portal_call(
        &app,
        &cookie,
        Method::GET,
        &format!("/v1/webhooks/endpoints/{}", theirs["id"].as_str().unwrap()),
        None,
        true,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another team's endpoint does not exist for this portal"
    );
    // The same validation as the API: an unknown event type is a 422 naming it.
    let (status, err) = portal_call(
        &app,
        &cookie,
        Method::POST,
        "/v1/webhooks/endpoints",
        Some(json!({"url": app.receiver.url("/new"), "event_types": ["no.such.type"]})),
        true,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no.such.type"),
        "{err}"
    );

    let (status, me) =
        portal_call(&app, &cookie, Method::GET, "/v1/portal/session", None, true).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["team"]["name"], "test team");
    assert_eq!(me["team"]["id"], app.team_id.to_string());
    // A portal cannot mint more portals, and an API key is not a portal session.
    let (status, _) = portal_call(
        &app,
        &cookie,
        Method::POST,
        "/v1/portal/sessions",
        Some(json!({})),
        true,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.api.get("/v1/portal/session").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Signing out ends the session for good.
    let (status, _) = portal_call(
        &app,
        &cookie,
        Method::DELETE,
        "/v1/portal/session",
        None,
        true,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = portal_call(
        &app,
        &cookie,
        Method::GET,
        "/v1/webhooks/endpoints",
        None,
        true,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = portal_call(
        &app,
        "wb_portal=made-up",
        Method::GET,
        "/v1/webhooks/endpoints",
        None,
        true,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The pages: a strict CSP (no inline script), never framed.
    for (path, kind) in [
        ("/portal/", "text/html"),
        ("/portal/app.js", "text/javascript"),
        ("/portal/app.css", "text/css"),
    ] {
        let res = browser()
            .get(format!("{}{path}", app.gateway.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{path}"
        );
        let csp = res.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'")
                && !csp.contains("unsafe-inline")
                && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(
            !res.text().await.unwrap().trim().is_empty(),
            "{path} has content"
        );
    }
}

async fn stats_count_attempts_per_hour_by_outcome(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let good = app.endpoint("/good", json!({})).await;
    let bad = app.endpoint("/bad", json!({})).await;
    assert!(
        app.receiver.wait_for(2, Duration::from_secs(10)).await,
        "both test events arrive"
    );
    app.receiver.set_behaviour(
        "/bad",
        Behaviour {
            fail_first: u64::MAX,
            fail_status: 500,
            ..Default::default()
        },
    );
    for ep in [&good, &bad] {
        let (status, _) = app
            .api
            .post(
                &format!("/v1/webhooks/endpoints/{}/test", ep["id"].as_str().unwrap()),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    // 2 successes on /good (create + test), 1 on /bad (create); /bad's test fails three
    // times (the test schedule: 0, 1, 1 s, each step passed by moving the clock on).
    let stats = |q: String| {
        let api = app.api.clone();
        async move { api.get(&format!("/v1/webhooks/stats{q}")).await }
    };
    let step = Duration::from_secs(2);
    let settled = app
        .eventually_advancing(step, Duration::from_secs(15), || async {
            let (_, s) = stats(String::new()).await;
            s["buckets"]
                .as_array()
                .map(|b| b.last().unwrap()["failed"] == 3)
                .unwrap_or(false)
        })
        .await;
    let (status, all) = stats(String::new()).await;
    assert!(settled, "three failed attempts are counted: {all}");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["bucket_secs"], 3600);
    let buckets = all["buckets"].as_array().unwrap();
    assert_eq!(
        buckets.len(),
        24,
        "one bucket per hour, empty ones included"
    );
    let now = buckets.last().unwrap();
    assert_eq!(
        (now["succeeded"].as_i64(), now["failed"].as_i64()),
        (Some(3), Some(3)),
        "{now}"
    );
    let (p50, p95, max) = (
        now["latency_ms"]["p50"].as_i64().unwrap(),
        now["latency_ms"]["p95"].as_i64().unwrap(),
        now["latency_ms"]["max"].as_i64().unwrap(),
    );
    assert!(p50 <= p95 && p95 <= max, "{now}");
    assert!(buckets[..23]
        .iter()
        .all(|b| b["succeeded"] == 0 && b["failed"] == 0 && b["latency_ms"]["p50"].is_null()));
    let starts: Vec<chrono::DateTime<chrono::FixedOffset>> = buckets
        .iter()
        .map(|b| chrono::DateTime::parse_from_rfc3339(b["start"].as_str().unwrap()).unwrap())
        .collect();
    assert!(
        starts
            .windows(2)
            .all(|w| (w[1] - w[0]).num_seconds() == 3600),
        "oldest first, an hour apart"
    );

    let (_, only_good) = stats(format!(
        "?hours=2&endpoint_id={}",
        good["id"].as_str().unwrap()
    ))
    .await;
    let b = only_good["buckets"].as_array().unwrap();
    assert_eq!(b.len(), 2);
    assert_eq!(
        (b[1]["succeeded"].as_i64(), b[1]["failed"].as_i64()),
        (Some(2), Some(0))
    );

    let (status, _) = stats("?hours=0".into()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let other = app.other_team().await;
    let (status, _) = other
        .get(&format!(
            "/v1/webhooks/stats?endpoint_id={}",
            good["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another team's endpoint");
    let (_, theirs) = other.get("/v1/webhooks/stats").await;
    assert!(
        theirs["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["succeeded"] == 0 && b["failed"] == 0),
        "stats are per team"
    );
}
