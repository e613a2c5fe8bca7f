//! Authentication against the real binary with arrow-rs's FlightSqlServiceClient.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{DataDir, TestServer, code, query};
use tonic::Code;

#[tokio::test]
async fn handshake_issues_tokens_that_every_call_needs() {
    let dir = DataDir::new("auth");
    let hash = lakehouse::flight::hash_password("s3cret").unwrap();
    let user = format!("alice={hash}");
    let server = TestServer::start(&dir.0, &["--user", &user, "--token-ttl-secs", "3"]).await;

    // No token: every call but the Handshake is refused.
    let mut anonymous = server.client().await;
    let err = anonymous
        .execute("SELECT 1".into(), None)
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::Unauthenticated, "{err}");
    assert_eq!(
        code(&anonymous.get_catalogs().await.unwrap_err()),
        Code::Unauthenticated
    );

    // Wrong password, unknown user.
    for (user, password) in [("alice", "nope"), ("mallory", "s3cret")] {
        // arrow-rs's client reports a failed Handshake as text, not as a status.
        let err = server
            .client()
            .await
            .handshake(user, password)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid user name or password"),
            "{user}: {err}"
        );
    }

    // A forged token.
    let mut forged = server.client().await;
    forged.set_token("0123456789abcdef".into());
    assert_eq!(
        code(&forged.execute("SELECT 1".into(), None).await.unwrap_err()),
        Code::Unauthenticated
    );

    // The right credentials: the client keeps the bearer token and queries work.
    let mut client = server.client().await;
    client.handshake("alice", "s3cret").await.unwrap();
    assert!(
        query(&mut client, "SELECT count(*) AS n FROM region")
            .await
            .contains("| 5 |")
    );

    // Tokens expire.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let err = client.execute("SELECT 1".into(), None).await.unwrap_err();
    assert_eq!(code(&err), Code::Unauthenticated);
    assert!(err.to_string().contains("expired"), "{err}");
}

#[test]
fn refuses_anonymous_service_beyond_loopback() {
    let dir = DataDir::new("anonymous");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lakehouse"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("without authentication"), "{stderr}");
}
