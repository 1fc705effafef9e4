//! Subscriptions to providers' notifications, managed for the operator: the app's own
//! (created through the provider's API where it has one, then renewed before they
//! expire) and each connection's where the provider subscribes per user (Withings: made
//! on connect, removed on deregister). Every outcome is kept
//! (`Store::save_push_subscription`) and shown by `GET /v1/providers`. What verifying a
//! notification needs of them ([`Subscriber::secrets`]) is read here too, with the keys
//! a provider publishes for its signatures ([`PublishedKeys`]: Google's keyset).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::oauth::OAuthClients;
use crate::providers::push::{
    PushSecrets, SubscriptionCall, SubscriptionManagement, SubscriptionScope,
};
use crate::providers::{self, Provider};
use crate::seal::{Purpose, Sealer};
use crate::store::{Connection, PushSubscription, Store};

/// Renew a subscription when less than this share of its life is left.
const RENEW_WHEN_LEFT: f64 = 0.25;

/// Published keys are fetched again at most this often (ms) when notifications name a
/// key we do not hold: a forger naming made-up key ids costs the provider's key server
/// one request a minute, not one per request.
const REFETCH_KEYS_AFTER_MS: i64 = 60_000;

/// Published keys older than this (ms) are fetched again before use, so a key the
/// provider withdrew stops verifying within the hour.
const KEYS_MAX_AGE_MS: i64 = 3_600_000;

#[derive(Clone)]
pub struct Subscriber {
    pub store: Store,
    pub sealer: Sealer,
    pub oauth: OAuthClients,
    pub http: reqwest::Client,
    /// This gateway's base URL as providers reach it.
    pub public_url: String,
    /// The keys providers publish, as last fetched: one cache for every clone (every
    /// request this process serves).
    pub keys: PublishedKeys,
}

/// The public keys each provider publishes at its `push.keys_url` (Google's Tink
/// keyset), as this process last fetched them. Fetched on first need, again when they
/// are an hour old, and again when a notification names a key not among them (the
/// provider rotated), at most once a minute; a failed fetch keeps what was held and is
/// logged. One fetch at a time per provider: requests that need it meanwhile wait for
/// its outcome instead of fetching too.
#[derive(Clone, Default)]
pub struct PublishedKeys(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<Held>>>>>);

#[derive(Debug, Default)]
struct Held {
    /// The published document, as fetched (the adapter reads it).
    document: Option<String>,
    /// When it was fetched (ms, the store's clock).
    fetched_at: Option<i64>,
    /// When a fetch was last tried, whatever came of it.
    tried_at: Option<i64>,
}

/// Why a fetch of published keys is made now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeysWanted {
    /// To verify a notification: fetch if none are held or they are old.
    Current,
    /// A notification named a key not held: fetch unless one was tried within
    /// [`REFETCH_KEYS_AFTER_MS`].
    Fresh,
}

impl PublishedKeys {
    fn slot(&self, provider: &str) -> Arc<tokio::sync::Mutex<Held>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(provider.to_string())
            .or_default()
            .clone()
    }

    /// The document published at `url` for `provider`, fetched with `http` when
    /// `wanted` says so; `None` when none was ever fetched. The bool says whether a
    /// fetch was made now and succeeded.
    async fn get(
        &self,
        provider: &str,
        url: &str,
        http: &reqwest::Client,
        now: i64,
        wanted: KeysWanted,
    ) -> (Option<String>, bool) {
        let slot = self.slot(provider);
        let mut held = slot.lock().await;
        let since = |t: Option<i64>| t.map(|t| now.saturating_sub(t));
        let fetch = match wanted {
            KeysWanted::Current => {
                held.tried_at.is_none()
                    || (since(held.fetched_at).is_none_or(|age| age >= KEYS_MAX_AGE_MS)
                        && since(held.tried_at).is_some_and(|t| t >= REFETCH_KEYS_AFTER_MS))
            }
            KeysWanted::Fresh => since(held.tried_at).is_none_or(|t| t >= REFETCH_KEYS_AFTER_MS),
        };
        if !fetch {
            return (held.document.clone(), false);
        }
        held.tried_at = Some(now);
        match fetch_document(http, url).await {
            Ok(doc) => {
                tracing::info!(provider, url, "fetched the provider's published push keys");
                held.document = Some(doc);
                held.fetched_at = Some(now);
                (held.document.clone(), true)
            }
            Err(e) => {
                tracing::warn!(
                    provider,
                    url,
                    error = %e,
                    held = held.document.is_some(),
                    "fetching the provider's published push keys failed; notifications the keys held cannot verify are refused with 401 (the provider retries), and the fetch is tried again in a minute"
                );
                (held.document.clone(), false)
            }
        }
    }
}

