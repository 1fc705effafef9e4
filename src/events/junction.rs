//! Our stored records in Junction's models (`ClientFacingSleep`,
//! `ClientFacingActivity`, `ClientFacingWorkout`, `ClientFacingBody`,
//! `ClientFacingProfile` and the `ClientFacing…Timeseries` samples of its Python SDK,
//! PyPI `vital` 2.1.569): one pure mapping that both the `/v2` API and the daily
//! webhooks use, so a record reads the same wherever an app meets it.
//!
//! The mapping: Junction's `date` is the record's day (or instant, for a body
//! measurement); `calendar_date` of a workout or measurement is its local day
//! (`timezone_offset` applied); counts and heart rates Junction types as integers are
//! rounded; `source.provider` is Junction's slug ([`junction_slug`]); `created_at` and
//! `updated_at` are the stored row's (or, in an event, the time the change was found).

use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{format_ms, Resource};

/// Our provider ids as Junction names them, where they differ: our WHOOP adapter speaks
/// WHOOP's OAuth API v2, which Junction calls `whoop_v2` (its `whoop` is the retired
/// password integration; see the `Providers` and `OAuthProviders` enums of its document).
pub const JUNCTION_SLUGS: &[(&str, &str)] = &[("whoop", "whoop_v2")];

/// A provider's slug as Junction names it.
pub fn junction_slug(id: &str) -> &str {
    JUNCTION_SLUGS
        .iter()
        .find(|(ours, _)| *ours == id)
        .map(|(_, theirs)| *theirs)
        .unwrap_or(id)
}

/// A stored record as the mapping reads it: whose provider (our id), its data as
/// stored, and its row's times (Unix milliseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stamped<'a> {
    pub provider: &'a str,
    pub data: &'a Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A stored record Junction's model cannot hold: it names the record and the field
/// (ids and field names only, nothing of the user's data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored {resource} record {record} lacks `{field}`, which Junction's model requires")]
pub struct Unexpressible {
    pub resource: Resource,
    pub record: String,
    pub field: String,
}

/// What a mapping yields.
pub type Mapped<T> = Result<T, Unexpressible>;

/// Reads a stored record's fields, naming the one missing when a required one is.
pub struct Fields<'a> {
    pub rec: Stamped<'a>,
    pub resource: Resource,
}

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.rec.data.get(key).filter(|v| !v.is_null())
    }
    fn string(&self, key: &str) -> Option<String> {
        self.get(key).and_then(Value::as_str).map(str::to_string)
    }
    fn float(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }
    /// A number Junction types as an integer, rounded.
    fn int(&self, key: &str) -> Option<i64> {
        self.float(key).map(|f| f.round() as i64)
    }
    /// The record lacks (or has unreadable) `key`, which Junction's model requires.
    fn missing(&self, key: &str) -> Unexpressible {
        Unexpressible {
            resource: self.resource,
            record: self.rec.data["id"].as_str().unwrap_or("?").to_string(),
            field: key.to_string(),
        }
    }
    fn required_string(&self, key: &str) -> Mapped<String> {
        self.string(key).ok_or_else(|| self.missing(key))
    }
    fn instant(&self, key: &str) -> Mapped<DateTime<FixedOffset>> {
        let raw = self.required_string(key)?;
        DateTime::parse_from_rfc3339(&raw).map_err(|_| self.missing(key))
    }
    fn id(&self) -> Mapped<String> {
        self.required_string("id")
    }
    fn user_id(&self) -> Mapped<String> {
        self.required_string("user_id")
    }
    /// The record's day as an instant (its midnight, UTC): Junction's `date`.
    fn day(&self) -> Mapped<String> {
        let day = self.required_string("calendar_date")?;
        chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
            .map(|d| {
                super::format_instant(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
            })
            .map_err(|_| self.missing("calendar_date"))
    }
    /// The local day of an instant field, by the record's `timezone_offset`.
    fn local_day(&self, key: &str) -> Mapped<String> {
        let t = self.instant(key)?;
        let offset = self
            .int("timezone_offset")
            .and_then(|o| FixedOffset::east_opt(o as i32))
            .unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"));
        Ok(t.with_timezone(&offset).date_naive().to_string())
    }
    pub fn source(&self) -> ClientFacingSource {
        ClientFacingSource {
            provider: junction_slug(self.rec.provider).to_string(),
            kind: self.rec.data["source"]["type"].as_str().map(str::to_string),
        }
    }
    fn created_at(&self) -> String {
        format_ms(self.rec.created_at)
    }
    fn updated_at(&self) -> String {
        format_ms(self.rec.updated_at)
    }
}

