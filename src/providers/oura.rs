//! Oura API v2 (<https://cloud.ouraring.com/v2/docs>). Every list route answers
//! `{"data": [...], "next_token": string|null}`; the next page is asked for with
//! `next_token`. Summaries take `start_date`/`end_date` (dates, interpreted in the
//! user's time zone, boundaries observed to be unreliable: we pad the start by a day and
//! rely on stable ids to drop the overlap); heart rate takes `start_datetime`/
//! `end_datetime`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::normalize::*;
use super::push::*;
use super::{
    Adapter, Impersonation, Page, PageRequest, ProviderError, RateReport, RateScope, Record,
    Removal, ResourceSpec, Window, WindowCount, WindowUsage,
};
use crate::events::Resource;

pub struct Oura;

const ID: &str = "oura";

impl Adapter for Oura {
    /// OAS "Rate Limit Response Headers": only a 429 carries them, so the window they name
    /// (`X-RateLimit-Limit` requests per `X-RateLimit-Window` seconds) is full, and it
    /// resets at `X-RateLimit-Reset`, Unix seconds, counted from the reply's `Date`. The
    /// 429's `Retry-After` reaches the runtime on its own.
    fn rate_report(&self, headers: &reqwest::header::HeaderMap) -> RateReport {
        let Some(limit) = crate::http::count(headers, "x-ratelimit-limit") else {
            return RateReport::default();
        };
        let reset_after = crate::http::count(headers, "x-ratelimit-reset")
            .and_then(|at| i64::try_from(at).ok())
            .and_then(|at| {
                let now = crate::http::reply_time(headers).timestamp();
                u64::try_from(at.checked_sub(now)?).ok()
            })
            .filter(|secs| *secs > 0)
            .map(Duration::from_secs);
        RateReport {
            usage: vec![WindowUsage {
                period_secs: crate::http::count(headers, "x-ratelimit-window"),
                used: limit,
                limit: Some(limit),
            }],
            reset_after,
        }
    }

    fn page_request(
        &self,
        resource: &ResourceSpec,
        window: &Window,
        cursor: Option<&str>,
    ) -> PageRequest {
        // A follow-up page is asked for with `next_token` alone: the token carries the
        // query, and dates beside it are refused (see fixtures/oura/README.md).
        if let Some(c) = cursor {
            return PageRequest::get(
                resource.path.clone(),
                vec![("next_token".to_string(), c.to_string())],
            );
        }
        let q = if resource.name == Resource::Heartrate {
            vec![
                (
                    "start_datetime".to_string(),
                    format_utc(window.start).replace("+00:00", "Z"),
                ),
                (
                    "end_datetime".to_string(),
                    format_utc(window.end).replace("+00:00", "Z"),
                ),
            ]
        } else {
            // Oura's date bounds are undocumented and observed to drop boundary days
            // (end_date exclusive for activity and workouts, start exclusive for sleep):
            // pad a day each side; stable ids absorb the overlap with the next window.
            vec![
                (
                    "start_date".to_string(),
                    pad_day(window.start, false).format("%Y-%m-%d").to_string(),
                ),
                (
                    "end_date".to_string(),
                    pad_day(window.end, true).format("%Y-%m-%d").to_string(),
                ),
            ]
        };
        PageRequest::get(resource.path.clone(), q)
    }

    fn parse_page(
        &self,
        resource: Resource,
        body: &[u8],
        _cursor: Option<&str>,
    ) -> Result<Page, ProviderError> {
        let v = parse_json(body)?;
        let items = req_array(&v, "data")?;
        let mut page = Page {
            records: Vec::with_capacity(items.len()),
            ..Page::default()
        };
        for (i, item) in items.iter().enumerate() {
            let read = read_item(resource, item).map_err(|e| match e {
                ProviderError::Malformed { field, message } => {
                    ProviderError::malformed(format!("data[{i}].{field}"), message)
                }
                e => e,
            })?;
            add(&mut page, read);
        }
        page.next = opt_str(&v, "next_token")?.map(str::to_string);
        Ok(page)
    }

    /// OAS "Personal Info Routes": `GET /v2/usercollection/personal_info` answers the
    /// user's `id` "with any access token (no scopes are required)"; the token reply
    /// names no user, and webhooks name users by `user_id`.
    fn identity_request(&self) -> Option<PageRequest> {
        Some(PageRequest::get("/v2/usercollection/personal_info", vec![]))
    }

    fn identity_user_id(&self, body: &[u8]) -> Result<String, ProviderError> {
        let v = parse_json(body)?;
        match v.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            _ => Err(ProviderError::malformed("id", "expected the user's id")),
        }
    }

    /// OAS single-document routes, `GET /v2/usercollection/<name>/{document_id}`, for
    /// sleep periods, daily activity and workouts: what a webhook's `object_id` names.
    /// Heart rate samples have no document id.
    fn record_request(
        &self,
        resource: &ResourceSpec,
        provider_record_id: &str,
    ) -> Option<PageRequest> {
        if !WEBHOOK_DATA_TYPES.iter().any(|(_, r)| *r == resource.name)
            || !path_safe(provider_record_id)
        {
            return None;
        }
        Some(PageRequest::get(
            format!("{}/{provider_record_id}", resource.path),
            vec![],
        ))
    }

    /// One document, read as a list item: a sleep period Oura marks as not sleep is a
    /// removal.
    /// `body_temperature_delta` comes from the sleep route's periods: read with `sleep`.
    fn read_with(&self, resource: Resource) -> Option<Resource> {
        (resource == Resource::BodyTemperatureDelta).then_some(Resource::Sleep)
    }

    fn parse_record(&self, resource: Resource, body: &[u8]) -> Result<Page, ProviderError> {
        let v = parse_json(body)?;
        if !v.is_object() {
            return Err(ProviderError::malformed("$", "expected one document"));
        }
        if !matches!(
            resource,
            Resource::Sleep | Resource::Activity | Resource::Workouts
        ) {
            return Err(ProviderError::malformed(
                "resource",
                format!("no single-document read for Oura {resource}"),
            ));
        }
        let mut page = Page::default();
        add(&mut page, read_item(resource, &v)?);
        Ok(page)
    }

    /// WEBHOOKS "Verification Process": `GET <callback>?verification_token=…&challenge=…`;
    /// the token must be ours and the reply `{"challenge": "<challenge>"}` (the OAS example
    /// answers a wrong token with 401).
    fn push_handshake(
        &self,
        req: &PushRequest<'_>,
        secrets: &PushSecrets,
    ) -> Option<Result<PushReply, PushError>> {
        let challenge = req.query.get("challenge")?;
        let token = req
            .query
            .get("verification_token")
            .map_or("", String::as_str);
        Some(
            if secrets.verify_token.is_empty()
                || !same_secret(token.as_bytes(), secrets.verify_token.as_bytes())
            {
                Err(PushError::Unverified(
                    "verification_token is not ours".into(),
                ))
            } else if challenge.is_empty() {
                Err(PushError::Unverified("no challenge to echo".into()))
            } else {
                Ok(PushReply::json(&json!({ "challenge": challenge })))
            },
        )
    }

    /// WEBHOOKS "Verify Webhook Signatures": `x-oura-signature` is the upper-case hex
    /// HMAC-SHA256, keyed by the client secret, of `x-oura-timestamp` followed by the JSON
    /// body. The timestamp is epoch seconds (the OAS example `1234567890`); milliseconds
    /// are read too. Refused beyond [`TIMESTAMP_TOLERANCE_SECS`] either way.
    fn verify_push(&self, req: &PushRequest<'_>, secrets: &PushSecrets) -> Result<(), PushError> {
        // Hex of either case is accepted.
        verify_timestamped_hmac(
            req,
            &secrets.client_secret,
            "x-oura-timestamp",
            "x-oura-signature",
            unhex,
        )
    }

    /// WEBHOOKS "Receiving and Processing Events": `{event_type, data_type, object_id,
    /// event_time, user_id}`. `object_id` is the document id, our `provider_id`, read back
    /// by its single-document route; a delete removes it. Data types we do not store are
    /// ignored. No id of its own: the key digests all five fields.
    fn parse_push(&self, req: &PushRequest<'_>) -> Result<Vec<Notice>, PushError> {
        let v = json_body(req)?;
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| PushError::Malformed(format!("no {k}")))
        };
        let (event, data_type, object_id, event_time, user) = (
            field("event_type")?,
            field("data_type")?,
            field("object_id")?,
            field("event_time")?,
            field("user_id")?,
        );
        let at = DateTime::parse_from_rfc3339(event_time)
            .map_err(|e| PushError::Malformed(format!("event_time: {e}")))?
            .with_timezone(&Utc);
        let resource = WEBHOOK_DATA_TYPES
            .iter()
            .find(|(t, _)| *t == data_type)
            .map(|(_, r)| *r);
        let action = match (resource, event) {
            (Some(r), "create" | "update") => NoticeAction::Changed {
                resource: r,
                record: Some(object_id.to_string()),
                window: None,
            },
            (Some(r), "delete") => NoticeAction::Deleted {
                resource: r,
                record: object_id.to_string(),
            },
            _ => NoticeAction::Ignored(format!("{event} {data_type}")),
        };
        Ok(vec![Notice {
            user: user.to_string(),
            key: digest_key(&[ID, event, data_type, object_id, event_time, user]),
            action,
            at: Some(at),
        }])
    }

    /// WEBHOOKS "Create a Webhook Subscription": `POST /v2/webhook/subscription` with the
    /// app's `x-client-id`/`x-client-secret` headers, one subscription "for each
    /// combination" of `event_type` and `data_type`: create, update and delete of every
    /// data type we store.
    fn subscribe_calls(&self, callback_url: &str, secrets: &PushSecrets) -> Vec<SubscriptionCall> {
        let mut calls = vec![];
        for (data_type, _) in WEBHOOK_DATA_TYPES {
            for event in ["create", "update", "delete"] {
                calls.push(SubscriptionCall {
                    method: "POST",
                    url: "/v2/webhook/subscription".into(),
                    query: vec![],
                    form: vec![],
                    json: Some(json!({
                        "callback_url": callback_url,
                        "verification_token": secrets.verify_token,
                        "event_type": event,
                        "data_type": data_type,
                    })),
                    headers: client_headers(secrets),
                    basic_auth: false,
                    user_token: false,
                });
            }
        }
        calls
    }

    /// OAS `PUT /v2/webhook/subscription/renew/{id}`, same headers, no body.
    fn renew_call(&self, remote_id: &str, secrets: &PushSecrets) -> Option<SubscriptionCall> {
        path_safe(remote_id).then(|| SubscriptionCall {
            method: "PUT",
            url: format!("/v2/webhook/subscription/renew/{remote_id}"),
            query: vec![],
            form: vec![],
            json: None,
            headers: client_headers(secrets),
            basic_auth: false,
            user_token: false,
        })
    }

    /// OAS `WebhookSubscriptionModel` (create: 201, renew: 200): `id` and the required
    /// `expiration_time`.
    fn subscription_reply(&self, status: u16, body: &[u8]) -> Result<Subscribed, ProviderError> {
        if !(200..300).contains(&status) {
            return Err(self.classify_error(status, None, body));
        }
        let v = parse_json(body)?;
        let id = req_str(&v, "id")?.to_string();
        let (expires, _) = utc_instant(req_str(&v, "expiration_time")?, "expiration_time")?;
        Ok(Subscribed {
            remote_id: Some(id),
            expires_at: Some(expires),
            signing_secret: None,
        })
    }
}

