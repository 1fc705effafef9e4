//! Push end to end, on every backend: the fixture provider subscribes our callback
//! (its handshake answered by the gateway), notifies as the provider does, and each
//! notification becomes a targeted pull whose change reaches the endpoint without
//! waiting for a poll; forged, replayed, out-of-order, deletion and deauthorization
//! notifications, and polling stretching while pushes arrive and returning when they
//! stop.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use wearbridge::events::Resource;
use wearbridge::fixture_server::{Change, FixtureServer, PushFault};
use wearbridge::providers::push::FixtureChangeKind;
use wearbridge::states::{ConnectionStatus, JobKind, JobStatus};

use crate::helpers::{eventually, TestApp, TestDb};

crate::backend_tests!(
    strava_pushes_become_single_activity_pulls_and_polling_is_the_safety_net,
    whoop_signed_pushes_are_verified_and_deletions_published,
    every_pushing_provider_subscribes_verifies_and_pulls_once,
    google_pushes_verify_against_the_published_keyset_and_follow_its_rotation,
);

fn of_type(app: &TestApp, t: &str) -> Vec<Value> {
    app.events()
        .into_iter()
        .filter(|e| e["event_type"] == t)
        .collect()
}

/// A gateway on the fixture provider (one clock for both), one user connected to
/// `provider` with its backfill done; returns the user's id and provider user id.
async fn connected(db: TestDb, provider: &str) -> (TestApp, FixtureServer, String, String) {
    let fx = FixtureServer::start().await.unwrap();
    let root = fx.root();
    let app = TestApp::spawn_with(db, move |c| c.providers_base_url = Some(root)).await;
    fx.use_clock(app.clock.clone());
    app.endpoint("/hooks", json!({})).await;
    let user = app.user("pushed").await;
    let uid = user["user_id"].as_str().unwrap().to_string();
    app.connect(&uid, provider).await;
    let done = app
        .eventually_advancing(Duration::from_secs(1), Duration::from_secs(60), || async {
            !app.store()
                .job_counts()
                .await
                .unwrap()
                .contains_key(&(JobKind::Backfill, JobStatus::Pending))
        })
        .await;
    assert!(done, "the backfill never finished");
    let conns = app
        .store()
        .user_connections(app.team_id, uid.parse().unwrap())
        .await
        .unwrap();
    let external = conns[0]
        .external_user_id
        .clone()
        .expect("the connection knows its provider user");
    (app, fx, uid, external)
}

async fn metric(app: &TestApp, provider: &str, outcome: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", app.gateway.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let needle = format!(
        "wearbridge_provider_notifications_total{{provider=\"{provider}\",outcome=\"{outcome}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {needle} in /metrics"))
}

async fn pulls(app: &TestApp) -> i64 {
    let counts = app.store().job_counts().await.unwrap();
    [JobStatus::Pending, JobStatus::Done, JobStatus::Failed]
        .iter()
        .map(|s| counts.get(&(JobKind::Pull, *s)).copied().unwrap_or(0))
        .sum()
}