/// A published key document: a 2xx reply's body as text.
async fn fetch_document(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let resp = http.get(url).send().await?;
    let status = resp.status();
    anyhow::ensure!(status.is_success(), "the key server answered {status}");
    Ok(resp.text().await?)
}

impl Subscriber {
    /// Where `p` sends its notifications.
    pub fn callback_url(&self, p: &Provider) -> String {
        format!(
            "{}/v1/providers/{}/notifications",
            self.public_url.trim_end_matches('/'),
            p.id()
        )
    }

    /// The token we give `p` when subscribing, which its handshake echoes: derived from
    /// the master key, so every process agrees and nobody else can produce it.
    pub fn verify_token(&self, p: &Provider) -> String {
        self.sealer
            .derived_token(&format!("push verify token/{}", p.id()))
    }

    /// The secret to give a provider whose subscription is made by hand, where it asks
    /// for one to send back with every notification (Google's
    /// `endpointAuthorization.secret`, a whole `Authorization` header value): our verify
    /// token as a bearer token.
    pub fn console_secret(&self, p: &Provider) -> String {
        format!("Bearer {}", self.verify_token(p))
    }

    /// What verifying `p`'s requests needs: the app's credentials, our verify token,
    /// what its live subscriptions returned, and the keys it publishes (fetched if
    /// none are held or they are old) with those the operator configured.
    pub async fn secrets(&self, p: &Provider) -> anyhow::Result<PushSecrets> {
        let (published, _) = self.published_keys(p, KeysWanted::Current).await;
        self.secrets_with(p, published).await
    }

    /// [`Subscriber::secrets`] after a notification named a key not among them: with
    /// `p`'s published keys fetched anew, or None when no new fetch is due (one was
    /// tried within the last minute, or it failed), so there is nothing new to try.
    pub async fn secrets_with_fresh_keys(
        &self,
        p: &Provider,
    ) -> anyhow::Result<Option<PushSecrets>> {
        match self.published_keys(p, KeysWanted::Fresh).await {
            (published, true) => Ok(Some(self.secrets_with(p, published).await?)),
            (_, false) => Ok(None),
        }
    }

    /// The document `p` publishes its keys in, where it publishes one.
    async fn published_keys(&self, p: &Provider, wanted: KeysWanted) -> (Option<String>, bool) {
        let Some(url) = self.oauth.endpoints(p).push_keys_url else {
            return (None, false);
        };
        let now = self.store.clock().now_ms();
        self.keys.get(p.id(), &url, &self.http, now, wanted).await
    }

    async fn secrets_with(
        &self,
        p: &Provider,
        published: Option<String>,
    ) -> anyhow::Result<PushSecrets> {
        let endpoints = self.oauth.endpoints(p);
        let subs = self.store.push_subscriptions(Some(p.id())).await?;
        let live: Vec<&PushSubscription> = subs.iter().filter(|s| s.status == "active").collect();
        let signing_secret = live
            .iter()
            .rev()
            .find_map(|s| s.signing_secret_sealed.as_deref())
            .map(|sealed| self.sealer.open(Purpose::PushSigningSecret, sealed))
            .transpose()?;
        Ok(PushSecrets {
            client_id: endpoints.client_id,
            client_secret: endpoints.client_secret,
            verify_token: self.verify_token(p),
            signing_secret,
            subscription_ids: live.iter().filter_map(|s| s.remote_id.clone()).collect(),
            public_keys: published.into_iter().chain(public_keys(p)).collect(),
            rotated_keys: vec![],
        })
    }