/// The webhook `data_type`s (OAS `ExtApiV2DataType`) of the resources we store. Heart
/// rate has none: it is polled only.
const WEBHOOK_DATA_TYPES: [(&str, Resource); 3] = [
    ("sleep", Resource::Sleep),
    ("daily_activity", Resource::Activity),
    ("workout", Resource::Workouts),
];

/// OAS `ClientIdAuth`/`ClientSecretAuth`: the subscription routes' credentials.
fn client_headers(secrets: &PushSecrets) -> Vec<(String, String)> {
    vec![
        ("x-client-id".into(), secrets.client_id.clone()),
        ("x-client-secret".into(), secrets.client_secret.clone()),
    ]
}

/// What one list item is: a record, a period Oura says is not sleep, or a document
/// that holds no reading.
enum Item {
    Record(Record),
    Removed(Removal),
    Skipped,
}

/// What one item of `resource`'s route holds. A sleep period is also the night's body
/// temperature delta (`body_temperature_delta` is read with `sleep`, from the same
/// reply: one request serves both, and a sleep notification's pull brings both).
fn read_item(resource: Resource, item: &Value) -> Result<Vec<Item>, ProviderError> {
    Ok(match resource {
        Resource::Sleep => vec![sleep(item)?, temperature_delta(item)?],
        Resource::Activity => vec![Item::Record(activity(item)?)],
        Resource::Workouts => vec![Item::Record(workout(item)?)],
        Resource::Heartrate => vec![Item::Record(heartrate(item)?)],
        Resource::BloodOxygen => vec![spo2(item)?.map_or(Item::Skipped, Item::Record)],
        Resource::BodyTemperatureDelta => vec![temperature_delta(item)?],
        other => {
            return Err(ProviderError::malformed(
                "resource",
                format!("Oura has no {other}"),
            ))
        }
    })
}

/// Adds what items hold to `page`.
fn add(page: &mut Page, items: Vec<Item>) {
    for item in items {
        match item {
            Item::Record(r) => page.records.push(r),
            Item::Removed(r) => page.removals.push(r),
            Item::Skipped => {}
        }
    }
}

/// Every sleep period is a record, main sleep or nap, with Vital's `type`, except the
/// two kinds Oura marks as not sleep. The OAS `SleepType` description
/// (<https://cloud.ouraring.com/v2/docs>, schema `SleepType`): `deleted` "deleted sleep
/// by user"; `sleep` "user confirmed sleep / nap, min 15 minutes, max 3 hours";
/// `late_nap` "user confirmed sleep / nap, min 15 minutes, ended after sleep day change
/// (6 pm)"; `long_sleep` "sleep that is long enough (>3h)"; `rest` "falsely detected
/// sleep / nap, rejected in confirm prompt by user". `deleted` and `rest` are removals.
fn sleep(v: &Value) -> Result<Item, ProviderError> {
    let kind = match opt_str(v, "type")? {
        Some("deleted") | Some("rest") => {
            return Ok(Item::Removed(Removal {
                resource: Resource::Sleep,
                provider_id: req_id(v, "id")?,
            }))
        }
        Some("long_sleep") => sleep_type::LONG_SLEEP,
        // Both are naps the user confirmed: Vital's "user-acknowledged naps".
        Some("sleep") | Some("late_nap") => sleep_type::ACKNOWLEDGED_NAP,
        // Absent or a value the OAS does not list: a period, but of no known kind.
        _ => sleep_type::UNKNOWN,
    };
    let (start, offset) = instant(req_str(v, "bedtime_start")?, "bedtime_start")?;
    let (end, _) = instant(req_str(v, "bedtime_end")?, "bedtime_end")?;
    Ok(Item::Record(Record {
        resource: Resource::Sleep,
        provider_id: req_id(v, "id")?,
        fields: fields(vec![
            ("source", source(ID, "ring")),
            ("calendar_date", text(Some(req_str(v, "day")?))),
            ("type", json!(kind)),
            ("bedtime_start", json!(start)),
            ("bedtime_stop", json!(end)),
            ("timezone_offset", json!(offset)),
            ("duration", number(v, "time_in_bed")?),
            ("total", number(v, "total_sleep_duration")?),
            ("awake", number(v, "awake_time")?),
            ("light", number(v, "light_sleep_duration")?),
            ("rem", number(v, "rem_sleep_duration")?),
            ("deep", number(v, "deep_sleep_duration")?),
            ("efficiency", number(v, "efficiency")?),
            ("hr_average", number(v, "average_heart_rate")?),
            ("hr_lowest", number(v, "lowest_heart_rate")?),
            ("average_hrv", number(v, "average_hrv")?),
            ("respiratory_rate", number(v, "average_breath")?),
            // A night analysed in the background (before the app was opened) may still
            // change; Oura re-analyses it in the foreground.
            (
                "state",
                json!(
                    if opt_str(v, "sleep_analysis_reason")? == Some("background_sleep_analysis") {
                        "tentative"
                    } else {
                        "confirmed"
                    }
                ),
            ),
        ]),
    }))
}

