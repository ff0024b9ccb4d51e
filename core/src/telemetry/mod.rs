//! Logging setup shared by every role, and (with the `otlp` feature) span export.

mod connection_noise;
mod log_limit;

use tracing_subscriber::{
    EnvFilter, Layer, fmt, fmt::writer::BoxMakeWriter, layer::SubscriberExt,
    util::SubscriberInitExt,
};

use crate::config::LogFormat;
use connection_noise::ConnectionNoise;
pub use log_limit::LogLimit;

/// Keeps span export running; dropping it flushes the spans still waiting to be sent.
#[must_use = "dropping it stops span export"]
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    tracer_provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.tracer_provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber: human-readable text or one JSON object per line, and
/// OTLP span export when the build has the `otlp` feature and `otlp_endpoint` is set.
///
/// `RUST_LOG` filters as usual; without it, Namaskah's own crates log at `info` and the
/// libraries only at `warn` — except in load runs (role `load`), whose report is the output
/// and which would otherwise print a line per verification.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>, role: &'static str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(if role == "load" {
            // The simulators' servers report every caller that hangs up on a hung provider.
            "warn,warp::server=off"
        } else {
            "warn,namaskah=info,namaskah_core=info,namaskah_api=info,namaskah_workers=info,namaskah_load_tests=info"
        })
    });
    // A service logs to stdout; a command whose stdout is its output (a load run's report,
    // an admin command's JSON) logs to stderr, so a warning while it shuts down cannot land
    // after the report a script is parsing.
    let writer = if matches!(role, "load" | "cli") {
        BoxMakeWriter::new(std::io::stderr)
    } else {
        BoxMakeWriter::new(std::io::stdout)
    };
    let logs = match format {
        LogFormat::Text => fmt::layer().with_target(true).with_writer(writer).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_target(true)
            .with_writer(writer)
            .boxed(),
    };
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(ConnectionNoise)
        .with(logs);

    #[cfg(feature = "otlp")]
    {
        let export = otlp_endpoint.map(|endpoint| otlp::start(endpoint, role));
        let (layer, tracer_provider) = match export {
            Some(Ok((layer, provider))) => (Some(layer), Some(provider)),
            Some(Err(error)) => {
                eprintln!("OTLP span export is off: {error}");
                (None, None)
            }
            None => (None, None),
        };
        // A second init (tests start many pipelines in one process) is harmless.
        let _ = registry.with(layer).try_init();
        Telemetry { tracer_provider }
    }
    #[cfg(not(feature = "otlp"))]
    {
        let _ = registry.try_init();
        if otlp_endpoint.is_some() {
            tracing::warn!(
                role,
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but this build has no OTLP support; rebuild with `--features otlp`"
            );
        }
        Telemetry {}
    }
}

/// Makes `span` part of the OpenTelemetry trace named by our own trace id, so the spans of
/// one verification, from the API through every worker, form one trace in the tracing
/// backend. Without the `otlp` feature, or for an id that is not 32 hex digits, it does
/// nothing; the id is in the logs either way.
pub fn adopt_trace_id(span: &tracing::Span, trace_id: &str) {
    #[cfg(feature = "otlp")]
    otlp::adopt_trace_id(span, trace_id);
    #[cfg(not(feature = "otlp"))]
    let _ = (span, trace_id);
}

#[cfg(feature = "otlp")]
mod otlp {
    use opentelemetry::{
        Context,
        trace::{
            SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
        },
    };
    use opentelemetry_otlp::{ExporterBuildError, SpanExporter, WithExportConfig};
    use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::{Layer, registry::LookupSpan};

    /// Exports spans in batches over OTLP/HTTP (protobuf) to `endpoint`'s `/v1/traces`.
    pub(super) fn start<S>(
        endpoint: &str,
        role: &'static str,
    ) -> Result<(impl Layer<S>, SdkTracerProvider), ExporterBuildError>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        // The exporter builds its HTTPS client now, which needs the TLS provider.
        super::install_crypto_provider();
        let exporter = SpanExporter::builder()
            .with_http()
            .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
            .build()?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(format!("namaskah-{role}"))
                    .build(),
            )
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("namaskah"));
        Ok((layer, provider))
    }

    pub(super) fn adopt_trace_id(span: &tracing::Span, trace_id: &str) {
        let Ok(trace) = TraceId::from_hex(trace_id) else {
            return;
        };
        // The API created the id, not an OpenTelemetry span, so there is no real parent;
        // a stable remote parent derived from the id ties every role's spans together.
        let bytes = trace.to_bytes();
        let mut parent = [0u8; 8];
        parent.copy_from_slice(&bytes[8..]);
        parent[7] |= 1; // never the invalid all-zero span id
        let context = SpanContext::new(
            trace,
            SpanId::from_bytes(parent),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let _ = span.set_parent(Context::new().with_remote_span_context(context));
    }
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