/// Junction's `ClientFacingSource`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacingSource {
    /// Junction's provider slug.
    pub provider: String,
    /// The kind of device: `ring`, `watch`, `scale`, `app`, …
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// Junction's `ClientFacingSleep`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacingSleep {
    id: String,
    user_id: String,
    #[schema(format = DateTime)]
    date: String,
    calendar_date: String,
    #[schema(format = DateTime)]
    bedtime_start: String,
    #[schema(format = DateTime)]
    bedtime_stop: String,
    /// `unknown`: the providers' sleep kinds are not kept.
    #[serde(rename = "type")]
    kind: String,
    timezone_offset: Option<i64>,
    /// Seconds, as every duration below.
    duration: i64,
    total: i64,
    awake: i64,
    light: i64,
    rem: i64,
    deep: i64,
    score: Option<i64>,
    hr_lowest: Option<i64>,
    hr_average: Option<i64>,
    hr_resting: Option<i64>,
    efficiency: Option<f64>,
    latency: Option<i64>,
    temperature_delta: Option<f64>,
    skin_temperature: Option<f64>,
    hr_dip: Option<f64>,
    /// `tentative` or `confirmed`.
    state: Option<String>,
    average_hrv: Option<f64>,
    respiratory_rate: Option<f64>,
    source: ClientFacingSource,
    #[schema(value_type = Option<Object>)]
    sleep_stream: Option<()>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

pub fn sleep_of(f: &Fields) -> Mapped<ClientFacingSleep> {
    Ok(ClientFacingSleep {
        id: f.id()?,
        user_id: f.user_id()?,
        date: f.day()?,
        calendar_date: f.required_string("calendar_date")?,
        bedtime_start: f.required_string("bedtime_start")?,
        bedtime_stop: f.required_string("bedtime_stop")?,
        kind: f
            .string("sleep_type")
            .unwrap_or_else(|| "unknown".to_string()),
        timezone_offset: f.int("timezone_offset"),
        // Junction's model requires every duration; one the provider reported as null
        // (Oura's `total_sleep_duration` and `awake_time` may be) is 0 seconds here.
        duration: f.int("duration").unwrap_or(0),
        total: f.int("total").unwrap_or(0),
        awake: f.int("awake").unwrap_or(0),
        light: f.int("light").unwrap_or(0),
        rem: f.int("rem").unwrap_or(0),
        deep: f.int("deep").unwrap_or(0),
        score: None,
        hr_lowest: f.int("hr_lowest"),
        hr_average: f.int("hr_average"),
        hr_resting: None,
        efficiency: f.float("efficiency"),
        latency: None,
        temperature_delta: None,
        skin_temperature: None,
        hr_dip: None,
        state: f.string("state"),
        average_hrv: f.float("average_hrv"),
        respiratory_rate: f.float("respiratory_rate"),
        source: f.source(),
        sleep_stream: None,
        created_at: f.created_at(),
        updated_at: f.updated_at(),
    })
}

/// Junction's `ClientFacingActivity`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacingActivity {
    id: String,
    user_id: String,
    #[schema(format = DateTime)]
    date: String,
    calendar_date: String,
    /// kcal.
    calories_total: Option<f64>,
    calories_active: Option<f64>,
    steps: Option<i64>,
    /// Metres.
    daily_movement: Option<f64>,
    distance: Option<f64>,
    low: Option<f64>,
    medium: Option<f64>,
    high: Option<f64>,
    source: ClientFacingSource,
    floors_climbed: Option<i64>,
    time_zone: Option<String>,
    timezone_offset: Option<i64>,
    #[schema(value_type = Option<Object>)]
    heart_rate: Option<()>,
    wheelchair_use: Option<bool>,
    wheelchair_push: Option<i64>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

