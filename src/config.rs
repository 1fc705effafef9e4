//! The gateway's configuration: one struct, every field a clap flag with an
//! `env = "WEARBRIDGE_*"` twin and its default shown in `--help`. Durations carry their
//! unit in the name (`_secs`, `_ms`) so a value never has to be guessed.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use ipnet::IpNet;

/// Default retry schedule, as Svix sends it: immediately, 5 s, 5 min, 30 min, 2 h, 5 h,
/// 10 h, 10 h. Each entry is the delay before that attempt; its length is the number
/// of attempts.
pub const DEFAULT_RETRY_SCHEDULE_SECS: &str = "0,5,300,1800,7200,18000,36000,36000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Database URL: `sqlite://PATH` (created if missing) or `postgres://…`.
    #[arg(
        long,
        env = "WEARBRIDGE_DATABASE_URL",
        default_value = "sqlite://wearbridge.db",
        global = true
    )]
    pub database_url: String,

    /// Address the HTTP API listens on.
    #[arg(
        long,
        env = "WEARBRIDGE_LISTEN_ADDR",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen_addr: SocketAddr,

    /// Master key that encrypts provider tokens and webhook secrets at rest (any string
    /// of at least 32 characters, e.g. `openssl rand -base64 32`). Required by `serve`
    /// unless `--dev`.
    #[arg(
        long,
        env = "WEARBRIDGE_SECRET_KEY",
        hide_env_values = true,
        global = true
    )]
    pub secret_key: Option<String>,

    /// Development mode: without a secret key, generate one and keep it in
    /// `.wearbridge-dev-key` in the working directory (with a warning).
    #[arg(long, env = "WEARBRIDGE_DEV", default_value_t = false, global = true)]
    pub dev: bool,

    /// Allow plain `http://` webhook URLs (otherwise only `https://`).
    #[arg(long, env = "WEARBRIDGE_ALLOW_HTTP", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub allow_http: bool,

    /// Comma-separated CIDRs that webhooks may reach although they are loopback, private
    /// or link-local (e.g. `127.0.0.0/8`). Empty: none.
    #[arg(
        long,
        env = "WEARBRIDGE_ALLOW_PRIVATE_CIDRS",
        value_delimiter = ',',
        global = true
    )]
    pub allow_private_cidrs: Vec<IpNet>,

    /// Delay before each delivery attempt, comma-separated seconds; its length is the
    /// number of attempts. Each delay after the first gets ±20 % jitter.
    #[arg(long, env = "WEARBRIDGE_RETRY_SCHEDULE_SECS", value_delimiter = ',', default_value = DEFAULT_RETRY_SCHEDULE_SECS, global = true)]
    pub retry_schedule_secs: Vec<u64>,

    /// Timeout of one delivery attempt, connect to last byte.
    #[arg(
        long,
        env = "WEARBRIDGE_DELIVERY_TIMEOUT_SECS",
        default_value_t = 15,
        global = true
    )]
    pub delivery_timeout_secs: u64,

    /// Deliveries in flight at once, per process.
    #[arg(
        long,
        env = "WEARBRIDGE_DELIVERY_CONCURRENCY",
        default_value_t = 256,
        global = true
    )]
    pub delivery_concurrency: usize,

    /// Deliveries claimed from the queue per query.
    #[arg(
        long,
        env = "WEARBRIDGE_DELIVERY_BATCH",
        default_value_t = 256,
        global = true
    )]
    pub delivery_batch: usize,

    /// How long a claimed delivery stays reserved for the process that claimed it; a
    /// process killed mid-send loses its claims after this and another one retries them.
    /// Keep it above the delivery timeout.
    #[arg(
        long,
        env = "WEARBRIDGE_DELIVERY_LEASE_SECS",
        default_value_t = 60,
        global = true
    )]
    pub delivery_lease_secs: u64,

    /// How often an idle delivery worker or poller looks for due work written by other
    /// processes (work published in-process wakes it at once).
    #[arg(
        long,
        env = "WEARBRIDGE_POLL_INTERVAL_MS",
        default_value_t = 200,
        global = true
    )]
    pub poll_interval_ms: u64,

    /// Disable an endpoint whose deliveries have all failed for this long (default 5 days).
    #[arg(
        long,
        env = "WEARBRIDGE_DISABLE_AFTER_SECS",
        default_value_t = 432_000,
        global = true
    )]
    pub disable_after_secs: u64,

    /// How long a rotated-out webhook secret keeps signing beside the new one (default 24 h).
    #[arg(
        long,
        env = "WEARBRIDGE_SECRET_ROTATION_GRACE_SECS",
        default_value_t = 86_400,
        global = true
    )]
    pub secret_rotation_grace_secs: u64,

    /// Largest request body the API accepts; larger ones get 413.
    #[arg(
        long,
        env = "WEARBRIDGE_MAX_BODY_BYTES",
        default_value_t = 1_048_576,
        global = true
    )]
    pub max_body_bytes: usize,

    /// Run the delivery worker in this process (turn off for an API-only process).
    #[arg(long, env = "WEARBRIDGE_WORKER", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub worker: bool,

    /// Run the poller (backfills and polls of provider data) in this process.
    #[arg(long, env = "WEARBRIDGE_POLLER", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub poller: bool,

    /// The gateway's public base URL, used in link URLs and OAuth redirect URIs
    /// (default: `http://` + the listen address).
    #[arg(long, env = "WEARBRIDGE_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// Point every provider (OAuth and data) at this fixture-server root instead of the
    /// real APIs: `{root}/{provider}/…`. A provider's own `WEARBRIDGE_<ID>_BASE_URL`,
    /// `_AUTHORIZE_URL` or `_TOKEN_URL`, when set (not empty), wins over the root for
    /// that URL; the root supplies the others. `_CLIENT_ID` and `_CLIENT_SECRET` apply
    /// either way.
    #[arg(long, env = "WEARBRIDGE_PROVIDERS_BASE_URL", global = true)]
    pub providers_base_url: Option<String>,

    /// How long a link token (the start of a connect flow) stays valid.
    #[arg(
        long,
        env = "WEARBRIDGE_LINK_TOKEN_TTL_SECS",
        default_value_t = 3600,
        global = true
    )]
    pub link_token_ttl_secs: u64,

    /// How long a webhook-portal link stays valid before it is opened (it works once).
    #[arg(
        long,
        env = "WEARBRIDGE_PORTAL_LINK_TTL_SECS",
        default_value_t = 600,
        global = true
    )]
    pub portal_link_ttl_secs: u64,

    /// Keep the app's push subscriptions (providers that make them through their API:
    /// Strava, Oura, Polar) made and renewed before they expire, from this process. The
    /// gateway must be reachable at its public URL: providers check the callback while
    /// the subscription is made. `wearbridge providers subscribe` does it once instead.
    #[arg(long, env = "WEARBRIDGE_PUSH_SUBSCRIBE", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub push_subscribe: bool,

    /// Enforce each provider's documented rate limits (turn off only against a fixture
    /// server, e.g. to benchmark ingestion rather than the provider's budget).
    #[arg(long, env = "WEARBRIDGE_PROVIDER_RATE_LIMITS", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub provider_rate_limits: bool,

    /// Divide every provider rate-limit window by this (a benchmark against a fixture
    /// server that shortens its windows the same way); 1 is the providers' real windows.
    #[arg(
        long,
        env = "WEARBRIDGE_RATE_LIMIT_TIME_SCALE",
        default_value_t = 1.0,
        global = true
    )]
    pub rate_limit_time_scale: f64,

    /// Tries a polling job gets when it keeps failing (network trouble, provider
    /// outages) before it stops and says so: a backfill window fails, a poll waits for
    /// its next scheduled run.
    #[arg(
        long,
        env = "WEARBRIDGE_JOB_MAX_ATTEMPTS",
        default_value_t = 12,
        global = true
    )]
    pub job_max_attempts: u32,

    /// Polling jobs run at once, per process.
    #[arg(
        long,
        env = "WEARBRIDGE_POLLER_CONCURRENCY",
        default_value_t = 16,
        global = true
    )]
    pub poller_concurrency: usize,

    /// How long a claimed polling job stays reserved for its process (renewed with every
    /// page); a killed process's jobs are picked up again after this.
    #[arg(
        long,
        env = "WEARBRIDGE_JOB_LEASE_SECS",
        default_value_t = 120,
        global = true
    )]
    pub job_lease_secs: u64,

    /// Timeout of one request to a provider.
    #[arg(
        long,
        env = "WEARBRIDGE_PROVIDER_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    pub provider_timeout_secs: u64,

    /// Log format.
    #[arg(long, env = "WEARBRIDGE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

