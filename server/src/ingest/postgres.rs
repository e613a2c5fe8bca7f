//! `lakehouse.ingest.postgres`: a PostgreSQL table or query into a table.
//!
//! Rows come through a server-side cursor (a portal inside a read-only
//! transaction), `batch_size` rows per fetch, in PostgreSQL's binary format, and are
//! decoded straight into Arrow builders: memory stays at about one batch whatever
//! the table size, and there is no LIMIT/OFFSET paging.
//!
//! | PostgreSQL | Arrow / Delta |
//! |---|---|
//! | smallint, integer, bigint | Int16, Int32, Int64 |
//! | real, double precision | Float32, Float64 |
//! | numeric(p,s), p <= 38 (a table column, also through a query) | Decimal128(p, s) |
//! | numeric without a known p <= 38 | Utf8, the exact decimal text |
//! | boolean | Boolean |
//! | text, varchar, char, name, citext, enums | Utf8 |
//! | bytea | Binary |
//! | date | Date32 |
//! | timestamp / timestamptz | Timestamp(µs) / Timestamp(µs, UTC) |
//! | time, interval | Utf8 (`HH:MM:SS.ffffff`; ISO 8601 duration): Delta has no time or interval type |
//! | json, jsonb | Utf8 (the JSON text) |
//! | uuid | Utf8 (canonical form): Delta has no UUID type |
//! | one-dimensional arrays of the above | List of the element type |

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListBuilder,
    RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use tokio_postgres::types::{FromSql, Kind, Type};
use tokio_postgres::{NoTls, Row};

use super::IngestError;
use super::database::{DbSource, Reader, builder_for};
use crate::secrets::redact;

/// Days from 1970-01-01 to PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS as i64 * 86_400_000_000;

/// A source column: its PostgreSQL type and how it lands in Arrow.
#[derive(Debug, Clone)]
struct SourceColumn {
    name: String,
    pg: Type,
    arrow: DataType,
}

/// An error from PostgreSQL, with the DSN's password removed.
pub(super) fn source_error(context: &str, error: &tokio_postgres::Error) -> IngestError {
    let detail = match error.as_db_error() {
        Some(db) => format!(
            "{} ({}): {}",
            db.message(),
            db.code().code(),
            db.detail().unwrap_or("")
        ),
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    };
    let message = redact(&format!("{context}: {}", detail.trim_end_matches(": ")));
    match error.code().map(|c| c.code()) {
        // undefined table / column, invalid schema
        Some("42P01" | "42703" | "3F000") => IngestError::NotFound(message),
        // insufficient privilege, invalid password / authorization
        Some("42501" | "28P01" | "28000") => IngestError::PermissionDenied(message),
        Some(code) if code.starts_with("42") => IngestError::invalid("query", message),
        _ => IngestError::Source(message),
    }
}

/// The Arrow type of a PostgreSQL type, `None` when there is no mapping.
fn arrow_type(pg: &Type, typmod: Option<i32>) -> Option<DataType> {
    Some(match *pg {
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::BOOL => DataType::Boolean,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::JSONB => {
            DataType::Utf8
        }
        Type::UUID | Type::TIME | Type::INTERVAL => DataType::Utf8,
        Type::BYTEA => DataType::Binary,
        Type::DATE => DataType::Date32,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
        Type::NUMERIC => match typmod.filter(|m| *m >= 4) {
            Some(m) => {
                let precision = ((m - 4) >> 16) & 0xffff;
                let scale = (m - 4) & 0xffff;
                if (1..=38).contains(&precision) {
                    DataType::Decimal128(precision as u8, scale as i8)
                } else {
                    DataType::Utf8
                }
            }
            None => DataType::Utf8,
        },
        _ => match pg.kind() {
            Kind::Enum(_) => DataType::Utf8,
            Kind::Domain(inner) => return arrow_type(inner, typmod),
            Kind::Array(element) => {
                let element = arrow_type(element, None)?;
                DataType::List(Arc::new(Field::new("item", element, true)))
            }
            _ if pg.name() == "citext" => DataType::Utf8,
            _ => return None,
        },
    })
}

/// Raw binary value of any type.
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

