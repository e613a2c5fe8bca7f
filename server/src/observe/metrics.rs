//! The server's metrics: counters and histograms kept in atomics, rendered in the
//! Prometheus text format by `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

/// Upper bounds (seconds) of latency histograms: 1 ms to 60 s.
const LATENCY_BOUNDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 60.0,
];

/// A latency histogram with fixed buckets.
#[derive(Debug)]
pub(crate) struct Histogram {
    /// Per bucket (the last one is +Inf), not cumulative.
    counts: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one observation.
    pub(crate) fn observe(&self, seconds: f64) {
        let at = LATENCY_BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        if let Some(count) = self.counts.get(at) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos
            .fetch_add((seconds.max(0.0) * 1e9) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0u64;
        let join = if labels.is_empty() { "" } else { "," };
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = LATENCY_BOUNDS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{join}le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

/// Counters by label value.
#[derive(Debug, Default)]
struct Counters(Mutex<BTreeMap<String, u64>>);

impl Counters {
    fn add(&self, key: String, by: u64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(key).or_default() += by;
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Every metric of the process.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// gRPC calls ended, by `method|code`.
    calls: Counters,
    /// Time until a call is answered (a stream: until its first message), by method.
    call_seconds: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
    /// Rows and bytes of query results sent.
    rows_streamed: AtomicU64,
    bytes_streamed: AtomicU64,
    /// Rows committed by ingest, by kind (file, postgres, mysql, bulk).
    ingest_rows: Counters,
    /// Vector searches by mode, and their latency (embedding the query included).
    vector_searches: Counters,
    vector_search_seconds: Histogram,
    /// Embedding: one observation per batch of texts.
    embed_batch_seconds: Histogram,
    embedded_texts: AtomicU64,
    /// Profile activations by result (`ok`, `error`).
    profile_activations: Counters,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// The process's metrics.
pub(crate) fn metrics() -> &'static Metrics {
    &METRICS
}

/// The HELP and TYPE lines of a metric.
fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Label values are names we choose or gRPC method names; keep them printable.
fn label(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c == '\n' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

impl Metrics {
    /// A profile activation ended (`ok` or `error`).
    pub(crate) fn profile_activated(&self, result: &str) {
        self.profile_activations.add(result.to_string(), 1);
    }

    /// A gRPC call ended with `code` (e.g. "OK", "NOT_FOUND").
    pub(crate) fn call_ended(&self, method: &str, code: &str) {
        self.calls.add(format!("{}|{code}", label(method)), 1);
    }

    /// A gRPC call was answered after `seconds`.
    pub(crate) fn call_answered(&self, method: &str, seconds: f64) {
        let histogram = {
            let mut map = self.call_seconds.lock().unwrap_or_else(|p| p.into_inner());
            std::sync::Arc::clone(map.entry(label(method)).or_default())
        };
        histogram.observe(seconds);
    }

    /// Query result rows and encoded bytes sent to a client.
    pub(crate) fn streamed(&self, rows: u64, bytes: u64) {
        self.rows_streamed.fetch_add(rows, Ordering::Relaxed);
        self.bytes_streamed.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Rows committed by an ingest of `kind`.
    pub(crate) fn ingested(&self, kind: &str, rows: u64) {
        self.ingest_rows.add(label(kind), rows);
    }

    /// One vector search of `mode` took `seconds`.
    pub(crate) fn vector_search(&self, mode: &str, seconds: f64) {
        self.vector_searches.add(label(mode), 1);
        self.vector_search_seconds.observe(seconds);
    }

    /// One batch of `texts` was embedded in `seconds`.
    pub(crate) fn embedded(&self, texts: u64, seconds: f64) {
        self.embedded_texts.fetch_add(texts, Ordering::Relaxed);
        self.embed_batch_seconds.observe(seconds);
    }

    /// The Prometheus text exposition, with the gauges the caller measured now.
    pub(crate) fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        head(
            &mut out,
            "lakehouse_build_info",
            "gauge",
            "Version of the running server.",
        );
        let _ = writeln!(
            out,
            "lakehouse_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        head(
            &mut out,
            "lakehouse_grpc_calls_total",
            "counter",
            "gRPC calls ended, by method and status code.",
        );
        for (key, value) in self.calls.snapshot() {
            let (method, code) = key.split_once('|').unwrap_or((&key, ""));
            let _ = writeln!(
                out,
                "lakehouse_grpc_calls_total{{method=\"{method}\",code=\"{code}\"}} {value}"
            );
        }
        head(
            &mut out,
            "lakehouse_grpc_response_seconds",
            "histogram",
            "Time until a call is answered (for a stream: until it starts), by method.",
        );
        let histograms: Vec<(String, std::sync::Arc<Histogram>)> = self
            .call_seconds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), std::sync::Arc::clone(v)))
            .collect();
        for (method, histogram) in histograms {
            histogram.render(
                &mut out,
                "lakehouse_grpc_response_seconds",
                &format!("method=\"{method}\""),
            );
        }
        for (name, help, value) in [
            (
                "lakehouse_result_rows_total",
                "Query result rows sent to clients.",
                &self.rows_streamed,
            ),
            (
                "lakehouse_result_bytes_total",
                "Encoded query result bytes sent to clients.",
                &self.bytes_streamed,
            ),
            (
                "lakehouse_embedded_texts_total",
                "Texts embedded by the built-in model.",
                &self.embedded_texts,
            ),
        ] {
            head(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        head(
            &mut out,
            "lakehouse_ingest_rows_total",
            "counter",
            "Rows committed by ingest, by kind.",
        );
        for (kind, value) in self.ingest_rows.snapshot() {
            let _ = writeln!(
                out,
                "lakehouse_ingest_rows_total{{kind=\"{kind}\"}} {value}"
            );
        }
        head(
            &mut out,
            "lakehouse_vector_searches_total",
            "counter",
            "Vector index searches, by mode.",
        );
        for (mode, value) in self.vector_searches.snapshot() {
            let _ = writeln!(
                out,
                "lakehouse_vector_searches_total{{mode=\"{mode}\"}} {value}"
            );
        }
        head(
            &mut out,
            "lakehouse_vector_search_seconds",
            "histogram",
            "Latency of a vector search, embedding the query included.",
        );
        self.vector_search_seconds
            .render(&mut out, "lakehouse_vector_search_seconds", "");
        head(
            &mut out,
            "lakehouse_embed_batch_seconds",
            "histogram",
            "Latency of embedding one batch of texts with the built-in model.",
        );
        self.embed_batch_seconds
            .render(&mut out, "lakehouse_embed_batch_seconds", "");
        head(
            &mut out,
            "lakehouse_jobs",
            "gauge",
            "Jobs the server remembers, by kind and state.",
        );
        for ((kind, state), count) in &gauges.jobs {
            let _ = writeln!(
                out,
                "lakehouse_jobs{{kind=\"{}\",state=\"{state}\"}} {count}",
                label(kind)
            );
        }
        head(
            &mut out,
            "lakehouse_queries_running",
            "gauge",
            "Queries and writes running now.",
        );
        let _ = writeln!(out, "lakehouse_queries_running {}", gauges.queries_running);
        head(
            &mut out,
            "lakehouse_vector_indexes_loaded",
            "gauge",
            "Vector indexes held in memory.",
        );
        let _ = writeln!(
            out,
            "lakehouse_vector_indexes_loaded {}",
            gauges.indexes_loaded
        );
        head(
            &mut out,
            "lakehouse_worker_up",
            "gauge",
            "1 while a worker process is running, by worker.",
        );
        for worker in &gauges.workers {
            let up = u8::from(worker.up);
            let _ = writeln!(
                out,
                "lakehouse_worker_up{{worker=\"{}\"}} {up}",
                worker.name
            );
        }
        head(
            &mut out,
            "lakehouse_worker_restarts_total",
            "counter",
            "Worker processes that exited unexpectedly and were restarted, by worker.",
        );
        for worker in &gauges.workers {
            let _ = writeln!(
                out,
                "lakehouse_worker_restarts_total{{worker=\"{}\"}} {}",
                worker.name, worker.restarts
            );
        }
        self.render_slot(&mut out, gauges);
        if let Some(rss) = gauges.resident_bytes {
            head(
                &mut out,
                "lakehouse_process_resident_memory_bytes",
                "gauge",
                "Resident memory of the server process.",
            );
            let _ = writeln!(out, "lakehouse_process_resident_memory_bytes {rss}");
        }
        out
    }
}

impl Metrics {
    fn render_slot(&self, out: &mut String, gauges: &Gauges) {
        let Some(slot) = &gauges.slot else {
            return;
        };
        head(
            out,
            "lakehouse_gpu_slot_state",
            "gauge",
            "1 for the GPU slot's current state (empty, activating, active, failed).",
        );
        for state in &gauges.slot_states {
            let _ = writeln!(
                out,
                "lakehouse_gpu_slot_state{{state=\"{state}\"}} {}",
                u8::from(*state == slot.state)
            );
        }
        head(
            out,
            "lakehouse_gpu_slot_profile",
            "gauge",
            "1 for the profile holding (or taking) the GPU slot.",
        );
        if !slot.profile.is_empty() {
            let _ = writeln!(
                out,
                "lakehouse_gpu_slot_profile{{profile=\"{}\"}} 1",
                label(&slot.profile)
            );
        }
        head(
            out,
            "lakehouse_gpu_slot_models",
            "gauge",
            "Models the GPU slot holds, by placement (cpu, ollama, remote).",
        );
        let mut placements: BTreeMap<&str, u64> = BTreeMap::new();
        for model in &slot.models {
            *placements.entry(model.placement.as_str()).or_default() += 1;
        }
        for (placement, count) in placements {
            let _ = writeln!(
                out,
                "lakehouse_gpu_slot_models{{placement=\"{}\"}} {count}",
                label(placement)
            );
        }
        head(
            out,
            "lakehouse_profile_activations_total",
            "counter",
            "Profile activations (and slot releases) by result.",
        );
        for (result, count) in self.profile_activations.snapshot() {
            let _ = writeln!(
                out,
                "lakehouse_profile_activations_total{{result=\"{result}\"}} {count}"
            );
        }
        head(
            out,
            "lakehouse_gpu_present",
            "gauge",
            "GPUs NVML reports (0 without the NVIDIA driver).",
        );
        let _ = writeln!(out, "lakehouse_gpu_present {}", slot.gpus.len());
        if slot.gpus.is_empty() {
            return;
        }
        for (name, help) in [
            (
                "lakehouse_gpu_memory_total_bytes",
                "GPU memory, by GPU (NVML).",
            ),
            (
                "lakehouse_gpu_memory_used_bytes",
                "GPU memory in use, by GPU (NVML).",
            ),
        ] {
            head(out, name, "gauge", help);
            for gpu in &slot.gpus {
                let value = if name.ends_with("total_bytes") {
                    gpu.memory_total_bytes
                } else {
                    gpu.memory_used_bytes
                };
                let _ = writeln!(out, "{name}{{gpu=\"{}\"}} {value}", gpu.index);
            }
        }
    }
}

/// Values measured at scrape time.
#[derive(Debug, Default)]
pub(crate) struct Gauges {
    /// (kind, state) → jobs.
    pub jobs: BTreeMap<(String, &'static str), u64>,
    pub queries_running: u64,
    pub indexes_loaded: u64,
    pub resident_bytes: Option<u64>,
    pub workers: Vec<WorkerGauge>,
    /// The GPU slot, when the server has one.
    pub slot: Option<lakehouse_flight_ext::v1::GpuSlot>,
    /// Every state the GPU slot can be in, by name (`lakehouse_gpu_slot_state` has one
    /// series each).
    pub slot_states: Vec<&'static str>,
}

/// One worker process, as the metrics show it.
#[derive(Debug, Default)]
pub(crate) struct WorkerGauge {
    /// The worker's name.
    pub name: String,
    /// Whether it is running.
    pub up: bool,
    /// Unexpected exits that were restarted.
    pub restarts: u64,
}

/// Resident memory from `/proc/self/statm` (Linux), `None` elsewhere.
pub(crate) fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histograms() {
        let metrics = Metrics::default();
        metrics.call_ended("DoGet", "OK");
        metrics.call_ended("DoGet", "OK");
        metrics.call_ended("DoAction", "NOT_FOUND");
        metrics.call_answered("DoGet", 0.003);
        metrics.call_answered("DoGet", 5.0);
        metrics.ingested("file", 10);
        let text = metrics.render(&Gauges::default());
        assert!(text.contains("lakehouse_grpc_calls_total{method=\"DoGet\",code=\"OK\"} 2"));
        assert!(
            text.contains("lakehouse_grpc_calls_total{method=\"DoAction\",code=\"NOT_FOUND\"} 1")
        );
        assert!(
            text.contains(
                "lakehouse_grpc_response_seconds_bucket{method=\"DoGet\",le=\"0.005\"} 1"
            )
        );
        assert!(
            text.contains("lakehouse_grpc_response_seconds_bucket{method=\"DoGet\",le=\"10\"} 2")
        );
        assert!(text.contains("lakehouse_grpc_response_seconds_count{method=\"DoGet\"} 2"));
        assert!(text.contains("lakehouse_ingest_rows_total{kind=\"file\"} 10"));
        // Every sample line names a metric that has a TYPE line.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {name} "))
                    || text.contains(&format!("# TYPE {base} ")),
                "{line}"
            );
        }
    }
}
