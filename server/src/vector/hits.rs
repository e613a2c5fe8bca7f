//! Shaping hits for the client: each hit's text, the requested columns of its row
//! (in hit order, null for a row deleted meanwhile), and the Arrow batch of
//! `id, score, distance, text, rank, columns…` that DoGet and the SQL table
//! functions stream.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, Float32Array, Int32Array, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use lakehouse_flight_ext::v1::VectorHit;

use super::error::{VectorError, internal};
use super::search::{Found, Search};
use super::service::VectorIndexes;
use crate::catalog::{IndexEntry, TableEntry};
use crate::query::SessionDefaults;

impl VectorIndexes {
    /// The hits with their rows' texts; rows gone from the table are dropped.
    pub(super) async fn with_texts(
        &self,
        entry: &IndexEntry,
        table: &TableEntry,
        found: Vec<Found>,
    ) -> Result<Vec<VectorHit>, VectorError> {
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let list = found
            .iter()
            .map(|h| h.id.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        // An index over precomputed vectors has no text: its hits' text is empty.
        let text = if entry.text_column.is_empty() {
            "NULL".to_string()
        } else {
            quoted(&entry.text_column)
        };
        let sql = format!(
            "SELECT CAST({} AS BIGINT), CAST({text} AS VARCHAR) FROM {} WHERE {} IN ({list})",
            quoted(&entry.id_column),
            quoted_table(table),
            quoted(&entry.id_column),
        );
        let mut texts = HashMap::new();
        for batch in self.collect(&sql).await.map_err(internal)? {
            let id = batch.column(0).as_primitive::<Int64Type>();
            let text = arrow::compute::cast(batch.column(1), &DataType::Utf8).map_err(internal)?;
            let text = text.as_string::<i32>();
            for i in 0..batch.num_rows() {
                texts.insert(id.value(i), text.value(i).to_string());
            }
        }
        Ok(found
            .into_iter()
            .filter_map(|h| {
                Some(VectorHit {
                    id: h.id,
                    // Text hits have no vector distance (NaN inside).
                    distance: (!h.distance.is_nan()).then_some(h.distance),
                    text: texts.remove(&h.id)?,
                    score: h.score,
                })
            })
            .collect())
    }

    /// The index, its table and the fields of the requested `columns` (the source
    /// schema is read only when there are such columns).
    pub(super) async fn hit_columns(
        &self,
        name: &str,
        columns: &[String],
    ) -> Result<(IndexEntry, TableEntry, Vec<Field>), VectorError> {
        let catalog = self.engine.catalog();
        let Some(entry) = catalog.index(name) else {
            return Err(VectorError::NotFound(format!(
                "vector index {name} does not exist (see system.vector_indexes)"
            )));
        };
        let table = catalog
            .table(&entry.schema, &entry.table)
            .map_err(|e| VectorError::NotFound(format!("the source table of index {name}: {e}")))?;
        let extra = extra_columns(&entry, columns)?;
        let mut fields = Vec::with_capacity(extra.len());
        if !extra.is_empty() {
            let source = catalog.table_schema(&table).await.map_err(internal)?;
            for column in extra {
                let field = source.field_with_name(column).map_err(|_| {
                    VectorError::NotFound(format!(
                        "columns: table {} has no column {column:?}",
                        table.qualified_name()
                    ))
                })?;
                fields.push(field.as_ref().clone().with_nullable(true));
            }
        }
        Ok((entry, table, fields))
    }

    /// The schema of [`Self::hits_batch`] for `columns` of index `name`'s table.
    pub(crate) async fn hits_schema_for(
        &self,
        name: &str,
        columns: &[String],
    ) -> Result<SchemaRef, VectorError> {
        let (_, _, extra) = self.hit_columns(name, columns).await?;
        Ok(Arc::new(Schema::new([hit_fields(), extra].concat())))
    }

    /// The hits of `search` as one Arrow batch: `id`, `score`, `distance` (null where
    /// unknown), `text`, `rank` (from 1), then `columns` of the source table.
    pub(crate) async fn hits_batch(
        &self,
        search: &Search,
        columns: &[String],
    ) -> Result<RecordBatch, VectorError> {
        let (entry, table, extra) = self.hit_columns(&search.index, columns).await?;
        let hits = self.search(search).await?;
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(hits.iter().map(|h| h.id))),
            Arc::new(Float32Array::from_iter_values(hits.iter().map(|h| h.score))),
            Arc::new(Float32Array::from_iter(hits.iter().map(|h| h.distance))),
            Arc::new(StringArray::from_iter_values(hits.iter().map(|h| &h.text))),
            Arc::new(Int32Array::from_iter_values(1..=hits.len() as i32)),
        ];
        if !extra.is_empty() {
            arrays.extend(self.columns_of(&entry, &table, &extra, &hits).await?);
        }
        let schema = Arc::new(Schema::new([hit_fields(), extra].concat()));
        RecordBatch::try_new(schema, arrays).map_err(internal)
    }

    /// The `fields` of the hits' rows, in hit order (null for a row gone meanwhile).
    pub(super) async fn columns_of(
        &self,
        entry: &IndexEntry,
        table: &TableEntry,
        fields: &[Field],
        hits: &[VectorHit],
    ) -> Result<Vec<ArrayRef>, VectorError> {
        if hits.is_empty() {
            return Ok(fields
                .iter()
                .map(|f| arrow::array::new_empty_array(f.data_type()))
                .collect());
        }
        let list = hits
            .iter()
            .map(|h| h.id.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let selected = fields
            .iter()
            .map(|f| quoted(f.name()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT CAST({id} AS BIGINT) AS __lakehouse_id, {selected} FROM {} WHERE {id} IN ({list})",
            quoted_table(table),
            id = quoted(&entry.id_column),
        );
        let batches = self.collect(&sql).await.map_err(internal)?;
        let Some(first) = batches.first() else {
            return Ok(fields
                .iter()
                .map(|f| arrow::array::new_null_array(f.data_type(), hits.len()))
                .collect());
        };
        let rows = arrow::compute::concat_batches(&first.schema(), &batches).map_err(internal)?;
        let ids = rows.column(0).as_primitive::<Int64Type>();
        let at: HashMap<i64, u32> = (0..rows.num_rows())
            .map(|i| (ids.value(i), i as u32))
            .collect();
        let take = UInt32Array::from_iter(hits.iter().map(|h| at.get(&h.id).copied()));
        rows.columns()
            .iter()
            .skip(1)
            .zip(fields)
            .map(|(column, field)| {
                let taken = arrow::compute::take(column, &take, None).map_err(internal)?;
                arrow::compute::cast(&taken, field.data_type()).map_err(internal)
            })
            .collect()
    }

    pub(super) async fn collect(&self, sql: &str) -> datafusion::error::Result<Vec<RecordBatch>> {
        let ctx = self.engine.session(&SessionDefaults::default());
        ctx.sql(sql).await?.collect().await
    }
}

/// The schema of hits without extra columns.
pub(crate) fn hits_schema() -> SchemaRef {
    Arc::new(Schema::new(hit_fields()))
}

/// The fixed columns of a hits batch.
pub(super) fn hit_fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Int64, false),
        Field::new("score", DataType::Float32, false),
        Field::new("distance", DataType::Float32, true),
        Field::new("text", DataType::Utf8, false),
        Field::new("rank", DataType::Int32, false),
    ]
}

/// The requested columns to add to hits: the id and text columns are already there
/// (as `id` and `text`) and are skipped; another name clashing with a hit column, or
/// a repeat, is refused.
pub(super) fn extra_columns<'a>(
    entry: &IndexEntry,
    columns: &'a [String],
) -> Result<Vec<&'a str>, VectorError> {
    let fixed: Vec<String> = hit_fields().iter().map(|f| f.name().clone()).collect();
    let mut out: Vec<&str> = Vec::new();
    for column in columns {
        if *column == entry.id_column || *column == entry.text_column {
            continue;
        }
        if fixed.contains(column) || out.contains(&column.as_str()) {
            return Err(VectorError::Invalid(format!(
                "columns: {column:?} clashes with a hit column ({}) or is repeated",
                fixed.join(", ")
            )));
        }
        out.push(column);
    }
    Ok(out)
}

/// `schema.table` quoted for SQL.
pub(super) fn quoted_table(entry: &TableEntry) -> String {
    format!(
        "\"{}\".\"{}\"",
        entry.schema.replace('"', "\"\""),
        entry.name.replace('"', "\"\"")
    )
}

pub(super) fn quoted(column: &str) -> String {
    format!("\"{}\"", column.replace('"', "\"\""))
}
