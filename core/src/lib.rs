//! Everything the Namaskah roles share.
//!
//! The binaries (API, workers, simulator) are thin: they read [`config::Config`], open a
//! [`store::Db`] and a broker connection from [`queue`], and wire the pieces below together.
//!
//! - [`config`]: every environment variable, its default, one clear error per bad value.
//! - [`domain`]: values that can only be built valid (`Cents`, `ServiceCode`, `Status`, …).
//! - [`store`]: the SQL, grouped by table; [`batch`]: statements shared by the requests that
//!   arrive together.
//! - [`queue`]: RabbitMQ topology, the outbox relay, and the consumer plumbing every worker
//!   shares (ack, retry through delay tiers, parking).
//! - [`providers`]: the `Provider` trait and the clients for real SMS providers.
//! - [`webhooks`]: Standard Webhooks signing, endpoint secrets, the SSRF guard.
//! - [`views`]: the JSON shapes customers see.

pub mod batch;
pub mod config;
pub mod domain;
pub mod errors;
pub mod metrics_exporter;
pub mod payments;
pub mod pricing;
pub mod providers;
pub mod queue;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod views;
pub mod webhooks;

pub use config::Config;
pub use shutdown::Shutdown;
