//! Providers: each wearable API is data plus behaviour. The data is
//! `providers/<id>.toml` (OAuth URLs, scopes, base URL, rate limits, history depth,
//! window size, poll interval, resources), embedded at compile time; the behaviour is
//! `src/providers/<id>.rs`, an [`Adapter`] that builds page requests and normalises
//! response pages. The runtime (pollers, OAuth, rate limits, retries, persistence) is
//! shared; an adapter never does I/O. Every provider is one line of [`registry`].

pub mod dexcom;
pub mod google_health;
pub mod normalize;
pub mod oura;
pub mod polar;
pub mod push;
#[cfg(test)]
mod robustness;
pub mod strava;
pub mod whoop;
pub mod withings;

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::events::Record;
use crate::events::Resource;

/// A provider as data (`providers/<id>.toml`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub id: String,
    pub name: String,
    pub authorize_url: String,
    pub token_url: String,
    pub base_url: String,
    pub scopes: Vec<String>,
    pub scope_separator: String,
    /// Extra query parameters of the authorize URL (Google: `access_type=offline` and
    /// `prompt=consent`, without which no refresh token is issued).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub authorize_params: std::collections::BTreeMap<String, String>,
    pub pkce: bool,
    /// `body` (client id and secret in the form) or `basic`.
    pub token_auth: String,
    pub refresh_token_rotates: bool,
    pub access_token_ttl_secs: u64,
    pub history_days: u32,
    pub window_days: u32,
    pub poll_interval_secs: u64,
    pub lookback_days: u32,
    pub rate_limit: RateLimitSpec,
    /// How the provider pushes notifications; absent where it only answers polls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<push::PushSpec>,
    pub resources: Vec<ResourceSpec>,
}

/// What one reply said about the provider's rate limits (see [`Adapter::rate_report`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateReport {
    /// Per window the provider names: what it counts as used, and its limit if it says.
    pub usage: Vec<WindowUsage>,
    /// How long until the limit that is exhausted (or refused this request) resets.
    pub reset_after: Option<Duration>,
}

/// A provider's count for one of its windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowUsage {
    /// The window's length, when the reply says (`10000;window=86400`) or the provider's
    /// documentation fixes the order (Strava's "15min,daily"); `None` for the shortest.
    pub period_secs: Option<u64>,
    pub used: u64,
    pub limit: Option<u64>,
}

/// One of a provider's windows as the fixture server counts it when it answers a request
/// (see [`Impersonation::rate_limit_headers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    pub window: RateWindow,
    /// The window's limit now (Polar's grows with registered users).
    pub limit: u64,
    /// Requests the window holds, this one included if it counts; may exceed `limit`
    /// where refused requests count.
    pub used: u64,
    /// Seconds until the window has room for one more request once full, or until its
    /// oldest request leaves it otherwise; 0 when empty.
    pub reset_secs: u64,
}

impl WindowCount {
    /// One figure of every window, shortest window first, joined by `sep`: the
    /// positional header values Strava ("15min,daily") and Polar ("short, long") send.
    pub fn joined(windows: &[WindowCount], sep: &str, figure: fn(&WindowCount) -> u64) -> String {
        let mut windows = windows.to_vec();
        windows.sort_by_key(|w| w.window.period_secs);
        windows
            .iter()
            .map(|w| figure(w).to_string())
            .collect::<Vec<_>>()
            .join(sep)
    }
}

/// Every limit a provider documents, as the budget engine enforces it (see
/// `poller::budget`): each window is a sliding window never exceeded, shared by every
/// process on the database.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// The provider's limits: any number of windows, per app or per user.
    pub windows: Vec<RateWindow>,
    /// Whom a 429 pauses: the whole app, or the one user whose request it refused.
    pub retry_after_scope: RateScope,
}

/// One documented limit: at most `requests` (plus `per_registered_user` for each user
/// connected to the app, as Polar's grow) in any `period_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateWindow {
    pub scope: RateScope,
    pub requests: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub per_registered_user: u64,
    pub period_secs: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl RateWindow {
    /// The limit with `users` registered users.
    pub fn limit(&self, users: u64) -> u64 {
        self.requests
            .saturating_add(self.per_registered_user.saturating_mul(users))
    }
}

