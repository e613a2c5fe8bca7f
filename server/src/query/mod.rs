//! SQL over the catalog with DataFusion.
//!
//! Owns: the shared runtime (memory pool, spill space) and the construction of a
//! fresh `SessionContext` for every request. May call: `catalog`, `storage`,
//! `jobs`/`lineage`/`events` (through `Services`), `pii` (the write envelope's
//! sampler), and the leaves `config`, `observe`, `rows`.
//! Invariants:
//! - every query runs under the one bounded memory pool, so no single query can
//!   exhaust the machine (it fails with ResourcesExhausted instead);
//! - planning never executes anything: DDL and DML are planned here and applied
//!   by [`write`] (each as one Delta commit) only when the caller runs them;
//! - session statements (`SET`, `BEGIN`, `PREPARE`...) are refused: sessions are
//!   per request, and transactions are not offered.

mod apply;
mod envelope;
mod params;
mod provider;
pub(crate) mod system;
mod types;
mod write;

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::catalog::TableFunctionImpl;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SendableRecordBatchStream, SessionState};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};

pub(crate) use envelope::{Commit, WriteOrigin};
pub(crate) use params::{ParameterRows, parameter_schema};
pub(crate) use provider::LakehouseCatalog;
pub(crate) use system::{SystemTable, SystemTables, table_fn};
use write::check_query;
pub(crate) use write::{Statement, Write, classify, count_schema, is_write};

use crate::catalog::{CATALOG_NAME, Catalog, DEFAULT_SCHEMA, TableEntry};
use crate::config::Settings;
use crate::services::Services;

/// The catalog and schema unqualified names resolve against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDefaults {
    /// Default catalog (always `lakehouse` today).
    pub(crate) catalog: String,
    /// Default schema.
    pub(crate) schema: String,
    /// The model profile the session is bound to: it sees only that profile's
    /// vector indexes.
    pub(crate) profile: Option<String>,
}

/// The profile a query's session is bound to, as a session config extension (read
/// by the search table functions and the `system` schema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BoundProfile(pub String);

impl Default for SessionDefaults {
    fn default() -> Self {
        Self {
            catalog: CATALOG_NAME.to_string(),
            schema: DEFAULT_SCHEMA.to_string(),
            profile: None,
        }
    }
}

/// Plans and runs SQL against the catalog.
#[derive(Debug)]
pub struct QueryEngine {
    catalog: Arc<Catalog>,
    services: Arc<Services>,
    /// The tables of the `system` schema, registered by each subsystem.
    system: Arc<SystemTables>,
    runtime: Arc<RuntimeEnv>,
    target_partitions: usize,
    batch_size: usize,
    /// Session whose options Delta scans inherit (view types off, see [`session_config`]).
    scan_session: Arc<SessionState>,
    /// Table functions every session has (`vector_search`).
    table_functions: std::sync::RwLock<Vec<(String, Arc<dyn TableFunctionImpl>)>>,
}

