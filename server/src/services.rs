//! The server's shared services beside the catalog: jobs, lineage and the bus of
//! dataset events. Built once at start (in `server.rs`) and handed to the layers
//! that need them; the catalog itself holds tables only.
//!
//! Owns: nothing of its own (each service owns its folder of the primary bucket).
//! May call: `jobs`, `lineage`, `events`, `storage`.

use std::sync::Arc;

use crate::events::EventBus;
use crate::jobs::Jobs;
use crate::lineage::Lineage;
use crate::storage::{Bucket, StorageError};

/// Jobs, lineage and dataset events of one server.
#[derive(Debug)]
pub(crate) struct Services {
    /// Long-running work with progress, cancel and a persisted record.
    pub jobs: Arc<Jobs>,
    /// OpenLineage run events of every write.
    pub lineage: Arc<Lineage>,
    /// `DatasetAppended` and friends, for the vector refresh and other followers.
    pub events: EventBus,
}

impl Services {
    /// Opens the services kept in the primary bucket `primary`.
    pub(crate) async fn open(
        primary: Arc<Bucket>,
        max_running_jobs: usize,
        lineage_endpoint: Option<url::Url>,
    ) -> Result<Self, StorageError> {
        Ok(Self {
            jobs: Arc::new(Jobs::open(Arc::clone(&primary), max_running_jobs).await?),
            lineage: Arc::new(Lineage::new(primary, lineage_endpoint)),
            events: EventBus::new(),
        })
    }
}
