//! The ingestion engine on every backend: provider budgets shared by processes and
//! surviving restarts, polls served before backfills, re-pulls on demand, and jobs that
//! can never get stuck (a panic fails its job; a job that keeps failing stops).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use wearbridge::fixture_server::{Fault, FixtureServer};
use wearbridge::states::{JobKind, JobStatus};
use wearbridge::store::{BudgetSpec, BudgetWindow, Grant, Priority, Store, WaitReason};

use crate::helpers::{TestApp, TestDb};

crate::backend_tests!(
    budgets_are_charged_together_shared_and_survive_restarts,
    a_pause_holds_every_process_and_waiting_polls_go_first,
    concurrent_processes_never_take_more_than_the_limit,
    takes_in_one_group_are_decided_in_turn,
    due_polls_are_claimed_before_backfills_and_spent_providers_are_skipped,
    a_panicking_job_fails_with_its_message_and_the_history_goes_on,
    a_job_that_keeps_failing_stops_after_its_tries,
    a_repull_queues_windows_newest_first_and_refuses_what_it_cannot_do,
    a_connection_back_from_an_error_backfills_only_the_gap,
    dexcom_asks_for_the_data_range_and_skips_windows_without_data,
    dexcom_devices_are_announced_when_found_and_when_they_change,
    a_users_fresh_data_is_served_while_others_backfill,
);

const NOW: i64 = 1_800_000_000_000;

/// A gateway on the fixture server with a `/hooks` endpoint and one user, `u`, connected
/// to `provider`.
async fn connected(db: TestDb, provider: &str) -> (FixtureServer, TestApp, String) {
    let fx = FixtureServer::start().await.unwrap();
    let root = fx.root();
    let app = TestApp::spawn_with(db, move |c| c.providers_base_url = Some(root)).await;
    app.endpoint("/hooks", json!({})).await;
    let user = app.user("u").await;
    let uid = user["user_id"].as_str().unwrap().to_string();
    app.connect(&uid, provider).await;
    (fx, app, uid)
}

fn spec(key: &str, limit: u64) -> BudgetSpec {
    BudgetSpec {
        key: key.into(),
        windows: vec![BudgetWindow {
            period_ms: 60_000,
            limit,
        }],
    }
}

async fn take(store: &Store, specs: &[BudgetSpec], priority: Priority, now: i64) -> Grant {
    store.take_budget(specs, 1, priority, now).await.unwrap()
}

async fn budgets_are_charged_together_shared_and_survive_restarts(db: TestDb) {
    // Two processes: two stores, each with its own connections.
    let (a, b) = (db.store().await, db.store().await);
    let app = spec("whoop/app", 5);
    let user = spec("whoop/app/user/u1", 3);
    for i in 0..3 {
        let s = if i % 2 == 0 { &a } else { &b };
        let g = take(s, &[app.clone(), user.clone()], Priority::Backfill, NOW).await;
        assert_eq!(g, Grant::Granted, "request {i}");
    }
    // The user's budget is spent: refused, and the app is not charged for it.
    let g = take(&b, &[app.clone(), user.clone()], Priority::Backfill, NOW).await;
    assert!(
        matches!(
            g,
            Grant::Wait {
                why: WaitReason::Limit,
                ..
            }
        ),
        "{g:?}"
    );
    assert_eq!(
        a.budget_state("whoop/app").await.unwrap().used(60_000, NOW),
        3
    );
    assert_eq!(
        take(&a, std::slice::from_ref(&app), Priority::Backfill, NOW).await,
        Grant::Granted
    );
    assert_eq!(
        take(&b, std::slice::from_ref(&app), Priority::Backfill, NOW).await,
        Grant::Granted
    );
    let Grant::Wait { until, why } =
        take(&a, std::slice::from_ref(&app), Priority::Backfill, NOW).await
    else {
        panic!("the sixth request of five fit");
    };
    assert_eq!(why, WaitReason::Limit);
    assert!(
        until > NOW + 60_000 && until <= NOW + 62_000,
        "{}",
        until - NOW
    );
    // A restart forgets nothing.
    a.close().await;
    b.close().await;
    let c = db.store().await;
    assert!(matches!(
        take(
            &c,
            std::slice::from_ref(&app),
            Priority::Backfill,
            until - 1
        )
        .await,
        Grant::Wait { .. }
    ));
    assert_eq!(
        take(&c, &[app], Priority::Backfill, until).await,
        Grant::Granted
    );
}

