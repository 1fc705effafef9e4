//! Polar AccessLink API v3 (<https://www.polar.com/accesslink-api>). Six
//! non-transactional lists, none paged: the Elixir biosensing SpO2 tests and body
//! temperature periods (`GET /v3/users/biosensing/spo2` and `…/bodytemperature`, each
//! `from`/`to`, at most 28 days), and `GET /v3/exercises` (a JSON array, exercises
//! uploaded in the last 30 days), `GET /v3/users/sleep` (`{"nights": [...]}`) and
//! `GET /v3/users/nightly-recharge` (`{"recharges": [...]}`), both the last 28 days
//! whatever is asked, and `GET /v3/users/activities?from&to` (a JSON array, at most 28
//! days, `from` at most 365 days back). Physical information (body weight, and the
//! profile's height) comes only in a transaction, opened, listed, read entry by entry
//! and committed as a chain of pages (see `Step`). No data flows until the app
//! registers the user (`POST /v3/users` with a `member-id`) after consent; deregistering is
//! `DELETE /v3/users/{user-id}`, which also revokes the token. Polar issues no refresh
//! token. Exercise times are local with their UTC offset in minutes beside them and
//! durations are ISO 8601 (`PT1H4M30.5S`); sleep stages are seconds; energy is kcal.
//! Quirks, with sources, are in `fixtures/polar/README.md`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use base64::Engine as _;
use chrono::{
    DateTime, Duration as ChronoDuration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc,
};
use serde_json::{json, Value};

use super::normalize::*;
use super::push::*;
use super::{
    Adapter, FixtureTransactions, Impersonation, Page, PageRequest, ProviderCall, ProviderError,
    RateReport, RateWindow, Record, ResourceSpec, Window, WindowCount,
};
use crate::events::Resource;

pub struct Polar;

const ID: &str = "polar";
/// Docs "List activities for given date range": "maximum range between from date and
/// to date is 28 days" and "From date cannot be older than 365 days from today".
const MAX_RANGE_DAYS: i64 = 28;
const MAX_AGE_DAYS: i64 = 365;

fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Polar's windows in the order its headers give them: short term, then long term.
const WINDOWS: [u64; 2] = [900, 86_400];

/// The webhook events we subscribe to (DOCS `webhookType`): the ones whose data we
/// store. CONTINUOUS_HEART_RATE and the SleepWise events name data we do not read.
const WEBHOOK_EVENTS: [&str; 3] = ["EXERCISE", "SLEEP", "ACTIVITY_SUMMARY"];

impl Adapter for Polar {
    /// DOCS "Rate limiting": `RateLimit-Usage`, `RateLimit-Limit` and `RateLimit-Reset`,
    /// each "short term, long term", the reset in seconds. The wait is the longest reset
    /// among the windows used up.
    fn rate_report(&self, headers: &reqwest::header::HeaderMap) -> RateReport {
        let usage = positional_usage(headers, "ratelimit-usage", "ratelimit-limit", &WINDOWS);
        let resets = crate::http::counts(headers, "ratelimit-reset");
        let reset_after = WINDOWS
            .iter()
            .enumerate()
            .filter(|(_, period)| {
                usage.iter().any(|u| {
                    u.period_secs == Some(**period) && u.limit.is_some_and(|l| u.used >= l)
                })
            })
            .filter_map(|(i, _)| resets.get(i).copied().flatten())
            .max()
            .map(Duration::from_secs);
        RateReport { usage, reset_after }
    }

    fn page_request(
        &self,
        resource: &ResourceSpec,
        window: &Window,
        cursor: Option<&str>,
    ) -> PageRequest {
        if physical(resource.name) {
            return Step::of(cursor).request();
        }
        let dated = matches!(
            resource.name,
            Resource::Activity
                | Resource::BloodOxygen
                | Resource::BodyTemperature
                | Resource::BodyTemperatureDelta
        );
        let query = if dated {
            // Whole days, both ends inclusive: the window [start, end) ends on the day
            // before `end` when `end` is midnight, else on `end`'s day. (Daily activity
            // and the Elixir biosensing lists take the same `from`/`to`.)
            let last = window.end - ChronoDuration::milliseconds(1);
            vec![
                ("from".to_string(), ymd(window.start.date_naive())),
                (
                    "to".to_string(),
                    ymd(last.date_naive().max(window.start.date_naive())),
                ),
            ]
        } else {
            // Exercises, sleep and Nightly Recharge take no dates: they list "the last
            // 28 days" (30 for exercises) and the window only bounds what we store.
            vec![]
        };
        PageRequest::get(resource.path.clone(), query)
    }

    fn parse_page(
        &self,
        resource: Resource,
        body: &[u8],
        cursor: Option<&str>,
    ) -> Result<Page, ProviderError> {
        if physical(resource) {
            return Step::of(cursor).parse(body);
        }
        // Docs: 204 No Content (an empty body) when there is nothing to list.
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Page::default());
        }
        let v = parse_json(body)?;
        let (items, prefix) = match resource {
            Resource::Workouts
            | Resource::Activity
            | Resource::BloodOxygen
            | Resource::BodyTemperature
            | Resource::BodyTemperatureDelta => (top_level_array(&v)?, String::new()),
            Resource::Sleep => (listed(&v, "nights")?, "nights".to_string()),
            Resource::Recovery => (listed(&v, "recharges")?, "recharges".to_string()),
            other => {
                return Err(ProviderError::malformed(
                    "resource",
                    format!("Polar has no {other}"),
                ))
            }
        };
        let mut records = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let recs = match resource {
                Resource::Workouts => exercise(item).map(|r| vec![r]),
                Resource::Sleep => sleep(item).map(|r| vec![r]),
                Resource::Recovery => recharge(item).map(|r| vec![r]),
                Resource::BloodOxygen => spo2_test(item).map(|r| r.into_iter().collect()),
                Resource::BodyTemperature => temperature_period(item),
                Resource::BodyTemperatureDelta => {
                    skin_temperature(item).map(|r| r.into_iter().collect())
                }
                _ => activity(item).map(|r| vec![r]),
            }
            .map_err(|e| match e {
                ProviderError::Malformed { field, message } => {
                    ProviderError::malformed(format!("{prefix}[{i}].{field}"), message)
                }
                e => e,
            })?;
            records.extend(recs);
        }
        // No list is paged.
        Ok(Page {
            records,
            next: None,
            ..Page::default()
        })
    }

    fn classify_error(
        &self,
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> ProviderError {
        // 401 has no refresh to try (Polar issues no refresh token), so the runtime
        // errors the connection and the user reconnects. 403 is "User has not accepted
        // all mandatory consents" (every data operation): only the user can fix it at
        // account.polar.com, as with a scope they did not grant. 429 comes with
        // RateLimit-Reset (seconds), which the runtime does not read; it waits 60 s.
        // 404 is "No transaction was found with given transaction id" (DOCS "List
        // physical infos"), or an exercise deleted since its webhook: gone.
        match status {
            404 => ProviderError::Gone(format!(
                "HTTP 404: {}",
                String::from_utf8_lossy(&body[..body.len().min(500)])
            )),
            _ => ProviderError::from_status(status, retry_after, body),
        }
    }

    /// The physical-information transaction is read once, for `body`; its newest
    /// height is the `profile` (see `Step`).
    fn read_with(&self, resource: Resource) -> Option<Resource> {
        (resource == Resource::Profile).then_some(Resource::Body)
    }

    /// Docs "Token endpoint": `expires_in` 31535999 ("about one year"), yet "Access
    /// tokens will not expire unless explicitly revoked by partners or users". With no
    /// refresh token a known expiry could only end the connection early, so it is
    /// dropped: the token is used until Polar answers 401.
    fn token_reply(&self, _status: u16, body: &[u8]) -> Result<Vec<u8>, ProviderError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(mut m)) if m.contains_key("access_token") => {
                m.remove("expires_in");
                Ok(Value::Object(m).to_string().into_bytes())
            }
            // Errors (`{"error": "invalid_grant"}`) and anything else pass as they are.
            _ => Ok(body.to_vec()),
        }
    }

    /// Docs "Token endpoint": `x_user_id (long) = Polar Ecosystem user identifier`, the
    /// `user-id` of `/v3/users/{user-id}`.
    fn external_user_id(&self, token_reply: &Value) -> Option<String> {
        match token_reply.get("x_user_id")? {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    }

    /// Docs "Register user": "Once partner has been authorized by user, partner must
    /// register the user before being able to access its data", `POST /v3/users` with
    /// `{"member-id": "<partner's custom identifier for user>"}`.
    fn register_user(
        &self,
        member_id: &str,
        _external_user_id: Option<&str>,
    ) -> Option<ProviderCall> {
        Some(ProviderCall {
            method: "POST",
            path: "/v3/users".into(),
            json: Some(json!({ "member-id": member_id })),
        })
    }

    /// 200 is the registered user; 409 is "User already registered to partner or
    /// duplicated member-id", which the official example client ignores (a user who
    /// reconnects is still registered). 403 means mandatory consents are missing.
    fn registration_reply(&self, status: u16, body: &[u8]) -> Result<(), ProviderError> {
        match status {
            200..=299 | 409 => Ok(()),
            _ => Err(self.classify_error(status, None, body)),
        }
    }

    /// Docs "Delete user": `DELETE /v3/users/{user-id}`, 204; "This will revoke the
    /// access token authorized by user".
    fn deregister_user(&self, external_user_id: Option<&str>) -> Option<ProviderCall> {
        external_user_id.map(|id| ProviderCall {
            method: "DELETE",
            path: format!("/v3/users/{id}"),
            json: None,
        })
    }

    /// DOCS "Get exercise": `GET /v3/exercises/{exerciseId}`, the hashed id an EXERCISE
    /// webhook's `entity_id` names; one `exerciseHashId`, like a list item.
    fn record_request(
        &self,
        resource: &ResourceSpec,
        provider_record_id: &str,
    ) -> Option<PageRequest> {
        (resource.name == Resource::Workouts && path_safe(provider_record_id))
            .then(|| PageRequest::get(format!("/v3/exercises/{provider_record_id}"), vec![]))
    }

    fn parse_record(&self, resource: Resource, body: &[u8]) -> Result<Page, ProviderError> {
        if resource != Resource::Workouts {
            return Err(ProviderError::malformed(
                "resource",
                format!("no single-record read for Polar {resource}"),
            ));
        }
        let v = parse_json(body)?;
        if !v.is_object() {
            return Err(ProviderError::malformed("$", "expected one exercise"));
        }
        Ok(Page {
            records: vec![exercise(&v)?],
            ..Page::default()
        })
    }

    /// DOCS "Creating webhook": creating (or re-pointing) the webhook sends a PING, `POST`
    /// with `Polar-Webhook-Event: PING` and body `{"timestamp", "event": "PING"}`, which
    /// must get 200 "or otherwise the webhook is not created". It is signed with the key
    /// the create reply will only then return, so it cannot be verified: it is answered
    /// and does nothing.
    fn push_handshake(
        &self,
        req: &PushRequest<'_>,
        _secrets: &PushSecrets,
    ) -> Option<Result<PushReply, PushError>> {
        let by_header =
            header(req, "polar-webhook-event").is_some_and(|e| e.eq_ignore_ascii_case("PING"));
        let by_body = serde_json::from_slice::<Value>(req.body)
            .ok()
            .is_some_and(|v| v.get("event").and_then(Value::as_str) == Some("PING"));
        (by_header || by_body).then(|| Ok(PushReply::empty(200)))
    }

    /// DOCS "Verifying payload signature": `Polar-Webhook-Signature` is the hex
    /// HMAC-SHA256 of the payload keyed by the `signature_secret_key` the create reply
    /// returned (DOCS' Java: `hex(HMAC(key.getBytes(), data.getBytes()))`); compared in
    /// constant time, hex of either case. No timestamp is signed apart from the body's own.
    fn verify_push(&self, req: &PushRequest<'_>, secrets: &PushSecrets) -> Result<(), PushError> {
        let unverified = |m: &str| PushError::Unverified(m.to_string());
        let key = secrets
            .signing_secret
            .as_deref()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| unverified("no signature_secret_key is held for the webhook"))?;
        let sig = header(req, "polar-webhook-signature")
            .ok_or_else(|| unverified("no Polar-Webhook-Signature"))?;
        let tag = unhex(sig).ok_or_else(|| unverified("Polar-Webhook-Signature is not hex"))?;
        if !hmac_sha256_matches(key.as_bytes(), &[req.body], &tag) {
            return Err(unverified("Polar-Webhook-Signature does not match"));
        }
        Ok(())
    }

    /// DOCS schemas `webhookPayload*`: `event`, `user_id` (the Polar user, our
    /// `x_user_id`), `timestamp` ("Time when webhook notification is sent"), `url`, and
    /// `entity_id` (EXERCISE: the hashed exercise id, read by id) or `date` (SLEEP,
    /// ACTIVITY_SUMMARY: the day, read as a window a day either side). Nightly Recharge has
    /// no event of its own; it is measured in the same night as the sleep, so a SLEEP
    /// event re-reads it too. The key digests event, user, entity or date, and
    /// `timestamp` (daily activity is notified again as the day grows).
    fn parse_push(&self, req: &PushRequest<'_>) -> Result<Vec<Notice>, PushError> {
        let v = json_body(req)?;
        let bad = |m: &str| PushError::Malformed(m.to_string());
        let event = v
            .get("event")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no event"))?;
        let at = v
            .get("timestamp")
            .and_then(Value::as_str)
            .map(|t| DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc)))
            .transpose()
            .map_err(|e| bad(&format!("timestamp: {e}")))?;
        let stamp = v.get("timestamp").and_then(Value::as_str).unwrap_or("");
        let user = match v.get("user_id") {
            Some(Value::Number(n)) if n.as_i64().is_some_and(|u| u > 0) => n.to_string(),
            _ if event == "PING" => String::new(),
            _ => return Err(bad("user_id is not the Polar user id")),
        };
        let day = || -> Result<Window, PushError> {
            let d = v
                .get("date")
                .and_then(Value::as_str)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .ok_or_else(|| bad("date is not YYYY-MM-DD"))?;
            let midnight = d.and_hms_opt(0, 0, 0).ok_or_else(|| bad("date"))?.and_utc();
            Ok(Window {
                start: midnight - ChronoDuration::days(1),
                end: midnight + ChronoDuration::days(2),
            })
        };
        let subject = v
            .get("entity_id")
            .or(v.get("date"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let key = digest_key(&[ID, event, &user, subject, stamp]);
        let changed = |resource, record: Option<String>, window| NoticeAction::Changed {
            resource,
            record,
            window,
        };
        let actions = match event {
            "EXERCISE" => {
                let id = v
                    .get("entity_id")
                    .and_then(Value::as_str)
                    .filter(|i| !i.is_empty())
                    .ok_or_else(|| bad("EXERCISE without entity_id"))?;
                vec![changed(Resource::Workouts, Some(id.to_string()), None)]
            }
            "SLEEP" => {
                let w = day()?;
                vec![
                    changed(Resource::Sleep, None, Some(w)),
                    changed(Resource::Recovery, None, Some(w)),
                ]
            }
            "ACTIVITY_SUMMARY" => vec![changed(Resource::Activity, None, Some(day()?))],
            other => vec![NoticeAction::Ignored(other.to_string())],
        };
        let many = actions.len() > 1;
        Ok(actions
            .into_iter()
            .map(|action| Notice {
                user: user.clone(),
                key: match (&action, many) {
                    (NoticeAction::Changed { resource, .. }, true) => format!("{key}:{resource}"),
                    _ => key.clone(),
                },
                action,
                at,
            })
            .collect())
    }

    /// DOCS "Create webhook": `POST /v3/webhooks` with HTTP Basic client credentials and
    /// `{"events": [...], "url": ...}`; one webhook per client; no expiry (it is only
    /// deactivated after seven days of failed deliveries).
    fn subscribe_calls(&self, callback_url: &str, _secrets: &PushSecrets) -> Vec<SubscriptionCall> {
        vec![SubscriptionCall {
            method: "POST",
            url: "/v3/webhooks".into(),
            query: vec![],
            form: vec![],
            json: Some(json!({ "events": WEBHOOK_EVENTS, "url": callback_url })),
            headers: vec![],
            basic_auth: true,
            user_token: false,
        }]
    }

    /// 201 `createdWebhook`: `{"data": {"id", "events", "url", "signature_secret_key"}}`,
    /// the key shown this once ("the only chance to get it"). 409: one exists already.
    fn subscription_reply(&self, status: u16, body: &[u8]) -> Result<Subscribed, ProviderError> {
        if !(200..300).contains(&status) {
            return Err(self.classify_error(status, None, body));
        }
        let v = parse_json(body)?;
        Ok(Subscribed {
            remote_id: Some(req_str(&v, "data.id")?.to_string()),
            expires_at: None,
            signing_secret: Some(req_str(&v, "data.signature_secret_key")?.to_string()),
        })
    }
}