async fn strava_pushes_become_single_activity_pulls_and_polling_is_the_safety_net(db: TestDb) {
    let (app, fx, uid, athlete) = connected(db, "strava").await;
    let strava = wearbridge::providers::find("strava").unwrap();
    let subscriber = &app.gateway.state.subscriber;

    // The subscription: Strava checks the callback (hub.challenge with our verify
    // token) before it answers the create call.
    let made = subscriber.subscribe_app(strava).await.unwrap();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].status, "active", "{:?}", made[0].error);
    let subs = fx.subscriptions("strava");
    assert_eq!(
        subs.len(),
        1,
        "the handshake passed and the subscription exists"
    );
    assert_eq!(made[0].remote_id, subs[0].remote_id);
    // A handshake with another verify token is refused.
    let url = subscriber.callback_url(strava);
    let forged = reqwest::Client::new()
        .get(&url)
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.challenge", "abc"),
            ("hub.verify_token", "not-ours"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    // A new activity: the notification leads to one read of that activity, and its
    // daily event reaches the endpoint with no poll due.
    let poll_due = app.store().next_due_poll().await.unwrap().unwrap();
    assert!(poll_due > app.clock.now_ms() + 3_600_000, "no poll is near");
    let mut activity: Value = serde_json::from_str::<Vec<Value>>(include_str!(
        "../../fixtures/strava/data/workouts.json"
    ))
    .unwrap()[0]
        .clone();
    let now = chrono::DateTime::from_timestamp_millis(app.clock.now_ms()).unwrap();
    activity["id"] = json!(990_001_001u64);
    activity["name"] = json!("Lunch run");
    activity["start_date"] = json!((now - chrono::Duration::hours(2)).to_rfc3339());
    activity["start_date_local"] = json!((now - chrono::Duration::hours(2)).to_rfc3339());
    let change = |kind, item: Option<Value>| Change {
        user: athlete.clone(),
        resource: Resource::Workouts,
        kind,
        item,
        record: Some("990001001".into()),
    };
    let sent = fx
        .change(
            "strava",
            change(FixtureChangeKind::Created, Some(activity.clone())),
        )
        .await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, Some(200));
    let arrived = eventually(Duration::from_secs(20), || async {
        !of_type(&app, "daily.data.workouts.created").is_empty()
    })
    .await;
    assert!(arrived, "the pushed activity never reached the endpoint");
    let created = of_type(&app, "daily.data.workouts.created");
    assert_eq!(created.len(), 1, "only the new activity: {created:?}");
    assert_eq!(created[0]["data"]["title"], "Lunch run", "{}", created[0]);
    assert!(
        fx.requests()
            .iter()
            .any(|r| r.contains("/activities/990001001")),
        "one read of the activity the notification named"
    );
    assert_eq!(pulls(&app).await, 1);
    assert_eq!(metric(&app, "strava", "pulled").await, 1);

    // A retried notification does nothing twice.
    fx.push_fault("strava", PushFault::Duplicate);
    activity["name"] = json!("Lunch run (edited)");
    let sent = fx
        .change(
            "strava",
            change(FixtureChangeKind::Updated, Some(activity.clone())),
        )
        .await;
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|s| s.status == Some(200)));
    assert!(
        eventually(Duration::from_secs(20), || async {
            !of_type(&app, "daily.data.workouts.updated").is_empty()
        })
        .await
    );
    assert_eq!(pulls(&app).await, 2, "the duplicate queued nothing");
    assert_eq!(metric(&app, "strava", "duplicate").await, 1);

    // A notification that is not provably Strava's (another subscription id): 401,
    // nothing pulled.
    fx.push_fault("strava", PushFault::BadSignature);
    let sent = fx
        .change(
            "strava",
            change(FixtureChangeKind::Updated, Some(activity.clone())),
        )
        .await;
    assert_eq!(sent[0].status, Some(401));
    assert_eq!(pulls(&app).await, 2);
    // (The forged handshake above was refused as unverified too.)
    assert_eq!(metric(&app, "strava", "unverified").await, 2);

    // Polling is the safety net while pushes arrive: the next poll after one that ran
    // comes a day later, not six hours.
    app.advance(Duration::from_millis(
        (poll_due - app.clock.now_ms()) as u64,
    ));
    let stretched = app
        .eventually_advancing(
            Duration::from_millis(1),
            Duration::from_secs(20),
            // (While the poll runs, its lease shows as its due time.)
            || async {
                app.store().next_due_poll().await.unwrap().unwrap() - app.clock.now_ms()
                    > strava.manifest.poll_interval_secs as i64 * 1000
            },
        )
        .await;
    assert!(stretched);
    let next = app.store().next_due_poll().await.unwrap().unwrap();
    let interval = next - app.clock.now_ms();
    assert!(
        interval > strava.manifest.poll_interval_secs as i64 * 1000,
        "the poll stretched: {interval} ms"
    );
    // Pushes stop: once they are quieter than Strava's normal silence, polling is back
    // to its interval.
    let quiet = strava.manifest.push.as_ref().unwrap().quiet_secs;
    app.advance(Duration::from_secs(quiet + 1));
    let back = app
        .eventually_advancing(
            Duration::from_millis(1),
            Duration::from_secs(20),
            || async {
                let n = app.store().next_due_poll().await.unwrap().unwrap();
                n > app.clock.now_ms()
                    && n - app.clock.now_ms() <= strava.manifest.poll_interval_secs as i64 * 1000
            },
        )
        .await;
    assert!(
        back,
        "polling returned to its interval when the pushes stopped"
    );

    // The athlete deletes the activity: it is removed and the deletion published.
    let sent = fx
        .change("strava", change(FixtureChangeKind::Deleted, None))
        .await;
    assert_eq!(sent[0].status, Some(200));
    let record_id = created[0]["data"]["id"].clone();
    assert!(
        eventually(Duration::from_secs(20), || async {
            of_type(&app, "daily.data.workouts.deleted")
                .iter()
                .any(|e| e["data"]["id"] == record_id)
        })
        .await,
        "the deletion reached the endpoint"
    );
    let (s, body) = app
        .api
        .get(&format!(
            "/v1/summary/workouts/{uid}?start_date=2000-01-01&end_date=2100-01-01"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        !body.to_string().contains("990001001") && !body.to_string().contains("Lunch run"),
        "the deleted activity is no longer served"
    );

    // The athlete revokes the app: the connection ends with Junction's error.
    let sent = fx
        .change(
            "strava",
            Change {
                user: athlete.clone(),
                resource: Resource::Workouts,
                kind: FixtureChangeKind::Deauthorized,
                item: None,
                record: None,
            },
        )
        .await;
    assert_eq!(sent[0].status, Some(200));
    let conns = app
        .store()
        .user_connections(app.team_id, uid.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(conns[0].status, ConnectionStatus::Error);
    assert!(
        eventually(Duration::from_secs(20), || async {
            of_type(&app, "provider.connection.error")
                .iter()
                .any(|e| e["data"]["error_type"] == "deregistered_per_provider")
        })
        .await
    );

    // A verified notification for an athlete not connected here is acknowledged.
    let sent = fx
        .change("strava", {
            let mut c = change(FixtureChangeKind::Created, Some(activity.clone()));
            c.user = "777".into();
            c
        })
        .await;
    assert_eq!(sent[0].status, Some(200));
    assert_eq!(metric(&app, "strava", "unknown_user").await, 1);
}

async fn whoop_signed_pushes_are_verified_and_deletions_published(db: TestDb) {
    let (app, fx, uid, whoop_user) = connected(db, "whoop").await;
    let whoop = wearbridge::providers::find("whoop").unwrap();
    // WHOOP's webhooks are registered in its developer dashboard.
    fx.register_console_subscription("whoop", &app.gateway.state.subscriber.callback_url(whoop));
    // A sleep the user has: its deletion removes it, with its event.
    let sleeps = app
        .store()
        .list_records(
            app.team_id,
            uid.parse().unwrap(),
            Resource::Sleep,
            0,
            i64::MAX,
            None,
        )
        .await
        .unwrap();
    assert!(!sleeps.is_empty());
    let key = sleeps[0]["provider_id"].as_str().map(str::to_string);
    let sleep_id = sleeps[0]["id"].clone();
    // A forged signature: 401 and nothing done.
    fx.push_fault("whoop", PushFault::BadSignature);
    let change = |kind| Change {
        user: whoop_user.clone(),
        resource: Resource::Sleep,
        kind,
        item: None,
        record: key.clone(),
    };
    let sent = fx.change("whoop", change(FixtureChangeKind::Deleted)).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, Some(401));
    assert!(of_type(&app, "daily.data.sleep.deleted").is_empty());
    // The real one removes the sleep and publishes its deletion, once.
    fx.push_fault("whoop", PushFault::Duplicate);
    let sent = fx.change("whoop", change(FixtureChangeKind::Deleted)).await;
    assert!(sent.iter().all(|s| s.status == Some(200)), "{sent:?}");
    assert!(
        eventually(Duration::from_secs(20), || async {
            !of_type(&app, "daily.data.sleep.deleted").is_empty()
        })
        .await
    );
    let deleted = of_type(&app, "daily.data.sleep.deleted");
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0]["data"]["id"], sleep_id);
    assert_eq!(metric(&app, "whoop", "deleted").await, 1);
    assert_eq!(metric(&app, "whoop", "duplicate").await, 1);
}

