//! The Ollama calls the GPU slot makes: preload a model and pin it (`keep_alive: -1`),
//! unload one (`keep_alive: 0`), and list what is loaded (`GET /api/ps`).

use std::time::Duration;

use serde_json::{Value, json};

/// Text embedded to load an embedding model (Ollama loads a model on its first request).
const WARM_UP: &str = "lakehouse warm-up";

/// How a model was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// An embedding model: loaded by embedding a short text.
    Embedding,
    /// A generative model: loaded by an empty generate request.
    Generative,
}

/// An HTTP client for Ollama's model-management calls.
#[derive(Debug, Clone)]
pub(super) struct Ollama {
    client: reqwest::Client,
}

/// What `/api/ps` says about one loaded model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Loaded {
    pub size: Option<u64>,
    pub size_vram: Option<u64>,
}

impl Ollama {
    pub(super) fn new() -> Self {
        Self {
            client: reqwest::Client::new(),
        }
    }

    /// Loads `model` at `url` and pins it in memory until it is unloaded.
    pub(super) async fn load(
        &self,
        url: &str,
        model: &str,
        kind: Kind,
        timeout: Duration,
    ) -> Result<(), String> {
        let (endpoint, body) = match kind {
            Kind::Embedding => (
                "api/embed",
                json!({"model": model, "input": [WARM_UP], "keep_alive": -1}),
            ),
            Kind::Generative => (
                "api/generate",
                json!({"model": model, "keep_alive": -1, "stream": false}),
            ),
        };
        self.post(url, endpoint, &body, timeout).await.map(drop)
    }

    /// Asks Ollama to unload `model` now (what `ollama stop` does).
    pub(super) async fn unload(
        &self,
        url: &str,
        model: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let body = json!({"model": model, "keep_alive": 0, "stream": false});
        self.post(url, "api/generate", &body, timeout)
            .await
            .map(drop)
    }

    /// The models Ollama at `url` holds, by name.
    pub(super) async fn loaded(&self, url: &str) -> Result<Vec<(String, Loaded)>, String> {
        let endpoint = format!("{}/api/ps", url.trim_end_matches('/'));
        let response = self
            .client
            .get(&endpoint)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("{endpoint}: {e}"))?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("{endpoint}: {e}"))?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{endpoint}: the answer is not JSON ({e})"))?;
        let models = value
            .get("models")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(models
            .iter()
            .filter_map(|m| {
                let name = m
                    .get("name")
                    .or_else(|| m.get("model"))
                    .and_then(Value::as_str)?;
                let loaded = Loaded {
                    size: m.get("size").and_then(Value::as_u64),
                    size_vram: m.get("size_vram").and_then(Value::as_u64),
                };
                Some((name.to_string(), loaded))
            })
            .collect())
    }

    async fn post(
        &self,
        url: &str,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        let endpoint = format!("{}/{path}", url.trim_end_matches('/'));
        let response = self
            .client
            .post(&endpoint)
            .timeout(timeout)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    format!("{endpoint}: no answer within {timeout:?}")
                } else {
                    format!(
                        "{endpoint}: cannot reach it ({e}); is Ollama running (`ollama serve`)?"
                    )
                }
            })?;
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            let message = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| text.chars().take(300).collect());
            let hint = if status.as_u16() == 404 {
                " (is the model pulled: `ollama pull`?)"
            } else {
                ""
            };
            return Err(format!("{endpoint} answered {status}: {message}{hint}"));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("{endpoint}: the answer is not JSON ({e})"))
    }
}

/// Whether Ollama's name for a loaded model is `model` (Ollama adds `:latest` to a
/// name without a tag).
pub(super) fn same_model(loaded: &str, model: &str) -> bool {
    let tagged = |name: &str| {
        if name.contains(':') {
            name.to_string()
        } else {
            format!("{name}:latest")
        }
    };
    tagged(loaded) == tagged(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_match_with_and_without_the_latest_tag() {
        assert!(same_model("nomic-embed-text:latest", "nomic-embed-text"));
        assert!(same_model("llama3.2:3b", "llama3.2:3b"));
        assert!(!same_model("llama3.2:3b", "llama3.2"));
        assert!(!same_model("qwen:latest", "llama"));
    }
}
