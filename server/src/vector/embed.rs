//! Embedding providers behind one trait, and the built-in local model.
//!
//! The built-in model is sentence-transformers' all-MiniLM-L6-v2 (384 dimensions), run in
//! pure Rust with candle's `BertModel` and the `tokenizers` crate, on the CPU, offline.
//! Its files (`model.safetensors`, `tokenizer.json`, `config.json`) are unpacked by
//! `scripts/fetch-model.sh` into the models folder. Like sentence-transformers it
//! truncates at 256 tokens, mean-pools the last hidden state under the attention mask and
//! L2-normalises, so a dot product is the cosine similarity. Texts are sorted by length
//! and padded per sub-batch, so short texts don't pay for long ones.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// Name of the built-in model, as indexes and profiles record it.
pub(crate) const BUILTIN_MODEL: &str = "all-minilm-l6-v2";

/// The embedder name of the built-in model (configured HTTP embedders have others).
pub(crate) const BUILTIN: &str = crate::names::BUILTIN_EMBEDDER;

/// Tokens per text: sentence-transformers' `max_seq_length` for this model.
const MAX_TOKENS: usize = 256;

/// Texts per forward pass.
const SUB_BATCH: usize = 32;

/// Tokens of one chunk by default: the model's window less `[CLS]` and `[SEP]`.
pub(crate) const CHUNK_TOKENS: usize = MAX_TOKENS - 2;

/// Tokens two neighbouring chunks share by default.
pub(crate) const CHUNK_OVERLAP: usize = 32;

/// Errors of an embedding provider.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EmbedError {
    /// The model's files are missing or unreadable (FailedPrecondition).
    #[error("embedding model {model}: {message}")]
    Unavailable {
        /// The model.
        model: String,
        /// What is missing, and how to get it.
        message: String,
    },
    /// The model failed on this input (Internal).
    #[error("embedding with {model} failed: {message}")]
    Failed {
        /// The model.
        model: String,
        /// The error.
        message: String,
    },
}

/// Turns texts into vectors of one dimension.
#[async_trait::async_trait]
pub(crate) trait Embedder: Send + Sync {
    /// The model's id, recorded with every index built with it.
    fn model(&self) -> &str;

    /// Length of every vector.
    fn dimension(&self) -> usize;

    /// One vector per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// `text` cut into pieces of at most `max_tokens` tokens, neighbours sharing
    /// `overlap` of them (`overlap < max_tokens`), so no part of a long text is lost to
    /// the model's truncation. A short text is one piece. Providers without a tokenizer
    /// count whitespace-separated words.
    fn chunks<'a>(&self, text: &'a str, max_tokens: usize, overlap: usize) -> Vec<&'a str> {
        let words: Vec<(usize, usize)> = word_spans(text);
        windows(text, &words, max_tokens, overlap, |_| true)
    }
}

/// Byte spans of the whitespace-separated words of `text`.
fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}

/// Slices of `text` covering windows of at most `max_tokens` token spans, neighbours
/// sharing about `overlap`. Windows begin and end on tokens where `starts_word` holds (a
/// window never splits a word unless one word is longer than a window).
fn windows<'a>(
    text: &'a str,
    spans: &[(usize, usize)],
    max_tokens: usize,
    overlap: usize,
    starts_word: impl Fn(usize) -> bool,
) -> Vec<&'a str> {
    let max_tokens = max_tokens.max(1);
    let n = spans.len();
    if n <= max_tokens {
        return vec![text];
    }
    // The word start at or before `i`, but after `floor`.
    let snap = |mut i: usize, floor: usize| {
        while i > floor + 1 && !starts_word(i) {
            i -= 1;
        }
        i
    };
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let mut end = (start + max_tokens).min(n);
        if end < n {
            end = snap(end, start);
        }
        if let (Some(&(from, _)), Some(&(_, to))) = (spans.get(start), spans.get(end - 1))
            && let Some(piece) = text.get(from..to)
        {
            out.push(piece);
        }
        if end >= n {
            break;
        }
        let next = snap(end.saturating_sub(overlap).max(start + 1), start);
        start = next.max(start + 1);
    }
    if out.is_empty() {
        out.push(text);
    }
    out
}

/// all-MiniLM-L6-v2 on the CPU.
pub(crate) struct MiniLm {
    inner: Arc<Inner>,
}