impl Config {
    /// A configuration with every default, as `wearbridge` with no flags and no
    /// environment would have it; for tests and in-process tools (demo, bench).
    pub fn defaults() -> Config {
        use clap::{Command, FromArgMatches};
        let cmd = empty_env_is_unset(Config::augment_args(
            Command::new("wearbridge").no_binary_name(true),
        ));
        let matches = cmd
            .try_get_matches_from(Vec::<String>::new())
            .expect("defaults parse");
        Config::from_arg_matches(&matches).expect("defaults parse")
    }

    /// This configuration, made to run beside local receivers: listens on a random
    /// loopback port and lets webhooks reach loopback over plain HTTP (demo, bench, tests).
    pub fn for_loopback(mut self) -> Config {
        self.listen_addr = "127.0.0.1:0".parse().expect("valid address");
        self.allow_http = true;
        self.allow_private_cidrs = vec!["127.0.0.0/8".parse().expect("valid CIDR")];
        self
    }

    pub fn delivery_timeout(&self) -> Duration {
        Duration::from_secs(self.delivery_timeout_secs)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.rate_limit_time_scale.is_finite() && self.rate_limit_time_scale > 0.0,
            "WEARBRIDGE_RATE_LIMIT_TIME_SCALE must be a positive number"
        );
        anyhow::ensure!(
            !self.retry_schedule_secs.is_empty(),
            "WEARBRIDGE_RETRY_SCHEDULE_SECS needs at least one entry"
        );
        anyhow::ensure!(
            self.delivery_concurrency > 0,
            "WEARBRIDGE_DELIVERY_CONCURRENCY must be at least 1"
        );
        anyhow::ensure!(
            self.delivery_batch > 0,
            "WEARBRIDGE_DELIVERY_BATCH must be at least 1"
        );
        anyhow::ensure!(
            self.job_lease_secs > self.provider_timeout_secs,
            "WEARBRIDGE_JOB_LEASE_SECS ({}) must exceed WEARBRIDGE_PROVIDER_TIMEOUT_SECS ({})",
            self.job_lease_secs,
            self.provider_timeout_secs
        );
        anyhow::ensure!(
            self.delivery_lease_secs > self.delivery_timeout_secs,
            "WEARBRIDGE_DELIVERY_LEASE_SECS ({}) must exceed WEARBRIDGE_DELIVERY_TIMEOUT_SECS ({})",
            self.delivery_lease_secs,
            self.delivery_timeout_secs
        );
        Ok(())
    }
}

