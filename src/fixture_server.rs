//! The fixture provider server: a real HTTP server that plays every registered provider
//! from its recorded responses (`fixtures/<id>/`), so the whole product runs, and is
//! tested, with no network. It serves each provider's OAuth authorize and token
//! endpoints (its real reply shapes, refresh included, single-use codes and rotating
//! refresh tokens) and its data endpoints at their real paths, with the real date
//! parameters and paging (each provider's [`Impersonation`](providers::Impersonation)). Faults can be injected per
//! provider: a 401 once, a 429 with `Retry-After`, a 500, a slow answer, malformed JSON,
//! denied consent, a refused refresh.
//!
//! Rate limits, off by default, are enforced with [`FixtureServer::enforce_rate_limits`]:
//! every data request (token requests aside) counts in each window of the provider's
//! manifest, per app or per user, exactly over a sliding window, and past a limit the
//! provider's own refusal is sent with its documented headers, as are its usage headers
//! on every reply. The server keeps every data request's time and status for benchmarks
//! and tests ([`FixtureServer::max_in_any_window`], [`FixtureServer::refused`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use axum::Router;
use serde_json::Value;

mod push;

pub use push::{Change, PushFault, PushSent};

use crate::clock::Clock;
use crate::events::Resource;
use crate::providers::{self, Provider, RateScope, WindowCount};

/// A fault to inject into the next data request to a provider.
#[derive(Debug, Clone)]
pub enum Fault {
    Unauthorized,
    RateLimited { retry_after_secs: u64 },
    ServerError,
    Slow(Duration),
    Malformed,
}

#[derive(Default)]
struct FixtureState {
    codes: Mutex<HashMap<String, String>>,
    access: Mutex<HashSet<String>>,
    refresh: Mutex<HashSet<String>>,
    /// The user each access and refresh token was granted to: a code exchange is a new
    /// user, a refresh keeps its token's user. Per-user rate limits count by it.
    token_users: Mutex<HashMap<String, u64>>,
    faults: Mutex<HashMap<String, VecDeque<Fault>>>,
    deny_consent: AtomicBool,
    /// Show the consent page (for a browser) instead of approving at once.
    consent_screen: AtomicBool,
    refuse_refresh: AtomicBool,
    changed: AtomicBool,
    requests: Mutex<Vec<String>>,
    /// Statuses the token endpoint answers its next requests with (a provider outage).
    token_faults: Mutex<VecDeque<u16>>,
    /// Tokens granted so far (code exchanges and refreshes).
    grants: std::sync::atomic::AtomicUsize,
    /// Users granted a token by code exchange so far.
    users: std::sync::atomic::AtomicU64,
    /// Per provider, users connected so far; and each user's place among its
    /// provider's (the first keeps the recorded user id, see [`as_user`]).
    provider_users: Mutex<HashMap<String, u64>>,
    ordinals: Mutex<HashMap<u64, u64>>,
    /// Data sets that replace a provider's fixture files (the ingest benchmark's).
    items: Mutex<HashMap<(String, Resource), DataSet>>,
    /// Per provider, the users registered through calls like Polar's `POST /v3/users`.
    registered: Mutex<HashMap<String, HashSet<String>>>,
    /// Per provider, its transactions (Polar's physical information).
    transactions: Mutex<HashMap<String, providers::FixtureTransactions>>,
    /// The server's time: request times, windows and the `Date` of rate-limited replies.
    clock: Mutex<Clock>,
    limits: Mutex<Limits>,
    /// The data pages served since [`FixtureServer::keep_pages`], when it was called.
    kept: Mutex<Option<Vec<PageAsked>>>,
    /// Since [`FixtureServer::cache_pages`]: each data page's reply, by provider, path
    /// and parameters, with the data set it was made from (a changed data set is
    /// another `Arc`, so its pages are made anew).
    page_cache: Mutex<Option<HashMap<String, CachedPage>>>,
    /// Subscriptions, faults and sent notifications (see `push`).
    push: Mutex<push::PushState>,
    /// Held while a change is applied to a data set (see `push`).
    push_apply: Mutex<()>,
    /// Sends notifications and handshakes to callbacks.
    http: reqwest::Client,
}

/// Rate-limit enforcement and the request statistics.
#[derive(Default)]
struct Limits {
    /// `None` while enforcement is off; otherwise how many times shorter every window is.
    time_scale: Option<f64>,
    /// Per provider, manifest window index and user (`None` for an app window): the
    /// times (ms) of the requests the window holds, oldest first.
    counted: HashMap<(String, usize, Option<u64>), VecDeque<i64>>,
    /// Per provider, every data request seen, in arrival order.
    log: HashMap<String, Vec<RequestStat>>,
}

/// One data request as the server saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestStat {
    /// When it arrived, ms since the epoch on the server's clock.
    pub at_ms: i64,
    /// The HTTP status answered (Withings' refusals are 200s).
    pub status: u16,
    /// Refused by the rate limits.
    pub refused: bool,
}

/// What the limits made of one request.
struct Admission {
    windows: Vec<WindowCount>,
    refused: Option<usize>,
    now_ms: i64,
}

impl Limits {
    fn scaled_ms(&self, period: Duration) -> i64 {
        let scale = self.time_scale.unwrap_or(1.0);
        ((period.as_secs_f64() * 1000.0 / scale).round() as i64).max(1)
    }

