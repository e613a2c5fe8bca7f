//! MySQL values (binary protocol) into Arrow builders: integers narrowed with range
//! checks, exact decimals, dates and times in UTC, zero dates as NULL.

use arrow::array::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::DataType;
use mysql_async::Value;
use mysql_async::consts::ColumnType;

use super::SourceColumn;

pub(super) type DecodeResult<T> = Result<T, String>;

fn unexpected(value: &Value) -> String {
    format!("unexpected value {value:?}")
}

pub(super) fn integer(value: &Value) -> DecodeResult<i128> {
    match value {
        Value::Int(v) => Ok(i128::from(*v)),
        Value::UInt(v) => Ok(i128::from(*v)),
        // bit(n): big-endian bytes.
        Value::Bytes(bytes) if bytes.len() <= 8 => Ok(bytes
            .iter()
            .fold(0i128, |acc, b| (acc << 8) | i128::from(*b))),
        other => Err(unexpected(other)),
    }
}

fn narrow<T: TryFrom<i128>>(value: &Value) -> DecodeResult<T> {
    let wide = integer(value)?;
    T::try_from(wide).map_err(|_| format!("{wide} is out of range"))
}

/// A decimal's text (`-123.450`) as an integer scaled by 10^scale.
pub(super) fn decimal_scaled(text: &[u8], scale: i8) -> DecodeResult<i128> {
    let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = scale.max(0) as usize;
    if fraction.len() > scale {
        return Err(format!("{text} has more than {scale} decimals"));
    }
    let overflow = || format!("{text} is out of range for the decimal column");
    let mut value: i128 = 0;
    let padding = std::iter::repeat_n(b'0', scale - fraction.len());
    for c in whole.bytes().chain(fraction.bytes()).chain(padding) {
        if !c.is_ascii_digit() {
            return Err(format!("{text:?} is not a decimal"));
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(c - b'0')))
            .ok_or_else(overflow)?;
    }
    Ok(if negative { -value } else { value })
}

/// Days since 1970-01-01 of a date value; `None` for zero dates.
pub(super) fn days(year: u16, month: u8, day: u8) -> Option<i32> {
    let date = chrono::NaiveDate::from_ymd_opt(i32::from(year), u32::from(month), u32::from(day))?;
    Some(date.num_days_from_ce() - 719_163)
}

use chrono::Datelike;

fn date_days(value: &Value) -> DecodeResult<Option<i32>> {
    match value {
        Value::Date(y, m, d, ..) => Ok(days(*y, *m, *d)),
        other => Err(unexpected(other)),
    }
}

pub(super) fn timestamp_micros(value: &Value) -> DecodeResult<Option<i64>> {
    match value {
        Value::Date(y, mo, d, h, mi, s, us) => Ok(days(*y, *mo, *d).map(|days| {
            i64::from(days) * 86_400_000_000
                + (i64::from(*h) * 3600 + i64::from(*mi) * 60 + i64::from(*s)) * 1_000_000
                + i64::from(*us)
        })),
        other => Err(unexpected(other)),
    }
}

/// Text of any value, for Utf8 columns.
pub(super) fn text(value: &Value) -> DecodeResult<String> {
    Ok(match value {
        Value::Bytes(bytes) => std::str::from_utf8(bytes)
            .map_err(|e| format!("not UTF-8 ({e})"))?
            .to_string(),
        Value::Int(v) => v.to_string(),
        Value::UInt(v) => v.to_string(),
        Value::Float(v) => v.to_string(),
        Value::Double(v) => v.to_string(),
        Value::Time(negative, days, h, m, s, us) => {
            let sign = if *negative { "-" } else { "" };
            let hours = u64::from(*days) * 24 + u64::from(*h);
            if *us == 0 {
                format!("{sign}{hours:02}:{m:02}:{s:02}")
            } else {
                format!("{sign}{hours:02}:{m:02}:{s:02}.{us:06}")
            }
        }
        Value::Date(y, mo, d, h, mi, s, us) => {
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
        }
        Value::NULL => String::new(),
    })
}

/// Appends one value (NULL included) to a builder of the column's type.
pub(super) fn append(
    builder: &mut dyn ArrayBuilder,
    column: &SourceColumn,
    value: &Value,
) -> DecodeResult<()> {
    macro_rules! downcast {
        ($t:ty) => {
            builder
                .as_any_mut()
                .downcast_mut::<$t>()
                .ok_or_else(|| "internal: builder type".to_string())?
        };
    }
    if matches!(value, Value::NULL) {
        match &column.arrow {
            DataType::Boolean => downcast!(BooleanBuilder).append_null(),
            DataType::Int8 => downcast!(Int8Builder).append_null(),
            DataType::Int16 => downcast!(Int16Builder).append_null(),
            DataType::Int32 => downcast!(Int32Builder).append_null(),
            DataType::Int64 => downcast!(Int64Builder).append_null(),
            DataType::Float32 => downcast!(Float32Builder).append_null(),
            DataType::Float64 => downcast!(Float64Builder).append_null(),
            DataType::Decimal128(..) => downcast!(Decimal128Builder).append_null(),
            DataType::Date32 => downcast!(Date32Builder).append_null(),
            DataType::Timestamp(..) => downcast!(TimestampMicrosecondBuilder).append_null(),
            DataType::Binary => downcast!(BinaryBuilder).append_null(),
            _ => downcast!(StringBuilder).append_null(),
        }
        return Ok(());
    }
    match &column.arrow {
        DataType::Boolean => {
            let v = integer(value)?;
            if !(v == 0 || v == 1) {
                return Err(format!(
                    "{v} is neither 0 nor 1; select `{} + 0` in a query to read it as an integer",
                    column.name
                ));
            }
            downcast!(BooleanBuilder).append_value(v == 1);
        }
        DataType::Int8 => downcast!(Int8Builder).append_value(narrow(value)?),
        DataType::Int16 => downcast!(Int16Builder).append_value(narrow(value)?),
        DataType::Int32 => downcast!(Int32Builder).append_value(narrow(value)?),
        DataType::Int64 => downcast!(Int64Builder).append_value(narrow(value)?),
        DataType::Float32 => match value {
            Value::Float(v) => downcast!(Float32Builder).append_value(*v),
            Value::Double(v) => downcast!(Float32Builder).append_value(*v as f32),
            other => return Err(unexpected(other)),
        },
        DataType::Float64 => match value {
            Value::Double(v) => downcast!(Float64Builder).append_value(*v),
            Value::Float(v) => downcast!(Float64Builder).append_value(f64::from(*v)),
            other => return Err(unexpected(other)),
        },
        DataType::Decimal128(_, scale) => {
            let scaled = match value {
                Value::Bytes(text) if column.mysql != ColumnType::MYSQL_TYPE_BIT => {
                    decimal_scaled(text, *scale)?
                }
                other => integer(other)?,
            };
            downcast!(Decimal128Builder).append_value(scaled);
        }
        DataType::Date32 => downcast!(Date32Builder).append_option(date_days(value)?),
        DataType::Timestamp(..) => {
            downcast!(TimestampMicrosecondBuilder).append_option(timestamp_micros(value)?)
        }
        DataType::Binary => match value {
            Value::Bytes(bytes) => downcast!(BinaryBuilder).append_value(bytes),
            other => return Err(unexpected(other)),
        },
        _ => downcast!(StringBuilder).append_value(text(value)?),
    }
    Ok(())
}
