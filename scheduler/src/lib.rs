//! The scheduler: periodic jobs on cron schedules, run by exactly one leader.
//!
//! Any number of `namaskah scheduler` processes may run. Each tries to take a PostgreSQL
//! advisory lock on a connection of its own ([`leader`]); the one that holds it is the
//! leader and runs the jobs, the others wait and try again every `SCHEDULER_LEADER_POLL`.
//! When the leader dies its connection closes, the lock is released, and another instance
//! leads within about a second. A tick of a job runs at most once, whoever leads:
//! `scheduler_runs` has `UNIQUE (job, tick)`. A job still running at its next tick is not
//! started again (the tick is recorded as skipped).
//!
//! The jobs are in [`jobs`]: the sweeper, idempotency-key expiry, retention, backups,
//! sampling for metrics, low-balance notices and the invariant check.

pub mod backup;
pub mod crm;
pub mod jobs;
mod leader;
mod runner;

pub use jobs::{JobContext, JobName};
pub use runner::Scheduler;
