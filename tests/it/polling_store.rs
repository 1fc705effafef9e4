//! The polling half of the store contract: connections, the job queue with ordered
//! backfill windows, and page commits (records by content hash, events, cursor) on
//! every backend.

use serde_json::{json, Map, Value};
use uuid::Uuid;
use wearbridge::events::{Envelope, EventType, ProviderRef, Resource};
use wearbridge::now_ms;
use wearbridge::providers::Record;
use wearbridge::store::{
    Connection, EndpointSpec, Finish, NewJob, PageCommit, PageEvents, SealedTokens, Store, Target,
    AFTER_PREVIOUS_WINDOW,
};

use crate::helpers::TestDb;
use wearbridge::states::{ConnectionErrorType, ConnectionStatus, JobKind, JobStatus};

crate::backend_tests!(
    connecting_creates_jobs_and_one_event,
    backfill_windows_run_strictly_newest_first,
    pages_commit_records_events_and_cursor_together,
    ending_a_connection_stops_its_jobs_once,
    group_commits_keep_each_page_its_own_result,
    a_backfill_page_stores_its_new_records_and_looks_up_only_the_rest,
);

/// What a poll's page publishes: `daily.data.*` for what it changed.
fn daily(conn: &Connection) -> PageEvents {
    let conn = conn.event_ref(ProviderRef {
        slug: conn.provider.clone(),
        name: conn.provider.clone(),
    });
    PageEvents {
        fixed: vec![],
        from_changes: Some(std::sync::Arc::new(move |changes| {
            Envelope::daily(&conn, changes)
        })),
        from_removals: None,
    }
}

fn fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn workout(id: &str, calories: f64) -> Record {
    Record {
        resource: Resource::Workouts,
        provider_id: id.into(),
        fields: fields(&[
            ("calories", json!(calories)),
            ("time_start", json!("2026-11-01T07:00:00+00:00")),
        ]),
    }
}

fn sample(ts: &str, v: f64) -> Record {
    Record {
        resource: Resource::Heartrate,
        provider_id: ts.into(),
        fields: fields(&[
            ("timestamp", json!(ts)),
            ("type", json!("heartrate")),
            ("unit", json!("bpm")),
            ("value", json!(v)),
        ]),
    }
}

struct Setup {
    store: Store,
    team: Uuid,
    conn: Uuid,
}

async fn setup(db: &TestDb, jobs: &[NewJob]) -> Setup {
    let store = db.store().await;
    let (team, _) = store.create_team("t").await.unwrap();
    let user = store.create_user(team.id, "u1").await.unwrap();
    store
        .create_endpoint(
            team.id,
            &EndpointSpec {
                url: "https://example.com/".into(),
                description: String::new(),
                event_types: vec![],
                enabled: true,
                method: "POST".into(),
                headers: Default::default(),
                rate_limit_per_sec: None,
            },
            "s",
        )
        .await
        .unwrap();
    let conn = Uuid::new_v4();
    let ev = Envelope::new(
        wearbridge::ids::connection_event_id("provider.connection.created", conn),
        EventType::ConnectionCreated,
        team.id,
        Some((user.user_id, "u1".into())),
        json!({"user_id": user.user_id}),
    );
    let tokens = SealedTokens {
        access: "sealed-a".into(),
        refresh: Some("sealed-r".into()),
        expires_at: Some(now_ms() + 3_600_000),
    };
    let out = store
        .create_connection(
            conn,
            team.id,
            user.user_id,
            "oura",
            Some("ext-1"),
            &tokens,
            jobs,
            &ev,
        )
        .await
        .unwrap();
    assert_eq!((out.events, out.deliveries), (1, 1));
    Setup {
        store,
        team: team.id,
        conn,
    }
}

/// A job of `kind` over the instant `[0, 1)`, due now.
fn job(kind: JobKind, resource: Resource) -> NewJob {
    NewJob {
        kind,
        resource,
        window_start: 0,
        window_end: 1,
        chunk_index: 0,
        chunk_count: 1,
        run_at: 0,
        backfill_id: None,
        record_key: None,
    }
}