    /// Counts a request from `user` to `p` at `now_ms`: refused if any window already holds
    /// its limit (at most `limit` requests in any closed interval of the window's length),
    /// otherwise counted in every window. `None` while enforcement is off.
    fn admit(&mut self, p: &Provider, user: u64, users: u64, now_ms: i64) -> Option<Admission> {
        self.time_scale?;
        let windows = &p.manifest.rate_limit.windows;
        let key = |i: usize, w: &providers::RateWindow| {
            let who = (w.scope == RateScope::User).then_some(user);
            (p.id().to_string(), i, who)
        };
        let periods: Vec<i64> = windows
            .iter()
            .map(|w| self.scaled_ms(Duration::from_secs(w.period_secs)))
            .collect();
        let mut refused = None;
        for (i, w) in windows.iter().enumerate() {
            let held = self.counted.entry(key(i, w)).or_default();
            while held.front().is_some_and(|t| *t < now_ms - periods[i]) {
                held.pop_front();
            }
            if refused.is_none() && held.len() as u64 >= w.limit(users) {
                refused = Some(i);
            }
        }
        for (i, w) in windows.iter().enumerate() {
            let counts = match refused {
                None => true,
                Some(r) => p.impersonation.refusal_counts(&windows[r], w),
            };
            if counts {
                self.counted.entry(key(i, w)).or_default().push_back(now_ms);
            }
        }
        let windows = windows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let held = &self.counted[&key(i, w)];
                let limit = w.limit(users);
                let used = held.len() as u64;
                // The request whose leaving makes room for one more (or the oldest).
                let reset_ms = held
                    .get(used.saturating_sub(limit) as usize)
                    .map_or(0, |t| t + periods[i] + 1 - now_ms);
                WindowCount {
                    window: *w,
                    limit,
                    used,
                    reset_secs: (reset_ms.max(0) as u64).div_ceil(1000),
                }
            })
            .collect();
        Some(Admission {
            windows,
            refused,
            now_ms,
        })
    }
}

/// A data page as it was asked for: enough to serve it again.
struct PageAsked {
    provider: String,
    path: String,
    token: String,
    params: HashMap<String, String>,
}

/// A data page the server answered with 200, served again by
/// [`FixtureServer::served_pages`].
#[derive(Debug, Clone)]
pub struct ServedPage {
    pub provider: String,
    pub resource: Resource,
    /// The access token it was served to: one per connection (until a refresh).
    pub token: String,
    /// The request's query (and form or JSON) parameters.
    pub params: HashMap<String, String>,
    /// The reply body.
    pub body: String,
}

#[derive(Clone)]
pub struct FixtureServer {
    pub addr: SocketAddr,
    state: Arc<FixtureState>,
}

