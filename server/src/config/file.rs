//! The TOML config file: its keys, the configured LLMs, embedders and source
//! databases, and their checks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use crate::names::BUILTIN_EMBEDDER;

/// Keys of `lakehouse.toml`. All optional; see [`Settings`] for defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub memory_limit: Option<String>,
    pub target_partitions: Option<usize>,
    pub batch_size: Option<usize>,
    pub primary_url: Option<String>,
    pub rescue_url: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    pub s3_allow_http: Option<bool>,
    pub log: Option<String>,
    pub demo: Option<bool>,
    pub demo_scale: Option<f64>,
    /// User name → argon2 PHC hash (`lakehouse hash-password`). Empty: no authentication.
    pub users: Option<HashMap<String, String>>,
    pub token_ttl_secs: Option<u64>,
    pub allow_anonymous: Option<bool>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub max_message_size: Option<String>,
    pub max_concurrent_queries: Option<usize>,
    pub query_timeout_secs: Option<u64>,
    pub lineage_endpoint: Option<String>,
    pub otlp_endpoint: Option<String>,
    pub otlp_service_name: Option<String>,
    pub max_running_jobs: Option<usize>,
    /// Named source databases for `lakehouse.ingest.postgres|mysql`.
    pub connections: Option<HashMap<String, ConnectionConfig>>,
    pub models_dir: Option<PathBuf>,
    pub faiss_worker: Option<PathBuf>,
    pub lance_worker: Option<PathBuf>,
    pub worker_dir: Option<PathBuf>,
    /// Folders under which `lakehouse.bucket.add` may create local buckets.
    pub local_bucket_roots: Option<Vec<PathBuf>>,
    pub metrics_listen: Option<String>,
    pub log_format: Option<String>,
    pub shutdown_grace_secs: Option<u64>,
    /// Named HTTP embedding services indexes may be built with.
    pub embedders: Option<HashMap<String, EmbedderConfig>>,
    /// Named LLMs model profiles may load into the GPU slot.
    pub llms: Option<HashMap<String, LlmConfig>>,
}

/// `[llms.NAME]`: an LLM a model profile names; activating the profile loads it into
/// the GPU slot (Ollama) or checks nothing (an OpenAI-compatible service manages its
/// own models).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LlmConfig {
    /// `ollama` or `openai`.
    pub protocol: String,
    /// Base URL, e.g. `http://127.0.0.1:11434`.
    pub url: String,
    /// The model name the service knows, e.g. `llama3.2`.
    pub model: String,
    /// Seconds to wait for the model to load [default: 300].
    pub timeout_secs: Option<u64>,
}

/// `[embedders.NAME]`: an HTTP embedding service (Ollama or OpenAI-compatible) a
/// vector index may be built with instead of the built-in model. The index records
/// the name, so searches and refreshes embed with the same service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmbedderConfig {
    /// `ollama` (`POST /api/embed`) or `openai` (`POST /v1/embeddings`).
    pub protocol: String,
    /// Base URL, e.g. `http://127.0.0.1:11434`.
    pub url: String,
    /// The model name the service knows, e.g. `nomic-embed-text`.
    pub model: String,
    /// Environment variable holding the API key (sent as a bearer token).
    pub api_key_env: Option<String>,
    /// File holding the API key; surrounding white space is ignored.
    pub api_key_file: Option<PathBuf>,
    /// Texts per request [default: 64].
    pub batch_size: Option<usize>,
    /// Per-request timeout in seconds [default: 60].
    pub timeout_secs: Option<u64>,
    /// Retries of a request that failed to connect, timed out, or got 429/5xx [default: 3].
    pub retries: Option<u32>,
    /// OpenAI protocol: ask for base64-encoded vectors [default: false].
    pub base64: Option<bool>,
}

/// Checks the name, protocol, URL and model of `[<section>.NAME]` (an HTTP model service).
pub(super) fn check_service(
    section: &'static str,
    name: &str,
    protocol: &str,
    url: &str,
    model: &str,
) -> Result<(), ConfigError> {
    let invalid = |message: String| ConfigError::Value {
        key: section,
        message: format!("{} {name:?}: {message}", section.trim_end_matches('s')),
    };
    if name == BUILTIN_EMBEDDER || crate::names::check(name).is_err() {
        return Err(invalid(format!(
            "the name must be letters, digits and '_', and not {BUILTIN_EMBEDDER:?}"
        )));
    }
    if !matches!(protocol, "ollama" | "openai") {
        return Err(invalid(format!(
            "protocol {protocol:?} is not ollama or openai"
        )));
    }
    let parsed =
        url::Url::parse(url).map_err(|e| invalid(format!("url {url:?} is not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "url scheme {:?} is not http or https",
            parsed.scheme()
        )));
    }
    if model.trim().is_empty() {
        return Err(invalid("model is empty".into()));
    }
    Ok(())
}

/// `[connections.NAME]`: a source database callers name instead of giving a DSN,
/// so its password stays with the server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectionConfig {
    /// `postgres://user@host:5432/db` or `mysql://user@host:3306/db`, without a password.
    pub url: String,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// File holding the password (a mounted secret); surrounding white space is ignored.
    pub password_file: Option<PathBuf>,
}

/// A named connection must be a postgres/mysql URL without a password, and name at
/// most one password source.
pub(super) fn check_connection(
    name: &str,
    connection: &ConnectionConfig,
) -> Result<(), ConfigError> {
    let invalid = |message: String| ConfigError::Value {
        key: "connections",
        message: format!("connection {name:?}: {message}"),
    };
    let url = url::Url::parse(&connection.url).map_err(|e| {
        invalid(format!(
            "url {:?} is not a URL ({e})",
            crate::secrets::redact(&connection.url)
        ))
    })?;
    if !matches!(
        url.scheme(),
        "postgres" | "postgresql" | "mysql" | "mariadb"
    ) {
        return Err(invalid(format!(
            "url scheme {:?} is not postgres, postgresql, mysql or mariadb",
            url.scheme()
        )));
    }
    if url.password().is_some() {
        return Err(invalid(
            "the url holds a password; move it to password_env or password_file".into(),
        ));
    }
    if connection.password_env.is_some() && connection.password_file.is_some() {
        return Err(invalid(
            "set password_env or password_file, not both".into(),
        ));
    }
    Ok(())
}

pub(super) fn check_embedder(name: &str, embedder: &EmbedderConfig) -> Result<(), ConfigError> {
    check_service(
        "embedders",
        name,
        &embedder.protocol,
        &embedder.url,
        &embedder.model,
    )?;
    let invalid = |message: String| ConfigError::Value {
        key: "embedders",
        message: format!("embedder {name:?}: {message}"),
    };
    if embedder.api_key_env.is_some() && embedder.api_key_file.is_some() {
        return Err(invalid("set api_key_env or api_key_file, not both".into()));
    }
    if embedder.batch_size == Some(0) {
        return Err(invalid("batch_size must be at least 1".into()));
    }
    Ok(())
}

pub(super) fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.into(),
        source,
    })
}
