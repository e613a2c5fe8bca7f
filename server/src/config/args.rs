//! The `lakehouse serve` flags (clap), each also an environment variable and a
//! config-file key of the same name.

use std::path::PathBuf;

use clap::Args;

/// Flags of `lakehouse serve`; each also reads its `LAKEHOUSE_*` variable.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// TOML config file; flags and LAKEHOUSE_* variables override its keys.
    #[arg(long, env = "LAKEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (host:port; port 0 picks a free one).
    #[arg(long, env = "LAKEHOUSE_LISTEN")]
    pub listen: Option<String>,
    /// Folder for local buckets and state [default: ./lakehouse-data].
    #[arg(long, env = "LAKEHOUSE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Memory pool for query execution, e.g. 2GiB or 512MiB [default: 2GiB].
    #[arg(long, env = "LAKEHOUSE_MEMORY_LIMIT")]
    pub memory_limit: Option<String>,
    /// Parallelism of query plans [default: number of CPUs].
    #[arg(long, env = "LAKEHOUSE_TARGET_PARTITIONS")]
    pub target_partitions: Option<usize>,
    /// Rows per record batch in query execution [default: 8192].
    #[arg(long, env = "LAKEHOUSE_BATCH_SIZE")]
    pub batch_size: Option<usize>,
    /// URL of the primary bucket (file:// or s3://) [default: <data-dir>/buckets/primary].
    #[arg(long, env = "LAKEHOUSE_PRIMARY_URL")]
    pub primary_url: Option<String>,
    /// URL of the rescue bucket [default: <data-dir>/buckets/rescue].
    #[arg(long, env = "LAKEHOUSE_RESCUE_URL")]
    pub rescue_url: Option<String>,
    /// S3 endpoint override for S3-compatible servers (MinIO, moto, ...).
    #[arg(long, env = "LAKEHOUSE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: from AWS_REGION, else us-east-1].
    #[arg(long, env = "LAKEHOUSE_S3_REGION")]
    pub s3_region: Option<String>,
    /// S3 access key id [default: from AWS_ACCESS_KEY_ID].
    #[arg(long, env = "LAKEHOUSE_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key [default: from AWS_SECRET_ACCESS_KEY].
    #[arg(long, env = "LAKEHOUSE_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// Allow plain-HTTP S3 endpoints.
    #[arg(long, env = "LAKEHOUSE_S3_ALLOW_HTTP")]
    pub s3_allow_http: Option<bool>,
    /// Log filter, e.g. info or lakehouse=debug [default: warn,lakehouse=info].
    #[arg(long, env = "LAKEHOUSE_LOG")]
    pub log: Option<String>,
    /// Create the TPC-H demo tables on start if they don't exist yet.
    #[arg(long, env = "LAKEHOUSE_DEMO", num_args = 0..=1, default_missing_value = "true")]
    pub demo: Option<bool>,
    /// TPC-H scale factor of the demo tables [default: 0.1].
    #[arg(long, env = "LAKEHOUSE_DEMO_SCALE")]
    pub demo_scale: Option<f64>,
    /// A user as NAME=ARGON2_PHC_HASH (repeatable; `;`-separated in the variable).
    /// With users configured, every call needs a token from the Handshake.
    #[arg(
        long = "user",
        env = "LAKEHOUSE_USERS",
        value_delimiter = ';',
        hide_env_values = true
    )]
    pub users: Vec<String>,
    /// Lifetime of bearer tokens in seconds [default: 3600].
    #[arg(long, env = "LAKEHOUSE_TOKEN_TTL_SECS")]
    pub token_ttl_secs: Option<u64>,
    /// Serve without authentication on a non-loopback address.
    #[arg(long, env = "LAKEHOUSE_ALLOW_ANONYMOUS", num_args = 0..=1, default_missing_value = "true")]
    pub allow_anonymous: Option<bool>,
    /// PEM certificate chain: serve TLS (clients connect with grpc+tls://).
    #[arg(long, env = "LAKEHOUSE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[arg(long, env = "LAKEHOUSE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: require client certificates signed by them (mutual TLS).
    #[arg(long, env = "LAKEHOUSE_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Largest gRPC message accepted from a client, e.g. 256MiB [default: 256MiB].
    #[arg(long, env = "LAKEHOUSE_MAX_MESSAGE_SIZE")]
    pub max_message_size: Option<String>,
    /// Queries and writes running at once; more are refused with RESOURCE_EXHAUSTED [default: 64].
    #[arg(long, env = "LAKEHOUSE_MAX_CONCURRENT_QUERIES")]
    pub max_concurrent_queries: Option<usize>,
    /// Longest a query or SQL write may run, in seconds; 0 = no limit [default: 0].
    #[arg(long, env = "LAKEHOUSE_QUERY_TIMEOUT_SECS")]
    pub query_timeout_secs: Option<u64>,
    /// Seconds in-flight calls and running jobs get to finish after SIGTERM/SIGINT;
    /// then queries end UNAVAILABLE and jobs FAILED, committing nothing [default: 10].
    #[arg(long, env = "LAKEHOUSE_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// OpenLineage HTTP endpoint every lineage event is also POSTed to,
    /// e.g. http://marquez:5000/api/v1/lineage [default: none; events are stored either way].
    #[arg(long, env = "LAKEHOUSE_LINEAGE_ENDPOINT")]
    pub lineage_endpoint: Option<String>,
    /// OpenTelemetry collector the server's trace spans are sent to, OTLP/HTTP with JSON
    /// bodies (e.g. http://otel-collector:4318; /v1/traces is added); also read from
    /// OTEL_EXPORTER_OTLP_ENDPOINT [default: none, no export].
    #[arg(long, env = "LAKEHOUSE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans; also read from OTEL_SERVICE_NAME
    /// [default: lakehouse].
    #[arg(long, env = "LAKEHOUSE_OTLP_SERVICE_NAME")]
    pub otlp_service_name: Option<String>,
    /// Jobs (ingest...) working at once; more wait in phase "queued" [default: 4].
    #[arg(long, env = "LAKEHOUSE_MAX_RUNNING_JOBS")]
    pub max_running_jobs: Option<usize>,
    /// Folder of the built-in embedding model (scripts/fetch-model.sh fills it)
    /// [default: $LAKEHOUSE_MODELS, else ~/.cache/lakehouse/models].
    #[arg(long, env = "LAKEHOUSE_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// The Faiss worker binary [default: lakehouse-faiss-worker beside this binary,
    /// else on PATH].
    #[arg(long, env = "LAKEHOUSE_FAISS_WORKER")]
    pub faiss_worker: Option<PathBuf>,
    /// The Lance worker binary, built by scripts/build-lance-worker.sh [default:
    /// lakehouse-lance-worker beside this binary, else on PATH].
    #[arg(long, env = "LAKEHOUSE_LANCE_WORKER")]
    pub lance_worker: Option<PathBuf>,
    /// Local folder of the workers' index files (a cache: the index's home bucket
    /// holds its copy) [default: <data-dir>/.workers].
    #[arg(long, env = "LAKEHOUSE_WORKER_DIR")]
    pub worker_dir: Option<PathBuf>,
    /// A folder under which `lakehouse.bucket.add` may create local buckets
    /// (repeatable; `;`-separated in the variable) [default: the data directory].
    #[arg(
        long = "local-bucket-root",
        env = "LAKEHOUSE_LOCAL_BUCKET_ROOTS",
        value_delimiter = ';'
    )]
    pub local_bucket_roots: Vec<PathBuf>,
    /// Address of the operations HTTP port: /metrics, /healthz, /readyz
    /// (e.g. 127.0.0.1:9464; port 0 picks one) [default: off].
    #[arg(long, env = "LAKEHOUSE_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Log lines as `text` or `json` (one object per line, with the call's request id)
    /// [default: text].
    #[arg(long, env = "LAKEHOUSE_LOG_FORMAT")]
    pub log_format: Option<String>,
}
