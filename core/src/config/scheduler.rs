//! The scheduler's periodic jobs: when each runs, and their limits.

use std::{path::PathBuf, str::FromStr, time::Duration};

use super::{ConfigError, env::Env};

/// The CRM endpoint (`CRM_URL`) and the secret its requests are signed with (`CRM_SECRET`).
#[derive(Clone, Debug)]
pub struct CrmSettings {
    pub url: String,
    pub secret: crate::webhooks::WebhookSecret,
}

/// The periodic jobs: when each runs, and their limits.
#[derive(Clone, Debug)]
pub struct SchedulerSettings {
    /// Each job's cron schedule (with seconds); `None` when switched off.
    pub schedules: Vec<(&'static str, Option<cron::Schedule>)>,
    /// SMS texts, codes and phone numbers older than this are erased.
    pub personal_data_retention: Duration,
    /// Webhook attempts older than this are deleted.
    pub history_retention: Duration,
    /// Where the `crm` job sends new accounts and usage, signed like our webhooks.
    pub crm: Option<CrmSettings>,
    pub backup_dir: PathBuf,
    /// Backups kept; older ones are deleted.
    pub backup_keep: usize,
    /// A verification pending or ordering for longer than this is re-sent to ordering.
    pub ordering_stuck_after: Duration,
    /// A settled verification not refunded after this long gets its refund re-sent.
    pub refund_stuck_after: Duration,
    /// Outbox rows unsent for this long are published by the sweeper itself.
    pub outbox_stuck_after: Duration,
    /// The sweeper nudges one verification at most this often.
    pub nudge_interval: Duration,
    /// How often a follower tries to become leader.
    pub leader_poll: Duration,
}

/// The jobs and their default schedules (cron with seconds: sec min hour day month weekday).
pub const DEFAULT_SCHEDULES: [(&str, &str, &str); 11] = [
    ("sweeper", "SCHEDULE_SWEEPER", "*/10 * * * * *"),
    (
        "idempotency_expiry",
        "SCHEDULE_IDEMPOTENCY_EXPIRY",
        "0 */15 * * * *",
    ),
    ("retention", "SCHEDULE_RETENTION", "0 30 3 * * *"),
    ("backup", "SCHEDULE_BACKUP", "0 0 2 * * *"),
    ("sampling", "SCHEDULE_SAMPLING", "*/15 * * * * *"),
    ("low_balance", "SCHEDULE_LOW_BALANCE", "30 * * * * *"),
    ("renewals", "SCHEDULE_RENEWALS", "0 */10 * * * *"),
    ("crm", "SCHEDULE_CRM", "0 */5 * * * *"),
    ("invariants", "SCHEDULE_INVARIANTS", "0 */5 * * * *"),
    ("usage_rollup", "SCHEDULE_USAGE_ROLLUP", "0 15 * * * *"),
    ("audit_anchor", "SCHEDULE_AUDIT_ANCHOR", "0 */10 * * * *"),
];

impl SchedulerSettings {
    pub(super) fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            schedules: DEFAULT_SCHEDULES
                .iter()
                .map(|(job, variable, default)| Ok((*job, env.schedule(variable, default)?)))
                .collect::<Result<_, ConfigError>>()?,
            personal_data_retention: env.duration("RETENTION_PERSONAL_DATA", "30days")?,
            history_retention: env.duration("RETENTION_HISTORY", "7days")?,
            crm: CrmSettings::read(env)?,
            backup_dir: PathBuf::from(
                env.raw("BACKUP_DIR")
                    .unwrap_or_else(|| "backups".to_owned()),
            ),
            backup_keep: env.number("BACKUP_KEEP", 7, 1..=1000)?,
            ordering_stuck_after: env.duration("SWEEP_ORDERING_AFTER", "2m")?,
            refund_stuck_after: env.duration("SWEEP_REFUND_AFTER", "1m")?,
            outbox_stuck_after: env.duration("SWEEP_OUTBOX_AFTER", "10s")?,
            nudge_interval: env.duration("SWEEP_NUDGE_INTERVAL", "1m")?,
            leader_poll: env.duration("SCHEDULER_LEADER_POLL", "1s")?,
        })
    }
}

impl CrmSettings {
    /// `None` unless `CRM_URL` is set; then `CRM_SECRET` is required.
    fn read(env: &Env) -> Result<Option<Self>, ConfigError> {
        if env.raw("CRM_URL").is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            url: env.url("CRM_URL", "", &["http", "https"])?,
            secret: env
                .raw("CRM_SECRET")
                .as_deref()
                .and_then(crate::webhooks::WebhookSecret::parse)
                .ok_or_else(|| {
                    env.error(
                        "CRM_SECRET",
                        "a whsec_… secret (base64 after whsec_), required with CRM_URL",
                    )
                })?,
        }))
    }
}

impl Env<'_> {
    /// A cron expression with seconds, or `off`.
    fn schedule(
        &self,
        name: &'static str,
        default: &str,
    ) -> Result<Option<cron::Schedule>, ConfigError> {
        let value = self.raw(name).unwrap_or_else(|| default.to_owned());
        if value.trim().eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        cron::Schedule::from_str(value.trim()).map(Some).map_err(|_| {
            self.error(
                name,
                format!("a cron expression with seconds like \"*/10 * * * * *\", or off; got {value:?}"),
            )
        })
    }
}
