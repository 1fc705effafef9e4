//! `GET/POST /v1/providers/{provider}/notifications`: where providers push. No API
//! key: each request is verified the way its provider documents (its adapter's
//! `verify_push`), and refused with 401 (changing nothing) when it cannot be. A
//! verified notification is recorded once with what it caused (a pull queued ahead of
//! scheduled work, a record removed, a connection ended: `Store::receive_notice`) and
//! answered at once; the pulling happens afterwards, in the poller.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::ApiError;
use crate::events::{Envelope, RecordRemoval};
use crate::providers::push::{NoticeAction, PushError, PushReply, PushRequest, PushSecrets};
use crate::providers::{self, Provider};
use crate::states::ConnectionErrorType;
use crate::store::{
    Connection, IncomingNotice, NoticeEvents, NoticeOutcome, NoticeWork, DEAUTHORIZED_MESSAGE,
};

/// What a notification caused, one entry per change it named.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationReceipt {
    /// Per change: `pulled`, `deleted`, `deauthorized`, `ignored`, `unknown_user` or
    /// `duplicate` (seen before; nothing done again).
    outcomes: Vec<NoticeOutcome>,
}

fn pushing(provider: &str) -> Result<&'static Provider, ApiError> {
    providers::find(provider)
        .filter(|p| p.manifest.push.is_some())
        .ok_or_else(|| ApiError::not_found("provider that pushes"))
}

fn query_map(raw: Option<String>) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// What verifying `p`'s requests needs (see [`crate::poller::subscribe::Subscriber`]).
async fn push_secrets(state: &AppState, p: &Provider) -> Result<PushSecrets, ApiError> {
    state
        .subscriber
        .secrets(p)
        .await
        .map_err(ApiError::internal)
}

fn refused(state: &AppState, p: &Provider, e: PushError) -> ApiError {
    let outcome = match e {
        PushError::Unverified(_) | PushError::UnknownKey(_) => "unverified",
        PushError::Malformed(_) => "malformed",
    };
    state.metrics.notification(p.id(), outcome);
    tracing::info!(provider = p.id(), error = %e, "notification refused");
    match e {
        PushError::Unverified(m) | PushError::UnknownKey(m) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unverified_notification",
            format!("the notification could not be verified: {m}"),
        ),
        PushError::Malformed(m) => ApiError::bad_request(format!("malformed notification: {m}")),
    }
}

/// Answers a provider's subscription handshake (Strava's `hub.challenge`, Oura's
/// `challenge`), with the verify token we gave it.
#[utoipa::path(get, path = "/providers/{provider}/notifications", tag = "push", security(()),
    params(("provider" = String, Path, description = "a provider that pushes (`GET /v1/providers`)")),
    responses(
        (status = 200, description = "the challenge, echoed as the provider expects (JSON), or an empty acknowledgement of a reachability check (Withings)",
            content((Object = "application/json"), (String = "text/plain"))),
        (status = 401, description = "the verify token is not ours", body = crate::error::ErrorBody),
        (status = 404, description = "no such provider, or it makes no handshake", body = crate::error::ErrorBody),
    ))]
pub async fn handshake(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let p = pushing(&provider)?;
    let secrets = push_secrets(&state, p).await?;
    let query = query_map(raw);
    let req = push_request(&state, &headers, &query, &[]);
    match p.adapter.push_handshake(&req, &secrets) {
        None => Err(ApiError::not_found("subscription handshake")),
        Some(Ok(reply)) => {
            tracing::info!(provider = p.id(), "subscription handshake answered");
            Ok(as_response(reply))
        }
        Some(Err(e)) => Err(refused(&state, p, e)),
    }
}

/// A request to the notifications route as the adapter reads it, at the store's time.
fn push_request<'a>(
    state: &AppState,
    headers: &'a HeaderMap,
    query: &'a BTreeMap<String, String>,
    body: &'a [u8],
) -> PushRequest<'a> {
    PushRequest {
        headers,
        query,
        body,
        now: crate::poller::plan::utc(state.store.clock().now_ms()),
    }
}

fn as_response(reply: PushReply) -> Response {
    (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK),
        [(axum::http::header::CONTENT_TYPE, reply.content_type)],
        reply.body,
    )
        .into_response()
}

/// Receives a provider's notification: verified as the provider documents, recorded
/// once, and turned into a targeted pull (or a deletion, or the end of a connection).
#[utoipa::path(post, path = "/providers/{provider}/notifications", tag = "push", security(()),
    params(("provider" = String, Path, description = "a provider that pushes (`GET /v1/providers`)")),
    request_body(content = String, description = "the provider's notification, as it sends it", content_type = "application/json"),
    responses(
        (status = 200, description = "verified and recorded (also for a user not connected here, so the provider stops retrying), with what each change caused; or an empty acknowledgement of a provider's check of the callback (Withings)",
            content((NotificationReceipt = "application/json"), (String = "text/plain"))),
        (status = 201, description = "a provider's verification of the callback passed (Google Health)"),
        (status = 204, description = "verified and recorded, acknowledged as the provider expects (Google Health)"),
        (status = 400, description = "verified, but not a notification this provider sends", body = crate::error::ErrorBody),
        (status = 401, description = "not provably from the provider; nothing changed", body = crate::error::ErrorBody),
        (status = 404, description = "no such provider, or it does not push", body = crate::error::ErrorBody),
    ))]
