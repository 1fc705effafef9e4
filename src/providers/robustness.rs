//! Adapters never panic on what a provider sends. For every provider in
//! [`super::registry`] (so a provider added later is covered with no change here) and
//! every reply it has on file (`fixtures/<id>/pages/<resource>/page_N.json`, single-record
//! replies in `fixtures/<id>/records/<resource>/`, error bodies in `errors/`, token
//! replies in `oauth/`), a property test feeds mutated copies to the adapter: fields
//! dropped, values replaced by the wrong type, by extreme numbers (±1e300, `i64::MAX`,
//! `u64::MAX`, "NaN" as a string) or by extreme dates (year 10000, year 0, garbage), and
//! the JSON cut short. Whatever the reply, the adapter answers `Ok` or `Err`; a panic
//! fails the test with the provider, the file and the smallest mutation that panics.
//!
//! Replies are first cut to two items per list, so a mutation lands on a field that
//! matters rather than on one of a thousand heart-rate samples. Random node edits alone
//! rarely hit one given field (a Strava page has hundreds of nodes), so every file also
//! gets a sweep: each distinct key, dropped or set to each extreme value everywhere it
//! occurs.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

use super::{registry, Provider};
use crate::events::Resource;

/// Cases per file: about 40 files today, so a few thousand parses, well under a second.
const CASES: u32 = 48;

/// What a file on record is a reply to: a page with the cursor it was requested with
/// (what its predecessor's parse gave: a chain's later steps need theirs).
#[derive(Debug, Clone)]
enum Reply {
    Page(Resource, Option<String>),
    Record(Resource),
    Error,
    Token,
}

fn fixtures_dir(p: &Provider) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(p.id())
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Every reply `p` has on file, with what it answers.
fn replies(p: &Provider) -> Vec<(Reply, PathBuf)> {
    let dir = fixtures_dir(p);
    let mut out = Vec::new();
    for spec in &p.manifest.resources {
        let r = spec.name;
        let mut pages = json_files(&dir.join("pages").join(r.as_str()));
        pages.sort_by_key(|f| page_number(f));
        let mut cursor: Option<String> = None;
        for f in pages {
            let next = std::fs::read(&f)
                .ok()
                .and_then(|b| p.adapter.parse_page(r, &b, cursor.as_deref()).ok())
                .and_then(|page| page.next);
            out.push((Reply::Page(r, std::mem::replace(&mut cursor, next)), f));
        }
        out.extend(
            json_files(&dir.join("records").join(r.as_str()))
                .into_iter()
                .map(|f| (Reply::Record(r), f)),
        );
    }
    out.extend(
        json_files(&dir.join("errors"))
            .into_iter()
            .map(|f| (Reply::Error, f)),
    );
    out.extend(
        json_files(&dir.join("oauth"))
            .into_iter()
            .map(|f| (Reply::Token, f)),
    );
    out
}

/// `page_12.json` → 12 (0 for any other name), so pages chain in their order.
fn page_number(f: &Path) -> u32 {
    f.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("page_"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Values a careless or hostile provider could put anywhere.
fn replacements() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(""),
        json!("garbage"),
        json!("NaN"),
        json!("-Infinity"),
        json!([]),
        json!({}),
        json!([null, "x", 1]),
        json!(0),
        json!(-1),
        json!(0.5),
        json!(1e300),
        json!(-1e300),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!("10000-01-01T00:00:00Z"),
        json!("9999-12-31T23:59:59-23:59"),
        json!("9999-12-31T23:30:00-01:00"),
        json!("0000-01-01T00:00:00+01:00"),
        json!("0000-01-01"),
        json!("9999-12-31"),
        json!("2026-13-45T25:61:61Z"),
        json!("-99:99"),
        json!("+18:00"),
        json!("Mars/Olympus"),
        json!("9223372036854775807"),
    ]
}

