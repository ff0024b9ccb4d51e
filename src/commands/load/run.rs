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
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use namaskah::{
    pipeline::{self, Roles},
    prerequisites,
};
use namaskah_core::{
    Config, Shutdown,
    config::{ProviderProtocol, ProviderSettings, Secret},
    domain::{AccountId, ApiKey, Cents, Scope, TenantId, Tier},
    store::{self, accounts, api_keys, invariants, webhook_endpoints},
    webhooks::WebhookSecret,
};
use namaskah_load_tests::{
    simulator::{self, Behaviour, Simulator},
    webhook_sink::WebhookSink,
};
use namaskah_workers::WorkerKind;

use super::{
    chaos, cpu,
    drive::{self, Pace, Plan, Until},
    limit,
    provider_fault::{self, SecondProvider},
    report::{AgainstLimit, Check, Distribution, OrderingRate, Report, Webhooks},
    throwaway,
};

pub(super) const SIMULATOR_KEY: &str = "load-simulator-key";
/// Enough that no load run ever runs an account dry.
const OPENING_BALANCE_CENTS: i64 = 1_000_000_000_000;

/// `namaskah load` without a subcommand.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Submissions per second (open loop).
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Instead of a rate: this many clients, each submitting when its last answer came.
    #[arg(long)]
    concurrency: Option<u32>,
    /// Submit for this many seconds…
    #[arg(long, conflicts_with = "count")]
    duration: Option<u64>,
    /// …or this many times (default 500 when neither is given).
    #[arg(long)]
    count: Option<u64>,
    /// Customer accounts, each with its key and webhook endpoint; submissions take turns.
    #[arg(long, default_value_t = 20)]
    accounts: u32,
    /// How long after the purchase the simulator sends the SMS.
    #[arg(long, default_value_t = 1_000)]
    sms_delay_ms: u64,
    /// Share of orders whose SMS never comes (they time out and are refunded).
    #[arg(long, default_value_t = 0.1)]
    no_sms_ratio: f64,
    /// Share of purchases the provider refuses for lack of numbers (failed and refunded).
    #[arg(long, default_value_t = 0.05)]
    out_of_stock_ratio: f64,
    /// Share of provider requests answered with a server error (retried).
    #[arg(long, default_value_t = 0.02)]
    provider_error_ratio: f64,
    /// Share of accepted verifications the customer cancels 300 ms later.
    #[arg(long, default_value_t = 0.05)]
    cancel_ratio: f64,
    /// Every service's SMS timeout during the run (10–1800 s), so the run ends soon.
    #[arg(long, default_value_t = 15)]
    sms_timeout_secs: i32,
    /// After the last submission, how long to wait for the pipeline to settle.
    #[arg(long, default_value_t = 120)]
    drain_secs: u64,
    /// First measure the machine's limit for this many seconds — pgbench's single-row INSERT +
    /// COMMIT rate — and put the run's verifications/s against it (0: not measured).
    #[arg(long, default_value_t = 0)]
    pgbench_seconds: u64,
    /// pgbench's connections for `--pgbench-seconds`.
    #[arg(long, default_value_t = 8)]
    pgbench_clients: u32,
    /// Where to write the JSON report.
    #[arg(long, default_value = "load-report.json")]
    report: PathBuf,
    /// Also write every submission as a CSV line (when, latency, outcome), to see when the
    /// slow ones happened: a tail that comes in bursts is a stall, not the code path.
    #[arg(long)]
    samples: Option<PathBuf>,
    /// Every role in its own process (to see each one's memory), undisturbed.
    #[arg(long)]
    processes: bool,
    /// A second simulated provider (`5sim`, after the first in the failover order) selling
    /// the same catalogue; implied by `--hang-first-provider` and `--chaos`.
    #[arg(long)]
    second_provider: bool,
    /// The first provider hangs (answers nothing within any timeout) from FROM until UNTIL
    /// seconds after the first submission (`FROM:` for the rest of the run), beside a second
    /// provider. Chaos runs hang it from a tenth to a third of the submissions.
    #[arg(long, value_name = "FROM:UNTIL")]
    hang_first_provider: Option<provider_fault::Hang>,
    /// Only the API and its outbox relay, no workers or scheduler: the API's latency without
    /// the rest of the pipeline on the same cores. Verifications stay open, so finality and
    /// webhooks are not checked; money and counters are.
    #[arg(long, conflicts_with_all = ["processes", "chaos"])]
    api_only: bool,
    /// Every role in its own process; workers SIGKILLed and restarted, RabbitMQ and
    /// PostgreSQL taken away once each while submitting.
    #[arg(long)]
    chaos: bool,
    /// Chaos: real outages (every client of the services notices), proxy outages (only this
    /// run's processes notice) or none (kills only).
    #[arg(long, value_enum, default_value = "real", requires = "chaos")]
    outages: chaos::Outages,
    /// Chaos: seconds between two kills.
    #[arg(long, default_value_t = 3.0, requires = "chaos")]
    kill_every_secs: f64,
    #[arg(long, default_value = "rabbitmqctl stop_app", requires = "chaos")]
    rabbitmq_stop: String,
    #[arg(long, default_value = "rabbitmqctl start_app", requires = "chaos")]
    rabbitmq_start: String,
    #[arg(
        long,
        default_value = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -1) main restart",
        requires = "chaos"
    )]
    postgres_restart: String,
}