struct Inner {
    model: BertModel,
    tokenizer: Tokenizer,
    /// The same vocabulary without truncation, to cut long texts into chunks.
    splitter: Tokenizer,
    device: Device,
}

impl MiniLm {
    /// Loads the model from `dir` (the folder holding `model.safetensors`).
    pub(crate) fn load(dir: &Path) -> Result<Self, EmbedError> {
        let unavailable = |message: String| EmbedError::Unavailable {
            model: BUILTIN_MODEL.into(),
            message,
        };
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|e| {
                unavailable(format!(
                    "cannot read {} ({e}); run scripts/fetch-model.sh to install it",
                    path.display()
                ))
            })
        };
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| unavailable(format!("config.json: {e}")))?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| unavailable(format!("tokenizer.json: {e}")))?;
        // The shipped tokenizer pads everything to 128 and truncates there; pad per
        // batch instead, truncate where sentence-transformers does.
        tokenizer.with_padding(None);
        let mut splitter = tokenizer.clone();
        splitter
            .with_truncation(None)
            .map_err(|e| unavailable(format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| unavailable(format!("tokenizer.json: {e}")))?;
        let device = Device::Cpu;
        let weights =
            VarBuilder::from_buffered_safetensors(read("model.safetensors")?, DType::F32, &device)
                .map_err(|e| unavailable(format!("model.safetensors: {e}")))?;
        let model = BertModel::load(weights, &config)
            .map_err(|e| unavailable(format!("model.safetensors: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                splitter,
                device,
            }),
        })
    }

    /// Loads the model from the models folder `models` (its `all-minilm-l6-v2/`).
    pub(crate) fn load_from(models: &Path) -> Result<Self, EmbedError> {
        Self::load(&models.join(BUILTIN_MODEL))
    }

    /// The files of the built-in model missing under `models` (none when it is
    /// installed), checked at start so a missing model is said at once, not at the
    /// first index build.
    pub(crate) fn missing_files(models: &Path) -> Vec<std::path::PathBuf> {
        ["config.json", "tokenizer.json", "model.safetensors"]
            .iter()
            .map(|name| models.join(BUILTIN_MODEL).join(name))
            .filter(|path| !path.is_file())
            .collect()
    }
}

impl Inner {
    fn failed(message: impl std::fmt::Display) -> EmbedError {
        EmbedError::Failed {
            model: BUILTIN_MODEL.into(),
            message: message.to_string(),
        }
    }

