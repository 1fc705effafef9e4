//! OAuth 2 with providers, through the `oauth2` crate: authorize URLs (with a sealed,
//! expiring `state` and PKCE where the provider supports it), code exchange and token
//! refresh. Provider quirks stay in the adapters: the HTTP function given to `oauth2`
//! passes each token reply through [`Adapter::token_reply`] (Withings wraps replies and
//! reports errors inside a 200) and keeps the reply's extra fields (Strava's athlete,
//! Withings' userid) for [`Adapter::external_user_id`]; where the reply names no user,
//! the exchange asks the provider once ([`Adapter::identity_request`], Google Health).
//! It also makes the calls some providers need around the token's life: registering
//! the user after the exchange and de-registering them on deregistration
//! ([`Adapter::register_user`], Polar).

use std::collections::HashMap;
use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse,
    TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::providers::{Provider, ProviderCall, ProviderError};
use crate::seal::Sealer;
use crate::store::Connection;

/// The token reply's fields beyond the standard ones.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Extra {
    #[serde(flatten)]
    pub fields: HashMap<String, Value>,
}
impl ExtraTokenFields for Extra {}

type TokenReply = StandardTokenResponse<Extra, BasicTokenType>;
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    TokenReply,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Where a provider is reached and with which client credentials.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub client_id: String,
    pub client_secret: String,
    pub authorize_url: String,
    pub token_url: String,
    pub base_url: String,
    /// Where the provider publishes the keys its notifications are signed with (the
    /// manifest's `push.keys_url`), where it has them.
    pub push_keys_url: Option<String>,
}

impl Endpoints {
    /// Each URL from its own `WEARBRIDGE_<ID>_AUTHORIZE_URL`, `_TOKEN_URL`, `_BASE_URL`
    /// or `_PUSH_KEYS_URL` when set; otherwise from the fixture server when
    /// `fixture_root` is set (the keys at the path the provider publishes them under,
    /// below `{root}/{id}`), else from the manifest. Credentials from
    /// `WEARBRIDGE_<ID>_CLIENT_ID` / `_CLIENT_SECRET`.
    pub fn resolve(p: &Provider, fixture_root: Option<&str>) -> Endpoints {
        Endpoints::resolve_in(p, fixture_root, &|name| std::env::var(name).ok())
    }

    /// [`Endpoints::resolve`] with the environment read through `var`.
    fn resolve_in(
        p: &Provider,
        fixture_root: Option<&str>,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Endpoints {
        let id = p.id();
        // Empty means unset, as for every option (see `config::empty_env_is_unset`).
        let env = |k: &str| {
            var(&format!("WEARBRIDGE_{}_{k}", id.to_ascii_uppercase())).filter(|v| !v.is_empty())
        };
        // A provider's own setting is the more specific one, so it wins over the root: one
        // provider can be pointed at its sandbox while the others play from fixtures.
        let keys_url = p
            .manifest
            .push
            .as_ref()
            .and_then(|push| push.keys_url.clone());
        let (authorize_url, token_url, base_url, push_keys_url) = match fixture_root {
            Some(root) => {
                let root = root.trim_end_matches('/');
                (
                    format!("{root}/{id}/oauth/authorize"),
                    format!("{root}/{id}/oauth/token"),
                    format!("{root}/{id}"),
                    keys_url
                        .as_deref()
                        .and_then(|u| url::Url::parse(u).ok())
                        .map(|u| format!("{root}/{id}{}", u.path())),
                )
            }
            None => (
                p.manifest.authorize_url.clone(),
                p.manifest.token_url.clone(),
                p.manifest.base_url.clone(),
                keys_url,
            ),
        };
        Endpoints {
            client_id: env("CLIENT_ID").unwrap_or_else(|| format!("wearbridge-{id}")),
            client_secret: env("CLIENT_SECRET")
                .unwrap_or_else(|| format!("wearbridge-{id}-secret")),
            authorize_url: env("AUTHORIZE_URL").unwrap_or(authorize_url),
            token_url: env("TOKEN_URL").unwrap_or(token_url),
            base_url: env("BASE_URL").unwrap_or(base_url),
            push_keys_url: env("PUSH_KEYS_URL").or(push_keys_url),
        }
    }
}

/// Tokens as a provider issued them.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: Option<String>,
    pub expires_in: Option<Duration>,
    pub external_user_id: Option<String>,
}

