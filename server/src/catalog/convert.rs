//! Making incoming Arrow data fit Delta Lake tables.
//!
//! Clients send whatever Arrow their dataframe library produced: pandas gives
//! `large_string` and nanosecond timestamps, polars `string_view`, others
//! dictionaries or unsigned integers. Delta stores a smaller set of types, so:
//!
//! - a **new** table gets the closest Delta type for every column (lossless:
//!   strings and binaries of any layout → `string`/`binary`, dictionaries → their
//!   values, `uint8/16/32` → the next wider signed integer, `uint64` → `long`
//!   when values fit, timestamps → microseconds);
//! - an **existing** table takes rows whose columns match its own **by name**
//!   (any order; a missing nullable column is filled with NULL), cast to its types,
//!   failing with the column's name when a value does not fit.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, FieldRef, Fields, Schema, SchemaRef, TimeUnit};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::TryStreamExt;

/// The Delta-storable type closest to `data_type`, or why there is none.
pub(super) fn delta_type(data_type: &DataType) -> Result<DataType, String> {
    use DataType::*;
    Ok(match data_type {
        Null => Utf8,
        Boolean | Int8 | Int16 | Int32 | Int64 | Float32 | Float64 | Date32 | Binary | Utf8 => {
            data_type.clone()
        }
        UInt8 => Int16,
        UInt16 => Int32,
        UInt32 | UInt64 => Int64,
        Float16 => Float32,
        LargeUtf8 | Utf8View => Utf8,
        LargeBinary | BinaryView | FixedSizeBinary(_) => Binary,
        Date64 => Date32,
        Timestamp(_, None) => Timestamp(TimeUnit::Microsecond, None),
        Timestamp(_, Some(_)) => Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Decimal32(_, s) | Decimal64(_, s) | Decimal128(_, s) | Decimal256(_, s) if *s < 0 => {
            return Err(format!(
                "a decimal with negative scale ({s}) has no Delta Lake type; cast it to a \
                 scale of 0 or more first"
            ));
        }
        Decimal128(p, s) if *p <= 38 => Decimal128(*p, *s),
        Decimal32(p, s) | Decimal64(p, s) => Decimal128(*p, *s),
        Dictionary(_, values) => delta_type(values)?,
        List(item) | LargeList(item) | ListView(item) | LargeListView(item) => {
            List(delta_field(item)?)
        }
        FixedSizeList(item, _) => List(delta_field(item)?),
        Struct(fields) => Struct(
            fields
                .iter()
                .map(delta_field)
                .collect::<Result<Fields, String>>()?,
        ),
        Map(entries, sorted) => Map(delta_field(entries)?, *sorted),
        Time32(_) | Time64(_) => {
            return Err(
                "TIME has no Delta Lake type: store a TIMESTAMP, or the time of day as \
                 a BIGINT (e.g. microseconds since midnight)"
                    .to_string(),
            );
        }
        other => {
            return Err(format!(
                "type {other} cannot be stored in a Delta table; cast it (e.g. to a string or integer) first"
            ));
        }
    })
}

fn delta_field(field: &FieldRef) -> Result<FieldRef, String> {
    let data_type =
        delta_type(field.data_type()).map_err(|e| format!("column {:?}: {e}", field.name()))?;
    Ok(Arc::new(
        field
            .as_ref()
            .clone()
            .with_data_type(data_type)
            .with_metadata(Default::default()),
    ))
}

