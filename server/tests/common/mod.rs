//! Test harness: runs the real `lakehouse` binary on an ephemeral port.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow_flight::FlightInfo;
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use tonic::transport::Channel;

/// A temporary data directory, removed on drop.
pub struct DataDir(pub PathBuf);

impl DataDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "lakehouse-test-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running server process.
pub struct TestServer {
    child: Child,
    pub addr: SocketAddr,
    pub log: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl TestServer {
    /// Starts `lakehouse serve` on `data_dir` with the tiny TPC-H demo and `extra` flags.
    pub async fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lakehouse"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--demo",
                "--demo-scale",
                "0.01",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(extra)
            .env("LAKEHOUSE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lakehouse");
        let stderr = child.stderr.take().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // A plain thread: the harness needs no tokio process/io features, so test
        // builds unify features exactly like the server build (no rebuilds).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(120), async {
            loop {
                let line = rx.recv().await.expect("server exited before listening");
                if let Some(rest) = line.split("listening on ").nth(1)
                    && let Some((_, rest)) = rest.split_once("://")
                {
                    let addr = rest.split_whitespace().next().unwrap();
                    return addr.parse::<SocketAddr>().unwrap();
                }
            }
        })
        .await
        .expect("server did not start within 120 s");
        Self {
            child,
            addr,
            log: rx,
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// A TLS channel to `localhost` trusting `ca_pem`, presenting `identity` (mTLS) if given.
    pub async fn tls_channel(
        &self,
        ca_pem: &[u8],
        identity: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Channel, tonic::transport::Error> {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca_pem))
            .domain_name("localhost");
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Channel::from_shared(format!("https://localhost:{}", self.addr.port()))
            .unwrap()
            .tls_config(tls)?
            .connect()
            .await
    }

    pub async fn client(&self) -> FlightSqlServiceClient<Channel> {
        FlightSqlServiceClient::new(self.channel().await)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc_kill(self.child.id() as i32, 15) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not stop within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

/// Fetches every endpoint of `info` and returns all batches.
pub async fn fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> Vec<RecordBatch> {
    try_fetch(client, info).await.unwrap()
}

pub async fn try_fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> Result<Vec<RecordBatch>, arrow_flight::error::FlightError> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("endpoint without ticket");
        let mut stream = client.do_get(ticket).await?;
        while let Some(batch) = stream.try_next().await? {
            batches.push(batch);
        }
    }
    Ok(batches)
}

/// Makes the throw-away TLS files of `tests/tls/make-certs.sh` in `dir`.
pub fn make_certs(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tls/make-certs.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(dir)
        .status()
        .expect("run make-certs.sh");
    assert!(status.success(), "make-certs.sh failed");
}

/// Runs an update and returns the affected rows.
pub async fn update(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> i64 {
    client
        .execute_update(sql.to_string(), None)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs `sql` and pretty-prints the result.
pub async fn query(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> String {
    let info = client.execute(sql.to_string(), None).await.unwrap();
    pretty(&fetch(client, info).await)
}

pub fn pretty(batches: &[RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string()
}

pub fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

/// The gRPC code of a client error.
pub fn code(error: &arrow_flight::error::FlightError) -> tonic::Code {
    match error {
        arrow_flight::error::FlightError::Tonic(status) => status.code(),
        other => panic!("not a gRPC status: {other:?}"),
    }
}
