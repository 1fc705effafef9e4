//! WHOOP developer API v2 (<https://developer.whoop.com/api>). Four collections, each
//! `GET` with `start` (inclusive) / `end` (exclusive) RFC 3339 bounds and `limit` ≤ 25,
//! answering `{"records": [...], "next_token": "..."}` newest first; the next page is
//! the same query plus `nextToken` (camel case in the request, snake case in the reply),
//! and an absent, null or empty `next_token` is the last page. Times are UTC (`Z`) with
//! the user's offset beside them as `timezone_offset` (`"-05:00"`); durations are in
//! milliseconds and energy in kilojoules. Measurements sit under `score`, which exists
//! only when `score_state` is `SCORED`. Quirks, with sources, are in
//! `fixtures/whoop/README.md`.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde_json::{json, Value};

use super::normalize::*;
use super::push::*;
use super::{
    Adapter, Impersonation, Page, PageRequest, ProviderError, Record, ResourceSpec, Window,
    WindowCount,
};
use crate::events::Resource;

pub struct Whoop;

const ID: &str = "whoop";
/// OAS: every collection's `limit` has `maximum: 25` (default 10).
const MAX_LIMIT: usize = 25;

/// Instants as WHOOP writes them (the pagination doc's `2022-01-01T00:00:00.000Z`).
fn whoop_instant(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl Adapter for Whoop {
    fn page_request(
        &self,
        resource: &ResourceSpec,
        window: &Window,
        cursor: Option<&str>,
    ) -> PageRequest {
        // The pagination doc sends `nextToken` *with* the first request's parameters
        // ("using the same query parameters"), unlike Oura's token-only follow-ups.
        let mut q = vec![
            ("start".to_string(), whoop_instant(window.start)),
            ("end".to_string(), whoop_instant(window.end)),
            ("limit".to_string(), MAX_LIMIT.to_string()),
        ];
        if let Some(c) = cursor {
            q.push(("nextToken".to_string(), c.to_string()));
        }
        PageRequest::get(resource.path.clone(), q)
    }

    fn parse_page(
        &self,
        resource: Resource,
        body: &[u8],
        _cursor: Option<&str>,
    ) -> Result<Page, ProviderError> {
        let v = parse_json(body)?;
        let items = req_array(&v, "records")?;
        let mut records = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let rec = match resource {
                Resource::Workouts => workout(item),
                Resource::Sleep => sleep(item),
                Resource::Recovery => recovery(item),
                Resource::Activity => cycle(item),
                other => {
                    return Err(ProviderError::malformed(
                        "resource",
                        format!("WHOOP has no {other}"),
                    ))
                }
            }
            .map_err(|e| match e {
                ProviderError::Malformed { field, message } => {
                    ProviderError::malformed(format!("records[{i}].{field}"), message)
                }
                e => e,
            })?;
            records.push(rec);
        }
        // OAS: "If the token is not present, there are no more records"; the pagination
        // doc: "until the next_token is empty". Absent, null and "" all end the query.
        let next = opt_str(&v, "next_token")?
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        Ok(Page {
            records,
            next,
            ..Page::default()
        })
    }

    fn classify_error(
        &self,
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> ProviderError {
        // OAS (getSleepStream): 403 `{"error": "deactivated_user"}` is an inactive WHOOP
        // membership, not a missing scope: the user must renew, re-consenting won't help.
        if status == 403 && String::from_utf8_lossy(body).contains("deactivated_user") {
            return ProviderError::Refused(format!(
                "HTTP 403: {}",
                String::from_utf8_lossy(&body[..body.len().min(500)])
            ));
        }
        // 429 carries X-RateLimit-Reset (seconds), which the runtime does not pass on; it
        // waits 60 s without a Retry-After, exactly the per-minute window.
        ProviderError::from_status(status, retry_after, body)
    }

    /// OAS `getProfileBasic`: `GET /v2/user/profile/basic` (scope `read:profile`) names
    /// the user as `user_id`, the id every webhook carries; the token reply names none.
    fn identity_request(&self) -> Option<PageRequest> {
        Some(PageRequest::get("/v2/user/profile/basic", vec![]))
    }

    fn identity_user_id(&self, body: &[u8]) -> Result<String, ProviderError> {
        let v = parse_json(body)?;
        match v.get("user_id") {
            Some(Value::Number(n)) if n.as_i64().is_some_and(|id| id > 0) => Ok(n.to_string()),
            _ => Err(ProviderError::malformed(
                "user_id",
                "expected the user's positive integer id",
            )),
        }
    }

    /// OAS `getWorkoutById` (`/v2/activity/workout/{workoutId}`), `getSleepById`
    /// (`/v2/activity/sleep/{sleepId}`), both UUIDs, and `getRecoveryForCycle`
    /// (`/v2/cycle/{cycleId}/recovery`, the cycle id a recovery is keyed by): what a
    /// webhook names. Anything else (a v1 integer id for a workout or sleep) has no read.
    fn record_request(
        &self,
        resource: &ResourceSpec,
        provider_record_id: &str,
    ) -> Option<PageRequest> {
        let path = match resource.name {
            Resource::Workouts if is_uuid(provider_record_id) => {
                format!("{}/{provider_record_id}", resource.path)
            }
            Resource::Sleep if is_uuid(provider_record_id) => {
                format!("{}/{provider_record_id}", resource.path)
            }
            Resource::Recovery if provider_record_id.parse::<u64>().is_ok() => {
                format!("/v2/cycle/{provider_record_id}/recovery")
            }
            _ => return None,
        };
        Some(PageRequest::get(path, vec![]))
    }

    /// The by-id reads answer the bare object the collections list.
    fn parse_record(&self, resource: Resource, body: &[u8]) -> Result<Page, ProviderError> {
        let v = parse_json(body)?;
        if !v.is_object() {
            return Err(ProviderError::malformed("$", "expected one object"));
        }
        let record = match resource {
            Resource::Workouts => workout(&v)?,
            Resource::Sleep => sleep(&v)?,
            Resource::Recovery => recovery(&v)?,
            other => {
                return Err(ProviderError::malformed(
                    "resource",
                    format!("no single-record read for WHOOP {other}"),
                ))
            }
        };
        Ok(Page {
            records: vec![record],
            ..Page::default()
        })
    }

    /// `X-WHOOP-Signature` is base64(HMAC-SHA256(timestamp header followed by the raw
    /// body, keyed by the client secret)), `X-WHOOP-Signature-Timestamp` epoch
    /// milliseconds (`1748241241000` in the example delivery of `api-evangelist/whoop-co`;
    /// seconds are read too). Refused beyond [`TIMESTAMP_TOLERANCE_SECS`] either way.
    fn verify_push(&self, req: &PushRequest<'_>, secrets: &PushSecrets) -> Result<(), PushError> {
        verify_timestamped_hmac(
            req,
            &secrets.client_secret,
            "x-whoop-signature-timestamp",
            "x-whoop-signature",
            |s| base64::engine::general_purpose::STANDARD.decode(s).ok(),
        )
    }

    /// WEBHOOKS "Webhook Specifications": `{user_id, id, type, trace_id}`, `type` one of
    /// `workout|sleep|recovery` `.updated|.deleted`. `id` is the workout's or sleep's UUID
    /// (v2 model) and, per the event table, "the id of the cycle for the recovery". The
    /// key is `trace_id` with the type and id (one trace may touch several objects).
    fn parse_push(&self, req: &PushRequest<'_>) -> Result<Vec<Notice>, PushError> {
        let v = json_body(req)?;
        let bad = |m: &str| PushError::Malformed(m.to_string());
        let user = match v.get("user_id") {
            Some(Value::Number(n)) if n.as_i64().is_some_and(|id| id > 0) => n.to_string(),
            _ => return Err(bad("user_id is not the user's integer id")),
        };
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no type"))?;
        let id = v.get("id").and_then(id_text).ok_or_else(|| bad("no id"))?;
        let trace = v.get("trace_id").and_then(Value::as_str).unwrap_or("");
        let (object, event) = kind.split_once('.').unwrap_or((kind, ""));
        let resource = match object {
            "workout" => Some(Resource::Workouts),
            "sleep" => Some(Resource::Sleep),
            "recovery" => Some(Resource::Recovery),
            _ => None,
        };
        // Our keys: the UUID for workouts and sleep, the cycle id for recoveries.
        let ours = |r: Resource| match r {
            Resource::Recovery => id.parse::<u64>().is_ok(),
            _ => is_uuid(&id),
        };
        let action = match (resource, event) {
            (Some(r), "updated") => NoticeAction::Changed {
                resource: r,
                record: ours(r).then(|| id.clone()),
                window: None,
            },
            (Some(r), "deleted") if ours(r) => NoticeAction::Deleted {
                resource: r,
                record: id.clone(),
            },
            (Some(_), "deleted") => {
                NoticeAction::Ignored(format!("{kind} names {id}, not a key we store it under"))
            }
            _ => NoticeAction::Ignored(kind.to_string()),
        };
        let key = if trace.is_empty() {
            digest_key(&[ID, kind, &id, &user])
        } else {
            format!("{trace}:{kind}:{id}")
        };
        Ok(vec![Notice {
            user,
            key,
            action,
            at: None,
        }])
    }
}

/// A UUID in its hyphenated text form (WHOOP v2's workout and sleep ids).
fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

/// `timezone_offset` (`"-05:00"`, `"+05:30"`, `"Z"`; required on every record type that
/// has it) in seconds east of UTC.
fn tz_offset(v: &Value) -> Result<i32, ProviderError> {
    offset_secs(req_str(v, "timezone_offset")?, "timezone_offset")
}

/// A required RFC 3339 instant, parsed (and within the years RFC 3339 can write).
fn parse_instant(v: &Value, field: &str) -> Result<DateTime<Utc>, ProviderError> {
    utc_instant(req_str(v, field)?, field).map(|(t, _)| t)
}

/// The user's wall-clock date at `t`, given their offset (within ±18 h, as
/// `offset_secs` guarantees; an impossible offset reads as UTC).
fn local_date(t: DateTime<Utc>, offset: i32) -> NaiveDate {
    match FixedOffset::east_opt(offset) {
        Some(tz) => t.with_timezone(&tz).date_naive(),
        None => t.date_naive(),
    }
}

fn date(d: NaiveDate) -> Value {
    json!(d.format("%Y-%m-%d").to_string())
}

/// A duration in milliseconds → whole seconds (rounded), `null` when absent; one too
/// large for an integer is an error naming the field.
fn millis(v: &Value, path: &str) -> Result<Option<i64>, ProviderError> {
    opt_f64(v, path)?
        .map(|ms| to_i64(ms / 1000.0, path))
        .transpose()
}

/// A measurement rounded to `decimals` (0 gives an integer): WHOOP's floats carry float32
/// noise (`sleep_efficiency_percentage: 91.69533848`, `respiratory_rate: 16.11328125`).
fn rounded(v: &Value, path: &str, decimals: i32) -> Result<Value, ProviderError> {
    Ok(match opt_f64(v, path)? {
        None => Value::Null,
        Some(x) if decimals == 0 => int(Some(to_i64(x, path)?)),
        Some(x) => {
            let p = 10f64.powi(decimals);
            num(Some((x * p).round() / p))
        }
    })
}

/// `score_state`: `PENDING_SCORE` (WHOOP is still evaluating) may still change, so it is
/// `tentative`; `SCORED` and `UNSCORABLE` (final: "could not be scored") are `confirmed`.
/// Unknown future states read as confirmed rather than failing the page.
fn state(v: &Value) -> Result<Value, ProviderError> {
    Ok(json!(
        if opt_str(v, "score_state")? == Some("PENDING_SCORE") {
            "tentative"
        } else {
            "confirmed"
        }
    ))
}

/// WorkoutV2. `score` (strain, heart rate, kJ, distance, altitude) only when SCORED.
fn workout(v: &Value) -> Result<Record, ProviderError> {
    let offset = tz_offset(v)?;
    let start = parse_instant(v, "start")?;
    let end = parse_instant(v, "end")?;
    // A workout is one continuous recording: WHOOP reports no pauses.
    let secs = (end - start).num_seconds();
    // `sport_name` is a lowercase, hyphenated slug (`hiking-rucking`, `functional-fitness`;
    // open-wearables' mapping table), a free string as far as the OAS goes: unknown
    // sports pass through as slugs instead of failing.
    let slug = slug(opt_str(v, "sport_name")?.unwrap_or("unknown"));
    let distance = opt_f64(v, "score.distance_meter")?;
    Ok(Record {
        resource: Resource::Workouts,
        provider_id: req_id(v, "id")?,
        fields: fields(vec![
            ("source", source(ID, "wrist")),
            // WHOOP workouts have no user-given name.
            ("title", json!(display_name(&slug))),
            ("sport", json!({"name": display_name(&slug), "slug": slug})),
            ("time_start", json!(format_utc(start))),
            ("time_end", json!(format_utc(end))),
            ("timezone_offset", json!(offset)),
            ("moving_time", json!(secs)),
            // Metres; one decimal drops the float32 noise (`1772.77035916`).
            ("distance", rounded(v, "score.distance_meter", 1)?),
            // `kilojoule` is energy expended, kJ.
            (
                "calories",
                num(opt_f64(v, "score.kilojoule")?.map(kj_to_kcal)),
            ),
            ("average_hr", number(v, "score.average_heart_rate")?),
            ("max_hr", number(v, "score.max_heart_rate")?),
            // Altitude climbed, never counting descents (OAS altitude_gain_meter).
            (
                "total_elevation_gain",
                rounded(v, "score.altitude_gain_meter", 1)?,
            ),
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

/// Sleep, naps included, each with Vital's `type`. WHOOP's sleep doc
/// (<https://developer.whoop.com/docs/developing/user-data/sleep/>): "In addition to the
/// sleep activity that starts a Cycle, a member can also take naps throughout the Cycle.
/// WHOOP sets the field nap to true on a Sleep that is a Nap". So `nap: false` is the
/// cycle's main sleep (`long_sleep`) and `nap: true` a nap WHOOP names as such
/// (`acknowledged_nap`, Vital's only explicit nap type); `nap` is required by the OAS,
/// so its absence says nothing (`unknown`). Stage times are milliseconds.
fn sleep(v: &Value) -> Result<Record, ProviderError> {
    let kind = match v.get("nap") {
        Some(Value::Bool(true)) => sleep_type::ACKNOWLEDGED_NAP,
        Some(Value::Bool(false)) => sleep_type::LONG_SLEEP,
        None | Some(Value::Null) => sleep_type::UNKNOWN,
        Some(other) => {
            return Err(ProviderError::malformed(
                "nap",
                format!("expected a boolean, got {other}"),
            ))
        }
    };
    let offset = tz_offset(v)?;
    let start = parse_instant(v, "start")?;
    let end = parse_instant(v, "end")?;
    let stage = |k: &str| millis(v, &format!("score.stage_summary.{k}"));
    let (light, deep, rem) = (
        stage("total_light_sleep_time_milli")?,
        stage("total_slow_wave_sleep_time_milli")?,
        stage("total_rem_sleep_time_milli")?,
    );
    // In bed = the scored in-bed time, or before scoring the recorded bounds.
    let in_bed = stage("total_in_bed_time_milli")?.unwrap_or((end - start).num_seconds());
    let total = match (light, deep, rem) {
        (Some(l), Some(d), Some(r)) => Some(
            l.checked_add(d)
                .and_then(|x| x.checked_add(r))
                .ok_or_else(|| {
                    ProviderError::malformed("score.stage_summary", "stage times overflow")
                })?,
        ),
        _ => None,
    };
    Ok(Record {
        resource: Resource::Sleep,
        provider_id: req_id(v, "id")?,
        fields: fields(vec![
            ("source", source(ID, "wrist")),
            // The night belongs to the day you wake up (as Oura's `day`).
            ("calendar_date", date(local_date(end, offset))),
            ("type", json!(kind)),
            ("bedtime_start", json!(format_utc(start))),
            ("bedtime_stop", json!(format_utc(end))),
            ("timezone_offset", json!(offset)),
            ("duration", json!(in_bed)),
            ("total", int(total)),
            ("awake", int(stage("total_awake_time_milli")?)),
            ("light", int(light)),
            ("rem", int(rem)),
            // Slow wave sleep (SWS) is deep sleep.
            ("deep", int(deep)),
            (
                "efficiency",
                rounded(v, "score.sleep_efficiency_percentage", 1)?,
            ),
            // WHOOP's sleep carries no heart rate or HRV: they are in the recovery.
            ("hr_average", Value::Null),
            ("hr_lowest", Value::Null),
            ("average_hrv", Value::Null),
            ("respiratory_rate", rounded(v, "score.respiratory_rate", 1)?),
            ("state", state(v)?),
        ]),
    })
}

/// Recovery: one per cycle, with no id of its own (OAS Recovery: `cycle_id`, `sleep_id`),
/// so its key is the cycle id. It has no offset and no start, only `created_at` (when it
/// was scored, on waking): its calendar date is that instant's UTC date, which is the
/// day of waking except for users east of UTC who wake before their offset's hours
/// (UTC+9 waking at 07:00 is 22:00 UTC the day before). The cycle's activity record has
/// the exact local date.
fn recovery(v: &Value) -> Result<Record, ProviderError> {
    let created = parse_instant(v, "created_at")?;
    Ok(Record {
        resource: Resource::Recovery,
        provider_id: req_id(v, "cycle_id")?,
        fields: fields(vec![
            ("source", source(ID, "wrist")),
            ("calendar_date", date(created.date_naive())),
            ("recovery_score", rounded(v, "score.recovery_score", 0)?),
            ("resting_hr", rounded(v, "score.resting_heart_rate", 0)?),
            ("average_hrv", rounded(v, "score.hrv_rmssd_milli", 1)?),
            // Only on WHOOP 4.0 and later (OAS).
            ("spo2", rounded(v, "score.spo2_percentage", 1)?),
            (
                "skin_temperature",
                rounded(v, "score.skin_temp_celsius", 1)?,
            ),
            ("state", state(v)?),
        ]),
    })
}

/// Cycle → activity day. A cycle runs from one sleep onset to the next (the open cycle
/// has no `end`), so it usually starts the evening *before* the day it covers: its
/// calendar date is the local date 12 hours after its start, the day whose waking hours
/// it holds (21:00 on the 19th → the 20th; 00:40 on the 21st → the 21st). That matches
/// the sleep it starts with (dated by its wake-up) and that cycle's recovery.
fn cycle(v: &Value) -> Result<Record, ProviderError> {
    let offset = tz_offset(v)?;
    let start = parse_instant(v, "start")?;
    Ok(Record {
        resource: Resource::Activity,
        provider_id: req_id(v, "id")?,
        fields: fields(vec![
            ("source", source(ID, "wrist")),
            (
                "calendar_date",
                date(local_date(plus_secs(start, 12 * 3600, "start")?, offset)),
            ),
            ("timezone_offset", json!(offset)),
            // WHOOP counts no steps.
            ("steps", Value::Null),
            // Kilojoules expended over the whole cycle: total, not active, energy.
            (
                "calories_total",
                num(opt_f64(v, "score.kilojoule")?.map(kj_to_kcal)),
            ),
            ("calories_active", Value::Null),
            ("daily_movement", Value::Null),
            // Day strain, WHOOP's 0–21 cardiovascular load, one decimal as WHOOP shows it.
            ("strain", rounded(v, "score.strain", 1)?),
        ]),
    })
}

/// The fixture server's WHOOP: the OAS filtering (`start` inclusive, `end` exclusive,
/// compared with each record's `start`; recoveries, which have none, by `created_at`),
/// newest first, `limit` 1–25 (default 10), and an opaque `nextToken` shaped like the
/// one in the pagination doc (base64 of `{"$":"o@1","o":<offset>}`).
pub struct WhoopFixtures;

fn encode_token(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!(r#"{{"$":"o@1","o":{offset}}}"#))
}

fn decode_token(token: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    v.get("o")?.as_u64().and_then(|o| usize::try_from(o).ok())
}

impl Impersonation for WhoopFixtures {
    /// Every reply (RATE, "Rate Limit Information"): `X-RateLimit-Limit` with the limit
    /// closest to being reached first, then each window as `limit;window=seconds`;
    /// `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds) for that closest window.
    fn rate_limit_headers(
        &self,
        windows: &[WindowCount],
        _refused: Option<usize>,
        _now: DateTime<Utc>,
    ) -> Vec<(&'static str, String)> {
        let Some(closest) = windows
            .iter()
            .min_by_key(|w| w.limit.saturating_sub(w.used))
        else {
            return vec![];
        };
        let policies: Vec<String> = windows
            .iter()
            .map(|w| format!("{};window={}", w.limit, w.window.period_secs))
            .collect();
        vec![
            (
                "x-ratelimit-limit",
                format!("{}, {}", closest.limit, policies.join(", ")),
            ),
            (
                "x-ratelimit-remaining",
                closest.limit.saturating_sub(closest.used).to_string(),
            ),
            ("x-ratelimit-reset", closest.reset_secs.to_string()),
        ]
    }

    fn fixture(&self, path: &str) -> Option<&'static str> {
        Some(match path {
            "oauth/token.json" => include_str!("../../fixtures/whoop/oauth/token.json"),
            "oauth/profile.json" => include_str!("../../fixtures/whoop/oauth/profile.json"),
            "oauth/refresh.json" => include_str!("../../fixtures/whoop/oauth/refresh.json"),
            "oauth/invalid_grant.json" => {
                include_str!("../../fixtures/whoop/oauth/invalid_grant.json")
            }
            "errors/400.json" => include_str!("../../fixtures/whoop/errors/400.json"),
            "errors/401.json" => include_str!("../../fixtures/whoop/errors/401.json"),
            "errors/403.json" => include_str!("../../fixtures/whoop/errors/403.json"),
            "errors/404.json" => include_str!("../../fixtures/whoop/errors/404.json"),
            "errors/429.json" => include_str!("../../fixtures/whoop/errors/429.json"),
            "errors/500.json" => include_str!("../../fixtures/whoop/errors/500.json"),
            "data/workouts.json" => include_str!("../../fixtures/whoop/data/workouts.json"),
            "data/workouts.changed.json" => {
                include_str!("../../fixtures/whoop/data/workouts.changed.json")
            }
            "data/sleep.json" => include_str!("../../fixtures/whoop/data/sleep.json"),
            "data/sleep.changed.json" => {
                include_str!("../../fixtures/whoop/data/sleep.changed.json")
            }
            "data/recovery.json" => include_str!("../../fixtures/whoop/data/recovery.json"),
            "data/recovery.changed.json" => {
                include_str!("../../fixtures/whoop/data/recovery.changed.json")
            }
            "data/activity.json" => include_str!("../../fixtures/whoop/data/activity.json"),
            "data/activity.changed.json" => {
                include_str!("../../fixtures/whoop/data/activity.changed.json")
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
        let limit: usize = match params.get("limit") {
            Some(l) => l
                .parse()
                .map_err(|_| format!("limit must be an integer, got `{l}`"))?,
            None => 10,
        };
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(format!("limit must be between 1 and {MAX_LIMIT}"));
        }
        let bound = |k: &str| {
            params
                .get(k)
                .map(|s| {
                    DateTime::parse_from_rfc3339(s)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| format!("{k} `{s}` is not a date-time: {e}"))
                })
                .transpose()
        };
        let start = bound("start")?;
        // OAS: "If not specified, `end` will be set to `now`".
        let end = bound("end")?.unwrap_or_else(Utc::now);
        let offset = match params.get("nextToken") {
            Some(t) => decode_token(t).ok_or_else(|| format!("invalid nextToken `{t}`"))?,
            None => 0,
        };
        let key = if resource.name == Resource::Recovery {
            "created_at"
        } else {
            "start"
        };
        let mut selected: Vec<(DateTime<Utc>, &Value)> = items
            .iter()
            .filter_map(|i| {
                i[key]
                    .as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| (t.with_timezone(&Utc), i))
            })
            .filter(|(t, _)| start.is_none_or(|s| *t >= s) && *t < end)
            .collect();
        // OAS: "sorted by start time in descending order".
        selected.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
        let page: Vec<&Value> = selected
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(_, v)| *v)
            .collect();
        let mut out = json!({ "records": page });
        // A forged token may carry any offset: add without overflowing.
        let after = offset.saturating_add(limit);
        if after < selected.len() {
            out["next_token"] = json!(encode_token(after));
        }
        Ok(out)
    }

    /// WHOOP's token endpoint is Ory Hydra-style (fosite's texts): a refused code or
    /// refresh token is RFC 6749's 400 `invalid_grant` (prankstr/hassio-whoop#13).
    fn invalid_grant_status(&self) -> u16 {
        400
    }

    /// `GET /v2/user/profile/basic`, the identity read after the code exchange.
    fn static_reply(&self, path: &str) -> Option<&'static str> {
        (path == "/v2/user/profile/basic").then(|| self.fixture("oauth/profile.json"))?
    }

    /// `/v2/activity/workout/{uuid}`, `/v2/activity/sleep/{uuid}` and
    /// `/v2/cycle/{cycleId}/recovery`.
    fn record_path(&self, path: &str) -> Option<(Resource, String)> {
        if let Some(id) = path.strip_prefix("/v2/activity/workout/") {
            return is_uuid(id).then(|| (Resource::Workouts, id.to_string()));
        }
        if let Some(id) = path.strip_prefix("/v2/activity/sleep/") {
            return is_uuid(id).then(|| (Resource::Sleep, id.to_string()));
        }
        let id = path.strip_prefix("/v2/cycle/")?.strip_suffix("/recovery")?;
        id.parse::<u64>()
            .is_ok()
            .then(|| (Resource::Recovery, id.to_string()))
    }

    /// The collection's item with that id (a recovery: that `cycle_id`), or a 404.
    fn serve_record(&self, resource: Resource, key: &str, items: &[Value]) -> Option<Value> {
        let field = match resource {
            Resource::Workouts | Resource::Sleep => "id",
            Resource::Recovery => "cycle_id",
            _ => return None,
        };
        items
            .iter()
            .find(|i| i.get(field).and_then(id_text).as_deref() == Some(key))
            .cloned()
    }

    /// The v2 webhook WEBHOOKS describes, `{user_id, id, type, trace_id}`, for a workout,
    /// sleep or recovery (there are no cycle or deauthorization webhooks), signed with
    /// the client secret at `now` in milliseconds. WHOOP's webhook URL is set in its
    /// developer dashboard: the fixture server's configured subscription is the callback.
    fn push_for(
        &self,
        change: &FixtureChange<'_>,
        subscriptions: &[FixtureSubscription],
        secrets: &PushSecrets,
        now: DateTime<Utc>,
    ) -> Vec<(String, OutboundPush)> {
        let object = match change.resource {
            Resource::Workouts => "workout",
            Resource::Sleep => "sleep",
            Resource::Recovery => "recovery",
            _ => return vec![],
        };
        let event = match change.kind {
            FixtureChangeKind::Created | FixtureChangeKind::Updated => "updated",
            FixtureChangeKind::Deleted => "deleted",
            FixtureChangeKind::Deauthorized => return vec![],
        };
        let (Some(record), Ok(user)) = (change.record, change.user.parse::<i64>()) else {
            return vec![];
        };
        let id = match record.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => json!(record),
        };
        let kind = format!("{object}.{event}");
        let trace = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("{kind}|{record}|{}", change.at.timestamp_millis()).as_bytes(),
        );
        let body = json!({"user_id": user, "id": id, "type": kind, "trace_id": trace.to_string()})
            .to_string()
            .into_bytes();
        let ts = now.timestamp_millis().to_string();
        let sig = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(
            secrets.client_secret.as_bytes(),
            &[ts.as_bytes(), &body],
        ));
        subscriptions
            .iter()
            .map(|s| {
                (
                    s.callback_url.clone(),
                    OutboundPush {
                        headers: vec![
                            ("X-WHOOP-Signature".into(), sig.clone()),
                            ("X-WHOOP-Signature-Timestamp".into(), ts.clone()),
                        ],
                        query: vec![],
                        content_type: "application/json",
                        body: body.clone(),
                    },
                )
            })
            .collect()
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

    /// RATE's example: the minute window is closest to its limit and 98 remain of it; a
    /// 429's headers name the exhausted window and when it resets.
    #[test]
    fn the_rate_limit_headers_are_read_as_documented() {
        let r = Whoop.rate_report(&headers(&[
            (
                "x-ratelimit-limit",
                "100, 100;window=60, 10000;window=86400",
            ),
            ("x-ratelimit-remaining", "98"),
            ("x-ratelimit-reset", "3"),
        ]));
        assert_eq!(
            r.usage,
            vec![super::super::WindowUsage {
                period_secs: Some(60),
                used: 2,
                limit: Some(100)
            }]
        );
        assert_eq!(r.reset_after, None);
        let r = Whoop.rate_report(&headers(&[
            (
                "x-ratelimit-limit",
                "10000, 100;window=60, 10000;window=86400",
            ),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "7200"),
        ]));
        assert_eq!(r.usage[0].period_secs, Some(86_400));
        assert_eq!(r.usage[0].used, 10_000);
        assert_eq!(r.reset_after, Some(Duration::from_secs(7200)));
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn page(resource: &str, n: u32) -> Vec<u8> {
        std::fs::read(format!(
            "{}/fixtures/whoop/pages/{resource}/page_{n}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn spec(name: Resource) -> ResourceSpec {
        crate::providers::find("whoop")
            .unwrap()
            .resource(name)
            .unwrap()
            .clone()
    }

    fn one(resource: Resource, record: Value) -> Result<Page, ProviderError> {
        Whoop.parse_page(
            resource,
            json!({ "records": [record] }).to_string().as_bytes(),
            None,
        )
    }

    fn data(file: &str) -> Vec<Value> {
        serde_json::from_str(WhoopFixtures.fixture(&format!("data/{file}")).unwrap()).unwrap()
    }

    #[test]
    fn given_a_captured_page_with_next_token_when_parsed_then_the_token_chains_to_a_last_page_without_one(
    ) {
        for r in [
            Resource::Workouts,
            Resource::Sleep,
            Resource::Recovery,
            Resource::Activity,
        ] {
            let p1 = Whoop.parse_page(r, &page(r.as_str(), 1), None).unwrap();
            let token = p1
                .next
                .clone()
                .unwrap_or_else(|| panic!("{r}: page 1 has a next_token"));
            assert!(!p1.records.is_empty(), "{r}");
            let p2 = Whoop
                .parse_page(r, &page(r.as_str(), 2), Some(&token))
                .unwrap();
            assert_eq!(p2.next, None, "{r}: page 2 is the last");
        }
        // Absent, null and empty all mean "last page".
        for body in [
            r#"{"records": []}"#,
            r#"{"records": [], "next_token": null}"#,
            r#"{"records": [], "next_token": ""}"#,
        ] {
            assert_eq!(
                Whoop
                    .parse_page(Resource::Sleep, body.as_bytes(), None)
                    .unwrap()
                    .next,
                None,
                "{body}"
            );
        }
    }

    #[test]
    fn follow_up_requests_repeat_the_window_and_add_next_token() {
        let w = Window {
            start: at("2026-10-01T00:00:00Z"),
            end: at("2026-10-25T00:00:00Z"),
        };
        let first = Whoop.page_request(&spec(Resource::Sleep), &w, None);
        assert_eq!(
            (first.method, first.path.as_str()),
            ("GET", "/v2/activity/sleep")
        );
        let q =
            |r: &PageRequest, k: &str| r.query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(
            q(&first, "start").as_deref(),
            Some("2026-10-01T00:00:00.000Z")
        );
        assert_eq!(
            q(&first, "end").as_deref(),
            Some("2026-10-25T00:00:00.000Z")
        );
        assert_eq!(q(&first, "limit").as_deref(), Some("25"));
        assert_eq!(q(&first, "nextToken"), None);
        let next = Whoop.page_request(&spec(Resource::Sleep), &w, Some("eyIkIjoib0AxIiwibyI6MjV9"));
        assert_eq!(
            q(&next, "nextToken").as_deref(),
            Some("eyIkIjoib0AxIiwibyI6MjV9")
        );
        assert_eq!(q(&next, "start"), q(&first, "start"));
    }

    #[test]
    fn milliseconds_become_seconds_and_kilojoules_kilocalories() {
        let sleep = json!({
            "id": "s", "cycle_id": 1, "start": "2026-11-20T04:00:00.000Z", "end": "2026-11-20T12:00:00.000Z",
            "timezone_offset": "-05:00", "nap": false, "score_state": "SCORED",
            "score": {"stage_summary": {
                "total_in_bed_time_milli": 28_800_000, "total_awake_time_milli": 1_499, "total_no_data_time_milli": 0,
                "total_light_sleep_time_milli": 14_400_500, "total_slow_wave_sleep_time_milli": 7_200_000,
                "total_rem_sleep_time_milli": 5_400_000},
                "respiratory_rate": 16.11328125, "sleep_efficiency_percentage": 91.69533848}
        });
        let r = one(Resource::Sleep, sleep).unwrap().records[0].to_json();
        assert_eq!(r["duration"], 28_800);
        assert_eq!(r["awake"], 1, "1499 ms rounds to 1 s");
        assert_eq!(r["light"], 14_401, "14400.5 s rounds half away from zero");
        assert_eq!(
            (r["deep"].clone(), r["rem"].clone()),
            (json!(7_200), json!(5_400))
        );
        assert_eq!(r["total"], 14_401 + 7_200 + 5_400);
        assert_eq!(
            (r["efficiency"].clone(), r["respiratory_rate"].clone()),
            (json!(91.7), json!(16.1))
        );
        assert_eq!(
            (r["timezone_offset"].clone(), r["calendar_date"].clone()),
            (json!(-18_000), json!("2026-11-20"))
        );
        let workout = json!({
            "id": "w", "start": "2026-11-20T12:00:00.000Z", "end": "2026-11-20T12:40:00.000Z", "timezone_offset": "+05:30",
            "sport_name": "running", "score_state": "SCORED",
            "score": {"strain": 8.2463, "average_heart_rate": 123, "max_heart_rate": 146, "kilojoule": 1000.0,
                      "percent_recorded": 100.0, "distance_meter": 6000.04, "altitude_gain_meter": 46.64384460449}
        });
        let r = one(Resource::Workouts, workout).unwrap().records[0].to_json();
        assert_eq!(r["calories"], 239.0);
        assert_eq!(
            (r["moving_time"].clone(), r["average_speed"].clone()),
            (json!(2_400), json!(2.5))
        );
        assert_eq!(
            (r["distance"].clone(), r["total_elevation_gain"].clone()),
            (json!(6000.0), json!(46.6))
        );
        assert_eq!(
            (
                r["average_hr"].clone(),
                r["max_hr"].clone(),
                r["timezone_offset"].clone()
            ),
            (json!(123), json!(146), json!(19_800))
        );
        let cycle = json!({"id": 93845, "start": "2026-11-20T02:00:00.000Z", "end": "2026-11-21T03:00:00.000Z",
                           "timezone_offset": "-05:00", "score_state": "SCORED",
                           "score": {"strain": 5.2951527, "kilojoule": 8288.297, "average_heart_rate": 68, "max_heart_rate": 141}});
        let r = one(Resource::Activity, cycle).unwrap().records[0].to_json();
        assert_eq!(
            (
                r["calories_total"].clone(),
                r["strain"].clone(),
                r["provider_id"].clone()
            ),
            (json!(1981.0), json!(5.3), json!("93845"))
        );
    }

    #[test]
    fn unscored_records_are_kept_with_null_measurements() {
        let pending_sleep = json!({"id": "s", "cycle_id": 1, "start": "2026-11-21T03:07:02.723Z", "end": "2026-11-21T11:26:34.297Z",
                                   "timezone_offset": "-05:00", "nap": false, "score_state": "PENDING_SCORE"});
        let r = one(Resource::Sleep, pending_sleep).unwrap().records[0].to_json();
        assert_eq!(r["state"], "tentative");
        assert_eq!(
            r["duration"], 29_971,
            "before scoring, time in bed is the recorded bounds"
        );
        for k in [
            "total",
            "awake",
            "light",
            "rem",
            "deep",
            "efficiency",
            "respiratory_rate",
        ] {
            assert!(r[k].is_null(), "{k}");
        }
        let unscorable = json!({"cycle_id": 7, "sleep_id": "s", "created_at": "2026-10-10T10:40:00.000Z", "score_state": "UNSCORABLE"});
        let r = one(Resource::Recovery, unscorable).unwrap().records[0].to_json();
        assert_eq!(
            (
                r["state"].clone(),
                r["provider_id"].clone(),
                r["calendar_date"].clone()
            ),
            (json!("confirmed"), json!("7"), json!("2026-10-10"))
        );
        for k in [
            "recovery_score",
            "resting_hr",
            "average_hrv",
            "spo2",
            "skin_temperature",
        ] {
            assert!(r[k].is_null(), "{k}");
        }
        let pending_workout = json!({"id": "w", "start": "2026-11-20T12:00:00.000Z", "end": "2026-11-20T12:30:00.000Z",
                                     "timezone_offset": "Z", "sport_name": "cycling", "score_state": "PENDING_SCORE"});
        let r = one(Resource::Workouts, pending_workout).unwrap().records[0].to_json();
        assert_eq!(
            (r["moving_time"].clone(), r["timezone_offset"].clone()),
            (json!(1_800), json!(0))
        );
        assert!(
            r["calories"].is_null()
                && r["distance"].is_null()
                && r["average_hr"].is_null()
                && r["average_speed"].is_null()
        );
        // The cycle in progress has no `end` and may have no score yet.
        let open = json!({"id": 2, "start": "2026-11-22T05:15:02.679Z", "timezone_offset": "-05:00", "score_state": "PENDING_SCORE"});
        let r = one(Resource::Activity, open).unwrap().records[0].to_json();
        assert!(r["calories_total"].is_null() && r["strain"].is_null() && r["steps"].is_null());
        assert_eq!(r["calendar_date"], "2026-11-22");
    }

    #[test]
    fn an_unknown_sport_passes_through_as_a_slug() {
        let w = |sport: Option<&str>| {
            let mut v = json!({"id": "w", "start": "2026-11-06T14:22:40.000Z", "end": "2026-11-06T16:14:54.000Z",
                               "timezone_offset": "-05:00", "score_state": "SCORED"});
            if let Some(s) = sport {
                v["sport_name"] = json!(s);
            }
            one(Resource::Workouts, v).unwrap().records[0].to_json()
        };
        assert_eq!(
            w(Some("roller-derby"))["sport"],
            json!({"name": "Roller derby", "slug": "roller_derby"})
        );
        assert_eq!(w(Some("hiking-rucking"))["title"], "Hiking rucking");
        assert_eq!(w(None)["sport"]["slug"], "unknown");
        // The captured page holds one too.
        let p = Whoop
            .parse_page(Resource::Workouts, &page("workouts", 2), None)
            .unwrap();
        assert!(p
            .records
            .iter()
            .any(|r| r.fields["sport"]["slug"] == "roller_derby"));
    }

    #[test]
    fn naps_are_records_typed_as_naps_and_an_unknown_score_state_does_not_fail() {
        let p = Whoop
            .parse_page(Resource::Sleep, &page("sleep", 1), None)
            .unwrap();
        let raw: Value = serde_json::from_slice(&page("sleep", 1)).unwrap();
        let raw = raw["records"].as_array().unwrap();
        assert_eq!(p.records.len(), raw.len(), "naps are sleep too");
        assert!(p.removals.is_empty());
        for (r, src) in p.records.iter().zip(raw) {
            let want = if src["nap"] == true {
                "acknowledged_nap"
            } else {
                "long_sleep"
            };
            assert_eq!(r.fields["type"], want, "{}", r.provider_id);
        }
        assert_eq!(
            p.records
                .iter()
                .filter(|r| r.fields["type"] == "acknowledged_nap")
                .count(),
            1
        );
        let no_flag = json!({"id": "s", "start": "2026-11-20T04:00:00Z", "end": "2026-11-20T11:00:00Z",
                             "timezone_offset": "-05:00", "score_state": "PENDING_SCORE"});
        assert_eq!(
            one(Resource::Sleep, no_flag).unwrap().records[0].fields["type"],
            "unknown"
        );
        let odd = json!({"id": "s", "start": "2026-11-20T04:00:00Z", "end": "2026-11-20T11:00:00Z", "timezone_offset": "-05:00",
                         "nap": false, "score_state": "SOMETHING_NEW"});
        assert_eq!(
            one(Resource::Sleep, odd).unwrap().records[0].fields["state"],
            "confirmed"
        );
    }

    #[test]
    fn a_malformed_field_names_its_path() {
        let mut items: Vec<Value> = serde_json::from_slice::<Value>(&page("sleep", 2)).unwrap()
            ["records"]
            .as_array()
            .unwrap()
            .clone();
        items[1]["score"]["stage_summary"]["total_rem_sleep_time_milli"] = json!("lots");
        let body = json!({ "records": items }).to_string();
        match Whoop.parse_page(Resource::Sleep, body.as_bytes(), None) {
            Err(ProviderError::Malformed { field, .. }) => assert_eq!(
                field,
                "records[1].score.stage_summary.total_rem_sleep_time_milli"
            ),
            other => panic!("expected a malformed error, got {other:?}"),
        }
        let field = |r: Resource, v: Value| match one(r, v) {
            Err(ProviderError::Malformed { field, .. }) => field,
            other => panic!("expected a malformed error, got {other:?}"),
        };
        assert_eq!(
            field(
                Resource::Activity,
                json!({"id": 1, "start": "2026-11-20T04:00:00Z", "timezone_offset": "EST"})
            ),
            "records[0].timezone_offset"
        );
        assert_eq!(
            field(
                Resource::Recovery,
                json!({"cycle_id": 1, "created_at": "this morning"})
            ),
            "records[0].created_at"
        );
        assert_eq!(
            field(
                Resource::Workouts,
                json!({"start": "2026-11-20T04:00:00Z", "end": "2026-11-20T05:00:00Z", "timezone_offset": "Z"})
            ),
            "records[0].id"
        );
        assert_eq!(
            field(Resource::Sleep, json!({"id": "s", "nap": "no"})),
            "records[0].nap"
        );
        assert!(
            matches!(Whoop.parse_page(Resource::Sleep, b"{\"records\": 3}", None), Err(ProviderError::Malformed { ref field, .. }) if field == "records")
        );
        assert!(matches!(
            Whoop.parse_page(Resource::Sleep, b"<html>", None),
            Err(ProviderError::Malformed { .. })
        ));
        assert!(matches!(
            Whoop.parse_page(Resource::Heartrate, b"{\"records\": [{}]}", None),
            Err(ProviderError::Malformed { .. })
        ));
    }

    #[test]
    fn calendar_dates_follow_the_day_woken_into() {
        let cycle = |start: &str, tz: &str| {
            one(
                Resource::Activity,
                json!({"id": 1, "start": start, "timezone_offset": tz, "score_state": "SCORED"}),
            )
            .unwrap()
            .records[0]
                .fields["calendar_date"]
                .clone()
        };
        assert_eq!(
            cycle("2026-11-20T02:00:00.000Z", "-05:00"),
            "2026-11-20",
            "21:00 on the 19th covers the 20th"
        );
        assert_eq!(
            cycle("2026-11-21T05:40:00.000Z", "-05:00"),
            "2026-11-21",
            "00:40 on the 21st covers the 21st"
        );
        assert_eq!(cycle("2026-09-12T21:30:00.000Z", "+01:00"), "2026-09-13");
        // The night the clocks went back: asleep at 23:12 EDT, awake at 06:48 EST.
        let dst = one(Resource::Sleep, json!({"id": "s", "start": "2026-11-01T03:12:49.226Z", "end": "2026-11-01T11:48:02.000Z",
                                             "timezone_offset": "-05:00", "nap": false, "score_state": "PENDING_SCORE"}))
        .unwrap();
        assert_eq!(dst.records[0].fields["calendar_date"], "2026-11-01");
        assert_eq!(
            dst.records[0].fields["duration"], 30_912,
            "8 h 35 min by the instants, not 7 h 36 min by the wall clock"
        );
    }

    #[test]
    fn token_fixtures_parse_as_oauth_replies() {
        for f in ["oauth/token.json", "oauth/refresh.json"] {
            let text = WhoopFixtures.fixture(f).unwrap();
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(v["token_type"], "bearer", "{f}");
            assert_eq!(v["expires_in"], 3600, "{f}");
            assert!(
                v["access_token"].is_string() && v["refresh_token"].is_string(),
                "{f}: offline scope → refresh token"
            );
            assert!(
                v["scope"]
                    .as_str()
                    .unwrap()
                    .split(' ')
                    .any(|s| s == "offline"),
                "{f}"
            );
            assert_eq!(
                Whoop.token_reply(200, text.as_bytes()).unwrap(),
                text.as_bytes()
            );
            assert_eq!(
                Whoop.external_user_id(&v),
                None,
                "the token reply names no user"
            );
        }
        let refused: Value =
            serde_json::from_str(WhoopFixtures.fixture("oauth/invalid_grant.json").unwrap())
                .unwrap();
        assert_eq!(refused["error"], "invalid_grant");
        assert_eq!(WhoopFixtures.invalid_grant_status(), 400);
    }

    #[test]
    fn errors_read_by_status_and_an_inactive_membership_is_a_refusal() {
        let body = |s: u16| {
            WhoopFixtures
                .fixture(&format!("errors/{s}.json"))
                .unwrap()
                .as_bytes()
        };
        assert!(matches!(
            Whoop.classify_error(401, None, body(401)),
            ProviderError::Unauthorized(_)
        ));
        assert!(matches!(
            Whoop.classify_error(403, None, body(403)),
            ProviderError::Refused(_)
        ));
        assert!(matches!(
            Whoop.classify_error(403, None, b""),
            ProviderError::ScopeNotGranted(_)
        ));
        assert!(
            matches!(Whoop.classify_error(429, Some(Duration::from_secs(7)), body(429)), ProviderError::RateLimited { retry_after: Some(d) } if d.as_secs() == 7)
        );
        assert!(matches!(
            Whoop.classify_error(500, None, body(500)),
            ProviderError::Transient(_)
        ));
        assert!(matches!(
            Whoop.classify_error(400, None, body(400)),
            ProviderError::Refused(_)
        ));
        assert_eq!(WhoopFixtures.error_reply(404).0, 404);
    }

    #[test]
    fn the_fixture_server_filters_by_start_newest_first_and_limits_pages_to_25() {
        let items = data("sleep.json");
        let p = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        let s = spec(Resource::Sleep);
        assert!(WhoopFixtures
            .serve(&s, &p(&[("limit", "26")]), &items)
            .is_err());
        assert!(WhoopFixtures
            .serve(&s, &p(&[("limit", "0")]), &items)
            .is_err());
        assert!(WhoopFixtures
            .serve(&s, &p(&[("start", "yesterday")]), &items)
            .is_err());
        assert!(WhoopFixtures
            .serve(&s, &p(&[("nextToken", "nonsense")]), &items)
            .is_err());
        // `start` inclusive, `end` exclusive, by each record's start.
        let first = items[0]["start"].as_str().unwrap();
        let v = WhoopFixtures
            .serve(
                &s,
                &p(&[
                    ("start", first),
                    ("end", items[1]["start"].as_str().unwrap()),
                ]),
                &items,
            )
            .unwrap();
        assert_eq!(v["records"].as_array().unwrap().len(), 1);
        assert_eq!(v["records"][0]["id"], items[0]["id"]);
        assert!(v.get("next_token").is_none());
        // Default limit 10, newest first.
        let v = WhoopFixtures.serve(&s, &p(&[]), &items).unwrap();
        let starts: Vec<&str> = v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["start"].as_str().unwrap())
            .collect();
        assert_eq!(starts.len(), 10);
        assert!(starts.windows(2).all(|w| w[0] > w[1]));
        assert_eq!(starts[0], items.last().unwrap()["start"].as_str().unwrap());
        // Recoveries have no start: they are filtered by created_at.
        let recs = data("recovery.json");
        let (from, to) = (
            recs[5]["created_at"].as_str().unwrap(),
            recs[8]["created_at"].as_str().unwrap(),
        );
        let v = WhoopFixtures
            .serve(
                &spec(Resource::Recovery),
                &p(&[("start", from), ("end", to)]),
                &recs,
            )
            .unwrap();
        let got: Vec<&Value> = v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["cycle_id"])
            .collect();
        assert_eq!(
            got,
            vec![
                &recs[7]["cycle_id"],
                &recs[6]["cycle_id"],
                &recs[5]["cycle_id"]
            ]
        );
    }

    /// The runtime's loop against the fixture server: every record of a window exactly once.
    #[test]
    fn adapter_and_fixture_server_page_through_a_whole_window() {
        for (r, file) in [
            (Resource::Sleep, "sleep.json"),
            (Resource::Recovery, "recovery.json"),
            (Resource::Activity, "activity.json"),
            (Resource::Workouts, "workouts.json"),
        ] {
            let items = data(file);
            let w = Window {
                start: at("2026-08-01T00:00:00Z"),
                end: at("2026-11-23T00:00:00Z"),
            };
            let (mut cursor, mut seen, mut pages) = (None::<String>, Vec::new(), 0);
            loop {
                let req = Whoop.page_request(&spec(r), &w, cursor.as_deref());
                let params: HashMap<String, String> = req.query.into_iter().collect();
                let body = WhoopFixtures.serve(&spec(r), &params, &items).unwrap();
                let page = Whoop
                    .parse_page(r, body.to_string().as_bytes(), cursor.as_deref())
                    .unwrap();
                assert!(body["records"].as_array().unwrap().len() <= MAX_LIMIT);
                seen.extend(page.records.into_iter().map(|rec| rec.provider_id));
                pages += 1;
                match page.next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                (seen.len(), unique.len()),
                (items.len(), items.len()),
                "{r}: every item once, naps included"
            );
            assert_eq!(pages, items.len().div_ceil(MAX_LIMIT), "{r}");
        }
    }

    /// What the fixture server serves after moving dates forward (`+00:00`, not `Z`).
    #[test]
    fn shifted_instants_normalise_the_same_way() {
        let mut v: Value = serde_json::from_slice::<Value>(&page("activity", 1)).unwrap();
        let orig = Whoop
            .parse_page(Resource::Activity, v.to_string().as_bytes(), None)
            .unwrap();
        for rec in v["records"].as_array_mut().unwrap() {
            for k in ["created_at", "updated_at", "start", "end"] {
                if let Some(s) = rec[k].as_str() {
                    rec[k] = json!(DateTime::parse_from_rfc3339(s).unwrap().to_rfc3339());
                }
            }
        }
        assert_eq!(
            Whoop
                .parse_page(Resource::Activity, v.to_string().as_bytes(), None)
                .unwrap(),
            orig
        );
    }

    /// `.changed.json` = the same list with exactly one record edited and one appended,
    /// both inside the 3-day lookback of the recording day (2026-11-23).
    #[test]
    fn changed_data_edits_one_recent_record_and_appends_one() {
        for (r, key, id) in [
            ("workouts", "start", "id"),
            ("sleep", "start", "id"),
            ("recovery", "created_at", "cycle_id"),
            ("activity", "start", "id"),
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
            assert!(
                before.iter().zip(&after).all(|(a, b)| a[id] == b[id]),
                "{r}: same ids, same order"
            );
            let lookback = at("2026-11-21T00:00:00Z");
            for rec in [edited[0], after.last().unwrap()] {
                let t = at(rec[key].as_str().unwrap());
                assert!(
                    t >= lookback && t < at("2026-11-23T00:00:00Z"),
                    "{r}: {t} is inside every poll's lookback"
                );
            }
            let keys: Vec<DateTime<Utc>> =
                after.iter().map(|i| at(i[key].as_str().unwrap())).collect();
            assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{r}: oldest first");
        }
    }

    mod push {
        use super::super::*;
        use super::{data, spec};
        use crate::providers::push::testing::{at, Owned};

        const SECRET: &str = "wh00p-client-s3cret";
        /// 2026-11-27T12:00:00Z in milliseconds.
        const TS: &str = "1795780800000";

        fn secrets() -> PushSecrets {
            PushSecrets {
                client_id: "8d9c4f2a-whoop-client".into(),
                client_secret: SECRET.into(),
                ..PushSecrets::default()
            }
        }

        fn signed(body: &[u8], ts: &str, sig: &str, now: &str) -> Owned {
            Owned::new(
                &[
                    ("content-type", "application/json"),
                    ("x-whoop-signature", sig),
                    ("x-whoop-signature-timestamp", ts),
                ],
                &[],
                body,
                at(now),
            )
        }

        fn sign(ts: &str, body: &[u8]) -> String {
            base64::engine::general_purpose::STANDARD
                .encode(hmac_sha256(SECRET.as_bytes(), &[ts.as_bytes(), body]))
        }

        /// Computed independently: `base64(hmac.new(b"wh00p-client-s3cret",
        /// b"1795780800000" + open("fixtures/whoop/push/workout_updated.json","rb").read(),
        /// hashlib.sha256).digest())` in Python.
        #[test]
        fn the_signature_is_base64_hmac_of_timestamp_and_body() {
            let body = include_bytes!("../../fixtures/whoop/push/workout_updated.json");
            let sig = "LgyhLjU0s+pCD2Vby2w2XIExXXwyBcztNyloDgIv6VY=";
            assert_eq!(sign(TS, body), sig);
            let now = "2026-11-27T12:01:00Z";
            assert!(Whoop
                .verify_push(&signed(body, TS, sig, now).req(), &secrets())
                .is_ok());
            // The timestamp in seconds is read too.
            let secs = "1795780800";
            assert!(Whoop
                .verify_push(
                    &signed(body, secs, &sign(secs, body), now).req(),
                    &secrets()
                )
                .is_ok());
            let refused = |r: Owned, secrets: &PushSecrets| {
                matches!(
                    Whoop.verify_push(&r.req(), secrets),
                    Err(PushError::Unverified(_))
                )
            };
            // Forged: another body, another timestamp, another secret, a flipped bit.
            let other = include_bytes!("../../fixtures/whoop/push/sleep_deleted.json");
            assert!(refused(signed(other, TS, sig, now), &secrets()));
            assert!(refused(signed(body, "1795780800001", sig, now), &secrets()));
            assert!(refused(
                signed(
                    body,
                    TS,
                    "LgyhLjU0s+pCD2Vby2w2XIExXXwyBcztNyloDgIv6VZ=",
                    now
                ),
                &secrets()
            ));
            let mut wrong = secrets();
            wrong.client_secret = "another".into();
            assert!(refused(signed(body, TS, sig, now), &wrong));
            assert!(refused(signed(body, TS, sig, now), &PushSecrets::default()));
            assert!(refused(signed(body, TS, "not base64!", now), &secrets()));
            // Stale or from the future, beyond five minutes.
            assert!(refused(
                signed(body, TS, sig, "2026-11-27T12:05:01Z"),
                &secrets()
            ));
            assert!(refused(
                signed(body, TS, sig, "2026-11-27T11:54:59Z"),
                &secrets()
            ));
            assert!(Whoop
                .verify_push(
                    &signed(body, TS, sig, "2026-11-27T12:05:00Z").req(),
                    &secrets()
                )
                .is_ok());
            // Missing headers.
            let bare = Owned::new(&[], &[], body, at(now));
            assert!(refused(bare, &secrets()));
        }

        fn parsed(body: &[u8]) -> Notice {
            let r = Owned::new(&[], &[], body, at("2026-11-27T12:00:00Z"));
            let mut n = Whoop.parse_push(&r.req()).unwrap();
            assert_eq!(n.len(), 1);
            n.remove(0)
        }

        #[test]
        fn each_documented_event_becomes_its_notice() {
            let w = parsed(include_bytes!(
                "../../fixtures/whoop/push/workout_updated.json"
            ));
            assert_eq!(w.user, "20834517");
            assert_eq!(
                w.action,
                NoticeAction::Changed {
                    resource: Resource::Workouts,
                    record: Some("b3608b4b-1bef-438c-817a-344be2c8d09d".into()),
                    window: None
                }
            );
            assert_eq!(
                w.key,
                "d3709ee7-104e-4f70-a928-2932964b017b:workout.updated:b3608b4b-1bef-438c-817a-344be2c8d09d"
            );
            let s = parsed(include_bytes!(
                "../../fixtures/whoop/push/sleep_deleted.json"
            ));
            assert_eq!(
                s.action,
                NoticeAction::Deleted {
                    resource: Resource::Sleep,
                    record: "5f74b4d5-b1c1-46f6-82fd-10290ebb749d".into()
                }
            );
            let r = parsed(include_bytes!(
                "../../fixtures/whoop/push/recovery_updated.json"
            ));
            assert_eq!(
                r.action,
                NoticeAction::Changed {
                    resource: Resource::Recovery,
                    record: Some("1285416311".into()),
                    window: None
                }
            );
            // A recovery named by a sleep UUID (if the v2 model does so) is not our key:
            // the resource is re-read, and its deletion cannot be applied by id.
            let by_sleep = br#"{"user_id":20834517,"id":"5f74b4d5-b1c1-46f6-82fd-10290ebb749d","type":"recovery.updated","trace_id":"t"}"#;
            assert_eq!(
                parsed(by_sleep).action,
                NoticeAction::Changed {
                    resource: Resource::Recovery,
                    record: None,
                    window: None
                }
            );
            let gone = br#"{"user_id":20834517,"id":"5f74b4d5-b1c1-46f6-82fd-10290ebb749d","type":"recovery.deleted","trace_id":"t"}"#;
            assert!(matches!(parsed(gone).action, NoticeAction::Ignored(_)));
            // A v1 integer workout id: re-read the resource, nothing to read by id.
            let v1 =
                br#"{"user_id":10129,"id":10235,"type":"workout.updated","trace_id":"d3709ee7"}"#;
            assert_eq!(
                parsed(v1).action,
                NoticeAction::Changed {
                    resource: Resource::Workouts,
                    record: None,
                    window: None
                }
            );
            let other = br#"{"user_id":10129,"id":1,"type":"user.profile.updated","trace_id":"x"}"#;
            assert!(matches!(parsed(other).action, NoticeAction::Ignored(_)));
            // Without a trace id the key is a digest, stable over retries.
            let untraced = br#"{"user_id":10129,"id":"b3608b4b-1bef-438c-817a-344be2c8d09d","type":"workout.deleted"}"#;
            assert_eq!(parsed(untraced).key, parsed(untraced).key);
            assert_eq!(parsed(untraced).key.len(), 64);
        }

        #[test]
        fn unreadable_events_are_malformed() {
            for body in [
                &b"nope"[..],
                br#"{"id":"x","type":"workout.updated"}"#,
                br#"{"user_id":"10129","id":"x","type":"workout.updated"}"#,
                br#"{"user_id":10129,"type":"workout.updated"}"#,
                br#"{"user_id":10129,"id":"x"}"#,
            ] {
                let r = Owned::new(&[], &[], body, at("2026-11-27T12:00:00Z"));
                assert!(
                    matches!(Whoop.parse_push(&r.req()), Err(PushError::Malformed(_))),
                    "{}",
                    String::from_utf8_lossy(body)
                );
            }
        }

        #[test]
        fn the_user_is_named_by_the_basic_profile() {
            let req = Whoop.identity_request().unwrap();
            assert_eq!(
                (req.method, req.path.as_str()),
                ("GET", "/v2/user/profile/basic")
            );
            let body = WhoopFixtures
                .static_reply("/v2/user/profile/basic")
                .unwrap();
            assert_eq!(Whoop.identity_user_id(body.as_bytes()).unwrap(), "20834517");
            for bad in [
                r#"{}"#,
                r#"{"user_id": "20834517"}"#,
                r#"{"user_id": 0}"#,
                "[",
            ] {
                assert!(Whoop.identity_user_id(bad.as_bytes()).is_err(), "{bad}");
            }
            assert!(crate::providers::find("whoop")
                .unwrap()
                .manifest
                .scopes
                .iter()
                .any(|s| s == "read:profile"));
        }

        #[test]
        fn workouts_sleep_and_recoveries_are_read_by_the_id_a_webhook_names() {
            let w = spec(Resource::Workouts);
            let req = Whoop
                .record_request(&w, "b3608b4b-1bef-438c-817a-344be2c8d09d")
                .unwrap();
            assert_eq!(
                req.path,
                "/v2/activity/workout/b3608b4b-1bef-438c-817a-344be2c8d09d"
            );
            assert!(req.query.is_empty());
            assert_eq!(
                Whoop
                    .record_request(
                        &spec(Resource::Sleep),
                        "5f74b4d5-b1c1-46f6-82fd-10290ebb749d"
                    )
                    .unwrap()
                    .path,
                "/v2/activity/sleep/5f74b4d5-b1c1-46f6-82fd-10290ebb749d"
            );
            assert_eq!(
                Whoop
                    .record_request(&spec(Resource::Recovery), "1285416311")
                    .unwrap()
                    .path,
                "/v2/cycle/1285416311/recovery"
            );
            for (r, bad) in [
                (Resource::Workouts, "10235"),
                (Resource::Workouts, "../../v2/cycle"),
                (Resource::Recovery, "5f74b4d5-b1c1-46f6-82fd-10290ebb749d"),
                (Resource::Activity, "1285416311"),
            ] {
                assert_eq!(Whoop.record_request(&spec(r), bad), None, "{r} {bad}");
            }
            for (resource, file, key) in [
                (
                    Resource::Workouts,
                    &include_bytes!("../../fixtures/whoop/records/workouts/b3608b4b-1bef-438c-817a-344be2c8d09d.json")[..],
                    "b3608b4b-1bef-438c-817a-344be2c8d09d",
                ),
                (
                    Resource::Sleep,
                    &include_bytes!("../../fixtures/whoop/records/sleep/5f74b4d5-b1c1-46f6-82fd-10290ebb749d.json")[..],
                    "5f74b4d5-b1c1-46f6-82fd-10290ebb749d",
                ),
                (
                    Resource::Recovery,
                    &include_bytes!("../../fixtures/whoop/records/recovery/1285416311.json")[..],
                    "1285416311",
                ),
            ] {
                let page = Whoop.parse_record(resource, file).unwrap();
                assert_eq!(page.records.len(), 1);
                assert_eq!(page.records[0].provider_id, key);
                assert_eq!(page.next, None);
                // The same record as the collection lists it.
                let listed = Whoop
                    .parse_page(
                        resource,
                        &serde_json::to_vec(
                            &json!({"records": [serde_json::from_slice::<Value>(file).unwrap()]}),
                        )
                        .unwrap(),
                        None,
                    )
                    .unwrap();
                assert_eq!(listed.records, page.records);
                // The fixture server routes the path and serves the item.
                let path = Whoop.record_request(&spec(resource), key).unwrap().path;
                assert_eq!(
                    WhoopFixtures.record_path(&path),
                    Some((resource, key.to_string()))
                );
                let items = data(&format!("{}.json", resource.as_str()));
                let served = WhoopFixtures.serve_record(resource, key, &items).unwrap();
                assert_eq!(served, serde_json::from_slice::<Value>(file).unwrap());
                assert_eq!(
                    WhoopFixtures.serve_record(
                        resource,
                        "00000000-0000-0000-0000-000000000000",
                        &items
                    ),
                    None
                );
            }
            assert!(Whoop.parse_record(Resource::Workouts, b"[]").is_err());
            assert!(Whoop.parse_record(Resource::Activity, b"{}").is_err());
            assert_eq!(WhoopFixtures.record_path("/v2/activity/workout"), None);
        }

        #[test]
        fn the_fixture_server_pushes_signed_v2_webhooks_that_read_back() {
            let now = at("2026-11-27T12:00:00Z");
            let subs = vec![FixtureSubscription {
                callback_url: "https://gw.example/v1/providers/whoop/notifications".into(),
                ..FixtureSubscription::default()
            }];
            for (resource, record) in [
                (Resource::Workouts, "b3608b4b-1bef-438c-817a-344be2c8d09d"),
                (Resource::Sleep, "5f74b4d5-b1c1-46f6-82fd-10290ebb749d"),
                (Resource::Recovery, "1285416311"),
            ] {
                for kind in [
                    FixtureChangeKind::Created,
                    FixtureChangeKind::Updated,
                    FixtureChangeKind::Deleted,
                ] {
                    let change = FixtureChange {
                        user: "20834517",
                        resource,
                        kind,
                        item: None,
                        record: Some(record),
                        at: at("2026-11-27T11:59:00Z"),
                    };
                    let pushes = WhoopFixtures.push_for(&change, &subs, &secrets(), now);
                    assert_eq!(pushes.len(), 1, "{resource} {kind:?}");
                    assert_eq!(pushes[0].0, subs[0].callback_url);
                    let r = Owned::of(&pushes[0].1, now + chrono::Duration::seconds(2));
                    Whoop.verify_push(&r.req(), &secrets()).unwrap();
                    let n = Whoop.parse_push(&r.req()).unwrap();
                    assert_eq!(n[0].user, "20834517");
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
            let deauth = FixtureChange {
                user: "20834517",
                resource: Resource::Workouts,
                kind: FixtureChangeKind::Deauthorized,
                item: None,
                record: None,
                at: now,
            };
            assert!(
                WhoopFixtures
                    .push_for(&deauth, &subs, &secrets(), now)
                    .is_empty(),
                "WHOOP has no such webhook"
            );
            let cycle = FixtureChange {
                resource: Resource::Activity,
                kind: FixtureChangeKind::Updated,
                record: Some("1285416311"),
                ..deauth
            };
            assert!(
                WhoopFixtures
                    .push_for(&cycle, &subs, &secrets(), now)
                    .is_empty(),
                "nor cycle webhooks"
            );
        }
    }
}