fn backfill(resource: Resource, idx: i64, count: i64) -> NewJob {
    let day = 86_400_000;
    let end = 1_800_000_000_000 - idx * 30 * day;
    NewJob {
        kind: JobKind::Backfill,
        resource,
        window_start: end - 30 * day,
        window_end: end,
        chunk_index: idx,
        chunk_count: count,
        run_at: if idx == 0 { 0 } else { AFTER_PREVIOUS_WINDOW },
        backfill_id: None,
        record_key: None,
    }
}

async fn connecting_creates_jobs_and_one_event(db: TestDb) {
    let s = setup(
        &db,
        &[
            backfill(Resource::Sleep, 0, 2),
            backfill(Resource::Sleep, 1, 2),
        ],
    )
    .await;
    let c = s.store.get_connection(s.conn).await.unwrap().unwrap();
    assert_eq!(
        (
            c.status.as_str(),
            c.provider.as_str(),
            c.external_user_id.as_deref()
        ),
        ("connected", "oura", Some("ext-1"))
    );
    assert_eq!(c.client_user_id, "u1");
    let counts = s.store.job_counts().await.unwrap();
    assert_eq!(
        counts.get(&(JobKind::Backfill, JobStatus::Pending)),
        Some(&2)
    );
    let progress = s.store.backfill_progress(s.conn).await.unwrap();
    assert_eq!(
        (progress[0].windows_done, progress[0].windows_total),
        (0, 2)
    );
    // Token refresh is exclusive per version.
    assert!(s.store.lock_refresh(s.conn, 0, 30_000).await.unwrap());
    assert!(
        !s.store.lock_refresh(s.conn, 0, 30_000).await.unwrap(),
        "a second refresher waits"
    );
    let fresh = SealedTokens {
        access: "sealed-a2".into(),
        refresh: None,
        expires_at: Some(now_ms() + 3_600_000),
    };
    assert!(s.store.swap_tokens(s.conn, 0, &fresh).await.unwrap());
    assert!(
        !s.store.swap_tokens(s.conn, 0, &fresh).await.unwrap(),
        "a stale version cannot overwrite"
    );
    let c = s.store.get_connection(s.conn).await.unwrap().unwrap();
    assert_eq!(
        (
            c.token_version,
            c.access_token_sealed.as_str(),
            c.refresh_token_sealed.as_deref()
        ),
        (1, "sealed-a2", Some("sealed-r"))
    );
}

async fn backfill_windows_run_strictly_newest_first(db: TestDb) {
    let s = setup(
        &db,
        &[
            backfill(Resource::Sleep, 0, 3),
            backfill(Resource::Sleep, 1, 3),
            backfill(Resource::Sleep, 2, 3),
        ],
    )
    .await;
    let conn = s.store.get_connection(s.conn).await.unwrap().unwrap();
    for expected in 0..3 {
        let jobs = s
            .store
            .claim_jobs(10, now_ms() + 60_000, &[])
            .await
            .unwrap();
        assert_eq!(jobs.len(), 1, "only one window of a resource is ever due");
        assert_eq!(jobs[0].chunk_index, expected);
        assert!(s
            .store
            .claim_jobs(10, now_ms() + 60_000, &[])
            .await
            .unwrap()
            .is_empty());
        s.store
            .commit_page(
                &jobs[0],
                &conn,
                &[],
                PageEvents::default(),
                &Finish::WindowDone,
            )
            .await
            .unwrap()
            .unwrap();
    }
    assert!(s
        .store
        .claim_jobs(10, now_ms() + 60_000, &[])
        .await
        .unwrap()
        .is_empty());
    let p = s.store.backfill_progress(s.conn).await.unwrap();
    assert_eq!((p[0].windows_done, p[0].windows_total), (3, 3));
    assert_eq!(
        p[0].oldest_date_reached,
        Some(1_800_000_000_000 - 3 * 30 * 86_400_000)
    );
}

