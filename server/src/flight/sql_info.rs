//! GetSqlInfo and GetXdbcTypeInfo answers.
//!
//! Every value states what the server actually does today: writable (DDL, DML,
//! bulk ingest, each statement its own atomic commit), no transactions,
//! lower-cased unquoted identifiers (DataFusion's rule).
//! Function lists come from the engine's own registry, grouped by its docs.

use std::collections::BTreeMap;

use arrow_flight::error::FlightError;
use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    Nullable, Searchable, SqlInfo, SqlNullOrdering, SqlOuterJoinsSupportLevel,
    SqlSupportedCaseSensitivity, SqlSupportedTransaction, SqlSupportsConvert, XdbcDataType,
    XdbcDatetimeSubcode,
};
use datafusion::execution::SessionState;
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;

/// Server name reported to clients.
pub(crate) const SERVER_NAME: &str = "Lakehouse";
/// The Arrow version the server is built with.
pub(super) const ARROW_VERSION: &str = "59.3.2";

/// Builds the SqlInfo table.
/// `statement_timeout_ms` is the configured statement timeout (0: none).
pub(super) fn sql_info(
    state: &SessionState,
    statement_timeout_ms: i32,
) -> Result<SqlInfoData, FlightError> {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, SERVER_NAME);
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, ARROW_VERSION);
    b.append(SqlInfo::FlightSqlServerReadOnly, false);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, true);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, true);
    b.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, false);
    b.append(
        SqlInfo::FlightSqlServerStatementTimeout,
        statement_timeout_ms,
    );
    b.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);

    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, true);
    b.append(SqlInfo::SqlDdlTable, true);
    b.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    // DataFusion sorts NULLs last ascending and first descending: "sorted high".
    b.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    b.append(
        SqlInfo::SqlKeywords,
        ALL_KEYWORDS
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>(),
    );
    let functions = FunctionLists::from_state(state);
    b.append(SqlInfo::SqlNumericFunctions, functions.numeric);
    b.append(SqlInfo::SqlStringFunctions, functions.string);
    b.append(SqlInfo::SqlSystemFunctions, functions.system);
    b.append(SqlInfo::SqlDatetimeFunctions, functions.datetime);
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlExtraNameCharacters, "");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsConvert, convert_map());
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    // Bit 0: GROUP BY unrelated columns; bit 1: beyond the SELECT list.
    b.append(SqlInfo::SqlSupportedGroupBy, 0b11i32);
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    // Minimum and core grammar.
    b.append(SqlInfo::SqlSupportedGrammar, 0b011i32);
    // ANSI-92 entry level.
    b.append(SqlInfo::SqlAnsi92SupportedLevel, 0b001i32);
    b.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
    b.append(
        SqlInfo::SqlOuterJoinsSupportLevel,
        SqlOuterJoinsSupportLevel::SqlFullOuterJoins as i32,
    );
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlProcedureTerm, "procedure");
    b.append(SqlInfo::SqlCatalogTerm, "catalog");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlSchemasSupportedActions, 0i32);
    b.append(SqlInfo::SqlCatalogsSupportedActions, 0i32);
    b.append(SqlInfo::SqlSupportedPositionedCommands, 0i32);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    // Comparisons, EXISTS, IN (not quantified ANY/ALL).
    b.append(SqlInfo::SqlSupportedSubqueries, 0b0111i32);
    b.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    // UNION and UNION ALL.
    b.append(SqlInfo::SqlSupportedUnions, 0b11i32);
    for unlimited in [
        SqlInfo::SqlMaxBinaryLiteralLength,
        SqlInfo::SqlMaxCharLiteralLength,
        SqlInfo::SqlMaxColumnNameLength,
        SqlInfo::SqlMaxColumnsInGroupBy,
        SqlInfo::SqlMaxColumnsInIndex,
        SqlInfo::SqlMaxColumnsInOrderBy,
        SqlInfo::SqlMaxColumnsInSelect,
        SqlInfo::SqlMaxColumnsInTable,
        SqlInfo::SqlMaxConnections,
        SqlInfo::SqlMaxCursorNameLength,
        SqlInfo::SqlMaxIndexLength,
        SqlInfo::SqlMaxProcedureNameLength,
        SqlInfo::SqlMaxRowSize,
        SqlInfo::SqlMaxStatementLength,
        SqlInfo::SqlMaxStatements,
        SqlInfo::SqlMaxTablesInSelect,
        SqlInfo::SqlMaxUsernameLength,
    ] {
        // 0 means "no limit or unknown" in JDBC's DatabaseMetaData.
        b.append(unlimited, 0i64);
    }
    // Catalog names are validated to at most 128 characters.
    for named in [
        SqlInfo::SqlDbSchemaNameLength,
        SqlInfo::SqlMaxCatalogNameLength,
        SqlInfo::SqlMaxTableNameLength,
    ] {
        b.append(named, 128i64);
    }
    b.append(SqlInfo::SqlMaxRowSizeIncludesBlobs, true);
    b.append(SqlInfo::SqlDefaultTransactionIsolation, 0i32);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlSupportedTransactionsIsolationLevels, 0i32);
    b.append(SqlInfo::SqlDataDefinitionCausesTransactionCommit, false);
    b.append(SqlInfo::SqlDataDefinitionsInTransactionsIgnored, false);
    // Bit 1: forward-only result sets.
    b.append(SqlInfo::SqlSupportedResultSetTypes, 0b10i32);
    // Bit 1: read-only concurrency, for every result set type.
    for concurrency in [
        SqlInfo::SqlSupportedConcurrenciesForResultSetUnspecified,
        SqlInfo::SqlSupportedConcurrenciesForResultSetForwardOnly,
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollSensitive,
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollInsensitive,
    ] {
        b.append(concurrency, 0b10i32);
    }
    // A prepared update runs once per bound parameter row (INSERTs into one table
    // share one commit).
    b.append(SqlInfo::SqlBatchUpdatesSupported, true);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    b.append(SqlInfo::SqlNamedParametersSupported, false);
    b.append(SqlInfo::SqlLocatorsUpdateCopy, false);
    b.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);
    b.build()
}