pub fn activity_of(f: &Fields) -> Mapped<ClientFacingActivity> {
    Ok(ClientFacingActivity {
        id: f.id()?,
        user_id: f.user_id()?,
        date: f.day()?,
        calendar_date: f.required_string("calendar_date")?,
        calories_total: f.float("calories_total"),
        calories_active: f.float("calories_active"),
        steps: f.int("steps"),
        daily_movement: f.float("daily_movement"),
        distance: None,
        low: None,
        medium: None,
        high: None,
        source: f.source(),
        floors_climbed: None,
        time_zone: None,
        timezone_offset: f.int("timezone_offset"),
        heart_rate: None,
        wheelchair_use: None,
        wheelchair_push: None,
        created_at: f.created_at(),
        updated_at: f.updated_at(),
    })
}

/// Junction's `ClientFacingSport`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacingSport {
    /// Always 0: Junction's numeric sport ids are its own and not known here.
    id: i64,
    name: String,
    slug: String,
}

/// Junction's `ClientFacingWorkout`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacingWorkout {
    id: String,
    user_id: String,
    title: Option<String>,
    timezone_offset: Option<i64>,
    average_hr: Option<i64>,
    max_hr: Option<i64>,
    /// Metres.
    distance: Option<f64>,
    calendar_date: String,
    #[schema(format = DateTime)]
    time_start: String,
    #[schema(format = DateTime)]
    time_end: String,
    calories: Option<f64>,
    sport: Option<ClientFacingSport>,
    hr_zones: Option<Vec<i64>>,
    /// Seconds.
    moving_time: Option<i64>,
    total_elevation_gain: Option<f64>,
    elev_high: Option<f64>,
    elev_low: Option<f64>,
    /// Metres per second.
    average_speed: Option<f64>,
    max_speed: Option<f64>,
    average_watts: Option<f64>,
    device_watts: Option<f64>,
    max_watts: Option<f64>,
    weighted_average_watts: Option<f64>,
    steps: Option<i64>,
    #[schema(value_type = Option<Object>)]
    map: Option<()>,
    provider_id: String,
    source: ClientFacingSource,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

pub fn workout_of(f: &Fields) -> Mapped<ClientFacingWorkout> {
    let sport = f.get("sport").and_then(|sp| {
        Some(ClientFacingSport {
            id: 0,
            name: sp["name"].as_str()?.to_string(),
            slug: sp["slug"].as_str()?.to_string(),
        })
    });
    Ok(ClientFacingWorkout {
        id: f.id()?,
        user_id: f.user_id()?,
        title: f.string("title"),
        timezone_offset: f.int("timezone_offset"),
        average_hr: f.int("average_hr"),
        max_hr: f.int("max_hr"),
        distance: f.float("distance"),
        calendar_date: f.local_day("time_start")?,
        time_start: f.required_string("time_start")?,
        time_end: f.required_string("time_end")?,
        calories: f.float("calories"),
        sport,
        hr_zones: None,
        moving_time: f.int("moving_time"),
        total_elevation_gain: f.float("total_elevation_gain"),
        elev_high: None,
        elev_low: None,
        average_speed: f.float("average_speed"),
        max_speed: f.float("max_speed"),
        average_watts: None,
        device_watts: None,
        max_watts: None,
        weighted_average_watts: None,
        steps: None,
        map: None,
        provider_id: f.required_string("provider_id")?,
        source: f.source(),
        created_at: f.created_at(),
        updated_at: f.updated_at(),
    })
}

