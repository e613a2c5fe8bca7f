//! OpenTelemetry trace export: every tracing span of the server (a gRPC call, the jobs
//! it starts, their stages) becomes an OTLP span, posted in batches to
//! `<otlp_endpoint>/v1/traces` as OTLP/HTTP with JSON bodies, which every OpenTelemetry
//! collector, Jaeger and Tempo accept.
//!
//! A call that carries a W3C `traceparent` header joins the client's trace: its span's
//! parent is the client's span. Spans inside a call (or a job it started) share its
//! trace. Warnings and errors logged inside a span become span events; an error marks
//! the span's status as an error.
//!
//! Invariants: recording never blocks a call (a bounded channel; when the exporter falls
//! behind, spans are dropped and counted); a collector that is down costs one warning a
//! minute, never an error to a client. Our own code rather than the opentelemetry crates:
//! their exporters of this period bring a second HTTP client stack into the build.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Spans waiting for the exporter; more are dropped.
const QUEUE: usize = 8192;
/// Spans per request.
const BATCH: usize = 512;
/// A batch goes out at least this often.
const INTERVAL: Duration = Duration::from_secs(2);
/// One export request's limit.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// The name of the span every gRPC call runs in (see `calls`).
pub(crate) const CALL_SPAN: &str = "call";

/// OTLP span kinds.
const KIND_INTERNAL: u8 = 1;
const KIND_SERVER: u8 = 2;

static PENDING: OnceLock<Mutex<Option<Pending>>> = OnceLock::new();
/// Spans dropped because the exporter fell behind.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// What `install` leaves for `start`: the queue's far end and where to send.
struct Pending {
    spans: mpsc::Receiver<SpanData>,
    endpoint: url::Url,
    service: String,
}

/// The tracing layer that records spans for export; `None` without an endpoint. The
/// exporter itself starts inside the runtime, with [`start`].
pub fn install(endpoint: Option<url::Url>, service: &str) -> Option<OtlpLayer> {
    let endpoint = endpoint?;
    let (sender, spans) = mpsc::channel(QUEUE);
    let pending = Pending {
        spans,
        endpoint,
        service: service.to_string(),
    };
    *PENDING
        .get_or_init(|| Mutex::new(None))
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some(pending);
    Some(OtlpLayer { sender })
}

/// Starts the exporter installed by [`install`] (none: `None`).
pub(crate) fn start() -> Option<Exporter> {
    let pending = PENDING
        .get()?
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()?;
    let url = traces_url(&pending.endpoint);
    tracing::info!(endpoint = %url, "exporting traces (OTLP/HTTP JSON)");
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(export(pending, url, stopped));
    Some(Exporter { stop, task })
}

