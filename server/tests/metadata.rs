//! Catalog browsing through arrow-rs's FlightSqlServiceClient against the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, UInt32Type};
use arrow_flight::sql::{
    CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetTables, CommandGetXdbcTypeInfo, SqlInfo,
};
use common::{DataDir, TestServer, code, fetch, pretty, rows};

fn tables_request(
    catalog: Option<&str>,
    schema: Option<&str>,
    table: Option<&str>,
    include_schema: bool,
) -> CommandGetTables {
    CommandGetTables {
        catalog: catalog.map(Into::into),
        db_schema_filter_pattern: schema.map(Into::into),
        table_name_filter_pattern: table.map(Into::into),
        table_types: vec![],
        include_schema,
    }
}

#[tokio::test]
async fn browses_catalogs_schemas_tables_and_keys() {
    let dir = DataDir::new("metadata");
    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;

    let info = client.get_catalogs().await.unwrap();
    let batches = fetch(&mut client, info).await;
    assert_eq!(
        pretty(&batches),
        "+--------------+\n| catalog_name |\n+--------------+\n| lakehouse    |\n+--------------+"
    );

    // With and without a catalog: ADBC's get_objects sends none.
    for catalog in [None, Some("lakehouse")] {
        let request = CommandGetDbSchemas {
            catalog: catalog.map(Into::into),
            db_schema_filter_pattern: None,
        };
        let info = client.get_db_schemas(request).await.unwrap();
        let text = pretty(&fetch(&mut client, info).await);
        for schema in ["information_schema", "public", "system"] {
            assert!(text.contains(schema), "{catalog:?}: {text}");
        }
    }
    let request = CommandGetDbSchemas {
        catalog: Some("other".into()),
        db_schema_filter_pattern: None,
    };
    let info = client.get_db_schemas(request).await.unwrap();
    assert_eq!(rows(&fetch(&mut client, info).await), 0);

    // Tables, with patterns, no catalog, and with schemas.
    let info = client
        .get_tables(tables_request(None, Some("public"), None, false))
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    assert_eq!(rows(&batches), 8, "{}", pretty(&batches));
    assert_eq!(batches[0].schema().fields().len(), 4);

    let info = client
        .get_tables(tables_request(None, Some("pub%"), Some("line%"), true))
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    assert_eq!(rows(&batches), 1);
    let batch = &batches[0];
    assert_eq!(batch.column(2).as_string::<i32>().value(0), "lineitem");
    assert_eq!(batch.column(3).as_string::<i32>().value(0), "TABLE");
    let schema_bytes = batch.column(4).as_binary::<i32>().value(0);
    let schema = arrow::ipc::convert::try_schema_from_ipc_buffer(schema_bytes).unwrap();
    assert_eq!(schema.field(0).name(), "l_orderkey");
    assert_eq!(
        schema.field_with_name("l_comment").unwrap().data_type(),
        &DataType::Utf8
    );

    let info = client
        .get_tables(tables_request(
            Some("lakehouse"),
            Some("system"),
            None,
            true,
        ))
        .await
        .unwrap();
    let text = pretty(&fetch(&mut client, info).await);
    for table in ["buckets", "columns", "tables", "SYSTEM TABLE"] {
        assert!(text.contains(table), "{text}");
    }

    // information_schema is listed like any other schema, as views.
    let info = client
        .get_tables(tables_request(
            None,
            Some("information_schema"),
            Some("tables"),
            true,
        ))
        .await
        .unwrap();
    let text = pretty(&fetch(&mut client, info).await);
    assert!(
        text.contains("| information_schema | tables ") && text.contains("VIEW"),
        "{text}"
    );

    let info = client.get_table_types().await.unwrap();
    let text = pretty(&fetch(&mut client, info).await);
    assert!(
        text.contains("TABLE") && text.contains("VIEW") && text.contains("SYSTEM TABLE"),
        "{text}"
    );

    // Keys: the exact schema, no rows; unknown tables are NotFound.
    let pk = CommandGetPrimaryKeys {
        catalog: None,
        db_schema: Some("public".into()),
        table: "orders".into(),
    };
    let info = client.get_primary_keys(pk).await.unwrap();
    let fields: Vec<_> = info
        .clone()
        .try_decode_schema()
        .unwrap()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        fields,
        [
            "catalog_name",
            "db_schema_name",
            "table_name",
            "column_name",
            "key_name",
            "key_sequence"
        ]
    );
    assert_eq!(rows(&fetch(&mut client, info).await), 0);
    let missing = CommandGetPrimaryKeys {
        catalog: None,
        db_schema: None,
        table: "nope".into(),
    };
    let info = client.get_primary_keys(missing).await.unwrap();
    let err = common::try_fetch(&mut client, info).await.unwrap_err();
    assert_eq!(code(&err), tonic::Code::NotFound);

    let exported = CommandGetExportedKeys {
        catalog: None,
        db_schema: None,
        table: "orders".into(),
    };
    let info = client.get_exported_keys(exported).await.unwrap();
    assert_eq!(info.clone().try_decode_schema().unwrap().fields().len(), 13);
    assert_eq!(rows(&fetch(&mut client, info).await), 0);
    let imported = CommandGetImportedKeys {
        catalog: None,
        db_schema: None,
        table: "lineitem".into(),
    };
    let info = client.get_imported_keys(imported).await.unwrap();
    assert_eq!(rows(&fetch(&mut client, info).await), 0);
    let cross = CommandGetCrossReference {
        pk_catalog: None,
        pk_db_schema: None,
        pk_table: "orders".into(),
        fk_catalog: None,
        fk_db_schema: None,
        fk_table: "lineitem".into(),
    };
    let info = client.get_cross_reference(cross).await.unwrap();
    assert_eq!(rows(&fetch(&mut client, info).await), 0);
}

