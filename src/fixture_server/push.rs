//! The fixture provider's push side. Subscriptions are made through the provider's own
//! API (`serve_subscription` of each impersonation), and take effect only once the
//! callback passes the provider's check (its handshake `GET`, or its verification
//! `POST`s), or are registered as a developer would in the provider's console (WHOOP,
//! Google). When the provider's data changes ([`FixtureServer::change`]) every
//! subscription covering it is notified, signed as the provider signs; faults make the
//! next notifications arrive with a bad signature, twice, out of order, or late. A
//! provider that signs with a key it publishes (Google) serves its keys at the path of
//! its manifest's `push.keys_url`, and can rotate to a new one
//! ([`FixtureServer::rotate_push_key`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{served_items, FixtureServer, FixtureState};
use crate::events::Resource;
use crate::providers::push::{
    FixtureChange, FixtureChangeKind, FixtureSubscription, OutboundPush, PushSecrets,
    SubscriptionRequest,
};
use crate::providers::{self, Provider};

/// A fault in the next notification the fixture provider sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushFault {
    /// Its signature (or, for Strava, its subscription id) does not match.
    BadSignature,
    /// Sent twice, as a provider's retry would.
    Duplicate,
    /// Held back and sent after the notification that follows it.
    OutOfOrder,
    /// Sent this much later.
    Delay(Duration),
}

/// One notification the fixture provider sent.
#[derive(Debug, Clone)]
pub struct PushSent {
    pub callback_url: String,
    /// When it left, on the server's clock (ms).
    pub sent_at_ms: i64,
    /// When it left, for measuring (monotonic).
    pub sent_at: Instant,
    /// The callback's status; `None` when no reply came.
    pub status: Option<u16>,
    /// How long the callback took to answer.
    pub took: Duration,
}

/// A change to make to the fixture provider's data.
#[derive(Debug, Clone)]
pub struct Change {
    /// The provider's id of the user (the connection's `external_user_id`).
    pub user: String,
    pub resource: Resource,
    pub kind: FixtureChangeKind,
    /// The record's item as the provider serves it (created or updated).
    pub item: Option<Value>,
    /// The record's provider id.
    pub record: Option<String>,
}

#[derive(Default)]
pub(super) struct PushState {
    subscriptions: HashMap<String, Vec<FixtureSubscription>>,
    faults: HashMap<String, VecDeque<PushFault>>,
    /// Notifications held back by [`PushFault::OutOfOrder`].
    held: HashMap<String, Vec<(String, OutboundPush)>>,
    sent: HashMap<String, Vec<PushSent>>,
    /// The signing keys each provider rotated to ([`FixtureServer::rotate_push_key`]),
    /// newest last.
    rotated: HashMap<String, Vec<String>>,
}

/// What the fixture provider signs with: the app's credentials as the gateway has them
/// (its `WEARBRIDGE_<ID>_CLIENT_ID` and `_CLIENT_SECRET`, or the same defaults), which
/// WHOOP and Oura sign with, and the keys it rotated to (Google).
pub(super) fn app_secrets(st: &FixtureState, p: &Provider) -> PushSecrets {
    let e = crate::oauth::Endpoints::resolve(p, Some("http://fixtures.invalid"));
    PushSecrets {
        client_id: e.client_id,
        client_secret: e.client_secret,
        rotated_keys: st
            .push
            .lock()
            .unwrap()
            .rotated
            .get(p.id())
            .cloned()
            .unwrap_or_default(),
        ..PushSecrets::default()
    }
}

/// The document of published keys `p` serves at `path` (the path of its manifest's
/// `push.keys_url`, below `/{id}`), with the keys it rotated to; None for another path.
pub(super) fn published_keys(st: &FixtureState, p: &Provider, path: &str) -> Option<String> {
    let url = p.manifest.push.as_ref()?.keys_url.as_deref()?;
    if url::Url::parse(url).ok()?.path() != path {
        return None;
    }
    let rotated = app_secrets(st, p).rotated_keys;
    p.impersonation.published_keys(&rotated)
}

impl FixtureServer {
    /// Registers `callback_url` for every notification of `provider`, as a developer
    /// does in the console of a provider whose subscriptions no API makes (WHOOP,
    /// Google).
    pub fn register_console_subscription(&self, provider: &str, callback_url: &str) {
        keep(
            &self.state,
            provider,
            FixtureSubscription {
                callback_url: callback_url.to_string(),
                ..FixtureSubscription::default()
            },
        );
    }

    /// Registers a subscriber for every notification of `provider` as a developer does
    /// in its console or with a Cloud credential (Google's `projects.subscribers.create`),
    /// giving it `secret` for the provider to send back (Google's
    /// `endpointAuthorization.secret`). The provider first checks the callback as it
    /// checks any (Google's verification pair); false, and nothing registered, when the
    /// check fails.
    pub async fn register_console_subscriber(
        &self,
        provider: &str,
        callback_url: &str,
        secret: &str,
    ) -> bool {
        let Some(p) = providers::find(provider) else {
            return false;
        };
        let sub = FixtureSubscription {
            callback_url: callback_url.to_string(),
            verify_token: Some(secret.to_string()),
            ..FixtureSubscription::default()
        };
        let now_ms = self.state.clock.lock().unwrap().now_ms();
        let now = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
        let secrets = app_secrets(&self.state, p);
        if !verify_callback(&self.state, p, &sub, &secrets, now).await {
            return false;
        }
        keep(&self.state, provider, sub);
        true
    }

