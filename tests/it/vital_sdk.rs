//! The Junction-compatible `/v2` API through Junction's own Python SDK (PyPI `vital`,
//! the version `.ci/run` pins): a gateway with a user connected to Oura, WHOOP, Withings
//! and Dexcom and backfilled from the fixture server; `tests/vital_sdk.py` makes every
//! call an app makes, and what it got back is checked here against what the gateway
//! stored (through `/v1` and the store), value by value. The link flow a `/v2` token
//! starts is walked like a browser and ends at the app with Junction's `state` query.
//!
//! Without `python3` or the SDK the test says so on stderr and passes vacuously, unless
//! `WEARBRIDGE_REQUIRE_VITAL_SDK=1` (CI sets it), which makes that a failure.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use wearbridge::fixture_server::FixtureServer;

use crate::backend_tests;
use crate::helpers::{eventually, TestApp, TestDb};
use wearbridge::states::{JobKind, JobStatus};

backend_tests!(the_official_sdk_reads_what_the_gateway_stored);

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vital_sdk.py");

/// Walks a link like a browser; returns where it ended and its query.
async fn walk(url: &str) -> (reqwest::Url, BTreeMap<String, String>) {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(10))
        .build()
        .unwrap();
    let landed = browser.get(url).send().await.unwrap().url().clone();
    let query = landed.query_pairs().into_owned().collect();
    (landed, query)
}

