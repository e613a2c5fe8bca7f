//! DataFusion's view of the Lakehouse catalog.
//!
//! ```text
//! lakehouse (LakehouseCatalog)
//!  ├── public, <user schemas>  → DeltaSchema: Delta tables, opened at planning time
//!  └── system                  → SystemSchema: tables computed from catalog state
//! ```
//! DataFusion adds `information_schema` on top when it is enabled.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;

use super::system::{SystemSchema, SystemTables};
use crate::catalog::{Catalog, CatalogError, SYSTEM_SCHEMA, TableEntry};

/// The `lakehouse` catalog.
#[derive(Debug)]
pub(crate) struct LakehouseCatalog {
    catalog: Arc<Catalog>,
    scan_session: Arc<SessionState>,
    system: Arc<SystemTables>,
    /// Schema names captured when the session was made (the provider API is sync).
    schemas: Vec<String>,
    /// The profile the session is bound to (the `system` schema shows only its indexes).
    profile: Option<String>,
}

impl LakehouseCatalog {
    /// A provider over the catalog's current schemas.
    pub(crate) fn new(
        catalog: Arc<Catalog>,
        scan_session: Arc<SessionState>,
        system: Arc<SystemTables>,
        profile: Option<String>,
    ) -> Self {
        let mut schemas = catalog.schema_names();
        schemas.push(SYSTEM_SCHEMA.to_string());
        schemas.sort();
        Self {
            catalog,
            scan_session,
            system,
            schemas,
            profile,
        }
    }
}

impl CatalogProvider for LakehouseCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.schemas.clone()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == SYSTEM_SCHEMA {
            return Some(Arc::new(SystemSchema::new(
                Arc::clone(&self.system),
                self.profile.clone(),
            )));
        }
        self.schemas.iter().any(|s| s == name).then(|| {
            let schema = DeltaSchema::new(
                Arc::clone(&self.catalog),
                Arc::clone(&self.scan_session),
                name,
            );
            Arc::new(schema) as Arc<dyn SchemaProvider>
        })
    }
}

/// Opens `entry` (its latest version, or `version`) as a DataFusion table, with the
/// scan options every Lakehouse query uses (see `scan_session` in [`super::QueryEngine`]).
pub(super) async fn open_provider(
    catalog: &Catalog,
    scan_session: &Arc<SessionState>,
    entry: &TableEntry,
    version: Option<u64>,
) -> Result<Arc<dyn TableProvider>> {
    let table = match version {
        None => catalog.open_table(entry).await,
        Some(version) => catalog.open_table_version(entry, version).await,
    }
    .map_err(|e| DataFusionError::External(Box::new(e)))?;
    table
        .table_provider()
        .with_session(Arc::clone(scan_session))
        .await
}

/// Splits the time-travel form `name@vN` into the table name and version N.
///
/// `@` is not an identifier character, so the form is quoted in SQL:
/// `SELECT * FROM "orders@v3"`.
pub(super) fn split_version(name: &str) -> Result<(&str, Option<u64>)> {
    let Some((table, version)) = name.rsplit_once('@') else {
        return Ok((name, None));
    };
    let number = version
        .strip_prefix('v')
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| {
            DataFusionError::Plan(format!(
                "invalid table version {version:?} in {name:?}: write \"{table}@v<N>\", e.g. \"{table}@v0\""
            ))
        })?;
    Ok((table, Some(number)))
}

/// A user schema whose tables are Delta tables.
#[derive(Debug)]
pub(super) struct DeltaSchema {
    catalog: Arc<Catalog>,
    scan_session: Arc<SessionState>,
    name: String,
    table_names: Vec<String>,
}

impl DeltaSchema {
    fn new(catalog: Arc<Catalog>, scan_session: Arc<SessionState>, name: &str) -> Self {
        let table_names = catalog
            .snapshot()
            .tables_in(name)
            .into_iter()
            .map(|t| t.name.clone())
            .collect();
        Self {
            catalog,
            scan_session,
            name: name.to_string(),
            table_names,
        }
    }
}

#[async_trait]
impl SchemaProvider for DeltaSchema {
    fn table_names(&self) -> Vec<String> {
        self.table_names.clone()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let (name, version) = split_version(name)?;
        let entry = match self.catalog.table(&self.name, name) {
            Ok(entry) => entry,
            Err(CatalogError::TableNotFound { .. }) => return Ok(None),
            Err(e) => return Err(DataFusionError::External(Box::new(e))),
        };
        open_provider(&self.catalog, &self.scan_session, &entry, version)
            .await
            .map(Some)
    }

    fn table_exist(&self, name: &str) -> bool {
        match split_version(name) {
            Ok((name, _)) => self.table_names.iter().any(|t| t == name),
            Err(_) => false,
        }
    }
}
