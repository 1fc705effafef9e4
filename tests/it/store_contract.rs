//! The store contract: every store operation, on SQLite and (with TEST_DATABASE_URL)
//! on PostgreSQL, each test in a fresh database.

use std::collections::BTreeMap;

use serde_json::json;
use uuid::Uuid;
use wearbridge::events::{Envelope, EventType, Resource};
use wearbridge::now_ms;
use wearbridge::store::{
    Attempt, Completion, CreateUserError, EndpointSpec, EndpointWriteError, Outcome, Store, Target,
    MIGRATIONS,
};

use crate::helpers::TestDb;
use wearbridge::states::{AttemptErrorKind, AttemptTrigger, DeliveryStatus};

crate::backend_tests!(
    migrations_are_idempotent,
    teams_authenticate_by_hashed_key,
    users_are_unique_per_team_and_scoped,
    endpoints_are_unique_per_team_and_scoped,
    publish_is_idempotent_and_fans_out_by_filter,
    claims_are_exclusive_until_the_lease_ends,
    ordered_deliveries_are_claimed_one_at_a_time_per_endpoint,
    completions_respect_the_lease_and_track_health,
    recover_requeues_failed_deliveries,
);

fn spec(url: &str, types: &[&str]) -> EndpointSpec {
    EndpointSpec {
        url: url.into(),
        description: String::new(),
        event_types: types.iter().map(|s| s.to_string()).collect(),
        enabled: true,
        method: "POST".into(),
        headers: BTreeMap::new(),
        rate_limit_per_sec: None,
    }
}

fn event(team: Uuid, t: EventType) -> Envelope {
    Envelope::new(Uuid::new_v4(), t, team, None, json!({"k": 1}))
}

fn attempt(at: i64) -> Attempt {
    Attempt {
        run_number: 1,
        trigger: AttemptTrigger::Scheduled,
        attempted_at: at,
        url: "https://example.com/".into(),
        request_headers: BTreeMap::new(),
        response_status: Some(500),
        response_body: Some("no".into()),
        duration_ms: 3,
        error_kind: Some(AttemptErrorKind::Http),
        error_message: None,
        worker: "test:1".into(),
    }
}

async fn migrations_are_idempotent(db: TestDb) {
    let store = db.store().await;
    store.migrate().await.expect("second migrate is a no-op");
    assert!(store.delivery_counts().await.unwrap().is_empty());
}

async fn teams_authenticate_by_hashed_key(db: TestDb) {
    let store = db.store().await;
    let (team, key) = store.create_team("acme").await.unwrap();
    assert_eq!(store.team_for_key(&key).await.unwrap().unwrap().id, team.id);
    assert!(store.team_for_key("wb_not-a-key").await.unwrap().is_none());
    assert!(store
        .team_for_key(&key[..key.len() - 1])
        .await
        .unwrap()
        .is_none());
    // The key itself is nowhere in the database.
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT key_hash, prefix FROM api_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].0, key);
    assert!(!rows[0].0.contains(&key[3..]));
    assert!(key.starts_with(&rows[0].1));
}

async fn users_are_unique_per_team_and_scoped(db: TestDb) {
    let store = db.store().await;
    let (a, _) = store.create_team("a").await.unwrap();
    let (b, _) = store.create_team("b").await.unwrap();
    let u = store.create_user(a.id, "alice").await.unwrap();
    assert!(matches!(
        store.create_user(a.id, "alice").await,
        Err(CreateUserError::Duplicate(_))
    ));
    store
        .create_user(b.id, "alice")
        .await
        .expect("another team may reuse the id");
    assert_eq!(store.get_user(a.id, u.user_id).await.unwrap().unwrap(), u);
    assert!(
        store.get_user(b.id, u.user_id).await.unwrap().is_none(),
        "team b must not see team a's user"
    );
    assert_eq!(
        store
            .resolve_user(a.id, "alice")
            .await
            .unwrap()
            .unwrap()
            .user_id,
        u.user_id
    );
    for i in 0..5 {
        store.create_user(a.id, &format!("u{i}")).await.unwrap();
    }
    let (page, total) = store.list_users(a.id, 2, 3).await.unwrap();
    assert_eq!(total, 6);
    assert_eq!(page.len(), 3);
    let (all, _) = store.list_users(a.id, 0, 100).await.unwrap();
    assert_eq!(
        &all[2..5],
        &page[..],
        "pages are slices of one stable order"
    );
    assert!(
        !store.delete_user(b.id, u.user_id).await.unwrap(),
        "team b cannot delete team a's user"
    );
    assert!(store.delete_user(a.id, u.user_id).await.unwrap());
    assert!(store.get_user(a.id, u.user_id).await.unwrap().is_none());
}

