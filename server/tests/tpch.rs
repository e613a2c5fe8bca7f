//! The 22 TPC-H queries give the same answers through Flight SQL as in-process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::{DataDir, TestServer, fetch, pretty};
use futures::TryStreamExt;
use lakehouse::config::{ServeArgs, Settings};
use lakehouse::query::SessionDefaults;

fn queries() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../benches/tpch");
    lakehouse::demo::tpch_queries(&dir).unwrap()
}

#[tokio::test]
async fn tpch_answers_match_in_process_datafusion() {
    let dir = DataDir::new("tpch");
    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;

    let settings = Settings::resolve(ServeArgs {
        data_dir: Some(dir.0.clone()),
        ..Default::default()
    })
    .unwrap();
    let engine = lakehouse::server::open_engine(&settings).await.unwrap();

    let queries = queries();
    assert_eq!(queries.len(), 22);
    for (name, sql) in queries {
        let info = client
            .execute(sql.clone(), None)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let remote = pretty(&fetch(&mut client, info).await);
        let ctx = engine.session(&SessionDefaults::default());
        let plan = engine.plan(&ctx, &sql).await.unwrap();
        let local: Vec<_> = engine
            .execute(&ctx, plan)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(remote, pretty(&local), "{name} differs");
        assert!(!remote.is_empty(), "{name}");
    }
}
