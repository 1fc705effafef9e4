//! `wearbridge bench deliver`: end-to-end delivery throughput and latency. It starts
//! the gateway and a verifying receiver with K endpoints, publishes N events (as fast as
//! it can, or at `--rate` events/s), and measures publish-to-receipt latency and
//! deliveries per second. Then it drives the same receiver with the same body and
//! concurrency from a plain HTTP client with no database: the ceiling this machine
//! allows, and our share of it.
//!
//! `wearbridge bench ingest`: provider ingestion through the whole pipeline (connect
//! flow, poller, adapter, group commit, events) in records/s, against its ceiling: the
//! same pages parsed by the same adapter and stored with plain multi-row inserts on the
//! same backend, with no poller, no HTTP and no events.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::demo::ApiClient;
use crate::app::Gateway;
use crate::config::Config;
use crate::events::{Envelope, EventType, Resource};
use crate::receiver::{now_us, Receiver};
use crate::seal::{random_token, Sealer};
use crate::states::{JobKind, JobStatus};
use crate::store::{Backend, Store, Target};

/// How long `bench ingest` waits for a backfill window to finish before it gives up.
const STALL_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Webhook delivery: deliveries/s and publish-to-receipt latency, against the ceiling.
    /// Uses a fresh SQLite file unless --database-url names a server (PostgreSQL gets a
    /// fresh scratch database on it, dropped afterwards).
    Deliver {
        /// Events to publish.
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        /// Endpoints subscribed to every event (deliveries = events × endpoints).
        #[arg(long, default_value_t = 1)]
        endpoints: usize,
        /// Publish at this many events per second (0: as fast as possible).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Print one JSON object with the figures.
        #[arg(long)]
        json: bool,
    },
    /// Provider ingestion: N users connect Oura through the fixture server, each with a
    /// year of sleep, daily activity and workouts, and are backfilled. Records/s
    /// normalised and stored, events/s, and the process's peak memory; then the ceiling:
    /// the same pages parsed and stored by plain multi-row inserts into a fresh database
    /// on the same backend (no poller, HTTP or events), and our share of it. Uses fresh
    /// SQLite files unless --database-url names a server (PostgreSQL gets fresh scratch
    /// databases on it, dropped afterwards).
    Ingest {
        /// Users to connect and backfill.
        #[arg(long, default_value_t = 1_000)]
        users: usize,
        /// Days of history per user.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Print one JSON object with the figures.
        #[arg(long)]
        json: bool,
    },
    /// Provider budgets: P `serve` processes on one database backfill N users against a
    /// fixture provider that enforces the provider's limits exactly. The share of the
    /// budget used, 429s, the most requests in any window, requests per record, and the
    /// time against the least the budget allows. Several processes need PostgreSQL.
    Budget {
        /// Users to connect and backfill.
        #[arg(long, default_value_t = 20)]
        users: usize,
        /// `wearbridge serve` processes sharing the database.
        #[arg(long, default_value_t = 1)]
        processes: usize,
        /// The provider whose limits are measured.
        #[arg(long, default_value = "whoop")]
        provider: String,
        /// Every rate-limit window, in the fixture server and the gateway alike, is this
        /// many times shorter (60: WHOOP's minute lasts a second).
        #[arg(long, default_value_t = 60.0)]
        time_scale: f64,
        /// Print one JSON object with the figures.
        #[arg(long)]
        json: bool,
    },
    /// Provider push: the fixture provider sends R notifications a second, each about a
    /// new record, round-robin over N users connected through the real flow and
    /// backfilled; p50/p99/max from a notification leaving the provider to the webhook
    /// about that record arriving, provider data requests per notification and 429s
    /// (the provider's documented limits enforced). Uses a fresh SQLite file unless
    /// --database-url names a server (PostgreSQL gets a fresh scratch database on it,
    /// dropped afterwards).
    Push {
        /// Users to connect; notifications go to them in turn.
        #[arg(long, default_value_t = 100)]
        users: usize,
        /// Notifications a second.
        #[arg(long, default_value_t = 100)]
        rate: u64,
        /// Seconds of notifications (rate x seconds in all).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// The provider that pushes (default: of those that push, the one whose
        /// documented limits carry the most notifications).
        #[arg(long, default_value = super::push_bench::DEFAULT_PROVIDER)]
        provider: String,
        /// Every rate-limit window, in the fixture provider and the gateway alike, is
        /// this many times shorter (1: the provider's documented limits).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// Print one JSON object with the figures.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: Config, cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Deliver {
            events,
            endpoints,
            rate,
            json,
        } => deliver(config, events, endpoints, rate, json).await,
        BenchCommand::Ingest { users, days, json } => ingest(config, users, days, json).await,
        BenchCommand::Budget {
            users,
            processes,
            provider,
            time_scale,
            json,
        } => super::budget_bench::run(config, provider, users, processes, time_scale, json).await,
        BenchCommand::Push {
            users,
            rate,
            seconds,
            provider,
            time_scale,
            json,
        } => {
            super::push_bench::run(
                config,
                super::push_bench::PushBench {
                    provider,
                    users,
                    rate,
                    seconds,
                    time_scale,
                    json,
                },
            )
            .await
        }
    }
}

