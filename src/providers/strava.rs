//! Strava API v3 (<https://developers.strava.com/docs/>), `GET /athlete/activities`:
//! a bare JSON array of SummaryActivity, paged by `page`/`per_page` (≤ 200). A short
//! page is not the end (Strava's "Pagination" note): only an empty page is, so the
//! next cursor is the page number plus one while a page has items. The window is
//! `after`/`before` in epoch seconds against `start_date`. Quirks, with sources, are
//! in `fixtures/strava/README.md`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use serde_json::{json, Value};

use super::normalize::*;
use super::push::*;
use super::{
    Adapter, Impersonation, Page, PageRequest, ProviderError, RateReport, RateWindow, Record,
    ResourceSpec, Window, WindowCount,
};
use crate::events::Resource;

pub struct Strava;

const ID: &str = "strava";
const PER_PAGE: usize = 200;

/// The Fault body's `errors[]` as (resource, field, code).
fn fault(body: &[u8]) -> Vec<(String, String, String)> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    v["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
                    (s("resource"), s("field"), s("code"))
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Adapter for Strava {
    fn page_request(
        &self,
        resource: &ResourceSpec,
        window: &Window,
        cursor: Option<&str>,
    ) -> PageRequest {
        // Strict bounds are undocumented either way; `after = start − 1` keeps the window
        // half-open on the safe side, and stable ids absorb any overlap.
        PageRequest::get(
            resource.path.clone(),
            vec![
                ("after".into(), (window.start.timestamp() - 1).to_string()),
                ("before".into(), window.end.timestamp().to_string()),
                ("page".into(), cursor.unwrap_or("1").to_string()),
                ("per_page".into(), PER_PAGE.to_string()),
            ],
        )
    }

    fn parse_page(
        &self,
        resource: Resource,
        body: &[u8],
        cursor: Option<&str>,
    ) -> Result<Page, ProviderError> {
        if resource != Resource::Workouts {
            return Err(ProviderError::malformed(
                "resource",
                format!("Strava has no {resource}"),
            ));
        }
        let v = parse_json(body)?;
        let items = v
            .as_array()
            .ok_or_else(|| ProviderError::malformed("$", "expected a JSON array of activities"))?;
        let records = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                activity(item).map_err(|e| match e {
                    ProviderError::Malformed { field, message } => {
                        ProviderError::malformed(format!("[{i}].{field}"), message)
                    }
                    e => e,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let page: u32 = cursor.and_then(|c| c.parse().ok()).unwrap_or(1);
        // Past page u32::MAX there is no next page to ask for (and `+ 1` would overflow).
        let next = if items.is_empty() {
            None
        } else {
            page.checked_add(1).map(|n| n.to_string())
        };
        Ok(Page {
            records,
            next,
            ..Page::default()
        })
    }

    /// `GET /activities/{id}` (SWAGGER `getActivityById`): one DetailedActivity, what a
    /// push notification's `object_id` names. Needs the same `activity:read(_all)` scope.
    fn record_request(
        &self,
        resource: &ResourceSpec,
        provider_record_id: &str,
    ) -> Option<PageRequest> {
        // Activity ids are int64 (SWAGGER): anything else is not a Strava activity, and
        // must not be spliced into the path.
        if resource.name != Resource::Workouts || provider_record_id.parse::<i64>().is_err() {
            return None;
        }
        Some(PageRequest::get(
            format!("/activities/{provider_record_id}"),
            vec![],
        ))
    }

    /// A DetailedActivity is a SummaryActivity plus detail, `calories` among it: one record.
    fn parse_record(&self, resource: Resource, body: &[u8]) -> Result<Page, ProviderError> {
        if resource != Resource::Workouts {
            return Err(ProviderError::malformed(
                "resource",
                format!("Strava has no {resource}"),
            ));
        }
        let v = parse_json(body)?;
        if !v.is_object() {
            return Err(ProviderError::malformed(
                "$",
                "expected a DetailedActivity object",
            ));
        }
        Ok(Page {
            records: vec![activity(&v)?],
            ..Page::default()
        })
    }

    fn classify_error(
        &self,
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> ProviderError {
        let errors = fault(body);
        match status {
            // Strava answers a missing scope with 401 too; a refresh cannot fix that.
            401 if errors.iter().any(|(r, f, c)| {
                r == "AccessToken" && f.ends_with("_permission") && c == "missing"
            }) =>
            {
                ProviderError::ScopeNotGranted(String::from_utf8_lossy(body).into_owned())
            }
            // No Retry-After is documented: the 15-minute window resets at :00/:15/:30/:45.
            429 => ProviderError::RateLimited {
                retry_after: retry_after.or_else(|| Some(until_next_quarter_hour())),
            },
            _ => ProviderError::from_status(status, retry_after, body),
        }
    }

    /// The read budget (every request we make is a read): `X-ReadRateLimit-Usage` and
    /// `-Limit`, 15-minute then daily (RATE). No reset is sent; the windows are clock
    /// aligned, so an exhausted day resets at 00:00 UTC and an exhausted quarter hour at the
    /// next :00/:15/:30/:45, counted from the reply's `Date`.
    fn rate_report(&self, headers: &reqwest::header::HeaderMap) -> RateReport {
        let usage = positional_usage(
            headers,
            "x-readratelimit-usage",
            "x-readratelimit-limit",
            &WINDOWS,
        );
        let exhausted = |period: u64| {
            usage
                .iter()
                .any(|u| u.period_secs == Some(period) && u.limit.is_some_and(|l| u.used >= l))
        };
        let reset_after = if exhausted(WINDOWS[1]) {
            Some(until_midnight_utc(crate::http::reply_time(headers)))
        } else if exhausted(WINDOWS[0]) {
            Some(until_next_quarter_hour_at(crate::http::reply_time(headers)))
        } else {
            None
        };
        RateReport { usage, reset_after }
    }

    /// A refused grant is a 400 with Strava's Fault body (`RefreshToken`/`refresh_token`/
    /// `invalid`, or `AuthorizationCode`/`code`/`invalid`), not RFC 6749's `invalid_grant`.
    fn token_reply(&self, status: u16, body: &[u8]) -> Result<Vec<u8>, ProviderError> {
        if status == 400
            && fault(body).iter().any(|(r, _, c)| {
                (r == "RefreshToken" || r == "AuthorizationCode") && c == "invalid"
            })
        {
            return Err(ProviderError::Refused(
                String::from_utf8_lossy(body).into_owned(),
            ));
        }
        Ok(body.to_vec())
    }

    /// Only the first code exchange carries `athlete`; its id is the external user id.
    fn external_user_id(&self, token_reply: &Value) -> Option<String> {
        token_reply
            .get("athlete")
            .and_then(|a| a.get("id"))
            .map(|id| match id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
    }

    /// Creating the subscription makes Strava validate the callback (NOTES §4): a `GET`
    /// with `hub.mode=subscribe`, `hub.challenge` and the `hub.verify_token` we chose,
    /// answered 200 with `{"hub.challenge": <challenge>}`.
    fn push_handshake(
        &self,
        req: &PushRequest<'_>,
        secrets: &PushSecrets,
    ) -> Option<Result<PushReply, PushError>> {
        if !req.query.keys().any(|k| k.starts_with("hub.")) {
            return None;
        }
        let q = |k: &str| req.query.get(k).map(String::as_str).unwrap_or("");
        Some(if q("hub.mode") != "subscribe" {
            Err(PushError::Unverified(format!(
                "hub.mode `{}` is not subscribe",
                q("hub.mode")
            )))
        } else if secrets.verify_token.is_empty()
            || !same_secret(
                q("hub.verify_token").as_bytes(),
                secrets.verify_token.as_bytes(),
            )
        {
            Err(PushError::Unverified("hub.verify_token is not ours".into()))
        } else if q("hub.challenge").is_empty() {
            Err(PushError::Unverified("no hub.challenge to echo".into()))
        } else {
            Ok(PushReply::json(
                &json!({"hub.challenge": q("hub.challenge")}),
            ))
        })
    }

    /// Strava signs nothing (WEBHOOKS documents no signature header): an event is ours
    /// when it names a subscription id we hold (the `id` Strava returned when we
    /// subscribed) and an athlete, `owner_id`, that is a positive integer. The gateway
    /// then matches the athlete to a connection.
    fn verify_push(&self, req: &PushRequest<'_>, secrets: &PushSecrets) -> Result<(), PushError> {
        let v = json_body(req)?;
        let sub = v
            .get("subscription_id")
            .and_then(id_text)
            .ok_or_else(|| PushError::Unverified("the event names no subscription_id".into()))?;
        if !secrets.subscription_ids.iter().any(|s| s == &sub) {
            return Err(PushError::Unverified(format!(
                "subscription {sub} is not ours"
            )));
        }
        match v.get("owner_id").and_then(Value::as_i64) {
            Some(owner) if owner > 0 => Ok(()),
            _ => Err(PushError::Unverified(
                "owner_id is not an athlete id".into(),
            )),
        }
    }

    /// WEBHOOKS "Event Data": `object_type` activity or athlete, `object_id`,
    /// `aspect_type` create/update/delete, `updates` (changed title/type/private, or
    /// `"authorized": "false"` when the athlete revokes access), `owner_id` (the athlete),
    /// `subscription_id`, `event_time` (epoch seconds). No id of its own: the key digests
    /// all of it but the subscription.
    fn parse_push(&self, req: &PushRequest<'_>) -> Result<Vec<Notice>, PushError> {
        let v = json_body(req)?;
        let bad = |m: &str| PushError::Malformed(m.to_string());
        let text = |k: &str| v.get(k).and_then(Value::as_str).ok_or_else(|| bad(k));
        let object_type = text("object_type")?;
        let aspect = text("aspect_type")?;
        let object_id = v
            .get("object_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("object_id is not an integer"))?
            .to_string();
        let owner = v
            .get("owner_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("owner_id is not an integer"))?
            .to_string();
        let event_time = v
            .get("event_time")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("event_time is not epoch seconds"))?;
        let at = DateTime::from_timestamp(event_time, 0).ok_or_else(|| bad("event_time"))?;
        let updates = v.get("updates").cloned().unwrap_or(Value::Null);
        let action = match (object_type, aspect) {
            ("activity", "create" | "update") => NoticeAction::Changed {
                resource: Resource::Workouts,
                record: Some(object_id.clone()),
                window: None,
            },
            ("activity", "delete") => NoticeAction::Deleted {
                resource: Resource::Workouts,
                record: object_id.clone(),
            },
            ("athlete", _)
                if updates.get("authorized").and_then(Value::as_str) == Some("false") =>
            {
                NoticeAction::Deauthorized
            }
            (o, a) => NoticeAction::Ignored(format!("{o} {a}")),
        };
        Ok(vec![Notice {
            key: digest_key(&[
                ID,
                object_type,
                &object_id,
                aspect,
                &event_time.to_string(),
                &updates.to_string(),
            ]),
            user: owner,
            action,
            at: Some(at),
        }])
    }

    /// `POST https://www.strava.com/api/v3/push_subscriptions` with `client_id`,
    /// `client_secret`, `callback_url` and `verify_token` as form fields (NOTES §4; the
    /// old reference: "request parameters must be sent in URL format"). One subscription
    /// per application; it does not expire.
    fn subscribe_calls(&self, callback_url: &str, secrets: &PushSecrets) -> Vec<SubscriptionCall> {
        vec![SubscriptionCall {
            method: "POST",
            url: "/push_subscriptions".into(),
            query: vec![],
            form: vec![
                ("client_id".into(), secrets.client_id.clone()),
                ("client_secret".into(), secrets.client_secret.clone()),
                ("callback_url".into(), callback_url.to_string()),
                ("verify_token".into(), secrets.verify_token.clone()),
            ],
            json: None,
            headers: vec![],
            basic_auth: false,
            user_token: false,
        }]
    }

    /// A created subscription is answered `{"id": <subscription id>}` (WEBHOOKS), the id
    /// every event then carries as `subscription_id`.
    fn subscription_reply(&self, status: u16, body: &[u8]) -> Result<Subscribed, ProviderError> {
        if !(200..300).contains(&status) {
            return Err(self.classify_error(status, None, body));
        }
        let v = parse_json(body)?;
        let id = v
            .get("id")
            .and_then(id_text)
            .ok_or_else(|| ProviderError::malformed("id", "no subscription id"))?;
        Ok(Subscribed {
            remote_id: Some(id),
            ..Subscribed::default()
        })
    }
}

fn until_next_quarter_hour() -> Duration {
    until_next_quarter_hour_at(Utc::now())
}

/// From `now` to a second past the next :00/:15/:30/:45, when the 15-minute window resets.
fn until_next_quarter_hour_at(now: DateTime<Utc>) -> Duration {
    let into = (now.minute() % 15) as u64 * 60 + now.second() as u64;
    Duration::from_secs(15 * 60 - into + 1)
}

/// From `now` to a second past 00:00 UTC, when the daily window resets.
fn until_midnight_utc(now: DateTime<Utc>) -> Duration {
    let into = now.num_seconds_from_midnight() as u64;
    Duration::from_secs(86_400 - into + 1)
}

/// Strava's windows in the order its headers give them: "15-minute …, followed by daily".
const WINDOWS: [u64; 2] = [900, 86_400];

/// One SummaryActivity (list) or DetailedActivity (single read) → a workout.
fn activity(v: &Value) -> Result<Record, ProviderError> {
    let (start_t, _) = utc_instant(req_str(v, "start_date")?, "start_date")?;
    let start = format_utc(start_t);
    let elapsed = opt_i64(v, "elapsed_time")?.unwrap_or(0);
    let end = format_utc(plus_secs(start_t, elapsed, "elapsed_time")?);
    // `utc_offset` is the offset in force that day; `timezone`'s "(GMT+01:00)" label is
    // the zone's standard offset and wrong in summer. `start_date_local` is local wall
    // time marked `Z`, so it gives the offset when `utc_offset` is absent.
    let offset = match opt_f64(v, "utc_offset")? {
        Some(o) => Some(offset_in_range(to_i64(o, "utc_offset")?, "utc_offset")?),
        None => match opt_str(v, "start_date_local")? {
            Some(local) => {
                let (local_t, _) = utc_instant(local, "start_date_local")?;
                // Both lie in years 0000–9999: the difference cannot overflow.
                let secs = (local_t - start_t).num_seconds();
                Some(offset_in_range(secs, "start_date_local")?)
            }
            None => None,
        },
    };
    let sport = opt_str(v, "sport_type")?
        .or(opt_str(v, "type")?)
        .unwrap_or("unknown");
    let slug = slug(sport);
    let title = opt_str(v, "name")?
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| display_name(&slug));
    Ok(Record {
        resource: Resource::Workouts,
        provider_id: req_id(v, "id")?,
        fields: fields(vec![
            ("source", source(ID, "app")),
            ("title", json!(title)),
            ("sport", json!({"name": display_name(&slug), "slug": slug})),
            ("time_start", json!(start)),
            ("time_end", json!(end)),
            ("timezone_offset", int(offset.map(i64::from))),
            ("moving_time", number(v, "moving_time")?),
            ("distance", number(v, "distance")?),
            // SummaryActivity has no calories, and `kilojoules` is pedal work, not
            // energy burned: left null rather than guessed. A DetailedActivity has
            // `calories`, "the number of kilocalories consumed during this activity"
            // (SWAGGER DetailedActivity).
            ("calories", number(v, "calories")?),
            ("average_hr", number(v, "average_heartrate")?),
            ("max_hr", number(v, "max_heartrate")?),
            ("total_elevation_gain", number(v, "total_elevation_gain")?),
            ("average_speed", number(v, "average_speed")?),
            ("max_speed", number(v, "max_speed")?),
        ]),
    })
}

/// The fixture server's Strava: `after < start_date < before`, newest first (oldest
/// first when only `after` is given), `page`/`per_page`, `[]` past the end.
pub struct StravaFixtures;

impl Impersonation for StravaFixtures {
    /// Every reply carries the app's usage, each header `15-minute,daily` (RATE): the read
    /// budget is the manifest's windows; the overall budget, which reads spend too, has
    /// the documented defaults 200 and 2,000.
    fn rate_limit_headers(
        &self,
        windows: &[WindowCount],
        _refused: Option<usize>,
        _now: DateTime<Utc>,
    ) -> Vec<(&'static str, String)> {
        let pair = |f: fn(&WindowCount) -> u64| WindowCount::joined(windows, ",", f);
        vec![
            ("x-ratelimit-limit", "200,2000".to_string()),
            ("x-ratelimit-usage", pair(|w| w.used)),
            ("x-readratelimit-limit", pair(|w| w.limit)),
            ("x-readratelimit-usage", pair(|w| w.used)),
        ]
    }

    /// Over-limit requests still count (RATE: "requests violating the short term limit will
    /// still count toward the long term limit"; its example 429 reports a 15-minute usage
    /// of 692 against a limit of 600, so they count in the short window too).
    fn refusal_counts(&self, _refused: &RateWindow, _window: &RateWindow) -> bool {
        true
    }

    fn fixture(&self, path: &str) -> Option<&'static str> {
        Some(match path {
            "oauth/token.json" => include_str!("../../fixtures/strava/oauth/token.json"),
            "oauth/refresh.json" => include_str!("../../fixtures/strava/oauth/refresh.json"),
            "oauth/invalid_grant.json" => {
                include_str!("../../fixtures/strava/oauth/invalid_grant.json")
            }
            "errors/400.json" => include_str!("../../fixtures/strava/errors/400.json"),
            "errors/401.json" => include_str!("../../fixtures/strava/errors/401.json"),
            "errors/403.json" => include_str!("../../fixtures/strava/errors/403.json"),
            "errors/404.json" => include_str!("../../fixtures/strava/errors/404.json"),
            "errors/429.json" => include_str!("../../fixtures/strava/errors/429.json"),
            "errors/500.json" => include_str!("../../fixtures/strava/errors/500.json"),
            "data/workouts.json" => include_str!("../../fixtures/strava/data/workouts.json"),
            "data/workouts.changed.json" => {
                include_str!("../../fixtures/strava/data/workouts.changed.json")
            }
            "data/workouts.detail.json" => {
                include_str!("../../fixtures/strava/data/workouts.detail.json")
            }
            _ => return None,
        })
    }

    /// `/activities/{id}`, the id an int64 (SWAGGER `getActivityById`).
    fn record_path(&self, path: &str) -> Option<(Resource, String)> {
        let id = path.strip_prefix("/activities/")?;
        id.parse::<i64>()
            .is_ok()
            .then(|| (Resource::Workouts, id.to_string()))
    }

    /// The list's SummaryActivity for that id made a DetailedActivity: `resource_state`
    /// 3 and the detail-only fields (`calories`, `description`, …) that
    /// `data/workouts.detail.json` holds per id. So a renamed activity reads renamed in
    /// both, as on Strava. An unknown id is a 404.
    fn serve_record(&self, resource: Resource, key: &str, items: &[Value]) -> Option<Value> {
        if resource != Resource::Workouts {
            return None;
        }
        let want: i64 = key.parse().ok()?;
        let same_id = |v: &Value| v.get("id").and_then(Value::as_i64) == Some(want);
        let mut detail = items.iter().find(|i| same_id(i))?.clone();
        let extra: Vec<Value> = self
            .fixture("data/workouts.detail.json")
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        let d = detail.as_object_mut()?;
        d.insert("resource_state".into(), json!(3));
        if let Some(more) = extra.iter().find(|e| same_id(e)).and_then(Value::as_object) {
            for (k, v) in more {
                if k != "id" {
                    d.insert(k.clone(), v.clone());
                }
            }
        }
        Some(detail)
    }

    fn serve(
        &self,
        _resource: &ResourceSpec,
        params: &HashMap<String, String>,
        items: &[Value],
    ) -> Result<Value, String> {
        let num = |k: &str| -> Result<Option<i64>, String> {
            params
                .get(k)
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| format!("{k} must be epoch seconds"))
                })
                .transpose()
        };
        let (after, before) = (num("after")?, num("before")?);
        let now = Utc::now().timestamp();
        if after.is_some_and(|a| a > now + 86_400 * 365) {
            return Err("after is in the future (milliseconds instead of seconds?)".into());
        }
        let page: usize = params
            .get("page")
            .map(|p| p.parse().map_err(|_| "page must be a number".to_string()))
            .transpose()?
            .unwrap_or(1)
            .max(1);
        let per_page: usize = params
            .get("per_page")
            .map(|p| {
                p.parse()
                    .map_err(|_| "per_page must be a number".to_string())
            })
            .transpose()?
            .unwrap_or(30)
            .clamp(1, 200);
        let mut selected: Vec<(i64, &Value)> = items
            .iter()
            .filter_map(|i| {
                i["start_date"]
                    .as_str()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| (t.timestamp(), i))
            })
            .filter(|(t, _)| after.is_none_or(|a| *t > a) && before.is_none_or(|b| *t < b))
            .collect();
        selected.sort_by_key(|(t, _)| *t);
        if !(after.is_some() && before.is_none()) {
            selected.reverse();
        }
        let out: Vec<&Value> = selected
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|(_, v)| *v)
            .collect();
        Ok(json!(out))
    }

    /// The event WEBHOOKS describes, for every subscription (Strava has one per app):
    /// activity create/update/delete with the activity id, or the athlete's
    /// `"authorized": "false"` update on a deauthorization. An update names the title
    /// as changed, the field a rename changes. Strava sends no signature.
    fn push_for(
        &self,
        change: &FixtureChange<'_>,
        subscriptions: &[FixtureSubscription],
        _secrets: &PushSecrets,
        _now: DateTime<Utc>,
    ) -> Vec<(String, OutboundPush)> {
        let int_or_text = |s: &str| s.parse::<i64>().map_or_else(|_| json!(s), |n| json!(n));
        let (object_type, object_id, aspect, updates) = match (change.kind, change.resource) {
            (FixtureChangeKind::Deauthorized, _) => (
                "athlete",
                int_or_text(change.user),
                "update",
                json!({"authorized": "false"}),
            ),
            (kind, Resource::Workouts) => {
                let Some(record) = change.record else {
                    return vec![];
                };
                let (aspect, updates) = match kind {
                    FixtureChangeKind::Created => ("create", json!({})),
                    FixtureChangeKind::Updated => (
                        "update",
                        change
                            .item
                            .and_then(|i| i.get("name"))
                            .map_or_else(|| json!({}), |n| json!({ "title": n })),
                    ),
                    _ => ("delete", json!({})),
                };
                ("activity", int_or_text(record), aspect, updates)
            }
            _ => return vec![],
        };
        subscriptions
            .iter()
            .map(|sub| {
                let body = json!({
                    "aspect_type": aspect,
                    "event_time": change.at.timestamp(),
                    "object_id": object_id,
                    "object_type": object_type,
                    "owner_id": int_or_text(change.user),
                    "subscription_id": sub.remote_id.as_deref().map(int_or_text),
                    "updates": updates,
                });
                (
                    sub.callback_url.clone(),
                    OutboundPush {
                        headers: vec![],
                        query: vec![],
                        content_type: "application/json",
                        body: body.to_string().into_bytes(),
                    },
                )
            })
            .collect()
    }

    fn handshake_query(
        &self,
        subscription: &FixtureSubscription,
        challenge: &str,
    ) -> Option<Vec<(String, String)>> {
        Some(vec![
            ("hub.mode".into(), "subscribe".into()),
            ("hub.challenge".into(), challenge.into()),
            (
                "hub.verify_token".into(),
                subscription.verify_token.clone().unwrap_or_default(),
            ),
        ])
    }

    /// The validation request passes with a 200 echoing `{"hub.challenge": …}` as JSON
    /// (NOTES §4).
    fn handshake_accepted(&self, challenge: &str, status: u16, body: &[u8]) -> bool {
        echoes(status, body, "hub.challenge", challenge)
    }

    /// `/push_subscriptions` as WEBHOOKS describes it, with the app's `client_id` and
    /// `client_secret` on every call: `POST` creates (201 `{"id"}`, once the callback
    /// passed the validation request; one per application), `GET` lists, `DELETE
    /// /push_subscriptions/{id}` removes (204).
    fn serve_subscription(
        &self,
        req: &SubscriptionRequest<'_>,
        subscriptions: &mut Vec<FixtureSubscription>,
        secrets: &PushSecrets,
    ) -> Option<SubscriptionServed> {
        let path = req.path.strip_prefix("/api/v3").unwrap_or(req.path);
        let rest = path.strip_prefix("/push_subscriptions")?;
        // The Fault shape of every Strava error (fixtures/strava/README.md "Errors").
        let fault = |status: u16, message: &str, resource: &str, field: &str, code: &str| {
            let error = json!({"resource": resource, "field": field, "code": code});
            SubscriptionServed::reply(
                status,
                json!({"message": message, "errors": [error]}).to_string(),
            )
        };
        let p = |k: &str| req.params.get(k).map(String::as_str).unwrap_or("");
        if p("client_id") != secrets.client_id || p("client_secret") != secrets.client_secret {
            return Some(fault(
                401,
                "Authorization Error",
                "Application",
                "",
                "invalid",
            ));
        }
        Some(match (req.method, rest) {
            ("POST", "") => {
                for field in ["callback_url", "verify_token"] {
                    if p(field).is_empty() {
                        return Some(fault(
                            400,
                            "Bad Request",
                            "PushSubscription",
                            field,
                            "missing",
                        ));
                    }
                }
                if !subscriptions.is_empty() {
                    return Some(fault(
                        400,
                        "Bad Request",
                        "PushSubscription",
                        "",
                        "already exists",
                    ));
                }
                SubscriptionServed {
                    status: 201,
                    body: json!({"id": 120475}).to_string(),
                    created: Some(FixtureSubscription {
                        callback_url: p("callback_url").to_string(),
                        remote_id: Some("120475".into()),
                        verify_token: Some(p("verify_token").to_string()),
                        ..FixtureSubscription::default()
                    }),
                    if_unverified: {
                        let refused = fault(
                            400,
                            "Bad Request",
                            "PushSubscription",
                            "callback url",
                            "GET to callback URL does not return 200",
                        );
                        Some((refused.status, refused.body))
                    },
                }
            }
            ("GET", "") => SubscriptionServed::reply(
                200,
                Value::Array(
                    subscriptions
                        .iter()
                        .map(|s| {
                            json!({
                                "id": s.remote_id.as_deref().and_then(|i| i.parse::<i64>().ok()),
                                "resource_state": 2,
                                "application_id": secrets.client_id.parse::<i64>().ok(),
                                "callback_url": s.callback_url,
                            })
                        })
                        .collect(),
                )
                .to_string(),
            ),
            ("DELETE", id) => {
                let id = id.trim_start_matches('/');
                let before = subscriptions.len();
                subscriptions.retain(|s| s.remote_id.as_deref() != Some(id));
                if subscriptions.len() == before {
                    fault(
                        404,
                        "Resource Not Found",
                        "PushSubscription",
                        "id",
                        "invalid",
                    )
                } else {
                    SubscriptionServed::reply(204, String::new())
                }
            }
            _ => return None,
        })
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

    /// RATE's example headers (as the docs write them, `X-Ratelimit-*`), with the read
    /// budget beside them: the read windows are reported, 15-minute then daily; an
    /// exhausted quarter hour resets at the next :15 by the reply's Date, an exhausted day
    /// at midnight UTC.
    #[test]
    fn the_read_budget_is_read_from_the_headers() {
        let ok = headers(&[
            ("date", "Tue, 10 Oct 2020 20:11:01 GMT"),
            ("x-ratelimit-limit", "600,30000"),
            ("x-ratelimit-usage", "314,27536"),
            ("x-readratelimit-limit", "100,1000"),
            ("x-readratelimit-usage", "7,540"),
        ]);
        let r = Strava.rate_report(&ok);
        assert_eq!(
            r.usage,
            vec![
                super::super::WindowUsage {
                    period_secs: Some(900),
                    used: 7,
                    limit: Some(100)
                },
                super::super::WindowUsage {
                    period_secs: Some(86_400),
                    used: 540,
                    limit: Some(1000)
                },
            ]
        );
        assert_eq!(r.reset_after, None, "nothing exhausted");
        let quarter = headers(&[
            ("date", "Tue, 10 Oct 2020 20:11:05 GMT"),
            ("x-readratelimit-limit", "100,1000"),
            ("x-readratelimit-usage", "101,540"),
        ]);
        assert_eq!(
            Strava.rate_report(&quarter).reset_after,
            Some(Duration::from_secs(3 * 60 + 55 + 1)),
            "20:11:05 to 20:15:00"
        );
        let day = headers(&[
            ("date", "Tue, 10 Oct 2020 20:11:05 GMT"),
            ("x-readratelimit-limit", "100,1000"),
            ("x-readratelimit-usage", "12,1000"),
        ]);
        assert_eq!(
            Strava.rate_report(&day).reset_after,
            Some(Duration::from_secs(3 * 3600 + 48 * 60 + 55 + 1)),
            "20:11:05 to 00:00 UTC"
        );
        let garbage = headers(&[
            ("x-readratelimit-limit", "lots"),
            ("x-readratelimit-usage", "-1,,99999999999999999999"),
        ]);
        assert_eq!(Strava.rate_report(&garbage), RateReport::default());
    }

    #[test]
    fn pages_follow_page_numbers_until_an_empty_page() {
        let p1 = Strava
            .parse_page(
                Resource::Workouts,
                include_bytes!("../../fixtures/strava/pages/workouts/page_1.json"),
                None,
            )
            .unwrap();
        assert_eq!(p1.next.as_deref(), Some("2"));
        let p2 = Strava
            .parse_page(
                Resource::Workouts,
                include_bytes!("../../fixtures/strava/pages/workouts/page_2.json"),
                Some("2"),
            )
            .unwrap();
        assert_eq!(p2.next.as_deref(), Some("3"));
        let p3 = Strava
            .parse_page(
                Resource::Workouts,
                include_bytes!("../../fixtures/strava/pages/workouts/page_3.json"),
                Some("3"),
            )
            .unwrap();
        assert_eq!((p3.records.len(), p3.next), (0, None));
    }

    fn spec() -> ResourceSpec {
        crate::providers::find("strava")
            .unwrap()
            .resource(Resource::Workouts)
            .unwrap()
            .clone()
    }

    #[test]
    fn a_single_activity_is_requested_by_id_and_read_as_a_page_of_one() {
        let req = Strava.record_request(&spec(), "19702214587").unwrap();
        assert_eq!(
            (req.method, req.path.as_str()),
            ("GET", "/activities/19702214587")
        );
        assert!(req.query.is_empty() && req.form.is_empty());
        assert_eq!(Strava.record_request(&spec(), "../athlete"), None);
        assert_eq!(Strava.record_request(&spec(), ""), None);

        let page = Strava
            .parse_record(
                Resource::Workouts,
                include_bytes!("../../fixtures/strava/records/workouts/19702214587.json"),
            )
            .unwrap();
        assert_eq!((page.records.len(), page.next.as_deref()), (1, None));
        let r = page.records[0].to_json();
        assert_eq!(r["provider_id"], "19702214587");
        assert_eq!(r["calories"], 1725.0, "DetailedActivity carries kcal");
        assert_eq!(r["time_end"], "2026-08-16T08:49:30+00:00");
        // The same activity from the list has no calories and otherwise the same fields.
        let listed = Strava
            .parse_page(
                Resource::Workouts,
                include_bytes!("../../fixtures/strava/data/workouts.json"),
                None,
            )
            .unwrap()
            .records
            .into_iter()
            .find(|r| r.provider_id == "19702214587")
            .unwrap()
            .to_json();
        assert_eq!(listed["calories"], Value::Null);
        let mut without = r.clone();
        without["calories"] = Value::Null;
        assert_eq!(without, listed);

        for bad in [&b"[]"[..], b"{\"id\": 1}", b"nope"] {
            assert!(matches!(
                Strava.parse_record(Resource::Workouts, bad),
                Err(ProviderError::Malformed { .. })
            ));
        }
        assert!(Strava.parse_record(Resource::Sleep, b"{}").is_err());
    }

    #[test]
    fn the_fixture_server_serves_one_activity_as_a_detailed_activity() {
        assert_eq!(
            StravaFixtures.record_path("/activities/19702214587"),
            Some((Resource::Workouts, "19702214587".into()))
        );
        assert_eq!(StravaFixtures.record_path("/athlete/activities"), None);
        assert_eq!(StravaFixtures.record_path("/activities/x"), None);
        let items: Vec<Value> =
            serde_json::from_str(include_str!("../../fixtures/strava/data/workouts.json")).unwrap();
        let served = StravaFixtures
            .serve_record(Resource::Workouts, "19702214587", &items)
            .unwrap();
        let recorded: Value = serde_json::from_str(include_str!(
            "../../fixtures/strava/records/workouts/19702214587.json"
        ))
        .unwrap();
        assert_eq!(served, recorded);
        assert_eq!(served["resource_state"], 3);
        assert!(StravaFixtures
            .serve_record(Resource::Workouts, "1", &items)
            .is_none());
    }

    #[test]
    fn out_of_range_durations_and_offsets_are_errors_naming_the_field() {
        // `Duration::seconds(1e300 as i64)` used to panic.
        for (body, field) in [
            (
                r#"[{"id": 1, "start_date": "2026-01-01T00:00:00Z", "elapsed_time": 1e300}]"#,
                "[0].elapsed_time",
            ),
            (
                r#"[{"id": 1, "start_date": "2026-01-01T00:00:00Z", "elapsed_time": 9223372036854775807}]"#,
                "[0].elapsed_time",
            ),
            (
                r#"[{"id": 1, "start_date": "9999-12-31T23:00:00Z", "elapsed_time": 7200}]"#,
                "[0].elapsed_time",
            ),
            (
                r#"[{"id": 1, "start_date": "2026-01-01T00:00:00Z", "utc_offset": -1e300}]"#,
                "[0].utc_offset",
            ),
            (
                r#"[{"id": 1, "start_date": "2026-01-01T00:00:00Z", "utc_offset": 86400}]"#,
                "[0].utc_offset",
            ),
            (
                r#"[{"id": 1, "start_date": "2026-01-01T00:00:00Z", "start_date_local": "9999-12-31T23:59:59-12:00"}]"#,
                "[0].start_date_local",
            ),
        ] {
            match Strava.parse_page(Resource::Workouts, body.as_bytes(), None) {
                Err(ProviderError::Malformed { field: f, .. }) => assert_eq!(f, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        let last = Strava
            .parse_page(
                Resource::Workouts,
                include_bytes!("../../fixtures/strava/pages/workouts/page_1.json"),
                Some(&u32::MAX.to_string()),
            )
            .unwrap();
        assert_eq!(last.next, None, "no page after u32::MAX");
    }

    #[test]
    fn grant_refusals_and_missing_scopes_are_told_apart() {
        assert!(matches!(
            Strava.token_reply(
                400,
                include_bytes!("../../fixtures/strava/oauth/invalid_grant.json")
            ),
            Err(ProviderError::Refused(_))
        ));
        assert!(Strava
            .token_reply(
                200,
                include_bytes!("../../fixtures/strava/oauth/token.json")
            )
            .is_ok());
        let scope = br#"{"message":"Authorization Error","errors":[{"resource":"AccessToken","field":"activity:read_permission","code":"missing"}]}"#;
        assert!(matches!(
            Strava.classify_error(401, None, scope),
            ProviderError::ScopeNotGranted(_)
        ));
        assert!(matches!(
            Strava.classify_error(
                401,
                None,
                include_bytes!("../../fixtures/strava/errors/401.json")
            ),
            ProviderError::Unauthorized(_)
        ));
        match Strava.classify_error(
            429,
            None,
            include_bytes!("../../fixtures/strava/errors/429.json"),
        ) {
            ProviderError::RateLimited {
                retry_after: Some(d),
            } => assert!(d <= Duration::from_secs(901)),
            other => panic!("{other:?}"),
        }
        let token: Value =
            serde_json::from_str(include_str!("../../fixtures/strava/oauth/token.json")).unwrap();
        assert!(Strava.external_user_id(&token).is_some());
        let refresh: Value =
            serde_json::from_str(include_str!("../../fixtures/strava/oauth/refresh.json")).unwrap();
        assert!(Strava.external_user_id(&refresh).is_none());
    }

    mod push {
        use super::super::*;
        use crate::providers::push::testing::{at, Owned};
        use std::collections::BTreeMap;

        fn secrets() -> PushSecrets {
            PushSecrets {
                client_id: "73391".into(),
                client_secret: "9c1f0a4e7d2b".into(),
                verify_token: "a-token-we-chose".into(),
                subscription_ids: vec!["120475".into()],
                ..PushSecrets::default()
            }
        }

        fn post(body: &[u8]) -> Owned {
            Owned::new(
                &[("content-type", "application/json")],
                &[],
                body,
                at("2026-12-01T12:00:00Z"),
            )
        }

        fn notices(body: &[u8]) -> Vec<Notice> {
            let r = post(body);
            Strava.verify_push(&r.req(), &secrets()).unwrap();
            Strava.parse_push(&r.req()).unwrap()
        }

        #[test]
        fn the_validation_request_echoes_the_challenge_only_for_our_token() {
            let now = at("2026-12-01T12:00:00Z");
            let q = |token: &str, mode: &str| {
                Owned::new(
                    &[],
                    &[
                        ("hub.mode", mode),
                        ("hub.challenge", "15f7d1a91c1f40"),
                        ("hub.verify_token", token),
                    ],
                    b"",
                    now,
                )
            };
            let ok = Strava
                .push_handshake(&q("a-token-we-chose", "subscribe").req(), &secrets())
                .unwrap()
                .unwrap();
            assert_eq!(ok.status, 200);
            assert_eq!(ok.content_type, "application/json");
            let v: Value = serde_json::from_slice(&ok.body).unwrap();
            assert_eq!(v, json!({"hub.challenge": "15f7d1a91c1f40"}));
            for (token, mode) in [
                ("another-token", "subscribe"),
                ("", "subscribe"),
                ("a-token-we-chose", "unsubscribe"),
            ] {
                assert!(
                    matches!(
                        Strava.push_handshake(&q(token, mode).req(), &secrets()),
                        Some(Err(PushError::Unverified(_)))
                    ),
                    "{token} {mode}"
                );
            }
            // With no verify token configured nothing validates, not even an empty one.
            let none = PushSecrets::default();
            assert!(matches!(
                Strava.push_handshake(&q("", "subscribe").req(), &none),
                Some(Err(_))
            ));
            // A notification is no handshake.
            let event = post(include_bytes!(
                "../../fixtures/strava/push/activity_create.json"
            ));
            assert!(Strava.push_handshake(&event.req(), &secrets()).is_none());
        }

        #[test]
        fn events_are_ours_only_with_our_subscription_id_and_an_athlete() {
            let body = include_str!("../../fixtures/strava/push/activity_create.json");
            assert!(Strava
                .verify_push(&post(body.as_bytes()).req(), &secrets())
                .is_ok());
            let other = body.replace("120475", "999");
            assert!(matches!(
                Strava.verify_push(&post(other.as_bytes()).req(), &secrets()),
                Err(PushError::Unverified(_))
            ));
            let no_owner = body.replace("\"owner_id\": 48213377", "\"owner_id\": 0");
            assert!(matches!(
                Strava.verify_push(&post(no_owner.as_bytes()).req(), &secrets()),
                Err(PushError::Unverified(_))
            ));
            assert!(matches!(
                Strava.verify_push(&post(body.as_bytes()).req(), &PushSecrets::default()),
                Err(PushError::Unverified(_))
            ));
            assert!(matches!(
                Strava.verify_push(&post(b"not json").req(), &secrets()),
                Err(PushError::Malformed(_))
            ));
        }

        #[test]
        fn each_documented_event_becomes_its_notice() {
            let create = notices(include_bytes!(
                "../../fixtures/strava/push/activity_create.json"
            ));
            assert_eq!(create.len(), 1);
            assert_eq!(
                create[0].user, "48213377",
                "the athlete id, as external_user_id gives it"
            );
            assert_eq!(create[0].at, Some(at("2026-12-15T05:21:05Z")));
            assert_eq!(
                create[0].action,
                NoticeAction::Changed {
                    resource: Resource::Workouts,
                    record: Some("19934010267".into()),
                    window: None
                }
            );
            let update = notices(include_bytes!(
                "../../fixtures/strava/push/activity_update.json"
            ));
            assert!(matches!(
                &update[0].action,
                NoticeAction::Changed { record: Some(r), .. } if r == "19934010267"
            ));
            assert_ne!(update[0].key, create[0].key);
            let delete = notices(include_bytes!(
                "../../fixtures/strava/push/activity_delete.json"
            ));
            assert_eq!(
                delete[0].action,
                NoticeAction::Deleted {
                    resource: Resource::Workouts,
                    record: "19934010267".into()
                }
            );
            let deauth = notices(include_bytes!(
                "../../fixtures/strava/push/athlete_deauthorize.json"
            ));
            assert_eq!(deauth[0].action, NoticeAction::Deauthorized);
            assert_eq!(deauth[0].user, "48213377");
            // An athlete update that is not a revocation is nothing we ingest.
            let renamed = include_str!("../../fixtures/strava/push/athlete_deauthorize.json")
                .replace(r#""authorized": "false""#, r#""authorized": "true""#);
            assert!(matches!(
                notices(renamed.as_bytes())[0].action,
                NoticeAction::Ignored(_)
            ));
            // The same event twice (Strava retries up to three times) has the same key.
            assert_eq!(
                create[0].key,
                notices(include_bytes!(
                    "../../fixtures/strava/push/activity_create.json"
                ))[0]
                    .key
            );
        }

        #[test]
        fn unreadable_events_are_malformed() {
            for body in [
                &b"[]"[..],
                br#"{"object_type": "activity", "aspect_type": "create", "owner_id": 1, "event_time": 1}"#,
                br#"{"object_type": "activity", "aspect_type": "create", "object_id": "x", "owner_id": 1, "event_time": 1}"#,
                br#"{"object_type": "activity", "aspect_type": "create", "object_id": 1, "owner_id": 1}"#,
                b"{",
            ] {
                assert!(
                    matches!(Strava.parse_push(&post(body).req()), Err(PushError::Malformed(_))),
                    "{}",
                    String::from_utf8_lossy(body)
                );
            }
        }

        #[test]
        fn subscribing_is_one_form_post_answered_with_the_subscription_id() {
            let calls = Strava.subscribe_calls(
                "https://gw.example/v1/providers/strava/notifications",
                &secrets(),
            );
            assert_eq!(calls.len(), 1);
            let c = &calls[0];
            assert_eq!((c.method, c.url.as_str()), ("POST", "/push_subscriptions"));
            assert_eq!(
                c.form,
                vec![
                    ("client_id".to_string(), "73391".to_string()),
                    ("client_secret".into(), "9c1f0a4e7d2b".into()),
                    (
                        "callback_url".into(),
                        "https://gw.example/v1/providers/strava/notifications".into()
                    ),
                    ("verify_token".into(), "a-token-we-chose".into()),
                ]
            );
            assert!(c.json.is_none() && !c.basic_auth && !c.user_token);
            assert_eq!(
                Strava.renew_call("120475", &secrets()),
                None,
                "subscriptions do not expire"
            );
            let sub = Strava
                .subscription_reply(
                    201,
                    include_bytes!("../../fixtures/strava/push/subscription_created.json"),
                )
                .unwrap();
            assert_eq!(sub.remote_id.as_deref(), Some("120475"));
            assert_eq!(sub.expires_at, None);
            assert!(Strava.subscription_reply(201, b"{}").is_err());
            assert!(Strava
                .subscription_reply(400, include_bytes!("../../fixtures/strava/errors/400.json"))
                .is_err());
        }

        #[test]
        fn the_fixture_server_subscribes_validates_and_pushes_like_strava() {
            let now = at("2026-12-01T12:00:00Z");
            let secrets = secrets();
            let mut subs = vec![];
            let call = &Strava.subscribe_calls("https://gw.example/cb", &secrets)[0];
            let params: BTreeMap<String, String> = call.form.iter().cloned().collect();
            let headers = reqwest::header::HeaderMap::new();
            let req = SubscriptionRequest {
                method: "POST",
                path: "/push_subscriptions",
                headers: &headers,
                params: &params,
                body: b"",
                now,
            };
            let served = StravaFixtures
                .serve_subscription(&req, &mut subs, &secrets)
                .unwrap();
            assert_eq!(served.status, 201);
            let created = served.created.clone().unwrap();
            assert_eq!(created.callback_url, "https://gw.example/cb");
            assert_eq!(
                Strava
                    .subscription_reply(served.status, served.body.as_bytes())
                    .unwrap()
                    .remote_id,
                created.remote_id
            );
            // The validation request, answered by the adapter, passes.
            let q = StravaFixtures
                .handshake_query(&created, "c4a11e7e")
                .unwrap();
            let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let reply = Strava
                .push_handshake(&Owned::new(&[], &q, b"", now).req(), &secrets)
                .unwrap()
                .unwrap();
            assert!(StravaFixtures.handshake_accepted("c4a11e7e", reply.status, &reply.body));
            assert!(!StravaFixtures.handshake_accepted("other", reply.status, &reply.body));
            assert!(!StravaFixtures.handshake_accepted("c4a11e7e", 403, &reply.body));
            subs.push(created);
            // A second subscription is refused; bad credentials are refused.
            assert_eq!(
                StravaFixtures
                    .serve_subscription(&req, &mut subs, &secrets)
                    .unwrap()
                    .status,
                400
            );
            let mut wrong = secrets.clone();
            wrong.client_secret = "other".into();
            assert_eq!(
                StravaFixtures
                    .serve_subscription(&req, &mut subs, &wrong)
                    .unwrap()
                    .status,
                401
            );

            // Every change kind arrives verified and reads back as itself.
            let item = json!({"id": 19934010267_i64, "name": "Messy"});
            for (kind, want) in [
                (FixtureChangeKind::Created, "changed"),
                (FixtureChangeKind::Updated, "changed"),
                (FixtureChangeKind::Deleted, "deleted"),
                (FixtureChangeKind::Deauthorized, "deauthorized"),
            ] {
                let change = FixtureChange {
                    user: "48213377",
                    resource: Resource::Workouts,
                    kind,
                    item: Some(&item),
                    record: Some("19934010267"),
                    at: at("2026-11-30T18:00:00Z"),
                };
                let pushes = StravaFixtures.push_for(&change, &subs, &secrets, now);
                assert_eq!(pushes.len(), 1);
                assert_eq!(pushes[0].0, "https://gw.example/cb");
                let r = Owned::of(&pushes[0].1, now);
                assert!(Strava.push_handshake(&r.req(), &secrets).is_none());
                Strava.verify_push(&r.req(), &secrets).unwrap();
                let n = Strava.parse_push(&r.req()).unwrap();
                assert_eq!(n.len(), 1);
                assert_eq!(n[0].user, "48213377");
                assert_eq!(n[0].at, Some(change.at));
                match (&n[0].action, want) {
                    (
                        NoticeAction::Changed {
                            record: Some(r), ..
                        },
                        "changed",
                    ) => assert_eq!(r, "19934010267"),
                    (NoticeAction::Deleted { record, .. }, "deleted") => {
                        assert_eq!(record, "19934010267")
                    }
                    (NoticeAction::Deauthorized, "deauthorized") => {}
                    (other, _) => panic!("{kind:?}: {other:?}"),
                }
            }

            // Listing and deleting.
            let get = SubscriptionRequest {
                method: "GET",
                ..req
            };
            let listed: Value = serde_json::from_str(
                &StravaFixtures
                    .serve_subscription(&get, &mut subs, &secrets)
                    .unwrap()
                    .body,
            )
            .unwrap();
            assert_eq!(listed[0]["id"], 120475);
            assert_eq!(listed[0]["callback_url"], "https://gw.example/cb");
            let del = SubscriptionRequest {
                method: "DELETE",
                path: "/push_subscriptions/120475",
                ..req
            };
            assert_eq!(
                StravaFixtures
                    .serve_subscription(&del, &mut subs, &secrets)
                    .unwrap()
                    .status,
                204
            );
            assert!(subs.is_empty());
            assert_eq!(
                StravaFixtures
                    .serve_subscription(&del, &mut subs, &secrets)
                    .unwrap()
                    .status,
                404
            );
            let other = SubscriptionRequest {
                path: "/athlete/activities",
                ..get
            };
            assert!(StravaFixtures
                .serve_subscription(&other, &mut subs, &secrets)
                .is_none());
        }
    }
}
