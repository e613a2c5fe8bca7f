//! `system.pii`: the PII of every table, as Arrow rows.

use std::sync::Arc;

use arrow::array::{BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field};
use arrow::error::ArrowError;

use crate::catalog::CatalogDocument;
use crate::rows::{batch, utf8};

/// PII of every table: detector findings with manual verdicts on top.
pub(crate) fn table(catalog: &CatalogDocument) -> Result<RecordBatch, ArrowError> {
    let mut entries: Vec<_> = catalog.tables.iter().collect();
    entries.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    let mut rows = Vec::new();
    for entry in entries {
        for finding in entry.effective_pii() {
            rows.push((entry.schema.clone(), entry.name.clone(), finding));
        }
    }
    let alternates: Vec<String> = rows
        .iter()
        .map(|(_, _, f)| {
            f.alternates
                .iter()
                .map(|a| format!("{}:{}", a.entity_type, a.match_share))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    batch(
        vec![
            utf8("table_schema", false),
            utf8("table_name", false),
            utf8("column_name", false),
            utf8("entity_type", false),
            Field::new("confidence", DataType::Float64, false),
            Field::new("match_share", DataType::Float64, true),
            Field::new("checksum_pass_share", DataType::Float64, true),
            Field::new("sample_size", DataType::Int64, true),
            utf8("alternates", false),
            utf8("detector_version", false),
            Field::new("manual", DataType::Boolean, false),
        ],
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.1.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.2.column.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.2.entity_type.as_str()),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.2.confidence),
            )),
            Arc::new(Float64Array::from(
                rows.iter()
                    .map(|r| (!r.2.manual).then_some(r.2.match_share))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                rows.iter()
                    .map(|r| r.2.checksum_pass_share)
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter()
                    .map(|r| (!r.2.manual).then_some(r.2.sample_size as i64))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(alternates)),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.2.detector_version.as_str()),
            )),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.2.manual)),
            )),
        ],
    )
}