/// Whose budget a limit is: the provider app's (every user of these credentials) or one
/// user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RateScope {
    App,
    User,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    pub name: Resource,
    /// `summary` or `timeseries`.
    pub kind: String,
    pub path: String,
    #[serde(default)]
    pub method: Option<String>,
    /// Whether the provider's route takes a time window (the default). `false` for a
    /// route that answers the whole list whatever the window (Dexcom's devices): its
    /// backfill is one request over the whole history, and each poll reads the list again.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub windowed: bool,
    /// The longest range one request of this route may ask for, where the provider
    /// caps it below the manifest's `window_days` (Oura's heart rate): its backfill
    /// windows are this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_days: Option<u32>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A half-open time range `[start, end)` of one backfill window or poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// `[start, end)` cut into windows of `window_days`, newest first: a backfill's
/// windows. The oldest may be shorter; windows tile the range with no gap or overlap.
pub fn plan_windows(start: DateTime<Utc>, end: DateTime<Utc>, window_days: u32) -> Vec<Window> {
    let step = ChronoDuration::days(window_days.max(1) as i64);
    let mut out = Vec::new();
    let mut to = end;
    while to > start {
        let from = to.checked_sub_signed(step).map_or(start, |t| t.max(start));
        out.push(Window {
            start: from,
            end: to,
        });
        to = from;
    }
    out
}

/// One HTTP request an adapter wants made (relative to the provider's base URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub method: &'static str,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Form fields, for providers that take parameters in a POST body (Withings).
    pub form: Vec<(String, String)>,
    /// A JSON body, for providers whose POST methods take one (Google Health's
    /// `dailyRollUp`); sent instead of `form` when set.
    pub json: Option<Value>,
}

impl PageRequest {
    pub fn get(path: impl Into<String>, query: Vec<(String, String)>) -> PageRequest {
        PageRequest {
            method: "GET",
            path: path.into(),
            query,
            form: vec![],
            json: None,
        }
    }

    /// A POST with a JSON body.
    pub fn post_json(path: impl Into<String>, body: Value) -> PageRequest {
        PageRequest {
            method: "POST",
            path: path.into(),
            query: vec![],
            form: vec![],
            json: Some(body),
        }
    }

    /// A request with no body and no query: one step of a chain the adapter drives
    /// through its cursor (Polar's transactions: `POST` to open one, `GET` its list and
    /// items, `PUT` to commit it).
    pub fn bare(method: &'static str, path: impl Into<String>) -> PageRequest {
        PageRequest {
            method,
            ..PageRequest::get(path, vec![])
        }
    }

    /// The request with [`USER_ID`] in its path replaced by the provider's id for the
    /// user (the connection's external user id), percent-encoded as one path segment.
    /// A path that does not name the user is kept as it is; one that does, for a
    /// connection whose provider id is unknown, is refused.
    pub fn for_user(
        mut self,
        external_user_id: Option<&str>,
    ) -> Result<PageRequest, ProviderError> {
        if !self.path.contains(USER_ID) {
            return Ok(self);
        }
        let id = external_user_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                ProviderError::Refused(format!(
                    "{} names the user, and the connection has no provider user id",
                    self.path
                ))
            })?;
        let segment: String = id
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        self.path = self.path.replace(USER_ID, &segment);
        Ok(self)
    }
}

/// Where a [`PageRequest`]'s path names the user by the provider's own id for them
/// (Polar's `/v3/users/{user-id}/…`): the runtime puts the connection's external user
/// id there ([`PageRequest::for_user`]), so adapters stay free of connections.
pub const USER_ID: &str = "{user-id}";

/// A request the runtime makes outside the paging loop, with the user's access token:
/// Polar's user registration after consent and de-registration (a JSON body, not a
/// form). Relative to the provider's base URL.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderCall {
    pub method: &'static str,
    pub path: String,
    pub json: Option<Value>,
}

/// One parsed page: its records, the cursor of the next page, if any, and the records
/// the provider now says are not records at all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub records: Vec<Record>,
    pub next: Option<String>,
    /// Items the page names but marks as not data (an Oura sleep period the user deleted
    /// or rejected as a false detection, a Withings measure group that is a goal): never
    /// records, and one stored earlier under the same key must go. The adapter only
    /// reports them (it does no I/O); the runtime deletes the stored record, if there is
    /// one, in the page's transaction.
    pub removals: Vec<Removal>,
}

/// A record to remove: its resource and the provider's own key for it (the same key a
/// [`Record`] would carry as `provider_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub resource: Resource,
    pub provider_id: String,
}

