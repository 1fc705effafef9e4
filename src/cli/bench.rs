//! `wearbridge bench deliver`: end-to-end delivery throughput and latency. It starts
//! the gateway and a verifying receiver with K endpoints, publishes N events (as fast as
//! it can, or at `--rate` events/s), and measures publish-to-receipt latency and
//! deliveries per second. Then it drives the same receiver with the same body and
//! concurrency from a plain HTTP client with no database: the ceiling this machine
//! allows, and our share of it.

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
use crate::events::{example_data, Envelope, EventType, Resource};
use crate::receiver::{now_us, Receiver};
use crate::seal::{random_token, Sealer};
use crate::store::{Backend, Store, Target};

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
}

pub async fn run(config: Config, cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Deliver { events, endpoints, rate, json } => deliver(config, events, endpoints, rate, json).await,
    }
}

struct Percentiles {
    p50: f64,
    p99: f64,
    max: f64,
}

fn percentiles(mut v: Vec<f64>) -> Percentiles {
    if v.is_empty() {
        return Percentiles { p50: 0.0, p99: 0.0, max: 0.0 };
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("latencies are finite"));
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    Percentiles { p50: at(0.50), p99: at(0.99), max: *v.last().expect("not empty") }
}

async fn deliver(config: Config, n_events: usize, n_endpoints: usize, rate: u64, as_json: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(n_events > 0 && n_endpoints > 0, "--events and --endpoints must be at least 1");
    let mut config = config.for_loopback();
    let mut scratch: Option<(String, String)> = None;
    let tmp = std::env::temp_dir().join(format!("wearbridge-bench-{}", Uuid::new_v4().simple()));
    if config.database_url.starts_with("postgres") {
        let url = crate::store::create_scratch_postgres(&config.database_url, "wearbridge_bench").await?;
        scratch = Some((config.database_url.clone(), url.clone()));
        config.database_url = url;
    } else if config.database_url == Config::defaults().database_url {
        std::fs::create_dir_all(&tmp)?;
        config.database_url = format!("sqlite://{}", tmp.join("bench.db").display());
    }
    let concurrency = config.delivery_concurrency;
    let store = Store::connect(&config.database_url).await?;
    store.migrate().await?;
    let backend = store.backend();
    let receiver = Receiver::start(false).await?;
    let gateway = Gateway::start_with(config, Sealer::from_master_key(&random_token(32))?, store.clone()).await?;

    let (team, key) = store.create_team("bench").await?;
    let api = ApiClient { http: reqwest::Client::new(), base: gateway.url(), key };
    let mut secret = String::new();
    for k in 0..n_endpoints {
        let path = format!("/bench/{k}");
        let ep = api.post("/v1/webhooks/endpoints", json!({"url": receiver.url(&path), "secret": secret_for(&mut secret)})).await?;
        receiver.set_secret(&path, ep["secret"].as_str().context("secret")?);
    }
    anyhow::ensure!(receiver.wait_for(n_endpoints as u64, Duration::from_secs(30)).await, "test events did not arrive");
    let warmup = receiver.count();

    // Publish.
    let user = Uuid::new_v4();
    let t = EventType::DailyCreated(Resource::Workouts);
    let body_sample = serde_json::to_string(&Envelope::new(Uuid::new_v4(), t, team.id, Some((user, "bench-user".into())), example_data(t, user)))?;
    let mut published_at: HashMap<String, i64> = HashMap::with_capacity(n_events);
    let chunk = if rate == 0 { 200 } else { ((rate / 100).max(1) as usize).min(200) };
    let start = Instant::now();
    let start_us = now_us();
    let mut sent = 0usize;
    while sent < n_events {
        let k = chunk.min(n_events - sent);
        let batch: Vec<Envelope> = (0..k)
            .map(|_| Envelope::new(Uuid::new_v4(), t, team.id, Some((user, "bench-user".into())), example_data(t, user)))
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
    let done = receiver.wait_for(warmup + expected, Duration::from_secs(900)).await;
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
    let per_sec = if elapsed > 0.0 { delivered / elapsed } else { 0.0 };
    let lat = percentiles(latencies);
    let verified_all = receiver.rejected() == 0;
    gateway.stop().await;

    // The ceiling: the same receiver, body and concurrency, no database.
    let ceiling = ceiling(&receiver, &secret, &body_sample, expected as usize, concurrency).await?;
    if let Some((base, url)) = scratch {
        store.close().await;
        crate::store::drop_scratch_postgres(&base, &url).await;
    }
    let _ = std::fs::remove_dir_all(&tmp);

    let db = if backend == Backend::Sqlite { "sqlite" } else { "postgres" };
    let share = if ceiling > 0.0 { per_sec / ceiling } else { 0.0 };
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
        println!("bench deliver on {db}: {n_events} events x {n_endpoints} endpoints{}", if rate > 0 { format!(" at {rate} events/s") } else { String::new() });
        println!("  delivered        {} of {} ({} duplicates), all verified: {}", delivered as u64, expected, duplicates, verified_all);
        println!("  throughput       {per_sec:.0} deliveries/s");
        println!("  latency          p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (publish to receipt)", lat.p50, lat.p99, lat.max);
        println!("  ceiling          {ceiling:.0} requests/s (plain client, same receiver, body, concurrency)");
        println!("  share of ceiling {:.0} %", share * 100.0);
    }
    Ok(if done && verified_all { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// One secret for all bench endpoints, so the ceiling run can sign like them.
fn secret_for(secret: &mut String) -> String {
    if secret.is_empty() {
        *secret = crate::seal::new_webhook_secret();
    }
    secret.clone()
}

async fn ceiling(receiver: &Receiver, secret: &str, body: &str, requests: usize, concurrency: usize) -> anyhow::Result<f64> {
    let path = "/ceiling";
    receiver.set_secret(path, secret);
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).tcp_nodelay(true).build()?;
    let url = receiver.url(path);
    let signer = Arc::new(crate::delivery::signing::Signer::new([secret])?);
    let sem = Arc::new(Semaphore::new(concurrency));
    let body: Arc<str> = body.into();
    let before = receiver.count();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(requests);
    for i in 0..requests {
        let permit = sem.clone().acquire_owned().await?;
        let (client, url, signer, body) = (client.clone(), url.clone(), signer.clone(), body.clone());
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
