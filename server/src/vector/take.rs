//! Takes by id: the rows of a lance index's dataset whose document id is one of those
//! asked, found by the Lance worker through the dataset's BTREE index on `id`, with
//! tombstoned rows (deleted or re-embedded since) left out, in the order asked.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Int32Array, Int64Array, RecordBatch,
};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, UInt64Type};

use super::error::{VectorError, internal};
use super::lance::{CHUNK, ID, KEY, LanceIndex};
use super::service::VectorIndexes;

/// The columns a take can return, in the order it returns them.
pub(crate) const TAKE_COLUMNS: [&str; 3] = [ID, CHUNK, VECTOR];
const VECTOR: &str = "vector";
/// Most ids one take may ask for.
pub(crate) const MAX_TAKE_IDS: usize = 10_000;

/// `asked` checked against [`TAKE_COLUMNS`], in their order (all when empty).
fn take_columns(asked: &[String]) -> Result<Vec<&'static str>, VectorError> {
    for column in asked {
        if !TAKE_COLUMNS.contains(&column.as_str()) {
            return Err(VectorError::Invalid(format!(
                "columns: {column:?} is not one of {}",
                TAKE_COLUMNS.join(", ")
            )));
        }
    }
    Ok(TAKE_COLUMNS
        .into_iter()
        .filter(|c| asked.is_empty() || asked.iter().any(|a| a == c))
        .collect())
}

/// The schema of a take of `columns` from an index of `dimension`.
fn take_schema(columns: &[&str], dimension: usize) -> SchemaRef {
    let fields: Vec<Field> = columns
        .iter()
        .map(|column| match *column {
            ID => Field::new(ID, DataType::Int64, false),
            CHUNK => Field::new(CHUNK, DataType::Int32, false),
            _ => Field::new(VECTOR, vector_type(dimension), false),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn vector_type(dimension: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new("item", DataType::Float32, true)),
        dimension as i32,
    )
}

impl VectorIndexes {
    /// The schema [`Self::take`] answers for index `name` and `columns`.
    pub(crate) async fn take_schema(
        &self,
        name: &str,
        columns: &[String],
    ) -> Result<SchemaRef, VectorError> {
        let columns = take_columns(columns)?;
        let loaded = self.get(name).await?;
        Ok(take_schema(&columns, loaded.entry.dimension as usize))
    }

    /// Every chunk of each document of `ids` that index `name` holds, in the order
    /// the ids are asked (chunks in order), as `columns` (all of [`TAKE_COLUMNS`]
    /// when empty). Only lance indexes keep their documents' ids.
    pub(crate) async fn take(
        &self,
        name: &str,
        ids: &[i64],
        columns: &[String],
    ) -> Result<RecordBatch, VectorError> {
        if ids.is_empty() {
            return Err(VectorError::Invalid("ids: is empty".into()));
        }
        if ids.len() > MAX_TAKE_IDS {
            return Err(VectorError::Invalid(format!(
                "ids: {} asked, at most {MAX_TAKE_IDS} per take",
                ids.len()
            )));
        }
        let columns = take_columns(columns)?;
        let loaded = self.get(name).await?;
        let Some(lance) = loaded.state.index.as_any().downcast_ref::<LanceIndex>() else {
            return Err(VectorError::Invalid(format!(
                "index {name} is a {} index: takes by id read a lance index's dataset \
                 (query the index's table for the others)",
                loaded.entry.build.backend.name()
            )));
        };
        let mut wanted = vec![KEY.to_string(), ID.to_string(), CHUNK.to_string()];
        if columns.contains(&VECTOR) {
            wanted.push(VECTOR.to_string());
        }
        let batches = lance.take_ids(ids.to_vec(), wanted).await?;
        let dead = loaded.state.dead.read().map_err(internal)?;
        let position: HashMap<i64, usize> = ids
            .iter()
            .enumerate()
            .rev()
            .map(|(i, id)| (*id, i))
            .collect();
        // (position asked, chunk, id, batch, row) of every live row.
        let mut found = Vec::new();
        for (b, batch) in batches.iter().enumerate() {
            let column = |name: &str| {
                batch.column_by_name(name).cloned().ok_or_else(|| {
                    VectorError::Internal(format!("the Lance worker's take has no column {name}"))
                })
            };
            let (keys, ids, chunks) = (column(KEY)?, column(ID)?, column(CHUNK)?);
            let keys = keys.as_primitive::<UInt64Type>();
            let ids = ids.as_primitive::<Int64Type>();
            let chunks = chunks.as_primitive::<Int32Type>();
            for row in 0..batch.num_rows() {
                if dead.contains(&keys.value(row)) {
                    continue;
                }
                if let Some(at) = position.get(&ids.value(row)) {
                    found.push((*at, chunks.value(row), ids.value(row), b, row));
                }
            }
        }
        drop(dead);
        found.sort_unstable();
        let dimension = loaded.entry.dimension as usize;
        let schema = take_schema(&columns, dimension);
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
        for column in &columns {
            let array: ArrayRef = match *column {
                ID => Arc::new(
                    found
                        .iter()
                        .map(|&(_, _, id, _, _)| id)
                        .collect::<Int64Array>(),
                ),
                CHUNK => Arc::new(
                    found
                        .iter()
                        .map(|&(_, chunk, _, _, _)| chunk)
                        .collect::<Int32Array>(),
                ),
                _ => {
                    let mut values = Vec::with_capacity(found.len() * dimension);
                    for &(_, _, _, b, row) in &found {
                        values.extend(vector_at(&batches[b], row, dimension)?);
                    }
                    let item = Arc::new(Field::new("item", DataType::Float32, true));
                    Arc::new(
                        FixedSizeListArray::try_new(
                            item,
                            dimension as i32,
                            Arc::new(Float32Array::from(values)),
                            None,
                        )
                        .map_err(internal)?,
                    )
                }
            };
            arrays.push(array);
        }
        RecordBatch::try_new(schema, arrays).map_err(internal)
    }
}

fn vector_at(batch: &RecordBatch, row: usize, dimension: usize) -> Result<Vec<f32>, VectorError> {
    let list = batch
        .column_by_name(VECTOR)
        .and_then(|c| c.as_fixed_size_list_opt())
        .ok_or_else(|| VectorError::Internal("the Lance worker's take has no vectors".into()))?;
    let values = list.value(row);
    let values = values
        .as_primitive_opt::<arrow::datatypes::Float32Type>()
        .filter(|v| v.len() == dimension)
        .ok_or_else(|| VectorError::Internal("a taken vector is not the index's width".into()))?;
    Ok(values.values().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_columns_keep_their_order_and_refuse_others() {
        assert_eq!(take_columns(&[]).unwrap(), vec![ID, CHUNK, VECTOR]);
        let asked = vec!["vector".to_string(), "id".to_string()];
        assert_eq!(take_columns(&asked).unwrap(), vec![ID, VECTOR]);
        assert!(take_columns(&["text".to_string()]).is_err());
        let schema = take_schema(&[ID, VECTOR], 4);
        assert_eq!(schema.field(1).data_type(), &vector_type(4));
    }
}