/// Schema of a new table for data of `schema`.
pub(super) fn delta_schema(schema: &Schema) -> Result<SchemaRef, String> {
    let fields = schema
        .fields()
        .iter()
        .map(delta_field)
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// `input` with every batch converted to `target`, matching columns by name.
/// Errors up front when a column is missing or extra; per batch when a value
/// does not fit its column.
pub(super) fn conform_by_name(
    input: SendableRecordBatchStream,
    target: SchemaRef,
) -> Result<SendableRecordBatchStream, String> {
    let source = input.schema();
    if let Some(extra) = source
        .fields()
        .iter()
        .find(|f| target.index_of(f.name()).is_err())
    {
        let known: Vec<&str> = target.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(format!(
            "column {:?} is not in the table (its columns: {})",
            extra.name(),
            known.join(", ")
        ));
    }
    let mut plan = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        match source.index_of(field.name()) {
            Ok(index) => plan.push(Some(index)),
            Err(_) if field.is_nullable() => plan.push(None),
            Err(_) => {
                return Err(format!(
                    "column {:?} is missing and the table requires it (NOT NULL)",
                    field.name()
                ));
            }
        }
    }
    let schema = Arc::clone(&target);
    let stream = input.and_then(move |batch| {
        let result = convert(&batch, &plan, &target);
        async move { result }
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
}

/// `input` converted to [`delta_schema`] of its own schema, by position.
pub(super) fn conform_to_delta(
    input: SendableRecordBatchStream,
) -> Result<SendableRecordBatchStream, String> {
    let source = input.schema();
    let target = delta_schema(&source)?;
    // Compare whole schemas: pandas puts its own metadata on the schema, which
    // delta-rs takes for a mismatch unless the batches are re-labelled.
    if target == source {
        return Ok(input);
    }
    let plan: Vec<Option<usize>> = (0..source.fields().len()).map(Some).collect();
    let schema = Arc::clone(&target);
    let stream = input.and_then(move |batch| {
        let result = convert(&batch, &plan, &target);
        async move { result }
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
}

fn convert(
    batch: &RecordBatch,
    plan: &[Option<usize>],
    target: &SchemaRef,
) -> DFResult<RecordBatch> {
    // Unsafe casts fail instead of silently producing NULL (e.g. a uint64 above i64::MAX).
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let columns = plan
        .iter()
        .zip(target.fields())
        .map(|(source, field)| -> DFResult<ArrayRef> {
            let Some(index) = source else {
                return Ok(new_null_array(field.data_type(), batch.num_rows()));
            };
            let column = batch.column(*index);
            if column.data_type() == field.data_type() {
                return Ok(Arc::clone(column));
            }
            refuse_lost_nanoseconds(column, field)?;
            cast_with_options(column, field.data_type(), &options).map_err(|e| {
                DataFusionError::Execution(format!(
                    "column {:?}: cannot store {} as {}: {e}",
                    field.name(),
                    column.data_type(),
                    field.data_type()
                ))
            })
        })
        .collect::<DFResult<Vec<_>>>()?;
    RecordBatch::try_new(Arc::clone(target), columns)
        .map_err(|e| DataFusionError::Execution(format!("rows do not fit the table: {e}")))
}

/// Delta stores microseconds: a nanosecond timestamp that is not a whole number of
/// microseconds would be truncated silently, so it is refused, naming the column and
/// the first such value (a client that accepts the loss truncates first).
fn refuse_lost_nanoseconds(column: &ArrayRef, field: &FieldRef) -> DFResult<()> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::TimestampNanosecondType;
    let (DataType::Timestamp(TimeUnit::Nanosecond, _), DataType::Timestamp(target, _)) =
        (column.data_type(), field.data_type())
    else {
        return Ok(());
    };
    if *target == TimeUnit::Nanosecond {
        return Ok(());
    }
    let values = column.as_primitive::<TimestampNanosecondType>();
    let lossy = (0..values.len()).find(|&i| values.is_valid(i) && values.value(i) % 1000 != 0);
    if let Some(row) = lossy {
        let value = arrow::util::display::array_value_to_string(column.as_ref(), row)
            .unwrap_or_else(|_| values.value(row).to_string());
        return Err(DataFusionError::Execution(format!(
            "column {:?}: {value} (row {row} of its batch) has nanoseconds, and Delta tables \
             store microseconds; truncate the timestamps to microseconds first, or send the \
             bulk-ingest option {TRUNCATE_NANOSECONDS}=true to have them truncated",
            field.name()
        )));
    }
    Ok(())
}

/// The bulk-ingest option (`CommandStatementIngest.options`) that accepts truncating
/// nanosecond timestamps to microseconds.
pub(crate) const TRUNCATE_NANOSECONDS: &str = "lakehouse.truncate_nanoseconds";

/// `input` with its nanosecond timestamp columns truncated to microseconds (what a
/// client that accepts the loss asks for).
pub(crate) fn truncate_nanoseconds(input: SendableRecordBatchStream) -> SendableRecordBatchStream {
    let source = input.schema();
    let micros = |data_type: &DataType| match data_type {
        DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
            Some(DataType::Timestamp(TimeUnit::Microsecond, tz.clone()))
        }
        _ => None,
    };
    if !source
        .fields()
        .iter()
        .any(|f| micros(f.data_type()).is_some())
    {
        return input;
    }
    let fields: Vec<FieldRef> = source
        .fields()
        .iter()
        .map(|f| match micros(f.data_type()) {
            Some(t) => Arc::new(f.as_ref().clone().with_data_type(t)),
            None => Arc::clone(f),
        })
        .collect();
    let target: SchemaRef = Arc::new(Schema::new_with_metadata(fields, source.metadata().clone()));
    let schema = Arc::clone(&target);
    let stream = input.and_then(move |batch| {
        let columns: DFResult<Vec<ArrayRef>> = batch
            .columns()
            .iter()
            .zip(target.fields())
            .map(|(column, field)| {
                if column.data_type() == field.data_type() {
                    Ok(Arc::clone(column))
                } else {
                    arrow::compute::cast(column, field.data_type()).map_err(DataFusionError::from)
                }
            })
            .collect();
        let result = columns.and_then(|columns| {
            RecordBatch::try_new(Arc::clone(&target), columns).map_err(DataFusionError::from)
        });
        async move { result }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, LargeStringArray, UInt64Array};
    use arrow::datatypes::Field;
    use futures::StreamExt;

    fn field(name: &str, data_type: DataType, nullable: bool) -> Field {
        Field::new(name, data_type, nullable)
    }

    fn stream(batch: RecordBatch) -> SendableRecordBatchStream {
        Box::pin(RecordBatchStreamAdapter::new(
            batch.schema(),
            futures::stream::iter([Ok(batch)]),
        ))
    }

    #[test]
    fn maps_dataframe_types_to_delta_types() {
        assert_eq!(delta_type(&DataType::LargeUtf8), Ok(DataType::Utf8));
        assert_eq!(delta_type(&DataType::UInt32), Ok(DataType::Int64));
        assert_eq!(
            delta_type(&DataType::Timestamp(
                TimeUnit::Nanosecond,
                Some("Europe/Paris".into())
            )),
            Ok(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into())
            ))
        );
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8View));
        assert_eq!(delta_type(&dict), Ok(DataType::Utf8));
        assert!(delta_type(&DataType::Time64(TimeUnit::Microsecond)).is_err());
    }

    #[tokio::test]
    async fn appends_match_columns_by_name_and_fill_missing_nullable_ones() {
        let source = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                field("name", DataType::LargeUtf8, true),
                field("id", DataType::UInt64, false),
            ])),
            vec![
                Arc::new(LargeStringArray::from(vec!["a", "b"])),
                Arc::new(UInt64Array::from(vec![1, 2])),
            ],
        )
        .unwrap();
        let target = Arc::new(Schema::new(vec![
            field("id", DataType::Int64, false),
            field("name", DataType::Utf8, true),
            field("note", DataType::Utf8, true),
        ]));
        let mut out = conform_by_name(stream(source), Arc::clone(&target)).unwrap();
        let batch = out.next().await.unwrap().unwrap();
        assert_eq!(batch.schema(), target);
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(ids.values(), &[1, 2]);
        assert_eq!(batch.column(2).null_count(), 2);
    }

    #[tokio::test]
    async fn values_that_do_not_fit_fail_with_the_column_name() {
        let source = RecordBatch::try_new(
            Arc::new(Schema::new(vec![field("id", DataType::UInt64, false)])),
            vec![Arc::new(UInt64Array::from(vec![u64::MAX]))],
        )
        .unwrap();
        let mut out = conform_to_delta(stream(source)).unwrap();
        let err = out.next().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("\"id\""), "{err}");
    }

    #[tokio::test]
    async fn schema_metadata_is_dropped_even_when_types_already_fit() {
        // pandas labels its schemas; the table's schema carries no such metadata.
        let schema = Schema::new(vec![field("x", DataType::Int64, true)])
            .with_metadata([("pandas".to_string(), "{}".to_string())].into());
        let source = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(Int64Array::from(vec![1, 2]))],
        )
        .unwrap();
        let mut out = conform_to_delta(stream(source)).unwrap();
        assert!(out.schema().metadata().is_empty());
        let batch = out.next().await.unwrap().unwrap();
        assert!(batch.schema().metadata().is_empty());
    }

    #[test]
    fn extra_or_missing_required_columns_are_refused() {
        let source = RecordBatch::try_new(
            Arc::new(Schema::new(vec![field("x", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![1]))],
        )
        .unwrap();
        let target = Arc::new(Schema::new(vec![field("id", DataType::Int64, false)]));
        let err = conform_by_name(stream(source), target).err().unwrap();
        assert!(
            err.contains("\"x\"") && err.contains("columns: id"),
            "{err}"
        );
    }
}
