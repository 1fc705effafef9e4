//! Dexcom API v3 (<https://developer.dexcom.com/docs/dexcomv3/endpoint-overview>). Estimated
//! glucose values (EGVs) become the `glucose` timeseries; user-entered carbs and insulin
//! events (`/events`) the `carbohydrates` and `insulin_injection` timeseries, each resource
//! reading the one route and keeping its own event type. A data route is one `GET` with
//! `startDate`/`endDate` written `YYYY-MM-DDThh:mm:ss` (no offset, no milliseconds) and
//! answers the whole window at once as `{"recordType", "recordVersion", "userId",
//! "records": [...]}`: there is no paging. Each record has two clocks: `systemTime`, UTC by
//! the device, and `displayTime`, what the device showed. Records from the mobile apps carry
//! UTC offsets in both; records from a receiver carry none. Glucose is reported in mg/dL and
//! trend rates in mg/dL/min. `dataRange` tells the first and last record of each data set,
//! which [`Adapter::range_request`] / [`Adapter::narrow_window`] use to skip windows with
//! nothing in them. Quirks, with sources, are in `fixtures/dexcom/README.md`.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde_json::{json, Value};

use super::normalize::*;
use super::{
    Adapter, Impersonation, Page, PageRequest, ProviderError, Record, ResourceSpec, Window,
};
use crate::events::Resource;

pub struct Dexcom;

const ID: &str = "dexcom";
/// The only date format Dexcom takes in `startDate`/`endDate` (operation pages' examples,
/// `2025-02-06T09:12:35`; an offset or milliseconds are reported to be refused).
const REQUEST_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";
const DATA_RANGE_PATH: &str = "/v3/users/self/dataRange";
/// The longest window the fixture server accepts, as the manifest's `window_days`.
const MAX_WINDOW_DAYS: i64 = 30;

fn request_time(t: DateTime<Utc>) -> String {
    t.format(REQUEST_FORMAT).to_string()
}

impl Adapter for Dexcom {
    fn page_request(
        &self,
        resource: &ResourceSpec,
        window: &Window,
        _cursor: Option<&str>,
    ) -> PageRequest {
        // getDevicesV3: "There are no query parameters for the devices endpoint. The
        // response will return all devices associated with a Dexcom account".
        if !resource.windowed {
            return PageRequest::get(resource.path.clone(), vec![]);
        }
        // `systemTime` is UTC, so the UTC window is sent as is, both ends truncated to the
        // second: consecutive windows still tile with no gap and no overlap.
        PageRequest::get(
            resource.path.clone(),
            vec![
                ("startDate".to_string(), request_time(window.start)),
                ("endDate".to_string(), request_time(window.end)),
            ],
        )
    }

    fn parse_page(
        &self,
        resource: Resource,
        body: &[u8],
        _cursor: Option<&str>,
    ) -> Result<Page, ProviderError> {
        if resource == Resource::Devices {
            return devices(body);
        }
        let read: fn(&Value, Resource) -> Result<Item, ProviderError> = match resource {
            Resource::Glucose => |v, _| Ok(egv(v)?.map_or(Item::Skipped, Item::Record)),
            Resource::Carbohydrates | Resource::InsulinInjection => event,
            other => {
                return Err(ProviderError::malformed(
                    "resource",
                    format!("Dexcom has no {other}"),
                ))
            }
        };
        let v = parse_json(body)?;
        let items = req_array(&v, "records")?;
        let mut page = Page {
            records: Vec::with_capacity(items.len()),
            ..Page::default()
        };
        for (i, item) in items.iter().enumerate() {
            let read = read(item, resource).map_err(|e| match e {
                ProviderError::Malformed { field, message } => {
                    ProviderError::malformed(format!("records[{i}].{field}"), message)
                }
                e => e,
            })?;
            match read {
                Item::Record(r) => page.records.push(r),
                Item::Removed(r) => page.removals.push(r),
                Item::Skipped => {}
            }
        }
        // The whole window comes back in one reply.
        Ok(page)
    }

    fn range_request(&self, resource: &ResourceSpec, _window: &Window) -> Option<PageRequest> {
        // No `lastSyncTime`: its doc ("only return date ranges for new data AFTER that date
        // time") does not say whether it compares upload or record times. Devices have no
        // data set in `dataRange` and no window to narrow.
        resource
            .windowed
            .then(|| PageRequest::get(DATA_RANGE_PATH, vec![]))
    }

    fn narrow_window(
        &self,
        resource: Resource,
        window: &Window,
        body: &[u8],
    ) -> Result<Option<Window>, ProviderError> {
        let key = match resource {
            Resource::Glucose => "egvs",
            // Both are read from `/events`, whose range is the `events` data set.
            Resource::Carbohydrates | Resource::InsulinInjection => "events",
            other => {
                return Err(ProviderError::malformed(
                    "resource",
                    format!("Dexcom has no {other}"),
                ))
            }
        };
        let v = parse_json(body)?;
        // The data set, and each of its moments, is null for a user with no records
        // (swaggerV3 DataRange: `egvs?: … | null`; the sample reply shows null times).
        let bound = |which: &str| {
            let path = format!("{key}.{which}.systemTime");
            opt_str(&v, &path)?
                .map(|raw| utc_instant(raw, &path))
                .transpose()
        };
        let (Some(first), Some(last)) = (bound("start")?, bound("end")?) else {
            return Ok(None);
        };
        // `end` is the latest record's time: the window must include it.
        let after_last = last
            .checked_add_signed(Duration::seconds(1))
            .ok_or_else(|| {
                ProviderError::malformed(format!("{key}.end.systemTime"), "out of range")
            })?;
        let (start, end) = (window.start.max(first), window.end.min(after_last));
        Ok((start < end).then_some(Window { start, end }))
    }
}

/// A Dexcom time as a UTC instant: RFC 3339 with an offset (app records), or without one
/// (receiver records), which for `systemTime` is UTC ("the UTC time according to the device").
fn utc_instant(raw: &str, field: &str) -> Result<DateTime<Utc>, ProviderError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| t.and_utc())
        .map_err(|e| {
            ProviderError::malformed(field, format!("`{raw}` is not an ISO 8601 date-time: {e}"))
        })
}

/// The user's UTC offset in seconds, from `displayTime` when it carries one (app records).
/// A receiver's `displayTime` has none and its clock is set by hand ("may be
/// user-configurable, and can therefore change its offset relative to systemTime"), so the
/// difference of the two clocks is not a time zone: the offset is unknown (null).
fn display_offset(v: &Value) -> Result<Option<i32>, ProviderError> {
    let raw = req_str(v, "displayTime")?;
    match DateTime::parse_from_rfc3339(raw) {
        Ok(t) => Ok(Some(t.offset().local_minus_utc())),
        Err(_) => {
            // Must still be a date-time, just without an offset.
            utc_instant(raw, "displayTime")?;
            Ok(None)
        }
    }
}

