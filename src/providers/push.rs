//! Push: a provider's notifications, as data (the manifest's `[push]` section) and as
//! behaviour (the push methods of [`super::Adapter`] and [`super::Impersonation`]).
//! Pure, like the rest of `providers`: verifying a notification, reading what it names
//! and building the calls that manage subscriptions never does I/O. The gateway's
//! `POST/GET /v1/providers/{provider}/notifications` route, the notification log and
//! the targeted pulls a notification causes live in `api` and `poller`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Window;
use crate::events::Resource;

/// How a provider pushes, as its manifest states it.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushSpec {
    pub mode: PushMode,
    /// How each notification proves it came from the provider.
    pub signature: SignatureScheme,
    pub subscription: SubscriptionSpec,
    /// The provider's normal silence: pushes quieter than this for a connection mean
    /// they stopped, and its polling returns to `poll_interval_secs`.
    pub quiet_secs: u64,
    /// The poll interval while pushes arrive: the safety net for a lost notification.
    pub safety_poll_secs: u64,
    /// Which resources each kind of notification touches (the provider's own names:
    /// Oura's `data_type`, WHOOP's `type`, Strava's `object_type`, Withings' `appli`).
    pub notifications: Vec<NotificationSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PushMode {
    /// The notification names what changed; the data is pulled.
    NotifyThenPull,
    /// The notification carries the data itself.
    FullPayload,
}

/// How a provider signs (or otherwise proves) its notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureScheme {
    /// HMAC-SHA256 over a timestamp header and the raw body with the client secret
    /// (WHOOP: base64; Oura: upper-case hex).
    HmacSha256TimestampBody,
    /// HMAC-SHA256 of the raw body with a secret the provider returned when the webhook
    /// was created (Polar, hex).
    HmacSha256Body,
    /// No signature: the subscription id the provider returned and the user it names
    /// must match ours (Strava).
    SubscriptionId,
    /// No signature: the notification names a user with a live subscription, for a
    /// category we subscribed to, at the callback URL we registered (Withings).
    SubscribedUser,
    /// ECDSA P-256 over the body with a key the provider publishes (Google Health).
    EcdsaP256,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSpec {
    pub scope: SubscriptionScope,
    /// Made through the provider's API (by the gateway, or `wearbridge providers
    /// subscribe`), or by hand in the provider's developer console.
    pub managed: SubscriptionManagement,
    /// How long a subscription lives before it must be renewed; `None` for ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionScope {
    /// One subscription for the whole app (Strava, Oura, WHOOP, Polar, Google).
    App,
    /// One per connected user, made on connect and removed on deregister (Withings).
    User,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionManagement {
    Api,
    Console,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationSpec {
    /// The provider's name for this kind of notification.
    pub kind: String,
    #[schema(value_type = Vec<String>)]
    pub resources: Vec<Resource>,
}

/// What verifying and answering a provider's requests needs: the app's credentials and
/// what was agreed when subscribing.
#[derive(Debug, Clone, Default)]
pub struct PushSecrets {
    pub client_id: String,
    pub client_secret: String,
    /// The token we gave the provider when subscribing, which it echoes in its
    /// handshake (Strava's `hub.verify_token`, Oura's `verification_token`).
    pub verify_token: String,
    /// A secret the provider returned when the subscription was made (Polar's
    /// `signature_secret_key`).
    pub signing_secret: Option<String>,
    /// The provider's subscription ids we hold (Strava's `subscription_id`).
    pub subscription_ids: Vec<String>,
    /// Public keys the provider signs with (Google Health), as the provider publishes
    /// them.
    pub public_keys: Vec<String>,
}

/// An inbound request to the notifications route, as the adapter sees it.
#[derive(Debug, Clone, Copy)]
pub struct PushRequest<'a> {
    pub headers: &'a reqwest::header::HeaderMap,
    pub query: &'a BTreeMap<String, String>,
    pub body: &'a [u8],
    /// When it arrived: signatures with a timestamp older than the provider's
    /// tolerance are refused as replays.
    pub now: DateTime<Utc>,
}

/// Why a request to the notifications route was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// 401: not provably from the provider (bad, missing or stale signature, unknown
    /// subscription, wrong verify token). Nothing changes.
    #[error("unverified: {0}")]
    Unverified(String),
    /// 400: verified (or unverifiable only because it is unreadable) but not a
    /// notification we can read. Nothing changes.
    #[error("malformed notification: {0}")]
    Malformed(String),
}

/// One thing a notification says happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// The provider's id of the user (our connection's `external_user_id`).
    pub user: String,
    /// Stable over the provider's retries and replays of this notification: its own id
    /// where it has one, else a digest of what it says.
    pub key: String,
    pub action: NoticeAction,
    /// When the provider says the change happened.
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NoticeAction {
    /// Records of `resource` changed: pull the one named (`record`, the provider's id,
    /// where the provider names it and the adapter can read one record), else `window`,
    /// else the resource's poll window.
    Changed {
        resource: Resource,
        record: Option<String>,
        window: Option<Window>,
    },
    /// The provider deleted one record.
    Deleted { resource: Resource, record: String },
    /// The user revoked the app's access.
    Deauthorized,
    /// Verified, but nothing we ingest (a profile rename, a data type we do not model).
    Ignored(String),
}

/// A call to the provider that manages a subscription. App-level calls carry the app's
/// credentials as the provider wants them; user-level calls go with the user's token.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionCall {
    pub method: &'static str,
    /// Absolute, or relative to the manifest's `base_url`.
    pub url: String,
    pub query: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
    pub json: Option<Value>,
    pub headers: Vec<(String, String)>,
    /// HTTP Basic with the client id and secret (Polar).
    pub basic_auth: bool,
    /// The user's bearer token (Withings' per-user subscriptions).
    pub user_token: bool,
}

/// A subscription as the provider described it in its reply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subscribed {
    pub remote_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub signing_secret: Option<String>,
}

/// A change the fixture provider makes to its data, which it then notifies.
#[derive(Debug, Clone, PartialEq)]
pub struct FixtureChange<'a> {
    /// The provider's id of the user.
    pub user: &'a str,
    pub resource: Resource,
    pub kind: FixtureChangeKind,
    /// The record's item as the fixture serves it (`None` for a deauthorization).
    pub item: Option<&'a Value>,
    /// The record's provider id.
    pub record: Option<&'a str>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixtureChangeKind {
    Created,
    Updated,
    Deleted,
    Deauthorized,
}

/// A notification as the fixture provider sends it: signed as the provider signs.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundPush {
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}