async fn a_pause_holds_every_process_and_waiting_polls_go_first(db: TestDb) {
    let (a, b) = (db.store().await, db.store().await);
    let app = spec("whoop/app", 2);
    // A 429 seen by one process pauses the other.
    a.pause_budget("whoop/app", NOW + 10_000, NOW)
        .await
        .unwrap();
    assert_eq!(
        take(&b, std::slice::from_ref(&app), Priority::Poll, NOW).await,
        Grant::Wait {
            until: NOW + 10_000,
            why: WaitReason::Paused
        }
    );
    let t = NOW + 10_000;
    for _ in 0..2 {
        assert_eq!(
            take(&b, std::slice::from_ref(&app), Priority::Backfill, t).await,
            Grant::Granted
        );
    }
    // The window is full; a poll asks and is told when, and marks its place.
    let Grant::Wait { until, .. } = take(&a, std::slice::from_ref(&app), Priority::Poll, t).await
    else {
        panic!("the window was full");
    };
    // When room comes back, backfills wait for the poll, which gets it.
    assert_eq!(
        take(&b, std::slice::from_ref(&app), Priority::Backfill, until).await,
        Grant::Wait {
            until: until + 60_000 / wearbridge::store::SLOTS,
            why: WaitReason::Yielding
        }
    );
    assert_eq!(
        take(&a, &[app], Priority::Poll, until).await,
        Grant::Granted
    );
}

async fn concurrent_processes_never_take_more_than_the_limit(db: TestDb) {
    let stores = [db.store().await, db.store().await];
    let app = spec("strava/app", 25);
    let mut tasks = Vec::new();
    for i in 0..80 {
        let s = stores[i % 2].clone();
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            take(&s, &[app], Priority::Backfill, NOW).await == Grant::Granted
        }));
    }
    let mut granted = 0;
    for t in tasks {
        granted += t.await.unwrap() as usize;
    }
    assert_eq!(granted, 25);
}

/// A group of takes (what a process's concurrent pulls make together) is decided as if
/// each came alone after those before it: every row is charged once per grant, a
/// refusal charges nothing, and a refused poll holds backfills off its budget.
async fn takes_in_one_group_are_decided_in_turn(db: TestDb) {
    use wearbridge::store::BudgetRequest;
    let store = db.store().await;
    let app = spec("whoop/app", 4);
    let (a, b) = (spec("whoop/app/user/a", 2), spec("whoop/app/user/b", 3));
    let req = |specs: &[&BudgetSpec], priority| BudgetRequest {
        specs: specs.iter().map(|s| (*s).clone()).collect(),
        need: 1,
        priority,
        now: NOW,
    };
    let grants = store
        .take_budgets(&[
            req(&[&app, &a], Priority::Poll),
            req(&[&app, &a], Priority::Poll),
            req(&[&app, &b], Priority::Poll),
            // a's budget is spent: refused, the app not charged.
            req(&[&app, &a], Priority::Poll),
            req(&[&app, &b], Priority::Poll),
            // The app's is spent now.
            req(&[&app, &b], Priority::Backfill),
        ])
        .await
        .unwrap();
    let granted: Vec<bool> = grants.iter().map(|g| *g == Grant::Granted).collect();
    assert_eq!(
        granted,
        [true, true, true, false, true, false],
        "{grants:?}"
    );
    assert!(matches!(
        grants[3],
        Grant::Wait {
            why: WaitReason::Limit,
            ..
        }
    ));
    let used = |key: &'static str| {
        let store = store.clone();
        async move { store.budget_state(key).await.unwrap().used(60_000, NOW) }
    };
    assert_eq!(used("whoop/app").await, 4);
    assert_eq!(used("whoop/app/user/a").await, 2);
    assert_eq!(used("whoop/app/user/b").await, 2);
    // The refused poll holds backfills off a's budget (and only a's) until it has run.
    let Grant::Wait { why, .. } =
        take(&store, std::slice::from_ref(&a), Priority::Backfill, NOW).await
    else {
        panic!("a's budget is spent");
    };
    assert_eq!(why, WaitReason::Yielding);
    assert_eq!(
        take(&store, std::slice::from_ref(&b), Priority::Backfill, NOW).await,
        Grant::Granted
    );
}

