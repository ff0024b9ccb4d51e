//! Starting any set of roles in one process: all of them for `namaskah up`, one for
//! `namaskah api` or `namaskah worker …`, and whatever a test needs.

use sqlx::PgPool;
use std::{net::SocketAddr, sync::Arc};
use tokio::task::JoinSet;

use namaskah_api::{AppState, app::WebApp};
use namaskah_core::{
    Config, Shutdown,
    config::PoolRoles,
    errors, metrics_exporter,
    providers::{Providers, instrumented::CallStats},
    queue::{OutboxRelay, OutboxSignal, Topology},
    store,
};
use namaskah_dashboard::DashboardState;
use namaskah_load_tests::simulator::{self, Behaviour, Simulator};
use namaskah_scheduler::{JobContext, Scheduler};
use namaskah_workers::{Worker, WorkerDeps, WorkerKind, WorkerSetupError};

/// Which roles to run.
#[derive(Clone, Debug, Default)]
pub struct Roles {
    pub api: bool,
    /// The provider simulator, on `SIMULATOR_ADDR`.
    pub simulator: bool,
    /// The outbox relay; every role that writes outbox rows should run one.
    pub relay: bool,
    pub workers: Vec<WorkerKind>,
    /// The scheduler (it leads only if no other instance does).
    pub scheduler: bool,
    /// The operator dashboard, on `DASHBOARD_ADDR`.
    pub dashboard: bool,
}

impl Roles {
    fn pool_roles(&self) -> PoolRoles {
        PoolRoles {
            api: self.api,
            workers: u32::try_from(self.workers.len()).unwrap_or(u32::MAX),
            scheduler: self.scheduler,
            dashboard: self.dashboard,
            relay: self.relay,
        }
    }