/// Makes an empty `WEARBRIDGE_*` variable mean what an unset one means, as users of
/// most tools expect (`WEARBRIDGE_ALLOW_PRIVATE_CIDRS=` in a compose file or a systemd
/// unit says "none", not "the CIDR ''"). clap on its own parses the empty string as the
/// value, so an empty list, number or boolean would refuse to start; here every option
/// (of `cmd` and its subcommands) whose variable is empty loses its variable and gets
/// its default.
pub fn empty_env_is_unset(cmd: clap::Command) -> clap::Command {
    empty_env_is_unset_in(cmd, &|name| std::env::var_os(name))
}

fn empty_env_is_unset_in(
    cmd: clap::Command,
    var: &dyn Fn(&std::ffi::OsStr) -> Option<std::ffi::OsString>,
) -> clap::Command {
    cmd.mut_args(|arg| {
        let empty = arg
            .get_env()
            .and_then(var)
            .is_some_and(|value| value.is_empty());
        if empty {
            arg.env(None::<&'static str>)
        } else {
            arg
        }
    })
    .mut_subcommands(|sub| empty_env_is_unset_in(sub, var))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_contract() {
        let c = Config::defaults();
        assert_eq!(c.database_url, "sqlite://wearbridge.db");
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.retry_schedule_secs,
            vec![0, 5, 300, 1800, 7200, 18000, 36000, 36000]
        );
        assert_eq!(c.delivery_timeout_secs, 15);
        assert_eq!(c.disable_after_secs, 5 * 24 * 3600);
        assert!(!c.allow_http);
        assert!(c.allow_private_cidrs.is_empty());
        c.validate().unwrap();
    }

    /// Every option, given its variable set to the empty string, parses as if the
    /// variable were unset: its default, and no refusal to start.
    #[test]
    fn an_empty_variable_means_unset_for_every_option() {
        use clap::{Command, FromArgMatches};
        let cmd = Config::augment_args(Command::new("wearbridge").no_binary_name(true));
        let names: Vec<std::ffi::OsString> = cmd
            .get_arguments()
            .filter_map(|a| a.get_env().map(ToOwned::to_owned))
            .collect();
        assert!(names.len() >= 20, "every option has a variable: {names:?}");
        assert!(names
            .iter()
            .all(|n| n.to_string_lossy().starts_with("WEARBRIDGE_")));
        // Each variable set, and empty.
        let cmd = empty_env_is_unset_in(cmd, &|name| {
            names
                .iter()
                .any(|n| n == name)
                .then(std::ffi::OsString::new)
        });
        assert!(
            cmd.get_arguments().all(|a| a.get_env().is_none()),
            "every empty variable is dropped"
        );
        let matches = cmd.try_get_matches_from(Vec::<String>::new()).unwrap();
        let c = Config::from_arg_matches(&matches).unwrap();
        // What no environment at all gives (whatever this process's environment holds).
        let bare = Config::augment_args(Command::new("wearbridge").no_binary_name(true))
            .mut_args(|a| a.env(None::<&'static str>));
        let d = Config::from_arg_matches(&bare.try_get_matches_from(Vec::<String>::new()).unwrap())
            .unwrap();
        assert_eq!(
            format!("{c:?}"),
            format!("{d:?}"),
            "every option has its default"
        );
    }

    #[test]
    fn a_set_variable_is_kept() {
        use clap::Command;
        let cmd = Config::augment_args(Command::new("wearbridge").no_binary_name(true));
        let cmd = empty_env_is_unset_in(cmd, &|name| {
            (name == "WEARBRIDGE_ALLOW_PRIVATE_CIDRS").then(|| "10.0.0.0/8".into())
        });
        let kept: Vec<_> = cmd
            .get_arguments()
            .filter(|a| a.get_env().is_some())
            .collect();
        assert_eq!(kept.len(), cmd.get_arguments().count(), "nothing dropped");
    }
}
