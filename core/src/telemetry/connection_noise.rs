//! Connection errors that warp logs at ERROR although nothing is wrong with the server:
//! - a connection accepted just as the graceful shutdown begins, before its client has
//!   sent a byte (an idle pooled connection, say), ends with hyper-util's
//!   `Interrupted: "Cancelled"`; at the end of every load run that printed one ERROR line
//!   per idle connection;
//! - a client that sends a malformed request (`Parse(…)`: hyper has already answered it
//!   with 400) or hangs up mid-answer (`ConnectionReset`, `BrokenPipe`).
//!
//! They are the client's doing, and an operator can do nothing about them; anything else
//! warp reports still goes through.

use std::fmt::Debug;
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{Layer, layer::Context};

/// Where warp logs the errors of its connections.
const WARP_CONNECTIONS: &str = "warp::server::run";

/// What in warp's message marks a connection error as the client's.
const CLIENT_CAUSES: [&str; 4] = ["\"Cancelled\"", "Parse(", "ConnectionReset", "BrokenPipe"];

/// Drops those events for every layer.
pub struct ConnectionNoise;

impl<S: Subscriber> Layer<S> for ConnectionNoise {
    fn event_enabled(&self, event: &Event<'_>, _context: Context<'_, S>) -> bool {
        if event.metadata().target() != WARP_CONNECTIONS {
            return true;
        }
        let mut message = Message::default();
        event.record(&mut message);
        !CLIENT_CAUSES.iter().any(|cause| message.0.contains(cause))
    }
}

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Count(Arc<AtomicUsize>);

    impl<S: Subscriber> Layer<S> for Count {
        fn on_event(&self, _event: &Event<'_>, _context: Context<'_, S>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_clients_connection_errors_are_dropped_and_other_errors_are_kept() {
        let seen = Count::default();
        let subscriber = tracing_subscriber::registry()
            .with(ConnectionNoise)
            .with(seen.clone());
        tracing::subscriber::with_default(subscriber, || {
            let cancelled = std::io::Error::new(std::io::ErrorKind::Interrupted, "Cancelled");
            tracing::error!(target: "warp::server::run", "server connection error: {:?}", cancelled);
            let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
            tracing::error!(target: "warp::server::run", "server connection error: {:?}", reset);
            let files = std::io::Error::other("Too many open files");
            tracing::error!(target: "warp::server::run", "server connection error: {:?}", files);
            tracing::error!(target: "namaskah_api", "Cancelled, Interrupted, but ours");
        });
        assert_eq!(seen.0.load(Ordering::SeqCst), 2);
    }
}
