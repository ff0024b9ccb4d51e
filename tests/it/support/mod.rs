//! Shared test helpers: a fresh environment per test, HTTP and broker shortcuts.

mod env;
mod mailbox;
mod plans;
mod sink;
mod up;

pub use env::{
    Account, PAYSTACK_SECRET, STRIPE_WEBHOOK_SECRET, TestEnv, TestEnvBuilder, amqp_url, server_url,
};
pub use mailbox::Mailbox;
pub use namaskah_load_tests::proxy::TcpProxy;
pub use plans::generic_plan;
pub use sink::{Answer, Received, Sink};
pub use up::{Lines, Up, free_address};

use std::{future::Future, time::Duration};

use namaskah_load_tests::simulator::Behaviour;

/// A provider that never sends an SMS on its own: tests deliver it, or wait for the deadline.
pub fn never_sms() -> Behaviour {
    Behaviour {
        no_sms_ratio: 1.0,
        ..Behaviour::default()
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