async fn due_polls_are_claimed_before_backfills_and_spent_providers_are_skipped(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| c.poller = false).await;
    let user = app.user("u").await;
    let store = app.store();
    // A connection made straight in the store: backfill windows due now, a poll due too.
    let jobs = wearbridge::poller::plan::connect_jobs(
        wearbridge::providers::find("oura").unwrap(),
        app.clock.now_ms() - 1000,
        None,
    );
    let conn = connect_in_store(&app, user["user_id"].as_str().unwrap(), "oura", &jobs).await;
    // Make the polls due later than every backfill fell due.
    let lease = app.clock.now_ms() + 60_000;
    let claimed = store.claim_jobs(100, lease, &[]).await.unwrap();
    assert!(claimed.iter().all(|j| j.kind == JobKind::Backfill));
    for j in &claimed {
        store
            .reschedule_job(j, app.clock.now_ms() - 500, None)
            .await
            .unwrap();
    }
    let polls_due = store.poll_now(app.team_id, conn.1).await.unwrap();
    assert!(polls_due > 0);
    let first = store.claim_jobs(1, lease, &[]).await.unwrap();
    assert_eq!(first[0].kind, JobKind::Poll, "a due poll goes first");
    // A provider whose budget is spent is not claimed at all.
    assert!(store
        .claim_jobs(100, lease, &["oura"])
        .await
        .unwrap()
        .is_empty());
    assert!(!store
        .claim_jobs(100, lease, &["strava"])
        .await
        .unwrap()
        .is_empty());
}

/// A connection created in the store directly (no provider, no poller): (id, user).
async fn connect_in_store(
    app: &TestApp,
    user_id: &str,
    provider: &str,
    jobs: &[wearbridge::store::NewJob],
) -> (uuid::Uuid, uuid::Uuid) {
    let user: uuid::Uuid = user_id.parse().unwrap();
    let id = uuid::Uuid::new_v4();
    let p = wearbridge::providers::find(provider).unwrap();
    let conn = wearbridge::events::ConnectionRef {
        id,
        team_id: app.team_id,
        user_id: user,
        client_user_id: "u".into(),
        provider: p.event_ref(),
    };
    let event = wearbridge::events::Envelope::connection_created(&conn, None, &[]);
    let tokens = wearbridge::store::SealedTokens {
        access: app
            .sealer
            .seal(wearbridge::seal::Purpose::ProviderAccessToken, "t"),
        refresh: None,
        expires_at: None,
    };
    app.store()
        .create_connection(id, app.team_id, user, provider, None, &tokens, jobs, &event)
        .await
        .unwrap();
    (id, user)
}

async fn providers_view(app: &TestApp, user: &str) -> Value {
    let (s, v) = app.api.get(&format!("/v1/user/{user}/providers")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["data"][0].clone()
}

fn progress<'a>(view: &'a Value, resource: &str) -> &'a Value {
    view["backfill"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["resource"] == resource)
        .unwrap_or_else(|| panic!("no progress for {resource}: {view}"))
}

