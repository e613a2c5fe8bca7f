//! Column types named by callers, and type inference from text samples.

use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, TimeUnit};

/// Parses a type name: SQL (`BIGINT`, `DOUBLE`, `VARCHAR`, `DECIMAL(10,2)`,
/// `TIMESTAMP`, `TIMESTAMPTZ`...) or Arrow (`Int32`, `Utf8`, `Timestamp(Microsecond, None)`...).
pub(crate) fn parse_type(name: &str) -> Result<DataType, String> {
    let upper = name.trim().to_ascii_uppercase();
    let compact: String = upper.split_whitespace().collect::<Vec<_>>().join(" ");
    let simple = match compact.as_str() {
        "BIGINT" | "INT8" | "LONG" | "INT64" => Some(DataType::Int64),
        "INT" | "INTEGER" | "INT4" | "INT32" => Some(DataType::Int32),
        "SMALLINT" | "INT2" | "INT16" => Some(DataType::Int16),
        "TINYINT" | "INT1" => Some(DataType::Int8),
        "DOUBLE" | "DOUBLE PRECISION" | "FLOAT8" | "FLOAT64" => Some(DataType::Float64),
        "FLOAT" | "REAL" | "FLOAT4" | "FLOAT32" => Some(DataType::Float32),
        "VARCHAR" | "TEXT" | "STRING" | "CHAR" | "UTF8" => Some(DataType::Utf8),
        "BOOLEAN" | "BOOL" => Some(DataType::Boolean),
        "DATE" => Some(DataType::Date32),
        "TIMESTAMP" | "DATETIME" | "TIMESTAMP WITHOUT TIME ZONE" => {
            Some(DataType::Timestamp(TimeUnit::Microsecond, None))
        }
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => Some(DataType::Timestamp(
            TimeUnit::Microsecond,
            Some(Arc::from("UTC")),
        )),
        "BINARY" | "BYTEA" | "BLOB" | "VARBINARY" => Some(DataType::Binary),
        _ => None,
    };
    if let Some(t) = simple {
        return Ok(t);
    }
    for prefix in ["DECIMAL", "NUMERIC"] {
        if let Some(args) = compact
            .strip_prefix(prefix)
            .map(str::trim)
            .and_then(|a| a.strip_prefix('('))
            .and_then(|a| a.strip_suffix(')'))
        {
            let mut parts = args.split(',').map(|p| p.trim().parse::<i64>());
            let precision = parts.next().and_then(Result::ok);
            let scale = parts.next().and_then(Result::ok).unwrap_or(0);
            return match precision {
                Some(p) if (1..=38).contains(&p) && (0..=p).contains(&scale) => {
                    Ok(DataType::Decimal128(p as u8, scale as i8))
                }
                _ => Err(format!(
                    "{name:?}: DECIMAL needs 1 <= precision <= 38 and 0 <= scale <= precision"
                )),
            };
        }
    }
    DataType::from_str(name.trim()).map_err(|_| {
        format!(
            "unknown type {name:?}; use BIGINT, INT, SMALLINT, DOUBLE, REAL, VARCHAR, BOOLEAN, DATE, \
             TIMESTAMP, TIMESTAMPTZ, DECIMAL(p,s), BINARY, or an Arrow type name such as Int32"
        )
    })
}

/// The narrowest type every value of `sample` (non-empty texts) parses as:
/// BIGINT, DOUBLE, BOOLEAN (`true`/`false`), DATE, TIMESTAMP, else VARCHAR.
/// Integers with leading zeros (zip codes, ids) stay text.
pub(crate) fn infer(sample: &[&str]) -> DataType {
    if sample.is_empty() {
        return DataType::Utf8;
    }
    let leading_zero = |v: &&str| {
        let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
        digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit())
    };
    let array: ArrayRef = Arc::new(StringArray::from_iter_values(sample.iter().copied()));
    let parses = |t: &DataType| {
        cast_with_options(&array, t, &CastOptions::default())
            .map(|out| out.null_count() == 0)
            .unwrap_or(false)
    };
    if !sample.iter().any(leading_zero) && parses(&DataType::Int64) {
        return DataType::Int64;
    }
    let numeric_looking = sample.iter().all(|v| {
        v.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
    });
    if numeric_looking && !sample.iter().any(leading_zero) && parses(&DataType::Float64) {
        return DataType::Float64;
    }
    if sample
        .iter()
        .all(|v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"))
    {
        return DataType::Boolean;
    }
    let date_shaped =
        |v: &&str| v.len() == 10 && v.as_bytes()[4] == b'-' && v.as_bytes()[7] == b'-';
    if sample.iter().all(date_shaped) && parses(&DataType::Date32) {
        return DataType::Date32;
    }
    let timestamp_shaped =
        |v: &&str| v.len() >= 16 && v.as_bytes()[4] == b'-' && v.as_bytes()[7] == b'-';
    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, None);
    if sample.iter().all(timestamp_shaped) && parses(&timestamp) {
        return timestamp;
    }
    DataType::Utf8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sql_and_arrow_names() {
        assert_eq!(parse_type("bigint").unwrap(), DataType::Int64);
        assert_eq!(parse_type("Double Precision").unwrap(), DataType::Float64);
        assert_eq!(
            parse_type("DECIMAL(10, 2)").unwrap(),
            DataType::Decimal128(10, 2)
        );
        assert_eq!(parse_type("Int16").unwrap(), DataType::Int16);
        assert!(parse_type("DECIMAL(40,2)").is_err());
        assert!(parse_type("nonsense").unwrap_err().contains("BIGINT"));
    }

    #[test]
    fn infers_the_narrowest_type() {
        assert_eq!(infer(&["1", "-2", "30"]), DataType::Int64);
        assert_eq!(infer(&["1", "2.5", "1e3"]), DataType::Float64);
        assert_eq!(infer(&["01234", "90210"]), DataType::Utf8);
        assert_eq!(infer(&["true", "FALSE"]), DataType::Boolean);
        assert_eq!(infer(&["2024-01-02", "1999-12-31"]), DataType::Date32);
        assert_eq!(
            infer(&["2024-01-02 10:00:00", "2024-01-02T10:00:00.5"]),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(infer(&["1", "x"]), DataType::Utf8);
        assert_eq!(infer(&["nan", "inf"]), DataType::Utf8);
        assert_eq!(infer(&[]), DataType::Utf8);
    }
}
