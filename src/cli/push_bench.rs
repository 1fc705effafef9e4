//! `wearbridge bench push`: from a provider's notification to the app's webhook. N users
//! connect a provider that pushes through the real connect flow and are backfilled; the
//! app's subscription is made (through the provider's API, or as a developer registers
//! it in the provider's console); then the fixture provider creates R new records a
//! second, round-robin over the users, and sends its signed notification about each.
//! Every notification is matched to the `daily.data.<resource>.created` event of the
//! very record it named (the record's stable id), and the latency runs from the
//! notification leaving the provider to that webhook arriving at the receiver. With it:
//! provider data requests per notification and the provider's 429s while its documented
//! limits are enforced (the gateway pays for its pulls from its budget).
//!
//! The new records are made generically from the data the fixture provider serves: an
//! item of the resource is cloned, the provider id the adapter reads from it is found
//! (served and parsed as the gateway would) and replaced wherever it appears (as a value,
//! or a segment of a resource name such as Google's `…/dataPoints/{id}`), and its times
//! are moved to today, inside the pull window.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::bench::{backfills_done, round, BenchDb};
use super::budget_bench::connect_user;
use super::demo::ApiClient;
use crate::app::Gateway;
use crate::config::Config;
use crate::events::Resource;
use crate::fixture_server::{Change, FixtureServer};
use crate::providers::push::{FixtureChangeKind, SubscriptionManagement, SubscriptionScope};
use crate::providers::{self, Provider, RateScope, Window};
use crate::receiver::{now_us, Receiver};
use crate::seal::{random_token, Sealer};

/// The provider `bench push` measures unless told: of the providers that push here,
/// the one whose documented limits carry the most notifications, and the only one whose
/// limits carry 100 a second (Google Health: 300 requests a minute per user and 120,000
/// per project; WHOOP: 100 a minute per app; Strava: 100 reads per 15 minutes).
pub const DEFAULT_PROVIDER: &str = "google_health";

/// How far apart in time the bench's new records lie: more than a pull's range around
/// one, widened by the most a zone's offset can add either way (Google filters on civil
/// times: 14 h before, 12 h after, fixtures/google_health/README.md).
const RECORD_SPACING_SECS: i64 = 27 * 3600;

/// How long the bench waits for the next matching webhook before it gives up on the
/// rest.
const STALL_AFTER: Duration = Duration::from_secs(90);

pub struct PushBench {
    pub provider: String,
    pub users: usize,
    pub rate: u64,
    pub seconds: u64,
    pub time_scale: f64,
    pub json: bool,
}

/// A new record for the fixture provider to create: its item and the provider id the
/// adapter reads from it.
#[derive(Debug, Clone)]
pub(super) struct NewRecord {
    pub(super) item: Value,
    pub(super) provider_id: String,
}

/// What new records of `p` are made from: a resource its notifications touch whose
/// fixture data has an item, that item, and the provider id the adapter reads from it.
pub(super) struct Template {
    pub(super) resource: Resource,
    item: Value,
    provider_id: String,
}

impl Template {
    /// The first resource `p`'s notifications name that it serves an item of.
    pub(super) fn find(p: &'static Provider, fixtures: &FixtureServer) -> anyhow::Result<Self> {
        let push = p
            .manifest
            .push
            .as_ref()
            .with_context(|| format!("{} sends no notifications", p.id()))?;
        let mut tried = Vec::new();
        for r in push.notifications.iter().flat_map(|n| n.resources.iter()) {
            if tried.contains(r) || p.resource(*r).is_none() {
                continue;
            }
            tried.push(*r);
            // The newest item, most like what a user adds next.
            for item in fixtures.served_items(p.id(), *r).into_iter().rev() {
                if let Some(id) = provider_id_of(p, *r, &item) {
                    return Ok(Template {
                        resource: *r,
                        item,
                        provider_id: id,
                    });
                }
            }
        }
        anyhow::bail!(
            "{} serves no item of a resource its notifications name ({tried:?}) whose provider id its adapter reads",
            p.id()
        )
    }

