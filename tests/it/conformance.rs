//! Conformance: every provider in the registry, checked the same way. Its captured pages
//! normalise to the expected output beside them, and its fixtures replay through the
//! real path (fixture server → connect flow → pollers → store → events → a receiver
//! verifying signatures): backfill windows newest first with exactly one `is_final`,
//! then a daily poll over changed data yielding the right created/updated events.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use wearbridge::events::{EventType, Resource};
use wearbridge::fixture_server::FixtureServer;
use wearbridge::providers::registry;

use crate::helpers::{eventually, TestApp, TestDb};
use wearbridge::states::{DeliveryStatus, JobKind, JobStatus};

#[test]
fn every_captured_page_normalises_to_its_expected_output() {
    for p in registry() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(p.id())
            .join("pages");
        for spec in &p.manifest.resources {
            // A resource read with another (Polar's profile, with body) is on its pages.
            if p.adapter.read_with(spec.name).is_some() {
                continue;
            }
            let rdir = dir.join(spec.name.as_str());
            assert!(
                rdir.is_dir(),
                "{}: no captured pages for {} in {}",
                p.id(),
                spec.name,
                rdir.display()
            );
            let mut cursor: Option<String> = None;
            for n in 1.. {
                let page = rdir.join(format!("page_{n}.json"));
                if !page.exists() {
                    assert!(n > 1, "{}: {} has no page_1.json", p.id(), spec.name);
                    break;
                }
                let body = std::fs::read(&page).unwrap();
                let parsed = p
                    .adapter
                    .parse_page(spec.name, &body, cursor.as_deref())
                    .unwrap_or_else(|e| panic!("{}: {e}", page.display()));
                let expected: Vec<Value> =
                    std::fs::read_to_string(rdir.join(format!("page_{n}.expected.jsonl")))
                        .unwrap_or_else(|_| {
                            panic!("{}: no expected output beside it", page.display())
                        })
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| serde_json::from_str(l).unwrap())
                        .collect();
                let got: Vec<Value> = parsed.records.iter().map(|r| r.to_json()).collect();
                assert_eq!(
                    got.len(),
                    expected.len(),
                    "{}: record count",
                    page.display()
                );
                for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                    assert_eq!(g, e, "{} record {i}", page.display());
                }
                cursor = parsed.next;
            }
            // Single-record replies (`records/<resource>/<key>.json`), where the provider
            // has a single-record read, normalise to the expected record beside them.
            let records = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures")
                .join(p.id())
                .join("records")
                .join(spec.name.as_str());
            for entry in std::fs::read_dir(&records).into_iter().flatten() {
                let file = entry.unwrap().path();
                if file.extension().is_none_or(|x| x != "json") {
                    continue;
                }
                let key = file.file_stem().unwrap().to_str().unwrap().to_string();
                assert!(
                    p.adapter.record_request(spec, &key).is_some(),
                    "{}: a record reply but no record_request",
                    file.display()
                );
                let parsed = p
                    .adapter
                    .parse_record(spec.name, &std::fs::read(&file).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                let expected: Vec<Value> =
                    std::fs::read_to_string(records.join(format!("{key}.expected.jsonl")))
                        .unwrap_or_else(|_| {
                            panic!("{}: no expected output beside it", file.display())
                        })
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| serde_json::from_str(l).unwrap())
                        .collect();
                let got: Vec<Value> = parsed.records.iter().map(|r| r.to_json()).collect();
                assert_eq!(got, expected, "{}", file.display());
                assert_eq!(parsed.next, None, "{}", file.display());
            }
        }
    }
}

crate::backend_tests!(every_provider_replays_through_the_real_path);

fn hooks(app: &TestApp) -> Vec<Value> {
    app.receiver
        .received()
        .iter()
        .filter(|r| r.path == "/hooks")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect()
}

