//! HTTP embedding providers: Ollama (`POST /api/embed`) and OpenAI-compatible services
//! (`POST /v1/embeddings`, float or base64 vectors).
//!
//! Texts go in batches of at most `batch_size`; each request has a timeout and is retried
//! with exponential backoff when the service can't be reached, is overloaded (429) or
//! fails (5xx). Errors name the service and model and say what to check; API keys never
//! appear in them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use super::embed::{EmbedError, Embedder};

/// Which wire protocol a service speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Ollama's `/api/embed`.
    Ollama,
    /// OpenAI's `/v1/embeddings` (also vLLM, LM Studio, llama.cpp server, TEI…).
    OpenAi,
}

/// How to reach an HTTP embedding service.
#[derive(Debug, Clone)]
pub(crate) struct HttpOptions {
    /// Base URL, e.g. `http://127.0.0.1:11434` (Ollama) or `https://api.openai.com`.
    pub url: String,
    /// The model name the service knows.
    pub model: String,
    /// Bearer token (OpenAI-compatible services).
    pub api_key: Option<String>,
    /// Texts per request.
    pub batch_size: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// First backoff; doubles on every retry.
    pub backoff: Duration,
    /// OpenAI: ask for base64-encoded vectors (smaller responses).
    pub base64: bool,
}

impl HttpOptions {
    /// Defaults for `url` and `model`: 64 texts per request, 60 s timeout, 3 retries
    /// from 500 ms.
    pub(crate) fn new(url: &str, model: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key: None,
            batch_size: 64,
            timeout: Duration::from_secs(60),
            retries: 3,
            backoff: Duration::from_millis(500),
            base64: false,
        }
    }
}

impl Protocol {
    /// `ollama` or `openai`, as configured.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "ollama" => Some(Self::Ollama),
            "openai" => Some(Self::OpenAi),
            _ => None,
        }
    }
}

/// The protocol and options of a configured `[embedders.NAME]`, its API key read
/// from the environment variable or file it names.
pub(crate) fn configured(
    name: &str,
    config: &crate::config::EmbedderConfig,
) -> Result<(Protocol, HttpOptions), EmbedError> {
    let unavailable = |message: String| EmbedError::Unavailable {
        model: format!("embedder {name}"),
        message,
    };
    let protocol = Protocol::parse(&config.protocol).ok_or_else(|| {
        unavailable(format!(
            "protocol {:?} is not ollama or openai",
            config.protocol
        ))
    })?;
    let api_key = match (&config.api_key_env, &config.api_key_file) {
        (Some(variable), _) => Some(std::env::var(variable).map_err(|_| {
            unavailable(format!(
                "environment variable {variable} (api_key_env) is not set on the server"
            ))
        })?),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    unavailable(format!("cannot read api_key_file {}: {e}", path.display()))
                })?
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    let defaults = HttpOptions::new(&config.url, &config.model);
    Ok((
        protocol,
        HttpOptions {
            api_key,
            batch_size: config.batch_size.unwrap_or(defaults.batch_size),
            timeout: config
                .timeout_secs
                .map_or(defaults.timeout, Duration::from_secs),
            retries: config.retries.unwrap_or(defaults.retries),
            base64: config.base64.unwrap_or(defaults.base64),
            ..defaults
        },
    ))
}

/// An embedding service over HTTP; the dimension is learnt from its first answer.
pub(crate) struct HttpEmbedder {
    protocol: Protocol,
    options: HttpOptions,
    client: reqwest::Client,
    dimension: usize,
    id: String,
    /// Set while the GPU slot holds the model: Ollama is asked to keep it loaded.
    pinned: Arc<AtomicBool>,
}