async fn pages_commit_records_events_and_cursor_together(db: TestDb) {
    let poll = job(JobKind::Poll, Resource::Workouts);
    let s = setup(&db, &[poll]).await;
    let conn = s.store.get_connection(s.conn).await.unwrap().unwrap();
    let job = s
        .store
        .claim_jobs(10, now_ms() + 60_000, &[])
        .await
        .unwrap()
        .remove(0);
    // Page 1 of 2: two new records → two created events; the cursor is kept.
    let lease = now_ms() + 120_000;
    let c = s
        .store
        .commit_page(
            &job,
            &conn,
            &[workout("w1", 100.0), workout("w2", 200.0)],
            daily(&conn),
            &Finish::Continue {
                cursor: "p2".into(),
                lease,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.created, c.updated, c.unchanged, c.events), (2, 0, 0, 2));
    // A stale claim writes nothing.
    assert!(s
        .store
        .commit_page(
            &job,
            &conn,
            &[workout("w3", 1.0)],
            daily(&conn),
            &Finish::WindowDone
        )
        .await
        .unwrap()
        .is_none());
    let mut job = job;
    job.lease = lease;
    // Page 2: one unchanged, one changed → one updated event with version 2.
    let c = s
        .store
        .commit_page(
            &job,
            &conn,
            &[workout("w1", 100.0), workout("w2", 250.0)],
            daily(&conn),
            &Finish::PollDone {
                next_run_at: now_ms() + 3_600_000,
                next_window: (5, 6),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.created, c.updated, c.unchanged, c.events), (0, 1, 1, 1));
    let recs = s
        .store
        .list_records(s.team, conn.user_id, Resource::Workouts, 0, i64::MAX, None)
        .await
        .unwrap();
    assert_eq!(recs.len(), 2);
    let w2 = recs.iter().find(|r| r["provider_id"] == "w2").unwrap();
    assert_eq!(
        (w2["version"].as_i64(), w2["calories"].as_f64()),
        (Some(2), Some(250.0))
    );
    let w2_id: Uuid = w2["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        w2_id,
        wearbridge::ids::record_id(s.team, conn.user_id, "oura", "workouts", "w2"),
        "the record id is stable"
    );
    let updated = wearbridge::ids::daily_event_id("daily.data.workouts.updated", w2_id, 2);
    let ev = s
        .store
        .get_event(s.team, updated)
        .await
        .unwrap()
        .expect("the updated event has its stable id");
    let env: Envelope = serde_json::from_str(&ev.payload).unwrap();
    assert_eq!(env.data["version"], 2);
    assert_eq!(env.client_user_id.as_deref(), Some("u1"));
    // Replaying the same page yields nothing new.
    assert!(
        s.store
            .claim_jobs(10, now_ms() + 60_000, &[])
            .await
            .unwrap()
            .is_empty(),
        "the poll is scheduled for later"
    );
    assert_eq!(s.store.poll_now(s.team, conn.user_id).await.unwrap(), 1);
    let job = s
        .store
        .claim_jobs(10, now_ms() + 60_000, &[])
        .await
        .unwrap()
        .remove(0);
    assert_eq!((job.window_start, job.window_end), (5, 6));
    let c = s
        .store
        .commit_page(
            &job,
            &conn,
            &[workout("w1", 100.0), workout("w2", 250.0)],
            daily(&conn),
            &Finish::PollDone {
                next_run_at: now_ms() + 3_600_000,
                next_window: (5, 6),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.created, c.updated, c.unchanged, c.events), (0, 0, 2, 0));

    // A page that names w1 as not data (a sleep the user deleted, a goal): the stored
    // record goes, in the page's transaction; a key never stored removes nothing.
    assert_eq!(s.store.poll_now(s.team, conn.user_id).await.unwrap(), 1);
    let job = s
        .store
        .claim_jobs(10, now_ms() + 60_000, &[])
        .await
        .unwrap()
        .remove(0);
    let page = PageCommit::new(
        job,
        conn.clone(),
        vec![workout("w2", 250.0)],
        daily(&conn),
        Finish::PollDone {
            next_run_at: now_ms() + 3_600_000,
            next_window: (5, 6),
        },
    )
    .removing([
        (Resource::Workouts, "w1".to_string()),
        (Resource::Workouts, "never-stored".to_string()),
    ]);
    let c = s.store.commit(page).await.unwrap().unwrap();
    assert_eq!((c.removed, c.unchanged, c.events), (1, 1, 0));
    let recs = s
        .store
        .list_records(s.team, conn.user_id, Resource::Workouts, 0, i64::MAX, None)
        .await
        .unwrap();
    let left: Vec<&str> = recs
        .iter()
        .map(|r| r["provider_id"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["w2"]);

    // Timeseries samples of one page travel in one event; its id is stable.
    let poll = s.store.poll_now(s.team, conn.user_id).await.unwrap();
    assert_eq!(poll, 1);
    let mut job = s
        .store
        .claim_jobs(10, now_ms() + 60_000, &[])
        .await
        .unwrap()
        .remove(0);
    job.resource = Resource::Heartrate;
    let samples = [
        sample("2026-11-01T07:00:00+00:00", 60.0),
        sample("2026-11-01T07:05:00+00:00", 62.0),
    ];
    let c = s
        .store
        .commit_page(
            &job,
            &conn,
            &samples,
            daily(&conn),
            &Finish::PollDone {
                next_run_at: now_ms() + 3_600_000,
                next_window: (5, 6),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.created, c.events), (2, 1));
    let hr = s
        .store
        .list_records(s.team, conn.user_id, Resource::Heartrate, 0, i64::MAX, None)
        .await
        .unwrap();
    assert_eq!(hr.len(), 2);
    assert_eq!(hr[0]["value"], 60.0);
}

async fn ending_a_connection_stops_its_jobs_once(db: TestDb) {
    let s = setup(&db, &[backfill(Resource::Sleep, 0, 1)]).await;
    let conn = s.store.get_connection(s.conn).await.unwrap().unwrap();
    let ev = |t: EventType| {
        Envelope::new(
            wearbridge::ids::connection_event_id(&t.name(), s.conn),
            t,
            s.team,
            None,
            json!({}),
        )
    };
    assert!(s
        .store
        .end_connection(
            s.conn,
            ConnectionStatus::Error,
            Some((ConnectionErrorType::TokenRefreshFailed, "invalid_grant")),
            &ev(EventType::ConnectionError)
        )
        .await
        .unwrap());
    assert!(
        !s.store
            .end_connection(
                s.conn,
                ConnectionStatus::Error,
                Some((ConnectionErrorType::TokenRefreshFailed, "again")),
                &ev(EventType::ConnectionError)
            )
            .await
            .unwrap(),
        "the error event is sent once"
    );
    assert!(
        s.store
            .claim_jobs(10, now_ms() + 60_000, &[])
            .await
            .unwrap()
            .is_empty(),
        "an errored connection's jobs stop"
    );
    let c = s.store.get_connection(s.conn).await.unwrap().unwrap();
    assert_eq!(
        (c.status.as_str(), c.error_type.map(|t| t.as_str())),
        ("error", Some("token_refresh_failed"))
    );
    assert!(s
        .store
        .end_connection(
            s.conn,
            ConnectionStatus::Deregistered,
            None,
            &ev(EventType::ConnectionDeleted)
        )
        .await
        .unwrap());
    assert!(
        !s.store
            .end_connection(
                s.conn,
                ConnectionStatus::Error,
                None,
                &ev(EventType::ConnectionError)
            )
            .await
            .unwrap(),
        "a deregistered connection stays so"
    );
    let _ = (conn, Target::Subscribers);
}

/// Pages of several jobs committed in one transaction: each gets its own counts, a page
/// whose claim was lost writes nothing while the others land, and pages committed
/// concurrently through `Store::commit` (grouped or not) lose nothing.
async fn group_commits_keep_each_page_its_own_result(db: TestDb) {
    let polls: Vec<NewJob> = [Resource::Workouts, Resource::Sleep, Resource::Activity]
        .iter()
        .map(|r| job(JobKind::Poll, *r))
        .collect();
    let s = setup(&db, &polls).await;
    let conn = s.store.get_connection(s.conn).await.unwrap().unwrap();
    let jobs = s
        .store
        .claim_jobs(10, now_ms() + 60_000, &[])
        .await
        .unwrap();
    assert_eq!(jobs.len(), 3);
    let mut stale = jobs[1].clone();
    stale.lease -= 1;
    let done = Finish::PollDone {
        next_run_at: now_ms() + 3_600_000,
        next_window: (0, 1),
    };
    let page = |job: &wearbridge::store::Job, ids: &[&str]| {
        let recs = ids.iter().map(|id| workout(id, 1.0)).collect();
        PageCommit::new(job.clone(), conn.clone(), recs, daily(&conn), done.clone())
    };
    let out = s
        .store
        .commit_pages(&[
            page(&jobs[0], &["a", "b"]),
            page(&stale, &["c"]),
            page(&jobs[2], &["d", "a"]),
        ])
        .await
        .unwrap();
    let counts: Vec<Option<(u64, u64, u64, u64)>> = out
        .iter()
        .map(|c| c.map(|c| (c.created, c.unchanged, c.events, c.deliveries)))
        .collect();
    // The third page repeats `a`, created by the first one in the same group: unchanged.
    assert_eq!(counts, vec![Some((2, 0, 2, 2)), None, Some((1, 1, 1, 1))]);
    let recs = s
        .store
        .list_records(s.team, conn.user_id, Resource::Workouts, 0, i64::MAX, None)
        .await
        .unwrap();
    let mut ids: Vec<&str> = recs
        .iter()
        .map(|r| r["provider_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["a", "b", "d"], "the stale page wrote nothing");

    // Forty pages from forty tasks at once: every record stored once, every page answered.
    let polls: Vec<NewJob> = (0..40)
        .map(|_| job(JobKind::Poll, Resource::Workouts))
        .collect();
    let s2 = setup(&db, &polls).await;
    let conn2 = s2.store.get_connection(s2.conn).await.unwrap().unwrap();
    let jobs = s2
        .store
        .claim_jobs(100, now_ms() + 60_000, &[])
        .await
        .unwrap();
    assert_eq!(jobs.len(), 40);
    let tasks: Vec<_> = jobs
        .into_iter()
        .enumerate()
        .map(|(i, job)| {
            let (store, conn) = (s2.store.clone(), conn2.clone());
            let recs = (0..25)
                .map(|k| workout(&format!("t{i}-{k}"), k as f64))
                .collect();
            let events = daily(&conn);
            let page = PageCommit::new(
                job,
                conn,
                recs,
                events,
                Finish::PollDone {
                    next_run_at: now_ms() + 3_600_000,
                    next_window: (0, 1),
                },
            );
            tokio::spawn(async move { store.commit(page).await })
        })
        .collect();
    for t in tasks {
        let c = t.await.unwrap().unwrap().expect("the claim holds");
        assert_eq!((c.created, c.events), (25, 25));
    }
    let recs = s2
        .store
        .list_records(
            s2.team,
            conn2.user_id,
            Resource::Workouts,
            0,
            i64::MAX,
            None,
        )
        .await
        .unwrap();
    assert_eq!(recs.len(), 1000);
}

/// A backfill page's records go in before any lookup; the ones already stored are
/// looked up like a poll's, so each still counts as created, unchanged or updated, and a
/// poll page later in the same group sees what the backfill page wrote.
async fn a_backfill_page_stores_its_new_records_and_looks_up_only_the_rest(db: TestDb) {
    let w = Resource::Workouts;
    let s = setup(
        &db,
        &[
            job(JobKind::Poll, w),
            job(JobKind::Poll, w),
            job(JobKind::Backfill, w),
        ],
    )
    .await;
    let conn = s.store.get_connection(s.conn).await.unwrap().unwrap();
    let jobs = s
        .store
        .claim_jobs(10, now_ms() + 60_000, &[])
        .await
        .unwrap();
    let of = |kind: JobKind| jobs.iter().filter(move |j| j.kind == kind);
    let (first, second) = {
        let mut polls = of(JobKind::Poll);
        (polls.next().unwrap().clone(), polls.next().unwrap().clone())
    };
    let backfill = of(JobKind::Backfill).next().unwrap().clone();
    let done = Finish::PollDone {
        next_run_at: now_ms() + 3_600_000,
        next_window: (0, 1),
    };
    let stored = s
        .store
        .commit(PageCommit::new(
            first,
            conn.clone(),
            vec![workout("b", 1.0), workout("c", 1.0)],
            daily(&conn),
            done.clone(),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.created, 2);

    // One group: the backfill page brings `a` (new), `b` (the same) and `c` (changed);
    // the poll page after it brings `a` again, changed.
    let history = PageEvents {
        fixed: vec![],
        from_changes: None,
        from_removals: None,
    };
    let out = s
        .store
        .commit_pages(&[
            PageCommit::new(
                backfill,
                conn.clone(),
                vec![workout("a", 1.0), workout("b", 1.0), workout("c", 2.0)],
                history,
                Finish::Continue {
                    cursor: "next".into(),
                    lease: now_ms() + 60_000,
                },
            ),
            PageCommit::new(
                second,
                conn.clone(),
                vec![workout("a", 3.0)],
                daily(&conn),
                done,
            ),
        ])
        .await
        .unwrap();
    let counts: Vec<(u64, u64, u64, u64)> = out
        .iter()
        .map(|c| {
            let c = c.expect("both claims hold");
            (c.created, c.unchanged, c.updated, c.events)
        })
        .collect();
    assert_eq!(counts, vec![(1, 1, 1, 0), (0, 0, 1, 1)]);
    let recs = s
        .store
        .list_records(s.team, conn.user_id, Resource::Workouts, 0, i64::MAX, None)
        .await
        .unwrap();
    let mut got: Vec<(String, i64, f64)> = recs
        .iter()
        .map(|r| {
            (
                r["provider_id"].as_str().unwrap().to_string(),
                r["version"].as_i64().unwrap(),
                r["calories"].as_f64().unwrap(),
            )
        })
        .collect();
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        got,
        vec![
            ("a".to_string(), 2, 3.0),
            ("b".to_string(), 1, 1.0),
            ("c".to_string(), 2, 2.0)
        ]
    );
    let a = wearbridge::ids::record_id(s.team, conn.user_id, "oura", "workouts", "a");
    let updated = wearbridge::ids::daily_event_id("daily.data.workouts.updated", a, 2);
    assert!(s.store.get_event(s.team, updated).await.unwrap().is_some());
}

/// PostgreSQL: ending a connection locks the connection, then its pending jobs, while a
/// page commit may hold one of those jobs and want what the ending holds. When the
/// database breaks that deadlock by failing the ending, the ending is tried again and
/// succeeds. (The other side here keeps its own deadlock check late, so the ending is
/// the one the database fails.)
#[tokio::test]
async fn ending_a_connection_survives_a_deadlock_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let s = setup(
        &db,
        &[
            backfill(Resource::Sleep, 0, 2),
            backfill(Resource::Sleep, 1, 2),
        ],
    )
    .await;
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let mut other = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL deadlock_timeout = '20s'")
        .execute(&mut *other)
        .await
        .unwrap();
    sqlx::query("SELECT id FROM jobs WHERE connection_id = $1 ORDER BY id LIMIT 1 FOR UPDATE")
        .bind(s.conn.to_string())
        .fetch_one(&mut *other)
        .await
        .unwrap();

    let store = s.store.clone();
    let (conn, team) = (s.conn, s.team);
    let ending = tokio::spawn(async move {
        let t = EventType::ConnectionDeleted;
        let ev = Envelope::new(
            wearbridge::ids::connection_event_id(&t.name(), conn),
            t,
            team,
            None,
            json!({}),
        );
        store
            .end_connection(conn, ConnectionStatus::Deregistered, None, &ev)
            .await
    });
    // The ending now holds the connection and waits for the job; wanting the connection
    // closes the cycle, and the ending's deadlock check (after 1 s) fails the ending.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::query("UPDATE connections SET updated_at = updated_at WHERE id = $1")
        .bind(s.conn.to_string())
        .execute(&mut *other)
        .await
        .unwrap();
    other.commit().await.unwrap();

    let ended = tokio::time::timeout(std::time::Duration::from_secs(15), ending)
        .await
        .expect("the ending finishes")
        .unwrap();
    assert!(
        ended.expect("the ending is tried again after the deadlock"),
        "the connection was ended"
    );
    let c = s.store.get_connection(s.conn).await.unwrap().unwrap();
    assert_eq!(c.status.as_str(), "deregistered");
    assert!(
        s.store
            .claim_jobs(10, now_ms() + 60_000, &[])
            .await
            .unwrap()
            .is_empty(),
        "its jobs stopped"
    );
}