async fn every_provider_replays_through_the_real_path(db: TestDb) {
    let fx = FixtureServer::start().await.unwrap();
    let root = fx.root();
    // Budgets pace every request on windows a minute to the second: a year of Google
    // Health's twelve resources is more than its 300 requests a user-minute.
    let app = TestApp::spawn_with(db, move |c| {
        c.providers_base_url = Some(root);
        c.rate_limit_time_scale = 60.0;
    })
    .await;
    app.endpoint("/hooks", json!({})).await;
    let browser = reqwest::Client::new();
    let mut users = Vec::new();
    for p in registry() {
        let u = app.user(&format!("user-{}", p.id())).await;
        let uid = u["user_id"].as_str().unwrap().to_string();
        let (s, link) = app
            .api
            .post("/v1/link/token", json!({"user_id": uid, "provider": p.id(), "redirect_url": app.receiver.url("/done")}))
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let landed = browser
            .get(link["link_url"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .url()
            .clone();
        assert!(
            landed
                .query_pairs()
                .any(|(k, v)| k == "state" && v == "success"),
            "{}: {landed}",
            p.id()
        );
        users.push((p, uid));
    }
    let finished = eventually(Duration::from_secs(90), || async {
        app.store()
            .job_counts()
            .await
            .map(|c| {
                !c.contains_key(&(JobKind::Backfill, JobStatus::Pending))
                    && !c.contains_key(&(JobKind::Backfill, JobStatus::Failed))
            })
            .unwrap_or(false)
    })
    .await;
    assert!(
        finished,
        "backfill: {:?}",
        app.store().job_counts().await.unwrap()
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.store()
                .delivery_counts()
                .await
                .unwrap()
                .keys()
                .all(|k| *k == DeliveryStatus::Succeeded)
        })
        .await
    );

    let evs = hooks(&app);
    for (p, uid) in &users {
        let mine: Vec<&Value> = evs
            .iter()
            .filter(|e| e["user_id"] == uid.as_str())
            .collect();
        assert_eq!(
            mine.iter()
                .filter(|e| e["event_type"] == "provider.connection.created")
                .count(),
            1,
            "{}",
            p.id()
        );
        for spec in &p.manifest.resources {
            if !spec.name.is_history() {
                // Devices: announced by the backfill itself, no historical chunk, listed
                // whole.
                assert!(
                    mine.iter()
                        .any(|e| e["event_type"] == "provider.device.created"),
                    "{} {}: announced",
                    p.id(),
                    spec.name
                );
                assert!(
                    mine.iter().all(
                        |e| e["event_type"] != format!("historical.data.{}.created", spec.name)
                    ),
                    "{} {}: no history",
                    p.id(),
                    spec.name
                );
                let (_, data) = app.api.get(&format!("/v1/{}/{uid}", spec.name)).await;
                assert!(
                    data[spec.name.as_str()]
                        .as_array()
                        .is_some_and(|d| !d.is_empty()),
                    "{} {}: records stored",
                    p.id(),
                    spec.name
                );
                continue;
            }
            let hist: Vec<&&Value> = mine
                .iter()
                .filter(|e| e["event_type"] == format!("historical.data.{}.created", spec.name))
                .collect();
            let windows = hist[0]["data"]["chunk_count"].as_i64().unwrap() as usize;
            assert_eq!(
                hist.len(),
                windows,
                "{} {}: one event per window",
                p.id(),
                spec.name
            );
            let idx: Vec<i64> = hist
                .iter()
                .map(|e| e["data"]["chunk_index"].as_i64().unwrap())
                .collect();
            assert_eq!(
                idx,
                (0..windows as i64).collect::<Vec<_>>(),
                "{} {}: newest window first, in order",
                p.id(),
                spec.name
            );
            let finals: Vec<i64> = hist
                .iter()
                .filter(|e| e["data"]["is_final"] == true)
                .map(|e| e["data"]["chunk_index"].as_i64().unwrap())
                .collect();
            assert_eq!(
                finals,
                vec![windows as i64 - 1],
                "{} {}: exactly one is_final, on the oldest window",
                p.id(),
                spec.name
            );
            let route = if spec.name.is_timeseries() {
                format!("/v1/timeseries/{uid}/{}", spec.name)
            } else {
                format!("/v1/summary/{}/{uid}", spec.name)
            };
            let (_, data) = app.api.get(&format!("{route}?start_date=2000-01-01")).await;
            let n = data
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(Value::as_array)
                .map(Vec::len)
                .unwrap_or(0);
            assert!(n > 0, "{} {}: records stored", p.id(), spec.name);
        }
        assert!(
            mine.iter()
                .all(|e| !e["event_type"].as_str().unwrap().starts_with("daily.")),
            "{}: backfill emits no daily events",
            p.id()
        );
    }

    // The daily poll over changed data: for each summary resource one new record
    // (created) and one edited record (updated, version 2); one batch of new samples
    // (see `poll_changes`).
    fx.advance_to_changed_data();
    let before = evs.len();
    for (_, uid) in &users {
        let (s, _) = app
            .api
            .post(&format!("/v1/user/{uid}/refresh"), json!({}))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
    }
    let expected: usize = registry()
        .iter()
        .flat_map(|p| {
            p.manifest
                .resources
                .iter()
                .map(move |r| poll_changes(p.id(), r.name))
        })
        .map(|(created, updated)| created + updated)
        .sum();
    assert!(
        eventually(Duration::from_secs(30), || async {
            hooks(&app).len() >= before + expected
        })
        .await,
        "daily events: {:?}",
        &hooks(&app)[before..]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let daily: Vec<Value> = hooks(&app).into_iter().skip(before).collect();
    assert_eq!(daily.len(), expected, "{daily:#?}");
    for (p, uid) in &users {
        for spec in &p.manifest.resources {
            let of = |action: &str| {
                let t = EventType::daily(spec.name, action == "created").name();
                daily
                    .iter()
                    .filter(|e| e["user_id"] == uid.as_str() && e["event_type"] == t)
                    .collect::<Vec<_>>()
            };
            let (created, updated) = poll_changes(p.id(), spec.name);
            assert_eq!(
                (of("created").len(), of("updated").len()),
                (created, updated),
                "{} {}",
                p.id(),
                spec.name
            );
            if !spec.name.is_timeseries() {
                for e in of("created") {
                    assert_eq!(e["data"]["version"], 1);
                }
                for e in of("updated") {
                    assert_eq!(e["data"]["version"], 2);
                }
            }
        }
    }
    assert!(
        app.receiver
            .received()
            .iter()
            .filter(|r| r.path == "/hooks")
            .all(|r| r.verified),
        "every delivery verified"
    );
}

/// What the poll over changed data publishes for `resource` of `provider`: (records
/// created, records updated). A timeseries gains one batch of samples (one event); a
/// summary one new record and one edited. A profile is one record per user: it is
/// edited. What a provider hands over once (Polar's physical-information transaction:
/// each entry is new, none is ever edited) only gains records.
fn poll_changes(provider: &str, resource: Resource) -> (usize, usize) {
    const HANDED_OVER_ONCE: &[(&str, Resource)] = &[("polar", Resource::Body)];
    if resource.is_timeseries() || HANDED_OVER_ONCE.contains(&(provider, resource)) {
        (1, 0)
    } else if resource == Resource::Profile {
        (0, 1)
    } else {
        (1, 1)
    }
}

#[test]
fn normalize_prints_json_lines_and_fails_clearly_on_malformed_input() {
    let bin = env!("CARGO_BIN_EXE_wearbridge");
    let page =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/strava/pages/workouts/page_1.json");
    let out = std::process::Command::new(bin)
        .args([
            "normalize",
            "--provider",
            "strava",
            "--resource",
            "workouts",
        ])
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["resource"], "workouts");

    let dir = std::env::temp_dir().join(format!("wb-normalize-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"[{"id": 1, "start_date": "not a date"}]"#).unwrap();
    let out = std::process::Command::new(bin)
        .args([
            "normalize",
            "--provider",
            "strava",
            "--resource",
            "workouts",
        ])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[0].start_date"),
        "the error names the field: {err}"
    );
    let out = std::process::Command::new(bin)
        .args(["normalize", "--provider", "nope", "--resource", "workouts"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown provider"));
    let _ = std::fs::remove_dir_all(&dir);
}