type DecodeResult<T> = Result<T, String>;

fn be<const N: usize>(raw: &[u8]) -> DecodeResult<[u8; N]> {
    be_at(raw, 0)
}

/// The `N` bytes at `at`; a value too short for them is an error, never a panic.
fn be_at<const N: usize>(raw: &[u8], at: usize) -> DecodeResult<[u8; N]> {
    raw.get(at..at.saturating_add(N))
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("expected {N} bytes at {at}, got {}", raw.len()))
}

fn text(raw: &[u8]) -> DecodeResult<&str> {
    std::str::from_utf8(raw).map_err(|e| e.to_string())
}

/// A numeric's binary form: (sign, weight, digits in base 10000, display scale).
fn numeric_parts(raw: &[u8]) -> DecodeResult<(bool, i16, Vec<i16>, u16)> {
    let ndigits = i16::from_be_bytes(be(raw)?);
    let weight = i16::from_be_bytes(be_at(raw, 2)?);
    let sign = u16::from_be_bytes(be_at(raw, 4)?);
    let dscale = u16::from_be_bytes(be_at(raw, 6)?);
    if sign == 0xC000 {
        return Err("NaN does not fit a decimal column".into());
    }
    if sign == 0xD000 || sign == 0xF000 {
        return Err("infinity does not fit a decimal column".into());
    }
    let mut digits = Vec::with_capacity(ndigits.max(0) as usize);
    for i in 0..ndigits.max(0) as usize {
        digits.push(i16::from_be_bytes(be_at(raw, 8 + 2 * i)?));
    }
    Ok((sign == 0x4000, weight, digits, dscale))
}

/// A numeric as an integer scaled by 10^scale (exact while it fits i128).
fn numeric_scaled(raw: &[u8], scale: i8) -> DecodeResult<i128> {
    let (negative, weight, digits, _) = numeric_parts(raw)?;
    // value = sum(d_i * 10000^(weight - i)); scaled = value * 10^scale
    let mut value: i128 = 0;
    let overflow = || "value out of range for the decimal column".to_string();
    for (i, d) in digits.iter().enumerate() {
        let exponent = 4 * (i32::from(weight) - i as i32) + i32::from(scale);
        let term = if exponent >= 0 {
            i128::from(*d)
                .checked_mul(10i128.checked_pow(exponent as u32).ok_or_else(overflow)?)
                .ok_or_else(overflow)?
        } else {
            let divisor = 10i128.checked_pow((-exponent) as u32).unwrap_or(i128::MAX);
            i128::from(*d) / divisor
        };
        value = value.checked_add(term).ok_or_else(overflow)?;
    }
    Ok(if negative { -value } else { value })
}

/// A numeric as its exact decimal text.
fn numeric_text(raw: &[u8]) -> DecodeResult<String> {
    let (negative, weight, digits, dscale) = numeric_parts(raw)?;
    let mut int_part = String::new();
    let mut frac_part = String::new();
    for i in 0..=i32::from(weight).max(0) {
        let d = if i32::from(weight) < 0 {
            0
        } else {
            digits.get(i as usize).copied().unwrap_or(0)
        };
        if int_part.is_empty() {
            if d != 0 {
                int_part = d.to_string();
            }
        } else {
            int_part.push_str(&format!("{d:04}"));
        }
    }
    if int_part.is_empty() {
        int_part.push('0');
    }
    let first_frac = i32::from(weight) + 1;
    let mut i = first_frac;
    while (frac_part.len() as u16) < dscale {
        let d = if i < 0 {
            0
        } else {
            digits.get(i as usize).copied().unwrap_or(0)
        };
        frac_part.push_str(&format!("{d:04}"));
        i += 1;
    }
    frac_part.truncate(dscale as usize);
    let sign = if negative { "-" } else { "" };
    Ok(if frac_part.is_empty() {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac_part}")
    })
}

fn time_text(micros: i64) -> String {
    let (h, rest) = (micros / 3_600_000_000, micros % 3_600_000_000);
    let (m, rest) = (rest / 60_000_000, rest % 60_000_000);
    let (s, us) = (rest / 1_000_000, rest % 1_000_000);
    if us == 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}.{us:06}")
    }
}

