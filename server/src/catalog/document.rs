//! The persisted catalog document.

use std::collections::HashMap;

use lakehouse_flight_ext::v1::ColumnPii;
use lakehouse_index::Backend;
use serde::{Deserialize, Serialize};

use super::DEFAULT_SCHEMA;
use crate::storage::PRIMARY;

const FORMAT_VERSION: u32 = 1;

/// One listed table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    /// Schema (`public` for user tables).
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Bucket holding the Delta table.
    pub bucket: String,
    /// Folder of the Delta table inside the bucket, ending with `/`.
    pub location: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// PII findings of the detector, one per column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pii: Vec<ColumnPii>,
    /// Manual PII verdicts (`lakehouse.pii.mark`), which win over findings; an
    /// empty entity type means "not PII".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pii_manual: Vec<ColumnPii>,
    /// Incremental-ingest watermarks: "source | column" → the highest value ingested.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub watermarks: std::collections::BTreeMap<String, String>,
    /// Versions below this one lost files to `lakehouse.table.vacuum` and can no
    /// longer be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vacuumed_before: Option<i64>,
}

impl TableEntry {
    /// A new entry with a fresh, unique location.
    pub fn new(schema: &str, name: &str, bucket: &str) -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        Self {
            schema: schema.to_string(),
            name: name.to_string(),
            bucket: bucket.to_string(),
            location: format!("tables/{schema}/{name}-{}/", &suffix[..12]),
            created_at: chrono::Utc::now().to_rfc3339(),
            pii: Vec::new(),
            pii_manual: Vec::new(),
            watermarks: Default::default(),
            vacuumed_before: None,
        }
    }

    /// An entry for a Delta table at `location` that the catalog does not list (an
    /// index's vectors): `schema.name` only names it in messages.
    pub fn unlisted(schema: &str, name: &str, bucket: &str, location: &str) -> Self {
        Self {
            location: location.to_string(),
            ..Self::new(schema, name, bucket)
        }
    }

    /// `schema.name`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// PII of the table: findings, with manual verdicts on top.
    pub fn effective_pii(&self) -> Vec<ColumnPii> {
        effective_pii(&self.pii, &self.pii_manual)
    }
}

/// Everything the catalog persists, written as one JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CatalogDocument {
    format_version: u32,
    /// User schemas, sorted.
    pub schemas: Vec<String>,
    /// Listed tables.
    pub tables: Vec<TableEntry>,
    /// Vector indexes over tables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexEntry>,
    /// Eval sets of vector indexes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eval_sets: Vec<EvalSetEntry>,
    /// Model profiles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<ProfileEntry>,
    /// The profile that held the GPU slot when last activated; the server activates
    /// it again when it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_profile: Option<String>,
}

/// A model profile: the embedder, optional LLM, home bucket and vector backend that
/// belong together (see `profiles`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProfileEntry {
    /// Profile name (unique).
    pub name: String,
    /// `builtin` or a configured embedder (`[embedders.NAME]`).
    pub embedder: String,
    /// A configured LLM (`[llms.NAME]`); empty for none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub llm: String,
    /// Home bucket of its indexes.
    pub bucket: String,
    /// Vector backend of its indexes.
    pub backend: String,
    /// RFC 3339.
    pub created_at: String,
}

/// Queries with their ground truth (the exact nearest rows over an index's vectors at
/// one moment), stored as a Delta table under `location` in `bucket`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EvalSetEntry {
    /// Set name (unique).
    pub name: String,
    /// The index whose vectors defined the truth.
    pub index: String,
    /// Home bucket of the set's files.
    pub bucket: String,
    /// Folder of the set in its bucket, ending with `/`.
    pub location: String,
    /// Queries held.
    pub queries: u32,
    /// Exact nearest rows kept per query.
    pub depth: u32,
    /// The index build the truth was computed over (its location).
    pub index_location: String,
    /// Source table version that build covered then.
    pub source_version: i64,
    /// Vectors the index held then.
    pub vectors: u64,
    /// RFC 3339.
    pub created_at: String,
}

/// A vector index over a table's text column; its files live under `location` in
/// `bucket` (the index's home bucket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct IndexEntry {
    /// Index name (unique).
    pub name: String,
    /// Source table's schema.
    pub schema: String,
    /// Source table.
    pub table: String,
    /// Column embedded; empty for an index over `vector_column`.
    pub text_column: String,
    /// The column of precomputed vectors indexed as they are; empty for an index
    /// over `text_column`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vector_column: String,
    /// Integer id column.
    pub id_column: String,
    /// Backend, its parameters and the chunking (recorded as `backend` and
    /// `parameters`).
    #[serde(flatten)]
    pub build: IndexBuild,
    /// `cosine`, `l2` or `dot`.
    pub metric: String,
    /// Embedding model id; empty for an index over precomputed vectors that names
    /// no embedder (it is searched by vector only).
    pub model: String,
    /// The configured embedder (`[embedders.NAME]`) it embeds with; empty for the
    /// built-in model.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub embedder: String,
    /// Vector length.
    pub dimension: u32,
    /// Home bucket.
    pub bucket: String,
    /// Folder of the index in its bucket, ending with `/`.
    pub location: String,
    /// Delta version of the source table it was built from.
    pub source_version: i64,
    /// Vectors held (a long text has one per chunk).
    pub vectors: u64,
    /// Source rows covered.
    #[serde(default)]
    pub rows: u64,
    /// Memory of the in-process index.
    pub bytes: u64,
    /// Seconds to build (embedding included).
    pub build_seconds: f64,
    /// Seconds spent embedding.
    pub embed_seconds: f64,
    /// RFC 3339.
    pub built_at: String,
    /// The model profile it belongs to; empty for none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub profile: String,
}

