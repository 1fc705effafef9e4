//! `wearbridge demo`: the whole flow on this machine, with nothing to set up. A fresh
//! SQLite database in a temporary directory, the gateway on a loopback port, and a local
//! receiver that verifies every signature with the `svix` crate. It creates a team, a
//! user and an endpoint over the real HTTP API, publishes an example of every event
//! type, waits for every delivery, and prints what arrived. Exit status 0 only if every
//! delivery arrived and verified.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};

use crate::app::Gateway;
use crate::config::Config;
use crate::events::EventType;
use crate::receiver::Receiver;
use crate::seal::{random_token, Sealer};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Also write every delivery received (headers, signed content, secret) as JSON
    /// lines to this file, so other Standard Webhooks libraries can check them.
    #[arg(long)]
    capture: Option<PathBuf>,
    /// Keep the demo's temporary directory (database and all) instead of removing it.
    #[arg(long)]
    keep: bool,
}

pub async fn run(config: Config, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("wearbridge-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let mut config = config.for_loopback();
    config.database_url = format!("sqlite://{}", dir.join("wearbridge.db").display());
    let sealer = Sealer::from_master_key(&random_token(32))?;
    let receiver = Receiver::start(true).await?;
    let gateway = Gateway::start(config, sealer).await?;
    println!("Wearbridge demo");
    println!("  database  {}", dir.join("wearbridge.db").display());
    println!("  gateway   {}", gateway.url());
    println!("  receiver  {} (verifies every signature)", receiver.url("/"));

    let (team, key) = gateway.state.store.create_team("Demo team").await?;
    println!("  team      {} ({})", team.name, team.id);
    let api = ApiClient { http: reqwest::Client::new(), base: gateway.url(), key };

    let user = api.post("/v1/user", json!({"client_user_id": "demo-user-1"})).await?;
    let user_id = user["user_id"].as_str().context("user_id")?.to_string();
    let path = "/webhooks/demo";
    let ep = api
        .post("/v1/webhooks/endpoints", json!({"url": receiver.url(path), "description": "demo receiver"}))
        .await?;
    receiver.set_secret(path, ep["secret"].as_str().context("secret")?);
    println!("  endpoint  {} -> {}", ep["id"].as_str().unwrap_or(""), receiver.url(path));

    let types = EventType::all();
    for t in &types {
        api.post("/v1/events/example", json!({"event_type": t.name(), "user_id": user_id})).await?;
    }
    let expected = types.len() as u64 + 1; // + the test event sent on endpoint creation
    let arrived = receiver.wait_for(expected, Duration::from_secs(30)).await;

    let received = receiver.received();
    let mut by_type: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in &received {
        let t = serde_json::from_str::<Value>(&r.body).ok().and_then(|v| v["event_type"].as_str().map(str::to_string)).unwrap_or_default();
        let e = by_type.entry(t).or_default();
        e.0 += 1;
        e.1 += r.verified as u64;
    }
    println!();
    println!("  {:<40} {:>9} {:>9}", "event type", "received", "verified");
    for (t, (n, v)) in &by_type {
        println!("  {t:<40} {n:>9} {v:>9}");
    }
    if let Some(sample) = received.iter().find(|r| r.body.contains("daily.data.workouts.created")) {
        let v: Value = serde_json::from_str(&sample.body)?;
        println!("\n  a delivered payload (webhook-id {}):\n{}", sample.event_id, serde_json::to_string_pretty(&v)?);
    }
    if let Some(path) = &args.capture {
        let secret = ep["secret"].as_str().unwrap_or("");
        let mut f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        for r in &received {
            let line = json!({"secret": secret, "headers": {"webhook-id": r.event_id, "webhook-timestamp": r.timestamp, "webhook-signature": r.signature}, "body": r.body});
            writeln!(f, "{line}")?;
        }
    }
    let verified = receiver.verified();
    let ok = arrived && received.len() as u64 == expected && verified == expected && receiver.rejected() == 0;
    println!(
        "\n  {} of {} deliveries verified in {:.1} s: {}",
        verified,
        expected,
        started.elapsed().as_secs_f64(),
        if ok { "OK" } else { "FAILED" }
    );
    gateway.stop().await;
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// A small client for the gateway's own API.
pub struct ApiClient {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
}

impl ApiClient {
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let resp = self.http.post(format!("{}{}", self.base, path)).bearer_auth(&self.key).json(&body).send().await?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "POST {path} answered {status}: {v}");
        Ok(v)
    }
}
