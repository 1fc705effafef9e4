//! `/v2/providers`, `/v2/summary/…` and `/v2/timeseries/…`: the stored records in
//! Junction's models, by the one mapping the daily webhooks use too
//! ([`crate::events::junction`]); `created_at` and `updated_at` are the stored row's.
//! Ranges: a date `start_date` starts at its midnight, a date
//! `end_date` includes its whole day, as Junction documents for its summaries.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::super::data::bound;
use super::super::{Auth, Query};
use super::{field_provider, junction_slug, parse_user_id, ClientFacingProvider};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::events::junction::{
    activity_of, body_of, device_of, profile_of, recovery_of, sample_of, sleep_of, workout_of,
    ClientFacingActivity, ClientFacingBody, ClientFacingDevice, ClientFacingProfile,
    ClientFacingRecovery, ClientFacingSleep, ClientFacingSource, ClientFacingTimeseriesSample,
    ClientFacingWorkout, Fields, Mapped, Stamped, Unexpressible,
};
use crate::events::Resource;
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

/// The team's user named in a path (422 when not a UUID, 404 when not theirs).
async fn team_user(s: &AppState, team: Uuid, user: &str) -> ApiResult<Uuid> {
    let user = parse_user_id(user)?;
    s.store
        .get_user(team, user)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(user)
}

/// A `provider` query filter as the store takes it: our id, or empty for all.
fn provider_filter(raw: Option<&str>) -> ApiResult<&'static str> {
    Ok(match raw.filter(|p| !p.is_empty()) {
        Some(p) => field_provider(p, "provider")?.id(),
        None => "",
    })
}

/// The user's stored records of `resource` in the range, with their rows' times.
async fn stamped(
    s: &AppState,
    team: Uuid,
    user: &str,
    resource: Resource,
    q: &Range,
) -> ApiResult<(Uuid, Vec<StampedRecord>)> {
    let user = team_user(s, team, user).await?;
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
    let provider = provider_filter(q.provider.as_deref())?;
    let records = s
        .store
        .list_stamped_records(team, user, resource, start, end, provider)
        .await?;
    Ok((user, records))
}

/// A stored record Junction's model cannot hold is a server error naming the record
/// and the field (ids and field names only, nothing of the user's data).
impl From<Unexpressible> for ApiError {
    fn from(e: Unexpressible) -> ApiError {
        let message = e.to_string();
        tracing::error!(%message, "record not expressible in Junction's model");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "unexpressible_record",
            message,
        )
    }
}

/// A stored row as the mapping reads it.
fn fields(rec: &StampedRecord, resource: Resource) -> Fields<'_> {
    Fields {
        rec: Stamped {
            provider: &rec.provider,
            data: &rec.data,
            created_at: rec.created_at,
            updated_at: rec.updated_at,
        },
        resource,
    }
}

fn mapped<T>(
    records: &[StampedRecord],
    resource: Resource,
    map: fn(&Fields) -> Mapped<T>,
) -> ApiResult<Vec<T>> {
    Ok(records
        .iter()
        .map(|rec| map(&fields(rec, resource)))
        .collect::<Mapped<Vec<T>>>()?)
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
    #[param(schema_with = super::provider_param_schema)]
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
    Ok(Json(profile_of(&fields(latest, Resource::Profile))?))
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
        let f = fields(rec, r);
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

/// The user's stored devices (of one provider when `provider` names one): what their
/// providers list now, so no range.
async fn stored_devices(
    s: &AppState,
    team: Uuid,
    user: &str,
    provider: Option<&str>,
) -> ApiResult<Vec<StampedRecord>> {
    let user = team_user(s, team, user).await?;
    let provider = provider_filter(provider)?;
    Ok(s.store
        .list_stamped_records(team, user, Resource::Devices, i64::MIN, i64::MAX, provider)
        .await?)
}

/// Junction's `GET /v2/user/{user_id}/device`: every device of the user, in Junction's
/// `ClientFacingDevice`.
#[utoipa::path(get, path = "/user/{user_id}/device", tag = "junction", operation_id = "v2_user_devices",
    params(("user_id" = Uuid, Path)),
    responses((status = 200, description = "the user's devices", body = Vec<ClientFacingDevice>)))]
pub async fn user_devices(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(user): Path<String>,
) -> ApiResult<Json<Vec<ClientFacingDevice>>> {
    let records = stored_devices(&s, team.id, &user, None).await?;
    Ok(Json(mapped(&records, Resource::Devices, device_of)?))
}

/// Junction's `GET /v2/user/{user_id}/device/{device_id}`: one device by its `id` (the
/// one its `provider.device.*` events carried); 404 when the user has no such device.
#[utoipa::path(get, path = "/user/{user_id}/device/{device_id}", tag = "junction", operation_id = "v2_user_device",
    params(("user_id" = Uuid, Path), ("device_id" = String, Path)),
    responses((status = 200, description = "the device", body = ClientFacingDevice)))]
pub async fn user_device(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path((user, device)): Path<(String, String)>,
) -> ApiResult<Json<ClientFacingDevice>> {
    let records = stored_devices(&s, team.id, &user, None).await?;
    let rec = records
        .iter()
        .find(|r| r.data["id"].as_str() == Some(device.as_str()))
        .ok_or_else(|| ApiError::not_found("device"))?;
    Ok(Json(device_of(&fields(rec, Resource::Devices))?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RawDevicesParams {
    /// Only this provider's devices (Junction's slug, or ours); empty for all.
    #[serde(default)]
    #[param(schema_with = super::provider_param_schema)]
    provider: Option<String>,
}

/// Junction's `DeviceV2InDb`: a device as the provider described it, normalised (our
/// stored record), with its provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceV2InDb {
    /// The stored device: Junction's device fields and what the provider adds
    /// (Dexcom: `display_device`, `alert_schedules`).
    #[schema(value_type = Object)]
    data: serde_json::Value,
    /// The provider's key of the device.
    provider_id: String,
    user_id: String,
    /// Junction's numeric source id; the gateway numbers no sources: always 0.
    source_id: i64,
    id: String,
    source: ClientFacingProvider,
}

/// Junction's `RawDevices`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RawDevices {
    devices: Vec<DeviceV2InDb>,
}

/// Junction's `GET /v2/summary/devices/{user_id}/raw`.
#[utoipa::path(get, path = "/summary/devices/{user_id}/raw", tag = "junction", operation_id = "v2_devices_raw",
    params(("user_id" = Uuid, Path), RawDevicesParams),
    responses((status = 200, description = "the user's devices as their providers described them", body = RawDevices)))]
pub async fn devices_raw(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(user): Path<String>,
    Query(q): Query<RawDevicesParams>,
) -> ApiResult<Json<RawDevices>> {
    let records = stored_devices(&s, team.id, &user, q.provider.as_deref()).await?;
    let devices = records
        .iter()
        .map(|rec| {
            let f = fields(rec, Resource::Devices);
            let device = device_of(&f)?;
            let provider = providers::find(&rec.provider).ok_or_else(|| Unexpressible {
                resource: Resource::Devices,
                record: device.id().to_string(),
                field: "provider".to_string(),
            })?;
            Ok(DeviceV2InDb {
                data: rec.data.clone(),
                provider_id: rec.data["provider_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                user_id: device.user_id().to_string(),
                source_id: 0,
                id: device.id().to_string(),
                source: ClientFacingProvider::of(provider),
            })
        })
        .collect::<Mapped<Vec<_>>>()?;
    Ok(Json(RawDevices { devices }))
}
