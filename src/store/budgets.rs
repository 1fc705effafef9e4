//! Rate budgets shared by every process on the database: the provider limits the poller
//! spends (see `poller::budget` for what a budget is made of).
//!
//! A budget is one row (a provider app's, or one user's of it) holding, per window, the
//! requests counted in each of [`SLOTS`] slots of the window's length. A request is
//! counted one slot late and a slot stays counted while any part of it lies inside the
//! window, so the sum over the live slots is never less than what the provider can have
//! seen in any window of that length: the limit is never exceeded, and there is no burst
//! beyond it (unlike a token bucket whose burst is the whole limit). What that costs is
//! about two slots in 250 of the window's budget.
//!
//! Taking budget locks every row the request is charged to (`FOR UPDATE`, in key order so
//! two takers never deadlock), checks every window and writes them all, or writes
//! nothing: a user's and the app's budgets are charged together or not at all. A refusal
//! is read-only, except that a refused poll marks the budget so that backfills yield the
//! next free slot to it. A process's concurrent takes go in one transaction (a group,
//! each decided as if it came alone after those before it), so the app's row is locked
//! once per group and waited for by one connection of the process, not by every pull.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{placeholders, Backend, Store};
use crate::states::ConnectionStatus;

/// Slots per window: the granularity of the sliding window.
pub const SLOTS: i64 = 250;

/// One budget to charge: its key and its windows' limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetSpec {
    pub key: String,
    pub windows: Vec<BudgetWindow>,
}

/// At most `limit` requests in any `period_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetWindow {
    pub period_ms: i64,
    pub limit: u64,
}

/// Who is asking: a poll of fresh data is served before backfill work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Poll,
    Backfill,
}

/// The answer to a request for budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Granted,
    /// No budget before `until` (Unix ms), because of `why`.
    Wait {
        until: i64,
        why: WaitReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// A window is full.
    Limit,
    /// The provider refused a request (429) and said, or we chose, when to come back.
    Paused,
    /// Polls are waiting for this budget; backfills let them go first.
    Yielding,
}

impl WaitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::Limit => "limit",
            WaitReason::Paused => "paused",
            WaitReason::Yielding => "yielding",
        }
    }
}

/// A budget row's state, stored as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetState {
    #[serde(default)]
    windows: Vec<WindowState>,
    /// Paused by a 429 until (Unix ms).
    #[serde(default)]
    paused_until: i64,
    /// A poll was refused and comes back at about this time: backfills wait until then.
    #[serde(default)]
    polls_waiting_until: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct WindowState {
    period_ms: i64,
    /// The slot index of `counts[0]`.
    first: i64,
    counts: Vec<u64>,
    /// The limit the provider last reported for this window, when it differs from the
    /// documented one (a raised limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reported_limit: Option<u64>,
}

fn slot_ms(period_ms: i64) -> i64 {
    (period_ms / SLOTS).max(1)
}

impl WindowState {
    fn new(period_ms: i64) -> WindowState {
        WindowState {
            period_ms,
            ..Default::default()
        }
    }

    /// The oldest slot that may still hold requests inside a window ending at `now`.
    fn oldest_live(&self, now: i64) -> i64 {
        (now - self.period_ms).div_euclid(slot_ms(self.period_ms))
    }

    /// Drops the slots that have left the window.
    fn roll(&mut self, now: i64) {
        let oldest = self.oldest_live(now);
        if self.first < oldest {
            let drop = ((oldest - self.first) as usize).min(self.counts.len());
            self.counts.drain(..drop);
            self.first = oldest;
        }
    }

    fn used(&self, now: i64) -> u64 {
        let oldest = self.oldest_live(now);
        self.counts
            .iter()
            .enumerate()
            .filter(|(i, _)| self.first + *i as i64 >= oldest)
            .map(|(_, n)| *n)
            .fold(0u64, |a, n| a.saturating_add(n))
    }

    fn limit(&self, documented: u64) -> u64 {
        self.reported_limit.unwrap_or(documented)
    }

