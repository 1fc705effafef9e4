//! Publishing: in one transaction, insert events (idempotent on their id) and one
//! delivery per matching endpoint. An event published twice yields one event and one
//! set of deliveries, which is what makes replays and crash-restarts safe.

use std::collections::{HashMap, HashSet};

use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use super::{get_opt_uuid, get_uuid, placeholders, Store};
use crate::events::Envelope;
use crate::now_ms;
use crate::states::DeliveryStatus;

/// Which endpoints a publish fans out to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Every enabled endpoint of the team whose filter matches the event type.
    Subscribers,
    /// Only this endpoint of the team, whatever its filter (test events).
    Endpoint(Uuid),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Events inserted now (an event already stored counts 0).
    pub events: u64,
    /// Deliveries created for them.
    pub deliveries: u64,
    /// Each event inserted now, with the number of endpoints it goes to.
    pub fanout: HashMap<String, u64>,
}

/// A stored event, as the delivery log shows it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: Uuid,
    pub team_id: Uuid,
    pub user_id: Option<Uuid>,
    pub event_type: String,
    pub payload: String,
    pub created_at: i64,
}

const EVENT_CHUNK: usize = super::rows_per_statement(7);
const DELIVERY_CHUNK: usize = super::rows_per_statement(3);

impl Store {
    /// Publishes `events` of one team in one transaction.
    pub async fn publish(
        &self,
        team: Uuid,
        events: &[Envelope],
        target: Target,
    ) -> Result<Published, sqlx::Error> {
        let mut tx = self.writer.begin().await?;
        let out = publish_in(&mut tx, team, events, target).await?;
        tx.commit().await?;
        if out.deliveries > 0 {
            self.notify_work();
        }
        Ok(out)
    }

    pub async fn get_event(
        &self,
        team: Uuid,
        id: Uuid,
    ) -> Result<Option<StoredEvent>, sqlx::Error> {
        let row = sqlx::query("SELECT id, team_id, user_id, event_type, payload, created_at FROM events WHERE team_id = $1 AND id = $2")
            .bind(team.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(StoredEvent {
                id: get_uuid(&r, "id")?,
                team_id: get_uuid(&r, "team_id")?,
                user_id: get_opt_uuid(&r, "user_id")?,
                event_type: r.try_get("event_type")?,
                payload: r.try_get("payload")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }
}

/// Publishes inside a caller's transaction, so that a poller can commit records, events,
/// deliveries and its cursor together. The caller wakes workers after commit.
pub async fn publish_in(
    conn: &mut AnyConnection,
    team: Uuid,
    events: &[Envelope],
    target: Target,
) -> Result<Published, sqlx::Error> {
    let now = now_ms();
    let team_s = team.to_string();
    // 1. Insert events; RETURNING tells which ones are new.
    let mut new_ids: HashSet<String> = HashSet::new();
    for chunk in events.chunks(EVENT_CHUNK) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", placeholders(i * 7 + 1, 7)))
            .collect();
        let sql = format!(
            "INSERT INTO events (id, team_id, user_id, event_type, payload, created_at, ordering_key) VALUES {} \
             ON CONFLICT (id) DO NOTHING RETURNING id",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            debug_assert_eq!(e.team_id, team, "an envelope of another team");
            let payload = serde_json::to_string(e).expect("envelopes serialise");
            q = q
                .bind(e.id.to_string())
                .bind(team_s.clone())
                .bind(e.user_id.map(|u| u.to_string()))
                .bind(e.event_type.clone())
                .bind(payload)
                .bind(now)
                .bind(e.ordering_key.clone());
        }
        for row in q.fetch_all(&mut *conn).await? {
            new_ids.insert(row.try_get("id")?);
        }
    }
    // The new events in the order given, not the order RETURNING happens to list them:
    // delivery ids are the publish order that ordered claims go by.
    let inserted: Vec<(String, &str, Option<&str>)> = events
        .iter()
        .filter_map(|e| {
            let id = e.id.to_string();
            new_ids
                .remove(&id)
                .then_some((id, e.event_type.as_str(), e.ordering_key.as_deref()))
        })
        .collect();
    if inserted.is_empty() {
        return Ok(Published::default());
    }
    // 2. Match endpoints: the team's candidates in one read, each event type's among
    //    them once; then insert the deliveries.
    let candidates: Vec<(String, Vec<String>)> = match target {
        Target::Subscribers => sqlx::query(
            "SELECT id, event_types FROM endpoints WHERE team_id = $1 AND enabled = TRUE",
        )
        .bind(&team_s)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, super::get_json(r, "event_types")?)))
        .collect::<Result<_, sqlx::Error>>()?,
        // Only this endpoint, whatever its filter: an empty filter matches every type.
        Target::Endpoint(id) => {
            sqlx::query("SELECT id FROM endpoints WHERE team_id = $1 AND id = $2")
                .bind(&team_s)
                .bind(id.to_string())
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("id")?, Vec::new())))
                .collect::<Result<_, sqlx::Error>>()?
        }
    };
    let mut matching: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut rows: Vec<(&str, &str, Option<&str>)> = Vec::new(); // (event, endpoint, ordering key)
    for &(_, event_type, _) in &inserted {
        matching.entry(event_type).or_insert_with(|| {
            candidates
                .iter()
                .filter(|(_, types)| types.is_empty() || types.iter().any(|t| t == event_type))
                .map(|(id, _)| id.as_str())
                .collect()
        });
    }
    for (event_id, event_type, key) in &inserted {
        for ep in &matching[event_type] {
            rows.push((event_id, *ep, *key));
        }
    }
    let mut deliveries = 0;
    for chunk in rows.chunks(DELIVERY_CHUNK) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                format!(
                    "($1, {}, {}, 0, $2, $2, $2)",
                    placeholders(i * 3 + 3, 3),
                    DeliveryStatus::Pending.sql()
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO deliveries (team_id, event_id, endpoint_id, ordering_key, status, attempts, next_attempt_at, created_at, updated_at) \
             VALUES {} ON CONFLICT (event_id, endpoint_id) DO NOTHING",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(&team_s).bind(now);
        for (event_id, endpoint_id, key) in chunk {
            q = q.bind(*event_id).bind(*endpoint_id).bind(*key);
        }
        deliveries += q.execute(&mut *conn).await?.rows_affected();
    }
    let fanout = inserted
        .iter()
        .map(|(id, t, _)| (id.clone(), matching[t].len() as u64))
        .collect();
    Ok(Published {
        events: inserted.len() as u64,
        deliveries,
        fanout,
    })
}
