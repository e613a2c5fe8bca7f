//! Physical plans made by GetFlightInfo, kept briefly for the DoGet that follows.
//!
//! A statement is planned once: GetFlightInfo builds the physical plan, announces
//! *its* schema (the optimizer may change nullability and metadata, so the schema
//! of the logical plan is not what streams), and leaves the plan here under the
//! ticket it hands out. DoGet takes it back and runs it. A ticket redeemed late,
//! twice, or on another server is simply planned again, which yields the same
//! physical schema. Memory is bounded by count and age.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

/// Plans kept at most.
const MAX_PLANS: usize = 256;
/// How long a plan waits for its DoGet.
const PLAN_TTL: Duration = Duration::from_secs(30);

/// A statement's physical plans (one per parameter row) and the session they run in.
#[derive(Clone)]
pub(super) struct Planned {
    pub ctx: SessionContext,
    pub plans: Vec<Arc<dyn ExecutionPlan>>,
}

impl Planned {
    /// The schema the plans stream: the first plan's (every parameter row binds the
    /// same statement).
    pub(super) fn schema(&self) -> Result<arrow::datatypes::SchemaRef, tonic::Status> {
        self.plans
            .first()
            .map(|plan| plan.schema())
            .ok_or_else(|| tonic::Status::invalid_argument("nothing to execute"))
    }
}

/// Planned statements by ticket.
#[derive(Default)]
pub(super) struct PlanCache {
    entries: Mutex<HashMap<Vec<u8>, (Instant, Planned)>>,
}

impl PlanCache {
    /// Keeps `planned` for the DoGet of `ticket`.
    pub(super) fn put(&self, ticket: Vec<u8>, planned: Planned) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let now = Instant::now();
        entries.retain(|_, (at, _)| now.duration_since(*at) < PLAN_TTL);
        if entries.len() >= MAX_PLANS
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(key, _)| key.clone())
        {
            entries.remove(&oldest);
        }
        entries.insert(ticket, (now, planned));
    }

    /// The plans kept for `ticket`, if still fresh; each is handed out once.
    pub(super) fn take(&self, ticket: &[u8]) -> Option<Planned> {
        let mut entries = self.entries.lock().ok()?;
        let (at, planned) = entries.remove(ticket)?;
        (at.elapsed() < PLAN_TTL).then_some(planned)
    }

    /// Plans waiting for their DoGet.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::physical_plan::empty::EmptyExec;

    fn planned() -> Planned {
        let schema = Arc::new(arrow::datatypes::Schema::empty());
        Planned {
            ctx: SessionContext::new(),
            plans: vec![Arc::new(EmptyExec::new(schema))],
        }
    }

    #[test]
    fn a_plan_is_taken_once() {
        let cache = PlanCache::default();
        cache.put(b"t".to_vec(), planned());
        assert!(cache.take(b"t").is_some());
        assert!(cache.take(b"t").is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = PlanCache::default();
        for i in 0..(MAX_PLANS + 10) {
            cache.put(i.to_le_bytes().to_vec(), planned());
        }
        assert_eq!(cache.len(), MAX_PLANS);
        // The oldest went first.
        assert!(cache.take(&0usize.to_le_bytes()).is_none());
        assert!(cache.take(&(MAX_PLANS + 9).to_le_bytes()).is_some());
    }
}
