//! Chaos runs (`namaskah load --chaos`): every role in its own process, a random worker
//! killed with SIGKILL and restarted every few seconds, and one RabbitMQ and one PostgreSQL
//! outage while the submissions run. The run's checks are the same as without chaos: after
//! the drain, nothing may be lost, charged twice or left unrefunded.
//!
//! Outages are either real (`rabbitmqctl stop_app`/`start_app`, a PostgreSQL restart: every
//! client of those services notices) or staged through proxies in front of both, which the
//! role processes connect through and which drop every connection and refuse new ones for
//! the outage (only this run notices: what the test suite uses, beside other tests).

use anyhow::{Context, Result, bail};
use rand::RngExt;
use std::{
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::process::{Child, Command};

use namaskah_core::{Config, Shutdown};
use namaskah_load_tests::proxy::TcpProxy;

/// How long each staged or real outage lasts.
const OUTAGE: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Outages {
    /// Stop and start RabbitMQ's app and restart PostgreSQL (see `--postgres-restart`).
    Real,
    /// Cut proxies in front of both, seen by this run's processes only.
    Proxy,
    /// Kill workers only.
    None,
}

/// How to disturb the pipeline.
pub struct Plan {
    pub outages: Outages,
    pub kill_every: Duration,
    /// Roughly how long the submissions last, to place the outages at a third and two thirds.
    pub window: Duration,
    pub rabbitmq_stop: String,
    pub rabbitmq_start: String,
    pub postgres_restart: String,
}

/// One role process, restartable.
struct Role {
    name: String,
    args: &'static [&'static str],
    /// Its own listeners: API_ADDR, kept across restarts because the run sends to it, and
    /// METRICS_ADDR, chosen again at each restart.
    env: Vec<(String, String)>,
    metrics: SocketAddr,
    child: Child,
}

impl Role {
    fn is_api(&self) -> bool {
        self.args == ["api"]
    }

    /// Starts the role again, on a metrics port chosen afresh: a port free when the role
    /// first started may have been taken since, and a role that cannot listen exits, so
    /// keeping it would turn one lost port into a role that never comes back.
    fn restart(&mut self, launcher: &Launcher) -> Result<()> {
        let metrics: SocketAddr = ([127, 0, 0, 1], namaskah::ports::unused_local_port()?).into();
        for (name, value) in &mut self.env {
            if name == "METRICS_ADDR" {
                *value = metrics.to_string();
            }
        }
        self.child = launcher.spawn(self.args, &self.env)?;
        self.metrics = metrics;
        Ok(())
    }
}

/// The role processes of a chaos run and what they need to be restarted. Like the process
/// supervisor of a deployment (`restart: unless-stopped`), it starts again any role that
/// exits on its own: a role that starts while PostgreSQL or RabbitMQ is away exits.
pub struct Fleet {
    launcher: Arc<Launcher>,
    roles: Arc<tokio::sync::Mutex<Vec<Role>>>,
    /// Each API replica's base URL.
    pub apis: Vec<String>,
    proxies: Option<Arc<Proxies>>,
    log: Arc<FaultLog>,
    supervisor: Shutdown,
}

/// How to start a role.
struct Launcher {
    exe: PathBuf,
    env: Vec<(String, String)>,
}