/// swaggerV3: "all glucose values are reported in units of mg/dL and trend rates in units
/// of mg/dL/min", yet `unit` is an enum with `unknown` and `mmol/L`. A named unit is kept;
/// `unknown` (or absent) is the documented default.
fn unit(v: &Value, field: &str, default: &str) -> Result<String, ProviderError> {
    Ok(match opt_str(v, field)? {
        Some(u @ ("mg/dL" | "mmol/L" | "mg/dL/min" | "mmol/L/min")) => u.to_string(),
        _ => default.to_string(),
    })
}

/// One EGV → one glucose sample, keyed by Dexcom's `recordId` ("A unique id (UUID) that
/// identifies EGV record for the given client"). A record without a `value` (signal loss,
/// warm-up) is no reading, not a zero: it makes no sample.
fn egv(v: &Value) -> Result<Option<Record>, ProviderError> {
    let value = number(v, "value")?;
    if value.is_null() {
        return Ok(None);
    }
    let timestamp = utc_instant(req_str(v, "systemTime")?, "systemTime")?;
    let offset = display_offset(v)?;
    // `doubleUp`, `fortyFiveDown`, `notComputable` … as snake case; null stays null.
    let trend = opt_str(v, "trend")?.map(slug);
    Ok(Some(Record {
        resource: Resource::Glucose,
        provider_id: req_id(v, "recordId")?,
        fields: fields(vec![
            ("source", source(ID, "cgm")),
            ("timestamp", json!(format_utc(timestamp))),
            ("timezone_offset", int(offset.map(i64::from))),
            ("type", json!("glucose")),
            ("unit", json!(unit(v, "unit", "mg/dL")?)),
            // 39 and 401 are the documented stand-ins for "below 40" and "above 400",
            // flagged by `status` low / high; kept as Dexcom computes with them.
            ("value", value),
            ("status", text(opt_str(v, "status")?)),
            ("trend", text(trend.as_deref())),
            ("trend_rate", number(v, "trendRate")?),
            ("rate_unit", json!(unit(v, "rateUnit", "mg/dL/min")?)),
        ]),
    }))
}

/// getDevicesV3: `{recordType: "device", recordVersion, userId, records: [Device]}`, every
/// receiver and app of the account ("The size of the array will be zero if there are no
/// devices"). Each `Device` is one record of `devices`, Junction's `ClientFacingDevice`.
/// Dexcom gives a device no id: its key is what tells devices apart, `displayDevice`,
/// `displayApp`, `transmitterGeneration` and `transmitterId` (the app or receiver and the
/// transmitter it reads, hashed per client). Two entries with one key are one device: the
/// latest `lastUploadDate` wins.
fn devices(body: &[u8]) -> Result<Page, ProviderError> {
    let v = parse_json(body)?;
    let items = req_array(&v, "records")?;
    let mut latest: Vec<(DateTime<Utc>, Record)> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let (uploaded, rec) = device(item).map_err(|e| match e {
            ProviderError::Malformed { field, message } => {
                ProviderError::malformed(format!("records[{i}].{field}"), message)
            }
            e => e,
        })?;
        match latest
            .iter_mut()
            .find(|(_, r)| r.provider_id == rec.provider_id)
        {
            Some(seen) if seen.0 < uploaded => *seen = (uploaded, rec),
            Some(_) => {}
            None => latest.push((uploaded, rec)),
        }
    }
    Ok(Page {
        records: latest.into_iter().map(|(_, r)| r).collect(),
        ..Page::default()
    })
}

/// One `Device` (getDevicesV3: `lastUploadDate` required date-time, "Server timestamp, in
/// UTC, of last upload event for the device"; `transmitterId` string or null;
/// `transmitterGeneration` required, `unknown`, `g4`, `g5`, `g6`, `g6+`, `dexcomPro`, `g7`;
/// `displayDevice` required (`iOS`, `android`, `receiver`); `displayApp` string or null;
/// `alertSchedules` required) as a device record, with its last upload. Every Dexcom
/// device is a continuous glucose monitor's display: Junction's source type `automatic`.
/// `lastUploadDate` moves with every upload, so it is not part of the record (a device
/// whose only news is an upload has not changed); nor are the `systemTime` and
/// `displayTime` of its alert settings, for the same reason. A changed alert setting, app
/// or transmitter is a change.
fn device(v: &Value) -> Result<(DateTime<Utc>, Record), ProviderError> {
    let uploaded = utc_instant(req_str(v, "lastUploadDate")?, "lastUploadDate")?;
    let display = req_str(v, "displayDevice")?;
    let generation = req_str(v, "transmitterGeneration")?;
    let app = opt_str(v, "displayApp")?;
    let transmitter = opt_str(v, "transmitterId")?;
    let mut schedules = req_array(v, "alertSchedules")?.clone();
    for (i, schedule) in schedules.iter_mut().enumerate() {
        let settings = match schedule.get_mut("alertSettings") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(ProviderError::malformed(
                    format!("alertSchedules[{i}].alertSettings"),
                    "expected an array",
                ))
            }
        };
        for setting in settings.iter_mut() {
            if let Value::Object(m) = setting {
                m.remove("systemTime");
                m.remove("displayTime");
            }
        }
    }
    let key = [
        display,
        app.unwrap_or("-"),
        generation,
        transmitter.unwrap_or("-"),
    ]
    .join("/");
    Ok((
        uploaded,
        Record {
            resource: Resource::Devices,
            provider_id: key,
            fields: fields(vec![
                ("source", source(ID, "cgm")),
                ("source_type", json!("automatic")),
                ("device_manufacturer", json!("Dexcom")),
                (
                    "device_model",
                    text(Some(generation).filter(|g| *g != "unknown")),
                ),
                ("device_version", Value::Null),
                ("device_id", text(transmitter)),
                ("app_id", text(app)),
                ("display_device", json!(display)),
                ("alert_schedules", Value::Array(schedules)),
            ]),
        },
    ))
}

/// What one record of a reply is: a sample, an event the user deleted, or neither.
enum Item {
    Record(Record),
    Removed(super::Removal),
    Skipped,
}

