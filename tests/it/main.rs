//! The one integration-test binary: the store contract on every backend, the HTTP API,
//! webhook delivery end to end, and multi-process scale-out and crash durability.

mod helpers;

mod api;
mod browser;
mod cli;
mod conformance;
mod delivery;
mod durability;
mod ingestion;
mod logs;
mod openapi;
mod polling_store;
mod portal;
mod providers;
mod push;
mod store_contract;
mod vital_sdk;
