//! Indexes over precomputed vectors: a table column of vectors the user already has
//! (`vector_column`: `FixedSizeList<Float32>` or `List<Float32>`), read as they are
//! instead of embedding a text column. One vector per row (chunk 0); a NULL, NaN or
//! wrongly sized vector is an error naming its row.

use std::collections::HashSet;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float32Type, Int64Type};
use datafusion::execution::SendableRecordBatchStream;
use futures::TryStreamExt;

use super::build::EMBED_BATCH;
use super::error::{VectorError, internal};
use super::hits::{quoted, quoted_table};
use super::service::VectorIndexes;
use super::state::{Embedded, vector_hash};
use crate::catalog::TableEntry;

/// The width of a vector column's type (`None` for a list, whose rows say), or why
/// it cannot be indexed.
pub(super) fn vector_width(
    column: &str,
    data_type: &DataType,
) -> Result<Option<usize>, VectorError> {
    let (item, width) = match data_type {
        DataType::FixedSizeList(item, width) => (item, Some(*width as usize)),
        DataType::List(item) | DataType::LargeList(item) => (item, None),
        other => {
            return Err(VectorError::Invalid(format!(
                "vector_column: {column:?} is {other}, not a list of Float32"
            )));
        }
    };
    if item.data_type() != &DataType::Float32 {
        return Err(VectorError::Invalid(format!(
            "vector_column: {column:?} holds {}, not Float32",
            item.data_type()
        )));
    }
    if width == Some(0) {
        return Err(VectorError::Invalid(format!(
            "vector_column: {column:?} holds empty vectors"
        )));
    }
    Ok(width)
}

/// Row `row` of a list column: `None` when it is NULL.
fn list_value(column: &ArrayRef, row: usize) -> Option<ArrayRef> {
    if column.is_null(row) {
        return None;
    }
    match column.data_type() {
        DataType::FixedSizeList(..) => Some(column.as_fixed_size_list().value(row)),
        DataType::List(_) => Some(column.as_list::<i32>().value(row)),
        DataType::LargeList(_) => Some(column.as_list::<i64>().value(row)),
        _ => None,
    }
}

/// The vector of row `id`, checked: not NULL, no NULL or non-finite element, and
/// `width` long once the first row has set it.
fn checked_vector(
    column: &ArrayRef,
    row: usize,
    id: i64,
    name: &str,
    width: &mut Option<usize>,
) -> Result<Vec<f32>, VectorError> {
    let value = list_value(column, row).ok_or_else(|| {
        VectorError::Invalid(format!("vector_column: row with id {id}: {name} is NULL"))
    })?;
    let values = value.as_primitive_opt::<Float32Type>().ok_or_else(|| {
        VectorError::Invalid(format!(
            "vector_column: row with id {id}: {name} is not a list of Float32"
        ))
    })?;
    if values.null_count() > 0 {
        return Err(VectorError::Invalid(format!(
            "vector_column: row with id {id}: {name} holds a NULL element"
        )));
    }
    let vector = values.values().to_vec();
    if vector.iter().any(|x| !x.is_finite()) {
        return Err(VectorError::Invalid(format!(
            "vector_column: row with id {id}: {name} holds NaN or infinity"
        )));
    }
    match *width {
        Some(expected) if vector.len() != expected => {
            return Err(VectorError::Invalid(format!(
                "vector_column: row with id {id}: {name} has {} dimensions, the index {expected}",
                vector.len()
            )));
        }
        None if vector.is_empty() => {
            return Err(VectorError::Invalid(format!(
                "vector_column: row with id {id}: {name} is empty"
            )));
        }
        None => *width = Some(vector.len()),
        Some(_) => {}
    }
    Ok(vector)
}

impl VectorIndexes {
    /// `id BIGINT, vector` of every row with an id, streamed.
    pub(super) async fn vector_stream(
        &self,
        table: &TableEntry,
        id_column: &str,
        vector_column: &str,
    ) -> Result<SendableRecordBatchStream, VectorError> {
        let sql = format!(
            "SELECT CAST({id} AS BIGINT) AS id, {vector} AS vector FROM {} WHERE {id} IS NOT NULL",
            quoted_table(table),
            id = quoted(id_column),
            vector = quoted(vector_column),
        );
        self.stream_sql(&sql).await
    }