    /// Counts `n` requests made at `now`, in the slot after now's (see the module doc).
    fn add(&mut self, now: i64, n: u64) {
        let slot = now.div_euclid(slot_ms(self.period_ms)) + 1;
        if self.counts.is_empty() {
            self.first = slot;
        }
        if slot < self.first {
            // The clock went back: count it in the oldest slot kept.
            self.counts[0] = self.counts[0].saturating_add(n);
            return;
        }
        let i = (slot - self.first) as usize;
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] = self.counts[i].saturating_add(n);
    }

    /// The earliest time at or after `now` when `need` more requests fit under `limit`.
    fn free_at(&self, now: i64, need: u64, limit: u64) -> i64 {
        let used = self.used(now);
        if used.saturating_add(need) <= limit {
            return now;
        }
        let slot = slot_ms(self.period_ms);
        let oldest = self.oldest_live(now);
        let mut left = used;
        for (i, n) in self.counts.iter().enumerate() {
            let k = self.first + i as i64;
            if k < oldest {
                continue;
            }
            left = left.saturating_sub(*n);
            if left.saturating_add(need) <= limit {
                // Slot k leaves the window once the window's start passes its end.
                return ((k + 1) * slot + self.period_ms).max(now + 1);
            }
        }
        now + self.period_ms
    }
}

impl BudgetState {
    fn window(&mut self, period_ms: i64) -> &mut WindowState {
        match self.windows.iter().position(|w| w.period_ms == period_ms) {
            Some(i) => &mut self.windows[i],
            None => {
                self.windows.push(WindowState::new(period_ms));
                self.windows.last_mut().expect("just pushed")
            }
        }
    }

    /// When this budget could serve `need` requests at `priority`: `now` if it can.
    pub fn available_at(
        &mut self,
        spec: &BudgetSpec,
        now: i64,
        need: u64,
        priority: Priority,
    ) -> (i64, WaitReason) {
        let mut at = (now, WaitReason::Limit);
        if self.paused_until > at.0 {
            at = (self.paused_until, WaitReason::Paused);
        }
        if priority == Priority::Backfill && self.polls_waiting_until > at.0 {
            at = (self.polls_waiting_until, WaitReason::Yielding);
        }
        for w in &spec.windows {
            let ws = self.window(w.period_ms);
            ws.roll(now);
            let free = ws.free_at(now, need, ws.limit(w.limit));
            if free > at.0 {
                at = (free, WaitReason::Limit);
            }
        }
        at
    }

    /// Spends `n` requests at `now` in every window of `spec`.
    pub fn spend(&mut self, spec: &BudgetSpec, now: i64, n: u64) {
        for w in &spec.windows {
            let ws = self.window(w.period_ms);
            ws.roll(now);
            ws.add(now, n);
        }
        // Windows the manifest no longer has are forgotten.
        self.windows
            .retain(|ws| spec.windows.iter().any(|w| w.period_ms == ws.period_ms));
    }

    /// Moves one request taken at `taken` to `done` (when its reply came) in every
    /// window whose one-slot grace it outran; whether anything moved. A request is
    /// counted one slot late so that it is still counted while the provider can still
    /// hold it; one that took longer than that to reach the provider must be counted
    /// by when it surely had.
    pub fn settle(&mut self, spec: &BudgetSpec, taken: i64, done: i64) -> bool {
        let mut moved = false;
        for w in &spec.windows {
            let slot = slot_ms(w.period_ms);
            let from = taken.div_euclid(slot) + 1;
            if done < (from + 1) * slot {
                continue;
            }
            let ws = self.window(w.period_ms);
            if let Some(i) = from
                .checked_sub(ws.first)
                .and_then(|i| usize::try_from(i).ok())
                .filter(|i| *i < ws.counts.len() && ws.counts[*i] > 0)
            {
                ws.counts[i] -= 1;
            }
            ws.add(done, 1);
            moved = true;
        }
        moved
    }

    /// Requests counted in the window of `period_ms` ending at `now`.
    pub fn used(&self, period_ms: i64, now: i64) -> u64 {
        self.windows
            .iter()
            .find(|w| w.period_ms == period_ms)
            .map(|w| w.used(now))
            .unwrap_or(0)
    }

