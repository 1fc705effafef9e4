//! `/v2/providers`, `/v2/summary/…` and `/v2/timeseries/…`: the stored records in
//! Junction's models (`ClientFacingSleep`, `ClientFacingActivity`,
//! `ClientFacingWorkout`, `ClientFacingBody`, `ClientFacingProfile` and the
//! `ClientFacing…Timeseries` samples of its Python SDK 2.1.569).
//!
//! The mapping from our records: Junction's `date` is the record's day (or instant,
//! for a body measurement); `calendar_date` of a workout or measurement is its local
//! day (`timezone_offset` applied); counts and heart rates Junction types as integers
//! are rounded; `source.provider` is Junction's slug; `created_at` and `updated_at` are
//! the stored row's. Ranges: a date `start_date` starts at its midnight, a date
//! `end_date` includes its whole day, as Junction documents for its summaries.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::super::data::bound;
use super::super::{Auth, Query};
use super::{field_provider, junction_slug, parse_user_id};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::events::{format_ms, Resource};
use crate::providers;
use crate::store::StampedRecord;

/// Junction's `ClientFacingProviderDetailed`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacingProviderDetailed {
    name: String,
    slug: String,
    description: String,
    /// Always empty: the gateway hosts no provider logos.
    logo: Option<String>,
    /// Always `oauth`.
    auth_type: Option<String>,
    /// What it shares, as Junction names resources (`recovery` is ours alone).
    supported_resources: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProvidersParams {
    /// Junction's filter by kind of source: every provider here is `provider`.
    #[serde(default)]
    source_type: Option<String>,
}

#[utoipa::path(get, path = "/providers", tag = "junction", operation_id = "v2_providers", params(ProvidersParams),
    responses((status = 200, description = "every provider", body = Vec<ClientFacingProviderDetailed>)))]
