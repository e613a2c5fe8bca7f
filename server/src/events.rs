//! The in-process bus of dataset events.
//!
//! Owns: the broadcast of committed changes to tables. Every committed ingest
//! (file, bulk upload, database) publishes one event after its commit; later
//! subsystems (index refresh, autotune) subscribe. Invariants:
//! - an event is sent only after the commit it describes is visible;
//! - publishing never blocks or fails the write: with no subscriber the event
//!   is dropped, and a lagging subscriber loses the oldest events (and is told so
//!   by `RecvError::Lagged`).

use tokio::sync::broadcast;

/// Events buffered per subscriber before the oldest are dropped.
const CAPACITY: usize = 1024;

/// What happened to a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Rows were added (including the first commit of a new table).
    Appended,
    /// The rows (and maybe the schema) were replaced.
    Replaced,
}

/// One committed change to a table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DatasetEvent {
    /// `DatasetAppended` or `DatasetReplaced`.
    pub kind: ChangeKind,
    /// `schema.table`.
    pub table: String,
    /// The Delta version committed.
    pub version: i64,
    /// Rows written by the commit.
    pub rows: u64,
    /// The write's lineage run id.
    pub run_id: String,
    /// What wrote it, e.g. `lakehouse.ingest.file`.
    pub source: String,
}

/// The bus; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct EventBus {
    sender: broadcast::Sender<DatasetEvent>,
}

impl EventBus {
    /// An empty bus.
    pub(crate) fn new() -> Self {
        let (sender, _) = broadcast::channel(CAPACITY);
        Self { sender }
    }

    /// Sends `event` to every subscriber.
    pub(crate) fn publish(&self, event: DatasetEvent) {
        tracing::debug!(?event, "dataset event");
        // An error only means nobody listens.
        let _ = self.sender.send(event);
    }

    /// A receiver of every event published from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<DatasetEvent> {
        self.sender.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}