    /// Raises the count of a window to what the provider says was used (never lowers
    /// it: requests in flight are ours to count), and adopts the limit it reports.
    /// Whether our count was short.
    pub fn correct(&mut self, period_ms: i64, now: i64, used: u64, limit: Option<u64>) -> bool {
        let ws = self.window(period_ms);
        ws.roll(now);
        let ours = ws.used(now);
        if used > ours {
            ws.add(now, used - ours);
        }
        if let Some(l) = limit.filter(|l| *l > 0) {
            ws.reported_limit = Some(l);
        }
        used > ours
    }

    /// The limit the provider last reported for the window of `period_ms`, if any.
    pub fn reported_limit(&self, period_ms: i64) -> Option<u64> {
        self.windows
            .iter()
            .find(|w| w.period_ms == period_ms)
            .and_then(|w| w.reported_limit)
    }

    pub fn paused_until(&self) -> i64 {
        self.paused_until
    }
}

/// One request for budget: `need` requests charged to every budget in `specs` at
/// `now`, all or none.
#[derive(Debug, Clone)]
pub struct BudgetRequest {
    pub specs: Vec<BudgetSpec>,
    pub need: u64,
    pub priority: Priority,
    pub now: i64,
}

/// Takes of budget grouped into one transaction (see [`super::group`]): a provider
/// app's budget row is locked once per group rather than once per request, and by one
/// pooled connection of this process at a time rather than by every task that waits
/// for it.
pub(crate) type BudgetGroup = super::group::Group<BudgetRequest, Grant>;

/// Requests one group takes at most (two parameters per budget row it touches).
const GROUP_MAX_REQUESTS: usize = 64;

impl Store {
    /// Takes `need` requests from every budget in `specs` at `now`, all or none; with
    /// whatever other requests of this process are waiting, in one transaction.
    pub async fn take_budget(
        &self,
        specs: &[BudgetSpec],
        need: u64,
        priority: Priority,
        now: i64,
    ) -> anyhow::Result<Grant> {
        let request = BudgetRequest {
            specs: specs.to_vec(),
            need,
            priority,
            now,
        };
        self.budget_group
            .run(
                request,
                |queued| queued.len().min(GROUP_MAX_REQUESTS),
                |requests| async move {
                    match super::retry_transient("taking rate budget", || {
                        self.take_budgets(&requests)
                    })
                    .await
                    {
                        Ok(grants) => grants.into_iter().map(Ok).collect(),
                        Err(e) => requests.iter().map(|_| Err(e.to_string())).collect(),
                    }
                },
            )
            .await
            .map_err(anyhow::Error::msg)
    }

