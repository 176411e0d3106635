//! Logging and trace export: the tracing subscriber of the `lrs` binary.
//!
//! - Logs go to stderr, filtered by `LRS_LOG` (default `info`), as text or,
//!   with `LRS_LOG_FORMAT=json`, one JSON object per line. Each request has
//!   a span (`http_request`, with its request id) and ends with one event
//!   of target `lrs_server::access` (method, route, status, latency_ms,
//!   request_id); silence those with `LRS_LOG=info,lrs_server::access=warn`.
//! - With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//!   set, spans are also exported over OTLP, HTTP/protobuf, to
//!   `<endpoint>/v1/traces` (the per-signal variable is used as is), in
//!   batches from a background thread. `OTEL_SERVICE_NAME` defaults to
//!   `lrs`; `OTEL_EXPORTER_OTLP_HEADERS` and `..._TIMEOUT` are honoured by
//!   the exporter. The export has its own filter, `LRS_OTEL_FILTER`
//!   (default `info`), so quieter logs do not silence traces. Plain `http://`
//!   only (no TLS client is built in): point it at a local OpenTelemetry
//!   Collector, which forwards with TLS. Needs the `otel` cargo feature (on
//!   by default); without it the variables are ignored with a warning.
//!
//! [`init_tracing`] returns a guard: keep it alive for the life of the
//! process; dropping it flushes the spans not yet exported.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Flushes and stops the trace export when dropped.
#[must_use = "dropping the guard stops the trace export"]
pub struct TelemetryGuard {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl TelemetryGuard {
    fn none() -> Self {
        Self {
            #[cfg(feature = "otel")]
            provider: None,
        }
    }

    /// Exports every span ended so far, now.
    pub fn flush(&self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = &self.provider {
            if let Err(error) = provider.force_flush() {
                eprintln!("OpenTelemetry: flushing spans failed: {error}");
            }
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("OpenTelemetry: exporting the last spans failed: {error}");
            }
        }
    }
}

/// Installs the global subscriber: stderr logs as `LRS_LOG` and
/// `LRS_LOG_FORMAT` say, plus the OTLP export when configured.
pub fn init_tracing() -> TelemetryGuard {
    let filter = EnvFilter::try_from_env("LRS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LRS_LOG_FORMAT").as_deref() == Ok("json");
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    } else {
        // Colours only on a terminal: a log file or journal gets plain
        // `field="value"` text that grep finds (e.g. `alert="auth.lockout"`).
        let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        tracing_subscriber::fmt::layer()
            .with_ansi(colour)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    };
    let (export, guard, problem) = match layer_from_env() {
        Ok(Some((layer, guard))) => (Some(layer), guard, None),
        Ok(None) => (None, TelemetryGuard::none(), None),
        Err(error) => (None, TelemetryGuard::none(), Some(error)),
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(export)
        .init();
    if let Some(error) = problem {
        tracing::warn!(%error, "OpenTelemetry export not started");
    }
    guard
}

/// A boxed layer for any registry-like subscriber.
pub type BoxedLayer<S> = Box<dyn Layer<S> + Send + Sync + 'static>;

/// The OTLP export layer if `OTEL_EXPORTER_OTLP_ENDPOINT` or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, `Ok(None)` if neither is,
/// an error if the configuration cannot work (https, grpc, a bad URL, or a
/// build without the `otel` feature).
pub fn layer_from_env<S>() -> anyhow::Result<Option<(BoxedLayer<S>, TelemetryGuard)>>
where
    S: tracing::Subscriber
        + for<'a> tracing_subscriber::registry::LookupSpan<'a>
        + Send
        + Sync
        + 'static,
{
    let configured = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .find_map(|name| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (*name, v))
    });
    let Some((name, endpoint)) = configured else {
        return Ok(None);
    };
    if endpoint.trim_start().starts_with("https:") {
        anyhow::bail!(
            "{name}={endpoint}: this build exports over plain http only; \
             send to a local OpenTelemetry Collector and let it forward with TLS"
        );
    }
    match std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
        Ok("http/protobuf") | Err(_) => {}
        Ok(other) => {
            anyhow::bail!("OTEL_EXPORTER_OTLP_PROTOCOL={other}: only http/protobuf is supported")
        }
    }
    otlp::layer().map(Some)
}

