//! Worker processes: engines that run outside the server (Faiss, Lance), spawned on
//! first use, health-checked, restarted when they die, and stopped with the server.
//!
//! Owns: each worker's process (its stdin, its monitor task), its Flight client and
//! its bookkeeping (pid, generation, restarts, last exit).
//! May call: nothing of the server; callers (the vector service) use [`Worker::call`].
//! Invariants:
//! - a worker never outlives the server: it exits when its stdin closes, which the
//!   kernel does for us when the server dies, however it dies;
//! - a crash fails only the calls in flight, with [`WorkerError::Crashed`]
//!   (UNAVAILABLE), and the worker is started again (backing off while it keeps
//!   crashing); callers give a restarted worker its state back themselves, keyed by
//!   [`Live::generation`];
//! - every call carries the worker's bearer token and the caller's request id.

pub(crate) mod system;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arrow_flight::flight_service_client::FlightServiceClient;
use futures::FutureExt;
use futures::future::BoxFuture;
use lakehouse_flight_ext::v1::WorkerHealth;
use lakehouse_flight_ext::worker_actions::{HEALTH, LISTENING, TOKEN_ENV};
use prost::Message;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{oneshot, watch};
use tonic::transport::Channel;

/// How long a worker may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a call's failure waits to learn whether the worker died under it.
const EXIT_WAIT: Duration = Duration::from_secs(2);
/// Largest message to or from a worker.
const MAX_MESSAGE: usize = 256 << 20;
/// Crashes within this window count toward the restart back-off.
const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// First and longest delay before a crashed worker is started again.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a worker call did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkerError {
    /// The worker cannot be started (missing binary, failed start).
    #[error("{0}")]
    Unavailable(String),
    /// The worker died during the call; it is being restarted.
    #[error(
        "the {worker} worker exited during this call ({exit}); it is being restarted, retry the call"
    )]
    Crashed {
        /// Which worker.
        worker: &'static str,
        /// How it ended, e.g. "killed by signal 9".
        exit: String,
    },
    /// The worker answered with an error.
    #[error("{}", .0.message())]
    Status(tonic::Status),
}

/// A running worker: what a call needs.
#[derive(Clone, Debug)]
pub(crate) struct Live {
    client: FlightServiceClient<Channel>,
    /// `Bearer <token>`, made once per start.
    authorization: tonic::metadata::AsciiMetadataValue,
    /// Bumped at each start: state given to an earlier generation is gone.
    pub generation: u64,
    /// The process id.
    pub pid: u32,
    /// The id of the request being served, sent along as `x-request-id`.
    request_id: RequestIdSource,
}

/// Where a call's request id comes from (the server's observability layer).
pub(crate) type RequestIdSource = fn() -> Option<String>;

impl Live {
    /// The Flight client (cheap to clone).
    pub(crate) fn client(&self) -> FlightServiceClient<Channel> {
        self.client.clone()
    }

    /// Runs the worker action `name` with `body`; its first answer's body (empty when
    /// it answers nothing).
    pub(crate) async fn action(
        &self,
        name: &str,
        body: Vec<u8>,
    ) -> Result<bytes::Bytes, tonic::Status> {
        let action = arrow_flight::Action::new(name, body);
        let mut answers = self
            .client()
            .do_action(self.request(action))
            .await?
            .into_inner();
        Ok(answers.message().await?.map(|a| a.body).unwrap_or_default())
    }

    /// DoPut of `batches` under a descriptor carrying `command`: the `app_metadata` of
    /// the worker's one answer.
    pub(crate) async fn put(
        &self,
        command: Vec<u8>,
        batches: impl futures::Stream<
            Item = Result<arrow::array::RecordBatch, arrow_flight::error::FlightError>,
        > + Send
        + 'static,
    ) -> Result<bytes::Bytes, tonic::Status> {
        use futures::StreamExt;
        let frames = arrow_flight::encode::FlightDataEncoderBuilder::new()
            .with_flight_descriptor(Some(arrow_flight::FlightDescriptor::new_cmd(command)))
            .build(batches)
            // The encoder fails only on a batch it cannot encode; an error ends the put,
            // which the worker then refuses as incomplete.
            .take_while(|r| futures::future::ready(r.is_ok()))
            .filter_map(|r| futures::future::ready(r.ok()));
        let mut results = self
            .client()
            .do_put(self.request(frames))
            .await?
            .into_inner();
        let result = results
            .message()
            .await?
            .ok_or_else(|| tonic::Status::internal("the worker answered the put with nothing"))?;
        Ok(result.app_metadata)
    }