    /// Reads the vectors of `stream` ([`Self::vector_stream`]) that `wanted(id,
    /// vector hash)` asks for (it sees every row, once), checking each, and hands
    /// them to `sink` in batches. `width` is the vectors' width when known (an
    /// index's); it is set from the first row otherwise. A repeated id is an error
    /// when `strict`, else skipped. `sink` may stop the read by failing (a cancelled
    /// job).
    pub(super) async fn read_vector_rows(
        &self,
        mut stream: SendableRecordBatchStream,
        vector_column: &str,
        width: &mut Option<usize>,
        wanted: &mut (dyn FnMut(i64, u64) -> bool + Send),
        strict: bool,
        mut sink: impl FnMut(Embedded, u64) -> Result<(), VectorError>,
    ) -> Result<(), VectorError> {
        let mut seen = HashSet::new();
        let mut pending = Embedded::default();
        while let Some(batch) = stream.try_next().await.map_err(internal)? {
            let ids = batch.column(0).as_primitive::<Int64Type>();
            let vectors = batch.column(1);
            for row in 0..batch.num_rows() {
                let id = ids.value(row);
                if !seen.insert(id) {
                    if strict {
                        return Err(VectorError::Invalid(format!(
                            "id_column holds {id} twice; index ids must be unique"
                        )));
                    }
                    continue;
                }
                let vector = checked_vector(vectors, row, id, vector_column, width)?;
                let hash = vector_hash(&vector);
                if !wanted(id, hash) {
                    continue;
                }
                pending.rows.push(id);
                pending.chunks.push(0);
                pending.hashes.push(hash);
                pending.vectors.push(vector);
                if pending.rows.len() >= EMBED_BATCH {
                    let bytes = (pending.vectors.len() * width.unwrap_or(0) * 4) as u64;
                    sink(std::mem::take(&mut pending), bytes)?;
                }
            }
        }
        if !pending.rows.is_empty() {
            let bytes = (pending.vectors.len() * width.unwrap_or(0) * 4) as u64;
            sink(pending, bytes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{FixedSizeListArray, Float32Array, ListArray};
    use arrow::datatypes::Field;

    use super::*;

    #[test]
    fn vector_columns_are_lists_of_float32() {
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        let fixed = DataType::FixedSizeList(Arc::clone(&item), 3);
        assert_eq!(vector_width("v", &fixed).unwrap(), Some(3));
        assert_eq!(vector_width("v", &DataType::List(item)).unwrap(), None);
        let doubles = DataType::List(Arc::new(Field::new("item", DataType::Float64, true)));
        assert!(vector_width("v", &doubles).is_err());
        assert!(vector_width("v", &DataType::Utf8).is_err());
    }

    #[test]
    fn bad_vectors_name_their_row() {
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        let values = Float32Array::from(vec![1.0, 2.0, f32::NAN, 4.0]);
        let fixed: ArrayRef = Arc::new(
            FixedSizeListArray::try_new(Arc::clone(&item), 2, Arc::new(values), None).unwrap(),
        );
        let mut width = None;
        assert_eq!(
            checked_vector(&fixed, 0, 7, "v", &mut width).unwrap(),
            vec![1.0, 2.0]
        );
        let nan = checked_vector(&fixed, 1, 8, "v", &mut width).unwrap_err();
        assert!(nan.to_string().contains("id 8") && nan.to_string().contains("NaN"));
        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Float32Type, _, _>(vec![
            Some(vec![Some(1.0), Some(2.0)]),
            Some(vec![Some(1.0)]),
            None,
        ]));
        assert!(checked_vector(&list, 0, 1, "v", &mut width).is_ok());
        let short = checked_vector(&list, 1, 2, "v", &mut width).unwrap_err();
        assert!(
            short
                .to_string()
                .contains("id 2: v has 1 dimensions, the index 2")
        );
        let null = checked_vector(&list, 2, 3, "v", &mut width).unwrap_err();
        assert!(null.to_string().contains("id 3: v is NULL"));
    }
}