#[cfg(feature = "otel")]
mod otlp {
    use super::{BoxedLayer, TelemetryGuard};
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use tracing_subscriber::{EnvFilter, Layer};

    /// The export layer; the exporter reads the endpoint, headers and
    /// timeout from the `OTEL_EXPORTER_OTLP_*` variables itself.
    pub fn layer<S>() -> anyhow::Result<(BoxedLayer<S>, TelemetryGuard)>
    where
        S: tracing::Subscriber
            + for<'a> tracing_subscriber::registry::LookupSpan<'a>
            + Send
            + Sync
            + 'static,
    {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()?;
        let mut resource = opentelemetry_sdk::Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("lrs");
        }
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer("lrs");
        // The exporter's own HTTP client must never feed spans back into it.
        let filter = EnvFilter::try_from_env("LRS_OTEL_FILTER")
            .unwrap_or_else(|_| EnvFilter::new("info"))
            .add_directive("hyper=off".parse()?)
            .add_directive("hyper_util=off".parse()?)
            .add_directive("reqwest=off".parse()?)
            .add_directive("opentelemetry=off".parse()?)
            .add_directive("opentelemetry_sdk=off".parse()?)
            .add_directive("opentelemetry_otlp=off".parse()?);
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(filter)
            .boxed();
        Ok((
            layer,
            TelemetryGuard {
                provider: Some(provider),
            },
        ))
    }
}

#[cfg(not(feature = "otel"))]
mod otlp {
    use super::{BoxedLayer, TelemetryGuard};

    pub fn layer<S>() -> anyhow::Result<(BoxedLayer<S>, TelemetryGuard)> {
        anyhow::bail!("this lrs was built without the `otel` feature: OTEL_* variables are ignored")
    }
}

#[cfg(all(test, feature = "otel"))]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::mpsc;
    use std::time::Duration;

    /// One HTTP request as a collector received it.
    struct Received {
        request_line: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    /// A tiny OTLP/HTTP collector: answers every POST with an empty
    /// protobuf 200 and hands the requests to the test.
    fn collector() -> (std::net::SocketAddr, mpsc::Receiver<Received>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut headers = Vec::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap();
                    headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
                }
                let length = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .map_or(0, |(_, v)| v.parse().unwrap());
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let mut stream = stream;
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .unwrap();
                let _ = sender.send(Received {
                    request_line: request_line.trim_end().to_owned(),
                    headers,
                    body,
                });
            }
        });
        (address, receiver)
    }

    /// Through the environment, as an operator configures it: the generic
    /// endpoint gets `/v1/traces` appended, the body is protobuf, and it
    /// carries the span's name and the service name.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spans_are_posted_to_the_collector_named_by_the_environment() {
        let (address, received) = collector();
        // The only test that touches OTEL_* variables.
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{address}"));
        let (layer, guard) = layer_from_env::<tracing_subscriber::Registry>()
            .unwrap()
            .expect("the endpoint is set");
        std::env::remove_var("OTEL_EXPORTER_OTLP_ENDPOINT");
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("monitoring_test_span", request_id = "rid-42");
            let _entered = span.enter();
            tracing::info!("inside the span");
        });
        guard.flush();
        let request = received
            .recv_timeout(Duration::from_secs(20))
            .expect("the collector got a request");
        assert!(
            request.request_line.starts_with("POST /v1/traces "),
            "{}",
            request.request_line
        );
        let content_type = request
            .headers
            .iter()
            .find(|(n, _)| n == "content-type")
            .map(|(_, v)| v.as_str());
        assert_eq!(content_type, Some("application/x-protobuf"));
        let contains = |needle: &[u8]| request.body.windows(needle.len()).any(|w| w == needle);
        assert!(contains(b"monitoring_test_span"), "span name in the body");
        assert!(contains(b"rid-42"), "span attribute in the body");
        assert!(
            contains(b"service.name") && contains(b"lrs"),
            "service name"
        );
        drop(guard);
    }
}