/// Why an exchange or refresh failed; only `Definitive` errors a connection.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The provider refused the grant for good (`invalid_grant`, revoked access).
    #[error("the provider refused the grant: {0}")]
    Definitive(String),
    /// Network trouble or a provider outage: try again later.
    #[error("token request failed: {0}")]
    Transient(String),
}

/// Makes each provider's OAuth client with the gateway's settings: one HTTP client,
/// the fixture server's root when set, and the callback under the gateway's public URL.
/// The API uses it for the connect flow, the poller for refreshes.
#[derive(Clone)]
pub struct OAuthClients {
    http: reqwest::Client,
    fixture_root: Option<String>,
    public_url: String,
}

impl OAuthClients {
    pub fn new(
        http: reqwest::Client,
        fixture_root: Option<String>,
        public_url: String,
    ) -> OAuthClients {
        OAuthClients {
            http,
            fixture_root,
            public_url,
        }
    }

    /// Where `p` is reached, and with which credentials.
    pub fn endpoints(&self, p: &Provider) -> Endpoints {
        Endpoints::resolve(p, self.fixture_root.as_deref())
    }

    /// `p`'s OAuth client.
    pub fn for_provider(&self, p: &'static Provider) -> OAuth {
        OAuth {
            provider: p,
            endpoints: self.endpoints(p),
            redirect_uri: format!(
                "{}/v1/oauth/callback/{}",
                self.public_url.trim_end_matches('/'),
                p.id()
            ),
            http: self.http.clone(),
        }
    }
}

pub struct OAuth {
    pub provider: &'static Provider,
    pub endpoints: Endpoints,
    pub redirect_uri: String,
    pub http: reqwest::Client,
}

impl OAuth {
    fn client(&self) -> Result<OAuthClient, TokenError> {
        let bad =
            |e: oauth2::url::ParseError| TokenError::Definitive(format!("bad provider URL: {e}"));
        Ok(
            oauth2::Client::new(ClientId::new(self.endpoints.client_id.clone()))
                .set_client_secret(ClientSecret::new(self.endpoints.client_secret.clone()))
                .set_auth_uri(AuthUrl::new(self.endpoints.authorize_url.clone()).map_err(bad)?)
                .set_token_uri(TokenUrl::new(self.endpoints.token_url.clone()).map_err(bad)?)
                .set_redirect_uri(RedirectUrl::new(self.redirect_uri.clone()).map_err(bad)?)
                .set_auth_type(if self.provider.manifest.token_auth == "basic" {
                    AuthType::BasicAuth
                } else {
                    AuthType::RequestBody
                }),
        )
    }

    /// A fresh PKCE verifier if the provider supports PKCE (kept by the caller until
    /// the code exchange).
    pub fn new_pkce_verifier(&self) -> Option<String> {
        self.provider
            .manifest
            .pkce
            .then(|| PkceCodeChallenge::new_random_sha256().1.secret().clone())
    }