impl FixtureServer {
    pub async fn start() -> anyhow::Result<FixtureServer> {
        let state = Arc::new(FixtureState::default());
        let app = Router::new()
            .route("/{provider}/oauth/authorize", get(authorize))
            .route("/{provider}/oauth/authorize/decision", get(decision))
            .route("/{provider}/oauth/token", post(token))
            .route("/{provider}/{*path}", any(data))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FixtureServer { addr, state })
    }

    /// The root to give the gateway as `WEARBRIDGE_PROVIDERS_BASE_URL`.
    pub fn root(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn inject(&self, provider: &str, fault: Fault) {
        self.state
            .faults
            .lock()
            .unwrap()
            .entry(provider.to_string())
            .or_default()
            .push_back(fault);
    }

    /// From now on the consent screen denies (or, with false, grants).
    pub fn deny_consent(&self, deny: bool) {
        self.state.deny_consent.store(deny, Ordering::SeqCst);
    }

    /// From now on the authorize endpoint shows a consent page with Allow and Deny
    /// buttons, as a real provider does, instead of approving at once (what a scripted
    /// client that always clicks Allow would see). Browser tests turn it on.
    pub fn show_consent_screen(&self, show: bool) {
        self.state.consent_screen.store(show, Ordering::SeqCst);
    }

    /// From now on refresh tokens are refused with `invalid_grant`.
    pub fn refuse_refresh(&self, refuse: bool) {
        self.state.refuse_refresh.store(refuse, Ordering::SeqCst);
    }

    /// The token endpoint answers its next `times` requests with `status` (e.g. 503),
    /// spending nothing: a transient outage, after which the same refresh token works.
    pub fn fail_token_requests(&self, status: u16, times: usize) {
        self.state
            .token_faults
            .lock()
            .unwrap()
            .extend(std::iter::repeat_n(status, times));
    }

    /// Token-endpoint faults not yet served.
    pub fn pending_token_faults(&self) -> usize {
        self.state.token_faults.lock().unwrap().len()
    }

    /// Tokens granted so far, by code exchange or refresh.
    pub fn token_grants(&self) -> usize {
        self.state.grants.load(Ordering::SeqCst)
    }

    /// Serve `data/<resource>.changed.json` from now on: what a later poll sees.
    pub fn advance_to_changed_data(&self) {
        self.state.changed.store(true, Ordering::SeqCst);
    }

    /// Forgets every open transaction (Polar's physical information), as if each had
    /// expired: their items, not committed, go into the next transaction.
    pub fn expire_transactions(&self) {
        for t in self.state.transactions.lock().unwrap().values_mut() {
            t.open.clear();
        }
    }

    /// Makes `provider`'s transaction commits fail with a 500 (`true`) until called
    /// with `false`.
    pub fn fail_commits(&self, provider: &str, fail: bool) {
        let mut all = self.state.transactions.lock().unwrap();
        all.entry(provider.to_string()).or_default().fail_commits = fail;
    }

    /// Expires every access token issued so far (the next data request gets a 401).
    pub fn expire_access_tokens(&self) {
        self.state.access.lock().unwrap().clear();
    }

    /// Serves `items` as `provider`'s `resource` data instead of its fixture files.
    pub fn set_items(&self, provider: &str, resource: Resource, items: Vec<Value>) {
        self.state
            .items
            .lock()
            .unwrap()
            .insert((provider.to_string(), resource), Arc::new(items));
    }

    /// The items `provider`'s `resource` serves now, in its reply shape: the data set
    /// given with [`FixtureServer::set_items`] (or changed by
    /// [`FixtureServer::change`]), else its fixture file moved to today's dates.
    pub fn served_items(&self, provider: &str, resource: Resource) -> Vec<Value> {
        let Some(p) = providers::find(provider) else {
            return vec![];
        };
        served_items(&self.state, p.id(), p.impersonation.as_ref(), resource).to_vec()
    }

    /// The clock the server keeps time by (the wall clock until set): a test's manual
    /// clock makes windows pass when it advances.
    pub fn use_clock(&self, clock: Clock) {
        *self.state.clock.lock().unwrap() = clock;
    }

    /// From now on every provider's documented rate limits are enforced (see the module
    /// documentation), every window `time_scale` times shorter than the manifest says:
    /// 1.0 is the providers' own windows, 60.0 makes a 15-minute window 15 seconds. A
    /// scale that is not a positive number counts as 1.0. Headers name windows by their
    /// documented length (`10000;window=86400`) and give resets in the server's time, so
    /// a client waits the scaled time.
    pub fn enforce_rate_limits(&self, time_scale: f64) {
        let scale = if time_scale.is_finite() && time_scale > 0.0 {
            time_scale
        } else {
            1.0
        };
        self.state.limits.lock().unwrap().time_scale = Some(scale);
    }

    /// Another app on the same provider credentials spent `n` requests just now: they
    /// count in each of the provider's app windows (so in the usage headers and against
    /// the limits), not in this server's statistics.
    pub fn add_foreign_usage(&self, provider: &str, n: u64) {
        let Some(p) = providers::find(provider) else {
            return;
        };
        let now = self.state.clock.lock().unwrap().now_ms();
        let mut limits = self.state.limits.lock().unwrap();
        for (i, w) in p.manifest.rate_limit.windows.iter().enumerate() {
            if w.scope == RateScope::App {
                let held = limits
                    .counted
                    .entry((provider.to_string(), i, None))
                    .or_default();
                held.extend(std::iter::repeat_n(now, n as usize));
            }
        }
    }

    /// Every data request `provider` was sent with a token the server granted, in arrival
    /// order: its time on the server's clock, the status answered, whether it was refused.
    pub fn request_stats(&self, provider: &str) -> Vec<RequestStat> {
        let limits = self.state.limits.lock().unwrap();
        limits.log.get(provider).cloned().unwrap_or_default()
    }

    /// Data requests `provider` was sent with a token the server granted.
    pub fn data_requests(&self, provider: &str) -> u64 {
        let limits = self.state.limits.lock().unwrap();
        limits.log.get(provider).map_or(0, |l| l.len() as u64)
    }

    /// Requests `provider`'s rate limits refused (its 429s, Withings' 601s); injected
    /// faults are not refusals.
    pub fn refused(&self, provider: &str) -> u64 {
        let limits = self.state.limits.lock().unwrap();
        limits
            .log
            .get(provider)
            .map_or(0, |l| l.iter().filter(|r| r.refused).count() as u64)
    }

    /// The most requests `provider` accepted (every data request but its rate-limit
    /// refusals) in any closed interval of length `period`, scaled as the windows are:
    /// what a limit of that window must never be below.
    pub fn max_in_any_window(&self, provider: &str, period: Duration) -> u64 {
        let limits = self.state.limits.lock().unwrap();
        let span = limits.scaled_ms(period);
        let times: Vec<i64> = limits
            .log
            .get(provider)
            .map(|l| l.iter().filter(|r| !r.refused).map(|r| r.at_ms).collect())
            .unwrap_or_default();
        let mut times = times;
        times.sort_unstable();
        let (mut best, mut start) = (0, 0);
        for (end, t) in times.iter().enumerate() {
            while times[start] < t - span {
                start += 1;
            }
            best = best.max(end + 1 - start);
        }
        best as u64
    }

    /// From now on, remember every data page served, for [`FixtureServer::served_pages`].
    /// Only the requests are kept, not the bodies, so the memory of a long run (the
    /// ingest benchmark's) stays its own.
    pub fn keep_pages(&self) {
        *self.state.kept.lock().unwrap() = Some(Vec::new());
    }

    /// From now on, answer a data page asked again (another user's same window) from
    /// memory while its data set is unchanged: a benchmark's provider then costs the
    /// machine what a real provider costs it, next to nothing, and the figures are the
    /// gateway's. Pages of fixture files (dated anew on every request) are made each
    /// time as before.
    pub fn cache_pages(&self) {
        *self.state.page_cache.lock().unwrap() = Some(HashMap::new());
    }

    /// The data pages served since [`FixtureServer::keep_pages`], in the order they were
    /// answered, each with the body it got: served again from the same request and the
    /// same data, so byte for byte the same (as long as the data sets were not changed
    /// since). Forgets them.
    pub fn served_pages(&self) -> Vec<ServedPage> {
        let asked = self
            .state
            .kept
            .lock()
            .unwrap()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        asked
            .into_iter()
            .filter_map(|a| {
                let p = providers::find(&a.provider)?;
                let (resource, reply) = list_page(&self.state, p, &a.path, &a.params)?;
                Some(ServedPage {
                    provider: a.provider,
                    resource,
                    token: a.token,
                    params: a.params,
                    body: reply.ok()?,
                })
            })
            .collect()
    }

    /// Every data request served, as `provider path?query`, and every call answered by
    /// [`crate::providers::Impersonation::serve_call`], as `provider METHOD path body`.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }
}