async fn a_panicking_job_fails_with_its_message_and_the_history_goes_on(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| c.poller = false).await;
    let user = app.user("u").await;
    let uid = user["user_id"].as_str().unwrap().to_string();
    let p = wearbridge::providers::find("oura").unwrap();
    let jobs = wearbridge::poller::plan::connect_jobs(p, app.clock.now_ms(), None);
    connect_in_store(&app, &uid, "oura", &jobs).await;
    // With the poller switched off, nothing runs: the worker alone delivered nothing yet
    // and the jobs wait.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let counts = app.store().job_counts().await.unwrap();
    assert_eq!(counts.get(&(JobKind::Backfill, JobStatus::Done)), None);
    let lease = app.clock.now_ms() + 60_000;
    let job = app
        .store()
        .claim_jobs(100, lease, &[])
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.kind == JobKind::Backfill && j.resource.as_str() == "sleep")
        .unwrap();
    assert_eq!(job.chunk_index, 0);
    // The job's run panicked, as an adapter bug would.
    let panic = std::panic::catch_unwind(|| -> anyhow::Result<()> {
        panic!("workout time out of range: year 10000")
    });
    app.gateway.state.poller.settle(&job, panic).await;
    let view = providers_view(&app, &uid).await;
    let sleep = progress(&view, "sleep");
    assert_eq!(sleep["status"], "running", "{sleep}");
    assert_eq!(sleep["windows_failed"], 1, "{sleep}");
    assert_eq!(
        sleep["last_error"],
        "panicked: workout time out of range: year 10000"
    );
    assert_eq!(view["status"], "connected");
    let (_, metrics) = app.api.send(reqwest::Method::GET, "/metrics", None).await;
    let text = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        text.contains(r#"wearbridge_jobs_failed_total{provider="oura",reason="panic"} 1"#),
        "{text}"
    );
    // The next (older) window is released: the history goes on without the failed one.
    let next = app.store().claim_jobs(100, lease, &[]).await.unwrap();
    assert!(
        next.iter()
            .any(|j| j.resource.as_str() == "sleep" && j.chunk_index == 1),
        "{next:?}"
    );
}

