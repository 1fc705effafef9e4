//! `wearbridge bench budget`: how much of a provider's rate budget the gateway uses, and
//! whether it ever oversteps it, with several processes on one database.
//!
//! The fixture provider server enforces the provider's manifest limits exactly (a
//! sliding count per window, 429 with the provider's headers past it) with every window
//! shortened by `--time-scale`; P `wearbridge serve` processes, given the same time
//! scale (the same code path that enforces the real windows), backfill N users through
//! the real connect flow. It reports the share of the budget used while work remained
//! (over every whole window of the busiest one from the first request to the last), the
//! 429s received, the most requests the server saw in any window against its limit,
//! requests per stored record, and the time to finish against the least the budget
//! allows.

use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio::sync::Semaphore;

use super::bench::{round, BenchDb};
use super::demo::ApiClient;
use crate::config::Config;
use crate::fixture_server::FixtureServer;
use crate::providers::{self, RateScope};
use crate::seal::random_token;

/// How long the benchmark waits without a finished window before it gives up.
const STALL_AFTER: Duration = Duration::from_secs(120);

/// A `wearbridge serve` child process, killed when dropped.
struct Serve {
    child: Child,
    url: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn spawn_serve(
    database_url: &str,
    key: &str,
    fixtures: &str,
    time_scale: f64,
) -> anyhow::Result<Serve> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let exe = std::env::current_exe().context("finding this executable")?;
    let child = Command::new(exe)
        .arg("serve")
        .env("WEARBRIDGE_DATABASE_URL", database_url)
        .env("WEARBRIDGE_SECRET_KEY", key)
        .env("WEARBRIDGE_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("WEARBRIDGE_ALLOW_HTTP", "true")
        .env("WEARBRIDGE_ALLOW_PRIVATE_CIDRS", "127.0.0.0/8")
        .env("WEARBRIDGE_PROVIDERS_BASE_URL", fixtures)
        .env("WEARBRIDGE_RATE_LIMIT_TIME_SCALE", time_scale.to_string())
        .env("WEARBRIDGE_POLL_INTERVAL_MS", "20")
        .env("WEARBRIDGE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting wearbridge serve")?;
    let serve = Serve {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(r) = http.get(format!("{}/health", serve.url)).send().await {
            if r.status().is_success() {
                return Ok(serve);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("wearbridge serve did not become healthy")
}

/// Connects one new user to `provider` through the real flow (link token, the
/// provider's authorize page, the callback), following redirects by hand up to the
/// app's redirect URL, where nothing listens. Returns the new user's id.
pub(super) async fn connect_user(
    api: &ApiClient,
    client_user_id: &str,
    provider: &str,
) -> anyhow::Result<String> {
    let u = api
        .post("/v1/user", json!({"client_user_id": client_user_id}))
        .await?;
    let link = api.post("/v1/link/token", json!({"user_id": u["user_id"], "provider": provider, "redirect_url": "http://127.0.0.1:9/done"})).await?;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut url = link["link_url"].as_str().context("link_url")?.to_string();
    for _ in 0..6 {
        let resp = browser.get(&url).send().await?;
        match resp.headers().get("location").and_then(|l| l.to_str().ok()) {
            Some(next) if next.starts_with("http://127.0.0.1:9/") => {
                anyhow::ensure!(next.contains("state=success"), "connect failed: {next}");
                return Ok(u["user_id"].as_str().context("user_id")?.to_string());
            }
            Some(next) => url = next.to_string(),
            None => anyhow::bail!("the connect flow stopped at {url}"),
        }
    }
    anyhow::bail!("the connect flow did not come back to the app")
}

pub async fn run(
    config: Config,
    provider: String,
    n_users: usize,
    processes: usize,
    time_scale: f64,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        n_users > 0 && processes > 0,
        "--users and --processes must be at least 1"
    );
    anyhow::ensure!(
        time_scale.is_finite() && time_scale > 0.0,
        "--time-scale must be a positive number"
    );
    let p = providers::find(&provider).with_context(|| format!("unknown provider {provider}"))?;
    let fixtures = FixtureServer::start().await?;
    fixtures.enforce_rate_limits(time_scale);
    let mut config = config.for_loopback();
    let db = BenchDb::open(&mut config).await?;
    anyhow::ensure!(
        processes == 1 || db.name() == "postgres",
        "several processes need PostgreSQL (--database-url)"
    );
    let key = random_token(32);
    let mut servers = Vec::with_capacity(processes);
    for _ in 0..processes {
        servers.push(spawn_serve(&config.database_url, &key, &fixtures.root(), time_scale).await?);
    }
    let (_, api_key) = db.store.create_team("bench").await?;
    let started = Instant::now();
    // Users connect through the processes in turn, a few dozen at a time.
    let sem = Arc::new(Semaphore::new(16));
    let mut tasks = Vec::with_capacity(n_users);
    for i in 0..n_users {
        let api = ApiClient {
            http: reqwest::Client::new(),
            base: servers[i % processes].url.clone(),
            key: api_key.clone(),
        };
        let permit = sem.clone().acquire_owned().await?;
        let provider = provider.clone();
        tasks.push(tokio::spawn(async move {
            let r = connect_user(&api, &format!("budget-{i}"), &provider).await;
            drop(permit);
            r.map(drop)
        }));
    }
    for t in tasks {
        t.await??;
    }
    super::bench::backfills_done(&db.store, STALL_AFTER, Duration::from_millis(50)).await?;
    let elapsed = started.elapsed().as_secs_f64();
    drop(servers);
    let (records, _) = db.store.row_counts().await?;
    let name = db.name();
    db.cleanup().await;

    let stats = fixtures.request_stats(p.id());
    let served: Vec<i64> = stats
        .iter()
        .filter(|s| !s.refused)
        .map(|s| s.at_ms)
        .collect();
    let requests = stats.len() as u64;
    let refused = fixtures.refused(p.id());
    // Every app window: the most requests in any stretch of its length, against its
    // limit (the fixture server's own count; it shortens the window itself).
    let app_windows: Vec<_> = p
        .manifest
        .rate_limit
        .windows
        .iter()
        .filter(|w| w.scope == RateScope::App)
        .collect();
    let users_registered = n_users as u64;
    let windows: Vec<serde_json::Value> = app_windows
        .iter()
        .map(|w| {
            let limit = w.limit(users_registered);
            json!({"period_secs": w.period_secs, "limit": limit,
                   "max_in_any_window": fixtures.max_in_any_window(p.id(), Duration::from_secs(w.period_secs))})
        })
        .collect();
    let (first, last) = (
        served.first().copied().unwrap_or(0),
        served.last().copied().unwrap_or(0),
    );
    let scaled_ms = |secs: u64| ((secs as f64 * 1000.0 / time_scale) as i64).max(1);
    // The binding window: the one that allows the fewest requests over this run (a
    // window's worth in each stretch of its length the run spans).
    let binding = app_windows
        .iter()
        .min_by_key(|w| {
            let stretches = ((last - first) / scaled_ms(w.period_secs) + 1) as u64;
            w.limit(users_registered).saturating_mul(stretches)
        })
        .context("the provider has no app-wide limit")?;
    let limit = binding.limit(users_registered);
    let period_ms = scaled_ms(binding.period_secs);
    // Share of the budget used while work remained: over every whole window from the
    // first request to the last, requests served against the limit.
    let whole = ((last - first) / period_ms.max(1)).max(0);
    let share = if whole > 0 {
        let in_whole = served
            .iter()
            .filter(|t| **t < first + whole * period_ms)
            .count() as f64;
        in_whole / (whole as f64 * limit as f64)
    } else {
        f64::NAN
    };
    // The least time the budget allows for these requests: a full window's worth at
    // once, then one more per window.
    let least =
        (served.len() as u64).div_ceil(limit).saturating_sub(1) as f64 * period_ms as f64 / 1000.0;
    let busy = (last - first) as f64 / 1000.0;
    let per_record = served.len() as f64 / records.max(1) as f64;
    let out = json!({
        "database": name, "provider": p.id(), "users": n_users, "processes": processes,
        "time_scale": time_scale, "requests": requests, "served": served.len(), "refused_429": refused,
        "windows": windows, "binding_window_secs": binding.period_secs,
        "budget_share": if share.is_nan() { serde_json::Value::Null } else { json!(round(share)) },
        "records": records, "requests_per_record": round(per_record),
        "seconds": round(elapsed), "busy_seconds": round(busy), "least_seconds": round(least),
    });
    if as_json {
        println!("{out}");
    } else {
        println!(
            "bench budget on {name}: {n_users} {} users, {processes} process(es), windows {time_scale}x shorter",
            p.id()
        );
        println!(
            "  requests         {} served, {refused} refused with 429",
            served.len()
        );
        for w in &windows {
            println!(
                "  window {:>6} s   at most {} in any window, limit {}",
                w["period_secs"], w["max_in_any_window"], w["limit"]
            );
        }
        if share.is_nan() {
            println!("  budget share     (the run was shorter than one window)");
        } else {
            println!(
                "  budget share     {:.1} % of the {} s window's limit while work remained",
                share * 100.0,
                binding.period_secs
            );
        }
        println!("  requests/record  {per_record:.3} ({records} records)");
        println!("  time             {busy:.1} s from first request to last; the budget allows {least:.1} s at best ({elapsed:.1} s in all)");
    }
    Ok(ExitCode::SUCCESS)
}
