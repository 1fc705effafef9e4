//! Stable ids. A record's id is a UUIDv5 over who owns it and the provider's own key for
//! it, and an event's id a UUIDv5 over what it reports, so replaying the same provider
//! data yields the same ids, and inserting an event twice is a no-op. The event id is
//! the `webhook-id` header, unchanged across retries, so receivers can deduplicate.

use uuid::Uuid;

/// The namespace every Wearbridge UUIDv5 lives in (a fixed random UUID).
pub const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_9a3e_2b7d_4e58_a0c4_91d2_5e37_b8f6);

fn v5(parts: &[&str]) -> Uuid {
    // Unit separators keep ("ab","c") and ("a","bc") apart.
    Uuid::new_v5(&NAMESPACE, parts.join("\u{1f}").as_bytes())
}

/// Record id over (team, user, provider, resource, the provider's key for the record
/// or, for timeseries, the sample's timestamp).
pub fn record_id(
    team: Uuid,
    user: Uuid,
    provider: &str,
    resource: &str,
    provider_key: &str,
) -> Uuid {
    v5(&[
        "record",
        &team.to_string(),
        &user.to_string(),
        provider,
        resource,
        provider_key,
    ])
}

/// Event id of a `daily.data.*` event: (event type, record id, record version).
pub fn daily_event_id(event_type: &str, record: Uuid, version: i64) -> Uuid {
    v5(&[
        "daily",
        event_type,
        &record.to_string(),
        &version.to_string(),
    ])
}

/// Event id of a `historical.data.*` event: (connection, resource, window).
pub fn historical_event_id(
    connection: Uuid,
    resource: &str,
    window_start: &str,
    window_end: &str,
) -> Uuid {
    v5(&[
        "historical",
        &connection.to_string(),
        resource,
        window_start,
        window_end,
    ])
}

/// Event id of a `provider.connection.*` event: (event type, connection). A connection
/// that is deleted and made again is a new connection, with new ids.
pub fn connection_event_id(event_type: &str, connection: Uuid) -> Uuid {
    v5(&["connection", event_type, &connection.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let t = Uuid::from_u128(1);
        let u = Uuid::from_u128(2);
        let a = record_id(t, u, "oura", "sleep", "abc");
        assert_eq!(a, record_id(t, u, "oura", "sleep", "abc"));
        assert_ne!(a, record_id(t, u, "oura", "sleep", "abd"));
        assert_ne!(a, record_id(t, Uuid::from_u128(3), "oura", "sleep", "abc"));
        assert_ne!(
            record_id(t, u, "oura", "sleepa", "bc"),
            record_id(t, u, "oura", "sleep", "abc")
        );
        assert_eq!(a.get_version_num(), 5);
        assert_ne!(
            daily_event_id("daily.data.sleep.created", a, 1),
            daily_event_id("daily.data.sleep.updated", a, 2)
        );
        assert_eq!(
            daily_event_id("daily.data.sleep.updated", a, 2),
            daily_event_id("daily.data.sleep.updated", a, 2)
        );
    }
}
