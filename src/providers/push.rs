//! Push: a provider's notifications, as data (the manifest's `[push]` section) and as
//! behaviour (the push methods of [`super::Adapter`] and [`super::Impersonation`]).
//! Pure, like the rest of `providers`: verifying a notification, reading what it names
//! and building the calls that manage subscriptions never does I/O. The gateway's
//! `POST/GET /v1/providers/{provider}/notifications` route, the notification log and
//! the targeted pulls a notification causes live in `api` and `poller`.
//!
//! # The route, step by step
//!
//! 1. [`super::Adapter::push_handshake`]: the provider checking the callback (a `GET`
//!    challenge, Google's verification `POST`s, Withings' reachability check, Polar's
//!    PING) is answered here with the [`PushReply`] it wants, or refused (401); `None`
//!    means the request is a notification.
//! 2. [`super::Adapter::verify_push`] with the provider's [`PushSecrets`]: 401 on `Err`.
//! 3. [`super::Adapter::parse_push`]: 400 on `Malformed`; else the [`Notice`]s, deduped by
//!    `key`, and [`super::Adapter::push_ack`] as the reply.
//!
//! Subscribing: app-level calls from [`super::Adapter::subscribe_calls`] (renewed with
//! [`super::Adapter::renew_call`] before [`Subscribed::expires_at`]), user-level ones from
//! [`super::Adapter::user_subscribe_calls`] on connect and
//! [`super::Adapter::user_unsubscribe_calls`] before disconnect; every reply goes to
//! [`super::Adapter::subscription_reply`]. What it returns feeds the secrets later
//! verification needs: `remote_id` into [`PushSecrets::subscription_ids`] (Strava),
//! `signing_secret` into [`PushSecrets::signing_secret`] (Polar, shown once).
//!
//! The fixture provider's side ([`super::Impersonation`]): `serve_subscription` answers
//! those calls and names the [`FixtureSubscription`] a create makes, which the fixture
//! server keeps once its callback passes `handshake_query`/`handshake_accepted` or
//! `verification_pushes`; `push_for` then builds each notification about a
//! [`FixtureChange`] for the subscriptions that cover it, signed as the provider signs.

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
    /// Where the provider publishes the public keys it signs notifications with
    /// (Google's Tink keyset). The gateway fetches them, keeps them, and fetches them
    /// again when a notification names a key it does not hold (the provider rotated);
    /// `WEARBRIDGE_<ID>_PUSH_KEYS_URL` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_url: Option<String>,
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
    /// them: fetched from the manifest's `push.keys_url`, and any the operator
    /// configures.
    pub public_keys: Vec<String>,
    /// The fixture provider's side only: the private keys it rotated to (newest last),
    /// with which it signs and whose public halves it publishes beside its fixture key
    /// ([`super::Impersonation::rotated_signing_key`]). Empty in the gateway.
    pub rotated_keys: Vec<String>,
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
    /// 401 too, unless the provider's published keys, fetched anew, hold the key the
    /// signature names: it is signed by a key not among [`PushSecrets::public_keys`]
    /// (the provider rotated its keys, or none were fetched yet).
    #[error("unverified: {0}")]
    UnknownKey(String),
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

/// A reply the adapter writes itself: the answer to a handshake (Strava's and Oura's
/// echoed challenge, Google's `201 Created`, Withings' reachability check) or the
/// acknowledgement of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl PushReply {
    /// A JSON reply with status 200.
    pub fn json(v: &Value) -> PushReply {
        PushReply {
            status: 200,
            content_type: "application/json",
            body: serde_json::to_vec(v).unwrap_or_default(),
        }
    }

    /// A reply with no body.
    pub fn empty(status: u16) -> PushReply {
        PushReply {
            status,
            content_type: "text/plain",
            body: vec![],
        }
    }
}

/// A subscription as the fixture provider holds it: where it notifies and with what it
/// signs. The fixture server keeps one list per provider; [`super::Impersonation::
/// serve_subscription`] reads it (a repeat create is refused, a renewal moves
/// `expires_at`, a delete removes the entry) and names the one a create makes, which the
/// fixture server appends once the callback passed the provider's check. For providers
/// whose subscriptions are made in a console (WHOOP, Google), the fixture server makes
/// the entry itself from its configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixtureSubscription {
    pub callback_url: String,
    /// The provider's id of the subscription (Strava's `id`, Oura's uuid, Polar's id).
    pub remote_id: Option<String>,
    /// The user a per-user subscription belongs to (Withings).
    pub user: Option<String>,
    /// What it covers, in the provider's words: Oura's `event_type:data_type`, Polar's
    /// events, Withings' `appli`. Empty for everything.
    pub kinds: Vec<String>,
    /// The token the subscriber chose, echoed in the handshake.
    pub verify_token: Option<String>,
    /// A secret the provider generated for signing (Polar's `signature_secret_key`).
    pub signing_secret: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The fixture provider's answer to a subscription-management call.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionServed {
    pub status: u16,
    pub body: String,
    /// The subscription this call creates, which takes effect only once its callback
    /// passes the provider's check ([`super::Impersonation::handshake_query`] or
    /// [`super::Impersonation::verification_pushes`]).
    pub created: Option<FixtureSubscription>,
    /// The provider's reply instead of `status`/`body` when that check fails.
    pub if_unverified: Option<(u16, String)>,
}