impl RunArgs {
    fn validate(&self) -> Result<(), String> {
        for (name, ratio) in [
            ("--no-sms-ratio", self.no_sms_ratio),
            ("--out-of-stock-ratio", self.out_of_stock_ratio),
            ("--provider-error-ratio", self.provider_error_ratio),
            ("--cancel-ratio", self.cancel_ratio),
        ] {
            if !(0.0..=1.0).contains(&ratio) {
                return Err(format!("{name} must be from 0 to 1, got {ratio}"));
            }
        }
        if !(10..=1800).contains(&self.sms_timeout_secs) {
            return Err("--sms-timeout-secs must be from 10 to 1800".to_owned());
        }
        if self.rate == 0 || self.concurrency == Some(0) || self.accounts == 0 {
            return Err("--rate, --concurrency and --accounts must be at least 1".to_owned());
        }
        if self.count == Some(0) || self.duration == Some(0) {
            return Err("--count and --duration must be at least 1".to_owned());
        }
        if self.pgbench_seconds > 600 || !(1..=256).contains(&self.pgbench_clients) {
            return Err(
                "--pgbench-seconds must be from 0 to 600 and --pgbench-clients from 1 to 256"
                    .to_owned(),
            );
        }
        if !(self.kill_every_secs >= 0.1 && self.kill_every_secs <= 3600.0) {
            return Err("--kill-every-secs must be from 0.1 to 3600".to_owned());
        }
        Ok(())
    }

    fn pace(&self) -> Pace {
        self.concurrency
            .map_or(Pace::Rate(self.rate), Pace::Concurrency)
    }

    fn until(&self) -> Until {
        match (self.duration, self.count) {
            (Some(seconds), _) => Until::Elapsed(Duration::from_secs(seconds)),
            (None, count) => Until::Count(count.unwrap_or(500)),
        }
    }

    /// About how long the submissions last, where the plan says.
    fn window(&self) -> Duration {
        match (self.until(), self.pace()) {
            (Until::Elapsed(duration), _) => duration,
            (Until::Count(count), Pace::Rate(rate)) => {
                Duration::from_secs_f64(count as f64 / f64::from(rate))
            }
            (Until::Count(_), Pace::Concurrency(_)) => Duration::from_secs(10),
        }
    }

    fn chaos_plan(&self) -> chaos::Plan {
        chaos::Plan {
            outages: self.outages,
            kill_every: Duration::from_secs_f64(self.kill_every_secs),
            window: self.window(),
            rabbitmq_stop: self.rabbitmq_stop.clone(),
            rabbitmq_start: self.rabbitmq_start.clone(),
            postgres_restart: self.postgres_restart.clone(),
        }
    }

    /// When the first provider hangs, if it does.
    fn hang(&self) -> Option<provider_fault::Hang> {
        self.hang_first_provider.or_else(|| {
            self.chaos.then(|| provider_fault::Hang {
                from: self.window() / 10,
                until: Some(self.window() / 3),
            })
        })
    }

    fn wants_second_provider(&self) -> bool {
        self.second_provider || self.hang().is_some()
    }

    fn behaviour(&self) -> Behaviour {
        Behaviour {
            latency_ms: 0,
            sms_delay_ms: self.sms_delay_ms,
            no_sms_ratio: self.no_sms_ratio,
            out_of_stock_ratio: self.out_of_stock_ratio,
            error_ratio: self.provider_error_ratio,
            throttle_ratio: 0.0,
        }
    }