    /// Takes budget for each request in turn, in one transaction: every row any of
    /// them is charged to is locked (in key order, so two takers never deadlock), each
    /// request is granted or refused as if it came alone after the ones before it, and
    /// each row is written once.
    pub async fn take_budgets(
        &self,
        requests: &[BudgetRequest],
    ) -> Result<Vec<Grant>, sqlx::Error> {
        let mut keys: Vec<&str> = requests
            .iter()
            .flat_map(|r| r.specs.iter().map(|s| s.key.as_str()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let latest = requests.iter().map(|r| r.now).max().unwrap_or(0);
        let mut tx = self.begin_budget().await?;
        let mut states = self.locked_states(&mut tx, &keys, latest).await?;
        let mut dirty: HashSet<String> = HashSet::new();
        let mut grants = Vec::with_capacity(requests.len());
        for r in requests {
            let mut wait: Option<(i64, WaitReason)> = None;
            let mut refusing = Vec::new();
            for spec in &r.specs {
                let state = states.entry(spec.key.clone()).or_default();
                let (at, why) = state.available_at(spec, r.now, r.need, r.priority);
                if at > r.now {
                    refusing.push(spec);
                    if wait.is_none_or(|(w, _)| at > w) {
                        wait = Some((at, why));
                    }
                }
            }
            match wait {
                None => {
                    for spec in &r.specs {
                        states
                            .entry(spec.key.clone())
                            .or_default()
                            .spend(spec, r.now, r.need);
                        dirty.insert(spec.key.clone());
                    }
                    grants.push(Grant::Granted);
                }
                Some((until, why)) => {
                    if r.priority == Priority::Poll && why != WaitReason::Paused {
                        // Backfills hold off until the poll has had its slot.
                        let hold = until + r.specs.iter().map(hold_ms).max().unwrap_or(0);
                        for spec in refusing {
                            let state = states.entry(spec.key.clone()).or_default();
                            if state.polls_waiting_until < hold {
                                state.polls_waiting_until = hold;
                                dirty.insert(spec.key.clone());
                            }
                        }
                    }
                    grants.push(Grant::Wait { until, why });
                }
            }
        }
        if dirty.is_empty() {
            tx.rollback().await?;
        } else {
            let mut changed: Vec<(&str, &BudgetState)> = states
                .iter()
                .filter(|(k, _)| dirty.contains(*k))
                .map(|(k, s)| (k.as_str(), s))
                .collect();
            changed.sort_by_key(|(k, _)| *k);
            write_states(&mut tx, &changed, latest).await?;
            tx.commit().await?;
        }
        Ok(grants)
    }

    /// A transaction that reads budgets and may then write them. On SQLite it takes the
    /// write lock up front: a read lock upgraded later fails at once (no busy wait) when
    /// another process upgraded first.
    async fn begin_budget(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.writer.begin().await,
        }
    }

    /// Budgets' rows, locked for this transaction in key order (`keys` sorted), those
    /// not there yet created empty.
    async fn locked_states(
        &self,
        tx: &mut sqlx::AnyConnection,
        keys: &[&str],
        now: i64,
    ) -> Result<HashMap<String, BudgetState>, sqlx::Error> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        // Rows of `keys`, locked, into `states`.
        async fn read(
            tx: &mut sqlx::AnyConnection,
            keys: &[&str],
            lock: &str,
            states: &mut HashMap<String, BudgetState>,
        ) -> Result<(), sqlx::Error> {
            let sql = format!(
                "SELECT key, state FROM rate_budgets WHERE key IN ({}) ORDER BY key{lock}",
                placeholders(1, keys.len())
            );
            let mut q = sqlx::query(&sql);
            for k in keys {
                q = q.bind(*k);
            }
            for row in q.fetch_all(&mut *tx).await? {
                states.insert(
                    row.try_get::<String, _>("key")?,
                    parse_state(&row.try_get::<String, _>("state")?),
                );
            }
            Ok(())
        }
        let mut states = HashMap::with_capacity(keys.len());
        read(tx, keys, lock, &mut states).await?;
        let missing: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| !states.contains_key(*k))
            .collect();
        if missing.is_empty() {
            return Ok(states);
        }
        let values = (0..missing.len())
            .map(|i| format!("(${}, '{{}}', $1)", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO rate_budgets (key, state, updated_at) VALUES {values} ON CONFLICT (key) DO NOTHING"
        );
        let mut q = sqlx::query(&sql).bind(now);
        for k in &missing {
            q = q.bind(*k);
        }
        q.execute(&mut *tx).await?;
        read(tx, &missing, lock, &mut states).await?;
        Ok(states)
    }

    /// Changes one budget's state under its row lock.
    async fn update_budget(
        &self,
        key: &str,
        now: i64,
        change: impl Fn(&mut BudgetState),
    ) -> Result<(), sqlx::Error> {
        super::retry_transient("updating rate budget", || async {
            let mut tx = self.begin_budget().await?;
            let mut state = self
                .locked_states(&mut tx, &[key], now)
                .await?
                .remove(key)
                .unwrap_or_default();
            change(&mut state);
            write_states(&mut tx, &[(key, &state)], now).await?;
            tx.commit().await
        })
        .await
    }

    /// Settles requests taken at `taken` whose replies came at `done` (see
    /// [`BudgetState::settle`]); writes only when a request outran its grace.
    pub async fn settle_budget(
        &self,
        specs: &[BudgetSpec],
        taken: i64,
        done: i64,
    ) -> Result<(), sqlx::Error> {
        let late = specs.iter().any(|spec| {
            spec.windows.iter().any(|w| {
                let slot = slot_ms(w.period_ms);
                done >= (taken.div_euclid(slot) + 2) * slot
            })
        });
        if !late {
            return Ok(());
        }
        for spec in specs {
            self.update_budget(&spec.key, done, |s| {
                s.settle(spec, taken, done);
            })
            .await?;
        }
        Ok(())
    }