/// One user-entered event (getEventsV3 `Event`: `recordId`, `systemTime`, `displayTime`,
/// `eventStatus`, `eventType`, `eventSubType`, `value`, `unit`, …) as a sample of
/// `resource`: `carbs` → `carbohydrates` in grams, `insulin` → `insulin_injection` in
/// units, typed `rapid_acting` (`fastActing`) or `long_acting` (`longActing`). Events of
/// other types belong to neither and are skipped. An event the user deleted
/// (`eventStatus` `deleted`; "The eventId will remain the same", getEventsV2) is a
/// removal; one without a value is no sample. An event is an instant: Junction's sample
/// is an interval, so it starts and ends at `systemTime`.
fn event(v: &Value, resource: Resource) -> Result<Item, ProviderError> {
    let wanted = match resource {
        Resource::Carbohydrates => "carbs",
        _ => "insulin",
    };
    if req_str(v, "eventType")? != wanted {
        return Ok(Item::Skipped);
    }
    let id = req_id(v, "recordId")?;
    match req_str(v, "eventStatus")? {
        "deleted" => {
            return Ok(Item::Removed(super::Removal {
                resource,
                provider_id: id,
            }))
        }
        "created" | "updated" => {}
        other => {
            return Err(ProviderError::malformed(
                "eventStatus",
                format!("`{other}` is not created, updated or deleted"),
            ))
        }
    }
    // The operation page types `value` as a string; its own example sends a number.
    let value = match v.get("value") {
        None | Some(Value::Null) => return Ok(Item::Skipped),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Item::Skipped),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
        Some(_) => None,
    }
    .ok_or_else(|| ProviderError::malformed("value", "not a number"))?;
    if value < 0.0 {
        return Err(ProviderError::malformed(
            "value",
            format!("{value} is negative"),
        ));
    }
    // Units for events: unknown, grams, mg/dL, minutes, units. Carbs are counted in grams
    // and insulin in units; another named unit is not that quantity.
    let (expected, unit) = match resource {
        Resource::Carbohydrates => ("grams", "g"),
        _ => ("units", "unit"),
    };
    match opt_str(v, "unit")? {
        None | Some("unknown") => {}
        Some(u) if u == expected => {}
        Some(u) => {
            return Err(ProviderError::malformed(
                "unit",
                format!("`{u}` is not {expected}"),
            ))
        }
    }
    let kind = match resource {
        Resource::Carbohydrates => Value::Null,
        _ => json!(match opt_str(v, "eventSubType")? {
            Some("fastActing") => "rapid_acting",
            Some("longActing") => "long_acting",
            // Junction's insulin types are "non-exhaustive": an insulin of no stated
            // action is `unknown` rather than guessed.
            _ => "unknown",
        }),
    };
    let at = json!(format_utc(utc_instant(
        req_str(v, "systemTime")?,
        "systemTime"
    )?));
    let offset = display_offset(v)?;
    Ok(Item::Record(Record {
        resource,
        provider_id: id,
        fields: fields(vec![
            ("source", source(ID, "cgm")),
            ("timestamp", at.clone()),
            ("start", at.clone()),
            ("end", at),
            ("timezone_offset", int(offset.map(i64::from))),
            (
                "type",
                if kind.is_null() {
                    json!(resource.as_str())
                } else {
                    kind
                },
            ),
            ("unit", json!(unit)),
            ("value", num(Some(value))),
        ]),
    }))
}

/// The fixture server's Dexcom: `startDate`/`endDate` both required, in the one accepted
/// format, at most 30 days apart; records whose `systemTime` falls in
/// `[startDate, endDate)` (the alerts route documents the bounds as inclusive / exclusive),
/// all in one reply.
pub struct DexcomFixtures;

/// The user id the fixtures' replies carry (a made-up hash, per-client like Dexcom's).
const FIXTURE_USER: &str = "d5b6c1a7e0f34d8c9b2a4e6f8a1c3e5b7d9f0a2c4e6b8d0f1a3c5e7b9d1f3a5c";

impl Impersonation for DexcomFixtures {
    /// `dataRange` as Dexcom answers it, from the readings served: the first and last
    /// record's times (both null-free), or `egvs: null` when there are none.
    fn derived_reply(&self, path: &str, items: &dyn Fn(Resource) -> Vec<Value>) -> Option<Value> {
        if path != DATA_RANGE_PATH {
            return None;
        }
        let moment = |i: Value| {
            let raw = i["systemTime"].as_str()?;
            let t = utc_instant(raw, "systemTime").ok()?;
            Some((
                t,
                json!({"systemTime": raw, "displayTime": i["displayTime"]}),
            ))
        };
        // A data set's first and last moments, or null without records.
        let range = |times: &mut Vec<(DateTime<Utc>, Value)>| {
            times.sort_by_key(|(t, _)| *t);
            match (times.first(), times.last()) {
                (Some((_, first)), Some((_, last))) => json!({"start": first, "end": last}),
                _ => Value::Null,
            }
        };
        let mut times: Vec<(DateTime<Utc>, Value)> = items(Resource::Glucose)
            .into_iter()
            .filter_map(moment)
            .collect();
        let egvs = range(&mut times);
        // Carbohydrates and insulin are both the `/events` data set.
        let mut events: Vec<(DateTime<Utc>, Value)> = items(Resource::Carbohydrates)
            .into_iter()
            .filter_map(moment)
            .collect();
        let mut reply: Value = serde_json::from_str(self.fixture("range/data_range.json")?).ok()?;
        reply["egvs"] = egvs;
        reply["events"] = range(&mut events);
        Some(reply)
    }

