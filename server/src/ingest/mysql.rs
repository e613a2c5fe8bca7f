//! `lakehouse.ingest.mysql`: a MySQL or MariaDB table or query into a table.
//!
//! The query runs as a prepared statement, so rows arrive in the binary protocol
//! (numbers and dates as values, not text), and they are read as an unbuffered
//! stream: the server sends rows as fast as they are consumed, `batch_size` rows
//! become one Arrow batch, and memory stays at about one batch whatever the table
//! size. No LIMIT/OFFSET paging. The session runs in UTC and one consistent
//! snapshot (REPEATABLE READ) covers an incremental run's maximum and its rows.
//!
//! | MySQL / MariaDB | Arrow / Delta |
//! |---|---|
//! | tinyint(1), bool, bit(1) | Boolean (a value other than 0/1 is an error) |
//! | tinyint, smallint, mediumint, int, bigint | Int8, Int16, Int32, Int32, Int64 |
//! | the same unsigned | Int16, Int32, Int32, Int64, Decimal128(20, 0): Delta has no unsigned types |
//! | bit(n), n > 1 | Int64 (n < 64), Decimal128(20, 0) (n = 64) |
//! | float, double | Float32, Float64 |
//! | decimal(p,s), p <= 38 | Decimal128(p, s) |
//! | decimal(p,s), p > 38 | Utf8, the exact decimal text |
//! | char, varchar, text, enum, set | Utf8 |
//! | json | Utf8 (the JSON text) |
//! | binary, varbinary, blob | Binary |
//! | date | Date32 |
//! | datetime | Timestamp(µs) |
//! | timestamp | Timestamp(µs, UTC) |
//! | time | Utf8 (`[-]HH:MM:SS[.ffffff]`, hours may pass 24): Delta has no time type |
//! | year | Int16 |
//! | zero dates (`0000-00-00`) | NULL |

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow::array::{ArrayBuilder, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, Opts, Params, Row, Value};

use super::IngestError;
use super::database::{DbSource, Reader, System, builder_for};
use crate::secrets::redact;

mod values;

use values::append;

/// How long connecting may take before the source counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// An error from MySQL, with any password removed.
fn source_error(context: &str, error: &mysql_async::Error) -> IngestError {
    let message = redact(&format!("{context}: {error}"));
    match error {
        mysql_async::Error::Server(server) => match server.code {
            // no such table, database, column
            1146 | 1049 | 1054 | 1051 => IngestError::NotFound(message),
            // access denied: user/password, database, table, column, privilege
            1045 | 1044 | 1142 | 1143 | 1227 | 1370 => IngestError::PermissionDenied(message),
            // syntax and other statement errors
            1064 | 1060 | 1248 | 1052 => IngestError::invalid("query", message),
            _ => IngestError::Source(message),
        },
        mysql_async::Error::Url(_) => IngestError::invalid("dsn", message),
        _ => IngestError::Source(message),
    }
}

/// A source column: its MySQL type and how it lands in Arrow.
#[derive(Debug, Clone)]
struct SourceColumn {
    name: String,
    mysql: ColumnType,
    arrow: DataType,
}

/// A MySQL type for people: `newdecimal`, `geometry`.
fn type_name(kind: ColumnType) -> String {
    format!("{kind:?}")
        .trim_start_matches("MYSQL_TYPE_")
        .to_lowercase()
}

fn is_unsigned(column: &Column) -> bool {
    column.flags().contains(ColumnFlags::UNSIGNED_FLAG)
}

/// The Arrow type of a result column, `None` when there is no mapping.
fn arrow_type(column: &Column) -> Option<DataType> {
    use ColumnType::*;
    let unsigned = is_unsigned(column);
    let binary = column.character_set() == 63;
    Some(match column.column_type() {
        MYSQL_TYPE_TINY if column.column_length() == 1 => DataType::Boolean,
        MYSQL_TYPE_TINY if unsigned => DataType::Int16,
        MYSQL_TYPE_TINY => DataType::Int8,
        MYSQL_TYPE_SHORT if unsigned => DataType::Int32,
        MYSQL_TYPE_SHORT => DataType::Int16,
        MYSQL_TYPE_INT24 => DataType::Int32,
        MYSQL_TYPE_LONG if unsigned => DataType::Int64,
        MYSQL_TYPE_LONG => DataType::Int32,
        MYSQL_TYPE_LONGLONG if unsigned => DataType::Decimal128(20, 0),
        MYSQL_TYPE_LONGLONG => DataType::Int64,
        MYSQL_TYPE_YEAR => DataType::Int16,
        MYSQL_TYPE_BIT => match column.column_length() {
            1 => DataType::Boolean,
            2..=63 => DataType::Int64,
            _ => DataType::Decimal128(20, 0),
        },
        MYSQL_TYPE_FLOAT => DataType::Float32,
        MYSQL_TYPE_DOUBLE => DataType::Float64,
        MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => {
            let scale = u32::from(column.decimals());
            // The display length counts a sign (signed) and a point (scale > 0).
            let precision = column
                .column_length()
                .saturating_sub(u32::from(!unsigned) + u32::from(scale > 0));
            if (1..=38).contains(&precision) && scale <= precision {
                DataType::Decimal128(precision as u8, scale as i8)
            } else {
                DataType::Utf8
            }
        }
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => DataType::Date32,
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => {
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
        }
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => DataType::Utf8,
        MYSQL_TYPE_JSON | MYSQL_TYPE_ENUM | MYSQL_TYPE_SET | MYSQL_TYPE_NULL => DataType::Utf8,
        MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_STRING
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_BLOB => {
            if binary {
                DataType::Binary
            } else {
                DataType::Utf8
            }
        }
        _ => return None,
    })
}