    /// DoGet of `ticket`: the batches of the stream the worker answers.
    pub(crate) async fn get(
        &self,
        ticket: Vec<u8>,
    ) -> Result<Vec<arrow::array::RecordBatch>, tonic::Status> {
        use futures::TryStreamExt;
        let ticket = arrow_flight::Ticket::new(ticket);
        let frames = self
            .client()
            .do_get(self.request(ticket))
            .await?
            .into_inner()
            .map_err(arrow_flight::error::FlightError::from);
        arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(frames)
            .try_collect()
            .await
            .map_err(|error| match error {
                arrow_flight::error::FlightError::Tonic(status) => *status,
                other => tonic::Status::internal(other.to_string()),
            })
    }

    /// `message` as a request carrying the token and the current request id.
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        if let Some(id) = (self.request_id)()
            && let Ok(value) = id.parse()
        {
            request.metadata_mut().insert("x-request-id", value);
        }
        request
    }
}

/// The process of a running worker, owned by the supervisor.
struct Process {
    /// Closing it asks the worker to exit.
    stdin: Option<tokio::process::ChildStdin>,
    /// Kills the worker when it does not exit in time.
    kill: Option<oneshot::Sender<()>>,
    monitor: tokio::task::JoinHandle<()>,
}

/// What `system.workers` and `/metrics` show of a worker.
#[derive(Debug, Clone)]
pub(crate) struct WorkerState {
    pub name: &'static str,
    /// "not started", "starting", "running", "restarting", "stopped".
    pub state: &'static str,
    pub pid: Option<u32>,
    pub restarts: u64,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_exit: Option<String>,
    pub binary: String,
}

/// One supervised worker.
pub(crate) struct Worker {
    name: &'static str,
    binary: PathBuf,
    request_id: RequestIdSource,
    live: RwLock<Option<Live>>,
    /// Serialises starts.
    starting: tokio::sync::Mutex<()>,
    process: Mutex<Option<Process>>,
    /// The generation that exited last (0: none yet).
    exited: watch::Sender<u64>,
    generation: AtomicU64,
    restarts: AtomicU64,
    restarting: AtomicBool,
    stopping: AtomicBool,
    crashes: Mutex<VecDeque<Instant>>,
    last_exit: Mutex<Option<String>>,
    started_at: Mutex<Option<chrono::DateTime<chrono::Utc>>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name)
            .field("binary", &self.binary)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// How a process ended, in words.
fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "ended".into(),
        },
        Err(error) => format!("lost: {error}"),
    }
}

impl Worker {
    /// A worker running `binary`, started on first use.
    pub(crate) fn new(
        name: &'static str,
        binary: PathBuf,
        request_id: RequestIdSource,
    ) -> Arc<Self> {
        Arc::new(Self {
            name,
            binary,
            request_id,
            live: RwLock::new(None),
            starting: tokio::sync::Mutex::new(()),
            process: Mutex::new(None),
            exited: watch::Sender::new(0),
            generation: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            restarting: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            crashes: Mutex::new(VecDeque::new()),
            last_exit: Mutex::new(None),
            started_at: Mutex::new(None),
        })
    }

    /// The binary it runs.
    pub(crate) fn binary(&self) -> &Path {
        &self.binary
    }