/// A sleep period's skin temperature deviation as one body temperature delta sample
/// covering the period. The OAS `ReadinessSummary` a period carries as `readiness`
/// (nullable: naps have none) has `temperature_deviation`, "Temperature deviation in
/// degrees Celsius" (nullable): the night's deviation from the user's baseline, the value
/// the day's readiness (`PublicDailyReadiness.temperature_deviation`) repeats without the
/// night's times. Keyed by the period's id; `start`/`end` = `bedtime_start`/`bedtime_end`
/// in UTC, `timezone_offset` the start's. No readiness or no deviation is no sample; a
/// period Oura marks as not sleep (`deleted`, `rest`) removes any sample stored for it.
/// `temperature_trend_deviation` (a trend over several nights, not this night's delta)
/// is kept beside the value as `trend_deviation`.
fn temperature_delta(v: &Value) -> Result<Item, ProviderError> {
    if matches!(opt_str(v, "type")?, Some("deleted") | Some("rest")) {
        return Ok(Item::Removed(Removal {
            resource: Resource::BodyTemperatureDelta,
            provider_id: req_id(v, "id")?,
        }));
    }
    let Some(delta) = opt_f64(v, "readiness.temperature_deviation")? else {
        return Ok(Item::Skipped);
    };
    let (start, offset) = instant(req_str(v, "bedtime_start")?, "bedtime_start")?;
    let (end, _) = instant(req_str(v, "bedtime_end")?, "bedtime_end")?;
    Ok(Item::Record(Record {
        resource: Resource::BodyTemperatureDelta,
        provider_id: req_id(v, "id")?,
        fields: fields(vec![
            ("source", source(ID, "ring")),
            ("timestamp", json!(start)),
            ("start", json!(start)),
            ("end", json!(end)),
            ("timezone_offset", json!(offset)),
            ("type", json!("body_temperature_delta")),
            ("unit", json!("°C")),
            ("value", num(Some(delta))),
            (
                "trend_deviation",
                number(v, "readiness.temperature_trend_deviation")?,
            ),
        ]),
    }))
}

/// A day runs from 04:00 local; `timestamp` is that local 04:00 with its offset.
fn activity(v: &Value) -> Result<Record, ProviderError> {
    let offset = match opt_str(v, "timestamp")? {
        Some(t) => Some(instant(t, "timestamp")?.1),
        None => None,
    };
    Ok(Record {
        resource: Resource::Activity,
        provider_id: req_id(v, "id")?,
        fields: fields(vec![
            ("source", source(ID, "ring")),
            ("calendar_date", text(Some(req_str(v, "day")?))),
            ("timezone_offset", int(offset.map(i64::from))),
            ("steps", number(v, "steps")?),
            ("calories_total", number(v, "total_calories")?),
            ("calories_active", number(v, "active_calories")?),
            // Oura's walking-equivalent distance, in metres.
            ("daily_movement", number(v, "equivalent_walking_distance")?),
        ]),
    })
}