async fn endpoints_are_unique_per_team_and_scoped(db: TestDb) {
    let store = db.store().await;
    let (a, _) = store.create_team("a").await.unwrap();
    let (b, _) = store.create_team("b").await.unwrap();
    let mut s = spec("https://example.com/hook", &["webhook.test"]);
    s.headers.insert("x-tenant".into(), "acme".into());
    s.rate_limit_per_sec = Some(5);
    let ep = store.create_endpoint(a.id, &s, "sealed-1").await.unwrap();
    assert_eq!(ep.event_types, vec!["webhook.test"]);
    assert_eq!(ep.headers["x-tenant"], "acme");
    assert_eq!(ep.rate_limit_per_sec, Some(5));
    assert!(ep.enabled);
    assert!(matches!(
        store.create_endpoint(a.id, &s, "x").await,
        Err(EndpointWriteError::DuplicateUrl(_))
    ));
    store
        .create_endpoint(b.id, &s, "x")
        .await
        .expect("another team may use the same URL");
    assert!(store.get_endpoint(b.id, ep.id).await.unwrap().is_none());
    assert_eq!(store.list_endpoints(a.id).await.unwrap().len(), 1);

    let mut s2 = s.clone();
    s2.enabled = false;
    s2.rate_limit_per_sec = None;
    s2.description = "paused".into();
    assert!(
        store
            .update_endpoint(b.id, ep.id, &s2)
            .await
            .unwrap()
            .is_none(),
        "team b cannot update it"
    );
    let up = store
        .update_endpoint(a.id, ep.id, &s2)
        .await
        .unwrap()
        .unwrap();
    assert!(!up.enabled);
    assert_eq!(up.rate_limit_per_sec, None);
    assert_eq!(up.description, "paused");

    let until = now_ms() + 60_000;
    assert!(store
        .rotate_endpoint_secret(a.id, ep.id, "sealed-2", until)
        .await
        .unwrap());
    let rot = store.get_endpoint(a.id, ep.id).await.unwrap().unwrap();
    assert_eq!(rot.secret_sealed, "sealed-2");
    assert_eq!(rot.previous_secret_sealed.as_deref(), Some("sealed-1"));
    assert_eq!(rot.previous_secret_expires_at, Some(until));
    assert!(!store
        .rotate_endpoint_secret(b.id, ep.id, "evil", until)
        .await
        .unwrap());

    assert!(!store.delete_endpoint(b.id, ep.id).await.unwrap());
    assert!(store.delete_endpoint(a.id, ep.id).await.unwrap());
    assert!(store.get_endpoint(a.id, ep.id).await.unwrap().is_none());
}

