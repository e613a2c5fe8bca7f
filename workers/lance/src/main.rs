//! `lakehouse-lance-worker`: Lance datasets and their vector indexes (IVF_PQ,
//! IVF_HNSW_SQ, IVF_FLAT) behind Arrow Flight, spawned and supervised by
//! `lakehouse serve` (see the server's `workers` module).
//!
//! This crate is a Cargo workspace of its own: Lance pins an Arrow and a DataFusion
//! other than the server's, so only Arrow IPC and the `lance_worker.proto` messages
//! cross between them, never Rust types.
//!
//! Protocol (`proto/lakehouse/v1/lance_worker.proto`): as every worker, it listens on
//! a loopback port, prints `LISTENING <addr>` on stdout, accepts only calls carrying
//! the bearer token from `LAKEHOUSE_WORKER_TOKEN`, and exits when its stdin closes,
//! so it never outlives the server. Writes and appends arrive by DoPut (Arrow
//! batches), index builds, searches, optimizes and stats by DoAction, takes by DoGet.
//! Datasets live where the server names them (a bucket's folder or S3), so a
//! restarted worker holds nothing the server must give back: it opens them again.

mod datasets;
mod params;
mod service;

use std::io::Write;

/// Action names and conventions shared with the server (one file for both; the Faiss
/// worker's names in it are not ours).
#[allow(dead_code)]
mod worker_actions {
    include!("../../../flight-ext/src/worker_actions.rs");
}

/// The `lakehouse.v1` worker messages, generated from `proto/` by `build.rs` (the
/// Faiss worker's among them, unused here).
#[allow(clippy::all, unreachable_pub, dead_code)]
mod v1 {
    include!(concat!(env!("OUT_DIR"), "/lakehouse.v1.rs"));
}

use worker_actions::{LISTENING, TOKEN_ENV};

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LAKEHOUSE_WORKER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let Some(token) = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()) else {
        eprintln!(
            "lakehouse-lance-worker is started by `lakehouse serve`, which sets {TOKEN_ENV}; \
             it is not meant to be run by hand"
        );
        return std::process::ExitCode::from(2);
    };
    let listen = std::env::args()
        .skip_while(|a| a != "--listen")
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(&listen, token)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "the Lance worker stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(listen: &str, token: String) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{LISTENING} {address}")?;
        stdout.flush()?;
    }
    tracing::info!(%address, pid = std::process::id(), "Lance worker listening");
    // The server holds our stdin: when it closes (the server stopped, however it
    // stopped), so do we.
    let stdin_closed = async {
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut sink);
        })
        .await;
        tracing::info!("stdin closed: stopping");
    };
    let service = service::LanceService::default();
    let expected = format!("Bearer {token}");
    let server = arrow_flight::flight_service_server::FlightServiceServer::new(service)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20);
    let server = tonic::service::interceptor::InterceptedService::new(
        server,
        move |request: tonic::Request<()>| {
            let presented = request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if presented == Some(expected.as_str()) {
                Ok(request)
            } else {
                Err(tonic::Status::unauthenticated(
                    "this worker serves its server only",
                ))
            }
        },
    );
    tonic::transport::Server::builder()
        .add_service(server)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            stdin_closed,
        )
        .await?;
    Ok(())
}
