//! Webhook delivery, as Svix does it: Standard Webhooks signatures, a retry schedule
//! with jitter, `Retry-After` honoured, `410 Gone` disabling, a log row per attempt,
//! persisted endpoint health, and outbound safety (no private targets unless allowed).
//!
//! - [`signing`]: `webhook-*` headers, signed with the `svix` crate;
//! - [`policy`]: which URLs and resolved addresses webhooks may reach;
//! - [`retry`]: when the next attempt happens;
//! - [`sender`]: one HTTP attempt, classified;
//! - [`worker`]: claims due deliveries, sends them with bounded concurrency and writes
//!   results back in batches.

pub mod policy;
pub mod retry;
pub mod sender;
pub mod signing;
pub mod worker;

pub use policy::UrlPolicy;
pub use retry::RetryPolicy;
pub use sender::Sender;
pub use worker::Worker;