fn interval_text(raw: &[u8]) -> DecodeResult<String> {
    let micros = i64::from_be_bytes(be(raw)?);
    let days = i32::from_be_bytes(be_at(raw, 8)?);
    let months = i32::from_be_bytes(be_at(raw, 12)?);
    let mut out = String::from("P");
    if months != 0 {
        out.push_str(&format!("{}Y{}M", months / 12, months % 12));
    }
    if days != 0 {
        out.push_str(&format!("{days}D"));
    }
    if micros != 0 || out == "P" {
        let seconds = micros as f64 / 1e6;
        out.push_str(&format!("T{seconds}S"));
    }
    Ok(out)
}

fn uuid_text(raw: &[u8]) -> DecodeResult<String> {
    let bytes: [u8; 16] = be(raw)?;
    Ok(uuid::Uuid::from_bytes(bytes).hyphenated().to_string())
}

/// Text of a value of a text-mapped type.
fn as_text(pg: &Type, raw: &[u8]) -> DecodeResult<String> {
    Ok(match *pg {
        Type::JSONB => text(raw.get(1..).unwrap_or_default())?.to_string(),
        Type::UUID => uuid_text(raw)?,
        Type::TIME => time_text(i64::from_be_bytes(be(raw)?)),
        Type::INTERVAL => interval_text(raw)?,
        Type::NUMERIC => numeric_text(raw)?,
        _ => text(raw)?.to_string(),
    })
}

/// Appends one value (or NULL) to a builder of `arrow` type.
fn append(
    builder: &mut dyn ArrayBuilder,
    pg: &Type,
    arrow: &DataType,
    raw: Option<&[u8]>,
) -> DecodeResult<()> {
    macro_rules! downcast {
        ($t:ty) => {
            builder
                .as_any_mut()
                .downcast_mut::<$t>()
                .ok_or_else(|| "internal: builder type".to_string())?
        };
    }
    match arrow {
        DataType::Int16 => {
            downcast!(Int16Builder).append_option(raw.map(be).transpose()?.map(i16::from_be_bytes))
        }
        DataType::Int32 => {
            downcast!(Int32Builder).append_option(raw.map(be).transpose()?.map(i32::from_be_bytes))
        }
        DataType::Int64 => {
            downcast!(Int64Builder).append_option(raw.map(be).transpose()?.map(i64::from_be_bytes))
        }
        DataType::Float32 => downcast!(Float32Builder)
            .append_option(raw.map(be).transpose()?.map(f32::from_be_bytes)),
        DataType::Float64 => downcast!(Float64Builder)
            .append_option(raw.map(be).transpose()?.map(f64::from_be_bytes)),
        DataType::Boolean => {
            downcast!(BooleanBuilder).append_option(raw.map(|r| r.first() == Some(&1)))
        }
        DataType::Binary => downcast!(BinaryBuilder).append_option(raw),
        DataType::Utf8 => {
            downcast!(StringBuilder).append_option(raw.map(|r| as_text(pg, r)).transpose()?)
        }
        DataType::Date32 => downcast!(Date32Builder).append_option(
            raw.map(be)
                .transpose()?
                .map(|b| i32::from_be_bytes(b).saturating_add(PG_EPOCH_DAYS)),
        ),
        DataType::Timestamp(..) => downcast!(TimestampMicrosecondBuilder).append_option(
            raw.map(be)
                .transpose()?
                .map(|b| i64::from_be_bytes(b).saturating_add(PG_EPOCH_MICROS)),
        ),
        DataType::Decimal128(_, scale) => downcast!(Decimal128Builder)
            .append_option(raw.map(|r| numeric_scaled(r, *scale)).transpose()?),
        DataType::List(field) => {
            let list = downcast!(ListBuilder<Box<dyn ArrayBuilder>>);
            let Some(raw) = raw else {
                list.append_null();
                return Ok(());
            };
            let element = match pg.kind() {
                Kind::Array(element) => element.clone(),
                _ => return Err("internal: not an array".into()),
            };
            let ndim = i32::from_be_bytes(be(raw)?);
            if ndim > 1 {
                return Err("multi-dimensional arrays are not supported".into());
            }
            let mut at = 12;
            let count = if ndim == 0 {
                0
            } else {
                let n = i32::from_be_bytes(be_at(raw, at)?);
                at += 8;
                n
            };
            for _ in 0..count {
                let len = i32::from_be_bytes(be_at(raw, at)?);
                at += 4;
                let value = if len < 0 {
                    None
                } else {
                    let end = at + len as usize;
                    let bytes = raw.get(at..end).ok_or("truncated array")?;
                    at = end;
                    Some(bytes)
                };
                append(list.values().as_mut(), &element, field.data_type(), value)?;
            }
            list.append(true);
        }
        other => return Err(format!("internal: no decoder for {other}")),
    }
    Ok(())
}