    /// Whether its binary is there: a path names a file, a bare name is on `PATH`.
    pub(crate) fn binary_exists(&self) -> bool {
        if self.binary.components().count() > 1 {
            return self.binary.is_file();
        }
        std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| dir.join(&self.binary).is_file())
        })
    }

    /// The running worker, if one runs now (never starts one).
    pub(crate) fn running(&self) -> Option<Live> {
        self.live.read().ok().and_then(|l| l.clone())
    }

    /// The running worker, started if it is not. (Boxed: a start spawns the monitor,
    /// which starts the worker again after a crash.)
    pub(crate) fn live(self: &Arc<Self>) -> BoxFuture<'static, Result<Live, WorkerError>> {
        let this = Arc::clone(self);
        async move {
            if let Some(live) = this.running() {
                return Ok(live);
            }
            let _starting = this.starting.lock().await;
            if let Some(live) = this.running() {
                return Ok(live);
            }
            if this.stopping.load(Ordering::Relaxed) {
                return Err(WorkerError::Unavailable(format!(
                    "the server is stopping: the {} worker is not started again",
                    this.name
                )));
            }
            this.start().await
        }
        .boxed()
    }

    /// Runs `call` against the worker; a failure that comes from the worker dying
    /// becomes [`WorkerError::Crashed`].
    pub(crate) async fn call<T, F, Fut>(self: &Arc<Self>, call: F) -> Result<T, WorkerError>
    where
        F: FnOnce(Live) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let live = self.live().await?;
        let generation = live.generation;
        match call(live).await {
            Ok(value) => Ok(value),
            Err(status) => Err(self.classify(status, generation).await),
        }
    }

    async fn classify(&self, status: tonic::Status, generation: u64) -> WorkerError {
        use tonic::Code;
        if !matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Internal
        ) {
            return WorkerError::Status(status);
        }
        let mut exited = self.exited.subscribe();
        let died = tokio::time::timeout(EXIT_WAIT, exited.wait_for(|g| *g >= generation))
            .await
            .is_ok_and(|r| r.is_ok());
        if died {
            let exit = lock(&self.last_exit)
                .clone()
                .unwrap_or_else(|| "exited".into());
            WorkerError::Crashed {
                worker: self.name,
                exit,
            }
        } else {
            WorkerError::Status(status)
        }
    }

    async fn start(self: &Arc<Self>) -> Result<Live, WorkerError> {
        let unavailable = |what: String| WorkerError::Unavailable(what);
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut child = tokio::process::Command::new(&self.binary)
            .args(["--listen", "127.0.0.1:0"])
            .env(TOKEN_ENV, &token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                unavailable(format!(
                    "cannot start the {name} worker {}: {e}; build it with `cargo build --workspace` \
                     or set {name}_worker to its path",
                    self.binary.display(),
                    name = self.name,
                ))
            })?;
        let pid = child.id().unwrap_or_default();
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(forward_logs(self.name, pid, stderr));
        }
        let Some(stdout) = child.stdout.take() else {
            return Err(unavailable("the worker's stdout is not a pipe".into()));
        };
        let mut lines = BufReader::new(stdout).lines();
        let announced = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(address) = line.strip_prefix(LISTENING) {
                    return Some(address.trim().to_string());
                }
            }
            None
        })
        .await;
        let address = match announced {
            Ok(Some(address)) => address,
            Ok(None) => {
                let status = child.wait().await;
                return Err(unavailable(format!(
                    "the {} worker exited before listening ({}); see the log lines above",
                    self.name,
                    describe(status)
                )));
            }
            Err(_) => {
                let _ = child.kill().await;
                return Err(unavailable(format!(
                    "the {} worker did not listen within {START_TIMEOUT:?}",
                    self.name
                )));
            }
        };
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| unavailable(format!("worker address {address}: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| unavailable(format!("connecting to the {} worker: {e}", self.name)))?;
        let client = FlightServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let authorization = format!("Bearer {token}")
            .parse()
            .map_err(|e| unavailable(format!("the worker token: {e}")))?;
        let live = Live {
            client,
            authorization,
            generation,
            pid,
            request_id: self.request_id,
        };
        let health = health(&live).await.map_err(|status| {
            unavailable(format!(
                "the {} worker does not answer: {}",
                self.name,
                status.message()
            ))
        })?;
        if health.engine_available {
            tracing::info!(worker = self.name, pid, %address, generation, "worker started");
        } else {
            tracing::warn!(worker = self.name, pid, detail = %health.detail,
                "worker started without its engine");
        }
        let (kill, kill_rx) = oneshot::channel();
        let stdin = child.stdin.take();
        let monitor = tokio::spawn(Arc::clone(self).monitor(child, generation, kill_rx));
        *lock(&self.process) = Some(Process {
            stdin,
            kill: Some(kill),
            monitor,
        });
        *lock(&self.started_at) = Some(chrono::Utc::now());
        if let Ok(mut slot) = self.live.write() {
            *slot = Some(live.clone());
        }
        Ok(live)
    }

    /// Waits for the worker of `generation` to end, then records how and, unless the
    /// server is stopping, starts it again.
    async fn monitor(
        self: Arc<Self>,
        mut child: tokio::process::Child,
        generation: u64,
        kill: oneshot::Receiver<()>,
    ) {
        let status = tokio::select! {
            status = child.wait() => status,
            _ = kill => {
                let _ = child.start_kill();
                child.wait().await
            }
        };
        let exit = describe(status);
        if let Ok(mut slot) = self.live.write()
            && slot.as_ref().is_some_and(|l| l.generation == generation)
        {
            *slot = None;
        }
        *lock(&self.last_exit) = Some(exit.clone());
        self.exited.send_replace(generation);
        if self.stopping.load(Ordering::Relaxed) {
            tracing::info!(worker = self.name, %exit, "worker stopped");
            return;
        }
        self.restarts.fetch_add(1, Ordering::Relaxed);
        let delay = {
            let mut crashes = lock(&self.crashes);
            let now = Instant::now();
            crashes.retain(|at| now.duration_since(*at) < CRASH_WINDOW);
            crashes.push_back(now);
            let doublings = u32::try_from(crashes.len() - 1).unwrap_or(u32::MAX).min(16);
            FIRST_BACKOFF
                .saturating_mul(1 << doublings)
                .min(MAX_BACKOFF)
        };
        tracing::error!(worker = self.name, %exit, restart_in = ?delay,
            "worker exited unexpectedly; calls in flight failed; restarting it");
        self.restarting.store(true, Ordering::Relaxed);
        tokio::time::sleep(delay).await;
        if !self.stopping.load(Ordering::Relaxed)
            && let Err(error) = self.live().await
        {
            tracing::error!(worker = self.name, %error, "cannot restart the worker; the next call tries again");
        }
        self.restarting.store(false, Ordering::Relaxed);
    }

    /// Stops the worker: closes its stdin, waits up to `wait`, then kills it.
    pub(crate) async fn stop(&self, wait: Duration) {
        self.stopping.store(true, Ordering::Relaxed);
        let _starting = self.starting.lock().await;
        let Some(mut process) = lock(&self.process).take() else {
            return;
        };
        drop(process.stdin.take());
        if tokio::time::timeout(wait, &mut process.monitor)
            .await
            .is_err()
        {
            tracing::warn!(
                worker = self.name,
                "the worker did not stop within {wait:?}; killing it"
            );
            if let Some(kill) = process.kill.take() {
                let _ = kill.send(());
            }
            let _ = process.monitor.await;
        }
    }

    /// What it is doing now.
    pub(crate) fn state(&self) -> WorkerState {
        let live = self.running();
        let state = if self.stopping.load(Ordering::Relaxed) && live.is_none() {
            "stopped"
        } else if live.is_some() {
            "running"
        } else if self.restarting.load(Ordering::Relaxed) {
            "restarting"
        } else if self.generation.load(Ordering::Relaxed) == 0 {
            "not started"
        } else {
            "starting"
        };
        WorkerState {
            name: self.name,
            state,
            pid: live.map(|l| l.pid),
            restarts: self.restarts.load(Ordering::Relaxed),
            started_at: *lock(&self.started_at),
            last_exit: lock(&self.last_exit).clone(),
            binary: self.binary.display().to_string(),
        }
    }
}