pub async fn providers(
    Auth(_): Auth,
    Query(q): Query<ProvidersParams>,
) -> Json<Vec<ClientFacingProviderDetailed>> {
    if q.source_type.as_deref().is_some_and(|t| t != "provider") {
        return Json(Vec::new());
    }
    Json(
        providers::registry()
            .iter()
            .map(|p| ClientFacingProviderDetailed {
                name: p.manifest.name.clone(),
                slug: junction_slug(p.id()).to_string(),
                description: super::link::description(p),
                logo: Some(String::new()),
                auth_type: Some("oauth".to_string()),
                supported_resources: Some(
                    p.manifest
                        .resources
                        .iter()
                        .map(|r| r.name.to_string())
                        .collect(),
                ),
            })
            .collect(),
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Range {
    /// `YYYY-MM-DD` (from its midnight) or an RFC 3339 instant.
    start_date: String,
    /// `YYYY-MM-DD` (its whole day included) or an RFC 3339 instant; open-ended if absent.
    #[serde(default)]
    end_date: Option<String>,
    /// Only this provider's records (Junction's slug, or ours); empty for all.
    #[serde(default)]
    provider: Option<String>,
    /// Junction's paging cursors: every answer here is one whole page, so they are
    /// taken and ignored.
    #[serde(default)]
    #[allow(dead_code)] // see above
    cursor: Option<String>,
    #[serde(default)]
    #[allow(dead_code)] // see above
    next_cursor: Option<String>,
}

/// The user's stored records of `resource` in the range, with their rows' times.
async fn stamped(
    s: &AppState,
    team: Uuid,
    user: &str,
    resource: Resource,
    q: &Range,
) -> ApiResult<(Uuid, Vec<StampedRecord>)> {
    let user = parse_user_id(user)?;
    s.store
        .get_user(team, user)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let start = bound(&q.start_date, "start_date", false)?;
    let end = match q.end_date.as_deref() {
        Some(e) => bound(e, "end_date", true)?,
        None => i64::MAX,
    };
    if end <= start {
        return Err(ApiError::validation(
            "`end_date` must be after `start_date`",
        ));
    }
    let provider = match q.provider.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => field_provider(p, "provider")?.id(),
        None => "",
    };
    let records = s
        .store
        .list_stamped_records(team, user, resource, start, end, provider)
        .await?;
    Ok((user, records))
}

/// Reads a stored record's fields, naming the one missing when a required one is.
struct Fields<'a> {
    rec: &'a StampedRecord,
    resource: Resource,
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
    /// A stored record Junction's model cannot hold: a server error, which names the
    /// record and the field (ids and field names only, nothing of the user's data).
    fn missing(&self, key: &str) -> ApiError {
        let message = format!(
            "stored {} record {} lacks `{key}`, which Junction's model requires",
            self.resource,
            self.rec.data["id"].as_str().unwrap_or("?")
        );
        tracing::error!(%message, "record not expressible in Junction's model");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "unexpressible_record",
            message,
        )
    }
    fn required_string(&self, key: &str) -> ApiResult<String> {
        self.string(key).ok_or_else(|| self.missing(key))
    }
    fn instant(&self, key: &str) -> ApiResult<DateTime<FixedOffset>> {
        let raw = self.required_string(key)?;
        DateTime::parse_from_rfc3339(&raw).map_err(|_| self.missing(key))
    }
    fn id(&self) -> ApiResult<String> {
        self.required_string("id")
    }
    fn user_id(&self) -> ApiResult<String> {
        self.required_string("user_id")
    }
    /// The record's day as an instant (its midnight, UTC): Junction's `date`.
    fn day(&self) -> ApiResult<String> {
        let day = self.required_string("calendar_date")?;
        chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
            .map(|d| {
                crate::events::format_instant(
                    d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc(),
                )
            })
            .map_err(|_| self.missing("calendar_date"))
    }
    /// The local day of an instant field, by the record's `timezone_offset`.
    fn local_day(&self, key: &str) -> ApiResult<String> {
        let t = self.instant(key)?;
        let offset = self
            .int("timezone_offset")
            .and_then(|o| FixedOffset::east_opt(o as i32))
            .unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"));
        Ok(t.with_timezone(&offset).date_naive().to_string())
    }
    fn source(&self) -> ClientFacingSource {
        ClientFacingSource {
            provider: junction_slug(&self.rec.provider).to_string(),
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
    provider: String,
    /// The kind of device: `ring`, `watch`, `scale`, `app`, …
    #[serde(rename = "type")]
    kind: Option<String>,
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

fn sleep_of(f: &Fields) -> ApiResult<ClientFacingSleep> {
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

fn activity_of(f: &Fields) -> ApiResult<ClientFacingActivity> {
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

fn workout_of(f: &Fields) -> ApiResult<ClientFacingWorkout> {
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

fn body_of(f: &Fields) -> ApiResult<ClientFacingBody> {
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

fn recovery_of(f: &Fields) -> ApiResult<ClientFacingRecovery> {
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

fn profile_of(f: &Fields) -> ApiResult<ClientFacingProfile> {
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

fn mapped<T>(
    records: &[StampedRecord],
    resource: Resource,
    map: fn(&Fields) -> ApiResult<T>,
) -> ApiResult<Vec<T>> {
    records
        .iter()
        .map(|rec| map(&Fields { rec, resource }))
        .collect()
}

/// `{"sleep": [...]}`: Junction's `ClientSleepResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientSleepResponse {
    sleep: Vec<ClientFacingSleep>,
}

/// `{"activity": [...]}`: Junction's `ClientActivityResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientActivityResponse {
    activity: Vec<ClientFacingActivity>,
}

/// `{"workouts": [...]}`: Junction's `ClientWorkoutResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientWorkoutResponse {
    workouts: Vec<ClientFacingWorkout>,
}

/// `{"body": [...]}`: Junction's `ClientBodyResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientBodyResponse {
    body: Vec<ClientFacingBody>,
}

/// `{"recovery": [...]}`, in the style of the others.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientRecoveryResponse {
    recovery: Vec<ClientFacingRecovery>,
}

#[utoipa::path(get, path = "/summary/sleep/{user_id}", tag = "junction", operation_id = "v2_sleep", params(("user_id" = Uuid, Path), Range),
    responses((status = 200, description = "the user's nights, oldest first", body = ClientSleepResponse)))]
pub async fn sleep(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(user): Path<String>,
    Query(q): Query<Range>,
) -> ApiResult<Json<ClientSleepResponse>> {
    let (_, records) = stamped(&s, team.id, &user, Resource::Sleep, &q).await?;
    Ok(Json(ClientSleepResponse {
        sleep: mapped(&records, Resource::Sleep, sleep_of)?,
    }))
}

#[utoipa::path(get, path = "/summary/activity/{user_id}", tag = "junction", operation_id = "v2_activity", params(("user_id" = Uuid, Path), Range),
    responses((status = 200, description = "the user's days, oldest first", body = ClientActivityResponse)))]
