//! `wearbridge demo`: the whole flow on this machine, with nothing to set up. A fresh
//! SQLite database in a temporary directory, the gateway on a loopback port, the fixture
//! provider server, and a local receiver that verifies every signature with the `svix`
//! crate. It creates a team, an endpoint and one user per provider over the real HTTP
//! API, walks each provider's connect flow like a browser, runs the backfill and one
//! daily poll over changed data, publishes an example of every event type, waits for
//! every delivery, and prints what arrived. Exit status 0 only if every delivery
//! arrived and verified.

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
use crate::fixture_server::FixtureServer;
use crate::providers;
use crate::receiver::Receiver;
use crate::seal::{random_token, Sealer};
use crate::states::{JobKind, JobStatus};

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

/// How much faster than the providers' real windows the demo's budgets run.
const DEMO_TIME_SCALE: f64 = 60.0;

pub async fn run(config: Config, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let dir =
        std::env::temp_dir().join(format!("wearbridge-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let mut config = config.for_loopback();
    config.database_url = format!("sqlite://{}", dir.join("wearbridge.db").display());
    let sealer = Sealer::from_master_key(&random_token(32))?;
    let receiver = Receiver::start(true).await?;
    let fixtures = FixtureServer::start().await?;
    config.providers_base_url = Some(fixtures.root());
    // The fixture providers answer at once: the gateway's budgets still pace every
    // request, on windows a minute to the second (unless set otherwise), so a year of
    // every resource (Google Health's alone is more than its 300 requests a user-minute)
    // backfills in seconds.
    if config.rate_limit_time_scale == 1.0 {
        config.rate_limit_time_scale = DEMO_TIME_SCALE;
    }
    let gateway = Gateway::start(config, sealer).await?;
    println!("Wearbridge demo");
    println!("  database  {}", dir.join("wearbridge.db").display());
    println!("  gateway   {}", gateway.url());
    println!(
        "  receiver  {} (verifies every signature)",
        receiver.url("/")
    );
    println!(
        "  providers {} (fixture server: {})",
        fixtures.root(),
        providers::registry()
            .iter()
            .map(|p| p.id())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let (team, key) = gateway.state.store.create_team("Demo team").await?;
    println!("  team      {} ({})", team.name, team.id);
    let api = ApiClient {
        http: reqwest::Client::new(),
        base: gateway.url(),
        key,
    };

    let user = api
        .post("/v1/user", json!({"client_user_id": "demo-user-1"}))
        .await?;
    let user_id = user["user_id"].as_str().context("user_id")?.to_string();
    let path = "/webhooks/demo";
    // A secret of our own (the gateway makes one when none is sent), given to the
    // receiver first: the endpoint's test event may arrive before its creation answers.
    let secret = crate::seal::new_webhook_secret();
    receiver.set_secret(path, &secret);
    let ep = api
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": receiver.url(path), "description": "demo receiver", "secret": secret}),
        )
        .await?;
    println!(
        "  endpoint  {} -> {}",
        ep["id"].as_str().unwrap_or(""),
        receiver.url(path)
    );

    // Every provider: a user, the connect flow, the backfill.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(10))
        .build()?;
    let mut provider_users = Vec::new();
    for p in providers::registry() {
        let u = api
            .post(
                "/v1/user",
                json!({"client_user_id": format!("demo-{}", p.id())}),
            )
            .await?;
        let uid = u["user_id"].as_str().context("user_id")?.to_string();
        let link = api.post("/v1/link/token", json!({"user_id": uid, "provider": p.id(), "redirect_url": receiver.url("/app/connected")})).await?;
        let landed = browser
            .get(link["link_url"].as_str().context("link_url")?)
            .send()
            .await?
            .url()
            .clone();
        let ok = landed
            .query_pairs()
            .any(|(k, v)| k == "state" && v == "success");
        println!(
            "  connect   {:<9} {}",
            p.id(),
            if ok { "connected" } else { "FAILED" }
        );
        anyhow::ensure!(ok, "connecting {} failed: {landed}", p.id());
        provider_users.push((p, uid));
    }
    let backfilled = wait_until(Duration::from_secs(45), || async {
        gateway
            .state
            .store
            .job_counts()
            .await
            .map(|c| !c.contains_key(&(JobKind::Backfill, JobStatus::Pending)))
            .unwrap_or(false)
    })
    .await;
    println!(
        "  backfill  {}",
        if backfilled { "complete" } else { "TIMED OUT" }
    );
    // One daily poll over changed data: new and edited records become daily events.
    fixtures.advance_to_changed_data();
    for (_, uid) in &provider_users {
        api.post(&format!("/v1/user/{uid}/refresh"), json!({}))
            .await?;
    }
    let store = gateway.state.store.clone();
    let polled = wait_until(Duration::from_secs(30), || async {
        store.job_counts().await.map(|c| c.get(&(JobKind::Poll, JobStatus::Pending)).copied().unwrap_or(0) > 0).unwrap_or(false)
            // Done when every poll is scheduled a full interval ahead, beyond any claim's lease.
            && store.next_due_poll().await.map(|t| t.is_none_or(|t| t > crate::now_ms() + 600_000)).unwrap_or(false)
    })
    .await;
    println!(
        "  poll      {}",
        if polled { "complete" } else { "TIMED OUT" }
    );

    // Push: a change at a provider that pushes reaches the receiver with no poll due.
    let pushed = push_step(
        &gateway,
        &fixtures,
        &receiver,
        path,
        team.id,
        &provider_users,
    )
    .await;
    match &pushed {
        Ok(line) => println!("  push      {line}"),
        Err(e) => println!("  push      FAILED: {e:#}"),
    }

    let types = EventType::all();
    for t in &types {
        api.post(
            "/v1/events/example",
            json!({"event_type": t.name(), "user_id": user_id}),
        )
        .await?;
    }
    // Every delivery settles: none pending or retrying.
    let settled = wait_until(Duration::from_secs(30), || async {
        store
            .delivery_counts()
            .await
            .map(|c| c.keys().all(|k| !k.is_open()))
            .unwrap_or(false)
    })
    .await;
    let expected = store.delivery_counts().await?.values().sum::<i64>() as u64;
    let arrived = settled && receiver.wait_for(expected, Duration::from_secs(10)).await;

    let received: Vec<_> = receiver
        .received()
        .into_iter()
        .filter(|r| r.path == path)
        .collect();
    for (p, uid) in &provider_users {
        let mut counts = Vec::new();
        for r in &p.manifest.resources {
            // Devices are listed whole; the rest are read over all of history.
            let route = if !r.name.is_history() {
                format!("/v1/{}/{uid}", r.name)
            } else if r.name.is_timeseries() {
                format!("/v1/timeseries/{uid}/{}?start_date=2000-01-01", r.name)
            } else {
                format!("/v1/summary/{}/{uid}?start_date=2000-01-01", r.name)
            };
            let v = api.get(&route).await?;
            let n = v
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(Value::as_array)
                .map(Vec::len)
                .unwrap_or(0);
            counts.push(format!("{} {n}", r.name));
        }
        println!("  records   {:<9} {}", p.id(), counts.join(", "));
    }
    let mut by_type: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in &received {
        let t = serde_json::from_str::<Value>(&r.body)
            .ok()
            .and_then(|v| v["event_type"].as_str().map(str::to_string))
            .unwrap_or_default();
        let e = by_type.entry(t).or_default();
        e.0 += 1;
        e.1 += r.verified as u64;
    }
    println!();
    println!("  {:<40} {:>9} {:>9}", "event type", "received", "verified");
    for (t, (n, v)) in &by_type {
        println!("  {t:<40} {n:>9} {v:>9}");
    }
    if let Some(sample) = received
        .iter()
        .find(|r| r.body.contains("daily.data.workouts.created"))
    {
        let v: Value = serde_json::from_str(&sample.body)?;
        println!(
            "\n  a delivered payload (webhook-id {}):\n{}",
            sample.event_id,
            serde_json::to_string_pretty(&v)?
        );
    }
    if let Some(path) = &args.capture {
        let secret = ep["secret"].as_str().unwrap_or("");
        let mut f =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        for r in &received {
            let line = json!({"secret": secret, "headers": {"webhook-id": r.event_id, "webhook-timestamp": r.timestamp, "webhook-signature": r.signature}, "body": r.body});
            writeln!(f, "{line}")?;
        }
    }
    let verified = received.iter().filter(|r| r.verified).count() as u64;
    let ok = backfilled
        && polled
        && pushed.is_ok()
        && arrived
        && received.len() as u64 == expected
        && verified == expected;
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
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Subscribes to the notifications of one provider that pushes, creates one record at
/// the fixture provider (which notifies), and waits for its `daily.data.<r>.created`
/// webhook at the receiver: what it took, with no poll due.
async fn push_step(
    gateway: &Gateway,
    fixtures: &FixtureServer,
    receiver: &Receiver,
    path: &str,
    team: uuid::Uuid,
    provider_users: &[(&'static providers::Provider, String)],
) -> anyhow::Result<String> {
    use super::push_bench::{subscribe, Template, DEFAULT_PROVIDER};
    let (p, uid) = provider_users
        .iter()
        .find(|(p, _)| p.id() == DEFAULT_PROVIDER && p.manifest.push.is_some())
        .or_else(|| {
            provider_users
                .iter()
                .find(|(p, _)| p.manifest.push.is_some())
        })
        .context("no provider here pushes")?;
    let uid: uuid::Uuid = uid.parse()?;
    let store = &gateway.state.store;
    let external = store
        .user_connections(team, uid)
        .await?
        .into_iter()
        .find(|c| c.provider == p.id())
        .and_then(|c| c.external_user_id)
        .context("the connection names no provider user")?;
    subscribe(p, gateway, fixtures).await?;
    let template = Template::find(p, fixtures)?;
    let new = template.record(p, 0)?;
    let resource = template.resource;
    let id =
        crate::ids::record_id(team, uid, p.id(), resource.as_str(), &new.provider_id).to_string();
    let event_type = format!("daily.data.{}.created", resource.as_str());
    let next_poll = store.next_due_poll().await?;
    let sent = fixtures
        .change(
            p.id(),
            crate::fixture_server::Change {
                user: external,
                resource,
                kind: crate::providers::push::FixtureChangeKind::Created,
                item: Some(new.item),
                record: Some(new.provider_id.clone()),
            },
        )
        .await;
    let first = sent.first().context("the provider sent no notification")?;
    anyhow::ensure!(
        first.status.is_some_and(|s| (200..300).contains(&s)),
        "the notification was answered {:?}",
        first.status
    );
    // The send time on the receiver's clock.
    let sent_us = crate::receiver::now_us() - first.sent_at.elapsed().as_micros() as i64;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let arrived = receiver.received().into_iter().find(|r| {
            r.path == path
                && serde_json::from_str::<Value>(&r.body).is_ok_and(|e| {
                    e["event_type"] == event_type.as_str() && e["data"]["id"] == id.as_str()
                })
        });
        if let Some(r) = arrived {
            let ms = (r.received_at_us - sent_us) as f64 / 1000.0;
            let poll = next_poll
                .map(|t| {
                    format!(
                        "; the next poll is due in {} min",
                        (t - crate::now_ms()) / 60_000
                    )
                })
                .unwrap_or_default();
            return Ok(format!(
                "{:<9} a new {} record {} at the provider reached the receiver as {event_type} in {ms:.0} ms after its notification{poll}",
                p.id(),
                resource.as_str(),
                new.provider_id
            ));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no {event_type} for record {} within 20 s of the notification",
            new.provider_id
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A small client for the gateway's own API.
pub struct ApiClient {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
}

async fn wait_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

impl ApiClient {
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .get(format!("{}{}", self.base, path))
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "GET {path} answered {status}: {v}");
        Ok(v)
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let resp = self
            .http
            .post(format!("{}{}", self.base, path))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "POST {path} answered {status}: {v}");
        Ok(v)
    }
}
