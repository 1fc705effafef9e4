//! Events: the envelope every webhook carries, the closed catalogue of dotted event
//! types (Vital-compatible, so apps written for Vital can switch), the record model
//! ([`Record`]) daily events carry, one constructor per event type, and a realistic
//! example payload for each type (served by `GET /v1/event-types` and sent as test
//! events).
//!
//! Every event is born here, from plain values: the constructors do no I/O, so what
//! each event says is unit-tested without a database. The store persists what it is
//! handed; the poller and the API choose which events to publish.

pub mod junction;
mod record;

pub use record::Record;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::states::ConnectionErrorType;

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
    BloodOxygen,
    RespiratoryRate,
    BodyTemperature,
    CaloriesActive,
    Distance,
    Carbohydrates,
    InsulinInjection,
    BodyTemperatureDelta,
    /// The devices a provider says the user has (Junction's `ClientFacingDevice`): not
    /// data that happened at a time, but what the user's account holds now.
    Devices,
}

impl Resource {
    pub const ALL: [Resource; 19] = [
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
        Resource::BloodOxygen,
        Resource::RespiratoryRate,
        Resource::BodyTemperature,
        Resource::CaloriesActive,
        Resource::Distance,
        Resource::Carbohydrates,
        Resource::InsulinInjection,
        Resource::BodyTemperatureDelta,
        Resource::Devices,
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
            Resource::BloodOxygen => "blood_oxygen",
            Resource::RespiratoryRate => "respiratory_rate",
            Resource::BodyTemperature => "body_temperature",
            Resource::CaloriesActive => "calories_active",
            Resource::Distance => "distance",
            Resource::Carbohydrates => "carbohydrates",
            Resource::InsulinInjection => "insulin_injection",
            Resource::BodyTemperatureDelta => "body_temperature_delta",
            Resource::Devices => "devices",
        }
    }

    pub fn is_timeseries(self) -> bool {
        matches!(
            self,
            Resource::Heartrate
                | Resource::Glucose
                | Resource::Steps
                | Resource::Hrv
                | Resource::BloodOxygen
                | Resource::RespiratoryRate
                | Resource::BodyTemperature
                | Resource::CaloriesActive
                | Resource::Distance
                | Resource::Carbohydrates
                | Resource::InsulinInjection
                | Resource::BodyTemperatureDelta
        )
    }

    /// A resource of things that happened at a time: backfilled window by window with a
    /// `historical.data.<r>.created` per window, announced by `daily.data.<r>.*`, read by
    /// date range. Devices are not: Junction announces them with `provider.device.created`
    /// and `.updated` whichever job finds them, and lists them whole.
    pub fn is_history(self) -> bool {
        self != Resource::Devices
    }

    /// A timeseries whose samples cover an interval: Junction's model of it requires
    /// `start` and `end` (inclusive, exclusive) beside the deprecated `timestamp`
    /// (`ClientFacingStepsTimeseries`, `ClientFacingCaloriesActiveTimeseries`,
    /// `ClientFacingDistanceTimeseries`, `ClientFacingBodyTemperatureSample`,
    /// `ClientFacingCarbohydratesSample`, `ClientFacingInsulinInjectionSample`,
    /// `ClientFacingBodyTemperatureDeltaSample` of its SDK).
    /// The others are instants (`ClientFacingHeartRateTimeseries`,
    /// `ClientFacingBloodOxygenTimeseries`, `ClientFacingRespiratoryRateTimeseries`, …).
    pub fn is_interval(self) -> bool {
        matches!(
            self,
            Resource::Steps
                | Resource::BodyTemperature
                | Resource::CaloriesActive
                | Resource::Distance
                | Resource::Carbohydrates
                | Resource::InsulinInjection
                | Resource::BodyTemperatureDelta
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
    DailyDeleted(Resource),
    /// `provider.device.created`: a device seen for the first time.
    DeviceCreated,
    /// `provider.device.updated`: a known device changed.
    DeviceUpdated,
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
        let history = Resource::ALL.into_iter().filter(|r| r.is_history());
        for r in history.clone() {
            v.push(EventType::HistoricalCreated(r));
        }
        for r in history {
            v.push(EventType::DailyCreated(r));
            v.push(EventType::DailyUpdated(r));
            v.push(EventType::DailyDeleted(r));
        }
        v.push(EventType::DeviceCreated);
        v.push(EventType::DeviceUpdated);
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
            EventType::DailyDeleted(r) => format!("daily.data.{r}.deleted"),
            EventType::DeviceCreated => "provider.device.created".into(),
            EventType::DeviceUpdated => "provider.device.updated".into(),
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
            EventType::DailyCreated(r) => format!(
                "A new {r} record found by regular polling; `data` is the record (Junction's model where it has one)."
            ),
            EventType::DailyUpdated(r) => format!(
                "A known {r} record changed; `data` is the record (Junction's model where it has one) with a higher `version`."
            ),
            EventType::DailyDeleted(r) => format!(
                "A stored {r} record is gone: the provider deleted it, or now says it is not {r} (a rejected nap). `data` names the record by its `id` and last `version`; it is no longer served."
            ),
            EventType::DeviceCreated => {
                "A device the provider lists for the user, seen for the first time; `data` is Junction's `ClientFacingDevice`.".into()
            }
            EventType::DeviceUpdated => {
                "A known device changed (its app, model or settings); `data` is Junction's `ClientFacingDevice` with a higher `version`.".into()
            }
            EventType::WebhookTest => "A test event: sent when an endpoint is created, and on demand.".into(),
        }
    }
}