fn workout(v: &Value) -> Result<Record, ProviderError> {
    let (start_t, offset) = utc_instant(req_str(v, "start_datetime")?, "start_datetime")?;
    let (end_t, _) = utc_instant(req_str(v, "end_datetime")?, "end_datetime")?;
    let (start, end) = (format_utc(start_t), format_utc(end_t));
    // Both instants lie in years 0000–9999, so their difference cannot overflow.
    let secs = (end_t - start_t).num_seconds();
    // `activity` is a free string; unknown values pass through as slugs.
    let activity = opt_str(v, "activity")?.unwrap_or("unknown");
    let slug = slug(activity);
    let distance = opt_f64(v, "distance")?;
    let title = opt_str(v, "label")?
        .map(str::to_string)
        .unwrap_or_else(|| display_name(&slug));
    Ok(Record {
        resource: Resource::Workouts,
        provider_id: req_id(v, "id")?,
        fields: fields(vec![
            ("source", source(ID, "ring")),
            ("title", json!(title)),
            ("sport", json!({"name": display_name(&slug), "slug": slug})),
            ("time_start", json!(start)),
            ("time_end", json!(end)),
            ("timezone_offset", json!(offset)),
            ("moving_time", json!(secs)),
            ("distance", num(distance)),
            ("calories", number(v, "calories")?),
            ("average_hr", Value::Null),
            ("max_hr", Value::Null),
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

/// Samples carry a UTC `timestamp` only: no local offset.
fn heartrate(v: &Value) -> Result<Record, ProviderError> {
    let (ts, _) = instant(req_str(v, "timestamp")?, "timestamp")?;
    Ok(Record {
        resource: Resource::Heartrate,
        provider_id: ts.clone(),
        fields: fields(vec![
            ("source", source(ID, "ring")),
            ("timestamp", json!(ts)),
            ("timezone_offset", Value::Null),
            ("type", json!("heartrate")),
            ("unit", json!("bpm")),
            ("value", req_number(v, "bpm")?),
        ]),
    })
}

/// One `DailySpO2Model` (OAS: `id`, `day`, `spo2_percentage` a
/// `DailySpO2AggregatedValuesModel` or null, `breathing_disturbance_index`): the night's
/// "Average oxygen saturation (SpO2) throughout the night" as one blood oxygen sample in
/// `%`, keyed by the document's id. The document names a day, not a time: the sample's
/// `timestamp` is that day's start in UTC and its offset unknown (null). A day without
/// an average (`spo2_percentage` null: no Gen 3 ring, or no reading that night) is no
/// sample, not a zero.
fn spo2(v: &Value) -> Result<Option<Record>, ProviderError> {
    let day = req_str(v, "day")?;
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|_| ProviderError::malformed("day", format!("`{day}` is not a date")))?;
    let Some(avg) = opt_percentage(v, "spo2_percentage.average")? else {
        return Ok(None);
    };
    let at = format_utc(date.and_time(chrono::NaiveTime::MIN).and_utc());
    Ok(Some(Record {
        resource: Resource::BloodOxygen,
        provider_id: req_id(v, "id")?,
        fields: fields(vec![
            ("source", source(ID, "ring")),
            ("timestamp", json!(at)),
            ("timezone_offset", Value::Null),
            ("type", json!("blood_oxygen")),
            ("unit", json!("%")),
            ("value", num(Some(avg))),
            // Oura's Breathing Disturbance Index (0–100), kept beside the reading.
            (
                "breathing_disturbance_index",
                number(v, "breathing_disturbance_index")?,
            ),
        ]),
    }))
}

/// The fixture server's Oura: 25 items a page (Oura's own size is undocumented),
/// `next_token` an opaque offset.
pub struct OuraFixtures;

const PAGE: usize = 25;

impl Impersonation for OuraFixtures {
    /// Only a 429 carries rate-limit headers (OAS "Rate Limit Response Headers"):
    /// `Retry-After` (seconds), `X-RateLimit-Limit`, `X-RateLimit-Window` (seconds),
    /// `X-RateLimit-Reset` (Unix seconds) and `X-RateLimit-Tier`, whose values the OAS does
    /// not list: `application` or `access_token` here, after its two layers.
    fn rate_limit_headers(
        &self,
        windows: &[WindowCount],
        refused: Option<usize>,
        now: DateTime<Utc>,
    ) -> Vec<(&'static str, String)> {
        let Some(w) = refused.and_then(|i| windows.get(i)) else {
            return vec![];
        };
        let reset_at = now
            .timestamp()
            .saturating_add(i64::try_from(w.reset_secs).unwrap_or(i64::MAX));
        let tier = match w.window.scope {
            RateScope::App => "application",
            RateScope::User => "access_token",
        };
        vec![
            ("retry-after", w.reset_secs.to_string()),
            ("x-ratelimit-limit", w.limit.to_string()),
            ("x-ratelimit-window", w.window.period_secs.to_string()),
            ("x-ratelimit-reset", reset_at.to_string()),
            ("x-ratelimit-tier", tier.to_string()),
        ]
    }

    fn fixture(&self, path: &str) -> Option<&'static str> {
        Some(match path {
            "oauth/token.json" => include_str!("../../fixtures/oura/oauth/token.json"),
            "oauth/personal_info.json" => {
                include_str!("../../fixtures/oura/oauth/personal_info.json")
            }
            "oauth/refresh.json" => include_str!("../../fixtures/oura/oauth/refresh.json"),
            "oauth/invalid_grant.json" => {
                include_str!("../../fixtures/oura/oauth/invalid_grant.json")
            }
            "errors/400.json" => include_str!("../../fixtures/oura/errors/400.json"),
            "errors/401.json" => include_str!("../../fixtures/oura/errors/401.json"),
            "errors/403.json" => include_str!("../../fixtures/oura/errors/403.json"),
            "errors/404.json" => include_str!("../../fixtures/oura/errors/404.json"),
            "errors/422.json" => include_str!("../../fixtures/oura/errors/422.json"),
            "errors/429.json" => include_str!("../../fixtures/oura/errors/429.json"),
            "errors/500.json" => include_str!("../../fixtures/oura/errors/500.json"),
            // Body temperature deltas are read from the sleep route: one data set.
            "data/sleep.json" | "data/body_temperature_delta.json" => {
                include_str!("../../fixtures/oura/data/sleep.json")
            }
            "data/sleep.changed.json" | "data/body_temperature_delta.changed.json" => {
                include_str!("../../fixtures/oura/data/sleep.changed.json")
            }
            "data/activity.json" => include_str!("../../fixtures/oura/data/activity.json"),
            "data/activity.changed.json" => {
                include_str!("../../fixtures/oura/data/activity.changed.json")
            }
            "data/workouts.json" => include_str!("../../fixtures/oura/data/workouts.json"),
            "data/workouts.changed.json" => {
                include_str!("../../fixtures/oura/data/workouts.changed.json")
            }
            "data/heartrate.json" => include_str!("../../fixtures/oura/data/heartrate.json"),
            "data/heartrate.changed.json" => {
                include_str!("../../fixtures/oura/data/heartrate.changed.json")
            }
            "data/blood_oxygen.json" => include_str!("../../fixtures/oura/data/blood_oxygen.json"),
            "data/blood_oxygen.changed.json" => {
                include_str!("../../fixtures/oura/data/blood_oxygen.changed.json")
            }
            _ => return None,
        })
    }

    fn serve(
        &self,
        resource: &ResourceSpec,
        params: &HashMap<String, String>,
        items: &[Value],
    ) -> Result<Value, String> {
        // A next_token stands for the whole query; it may not be combined with dates.
        let (offset, start, end) = match params.get("next_token") {
            Some(t) => {
                if params.len() > 1 {
                    return Err("next_token must be sent alone".into());
                }
                let mut parts = t.splitn(3, '|');
                let bad = || "invalid next_token".to_string();
                let offset: usize = parts.next().and_then(|o| o.parse().ok()).ok_or_else(bad)?;
                (
                    offset,
                    parts.next().ok_or_else(bad)?.to_string(),
                    parts.next().ok_or_else(bad)?.to_string(),
                )
            }
            None => {
                let (ks, ke) = if resource.name == Resource::Heartrate {
                    ("start_datetime", "end_datetime")
                } else {
                    ("start_date", "end_date")
                };
                let get = |k: &str| params.get(k).cloned().ok_or(format!("{k} is required"));
                (0, get(ks)?, get(ke)?)
            }
        };
        let selected: Vec<&Value> = if resource.name == Resource::Heartrate {
            let parse =
                |s: &str| chrono::DateTime::parse_from_rfc3339(s).map_err(|e| format!("{s}: {e}"));
            let (start_t, end_t) = (parse(&start)?, parse(&end)?);
            items
                .iter()
                .filter(|i| {
                    i["timestamp"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .is_some_and(|t| t >= start_t && t < end_t)
                })
                .collect()
        } else {
            items
                .iter()
                .filter(|i| {
                    i["day"]
                        .as_str()
                        .is_some_and(|d| d >= start.as_str() && d <= end.as_str())
                })
                .collect()
        };
        let page: Vec<&Value> = selected.iter().skip(offset).take(PAGE).copied().collect();
        // A forged token may carry any offset: add without overflowing.
        let after = offset.saturating_add(PAGE);
        let next = (after < selected.len()).then(|| format!("{after}|{start}|{end}"));
        Ok(json!({"data": page, "next_token": next}))
    }

    /// `GET /v2/usercollection/personal_info`, the identity read after the code exchange.
    fn static_reply(&self, path: &str) -> Option<&'static str> {
        (path == "/v2/usercollection/personal_info")
            .then(|| self.fixture("oauth/personal_info.json"))?
    }

    /// `/v2/usercollection/{sleep,daily_activity,workout}/{document_id}`.
    fn record_path(&self, path: &str) -> Option<(Resource, String)> {
        let rest = path.strip_prefix("/v2/usercollection/")?;
        let (name, id) = rest.split_once('/')?;
        let (_, resource) = WEBHOOK_DATA_TYPES.iter().find(|(t, _)| *t == name)?;
        path_safe(id).then(|| (*resource, id.to_string()))
    }

    /// The document with that `id` from the resource's data set, or a 404.
    fn serve_record(&self, resource: Resource, key: &str, items: &[Value]) -> Option<Value> {
        if !WEBHOOK_DATA_TYPES.iter().any(|(_, r)| *r == resource) {
            return None;
        }
        items
            .iter()
            .find(|i| i.get("id").and_then(Value::as_str) == Some(key))
            .cloned()
    }

    /// WEBHOOKS' event body for every subscription to that (event, data type), signed
    /// with the client secret: `x-oura-timestamp` is `now` in epoch seconds,
    /// `x-oura-signature` the upper-case hex HMAC-SHA256 of it and the body. Oura sends
    /// no deauthorization webhook and has none for heart rate.
    fn push_for(
        &self,
        change: &FixtureChange<'_>,
        subscriptions: &[FixtureSubscription],
        secrets: &PushSecrets,
        now: DateTime<Utc>,
    ) -> Vec<(String, OutboundPush)> {
        let event = match change.kind {
            FixtureChangeKind::Created => "create",
            FixtureChangeKind::Updated => "update",
            FixtureChangeKind::Deleted => "delete",
            FixtureChangeKind::Deauthorized => return vec![],
        };
        let (Some((data_type, _)), Some(record)) = (
            WEBHOOK_DATA_TYPES
                .iter()
                .find(|(_, r)| *r == change.resource),
            change.record,
        ) else {
            return vec![];
        };
        let kind = format!("{event}:{data_type}");
        let body = json!({
            "event_type": event,
            "data_type": data_type,
            "object_id": record,
            "event_time": format_utc(change.at),
            "user_id": change.user,
        })
        .to_string()
        .into_bytes();
        let ts = now.timestamp().to_string();
        let sig = hex(&hmac_sha256(
            secrets.client_secret.as_bytes(),
            &[ts.as_bytes(), &body],
        ))
        .to_uppercase();
        subscriptions
            .iter()
            .filter(|s| s.kinds.contains(&kind))
            .map(|s| {
                (
                    s.callback_url.clone(),
                    OutboundPush {
                        headers: vec![
                            ("x-oura-signature".into(), sig.clone()),
                            ("x-oura-timestamp".into(), ts.clone()),
                        ],
                        query: vec![],
                        content_type: "application/json",
                        body: body.clone(),
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
            (
                "verification_token".into(),
                subscription.verify_token.clone().unwrap_or_default(),
            ),
            ("challenge".into(), challenge.into()),
        ])
    }

    /// WEBHOOKS: the endpoint "must verify the token and respond with the challenge",
    /// `{"challenge": "<challenge>"}`.
    fn handshake_accepted(&self, challenge: &str, status: u16, body: &[u8]) -> bool {
        echoes(status, body, "challenge", challenge)
    }

    /// The OAS "Webhook Subscription Routes", all with `x-client-id`/`x-client-secret`:
    /// `POST /v2/webhook/subscription` (201 `WebhookSubscriptionModel`, active once the
    /// callback passed verification), `GET` the list or `/{id}`, `PUT
    /// /v2/webhook/subscription/renew/{id}` (200, a new `expiration_time`), `DELETE /{id}`
    /// (204); an unknown id is 403 ("Webhook with specified id does not exist").
    fn serve_subscription(
        &self,
        req: &SubscriptionRequest<'_>,
        subscriptions: &mut Vec<FixtureSubscription>,
        secrets: &PushSecrets,
    ) -> Option<SubscriptionServed> {
        let rest = req.path.strip_prefix("/v2/webhook/subscription")?;
        let h = |k: &str| {
            req.headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        if h("x-client-id") != secrets.client_id || h("x-client-secret") != secrets.client_secret {
            return Some(SubscriptionServed::reply(
                401,
                json!({"detail": "Unauthorized"}).to_string(),
            ));
        }
        let model = |s: &FixtureSubscription| {
            let (event, data_type) = s
                .kinds
                .first()
                .and_then(|k| k.split_once(':'))
                .unwrap_or(("", ""));
            json!({
                "id": s.remote_id,
                "callback_url": s.callback_url,
                "event_type": event,
                "data_type": data_type,
                "expiration_time": s.expires_at.map(format_utc),
            })
        };
        let missing = || {
            SubscriptionServed::reply(
                403,
                json!({"detail": "Webhook with specified id does not exist."}).to_string(),
            )
        };
        // The fixture's subscriptions live a week; Oura documents no length.
        let expiry = req.now + chrono::Duration::days(7);
        Some(match (req.method, rest) {
            ("POST", "") => {
                let v: Value = serde_json::from_slice(req.body).unwrap_or(Value::Null);
                let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
                let invalid = |k: &str, msg: &str| {
                    SubscriptionServed::reply(
                        422,
                        json!({"detail": [{"loc": ["body", k], "msg": msg, "type": "value_error"}]})
                            .to_string(),
                    )
                };
                for k in [
                    "callback_url",
                    "verification_token",
                    "event_type",
                    "data_type",
                ] {
                    if field(k).is_empty() {
                        return Some(invalid(k, "field required"));
                    }
                }
                if !["create", "update", "delete"].contains(&field("event_type")) {
                    return Some(invalid(
                        "event_type",
                        "value is not a valid enumeration member",
                    ));
                }
                let kind = format!("{}:{}", field("event_type"), field("data_type"));
                let id = uuid::Uuid::new_v5(
                    &uuid::Uuid::NAMESPACE_URL,
                    format!("{}|{kind}|{}", field("callback_url"), subscriptions.len()).as_bytes(),
                )
                .to_string();
                let sub = FixtureSubscription {
                    callback_url: field("callback_url").to_string(),
                    remote_id: Some(id),
                    kinds: vec![kind],
                    verify_token: Some(field("verification_token").to_string()),
                    expires_at: Some(expiry),
                    ..FixtureSubscription::default()
                };
                SubscriptionServed {
                    status: 201,
                    body: model(&sub).to_string(),
                    created: Some(sub),
                    if_unverified: Some((
                        400,
                        json!({"detail": "Callback verification failed."}).to_string(),
                    )),
                }
            }
            ("GET", "") => SubscriptionServed::reply(
                200,
                Value::Array(subscriptions.iter().map(model).collect()).to_string(),
            ),
            (method, rest) => {
                let (renew, id) = match rest.strip_prefix("/renew/") {
                    Some(id) => (true, id),
                    None => (false, rest.strip_prefix('/')?),
                };
                let Some(i) = subscriptions
                    .iter()
                    .position(|s| s.remote_id.as_deref() == Some(id))
                else {
                    return Some(missing());
                };
                match (method, renew) {
                    ("PUT", true) => {
                        subscriptions[i].expires_at = Some(expiry);
                        SubscriptionServed::reply(200, model(&subscriptions[i]).to_string())
                    }
                    ("GET", false) => {
                        SubscriptionServed::reply(200, model(&subscriptions[i]).to_string())
                    }
                    ("DELETE", false) => {
                        subscriptions.remove(i);
                        SubscriptionServed::reply(204, String::new())
                    }
                    _ => return None,
                }
            }
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

    /// The OAS's five headers on a 429: the full window, and its reset 40 s after the
    /// reply's Date; a reset already past is no wait, and a reply without them reports
    /// nothing.
    #[test]
    fn a_429s_rate_limit_headers_are_read() {
        let r = Oura.rate_report(&headers(&[
            ("date", "Tue, 10 Oct 2020 20:11:05 GMT"),
            ("retry-after", "40"),
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-window", "300"),
            ("x-ratelimit-reset", "1602360705"),
            ("x-ratelimit-tier", "application"),
        ]));
        assert_eq!(
            r,
            RateReport {
                usage: vec![WindowUsage {
                    period_secs: Some(300),
                    used: 5000,
                    limit: Some(5000)
                }],
                reset_after: Some(Duration::from_secs(40)),
            }
        );
        let past = Oura.rate_report(&headers(&[
            ("date", "Tue, 10 Oct 2020 20:11:05 GMT"),
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-reset", "1"),
        ]));
        assert_eq!(past.reset_after, None);
        assert_eq!(past.usage[0].period_secs, None);
        assert_eq!(Oura.rate_report(&headers(&[])), RateReport::default());
        let huge = Oura.rate_report(&headers(&[
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-reset", "18446744073709551615"),
        ]));
        assert_eq!(huge.reset_after, None);
    }

    #[test]
    fn every_sleep_period_is_a_record_with_its_type_and_rejected_ones_are_removals() {
        let body = include_str!("../../fixtures/oura/pages/sleep/page_1.json");
        let page = Oura
            .parse_page(Resource::Sleep, body.as_bytes(), None)
            .unwrap();
        assert_eq!(page.next.as_deref(), Some("c2xlZXA6Mw"));
        let types: Vec<(String, Value)> = page
            .records
            .iter()
            .filter(|r| r.resource == Resource::Sleep)
            .map(|r| (r.provider_id.clone(), r.fields["type"].clone()))
            .collect();
        assert_eq!(types.len(), 4, "three nights and a nap: {types:?}");
        // The nights' deltas come with them (read with sleep); the nap has none.
        let deltas: Vec<&str> = page
            .records
            .iter()
            .filter(|r| r.resource == Resource::BodyTemperatureDelta)
            .map(|r| r.provider_id.as_str())
            .collect();
        assert_eq!(deltas.len(), 3, "{deltas:?}");
        assert!(!deltas.contains(&"58393cab-c600-411f-9090-aeff6e83bd9f"));
        assert_eq!(
            types[2],
            (
                "58393cab-c600-411f-9090-aeff6e83bd9f".to_string(),
                json!("acknowledged_nap")
            ),
            "Oura's `sleep` is a nap the user confirmed"
        );
        assert!(types
            .iter()
            .enumerate()
            .all(|(i, (_, t))| i == 2 || *t == json!("long_sleep")));
        assert!(page.removals.is_empty());
        let r = page.records[0].to_json();
        assert!(r["bedtime_start"].as_str().unwrap().ends_with("+00:00"));
        assert_eq!(r["timezone_offset"], 3600);
        assert_eq!(r["source"]["provider"], "oura");

        let last = Oura
            .parse_page(
                Resource::Sleep,
                include_str!("../../fixtures/oura/pages/sleep/page_2.json").as_bytes(),
                None,
            )
            .unwrap();
        assert!(last.next.is_none());
        // Two periods, and one night's delta.
        assert_eq!(last.records.len(), 3);
        assert_eq!(
            last.removals,
            vec![
                Removal {
                    resource: Resource::Sleep,
                    provider_id: "156c40dc-d472-4768-ab8e-f998424d07c0".into()
                },
                Removal {
                    resource: Resource::BodyTemperatureDelta,
                    provider_id: "156c40dc-d472-4768-ab8e-f998424d07c0".into()
                }
            ],
            "a rejected rest period is a removal, of its delta too"
        );

        let kinds = r#"{"data": [
            {"id": "a", "type": "late_nap", "bedtime_start": "2026-01-01T19:00:00+01:00", "bedtime_end": "2026-01-01T19:40:00+01:00", "day": "2026-01-02"},
            {"id": "b", "type": "deleted"},
            {"id": "c", "type": "rest", "bedtime_start": "nonsense"},
            {"id": "d", "type": "something_new", "bedtime_start": "2026-01-01T13:00:00+01:00", "bedtime_end": "2026-01-01T13:30:00+01:00", "day": "2026-01-01"},
            {"id": "e", "bedtime_start": "2026-01-01T13:00:00+01:00", "bedtime_end": "2026-01-01T13:30:00+01:00", "day": "2026-01-01"}
        ], "next_token": null}"#;
        let p = Oura
            .parse_page(Resource::Sleep, kinds.as_bytes(), None)
            .unwrap();
        let got: Vec<(&str, &Value)> = p
            .records
            .iter()
            .map(|r| (r.provider_id.as_str(), &r.fields["type"]))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", &json!("acknowledged_nap")),
                ("d", &json!("unknown")),
                ("e", &json!("unknown"))
            ]
        );
        let removed: Vec<&str> = p
            .removals
            .iter()
            .filter(|r| r.resource == Resource::Sleep)
            .map(|r| r.provider_id.as_str())
            .collect();
        assert_eq!(removed, ["b", "c"], "removals need only the id");
        // Their deltas go with them.
        assert_eq!(p.removals.len(), 4);
    }

    #[test]
    fn out_of_range_instants_are_errors_naming_the_field() {
        // 23:30 on 31 December 9999 at -01:00 is year 10000 in UTC: RFC 3339 cannot
        // write it, and re-parsing the formatted text used to panic.
        let bad = r#"{"data": [{"id": "w", "activity": "running", "start_datetime": "9999-12-31T23:30:00-01:00", "end_datetime": "9999-12-31T23:50:00-01:00"}]}"#;
        match Oura.parse_page(Resource::Workouts, bad.as_bytes(), None) {
            Err(ProviderError::Malformed { field, .. }) => {
                assert_eq!(field, "data[0].start_datetime")
            }
            other => panic!("expected a malformed error, got {other:?}"),
        }
        let year0 = r#"{"data": [{"id": "s", "type": "long_sleep", "day": "0000-01-01", "bedtime_start": "0000-01-01T00:30:00+01:00", "bedtime_end": "0000-01-01T07:00:00+01:00"}]}"#;
        assert!(matches!(
            Oura.parse_page(Resource::Sleep, year0.as_bytes(), None),
            Err(ProviderError::Malformed { field, .. }) if field == "data[0].bedtime_start"
        ));
    }

    #[test]
    fn malformed_pages_name_the_field() {
        let bad = r#"{"data": [{"id": "w", "start_datetime": "soon", "end_datetime": "2026-01-01T00:00:00+00:00"}]}"#;
        match Oura.parse_page(Resource::Workouts, bad.as_bytes(), None) {
            Err(ProviderError::Malformed { field, .. }) => {
                assert_eq!(field, "data[0].start_datetime")
            }
            other => panic!("expected a malformed error, got {other:?}"),
        }
        assert!(matches!(
            Oura.parse_page(Resource::Workouts, b"{\"data\": 3}", None),
            Err(ProviderError::Malformed { .. })
        ));
        assert!(matches!(
            Oura.parse_page(Resource::Workouts, b"not json", None),
            Err(ProviderError::Malformed { .. })
        ));
    }

    #[test]
    fn workouts_keep_unknown_sports_and_missing_values() {
        let page = Oura
            .parse_page(
                Resource::Workouts,
                format!(
                    "{{\"data\": {}, \"next_token\": null}}",
                    include_str!("../../fixtures/oura/data/workouts.json")
                )
                .as_bytes(),
                None,
            )
            .unwrap();
        let padel = page
            .records
            .iter()
            .map(Record::to_json)
            .find(|r| r["sport"]["slug"] == "padel")
            .expect("an unlisted sport passes through");
        assert!(padel["distance"].is_null());
        assert!(
            page.records.iter().any(|r| r.fields["calories"].is_null()),
            "a missing calorie count stays null"
        );
    }

    mod push {
        use super::super::*;
        use crate::providers::push::testing::{at, Owned};
        use std::collections::BTreeMap;

        const SECRET: &str = "0ura-client-s3cret";
        /// 2026-11-27T12:00:00Z.
        const TS: &str = "1795780800";
        const USER: &str = "a3e1c2b4-5d6f-4a7b-8c9d-0e1f2a3b4c5d";

        fn secrets() -> PushSecrets {
            PushSecrets {
                client_id: "MZ7QK3V2NQ4XW5TB".into(),
                client_secret: SECRET.into(),
                verify_token: "our-verification-token".into(),
                ..PushSecrets::default()
            }
        }

        fn spec(r: Resource) -> ResourceSpec {
            crate::providers::find("oura")
                .unwrap()
                .resource(r)
                .unwrap()
                .clone()
        }

        fn signed(body: &[u8], ts: &str, sig: &str, now: &str) -> Owned {
            Owned::new(
                &[
                    ("content-type", "application/json"),
                    ("x-oura-signature", sig),
                    ("x-oura-timestamp", ts),
                ],
                &[],
                body,
                at(now),
            )
        }

        /// Computed independently: `hmac.new(b"0ura-client-s3cret", b"1795780800" +
        /// open("fixtures/oura/push/sleep_update.json","rb").read(),
        /// hashlib.sha256).hexdigest().upper()` in Python.
        #[test]
        fn the_signature_is_upper_case_hex_hmac_of_timestamp_and_body() {
            let body = include_bytes!("../../fixtures/oura/push/sleep_update.json");
            let sig = "A0BBC6A3AE57DEF960CD97F376B51B88F1F27AFFB8BA88BA7CA01BB2D6C027EC";
            let now = "2026-11-27T12:00:30Z";
            assert!(Oura
                .verify_push(&signed(body, TS, sig, now).req(), &secrets())
                .is_ok());
            let refused = |r: Owned| {
                matches!(
                    Oura.verify_push(&r.req(), &secrets()),
                    Err(PushError::Unverified(_))
                )
            };
            let forged = "A0BBC6A3AE57DEF960CD97F376B51B88F1F27AFFB8BA88BA7CA01BB2D6C027ED";
            assert!(refused(signed(body, TS, forged, now)));
            assert!(refused(signed(body, "1795780801", sig, now)));
            let other = include_bytes!("../../fixtures/oura/push/workout_create.json");
            assert!(refused(signed(other, TS, sig, now)));
            assert!(refused(signed(body, TS, "not-hex", now)));
            assert!(
                refused(signed(body, TS, sig, "2026-11-27T12:05:01Z")),
                "stale"
            );
            assert!(
                refused(signed(body, TS, sig, "2026-11-27T11:54:59Z")),
                "from the future"
            );
            assert!(refused(Owned::new(&[], &[], body, at(now))), "unsigned");
            assert!(matches!(
                Oura.verify_push(&signed(body, TS, sig, now).req(), &PushSecrets::default()),
                Err(PushError::Unverified(_))
            ));
        }

        #[test]
        fn the_verification_get_echoes_the_challenge_only_for_our_token() {
            let q = |token: &str| {
                Owned::new(
                    &[],
                    &[
                        ("verification_token", token),
                        ("challenge", "random-string"),
                    ],
                    b"",
                    at("2026-11-27T12:00:00Z"),
                )
            };
            let ok = Oura
                .push_handshake(&q("our-verification-token").req(), &secrets())
                .unwrap()
                .unwrap();
            assert_eq!(ok.status, 200);
            assert_eq!(
                serde_json::from_slice::<Value>(&ok.body).unwrap(),
                json!({"challenge": "random-string"})
            );
            for bad in ["another", ""] {
                assert!(matches!(
                    Oura.push_handshake(&q(bad).req(), &secrets()),
                    Some(Err(PushError::Unverified(_)))
                ));
            }
            assert!(matches!(
                Oura.push_handshake(&q("").req(), &PushSecrets::default()),
                Some(Err(_))
            ));
            let event = signed(
                include_bytes!("../../fixtures/oura/push/sleep_update.json"),
                TS,
                "x",
                "2026-11-27T12:00:00Z",
            );
            assert!(Oura.push_handshake(&event.req(), &secrets()).is_none());
        }

        fn parsed(body: &[u8]) -> Notice {
            let r = Owned::new(&[], &[], body, at("2026-11-27T12:00:00Z"));
            let mut n = Oura.parse_push(&r.req()).unwrap();
            assert_eq!(n.len(), 1);
            n.remove(0)
        }

        #[test]
        fn each_documented_event_becomes_its_notice() {
            let s = parsed(include_bytes!("../../fixtures/oura/push/sleep_update.json"));
            assert_eq!(s.user, USER);
            assert_eq!(s.at, Some(at("2026-11-20T07:41:09Z")));
            assert_eq!(
                s.action,
                NoticeAction::Changed {
                    resource: Resource::Sleep,
                    record: Some("1acef5ce-3782-4bc9-854a-cf65d57cd32e".into()),
                    window: None
                }
            );
            let w = parsed(include_bytes!(
                "../../fixtures/oura/push/workout_create.json"
            ));
            assert!(matches!(
                w.action,
                NoticeAction::Changed {
                    resource: Resource::Workouts,
                    record: Some(_),
                    ..
                }
            ));
            let a = parsed(include_bytes!(
                "../../fixtures/oura/push/activity_delete.json"
            ));
            assert_eq!(
                a.action,
                NoticeAction::Deleted {
                    resource: Resource::Activity,
                    record: "66c94063-ed8b-49fd-b658-de6722d78515".into()
                }
            );
            assert_ne!(s.key, w.key);
            assert_eq!(
                s.key,
                parsed(include_bytes!("../../fixtures/oura/push/sleep_update.json")).key
            );
            // Data types we do not store (the OAS example's tag) are nothing to pull.
            let tag = br#"{"event_type":"delete","data_type":"tag","object_id":"x","event_time":"2026-11-20T07:41:09+00:00","user_id":"u"}"#;
            assert!(matches!(parsed(tag).action, NoticeAction::Ignored(_)));
            for bad in [
                &b"{"[..],
                br#"{"event_type":"update","data_type":"sleep","event_time":"2026-11-20T07:41:09+00:00","user_id":"u"}"#,
                br#"{"event_type":"update","data_type":"sleep","object_id":"x","event_time":"yesterday","user_id":"u"}"#,
                br#"{"event_type":"update","data_type":"sleep","object_id":"x","event_time":"2026-11-20T07:41:09+00:00"}"#,
            ] {
                let r = Owned::new(&[], &[], bad, at("2026-11-27T12:00:00Z"));
                assert!(matches!(Oura.parse_push(&r.req()), Err(PushError::Malformed(_))));
            }
        }

        #[test]
        fn the_user_is_named_by_personal_info_and_documents_are_read_by_id() {
            let req = Oura.identity_request().unwrap();
            assert_eq!(req.path, "/v2/usercollection/personal_info");
            let body = OuraFixtures
                .static_reply("/v2/usercollection/personal_info")
                .unwrap();
            assert_eq!(Oura.identity_user_id(body.as_bytes()).unwrap(), USER);
            assert!(Oura.identity_user_id(br#"{"id": ""}"#).is_err());
            assert!(Oura.identity_user_id(br#"{"age": 30}"#).is_err());

            for (resource, path, key) in [
                (
                    Resource::Sleep,
                    "/v2/usercollection/sleep/",
                    "1acef5ce-3782-4bc9-854a-cf65d57cd32e",
                ),
                (
                    Resource::Activity,
                    "/v2/usercollection/daily_activity/",
                    "66c94063-ed8b-49fd-b658-de6722d78515",
                ),
                (
                    Resource::Workouts,
                    "/v2/usercollection/workout/",
                    "72e2ee5e-9af8-46ba-8d4b-3e4e47dd891d",
                ),
            ] {
                let req = Oura.record_request(&spec(resource), key).unwrap();
                assert_eq!(req.path, format!("{path}{key}"));
                assert!(req.query.is_empty());
                assert_eq!(
                    OuraFixtures.record_path(&req.path),
                    Some((resource, key.to_string()))
                );
                let items: Vec<Value> = serde_json::from_str(
                    OuraFixtures
                        .fixture(&format!("data/{}.json", resource.as_str()))
                        .unwrap(),
                )
                .unwrap();
                let served = OuraFixtures.serve_record(resource, key, &items).unwrap();
                let page = Oura
                    .parse_record(resource, served.to_string().as_bytes())
                    .unwrap();
                assert_eq!(page.records.len(), 1);
                assert_eq!(
                    page.records[0].provider_id, key,
                    "the id parse_page gives it"
                );
                assert!(OuraFixtures
                    .serve_record(resource, "nope", &items)
                    .is_none());
            }
            assert_eq!(Oura.record_request(&spec(Resource::Heartrate), "x"), None);
            assert_eq!(
                Oura.record_request(&spec(Resource::Sleep), "../personal_info"),
                None
            );
            // A period rejected as not sleep reads as a removal of that id.
            let rest = Oura
                .parse_record(
                    Resource::Sleep,
                    include_bytes!("../../fixtures/oura/records/sleep/fd661012-0dd2-4983-9f5f-227002e4d58b.json"),
                )
                .unwrap();
            assert!(rest.records.is_empty());
            assert_eq!(
                rest.removals[0].provider_id,
                "fd661012-0dd2-4983-9f5f-227002e4d58b"
            );
            assert!(Oura.parse_record(Resource::Sleep, b"[]").is_err());
            assert!(Oura.parse_record(Resource::Heartrate, b"{}").is_err());
        }

        #[test]
        fn subscriptions_are_one_per_event_and_data_type_and_renew_by_id() {
            let calls = Oura.subscribe_calls("https://gw.example/cb", &secrets());
            assert_eq!(
                calls.len(),
                9,
                "create, update, delete × sleep, daily_activity, workout"
            );
            for c in &calls {
                assert_eq!(
                    (c.method, c.url.as_str()),
                    ("POST", "/v2/webhook/subscription")
                );
                assert_eq!(
                    c.headers,
                    vec![
                        ("x-client-id".to_string(), "MZ7QK3V2NQ4XW5TB".to_string()),
                        ("x-client-secret".into(), SECRET.into())
                    ]
                );
                let body = c.json.as_ref().unwrap();
                assert_eq!(body["callback_url"], "https://gw.example/cb");
                assert_eq!(body["verification_token"], "our-verification-token");
            }
            let pairs: std::collections::HashSet<(String, String)> = calls
                .iter()
                .map(|c| {
                    let b = c.json.as_ref().unwrap();
                    (
                        b["event_type"].as_str().unwrap().into(),
                        b["data_type"].as_str().unwrap().into(),
                    )
                })
                .collect();
            assert_eq!(pairs.len(), 9);
            let renew = Oura
                .renew_call("5d3fe17b-f880-4d93-b9b6-afbfb76c1e78", &secrets())
                .unwrap();
            assert_eq!(
                (renew.method, renew.url.as_str()),
                (
                    "PUT",
                    "/v2/webhook/subscription/renew/5d3fe17b-f880-4d93-b9b6-afbfb76c1e78"
                )
            );
            assert!(Oura.renew_call("../x", &secrets()).is_none());
            let sub = Oura
                .subscription_reply(
                    201,
                    br#"{"id":"5d3fe17b-f880-4d93-b9b6-afbfb76c1e78","callback_url":"https://gw.example/cb","event_type":"update","data_type":"sleep","expiration_time":"2026-12-04T12:00:00+00:00"}"#,
                )
                .unwrap();
            assert_eq!(
                sub.remote_id.as_deref(),
                Some("5d3fe17b-f880-4d93-b9b6-afbfb76c1e78")
            );
            assert_eq!(sub.expires_at, Some(at("2026-12-04T12:00:00Z")));
            assert!(Oura.subscription_reply(201, br#"{"id":"x"}"#).is_err());
            assert!(Oura.subscription_reply(422, br#"{"detail":[]}"#).is_err());
        }

        #[test]
        fn the_fixture_server_subscribes_verifies_renews_and_pushes_like_oura() {
            let now = at("2026-11-27T12:00:00Z");
            let secrets = secrets();
            let mut subs: Vec<FixtureSubscription> = vec![];
            let params = BTreeMap::new();
            for call in Oura.subscribe_calls("https://gw.example/cb", &secrets) {
                let mut headers = reqwest::header::HeaderMap::new();
                for (k, v) in &call.headers {
                    headers.insert(
                        reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                        v.parse().unwrap(),
                    );
                }
                let body = call.json.unwrap().to_string();
                let req = SubscriptionRequest {
                    method: call.method,
                    path: &call.url,
                    headers: &headers,
                    params: &params,
                    body: body.as_bytes(),
                    now,
                };
                let served = OuraFixtures
                    .serve_subscription(&req, &mut subs, &secrets)
                    .unwrap();
                assert_eq!(served.status, 201);
                let got = Oura
                    .subscription_reply(served.status, served.body.as_bytes())
                    .unwrap();
                let created = served.created.unwrap();
                assert_eq!(got.remote_id, created.remote_id);
                assert_eq!(got.expires_at, created.expires_at);
                // The verification request, answered by the adapter, passes.
                let q = OuraFixtures.handshake_query(&created, "7c1d").unwrap();
                let q: Vec<(&str, &str)> =
                    q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let reply = Oura
                    .push_handshake(&Owned::new(&[], &q, b"", now).req(), &secrets)
                    .unwrap()
                    .unwrap();
                assert!(OuraFixtures.handshake_accepted("7c1d", reply.status, &reply.body));
                assert!(!OuraFixtures.handshake_accepted("other", reply.status, &reply.body));
                subs.push(created);
            }
            assert_eq!(subs.len(), 9);

            // Without the client headers: refused.
            let no_headers = reqwest::header::HeaderMap::new();
            let list = SubscriptionRequest {
                method: "GET",
                path: "/v2/webhook/subscription",
                headers: &no_headers,
                params: &params,
                body: b"",
                now,
            };
            assert_eq!(
                OuraFixtures
                    .serve_subscription(&list, &mut subs, &secrets)
                    .unwrap()
                    .status,
                401
            );

            // Renewal moves the expiry.
            let id = subs[0].remote_id.clone().unwrap();
            let call = Oura.renew_call(&id, &secrets).unwrap();
            let mut headers = reqwest::header::HeaderMap::new();
            for (k, v) in &call.headers {
                headers.insert(
                    reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            let later = now + chrono::Duration::days(5);
            let renew = SubscriptionRequest {
                method: "PUT",
                path: &call.url,
                headers: &headers,
                params: &params,
                body: b"",
                now: later,
            };
            let served = OuraFixtures
                .serve_subscription(&renew, &mut subs, &secrets)
                .unwrap();
            assert_eq!(served.status, 200);
            assert_eq!(
                Oura.subscription_reply(200, served.body.as_bytes())
                    .unwrap()
                    .expires_at,
                Some(later + chrono::Duration::days(7))
            );
            let unknown = SubscriptionRequest {
                path: "/v2/webhook/subscription/renew/nope",
                ..renew
            };
            assert_eq!(
                OuraFixtures
                    .serve_subscription(&unknown, &mut subs, &secrets)
                    .unwrap()
                    .status,
                403
            );

            // Every change kind of every data type arrives signed and reads back.
            for (resource, record) in [
                (Resource::Sleep, "1acef5ce-3782-4bc9-854a-cf65d57cd32e"),
                (Resource::Activity, "66c94063-ed8b-49fd-b658-de6722d78515"),
                (Resource::Workouts, "72e2ee5e-9af8-46ba-8d4b-3e4e47dd891d"),
            ] {
                for kind in [
                    FixtureChangeKind::Created,
                    FixtureChangeKind::Updated,
                    FixtureChangeKind::Deleted,
                ] {
                    let change = FixtureChange {
                        user: USER,
                        resource,
                        kind,
                        item: None,
                        record: Some(record),
                        at: at("2026-11-27T11:58:00Z"),
                    };
                    let pushes = OuraFixtures.push_for(&change, &subs, &secrets, now);
                    assert_eq!(pushes.len(), 1, "one subscription per (event, data type)");
                    let r = Owned::of(&pushes[0].1, now + chrono::Duration::seconds(30));
                    Oura.verify_push(&r.req(), &secrets).unwrap();
                    let n = Oura.parse_push(&r.req()).unwrap();
                    assert_eq!((n[0].user.as_str(), n[0].at), (USER, Some(change.at)));
                    let want = match kind {
                        FixtureChangeKind::Deleted => NoticeAction::Deleted {
                            resource,
                            record: record.into(),
                        },
                        _ => NoticeAction::Changed {
                            resource,
                            record: Some(record.into()),
                            window: None,
                        },
                    };
                    assert_eq!(n[0].action, want);
                }
            }
            // Only subscribed pairs are pushed; heart rate and deauthorization never.
            subs.retain(|s| s.kinds != ["delete:workout"]);
            let change = FixtureChange {
                user: USER,
                resource: Resource::Workouts,
                kind: FixtureChangeKind::Deleted,
                item: None,
                record: Some("72e2ee5e-9af8-46ba-8d4b-3e4e47dd891d"),
                at: now,
            };
            assert!(OuraFixtures
                .push_for(&change, &subs, &secrets, now)
                .is_empty());
            let hr = FixtureChange {
                resource: Resource::Heartrate,
                kind: FixtureChangeKind::Created,
                ..change.clone()
            };
            assert!(OuraFixtures.push_for(&hr, &subs, &secrets, now).is_empty());
            let gone = FixtureChange {
                kind: FixtureChangeKind::Deauthorized,
                ..change
            };
            assert!(OuraFixtures
                .push_for(&gone, &subs, &secrets, now)
                .is_empty());
            // Deleting removes it.
            let del = SubscriptionRequest {
                method: "DELETE",
                path: &format!("/v2/webhook/subscription/{id}"),
                ..renew
            };
            assert_eq!(
                OuraFixtures
                    .serve_subscription(&del, &mut subs, &secrets)
                    .unwrap()
                    .status,
                204
            );
            assert!(subs
                .iter()
                .all(|s| s.remote_id.as_deref() != Some(id.as_str())));
        }
    }

    /// A day's SpO2 document is one blood oxygen sample in `%` at the day's start (the
    /// document names no time); a day without an average is none, not a zero.
    #[test]
    fn daily_spo2_is_a_blood_oxygen_sample_and_a_missing_average_is_none() {
        let body = r#"{"data": [
            {"id": "a", "day": "2026-11-20", "spo2_percentage": {"average": 96.875}, "breathing_disturbance_index": 7},
            {"id": "b", "day": "2026-11-21", "spo2_percentage": null, "breathing_disturbance_index": null},
            {"id": "c", "day": "2026-11-22", "spo2_percentage": {"average": 97.5}, "breathing_disturbance_index": null}
        ], "next_token": null}"#;
        let page = Oura
            .parse_page(Resource::BloodOxygen, body.as_bytes(), None)
            .unwrap();
        let recs: Vec<Value> = page.records.iter().map(Record::to_json).collect();
        assert_eq!(recs.len(), 2, "no average on 11-21: no sample");
        assert_eq!(
            (
                recs[0]["value"].clone(),
                recs[0]["unit"].clone(),
                recs[0]["type"].clone()
            ),
            (json!(96.875), json!("%"), json!("blood_oxygen"))
        );
        assert_eq!(
            (recs[0]["provider_id"].clone(), recs[0]["timestamp"].clone()),
            (json!("a"), json!("2026-11-20T00:00:00+00:00"))
        );
        assert!(
            recs[0]["timezone_offset"].is_null(),
            "a day names no offset"
        );
        assert_eq!(recs[0]["breathing_disturbance_index"], 7);
        assert!(recs[1]["breathing_disturbance_index"].is_null());
        for (bad, field) in [
            (
                r#"{"id": "x", "day": "20/11/2026", "spo2_percentage": {"average": 96.0}}"#,
                "data[0].day",
            ),
            (
                r#"{"id": "x", "day": "2026-11-20", "spo2_percentage": {"average": 140.0}}"#,
                "data[0].spo2_percentage.average",
            ),
        ] {
            let body = format!(r#"{{"data": [{bad}], "next_token": null}}"#);
            assert!(
                matches!(Oura.parse_page(Resource::BloodOxygen, body.as_bytes(), None),
                         Err(ProviderError::Malformed { field: f, .. }) if f == field),
                "{bad}"
            );
        }
        // Asked for by day, like the other daily collections.
        let p = crate::providers::find(ID).unwrap();
        let spec = p.resource(Resource::BloodOxygen).unwrap();
        let w = Window {
            start: DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            end: DateTime::parse_from_rfc3339("2026-11-15T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        };
        let req = Oura.page_request(spec, &w, None);
        assert_eq!(req.path, "/v2/usercollection/daily_spo2");
        assert!(req.query.iter().any(|(k, _)| k == "start_date"));
        assert!(p.manifest.scopes.iter().any(|s| s == "spo2"));
    }

    /// A sleep period's readiness `temperature_deviation` is one body temperature delta
    /// sample covering the period, in °C; a nap without readiness, or a night whose
    /// deviation is null, is none; a rejected period is a removal.
    #[test]
    fn a_nights_temperature_deviation_is_a_delta_sample_covering_it() {
        let body = r#"{"data": [
            {"id": "n1", "day": "2026-11-20", "type": "long_sleep",
             "bedtime_start": "2026-11-19T23:27:55+01:00", "bedtime_end": "2026-11-20T07:00:25+01:00",
             "readiness": {"score": 81, "temperature_deviation": -0.27, "temperature_trend_deviation": 0.05}},
            {"id": "n2", "day": "2026-11-20", "type": "sleep",
             "bedtime_start": "2026-11-20T14:10:00+01:00", "bedtime_end": "2026-11-20T14:50:00+01:00",
             "readiness": null},
            {"id": "n3", "day": "2026-11-21", "type": "long_sleep",
             "bedtime_start": "2026-11-20T23:00:00+01:00", "bedtime_end": "2026-11-21T07:00:00+01:00",
             "readiness": {"score": 70, "temperature_deviation": null, "temperature_trend_deviation": null}},
            {"id": "n4", "day": "2026-11-21", "type": "rest",
             "bedtime_start": "2026-11-21T15:00:00+01:00", "bedtime_end": "2026-11-21T15:30:00+01:00"}
        ], "next_token": null}"#;
        let page = Oura
            .parse_page(Resource::BodyTemperatureDelta, body.as_bytes(), None)
            .unwrap();
        let recs: Vec<Value> = page.records.iter().map(Record::to_json).collect();
        assert_eq!(recs.len(), 1, "no readiness, no deviation: no sample");
        let r = &recs[0];
        assert_eq!(r["resource"], "body_temperature_delta");
        assert_eq!(r["provider_id"], "n1");
        assert_eq!(
            (r["value"].clone(), r["unit"].clone()),
            (json!(-0.27), json!("°C"))
        );
        assert_eq!(r["start"], "2026-11-19T22:27:55+00:00");
        assert_eq!(r["timestamp"], r["start"]);
        assert_eq!(r["end"], "2026-11-20T06:00:25+00:00");
        assert_eq!(r["timezone_offset"], 3600);
        assert_eq!(r["trend_deviation"], 0.05);
        assert_eq!(
            page.removals,
            vec![Removal {
                resource: Resource::BodyTemperatureDelta,
                provider_id: "n4".into()
            }]
        );
        for (bad, field) in [
            (
                r#"{"id": "x", "type": "long_sleep", "bedtime_start": "yesterday", "bedtime_end": "2026-11-20T07:00:25+01:00", "readiness": {"temperature_deviation": 0.1}}"#,
                "data[0].bedtime_start",
            ),
            (
                r#"{"id": "x", "type": "long_sleep", "bedtime_start": "2026-11-19T23:27:55+01:00", "bedtime_end": "2026-11-20T07:00:25+01:00", "readiness": {"temperature_deviation": "warm"}}"#,
                "data[0].readiness.temperature_deviation",
            ),
        ] {
            let body = format!(r#"{{"data": [{bad}], "next_token": null}}"#);
            assert!(
                matches!(Oura.parse_page(Resource::BodyTemperatureDelta, body.as_bytes(), None),
                         Err(ProviderError::Malformed { field: f, .. }) if f == field),
                "{bad}"
            );
        }
        // Read from the sleep route, by day like sleep.
        let p = crate::providers::find(ID).unwrap();
        let spec = p.resource(Resource::BodyTemperatureDelta).unwrap();
        assert_eq!(spec.path, p.resource(Resource::Sleep).unwrap().path);
    }
}