/// What went wrong talking to a provider; the runtime branches on the kind.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// The access token was refused: refresh once, then the connection errors.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Slow down; try again after the given time.
    #[error("rate limited")]
    RateLimited { retry_after: Option<Duration> },
    /// Worth retrying with back-off (5xx, timeouts, connection failures).
    #[error("transient provider error: {0}")]
    Transient(String),
    /// The body is not what the provider documents.
    #[error("malformed response at `{field}`: {message}")]
    Malformed { field: String, message: String },
    /// The user did not grant a scope this needs; refreshing will not help.
    #[error("required scope not granted: {0}")]
    ScopeNotGranted(String),
    /// A definitive refusal (revoked access, bad request).
    #[error("refused by the provider: {0}")]
    Refused(String),
    /// What the request named is no longer there (Polar's 404 for a transaction that
    /// is gone): a pull of it ends; a job part-way through a chain of requests starts
    /// the chain over; at a job's first request it is a refusal.
    #[error("gone at the provider: {0}")]
    Gone(String),
}

impl ProviderError {
    pub fn malformed(field: impl Into<String>, message: impl Into<String>) -> ProviderError {
        ProviderError::Malformed {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The usual reading of an HTTP error status.
    pub fn from_status(status: u16, retry_after: Option<Duration>, body: &[u8]) -> ProviderError {
        let text = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
        match status {
            401 => ProviderError::Unauthorized(text),
            403 => ProviderError::ScopeNotGranted(text),
            429 => ProviderError::RateLimited { retry_after },
            408 | 500..=599 => ProviderError::Transient(format!("HTTP {status}: {text}")),
            _ => ProviderError::Refused(format!("HTTP {status}: {text}")),
        }
    }
}

/// A provider's behaviour. Pure: no I/O, no clock (the runtime passes windows in).
pub trait Adapter: Send + Sync + 'static {
    /// The request for one page of `resource` within `window`; `cursor` is None for
    /// the first page and otherwise what the previous page's [`Page::next`] said.
    fn page_request(
        &self,
        resource: &ResourceSpec,
        window: &Window,
        cursor: Option<&str>,
    ) -> PageRequest;

    /// Parses a 2xx response body into records and the next page's cursor. `cursor` is
    /// the one the page was requested with (page-numbered APIs count from it).
    fn parse_page(
        &self,
        resource: Resource,
        body: &[u8],
        cursor: Option<&str>,
    ) -> Result<Page, ProviderError>;

    /// The resource whose pages also bring `resource`'s records, where one read hands
    /// several over together (Polar's physical-information transaction, read once for
    /// `body`, also gives the `profile`, and a second reader would race its commit):
    /// `resource` then gets no jobs of its own, and its backfill is that resource's.
    /// None, the default: every resource is read by its own jobs.
    fn read_with(&self, _resource: Resource) -> Option<Resource> {
        None
    }

    /// The request for one record of `resource` by the provider's own key (what a push
    /// notification names), for providers with a single-record read (Strava's
    /// `GET /activities/{id}`). None, the default, when the provider has none.
    fn record_request(
        &self,
        _resource: &ResourceSpec,
        _provider_record_id: &str,
    ) -> Option<PageRequest> {
        None
    }

    /// Parses the 2xx reply to [`Adapter::record_request`]: one object, as a page of one
    /// record (or of one removal) with no next page.
    fn parse_record(&self, resource: Resource, _body: &[u8]) -> Result<Page, ProviderError> {
        Err(ProviderError::malformed(
            "resource",
            format!("no single-record read for {resource}"),
        ))
    }

    /// Reads an error response. The default goes by HTTP status.
    fn classify_error(
        &self,
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> ProviderError {
        ProviderError::from_status(status, retry_after, body)
    }

    /// Reads an error a provider reports inside a 2xx reply (Withings answers HTTP 200
    /// with `{"status": 401, ...}` for an expired token). The runtime treats it exactly
    /// like the same error sent as an HTTP status: a 401 still refreshes once.
    /// `retry_after` is the reply's `Retry-After`, if it had one.
    fn in_band_error(&self, _retry_after: Option<Duration>, _body: &[u8]) -> Option<ProviderError> {
        None
    }

    /// What a data reply's headers (any status) say about the provider's rate limits:
    /// requests it counts as used per window and when an exhausted limit resets. The
    /// budget engine corrects its own count up to what the provider reports and pauses
    /// until the reset. The default reads the IETF draft's `RateLimit-*` /
    /// `X-RateLimit-*` shape ([`normalize::ietf_rate_report`]); providers that send no
    /// such headers report nothing.
    fn rate_report(&self, headers: &reqwest::header::HeaderMap) -> RateReport {
        normalize::ietf_rate_report(headers)
    }

    /// Rewrites the token endpoint's reply (any status) into standard OAuth 2 JSON, or
    /// says why it is a refusal: Withings wraps replies and reports errors inside a 200;
    /// Strava refuses a grant with its own 400 body instead of `invalid_grant`.
    fn token_reply(&self, _status: u16, body: &[u8]) -> Result<Vec<u8>, ProviderError> {
        Ok(body.to_vec())
    }

    /// Extra form fields the token endpoint needs (Withings: `action=requesttoken`).
    fn token_params(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// The provider's own id for the user, if the token reply carries it.
    fn external_user_id(&self, _token_reply: &Value) -> Option<String> {
        None
    }

    /// A request to make before the first page of `window`, asking the provider which part
    /// of it holds data (Dexcom's `dataRange`); its 2xx reply goes to
    /// [`Adapter::narrow_window`]. `None` (the default) fetches every window as planned.
    fn range_request(&self, _resource: &ResourceSpec, _window: &Window) -> Option<PageRequest> {
        None
    }

    /// Reads the reply to [`Adapter::range_request`]: the part of `window` worth fetching,
    /// or `None` when it holds nothing (the job then finishes as if its last page had been
    /// empty). The default keeps the window.
    fn narrow_window(
        &self,
        _resource: Resource,
        window: &Window,
        _body: &[u8],
    ) -> Result<Option<Window>, ProviderError> {
        Ok(Some(*window))
    }

    /// The request that names the user when the token reply does not (Google Health's
    /// `users.getIdentity`): sent once with the new access token, right after the code
    /// exchange. None (the default): the token reply is all there is.
    fn identity_request(&self) -> Option<PageRequest> {
        None
    }

    /// Reads the user's id from the 2xx reply to [`Adapter::identity_request`].
    fn identity_user_id(&self, _body: &[u8]) -> Result<String, ProviderError> {
        Err(ProviderError::malformed(
            "$",
            "this provider has no identity request",
        ))
    }

    /// A request to make once, right after the code exchange and before the connection
    /// exists, for providers that serve no data until the app registers the user
    /// (Polar). `member_id` is our stable id for the user; `external_user_id` is what
    /// [`Adapter::external_user_id`] read from the token reply.
    fn register_user(
        &self,
        _member_id: &str,
        _external_user_id: Option<&str>,
    ) -> Option<ProviderCall> {
        None
    }

    /// Reads the reply to [`Adapter::register_user`]'s request: `Ok` means the user
    /// may be connected. The default accepts any 2xx and reads the rest as errors.
    fn registration_reply(&self, status: u16, body: &[u8]) -> Result<(), ProviderError> {
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(self.classify_error(status, None, body))
        }
    }

    /// A request to make when the app deregisters the user, before the connection
    /// ends (Polar's de-registration, which also revokes the token). Best effort.
    fn deregister_user(&self, _external_user_id: Option<&str>) -> Option<ProviderCall> {
        None
    }

    // Push (see `push`): a provider's notifications, verified, read and subscribed to.
    // Every method has a default for providers that only answer polls.

    /// Answers a request to the notifications route that is the provider checking the
    /// callback rather than notifying (Strava's and Oura's `GET` with a challenge,
    /// Google's verification `POST`s, Withings' reachability check), or says it is none
    /// (`None`, the default: the request goes on to [`Adapter::verify_push`]). `Err` is
    /// a refused check (401), e.g. a wrong verify token.
    fn push_handshake(
        &self,
        _req: &push::PushRequest<'_>,
        _secrets: &push::PushSecrets,
    ) -> Option<Result<push::PushReply, push::PushError>> {
        None
    }

    /// Whether a notification provably comes from the provider (signature, timestamp,
    /// subscription). Nothing is read from it before this passes.
    fn verify_push(
        &self,
        _req: &push::PushRequest<'_>,
        _secrets: &push::PushSecrets,
    ) -> Result<(), push::PushError> {
        Err(push::PushError::Unverified(
            "this provider sends no notifications".into(),
        ))
    }

    /// What a verified notification says happened, one [`push::Notice`] per change.
    fn parse_push(
        &self,
        _req: &push::PushRequest<'_>,
    ) -> Result<Vec<push::Notice>, push::PushError> {
        Err(push::PushError::Malformed(
            "this provider sends no notifications".into(),
        ))
    }

    /// How a verified notification is acknowledged. The default, an empty 200, is what
    /// every provider here accepts except where its adapter says otherwise.
    fn push_ack(&self) -> push::PushReply {
        push::PushReply::empty(200)
    }

    /// The calls that create the app's subscription(s) for `callback_url` (one per
    /// (event, data type) for Oura). Empty where subscriptions are made in a console or
    /// per user.
    fn subscribe_calls(
        &self,
        _callback_url: &str,
        _secrets: &push::PushSecrets,
    ) -> Vec<push::SubscriptionCall> {
        vec![]
    }

    /// The call that renews the subscription the provider knows as `remote_id`, where
    /// subscriptions expire (Oura).
    fn renew_call(
        &self,
        _remote_id: &str,
        _secrets: &push::PushSecrets,
    ) -> Option<push::SubscriptionCall> {
        None
    }

    /// Reads the reply to a [`Adapter::subscribe_calls`] or [`Adapter::renew_call`] call.
    /// The default accepts any 2xx as a subscription the reply says nothing about.
    fn subscription_reply(
        &self,
        status: u16,
        body: &[u8],
    ) -> Result<push::Subscribed, ProviderError> {
        if (200..300).contains(&status) {
            Ok(push::Subscribed::default())
        } else {
            Err(self.classify_error(status, None, body))
        }
    }

    /// The calls, made with the user's token, that subscribe one user's data to
    /// `callback_url` (Withings, one per category), right after the connection is made.
    fn user_subscribe_calls(&self, _callback_url: &str) -> Vec<push::SubscriptionCall> {
        vec![]
    }

    /// The calls, with the user's token, that end one user's subscriptions, before the
    /// connection ends.
    fn user_unsubscribe_calls(&self, _callback_url: &str) -> Vec<push::SubscriptionCall> {
        vec![]
    }
}

/// How the built-in fixture server plays this provider: its recorded files and the
/// way the real API filters and pages them. Lives beside the adapter, its mirror image.
pub trait Impersonation: Send + Sync + 'static {
    /// One of the provider's fixture files (`oauth/token.json`, `data/sleep.json`,
    /// `errors/401.json`, …), embedded at compile time.
    fn fixture(&self, path: &str) -> Option<&'static str>;

    /// Answers one data request for `resource` from the whole fixture set `items`: the
    /// real API's date filtering, paging and envelope. `params` are the query and form
    /// fields. An `Err` is a 400 with that message.
    fn serve(
        &self,
        resource: &ResourceSpec,
        params: &std::collections::HashMap<String, String>,
        items: &[Value],
    ) -> Result<Value, String>;

    /// A data path that names one record instead of a list (Strava's
    /// `/activities/{id}`): the resource and the record's key. None, the default, for
    /// every other path.
    fn record_path(&self, _path: &str) -> Option<(Resource, String)> {
        None
    }

    /// Answers a single-record request from the resource's whole fixture set `items`
    /// (the data its list serves): the reply body, or None for an unknown key (a 404).
    fn serve_record(&self, _resource: Resource, _key: &str, _items: &[Value]) -> Option<Value> {
        None
    }

    /// How the provider answers an error the fixture server plays (an unknown token is
    /// 401, an injected rate limit 429, …): the HTTP status and body it really sends.
    fn error_reply(&self, status: u16) -> (u16, String) {
        let body = self
            .fixture(&format!("errors/{status}.json"))
            .map(str::to_string);
        (
            status,
            body.unwrap_or_else(|| format!(r#"{{"error":"HTTP {status}"}}"#)),
        )
    }

    /// The HTTP status the token endpoint answers an `invalid_grant` with.
    fn invalid_grant_status(&self) -> u16 {
        400
    }

    /// The resource a data path belongs to when it is not a manifest `path`: a resource
    /// read from several endpoints (Google Health's body is `weight` and `body-fat`).
    fn resource_at(&self, _path: &str) -> Option<Resource> {
        None
    }

    /// [`Impersonation::serve`] for a request to `path`, which is the resource's manifest
    /// path or one [`Impersonation::resource_at`] gave it. The default ignores the path.
    fn serve_at(
        &self,
        _path: &str,
        resource: &ResourceSpec,
        params: &std::collections::HashMap<String, String>,
        items: &[Value],
    ) -> Result<Value, String> {
        self.serve(resource, params, items)
    }

    /// A fixed 2xx reply for a path that is no resource (Google Health's identity).
    fn static_reply(&self, _path: &str) -> Option<&'static str> {
        None
    }

    /// A 2xx reply for a path that is no resource but describes the data served
    /// (Dexcom's `dataRange`), computed from `items`, the data set of a resource as the
    /// server serves it; `None` for any other path.
    fn derived_reply(&self, _path: &str, _items: &dyn Fn(Resource) -> Vec<Value>) -> Option<Value> {
        None
    }

    /// Keys whose integer values are Unix epoch seconds (Withings' `startdate`, …): the
    /// fixture server moves them forward with the dates, so the data never goes stale.
    /// ISO dates and RFC 3339 instants are moved whatever their key.
    fn epoch_fields(&self) -> &'static [&'static str] {
        &[]
    }

    /// The headers the provider sends about its rate limits with a data reply, when the
    /// fixture server enforces them: `windows` are the manifest's windows as counted for
    /// this request (in manifest order), `refused` the index of the one whose limit
    /// refused it, if one did, and `now` the server's time. The default sends none, as
    /// providers that document none do.
    fn rate_limit_headers(
        &self,
        _windows: &[WindowCount],
        _refused: Option<usize>,
        _now: DateTime<Utc>,
    ) -> Vec<(&'static str, String)> {
        vec![]
    }

    /// Whether a request refused by the `refused` window still counts in `window` (which
    /// may be the same one). The default: a refused request was not served and counts
    /// nowhere, the reading for providers that say nothing about it.
    fn refusal_counts(&self, _refused: &RateWindow, _window: &RateWindow) -> bool {
        false
    }

    /// Answers a request that is not a data page (Polar's `POST /v3/users`), or `None`
    /// when `method path` is not such a call. `registered` is the fixture server's
    /// memory of this provider's registrations, so a repeat can be refused as the real
    /// API refuses it. Returns the HTTP status and body.
    fn serve_call(
        &self,
        _method: &str,
        _path: &str,
        _body: &[u8],
        _registered: &mut std::collections::HashSet<String>,
    ) -> Option<(u16, String)> {
        None
    }

    /// Answers one step of a transaction that hands a resource's items over once
    /// (Polar's physical information: open, list, item, commit), or None when `method
    /// path` is no such step. `items` gives a resource's data set as the server serves
    /// it; `state` is the server's memory of this provider's transactions, so what a
    /// commit handed over is never served again. Returns the HTTP status and body.
    fn serve_transaction(
        &self,
        _method: &str,
        _path: &str,
        _items: &dyn Fn(Resource) -> Vec<Value>,
        _state: &mut FixtureTransactions,
    ) -> Option<(u16, String)> {
        None
    }

    // Push, as the provider sends it (see `push`). Defaults: no push at all.

    /// The notification(s) the provider sends about `change` to each of `subscriptions`
    /// that covers it, built and signed exactly as the provider does: the callback URL
    /// with its request. `secrets` are the app's credentials (what WHOOP and Oura sign
    /// with, and the keys a provider that publishes its keys rotated to); what a
    /// subscription agreed (Strava's id, Polar's signing key) is in it. `now` is when
    /// it is sent (the signature timestamp).
    fn push_for(
        &self,
        _change: &push::FixtureChange<'_>,
        _subscriptions: &[push::FixtureSubscription],
        _secrets: &push::PushSecrets,
        _now: DateTime<Utc>,
    ) -> Vec<(String, push::OutboundPush)> {
        vec![]
    }

    /// The document in which the provider publishes the public keys its notifications
    /// are signed with, as served at the path of its manifest's `push.keys_url`
    /// (Google's Tink keyset): the fixture's own key and those of `rotated`, the keys
    /// [`Impersonation::rotated_signing_key`] made (newest last, which signs). None
    /// where the provider publishes none.
    fn published_keys(&self, _rotated: &[String]) -> Option<String> {
        None
    }

    /// A new private key to sign notifications with from now on, as the provider
    /// rotating its keys makes one (handed back in [`push::PushSecrets::rotated_keys`]).
    /// None where the provider signs with no key it publishes.
    fn rotated_signing_key(&self) -> Option<String> {
        None
    }

    /// The query of the `GET` with which the provider checks a callback before accepting
    /// `subscription` (Strava's `hub.*`, Oura's `verification_token`/`challenge`), with
    /// `challenge` the random string to be echoed; None where the provider sends none.
    fn handshake_query(
        &self,
        _subscription: &push::FixtureSubscription,
        _challenge: &str,
    ) -> Option<Vec<(String, String)>> {
        None
    }

    /// Whether the callback's reply to that `GET` passes, as the provider judges it.
    fn handshake_accepted(&self, _challenge: &str, _status: u16, _body: &[u8]) -> bool {
        false
    }

    /// The `POST`s with which the provider checks a callback before accepting
    /// `subscription` (Polar's signed PING, Google's verification pair); every one must
    /// get one of its accepted statuses.
    fn verification_pushes(
        &self,
        _subscription: &push::FixtureSubscription,
        _secrets: &push::PushSecrets,
        _now: DateTime<Utc>,
    ) -> Vec<push::VerificationPush> {
        vec![]
    }

    /// Answers a subscription-management call as the provider does (`POST
    /// /push_subscriptions`, `/v2/webhook/subscription…`, `/v3/webhooks…`, Withings'
    /// `/notify`), or None when `req` is no such call. `subscriptions` is the fixture
    /// server's list for this provider: renewals and deletes change it here; a create is
    /// returned in [`push::SubscriptionServed::created`] for the fixture server to check
    /// and append. `secrets` are the app's credentials, which the call must carry.
    fn serve_subscription(
        &self,
        _req: &push::SubscriptionRequest<'_>,
        _subscriptions: &mut Vec<push::FixtureSubscription>,
        _secrets: &push::PushSecrets,
    ) -> Option<push::SubscriptionServed> {
        None
    }
}

/// The fixture server's memory of one provider's transactions (see
/// [`Impersonation::serve_transaction`]).
#[derive(Debug, Default)]
pub struct FixtureTransactions {
    /// The last transaction id handed out.
    pub last_id: i64,
    /// Open transactions by id: the user the path named and the keys of the items held.
    pub open: std::collections::HashMap<i64, (String, Vec<String>)>,
    /// (user, item key) handed over by a commit: never in a transaction again.
    pub committed: std::collections::HashSet<(String, String)>,
    /// Commits are answered with a 500 while set (a failing commit, for tests).
    pub fail_commits: bool,
}

/// A registered provider: its manifest, its adapter and its impersonation.
pub struct Provider {
    pub manifest: Manifest,
    pub adapter: Box<dyn Adapter>,
    pub impersonation: Box<dyn Impersonation>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.manifest.id)
            .finish()
    }
}

