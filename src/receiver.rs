//! A webhook receiver that verifies every delivery with the `svix` crate's verifier, as
//! a customer's server would. The demo, the benchmark and the tests point endpoints at
//! it; it can also misbehave on purpose (fail the first tries, answer 410, be slow) so
//! retries and health can be watched from the outside.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::Router;
use serde::Serialize;
use svix::webhooks::Webhook;
use tokio::sync::Notify;

/// How the receiver answers on one path.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Answer `fail_status` to this many requests first.
    pub fail_first: u64,
    pub fail_status: u16,
    /// Sent with failures, if set.
    pub retry_after_secs: Option<u64>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Answer with a body of this many bytes.
    pub body_bytes: usize,
}

/// One request as received.
#[derive(Debug, Clone, Serialize)]
pub struct Received {
    pub path: String,
    pub method: String,
    pub event_id: String,
    pub timestamp: String,
    pub signature: String,
    pub attempt: Option<i64>,
    pub pending_retries: Option<i64>,
    /// The signed content: the body, or in GET mode the query string.
    pub body: String,
    pub verified: bool,
    pub answered: u16,
    /// Unix time in microseconds when it arrived.
    pub received_at_us: i64,
}

#[derive(Default)]
struct Inner {
    secrets: Mutex<HashMap<String, String>>,
    behaviours: Mutex<HashMap<String, (Behaviour, u64)>>,
    received: Mutex<Vec<Received>>,
    keep_bodies: bool,
    count: AtomicU64,
    verified: AtomicU64,
    rejected: AtomicU64,
    arrived: Notify,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Receiver {
    /// Starts on a random loopback port. `keep_bodies` keeps each body (tests, demo);
    /// the benchmark keeps only ids and times.
    pub async fn start(keep_bodies: bool) -> anyhow::Result<Receiver> {
        let inner = Arc::new(Inner {
            keep_bodies,
            ..Default::default()
        });
        let app = Router::new().fallback(receive).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { addr, inner })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The secret deliveries to `path` are verified with.
    pub fn set_secret(&self, path: &str, secret: &str) {
        self.inner
            .secrets
            .lock()
            .unwrap()
            .insert(path.to_string(), secret.to_string());
    }

    pub fn set_behaviour(&self, path: &str, b: Behaviour) {
        self.inner
            .behaviours
            .lock()
            .unwrap()
            .insert(path.to_string(), (b, 0));
    }

    pub fn received(&self) -> Vec<Received> {
        self.received_after(0)
    }

    /// What arrived after the first `n` (those [`Receiver::received`] gave before).
    pub fn received_after(&self, n: usize) -> Vec<Received> {
        let received = self.inner.received.lock().unwrap();
        received
            .get(n..)
            .map(<[Received]>::to_vec)
            .unwrap_or_default()
    }

    pub fn count(&self) -> u64 {
        self.inner.count.load(Ordering::SeqCst)
    }

    pub fn verified(&self) -> u64 {
        self.inner.verified.load(Ordering::SeqCst)
    }

    pub fn rejected(&self) -> u64 {
        self.inner.rejected.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests have arrived; false on timeout.
    pub async fn wait_for(&self, n: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.arrived.notified();
            if self.count() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.count() >= n;
            }
        }
    }
}

async fn receive(
    State(inner): State<Arc<Inner>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, String) {
    let arrived = now_us();
    let path = uri.path().to_string();
    let signed: Vec<u8> = if method == Method::GET {
        uri.query().unwrap_or("").as_bytes().to_vec()
    } else {
        body.to_vec()
    };
    let secret = inner.secrets.lock().unwrap().get(&path).cloned();
    let verified = match secret {
        Some(s) => Webhook::new(&s)
            .map(|w| w.verify(&signed, &headers).is_ok())
            .unwrap_or(false),
        None => false,
    };
    if verified {
        inner.verified.fetch_add(1, Ordering::SeqCst);
    } else {
        inner.rejected.fetch_add(1, Ordering::SeqCst);
    }
    let (behaviour, nth) = {
        let mut map = inner.behaviours.lock().unwrap();
        match map.get_mut(&path) {
            Some((b, n)) => {
                *n += 1;
                (b.clone(), *n)
            }
            None => (Behaviour::default(), 1),
        }
    };
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    let status = if !verified {
        StatusCode::UNAUTHORIZED
    } else if nth <= behaviour.fail_first {
        StatusCode::from_u16(behaviour.fail_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    } else {
        StatusCode::NO_CONTENT
    };
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let rec = Received {
        path,
        method: method.to_string(),
        event_id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: if inner.keep_bodies {
            header("webhook-signature")
        } else {
            String::new()
        },
        attempt: header("webhook-attempt").parse().ok(),
        pending_retries: header("webhook-pending-retries").parse().ok(),
        body: if inner.keep_bodies {
            String::from_utf8_lossy(&signed).into_owned()
        } else {
            String::new()
        },
        verified,
        answered: status.as_u16(),
        received_at_us: arrived,
    };
    inner.received.lock().unwrap().push(rec);
    inner.count.fetch_add(1, Ordering::SeqCst);
    inner.arrived.notify_waiters();
    let mut out = HeaderMap::new();
    if let (Some(secs), false) = (behaviour.retry_after_secs, status.is_success()) {
        out.insert(
            axum::http::header::RETRY_AFTER,
            secs.to_string().parse().expect("digits"),
        );
    }
    (status, out, "x".repeat(behaviour.body_bytes))
}
