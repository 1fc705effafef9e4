//! One delivery attempt: build the request (POST with the JSON body, or GET with the
//! payload's top-level fields as query parameters), sign it, send it over the shared
//! keep-alive pool, and classify what happened. Redirects are not followed (a 3xx is a
//! failure); only a 2xx within the timeout is a success.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::policy::{BlockedAddress, PolicyResolver, UrlPolicy};
use super::signing::Signer;
use crate::states::{AttemptErrorKind, AttemptTrigger};
use crate::store::{Attempt, Outcome};

/// How much of a response body the log keeps.
pub const RESPONSE_BODY_LIMIT: usize = 8 * 1024;

/// Headers we set ourselves; custom headers may not override them.
pub const RESERVED_HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "webhook-attempt",
    "webhook-pending-retries",
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "transfer-encoding",
    "connection",
];

#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: Arc<UrlPolicy>,
}

/// Where and how one endpoint wants its webhooks.
#[derive(Debug, Clone)]
pub struct Destination {
    pub url: String,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    pub signer: Signer,
}

/// One message to send.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub id: &'a str,
    pub payload: &'a str,
    /// 1-based number of this attempt.
    pub run_number: i64,
    /// Scheduled attempts that remain if this one fails.
    pub pending_retries: i64,
    pub trigger: AttemptTrigger,
}

#[derive(Debug, Clone)]
pub struct SendResult {
    pub attempt: Attempt,
    pub outcome: Outcome,
    pub retry_after: Option<Duration>,
}

impl Sender {
    pub fn new(policy: UrlPolicy, timeout: Duration, max_idle_per_host: usize) -> Sender {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(concat!("Wearbridge-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(PolicyResolver {
                policy: policy.clone(),
            }))
            .build()
            .expect("the HTTP client configuration is valid");
        Sender { client, policy }
    }

    pub fn policy(&self) -> &UrlPolicy {
        &self.policy
    }

    pub async fn send(&self, dest: &Destination, msg: Message<'_>) -> SendResult {
        let started = Instant::now();
        let attempted_at = crate::now_ms();
        let timestamp = attempted_at / 1000;
        let mut logged_headers = BTreeMap::new();
        let finish = |status: Option<i64>,
                      body: Option<String>,
                      kind: Option<AttemptErrorKind>,
                      err: Option<String>,
                      headers| Attempt {
            run_number: msg.run_number,
            trigger: msg.trigger,
            attempted_at,
            url: dest.url.clone(),
            request_headers: headers,
            response_status: status,
            response_body: body,
            duration_ms: started.elapsed().as_millis() as i64,
            error_kind: kind,
            error_message: err,
            worker: instance_id().to_string(),
        };
        // The URL was checked when saved; check again in case the policy has changed.
        let mut url = match self.policy.check_url(&dest.url) {
            Ok(u) => u,
            Err(refusal) => {
                return SendResult {
                    attempt: finish(
                        None,
                        None,
                        Some(AttemptErrorKind::Blocked),
                        Some(refusal.to_string()),
                        logged_headers,
                    ),
                    outcome: Outcome::Failure,
                    retry_after: None,
                }
            }
        };
        // What gets signed: the JSON body, or in GET mode the final query string.
        let get = dest.method.eq_ignore_ascii_case("GET");
        let signed: String = if get {
            {
                let mut pairs = url.query_pairs_mut();
                if let Ok(serde_json::Value::Object(map)) =
                    serde_json::from_str::<serde_json::Value>(msg.payload)
                {
                    for (k, v) in map {
                        match v {
                            serde_json::Value::String(s) => pairs.append_pair(&k, &s),
                            serde_json::Value::Null => pairs.append_pair(&k, ""),
                            other => pairs.append_pair(&k, &other.to_string()),
                        };
                    }
                }
            }
            url.query().unwrap_or("").to_string()
        } else {
            msg.payload.to_string()
        };
        let signature = dest.signer.sign(msg.id, timestamp, signed.as_bytes());

        let mut headers = HeaderMap::new();
        for (k, v) in &dest.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                logged_headers.insert(name.to_string(), redact(name.as_str(), v));
                headers.insert(name, value);
            }
        }
        let ours = [
            ("webhook-id", msg.id.to_string()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
            ("webhook-attempt", msg.run_number.to_string()),
            ("webhook-pending-retries", msg.pending_retries.to_string()),
        ];
        for (k, v) in ours {
            headers.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(&v).expect("ASCII header values"),
            );
            logged_headers.insert(k.to_string(), v);
        }
        let request = if get {
            self.client.get(url)
        } else {
            headers.insert(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            logged_headers.insert("content-type".into(), "application/json".into());
            self.client.post(url).body(msg.payload.to_string())
        };
        match request.headers(headers).send().await {
            Ok(mut resp) => {
                let status = resp.status();
                let retry_after = crate::http::retry_after(resp.headers());
                let mut body = Vec::new();
                while body.len() < RESPONSE_BODY_LIMIT {
                    match resp.chunk().await {
                        Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                        _ => break,
                    }
                }
                body.truncate(RESPONSE_BODY_LIMIT);
                let body = String::from_utf8_lossy(&body).into_owned();
                let code = Some(status.as_u16() as i64);
                let (outcome, kind) = if status.is_success() {
                    (Outcome::Success, None)
                } else if status == reqwest::StatusCode::GONE {
                    (Outcome::Gone, Some(AttemptErrorKind::Http))
                } else {
                    (Outcome::Failure, Some(AttemptErrorKind::Http))
                };
                let err = kind.map(|_| format!("receiver answered {status}"));
                let retry_after = if status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status.is_server_error()
                {
                    retry_after
                } else {
                    None
                };
                SendResult {
                    attempt: finish(code, Some(body), kind, err, logged_headers),
                    outcome,
                    retry_after,
                }
            }
            Err(e) => {
                let (kind, message) = classify(&e);
                SendResult {
                    attempt: finish(None, None, Some(kind), Some(message), logged_headers),
                    outcome: Outcome::Failure,
                    retry_after: None,
                }
            }
        }
    }
}