/// Connects, describes the columns and streams the rows as Arrow batches into
/// `batches`; the schema goes to `schema_tx` first. Returns the rows read and, for
/// an incremental ingest, the new watermark.
pub(super) async fn produce(
    source: DbSource,
    reader: Reader,
) -> Result<(u64, Option<String>), IngestError> {
    let Reader {
        batch_size,
        cancelled,
        schema: schema_tx,
        batches,
        bytes,
    } = reader;
    let (mut client, connection) = tokio_postgres::connect(&source.dsn, NoTls)
        .await
        .map_err(|e| source_error("connecting to PostgreSQL", &e))?;
    let connection = tokio::spawn(connection);
    let outcome = async {
        let statement = client
            .prepare(&source.query)
            .await
            .map_err(|e| source_error("preparing the source query", &e))?;
        // numeric(p,s) columns read straight from a table (also inside a query)
        // keep their precision and scale: look up their type modifiers.
        let mut typmods = std::collections::HashMap::new();
        for (i, column) in statement.columns().iter().enumerate() {
            let (Some(table), Some(attnum)) = (column.table_oid(), column.column_id()) else {
                continue;
            };
            if !matches!(*column.type_(), Type::NUMERIC | Type::NUMERIC_ARRAY) {
                continue;
            }
            let row = client
                .query_opt(
                    "SELECT atttypmod FROM pg_attribute WHERE attrelid = $1 AND attnum = $2",
                    &[&table, &attnum],
                )
                .await
                .map_err(|e| source_error("reading column types", &e))?;
            if let Some(row) = row {
                typmods.insert(i, row.get::<_, i32>(0));
            }
        }
        let mut columns = Vec::new();
        let mut text_columns = Vec::new();
        for (i, column) in statement.columns().iter().enumerate() {
            let arrow = arrow_type(column.type_(), typmods.get(&i).copied());
            match arrow {
                Some(arrow) => columns.push(SourceColumn {
                    name: column.name().to_string(),
                    pg: column.type_().clone(),
                    arrow,
                }),
                None if source.text_fallback => {
                    text_columns.push(column.name().to_string());
                    columns.push(SourceColumn {
                        name: column.name().to_string(),
                        pg: Type::TEXT,
                        arrow: DataType::Utf8,
                    });
                }
                None => {
                    return Err(IngestError::invalid(
                        "source",
                        format!(
                            "column {:?} has type {} which has no mapping; cast it in a query or set text_fallback",
                            column.name(),
                            column.type_()
                        ),
                    ));
                }
            }
        }
        // Unmapped columns are cast to text by the server itself.
        let mut sql = source.query.clone();
        let statement = if text_columns.is_empty() {
            statement
        } else {
            let select = columns
                .iter()
                .map(|c| {
                    let quoted = format!("\"{}\"", c.name.replace('"', "\"\""));
                    if text_columns.contains(&c.name) {
                        format!("{quoted}::text AS {quoted}")
                    } else {
                        quoted
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            sql = format!("SELECT {select} FROM ({}) AS source", source.query);
            client
                .prepare(&sql)
                .await
                .map_err(|e| source_error("preparing the text fallback", &e))?
        };
        let schema: SchemaRef = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(&c.name, c.arrow.clone(), true))
                .collect::<Vec<_>>(),
        ));
        if schema_tx.send(Arc::clone(&schema)).is_err() {
            return Ok((0, None));
        }
        // One snapshot for the watermark's new maximum and the rows up to it.
        let transaction = client
            .build_transaction()
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await
            .map_err(|e| source_error("starting a read-only transaction", &e))?;
        let mut high = None;
        let portal = match &source.watermark {
            None => transaction.bind(&statement, &[]).await,
            Some((column, after)) => {
                let Some(found) = statement.columns().iter().find(|c| c.name() == column) else {
                    return Err(IngestError::invalid(
                        "watermark_column",
                        format!("{column:?} is not a column of the source"),
                    ));
                };
                let pg_type = found.type_().name().to_string();
                let quoted = format!("\"{}\"", column.replace('"', "\"\""));
                let above = if after.is_some() {
                    format!(" WHERE {quoted} > $1::text::{pg_type}")
                } else {
                    String::new()
                };
                let max_sql = format!("SELECT max({quoted})::text FROM ({sql}) AS source{above}");
                let max_row = match after {
                    Some(after) => transaction.query_one(&max_sql, &[after]).await,
                    None => transaction.query_one(&max_sql, &[]).await,
                }
                .map_err(|e| source_error("reading the watermark column", &e))?;
                high = max_row.get::<_, Option<String>>(0);
                let Some(upper) = high.clone() else {
                    // No new rows: keep the old watermark.
                    return Ok((0, after.clone()));
                };
                let range = match after {
                    Some(_) => format!("{quoted} > $1::text::{pg_type} AND {quoted} <= $2::text::{pg_type}"),
                    None => format!("{quoted} <= $1::text::{pg_type}"),
                };
                let bounded = transaction
                    .prepare(&format!("SELECT * FROM ({sql}) AS source WHERE {range}"))
                    .await
                    .map_err(|e| source_error("preparing the incremental query", &e))?;
                match after {
                    Some(after) => transaction.bind(&bounded, &[after, &upper]).await,
                    None => transaction.bind(&bounded, &[&upper]).await,
                }
            }
        }
        .map_err(|e| source_error("opening the cursor", &e))?;
        let mut total = 0u64;
        loop {
            if cancelled.is_cancelled() {
                return Err(IngestError::Cancelled);
            }
            // A fetch can take long (a slow query): a cancel does not wait for it.
            let rows = tokio::select! {
                rows = transaction.query_portal(&portal, batch_size as i32) => rows,
                () = cancelled.cancelled() => return Err(IngestError::Cancelled),
            }
            .map_err(|e| source_error("reading rows", &e))?;
            if rows.is_empty() {
                break;
            }
            total += rows.len() as u64;
            let batch = to_batch(&schema, &columns, &rows, &bytes)?;
            if batches.send(Ok(batch)).await.is_err() {
                return Ok((total, high));
            }
            if rows.len() < batch_size {
                break;
            }
        }
        Ok((total, high))
    }
    .await;
    drop(client);
    connection.abort();
    outcome
}