/// The reply with every list cut to its first two items, recursively.
fn shrink(v: &Value) -> Value {
    match v {
        Value::Array(a) => Value::Array(a.iter().take(2).map(shrink).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), shrink(x))).collect()),
        other => other.clone(),
    }
}

/// Every object key in the reply, once.
fn keys(v: &Value) -> std::collections::BTreeSet<String> {
    fn walk(v: &Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(m) => {
                for (k, x) in m {
                    out.insert(k.clone());
                    walk(x, out);
                }
            }
            _ => {}
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(v, &mut out);
    out
}

/// Drops `key` (`with` None) or sets it to `with`, in every object that has it.
fn set_key(v: &mut Value, key: &str, with: Option<&Value>) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(|x| set_key(x, key, with)),
        Value::Object(m) => {
            match with {
                None => {
                    m.remove(key);
                }
                Some(w) => {
                    if let Some(slot) = m.get_mut(key) {
                        *slot = w.clone();
                    }
                }
            }
            m.values_mut().for_each(|x| set_key(x, key, with));
        }
        _ => {}
    }
}

/// One step into a JSON tree.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// The path to every node below the root.
fn paths(v: &Value) -> Vec<Vec<Step>> {
    fn walk(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    here.push(Step::Key(k.clone()));
                    out.push(here.clone());
                    walk(x, here, out);
                    here.pop();
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    here.push(Step::Index(i));
                    out.push(here.clone());
                    walk(x, here, out);
                    here.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// Drops the node at `path` (`with` None) or replaces it. A path an earlier mutation
/// made stale is left alone.
fn mutate(v: &mut Value, path: &[Step], with: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = v;
    for step in parents {
        let next = match (step, node) {
            (Step::Key(k), Value::Object(m)) => m.get_mut(k),
            (Step::Index(i), Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return,
        }
    }
    match (last, node, with) {
        (Step::Key(k), Value::Object(m), None) => {
            m.remove(k);
        }
        (Step::Key(k), Value::Object(m), Some(x)) => {
            if let Some(slot) = m.get_mut(k) {
                *slot = x;
            }
        }
        (Step::Index(i), Value::Array(a), None) if *i < a.len() => {
            a.remove(*i);
        }
        (Step::Index(i), Value::Array(a), Some(x)) => {
            if let Some(slot) = a.get_mut(*i) {
                *slot = x;
            }
        }
        _ => {}
    }
}

/// One mutated reply: which nodes change and how, and where the text is cut, if it is.
#[derive(Debug, Clone)]
struct Plan {
    /// (node index, replacement index; `None` drops the node).
    edits: Vec<(usize, Option<usize>)>,
    /// Cut the serialised reply at this fraction of its length (in thousandths).
    truncate: Option<u16>,
}

fn plans() -> impl Strategy<Value = Plan> {
    (
        prop::collection::vec((any::<usize>(), prop::option::of(any::<usize>())), 1..4),
        prop::option::weighted(0.2, 0u16..1000),
    )
        .prop_map(|(edits, truncate)| Plan { edits, truncate })
}

fn apply(original: &Value, plan: &Plan) -> Vec<u8> {
    let mut v = original.clone();
    let all = paths(original);
    let values = replacements();
    for (node, with) in &plan.edits {
        if all.is_empty() {
            break;
        }
        let with = with.map(|w| values[w % values.len()].clone());
        mutate(&mut v, &all[node % all.len()], with);
    }
    let mut body = v.to_string().into_bytes();
    if let Some(t) = plan.truncate {
        body.truncate(body.len() * usize::from(t) / 1000);
    }
    body
}

/// Everything an adapter does with a provider's reply of this kind (`thorough`: with
/// every cursor and status; otherwise the main call only, for the sweep's many cases).
/// Results are dropped: the property is only that each call returns.
fn feed(p: &Provider, reply: &Reply, body: &[u8], thorough: bool) {
    let a = p.adapter.as_ref();
    match reply {
        Reply::Page(r, cursor) => {
            let r = *r;
            let _ = a.parse_page(r, body, cursor.as_deref());
            if thorough {
                let _ = a.parse_page(r, body, None);
                let _ = a.in_band_error(None, body);
                let _ = a.parse_page(r, body, Some("2"));
                let _ = a.parse_page(r, body, Some("4294967295"));
                let _ = a.parse_page(r, body, Some("18446744073709551616"));
            }
        }
        Reply::Record(r) => {
            let _ = a.parse_record(*r, body);
            if thorough {
                let _ = a.in_band_error(None, body);
            }
        }
        Reply::Error => {
            let statuses: &[u16] = if thorough {
                &[200, 400, 401, 403, 404, 429, 500, 503]
            } else {
                &[401, 429]
            };
            for status in statuses {
                let _ = a.classify_error(*status, None, body);
            }
            let _ = a.in_band_error(Some(std::time::Duration::from_secs(1)), body);
        }
        Reply::Token => {
            let statuses: &[u16] = if thorough {
                &[200, 400, 401, 500]
            } else {
                &[200]
            };
            for &status in statuses {
                if let Ok(rewritten) = a.token_reply(status, body) {
                    if let Ok(v) = serde_json::from_slice::<Value>(&rewritten) {
                        let _ = a.external_user_id(&v);
                    }
                }
            }
        }
    }
}

/// Runs `feed` and turns a panic into its message.
fn returns(p: &Provider, reply: &Reply, body: &[u8], thorough: bool) -> Result<(), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        feed(p, reply, body, thorough)
    }))
    .map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

