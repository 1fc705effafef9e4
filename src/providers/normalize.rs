//! Shared pieces of normalisation: reading fields with errors that name them, instants
//! to UTC plus offset, unit conversions and slugs, rate-limit headers. Adapters use these so every provider
//! formats times and units the same way.

use chrono::{DateTime, Datelike, FixedOffset, SecondsFormat, TimeDelta, TimeZone, Utc};
use serde_json::{Map, Value};

use std::time::Duration;

use reqwest::header::HeaderMap;

use super::{ProviderError, RateReport, WindowUsage};

/// Looks up a dotted path (`score.stage_summary.total_in_bed_time_milli`).
pub fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}

pub fn req_str<'a>(v: &'a Value, path: &str) -> Result<&'a str, ProviderError> {
    match at(v, path) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(ProviderError::malformed(
            path,
            format!("expected a string, got {other}"),
        )),
        None => Err(ProviderError::malformed(path, "missing")),
    }
}

/// A required id that providers send as a string or a number.
pub fn req_id(v: &Value, path: &str) -> Result<String, ProviderError> {
    match at(v, path) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(other) => Err(ProviderError::malformed(
            path,
            format!("expected an id, got {other}"),
        )),
        None => Err(ProviderError::malformed(path, "missing")),
    }
}

pub fn opt_str<'a>(v: &'a Value, path: &str) -> Result<Option<&'a str>, ProviderError> {
    match at(v, path) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ProviderError::malformed(
            path,
            format!("expected a string, got {other}"),
        )),
    }
}

pub fn opt_f64(v: &Value, path: &str) -> Result<Option<f64>, ProviderError> {
    match at(v, path) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(ProviderError::malformed(
            path,
            format!("expected a number, got {other}"),
        )),
    }
}

/// An optional percentage (0 to 100); anything outside that range is malformed.
pub fn opt_percentage(v: &Value, path: &str) -> Result<Option<f64>, ProviderError> {
    match opt_f64(v, path)? {
        Some(x) if !(0.0..=100.0).contains(&x) => Err(ProviderError::malformed(
            path,
            format!("{x} is not a percentage"),
        )),
        x => Ok(x),
    }
}

pub fn req_f64(v: &Value, path: &str) -> Result<f64, ProviderError> {
    opt_f64(v, path)?.ok_or_else(|| ProviderError::malformed(path, "missing"))
}

/// An integer, or a float rounded to one; a float outside `i64` (`1e300`, a `u64` past
/// `i64::MAX`) is an error naming the field, not a value silently clamped.
pub fn opt_i64(v: &Value, path: &str) -> Result<Option<i64>, ProviderError> {
    match at(v, path) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Some(i)),
            None => match n.as_f64() {
                Some(f) => to_i64(f, path).map(Some),
                None => Err(ProviderError::malformed(path, "not a number")),
            },
        },
        Some(other) => Err(ProviderError::malformed(
            path,
            format!("expected a number, got {other}"),
        )),
    }
}

/// A number passed through as the source wrote it (an integer stays an integer, a
/// float a float); `null` when absent.
pub fn number(v: &Value, path: &str) -> Result<Value, ProviderError> {
    match at(v, path) {
        None => Ok(Value::Null),
        Some(n @ Value::Number(_)) => Ok(n.clone()),
        Some(other) => Err(ProviderError::malformed(
            path,
            format!("expected a number, got {other}"),
        )),
    }
}

pub fn req_number(v: &Value, path: &str) -> Result<Value, ProviderError> {
    match number(v, path)? {
        Value::Null => Err(ProviderError::malformed(path, "missing")),
        n => Ok(n),
    }
}

