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
}
