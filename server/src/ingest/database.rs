//! What PostgreSQL and MySQL/MariaDB ingest share: the source (a DSN or a named
//! connection, a table or a query, an optional watermark) and the run around the
//! system's reader: one Delta commit, lineage, PII, the watermark stored after it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{
    ArrayBuilder, Decimal128Builder, ListBuilder, RecordBatch, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::error::DataFusionError;
use lakehouse_flight_ext::v1::IngestResult;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::IngestError;
use crate::config::ConnectionConfig;
use crate::secrets::redact;

/// The source database's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum System {
    /// PostgreSQL (tokio-postgres).
    Postgres,
    /// MySQL or MariaDB (mysql_async).
    Mysql,
}

impl System {
    /// The name in lineage (`source_system`) and in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
        }
    }

    /// The product, for people.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::Mysql => "MySQL",
        }
    }

    /// The action (and job type) of this system's ingest.
    pub(crate) fn action(self) -> &'static str {
        match self {
            Self::Postgres => lakehouse_flight_ext::actions::INGEST_POSTGRES,
            Self::Mysql => lakehouse_flight_ext::actions::INGEST_MYSQL,
        }
    }

    /// An example DSN, for error messages.
    pub(crate) fn example_dsn(self) -> &'static str {
        match self {
            Self::Postgres => "postgres://user:password@host:5432/db",
            Self::Mysql => "mysql://user:password@host:3306/db",
        }
    }

    fn of_scheme(scheme: &str) -> Option<Self> {
        match scheme {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::Mysql),
            _ => None,
        }
    }

    /// Quotes `schema.table` (PostgreSQL) or `db.table` (MySQL) as identifiers.
    pub(crate) fn quote_table(self, name: &str) -> Result<String, IngestError> {
        let parts: Vec<&str> = name.split('.').collect();
        if parts.len() > 2 || parts.iter().any(|p| p.trim().is_empty()) {
            let form = match self {
                Self::Postgres => "table or schema.table",
                Self::Mysql => "table or database.table",
            };
            return Err(IngestError::invalid(
                "source_table",
                format!("{name:?} is not {form}"),
            ));
        }
        Ok(parts
            .iter()
            .map(|p| self.quote(p))
            .collect::<Vec<_>>()
            .join("."))
    }

    /// Quotes one identifier.
    pub(crate) fn quote(self, name: &str) -> String {
        match self {
            Self::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
            Self::Mysql => format!("`{}`", name.replace('`', "``")),
        }
    }
}

/// A validated database ingest: what to read.
#[derive(Debug, Clone)]
pub(crate) struct DbSource {
    /// PostgreSQL or MySQL.
    pub system: System,
    /// The DSN, password included (secret: never logged; use [`DbSource::location`]).
    pub dsn: String,
    /// The table, when the source is a table.
    pub table: Option<String>,
    /// The SELECT to run.
    pub query: String,
    /// Read unmapped types as text.
    pub text_fallback: bool,
    /// Incremental ingest: (column, the watermark of the previous run).
    pub watermark: Option<(String, Option<String>)>,
}

impl DbSource {
    /// Key, on the target table, of this source's watermark in `column`.
    pub(crate) fn watermark_key(&self, column: &str) -> String {
        format!("{} | {column}", self.location())
    }

    /// The source for lineage and messages: the DSN (redacted) and the table or query.
    pub(crate) fn location(&self) -> String {
        let what = self.table.clone().unwrap_or_else(|| self.query.clone());
        redact(&format!("{} {what}", self.dsn))
    }
}

/// The named connections of the configuration; passwords are read when used, so
/// a rotated secret file needs no restart.
#[derive(Debug, Clone, Default)]
pub(crate) struct Connections(HashMap<String, ConnectionConfig>);

impl Connections {
    /// Connections by name (validated by the configuration).
    pub(crate) fn new(connections: HashMap<String, ConnectionConfig>) -> Self {
        Self(connections)
    }

