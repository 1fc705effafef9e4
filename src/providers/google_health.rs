//! Google Health API v4 (<https://developers.google.com/health>), the Fitbit Web API's
//! successor. Every data type is its own collection, `users/me/dataTypes/{type}`: listed
//! with `GET …/dataPoints?filter=…&pageSize=…&pageToken=…` (AIP-160 filters on a field
//! each type documents, newest first, `{"dataPoints": [...], "nextPageToken": "..."}`)
//! or summed per civil day with `POST …/dataPoints:dailyRollUp` and a JSON body. Field
//! names, types and units are the discovery document's
//! (<https://health.googleapis.com/$discovery/rest?version=v4>): proto3 JSON, so int64
//! values arrive as strings, durations and UTC offsets as `"-18000s"`, instants as RFC
//! 3339 UTC, lengths in millimetres, weight in grams, energy in kcal, and empty lists or
//! tokens are left out. A resource that reads several data types (body: weight then body
//! fat; activity: steps, distance, total and active energy) walks them in phases kept
//! in the page cursor. Quirks, with sources, are in `fixtures/google_health/README.md`.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::normalize::*;
use super::push::*;
use super::{
    Adapter, Impersonation, Page, PageRequest, ProviderError, Record, ResourceSpec, Window,
};
use crate::events::Resource;

pub struct GoogleHealth;

const ID: &str = "google_health";
/// DISCOVERY ListDataPoints `pageSize`: "The maximum page size is 10000".
const LIST_PAGE: usize = 10_000;
/// DISCOVERY ListDataPoints `pageSize`: "The maximum page size for `exercise` and
/// `sleep` is 25", which is also their default.
const SESSION_PAGE: usize = 25;
/// The widest UTC offsets in use (−12:00 and +14:00). Exercise can only be filtered by
/// civil (local wall-clock) start time, so a window's UTC bounds are widened by these to
/// catch every exercise that started inside it, wherever the user was.
const MAX_WEST_SECS: i64 = 12 * 3600;
const MAX_EAST_SECS: i64 = 14 * 3600;

/// The data types a resource reads, in order: one phase each. The first is the
/// manifest's `path`.
fn phases(r: Resource) -> &'static [&'static str] {
    match r {
        Resource::Workouts => &["exercise"],
        Resource::Sleep => &["sleep"],
        Resource::Heartrate => &["heart-rate"],
        Resource::Hrv => &["heart-rate-variability"],
        Resource::Body => &["weight", "body-fat"],
        Resource::Activity => &[
            "steps",
            "distance",
            "total-calories",
            "active-energy-burned",
        ],
        Resource::BloodOxygen => &["oxygen-saturation"],
        Resource::RespiratoryRate => &["respiratory-rate-sleep-summary"],
        Resource::BodyTemperature => &["core-body-temperature"],
        Resource::Distance => &["distance"],
        Resource::CaloriesActive => &["active-energy-burned"],
        _ => &[],
    }
}

/// The interval data types read as lists (DISCOVERY DataPoint: "the `distance` interval
/// data type collection", …): filtered on `{type}.interval.start_time`, each point an
/// `ObservationTimeInterval`. The other listed types are samples (`sampleTime`), sessions
/// or rollups.
const INTERVAL_TYPES: &[&str] = &["steps", "distance", "active-energy-burned"];

/// The list path of a data type (kebab case in URLs, DISCOVERY `parent`).
fn list_path(data_type: &str) -> String {
    format!("/v4/users/me/dataTypes/{data_type}/dataPoints")
}

fn rollup_path(data_type: &str) -> String {
    format!("{}:dailyRollUp", list_path(data_type))
}

/// A data type's name in filters (snake case: the data-types table's "filter parameter",
/// DISCOVERY's `daily_heart_rate_variability.date` example).
fn filter_name(data_type: &str) -> String {
    data_type.replace('-', "_")
}

/// A data type's member of the DataPoint union (camel case, DISCOVERY `DataPoint`).
fn member(data_type: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in data_type.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Where a multi-phase resource is: its phase, the page token within it, and (activity)
/// the days summed so far. Single-phase resources use the page token as the cursor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Cursor {
    #[serde(default)]
    p: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    acc: BTreeMap<String, Day>,
}

/// One civil day of activity, as the rollups of each data type fill it in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Day {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    steps: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    distance_mm: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    total_kcal: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active_kcal: Option<f64>,
}

fn read_cursor(resource: Resource, cursor: Option<&str>) -> Result<Cursor, ProviderError> {
    let Some(c) = cursor else {
        return Ok(Cursor::default());
    };
    if phases(resource).len() > 1 {
        serde_json::from_str(c).map_err(|e| ProviderError::malformed("cursor", e.to_string()))
    } else {
        Ok(Cursor {
            t: Some(c.to_string()),
            ..Cursor::default()
        })
    }
}

fn write_cursor(resource: Resource, c: &Cursor) -> String {
    if phases(resource).len() > 1 {
        serde_json::to_string(c).unwrap_or_default()
    } else {
        c.t.clone().unwrap_or_default()
    }
}

/// Instants as the filter examples write them (`"2023-11-24T00:00:00Z"`).
fn rfc3339_z(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The civil days a window's activity covers: `[start + 1 day, end + 1 day)` by UTC date.
/// Windows tile by instant, so these tile by day; the shift makes the newest window end
/// with today, which is still filling up.
fn civil_days(w: &Window) -> (NaiveDate, NaiveDate) {
    let from = w.start.date_naive() + Duration::days(1);
    let to = (w.end.date_naive() + Duration::days(1)).max(from + Duration::days(1));
    (from, to)
}

fn civil_date(d: NaiveDate) -> Value {
    use chrono::Datelike;
    json!({"date": {"year": d.year(), "month": d.month(), "day": d.day()}})
}

impl Adapter for GoogleHealth {
    fn page_request(
        &self,
        resource: &ResourceSpec,
        window: &Window,
        cursor: Option<&str>,
    ) -> PageRequest {
        let types = phases(resource.name);
        // A cursor this adapter did not write cannot be followed; parse_page reports it.
        let c = read_cursor(resource.name, cursor).unwrap_or_default();
        let Some(data_type) = types.get(c.p).or(types.first()) else {
            return PageRequest::get(resource.path.clone(), vec![]);
        };
        if resource.name == Resource::Activity {
            let (from, to) = civil_days(window);
            // DISCOVERY DailyRollUpDataPointsRequest: a closed-open civil `range`, one-day
            // windows, at most 10,000 points a page (two weeks need 14).
            let mut body = json!({
                "range": {"start": civil_date(from), "end": civil_date(to)},
                "windowSizeDays": 1,
            });
            if let Some(t) = &c.t {
                body["pageToken"] = json!(t);
            }
            return PageRequest::post_json(rollup_path(data_type), body);
        }
        let f = filter_name(data_type);
        let (filter, size) = match resource.name {
            // DISCOVERY ListDataPoints filter: sleep is filtered by its end ("Session end
            // time (Sleep specific)"), so a night belongs to the window it ends in.
            Resource::Sleep => (
                format!(
                    "sleep.interval.end_time >= \"{}\" AND sleep.interval.end_time < \"{}\"",
                    rfc3339_z(window.start),
                    rfc3339_z(window.end)
                ),
                SESSION_PAGE,
            ),
            // Sessions other than sleep have only "Session civil start time": local
            // wall-clock bounds, widened by the widest offsets so no exercise that
            // started inside the window is missed. Neighbouring windows then overlap;
            // stable ids absorb the repeats.
            Resource::Workouts => {
                let civil = |t: DateTime<Utc>| t.naive_utc().format("%Y-%m-%dT%H:%M:%S");
                (
                    format!(
                        "exercise.interval.civil_start_time >= \"{}\" AND exercise.interval.civil_start_time < \"{}\"",
                        civil(window.start - Duration::seconds(MAX_WEST_SECS)),
                        civil(window.end + Duration::seconds(MAX_EAST_SECS))
                    ),
                    SESSION_PAGE,
                )
            }
            // Interval types: "Interval start time", so an interval belongs to the
            // window it starts in.
            _ if INTERVAL_TYPES.contains(data_type) => (
                format!(
                    "{f}.interval.start_time >= \"{}\" AND {f}.interval.start_time < \"{}\"",
                    rfc3339_z(window.start),
                    rfc3339_z(window.end)
                ),
                LIST_PAGE,
            ),
            // Samples: "Sample observation physical time".
            _ => (
                format!(
                    "{f}.sample_time.physical_time >= \"{}\" AND {f}.sample_time.physical_time < \"{}\"",
                    rfc3339_z(window.start),
                    rfc3339_z(window.end)
                ),
                LIST_PAGE,
            ),
        };
        let mut q = vec![
            ("filter".to_string(), filter),
            ("pageSize".to_string(), size.to_string()),
        ];
        if let Some(t) = &c.t {
            q.push(("pageToken".to_string(), t.clone()));
        }
        PageRequest::get(list_path(data_type), q)
    }

    fn parse_page(
        &self,
        resource: Resource,
        body: &[u8],
        cursor: Option<&str>,
    ) -> Result<Page, ProviderError> {
        let types = phases(resource);
        if types.is_empty() {
            return Err(ProviderError::malformed(
                "resource",
                format!("Google Health has no {resource}"),
            ));
        }
        let mut c = read_cursor(resource, cursor)?;
        let data_type = *types.get(c.p).ok_or_else(|| {
            ProviderError::malformed("cursor", format!("phase {} of {resource}", c.p))
        })?;
        let v = parse_json(body)?;
        let mut records = Vec::new();
        if resource == Resource::Activity {
            rollup(&v, data_type, &mut c.acc)?;
        } else {
            let key = member(data_type);
            // proto3 JSON leaves an empty list out: no `dataPoints` is an empty page.
            let empty = vec![];
            let items = match v.get("dataPoints") {
                None | Some(Value::Null) => &empty,
                Some(_) => req_array(&v, "dataPoints")?,
            };
            for (i, item) in items.iter().enumerate() {
                let under = |prefix: String| {
                    move |e: ProviderError| match e {
                        ProviderError::Malformed { field, message } => {
                            ProviderError::malformed(format!("{prefix}.{field}"), message)
                        }
                        e => e,
                    }
                };
                let point = format!("dataPoints[{i}]");
                let data = match item.get(&key) {
                    Some(d @ Value::Object(_)) => d,
                    _ => {
                        return Err(ProviderError::malformed(
                            format!("{point}.{key}"),
                            "missing: not a point of this data type",
                        ))
                    }
                };
                let id = point_id(item).map_err(under(point.clone()))?;
                let device = device_type(item).map_err(under(point.clone()))?;
                // Sessions are identifiable (DISCOVERY DataPoint.name's example is a
                // sleep; exportExerciseTcx names exercises by id): their name is their key.
                let required = || {
                    id.clone().ok_or_else(|| {
                        ProviderError::malformed(
                            format!("{point}.name"),
                            "missing: sessions carry their name",
                        )
                    })
                };
                let in_data = under(format!("{point}.{key}"));
                let rec = match data_type {
                    "exercise" => Some(exercise(data, required()?, device).map_err(in_data)?),
                    "sleep" => sleep(data, required()?, device).map_err(in_data)?,
                    "heart-rate" => Some(heart_rate(data, device).map_err(in_data)?),
                    "heart-rate-variability" => hrv(data, device).map_err(in_data)?,
                    "oxygen-saturation" => Some(oxygen(data, device).map_err(in_data)?),
                    "respiratory-rate-sleep-summary" => {
                        respiration(data, device).map_err(in_data)?
                    }
                    "core-body-temperature" => Some(temperature(data, device).map_err(in_data)?),
                    "distance" | "active-energy-burned" => {
                        Some(interval_point(data, device, data_type).map_err(in_data)?)
                    }
                    _ => Some(body_point(data, id.clone(), device, data_type).map_err(in_data)?),
                };
                records.extend(rec);
            }
        }
        // DISCOVERY ListDataPointsResponse.nextPageToken: "empty if the response is
        // complete"; proto3 JSON leaves an empty string out altogether.
        let token = opt_str(&v, "nextPageToken")?
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        let next = if let Some(t) = token {
            c.t = Some(t);
            Some(c)
        } else if c.p + 1 < types.len() {
            Some(Cursor {
                p: c.p + 1,
                t: None,
                acc: std::mem::take(&mut c.acc),
            })
        } else {
            if resource == Resource::Activity {
                records = activity_days(&c.acc)?;
            }
            None
        };
        Ok(Page {
            records,
            next: next.map(|c| write_cursor(resource, &c)),
            ..Page::default()
        })
    }

    fn classify_error(
        &self,
        status: u16,
        retry_after: Option<std::time::Duration>,
        body: &[u8],
    ) -> ProviderError {
        // Google's error model (https://cloud.google.com/apis/design/errors): 403
        // PERMISSION_DENIED is a missing scope only with reason
        // ACCESS_TOKEN_SCOPE_INSUFFICIENT; SERVICE_DISABLED and other denials are the
        // operator's project configuration, which re-consenting cannot fix.
        let text = String::from_utf8_lossy(&body[..body.len().min(2000)]);
        if status == 403 && text.contains("SERVICE_DISABLED") {
            return ProviderError::Refused(format!("HTTP 403: {}", truncate(&text)));
        }
        ProviderError::from_status(status, retry_after, body)
    }

    fn identity_request(&self) -> Option<PageRequest> {
        // DISCOVERY users.getIdentity: `GET v4/users/me/identity`, allowed by any of the
        // read scopes; the token reply (no `id_token` without `openid`) names nobody.
        Some(PageRequest::get("/v4/users/me/identity", vec![]))
    }

    fn identity_user_id(&self, body: &[u8]) -> Result<String, ProviderError> {
        // DISCOVERY Identity.healthUserId: "The Google User Identifier in the Google
        // Health APIs ... strings of 1-63 characters": the `{user}` of resource names and
        // of webhook subscriptions. `legacyUserId` is the Fitbit id ("must not be used
        // for any other purpose" than migration).
        let v = parse_json(body)?;
        let id = req_str(&v, "healthUserId")?;
        if id.is_empty()
            || id.len() > 63
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(ProviderError::malformed(
                "healthUserId",
                format!("`{id}` is not 1-63 letters, digits and hyphens"),
            ));
        }
        Ok(id.to_string())
    }

    /// HOOKS (verification): registering or updating the subscriber makes Google `POST`
    /// `{"type": "verification"}` twice, once with the subscriber's `Authorization`
    /// secret, which must get **201 Created**, and once without, which must get 401 or
    /// 403 (`Unverified`, which the gateway answers 401).
    fn push_handshake(
        &self,
        req: &PushRequest<'_>,
        secrets: &PushSecrets,
    ) -> Option<Result<PushReply, PushError>> {
        let v: Value = serde_json::from_slice(req.body).ok()?;
        let is_check = |x: &Value| x.get("type").and_then(Value::as_str) == Some("verification");
        let check = is_check(&v)
            || v.as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(is_check));
        check.then(|| {
            authorized(req, secrets)?;
            Ok(PushReply::empty(201))
        })
    }

    /// Two proofs, both documented (DISCOVERY `EndpointAuthorization`): the
    /// `Authorization` header is the secret we gave the subscriber ("sent in the
    /// Authorization header for all subsequent webhook notifications"), and
    /// `X-HEALTHAPI-SIGNATURE` is "an ECDSA (NIST P256) signature of the JSON payload"
    /// by Google Health API's public key, which must be in `secrets.public_keys` (see
    /// `public_keys` below for the forms accepted). `UnknownKey` when no key is held, or
    /// the signature's Tink prefix names a key id none of the keys held carries (Google
    /// rotated its keys: the gateway fetches the keyset again and retries).
    fn verify_push(&self, req: &PushRequest<'_>, secrets: &PushSecrets) -> Result<(), PushError> {
        authorized(req, secrets)?;
        let unverified = |m: &str| PushError::Unverified(m.to_string());
        let sig = header(req, "x-healthapi-signature")
            .ok_or_else(|| unverified("no X-HEALTHAPI-SIGNATURE"))?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(sig.trim())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(sig.trim()))
            .map_err(|_| unverified("X-HEALTHAPI-SIGNATURE is not base64"))?;
        let keys = public_keys(&secrets.public_keys);
        if keys.is_empty() {
            return Err(PushError::UnknownKey(
                "no Google Health public key is held".into(),
            ));
        }
        if keys.iter().any(|k| k.verifies(req.body, &sig)) {
            return Ok(());
        }
        match tink_key_id(&sig) {
            Some(id) if !keys.iter().any(|k| k.key_id() == Some(id)) => Err(PushError::UnknownKey(
                format!("X-HEALTHAPI-SIGNATURE names key {id}, which is not among the keys held"),
            )),
            _ => Err(unverified(
                "X-HEALTHAPI-SIGNATURE does not match any public key",
            )),
        }
    }

    /// HOOKS' notification, `{"data": {...}}` (or an array of them): `healthUserId` (our
    /// external user id), `dataType` (kebab case), `operation` (`UPSERT` or `DELETE`) and
    /// the changed `intervals` (`physicalTimeInterval` `startTime`/`endTime`, and civil
    /// forms). It names no data point, so both operations re-read the resource over the
    /// intervals (a deleted point is found missing only by a full re-read). The key
    /// digests the whole `data` object.
    fn parse_push(&self, req: &PushRequest<'_>) -> Result<Vec<Notice>, PushError> {
        let v = json_body(req)?;
        let items: Vec<&Value> = match &v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        let bad = |m: String| PushError::Malformed(m);
        items
            .into_iter()
            .map(|item| {
                let data = item
                    .get("data")
                    .filter(|d| d.is_object())
                    .ok_or_else(|| bad("no data object".into()))?;
                let text = |k: &str| {
                    data.get(k)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| bad(format!("no data.{k}")))
                };
                let user = text("healthUserId")?.to_string();
                let data_type = text("dataType")?;
                let operation = text("operation")?;
                let window = notified_window(data).map_err(bad)?;
                let resource = [
                    Resource::Workouts,
                    Resource::Sleep,
                    Resource::Activity,
                    Resource::Body,
                    Resource::Heartrate,
                    Resource::Hrv,
                ]
                .into_iter()
                .find(|r| phases(*r).contains(&data_type));
                let action = match (resource, operation) {
                    (Some(r), "UPSERT" | "DELETE") => NoticeAction::Changed {
                        resource: r,
                        record: None,
                        window,
                    },
                    _ => NoticeAction::Ignored(format!("{operation} {data_type}")),
                };
                Ok(Notice {
                    user,
                    key: digest_key(&[ID, &data.to_string()]),
                    action,
                    at: None,
                })
            })
            .collect()
    }

    /// Notifications are acknowledged with 204 No Content (third-party receivers, see
    /// fixtures/google_health/README.md "Push"; HOOKS' own wording was not available).
    fn push_ack(&self) -> PushReply {
        PushReply::empty(204)
    }
}