    /// Makes the app's subscriptions to `p` (replacing the ones held), where the
    /// provider makes them through its API. The provider checks the callback while we
    /// wait (Strava's and Oura's handshakes), so the gateway must be serving.
    pub async fn subscribe_app(
        &self,
        p: &'static Provider,
    ) -> anyhow::Result<Vec<PushSubscription>> {
        let Some(push) = &p.manifest.push else {
            anyhow::bail!("{} sends no notifications", p.id());
        };
        if push.subscription.scope != SubscriptionScope::App
            || push.subscription.managed != SubscriptionManagement::Api
        {
            anyhow::bail!(
                "{}'s subscriptions are not made through its API by the app: {}",
                p.id(),
                match push.subscription.scope {
                    SubscriptionScope::User => "they are made per user, on connect".to_string(),
                    SubscriptionScope::App => format!(
                        "register the callback {} in its developer console (where it asks for a secret to send back, give it `{}`)",
                        self.callback_url(p),
                        self.console_secret(p)
                    ),
                }
            );
        }
        let secrets = self.secrets(p).await?;
        let callback = self.callback_url(p);
        let mut made = Vec::new();
        for call in p.adapter.subscribe_calls(&callback, &secrets) {
            made.push(self.make(p, None, &callback, &call, None).await);
        }
        // What these replace (a repeated subscribe keeps only the newest).
        for old in self.store.push_subscriptions(Some(p.id())).await? {
            if old.connection_id.is_none() && !made.iter().any(|m| m.id == old.id) {
                self.store.delete_push_subscription(&old.id).await?;
            }
        }
        Ok(made)
    }

    /// Renews every subscription that expires soon (where the provider renews).
    pub async fn renew_due(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let mut renewed = 0;
        for s in self.store.push_subscriptions(None).await? {
            let (Some(p), Some(expires), Some(remote)) = (
                providers::find(&s.provider),
                s.expires_at,
                s.remote_id.as_deref(),
            ) else {
                continue;
            };
            let life = p
                .manifest
                .push
                .as_ref()
                .and_then(|push| push.subscription.expiry_secs)
                .unwrap_or(0) as f64
                * 1000.0;
            if s.status != "active"
                || (expires - now.timestamp_millis()) as f64 > life * RENEW_WHEN_LEFT
            {
                continue;
            }
            let secrets = self.secrets(p).await?;
            if let Some(call) = p.adapter.renew_call(remote, &secrets) {
                let r = self.make(p, None, &s.callback_url, &call, Some(&s)).await;
                tracing::info!(provider = p.id(), subscription = %s.id, status = %r.status, "subscription renewed");
                renewed += 1;
            }
        }
        Ok(renewed)
    }

    /// Makes a connection's own subscriptions (Withings'), with its access token.
    pub async fn subscribe_user(&self, p: &'static Provider, conn: &Connection, token: &str) {
        let callback = self.callback_url(p);
        for call in p.adapter.user_subscribe_calls(&callback) {
            let s = self
                .make(p, Some((conn, token)), &callback, &call, None)
                .await;
            if s.status != "active" {
                tracing::warn!(provider = p.id(), connection = %conn.id, error = ?s.error, "per-user subscription failed; polling covers the user");
            }
        }
    }

    /// Removes a connection's own subscriptions before it ends. Best effort.
    pub async fn unsubscribe_user(&self, p: &'static Provider, conn: &Connection, token: &str) {
        let callback = self.callback_url(p);
        for call in p.adapter.user_unsubscribe_calls(&callback) {
            if let Err(e) = self.send(p, Some(token), &call).await {
                tracing::warn!(provider = p.id(), connection = %conn.id, error = %e, "removing a per-user subscription failed");
            }
        }
        if let Ok(subs) = self.store.push_subscriptions(Some(p.id())).await {
            for s in subs
                .iter()
                .filter(|s| s.connection_id == Some(conn.id.to_string()))
            {
                let _ = self.store.delete_push_subscription(&s.id).await;
            }
        }
    }

