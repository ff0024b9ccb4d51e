//! What `namaskah load` is asked to do: its command line, checked, and what follows from it
//! (the pace, when to stop, the chaos plan, the simulated providers' behaviour).

use std::{path::PathBuf, time::Duration};

use namaskah_load_tests::simulator::Behaviour;

use super::{
    chaos,
    drive::{Pace, Until},
    provider_fault,
};

/// `namaskah load` without a subcommand.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Submissions per second (open loop).
    #[arg(long, default_value_t = 50)]
    pub(super) rate: u32,
    /// Instead of a rate: this many clients, each submitting when its last answer came.
    #[arg(long)]
    pub(super) concurrency: Option<u32>,
    /// Submit for this many seconds…
    #[arg(long, conflicts_with = "count")]
    pub(super) duration: Option<u64>,
    /// …or this many times (default 500 when neither is given).
    #[arg(long)]
    pub(super) count: Option<u64>,
    /// Customer accounts, each with its key and webhook endpoint; submissions take turns.
    #[arg(long, default_value_t = 20)]
    pub(super) accounts: u32,
    /// The accounts get no webhook endpoint: every event's message is still written, but
    /// nothing is delivered. Against a run with endpoints, it shows what delivery costs.
    #[arg(long)]
    pub(super) without_webhook_endpoints: bool,
    /// How long after the purchase the simulator sends the SMS.
    #[arg(long, default_value_t = 1_000)]
    pub(super) sms_delay_ms: u64,
    /// Share of orders whose SMS never comes (they time out and are refunded).
    #[arg(long, default_value_t = 0.1)]
    pub(super) no_sms_ratio: f64,
    /// Share of purchases the provider refuses for lack of numbers (failed and refunded).
    #[arg(long, default_value_t = 0.05)]
    pub(super) out_of_stock_ratio: f64,
    /// Share of provider requests answered with a server error (retried).
    #[arg(long, default_value_t = 0.02)]
    pub(super) provider_error_ratio: f64,
    /// Share of accepted verifications the customer cancels 300 ms later.
    #[arg(long, default_value_t = 0.05)]
    pub(super) cancel_ratio: f64,
    /// Share of orders sent with an `Idempotency-Key`, as careful integrators send them. Such
    /// an order claims its key first and then runs in a transaction of its own, beside the
    /// orders batched together; the claim's foreign key locks the account row it shares
    /// with them.
    #[arg(long, default_value_t = 0.0)]
    pub(super) idempotency_key_ratio: f64,
    /// Every service's SMS timeout during the run (10–1800 s), so the run ends soon.
    #[arg(long, default_value_t = 15)]
    pub(super) sms_timeout_secs: i32,
    /// After the last submission, how long to wait for the pipeline to settle.
    #[arg(long, default_value_t = 120)]
    pub(super) drain_secs: u64,
    /// First measure the machine's limit for this many seconds — pgbench's single-row INSERT +
    /// COMMIT rate — and put the run's verifications/s against it (0: not measured).
    #[arg(long, default_value_t = 0)]
    pub(super) pgbench_seconds: u64,
    /// pgbench's connections for `--pgbench-seconds`.
    #[arg(long, default_value_t = 8)]
    pub(super) pgbench_clients: u32,
    /// Where to write the JSON report.
    #[arg(long, default_value = "load-report.json")]
    pub(super) report: PathBuf,
    /// Also write every submission as a CSV line (when, latency, outcome), to see when the
    /// slow ones happened: a tail that comes in bursts is a stall, not the code path.
    #[arg(long)]
    pub(super) samples: Option<PathBuf>,
    /// Every role in its own process (to see each one's memory), undisturbed.
    #[arg(long)]
    pub(super) processes: bool,
    /// A second simulated provider (`5sim`, after the first in the failover order) selling
    /// the same catalogue; implied by `--hang-first-provider` and `--chaos`.
    #[arg(long)]
    pub(super) second_provider: bool,
    /// The first provider hangs (answers nothing within any timeout) from FROM until UNTIL
    /// seconds after the first submission (`FROM:` for the rest of the run), beside a second
    /// provider. Chaos runs hang it from a tenth to a third of the submissions.
    #[arg(long, value_name = "FROM:UNTIL")]
    pub(super) hang_first_provider: Option<provider_fault::Hang>,
    /// Only the API and its outbox relay, no workers or scheduler: the API's latency without
    /// the rest of the pipeline on the same cores. Verifications stay open, so finality and
    /// webhooks are not checked; money and counters are.
    #[arg(long, conflicts_with_all = ["processes", "chaos"])]
    pub(super) api_only: bool,
    /// Every role in its own process; workers SIGKILLed and restarted, RabbitMQ and
    /// PostgreSQL taken away once each while submitting.
    #[arg(long)]
    pub(super) chaos: bool,
    /// Chaos: real outages (every client of the services notices), proxy outages (only this
    /// run's processes notice) or none (kills only).
    #[arg(long, value_enum, default_value = "real", requires = "chaos")]
    pub(super) outages: chaos::Outages,
    /// Chaos: seconds between two kills.
    #[arg(long, default_value_t = 3.0, requires = "chaos")]
    pub(super) kill_every_secs: f64,
    /// Failover drill (what `scripts/drill` runs): every role in its own process,
    /// `--replicas` of each, PostgreSQL behind a stable address this run repoints, and the
    /// engines' faults done by calling `HOOK kill-rabbitmq-leader`, `HOOK restart-rabbitmq`,
    /// `HOOK fail-over-postgres` (whose last line of output is the promoted primary's
    /// host:port) and `HOOK rebuild-old-primary`. The report gains `drill`: what was lost
    /// and each fault's recovery time.
    #[arg(long, value_name = "HOOK", conflicts_with_all = ["chaos", "api_only"])]
    pub(super) drill: Option<String>,
    /// Processes of each role in runs with a process per role (`--processes`, `--chaos`,
    /// `--drill`); the API's replicas share the submissions.
    #[arg(long, default_value_t = 1)]
    pub(super) replicas: usize,
    #[arg(long, default_value = "rabbitmqctl stop_app", requires = "chaos")]
    pub(super) rabbitmq_stop: String,
    #[arg(long, default_value = "rabbitmqctl start_app", requires = "chaos")]
    pub(super) rabbitmq_start: String,
    #[arg(
        long,
        default_value = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -1) main restart",
        requires = "chaos"
    )]
    pub(super) postgres_restart: String,
}

