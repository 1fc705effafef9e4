//! Withings Public Health Data API (<https://developer.withings.com/api-reference>).
//! Every service is one path told apart by an `action` form field, and every reply,
//! errors included, is HTTP 200 `{"status": <code>, "body": {...}}`: `status` 0 is
//! success, anything else an error ([`Withings::in_band_error`]). Pages continue while
//! `more` is set (an integer 0/1 for getmeas, a boolean for the v2 services), by sending
//! back the reply's `offset`. Times are Unix seconds; the user's zone is an IANA name
//! (per item for sleep and workouts, once per reply for measures), turned into the
//! offset in force at each instant with `chrono-tz`. Quirks, with sources, are in
//! `fixtures/withings/README.md`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Offset, TimeZone, Timelike, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::normalize::*;
use super::push::*;
use super::{
    Adapter, Impersonation, Page, PageRequest, ProviderError, Record, Removal, ResourceSpec, Window,
};
use crate::events::Resource;

pub struct Withings;

const ID: &str = "withings";
/// getmeas measure types (WITHINGS-OAS measure-getmeas `meastype`): 1 weight (kg),
/// 6 fat ratio (%), 54 SpO2 (%), 71 body temperature (°C).
const WEIGHT: i64 = 1;
const FAT_RATIO: i64 = 6;
const SPO2: i64 = 54;
const BODY_TEMPERATURE: i64 = 71;

/// The getmeas measure types a resource asks for; None for the other services.
fn meastypes(resource: Resource) -> Option<&'static [i64]> {
    match resource {
        Resource::Body => Some(&[WEIGHT, FAT_RATIO]),
        Resource::BloodOxygen => Some(&[SPO2]),
        Resource::BodyTemperature => Some(&[BODY_TEMPERATURE]),
        _ => None,
    }
}

fn meastypes_param(types: &[i64]) -> String {
    types
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
/// getmeas `category` 1: real measures (2 would be the user's objectives).
const REAL_MEASURES: &str = "1";
const SLEEP_FIELDS: &str = "total_timeinbed,total_sleep_time,asleepduration,lightsleepduration,remsleepduration,deepsleepduration,wakeupduration,sleep_efficiency,hr_average,hr_min,rr_average";
const WORKOUT_FIELDS: &str = "calories,manual_calories,distance,manual_distance,hr_average,hr_max,pause_duration,algo_pause_duration";
/// getactivity's `data_fields` (WITHINGS-OAS measurev2-getactivity).
const ACTIVITY_FIELDS: &str =
    "steps,distance,elevation,soft,moderate,intense,active,calories,totalcalories";
/// getmeas `category` 2: "user objectives" (WITHINGS-OAS measure-getmeas), goals the user
/// set, not measurements.
const OBJECTIVE: i64 = 2;

fn action(resource: Resource) -> Option<&'static str> {
    match resource {
        Resource::Body | Resource::BloodOxygen | Resource::BodyTemperature => Some("getmeas"),
        Resource::Sleep => Some("getsummary"),
        Resource::Workouts => Some("getworkouts"),
        Resource::Activity => Some("getactivity"),
        _ => None,
    }
}

/// The list a v2 service's reply body holds its items in.
fn list_key(resource: Resource) -> &'static str {
    match resource {
        Resource::Activity => "activities",
        _ => "series",
    }
}

/// Just the envelope's status and error, read without building the body.
#[derive(Deserialize)]
struct Envelope {
    status: Option<i64>,
    #[serde(default)]
    error: Option<String>,
}

/// The in-band status codes (WITHINGS-OAS, tag `response_status`) as the runtime's kinds.
fn status_error(status: i64, message: String) -> ProviderError {
    match status {
        // Authentication failed / invalid token / unauthorized.
        100..=102 | 200 | 401 | 214 | 277 | 2553 => ProviderError::Unauthorized(message),
        // "Too many request": the app's per-minute budget; no wait is given.
        601 => ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(60)),
        },
        // Invalid parameters: a request Withings will never accept.
        201..=213 | 216..=276 | 278..=599 => {
            ProviderError::Refused(format!("status {status}: {message}"))
        }
        // 522 timeout, 2554/2555 "an unknown error occurred", everything else: retry.
        _ => ProviderError::Transient(format!("status {status}: {message}")),
    }
}

/// The notification categories we subscribe every user to, with the resources each
/// one's data lands in (NOTIFY-CONTENT): 1 weight and body composition, 16 activity
/// (daily activity and workouts), 44 sleep; 46 is the user's own actions (unlinking).
const SUBSCRIBED_APPLI: [(i64, &[Resource]); 4] = [
    (1, &[Resource::Body]),
    (16, &[Resource::Activity, Resource::Workouts]),
    (44, &[Resource::Sleep]),
    (USER_APPLI, &[]),
];
const USER_APPLI: i64 = 46;

/// A notification's fields: the form body (NOTIFY-OVERVIEW: "Parameters are therefore
/// not passed in the URL"), over any query fields.
fn notification_fields(req: &PushRequest<'_>) -> BTreeMap<String, String> {
    let mut f = req.query.clone();
    f.extend(form_fields(req.body));
    f
}

/// One `/notify` call per category we subscribe to.
fn notify_calls(action: &str, callback_url: &str) -> Vec<SubscriptionCall> {
    SUBSCRIBED_APPLI
        .iter()
        .map(|(appli, _)| SubscriptionCall {
            method: "POST",
            url: "/notify".into(),
            query: vec![],
            form: vec![
                ("action".into(), action.into()),
                ("callbackurl".into(), callback_url.into()),
                ("appli".into(), appli.to_string()),
            ],
            json: None,
            headers: vec![],
            basic_auth: false,
            user_token: true,
        })
        .collect()
}

impl Adapter for Withings {
    fn page_request(
        &self,
        resource: &ResourceSpec,
        window: &Window,
        cursor: Option<&str>,
    ) -> PageRequest {
        let mut form: Vec<(String, String)> = vec![(
            "action".into(),
            action(resource.name).unwrap_or("unknown").into(),
        )];
        if let Some(types) = meastypes(resource.name) {
            // Unix-second bounds, both inclusive (WITHINGS-OAS measure-getmeas); the window
            // is half-open, so stop a second before its end.
            form.push(("meastypes".into(), meastypes_param(types)));
            form.push(("category".into(), REAL_MEASURES.into()));
            form.push(("startdate".into(), window.start.timestamp().to_string()));
            form.push(("enddate".into(), (window.end.timestamp() - 1).to_string()));
        } else {
            // The v2 services take local dates (YYYY-MM-DD, inclusive) of the user's zone,
            // which we do not know before the first reply: pad a day each side; stable ids
            // absorb the overlap with the neighbouring windows.
            let day = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%d").to_string();
            form.push(("startdateymd".into(), day(pad_day(window.start, false))));
            form.push(("enddateymd".into(), day(pad_day(window.end, true))));
            let fields = match resource.name {
                Resource::Sleep => SLEEP_FIELDS,
                Resource::Activity => ACTIVITY_FIELDS,
                _ => WORKOUT_FIELDS,
            };
            form.push(("data_fields".into(), fields.into()));
        }
        if let Some(offset) = cursor {
            form.push(("offset".into(), offset.into()));
        }
        PageRequest {
            method: "POST",
            path: resource.path.clone(),
            query: vec![],
            form,
            json: None,
        }
    }