impl Launcher {
    fn spawn(&self, args: &[&str], own_env: &[(String, String)]) -> Result<Child> {
        Command::new(&self.exe)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(own_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Warnings and errors of the roles show beside the progress bar.
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting namaskah {}", args.join(" ")))
    }
}

/// What was done to the pipeline, each with the time since the fleet started.
struct FaultLog {
    started: Instant,
    lines: Mutex<Vec<String>>,
}

impl FaultLog {
    /// Notes what was done, at the time it began.
    fn note(&self, begun: Instant, what: Result<String>) {
        let line = match what {
            Ok(what) if what.is_empty() => return,
            Ok(what) => what,
            Err(error) => format!("could not: {error:#}"),
        };
        if let Ok(mut lines) = self.lines.lock() {
            let at = begun.duration_since(self.started).as_secs_f64();
            lines.push(format!("{at:>6.1} s  {line}"));
        }
    }
}

/// The proxies in front of PostgreSQL and RabbitMQ in `--outages proxy` runs.
pub struct Proxies {
    postgres: TcpProxy,
    rabbitmq: TcpProxy,
}

const ROLES: [(&str, &[&str]); 6] = [
    ("api", &["api"]),
    ("worker ordering", &["worker", "ordering"]),
    ("worker polling", &["worker", "polling"]),
    ("worker refund", &["worker", "refund"]),
    ("worker webhooks", &["worker", "webhooks"]),
    ("scheduler", &["scheduler"]),
];

impl Fleet {
    /// Starts every role as its own process of this binary, `replicas` of each, configured
    /// for the run, and waits until every API replica answers.
    /// `provider_env` reaches the providers beside the simulator.
    pub async fn start(
        config: &Config,
        simulator: SocketAddr,
        provider_env: &[(&'static str, String)],
        outages: Outages,
        replicas: usize,
    ) -> Result<Self> {
        let exe = std::env::current_exe().context("finding this binary")?;
        let mut database_url = config.database_url.clone();
        let mut amqp_url = config.amqp_url.clone();
        let proxies = if outages == Outages::Proxy {
            let (postgres, via_postgres) = TcpProxy::in_front_of(&database_url, 5432, true).await?;
            let (rabbitmq, via_rabbitmq) = TcpProxy::in_front_of(&amqp_url, 5672, true).await?;
            database_url = via_postgres;
            amqp_url = via_rabbitmq;
            Some(Arc::new(Proxies { postgres, rabbitmq }))
        } else {
            None
        };
        let env: Vec<(String, String)> = [
            ("DATABASE_URL", database_url),
            ("AMQP_URL", amqp_url),
            ("QUEUE_PREFIX", config.queue_prefix.clone()),
            ("PROVIDERS", config.provider_names().join(",")),
            ("SIMULATOR_BASE_URL", format!("http://{simulator}/v1")),
            ("SIMULATOR_API_KEY", super::setup::SIMULATOR_KEY.to_owned()),
            ("WEBHOOK_ALLOW_HTTP", "true".to_owned()),
            ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true".to_owned()),
            // A worker killed mid-purchase holds its lease this long, and the sweeper sends
            // an order again after this long without progress (2 min by default, the whole
            // drain): short, so the sweeper recovers such verifications within the drain.
            ("ORDERING_LEASE", "5s".to_owned()),
            ("SWEEP_ORDERING_AFTER", "30s".to_owned()),
            // A provider fault plays out within a short run: a hung call is given up after
            // 2 s, and an open breaker probes again 2 s later.
            ("PROVIDER_TIMEOUT", "2s".to_owned()),
            ("PROVIDER_BREAKER_COOL_DOWN", "2s".to_owned()),
            // Role processes are quiet unless something goes wrong.
            (
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            ),
        ]
        .into_iter()
        .chain(provider_env.iter().cloned())
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let launcher = Arc::new(Launcher { exe, env });
        let mut roles = Vec::new();
        let mut apis = Vec::new();
        for (name, args) in ROLES {
            for replica in 1..=replicas.max(1) {
                let metrics: SocketAddr =
                    ([127, 0, 0, 1], namaskah::ports::unused_local_port()?).into();
                let mut env = vec![("METRICS_ADDR".to_owned(), metrics.to_string())];
                if args == ["api"] {
                    let address = format!("127.0.0.1:{}", namaskah::ports::unused_local_port()?);
                    apis.push(format!("http://{address}"));
                    env.push(("API_ADDR".to_owned(), address));
                    // Replicas cannot share the web app's default port; runs do not use it.
                    env.push(("APP_ADDR".to_owned(), "off".to_owned()));
                }
                let name = if replicas > 1 {
                    format!("{name} {replica}")
                } else {
                    name.to_owned()
                };
                let child = launcher.spawn(args, &env)?;
                roles.push(Role {
                    name,
                    args,
                    env,
                    metrics,
                    child,
                });
            }
        }
        let fleet = Self {
            launcher,
            roles: Arc::new(tokio::sync::Mutex::new(roles)),
            apis,
            proxies,
            log: Arc::new(FaultLog {
                started: Instant::now(),
                lines: Mutex::new(Vec::new()),
            }),
            supervisor: Shutdown::new(),
        };
        fleet.wait_for_api().await?;
        tokio::spawn(supervise(
            Arc::clone(&fleet.roles),
            Arc::clone(&fleet.launcher),
            Arc::clone(&fleet.log),
            fleet.supervisor.clone(),
        ));
        Ok(fleet)
    }

    /// Each role's current process id.
    pub async fn pids(&self) -> Vec<(String, u32)> {
        let roles = self.roles.lock().await;
        roles
            .iter()
            .filter_map(|role| Some((role.name.clone(), role.child.id()?)))
            .collect()
    }

    /// The peak resident memory of each role's current process, in MiB (Linux: `VmHWM`).
    pub async fn peak_memory(&self) -> std::collections::BTreeMap<String, f64> {
        let roles = self.roles.lock().await;
        roles
            .iter()
            .filter_map(|role| {
                let status =
                    std::fs::read_to_string(format!("/proc/{}/status", role.child.id()?)).ok()?;
                let kib: f64 = status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmHWM:"))?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()?;
                Some((role.name.clone(), kib / 1024.0))
            })
            .collect()
    }

    /// Notes something done to the pipeline from outside the fleet, at the time it began.
    pub fn note(&self, at: Instant, what: String) {
        self.log.note(at, Ok(what));
    }

    /// What was done to the pipeline so far.
    pub fn faults(&self) -> Vec<String> {
        let mut lines = self
            .log
            .lines
            .lock()
            .map(|lines| lines.clone())
            .unwrap_or_default();
        // An outage is noted when it ends, at the time it began: put it in its place.
        let at = |line: &String| {
            line.split_whitespace()
                .next()
                .and_then(|seconds| seconds.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        lines.sort_by(|a, b| at(a).total_cmp(&at(b)));
        lines
    }

    async fn wait_for_api(&self) -> Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        for api in &self.apis {
            loop {
                let ready = http.get(format!("{api}/readyz")).send().await;
                if ready.is_ok_and(|r| r.status().is_success()) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("the API process at {api} did not become ready within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Messages redelivered to the roles' current processes, by queue, from their metrics
    /// (a process restarted during the run has counted since its restart only).
    pub async fn redeliveries(&self) -> std::collections::BTreeMap<String, u64> {
        let http = reqwest::Client::new();
        let mut total = std::collections::BTreeMap::new();
        let addresses: Vec<SocketAddr> = self
            .roles
            .lock()
            .await
            .iter()
            .map(|role| role.metrics)
            .collect();
        for address in addresses {
            let Ok(response) = http.get(format!("http://{address}/metrics")).send().await else {
                continue;
            };
            let Ok(scrape) = response.text().await else {
                continue;
            };
            for (queue, count) in redelivered_in(&scrape) {
                *total.entry(queue).or_insert(0) += count;
            }
        }
        total
    }

    /// SIGKILLs a random worker or the scheduler and starts it again.
    async fn kill_one(&self) -> Result<String> {
        let mut roles = self.roles.lock().await;
        // Not the API: submissions would fail, which shows nothing about losing work.
        let others: Vec<usize> = (0..roles.len()).filter(|&i| !roles[i].is_api()).collect();
        let index = others[rand::rng().random_range(0..others.len())];
        let role = &mut roles[index];
        let pid = role.child.id().unwrap_or(0);
        role.child.start_kill().context("SIGKILL")?;
        let _ = role.child.wait().await;
        role.restart(&self.launcher)?;
        Ok(format!("SIGKILL {} (pid {pid}), restarted", role.name))
    }

    /// Asks every process to stop (SIGTERM: graceful) and waits for it.
    pub async fn stop(self) {
        self.supervisor.trigger();
        let mut roles = self.roles.lock().await;
        for role in roles.iter() {
            if let Some(pid) = role.child.id() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
        }
        for role in roles.iter_mut() {
            if tokio::time::timeout(Duration::from_secs(15), role.child.wait())
                .await
                .is_err()
            {
                let _ = role.child.start_kill();
            }
        }
    }
}

/// Restarts, a second later, any role that exited on its own.
async fn supervise(
    roles: Arc<tokio::sync::Mutex<Vec<Role>>>,
    launcher: Arc<Launcher>,
    log: Arc<FaultLog>,
    stop: Shutdown,
) {
    loop {
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let mut roles = roles.lock().await;
        for role in roles.iter_mut() {
            if let Ok(Some(status)) = role.child.try_wait() {
                let restarted = role
                    .restart(&launcher)
                    .map(|()| format!("{} exited ({status}), restarted", role.name));
                log.note(Instant::now(), restarted);
            }
        }
    }
}

/// `namaskah_messages_redelivered_total` by queue in a Prometheus scrape.
fn redelivered_in(scrape: &str) -> Vec<(String, u64)> {
    scrape
        .lines()
        .filter_map(|line| line.strip_prefix("namaskah_messages_redelivered_total{"))
        .filter_map(|rest| {
            let (labels, value) = rest.split_once("} ")?;
            let queue = labels.split("queue=\"").nth(1)?.split('"').next()?;
            Some((queue.to_owned(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

async fn shell(command: &str) -> Result<()> {
    let status = Command::new("sh")
        .args(["-c", command])
        .stdout(Stdio::null())
        .status()
        .await
        .with_context(|| format!("running {command}"))?;
    if !status.success() {
        bail!("`{command}` failed: {status}");
    }
    Ok(())
}

impl Plan {
    async fn rabbitmq_outage(&self, proxies: Option<&Proxies>) -> Result<String> {
        match (proxies, self.outages) {
            (Some(proxies), _) => {
                proxies.rabbitmq.cut().await;
                tokio::time::sleep(OUTAGE).await;
                proxies.rabbitmq.restore();
                Ok("RabbitMQ unreachable for 3 s (proxy cut)".to_owned())
            }
            (None, Outages::Real) => {
                shell(&self.rabbitmq_stop).await?;
                tokio::time::sleep(OUTAGE).await;
                shell(&self.rabbitmq_start).await?;
                Ok(format!(
                    "RabbitMQ stopped for 3 s (`{}`, `{}`)",
                    self.rabbitmq_stop, self.rabbitmq_start
                ))
            }
            (None, _) => Ok(String::new()),
        }
    }

    async fn postgres_outage(&self, proxies: Option<&Proxies>) -> Result<String> {
        match (proxies, self.outages) {
            (Some(proxies), _) => {
                proxies.postgres.cut().await;
                tokio::time::sleep(OUTAGE).await;
                proxies.postgres.restore();
                Ok("PostgreSQL unreachable for 3 s (proxy cut)".to_owned())
            }
            (None, Outages::Real) => {
                shell(&self.postgres_restart).await?;
                Ok(format!(
                    "PostgreSQL restarted (`{}`)",
                    self.postgres_restart
                ))
            }
            (None, _) => Ok(String::new()),
        }
    }
}

/// Disturbs `fleet` by `plan`: kills until `done` fires, and both outages; what it did is
/// in [`Fleet::faults`].
pub async fn disturb(fleet: Arc<Fleet>, plan: Plan, done: Shutdown) {
    let proxies = fleet.proxies.clone();
    // Both outages happen even if the submissions end first (a slow `rabbitmqctl` can take
    // longer than a short run): then the pipeline recovers during the drain.
    let outages = async {
        let begun = Instant::now();
        let third = plan.window / 3;
        tokio::time::sleep(third).await;
        // Once begun, an outage runs to its end: the service must come back.
        let at = Instant::now();
        let what = plan.rabbitmq_outage(proxies.as_deref()).await;
        fleet.log.note(at, what);
        tokio::time::sleep((third * 2).saturating_sub(begun.elapsed())).await;
        let at = Instant::now();
        let what = plan.postgres_outage(proxies.as_deref()).await;
        fleet.log.note(at, what);
    };
    let kills = async {
        loop {
            tokio::select! {
                _ = done.wait() => break,
                _ = tokio::time::sleep(plan.kill_every) => {}
            }
            let begun = Instant::now();
            let what = fleet.kill_one().await;
            fleet.log.note(begun, what);
        }
    };
    tokio::join!(outages, kills);
}
