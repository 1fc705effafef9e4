//! What every outbound HTTP caller reads from a reply the same way, whoever it calls:
//! `Retry-After` (webhook receivers and providers both send it), the reply's `Date`, and
//! the rate-limit header syntaxes several providers share (comma-separated counts, the
//! IETF draft's `RateLimit-Limit: 100, 100;window=60` quota policies).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, DATE, RETRY_AFTER};

/// The reply's `Retry-After`, if it has a readable one.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, Utc::now())
}

/// Parses `Retry-After`: delta seconds or an HTTP date (a date already past is none).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}

/// When the reply was made, by its `Date` header (what "now" means for a reset the reply
/// states as an instant or a clock boundary); the wall clock when it has no readable one.
/// A weekday that does not match the date is ignored (Strava's documented example has
/// one).
pub fn reply_time(headers: &HeaderMap) -> DateTime<Utc> {
    header(headers, DATE.as_str())
        .and_then(|v| {
            DateTime::parse_from_rfc2822(v)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .or_else(|| {
                    let (_, rest) = v.split_once(',')?;
                    chrono::NaiveDateTime::parse_from_str(rest.trim(), "%d %b %Y %H:%M:%S GMT")
                        .ok()
                        .map(|t| t.and_utc())
                })
        })
        .unwrap_or_else(Utc::now)
}

/// A header's value as text, if it has one that is.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// A header of comma-separated non-negative integers (Strava's `15min,daily`, Polar's
/// `short, long`), each `None` where it is not one.
pub fn counts(headers: &HeaderMap, name: &str) -> Vec<Option<u64>> {
    header(headers, name)
        .map(|v| v.split(',').map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// A header holding one non-negative integer.
pub fn count(headers: &HeaderMap, name: &str) -> Option<u64> {
    header(headers, name)?.parse().ok()
}

/// One quota policy of a `RateLimit-Limit` header: `10000;window=86400`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaPolicy {
    pub limit: u64,
    pub window_secs: Option<u64>,
}

/// Reads a limit header in the IETF draft's shape (draft-polli-ratelimit-headers, which
/// WHOOP follows): the limit closest to being reached, then any number of policies,
/// `100, 100;window=60, 10000;window=86400`. Returns that first limit (`None` if it is not
/// a number) and the policies that parse; a plain `120` is a first limit and no policy.
pub fn quota_policies(value: &str) -> (Option<u64>, Vec<QuotaPolicy>) {
    let mut items = value.split(',').map(str::trim);
    let first = items.next().and_then(|x| x.parse().ok());
    let policies = items
        .filter_map(|item| {
            let mut parts = item.split(';').map(str::trim);
            let limit = parts.next()?.parse().ok()?;
            let window_secs = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("window"))
                .and_then(|(_, v)| v.trim().trim_matches('"').parse().ok());
            Some(QuotaPolicy { limit, window_secs })
        })
        .collect();
    (first, policies)
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

    #[test]
    fn garbage_header_values_read_as_nothing() {
        assert_eq!(
            quota_policies("5, x;window=1, 7;window=, 8;w=2, 9;window=\"60\""),
            (
                Some(5),
                vec![
                    QuotaPolicy {
                        limit: 7,
                        window_secs: None
                    },
                    QuotaPolicy {
                        limit: 8,
                        window_secs: None
                    },
                    QuotaPolicy {
                        limit: 9,
                        window_secs: Some(60)
                    },
                ]
            )
        );
        assert_eq!(
            counts(&headers(&[("x", "1, ,x,4")]), "x"),
            vec![Some(1), None, None, Some(4)]
        );
    }

    #[test]
    fn the_reply_time_is_its_date() {
        let h = headers(&[("date", "Sat, 10 Oct 2020 20:11:05 GMT")]);
        assert_eq!(reply_time(&h).to_rfc3339(), "2020-10-10T20:11:05+00:00");
        let wrong_weekday = headers(&[("date", "Tue, 10 Oct 2020 20:11:05 GMT")]);
        assert_eq!(reply_time(&wrong_weekday), reply_time(&h));
        let before = Utc::now();
        assert!(reply_time(&headers(&[("date", "yesterday")])) >= before);
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:20:00 GMT", now),
            None
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_is_read_from_the_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, " 7 ".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    }
}