/// Connects a user through the `/v1` flow (the SDK's own link flow is checked apart).
async fn connect(app: &TestApp, user_id: &str, provider: &str) {
    let (s, link) = app
        .api
        .post("/v1/link/token", json!({"user_id": user_id, "provider": provider, "redirect_url": app.receiver.url("/app/done")}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{link}");
    let (_, q) = walk(link["link_url"].as_str().unwrap()).await;
    assert_eq!(
        q.get("state").map(String::as_str),
        Some("success"),
        "{provider}: {q:?}"
    );
}

/// Runs the SDK script; None (after saying so) when it cannot run here.
fn run_script(args: &[&str], env: &[(&str, String)]) -> Option<Value> {
    let required = std::env::var("WEARBRIDGE_REQUIRE_VITAL_SDK").is_ok_and(|v| v == "1");
    let skip = |why: &str| {
        assert!(
            !required,
            "WEARBRIDGE_REQUIRE_VITAL_SDK=1 but {why} (pip install vital==2.1.569)"
        );
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED: Junction SDK test ({why}; pip install vital==2.1.569); it passes vacuously in this run ***\n"
        );
        None
    };
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(SCRIPT).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(_) => return skip("python3 was not found"),
    };
    if out.status.code() == Some(3) {
        return skip("the `vital` SDK is not installed");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the SDK script failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout
        .lines()
        .last()
        .expect("the script prints its results");
    Some(serde_json::from_str(last).expect("the results are JSON"))
}

fn round(v: &Value) -> Value {
    v.as_f64().map_or(Value::Null, |f| json!(f.round() as i64))
}

fn junction(provider: &str) -> &str {
    if provider == "whoop" {
        "whoop_v2"
    } else {
        provider
    }
}

async fn the_official_sdk_reads_what_the_gateway_stored(db: TestDb) {
    let fx = FixtureServer::start().await.unwrap();
    let root = fx.root();
    let app = TestApp::spawn_with(db, move |c| {
        c.providers_base_url = Some(root);
        // What is measured here is the API, not the providers' budgets.
        c.provider_rate_limits = false;
    })
    .await;
    // Every webhook this test makes goes to one endpoint, to be parsed by the SDK.
    app.endpoint("/hooks", json!({})).await;
    let user = app.user("sdk-ring").await;
    let uid = user["user_id"].as_str().unwrap().to_string();
    for p in ["oura", "whoop", "withings", "dexcom"] {
        connect(&app, &uid, p).await;
    }
    let done = eventually(Duration::from_secs(180), || async {
        let counts = app.store().job_counts().await.unwrap();
        counts
            .get(&(JobKind::Backfill, JobStatus::Done))
            .is_some_and(|n| *n > 0)
            && !counts.contains_key(&(JobKind::Backfill, JobStatus::Pending))
    })
    .await;
    assert!(
        done,
        "the backfill did not finish: {:?}",
        app.store().job_counts().await.unwrap()
    );

    // What the gateway stored, read through /v1 before the SDK changes anything.
    let (start, end) = (
        "2000-01-01",
        chrono::Utc::now()
            .date_naive()
            .succ_opt()
            .unwrap()
            .to_string(),
    );
    let v1 = |path: String| {
        let api = app.api.clone();
        async move {
            let (s, body) = api.get(&path).await;
            assert_eq!(s, StatusCode::OK, "{path}: {body}");
            body
        }
    };
    let range = format!("start_date={start}&end_date={end}");
    let sleep = v1(format!("/v1/summary/sleep/{uid}?{range}")).await["sleep"].clone();
    let activity = v1(format!("/v1/summary/activity/{uid}?{range}")).await["activity"].clone();
    let workouts = v1(format!("/v1/summary/workouts/{uid}?{range}")).await["workouts"].clone();
    let body = v1(format!("/v1/summary/body/{uid}?{range}")).await["body"].clone();
    let heartrate = v1(format!("/v1/timeseries/{uid}/heartrate?{range}")).await["data"].clone();
    let blood_oxygen =
        v1(format!("/v1/timeseries/{uid}/blood_oxygen?{range}")).await["data"].clone();
    let body_temperature =
        v1(format!("/v1/timeseries/{uid}/body_temperature?{range}")).await["data"].clone();
    let body_temperature_delta = v1(format!(
        "/v1/timeseries/{uid}/body_temperature_delta?{range}"
    ))
    .await["data"]
        .clone();
    let devices = v1(format!("/v1/devices/{uid}")).await["devices"].clone();
    for (what, v) in [
        ("sleep", &sleep),
        ("activity", &activity),
        ("workouts", &workouts),
        ("body", &body),
        ("heartrate", &heartrate),
        ("blood_oxygen", &blood_oxygen),
        ("body_temperature", &body_temperature),
        ("body_temperature_delta", &body_temperature_delta),
        ("devices", &devices),
    ] {
        assert!(
            v.as_array().is_some_and(|a| !a.is_empty()),
            "nothing stored of {what}"
        );
    }
    let connections = app
        .store()
        .user_connections(app.team_id, uid.parse().unwrap())
        .await
        .unwrap();
    let mut backfills = BTreeMap::new();
    for c in &connections {
        backfills.insert(
            junction(&c.provider).to_string(),
            app.store().backfill_states(c.id).await.unwrap(),
        );
    }

    let Some(out) = run_script(
        &[],
        &[
            ("WEARBRIDGE_URL", app.gateway.url()),
            ("WEARBRIDGE_KEY", app.api.key.clone()),
            ("CONNECTED_USER_ID", uid.clone()),
            ("START_DATE", start.to_string()),
            ("END_DATE", end.clone()),
            ("APP_URL", app.receiver.url("/app/done")),
        ],
    ) else {
        return;
    };

    // Users.
    let made = out["created"]["user_id"].as_str().unwrap();
    assert_eq!(out["created"]["client_user_id"], "sdk-made");
    assert_eq!(out["duplicate"]["status"], 400, "{}", out["duplicate"]);
    assert_eq!(out["duplicate"]["body"]["detail"]["user_id"], made);
    assert!(out["duplicate"]["body"]["detail"]["created_on"].is_string());
    assert_eq!(out["got"]["user_id"], made);
    assert_eq!(out["got"]["client_user_id"], "sdk-made");
    assert_eq!(out["got"]["connected_sources"], 0);
    assert_eq!(out["resolved"], made);
    assert_eq!(out["all"]["total"], 2);
    let mut both = vec![uid.clone(), made.to_string()];
    both.sort();
    assert_eq!(out["all"]["user_ids"], json!(both));
    assert_eq!(
        out["connected_user"]["sources"],
        json!(["dexcom", "oura", "whoop_v2", "withings"])
    );
    let expected_connected: Vec<Value> = ["dexcom", "oura", "whoop", "withings"]
        .iter()
        .map(|p| {
            let mut resources: Vec<String> = wearbridge::providers::find(p)
                .unwrap()
                .manifest
                .resources
                .iter()
                .map(|r| r.name.to_string())
                .collect();
            resources.sort();
            json!([junction(p), "connected", resources])
        })
        .collect();
    assert_eq!(out["connected_providers"], json!(expected_connected));
    let mut slugs: Vec<&str> = wearbridge::providers::registry()
        .iter()
        .map(|p| junction(p.id()))
        .collect();
    slugs.sort();
    assert_eq!(out["providers"], json!(slugs));

    // Link: the token's web URL is the gateway's link, the OAuth link its consent screen.
    let web = out["link"]["link_web_url"].as_str().unwrap();
    assert!(
        web.starts_with(&format!("{}/v1/link/", app.gateway.url())),
        "{web}"
    );
    assert!(web.ends_with(out["link"]["link_token"].as_str().unwrap()));
    assert_eq!(out["oauth"]["slug"], "oura");
    let consent = out["oauth"]["oauth_url"].as_str().unwrap();
    assert!(
        consent.starts_with(&fx.root()) && consent.contains("state="),
        "{consent}"
    );
    assert!(out["picker_link"]
        .as_str()
        .unwrap()
        .starts_with(&app.gateway.url()));

    // Summaries: the stored records, in Junction's models.
    let sdk_sleep = out["sleep"].as_array().unwrap();
    assert_eq!(sdk_sleep.len(), sleep.as_array().unwrap().len());
    for (got, stored) in sdk_sleep.iter().zip(sleep.as_array().unwrap()) {
        assert_eq!(got["id"], stored["id"]);
        assert_eq!(got["calendar_date"], stored["calendar_date"]);
        // A total the provider gave as null is 0 in Junction's model, which requires one.
        assert_eq!(
            got["total"],
            round(&stored["total"])
                .as_i64()
                .map_or(json!(0), |t| json!(t))
        );
        assert_eq!(got["hr_average"], round(&stored["hr_average"]), "{stored}");
        assert_eq!(
            got["provider"],
            junction(stored["source"]["provider"].as_str().unwrap())
        );
        assert!(got["date"]
            .as_str()
            .unwrap()
            .starts_with(stored["calendar_date"].as_str().unwrap()));
    }
    assert_eq!(out["whoop_sleep"], json!(["whoop_v2"]));
    let sdk_activity = out["activity"].as_array().unwrap();
    assert_eq!(sdk_activity.len(), activity.as_array().unwrap().len());
    for (got, stored) in sdk_activity.iter().zip(activity.as_array().unwrap()) {
        assert_eq!(got["id"], stored["id"]);
        assert_eq!(got["calendar_date"], stored["calendar_date"]);
        assert_eq!(got["steps"], round(&stored["steps"]));
        assert_eq!(
            got["calories_total"].as_f64(),
            stored["calories_total"].as_f64()
        );
    }
    let sdk_workouts = out["workouts"].as_array().unwrap();
    assert_eq!(sdk_workouts.len(), workouts.as_array().unwrap().len());
    for (got, stored) in sdk_workouts.iter().zip(workouts.as_array().unwrap()) {
        assert_eq!(got["id"], stored["id"]);
        assert_eq!(got["provider_id"], stored["provider_id"]);
        assert_eq!(got["sport"], stored["sport"]["slug"]);
        assert_eq!(got["distance"].as_f64(), stored["distance"].as_f64());
        assert_eq!(got["average_hr"], round(&stored["average_hr"]));
    }
    let sdk_body = out["body"].as_array().unwrap();
    assert_eq!(sdk_body.len(), body.as_array().unwrap().len());
    for (got, stored) in sdk_body.iter().zip(body.as_array().unwrap()) {
        assert_eq!(got["id"], stored["id"]);
        assert_eq!(got["weight"].as_f64(), stored["weight"].as_f64());
        assert_eq!(got["fat"].as_f64(), stored["fat"].as_f64());
    }
    // None of the providers connected here shares a profile (Polar does): Junction's 404.
    assert_eq!(out["profile"]["status"], 404);
    assert_eq!(out["profile"]["body"]["detail"]["error_type"], "not_found");

    // Timeseries.
    let sdk_hr = out["heartrate"].as_array().unwrap();
    assert_eq!(sdk_hr.len(), heartrate.as_array().unwrap().len());
    for (got, stored) in sdk_hr.iter().zip(heartrate.as_array().unwrap()) {
        let (a, b) = (
            chrono::DateTime::parse_from_rfc3339(got["timestamp"].as_str().unwrap()).unwrap(),
            chrono::DateTime::parse_from_rfc3339(stored["timestamp"].as_str().unwrap()).unwrap(),
        );
        assert_eq!(a, b);
        assert_eq!(got["value"].as_f64(), stored["value"].as_f64());
        assert_eq!(got["unit"], stored["unit"]);
    }
    assert_eq!(
        out["heartrate_grouped"],
        json!({"oura": [{"type": "ring", "n": sdk_hr.len()}]})
    );

    // Blood oxygen, body temperature and its delta, read by the SDK's grouped models, are
    // the stored samples of each provider, in Junction's units; a body temperature (and its
    // delta) carries its interval, a blood oxygen sample none.
    for (name, stored, interval) in [
        ("blood_oxygen", &blood_oxygen, false),
        ("body_temperature", &body_temperature, true),
        ("body_temperature_delta", &body_temperature_delta, true),
    ] {
        let grouped = out[format!("{name}_grouped")].as_object().unwrap();
        let mut want: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for s in stored.as_array().unwrap() {
            let at = chrono::DateTime::parse_from_rfc3339(s["timestamp"].as_str().unwrap())
                .unwrap()
                .with_timezone(&chrono::Utc);
            want.entry(junction(s["source"]["provider"].as_str().unwrap()).to_string())
                .or_default()
                .push(json!([
                    at.to_rfc3339(),
                    s["value"].as_f64(),
                    s["unit"],
                    interval
                ]));
        }
        assert_eq!(
            grouped.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{name}"
        );
        for (slug, mut rows) in want {
            rows.sort_by_key(|r| r.to_string());
            let mut got: Vec<Value> = grouped[&slug].as_array().unwrap().clone();
            for g in &mut got {
                let at = chrono::DateTime::parse_from_rfc3339(g[0].as_str().unwrap())
                    .unwrap()
                    .with_timezone(&chrono::Utc);
                g[0] = json!(at.to_rfc3339());
            }
            got.sort_by_key(|r| r.to_string());
            assert_eq!(got, rows, "{name} {slug}");
        }
    }
    assert!(
        out["blood_oxygen_grouped"]["oura"].is_array()
            && out["blood_oxygen_grouped"]["withings"].is_array()
    );
    assert!(out["body_temperature_delta_grouped"]["oura"].is_array());

    // Devices: the stored ones, in Junction's `ClientFacingDevice`, by id and raw.
    let mut want: Vec<Value> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            json!({"id": d["id"], "user_id": uid, "provider": "dexcom",
                   "source_type": d["source_type"], "app_id": d["app_id"],
                   "device_manufacturer": d["device_manufacturer"],
                   "device_model": d["device_model"], "device_id": d["device_id"]})
        })
        .collect();
    want.sort_by_key(|d| d["id"].as_str().unwrap().to_string());
    assert_eq!(out["devices"], json!(want));
    assert_eq!(out["device"], out["devices"][0]["id"]);
    let raw = out["devices_raw"].as_array().unwrap();
    assert_eq!(raw.len(), want.len());
    for (r, d) in raw.iter().zip(&want) {
        assert_eq!(
            (&r["id"], &r["data_id"], &r["slug"]),
            (&d["id"], &d["id"], &json!("dexcom"))
        );
    }

    // Introspection, from the real backfill and records.
    let stats = &out["resources"][&uid];
    assert_eq!(
        stats["oura"]["sleep"],
        json!(sleep
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["source"]["provider"] == "oura")
            .count())
    );
    assert_eq!(stats["oura"]["heartrate"], json!(sdk_hr.len()));
    assert_eq!(stats["withings"]["body"], json!(sdk_body.len()));
    let pulls = &out["historical_pull"][&uid];
    for (slug, states) in &backfills {
        assert!(!states.is_empty(), "{slug} has a backfill");
        for b in states {
            let got = &pulls[slug][&b.resource];
            assert_eq!(got["status"], "success", "{slug} {}: {got}", b.resource);
            let at = |v: &Value| {
                chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
                    .unwrap()
                    .timestamp_millis()
            };
            assert_eq!(at(&got["range_start"]), b.range_start);
            assert_eq!(at(&got["range_end"]), b.range_end);
            assert_eq!(at(&got["scheduled_at"]), b.scheduled_at);
            assert_eq!(Some(at(&got["ended_at"])), b.last_finished_at);
        }
    }

    // Refresh, deregister, delete.
    assert_eq!(out["refresh"]["success"], true);
    assert_eq!(
        out["refresh"]["refreshed_sources"],
        json!(["dexcom", "oura", "whoop_v2", "withings"])
    );
    assert_eq!(out["deregister"], true);
    assert_eq!(
        out["after_deregister"],
        json!(["dexcom", "oura", "withings"])
    );
    let whoop = app
        .store()
        .user_connections(app.team_id, uid.parse().unwrap())
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.provider == "whoop")
        .unwrap();
    assert_eq!(whoop.status.as_str(), "deregistered");
    assert_eq!(out["deleted"], true);
    assert!(app
        .store()
        .get_user(app.team_id, made.parse().unwrap())
        .await
        .unwrap()
        .is_none());
    assert_eq!(out["get_deleted"]["status"], 404);

    // Bad input and a bad key, in Junction's shapes.
    assert_eq!(out["bad_date"]["status"], 422);
    assert_eq!(out["bad_date"]["type"], "UnprocessableEntityError");
    assert_eq!(
        out["bad_date"]["body"]["detail"][0]["loc"],
        json!(["query", "start_date"])
    );
    assert_eq!(out["bad_key"]["status"], 401);
    assert_eq!(
        out["bad_key"]["body"]["detail"]["error_type"],
        "unauthorized"
    );

    // A `/v2` link ends at the app with Junction's query: success, then a spent token.
    let fresh = app.user("sdk-linked").await;
    let res = app
        .api
        .http
        .post(format!("{}/v2/link/token", app.gateway.url()))
        .header("x-vital-api-key", &app.api.key)
        .json(&json!({"user_id": fresh["user_id"], "provider": "withings", "redirect_url": app.receiver.url("/app/done")}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let token: Value = res.json().await.unwrap();
    let web = token["link_web_url"].as_str().unwrap();
    let (landed, q) = walk(web).await;
    assert_eq!(landed.path(), "/app/done");
    assert_eq!(
        q,
        BTreeMap::from([("state".to_string(), "success".to_string())])
    );
    let (_, q) = walk(web).await;
    assert_eq!(q.get("state").map(String::as_str), Some("error"), "{q:?}");
    assert_eq!(
        q.get("error_type").map(String::as_str),
        Some("token_consumed")
    );
    assert!(q.contains_key("error"));

    every_webhook_parses_with_the_sdks_models(&app, &uid).await;
}

/// Every webhook the gateway sent in this test (connections, backfill chunks, the
/// daily events a refresh found, the deregistration, and the catalogue's example of
/// every event type, about the connected user), parsed by the SDK's model of its
/// event type: any it refuses fails the test.
async fn every_webhook_parses_with_the_sdks_models(app: &TestApp, uid: &str) {
    let (_, catalogue) = app.api.get("/v1/event-types").await;
    let names: Vec<String> = catalogue["data"]
        .as_array()
        .expect("the catalogue lists types")
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    for name in &names {
        let (s, body) = app
            .api
            .post(
                "/v1/events/example",
                json!({"event_type": name, "user_id": uid}),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{name}: {body}");
    }
    // Delivery is asynchronous: wait until nothing new has arrived for two seconds.
    let mut seen = app.receiver.count();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = app.receiver.count();
        if now == seen {
            break;
        }
        seen = now;
    }
    let bodies: Vec<Value> = app
        .receiver
        .received()
        .into_iter()
        .filter(|r| r.path == "/hooks")
        .map(|r| {
            assert!(r.verified, "unverified webhook {}", r.event_id);
            serde_json::from_str(&r.body).expect("a webhook body is JSON")
        })
        .collect();
    let file =
        std::env::temp_dir().join(format!("wearbridge-webhooks-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, serde_json::to_vec(&bodies).unwrap()).unwrap();
    let out = run_script(&["--webhooks", file.to_str().unwrap()], &[]);
    let _ = std::fs::remove_file(&file);
    let Some(out) = out else {
        return;
    };
    assert_eq!(out["failures"], json!([]), "webhooks the SDK refused");
    let validated = out["validated"].as_object().unwrap();
    // Every type Junction has a model of was parsed, at least as an example.
    for name in &names {
        // Junction sends no deletions: `daily.data.<r>.deleted` is ours alone.
        let unmodelled = name == "provider.connection.deleted"
            || name == "webhook.test"
            || name.contains(".recovery.")
            || name.ends_with(".deleted");
        assert!(
            unmodelled || validated.contains_key(name.as_str()),
            "no {name} was parsed: {out}"
        );
    }
    let total: u64 = validated.values().filter_map(Value::as_u64).sum();
    assert!(total > 10, "too few webhooks parsed: {out}");
}