/// Function names grouped the way JDBC asks for them.
struct FunctionLists {
    numeric: Vec<String>,
    string: Vec<String>,
    system: Vec<String>,
    datetime: Vec<String>,
}

impl FunctionLists {
    fn from_state(state: &SessionState) -> Self {
        let mut lists = Self {
            numeric: vec![],
            string: vec![],
            system: vec![],
            datetime: vec![],
        };
        for (name, udf) in state.scalar_functions() {
            let section = udf
                .documentation()
                .map(|d| d.doc_section.label)
                .unwrap_or("Other Functions");
            let list = match section {
                "Math Functions" => &mut lists.numeric,
                "String Functions" | "Binary String Functions" | "Regular Expression Functions" => {
                    &mut lists.string
                }
                "Time and Date Functions" => &mut lists.datetime,
                _ => &mut lists.system,
            };
            list.push(name.to_uppercase());
        }
        for list in [
            &mut lists.numeric,
            &mut lists.string,
            &mut lists.system,
            &mut lists.datetime,
        ] {
            list.sort();
            list.dedup();
        }
        lists
    }
}

/// Which CASTs DataFusion performs: numbers among themselves and to/from text,
/// temporal types among themselves and to/from text, binary to/from text.
fn convert_map() -> BTreeMap<i32, Vec<i32>> {
    use SqlSupportsConvert::*;
    let numeric = [
        SqlConvertBigint,
        SqlConvertBit,
        SqlConvertDecimal,
        SqlConvertFloat,
        SqlConvertInteger,
        SqlConvertNumeric,
        SqlConvertReal,
        SqlConvertSmallint,
        SqlConvertTinyint,
    ];
    let text = [SqlConvertChar, SqlConvertVarchar, SqlConvertLongvarchar];
    let temporal = [SqlConvertDate, SqlConvertTime, SqlConvertTimestamp];
    let binary = [
        SqlConvertBinary,
        SqlConvertVarbinary,
        SqlConvertLongvarbinary,
    ];
    let ids = |group: &[SqlSupportsConvert]| group.iter().map(|c| *c as i32).collect::<Vec<_>>();
    let mut map = BTreeMap::new();
    for from in numeric {
        map.insert(from as i32, [ids(&numeric), ids(&text)].concat());
    }
    for from in text {
        map.insert(
            from as i32,
            [ids(&numeric), ids(&text), ids(&temporal), ids(&binary)].concat(),
        );
    }
    for from in temporal {
        map.insert(from as i32, [ids(&temporal), ids(&text)].concat());
    }
    for from in binary {
        map.insert(from as i32, [ids(&binary), ids(&text)].concat());
    }
    map
}

