//! SQL statements that change tables: DDL and DML, each one Delta commit.
//!
//! DataFusion plans the statement (resolving names, checking and casting INSERT
//! columns against the target table, binding parameters); this module turns the
//! plan into a [`Write`], and `apply.rs` runs it against the catalog. Rows always
//! stream from the input plan into the Delta writer: nothing is collected in memory.
//!
//! | statement                                   | effect                                  |
//! |---------------------------------------------|-----------------------------------------|
//! | `CREATE TABLE t (...)` / `... AS SELECT`    | new table, version 0                    |
//! | `CREATE OR REPLACE TABLE t ...`             | new version replacing rows and schema   |
//! | `INSERT INTO t ...` / `INSERT OVERWRITE`    | append / replace commit                 |
//! | `DELETE FROM t [WHERE ...]`, `TRUNCATE t`   | delete commit                           |
//! | `UPDATE t SET ... [WHERE ...]`              | update commit                           |
//! | `DROP TABLE [IF EXISTS] t`                  | unlisted, then its files deleted        |
//! | `CREATE SCHEMA` / `DROP SCHEMA [CASCADE]`   | catalog document change                 |

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, SchemaReference, TableReference};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{DdlStatement, DmlStatement, Expr, LogicalPlan, WriteOp};

use super::SessionDefaults;
use crate::catalog::{CATALOG_NAME, CatalogError, INFORMATION_SCHEMA, SYSTEM_SCHEMA};
use crate::events::ChangeKind;

/// A planned statement: a query to stream, or a change to apply.
#[derive(Debug)]
pub(crate) enum Statement {
    /// A query: rows to return, nothing to apply.
    Query,
    /// A change; its result is the number of rows affected.
    Write(Box<Write>),
}

/// `schema.table` inside the `lakehouse` catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableName {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// A statement that changes the catalog or a table.
#[derive(Debug)]
pub(crate) enum Write {
    /// `CREATE [OR REPLACE] TABLE [IF NOT EXISTS] ... [AS SELECT]`.
    CreateTable {
        /// Target.
        table: TableName,
        /// Rows (an empty relation for a plain column list).
        input: LogicalPlan,
        /// Do nothing when the table exists.
        if_not_exists: bool,
        /// Replace the rows and schema of an existing table.
        or_replace: bool,
    },
    /// `INSERT INTO` (append) or `INSERT OVERWRITE` (replace).
    Insert {
        /// Target.
        table: TableName,
        /// Rows, already cast to the target columns by the planner.
        input: LogicalPlan,
        /// Replace instead of append.
        overwrite: bool,
    },
    /// `DELETE` or `TRUNCATE`.
    Delete {
        /// Target.
        table: TableName,
        /// Rows to delete; all rows when `None`.
        predicate: Option<Expr>,
    },
    /// `UPDATE ... SET column = expr [WHERE ...]`.
    Update {
        /// Target.
        table: TableName,
        /// New values by column.
        assignments: Vec<(String, Expr)>,
        /// Rows to update; all rows when `None`.
        predicate: Option<Expr>,
    },
    /// `DROP TABLE`.
    DropTable {
        /// Target.
        table: TableName,
        /// No error when absent.
        if_exists: bool,
    },
    /// `CREATE SCHEMA`.
    CreateSchema {
        /// Schema name.
        name: String,
        /// No error when present.
        if_not_exists: bool,
    },
    /// `DROP SCHEMA`.
    DropSchema {
        /// Schema name.
        name: String,
        /// No error when absent.
        if_exists: bool,
        /// Drop its tables too.
        cascade: bool,
    },
}

impl Write {
    /// For writes that change a table's rows: (operation, table, kind of change).
    /// The query whose rows the write brings (CREATE TABLE … AS, INSERT).
    pub(super) fn input(&self) -> Option<&LogicalPlan> {
        match self {
            Write::CreateTable { input, .. } | Write::Insert { input, .. } => Some(input),
            _ => None,
        }
    }