/// Physical information (`body`, and `profile` read with it).
fn physical(resource: Resource) -> bool {
    matches!(resource, Resource::Body | Resource::Profile)
}

/// DOCS "Physical info": the data is handed over only in a transaction. Each step is one
/// request and one page, and the cursor says which step comes next:
///
/// 1. no cursor: `POST /v3/users/{user-id}/physical-information-transactions`, 201 with
///    a `transaction-location` (`transaction-id`), or 204 "when there is no new physical
///    info data available", which ends the run;
/// 2. `list`: `GET …/physical-information-transactions/{transaction-id}`, the
///    `physical-informations` "Absolute links to individual physical information within
///    the transaction" (204 "when there is no data available");
/// 3. `fetch`: `GET …/{transaction-id}/physical-informations/{id}` for each link in turn,
///    each a `physical-information` entry: a `body` record when it has a weight; the
///    newest entry's height becomes the `profile` on the last one (carried in the cursor,
///    so a re-read of the same entries writes the same profile);
/// 4. `commit`: `PUT …/physical-information-transactions/{transaction-id}`, "Transaction
///    has been committed and data deleted".
///
/// Every page is stored (records and cursor in one database transaction) before the next
/// request is made, so the commit, after which Polar hands nothing over again, is sent
/// only once everything the transaction held is stored. A transaction that is gone
/// (404) makes the runtime start the chain over.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
enum Step {
    Create,
    List {
        tx: i64,
    },
    Fetch {
        tx: i64,
        /// The Polar user the links name (the profile's key).
        user: String,
        /// The entries still to fetch, in the list's order.
        ids: Vec<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        newest: Option<Newest>,
    },
    Commit {
        tx: i64,
    },
}

/// The newest entry with a height among those fetched so far.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Newest {
    created: String,
    /// Centimetres.
    height: f64,
}

const PHYSICAL: &str = "/v3/users/{user-id}/physical-information-transactions";

impl Step {
    /// The step a cursor names; none (or one that is not ours) starts the chain.
    fn of(cursor: Option<&str>) -> Step {
        cursor
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or(Step::Create)
    }

    fn cursor(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }

    fn request(&self) -> PageRequest {
        match self {
            Step::Create => PageRequest::bare("POST", PHYSICAL),
            Step::List { tx } => PageRequest::bare("GET", format!("{PHYSICAL}/{tx}")),
            Step::Fetch { tx, ids, .. } => match ids.first() {
                Some(id) => {
                    PageRequest::bare("GET", format!("{PHYSICAL}/{tx}/physical-informations/{id}"))
                }
                // Never written (a fetch step always has an entry left); read as the list.
                None => PageRequest::bare("GET", format!("{PHYSICAL}/{tx}")),
            },
            Step::Commit { tx } => PageRequest::bare("PUT", format!("{PHYSICAL}/{tx}")),
        }
    }

    /// Reads the reply to [`Step::request`]: the records it gives and the next step.
    fn parse(&self, body: &[u8]) -> Result<Page, ProviderError> {
        // 204 No Content, documented for every step.
        let empty = body.iter().all(u8::is_ascii_whitespace);
        let page = |records: Vec<Record>, next: Option<Step>| Page {
            records,
            next: next.and_then(|s| s.cursor()),
            ..Page::default()
        };
        match self {
            // Nothing new: the run ends quietly, with nothing to commit.
            Step::Create if empty => Ok(page(vec![], None)),
            Step::Create => {
                let v = parse_json(body)?;
                let tx = opt_i64(&v, "transaction-id")?
                    .ok_or_else(|| ProviderError::malformed("transaction-id", "missing"))?;
                Ok(page(vec![], Some(Step::List { tx })))
            }
            Step::List { tx } => {
                let links = if empty {
                    vec![]
                } else {
                    listed(&parse_json(body)?, "physical-informations")?.to_vec()
                };
                let mut user = None;
                let mut ids = Vec::with_capacity(links.len());
                for (i, link) in links.iter().enumerate() {
                    let field = format!("physical-informations[{i}]");
                    let (u, id) = link.as_str().and_then(entry_link).ok_or_else(|| {
                        ProviderError::malformed(
                            &field,
                            format!("`{link}` is not a link to a physical information"),
                        )
                    })?;
                    if user.get_or_insert_with(|| u.clone()) != &u {
                        return Err(ProviderError::malformed(field, "names another user"));
                    }
                    ids.push(id);
                }
                let tx = *tx;
                Ok(page(
                    vec![],
                    Some(match user {
                        Some(user) => Step::Fetch {
                            tx,
                            user,
                            ids,
                            newest: None,
                        },
                        None => Step::Commit { tx },
                    }),
                ))
            }
            Step::Fetch {
                tx,
                user,
                ids,
                newest,
            } => {
                let Some((&id, rest)) = ids.split_first() else {
                    return Ok(page(vec![], Some(Step::Commit { tx: *tx })));
                };
                let mut newest = newest.clone();
                let mut records = vec![];
                if !empty {
                    let entry = physical_information(&parse_json(body)?, id)?;
                    records.extend(entry.body);
                    if let Some(n) = entry.height {
                        if newest.as_ref().is_none_or(|old| n.created >= old.created) {
                            newest = Some(n);
                        }
                    }
                }
                if !rest.is_empty() {
                    return Ok(page(
                        records,
                        Some(Step::Fetch {
                            tx: *tx,
                            user: user.clone(),
                            ids: rest.to_vec(),
                            newest,
                        }),
                    ));
                }
                records.extend(newest.map(|n| profile(user, &n)));
                Ok(page(records, Some(Step::Commit { tx: *tx })))
            }
            // Committed (200) or nothing to commit (204): the run is done.
            Step::Commit { .. } => Ok(page(vec![], None)),
        }
    }
}

/// `https://www.polaraccesslink.com/v3/users/{user}/physical-information-transactions/{tx}/physical-informations/{id}`
/// → (user, id).
fn entry_link(link: &str) -> Option<(String, i64)> {
    let (head, id) = link.rsplit_once("/physical-informations/")?;
    let id: i64 = id.parse().ok()?;
    let (head, _tx) = head.rsplit_once("/physical-information-transactions/")?;
    let (_, user) = head.rsplit_once("/v3/users/")?;
    path_safe(user).then(|| (user.to_string(), id))
}

/// What one entry gives: its body record, if it has a weight, and its height.
struct Entry {
    body: Option<Record>,
    height: Option<Newest>,
}

/// A weight or height: absent, null or not above zero is no reading (never a zero);
/// anything else must be a finite number.
fn reading(v: &Value, field: &str) -> Result<Option<f64>, ProviderError> {
    Ok(opt_f64(v, field)?.filter(|x| *x > 0.0))
}

/// One `physical-information` (DOCS "Get physical info"), the entry `id` of the list's
/// link: `created` ("The time physical information was created in AccessLink, in format
/// YYYY-MM-DDTHH:mm:ss.SSSZ"), `weight` in kg and `height` in cm (the units of the
/// `user` schema's same fields: the entry's schema names none), `weight-source`
/// (`SOURCE_MEASURED` or `SOURCE_USER`). Heart rates, thresholds and VO2max have no
/// place in Junction's body or profile and are not read.
fn physical_information(v: &Value, id: i64) -> Result<Entry, ProviderError> {
    if !v.is_object() {
        return Err(ProviderError::malformed(
            "$",
            "expected a physical information",
        ));
    }
    let (created, _) = utc_instant(req_str(v, "created")?, "created")?;
    let created = format_utc(created);
    let device = match opt_str(v, "weight-source")? {
        Some("SOURCE_USER") => "manual",
        _ => "unknown",
    };
    let body = reading(v, "weight")?.map(|kg| Record {
        resource: Resource::Body,
        provider_id: id.to_string(),
        fields: fields(vec![
            ("source", source(ID, device)),
            ("measured_at", json!(created)),
            // The entry gives no offset.
            ("timezone_offset", Value::Null),
            ("weight", num(Some(kg))),
            ("fat", Value::Null),
        ]),
    });
    let height = reading(v, "height")?.map(|height| Newest { created, height });
    Ok(Entry { body, height })
}

/// The user's profile from the newest height: one record per Polar user, in metres as
/// stored profiles are (Junction shows centimetres).
fn profile(user: &str, n: &Newest) -> Record {
    Record {
        resource: Resource::Profile,
        provider_id: user.to_string(),
        fields: fields(vec![
            ("source", source(ID, "unknown")),
            // As of the entry it comes from: what dates the profile for range queries.
            ("measured_at", json!(n.created)),
            ("height", num(Some(n.height / 100.0))),
        ]),
    }
}

fn top_level_array(v: &Value) -> Result<&[Value], ProviderError> {
    match v {
        Value::Array(a) => Ok(a.as_slice()),
        other => Err(ProviderError::malformed(
            "$",
            format!("expected an array, got {other}"),
        )),
    }
}

/// `nights` / `recharges`: the schemas mark them optional, so absent is an empty list.
fn listed<'a>(v: &'a Value, key: &str) -> Result<&'a [Value], ProviderError> {
    if !v.is_object() {
        return Err(ProviderError::malformed("$", "expected an object"));
    }
    match v.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(_) => req_array(v, key).map(Vec::as_slice),
    }
}

/// An ISO 8601 duration as Polar writes them (`PT2H44M45S`, `PT210.026S`, `P1DT2H`) in
/// whole seconds, rounded. Years, months and weeks never appear in Polar's durations
/// and have no fixed length, so they are refused.
pub fn iso_duration_secs(raw: &str, field: &str) -> Result<i64, ProviderError> {
    let bad = |why: &str| ProviderError::malformed(field, format!("`{raw}` {why}"));
    let rest = raw
        .strip_prefix('P')
        .ok_or_else(|| bad("is not an ISO 8601 duration"))?;
    let (date_part, time_part) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = 0f64;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> Result<(), ProviderError> {
        let mut num = String::new();
        let mut allowed = units.iter();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            // Units in their fixed order, each at most once.
            let scale = allowed
                .by_ref()
                .find(|(u, _)| *u == c)
                .map(|(_, s)| *s)
                .ok_or_else(|| bad("has a unit out of place"))?;
            let n: f64 = num.parse().map_err(|_| bad("has a bad number"))?;
            total += n * scale;
            any = true;
            num.clear();
        }
        if num.is_empty() {
            Ok(())
        } else {
            Err(bad("ends without a unit"))
        }
    };
    take(date_part, &[('D', 86_400.0)])?;
    if let Some(t) = time_part {
        if t.is_empty() {
            return Err(bad("has an empty time part"));
        }
        take(t, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    // Ten years bounds any real session and keeps the conversion exact.
    if !any || !total.is_finite() || total > 315_360_000.0 {
        return Err(bad("is not a duration Wearbridge can use"));
    }
    Ok(total.round() as i64)
}

/// A required `YYYY-MM-DD`.
fn req_date(v: &Value, field: &str) -> Result<NaiveDate, ProviderError> {
    let raw = req_str(v, field)?;
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|e| ProviderError::malformed(field, format!("`{raw}` is not a date: {e}")))
}

/// A required RFC 3339 instant → (UTC, offset seconds east of UTC).
fn req_instant(v: &Value, field: &str) -> Result<(DateTime<Utc>, i32), ProviderError> {
    let raw = req_str(v, field)?;
    let t = DateTime::parse_from_rfc3339(raw).map_err(|e| {
        ProviderError::malformed(field, format!("`{raw}` is not an ISO 8601 date-time: {e}"))
    })?;
    Ok((t.with_timezone(&Utc), t.offset().local_minus_utc()))
}

fn date(d: NaiveDate) -> Value {
    json!(ymd(d))
}

/// exerciseHashId → workout. `start_time` is local ("Start time of the training
/// session in local time", no offset) and `start_time_utc_offset` is "The offset from
/// UTC (in minutes) when the training session was started".
fn exercise(v: &Value) -> Result<Record, ProviderError> {
    let id = req_id(v, "id")?;
    let raw = req_str(v, "start_time")?;
    let local = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f").map_err(|e| {
        ProviderError::malformed(
            "start_time",
            format!("`{raw}` is not a local date-time: {e}"),
        )
    })?;
    let minutes = opt_i64(v, "start_time_utc_offset")?
        .ok_or_else(|| ProviderError::malformed("start_time_utc_offset", "missing"))?;
    let offset = minutes
        .checked_mul(60)
        .and_then(|s| i32::try_from(s).ok())
        .and_then(FixedOffset::east_opt)
        .ok_or_else(|| {
            ProviderError::malformed(
                "start_time_utc_offset",
                format!("{minutes} minutes is not a UTC offset"),
            )
        })?;
    let start = offset
        .from_local_datetime(&local)
        .single()
        .ok_or_else(|| ProviderError::malformed("start_time", "not a single instant"))?
        .with_timezone(&Utc);
    let secs = iso_duration_secs(req_str(v, "duration")?, "duration")?;
    let end = start
        .checked_add_signed(ChronoDuration::seconds(secs))
        .ok_or_else(|| ProviderError::malformed("duration", "ends out of range"))?;
    // `detailed_sport_info` is the Flow sport (`TRAIL_RUNNING`, `WATERSPORTS_WATERSKI`;
    // the docs' appendix lists them), `sport` the coarse one (`RUNNING`, `OTHER`).
    // Unknown values pass through as slugs.
    let sport = opt_str(v, "detailed_sport_info")?
        .or(opt_str(v, "sport")?)
        .unwrap_or("unknown");
    let slug = slug(sport);
    let distance = opt_f64(v, "distance")?;
    Ok(Record {
        resource: Resource::Workouts,
        provider_id: id,
        fields: fields(vec![
            ("source", source(ID, "watch")),
            // Polar exercises carry no user-given name.
            ("title", json!(display_name(&slug))),
            ("sport", json!({"name": display_name(&slug), "slug": slug})),
            ("time_start", json!(format_utc(start))),
            ("time_end", json!(format_utc(end))),
            ("timezone_offset", json!(offset.local_minus_utc())),
            // The summary reports no pauses: the recorded duration is the moving time.
            ("moving_time", json!(secs)),
            // Metres ("Distance in meters travelled during training"); absent indoors.
            ("distance", num(distance.map(round1))),
            // "Expended calories during training in kilocalories".
            ("calories", number(v, "calories")?),
            ("average_hr", number(v, "heart_rate.average")?),
            ("max_hr", number(v, "heart_rate.maximum")?),
            // Not in the summary (only in samples, which we do not request).
            ("total_elevation_gain", Value::Null),
            (
                "average_speed",
                num(distance
                    .filter(|_| secs > 0)
                    .map(|d| (d / secs as f64 * 100.0).round() / 100.0)),
            ),
            ("max_speed", Value::Null),
        ]),
    })
}

