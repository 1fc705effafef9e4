//! The running gateway: store, HTTP API and delivery worker wired together. `serve`,
//! `demo`, `bench` and the tests all start it through [`Gateway::start`], so they run
//! exactly what production runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::Config;
use crate::delivery::{Sender, UrlPolicy, Worker};
use crate::oauth::OAuthClients;
use crate::poller::subscribe::Subscriber;
use crate::poller::Poller;
use crate::seal::Sealer;
use crate::store::Store;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub sealer: Sealer,
    pub worker: Arc<Worker>,
    pub poller: Arc<Poller>,
    pub oauth: OAuthClients,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Push subscriptions, and what verifying a provider's notifications needs.
    pub subscriber: Subscriber,
    pub config: Arc<Config>,
    /// Base URL of this gateway as browsers and providers reach it.
    pub public_url: String,
}

pub struct Gateway {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    worker: Option<JoinHandle<()>>,
    poller: Option<JoinHandle<()>>,
}

impl Gateway {
    /// Migrates the database, binds the listener and starts serving (and delivering,
    /// unless the config turns the worker off).
    pub async fn start(config: Config, sealer: Sealer) -> anyhow::Result<Gateway> {
        Self::start_with_clock(config, sealer, Clock::real()).await
    }

    /// [`Gateway::start`] with work falling due by `clock` instead of the wall clock
    /// (tests advance a manual one rather than wait).
    pub async fn start_with_clock(
        config: Config,
        sealer: Sealer,
        clock: Clock,
    ) -> anyhow::Result<Gateway> {
        config.validate()?;
        let store = Store::connect(&config.database_url).await?;
        store.migrate().await?;
        Self::start_with(config, sealer, store.with_clock(clock)).await
    }

    pub async fn start_with(
        config: Config,
        sealer: Sealer,
        store: Store,
    ) -> anyhow::Result<Gateway> {
        let policy = UrlPolicy {
            allow_http: config.allow_http,
            allowed_cidrs: config.allow_private_cidrs.clone(),
        };
        let sender = Sender::new(
            policy,
            config.delivery_timeout(),
            config.delivery_concurrency,
        );
        let provider_ids: Vec<&str> = crate::providers::registry()
            .iter()
            .map(|p| p.id())
            .collect();
        let metrics = Arc::new(crate::metrics::Metrics::new(&provider_ids));
        let worker = Arc::new(Worker::new(
            store.clone(),
            sender,
            sealer.clone(),
            &config,
            metrics.clone(),
        ));
        let listener = tokio::net::TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("binding {}", config.listen_addr))?;
        let addr = listener.local_addr()?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        // One client for every provider call: token requests and data pages.
        let provider_http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.provider_timeout_secs))
            .build()
            .context("building the provider HTTP client")?;
        let oauth = OAuthClients::new(
            provider_http.clone(),
            config.providers_base_url.clone(),
            public_url.clone(),
        );
        let subscriber = Subscriber {
            store: store.clone(),
            sealer: sealer.clone(),
            oauth: oauth.clone(),
            http: provider_http.clone(),
            public_url: public_url.clone(),
            keys: Default::default(),
        };
        let poller = Arc::new(Poller::new(
            store.clone(),
            sealer.clone(),
            provider_http,
            oauth.clone(),
            &config,
            metrics.clone(),
        ));
        let state = AppState {
            store,
            sealer,
            worker: worker.clone(),
            poller: poller.clone(),
            oauth,
            metrics,
            subscriber: subscriber.clone(),
            config: Arc::new(config.clone()),
            public_url,
        };
        let (shutdown, rx) = watch::channel(false);
        let router = crate::api::router(state.clone());
        let mut server_rx = rx.clone();
        let server = tokio::spawn(async move {
            let stop = async move {
                let _ = server_rx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        });
        let poller = config.poller.then(|| tokio::spawn(poller.run(rx.clone())));
        if config.push_subscribe {
            tokio::spawn(keep_subscribed(subscriber, rx.clone()));
        }
        let worker = config.worker.then(|| tokio::spawn(worker.run(rx)));
        tracing::info!(%addr, worker = config.worker, poller = config.poller, "wearbridge gateway listening");
        Ok(Gateway {
            addr,
            state,
            shutdown,
            server,
            worker,
            poller,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests and claims, lets in-flight deliveries finish and
    /// commits their results.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        if let Some(p) = self.poller {
            let _ = p.await;
        }
        if let Some(w) = self.worker {
            let _ = w.await;
        }
    }
}

/// Makes the app's push subscriptions where none is live, and renews those that expire
/// soon: at start, then every hour, until shutdown.
async fn keep_subscribed(subscriber: Subscriber, mut shutdown: watch::Receiver<bool>) {
    use crate::providers::push::{SubscriptionManagement, SubscriptionScope};
    // The server is listening already; the providers' checks of the callback reach it.
    loop {
        for p in crate::providers::registry() {
            let Some(push) = &p.manifest.push else {
                continue;
            };
            if push.subscription.scope != SubscriptionScope::App
                || push.subscription.managed != SubscriptionManagement::Api
            {
                continue;
            }
            let live = subscriber
                .store
                .push_subscriptions(Some(p.id()))
                .await
                .map(|subs| {
                    subs.iter()
                        .any(|s| s.connection_id.is_none() && s.status == "active")
                })
                .unwrap_or(true);
            if !live {
                match subscriber.subscribe_app(p).await {
                    Ok(made) => tracing::info!(
                        provider = p.id(),
                        subscriptions = made.len(),
                        "push subscriptions made"
                    ),
                    Err(e) => {
                        tracing::warn!(provider = p.id(), error = %e, "making push subscriptions failed")
                    }
                }
            }
        }
        if let Err(e) = subscriber.renew_due(chrono::Utc::now()).await {
            tracing::warn!(error = %e, "renewing push subscriptions failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
