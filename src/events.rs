//! Events: the envelope every webhook carries, the closed catalogue of dotted event
//! types (Vital-compatible, so apps written for Vital can switch), and a realistic
//! example payload for each type (served by `GET /v1/event-types` and sent as test
//! events).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

/// The data a provider can share. Summaries are one record per item (a workout, a
/// night); timeseries are one record per sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Workouts,
    Sleep,
    Activity,
    Body,
    Profile,
    Recovery,
    Heartrate,
    Glucose,
    Steps,
    Hrv,
}

impl Resource {
    pub const ALL: [Resource; 10] = [
        Resource::Workouts,
        Resource::Sleep,
        Resource::Activity,
        Resource::Body,
        Resource::Profile,
        Resource::Recovery,
        Resource::Heartrate,
        Resource::Glucose,
        Resource::Steps,
        Resource::Hrv,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Workouts => "workouts",
            Resource::Sleep => "sleep",
            Resource::Activity => "activity",
            Resource::Body => "body",
            Resource::Profile => "profile",
            Resource::Recovery => "recovery",
            Resource::Heartrate => "heartrate",
            Resource::Glucose => "glucose",
            Resource::Steps => "steps",
            Resource::Hrv => "hrv",
        }
    }

    pub fn is_timeseries(self) -> bool {
        matches!(
            self,
            Resource::Heartrate | Resource::Glucose | Resource::Steps | Resource::Hrv
        )
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Resource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Resource::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown resource `{s}`"))
    }
}

/// Every event type Wearbridge emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    ConnectionCreated,
    ConnectionError,
    ConnectionDeleted,
    HistoricalCreated(Resource),
    DailyCreated(Resource),
    DailyUpdated(Resource),
    WebhookTest,
}

impl EventType {
    /// The whole catalogue, in a stable order.
    pub fn all() -> Vec<EventType> {
        let mut v = vec![
            EventType::ConnectionCreated,
            EventType::ConnectionError,
            EventType::ConnectionDeleted,
        ];
        for r in Resource::ALL {
            v.push(EventType::HistoricalCreated(r));
        }
        for r in Resource::ALL {
            v.push(EventType::DailyCreated(r));
            v.push(EventType::DailyUpdated(r));
        }
        v.push(EventType::WebhookTest);
        v
    }

    pub fn name(self) -> String {
        match self {
            EventType::ConnectionCreated => "provider.connection.created".into(),
            EventType::ConnectionError => "provider.connection.error".into(),
            EventType::ConnectionDeleted => "provider.connection.deleted".into(),
            EventType::HistoricalCreated(r) => format!("historical.data.{r}.created"),
            EventType::DailyCreated(r) => format!("daily.data.{r}.created"),
            EventType::DailyUpdated(r) => format!("daily.data.{r}.updated"),
            EventType::WebhookTest => "webhook.test".into(),
        }
    }

    pub fn description(self) -> String {
        match self {
            EventType::ConnectionCreated => "A user connected a provider.".into(),
            EventType::ConnectionError => {
                "A connection stopped working for good (refresh refused, access revoked); the user must reconnect.".into()
            }
            EventType::ConnectionDeleted => "A connection was removed; polling for it stopped.".into(),
            EventType::HistoricalCreated(r) => format!(
                "One backfill window of {r} is stored (newest window first); `is_final` marks the oldest. Read the records from the data API."
            ),
            EventType::DailyCreated(r) => format!("A new {r} record found by regular polling; `data` is the record."),
            EventType::DailyUpdated(r) => {
                format!("A known {r} record changed; `data` is the record with a higher `version`.")
            }
            EventType::WebhookTest => "A test event: sent when an endpoint is created, and on demand.".into(),
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || format!("unknown event type `{s}`");
        match s {
            "provider.connection.created" => return Ok(EventType::ConnectionCreated),
            "provider.connection.error" => return Ok(EventType::ConnectionError),
            "provider.connection.deleted" => return Ok(EventType::ConnectionDeleted),
            "webhook.test" => return Ok(EventType::WebhookTest),
            _ => {}
        }
        let parts: Vec<&str> = s.split('.').collect();
        match parts.as_slice() {
            ["historical", "data", r, "created"] => Ok(EventType::HistoricalCreated(
                r.parse().map_err(|_| unknown())?,
            )),
            ["daily", "data", r, "created"] => {
                Ok(EventType::DailyCreated(r.parse().map_err(|_| unknown())?))
            }
            ["daily", "data", r, "updated"] => {
                Ok(EventType::DailyUpdated(r.parse().map_err(|_| unknown())?))
            }
            _ => Err(unknown()),
        }
    }
}

/// An instant as the API and webhooks show it: RFC 3339, UTC, `+00:00`.
pub fn format_instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// A Unix-millisecond column value as the API shows it (millisecond precision).
pub fn format_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// The JSON body of every webhook: Vital's envelope plus an id and a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: Uuid,
    pub event_type: String,
    pub team_id: Uuid,
    pub user_id: Option<Uuid>,
    pub client_user_id: Option<String>,
    pub created_at: String,
    pub data: Value,
}

