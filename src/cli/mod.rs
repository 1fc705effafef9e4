//! The `wearbridge` command line: one file per command. Every option of the gateway
//! lives in [`Config`] and is shared by all commands.

mod bench;
mod budget_bench;
mod demo;
mod push_bench;

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::app::Gateway;
use crate::config::{Config, LogFormat};
use crate::seal::Sealer;
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "wearbridge",
    version,
    about = "Self-hostable wearable data gateway with Standard Webhooks delivery"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: HTTP API and delivery worker (migrates the database first).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage teams.
    Team {
        #[command(subcommand)]
        command: TeamCommand,
    },
    /// Run the whole flow locally on a fresh SQLite database against a local receiver
    /// that verifies every signature; exits 0 only if every delivery verified.
    Demo(demo::DemoArgs),
    /// Print, as JSON lines, the normalised records a provider adapter extracts from one
    /// raw response page (a file, or `-` for stdin).
    Normalize {
        /// Provider id, e.g. `oura`.
        #[arg(long)]
        provider: String,
        /// Resource, e.g. `sleep`.
        #[arg(long)]
        resource: String,
        /// The raw response body.
        file: std::path::PathBuf,
    },
    /// Provider push subscriptions.
    Providers {
        #[command(subcommand)]
        command: ProvidersCommand,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProvidersCommand {
    /// Make the app's push subscriptions (Strava, Oura, Polar: through their APIs) with
    /// notifications to `{WEARBRIDGE_PUBLIC_URL}/v1/providers/{provider}/notifications`.
    /// The gateway must be serving there: the providers check the callback while the
    /// subscription is made. Prints each subscription's state.
    Subscribe {
        /// Only this provider (default: every provider whose API makes them).
        #[arg(long)]
        provider: Option<String>,
    },
    /// Print every push subscription held, with its state and last error.
    Subscriptions,
    /// Print the latest notifications a provider sent, with what each caused.
    Notifications {
        /// The provider, e.g. `strava`.
        #[arg(long)]
        provider: String,
        /// How many, newest first.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Create a team and print its API key (shown once, alone on the last line).
    Create {
        /// The team's display name.
        name: String,
    },
}

pub fn main() -> ExitCode {
    let matches = crate::config::empty_env_is_unset(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(&cli);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let default = match cli.command {
        Command::Serve => "info",
        _ => "warn",
    };
    // Empty means unset here too (see `config::empty_env_is_unset`).
    let filter = std::env::var("WEARBRIDGE_LOG")
        .ok()
        .filter(|v| !v.is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match cli.config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config;
    match cli.command {
        Command::Serve => {
            let sealer = Sealer::load(
                config.secret_key.as_deref(),
                config.dev,
                &std::env::current_dir()?,
            )?;
            let gateway = Gateway::start(config, sealer).await?;
            shutdown_signal().await;
            tracing::info!("shutting down: finishing in-flight deliveries");
            gateway.stop().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let store = Store::connect(&config.database_url).await?;
            store.migrate().await?;
            println!(
                "migrations applied to {}",
                crate::store::redact_url(&config.database_url)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Team {
            command: TeamCommand::Create { name },
        } => {
            let name = name.trim();
            anyhow::ensure!(!name.is_empty(), "a team needs a name");
            let store = Store::connect(&config.database_url).await?;
            store.migrate().await?;
            let (team, key) = store.create_team(name).await.context("creating the team")?;
            println!("team {} created: {}", team.name, team.id);
            println!("API key (shown once; it is stored only as a hash):");
            println!("{key}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => demo::run(config, args).await,
        Command::Normalize {
            provider,
            resource,
            file,
        } => normalize(&provider, &resource, &file),
        Command::Bench { command } => bench::run(config, command).await,
        Command::Providers { command } => providers_command(config, command).await,
    }
}

async fn providers_command(
    config: crate::config::Config,
    command: ProvidersCommand,
) -> anyhow::Result<ExitCode> {
    use crate::providers::push::{SubscriptionManagement, SubscriptionScope};
    let store = Store::connect(&config.database_url).await?;
    store.migrate().await?;
    let show = |s: &crate::store::PushSubscription| {
        println!(
            "{:<14} {:<7} remote_id={} expires_at={} callback={}{}",
            s.provider,
            s.status,
            s.remote_id.as_deref().unwrap_or("-"),
            s.expires_at
                .map(crate::events::format_ms)
                .unwrap_or_else(|| "-".into()),
            s.callback_url,
            s.error
                .as_deref()
                .map(|e| format!(" error={e}"))
                .unwrap_or_default()
        )
    };
    match command {
        ProvidersCommand::Notifications { provider, limit } => {
            for n in store.recent_notifications(&provider, limit.max(1)).await? {
                println!(
                    "{} {:<12} {:<10} {:<8} user={} connections={} key={}",
                    crate::events::format_ms(n.received_at),
                    n.outcome,
                    n.action,
                    n.resource.as_deref().unwrap_or("-"),
                    n.user,
                    n.connections,
                    n.key
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ProvidersCommand::Subscriptions => {
            for s in store.push_subscriptions(None).await? {
                show(&s);
            }
            Ok(ExitCode::SUCCESS)
        }
        ProvidersCommand::Subscribe { provider } => {
            let public_url = config.public_url.clone().context(
                "set WEARBRIDGE_PUBLIC_URL to the URL at which providers reach this gateway",
            )?;
            let sealer = Sealer::load(
                config.secret_key.as_deref(),
                config.dev,
                &std::env::current_dir()?,
            )?;
            let http = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(config.provider_timeout_secs))
                .build()?;
            let subscriber = crate::poller::subscribe::Subscriber {
                store,
                sealer,
                oauth: crate::oauth::OAuthClients::new(
                    http.clone(),
                    config.providers_base_url.clone(),
                    public_url.clone(),
                ),
                http,
                public_url,
                keys: Default::default(),
            };
            let mut failed = false;
            for p in crate::providers::registry() {
                if provider.as_deref().is_some_and(|id| id != p.id()) {
                    continue;
                }
                let Some(push) = &p.manifest.push else {
                    continue;
                };
                if provider.is_none()
                    && (push.subscription.scope != SubscriptionScope::App
                        || push.subscription.managed != SubscriptionManagement::Api)
                {
                    continue;
                }
                match subscriber.subscribe_app(p).await {
                    Ok(made) => {
                        for s in &made {
                            failed |= s.status != "active";
                            show(s);
                        }
                    }
                    Err(e) => {
                        failed = true;
                        eprintln!("{}: {e:#}", p.id());
                    }
                }
            }
            if let Some(id) = provider.as_deref() {
                anyhow::ensure!(
                    crate::providers::find(id).is_some_and(|p| p.manifest.push.is_some()),
                    "{id} is no provider that pushes"
                );
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

fn normalize(provider: &str, resource: &str, file: &std::path::Path) -> anyhow::Result<ExitCode> {
    use std::io::{Read, Write};
    let known = || {
        crate::providers::registry()
            .iter()
            .map(|p| p.id().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let p = crate::providers::find(provider)
        .ok_or_else(|| anyhow::anyhow!("unknown provider `{provider}` (known: {})", known()))?;
    let r: crate::events::Resource = resource.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    anyhow::ensure!(
        p.resource(r).is_some(),
        "{provider} has no resource `{resource}`"
    );
    let mut body = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut body)?;
    } else {
        body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    }
    let page = p
        .adapter
        .parse_page(r, &body, None)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut out = std::io::stdout().lock();
    for rec in &page.records {
        writeln!(out, "{}", rec.to_json())?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