/// Junction's `ClientFacingBody`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacingBody {
    id: String,
    user_id: String,
    /// When it was measured.
    #[schema(format = DateTime)]
    date: String,
    calendar_date: String,
    /// Kilograms.
    weight: Option<f64>,
    /// Per cent.
    fat: Option<f64>,
    water_percentage: Option<f64>,
    muscle_mass_percentage: Option<f64>,
    visceral_fat_index: Option<f64>,
    bone_mass_percentage: Option<f64>,
    body_mass_index: Option<f64>,
    lean_body_mass_kilogram: Option<f64>,
    waist_circumference_centimeter: Option<f64>,
    source: ClientFacingSource,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

pub fn body_of(f: &Fields) -> Mapped<ClientFacingBody> {
    Ok(ClientFacingBody {
        id: f.id()?,
        user_id: f.user_id()?,
        date: f.required_string("measured_at")?,
        calendar_date: f.local_day("measured_at")?,
        weight: f.float("weight"),
        fat: f.float("fat"),
        water_percentage: None,
        muscle_mass_percentage: None,
        visceral_fat_index: None,
        bone_mass_percentage: None,
        body_mass_index: None,
        lean_body_mass_kilogram: None,
        waist_circumference_centimeter: None,
        source: f.source(),
        created_at: f.created_at(),
        updated_at: f.updated_at(),
    })
}

/// A day's recovery (WHOOP): no Junction model has it, so this one is ours, in the
/// same style.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacingRecovery {
    id: String,
    user_id: String,
    #[schema(format = DateTime)]
    date: String,
    calendar_date: String,
    /// 0–100.
    recovery_score: Option<i64>,
    resting_hr: Option<i64>,
    /// Milliseconds.
    average_hrv: Option<f64>,
    /// Per cent.
    spo2: Option<f64>,
    /// °C.
    skin_temperature: Option<f64>,
    state: Option<String>,
    source: ClientFacingSource,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

pub fn recovery_of(f: &Fields) -> Mapped<ClientFacingRecovery> {
    Ok(ClientFacingRecovery {
        id: f.id()?,
        user_id: f.user_id()?,
        date: f.day()?,
        calendar_date: f.required_string("calendar_date")?,
        recovery_score: f.int("recovery_score"),
        resting_hr: f.int("resting_hr"),
        average_hrv: f.float("average_hrv"),
        spo2: f.float("spo2"),
        skin_temperature: f.float("skin_temperature"),
        state: f.string("state"),
        source: f.source(),
        created_at: f.created_at(),
        updated_at: f.updated_at(),
    })
}

/// Junction's `ClientFacingProfile`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacingProfile {
    id: String,
    user_id: String,
    /// Centimetres (stored in metres).
    height: Option<i64>,
    birth_date: Option<String>,
    wheelchair_use: Option<bool>,
    /// `female`, `male`, `other` or `unknown`.
    gender: Option<String>,
    /// `female`, `male` or `other`.
    sex: Option<String>,
    source: ClientFacingSource,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

pub fn profile_of(f: &Fields) -> Mapped<ClientFacingProfile> {
    Ok(ClientFacingProfile {
        id: f.id()?,
        user_id: f.user_id()?,
        height: f.float("height").map(|m| (m * 100.0).round() as i64),
        birth_date: f.string("birth_date"),
        wheelchair_use: None,
        gender: None,
        sex: f.string("sex"),
        source: f.source(),
        created_at: f.created_at(),
        updated_at: f.updated_at(),
    })
}

/// Junction's `ClientFacingDevice`: a device a provider lists for the user.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacingDevice {
    id: String,
    user_id: String,
    /// Junction's provider slug.
    provider: String,
    /// One of Junction's `ClientFacingDeviceSourceType` values (`automatic` for a
    /// continuous glucose monitor, `watch`, `ring`, `phone`, …, `unknown`).
    source_type: String,
    /// The provider's app the device reports through, where it names one.
    app_id: Option<String>,
    device_manufacturer: Option<String>,
    device_model: Option<String>,
    device_version: Option<String>,
    /// The provider's id of the device (Dexcom's is hashed per client).
    device_id: Option<String>,
}

impl ClientFacingDevice {
    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
}