/// Makes a reply that names the provider's user `id` name the provider's `user`th
/// connected user instead: the first keeps the recorded id, each later one gets its own (a number stays a
/// number), so notifications naming a user reach that user's connection alone.
fn as_user(v: &mut Value, id: &str, user: u64) {
    if user <= 1 {
        return;
    }
    match v {
        Value::String(s) if s == id => *s = format!("{id}-{user}"),
        Value::Number(n) if n.to_string() == id => {
            if let Some(n) = n.as_u64() {
                *v = Value::from(n.saturating_mul(1000).saturating_add(user));
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| as_user(x, id, user)),
        Value::Object(m) => m.values_mut().for_each(|x| as_user(x, id, user)),
        _ => {}
    }
}

/// The id fixture user `user` has at `p` when its recorded user's is `id` (see
/// [`as_user`]).
pub fn user_id_of(id: &str, user: u64) -> String {
    let mut v = match id.parse::<u64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::from(id),
    };
    as_user(&mut v, id, user);
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// A provider's records, as the ingest benchmark replaces its fixture files with.
type DataSet = Arc<Vec<Value>>;

/// A data page's reply (a 400's message as the error) and the data set it came from.
type CachedPage = (DataSet, Result<String, String>);

// The error is the handler's reply, returned at once; boxing it buys nothing here.
#[allow(clippy::result_large_err)]
fn provider(id: &str) -> Result<&'static Provider, Response> {
    providers::find(id)
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no provider {id}")).into_response())
}

async fn authorize(
    State(st): State<Arc<FixtureState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = match provider(&id) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (Some(redirect), Some(state)) = (q.get("redirect_uri"), q.get("state")) else {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri and state are required",
        )
            .into_response();
    };
    if url::Url::parse(redirect).is_err() {
        return (StatusCode::BAD_REQUEST, "bad redirect_uri").into_response();
    }
    if st.consent_screen.load(Ordering::SeqCst) {
        return axum::response::Html(consent_page(p, &q)).into_response();
    }
    let allow = !st.deny_consent.load(Ordering::SeqCst);
    decide(&st, &id, redirect, state, allow)
}

/// The consent page's buttons land here: `decision=allow` or `deny`.
async fn decision(
    State(st): State<Arc<FixtureState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = provider(&id) {
        return r;
    }
    let (Some(redirect), Some(state)) = (q.get("redirect_uri"), q.get("state")) else {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri and state are required",
        )
            .into_response();
    };
    let allow = q.get("decision").map(String::as_str) == Some("allow")
        && !st.deny_consent.load(Ordering::SeqCst);
    decide(&st, &id, redirect, state, allow)
}

