//! `--demo`: the eight TPC-H tables, generated with `tpchgen`, so a newcomer has
//! something to query at once.

use std::path::Path;

use arrow::array::RecordBatch;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow,
    RecordBatchIterator, RegionArrow, SupplierArrow,
};

use crate::catalog::{Catalog, CatalogError, DEFAULT_SCHEMA};
use crate::storage::PRIMARY;

/// TPC-H table names, smallest first.
pub(crate) const TPCH_TABLES: [&str; 8] = [
    "region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem",
];

/// Why the demo tables could not be created.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The data generator task panicked.
    #[error("TPC-H generator for {table} failed: {message}")]
    Generator {
        /// Table being generated.
        table: &'static str,
        /// The panic message.
        message: String,
    },
    /// Writing the table failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

const BATCH_ROWS: usize = 64 * 1024;

fn generator(table: &str, scale: f64) -> Option<Box<dyn RecordBatchIterator>> {
    Some(match table {
        "region" => Box::new(
            RegionArrow::new(RegionGenerator::new(scale, 1, 1)).with_batch_size(BATCH_ROWS),
        ),
        "nation" => Box::new(
            NationArrow::new(NationGenerator::new(scale, 1, 1)).with_batch_size(BATCH_ROWS),
        ),
        "supplier" => Box::new(
            SupplierArrow::new(SupplierGenerator::new(scale, 1, 1)).with_batch_size(BATCH_ROWS),
        ),
        "customer" => Box::new(
            CustomerArrow::new(CustomerGenerator::new(scale, 1, 1)).with_batch_size(BATCH_ROWS),
        ),
        "part" => {
            Box::new(PartArrow::new(PartGenerator::new(scale, 1, 1)).with_batch_size(BATCH_ROWS))
        }
        "partsupp" => Box::new(
            PartSuppArrow::new(PartSuppGenerator::new(scale, 1, 1)).with_batch_size(BATCH_ROWS),
        ),
        "orders" => {
            Box::new(OrderArrow::new(OrderGenerator::new(scale, 1, 1)).with_batch_size(BATCH_ROWS))
        }
        "lineitem" => Box::new(
            LineItemArrow::new(LineItemGenerator::new(scale, 1, 1)).with_batch_size(BATCH_ROWS),
        ),
        _ => return None,
    })
}

/// Creates the TPC-H tables that don't exist yet in `public`, each in one commit.
pub(crate) async fn create_tpch(catalog: &Catalog, scale: f64) -> Result<Vec<String>, DemoError> {
    let mut created = Vec::new();
    for table in TPCH_TABLES {
        if catalog.table(DEFAULT_SCHEMA, table).is_ok() {
            continue;
        }
        let Some(batches) = generator(table, scale) else {
            continue;
        };
        let schema = batches.schema().clone();
        let started = std::time::Instant::now();
        let batches: Vec<RecordBatch> = tokio::task::spawn_blocking(move || batches.collect())
            .await
            .map_err(|e| DemoError::Generator {
                table,
                message: e.to_string(),
            })?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        catalog
            .create_table(DEFAULT_SCHEMA, table, PRIMARY, schema, batches)
            .await?;
        tracing::info!(
            table,
            rows,
            scale,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "created demo table"
        );
        created.push(table.to_string());
    }
    Ok(created)
}

/// The `*.sql` files of `dir` (the 22 TPC-H queries live in `benches/tpch/`) as
/// `(name, sql)`, ordered by name; shared by the TPC-H test and benchmark.
pub fn tpch_queries(dir: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut queries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "sql") {
            let name = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            queries.push((name, std::fs::read_to_string(&path)?));
        }
    }
    queries.sort();
    Ok(queries)
}
