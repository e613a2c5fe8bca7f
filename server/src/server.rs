//! Start-up and shutdown of `lakehouse serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::catalog::{Catalog, CatalogError};
use crate::config::Settings;
use crate::config::TlsSettings;
use crate::demo::{self, DemoError};
use crate::flight::{Authenticator, FrontDoor, LakehouseService, Limits};
use crate::query::{QueryEngine, table_fn};
use crate::services::Services;
use crate::storage::{BucketRegistry, StorageError};
use crate::vector::Mode;
use crate::vector::SearchFunction;

/// How long stopped queries and jobs get to end cleanly (final status sent, job
/// record written) before the server exits anyway.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Buckets could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The catalog could not be loaded.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The demo tables could not be created.
    #[error(transparent)]
    Demo(#[from] DemoError),
    /// The query engine could not be set up.
    #[error("query engine: {0}")]
    Engine(#[from] datafusion::error::DataFusionError),
    /// Server metadata could not be built.
    #[error("server metadata: {0}")]
    Metadata(#[from] arrow_flight::error::FlightError),
    /// No users are configured but the address is reachable from other machines.
    #[error(
        "refusing to serve {0} without authentication: configure `users` (see `lakehouse hash-password`) or set allow_anonymous"
    )]
    Anonymous(SocketAddr),
    /// The listen address is unavailable.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// TLS files could not be read.
    #[error(transparent)]
    TlsFile(#[from] TlsFileError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Opens storage and catalog, then serves Flight SQL until `shutdown` resolves.
/// `on_listening` is called with the bound address (useful with port 0).
pub async fn serve(
    settings: Settings,
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let traces = crate::observe::otel::start();
    let catalog = open_catalog(&settings).await?;
    let swept = catalog.sweep_orphans().await;
    if !swept.is_empty() {
        tracing::info!(
            folders = swept.len(),
            "cleared what interrupted writes left behind"
        );
    }
    let unclean = catalog.begin_run().await?;
    tracing::info!(
        data_dir = %settings.data_dir.display(),
        tables = catalog.snapshot().tables.len(),
        "catalog loaded"
    );
    if settings.demo {
        let created = demo::create_tpch(&catalog, settings.demo_scale).await?;
        if !created.is_empty() {
            tracing::info!(tables = ?created, scale = settings.demo_scale, "demo tables ready");
        }
    }
    let services = open_services(&catalog, &settings).await?;
    let engine = Arc::new(QueryEngine::new(catalog, services, &settings)?);
    let table_sweep = unclean.then(|| {
        let catalog = Arc::clone(engine.catalog());
        tokio::spawn(async move {
            tracing::warn!(
                "the last run did not stop cleanly: sweeping tables for files of writes that never committed"
            );
            let (files, bytes) = catalog.sweep_tables().await;
            tracing::info!(files, bytes, "table sweep done");
        })
    });
    let auth = Authenticator::new(settings.users.clone(), settings.token_ttl);
    if auth.enabled() {
        tracing::info!(
            users = settings.users.len(),
            "authentication on: Basic credentials in the Handshake, then bearer tokens"
        );
    } else if settings.listen.ip().is_loopback() || settings.allow_anonymous {
        tracing::warn!(
            "authentication is OFF: any client that can reach {} may query; configure `users` to require credentials",
            settings.listen
        );
    } else {
        return Err(ServeError::Anonymous(settings.listen));
    }
    let limits = Limits::new(settings.max_concurrent_queries, settings.query_timeout);
    let workers = Arc::new(crate::workers::Workers::new(
        crate::workers::WorkerBinaries {
            faiss: settings.faiss_worker.clone(),
            lance: settings.lance_worker.clone(),
        },
        settings.worker_dir.clone(),
        crate::observe::current_request_id,
    ));
    // Index files of a previous run's workers: the buckets hold what is kept.
    let stale = workers.dir().join("faiss");
    if let Err(error) = tokio::fs::remove_dir_all(&stale).await
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %stale.display(), %error, "cannot clear old worker files");
    }
    register_system_tables(&engine, &workers);
    let missing = crate::vector::embed::MiniLm::missing_files(&settings.models_dir);
    if let Some(first) = missing.first() {
        tracing::warn!(
            missing = %first.display(),
            "the built-in embedding model is not installed: indexes with the built-in \
             embedder cannot be built or searched by text until scripts/fetch-model.sh \
             installs it (SQL and everything else work)"
        );
    }
    let vectors = Arc::new(
        crate::vector::VectorIndexes::new(Arc::clone(&engine), settings.models_dir.clone())
            .with_embedders(settings.embedders.clone())
            .with_workers(Arc::clone(&workers)),
    );
    for mode in [Mode::Vector, Mode::Text, Mode::Hybrid] {
        engine.register_table_function(
            SearchFunction::name(mode),
            Arc::new(SearchFunction::new(Arc::clone(&vectors), mode)),
        );
    }
    for table in crate::vector::system::VectorTable::all(&vectors) {
        engine.register_system_table(table);
    }
    let profiles = Arc::new(crate::profiles::Profiles::new(
        Arc::clone(engine.catalog()),
        Arc::clone(&vectors),
        settings.embedders.clone(),
        settings.llms.clone(),
    ));
    for table in profiles.system_tables() {
        engine.register_system_table(table);
    }
    if let Some(name) = profiles.recorded_active() {
        // The slot is not persisted; its profile is, and gets its models back.
        tracing::info!(profile = %name, "activating the profile that held the GPU slot");
        crate::flight::spawn_activation(&profiles, &engine.services().jobs, name, String::new());
    }
    let refresher = vectors.follow(&engine.services().events);
    let jobs = Arc::clone(&engine.services().jobs);
    let engine_catalog = Arc::clone(engine.catalog());
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ops = crate::ops::Ops {
        engine: Arc::clone(&engine),
        limits: limits.clone(),
        vectors: Some(Arc::clone(&vectors)),
        workers: Some(Arc::clone(&workers)),
        slot: Some(Arc::clone(profiles.slot())),
        stopping: Arc::clone(&stopping),
    };
    let service = LakehouseService::new(engine, auth, limits)?
        .with_connections(crate::ingest::database::Connections::new(
            settings.connections.clone(),
        ))
        .with_vectors(vectors)
        .with_profiles(profiles);
    let tls = settings.tls.as_ref().map(tls_config).transpose()?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: settings.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: settings.listen,
        source,
    })?;
    let (ops_stop, ops_stopped) = tokio::sync::oneshot::channel::<()>();
    let ops_task = match settings.metrics_listen {
        Some(metrics_addr) => {
            let (bound, task) = crate::ops::serve(metrics_addr, ops, async {
                let _ = ops_stopped.await;
            })
            .await
            .map_err(|source| ServeError::Bind {
                addr: metrics_addr,
                source,
            })?;
            tracing::info!("operations on http://{bound} (/metrics, /healthz, /readyz)");
            Some(task)
        }
        None => None,
    };
    let (scheme, note) = match &settings.tls {
        Some(TlsSettings {
            client_ca: Some(_), ..
        }) => ("grpc+tls", " (client certificates required)"),
        Some(_) => ("grpc+tls", ""),
        None => ("grpc", ""),
    };
    tracing::info!(
        memory_limit = settings.memory_limit,
        max_concurrent_queries = settings.max_concurrent_queries,
        "lakehouse listening on {scheme}://{addr}{note}"
    );
    on_listening(addr);

    let queries = service.running_queries();
    let svc = FlightServiceServer::new(FrontDoor::new(service))
        .max_decoding_message_size(settings.max_message_size)
        .max_encoding_message_size(settings.max_message_size);
    // Set to the end of the grace period when the shutdown signal arrives.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(None::<tokio::time::Instant>);
    let grace = settings.shutdown_grace;
    let signal = async move {
        shutdown.await;
        stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            "shutting down: no new calls; in-flight calls and jobs have {grace:?} to finish"
        );
        let _ = stop_tx.send(Some(tokio::time::Instant::now() + grace));
    };
    // HTTP/2's default 64 KiB flow-control windows make an upload wait for a window
    // update every 32 KiB; bulk ingest sends hundreds of MiB. Large windows (memory is
    // still bounded: a window is credit, not a buffer that is filled up front) and a
    // bigger frame size keep the client sending.
    let mut builder = Server::builder()
        .initial_stream_window_size(HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
        .max_frame_size(HTTP2_MAX_FRAME);
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let server = builder
        .layer(crate::observe::CallLayer)
        .add_service(svc)
        .serve_with_incoming_shutdown(
            // TCP_NODELAY: a small reply must not wait for the client's delayed ACK
            // (Nagle's algorithm held every one-message answer ~40 ms).
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            signal,
        );
    let mut server = std::pin::pin!(server);
    let deadline = {
        let mut stop_rx = stop_rx.clone();
        async move {
            let deadline = match stop_rx.wait_for(Option::is_some).await {
                Ok(deadline) => *deadline,
                Err(_) => None,
            };
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => futures::future::pending().await,
            }
        }
    };
    // Calls end by themselves within the grace period, or are stopped after it:
    // queries with UNAVAILABLE, jobs (whose followers are calls too) FAILED.
    tokio::select! {
        result = &mut server => {
            result?;
            // Every call has ended; detached jobs get what is left of the grace period.
            let deadline = (*stop_rx.borrow()).unwrap_or_else(tokio::time::Instant::now);
            jobs.stop(deadline, STOP_WAIT).await;
        }
        () = deadline => {
            let stopped = queries.stop_all();
            let now = tokio::time::Instant::now();
            let jobs_stopped = jobs.stop(now, STOP_WAIT).await;
            tracing::warn!(queries = stopped, jobs = jobs_stopped,
                "grace period over: stopped what was still running");
            if tokio::time::timeout(STOP_WAIT, &mut server).await.is_err() {
                tracing::warn!("calls still open {STOP_WAIT:?} after being stopped; closing them");
            }
        }
    }
    // A refresh in progress stops here; the next start's first append resumes it.
    refresher.abort();
    workers.stop(STOP_WAIT).await;
    // The start's sweep, unfinished, is left to the next start.
    let swept = table_sweep.is_none_or(|sweep| {
        let done = sweep.is_finished();
        sweep.abort();
        done
    });
    let ended = if swept {
        engine_catalog.end_run(STOP_WAIT).await
    } else {
        Ok(false)
    };
    match ended {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "files of unfinished writes may be left in tables; the next start sweeps them"
        ),
        Err(error) => tracing::warn!(%error, "cannot note the clean stop"),
    }
    let _ = ops_stop.send(());
    if let Some(task) = ops_task {
        let _ = task.await;
    }
    tracing::info!("stopped");
    if let Some(traces) = traces {
        traces.finish(STOP_WAIT).await;
    }
    Ok(())
}

