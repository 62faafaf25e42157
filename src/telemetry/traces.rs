//! Trace export over OTLP/gRPC (the `otlp` feature, on by default): a span per
//! call, with its request id. Without the feature the same calls compile to
//! nothing, and a configured endpoint is reported as unused.

use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::TelemetrySpec;

/// A running trace exporter.
#[cfg(feature = "otlp")]
pub struct Traces(opentelemetry_sdk::trace::SdkTracerProvider);

/// A running trace exporter (none: built without the `otlp` feature).
#[cfg(not(feature = "otlp"))]
pub struct Traces;

/// Starts export when the configuration names a collector.
#[cfg(feature = "otlp")]
pub fn start(spec: &TelemetrySpec) -> Option<Traces> {
    use opentelemetry_otlp::WithExportConfig;
    let endpoint = spec.otlp_endpoint.as_ref()?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .with_timeout(std::time::Duration::from_secs(3))
        .build();
    let exporter = match exporter {
        Ok(e) => e,
        Err(e) => {
            eprintln!("OTLP exporter for {endpoint} could not be built: {e}; traces are off");
            return None;
        }
    };
    let sampler = opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
        opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(spec.sample_ratio.clamp(0.0, 1.0)),
    ));
    Some(Traces(
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(sampler)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(spec.service_name.clone())
                    .build(),
            )
            .build(),
    ))
}

#[cfg(not(feature = "otlp"))]
pub fn start(spec: &TelemetrySpec) -> Option<Traces> {
    if let Some(endpoint) = &spec.otlp_endpoint {
        eprintln!(
            "telemetry.otlp_endpoint {endpoint} is set, but this build has no `otlp` feature; traces are off"
        );
    }
    None
}

/// The tracing layer that hands spans to the exporter.
#[cfg(feature = "otlp")]
pub fn layer<S>(traces: Option<&Traces>) -> Option<impl Layer<S>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    use opentelemetry::trace::TracerProvider as _;
    traces.map(|t| tracing_opentelemetry::layer().with_tracer(t.0.tracer("reseal")))
}

#[cfg(not(feature = "otlp"))]
pub fn layer<S>(_traces: Option<&Traces>) -> Option<impl Layer<S>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    None::<tracing_subscriber::layer::Identity>
}

impl Traces {
    /// Exports what is still buffered. Blocking.
    pub fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Err(e) = self.0.shutdown() {
            eprintln!("trace export shutdown: {e}");
        }
    }
}