/// Every provider that pushes, as it pushes: its subscription made the way it is made
/// (its API, with the provider's check of our callback; its console; per user on
/// connect), a change to a stored record notified and pulled with no poll due, the same
/// notification forged refused with nothing pulled, and a retried one done once.
/// (Google Health has its own test below.)
async fn every_pushing_provider_subscribes_verifies_and_pulls_once(db: TestDb) {
    use wearbridge::providers::push::{SubscriptionManagement, SubscriptionScope};
    for (id, resource) in [
        ("strava", Resource::Workouts),
        ("whoop", Resource::Workouts),
        ("oura", Resource::Sleep),
        ("withings", Resource::Sleep),
        ("polar", Resource::Workouts),
    ] {
        let (app, fx, uid, external) = connected(db.fresh().await, id).await;
        let p = wearbridge::providers::find(id).unwrap();
        let push = p.manifest.push.as_ref().unwrap();
        let subscriber = &app.gateway.state.subscriber;
        match (push.subscription.scope, push.subscription.managed) {
            (SubscriptionScope::App, SubscriptionManagement::Api) => {
                let made = subscriber.subscribe_app(p).await.unwrap();
                assert!(!made.is_empty(), "{id}");
                assert!(made.iter().all(|s| s.status == "active"), "{id}: {made:?}");
            }
            (SubscriptionScope::App, SubscriptionManagement::Console) => {
                fx.register_console_subscription(id, &subscriber.callback_url(p));
            }
            (SubscriptionScope::User, _) => {
                let (_, providers) = app.api.get("/v1/providers").await;
                assert!(providers.to_string().contains(id));
            }
        }
        assert!(
            !fx.subscriptions(id).is_empty(),
            "{id}: the provider holds our subscription"
        );
        let stored = app
            .store()
            .list_records(
                app.team_id,
                uid.parse().unwrap(),
                resource,
                0,
                i64::MAX,
                None,
            )
            .await
            .unwrap();
        let record = stored
            .last()
            .unwrap_or_else(|| panic!("{id}: no {resource} stored"))["provider_id"]
            .as_str()
            .unwrap()
            .to_string();
        let change = || Change {
            user: external.clone(),
            resource,
            kind: FixtureChangeKind::Updated,
            item: None,
            record: Some(record.clone()),
        };
        // Forged: refused, nothing pulled.
        fx.push_fault(id, PushFault::BadSignature);
        let sent = fx.change(id, change()).await;
        assert!(!sent.is_empty(), "{id}: the provider notifies");
        assert!(
            sent.iter().all(|s| s.status == Some(401)),
            "{id}: forged {sent:?}"
        );
        assert_eq!(pulls(&app).await, 0, "{id}");
        // The real one, sent twice: one pull, run with no poll due.
        fx.push_fault(id, PushFault::Duplicate);
        let before = fx.data_requests(id);
        let sent = fx.change(id, change()).await;
        assert!(
            sent.iter()
                .all(|s| s.status.is_some_and(|c| (200..300).contains(&c))),
            "{id}: {sent:?}"
        );
        let pulled = pulls(&app).await;
        assert!(pulled >= 1, "{id}: a pull was queued");
        assert_eq!(metric(&app, id, "duplicate").await, 1, "{id}");
        let done = eventually(Duration::from_secs(20), || async {
            let counts = app.store().job_counts().await.unwrap();
            counts
                .get(&(JobKind::Pull, JobStatus::Done))
                .copied()
                .unwrap_or(0)
                == pulled
        })
        .await;
        assert!(done, "{id}: {:?}", app.store().job_counts().await.unwrap());
        assert!(
            fx.data_requests(id) > before,
            "{id}: the pull read the provider"
        );

        // Where the provider reports deletions (Strava, WHOOP and Oura name the deleted
        // record; Withings and Polar only a changed range), the record goes, with its
        // event.
        let reports_deletions = matches!(id, "strava" | "whoop" | "oura");
        let record_id = stored.last().unwrap()["id"].clone();
        let sent = fx
            .change(
                id,
                Change {
                    kind: FixtureChangeKind::Deleted,
                    ..change()
                },
            )
            .await;
        if reports_deletions {
            assert!(!sent.is_empty(), "{id}: the deletion is notified");
            assert!(sent.iter().all(|s| s.status == Some(200)), "{id}: {sent:?}");
            let t = format!("daily.data.{resource}.deleted");
            let published = eventually(Duration::from_secs(20), || async {
                of_type(&app, &t)
                    .iter()
                    .any(|e| e["data"]["id"] == record_id)
            })
            .await;
            assert!(published, "{id}: {t} for {record_id}");
        }
        // Where the provider reports a revocation, the connection ends.
        let sent = fx
            .change(
                id,
                Change {
                    kind: FixtureChangeKind::Deauthorized,
                    record: None,
                    ..change()
                },
            )
            .await;
        if !sent.is_empty() {
            assert!(sent.iter().all(|s| s.status == Some(200)), "{id}: {sent:?}");
            let conns = app
                .store()
                .user_connections(app.team_id, uid.parse().unwrap())
                .await
                .unwrap();
            assert_eq!(conns[0].status, ConnectionStatus::Error, "{id}");
        }
    }
}

