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
            let item = match resource {
                Resource::Sleep => sleep(item),
                Resource::Activity => activity(item).map(Item::Record),
                Resource::Workouts => workout(item).map(Item::Record),
                Resource::Heartrate => heartrate(item).map(Item::Record),
                Resource::BloodOxygen => spo2(item).map(|r| r.map_or(Item::Skipped, Item::Record)),
                other => {
                    return Err(ProviderError::malformed(
                        "resource",
                        format!("Oura has no {other}"),
                    ))
                }
            }
            .map_err(|e| match e {
                ProviderError::Malformed { field, message } => {
                    ProviderError::malformed(format!("data[{i}].{field}"), message)
                }
                e => e,
            })?;
            match item {
                Item::Record(r) => page.records.push(r),
                Item::Removed(r) => page.removals.push(r),
                Item::Skipped => {}
            }
        }
        page.next = opt_str(&v, "next_token")?.map(str::to_string);
        Ok(page)
    }
}

/// What one list item is: a record, a period Oura says is not sleep, or a document
/// that holds no reading.
enum Item {
    Record(Record),
    Removed(Removal),
    Skipped,
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
    let Some(avg) = opt_f64(v, "spo2_percentage.average")? else {
        return Ok(None);
    };
    if !(0.0..=100.0).contains(&avg) {
        return Err(ProviderError::malformed(
            "spo2_percentage.average",
            format!("{avg} is not a percentage"),
        ));
    }
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
            "data/sleep.json" => include_str!("../../fixtures/oura/data/sleep.json"),
            "data/sleep.changed.json" => {
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
            .map(|r| (r.provider_id.clone(), r.fields["type"].clone()))
            .collect();
        assert_eq!(types.len(), 4, "three nights and a nap: {types:?}");
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
        assert_eq!(last.records.len(), 2);
        assert_eq!(
            last.removals,
            vec![Removal {
                resource: Resource::Sleep,
                provider_id: "156c40dc-d472-4768-ab8e-f998424d07c0".into()
            }],
            "a rejected rest period is a removal"
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
        let removed: Vec<&str> = p.removals.iter().map(|r| r.provider_id.as_str()).collect();
        assert_eq!(removed, ["b", "c"], "removals need only the id");
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
}