impl QueryEngine {
    /// An engine whose queries share a memory pool of `settings.memory_limit` bytes.
    pub(crate) fn new(
        catalog: Arc<Catalog>,
        services: Arc<Services>,
        settings: &Settings,
    ) -> Result<Self> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(settings.memory_limit)))
            .build_arc()?;
        for bucket in catalog.buckets().list() {
            // Local buckets use DataFusion's built-in file:// store; S3 ones need theirs.
            if bucket.kind() != crate::storage::BucketKind::Local {
                runtime.register_object_store(bucket.url(), bucket.store());
            }
        }
        let config = session_config(
            &SessionDefaults::default(),
            settings.target_partitions,
            settings.batch_size,
        );
        let scan_session = Arc::new(
            SessionStateBuilder::new()
                .with_config(config)
                .with_runtime_env(Arc::clone(&runtime))
                .build(),
        );
        let system = Arc::new(SystemTables::default());
        for table in system::catalog_tables(&catalog, &scan_session) {
            system.register(table);
        }
        Ok(Self {
            catalog,
            services,
            system,
            runtime,
            target_partitions: settings.target_partitions,
            batch_size: settings.batch_size,
            scan_session,
            table_functions: std::sync::RwLock::new(Vec::new()),
        })
    }

    /// Rows per batch.
    pub(crate) fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The catalog queries run over.
    pub(crate) fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Jobs, lineage and dataset events.
    pub(crate) fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Adds a table to the `system` schema of every later session.
    pub(crate) fn register_system_table(&self, table: Arc<dyn SystemTable>) {
        self.system.register(table);
    }

    /// Adds a table function to every later session.
    pub(crate) fn register_table_function(&self, name: &str, function: Arc<dyn TableFunctionImpl>) {
        if let Ok(mut functions) = self.table_functions.write() {
            functions.push((name.to_string(), function));
        }
    }

    /// A new session for one request.
    pub fn session(&self, defaults: &SessionDefaults) -> SessionContext {
        let config = session_config(defaults, self.target_partitions, self.batch_size);
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(Arc::clone(&self.runtime))
            .with_default_features()
            .with_type_planner(Arc::new(types::LakehouseTypes))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let provider = LakehouseCatalog::new(
            Arc::clone(&self.catalog),
            Arc::clone(&self.scan_session),
            Arc::clone(&self.system),
            defaults.profile.clone(),
        );
        ctx.register_catalog(CATALOG_NAME, Arc::new(provider));
        if let Ok(functions) = self.table_functions.read() {
            for (name, function) in functions.iter() {
                ctx.register_udtf(name, Arc::clone(function));
            }
        }
        ctx
    }

    /// Every row of a Delta table the catalog does not list (an index's vectors).
    pub(crate) async fn read_unlisted(&self, entry: &TableEntry) -> Result<Vec<RecordBatch>> {
        let provider =
            provider::open_provider(&self.catalog, &self.scan_session, entry, None).await?;
        let ctx = self.session(&SessionDefaults::default());
        ctx.read_table(provider)?.collect().await
    }

    /// Plans one SQL statement (query, DDL or DML) without running it.
    pub async fn plan(&self, ctx: &SessionContext, sql: &str) -> Result<LogicalPlan> {
        check_complexity(sql)?;
        let numbered = params::number_question_marks(sql);
        let sql = numbered.as_deref().unwrap_or(sql);
        let plan = ctx.state().create_logical_plan(sql).await?;
        statement_options()
            .verify_plan(&plan)
            .map_err(|e| match e {
                DataFusionError::Plan(message) => DataFusionError::NotImplemented(format!(
                    "{message}: session statements (SET, BEGIN/COMMIT, PREPARE) are not supported; \
                 use Flight SQL session options and prepared statements"
                )),
                other => other,
            })?;
        // Refuse what no path may run (COPY to server files, writes nested in a
        // query, unsupported DDL) here, so a statement sent as a query is held to
        // the same rules as one sent as an update. Queries only need the tree walk.
        if is_write(&plan) || matches!(plan, LogicalPlan::Copy(_)) {
            let state = ctx.state();
            let options = &state.config().options().catalog;
            let defaults = SessionDefaults {
                catalog: options.default_catalog.clone(),
                schema: options.default_schema.clone(),
                profile: None,
            };
            classify(plan.clone(), &defaults)?;
        } else {
            check_query(&plan)?;
        }
        Ok(plan)
    }

    /// Plans user SQL that must return rows (an eval set's queries, anything a tool
    /// sends for rows outside Flight SQL): the same guards as a Flight SQL statement
    /// ([`Self::plan`]), and a statement that changes anything is refused.
    pub(crate) async fn plan_query(&self, ctx: &SessionContext, sql: &str) -> Result<LogicalPlan> {
        let plan = self.plan(ctx, sql).await?;
        if is_write(&plan) {
            return Err(DataFusionError::Plan(
                "expected a query that returns rows, not a statement that changes data".to_string(),
            ));
        }
        Ok(plan)
    }

    /// The rows of `table` that match `filter`, projected to `columns`. The filter
    /// is user text parsed as one SQL expression (never spliced into a statement),
    /// and the plan is held to the query rules of [`Self::plan`].
    pub(crate) async fn plan_filtered(
        &self,
        ctx: &SessionContext,
        table: datafusion::common::TableReference,
        filter: &str,
        columns: Vec<datafusion::prelude::Expr>,
    ) -> Result<LogicalPlan> {
        check_complexity(filter)?;
        let rows = ctx.table(table).await?;
        let predicate = rows.parse_sql_expr(filter)?;
        let plan = rows
            .filter(predicate)?
            .select(columns)?
            .into_unoptimized_plan();
        check_query(&plan)?;
        Ok(plan)
    }

    /// Runs a plan, streaming its batches.
    pub async fn execute(
        &self,
        ctx: &SessionContext,
        plan: LogicalPlan,
    ) -> Result<SendableRecordBatchStream> {
        ctx.execute_logical_plan(plan).await?.execute_stream().await
    }

    /// The physical plan of a query: optimized and ready to run, nothing run yet.
    /// Its schema is the one the query streams (the logical plan's may differ in
    /// nullability and metadata once the optimizer has folded constants).
    pub(crate) async fn physical(
        &self,
        ctx: &SessionContext,
        plan: &LogicalPlan,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        ctx.state().create_physical_plan(plan).await
    }

    /// Runs a physical plan made by [`Self::physical`] in `ctx`.
    pub(crate) fn execute_physical(
        &self,
        ctx: &SessionContext,
        plan: Arc<dyn ExecutionPlan>,
    ) -> Result<SendableRecordBatchStream> {
        datafusion::physical_plan::execute_stream(plan, ctx.task_ctx())
    }
}