pub async fn receive(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = pushing(&provider)?;
    let secrets = push_secrets(&state, p).await?;
    let query = query_map(raw);
    let req = push_request(&state, &headers, &query, &body);
    // A provider checking the callback (Google's verification POSTs) rather than
    // notifying.
    match p.adapter.push_handshake(&req, &secrets) {
        Some(Ok(reply)) => return Ok(as_response(reply)),
        Some(Err(e)) => return Err(refused(&state, p, e)),
        None => {}
    }
    verify(&state, p, &req, &secrets)
        .await
        .map_err(|e| refused(&state, p, e))?;
    let notices = p
        .adapter
        .parse_push(&req)
        .map_err(|e| refused(&state, p, e))?;
    // Where the proof is the user itself (Withings signs nothing), a notification must
    // name a user we subscribed.
    let scheme = p.manifest.push.as_ref().map(|push| push.signature);
    if scheme == Some(crate::providers::push::SignatureScheme::SubscribedUser) {
        for n in &notices {
            let subscribed = state
                .store
                .user_subscribed(p.id(), &n.user)
                .await
                .map_err(ApiError::internal)?;
            if !subscribed {
                return Err(refused(
                    &state,
                    p,
                    PushError::Unverified(format!("no subscription for user {}", n.user)),
                ));
            }
        }
    }
    let now = state.store.clock().now_ms();
    let mut outcomes = Vec::with_capacity(notices.len());
    for n in &notices {
        let work = match &n.action {
            NoticeAction::Changed {
                resource,
                record,
                window,
            } => match p.resource(*resource) {
                None => NoticeWork::Ignore,
                Some(spec) => NoticeWork::Pull {
                    resource: *resource,
                    window: crate::poller::plan::pull_window(p, window.as_ref(), now),
                    // One record where the adapter reads one; else the range.
                    record: record
                        .clone()
                        .filter(|r| p.adapter.record_request(spec, r).is_some()),
                },
            },
            NoticeAction::Deleted { resource, record } => NoticeWork::Delete {
                resource: *resource,
                record: record.clone(),
            },
            NoticeAction::Deauthorized => NoticeWork::Deauthorize,
            NoticeAction::Ignored(why) => {
                tracing::debug!(provider = p.id(), why = %why, "notification ignored");
                NoticeWork::Ignore
            }
        };
        let outcome = state
            .store
            .receive_notice(
                &IncomingNotice {
                    provider: p.id(),
                    key: &n.key,
                    user: &n.user,
                    work,
                },
                &Events(p),
            )
            .await
            .map_err(ApiError::internal)?;
        state.metrics.notification(p.id(), outcome.as_str());
        if outcome == NoticeOutcome::UnknownUser {
            tracing::info!(provider = p.id(), user = %n.user, "notification for a user not connected here; acknowledged");
        }
        outcomes.push(outcome);
    }
    // The provider's acknowledgement (its status), with what each change caused where
    // the provider expects no body of its own.
    let ack = p.adapter.push_ack();
    if !ack.body.is_empty() {
        return Ok(as_response(ack));
    }
    let status = StatusCode::from_u16(ack.status).unwrap_or(StatusCode::OK);
    Ok((status, Json(NotificationReceipt { outcomes })).into_response())
}

/// [`crate::providers::Adapter::verify_push`], once more with the provider's published
/// keys fetched anew when the signature names a key not among those held (the provider
/// rotated its keys; the refetch is rate-limited by the subscriber).
async fn verify(
    state: &AppState,
    p: &'static Provider,
    req: &PushRequest<'_>,
    secrets: &PushSecrets,
) -> Result<(), PushError> {
    match p.adapter.verify_push(req, secrets) {
        Err(PushError::UnknownKey(why)) => {
            match state.subscriber.secrets_with_fresh_keys(p).await {
                Ok(Some(fresh)) => p.adapter.verify_push(req, &fresh),
                Ok(None) => Err(PushError::UnknownKey(why)),
                Err(e) => {
                    tracing::warn!(provider = p.id(), error = %e, "reading push secrets failed");
                    Err(PushError::UnknownKey(why))
                }
            }
        }
        other => other,
    }
}

/// The events a notification's effects publish.
struct Events(&'static Provider);

impl NoticeEvents for Events {
    fn deleted(&self, conn: &Connection, removal: &RecordRemoval) -> Envelope {
        Envelope::deleted(&conn.event_ref(self.0.event_ref()), removal)
    }

    fn deauthorized(&self, conn: &Connection) -> Envelope {
        Envelope::connection_error(
            &conn.event_ref(self.0.event_ref()),
            ConnectionErrorType::DeregisteredPerProvider,
            DEAUTHORIZED_MESSAGE,
        )
    }
}