fn no_panic(p: &'static Provider, reply: &Reply, file: &Path) {
    let bytes = std::fs::read(file).unwrap();
    // An empty file is a reply without a body (a 204, a commit's 200): fed as it is.
    if bytes.iter().all(u8::is_ascii_whitespace) {
        if let Err(why) = returns(p, reply, &bytes, true) {
            panic!("{} {}: panicked: {why}", p.id(), file.display());
        }
        return;
    }
    let original: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{}: not JSON: {e}", file.display()));
    let original = shrink(&original);
    // The sweep: every key, dropped or set to every extreme value, everywhere at once.
    let values = replacements();
    for key in keys(&original) {
        for with in std::iter::once(None).chain(values.iter().map(Some)) {
            let mut v = original.clone();
            set_key(&mut v, &key, with);
            if let Err(why) = returns(p, reply, v.to_string().as_bytes(), false) {
                panic!(
                    "{} {}: `{key}` set to {with:?} panicked: {why}",
                    p.id(),
                    file.display()
                );
            }
        }
    }
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&plans(), |plan| {
        let body = apply(&original, &plan);
        returns(p, reply, &body, true)
            .map_err(|why| TestCaseError::fail(format!("panicked: {why}")))
    });
    if let Err(e) = result {
        panic!("{} {}: {e}", p.id(), file.display());
    }
}

#[test]
fn no_adapter_panics_on_a_mutated_reply() {
    let mut files = 0;
    for p in registry() {
        let all = replies(p);
        assert!(
            all.iter().any(|(r, _)| matches!(r, Reply::Page(..))),
            "{}: no captured pages",
            p.id()
        );
        for (reply, file) in all {
            // The untouched page, with the cursor it was requested with, is what the
            // adapter is built for.
            if let Reply::Page(r, cursor) = &reply {
                let body = std::fs::read(&file).unwrap();
                assert!(
                    p.adapter.parse_page(*r, &body, cursor.as_deref()).is_ok(),
                    "{}",
                    file.display()
                );
            }
            no_panic(p, &reply, &file);
            files += 1;
        }
    }
    assert!(files >= registry().len(), "{files} files");
}

#[test]
fn single_record_requests_take_any_key_without_panicking() {
    let keys = [
        "",
        "0",
        "-1",
        "1e300",
        "9223372036854775808",
        "../x",
        "a/b",
        "é",
    ];
    for p in registry() {
        for spec in &p.manifest.resources {
            for key in keys {
                if let Some(req) = p.adapter.record_request(spec, key) {
                    assert!(
                        !req.path.contains(".."),
                        "{} {}: {key} reached the path {}",
                        p.id(),
                        spec.name,
                        req.path
                    );
                }
            }
        }
    }
}