    fn describe(&self) -> String {
        let pace = match self.pace() {
            Pace::Rate(rate) => format!("{rate}/s"),
            Pace::Concurrency(clients) => format!("{clients} clients"),
        };
        let until = match self.until() {
            Until::Count(count) => format!("{count} submissions"),
            Until::Elapsed(duration) => format!("{} s", duration.as_secs()),
        };
        let roles = if self.api_only {
            "; API and relay only"
        } else {
            ""
        };
        let chaos = if self.chaos {
            format!(
                "; chaos: a kill every {} s, {:?} outages",
                self.kill_every_secs, self.outages
            )
        } else {
            String::new()
        };
        let providers = match (self.hang(), self.wants_second_provider()) {
            (Some(hang), _) => format!("; two providers, {hang}"),
            (None, true) => "; two providers".to_owned(),
            (None, false) => String::new(),
        };
        format!(
            "{pace}, {until}, {} accounts; SMS after {} ms, no SMS {}, out of stock {}, \
             provider errors {}, cancels {}{roles}{chaos}{providers}",
            self.accounts,
            self.sms_delay_ms,
            self.no_sms_ratio,
            self.out_of_stock_ratio,
            self.provider_error_ratio,
            self.cancel_ratio
        )
    }
}

/// The customers of a run.
struct Customers {
    accounts: Vec<AccountId>,
    keys: Vec<String>,
    secrets: Arc<Mutex<Vec<WebhookSecret>>>,
}