impl SubscriptionServed {
    /// A reply that creates nothing.
    pub fn reply(status: u16, body: impl Into<String>) -> SubscriptionServed {
        SubscriptionServed {
            status,
            body: body.into(),
            created: None,
            if_unverified: None,
        }
    }
}

/// A subscription-management call as the fixture server received it.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionRequest<'a> {
    pub method: &'a str,
    /// The path, with the manifest's base path (e.g. `/api/v3`) already removed.
    pub path: &'a str,
    pub headers: &'a reqwest::header::HeaderMap,
    /// Query and form fields together.
    pub params: &'a BTreeMap<String, String>,
    pub body: &'a [u8],
    pub now: DateTime<Utc>,
}

/// A request the fixture provider sends to a callback before it accepts it (Polar's
/// signed PING, Google's two verification POSTs), with the statuses that pass.
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationPush {
    pub push: OutboundPush,
    pub accepted: Vec<u16>,
}

// Helpers shared by the adapters' push methods.

/// How far a signature's timestamp may lie from our clock, either way, before the
/// notification is refused as a replay. Neither WHOOP nor Oura documents a tolerance;
/// five minutes is the convention of Standard Webhooks and Stripe, and a refused replay
/// costs nothing: the provider retries, and the safety poll catches what is lost.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 300;

/// HMAC-SHA256 of the concatenated `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut ctx = ring::hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    ctx.sign().as_ref().to_vec()
}

/// Whether `tag` is the HMAC-SHA256 of the concatenated `parts` under `key`, compared in
/// constant time (ring's `hmac::verify`).
pub fn hmac_sha256_matches(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::verify(&key, &parts.concat(), tag).is_ok()
}

/// Whether two secrets are equal, without leaking where they differ: their MACs under
/// one key are compared in constant time.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    hmac_sha256_matches(
        b"wearbridge secret comparison",
        &[a],
        &hmac_sha256(b"wearbridge secret comparison", &[b]),
    )
}

/// A stable key for a notification that has no id of its own: the SHA-256 (hex) of its
/// canonical fields, separated so that no two field lists collide.
pub fn digest_key(parts: &[&str]) -> String {
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    for p in parts {
        sha2::Digest::update(&mut h, (p.len() as u64).to_be_bytes());
        sha2::Digest::update(&mut h, p.as_bytes());
    }
    hex(&sha2::Digest::finalize(h))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex of either case; None for anything else.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The scheme WHOOP and Oura share ([`SignatureScheme::HmacSha256TimestampBody`]): the
/// `sig_header`, read by `decode`, is the HMAC-SHA256 of the `ts_header` text followed by
/// the raw body, keyed by the client secret; the timestamp, epoch seconds or milliseconds
/// (a value of 10^11 or more is milliseconds), must lie within
/// [`TIMESTAMP_TOLERANCE_SECS`] of the request's arrival.
pub fn verify_timestamped_hmac(
    req: &PushRequest<'_>,
    client_secret: &str,
    ts_header: &str,
    sig_header: &str,
    decode: fn(&str) -> Option<Vec<u8>>,
) -> Result<(), PushError> {
    let unverified = |m: String| PushError::Unverified(m);
    let ts = header(req, ts_header).ok_or_else(|| unverified(format!("no {ts_header}")))?;
    let sig = header(req, sig_header).ok_or_else(|| unverified(format!("no {sig_header}")))?;
    let n: i64 = ts
        .trim()
        .parse()
        .map_err(|_| unverified(format!("{ts_header} is not epoch time")))?;
    let sent = if n.abs() >= 100_000_000_000 {
        DateTime::from_timestamp_millis(n)
    } else {
        DateTime::from_timestamp(n, 0)
    }
    .ok_or_else(|| unverified(format!("{ts_header} is out of range")))?;
    check_fresh(req.now, sent)?;
    let tag =
        decode(sig.trim()).ok_or_else(|| unverified(format!("{sig_header} is unreadable")))?;
    if client_secret.is_empty()
        || !hmac_sha256_matches(client_secret.as_bytes(), &[ts.as_bytes(), req.body], &tag)
    {
        return Err(unverified(format!("{sig_header} does not match")));
    }
    Ok(())
}

/// Whether a handshake reply is a 200 whose JSON `field` is `challenge` (Strava's
/// `hub.challenge`, Oura's `challenge`).
pub fn echoes(status: u16, body: &[u8], field: &str, challenge: &str) -> bool {
    status == 200
        && serde_json::from_slice::<Value>(body)
            .is_ok_and(|v| v.get(field).and_then(Value::as_str) == Some(challenge))
}

/// A request header as text.
pub fn header<'a>(req: &PushRequest<'a>, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Refuses `at` when it lies more than [`TIMESTAMP_TOLERANCE_SECS`] from `now`.
pub fn check_fresh(now: DateTime<Utc>, at: DateTime<Utc>) -> Result<(), PushError> {
    let skew = (now - at).num_seconds().abs();
    if skew > TIMESTAMP_TOLERANCE_SECS {
        return Err(PushError::Unverified(format!(
            "signature timestamp {at} is {skew} s from now, beyond {TIMESTAMP_TOLERANCE_SECS} s"
        )));
    }
    Ok(())
}

/// The body as JSON, or Malformed.
pub fn json_body(req: &PushRequest<'_>) -> Result<Value, PushError> {
    serde_json::from_slice(req.body)
        .map_err(|e| PushError::Malformed(format!("body is not JSON: {e}")))
}

/// An `application/x-www-form-urlencoded` body as fields (the last of a repeated name).
pub fn form_fields(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// An `application/x-www-form-urlencoded` body from fields.
pub fn form_body(fields: &[(&str, String)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str())))
        .finish()
        .into_bytes()
}