async fn publish_is_idempotent_and_fans_out_by_filter(db: TestDb) {
    let store = db.store().await;
    let (team, _) = store.create_team("t").await.unwrap();
    let (other, _) = store.create_team("o").await.unwrap();
    let all = store
        .create_endpoint(team.id, &spec("https://a.example/", &[]), "s")
        .await
        .unwrap();
    let sleep_only = store
        .create_endpoint(
            team.id,
            &spec("https://b.example/", &["daily.data.sleep.created"]),
            "s",
        )
        .await
        .unwrap();
    let mut off = spec("https://c.example/", &[]);
    off.enabled = false;
    store.create_endpoint(team.id, &off, "s").await.unwrap();
    store
        .create_endpoint(other.id, &spec("https://d.example/", &[]), "s")
        .await
        .unwrap();

    let sleep = event(team.id, EventType::DailyCreated(Resource::Sleep));
    let workout = event(team.id, EventType::DailyCreated(Resource::Workouts));
    let out = store
        .publish(
            team.id,
            &[sleep.clone(), workout.clone()],
            Target::Subscribers,
        )
        .await
        .unwrap();
    assert_eq!(out.events, 2);
    assert_eq!(
        out.deliveries, 3,
        "sleep → 2 endpoints, workout → 1; the disabled and the other team's get none"
    );
    let again = store
        .publish(team.id, &[sleep.clone(), workout], Target::Subscribers)
        .await
        .unwrap();
    assert_eq!(
        (again.events, again.deliveries),
        (0, 0),
        "republishing is a no-op"
    );
    assert_eq!(
        store.delivery_counts().await.unwrap()[&DeliveryStatus::Pending],
        3
    );
    assert_eq!(
        store
            .list_endpoint_deliveries(team.id, sleep_only.id, 50, None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .list_endpoint_deliveries(team.id, all.id, 50, None)
            .await
            .unwrap()
            .len(),
        2
    );

    let test = event(team.id, EventType::WebhookTest);
    let out = store
        .publish(
            team.id,
            std::slice::from_ref(&test),
            Target::Endpoint(sleep_only.id),
        )
        .await
        .unwrap();
    assert_eq!(
        out.deliveries, 1,
        "a targeted event ignores the filter and reaches only its endpoint"
    );
    let stored = store.get_event(team.id, test.id).await.unwrap().unwrap();
    let payload: Envelope = serde_json::from_str(&stored.payload).unwrap();
    assert_eq!(payload, test);
    assert!(store.get_event(other.id, test.id).await.unwrap().is_none());

    // A big batch goes through the chunked statements.
    let many: Vec<Envelope> = (0..1200)
        .map(|_| event(team.id, EventType::DailyCreated(Resource::Sleep)))
        .collect();
    let out = store
        .publish(team.id, &many, Target::Subscribers)
        .await
        .unwrap();
    assert_eq!((out.events, out.deliveries), (1200, 2400));
}

async fn claims_are_exclusive_until_the_lease_ends(db: TestDb) {
    let store = db.store().await;
    let (team, _) = store.create_team("t").await.unwrap();
    store
        .create_endpoint(team.id, &spec("https://a.example/", &[]), "s")
        .await
        .unwrap();
    let evs: Vec<Envelope> = (0..10)
        .map(|_| event(team.id, EventType::WebhookTest))
        .collect();
    store
        .publish(team.id, &evs, Target::Subscribers)
        .await
        .unwrap();

    let lease = now_ms() + 60_000;
    let first = store.claim_deliveries(4, lease).await.unwrap();
    assert_eq!(first.len(), 4);
    assert!(first
        .iter()
        .all(|c| !c.payload.is_empty() && c.attempts == 0 && c.lease == lease));
    let second = store.claim_deliveries(100, lease).await.unwrap();
    assert_eq!(
        second.len(),
        6,
        "claimed deliveries are not handed out again"
    );
    assert!(store.claim_deliveries(100, lease).await.unwrap().is_empty());

    // Concurrent claimers never share a delivery.
    let evs: Vec<Envelope> = (0..200)
        .map(|_| event(team.id, EventType::WebhookTest))
        .collect();
    store
        .publish(team.id, &evs, Target::Subscribers)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s: Store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let c = s.claim_deliveries(7, now_ms() + 60_000).await.unwrap();
                if c.is_empty() {
                    break got;
                }
                got.extend(c.into_iter().map(|c| c.id));
            }
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (n, ids.len()),
        (200, 200),
        "every delivery claimed exactly once"
    );

    // An expired lease makes a delivery claimable again.
    let evs = vec![event(team.id, EventType::WebhookTest)];
    store
        .publish(team.id, &evs, Target::Subscribers)
        .await
        .unwrap();
    let c = store.claim_deliveries(10, now_ms() - 1).await.unwrap();
    assert_eq!(c.len(), 1);
    let again = store.claim_deliveries(10, now_ms() + 60_000).await.unwrap();
    assert_eq!(again.len(), 1, "a lapsed claim is taken over");
    assert_eq!(again[0].id, c[0].id);
}

fn ordered(team: Uuid, key: &str) -> Envelope {
    let mut e = event(team, EventType::HistoricalCreated(Resource::Sleep));
    e.ordering_key = Some(key.into());
    e
}

