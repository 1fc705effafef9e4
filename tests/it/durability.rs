//! Several `wearbridge serve` processes: two sharing one PostgreSQL split the work with
//! no duplicates; a process killed with SIGKILL mid-delivery loses nothing, and
//! backfill chunks still reach each endpoint in order.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;
use wearbridge::events::{Envelope, EventType, Resource};
use wearbridge::receiver::{Behaviour, Receiver};
use wearbridge::seal::random_token;
use wearbridge::store::{Store, Target};

use crate::helpers::{Api, Serve, TestDb};
use wearbridge::states::{DeliveryStatus, JobKind, JobStatus};

async fn publish_many(store: &Store, team: Uuid, n: usize) -> Vec<String> {
    let user = Uuid::new_v4();
    let t = EventType::DailyCreated(Resource::Heartrate);
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(250) {
        let evs: Vec<Envelope> = chunk
            .iter()
            .map(|_| {
                Envelope::new(
                    Uuid::new_v4(),
                    t,
                    team,
                    None,
                    wearbridge::events::example_data(t, user),
                )
            })
            .collect();
        ids.extend(evs.iter().map(|e| e.id.to_string()));
        store
            .publish(team, &evs, Target::Subscribers)
            .await
            .unwrap();
    }
    ids
}

/// Sets up a team and an endpoint (created through `serve`'s API so its secret is
/// sealed with the process's key) pointing at `receiver`.
async fn team_and_endpoint(store: &Store, serve: &Serve, receiver: &Receiver) -> Uuid {
    let (team, key) = store.create_team("multi").await.unwrap();
    let api = Api::new(serve.url.clone(), key);
    let secret = wearbridge::seal::new_webhook_secret();
    receiver.set_secret("/r", &secret);
    let (s, ep) = api.post("/v1/webhooks/endpoints", json!({"url": receiver.url("/r"), "event_types": ["daily.data.heartrate.created"], "secret": secret})).await;
    assert!(s.is_success(), "{ep}");
    team.id
}