/// Whether the request carries the subscriber's secret as its `Authorization` header
/// (DISCOVERY `EndpointAuthorization.secret`: "The value must include the authorization
/// scheme, e.g. "Bearer <token>""): `secrets.verify_token` is that value; one without a
/// scheme is read as a bearer token.
fn authorized(req: &PushRequest<'_>, secrets: &PushSecrets) -> Result<(), PushError> {
    let want = secrets.verify_token.trim();
    let want = if want.contains(' ') {
        want.to_string()
    } else {
        format!("Bearer {want}")
    };
    match header(req, "authorization") {
        Some(got)
            if !secrets.verify_token.trim().is_empty()
                && same_secret(got.trim().as_bytes(), want.as_bytes()) =>
        {
            Ok(())
        }
        _ => Err(PushError::Unverified(
            "the Authorization header is not the subscriber's secret".into(),
        )),
    }
}

/// The window a notification's intervals cover: from the earliest start to the latest
/// end of their `physicalTimeInterval`s; civil (zone-less) intervals are widened by the
/// widest offsets a zone can have. None when there are none.
fn notified_window(data: &Value) -> Result<Option<Window>, String> {
    let mut intervals: Vec<&Value> = data
        .get("intervals")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    // One client reads a single `civilIso8601TimeInterval` beside the fields.
    if intervals.is_empty() && data.get("civilIso8601TimeInterval").is_some() {
        intervals.push(data);
    }
    let mut bounds: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    for i in intervals {
        let (start, end) = if let Some(p) = i.get("physicalTimeInterval") {
            let t = |k: &str| {
                p.get(k)
                    .and_then(Value::as_str)
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .ok_or(format!(
                        "physicalTimeInterval.{k} is not an RFC 3339 instant"
                    ))
            };
            (t("startTime")?, t("endTime")?)
        } else if let Some(c) = i.get("civilIso8601TimeInterval") {
            let t = |k: &str| {
                c.get(k)
                    .and_then(Value::as_str)
                    .and_then(|s| {
                        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                            .ok()
                            .or_else(|| {
                                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                                    .ok()
                                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                            })
                    })
                    .map(|t| t.and_utc())
                    .ok_or(format!("civilIso8601TimeInterval.{k} is not a civil time"))
            };
            (
                t("startTime")? - Duration::seconds(MAX_EAST_SECS),
                t("endTime")? + Duration::seconds(MAX_WEST_SECS),
            )
        } else {
            continue;
        };
        if start > end {
            return Err("an interval ends before it starts".into());
        }
        bounds = Some(match bounds {
            None => (start, end),
            Some((s, e)) => (s.min(start), e.max(end)),
        });
    }
    // Half-open windows: one second past the last end keeps it inside.
    Ok(bounds.map(|(start, end)| Window {
        start,
        end: end + Duration::seconds(1),
    }))
}

/// A P-256 public key Google Health signs notifications with, and how its signatures
/// are framed.
#[derive(Debug, Clone, PartialEq)]
struct SigningKey {
    /// The uncompressed point, `04 || x || y`.
    point: Vec<u8>,
    /// Tink's output prefix (`01` and the key id, big-endian) the signature starts with,
    /// when the key came from a Tink keyset with output prefix `TINK`.
    prefix: Option<[u8; 5]>,
}

/// The key id a signature in Tink's framing names (`01 || keyId`, big-endian).
fn tink_key_id(sig: &[u8]) -> Option<u32> {
    match sig {
        [1, a, b, c, d, _, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

impl SigningKey {
    /// The Tink key id the key's signatures carry, where it has a prefix.
    fn key_id(&self) -> Option<u32> {
        self.prefix
            .map(|p| u32::from_be_bytes([p[1], p[2], p[3], p[4]]))
    }

    /// Whether `sig` signs `body`: DER (ASN.1) or fixed 64-byte (IEEE P1363) ECDSA
    /// P-256 SHA-256, after the key's Tink prefix where it has one. A key from a PEM may
    /// be met with or without a Tink prefix: both are tried.
    fn verifies(&self, body: &[u8], sig: &[u8]) -> bool {
        let mut candidates: Vec<&[u8]> = vec![];
        match self.prefix {
            Some(p) => {
                if let Some(rest) = sig.strip_prefix(&p[..]) {
                    candidates.push(rest);
                }
            }
            None => {
                candidates.push(sig);
                if sig.len() > 5 && sig[0] == 1 {
                    candidates.push(&sig[5..]);
                }
            }
        }
        candidates.into_iter().any(|s| {
            let alg: &dyn ring::signature::VerificationAlgorithm = if s.len() == 64 {
                &ring::signature::ECDSA_P256_SHA256_FIXED
            } else {
                &ring::signature::ECDSA_P256_SHA256_ASN1
            };
            ring::signature::UnparsedPublicKey::new(alg, &self.point)
                .verify(body, s)
                .is_ok()
        })
    }
}

/// The DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1, a 66-byte
/// bit string): the uncompressed point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The keys `PushSecrets::public_keys` holds, each in one of three forms:
/// a PEM `-----BEGIN PUBLIC KEY-----` (P-256 SubjectPublicKeyInfo); the same DER in
/// base64; or a Tink JSON public keyset (`{"primaryKeyId", "key": [{"keyData": {"typeUrl":
/// "type.googleapis.com/google.crypto.tink.EcdsaPublicKey", "value": <base64 proto>},
/// "status": "ENABLED", "keyId", "outputPrefixType"}]}`), the form Google publishes at
/// `https://www.gstatic.com/googlehealthapi/webhooks/webhooks_public_keyset.json`
/// according to the receivers in fixtures/google_health/README.md. Anything else, and
/// any key that is not P-256, is skipped.
fn public_keys(configured: &[String]) -> Vec<SigningKey> {
    let mut out = vec![];
    for text in configured {
        let text = text.trim();
        if text.starts_with('{') {
            out.extend(tink_keys(text));
            continue;
        }
        let b64: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
            if der.len() == 91 && der.starts_with(&P256_SPKI_PREFIX) {
                out.push(SigningKey {
                    point: der[26..].to_vec(),
                    prefix: None,
                });
            }
        }
    }
    out
}

/// The enabled ECDSA P-256 keys of a Tink JSON public keyset.
fn tink_keys(json_text: &str) -> Vec<SigningKey> {
    let Ok(v) = serde_json::from_str::<Value>(json_text) else {
        return vec![];
    };
    v.get("key")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|k| {
            k.get("status")
                .and_then(Value::as_str)
                .is_none_or(|s| s == "ENABLED")
        })
        .filter_map(|k| {
            let data = k.get("keyData")?;
            if data.get("typeUrl")?.as_str()?
                != "type.googleapis.com/google.crypto.tink.EcdsaPublicKey"
            {
                return None;
            }
            let proto = base64::engine::general_purpose::STANDARD
                .decode(data.get("value")?.as_str()?)
                .ok()?;
            let point = ecdsa_public_point(&proto)?;
            let id = u32::try_from(k.get("keyId")?.as_u64()?).ok()?.to_be_bytes();
            let prefix = match k.get("outputPrefixType").and_then(Value::as_str) {
                Some("RAW") => None,
                // LEGACY keys also sign the message with a 0 byte appended: not supported.
                Some("TINK") | None => Some([1, id[0], id[1], id[2], id[3]]),
                Some(_) => return None,
            };
            Some(SigningKey { point, prefix })
        })
        .collect()
}

/// The uncompressed point of a serialised Tink `EcdsaPublicKey` (`version` 1, `params` 2
/// with `curve` 2 = NIST_P256, `x` 3 and `y` 4 as big-endian integers, a leading zero
/// when the top bit is set). None for another curve or a malformed message.
fn ecdsa_public_point(proto: &[u8]) -> Option<Vec<u8>> {
    fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*i)?;
            *i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// A field's value: a varint, or length-delimited bytes.
    type Field<'a> = (u64, Result<u64, &'a [u8]>);
    /// Each field of a message: (number, value).
    fn fields(b: &[u8]) -> Option<Vec<Field<'_>>> {
        let mut i = 0;
        let mut out = vec![];
        while i < b.len() {
            let key = varint(b, &mut i)?;
            match key & 7 {
                0 => out.push((key >> 3, Ok(varint(b, &mut i)?))),
                2 => {
                    let len = usize::try_from(varint(b, &mut i)?).ok()?;
                    let end = i.checked_add(len)?;
                    out.push((key >> 3, Err(b.get(i..end)?)));
                    i = end;
                }
                _ => return None,
            }
        }
        Some(out)
    }
    let coordinate = |raw: &[u8]| -> Option<[u8; 32]> {
        let trimmed: Vec<u8> = raw.iter().copied().skip_while(|b| *b == 0).collect();
        let mut out = [0u8; 32];
        out.get_mut(32usize.checked_sub(trimmed.len())?..)?
            .copy_from_slice(&trimmed);
        Some(out)
    };
    let (mut x, mut y, mut curve) = (None, None, None);
    for (n, v) in fields(proto)? {
        match (n, v) {
            (2, Err(params)) => {
                curve = fields(params)?
                    .into_iter()
                    .find_map(|(n, v)| (n == 2).then_some(v.ok()).flatten());
            }
            (3, Err(raw)) => x = coordinate(raw),
            (4, Err(raw)) => y = coordinate(raw),
            _ => {}
        }
    }
    // EllipticCurveType NIST_P256 = 2.
    if curve != Some(2) {
        return None;
    }
    let mut point = vec![4u8];
    point.extend_from_slice(&x?);
    point.extend_from_slice(&y?);
    Some(point)
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(500) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// An int64, which proto3 JSON writes as a string (`"beatsPerMinute": "62"`); a bare
/// number is accepted too.
fn opt_int64(v: &Value, path: &str) -> Result<Option<i64>, ProviderError> {
    match at(v, path) {
        None => Ok(None),
        Some(Value::String(s)) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ProviderError::malformed(path, format!("`{s}` is not an int64"))),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ProviderError::malformed(path, format!("{n} is not an int64"))),
        Some(other) => Err(ProviderError::malformed(
            path,
            format!("expected an int64, got {other}"),
        )),
    }
}

fn req_int64(v: &Value, path: &str) -> Result<i64, ProviderError> {
    opt_int64(v, path)?.ok_or_else(|| ProviderError::malformed(path, "missing"))
}

/// A `google-duration` (`"3600s"`, `"1.5s"`, `"-18000s"`) in seconds.
fn duration_secs(raw: &str, path: &str) -> Result<f64, ProviderError> {
    let bad = || ProviderError::malformed(path, format!("`{raw}` is not a duration like 60s"));
    let x: f64 = raw
        .strip_suffix('s')
        .ok_or_else(bad)?
        .parse()
        .map_err(|_| bad())?;
    // Protobuf durations span ±10,000 years; anything beyond is not one.
    if !x.is_finite() || x.abs() > 315_576_000_000.0 {
        return Err(bad());
    }
    Ok(x)
}

fn opt_duration(v: &Value, path: &str) -> Result<Option<f64>, ProviderError> {
    opt_str(v, path)?
        .map(|raw| duration_secs(raw, path))
        .transpose()
}

/// A UTC offset (`"-18000s"`), whole seconds within ±18 h (DISCOVERY DateTime.utcOffset).
fn req_offset(v: &Value, path: &str) -> Result<i32, ProviderError> {
    let raw = req_str(v, path)?;
    let x = duration_secs(raw, path)?;
    if x.fract() != 0.0 || x.abs() > 18.0 * 3600.0 {
        return Err(ProviderError::malformed(
            path,
            format!("`{raw}` is not a UTC offset in whole seconds within ±18 h"),
        ));
    }
    Ok(x as i32)
}

/// A required `google-datetime` (RFC 3339, UTC).
fn req_instant(v: &Value, path: &str) -> Result<DateTime<Utc>, ProviderError> {
    let raw = req_str(v, path)?;
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ProviderError::malformed(path, format!("`{raw}` is not an RFC 3339 instant: {e}"))
        })
}

/// The wall-clock time at `t` for a user `offset` seconds east of UTC.
fn local(t: DateTime<Utc>, offset: i32, path: &str) -> Result<NaiveDateTime, ProviderError> {
    t.naive_utc()
        .checked_add_signed(Duration::seconds(offset as i64))
        .ok_or_else(|| ProviderError::malformed(path, "instant out of range"))
}

/// A data point's own id: the last segment of `name`
/// (`users/{user}/dataTypes/{type}/dataPoints/{id}`), without the user part, which may
/// read `me` or the health user id.
fn point_id(item: &Value) -> Result<Option<String>, ProviderError> {
    Ok(opt_str(item, "name")?
        .filter(|n| !n.is_empty())
        .and_then(|n| n.rsplit_once("/dataPoints/").map(|(_, id)| id.to_string()))
        .filter(|id| !id.is_empty()))
}

/// Millimetres → metres, to the millimetre.
fn mm_to_m(mm: Option<f64>) -> Value {
    num(mm.map(|x| x.round() / 1000.0))
}

/// Exercise → workout. DISCOVERY Exercise: `interval` (SessionTimeInterval),
/// `exerciseType`, `displayName`, `activeDuration` (excluding pauses) and
/// `metricsSummary` (kcal, millimetres, millimetres per second, int64 bpm).
fn exercise(v: &Value, id: String, device: &str) -> Result<Record, ProviderError> {
    let start = req_instant(v, "interval.startTime")?;
    let end = req_instant(v, "interval.endTime")?;
    let offset = req_offset(v, "interval.startUtcOffset")?;
    if end < start {
        return Err(ProviderError::malformed(
            "interval.endTime",
            "ends before it starts",
        ));
    }
    let moving = match opt_duration(v, "activeDuration")? {
        Some(s) if s >= 0.0 => s.round() as i64,
        Some(_) => {
            return Err(ProviderError::malformed(
                "activeDuration",
                "a negative duration",
            ))
        }
        // Without activeDuration, the recorded span (no pauses known).
        None => (end - start).num_seconds(),
    };
    // `exerciseType` is a closed enum (RUNNING, BIKING, …, OTHER); unknown future values
    // pass through as slugs rather than failing the page.
    let sport = match opt_str(v, "exerciseType")? {
        None | Some("EXERCISE_TYPE_UNSPECIFIED") => "unknown".to_string(),
        Some(t) => slug(t),
    };
    let title = opt_str(v, "displayName")?
        .map(str::to_string)
        .unwrap_or_else(|| display_name(&sport));
    let ms = "metricsSummary";
    Ok(Record {
        resource: Resource::Workouts,
        provider_id: id,
        fields: fields(vec![
            ("source", source(ID, device)),
            ("title", json!(title)),
            (
                "sport",
                json!({"name": display_name(&sport), "slug": sport}),
            ),
            ("time_start", json!(format_utc(start))),
            ("time_end", json!(format_utc(end))),
            ("timezone_offset", json!(offset)),
            ("moving_time", json!(moving)),
            (
                "distance",
                mm_to_m(opt_f64(v, &format!("{ms}.distanceMillimeters"))?),
            ),
            ("calories", number(v, &format!("{ms}.caloriesKcal"))?),
            (
                "average_hr",
                int(opt_int64(
                    v,
                    &format!("{ms}.averageHeartRateBeatsPerMinute"),
                )?),
            ),
            // MetricsSummary has no maximum heart rate.
            ("max_hr", Value::Null),
            (
                "total_elevation_gain",
                mm_to_m(opt_f64(v, &format!("{ms}.elevationGainMillimeters"))?),
            ),
            (
                "average_speed",
                num(
                    opt_f64(v, &format!("{ms}.averageSpeedMillimetersPerSecond"))?
                        .map(|x| (x / 10.0).round() / 100.0),
                ),
            ),
            ("max_speed", Value::Null),
        ]),
    })
}