/// Builds the XDBC type table: every SQL type a Lakehouse column can have.
pub(super) fn xdbc_type_info() -> Result<XdbcTypeInfoData, FlightError> {
    let mut b = XdbcTypeInfoDataBuilder::new();
    let ty = |name: &str, data_type: XdbcDataType, column_size: Option<i32>| XdbcTypeInfo {
        type_name: name.to_string(),
        data_type,
        column_size,
        literal_prefix: None,
        literal_suffix: None,
        create_params: None,
        nullable: Nullable::NullabilityNullable,
        case_sensitive: false,
        searchable: Searchable::Basic,
        unsigned_attribute: None,
        fixed_prec_scale: false,
        auto_increment: None,
        local_type_name: Some(name.to_string()),
        minimum_scale: None,
        maximum_scale: None,
        sql_data_type: data_type,
        datetime_subcode: None,
        num_prec_radix: None,
        interval_precision: None,
    };
    let numeric = |name: &str, data_type, size, radix| XdbcTypeInfo {
        unsigned_attribute: Some(false),
        num_prec_radix: Some(radix),
        ..ty(name, data_type, Some(size))
    };
    let quoted = |name: &str, data_type, size: Option<i32>, prefix: &str| XdbcTypeInfo {
        literal_prefix: Some(prefix.to_string()),
        literal_suffix: Some("'".to_string()),
        case_sensitive: true,
        searchable: Searchable::Full,
        ..ty(name, data_type, size)
    };
    b.append(ty("BOOLEAN", XdbcDataType::XdbcBit, Some(1)));
    b.append(numeric("TINYINT", XdbcDataType::XdbcTinyint, 3, 10));
    b.append(numeric("SMALLINT", XdbcDataType::XdbcSmallint, 5, 10));
    b.append(numeric("INTEGER", XdbcDataType::XdbcInteger, 10, 10));
    b.append(numeric("BIGINT", XdbcDataType::XdbcBigint, 19, 10));
    b.append(numeric("REAL", XdbcDataType::XdbcReal, 24, 2));
    b.append(numeric("DOUBLE", XdbcDataType::XdbcDouble, 53, 2));
    b.append(XdbcTypeInfo {
        create_params: Some(vec!["precision".into(), "scale".into()]),
        fixed_prec_scale: true,
        minimum_scale: Some(0),
        maximum_scale: Some(38),
        ..numeric("DECIMAL", XdbcDataType::XdbcDecimal, 38, 10)
    });
    b.append(quoted("VARCHAR", XdbcDataType::XdbcVarchar, None, "'"));
    b.append(quoted("VARBINARY", XdbcDataType::XdbcVarbinary, None, "X'"));
    b.append(XdbcTypeInfo {
        // XDBC_SUBCODE_DATE is an alias of YEAR (1); prost keeps only the first name.
        datetime_subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeYear),
        ..quoted("DATE", XdbcDataType::XdbcDate, Some(10), "DATE '")
    });
    b.append(XdbcTypeInfo {
        datetime_subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeTime),
        ..quoted("TIME", XdbcDataType::XdbcTime, Some(18), "TIME '")
    });
    b.append(XdbcTypeInfo {
        datetime_subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeTimestamp),
        ..quoted(
            "TIMESTAMP",
            XdbcDataType::XdbcTimestamp,
            Some(29),
            "TIMESTAMP '",
        )
    });
    b.append(quoted(
        "INTERVAL",
        XdbcDataType::XdbcInterval,
        None,
        "INTERVAL '",
    ));
    b.build()
}
