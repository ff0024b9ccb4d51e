//! `namaskah load`: measurements of the pipeline under load, each in a throw-away database
//! (`<DATABASE_URL>_load`) and queue prefix (`<QUEUE_PREFIX>load.`).
//!
//! - [`run`]: the whole pipeline driven through its API, with a mix of provider behaviours,
//!   a report and the invariant check (`namaskah load`).
//!   With `--chaos` ([`chaos`]) each role runs as its own process, workers are killed and
//!   restarted, and RabbitMQ and PostgreSQL go away once each, with the same checks.
//!   With `--hang-first-provider` ([`provider_fault`]) a second provider sells the same
//!   catalogue while the first hangs (chaos runs always have this fault).
//!   With `--drill` ([`failover`]) two processes of each role run against a RabbitMQ
//!   cluster and a PostgreSQL primary with a standby, and the engines fail under load
//!   (`scripts/drill` starts them and does the faults).
//!   With `--pgbench-seconds` ([`limit`]) the machine's commit rate is measured first and the
//!   run's throughput put against it.
//! - [`webhooks`]: webhook delivery alone (`namaskah load webhooks`).

mod args;
mod chaos;
mod cpu;
mod drain;
mod drive;
mod failover;
mod failover_report;
mod judge;
mod limit;
mod provider_fault;
mod report;
pub mod run;
mod setup;
mod throwaway;
pub mod webhooks;