/// DataSource.device.formFactor, lower case (`watch`, `fitness_band`, `scale`), or
/// `unknown`: where the data came from, as every provider's `source.type` says.
fn device_type(item: &Value) -> Result<&'static str, ProviderError> {
    Ok(match opt_str(item, "dataSource.device.formFactor")? {
        Some("WATCH") => "watch",
        Some("FITNESS_BAND") => "fitness_band",
        Some("RING") => "ring",
        Some("SCALE") => "scale",
        Some("PHONE") => "phone",
        Some("CHEST_STRAP") => "chest_strap",
        _ => "unknown",
    })
}

/// Sleep: one record per night; naps (`metadata.nap`) are skipped, as WHOOP's and Oura's
/// are. Minutes from `summary` become seconds. DISCOVERY SleepSummary: `minutesAsleep`
/// ("For \"stages\" sleep it is the sum of LIGHT, REM and DEEP"), `minutesAwake`,
/// `minutesInSleepPeriod` ("Delta between wake time and bedtime"), `stagesSummary`
/// (minutes per stage type).
fn sleep(v: &Value, id: String, device: &str) -> Result<Option<Record>, ProviderError> {
    match at(v, "metadata.nap") {
        Some(Value::Bool(true)) => return Ok(None),
        None | Some(Value::Bool(false)) => {}
        Some(other) => {
            return Err(ProviderError::malformed(
                "metadata.nap",
                format!("expected a boolean, got {other}"),
            ))
        }
    }
    let start = req_instant(v, "interval.startTime")?;
    let end = req_instant(v, "interval.endTime")?;
    let offset = req_offset(v, "interval.endUtcOffset")?;
    if end < start {
        return Err(ProviderError::malformed(
            "interval.endTime",
            "ends before it starts",
        ));
    }
    let minutes = |path: &str| -> Result<Option<i64>, ProviderError> {
        opt_int64(v, path)?
            .map(|m| {
                m.checked_mul(60)
                    .filter(|s| *s >= 0)
                    .ok_or_else(|| ProviderError::malformed(path, format!("{m} minutes")))
            })
            .transpose()
    };
    let mut stages: HashMap<&str, i64> = HashMap::new();
    if let Some(list) = at(v, "summary.stagesSummary") {
        let list = list.as_array().ok_or_else(|| {
            ProviderError::malformed("summary.stagesSummary", "expected an array")
        })?;
        for (i, s) in list.iter().enumerate() {
            let path = format!("summary.stagesSummary[{i}]");
            let kind = req_str(s, "type")
                .map_err(|_| ProviderError::malformed(format!("{path}.type"), "missing"))?;
            let secs = minutes_of(s, &format!("{path}.minutes"))?;
            if let Some(k) = ["LIGHT", "DEEP", "REM"].into_iter().find(|k| *k == kind) {
                *stages.entry(k).or_default() += secs;
            }
        }
    }
    // CLASSIC sleep has only ASLEEP/RESTLESS/AWAKE: no light, deep or REM figures; nor
    // has a night whose summary is not computed yet.
    let staged = opt_str(v, "type")? == Some("STAGES") && at(v, "summary.stagesSummary").is_some();
    let stage = |k: &str| int(staged.then(|| stages.get(k).copied().unwrap_or(0)));
    let total = minutes("summary.minutesAsleep")?;
    let period = minutes("summary.minutesInSleepPeriod")?;
    Ok(Some(Record {
        resource: Resource::Sleep,
        provider_id: id,
        fields: fields(vec![
            ("source", source(ID, device)),
            // The night belongs to the day woken into.
            (
                "calendar_date",
                json!(local(end, offset, "interval.endTime")?
                    .date()
                    .format("%Y-%m-%d")
                    .to_string()),
            ),
            ("bedtime_start", json!(format_utc(start))),
            ("bedtime_stop", json!(format_utc(end))),
            ("timezone_offset", json!(offset)),
            ("duration", json!((end - start).num_seconds())),
            ("total", int(total)),
            ("awake", int(minutes("summary.minutesAwake")?)),
            ("light", stage("LIGHT")),
            ("rem", stage("REM")),
            ("deep", stage("DEEP")),
            // Asleep over the sleep period, as a percentage: Google gives no efficiency.
            (
                "efficiency",
                num(match (total, period) {
                    (Some(t), Some(p)) if p > 0 => Some(round1(t as f64 * 100.0 / p as f64)),
                    _ => None,
                }),
            ),
            // Heart rate, HRV and breathing are separate data types, not on the sleep.
            ("hr_average", Value::Null),
            ("hr_lowest", Value::Null),
            ("average_hrv", Value::Null),
            ("respiratory_rate", Value::Null),
            // `metadata.processed`: "Sleep and sleep stages algorithms finished
            // processing"; until then the stages may still change.
            (
                "state",
                json!(
                    if at(v, "metadata.processed") == Some(&Value::Bool(false)) {
                        "tentative"
                    } else {
                        "confirmed"
                    }
                ),
            ),
        ]),
    }))
}

fn minutes_of(v: &Value, path: &str) -> Result<i64, ProviderError> {
    let m = req_int64(v, "minutes").map_err(|_| ProviderError::malformed(path, "missing"))?;
    m.checked_mul(60)
        .filter(|s| *s >= 0)
        .ok_or_else(|| ProviderError::malformed(path, format!("{m} minutes")))
}

/// A sample's time: `sampleTime.physicalTime` and `sampleTime.utcOffset`.
fn sample_time(v: &Value) -> Result<(DateTime<Utc>, i32), ProviderError> {
    Ok((
        req_instant(v, "sampleTime.physicalTime")?,
        req_offset(v, "sampleTime.utcOffset")?,
    ))
}

/// One timeseries sample, keyed by its instant (samples have no name).
fn sample(
    resource: Resource,
    (t, offset): (DateTime<Utc>, i32),
    device: &str,
    unit: &str,
    value: Value,
) -> Record {
    let ts = format_utc(t);
    Record {
        resource,
        provider_id: ts.clone(),
        fields: fields(vec![
            ("source", source(ID, device)),
            ("timestamp", json!(ts)),
            ("timezone_offset", json!(offset)),
            ("type", json!(resource.as_str())),
            ("unit", json!(unit)),
            ("value", value),
        ]),
    }
}

/// HeartRate: `beatsPerMinute` is an int64 (a string).
fn heart_rate(v: &Value, device: &str) -> Result<Record, ProviderError> {
    let time = sample_time(v)?;
    let bpm = req_int64(v, "beatsPerMinute")?;
    Ok(sample(Resource::Heartrate, time, device, "bpm", json!(bpm)))
}

/// HeartRateVariability: RMSSD is what Vital's `hrv` means. A sample with only the SDNN
/// (`standardDeviationMilliseconds`) is skipped rather than reported as something else.
fn hrv(v: &Value, device: &str) -> Result<Option<Record>, ProviderError> {
    let time = sample_time(v)?;
    Ok(
        opt_f64(v, "rootMeanSquareOfSuccessiveDifferencesMilliseconds")?
            .map(|ms| sample(Resource::Hrv, time, device, "ms", num(Some(round1(ms))))),
    )
}

/// A percentage in [0, 100], as DISCOVERY bounds SpO2 and body fat.
fn req_percentage(v: &Value, path: &str) -> Result<f64, ProviderError> {
    let p = req_f64(v, path)?;
    if !(0.0..=100.0).contains(&p) {
        return Err(ProviderError::malformed(
            path,
            format!("{p} is not in [0, 100]"),
        ));
    }
    Ok(p)
}

/// OxygenSaturation: "the user's instantaneous oxygen saturation percentage (SpO2)",
/// `percentage` a double from 0 to 100: Vital's `blood_oxygen` in `%`, as given.
fn oxygen(v: &Value, device: &str) -> Result<Record, ProviderError> {
    let time = sample_time(v)?;
    let p = req_percentage(v, "percentage")?;
    Ok(sample(
        Resource::BloodOxygen,
        time,
        device,
        "%",
        num(Some(p)),
    ))
}

/// RespiratoryRateSleepSummary: one sample a sleep, `fullSleepStats.breathsPerMinute`
/// the average over the whole sleep (the deep, light and REM figures are per stage):
/// Vital's `respiratory_rate` in breaths per minute (`bpm`, its unit). A summary without
/// the full-sleep average is no reading, not a zero: no sample.
fn respiration(v: &Value, device: &str) -> Result<Option<Record>, ProviderError> {
    let time = sample_time(v)?;
    Ok(opt_f64(v, "fullSleepStats.breathsPerMinute")?.map(|bpm| {
        sample(
            Resource::RespiratoryRate,
            time,
            device,
            "bpm",
            num(Some(bpm)),
        )
    }))
}

/// CoreBodyTemperature's `measurementLocation` as Junction's
/// `ClientFacingBodyTemperatureSampleSensorLocation`; locations Junction does not list
/// (`OTHER`, `URINARY_BLADDER`, `NASAL`, `NASOPHARYNGEAL`, `VAGINA`) and the unspecified
/// one are unknown (null), not guessed.
fn sensor_location(raw: Option<&str>) -> Option<&'static str> {
    Some(match raw? {
        "ARMPIT" => "armpit",
        "BODY" => "body",
        "EAR" => "ear",
        "FINGER" => "finger",
        "GASTRO_INTESTINAL" => "gastrointestinal",
        "MOUTH" => "mouth",
        "RECTUM" => "rectum",
        "TOE" => "toe",
        "EAR_DRUM" => "eardrum",
        "TEMPORAL_ARTERY" => "temporal_artery",
        "FOREHEAD" => "forehead",
        "WRIST" => "wrist",
        _ => return None,
    })
}

/// CoreBodyTemperature: `temperatureCelsius` at `sampleTime` → Vital's
/// `body_temperature` in °C. Junction's sample is an interval; a reading is an instant,
/// so it starts and ends at its time.
fn temperature(v: &Value, device: &str) -> Result<Record, ProviderError> {
    let time = sample_time(v)?;
    let c = req_f64(v, "temperatureCelsius")?;
    let mut rec = sample(Resource::BodyTemperature, time, device, "°C", num(Some(c)));
    let at = rec.fields["timestamp"].clone();
    rec.fields.insert("start".into(), at.clone());
    rec.fields.insert("end".into(), at);
    rec.fields.insert(
        "sensor_location".into(),
        text(sensor_location(opt_str(v, "measurementLocation")?)),
    );
    Ok(rec)
}

/// Distance (`millimeters`, an int64) or ActiveEnergyBurned (`kcal`, a double) over an
/// `ObservationTimeInterval`: one interval sample of Vital's `distance` in metres or
/// `calories_active` in kcal, keyed by the interval's start (points have no name), its
/// offset the start's.
fn interval_point(v: &Value, device: &str, data_type: &str) -> Result<Record, ProviderError> {
    let start = req_instant(v, "interval.startTime")?;
    let end = req_instant(v, "interval.endTime")?;
    let offset = req_offset(v, "interval.startUtcOffset")?;
    if end < start {
        return Err(ProviderError::malformed(
            "interval.endTime",
            "ends before it starts",
        ));
    }
    let (resource, unit, value) = if data_type == "distance" {
        let mm = req_int64(v, "millimeters")?;
        if mm < 0 {
            return Err(ProviderError::malformed(
                "millimeters",
                "a negative distance",
            ));
        }
        (Resource::Distance, "m", mm_to_m(Some(mm as f64)))
    } else {
        let kcal = req_f64(v, "kcal")?;
        (Resource::CaloriesActive, "kcal", num(Some(kcal)))
    };
    let mut rec = sample(resource, (start, offset), device, unit, value);
    rec.fields.insert("start".into(), json!(format_utc(start)));
    rec.fields.insert("end".into(), json!(format_utc(end)));
    Ok(rec)
}

/// Weight (`weightGrams`) or body fat (`percentage`): one body record each. They are
/// separate data points even when one scale reading made both, so neither record may
/// overwrite the other: keys are their own ids (or, without a name, type and time).
fn body_point(
    v: &Value,
    id: Option<String>,
    device: &str,
    data_type: &str,
) -> Result<Record, ProviderError> {
    let (t, offset) = sample_time(v)?;
    let key = match id {
        Some(id) => id,
        None => format!("{data_type}@{}", format_utc(t)),
    };
    let (weight, fat) = if data_type == "weight" {
        let g = req_f64(v, "weightGrams")?;
        (num(Some((g / 10.0).round() / 100.0)), Value::Null)
    } else {
        let p = req_f64(v, "percentage")?;
        if !(0.0..=100.0).contains(&p) {
            return Err(ProviderError::malformed(
                "percentage",
                format!("{p} is not in [0, 100]"),
            ));
        }
        (Value::Null, num(Some(round1(p))))
    };
    Ok(Record {
        resource: Resource::Body,
        provider_id: key,
        fields: fields(vec![
            ("source", source(ID, device)),
            ("measured_at", json!(format_utc(t))),
            ("timezone_offset", json!(offset)),
            ("weight", weight),
            ("fat", fat),
        ]),
    })
}

/// Adds one data type's daily rollups to the days read so far. DISCOVERY
/// DailyRollupDataPoint: `civilStartTime` (the day) and one value member: `steps.countSum`
/// (int64), `distance.millimetersSum` (int64), `totalCalories.kcalSum` and
/// `activeEnergyBurned.kcalSum` (double).
fn rollup(
    v: &Value,
    data_type: &str,
    acc: &mut BTreeMap<String, Day>,
) -> Result<(), ProviderError> {
    let empty = vec![];
    let points = match v.get("rollupDataPoints") {
        None | Some(Value::Null) => &empty,
        Some(_) => req_array(v, "rollupDataPoints")?,
    };
    for (i, p) in points.iter().enumerate() {
        let path = |f: &str| format!("rollupDataPoints[{i}].{f}");
        let field = |e: ProviderError| match e {
            ProviderError::Malformed { field, message } => {
                ProviderError::malformed(path(&field), message)
            }
            e => e,
        };
        let date = civil_day(p, "civilStartTime.date").map_err(field)?;
        let day = acc.entry(date.format("%Y-%m-%d").to_string()).or_default();
        match data_type {
            "steps" => day.steps = opt_int64(p, "steps.countSum").map_err(field)?,
            "distance" => {
                day.distance_mm = opt_int64(p, "distance.millimetersSum").map_err(field)?
            }
            "total-calories" => {
                day.total_kcal = opt_f64(p, "totalCalories.kcalSum").map_err(field)?
            }
            "active-energy-burned" => {
                day.active_kcal = opt_f64(p, "activeEnergyBurned.kcalSum").map_err(field)?
            }
            other => {
                return Err(ProviderError::malformed(
                    "resource",
                    format!("no rollup of {other}"),
                ))
            }
        }
    }
    Ok(())
}

/// A google.type.Date (`{"year": 2026, "month": 11, "day": 20}`) that is a whole date.
fn civil_day(v: &Value, path: &str) -> Result<NaiveDate, ProviderError> {
    let part = |k: &str| -> Result<i64, ProviderError> {
        opt_i64(v, &format!("{path}.{k}"))?
            .ok_or_else(|| ProviderError::malformed(format!("{path}.{k}"), "missing"))
    };
    let (y, m, d) = (part("year")?, part("month")?, part("day")?);
    i32::try_from(y)
        .ok()
        .zip(u32::try_from(m).ok())
        .zip(u32::try_from(d).ok())
        .and_then(|((y, m), d)| NaiveDate::from_ymd_opt(y, m, d))
        .ok_or_else(|| ProviderError::malformed(path, format!("{y}-{m}-{d} is not a date")))
}