async fn a_job_that_keeps_failing_stops_after_its_tries(db: TestDb) {
    let fx = FixtureServer::start().await.unwrap();
    let root = fx.root();
    let app = TestApp::spawn_with(db, move |c| {
        c.providers_base_url = Some(root);
        c.job_max_attempts = 3;
        c.poller_concurrency = 1;
    })
    .await;
    app.endpoint("/hooks", json!({})).await;
    let user = app.user("u").await;
    let uid = user["user_id"].as_str().unwrap().to_string();
    // Strava has one resource, so its first window is the only job due: it gets three
    // 500s in a row and gives up on the third.
    for _ in 0..3 {
        fx.inject("strava", Fault::ServerError);
    }
    app.connect(&uid, "strava").await;
    let windows = 13;
    let done = app
        .eventually_advancing(Duration::from_secs(10), Duration::from_secs(60), || async {
            app.events()
                .iter()
                .filter(|e| {
                    e["event_type"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("historical.")
                })
                .count()
                >= windows - 1
        })
        .await;
    assert!(done, "{:?}", app.store().job_counts().await.unwrap());
    let view = providers_view(&app, &uid).await;
    let failed: Vec<&Value> = view["backfill"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["windows_failed"] == 1)
        .collect();
    assert_eq!(failed.len(), 1, "{view}");
    assert_eq!(failed[0]["status"], "failed");
    assert!(
        failed[0]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("gave up after 3 tries"),
        "{view}"
    );
    assert_eq!(failed[0]["windows_done"], windows - 1);
    assert_eq!(
        view["status"], "connected",
        "a provider outage never errors the connection"
    );
}

async fn a_repull_queues_windows_newest_first_and_refuses_what_it_cannot_do(db: TestDb) {
    let fx = FixtureServer::start().await.unwrap();
    let root = fx.root();
    let tweak = {
        let root = root.clone();
        move |c: &mut wearbridge::config::Config| {
            c.providers_base_url = Some(root.clone());
            c.poller = false;
        }
    };
    let app = TestApp::spawn_with(db, tweak).await;
    app.endpoint("/hooks", json!({})).await;
    let user = app.user("u").await;
    let uid = user["user_id"].as_str().unwrap().to_string();
    app.connect(&uid, "oura").await;
    let path = format!("/v1/user/{uid}/oura/backfill");
    let now = chrono::DateTime::from_timestamp_millis(app.clock.now_ms()).unwrap();
    let day = |d: i64| {
        (now - chrono::Duration::days(d))
            .format("%Y-%m-%d")
            .to_string()
    };
    let body = json!({"start_date": day(100), "end_date": day(0), "resources": ["sleep"]});
    // The connect backfill is still running (no poller here): 409.
    let (s, v) = app.api.post(&path, body.clone()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // Bad requests: 422, and nothing queued.
    for bad in [
        json!({"start_date": day(4000), "end_date": day(0)}),
        json!({"start_date": day(1), "end_date": day(3)}),
        json!({"start_date": day(3), "end_date": day(0), "resources": ["glucose"]}),
        json!({"start_date": day(3), "end_date": day(0), "resources": ["naps"]}),
        json!({"start_date": "yesterday", "end_date": day(0)}),
    ] {
        let (s, v) = app.api.post(&path, bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
    }
    let (s, _) = app
        .api
        .post(&format!("/v1/user/{uid}/strava/backfill"), body.clone())
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // With the poller on, the connect backfill completes; then the re-pull is queued.
    let app = app
        .restart(move |c| {
            c.providers_base_url = Some(root.clone());
        })
        .await;
    let historical = |app: &TestApp| -> Vec<Value> {
        app.events()
            .into_iter()
            .filter(|e| e["event_type"] == "historical.data.sleep.created")
            .collect()
    };
    let connect_windows = crate::helpers::backfill_windows("oura", "sleep");
    let done = app
        .eventually_advancing(Duration::from_secs(1), Duration::from_secs(60), || async {
            historical(&app).len() >= connect_windows
        })
        .await;
    assert!(done, "{:?}", app.store().job_counts().await.unwrap());
    let (s, v) = app.api.post(&path, body.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["resources"], json!(["sleep"]));
    let windows = v["windows"].as_u64().unwrap();
    assert_eq!(windows, 2, "100 days in 90-day windows: {v}");
    let id = v["backfill_id"].as_str().unwrap().to_string();
    let done = app
        .eventually_advancing(Duration::from_secs(1), Duration::from_secs(60), || async {
            historical(&app).len() as u64 >= connect_windows as u64 + windows
        })
        .await;
    assert!(done, "{:?}", app.store().job_counts().await.unwrap());
    let repulled: Vec<Value> = historical(&app).into_iter().skip(connect_windows).collect();
    let chunks: Vec<(i64, bool)> = repulled
        .iter()
        .map(|e| {
            let d = &e["data"];
            (
                d["chunk_index"].as_i64().unwrap_or(-1),
                d["is_final"] == true,
            )
        })
        .collect();
    assert_eq!(chunks, vec![(0, false), (1, true)], "{repulled:?}");
    let view = providers_view(&app, &uid).await;
    let sleep = progress(&view, "sleep");
    assert_eq!(sleep["backfill_id"], id.as_str());
    assert_eq!(sleep["status"], "done");
    assert_eq!(sleep["windows_done"], 2);
    // Another resource still shows the connect backfill.
    let other = view["backfill"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["resource"] != "sleep")
        .unwrap();
    assert!(other["backfill_id"].is_null());
}

/// Two `serve` processes on one PostgreSQL backfill users against a fixture provider
/// that enforces WHOOP's limits exactly (windows 60 times shorter, in both): not one
/// 429, and no window ever holds more than its limit, while the budget is really used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_never_exceed_the_providers_budget() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let url = db.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_wearbridge"))
            .args(["bench", "budget", "--users", "8", "--processes", "2"])
            .args(["--time-scale", "60", "--json", "--database-url", &url])
            .env("WEARBRIDGE_LOG", "warn")
            .output()
            .expect("wearbridge runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(r["refused_429"], 0, "{r}");
    // Every window of every user, and each user's identity request (WHOOP's basic
    // profile, which names the user its notifications name).
    assert_eq!(r["served"], 8 * 64 + 8, "every window of every user: {r}");
    for w in r["windows"].as_array().unwrap() {
        let (most, limit) = (w["max_in_any_window"].as_u64(), w["limit"].as_u64());
        assert!(most <= limit, "{w}");
    }
    let minute = &r["windows"][0];
    assert_eq!(minute["period_secs"], 60);
    assert!(
        minute["max_in_any_window"].as_u64().unwrap() >= 50,
        "the budget was the limit, not something else: {r}"
    );
    drop(db);
}

async fn a_connection_back_from_an_error_backfills_only_the_gap(db: TestDb) {
    let (fx, app, uid) = connected(db, "oura").await;
    let windows = crate::helpers::all_backfill_windows("oura");
    let historical = |app: &TestApp| {
        app.events()
            .iter()
            .filter(|e| {
                e["event_type"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("historical.")
            })
            .count()
    };
    let done = app
        .eventually_advancing(Duration::from_secs(1), Duration::from_secs(60), || async {
            historical(&app) >= windows
        })
        .await;
    assert!(done, "{:?}", app.store().job_counts().await.unwrap());
    // Two days on, the token is refused: the connection errors.
    app.advance(Duration::from_secs(2 * 86_400));
    fx.expire_access_tokens();
    fx.refuse_refresh(true);
    let errored = app
        .eventually_advancing(Duration::from_secs(60), Duration::from_secs(60), || async {
            app.events()
                .iter()
                .any(|e| e["event_type"] == "provider.connection.error")
        })
        .await;
    assert!(errored);
    // The user reconnects: only the gap since the last poll, with the poll's lookback,
    // is pulled again, one window per resource, not the whole year.
    fx.refuse_refresh(false);
    app.connect(&uid, "oura").await;
    let view = providers_view(&app, &uid).await;
    assert_eq!(view["status"], "connected", "{view}");
    for b in view["backfill"].as_array().unwrap() {
        assert_eq!(b["windows_total"], 1, "{b}");
        let start = chrono::DateTime::parse_from_rfc3339(b["start"].as_str().unwrap()).unwrap();
        let end = chrono::DateTime::parse_from_rfc3339(b["end"].as_str().unwrap()).unwrap();
        let days = (end - start).num_hours() as f64 / 24.0;
        // The last successful poll was at most two days back, plus three days of
        // lookback (Oura's): five days or so, not 365.
        assert!((3.0..=6.0).contains(&days), "{days} days: {b}");
    }
}

/// Dexcom's `dataRange` is asked before each window: the year's windows without readings
/// cost that one request and still publish their chunk, in order; only windows that
/// hold readings are fetched.
async fn dexcom_asks_for_the_data_range_and_skips_windows_without_data(db: TestDb) {
    let (fx, app, uid) = connected(db, "dexcom").await;
    let chunks = |app: &TestApp| -> Vec<(i64, bool)> {
        app.events()
            .iter()
            .filter(|e| e["event_type"] == "historical.data.glucose.created")
            .map(|e| {
                (
                    e["data"]["chunk_index"].as_i64().unwrap(),
                    e["data"]["is_final"] == true,
                )
            })
            .collect()
    };
    // Glucose, carbohydrates and insulin: 13 windows each.
    let historical = |app: &TestApp| {
        app.events()
            .iter()
            .filter(|e| {
                e["event_type"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("historical.")
            })
            .count()
    };
    let done = app
        .eventually_advancing(Duration::from_secs(1), Duration::from_secs(60), || async {
            historical(&app) >= 3 * 13
        })
        .await;
    assert!(done, "{:?}", app.store().job_counts().await.unwrap());
    let got = chunks(&app);
    assert_eq!(
        got.iter().map(|c| c.0).collect::<Vec<_>>(),
        (0..13).collect::<Vec<_>>()
    );
    assert_eq!(got.iter().filter(|c| c.1).count(), 1);
    let requests = fx.requests();
    let ranges = requests.iter().filter(|r| r.contains("/dataRange")).count();
    let pages = requests.iter().filter(|r| r.contains("/egvs")).count();
    let event_pages = requests.iter().filter(|r| r.contains("/events")).count();
    assert_eq!(
        ranges,
        3 * 13,
        "one dataRange per window and resource: {requests:#?}"
    );
    assert!(
        (1..13).contains(&pages),
        "only the windows with readings are fetched: {pages} of 13"
    );
    assert!(
        (2..26).contains(&event_pages),
        "only the windows with events are fetched, by each of the two: {event_pages} of 26"
    );
    let (s, v) = app
        .api
        .get(&format!(
            "/v1/timeseries/{uid}/glucose?start_date=2000-01-01"
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(!v["data"].as_array().unwrap().is_empty(), "{v}");
}

/// Dexcom's device list takes no window: the backfill is one request, whose devices are
/// announced at once with `provider.device.created` (devices have no history, so no
/// `historical.data.devices.created`); a poll that finds one changed announces
/// `provider.device.updated`, a new one `.created`, and an unchanged one nothing. The data
/// API lists them whole with the ids their events carried.
async fn dexcom_devices_are_announced_when_found_and_when_they_change(db: TestDb) {
    let (fx, app, uid) = connected(db, "dexcom").await;
    let of_type = |app: &TestApp, t: &str| -> Vec<Value> {
        app.events()
            .into_iter()
            .filter(|e| e["event_type"] == t)
            .collect()
    };
    let found = app
        .eventually_advancing(Duration::from_secs(1), Duration::from_secs(60), || async {
            of_type(&app, "provider.device.created").len() == 2
        })
        .await;
    assert!(found, "{:?}", app.store().job_counts().await.unwrap());
    let device_requests = |fx: &FixtureServer| -> Vec<String> {
        fx.requests()
            .into_iter()
            .filter(|r| r.contains("/v3/users/self/devices"))
            .collect()
    };
    let asked = device_requests(&fx);
    assert_eq!(
        asked.len(),
        1,
        "one request for the whole backfill: {asked:?}"
    );
    assert!(!asked[0].contains("startDate"), "{}", asked[0]);
    let created = of_type(&app, "provider.device.created");
    let mut models: Vec<&str> = created
        .iter()
        .map(|e| e["data"]["app_id"].as_str().unwrap_or("receiver"))
        .collect();
    models.sort();
    assert_eq!(models, ["G7", "receiver"]);
    for e in &created {
        assert_eq!(e["data"]["provider"], "dexcom");
        assert_eq!(e["data"]["source_type"], "automatic");
        assert_eq!(e["data"]["user_id"], uid.as_str());
        assert_eq!(e["data"]["version"], 1);
    }
    assert!(
        app.events()
            .iter()
            .all(|e| e["event_type"] != "historical.data.devices.created"),
        "devices have no history"
    );
    let (s, v) = app.api.get(&format!("/v1/devices/{uid}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let stored = v["devices"].as_array().unwrap();
    assert_eq!(stored.len(), 2);
    for d in stored {
        assert!(created.iter().any(|e| e["data"]["id"] == d["id"]), "{d}");
        assert!(
            d["alert_schedules"].is_array(),
            "the provider's settings are kept"
        );
    }
    let (s, _) = app
        .api
        .get(&format!("/v1/devices/{uid}?provider=oura"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        app.api
            .get(&format!("/v1/devices/{uid}?provider=oura"))
            .await
            .1["devices"],
        json!([])
    );

    // The app's high alert is lowered and a new sensor appears; the receiver is as it was.
    fx.advance_to_changed_data();
    app.store()
        .poll_now(app.team_id, uid.parse().unwrap())
        .await
        .unwrap();
    let changed = app
        .eventually_advancing(Duration::from_secs(1), Duration::from_secs(60), || async {
            of_type(&app, "provider.device.updated").len() == 1
                && of_type(&app, "provider.device.created").len() == 3
        })
        .await;
    assert!(changed, "{:#?}", app.events());
    let updated = &of_type(&app, "provider.device.updated")[0];
    assert_eq!(updated["data"]["app_id"], "G7");
    assert_eq!(updated["data"]["version"], 2);
    let id = updated["data"]["id"].as_str().unwrap();
    assert!(
        created.iter().any(|e| e["data"]["id"] == id),
        "the same device"
    );
    let (_, v) = app.api.get(&format!("/v1/devices/{uid}")).await;
    assert_eq!(v["devices"].as_array().unwrap().len(), 3);
    let app_device = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .unwrap();
    assert_eq!(
        app_device["alert_schedules"][0]["alertSettings"][0]["value"],
        220
    );
    assert_eq!(device_requests(&fx).len(), 2, "the poll read the list once");
}

/// WHOOP allows 100 requests a minute. With one user's history in and five more
/// connecting (320 backfill requests, over three minutes of budget), the first user's
/// poll is served in the next minute's budget, long before the backfills are done.
async fn a_users_fresh_data_is_served_while_others_backfill(db: TestDb) {
    let fx = FixtureServer::start().await.unwrap();
    let root = fx.root();
    let app = TestApp::spawn_with(db, move |c| c.providers_base_url = Some(root)).await;
    app.endpoint("/hooks", json!({})).await;
    let first = app.user("first").await;
    let first_id = first["user_id"].as_str().unwrap().to_string();
    app.connect(&first_id, "whoop").await;
    let backfilled = |app: &TestApp, n: usize| {
        app.events()
            .iter()
            .filter(|e| {
                e["event_type"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("historical.")
            })
            .count()
            >= n
    };
    let done = app
        .eventually_advancing(Duration::from_secs(2), Duration::from_secs(60), || async {
            backfilled(&app, 64)
        })
        .await;
    assert!(done, "{:?}", app.store().job_counts().await.unwrap());
    // Let the first minute's burst pass, then five users connect at once.
    app.advance(Duration::from_secs(120));
    for i in 0..5 {
        let u = app.user(&format!("new-{i}")).await;
        app.connect(u["user_id"].as_str().unwrap(), "whoop").await;
    }
    // Their backfills spend the minute's budget in a moment; now the first user's data
    // changes and its polls fall due.
    let busy = app
        .eventually_advancing(
            Duration::from_millis(1),
            Duration::from_secs(30),
            || async { backfilled(&app, 64 + 90) },
        )
        .await;
    assert!(busy, "the new backfills started");
    fx.advance_to_changed_data();
    let due_at = app.clock.now_ms();
    let polls = app
        .store()
        .poll_now(app.team_id, first_id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(polls, 4);
    // Served means the poll's changes are stored with their events (delivery to the
    // receiver takes real time while the test's clock runs on). Only the first user's
    // polls are due: the others' are hours away.
    let fresh = || async {
        app.store()
            .event_counts()
            .await
            .unwrap()
            .keys()
            .any(|t| t.starts_with("daily."))
    };
    let served = app
        .eventually_advancing(Duration::from_secs(1), Duration::from_secs(60), fresh)
        .await;
    assert!(served, "the first user's poll was never served");
    let waited = app.clock.now_ms() - due_at;
    // The backfills need over three minutes of budget; the poll comes in the next one.
    assert!(
        waited <= 75_000,
        "served within the next minute's budget, not behind the backfills: {waited} ms"
    );
    let historical = app
        .events()
        .iter()
        .filter(|e| {
            e["event_type"]
                .as_str()
                .unwrap_or("")
                .starts_with("historical.")
        })
        .count();
    assert!(
        historical < 64 + 5 * 64,
        "the poll was served while the backfills still ran ({historical} chunks in)"
    );
    let counts = app.store().job_counts().await.unwrap();
    assert!(
        counts.contains_key(&(JobKind::Backfill, JobStatus::Pending)),
        "{counts:?}"
    );
}