pub fn device_of(f: &Fields) -> Mapped<ClientFacingDevice> {
    Ok(ClientFacingDevice {
        id: f.id()?,
        user_id: f.user_id()?,
        provider: junction_slug(f.rec.provider).to_string(),
        source_type: f
            .string("source_type")
            .unwrap_or_else(|| "unknown".to_string()),
        app_id: f.string("app_id"),
        device_manufacturer: f.string("device_manufacturer"),
        device_model: f.string("device_model"),
        device_version: f.string("device_version"),
        device_id: f.string("device_id"),
    })
}

/// One sample: the fields Junction's `ClientFacing…Timeseries` models share (`start`
/// and `end`, which its interval resources such as steps have, only for those), and
/// `sensor_location`, which only its `ClientFacingBodyTemperatureSample` and
/// `ClientFacingBodyTemperatureDeltaSample` have, only when known.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacingTimeseriesSample {
    timezone_offset: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    /// `bpm`, `mmol/L`, `count`, `ms`, `%`, `°C`, `kcal`, `m`, …
    unit: String,
    #[schema(format = DateTime)]
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    end: Option<String>,
    value: f64,
    /// Where a body temperature (or its delta) was taken: one of Junction's
    /// `ClientFacingBodyTemperature(Delta)SampleSensorLocation` values (`armpit`, `mouth`,
    /// `wrist`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    sensor_location: Option<String>,
}

pub fn sample_of(f: &Fields) -> Mapped<ClientFacingTimeseriesSample> {
    let interval = f.resource.is_interval();
    let timestamp = f.required_string("timestamp")?;
    Ok(ClientFacingTimeseriesSample {
        timezone_offset: f.int("timezone_offset"),
        kind: f.string("type"),
        unit: f.required_string("unit")?,
        // Junction's interval samples require both ends; a stored sample without them
        // is an instant, so it starts and ends at its timestamp.
        start: interval.then(|| f.string("start").unwrap_or_else(|| timestamp.clone())),
        end: interval.then(|| f.string("end").unwrap_or_else(|| timestamp.clone())),
        timestamp,
        value: f.float("value").ok_or_else(|| f.missing("value"))?,
        sensor_location: matches!(
            f.resource,
            Resource::BodyTemperature | Resource::BodyTemperatureDelta
        )
        .then(|| f.string("sensor_location"))
        .flatten(),
    })
}

/// A summary record (sleep, activity, workout, body, profile) or a device as Junction's
/// model,
/// with our `version` and `provider_id` kept beside Junction's fields (its models
/// allow extra fields); `None` for a resource Junction has no summary model of
/// (recovery, and the timeseries, which travel as samples).
pub fn summary(resource: Resource, rec: Stamped<'_>) -> Option<Mapped<Value>> {
    let f = Fields { rec, resource };
    let mapped = match resource {
        Resource::Sleep => sleep_of(&f).map(to_value),
        Resource::Activity => activity_of(&f).map(to_value),
        Resource::Workouts => workout_of(&f).map(to_value),
        Resource::Body => body_of(&f).map(to_value),
        Resource::Profile => profile_of(&f).map(to_value),
        Resource::Devices => device_of(&f).map(to_value),
        // Recovery has no Junction model; timeseries travel as samples.
        _ => return None,
    };
    Some(mapped.map(|mut v| {
        if let Value::Object(m) = &mut v {
            for key in ["version", "provider_id"] {
                if let Some(x) = f.get(key) {
                    m.entry(key).or_insert_with(|| x.clone());
                }
            }
        }
        v
    }))
}

/// A timeseries sample as Junction's model, with our record id as `record_id` and our
/// `version` beside it: Junction's own `id` field of a sample is a deprecated integer
/// (`id: Optional[int]` in its SDK's `ClientFacing…Timeseries`), which a UUID would
/// fail, so ours travels under another name.
pub fn sample(resource: Resource, rec: Stamped<'_>) -> Mapped<Value> {
    let f = Fields { rec, resource };
    let mut v = to_value(sample_of(&f)?);
    if let Value::Object(m) = &mut v {
        for (ours, key) in [("id", "record_id"), ("version", "version")] {
            if let Some(x) = f.get(ours) {
                m.insert(key.to_string(), x.clone());
            }
        }
    }
    Ok(v)
}