/// A JSON value as the id string our records use (`17` and `"17"` alike).
pub fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether `id` can be put into a URL path as one segment: ids are letters, digits,
/// `-` and `_` (Oura's document ids, WHOOP's UUIDs and integers, Polar's hashed ids).
pub fn path_safe(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Requests for the adapters' push tests, owning what a [`PushRequest`] borrows.
#[cfg(test)]
pub mod testing {
    use super::*;

    pub struct Owned {
        pub headers: reqwest::header::HeaderMap,
        pub query: BTreeMap<String, String>,
        pub body: Vec<u8>,
        pub now: DateTime<Utc>,
    }

    impl Owned {
        pub fn new(
            headers: &[(&str, &str)],
            query: &[(&str, &str)],
            body: &[u8],
            now: DateTime<Utc>,
        ) -> Owned {
            let mut h = reqwest::header::HeaderMap::new();
            for (k, v) in headers {
                h.insert(
                    reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            Owned {
                headers: h,
                query: query
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                body: body.to_vec(),
                now,
            }
        }

        /// What the gateway receives when the fixture provider sends `push`.
        pub fn of(push: &OutboundPush, now: DateTime<Utc>) -> Owned {
            let mut headers: Vec<(&str, &str)> = push
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            headers.push(("content-type", push.content_type));
            let query: Vec<(&str, &str)> = push
                .query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            Owned::new(&headers, &query, &push.body, now)
        }

        pub fn req(&self) -> PushRequest<'_> {
            PushRequest {
                headers: &self.headers,
                query: &self.query,
                body: &self.body,
                now: self.now,
            }
        }
    }

    pub fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let tag = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex(&tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(hmac_sha256_matches(
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &tag
        ));
        let mut forged = tag.clone();
        forged[31] ^= 1;
        assert!(!hmac_sha256_matches(
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &forged
        ));
        assert!(!hmac_sha256_matches(b"Jefe", &[b"what do ya want"], &tag));
    }

    #[test]
    fn digest_keys_are_stable_and_do_not_collide_across_field_boundaries() {
        assert_eq!(digest_key(&["a", "bc"]), digest_key(&["a", "bc"]));
        assert_ne!(digest_key(&["a", "bc"]), digest_key(&["ab", "c"]));
        assert_eq!(digest_key(&[]).len(), 64);
    }

    #[test]
    fn hex_round_trips_either_case_and_refuses_the_rest() {
        assert_eq!(unhex("00fFa0"), Some(vec![0, 255, 160]));
        assert_eq!(hex(&[0, 255, 160]), "00ffa0");
        for bad in ["0", "zz", "+1", "0é"] {
            assert_eq!(unhex(bad), None, "{bad}");
        }
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b""));
    }

    #[test]
    fn timestamps_beyond_the_tolerance_either_way_are_refused() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let s = chrono::Duration::seconds;
        assert!(check_fresh(now, now - s(300)).is_ok());
        assert!(check_fresh(now, now + s(300)).is_ok());
        assert!(matches!(
            check_fresh(now, now - s(301)),
            Err(PushError::Unverified(_))
        ));
        assert!(check_fresh(now, now + s(301)).is_err());
    }

    #[test]
    fn only_plain_ids_go_into_paths() {
        assert!(path_safe("ecfc6a15-4661-442f-a9a4-f160dd7afae8"));
        assert!(path_safe("8f9a5221-639e-4a85-81cb-4065ef23f979"));
        for bad in ["", "../x", "a/b", "a?b", "a%2f", &"x".repeat(129)] {
            assert!(!path_safe(bad), "{bad}");
        }
        let f = form_fields(b"userid=12345&appli=1&startdate=1530576000");
        assert_eq!(f["userid"], "12345");
        assert_eq!(
            form_fields(&form_body(&[("a", "x y&z".into())]))["a"],
            "x y&z"
        );
    }
}
