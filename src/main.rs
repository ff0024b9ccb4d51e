//! `namaskah`: every role of the pipeline in one binary.

mod commands;

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;

use namaskah_core::{Config, telemetry};
use namaskah_workers::WorkerKind;

// glibc's malloc took a sixth of the process's CPU under load (docs/benchmarks.md, fourth
// step): every request, message and query allocates, and its arena locks and consolidation
// showed up in the flame graph. mimalloc's thread-local free lists do the same work for less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "namaskah", version, about = "SMS-verification number pipeline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process: API, workers, outbox relay and the provider simulator.
    Up,
    /// Run the job submission API (with an outbox relay).
    Api,
    /// Run one worker (with an outbox relay).
    Worker {
        #[arg(value_enum)]
        kind: WorkerArg,
    },
    /// Run the operator dashboard on DASHBOARD_ADDR.
    Dashboard,
    /// Manage dashboard administrators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Run the scheduler (periodic jobs; one leader among any number of instances).
    Scheduler {
        #[command(subcommand)]
        command: Option<SchedulerCommand>,
    },
    /// Write a backup now (pg_dump custom format into BACKUP_DIR, with a .sha256).
    Backup,
    /// Restore a backup into an empty database.
    Restore {
        file: std::path::PathBuf,
        #[arg(long)]
        database_url: String,
    },
    /// Run the provider simulator (5SIM wire format) on SIMULATOR_ADDR.
    Simulator,
    /// Create the database if needed and apply pending migrations.
    Migrate,
    /// Check the system's invariants (money and states); exit 1 if any is broken.
    Check,
    /// Live evidence for the security controls (docs/compliance.md) as JSON; exit 1 naming
    /// each control that is not met.
    Compliance(commands::compliance::ComplianceArgs),
    /// Measure the pipeline under load through its API and check that nothing was lost
    /// (a throw-away database and queue prefix); `load webhooks` measures delivery alone.
    #[command(args_conflicts_with_subcommands = true)]
    Load {
        #[command(subcommand)]
        command: Option<LoadCommand>,
        #[command(flatten)]
        run: Box<commands::load::run::RunArgs>,
    },
    /// Manage customer accounts.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Manage white-label tenants.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
}

#[derive(Subcommand)]
enum TenantsCommand {
    /// Create a tenant, its first administrator account and that account's `tenant_admin`
    /// key; prints them as JSON (the key only this once).
    Create {
        /// Lowercase letters, digits and dashes: `acme`.
        #[arg(long)]
        slug: String,
        /// The brand name its customers see.
        #[arg(long)]
        name: String,
        #[arg(long)]
        admin_email: String,
        /// A host name whose requests are the tenant's: `verify.acme.example`.
        #[arg(long)]
        custom_domain: Option<String>,
        #[arg(long)]
        support_email: Option<String>,
    },
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Create an account and its first API key; prints both as JSON (the key only this once).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value_t = 0)]
        balance_cents: i64,
        #[arg(long, default_value = "free")]
        tier: String,
        /// Another account's referral code: that account is rewarded when this one first
        /// tops up.
        #[arg(long)]
        referral_code: Option<String>,
        /// The first key's scopes, comma-separated (read, write, admin); by default all
        /// three: the owner's key, which can make narrower ones.
        #[arg(long)]
        scopes: Option<String>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an administrator; prints a one-time password and the otpauth:// URI for the
    /// authenticator app.
    Create {
        #[arg(long)]
        username: String,
    },
}

#[derive(Subcommand)]
enum SchedulerCommand {
    /// The most recent job runs, newest first.
    Runs {
        #[arg(long, default_value_t = 30)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum LoadCommand {
    /// Webhook deliveries per second and commit-to-receipt latency, to a local receiver.
    Webhooks {
        /// Events to write.
        #[arg(long, default_value_t = 5_000)]
        events: u64,
        /// Endpoints each event goes to.
        #[arg(long, default_value_t = 1)]
        endpoints: u32,
        /// Events per second (0: as fast as possible).
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum WorkerArg {
    Ordering,
    Polling,
    Refund,
    Webhooks,
}

impl From<WorkerArg> for WorkerKind {
    fn from(arg: WorkerArg) -> Self {
        match arg {
            WorkerArg::Ordering => WorkerKind::Ordering,
            WorkerArg::Polling => WorkerKind::Polling,
            WorkerArg::Refund => WorkerKind::Refund,
            WorkerArg::Webhooks => WorkerKind::Webhooks,
        }
    }
}

impl Command {
    /// The role name reported to Sentry.
    fn role(&self) -> &'static str {
        match self {
            Command::Up => "up",
            Command::Api => "api",
            Command::Worker { kind } => match kind {
                WorkerArg::Ordering => "worker-ordering",
                WorkerArg::Polling => "worker-polling",
                WorkerArg::Refund => "worker-refund",
                WorkerArg::Webhooks => "worker-webhooks",
            },
            Command::Dashboard => "dashboard",
            Command::Scheduler { .. } | Command::Backup | Command::Restore { .. } => "scheduler",
            Command::Simulator => "simulator",
            Command::Load { .. } => "load",
            _ => "cli",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::install_crypto_provider();
    let _telemetry = telemetry::init(
        config.log_format,
        config.otlp_endpoint.as_deref(),
        cli.command.role(),
    );
    // Errors and panics also go to Sentry when a DSN is configured; the guard flushes on exit.
    let _sentry = config
        .sentry_dsn
        .as_ref()
        .map(|dsn| telemetry::init_sentry(dsn.expose(), cli.command.role()));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Up => commands::roles::up(config).await,
            Command::Api => commands::roles::api(config).await,
            Command::Worker { kind } => commands::roles::worker(config, kind.into()).await,
            Command::Simulator => commands::roles::simulator(config).await,
            Command::Dashboard => commands::roles::dashboard(config).await,
            Command::Admin {
                command: AdminCommand::Create { username },
            } => commands::admin::create(config, &username).await,
            Command::Scheduler { command: None } => commands::roles::scheduler(config).await,
            Command::Scheduler {
                command: Some(SchedulerCommand::Runs { limit }),
            } => commands::scheduler::runs(config, limit).await,
            Command::Backup => commands::scheduler::backup(config).await,
            Command::Restore { file, database_url } => {
                commands::scheduler::restore(&file, &database_url).await
            }
            Command::Migrate => commands::migrate::run(config).await,
            Command::Check => commands::check::run(config).await,
            Command::Compliance(args) => commands::compliance::run(config, args).await,
            Command::Load { command: None, run } => commands::load::run::run(config, *run).await,
            Command::Load {
                command:
                    Some(LoadCommand::Webhooks {
                        events,
                        endpoints,
                        rate,
                    }),
                ..
            } => {
                let load = commands::load::webhooks::WebhookLoad {
                    events,
                    endpoints,
                    rate,
                };
                commands::load::webhooks::webhooks(config, load).await
            }
            Command::Tenants {
                command:
                    TenantsCommand::Create {
                        slug,
                        name,
                        admin_email,
                        custom_domain,
                        support_email,
                    },
            } => {
                let options = commands::tenants::NewTenant {
                    slug,
                    name,
                    admin_email,
                    custom_domain,
                    support_email,
                };
                commands::tenants::create(config, options).await
            }
            Command::Accounts {
                command:
                    AccountsCommand::Create {
                        email,
                        balance_cents,
                        tier,
                        referral_code,
                        scopes,
                    },
            } => {
                let options = commands::accounts::NewAccount {
                    email,
                    balance_cents,
                    tier,
                    referral_code,
                    scopes,
                };
                commands::accounts::create(config, options).await
            }
        }
    });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
