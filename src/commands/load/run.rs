//! `namaskah load`: the whole pipeline under load, through its API, with a mix of provider
//! behaviours, and the proof that nothing was lost.
//!
//! In a throw-away database and queue prefix it starts the provider simulator (behaving as
//! asked: SMS delay, orders that never get an SMS, out of stock, provider errors), the API,
//! the outbox relay, every worker and the scheduler, and a webhook receiver that checks every
//! signature. Accounts (enterprise tier, limits lifted: this measures the pipeline, not the
//! rate limiter) each have a webhook endpoint at the receiver. Verifications are submitted at
//! a rate or a concurrency, some cancelled; then the run waits until every verification is
//! final and every webhook has arrived (or the drain time is up), and checks:
//!
//! - every verification the API accepted exists, and is final (completed or refunded);
//! - `namaskah check`'s invariants: one charge each, a refund exactly for each one not
//!   completed, every balance equal to its ledger, open counters right;
//! - every webhook due arrived at least once, validly signed, and none arrived badly signed.
//!
//! Any of them broken: exit status 1.

use anyhow::{Context, Result, bail};
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use std::{
    collections::BTreeMap,
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool},
    time::{Duration, Instant},
};

use namaskah::{
    pipeline::{self, Roles},
    prerequisites,
};
use namaskah_core::{
    Config, Shutdown,
    config::{ProviderProtocol, ProviderSettings, Secret},
    queue::{self, Topology},
    store::{self, webhook_endpoints},
};
use namaskah_load_tests::{
    simulator::{self, Simulator},
    webhook_sink::WebhookSink,
};
use namaskah_workers::WorkerKind;

pub use super::args::RunArgs;
use super::{
    chaos, cpu,
    drain::{DatabaseCounters, drain},
    drive::{self, Plan, Until},
    failover,
    judge::judge,
    limit,
    provider_fault::{self, SecondProvider},
    report::AgainstLimit,
    setup::{SIMULATOR_KEY, create_customers, prepare_catalogue},
    throwaway,
};