async fn ordered_deliveries_are_claimed_one_at_a_time_per_endpoint(db: TestDb) {
    let store = db.store().await;
    let (team, _) = store.create_team("t").await.unwrap();
    let a = store
        .create_endpoint(team.id, &spec("https://a.example/", &[]), "s")
        .await
        .unwrap();
    let b = store
        .create_endpoint(team.id, &spec("https://b.example/", &[]), "s")
        .await
        .unwrap();
    // Chunk 1 of key k alone, then chunks 2 and 3 with another key's event and an
    // unordered one: publish order spans publishes and holds inside one.
    let chunks = [
        ordered(team.id, "k"),
        ordered(team.id, "k"),
        ordered(team.id, "k"),
    ];
    let other = ordered(team.id, "other");
    let plain = event(team.id, EventType::WebhookTest);
    for batch in [
        vec![chunks[0].clone()],
        vec![
            chunks[1].clone(),
            other.clone(),
            chunks[2].clone(),
            plain.clone(),
        ],
    ] {
        store
            .publish(team.id, &batch, Target::Subscribers)
            .await
            .unwrap();
    }
    let name = |id: Uuid| -> &'static str {
        match id {
            id if id == chunks[0].id => "k1",
            id if id == chunks[1].id => "k2",
            id if id == chunks[2].id => "k3",
            id if id == other.id => "other",
            _ => "plain",
        }
    };
    let names = |claimed: &[wearbridge::store::Claimed], ep: Uuid| -> Vec<&'static str> {
        let mut v: Vec<&'static str> = claimed
            .iter()
            .filter(|c| c.endpoint_id == ep)
            .map(|c| name(c.event_id))
            .collect();
        v.sort();
        v
    };

    let lease = now_ms() + 60_000;
    let first = store.claim_deliveries(100, lease).await.unwrap();
    for ep in [a.id, b.id] {
        assert_eq!(
            names(&first, ep),
            ["k1", "other", "plain"],
            "only the head of each key is claimable"
        );
    }
    assert!(first
        .iter()
        .all(|c| c.ordering_key.is_some() == (name(c.event_id) != "plain")));
    assert!(
        store.claim_deliveries(100, lease).await.unwrap().is_empty(),
        "chunk 2 waits while chunk 1 is in flight under a live lease"
    );

    let k1 = |ep: Uuid| {
        first
            .iter()
            .find(|c| c.endpoint_id == ep && c.event_id == chunks[0].id)
            .unwrap()
            .clone()
    };
    let t0 = now_ms();
    let done = |c: &wearbridge::store::Claimed, status, next| {
        let outcome = if status == DeliveryStatus::Succeeded {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        Completion::of(c, status, next, Some((attempt(t0), outcome)))
    };
    // On a, chunk 1 fails and is due again at once; on b it succeeds.
    store
        .complete_deliveries(
            &[
                done(&k1(a.id), DeliveryStatus::Retrying, t0 - 1),
                done(&k1(b.id), DeliveryStatus::Succeeded, t0),
            ],
            0,
        )
        .await
        .unwrap();
    let second = store.claim_deliveries(100, lease + 1).await.unwrap();
    assert_eq!(
        names(&second, a.id),
        ["k1"],
        "a failed chunk is retried before the next goes (head of line)"
    );
    assert_eq!(
        names(&second, b.id),
        ["k2"],
        "a delivered chunk releases the next, on its endpoint only"
    );
    assert!(store.claim_deliveries(100, lease).await.unwrap().is_empty());

    // Given up on a: the next chunk goes.
    let retried = second.iter().find(|c| c.endpoint_id == a.id).unwrap();
    store
        .complete_deliveries(&[done(retried, DeliveryStatus::Exhausted, now_ms())], 0)
        .await
        .unwrap();
    let third = store.claim_deliveries(100, lease).await.unwrap();
    assert_eq!(
        names(&third, a.id),
        ["k2"],
        "an exhausted chunk releases the next"
    );
    assert!(
        names(&third, b.id).is_empty(),
        "b's chunk 2 is still in flight"
    );
}