#[tokio::test]
async fn sql_info_and_type_info_use_the_spec_schemas() {
    let dir = DataDir::new("sqlinfo");
    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;

    let info = client
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
            SqlInfo::FlightSqlServerTransaction,
            SqlInfo::SqlIdentifierQuoteChar,
            SqlInfo::SqlKeywords,
            SqlInfo::SqlSupportsConvert,
        ])
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(batch.num_rows(), 6);
    assert_eq!(batch.schema().field(0).data_type(), &DataType::UInt32);
    let DataType::Union(fields, arrow::datatypes::UnionMode::Dense) =
        batch.schema().field(1).data_type().clone()
    else {
        panic!("value column must be a dense union");
    };
    let names: Vec<_> = fields.iter().map(|(_, f)| f.name().clone()).collect();
    assert_eq!(
        names,
        [
            "string_value",
            "bool_value",
            "bigint_value",
            "int32_bitmask",
            "string_list",
            "int32_to_int32_list_map"
        ]
    );
    let ids = batch.column(0).as_primitive::<UInt32Type>();
    let values = batch.column(1).as_union();
    for row in 0..batch.num_rows() {
        let child = values.value(row);
        match ids.value(row) {
            0 => assert_eq!(child.as_string::<i32>().value(0), "Lakehouse"),
            3 => assert!(!child.as_boolean().value(0), "writable"),
            8 => assert_eq!(
                child.as_primitive::<arrow::datatypes::Int32Type>().value(0),
                0,
                "no transactions"
            ),
            504 => assert_eq!(child.as_string::<i32>().value(0), "\""),
            508 => assert!(child.as_list::<i32>().value(0).len() > 100),
            517 => assert!(!child.is_empty()),
            other => panic!("unexpected info id {other}"),
        }
    }

    // All of it at once, as JDBC asks.
    let info = client.get_sql_info(vec![]).await.unwrap();
    assert!(rows(&fetch(&mut client, info).await) > 80);

    let info = client
        .get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: None })
        .await
        .unwrap();
    let text = pretty(&fetch(&mut client, info).await);
    for ty in [
        "BIGINT",
        "VARCHAR",
        "TIMESTAMP",
        "DECIMAL",
        "BOOLEAN",
        "DATE",
    ] {
        assert!(text.contains(ty), "{ty} missing from\n{text}");
    }
    let info = client
        .get_xdbc_type_info(CommandGetXdbcTypeInfo {
            data_type: Some(12),
        })
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    assert_eq!(rows(&batches), 1, "{}", pretty(&batches));
}
