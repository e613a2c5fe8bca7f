//! The vector tables of the `system` schema: `vector_indexes` and `vector_eval_sets`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field};
use arrow::error::ArrowError;
use async_trait::async_trait;

use super::index::Layout;
use super::service::VectorIndexes;
use crate::catalog::{Catalog, EvalSetEntry, IndexEntry};
use crate::query::SystemTable;
use crate::rows::{batch, micros, timestamp_field, timestamps, utf8};

/// `vector_indexes` or `vector_eval_sets`, as the session's profile sees them.
#[derive(Debug)]
pub(crate) struct VectorTable {
    name: &'static str,
    catalog: Arc<Catalog>,
    indexes: Arc<VectorIndexes>,
}

impl VectorTable {
    /// Both vector tables over `indexes` (and their catalog).
    pub(crate) fn all(indexes: &Arc<VectorIndexes>) -> [Arc<dyn SystemTable>; 2] {
        ["vector_indexes", "vector_eval_sets"].map(|name| {
            Arc::new(Self {
                name,
                catalog: Arc::clone(indexes.engine().catalog()),
                indexes: Arc::clone(indexes),
            }) as Arc<dyn SystemTable>
        })
    }
}

#[async_trait]
impl SystemTable for VectorTable {
    fn name(&self) -> &str {
        self.name
    }

    async fn rows(&self, profile: Option<&str>) -> datafusion::error::Result<RecordBatch> {
        let snapshot = self.catalog.snapshot();
        // A session bound to a profile sees only that profile's indexes and eval sets.
        let visible = |i: &IndexEntry| profile.is_none_or(|p| p == i.profile);
        let indexes: Vec<_> = snapshot.indexes.iter().filter(|i| visible(i)).collect();
        Ok(if self.name == "vector_indexes" {
            let layouts: Vec<Option<Layout>> = indexes
                .iter()
                .map(|i| self.indexes.layout(&i.name))
                .collect();
            vector_indexes(&indexes, &layouts)?
        } else {
            let sets: Vec<_> = snapshot
                .eval_sets
                .iter()
                .filter(|e| profile.is_none() || indexes.iter().any(|i| i.name == e.index))
                .collect();
            vector_eval_sets(&sets)?
        })
    }
}

/// Vector indexes: what each covers, how it was built, what it holds; for indexes
/// kept outside the server (lance), their layout once loaded (NULL before, and for
/// the other backends).
fn vector_indexes(
    indexes: &[&IndexEntry],
    layouts: &[Option<Layout>],
) -> Result<RecordBatch, ArrowError> {
    let strings = |f: &dyn Fn(&IndexEntry) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(indexes.iter().map(|i| f(i))))
    };
    let counts = |f: &dyn Fn(&Layout) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from(
            layouts
                .iter()
                .map(|l| l.as_ref().map(|l| f(l) as i64))
                .collect::<Vec<_>>(),
        ))
    };
    batch(
        vec![
            utf8("name", false),
            utf8("table_schema", false),
            utf8("table_name", false),
            utf8("text_column", false),
            utf8("vector_column", true),
            utf8("id_column", false),
            utf8("backend", false),
            utf8("metric", false),
            utf8("model", false),
            utf8("embedder", false),
            utf8("profile", true),
            Field::new("dimension", DataType::Int32, false),
            utf8("parameters", false),
            utf8("bucket", false),
            utf8("location", false),
            Field::new("source_version", DataType::Int64, false),
            Field::new("vectors", DataType::Int64, false),
            Field::new("rows", DataType::Int64, false),
            Field::new("bytes", DataType::Int64, false),
            Field::new("build_seconds", DataType::Float64, false),
            Field::new("embed_seconds", DataType::Float64, false),
            timestamp_field("built_at", true),
            utf8("index_type", true),
            Field::new("fragments", DataType::Int64, true),
            Field::new("indexed_rows", DataType::Int64, true),
            Field::new("unindexed_rows", DataType::Int64, true),
            Field::new("dataset_version", DataType::Int64, true),
        ],
        vec![
            strings(&|i| i.name.clone()),
            strings(&|i| i.schema.clone()),
            strings(&|i| i.table.clone()),
            strings(&|i| i.text_column.clone()),
            Arc::new(StringArray::from(
                indexes
                    .iter()
                    .map(|i| (!i.vector_column.is_empty()).then(|| i.vector_column.clone()))
                    .collect::<Vec<_>>(),
            )),
            strings(&|i| i.id_column.clone()),
            strings(&|i| i.build.backend.name().to_string()),
            strings(&|i| i.metric.clone()),
            strings(&|i| i.model.clone()),
            strings(&|i| super::service::embedder_name(i).to_string()),
            Arc::new(StringArray::from(
                indexes
                    .iter()
                    .map(|i| (!i.profile.is_empty()).then(|| i.profile.clone()))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int32Array::from_iter_values(
                indexes.iter().map(|i| i.dimension as i32),
            )),
            strings(&|i| i.build.parameters().to_string()),
            strings(&|i| i.bucket.clone()),
            strings(&|i| i.location.clone()),
            Arc::new(Int64Array::from_iter_values(
                indexes.iter().map(|i| i.source_version),
            )),
            Arc::new(Int64Array::from_iter_values(
                indexes.iter().map(|i| i.vectors as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                indexes.iter().map(|i| i.rows as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                indexes.iter().map(|i| i.bytes as i64),
            )),
            Arc::new(Float64Array::from_iter_values(
                indexes.iter().map(|i| i.build_seconds),
            )),
            Arc::new(Float64Array::from_iter_values(
                indexes.iter().map(|i| i.embed_seconds),
            )),
            timestamps(indexes.iter().map(|i| micros(&i.built_at)).collect()),
            Arc::new(StringArray::from(
                layouts
                    .iter()
                    .map(|l| l.as_ref().map(|l| l.index_type.clone()))
                    .collect::<Vec<_>>(),
            )),
            counts(&|l| l.fragments),
            counts(&|l| l.indexed_rows),
            counts(&|l| l.unindexed_rows),
            counts(&|l| l.version),
        ],
    )
}

/// Eval sets of vector indexes: what each holds and the index state its truth pins.
fn vector_eval_sets(sets: &[&EvalSetEntry]) -> Result<RecordBatch, ArrowError> {
    let strings = |f: &dyn Fn(&EvalSetEntry) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(sets.iter().map(|e| f(e))))
    };
    batch(
        vec![
            utf8("name", false),
            utf8("index_name", false),
            utf8("bucket", false),
            utf8("location", false),
            Field::new("queries", DataType::Int64, false),
            Field::new("depth", DataType::Int64, false),
            utf8("index_location", false),
            Field::new("source_version", DataType::Int64, false),
            Field::new("vectors", DataType::Int64, false),
            timestamp_field("created_at", true),
        ],
        vec![
            strings(&|e| e.name.clone()),
            strings(&|e| e.index.clone()),
            strings(&|e| e.bucket.clone()),
            strings(&|e| e.location.clone()),
            Arc::new(Int64Array::from_iter_values(
                sets.iter().map(|e| i64::from(e.queries)),
            )),
            Arc::new(Int64Array::from_iter_values(
                sets.iter().map(|e| i64::from(e.depth)),
            )),
            strings(&|e| e.index_location.clone()),
            Arc::new(Int64Array::from_iter_values(
                sets.iter().map(|e| e.source_version),
            )),
            Arc::new(Int64Array::from_iter_values(
                sets.iter().map(|e| e.vectors as i64),
            )),
            timestamps(sets.iter().map(|e| micros(&e.created_at)).collect()),
        ],
    )
}