/// HTTP/2 flow-control window of one call (bytes a client may send ahead).
const HTTP2_STREAM_WINDOW: u32 = 8 << 20;
/// HTTP/2 flow-control window of one connection (all its calls together).
const HTTP2_CONNECTION_WINDOW: u32 = 16 << 20;
/// Largest HTTP/2 frame accepted.
const HTTP2_MAX_FRAME: u32 = 1 << 20;

/// A TLS file (certificate, key or CA) that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read TLS file {path}: {source}")]
pub struct TlsFileError {
    /// The file.
    pub(crate) path: std::path::PathBuf,
    /// The I/O error.
    pub(crate) source: std::io::Error,
}

/// Server TLS from PEM files; with a client CA, clients must present a certificate.
fn tls_config(tls: &TlsSettings) -> Result<tonic::transport::ServerTlsConfig, TlsFileError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|source| TlsFileError {
            path: path.to_path_buf(),
            source,
        })
    };
    let identity = tonic::transport::Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
    let mut config = tonic::transport::ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &tls.client_ca {
        config = config.client_ca_root(tonic::transport::Certificate::from_pem(read(ca)?));
    }
    Ok(config)
}

/// Opens the buckets and loads the catalog.
async fn open_catalog(settings: &Settings) -> Result<Arc<Catalog>, ServeError> {
    let buckets = Arc::new(BucketRegistry::open(settings)?);
    Ok(Arc::new(Catalog::open(buckets).await?))
}