/// The 5-minute heart-rate samples (`{"00:41": 76, ...}`, bpm) → (mean, lowest).
fn hr_stats(v: &Value) -> Result<(Option<f64>, Option<i64>), ProviderError> {
    let Some(samples) = at(v, "heart_rate_samples") else {
        return Ok((None, None));
    };
    let Value::Object(m) = samples else {
        return Err(ProviderError::malformed(
            "heart_rate_samples",
            "expected an object of time → bpm",
        ));
    };
    let mut sum = 0f64;
    let mut lowest: Option<i64> = None;
    for (k, x) in m {
        let bpm = x.as_f64().ok_or_else(|| {
            ProviderError::malformed(format!("heart_rate_samples.{k}"), "expected a number")
        })?;
        sum += bpm;
        let r = bpm.round() as i64;
        lowest = Some(lowest.map_or(r, |l| l.min(r)));
    }
    let mean = (!m.is_empty()).then(|| round1(sum / m.len() as f64));
    Ok((mean, lowest))
}

/// sleep. One per night, keyed by its result `date` (the schema has no id). Stage
/// times are seconds between falling asleep (`sleep_start_time`) and waking.
fn sleep(v: &Value) -> Result<Record, ProviderError> {
    let day = req_date(v, "date")?;
    let (start, offset) = req_instant(v, "sleep_start_time")?;
    let (end, _) = req_instant(v, "sleep_end_time")?;
    let span = (end - start).num_seconds();
    if span < 0 {
        return Err(ProviderError::malformed(
            "sleep_end_time",
            "is before sleep_start_time",
        ));
    }
    let stage = |k: &str| opt_i64(v, k);
    let (light, deep, rem, unknown) = (
        stage("light_sleep")?,
        stage("deep_sleep")?,
        stage("rem_sleep")?,
        stage("unrecognized_sleep_stage")?,
    );
    // Time asleep: every stage, the unrecognised one included (it is sleep whose
    // stage could not be told, e.g. a loose strap).
    let total = match (light, deep, rem, unknown) {
        (Some(l), Some(d), Some(r), Some(u)) => l
            .checked_add(d)
            .and_then(|x| x.checked_add(r))
            .and_then(|x| x.checked_add(u)),
        _ => None,
    };
    let (hr_average, hr_lowest) = hr_stats(v)?;
    Ok(Record {
        resource: Resource::Sleep,
        provider_id: ymd(day),
        fields: fields(vec![
            ("source", source(ID, "watch")),
            ("calendar_date", date(day)),
            ("bedtime_start", json!(format_utc(start))),
            ("bedtime_stop", json!(format_utc(end))),
            ("timezone_offset", json!(offset)),
            ("duration", json!(span)),
            ("total", int(total)),
            // "The total time in seconds you spent awake between when you fell asleep
            // and when you woke up".
            ("awake", int(stage("total_interruption_duration")?)),
            ("light", int(light)),
            ("rem", int(rem)),
            ("deep", int(deep)),
            // Polar reports continuity, not time asleep over time in bed.
            ("efficiency", Value::Null),
            ("hr_average", num(hr_average)),
            ("hr_lowest", int(hr_lowest)),
            // HRV and breathing are the Nightly Recharge's.
            ("average_hrv", Value::Null),
            ("respiratory_rate", Value::Null),
            // 1–100.
            ("score", number(v, "sleep_score")?),
            ("state", json!("confirmed")),
        ]),
    })
}

/// nightly-recharge → recovery, keyed by its result `date`. Its averages cover "a
/// 4-hour period starting at 30 minutes after falling asleep".
fn recharge(v: &Value) -> Result<Record, ProviderError> {
    let day = req_date(v, "date")?;
    Ok(Record {
        resource: Resource::Recovery,
        provider_id: ymd(day),
        fields: fields(vec![
            ("source", source(ID, "watch")),
            ("calendar_date", date(day)),
            // Polar's status is a 1–6 scale, not a 0–100 score: kept as its own field.
            ("recovery_score", Value::Null),
            ("resting_hr", number(v, "heart_rate_avg")?),
            // RMSSD, ms.
            ("average_hrv", number(v, "heart_rate_variability_avg")?),
            ("respiratory_rate", number(v, "breathing_rate_avg")?),
            ("spo2", Value::Null),
            ("skin_temperature", Value::Null),
            // very poor (1) … very good (6).
            (
                "nightly_recharge_status",
                number(v, "nightly_recharge_status")?,
            ),
            // -10.0 … +10.0 around the user's usual level.
            ("ans_charge", number(v, "ans_charge")?),
            ("state", json!("confirmed")),
        ]),
    })
}

/// activity-summary → activity day, keyed by its date. The schema has no date field:
/// the day is `start_time`'s date part. The schema calls `start_time` "UTC" but its
/// examples run to `23:59:59` with no offset, i.e. the device's day (the deprecated
/// transactional API said so: "Begin and end of day are determined by the time set on
/// the device used. No timezone information is available").
fn activity(v: &Value) -> Result<Record, ProviderError> {
    let raw = req_str(v, "start_time")?;
    let day = raw
        .get(..10)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| {
            ProviderError::malformed("start_time", format!("`{raw}` does not start with a date"))
        })?;
    Ok(Record {
        resource: Resource::Activity,
        provider_id: ymd(day),
        fields: fields(vec![
            ("source", source(ID, "watch")),
            ("calendar_date", date(day)),
            // No timezone information is available.
            ("timezone_offset", Value::Null),
            ("steps", number(v, "steps")?),
            // "Total calories burned during the day" (BMR included), kcal.
            ("calories_total", number(v, "calories")?),
            // "Active calories burned during the day, excluding BMR".
            ("calories_active", number(v, "active_calories")?),
            // "Distance covered based on steps taken, in meters".
            ("daily_movement", number(v, "distance_from_steps")?),
        ]),
    })
}

/// One `spo2-test-result` (DOCS "SpO2 test result data", Elixir biosensing): a spot
/// test at `test_time` (Unix seconds, as DOCS' example `1697787256` reads) with the
/// user's `time_zone_offset` in minutes (DOCS' example `180`, the unit every Polar offset
/// has). A passed test is one blood oxygen sample of `blood_oxygen_percent` in `%`,
/// keyed by its instant; an inconclusive test (`SPO2_TEST_INCONCLUSIVE_…`) or one without
/// a percentage measured nothing: no sample.
fn spo2_test(v: &Value) -> Result<Option<Record>, ProviderError> {
    if opt_str(v, "test_status")? != Some("SPO2_TEST_PASSED") {
        return Ok(None);
    }
    let Some(pct) = opt_percentage(v, "blood_oxygen_percent")? else {
        return Ok(None);
    };
    let secs =
        opt_i64(v, "test_time")?.ok_or_else(|| ProviderError::malformed("test_time", "missing"))?;
    let at = from_unix(secs, "test_time")?;
    let offset = opt_i64(v, "time_zone_offset")?
        .map(|m| offset_in_range(m.saturating_mul(60), "time_zone_offset"))
        .transpose()?;
    Ok(Some(Record {
        resource: Resource::BloodOxygen,
        provider_id: at.clone(),
        fields: fields(vec![
            ("source", source(ID, "watch")),
            ("timestamp", json!(at)),
            ("timezone_offset", int(offset.map(i64::from))),
            ("type", json!("blood_oxygen")),
            ("unit", json!("%")),
            ("value", num(Some(pct))),
        ]),
    }))
}

/// One `skin-temperature` item (DOCS "Sleep skin temperature data", Elixir biosensing):
/// a night's `sleep_time_skin_temperature_celsius`, its `deviation_from_baseline_celsius`
/// (floats) and `sleep_date` (a date). Only the deviation is a body temperature delta: one
/// sample per night keyed by `sleep_date`, in °C. The item names a day, not a time: the
/// sample covers that day, `[sleep_date, sleep_date + 1 day)` in UTC, offset unknown
/// (null). No deviation is no sample (the absolute skin temperature is kept beside one as
/// `skin_temperature`: peripheral, not body temperature).
fn skin_temperature(v: &Value) -> Result<Option<Record>, ProviderError> {
    let day = req_str(v, "sleep_date")?;
    let date = NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|_| ProviderError::malformed("sleep_date", format!("`{day}` is not a date")))?;
    let Some(delta) = opt_f64(v, "deviation_from_baseline_celsius")? else {
        return Ok(None);
    };
    let start = date.and_time(chrono::NaiveTime::MIN).and_utc();
    let end = start
        .checked_add_signed(ChronoDuration::days(1))
        .ok_or_else(|| ProviderError::malformed("sleep_date", "out of range"))?;
    let (start, end) = (
        json!(format_utc(in_rfc3339_range(start, "sleep_date")?)),
        json!(format_utc(in_rfc3339_range(end, "sleep_date")?)),
    );
    Ok(Some(Record {
        resource: Resource::BodyTemperatureDelta,
        provider_id: day.to_string(),
        fields: fields(vec![
            ("source", source(ID, "watch")),
            ("timestamp", start.clone()),
            ("start", start),
            ("end", end),
            ("timezone_offset", Value::Null),
            ("type", json!("body_temperature_delta")),
            ("unit", json!("°C")),
            ("value", num(Some(delta))),
            ("sensor_location", Value::Null),
            (
                "skin_temperature",
                number(v, "sleep_time_skin_temperature_celsius")?,
            ),
        ]),
    }))
}

/// One `body-temperature-period` (DOCS "Body temperature data"): `start_time` ("Measurement
/// period start time (UTC)", written without an offset) and `samples` of
/// `temperature_celsius` each `recording_time_delta_milliseconds` after it. A
/// `TM_CORE_TEMPERATURE` period is body temperature: one sample per reading, at its
/// instant, keyed by it. `TM_SKIN_TEMPERATURE` (peripheral, degrees below core) and
/// `TM_UNKNOWN` periods are not body temperature and make none; nor does a reading
/// without a value. Polar's `sensor_location` (`SL_DISTAL`, `SL_PROXIMAL`) has no
/// counterpart among Junction's sites: null.
fn temperature_period(v: &Value) -> Result<Vec<Record>, ProviderError> {
    if opt_str(v, "measurement_type")? != Some("TM_CORE_TEMPERATURE") {
        return Ok(vec![]);
    }
    let raw = req_str(v, "start_time")?;
    let start = match DateTime::parse_from_rfc3339(raw) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
            .map(|t| t.and_utc())
            .map_err(|e| {
                ProviderError::malformed(
                    "start_time",
                    format!("`{raw}` is not an ISO 8601 date-time: {e}"),
                )
            })?,
    };
    let mut out = Vec::new();
    let empty = vec![];
    let samples = match v.get("samples") {
        None | Some(Value::Null) => &empty,
        Some(_) => req_array(v, "samples")?,
    };
    for (i, s) in samples.iter().enumerate() {
        let field = |k: &str| format!("samples[{i}].{k}");
        let Some(c) = opt_f64(s, "temperature_celsius")
            .map_err(|_| ProviderError::malformed(field("temperature_celsius"), "not a number"))?
        else {
            continue;
        };
        let delta = opt_i64(s, "recording_time_delta_milliseconds")
            .map_err(|_| {
                ProviderError::malformed(
                    field("recording_time_delta_milliseconds"),
                    "not an integer",
                )
            })?
            .unwrap_or(0);
        let t = ChronoDuration::try_milliseconds(delta)
            .and_then(|d| start.checked_add_signed(d))
            .ok_or_else(|| {
                ProviderError::malformed(field("recording_time_delta_milliseconds"), "out of range")
            })?;
        let at = json!(format_utc(in_rfc3339_range(t, "start_time")?));
        out.push(Record {
            resource: Resource::BodyTemperature,
            provider_id: at.as_str().unwrap_or_default().to_string(),
            fields: fields(vec![
                ("source", source(ID, "watch")),
                ("timestamp", at.clone()),
                ("start", at.clone()),
                ("end", at),
                // "(UTC)", and no offset is given.
                ("timezone_offset", Value::Null),
                ("type", json!("body_temperature")),
                ("unit", json!("°C")),
                ("value", num(Some(c))),
                ("sensor_location", Value::Null),
            ]),
        });
    }
    Ok(out)
}

/// The fixture server's Polar: the lists' documented reach (exercises uploaded in the
/// last 30 days, sleep and Nightly Recharge of the last 28), daily activity's `from`/`to`
/// rules, and user registration (`POST /v3/users`, 409 on a repeated `member-id`) and
/// de-registration.
pub struct PolarFixtures;

/// The Polar user every fixture token belongs to (`oauth/token.json`'s `x_user_id`).
const FIXTURE_USER: &str = "10579";

fn params_date(params: &HashMap<String, String>, k: &str) -> Result<Option<NaiveDate>, String> {
    params
        .get(k)
        .map(|s| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| format!("{k} `{s}` is not a date in format YYYY-MM-DD"))
        })
        .transpose()
}