/// This process, as attempts record it: `host:pid`.
pub fn instance_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".into());
        format!("{}:{}", host.trim(), std::process::id())
    })
}

/// Custom headers often carry credentials; the attempt log shows their names only.
fn redact(name: &str, value: &str) -> String {
    let n = name.to_ascii_lowercase();
    if [
        "authorization",
        "cookie",
        "token",
        "secret",
        "key",
        "password",
        "signature",
    ]
    .iter()
    .any(|s| n.contains(s))
    {
        "[redacted]".to_string()
    } else {
        value.to_string()
    }
}

/// Sorts a transport error into the log's error kinds.
fn classify(e: &reqwest::Error) -> (AttemptErrorKind, String) {
    let mut chain = Vec::new();
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if s.downcast_ref::<BlockedAddress>().is_some() {
            return (AttemptErrorKind::Blocked, s.to_string());
        }
        chain.push(s.to_string());
        src = s.source();
    }
    let text = chain.join(": ");
    let lower = text.to_ascii_lowercase();
    let kind = if e.is_timeout() {
        AttemptErrorKind::Timeout
    } else if lower.contains("dns error")
        || lower.contains("failed to lookup")
        || lower.contains("name or service not known")
    {
        AttemptErrorKind::Dns
    } else if lower.contains("tls") || lower.contains("certificate") || lower.contains("handshake")
    {
        AttemptErrorKind::Tls
    } else if e.is_connect() {
        AttemptErrorKind::Connect
    } else {
        AttemptErrorKind::Http
    };
    (kind, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_custom_headers_are_not_logged() {
        assert_eq!(redact("Authorization", "Bearer x"), "[redacted]");
        assert_eq!(redact("X-Api-Key", "abc"), "[redacted]");
        assert_eq!(redact("X-Tenant", "acme"), "acme");
    }
}
