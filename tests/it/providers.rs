//! Providers end to end: the real connect flow over HTTP against the fixture provider
//! server, the ordered backfill, a daily poll over changed data, and the data API.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use wearbridge::fixture_server::{Fault, FixtureServer};

use crate::helpers::{eventually, TestApp, TestDb};

crate::backend_tests!(
    oura_connects_backfills_in_order_and_polls_changes,
    connect_flow_errors_create_nothing,
    withings_errors_inside_a_200_are_read_as_errors,
    the_link_page_lists_providers_and_comes_back_with_the_outcome,
    a_stopped_poller_hands_back_the_jobs_it_had_not_started,
    google_health_names_the_user_through_its_identity_request,
    google_healths_vital_named_series_are_served_by_both_data_apis,
    polar_registers_the_user_after_consent_and_deregisters_them,
    polar_physical_information_arrives_through_its_transaction,
);

async fn app_with_fixtures(db: TestDb) -> (TestApp, FixtureServer) {
    let fx = FixtureServer::start().await.unwrap();
    let root = fx.root();
    let app = TestApp::spawn_with(db, move |c| c.providers_base_url = Some(root)).await;
    (app, fx)
}

/// Walks the connect flow like a browser; returns the final redirect's query.
async fn connect(app: &TestApp, user_id: &str, provider: &str) -> BTreeMap<String, String> {
    let (s, link) = app
        .api
        .post("/v1/link/token", json!({"user_id": user_id, "provider": provider, "redirect_url": app.receiver.url("/app/done")}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{link}");
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(10))
        .build()
        .unwrap();
    let resp = browser
        .get(link["link_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let landed = resp.url().clone();
    assert_eq!(
        landed.path(),
        "/app/done",
        "the flow ends at the app's redirect_url"
    );
    landed.query_pairs().into_owned().collect()
}

/// The poller claims jobs ahead of running them. A gateway stopped mid-backfill hands
/// back those it had not started, so the next one resumes them at once rather than
/// after their claims lapse (120 s).
async fn a_stopped_poller_hands_back_the_jobs_it_had_not_started(db: TestDb) {
    let fx = FixtureServer::start().await.unwrap();
    let root = fx.root();
    let tweak = move |c: &mut wearbridge::config::Config| {
        c.providers_base_url = Some(root.clone());
        c.poller_concurrency = 1;
    };
    let app = TestApp::spawn_with(db, tweak.clone()).await;
    app.endpoint("/hooks", json!({})).await;
    let user = app.user("deployed-mid-backfill").await;
    // The first job waits on a slow reply while the poller holds a second, claimed. The
    // connect flow's identity request (personal_info) is Oura's first request: it takes a
    // harmless fault first.
    fx.inject("oura", Fault::Slow(Duration::ZERO));
    fx.inject("oura", Fault::Slow(Duration::from_secs(2)));
    let q = connect(&app, user["user_id"].as_str().unwrap(), "oura").await;
    assert_eq!(q.get("state").map(String::as_str), Some("success"), "{q:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let app = app.restart(tweak).await;
    let done = eventually(Duration::from_secs(30), || async {
        events(&app)
            .iter()
            .filter(|e| {
                e["event_type"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("historical.")
            })
            .count()
            >= crate::helpers::all_backfill_windows("oura")
    })
    .await;
    assert!(
        done,
        "the backfill did not resume: {:?}",
        app.store().job_counts().await.unwrap()
    );
}

fn events(app: &TestApp) -> Vec<Value> {
    app.receiver
        .received()
        .iter()
        .filter(|r| r.path == "/hooks")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect()
}

async fn oura_connects_backfills_in_order_and_polls_changes(db: TestDb) {
    let (app, fx) = app_with_fixtures(db).await;
    app.endpoint("/hooks", json!({})).await;
    let user = app.user("ring-owner").await;
    let uid = user["user_id"].as_str().unwrap().to_string();
    // A 429 and a 500 on the way: retried, never an error. The connect flow's identity
    // request (personal_info) comes first and gets a harmless fault: a failed identity
    // fails the connection, by design.
    fx.inject("oura", Fault::Slow(Duration::ZERO));
    fx.inject(
        "oura",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    fx.inject("oura", Fault::ServerError);
    let q = connect(&app, &uid, "oura").await;
    assert_eq!(q.get("state").map(String::as_str), Some("success"), "{q:?}");
    assert_eq!(q.get("provider").map(String::as_str), Some("oura"));

    // Backfill: a year in 90-day windows (5) per daily resource, 30-day ones (13) for
    // heart rate, whose route caps its range; historical events newest first, one
    // is_final.
    let windows = |r: &str| if r == "heartrate" { 13 } else { 5 };
    assert_eq!(crate::helpers::all_backfill_windows("oura"), 5 * 5 + 13);
    // The 429's pause and the 500's back-off pass by moving the clock on, a second at a
    // time (far short of the hourly poll).
    let done = app
        .eventually_advancing(Duration::from_secs(1), Duration::from_secs(60), || async {
            events(&app)
                .iter()
                .filter(|e| {
                    e["event_type"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("historical.")
                })
                .count()
                >= 5 * 5 + 13
        })
        .await;
    assert!(
        done,
        "backfill did not finish: {:?}",
        app.store().job_counts().await.unwrap()
    );
    let evs = events(&app);
    assert_eq!(
        evs.iter()
            .filter(|e| e["event_type"] == "provider.connection.created")
            .count(),
        1
    );
    for r in [
        "sleep",
        "activity",
        "workouts",
        "heartrate",
        "blood_oxygen",
        "body_temperature_delta",
    ] {
        let hist: Vec<&Value> = evs
            .iter()
            .filter(|e| e["event_type"] == format!("historical.data.{r}.created"))
            .collect();
        assert_eq!(hist.len(), windows(r), "{r}");
        let starts: Vec<&str> = hist
            .iter()
            .map(|e| e["data"]["start_date"].as_str().unwrap())
            .collect();
        let mut sorted = starts.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(starts, sorted, "{r}: windows arrive newest first");
        assert_eq!(
            hist.iter()
                .filter(|e| e["data"]["is_final"] == true)
                .count(),
            1,
            "{r}: exactly one is_final"
        );
        assert_eq!(
            hist.last().unwrap()["data"]["is_final"],
            true,
            "{r}: the oldest window is final"
        );
    }
    assert!(
        evs.iter()
            .all(|e| !e["event_type"].as_str().unwrap().starts_with("daily.")),
        "backfill emits no daily events"
    );

    // The data API has the records: 14 nights and 2 naps (the rejected rest period is
    // not sleep).
    let (s, sleep) = app
        .api
        .get(&format!("/v1/summary/sleep/{uid}?start_date=2026-01-01"))
        .await;
    assert_eq!(s, StatusCode::OK, "{sleep}");
    let sleeps = sleep["sleep"].as_array().unwrap();
    assert_eq!(sleeps.len(), 16);
    assert_eq!(
        sleeps
            .iter()
            .filter(|s| s["type"] == "acknowledged_nap")
            .count(),
        2
    );
    let (_, hr) = app
        .api
        .get(&format!(
            "/v1/timeseries/{uid}/heartrate?start_date=2026-01-01"
        ))
        .await;
    assert_eq!(hr["data"].as_array().unwrap().len(), 100);
    // 14 nights' SpO2 documents; the low-battery night has no average: no sample.
    let (_, spo2) = app
        .api
        .get(&format!(
            "/v1/timeseries/{uid}/blood_oxygen?start_date=2026-01-01"
        ))
        .await;
    let spo2 = spo2["data"].as_array().unwrap();
    assert_eq!(spo2.len(), 13);
    assert!(spo2.iter().all(|s| s["unit"] == "%"
        && s["timestamp"]
            .as_str()
            .unwrap()
            .ends_with("T00:00:00+00:00")));
    // 12 nights' temperature deviations, each covering its night; the naps, the rest, the
    // low-battery night and the night not yet analysed have none.
    let (_, delta) = app
        .api
        .get(&format!(
            "/v1/timeseries/{uid}/body_temperature_delta?start_date=2026-01-01"
        ))
        .await;
    let delta = delta["data"].as_array().unwrap();
    assert_eq!(delta.len(), 12);
    assert!(delta
        .iter()
        .all(|d| d["unit"] == "°C" && d["start"].as_str() < d["end"].as_str()));
    let (_, conns) = app.api.get(&format!("/v1/user/{uid}/providers")).await;
    let c = &conns["data"][0];
    assert_eq!(c["status"], "connected");
    assert!(c["backfill"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["windows_done"] == b["windows_total"]));

    // A daily poll over changed data: one created and one updated per summary resource.
    fx.advance_to_changed_data();
    let before = events(&app).len();
    let (s, _) = app
        .api
        .post(&format!("/v1/user/{uid}/refresh"), json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert!(
        eventually(Duration::from_secs(30), || async {
            events(&app).len() >= before + 7
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let daily: Vec<Value> = events(&app).into_iter().skip(before).collect();
    let count = |t: &str| daily.iter().filter(|e| e["event_type"] == t).count();
    for r in ["sleep", "activity", "workouts"] {
        assert_eq!(
            count(&format!("daily.data.{r}.created")),
            1,
            "{r} created: {daily:?}"
        );
        assert_eq!(count(&format!("daily.data.{r}.updated")), 1, "{r} updated");
    }
    assert_eq!(count("daily.data.heartrate.created"), 1);
    assert_eq!(count("daily.data.blood_oxygen.created"), 1);
    // The re-analysed night now has its deviation, and the new night its own: one batch.
    assert_eq!(count("daily.data.body_temperature_delta.created"), 1);
    let batch = daily
        .iter()
        .find(|e| e["event_type"] == "daily.data.body_temperature_delta.created")
        .unwrap();
    assert_eq!(
        batch["data"]["data"].as_array().unwrap().len(),
        2,
        "{batch}"
    );
    let upd = daily
        .iter()
        .find(|e| e["event_type"] == "daily.data.workouts.updated")
        .unwrap();
    assert_eq!(upd["data"]["version"], 2);
    assert_eq!(upd["data"]["title"], "Evening spin");
    // The event carries the same id the data API serves.
    let (_, wk) = app
        .api
        .get(&format!("/v1/summary/workouts/{uid}?start_date=2026-01-01"))
        .await;
    assert!(wk["workouts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["id"] == upd["data"]["id"] && w["version"] == 2));
    // Polling again with nothing new emits nothing. (Straight to the store: the API's
    // refresh takes one request per user per 10 s, and that limit is not what is
    // tested here.)
    let before = events(&app).len();
    let stored = app.store().event_counts().await.unwrap();
    let polls = app
        .store()
        .poll_now(app.team_id, uid.parse().unwrap())
        .await
        .unwrap();
    // Body temperature deltas are read with sleep: no poll of their own.
    assert_eq!(polls, 5, "one poll per resource");
    assert!(
        eventually(Duration::from_secs(20), || async {
            // Every poll has run: the next is an interval away, not a lease.
            app.store()
                .next_due_poll()
                .await
                .unwrap()
                .is_some_and(|t| t > app.clock.now_ms() + 600_000)
        })
        .await,
        "the polls ran"
    );
    assert_eq!(
        app.store().event_counts().await.unwrap(),
        stored,
        "unchanged data emits nothing"
    );
    assert_eq!(events(&app).len(), before, "unchanged data emits nothing");

    // A provider outage during refresh is transient: the job backs off, the connection
    // stays connected, no error event; the same refresh token works afterwards.
    fx.expire_access_tokens();
    fx.fail_token_requests(503, 1);
    let grants = fx.token_grants();
    app.store()
        .poll_now(app.team_id, uid.parse().unwrap())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            fx.pending_token_faults() == 0
        })
        .await,
        "the refresh was attempted"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, conns) = app.api.get(&format!("/v1/user/{uid}/providers")).await;
    assert_eq!(conns["data"][0]["status"], "connected", "{conns}");
    assert!(
        !events(&app)
            .iter()
            .any(|e| e["event_type"] == "provider.connection.error"),
        "a transient failure errors nothing"
    );
    app.store()
        .poll_now(app.team_id, uid.parse().unwrap())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            fx.token_grants() > grants
        })
        .await,
        "the next poll refreshed with the same token"
    );

    // A refused refresh errors the connection once; deregistering emits deleted.
    fx.expire_access_tokens();
    fx.refuse_refresh(true);
    app.store()
        .poll_now(app.team_id, uid.parse().unwrap())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            events(&app)
                .iter()
                .any(|e| e["event_type"] == "provider.connection.error")
        })
        .await
    );
    let err = events(&app)
        .into_iter()
        .find(|e| e["event_type"] == "provider.connection.error")
        .unwrap();
    assert_eq!(err["data"]["error_type"], "token_refresh_failed");
    let (s, _) = app.api.delete(&format!("/v1/user/{uid}/oura")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(
        eventually(Duration::from_secs(10), || async {
            events(&app)
                .iter()
                .any(|e| e["event_type"] == "provider.connection.deleted")
        })
        .await
    );
    assert!(
        app.receiver
            .received()
            .iter()
            .filter(|r| r.path == "/hooks")
            .all(|r| r.verified),
        "every delivery verified"
    );
}

async fn connect_flow_errors_create_nothing(db: TestDb) {
    let (app, fx) = app_with_fixtures(db).await;
    let user = app.user("u").await;
    let uid = user["user_id"].as_str().unwrap().to_string();
    fx.deny_consent(true);
    let q = connect(&app, &uid, "oura").await;
    assert_eq!(
        (q["state"].as_str(), q["error_type"].as_str()),
        ("error", "access_denied")
    );
    let (_, conns) = app.api.get(&format!("/v1/user/{uid}/providers")).await;
    assert!(
        conns["data"].as_array().unwrap().is_empty(),
        "nothing half-created"
    );
    // A forged state is refused outright.
    let r = reqwest::get(format!(
        "{}/v1/oauth/callback/oura?code=x&state=forged",
        app.gateway.url()
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Bad requests for link tokens.
    let (s, _) = app
        .api
        .post(
            "/v1/link/token",
            json!({"user_id": uid, "provider": "fitbit", "redirect_url": "https://app.example/"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app.api.post("/v1/link/token", json!({"user_id": uuid::Uuid::new_v4(), "provider": "oura", "redirect_url": "https://app.example/"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, providers) = app.api.get("/v1/providers").await;
    assert_eq!(s, StatusCode::OK);
    assert!(providers["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["slug"] == "oura"));
}

/// Withings answers everything with HTTP 200 and the outcome in `status`: the wrapped
/// token reply, an expired token (`status: 401`), its rate limit (601), a server fault
/// (2555) and a refused refresh token (503) must each take the path its HTTP twin takes.
async fn withings_errors_inside_a_200_are_read_as_errors(db: TestDb) {
    let (app, fx) = app_with_fixtures(db).await;
    app.endpoint("/hooks", json!({})).await;
    let user = app.user("scale-owner").await;
    let uid = user["user_id"].as_str().unwrap().to_string();
    let grants = fx.token_grants();
    fx.inject("withings", Fault::Unauthorized);
    fx.inject(
        "withings",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    fx.inject("withings", Fault::ServerError);
    let q = connect(&app, &uid, "withings").await;
    assert_eq!(q.get("state").map(String::as_str), Some("success"), "{q:?}");
    let (_, conns) = app.api.get(&format!("/v1/user/{uid}/providers")).await;
    assert_eq!(
        conns["data"][0]["external_user_id"], "37921640",
        "userid read from inside the wrapped token reply"
    );

    // 13 windows for each of body, sleep, workouts, activity, blood oxygen and body
    // temperature.
    let windows: usize = 13 * 6;
    // The 601's pause and the 2555's back-off pass by moving the clock on, a second at a
    // time (far short of the three-hourly poll).
    let done = app
        .eventually_advancing(Duration::from_secs(1), Duration::from_secs(90), || async {
            events(&app)
                .iter()
                .filter(|e| {
                    e["event_type"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("historical.")
                })
                .count()
                >= windows
        })
        .await;
    assert!(
        done,
        "backfill did not finish: {:?}",
        app.store().job_counts().await.unwrap()
    );
    assert!(
        fx.token_grants() >= grants + 2,
        "the in-band 401 refreshed the token once"
    );
    let (_, conns) = app.api.get(&format!("/v1/user/{uid}/providers")).await;
    assert_eq!(
        conns["data"][0]["status"], "connected",
        "in-band 401, 601 and 2555 are not fatal: {conns}"
    );
    let (_, body) = app
        .api
        .get(&format!("/v1/summary/body/{uid}?start_date=2026-01-01"))
        .await;
    let weights: Vec<&Value> = body["body"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["weight"])
        .collect();
    assert_eq!(
        weights.len(),
        15,
        "16 groups less the ambiguous one: {weights:?}"
    );
    assert!(
        weights
            .iter()
            .all(|w| w.as_f64().is_some_and(|w| (70.0..80.0).contains(&w))),
        "{weights:?}"
    );
    let posted = fx
        .requests()
        .iter()
        .filter(|r| r.starts_with("withings /measure") && r.contains("getmeas"))
        .count();
    assert!(
        posted >= 13,
        "getmeas is asked for with its action field: {posted}"
    );

    // A refused refresh token is `status: 503` in an HTTP 200: the connection errors.
    fx.expire_access_tokens();
    fx.refuse_refresh(true);
    app.store()
        .poll_now(app.team_id, uid.parse().unwrap())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            events(&app)
                .iter()
                .any(|e| e["event_type"] == "provider.connection.error")
        })
        .await
    );
    let err = events(&app)
        .into_iter()
        .find(|e| e["event_type"] == "provider.connection.error")
        .unwrap();
    assert_eq!(err["data"]["error_type"], "token_refresh_failed");
    assert!(
        err["data"]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid Params"),
        "{err}"
    );
    assert!(
        app.receiver
            .received()
            .iter()
            .filter(|r| r.path == "/hooks")
            .all(|r| r.verified),
        "every delivery verified"
    );

    // What happened is on /metrics, in Prometheus' text format.
    let text = reqwest::get(format!("{}/metrics", app.api.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or_else(|| panic!("{series} is not in /metrics:\n{text}"))
    };
    assert!(
        value(r#"wearbridge_provider_requests_total{provider="withings",status="200"}"#) >= 39.0
    );
    // Each resource's poll met the expired token; every one that tried the refresh after
    // the first was refused too, but the connection errored (and said so) once.
    assert!(
        value(r#"wearbridge_token_refreshes_total{provider="withings",outcome="refused"}"#) >= 1.0
    );
    assert_eq!(
        events(&app)
            .iter()
            .filter(|e| e["event_type"] == "provider.connection.error")
            .count(),
        1
    );
    assert!(
        value(r#"wearbridge_token_refreshes_total{provider="withings",outcome="success"}"#) >= 1.0
    );
    assert!(
        value(r#"wearbridge_provider_rate_limit_waits_total{provider="withings",reason="paused"}"#)
            >= 1.0,
        "the 601 paused the app"
    );
    let delivered = value(r#"wearbridge_deliveries_total{outcome="succeeded"}"#);
    assert!(delivered >= windows as f64, "{delivered}");
    assert!(value("wearbridge_delivery_attempt_duration_seconds_count") >= delivered);
    assert_eq!(
        value(r#"wearbridge_jobs_due{provider="withings"}"#),
        0.0,
        "an errored connection has nothing due"
    );
    assert_eq!(value("wearbridge_deliveries_due"), 0.0);
    assert_eq!(value("wearbridge_deliveries_in_flight"), 0.0);
}

/// The fixture provider's consent page, as a browser sees it: the provider's name, the
/// scopes asked for, and Allow / Deny buttons that send the user back with a code or
/// `error=access_denied`, the state carried through untouched (and escaped in the page).
#[tokio::test]
async fn the_fixture_consent_page_allows_or_denies() {
    let fx = FixtureServer::start().await.unwrap();
    fx.show_consent_screen(true);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let state = "st<ate>&\"1\"";
    let authorize = reqwest::Url::parse_with_params(
        &format!("{}/oura/oauth/authorize", fx.root()),
        &[
            ("redirect_uri", "http://app.test/cb"),
            ("state", state),
            ("scope", "daily heartrate"),
            ("response_type", "code"),
        ],
    )
    .unwrap();
    let page = http.get(authorize).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    for needle in [
        "<title>Oura: allow access?</title>",
        "<code>daily</code>",
        "<code>heartrate</code>",
        r#"value="allow""#,
        r#"value="deny""#,
        "st&lt;ate&gt;&amp;&quot;1&quot;",
    ] {
        assert!(html.contains(needle), "{needle} not in the page:\n{html}");
    }
    assert!(!html.contains(state), "the state is escaped");
    for (choice, expect) in [("allow", "code"), ("deny", "error")] {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/oura/oauth/authorize/decision", fx.root()),
            &[
                ("redirect_uri", "http://app.test/cb"),
                ("state", state),
                ("decision", choice),
            ],
        )
        .unwrap();
        let r = http.get(url).send().await.unwrap();
        assert!(r.status().is_redirection(), "{choice}: {}", r.status());
        let to = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        let q: BTreeMap<String, String> = to.query_pairs().into_owned().collect();
        assert_eq!(q.get("state").map(String::as_str), Some(state), "{choice}");
        assert!(q.contains_key(expect), "{choice}: {to}");
        if choice == "deny" {
            assert_eq!(q["error"], "access_denied");
        }
    }
}

/// A link token without a provider opens the Link page: every provider with what it
/// shares and the user's state; a denied consent comes back to the page with a clear
/// message and the buttons to retry; a success spends the link and offers the way back
/// to the app's redirect_url.
async fn the_link_page_lists_providers_and_comes_back_with_the_outcome(db: TestDb) {
    let (app, fx) = app_with_fixtures(db).await;
    let user = app.user("page-user").await;
    let uid = user["user_id"].as_str().unwrap().to_string();
    let done = app.receiver.url("/app/done");
    let (s, link) = app
        .api
        .post(
            "/v1/link/token",
            json!({"user_id": uid, "redirect_url": done}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{link}");
    let link_url = link["link_url"].as_str().unwrap().to_string();
    let browser = reqwest::Client::new();
    let page = browser.get(&link_url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    for p in wearbridge::providers::registry() {
        assert!(
            html.contains(&format!(r#"data-provider="{}""#, p.id())),
            "{} listed",
            p.id()
        );
        assert!(
            html.contains(&format!(r#"href="{link_url}/{}""#, p.id())),
            "{} has a Connect button",
            p.id()
        );
    }
    assert!(
        html.contains("Shares sleep, activity, workouts, heart rate"),
        "what Oura shares"
    );
    assert!(!html.contains("<script"), "no scripts needed");

    // Denied: back on the page, told why, free to retry.
    fx.deny_consent(true);
    let r = browser
        .get(format!("{link_url}/oura"))
        .send()
        .await
        .unwrap();
    let landed = r.url().clone();
    assert_eq!(
        landed.path(),
        format!("/v1/link/{}", link["link_token"].as_str().unwrap()),
        "{landed}"
    );
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Oura was not connected.") && html.contains("You did not allow access."),
        "{html}"
    );
    assert!(
        html.contains(&format!(r#"href="{link_url}/oura""#)),
        "the user can try again"
    );

    // Allowed: connected, the link is spent, Continue goes to the app.
    fx.deny_consent(false);
    let r = browser
        .get(format!("{link_url}/oura"))
        .send()
        .await
        .unwrap();
    let html = r.text().await.unwrap();
    assert!(html.contains("Oura is connected."), "{html}");
    let continue_href = format!("{done}?state=success&amp;provider=oura");
    assert!(
        html.contains(&continue_href),
        "Continue leads to the app: {html}"
    );
    assert!(
        !html.contains(&format!(r#"href="{link_url}/"#)),
        "a spent link offers no more Connect buttons"
    );
    let (_, conns) = app.api.get(&format!("/v1/user/{uid}/providers")).await;
    assert_eq!(conns["data"][0]["provider"], "oura");
    assert_eq!(conns["data"][0]["status"], "connected");
    let again = browser
        .get(format!("{link_url}/strava"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        again.contains("This link has already been used."),
        "{again}"
    );

    // A new link shows the existing connection.
    let (_, link2) = app
        .api
        .post(
            "/v1/link/token",
            json!({"user_id": uid, "redirect_url": done}),
        )
        .await;
    let html = browser
        .get(link2["link_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let oura_row = html
        .split(r#"data-provider="oura""#)
        .nth(1)
        .unwrap()
        .split("</li>")
        .next()
        .unwrap();
    assert!(
        oura_row.contains("Connected") && oura_row.contains("Reconnect"),
        "{oura_row}"
    );
}

/// Google Health's token reply names nobody: the code exchange asks `users.getIdentity`
/// with the new token and the connection carries `healthUserId`. An identity request
/// that fails fails the connect, leaving nothing half-made.
async fn google_health_names_the_user_through_its_identity_request(db: TestDb) {
    let (app, fx) = app_with_fixtures(db).await;
    let user = app.user("pixel-owner").await;
    let uid = user["user_id"].as_str().unwrap().to_string();
    // The identity request is the first data request after the exchange.
    fx.inject("google_health", Fault::ServerError);
    let q = connect(&app, &uid, "google_health").await;
    assert_eq!(
        (q["state"].as_str(), q["error_type"].as_str()),
        ("error", "token_exchange_failed"),
        "{q:?}"
    );
    let (_, conns) = app.api.get(&format!("/v1/user/{uid}/providers")).await;
    assert!(
        conns["data"].as_array().unwrap().is_empty(),
        "no connection without the user's id: {conns}"
    );
    let q = connect(&app, &uid, "google_health").await;
    assert_eq!(q.get("state").map(String::as_str), Some("success"), "{q:?}");
    let (_, conns) = app.api.get(&format!("/v1/user/{uid}/providers")).await;
    // The fixture provider counts every consent as another user (each gets its own
    // id), and the failed attempt was its first.
    assert_eq!(
        conns["data"][0]["external_user_id"],
        wearbridge::fixture_server::user_id_of("113407815228541906652", 2),
        "healthUserId from oauth/identity.json: {conns}"
    );
    let identity_requests = fx
        .requests()
        .iter()
        .filter(|r| r.starts_with("google_health /v4/users/me/identity"))
        .count();
    assert_eq!(identity_requests, 2, "one per code exchange");
}

/// The fixture data set of one of a provider's resources, as recorded.
fn fixture_items(provider: &str, file: &str) -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(provider)
        .join("data")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Blood oxygen, respiratory rate, body temperature, distance and active energy, read
/// from Google Health and served by `/v1` as stored and by `/v2` in Junction's models:
/// every documented reading once, in Junction's units, interval samples with both ends,
/// a body temperature's location only where Junction has a name for it, and a reading
/// without a value left out rather than made a zero.
async fn google_healths_vital_named_series_are_served_by_both_data_apis(db: TestDb) {
    // A year of twelve resources is more than Google's 300 requests a user-minute:
    // budgets on windows a minute to the second.
    let fx = FixtureServer::start().await.unwrap();
    let root = fx.root();
    let app = TestApp::spawn_with(db, move |c| {
        c.providers_base_url = Some(root);
        c.rate_limit_time_scale = 60.0;
    })
    .await;
    let user = app.user("pixel-sensors").await;
    let uid = user["user_id"].as_str().unwrap().to_string();
    let q = connect(&app, &uid, "google_health").await;
    assert_eq!(q.get("state").map(String::as_str), Some("success"), "{q:?}");
    let backfilled = eventually(Duration::from_secs(90), || async {
        let counts = app.store().job_counts().await.unwrap();
        !counts.keys().any(|(kind, status)| {
            *kind == wearbridge::states::JobKind::Backfill
                && matches!(
                    status,
                    wearbridge::states::JobStatus::Pending | wearbridge::states::JobStatus::Failed
                )
        })
    })
    .await;
    assert!(backfilled, "{:?}", app.store().job_counts().await.unwrap());
    let range = "start_date=2000-01-01";
    let v1 = |r: &str| format!("/v1/timeseries/{uid}/{r}?{range}");
    let v2 = |r: &str| format!("/v2/timeseries/{uid}/{r}?{range}");

    let (s, oxygen) = app.api.get(&v1("blood_oxygen")).await;
    assert_eq!(s, StatusCode::OK, "{oxygen}");
    let oxygen = oxygen["data"].as_array().unwrap();
    assert_eq!(
        oxygen.len(),
        fixture_items("google_health", "blood_oxygen.json").len()
    );
    assert!(oxygen.iter().all(|o| o["unit"] == "%"
        && (0.0..=100.0).contains(&o["value"].as_f64().unwrap())
        && o["source"]["type"] == "watch"));

    let recorded = fixture_items("google_health", "respiratory_rate.json");
    let averages = recorded
        .iter()
        .filter(|r| {
            r["respiratoryRateSleepSummary"]["fullSleepStats"]["breathsPerMinute"].is_number()
        })
        .count();
    assert!(
        averages < recorded.len(),
        "the fixtures have a summary without one"
    );
    let (_, breaths) = app.api.get(&v2("respiratory_rate")).await;
    let breaths = breaths.as_array().unwrap();
    assert_eq!(breaths.len(), averages, "no average: no sample, not a zero");
    assert!(breaths.iter().all(|b| b["unit"] == "bpm"
        && b["value"].as_f64().unwrap() > 10.0
        && b.get("start").is_none()));

    let readings = fixture_items("google_health", "body_temperature.json");
    let (s, temps) = app.api.get(&v2("body_temperature")).await;
    assert_eq!(s, StatusCode::OK, "{temps}");
    let temps = temps.as_array().unwrap();
    assert_eq!(temps.len(), readings.len());
    for t in temps {
        assert_eq!(t["unit"], "°C");
        assert_eq!((&t["start"], &t["end"]), (&t["timestamp"], &t["timestamp"]));
        assert!(t.get("record_id").is_none() && t.get("id").is_none());
    }
    let located = |loc: &str| temps.iter().filter(|t| t["sensor_location"] == loc).count();
    assert_eq!(located("mouth"), 6);
    assert_eq!(
        (located("armpit"), located("eardrum"), located("forehead")),
        (1, 1, 1)
    );
    assert_eq!(
        temps
            .iter()
            .filter(|t| t.get("sensor_location").is_none())
            .count(),
        3,
        "unspecified, absent and OTHER: unknown"
    );

    let intervals = |member: &str| {
        fixture_items("google_health", "activity.json")
            .into_iter()
            .filter(|i| i.get(member).is_some())
            .collect::<Vec<_>>()
    };
    let (s, grouped) = app
        .api
        .get(&format!("/v2/timeseries/{uid}/distance/grouped?{range}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{grouped}");
    let group = &grouped["groups"]["google_health"][0];
    assert_eq!(
        group["source"],
        json!({"provider": "google_health", "type": "watch"})
    );
    let metres: Vec<&Value> = group["data"].as_array().unwrap().iter().collect();
    let points = intervals("distance");
    assert_eq!(metres.len(), points.len());
    let total_mm: i64 = points
        .iter()
        .map(|p| {
            p["distance"]["millimeters"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
        })
        .sum();
    let total_m: f64 = metres.iter().map(|m| m["value"].as_f64().unwrap()).sum();
    assert!(
        (total_m - total_mm as f64 / 1000.0).abs() < 1e-6,
        "{total_m} m"
    );
    assert!(metres
        .iter()
        .all(|m| m["unit"] == "m" && m["start"].as_str() < m["end"].as_str()));
    let (_, kcal) = app.api.get(&v2("calories_active")).await;
    let kcal = kcal.as_array().unwrap();
    assert_eq!(kcal.len(), intervals("activeEnergyBurned").len());
    assert!(kcal
        .iter()
        .all(|k| k["unit"] == "kcal" && k["end"].is_string()));

    // They are timeseries: a summary route names the right one.
    let (s, e) = app
        .api
        .get(&format!("/v1/summary/blood_oxygen/{uid}?{range}"))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(
        e.to_string()
            .contains("/v1/timeseries/{user_id}/{resource}"),
        "{e}"
    );
    // The provider says it shares them.
    let (_, providers) = app.api.get("/v2/providers").await;
    let google = providers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["slug"] == "google_health")
        .unwrap();
    for r in [
        "blood_oxygen",
        "respiratory_rate",
        "body_temperature",
        "distance",
        "calories_active",
    ] {
        assert!(
            google["supported_resources"]
                .as_array()
                .unwrap()
                .contains(&json!(r)),
            "{r}"
        );
    }
}

/// Polar serves no data until the app registers the user (`POST /v3/users` with a
/// `member-id`) after consent; 409 (already registered) still connects; deregistering
/// calls `DELETE /v3/users/{x_user_id}`; a token that stops working (Polar issues no
/// refresh token) errors the connection, and deregistering still succeeds.
async fn polar_registers_the_user_after_consent_and_deregisters_them(db: TestDb) {
    let (app, fx) = app_with_fixtures(db).await;
    app.endpoint("/hooks", json!({})).await;
    let a = app.user("polar-a").await["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = app.user("polar-b").await["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let registrations = |member: &str| {
        let line = format!(r#"polar POST /v3/users {{"member-id":"{member}"}}"#);
        fx.requests().iter().filter(|r| **r == line).count()
    };

    let q = connect(&app, &a, "polar").await;
    assert_eq!(q.get("state").map(String::as_str), Some("success"), "{q:?}");
    assert_eq!(registrations(&a), 1, "{:?}", fx.requests());
    let (_, conns) = app.api.get(&format!("/v1/user/{a}/providers")).await;
    assert_eq!(conns["data"][0]["external_user_id"], "10579", "x_user_id");

    let q = connect(&app, &b, "polar").await;
    assert_eq!(q.get("state").map(String::as_str), Some("success"), "{q:?}");
    assert_eq!(registrations(&b), 1);
    // Reconnecting: the fixture Polar answers 409 (already registered), which is fine.
    let q = connect(&app, &a, "polar").await;
    assert_eq!(q.get("state").map(String::as_str), Some("success"), "{q:?}");
    assert_eq!(registrations(&a), 2);

    let deletes = || {
        fx.requests()
            .iter()
            .filter(|r| r.starts_with("polar DELETE /v3/users/10579"))
            .count()
    };
    let (s, _) = app.api.delete(&format!("/v1/user/{b}/polar")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(deletes(), 1, "{:?}", fx.requests());

    // The token stops working: no refresh token, so the connection errors.
    fx.expire_access_tokens();
    app.store()
        .poll_now(app.team_id, a.parse().unwrap())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            events(&app).iter().any(|e| {
                e["event_type"] == "provider.connection.error" && e["user_id"] == a.as_str()
            })
        })
        .await,
        "{:?}",
        events(&app)
    );
    let err = events(&app)
        .into_iter()
        .find(|e| e["event_type"] == "provider.connection.error")
        .unwrap();
    assert_eq!(err["data"]["error_type"], "token_refresh_failed");
    // De-registration is best effort: Polar refuses the dead token, the connection ends.
    let (s, _) = app.api.delete(&format!("/v1/user/{a}/polar")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        deletes(),
        1,
        "the dead token's DELETE is refused, not served"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            events(&app).iter().any(|e| {
                e["event_type"] == "provider.connection.deleted" && e["user_id"] == a.as_str()
            })
        })
        .await
    );
}

/// A pull targeted at one Strava activity: the adapter's `record_request` sent to the
/// fixture server (a real token from its OAuth endpoints) answers a DetailedActivity
/// that `parse_record` reads as a page of one, calories included; an unknown id is
/// Strava's 404.
#[tokio::test]
async fn one_strava_activity_is_fetched_and_read_by_the_same_adapter() {
    let fx = FixtureServer::start().await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let authorize = reqwest::Url::parse_with_params(
        &format!("{}/strava/oauth/authorize", fx.root()),
        &[("redirect_uri", "http://app.test/cb"), ("state", "s")],
    )
    .unwrap();
    let r = http.get(authorize).send().await.unwrap();
    let to = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = to
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let token: Value = http
        .post(format!("{}/strava/oauth/token", fx.root()))
        .form(&[("grant_type", "authorization_code"), ("code", &code)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap().to_string();

    let p = wearbridge::providers::find("strava").unwrap();
    let spec = p.resource(wearbridge::events::Resource::Workouts).unwrap();
    let get = |id: &str| {
        let req = p.adapter.record_request(spec, id).unwrap();
        assert_eq!(req.method, "GET");
        http.get(format!("{}/strava{}", fx.root(), req.path))
            .bearer_auth(&access)
            .send()
    };
    let reply = get("20458322671").await.unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let body = reply.bytes().await.unwrap();
    let page = p
        .adapter
        .parse_record(wearbridge::events::Resource::Workouts, &body)
        .unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.next, None);
    let rec = page.records[0].to_json();
    assert_eq!(rec["provider_id"], "20458322671");
    assert_eq!(rec["title"], "Evening Run");
    assert_eq!(rec["calories"], 583.0);
    // After the data changes the detail follows the list: the rename shows.
    fx.advance_to_changed_data();
    let body = get("20458322671").await.unwrap().bytes().await.unwrap();
    let renamed = p
        .adapter
        .parse_record(wearbridge::events::Resource::Workouts, &body)
        .unwrap();
    assert_eq!(
        renamed.records[0].fields["title"],
        "Evening Run (with Anna)"
    );
    let missing = get("1").await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(matches!(
        p.adapter
            .classify_error(404, None, &missing.bytes().await.unwrap()),
        wearbridge::providers::ProviderError::Refused(_)
    ));
}

/// A token from the fixture server's own OAuth endpoints, as a connecting user gets one.
async fn fixture_token(fx: &FixtureServer, provider: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let authorize = reqwest::Url::parse_with_params(
        &format!("{}/{provider}/oauth/authorize", fx.root()),
        &[("redirect_uri", "http://app.test/cb"), ("state", "s")],
    )
    .unwrap();
    let r = http.get(authorize).send().await.unwrap();
    let to = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = to
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let reply = http
        .post(format!("{}/{provider}/oauth/token", fx.root()))
        .form(&[("grant_type", "authorization_code"), ("code", &code)])
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let p = wearbridge::providers::find(provider).unwrap();
    let reply: Value =
        serde_json::from_slice(&p.adapter.token_reply(200, &reply).unwrap()).unwrap();
    reply["access_token"].as_str().unwrap().to_string()
}

/// Sends the adapter's first page request for the provider's first resource, as the
/// gateway does (query, form or JSON body).
async fn first_page(
    fx: &FixtureServer,
    p: &wearbridge::providers::Provider,
    token: &str,
) -> reqwest::Response {
    let now = chrono::Utc::now();
    let window = wearbridge::providers::Window {
        start: now - chrono::Duration::days(7),
        end: now,
    };
    let req = p
        .adapter
        .page_request(&p.manifest.resources[0], &window, None);
    let url = format!("{}/{}{}", fx.root(), p.id(), req.path);
    let http = reqwest::Client::new();
    let builder = match req.method {
        "POST" => http.post(url),
        _ => http.get(url),
    }
    .query(&req.query)
    .bearer_auth(token);
    let builder = match (&req.json, req.form.is_empty()) {
        (Some(json), _) => builder.json(json),
        (None, false) => builder.form(&req.form),
        (None, true) => builder,
    };
    builder.send().await.unwrap()
}

/// With enforcement on, every provider's fixture server holds its strictest documented
/// window: the requests up to the limit (another app of the same credentials having
/// spent most of it, for the app windows; Google Health's 300 a minute per user spent
/// here) are served with the usage the adapter reads back exactly as the server counted
/// it; the next ones get the provider's own refusal, which the adapter reads as a rate
/// limit, with the headers it documents; the statistics agree; and once the window has
/// passed (on the server's manual clock) requests are served again.
#[tokio::test]
async fn each_provider_refuses_past_its_documented_limit_and_its_adapter_reads_the_headers() {
    use wearbridge::providers::{registry, ProviderError, RateScope};
    for p in registry() {
        let id = p.id();
        let fx = FixtureServer::start().await.unwrap();
        let clock = wearbridge::clock::Clock::manual();
        fx.use_clock(clock.clone());
        fx.enforce_rate_limits(1.0);
        let token = fixture_token(&fx, id).await;
        let windows = &p.manifest.rate_limit.windows;
        let strictest = windows.iter().min_by_key(|w| w.requests).unwrap();
        let app_limit = windows
            .iter()
            .filter(|w| w.scope == RateScope::App)
            .map(|w| w.requests)
            .min()
            .unwrap();
        let foreign = if strictest.scope == RateScope::App {
            app_limit - 3
        } else {
            0
        };
        fx.add_foreign_usage(id, foreign);
        let allowed = strictest.requests - foreign;
        for k in 1..=allowed {
            let r = first_page(&fx, p, &token).await;
            assert!(r.status().is_success(), "{id} request {k}: {}", r.status());
            let report = p.adapter.rate_report(r.headers());
            let body = r.bytes().await.unwrap();
            assert_eq!(
                p.adapter.in_band_error(None, &body),
                None,
                "{id} request {k}"
            );
            assert_eq!(
                !report.usage.is_empty(),
                matches!(id, "strava" | "whoop" | "polar"),
                "{id}: usage on every reply where the provider documents it"
            );
            for u in &report.usage {
                let w = windows
                    .iter()
                    .find(|w| Some(w.period_secs) == u.period_secs)
                    .unwrap_or_else(|| panic!("{id}: {u:?} names no manifest window"));
                assert_eq!(u.limit, Some(w.requests), "{id} request {k}: {u:?}");
                assert_eq!(u.used, foreign + k, "{id} request {k}: {u:?}");
            }
            assert_eq!(
                report.reset_after.is_some(),
                k == allowed && !report.usage.is_empty(),
                "{id} request {k}: a wait once the last request the window allows is spent"
            );
        }
        for extra in 1..=2 {
            let r = first_page(&fx, p, &token).await;
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let report = p.adapter.rate_report(&headers);
            let retry_after = wearbridge::http::retry_after(&headers);
            let body = r.bytes().await.unwrap();
            let err = if id == "withings" {
                assert_eq!(status, 200, "Withings refuses inside a 200");
                p.adapter.in_band_error(retry_after, &body).unwrap()
            } else {
                assert_eq!(status, 429, "{id}");
                p.adapter.classify_error(status, retry_after, &body)
            };
            assert!(
                matches!(err, ProviderError::RateLimited { .. }),
                "{id} refusal {extra}: {err:?}"
            );
            let json: Value = serde_json::from_slice(&body).unwrap();
            let h = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string());
            match id {
                "strava" => {
                    assert_eq!(json["message"], "Rate Limit Exceeded");
                    assert_eq!(
                        h("x-readratelimit-usage").unwrap(),
                        format!("{},{}", 100 + extra, 97 + 3 + extra),
                        "over-limit requests still count"
                    );
                    assert!(report.reset_after.is_some());
                }
                "whoop" => {
                    assert_eq!(h("x-ratelimit-remaining").as_deref(), Some("0"));
                    assert_eq!(report.usage[0].period_secs, Some(60));
                    let reset = report.reset_after.unwrap();
                    assert!(reset > Duration::ZERO && reset <= Duration::from_secs(60));
                }
                "oura" => {
                    assert_eq!(h("x-ratelimit-window").as_deref(), Some("300"));
                    assert_eq!(h("x-ratelimit-tier").as_deref(), Some("application"));
                    let wait = retry_after.unwrap();
                    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(300));
                    assert_eq!(report.usage[0].used, 5000);
                    assert_eq!(
                        report.reset_after,
                        Some(wait),
                        "Reset is Date + Retry-After"
                    );
                }
                "polar" => {
                    assert_eq!(json["errorType"], "TOO_MANY_REQUESTS");
                    assert_eq!(
                        h("ratelimit-usage").unwrap(),
                        format!("500, {}", 500 + extra),
                        "a short-term refusal counts toward the long term"
                    );
                    assert!(report.reset_after.unwrap() <= Duration::from_secs(900));
                }
                "withings" => assert_eq!(json["status"], 601),
                "google_health" => assert_eq!(json["error"]["status"], "RESOURCE_EXHAUSTED"),
                _ => {}
            }
        }
        assert_eq!(fx.refused(id), 2, "{id}");
        assert_eq!(fx.data_requests(id), allowed + 2, "{id}");
        let period = Duration::from_secs(strictest.period_secs);
        assert_eq!(fx.max_in_any_window(id, period), allowed, "{id}");
        let stats = fx.request_stats(id);
        assert!(stats[..allowed as usize].iter().all(|s| !s.refused));
        assert!(stats[allowed as usize..].iter().all(|s| s.refused));

        clock.advance(period + Duration::from_secs(1)).unwrap();
        let r = first_page(&fx, p, &token).await;
        assert!(
            r.status().is_success(),
            "{id} after the window: {}",
            r.status()
        );
        let body = r.bytes().await.unwrap();
        assert_eq!(p.adapter.in_band_error(None, &body), None, "{id}");
        assert_eq!(fx.refused(id), 2, "{id}");
        assert_eq!(
            fx.max_in_any_window(id, period),
            allowed,
            "{id}: the served request is a window later"
        );
    }
}

/// Enforcement is off by default: a fixture server answers any number of requests with
/// no rate-limit headers, and still counts them.
#[tokio::test]
async fn without_enforcement_nothing_is_refused_and_no_usage_is_sent() {
    let fx = FixtureServer::start().await.unwrap();
    let p = wearbridge::providers::find("whoop").unwrap();
    let token = fixture_token(&fx, "whoop").await;
    for _ in 0..120 {
        let r = first_page(&fx, p, &token).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get("x-ratelimit-limit").is_none());
    }
    assert_eq!(fx.refused("whoop"), 0);
    assert_eq!(fx.data_requests("whoop"), 120);
    assert_eq!(fx.max_in_any_window("whoop", Duration::from_secs(60)), 120);
}

/// Polar hands physical information over only in a transaction (open, list, each
/// entry, commit), and forgets what a commit handed over. The backfill stores each
/// entry with a weight as body and the newest height as the profile before it commits:
/// while the commit fails the records are already there. A transaction that is gone
/// by the retry (expired) is read again from a new one, and the stored records' hashes
/// make the re-read change nothing: no new version, no second event. A poll with
/// nothing new (204) costs one request and writes nothing.
async fn polar_physical_information_arrives_through_its_transaction(db: TestDb) {
    let (app, fx) = app_with_fixtures(db).await;
    app.endpoint("/hooks", json!({})).await;
    let uid = app.user("polar-body").await["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let tx = "/v3/users/10579/physical-information-transactions";
    let steps = || -> Vec<String> {
        fx.requests()
            .into_iter()
            // The steps as the transaction's server logged them (`METHOD path status`).
            .filter(|r| {
                r.contains("physical-information-transactions")
                    && ["POST", "GET", "PUT"].contains(&r.split(' ').nth(1).unwrap_or(""))
            })
            .map(|r| r.replacen(tx, "…", 1))
            .collect()
    };
    let records = |resource: &'static str| {
        let app = &app;
        let uid = uid.clone();
        async move {
            let (_, v) = app
                .api
                .get(&format!(
                    "/v1/summary/{resource}/{uid}?start_date=2000-01-01"
                ))
                .await;
            v[resource].as_array().cloned().unwrap_or_default()
        }
    };
    let of = |kind: &str| {
        app.events()
            .into_iter()
            .filter(|e| e["user_id"] == uid.as_str() && e["event_type"] == kind)
            .count()
    };

    // Waits for the server to log `line`.
    let logged = |line: &'static str| {
        let steps = &steps;
        async move {
            let seen = eventually(Duration::from_secs(20), || async {
                steps().iter().any(|s| s == line)
            })
            .await;
            assert!(seen, "no `{line}` in {:?}", steps());
        }
    };
    // The open transaction expires and commits work again: the job's retry (after its
    // back-off, on the gateway's clock) must end with `line`.
    let expire_and_retry = |line: &'static str| {
        let (app, fx, steps) = (&app, &fx, &steps);
        async move {
            fx.expire_transactions();
            fx.fail_commits("polar", false);
            let done = app
                .eventually_advancing(Duration::from_secs(10), Duration::from_secs(30), || {
                    let done = steps().iter().any(|s| s == line);
                    async move { done }
                })
                .await;
            assert!(done, "no `{line}` in {:?}", steps());
        }
    };

    // The backfill, its commit failing.
    fx.fail_commits("polar", true);
    let q = connect(&app, &uid, "polar").await;
    assert_eq!(q.get("state").map(String::as_str), Some("success"), "{q:?}");
    logged("polar PUT …/1 500").await;
    assert_eq!(
        steps(),
        [
            "polar POST … 201",
            "polar GET …/1 200",
            "polar GET …/1/physical-informations/4711001 200",
            "polar GET …/1/physical-informations/4711002 200",
            "polar GET …/1/physical-informations/4711003 200",
            "polar PUT …/1 500",
        ]
    );
    // Everything the transaction held is stored before the commit is asked for.
    let body = records("body").await;
    let weights: Vec<&Value> = body.iter().map(|r| &r["weight"]).collect();
    assert_eq!(
        weights,
        [&json!(61.2), &json!(60.6)],
        "the entry without a weight is no body"
    );
    let profile = records("profile").await;
    assert_eq!(profile.len(), 1);
    assert_eq!(
        (&profile[0]["height"], &profile[0]["provider_id"]),
        (&json!(1.69), &json!("10579"))
    );
    // As Junction shows it: centimetres.
    let (s, junction) = app.api.get(&format!("/v2/summary/profile/{uid}")).await;
    assert_eq!(s, StatusCode::OK, "{junction}");
    assert_eq!(
        (&junction["height"], &junction["source"]["provider"]),
        (&json!(169), &json!("polar"))
    );

    // The transaction expires before the retry: the commit finds it gone, and the chain
    // starts over with a new one that hands the same entries over again.
    expire_and_retry("polar PUT …/2 200").await;
    assert_eq!(
        &steps()[6..],
        [
            "polar PUT …/1 404",
            "polar POST … 201",
            "polar GET …/2 200",
            "polar GET …/2/physical-informations/4711001 200",
            "polar GET …/2/physical-informations/4711002 200",
            "polar GET …/2/physical-informations/4711003 200",
            "polar PUT …/2 200",
        ]
    );
    let again = records("body").await;
    assert_eq!(again.len(), 2);
    assert!(
        again
            .iter()
            .chain(&records("profile").await)
            .all(|r| r["version"] == 1),
        "a re-read is no change: {again:?}"
    );

    // A poll over new physical information, its commit failing and its transaction
    // expiring as before: one new body record and the profile edited, each published
    // once.
    fx.advance_to_changed_data();
    fx.fail_commits("polar", true);
    let (s, _) = app
        .api
        .post(&format!("/v1/user/{uid}/refresh"), json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    logged("polar PUT …/3 500").await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            of("daily.data.body.created") == 1 && of("daily.data.profile.updated") == 1
        })
        .await
    );
    expire_and_retry("polar PUT …/4 200").await;
    // The poll's chain read the new entry alone, twice; the second read published nothing.
    let fetched = |tx: u32| {
        steps()
            .iter()
            .filter(|s| s.starts_with(&format!("polar GET …/{tx}/physical-informations/")))
            .count()
    };
    assert_eq!((fetched(3), fetched(4)), (1, 1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        (of("daily.data.body.created"), of("daily.data.body.updated")),
        (1, 0)
    );
    assert_eq!(
        (
            of("daily.data.profile.created"),
            of("daily.data.profile.updated")
        ),
        (0, 1)
    );
    let body = records("body").await;
    assert_eq!(body.len(), 3);
    let profile = records("profile").await;
    assert_eq!((profile.len(), &profile[0]["version"]), (1, &json!(2)));

    // The next scheduled poll, with nothing new: the POST is answered 204 and that is all.
    let before = (steps().len(), app.events().len());
    app.advance(Duration::from_secs(7200));
    assert!(
        eventually(Duration::from_secs(20), || async {
            steps().len() > before.0
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // (The clock's jump can lapse a claim in flight, so a poll may run twice.)
    let polled = steps()[before.0..].to_vec();
    assert!(polled.iter().all(|s| s == "polar POST … 204"), "{polled:?}");
    assert_eq!(records("body").await.len(), 3);
    let new_events: Vec<Value> = app.events().into_iter().skip(before.1).collect();
    assert!(
        new_events
            .iter()
            .all(|e| !e["event_type"].as_str().unwrap().contains("body")
                && !e["event_type"].as_str().unwrap().contains("profile")),
        "{new_events:?}"
    );
}
