//! PostgreSQL: where it is and how many connections each role may hold.

use super::{ConfigError, env::Env};

/// PostgreSQL connections per role. The roles of one process share one pool, sized as the
/// sum of their shares; the reasoning behind the defaults is in docs/deployment.md.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    /// The API: one short transaction per request, plus event-stream polls.
    pub api: u32,
    /// Each worker role (ordering, polling, refund, webhooks): connections are held only
    /// between provider calls, so far fewer than the prefetch.
    pub worker: u32,
    pub scheduler: u32,
    pub dashboard: u32,
    /// `DATABASE_MAX_CONNECTIONS`: when set, the whole process's pool, whatever it runs.
    pub process_cap: Option<u32>,
}

impl PoolSettings {
    /// The pool of a process running these roles. The outbox relay holds one connection
    /// while it awaits the broker's confirms, hence the extra one.
    pub fn process_pool(&self, roles: PoolRoles) -> u32 {
        if let Some(cap) = self.process_cap {
            return cap;
        }
        let shares = [
            (roles.api, self.api),
            (roles.scheduler, self.scheduler),
            (roles.dashboard, self.dashboard),
        ];
        let fixed: u32 = shares
            .iter()
            .filter(|(runs, _)| *runs)
            .map(|(_, share)| share)
            .sum();
        let workers = self.worker.saturating_mul(roles.workers);
        (fixed + workers + u32::from(roles.relay)).max(1)
    }
}

/// Which roles share a process's pool (see [`PoolSettings::process_pool`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolRoles {
    pub api: bool,
    /// How many worker roles run here.
    pub workers: u32,
    pub scheduler: bool,
    pub dashboard: bool,
    pub relay: bool,
}

impl PoolSettings {
    pub(super) fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            api: env.number("DATABASE_POOL_API", 8, 1..=1000)?,
            worker: env.number("DATABASE_POOL_WORKER", 6, 1..=1000)?,
            scheduler: env.number("DATABASE_POOL_SCHEDULER", 4, 1..=1000)?,
            dashboard: env.number("DATABASE_POOL_DASHBOARD", 4, 1..=1000)?,
            process_cap: match env.raw("DATABASE_MAX_CONNECTIONS") {
                Some(_) => Some(env.number("DATABASE_MAX_CONNECTIONS", 10, 1..=1000)?),
                None => None,
            },
        })
    }
}