    pub(super) fn changes_rows(&self) -> Option<(&'static str, TableName, ChangeKind)> {
        match self {
            Write::CreateTable {
                table, or_replace, ..
            } => Some((
                "create_table",
                table.clone(),
                if *or_replace {
                    ChangeKind::Replaced
                } else {
                    ChangeKind::Appended
                },
            )),
            Write::Insert {
                table, overwrite, ..
            } => Some((
                "insert",
                table.clone(),
                if *overwrite {
                    ChangeKind::Replaced
                } else {
                    ChangeKind::Appended
                },
            )),
            Write::Delete { table, .. } => Some(("delete", table.clone(), ChangeKind::Replaced)),
            Write::Update { table, .. } => Some(("update", table.clone(), ChangeKind::Replaced)),
            _ => None,
        }
    }
}

/// Schema of a write's result when a client reads it as a query: one row, `count`.
pub(crate) fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::Int64,
        false,
    )]))
}

/// True when the plan changes state (it then runs as a [`Write`]).
pub(crate) fn is_write(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Ddl(_) | LogicalPlan::Dml(_))
}

/// Splits a bound plan into a query or a write.
pub(crate) fn classify(plan: LogicalPlan, defaults: &SessionDefaults) -> Result<Statement> {
    let write = match plan {
        LogicalPlan::Ddl(ddl) => from_ddl(ddl, defaults)?,
        LogicalPlan::Dml(dml) => from_dml(dml, defaults)?,
        LogicalPlan::Copy(_) => {
            return not_supported("COPY ... TO (server-side files; read results with a query)");
        }
        query => {
            check_query(&query)?;
            return Ok(Statement::Query);
        }
    };
    Ok(Statement::Write(Box::new(write)))
}

/// Refuses a query that nests a write: `EXPLAIN ANALYZE INSERT ...` would run
/// through DataFusion's own insert path, bypassing the catalog.
pub(super) fn check_query(query: &LogicalPlan) -> Result<()> {
    let nested = query.exists(|node| {
        Ok(matches!(
            node,
            LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Copy(_)
        ))
    })?;
    if nested {
        return not_supported("a DDL or DML statement inside EXPLAIN or a query");
    }
    Ok(())
}

fn from_ddl(ddl: DdlStatement, defaults: &SessionDefaults) -> Result<Write> {
    Ok(match ddl {
        DdlStatement::CreateMemoryTable(create) => {
            if create.temporary {
                return not_supported("CREATE TEMPORARY TABLE (tables are durable Delta tables)");
            }
            if !create.column_defaults.is_empty() {
                return not_supported("column DEFAULT values");
            }
            if !create.constraints.is_empty() {
                return not_supported(
                    "PRIMARY KEY / UNIQUE constraints (Delta tables do not enforce them)",
                );
            }
            Write::CreateTable {
                table: table_name(&create.name, defaults)?,
                input: create.input.as_ref().clone(),
                if_not_exists: create.if_not_exists,
                or_replace: create.or_replace,
            }
        }
        DdlStatement::DropTable(drop) => Write::DropTable {
            table: table_name(&drop.name, defaults)?,
            if_exists: drop.if_exists,
        },
        DdlStatement::CreateCatalogSchema(create) => {
            // `CREATE SCHEMA [catalog.]name`
            let name = match create.schema_name.split_once('.') {
                Some((catalog, name)) => {
                    check_catalog(catalog)?;
                    name.to_string()
                }
                None => create.schema_name.clone(),
            };
            Write::CreateSchema {
                name,
                if_not_exists: create.if_not_exists,
            }
        }
        DdlStatement::DropCatalogSchema(drop) => {
            if let SchemaReference::Full { catalog, .. } = &drop.name {
                check_catalog(catalog)?;
            }
            Write::DropSchema {
                name: drop.name.schema_name().to_string(),
                if_exists: drop.if_exists,
                cascade: drop.cascade,
            }
        }
        DdlStatement::CreateExternalTable(_) => {
            return not_supported(
                "CREATE EXTERNAL TABLE (load files with CREATE TABLE ... AS SELECT or bulk ingest)",
            );
        }
        other => return not_supported(other.name()),
    })
}

fn from_dml(dml: DmlStatement, defaults: &SessionDefaults) -> Result<Write> {
    let table = table_name(&dml.table_name, defaults)?;
    let input = dml.input.as_ref().clone();
    Ok(match dml.op {
        WriteOp::Insert(op) => Write::Insert {
            table,
            input: nullable_values(input)?,
            overwrite: match op {
                InsertOp::Append => false,
                InsertOp::Overwrite => true,
                InsertOp::Replace => return not_supported("REPLACE INTO"),
            },
        },
        WriteOp::Delete => Write::Delete {
            table,
            predicate: filter_of(&input).map(unqualify).transpose()?,
        },
        WriteOp::Truncate => Write::Delete {
            table,
            predicate: None,
        },
        WriteOp::Update => update_of(table, input)?,
        other => return not_supported(other.name()),
    })
}

