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
//! | [`seal`] | encryption at rest for provider tokens and webhook secrets ([`seal::Purpose`]); API-key hashing |
//! | [`states`] | typed states (job, delivery, connection, attempt) and their one mapping to stored text |
//! | [`ids`] | stable ids (UUIDv5) so replays of the same provider data yield the same ids |
//! | [`events`] | the record model, the event envelope, one constructor per event type, the catalogue and its examples; pure |
//! | [`http`] | what every outbound caller reads from a reply alike (`Retry-After`, `Date`, the shared rate-limit header shapes) |
//! | [`providers`] | one manifest (`providers/<id>.toml`) and one [`providers::Adapter`] per provider, in one registry; pure |
//! | [`oauth`] | each provider's OAuth client ([`oauth::OAuthClients`]): authorize URLs, code exchange, token refresh (the `oauth2` crate) |
//! | [`poller`] | ingestion: plans jobs (`plan`), spends provider budgets shared by every process (`budget`), fetches with token refresh (`fetch`), runs jobs page by page and builds each page's events (`job`), manages push subscriptions (`subscribe`), schedules pulls, then polls, then backfills |
//! | [`store`] | the only module that speaks SQL: SQLite and PostgreSQL behind one `Store`; persists what it is handed; concurrent small writes of one kind (fetched pages, budget takes) go as one transaction per group (`store::group`) |
//! | [`delivery`] | the webhook sender: signing, outbound URL policy, retry schedule, worker |
//! | [`api`] | the HTTP API (axum): `/v1` (auth, users, connect flow, endpoints, events, delivery log and stats, providers' notifications) and the Junction-compatible `/v2` (`api::vital`, a mapping over `/v1`); its OpenAPI document (`api::openapi`, utoipa); the Link page and the webhook portal |
//! | [`metrics`] | Prometheus counters, the attempt-latency histogram and backlog gauges for `/metrics` |
//! | [`app`] | wires store, API, poller and delivery worker into one running gateway |
//! | [`fixture_server`] | plays every provider (OAuth and data) from `fixtures/<id>/`, with injectable faults and, on request, its documented rate limits and headers |
//! | [`receiver`] | a webhook receiver that verifies every signature (demo, bench, tests) |
//! | [`cli`] | the `wearbridge` commands: `serve`, `migrate`, `team`, `demo`, `normalize`, `bench` |
//!
//! # Data flow
//!
//! ```text
//! connect   api::connect ─► oauth (code exchange) ─► seal tokens ─► events::Envelope::connection_created
//!           ─► store::Store::create_connection (connection + planned jobs + event, one transaction)
//! ingest    poller: store::Store::claim_jobs (polls first) ─► oauth (refresh) ─► poller::budget
//!              (store::Store::take_budget, grouped) ─► providers::Adapter::page_request
//!           ─► HTTP (Adapter::rate_report corrects the budget) ─► Adapter::parse_page (events::Record) ─► store::PageCommit with the page's events
//!              (events::Envelope::daily from what changed, historical_chunk when a window ends)
//!           ─► store::Store::commit: records upserted by content hash, events and deliveries,
//!              the job's cursor, all in one transaction
//! publish   store::Store::publish (API: tests, examples): event (idempotent on its id)
//!           + one delivery per matching endpoint
//! push      api::push (POST /v1/providers/{p}/notifications): providers::Adapter::verify_push
//!              ─► Adapter::parse_push ─► store::Store::receive_notice (logged once; a pull
//!              queued ahead of polls, a record removed with daily.data.<r>.deleted, or the
//!              connection ended, in one transaction) ─► the poller runs the pull as a job
//! deliver   delivery::Worker: store::Store::claim_deliveries ─► sign (Standard Webhooks)
//!           ─► HTTP ─► store::Store::complete_deliveries (attempt log, status, endpoint health)
//! ```
//!
//! Arrows run one way: `events`, `states`, `ids`, `seal` and `http` depend on nothing
//! above them; `providers` on `events`; `store` on `events` and `states`, never on
//! `providers`; `delivery` on `store`, never on `providers` or `poller`; `api` asks
//! `oauth`, `store` and `poller::plan` (the jobs to queue), never a running poller.

pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod error;
pub mod events;
pub mod fixture_server;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod oauth;
pub mod poller;
pub mod providers;
pub mod receiver;
pub mod seal;
pub mod states;
pub mod store;

/// Milliseconds since the Unix epoch: the unit of every scheduling column.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