    /// The provider's authorize URL for `state` (with the S256 challenge of
    /// `pkce_verifier`, if given).
    pub fn authorize_url(
        &self,
        state: &str,
        pkce_verifier: Option<&str>,
    ) -> Result<String, TokenError> {
        let client = self.client()?;
        let m = &self.provider.manifest;
        // Scopes go as one value: some providers separate them with commas.
        let scope = m.scopes.join(&m.scope_separator);
        let state = state.to_string();
        let mut req = client
            .authorize_url(move || CsrfToken::new(state))
            .add_scope(Scope::new(scope));
        for (k, v) in &m.authorize_params {
            req = req.add_extra_param(k.as_str(), v.as_str());
        }
        if let Some(v) = pkce_verifier {
            req = req.set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(
                &PkceCodeVerifier::new(v.to_string()),
            ));
        }
        Ok(req.url().0.to_string())
    }

    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: Option<String>,
    ) -> Result<Tokens, TokenError> {
        let client = self.client()?;
        let mut req = client.exchange_code(AuthorizationCode::new(code.to_string()));
        for (k, v) in self.provider.adapter.token_params() {
            req = req.add_extra_param(*k, *v);
        }
        if let Some(v) = pkce_verifier {
            req = req.set_pkce_verifier(PkceCodeVerifier::new(v));
        }
        let http = self.http_fn();
        let reply = req.request_async(&http).await.map_err(classify)?;
        let mut tokens = self.tokens(reply);
        if tokens.external_user_id.is_none() {
            if let Some(id_req) = self.provider.adapter.identity_request() {
                tokens.external_user_id = Some(self.identify(&id_req, &tokens.access).await?);
            }
        }
        Ok(tokens)
    }

    /// Asks the provider who the user is ([`crate::providers::Adapter::identity_request`])
    /// with a fresh access token. Any failure fails the exchange: a connection without
    /// the provider's user id could never be matched to the provider's notifications.
    async fn identify(
        &self,
        req: &crate::providers::PageRequest,
        access: &str,
    ) -> Result<String, TokenError> {
        let url = format!(
            "{}{}",
            self.endpoints.base_url.trim_end_matches('/'),
            req.path
        );
        let resp = self
            .http
            .get(&url)
            .query(&req.query)
            .bearer_auth(access)
            .send()
            .await
            .map_err(|e| TokenError::Transient(format!("identity request failed: {e}")))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| TokenError::Transient(format!("identity request failed: {e}")))?;
        if !(200..300).contains(&status) {
            return Err(TokenError::Transient(format!(
                "identity request answered HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )));
        }
        self.provider
            .adapter
            .identity_user_id(&body)
            .map_err(|e| TokenError::Transient(format!("identity reply: {e}")))
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, TokenError> {
        let client = self.client()?;
        let token = RefreshToken::new(refresh_token.to_string());
        let mut req = client.exchange_refresh_token(&token);
        for (k, v) in self.provider.adapter.token_params() {
            req = req.add_extra_param(*k, *v);
        }
        let http = self.http_fn();
        let reply = req.request_async(&http).await.map_err(classify)?;
        Ok(self.tokens(reply))
    }

    /// Registers the user with the provider after the code exchange, if the provider
    /// asks for it; `Ok` means the connection may be created.
    pub async fn register_user(
        &self,
        tokens: &Tokens,
        member_id: &str,
    ) -> Result<(), ProviderError> {
        let adapter = self.provider.adapter.as_ref();
        let Some(call) = adapter.register_user(member_id, tokens.external_user_id.as_deref())
        else {
            return Ok(());
        };
        let (status, body) = self.call(&call, &tokens.access).await?;
        adapter.registration_reply(status, &body)
    }

    /// De-registers the user with the provider, if the provider asks for it.
    pub async fn deregister_user(
        &self,
        access_token: &str,
        external_user_id: Option<&str>,
    ) -> Result<(), ProviderError> {
        let adapter = self.provider.adapter.as_ref();
        let Some(call) = adapter.deregister_user(external_user_id) else {
            return Ok(());
        };
        match self.call(&call, access_token).await? {
            (200..=299, _) => Ok(()),
            (status, body) => Err(adapter.classify_error(status, None, &body)),
        }
    }

    /// One request with the user's token; any reply is returned with its status.
    async fn call(
        &self,
        call: &ProviderCall,
        token: &str,
    ) -> Result<(u16, Vec<u8>), ProviderError> {
        let url = format!(
            "{}{}",
            self.endpoints.base_url.trim_end_matches('/'),
            call.path
        );
        let method = reqwest::Method::from_bytes(call.method.as_bytes())
            .map_err(|e| ProviderError::Refused(format!("bad method {}: {e}", call.method)))?;
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(json) = &call.json {
            req = req.json(json);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ProviderError::Transient(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ProviderError::Transient(e.to_string()))?;
        Ok((status, body.to_vec()))
    }

    fn tokens(&self, reply: TokenReply) -> Tokens {
        let extra = serde_json::to_value(&reply.extra_fields().fields).unwrap_or(Value::Null);
        Tokens {
            access: reply.access_token().secret().clone(),
            refresh: reply.refresh_token().map(|r| r.secret().clone()),
            expires_in: reply.expires_in(),
            external_user_id: self.provider.adapter.external_user_id(&extra),
        }
    }

    /// The HTTP function `oauth2` calls, with the adapter's rewrite of token replies.
    #[allow(clippy::type_complexity)]
    fn http_fn(
        &self,
    ) -> impl Fn(
        oauth2::HttpRequest,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, std::io::Error>> + Send>,
    > + '_ {
        move |req: oauth2::HttpRequest| {
            let http = self.http.clone();
            let adapter: &'static dyn crate::providers::Adapter = self.provider.adapter.as_ref();
            let (parts, body) = req.into_parts();
            let fut = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send();
            let rewrite = move |status: u16, bytes: Vec<u8>| -> (u16, Vec<u8>) {
                match adapter.token_reply(status, &bytes) {
                    Ok(b) => (status, b),
                    // Restate a provider's own refusal the standard way.
                    Err(ProviderError::Unauthorized(m)) | Err(ProviderError::Refused(m)) | Err(ProviderError::ScopeNotGranted(m)) => {
                        (400, serde_json::json!({"error": "invalid_grant", "error_description": m}).to_string().into_bytes())
                    }
                    Err(e) => (502, serde_json::json!({"error": "temporarily_unavailable", "error_description": e.to_string()}).to_string().into_bytes()),
                }
            };
            Box::pin(async move {
                let resp = fut.await.map_err(std::io::Error::other)?;
                let status = resp.status().as_u16();
                let bytes = resp.bytes().await.map_err(std::io::Error::other)?.to_vec();
                let (status, bytes) = rewrite(status, bytes);
                oauth2::http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(bytes)
                    .map_err(std::io::Error::other)
            })
        }
    }
}

fn classify<E: std::error::Error + 'static>(
    e: RequestTokenError<E, BasicErrorResponse>,
) -> TokenError {
    match e {
        RequestTokenError::ServerResponse(r) => match r.error() {
            BasicErrorResponseType::InvalidGrant
            | BasicErrorResponseType::UnauthorizedClient
            | BasicErrorResponseType::InvalidClient => TokenError::Definitive(format!(
                "{}: {}",
                r.error(),
                r.error_description().cloned().unwrap_or_default()
            )),
            other => TokenError::Transient(format!(
                "{other}: {}",
                r.error_description().cloned().unwrap_or_default()
            )),
        },
        RequestTokenError::Request(e) => TokenError::Transient(e.to_string()),
        RequestTokenError::Parse(e, body) => TokenError::Transient(format!(
            "unreadable token reply ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )),
        RequestTokenError::Other(m) => TokenError::Transient(m),
    }
}

/// Deregistration's call to the provider (Polar's `DELETE /v3/users/{id}`), best effort:
/// the connection ends whatever the provider answers, so a failure is only logged.
pub async fn deregister_at_provider(oauth: &OAuth, sealer: &Sealer, conn: &Connection) {
    let token = match sealer.open(
        crate::seal::Purpose::ProviderAccessToken,
        &conn.access_token_sealed,
    ) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(connection = %conn.id, error = %e, "cannot open the access token to de-register");
            return;
        }
    };
    if let Err(e) = oauth
        .deregister_user(&token, conn.external_user_id.as_deref())
        .await
    {
        tracing::warn!(connection = %conn.id, provider = oauth.provider.id(), error = %e, "de-registering the user with the provider failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(root: Option<&str>, vars: &[(&str, &str)]) -> Endpoints {
        let p = crate::providers::find("oura").expect("oura is registered");
        Endpoints::resolve_in(p, root, &|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn the_manifest_applies_when_nothing_is_set() {
        let p = crate::providers::find("oura").expect("oura is registered");
        let e = resolve(None, &[]);
        assert_eq!(e.authorize_url, p.manifest.authorize_url);
        assert_eq!(e.token_url, p.manifest.token_url);
        assert_eq!(e.base_url, p.manifest.base_url);
        assert_eq!(e.client_id, "wearbridge-oura");
    }

    #[test]
    fn the_fixture_root_supplies_every_url_not_set_per_provider() {
        let e = resolve(Some("http://fx:1/"), &[]);
        assert_eq!(e.authorize_url, "http://fx:1/oura/oauth/authorize");
        assert_eq!(e.token_url, "http://fx:1/oura/oauth/token");
        assert_eq!(e.base_url, "http://fx:1/oura");
    }

    #[test]
    fn a_per_provider_url_wins_over_the_fixture_root_for_its_own_url_only() {
        let e = resolve(
            Some("http://fx:1"),
            &[
                ("WEARBRIDGE_OURA_BASE_URL", "https://sandbox.example/api"),
                // Another provider's setting is not Oura's.
                ("WEARBRIDGE_WHOOP_TOKEN_URL", "https://whoop.example/token"),
            ],
        );
        assert_eq!(e.base_url, "https://sandbox.example/api");
        assert_eq!(e.authorize_url, "http://fx:1/oura/oauth/authorize");
        assert_eq!(e.token_url, "http://fx:1/oura/oauth/token");

        let e = resolve(
            Some("http://fx:1"),
            &[
                ("WEARBRIDGE_OURA_AUTHORIZE_URL", "https://a.example/auth"),
                ("WEARBRIDGE_OURA_TOKEN_URL", "https://a.example/token"),
                ("WEARBRIDGE_OURA_CLIENT_ID", "mine"),
            ],
        );
        assert_eq!(e.authorize_url, "https://a.example/auth");
        assert_eq!(e.token_url, "https://a.example/token");
        assert_eq!(e.base_url, "http://fx:1/oura");
        assert_eq!(e.client_id, "mine");
    }

    #[test]
    fn published_push_keys_follow_the_fixture_root_unless_set_per_provider() {
        let g = crate::providers::find("google_health").expect("google_health is registered");
        let manifest = g.manifest.push.as_ref().and_then(|p| p.keys_url.clone());
        assert_eq!(
            manifest.as_deref(),
            Some("https://www.gstatic.com/googlehealthapi/webhooks/webhooks_public_keyset.json")
        );
        let at = |root: Option<&str>, vars: &[(&str, &str)]| {
            Endpoints::resolve_in(g, root, &|name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
            .push_keys_url
        };
        assert_eq!(at(None, &[]), manifest);
        assert_eq!(
            at(Some("http://fx:1/"), &[]).as_deref(),
            Some("http://fx:1/google_health/googlehealthapi/webhooks/webhooks_public_keyset.json")
        );
        let own = [(
            "WEARBRIDGE_GOOGLE_HEALTH_PUSH_KEYS_URL",
            "https://keys.example/k.json",
        )];
        assert_eq!(
            at(Some("http://fx:1"), &own).as_deref(),
            Some("https://keys.example/k.json")
        );
        // A provider that publishes no keys has none, fixtures or not.
        assert_eq!(resolve(Some("http://fx:1"), &[]).push_keys_url, None);
    }

    #[test]
    fn an_empty_per_provider_url_counts_as_unset() {
        let e = resolve(
            Some("http://fx:1"),
            &[
                ("WEARBRIDGE_OURA_BASE_URL", ""),
                ("WEARBRIDGE_OURA_AUTHORIZE_URL", ""),
                ("WEARBRIDGE_OURA_TOKEN_URL", ""),
            ],
        );
        assert_eq!(e.base_url, "http://fx:1/oura");
        assert_eq!(e.authorize_url, "http://fx:1/oura/oauth/authorize");
        assert_eq!(e.token_url, "http://fx:1/oura/oauth/token");
        let p = crate::providers::find("oura").expect("oura is registered");
        let e = resolve(None, &[("WEARBRIDGE_OURA_BASE_URL", "")]);
        assert_eq!(e.base_url, p.manifest.base_url);
    }
}