/// The activity records of a window: one per civil day with any figure.
fn activity_days(acc: &BTreeMap<String, Day>) -> Result<Vec<Record>, ProviderError> {
    Ok(acc
        .iter()
        .filter(|(_, d)| **d != Day::default())
        .map(|(date, d)| Record {
            resource: Resource::Activity,
            provider_id: date.clone(),
            fields: fields(vec![
                ("source", source(ID, "unknown")),
                ("calendar_date", json!(date)),
                // Rollups are per civil day and carry no offset.
                ("timezone_offset", Value::Null),
                ("steps", int(d.steps)),
                ("calories_total", num(d.total_kcal.map(round1))),
                ("calories_active", num(d.active_kcal.map(round1))),
                ("daily_movement", mm_to_m(d.distance_mm.map(|x| x as f64))),
            ]),
        })
        .collect())
}

/// The fixture server's Google Health: list filters as DISCOVERY documents them (and
/// refuses the others), newest first, `pageSize` truncated to its maximum, an opaque
/// `pageToken`; daily rollups summed from interval points by the civil day they start
/// in; output-only civil times computed from the instants and offsets, as Google does.
pub struct GoogleHealthFixtures;

impl Impersonation for GoogleHealthFixtures {
    fn fixture(&self, path: &str) -> Option<&'static str> {
        Some(match path {
            "oauth/token.json" => include_str!("../../fixtures/google_health/oauth/token.json"),
            "oauth/refresh.json" => include_str!("../../fixtures/google_health/oauth/refresh.json"),
            "oauth/invalid_grant.json" => {
                include_str!("../../fixtures/google_health/oauth/invalid_grant.json")
            }
            "oauth/identity.json" => {
                include_str!("../../fixtures/google_health/oauth/identity.json")
            }
            "push/public_keyset.json" => {
                include_str!("../../fixtures/google_health/push/public_keyset.json")
            }
            "push/public_key.pem" => {
                include_str!("../../fixtures/google_health/push/public_key.pem")
            }
            "push/fixture_signing_key.pk8.b64" => {
                include_str!("../../fixtures/google_health/push/fixture_signing_key.pk8.b64")
            }
            "errors/400.json" => include_str!("../../fixtures/google_health/errors/400.json"),
            "errors/401.json" => include_str!("../../fixtures/google_health/errors/401.json"),
            "errors/403.json" => include_str!("../../fixtures/google_health/errors/403.json"),
            "errors/404.json" => include_str!("../../fixtures/google_health/errors/404.json"),
            "errors/429.json" => include_str!("../../fixtures/google_health/errors/429.json"),
            "errors/500.json" => include_str!("../../fixtures/google_health/errors/500.json"),
            "data/workouts.json" => include_str!("../../fixtures/google_health/data/workouts.json"),
            "data/workouts.changed.json" => {
                include_str!("../../fixtures/google_health/data/workouts.changed.json")
            }
            "data/sleep.json" => include_str!("../../fixtures/google_health/data/sleep.json"),
            "data/sleep.changed.json" => {
                include_str!("../../fixtures/google_health/data/sleep.changed.json")
            }
            "data/activity.json" => include_str!("../../fixtures/google_health/data/activity.json"),
            "data/activity.changed.json" => {
                include_str!("../../fixtures/google_health/data/activity.changed.json")
            }
            "data/body.json" => include_str!("../../fixtures/google_health/data/body.json"),
            "data/body.changed.json" => {
                include_str!("../../fixtures/google_health/data/body.changed.json")
            }
            "data/heartrate.json" => {
                include_str!("../../fixtures/google_health/data/heartrate.json")
            }
            "data/heartrate.changed.json" => {
                include_str!("../../fixtures/google_health/data/heartrate.changed.json")
            }
            "data/hrv.json" => include_str!("../../fixtures/google_health/data/hrv.json"),
            "data/hrv.changed.json" => {
                include_str!("../../fixtures/google_health/data/hrv.changed.json")
            }
            "data/blood_oxygen.json" => {
                include_str!("../../fixtures/google_health/data/blood_oxygen.json")
            }
            "data/blood_oxygen.changed.json" => {
                include_str!("../../fixtures/google_health/data/blood_oxygen.changed.json")
            }
            "data/respiratory_rate.json" => {
                include_str!("../../fixtures/google_health/data/respiratory_rate.json")
            }
            "data/respiratory_rate.changed.json" => {
                include_str!("../../fixtures/google_health/data/respiratory_rate.changed.json")
            }
            "data/body_temperature.json" => {
                include_str!("../../fixtures/google_health/data/body_temperature.json")
            }
            "data/body_temperature.changed.json" => {
                include_str!("../../fixtures/google_health/data/body_temperature.changed.json")
            }
            // Distance and active energy are the interval points the activity rollups
            // sum: one data set, listed here and rolled up there.
            "data/distance.json" | "data/calories_active.json" => {
                include_str!("../../fixtures/google_health/data/activity.json")
            }
            "data/distance.changed.json" | "data/calories_active.changed.json" => {
                include_str!("../../fixtures/google_health/data/activity.changed.json")
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
        self.serve_at(&resource.path, resource, params, items)
    }

    fn resource_at(&self, path: &str) -> Option<Resource> {
        [Resource::Body, Resource::Activity].into_iter().find(|r| {
            phases(*r).iter().any(|t| {
                if *r == Resource::Activity {
                    rollup_path(t) == path
                } else {
                    list_path(t) == path
                }
            })
        })
    }

    fn serve_at(
        &self,
        path: &str,
        _resource: &ResourceSpec,
        params: &HashMap<String, String>,
        items: &[Value],
    ) -> Result<Value, String> {
        let rest = path
            .strip_prefix("/v4/users/me/dataTypes/")
            .ok_or_else(|| format!("no collection at {path}"))?;
        if let Some(data_type) = rest.strip_suffix("/dataPoints:dailyRollUp") {
            serve_rollup(data_type, params, items)
        } else if let Some(data_type) = rest.strip_suffix("/dataPoints") {
            serve_list(data_type, params, items)
        } else {
            Err(format!("no collection at {path}"))
        }
    }

    fn static_reply(&self, path: &str) -> Option<&'static str> {
        (path == "/v4/users/me/identity").then(|| self.fixture("oauth/identity.json"))?
    }

    /// `push/public_keyset.json`, with an ENABLED entry for each key rotated to; the
    /// newest is primary.
    fn published_keys(&self, rotated: &[String]) -> Option<String> {
        let mut keyset: Value =
            serde_json::from_str(self.fixture("push/public_keyset.json")?).ok()?;
        for k in rotated {
            let (id, pair) = rotated_key(k)?;
            let entry = tink_entry(id, ring::signature::KeyPair::public_key(&pair).as_ref())?;
            keyset.get_mut("key")?.as_array_mut()?.push(entry);
            keyset["primaryKeyId"] = json!(id);
        }
        Some(keyset.to_string())
    }

    /// A new P-256 key with a random key id, as `{keyId}:{PKCS#8 in base64}`.
    fn rotated_signing_key(&self) -> Option<String> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        )
        .ok()?;
        let mut id = [0u8; 4];
        ring::rand::SecureRandom::fill(&rng, &mut id).ok()?;
        Some(format!(
            "{}:{}",
            u32::from_be_bytes(id),
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        ))
    }

    /// The verification pair HOOKS describes: `{"type": "verification"}` with the
    /// subscriber's `Authorization` secret (must get 201) and without it (401 or 403).
    fn verification_pushes(
        &self,
        subscription: &FixtureSubscription,
        _secrets: &PushSecrets,
        _now: DateTime<Utc>,
    ) -> Vec<VerificationPush> {
        let body = br#"{"type":"verification"}"#.to_vec();
        let push = |headers: Vec<(String, String)>| OutboundPush {
            headers,
            query: vec![],
            content_type: "application/json",
            body: body.clone(),
        };
        vec![
            VerificationPush {
                push: push(vec![(
                    "Authorization".into(),
                    subscription.verify_token.clone().unwrap_or_default(),
                )]),
                accepted: vec![201],
            },
            VerificationPush {
                push: push(vec![]),
                accepted: vec![401, 403],
            },
        ]
    }

    /// A notification in the shape of HOOKS' (see fixtures/google_health/README.md
    /// "Push"): `{"data": {version, clientProvidedSubscriptionName, healthUserId,
    /// operation, dataType, intervals: [{physicalTimeInterval}]}}` for the resource's
    /// first data type, the interval the changed point's own (its `interval`, or its
    /// `sampleTime` instant), signed by the fixture's key (`push/fixture_signing_key`,
    /// published as `push/public_keyset.json`) in Tink's framing, with the subscriber's
    /// `Authorization` secret. Google sends no deauthorization notification.
    fn push_for(
        &self,
        change: &FixtureChange<'_>,
        subscriptions: &[FixtureSubscription],
        secrets: &PushSecrets,
        _now: DateTime<Utc>,
    ) -> Vec<(String, OutboundPush)> {
        let operation = match change.kind {
            FixtureChangeKind::Created | FixtureChangeKind::Updated => "UPSERT",
            FixtureChangeKind::Deleted => "DELETE",
            FixtureChangeKind::Deauthorized => return vec![],
        };
        let Some(data_type) = phases(change.resource).first() else {
            return vec![];
        };
        let (start, end) = change
            .item
            .and_then(point_interval)
            .unwrap_or((change.at, change.at));
        subscriptions
            .iter()
            .filter_map(|sub| {
                let body = json!({"data": {
                    "version": "1",
                    "clientProvidedSubscriptionName": sub.remote_id.clone().unwrap_or_else(|| "wearbridge".into()),
                    "healthUserId": change.user,
                    "operation": operation,
                    "dataType": data_type,
                    "intervals": [{"physicalTimeInterval": {
                        "startTime": rfc3339_z(start),
                        "endTime": rfc3339_z(end),
                    }}],
                }})
                .to_string()
                .into_bytes();
                let sig = fixture_signature(self, &body, &secrets.rotated_keys)?;
                Some((
                    sub.callback_url.clone(),
                    OutboundPush {
                        headers: vec![
                            ("Authorization".into(), sub.verify_token.clone().unwrap_or_default()),
                            ("X-HEALTHAPI-SIGNATURE".into(), sig),
                        ],
                        query: vec![],
                        content_type: "application/json",
                        body,
                    },
                ))
            })
            .collect()
    }
}

/// The interval of a data point as the fixture holds it: its member's `interval`
/// (sessions, intervals) or `sampleTime.physicalTime` (samples).
fn point_interval(item: &Value) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let t = |v: &Value| {
        v.as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    item.as_object()?.values().find_map(|m| {
        if let Some(i) = m.get("interval") {
            Some((t(i.get("startTime")?)?, t(i.get("endTime")?)?))
        } else {
            let at = t(m.get("sampleTime")?.get("physicalTime")?)?;
            Some((at, at))
        }
    })
}

/// A signing key the fixture provider rotated to, as it keeps it: `{keyId}:{PKCS#8 in
/// base64}`; its id and key pair.
fn rotated_key(text: &str) -> Option<(u32, ring::signature::EcdsaKeyPair)> {
    let (id, pkcs8) = text.split_once(':')?;
    Some((id.parse().ok()?, p256_pair(pkcs8)?))
}

/// A P-256 key pair from its PKCS#8 in base64.
fn p256_pair(pkcs8_b64: &str) -> Option<ring::signature::EcdsaKeyPair> {
    let pkcs8 = base64::engine::general_purpose::STANDARD
        .decode(pkcs8_b64.trim())
        .ok()?;
    ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &pkcs8,
        &ring::rand::SystemRandom::new(),
    )
    .ok()
}

/// A Tink JSON keyset entry for the P-256 public key `point` (`04 || x || y`): a
/// serialised `EcdsaPublicKey` (`version` 0, `params` {hash SHA256 = 3, curve NIST_P256
/// = 2, encoding DER = 2}, `x`, `y`), as in `push/public_keyset.json`.
fn tink_entry(key_id: u32, point: &[u8]) -> Option<Value> {
    let (x, y) = (point.get(1..33)?, point.get(33..65)?);
    let mut proto = vec![0x08, 0x00, 0x12, 0x06, 0x08, 0x03, 0x10, 0x02, 0x18, 0x02];
    proto.extend_from_slice(&[0x1a, 0x20]);
    proto.extend_from_slice(x);
    proto.extend_from_slice(&[0x22, 0x20]);
    proto.extend_from_slice(y);
    Some(json!({
        "keyData": {
            "typeUrl": "type.googleapis.com/google.crypto.tink.EcdsaPublicKey",
            "value": base64::engine::general_purpose::STANDARD.encode(proto),
            "keyMaterialType": "ASYMMETRIC_PUBLIC",
        },
        "status": "ENABLED",
        "keyId": key_id,
        "outputPrefixType": "TINK",
    }))
}

/// The fixture's signature over `body`: ECDSA P-256 SHA-256 (DER) by the newest key it
/// rotated to (`rotated`), else by the fixture key (`push/fixture_signing_key`), behind
/// Tink's prefix `01 || keyId` of that key, in base64.
fn fixture_signature(
    imp: &GoogleHealthFixtures,
    body: &[u8],
    rotated: &[String],
) -> Option<String> {
    let (key_id, pair) = match rotated.last() {
        Some(k) => rotated_key(k)?,
        None => {
            let keyset: Value =
                serde_json::from_str(imp.fixture("push/public_keyset.json")?).ok()?;
            (
                u32::try_from(keyset.get("primaryKeyId")?.as_u64()?).ok()?,
                p256_pair(imp.fixture("push/fixture_signing_key.pk8.b64")?)?,
            )
        }
    };
    let rng = ring::rand::SystemRandom::new();
    let sig = pair.sign(&rng, body).ok()?;
    let mut framed = vec![1u8];
    framed.extend_from_slice(&key_id.to_be_bytes());
    framed.extend_from_slice(sig.as_ref());
    Some(base64::engine::general_purpose::STANDARD.encode(framed))
}

/// One `field op "literal"` clause of an AIP-160 filter joined by `AND`.
fn parse_filter(filter: &str) -> Result<Vec<(String, String, String)>, String> {
    filter
        .split(" AND ")
        .map(|clause| {
            let clause = clause.trim();
            let (field, rest) = clause
                .split_once(' ')
                .ok_or_else(|| format!("cannot parse filter clause `{clause}`"))?;
            let (op, lit) = rest
                .trim()
                .split_once(' ')
                .ok_or_else(|| format!("cannot parse filter clause `{clause}`"))?;
            let lit = lit
                .trim()
                .strip_prefix('"')
                .and_then(|l| l.strip_suffix('"'))
                .ok_or_else(|| format!("the literal in `{clause}` must be quoted"))?;
            if op != ">=" && op != "<" {
                return Err(format!("unsupported comparison `{op}`"));
            }
            Ok((field.to_string(), op.to_string(), lit.to_string()))
        })
        .collect()
}