/// Opens the jobs, lineage and event bus kept beside `catalog`.
async fn open_services(
    catalog: &Catalog,
    settings: &Settings,
) -> Result<Arc<Services>, ServeError> {
    let primary = catalog.buckets().primary()?;
    Ok(Arc::new(
        Services::open(
            primary,
            settings.max_running_jobs,
            settings.lineage_endpoint.clone(),
        )
        .await?,
    ))
}

/// Registers the `system` tables of the subsystems below the query engine: jobs,
/// lineage, PII and the worker processes (the catalog's own are there already).
fn register_system_tables(engine: &QueryEngine, workers: &Arc<crate::workers::Workers>) {
    let jobs = Arc::clone(&engine.services().jobs);
    engine.register_system_table(table_fn("jobs", move || {
        std::future::ready(crate::jobs::system::table(&jobs))
    }));
    let lineage = Arc::clone(&engine.services().lineage);
    engine.register_system_table(table_fn("lineage", move || {
        let lineage = Arc::clone(&lineage);
        async move { crate::lineage::system::table(&lineage).await }
    }));
    let catalog = Arc::clone(engine.catalog());
    engine.register_system_table(table_fn("pii", move || {
        std::future::ready(crate::pii::system::table(&catalog.snapshot()))
    }));
    let workers = Arc::clone(workers);
    engine.register_system_table(table_fn("workers", move || {
        std::future::ready(crate::workers::system::table(&workers.states()))
    }));
}

/// A query engine over the catalog of `settings`, without a server (benchmarks, tests, tools).
pub async fn open_engine(settings: &Settings) -> Result<QueryEngine, ServeError> {
    let catalog = open_catalog(settings).await?;
    let services = open_services(&catalog, settings).await?;
    Ok(QueryEngine::new(catalog, services, settings)?)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            futures::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                futures::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = futures::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