    pub fn everything() -> Self {
        Self {
            api: true,
            simulator: true,
            relay: true,
            workers: WorkerKind::ALL.to_vec(),
            scheduler: true,
            dashboard: true,
        }
    }
}

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Providers(#[from] namaskah_core::providers::ClientSetupError),
    #[error(transparent)]
    Worker(#[from] WorkerSetupError),
    #[error(transparent)]
    Dashboard(#[from] namaskah_dashboard::DashboardError),
    #[error(transparent)]
    Api(#[from] namaskah_api::ApiSetupError),
    #[error(transparent)]
    WebApp(#[from] namaskah_api::app::WebAppError),
    #[error("{0}")]
    Bind(#[from] std::io::Error),
}

/// A running set of roles.
pub struct Running {
    pub pool: PgPool,
    pub api_addr: Option<SocketAddr>,
    /// The customer web app's address (it runs with the API unless `APP_ADDR=off`).
    pub app_addr: Option<SocketAddr>,
    pub simulator_addr: Option<SocketAddr>,
    pub dashboard_addr: Option<SocketAddr>,
    /// Where `/metrics` and `/healthz` are served (`METRICS_ADDR`), unless it is `off`.
    pub metrics_addr: Option<SocketAddr>,
    pub simulator: Option<Arc<Simulator>>,
    /// Wakes this process's outbox relay (for writers outside the roles, such as load runs).
    pub outbox: OutboxSignal,
    shutdown: Shutdown,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stops every role and waits until each has finished its in-flight work.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Stops every role at once, in-flight work or not, as SIGKILL would: unacknowledged
    /// messages go back to their queues when the connections drop.
    pub fn abort(&mut self) {
        self.shutdown.trigger();
        self.tasks.abort_all();
    }

    /// Waits until every role has stopped (after a shutdown signal).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts `roles`: opens the database (creating and migrating it as needed), binds the
/// listeners, then spawns each role. Returns once everything is listening.
pub async fn start(
    config: Arc<Config>,
    roles: Roles,
    shutdown: Shutdown,
) -> Result<Running, StartError> {
    let pool_size = config.database_pools.process_pool(roles.pool_roles());
    let pool = store::connect(&config.database_url, pool_size).await?;
    metrics_exporter::install();
    let call_stats = CallStats::default();
    let providers = Providers::from_config(&config, &call_stats)?;
    register_zero_series(&config, &roles, &providers.names());
    errors::install(pool.clone(), sentry::Hub::current().client().is_some());
    let outbox = OutboxSignal::new();
    let mut tasks = JoinSet::new();

    let mut simulator_addr = None;
    let mut simulator_handle = None;
    if roles.simulator {
        let listener = namaskah_api::bind(config.simulator_addr).await?;
        simulator_addr = listener.local_addr().ok();
        let api_key = config
            .provider("simulator")
            .map(|p| p.api_key.expose().to_owned())
            .unwrap_or_else(|| namaskah_core::config::DEFAULT_SIMULATOR_KEY.to_owned());
        let sim = Simulator::new(api_key, Behaviour::default());
        simulator_handle = Some(Arc::clone(&sim));
        tasks.spawn(simulator::serve(sim, listener, shutdown.clone()));
    }

    let mut api_addr = None;
    let mut app_addr = None;
    if roles.api {
        let listener = namaskah_api::bind(config.api_addr).await?;
        api_addr = listener.local_addr().ok();
        let state = Arc::new(AppState::new(
            pool.clone(),
            &config,
            providers.names(),
            outbox.clone(),
        )?);
        // Before either listener serves: no request reaches an API that is not yet warm.
        namaskah_api::warm_up(&state, &shutdown, config.database_pools.api).await;
        // The customer web app shares the API's state: its pages act through the API's code.
        if let Some(address) = config.app.addr {
            let listener = namaskah_api::bind(address).await?;
            app_addr = listener.local_addr().ok();
            let app = Arc::new(WebApp::new(Arc::clone(&state), config.app.clone())?);
            tasks.spawn(namaskah_api::app::serve(app, listener, shutdown.clone()));
        }
        tasks.spawn(namaskah_api::serve(state, listener, shutdown.clone()));
    }

    if roles.relay {
        let relay = OutboxRelay::new(
            pool.clone(),
            config.amqp_url.clone(),
            Topology::from_config(&config),
            config.outbox_batch_size,
            config.outbox_poll_interval,
            outbox.clone(),
        );
        tasks.spawn(relay.run(shutdown.clone()));
    }

    if !roles.workers.is_empty() {
        tasks.spawn(call_stats.flush_periodically(pool.clone(), shutdown.clone()));
    }
    for kind in roles.workers.clone() {
        let deps = WorkerDeps {
            pool: pool.clone(),
            providers: providers.clone(),
            config: Arc::clone(&config),
            outbox: outbox.clone(),
        };
        let worker = Worker::new(kind, deps)?;
        tasks.spawn(worker.run(shutdown.clone()));
    }

    if roles.scheduler {
        let context = JobContext {
            pool: pool.clone(),
            config: Arc::clone(&config),
            relay: OutboxRelay::new(
                pool.clone(),
                config.amqp_url.clone(),
                Topology::from_config(&config),
                config.outbox_batch_size,
                config.outbox_poll_interval,
                outbox.clone(),
            ),
            outbox: outbox.clone(),
        };
        tasks.spawn(Scheduler::new(context).run(shutdown.clone()));
    }

    let mut dashboard_addr = None;
    if roles.dashboard {
        let listener = namaskah_api::bind(config.dashboard.addr).await?;
        dashboard_addr = listener.local_addr().ok();
        let state = Arc::new(DashboardState::new(pool.clone(), Arc::clone(&config))?);
        tasks.spawn(namaskah_dashboard::serve(state, listener, shutdown.clone()));
    }

    // Metrics carry business figures (charges, refunds, top-ups): every role serves them on
    // METRICS_ADDR, an internal listener, never on the API's or the dashboard's public one.
    let mut metrics_addr = None;
    if let Some(address) = config.metrics_addr {
        metrics_addr = Some(metrics_exporter::serve(address, shutdown.clone()).await?);
    }
    tasks.spawn(metrics_exporter::upkeep(shutdown.clone()));

    Ok(Running {
        pool,
        api_addr,
        app_addr,
        simulator_addr,
        dashboard_addr,
        metrics_addr,
        simulator: simulator_handle,
        outbox,
        shutdown,
        tasks,
    })
}

/// Every metric family from the start, at zero (see `metrics_exporter::zero_series`).
fn register_zero_series(config: &Config, roles: &Roles, providers: &[String]) {
    let scheduler_jobs: Vec<&'static str> = if roles.scheduler {
        config
            .scheduler
            .schedules
            .iter()
            .filter(|(_, schedule)| schedule.is_some())
            .map(|(job, _)| *job)
            .collect()
    } else {
        Vec::new()
    };
    let mut failing_roles = Vec::new();
    if roles.api {
        failing_roles.push("api");
    }
    if !roles.workers.is_empty() {
        failing_roles.push("worker");
    }
    if roles.scheduler {
        failing_roles.push("scheduler");
    }
    metrics_exporter::register_zero_series(&metrics_exporter::KnownLabels {
        providers,
        scheduler_jobs: &scheduler_jobs,
        failing_roles: &failing_roles,
        samples: roles.scheduler,
    });
}