/// The instant (or, for exercise, the civil wall-clock time as if UTC) a point is
/// filtered and ordered by, and the field the filter must name.
fn filter_key(data_type: &str, data: &Value) -> Option<(NaiveDateTime, NaiveDateTime)> {
    let instant = |p: &str| -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(at(data, p)?.as_str()?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let offset = |p: &str| -> Option<i64> {
        at(data, p)?
            .as_str()?
            .strip_suffix('s')?
            .parse::<i64>()
            .ok()
    };
    match data_type {
        "sleep" => {
            let end = instant("interval.endTime")?.naive_utc();
            Some((end, instant("interval.startTime")?.naive_utc()))
        }
        "exercise" => {
            let start = instant("interval.startTime")?;
            let civil = start.naive_utc() + Duration::seconds(offset("interval.startUtcOffset")?);
            Some((civil, start.naive_utc()))
        }
        t if INTERVAL_TYPES.contains(&t) => {
            let t = instant("interval.startTime")?.naive_utc();
            Some((t, t))
        }
        _ => {
            let t = instant("sampleTime.physicalTime")?.naive_utc();
            Some((t, t))
        }
    }
}

fn filter_field(data_type: &str) -> String {
    match data_type {
        "sleep" => "sleep.interval.end_time".into(),
        "exercise" => "exercise.interval.civil_start_time".into(),
        t if INTERVAL_TYPES.contains(&t) => format!("{}.interval.start_time", filter_name(t)),
        other => format!("{}.sample_time.physical_time", filter_name(other)),
    }
}

fn encode_token(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

fn decode_token(token: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

/// `{"date": {...}, "time": {...}}` for a wall-clock time, leaving zero members (and a
/// midnight `time`) out as proto3 JSON does.
fn civil_json(t: NaiveDateTime) -> Value {
    use chrono::Datelike;
    let mut time = serde_json::Map::new();
    for (k, x) in [
        ("hours", t.hour()),
        ("minutes", t.minute()),
        ("seconds", t.second()),
    ] {
        if x != 0 {
            time.insert(k.into(), json!(x));
        }
    }
    let mut v = json!({"date": {"year": t.year(), "month": t.month(), "day": t.day()}});
    if !time.is_empty() {
        v["time"] = Value::Object(time);
    }
    v
}

/// Adds the output-only civil times Google computes from each instant and offset.
fn with_civil_times(mut item: Value, key: &str) -> Value {
    let civil = |v: &Value, t: &str, o: &str| -> Option<Value> {
        let inst = DateTime::parse_from_rfc3339(v.get(t)?.as_str()?).ok()?;
        let off: i64 = v.get(o)?.as_str()?.strip_suffix('s')?.parse().ok()?;
        Some(civil_json(inst.naive_utc() + Duration::seconds(off)))
    };
    if let Some(data) = item.get_mut(key) {
        if let Some(iv) = data.get_mut("interval") {
            let s = civil(iv, "startTime", "startUtcOffset");
            let e = civil(iv, "endTime", "endUtcOffset");
            if let (Some(s), Some(e), Some(m)) = (s, e, iv.as_object_mut()) {
                m.insert("civilStartTime".into(), s);
                m.insert("civilEndTime".into(), e);
            }
        }
        if let Some(st) = data.get_mut("sampleTime") {
            let c = civil(st, "physicalTime", "utcOffset");
            if let (Some(c), Some(m)) = (c, st.as_object_mut()) {
                m.insert("civilTime".into(), c);
            }
        }
    }
    item
}

fn serve_list(
    data_type: &str,
    params: &HashMap<String, String>,
    items: &[Value],
) -> Result<Value, String> {
    let key = member(data_type);
    let max = if data_type == "exercise" || data_type == "sleep" {
        SESSION_PAGE
    } else {
        LIST_PAGE
    };
    let default = if max == SESSION_PAGE {
        SESSION_PAGE
    } else {
        1440
    };
    let size = match params.get("pageSize") {
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| format!("pageSize must be a positive integer, got `{s}`"))?,
        None => default,
    };
    // "values above that will be truncated accordingly"
    let size = if size == 0 { default } else { size.min(max) };
    let field = filter_field(data_type);
    let clauses = match params.get("filter") {
        Some(f) => parse_filter(f)?,
        None => vec![],
    };
    let mut bounds: Vec<(String, NaiveDateTime)> = Vec::new();
    for (f, op, lit) in clauses {
        if f != field {
            return Err(format!(
                "unsupported filter field `{f}` for {data_type}; use {field}"
            ));
        }
        let t = if data_type == "exercise" {
            NaiveDateTime::parse_from_str(&lit, "%Y-%m-%dT%H:%M:%S")
                .or_else(|_| {
                    NaiveDate::parse_from_str(&lit, "%Y-%m-%d")
                        .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
                })
                .map_err(|_| format!("`{lit}` is not YYYY-MM-DD[THH:mm:ss]"))?
        } else {
            DateTime::parse_from_rfc3339(&lit)
                .map(|t| t.naive_utc())
                .map_err(|_| format!("`{lit}` is not an RFC 3339 timestamp"))?
        };
        bounds.push((op, t));
    }
    let offset = match params.get("pageToken") {
        Some(t) => decode_token(t).ok_or_else(|| format!("invalid pageToken `{t}`"))?,
        None => 0,
    };
    let mut selected: Vec<(NaiveDateTime, &Value)> = items
        .iter()
        .filter_map(|i| {
            let (k, order) = filter_key(data_type, i.get(&key)?)?;
            bounds
                .iter()
                .all(|(op, t)| if op == ">=" { k >= *t } else { k < *t })
                .then_some((order, i))
        })
        .collect();
    // DISCOVERY: "ordered by the interval start time in descending order".
    selected.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
    let page: Vec<Value> = selected
        .iter()
        .skip(offset)
        .take(size)
        .map(|(_, v)| with_civil_times((*v).clone(), &key))
        .collect();
    let mut out = serde_json::Map::new();
    if !page.is_empty() {
        out.insert("dataPoints".into(), Value::Array(page));
    }
    if offset + size < selected.len() {
        out.insert("nextPageToken".into(), json!(encode_token(offset + size)));
    }
    Ok(Value::Object(out))
}

fn serve_rollup(
    data_type: &str,
    params: &HashMap<String, String>,
    items: &[Value],
) -> Result<Value, String> {
    let range: Value = params
        .get("range")
        .ok_or("range is required")
        .and_then(|r| serde_json::from_str(r).map_err(|_| "range is not an object"))?;
    let day =
        |k: &str| civil_day(&range, &format!("{k}.date")).map_err(|e| format!("range.{k}: {e}"));
    let (from, to) = (day("start")?, day("end")?);
    let span = (to - from).num_days();
    // DISCOVERY DailyRollUpDataPointsRequest.range maxima.
    let limit = if data_type == "total-calories" {
        14
    } else {
        90
    };
    if span <= 0 || span > limit {
        return Err(format!("range must cover 1 to {limit} days, got {span}"));
    }
    if params.get("windowSizeDays").is_some_and(|w| w != "1") {
        return Err("this fixture rolls up one-day windows only".into());
    }
    // Each day's sum of the interval points that start in it (civil time). Total
    // calories are not stored as points: basal plus active energy (an assumption).
    let members: &[(&str, &str)] = match data_type {
        "steps" => &[("steps", "count")],
        "distance" => &[("distance", "millimeters")],
        "active-energy-burned" => &[("activeEnergyBurned", "kcal")],
        "total-calories" => &[
            ("activeEnergyBurned", "kcal"),
            ("basalEnergyBurned", "kcal"),
        ],
        other => return Err(format!("no daily rollup of {other} in the fixtures")),
    };
    let mut sums: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    for item in items {
        for (m, field) in members {
            let Some(p) = item.get(*m) else { continue };
            // Interval points have the session's interval shape: their civil start.
            let Some((civil, _)) = filter_key("exercise", p) else {
                continue;
            };
            let value = match p.get(*field) {
                Some(Value::String(s)) => s.parse::<f64>().ok(),
                Some(Value::Number(n)) => n.as_f64(),
                _ => None,
            };
            if let Some(x) = value {
                *sums.entry(civil.date()).or_default() += x;
            }
        }
    }
    let points: Vec<Value> = sums
        .range(from..to)
        .map(|(d, x)| {
            let value = match data_type {
                "steps" => json!({"steps": {"countSum": format!("{}", *x as i64)}}),
                "distance" => json!({"distance": {"millimetersSum": format!("{}", *x as i64)}}),
                "active-energy-burned" => {
                    json!({"activeEnergyBurned": {"kcalSum": (x * 10.0).round() / 10.0}})
                }
                _ => json!({"totalCalories": {"kcalSum": (x * 10.0).round() / 10.0}}),
            };
            let mut v = json!({
                "civilStartTime": civil_json(d.and_hms_opt(0, 0, 0).unwrap_or_default()),
                "civilEndTime": civil_json((*d + Duration::days(1)).and_hms_opt(0, 0, 0).unwrap_or_default()),
            });
            if let (Some(o), Value::Object(m)) = (v.as_object_mut(), value) {
                o.extend(m);
            }
            v
        })
        .collect();
    let mut out = serde_json::Map::new();
    if !points.is_empty() {
        out.insert("rollupDataPoints".into(), Value::Array(points));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn spec(name: Resource) -> ResourceSpec {
        crate::providers::find(ID)
            .unwrap()
            .resource(name)
            .unwrap()
            .clone()
    }

    fn data(file: &str) -> Vec<Value> {
        serde_json::from_str(
            GoogleHealthFixtures
                .fixture(&format!("data/{file}"))
                .unwrap(),
        )
        .unwrap()
    }

    fn q(r: &PageRequest, k: &str) -> Option<String> {
        r.query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    /// One data point of `data_type` in a list reply.
    fn one(resource: Resource, point: Value) -> Result<Page, ProviderError> {
        GoogleHealth.parse_page(
            resource,
            json!({ "dataPoints": [point] }).to_string().as_bytes(),
            None,
        )
    }

    fn malformed_field(r: Result<Page, ProviderError>) -> String {
        match r {
            Err(ProviderError::Malformed { field, .. }) => field,
            other => panic!("expected a malformed error, got {other:?}"),
        }
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_manifest_paths_are_each_resources_first_data_type() {
        for s in &crate::providers::find(ID).unwrap().manifest.resources {
            let first = phases(s.name)[0];
            let want = if s.name == Resource::Activity {
                rollup_path(first)
            } else {
                list_path(first)
            };
            assert_eq!(s.path, want, "{}", s.name);
            assert_eq!(
                GoogleHealth
                    .page_request(
                        s,
                        &Window {
                            start: at_("2026-11-01T00:00:00Z"),
                            end: at_("2026-11-15T00:00:00Z")
                        },
                        None
                    )
                    .path,
                s.path
            );
        }
        assert_eq!(member("heart-rate-variability"), "heartRateVariability");
        assert_eq!(filter_name("body-fat"), "body_fat");
    }

    #[test]
    fn list_requests_filter_on_the_documented_fields_and_follow_page_tokens() {
        let w = Window {
            start: at_("2026-11-01T06:30:00Z"),
            end: at_("2026-11-15T06:30:00Z"),
        };
        let sleep = GoogleHealth.page_request(&spec(Resource::Sleep), &w, None);
        assert_eq!(sleep.method, "GET");
        assert_eq!(
            q(&sleep, "filter").unwrap(),
            r#"sleep.interval.end_time >= "2026-11-01T06:30:00Z" AND sleep.interval.end_time < "2026-11-15T06:30:00Z""#
        );
        assert_eq!(q(&sleep, "pageSize").as_deref(), Some("25"));
        assert_eq!(q(&sleep, "pageToken"), None);
        // Exercise: civil bounds widened by −12 h and +14 h.
        let ex = GoogleHealth.page_request(&spec(Resource::Workouts), &w, Some("tok"));
        assert_eq!(
            q(&ex, "filter").unwrap(),
            r#"exercise.interval.civil_start_time >= "2026-10-31T18:30:00" AND exercise.interval.civil_start_time < "2026-11-15T20:30:00""#
        );
        assert_eq!(q(&ex, "pageToken").as_deref(), Some("tok"));
        let hr = GoogleHealth.page_request(&spec(Resource::Heartrate), &w, None);
        assert!(q(&hr, "filter")
            .unwrap()
            .starts_with(r#"heart_rate.sample_time.physical_time >= "2026-11-01T06:30:00Z" AND "#));
        assert_eq!(q(&hr, "pageSize").as_deref(), Some("10000"));
        // Body: weight first, then (cursor phase 1) body fat, the filter naming it.
        let body = spec(Resource::Body);
        let fat = GoogleHealth.page_request(&body, &w, Some(r#"{"p":1}"#));
        assert_eq!(fat.path, "/v4/users/me/dataTypes/body-fat/dataPoints");
        assert!(q(&fat, "filter")
            .unwrap()
            .starts_with("body_fat.sample_time.physical_time"));
        let fat2 = GoogleHealth.page_request(&body, &w, Some(r#"{"p":1,"t":"abc"}"#));
        assert_eq!(q(&fat2, "pageToken").as_deref(), Some("abc"));
    }

    #[test]
    fn activity_rolls_up_each_data_type_over_civil_days_ending_today() {
        let w = Window {
            start: at_("2026-11-09T08:00:00Z"),
            end: at_("2026-11-23T08:00:00Z"),
        };
        let a = spec(Resource::Activity);
        let first = GoogleHealth.page_request(&a, &w, None);
        assert_eq!((first.method, first.query.len()), ("POST", 0));
        assert_eq!(
            first.json.unwrap(),
            json!({"range": {"start": {"date": {"year": 2026, "month": 11, "day": 10}},
                             "end": {"date": {"year": 2026, "month": 11, "day": 24}}},
                   "windowSizeDays": 1})
        );
        for (p, path) in [
            (1, "distance"),
            (2, "total-calories"),
            (3, "active-energy-burned"),
        ] {
            let r = GoogleHealth.page_request(&a, &w, Some(&format!(r#"{{"p":{p}}}"#)));
            assert_eq!(r.path, rollup_path(path));
        }
        let paged = GoogleHealth.page_request(&a, &w, Some(r#"{"p":2,"t":"next"}"#));
        assert_eq!(paged.json.unwrap()["pageToken"], "next");
        // 14 days: the documented maximum for total-calories.
        let (from, to) = civil_days(&w);
        assert_eq!((to - from).num_days(), 14);
    }

    #[test]
    fn activity_merges_the_four_rollups_into_one_record_a_day() {
        let a = Resource::Activity;
        let day = |d: u32, member: Value| {
            let mut v = json!({"civilStartTime": {"date": {"year": 2026, "month": 11, "day": d}}});
            v.as_object_mut()
                .unwrap()
                .extend(member.as_object().unwrap().clone());
            v
        };
        let steps = json!({"rollupDataPoints": [day(20, json!({"steps": {"countSum": "11842"}})),
                                                day(21, json!({"steps": {"countSum": "2044"}}))]});
        let p1 = GoogleHealth
            .parse_page(a, steps.to_string().as_bytes(), None)
            .unwrap();
        assert!(p1.records.is_empty(), "nothing until every type is read");
        let c1 = p1.next.unwrap();
        // A day the distance rollup leaves out stays null, never 0.
        let dist = json!({"rollupDataPoints": [day(20, json!({"distance": {"millimetersSum": "9210456"}}))]});
        let c2 = GoogleHealth
            .parse_page(a, dist.to_string().as_bytes(), Some(&c1))
            .unwrap()
            .next
            .unwrap();
        // No points at all: proto3 JSON leaves the list out.
        let c3 = GoogleHealth
            .parse_page(a, b"{}", Some(&c2))
            .unwrap()
            .next
            .unwrap();
        let active = json!({"rollupDataPoints": [day(20, json!({"activeEnergyBurned": {"kcalSum": 548.04}}))]});
        let last = GoogleHealth
            .parse_page(a, active.to_string().as_bytes(), Some(&c3))
            .unwrap();
        assert_eq!(last.next, None);
        let recs: Vec<Value> = last.records.iter().map(Record::to_json).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0]["provider_id"], "2026-11-20");
        assert_eq!(
            (
                recs[0]["steps"].clone(),
                recs[0]["daily_movement"].clone(),
                recs[0]["calories_active"].clone()
            ),
            (json!(11842), json!(9210.456), json!(548.0))
        );
        assert!(recs[0]["calories_total"].is_null());
        assert_eq!(recs[1]["steps"], 2044);
        assert!(recs[1]["daily_movement"].is_null() && recs[1]["calories_active"].is_null());
    }

    #[test]
    fn units_are_read_as_the_discovery_document_types_them() {
        let ex = json!({"name": "users/me/dataTypes/exercise/dataPoints/2026443605080188808",
            "dataSource": {"device": {"formFactor": "WATCH"}},
            "exercise": {"interval": {"startTime": "2026-11-20T06:12:00Z", "startUtcOffset": "3600s",
                                      "endTime": "2026-11-20T06:58:30Z", "endUtcOffset": "3600s"},
                         "exerciseType": "RUNNING", "displayName": "Morning run", "activeDuration": "2400.4s",
                         "metricsSummary": {"distanceMillimeters": 8120456.0, "caloriesKcal": 612.4,
                                            "averageHeartRateBeatsPerMinute": "148", "elevationGainMillimeters": 64000.0,
                                            "averageSpeedMillimetersPerSecond": 3383.5}}});
        let r = one(Resource::Workouts, ex).unwrap().records[0].to_json();
        assert_eq!(r["provider_id"], "2026443605080188808");
        assert_eq!(r["source"], json!({"provider": ID, "type": "watch"}));
        assert_eq!(
            (r["moving_time"].clone(), r["distance"].clone()),
            (json!(2400), json!(8120.456))
        );
        assert_eq!(
            (r["average_hr"].clone(), r["average_speed"].clone()),
            (json!(148), json!(3.38))
        );
        assert_eq!(
            (
                r["total_elevation_gain"].clone(),
                r["timezone_offset"].clone()
            ),
            (json!(64.0), json!(3600))
        );
        assert_eq!(r["sport"], json!({"name": "Running", "slug": "running"}));
        assert!(r["max_hr"].is_null() && r["max_speed"].is_null());
        // Without activeDuration, the recorded span; an unknown type passes through.
        let bare = json!({"name": "users/me/dataTypes/exercise/dataPoints/7",
            "exercise": {"interval": {"startTime": "2026-11-20T06:00:00Z", "startUtcOffset": "-18000s",
                                      "endTime": "2026-11-20T06:30:00Z", "endUtcOffset": "-18000s"},
                         "exerciseType": "PADDLEBOARDING", "displayName": "SUP", "metricsSummary": {}}});
        let r = one(Resource::Workouts, bare).unwrap().records[0].to_json();
        assert_eq!(
            (r["moving_time"].clone(), r["timezone_offset"].clone()),
            (json!(1800), json!(-18000))
        );
        assert_eq!(r["sport"]["slug"], "paddleboarding");
        assert!(r["distance"].is_null() && r["calories"].is_null() && r["average_hr"].is_null());
        assert_eq!(r["source"]["type"], "unknown");

        let weight = json!({"name": "users/me/dataTypes/weight/dataPoints/w1",
            "weight": {"sampleTime": {"physicalTime": "2026-11-20T06:03:11Z", "utcOffset": "3600s"}, "weightGrams": 72454.9}});
        let r = one(Resource::Body, weight).unwrap().records[0].to_json();
        assert_eq!(
            (r["weight"].clone(), r["fat"].clone()),
            (json!(72.45), Value::Null)
        );
        let hr = json!({"heartRate": {"sampleTime": {"physicalTime": "2026-11-20T06:03:11.250Z", "utcOffset": "3600s"},
                                      "beatsPerMinute": "61"}});
        let r = one(Resource::Heartrate, hr).unwrap().records[0].to_json();
        assert_eq!(
            (r["value"].clone(), r["unit"].clone(), r["type"].clone()),
            (json!(61), json!("bpm"), json!("heartrate"))
        );
        assert_eq!(r["provider_id"], "2026-11-20T06:03:11+00:00");
    }

    #[test]
    fn body_fat_follows_weight_with_keys_of_its_own() {
        let b = Resource::Body;
        let t = r#"{"physicalTime": "2026-11-20T06:03:11Z", "utcOffset": "3600s"}"#;
        let w = format!(
            r#"{{"dataPoints": [{{"weight": {{"sampleTime": {t}, "weightGrams": 72450}}}}]}}"#
        );
        let p = GoogleHealth.parse_page(b, w.as_bytes(), None).unwrap();
        assert_eq!(p.next.as_deref(), Some(r#"{"p":1}"#));
        assert_eq!(
            p.records[0].provider_id, "weight@2026-11-20T06:03:11+00:00",
            "no name: type and time"
        );
        let f = format!(
            r#"{{"dataPoints": [{{"bodyFat": {{"sampleTime": {t}, "percentage": 18.24}}}}]}}"#
        );
        let p = GoogleHealth
            .parse_page(b, f.as_bytes(), Some(r#"{"p":1}"#))
            .unwrap();
        assert_eq!(p.next, None);
        assert_eq!(
            p.records[0].provider_id,
            "body-fat@2026-11-20T06:03:11+00:00"
        );
        assert_eq!(
            (
                p.records[0].fields["fat"].clone(),
                p.records[0].fields["weight"].clone()
            ),
            (json!(18.2), Value::Null)
        );
        // A weight page read as body fat is a malformed page, not a silent skip.
        assert_eq!(
            malformed_field(GoogleHealth.parse_page(b, w.as_bytes(), Some(r#"{"p":1}"#))),
            "dataPoints[0].bodyFat"
        );
        let bad = format!(
            r#"{{"dataPoints": [{{"bodyFat": {{"sampleTime": {t}, "percentage": 180}}}}]}}"#
        );
        assert_eq!(
            malformed_field(GoogleHealth.parse_page(b, bad.as_bytes(), Some(r#"{"p":1}"#))),
            "dataPoints[0].bodyFat.percentage"
        );
    }

    #[test]
    fn sleep_minutes_become_seconds_naps_are_skipped_and_unprocessed_nights_are_tentative() {
        let night = json!({"name": "users/113407815228541906652/dataTypes/sleep/dataPoints/n1",
            "sleep": {"interval": {"startTime": "2026-10-24T21:10:00Z", "startUtcOffset": "7200s",
                                   "endTime": "2026-10-25T05:40:00Z", "endUtcOffset": "3600s"},
                      "type": "STAGES", "metadata": {"processed": true, "nap": false},
                      "summary": {"minutesInSleepPeriod": "510", "minutesAsleep": "459", "minutesAwake": "51",
                                  "stagesSummary": [{"type": "AWAKE", "minutes": "51", "count": "4"},
                                                    {"type": "LIGHT", "minutes": "250", "count": "9"},
                                                    {"type": "DEEP", "minutes": "94", "count": "3"},
                                                    {"type": "REM", "minutes": "115", "count": "4"}]}}});
        let r = one(Resource::Sleep, night).unwrap().records[0].to_json();
        assert_eq!(r["provider_id"], "n1");
        // The night the clocks went back: offsets differ at each end; the end's counts.
        assert_eq!(
            (r["calendar_date"].clone(), r["timezone_offset"].clone()),
            (json!("2026-10-25"), json!(3600))
        );
        assert_eq!(r["duration"], 30_600, "8 h 30 min by the instants");
        assert_eq!(
            (r["total"].clone(), r["awake"].clone()),
            (json!(27_540), json!(3_060))
        );
        assert_eq!(
            (r["light"].clone(), r["deep"].clone(), r["rem"].clone()),
            (json!(15_000), json!(5_640), json!(6_900))
        );
        assert_eq!(r["efficiency"], 90.0);
        assert_eq!(r["state"], "confirmed");
        let classic = json!({"name": "users/me/dataTypes/sleep/dataPoints/n2",
            "sleep": {"interval": {"startTime": "2026-10-24T21:10:00Z", "startUtcOffset": "7200s",
                                   "endTime": "2026-10-25T05:40:00Z", "endUtcOffset": "3600s"},
                      "type": "CLASSIC", "metadata": {"processed": true},
                      "summary": {"minutesInSleepPeriod": "510", "minutesAsleep": "470",
                                  "stagesSummary": [{"type": "ASLEEP", "minutes": "470", "count": "3"}]}}});
        let r = one(Resource::Sleep, classic).unwrap().records[0].to_json();
        assert!(r["light"].is_null() && r["deep"].is_null() && r["rem"].is_null());
        assert!(
            r["awake"].is_null(),
            "no AWAKE minutes given: unknown, not 0"
        );
        let pending = json!({"name": "users/me/dataTypes/sleep/dataPoints/n3",
            "sleep": {"interval": {"startTime": "2026-11-20T22:00:00Z", "startUtcOffset": "3600s",
                                   "endTime": "2026-11-21T06:00:00Z", "endUtcOffset": "3600s"},
                      "type": "STAGES", "metadata": {"processed": false}}});
        let r = one(Resource::Sleep, pending).unwrap().records[0].to_json();
        assert_eq!(r["state"], "tentative");
        assert!(r["total"].is_null() && r["efficiency"].is_null() && r["light"].is_null());
        let nap = json!({"name": "users/me/dataTypes/sleep/dataPoints/n4",
            "sleep": {"interval": {"startTime": "2026-11-20T13:00:00Z", "startUtcOffset": "3600s",
                                   "endTime": "2026-11-20T13:40:00Z", "endUtcOffset": "3600s"},
                      "metadata": {"nap": true}}});
        assert!(one(Resource::Sleep, nap).unwrap().records.is_empty());
    }

    #[test]
    fn hrv_is_rmssd_and_an_sdnn_only_sample_is_skipped() {
        let t = json!({"physicalTime": "2026-11-20T02:30:00Z", "utcOffset": "3600s"});
        let both = json!({"heartRateVariability": {"sampleTime": t, "rootMeanSquareOfSuccessiveDifferencesMilliseconds": 41.26,
                                                    "standardDeviationMilliseconds": 58.0}});
        let r = one(Resource::Hrv, both).unwrap().records[0].to_json();
        assert_eq!(
            (r["value"].clone(), r["unit"].clone(), r["type"].clone()),
            (json!(41.3), json!("ms"), json!("hrv"))
        );
        let sdnn = json!({"heartRateVariability": {"sampleTime": t, "standardDeviationMilliseconds": 58.0}});
        assert!(one(Resource::Hrv, sdnn).unwrap().records.is_empty());
    }

    #[test]
    fn oxygen_respiration_and_temperature_keep_their_units_and_skip_no_readings() {
        let t = json!({"physicalTime": "2026-11-20T02:30:00Z", "utcOffset": "3600s"});
        let o = one(
            Resource::BloodOxygen,
            json!({"dataSource": {"device": {"formFactor": "WATCH"}},
            "oxygenSaturation": {"sampleTime": t, "percentage": 96.4}}),
        )
        .unwrap()
        .records[0]
            .to_json();
        assert_eq!(
            (o["value"].clone(), o["unit"].clone(), o["type"].clone()),
            (json!(96.4), json!("%"), json!("blood_oxygen"))
        );
        assert_eq!(
            (o["timezone_offset"].clone(), o["source"]["type"].clone()),
            (json!(3600), json!("watch"))
        );
        assert!(o.get("start").is_none(), "an instant");
        assert_eq!(
            malformed_field(one(
                Resource::BloodOxygen,
                json!({"oxygenSaturation": {"sampleTime": t, "percentage": 104.0}})
            )),
            "dataPoints[0].oxygenSaturation.percentage"
        );
        assert_eq!(
            malformed_field(one(
                Resource::BloodOxygen,
                json!({"oxygenSaturation": {"sampleTime": t}})
            )),
            "dataPoints[0].oxygenSaturation.percentage",
            "no percentage is no reading of the documented shape, not a zero"
        );

        let full = json!({"respiratoryRateSleepSummary": {"sampleTime": t,
            "deepSleepStats": {"breathsPerMinute": 13.1}, "fullSleepStats": {"breathsPerMinute": 14.6, "signalToNoise": 12.0}}});
        let r = one(Resource::RespiratoryRate, full).unwrap().records[0].to_json();
        assert_eq!(
            (r["value"].clone(), r["unit"].clone(), r["type"].clone()),
            (json!(14.6), json!("bpm"), json!("respiratory_rate")),
            "the whole sleep's average, not a stage's"
        );
        let stages_only = json!({"respiratoryRateSleepSummary": {"sampleTime": t,
            "deepSleepStats": {"breathsPerMinute": 13.1}}});
        assert!(
            one(Resource::RespiratoryRate, stages_only)
                .unwrap()
                .records
                .is_empty(),
            "no full-sleep average: no sample, not a zero"
        );

        let temp = |loc: Value| {
            let mut d = json!({"sampleTime": t, "temperatureCelsius": 38.25});
            if !loc.is_null() {
                d["measurementLocation"] = loc;
            }
            one(Resource::BodyTemperature, json!({"coreBodyTemperature": d}))
                .unwrap()
                .records[0]
                .to_json()
        };
        let c = temp(json!("EAR_DRUM"));
        assert_eq!(
            (
                c["value"].clone(),
                c["unit"].clone(),
                c["sensor_location"].clone()
            ),
            (json!(38.25), json!("°C"), json!("eardrum"))
        );
        assert_eq!(
            (c["start"].clone(), c["end"].clone()),
            (c["timestamp"].clone(), c["timestamp"].clone()),
            "a reading is an instant: its interval starts and ends at it"
        );
        assert_eq!(
            c["source"]["type"], "unknown",
            "a manual reading names no device"
        );
        for unknown in [
            json!("OTHER"),
            json!("NASAL"),
            json!("MEASUREMENT_LOCATION_UNSPECIFIED"),
            Value::Null,
        ] {
            assert!(
                temp(unknown.clone())["sensor_location"].is_null(),
                "{unknown}"
            );
        }
        assert_eq!(
            temp(json!("GASTRO_INTESTINAL"))["sensor_location"],
            "gastrointestinal"
        );
    }

    #[test]
    fn distance_and_active_energy_are_interval_samples_filtered_by_their_start() {
        let w = Window {
            start: at_("2026-11-01T00:00:00Z"),
            end: at_("2026-11-15T00:00:00Z"),
        };
        let d = GoogleHealth.page_request(&spec(Resource::Distance), &w, None);
        assert_eq!(d.path, "/v4/users/me/dataTypes/distance/dataPoints");
        assert_eq!(
            q(&d, "filter").unwrap(),
            r#"distance.interval.start_time >= "2026-11-01T00:00:00Z" AND distance.interval.start_time < "2026-11-15T00:00:00Z""#
        );
        let e = GoogleHealth.page_request(&spec(Resource::CaloriesActive), &w, Some("tok"));
        assert!(q(&e, "filter")
            .unwrap()
            .starts_with("active_energy_burned.interval.start_time >= "));
        assert_eq!(q(&e, "pageToken").as_deref(), Some("tok"));
        let o = GoogleHealth.page_request(&spec(Resource::BloodOxygen), &w, None);
        assert!(q(&o, "filter")
            .unwrap()
            .starts_with("oxygen_saturation.sample_time.physical_time >= "));

        let iv = json!({"startTime": "2026-11-10T05:00:00Z", "startUtcOffset": "3600s",
                        "endTime": "2026-11-10T11:00:00Z", "endUtcOffset": "3600s"});
        let r = one(
            Resource::Distance,
            json!({"distance": {"interval": iv, "millimeters": "5186580"}}),
        )
        .unwrap()
        .records[0]
            .to_json();
        assert_eq!(
            (r["value"].clone(), r["unit"].clone(), r["type"].clone()),
            (json!(5186.58), json!("m"), json!("distance"))
        );
        assert_eq!(
            (r["start"].clone(), r["end"].clone(), r["timestamp"].clone()),
            (
                json!("2026-11-10T05:00:00+00:00"),
                json!("2026-11-10T11:00:00+00:00"),
                json!("2026-11-10T05:00:00+00:00")
            )
        );
        assert_eq!(r["provider_id"], "2026-11-10T05:00:00+00:00");
        let k = one(
            Resource::CaloriesActive,
            json!({"activeEnergyBurned": {"interval": iv, "kcal": 286.6}}),
        )
        .unwrap()
        .records[0]
            .to_json();
        assert_eq!(
            (k["value"].clone(), k["unit"].clone(), k["type"].clone()),
            (json!(286.6), json!("kcal"), json!("calories_active"))
        );
        let zero = one(
            Resource::Distance,
            json!({"distance": {"interval": iv, "millimeters": "0"}}),
        )
        .unwrap()
        .records[0]
            .to_json();
        assert_eq!(zero["value"], 0.0, "a measured zero stays a zero");
        let backwards = json!({"startTime": "2026-11-10T11:00:00Z", "startUtcOffset": "3600s",
                               "endTime": "2026-11-10T05:00:00Z", "endUtcOffset": "3600s"});
        assert_eq!(
            malformed_field(one(
                Resource::Distance,
                json!({"distance": {"interval": backwards, "millimeters": "1"}})
            )),
            "dataPoints[0].distance.interval.endTime"
        );
        assert_eq!(
            malformed_field(one(
                Resource::Distance,
                json!({"distance": {"interval": iv}})
            )),
            "dataPoints[0].distance.millimeters"
        );
        // A distance page read as active energy is malformed, not silently empty.
        assert_eq!(
            malformed_field(one(
                Resource::CaloriesActive,
                json!({"distance": {"interval": iv, "millimeters": "1"}})
            )),
            "dataPoints[0].activeEnergyBurned"
        );
        // The fixture server filters interval types by their start, as DISCOVERY does.
        let f = &GoogleHealthFixtures;
        let acts = data("activity.json");
        let s = spec(Resource::Distance);
        let path = list_path("distance");
        assert!(f
            .serve_at(
                &path,
                &s,
                &params(&[(
                    "filter",
                    r#"distance.sample_time.physical_time >= "2026-11-01T00:00:00Z""#
                )]),
                &acts
            )
            .unwrap_err()
            .contains("distance.interval.start_time"));
        let v = f
            .serve_at(
                &path,
                &s,
                &params(&[(
                    "filter",
                    r#"distance.interval.start_time >= "2026-11-21T00:00:00Z""#,
                )]),
                &acts,
            )
            .unwrap();
        let points = v["dataPoints"].as_array().unwrap();
        assert!(!points.is_empty() && points.iter().all(|p| p.get("distance").is_some()));
        assert!(points[0]["distance"]["interval"]["civilStartTime"].is_object());
    }

    #[test]
    fn malformed_values_name_their_field() {
        let hr = |bpm: Value, off: &str| json!({"heartRate": {"sampleTime": {"physicalTime": "2026-11-20T06:03:11Z", "utcOffset": off}, "beatsPerMinute": bpm}});
        assert_eq!(
            malformed_field(one(Resource::Heartrate, hr(json!("fast"), "3600s"))),
            "dataPoints[0].heartRate.beatsPerMinute"
        );
        assert_eq!(
            malformed_field(one(Resource::Heartrate, hr(json!("61"), "1h"))),
            "dataPoints[0].heartRate.sampleTime.utcOffset"
        );
        assert_eq!(
            malformed_field(one(Resource::Heartrate, hr(json!("61"), "90000s"))),
            "dataPoints[0].heartRate.sampleTime.utcOffset",
            "beyond ±18 h"
        );
        assert_eq!(
            malformed_field(one(Resource::Heartrate, hr(json!("61"), "1e300s"))),
            "dataPoints[0].heartRate.sampleTime.utcOffset"
        );
        let unnamed = json!({"sleep": {"interval": {"startTime": "2026-11-20T22:00:00Z", "startUtcOffset": "0s",
                                                      "endTime": "2026-11-21T06:00:00Z", "endUtcOffset": "0s"}}});
        assert_eq!(
            malformed_field(one(Resource::Sleep, unnamed)),
            "dataPoints[0].name"
        );
        let backwards = json!({"name": "users/me/dataTypes/sleep/dataPoints/x",
            "sleep": {"interval": {"startTime": "2026-11-21T22:00:00Z", "startUtcOffset": "0s",
                                   "endTime": "2026-11-21T06:00:00Z", "endUtcOffset": "0s"}}});
        assert_eq!(
            malformed_field(one(Resource::Sleep, backwards)),
            "dataPoints[0].sleep.interval.endTime"
        );
        let bad_minutes = json!({"name": "users/me/dataTypes/sleep/dataPoints/x",
            "sleep": {"interval": {"startTime": "2026-11-20T22:00:00Z", "startUtcOffset": "0s",
                                   "endTime": "2026-11-21T06:00:00Z", "endUtcOffset": "0s"},
                      "summary": {"minutesAsleep": "9223372036854775807"}}});
        assert_eq!(
            malformed_field(one(Resource::Sleep, bad_minutes)),
            "dataPoints[0].sleep.summary.minutesAsleep",
            "an overflowing minute count is an error, not a panic"
        );
        let bad_day = json!({"rollupDataPoints": [{"civilStartTime": {"date": {"year": 2026, "month": 2, "day": 30}},
                                                    "steps": {"countSum": "1"}}]});
        assert_eq!(
            malformed_field(GoogleHealth.parse_page(
                Resource::Activity,
                bad_day.to_string().as_bytes(),
                None
            )),
            "rollupDataPoints[0].civilStartTime.date"
        );
        assert_eq!(
            malformed_field(GoogleHealth.parse_page(Resource::Body, b"{}", Some("not json"))),
            "cursor"
        );
        assert_eq!(
            malformed_field(GoogleHealth.parse_page(Resource::Body, b"{}", Some(r#"{"p":9}"#))),
            "cursor"
        );
        assert_eq!(
            malformed_field(GoogleHealth.parse_page(Resource::Sleep, b"{\"dataPoints\": 3}", None)),
            "dataPoints"
        );
        assert_eq!(
            malformed_field(GoogleHealth.parse_page(Resource::Sleep, b"<html>", None)),
            "$"
        );
        assert_eq!(
            malformed_field(GoogleHealth.parse_page(Resource::Recovery, b"{}", None)),
            "resource"
        );
    }

    #[test]
    fn errors_read_by_status_and_a_disabled_api_is_a_refusal() {
        let body = |s: u16| {
            GoogleHealthFixtures
                .fixture(&format!("errors/{s}.json"))
                .unwrap()
                .as_bytes()
        };
        let g = GoogleHealth;
        assert!(matches!(
            g.classify_error(401, None, body(401)),
            ProviderError::Unauthorized(_)
        ));
        assert!(matches!(
            g.classify_error(403, None, body(403)),
            ProviderError::ScopeNotGranted(_)
        ));
        let disabled = br#"{"error": {"code": 403, "status": "PERMISSION_DENIED", "details": [{"reason": "SERVICE_DISABLED"}]}}"#;
        assert!(matches!(
            g.classify_error(403, None, disabled),
            ProviderError::Refused(_)
        ));
        assert!(matches!(
            g.classify_error(429, Some(std::time::Duration::from_secs(3)), body(429)),
            ProviderError::RateLimited { retry_after: Some(d) } if d.as_secs() == 3
        ));
        assert!(matches!(
            g.classify_error(500, None, body(500)),
            ProviderError::Transient(_)
        ));
        assert!(matches!(
            g.classify_error(400, None, body(400)),
            ProviderError::Refused(_)
        ));
        for s in [400, 401, 403, 404, 429, 500] {
            let v: Value = serde_json::from_slice(body(s)).unwrap();
            assert_eq!(
                v["error"]["code"], s,
                "Google's error model carries the status"
            );
        }
    }

    #[test]
    fn the_identity_names_the_user_and_tokens_do_not_rotate() {
        let g = GoogleHealth;
        let req = g.identity_request().unwrap();
        assert_eq!(
            (req.method, req.path.as_str()),
            ("GET", "/v4/users/me/identity")
        );
        let id = GoogleHealthFixtures
            .static_reply("/v4/users/me/identity")
            .unwrap();
        assert_eq!(
            g.identity_user_id(id.as_bytes()).unwrap(),
            "113407815228541906652"
        );
        for bad in [
            r#"{"healthUserId": ""}"#,
            r#"{"healthUserId": "a/b"}"#,
            r#"{"legacyUserId": "C4Q8RX"}"#,
        ] {
            assert!(
                matches!(g.identity_user_id(bad.as_bytes()), Err(ProviderError::Malformed { ref field, .. }) if field == "healthUserId"),
                "{bad}"
            );
        }
        let token: Value =
            serde_json::from_str(GoogleHealthFixtures.fixture("oauth/token.json").unwrap())
                .unwrap();
        let refresh: Value =
            serde_json::from_str(GoogleHealthFixtures.fixture("oauth/refresh.json").unwrap())
                .unwrap();
        assert!(
            token["refresh_token"].is_string(),
            "offline access: a refresh token"
        );
        assert!(
            refresh.get("refresh_token").is_none(),
            "a refresh keeps the old one"
        );
        assert_eq!(
            g.external_user_id(&token),
            None,
            "the token reply names nobody"
        );
        let p = crate::providers::find(ID).unwrap();
        assert!(!p.manifest.refresh_token_rotates);
    }

    #[test]
    fn the_authorize_url_asks_for_offline_access_and_consent() {
        let p = crate::providers::find(ID).unwrap();
        let oauth = crate::oauth::OAuth {
            provider: p,
            endpoints: crate::oauth::Endpoints::resolve(p, None),
            redirect_uri: "https://gateway.example/v1/oauth/callback/google_health".into(),
            http: reqwest::Client::new(),
        };
        let url = url::Url::parse(&oauth.authorize_url("state-1234", None).unwrap()).unwrap();
        assert_eq!(url.host_str(), Some("accounts.google.com"));
        let qs: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(qs["access_type"], "offline");
        assert_eq!(qs["prompt"], "consent");
        assert_eq!(qs["scope"].split(' ').count(), 3);
        assert!(qs["scope"].split(' ').all(|s| s
            .starts_with("https://www.googleapis.com/auth/googlehealth.")
            && s.ends_with(".readonly")));
    }

    #[test]
    fn the_fixture_server_refuses_what_google_refuses() {
        let s = spec(Resource::Sleep);
        let f = &GoogleHealthFixtures;
        let items = data("sleep.json");
        let sleep = list_path("sleep");
        assert!(f
            .serve_at(
                &sleep,
                &s,
                &params(&[(
                    "filter",
                    r#"sleep.interval.start_time >= "2026-11-01T00:00:00Z""#
                )]),
                &items
            )
            .unwrap_err()
            .contains("unsupported filter field"));
        assert!(f
            .serve_at(
                &sleep,
                &s,
                &params(&[(
                    "filter",
                    r#"sleep.interval.end_time > "2026-11-01T00:00:00Z""#
                )]),
                &items
            )
            .is_err());
        assert!(f
            .serve_at(&sleep, &s, &params(&[("pageToken", "nonsense")]), &items)
            .is_err());
        // pageSize above the maximum is truncated, not refused.
        let v = f
            .serve_at(&sleep, &s, &params(&[("pageSize", "500")]), &items)
            .unwrap();
        assert_eq!(v["dataPoints"].as_array().unwrap().len(), SESSION_PAGE);
        // Nothing matches: no `dataPoints`, no token.
        let v = f
            .serve_at(
                &sleep,
                &s,
                &params(&[(
                    "filter",
                    r#"sleep.interval.end_time < "2000-01-01T00:00:00Z""#,
                )]),
                &items,
            )
            .unwrap();
        assert_eq!(v, json!({}));
        let a = spec(Resource::Activity);
        let range = |days: i64| {
            let end = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap() + Duration::days(days);
            json!({"start": civil_date(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()), "end": civil_date(end)})
                .to_string()
        };
        let acts = data("activity.json");
        assert!(f
            .serve_at(
                &rollup_path("total-calories"),
                &a,
                &params(&[("range", &range(15))]),
                &acts
            )
            .unwrap_err()
            .contains("1 to 14 days"));
        assert!(f
            .serve_at(
                &rollup_path("steps"),
                &a,
                &params(&[("range", &range(15))]),
                &acts
            )
            .is_ok());
        assert!(f
            .serve_at(&rollup_path("steps"), &a, &params(&[]), &acts)
            .is_err());
        assert_eq!(f.resource_at(&list_path("body-fat")), Some(Resource::Body));
        assert_eq!(
            f.resource_at(&rollup_path("distance")),
            Some(Resource::Activity)
        );
        assert_eq!(f.resource_at(&list_path("distance")), None);
    }

    /// The runtime's loop against the fixture server: every record of a window once.
    #[test]
    fn adapter_and_fixture_server_page_through_a_whole_window() {
        let w = Window {
            start: at_("2026-08-01T00:00:00Z"),
            end: at_("2026-11-23T00:00:00Z"),
        };
        for (r, file) in [
            (Resource::Sleep, "sleep.json"),
            (Resource::Workouts, "workouts.json"),
            (Resource::Body, "body.json"),
            (Resource::Heartrate, "heartrate.json"),
            (Resource::Hrv, "hrv.json"),
            (Resource::BloodOxygen, "blood_oxygen.json"),
            (Resource::RespiratoryRate, "respiratory_rate.json"),
            (Resource::BodyTemperature, "body_temperature.json"),
            (Resource::Distance, "distance.json"),
            (Resource::CaloriesActive, "calories_active.json"),
        ] {
            // The whole data set is served; the points of the resource's own types count.
            let served = data(file);
            let members: Vec<String> = phases(r).iter().map(|t| member(t)).collect();
            let items: Vec<Value> = served
                .iter()
                .filter(|i| members.iter().any(|m| i.get(m).is_some()))
                .cloned()
                .collect();
            assert!(!items.is_empty(), "{r}");
            let (mut cursor, mut seen, mut pages) = (None::<String>, Vec::new(), 0);
            loop {
                let req = GoogleHealth.page_request(&spec(r), &w, cursor.as_deref());
                let body = GoogleHealthFixtures
                    .serve_at(
                        &req.path,
                        &spec(r),
                        &req.query.into_iter().collect(),
                        &served,
                    )
                    .unwrap();
                let page = GoogleHealth
                    .parse_page(r, body.to_string().as_bytes(), cursor.as_deref())
                    .unwrap();
                assert!(page.records.iter().all(|rec| rec.resource == r), "{r}");
                seen.extend(page.records.into_iter().map(|rec| rec.provider_id));
                pages += 1;
                match page.next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
            let skipped = items
                .iter()
                .filter(|i| {
                    at(i, "sleep.metadata.nap") == Some(&json!(true))
                        || (i.get("heartRateVariability").is_some()
                            && at(i, "heartRateVariability.rootMeanSquareOfSuccessiveDifferencesMilliseconds").is_none())
                        || (i.get("respiratoryRateSleepSummary").is_some()
                            && at(i, "respiratoryRateSleepSummary.fullSleepStats.breathsPerMinute").is_none())
                })
                .count();
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                (seen.len(), unique.len()),
                (items.len() - skipped, items.len() - skipped),
                "{r}"
            );
            let expected_pages = match r {
                Resource::Sleep | Resource::Workouts => items.len().div_ceil(SESSION_PAGE),
                // One page per data type: 10,000 samples hold the whole window.
                _ => phases(r).len(),
            };
            assert_eq!(pages, expected_pages, "{r}");
        }
    }

    #[test]
    fn a_rollup_window_from_the_fixture_server_yields_one_record_a_day() {
        let acts = data("activity.json");
        let w = Window {
            start: at_("2026-11-07T10:00:00Z"),
            end: at_("2026-11-21T10:00:00Z"),
        };
        let a = spec(Resource::Activity);
        let (mut cursor, mut records, mut pages) = (None::<String>, Vec::new(), 0);
        loop {
            let req = GoogleHealth.page_request(&a, &w, cursor.as_deref());
            let mut p = HashMap::new();
            for (k, v) in req.json.unwrap().as_object().unwrap() {
                p.insert(
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                );
            }
            let body = GoogleHealthFixtures
                .serve_at(&req.path, &a, &p, &acts)
                .unwrap();
            let page = GoogleHealth
                .parse_page(
                    Resource::Activity,
                    body.to_string().as_bytes(),
                    cursor.as_deref(),
                )
                .unwrap();
            records.extend(page.records);
            pages += 1;
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(pages, 4, "one rollup per data type");
        let days: Vec<&str> = records.iter().map(|r| r.provider_id.as_str()).collect();
        assert_eq!(days.len(), 14);
        assert_eq!((days[0], days[13]), ("2026-11-08", "2026-11-21"));
        for r in &records {
            let f = &r.fields;
            let (total, active) = (
                f["calories_total"].as_f64().unwrap(),
                f["calories_active"].as_f64().unwrap(),
            );
            assert!(total > active && active > 0.0, "{f:?}");
            assert!(
                f["steps"].as_i64().unwrap() > 0 && f["daily_movement"].as_f64().unwrap() > 0.0
            );
        }
    }

    /// `.changed.json`: summary data has exactly one record edited and one appended,
    /// timeseries only appended samples, all inside every poll's lookback of the
    /// recording day (2026-11-23).
    #[test]
    fn changed_data_edits_one_recent_record_and_appends_one() {
        let when = |i: &Value| -> DateTime<Utc> {
            let t = [
                "exercise.interval.startTime",
                "sleep.interval.endTime",
                "weight.sampleTime.physicalTime",
                "bodyFat.sampleTime.physicalTime",
                "heartRate.sampleTime.physicalTime",
                "heartRateVariability.sampleTime.physicalTime",
                "oxygenSaturation.sampleTime.physicalTime",
                "respiratoryRateSleepSummary.sampleTime.physicalTime",
                "coreBodyTemperature.sampleTime.physicalTime",
            ]
            .iter()
            .find_map(|p| at(i, p))
            .unwrap();
            at_(t.as_str().unwrap())
        };
        let lookback = at_("2026-11-21T00:00:00Z")..at_("2026-11-23T00:00:00Z");
        for (r, edits) in [
            ("workouts", 1),
            ("sleep", 1),
            ("body", 1),
            ("heartrate", 0),
            ("hrv", 0),
            ("blood_oxygen", 0),
            ("respiratory_rate", 0),
            ("body_temperature", 0),
        ] {
            let (before, after) = (
                data(&format!("{r}.json")),
                data(&format!("{r}.changed.json")),
            );
            let edited: Vec<&Value> = before
                .iter()
                .zip(&after)
                .filter(|(a, b)| a != b)
                .map(|(_, b)| b)
                .collect();
            assert_eq!(edited.len(), edits, "{r}");
            let added = &after[before.len()..];
            let appended = match r {
                "heartrate" | "respiratory_rate" => 2,
                // Two nights of four samples each: 11-21's, processed now, and 11-22's.
                "blood_oxygen" => 8,
                _ => 1,
            };
            assert_eq!(added.len(), appended, "{r}");
            for rec in edited.iter().copied().chain(added) {
                assert!(lookback.contains(&when(rec)), "{r}: {}", when(rec));
            }
        }
        // Activity: the 21st gains a late walk, the 22nd is new.
        let (before, after) = (data("activity.json"), data("activity.changed.json"));
        assert_eq!(&after[..before.len()], &before[..]);
        for p in &after[before.len()..] {
            let start = at(p, "steps.interval.startTime")
                .or(at(p, "distance.interval.startTime"))
                .or(at(p, "activeEnergyBurned.interval.startTime"))
                .or(at(p, "basalEnergyBurned.interval.startTime"))
                .unwrap();
            assert!(lookback.contains(&at_(start.as_str().unwrap())));
        }
    }

    mod push {
        use super::super::*;
        use super::data;
        use crate::providers::push::testing::{at, Owned};

        const SECRET: &str = "Bearer wb-subscriber-secret-7f3a";
        const USER: &str = "113407815228541906652";

        fn secrets(key: &str) -> PushSecrets {
            PushSecrets {
                verify_token: SECRET.into(),
                public_keys: vec![GoogleHealthFixtures.fixture(key).unwrap().to_string()],
                ..PushSecrets::default()
            }
        }

        fn notification(body: &[u8], sig: &str, auth: Option<&str>) -> Owned {
            let mut h = vec![
                ("content-type", "application/json"),
                ("x-healthapi-signature", sig),
            ];
            if let Some(a) = auth {
                h.push(("authorization", a));
            }
            Owned::new(&h, &[], body, at("2026-11-21T07:03:00Z"))
        }

        /// `push/exercise_upsert.sig` was made with Python's `cryptography` (ECDSA P-256
        /// SHA-256, DER, behind Tink's `01 || keyId` prefix) by the key whose public half
        /// is `push/public_key.pem` and `push/public_keyset.json`.
        #[test]
        fn the_signature_verifies_with_the_published_key_in_any_accepted_form() {
            let body = include_bytes!("../../fixtures/google_health/push/exercise_upsert.json");
            let sig = include_str!("../../fixtures/google_health/push/exercise_upsert.sig").trim();
            let pem = GoogleHealthFixtures.fixture("push/public_key.pem").unwrap();
            let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            for keys in [
                secrets("push/public_keyset.json"),
                secrets("push/public_key.pem"),
                PushSecrets {
                    public_keys: vec![der_b64],
                    ..secrets("push/public_key.pem")
                },
            ] {
                assert!(GoogleHealth
                    .verify_push(&notification(body, sig, Some(SECRET)).req(), &keys)
                    .is_ok());
            }
            let ok = secrets("push/public_keyset.json");
            let refused = |r: Owned, s: &PushSecrets| {
                matches!(
                    GoogleHealth.verify_push(&r.req(), s),
                    Err(PushError::Unverified(_))
                )
            };
            // Another body, a flipped signature bit, no or another secret, no key.
            let other = String::from_utf8_lossy(body).replace("UPSERT", "DELETE");
            assert!(refused(
                notification(other.as_bytes(), sig, Some(SECRET)),
                &ok
            ));
            let mut raw = base64::engine::general_purpose::STANDARD
                .decode(sig)
                .unwrap();
            let last = raw.len() - 1;
            raw[last] ^= 1;
            let flipped = base64::engine::general_purpose::STANDARD.encode(&raw);
            assert!(refused(notification(body, &flipped, Some(SECRET)), &ok));
            assert!(refused(notification(body, sig, None), &ok));
            assert!(refused(
                notification(body, sig, Some("Bearer another")),
                &ok
            ));
            assert!(refused(notification(body, "%%%", Some(SECRET)), &ok));
            // No key held, or none with the key id the signature names (a keyset whose
            // key id differs: Google rotated): unknown, which the gateway answers by
            // fetching the keyset again.
            let moved = GoogleHealthFixtures
                .fixture("push/public_keyset.json")
                .unwrap()
                .replace("1794372517", "1794372518");
            for keys in [vec![], vec!["not a key".to_string()], vec![moved]] {
                let r = GoogleHealth.verify_push(
                    &notification(body, sig, Some(SECRET)).req(),
                    &PushSecrets {
                        public_keys: keys.clone(),
                        ..ok.clone()
                    },
                );
                assert!(
                    matches!(r, Err(PushError::UnknownKey(_))),
                    "{keys:?}: {r:?}"
                );
            }
            // A key held whose signature does not match is no reason to fetch again.
            assert!(matches!(
                GoogleHealth.verify_push(&notification(body, &flipped, Some(SECRET)).req(), &ok),
                Err(PushError::Unverified(_))
            ));
            // A secret configured without its scheme is a bearer token.
            let bare = PushSecrets {
                verify_token: "wb-subscriber-secret-7f3a".into(),
                ..ok.clone()
            };
            assert!(GoogleHealth
                .verify_push(&notification(body, sig, Some(SECRET)).req(), &bare)
                .is_ok());
        }

        #[test]
        fn the_pem_and_the_keyset_name_the_same_point_and_other_curves_are_skipped() {
            let pem = public_keys(&[GoogleHealthFixtures
                .fixture("push/public_key.pem")
                .unwrap()
                .into()]);
            let tink = public_keys(&[GoogleHealthFixtures
                .fixture("push/public_keyset.json")
                .unwrap()
                .into()]);
            assert_eq!((pem.len(), tink.len()), (1, 1));
            assert_eq!(pem[0].point, tink[0].point);
            assert_eq!(pem[0].point.len(), 65);
            assert_eq!(
                tink[0].prefix,
                Some([1, 0x6a, 0xf3, 0xf3, 0xa5]),
                "01 || 1794372517"
            );
            // curve 3 (NIST_P384) instead of 2.
            let mut proto = base64::engine::general_purpose::STANDARD
                .decode("CAASBggDEAIYAhogebrGUwFcZuPO3OXRuTmWY66IHpqynKEgm5qDhs+uGBUiIBZmRy9MJt8UEGmqA1BJmvcr/emZge0KbBOpFhQU7plw")
                .unwrap();
            assert!(ecdsa_public_point(&proto).is_some());
            proto[7] = 3;
            assert_eq!(ecdsa_public_point(&proto), None);
            assert_eq!(ecdsa_public_point(&[0x1a, 0xff]), None, "truncated");
        }

        #[test]
        fn verification_posts_get_201_only_with_the_secret() {
            let check = |auth: Option<&str>| {
                let mut h = vec![("content-type", "application/json")];
                if let Some(a) = auth {
                    h.push(("authorization", a));
                }
                Owned::new(
                    &h,
                    &[],
                    br#"{"type": "verification"}"#,
                    at("2026-11-21T07:00:00Z"),
                )
            };
            let s = secrets("push/public_keyset.json");
            let ok = GoogleHealth
                .push_handshake(&check(Some(SECRET)).req(), &s)
                .unwrap()
                .unwrap();
            assert_eq!((ok.status, ok.body.len()), (201, 0));
            for bad in [None, Some("Bearer nope"), Some("")] {
                assert!(matches!(
                    GoogleHealth.push_handshake(&check(bad).req(), &s),
                    Some(Err(PushError::Unverified(_)))
                ));
            }
            assert!(
                matches!(
                    GoogleHealth
                        .push_handshake(&check(Some(SECRET)).req(), &PushSecrets::default()),
                    Some(Err(_))
                ),
                "no secret configured: nothing passes"
            );
            let batch = Owned::new(
                &[("authorization", SECRET)],
                &[],
                br#"[{"type": "verification"}]"#,
                at("2026-11-21T07:00:00Z"),
            );
            assert!(matches!(
                GoogleHealth.push_handshake(&batch.req(), &s),
                Some(Ok(_))
            ));
            let event = notification(
                include_bytes!("../../fixtures/google_health/push/exercise_upsert.json"),
                "x",
                Some(SECRET),
            );
            assert!(GoogleHealth.push_handshake(&event.req(), &s).is_none());
            assert_eq!(GoogleHealth.push_ack().status, 204);
        }

        fn parsed(body: &[u8]) -> Vec<Notice> {
            GoogleHealth
                .parse_push(&notification(body, "", None).req())
                .unwrap()
        }

        #[test]
        fn notifications_become_changes_of_the_resource_over_their_intervals() {
            let n = parsed(include_bytes!(
                "../../fixtures/google_health/push/exercise_upsert.json"
            ));
            assert_eq!(n.len(), 1);
            assert_eq!(
                n[0].user, USER,
                "healthUserId, as the identity request gives it"
            );
            assert_eq!(
                n[0].action,
                NoticeAction::Changed {
                    resource: Resource::Workouts,
                    record: None,
                    window: Some(Window {
                        start: at("2026-11-21T06:10:00Z"),
                        end: at("2026-11-21T07:02:16Z")
                    })
                }
            );
            let batch = br#"[
                {"data": {"healthUserId": "u-1", "dataType": "steps", "operation": "UPSERT", "intervals": [
                    {"physicalTimeInterval": {"startTime": "2026-11-21T10:00:00Z", "endTime": "2026-11-21T10:15:00Z"}},
                    {"physicalTimeInterval": {"startTime": "2026-11-21T08:00:00Z", "endTime": "2026-11-21T08:15:00Z"}}]}},
                {"data": {"healthUserId": "u-1", "dataType": "weight", "operation": "DELETE", "intervals": [
                    {"civilIso8601TimeInterval": {"startTime": "2026-11-21T07:00:00", "endTime": "2026-11-21T07:00:00"}}]}},
                {"data": {"healthUserId": "u-1", "dataType": "floors", "operation": "UPSERT", "intervals": []}}
            ]"#;
            let n = parsed(batch);
            assert_eq!(n.len(), 3);
            assert_eq!(
                n[0].action,
                NoticeAction::Changed {
                    resource: Resource::Activity,
                    record: None,
                    window: Some(Window {
                        start: at("2026-11-21T08:00:00Z"),
                        end: at("2026-11-21T10:15:01Z")
                    })
                }
            );
            // A deletion names no point: the resource is re-read over the (civil, so
            // widened) interval.
            assert_eq!(
                n[1].action,
                NoticeAction::Changed {
                    resource: Resource::Body,
                    record: None,
                    window: Some(Window {
                        start: at("2026-11-20T17:00:00Z"),
                        end: at("2026-11-21T19:00:01Z")
                    })
                }
            );
            assert!(
                matches!(n[2].action, NoticeAction::Ignored(_)),
                "floors are not stored"
            );
            assert_ne!(n[0].key, n[1].key);
            assert_eq!(n[0].key, parsed(batch)[0].key);
            for bad in [
                &b"[1]"[..],
                br#"{"type": "other"}"#,
                br#"{"data": {"dataType": "steps", "operation": "UPSERT"}}"#,
                br#"{"data": {"healthUserId": "u", "dataType": "steps", "operation": "UPSERT", "intervals": [{"physicalTimeInterval": {"startTime": "x", "endTime": "y"}}]}}"#,
                br#"{"data": {"healthUserId": "u", "dataType": "steps", "operation": "UPSERT", "intervals": [{"physicalTimeInterval": {"startTime": "2026-11-21T10:00:00Z", "endTime": "2026-11-21T09:00:00Z"}}]}}"#,
            ] {
                assert!(matches!(GoogleHealth.parse_push(&notification(bad, "", None).req()), Err(PushError::Malformed(_))), "{}", String::from_utf8_lossy(bad));
            }
        }

        #[test]
        fn the_fixture_server_verifies_the_subscriber_and_pushes_signed_notifications_that_read_back(
        ) {
            let now = at("2026-11-21T12:00:00Z");
            let s = secrets("push/public_keyset.json");
            let sub = FixtureSubscription {
                callback_url: "https://gw.example/v1/providers/google_health/notifications".into(),
                remote_id: Some("wearbridge".into()),
                verify_token: Some(SECRET.into()),
                ..FixtureSubscription::default()
            };
            for check in GoogleHealthFixtures.verification_pushes(&sub, &s, now) {
                let r = Owned::of(&check.push, now);
                let status = match GoogleHealth.push_handshake(&r.req(), &s).unwrap() {
                    Ok(reply) => reply.status,
                    Err(_) => 401,
                };
                assert!(
                    check.accepted.contains(&status),
                    "{status} not in {:?}",
                    check.accepted
                );
            }
            for (resource, file) in [
                (Resource::Workouts, "workouts.json"),
                (Resource::Sleep, "sleep.json"),
                (Resource::Activity, "activity.json"),
                (Resource::Body, "body.json"),
                (Resource::Heartrate, "heartrate.json"),
                (Resource::Hrv, "hrv.json"),
            ] {
                let items = data(file);
                let item = items.last().unwrap();
                let (start, end) = point_interval(item).unwrap();
                for kind in [
                    FixtureChangeKind::Created,
                    FixtureChangeKind::Updated,
                    FixtureChangeKind::Deleted,
                ] {
                    let change = FixtureChange {
                        user: USER,
                        resource,
                        kind,
                        item: Some(item),
                        record: None,
                        at: now,
                    };
                    let pushes =
                        GoogleHealthFixtures.push_for(&change, std::slice::from_ref(&sub), &s, now);
                    assert_eq!(pushes.len(), 1, "{resource}");
                    let r = Owned::of(&pushes[0].1, now);
                    assert!(GoogleHealth.push_handshake(&r.req(), &s).is_none());
                    GoogleHealth.verify_push(&r.req(), &s).unwrap();
                    let n = GoogleHealth.parse_push(&r.req()).unwrap();
                    assert_eq!(n[0].user, USER);
                    match &n[0].action {
                        NoticeAction::Changed {
                            resource: got,
                            record: None,
                            window: Some(w),
                        } => {
                            assert_eq!(*got, resource);
                            assert!(w.start <= start && end < w.end, "{resource}: {w:?}");
                        }
                        other => panic!("{resource}: {other:?}"),
                    }
                }
            }
            let gone = FixtureChange {
                user: USER,
                resource: Resource::Workouts,
                kind: FixtureChangeKind::Deauthorized,
                item: None,
                record: None,
                at: now,
            };
            assert!(GoogleHealthFixtures
                .push_for(&gone, std::slice::from_ref(&sub), &s, now)
                .is_empty());
        }

        /// After a rotation the fixture signs with the new key, whose id the old keyset
        /// does not hold (so the gateway fetches again), and publishes it beside the old
        /// one as primary; the keyset published then verifies old and new signatures.
        #[test]
        fn a_rotated_key_signs_and_is_published_beside_the_old_one() {
            let now = at("2026-11-21T12:00:00Z");
            let sub = FixtureSubscription {
                callback_url: "https://gw.example/v1/providers/google_health/notifications".into(),
                verify_token: Some(SECRET.into()),
                ..FixtureSubscription::default()
            };
            let items = data("workouts.json");
            let change = FixtureChange {
                user: USER,
                resource: Resource::Workouts,
                kind: FixtureChangeKind::Updated,
                item: items.last(),
                record: None,
                at: now,
            };
            let published = GoogleHealthFixtures.published_keys(&[]).unwrap();
            assert_eq!(
                public_keys(std::slice::from_ref(&published)),
                public_keys(&[GoogleHealthFixtures
                    .fixture("push/public_keyset.json")
                    .unwrap()
                    .to_string()]),
                "before a rotation, the fixture keyset as it is"
            );
            let old = PushSecrets {
                verify_token: SECRET.into(),
                public_keys: vec![published],
                ..PushSecrets::default()
            };
            let rotated = vec![GoogleHealthFixtures.rotated_signing_key().unwrap()];
            let signed_by = |keys: &[String]| {
                let fixture_side = PushSecrets {
                    rotated_keys: keys.to_vec(),
                    ..PushSecrets::default()
                };
                let pushes = GoogleHealthFixtures.push_for(
                    &change,
                    std::slice::from_ref(&sub),
                    &fixture_side,
                    now,
                );
                Owned::of(&pushes[0].1, now)
            };
            let before = signed_by(&[]);
            let after = signed_by(&rotated);
            assert!(matches!(
                GoogleHealth.verify_push(&after.req(), &old),
                Err(PushError::UnknownKey(_))
            ));
            let keyset: Value =
                serde_json::from_str(&GoogleHealthFixtures.published_keys(&rotated).unwrap())
                    .unwrap();
            assert_eq!(keyset["key"].as_array().unwrap().len(), 2);
            let new_id: u64 = rotated[0].split_once(':').unwrap().0.parse().unwrap();
            assert_eq!(keyset["primaryKeyId"], new_id);
            let fresh = PushSecrets {
                public_keys: vec![keyset.to_string()],
                ..old.clone()
            };
            GoogleHealth.verify_push(&after.req(), &fresh).unwrap();
            GoogleHealth.verify_push(&before.req(), &fresh).unwrap();
            GoogleHealth.verify_push(&before.req(), &old).unwrap();
        }
    }
}