/// Instants as Polar's webhook payloads write them (`2018-05-15T14:22:24Z`).
fn polar_instant(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A webhook request as Polar sends it: JSON, `Polar-Webhook-Event` and the hex
/// HMAC-SHA256 of the body under the webhook's key in `Polar-Webhook-Signature`.
fn signed_push(subscription: &FixtureSubscription, event: &str, body: &Value) -> OutboundPush {
    let body = body.to_string().into_bytes();
    let key = subscription.signing_secret.as_deref().unwrap_or("");
    OutboundPush {
        headers: vec![
            ("Polar-Webhook-Event".into(), event.to_string()),
            (
                "Polar-Webhook-Signature".into(),
                hex(&hmac_sha256(key.as_bytes(), &[&body])),
            ),
        ],
        query: vec![],
        content_type: "application/json",
        body,
    }
}

impl Impersonation for PolarFixtures {
    /// Every reply (DOCS "Rate limiting"): `RateLimit-Usage`, `RateLimit-Limit` and
    /// `RateLimit-Reset` (seconds), each "short term, long term".
    fn rate_limit_headers(
        &self,
        windows: &[WindowCount],
        _refused: Option<usize>,
        _now: DateTime<Utc>,
    ) -> Vec<(&'static str, String)> {
        let pair = |f: fn(&WindowCount) -> u64| WindowCount::joined(windows, ", ", f);
        vec![
            ("ratelimit-usage", pair(|w| w.used)),
            ("ratelimit-limit", pair(|w| w.limit)),
            ("ratelimit-reset", pair(|w| w.reset_secs)),
        ]
    }

    /// "Requests violating the short term limit will still count toward the long term
    /// limit" (DOCS): a refused request counts in the longer windows only.
    fn refusal_counts(&self, refused: &RateWindow, window: &RateWindow) -> bool {
        window.period_secs > refused.period_secs
    }

    fn fixture(&self, path: &str) -> Option<&'static str> {
        Some(match path {
            "oauth/token.json" => include_str!("../../fixtures/polar/oauth/token.json"),
            "oauth/invalid_grant.json" => {
                include_str!("../../fixtures/polar/oauth/invalid_grant.json")
            }
            "users/registered.json" => include_str!("../../fixtures/polar/users/registered.json"),
            "errors/400.json" => include_str!("../../fixtures/polar/errors/400.json"),
            "errors/401.json" => include_str!("../../fixtures/polar/errors/401.json"),
            "errors/403.json" => include_str!("../../fixtures/polar/errors/403.json"),
            "errors/404.json" => include_str!("../../fixtures/polar/errors/404.json"),
            "errors/409.json" => include_str!("../../fixtures/polar/errors/409.json"),
            "errors/429.json" => include_str!("../../fixtures/polar/errors/429.json"),
            "errors/500.json" => include_str!("../../fixtures/polar/errors/500.json"),
            "data/workouts.json" => include_str!("../../fixtures/polar/data/workouts.json"),
            "data/workouts.changed.json" => {
                include_str!("../../fixtures/polar/data/workouts.changed.json")
            }
            "data/sleep.json" => include_str!("../../fixtures/polar/data/sleep.json"),
            "data/sleep.changed.json" => {
                include_str!("../../fixtures/polar/data/sleep.changed.json")
            }
            "data/recovery.json" => include_str!("../../fixtures/polar/data/recovery.json"),
            "data/recovery.changed.json" => {
                include_str!("../../fixtures/polar/data/recovery.changed.json")
            }
            "data/activity.json" => include_str!("../../fixtures/polar/data/activity.json"),
            "data/activity.changed.json" => {
                include_str!("../../fixtures/polar/data/activity.changed.json")
            }
            "data/blood_oxygen.json" => include_str!("../../fixtures/polar/data/blood_oxygen.json"),
            "data/blood_oxygen.changed.json" => {
                include_str!("../../fixtures/polar/data/blood_oxygen.changed.json")
            }
            "data/body_temperature.json" => {
                include_str!("../../fixtures/polar/data/body_temperature.json")
            }
            "data/body_temperature.changed.json" => {
                include_str!("../../fixtures/polar/data/body_temperature.changed.json")
            }
            "data/body_temperature_delta.json" => {
                include_str!("../../fixtures/polar/data/body_temperature_delta.json")
            }
            "data/body_temperature_delta.changed.json" => {
                include_str!("../../fixtures/polar/data/body_temperature_delta.changed.json")
            }
            "data/body.json" => include_str!("../../fixtures/polar/data/body.json"),
            "data/body.changed.json" => include_str!("../../fixtures/polar/data/body.changed.json"),
            _ => return None,
        })
    }

    fn serve(
        &self,
        resource: &ResourceSpec,
        params: &HashMap<String, String>,
        items: &[Value],
    ) -> Result<Value, String> {
        let today = Utc::now().date_naive();
        let since = |days: i64| today - ChronoDuration::days(days);
        let dated = |i: &&Value, key: &str| {
            i[key]
                .as_str()
                .and_then(|s| s.get(..10))
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        };
        match resource.name {
            // "Only Exercises uploaded to Flow in the last 30 days are returned."
            Resource::Workouts => {
                let from = Utc::now() - ChronoDuration::days(30);
                let list: Vec<&Value> = items
                    .iter()
                    .filter(|i| {
                        i["upload_time"]
                            .as_str()
                            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                            .is_some_and(|t| t >= from)
                    })
                    .collect();
                Ok(json!(list))
            }
            // "List sleep data of user for the last 28 days."
            Resource::Sleep | Resource::Recovery => {
                let list: Vec<&Value> = items
                    .iter()
                    .filter(|i| dated(i, "date").is_some_and(|d| d > since(28)))
                    .collect();
                let key = if resource.name == Resource::Sleep {
                    "nights"
                } else {
                    "recharges"
                };
                Ok(json!({ key: list }))
            }
            Resource::Activity => {
                let from = params_date(params, "from")?.ok_or("from is required")?;
                // "If not given, defaults to today."
                let to = params_date(params, "to")?.unwrap_or(today);
                if from < since(MAX_AGE_DAYS) {
                    return Err("Invalid or too old date. Cannot be older than 365 days.".into());
                }
                if to < from || (to - from).num_days() > MAX_RANGE_DAYS {
                    return Err(format!(
                        "from {from} to {to}: the range must be 0 to {MAX_RANGE_DAYS} days"
                    ));
                }
                let list: Vec<&Value> = items
                    .iter()
                    .filter(|i| dated(i, "start_time").is_some_and(|d| d >= from && d <= to))
                    .collect();
                Ok(json!(list))
            }
            // "… for last 28 days or for given date range. Maximum date range between
            // from and to cannot be more than 28 days."
            Resource::BloodOxygen | Resource::BodyTemperature | Resource::BodyTemperatureDelta => {
                let from = params_date(params, "from")?;
                let to = params_date(params, "to")?;
                let (from, to) = match (from, to) {
                    (Some(f), Some(t)) => (f, t),
                    (None, None) => (since(28), today),
                    _ => return Err("from and to go together".into()),
                };
                if to < from || (to - from).num_days() > MAX_RANGE_DAYS {
                    return Err(format!(
                        "from {from} to {to}: the range must be 0 to {MAX_RANGE_DAYS} days"
                    ));
                }
                let day = |i: &&Value| -> Option<NaiveDate> {
                    match resource.name {
                        Resource::BloodOxygen => {
                            let secs = i["test_time"].as_i64()?;
                            Some(Utc.timestamp_opt(secs, 0).single()?.date_naive())
                        }
                        Resource::BodyTemperatureDelta => dated(i, "sleep_date"),
                        _ => dated(i, "start_time"),
                    }
                };
                let list: Vec<&Value> = items
                    .iter()
                    .filter(|i| day(i).is_some_and(|d| d >= from && d <= to))
                    .collect();
                Ok(json!(list))
            }
            other => Err(format!("Polar has no {other}")),
        }
    }

    /// `test_time` of SpO2 tests is Unix seconds: moved with the other dates.
    fn epoch_fields(&self) -> &'static [&'static str] {
        &["test_time"]
    }

    /// Polar's token endpoint follows RFC 6749: 400 `{"error": "invalid_grant"}`.
    fn invalid_grant_status(&self) -> u16 {
        400
    }

    /// `/v3/exercises/{exerciseId}`.
    fn record_path(&self, path: &str) -> Option<(Resource, String)> {
        let id = path.strip_prefix("/v3/exercises/")?;
        path_safe(id).then(|| (Resource::Workouts, id.to_string()))
    }

    /// The listed exercise with that hashed id, or a 404.
    fn serve_record(&self, resource: Resource, key: &str, items: &[Value]) -> Option<Value> {
        (resource == Resource::Workouts)
            .then(|| {
                items
                    .iter()
                    .find(|i| i.get("id").and_then(Value::as_str) == Some(key))
                    .cloned()
            })
            .flatten()
    }

    /// The PING a new webhook gets (DOCS "Creating webhook", `webhookPing`), signed with
    /// its new key; it must be answered 200.
    fn verification_pushes(
        &self,
        subscription: &FixtureSubscription,
        _secrets: &PushSecrets,
        now: DateTime<Utc>,
    ) -> Vec<VerificationPush> {
        let body = json!({"timestamp": polar_instant(now), "event": "PING"});
        vec![VerificationPush {
            push: signed_push(subscription, "PING", &body),
            accepted: vec![200],
        }]
    }

    /// DOCS' webhook payloads for every webhook subscribed to the event: EXERCISE
    /// (`entity_id`, the exercise's `url`), SLEEP and ACTIVITY_SUMMARY (`date`, the day's
    /// `url`), `timestamp` the send time, signed with the webhook's key. Polar has no event
    /// for Nightly Recharge, deletions or deauthorizations.
    fn push_for(
        &self,
        change: &FixtureChange<'_>,
        subscriptions: &[FixtureSubscription],
        _secrets: &PushSecrets,
        now: DateTime<Utc>,
    ) -> Vec<(String, OutboundPush)> {
        if !matches!(
            change.kind,
            FixtureChangeKind::Created | FixtureChangeKind::Updated
        ) {
            return vec![];
        }
        let (Some(record), Ok(user)) = (change.record, change.user.parse::<i64>()) else {
            return vec![];
        };
        let base = "https://www.polaraccesslink.com/v3";
        let (event, body) = match change.resource {
            Resource::Workouts => (
                "EXERCISE",
                json!({"event": "EXERCISE", "user_id": user, "entity_id": record,
                       "timestamp": polar_instant(now), "url": format!("{base}/exercises/{record}")}),
            ),
            Resource::Sleep => (
                "SLEEP",
                json!({"event": "SLEEP", "user_id": user, "date": record,
                       "timestamp": polar_instant(now), "url": format!("{base}/users/sleep/{record}")}),
            ),
            Resource::Activity => (
                "ACTIVITY_SUMMARY",
                json!({"event": "ACTIVITY_SUMMARY", "user_id": user, "date": record,
                       "timestamp": polar_instant(now), "url": format!("{base}/users/activities/{record}")}),
            ),
            _ => return vec![],
        };
        subscriptions
            .iter()
            .filter(|s| s.kinds.iter().any(|k| k == event))
            .map(|s| (s.callback_url.clone(), signed_push(s, event, &body)))
            .collect()
    }

    /// DOCS "Webhooks" with HTTP Basic client credentials: `POST /v3/webhooks` (201
    /// `createdWebhook` with a fresh `signature_secret_key`, once the PING got 200; 409
    /// when the client has one; 400 when it cannot be created), `GET /v3/webhooks`
    /// (`webhookInfo`), `DELETE /v3/webhooks/{id}` (204).
    fn serve_subscription(
        &self,
        req: &SubscriptionRequest<'_>,
        subscriptions: &mut Vec<FixtureSubscription>,
        secrets: &PushSecrets,
    ) -> Option<SubscriptionServed> {
        let rest = req.path.strip_prefix("/v3/webhooks")?;
        let error = |status: u16, message: &str| {
            let kind = match status {
                401 => "UNAUTHORIZED",
                404 => "NOT_FOUND",
                409 => "CONFLICT",
                _ => "BAD_REQUEST",
            };
            let corr = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, message.as_bytes());
            SubscriptionServed::reply(
                status,
                json!({
                    "timestamp": polar_instant(req.now),
                    "status": status,
                    "errorType": kind,
                    "message": message,
                    "corrId": corr.to_string(),
                })
                .to_string(),
            )
        };
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", secrets.client_id, secrets.client_secret))
        );
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if auth != Some(basic.as_str()) {
            return Some(error(401, "Unauthorized"));
        }
        let info = |s: &FixtureSubscription| json!({"id": s.remote_id, "events": s.kinds, "url": s.callback_url, "active": true});
        Some(match (req.method, rest) {
            ("POST", "") => {
                let v: Value = serde_json::from_slice(req.body).unwrap_or(Value::Null);
                let url = v.get("url").and_then(Value::as_str).unwrap_or("");
                let events: Vec<String> = v
                    .get("events")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                const KNOWN: [&str; 6] = [
                    "EXERCISE",
                    "SLEEP",
                    "CONTINUOUS_HEART_RATE",
                    "SLEEP_WISE_CIRCADIAN_BEDTIME",
                    "SLEEP_WISE_ALERTNESS",
                    "ACTIVITY_SUMMARY",
                ];
                if url.is_empty()
                    || events.is_empty()
                    || events.iter().any(|e| !KNOWN.contains(&e.as_str()))
                {
                    return Some(error(400, "Webhook cannot be created."));
                }
                if !subscriptions.is_empty() {
                    return Some(error(409, "Webhook already exists."));
                }
                let n = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, url.as_bytes());
                let id = n.simple().to_string()[..6].to_string();
                let key = uuid::Uuid::new_v5(&n, b"signature_secret_key").to_string();
                let sub = FixtureSubscription {
                    callback_url: url.to_string(),
                    remote_id: Some(id.clone()),
                    kinds: events.clone(),
                    signing_secret: Some(key.clone()),
                    ..FixtureSubscription::default()
                };
                SubscriptionServed {
                    status: 201,
                    body: json!({"data": {"id": id, "events": events, "url": url, "signature_secret_key": key}})
                        .to_string(),
                    created: Some(sub),
                    if_unverified: Some({
                        let e = error(400, "Webhook cannot be created: the ping was not answered with 200 OK.");
                        (e.status, e.body)
                    }),
                }
            }
            ("GET", "") => SubscriptionServed::reply(
                200,
                json!({"data": subscriptions.iter().map(info).collect::<Vec<_>>()}).to_string(),
            ),
            ("DELETE", id) => {
                let id = id.trim_start_matches('/');
                let before = subscriptions.len();
                subscriptions.retain(|s| s.remote_id.as_deref() != Some(id));
                if subscriptions.len() == before {
                    error(404, "Webhook not found.")
                } else {
                    SubscriptionServed::reply(204, "")
                }
            }
            _ => return None,
        })
    }

    /// DOCS "Physical info" (see [`Step`]): a `POST` opens a transaction holding every
    /// entry (`data/body.json`, keyed by `id`) the user's commits have not handed over
    /// yet, 201 `transaction-location`, or 204 when there is none; `GET` lists its links
    /// (204 once none is left) and each entry, with its `transaction-id` and `polar-user`
    /// filled in; `PUT` commits it, 200, and its entries are never served again. An
    /// unknown transaction is 404 ("No transaction was found with given transaction
    /// id"). Uncommitted entries go into the next transaction too.
    fn serve_transaction(
        &self,
        method: &str,
        path: &str,
        items: &dyn Fn(Resource) -> Vec<Value>,
        state: &mut FixtureTransactions,
    ) -> Option<(u16, String)> {
        let (user, rest) = path.strip_prefix("/v3/users/")?.split_once('/')?;
        let rest = rest.strip_prefix("physical-information-transactions")?;
        let error = |status: u16| {
            let body = self
                .fixture(&format!("errors/{status}.json"))
                .unwrap_or("{}");
            Some((status, body.to_string()))
        };
        if !path_safe(user) {
            return error(404);
        }
        let home = format!("https://www.polaraccesslink.com/v3/users/{user}");
        let base = format!("{home}/physical-information-transactions");
        let key = |v: &Value| v.get("id").filter(|i| i.is_i64()).map(Value::to_string);
        let handed = |state: &FixtureTransactions, k: &str| {
            state.committed.contains(&(user.to_string(), k.to_string()))
        };
        let entries = items(Resource::Body);
        let parts: Vec<&str> = rest.split('/').collect();
        let tx = parts.get(1).map(|t| t.parse::<i64>().ok());
        // The transaction the path names, if it is this user's and open.
        let held = |state: &FixtureTransactions, tx: Option<i64>| {
            tx.and_then(|t| state.open.get(&t))
                .filter(|(u, _)| u == user)
                .map(|(_, keys)| keys.clone())
        };
        match (method, parts.as_slice()) {
            ("POST", [""]) => {
                let keys: Vec<String> = entries
                    .iter()
                    .filter_map(key)
                    .filter(|k| !handed(state, k))
                    .collect();
                if keys.is_empty() {
                    return Some((204, String::new()));
                }
                state.last_id += 1;
                let id = state.last_id;
                state.open.insert(id, (user.to_string(), keys));
                let reply = json!({"transaction-id": id, "resource-uri": format!("{base}/{id}")});
                Some((201, reply.to_string()))
            }
            ("GET", ["", _]) => {
                let Some(keys) = held(state, tx.flatten()) else {
                    return error(404);
                };
                let t = tx.flatten().unwrap_or_default();
                let links: Vec<String> = keys
                    .iter()
                    .filter(|k| !handed(state, k))
                    .map(|k| format!("{base}/{t}/physical-informations/{k}"))
                    .collect();
                if links.is_empty() {
                    return Some((204, String::new()));
                }
                Some((200, json!({ "physical-informations": links }).to_string()))
            }
            ("PUT", ["", _]) => {
                let Some(keys) = held(state, tx.flatten()) else {
                    return error(404);
                };
                if state.fail_commits {
                    return error(500);
                }
                state.open.remove(&tx.flatten().unwrap_or_default());
                for k in keys {
                    state.committed.insert((user.to_string(), k));
                }
                Some((200, String::new()))
            }
            ("GET", ["", _, "physical-informations", entry]) => {
                let Some(keys) = held(state, tx.flatten()) else {
                    return error(404);
                };
                if !keys.iter().any(|k| k == entry) {
                    return error(404);
                }
                if handed(state, entry) {
                    return Some((204, String::new()));
                }
                let mut v = entries
                    .iter()
                    .find(|v| key(v).as_deref() == Some(*entry))?
                    .clone();
                v["transaction-id"] = json!(tx.flatten());
                v["polar-user"] = json!(home);
                Some((200, v.to_string()))
            }
            _ => None,
        }
    }

    fn serve_call(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        registered: &mut HashSet<String>,
    ) -> Option<(u16, String)> {
        let error = |status: u16| {
            let body = self
                .fixture(&format!("errors/{status}.json"))
                .unwrap_or("{}")
                .to_string();
            (status, body)
        };
        match (method, path) {
            ("POST", "/v3/users") => {
                let member = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v.get("member-id")?.as_str().map(str::to_string));
                let Some(member) = member.filter(|m| !m.is_empty()) else {
                    return Some(error(400));
                };
                if !registered.insert(member.clone()) {
                    return Some(error(409));
                }
                let mut user: Value =
                    serde_json::from_str(self.fixture("users/registered.json")?).ok()?;
                user["member-id"] = json!(member);
                Some((200, user.to_string()))
            }
            ("DELETE", p) => {
                let id = p.strip_prefix("/v3/users/")?;
                if id != FIXTURE_USER {
                    return Some(error(404));
                }
                // Every fixture token is the same Polar user: de-registering them ends
                // every registration.
                registered.clear();
                Some((204, String::new()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> reqwest::header::HeaderMap {
        let mut h = reqwest::header::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    /// Both windows, short term first; the wait is the reset of the one used up (here the
    /// short term, with two registered users' growth in its limit).
    #[test]
    fn the_rate_limit_headers_are_read_short_term_then_long_term() {
        let r = Polar.rate_report(&headers(&[
            ("ratelimit-usage", "540, 1200"),
            ("ratelimit-limit", "540, 5200"),
            ("ratelimit-reset", "312, 80000"),
        ]));
        assert_eq!(
            r.usage,
            vec![
                super::super::WindowUsage {
                    period_secs: Some(900),
                    used: 540,
                    limit: Some(540)
                },
                super::super::WindowUsage {
                    period_secs: Some(86_400),
                    used: 1200,
                    limit: Some(5200)
                },
            ]
        );
        assert_eq!(r.reset_after, Some(Duration::from_secs(312)));
        let fine = Polar.rate_report(&headers(&[
            ("ratelimit-usage", "3, 3"),
            ("ratelimit-limit", "500, 5000"),
            ("ratelimit-reset", "899, 86399"),
        ]));
        assert_eq!(fine.reset_after, None);
        let garbage = Polar.rate_report(&headers(&[
            ("ratelimit-usage", "x"),
            ("ratelimit-limit", "500;window=900"),
        ]));
        assert_eq!(garbage, RateReport::default());
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn page(resource: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/fixtures/polar/pages/{resource}/page_1.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn spec(name: Resource) -> ResourceSpec {
        crate::providers::find("polar")
            .unwrap()
            .resource(name)
            .unwrap()
            .clone()
    }

    fn data(file: &str) -> Vec<Value> {
        serde_json::from_str(PolarFixtures.fixture(&format!("data/{file}")).unwrap()).unwrap()
    }

    fn one(resource: Resource, item: Value) -> Result<Record, ProviderError> {
        let body = match resource {
            Resource::Sleep => json!({ "nights": [item] }),
            Resource::Recovery => json!({ "recharges": [item] }),
            _ => json!([item]),
        };
        Polar
            .parse_page(resource, body.to_string().as_bytes(), None)
            .map(|p| p.records.into_iter().next().unwrap())
    }

    fn field_of(e: Result<Record, ProviderError>) -> String {
        match e {
            Err(ProviderError::Malformed { field, .. }) => field,
            other => panic!("expected a malformed error, got {other:?}"),
        }
    }

    #[test]
    fn iso_durations_become_whole_seconds() {
        assert_eq!(iso_duration_secs("PT2H44M45S", "d").unwrap(), 9_885);
        assert_eq!(iso_duration_secs("PT2H44M", "d").unwrap(), 9_840);
        assert_eq!(iso_duration_secs("PT210.026S", "d").unwrap(), 210);
        assert_eq!(iso_duration_secs("PT1H4M30.5S", "d").unwrap(), 3_871);
        assert_eq!(iso_duration_secs("P1DT2H", "d").unwrap(), 93_600);
        assert_eq!(iso_duration_secs("PT0S", "d").unwrap(), 0);
        for bad in [
            "",
            "2H",
            "PT",
            "P",
            "PT5",
            "PT5X",
            "PT1S2H",
            "PT1H1H",
            "P1M",
            "PT1..5S",
            "P99999999DT1H",
        ] {
            let e = iso_duration_secs(bad, "duration").unwrap_err();
            assert!(
                matches!(e, ProviderError::Malformed { ref field, .. } if field == "duration"),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn an_exercise_becomes_a_workout_in_utc_with_its_offset() {
        let r = one(
            Resource::Workouts,
            json!({"id": "2AC312F", "start_time": "2026-11-19T06:50:33", "start_time_utc_offset": 120,
                   "duration": "PT41M2S", "calories": 468, "distance": 7655.2,
                   "heart_rate": {"average": 146, "maximum": 170}, "sport": "RUNNING",
                   "detailed_sport_info": "TRAIL_RUNNING"}),
        )
        .unwrap()
        .to_json();
        assert_eq!(r["provider_id"], "2AC312F");
        assert_eq!(r["time_start"], "2026-11-19T04:50:33+00:00");
        assert_eq!(r["time_end"], "2026-11-19T05:31:35+00:00");
        assert_eq!(r["timezone_offset"], 7_200);
        assert_eq!(r["moving_time"], 2_462);
        assert_eq!(r["average_speed"], 3.11);
        assert_eq!(
            r["sport"],
            json!({"name": "Trail running", "slug": "trail_running"})
        );
        assert_eq!(
            (
                r["calories"].clone(),
                r["average_hr"].clone(),
                r["max_hr"].clone()
            ),
            (json!(468), json!(146), json!(170))
        );
        // West of UTC, and no distance indoors: absent stays null, never zero.
        let r = one(
            Resource::Workouts,
            json!({"id": "x", "start_time": "2026-11-19T18:00:00.000", "start_time_utc_offset": -300,
                   "duration": "PT30M", "sport": "OTHER"}),
        )
        .unwrap()
        .to_json();
        assert_eq!(r["time_start"], "2026-11-19T23:00:00+00:00");
        assert_eq!(r["timezone_offset"], -18_000);
        assert_eq!(r["sport"]["slug"], "other");
        for k in ["distance", "average_speed", "calories", "average_hr"] {
            assert!(r[k].is_null(), "{k}");
        }
    }

    #[test]
    fn sleep_stages_are_seconds_and_heart_rate_comes_from_the_samples() {
        let r = one(
            Resource::Sleep,
            json!({"date": "2020-01-01", "sleep_start_time": "2020-01-01T00:39:07+03:00",
                   "sleep_end_time": "2020-01-01T09:19:37+03:00", "light_sleep": 1000, "deep_sleep": 1000,
                   "rem_sleep": 1000, "unrecognized_sleep_stage": 1000, "sleep_score": 80,
                   "total_interruption_duration": 1000, "heart_rate_samples": {"00:41": 76, "00:46": 77, "00:51": 76}}),
        )
        .unwrap()
        .to_json();
        assert_eq!(r["provider_id"], "2020-01-01");
        assert_eq!(r["bedtime_start"], "2019-12-31T21:39:07+00:00");
        assert_eq!(r["timezone_offset"], 10_800);
        assert_eq!(r["duration"], 31_230);
        assert_eq!(
            (r["total"].clone(), r["awake"].clone()),
            (json!(4_000), json!(1_000))
        );
        assert_eq!(
            (r["hr_average"].clone(), r["hr_lowest"].clone()),
            (json!(76.3), json!(76))
        );
        assert_eq!(r["score"], 80);
        // Stages not reported: no total, no zeros.
        let r = one(
            Resource::Sleep,
            json!({"date": "2020-01-02", "sleep_start_time": "2020-01-01T23:00:00+02:00",
                   "sleep_end_time": "2020-01-02T07:00:00+02:00", "light_sleep": 1000}),
        )
        .unwrap()
        .to_json();
        assert!(r["total"].is_null() && r["deep"].is_null() && r["hr_average"].is_null());
        assert_eq!(r["light"], 1000);
    }

    #[test]
    fn recharge_and_activity_keep_their_units_and_keys() {
        let r = one(
            Resource::Recovery,
            json!({"date": "2020-01-01", "heart_rate_avg": 70, "beat_to_beat_avg": 816,
                   "heart_rate_variability_avg": 28, "breathing_rate_avg": 14.1, "nightly_recharge_status": 3,
                   "ans_charge": 0, "ans_charge_status": 3}),
        )
        .unwrap()
        .to_json();
        assert_eq!(r["provider_id"], "2020-01-01");
        assert_eq!(
            (
                r["resting_hr"].clone(),
                r["average_hrv"].clone(),
                r["respiratory_rate"].clone()
            ),
            (json!(70), json!(28), json!(14.1))
        );
        assert_eq!(
            (
                r["nightly_recharge_status"].clone(),
                r["ans_charge"].clone()
            ),
            (json!(3), json!(0))
        );
        assert!(
            r["recovery_score"].is_null(),
            "a 1–6 status is not a 0–100 score"
        );
        let r = one(
            Resource::Activity,
            json!({"start_time": "2025-08-13T08:15:30", "end_time": "2025-08-13T23:59:59", "calories": 2500,
                   "active_calories": 1500, "steps": 8823, "distance_from_steps": 4590.53}),
        )
        .unwrap()
        .to_json();
        assert_eq!(
            (r["provider_id"].clone(), r["calendar_date"].clone()),
            (json!("2025-08-13"), json!("2025-08-13"))
        );
        assert_eq!(
            (
                r["steps"].clone(),
                r["calories_total"].clone(),
                r["calories_active"].clone(),
                r["daily_movement"].clone()
            ),
            (json!(8823), json!(2500), json!(1500), json!(4590.53))
        );
        assert!(r["timezone_offset"].is_null());
    }

    #[test]
    fn a_malformed_field_names_its_path() {
        let mut nights = serde_json::from_slice::<Value>(&page("sleep")).unwrap();
        nights["nights"][2]["deep_sleep"] = json!("lots");
        match Polar.parse_page(Resource::Sleep, nights.to_string().as_bytes(), None) {
            Err(ProviderError::Malformed { field, .. }) => {
                assert_eq!(field, "nights[2].deep_sleep")
            }
            other => panic!("expected a malformed error, got {other:?}"),
        }
        let ex = |patch: Value| {
            let mut v = json!({"id": "x", "start_time": "2026-11-19T18:00:00", "start_time_utc_offset": 60, "duration": "PT30M"});
            for (k, x) in patch.as_object().unwrap() {
                v[k] = x.clone();
            }
            one(Resource::Workouts, v)
        };
        assert_eq!(
            field_of(ex(json!({"start_time": "yesterday"}))),
            "[0].start_time"
        );
        assert_eq!(
            field_of(ex(json!({"start_time_utc_offset": 100_000}))),
            "[0].start_time_utc_offset"
        );
        assert_eq!(
            field_of(ex(json!({"start_time_utc_offset": i64::MAX}))),
            "[0].start_time_utc_offset"
        );
        assert_eq!(
            field_of(ex(json!({"start_time_utc_offset": null}))),
            "[0].start_time_utc_offset"
        );
        assert_eq!(
            field_of(ex(json!({"duration": "45 minutes"}))),
            "[0].duration"
        );
        assert_eq!(field_of(ex(json!({"id": null}))), "[0].id");
        assert_eq!(
            field_of(ex(json!({"heart_rate": {"average": "high"}}))),
            "[0].heart_rate.average"
        );
        assert_eq!(
            field_of(one(
                Resource::Sleep,
                json!({"date": "2020-01-01", "sleep_start_time": "2020-01-01T09:00:00Z",
            "sleep_end_time": "2020-01-01T01:00:00Z"})
            )),
            "nights[0].sleep_end_time"
        );
        assert_eq!(
            field_of(one(
                Resource::Sleep,
                json!({"date": "2020-01-01", "sleep_start_time": "2020-01-01T01:00:00Z",
            "sleep_end_time": "2020-01-01T09:00:00Z", "heart_rate_samples": {"00:41": "76"}})
            )),
            "nights[0].heart_rate_samples.00:41"
        );
        assert_eq!(
            field_of(one(Resource::Recovery, json!({"date": "1/1/2020"}))),
            "recharges[0].date"
        );
        assert_eq!(
            field_of(one(Resource::Activity, json!({"start_time": "13.08.2025"}))),
            "[0].start_time"
        );
        assert!(
            matches!(Polar.parse_page(Resource::Workouts, b"{\"exercises\": []}", None), Err(ProviderError::Malformed { ref field, .. }) if field == "$")
        );
        assert!(
            matches!(Polar.parse_page(Resource::Sleep, b"{\"nights\": 3}", None), Err(ProviderError::Malformed { ref field, .. }) if field == "nights")
        );
        assert!(matches!(
            Polar.parse_page(Resource::Sleep, b"<html>", None),
            Err(ProviderError::Malformed { .. })
        ));
        assert!(matches!(
            Polar.parse_page(Resource::Glucose, b"[]", None),
            Err(ProviderError::Malformed { .. })
        ));
    }

    #[test]
    fn an_empty_reply_or_list_is_an_empty_last_page() {
        for (r, body) in [
            (Resource::Activity, &b""[..]),
            (Resource::Workouts, b"[]"),
            (Resource::Sleep, b"{}"),
            (Resource::Recovery, b"{\"recharges\": []}"),
        ] {
            assert_eq!(
                Polar.parse_page(r, body, None).unwrap(),
                Page::default(),
                "{r}"
            );
        }
    }

    #[test]
    fn only_daily_activity_asks_for_dates_and_its_range_stays_inside_28_days() {
        let w = Window {
            start: at("2026-11-04T06:57:00Z"),
            end: at("2026-12-02T06:57:00Z"),
        };
        let req = Polar.page_request(&spec(Resource::Activity), &w, None);
        assert_eq!(
            (req.method, req.path.as_str()),
            ("GET", "/v3/users/activities")
        );
        assert_eq!(
            req.query,
            vec![
                ("from".to_string(), "2026-11-04".to_string()),
                ("to".to_string(), "2026-12-02".to_string())
            ]
        );
        // A window ending at midnight does not ask for the next day.
        let midnight = Window {
            start: at("2026-11-01T00:00:00Z"),
            end: at("2026-11-29T00:00:00Z"),
        };
        let q = Polar
            .page_request(&spec(Resource::Activity), &midnight, None)
            .query;
        assert_eq!(q[1].1, "2026-11-28");
        for r in [Resource::Workouts, Resource::Sleep, Resource::Recovery] {
            let req = Polar.page_request(&spec(r), &w, None);
            assert!(req.query.is_empty(), "{r}");
            assert_eq!(req.path, spec(r).path);
        }
    }

    #[test]
    fn the_token_reply_names_the_user_and_loses_its_expiry() {
        let text = PolarFixtures.fixture("oauth/token.json").unwrap();
        let v: Value = serde_json::from_str(text).unwrap();
        assert!(
            v.get("refresh_token").is_none(),
            "Polar issues no refresh token"
        );
        assert_eq!(Polar.external_user_id(&v).as_deref(), Some("10579"));
        let out: Value =
            serde_json::from_slice(&Polar.token_reply(200, text.as_bytes()).unwrap()).unwrap();
        assert!(out.get("expires_in").is_none());
        assert_eq!(
            (out["access_token"].clone(), out["x_user_id"].clone()),
            (v["access_token"].clone(), json!(10579))
        );
        let refused = PolarFixtures
            .fixture("oauth/invalid_grant.json")
            .unwrap()
            .as_bytes();
        assert_eq!(Polar.token_reply(400, refused).unwrap(), refused);
    }

    #[test]
    fn registration_is_a_json_post_and_409_means_already_registered() {
        let call = Polar.register_user("member-7", Some("10579")).unwrap();
        assert_eq!((call.method, call.path.as_str()), ("POST", "/v3/users"));
        assert_eq!(call.json, Some(json!({"member-id": "member-7"})));
        assert!(Polar.registration_reply(200, b"{}").is_ok());
        assert!(Polar.registration_reply(409, b"").is_ok());
        assert!(matches!(
            Polar.registration_reply(403, b""),
            Err(ProviderError::ScopeNotGranted(_))
        ));
        assert!(matches!(
            Polar.registration_reply(401, b""),
            Err(ProviderError::Unauthorized(_))
        ));
        assert!(matches!(
            Polar.registration_reply(503, b""),
            Err(ProviderError::Transient(_))
        ));
        let del = Polar.deregister_user(Some("10579")).unwrap();
        assert_eq!(
            (del.method, del.path.as_str(), del.json),
            ("DELETE", "/v3/users/10579", None)
        );
        assert_eq!(Polar.deregister_user(None), None);
    }

    #[test]
    fn the_fixture_server_registers_once_and_deregisters() {
        let mut known = HashSet::new();
        let body = br#"{"member-id": "u-1"}"#;
        let (s, reply) = PolarFixtures
            .serve_call("POST", "/v3/users", body, &mut known)
            .unwrap();
        assert_eq!(s, 200);
        let user: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(
            (user["member-id"].clone(), user["polar-user-id"].clone()),
            (json!("u-1"), json!(10579))
        );
        assert_eq!(
            PolarFixtures
                .serve_call("POST", "/v3/users", body, &mut known)
                .unwrap()
                .0,
            409
        );
        assert_eq!(
            PolarFixtures
                .serve_call("POST", "/v3/users", b"{}", &mut known)
                .unwrap()
                .0,
            400
        );
        assert_eq!(
            PolarFixtures
                .serve_call("DELETE", "/v3/users/1", b"", &mut known)
                .unwrap()
                .0,
            404
        );
        assert_eq!(
            PolarFixtures
                .serve_call("DELETE", "/v3/users/10579", b"", &mut known)
                .unwrap(),
            (204, String::new())
        );
        assert!(known.is_empty());
        assert_eq!(
            PolarFixtures
                .serve_call("POST", "/v3/users", body, &mut known)
                .unwrap()
                .0,
            200
        );
        assert_eq!(
            PolarFixtures.serve_call("GET", "/v3/exercises", b"", &mut known),
            None
        );
    }

    #[test]
    fn errors_read_by_status() {
        let body = |s: u16| {
            PolarFixtures
                .fixture(&format!("errors/{s}.json"))
                .unwrap()
                .as_bytes()
        };
        assert!(matches!(
            Polar.classify_error(401, None, body(401)),
            ProviderError::Unauthorized(_)
        ));
        assert!(matches!(
            Polar.classify_error(403, None, body(403)),
            ProviderError::ScopeNotGranted(_)
        ));
        assert!(
            matches!(Polar.classify_error(429, Some(Duration::from_secs(9)), body(429)), ProviderError::RateLimited { retry_after: Some(d) } if d.as_secs() == 9)
        );
        assert!(matches!(
            Polar.classify_error(500, None, body(500)),
            ProviderError::Transient(_)
        ));
        assert!(matches!(
            Polar.classify_error(400, None, body(400)),
            ProviderError::Refused(_)
        ));
        let e: Value = serde_json::from_slice(body(429)).unwrap();
        assert_eq!(e["status"], 429, "the documented error model");
    }

    #[test]
    fn the_fixture_server_keeps_to_the_documented_reach() {
        let p = |pairs: &[(&str, String)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<HashMap<_, _>>()
        };
        let today = Utc::now().date_naive();
        let day = |n: i64| ymd(today - ChronoDuration::days(n));
        let acts = vec![
            json!({"start_time": format!("{}T00:00:00", day(2)), "steps": 1}),
            json!({"start_time": format!("{}T00:00:00", day(40)), "steps": 2}),
        ];
        let s = spec(Resource::Activity);
        assert!(
            PolarFixtures.serve(&s, &p(&[]), &acts).is_err(),
            "from is required"
        );
        assert!(PolarFixtures
            .serve(&s, &p(&[("from", day(366))]), &acts)
            .is_err());
        assert!(PolarFixtures
            .serve(&s, &p(&[("from", day(29)), ("to", day(0))]), &acts)
            .is_err());
        assert!(PolarFixtures
            .serve(&s, &p(&[("from", "2026/11/01".into())]), &acts)
            .is_err());
        let v = PolarFixtures
            .serve(&s, &p(&[("from", day(28))]), &acts)
            .unwrap();
        assert_eq!(v.as_array().unwrap().len(), 1, "`to` defaults to today");
        let v = PolarFixtures
            .serve(&s, &p(&[("from", day(50)), ("to", day(30))]), &acts)
            .unwrap();
        assert_eq!(v[0]["steps"], 2);
        let nights = vec![json!({"date": day(1)}), json!({"date": day(28)})];
        let v = PolarFixtures
            .serve(&spec(Resource::Sleep), &p(&[]), &nights)
            .unwrap();
        assert_eq!(v["nights"].as_array().unwrap().len(), 1, "the last 28 days");
        let v = PolarFixtures
            .serve(&spec(Resource::Recovery), &p(&[]), &nights)
            .unwrap();
        assert_eq!(v["recharges"].as_array().unwrap().len(), 1);
        let up =
            |d: i64| json!({"upload_time": (Utc::now() - ChronoDuration::days(d)).to_rfc3339()});
        let v = PolarFixtures
            .serve(&spec(Resource::Workouts), &p(&[]), &[up(29), up(31)])
            .unwrap();
        assert_eq!(
            v.as_array().unwrap().len(),
            1,
            "uploaded in the last 30 days"
        );
    }

    /// The runtime's loop against the fixture server over a backfill window that holds
    /// the whole fixture set: every record exactly once, in one request.
    #[test]
    fn adapter_and_fixture_server_deliver_a_whole_window_in_one_request() {
        let now = Utc::now();
        let shift = (now.date_naive() - NaiveDate::from_ymd_opt(2026, 11, 23).unwrap())
            .num_days()
            .max(0);
        for (r, file) in [
            (Resource::Workouts, "workouts.json"),
            (Resource::Sleep, "sleep.json"),
            (Resource::Recovery, "recovery.json"),
            (Resource::Activity, "activity.json"),
        ] {
            // What the fixture server serves: the recorded data moved up to today.
            let items: Vec<Value> = data(file)
                .into_iter()
                .map(|v| {
                    let mut s = v.to_string();
                    for (old, new) in shifted_dates(&v, shift) {
                        s = s.replace(&old, &new);
                    }
                    serde_json::from_str(&s).unwrap()
                })
                .collect();
            let w = crate::providers::plan_windows(now - chrono::Duration::days(28), now, 28)[0];
            let req = Polar.page_request(&spec(r), &w, None);
            let params: HashMap<String, String> = req.query.into_iter().collect();
            let body = PolarFixtures.serve(&spec(r), &params, &items).unwrap();
            let page = Polar
                .parse_page(r, body.to_string().as_bytes(), None)
                .unwrap();
            assert_eq!(page.next, None);
            let mut ids: Vec<String> = page.records.into_iter().map(|x| x.provider_id).collect();
            let n = ids.len();
            ids.sort();
            ids.dedup();
            assert_eq!((n, ids.len()), (items.len(), items.len()), "{r}");
        }
    }

    /// Elixir biosensing: a passed SpO2 spot test is a blood oxygen sample (its offset in
    /// minutes), an inconclusive one is none; a core-temperature period's readings are body
    /// temperature samples at their instants, a skin-temperature period's are none.
    #[test]
    fn spo2_tests_and_core_temperature_periods_become_samples() {
        let tests = json!([
            {"source_device_id": "A", "test_time": 1_697_787_256, "time_zone_offset": 180,
             "test_status": "SPO2_TEST_PASSED", "blood_oxygen_percent": 95},
            {"source_device_id": "A", "test_time": 1_697_787_400, "time_zone_offset": 180,
             "test_status": "SPO2_TEST_INCONCLUSIVE_TOO_LOW_OVERALL_QUALITY"},
            {"source_device_id": "A", "test_time": 1_697_787_500, "test_status": "SPO2_TEST_PASSED"}
        ]);
        let page = Polar
            .parse_page(Resource::BloodOxygen, tests.to_string().as_bytes(), None)
            .unwrap();
        assert_eq!(
            page.records.len(),
            1,
            "inconclusive or valueless: no sample"
        );
        let r = page.records[0].to_json();
        assert_eq!(
            (r["value"].clone(), r["unit"].clone(), r["type"].clone()),
            (json!(95.0), json!("%"), json!("blood_oxygen"))
        );
        assert_eq!(
            (r["timestamp"].clone(), r["timezone_offset"].clone()),
            (json!("2023-10-20T07:34:16+00:00"), json!(10_800)),
            "DOCS' own example: Unix seconds, the offset in minutes"
        );
        let bad = json!([{"test_time": 1, "test_status": "SPO2_TEST_PASSED", "blood_oxygen_percent": 120}]);
        assert!(matches!(
            Polar.parse_page(Resource::BloodOxygen, bad.to_string().as_bytes(), None),
            Err(ProviderError::Malformed { field, .. }) if field == "[0].blood_oxygen_percent"
        ));

        let periods = json!([
            {"source_device_id": "A", "measurement_type": "TM_CORE_TEMPERATURE", "sensor_location": "SL_PROXIMAL",
             "start_time": "2023-10-20T04:00:00", "end_time": "2023-10-20T05:00:00",
             "samples": [{"temperature_celsius": 36.5, "recording_time_delta_milliseconds": 123},
                         {"temperature_celsius": 36.7, "recording_time_delta_milliseconds": 900_000},
                         {"recording_time_delta_milliseconds": 1_800_000}]},
            {"source_device_id": "A", "measurement_type": "TM_SKIN_TEMPERATURE", "sensor_location": "SL_DISTAL",
             "start_time": "2023-10-20T01:00:00", "samples": [{"temperature_celsius": 33.6, "recording_time_delta_milliseconds": 0}]},
            {"measurement_type": "TM_UNKNOWN", "start_time": "2023-10-20T01:00:00",
             "samples": [{"temperature_celsius": 35.0, "recording_time_delta_milliseconds": 0}]}
        ]);
        let page = Polar
            .parse_page(
                Resource::BodyTemperature,
                periods.to_string().as_bytes(),
                None,
            )
            .unwrap();
        let t: Vec<Value> = page.records.iter().map(Record::to_json).collect();
        assert_eq!(t.len(), 2, "core readings with a value only: {t:?}");
        assert_eq!(
            t[0]["timestamp"], "2023-10-20T04:00:00+00:00",
            "123 ms in, to the second"
        );
        assert_eq!(t[1]["timestamp"], "2023-10-20T04:15:00+00:00");
        assert_eq!(
            (
                t[1]["value"].clone(),
                t[1]["unit"].clone(),
                t[1]["start"].clone()
            ),
            (json!(36.7), json!("°C"), t[1]["timestamp"].clone())
        );
        assert!(t[0]["sensor_location"].is_null() && t[0]["timezone_offset"].is_null());
        // An empty reply (204) or list is nothing.
        assert!(Polar
            .parse_page(Resource::BodyTemperature, b"", None)
            .unwrap()
            .records
            .is_empty());

        // Both take the window's days, at most 28, as daily activity does.
        let w = Window {
            start: at("2026-10-26T00:00:00Z"),
            end: at("2026-11-23T00:00:00Z"),
        };
        for (r, file) in [
            (Resource::BloodOxygen, "blood_oxygen.json"),
            (Resource::BodyTemperature, "body_temperature.json"),
        ] {
            let req = Polar.page_request(&spec(r), &w, None);
            let params: HashMap<String, String> = req.query.into_iter().collect();
            assert_eq!(
                (params["from"].as_str(), params["to"].as_str()),
                ("2026-10-26", "2026-11-22")
            );
            let items = data(file);
            let body = PolarFixtures.serve(&spec(r), &params, &items).unwrap();
            assert_eq!(body.as_array().unwrap().len(), items.len(), "{r}");
            let page = Polar
                .parse_page(r, body.to_string().as_bytes(), None)
                .unwrap();
            let expected = if r == Resource::BloodOxygen {
                items
                    .iter()
                    .filter(|t| t["test_status"] == "SPO2_TEST_PASSED")
                    .count()
            } else {
                items
                    .iter()
                    .filter(|p| p["measurement_type"] == "TM_CORE_TEMPERATURE")
                    .flat_map(|p| p["samples"].as_array().unwrap())
                    .filter(|s| s["temperature_celsius"].is_number())
                    .count()
            };
            assert_eq!(page.records.len(), expected, "{r}");
            let mut too_long = params.clone();
            too_long.insert("from".into(), "2026-10-01".into());
            assert!(PolarFixtures.serve(&spec(r), &too_long, &items).is_err());
        }
    }

    /// Every date in `v` and its replacement `days` later (the dates the fixture server
    /// moves, in the formats Polar writes them).
    fn shifted_dates(v: &Value, days: i64) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let text = v.to_string();
        let bytes = text.as_bytes();
        for i in 0..bytes.len().saturating_sub(10) {
            if let Some(d) = text
                .get(i..i + 10)
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            {
                out.push((ymd(d), ymd(d + ChronoDuration::days(days))));
            }
        }
        out.sort();
        out.dedup();
        // Latest first, so a replaced date is never replaced again.
        out.reverse();
        out
    }

    /// `.changed.json` = the same list with exactly one record edited and one appended,
    /// both inside the 3-day lookback of the recording day (2026-11-23).
    #[test]
    fn changed_data_edits_one_recent_record_and_appends_one() {
        for (r, key, resource) in [
            ("workouts", "start_time", Resource::Workouts),
            ("sleep", "date", Resource::Sleep),
            ("recovery", "date", Resource::Recovery),
            ("activity", "start_time", Resource::Activity),
        ] {
            let (before, after) = (
                data(&format!("{r}.json")),
                data(&format!("{r}.changed.json")),
            );
            assert_eq!(after.len(), before.len() + 1, "{r}");
            let edited: Vec<&Value> = before
                .iter()
                .zip(&after)
                .filter(|(a, b)| a != b)
                .map(|(_, b)| b)
                .collect();
            assert_eq!(edited.len(), 1, "{r}");
            // The edit shows in the normalised record, so a poll reports it as updated.
            let was = before
                .iter()
                .find(|b| *b != edited[0] && b[key] == edited[0][key])
                .unwrap();
            assert_ne!(
                one(resource, was.clone()).unwrap(),
                one(resource, edited[0].clone()).unwrap(),
                "{r}"
            );
            for rec in [edited[0], after.last().unwrap()] {
                let d = &rec[key].as_str().unwrap()[..10];
                assert!(
                    ("2026-11-20"..="2026-11-22").contains(&d),
                    "{r}: {d} is inside every poll's lookback"
                );
            }
        }
    }

    /// DOCS "Sleep skin temperature data": a night's deviation from baseline is one body
    /// temperature delta sample covering its `sleep_date`, in °C; the absolute skin
    /// temperature is not a sample; a night without a deviation is none.
    #[test]
    fn a_nights_skin_temperature_deviation_is_a_delta_sample_of_its_day() {
        // DOCS' own example reply, and a night without a baseline yet.
        let body = json!([
            {"sleep_time_skin_temperature_celsius": 36.5, "deviation_from_baseline_celsius": 0.5, "sleep_date": "2023-10-20"},
            {"sleep_time_skin_temperature_celsius": 33.4, "deviation_from_baseline_celsius": null, "sleep_date": "2023-10-21"},
            {"sleep_date": "2023-10-22"}
        ]);
        let page = Polar
            .parse_page(
                Resource::BodyTemperatureDelta,
                body.to_string().as_bytes(),
                None,
            )
            .unwrap();
        assert_eq!(page.records.len(), 1, "no deviation: no sample");
        let r = page.records[0].to_json();
        assert_eq!(r["provider_id"], "2023-10-20");
        assert_eq!(
            (r["value"].clone(), r["unit"].clone()),
            (json!(0.5), json!("°C"))
        );
        assert_eq!(
            (r["start"].clone(), r["end"].clone()),
            (
                json!("2023-10-20T00:00:00+00:00"),
                json!("2023-10-21T00:00:00+00:00")
            )
        );
        assert_eq!(r["timestamp"], r["start"]);
        assert!(r["timezone_offset"].is_null(), "a date names no offset");
        assert_eq!(r["skin_temperature"], 36.5);
        // 204: nothing.
        assert!(Polar
            .parse_page(Resource::BodyTemperatureDelta, b"", None)
            .unwrap()
            .records
            .is_empty());
        for (bad, field) in [
            (
                json!([{"deviation_from_baseline_celsius": 0.1, "sleep_date": "20.10.2023"}]),
                "[0].sleep_date",
            ),
            (
                json!([{"deviation_from_baseline_celsius": "high", "sleep_date": "2023-10-20"}]),
                "[0].deviation_from_baseline_celsius",
            ),
            (
                json!([{"deviation_from_baseline_celsius": 0.1}]),
                "[0].sleep_date",
            ),
        ] {
            assert!(
                matches!(
                    Polar.parse_page(Resource::BodyTemperatureDelta, bad.to_string().as_bytes(), None),
                    Err(ProviderError::Malformed { field: f, .. }) if f == field
                ),
                "{bad}"
            );
        }
        assert!(Polar
            .parse_page(Resource::BodyTemperatureDelta, b"{\"nights\": []}", None)
            .is_err());
        // Asked for by day, like the other biosensing lists.
        let p = crate::providers::find(ID).unwrap();
        let spec = p.resource(Resource::BodyTemperatureDelta).unwrap();
        assert_eq!(spec.path, "/v3/users/biosensing/skintemperature");
        let w = Window {
            start: DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            end: DateTime::parse_from_rfc3339("2026-11-15T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        };
        let q = Polar.page_request(spec, &w, None).query;
        assert_eq!(
            q,
            vec![
                ("from".to_string(), "2026-11-01".to_string()),
                ("to".to_string(), "2026-11-14".to_string())
            ]
        );
    }

    mod push {
        use super::super::*;
        use crate::providers::push::testing::{at, Owned};
        use std::collections::BTreeMap;

        const KEY: &str = "abe1f3ae-fd33-11e8-8eb2-f2801f1b9fd1";

        fn secrets() -> PushSecrets {
            PushSecrets {
                client_id: "d52d533a-3c71-4141-aea6-3402519678aa".into(),
                client_secret: "polar-client-s3cret".into(),
                signing_secret: Some(KEY.into()),
                ..PushSecrets::default()
            }
        }

        fn signed(body: &[u8], sig: &str) -> Owned {
            Owned::new(
                &[
                    ("content-type", "application/json"),
                    ("polar-webhook-signature", sig),
                ],
                &[],
                body,
                at("2026-11-21T18:42:11Z"),
            )
        }

        /// Computed independently: `hmac.new(b"abe1f3ae-fd33-11e8-8eb2-f2801f1b9fd1",
        /// open("fixtures/polar/push/exercise.json","rb").read(), hashlib.sha256)
        /// .hexdigest()` in Python (the key is DOCS' example `signature_secret_key`).
        #[test]
        fn the_signature_is_hex_hmac_of_the_body_with_the_webhook_key() {
            let body = include_bytes!("../../fixtures/polar/push/exercise.json");
            let sig = "e592b5cb9873e60a8d882444335c2a863697a49bf655d001ff211bd072cad409";
            assert!(Polar
                .verify_push(&signed(body, sig).req(), &secrets())
                .is_ok());
            assert!(Polar
                .verify_push(&signed(body, &sig.to_uppercase()).req(), &secrets())
                .is_ok());
            let refused = |r: Owned, s: &PushSecrets| {
                matches!(
                    Polar.verify_push(&r.req(), s),
                    Err(PushError::Unverified(_))
                )
            };
            assert!(refused(
                signed(
                    body,
                    "e592b5cb9873e60a8d882444335c2a863697a49bf655d001ff211bd072cad408"
                ),
                &secrets()
            ));
            assert!(refused(
                signed(include_bytes!("../../fixtures/polar/push/sleep.json"), sig),
                &secrets()
            ));
            assert!(refused(signed(body, "zz"), &secrets()));
            assert!(refused(
                Owned::new(&[], &[], body, at("2026-11-21T18:42:11Z")),
                &secrets()
            ));
            let mut no_key = secrets();
            no_key.signing_secret = None;
            assert!(
                refused(signed(body, sig), &no_key),
                "without the key nothing verifies"
            );
        }

        #[test]
        fn the_ping_is_answered_without_verification() {
            let ping = Owned::new(
                &[
                    ("polar-webhook-event", "PING"),
                    ("polar-webhook-signature", "00"),
                ],
                &[],
                include_bytes!("../../fixtures/polar/push/ping.json"),
                at("2026-11-20T09:00:01Z"),
            );
            let reply = Polar
                .push_handshake(&ping.req(), &PushSecrets::default())
                .unwrap()
                .unwrap();
            assert_eq!(reply.status, 200);
            let body_only = Owned::new(
                &[],
                &[],
                include_bytes!("../../fixtures/polar/push/ping.json"),
                at("2026-11-20T09:00:01Z"),
            );
            assert!(Polar
                .push_handshake(&body_only.req(), &PushSecrets::default())
                .is_some());
            let event = signed(
                include_bytes!("../../fixtures/polar/push/exercise.json"),
                "00",
            );
            assert!(Polar.push_handshake(&event.req(), &secrets()).is_none());
            assert!(matches!(
                Polar.parse_push(&body_only.req()).unwrap()[0].action,
                NoticeAction::Ignored(_)
            ));
        }

        fn parsed(body: &[u8]) -> Vec<Notice> {
            Polar.parse_push(&signed(body, "").req()).unwrap()
        }

        #[test]
        fn each_documented_payload_becomes_its_notices() {
            let e = parsed(include_bytes!("../../fixtures/polar/push/exercise.json"));
            assert_eq!(e.len(), 1);
            assert_eq!(
                e[0].user, "10579",
                "x_user_id, as external_user_id gives it"
            );
            assert_eq!(e[0].at, Some(at("2026-11-21T18:42:10Z")));
            assert_eq!(
                e[0].action,
                NoticeAction::Changed {
                    resource: Resource::Workouts,
                    record: Some("L0pK9sE".into()),
                    window: None
                }
            );
            let night = Some(Window {
                start: at("2026-11-20T00:00:00Z"),
                end: at("2026-11-23T00:00:00Z"),
            });
            let s = parsed(include_bytes!("../../fixtures/polar/push/sleep.json"));
            assert_eq!(
                s.iter().map(|n| n.action.clone()).collect::<Vec<_>>(),
                vec![
                    NoticeAction::Changed {
                        resource: Resource::Sleep,
                        record: None,
                        window: night
                    },
                    NoticeAction::Changed {
                        resource: Resource::Recovery,
                        record: None,
                        window: night
                    },
                ]
            );
            assert_ne!(s[0].key, s[1].key);
            let a = parsed(include_bytes!(
                "../../fixtures/polar/push/activity_summary.json"
            ));
            assert_eq!(
                a[0].action,
                NoticeAction::Changed {
                    resource: Resource::Activity,
                    record: None,
                    window: night
                }
            );
            // The same day notified again later is another notice.
            let later = include_str!("../../fixtures/polar/push/activity_summary.json")
                .replace("20:05:00", "22:15:00");
            assert_ne!(parsed(later.as_bytes())[0].key, a[0].key);
            assert_eq!(
                parsed(include_bytes!(
                    "../../fixtures/polar/push/activity_summary.json"
                ))[0]
                    .key,
                a[0].key
            );
            let chr = br#"{"event":"CONTINUOUS_HEART_RATE","user_id":10579,"date":"2026-11-21","timestamp":"2026-11-21T20:05:00Z"}"#;
            assert!(matches!(parsed(chr)[0].action, NoticeAction::Ignored(_)));
            for bad in [
                &b"nope"[..],
                br#"{"user_id":10579,"entity_id":"x"}"#,
                br#"{"event":"EXERCISE","entity_id":"x"}"#,
                br#"{"event":"EXERCISE","user_id":10579}"#,
                br#"{"event":"SLEEP","user_id":10579,"date":"21.11.2026"}"#,
                br#"{"event":"SLEEP","user_id":10579,"date":"2026-11-21","timestamp":"later"}"#,
            ] {
                assert!(
                    matches!(
                        Polar.parse_push(&signed(bad, "").req()),
                        Err(PushError::Malformed(_))
                    ),
                    "{}",
                    String::from_utf8_lossy(bad)
                );
            }
        }

        #[test]
        fn one_exercise_is_read_by_its_hashed_id() {
            let spec = crate::providers::find("polar")
                .unwrap()
                .resource(Resource::Workouts)
                .unwrap()
                .clone();
            let req = Polar.record_request(&spec, "L0pK9sE").unwrap();
            assert_eq!(req.path, "/v3/exercises/L0pK9sE");
            assert_eq!(Polar.record_request(&spec, "../users"), None);
            let sleep = crate::providers::find("polar")
                .unwrap()
                .resource(Resource::Sleep)
                .unwrap()
                .clone();
            assert_eq!(Polar.record_request(&sleep, "2026-11-21"), None);
            assert_eq!(
                PolarFixtures.record_path(&req.path),
                Some((Resource::Workouts, "L0pK9sE".into()))
            );
            let items: Vec<Value> =
                serde_json::from_str(PolarFixtures.fixture("data/workouts.json").unwrap()).unwrap();
            let served = PolarFixtures
                .serve_record(Resource::Workouts, "L0pK9sE", &items)
                .unwrap();
            let page = Polar
                .parse_record(Resource::Workouts, served.to_string().as_bytes())
                .unwrap();
            assert_eq!(page.records[0].provider_id, "L0pK9sE");
            assert!(PolarFixtures
                .serve_record(Resource::Workouts, "nope", &items)
                .is_none());
            assert!(Polar.parse_record(Resource::Workouts, b"[]").is_err());
        }

        #[test]
        fn the_webhook_is_created_with_basic_auth_and_returns_its_signing_key() {
            let calls = Polar.subscribe_calls(
                "https://gw.example/v1/providers/polar/notifications",
                &secrets(),
            );
            assert_eq!(calls.len(), 1);
            let c = &calls[0];
            assert_eq!(
                (c.method, c.url.as_str(), c.basic_auth, c.user_token),
                ("POST", "/v3/webhooks", true, false)
            );
            assert_eq!(
                c.json,
                Some(
                    json!({"events": ["EXERCISE", "SLEEP", "ACTIVITY_SUMMARY"], "url": "https://gw.example/v1/providers/polar/notifications"})
                )
            );
            let sub = Polar
                .subscription_reply(
                    201,
                    include_bytes!("../../fixtures/polar/push/webhook_created.json"),
                )
                .unwrap();
            assert_eq!(sub.remote_id.as_deref(), Some("abdf33"));
            assert_eq!(sub.signing_secret.as_deref(), Some(KEY));
            assert_eq!(sub.expires_at, None);
            assert!(Polar
                .subscription_reply(409, include_bytes!("../../fixtures/polar/errors/409.json"))
                .is_err());
            assert!(Polar
                .subscription_reply(201, br#"{"data":{"id":"x"}}"#)
                .is_err());
            assert_eq!(Polar.renew_call("abdf33", &secrets()), None);
        }

        #[test]
        fn the_fixture_server_pings_creates_and_pushes_signed_payloads_that_read_back() {
            let now = at("2026-11-21T18:00:00Z");
            let secrets = secrets();
            let call = &Polar.subscribe_calls("https://gw.example/cb", &secrets)[0];
            let mut headers = reqwest::header::HeaderMap::new();
            let basic = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", secrets.client_id, secrets.client_secret))
            );
            headers.insert("authorization", basic.parse().unwrap());
            let body = call.json.as_ref().unwrap().to_string();
            let params = BTreeMap::new();
            let req = SubscriptionRequest {
                method: "POST",
                path: "/v3/webhooks",
                headers: &headers,
                params: &params,
                body: body.as_bytes(),
                now,
            };
            let mut subs = vec![];
            let served = PolarFixtures
                .serve_subscription(&req, &mut subs, &secrets)
                .unwrap();
            assert_eq!(served.status, 201);
            let created = served.created.clone().unwrap();
            let got = Polar
                .subscription_reply(served.status, served.body.as_bytes())
                .unwrap();
            assert_eq!(got.signing_secret, created.signing_secret);
            // The PING is answered by the adapter with the 200 Polar wants.
            let pings = PolarFixtures.verification_pushes(&created, &secrets, now);
            assert_eq!(pings.len(), 1);
            let r = Owned::of(&pings[0].push, now);
            let reply = Polar
                .push_handshake(&r.req(), &PushSecrets::default())
                .unwrap()
                .unwrap();
            assert!(pings[0].accepted.contains(&reply.status));
            subs.push(created);
            assert_eq!(
                PolarFixtures
                    .serve_subscription(&req, &mut subs, &secrets)
                    .unwrap()
                    .status,
                409
            );
            let unauthorized = reqwest::header::HeaderMap::new();
            let no_auth = SubscriptionRequest {
                headers: &unauthorized,
                ..req
            };
            assert_eq!(
                PolarFixtures
                    .serve_subscription(&no_auth, &mut subs, &secrets)
                    .unwrap()
                    .status,
                401
            );

            let mut ours = secrets.clone();
            ours.signing_secret = got.signing_secret.clone();
            for (resource, record, want) in [
                (Resource::Workouts, "L0pK9sE", vec![Resource::Workouts]),
                (
                    Resource::Sleep,
                    "2026-11-21",
                    vec![Resource::Sleep, Resource::Recovery],
                ),
                (Resource::Activity, "2026-11-21", vec![Resource::Activity]),
            ] {
                for kind in [FixtureChangeKind::Created, FixtureChangeKind::Updated] {
                    let change = FixtureChange {
                        user: "10579",
                        resource,
                        kind,
                        item: None,
                        record: Some(record),
                        at: now,
                    };
                    let pushes = PolarFixtures.push_for(&change, &subs, &secrets, now);
                    assert_eq!(pushes.len(), 1, "{resource}");
                    let r = Owned::of(&pushes[0].1, now);
                    assert!(Polar.push_handshake(&r.req(), &ours).is_none());
                    Polar.verify_push(&r.req(), &ours).unwrap();
                    let n = Polar.parse_push(&r.req()).unwrap();
                    assert_eq!(
                        n.iter().map(|x| x.user.as_str()).collect::<Vec<_>>(),
                        vec!["10579"; want.len()]
                    );
                    let got: Vec<Resource> = n
                        .iter()
                        .map(|x| match &x.action {
                            NoticeAction::Changed {
                                resource, record, ..
                            } => {
                                if *resource == Resource::Workouts {
                                    assert_eq!(record.as_deref(), Some("L0pK9sE"));
                                }
                                *resource
                            }
                            other => panic!("{other:?}"),
                        })
                        .collect();
                    assert_eq!(got, want);
                }
            }
            for (resource, kind) in [
                (Resource::Workouts, FixtureChangeKind::Deleted),
                (Resource::Recovery, FixtureChangeKind::Created),
                (Resource::Workouts, FixtureChangeKind::Deauthorized),
            ] {
                let change = FixtureChange {
                    user: "10579",
                    resource,
                    kind,
                    item: None,
                    record: Some("L0pK9sE"),
                    at: now,
                };
                assert!(
                    PolarFixtures
                        .push_for(&change, &subs, &secrets, now)
                        .is_empty(),
                    "{resource} {kind:?}: no such event"
                );
            }
            let get = SubscriptionRequest {
                method: "GET",
                ..req
            };
            let info: Value = serde_json::from_str(
                &PolarFixtures
                    .serve_subscription(&get, &mut subs, &secrets)
                    .unwrap()
                    .body,
            )
            .unwrap();
            assert_eq!(info["data"][0]["url"], "https://gw.example/cb");
            let id = subs[0].remote_id.clone().unwrap();
            let path = format!("/v3/webhooks/{id}");
            let del = SubscriptionRequest {
                method: "DELETE",
                path: &path,
                ..req
            };
            assert_eq!(
                PolarFixtures
                    .serve_subscription(&del, &mut subs, &secrets)
                    .unwrap()
                    .status,
                204
            );
            assert!(subs.is_empty());
        }
    }

    /// Physical information: the steps' requests and replies, page by page.
    mod physical {
        use super::*;

        fn body_page(n: u32) -> Vec<u8> {
            std::fs::read(format!(
                "{}/fixtures/polar/pages/body/page_{n}.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        }

        fn window() -> Window {
            Window {
                start: at("2026-10-25T00:00:00Z"),
                end: at("2026-11-22T00:00:00Z"),
            }
        }

        /// Each step's request for `cursor` as `METHOD path`.
        fn request(cursor: Option<&str>) -> String {
            let r = Polar.page_request(&spec(Resource::Body), &window(), cursor);
            assert!(r.query.is_empty() && r.form.is_empty() && r.json.is_none());
            format!("{} {}", r.method, r.path)
        }

        fn parse(body: &[u8], cursor: Option<&str>) -> Result<Page, ProviderError> {
            Polar.parse_page(Resource::Body, body, cursor)
        }

        fn malformed_field(r: Result<Page, ProviderError>) -> String {
            match r {
                Err(ProviderError::Malformed { field, .. }) => field,
                other => panic!("expected a malformed reply, got {other:?}"),
            }
        }

        const TX: &str = "/v3/users/{user-id}/physical-information-transactions";

        #[test]
        fn the_chain_opens_lists_fetches_each_entry_and_commits_last() {
            let mut cursor: Option<String> = None;
            let mut steps = vec![];
            let mut records = vec![];
            for n in 1..=6 {
                steps.push(request(cursor.as_deref()));
                let page = parse(&body_page(n), cursor.as_deref()).unwrap();
                records.push(page.records);
                cursor = page.next;
            }
            assert_eq!(cursor, None, "the commit ends the run");
            assert_eq!(
                steps,
                [
                    format!("POST {TX}"),
                    format!("GET {TX}/179879"),
                    format!("GET {TX}/179879/physical-informations/4711001"),
                    format!("GET {TX}/179879/physical-informations/4711002"),
                    format!("GET {TX}/179879/physical-informations/4711003"),
                    format!("PUT {TX}/179879"),
                ]
            );
            // Opening, listing and committing store nothing; each entry with a weight
            // is a body record on its own page; the newest height is the profile, on
            // the last entry's page, before the commit is asked for.
            let counts: Vec<usize> = records.iter().map(Vec::len).collect();
            assert_eq!(counts, [0, 0, 1, 1, 1, 0]);
            let first = &records[2][0];
            assert_eq!(
                (first.resource, first.provider_id.as_str()),
                (Resource::Body, "4711001")
            );
            assert_eq!(first.fields["measured_at"], "2026-10-27T19:03:12+00:00");
            assert_eq!(first.fields["weight"], 61.2);
            assert_eq!(first.fields["source"]["type"], "manual", "SOURCE_USER");
            assert_eq!(
                records[3][0].fields["source"]["type"], "unknown",
                "SOURCE_MEASURED"
            );
            // The third entry has no weight: no body record, and never a zero.
            let profile = &records[4][0];
            assert_eq!(
                (profile.resource, profile.provider_id.as_str()),
                (Resource::Profile, "10579")
            );
            assert_eq!(
                profile.fields["height"], 1.69,
                "centimetres, stored in metres"
            );
            assert_eq!(profile.fields["measured_at"], "2026-11-18T20:10:05+00:00");
        }

        #[test]
        fn nothing_new_or_nothing_listed_ends_quietly() {
            // 204 to the POST: no transaction, nothing to commit.
            assert_eq!(parse(b"", None).unwrap(), Page::default());
            // A transaction whose list is empty (204, or no links) is committed at once.
            for list in [&b""[..], b"{}", br#"{"physical-informations": []}"#] {
                let page = parse(list, Some(r#"{"step":"list","tx":7}"#)).unwrap();
                assert!(page.records.is_empty());
                assert_eq!(request(page.next.as_deref()), format!("PUT {TX}/7"));
            }
            // An entry answered 204 gives nothing; the chain goes on.
            let cursor = r#"{"step":"fetch","tx":7,"user":"5","ids":[1,2]}"#;
            let page = parse(b"", Some(cursor)).unwrap();
            assert!(page.records.is_empty());
            assert_eq!(
                request(page.next.as_deref()),
                format!("GET {TX}/7/physical-informations/2")
            );
            // Committed (200 with no body): done.
            assert_eq!(
                parse(b"", Some(r#"{"step":"commit","tx":7}"#))
                    .unwrap()
                    .next,
                None
            );
            // A cursor that is not ours starts the chain.
            assert_eq!(request(Some("garbage")), format!("POST {TX}"));
        }

        #[test]
        fn the_profile_is_the_newest_height_whatever_the_order_and_a_reread_is_the_same() {
            let entry = |id: i64, created: &str, height: Value| {
                json!({"id": id, "created": created, "weight": 70.0, "height": height}).to_string()
            };
            let run = |entries: &[(i64, String)]| -> Vec<Record> {
                let ids: Vec<i64> = entries.iter().map(|(id, _)| *id).collect();
                let mut cursor =
                    Some(json!({"step": "fetch", "tx": 3, "user": "42", "ids": ids}).to_string());
                let mut out = vec![];
                for (_, body) in entries {
                    let page = parse(body.as_bytes(), cursor.as_deref()).unwrap();
                    out.extend(page.records);
                    cursor = page.next;
                }
                assert_eq!(request(cursor.as_deref()), format!("PUT {TX}/3"));
                out
            };
            let entries = [
                (10, entry(10, "2026-11-20T08:00:00.000Z", json!(181))),
                (11, entry(11, "2026-11-02T08:00:00.000Z", json!(179))),
                (12, entry(12, "2026-11-21T08:00:00.000Z", json!(null))),
            ];
            let records = run(&entries);
            let profiles: Vec<&Record> = records
                .iter()
                .filter(|r| r.resource == Resource::Profile)
                .collect();
            assert_eq!(profiles.len(), 1, "one profile per transaction");
            assert_eq!(
                profiles[0].fields["height"], 1.81,
                "the newest entry with a height"
            );
            assert_eq!(profiles[0].provider_id, "42");
            assert_eq!(
                records
                    .iter()
                    .filter(|r| r.resource == Resource::Body)
                    .count(),
                3
            );
            assert_eq!(run(&entries), records, "the same entries, the same records");
        }

        #[test]
        fn malformed_replies_name_their_field_and_never_panic() {
            assert_eq!(malformed_field(parse(b"{}", None)), "transaction-id");
            assert_eq!(
                malformed_field(parse(br#"{"transaction-id": "x"}"#, None)),
                "transaction-id"
            );
            assert_eq!(malformed_field(parse(b"<xml/>", None)), "$");
            let list = Some(r#"{"step":"list","tx":7}"#);
            assert_eq!(
                malformed_field(parse(br#"{"physical-informations": 3}"#, list)),
                "physical-informations"
            );
            for bad in [
                json!(["https://www.polaraccesslink.com/v3/users/5/elsewhere/1"]),
                json!([1]),
                json!(["https://x/v3/users/5/physical-information-transactions/7/physical-informations/nan"]),
                json!(["https://x/v3/users/a%2Fb/physical-information-transactions/7/physical-informations/1"]),
            ] {
                let body = json!({ "physical-informations": bad }).to_string();
                assert_eq!(
                    malformed_field(parse(body.as_bytes(), list)),
                    "physical-informations[0]"
                );
            }
            let two_users = json!({"physical-informations": [
                "https://x/v3/users/5/physical-information-transactions/7/physical-informations/1",
                "https://x/v3/users/6/physical-information-transactions/7/physical-informations/2",
            ]});
            assert_eq!(
                malformed_field(parse(two_users.to_string().as_bytes(), list)),
                "physical-informations[1]"
            );
            let fetch = Some(r#"{"step":"fetch","tx":7,"user":"5","ids":[1]}"#);
            for (entry, field) in [
                (json!({"weight": 70}), "created"),
                (json!({"created": "yesterday", "weight": 70}), "created"),
                (
                    json!({"created": "2026-11-02T08:00:00.000Z", "weight": "heavy"}),
                    "weight",
                ),
                (
                    json!({"created": "2026-11-02T08:00:00.000Z", "height": [1]}),
                    "height",
                ),
                (json!([]), "$"),
            ] {
                assert_eq!(
                    malformed_field(parse(entry.to_string().as_bytes(), fetch)),
                    field,
                    "{entry}"
                );
            }
            // Readings without a value are not zeros: no body, no profile.
            for empty in [json!(null), json!(0), json!(-1)] {
                let entry = json!({"created": "2026-11-02T08:00:00.000Z", "weight": empty, "height": empty});
                let page = parse(entry.to_string().as_bytes(), fetch).unwrap();
                assert!(page.records.is_empty(), "{entry}");
            }
        }

        #[test]
        fn the_user_goes_into_the_path_and_a_gone_transaction_is_gone() {
            let req = Polar.page_request(&spec(Resource::Body), &window(), None);
            assert_eq!(
                req.clone().for_user(Some("10579")).unwrap().path,
                "/v3/users/10579/physical-information-transactions"
            );
            assert_eq!(
                req.clone().for_user(Some("a/b c")).unwrap().path,
                "/v3/users/a%2Fb%20c/physical-information-transactions"
            );
            assert!(matches!(req.for_user(None), Err(ProviderError::Refused(_))));
            // Paths that name no user need none.
            let sleep = Polar.page_request(&spec(Resource::Sleep), &window(), None);
            assert_eq!(sleep.clone().for_user(None).unwrap(), sleep);
            assert!(matches!(
                Polar.classify_error(404, None, b""),
                ProviderError::Gone(_)
            ));
            assert_eq!(Polar.read_with(Resource::Profile), Some(Resource::Body));
            assert_eq!(Polar.read_with(Resource::Body), None);
        }

        #[test]
        fn the_fixture_server_hands_each_entry_over_once() {
            let entries = data("body.json");
            let items = |r: Resource| {
                assert_eq!(r, Resource::Body);
                entries.clone()
            };
            let mut state = FixtureTransactions::default();
            let mut call = |method: &str, path: &str| {
                PolarFixtures
                    .serve_transaction(method, path, &items, &mut state)
                    .unwrap()
            };
            let tx = "/v3/users/10579/physical-information-transactions";
            let (status, created) = call("POST", tx);
            assert_eq!(status, 201);
            let created: Value = serde_json::from_str(&created).unwrap();
            assert_eq!(created["transaction-id"], 1);
            // An uncommitted transaction's entries go into the next one too.
            assert_eq!(call("POST", tx).0, 201);
            let (status, list) = call("GET", &format!("{tx}/1"));
            assert_eq!(status, 200);
            let list: Value = serde_json::from_str(&list).unwrap();
            assert_eq!(list["physical-informations"].as_array().unwrap().len(), 3);
            let (status, entry) = call("GET", &format!("{tx}/1/physical-informations/4711002"));
            assert_eq!(status, 200);
            let entry: Value = serde_json::from_str(&entry).unwrap();
            assert_eq!(
                (&entry["transaction-id"], &entry["polar-user"]),
                (
                    &json!(1),
                    &json!("https://www.polaraccesslink.com/v3/users/10579")
                )
            );
            assert_eq!(
                call("GET", &format!("{tx}/1/physical-informations/1")).0,
                404
            );
            assert_eq!(
                call("GET", &format!("{tx}/9")).0,
                404,
                "unknown transaction"
            );
            assert_eq!(
                call("GET", "/v3/users/7/physical-information-transactions/1").0,
                404,
                "another user's"
            );
            assert_eq!(call("PUT", &format!("{tx}/1")), (200, String::new()));
            assert_eq!(call("PUT", &format!("{tx}/1")).0, 404, "committed: gone");
            // The other open transaction held the same entries: they are handed over.
            assert_eq!(call("GET", &format!("{tx}/2")).0, 204);
            assert_eq!(
                call("GET", &format!("{tx}/2/physical-informations/4711001")).0,
                204
            );
            assert_eq!(call("POST", tx).0, 204, "nothing new");
            // Another user has their own.
            assert_eq!(
                call("POST", "/v3/users/7/physical-information-transactions").0,
                201
            );
            assert!(PolarFixtures
                .serve_transaction("GET", "/v3/users/10579/sleep", &items, &mut state)
                .is_none());
        }
    }
}