async fn health(live: &Live) -> Result<WorkerHealth, tonic::Status> {
    let answer = live.action(HEALTH, Vec::new()).await?;
    WorkerHealth::decode(answer).map_err(|e| tonic::Status::internal(e.to_string()))
}

/// Copies a worker's log lines into the server's log, folding runs of one line
/// (Faiss repeats its warnings per sub-quantizer).
async fn forward_logs(worker: &'static str, pid: u32, stderr: tokio::process::ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    let mut last: Option<String> = None;
    let mut repeats = 0u64;
    let flush = |line: &str, repeats: u64| {
        if repeats > 0 {
            tracing::info!(worker, pid, repeats, "{line}");
        } else {
            tracing::info!(worker, pid, "{line}");
        }
    };
    while let Ok(Some(line)) = lines.next_line().await {
        if last.as_deref() == Some(line.as_str()) {
            repeats += 1;
            continue;
        }
        if let Some(previous) = last.take()
            && repeats > 0
        {
            flush(&previous, repeats);
        }
        flush(&line, 0);
        last = Some(line);
        repeats = 0;
    }
    if let Some(previous) = last
        && repeats > 0
    {
        flush(&previous, repeats);
    }
}

/// The server's workers.
#[derive(Debug)]
pub(crate) struct Workers {
    faiss: Arc<Worker>,
    lance: Arc<Worker>,
    dir: PathBuf,
}

/// The binary each worker runs.
#[derive(Debug, Clone)]
pub(crate) struct WorkerBinaries {
    pub(crate) faiss: PathBuf,
    pub(crate) lance: PathBuf,
}

impl Workers {
    /// Workers run from these binaries, keeping their files under `dir`.
    pub(crate) fn new(binaries: WorkerBinaries, dir: PathBuf, request_id: RequestIdSource) -> Self {
        Self {
            faiss: Worker::new("faiss", binaries.faiss, request_id),
            lance: Worker::new("lance", binaries.lance, request_id),
            dir,
        }
    }

    /// The Faiss worker.
    pub(crate) fn faiss(&self) -> &Arc<Worker> {
        &self.faiss
    }

    /// The Lance worker.
    pub(crate) fn lance(&self) -> &Arc<Worker> {
        &self.lance
    }

    /// The local folder of worker files.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every worker's state.
    pub(crate) fn states(&self) -> Vec<WorkerState> {
        vec![self.faiss.state(), self.lance.state()]
    }

    /// Stops every worker (see [`Worker::stop`]).
    pub(crate) async fn stop(&self, wait: Duration) {
        tokio::join!(self.faiss.stop(wait), self.lance.stop(wait));
    }
}
