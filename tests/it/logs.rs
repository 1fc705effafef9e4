//! Logs: `WEARBRIDGE_LOG_FORMAT=json` makes every log line one JSON object, and a full
//! demo run (connect flows, token exchanges and refreshes, signed deliveries) logs no
//! secret: no API key, webhook secret, provider token or authorization header.

use serde_json::Value;

#[test]
fn a_demo_run_logs_json_and_no_secrets() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wearbridge"))
        .arg("demo")
        .env("WEARBRIDGE_LOG_FORMAT", "json")
        .env("WEARBRIDGE_LOG", "debug")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");

    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.len() >= 10,
        "a debug-level demo run logs its work: {} lines",
        lines.len()
    );
    for l in &lines {
        let v: Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
    }
    // The demo printed real secrets' shapes on purpose nowhere; the logs must not carry
    // any: API keys (`wb_…`), signing secrets (`whsec_…`), the fixture provider's access
    // and refresh tokens (`fx-access-…`, `fx-refresh-…`), bearer headers, signatures.
    for needle in [
        "wb_",
        "whsec_",
        "fx-access-",
        "fx-refresh-",
        "Bearer ",
        "v1,",
        "client_secret",
        "refresh_token\":\"",
    ] {
        let hits: Vec<&&str> = lines.iter().filter(|l| l.contains(needle)).collect();
        assert!(
            hits.is_empty(),
            "`{needle}` appears in the logs:\n{}",
            hits.iter()
                .take(3)
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // The run's provider work is in the logs (so the check above looked at it): pages
    // stored for every provider, and the SQL that bound the sealed tokens.
    for p in wearbridge::providers::registry() {
        assert!(
            lines.iter().any(|l| l.contains("page stored")
                && l.contains(&format!("\"provider\":\"{}\"", p.id()))),
            "no page of {} logged",
            p.id()
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("INSERT INTO connections")),
        "SQL statements are logged at debug"
    );
}