    fn parse_page(
        &self,
        resource: Resource,
        body: &[u8],
        _cursor: Option<&str>,
    ) -> Result<Page, ProviderError> {
        let v = parse_json(body)?;
        match v.get("status").and_then(Value::as_i64) {
            Some(0) => {}
            Some(s) => {
                return Err(status_error(
                    s,
                    opt_str(&v, "error")?.unwrap_or("").to_string(),
                ))
            }
            None => {
                return Err(ProviderError::malformed(
                    "status",
                    "missing: every Withings reply carries one",
                ))
            }
        }
        let b = v
            .get("body")
            .filter(|b| b.is_object())
            .ok_or_else(|| ProviderError::malformed("body", "missing"))?;
        let at_index = |list: &'static str, i: usize| {
            move |e: ProviderError| match e {
                ProviderError::Malformed { field, message } => {
                    ProviderError::malformed(format!("body.{list}[{i}].{field}"), message)
                }
                e => e,
            }
        };
        let mut page = Page::default();
        match resource {
            Resource::Body | Resource::BloodOxygen | Resource::BodyTemperature => {
                // The zone is the user's, given once per reply.
                let zone = opt_str(b, "timezone").map_err(|e| prefix(e, "body."))?;
                for (i, g) in req_array(b, "measuregrps")
                    .map_err(|e| prefix(e, "body."))?
                    .iter()
                    .enumerate()
                {
                    match measure_group(resource, g, zone).map_err(at_index("measuregrps", i))? {
                        Group::Record(r) => page.records.push(r),
                        Group::Objective(r) => page.removals.push(r),
                        Group::Skipped => {}
                    }
                }
            }
            Resource::Sleep | Resource::Workouts | Resource::Activity => {
                let list = list_key(resource);
                for (i, s) in req_array(b, list)
                    .map_err(|e| prefix(e, "body."))?
                    .iter()
                    .enumerate()
                {
                    let r = match resource {
                        Resource::Sleep => sleep(s),
                        Resource::Activity => activity(s),
                        _ => workout(s),
                    };
                    page.records.push(r.map_err(at_index(list, i))?);
                }
            }
            other => {
                return Err(ProviderError::malformed(
                    "resource",
                    format!("Withings has no {other}"),
                ))
            }
        }
        // `more` is 0/1 in getmeas and true/false in the v2 services.
        let more = match b.get("more") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(m)) => *m,
            Some(Value::Number(n)) => n.as_i64() != Some(0),
            Some(other) => {
                return Err(ProviderError::malformed(
                    "body.more",
                    format!("expected 0/1 or a boolean, got {other}"),
                ))
            }
        };
        page.next = if more {
            Some(
                opt_i64(b, "offset")
                    .map_err(|e| prefix(e, "body."))?
                    .ok_or_else(|| {
                        ProviderError::malformed("body.offset", "missing while `more` is set")
                    })?
                    .to_string(),
            )
        } else {
            None
        };
        Ok(page)
    }

    /// HTTP 200 with a non-zero `status` is an error (an expired token is `status: 401`).
    fn in_band_error(&self, retry_after: Option<Duration>, body: &[u8]) -> Option<ProviderError> {
        let env: Envelope = serde_json::from_slice(body).ok()?;
        match env.status {
            Some(0) | None => None,
            Some(s) => Some(match status_error(s, env.error.unwrap_or_default()) {
                // Withings sends no Retry-After; honour one if a proxy in front adds it.
                ProviderError::RateLimited {
                    retry_after: default,
                } => ProviderError::RateLimited {
                    retry_after: retry_after.or(default),
                },
                e => e,
            }),
        }
    }

    /// The token reply is wrapped like every other: `{"status": 0, "body": {tokens}}`; a
    /// refused code or refresh token is `{"status": 503, "error": "Invalid Params: …"}`
    /// inside an HTTP 200.
    fn token_reply(&self, status: u16, body: &[u8]) -> Result<Vec<u8>, ProviderError> {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return Ok(body.to_vec());
        };
        match v.get("status").and_then(Value::as_i64) {
            Some(0) => Ok(v
                .get("body")
                .map(Value::to_string)
                .unwrap_or_default()
                .into_bytes()),
            Some(s) => {
                let message = v
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                Err(match status_error(s, message.clone()) {
                    // Any refusal of the grant itself means the user must reconnect.
                    ProviderError::Refused(m) | ProviderError::Unauthorized(m) => {
                        ProviderError::Refused(m)
                    }
                    e => e,
                })
            }
            // Not Withings' envelope (a proxy's 5xx page): leave it to the HTTP status.
            None => {
                let _ = status;
                Ok(body.to_vec())
            }
        }
    }

    fn token_params(&self) -> &'static [(&'static str, &'static str)] {
        &[("action", "requesttoken")]
    }

    /// Withings checks a callback with a `HEAD` request before registering it and wants a
    /// 2xx (NOTIFY-SUBSCRIBE: "Must respond to HTTP HEAD requests"). A request carrying
    /// nothing (no body, no `userid`) is that check, answered 200 with no body.
    fn push_handshake(
        &self,
        req: &PushRequest<'_>,
        _secrets: &PushSecrets,
    ) -> Option<Result<PushReply, PushError>> {
        (req.body.iter().all(u8::is_ascii_whitespace) && !req.query.contains_key("userid"))
            .then(|| Ok(PushReply::empty(200)))
    }

    /// Withings signs nothing: a notification is ours when it names a user (`userid`, a
    /// positive integer) and a category we subscribe to (`appli`); that the user has a
    /// live subscription at our callback is the gateway's check.
    fn verify_push(&self, req: &PushRequest<'_>, _secrets: &PushSecrets) -> Result<(), PushError> {
        let f = notification_fields(req);
        match f.get("userid").and_then(|u| u.parse::<i64>().ok()) {
            Some(u) if u > 0 => {}
            _ => return Err(PushError::Unverified("no userid".into())),
        }
        let appli = f.get("appli").map(String::as_str).unwrap_or("");
        if !SUBSCRIBED_APPLI.iter().any(|(a, _)| a.to_string() == appli) {
            return Err(PushError::Unverified(format!(
                "appli `{appli}` is no category we subscribe to"
            )));
        }
        Ok(())
    }

    /// NOTIFY-CONTENT: a form-encoded `POST` of `userid`, `appli`, and per category
    /// `startdate`/`enddate` (epoch seconds, "the data range") or `date` (one day), and for
    /// appli 46 `action` (`delete` if the user is deleted, `unlink` if they unlink the
    /// app, `update`). Each data category becomes a change of its resource(s) over that
    /// range (Withings names no record); 46 `unlink`/`delete` ends the connection. No id:
    /// the key digests every field.
    fn parse_push(&self, req: &PushRequest<'_>) -> Result<Vec<Notice>, PushError> {
        let f = notification_fields(req);
        let user = f
            .get("userid")
            .filter(|u| u.parse::<i64>().is_ok_and(|u| u > 0))
            .ok_or_else(|| PushError::Malformed("no userid".into()))?
            .clone();
        let appli: i64 = f
            .get("appli")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| PushError::Malformed("no appli".into()))?;
        let epoch = |k: &str| -> Result<Option<DateTime<Utc>>, PushError> {
            f.get(k)
                .map(|v| {
                    v.parse::<i64>()
                        .ok()
                        .and_then(|s| DateTime::from_timestamp(s, 0))
                        .ok_or_else(|| PushError::Malformed(format!("{k} is not epoch seconds")))
                })
                .transpose()
        };
        let (start, end) = (epoch("startdate")?, epoch("enddate")?);
        // `date`: "string (YYYY-MM-DD) or int (unix epoch)" (NOTIFY-CONTENT).
        let day = match f.get("date") {
            None => None,
            Some(d) => Some(match chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d") {
                Ok(day) => day,
                Err(_) => d
                    .parse::<i64>()
                    .ok()
                    .and_then(|s| DateTime::from_timestamp(s, 0))
                    .ok_or_else(|| PushError::Malformed("date is no date".into()))?
                    .date_naive(),
            }),
        };
        let window = match (start, end, day) {
            (Some(s), Some(e), _) if s <= e => Some(Window {
                start: s,
                end: e + chrono::Duration::seconds(1),
            }),
            (Some(_), Some(_), _) => {
                return Err(PushError::Malformed("startdate is after enddate".into()))
            }
            // A local day of an unknown zone: a day either side.
            (_, _, Some(d)) => {
                let midnight = d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
                midnight.map(|m| Window {
                    start: m - chrono::Duration::days(1),
                    end: m + chrono::Duration::days(2),
                })
            }
            _ => None,
        };
        // Every field, in name order (a BTreeMap's), as `name=value`.
        let fields: Vec<String> = f.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let base = digest_key(&fields.iter().map(String::as_str).collect::<Vec<_>>());
        let at = end.or(start);
        if appli == USER_APPLI {
            let action = match f.get("action").map(String::as_str) {
                Some("unlink" | "delete") => NoticeAction::Deauthorized,
                other => NoticeAction::Ignored(format!("appli 46 action {other:?}")),
            };
            return Ok(vec![Notice {
                user,
                key: base,
                action,
                at,
            }]);
        }
        let Some((_, resources)) = SUBSCRIBED_APPLI.iter().find(|(a, _)| *a == appli) else {
            return Ok(vec![Notice {
                user,
                key: base,
                action: NoticeAction::Ignored(format!("appli {appli}")),
                at,
            }]);
        };
        Ok(resources
            .iter()
            .map(|r| Notice {
                user: user.clone(),
                key: format!("{base}:{r}"),
                action: NoticeAction::Changed {
                    resource: *r,
                    record: None,
                    window,
                },
                at,
            })
            .collect())
    }

    /// NOTIFY-SUBSCRIBE: per user and category, `POST /notify` with `action=subscribe`,
    /// `callbackurl` and `appli`, and the user's access token.
    fn user_subscribe_calls(&self, callback_url: &str) -> Vec<SubscriptionCall> {
        notify_calls("subscribe", callback_url)
    }

    /// WITHINGS-OAS notify-revoke: `action=revoke` with the same `callbackurl` and `appli`.
    fn user_unsubscribe_calls(&self, callback_url: &str) -> Vec<SubscriptionCall> {
        notify_calls("revoke", callback_url)
    }

    /// `/notify` answers like every service: HTTP 200 and `{"status": 0, "body": {}}`, or
    /// the error's status inside.
    fn subscription_reply(&self, status: u16, body: &[u8]) -> Result<Subscribed, ProviderError> {
        if !(200..300).contains(&status) {
            return Err(self.classify_error(status, None, body));
        }
        if let Some(e) = self.in_band_error(None, body) {
            return Err(e);
        }
        match serde_json::from_slice::<Envelope>(body) {
            Ok(Envelope {
                status: Some(0), ..
            }) => Ok(Subscribed::default()),
            _ => Err(ProviderError::malformed("status", "expected status 0")),
        }
    }

    /// `userid`: an integer in the OpenAPI, a string in published replies; accept both.
    fn external_user_id(&self, token_reply: &Value) -> Option<String> {
        match token_reply.get("userid")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

fn prefix(e: ProviderError, p: &str) -> ProviderError {
    match e {
        ProviderError::Malformed { field, message } => {
            ProviderError::malformed(format!("{p}{field}"), message)
        }
        e => e,
    }
}

/// The offset (seconds east of UTC) in force in IANA zone `zone` at Unix time `secs`.
fn zone_offset(zone: Option<&str>, secs: i64, field: &str) -> Result<Option<i64>, ProviderError> {
    let Some(name) = zone else { return Ok(None) };
    let tz: chrono_tz::Tz = name.parse().map_err(|_| {
        ProviderError::malformed(field, format!("`{name}` is not an IANA time zone"))
    })?;
    let t = tz.timestamp_opt(secs, 0).single().ok_or_else(|| {
        ProviderError::malformed(field, format!("{secs} is not a valid Unix time"))
    })?;
    Ok(Some(t.offset().fix().local_minus_utc() as i64))
}

/// `value × 10^unit` without binary noise: 78412 × 10⁻³ is 78.412, not 78.41199999.
fn scaled(value: i64, unit: i64) -> Option<f64> {
    if !(-12..=12).contains(&unit) {
        return None;
    }
    let p = 10f64.powi(unit.unsigned_abs() as i32);
    Some(if unit < 0 {
        value as f64 / p
    } else {
        value as f64 * p
    })
}

/// What one measure group is to us.
enum Group {
    /// A weighing, or a reading of the resource's measure type.
    Record(Record),
    /// A goal the user set (`category` 2): never a record, and one stored before (when a
    /// reply carried it unasked) must go.
    Objective(Removal),
    /// Not a measure of this resource (blood pressure, …), or possibly someone else's.
    Skipped,
}

/// One measure group → a record of `resource`: a body record (weight, fat ratio), or a
/// blood oxygen or body temperature sample. Objectives (`category` 2, "user objectives"
/// in WITHINGS-OAS measure-getmeas; the group's `category` is "the category for the
/// measures in the group (see category input parameter)", schema `measuregrp_object`)
/// are removals even though the request asks for `category=1`; groups without a measure
/// of the resource's types, or that Withings flags as possibly someone else's (`attrib`
/// 1: "captured by a device but may belong to other users"), are skipped.
fn measure_group(
    resource: Resource,
    g: &Value,
    zone: Option<&str>,
) -> Result<Group, ProviderError> {
    if opt_i64(g, "category")? == Some(OBJECTIVE) {
        return Ok(Group::Objective(Removal {
            resource,
            provider_id: req_id(g, "grpid")?,
        }));
    }
    let attrib = opt_i64(g, "attrib")?;
    if attrib == Some(1) {
        return Ok(Group::Skipped);
    }
    let mut values: HashMap<i64, f64> = HashMap::new();
    for (i, m) in req_array(g, "measures")?.iter().enumerate() {
        let field = |k: &str| format!("measures[{i}].{k}");
        let get = |k: &str| -> Result<i64, ProviderError> {
            opt_i64(m, k)
                .map_err(|e| prefix(e, &field("")))?
                .ok_or_else(|| ProviderError::malformed(field(k), "missing"))
        };
        let (value, unit, ty) = (get("value")?, get("unit")?, get("type")?);
        let x = scaled(value, unit).ok_or_else(|| {
            ProviderError::malformed(
                field("unit"),
                format!("{unit} is not a power of ten we can apply"),
            )
        })?;
        values.insert(ty, x);
    }
    let date = || opt_i64(g, "date")?.ok_or_else(|| ProviderError::malformed("date", "missing"));
    // attrib 2 and 4 are entered by hand in the app; 0 (and 8, 15…) come from a device.
    let manual = matches!(attrib, Some(2) | Some(4));
    if resource != Resource::Body {
        let (ty, unit) = match resource {
            Resource::BloodOxygen => (SPO2, "%"),
            _ => (BODY_TEMPERATURE, "°C"),
        };
        let Some(x) = values.get(&ty).copied() else {
            return Ok(Group::Skipped);
        };
        let date = date()?;
        let at = from_unix(date, "date")?;
        let mut f = vec![
            // The device is not named by a type: a watch or a thermometer, whose `model`
            // the group gives as free text.
            (
                "source",
                source(ID, if manual { "manual" } else { "unknown" }),
            ),
            ("timestamp", json!(at)),
            ("timezone_offset", int(zone_offset(zone, date, "timezone")?)),
            ("type", json!(resource.as_str())),
            ("unit", json!(unit)),
            ("value", num(Some(x))),
        ];
        if resource == Resource::BodyTemperature {
            // A reading is an instant; Withings names no site for type 71.
            f.push(("start", json!(at)));
            f.push(("end", json!(at)));
            f.push(("sensor_location", Value::Null));
        }
        return Ok(Group::Record(Record {
            resource,
            provider_id: req_id(g, "grpid")?,
            fields: fields(f),
        }));
    }
    let (weight, fat) = (
        values.get(&WEIGHT).copied(),
        values.get(&FAT_RATIO).copied(),
    );
    if weight.is_none() && fat.is_none() {
        return Ok(Group::Skipped);
    }
    let date = date()?;
    Ok(Group::Record(Record {
        resource: Resource::Body,
        provider_id: req_id(g, "grpid")?,
        fields: fields(vec![
            (
                "source",
                source(ID, if manual { "manual" } else { "scale" }),
            ),
            ("measured_at", json!(from_unix(date, "date")?)),
            ("timezone_offset", int(zone_offset(zone, date, "timezone")?)),
            ("weight", num(weight)),
            ("fat", num(fat)),
        ]),
    }))
}

/// Sleep `model`: 16 a tracker or watch, 32 the Sleep Analyzer mat under the mattress.
fn sleep_device(model: Option<i64>) -> &'static str {
    match model {
        Some(16) => "watch",
        Some(32) => "sleep_mat",
        _ => "unknown",
    }
}