pub fn req_array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, ProviderError> {
    match at(v, path) {
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(ProviderError::malformed(
            path,
            format!("expected an array, got {}", kind(other)),
        )),
        None => Err(ProviderError::malformed(path, "missing")),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses a body as JSON, naming the problem if it is not.
pub fn parse_json(body: &[u8]) -> Result<Value, ProviderError> {
    serde_json::from_slice(body)
        .map_err(|e| ProviderError::malformed("$", format!("not JSON: {e}")))
}

/// The format of every instant Wearbridge emits: RFC 3339 in UTC, `+00:00`, seconds.
pub fn format_utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// A float rounded to an integer, or an error naming the field when it does not fit
/// `i64` (`as` would clamp `1e300` to `i64::MAX` and pass nonsense on).
pub fn to_i64(x: f64, field: &str) -> Result<i64, ProviderError> {
    // 2^63 is exactly representable; every float in [-2^63, 2^63) fits an i64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    let r = x.round();
    if r.is_finite() && (-LIMIT..LIMIT).contains(&r) {
        Ok(r as i64)
    } else {
        Err(ProviderError::malformed(
            field,
            format!("{x} is out of range for an integer"),
        ))
    }
}

/// Keeps an instant only if it can be written back as RFC 3339 (years 0000 to 9999): a
/// local `9999-12-31T23:00:00-05:00` is in year 10000 in UTC.
pub fn in_rfc3339_range(t: DateTime<Utc>, field: &str) -> Result<DateTime<Utc>, ProviderError> {
    if (0..=9999).contains(&t.year()) {
        Ok(t)
    } else {
        Err(ProviderError::malformed(
            field,
            format!("{t:?} is outside the years 0000 to 9999"),
        ))
    }
}

/// An RFC 3339 instant with offset → (the instant in UTC, offset in seconds east of UTC).
pub fn utc_instant(raw: &str, field: &str) -> Result<(DateTime<Utc>, i32), ProviderError> {
    let t: DateTime<FixedOffset> = DateTime::parse_from_rfc3339(raw).map_err(|e| {
        ProviderError::malformed(field, format!("`{raw}` is not an RFC 3339 instant: {e}"))
    })?;
    Ok((
        in_rfc3339_range(t.with_timezone(&Utc), field)?,
        t.offset().local_minus_utc(),
    ))
}

/// An RFC 3339 instant with offset → (UTC instant, offset in seconds east of UTC).
pub fn instant(raw: &str, field: &str) -> Result<(String, i32), ProviderError> {
    let (t, offset) = utc_instant(raw, field)?;
    Ok((format_utc(t), offset))
}

/// `t` plus `secs` seconds, or an error naming `field` when the sum leaves the range an
/// instant can be written in (`chrono`'s `+` would panic on overflow).
pub fn plus_secs(t: DateTime<Utc>, secs: i64, field: &str) -> Result<DateTime<Utc>, ProviderError> {
    TimeDelta::try_seconds(secs)
        .and_then(|d| t.checked_add_signed(d))
        .ok_or_else(|| ProviderError::malformed(field, format!("{secs} s is out of range")))
        .and_then(|t| in_rfc3339_range(t, field))
}

/// A window bound moved by one day (`forward` or back) to pad a request, or left where
/// it is at the ends of `chrono`'s range: windows of a re-pull come from the API, and
/// `-` would panic there.
pub fn pad_day(t: DateTime<Utc>, forward: bool) -> DateTime<Utc> {
    let day = TimeDelta::try_days(1).unwrap_or_default();
    let moved = if forward {
        t.checked_add_signed(day)
    } else {
        t.checked_sub_signed(day)
    };
    moved.unwrap_or(t)
}

/// Unix seconds → the instant, within the years RFC 3339 can write.
pub fn unix_instant(secs: i64, field: &str) -> Result<DateTime<Utc>, ProviderError> {
    Utc.timestamp_opt(secs, 0)
        .single()
        .ok_or_else(|| ProviderError::malformed(field, format!("{secs} is not a valid Unix time")))
        .and_then(|t| in_rfc3339_range(t, field))
}

/// Unix seconds → UTC instant.
pub fn from_unix(secs: i64, field: &str) -> Result<String, ProviderError> {
    unix_instant(secs, field).map(format_utc)
}

/// A UTC offset in seconds east of UTC, within the ±18 hours RFC 3339 and `chrono`
/// allow.
pub fn offset_in_range(secs: i64, field: &str) -> Result<i32, ProviderError> {
    if (-18 * 3600..=18 * 3600).contains(&secs) {
        Ok(secs as i32)
    } else {
        Err(ProviderError::malformed(
            field,
            format!("{secs} s is not a UTC offset"),
        ))
    }
}

/// Vital's sleep `type` (`ClientFacingSleep.type` in Vital's API definition,
/// tryVital/vital-python `src/vital/types/client_facing_sleep.py`): `long_sleep` is 3 hours
/// of sleep or more; `short_sleep` under 3 hours, ended before 18:00 local time;
/// `acknowledged_nap` a nap the user acknowledged, typically under 3 hours; `unknown`
/// when the provider does not say.
pub mod sleep_type {
    pub const LONG_SLEEP: &str = "long_sleep";
    pub const SHORT_SLEEP: &str = "short_sleep";
    pub const ACKNOWLEDGED_NAP: &str = "acknowledged_nap";
    pub const UNKNOWN: &str = "unknown";
}

/// `+HH:MM` / `-HH:MM` / `Z` → seconds east of UTC.
pub fn offset_secs(raw: &str, field: &str) -> Result<i32, ProviderError> {
    if raw == "Z" {
        return Ok(0);
    }
    let bad =
        || ProviderError::malformed(field, format!("`{raw}` is not a UTC offset like -05:00"));
    let (sign, rest) = match raw.as_bytes().first() {
        Some(b'+') => (1, &raw[1..]),
        Some(b'-') => (-1, &raw[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    // Two digits each: `i32::parse` alone would take `-5` or `+5` as an hour.
    if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if h > 18 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

/// `Trail Run` / `TrailRun` / `trail-run` → `trail_run`. Unknown sport names pass
/// through this way instead of failing.
pub fn slug(raw: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && prev_lower && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    out.trim_end_matches('_').to_string()
}

/// `trail_run` → `Trail run`.
pub fn display_name(slug: &str) -> String {
    let s = slug.replace('_', " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Kilojoules → kilocalories, one decimal.
pub fn kj_to_kcal(kj: f64) -> f64 {
    round1(kj / 4.184)
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A JSON number from an f64 (`null` for NaN), an i64 stays integral.
pub fn num(x: Option<f64>) -> Value {
    x.and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

pub fn int(x: Option<i64>) -> Value {
    x.map(|i| Value::Number(i.into())).unwrap_or(Value::Null)
}

pub fn text(x: Option<&str>) -> Value {
    x.map(|s| Value::String(s.to_string()))
        .unwrap_or(Value::Null)
}

/// The `source` object of a record.
pub fn source(provider: &str, device_type: &str) -> Value {
    serde_json::json!({"provider": provider, "type": device_type})
}

/// Builds a fields map from pairs.
pub fn fields(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

// Rate-limit headers several adapters read alike (see `Adapter::rate_report`).

/// Usage and limits sent as two headers of comma-separated counts, one per window in an
/// order the provider documents (Strava's `15min,daily`, Polar's `short, long`):
/// `periods` names each position's window. A position without a readable usage is left
/// out; a limit that is not readable is `None`.
pub fn positional_usage(
    headers: &HeaderMap,
    usage: &str,
    limit: &str,
    periods: &[u64],
) -> Vec<WindowUsage> {
    let used = crate::http::counts(headers, usage);
    let limits = crate::http::counts(headers, limit);
    periods
        .iter()
        .enumerate()
        .filter_map(|(i, period)| {
            Some(WindowUsage {
                period_secs: Some(*period),
                used: (*used.get(i)?)?,
                limit: limits.get(i).copied().flatten(),
            })
        })
        .collect()
}

/// The IETF draft's headers, `RateLimit-*` or the older `X-RateLimit-*`: `-Limit` as
/// [`crate::http::quota_policies`], `-Remaining` the requests left in the first limit's window, and
/// `-Reset` the seconds until that window resets. The first limit's window is the first
/// policy with the same limit. The reset is reported only once nothing remains: until
/// then nothing is exhausted and there is nothing to wait for.
pub fn ietf_rate_report(headers: &HeaderMap) -> RateReport {
    let read = |suffix: &str| {
        crate::http::header(headers, &format!("ratelimit-{suffix}"))
            .or_else(|| crate::http::header(headers, &format!("x-ratelimit-{suffix}")))
    };
    let Some((Some(limit), policies)) = read("limit").map(crate::http::quota_policies) else {
        return RateReport::default();
    };
    let Some(remaining) = read("remaining").and_then(|v| v.parse::<u64>().ok()) else {
        return RateReport::default();
    };
    let period_secs = policies
        .iter()
        .find(|p| p.limit == limit)
        .and_then(|p| p.window_secs);
    let reset_after = read("reset")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|_| remaining == 0)
        .map(Duration::from_secs);
    RateReport {
        usage: vec![WindowUsage {
            period_secs,
            used: limit.saturating_sub(remaining),
            limit: Some(limit),
        }],
        reset_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    /// WHOOP's documented example: the minute window is the one closest to its limit,
    /// two of its hundred spent; nothing is exhausted, so no reset to wait for.
    #[test]
    fn the_ietf_draft_shape_is_read_with_its_windows() {
        let h = headers(&[
            (
                "x-ratelimit-limit",
                "100, 100;window=60, 10000;window=86400",
            ),
            ("x-ratelimit-remaining", "98"),
            ("x-ratelimit-reset", "3"),
        ]);
        assert_eq!(
            ietf_rate_report(&h),
            RateReport {
                usage: vec![WindowUsage {
                    period_secs: Some(60),
                    used: 2,
                    limit: Some(100)
                }],
                reset_after: None,
            }
        );
        let h = headers(&[
            (
                "ratelimit-limit",
                "10000, 100;window=60, 10000;window=86400",
            ),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "5400"),
        ]);
        let r = ietf_rate_report(&h);
        assert_eq!(r.usage[0].period_secs, Some(86400));
        assert_eq!(r.usage[0].used, 10000);
        assert_eq!(r.reset_after, Some(Duration::from_secs(5400)));
        // A bare limit names no window.
        let h = headers(&[("x-ratelimit-limit", "120"), ("x-ratelimit-remaining", "7")]);
        assert_eq!(ietf_rate_report(&h).usage[0].period_secs, None);
        assert_eq!(ietf_rate_report(&h).usage[0].used, 113);
    }

    #[test]
    fn garbage_rate_limit_headers_report_nothing() {
        for (limit, remaining) in [
            ("", "1"),
            ("many", "1"),
            ("100", "-1"),
            ("100", "lots"),
            ("18446744073709551616", "1"),
            (";window=60", "0"),
        ] {
            let h = headers(&[
                ("x-ratelimit-limit", limit),
                ("x-ratelimit-remaining", remaining),
            ]);
            assert_eq!(
                ietf_rate_report(&h),
                RateReport::default(),
                "{limit} {remaining}"
            );
        }
    }

    #[test]
    fn instants_become_utc_with_their_offset() {
        assert_eq!(
            instant("2026-11-19T22:41:12+01:00", "t").unwrap(),
            ("2026-11-19T21:41:12+00:00".into(), 3600)
        );
        assert_eq!(
            instant("2022-04-24T02:25:44.774Z", "t").unwrap(),
            ("2022-04-24T02:25:44+00:00".into(), 0)
        );
        let e = instant("yesterday", "bedtime_start").unwrap_err();
        assert!(
            matches!(e, ProviderError::Malformed { ref field, .. } if field == "bedtime_start")
        );
        assert_eq!(offset_secs("-05:00", "o").unwrap(), -18000);
        assert_eq!(offset_secs("+05:30", "o").unwrap(), 19800);
        assert!(offset_secs("5", "o").is_err());
        assert_eq!(
            from_unix(1_700_000_000, "t").unwrap(),
            "2023-11-14T22:13:20+00:00"
        );
        assert!(from_unix(253_402_300_800, "t").is_err(), "year 10000");
        assert!(instant("9999-12-31T23:30:00-01:00", "t").is_err());
        assert!(instant("0000-01-01T00:30:00+01:00", "t").is_err());
        assert!(offset_secs("+-5:00", "o").is_err());
        assert!(offset_secs("+05:-3", "o").is_err());
    }

    #[test]
    fn checked_arithmetic_names_the_field_instead_of_panicking() {
        let t = DateTime::<Utc>::MAX_UTC;
        assert_eq!(pad_day(t, true), t);
        assert_eq!(
            pad_day(DateTime::<Utc>::MIN_UTC, false),
            DateTime::<Utc>::MIN_UTC
        );
        let start = unix_instant(0, "t").unwrap();
        assert_eq!(pad_day(start, true), unix_instant(86_400, "t").unwrap());
        for secs in [i64::MAX, i64::MIN, 400_000 * 365 * 86_400] {
            assert!(
                matches!(plus_secs(start, secs, "elapsed_time"), Err(ProviderError::Malformed { ref field, .. }) if field == "elapsed_time"),
                "{secs}"
            );
        }
        assert_eq!(
            plus_secs(start, 90, "d").unwrap(),
            unix_instant(90, "t").unwrap()
        );
        for x in [1e300, -1e300, f64::NAN, f64::INFINITY, 9.3e18] {
            assert!(to_i64(x, "n").is_err(), "{x}");
        }
        assert_eq!(to_i64(-9.2e18, "n").unwrap(), -9_200_000_000_000_000_000);
        assert_eq!(to_i64(2.5, "n").unwrap(), 3);
        let v = serde_json::json!({"big": 1e300, "huge": u64::MAX, "ok": 4.0});
        assert!(opt_i64(&v, "big").is_err());
        assert!(opt_i64(&v, "huge").is_err());
        assert_eq!(opt_i64(&v, "ok").unwrap(), Some(4));
        assert!(offset_in_range(18 * 3600 + 1, "o").is_err());
        assert_eq!(offset_in_range(-18 * 3600, "o").unwrap(), -64_800);
    }

    #[test]
    fn slugs_and_units() {
        assert_eq!(slug("TrailRun"), "trail_run");
        assert_eq!(slug("Trail Run"), "trail_run");
        assert_eq!(slug("e-bike ride"), "e_bike_ride");
        assert_eq!(slug("HIIT"), "hiit");
        assert_eq!(display_name("trail_run"), "Trail run");
        assert_eq!(kj_to_kcal(1000.0), 239.0);
    }

    #[test]
    fn field_errors_name_the_field() {
        let v = serde_json::json!({"a": {"b": "x"}, "n": 3});
        assert_eq!(req_str(&v, "a.b").unwrap(), "x");
        assert!(
            matches!(req_f64(&v, "a.b"), Err(ProviderError::Malformed { ref field, .. }) if field == "a.b")
        );
        assert!(
            matches!(req_str(&v, "a.c"), Err(ProviderError::Malformed { ref field, .. }) if field == "a.c")
        );
        assert_eq!(opt_i64(&v, "n").unwrap(), Some(3));
        assert_eq!(req_id(&v, "n").unwrap(), "3");
    }
}