    /// The `n`th new record: the template with a new provider id wherever the old one
    /// appears, its times moved so the newest is today, then `n` times
    /// [`RECORD_SPACING_SECS`] earlier, so that no two records share a pull's range.
    /// (The fixture provider serves one data set to every user, so a pull over a range
    /// reads every bench record in it, whichever user it was made for; a notification
    /// that names only a user, a data type and an interval, as Google's does, is pulled
    /// over that interval, which Google's civil-time filters widen by a day.)
    pub(super) fn record(&self, p: &'static Provider, n: u64) -> anyhow::Result<NewRecord> {
        use crate::fixture_server::shift_item_times;
        let new_id = fresh_id(&self.provider_id, n);
        let mut item = self.item.clone();
        replace_id(&mut item, &self.provider_id, &new_id);
        let today = chrono::Utc::now().date_naive();
        if let Some(newest) = newest_day(&item) {
            let days = (today - newest).num_days();
            if days > 0 {
                shift_item_times(p.id(), &mut item, chrono::Duration::days(days));
            }
        }
        let earlier = i64::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(RECORD_SPACING_SECS))
            .context("too many records")?;
        shift_item_times(p.id(), &mut item, chrono::Duration::seconds(-earlier));
        let read = provider_id_of(p, self.resource, &item);
        anyhow::ensure!(
            read.as_deref() == Some(new_id.as_str()),
            "{}: the new item reads as {read:?}, not {new_id}",
            p.id()
        );
        Ok(NewRecord {
            item,
            provider_id: new_id,
        })
    }
}

/// The provider id `p`'s adapter reads from `item` of `resource`: the item served as
/// the provider's reply to the gateway's own request and parsed as the gateway would,
/// or read as a single-record reply. Only an id that appears in the item as a value.
fn provider_id_of(p: &'static Provider, resource: Resource, item: &Value) -> Option<String> {
    let spec = p.resource(resource)?;
    let now = chrono::Utc::now();
    let window = Window {
        start: now - chrono::Duration::days(3650),
        end: now + chrono::Duration::days(2),
    };
    let req = p.adapter.page_request(spec, &window, None);
    let params: HashMap<String, String> =
        req.query.iter().chain(req.form.iter()).cloned().collect();
    let items = std::slice::from_ref(item);
    let mut found: Vec<String> = Vec::new();
    if let Ok(reply) = p.impersonation.serve_at(&req.path, spec, &params, items) {
        if let Ok(page) = p
            .adapter
            .parse_page(resource, reply.to_string().as_bytes(), None)
        {
            found.extend(page.records.into_iter().map(|r| r.provider_id));
        }
    }
    if found.is_empty() {
        if let Ok(page) = p
            .adapter
            .parse_record(resource, item.to_string().as_bytes())
        {
            found.extend(page.records.into_iter().map(|r| r.provider_id));
        }
    }
    found.into_iter().find(|id| appears(item, id))
}

/// Whether `id` is in `v`: a value itself, or one segment of a `/`-separated name
/// (Google's `users/me/dataTypes/exercise/dataPoints/{id}`, from which its adapter
/// reads the id).
fn appears(v: &Value, id: &str) -> bool {
    match v {
        Value::String(s) => s == id || s.split('/').any(|seg| seg == id),
        Value::Number(n) => n.to_string() == id,
        Value::Array(a) => a.iter().any(|x| appears(x, id)),
        Value::Object(m) => m.values().any(|x| appears(x, id)),
        _ => false,
    }
}

/// A new id in the old one's form: a number stays a number, a UUID a UUID.
fn fresh_id(old: &str, n: u64) -> String {
    if old.parse::<u64>().is_ok() {
        // Far above the recorded ids, and distinct per record.
        (8_000_000_000_000u64 + n).to_string()
    } else if Uuid::parse_str(old).is_ok() {
        Uuid::new_v5(
            &Uuid::NAMESPACE_OID,
            format!("bench push {old} {n}").as_bytes(),
        )
        .to_string()
    } else {
        format!("{old}-push-{n}")
    }
}