    /// Pauses a budget until `until` (a 429): every process waits.
    pub async fn pause_budget(&self, key: &str, until: i64, now: i64) -> Result<(), sqlx::Error> {
        self.update_budget(key, now, |s| s.paused_until = s.paused_until.max(until))
            .await
    }

    /// Corrects a budget's window by what the provider reported (see
    /// [`BudgetState::correct`]); whether our count was short.
    pub async fn correct_budget(
        &self,
        key: &str,
        period_ms: i64,
        used: u64,
        limit: Option<u64>,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        // Most replies agree with our count: a read tells, and nothing is written.
        let seen = self.budget_state(key).await?;
        let differs = seen.used(period_ms, now) < used
            || limit.is_some_and(|l| l > 0 && seen.reported_limit(period_ms) != Some(l));
        if !differs {
            return Ok(false);
        }
        let short = std::sync::atomic::AtomicBool::new(false);
        self.update_budget(key, now, |s| {
            let was = s.correct(period_ms, now, used, limit);
            short.store(was, std::sync::atomic::Ordering::Relaxed);
        })
        .await?;
        Ok(short.into_inner())
    }

    /// A budget's state as stored (empty if never used).
    pub async fn budget_state(&self, key: &str) -> Result<BudgetState, sqlx::Error> {
        let row = sqlx::query("SELECT state FROM rate_budgets WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => parse_state(&r.try_get::<String, _>("state")?),
            None => BudgetState::default(),
        })
    }

    /// Users connected to a provider: the count Polar's limits grow with.
    pub async fn registered_users(&self, provider: &str) -> Result<u64, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM connections WHERE provider = $1 AND status = {}",
            ConnectionStatus::Connected.sql()
        ))
        .bind(provider)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")?.max(0) as u64)
    }
}

/// How long backfills keep off a budget after the time a refused poll comes back: one
/// slot of its shortest window, the time the poll has to take its request.
fn hold_ms(spec: &BudgetSpec) -> i64 {
    spec.windows
        .iter()
        .map(|w| slot_ms(w.period_ms))
        .min()
        .unwrap_or(0)
}

fn parse_state(text: &str) -> BudgetState {
    // A state this version cannot read starts over (at worst one window's spend is
    // forgotten); refusing to schedule anything would be worse.
    serde_json::from_str(text).unwrap_or_default()
}