/// How often the fixture provider's published keys were fetched.
fn keyset_fetches(fx: &FixtureServer) -> usize {
    fx.requests()
        .iter()
        .filter(|r| r.contains("webhooks_public_keyset.json"))
        .count()
}

/// Google Health as it pushes: the subscriber made by the operator (Google checks the
/// callback with its verification pair, so a wrong secret fails), every notification
/// verified against the keyset Google publishes, which the gateway fetches itself (no
/// key is configured) from where the fixture provider serves it; a forged signature
/// refused with nothing pulled; a retried notification pulled once, its change reaching
/// the endpoint as `daily.data.workouts.created`; and a key rotation followed by
/// fetching the keyset again, no more than once a minute.
async fn google_pushes_verify_against_the_published_keyset_and_follow_its_rotation(db: TestDb) {
    let (app, fx, _uid, health_user) = connected(db, "google_health").await;
    let google = wearbridge::providers::find("google_health").unwrap();
    let subscriber = &app.gateway.state.subscriber;
    let url = subscriber.callback_url(google);
    assert_eq!(keyset_fetches(&fx), 0, "fetched on first need");
    assert!(
        !fx.register_console_subscriber("google_health", &url, "Bearer not-ours")
            .await,
        "Google's check of the callback fails with another secret"
    );
    assert!(
        fx.register_console_subscriber("google_health", &url, &subscriber.console_secret(google))
            .await,
        "Google's check of the callback passes with ours"
    );
    assert_eq!(fx.subscriptions("google_health").len(), 1);
    // Answering Google's check read the push secrets, the published keys with them.
    assert_eq!(keyset_fetches(&fx), 1);

    // A new exercise two hours ago.
    let mut exercise = serde_json::from_str::<Vec<Value>>(include_str!(
        "../../fixtures/google_health/data/workouts.json"
    ))
    .unwrap()
    .last()
    .unwrap()
    .clone();
    let now = chrono::DateTime::from_timestamp_millis(app.clock.now_ms()).unwrap();
    let z = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    exercise["name"] = json!("users/me/dataTypes/exercise/dataPoints/7000000000000000001");
    exercise["exercise"]["displayName"] = json!("Lunch run");
    exercise["exercise"]["interval"]["startTime"] = json!(z(now - chrono::Duration::hours(2)));
    exercise["exercise"]["interval"]["endTime"] = json!(z(
        now - chrono::Duration::hours(2) + chrono::Duration::minutes(37)
    ));
    let change = |kind, item: &Value| Change {
        user: health_user.clone(),
        resource: Resource::Workouts,
        kind,
        item: Some(item.clone()),
        record: Some("7000000000000000001".into()),
    };

    // Forged: 401, nothing pulled.
    fx.push_fault("google_health", PushFault::BadSignature);
    let sent = fx
        .change(
            "google_health",
            change(FixtureChangeKind::Created, &exercise),
        )
        .await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, Some(401));
    assert_eq!(pulls(&app).await, 0);
    assert_eq!(keyset_fetches(&fx), 1);

    // The real one, retried: acknowledged with 204 both times, one pull.
    fx.push_fault("google_health", PushFault::Duplicate);
    let sent = fx
        .change(
            "google_health",
            change(FixtureChangeKind::Created, &exercise),
        )
        .await;
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|s| s.status == Some(204)), "{sent:?}");
    assert_eq!(pulls(&app).await, 1, "the retry queued nothing");
    assert_eq!(metric(&app, "google_health", "duplicate").await, 1);
    let arrived = eventually(Duration::from_secs(20), || async {
        of_type(&app, "daily.data.workouts.created")
            .iter()
            .any(|e| e["data"]["title"] == "Lunch run")
    })
    .await;
    assert!(arrived, "the pushed exercise never reached the endpoint");
    assert_eq!(keyset_fetches(&fx), 1, "the keyset held is used");

    // Google rotates its key. The first notification signed by the new one arrives
    // within a minute of the last fetch: refused (Google retries), no fetch. (Each
    // edit moves the end: Google's notification names no point and carries no id, so
    // the same interval notified again reads as a retry.)
    let edited = |title: &str, minutes: i64| {
        let mut e = exercise.clone();
        e["exercise"]["displayName"] = json!(title);
        e["exercise"]["interval"]["endTime"] = json!(z(
            now - chrono::Duration::hours(2) + chrono::Duration::minutes(minutes)
        ));
        change(FixtureChangeKind::Updated, &e)
    };
    assert!(fx.rotate_push_key("google_health"));
    let sent = fx
        .change("google_health", edited("Lunch run (edited)", 38))
        .await;
    assert_eq!(sent[0].status, Some(401));
    assert_eq!(keyset_fetches(&fx), 1, "at most one fetch a minute");
    assert_eq!(pulls(&app).await, 1);
    // A minute on, its retry makes the gateway fetch the keyset again, with the new
    // key in it: verified, pulled, published.
    app.advance(Duration::from_secs(61));
    let sent = fx
        .change("google_health", edited("Lunch run (edited)", 38))
        .await;
    assert_eq!(sent[0].status, Some(204), "{sent:?}");
    assert_eq!(keyset_fetches(&fx), 2);
    assert_eq!(pulls(&app).await, 2);
    let updated = eventually(Duration::from_secs(20), || async {
        of_type(&app, "daily.data.workouts.updated")
            .iter()
            .any(|e| e["data"]["title"] == "Lunch run (edited)")
    })
    .await;
    assert!(
        updated,
        "the change signed by the new key reached the endpoint"
    );
    // Notifications signed by the new key now verify with no further fetch.
    let sent = fx
        .change("google_health", edited("Lunch run (edited twice)", 39))
        .await;
    assert_eq!(sent[0].status, Some(204));
    assert_eq!(keyset_fetches(&fx), 2);
    // Refused: the check with a wrong secret, the check without one, the forged
    // notification and the one signed by a key not yet fetched.
    assert_eq!(metric(&app, "google_health", "unverified").await, 4);
}

