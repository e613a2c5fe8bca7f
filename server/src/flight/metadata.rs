//! Catalog browsing answers: GetCatalogs, GetDbSchemas, GetTables,
//! GetTableTypes and the key commands, with the exact Flight SQL schemas.
//!
//! A missing `catalog` in a request means "any catalog" (the ADBC driver's
//! `get_objects` sends none), never "no rows".

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_flight::sql::metadata::{GetCatalogsBuilder, GetDbSchemasBuilder, GetTablesBuilder};
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables};
use datafusion::catalog::SchemaProvider;
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::prelude::SessionContext;
use tonic::Status;

use super::status;
use crate::catalog::{CATALOG_NAME, INFORMATION_SCHEMA, SYSTEM_SCHEMA};

/// Table types, as reported by GetTableTypes and GetTables.
pub const TABLE_TYPES: [&str; 3] = ["SYSTEM TABLE", "TABLE", "VIEW"];

fn table_type(schema: &str) -> &'static str {
    match schema {
        SYSTEM_SCHEMA => "SYSTEM TABLE",
        INFORMATION_SCHEMA => "VIEW",
        _ => "TABLE",
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("building metadata result: {e}"))
}

/// GetCatalogs.
pub fn catalogs() -> Result<RecordBatch, Status> {
    let mut builder = GetCatalogsBuilder::new();
    builder.append(CATALOG_NAME);
    builder.build().map_err(internal)
}

/// Schema of a GetCatalogs answer.
pub fn catalogs_schema() -> SchemaRef {
    GetCatalogsBuilder::new().schema()
}

/// GetDbSchemas.
pub fn db_schemas(
    ctx: &SessionContext,
    command: CommandGetDbSchemas,
) -> Result<RecordBatch, Status> {
    let mut builder = command.into_builder();
    for schema in schema_names(ctx) {
        builder.append(CATALOG_NAME, schema);
    }
    builder.build().map_err(internal)
}

/// Schema of a GetDbSchemas answer.
pub fn db_schemas_schema() -> SchemaRef {
    GetDbSchemasBuilder::new(None::<String>, None::<String>).schema()
}

/// GetTables; opens tables only when their schema is asked for and their names match.
pub async fn tables(
    ctx: &SessionContext,
    command: CommandGetTables,
) -> Result<RecordBatch, Status> {
    let include_schema = command.include_schema;
    let catalog_ok = command.catalog.as_deref().is_none_or(|c| c == CATALOG_NAME);
    let schema_pattern = command.db_schema_filter_pattern.clone();
    let table_pattern = command.table_name_filter_pattern.clone();
    let types = command.table_types.clone();
    let mut builder = command.into_builder();
    let empty = Schema::empty();
    if catalog_ok {
        let Some(catalog) = ctx.catalog(CATALOG_NAME) else {
            return builder.build().map_err(internal);
        };
        for schema_name in schema_names(ctx) {
            if !schema_pattern
                .as_deref()
                .is_none_or(|p| like(p, &schema_name))
            {
                continue;
            }
            let kind = table_type(&schema_name);
            if !types.is_empty() && !types.iter().any(|t| t == kind) {
                continue;
            }
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            let mut names = schema.table_names();
            names.sort();
            for name in names
                .into_iter()
                .filter(|n| table_pattern.as_deref().is_none_or(|p| like(p, n)))
            {
                if !include_schema {
                    builder
                        .append(CATALOG_NAME, &schema_name, &name, kind, &empty)
                        .map_err(internal)?;
                    continue;
                }
                let Some(table) = schema.table(&name).await.map_err(status::from_datafusion)?
                else {
                    continue;
                };
                builder
                    .append(CATALOG_NAME, &schema_name, &name, kind, &table.schema())
                    .map_err(internal)?;
            }
        }
    }
    builder.build().map_err(internal)
}

/// Schema of a GetTables answer.
pub fn tables_schema(include_schema: bool) -> SchemaRef {
    GetTablesBuilder::new(
        None::<String>,
        None::<String>,
        None::<String>,
        Vec::<String>::new(),
        include_schema,
    )
    .schema()
}

/// GetTableTypes.
pub fn table_types() -> Result<RecordBatch, Status> {
    let types = arrow::array::StringArray::from_iter_values(TABLE_TYPES);
    RecordBatch::try_new(table_types_schema(), vec![Arc::new(types)]).map_err(internal)
}

/// Schema of a GetTableTypes answer.
pub fn table_types_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "table_type",
        DataType::Utf8,
        false,
    )]))
}

/// GetPrimaryKeys schema. Lakehouse tables have no declared keys, so answers are empty.
pub fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

/// GetExportedKeys / GetImportedKeys / GetCrossReference schema (answers are empty).
pub fn foreign_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}

/// NotFound unless the table named by a key command exists.
pub fn ensure_table(
    ctx: &SessionContext,
    catalog: Option<&str>,
    db_schema: Option<&str>,
    table: &str,
) -> Result<(), Status> {
    if let Some(catalog) = catalog.filter(|c| *c != CATALOG_NAME) {
        return Err(Status::not_found(format!(
            "catalog {catalog:?} does not exist"
        )));
    }
    let schema_name = db_schema.unwrap_or(crate::catalog::DEFAULT_SCHEMA);
    if !schema_provider(ctx, schema_name).is_some_and(|s| s.table_exist(table)) {
        return Err(Status::not_found(format!(
            "table {schema_name}.{table} does not exist"
        )));
    }
    Ok(())
}

/// Schemas of the catalog, including DataFusion's `information_schema`, which the
/// engine resolves outside the catalog provider.
fn schema_names(ctx: &SessionContext) -> Vec<String> {
    let mut names = ctx
        .catalog(CATALOG_NAME)
        .map(|c| c.schema_names())
        .unwrap_or_default();
    if ctx.state().config().information_schema() && !names.iter().any(|n| n == INFORMATION_SCHEMA) {
        names.push(INFORMATION_SCHEMA.to_string());
    }
    names.sort();
    names
}

fn schema_provider(ctx: &SessionContext, name: &str) -> Option<Arc<dyn SchemaProvider>> {
    if name == INFORMATION_SCHEMA {
        let catalogs = Arc::clone(ctx.state().catalog_list());
        return Some(Arc::new(InformationSchemaProvider::new(catalogs)));
    }
    ctx.catalog(CATALOG_NAME)?.schema(name)
}

/// SQL `LIKE` with `%`, `_` and `\` escapes, as the Flight SQL filter patterns use.
pub fn like(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('_', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some(('\\', rest)) if !rest.is_empty() => {
                t.first() == Some(&rest[0]) && go(&rest[1..], &t[1..])
            }
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_patterns() {
        for (pattern, text, expected) in [
            ("%", "anything", true),
            ("line%", "lineitem", true),
            ("line%", "orders", false),
            ("_rders", "orders", true),
            ("%item", "lineitem", true),
            ("a\\_b", "a_b", true),
            ("a\\_b", "axb", false),
            ("", "", true),
            ("x", "", false),
        ] {
            assert_eq!(like(pattern, text), expected, "{pattern:?} LIKE {text:?}");
        }
    }
}