/// The SQL of a value that compares with a column of this type exactly (a
/// watermark travels as text).
fn typed_parameter(column: &Column) -> String {
    use ColumnType::*;
    match column.column_type() {
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG
        | MYSQL_TYPE_LONGLONG | MYSQL_TYPE_YEAR => {
            if is_unsigned(column) {
                "CAST(? AS UNSIGNED)".into()
            } else {
                "CAST(? AS SIGNED)".into()
            }
        }
        MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => {
            format!("CAST(? AS DECIMAL(65, {}))", column.decimals().min(30))
        }
        MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => "(? + 0e0)".into(),
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => "CAST(? AS DATE)".into(),
        MYSQL_TYPE_DATETIME
        | MYSQL_TYPE_DATETIME2
        | MYSQL_TYPE_TIMESTAMP
        | MYSQL_TYPE_TIMESTAMP2 => "CAST(? AS DATETIME(6))".into(),
        _ => "?".into(),
    }
}

/// Rows as Arrow builders, flushed into a batch every `batch_size` rows.
struct Batcher {
    schema: SchemaRef,
    columns: Vec<SourceColumn>,
    builders: Vec<Box<dyn ArrayBuilder>>,
    rows: usize,
    bytes: u64,
}

impl Batcher {
    fn new(schema: SchemaRef, columns: Vec<SourceColumn>, capacity: usize) -> Self {
        let builders = columns
            .iter()
            .map(|c| builder_for(&c.arrow, capacity))
            .collect();
        Self {
            schema,
            columns,
            builders,
            rows: 0,
            bytes: 0,
        }
    }

    fn push(&mut self, row: &Row) -> Result<(), IngestError> {
        for (i, column) in self.columns.iter().enumerate() {
            let value = row.as_ref(i).unwrap_or(&Value::NULL);
            self.bytes += match value {
                Value::Bytes(b) => b.len() as u64,
                Value::NULL => 0,
                _ => 8,
            };
            append(self.builders[i].as_mut(), column, value).map_err(|message| {
                IngestError::invalid(
                    "source",
                    format!(
                        "column {:?} ({}): {message}",
                        column.name,
                        type_name(column.mysql)
                    ),
                )
            })?;
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<RecordBatch, IngestError> {
        self.rows = 0;
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(|b| b.finish()).collect();
        RecordBatch::try_new(Arc::clone(&self.schema), arrays)
            .map_err(|e| IngestError::Source(e.to_string()))
    }
}

/// Stops the statement running on connection `id` (a stream abandoned midway would
/// otherwise be read to its end when the connection is dropped).
async fn kill_query(opts: Opts, id: u32) {
    if let Ok(Ok(mut conn)) = tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
        let _ = conn.query_drop(format!("KILL QUERY {id}")).await;
        let _ = conn.disconnect().await;
    }
}

/// Connects, describes the columns and streams the rows as Arrow batches to the
/// reader; the schema goes first. Returns the rows read and, for an incremental
/// ingest, the new watermark.
pub(super) async fn produce(
    source: DbSource,
    reader: Reader,
) -> Result<(u64, Option<String>), IngestError> {
    let opts = Opts::from_url(&source.dsn).map_err(|e| {
        IngestError::invalid(
            "dsn",
            redact(&format!("{e}: e.g. {}", System::Mysql.example_dsn())),
        )
    })?;
    let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts.clone())).await {
        Ok(connected) => connected.map_err(|e| source_error("connecting to MySQL", &e))?,
        Err(_) => {
            return Err(IngestError::Source(format!(
                "connecting to MySQL at {}:{}: no answer in {} s",
                opts.ip_or_hostname(),
                opts.tcp_port(),
                CONNECT_TIMEOUT.as_secs()
            )));
        }
    };
    let id = conn.id();
    let mut streaming = false;
    let outcome = read(&mut conn, &source, reader, &mut streaming).await;
    if streaming {
        // Failed or cancelled midway: stop the server's side before letting go.
        kill_query(opts, id).await;
    }
    drop(conn);
    outcome
}

