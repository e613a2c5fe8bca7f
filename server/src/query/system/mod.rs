//! The read-only `system` schema: a registry of tables that each subsystem fills.
//!
//! The catalog's own tables (`tables`, `columns`, `table_versions`, `buckets`) are
//! in [`catalog`]; every other subsystem (vector, profiles, workers, jobs,
//! lineage, PII) provides its table from its own folder and registers it at start,
//! so this module imports none of them. Each table is computed when a query
//! names it, so it reflects the server's state at planning time.

mod catalog;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock};

use arrow::array::RecordBatch;
use arrow::error::ArrowError;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result;

pub(crate) use catalog::catalog_tables;

/// One table of the `system` schema.
#[async_trait]
pub(crate) trait SystemTable: Send + Sync + fmt::Debug {
    /// Its name in `system`.
    fn name(&self) -> &str;

    /// Its rows now, as a session bound to `profile` (if any) may see them.
    async fn rows(&self, profile: Option<&str>) -> Result<RecordBatch>;
}

/// A system table made from a function, for subsystems that build their rows with
/// Arrow alone and know nothing of the query engine (jobs, lineage, workers, PII).
pub(crate) fn table_fn<F, Fut>(name: &'static str, rows: F) -> Arc<dyn SystemTable>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<RecordBatch, ArrowError>> + Send + 'static,
{
    Arc::new(FnTable { name, rows })
}

struct FnTable<F> {
    name: &'static str,
    rows: F,
}

impl<F> fmt::Debug for FnTable<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnTable").field("name", &self.name).finish()
    }
}

#[async_trait]
impl<F, Fut> SystemTable for FnTable<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<RecordBatch, ArrowError>> + Send + 'static,
{
    fn name(&self) -> &str {
        self.name
    }

    async fn rows(&self, _profile: Option<&str>) -> Result<RecordBatch> {
        Ok((self.rows)().await?)
    }
}

/// The tables of the `system` schema, by name.
#[derive(Debug, Default)]
pub(crate) struct SystemTables {
    tables: RwLock<BTreeMap<String, Arc<dyn SystemTable>>>,
}

impl SystemTables {
    /// Adds `table` (replacing one of the same name).
    pub(crate) fn register(&self, table: Arc<dyn SystemTable>) {
        let mut tables = self.tables.write().unwrap_or_else(|p| p.into_inner());
        tables.insert(table.name().to_string(), table);
    }

    /// Names of the registered tables, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let tables = self.tables.read().unwrap_or_else(|p| p.into_inner());
        tables.keys().cloned().collect()
    }

    fn get(&self, name: &str) -> Option<Arc<dyn SystemTable>> {
        let tables = self.tables.read().unwrap_or_else(|p| p.into_inner());
        tables.get(name).cloned()
    }
}

/// Provider of the `system` schema for one session.
#[derive(Debug)]
pub(crate) struct SystemSchema {
    tables: Arc<SystemTables>,
    /// A session bound to a profile sees only that profile's indexes and eval sets.
    profile: Option<String>,
}

impl SystemSchema {
    /// The schema of `tables`, for a session bound to `profile` (if any).
    pub(crate) fn new(tables: Arc<SystemTables>, profile: Option<String>) -> Self {
        Self { tables, profile }
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(table) = self.tables.get(name) else {
            return Ok(None);
        };
        let batch = table.rows(self.profile.as_deref()).await?;
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        Ok(Some(Arc::new(table)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.get(name).is_some()
    }
}