fn tally(receiver: &Receiver, ids: &[String]) -> (usize, usize) {
    let mut per: HashMap<String, usize> = HashMap::new();
    for r in receiver.received() {
        *per.entry(r.event_id).or_default() += 1;
    }
    let unique = ids
        .iter()
        .filter(|id| per.contains_key(id.as_str()))
        .count();
    let total: usize = ids
        .iter()
        .map(|id| per.get(id.as_str()).copied().unwrap_or(0))
        .sum();
    (unique, total - unique)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_share_the_work_without_duplicates() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = db.store().await;
    let key = random_token(32);
    let opts = [
        ("WEARBRIDGE_DELIVERY_BATCH", "50"),
        ("WEARBRIDGE_DELIVERY_CONCURRENCY", "32"),
    ];
    let a = Serve::start(&db, &key, &opts).await;
    let b = Serve::start(&db, &key, &opts).await;
    let receiver = Receiver::start(false).await.unwrap();
    receiver.set_behaviour(
        "/r",
        Behaviour {
            delay: Duration::from_millis(2),
            ..Default::default()
        },
    );
    let team = team_and_endpoint(&store, &a, &receiver).await;
    let ids = publish_many(&store, team, 3000).await;
    assert!(
        receiver.wait_for(3000, Duration::from_secs(120)).await,
        "only {} of 3000 arrived",
        receiver.count()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (unique, duplicates) = tally(&receiver, &ids);
    assert_eq!(unique, 3000, "every delivery arrived");
    assert_eq!(duplicates, 0, "none twice while both processes are healthy");
    assert_eq!(receiver.rejected(), 0, "every delivery verified");
    let by_worker = store.attempts_by_worker().await.unwrap();
    eprintln!("attempts by worker: {by_worker:?}");
    assert_eq!(
        by_worker.len(),
        2,
        "both processes made attempts: {by_worker:?}"
    );
    assert!(
        by_worker.values().all(|n| *n >= 100),
        "both did a real part of the work: {by_worker:?}"
    );
    drop((a, b));
}

crate::backend_tests!(
    a_killed_process_loses_no_delivery,
    backfill_chunks_arrive_in_order_across_repeated_kills,
    a_killed_poller_resumes_with_no_gap_and_no_duplicate_event
);

async fn a_killed_process_loses_no_delivery(db: TestDb) {
    let store = db.store().await;
    let key = random_token(32);
    let opts = [
        ("WEARBRIDGE_DELIVERY_LEASE_SECS", "3"),
        ("WEARBRIDGE_DELIVERY_TIMEOUT_SECS", "2"),
        ("WEARBRIDGE_DELIVERY_CONCURRENCY", "64"),
    ];
    let mut first = Serve::start(&db, &key, &opts).await;
    let receiver = Receiver::start(false).await.unwrap();
    receiver.set_behaviour(
        "/r",
        Behaviour {
            delay: Duration::from_millis(5),
            ..Default::default()
        },
    );
    let team = team_and_endpoint(&store, &first, &receiver).await;
    let ids = publish_many(&store, team, 3000).await;
    assert!(receiver.wait_for(600, Duration::from_secs(60)).await);
    first.kill();
    let at_kill = receiver.count();
    assert!(
        at_kill < 3000,
        "the kill came mid-run ({at_kill} delivered)"
    );
    let second = Serve::start(&db, &key, &opts).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (unique, _) = tally(&receiver, &ids);
        if unique == 3000 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Deliveries that were in flight at the kill may have arrived without being recorded:
    // their claims lapse and they are sent again (at least once), then all settle.
    let settled = crate::helpers::eventually(Duration::from_secs(60), || async {
        store
            .delivery_counts()
            .await
            .unwrap()
            .get(&DeliveryStatus::Succeeded)
            == Some(&3001)
    })
    .await;
    let (unique, duplicates) = tally(&receiver, &ids);
    eprintln!("killed after {at_kill} deliveries; after restart: {unique} unique, {duplicates} duplicates");
    assert_eq!(unique, 3000, "no delivery lost");
    assert!(
        duplicates <= 64 + 250,
        "duplicates bounded by what was in flight: {duplicates}"
    );
    let counts = store.delivery_counts().await.unwrap();
    assert!(
        settled,
        "every delivery (and the endpoint's test event) is recorded as succeeded: {counts:?}"
    );
    drop(second);
}

/// Historical chunks of several (connection, resource) backfills are published one by
/// one, faster than a slow endpoint takes them, while the serving process is killed
/// with SIGKILL and restarted again and again: claims of the killed process lapse while
/// later chunks are already waiting. Each endpoint must still get every chunk, and the
/// first arrival of each chunk of a backfill must come after the one before it.
async fn backfill_chunks_arrive_in_order_across_repeated_kills(db: TestDb) {
    use chrono::{Duration as Days, TimeZone, Utc};
    use wearbridge::events::{ConnectionRef, ProviderRef};

    const CHUNKS: i64 = 60;
    let store = db.store().await;
    let key = random_token(32);
    let opts = [
        ("WEARBRIDGE_DELIVERY_LEASE_SECS", "2"),
        ("WEARBRIDGE_DELIVERY_TIMEOUT_SECS", "1"),
        ("WEARBRIDGE_RETRY_SCHEDULE_SECS", "0,1,1,1,1,1,1,1"),
    ];
    let mut serve = Serve::start(&db, &key, &opts).await;
    let receiver = Receiver::start(false).await.unwrap();
    let (team, api_key) = store.create_team("ordered").await.unwrap();
    let api = Api::new(serve.url.clone(), api_key);
    let paths = ["/slow", "/quick"];
    for path in paths {
        let secret = wearbridge::seal::new_webhook_secret();
        receiver.set_secret(path, &secret);
        let (s, ep) = api
            .post(
                "/v1/webhooks/endpoints",
                json!({"url": receiver.url(path), "secret": secret}),
            )
            .await;
        assert!(s.is_success(), "{ep}");
    }
    // The slow endpoint falls behind (chunks queue up per backfill) and fails its first
    // requests, so some chunks wait for a retry while their successors are due.
    receiver.set_behaviour(
        "/slow",
        Behaviour {
            delay: Duration::from_millis(100),
            fail_first: 8,
            fail_status: 503,
            ..Default::default()
        },
    );
    receiver.set_behaviour(
        "/quick",
        Behaviour {
            delay: Duration::from_millis(5),
            ..Default::default()
        },
    );

    // Three connections × two resources: six ordering keys, each chunk published on its
    // own as a backfill does, newest window first.
    let conns: Vec<ConnectionRef> = (0..3)
        .map(|i| ConnectionRef {
            id: Uuid::new_v4(),
            team_id: team.id,
            user_id: Uuid::new_v4(),
            client_user_id: format!("user-{i}"),
            provider: ProviderRef {
                slug: "oura".into(),
                name: "Oura".into(),
            },
        })
        .collect();
    let today = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut chunk_of: HashMap<String, (String, i64)> = HashMap::new(); // event id → (key, index)
    let mut rounds = Vec::new();
    for i in 0..CHUNKS {
        let mut round = Vec::new();
        for conn in &conns {
            for resource in [Resource::Sleep, Resource::Heartrate] {
                let end = today - Days::days(i);
                let e = Envelope::historical_chunk(
                    conn,
                    resource,
                    (end - Days::days(1), end),
                    i,
                    CHUNKS,
                );
                let k = e.ordering_key.clone().unwrap();
                chunk_of.insert(e.id.to_string(), (k, i));
                round.push(e);
            }
        }
        rounds.push(round);
    }
    let publisher = {
        let store = store.clone();
        tokio::spawn(async move {
            for round in rounds {
                for e in round {
                    store
                        .publish(team.id, &[e], Target::Subscribers)
                        .await
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(80)).await;
            }
        })
    };

    // Kill at varied moments while chunks are still being published and delivered.
    let mut at_kills = Vec::new();
    for ms in [400, 1300, 700, 1700, 1000] {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        serve.kill();
        at_kills.push(receiver.count());
        serve = Serve::start(&db, &key, &opts).await;
    }
    publisher.await.unwrap();
    let expected = chunk_of.len() * paths.len();
    let settled = crate::helpers::eventually(Duration::from_secs(120), || async {
        let counts = store.delivery_counts().await.unwrap();
        counts.keys().all(|s| *s == DeliveryStatus::Succeeded)
            && counts.get(&DeliveryStatus::Succeeded).copied().unwrap_or(0) as usize >= expected
    })
    .await;
    let counts = store.delivery_counts().await.unwrap();
    assert!(settled, "every delivery succeeded: {counts:?}");
    assert!(
        at_kills[0] < expected as u64,
        "the first kill came mid-run ({at_kills:?} of {expected})"
    );

    // First arrival of each chunk per (endpoint, key), in arrival order.
    let mut received = receiver.received();
    received.sort_by_key(|r| r.received_at_us);
    let mut firsts: HashMap<(String, String), Vec<i64>> = HashMap::new();
    let mut repeats = 0;
    for r in &received {
        let Some((k, index)) = chunk_of.get(&r.event_id) else {
            continue; // the endpoints' test events
        };
        assert!(r.verified, "{r:?}");
        let seen = firsts.entry((r.path.clone(), k.clone())).or_default();
        if seen.contains(index) {
            repeats += 1;
        } else {
            seen.push(*index);
        }
    }
    assert_eq!(firsts.len(), 6 * paths.len(), "every key on every endpoint");
    for ((path, k), seen) in &firsts {
        let expected: Vec<i64> = (0..CHUNKS).collect();
        assert_eq!(
            seen, &expected,
            "{path} {k}: every chunk, each first arriving after the one before it"
        );
    }
    eprintln!(
        "{} arrivals ({repeats} repeated chunks) with kills after {at_kills:?}; every backfill in order",
        received.len()
    );
    drop(serve);
}

/// Every record a provider's fixtures hold for `resource`, read through its own
/// impersonation and adapter over a window wide enough for all of them.
fn fixture_records(
    p: &wearbridge::providers::Provider,
    resource: wearbridge::events::Resource,
) -> usize {
    use wearbridge::providers::Window;
    // A resource read with another (Oura's temperature deltas, with sleep) is on that
    // one's pages.
    let reader = p.adapter.read_with(resource).unwrap_or(resource);
    let spec = p.resource(reader).unwrap();
    let items: Vec<serde_json::Value> = serde_json::from_str(
        p.impersonation
            .fixture(&format!("data/{reader}.json"))
            .unwrap(),
    )
    .unwrap();
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let window = Window {
        start: at("2000-01-01T00:00:00Z"),
        end: at("2100-01-01T00:00:00Z"),
    };
    let (mut cursor, mut n) = (None::<String>, 0);
    loop {
        let req = p.adapter.page_request(spec, &window, cursor.as_deref());
        let params = req.query.iter().chain(&req.form).cloned().collect();
        let body = p
            .impersonation
            .serve(spec, &params, &items)
            .unwrap()
            .to_string();
        let page = p
            .adapter
            .parse_page(reader, body.as_bytes(), cursor.as_deref())
            .unwrap();
        n += page
            .records
            .iter()
            .filter(|r| r.resource == resource)
            .count();
        match page.next {
            Some(c) => cursor = Some(c),
            None => return n,
        }
    }
}

async fn a_killed_poller_resumes_with_no_gap_and_no_duplicate_event(db: TestDb) {
    use wearbridge::fixture_server::{Fault, FixtureServer};
    let store = db.store().await;
    let fx = FixtureServer::start().await.unwrap();
    for _ in 0..200 {
        fx.inject("oura", Fault::Slow(Duration::from_millis(150)));
    }
    let root = fx.root();
    let key = random_token(32);
    let opts = [
        ("WEARBRIDGE_PROVIDERS_BASE_URL", root.as_str()),
        ("WEARBRIDGE_JOB_LEASE_SECS", "3"),
        ("WEARBRIDGE_PROVIDER_TIMEOUT_SECS", "2"),
        ("WEARBRIDGE_POLLER_CONCURRENCY", "2"),
    ];
    let mut first = Serve::start(&db, &key, &opts).await;
    let receiver = Receiver::start(false).await.unwrap();
    let (_, api_key) = store.create_team("pollers").await.unwrap();
    let api = Api::new(first.url.clone(), api_key);
    let secret = wearbridge::seal::new_webhook_secret();
    receiver.set_secret("/r", &secret);
    let (s, ep) = api
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": receiver.url("/r"), "secret": secret}),
        )
        .await;
    assert!(s.is_success(), "{ep}");
    let (_, user) = api
        .post("/v1/user", json!({"client_user_id": "killed"}))
        .await;
    let (_, link) = api
        .post("/v1/link/token", json!({"user_id": user["user_id"], "provider": "oura", "redirect_url": receiver.url("/done")}))
        .await;
    let landed = reqwest::get(link["link_url"].as_str().unwrap())
        .await
        .unwrap()
        .url()
        .clone();
    assert!(
        landed.query().unwrap_or("").contains("state=success"),
        "{landed}"
    );

    let done = |s: &Store| {
        let s = s.clone();
        async move {
            s.job_counts()
                .await
                .unwrap()
                .get(&(JobKind::Backfill, JobStatus::Done))
                .copied()
                .unwrap_or(0)
        }
    };
    assert!(
        crate::helpers::eventually(Duration::from_secs(30), || async {
            done(&store).await >= 8
        })
        .await
    );
    first.kill();
    let at_kill = done(&store).await;
    let windows = store
        .job_counts()
        .await
        .unwrap()
        .iter()
        .filter(|((kind, _), _)| *kind == JobKind::Backfill)
        .map(|(_, n)| *n)
        .sum::<i64>();
    assert!(
        at_kill < windows,
        "the kill came mid-backfill ({at_kill} of {windows} windows done)"
    );
    let second = Serve::start(&db, &key, &opts).await;
    let finished = crate::helpers::eventually(Duration::from_secs(90), || async {
        !store
            .job_counts()
            .await
            .unwrap()
            .contains_key(&(JobKind::Backfill, JobStatus::Pending))
    })
    .await;
    assert!(finished, "{:?}", store.job_counts().await.unwrap());
    let events = store.event_counts().await.unwrap();
    let p = wearbridge::providers::find("oura").unwrap();
    let uid: Uuid = user["user_id"].as_str().unwrap().parse().unwrap();
    for spec in &p.manifest.resources {
        assert_eq!(
            events.get(&format!("historical.data.{}.created", spec.name)),
            Some(&(crate::helpers::backfill_windows("oura", spec.name.as_str()) as i64)),
            "{}: one event per window, none twice, none missing: {events:?}",
            spec.name
        );
        let team: Uuid = user["team_id"].as_str().unwrap().parse().unwrap();
        let stored = store
            .list_records(team, uid, spec.name, 0, i64::MAX, None)
            .await
            .unwrap()
            .len();
        assert_eq!(
            stored,
            fixture_records(p, spec.name),
            "{}: every record, once",
            spec.name
        );
    }
    eprintln!("poller killed after {at_kill} of {windows} windows; resumed and finished with every window's event once");
    drop(second);
}