impl Envelope {
    pub fn new(
        id: Uuid,
        event_type: EventType,
        team_id: Uuid,
        user: Option<(Uuid, String)>,
        data: Value,
    ) -> Envelope {
        let (user_id, client_user_id) = match user {
            Some((u, c)) => (Some(u), Some(c)),
            None => (None, None),
        };
        Envelope {
            id,
            event_type: event_type.name(),
            team_id,
            user_id,
            client_user_id,
            created_at: format_ms(crate::now_ms()),
            data,
        }
    }
}

fn provider_ref(slug: &str, name: &str) -> Value {
    json!({"name": name, "slug": slug})
}

/// A realistic example of `data` for an event type, as a provider would produce it.
pub fn example_data(t: EventType, user_id: Uuid) -> Value {
    let oura = provider_ref("oura", "Oura");
    let source = |kind: &str| json!({"provider": "oura", "type": kind});
    let uid = user_id.to_string();
    let rec = |r: Resource, key: &str| {
        crate::ids::record_id(Uuid::nil(), user_id, "oura", r.as_str(), key).to_string()
    };
    match t {
        EventType::ConnectionCreated => json!({
            "user_id": uid, "provider": oura, "external_user_id": "VG5ZM2",
            "resource_availability": {
                "sleep": {"status": "available"}, "activity": {"status": "available"},
                "workouts": {"status": "available"}, "heartrate": {"status": "available"}
            }
        }),
        EventType::ConnectionError => json!({
            "user_id": uid, "provider": oura, "error_type": "token_refresh_failed",
            "message": "the provider refused the refresh token (invalid_grant); the user must reconnect"
        }),
        EventType::ConnectionDeleted => json!({"user_id": uid, "provider": oura}),
        EventType::HistoricalCreated(_) => json!({
            "user_id": uid, "provider": oura,
            "start_date": "2025-11-24T00:00:00+00:00", "end_date": "2025-12-24T00:00:00+00:00",
            "is_final": true, "chunk_index": 12, "chunk_count": 13
        }),
        EventType::DailyCreated(r) | EventType::DailyUpdated(r) => {
            let version = if matches!(t, EventType::DailyUpdated(_)) {
                2
            } else {
                1
            };
            example_record(r, &uid, version, &source, &rec)
        }
        EventType::WebhookTest => json!({"message": "This is a test event from Wearbridge."}),
    }
}

