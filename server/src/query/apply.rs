//! Applying [`Write`]s: each one Delta commit (or one catalog change), inside the
//! write envelope (lineage, PII sampling, metrics, the dataset event); consecutive
//! INSERTs into one table (a prepared INSERT run per parameter row) become one commit.

use std::sync::Arc;

use arrow::datatypes::Schema;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{LogicalPlan, Union};
use datafusion::prelude::SessionContext;

use super::QueryEngine;
use super::envelope::{Commit, Envelope, WriteOrigin, read_tables};
use super::write::{TableName, Write, catalog_error};
use crate::catalog::{CatalogError, WriteMode};
use crate::lineage::Source;
use crate::storage::PRIMARY;

/// Column names Delta Lake (without column mapping) and Parquet tools reject.
fn check_column_names(schema: &Schema) -> Result<()> {
    const INVALID: &[char] = &[' ', ',', ';', '{', '}', '(', ')', '\n', '\t', '='];
    for field in schema.fields() {
        if field.name().is_empty() || field.name().contains(INVALID) {
            return Err(DataFusionError::Plan(format!(
                "column name {:?} is not allowed in a table (no spaces or any of ,;{{}}()=): name it with AS",
                field.name()
            )));
        }
    }
    Ok(())
}

impl QueryEngine {
    /// Applies writes, returning the rows affected.
    ///
    /// Several INSERTs into one table (a prepared INSERT run once per bound
    /// parameter row) become one commit; anything else runs statement by statement,
    /// each its own commit.
    ///
    /// Writes that change a table's rows record lineage (START, then COMPLETE or
    /// FAIL) and, once committed, publish a dataset event: `DatasetAppended` for
    /// CREATE TABLE and INSERT, `DatasetReplaced` for INSERT OVERWRITE, CREATE OR
    /// REPLACE, UPDATE and DELETE (rows changed in place: consumers re-read).
    pub(crate) async fn execute_writes(
        &self,
        ctx: &SessionContext,
        writes: Vec<Write>,
    ) -> Result<u64> {
        let writes = merge_inserts(writes)?;
        let default_schema = ctx
            .state()
            .config()
            .options()
            .catalog
            .default_schema
            .clone();
        let mut affected = 0;
        for write in writes {
            let Some((op, table, kind)) = write.changes_rows() else {
                affected += self.execute_write(ctx, write, None).await?;
                continue;
            };
            let origin = WriteOrigin {
                job_type: format!("sql.{op}"),
                event_source: "sql".into(),
                source: Some(Source {
                    system: "sql".into(),
                    location: "Flight SQL statement".into(),
                }),
                inputs: write
                    .input()
                    .map_or_else(Vec::new, |plan| read_tables(plan, &default_schema)),
                ..WriteOrigin::default()
            };
            let mut envelope = self
                .open_envelope(origin, &table.schema, &table.table)
                .await;
            match self.execute_write(ctx, write, Some(&mut envelope)).await {
                Ok(rows) => {
                    let commit = Commit {
                        kind,
                        rows,
                        version: None,
                    };
                    envelope.committed(self, commit).await;
                    affected += rows;
                }
                Err(error) => {
                    envelope.failed(&error).await;
                    return Err(error);
                }
            }
        }
        Ok(affected)
    }

    /// Applies one write as one Delta commit (or one catalog change); the rows a
    /// write brings stream through `envelope`'s PII sampling.
    async fn execute_write(
        &self,
        ctx: &SessionContext,
        write: Write,
        envelope: Option<&mut Envelope>,
    ) -> Result<u64> {
        let sampled = |stream: datafusion::execution::SendableRecordBatchStream| match envelope {
            Some(envelope) => envelope.sample(stream),
            None => stream,
        };
        let catalog = &self.catalog;
        let session = Arc::new(ctx.state());
        let entry_of = |table: &TableName| {
            catalog
                .table(&table.schema, &table.table)
                .map_err(catalog_error)
        };
        match write {
            Write::CreateTable {
                table,
                input,
                if_not_exists,
                or_replace,
            } => {
                check_column_names(input.schema().as_arrow())?;
                let existing = match catalog.table(&table.schema, &table.table) {
                    Ok(entry) => Some(entry),
                    Err(CatalogError::TableNotFound { .. }) => None,
                    Err(e) => return Err(catalog_error(e)),
                };
                if existing.is_some() && if_not_exists {
                    return Ok(0);
                }
                let stream = sampled(self.execute(ctx, input).await?);
                match existing {
                    Some(entry) if or_replace => catalog
                        .write(&entry, WriteMode::Replace, stream, session)
                        .await
                        .map(|written| written.rows),
                    _ => catalog
                        .create_table_from(&table.schema, &table.table, PRIMARY, stream, session)
                        .await
                        .map(|(_, written)| written.rows),
                }
                .map_err(catalog_error)
            }
            Write::Insert {
                table,
                input,
                overwrite,
                ..
            } => {
                let entry = entry_of(&table)?;
                let stream = sampled(self.execute(ctx, input).await?);
                let mode = if overwrite {
                    WriteMode::Replace
                } else {
                    WriteMode::Append
                };
                catalog
                    .write(&entry, mode, stream, session)
                    .await
                    .map(|written| written.rows)
                    .map_err(catalog_error)
            }
            Write::Delete { table, predicate } => {
                let entry = entry_of(&table)?;
                catalog
                    .delete_rows(&entry, predicate, session)
                    .await
                    .map_err(catalog_error)
            }
            Write::Update {
                table,
                assignments,
                predicate,
            } => {
                let entry = entry_of(&table)?;
                catalog
                    .update_rows(&entry, assignments, predicate, session)
                    .await
                    .map_err(catalog_error)
            }
            Write::DropTable { table, if_exists } => {
                catalog
                    .drop_table(&table.schema, &table.table, if_exists)
                    .await
                    .map_err(catalog_error)?;
                Ok(0)
            }
            Write::CreateSchema {
                name,
                if_not_exists,
            } => {
                catalog
                    .create_schema(&name, if_not_exists)
                    .await
                    .map_err(catalog_error)?;
                Ok(0)
            }
            Write::DropSchema {
                name,
                if_exists,
                cascade,
            } => {
                catalog
                    .drop_schema(&name, if_exists, cascade)
                    .await
                    .map_err(catalog_error)?;
                Ok(0)
            }
        }
    }
}

/// Folds consecutive appends into the same table into one append of their union.
fn merge_inserts(writes: Vec<Write>) -> Result<Vec<Write>> {
    // (write, extra inputs to union with its own)
    let mut groups: Vec<(Write, Vec<Arc<LogicalPlan>>)> = Vec::with_capacity(writes.len());
    for write in writes {
        if let (
            Some((
                Write::Insert {
                    table: last,
                    overwrite: false,
                    ..
                },
                extra,
            )),
            Write::Insert {
                table,
                input,
                overwrite: false,
                ..
            },
        ) = (groups.last_mut(), &write)
            && last == table
        {
            extra.push(Arc::new(input.clone()));
            continue;
        }
        groups.push((write, Vec::new()));
    }
    groups
        .into_iter()
        .map(|(write, extra)| match write {
            Write::Insert {
                table,
                input,
                overwrite,
            } if !extra.is_empty() => {
                let mut inputs = vec![Arc::new(input)];
                inputs.extend(extra);
                let union = LogicalPlan::Union(Union::try_new(inputs)?);
                Ok(Write::Insert {
                    table,
                    input: union,
                    overwrite,
                })
            }
            other => Ok(other),
        })
        .collect()
}