/// How an index was built: the backend with its typed parameters, and how long
/// texts were cut. Recorded as `"backend": "hnsw", "parameters": {"m": 16, …,
/// "chunk_tokens": 254, "chunk_overlap": 32}`, the form this release has always
/// written, so older catalogs read back as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RecordedBuild", into = "RecordedBuild")]
pub(crate) struct IndexBuild {
    /// The backend and its parameters.
    pub backend: Backend,
    /// Tokens per chunk (`None`: recorded before chunking was configurable).
    pub chunk_tokens: Option<usize>,
    /// Tokens neighbouring chunks share.
    pub chunk_overlap: Option<usize>,
}

impl IndexBuild {
    /// The parameters as one JSON object (what `system.vector_indexes` shows).
    pub(crate) fn parameters(&self) -> serde_json::Value {
        let mut parameters = self.backend.parameters();
        if let Some(object) = parameters.as_object_mut() {
            if let Some(tokens) = self.chunk_tokens {
                object.insert("chunk_tokens".into(), tokens.into());
            }
            if let Some(overlap) = self.chunk_overlap {
                object.insert("chunk_overlap".into(), overlap.into());
            }
        }
        parameters
    }
}

/// [`IndexBuild`] as the catalog document holds it.
#[derive(Serialize, Deserialize)]
struct RecordedBuild {
    backend: String,
    #[serde(default)]
    parameters: serde_json::Value,
}

impl TryFrom<RecordedBuild> for IndexBuild {
    type Error = String;

    fn try_from(recorded: RecordedBuild) -> Result<Self, String> {
        let number = |key: &str| {
            recorded
                .parameters
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .map(|v| v as usize)
        };
        Ok(Self {
            backend: Backend::recorded(&recorded.backend, &recorded.parameters)
                .map_err(|e| e.to_string())?,
            chunk_tokens: number("chunk_tokens"),
            chunk_overlap: number("chunk_overlap"),
        })
    }
}

impl From<IndexBuild> for RecordedBuild {
    fn from(build: IndexBuild) -> Self {
        Self {
            backend: build.backend.name().to_string(),
            parameters: build.parameters(),
        }
    }
}

impl CatalogDocument {
    /// The catalog of a fresh data directory: schema `public`, no tables.
    pub(crate) fn new() -> Self {
        Self {
            format_version: FORMAT_VERSION,
            schemas: vec![DEFAULT_SCHEMA.to_string()],
            tables: Vec::new(),
            indexes: Vec::new(),
            eval_sets: Vec::new(),
            profiles: Vec::new(),
            active_profile: None,
        }
    }

    /// Finds a profile.
    pub(crate) fn profile(&self, name: &str) -> Option<&ProfileEntry> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// Finds a table.
    pub(crate) fn table(&self, schema: &str, name: &str) -> Option<&TableEntry> {
        self.tables
            .iter()
            .find(|t| t.schema == schema && t.name == name)
    }

    /// Tables of one schema, sorted by name.
    pub(crate) fn tables_in(&self, schema: &str) -> Vec<&TableEntry> {
        let mut tables: Vec<_> = self.tables.iter().filter(|t| t.schema == schema).collect();
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        tables
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let doc: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if doc.format_version != FORMAT_VERSION {
            return Err(format!(
                "format version {} is not supported",
                doc.format_version
            ));
        }
        if doc.tables.iter().any(|t| t.bucket.is_empty()) {
            return Err(format!(
                "a table entry has no bucket (expected e.g. {PRIMARY:?})"
            ));
        }
        Ok(doc)
    }

    pub(super) fn encode(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec_pretty(self).map_err(|e| e.to_string())
    }
}

impl Default for CatalogDocument {
    fn default() -> Self {
        Self::new()
    }
}

/// The effective PII of a table: detector findings, with manual verdicts on top
/// (a manual verdict with no entity type hides the column's finding).
fn effective_pii(detected: &[ColumnPii], manual: &[ColumnPii]) -> Vec<ColumnPii> {
    let mut by_column: HashMap<&str, &ColumnPii> =
        detected.iter().map(|f| (f.column.as_str(), f)).collect();
    for verdict in manual {
        by_column.insert(verdict.column.as_str(), verdict);
    }
    let mut out: Vec<ColumnPii> = by_column
        .into_values()
        .filter(|f| !f.entity_type.is_empty())
        .cloned()
        .collect();
    out.sort_by(|a, b| a.column.cmp(&b.column));
    out
}