/// Junction's `ClientFacingSource` of a record, as JSON.
pub fn source(resource: Resource, rec: Stamped<'_>) -> Value {
    to_value(Fields { rec, resource }.source())
}

fn to_value<T: Serialize>(t: T) -> Value {
    // Serialising these plain structs (strings, numbers, options) cannot fail.
    serde_json::to_value(t).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(provider: &'static str, data: Value) -> Stamped<'static> {
        Stamped {
            provider,
            // A test's record lives as long as the test binary: simplest for a borrow.
            data: Box::leak(Box::new(data)),
            created_at: 1_790_000_000_000,
            updated_at: 1_790_000_100_000,
        }
    }

    #[test]
    fn sleep_takes_junctions_integers_and_day() {
        let r = rec(
            "oura",
            json!({"id": "a", "user_id": "u", "calendar_date": "2026-11-01",
                   "bedtime_start": "2026-10-31T22:18:44+00:00", "bedtime_stop": "2026-11-01T06:14:44+00:00",
                   "duration": 28560, "total": 25470, "awake": 3090, "light": 14070, "rem": 6090, "deep": 5310,
                   "hr_average": 53.6, "hr_lowest": 47, "efficiency": 89, "source": {"provider": "oura", "type": "ring"}}),
        );
        let s = sleep_of(&Fields {
            rec: r,
            resource: Resource::Sleep,
        })
        .unwrap();
        assert_eq!(s.hr_average, Some(54));
        assert_eq!(s.date, "2026-11-01T00:00:00+00:00");
        assert_eq!(s.kind, "unknown");
        assert_eq!(s.source.kind.as_deref(), Some("ring"));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["type"], "unknown");
        assert!(v["created_at"].as_str().unwrap().ends_with("+00:00"));
    }

    #[test]
    fn a_workout_takes_its_local_day_and_whoop_its_junction_slug() {
        let r = rec(
            "whoop",
            json!({"id": "w", "user_id": "u", "provider_id": "9", "time_start": "2026-10-20T23:30:00+00:00",
                   "time_end": "2026-10-21T00:30:00+00:00", "timezone_offset": 7200, "average_hr": 139.8,
                   "sport": {"name": "Running", "slug": "running"}, "source": {"provider": "whoop", "type": "wrist"}}),
        );
        let w = workout_of(&Fields {
            rec: r,
            resource: Resource::Workouts,
        })
        .unwrap();
        assert_eq!(w.calendar_date, "2026-10-21");
        assert_eq!(w.average_hr, Some(140));
        assert_eq!(w.source.provider, "whoop_v2");
        assert_eq!(w.sport.unwrap().slug, "running");
    }

    fn sample_json(resource: Resource, data: Value) -> Value {
        sample(resource, rec("google_health", data)).unwrap()
    }

    #[test]
    fn interval_samples_carry_both_ends_and_instants_neither() {
        let at = "2026-11-20T07:00:00+00:00";
        let base = |unit: &str| json!({"id": "s", "version": 1, "timestamp": at, "timezone_offset": 3600, "unit": unit, "value": 12.5});
        let mut d = base("m");
        d["start"] = json!(at);
        d["end"] = json!("2026-11-20T07:05:00+00:00");
        let v = sample_json(Resource::Distance, d);
        assert_eq!(
            (v["start"].clone(), v["end"].clone(), v["unit"].clone()),
            (json!(at), json!("2026-11-20T07:05:00+00:00"), json!("m"))
        );
        assert_eq!(v["record_id"], "s");
        // An interval sample stored without its ends is an instant: both ends are its
        // timestamp, as Junction's model requires them.
        let v = sample_json(Resource::CaloriesActive, base("kcal"));
        assert_eq!(
            (v["start"].clone(), v["end"].clone()),
            (json!(at), json!(at))
        );
        for r in [Resource::BloodOxygen, Resource::RespiratoryRate] {
            let v = sample_json(r, base("%"));
            assert!(v.get("start").is_none() && v.get("end").is_none(), "{r}");
            assert_eq!(v["value"], 12.5);
        }
    }

    #[test]
    fn only_a_body_temperature_names_its_sensor_location_and_only_when_known() {
        let at = "2026-11-20T07:00:00+00:00";
        let mut t = json!({"id": "t", "timestamp": at, "unit": "°C", "value": 36.7, "sensor_location": "mouth"});
        let v = sample_json(Resource::BodyTemperature, t.clone());
        assert_eq!(v["sensor_location"], "mouth");
        assert_eq!(v["unit"], "°C");
        t["sensor_location"] = Value::Null;
        let v = sample_json(Resource::BodyTemperature, t.clone());
        assert!(v.get("sensor_location").is_none(), "unknown: left out");
        t["sensor_location"] = json!("wrist");
        let v = sample_json(Resource::BodyTemperatureDelta, t.clone());
        assert_eq!(v["sensor_location"], "wrist", "a delta's site, too");
        let v = sample_json(Resource::BloodOxygen, t);
        assert!(
            v.get("sensor_location").is_none(),
            "not a field of blood oxygen"
        );
        // A sample with no value is not a zero: Junction's model cannot hold it.
        let e = sample(
            Resource::BloodOxygen,
            rec(
                "google_health",
                json!({"id": "x", "timestamp": at, "unit": "%"}),
            ),
        )
        .unwrap_err();
        assert_eq!(e.field, "value");
    }

    #[test]
    fn timeseries_and_recovery_have_no_summary_model() {
        let r = rec(
            "oura",
            json!({"id": "a", "user_id": "u", "calendar_date": "2026-11-01"}),
        );
        for resource in Resource::ALL {
            let none = summary(resource, r).is_none();
            assert_eq!(
                none,
                resource.is_timeseries() || resource == Resource::Recovery,
                "{resource}"
            );
        }
    }

    #[test]
    fn a_device_is_junctions_client_facing_device_with_our_id_and_version() {
        let d = json!({"id": "d1", "user_id": "u", "provider_id": "iOS/G7/g7/ab", "version": 2,
                       "source": {"provider": "dexcom", "type": "cgm"}, "source_type": "automatic",
                       "device_manufacturer": "Dexcom", "device_model": "g7", "device_version": null,
                       "device_id": "ab", "app_id": "G7", "display_device": "iOS"});
        let v = summary(Resource::Devices, rec("dexcom", d))
            .unwrap()
            .unwrap();
        assert_eq!(v["id"], "d1");
        assert_eq!(
            v["provider"], "dexcom",
            "Junction's device names its provider by slug"
        );
        assert_eq!(v["source_type"], "automatic");
        assert_eq!(v["device_model"], "g7");
        assert!(v["device_version"].is_null());
        assert_eq!(
            (v["version"].clone(), v["provider_id"].clone()),
            (json!(2), json!("iOS/G7/g7/ab"))
        );
        assert!(v.get("display_device").is_none(), "not Junction's field");
        // A device without a source type is `unknown`, which Junction's enum has.
        let v = summary(
            Resource::Devices,
            rec("whoop", json!({"id": "d2", "user_id": "u"})),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (v["source_type"].clone(), v["provider"].clone()),
            (json!("unknown"), json!("whoop_v2"))
        );
        let e = summary(Resource::Devices, rec("dexcom", json!({"id": "d3"})))
            .unwrap()
            .unwrap_err();
        assert_eq!(e.field, "user_id");
    }

    #[test]
    fn a_record_without_a_required_field_is_an_error_naming_it_not_a_panic() {
        let r = rec("oura", json!({"id": "a", "user_id": "u"}));
        let e = sleep_of(&Fields {
            rec: r,
            resource: Resource::Sleep,
        })
        .unwrap_err();
        assert_eq!(e.field, "calendar_date");
        assert_eq!(e.record, "a");
    }
}