impl EventType {
    /// `daily.data.<resource>.created` for a new record, `.updated` for a changed one;
    /// `provider.device.created` / `.updated` for a device.
    pub fn daily(resource: Resource, created: bool) -> EventType {
        match (resource, created) {
            (Resource::Devices, true) => EventType::DeviceCreated,
            (Resource::Devices, false) => EventType::DeviceUpdated,
            (r, true) => EventType::DailyCreated(r),
            (r, false) => EventType::DailyUpdated(r),
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
            "provider.device.created" => return Ok(EventType::DeviceCreated),
            "provider.device.updated" => return Ok(EventType::DeviceUpdated),
            _ => {}
        }
        let parts: Vec<&str> = s.split('.').collect();
        let history = |r: &str| {
            r.parse::<Resource>()
                .ok()
                .filter(|r| r.is_history())
                .ok_or_else(unknown)
        };
        match parts.as_slice() {
            ["historical", "data", r, "created"] => Ok(EventType::HistoricalCreated(history(r)?)),
            ["daily", "data", r, "created"] => Ok(EventType::DailyCreated(history(r)?)),
            ["daily", "data", r, "updated"] => Ok(EventType::DailyUpdated(history(r)?)),
            ["daily", "data", r, "deleted"] => Ok(EventType::DailyDeleted(history(r)?)),
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
    /// Events with the same key reach each endpoint one at a time, in publish order
    /// (a connection's backfill chunks of one resource). Stored beside the event, not
    /// sent.
    #[serde(skip)]
    pub ordering_key: Option<String>,
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
            ordering_key: None,
        }
    }

    /// `provider.connection.created`: the user connected `conn`'s provider, which
    /// shares `resources`.
    pub fn connection_created(
        conn: &ConnectionRef,
        external_user_id: Option<&str>,
        resources: &[Resource],
    ) -> Envelope {
        let availability: Map<String, Value> = resources
            .iter()
            .map(|r| (r.to_string(), json!({"status": "available"})))
            .collect();
        // Junction's `ProviderConnectionCreated` still requires `source`, the deprecated
        // name of `provider`, so both carry the provider.
        conn.event(
            EventType::ConnectionCreated,
            json!({
                "user_id": conn.user_id,
                "source": conn.provider.to_json(),
                "provider": conn.provider.to_json(),
                "external_user_id": external_user_id,
                "resource_availability": availability,
            }),
        )
    }

    /// `provider.connection.error`: the connection stopped working for good. As
    /// Junction's `ProviderConnectionError`: `provider` is the slug, `error_type` one
    /// of Junction's ([`junction_error_type`]) and `error_details` our own, finer type.
    pub fn connection_error(
        conn: &ConnectionRef,
        error_type: ConnectionErrorType,
        message: &str,
    ) -> Envelope {
        conn.event(
            EventType::ConnectionError,
            json!({
                "user_id": conn.user_id,
                "provider": conn.provider.junction_slug(),
                "error_type": junction_error_type(error_type),
                "error_details": error_type,
                "message": message,
            }),
        )
    }

    /// `provider.connection.deleted`: the connection was removed. Junction documents no
    /// model for it; `provider` is the slug, as in `provider.connection.error` and the
    /// historical events: only `provider.connection.created` introduces a provider as
    /// an object, every later event about the connection names it by slug.
    pub fn connection_deleted(conn: &ConnectionRef) -> Envelope {
        conn.event(
            EventType::ConnectionDeleted,
            json!({"user_id": conn.user_id, "provider": conn.provider.junction_slug()}),
        )
    }