/// Every rate-limit header any provider sends, with the date the resets count from.
const RATE_HEADERS: [&str; 14] = [
    "date",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-usage",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-usage",
    "x-ratelimit-window",
    "x-readratelimit-limit",
    "x-readratelimit-usage",
    "x-ratelimit-tier",
];

/// Header values built from the pieces the real ones are made of, in any order, plus
/// extremes: whatever arrives, `rate_report` answers.
fn header_value() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("0".to_string()),
        Just("100".to_string()),
        Just("18446744073709551615".to_string()),
        Just("18446744073709551616".to_string()),
        Just("-1".to_string()),
        Just("1e3".to_string()),
        Just(",".to_string()),
        Just(", ".to_string()),
        Just(";window=".to_string()),
        Just(";window=86400".to_string()),
        Just("=".to_string()),
        Just("Tue, 10 Oct 2020 20:11:05 GMT".to_string()),
        Just("Sat, 31 Dec 9999 23:59:59 GMT".to_string()),
        Just("x".to_string()),
        "[ -~]{0,8}",
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|v| v.concat())
}

#[test]
fn no_adapter_panics_on_garbage_rate_limit_headers() {
    let strategy = proptest::collection::vec(
        (
            proptest::sample::select(RATE_HEADERS.to_vec()),
            header_value(),
        ),
        0..8,
    );
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |pairs| {
            let mut headers = reqwest::header::HeaderMap::new();
            for (name, value) in &pairs {
                if let Ok(v) = reqwest::header::HeaderValue::from_str(value) {
                    headers.insert(*name, v);
                }
            }
            for p in registry() {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    p.adapter.rate_report(&headers)
                }))
                .map_err(|_| TestCaseError::fail(format!("{} panicked on {pairs:?}", p.id())))?;
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_sweep_sets_a_key_everywhere_and_lists_are_cut_to_two() {
    let v = json!({"data": [{"t": 1, "x": [1, 2, 3]}, {"t": 2}, {"t": 3}], "t": 0});
    let small = shrink(&v);
    assert_eq!(small["data"].as_array().unwrap().len(), 2);
    assert_eq!(small["data"][0]["x"], json!([1, 2]));
    assert_eq!(
        keys(&small).into_iter().collect::<Vec<_>>(),
        ["data", "t", "x"]
    );
    let mut set = small.clone();
    set_key(&mut set, "t", Some(&json!(1e300)));
    assert_eq!(
        (&set["t"], &set["data"][1]["t"]),
        (&json!(1e300), &json!(1e300))
    );
    let mut dropped = small;
    set_key(&mut dropped, "t", None);
    assert_eq!(dropped, json!({"data": [{"x": [1, 2]}, {}]}));
}

#[test]
fn mutations_reach_every_node_and_truncation_cuts() {
    let v = json!({"a": {"b": [1, {"c": 2}]}, "d": 3});
    // a, a.b, a.b[0], a.b[1], a.b[1].c, d
    assert_eq!(paths(&v).len(), 6);
    let dropped = apply(
        &v,
        &Plan {
            edits: vec![(5, None)],
            truncate: None,
        },
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&dropped).unwrap(),
        json!({"a": {"b": [1, {"c": 2}]}})
    );
    let replaced = apply(
        &v,
        &Plan {
            edits: vec![(4, Some(12))],
            truncate: None,
        },
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&replaced).unwrap()["a"]["b"][1]["c"],
        json!(1e300)
    );
    let cut = apply(
        &v,
        &Plan {
            edits: vec![(0, Some(0))],
            truncate: Some(500),
        },
    );
    assert!(serde_json::from_slice::<Value>(&cut).is_err());
}