async fn completions_respect_the_lease_and_track_health(db: TestDb) {
    let store = db.store().await;
    let (team, _) = store.create_team("t").await.unwrap();
    let ep = store
        .create_endpoint(team.id, &spec("https://a.example/", &[]), "s")
        .await
        .unwrap();
    let evs: Vec<Envelope> = (0..3)
        .map(|_| event(team.id, EventType::WebhookTest))
        .collect();
    store
        .publish(team.id, &evs, Target::Subscribers)
        .await
        .unwrap();
    let claimed = store.claim_deliveries(10, now_ms() + 60_000).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let t0 = now_ms();
    let fail = |c: &wearbridge::store::Claimed, lease: i64| Completion {
        delivery_id: c.id,
        endpoint_id: c.endpoint_id,
        lease,
        attempt: Some((attempt(t0), Outcome::Failure)),
        status: DeliveryStatus::Retrying,
        attempts: 1,
        next_attempt_at: t0 + 5_000,
        ordered: false,
    };
    // One completion carries a stale lease: it must not land.
    let batch = vec![
        fail(&claimed[0], claimed[0].lease),
        fail(&claimed[1], claimed[1].lease),
        fail(&claimed[2], 12345),
    ];
    let disabled = store
        .complete_deliveries(&batch, t0 - 60_000)
        .await
        .unwrap();
    assert!(
        disabled.is_empty(),
        "failing for less than the window does not disable"
    );
    let counts = store.delivery_counts().await.unwrap();
    assert_eq!(counts.get(&DeliveryStatus::Retrying), Some(&2));
    assert_eq!(
        counts.get(&DeliveryStatus::Pending),
        Some(&1),
        "the stale completion was ignored"
    );
    let e = store.get_endpoint(team.id, ep.id).await.unwrap().unwrap();
    assert_eq!(
        e.consecutive_failures, 3,
        "every attempt counts toward health"
    );
    assert_eq!(e.first_failure_at, Some(t0));

    let detail = store
        .event_deliveries(team.id, claimed[0].event_id)
        .await
        .unwrap();
    assert_eq!(detail.len(), 1);
    assert_eq!(detail[0].status.as_str(), "retrying");
    assert_eq!(detail[0].attempt_log.len(), 1);
    assert_eq!(detail[0].attempt_log[0].response_status, Some(500));
    assert_eq!(detail[0].attempt_log[0].worker, "test:1");

    // Failing since before the cutoff disables the endpoint, with a reason.
    store
        .publish(
            team.id,
            &[event(team.id, EventType::WebhookTest)],
            Target::Subscribers,
        )
        .await
        .unwrap();
    let again = store.claim_deliveries(10, now_ms() + 60_000).await.unwrap();
    assert_eq!(again.len(), 1);
    let disabled = store
        .complete_deliveries(&[fail(&again[0], again[0].lease)], t0 + 1)
        .await
        .unwrap();
    assert_eq!(disabled, vec![ep.id]);
    let e = store.get_endpoint(team.id, ep.id).await.unwrap().unwrap();
    assert!(!e.enabled);
    assert_eq!(
        e.disabled_reason.as_deref(),
        Some(
            format!(
                "every delivery failed since {}",
                wearbridge::events::format_ms(t0)
            )
            .as_str()
        )
    );

    // Re-enabling clears the failure record; a success resets the count.
    let mut s = EndpointSpec::from(&e);
    s.enabled = true;
    let e = store
        .update_endpoint(team.id, ep.id, &s)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            e.consecutive_failures,
            e.first_failure_at,
            e.disabled_reason
        ),
        (0, None, None)
    );
    let evs = vec![event(team.id, EventType::WebhookTest)];
    store
        .publish(team.id, &evs, Target::Subscribers)
        .await
        .unwrap();
    let c = store
        .claim_deliveries(1, now_ms() + 60_000)
        .await
        .unwrap()
        .remove(0);
    let mut ok = attempt(now_ms());
    ok.response_status = Some(204);
    ok.error_kind = None;
    let gone = Completion {
        attempt: Some((ok, Outcome::Success)),
        status: DeliveryStatus::Succeeded,
        ..fail(&c, c.lease)
    };
    store.complete_deliveries(&[gone], 0).await.unwrap();
    let e = store.get_endpoint(team.id, ep.id).await.unwrap().unwrap();
    assert_eq!(e.consecutive_failures, 0);
    assert!(e.last_success_at.is_some());

    // 410 Gone disables at once.
    let evs = vec![event(team.id, EventType::WebhookTest)];
    store
        .publish(team.id, &evs, Target::Subscribers)
        .await
        .unwrap();
    let c = store
        .claim_deliveries(1, now_ms() + 60_000)
        .await
        .unwrap()
        .remove(0);
    let mut g = attempt(now_ms());
    g.response_status = Some(410);
    let done = Completion {
        attempt: Some((g, Outcome::Gone)),
        status: DeliveryStatus::Exhausted,
        ..fail(&c, c.lease)
    };
    assert_eq!(
        store.complete_deliveries(&[done], 0).await.unwrap(),
        vec![ep.id]
    );
    let e = store.get_endpoint(team.id, ep.id).await.unwrap().unwrap();
    assert!(e.disabled_reason.unwrap().contains("410"));
}

