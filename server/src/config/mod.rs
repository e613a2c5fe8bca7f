//! Server configuration: a TOML file, overridden by `LAKEHOUSE_*` environment
//! variables, overridden by command-line flags.
//!
//! Every key of [`FileConfig`] has a flag and an environment variable of the
//! same name (`memory_limit` ↔ `--memory-limit` ↔ `LAKEHOUSE_MEMORY_LIMIT`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod args;
mod file;

pub use args::ServeArgs;
pub(crate) use file::{ConnectionConfig, EmbedderConfig, FileConfig, LlmConfig};
use file::{check_connection, check_embedder, check_service, read_file};

/// Default address: loopback only, so the embedded default is never exposed by accident.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// Jobs working at once by default (more wait, queued).
const DEFAULT_MAX_RUNNING_JOBS: usize = 4;

/// Default log filter: our own events at info, dependencies only when they warn.
pub(crate) const DEFAULT_LOG: &str = "warn,lakehouse=info";

/// Errors loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file named by `--config`.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for [`FileConfig`].
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file named by `--config`.
        path: PathBuf,
        /// The TOML error, with line and column.
        source: toml::de::Error,
    },
    /// A value could not be understood.
    #[error("invalid value for {key}: {message}")]
    Value {
        /// The configuration key.
        key: &'static str,
        /// What was wrong.
        message: String,
    },
}

/// S3 credentials and endpoint used for every `s3://` bucket.
#[derive(Debug, Clone, Default)]
pub(crate) struct S3Settings {
    pub(crate) endpoint: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) access_key_id: Option<String>,
    pub(crate) secret_access_key: Option<String>,
    pub(crate) allow_http: bool,
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub(crate) listen: SocketAddr,
    pub(crate) data_dir: PathBuf,
    pub(crate) memory_limit: usize,
    pub(crate) target_partitions: usize,
    pub(crate) batch_size: usize,
    pub(crate) primary_url: Option<String>,
    pub(crate) rescue_url: Option<String>,
    pub(crate) s3: S3Settings,
    pub log: String,
    pub(crate) demo: bool,
    pub(crate) demo_scale: f64,
    pub(crate) users: HashMap<String, String>,
    pub(crate) token_ttl: Duration,
    pub(crate) allow_anonymous: bool,
    pub(crate) tls: Option<TlsSettings>,
    pub(crate) max_message_size: usize,
    pub(crate) max_concurrent_queries: usize,
    pub(crate) query_timeout: Option<Duration>,
    /// Time calls and jobs get to finish after a shutdown signal.
    pub(crate) shutdown_grace: Duration,
    pub(crate) lineage_endpoint: Option<url::Url>,
    /// Where trace spans are exported (OTLP/HTTP), when set.
    pub otlp_endpoint: Option<url::Url>,
    /// `service.name` of exported spans.
    pub otlp_service_name: String,
    pub(crate) max_running_jobs: usize,
    /// Named source databases, checked at start (URL, scheme, no inline password).
    pub(crate) connections: HashMap<String, ConnectionConfig>,
    /// Folder of the built-in embedding model.
    pub(crate) models_dir: PathBuf,
    /// The Faiss worker binary.
    pub(crate) faiss_worker: PathBuf,
    pub(crate) lance_worker: PathBuf,
    /// Local folder of the workers' index files.
    pub(crate) worker_dir: PathBuf,
    /// Folders local buckets may be added under at run time; empty means the data
    /// directory.
    pub(crate) local_bucket_roots: Vec<PathBuf>,
    /// The operations HTTP port, when enabled.
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// JSON log lines instead of text.
    pub log_json: bool,
    /// Named HTTP embedding services, checked at start (protocol, URL).
    pub(crate) embedders: HashMap<String, EmbedderConfig>,
    /// Named LLMs, checked at start (protocol, URL).
    pub(crate) llms: HashMap<String, LlmConfig>,
}

/// TLS files (PEM).
#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    /// CA of client certificates; set means mutual TLS is required.
    pub(crate) client_ca: Option<PathBuf>,
}

