//! The record model: one normalised data item (a workout, a night, a day of activity, a
//! body measurement, a timeseries sample) as adapters produce it, with what the rest of
//! Wearbridge derives from it: its content hash (a change is a new hash), when it
//! happened (for range queries) and its JSON as stored and as `daily.data.*` carries it.

use chrono::{DateTime, NaiveDate};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Resource;

/// One normalised record: its resource, the provider's key for it, and its fields
/// (everything the event's `data` carries except `id`, `user_id` and `version`).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub resource: Resource,
    pub provider_id: String,
    pub fields: Map<String, Value>,
}

/// The fields that say when a record happened, in the order they are looked for.
const START_FIELDS: [&str; 5] = [
    "time_start",
    "bedtime_start",
    "measured_at",
    "timestamp",
    "calendar_date",
];

impl Record {
    /// The record as `normalize` prints it and fixtures' `*.expected.jsonl` hold it.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "resource".into(),
            Value::String(self.resource.as_str().into()),
        );
        m.insert(
            "provider_id".into(),
            Value::String(self.provider_id.clone()),
        );
        for (k, v) in &self.fields {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }

    /// The record as stored and as `daily.data.*` events carry it: its fields with its
    /// stable id, its user and its version.
    pub fn data(&self, id: Uuid, user: Uuid, version: i64) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(id.to_string()));
        m.insert("user_id".into(), Value::String(user.to_string()));
        m.insert(
            "provider_id".into(),
            Value::String(self.provider_id.clone()),
        );
        m.insert("version".into(), Value::from(version));
        for (k, v) in &self.fields {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }

    /// SHA-256 (hex) of the fields: equal for equal content, whatever the version.
    pub fn content_hash(&self) -> String {
        // A `Map` of `Value`s always serialises (its keys are strings).
        let bytes = serde_json::to_vec(&self.fields).unwrap_or_default();
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// When the record happened (Unix ms), for range queries: the first instant or
    /// date among its fields; 0 when it has none.
    pub fn starts_at(&self) -> i64 {
        for key in START_FIELDS {
            if let Some(Value::String(s)) = self.fields.get(key) {
                if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                    return t.timestamp_millis();
                }
                if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                    return d
                        .and_time(chrono::NaiveTime::MIN)
                        .and_utc()
                        .timestamp_millis();
                }
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(fields: Value) -> Record {
        Record {
            resource: Resource::Sleep,
            provider_id: "night-1".into(),
            fields: fields.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn data_carries_the_fields_with_id_user_and_version() {
        let r = record(json!({"calendar_date": "2026-11-20", "total": 25920}));
        let (id, user) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let d = r.data(id, user, 3);
        assert_eq!(d["id"], id.to_string());
        assert_eq!(d["user_id"], user.to_string());
        assert_eq!(d["provider_id"], "night-1");
        assert_eq!(d["version"], 3);
        assert_eq!(d["total"], 25920);
        assert_eq!(r.to_json()["resource"], "sleep");
    }

    #[test]
    fn the_hash_changes_with_the_content_only() {
        let a = record(json!({"total": 1}));
        let mut b = a.clone();
        b.provider_id = "other".into();
        assert_eq!(a.content_hash(), b.content_hash());
        assert_eq!(a.content_hash().len(), 64);
        assert_ne!(a.content_hash(), record(json!({"total": 2})).content_hash());
    }

    #[test]
    fn a_record_starts_at_its_first_instant_or_date() {
        let t = record(
            json!({"time_start": "2026-11-20T06:12:00+01:00", "calendar_date": "2026-11-19"}),
        );
        assert_eq!(t.starts_at(), 1_795_151_520_000);
        let d = record(json!({"calendar_date": "2026-11-20"}));
        assert_eq!(d.starts_at(), 1_795_132_800_000);
        assert_eq!(record(json!({"calendar_date": "someday"})).starts_at(), 0);
        assert_eq!(record(json!({})).starts_at(), 0);
    }
}
