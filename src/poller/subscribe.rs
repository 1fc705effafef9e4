//! Subscriptions to providers' notifications, managed for the operator: the app's own
//! (created through the provider's API where it has one, then renewed before they
//! expire) and each connection's where the provider subscribes per user (Withings: made
//! on connect, removed on deregister). Every outcome is kept
//! (`Store::save_push_subscription`) and shown by `GET /v1/providers`. What verifying a
//! notification needs of them ([`Subscriber::secrets`]) is read here too.

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

#[derive(Clone)]
pub struct Subscriber {
    pub store: Store,
    pub sealer: Sealer,
    pub oauth: OAuthClients,
    pub http: reqwest::Client,
    /// This gateway's base URL as providers reach it.
    pub public_url: String,
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

    /// What verifying `p`'s requests needs: the app's credentials, our verify token,
    /// and what its live subscriptions returned.
    pub async fn secrets(&self, p: &Provider) -> anyhow::Result<PushSecrets> {
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
            public_keys: public_keys(p),
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
                    SubscriptionScope::User => "they are made per user, on connect",
                    SubscriptionScope::App => "register the callback in its developer console",
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

/// The keys `p` signs notifications with, as the operator configures them
/// (`WEARBRIDGE_<ID>_PUSH_PUBLIC_KEYS`): PEM blocks, or one key in the form the
/// provider publishes it (Google's Tink keyset JSON, a base64 DER key), which its
/// adapter reads.
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