/// `<endpoint>/v1/traces`, unless the endpoint already names that path.
fn traces_url(endpoint: &url::Url) -> url::Url {
    if endpoint.path().ends_with("/v1/traces") {
        return endpoint.clone();
    }
    let mut url = endpoint.clone();
    let path = format!("{}/v1/traces", endpoint.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

/// The running exporter.
#[derive(Debug)]
pub(crate) struct Exporter {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Exporter {
    /// Sends what is queued and stops, waiting at most `wait`.
    pub(crate) async fn finish(self, wait: Duration) {
        let _ = self.stop.send(());
        if tokio::time::timeout(wait, self.task).await.is_err() {
            tracing::warn!("the trace exporter did not finish in {wait:?}; spans were lost");
        }
    }
}

async fn export(mut pending: Pending, url: url::Url, mut stopped: oneshot::Receiver<()>) {
    let http = reqwest::Client::builder()
        .timeout(POST_TIMEOUT)
        .build()
        .unwrap_or_default();
    let resource = json!({"attributes": [
        attribute("service.name", &AttributeValue::Text(pending.service.clone())),
        attribute("service.version", &AttributeValue::Text(env!("CARGO_PKG_VERSION").into())),
    ]});
    let mut batch: Vec<SpanData> = Vec::with_capacity(BATCH);
    let mut ticker = tokio::time::interval(INTERVAL);
    let mut last_warning: Option<std::time::Instant> = None;
    let mut reported_drops = 0;
    loop {
        let stopping = tokio::select! {
            received = pending.spans.recv() => match received {
                Some(span) => {
                    batch.push(span);
                    if batch.len() < BATCH {
                        continue;
                    }
                    false
                }
                None => true,
            },
            _ = ticker.tick() => false,
            _ = &mut stopped => true,
        };
        if stopping {
            while let Ok(span) = pending.spans.try_recv() {
                batch.push(span);
            }
        }
        for chunk in batch.chunks(BATCH) {
            let body = json!({"resourceSpans": [{
                "resource": resource,
                "scopeSpans": [{
                    "scope": {"name": "lakehouse", "version": env!("CARGO_PKG_VERSION")},
                    "spans": chunk.iter().map(SpanData::to_json).collect::<Vec<_>>(),
                }],
            }]});
            let sent = http
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
                .await;
            let failure = match sent {
                Ok(response) if response.status().is_success() => None,
                Ok(response) => Some(format!("HTTP {}", response.status())),
                Err(error) => Some(error.to_string()),
            };
            if let Some(failure) = failure
                && last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60))
            {
                last_warning = Some(std::time::Instant::now());
                tracing::warn!(endpoint = %url, error = %failure, spans = chunk.len(),
                    "cannot export traces; dropping them (next warning in a minute at the earliest)");
            }
        }
        batch.clear();
        let dropped = DROPPED.load(Ordering::Relaxed);
        if dropped > reported_drops {
            tracing::warn!(
                spans = dropped - reported_drops,
                "trace export fell behind; spans were dropped"
            );
            reported_drops = dropped;
        }
        if stopping {
            break;
        }
    }
}

/// Records spans for [`Exporter`]; see the module docs.
#[derive(Debug)]
pub struct OtlpLayer {
    sender: mpsc::Sender<SpanData>,
}

/// An attribute value as OTLP types it.
#[derive(Debug, Clone, PartialEq)]
enum AttributeValue {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

fn attribute(key: &str, value: &AttributeValue) -> Value {
    let value = match value {
        AttributeValue::Text(text) => json!({"stringValue": text}),
        // 64-bit integers are strings in OTLP JSON, as in proto3 JSON.
        AttributeValue::Int(n) => json!({"intValue": n.to_string()}),
        AttributeValue::Float(x) if x.is_finite() => json!({"doubleValue": x}),
        AttributeValue::Float(x) => json!({"stringValue": x.to_string()}),
        AttributeValue::Bool(b) => json!({"boolValue": b}),
    };
    json!({"key": key, "value": value})
}

/// Named, typed values of a span or event.
type NamedValues = Vec<(String, AttributeValue)>;

/// A warning or error logged inside a span: time, message, its other fields.
type SpanEvent = (SystemTime, String, NamedValues);

/// A span being recorded, kept in the span's extensions until it closes.
#[derive(Debug)]
struct SpanData {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: String,
    kind: u8,
    start: SystemTime,
    end: SystemTime,
    attributes: NamedValues,
    events: Vec<SpanEvent>,
    error: Option<String>,
}

impl SpanData {
    fn to_json(&self) -> Value {
        let mut span = json!({
            "traceId": hex(&self.trace_id),
            "spanId": hex(&self.span_id),
            "name": self.name,
            "kind": self.kind,
            "startTimeUnixNano": nanos(self.start).to_string(),
            "endTimeUnixNano": nanos(self.end).to_string(),
            "attributes": self.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
            "events": self.events.iter().map(|(time, name, attributes)| json!({
                "timeUnixNano": nanos(*time).to_string(),
                "name": name,
                "attributes": attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        if let Some(parent) = &self.parent {
            span["parentSpanId"] = json!(hex(parent));
        }
        if let Some(message) = &self.error {
            span["status"] = json!({"code": 2, "message": message});
        }
        span
    }
}

fn nanos(time: SystemTime) -> u128 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut text, b| {
        let _ = write!(text, "{b:02x}");
        text
    })
}

fn random_id<const N: usize>() -> [u8; N] {
    let mut id = [0u8; N];
    let random = uuid::Uuid::new_v4().into_bytes();
    id.copy_from_slice(&random[..N]);
    if id.iter().all(|b| *b == 0) {
        id[N - 1] = 1; // all-zero ids are invalid
    }
    id
}

/// The trace and parent span of a W3C `traceparent` value
/// (`00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`), when valid.
pub(crate) fn parse_traceparent(text: &str) -> Option<([u8; 16], [u8; 8])> {
    let mut parts = text.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    if version.len() != 2 || version == "ff" || flags.len() != 2 {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let trace: [u8; 16] = unhex(trace)?.try_into().ok()?;
    let span: [u8; 8] = unhex(span)?.try_into().ok()?;
    if trace.iter().all(|b| *b == 0) || span.iter().all(|b| *b == 0) {
        return None;
    }
    Some((trace, span))
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Collects a span's or event's fields.
#[derive(Default)]
struct Fields {
    values: Vec<(String, AttributeValue)>,
    traceparent: Option<String>,
    message: Option<String>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: AttributeValue) {
        match (field.name(), value) {
            ("traceparent", AttributeValue::Text(text)) => self.traceparent = Some(text),
            ("message", AttributeValue::Text(text)) => self.message = Some(text),
            (name, value) => {
                self.values.retain(|(k, _)| k != name);
                self.values.push((name.to_string(), value));
            }
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, AttributeValue::Text(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, AttributeValue::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        let value = i64::try_from(value).map_or_else(
            |_| AttributeValue::Text(value.to_string()),
            AttributeValue::Int,
        );
        self.put(field, value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, AttributeValue::Float(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, AttributeValue::Bool(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, AttributeValue::Text(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, AttributeValue::Text(format!("{value:?}")));
    }
}

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let inherited = span.parent().and_then(|parent| {
            parent
                .extensions()
                .get::<SpanData>()
                .map(|p| (p.trace_id, p.span_id))
        });
        let (trace_id, parent) = match inherited {
            Some((trace, parent)) => (trace, Some(parent)),
            None => match fields.traceparent.as_deref().and_then(parse_traceparent) {
                Some((trace, parent)) => (trace, Some(parent)),
                None => (random_id(), None),
            },
        };
        let is_call = span.name() == CALL_SPAN;
        // A call's span is named by its method, as RPC spans are.
        let name = fields
            .values
            .iter()
            .find(|(k, _)| is_call && k == "method")
            .map_or_else(
                || span.name().to_string(),
                |(_, method)| match method {
                    AttributeValue::Text(method) => method.clone(),
                    other => format!("{other:?}"),
                },
            );
        let now = SystemTime::now();
        span.extensions_mut().insert(SpanData {
            trace_id,
            span_id: random_id(),
            parent,
            name,
            kind: if is_call { KIND_SERVER } else { KIND_INTERNAL },
            start: now,
            end: now,
            attributes: fields.values,
            events: Vec::new(),
            error: None,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        let Some(data) = extensions.get_mut::<SpanData>() else {
            return;
        };
        let mut fields = Fields {
            values: std::mem::take(&mut data.attributes),
            ..Fields::default()
        };
        values.record(&mut fields);
        data.attributes = fields.values;
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return; // info and below stay in the logs
        }
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = fields.message.unwrap_or_else(|| level.to_string());
        let mut extensions = span.extensions_mut();
        let Some(data) = extensions.get_mut::<SpanData>() else {
            return;
        };
        if level == Level::ERROR {
            data.error = Some(message.clone());
        }
        let mut attributes = fields.values;
        attributes.push(("level".into(), AttributeValue::Text(level.to_string())));
        data.events.push((SystemTime::now(), message, attributes));
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(mut data) = span.extensions_mut().remove::<SpanData>() else {
            return;
        };
        data.end = SystemTime::now();
        if self.sender.try_send(data).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn traceparent_headers_are_checked() {
        let (trace, span) =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(hex(&trace), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&span), "00f067aa0ba902b7");
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_traces_path_is_added_once() {
        let url = |s: &str| traces_url(&url::Url::parse(s).unwrap()).to_string();
        assert_eq!(url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(url("http://c:4318/otlp/"), "http://c:4318/otlp/v1/traces");
        assert_eq!(url("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
    }

    #[test]
    fn spans_nest_join_a_remote_parent_and_carry_warnings() {
        let (sender, mut spans) = mpsc::channel(16);
        let layer = OtlpLayer { sender };
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let call = tracing::info_span!(
                "call",
                method = "DoGet",
                request_id = "r1",
                traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                rows = tracing::field::Empty
            );
            call.in_scope(|| {
                let job = tracing::info_span!("job", kind = "ingest");
                job.in_scope(|| tracing::error!(table = "t", "the write failed"));
            });
            call.record("rows", 42_u64);
        });
        let job = spans.try_recv().unwrap();
        let call = spans.try_recv().unwrap();
        assert_eq!(call.name, "DoGet");
        assert_eq!(call.kind, KIND_SERVER);
        assert_eq!(hex(&call.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            call.parent.map(|p| hex(&p)).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert!(
            call.attributes
                .contains(&("rows".into(), AttributeValue::Int(42)))
        );
        assert!(!call.attributes.iter().any(|(k, _)| k == "traceparent"));
        assert_eq!(job.trace_id, call.trace_id);
        assert_eq!(job.parent, Some(call.span_id));
        assert_eq!(job.kind, KIND_INTERNAL);
        assert_eq!(job.error.as_deref(), Some("the write failed"));
        assert_eq!(job.events.len(), 1);
        let json = job.to_json();
        assert_eq!(json["status"]["code"], 2);
        assert_eq!(json["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(json["parentSpanId"], hex(&call.span_id));
        // Without a traceparent a call starts a new trace.
        let (sender, mut spans) = mpsc::channel(16);
        let subscriber = tracing_subscriber::registry().with(OtlpLayer { sender });
        tracing::subscriber::with_default(subscriber, || {
            drop(tracing::info_span!("call", method = "Handshake"));
        });
        let alone = spans.try_recv().unwrap();
        assert_eq!(alone.parent, None);
        assert!(alone.trace_id.iter().any(|b| *b != 0));
    }
}