pub async fn run(config: Config, args: RunArgs) -> Result<ExitCode> {
    if let Err(invalid) = args.validate() {
        eprintln!("{invalid}");
        return Ok(ExitCode::from(2));
    }
    if let Err(missing) = prerequisites::check_all(&config).await {
        for problem in missing {
            eprintln!("missing prerequisite: {problem}");
        }
        return Ok(ExitCode::from(3));
    }
    let shutdown = Shutdown::new();
    let mut config = throwaway::config(config);
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
    for (n, (account, secret)) in customers.accounts.iter().zip(&secrets).enumerate() {
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

    let pipeline = if args.chaos || args.processes {
        let extra_env = second_provider
            .as_ref()
            .map(|second| second.env(SIMULATOR_KEY))
            .unwrap_or_default();
        Pipeline::Processes(
            chaos::Fleet::start(&config, simulator_addr, &extra_env, args.outages).await?,
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
    let api = match &pipeline {
        Pipeline::Processes(fleet) => fleet.api.clone(),
        Pipeline::Chaos(fleet) => fleet.api.clone(),
        Pipeline::InProcess(running) => format!(
            "http://{}",
            running.api_addr.context("the API did not start")?
        ),
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
    let plan = Plan {
        pace: args.pace(),
        until: args.until(),
        cancel_ratio: args.cancel_ratio,
        orders,
    };
    let commits_before = commits(&pool).await?;
    let cpu_before = cpu::sample(&pipeline.role_pids().await);
    let first_submission = Utc::now();
    let first_submission_instant = Instant::now();
    let hanging = args
        .hang()
        .map(|hang| tokio::spawn(provider_fault::hang(Arc::clone(&simulator), hang)));
    let (driven, pipeline) = match pipeline {
        Pipeline::Processes(fleet) if args.chaos => {
            let fleet = Arc::new(fleet);
            let done = Shutdown::new();
            let disturbing = tokio::spawn(chaos::disturb(
                Arc::clone(&fleet),
                args.chaos_plan(),
                done.clone(),
            ));
            let driven = drive::drive(&api, customers.keys, plan, &progress).await;
            done.trigger();
            disturbing.await.context("the chaos task")?;
            (driven, Pipeline::Chaos(fleet))
        }
        running => (
            drive::drive(&api, customers.keys, plan, &progress).await,
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
    let faults = match pipeline {
        Pipeline::Chaos(fleet) => {
            peak_rss_mib = fleet.peak_memory().await;
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
    let commits_after = commits(&pool).await?;

    let mut report = assemble(&pool, &sink, driven, &args).await?;
    report.drain_seconds = drain_seconds;
    report.faults = faults;
    if second_provider.is_some() {
        let (sales, check) = provider_fault::sales(&pool, first_submission, args.hang()).await?;
        report.sales_by_provider = sales;
        report.invariants.extend(check);
    }
    report.peak_rss_mib = peak_rss_mib;
    report.cpu_ms_per_verification = cpu_used
        .into_iter()
        .map(|(who, seconds)| (who, seconds * 1_000.0 / report.accepted.max(1) as f64))
        .collect();
    report.commits_per_verification =
        (commits_after - commits_before) as f64 / report.accepted.max(1) as f64;
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

/// Short SMS timeouts, so that orders without an SMS end within the run, and no rate
/// limits or open caps: the run measures the pipeline, not the limiter.
async fn prepare_catalogue(pool: &sqlx::PgPool, sms_timeout_secs: i32) -> Result<()> {
    sqlx::query("UPDATE services SET sms_timeout_secs = $1")
        .bind(sms_timeout_secs)
        .execute(pool)
        .await?;
    sqlx::query(
        "UPDATE tiers SET requests_per_second = 100000, burst = 100000,
                          max_open_verifications = 1000000",
    )
    .execute(pool)
    .await?;
    Ok(())
}

async fn create_customers(pool: &sqlx::PgPool, count: u32) -> Result<Customers> {
    let mut ids = Vec::new();
    let mut keys = Vec::new();
    let mut secrets = Vec::new();
    let mut tx = pool.begin().await?;
    for n in 0..count {
        let account = accounts::create(
            &mut tx,
            TenantId::DEFAULT,
            &format!("load{n}@example.com"),
            Tier::Enterprise,
            Cents::new(OPENING_BALANCE_CENTS).context("opening balance")?,
        )
        .await?;
        let key = ApiKey::generate();
        api_keys::insert(&mut tx, account.id, &key, &[Scope::Write], "load").await?;
        ids.push(account.id);
        keys.push(key.expose().to_owned());
        secrets.push(WebhookSecret::generate());
    }
    tx.commit().await?;
    Ok(Customers {
        accounts: ids,
        keys,
        secrets: Arc::new(Mutex::new(secrets)),
    })
}

/// Waits until every verification is final and every webhook due has arrived, or `limit`.
/// A database that does not answer (a chaos run's restart) is waited for too.
async fn drain(pool: &sqlx::PgPool, sink: &WebhookSink, limit: Duration) {
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(200));
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let counts: Result<(i64, i64), sqlx::Error> = sqlx::query_as(
            "SELECT (SELECT count(*) FROM verifications
                     WHERE status NOT IN ('completed', 'refunded')),
                    (SELECT count(*) FROM webhook_deliveries)",
        )
        .fetch_one(pool)
        .await;
        let arrived = sink.with_tally(|t| t.first_seen.len()).unwrap_or(0);
        match counts {
            Ok((open, due)) if open == 0 && arrived as i64 >= due => break,
            Ok((open, due)) => spinner.set_message(format!(
                "draining: {open} verifications open, {arrived}/{due} webhooks arrived"
            )),
            Err(error) => spinner.set_message(format!("draining: the database: {error}")),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    spinner.finish_and_clear();
}

/// Transactions committed so far in the run's database.
async fn commits(pool: &sqlx::PgPool) -> Result<i64> {
    // Statistics reach the view when a backend reports them; ask for this one's now.
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(pool)
        .await?;
    Ok(sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?)
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

#[derive(sqlx::FromRow)]
struct Final {
    id: String,
    status: String,
    failure_reason: Option<String>,
    number_assigned_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
}

fn millis(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(0) as f64 / 1_000.0
}

async fn assemble(
    pool: &sqlx::PgPool,
    sink: &WebhookSink,
    driven: drive::Driven,
    args: &RunArgs,
) -> Result<Report> {
    let mut report = Report {
        mode: if args.concurrency.is_some() {
            "concurrency"
        } else {
            "rate"
        }
        .to_owned(),
        target: args.describe(),
        submitted: driven.samples.len(),
        cancels_requested: driven.cancels_requested,
        ..Report::default()
    };
    let mut submitted_at: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut latencies = Vec::new();
    for sample in &driven.samples {
        match &sample.outcome {
            Ok(id) => {
                submitted_at.insert(id.clone(), sample.submitted_at);
                latencies.push(sample.latency_ms);
            }
            Err(kind) => *report.errors.entry(kind.clone()).or_insert(0) += 1,
        }
    }
    for (kind, count) in &driven.cancel_errors {
        *report.errors.entry(kind.clone()).or_insert(0) += count;
    }
    report.accepted = submitted_at.len();
    report.api_latency_ms = Distribution::of(latencies);
    // From the first submission to the last answer.
    let first = driven.samples.iter().map(|s| s.submitted_at).min();
    let last_answer = driven
        .samples
        .iter()
        .map(|s| s.submitted_at + chrono::Duration::microseconds((s.latency_ms * 1_000.0) as i64))
        .max();
    report.submit_seconds = match (first, last_answer) {
        (Some(first), Some(last)) => millis(first, last) / 1_000.0,
        _ => driven.seconds,
    };
    report.submissions_per_second = report.accepted as f64 / report.submit_seconds.max(1e-9);

    let finals: Vec<Final> = sqlx::query_as(
        "SELECT id::text, status,
                CASE WHEN failure_reason IS NULL AND cancel_requested_at IS NOT NULL
                     THEN 'cancelled by the customer' ELSE failure_reason END AS failure_reason,
                number_assigned_at, completed_at
         FROM verifications",
    )
    .fetch_all(pool)
    .await?;
    let known: HashSet<&str> = finals.iter().map(|f| f.id.as_str()).collect();
    let mut to_number = Vec::new();
    let mut not_final = Vec::new();
    let mut last_completion = None;
    for row in &finals {
        let outcome = match (&row.status[..], &row.failure_reason) {
            ("refunded", Some(reason)) => format!("refunded ({reason})"),
            (status, _) => status.to_owned(),
        };
        *report.outcomes.entry(outcome).or_insert(0) += 1;
        if row.status != "completed" && row.status != "refunded" {
            not_final.push(format!("{}: {}", row.id, row.status));
        }
        if let (Some(at), Some(submitted)) = (row.number_assigned_at, submitted_at.get(&row.id)) {
            to_number.push(millis(*submitted, at));
        }
        if row.status == "completed" {
            report.completed += 1;
            last_completion = last_completion.max(row.completed_at);
        }
    }
    report.submit_to_number_ms = Distribution::of(to_number);
    let assigned: Vec<DateTime<Utc>> = finals
        .iter()
        .filter_map(|row| row.number_assigned_at)
        .collect();
    report.ordering = OrderingRate::of(&assigned);
    if let (Some(first), Some(last)) = (first, last_completion) {
        report.completed_per_second = report.completed as f64 / (millis(first, last) / 1_000.0);
    }

    let deliveries: Vec<(String, String)> = sqlx::query_as(
        "SELECT d.message_id, e.url FROM webhook_deliveries d
         JOIN webhook_endpoints e ON e.id = d.endpoint_id",
    )
    .fetch_all(pool)
    .await?;
    let (undelivered, completed_webhooks, duplicates, bad_signatures) = sink
        .with_tally(|tally| {
            let undelivered: Vec<String> = deliveries
                .iter()
                .filter(|(message, url)| {
                    let path = url.split_once("/hooks/").map_or("", |(_, n)| n);
                    !tally
                        .first_seen
                        .contains_key(&(format!("/hooks/{path}"), message.clone()))
                })
                .map(|(message, url)| format!("{message} to {url}"))
                .collect();
            let completed: Vec<f64> = tally
                .completions
                .iter()
                .filter_map(|(id, at)| Some(millis(*submitted_at.get(id)?, *at)))
                .collect();
            (
                undelivered,
                completed,
                tally.duplicates,
                tally.bad_signatures,
            )
        })
        .context("reading the webhook receiver")?;
    report.submit_to_completed_webhook_ms = Distribution::of(completed_webhooks);
    report.webhooks = Webhooks {
        expected: deliveries.len(),
        delivered: deliveries.len() - undelivered.len(),
        duplicates,
        bad_signatures,
    };

    let lost: Vec<String> = submitted_at
        .keys()
        .filter(|id| !known.contains(id.as_str()))
        .map(|id| format!("{id}: accepted, not in the database"))
        .collect();
    report
        .invariants
        .push(Check::new("every_accepted_verification_exists", lost));
    if !args.api_only {
        report
            .invariants
            .push(Check::new("every_verification_final", not_final));
    }
    let checked = invariants::check(pool, Duration::from_secs(0)).await?;
    let mut broken: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for violation in &checked.violations {
        broken
            .entry(violation.invariant)
            .or_default()
            .extend(violation.examples.iter().cloned());
    }
    for name in [
        "balance_equals_ledger",
        "exactly_one_charge",
        "charge_matches_price",
        "refund_only_when_refunded",
        "open_count_matches",
        "open_since_matches_status",
        "usage_closed_days_final",
    ] {
        report
            .invariants
            .push(Check::new(name, broken.remove(name).unwrap_or_default()));
    }
    // `every_verification_final` says it with the run's own words; any other is reported.
    broken.remove("overdue_verifications_are_final");
    for (name, examples) in broken {
        report.invariants.push(Check::new(name, examples));
    }
    report.invariants.push(Check::new(
        "every_webhook_delivered_with_a_valid_signature",
        undelivered,
    ));
    report.invariants.push(Check::new(
        "no_badly_signed_webhook",
        (bad_signatures > 0)
            .then(|| format!("{bad_signatures} requests with a bad signature"))
            .into_iter()
            .collect(),
    ));
    Ok(report)
}
