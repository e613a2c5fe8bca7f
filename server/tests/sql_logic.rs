//! Runs `tests/sql/*.slt` through Flight SQL against the real binary.
//! The file format is described in `tests/sql/README.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::{DataDir, TestServer, code, pretty, try_fetch};

enum Record {
    Query { sql: String, expected: String },
    Error { sql: String, code: String },
    Count { sql: String, rows: i64 },
}

fn parse(text: &str) -> Vec<Record> {
    let mut records = Vec::new();
    for block in text.split("\n\n") {
        let lines: Vec<&str> = block.lines().filter(|l| !l.starts_with('#')).collect();
        let Some((head, rest)) = lines.split_first() else {
            continue;
        };
        let head = head.trim();
        if head == "query" {
            let split = rest
                .iter()
                .position(|l| *l == "----")
                .expect("query without ----");
            records.push(Record::Query {
                sql: rest[..split].join("\n"),
                expected: rest[split + 1..].join("\n"),
            });
        } else if let Some(code) = head.strip_prefix("statement error ") {
            records.push(Record::Error {
                sql: rest.join("\n"),
                code: code.trim().to_string(),
            });
        } else if let Some(rows) = head.strip_prefix("statement count ") {
            records.push(Record::Count {
                sql: rest.join("\n"),
                rows: rows.trim().parse().expect("statement count <rows>"),
            });
        } else if !head.is_empty() {
            panic!("unknown record {head:?}");
        }
    }
    records
}

#[tokio::test]
async fn sql_behaviour_files() {
    let dir = DataDir::new("slt");
    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/sql");
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut checked = 0;
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for record in parse(&std::fs::read_to_string(&file).unwrap()) {
            match record {
                Record::Query { sql, expected } => {
                    let info = client
                        .execute(sql.clone(), None)
                        .await
                        .unwrap_or_else(|e| panic!("{name}: {sql}: {e}"));
                    let batches = try_fetch(&mut client, info)
                        .await
                        .unwrap_or_else(|e| panic!("{name}: {sql}: {e}"));
                    assert_eq!(pretty(&batches), expected, "{name}: {sql}");
                }
                Record::Count { sql, rows } => {
                    let affected = client
                        .execute_update(sql.clone(), None)
                        .await
                        .unwrap_or_else(|e| panic!("{name}: {sql}: {e}"));
                    assert_eq!(affected, rows, "{name}: {sql}");
                }
                Record::Error {
                    sql,
                    code: expected,
                } => {
                    let result = match client.execute(sql.clone(), None).await {
                        Ok(info) => try_fetch(&mut client, info).await.map(|_| ()),
                        Err(e) => Err(e),
                    };
                    let err =
                        result.expect_err(&format!("{name}: {sql} should fail with {expected}"));
                    assert_eq!(
                        format!("{:?}", code(&err)),
                        expected,
                        "{name}: {sql}: {err}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} records");
}