    /// One subscription call and what became of it, saved.
    async fn make(
        &self,
        p: &'static Provider,
        user: Option<(&Connection, &str)>,
        callback: &str,
        call: &SubscriptionCall,
        renewing: Option<&PushSubscription>,
    ) -> PushSubscription {
        let result = match self.send(p, user.map(|u| u.1), call).await {
            Ok((status, body)) => p
                .adapter
                .subscription_reply(status, &body)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut s = renewing.cloned().unwrap_or_else(|| PushSubscription {
            id: Uuid::new_v4().to_string(),
            provider: p.id().to_string(),
            connection_id: user.map(|u| u.0.id.to_string()),
            remote_id: None,
            callback_url: callback.to_string(),
            status: String::new(),
            expires_at: None,
            error: None,
            updated_at: 0,
            signing_secret_sealed: None,
        });
        match result {
            Ok(sub) => {
                s.status = "active".into();
                s.error = None;
                s.remote_id = sub.remote_id.or(s.remote_id);
                s.expires_at = sub
                    .expires_at
                    .map(|t| t.timestamp_millis())
                    .or(s.expires_at);
                if let Some(secret) = sub.signing_secret {
                    s.signing_secret_sealed =
                        Some(self.sealer.seal(Purpose::PushSigningSecret, &secret));
                }
            }
            Err(e) => {
                tracing::warn!(provider = p.id(), error = %e, "subscription call failed");
                s.status = "failed".into();
                s.error = Some(e);
            }
        }
        if let Err(e) = self.store.save_push_subscription(&s).await {
            tracing::warn!(provider = p.id(), error = %e, "saving a subscription failed");
        }
        s
    }

    /// Sends a subscription call: its URL resolved against where the provider is
    /// reached (the fixture server, a sandbox), its credentials as the call says.
    async fn send(
        &self,
        p: &Provider,
        token: Option<&str>,
        call: &SubscriptionCall,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let endpoints = self.oauth.endpoints(p);
        let url = resolve(&call.url, &p.manifest.base_url, &endpoints.base_url);
        let method = reqwest::Method::from_bytes(call.method.as_bytes())?;
        let mut r = self.http.request(method, &url).query(&call.query);
        if let Some(json) = &call.json {
            r = r.json(json);
        } else if !call.form.is_empty() {
            r = r.form(&call.form);
        }
        for (k, v) in &call.headers {
            r = r.header(k, v);
        }
        if call.basic_auth {
            r = r.basic_auth(&endpoints.client_id, Some(&endpoints.client_secret));
        }
        if call.user_token {
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
        }
        let resp = r.send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.bytes().await?.to_vec()))
    }
}

/// A subscription call's URL: relative to where the provider is reached, or absolute;
/// an absolute one under the manifest's base URL (or on the provider's host) goes where
/// the provider is reached instead when that is elsewhere (fixtures, a sandbox).
fn resolve(url: &str, manifest_base: &str, base: &str) -> String {
    let base = base.trim_end_matches('/');
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return format!("{base}{url}");
    }
    if let Some(rest) = url.strip_prefix(manifest_base.trim_end_matches('/')) {
        return format!("{base}{rest}");
    }
    if base == manifest_base.trim_end_matches('/') {
        return url.to_string();
    }
    match url::Url::parse(url) {
        Ok(u) => format!("{base}{}", u.path()),
        Err(_) => url.to_string(),
    }
}

