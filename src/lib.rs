//! # Layout
//!
//! Wearbridge is a self-hostable ingestion gateway for wearable providers with
//! Standard Webhooks delivery built in. Every concept has one home:
//!
//! | module | job |
//! | --- | --- |
//! | [`config`] | the one `Config` struct: every option is a clap flag and a `WEARBRIDGE_*` variable |
//! | [`clock`] | the scheduling clock: the wall clock in production, a manual one that tests advance |
//! | [`error`] | the API error type and its stable snake_case codes |
//! | [`seal`] | encryption at rest for provider tokens and webhook secrets; API-key hashing |
//! | [`fixture_server`] | plays every provider (OAuth and data) from `fixtures/<id>/`, with injectable faults |
//! | [`ids`] | stable ids (UUIDv5) so replays of the same provider data yield the same ids |
//! | [`events`] | the event envelope, the event-type catalogue and its example payloads |
//! | [`oauth`] | authorize URLs, code exchange and token refresh with providers (the `oauth2` crate) |
//! | [`poller`] | runs polling jobs page by page: rate limits, token refresh, retries, one transaction per page |
//! | [`providers`] | one manifest (`providers/<id>.toml`) and one [`providers::Adapter`] per provider, in one registry |
//! | [`store`] | the only module that speaks SQL: SQLite and PostgreSQL behind one `Store` |
//! | [`delivery`] | the webhook sender: signing, outbound URL policy, retry schedule, worker |
//! | [`api`] | the `/v1` HTTP API (axum): auth, users, endpoints, events, delivery log and stats; its OpenAPI document (`api::openapi`, utoipa); the Link page and the webhook portal |
//! | [`metrics`] | Prometheus counters, the attempt-latency histogram and backlog gauges for `/metrics` |
//! | [`app`] | wires store, API and delivery worker into one running gateway |
//! | [`receiver`] | a webhook receiver that verifies every signature (demo, bench, tests) |
//! | [`cli`] | the `wearbridge` commands: `serve`, `migrate`, `team`, `demo`, `normalize`, `bench` |
//!
//! Data flow: something publishes an [`events::Envelope`] through
//! [`store::Store::publish`], which in one transaction inserts the event (idempotent on
//! its id) and one delivery per matching endpoint; the [`delivery`] worker claims due
//! deliveries, signs and sends them, and records every attempt.

pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod error;
pub mod events;
pub mod fixture_server;
pub mod ids;
pub mod metrics;
pub mod oauth;
pub mod poller;
pub mod providers;
pub mod receiver;
pub mod seal;
pub mod store;

/// Milliseconds since the Unix epoch: the unit of every scheduling column.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