/// Replaces `old` wherever [`appears`] finds it.
fn replace_id(v: &mut Value, old: &str, new: &str) {
    match v {
        Value::String(s) if s == old => *s = new.to_string(),
        Value::String(s) if s.split('/').any(|seg| seg == old) => {
            *s = s
                .split('/')
                .map(|seg| if seg == old { new } else { seg })
                .collect::<Vec<_>>()
                .join("/");
        }
        Value::Number(n) if n.to_string() == old => {
            *v = new
                .parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(new));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| replace_id(x, old, new)),
        Value::Object(m) => m.values_mut().for_each(|x| replace_id(x, old, new)),
        _ => {}
    }
}

/// The latest day any date or instant in `v` names.
fn newest_day(v: &Value) -> Option<chrono::NaiveDate> {
    match v {
        Value::String(s) => {
            if s.len() == 10 {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
            } else if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                Some(t.with_timezone(&chrono::Utc).date_naive())
            } else {
                s.get(..19)
                    .and_then(|h| {
                        chrono::NaiveDateTime::parse_from_str(h, "%Y-%m-%dT%H:%M:%S").ok()
                    })
                    .map(|t| t.date())
            }
        }
        Value::Array(a) => a.iter().filter_map(newest_day).max(),
        Value::Object(m) => m.values().filter_map(newest_day).max(),
        _ => None,
    }
}

/// Makes the app's subscription to `p`'s notifications at `gateway`'s callback: through
/// the provider's API (which checks the callback first), or registered as a developer
/// does in the provider's console. Per-user subscriptions were made on connect.
pub(super) async fn subscribe(
    p: &'static Provider,
    gateway: &Gateway,
    fixtures: &FixtureServer,
) -> anyhow::Result<()> {
    let push = p
        .manifest
        .push
        .as_ref()
        .with_context(|| format!("{} sends no notifications", p.id()))?;
    let subscriber = &gateway.state.subscriber;
    match (push.subscription.scope, push.subscription.managed) {
        (SubscriptionScope::App, SubscriptionManagement::Api) => {
            let made = subscriber.subscribe_app(p).await?;
            for s in &made {
                anyhow::ensure!(
                    s.status == "active",
                    "{}'s subscription is {}: {:?}",
                    p.id(),
                    s.status,
                    s.error
                );
            }
        }
        (_, SubscriptionManagement::Console) => {
            // With the secret the provider sends back (Google's subscriber secret); the
            // provider checks the callback first where it does (Google).
            anyhow::ensure!(
                fixtures
                    .register_console_subscriber(
                        p.id(),
                        &subscriber.callback_url(p),
                        &subscriber.console_secret(p),
                    )
                    .await,
                "{}'s check of the callback failed",
                p.id()
            );
        }
        (SubscriptionScope::User, SubscriptionManagement::Api) => {}
    }
    Ok(())
}

/// The notifications a second `p`'s documented limits carry over a run of `secs`
/// seconds for `users` users when each costs one request, with every window
/// `time_scale` times shorter: the window that allows the fewest requests over the run
/// (a window's worth in each stretch of its length the run spans) binds.
fn budget_per_sec(p: &Provider, users: u64, time_scale: f64, secs: f64) -> Option<f64> {
    p.manifest
        .rate_limit
        .windows
        .iter()
        .map(|w| {
            let period = w.period_secs as f64 / time_scale;
            let stretches = (secs / period).floor() + 1.0;
            let limit = w.limit(users) as f64
                * match w.scope {
                    RateScope::App => 1.0,
                    RateScope::User => users as f64,
                };
            limit * stretches / secs
        })
        .min_by(|a, b| a.total_cmp(b))
}