impl HttpEmbedder {
    /// Connects to the service and learns the model's dimension with one short text, so
    /// a service that is down or a model that is unknown fails here, clearly. While
    /// `pinned` is set, Ollama requests carry `keep_alive: -1` so the model stays loaded.
    pub(crate) async fn connect(
        protocol: Protocol,
        options: HttpOptions,
        pinned: Arc<AtomicBool>,
    ) -> Result<Self, EmbedError> {
        if options.batch_size == 0 {
            return Err(EmbedError::Unavailable {
                model: options.model.clone(),
                message: "batch_size must be at least 1".into(),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| EmbedError::Unavailable {
                model: options.model.clone(),
                message: e.to_string(),
            })?;
        let prefix = match protocol {
            Protocol::Ollama => "ollama",
            Protocol::OpenAi => "openai",
        };
        let mut embedder = Self {
            id: format!("{prefix}:{}", options.model),
            protocol,
            options,
            client,
            dimension: 0,
            pinned,
        };
        let probe = embedder.request(&["dimension probe".to_string()]).await?;
        embedder.dimension = probe.first().map_or(0, Vec::len);
        if embedder.dimension == 0 {
            return Err(embedder.failed("the service returned an empty vector".into()));
        }
        Ok(embedder)
    }

    fn endpoint(&self) -> String {
        match self.protocol {
            Protocol::Ollama => format!("{}/api/embed", self.options.url),
            Protocol::OpenAi if self.options.url.ends_with("/v1") => {
                format!("{}/embeddings", self.options.url)
            }
            Protocol::OpenAi => format!("{}/v1/embeddings", self.options.url),
        }
    }

    fn failed(&self, message: String) -> EmbedError {
        EmbedError::Failed {
            model: self.id.clone(),
            message,
        }
    }

    /// One batch, with retries.
    async fn request(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = match self.protocol {
            Protocol::Ollama if self.pinned.load(Ordering::Relaxed) => {
                json!({"model": self.options.model, "input": texts, "keep_alive": -1})
            }
            Protocol::Ollama => json!({"model": self.options.model, "input": texts}),
            Protocol::OpenAi => json!({
                "model": self.options.model,
                "input": texts,
                "encoding_format": if self.options.base64 { "base64" } else { "float" },
            }),
        };
        let body = body.to_string();
        let endpoint = self.endpoint();
        let mut delay = self.options.backoff;
        let mut attempt = 0;
        loop {
            let mut request = self
                .client
                .post(&endpoint)
                .header("content-type", "application/json")
                .body(body.clone());
            if let Some(key) = &self.options.api_key {
                request = request.bearer_auth(key);
            }
            let outcome = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let bytes = response.bytes().await.unwrap_or_default();
                    if status.is_success() {
                        return self.parse(&bytes, texts.len());
                    }
                    let message = error_message(&bytes);
                    let retry = status.as_u16() == 429 || status.is_server_error();
                    let error = match status.as_u16() {
                        401 | 403 => EmbedError::Unavailable {
                            model: self.id.clone(),
                            message: format!(
                                "{endpoint} refused the credentials ({status}): {message}"
                            ),
                        },
                        404 => EmbedError::Unavailable {
                            model: self.id.clone(),
                            message: format!(
                                "{endpoint} answered 404: {message} (is the model pulled / the URL right?)"
                            ),
                        },
                        _ => self.failed(format!("{endpoint} answered {status}: {message}")),
                    };
                    (error, retry)
                }
                Err(e) => {
                    let what = if e.is_timeout() {
                        format!("no answer within {:?}", self.options.timeout)
                    } else {
                        format!("cannot reach it ({})", source_chain(&e))
                    };
                    let hint = match self.protocol {
                        Protocol::Ollama => "; is Ollama running (`ollama serve`)?",
                        Protocol::OpenAi => "",
                    };
                    (
                        EmbedError::Unavailable {
                            model: self.id.clone(),
                            message: format!("{endpoint}: {what}{hint}"),
                        },
                        true,
                    )
                }
            };
            let (error, retry) = outcome;
            if !retry || attempt >= self.options.retries {
                return Err(error);
            }
            attempt += 1;
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }

    fn parse(&self, bytes: &[u8], expected: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| self.failed(format!("the answer is not JSON ({e})")))?;
        let vectors: Vec<Vec<f32>> = match self.protocol {
            Protocol::Ollama => value
                .get("embeddings")
                .and_then(Value::as_array)
                .ok_or_else(|| self.failed("the answer has no \"embeddings\"".into()))?
                .iter()
                .map(|v| {
                    floats(v)
                        .ok_or_else(|| self.failed("an embedding is not a list of numbers".into()))
                })
                .collect::<Result<_, _>>()?,
            Protocol::OpenAi => {
                let data = value
                    .get("data")
                    .and_then(Value::as_array)
                    .ok_or_else(|| self.failed("the answer has no \"data\"".into()))?;
                let mut indexed = Vec::with_capacity(data.len());
                for (position, item) in data.iter().enumerate() {
                    let index = item
                        .get("index")
                        .and_then(Value::as_u64)
                        .map_or(position, |i| i as usize);
                    let embedding = item
                        .get("embedding")
                        .ok_or_else(|| self.failed("an item has no \"embedding\"".into()))?;
                    let vector = match embedding {
                        Value::String(encoded) => decode_base64(encoded).ok_or_else(|| {
                            self.failed("a base64 embedding does not decode to floats".into())
                        })?,
                        other => floats(other).ok_or_else(|| {
                            self.failed("an embedding is not a list of numbers".into())
                        })?,
                    };
                    indexed.push((index, vector));
                }
                indexed.sort_by_key(|(i, _)| *i);
                indexed.into_iter().map(|(_, v)| v).collect()
            }
        };
        if vectors.len() != expected {
            return Err(self.failed(format!(
                "asked for {expected} embeddings, got {}",
                vectors.len()
            )));
        }
        if self.dimension > 0 && vectors.iter().any(|v| v.len() != self.dimension) {
            return Err(self.failed(format!(
                "the service changed dimension (expected {})",
                self.dimension
            )));
        }
        Ok(vectors)
    }
}

fn floats(value: &Value) -> Option<Vec<f32>> {
    value
        .as_array()?
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32))
        .collect()
}

fn decode_base64(text: &str) -> Option<Vec<f32>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

/// The error's message as the service put it (`error`, `error.message`), else the body.
fn error_message(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    let message = parsed.as_ref().and_then(|v| match v.get("error") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("message").and_then(Value::as_str).map(String::from),
        _ => None,
    });
    let mut message = message.unwrap_or_else(|| text.trim().to_string());
    message.truncate(500);
    message
}

fn source_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(inner) = source {
        parts.push(inner.to_string());
        source = inner.source();
    }
    parts.join(": ")
}

#[async_trait::async_trait]
impl Embedder for HttpEmbedder {
    fn model(&self) -> &str {
        &self.id
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.options.batch_size) {
            out.extend(self.request(batch).await?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