impl Provider {
    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// The provider as events name it.
    pub fn event_ref(&self) -> crate::events::ProviderRef {
        crate::events::ProviderRef {
            slug: self.manifest.id.clone(),
            name: self.manifest.name.clone(),
        }
    }

    pub fn resource(&self, r: Resource) -> Option<&ResourceSpec> {
        self.manifest.resources.iter().find(|s| s.name == r)
    }

    /// How many days one backfill window of `r` spans: the route's own cap, or the
    /// manifest's.
    pub fn window_days(&self, r: Resource) -> u32 {
        self.resource(r)
            .and_then(|s| s.window_days)
            .unwrap_or(self.manifest.window_days)
    }
}

fn load(
    id: &str,
    toml_text: &str,
    adapter: Box<dyn Adapter>,
    impersonation: Box<dyn Impersonation>,
) -> Provider {
    let manifest: Manifest =
        toml::from_str(toml_text).unwrap_or_else(|e| panic!("providers/{id}.toml is invalid: {e}"));
    assert_eq!(
        manifest.id, id,
        "providers/{id}.toml has id {}",
        manifest.id
    );
    Provider {
        manifest,
        adapter,
        impersonation,
    }
}

/// Every provider Wearbridge speaks, in one explicit list.
pub fn registry() -> &'static [Provider] {
    static REGISTRY: OnceLock<Vec<Provider>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        vec![
            // One line per provider: manifest, adapter, impersonation.
            load(
                "oura",
                include_str!("../../providers/oura.toml"),
                Box::new(oura::Oura),
                Box::new(oura::OuraFixtures),
            ),
            load(
                "strava",
                include_str!("../../providers/strava.toml"),
                Box::new(strava::Strava),
                Box::new(strava::StravaFixtures),
            ),
            load(
                "withings",
                include_str!("../../providers/withings.toml"),
                Box::new(withings::Withings),
                Box::new(withings::WithingsFixtures),
            ),
            load(
                "whoop",
                include_str!("../../providers/whoop.toml"),
                Box::new(whoop::Whoop),
                Box::new(whoop::WhoopFixtures),
            ),
            load(
                "dexcom",
                include_str!("../../providers/dexcom.toml"),
                Box::new(dexcom::Dexcom),
                Box::new(dexcom::DexcomFixtures),
            ),
            load(
                "google_health",
                include_str!("../../providers/google_health.toml"),
                Box::new(google_health::GoogleHealth),
                Box::new(google_health::GoogleHealthFixtures),
            ),
            load(
                "polar",
                include_str!("../../providers/polar.toml"),
                Box::new(polar::Polar),
                Box::new(polar::PolarFixtures),
            ),
        ]
    })
}