    /// `historical.data.<resource>.created`: backfill window `chunk_index` of
    /// `chunk_count` (newest first) is stored. Chunks of one connection and resource
    /// share an ordering key, so each endpoint receives them in publish order.
    pub fn historical_chunk(
        conn: &ConnectionRef,
        resource: Resource,
        window: (DateTime<Utc>, DateTime<Utc>),
        chunk_index: i64,
        chunk_count: i64,
    ) -> Envelope {
        let (start, end) = (format_instant(window.0), format_instant(window.1));
        let id = crate::ids::historical_event_id(conn.id, resource.as_str(), &start, &end);
        let mut e = Envelope::new(
            id,
            EventType::HistoricalCreated(resource),
            conn.team_id,
            Some((conn.user_id, conn.client_user_id.clone())),
            json!({
                "user_id": conn.user_id,
                "provider": conn.provider.junction_slug(),
                "start_date": start,
                "end_date": end,
                "is_final": chunk_index + 1 == chunk_count,
                "chunk_index": chunk_index,
                "chunk_count": chunk_count,
            }),
        );
        e.ordering_key = Some(format!("historical/{}/{resource}", conn.id));
        e
    }

    /// `daily.data.<resource>.created` / `.updated` for the records a poll stored anew
    /// or changed, in their order: one event per summary record (its id over the
    /// record's id and version), and one per kind of change for timeseries samples
    /// (its id over the samples' ids and versions), so a replay yields the same events.
    ///
    /// `data` is Junction's: a summary is its `ClientFacing…` model ([`junction`]),
    /// with `created_at` and `updated_at` the time the change was found (`now_ms`,
    /// which is when it is stored); samples are its `Grouped…` item (`source` and the
    /// samples). Recovery has no Junction model and goes as stored; so does a record
    /// Junction's model cannot hold (logged), rather than no event at all.
    pub fn daily(conn: &ConnectionRef, changes: &[RecordChange<'_>]) -> Vec<Envelope> {
        let now = crate::now_ms();
        let stamped = |data| junction::Stamped {
            provider: &conn.provider.slug,
            data,
            created_at: now,
            updated_at: now,
        };
        let user = || Some((conn.user_id, conn.client_user_id.clone()));
        let mut out = Vec::new();
        let mut series: Vec<(Resource, bool, Vec<&RecordChange<'_>>)> = Vec::new();
        for c in changes {
            if c.resource.is_timeseries() {
                match series
                    .iter_mut()
                    .find(|(r, created, _)| *r == c.resource && *created == c.created)
                {
                    Some((_, _, samples)) => samples.push(c),
                    None => series.push((c.resource, c.created, vec![c])),
                }
                continue;
            }
            let t = EventType::daily(c.resource, c.created);
            let id = crate::ids::daily_event_id(&t.name(), c.id, c.version);
            let data = match junction::summary(c.resource, stamped(c.data)) {
                Some(Ok(v)) => v,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "daily event sent as stored");
                    c.data.clone()
                }
                None => c.data.clone(),
            };
            out.push(Envelope::new(id, t, conn.team_id, user(), data));
        }
        for (resource, created, samples) in series {
            let t = EventType::daily(resource, created);
            let key: Vec<String> = samples
                .iter()
                .map(|s| format!("{}@{}", s.id, s.version))
                .collect();
            let batch = Uuid::new_v5(&crate::ids::NAMESPACE, key.join(",").as_bytes());
            let id = crate::ids::daily_event_id(&t.name(), batch, 1);
            let source = samples
                .first()
                .map_or(Value::Null, |s| junction::source(resource, stamped(s.data)));
            let data: Vec<Value> = samples
                .iter()
                .filter_map(|s| match junction::sample(resource, stamped(s.data)) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::warn!(error = %e, "sample left out of its daily event");
                        None
                    }
                })
                .collect();
            let body = json!({"user_id": conn.user_id, "source": source, "data": data});
            out.push(Envelope::new(id, t, conn.team_id, user(), body));
        }
        out
    }

    /// `daily.data.<resource>.deleted` for a stored record that was removed: Junction
    /// sends no deletions, so the shape is ours (the record's `id` and last `version`,
    /// whose user and provider, when). Its id is stable over the record and version, so
    /// a replayed deletion is the same event.
    pub fn deleted(conn: &ConnectionRef, removal: &RecordRemoval) -> Envelope {
        let t = EventType::DailyDeleted(removal.resource);
        let id = crate::ids::daily_event_id(&t.name(), removal.id, removal.version);
        let data = deleted_data(
            removal.id,
            conn.user_id,
            conn.provider.junction_slug(),
            removal,
            crate::now_ms(),
        );
        Envelope::new(
            id,
            t,
            conn.team_id,
            Some((conn.user_id, conn.client_user_id.clone())),
            data,
        )
    }

    /// `webhook.test` for one endpoint; `id` is fresh for every test.
    pub fn webhook_test(id: Uuid, team: Uuid, endpoint: Uuid) -> Envelope {
        Envelope::new(
            id,
            EventType::WebhookTest,
            team,
            None,
            json!({"message": "This is a test event from Wearbridge.", "endpoint_id": endpoint}),
        )
    }

    /// A type's example payload ([`example_data`]) as an event of `team`, about `user`
    /// when given (else a made-up one); `id` is fresh for every example.
    pub fn example(id: Uuid, t: EventType, team: Uuid, user: Option<(Uuid, String)>) -> Envelope {
        let about = user.as_ref().map_or_else(Uuid::new_v4, |u| u.0);
        Envelope::new(id, t, team, user, example_data(t, about))
    }
}