fn sleep(s: &Value) -> Result<Record, ProviderError> {
    let start =
        opt_i64(s, "startdate")?.ok_or_else(|| ProviderError::malformed("startdate", "missing"))?;
    let end =
        opt_i64(s, "enddate")?.ok_or_else(|| ProviderError::malformed("enddate", "missing"))?;
    let d = |k: &str| opt_i64(s, &format!("data.{k}"));
    // `asleepduration` replaces `total_sleep_time` for nights from another source.
    let total = match d("total_sleep_time")? {
        Some(t) => Some(t),
        None => d("asleepduration")?,
    };
    let efficiency = opt_f64(s, "data.sleep_efficiency")?
        .map(|e| to_i64(e * 100.0, "data.sleep_efficiency"))
        .transpose()?;
    let zone = opt_str(s, "timezone")?;
    let in_bed = match d("total_timeinbed")? {
        Some(t) => t,
        None => end
            .checked_sub(start)
            .ok_or_else(|| ProviderError::malformed("enddate", "out of range"))?,
    };
    // `completed: false` marks a night still being analysed; it will change.
    let state = if s.get("completed") == Some(&Value::Bool(false)) {
        "tentative"
    } else {
        "confirmed"
    };
    Ok(Record {
        resource: Resource::Sleep,
        provider_id: req_id(s, "id")?,
        fields: fields(vec![
            ("source", source(ID, sleep_device(opt_i64(s, "model")?))),
            ("calendar_date", json!(req_str(s, "date")?)),
            ("type", json!(sleep_kind(total, end, zone)?)),
            ("bedtime_start", json!(from_unix(start, "startdate")?)),
            ("bedtime_stop", json!(from_unix(end, "enddate")?)),
            (
                "timezone_offset",
                int(zone_offset(zone, start, "timezone")?),
            ),
            ("duration", json!(in_bed)),
            ("total", int(total)),
            ("awake", int(d("wakeupduration")?)),
            ("light", int(d("lightsleepduration")?)),
            ("rem", int(d("remsleepduration")?)),
            ("deep", int(d("deepsleepduration")?)),
            ("efficiency", int(efficiency)),
            ("hr_average", number(s, "data.hr_average")?),
            ("hr_lowest", number(s, "data.hr_min")?),
            // The sleep summary has no HRV.
            ("average_hrv", Value::Null),
            ("respiratory_rate", number(s, "data.rr_average")?),
            ("state", json!(state)),
        ]),
    })
}

/// Vital's sleep `type` from what the summary documents (WITHINGS-OAS sleepv2-getsummary
/// has no nap flag, schema `sleep_summary_object`): Vital's own definitions applied to
/// the night, `long_sleep` for 3 hours of sleep or more, `short_sleep` for less that
/// ended before 18:00 local time, otherwise (no duration, no zone, or a short evening
/// sleep) `unknown`.
fn sleep_kind(
    asleep: Option<i64>,
    end: i64,
    zone: Option<&str>,
) -> Result<&'static str, ProviderError> {
    const THREE_HOURS: i64 = 3 * 3600;
    let Some(asleep) = asleep else {
        return Ok(sleep_type::UNKNOWN);
    };
    if asleep >= THREE_HOURS {
        return Ok(sleep_type::LONG_SLEEP);
    }
    let Some(name) = zone else {
        return Ok(sleep_type::UNKNOWN);
    };
    let tz: chrono_tz::Tz = name.parse().map_err(|_| {
        ProviderError::malformed("timezone", format!("`{name}` is not an IANA time zone"))
    })?;
    let local = unix_instant(end, "enddate")?.with_timezone(&tz);
    Ok(if local.hour() < 18 {
        sleep_type::SHORT_SLEEP
    } else {
        sleep_type::UNKNOWN
    })
}

/// getactivity's day → an activity record (WITHINGS-OAS measurev2-getactivity, schema
/// `activity_object`): `date` the local day ("date of the aggregated data"), `steps`,
/// `distance` in metres, `elevation` "number of floors climbed", `soft`/`moderate`/
/// `intense` durations in seconds, `calories` active kcal, `totalcalories` kcal. Vital's
/// `low`/`medium`/`high` are minutes (`ClientFacingActivity`, tryVital/vital-node
/// `src/api/types/ClientFacingActivity.ts`), so the durations are divided by 60.
fn activity(a: &Value) -> Result<Record, ProviderError> {
    let day = req_str(a, "date")?;
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|e| {
        ProviderError::malformed("date", format!("`{day}` is not a YYYY-MM-DD date: {e}"))
    })?;
    // The offset at the day's local noon: one value per day, clear of midnight DST jumps.
    let offset = match opt_str(a, "timezone")? {
        None => None,
        Some(name) => {
            let tz: chrono_tz::Tz = name.parse().map_err(|_| {
                ProviderError::malformed("timezone", format!("`{name}` is not an IANA time zone"))
            })?;
            date.and_hms_opt(12, 0, 0)
                .and_then(|noon| tz.from_local_datetime(&noon).earliest())
                .map(|t| i64::from(t.offset().fix().local_minus_utc()))
        }
    };
    let minutes = |k: &str| -> Result<Value, ProviderError> {
        Ok(num(opt_f64(a, k)?.map(|secs| round1(secs / 60.0))))
    };
    // `brand` 18 and `is_tracker: false` are a phone or another app; a Withings tracker
    // (Pulse, Go, the watches) sets `is_tracker`.
    let kind = if a.get("is_tracker") == Some(&Value::Bool(true)) {
        "watch"
    } else {
        "app"
    };
    Ok(Record {
        resource: Resource::Activity,
        provider_id: day.to_string(),
        fields: fields(vec![
            ("source", source(ID, kind)),
            ("calendar_date", json!(day)),
            ("timezone_offset", int(offset)),
            ("steps", int(opt_i64(a, "steps")?)),
            ("calories_total", number(a, "totalcalories")?),
            ("calories_active", number(a, "calories")?),
            // Vital's `daily_movement` is a walking-equivalent distance (deprecated there);
            // Withings reports the distance travelled, which is Vital's `distance`.
            ("daily_movement", Value::Null),
            ("distance", number(a, "distance")?),
            ("low", minutes("soft")?),
            ("medium", minutes("moderate")?),
            ("high", minutes("intense")?),
            ("floors_climbed", int(opt_i64(a, "elevation")?)),
        ]),
    })
}