impl Settings {
    /// Resolves flags over environment over file over defaults.
    pub fn resolve(args: ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen = listen.parse().map_err(|e| ConfigError::Value {
            key: "listen",
            message: format!("{listen:?} is not host:port ({e})"),
        })?;
        let memory_limit = match args.memory_limit.or(file.memory_limit) {
            Some(text) => parse_bytes(&text).map_err(|message| ConfigError::Value {
                key: "memory_limit",
                message,
            })?,
            None => 2 << 30,
        };
        let target_partitions = args
            .target_partitions
            .or(file.target_partitions)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let batch_size = args.batch_size.or(file.batch_size).unwrap_or(8192);
        if target_partitions == 0 || batch_size == 0 {
            return Err(ConfigError::Value {
                key: "target_partitions/batch_size",
                message: "must be at least 1".into(),
            });
        }
        let demo_scale = args.demo_scale.or(file.demo_scale).unwrap_or(0.1);
        if !(demo_scale > 0.0 && demo_scale <= 100.0) {
            return Err(ConfigError::Value {
                key: "demo_scale",
                message: format!("{demo_scale} is not in (0, 100]"),
            });
        }
        let mut users = file.users.unwrap_or_default();
        for user in &args.users {
            let (name, hash) = user.split_once('=').ok_or_else(|| ConfigError::Value {
                key: "user",
                message: "expected NAME=ARGON2_HASH (make one with `lakehouse hash-password`)"
                    .into(),
            })?;
            users.insert(name.to_string(), hash.to_string());
        }
        if let Some((name, _)) = users.iter().find(|(_, hash)| !hash.starts_with("$argon2")) {
            return Err(ConfigError::Value {
                key: "users",
                message: format!(
                    "the hash of user {name:?} is not an argon2 PHC string; use `lakehouse hash-password`"
                ),
            });
        }
        let token_ttl = Duration::from_secs(
            args.token_ttl_secs
                .or(file.token_ttl_secs)
                .unwrap_or(3600)
                .max(1),
        );
        let tls = match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
            args.tls_client_ca.or(file.tls_client_ca),
        ) {
            (Some(cert), Some(key), client_ca) => Some(TlsSettings {
                cert,
                key,
                client_ca,
            }),
            (None, None, None) => None,
            _ => {
                return Err(ConfigError::Value {
                    key: "tls_cert/tls_key",
                    message: "TLS needs both tls_cert and tls_key (tls_client_ca adds mutual TLS)"
                        .into(),
                });
            }
        };
        let max_message_size = match args.max_message_size.or(file.max_message_size) {
            Some(text) => parse_bytes(&text).map_err(|message| ConfigError::Value {
                key: "max_message_size",
                message,
            })?,
            None => 256 << 20,
        };
        if max_message_size < 1 << 20 {
            return Err(ConfigError::Value {
                key: "max_message_size",
                message: "must be at least 1MiB".into(),
            });
        }
        let max_concurrent_queries = args
            .max_concurrent_queries
            .or(file.max_concurrent_queries)
            .unwrap_or(64);
        if max_concurrent_queries == 0 {
            return Err(ConfigError::Value {
                key: "max_concurrent_queries",
                message: "must be at least 1".into(),
            });
        }
        let query_timeout = match args.query_timeout_secs.or(file.query_timeout_secs) {
            None | Some(0) => None,
            Some(secs) => Some(Duration::from_secs(secs)),
        };
        let lineage_endpoint = match args.lineage_endpoint.or(file.lineage_endpoint) {
            None => None,
            Some(text) => Some(url::Url::parse(&text).map_err(|e| ConfigError::Value {
                key: "lineage_endpoint",
                message: format!("{:?} is not a URL ({e})", crate::secrets::redact(&text)),
            })?),
        };
        let otlp_endpoint = args
            .otlp_endpoint
            .or(file.otlp_endpoint)
            .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
            .filter(|text| !text.trim().is_empty());
        let otlp_endpoint = match otlp_endpoint {
            None => None,
            Some(text) => {
                let url = url::Url::parse(&text).map_err(|e| ConfigError::Value {
                    key: "otlp_endpoint",
                    message: format!("{:?} is not a URL ({e})", crate::secrets::redact(&text)),
                })?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(ConfigError::Value {
                        key: "otlp_endpoint",
                        message: format!(
                            "{:?}: only OTLP over HTTP (http:// or https://) is supported",
                            crate::secrets::redact(&text)
                        ),
                    });
                }
                Some(url)
            }
        };
        let otlp_service_name = args
            .otlp_service_name
            .or(file.otlp_service_name)
            .or_else(|| std::env::var("OTEL_SERVICE_NAME").ok())
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| "lakehouse".into());
        let max_running_jobs = args
            .max_running_jobs
            .or(file.max_running_jobs)
            .unwrap_or(DEFAULT_MAX_RUNNING_JOBS);
        if max_running_jobs == 0 {
            return Err(ConfigError::Value {
                key: "max_running_jobs",
                message: "must be at least 1".into(),
            });
        }
        let connections = file.connections.unwrap_or_default();
        for (name, connection) in &connections {
            check_connection(name, connection)?;
        }
        let embedders = file.embedders.unwrap_or_default();
        for (name, embedder) in &embedders {
            check_embedder(name, embedder)?;
        }
        let llms = file.llms.unwrap_or_default();
        for (name, llm) in &llms {
            check_service("llms", name, &llm.protocol, &llm.url, &llm.model)?;
        }
        let local_bucket_roots = if args.local_bucket_roots.is_empty() {
            file.local_bucket_roots.unwrap_or_default()
        } else {
            args.local_bucket_roots
        };
        if let Some(root) = local_bucket_roots.iter().find(|r| !r.is_absolute()) {
            return Err(ConfigError::Value {
                key: "local_bucket_roots",
                message: format!("{} is not an absolute path", root.display()),
            });
        }
        let metrics_listen = match args.metrics_listen.or(file.metrics_listen) {
            None => None,
            Some(text) => Some(text.parse().map_err(|e| ConfigError::Value {
                key: "metrics_listen",
                message: format!("{text:?} is not host:port ({e})"),
            })?),
        };
        let log_json = match args.log_format.or(file.log_format).as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(ConfigError::Value {
                    key: "log_format",
                    message: format!("{other:?} is not text or json"),
                });
            }
        };
        let shutdown_grace = Duration::from_secs(
            args.shutdown_grace_secs
                .or(file.shutdown_grace_secs)
                .unwrap_or(10),
        );
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("lakehouse-data"));
        let worker_dir = args
            .worker_dir
            .or(file.worker_dir)
            .unwrap_or_else(|| data_dir.join(".workers"));
        let faiss_worker = args
            .faiss_worker
            .or(file.faiss_worker)
            .unwrap_or_else(|| default_binary("lakehouse-faiss-worker"));
        let lance_worker = args
            .lance_worker
            .or(file.lance_worker)
            .unwrap_or_else(|| default_binary("lakehouse-lance-worker"));
        Ok(Self {
            embedders,
            llms,
            shutdown_grace,
            worker_dir,
            faiss_worker,
            lance_worker,
            metrics_listen,
            log_json,
            local_bucket_roots,
            models_dir: args
                .models_dir
                .or(file.models_dir)
                .unwrap_or_else(default_models_dir),
            connections,
            lineage_endpoint,
            otlp_endpoint,
            otlp_service_name,
            max_running_jobs,
            tls,
            max_message_size,
            max_concurrent_queries,
            query_timeout,
            users,
            token_ttl,
            allow_anonymous: args
                .allow_anonymous
                .or(file.allow_anonymous)
                .unwrap_or(false),
            listen,
            data_dir,
            memory_limit,
            target_partitions,
            batch_size,
            primary_url: args.primary_url.or(file.primary_url),
            rescue_url: args.rescue_url.or(file.rescue_url),
            s3: S3Settings {
                endpoint: args.s3_endpoint.or(file.s3_endpoint),
                region: args.s3_region.or(file.s3_region),
                access_key_id: args.s3_access_key_id.or(file.s3_access_key_id),
                secret_access_key: args.s3_secret_access_key.or(file.s3_secret_access_key),
                allow_http: args.s3_allow_http.or(file.s3_allow_http).unwrap_or(false),
            },
            log: args.log.or(file.log).unwrap_or_else(|| DEFAULT_LOG.into()),
            demo: args.demo.or(file.demo).unwrap_or(false),
            demo_scale,
        })
    }
}

/// Default path of a worker binary: beside the running executable, else its bare
/// name (found on PATH).
pub(crate) fn default_binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The default models folder: `$LAKEHOUSE_MODELS`, else `~/.cache/lakehouse/models`.
pub(crate) fn default_models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LAKEHOUSE_MODELS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("lakehouse").join("models")
}

/// Parses `512MiB`, `2GiB`, `1.5GB`, `1000000` into bytes.
pub(crate) fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 2GiB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown unit {other:?} in {text:?}")),
    };
    let bytes = number * scale;
    if bytes < 1.0 {
        return Err(format!("{text:?} is less than one byte"));
    }
    Ok(bytes as usize)
}

#[cfg(test)]
mod tests;