/// A provider as events name it; `slug` is our id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRef {
    pub slug: String,
    pub name: String,
}

impl ProviderRef {
    /// Junction's slug of the provider (`whoop_v2` for our `whoop`).
    fn junction_slug(&self) -> &str {
        junction::junction_slug(&self.slug)
    }

    /// Junction's `ClientFacingProvider`: `{name, slug, logo}`; `logo` is empty, as the
    /// gateway hosts no provider logos.
    fn to_json(&self) -> Value {
        provider_ref(self.junction_slug(), &self.name)
    }
}

/// Our connection error type as one of Junction's `ProviderConnectionErrorErrorType`
/// values (its SDK, `vital/types/provider_connection_error_error_type.py`). Ours alone,
/// `provider_api_error` (the provider refused our requests for good, not a credential
/// we know to be wrong), is `unknown` there; `error_details` keeps ours.
pub fn junction_error_type(t: ConnectionErrorType) -> &'static str {
    match t {
        ConnectionErrorType::TokenRefreshFailed => "token_refresh_failed",
        ConnectionErrorType::RequiredScopesNotGranted => "required_scopes_not_granted",
        ConnectionErrorType::DeregisteredPerProvider => "deregistered_per_provider",
        ConnectionErrorType::ProviderApiError | ConnectionErrorType::Unknown => "unknown",
    }
}

/// A connection as its events need it: whose it is and to which provider. Connection
/// event ids are stable over (event type, connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRef {
    pub id: Uuid,
    pub team_id: Uuid,
    pub user_id: Uuid,
    pub client_user_id: String,
    pub provider: ProviderRef,
}

impl ConnectionRef {
    fn event(&self, t: EventType, data: Value) -> Envelope {
        Envelope::new(
            crate::ids::connection_event_id(&t.name(), self.id),
            t,
            self.team_id,
            Some((self.user_id, self.client_user_id.clone())),
            data,
        )
    }
}

/// A record a page commit stored anew (`created`, version 1) or changed (a higher
/// `version`), with its data as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordChange<'a> {
    pub id: Uuid,
    pub resource: Resource,
    pub version: i64,
    pub created: bool,
    pub data: &'a Value,
}

/// A stored record a commit removed, with the version it had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRemoval {
    pub id: Uuid,
    pub resource: Resource,
    pub version: i64,
}

fn deleted_data(id: Uuid, user: Uuid, provider: &str, r: &RecordRemoval, at_ms: i64) -> Value {
    json!({
        "id": id, "user_id": user, "provider": provider, "resource": r.resource,
        "version": r.version, "deleted_at": format_ms(at_ms),
    })
}

fn provider_ref(slug: &str, name: &str) -> Value {
    json!({"name": name, "slug": slug, "logo": ""})
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
            "user_id": uid, "source": oura, "provider": oura, "external_user_id": "VG5ZM2",
            "resource_availability": {
                "sleep": {"status": "available"}, "activity": {"status": "available"},
                "workouts": {"status": "available"}, "heartrate": {"status": "available"}
            }
        }),
        EventType::ConnectionError => json!({
            "user_id": uid, "provider": "oura", "error_type": "token_refresh_failed",
            "error_details": "token_refresh_failed",
            "message": "the provider refused the refresh token (invalid_grant); the user must reconnect"
        }),
        EventType::ConnectionDeleted => json!({"user_id": uid, "provider": "oura"}),
        EventType::HistoricalCreated(_) => json!({
            "user_id": uid, "provider": "oura",
            "start_date": "2025-11-24T00:00:00+00:00", "end_date": "2025-12-24T00:00:00+00:00",
            "is_final": true, "chunk_index": 12, "chunk_count": 13
        }),
        EventType::DailyCreated(r) | EventType::DailyUpdated(r) => {
            let version = if matches!(t, EventType::DailyUpdated(_)) {
                2
            } else {
                1
            };
            let stored = example_record(r, &uid, version, &source, &rec);
            as_junction(r, &stored)
        }
        EventType::DeviceCreated | EventType::DeviceUpdated => {
            let version = if t == EventType::DeviceUpdated { 2 } else { 1 };
            let stored = example_record(Resource::Devices, &uid, version, &source, &rec);
            as_junction(Resource::Devices, &stored)
        }
        EventType::DailyDeleted(r) => {
            let id: Uuid = rec(r, "example").parse().unwrap_or_default();
            let removal = RecordRemoval {
                id,
                resource: r,
                version: 2,
            };
            deleted_data(id, user_id, "oura", &removal, 1_795_160_000_000)
        }
        EventType::WebhookTest => json!({"message": "This is a test event from Wearbridge."}),
    }
}