    /// `provider` rotates the key it signs notifications with: from now on it signs
    /// with a new one, which its published keys (served at its manifest's
    /// `push.keys_url`) list beside the old. False where it publishes no keys.
    pub fn rotate_push_key(&self, provider: &str) -> bool {
        let Some(key) =
            providers::find(provider).and_then(|p| p.impersonation.rotated_signing_key())
        else {
            return false;
        };
        self.state
            .push
            .lock()
            .unwrap()
            .rotated
            .entry(provider.to_string())
            .or_default()
            .push(key);
        true
    }

    /// The subscriptions `provider` holds now.
    pub fn subscriptions(&self, provider: &str) -> Vec<FixtureSubscription> {
        self.state
            .push
            .lock()
            .unwrap()
            .subscriptions
            .get(provider)
            .cloned()
            .unwrap_or_default()
    }

    /// The next notification `provider` sends has `fault`.
    pub fn push_fault(&self, provider: &str, fault: PushFault) {
        self.state
            .push
            .lock()
            .unwrap()
            .faults
            .entry(provider.to_string())
            .or_default()
            .push_back(fault);
    }

    /// Every notification `provider` sent so far.
    pub fn pushes_sent(&self, provider: &str) -> Vec<PushSent> {
        self.state
            .push
            .lock()
            .unwrap()
            .sent
            .get(provider)
            .cloned()
            .unwrap_or_default()
    }

    /// Changes `provider`'s data as `change` says (a record created, updated or
    /// deleted; or the user revoking the app) and notifies every subscription that
    /// covers it, as the provider would. Returns the notifications sent now.
    pub async fn change(&self, provider: &str, change: Change) -> Vec<PushSent> {
        let Some(p) = providers::find(provider) else {
            return vec![];
        };
        {
            // Changes made at once must not lose each other: each reads the data set,
            // changes it and stores it back.
            let _one_at_a_time = self.state.push_apply.lock().unwrap();
            apply(&self.state, p, &change);
        }
        let now = self.state.clock.lock().unwrap().now_ms();
        let at = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default();
        let subs = self.subscriptions(provider);
        let fc = FixtureChange {
            user: &change.user,
            resource: change.resource,
            kind: change.kind,
            item: change.item.as_ref(),
            record: change.record.as_deref(),
            at,
        };
        let pushes = p
            .impersonation
            .push_for(&fc, &subs, &app_secrets(&self.state, p), at);
        let mut out = Vec::new();
        for (url, push) in pushes {
            let fault = self
                .state
                .push
                .lock()
                .unwrap()
                .faults
                .get_mut(provider)
                .and_then(VecDeque::pop_front);
            let mut batch = match fault {
                None => vec![(url, push)],
                Some(PushFault::BadSignature) => vec![(url, forged(push))],
                Some(PushFault::Duplicate) => vec![(url.clone(), push.clone()), (url, push)],
                Some(PushFault::OutOfOrder) => {
                    self.state
                        .push
                        .lock()
                        .unwrap()
                        .held
                        .entry(provider.to_string())
                        .or_default()
                        .push((url, push));
                    continue;
                }
                Some(PushFault::Delay(d)) => {
                    tokio::time::sleep(d).await;
                    vec![(url, push)]
                }
            };
            // What an out-of-order fault held back follows this one.
            batch.extend(
                self.state
                    .push
                    .lock()
                    .unwrap()
                    .held
                    .remove(provider)
                    .unwrap_or_default(),
            );
            for (url, push) in batch {
                let sent = send(&self.state, &url, &push).await;
                self.state
                    .push
                    .lock()
                    .unwrap()
                    .sent
                    .entry(provider.to_string())
                    .or_default()
                    .push(sent.clone());
                out.push(sent);
            }
        }
        out
    }
}

/// `sub` joins `provider`'s subscriptions.
fn keep(st: &FixtureState, provider: &str, sub: FixtureSubscription) {
    st.push
        .lock()
        .unwrap()
        .subscriptions
        .entry(provider.to_string())
        .or_default()
        .push(sub);
}