pub async fn run(config: Config, args: RunArgs) -> Result<ExitCode> {
    if let Err(invalid) = args.validate() {
        eprintln!("{invalid}");
        return Ok(ExitCode::from(2));
    }
    if let Err(missing) = prerequisites::check_all(&config).await {
        return Ok(prerequisites::report(&missing));
    }
    let shutdown = Shutdown::new();
    let mut config = throwaway::config(config);
    // A drill's processes, and this run, reach PostgreSQL where the primary is.
    let stable_postgres = match &args.drill {
        Some(_) => Some(failover::stable_address(&mut config).await?),
        None => None,
    };
    throwaway::reset(&config).await?;
    // Before the pipeline starts, so that pgbench has the machine to itself.
    let machine_limit = if args.pgbench_seconds > 0 {
        eprintln!(
            "measuring the machine's limit: pgbench, {} clients, {} s",
            args.pgbench_clients, args.pgbench_seconds
        );
        let url = &config.database_url;
        Some(limit::measure(url, args.pgbench_clients, args.pgbench_seconds).await?)
    } else {
        None
    };

    let simulator = Simulator::new(SIMULATOR_KEY, args.behaviour());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let simulator_addr = listener.local_addr()?;
    tokio::spawn(simulator::serve(
        Arc::clone(&simulator),
        listener,
        shutdown.clone(),
    ));
    config.providers = vec![ProviderSettings {
        name: "simulator".to_owned(),
        protocol: ProviderProtocol::FiveSim,
        base_url: format!("http://{simulator_addr}/v1"),
        api_key: Secret::new(SIMULATOR_KEY),
        username: None,
    }];
    let second_provider = if args.wants_second_provider() {
        let second =
            SecondProvider::start(SIMULATOR_KEY, args.behaviour(), shutdown.clone()).await?;
        config.providers.push(second.settings(SIMULATOR_KEY));
        Some(second)
    } else {
        None
    };
    config.api_addr = ([127, 0, 0, 1], 0).into();
    // Load runs drive the API; the customer web app is not part of them.
    config.app.addr = None;
    let config = Arc::new(config);

    let pool = store::connect(&config.database_url, 4).await?;
    prepare_catalogue(&pool, args.sms_timeout_secs).await?;
    if second_provider.is_some() {
        SecondProvider::copy_catalogue(&pool).await?;
    }
    let customers = create_customers(&pool, args.accounts).await?;
    let sink = WebhookSink::start(Arc::clone(&customers.secrets), shutdown.clone()).await?;
    let secrets = customers
        .secrets
        .lock()
        .map_err(|_| anyhow::anyhow!("secrets lock"))?
        .clone();
    let endpoint_owners = if args.without_webhook_endpoints {
        &[][..]
    } else {
        &customers.accounts[..]
    };
    for (n, (account, secret)) in endpoint_owners.iter().zip(&secrets).enumerate() {
        let endpoint = webhook_endpoints::NewEndpoint {
            url: format!("http://{}/hooks/{n}", sink.address),
            description: "load".to_owned(),
            event_types: Vec::new(),
            enabled: true,
        };
        webhook_endpoints::create(&pool, *account, &endpoint, secret).await?;
    }
    let orders: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT service, country FROM services WHERE enabled AND provider = 'simulator'
         ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await?;
    if orders.is_empty() {
        bail!("the catalogue sells nothing through the simulator");
    }

    let pipeline = if args.chaos || args.processes || args.drill.is_some() {
        let extra_env = second_provider
            .as_ref()
            .map(|second| second.env(SIMULATOR_KEY))
            .unwrap_or_default();
        Pipeline::Processes(
            chaos::Fleet::start(
                &config,
                simulator_addr,
                &extra_env,
                args.outages,
                args.replicas,
            )
            .await?,
        )
    } else {
        let roles = Roles {
            api: true,
            relay: true,
            workers: if args.api_only {
                Vec::new()
            } else {
                WorkerKind::ALL.to_vec()
            },
            scheduler: !args.api_only,
            ..Roles::default()
        };
        Pipeline::InProcess(pipeline::start(Arc::clone(&config), roles, shutdown.clone()).await?)
    };
    let apis = match &pipeline {
        Pipeline::Processes(fleet) => fleet.apis.clone(),
        Pipeline::Chaos(fleet) => fleet.apis.clone(),
        Pipeline::InProcess(running) => vec![format!(
            "http://{}",
            running.api_addr.context("the API did not start")?
        )],
    };
    let rabbitmq_nodes = match &args.drill {
        Some(drill) => failover::rabbitmq_nodes(drill).await?,
        None => Vec::new(),
    };
    eprintln!("load run: {}", args.describe());

    let progress = match args.until() {
        Until::Count(count) => ProgressBar::new(count),
        Until::Elapsed(_) => ProgressBar::new_spinner(),
    };
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} submitting [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    // A drill's submissions go on until its faults are done and recovered from.
    let faults_pending = args.drill.as_ref().map(|_| Arc::new(AtomicBool::new(true)));
    let plan = Plan {
        pace: args.pace(),
        until: args.until(),
        go_on_while: faults_pending.clone(),
        cancel_ratio: args.cancel_ratio,
        idempotency_key_ratio: args.idempotency_key_ratio,
        orders,
    };
    let counted_before = DatabaseCounters::read(&pool).await?;
    let cpu_before = cpu::sample(&pipeline.role_pids().await);
    let first_submission = Utc::now();
    let first_submission_instant = Instant::now();
    let hanging = args
        .hang()
        .map(|hang| tokio::spawn(provider_fault::hang(Arc::clone(&simulator), hang)));
    let mut engine_faults = Vec::new();
    let (driven, pipeline) = match (pipeline, &args.drill, &stable_postgres) {
        (Pipeline::Processes(fleet), Some(drill), Some(stable)) => {
            let disturbing = tokio::spawn(failover::disturb(
                drill.clone(),
                Arc::clone(stable),
                args.window(),
                faults_pending.clone().unwrap_or_default(),
            ));
            let driven = drive::drive(&apis, customers.keys, plan, &progress).await;
            engine_faults = disturbing.await.context("the drill's faults")?;
            (driven, Pipeline::Chaos(Arc::new(fleet)))
        }
        (Pipeline::Processes(fleet), _, _) if args.chaos => {
            let fleet = Arc::new(fleet);
            let done = Shutdown::new();
            let disturbing = tokio::spawn(chaos::disturb(
                Arc::clone(&fleet),
                args.chaos_plan(),
                done.clone(),
            ));
            let driven = drive::drive(&apis, customers.keys, plan, &progress).await;
            done.trigger();
            disturbing.await.context("the chaos task")?;
            (driven, Pipeline::Chaos(fleet))
        }
        (running, _, _) => (
            drive::drive(&apis, customers.keys, plan, &progress).await,
            running,
        ),
    };
    progress.finish_and_clear();
    let provider_faults = match hanging {
        Some(hanging) => hanging.await.context("the provider fault")?,
        None => Vec::new(),
    };
    if let Some(path) = &args.samples {
        std::fs::write(path, drive::samples_csv(&driven.samples))
            .with_context(|| format!("writing {}", path.display()))?;
    }

    let drain_started = Instant::now();
    if !args.api_only {
        drain(&pool, &sink, Duration::from_secs(args.drain_secs)).await;
    }
    let drain_seconds = drain_started.elapsed().as_secs_f64();
    // The roles' processes now: a chaos run has restarted some of them.
    let cpu_used = cpu::used_between(&cpu_before, &cpu::sample(&pipeline.role_pids().await));
    let mut peak_rss_mib = BTreeMap::new();
    let mut redelivered = BTreeMap::new();
    let faults = match pipeline {
        Pipeline::Chaos(fleet) => {
            peak_rss_mib = fleet.peak_memory().await;
            if args.drill.is_some() {
                redelivered = fleet.redeliveries().await;
            }
            for (at, what) in provider_faults {
                fleet.note(at, what);
            }
            let faults = fleet.faults();
            match Arc::try_unwrap(fleet) {
                Ok(fleet) => fleet.stop().await,
                Err(_) => bail!("the chaos task still holds the fleet"),
            }
            faults
        }
        Pipeline::Processes(fleet) => {
            peak_rss_mib = fleet.peak_memory().await;
            if args.drill.is_some() {
                redelivered = fleet.redeliveries().await;
            }
            for (at, what) in provider_faults {
                fleet.note(at, what);
            }
            let faults = fleet.faults();
            fleet.stop().await;
            faults
        }
        Pipeline::InProcess(running) => {
            let roles_pool = running.pool.clone();
            running.stop().await;
            roles_pool.close().await;
            // Timed from the first submission.
            provider_faults
                .into_iter()
                .map(|(at, what)| {
                    let since = at.saturating_duration_since(first_submission_instant);
                    format!("{:>6.1} s  {what}", since.as_secs_f64())
                })
                .collect()
        }
    };
    // The roles' connections are closed now, and a closing backend reports its statistics.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counted_after = DatabaseCounters::read(&pool).await?;

    let mut report = judge(&pool, &sink, driven, &args).await?;
    report.parked = parked_messages(&config).await?;
    report.drain_seconds = drain_seconds;
    report.faults = faults;
    if second_provider.is_some() {
        let (sales, check) = provider_fault::sales(&pool, first_submission, args.hang()).await?;
        report.sales_by_provider = sales;
        report.invariants.extend(check);
    }
    report.peak_rss_mib = peak_rss_mib;
    if args.drill.is_some() {
        report.drill = Some(
            failover::report(&pool, &report, rabbitmq_nodes, engine_faults, redelivered).await?,
        );
    }
    report.cpu_ms_per_verification = cpu_used
        .into_iter()
        .map(|(who, seconds)| (who, seconds * 1_000.0 / report.accepted.max(1) as f64))
        .collect();
    // (A drill's new primary counts from its own start: its figure is not comparable.)
    report.commits_per_verification = (counted_after.commits - counted_before.commits).max(0)
        as f64
        / report.accepted.max(1) as f64;
    report.deadlocks = (counted_after.deadlocks - counted_before.deadlocks).max(0);
    report.against_limit = machine_limit.map(|machine| {
        AgainstLimit::new(
            machine,
            report.commits_per_verification,
            report.completed_per_second,
        )
    });
    println!("{}", report.table());
    std::fs::write(&args.report, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", args.report.display()))?;
    eprintln!("report written to {}", args.report.display());

    shutdown.trigger();
    pool.close().await;
    throwaway::clean_up(&config).await?;
    Ok(if report.invariants_held() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Where the roles run: in this process, or each in its own (chaos runs).
enum Pipeline {
    InProcess(pipeline::Running),
    Processes(chaos::Fleet),
    /// The processes, shared with the task that disturbs them.
    Chaos(Arc<chaos::Fleet>),
}

impl Pipeline {
    /// Each role's current process, where roles have processes of their own.
    async fn role_pids(&self) -> Vec<(String, u32)> {
        match self {
            Pipeline::Processes(fleet) => fleet.pids().await,
            Pipeline::Chaos(fleet) => fleet.pids().await,
            Pipeline::InProcess(_) => Vec::new(),
        }
    }
}

/// Messages in the run's parking queues, by queue.
pub(super) async fn parked_messages(config: &Config) -> Result<BTreeMap<String, u32>> {
    let depths = queue::sample_depths(
        &config.amqp_url,
        "load-parked",
        &Topology::from_config(config),
    )
    .await?;
    Ok(depths
        .into_iter()
        .map(|depth| (depth.queue.as_str().to_owned(), depth.parked))
        .collect())
}