pub async fn activity(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(user): Path<String>,
    Query(q): Query<Range>,
) -> ApiResult<Json<ClientActivityResponse>> {
    let (_, records) = stamped(&s, team.id, &user, Resource::Activity, &q).await?;
    Ok(Json(ClientActivityResponse {
        activity: mapped(&records, Resource::Activity, activity_of)?,
    }))
}

#[utoipa::path(get, path = "/summary/workouts/{user_id}", tag = "junction", operation_id = "v2_workouts", params(("user_id" = Uuid, Path), Range),
    responses((status = 200, description = "the user's workouts, oldest first", body = ClientWorkoutResponse)))]
pub async fn workouts(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(user): Path<String>,
    Query(q): Query<Range>,
) -> ApiResult<Json<ClientWorkoutResponse>> {
    let (_, records) = stamped(&s, team.id, &user, Resource::Workouts, &q).await?;
    Ok(Json(ClientWorkoutResponse {
        workouts: mapped(&records, Resource::Workouts, workout_of)?,
    }))
}

#[utoipa::path(get, path = "/summary/body/{user_id}", tag = "junction", operation_id = "v2_body", params(("user_id" = Uuid, Path), Range),
    responses((status = 200, description = "the user's measurements, oldest first", body = ClientBodyResponse)))]
pub async fn body(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(user): Path<String>,
    Query(q): Query<Range>,
) -> ApiResult<Json<ClientBodyResponse>> {
    let (_, records) = stamped(&s, team.id, &user, Resource::Body, &q).await?;
    Ok(Json(ClientBodyResponse {
        body: mapped(&records, Resource::Body, body_of)?,
    }))
}

/// WHOOP's daily recovery: not in Junction's API, served in the style of its summaries.
#[utoipa::path(get, path = "/summary/recovery/{user_id}", tag = "junction", operation_id = "v2_recovery", params(("user_id" = Uuid, Path), Range),
    responses((status = 200, description = "the user's recovery days, oldest first", body = ClientRecoveryResponse)))]
pub async fn recovery(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(user): Path<String>,
    Query(q): Query<Range>,
) -> ApiResult<Json<ClientRecoveryResponse>> {
    let (_, records) = stamped(&s, team.id, &user, Resource::Recovery, &q).await?;
    Ok(Json(ClientRecoveryResponse {
        recovery: mapped(&records, Resource::Recovery, recovery_of)?,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProfileParams {
    /// Only this provider's profile (Junction's slug, or ours); empty for any.
    #[serde(default)]
    provider: Option<String>,
}

/// The user's latest stored profile (404 when no provider has shared one).
#[utoipa::path(get, path = "/summary/profile/{user_id}", tag = "junction", operation_id = "v2_profile", params(("user_id" = Uuid, Path), ProfileParams),
    responses((status = 200, description = "the latest profile", body = ClientFacingProfile)))]
pub async fn profile(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(user): Path<String>,
    Query(q): Query<ProfileParams>,
) -> ApiResult<Json<ClientFacingProfile>> {
    let range = Range {
        start_date: "1970-01-01".to_string(),
        end_date: None,
        provider: q.provider,
        cursor: None,
        next_cursor: None,
    };
    let (_, records) = stamped(&s, team.id, &user, Resource::Profile, &range).await?;
    let latest = records
        .iter()
        .max_by_key(|r| r.updated_at)
        .ok_or_else(|| ApiError::not_found("profile"))?;
    Ok(Json(profile_of(&Fields {
        rec: latest,
        resource: Resource::Profile,
    })?))
}

/// One sample: the fields Junction's `ClientFacing…Timeseries` models share (`start`
/// and `end`, which its interval resources such as steps have, only when stored).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacingTimeseriesSample {
    timezone_offset: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    /// `bpm`, `mmol/L`, `count`, `ms`, …
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
}

fn sample_of(f: &Fields) -> ApiResult<ClientFacingTimeseriesSample> {
    let interval = f.resource == Resource::Steps;
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
    })
}

