//! Logging setup shared by every role.

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Installs the global subscriber: human-readable text or one JSON object per line.
///
/// `RUST_LOG` filters as usual; without it, Namaskah's own crates log at `info` and the
/// libraries only at `warn`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("warn,namaskah=info,namaskah_core=info,namaskah_api=info,namaskah_workers=info,namaskah_load_tests=info")
    });
    let builder = fmt().with_env_filter(filter).with_target(true);
    // A second init (tests start many pipelines in one process) is harmless.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Installs the process-wide TLS crypto provider (ring) used by the HTTP clients.
///
/// reqwest is built without a bundled provider to keep the build lean, so this must run
/// once before the first HTTPS request. Calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Starts reporting to Sentry (errors and panics), tagged with the role and release. Keep the
/// returned guard alive for the life of the process: dropping it flushes pending events.
pub fn init_sentry(dsn: &str, role: &'static str) -> sentry::ClientInitGuard {
    let mut options = sentry::ClientOptions::default();
    options.release = sentry::release_name!();
    let guard = sentry::init((dsn, options));
    sentry::configure_scope(|scope| scope.set_tag("role", role));
    guard
}