/// Workout `category` (WITHINGS-OAS, measurev2-getworkouts). Unknown codes become
/// `other` instead of failing.
fn category(code: i64) -> &'static str {
    match code {
        1 => "walk",
        2 => "run",
        3 => "hiking",
        4 => "skating",
        5 => "bmx",
        6 => "cycling",
        7 => "swimming",
        8 => "surfing",
        9 => "kitesurfing",
        10 => "windsurfing",
        11 => "bodyboard",
        12 => "tennis",
        13 => "table_tennis",
        14 => "squash",
        15 => "badminton",
        16 => "lift_weights",
        17 => "calisthenics",
        18 => "elliptical",
        19 => "pilates",
        20 => "basketball",
        21 => "soccer",
        22 => "american_football",
        23 => "rugby",
        24 => "volleyball",
        25 => "water_polo",
        26 => "horse_riding",
        27 => "golf",
        28 => "yoga",
        29 => "dancing",
        30 => "boxing",
        31 => "fencing",
        32 => "wrestling",
        33 => "martial_arts",
        34 => "skiing",
        35 => "snowboarding",
        187 => "rowing",
        188 => "zumba",
        191 => "baseball",
        192 => "handball",
        193 => "hockey",
        194 => "ice_hockey",
        195 => "climbing",
        196 => "ice_skating",
        272 => "multi_sport",
        306 => "indoor_walk",
        307 => "indoor_run",
        308 => "indoor_cycling",
        523 => "mountain_biking",
        _ => "other",
    }
}

fn workout(s: &Value) -> Result<Record, ProviderError> {
    let start =
        opt_i64(s, "startdate")?.ok_or_else(|| ProviderError::malformed("startdate", "missing"))?;
    let end =
        opt_i64(s, "enddate")?.ok_or_else(|| ProviderError::malformed("enddate", "missing"))?;
    let code = opt_i64(s, "category")?.unwrap_or(36);
    let slug = category(code);
    let d = |k: &str| opt_f64(s, &format!("data.{k}"));
    // A number as Withings wrote it, or null when absent or 0: manual entries fill
    // `manual_*` and leave 0 elsewhere, and a workout logged without a heart-rate
    // sensor reports 0 bpm (no reading, not zero).
    let positive = |k: &str| -> Result<Value, ProviderError> {
        Ok(match number(s, &format!("data.{k}"))? {
            Value::Number(n) if n.as_f64().is_some_and(|x| x > 0.0) => Value::Number(n),
            _ => Value::Null,
        })
    };
    let either = |a: Value, b: Value| if a.is_null() { b } else { a };
    let distance = either(positive("distance")?, positive("manual_distance")?);
    let calories = either(positive("manual_calories")?, positive("calories")?);
    // Paused by the user, and pauses the watch detected itself (swimming rests).
    let pause = to_i64(
        d("pause_duration")?.unwrap_or(0.0) + d("algo_pause_duration")?.unwrap_or(0.0),
        "data.pause_duration",
    )?;
    let moving = end
        .checked_sub(start)
        .ok_or_else(|| ProviderError::malformed("enddate", "out of range"))?
        .checked_sub(pause)
        .ok_or_else(|| ProviderError::malformed("data.pause_duration", "out of range"))?
        .max(0);
    // attrib 7 is an activity the user confirmed in the app; a device id means a watch.
    let kind = if s.get("deviceid").is_some_and(|d| d.is_string()) {
        "watch"
    } else {
        "app"
    };
    Ok(Record {
        resource: Resource::Workouts,
        provider_id: req_id(s, "id")?,
        fields: fields(vec![
            ("source", source(ID, kind)),
            ("title", json!(display_name(slug))),
            ("sport", json!({"name": display_name(slug), "slug": slug})),
            ("time_start", json!(from_unix(start, "startdate")?)),
            ("time_end", json!(from_unix(end, "enddate")?)),
            (
                "timezone_offset",
                int(zone_offset(opt_str(s, "timezone")?, start, "timezone")?),
            ),
            ("moving_time", int(Some(moving))),
            ("distance", distance),
            ("calories", calories),
            ("average_hr", positive("hr_average")?),
            ("max_hr", positive("hr_max")?),
            // getworkouts' `elevation` is floors-like and undocumented in unit: left out.
            ("total_elevation_gain", Value::Null),
            ("average_speed", Value::Null),
            ("max_speed", Value::Null),
        ]),
    })
}

/// The fixture's one user (`oauth/token.json`'s `userid`), whose token every fixture
/// `/notify` call carries.
const FIXTURE_USER: &str = "37921640";

/// The data range a notification about `change` names: the item's `startdate`/`enddate`
/// (sleep, workouts), its `date` as epoch (a measure group) or as a day (daily activity,
/// the whole UTC day), else the change's instant.
fn data_range(change: &FixtureChange<'_>) -> (i64, i64) {
    let item = change.item;
    let int = |k: &str| item.and_then(|i| i.get(k)).and_then(Value::as_i64);
    if let (Some(s), Some(e)) = (int("startdate"), int("enddate")) {
        return (s, e);
    }
    if let Some(d) = int("date") {
        return (d, d);
    }
    let day = item
        .and_then(|i| i.get("date"))
        .and_then(Value::as_str)
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .and_then(|d| d.and_hms_opt(0, 0, 0));
    match day {
        Some(m) => (m.and_utc().timestamp(), m.and_utc().timestamp() + 86_399),
        None => (change.at.timestamp(), change.at.timestamp()),
    }
}

/// The fixture server's Withings: POST form fields, `action` checked against the
/// path, window filtering and `offset` paging as the services do, every reply (errors
/// too) an HTTP 200 envelope.
pub struct WithingsFixtures;

/// Items per page: small, so a month's window spans more than one page.
const FIXTURE_PAGE: usize = 4;
/// The account's zone, which getmeas reports once per reply.
const FIXTURE_ZONE: &str = "Europe/Berlin";