/// `wearbridge providers subscribe` against a serving gateway: the provider checks the
/// callback (its handshake answered by the other process, which derives the same verify
/// token from the same master key) and the subscription is listed; a provider whose
/// webhooks are set in its console is refused with the reason.
#[tokio::test]
async fn the_subscribe_command_makes_the_apps_subscription() {
    let fx = FixtureServer::start().await.unwrap();
    let db = TestDb::sqlite();
    let key = wearbridge::seal::random_token(32);
    let serve =
        crate::helpers::Serve::start(&db, &key, &[("WEARBRIDGE_PROVIDERS_BASE_URL", &fx.root())])
            .await;
    let run = |args: &'static [&'static str]| {
        let (db_url, key, public, root) =
            (db.url.clone(), key.clone(), serve.url.clone(), fx.root());
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_wearbridge"))
                    .args(args)
                    .env_clear()
                    .env("PATH", std::env::var("PATH").unwrap_or_default())
                    .env("WEARBRIDGE_DATABASE_URL", db_url)
                    .env("WEARBRIDGE_SECRET_KEY", key)
                    .env("WEARBRIDGE_PUBLIC_URL", public)
                    .env("WEARBRIDGE_PROVIDERS_BASE_URL", root)
                    .env("WEARBRIDGE_LOG", "warn")
                    .output()
                    .expect("wearbridge runs")
            })
            .await
            .unwrap()
        }
    };
    let out = run(&["providers", "subscribe", "--provider", "strava"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("strava") && stdout.contains("active"),
        "{stdout}"
    );
    assert_eq!(fx.subscriptions("strava").len(), 1);
    let out = run(&["providers", "subscriptions"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("strava"));
    let out = run(&["providers", "subscribe", "--provider", "whoop"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("developer console"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
