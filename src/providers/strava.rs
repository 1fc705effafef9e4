//! Strava API v3 (<https://developers.strava.com/docs/>), `GET /athlete/activities`:
//! a bare JSON array of SummaryActivity, paged by `page`/`per_page` (≤ 200). A short
//! page is not the end (Strava's "Pagination" note): only an empty page is, so the
//! next cursor is the page number plus one while a page has items. The window is
//! `after`/`before` in epoch seconds against `start_date`. Quirks, with sources, are
//! in `fixtures/strava/README.md`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{Timelike, Utc};
use serde_json::{json, Value};

use super::normalize::*;
use super::{
    Adapter, Impersonation, Page, PageRequest, ProviderError, Record, ResourceSpec, Window,
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
        let next = (!items.is_empty()).then(|| (page + 1).to_string());
        Ok(Page { records, next })
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
    let now = Utc::now();
    let into = (now.minute() % 15) as u64 * 60 + now.second() as u64;
    Duration::from_secs(15 * 60 - into + 1)
}

fn activity(v: &Value) -> Result<Record, ProviderError> {
    let (start, _) = instant(req_str(v, "start_date")?, "start_date")?;
    let start_t = chrono::DateTime::parse_from_rfc3339(&start).expect("formatted above");
    let elapsed = opt_i64(v, "elapsed_time")?.unwrap_or(0);
    let end = format_utc((start_t + chrono::Duration::seconds(elapsed)).with_timezone(&Utc));
    // `utc_offset` is the offset in force that day; `timezone`'s "(GMT+01:00)" label is
    // the zone's standard offset and wrong in summer. `start_date_local` is local wall
    // time marked `Z`, so it gives the offset when `utc_offset` is absent.
    let offset = match opt_f64(v, "utc_offset")? {
        Some(o) => Some(o.round() as i64),
        None => match opt_str(v, "start_date_local")? {
            Some(local) => Some(instant(local, "start_date_local")?.0).map(|l| {
                (chrono::DateTime::parse_from_rfc3339(&l).expect("formatted above") - start_t)
                    .num_seconds()
            }),
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
            ("timezone_offset", int(offset)),
            ("moving_time", number(v, "moving_time")?),
            ("distance", number(v, "distance")?),
            // SummaryActivity has no calories, and `kilojoules` is pedal work, not
            // energy burned: left null rather than guessed.
            ("calories", Value::Null),
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
            _ => return None,
        })
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