    fn fixture(&self, path: &str) -> Option<&'static str> {
        Some(match path {
            "oauth/token.json" => include_str!("../../fixtures/dexcom/oauth/token.json"),
            "oauth/refresh.json" => include_str!("../../fixtures/dexcom/oauth/refresh.json"),
            "oauth/invalid_grant.json" => {
                include_str!("../../fixtures/dexcom/oauth/invalid_grant.json")
            }
            "errors/400.json" => include_str!("../../fixtures/dexcom/errors/400.json"),
            "errors/401.json" => include_str!("../../fixtures/dexcom/errors/401.json"),
            "errors/403.json" => include_str!("../../fixtures/dexcom/errors/403.json"),
            "errors/404.json" => include_str!("../../fixtures/dexcom/errors/404.json"),
            "errors/429.json" => include_str!("../../fixtures/dexcom/errors/429.json"),
            "errors/500.json" => include_str!("../../fixtures/dexcom/errors/500.json"),
            "data/glucose.json" => include_str!("../../fixtures/dexcom/data/glucose.json"),
            "data/glucose.changed.json" => {
                include_str!("../../fixtures/dexcom/data/glucose.changed.json")
            }
            // Carbohydrates and insulin are both read from `/events`: one data set.
            "data/carbohydrates.json" | "data/insulin_injection.json" => {
                include_str!("../../fixtures/dexcom/data/events.json")
            }
            "data/carbohydrates.changed.json" | "data/insulin_injection.changed.json" => {
                include_str!("../../fixtures/dexcom/data/events.changed.json")
            }
            "range/data_range.json" => {
                include_str!("../../fixtures/dexcom/range/data_range.json")
            }
            "data/devices.json" => include_str!("../../fixtures/dexcom/data/devices.json"),
            "data/devices.changed.json" => {
                include_str!("../../fixtures/dexcom/data/devices.changed.json")
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
        // getDevicesV3 takes no query parameters and answers every device.
        if resource.name == Resource::Devices {
            return Ok(json!({
                "recordType": "device",
                "recordVersion": "3.0",
                "userId": FIXTURE_USER,
                "records": items,
            }));
        }
        let bound = |k: &str| {
            let raw = params.get(k).ok_or(format!("{k} is required"))?;
            NaiveDateTime::parse_from_str(raw, REQUEST_FORMAT)
                .map(|t| t.and_utc())
                .map_err(|e| format!("{k} `{raw}` must be YYYY-MM-DDThh:mm:ss: {e}"))
        };
        let (start, end) = (bound("startDate")?, bound("endDate")?);
        if end < start || end - start > Duration::days(MAX_WINDOW_DAYS) {
            return Err(format!(
                "the window must run forwards and span at most {MAX_WINDOW_DAYS} days"
            ));
        }
        let records: Vec<&Value> = items
            .iter()
            .filter(|i| {
                i["systemTime"]
                    .as_str()
                    .and_then(|s| utc_instant(s, "systemTime").ok())
                    .is_some_and(|t| (start..end).contains(&t))
            })
            .collect();
        let record_type = match resource.name {
            Resource::Glucose => "egv",
            Resource::Carbohydrates | Resource::InsulinInjection => "event",
            other => return Err(format!("Dexcom has no {other}")),
        };
        Ok(json!({
            "recordType": record_type,
            "recordVersion": "3.0",
            "userId": FIXTURE_USER,
            "records": records,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn spec() -> ResourceSpec {
        crate::providers::find(ID)
            .unwrap()
            .resource(Resource::Glucose)
            .unwrap()
            .clone()
    }

    fn data(file: &str) -> Vec<Value> {
        serde_json::from_str(DexcomFixtures.fixture(&format!("data/{file}")).unwrap()).unwrap()
    }

    fn one(v: Value) -> Result<Page, ProviderError> {
        Dexcom.parse_page(
            Resource::Glucose,
            json!({"recordType": "egv", "recordVersion": "3.0", "userId": "u", "records": [v]})
                .to_string()
                .as_bytes(),
            None,
        )
    }

    fn app_record() -> Value {
        json!({"recordId": "r1", "systemTime": "2026-11-22T06:05:00+00:00", "displayTime": "2026-11-21T22:05:00-08:00",
               "value": 104, "status": null, "trend": "fortyFiveUp", "trendRate": 1.2, "unit": "mg/dL",
               "rateUnit": "mg/dL/min", "displayDevice": "iOS"})
    }

    #[test]
    fn requests_carry_the_window_without_offset_or_milliseconds() {
        let w = Window {
            start: at("2026-11-01T08:30:00.250Z"),
            end: at("2026-11-02T08:30:00.400Z"),
        };
        let req = Dexcom.page_request(&spec(), &w, None);
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/v3/users/self/egvs");
        assert_eq!(
            req.query,
            vec![
                ("startDate".to_string(), "2026-11-01T08:30:00".to_string()),
                ("endDate".to_string(), "2026-11-02T08:30:00".to_string()),
            ]
        );
        let next = Window {
            start: w.end,
            end: at("2026-11-03T08:30:00.400Z"),
        };
        assert_eq!(
            Dexcom.page_request(&spec(), &next, None).query[0].1,
            req.query[1].1,
            "the next window starts where this one ends"
        );
    }

    #[test]
    fn an_app_record_keeps_its_offset_and_a_receiver_record_has_none() {
        let r = one(app_record()).unwrap().records[0].to_json();
        assert_eq!(r["provider_id"], "r1");
        assert_eq!(r["timestamp"], "2026-11-22T06:05:00+00:00");
        assert_eq!(r["timezone_offset"], -8 * 3600);
        assert_eq!(r["unit"], "mg/dL");
        assert_eq!(r["value"], 104);
        assert_eq!(r["trend"], "forty_five_up");
        assert_eq!(r["trend_rate"], 1.2);
        assert_eq!(r["rate_unit"], "mg/dL/min");
        assert_eq!(r["type"], "glucose");

        let mut receiver = app_record();
        receiver["systemTime"] = json!("2026-11-21T23:30:00");
        receiver["displayTime"] = json!("2026-11-21T15:29:23");
        receiver["displayDevice"] = json!("receiver");
        let r = one(receiver).unwrap().records[0].to_json();
        assert_eq!(
            r["timestamp"], "2026-11-21T23:30:00+00:00",
            "a naive systemTime is UTC"
        );
        assert!(
            r["timezone_offset"].is_null(),
            "a hand-set display clock is no time zone"
        );
    }

    #[test]
    fn a_reading_without_a_value_is_no_sample_and_out_of_range_values_keep_their_status() {
        let mut gap = app_record();
        gap["value"] = Value::Null;
        gap["trend"] = Value::Null;
        gap["trendRate"] = Value::Null;
        assert!(one(gap).unwrap().records.is_empty(), "null is not zero");
        let mut absent = app_record();
        absent.as_object_mut().unwrap().remove("value");
        assert!(one(absent).unwrap().records.is_empty());

        let mut low = app_record();
        low["value"] = json!(39);
        low["status"] = json!("low");
        low["trend"] = json!("notComputable");
        low["trendRate"] = Value::Null;
        let r = one(low).unwrap().records[0].to_json();
        assert_eq!(
            (r["value"].clone(), r["status"].clone()),
            (json!(39), json!("low"))
        );
        assert_eq!(r["trend"], "not_computable");
        assert!(r["trend_rate"].is_null(), "no rate is not a zero rate");
    }

    #[test]
    fn an_unknown_unit_reads_as_the_documented_mg_dl() {
        let mut r = app_record();
        r["unit"] = json!("unknown");
        r["rateUnit"] = json!("unknown");
        let out = one(r).unwrap().records[0].to_json();
        assert_eq!(
            (out["unit"].clone(), out["rate_unit"].clone()),
            (json!("mg/dL"), json!("mg/dL/min"))
        );
        let mut mmol = app_record();
        mmol["unit"] = json!("mmol/L");
        assert_eq!(one(mmol).unwrap().records[0].fields["unit"], "mmol/L");
    }

    #[test]
    fn the_captured_page_skips_the_signal_loss_and_spans_receiver_and_app() {
        let body = include_str!("../../fixtures/dexcom/pages/glucose/page_1.json");
        let raw: Value = serde_json::from_str(body).unwrap();
        let page = Dexcom
            .parse_page(Resource::Glucose, body.as_bytes(), None)
            .unwrap();
        let nulls = raw["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["value"].is_null())
            .count();
        assert_eq!(nulls, 2);
        assert_eq!(
            page.records.len(),
            raw["records"].as_array().unwrap().len() - nulls
        );
        assert!(page.next.is_none(), "no paging");
        let offsets: Vec<&Value> = page
            .records
            .iter()
            .map(|r| &r.fields["timezone_offset"])
            .collect();
        assert!(offsets.contains(&&Value::Null) && offsets.contains(&&json!(-28800)));
    }

    #[test]
    fn a_malformed_field_names_its_path() {
        let field = |v: Value| match one(v) {
            Err(ProviderError::Malformed { field, .. }) => field,
            other => panic!("expected a malformed error, got {other:?}"),
        };
        let mut r = app_record();
        r["systemTime"] = json!("yesterday");
        assert_eq!(field(r), "records[0].systemTime");
        let mut r = app_record();
        r["displayTime"] = json!(17);
        assert_eq!(field(r), "records[0].displayTime");
        let mut r = app_record();
        r["value"] = json!("high");
        assert_eq!(field(r), "records[0].value");
        let mut r = app_record();
        r.as_object_mut().unwrap().remove("recordId");
        assert_eq!(field(r), "records[0].recordId");
        let mut r = app_record();
        r["trend"] = json!(3);
        assert_eq!(field(r), "records[0].trend");
        assert!(matches!(
            Dexcom.parse_page(Resource::Glucose, b"{\"records\": {}}", None),
            Err(ProviderError::Malformed { ref field, .. }) if field == "records"
        ));
        assert!(matches!(
            Dexcom.parse_page(Resource::Glucose, b"<html>", None),
            Err(ProviderError::Malformed { .. })
        ));
        assert!(matches!(
            Dexcom.parse_page(Resource::Sleep, b"{\"records\": []}", None),
            Err(ProviderError::Malformed { .. })
        ));
    }

    #[test]
    fn data_range_narrows_a_window_to_the_records_and_skips_an_empty_one() {
        let body = DexcomFixtures
            .fixture("range/data_range.json")
            .unwrap()
            .as_bytes();
        let req = Dexcom
            .range_request(
                &spec(),
                &Window {
                    start: at("2026-11-01T00:00:00Z"),
                    end: at("2026-11-23T00:00:00Z"),
                },
            )
            .unwrap();
        assert_eq!(
            (req.method, req.path.as_str()),
            ("GET", "/v3/users/self/dataRange")
        );
        assert!(req.query.is_empty());
        let narrow = |s: &str, e: &str| {
            Dexcom
                .narrow_window(
                    Resource::Glucose,
                    &Window {
                        start: at(s),
                        end: at(e),
                    },
                    body,
                )
                .unwrap()
        };
        // A backfill window holding all the data shrinks to it (naive start, offset end).
        assert_eq!(
            narrow("2026-10-24T00:00:00Z", "2026-11-23T00:00:00Z"),
            Some(Window {
                start: at("2026-11-21T20:00:00Z"),
                end: at("2026-11-22T21:55:01Z")
            })
        );
        // An older window, and a poll after the last record, fetch nothing.
        assert_eq!(narrow("2026-09-24T00:00:00Z", "2026-10-24T00:00:00Z"), None);
        assert_eq!(narrow("2026-11-22T21:55:01Z", "2026-11-23T00:00:00Z"), None);
        // The last record itself is still fetched.
        assert!(narrow("2026-11-22T21:55:00Z", "2026-11-23T00:00:00Z").is_some());
        // A user with no EGVs at all.
        let none = json!({"recordType": "dataRange", "recordVersion": "3.0", "userId": "u",
                          "egvs": {"start": {"systemTime": null, "displayTime": null},
                                   "end": {"systemTime": null, "displayTime": null}}});
        let w = Window {
            start: at("2026-11-01T00:00:00Z"),
            end: at("2026-11-02T00:00:00Z"),
        };
        assert_eq!(
            Dexcom
                .narrow_window(Resource::Glucose, &w, none.to_string().as_bytes())
                .unwrap(),
            None
        );
        assert_eq!(
            Dexcom
                .narrow_window(Resource::Glucose, &w, b"{\"egvs\": null}")
                .unwrap(),
            None
        );
        assert!(matches!(
            Dexcom.narrow_window(Resource::Glucose, &w, b"{\"egvs\": {\"start\": {\"systemTime\": \"soon\"}, \"end\": {\"systemTime\": \"2026-11-01T00:00:00\"}}}"),
            Err(ProviderError::Malformed { ref field, .. }) if field == "egvs.start.systemTime"
        ));
    }

    #[test]
    fn other_providers_fetch_their_windows_unchanged() {
        let oura = crate::providers::find("oura").unwrap();
        let spec = &oura.manifest.resources[0];
        let w = Window {
            start: at("2026-11-01T00:00:00Z"),
            end: at("2026-11-02T00:00:00Z"),
        };
        assert!(oura.adapter.range_request(spec, &w).is_none());
        assert_eq!(
            oura.adapter.narrow_window(spec.name, &w, b"").unwrap(),
            Some(w)
        );
    }

    #[test]
    fn token_fixtures_parse_as_oauth_replies() {
        for f in ["oauth/token.json", "oauth/refresh.json"] {
            let text = DexcomFixtures.fixture(f).unwrap();
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(v["expires_in"], 7200, "{f}");
            assert_eq!(v["token_type"], "Bearer", "{f}");
            assert!(
                v["access_token"].is_string() && v["refresh_token"].is_string(),
                "{f}"
            );
            assert_eq!(
                Dexcom.token_reply(200, text.as_bytes()).unwrap(),
                text.as_bytes()
            );
            assert_eq!(Dexcom.external_user_id(&v), None);
        }
        let refused: Value =
            serde_json::from_str(DexcomFixtures.fixture("oauth/invalid_grant.json").unwrap())
                .unwrap();
        assert_eq!(refused["error"], "invalid_grant");
    }

    #[test]
    fn errors_read_by_status() {
        let body = |s: u16| {
            DexcomFixtures
                .fixture(&format!("errors/{s}.json"))
                .unwrap()
                .as_bytes()
        };
        assert!(matches!(
            Dexcom.classify_error(401, None, body(401)),
            ProviderError::Unauthorized(_)
        ));
        assert!(matches!(
            Dexcom.classify_error(403, None, body(403)),
            ProviderError::ScopeNotGranted(_)
        ));
        assert!(matches!(
            Dexcom.classify_error(429, None, body(429)),
            ProviderError::RateLimited { retry_after: None }
        ));
        assert!(matches!(
            Dexcom.classify_error(500, None, body(500)),
            ProviderError::Transient(_)
        ));
        assert!(matches!(
            Dexcom.classify_error(400, None, body(400)),
            ProviderError::Refused(_)
        ));
        assert_eq!(DexcomFixtures.error_reply(404).0, 404);
    }

    #[test]
    fn the_fixture_server_takes_only_dexcom_dates_and_filters_by_system_time() {
        let items = data("glucose.json");
        let p = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        let s = spec();
        for bad in [
            p(&[("startDate", "2026-11-21T00:00:00")]),
            p(&[
                ("startDate", "2026-11-21T00:00:00Z"),
                ("endDate", "2026-11-22T00:00:00Z"),
            ]),
            p(&[
                ("startDate", "2026-11-21T00:00:00.000"),
                ("endDate", "2026-11-22T00:00:00.000"),
            ]),
            p(&[
                ("startDate", "2026-10-01T00:00:00"),
                ("endDate", "2026-11-22T00:00:00"),
            ]),
            p(&[
                ("startDate", "2026-11-22T00:00:00"),
                ("endDate", "2026-11-21T00:00:00"),
            ]),
        ] {
            assert!(DexcomFixtures.serve(&s, &bad, &items).is_err(), "{bad:?}");
        }
        // Receiver (naive) and app (offset) records alike, start inclusive, end exclusive.
        let v = DexcomFixtures
            .serve(
                &s,
                &p(&[
                    ("startDate", "2026-11-21T23:30:00"),
                    ("endDate", "2026-11-22T00:30:00"),
                ]),
                &items,
            )
            .unwrap();
        assert_eq!(v["recordType"], "egv");
        let got = v["records"].as_array().unwrap();
        assert_eq!(got.len(), 12);
        assert_eq!(got[0]["systemTime"], "2026-11-21T23:30:00");
        assert_eq!(got[11]["systemTime"], "2026-11-22T00:25:00+00:00");
        // The captured page is exactly this reply.
        let captured: Value = serde_json::from_str(include_str!(
            "../../fixtures/dexcom/pages/glucose/page_1.json"
        ))
        .unwrap();
        assert_eq!(captured["records"], v["records"]);
    }

    /// The runtime's loop against the fixture server: every reading of the data set once.
    #[test]
    fn adapter_and_fixture_server_cover_the_whole_data_set_in_30_day_windows() {
        let items = data("glucose.json");
        let now = at("2026-11-23T00:00:00Z");
        let mut seen = Vec::new();
        for w in crate::providers::plan_windows(now - chrono::Duration::days(365), now, 30) {
            let req = Dexcom.page_request(&spec(), &w, None);
            let params: HashMap<String, String> = req.query.into_iter().collect();
            let body = DexcomFixtures.serve(&spec(), &params, &items).unwrap();
            let page = Dexcom
                .parse_page(Resource::Glucose, body.to_string().as_bytes(), None)
                .unwrap();
            seen.extend(page.records.into_iter().map(|r| r.provider_id));
        }
        let valued = items.iter().filter(|i| !i["value"].is_null()).count();
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((seen.len(), unique.len()), (valued, valued));
    }

    /// `.changed.json` = the same readings plus an hour of new ones, inside every poll's
    /// two-day lookback from the recording day (2026-11-23), none of the old ones edited.
    #[test]
    fn changed_data_only_appends_recent_readings() {
        let (before, after) = (data("glucose.json"), data("glucose.changed.json"));
        assert_eq!(&after[..before.len()], &before[..]);
        assert_eq!(after.len(), before.len() + 12);
        for r in &after[before.len()..] {
            let t = utc_instant(r["systemTime"].as_str().unwrap(), "systemTime").unwrap();
            assert!(
                (at("2026-11-22T00:00:00Z")..at("2026-11-23T00:00:00Z")).contains(&t),
                "{t}"
            );
            assert!(!r["value"].is_null());
        }
    }

    fn event_page(records: Value) -> Vec<u8> {
        json!({"recordType": "event", "recordVersion": "3.0", "userId": "u", "records": records})
            .to_string()
            .into_bytes()
    }

    fn app_event(kind: &str, sub: Value, value: Value, unit: Value, status: &str) -> Value {
        json!({"systemTime": "2026-11-22T02:05:00+00:00", "displayTime": "2026-11-21T18:05:00-08:00",
               "recordId": format!("{kind}-{status}"), "eventStatus": status, "eventType": kind,
               "eventSubType": sub, "value": value, "unit": unit, "transmitterId": "t",
               "transmitterGeneration": "g7", "displayDevice": "iOS"})
    }

    /// Carbs and insulin events become carbohydrates (g) and insulin_injection (units,
    /// typed by their action); the other event types belong to neither, a deleted event
    /// is a removal and one without a value no sample.
    #[test]
    fn carbs_and_insulin_events_are_samples_of_their_own_resources() {
        let records = json!([
            app_event("carbs", Value::Null, json!("45"), json!("grams"), "created"),
            app_event(
                "insulin",
                json!("fastActing"),
                json!(4.5),
                json!("units"),
                "created"
            ),
            app_event(
                "insulin",
                json!("longActing"),
                json!("18"),
                json!("units"),
                "updated"
            ),
            app_event(
                "insulin",
                json!("fastActing"),
                json!("2"),
                json!("units"),
                "deleted"
            ),
            app_event(
                "exercise",
                json!("medium"),
                json!("30"),
                json!("minutes"),
                "created"
            ),
            app_event(
                "health",
                json!("illness"),
                json!(""),
                Value::Null,
                "created"
            ),
            app_event("carbs", Value::Null, json!(""), json!("grams"), "updated")
        ]);
        let carbs = Dexcom
            .parse_page(Resource::Carbohydrates, &event_page(records.clone()), None)
            .unwrap();
        let c: Vec<Value> = carbs.records.iter().map(Record::to_json).collect();
        assert_eq!(c.len(), 1, "an empty value is no sample: {c:?}");
        assert_eq!(
            (
                c[0]["value"].clone(),
                c[0]["unit"].clone(),
                c[0]["type"].clone()
            ),
            (json!(45.0), json!("g"), json!("carbohydrates"))
        );
        assert_eq!(
            (
                c[0]["start"].clone(),
                c[0]["end"].clone(),
                c[0]["timestamp"].clone()
            ),
            (
                json!("2026-11-22T02:05:00+00:00"),
                json!("2026-11-22T02:05:00+00:00"),
                json!("2026-11-22T02:05:00+00:00")
            )
        );
        assert_eq!(c[0]["timezone_offset"], -28800);
        assert!(carbs.removals.is_empty());

        let insulin = Dexcom
            .parse_page(Resource::InsulinInjection, &event_page(records), None)
            .unwrap();
        let i: Vec<Value> = insulin.records.iter().map(Record::to_json).collect();
        assert_eq!(i.len(), 2);
        assert_eq!(
            (
                i[0]["value"].clone(),
                i[0]["unit"].clone(),
                i[0]["type"].clone()
            ),
            (json!(4.5), json!("unit"), json!("rapid_acting"))
        );
        assert_eq!(
            (i[1]["type"].clone(), i[1]["value"].clone()),
            (json!("long_acting"), json!(18.0))
        );
        let removed: Vec<&str> = insulin
            .removals
            .iter()
            .map(|r| r.provider_id.as_str())
            .collect();
        assert_eq!(removed, ["insulin-deleted"], "deleted by the user: removed");
        assert_eq!(insulin.removals[0].resource, Resource::InsulinInjection);

        // No stated action: unknown, not guessed; a receiver event has no offset.
        let mut plain = app_event(
            "insulin",
            Value::Null,
            json!("1.5"),
            json!("units"),
            "created",
        );
        plain["systemTime"] = json!("2026-11-21T20:42:00");
        plain["displayTime"] = json!("2026-11-21T12:41:23");
        let r = Dexcom
            .parse_page(
                Resource::InsulinInjection,
                &event_page(json!([plain])),
                None,
            )
            .unwrap()
            .records[0]
            .to_json();
        assert_eq!(
            (r["type"].clone(), r["timezone_offset"].clone()),
            (json!("unknown"), Value::Null)
        );
        assert_eq!(r["timestamp"], "2026-11-21T20:42:00+00:00");
        // An unknown unit reads as the documented one; another quantity's unit is an error.
        let unknown = app_event(
            "carbs",
            Value::Null,
            json!("12"),
            json!("unknown"),
            "created",
        );
        assert_eq!(
            Dexcom
                .parse_page(Resource::Carbohydrates, &event_page(json!([unknown])), None)
                .unwrap()
                .records[0]
                .fields["unit"],
            "g"
        );
        for (bad, field) in [
            (
                app_event("carbs", Value::Null, json!("12"), json!("mg/dL"), "created"),
                "records[0].unit",
            ),
            (
                app_event(
                    "carbs",
                    Value::Null,
                    json!("a lot"),
                    json!("grams"),
                    "created",
                ),
                "records[0].value",
            ),
            (
                app_event("carbs", Value::Null, json!("-3"), json!("grams"), "created"),
                "records[0].value",
            ),
            (
                app_event("carbs", Value::Null, json!("3"), json!("grams"), "archived"),
                "records[0].eventStatus",
            ),
        ] {
            assert!(
                matches!(Dexcom.parse_page(Resource::Carbohydrates, &event_page(json!([bad.clone()])), None),
                         Err(ProviderError::Malformed { field: f, .. }) if f == field),
                "{bad}"
            );
        }
    }

    /// Both event resources read `/events` and narrow by the `events` data set of
    /// dataRange, which the fixture server computes from the events it serves.
    #[test]
    fn events_are_read_from_one_route_and_narrowed_by_their_own_range() {
        let p = crate::providers::find(ID).unwrap();
        let (carbs, insulin) = (
            p.resource(Resource::Carbohydrates).unwrap(),
            p.resource(Resource::InsulinInjection).unwrap(),
        );
        assert_eq!(carbs.path, "/v3/users/self/events");
        assert_eq!(insulin.path, carbs.path);
        let events = data("carbohydrates.json");
        let glucose = data("glucose.json");
        let items = |r: Resource| match r {
            Resource::Glucose => glucose.clone(),
            _ => events.clone(),
        };
        let range = DexcomFixtures
            .derived_reply(DATA_RANGE_PATH, &items)
            .unwrap();
        assert_eq!(
            range["events"]["start"]["systemTime"],
            "2026-11-21T20:40:00"
        );
        assert_eq!(
            range["events"]["end"]["systemTime"],
            "2026-11-22T21:00:00+00:00"
        );
        let w = Window {
            start: at("2026-11-01T00:00:00Z"),
            end: at("2026-11-23T00:00:00Z"),
        };
        let narrowed = Dexcom
            .narrow_window(Resource::InsulinInjection, &w, range.to_string().as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(
            (narrowed.start, narrowed.end),
            (at("2026-11-21T20:40:00Z"), at("2026-11-22T21:00:01Z"))
        );
        let none = Dexcom
            .narrow_window(
                Resource::Carbohydrates,
                &w,
                DexcomFixtures
                    .fixture("range/data_range.json")
                    .unwrap()
                    .as_bytes(),
            )
            .unwrap();
        assert_eq!(none, None, "`events: null`: nothing to fetch");
        // The whole data set through the fixture server: every carbs and insulin event
        // once, in its own resource.
        let req = Dexcom.page_request(insulin, &narrowed, None);
        let params: HashMap<String, String> = req.query.into_iter().collect();
        let body = DexcomFixtures.serve(insulin, &params, &events).unwrap();
        assert_eq!(body["recordType"], "event");
        let count = |r: Resource, kind: &str| {
            let page = Dexcom
                .parse_page(r, body.to_string().as_bytes(), None)
                .unwrap();
            let valued = events
                .iter()
                .filter(|e| {
                    e["eventType"] == kind
                        && e["eventStatus"] != "deleted"
                        && e["value"].as_str().is_none_or(|v| !v.is_empty())
                })
                .count();
            (page.records.len(), valued, page.removals.len())
        };
        let (got, want, removed) = count(Resource::Carbohydrates, "carbs");
        assert_eq!((got, removed), (want, 0));
        let (got, want, removed) = count(Resource::InsulinInjection, "insulin");
        assert_eq!((got, removed), (want, 1));
        // Changed data only appends, inside the two-day lookback.
        let after = data("carbohydrates.changed.json");
        assert_eq!(&after[..events.len()], &events[..]);
        for e in &after[events.len()..] {
            let t = utc_instant(e["systemTime"].as_str().unwrap(), "systemTime").unwrap();
            assert!((at("2026-11-21T00:00:00Z")..at("2026-11-23T00:00:00Z")).contains(&t));
        }
        let kinds: Vec<&str> = after[events.len()..]
            .iter()
            .map(|e| e["eventType"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["carbs", "insulin"], "one new of each");
    }

    fn devices_spec() -> ResourceSpec {
        crate::providers::find(ID)
            .unwrap()
            .resource(Resource::Devices)
            .unwrap()
            .clone()
    }

    /// getDevicesV3 takes no query and no dataRange: the whole list, every time.
    #[test]
    fn devices_are_read_whole_without_dates_or_a_data_range() {
        let spec = devices_spec();
        assert!(!spec.windowed);
        let w = Window {
            start: at("2026-10-01T00:00:00Z"),
            end: at("2026-11-22T00:00:00Z"),
        };
        let req = Dexcom.page_request(&spec, &w, None);
        assert_eq!(
            (req.path.as_str(), req.query.len()),
            ("/v3/users/self/devices", 0)
        );
        assert_eq!(Dexcom.range_request(&spec, &w), None);
        assert!(Dexcom
            .range_request(&spec_of(Resource::Glucose), &w)
            .is_some());
        // The whole backfill is one window, hence one request.
        let p = crate::providers::find(ID).unwrap();
        let now = at("2026-11-22T00:00:00Z").timestamp_millis();
        let jobs = crate::poller::plan::connect_jobs(p, now, None);
        let backfill: Vec<_> = jobs
            .iter()
            .filter(|j| {
                j.resource == Resource::Devices && j.kind == crate::states::JobKind::Backfill
            })
            .collect();
        assert_eq!(backfill.len(), 1);
        assert_eq!(
            backfill[0].window_start,
            crate::poller::plan::history_start(p, now)
        );
        let glucose = jobs
            .iter()
            .filter(|j| {
                j.resource == Resource::Glucose && j.kind == crate::states::JobKind::Backfill
            })
            .count();
        assert_eq!(glucose, 13, "windowed resources keep their 30-day windows");
    }

    fn spec_of(r: Resource) -> ResourceSpec {
        crate::providers::find(ID)
            .unwrap()
            .resource(r)
            .unwrap()
            .clone()
    }

    /// Each device is Junction's device: manufacturer Dexcom, the transmitter generation as
    /// model, the hashed transmitter id, the app; keyed by what tells devices apart, the
    /// latest upload winning; the upload time and the alert settings' clocks are not part
    /// of it, so only a real change changes it.
    #[test]
    fn each_device_is_a_record_keyed_by_app_and_transmitter() {
        let body = DexcomFixtures
            .serve(&devices_spec(), &HashMap::new(), &data("devices.json"))
            .unwrap();
        let page = Dexcom
            .parse_page(Resource::Devices, body.to_string().as_bytes(), None)
            .unwrap();
        let recs: Vec<Value> = page.records.iter().map(Record::to_json).collect();
        assert_eq!(recs.len(), 2);
        let app = &recs[1];
        assert_eq!(
            app["provider_id"],
            "iOS/G7/g7/bd737740c1763793cacefe678b9c63c9cef84ce36f712c398dabb2b662fadacd"
        );
        assert_eq!(
            (
                app["source_type"].clone(),
                app["device_manufacturer"].clone(),
                app["device_model"].clone(),
                app["app_id"].clone()
            ),
            (
                json!("automatic"),
                json!("Dexcom"),
                json!("g7"),
                json!("G7")
            )
        );
        assert!(app.get("last_upload").is_none() && app.get("lastUploadDate").is_none());
        let setting = &app["alert_schedules"][0]["alertSettings"][0];
        assert_eq!(
            (setting["alertName"].clone(), setting["value"].clone()),
            (json!("high"), json!(250))
        );
        assert!(setting.get("systemTime").is_none() && setting.get("displayTime").is_none());
        assert!(recs[0]["app_id"].is_null(), "a receiver has no app");
        // A later poll: the same receiver unchanged, the app's high alert lowered, a new
        // sensor's transmitter on the same app.
        let body = DexcomFixtures
            .serve(
                &devices_spec(),
                &HashMap::new(),
                &data("devices.changed.json"),
            )
            .unwrap();
        let after = Dexcom
            .parse_page(Resource::Devices, body.to_string().as_bytes(), None)
            .unwrap()
            .records;
        assert_eq!(after.len(), 3);
        assert_eq!(
            after[0].content_hash(),
            page.records[0].content_hash(),
            "only its upload moved"
        );
        assert_eq!(after[1].provider_id, page.records[1].provider_id);
        assert_ne!(
            after[1].content_hash(),
            page.records[1].content_hash(),
            "a setting changed"
        );
        assert!(!page
            .records
            .iter()
            .any(|r| r.provider_id == after[2].provider_id));
        // The operation page's own example and a receiver listed twice: one device each.
        let recs: Vec<Value> = Dexcom
            .parse_page(
                Resource::Devices,
                include_bytes!("../../fixtures/dexcom/pages/devices/page_1.json"),
                None,
            )
            .unwrap()
            .records
            .iter()
            .map(Record::to_json)
            .collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0]["app_id"], "G7Android");
        assert!(
            recs[0]["device_id"].is_null(),
            "no transmitterId in the example"
        );
        assert_eq!(recs[1]["provider_id"], "receiver/-/g6/-");
        // No devices: an empty list.
        let none =
            json!({"recordType": "device", "recordVersion": "3.0", "userId": "u", "records": []});
        assert!(Dexcom
            .parse_page(Resource::Devices, none.to_string().as_bytes(), None)
            .unwrap()
            .records
            .is_empty());
    }

    #[test]
    fn a_malformed_device_names_its_field() {
        let device = |patch: Value| {
            let mut d = json!({"lastUploadDate": "2026-11-22T21:57:12Z", "transmitterId": null,
                               "transmitterGeneration": "g7", "displayDevice": "iOS", "displayApp": "G7",
                               "alertSchedules": []});
            if let (Value::Object(d), Value::Object(p)) = (&mut d, patch) {
                d.extend(p);
            }
            json!({"records": [d]}).to_string()
        };
        for (patch, field) in [
            (
                json!({"lastUploadDate": "yesterday"}),
                "records[0].lastUploadDate",
            ),
            (json!({"displayDevice": null}), "records[0].displayDevice"),
            (
                json!({"transmitterGeneration": 7}),
                "records[0].transmitterGeneration",
            ),
            (
                json!({"alertSchedules": "none"}),
                "records[0].alertSchedules",
            ),
            (
                json!({"alertSchedules": [{"alertSettings": 3}]}),
                "records[0].alertSchedules[0].alertSettings",
            ),
            (json!({"displayApp": 12}), "records[0].displayApp"),
        ] {
            assert!(
                matches!(
                    Dexcom.parse_page(Resource::Devices, device(patch.clone()).as_bytes(), None),
                    Err(ProviderError::Malformed { field: f, .. }) if f == field
                ),
                "{patch}"
            );
        }
        assert!(Dexcom
            .parse_page(Resource::Devices, b"{\"records\": 3}", None)
            .is_err());
        assert!(Dexcom.parse_page(Resource::Devices, b"[]", None).is_err());
    }
}