/// `input` with its `VALUES` lists declared nullable. DataFusion types an INSERT's
/// VALUES after the target columns, NOT NULL included, but names them `column1…`: a
/// NULL then failed as "Column 'column1' is declared as non-nullable". Declared
/// nullable, the NULL reaches the write, which refuses it naming the table's column.
fn nullable_values(input: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::common::DFSchema;
    use datafusion::logical_expr::Values;
    let strict = |plan: &LogicalPlan| matches!(plan, LogicalPlan::Values(v) if v.schema.fields().iter().any(|f| !f.is_nullable()));
    if !input.exists(|plan| Ok(strict(plan)))? {
        return Ok(input);
    }
    input
        .transform_up(|plan| match plan {
            LogicalPlan::Values(values)
                if values.schema.fields().iter().any(|f| !f.is_nullable()) =>
            {
                let fields = values
                    .schema
                    .iter()
                    .map(|(qualifier, field)| {
                        (
                            qualifier.cloned(),
                            Arc::new(field.as_ref().clone().with_nullable(true)),
                        )
                    })
                    .collect::<Vec<_>>();
                let schema = DFSchema::new_with_metadata(fields, values.schema.metadata().clone())?;
                Ok(Transformed::yes(LogicalPlan::Values(Values {
                    schema: Arc::new(schema),
                    values: values.values,
                })))
            }
            other if !other.inputs().is_empty() => Ok(Transformed::yes(other.recompute_schema()?)),
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
}

/// UPDATE plans are `Projection(col = expr AS col, ...) ← [Filter] ← TableScan`:
/// every projected column that is not itself is an assignment.
fn update_of(table: TableName, input: LogicalPlan) -> Result<Write> {
    let LogicalPlan::Projection(projection) = &input else {
        return Err(DataFusionError::Internal(format!(
            "unexpected UPDATE plan shape: {}",
            input.display()
        )));
    };
    let mut assignments = Vec::new();
    for expr in &projection.expr {
        let Expr::Alias(alias) = expr else { continue };
        let unchanged = matches!(alias.expr.as_ref(), Expr::Column(c) if c.name == alias.name);
        if !unchanged {
            assignments.push((alias.name.clone(), unqualify(alias.expr.as_ref().clone())?));
        }
    }
    Ok(Write::Update {
        table,
        assignments,
        predicate: filter_of(&projection.input).map(unqualify).transpose()?,
    })
}

fn filter_of(plan: &LogicalPlan) -> Option<Expr> {
    match plan {
        LogicalPlan::Filter(filter) => Some(filter.predicate.clone()),
        _ => None,
    }
}

/// Column references without their table qualifier: Delta resolves them against
/// the table alone.
fn unqualify(expr: Expr) -> Result<Expr> {
    expr.transform(|e| {
        Ok(match e {
            Expr::Column(c) if c.relation.is_some() => {
                Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
            }
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
}

fn table_name(reference: &TableReference, defaults: &SessionDefaults) -> Result<TableName> {
    let resolved = reference
        .clone()
        .resolve(&defaults.catalog, &defaults.schema);
    check_catalog(&resolved.catalog)?;
    if resolved.schema.as_ref() == SYSTEM_SCHEMA || resolved.schema.as_ref() == INFORMATION_SCHEMA {
        return Err(catalog_error(CatalogError::ReadOnly(
            resolved.schema.to_string(),
        )));
    }
    Ok(TableName {
        schema: resolved.schema.to_string(),
        table: resolved.table.to_string(),
    })
}

fn check_catalog(catalog: &str) -> Result<()> {
    if catalog == CATALOG_NAME {
        Ok(())
    } else {
        Err(DataFusionError::Plan(format!(
            "catalog '{catalog}' not found: failed to resolve catalog (the only catalog is '{CATALOG_NAME}')"
        )))
    }
}

fn not_supported<T>(what: &str) -> Result<T> {
    Err(DataFusionError::NotImplemented(format!(
        "{what} is not supported"
    )))
}

pub(super) fn catalog_error(error: CatalogError) -> DataFusionError {
    DataFusionError::External(Box::new(error))
}