pub fn find(id: &str) -> Option<&'static Provider> {
    registry().iter().find(|p| p.id() == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn windows_run_newest_first_and_tile_the_history() {
        let now = at("2026-11-20T12:00:00Z");
        let w = plan_windows(now - ChronoDuration::days(100), now, 30);
        assert_eq!(w.len(), 4);
        assert_eq!(w[0].end, now);
        assert_eq!(w[0].start, now - ChronoDuration::days(30));
        for pair in w.windows(2) {
            assert_eq!(pair[0].start, pair[1].end, "no gap, no overlap");
            assert!(pair[0].start > pair[1].start, "newest first");
        }
        assert_eq!(
            w[3].start,
            now - ChronoDuration::days(100),
            "the oldest window stops at the history depth"
        );
        assert_eq!(w[3].end - w[3].start, ChronoDuration::days(10));
        assert_eq!(
            plan_windows(now - ChronoDuration::days(30), now, 30).len(),
            1
        );
        assert!(plan_windows(now, now, 30).is_empty());
    }

    #[test]
    fn every_registered_manifest_parses_and_is_consistent() {
        for p in registry() {
            let m = &p.manifest;
            assert!(
                m.window_days > 0 && m.history_days >= m.window_days,
                "{}",
                m.id
            );
            assert!(!m.resources.is_empty(), "{}", m.id);
            for r in &m.resources {
                assert!(
                    r.window_days
                        .is_none_or(|d| d > 0 && d <= m.window_days && d <= m.history_days),
                    "{} {}",
                    m.id,
                    r.name
                );
            }
            assert!(
                m.token_auth == "body" || m.token_auth == "basic",
                "{}",
                m.id
            );
            assert!(!m.rate_limit.windows.is_empty(), "{}: no rate limit", m.id);
            for w in &m.rate_limit.windows {
                assert!(w.requests > 0 && w.period_secs > 0, "{}: {w:?}", m.id);
            }
            for r in &m.resources {
                assert!(
                    r.kind == "summary" || r.kind == "timeseries",
                    "{} {}",
                    m.id,
                    r.name
                );
                assert_eq!(
                    r.kind == "timeseries",
                    r.name.is_timeseries(),
                    "{} {}",
                    m.id,
                    r.name
                );
            }
        }
    }
    #[test]
    fn every_push_section_names_only_the_manifests_resources() {
        let mut pushing = vec![];
        for p in registry() {
            let Some(push) = &p.manifest.push else {
                continue;
            };
            pushing.push(p.id());
            assert!(
                push.safety_poll_secs >= p.manifest.poll_interval_secs,
                "{}: the safety poll is rarer than the ordinary one",
                p.id()
            );
            assert!(
                push.quiet_secs > 0 && !push.notifications.is_empty(),
                "{}",
                p.id()
            );
            for n in &push.notifications {
                for r in &n.resources {
                    assert!(p.resource(*r).is_some(), "{} {}: no {r}", p.id(), n.kind);
                }
            }
            let kinds: std::collections::HashSet<&str> =
                push.notifications.iter().map(|n| n.kind.as_str()).collect();
            assert_eq!(
                kinds.len(),
                push.notifications.len(),
                "{}: a kind twice",
                p.id()
            );
        }
        pushing.sort_unstable();
        assert_eq!(
            pushing,
            [
                "google_health",
                "oura",
                "polar",
                "strava",
                "whoop",
                "withings"
            ]
        );
    }
}