    /// The DSN of connection `name`, with its password, for an ingest of `system`.
    pub(crate) fn dsn(&self, name: &str, system: System) -> Result<String, IngestError> {
        let Some(connection) = self.0.get(name) else {
            let mut known: Vec<&str> = self.0.keys().map(String::as_str).collect();
            known.sort_unstable();
            return Err(IngestError::NotFound(format!(
                "connection {name:?} is not configured (known: {}); add [connections.{name}] to the server's config",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        };
        let mut url = url::Url::parse(&connection.url).map_err(|e| {
            IngestError::Precondition(format!("connection {name:?}: url is not a URL ({e})"))
        })?;
        match System::of_scheme(url.scheme()) {
            Some(kind) if kind == system => {}
            _ => {
                return Err(IngestError::invalid(
                    "connection",
                    format!(
                        "connection {name:?} is a {} URL, not {}",
                        url.scheme(),
                        system.label()
                    ),
                ));
            }
        }
        if system == System::Mysql {
            // mysql_async knows only this scheme.
            let rest = connection
                .url
                .split_once("://")
                .map_or("", |(_, rest)| rest);
            url = url::Url::parse(&format!("mysql://{rest}")).map_err(|e| {
                IngestError::Precondition(format!("connection {name:?}: url is not a URL ({e})"))
            })?;
        }
        let password = match (&connection.password_env, &connection.password_file) {
            (Some(variable), _) => Some(std::env::var(variable).map_err(|_| {
                IngestError::Precondition(format!(
                    "connection {name:?}: environment variable {variable} (password_env) is not set on the server"
                ))
            })?),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        IngestError::Precondition(format!(
                            "connection {name:?}: cannot read password_file {}: {e}",
                            path.display()
                        ))
                    })?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        if let Some(password) = password {
            // Percent-encoded by the URL; both drivers decode it.
            url.set_password(Some(&password)).map_err(|()| {
                IngestError::Precondition(format!(
                    "connection {name:?}: the url cannot hold a password"
                ))
            })?;
        }
        Ok(url.to_string())
    }
}

/// An Arrow builder for a column of a database source (decimals keep precision and
/// scale, timestamps their zone, lists their item field).
pub(super) fn builder_for(data_type: &DataType, capacity: usize) -> Box<dyn ArrayBuilder> {
    match data_type {
        DataType::List(field) => Box::new(
            ListBuilder::new(builder_for(field.data_type(), capacity))
                .with_field(Arc::clone(field)),
        ),
        DataType::Decimal128(p, s) => Box::new(
            Decimal128Builder::with_capacity(capacity)
                .with_precision_and_scale(*p, *s)
                .unwrap_or_default(),
        ),
        DataType::Timestamp(_, Some(tz)) => Box::new(
            TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone(Arc::clone(tz)),
        ),
        other => arrow::array::make_builder(other, capacity),
    }
}

/// Arguments of a system's reader: it sends the schema first, then batches.
pub(crate) struct Reader {
    /// Rows per batch.
    pub batch_size: usize,
    /// Set when the job is cancelled.
    pub cancelled: CancellationToken,
    /// Receives the Arrow schema before any batch.
    pub schema: oneshot::Sender<SchemaRef>,
    /// Receives the batches.
    pub batches: mpsc::Sender<Result<RecordBatch, DataFusionError>>,
    /// Bytes read from the source so far.
    pub bytes: Arc<AtomicU64>,
}

/// Runs a database ingest into `target`; the job's progress follows it.
pub(crate) async fn run(
    engine: Arc<crate::query::QueryEngine>,
    job: crate::jobs::JobContext,
    source: DbSource,
    target: super::Target,
) -> Result<IngestResult, IngestError> {
    let started = std::time::Instant::now();
    job.phase("connecting");
    let bytes = Arc::new(AtomicU64::new(0));
    let (schema_tx, schema_rx) = oneshot::channel();
    let (batch_tx, batch_rx) = mpsc::channel(4);
    let producer = {
        let source = source.clone();
        let reader = Reader {
            batch_size: engine.batch_size(),
            cancelled: job.cancelled().clone(),
            schema: schema_tx,
            batches: batch_tx.clone(),
            bytes: Arc::clone(&bytes),
        };
        tokio::spawn(async move {
            let outcome = match source.system {
                System::Postgres => super::postgres::produce(source, reader).await,
                System::Mysql => super::mysql::produce(source, reader).await,
            };
            if let Err(error) = &outcome {
                let _ = batch_tx
                    .send(Err(DataFusionError::Execution(error.to_string())))
                    .await;
            }
            outcome
        })
    };
    let origin = super::Origin {
        job_type: source.system.action().into(),
        source: Some(crate::lineage::Source {
            system: source.system.name().into(),
            location: source.location(),
        }),
        parent_run_id: None,
        bytes: Arc::clone(&bytes),
    };
    job.phase("reading");
    let (committed, (_, watermark)) = super::commit_produced(
        &engine,
        &job,
        &target,
        &origin,
        schema_rx,
        batch_rx,
        producer,
        Arc::new(AtomicU64::new(0)),
    )
    .await?;
    let mut result = super::file::result_of(&committed, bytes.load(Ordering::Relaxed), 0);
    if let (Some((column, _)), Some(value)) = (&source.watermark, &watermark) {
        let key = source.watermark_key(column);
        engine
            .catalog()
            .set_watermark(&target.schema, &target.table, &key, value)
            .await?;
        result.watermark = value.clone();
    }
    result.seconds = started.elapsed().as_secs_f64();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connections() -> Connections {
        let mut map = HashMap::new();
        map.insert(
            "pg".to_string(),
            ConnectionConfig {
                url: "postgres://etl@db:5432/sales".into(),
                password_env: Some("LAKEHOUSE_TEST_DB_PASSWORD_UNSET".into()),
                password_file: None,
            },
        );
        map.insert(
            "maria".to_string(),
            ConnectionConfig {
                url: "mariadb://root@db:3306/shop".into(),
                password_env: None,
                password_file: None,
            },
        );
        Connections::new(map)
    }

    #[test]
    fn resolves_named_connections() {
        let c = connections();
        assert_eq!(
            c.dsn("maria", System::Mysql).unwrap(),
            "mysql://root@db:3306/shop"
        );
        assert!(matches!(
            c.dsn("maria", System::Postgres),
            Err(IngestError::Invalid { .. })
        ));
        let missing = c.dsn("nope", System::Mysql).unwrap_err().to_string();
        assert!(missing.contains("maria, pg"), "{missing}");
        let unset = c.dsn("pg", System::Postgres).unwrap_err();
        assert!(matches!(unset, IngestError::Precondition(_)), "{unset}");
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(
            System::Postgres.quote_table("s.t\"x").unwrap(),
            "\"s\".\"t\"\"x\""
        );
        assert_eq!(System::Mysql.quote_table("db.t`x").unwrap(), "`db`.`t``x`");
        assert!(System::Mysql.quote_table("a.b.c").is_err());
        assert!(System::Postgres.quote_table("a.").is_err());
    }
}
