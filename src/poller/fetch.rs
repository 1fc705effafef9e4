//! Talking to a provider: valid access tokens (refreshed before they expire, and once
//! on a 401, with one process spending a single-use refresh token while the others wait
//! for its result) and one HTTP request, read into a body or a classified error plus
//! what the reply's headers said about the provider's rate limits.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::oauth::{OAuthClients, TokenError};
use crate::providers::{self, Provider, ProviderError, RateReport};
use crate::seal::{Purpose, Sealer};
use crate::store::{Connection, SealedTokens, Store};

/// Refresh tokens this long before they expire.
const REFRESH_MARGIN_MS: i64 = 60_000;

pub struct Fetcher {
    pub(super) store: Store,
    pub(super) sealer: Sealer,
    pub(super) http: reqwest::Client,
    pub(super) oauth: OAuthClients,
    pub(super) metrics: Arc<Metrics>,
    pub(super) clock: Clock,
}

impl Fetcher {
    /// A valid access token, refreshed first if it is about to expire.
    pub async fn access_token(
        &self,
        p: &'static Provider,
        conn: &mut Connection,
        force: bool,
    ) -> Result<String, ProviderError> {
        let expiring = conn
            .token_expires_at
            .map(|t| t - REFRESH_MARGIN_MS <= self.clock.now_ms())
            .unwrap_or(false);
        if force || expiring {
            self.refresh(p, conn).await?;
        }
        self.sealer
            .open(Purpose::ProviderAccessToken, &conn.access_token_sealed)
            .map_err(|e| ProviderError::Refused(e.to_string()))
    }

    /// Refreshes the connection's tokens. One worker spends a single-use refresh token;
    /// the others wait for its result.
    async fn refresh(
        &self,
        p: &'static Provider,
        conn: &mut Connection,
    ) -> Result<(), ProviderError> {
        let transient = |e: sqlx::Error| ProviderError::Transient(e.to_string());
        for _ in 0..50 {
            if self
                .store
                .lock_refresh(conn.id, conn.token_version, 30_000)
                .await
                .map_err(transient)?
            {
                let Some(sealed) = conn.refresh_token_sealed.clone() else {
                    self.store
                        .unlock_refresh(conn.id)
                        .await
                        .map_err(transient)?;
                    return Err(ProviderError::Unauthorized(
                        "the access token expired and the provider gave no refresh token".into(),
                    ));
                };
                let refresh = self
                    .sealer
                    .open(Purpose::ProviderRefreshToken, &sealed)
                    .map_err(|e| ProviderError::Refused(e.to_string()))?;
                match self.oauth.for_provider(p).refresh(&refresh).await {
                    Ok(t) => {
                        let sealed = SealedTokens {
                            access: self.sealer.seal(Purpose::ProviderAccessToken, &t.access),
                            refresh: t
                                .refresh
                                .as_deref()
                                .map(|r| self.sealer.seal(Purpose::ProviderRefreshToken, r)),
                            expires_at: t
                                .expires_in
                                .map(|d| self.clock.now_ms() + d.as_millis() as i64),
                        };
                        self.store
                            .swap_tokens(conn.id, conn.token_version, &sealed)
                            .await
                            .map_err(transient)?;
                        self.metrics.token_refresh(p.id(), "success");
                        tracing::info!(connection = %conn.id, provider = p.id(), "token refreshed");
                    }
                    Err(e) => {
                        self.store
                            .unlock_refresh(conn.id)
                            .await
                            .map_err(transient)?;
                        let outcome = if matches!(e, TokenError::Definitive(_)) {
                            "refused"
                        } else {
                            "transient"
                        };
                        self.metrics.token_refresh(p.id(), outcome);
                        return Err(match e {
                            TokenError::Definitive(m) => {
                                ProviderError::Unauthorized(format!("refresh refused: {m}"))
                            }
                            TokenError::Transient(m) => ProviderError::Transient(m),
                        });
                    }
                }
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let fresh = self
                .store
                .get_connection(conn.id)
                .await
                .map_err(transient)?
                .ok_or_else(|| ProviderError::Refused("connection gone".into()))?;
            if fresh.token_version > conn.token_version {
                *conn = fresh;
                return Ok(());
            }
        }
        Err(ProviderError::Transient(
            "timed out waiting for another worker's token refresh".into(),
        ))
    }

    /// Sends one request; the reply's body on success, and what its headers said about
    /// the provider's rate limits either way.
    pub async fn fetch(
        &self,
        p: &'static Provider,
        token: &str,
        req: &providers::PageRequest,
    ) -> (Result<Vec<u8>, ProviderError>, RateReport) {
        let base = self.oauth.endpoints(p).base_url;
        let url = format!("{}{}", base.trim_end_matches('/'), req.path);
        let method = match reqwest::Method::from_bytes(req.method.as_bytes()) {
            Ok(m) => m,
            Err(e) => {
                let e = ProviderError::Refused(format!("bad method {}: {e}", req.method));
                return (Err(e), RateReport::default());
            }
        };
        // A JSON body, else form fields; a bodiless step of a chain (Polar's `POST` that
        // opens a transaction, its `PUT` commit) sends none.
        let mut r = self.http.request(method, &url);
        if let Some(body) = &req.json {
            r = r.json(body);
        } else if !req.form.is_empty() {
            r = r.form(&req.form);
        }
        r = r.query(&req.query).bearer_auth(token);
        let resp = match r.send().await {
            Ok(resp) => resp,
            Err(e) => {
                self.metrics.provider_request(p.id(), "transport_error");
                return (
                    Err(ProviderError::Transient(e.to_string())),
                    RateReport::default(),
                );
            }
        };
        let status = resp.status().as_u16();
        self.metrics.provider_request(p.id(), &status.to_string());
        let retry_after = crate::http::retry_after(resp.headers());
        let report = p.adapter.rate_report(resp.headers());
        let body = match resp.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => return (Err(ProviderError::Transient(e.to_string())), report),
        };
        let result = if (200..300).contains(&status) {
            match p.adapter.in_band_error(retry_after, &body) {
                Some(e) => Err(e),
                None => Ok(body),
            }
        } else {
            Err(p.adapter.classify_error(status, retry_after, &body))
        };
        (result, report)
    }
}