fn example_record(
    r: Resource,
    uid: &str,
    version: i64,
    source: &dyn Fn(&str) -> Value,
    rec: &dyn Fn(Resource, &str) -> String,
) -> Value {
    let sample = |kind: &str, unit: &str, values: &[f64]| {
        let data: Vec<Value> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                json!({"timestamp": format!("2026-11-20T07:{:02}:00+00:00", i * 5), "timezone_offset": 3600,
                       "type": kind, "unit": unit, "value": v})
            })
            .collect();
        json!({"user_id": uid, "source": source("ring"), "data": data})
    };
    match r {
        Resource::Workouts => json!({
            "id": rec(r, "e1f2a3b4-workout"), "provider_id": "e1f2a3b4-workout", "user_id": uid,
            "source": source("ring"), "version": version, "title": "Morning run",
            "sport": {"name": "Running", "slug": "running"},
            "time_start": "2026-11-20T06:12:00+00:00", "time_end": "2026-11-20T06:58:30+00:00",
            "timezone_offset": 3600, "moving_time": 2790, "distance": 8120.0, "calories": 612.4,
            "average_hr": 148, "max_hr": 176, "total_elevation_gain": 64.0,
            "average_speed": 2.91, "max_speed": 4.2
        }),
        Resource::Sleep => json!({
            "id": rec(r, "sleep-2026-11-20"), "provider_id": "sleep-2026-11-20", "user_id": uid,
            "source": source("ring"), "version": version, "calendar_date": "2026-11-20",
            "bedtime_start": "2026-11-19T22:41:12+00:00", "bedtime_stop": "2026-11-20T06:32:40+00:00",
            "timezone_offset": 3600, "duration": 28288, "total": 25920, "awake": 2368,
            "light": 13440, "rem": 6180, "deep": 6300, "efficiency": 92, "hr_average": 52.4,
            "hr_lowest": 46, "average_hrv": 61, "respiratory_rate": 14.6,
            "state": if version == 1 { "tentative" } else { "confirmed" }
        }),
        Resource::Activity => json!({
            "id": rec(r, "2026-11-20"), "provider_id": "2026-11-20", "user_id": uid,
            "source": source("ring"), "version": version, "calendar_date": "2026-11-20",
            "timezone_offset": 3600, "steps": 11842, "calories_total": 2614.0,
            "calories_active": 548.0, "daily_movement": 9210.0
        }),
        Resource::Body => json!({
            "id": rec(r, "1790912345"), "provider_id": "1790912345", "user_id": uid,
            "source": {"provider": "withings", "type": "scale"}, "version": version,
            "measured_at": "2026-11-20T07:03:11+00:00", "timezone_offset": 3600,
            "weight": 72.45, "fat": 18.2
        }),
        Resource::Profile => json!({
            "id": rec(r, "profile"), "provider_id": "VG5ZM2", "user_id": uid, "source": source("ring"),
            "version": version, "height": 1.78, "weight": 72.5, "birth_date": "1990-04-12", "sex": "female"
        }),
        Resource::Recovery => json!({
            "id": rec(r, "cycle-93845"), "provider_id": "93845", "user_id": uid,
            "source": {"provider": "whoop", "type": "wrist"}, "version": version,
            "calendar_date": "2026-11-20", "recovery_score": 71, "resting_hr": 49, "average_hrv": 68.2,
            "spo2": 96.4, "skin_temperature": 33.7, "state": "confirmed"
        }),
        Resource::Heartrate => sample("heartrate", "bpm", &[58.0, 61.0, 64.0, 97.0]),
        Resource::Glucose => sample("glucose", "mmol/L", &[5.4, 5.9, 6.8, 6.1]),
        Resource::Steps => sample("steps", "count", &[120.0, 340.0, 0.0, 56.0]),
        Resource::Hrv => sample("hrv", "ms", &[62.0, 58.0, 71.0, 66.0]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_name() {
        let all = EventType::all();
        assert_eq!(all.len(), 3 + Resource::ALL.len() * 3 + 1);
        for t in all {
            assert_eq!(t.name().parse::<EventType>().unwrap(), t);
        }
        assert!("daily.data.naps.created".parse::<EventType>().is_err());
        assert!("daily.data.sleep.deleted".parse::<EventType>().is_err());
        assert!("".parse::<EventType>().is_err());
    }

    #[test]
    fn examples_carry_the_contract_fields() {
        let u = Uuid::from_u128(7);
        let h = example_data(EventType::HistoricalCreated(Resource::Sleep), u);
        for k in ["user_id", "provider", "start_date", "end_date", "is_final"] {
            assert!(h.get(k).is_some(), "historical example lacks {k}");
        }
        let w = example_data(EventType::DailyCreated(Resource::Workouts), u);
        for k in [
            "id",
            "provider_id",
            "user_id",
            "source",
            "version",
            "sport",
            "time_start",
            "distance",
        ] {
            assert!(w.get(k).is_some(), "workout example lacks {k}");
        }
        assert_eq!(
            example_data(EventType::DailyUpdated(Resource::Sleep), u)["version"],
            2
        );
        let hr = example_data(EventType::DailyCreated(Resource::Heartrate), u);
        assert_eq!(hr["data"][0]["unit"], "bpm");
    }

    #[test]
    fn envelope_serialises_with_vital_field_names() {
        let e = Envelope::new(
            Uuid::from_u128(1),
            EventType::WebhookTest,
            Uuid::from_u128(2),
            None,
            json!({}),
        );
        let v = serde_json::to_value(&e).unwrap();
        for k in [
            "id",
            "event_type",
            "team_id",
            "user_id",
            "client_user_id",
            "created_at",
            "data",
        ] {
            assert!(v.get(k).is_some(), "envelope lacks {k}");
        }
        assert_eq!(v["event_type"], "webhook.test");
        assert!(v["created_at"].as_str().unwrap().ends_with("+00:00"));
    }
}
