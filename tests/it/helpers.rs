//! The test harness: a fresh database per test (SQLite always, PostgreSQL when
//! `TEST_DATABASE_URL` is set), the real gateway on a random port, and a receiver that
//! verifies signatures with the `svix` crate. The gateway runs on a manual clock: a test
//! that waits for a retry, a lease or an interval moves the clock on instead of sleeping.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;
use wearbridge::app::Gateway;
use wearbridge::clock::Clock;
use wearbridge::config::Config;
use wearbridge::receiver::Receiver;
use wearbridge::seal::{random_token, Sealer};
use wearbridge::store::{create_scratch_postgres, drop_scratch_postgres, Store};

/// Runs each listed `async fn name(db: TestDb)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::TestDb::sqlite()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::helpers::TestDb::postgres().await else { return };
                    super::$name(db).await
                }
            )*
        }
    };
}

static SKIP_NOTICE: Once = Once::new();

/// A database that exists for one test only.
pub struct TestDb {
    pub url: String,
    admin: Option<String>,
    dir: Option<std::path::PathBuf>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(format!("wearbridge-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        TestDb {
            url: format!("sqlite://{}", dir.join("test.db").display()),
            admin: None,
            dir: Some(dir),
        }
    }

    /// A fresh PostgreSQL database, or None (with a notice on stderr that libtest does
    /// not swallow) when `TEST_DATABASE_URL` is not set.
    pub async fn postgres() -> Option<TestDb> {
        let Ok(admin) = std::env::var("TEST_DATABASE_URL") else {
            SKIP_NOTICE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIPPED: PostgreSQL tests (TEST_DATABASE_URL is not set); they pass vacuously in this run ***\n"
                );
            });
            return None;
        };
        let url = create_scratch_postgres(&admin, "wearbridge_test")
            .await
            .expect("creating a scratch PostgreSQL database");
        Some(TestDb {
            url,
            admin: Some(admin),
            dir: None,
        })
    }

    /// Another database of the same kind, empty (for a test that needs one per case).
    pub async fn fresh(&self) -> TestDb {
        match &self.admin {
            None => TestDb::sqlite(),
            Some(_) => TestDb::postgres().await.expect("PostgreSQL is configured"),
        }
    }

    pub async fn store(&self) -> Store {
        let s = Store::connect(&self.url).await.unwrap();
        s.migrate().await.unwrap();
        s
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(admin) = self.admin.clone() {
            let url = self.url.clone();
            // Drop runs inside the test's runtime; clean up on a thread of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(drop_scratch_postgres(&admin, &url));
            })
            .join();
        }
    }
}

/// The configuration tests run with: loopback allowed, quick retries, quick polling.
pub fn test_config(db: &TestDb) -> Config {
    let mut c = Config::defaults().for_loopback();
    c.database_url = db.url.clone();
    c.retry_schedule_secs = vec![0, 1, 1];
    c.poll_interval_ms = 50;
    c.delivery_timeout_secs = 5;
    c.delivery_lease_secs = 10;
    c
}

pub struct TestApp {
    pub gateway: Gateway,
    pub receiver: Receiver,
    pub api: Api,
    pub team_id: Uuid,
    pub sealer: Sealer,
    /// The gateway's scheduling clock; see [`TestApp::advance`].
    pub clock: Clock,
    /// Kept so the database outlives the gateway.
    _db: TestDb,
}

impl TestApp {
    pub async fn spawn(db: TestDb) -> TestApp {
        Self::spawn_with(db, |_| {}).await
    }

    pub async fn spawn_with(db: TestDb, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = test_config(&db);
        tweak(&mut config);
        let sealer = Sealer::from_master_key(&random_token(32)).unwrap();
        let clock = Clock::manual();
        let gateway = Gateway::start_with_clock(config, sealer.clone(), clock.clone())
            .await
            .expect("gateway starts");
        let (team, key) = gateway.state.store.create_team("test team").await.unwrap();
        let api = Api::new(gateway.url(), key);
        let receiver = Receiver::start(true).await.unwrap();
        TestApp {
            gateway,
            receiver,
            api,
            team_id: team.id,
            sealer,
            clock,
            _db: db,
        }
    }

    pub fn store(&self) -> &Store {
        &self.gateway.state.store
    }