pub async fn run(config: Config, args: PushBench) -> anyhow::Result<ExitCode> {
    let PushBench {
        provider,
        users: n_users,
        rate,
        seconds,
        time_scale,
        json: as_json,
    } = args;
    anyhow::ensure!(
        n_users > 0 && rate > 0 && seconds > 0,
        "--users, --rate and --seconds must be at least 1"
    );
    anyhow::ensure!(
        time_scale.is_finite() && time_scale > 0.0,
        "--time-scale must be a positive number"
    );
    let p = providers::find(&provider).with_context(|| format!("unknown provider {provider}"))?;
    anyhow::ensure!(
        p.manifest.push.is_some(),
        "{provider} sends no notifications; providers that do: {}",
        providers::registry()
            .iter()
            .filter(|p| p.manifest.push.is_some())
            .map(|p| p.id())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let fixtures = FixtureServer::start().await?;
    let template = Template::find(p, &fixtures)?;
    let resource = template.resource;
    let total = rate * seconds;
    let records = (0..total)
        .map(|n| template.record(p, n))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let mut config = config.for_loopback();
    config.providers_base_url = Some(fixtures.root());
    // Subscriptions are made here, once.
    config.push_subscribe = false;
    // One address for both gateways below, so the callback (and any subscription made
    // on connect) stays the same.
    config.listen_addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let db = BenchDb::open(&mut config).await?;
    let store = db.store.clone();
    let sealer = Sealer::from_master_key(&random_token(32))?;
    let receiver = Receiver::start(true).await?;

    // Setup: connect and backfill every user with the provider's limits off on both
    // sides, so the setup does not take the provider's budget's time.
    let setup_started = Instant::now();
    let mut setup = config.clone();
    setup.provider_rate_limits = false;
    setup.poller_concurrency = setup.poller_concurrency.max(32);
    let gateway = Gateway::start_with(setup, sealer.clone(), store.clone()).await?;
    let (team, key) = store.create_team("bench-push").await?;
    let api = Arc::new(ApiClient {
        http: reqwest::Client::new(),
        base: gateway.url(),
        key,
    });
    let sem = Arc::new(Semaphore::new(16));
    let mut tasks = Vec::with_capacity(n_users);
    for i in 0..n_users {
        let (api, permit) = (api.clone(), sem.clone().acquire_owned().await?);
        let provider = p.id().to_string();
        tasks.push(tokio::spawn(async move {
            let r = connect_user(&api, &format!("push-{i}"), &provider).await;
            drop(permit);
            r
        }));
    }
    let mut user_ids = Vec::with_capacity(n_users);
    for t in tasks {
        user_ids.push(t.await??.parse::<Uuid>()?);
    }
    backfills_done(&store, Duration::from_secs(60), Duration::from_millis(100)).await?;
    gateway.stop().await;
    // Each user as the provider names it in its notifications.
    let mut users = Vec::with_capacity(n_users);
    for u in &user_ids {
        let conns = store.user_connections(team.id, *u).await?;
        let external = conns
            .iter()
            .find(|c| c.provider == p.id())
            .and_then(|c| c.external_user_id.clone())
            .with_context(|| format!("the {} connection of {u} names no provider user", p.id()))?;
        users.push((*u, external));
    }
    let setup_secs = setup_started.elapsed().as_secs_f64();
    settle_writes(&store).await;

    // The measured gateway: the provider's budget paid for as in production, with the
    // fixture provider enforcing the same limits.
    let mut measured = config.clone();
    measured.provider_rate_limits = true;
    measured.rate_limit_time_scale = time_scale;
    let gateway = Gateway::start_with(measured, sealer, store.clone()).await?;
    let path = "/bench/push";
    let secret = crate::seal::new_webhook_secret();
    receiver.set_secret(path, &secret);
    let created = format!("daily.data.{}.created", resource.as_str());
    // (The same address as the setup gateway's: `api` reaches this one.)
    api.post(
        "/v1/webhooks/endpoints",
        json!({"url": receiver.url(path), "secret": secret, "event_types": [created]}),
    )
    .await?;
    subscribe(p, &gateway, &fixtures).await?;

    // The measured phase.
    fixtures.enforce_rate_limits(time_scale);
    let requests_before = fixtures.data_requests(p.id());
    let refused_before = fixtures.refused(p.id());
    let expected: HashMap<String, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (user, _) = &users[i % n_users];
            let id =
                crate::ids::record_id(team.id, *user, p.id(), resource.as_str(), &r.provider_id);
            (id.to_string(), i)
        })
        .collect();
    let base = (Instant::now(), now_us());
    let at_us = |t: Instant| base.1 + t.saturating_duration_since(base.0).as_micros() as i64;
    let started = Instant::now();
    let mut sends = Vec::with_capacity(records.len());
    for (i, r) in records.into_iter().enumerate() {
        let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let change = Change {
            user: users[i % n_users].1.clone(),
            resource,
            kind: FixtureChangeKind::Created,
            item: Some(r.item),
            record: Some(r.provider_id),
        };
        let fixtures = fixtures.clone();
        let id = p.id();
        sends.push(tokio::spawn(
            async move { fixtures.change(id, change).await },
        ));
    }
    let send_secs = started.elapsed().as_secs_f64();
    let mut sent_at: Vec<Option<i64>> = vec![None; sends.len()];
    let (mut sent, mut acked) = (0u64, 0u64);
    for (i, s) in sends.into_iter().enumerate() {
        for push in s.await? {
            sent += 1;
            if push.status.is_some_and(|s| (200..300).contains(&s)) {
                acked += 1;
            }
            // The first time a notification about it left.
            sent_at[i] =
                Some(sent_at[i].map_or(at_us(push.sent_at), |t| t.min(at_us(push.sent_at))));
        }
    }

    // Every matching webhook, first arrival of each.
    let mut arrived: HashMap<usize, i64> = HashMap::new();
    let (mut seen, mut read, mut progress_at) = (0u64, 0usize, Instant::now());
    while arrived.len() < expected.len() && progress_at.elapsed() < STALL_AFTER {
        let count = receiver.count();
        if count != seen {
            seen = count;
            let before = arrived.len();
            // Only what came since the last look: the receiver shares the machine (and
            // the runtime) with the gateway being measured.
            let new = receiver.received_after(read);
            read += new.len();
            for r in new {
                if r.path != path {
                    continue;
                }
                let Ok(e) = serde_json::from_str::<Value>(&r.body) else {
                    continue;
                };
                if e["event_type"] != created.as_str() {
                    continue;
                }
                if let Some(i) = e["data"]["id"].as_str().and_then(|id| expected.get(id)) {
                    arrived
                        .entry(*i)
                        .and_modify(|t| *t = (*t).min(r.received_at_us))
                        .or_insert(r.received_at_us);
                }
            }
            if arrived.len() > before {
                progress_at = Instant::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained_secs = started.elapsed().as_secs_f64();
    let requests = fixtures.data_requests(p.id()) - requests_before;
    let refused = fixtures.refused(p.id()) - refused_before;
    let verified_all = receiver.rejected() == 0;
    gateway.stop().await;
    let name = db.name();
    db.cleanup().await;

    let latencies: Vec<f64> = arrived
        .iter()
        .filter_map(|(i, at)| sent_at[*i].map(|t| (at - t) as f64 / 1000.0))
        .collect();
    let matched = latencies.len() as u64;
    let lat = super::bench::percentiles(latencies);
    let per_notification = requests as f64 / sent.max(1) as f64;
    let budget = budget_per_sec(p, n_users as u64, time_scale, seconds as f64);
    // The last send left (total - 1) / rate seconds after the first.
    let sent_rate = if total > 1 {
        (total - 1) as f64 / send_secs.max(1e-9)
    } else {
        rate as f64
    };
    let share = budget.map(|b| rate as f64 / b);
    if as_json {
        println!(
            "{}",
            json!({
                "database": name, "provider": p.id(), "resource": resource.as_str(),
                "users": n_users, "rate": rate, "seconds": seconds, "time_scale": time_scale,
                "notifications": total, "sent": sent, "acknowledged": acked, "matched": matched,
                "sent_per_sec": round(sent_rate),
                "p50_ms": round(lat.p50), "p99_ms": round(lat.p99), "max_ms": round(lat.max),
                "data_requests": requests, "requests_per_notification": (per_notification * 1000.0).round() / 1000.0,
                "refused_429": refused, "all_verified": verified_all,
                "provider_budget_per_sec": budget.map(round),
                "share_of_budget": share.map(|s| (s * 1000.0).round() / 1000.0),
                "setup_seconds": round(setup_secs), "drain_seconds": round(drained_secs),
            })
        );
    } else {
        println!(
            "bench push on {name}: {n_users} {} users, {rate} notifications/s for {seconds} s (new {})",
            p.id(),
            resource.as_str()
        );
        println!(
            "  notifications    {total} made, {sent} sent ({sent_rate:.0}/s), {acked} acknowledged"
        );
        println!(
            "  matched          {matched} of {total} webhooks (daily.data.{}.created of the very record), all verified: {verified_all}",
            resource.as_str()
        );
        println!(
            "  latency          p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (notification sent to webhook received)",
            lat.p50, lat.p99, lat.max
        );
        println!(
            "  provider         {requests} data requests ({per_notification:.2} per notification), {refused} refused with 429"
        );
        if let (Some(b), Some(s)) = (budget, share) {
            println!(
                "  provider budget  {b:.1} requests/s{} (the rate is {:.0} % of it)",
                if time_scale == 1.0 {
                    " over this run at its documented limits".to_string()
                } else {
                    format!(" over this run with its windows {time_scale}x shorter")
                },
                s * 100.0
            );
        }
        println!(
            "  time             setup {setup_secs:.1} s (connect and backfill), measured {drained_secs:.1} s"
        );
    }
    Ok(if matched == total && acked == total && verified_all {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Puts the setup's writes on disk before the measured phase: the backfill writes
/// hundreds of megabytes, which the kernel (and PostgreSQL's checkpointer) would
/// otherwise write back during the measured seconds, stalling their commits behind
/// work that is not theirs. Best effort: a database user that may not `CHECKPOINT`
/// (superusers and `pg_checkpoint` may) still gets the kernel's flush.
async fn settle_writes(store: &crate::store::Store) {
    if let Err(e) = store.checkpoint().await {
        eprintln!("note: no CHECKPOINT before measuring ({e}); the setup's writes may still be written back during it");
    }
    let _ = tokio::task::spawn_blocking(|| std::process::Command::new("sync").status()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Google's data points carry their id as the last segment of `name` only: a new
    /// record gets a new id there, and the adapter reads that id back; records made
    /// from one template do not share their times.
    #[tokio::test]
    async fn a_new_google_data_point_reads_back_with_its_new_id_and_times_of_its_own() {
        let p = providers::find("google_health").unwrap();
        let fixtures = FixtureServer::start().await.unwrap();
        let template = Template::find(p, &fixtures).unwrap();
        assert_eq!(template.resource, Resource::Workouts);
        let (a, b) = (
            template.record(p, 1).unwrap(),
            template.record(p, 2).unwrap(),
        );
        assert_ne!(a.provider_id, b.provider_id);
        let name = a.item["name"].as_str().unwrap();
        assert!(
            name.ends_with(&format!("/dataPoints/{}", a.provider_id)),
            "{name}"
        );
        assert_ne!(
            a.item["exercise"]["interval"], b.item["exercise"]["interval"],
            "records differ in time"
        );
        let mut v = json!({"name": "users/me/dataTypes/x/dataPoints/17", "n": 17, "other": "a17"});
        assert!(appears(&v, "17"));
        replace_id(&mut v, "17", "18");
        assert_eq!(
            v,
            json!({"name": "users/me/dataTypes/x/dataPoints/18", "n": 18, "other": "a17"})
        );
    }
}