/// Back to the client with a single-use code, or with `error=access_denied`.
fn decide(st: &FixtureState, id: &str, redirect: &str, state: &str, allow: bool) -> Response {
    let Ok(mut url) = url::Url::parse(redirect) else {
        return (StatusCode::BAD_REQUEST, "bad redirect_uri").into_response();
    };
    if allow {
        let code = crate::seal::random_token(16);
        st.codes
            .lock()
            .unwrap()
            .insert(code.clone(), id.to_string());
        url.query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", state);
    } else {
        url.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("state", state);
    }
    Redirect::to(url.as_str()).into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A plain, accessible consent page in the provider's name: what the app asks for and
/// two buttons. Every query parameter is carried through the form unchanged.
fn consent_page(p: &Provider, q: &HashMap<String, String>) -> String {
    let name = escape(&p.manifest.name);
    let scopes: Vec<String> = q
        .get("scope")
        .map(|s| {
            s.split([' ', ','])
                .filter(|x| !x.is_empty())
                .map(|x| format!("<li><code>{}</code></li>", escape(x)))
                .collect()
        })
        .unwrap_or_default();
    let hidden: String = ["redirect_uri", "state"]
        .iter()
        .filter_map(|k| {
            q.get(*k)
                .map(|v| format!(r#"<input type="hidden" name="{k}" value="{}">"#, escape(v)))
        })
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name}: allow access?</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; background: #f3f4f6; color: #111827; margin: 0; }}
main {{ max-width: 26rem; margin: 3rem auto; background: #fff; border-radius: 12px; padding: 2rem; box-shadow: 0 1px 3px rgb(0 0 0 / 0.12); }}
h1 {{ font-size: 1.4rem; margin: 0 0 1rem; }}
ul {{ padding-left: 1.2rem; }}
.actions {{ display: flex; gap: .75rem; margin-top: 1.5rem; }}
button {{ flex: 1; font: inherit; padding: .7rem; border-radius: 8px; border: 1px solid #374151; cursor: pointer; }}
button.allow {{ background: #1d4ed8; border-color: #1d4ed8; color: #fff; }}
button:focus-visible {{ outline: 3px solid #f59e0b; outline-offset: 2px; }}
.note {{ color: #4b5563; font-size: .85rem; margin-top: 1.5rem; }}
</style></head>
<body><main>
<h1>{name}</h1>
<p>An app using Wearbridge asks to read your {name} data:</p>
<ul>{scopes}</ul>
<form method="get" action="/{id}/oauth/authorize/decision">{hidden}
<div class="actions"><button type="submit" name="decision" value="deny">Deny</button>
<button type="submit" class="allow" name="decision" value="allow">Allow</button></div>
</form>
<p class="note">Fixture provider: a stand-in for {name}'s real consent screen; no account is involved.</p>
</main></body></html>"#,
        scopes = scopes.join(""),
        id = escape(p.id()),
    )
}

/// Replaces token values anywhere in a recorded reply with freshly issued ones.
fn stamp(v: &mut Value, access: &str, refresh: &str) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                match k.as_str() {
                    "access_token" => *val = Value::String(access.to_string()),
                    "refresh_token" if val.is_string() => *val = Value::String(refresh.to_string()),
                    _ => stamp(val, access, refresh),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| stamp(x, access, refresh)),
        _ => {}
    }
}

async fn token(
    State(st): State<Arc<FixtureState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let p = match provider(&id) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let imp = &p.impersonation;
    if let Some(status) = st.token_faults.lock().unwrap().pop_front() {
        let (status, body) = imp.error_reply(status);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return (status, [("content-type", "application/json")], body).into_response();
    }
    let refused = || {
        let body = imp
            .fixture("oauth/invalid_grant.json")
            .unwrap_or(r#"{"error":"invalid_grant"}"#);
        let status =
            StatusCode::from_u16(imp.invalid_grant_status()).unwrap_or(StatusCode::BAD_REQUEST);
        (
            status,
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response()
    };
    let (fixture, user) = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            if st.codes.lock().unwrap().remove(&code).as_deref() != Some(id.as_str()) {
                return refused();
            }
            let user = st.users.fetch_add(1, Ordering::SeqCst) + 1;
            let ordinal = {
                let mut n = st.provider_users.lock().unwrap();
                let n = n.entry(id.clone()).or_default();
                *n += 1;
                *n
            };
            st.ordinals.lock().unwrap().insert(user, ordinal);
            ("oauth/token.json", user)
        }
        Some("refresh_token") => {
            let rt = form.get("refresh_token").cloned().unwrap_or_default();
            if st.refuse_refresh.load(Ordering::SeqCst) {
                return refused();
            }
            let known = if p.manifest.refresh_token_rotates {
                st.refresh.lock().unwrap().remove(&rt)
            } else {
                st.refresh.lock().unwrap().contains(&rt)
            };
            if !known {
                return refused();
            }
            let user = st.token_users.lock().unwrap().get(&rt).copied();
            ("oauth/refresh.json", user.unwrap_or_default())
        }
        _ => return refused(),
    };
    let Some(text) = imp
        .fixture(fixture)
        .or_else(|| imp.fixture("oauth/token.json"))
    else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no token fixture").into_response();
    };
    let mut reply: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("bad fixture: {e}"),
            )
                .into_response()
        }
    };
    let access = format!("fx-access-{}", crate::seal::random_token(12));
    let refresh = format!("fx-refresh-{}", crate::seal::random_token(12));
    stamp(&mut reply, &access, &refresh);
    if let Some(id) = p.adapter.external_user_id(&reply) {
        let ordinal = st.ordinals.lock().unwrap().get(&user).copied().unwrap_or(1);
        as_user(&mut reply, &id, ordinal);
    }
    {
        let mut users = st.token_users.lock().unwrap();
        users.insert(access.clone(), user);
        users.insert(refresh.clone(), user);
    }
    st.access.lock().unwrap().insert(access);
    st.refresh.lock().unwrap().insert(refresh);
    st.grants.fetch_add(1, Ordering::SeqCst);
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        reply.to_string(),
    )
        .into_response()
}

/// The day the fixtures were recorded: their data ends just before it.
pub const RECORDED_ON: (i32, u32, u32) = (2026, 11, 23);

/// Whole days from the recording day to today: served data moves forward by this much,
/// so "the last few days" of the fixtures are always the last few days.
fn days_since_recording() -> i64 {
    let (y, m, d) = RECORDED_ON;
    let recorded = chrono::NaiveDate::from_ymd_opt(y, m, d).expect("valid date");
    (chrono::Utc::now().date_naive() - recorded)
        .num_days()
        .max(0)
}

/// Moves every date and instant in `item`, one of `provider`'s items, by `by`, as the
/// fixture server moves its recorded data (its epoch fields included; dates by the
/// whole days of `by`).
pub fn shift_item_times(provider: &str, item: &mut Value, by: chrono::Duration) {
    let epoch = providers::find(provider).map_or(&[][..], |p| p.impersonation.epoch_fields());
    shift_dates(item, by, epoch);
}

/// Moves every date (`YYYY-MM-DD`, by the whole days of `by`), RFC 3339 instant,
/// date-time without offset (`YYYY-MM-DDThh:mm:ss`, Dexcom's receiver records) and
/// integer epoch field named in `epoch_keys` in `v` by `by`, keeping each one's offset
/// (or lack of one).
fn shift_dates(v: &mut Value, by: chrono::Duration, epoch_keys: &[&str]) {
    match v {
        Value::String(s) => {
            if s.len() == 10 {
                if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                    *s = (d + chrono::Duration::days(by.num_days()))
                        .format("%Y-%m-%d")
                        .to_string();
                }
            } else if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                *s = (t + by).to_rfc3339();
            } else if let Some(t) = s
                .get(..19)
                .and_then(|h| chrono::NaiveDateTime::parse_from_str(h, "%Y-%m-%dT%H:%M:%S").ok())
            {
                // Local times without an offset (Polar's `start_time`, Dexcom's receiver records): the same shift,
                // keeping any fraction after the seconds as it was.
                *s = format!("{}{}", (t + by).format("%Y-%m-%dT%H:%M:%S"), &s[19..]);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| shift_dates(x, by, epoch_keys)),
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x.as_i64() {
                    Some(secs) if epoch_keys.contains(&k.as_str()) => {
                        *x = Value::from(secs.saturating_add(by.num_seconds()))
                    }
                    _ => shift_dates(x, by, epoch_keys),
                }
            }
        }
        _ => {}
    }
}

/// A data request: counted against the provider's rate limits when they are enforced
/// and the token is one the server granted (an unknown token's 401 belongs to no one),
/// refused as the provider refuses past a limit, and answered with its usage headers.
async fn data(
    State(st): State<Arc<FixtureState>>,
    Path((id, path)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let p = match provider(&id) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let user = if st.access.lock().unwrap().contains(bearer) {
        st.token_users.lock().unwrap().get(bearer).copied()
    } else {
        None
    };
    let Some(user) = user else {
        return serve_data(&st, p, &id, path, method, &headers, query, body).await;
    };
    let registered = st
        .registered
        .lock()
        .unwrap()
        .get(&id)
        .map_or(0, |r| r.len() as u64);
    let (admission, index) = {
        let clock = st.clock.lock().unwrap().clone();
        let mut limits = st.limits.lock().unwrap();
        let now_ms = clock.now_ms();
        let admission = limits.admit(p, user, registered, now_ms);
        let log = limits.log.entry(id.clone()).or_default();
        log.push(RequestStat {
            at_ms: now_ms,
            status: 0,
            refused: admission.as_ref().is_some_and(|a| a.refused.is_some()),
        });
        (admission, log.len() - 1)
    };
    let imp = p.impersonation.as_ref();
    let mut reply = match &admission {
        Some(a) if a.refused.is_some() => {
            let (status, body) = imp.error_reply(429);
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
                [("content-type", "application/json")],
                body,
            )
                .into_response()
        }
        _ => serve_data(&st, p, &id, path, method, &headers, query, body).await,
    };
    if let Some(stat) = st
        .limits
        .lock()
        .unwrap()
        .log
        .get_mut(&id)
        .and_then(|l| l.get_mut(index))
    {
        stat.status = reply.status().as_u16();
    }
    if let Some(a) = admission {
        let now = chrono::DateTime::from_timestamp_millis(a.now_ms).unwrap_or_default();
        let extra = imp.rate_limit_headers(&a.windows, a.refused, now);
        let date = now.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        for (name, value) in std::iter::once(("date", date)).chain(extra) {
            if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
                reply.headers_mut().insert(name, v);
            }
        }
    }
    reply
}