fn to_batch(
    schema: &SchemaRef,
    columns: &[SourceColumn],
    rows: &[Row],
    bytes: &AtomicU64,
) -> Result<RecordBatch, IngestError> {
    let mut builders: Vec<Box<dyn ArrayBuilder>> = columns
        .iter()
        .map(|c| builder_for(&c.arrow, rows.len()))
        .collect();
    let mut size = 0u64;
    for row in rows {
        for (i, column) in columns.iter().enumerate() {
            let raw: Option<Raw> = row
                .try_get(i)
                .map_err(|e| IngestError::Source(e.to_string()))?;
            let raw = raw.map(|r| r.0);
            size += raw.map_or(0, |r| r.len() as u64);
            append(builders[i].as_mut(), &column.pg, &column.arrow, raw).map_err(|message| {
                IngestError::invalid(
                    "source",
                    format!("column {:?} ({}): {message}", column.name, column.pg),
                )
            })?;
        }
    }
    bytes.fetch_add(size, Ordering::Relaxed);
    let arrays: Vec<ArrayRef> = builders.iter_mut().map(|b| b.finish()).collect();
    RecordBatch::try_new(Arc::clone(schema), arrays).map_err(|e| IngestError::Source(e.to_string()))
}

#[cfg(test)]
mod tests;