    /// Connects a user to `provider` through the link flow, as a browser that always
    /// allows (the fixture provider approves at once).
    pub async fn connect(&self, user_id: &str, provider: &str) {
        let (s, link) = self
            .api
            .post("/v1/link/token", serde_json::json!({"user_id": user_id, "provider": provider, "redirect_url": self.receiver.url("/app/done")}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{link}");
        let resp = reqwest::get(link["link_url"].as_str().unwrap())
            .await
            .unwrap();
        let q: std::collections::BTreeMap<String, String> =
            resp.url().query_pairs().into_owned().collect();
        assert_eq!(q.get("state").map(String::as_str), Some("success"), "{q:?}");
    }

    /// The events the endpoint at `/hooks` received, each once, in the order they first
    /// arrived: delivery is at least once, and a slow machine can see a resend of one
    /// whose reply was late.
    pub fn events(&self) -> Vec<Value> {
        let mut seen = std::collections::HashSet::new();
        self.receiver
            .received()
            .iter()
            .filter(|r| r.path == "/hooks")
            .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
            .filter(|e| seen.insert(e["id"].to_string()))
            .collect()
    }

    /// Stops the gateway (as a deploy would) and starts another on the same database,
    /// master key, team and clock.
    pub async fn restart(self, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let TestApp {
            gateway,
            receiver,
            api,
            team_id,
            sealer,
            clock,
            _db,
        } = self;
        gateway.stop().await;
        let mut config = test_config(&_db);
        tweak(&mut config);
        let gateway = Gateway::start_with_clock(config, sealer.clone(), clock.clone())
            .await
            .expect("gateway restarts");
        let api = Api::new(gateway.url(), api.key);
        TestApp {
            gateway,
            receiver,
            api,
            team_id,
            sealer,
            clock,
            _db,
        }
    }

    /// Moves the gateway's clock on by `by`: whatever is scheduled by then (a retry, a
    /// job's next run, a lapsed lease, a refilled rate limit) falls due at once.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by).expect("tests run on a manual clock");
    }

    /// Like [`eventually`], but moves the clock on by `step` each time `check` fails,
    /// so a check waiting on a schedule of steps up to `step` long never waits for real.
    pub async fn eventually_advancing<F, Fut>(
        &self,
        step: Duration,
        timeout: Duration,
        mut check: F,
    ) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        eventually(timeout, || {
            let checked = check();
            async move {
                if checked.await {
                    return true;
                }
                self.advance(step);
                false
            }
        })
        .await
    }

    /// Milliseconds from now, by the gateway's clock, to an RFC 3339 time it reported
    /// (a delivery's `next_attempt_at`, say).
    pub fn ms_until(&self, rfc3339: &Value) -> i64 {
        let at = chrono::DateTime::parse_from_rfc3339(rfc3339.as_str().expect("a time"))
            .expect("an RFC 3339 time");
        at.timestamp_millis() - self.clock.now_ms()
    }

    /// A second team on the same gateway, with its own key.
    pub async fn other_team(&self) -> Api {
        let (_, key) = self.store().create_team("other team").await.unwrap();
        Api::new(self.gateway.url(), key)
    }

    /// Creates an endpoint at the receiver's `path`, verifying with its secret. The
    /// secret is chosen here and given to the receiver first: the endpoint's
    /// `webhook.test` event may arrive before the creating request has its answer.
    /// Returns the endpoint JSON.
    pub async fn endpoint(&self, path: &str, extra: Value) -> Value {
        let mut body = serde_json::json!({"url": self.receiver.url(path), "secret": wearbridge::seal::new_webhook_secret()});
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        let secret = body["secret"].as_str().unwrap().to_string();
        self.receiver.set_secret(path, &secret);
        let (status, ep) = self.api.post("/v1/webhooks/endpoints", body).await;
        assert_eq!(status, StatusCode::CREATED, "{ep}");
        assert_eq!(ep["secret"], secret.as_str());
        ep
    }

    pub async fn user(&self, client_user_id: &str) -> Value {
        let (status, u) = self
            .api
            .post(
                "/v1/user",
                serde_json::json!({"client_user_id": client_user_id}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{u}");
        u
    }
}

/// A client of the gateway's API with one team's key.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: String, key: String) -> Api {
        Api {
            base,
            key,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request reaches the gateway");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }
}

/// How many windows a new connection's backfill of `provider`'s `resource` spans: one
/// `historical.data.*` event each. A resource read with another has that one's.
pub fn backfill_windows(provider: &str, resource: &str) -> usize {
    let p = wearbridge::providers::find(provider).expect("a registered provider");
    let r: wearbridge::events::Resource = resource.parse().expect("a resource");
    let r = p.adapter.read_with(r).unwrap_or(r);
    wearbridge::poller::plan::connect_jobs(p, 0, None)
        .iter()
        .filter(|j| j.kind == wearbridge::states::JobKind::Backfill && j.resource == r)
        .count()
}

/// Every resource's windows in a new connection's backfill of `provider`.
pub fn all_backfill_windows(provider: &str) -> usize {
    let p = wearbridge::providers::find(provider).expect("a registered provider");
    p.manifest
        .resources
        .iter()
        .map(|r| backfill_windows(provider, r.name.as_str()))
        .sum()
}

/// Polls `check` until it is true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `wearbridge serve` child process, killed when dropped.
pub struct Serve {
    child: Child,
    pub url: String,
}

impl Serve {
    pub async fn start(db: &TestDb, key: &str, extra: &[(&str, &str)]) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wearbridge"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WEARBRIDGE_DATABASE_URL", &db.url)
            .env("WEARBRIDGE_SECRET_KEY", key)
            .env("WEARBRIDGE_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("WEARBRIDGE_ALLOW_HTTP", "true")
            .env("WEARBRIDGE_ALLOW_PRIVATE_CIDRS", "127.0.0.0/8")
            .env("WEARBRIDGE_POLL_INTERVAL_MS", "20")
            .env("WEARBRIDGE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        // Killed (and reaped) when dropped, from here on, however the wait below ends.
        let serve = Serve {
            child: cmd.spawn().expect("wearbridge serve starts"),
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = http.get(format!("{}/health", serve.url)).send().await {
                if r.status().is_success() {
                    return serve;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("wearbridge serve did not become healthy");
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix: no chance to clean up
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}