async fn recover_requeues_failed_deliveries(db: TestDb) {
    let store = db.store().await;
    let (team, _) = store.create_team("t").await.unwrap();
    let ep = store
        .create_endpoint(team.id, &spec("https://a.example/", &[]), "s")
        .await
        .unwrap();
    let evs: Vec<Envelope> = (0..3)
        .map(|_| event(team.id, EventType::WebhookTest))
        .collect();
    store
        .publish(team.id, &evs, Target::Subscribers)
        .await
        .unwrap();
    let claimed = store.claim_deliveries(10, now_ms() + 60_000).await.unwrap();
    let batch: Vec<Completion> = claimed
        .iter()
        .map(|c| Completion {
            delivery_id: c.id,
            endpoint_id: c.endpoint_id,
            lease: c.lease,
            attempt: Some((attempt(now_ms()), Outcome::Failure)),
            status: DeliveryStatus::Exhausted,
            attempts: 3,
            next_attempt_at: now_ms(),
            ordered: false,
        })
        .collect();
    store.complete_deliveries(&batch, 0).await.unwrap();
    assert_eq!(
        store.delivery_counts().await.unwrap()[&DeliveryStatus::Exhausted],
        3
    );
    assert_eq!(
        store
            .recover_deliveries(team.id, ep.id, now_ms() + 60_000)
            .await
            .unwrap(),
        0,
        "nothing since the future"
    );
    let (other, _) = store.create_team("o").await.unwrap();
    assert_eq!(
        store.recover_deliveries(other.id, ep.id, 0).await.unwrap(),
        0,
        "another team recovers nothing"
    );
    assert_eq!(
        store.recover_deliveries(team.id, ep.id, 0).await.unwrap(),
        3
    );
    let again = store.claim_deliveries(10, now_ms() + 60_000).await.unwrap();
    assert_eq!(again.len(), 3, "recovered deliveries are due now");
    assert!(
        again.iter().all(|c| c.attempts == 3),
        "attempt numbering continues"
    );
}

#[test]
fn migration_directories_mirror_each_other_and_are_all_embedded() {
    let list = |d: &str| {
        let mut v: Vec<String> =
            std::fs::read_dir(format!("{}/migrations/{d}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
        v.sort();
        v
    };
    let sqlite = list("sqlite");
    let pg = list("postgres");
    assert_eq!(
        sqlite, pg,
        "migrations/sqlite and migrations/postgres must hold the same files"
    );
    let embedded: Vec<String> = MIGRATIONS
        .iter()
        .map(|(v, n, _, _)| format!("{v:04}_{n}.sql"))
        .collect();
    assert_eq!(
        sqlite, embedded,
        "every migration file must be listed in store::MIGRATIONS"
    );
    for (v, n, s, p) in MIGRATIONS {
        let on_disk = std::fs::read_to_string(format!(
            "{}/migrations/sqlite/{v:04}_{n}.sql",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert_eq!(&on_disk, s);
        let on_disk = std::fs::read_to_string(format!(
            "{}/migrations/postgres/{v:04}_{n}.sql",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert_eq!(&on_disk, p);
        // The same tables and columns in both dialects.
        let shape = |sql: &str| -> Vec<String> {
            sql.lines()
                .map(str::trim)
                .filter(|l| !l.starts_with("--") && !l.is_empty())
                .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
                .collect()
        };
        assert_eq!(
            shape(s),
            shape(p),
            "migration {v} differs in shape between dialects"
        );
    }
}

/// SQLite's WAL is copied into the database file by the store's checkpointer, not by
/// committing writers (their automatic checkpoints are off): after a burst of writes
/// and a short wait the database file holds them and the WAL has been copied through.
#[tokio::test]
async fn sqlite_wal_is_checkpointed_in_the_background() {
    let dir = std::env::temp_dir().join(format!("wearbridge-wal-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wal.db");
    let store = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    // Let the checkpointer copy the migrations, then measure from there.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let before = std::fs::metadata(&path).unwrap().len();
    let (team, _) = store.create_team("wal").await.unwrap();
    for i in 0..3000 {
        store
            .create_user(team.id, &format!("user-{i:05}-{}", "x".repeat(200)))
            .await
            .unwrap();
    }
    let wal = std::fs::metadata(dir.join("wal.db-wal")).unwrap().len();
    assert!(wal > 1_000_000, "the writes went to the WAL ({wal} bytes)");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let after = std::fs::metadata(&path).unwrap().len();
        if after > before + 500_000 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no checkpoint within 5 s: database file {before} → {after} bytes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
