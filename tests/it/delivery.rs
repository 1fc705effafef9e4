//! Webhook delivery end to end: real HTTP to a receiver that verifies with the `svix`
//! crate; retries, Retry-After, 410, timeouts, GET mode, rotation, rate limits, the
//! delivery log, resend and recover.

use std::time::Duration;

use chrono::DateTime;
use reqwest::StatusCode;
use serde_json::{json, Value};
use svix::webhooks::Webhook;
use wearbridge::receiver::Behaviour;

use crate::helpers::{eventually, TestApp, TestDb};

crate::backend_tests!(
    deliveries_are_signed_standard_webhooks,
    failures_retry_on_schedule_and_log_every_attempt,
    exhausted_deliveries_recover_and_resend,
    gone_disables_the_endpoint,
    retry_after_pushes_the_next_attempt_later,
    timeouts_redirects_and_dead_ports_are_failures,
    get_mode_sends_the_payload_as_query_parameters,
    rotation_signs_with_both_secrets,
    rate_limits_spread_deliveries,
    endpoints_failing_too_long_are_disabled,
);

async fn example(app: &TestApp, t: &str) -> String {
    let (s, out) = app
        .api
        .post("/v1/events/example", json!({"event_type": t}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{out}");
    out["event_id"].as_str().unwrap().to_string()
}

async fn deliveries_are_signed_standard_webhooks(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let ep = app
        .endpoint("/signed", json!({"headers": {"X-Tenant": "acme"}}))
        .await;
    let id = example(&app, "daily.data.workouts.created").await;
    assert!(app.receiver.wait_for(2, Duration::from_secs(10)).await);
    let got = app.receiver.received();
    assert_eq!(app.receiver.rejected(), 0);
    let r = got
        .iter()
        .find(|r| r.event_id == id)
        .expect("the event arrived with webhook-id = event id");
    assert!(r.verified, "verified by svix::webhooks::Webhook::verify");
    // Verify again here, independently, from the raw parts.
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("webhook-id", r.event_id.parse().unwrap());
    h.insert("webhook-timestamp", r.timestamp.parse().unwrap());
    h.insert("webhook-signature", r.signature.parse().unwrap());
    Webhook::new(ep["secret"].as_str().unwrap())
        .unwrap()
        .verify(r.body.as_bytes(), &h)
        .unwrap();
    assert!(Webhook::new(&wearbridge::seal::new_webhook_secret())
        .unwrap()
        .verify(r.body.as_bytes(), &h)
        .is_err());
    let ts: i64 = r.timestamp.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 30);
    assert_eq!(r.attempt, Some(1));
    assert_eq!(
        r.pending_retries,
        Some(2),
        "3-step schedule: 2 retries remain after the first attempt"
    );
    let body: Value = serde_json::from_str(&r.body).unwrap();
    for k in [
        "id",
        "event_type",
        "team_id",
        "user_id",
        "client_user_id",
        "created_at",
        "data",
    ] {
        assert!(body.get(k).is_some(), "envelope lacks {k}");
    }
    assert_eq!(body["id"], id.as_str());
    // The log shows it, with the custom header and a succeeded status.
    let (_, detail) = app.api.get(&format!("/v1/webhooks/events/{id}")).await;
    assert_eq!(
        detail["payload"]["event_type"],
        "daily.data.workouts.created"
    );
    let d = &detail["deliveries"][0];
    assert!(
        eventually(Duration::from_secs(5), || async {
            let (_, detail) = app.api.get(&format!("/v1/webhooks/events/{id}")).await;
            detail["deliveries"][0]["status"] == "succeeded"
        })
        .await
    );
    let (_, detail) = app.api.get(&format!("/v1/webhooks/events/{id}")).await;
    let a = &detail["deliveries"][0]["attempt_log"][0];
    assert_eq!(a["response_status"], 204);
    assert_eq!(a["request_headers"]["x-tenant"], "acme");
    assert_eq!(a["request_headers"]["webhook-id"], id.as_str());
    assert!(a["worker"].as_str().unwrap().contains(':'));
    let _ = d;
}

async fn failures_retry_on_schedule_and_log_every_attempt(db: TestDb) {
    // Five-minute steps: no retry can fall due unless the test moves the clock on.
    const STEP: Duration = Duration::from_secs(300);
    let app = TestApp::spawn_with(db, |c| {
        c.retry_schedule_secs = vec![0, STEP.as_secs(), STEP.as_secs()]
    })
    .await;
    let ep = app
        .endpoint(
            "/flaky",
            json!({"event_types": ["daily.data.sleep.created"]}),
        )
        .await;
    assert!(app.receiver.wait_for(1, Duration::from_secs(10)).await);
    app.receiver.set_behaviour(
        "/flaky",
        Behaviour {
            fail_first: 2,
            fail_status: 503,
            body_bytes: 20_000,
            ..Default::default()
        },
    );
    let id = example(&app, "daily.data.sleep.created").await;
    let this_event = || {
        app.receiver
            .received()
            .into_iter()
            .filter(|r| r.event_id == id)
            .collect::<Vec<_>>()
    };
    // The first try fails and the next is scheduled one step later (±20 %).
    let delivery = || async {
        let (_, d) = app.api.get(&format!("/v1/webhooks/events/{id}")).await;
        d["deliveries"][0].clone()
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            let d = delivery().await;
            d["status"] == "retrying" && d["attempts"] == 1
        })
        .await
    );
    let d = delivery().await;
    let gap = (app.ms_until(&d["next_attempt_at"])
        - app.ms_until(&d["attempt_log"][0]["attempted_at"])) as f64
        / 1e3;
    let step = STEP.as_secs_f64();
    assert!(
        (0.8 * step..1.2 * step + 1.0).contains(&gap),
        "the retry is one {step} s step (±20 %) after the try: gap {gap} s"
    );
    assert_eq!(this_event().len(), 1, "and not before the clock gets there");
    // Move the clock past each step in turn: every retry happens at once.
    for tries in [2, 3] {
        app.advance(STEP.mul_f64(1.2) + Duration::from_secs(1));
        assert!(
            eventually(Duration::from_secs(10), || async {
                this_event().len() >= tries
            })
            .await,
            "try {tries} after the clock reached it"
        );
    }
    let tries = this_event();
    assert_eq!(tries.len(), 3);
    assert_eq!(
        tries.iter().map(|r| r.attempt.unwrap()).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        tries
            .iter()
            .map(|r| r.pending_retries.unwrap())
            .collect::<Vec<_>>(),
        vec![2, 1, 0]
    );
    assert_eq!(
        tries.iter().map(|r| r.answered).collect::<Vec<_>>(),
        vec![503, 503, 204]
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            let (_, d) = app.api.get(&format!("/v1/webhooks/events/{id}")).await;
            d["deliveries"][0]["status"] == "succeeded"
                && d["deliveries"][0]["attempt_log"].as_array().map(Vec::len) == Some(3)
        })
        .await
    );
    let (_, d) = app.api.get(&format!("/v1/webhooks/events/{id}")).await;
    let log = d["deliveries"][0]["attempt_log"].as_array().unwrap();
    assert_eq!(log[0]["error_kind"], "http");
    assert_eq!(log[0]["response_status"], 503);
    assert_eq!(
        log[0]["response_body"].as_str().unwrap().len(),
        8192,
        "response bodies are kept up to 8 KiB"
    );
    assert_eq!(log[2]["response_status"], 204);
    assert!(log[2]["error_kind"].is_null());
    let (_, list) = app
        .api
        .get(&format!(
            "/v1/webhooks/endpoints/{}/events?limit=50",
            ep["id"].as_str().unwrap()
        ))
        .await;
    let rows = list["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "the test event and the sleep event");
    assert_eq!(rows[0]["event_id"], id.as_str(), "newest first");
    assert_eq!(rows[0]["attempts"], 3);
    assert_eq!(rows[0]["last_status_code"], 204);
    assert_eq!(rows[1]["event_type"], "webhook.test");
    let (_, h) = app
        .api
        .get(&format!(
            "/v1/webhooks/endpoints/{}",
            ep["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        h["health"]["consecutive_failures"], 0,
        "the success reset the failure count"
    );
}

async fn exhausted_deliveries_recover_and_resend(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let ep = app.endpoint("/down", json!({})).await;
    let eid = ep["id"].as_str().unwrap().to_string();
    assert!(app.receiver.wait_for(1, Duration::from_secs(10)).await);
    let since = chrono::Utc::now().to_rfc3339();
    app.receiver.set_behaviour(
        "/down",
        Behaviour {
            fail_first: u64::MAX,
            fail_status: 500,
            ..Default::default()
        },
    );
    let a = example(&app, "daily.data.body.created").await;
    let b = example(&app, "daily.data.activity.created").await;
    assert!(
        app.eventually_advancing(Duration::from_secs(2), Duration::from_secs(15), || async {
            let (_, l) = app
                .api
                .get(&format!(
                    "/v1/webhooks/endpoints/{eid}/events?status=exhausted"
                ))
                .await;
            l["data"].as_array().map(Vec::len) == Some(2)
        })
        .await,
        "both exhausted after 3 attempts"
    );
    assert_eq!(
        app.receiver
            .received()
            .iter()
            .filter(|r| r.event_id == a)
            .count(),
        3
    );
    let (_, h) = app.api.get(&format!("/v1/webhooks/endpoints/{eid}")).await;
    let failures = h["health"]["consecutive_failures"].as_i64().unwrap();
    assert!(failures >= 6);

    // A manual attempt that fails is logged but changes neither the delivery's status
    // nor the endpoint's failure record (only scheduled attempts count towards disabling).
    let (s, attempt) = app
        .api
        .post(
            &format!("/v1/webhooks/endpoints/{eid}/events/{a}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{attempt}");
    assert_eq!(
        (
            attempt["trigger"].as_str(),
            attempt["run_number"].as_i64(),
            attempt["response_status"].as_i64()
        ),
        (Some("manual"), Some(4), Some(500))
    );
    let (_, d) = app.api.get(&format!("/v1/webhooks/events/{a}")).await;
    assert_eq!(d["deliveries"][0]["status"], "exhausted");
    let (_, h2) = app.api.get(&format!("/v1/webhooks/endpoints/{eid}")).await;
    assert_eq!(h2["health"], h["health"]);

    // The receiver is fixed. Resend by hand again: a manual attempt, logged as such,
    // and proof the endpoint answers, so its failure record is cleared.
    app.receiver.set_behaviour("/down", Behaviour::default());
    let (s, attempt) = app
        .api
        .post(
            &format!("/v1/webhooks/endpoints/{eid}/events/{a}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{attempt}");
    assert_eq!(attempt["trigger"], "manual");
    assert_eq!(attempt["run_number"], 5);
    assert_eq!(attempt["response_status"], 204);
    let (_, d) = app.api.get(&format!("/v1/webhooks/events/{a}")).await;
    assert_eq!(d["deliveries"][0]["status"], "succeeded");
    assert_eq!(
        (
            d["deliveries"][0]["attempts"].as_i64(),
            d["deliveries"][0]["attempt_log"].as_array().map(Vec::len)
        ),
        (Some(5), Some(5)),
        "{d}"
    );
    let (_, h) = app.api.get(&format!("/v1/webhooks/endpoints/{eid}")).await;
    assert_eq!(h["health"]["consecutive_failures"], 0, "{h}");
    assert!(
        h["health"]["first_failure_at"].is_null() && h["health"]["last_success_at"].is_string(),
        "{h}"
    );

    // Recover the rest: only `b` is still failed.
    let (s, out) = app
        .api
        .post(
            &format!("/v1/webhooks/endpoints/{eid}/recover"),
            json!({"since": since}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(out["recovered"], 1);
    assert!(
        eventually(Duration::from_secs(10), || async {
            let (_, d) = app.api.get(&format!("/v1/webhooks/events/{b}")).await;
            d["deliveries"][0]["status"] == "succeeded"
        })
        .await
    );
    let (s, _) = app
        .api
        .post(
            &format!(
                "/v1/webhooks/endpoints/{eid}/events/{}/resend",
                uuid::Uuid::new_v4()
            ),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn gone_disables_the_endpoint(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let ep = app.endpoint("/gone", json!({})).await;
    let eid = ep["id"].as_str().unwrap().to_string();
    assert!(app.receiver.wait_for(1, Duration::from_secs(10)).await);
    app.receiver.set_behaviour(
        "/gone",
        Behaviour {
            fail_first: u64::MAX,
            fail_status: 410,
            ..Default::default()
        },
    );
    example(&app, "daily.data.sleep.created").await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            let (_, e) = app.api.get(&format!("/v1/webhooks/endpoints/{eid}")).await;
            e["enabled"] == false
        })
        .await
    );
    let (_, e) = app.api.get(&format!("/v1/webhooks/endpoints/{eid}")).await;
    assert!(e["disabled_reason"].as_str().unwrap().contains("410"));
    assert_eq!(app.receiver.count(), 2, "no retry after 410");
    let (_, out) = app
        .api
        .post(
            "/v1/events/example",
            json!({"event_type": "daily.data.sleep.created"}),
        )
        .await;
    assert_eq!(out["deliveries"], 0, "a disabled endpoint gets nothing");
}

async fn retry_after_pushes_the_next_attempt_later(db: TestDb) {
    // A one-minute step and a five-minute Retry-After: neither passes unless the test
    // moves the clock on.
    let app = TestApp::spawn_with(db, |c| c.retry_schedule_secs = vec![0, 60, 60]).await;
    app.endpoint("/busy", json!({})).await;
    assert!(app.receiver.wait_for(1, Duration::from_secs(10)).await);
    app.receiver.set_behaviour(
        "/busy",
        Behaviour {
            fail_first: 1,
            fail_status: 429,
            retry_after_secs: Some(300),
            ..Default::default()
        },
    );
    let id = example(&app, "webhook.test").await;
    let retrying = || async {
        let (_, d) = app.api.get(&format!("/v1/webhooks/events/{id}")).await;
        let d = d["deliveries"][0].clone();
        (d["status"] == "retrying" && d["attempts"] == 1).then_some(d)
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            retrying().await.is_some()
        })
        .await
    );
    let d = retrying().await.expect("waiting for its retry");
    let gap = (app.ms_until(&d["next_attempt_at"])
        - app.ms_until(&d["attempt_log"][0]["attempted_at"])) as f64
        / 1e3;
    assert!(
        gap >= 299.0,
        "Retry-After: 300 was honoured over the 60 s step (gap {gap} s)"
    );
    app.advance(Duration::from_secs(300));
    assert!(app.receiver.wait_for(3, Duration::from_secs(10)).await);
    let tries: Vec<_> = app
        .receiver
        .received()
        .into_iter()
        .filter(|r| r.event_id == id)
        .collect();
    assert_eq!(tries[0].answered, 429);
    assert_eq!(tries.len(), 2, "one retry, once the clock reached it");
}

async fn timeouts_redirects_and_dead_ports_are_failures(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| {
        c.delivery_timeout_secs = 1;
        c.retry_schedule_secs = vec![0];
    })
    .await;
    app.endpoint(
        "/slow",
        json!({"event_types": ["daily.data.sleep.created"]}),
    )
    .await;
    app.endpoint(
        "/moved",
        json!({"event_types": ["daily.data.sleep.created"]}),
    )
    .await;
    // A port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/x", dead.local_addr().unwrap());
    drop(dead);
    let (s, _) = app
        .api
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": dead_url, "event_types": ["daily.data.sleep.created"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(app.receiver.wait_for(2, Duration::from_secs(10)).await);
    app.receiver.set_behaviour(
        "/slow",
        Behaviour {
            delay: Duration::from_secs(3),
            ..Default::default()
        },
    );
    app.receiver.set_behaviour(
        "/moved",
        Behaviour {
            fail_first: u64::MAX,
            fail_status: 302,
            ..Default::default()
        },
    );
    let id = example(&app, "daily.data.sleep.created").await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            let (_, d) = app.api.get(&format!("/v1/webhooks/events/{id}")).await;
            d["deliveries"]
                .as_array()
                .map(|v| v.iter().all(|d| d["status"] == "exhausted"))
                .unwrap_or(false)
                && d["deliveries"].as_array().map(Vec::len) == Some(3)
        })
        .await
    );
    let (_, d) = app.api.get(&format!("/v1/webhooks/events/{id}")).await;
    let mut kinds: Vec<(String, Value)> = d["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let a = &d["attempt_log"][0];
            (
                a["error_kind"].as_str().unwrap().to_string(),
                a["response_status"].clone(),
            )
        })
        .collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kinds,
        vec![
            ("connect".into(), Value::Null),
            ("http".into(), json!(302)),
            ("timeout".into(), Value::Null)
        ]
    );
}