impl RunArgs {
    pub(super) fn validate(&self) -> Result<(), String> {
        for (name, ratio) in [
            ("--no-sms-ratio", self.no_sms_ratio),
            ("--out-of-stock-ratio", self.out_of_stock_ratio),
            ("--provider-error-ratio", self.provider_error_ratio),
            ("--cancel-ratio", self.cancel_ratio),
            ("--idempotency-key-ratio", self.idempotency_key_ratio),
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
        if !(1..=4).contains(&self.replicas) {
            return Err("--replicas must be from 1 to 4".to_owned());
        }
        if let Some(hook) = &self.drill {
            if hook.trim().is_empty() {
                return Err("--drill needs the command that does the engines' faults".to_owned());
            }
            if let Some(short) = super::failover::window_too_short(self.window()) {
                return Err(short);
            }
        }
        if !(self.kill_every_secs >= 0.1 && self.kill_every_secs <= 3600.0) {
            return Err("--kill-every-secs must be from 0.1 to 3600".to_owned());
        }
        Ok(())
    }

    pub(super) fn pace(&self) -> Pace {
        self.concurrency
            .map_or(Pace::Rate(self.rate), Pace::Concurrency)
    }

    pub(super) fn until(&self) -> Until {
        match (self.duration, self.count) {
            (Some(seconds), _) => Until::Elapsed(Duration::from_secs(seconds)),
            (None, count) => Until::Count(count.unwrap_or(500)),
        }
    }

    /// About how long the submissions last, where the plan says.
    pub(super) fn window(&self) -> Duration {
        match (self.until(), self.pace()) {
            (Until::Elapsed(duration), _) => duration,
            (Until::Count(count), Pace::Rate(rate)) => {
                Duration::from_secs_f64(count as f64 / f64::from(rate))
            }
            (Until::Count(_), Pace::Concurrency(_)) => Duration::from_secs(10),
        }
    }

    pub(super) fn chaos_plan(&self) -> chaos::Plan {
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
    pub(super) fn hang(&self) -> Option<provider_fault::Hang> {
        self.hang_first_provider.or_else(|| {
            self.chaos.then(|| provider_fault::Hang {
                from: self.window() / 10,
                until: Some(self.window() / 3),
            })
        })
    }

    pub(super) fn wants_second_provider(&self) -> bool {
        self.second_provider || self.hang().is_some()
    }

    pub(super) fn behaviour(&self) -> Behaviour {
        Behaviour {
            latency_ms: 0,
            sms_delay_ms: self.sms_delay_ms,
            no_sms_ratio: self.no_sms_ratio,
            out_of_stock_ratio: self.out_of_stock_ratio,
            error_ratio: self.provider_error_ratio,
            throttle_ratio: 0.0,
        }
    }

    pub(super) fn describe(&self) -> String {
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
        let roles = if self.without_webhook_endpoints {
            format!("{roles}; no webhook endpoints")
        } else {
            roles.to_owned()
        };
        let chaos = if self.chaos {
            format!(
                "; chaos: a kill every {} s, {:?} outages",
                self.kill_every_secs, self.outages
            )
        } else {
            String::new()
        };
        let chaos = match &self.drill {
            Some(_) => format!(
                "{chaos}; failover drill, {} replicas of each role",
                self.replicas
            ),
            None => chaos,
        };
        let roles = if self.idempotency_key_ratio > 0.0 {
            format!("{roles}; idempotency keys {}", self.idempotency_key_ratio)
        } else {
            roles
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