/// Writes budgets' states (one statement for all of them).
async fn write_states(
    tx: &mut sqlx::AnyConnection,
    states: &[(&str, &BudgetState)],
    now: i64,
) -> Result<(), sqlx::Error> {
    let texts = states
        .iter()
        .map(|(_, s)| serde_json::to_string(s).map_err(|e| sqlx::Error::Encode(e.into())))
        .collect::<Result<Vec<_>, _>>()?;
    let values = (0..states.len())
        .map(|i| format!("(${}, ${})", 2 * i + 2, 2 * i + 3))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "WITH v (key, state) AS (VALUES {values}) \
         UPDATE rate_budgets SET state = (SELECT v.state FROM v WHERE v.key = rate_budgets.key), updated_at = $1 \
         WHERE key IN (SELECT key FROM v)"
    );
    let mut q = sqlx::query(&sql).bind(now);
    for ((key, _), text) in states.iter().zip(texts) {
        q = q.bind(*key).bind(text);
    }
    q.execute(&mut *tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(limit: u64, period_ms: i64) -> BudgetSpec {
        BudgetSpec {
            key: "k".into(),
            windows: vec![BudgetWindow { period_ms, limit }],
        }
    }

    /// Takes requests one at a time as early as the state allows, until `end`.
    fn drive(state: &mut BudgetState, spec: &BudgetSpec, end: i64) -> Vec<i64> {
        let (mut now, mut sent) = (0, vec![]);
        while now < end {
            let (at, _) = state.available_at(spec, now, 1, Priority::Backfill);
            if at > now {
                now = at;
                continue;
            }
            state.spend(spec, now, 1);
            sent.push(now);
        }
        sent
    }

    #[test]
    fn no_window_ever_holds_more_than_the_limit() {
        let s = spec(100, 60_000);
        let mut state = BudgetState::default();
        let sent = drive(&mut state, &s, 600_000);
        // Every interval of one period, wherever it starts, holds at most the limit.
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().take_while(|u| **u < t + 60_000).count();
            assert!(
                in_window <= 100,
                "{in_window} requests in the minute from {t}"
            );
        }
        // And the budget is used: at least 95 % of ten windows' worth.
        assert!(sent.len() >= 950, "only {} of 1000", sent.len());
        // No burst beyond the window: the first minute holds exactly the limit.
        assert_eq!(sent.iter().filter(|t| **t < 60_000).count(), 100);
    }

    #[test]
    fn every_window_binds_and_the_longest_paces_the_rest() {
        let s = BudgetSpec {
            key: "k".into(),
            windows: vec![
                BudgetWindow {
                    period_ms: 1_000,
                    limit: 10,
                },
                BudgetWindow {
                    period_ms: 10_000,
                    limit: 30,
                },
            ],
        };
        let mut state = BudgetState::default();
        let sent = drive(&mut state, &s, 30_000);
        for (i, t) in sent.iter().enumerate() {
            assert!(sent[i..].iter().take_while(|u| **u < t + 1_000).count() <= 10);
            assert!(sent[i..].iter().take_while(|u| **u < t + 10_000).count() <= 30);
        }
        assert!(sent.len() >= 85, "{}", sent.len());
    }

    #[test]
    fn a_refused_request_says_when_to_come_back_and_then_fits() {
        let s = spec(2, 1_000);
        let mut state = BudgetState::default();
        state.spend(&s, 0, 2);
        let (at, why) = state.available_at(&s, 10, 1, Priority::Backfill);
        assert_eq!(why, WaitReason::Limit);
        assert!(at > 10 && at <= 1_030, "{at}");
        let mut earlier = state.clone();
        assert!(earlier.available_at(&s, at - 1, 1, Priority::Backfill).0 > at - 1);
        assert_eq!(state.available_at(&s, at, 1, Priority::Backfill).0, at);
    }

    #[test]
    fn pauses_and_waiting_polls_hold_backfills_but_polls_only_for_pauses() {
        let s = spec(100, 1_000);
        let mut state = BudgetState {
            polls_waiting_until: 500,
            ..Default::default()
        };
        assert_eq!(
            state.available_at(&s, 0, 1, Priority::Backfill),
            (500, WaitReason::Yielding)
        );
        assert_eq!(state.available_at(&s, 0, 1, Priority::Poll).0, 0);
        state.paused_until = 700;
        assert_eq!(
            state.available_at(&s, 0, 1, Priority::Poll),
            (700, WaitReason::Paused)
        );
    }

    #[test]
    fn the_providers_count_raises_ours_never_lowers_it_and_its_limit_is_adopted() {
        let s = spec(100, 60_000);
        let mut state = BudgetState::default();
        state.spend(&s, 0, 10);
        assert!(state.correct(60_000, 0, 40, None), "ours was short");
        assert_eq!(state.used(60_000, 0), 40);
        assert!(!state.correct(60_000, 0, 5, None));
        assert_eq!(state.used(60_000, 0), 40, "never lowered");
        state.correct(60_000, 0, 40, Some(600));
        assert_eq!(state.available_at(&s, 0, 500, Priority::Poll).0, 0);
        assert!(state.available_at(&s, 0, 561, Priority::Poll).0 > 0);
    }

    #[test]
    fn a_slow_request_is_counted_by_when_its_reply_came() {
        let s = spec(2, 1_000);
        let mut state = BudgetState::default();
        state.spend(&s, 0, 1);
        // Within its grace: nothing to move.
        assert!(!state.settle(&s, 0, 5));
        // Its reply came 300 ms later: it counts until 1,300 ms and more, not 1,020.
        assert!(state.settle(&s, 0, 300));
        assert_eq!(state.used(1_000, 0), 1);
        state.spend(&s, 0, 1);
        let (at, _) = state.clone().available_at(&s, 0, 1, Priority::Backfill);
        assert!(at <= 1_030, "the quick one frees its place on time: {at}");
        let mut later = state.clone();
        later.spend(&s, at, 1);
        assert!(later.available_at(&s, at, 1, Priority::Backfill).0 > 1_300);
    }

    #[test]
    fn garbage_state_starts_over() {
        assert_eq!(parse_state("not json"), BudgetState::default());
        assert_eq!(parse_state("{}"), BudgetState::default());
    }
}