/// Answers a data request as the provider does, rate limits aside.
#[allow(clippy::too_many_arguments)]
async fn serve_data(
    st: &FixtureState,
    p: &'static Provider,
    id: &str,
    path: String,
    method: Method,
    headers: &HeaderMap,
    query: HashMap<String, String>,
    body: Bytes,
) -> Response {
    let id = id.to_string();
    let imp = p.impersonation.as_ref();
    let path = format!("/{path}");
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // The keys the provider publishes for its notifications' signatures (Google's
    // keyset): public, no token.
    if method == Method::GET {
        if let Some(doc) = push::published_keys(st, p, &path) {
            let mut log = st.requests.lock().unwrap();
            if log.len() < 10_000 {
                log.push(format!("{id} GET {path}"));
            }
            drop(log);
            return (StatusCode::OK, [("content-type", "application/json")], doc).into_response();
        }
    }
    // Subscription management (app credentials, or Withings' user token), for a
    // provider that pushes.
    if p.manifest.push.is_some() {
        let mut fields: std::collections::BTreeMap<String, String> =
            query.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        fields.extend(url::form_urlencoded::parse(&body).into_owned());
        if let Some((status, reply)) =
            push::subscription_call(st, p, method.as_str(), &path, headers, &fields, &body).await
        {
            return (
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                [("content-type", "application/json")],
                reply,
            )
                .into_response();
        }
    }
    // Calls outside the paging loop (Polar's user registration), for a known token; an
    // unknown one falls through to the 401 below.
    if method != Method::GET && st.access.lock().unwrap().contains(bearer) {
        let mut registered = st.registered.lock().unwrap();
        let known = registered.entry(id.clone()).or_default();
        if let Some((status, reply)) = imp.serve_call(method.as_str(), &path, &body, known) {
            let mut log = st.requests.lock().unwrap();
            if log.len() < 10_000 {
                log.push(format!(
                    "{id} {method} {path} {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            return (
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                [("content-type", "application/json")],
                reply,
            )
                .into_response();
        }
    }
    let mut params = query;
    let json_body = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if method == Method::POST && json_body {
        // A JSON body's top-level members become parameters: strings as they are,
        // anything else (objects such as Google Health's `range`) as JSON text.
        if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&body) {
            params.extend(m.into_iter().map(|(k, v)| match v {
                Value::String(s) => (k, s),
                other => (k, other.to_string()),
            }));
        }
    } else if method == Method::POST {
        params.extend(url::form_urlencoded::parse(&body).into_owned());
    }
    {
        let mut log = st.requests.lock().unwrap();
        if log.len() < 10_000 {
            log.push(format!("{id} {path} {params:?}"));
        }
    }
    let json = |status: u16, body: String| {
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            [("content-type", "application/json")],
            body,
        )
            .into_response()
    };
    let err = |status: u16| {
        let (status, body) = imp.error_reply(status);
        json(status, body)
    };
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !st.access.lock().unwrap().contains(token) {
        return err(401);
    }
    let fault = st
        .faults
        .lock()
        .unwrap()
        .get_mut(&id)
        .and_then(VecDeque::pop_front);
    match fault {
        Some(Fault::Unauthorized) => return err(401),
        Some(Fault::RateLimited { retry_after_secs }) => {
            let mut r = err(429);
            r.headers_mut().insert(
                "retry-after",
                retry_after_secs.to_string().parse().expect("digits"),
            );
            return r;
        }
        Some(Fault::ServerError) => return err(500),
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        Some(Fault::Malformed) => return json(200, "{\"data\": [ {\"id\": ".to_string()),
        None => {}
    }
    // A step of a transaction (Polar's physical information), with the server's memory
    // of them.
    let step = {
        let items = |r: Resource| served_items(st, &id, imp, r).to_vec();
        let mut all = st.transactions.lock().unwrap();
        let state = all.entry(id.clone()).or_default();
        imp.serve_transaction(method.as_str(), &path, &items, state)
    };
    if let Some((status, reply)) = step {
        let mut log = st.requests.lock().unwrap();
        if log.len() < 10_000 {
            log.push(format!("{id} {method} {path} {status}"));
        }
        return json(status, reply);
    }
    if let Some(reply) = imp.static_reply(&path) {
        // The user's own id where the reply names them (an identity request).
        let identity = p.adapter.identity_request().is_some_and(|r| r.path == path);
        let user = st.token_users.lock().unwrap().get(token).copied();
        let user = user.and_then(|u| st.ordinals.lock().unwrap().get(&u).copied());
        if let (true, Some(user)) = (identity, user) {
            if let (Ok(mut v), Ok(id)) = (
                serde_json::from_str::<Value>(reply),
                p.adapter.identity_user_id(reply.as_bytes()),
            ) {
                as_user(&mut v, &id, user);
                return json(200, v.to_string());
            }
        }
        return json(200, reply.to_string());
    }
    if let Some(reply) = imp.derived_reply(&path, &|r| served_items(st, &id, imp, r).to_vec()) {
        return json(200, reply.to_string());
    }
    let Some((_, reply)) = list_page(st, p, &path, &params) else {
        // A path that names one record (Strava's `/activities/{id}`), served from the
        // same data set as its list.
        if let Some((resource, key)) = imp.record_path(&path) {
            let items = served_items(st, &id, imp, resource);
            return match imp.serve_record(resource, &key, &items) {
                Some(v) => json(200, v.to_string()),
                None => err(404),
            };
        }
        return err(404);
    };
    match reply {
        Ok(v) => {
            if let Some(kept) = st.kept.lock().unwrap().as_mut() {
                kept.push(PageAsked {
                    provider: id,
                    path,
                    token: token.to_string(),
                    params,
                });
            }
            json(200, v)
        }
        Err(m) => json(400, serde_json::json!({"error": m}).to_string()),
    }
}