impl Impersonation for WithingsFixtures {
    fn fixture(&self, path: &str) -> Option<&'static str> {
        Some(match path {
            "oauth/token.json" => include_str!("../../fixtures/withings/oauth/token.json"),
            "oauth/refresh.json" => include_str!("../../fixtures/withings/oauth/refresh.json"),
            "oauth/invalid_grant.json" => {
                include_str!("../../fixtures/withings/oauth/invalid_grant.json")
            }
            "errors/401.json" => include_str!("../../fixtures/withings/errors/401.json"),
            "errors/503.json" => include_str!("../../fixtures/withings/errors/503.json"),
            "errors/601.json" => include_str!("../../fixtures/withings/errors/601.json"),
            "errors/2555.json" => include_str!("../../fixtures/withings/errors/2555.json"),
            "data/body.json" => include_str!("../../fixtures/withings/data/body.json"),
            "data/body.changed.json" => {
                include_str!("../../fixtures/withings/data/body.changed.json")
            }
            "data/sleep.json" => include_str!("../../fixtures/withings/data/sleep.json"),
            "data/sleep.changed.json" => {
                include_str!("../../fixtures/withings/data/sleep.changed.json")
            }
            "data/workouts.json" => include_str!("../../fixtures/withings/data/workouts.json"),
            "data/workouts.changed.json" => {
                include_str!("../../fixtures/withings/data/workouts.changed.json")
            }
            "data/activity.json" => include_str!("../../fixtures/withings/data/activity.json"),
            "data/activity.changed.json" => {
                include_str!("../../fixtures/withings/data/activity.changed.json")
            }
            "data/blood_oxygen.json" => {
                include_str!("../../fixtures/withings/data/blood_oxygen.json")
            }
            "data/blood_oxygen.changed.json" => {
                include_str!("../../fixtures/withings/data/blood_oxygen.changed.json")
            }
            "data/body_temperature.json" => {
                include_str!("../../fixtures/withings/data/body_temperature.json")
            }
            "data/body_temperature.changed.json" => {
                include_str!("../../fixtures/withings/data/body_temperature.changed.json")
            }
            _ => return None,
        })
    }

    /// Withings answers errors with HTTP 200 and the code inside: 401 as `status: 401`,
    /// a rate limit as 601, a server fault as 2555 ("an unknown error occurred"), an
    /// unknown service as 503 (invalid params).
    fn error_reply(&self, status: u16) -> (u16, String) {
        let code = match status {
            401 => 401,
            429 => 601,
            404 | 400 => 503,
            _ => 2555,
        };
        (
            200,
            self.fixture(&format!("errors/{code}.json"))
                .unwrap_or(r#"{"status":2555,"body":{},"error":"An unknown error occured"}"#)
                .to_string(),
        )
    }

    /// A refused code or refresh token: HTTP 200, `status: 503`.
    fn invalid_grant_status(&self) -> u16 {
        200
    }

    /// NOTIFY-CONTENT's form-encoded `POST` for every subscription of that user to that
    /// category: `userid`, `appli` and the data range `startdate`/`enddate` (the item's
    /// own bounds, or its day), or appli 46 with `action=unlink` for a deauthorization.
    /// Withings signs nothing.
    fn push_for(
        &self,
        change: &FixtureChange<'_>,
        subscriptions: &[FixtureSubscription],
        _secrets: &PushSecrets,
        _now: DateTime<Utc>,
    ) -> Vec<(String, OutboundPush)> {
        let appli = match (change.kind, change.resource) {
            (FixtureChangeKind::Deauthorized, _) => USER_APPLI,
            (_, r) => match SUBSCRIBED_APPLI.iter().find(|(_, rs)| rs.contains(&r)) {
                Some((a, _)) => *a,
                None => return vec![],
            },
        };
        let mut fields = vec![
            ("userid", change.user.to_string()),
            ("appli", appli.to_string()),
        ];
        if appli == USER_APPLI {
            fields.push(("action", "unlink".into()));
        } else {
            let (start, end) = data_range(change);
            fields.push(("startdate", start.to_string()));
            fields.push(("enddate", end.to_string()));
        }
        let body = form_body(&fields);
        subscriptions
            .iter()
            .filter(|s| {
                s.user.as_deref() == Some(change.user) && s.kinds.contains(&appli.to_string())
            })
            .map(|s| {
                (
                    s.callback_url.clone(),
                    OutboundPush {
                        headers: vec![],
                        query: vec![],
                        content_type: "application/x-www-form-urlencoded",
                        body: body.clone(),
                    },
                )
            })
            .collect()
    }

    /// `POST /notify` with the user's token (the fixture's one user, `oauth/token.json`'s
    /// `userid`): `subscribe` (per `callbackurl` and `appli`), `revoke`, `list` and `get`,
    /// answered in the `{status, body}` envelope; a subscribe without `callbackurl` or
    /// `appli` is status 503 (invalid params), as every service answers.
    fn serve_subscription(
        &self,
        req: &SubscriptionRequest<'_>,
        subscriptions: &mut Vec<FixtureSubscription>,
        _secrets: &PushSecrets,
    ) -> Option<SubscriptionServed> {
        if req.path != "/notify" {
            return None;
        }
        let user = FIXTURE_USER.to_string();
        let p = |k: &str| req.params.get(k).map(String::as_str).unwrap_or("");
        let ok = |body: Value| {
            SubscriptionServed::reply(200, json!({"status": 0, "body": body}).to_string())
        };
        let invalid = SubscriptionServed::reply(
            200,
            json!({"status": 503, "body": {}, "error": "Invalid Params"}).to_string(),
        );
        let mine = |s: &FixtureSubscription, appli: &str| {
            s.user.as_deref() == Some(FIXTURE_USER)
                && (appli.is_empty() || s.kinds.iter().any(|k| k == appli))
        };
        let profile = |s: &FixtureSubscription| {
            json!({
                "appli": s.kinds.first().and_then(|k| k.parse::<i64>().ok()),
                "callbackurl": s.callback_url,
                "comment": "",
            })
        };
        Some(match p("action") {
            "subscribe" => {
                if p("callbackurl").is_empty() || p("appli").parse::<i64>().is_err() {
                    return Some(invalid);
                }
                SubscriptionServed {
                    created: Some(FixtureSubscription {
                        callback_url: p("callbackurl").to_string(),
                        user: Some(user),
                        kinds: vec![p("appli").to_string()],
                        ..FixtureSubscription::default()
                    }),
                    ..ok(json!({}))
                }
            }
            "revoke" => {
                subscriptions
                    .retain(|s| !(mine(s, p("appli")) && s.callback_url == p("callbackurl")));
                ok(json!({}))
            }
            "list" => ok(json!({
                "profiles": subscriptions
                    .iter()
                    .filter(|s| mine(s, p("appli")))
                    .map(profile)
                    .collect::<Vec<_>>()
            })),
            "get" => {
                let appli = if p("appli").is_empty() {
                    "1"
                } else {
                    p("appli")
                };
                match subscriptions
                    .iter()
                    .find(|s| mine(s, appli) && s.callback_url == p("callbackurl"))
                {
                    Some(s) => ok(profile(s)),
                    None => invalid,
                }
            }
            _ => invalid,
        })
    }

    fn epoch_fields(&self) -> &'static [&'static str] {
        &[
            "date",
            "created",
            "modified",
            "startdate",
            "enddate",
            "updatetime",
        ]
    }

    fn serve(
        &self,
        resource: &ResourceSpec,
        params: &HashMap<String, String>,
        items: &[Value],
    ) -> Result<Value, String> {
        let want = action(resource.name).ok_or("no such service")?;
        match params.get("action") {
            Some(a) if a == want => {}
            Some(a) => return Err(format!("unknown action {a} for {}", resource.path)),
            None => return Err("action is required".into()),
        }
        let int = |k: &str| -> Result<Option<i64>, String> {
            params
                .get(k)
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| format!("{k} must be an integer"))
                })
                .transpose()
        };
        let offset = int("offset")?.unwrap_or(0).max(0) as usize;
        let lastupdate = int("lastupdate")?;
        let modified_since =
            |i: &Value| lastupdate.is_none_or(|l| i["modified"].as_i64().is_some_and(|m| m >= l));
        let getmeas = meastypes(resource.name);
        let mut selected: Vec<&Value> = if let Some(own) = getmeas {
            let (start, end) = (int("startdate")?, int("enddate")?);
            if lastupdate.is_none() && (start.is_none() || end.is_none()) {
                return Err("startdate and enddate, or lastupdate, are required".into());
            }
            let types: Option<Vec<i64>> = params
                .get("meastypes")
                .map(|t| t.split(',').filter_map(|x| x.trim().parse().ok()).collect());
            // One getmeas path, several resources: each is served the measure types its
            // adapter asks for (which is how the server tells them apart).
            if types.as_deref().is_some_and(|t| t != own) {
                return Err(format!(
                    "{} is read with meastypes={}",
                    resource.name,
                    meastypes_param(own)
                ));
            }
            let category: Option<i64> = int("category")?;
            items
                .iter()
                .filter(|i| {
                    let d = i["date"].as_i64().unwrap_or(0);
                    start.is_none_or(|s| d >= s) && end.is_none_or(|e| d <= e) && modified_since(i)
                })
                .filter(|i| category.is_none_or(|c| i["category"].as_i64() == Some(c)))
                .filter(|i| {
                    types.as_ref().is_none_or(|ts| {
                        i["measures"].as_array().is_some_and(|ms| {
                            ms.iter()
                                .any(|m| m["type"].as_i64().is_some_and(|t| ts.contains(&t)))
                        })
                    })
                })
                .collect()
        } else {
            let (start, end) = (params.get("startdateymd"), params.get("enddateymd"));
            if lastupdate.is_none() && (start.is_none() || end.is_none()) {
                return Err("startdateymd and enddateymd, or lastupdate, are required".into());
            }
            items
                .iter()
                .filter(|i| {
                    let d = i["date"].as_str().unwrap_or("");
                    start.is_none_or(|s| d >= s.as_str())
                        && end.is_none_or(|e| d <= e.as_str())
                        && modified_since(i)
                })
                .collect()
        };
        let page: Vec<&Value>;
        let more = offset + FIXTURE_PAGE < selected.len();
        if getmeas.is_some() {
            // getmeas lists the newest group first.
            selected.sort_by_key(|i| std::cmp::Reverse(i["date"].as_i64().unwrap_or(0)));
            page = selected
                .iter()
                .skip(offset)
                .take(FIXTURE_PAGE)
                .copied()
                .collect();
            let mut body = json!({"updatetime": Utc::now().timestamp(), "timezone": FIXTURE_ZONE, "measuregrps": page});
            if more {
                body["more"] = json!(1);
                body["offset"] = json!(offset + FIXTURE_PAGE);
            }
            Ok(json!({"status": 0, "body": body}))
        } else {
            page = selected
                .iter()
                .skip(offset)
                .take(FIXTURE_PAGE)
                .copied()
                .collect();
            let next = if more { offset + FIXTURE_PAGE } else { 0 };
            let mut body = json!({"more": more, "offset": next});
            body[list_key(resource.name)] = json!(page);
            Ok(json!({"status": 0, "body": body}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(resource: &str, n: u32) -> Vec<u8> {
        let path = format!(
            "{}/fixtures/withings/pages/{resource}/page_{n}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(path).unwrap()
    }

    #[test]
    fn pages_continue_while_more_is_set_by_sending_the_offset_back() {
        for r in [
            Resource::Body,
            Resource::Sleep,
            Resource::Workouts,
            Resource::Activity,
            Resource::BloodOxygen,
            Resource::BodyTemperature,
        ] {
            let p1 = Withings.parse_page(r, &page(r.as_str(), 1), None).unwrap();
            assert_eq!(p1.next.as_deref(), Some("4"), "{r}");
            let p2 = Withings
                .parse_page(r, &page(r.as_str(), 2), Some("4"))
                .unwrap();
            assert_eq!(p2.next, None, "{r}");
            assert!(!p1.records.is_empty() && !p2.records.is_empty());
        }
        let spec = ResourceSpec {
            name: Resource::Body,
            kind: "summary".into(),
            path: "/measure".into(),
            method: Some("POST".into()),
            windowed: true,
            window_days: None,
        };
        let w = Window {
            start: Utc.timestamp_opt(1_790_000_000, 0).unwrap(),
            end: Utc.timestamp_opt(1_790_086_400, 0).unwrap(),
        };
        let req = Withings.page_request(&spec, &w, Some("4"));
        assert_eq!(req.method, "POST");
        for kv in [
            ("action", "getmeas"),
            ("startdate", "1790000000"),
            ("enddate", "1790086399"),
            ("offset", "4"),
            ("meastypes", "1,6"),
        ] {
            assert!(
                req.form.contains(&(kv.0.to_string(), kv.1.to_string())),
                "{kv:?} in {:?}",
                req.form
            );
        }
    }

    #[test]
    fn measures_scale_by_their_unit_and_ambiguous_weighings_are_dropped() {
        assert_eq!(scaled(78412, -3), Some(78.412));
        assert_eq!(scaled(7710, -2), Some(77.1));
        assert_eq!(scaled(12, 2), Some(1200.0));
        let reply = json!({"status": 0, "body": {"timezone": "America/New_York", "measuregrps": [
            {"grpid": 1, "attrib": 0, "date": 1_784_000_000, "category": 1, "measures": [{"value": 70250, "type": 1, "unit": -3}, {"value": 1890, "type": 6, "unit": -2}]},
            {"grpid": 2, "attrib": 1, "date": 1_784_000_100, "category": 1, "measures": [{"value": 91000, "type": 1, "unit": -3}]},
            {"grpid": 3, "attrib": 0, "date": 1_784_000_200, "category": 1, "measures": [{"value": 120, "type": 10, "unit": 0}]},
            {"grpid": 4, "attrib": 2, "date": 1_767_225_600, "category": 1, "measures": [{"value": 701, "type": 1, "unit": -1}]}
        ]}});
        let p = Withings
            .parse_page(Resource::Body, reply.to_string().as_bytes(), None)
            .unwrap();
        let got: Vec<Value> = p.records.iter().map(Record::to_json).collect();
        assert_eq!(got.len(), 2, "{got:#?}");
        assert_eq!(
            (got[0]["weight"].clone(), got[0]["fat"].clone()),
            (json!(70.25), json!(18.9))
        );
        assert_eq!(
            got[0]["timezone_offset"],
            -4 * 3600,
            "New York in July is on daylight time"
        );
        assert_eq!(
            got[1]["timezone_offset"],
            -5 * 3600,
            "and on standard time on 1 January"
        );
        assert_eq!(got[1]["source"]["type"], "manual");
        assert_eq!(got[1]["fat"], Value::Null);
    }

    /// SpO2 (54) and body temperature (71) are read from getmeas like weight, each asked
    /// for alone: a sample per group, scaled by its unit, in Junction's units; a group
    /// without the type, or possibly someone else's, is none; skin temperature (73) is not
    /// body temperature.
    #[test]
    fn spo2_and_body_temperature_are_samples_of_their_own_measure_type() {
        let reply = |grps: Value| {
            json!({"status": 0, "body": {"timezone": "Europe/Berlin", "measuregrps": grps}})
                .to_string()
                .into_bytes()
        };
        let grps = json!([
            {"grpid": 11, "attrib": 0, "date": 1_790_000_000, "category": 1,
             "measures": [{"value": 965, "type": 54, "unit": -1}, {"value": 61, "type": 11, "unit": 0}]},
            {"grpid": 12, "attrib": 2, "date": 1_790_000_100, "category": 1,
             "measures": [{"value": 3838, "type": 71, "unit": -2}]},
            {"grpid": 13, "attrib": 0, "date": 1_790_000_200, "category": 1,
             "measures": [{"value": 3342, "type": 73, "unit": -2}]},
            {"grpid": 14, "attrib": 1, "date": 1_790_000_300, "category": 1,
             "measures": [{"value": 92, "type": 54, "unit": 0}, {"value": 3650, "type": 71, "unit": -2}]}
        ]);
        let o = Withings
            .parse_page(Resource::BloodOxygen, &reply(grps.clone()), None)
            .unwrap();
        assert_eq!(
            o.records.len(),
            1,
            "only group 11 has an SpO2 of this user's"
        );
        let r = o.records[0].to_json();
        assert_eq!(
            (r["value"].clone(), r["unit"].clone(), r["type"].clone()),
            (json!(96.5), json!("%"), json!("blood_oxygen"))
        );
        assert_eq!(
            (
                r["provider_id"].clone(),
                r["timestamp"].clone(),
                r["timezone_offset"].clone()
            ),
            (json!("11"), json!("2026-09-21T14:13:20+00:00"), json!(7200))
        );
        assert_eq!(
            r["source"],
            json!({"provider": "withings", "type": "unknown"})
        );
        assert!(r.get("start").is_none(), "an instant");

        let t = Withings
            .parse_page(Resource::BodyTemperature, &reply(grps.clone()), None)
            .unwrap();
        assert_eq!(t.records.len(), 1, "71 only: not 73's skin temperature");
        let r = t.records[0].to_json();
        assert_eq!(
            (
                r["value"].clone(),
                r["unit"].clone(),
                r["provider_id"].clone()
            ),
            (json!(38.38), json!("°C"), json!("12"))
        );
        assert_eq!(r["source"]["type"], "manual", "attrib 2: entered by hand");
        assert_eq!(
            (r["start"].clone(), r["end"].clone()),
            (r["timestamp"].clone(), r["timestamp"].clone())
        );
        assert!(r["sensor_location"].is_null(), "Withings names no site");
        // Neither is a weighing, and a weighing is neither.
        assert!(Withings
            .parse_page(Resource::Body, &reply(grps), None)
            .unwrap()
            .records
            .is_empty());
        let weighing = json!([{"grpid": 15, "attrib": 0, "date": 1_790_000_000, "category": 1,
                                "measures": [{"value": 72450, "type": 1, "unit": -3}]}]);
        assert!(Withings
            .parse_page(Resource::BloodOxygen, &reply(weighing), None)
            .unwrap()
            .records
            .is_empty());
        // Each asks for its own type alone, on the same path and service as body.
        let p = crate::providers::find("withings").unwrap();
        let w = Window {
            start: Utc.timestamp_opt(1_790_000_000, 0).unwrap(),
            end: Utc.timestamp_opt(1_790_086_400, 0).unwrap(),
        };
        for (r, types) in [
            (Resource::BloodOxygen, "54"),
            (Resource::BodyTemperature, "71"),
        ] {
            let spec = p.resource(r).unwrap();
            assert_eq!(spec.path, "/measure");
            let req = Withings.page_request(spec, &w, None);
            for kv in [
                ("action", "getmeas"),
                ("meastypes", types),
                ("category", "1"),
            ] {
                assert!(
                    req.form.contains(&(kv.0.to_string(), kv.1.to_string())),
                    "{r}: {kv:?} in {:?}",
                    req.form
                );
            }
        }
    }

    /// The fixture server tells the three getmeas resources apart by their measure types
    /// and serves each its own data set.
    #[test]
    fn the_fixture_server_serves_each_getmeas_resource_its_measure_types() {
        let p = crate::providers::find("withings").unwrap();
        let items: Vec<Value> = serde_json::from_str(include_str!(
            "../../fixtures/withings/data/blood_oxygen.json"
        ))
        .unwrap();
        let params = |types: &str| -> HashMap<String, String> {
            [
                ("action", "getmeas"),
                ("meastypes", types),
                ("category", "1"),
                ("startdate", "1780000000"),
                ("enddate", "1800000000"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        let oxygen = p.resource(Resource::BloodOxygen).unwrap();
        let body = p.resource(Resource::Body).unwrap();
        assert!(WithingsFixtures
            .serve(oxygen, &params("1,6"), &items)
            .is_err());
        assert!(WithingsFixtures.serve(body, &params("54"), &items).is_err());
        let (mut offset, mut seen) = (None::<String>, 0);
        loop {
            let mut q = params("54");
            if let Some(o) = &offset {
                q.insert("offset".into(), o.clone());
            }
            let reply = WithingsFixtures.serve(oxygen, &q, &items).unwrap();
            let page = Withings
                .parse_page(Resource::BloodOxygen, reply.to_string().as_bytes(), None)
                .unwrap();
            seen += page.records.len();
            match page.next {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
        let others = items.iter().filter(|g| g["attrib"] == 1).count();
        assert!(others > 0, "the data set has a reading of someone else's");
        assert_eq!(seen, items.len() - others);
    }

    #[test]
    fn objectives_are_never_records_and_are_reported_as_removals() {
        let p = Withings
            .parse_page(Resource::Body, &page("body", 2), Some("4"))
            .unwrap();
        assert_eq!(
            p.removals,
            vec![Removal {
                resource: Resource::Body,
                provider_id: "7483312904".into()
            }]
        );
        assert!(p.records.iter().all(|r| r.provider_id != "7483312904"));
        // The same group as a real measure (category 1) is a weighing.
        let mut reply: Value = serde_json::from_slice(&page("body", 2)).unwrap();
        for g in reply["body"]["measuregrps"].as_array_mut().unwrap() {
            if g["grpid"] == 7483312904_i64 {
                g["category"] = json!(1);
            }
        }
        let as_measure = Withings
            .parse_page(Resource::Body, reply.to_string().as_bytes(), None)
            .unwrap();
        assert!(as_measure.removals.is_empty());
        assert!(as_measure
            .records
            .iter()
            .any(|r| r.provider_id == "7483312904" && r.fields["weight"] == json!(75.0)));
        // The request asks for real measures only.
        let spec = crate::providers::find("withings")
            .unwrap()
            .resource(Resource::Body)
            .unwrap();
        let w = Window {
            start: Utc.timestamp_opt(1_790_000_000, 0).unwrap(),
            end: Utc.timestamp_opt(1_790_086_400, 0).unwrap(),
        };
        assert!(Withings
            .page_request(spec, &w, None)
            .form
            .contains(&("category".to_string(), "1".to_string())));
    }

    #[test]
    fn daily_activity_reads_steps_distance_calories_and_minutes_per_intensity() {
        let p = Withings
            .parse_page(Resource::Activity, &page("activity", 1), None)
            .unwrap();
        let day = |d: &str| {
            p.records
                .iter()
                .find(|r| r.provider_id == d)
                .map(Record::to_json)
                .unwrap_or_else(|| panic!("{d} in {:?}", p.records))
        };
        let oct18 = day("2026-10-18");
        assert_eq!(oct18["resource"], "activity");
        assert_eq!(oct18["calendar_date"], "2026-10-18");
        assert_eq!(oct18["steps"], 13975);
        assert_eq!(oct18["distance"], 11003.6);
        assert_eq!(oct18["calories_active"], 671.2);
        assert_eq!(oct18["calories_total"], 2736.1);
        assert_eq!(oct18["floors_climbed"], 19);
        // 6060 s soft, 2940 s moderate, 1800 s intense, in Vital's minutes.
        assert_eq!(
            (&oct18["low"], &oct18["medium"], &oct18["high"]),
            (&json!(101.0), &json!(49.0), &json!(30.0))
        );
        assert_eq!(oct18["timezone_offset"], 7200, "Berlin summer time");
        assert_eq!(
            oct18["source"],
            json!({"provider": "withings", "type": "watch"})
        );
        assert_eq!(
            day("2026-10-25")["timezone_offset"],
            3600,
            "the clocks went back at 03:00: noon is on winter time"
        );
        let p2 = Withings
            .parse_page(Resource::Activity, &page("activity", 2), Some("4"))
            .unwrap();
        let phone = p2.records[0].to_json();
        assert_eq!(phone["source"]["type"], "app", "brand 18, not a tracker");
        assert_eq!(phone["low"], json!(0.0));
        let ny = json!({"status": 0, "body": {"activities": [
            {"date": "2026-09-21", "timezone": "America/New_York", "steps": 100, "soft": 90}
        ], "more": false, "offset": 0}});
        let r = Withings
            .parse_page(Resource::Activity, ny.to_string().as_bytes(), None)
            .unwrap();
        assert_eq!(r.records[0].fields["timezone_offset"], -4 * 3600);
        assert_eq!(r.records[0].fields["low"], json!(1.5));
        assert_eq!(r.records[0].fields["distance"], Value::Null);
        let bad = json!({"status": 0, "body": {"activities": [{"date": "21/09/2026"}]}});
        assert!(matches!(
            Withings.parse_page(Resource::Activity, bad.to_string().as_bytes(), None),
            Err(ProviderError::Malformed { field, .. }) if field == "body.activities[0].date"
        ));
    }

    #[test]
    fn sleep_types_follow_vitals_definitions() {
        let night = |total: Option<i64>, end: i64, zone: Option<&str>| {
            let mut data = serde_json::Map::new();
            if let Some(t) = total {
                data.insert("total_sleep_time".into(), json!(t));
            }
            let mut s = json!({"id": 1, "startdate": end - 20_000, "enddate": end, "date": "2026-10-11", "data": data});
            if let Some(z) = zone {
                s["timezone"] = json!(z);
            }
            sleep(&s).unwrap().fields["type"].clone()
        };
        // 2026-10-11T12:00:00Z is 14:00 in Berlin; 2026-10-11T17:00:00Z is 19:00.
        let (two_pm, seven_pm) = (1_791_720_000, 1_791_738_000);
        let berlin = Some("Europe/Berlin");
        assert_eq!(night(Some(3 * 3600), two_pm, berlin), "long_sleep");
        assert_eq!(night(Some(3 * 3600 - 1), two_pm, berlin), "short_sleep");
        assert_eq!(night(Some(3600), seven_pm, berlin), "unknown");
        assert_eq!(
            night(Some(3600), two_pm, None),
            "unknown",
            "no zone, no local time"
        );
        assert_eq!(night(None, two_pm, berlin), "unknown");
        let all = Withings
            .parse_page(Resource::Sleep, &page("sleep", 1), None)
            .unwrap();
        assert!(all.records.iter().all(|r| r.fields["type"] == "long_sleep"));
    }

    #[test]
    fn out_of_range_numbers_are_errors_not_panics() {
        let w = json!({"id": 9, "startdate": 1_790_000_000, "enddate": 1_790_001_800, "date": "2026-09-21",
                       "data": {"pause_duration": 1e300}});
        assert!(
            matches!(workout(&w), Err(ProviderError::Malformed { field, .. }) if field == "data.pause_duration")
        );
        let w = json!({"id": 9, "startdate": i64::MIN, "enddate": i64::MAX, "date": "2026-09-21"});
        assert!(
            matches!(workout(&w), Err(ProviderError::Malformed { field, .. }) if field == "enddate")
        );
        let s = json!({"id": 9, "startdate": i64::MIN, "enddate": i64::MAX, "date": "2026-09-21"});
        assert!(sleep(&s).is_err());
        let g = json!({"status": 0, "body": {"measuregrps": [{"grpid": 1, "date": 253_402_300_800_i64, "category": 1,
                       "measures": [{"value": 70000, "type": 1, "unit": -3}]}]}});
        assert!(
            matches!(
                Withings.parse_page(Resource::Body, g.to_string().as_bytes(), None),
                Err(ProviderError::Malformed { field, .. }) if field == "body.measuregrps[0].date"
            ),
            "year 10000"
        );
    }

    #[test]
    fn errors_inside_a_200_are_errors() {
        let expired = include_bytes!("../../fixtures/withings/errors/401.json");
        assert!(matches!(
            Withings.in_band_error(None, expired),
            Some(ProviderError::Unauthorized(_))
        ));
        assert!(matches!(
            Withings.parse_page(Resource::Body, expired, None),
            Err(ProviderError::Unauthorized(_))
        ));
        assert!(matches!(
            Withings.in_band_error(
                None,
                include_bytes!("../../fixtures/withings/errors/601.json")
            ),
            Some(ProviderError::RateLimited { .. })
        ));
        assert!(matches!(
            Withings.in_band_error(
                None,
                include_bytes!("../../fixtures/withings/errors/2555.json")
            ),
            Some(ProviderError::Transient(_))
        ));
        assert!(Withings.in_band_error(None, &page("sleep", 1)).is_none());
        let bad = br#"{"status": 0, "body": {"series": [{"id": 5, "startdate": "yesterday"}]}}"#;
        match Withings.parse_page(Resource::Sleep, bad, None) {
            Err(ProviderError::Malformed { field, .. }) => {
                assert_eq!(field, "body.series[0].startdate")
            }
            other => panic!("{other:?}"),
        }
        let bad_zone = br#"{"status": 0, "body": {"series": [{"id": 5, "startdate": 1, "enddate": 2, "date": "2026-01-01", "timezone": "Mars/Olympus"}]}}"#;
        assert!(
            matches!(Withings.parse_page(Resource::Sleep, bad_zone, None), Err(ProviderError::Malformed { field, .. }) if field == "body.series[0].timezone")
        );
    }

    #[test]
    fn token_replies_are_unwrapped_and_refusals_read_from_the_status() {
        let ok = Withings
            .token_reply(
                200,
                include_bytes!("../../fixtures/withings/oauth/token.json"),
            )
            .unwrap();
        let v: Value = serde_json::from_slice(&ok).unwrap();
        assert!(
            v["access_token"].is_string()
                && v["refresh_token"].is_string()
                && v["expires_in"].is_number(),
            "{v}"
        );
        assert!(Withings.external_user_id(&v).is_some());
        assert_eq!(
            Withings.external_user_id(&json!({"userid": 363})),
            Some("363".into())
        );
        assert!(matches!(
            Withings.token_reply(
                200,
                include_bytes!("../../fixtures/withings/oauth/invalid_grant.json")
            ),
            Err(ProviderError::Refused(_))
        ));
        assert!(matches!(
            Withings.token_reply(
                200,
                include_bytes!("../../fixtures/withings/errors/601.json")
            ),
            Err(ProviderError::RateLimited { .. })
        ));
        assert_eq!(
            Withings
                .token_reply(502, b"<html>bad gateway</html>")
                .unwrap(),
            b"<html>bad gateway</html>"
        );
    }

    #[test]
    fn unknown_workout_categories_pass_as_other() {
        let w = json!({"id": 9, "category": 9999, "startdate": 1_790_000_000, "enddate": 1_790_001_800, "date": "2026-09-21", "data": {"calories": 120}});
        let r = workout(&w).unwrap();
        assert_eq!(r.fields["sport"], json!({"name": "Other", "slug": "other"}));
        assert_eq!(r.fields["moving_time"], 1800);
        assert_eq!(
            r.fields["timezone_offset"],
            Value::Null,
            "no zone, no offset: optional stays optional"
        );
    }

    #[test]
    fn the_fixture_server_checks_the_action_and_pages_by_offset() {
        let spec = ResourceSpec {
            name: Resource::Sleep,
            kind: "summary".into(),
            path: "/v2/sleep".into(),
            method: Some("POST".into()),
            windowed: true,
            window_days: None,
        };
        let items: Vec<Value> =
            serde_json::from_str(include_str!("../../fixtures/withings/data/sleep.json")).unwrap();
        let params = |extra: &[(&str, &str)]| -> HashMap<String, String> {
            let mut p: HashMap<String, String> = [
                ("action", "getsummary"),
                ("startdateymd", "2026-08-01"),
                ("enddateymd", "2026-11-30"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            p.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            p
        };
        assert!(WithingsFixtures
            .serve(&spec, &params(&[("action", "getworkouts")]), &items)
            .is_err());
        let mut seen = 0;
        let mut offset = None::<String>;
        loop {
            let extra: Vec<(&str, &str)> = offset
                .as_deref()
                .map(|o| vec![("offset", o)])
                .unwrap_or_default();
            let reply = WithingsFixtures
                .serve(&spec, &params(&extra), &items)
                .unwrap();
            let page = Withings
                .parse_page(
                    Resource::Sleep,
                    reply.to_string().as_bytes(),
                    offset.as_deref(),
                )
                .unwrap();
            seen += page.records.len();
            match page.next {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, items.len());
        // getactivity shares /v2/measure with getworkouts; its items are `activities`.
        let spec = crate::providers::find("withings")
            .unwrap()
            .resource(Resource::Activity)
            .unwrap();
        let days: Vec<Value> =
            serde_json::from_str(include_str!("../../fixtures/withings/data/activity.json"))
                .unwrap();
        let mut p = params(&[("action", "getactivity")]);
        let reply = WithingsFixtures.serve(spec, &p, &days).unwrap();
        assert_eq!(
            reply["body"]["activities"].as_array().unwrap().len(),
            FIXTURE_PAGE
        );
        p.insert("action".into(), "getworkouts".into());
        assert!(WithingsFixtures.serve(spec, &p, &days).is_err());
    }

    mod push {
        use super::super::*;
        use crate::providers::push::testing::{at, Owned};

        fn form(body: &[u8]) -> Owned {
            Owned::new(
                &[("content-type", "application/x-www-form-urlencoded")],
                &[],
                body,
                at("2026-11-21T08:00:00Z"),
            )
        }

        fn notices(body: &[u8]) -> Vec<Notice> {
            let r = form(body);
            Withings
                .verify_push(&r.req(), &PushSecrets::default())
                .unwrap();
            Withings.parse_push(&r.req()).unwrap()
        }

        #[test]
        fn the_manifest_subscribes_to_the_categories_the_adapter_reads() {
            let m = &crate::providers::find("withings").unwrap().manifest;
            let push = m.push.as_ref().unwrap();
            let kinds: Vec<&str> = push.notifications.iter().map(|n| n.kind.as_str()).collect();
            let ours: Vec<String> = SUBSCRIBED_APPLI
                .iter()
                .map(|(a, _)| a.to_string())
                .collect();
            assert_eq!(kinds, ours);
            for (n, (_, resources)) in push.notifications.iter().zip(SUBSCRIBED_APPLI) {
                assert_eq!(n.resources, resources.to_vec(), "appli {}", n.kind);
            }
        }

        #[test]
        fn the_reachability_check_is_answered_and_nothing_else_is_one() {
            let head = Owned::new(&[], &[], b"", at("2026-11-21T08:00:00Z"));
            let reply = Withings
                .push_handshake(&head.req(), &PushSecrets::default())
                .unwrap()
                .unwrap();
            assert_eq!((reply.status, reply.body.len()), (200, 0));
            let note = form(include_bytes!("../../fixtures/withings/push/body.form"));
            assert!(Withings
                .push_handshake(&note.req(), &PushSecrets::default())
                .is_none());
        }

        #[test]
        fn a_notification_must_name_a_user_and_a_category_we_subscribe_to() {
            let refused = |b: &[u8]| {
                matches!(
                    Withings.verify_push(&form(b).req(), &PushSecrets::default()),
                    Err(PushError::Unverified(_))
                )
            };
            assert!(!refused(include_bytes!(
                "../../fixtures/withings/push/body.form"
            )));
            assert!(refused(b"appli=1&startdate=1&enddate=2"), "no user");
            assert!(refused(b"userid=abc&appli=1"), "not a user id");
            assert!(
                refused(b"userid=37921640&appli=4&startdate=1&enddate=2"),
                "blood pressure: not subscribed"
            );
            assert!(refused(b"userid=37921640"), "no category");
        }

        #[test]
        fn each_category_becomes_changes_over_its_range_and_unlinking_ends_the_connection() {
            let body = notices(include_bytes!("../../fixtures/withings/push/body.form"));
            assert_eq!(body.len(), 1);
            assert_eq!(
                body[0].user, "37921640",
                "the userid external_user_id gives"
            );
            assert_eq!(
                body[0].action,
                NoticeAction::Changed {
                    resource: Resource::Body,
                    record: None,
                    window: Some(Window {
                        start: at("2026-11-19T06:06:12Z"),
                        end: at("2026-11-19T06:06:13Z"),
                    })
                }
            );
            assert_eq!(body[0].at, Some(at("2026-11-19T06:06:12Z")));
            let sleep = notices(include_bytes!("../../fixtures/withings/push/sleep.form"));
            assert!(matches!(
                sleep[0].action,
                NoticeAction::Changed { resource: Resource::Sleep, window: Some(w), .. }
                    if w.start.timestamp() == 1795126200 && w.end.timestamp() == 1795153921
            ));
            // Activity (appli 16) holds daily activity and workouts; a `date` is a local
            // day of an unknown zone, read with a day either side.
            let activity = notices(include_bytes!("../../fixtures/withings/push/activity.form"));
            let day = Some(Window {
                start: at("2026-11-19T00:00:00Z"),
                end: at("2026-11-22T00:00:00Z"),
            });
            assert_eq!(
                activity
                    .iter()
                    .map(|n| n.action.clone())
                    .collect::<Vec<_>>(),
                vec![
                    NoticeAction::Changed {
                        resource: Resource::Activity,
                        record: None,
                        window: day
                    },
                    NoticeAction::Changed {
                        resource: Resource::Workouts,
                        record: None,
                        window: day
                    },
                ]
            );
            assert_ne!(
                activity[0].key, activity[1].key,
                "one notification, two notices"
            );
            assert_eq!(
                activity[0].key,
                notices(include_bytes!("../../fixtures/withings/push/activity.form"))[0].key
            );
            let unlink = notices(include_bytes!(
                "../../fixtures/withings/push/user_unlink.form"
            ));
            assert_eq!(unlink[0].action, NoticeAction::Deauthorized);
            assert!(matches!(
                notices(b"userid=37921640&appli=46&action=delete")[0].action,
                NoticeAction::Deauthorized
            ));
            assert!(matches!(
                notices(b"userid=37921640&appli=46&action=update")[0].action,
                NoticeAction::Ignored(_)
            ));
            // Without a range, the resource's poll window.
            assert!(matches!(
                notices(b"userid=37921640&appli=44")[0].action,
                NoticeAction::Changed { window: None, .. }
            ));
            for bad in [
                &b"userid=37921640&appli=1&startdate=x&enddate=2"[..],
                b"userid=37921640&appli=1&startdate=9&enddate=2",
                b"userid=37921640&appli=16&date=soon",
            ] {
                assert!(matches!(
                    Withings.parse_push(&form(bad).req()),
                    Err(PushError::Malformed(_))
                ));
            }
        }

        #[test]
        fn every_user_is_subscribed_per_category_with_their_token_and_revoked_alike() {
            let cb = "https://gw.example/v1/providers/withings/notifications";
            let calls = Withings.user_subscribe_calls(cb);
            assert_eq!(calls.len(), 4);
            for (c, appli) in calls.iter().zip(["1", "16", "44", "46"]) {
                assert_eq!((c.method, c.url.as_str()), ("POST", "/notify"));
                assert!(c.user_token && !c.basic_auth);
                assert_eq!(
                    c.form,
                    vec![
                        ("action".to_string(), "subscribe".to_string()),
                        ("callbackurl".into(), cb.into()),
                        ("appli".into(), appli.into())
                    ]
                );
            }
            assert!(Withings
                .user_unsubscribe_calls(cb)
                .iter()
                .all(|c| c.form[0].1 == "revoke" && c.user_token));
            assert!(
                Withings
                    .subscribe_calls(cb, &PushSecrets::default())
                    .is_empty(),
                "no app-level subscription"
            );
            assert_eq!(
                Withings
                    .subscription_reply(
                        200,
                        include_bytes!("../../fixtures/withings/push/subscribed.json")
                    )
                    .unwrap(),
                Subscribed::default()
            );
            assert!(matches!(
                Withings.subscription_reply(
                    200,
                    include_bytes!("../../fixtures/withings/errors/401.json")
                ),
                Err(ProviderError::Unauthorized(_))
            ));
        }

        #[test]
        fn the_fixture_server_keeps_subscriptions_per_user_and_category_and_notifies_them() {
            let now = at("2026-11-21T08:00:00Z");
            let cb = "https://gw.example/v1/providers/withings/notifications";
            let headers = reqwest::header::HeaderMap::new();
            let mut subs = vec![];
            for call in Withings.user_subscribe_calls(cb) {
                let params = call.form.iter().cloned().collect();
                let req = SubscriptionRequest {
                    method: "POST",
                    path: "/notify",
                    headers: &headers,
                    params: &params,
                    body: b"",
                    now,
                };
                let served = WithingsFixtures
                    .serve_subscription(&req, &mut subs, &PushSecrets::default())
                    .unwrap();
                assert!(Withings
                    .subscription_reply(served.status, served.body.as_bytes())
                    .is_ok());
                subs.push(served.created.unwrap());
            }
            assert_eq!(subs.len(), 4);
            let list: std::collections::BTreeMap<String, String> =
                [("action".to_string(), "list".to_string())]
                    .into_iter()
                    .collect();
            let req = SubscriptionRequest {
                method: "POST",
                path: "/notify",
                headers: &headers,
                params: &list,
                body: b"",
                now,
            };
            let listed: Value = serde_json::from_str(
                &WithingsFixtures
                    .serve_subscription(&req, &mut subs, &PushSecrets::default())
                    .unwrap()
                    .body,
            )
            .unwrap();
            assert_eq!(listed["body"]["profiles"].as_array().unwrap().len(), 4);
            let bad: std::collections::BTreeMap<String, String> =
                [("action".to_string(), "subscribe".to_string())]
                    .into_iter()
                    .collect();
            let req_bad = SubscriptionRequest {
                params: &bad,
                ..req
            };
            let refused = WithingsFixtures
                .serve_subscription(&req_bad, &mut subs, &PushSecrets::default())
                .unwrap();
            assert!(Withings
                .subscription_reply(refused.status, refused.body.as_bytes())
                .is_err());

            let data = |f: &str| -> Vec<Value> {
                serde_json::from_str(WithingsFixtures.fixture(f).unwrap()).unwrap()
            };
            let (body, sleep, workouts, activity) = (
                data("data/body.json"),
                data("data/sleep.json"),
                data("data/workouts.json"),
                data("data/activity.json"),
            );
            for (resource, item, wants) in [
                (Resource::Body, body.last().unwrap(), vec![Resource::Body]),
                (
                    Resource::Sleep,
                    sleep.last().unwrap(),
                    vec![Resource::Sleep],
                ),
                (
                    Resource::Workouts,
                    workouts.last().unwrap(),
                    vec![Resource::Activity, Resource::Workouts],
                ),
                (
                    Resource::Activity,
                    activity.last().unwrap(),
                    vec![Resource::Activity, Resource::Workouts],
                ),
            ] {
                for kind in [
                    FixtureChangeKind::Created,
                    FixtureChangeKind::Updated,
                    FixtureChangeKind::Deleted,
                ] {
                    let change = FixtureChange {
                        user: "37921640",
                        resource,
                        kind,
                        item: Some(item),
                        record: None,
                        at: now,
                    };
                    let pushes =
                        WithingsFixtures.push_for(&change, &subs, &PushSecrets::default(), now);
                    assert_eq!(pushes.len(), 1, "{resource} {kind:?}");
                    assert_eq!(pushes[0].0, cb);
                    assert_eq!(
                        pushes[0].1.content_type,
                        "application/x-www-form-urlencoded"
                    );
                    let r = Owned::of(&pushes[0].1, now);
                    Withings
                        .verify_push(&r.req(), &PushSecrets::default())
                        .unwrap();
                    let n = Withings.parse_push(&r.req()).unwrap();
                    let got: Vec<Resource> = n
                        .iter()
                        .map(|x| match &x.action {
                            NoticeAction::Changed {
                                resource,
                                window: Some(_),
                                ..
                            } => *resource,
                            other => panic!("{other:?}"),
                        })
                        .collect();
                    assert_eq!(got, wants);
                    // The window holds the item: the page request for it reads it back.
                    let NoticeAction::Changed {
                        window: Some(w), ..
                    } = &n[0].action
                    else {
                        unreachable!()
                    };
                    let t = item.get("startdate").or(item.get("date")).unwrap();
                    if let Some(t) = t.as_i64() {
                        assert!(
                            w.start.timestamp() <= t && t < w.end.timestamp(),
                            "{resource}"
                        );
                    }
                }
            }
            let gone = FixtureChange {
                user: "37921640",
                resource: Resource::Body,
                kind: FixtureChangeKind::Deauthorized,
                item: None,
                record: None,
                at: now,
            };
            let pushes = WithingsFixtures.push_for(&gone, &subs, &PushSecrets::default(), now);
            let n = Withings
                .parse_push(&Owned::of(&pushes[0].1, now).req())
                .unwrap();
            assert_eq!(n[0].action, NoticeAction::Deauthorized);
            // Another user's change reaches no one; a revoked category is not notified.
            let other = FixtureChange {
                user: "1",
                ..gone.clone()
            };
            assert!(WithingsFixtures
                .push_for(&other, &subs, &PushSecrets::default(), now)
                .is_empty());
            let revoke: std::collections::BTreeMap<String, String> = Withings
                .user_unsubscribe_calls(cb)[2]
                .form
                .iter()
                .cloned()
                .collect();
            let req_revoke = SubscriptionRequest {
                params: &revoke,
                ..req
            };
            WithingsFixtures
                .serve_subscription(&req_revoke, &mut subs, &PushSecrets::default())
                .unwrap();
            assert_eq!(subs.len(), 3);
            let night = FixtureChange {
                resource: Resource::Sleep,
                kind: FixtureChangeKind::Created,
                item: sleep.last(),
                ..gone
            };
            assert!(WithingsFixtures
                .push_for(&night, &subs, &PushSecrets::default(), now)
                .is_empty());
        }
    }
}
