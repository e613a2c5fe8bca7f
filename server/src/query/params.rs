//! Binding prepared-statement parameters.
//!
//! Clients disagree on how they send parameters: ADBC names the columns `"0"`,
//! `"1"`…, flightsql-dbapi sends `param_0`… as dense unions, arrow-rs's CLI uses
//! the names of our parameter schema (`$1`…). We therefore bind **by position**
//! (column *i* → `$i+1`), whatever the names, and unwrap union columns.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, UnionMode};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::LogicalPlan;

/// Placeholders of `plan` in execution order (`$1`, `$2`, … `$10`), with their
/// inferred fields. Untyped ones (e.g. `SELECT $1`) are reported as Utf8.
pub(crate) fn parameter_schema(plan: &LogicalPlan) -> Result<Schema> {
    Ok(Schema::new(
        ordered_parameters(plan)?
            .into_iter()
            .map(|(name, field)| match field {
                Some(field) => Field::new(name, field.data_type().clone(), true),
                None => Field::new(name, DataType::Utf8, true),
            })
            .collect::<Vec<_>>(),
    ))
}

fn ordered_parameters(plan: &LogicalPlan) -> Result<Vec<(String, Option<FieldRef>)>> {
    let mut params: Vec<_> = plan.get_parameter_fields()?.into_iter().collect();
    // `$10` sorts after `$2`: compare by number, then by name for named placeholders.
    params.sort_by_key(|(name, _)| (position(name).unwrap_or(usize::MAX), name.clone()));
    Ok(params)
}

fn position(name: &str) -> Option<usize> {
    name.strip_prefix('$')?.parse().ok()
}

/// Parameter values bound to a prepared statement: one row per execution.
#[derive(Debug, Clone, Default)]
pub(crate) struct ParameterRows {
    batches: Vec<RecordBatch>,
}

impl ParameterRows {
    /// Rows from the batches a client sent with DoPut.
    pub(crate) fn new(batches: Vec<RecordBatch>) -> Self {
        Self {
            batches: batches.into_iter().filter(|b| b.num_rows() > 0).collect(),
        }
    }

    /// True when nothing is bound.
    pub(crate) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Number of parameter rows.
    pub(crate) fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    /// Encodes the rows as an Arrow IPC stream (empty when nothing is bound).
    pub(crate) fn to_ipc(&self) -> Result<Vec<u8>> {
        Ok(lakehouse_flight_ext::encode_parameters(&self.batches)?)
    }

    /// Decodes rows written by [`ParameterRows::to_ipc`].
    pub(crate) fn from_ipc(bytes: &[u8]) -> Result<Self> {
        Ok(Self::new(lakehouse_flight_ext::decode_parameters(bytes)?))
    }

    /// `plan` with each parameter row substituted: one plan per row.
    pub(crate) fn bind(&self, plan: &LogicalPlan) -> Result<Vec<LogicalPlan>> {
        let expected = ordered_parameters(plan)?;
        if self.is_empty() {
            if let Some((name, _)) = expected.first() {
                return Err(DataFusionError::Plan(format!(
                    "the statement has {} parameter(s) but none were bound (first missing: {name})",
                    expected.len()
                )));
            }
            return Ok(vec![plan.clone()]);
        }
        let mut plans = Vec::with_capacity(self.num_rows());
        for batch in &self.batches {
            if batch.num_columns() != expected.len() {
                return Err(DataFusionError::Plan(format!(
                    "the statement has {} parameter(s) but {} column(s) were bound",
                    expected.len(),
                    batch.num_columns()
                )));
            }
            for row in 0..batch.num_rows() {
                let mut values = HashMap::with_capacity(expected.len());
                for ((name, field), column) in expected.iter().zip(batch.columns()) {
                    let value = scalar_at(column.as_ref(), row)?;
                    let value = match field {
                        // A NULL takes the parameter's type: rows of a multi-row VALUES
                        // must agree on each column's type.
                        Some(field) if value.is_null() => {
                            ScalarValue::try_from(field.data_type()).unwrap_or(value)
                        }
                        Some(field) if value.data_type() != *field.data_type() => {
                            value.cast_to(field.data_type()).map_err(|e| {
                                DataFusionError::Plan(format!(
                                    "parameter {name}: cannot convert {} to {}: {e}",
                                    value.data_type(),
                                    field.data_type()
                                ))
                            })?
                        }
                        _ => value,
                    };
                    values.insert(name.trim_start_matches('$').to_string(), value);
                }
                let ordered = positional(values, expected.len())?;
                plans.push(plan.clone().with_param_values(ordered)?);
            }
        }
        Ok(plans)
    }
}

/// Orders values `1..=n` into the positional list DataFusion expects.
fn positional(mut values: HashMap<String, ScalarValue>, n: usize) -> Result<Vec<ScalarValue>> {
    (1..=n)
        .map(|i| {
            values.remove(&i.to_string()).ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "parameter ${i} is missing: placeholders must be numbered $1..${n}"
                ))
            })
        })
        .collect()
}

/// The value at `row`, looking through dense and sparse unions.
fn scalar_at(array: &dyn Array, row: usize) -> Result<ScalarValue> {
    if let DataType::Union(_, mode) = array.data_type() {
        let union = array.as_union();
        let type_id = union.type_id(row);
        let child = union.child(type_id);
        let index = match mode {
            UnionMode::Dense => union.value_offset(row),
            UnionMode::Sparse => row,
        };
        return scalar_at(child.as_ref(), index);
    }
    ScalarValue::try_from_array(array, row)
}

/// `sql` with its `?` placeholders (what JDBC, ODBC and flightsql-dbapi send) numbered
/// `$1`, `$2`… in order of appearance, so they bind by position like `$n` ones;
/// `None` when there is nothing to number (no `?`, or `$n` placeholders already).
pub(super) fn number_question_marks(sql: &str) -> Option<String> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if !sql.contains('?') {
        return None;
    }
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().ok()?;
    let placeholder = |t: &Token, q: bool| matches!(t, Token::Placeholder(p) if (p == "?") == q);
    if !tokens.iter().any(|t| placeholder(t, true)) || tokens.iter().any(|t| placeholder(t, false))
    {
        return None;
    }
    let mut n = 0;
    let numbered: String = tokens
        .into_iter()
        .map(|token| match token {
            Token::Placeholder(p) if p == "?" => {
                n += 1;
                format!("${n}")
            }
            other => other.to_string(),
        })
        .collect();
    Some(numbered)
}

#[cfg(test)]
mod question_marks {
    use super::number_question_marks;

    #[test]
    fn numbers_question_marks_in_order() {
        assert_eq!(
            number_question_marks("SELECT * FROM t WHERE a = ? AND b = '?' AND c IN (?, ?)")
                .as_deref(),
            Some("SELECT * FROM t WHERE a = $1 AND b = '?' AND c IN ($2, $3)")
        );
        assert_eq!(number_question_marks("SELECT '?'"), None);
        assert_eq!(number_question_marks("SELECT $1, ?"), None);
    }
}