/// Options of every session.
///
/// String and binary columns come back as plain `Utf8`/`Binary`, not the view
/// types DataFusion prefers internally: JDBC and most BI tools cannot read views.
fn session_config(
    defaults: &SessionDefaults,
    target_partitions: usize,
    batch_size: usize,
) -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema(&defaults.catalog, &defaults.schema)
        .with_create_default_catalog_and_schema(false)
        .with_information_schema(true)
        .with_target_partitions(target_partitions)
        .with_batch_size(batch_size);
    let options = config.options_mut();
    options.execution.parquet.schema_force_view_types = false;
    options.sql_parser.map_string_types_to_utf8view = false;
    match &defaults.profile {
        Some(profile) => config.with_extension(Arc::new(BoundProfile(profile.clone()))),
        None => config,
    }
}

fn statement_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(true)
        .with_allow_dml(true)
        .with_allow_statements(false)
}

#[cfg(test)]
mod tests;

/// Most binary operators one statement may hold.
///
/// The parser bounds nesting (parentheses, sub-queries) but builds a chain such as
/// `a + b + c …` or `x = 1 OR x = 2 OR …` in a loop, as a tree as deep as the chain is
/// long; later steps (naming columns, evaluating) walk it recursively. This bound, with
/// the server's large thread stacks, keeps such a statement from exhausting the stack.
pub(crate) const MAX_OPERATORS: usize = 2000;

/// Refuses statements with more than [`MAX_OPERATORS`] binary operators.
fn check_complexity(sql: &str) -> Result<()> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    // Cheap pre-check: fewer operator characters than the limit cannot exceed it.
    let candidates = sql
        .bytes()
        .filter(|b| b"+-*/%=<>|&^".contains(b) || b.is_ascii_alphabetic())
        .count();
    if candidates <= MAX_OPERATORS {
        return Ok(());
    }
    let dialect = GenericDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        // The parser reports the error precisely.
        return Ok(());
    };
    let operators = tokens
        .iter()
        .filter(|token| match token {
            Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat
            | Token::Eq
            | Token::DoubleEq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Spaceship
            | Token::Ampersand
            | Token::Pipe
            | Token::Caret => true,
            Token::Word(word) => matches!(word.keyword, Keyword::AND | Keyword::OR),
            _ => false,
        })
        .count();
    if operators > MAX_OPERATORS {
        return Err(DataFusionError::Plan(format!(
            "statement too complex: {operators} operators (at most {MAX_OPERATORS}); \
             write long OR chains of equalities as IN (...), or split the statement"
        )));
    }
    Ok(())
}