/// The keys `p` signs notifications with as the operator configures them
/// (`WEARBRIDGE_<ID>_PUSH_PUBLIC_KEYS`), besides those it publishes: PEM blocks, or one
/// key in the form the provider publishes it (Google's Tink keyset JSON, a base64 DER
/// key), which its adapter reads.
fn public_keys(p: &Provider) -> Vec<String> {
    let name = format!("WEARBRIDGE_{}_PUSH_PUBLIC_KEYS", p.id().to_uppercase());
    let Some(v) = std::env::var(name).ok().filter(|v| !v.trim().is_empty()) else {
        return vec![];
    };
    if !v.contains("-----BEGIN") {
        return vec![v.trim().to_string()];
    }
    v.split("-----END PUBLIC KEY-----")
        .filter(|k| k.contains("-----BEGIN"))
        .map(|k| format!("{}-----END PUBLIC KEY-----", k.trim()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::resolve;
    use super::{KeysWanted, PublishedKeys};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Fetched on first need, kept, fetched again when an hour old or when a
    /// notification names an unknown key (at most once a minute); a failed fetch keeps
    /// what was held.
    #[tokio::test]
    async fn published_keys_are_cached_and_fetched_again_at_most_once_a_minute() {
        let hits = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let (h, f) = (hits.clone(), failing.clone());
        let app = axum::Router::new().route(
            "/keys.json",
            axum::routing::get(move || {
                let (h, f) = (h.clone(), f.clone());
                async move {
                    let n = h.fetch_add(1, Ordering::SeqCst) + 1;
                    if f.load(Ordering::SeqCst) {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new())
                    } else {
                        (axum::http::StatusCode::OK, format!("keyset {n}"))
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/keys.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let (keys, http) = (PublishedKeys::default(), reqwest::Client::new());
        let get = |now: i64, wanted| {
            let (keys, http, url) = (keys.clone(), http.clone(), url.clone());
            async move { keys.get("google_health", &url, &http, now, wanted).await }
        };
        let doc = |n: usize| Some(format!("keyset {n}"));
        assert_eq!(get(0, KeysWanted::Current).await, (doc(1), true));
        assert_eq!(get(59_000, KeysWanted::Current).await, (doc(1), false));
        // An unknown key within a minute of the last fetch: no fetch.
        assert_eq!(get(59_000, KeysWanted::Fresh).await, (doc(1), false));
        assert_eq!(get(60_000, KeysWanted::Fresh).await, (doc(2), true));
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        // Failing: what was held is kept, and tried again only a minute later.
        failing.store(true, Ordering::SeqCst);
        assert_eq!(get(120_000, KeysWanted::Fresh).await, (doc(2), false));
        assert_eq!(get(150_000, KeysWanted::Fresh).await, (doc(2), false));
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        failing.store(false, Ordering::SeqCst);
        // An hour after the last fetch, plain use fetches again.
        assert_eq!(get(3_659_000, KeysWanted::Current).await, (doc(2), false));
        assert_eq!(get(3_660_000, KeysWanted::Current).await, (doc(4), true));
        // Nothing reachable at all: none held, no panic.
        let gone = PublishedKeys::default();
        assert_eq!(
            gone.get(
                "google_health",
                "http://127.0.0.1:1/k.json",
                &http,
                0,
                KeysWanted::Current
            )
            .await,
            (None, false)
        );
    }

    #[test]
    fn subscription_urls_go_where_the_provider_is_reached() {
        let m = "https://www.strava.com/api/v3";
        assert_eq!(
            resolve("https://www.strava.com/api/v3/push_subscriptions", m, m),
            "https://www.strava.com/api/v3/push_subscriptions"
        );
        assert_eq!(
            resolve(
                "https://www.strava.com/api/v3/push_subscriptions",
                m,
                "http://127.0.0.1:9/strava"
            ),
            "http://127.0.0.1:9/strava/push_subscriptions"
        );
        assert_eq!(
            resolve(
                "/notify",
                "https://wbsapi.withings.net",
                "http://127.0.0.1:9/withings"
            ),
            "http://127.0.0.1:9/withings/notify"
        );
        assert_eq!(
            resolve(
                "https://other.example/hooks",
                m,
                "http://127.0.0.1:9/strava"
            ),
            "http://127.0.0.1:9/strava/hooks"
        );
    }
}