pub(super) struct Percentiles {
    pub(super) p50: f64,
    pub(super) p99: f64,
    pub(super) max: f64,
}

pub(super) fn percentiles(mut v: Vec<f64>) -> Percentiles {
    if v.is_empty() {
        return Percentiles {
            p50: 0.0,
            p99: 0.0,
            max: 0.0,
        };
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("latencies are finite"));
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
        max: *v.last().expect("not empty"),
    }
}

/// A benchmark's own database: a fresh SQLite file unless the configuration names a
/// server; on PostgreSQL a scratch database, dropped by [`BenchDb::cleanup`].
pub(super) struct BenchDb {
    pub(super) store: Store,
    scratch: Option<(String, String)>,
    /// Files and directories made for this database, removed by [`BenchDb::cleanup`].
    made: Vec<std::path::PathBuf>,
}

impl BenchDb {
    /// The benchmark's database for `config`, which is pointed at it.
    pub(super) async fn open(config: &mut Config) -> anyhow::Result<BenchDb> {
        let (db, url) = BenchDb::on(&config.database_url, false).await?;
        config.database_url = url;
        Ok(db)
    }

    /// A database on the backend `url` names, and its URL. PostgreSQL: a scratch
    /// database on that server. SQLite: for the default URL a fresh file in a new
    /// temporary directory; another file as it is, or with `beside` a fresh file in
    /// the same directory (the same disk).
    async fn on(url: &str, beside: bool) -> anyhow::Result<(BenchDb, String)> {
        let mut scratch = None;
        let mut made = Vec::new();
        let name = || format!("wearbridge-bench-{}", Uuid::new_v4().simple());
        let url = if url.starts_with("postgres") {
            let scratch_url =
                crate::store::create_scratch_postgres(url, "wearbridge_bench").await?;
            scratch = Some((url.to_string(), scratch_url.clone()));
            scratch_url
        } else if url == Config::defaults().database_url {
            let tmp = std::env::temp_dir().join(name());
            std::fs::create_dir_all(&tmp)?;
            made.push(tmp.clone());
            format!("sqlite://{}", tmp.join("bench.db").display())
        } else if beside {
            let rest = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let dir = std::path::Path::new(path)
                .parent()
                .unwrap_or(std::path::Path::new(""));
            let file = dir.join(format!("{}.db", name()));
            for suffix in ["", "-wal", "-shm"] {
                made.push(format!("{}{suffix}", file.display()).into());
            }
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{query}")
            };
            format!("sqlite://{}{query}", file.display())
        } else {
            url.to_string()
        };
        let store = Store::connect(&url).await?;
        store.migrate().await?;
        Ok((
            BenchDb {
                store,
                scratch,
                made,
            },
            url,
        ))
    }

    pub(super) fn name(&self) -> &'static str {
        if self.store.backend() == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    }

    pub(super) async fn cleanup(self) {
        self.store.close().await;
        if let Some((base, url)) = &self.scratch {
            crate::store::drop_scratch_postgres(base, url).await;
        }
        for path in &self.made {
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
        }
    }
}