fn timeseries_resource(raw: &str) -> ApiResult<Resource> {
    raw.parse::<Resource>()
        .ok()
        .filter(|r| r.is_timeseries())
        .ok_or_else(|| ApiError::not_found(&format!("timeseries resource `{raw}`")))
}

#[utoipa::path(get, path = "/timeseries/{user_id}/{resource}", tag = "junction", operation_id = "v2_timeseries",
    params(("user_id" = Uuid, Path), ("resource" = String, Path, description = "e.g. `heartrate`, `glucose`"), Range),
    responses((status = 200, description = "the samples, oldest first", body = Vec<ClientFacingTimeseriesSample>)))]
pub async fn timeseries(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path((user, resource)): Path<(String, String)>,
    Query(q): Query<Range>,
) -> ApiResult<Json<Vec<ClientFacingTimeseriesSample>>> {
    let r = timeseries_resource(&resource)?;
    let (_, records) = stamped(&s, team.id, &user, r, &q).await?;
    Ok(Json(mapped(&records, r, sample_of)?))
}

/// One source's samples: Junction's `Grouped…` item.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimeseriesGroup {
    source: ClientFacingSource,
    data: Vec<ClientFacingTimeseriesSample>,
}

/// Junction's `Grouped…Response`: samples grouped by provider, then by source. Every
/// answer is one whole page, so `next` and `next_cursor` are `null`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupedTimeseriesResponse {
    groups: BTreeMap<String, Vec<TimeseriesGroup>>,
    next: Option<String>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/timeseries/{user_id}/{resource}/grouped", tag = "junction", operation_id = "v2_timeseries_grouped",
    params(("user_id" = Uuid, Path), ("resource" = String, Path, description = "e.g. `heartrate`, `glucose`"), Range),
    responses((status = 200, description = "the samples by provider and source", body = GroupedTimeseriesResponse)))]
pub async fn timeseries_grouped(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path((user, resource)): Path<(String, String)>,
    Query(q): Query<Range>,
) -> ApiResult<Json<GroupedTimeseriesResponse>> {
    let r = timeseries_resource(&resource)?;
    let (_, records) = stamped(&s, team.id, &user, r, &q).await?;
    let mut groups: BTreeMap<String, Vec<TimeseriesGroup>> = BTreeMap::new();
    for rec in &records {
        let f = Fields { rec, resource: r };
        let source = f.source();
        let sample = sample_of(&f)?;
        let of_provider = groups.entry(source.provider.clone()).or_default();
        match of_provider
            .iter_mut()
            .find(|g| g.source.kind == source.kind)
        {
            Some(g) => g.data.push(sample),
            None => of_provider.push(TimeseriesGroup {
                source,
                data: vec![sample],
            }),
        }
    }
    Ok(Json(GroupedTimeseriesResponse {
        groups,
        next: None,
        next_cursor: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(provider: &str, data: Value) -> StampedRecord {
        StampedRecord {
            provider: provider.to_string(),
            data,
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
            rec: &r,
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
            rec: &r,
            resource: Resource::Workouts,
        })
        .unwrap();
        assert_eq!(w.calendar_date, "2026-10-21");
        assert_eq!(w.average_hr, Some(140));
        assert_eq!(w.source.provider, "whoop_v2");
        assert_eq!(w.sport.unwrap().slug, "running");
    }

    #[test]
    fn a_record_without_a_required_field_is_a_server_error_not_a_panic() {
        let r = rec("oura", json!({"id": "a", "user_id": "u"}));
        let e = sleep_of(&Fields {
            rec: &r,
            resource: Resource::Sleep,
        })
        .unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    }
}