/// The notification with its proof spoilt: a signature header's value changed, or
/// where the provider signs nothing, the subscription (Strava) or user (Withings) it
/// names.
fn forged(mut push: OutboundPush) -> OutboundPush {
    let mut spoilt = false;
    for (name, value) in push.headers.iter_mut() {
        if name.to_ascii_lowercase().contains("signature") {
            let mut bytes = value.clone().into_bytes();
            // A digit for a digit: a letter swapped for its other case would still be
            // the same hex digit to a verifier that reads hex either way.
            if let Some(b) = bytes.first_mut() {
                *b = if *b == b'0' { b'1' } else { b'0' };
            }
            *value = String::from_utf8(bytes).unwrap_or_default();
            spoilt = true;
        }
    }
    if spoilt {
        return push;
    }
    if let Ok(Value::Object(mut m)) = serde_json::from_slice::<Value>(&push.body) {
        if m.contains_key("subscription_id") {
            m.insert("subscription_id".into(), Value::from(999_999_999u64));
            push.body = Value::Object(m).to_string().into_bytes();
        }
    } else if push
        .content_type
        .starts_with("application/x-www-form-urlencoded")
    {
        let fields: Vec<(String, String)> = url::form_urlencoded::parse(&push.body)
            .into_owned()
            .map(|(k, v)| {
                if k == "userid" {
                    (k, "999999999".into())
                } else {
                    (k, v)
                }
            })
            .collect();
        push.body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish()
            .into_bytes();
    }
    push
}

async fn send(st: &FixtureState, url: &str, push: &OutboundPush) -> PushSent {
    let sent_at_ms = st.clock.lock().unwrap().now_ms();
    let sent_at = Instant::now();
    let mut req = st
        .http
        .post(url)
        .query(&push.query)
        .header("content-type", push.content_type)
        .body(push.body.clone());
    for (k, v) in &push.headers {
        req = req.header(k, v);
    }
    let status = req.send().await.ok().map(|r| r.status().as_u16());
    PushSent {
        callback_url: url.to_string(),
        sent_at_ms,
        sent_at,
        status,
        took: sent_at.elapsed(),
    }
}

/// The change made to the data the provider serves.
fn apply(st: &FixtureState, p: &Provider, change: &Change) {
    let imp = p.impersonation.as_ref();
    let is_it = |v: &Value| match change.record.as_deref() {
        Some(key) => {
            imp.serve_record(change.resource, key, std::slice::from_ref(v))
                .is_some()
                || crate::providers::push::id_text(&v["id"]).as_deref() == Some(key)
        }
        None => false,
    };
    if change.kind == FixtureChangeKind::Deauthorized {
        // The user's tokens stop working, as after a revocation.
        return;
    }
    let current = served_items(st, p.id(), imp, change.resource);
    let mut sets = st.items.lock().unwrap();
    let items = sets
        .entry((p.id().to_string(), change.resource))
        .or_insert(current);
    // Changed in place, unless a page being served (or the page cache) holds the data
    // set: then it is copied, and whoever holds the old one keeps it as it was. A copy
    // per change would make a run of changes cost the square of the data set.
    let items = std::sync::Arc::make_mut(items);
    match change.kind {
        FixtureChangeKind::Created | FixtureChangeKind::Updated => {
            let Some(item) = change.item.clone() else {
                return;
            };
            match items.iter().position(is_it) {
                Some(i) => items[i] = item,
                None => items.push(item),
            }
        }
        FixtureChangeKind::Deleted => items.retain(|v| !is_it(v)),
        FixtureChangeKind::Deauthorized => {}
    }
}

/// A subscription-management call, answered as the provider does; a created
/// subscription takes effect once its callback passes the provider's check. `None` when
/// the request is no such call.
pub(super) async fn subscription_call(
    st: &FixtureState,
    p: &'static Provider,
    method: &str,
    path: &str,
    headers: &axum::http::HeaderMap,
    params: &BTreeMap<String, String>,
    body: &[u8],
) -> Option<(u16, String)> {
    let imp = p.impersonation.as_ref();
    let secrets = app_secrets(st, p);
    let now_ms = st.clock.lock().unwrap().now_ms();
    let now = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    let req = SubscriptionRequest {
        method,
        path,
        headers,
        params,
        body,
        now,
    };
    let served = {
        let mut push = st.push.lock().unwrap();
        let list = push.subscriptions.entry(p.id().to_string()).or_default();
        imp.serve_subscription(&req, list, &secrets)?
    };
    let Some(sub) = served.created else {
        return Some((served.status, served.body));
    };
    if verify_callback(st, p, &sub, &secrets, now).await {
        keep(st, p.id(), sub);
        Some((served.status, served.body))
    } else {
        Some(served.if_unverified.unwrap_or((
            400,
            r#"{"error":"the callback did not pass verification"}"#.to_string(),
        )))
    }
}

/// The provider's check of a callback before it accepts a subscription: its handshake
/// `GET` with a challenge to echo, and its verification `POST`s.
async fn verify_callback(
    st: &FixtureState,
    p: &Provider,
    sub: &FixtureSubscription,
    secrets: &PushSecrets,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    let imp = p.impersonation.as_ref();
    let challenge = crate::seal::random_token(16);
    if let Some(query) = imp.handshake_query(sub, &challenge) {
        let reply = st.http.get(&sub.callback_url).query(&query).send().await;
        let Ok(reply) = reply else {
            return false;
        };
        let status = reply.status().as_u16();
        let body = reply.bytes().await.unwrap_or_default();
        if !imp.handshake_accepted(&challenge, status, &body) {
            return false;
        }
    }
    for v in imp.verification_pushes(sub, secrets, now) {
        let sent = send(st, &sub.callback_url, &v.push).await;
        if !sent.status.is_some_and(|s| v.accepted.contains(&s)) {
            return false;
        }
    }
    true
}