/// The page of a list `p` serves at `path` for `params`: the resource it belongs to and
/// the reply (an `Err` is a 400 with that message). None when no resource lives at
/// `path`.
fn list_page(
    st: &FixtureState,
    p: &Provider,
    path: &str,
    params: &HashMap<String, String>,
) -> Option<(Resource, Result<String, String>)> {
    let imp = p.impersonation.as_ref();
    // The resource whose documented path this is (Withings tells them apart by `action`).
    let spec = p
        .manifest
        .resources
        .iter()
        .find(|r| r.path == path && imp.serve(r, params, &[]).is_ok())
        .or_else(|| p.manifest.resources.iter().find(|r| r.path == path))
        .or_else(|| imp.resource_at(path).and_then(|r| p.resource(r)))?;
    let items = served_items(st, p.id(), imp, spec.name);
    // With the cache on: the page's key, or the reply made before from these items.
    let key = match st.page_cache.lock().unwrap().as_ref() {
        None => None,
        Some(cache) => {
            let mut sorted: Vec<_> = params.iter().collect();
            sorted.sort();
            let key = format!("{} {path} {sorted:?}", p.id());
            match cache.get(&key) {
                Some((held, reply)) if Arc::ptr_eq(held, &items) => {
                    return Some((spec.name, reply.clone()))
                }
                _ => Some(key),
            }
        }
    };
    let reply = imp
        .serve_at(path, spec, params, &items)
        .map(|v| v.to_string());
    if let (Some(key), Some(cache)) = (key, st.page_cache.lock().unwrap().as_mut()) {
        cache.insert(key, (items, reply.clone()));
    }
    Some((spec.name, reply))
}