async fn get_mode_sends_the_payload_as_query_parameters(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.endpoint("/get", json!({"method": "GET"})).await;
    assert!(app.receiver.wait_for(1, Duration::from_secs(10)).await);
    let r = &app.receiver.received()[0];
    assert_eq!(r.method, "GET");
    assert!(r.verified, "GET mode signs the query string");
    let params: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(r.body.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(params["event_type"], "webhook.test");
    assert_eq!(params["id"], r.event_id);
    let data: Value = serde_json::from_str(&params["data"]).unwrap();
    assert!(data["message"].is_string());
}

async fn rotation_signs_with_both_secrets(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let ep = app.endpoint("/rot", json!({})).await;
    let old = ep["secret"].as_str().unwrap().to_string();
    assert!(app.receiver.wait_for(1, Duration::from_secs(10)).await);
    let (_, rot) = app
        .api
        .post(
            &format!(
                "/v1/webhooks/endpoints/{}/secret/rotate",
                ep["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    let new = rot["key"].as_str().unwrap().to_string();
    // A receiver still on the old secret keeps verifying during the grace period…
    let id = example(&app, "webhook.test").await;
    assert!(app.receiver.wait_for(2, Duration::from_secs(10)).await);
    let r = app
        .receiver
        .received()
        .into_iter()
        .find(|r| r.event_id == id)
        .unwrap();
    assert!(r.verified, "verified with the old secret");
    assert_eq!(
        r.signature.split(' ').count(),
        2,
        "one signature per valid secret"
    );
    // … and one on the new secret does too.
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("webhook-id", r.event_id.parse().unwrap());
    h.insert("webhook-timestamp", r.timestamp.parse().unwrap());
    h.insert("webhook-signature", r.signature.parse().unwrap());
    Webhook::new(&new)
        .unwrap()
        .verify(r.body.as_bytes(), &h)
        .unwrap();
    Webhook::new(&old)
        .unwrap()
        .verify(r.body.as_bytes(), &h)
        .unwrap();
}

async fn rate_limits_spread_deliveries(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.endpoint("/limited", json!({"rate_limit_per_sec": 5}))
        .await;
    assert!(app.receiver.wait_for(1, Duration::from_secs(10)).await);
    app.advance(Duration::from_millis(1100)); // let the bucket refill
    for _ in 0..15 {
        example(&app, "webhook.test").await;
    }
    // The clock moves on 50 ms at a time; each arrival is placed on the gateway's clock
    // by how far the clock had been moved when it came.
    let wall_us = || chrono::Utc::now().timestamp_micros();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut moves = vec![(wall_us(), app.clock.ahead_ms())];
    while app.receiver.count() < 16 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of 16 arrived",
            app.receiver.count()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
        app.advance(Duration::from_millis(50));
        moves.push((wall_us(), app.clock.ahead_ms()));
    }
    let on_clock_ms = |at_us: i64| {
        let ahead = moves
            .iter()
            .take_while(|(t, _)| *t <= at_us)
            .last()
            .map_or(0, |m| m.1);
        at_us / 1000 + ahead
    };
    let got = app.receiver.received();
    let times: Vec<i64> = got[1..]
        .iter()
        .map(|r| on_clock_ms(r.received_at_us))
        .collect();
    let span = (times.iter().max().unwrap() - times.iter().min().unwrap()) as f64 / 1e3;
    // 15 deliveries at 5/s (burst 5): at least ~2 s from first to last.
    assert!(span >= 1.8, "15 deliveries at 5/s took only {span} s");
    assert!(
        got.iter().all(|r| r.attempt == Some(1)),
        "rate limiting defers without spending attempts"
    );
}

async fn endpoints_failing_too_long_are_disabled(db: TestDb) {
    // Disabled after an hour of nothing but failures; its deliveries are retried every
    // half hour (±20 %), so the fourth try is the first past the hour.
    const DISABLE_AFTER: Duration = Duration::from_secs(3600);
    const STEP: Duration = Duration::from_secs(1800);
    let app = TestApp::spawn_with(db, |c| {
        c.disable_after_secs = DISABLE_AFTER.as_secs();
        c.retry_schedule_secs = vec![0, STEP.as_secs(), STEP.as_secs(), STEP.as_secs()];
    })
    .await;
    // Failing before the endpoint exists, so even its first delivery (the test event
    // sent on creation) fails.
    app.receiver.set_behaviour(
        "/dying",
        Behaviour {
            fail_first: u64::MAX,
            fail_status: 500,
            ..Default::default()
        },
    );
    let ep = app.endpoint("/dying", json!({})).await;
    let eid = ep["id"].as_str().unwrap().to_string();
    assert!(
        app.eventually_advancing(
            STEP.mul_f64(1.2) + Duration::from_secs(1),
            Duration::from_secs(15),
            || async {
                let (_, e) = app.api.get(&format!("/v1/webhooks/endpoints/{eid}")).await;
                e["enabled"] == false
            }
        )
        .await
    );
    let (_, e) = app.api.get(&format!("/v1/webhooks/endpoints/{eid}")).await;
    assert!(
        e["disabled_reason"].as_str().unwrap().contains("failed"),
        "{e}"
    );
    let first: DateTime<chrono::FixedOffset> =
        DateTime::parse_from_rfc3339(e["health"]["first_failure_at"].as_str().unwrap()).unwrap();
    assert!(
        app.clock.now_ms() - first.timestamp_millis() >= DISABLE_AFTER.as_millis() as i64,
        "disabled only once it had failed for {DISABLE_AFTER:?} by the gateway's clock"
    );
    // Re-enabling clears the record.
    let (_, e) = app
        .api
        .patch(
            &format!("/v1/webhooks/endpoints/{eid}"),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(e["enabled"], true);
    assert!(e["disabled_reason"].is_null());
    assert_eq!(e["health"]["consecutive_failures"], 0);
}
