//! The operations HTTP port: `/metrics` (Prometheus text), `/healthz` (the process
//! answers) and `/readyz` (it can serve: catalog loaded, primary bucket reachable, not
//! shutting down).
//!
//! Owns: the operations listener. May call: `observe` (rendering), `query`,
//! `catalog`, `vector`, `workers`, `profiles` (read-only, at scrape time).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use lakehouse_flight_ext::names::{is_terminal, state_name};

use crate::flight::Limits;
use crate::observe::metrics::{Gauges, WorkerGauge, metrics, resident_bytes};
use crate::profiles::{Slot, SlotState};
use crate::query::QueryEngine;
use crate::vector::VectorIndexes;
use crate::workers::Workers;

/// What the endpoints look at.
#[derive(Clone)]
pub(crate) struct Ops {
    pub engine: Arc<QueryEngine>,
    pub limits: Limits,
    pub vectors: Option<Arc<VectorIndexes>>,
    pub workers: Option<Arc<Workers>>,
    pub slot: Option<Arc<Slot>>,
    /// Set once the server stops taking calls.
    pub stopping: Arc<AtomicBool>,
}

/// How long `/readyz` waits for the primary bucket.
const READY_PROBE: Duration = Duration::from_secs(2);

async fn metrics_text(State(ops): State<Ops>) -> impl IntoResponse {
    let mut gauges = Gauges {
        queries_running: ops.limits.running() as u64,
        indexes_loaded: ops.vectors.as_ref().map_or(0, |v| v.loaded_count() as u64),
        resident_bytes: resident_bytes(),
        workers: ops
            .workers
            .iter()
            .flat_map(|w| w.states())
            .map(|w| WorkerGauge {
                name: w.name.to_string(),
                up: w.state == "running",
                restarts: w.restarts,
            })
            .collect(),
        slot: ops.slot.as_ref().map(|slot| slot.report()),
        slot_states: SlotState::ALL.map(SlotState::name).to_vec(),
        ..Gauges::default()
    };
    for job in ops.engine.services().jobs.list() {
        let state = if is_terminal(job.state) {
            state_name(job.state)
        } else {
            "running"
        };
        *gauges.jobs.entry((job.kind.clone(), state)).or_default() += 1;
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics().render(&gauges),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(ops): State<Ops>) -> (StatusCode, String) {
    if ops.stopping.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
    }
    let probe = async {
        let primary = ops.engine.catalog().buckets().primary()?;
        primary.any_object().await.map(drop)
    };
    match tokio::time::timeout(READY_PROBE, probe).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n".into()),
        Ok(Err(error)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("primary bucket unreachable: {error}\n"),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("primary bucket did not answer within {READY_PROBE:?}\n"),
        ),
    }
}

/// Binds `addr` and serves the endpoints until `shutdown` resolves; returns the bound
/// address at once (the serving runs on a task of its own).
pub(crate) async fn serve(
    addr: SocketAddr,
    ops: Ops,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(ops);
    let task = tokio::spawn(async move {
        // TCP_NODELAY: see the Flight SQL listener in `server.rs`.
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "could not set TCP_NODELAY");
            }
        });
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(%error, "the operations HTTP server stopped");
        }
    });
    Ok((bound, task))
}