async fn read(
    conn: &mut Conn,
    source: &DbSource,
    reader: Reader,
    streaming: &mut bool,
) -> Result<(u64, Option<String>), IngestError> {
    let Reader {
        batch_size,
        cancelled,
        schema: schema_tx,
        batches,
        bytes,
    } = reader;
    // UTC for TIMESTAMP columns; a long stream must not time out while the
    // consumer writes a large batch.
    conn.query_drop("SET SESSION time_zone = '+00:00', net_write_timeout = 3600")
        .await
        .map_err(|e| source_error("setting up the session", &e))?;
    let statement = conn
        .prep(&source.query)
        .await
        .map_err(|e| source_error("preparing the source query", &e))?;
    let mut columns = Vec::new();
    let mut text_columns = Vec::new();
    for column in statement.columns().iter() {
        let name = column.name_str().to_string();
        let mysql = column.column_type();
        match arrow_type(column) {
            Some(arrow) => columns.push(SourceColumn { name, mysql, arrow }),
            None if source.text_fallback => {
                text_columns.push((name.clone(), mysql));
                columns.push(SourceColumn {
                    name,
                    mysql,
                    arrow: DataType::Utf8,
                });
            }
            None => {
                return Err(IngestError::invalid(
                    "source",
                    format!(
                        "column {name:?} has type {} which has no mapping; cast it in a query or set text_fallback",
                        type_name(mysql)
                    ),
                ));
            }
        }
    }
    let quote = |name: &str| System::Mysql.quote(name);
    // Unmapped columns are turned into text by the server itself.
    let sql = if text_columns.is_empty() {
        source.query.clone()
    } else {
        let select = columns
            .iter()
            .map(|c| {
                let quoted = quote(&c.name);
                match text_columns.iter().find(|(name, _)| name == &c.name) {
                    Some((_, ColumnType::MYSQL_TYPE_GEOMETRY)) => {
                        format!("ST_AsText({quoted}) AS {quoted}")
                    }
                    Some(_) => format!("CAST({quoted} AS CHAR) AS {quoted}"),
                    None => quoted,
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!("SELECT {select} FROM ({}) AS source", source.query)
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
    conn.query_drop("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(|e| source_error("setting the isolation level", &e))?;
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(|e| source_error("starting a read-only transaction", &e))?;
    let mut high = None;
    let (sql, params) = match &source.watermark {
        None => (sql, Params::Empty),
        Some((column, after)) => {
            let source_columns = statement.columns();
            let Some(found) = source_columns
                .iter()
                .find(|c| c.name_str() == column.as_str())
            else {
                return Err(IngestError::invalid(
                    "watermark_column",
                    format!("{column:?} is not a column of the source"),
                ));
            };
            let parameter = typed_parameter(found);
            let quoted = quote(column);
            let above = if after.is_some() {
                format!(" WHERE {quoted} > {parameter}")
            } else {
                String::new()
            };
            let max_sql =
                format!("SELECT CAST(MAX({quoted}) AS CHAR) FROM ({sql}) AS source{above}");
            let max_params = match after {
                Some(after) => Params::Positional(vec![Value::from(after.as_str())]),
                None => Params::Empty,
            };
            high = conn
                .exec_first::<Option<String>, _, _>(max_sql, max_params)
                .await
                .map_err(|e| source_error("reading the watermark column", &e))?
                .flatten();
            let Some(upper) = high.clone() else {
                // No new rows: keep the old watermark.
                conn.query_drop("COMMIT").await.ok();
                return Ok((0, after.clone()));
            };
            let (range, params) = match after {
                Some(after) => (
                    format!("{quoted} > {parameter} AND {quoted} <= {parameter}"),
                    vec![Value::from(after.as_str()), Value::from(upper.as_str())],
                ),
                None => (
                    format!("{quoted} <= {parameter}"),
                    vec![Value::from(upper.as_str())],
                ),
            };
            (
                format!("SELECT * FROM ({sql}) AS source WHERE {range}"),
                Params::Positional(params),
            )
        }
    };
    // The first statement serves unless a fallback or watermark rewrote the SQL.
    let statement = if sql == source.query {
        statement
    } else {
        conn.prep(&sql)
            .await
            .map_err(|e| source_error("preparing the source query", &e))?
    };
    let mut result = conn
        .exec_iter(&statement, params)
        .await
        .map_err(|e| source_error("running the source query", &e))?;
    *streaming = true;
    let mut batcher = Batcher::new(Arc::clone(&schema), columns, batch_size);
    let mut total = 0u64;
    loop {
        if cancelled.is_cancelled() {
            return Err(IngestError::Cancelled);
        }
        let row = result
            .next()
            .await
            .map_err(|e| source_error("reading rows", &e))?;
        let done = row.is_none();
        if let Some(row) = row {
            batcher.push(&row)?;
            total += 1;
        }
        if batcher.rows == batch_size || (done && batcher.rows > 0) {
            bytes.fetch_add(std::mem::take(&mut batcher.bytes), Ordering::Relaxed);
            let batch = batcher.finish()?;
            if batches.send(Ok(batch)).await.is_err() {
                // The consumer went away (it failed): stop reading.
                return Ok((total, high));
            }
        }
        if done {
            break;
        }
    }
    drop(result);
    *streaming = false;
    conn.query_drop("COMMIT")
        .await
        .map_err(|e| source_error("ending the read-only transaction", &e))?;
    Ok((total, high))
}

#[cfg(test)]
mod tests;