async fn deliver(
    config: Config,
    n_events: usize,
    n_endpoints: usize,
    rate: u64,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        n_events > 0 && n_endpoints > 0,
        "--events and --endpoints must be at least 1"
    );
    let mut config = config.for_loopback();
    let db = BenchDb::open(&mut config).await?;
    let concurrency = config.delivery_concurrency;
    let store = db.store.clone();
    let receiver = Receiver::start(false).await?;
    let gateway = Gateway::start_with(
        config,
        Sealer::from_master_key(&random_token(32))?,
        store.clone(),
    )
    .await?;

    let (team, key) = store.create_team("bench").await?;
    let api = ApiClient {
        http: reqwest::Client::new(),
        base: gateway.url(),
        key,
    };
    let mut secret = String::new();
    for k in 0..n_endpoints {
        let path = format!("/bench/{k}");
        // The receiver knows the secret before the endpoint's test event can arrive.
        let key = secret_for(&mut secret);
        receiver.set_secret(&path, &key);
        let ep = api
            .post(
                "/v1/webhooks/endpoints",
                json!({"url": receiver.url(&path), "secret": key}),
            )
            .await?;
        anyhow::ensure!(
            ep["secret"] == key.as_str(),
            "the endpoint was not given the secret sent"
        );
    }
    anyhow::ensure!(
        receiver
            .wait_for(n_endpoints as u64, Duration::from_secs(30))
            .await,
        "test events did not arrive"
    );
    let warmup = receiver.count();

    // Publish.
    let user = Uuid::new_v4();
    let t = EventType::DailyCreated(Resource::Workouts);
    let body_sample = serde_json::to_string(&Envelope::example(
        Uuid::new_v4(),
        t,
        team.id,
        Some((user, "bench-user".into())),
    ))?;
    let mut published_at: HashMap<String, i64> = HashMap::with_capacity(n_events);
    let chunk = if rate == 0 {
        200
    } else {
        ((rate / 100).max(1) as usize).min(200)
    };
    let start = Instant::now();
    let start_us = now_us();
    let mut sent = 0usize;
    while sent < n_events {
        let k = chunk.min(n_events - sent);
        let batch: Vec<Envelope> = (0..k)
            .map(|_| {
                Envelope::example(
                    Uuid::new_v4(),
                    t,
                    team.id,
                    Some((user, "bench-user".into())),
                )
            })
            .collect();
        let now = now_us();
        for e in &batch {
            published_at.insert(e.id.to_string(), now);
        }
        store.publish(team.id, &batch, Target::Subscribers).await?;
        sent += k;
        if rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    let expected = (n_events * n_endpoints) as u64;
    let done = receiver
        .wait_for(warmup + expected, Duration::from_secs(900))
        .await;
    let received = receiver.received();
    let mut latencies = Vec::with_capacity(expected as usize);
    let mut last = start_us;
    let mut seen = std::collections::HashSet::new();
    let mut duplicates = 0u64;
    for r in &received {
        if let Some(t0) = published_at.get(&r.event_id) {
            if !seen.insert((r.event_id.clone(), r.path.clone())) {
                duplicates += 1;
                continue;
            }
            latencies.push((r.received_at_us - t0) as f64 / 1000.0);
            last = last.max(r.received_at_us);
        }
    }
    let elapsed = (last - start_us) as f64 / 1e6;
    let delivered = latencies.len() as f64;
    let per_sec = if elapsed > 0.0 {
        delivered / elapsed
    } else {
        0.0
    };
    let lat = percentiles(latencies);
    let verified_all = receiver.rejected() == 0;
    gateway.stop().await;

    // The ceiling: the same receiver, body and concurrency, no database.
    let ceiling = ceiling(
        &receiver,
        &secret,
        &body_sample,
        expected as usize,
        concurrency,
    )
    .await?;
    let dbname = db.name();
    db.cleanup().await;
    let db = dbname;
    let share = if ceiling > 0.0 {
        per_sec / ceiling
    } else {
        0.0
    };
    if as_json {
        println!(
            "{}",
            json!({
                "database": db, "events": n_events, "endpoints": n_endpoints, "rate": rate,
                "deliveries": delivered as u64, "duplicates": duplicates, "all_verified": verified_all,
                "deliveries_per_sec": round(per_sec), "p50_ms": round(lat.p50), "p99_ms": round(lat.p99), "max_ms": round(lat.max),
                "ceiling_per_sec": round(ceiling), "share_of_ceiling": (share * 1000.0).round() / 1000.0,
            })
        );
    } else {
        println!(
            "bench deliver on {db}: {n_events} events x {n_endpoints} endpoints{}",
            if rate > 0 {
                format!(" at {rate} events/s")
            } else {
                String::new()
            }
        );
        println!(
            "  delivered        {} of {} ({} duplicates), all verified: {}",
            delivered as u64, expected, duplicates, verified_all
        );
        println!("  throughput       {per_sec:.0} deliveries/s");
        println!(
            "  latency          p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (publish to receipt)",
            lat.p50, lat.p99, lat.max
        );
        println!("  ceiling          {ceiling:.0} requests/s (plain client, same receiver, body, concurrency)");
        println!("  share of ceiling {:.0} %", share * 100.0);
    }
    Ok(if done && verified_all {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(super) fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// One secret for all bench endpoints, so the ceiling run can sign like them.
fn secret_for(secret: &mut String) -> String {
    if secret.is_empty() {
        *secret = crate::seal::new_webhook_secret();
    }
    secret.clone()
}

async fn ceiling(
    receiver: &Receiver,
    secret: &str,
    body: &str,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let path = "/ceiling";
    receiver.set_secret(path, secret);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .build()?;
    let url = receiver.url(path);
    let signer = Arc::new(crate::delivery::signing::Signer::new([secret])?);
    let sem = Arc::new(Semaphore::new(concurrency));
    let body: Arc<str> = body.into();
    let before = receiver.count();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(requests);
    for i in 0..requests {
        let permit = sem.clone().acquire_owned().await?;
        let (client, url, signer, body) =
            (client.clone(), url.clone(), signer.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("ceiling_{i}");
            let ts = chrono::Utc::now().timestamp();
            let sig = signer.sign(&id, ts, body.as_bytes());
            let _ = client
                .post(url)
                .header("webhook-id", id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await;
            drop(permit);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((receiver.count() - before) as f64 / secs)
}

/// Peak resident memory of this process (Linux `VmHWM`), in MiB.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// A year (or `days`) of Oura-shaped items, in the real reply shapes.
fn synthetic_oura(days: u32) -> Vec<(Resource, Vec<serde_json::Value>)> {
    use chrono::{Duration as D, FixedOffset, TimeZone};
    let tz = FixedOffset::east_opt(3600).expect("valid offset");
    let today = chrono::Utc::now().date_naive();
    let (mut sleep, mut activity, mut workouts) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..=days as i64 {
        let day = today - D::days(i);
        let n = i as u64;
        let bed = tz
            .from_local_datetime(
                &(day - D::days(1))
                    .and_hms_opt(22, 30 + (n % 29) as u32, 0)
                    .expect("time"),
            )
            .single()
            .expect("fixed offset");
        let total = 24_000 + (n * 37 % 4000) as i64;
        sleep.push(json!({
            "id": Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("sleep-{day}").as_bytes()), "type": "long_sleep", "day": day.to_string(),
            "bedtime_start": bed.to_rfc3339(), "bedtime_end": (bed + D::seconds(total + 1800)).to_rfc3339(),
            "time_in_bed": total + 1800, "total_sleep_duration": total, "awake_time": 1800,
            "light_sleep_duration": total / 2, "rem_sleep_duration": total / 4, "deep_sleep_duration": total / 4,
            "efficiency": 90 + n % 8, "average_heart_rate": 50.5 + (n % 7) as f64, "lowest_heart_rate": 44 + n % 6,
            "average_hrv": 40 + n % 40, "average_breath": 14.25, "period": 0
        }));
        let steps = 4000 + n * 131 % 12000;
        activity.push(json!({
            "id": Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("act-{day}").as_bytes()), "day": day.to_string(),
            "timestamp": tz.from_local_datetime(&day.and_hms_opt(4, 0, 0).expect("time")).single().expect("fixed offset").to_rfc3339(),
            "steps": steps, "active_calories": 200 + n % 600, "total_calories": 2100 + n % 900,
            "equivalent_walking_distance": steps * 78 / 100, "score": 70 + n % 25
        }));
        if i % 3 == 0 {
            let start = tz
                .from_local_datetime(&day.and_hms_opt(7, 0, 0).expect("time"))
                .single()
                .expect("fixed offset");
            let sport = ["running", "cycling", "walking"][(n % 3) as usize];
            workouts.push(json!({
                "id": Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("wk-{day}").as_bytes()), "day": day.to_string(),
                "activity": sport, "calories": 300.5 + (n % 200) as f64,
                "distance": 5000.0 + (n % 50) as f64 * 100.0, "intensity": "moderate", "label": null, "source": "autodetected",
                "start_datetime": start.to_rfc3339(), "end_datetime": (start + D::minutes(45)).to_rfc3339()
            }));
        }
    }
    vec![
        (Resource::Sleep, sleep),
        (Resource::Activity, activity),
        (Resource::Workouts, workouts),
        (Resource::Heartrate, vec![]),
    ]
}

async fn ingest(
    config: Config,
    n_users: usize,
    days: u32,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        n_users > 0 && days > 0,
        "--users and --days must be at least 1"
    );
    let fixtures = crate::fixture_server::FixtureServer::start().await?;
    for (r, items) in synthetic_oura(days) {
        fixtures.set_items("oura", r, items);
    }
    // The ceiling stores the very pages the pipeline fetched.
    fixtures.keep_pages();
    // Every user asks for the same windows of the same data: made once, the provider's
    // pages cost the machine next to nothing, as a real provider's do.
    fixtures.cache_pages();
    let mut config = config.for_loopback();
    let database_url = config.database_url.clone();
    config.providers_base_url = Some(fixtures.root());
    // Measure our pipeline, not Oura's request budget.
    config.provider_rate_limits = false;
    config.poller_concurrency = config.poller_concurrency.max(64);
    let db = BenchDb::open(&mut config).await?;
    let store = db.store.clone();
    let gateway = Gateway::start_with(
        config,
        Sealer::from_master_key(&random_token(32))?,
        store.clone(),
    )
    .await?;
    let (_, key) = store.create_team("bench").await?;
    let api = Arc::new(ApiClient {
        http: reqwest::Client::new(),
        base: gateway.url(),
        key,
    });
    let start = Instant::now();
    // Connect every user through the real flow, a few dozen at a time.
    let sem = Arc::new(Semaphore::new(32));
    let mut tasks = Vec::with_capacity(n_users);
    for i in 0..n_users {
        let (api, permit) = (api.clone(), sem.clone().acquire_owned().await?);
        tasks.push(tokio::spawn(async move {
            super::budget_bench::connect_user(&api, &format!("bench-{i}"), "oura").await?;
            drop(permit);
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let connected = start.elapsed().as_secs_f64();
    backfills_done(&store, STALL_AFTER, Duration::from_millis(200)).await?;
    let elapsed = start.elapsed().as_secs_f64();
    let (records, events) = store.row_counts().await?;
    gateway.stop().await;
    let name = db.name();
    db.cleanup().await;
    // The pipeline's peak, before the ceiling holds every page at once.
    let peak = peak_memory_mib().unwrap_or(0.0);
    let per_sec = records as f64 / elapsed;
    let ev_sec = events as f64 / elapsed;

    let pages = fixtures.served_pages();
    let (ceiling, ceiling_records) = ingest_ceiling(&database_url, pages).await?;
    let share = if ceiling > 0.0 {
        per_sec / ceiling
    } else {
        0.0
    };
    if as_json {
        println!(
            "{}",
            json!({"database": name, "users": n_users, "days": days, "records": records, "events": events,
                   "seconds": round(elapsed), "connect_seconds": round(connected),
                   "records_per_sec": round(per_sec), "events_per_sec": round(ev_sec), "peak_memory_mib": round(peak),
                   "ceiling_records": ceiling_records, "ceiling_records_per_sec": round(ceiling),
                   "share_of_ceiling": (share * 1000.0).round() / 1000.0})
        );
    } else {
        println!("bench ingest on {name}: {n_users} Oura users x {days} days (sleep, daily activity, workouts)");
        println!("  stored           {records} records, {events} events in {elapsed:.1} s (connect flows {connected:.1} s)");
        println!(
            "  throughput       {per_sec:.0} records/s normalised and stored, {ev_sec:.0} events/s"
        );
        println!("  peak memory      {peak:.0} MiB");
        println!(
            "  ceiling          {ceiling:.0} records/s ({ceiling_records} records: the same pages parsed and stored by plain multi-row inserts, no poller, HTTP or events)"
        );
        println!("  share of ceiling {:.0} %", share * 100.0);
    }
    if ceiling_records != records as u64 {
        eprintln!(
            "warning: the ceiling stored {ceiling_records} records, the pipeline {records}: the figures do not compare the same work"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits until no backfill window is left, looking every `every` (with a query cheap
/// enough not to slow what it watches): an error if any failed, or if none finished
/// for `stall_after` (every commit failing, say: the gateway's warnings say why).
pub(super) async fn backfills_done(
    store: &Store,
    stall_after: Duration,
    every: Duration,
) -> anyhow::Result<()> {
    let (mut pending, mut progress_at) = (i64::MAX, Instant::now());
    loop {
        let left = store.backfill_windows_pending().await?;
        if left == 0 {
            let counts = store.job_counts().await?;
            anyhow::ensure!(
                !counts.contains_key(&(JobKind::Backfill, JobStatus::Failed)),
                "backfill jobs failed: {counts:?}"
            );
            return Ok(());
        }
        if left != pending {
            (pending, progress_at) = (left, Instant::now());
        }
        if progress_at.elapsed() >= stall_after {
            anyhow::bail!(
                "the backfill stalled: no window finished in {} s ({:?}); see the warnings above",
                stall_after.as_secs(),
                store.job_counts().await?
            );
        }
        tokio::time::sleep(every).await;
    }
}

/// Batches of pages the ceiling parses and stores at once: enough that pages are parsed
/// while earlier ones are written.
const CEILING_BATCHES_IN_FLIGHT: usize = 8;

/// The ceiling of `bench ingest`: the data pages the pipeline fetched (`pages`), parsed
/// by the same adapter, each record prepared as a page commit prepares it (stable id,
/// content hash, JSON), and stored with the pipeline's multi-row inserts into the
/// `records` table of a fresh database on the backend `url` names (the same columns and
/// indexes), in transactions of up to a group commit's size. No poller, no HTTP, no
/// record lookups, no events. Returns records/s and the records stored.
async fn ingest_ceiling(
    url: &str,
    pages: Vec<crate::fixture_server::ServedPage>,
) -> anyhow::Result<(f64, u64)> {
    let (db, _) = BenchDb::on(url, true).await?;
    let store = db.store.clone();
    let (team, _) = store.create_team("bench-ceiling").await?;
    // A page fetched again (its job's claim lost, its commit retried) holds nothing
    // new: fetching it again is the pipeline's overhead, and the ceiling stores each
    // page once.
    let mut seen = std::collections::HashSet::new();
    let pages = pages.into_iter().filter(|p| {
        let mut params: Vec<_> = p.params.iter().collect();
        params.sort();
        seen.insert(format!(
            "{} {} {} {params:?}",
            p.provider, p.token, p.resource
        ))
    });
    // One user per connection, as in the pipeline: a connection's pages carry its token.
    let mut users: HashMap<String, Uuid> = HashMap::new();
    let pages: Vec<(Uuid, crate::fixture_server::ServedPage)> = pages
        .map(|p| {
            (
                *users.entry(p.token.clone()).or_insert_with(Uuid::new_v4),
                p,
            )
        })
        .collect();
    // A record on two windows' edge is stored once, as the pipeline stores it: two
    // batches inserting one id would otherwise wait on each other's row lock (and
    // deadlock, on PostgreSQL), slowing the ceiling.
    let stored_ids = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let in_flight = Arc::new(Semaphore::new(CEILING_BATCHES_IN_FLIGHT));
    let start = Instant::now();
    let mut tasks = Vec::new();
    let mut pages = pages.into_iter();
    loop {
        // As many pages as a group commit takes at most.
        let batch: Vec<_> = pages.by_ref().take(crate::store::GROUP_MAX_PAGES).collect();
        if batch.is_empty() {
            break;
        }
        let permit = in_flight.clone().acquire_owned().await?;
        let (store, stored_ids) = (store.clone(), stored_ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut records = Vec::with_capacity(batch.len());
            for (user, page) in batch {
                let p = crate::providers::find(&page.provider).context("a served provider")?;
                // The cursor a page was asked for with: Oura asks for a follow-up page
                // with the `next_token` alone.
                let cursor = page.params.get("next_token").map(String::as_str);
                let parsed = p
                    .adapter
                    .parse_page(page.resource, page.body.as_bytes(), cursor)?;
                records.push(crate::store::NewRecords::new(
                    team.id,
                    user,
                    p.id(),
                    parsed.records,
                ));
            }
            {
                let mut seen = stored_ids.lock().expect("not poisoned");
                for r in &mut records {
                    r.keep_unseen(&mut seen);
                }
            }
            let stored = store.insert_records(&records).await?;
            drop(permit);
            anyhow::Ok(stored)
        }));
    }
    let mut stored = 0;
    for t in tasks {
        stored += t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    db.cleanup().await;
    Ok((
        if secs > 0.0 {
            stored as f64 / secs
        } else {
            0.0
        },
        stored,
    ))
}