/// An example's stored record (or batch of samples) as its event carries it, by the
/// same mapping as [`Envelope::daily`]; times are the example's own.
fn as_junction(r: Resource, stored: &Value) -> Value {
    let at = 1_795_160_000_000; // 2026-11-20T07:33:20Z
    let stamped = |data| junction::Stamped {
        provider: stored["source"]["provider"].as_str().unwrap_or("oura"),
        data,
        created_at: at,
        updated_at: at,
    };
    if r.is_timeseries() {
        let samples: Vec<Value> = stored["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| junction::sample(r, stamped(d)).ok())
            .collect();
        return json!({"user_id": stored["user_id"], "source": junction::source(r, stamped(stored)),
                      "data": samples});
    }
    match junction::summary(r, stamped(stored)) {
        Some(Ok(v)) => v,
        Some(Err(_)) | None => stored.clone(),
    }
}

fn example_record(
    r: Resource,
    uid: &str,
    version: i64,
    source: &dyn Fn(&str) -> Value,
    rec: &dyn Fn(Resource, &str) -> String,
) -> Value {
    // Samples five minutes apart from `source`; an interval resource's each cover their
    // five minutes.
    let samples = |source: Value, unit: &str, values: &[f64], extra: Value| {
        let data: Vec<Value> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let at = format!("2026-11-20T07:{:02}:00+00:00", i * 5);
                let mut d = json!({"id": rec(r, &at), "version": version, "timestamp": at, "timezone_offset": 3600,
                                   "type": r.as_str(), "unit": unit, "value": v});
                if r.is_interval() {
                    d["start"] = json!(at);
                    d["end"] = json!(format!("2026-11-20T07:{:02}:00+00:00", i * 5 + 5));
                }
                if let (Value::Object(d), Value::Object(extra)) = (&mut d, &extra) {
                    d.extend(extra.clone());
                }
                d
            })
            .collect();
        json!({"user_id": uid, "source": source, "data": data})
    };
    let sample =
        |_kind: &str, unit: &str, values: &[f64]| samples(source("ring"), unit, values, json!({}));
    let google = |device: &str| json!({"provider": "google_health", "type": device});
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
        Resource::BloodOxygen => {
            samples(google("watch"), "%", &[96.0, 97.0, 95.0, 98.0], json!({}))
        }
        Resource::RespiratoryRate => {
            samples(google("watch"), "bpm", &[14.6, 15.1, 14.2, 14.8], json!({}))
        }
        Resource::BodyTemperature => samples(
            google("unknown"),
            "°C",
            &[36.6, 36.8, 37.1, 36.9],
            json!({"sensor_location": "mouth"}),
        ),
        Resource::CaloriesActive => {
            samples(google("watch"), "kcal", &[4.2, 6.8, 12.5, 3.1], json!({}))
        }
        Resource::Distance => samples(
            google("watch"),
            "m",
            &[310.0, 520.5, 1040.2, 95.0],
            json!({}),
        ),
        Resource::Carbohydrates => samples(
            json!({"provider": "dexcom", "type": "cgm"}),
            "g",
            &[45.0, 12.0, 60.0, 30.0],
            json!({}),
        ),
        // Junction's insulin sample types its `type` as the insulin's action.
        Resource::InsulinInjection => samples(
            json!({"provider": "dexcom", "type": "cgm"}),
            "unit",
            &[4.0, 1.5, 6.0, 2.0],
            json!({"type": "rapid_acting"}),
        ),
        // One sample a night, covering it: Oura's sleep period and the deviation of its
        // readiness from the user's baseline.
        Resource::BodyTemperatureDelta => {
            let data: Vec<Value> = [-0.21, 0.08, 0.46, 0.12]
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let start = format!("2026-11-{:02}T22:41:12+00:00", 16 + i);
                    let end = format!("2026-11-{:02}T06:32:40+00:00", 17 + i);
                    json!({"id": rec(r, &start), "version": version, "timestamp": start,
                           "start": start, "end": end, "timezone_offset": 3600,
                           "type": r.as_str(), "unit": "°C", "value": v})
                })
                .collect();
            json!({"user_id": uid, "source": source("ring"), "data": data})
        }
        // A Dexcom G7 app; an update is a changed alert setting.
        Resource::Devices => json!({
            "id": rec(r, "iOS/G7/g7/6b3f0c1e"), "provider_id": "iOS/G7/g7/6b3f0c1e", "user_id": uid,
            "source": {"provider": "dexcom", "type": "cgm"}, "version": version,
            "source_type": "automatic", "device_manufacturer": "Dexcom", "device_model": "g7",
            "device_version": null, "device_id": "6b3f0c1e", "app_id": "G7", "display_device": "iOS",
            "alert_schedules": [{"alertScheduleSettings": {"alertScheduleName": "", "isEnabled": true},
                                 "alertSettings": [{"alertName": "high", "value": if version == 1 { 250 } else { 220 },
                                                    "unit": "mg/dL", "enabled": true}]}]
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_name() {
        let all = EventType::all();
        // Devices have their two `provider.device.*` types instead of the four of a
        // resource with history.
        assert_eq!(all.len(), 3 + (Resource::ALL.len() - 1) * 4 + 2 + 1);
        for t in all {
            assert_eq!(t.name().parse::<EventType>().unwrap(), t);
        }
        assert!("daily.data.naps.created".parse::<EventType>().is_err());
        assert!("daily.data.devices.created".parse::<EventType>().is_err());
        assert!("historical.data.devices.created"
            .parse::<EventType>()
            .is_err());
        assert_eq!(
            EventType::daily(Resource::Devices, true).name(),
            "provider.device.created"
        );
        assert_eq!(
            EventType::daily(Resource::Devices, false).name(),
            "provider.device.updated"
        );
        let d = example_data(EventType::DeviceUpdated, Uuid::from_u128(7));
        assert_eq!(
            (d["provider"].clone(), d["version"].clone()),
            (json!("dexcom"), json!(2))
        );
        assert_eq!(d["source_type"], "automatic");
        assert!("daily.data.sleep.removed".parse::<EventType>().is_err());
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
        assert!(hr["data"][0]["record_id"].is_string());
        let sleep = example_data(EventType::DailyCreated(Resource::Sleep), u);
        assert_eq!(
            sleep["date"], "2026-11-20T00:00:00+00:00",
            "Junction's model"
        );
        assert_eq!(sleep["type"], "unknown");
        let body = example_data(EventType::DailyCreated(Resource::Body), u);
        assert_eq!(body["source"]["provider"], "withings");
        assert_eq!(body["calendar_date"], "2026-11-20");
        assert_eq!(h["provider"], "oura");
    }

    /// The resources Junction names beyond the first ones: each has its three event
    /// types, and its example carries Junction's unit and, for an interval resource,
    /// both ends of each sample.
    #[test]
    fn the_vital_named_series_have_their_events_units_and_intervals() {
        let u = Uuid::from_u128(7);
        for (name, unit, interval) in [
            ("blood_oxygen", "%", false),
            ("respiratory_rate", "bpm", false),
            ("body_temperature", "°C", true),
            ("calories_active", "kcal", true),
            ("distance", "m", true),
            ("carbohydrates", "g", true),
            ("insulin_injection", "unit", true),
        ] {
            let r: Resource = name.parse().unwrap();
            assert!(r.is_timeseries(), "{name}");
            assert_eq!(r.is_interval(), interval, "{name}");
            for t in [
                format!("daily.data.{name}.created"),
                format!("daily.data.{name}.updated"),
                format!("historical.data.{name}.created"),
            ] {
                let parsed: EventType = t.parse().unwrap();
                assert!(EventType::all().contains(&parsed), "{t} is catalogued");
            }
            let ex = example_data(EventType::DailyCreated(r), u);
            let data = ex["data"].as_array().unwrap();
            assert_eq!(data.len(), 4, "{name}");
            for d in data {
                assert_eq!(d["unit"], unit, "{name}");
                let kind = if r == Resource::InsulinInjection {
                    "rapid_acting"
                } else {
                    name
                };
                assert_eq!(d["type"], kind, "{name}");
                assert!(d["value"].is_f64(), "{name}");
                assert_eq!(d.get("start").is_some(), interval, "{name}: {d}");
                assert_eq!(d.get("end").is_some(), interval, "{name}: {d}");
            }
            if interval {
                assert_eq!(data[0]["start"], data[0]["timestamp"]);
                assert_eq!(data[0]["end"], data[1]["start"], "{name}: intervals tile");
            }
            let provider = if name == "carbohydrates" || name == "insulin_injection" {
                "dexcom"
            } else {
                "google_health"
            };
            assert_eq!(ex["source"]["provider"], provider, "{name}");
        }
        let t = example_data(EventType::DailyCreated(Resource::BodyTemperature), u);
        assert_eq!(t["data"][0]["sensor_location"], "mouth");
        let o = example_data(EventType::DailyCreated(Resource::BloodOxygen), u);
        assert!(o["data"][0].get("sensor_location").is_none());
        assert!(
            example_data(EventType::DailyCreated(Resource::Heartrate), u)["data"][0]
                .get("start")
                .is_none(),
            "heart rate samples are instants"
        );
    }

    /// Junction's body temperature delta: nightly interval samples in °C, each covering
    /// its night, from Oura in the example.
    #[test]
    fn body_temperature_delta_is_a_nightly_interval_series_in_celsius() {
        let r: Resource = "body_temperature_delta".parse().unwrap();
        assert!(r.is_timeseries() && r.is_interval());
        for t in [
            "daily.data.body_temperature_delta.created",
            "daily.data.body_temperature_delta.updated",
            "historical.data.body_temperature_delta.created",
        ] {
            let parsed: EventType = t.parse().unwrap();
            assert!(EventType::all().contains(&parsed), "{t} is catalogued");
        }
        let ex = example_data(EventType::DailyCreated(r), Uuid::from_u128(7));
        assert_eq!(ex["source"]["provider"], "oura");
        let data = ex["data"].as_array().unwrap();
        assert_eq!(data.len(), 4);
        for d in data {
            assert_eq!(d["unit"], "°C");
            assert_eq!(d["start"], d["timestamp"]);
            assert!(d["start"].as_str() < d["end"].as_str(), "{d}");
        }
        assert_eq!(data[0]["value"], -0.21, "a delta may be negative");
        assert!(
            data[0].get("sensor_location").is_none(),
            "unknown: left out"
        );
    }

    fn conn() -> ConnectionRef {
        ConnectionRef {
            id: Uuid::from_u128(10),
            team_id: Uuid::from_u128(11),
            user_id: Uuid::from_u128(12),
            client_user_id: "user-42".into(),
            provider: ProviderRef {
                slug: "oura".into(),
                name: "Oura".into(),
            },
        }
    }

    #[test]
    fn connection_events_name_the_user_and_provider_with_stable_ids() {
        let c = conn();
        let created = Envelope::connection_created(
            &c,
            Some("VG5ZM2"),
            &[Resource::Sleep, Resource::Workouts],
        );
        assert_eq!(created.event_type, "provider.connection.created");
        assert_eq!(created.team_id, c.team_id);
        assert_eq!(created.client_user_id.as_deref(), Some("user-42"));
        let oura = json!({"name": "Oura", "slug": "oura", "logo": ""});
        assert_eq!(created.data["provider"], oura);
        assert_eq!(
            created.data["source"], oura,
            "Junction still requires `source`"
        );
        assert_eq!(created.data["external_user_id"], "VG5ZM2");
        assert_eq!(
            created.data["resource_availability"],
            json!({"sleep": {"status": "available"}, "workouts": {"status": "available"}})
        );
        let again = Envelope::connection_created(&c, Some("VG5ZM2"), &[]);
        assert_eq!(created.id, again.id, "one created event per connection");

        let error = Envelope::connection_error(
            &c,
            ConnectionErrorType::TokenRefreshFailed,
            "refresh refused",
        );
        assert_eq!(error.data["error_type"], "token_refresh_failed");
        assert_eq!(error.data["error_details"], "token_refresh_failed");
        assert_eq!(error.data["provider"], "oura");
        assert_eq!(error.data["message"], "refresh refused");
        let deleted = Envelope::connection_deleted(&c);
        assert_eq!(
            deleted.data,
            json!({"user_id": c.user_id, "provider": "oura"})
        );
        assert!(created.id != error.id && error.id != deleted.id);
        assert!(created.ordering_key.is_none());
    }

    #[test]
    fn connection_events_use_junctions_slugs_and_error_types() {
        let mut c = conn();
        c.provider = ProviderRef {
            slug: "whoop".into(),
            name: "WHOOP".into(),
        };
        let created = Envelope::connection_created(&c, None, &[Resource::Recovery]);
        assert_eq!(created.data["provider"]["slug"], "whoop_v2");
        assert_eq!(created.data["source"]["slug"], "whoop_v2");
        let error =
            Envelope::connection_error(&c, ConnectionErrorType::ProviderApiError, "refused");
        assert_eq!(error.data["provider"], "whoop_v2");
        assert_eq!(error.data["error_type"], "unknown", "not one of Junction's");
        assert_eq!(error.data["error_details"], "provider_api_error");
        assert_eq!(
            Envelope::connection_deleted(&c).data["provider"],
            "whoop_v2"
        );
        let t = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let h = Envelope::historical_chunk(&c, Resource::Sleep, (t, t), 0, 1);
        assert_eq!(h.data["provider"], "whoop_v2");
        for (ours, theirs) in [
            (
                ConnectionErrorType::TokenRefreshFailed,
                "token_refresh_failed",
            ),
            (
                ConnectionErrorType::RequiredScopesNotGranted,
                "required_scopes_not_granted",
            ),
            (
                ConnectionErrorType::DeregisteredPerProvider,
                "deregistered_per_provider",
            ),
            (ConnectionErrorType::Unknown, "unknown"),
        ] {
            assert_eq!(junction_error_type(ours), theirs);
        }
    }

    #[test]
    fn historical_chunks_share_an_ordering_key_and_the_last_is_final() {
        let c = conn();
        let t = |d: u32| Utc.with_ymd_and_hms(2026, 11, d, 0, 0, 0).unwrap();
        let first = Envelope::historical_chunk(&c, Resource::Sleep, (t(20), t(30)), 0, 2);
        let last = Envelope::historical_chunk(&c, Resource::Sleep, (t(10), t(20)), 1, 2);
        assert_eq!(first.event_type, "historical.data.sleep.created");
        assert_eq!(first.data["is_final"], false);
        assert_eq!(first.data["provider"], "oura");
        assert_eq!(last.data["is_final"], true);
        assert_eq!(last.data["start_date"], "2026-11-10T00:00:00+00:00");
        assert_eq!(first.ordering_key, last.ordering_key);
        assert!(first.ordering_key.is_some());
        let other = Envelope::historical_chunk(&c, Resource::Workouts, (t(20), t(30)), 0, 2);
        assert_ne!(first.ordering_key, other.ordering_key);
        assert_ne!(first.id, last.id);
        let json = serde_json::to_value(&first).unwrap();
        assert!(json.get("ordering_key").is_none(), "the key is not sent");
    }

    #[test]
    fn daily_events_are_one_per_summary_and_one_per_batch_of_samples() {
        let c = conn();
        let workout = json!({"id": "w", "version": 2, "title": "Run", "user_id": "u", "provider_id": "9",
                             "time_start": "2026-11-20T23:30:00+00:00", "time_end": "2026-11-21T00:30:00+00:00",
                             "timezone_offset": 3600, "average_hr": 139.6, "source": {"provider": "oura", "type": "ring"}});
        let recovery = json!({"id": "r", "version": 1, "recovery_score": 71});
        let hr = |t: &str, v: f64| {
            json!({"id": format!("hr-{t}"), "version": 1, "timestamp": t, "timezone_offset": 0,
                   "type": "heartrate", "unit": "bpm", "value": v, "source": {"provider": "oura", "type": "ring"}})
        };
        let (a, b) = (hr("07:00", 60.0), hr("07:05", 62.0));
        let change = |id: u128, resource, version, created, data| RecordChange {
            id: Uuid::from_u128(id),
            resource,
            version,
            created,
            data,
        };
        let changes = [
            change(1, Resource::Heartrate, 1, true, &a),
            change(2, Resource::Workouts, 2, false, &workout),
            change(3, Resource::Heartrate, 1, true, &b),
            change(4, Resource::Recovery, 1, true, &recovery),
        ];
        let events = Envelope::daily(&c, &changes);
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "daily.data.workouts.updated",
                "daily.data.recovery.created",
                "daily.data.heartrate.created"
            ]
        );
        // A summary is Junction's model, with our id, version and provider id kept.
        let w = &events[0].data;
        assert_eq!(w["id"], "w");
        assert_eq!(w["version"], 2);
        assert_eq!(w["provider_id"], "9");
        assert_eq!(w["calendar_date"], "2026-11-21", "the local day");
        assert_eq!(w["average_hr"], 140);
        assert_eq!(w["source"], json!({"provider": "oura", "type": "ring"}));
        assert!(w["created_at"].is_string() && w["updated_at"].is_string());
        assert_eq!(events[1].data, recovery, "recovery goes as stored");
        assert_eq!(
            events[0].id,
            crate::ids::daily_event_id("daily.data.workouts.updated", Uuid::from_u128(2), 2)
        );
        let samples = events[2].data["data"].as_array().unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[1]["value"], 62.0);
        assert_eq!(samples[1]["record_id"], "hr-07:05");
        assert!(
            samples[1].get("id").is_none(),
            "Junction's sample id is an integer"
        );
        assert_eq!(events[2].data["source"]["provider"], "oura");
        assert_eq!(
            Envelope::daily(&c, &changes)[2].id,
            events[2].id,
            "a replay yields the same ids"
        );
        let fewer = Envelope::daily(&c, &changes[..2]);
        assert_ne!(fewer[1].id, events[2].id, "another batch, another id");
        assert!(Envelope::daily(&c, &[]).is_empty());
    }

    #[test]
    fn test_and_example_events() {
        let t = Envelope::webhook_test(Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        assert_eq!(t.event_type, "webhook.test");
        assert_eq!(t.data["endpoint_id"], Uuid::from_u128(3).to_string());
        assert!(t.user_id.is_none());
        let user = (Uuid::from_u128(4), "u".to_string());
        let e = Envelope::example(
            Uuid::from_u128(5),
            EventType::DailyCreated(Resource::Sleep),
            Uuid::from_u128(2),
            Some(user),
        );
        assert_eq!(e.data["user_id"], Uuid::from_u128(4).to_string());
        assert_eq!(e.event_type, "daily.data.sleep.created");
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