/// The items a provider's `resource` serves now: a data set given with `set_items`, or
/// its fixture file (`.changed` once the data has advanced), moved to today's dates.
fn served_items(
    st: &FixtureState,
    id: &str,
    imp: &dyn providers::Impersonation,
    resource: Resource,
) -> Arc<Vec<Value>> {
    if let Some(items) = st
        .items
        .lock()
        .unwrap()
        .get(&(id.to_string(), resource))
        .cloned()
    {
        return items;
    }
    let changed = st.changed.load(Ordering::SeqCst);
    let file = if changed {
        format!("data/{resource}.changed.json")
    } else {
        format!("data/{resource}.json")
    };
    let items: Vec<Value> = imp
        .fixture(&file)
        .or_else(|| imp.fixture(&format!("data/{resource}.json")))
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let shift = days_since_recording();
    if shift == 0 {
        return Arc::new(items);
    }
    Arc::new(
        items
            .into_iter()
            .map(|mut v| {
                shift_dates(&mut v, chrono::Duration::days(shift), imp.epoch_fields());
                v
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strava at its documented 100 per 15 minutes: the 101st request in the window is
    /// refused and still counts (in both windows, so the usage passes the limit), room
    /// comes back exactly when the first request leaves the window, and a 60x time scale
    /// makes the window 15 s.
    #[test]
    fn a_window_holds_its_limit_over_any_interval_and_refusals_count_where_documented() {
        let strava = providers::find("strava").unwrap();
        let mut l = Limits {
            time_scale: Some(1.0),
            ..Limits::default()
        };
        for i in 0..100 {
            let a = l.admit(strava, 1, 0, i).unwrap();
            assert_eq!(a.refused, None, "request {i}");
            assert_eq!(a.windows[0].used, i as u64 + 1);
        }
        let a = l.admit(strava, 2, 0, 1_000).unwrap();
        assert_eq!(
            a.refused,
            Some(0),
            "app-wide: another athlete is refused too"
        );
        assert_eq!((a.windows[0].used, a.windows[1].used), (101, 101));
        assert_eq!(
            a.windows[0].reset_secs, 900,
            "room once the request at 0 ms and the refused one's predecessor leave"
        );
        // The request at 0 ms is still inside the closed window [t - 900 s, t]; and this
        // refusal counts as well, as does the next, so room needs four requests gone.
        assert_eq!(l.admit(strava, 1, 0, 900_000).unwrap().refused, Some(0));
        assert_eq!(l.admit(strava, 1, 0, 900_002).unwrap().refused, Some(0));
        let a = l.admit(strava, 1, 0, 900_004).unwrap();
        assert_eq!(a.refused, None);
        assert_eq!(a.windows[1].used, 104, "every request of the day counts");

        let polar = providers::find("polar").unwrap();
        let mut l = Limits {
            time_scale: Some(60.0),
            ..Limits::default()
        };
        let short = 500 + 20 * 3;
        for i in 0..short {
            assert_eq!(l.admit(polar, 1, 3, i as i64).unwrap().refused, None);
        }
        let a = l.admit(polar, 1, 3, 10).unwrap();
        assert_eq!(
            a.refused,
            Some(0),
            "three registered users: 560 a quarter hour"
        );
        assert_eq!(a.windows[0].limit, 560);
        assert_eq!(
            (a.windows[0].used, a.windows[1].used),
            (560, 561),
            "a short-term refusal counts toward the long term only"
        );
        assert_eq!(a.windows[0].reset_secs, 15, "900 s at 60x");
        assert!(
            l.admit(polar, 1, 3, 15_000).unwrap().refused.is_some(),
            "the first request, at 0 ms, is still inside [0, 15 s]"
        );
        assert_eq!(l.admit(polar, 1, 3, 15_001).unwrap().refused, None);

        let off = Limits::default().admit(strava, 1, 0, 0);
        assert!(off.is_none(), "enforcement is off by default");
    }

    /// Google Health's 300 a minute is per user: one user's burst leaves another's
    /// budget whole.
    #[test]
    fn user_windows_count_each_user_apart() {
        let google = providers::find("google_health").unwrap();
        let mut l = Limits {
            time_scale: Some(1.0),
            ..Limits::default()
        };
        for i in 0..300 {
            assert_eq!(l.admit(google, 7, 0, i).unwrap().refused, None);
        }
        let user_window = google
            .manifest
            .rate_limit
            .windows
            .iter()
            .position(|w| w.scope == RateScope::User)
            .unwrap();
        assert_eq!(
            l.admit(google, 7, 0, 300).unwrap().refused,
            Some(user_window)
        );
        assert_eq!(l.admit(google, 8, 0, 300).unwrap().refused, None);
    }

    #[test]
    fn shifting_keeps_each_date_format_and_offset() {
        let mut v = serde_json::json!({
            "day": "2026-11-22",
            "app": "2026-11-22T21:55:00+00:00",
            "local": "2026-11-22T13:55:00-08:00",
            "receiver": "2026-11-21T23:30:00",
            "startdate": 1_795_000_000,
            "note": "2026-11-22T21:55",
        });
        shift_dates(&mut v, chrono::Duration::days(9), &["startdate"]);
        assert_eq!(v["day"], "2026-12-01");
        assert_eq!(v["app"], "2026-12-01T21:55:00+00:00");
        assert_eq!(v["local"], "2026-12-01T13:55:00-08:00");
        assert_eq!(
            v["receiver"], "2026-11-30T23:30:00",
            "a date-time without offset moves and stays without one"
        );
        assert_eq!(v["startdate"], 1_795_000_000 + 9 * 86_400);
        assert_eq!(v["note"], "2026-11-22T21:55", "not a date-time: untouched");
    }
}
