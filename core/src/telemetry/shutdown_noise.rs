//! One known-harmless error that warp logs at ERROR: a connection accepted just as the
//! graceful shutdown begins, before its client has sent a byte (an idle pooled connection
//! of a client, say), ends with hyper-util's `Interrupted: "Cancelled"`. No request was
//! cut short; at the end of every load run it printed one ERROR line per idle connection.

use std::fmt::Debug;
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{Layer, layer::Context};

/// Where warp logs the errors of its connections.
const WARP_CONNECTIONS: &str = "warp::server::run";

/// Drops that one event for every layer; anything else warp says goes through.
pub struct ShutdownNoise;

impl<S: Subscriber> Layer<S> for ShutdownNoise {
    fn event_enabled(&self, event: &Event<'_>, _context: Context<'_, S>) -> bool {
        if event.metadata().target() != WARP_CONNECTIONS {
            return true;
        }
        let mut message = Message::default();
        event.record(&mut message);
        !(message.0.contains("Interrupted") && message.0.contains("\"Cancelled\""))
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
    fn the_cancelled_connection_at_shutdown_is_dropped_and_other_errors_are_kept() {
        let seen = Count::default();
        let subscriber = tracing_subscriber::registry()
            .with(ShutdownNoise)
            .with(seen.clone());
        tracing::subscriber::with_default(subscriber, || {
            let cancelled = std::io::Error::new(std::io::ErrorKind::Interrupted, "Cancelled");
            tracing::error!(target: "warp::server::run", "server connection error: {:?}", cancelled);
            let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
            tracing::error!(target: "warp::server::run", "server connection error: {:?}", reset);
            tracing::error!(target: "namaskah_api", "Cancelled, Interrupted, but ours");
        });
        assert_eq!(seen.0.load(Ordering::SeqCst), 2);
    }
}
