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
pub(super) const TABLE_TYPES: [&str; 3] = ["SYSTEM TABLE", "TABLE", "VIEW"];

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
pub(super) fn catalogs() -> Result<RecordBatch, Status> {
    let mut builder = GetCatalogsBuilder::new();
    builder.append(CATALOG_NAME);
    builder.build().map_err(internal)
}

/// Schema of a GetCatalogs answer.
pub(super) fn catalogs_schema() -> SchemaRef {
    GetCatalogsBuilder::new().schema()
}

/// GetDbSchemas.
pub(super) fn db_schemas(
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
pub(super) fn db_schemas_schema() -> SchemaRef {
    GetDbSchemasBuilder::new(None::<String>, None::<String>).schema()
}

/// GetTables; opens tables only when their schema is asked for and their names match.
pub(super) async fn tables(
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
            let Some(schema) = schema_provider(ctx, &schema_name) else {
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
pub(super) fn tables_schema(include_schema: bool) -> SchemaRef {
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
pub(super) fn table_types() -> Result<RecordBatch, Status> {
    let types = arrow::array::StringArray::from_iter_values(TABLE_TYPES);
    RecordBatch::try_new(table_types_schema(), vec![Arc::new(types)]).map_err(internal)
}

/// Schema of a GetTableTypes answer.
pub(super) fn table_types_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "table_type",
        DataType::Utf8,
        false,
    )]))
}

/// GetPrimaryKeys schema. Lakehouse tables have no declared keys, so answers are empty.
pub(super) fn primary_keys_schema() -> SchemaRef {
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
pub(super) fn foreign_keys_schema() -> SchemaRef {
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
pub(super) fn ensure_table(
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
///
/// Patterns come from clients, so matching is linear-time: on a mismatch it only
/// retries from the most recent `%`, never exploring every split.
pub(super) fn like(pattern: &str, text: &str) -> bool {
    enum Token {
        Any,
        One,
        Char(char),
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '%' => Token::Any,
            '_' => Token::One,
            '\\' => Token::Char(chars.next().unwrap_or('\\')),
            c => Token::Char(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `%`: (token after it, text position it covers up to).
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Any) => {
                resume = Some((p + 1, t));
                p += 1;
            }
            Some(Token::One) => (p, t) = (p + 1, t + 1),
            Some(Token::Char(c)) if *c == text[t] => (p, t) = (p + 1, t + 1),
            _ => match resume {
                Some((after, covered)) => {
                    resume = Some((after, covered + 1));
                    (p, t) = (after, covered + 1);
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|token| matches!(token, Token::Any))
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
            ("%a%b%", "xaybz", true),
            ("%a%b%", "xbya", false),
            ("a%", "a", true),
            ("%%", "", true),
            ("\\%", "%", true),
            ("\\%", "x", false),
        ] {
            assert_eq!(like(pattern, text), expected, "{pattern:?} LIKE {text:?}");
        }
    }

    #[test]
    fn like_is_linear_on_hostile_patterns() {
        // Exponential with naive backtracking; must return at once.
        let pattern = format!("{}x", "%".repeat(64));
        let text = "a".repeat(10_000);
        assert!(!like(&pattern, &text));
        assert!(like(&format!("{}a", "%a".repeat(40)), &text));
    }
}
