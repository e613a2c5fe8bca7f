//! `lakehouse-faiss-worker`: Faiss index-factory indexes behind Arrow Flight, spawned
//! and supervised by `lakehouse serve` (see the server's `workers` module).
//!
//! Protocol (`proto/lakehouse/v1/worker.proto`): it listens on a loopback port,
//! prints `LISTENING <addr>` on stdout, accepts only calls carrying the bearer token
//! from `LAKEHOUSE_WORKER_TOKEN`, and exits when its stdin closes, so it never
//! outlives the server, even one killed with SIGKILL. Builds and appends arrive by
//! DoPut (vectors as Arrow batches), loads, drops and searches by DoAction. Indexes
//! live in memory and in the files the server names, so a restarted worker is
//! given them back by loading those files.

mod engine;
mod service;

use std::io::Write;

use lakehouse_flight_ext::worker_actions::{LISTENING, TOKEN_ENV};

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
            "lakehouse-faiss-worker is started by `lakehouse serve`, which sets {TOKEN_ENV}; \
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
            tracing::error!(%error, "the Faiss worker stopped");
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
    if let Err(error) = engine::availability() {
        tracing::warn!(%error, "serving without Faiss");
    }
    tracing::info!(%address, pid = std::process::id(), "Faiss worker listening");
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
    let service = service::FaissService::default();
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
