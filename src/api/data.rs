//! The data API: stored normalised records, with the same ids their events carried.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{NaiveDate, TimeZone, Utc};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use uuid::Uuid;

use super::{parse_id, Auth, Query};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::events::Resource;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Range {
    /// A date (`2026-11-01`) or an RFC 3339 instant.
    #[param(schema_with = date_or_instant)]
    start_date: String,
    /// A date (its whole day is included) or an RFC 3339 instant, after `start_date`;
    /// open-ended if absent.
    #[serde(default)]
    #[param(schema_with = date_or_instant)]
    end_date: Option<String>,
    /// Only this provider's records.
    #[serde(default)]
    provider: Option<String>,
}

/// What [`bound`] reads: a date or an RFC 3339 instant.
fn date_or_instant() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    let string = |format| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(format)))
    };
    AnyOfBuilder::new()
        .item(string(KnownFormat::Date))
        .item(string(KnownFormat::DateTime))
        .build()
        .into()
}

/// `{"<resource>": [records]}`: the records of one summary resource, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Summary(BTreeMap<String, Vec<Value>>);

#[derive(Debug, Serialize, ToSchema)]
pub struct Timeseries {
    data: Vec<Value>,
}

/// A date (`2026-11-01`, whole day) or an RFC 3339 instant, as Unix ms. An end date
/// includes its whole day.
pub(super) fn bound(raw: &str, field: &str, end: bool) -> ApiResult<i64> {
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let d = if end { d.succ_opt().unwrap_or(d) } else { d };
        return Ok(Utc
            .from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
            .timestamp_millis());
    }
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::validation(format!(
                "`{field}` must be a date (2026-11-01) or an RFC 3339 instant"
            ))
        })
}

/// The team's user named in a path (404 when not theirs).
async fn team_user(s: &AppState, team: Uuid, user: &str) -> ApiResult<Uuid> {
    let user = parse_id(user, "user")?;
    s.store
        .get_user(team, user)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(user)
}

async fn records(
    s: &AppState,
    team: Uuid,
    user: &str,
    resource: &str,
    range: Range,
    timeseries: bool,
) -> ApiResult<Vec<Value>> {
    let user = team_user(s, team, user).await?;
    let r: Resource = resource
        .parse()
        .map_err(|e: String| ApiError::not_found(&e))?;
    if !r.is_history() {
        return Err(ApiError::validation(format!(
            "`{r}` is read from /v1/{r}/{{user_id}}"
        )));
    }
    if r.is_timeseries() != timeseries {
        let route = if timeseries {
            "/v1/summary/{resource}/{user_id}"
        } else {
            "/v1/timeseries/{user_id}/{resource}"
        };
        return Err(ApiError::validation(format!("`{r}` is read from {route}")));
    }
    let start = bound(&range.start_date, "start_date", false)?;
    let end = match range.end_date.as_deref() {
        Some(e) => bound(e, "end_date", true)?,
        None => i64::MAX,
    };
    if end <= start {
        return Err(ApiError::validation(
            "`end_date` must be after `start_date`",
        ));
    }
    Ok(s.store
        .list_records(team, user, r, start, end, range.provider.as_deref())
        .await?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DevicesParams {
    /// Only this provider's devices.
    #[serde(default)]
    provider: Option<String>,
}

/// `{"devices": [records]}`: every device the user's providers list, as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct Devices {
    devices: Vec<Value>,
}

/// The user's devices: what their providers list now, not a range of history, so the
/// whole list (each with the id its `provider.device.*` events carried).
#[utoipa::path(get, path = "/devices/{user_id}", tag = "data", params(("user_id" = Uuid, Path), DevicesParams),
    responses((status = 200, description = "the stored devices", body = Devices)))]
pub async fn devices(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(user): Path<String>,
    Query(q): Query<DevicesParams>,
) -> ApiResult<Json<Devices>> {
    let user = team_user(&s, team.id, &user).await?;
    let devices = s
        .store
        .list_records(
            team.id,
            user,
            Resource::Devices,
            i64::MIN,
            i64::MAX,
            q.provider.as_deref(),
        )
        .await?;
    Ok(Json(Devices { devices }))
}

#[utoipa::path(get, path = "/summary/{resource}/{user_id}", tag = "data", params(("resource" = String, Path, description = "e.g. `sleep`, `activity`, `workouts`"), ("user_id" = Uuid, Path), Range),
    responses((status = 200, description = "the stored records, each with the id its events carried", body = Summary)))]
pub async fn summary(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path((resource, user)): Path<(String, String)>,
    Query(q): Query<Range>,
) -> ApiResult<Json<Summary>> {
    let data = records(&s, team.id, &user, &resource, q, false).await?;
    Ok(Json(Summary(BTreeMap::from([(resource, data)]))))
}

#[utoipa::path(get, path = "/timeseries/{user_id}/{resource}", tag = "data", params(("user_id" = Uuid, Path), ("resource" = String, Path, description = "e.g. `heartrate`, `glucose`"), Range),
    responses((status = 200, description = "the stored samples", body = Timeseries)))]
pub async fn timeseries(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path((user, resource)): Path<(String, String)>,
    Query(q): Query<Range>,
) -> ApiResult<Json<Timeseries>> {
    let data = records(&s, team.id, &user, &resource, q, true).await?;
    Ok(Json(Timeseries { data }))
}
