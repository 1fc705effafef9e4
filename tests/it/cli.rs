//! The command line's conventions: an empty `WEARBRIDGE_*` variable means unset, for
//! every option, while a set one is still read and checked; a provider's own URL
//! settings win over the providers' fixture root.

use std::process::{Command, Output};
use std::time::Duration;

use clap::Args;
use serde_json::json;
use wearbridge::config::Config;
use wearbridge::fixture_server::FixtureServer;
use wearbridge::seal::random_token;

use crate::helpers::{Api, Serve, TestDb};

/// Every option's variable, as `wearbridge --help` lists them.
fn option_variables() -> Vec<String> {
    Config::augment_args(clap::Command::new("wearbridge"))
        .get_arguments()
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect()
}

/// `wearbridge team create` on a fresh SQLite file, every option's variable (and the
/// log filter and one provider's credentials) set to `value`, then `extra`.
fn team_create(value: &str, extra: &[(&str, &str)]) -> Output {
    let dir =
        std::env::temp_dir().join(format!("wearbridge-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wearbridge"));
    cmd.args(["team", "create", "conventions"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for name in option_variables() {
        cmd.env(name, value);
    }
    cmd.env("WEARBRIDGE_LOG", value)
        .env("WEARBRIDGE_OURA_CLIENT_ID", value)
        .env("WEARBRIDGE_OURA_CLIENT_SECRET", value)
        .env(
            "WEARBRIDGE_DATABASE_URL",
            format!("sqlite://{}", dir.join("cli.db").display()),
        );
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("wearbridge runs");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn an_empty_variable_means_unset() {
    let names = option_variables();
    assert!(
        names.iter().any(|n| n == "WEARBRIDGE_ALLOW_PRIVATE_CIDRS"),
        "{names:?}"
    );
    let out = team_create("", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "every WEARBRIDGE_* variable empty: {stdout}\n{stderr}"
    );
    let key = stdout.lines().last().unwrap_or_default();
    assert!(
        key.starts_with("wb_"),
        "the API key on the last line: {stdout}"
    );
}

#[test]
fn a_set_variable_is_still_checked() {
    let out = team_create("", &[("WEARBRIDGE_ALLOW_PRIVATE_CIDRS", "not-a-cidr")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad CIDR is refused");
    assert!(
        stderr.contains("allow-private-cidrs") || stderr.contains("ALLOW_PRIVATE_CIDRS"),
        "the refusal names the option: {stderr}"
    );
}

/// Where `GET link_url` sends the browser for a new link to `provider`.
async fn consent_screen(api: &Api, user: &serde_json::Value, provider: &str) -> String {
    let (s, link) = api
        .post(
            "/v1/link/token",
            json!({"user_id": user["user_id"], "provider": provider, "redirect_url": "http://127.0.0.1:9/done"}),
        )
        .await;
    assert!(s.is_success(), "{link}");
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = browser
        .get(link["link_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    resp.headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// `wearbridge serve` with `WEARBRIDGE_PROVIDERS_BASE_URL` set: each provider URL set
/// per provider is used, each one not set (or set empty) comes from the root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_url_set_per_provider_wins_over_the_fixture_root() {
    let (root, data) = (
        FixtureServer::start().await.unwrap(),
        FixtureServer::start().await.unwrap(),
    );
    let db = TestDb::sqlite();
    let store = db.store().await;
    let dexcom_base = format!("{}/dexcom", data.root());
    let serve = Serve::start(
        &db,
        &random_token(32),
        &[
            ("WEARBRIDGE_PROVIDERS_BASE_URL", root.root().as_str()),
            ("WEARBRIDGE_DEXCOM_BASE_URL", dexcom_base.as_str()),
            ("WEARBRIDGE_DEXCOM_TOKEN_URL", ""),
            (
                "WEARBRIDGE_WHOOP_AUTHORIZE_URL",
                "https://whoop-sandbox.example/authorize",
            ),
        ],
    )
    .await;
    let (_, key) = store.create_team("urls").await.unwrap();
    let api = Api::new(serve.url.clone(), key);
    let (s, user) = api
        .post("/v1/user", json!({"client_user_id": "urls"}))
        .await;
    assert!(s.is_success(), "{user}");

    let whoop = consent_screen(&api, &user, "whoop").await;
    assert!(
        whoop.starts_with("https://whoop-sandbox.example/authorize?"),
        "WEARBRIDGE_WHOOP_AUTHORIZE_URL wins over the root: {whoop}"
    );
    let polar = consent_screen(&api, &user, "polar").await;
    assert!(
        polar.starts_with(&format!("{}/polar/oauth/authorize?", root.root())),
        "a provider with nothing set is on the root: {polar}"
    );

    // Dexcom: consent and token exchange on the root (its empty token URL counts as
    // unset), data from its own base URL.
    let mut url = consent_screen(&api, &user, "dexcom").await;
    assert!(
        url.starts_with(&format!("{}/dexcom/oauth/authorize?", root.root())),
        "{url}"
    );
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for _ in 0..4 {
        if url.starts_with("http://127.0.0.1:9/") {
            break;
        }
        let resp = browser.get(&url).send().await.unwrap();
        url = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_else(|| panic!("the connect flow stopped at {url}"))
            .to_string();
    }
    assert!(url.contains("state=success"), "dexcom connected: {url}");
    assert_eq!(root.token_grants(), 1, "the code was exchanged at the root");
    // The backfill starts at once; its first request is the evidence (a separate
    // process: real time, bounded).
    let dexcom_data = |fx: &FixtureServer| {
        fx.requests()
            .into_iter()
            .filter(|r| r.starts_with("dexcom /v3/"))
            .count()
    };
    for _ in 0..200 {
        if dexcom_data(&data) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        dexcom_data(&data) > 0,
        "Dexcom's data requests go to WEARBRIDGE_DEXCOM_BASE_URL: {:?}",
        data.requests()
    );
    assert_eq!(
        dexcom_data(&root),
        0,
        "and none to the root: {:?}",
        root.requests()
    );
}

/// `wearbridge bench push`, small, on a fresh SQLite file: every notification is
/// acknowledged and matched to the webhook about its record, one provider request
/// each, none refused, and the latency is that of a push, not of a poll.
#[test]
fn bench_push_matches_every_notification_to_its_webhook() {
    let out = Command::new(env!("CARGO_BIN_EXE_wearbridge"))
        .args([
            "bench",
            "push",
            "--users",
            "3",
            "--rate",
            "5",
            "--seconds",
            "2",
            "--json",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("wearbridge runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(v["database"], "sqlite", "{v}");
    assert_eq!(v["users"], 3, "{v}");
    assert_eq!(v["notifications"], 10, "{v}");
    assert_eq!(v["sent"], 10, "{v}");
    assert_eq!(v["acknowledged"], 10, "{v}");
    assert_eq!(
        v["matched"], 10,
        "every notification's webhook arrived: {v}"
    );
    assert_eq!(v["refused_429"], 0, "{v}");
    assert_eq!(v["all_verified"], true, "{v}");
    let per = v["requests_per_notification"].as_f64().unwrap();
    assert!((0.9..=2.0).contains(&per), "one pull each: {v}");
    let (p50, p99, max) = (
        v["p50_ms"].as_f64().unwrap(),
        v["p99_ms"].as_f64().unwrap(),
        v["max_ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{v}");
    assert!(
        p99 < 10_000.0,
        "a push arrives in seconds, not at a poll: {v}"
    );
}