    /// Embeds texts, sorted by length, a sub-batch per forward pass.
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(Self::failed)?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(SUB_BATCH) {
            let longest = chunk
                .iter()
                .map(|&i| encodings[i].get_ids().len())
                .max()
                .unwrap_or(0)
                .max(1);
            let mut ids = Vec::with_capacity(chunk.len() * longest);
            let mut mask = Vec::with_capacity(chunk.len() * longest);
            for &i in chunk {
                let tokens = encodings[i].get_ids();
                ids.extend_from_slice(tokens);
                ids.extend(std::iter::repeat_n(0u32, longest - tokens.len()));
                mask.extend(std::iter::repeat_n(1u32, tokens.len()));
                mask.extend(std::iter::repeat_n(0u32, longest - tokens.len()));
            }
            let shape = (chunk.len(), longest);
            let ids = Tensor::from_vec(ids, shape, &self.device).map_err(Self::failed)?;
            let mask = Tensor::from_vec(mask, shape, &self.device).map_err(Self::failed)?;
            let types = ids.zeros_like().map_err(Self::failed)?;
            let vectors = self
                .pool(&ids, &types, &mask)
                .map_err(Self::failed)?
                .to_vec2::<f32>()
                .map_err(Self::failed)?;
            for (&i, vector) in chunk.iter().zip(vectors) {
                out[i] = vector;
            }
        }
        Ok(out)
    }

    /// Mean of the last hidden states under the mask, L2-normalised: (batch, 384).
    fn pool(&self, ids: &Tensor, types: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let hidden = self.model.forward(ids, types, Some(mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        mean.broadcast_div(&norms)
    }
}

#[async_trait::async_trait]
impl Embedder for MiniLm {
    fn model(&self) -> &str {
        BUILTIN_MODEL
    }

    fn dimension(&self) -> usize {
        384
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inner = Arc::clone(&self.inner);
        let texts = texts.to_vec();
        let started = std::time::Instant::now();
        let count = texts.len() as u64;
        let vectors = tokio::task::spawn_blocking(move || inner.embed(&texts))
            .await
            .map_err(Inner::failed)??;
        crate::observe::metrics().embedded(count, started.elapsed().as_secs_f64());
        Ok(vectors)
    }

    fn chunks<'a>(&self, text: &'a str, max_tokens: usize, overlap: usize) -> Vec<&'a str> {
        // Byte offsets of the word pieces; a text the tokenizer refuses is one piece
        // (the model then sees its first 256 tokens, as sentence-transformers would).
        match self.inner.splitter.encode(text, false) {
            Ok(encoding) => {
                let words = encoding.get_word_ids();
                let starts_word = |i: usize| {
                    i == 0
                        || words.get(i).copied().flatten().is_none()
                        || words.get(i) != words.get(i - 1)
                };
                windows(
                    text,
                    encoding.get_offsets(),
                    max_tokens,
                    overlap,
                    starts_word,
                )
            }
            Err(_) => vec![text],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Reference {
        sentences: Vec<String>,
        embeddings: Vec<Vec<f32>>,
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (na * nb)
    }

    /// Matches sentence-transformers' own output (tests/data/minilm_reference.json, made
    /// by scripts/minilm_reference.py) for every sentence, in one mixed-length batch.
    #[tokio::test]
    async fn matches_sentence_transformers() {
        let model = MiniLm::load_from(&crate::config::default_models_dir())
            .expect("the built-in model: run scripts/fetch-model.sh");
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/minilm_reference.json");
        let reference: Reference = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let ours = model.embed(&reference.sentences).await.unwrap();
        assert_eq!(ours.len(), reference.embeddings.len());
        for ((text, a), b) in reference
            .sentences
            .iter()
            .zip(&ours)
            .zip(&reference.embeddings)
        {
            assert_eq!(a.len(), 384);
            let similarity = cosine(a, b);
            assert!(similarity >= 0.999, "{similarity} for {text:?}");
            let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4);
        }
        // One at a time gives the same vectors as in a padded batch.
        let single = model.embed(&reference.sentences[..1]).await.unwrap();
        assert!(cosine(&single[0], &ours[0]) > 0.9999);
        // Related texts are closer than unrelated ones.
        let v = model
            .embed(&[
                "a cat sits on the mat".to_string(),
                "a kitten is resting on a rug".to_string(),
                "quarterly revenue grew by ten percent".to_string(),
            ])
            .await
            .unwrap();
        assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.2);
        // Chunks follow the model's tokens: none longer than asked, the whole text covered.
        let long = "Tokenization splits unbelievably long sentences. ".repeat(80);
        let pieces = model.chunks(&long, 100, 20);
        assert!(pieces.len() >= 4, "{}", pieces.len());
        for piece in &pieces {
            let tokens = model.inner.splitter.encode(*piece, false).unwrap().len();
            assert!(tokens <= 100, "{tokens} tokens");
        }
        assert!(long.starts_with(pieces[0]) && long.trim_end().ends_with(pieces[pieces.len() - 1]));
        assert_eq!(model.chunks("short text", 254, 32), vec!["short text"]);
    }

    #[test]
    fn windows_cover_the_text_with_overlap() {
        let text = "one two three four five six seven";
        let spans = word_spans(text);
        assert_eq!(spans.len(), 7);
        let every = |_: usize| true;
        assert_eq!(windows(text, &spans, 10, 2, every), vec![text]);
        assert_eq!(
            windows(text, &spans, 3, 1, every),
            vec!["one two three", "three four five", "five six seven"]
        );
        // The last window ends at the end; no overlap means a clean partition.
        assert_eq!(
            windows(text, &spans, 3, 0, every),
            vec!["one two three", "four five six", "seven"]
        );
        assert_eq!(windows("", &word_spans(""), 3, 1, every), vec![""]);
        // Pieces of one word (spans 1-2 and 4-5 continue a word) are never split.
        let pieces = "ab cd ef gh";
        let spans = [(0, 1), (1, 2), (3, 5), (6, 7), (7, 8), (9, 11)];
        let starts = |i: usize| ![1, 4].contains(&i);
        // Four tokens would end inside "ef": the window stops before it.
        assert_eq!(
            windows(pieces, &spans, 4, 0, starts),
            vec!["ab cd", "ef gh"]
        );
    }

    #[test]
    fn missing_files_say_how_to_get_them() {
        let error = MiniLm::load(Path::new("/nonexistent/model"))
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("scripts/fetch-model.sh"), "{error}");
    }
}
