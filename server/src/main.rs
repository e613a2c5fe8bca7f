//! The `lakehouse` command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lakehouse::config::{ServeArgs, Settings};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Lakehouse: Arrow Flight SQL over Delta Lake tables in object storage.
///
/// `lakehouse serve` runs the server; the other commands are its client (they reach
/// the server at --url, default grpc://127.0.0.1:50051, or $LAKEHOUSE_URL).
#[derive(Debug, Parser)]
#[command(name = "lakehouse", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Flight SQL server.
    Serve(Box<ServeArgs>),
    /// Read a password from standard input and print its argon2 hash for `users`.
    HashPassword,
    #[command(flatten)]
    Client(Box<lakehouse::cli::ClientCommand>),
}

/// Stack of the server's runtime threads.
const SERVER_STACK_BYTES: usize = 32 << 20;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::HashPassword => hash_password(),
        Command::Client(command) => client(*command),
    }
}

fn client(command: lakehouse::cli::ClientCommand) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2);
    let Some(runtime) = runtime(builder) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(lakehouse::cli::run(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Builds the runtime (with I/O and timers), or says why it could not.
fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    builder
        .enable_all()
        .build()
        .map_err(|e| eprintln!("lakehouse: cannot start the async runtime: {e}"))
        .ok()
}

fn hash_password() -> ExitCode {
    let mut password = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut password) {
        eprintln!("lakehouse: cannot read the password from standard input: {e}");
        return ExitCode::FAILURE;
    }
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("lakehouse: empty password");
        return ExitCode::from(2);
    }
    match lakehouse::flight::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lakehouse: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let settings = match Settings::resolve(args) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("lakehouse: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_new(&settings.log).unwrap_or_else(|e| {
        eprintln!(
            "lakehouse: invalid log filter {:?} ({e}); using info",
            settings.log
        );
        EnvFilter::new("info")
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let traces = lakehouse::observe::otel::install(
        settings.otlp_endpoint.clone(),
        &settings.otlp_service_name,
    );
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(traces)
        .with(lakehouse::observe::RequestIds);
    if settings.log_json {
        registry
            .with(logs.json().with_current_span(true).with_span_list(true))
            .init();
    } else {
        registry.with(logs.with_ansi(ansi)).init();
    }
    // Two rustls crypto backends are compiled in (delta-kernel requires aws-lc), so
    // rustls cannot choose one by itself: pick ring for every TLS client (S3 over HTTPS).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Query planning and evaluation walk expression trees recursively: large stacks
    // (address space, committed only as used) with the planner's operator bound keep a
    // long expression from overflowing a worker.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.thread_stack_size(SERVER_STACK_BYTES);
    let Some(runtime) = runtime(builder) else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(lakehouse::server::serve(
        settings,
        |_| {},
        lakehouse::server::shutdown_signal(),
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("lakehouse: {e}");
            ExitCode::FAILURE
        }
    }
}
