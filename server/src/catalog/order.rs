//! The order of one table's writes inside this server.
//!
//! delta-rs commits optimistically: a write that finds a newer version than the one
//! it started from checks the winner's actions against its own and fails on a
//! conflict. Appends never remove files, so appends running side by side all
//! commit; but a write that rewrites files (UPDATE, DELETE, overwrite) makes every
//! write that started before it conflict, even a blind append. Since this server
//! runs every write of its catalog, it orders them instead of letting them fail:
//! appends share a table's turn, a rewrite takes it alone (waiting for the appends
//! in flight, and new writes queue behind it, first come first served). A conflict
//! can then only come from a writer outside this server, and is reported as such.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// What a write does to a table's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Adds files only (INSERT, append ingests): runs beside other appends.
    Append,
    /// Removes or replaces files (UPDATE, DELETE, overwrite): runs alone.
    Rewrite,
}

/// A write's turn on its table; the next writes may start once it is dropped.
#[derive(Debug)]
#[allow(dead_code)] // held for its drop
pub(super) enum Turn {
    Shared(OwnedRwLockReadGuard<()>),
    Alone(OwnedRwLockWriteGuard<()>),
}

/// Per-table turns.
#[derive(Debug, Default)]
pub(super) struct WriteOrder {
    tables: Mutex<HashMap<String, Arc<RwLock<()>>>>,
}

impl WriteOrder {
    /// Waits for the turn of a write of `access` on the table at `key`.
    pub(super) async fn enter(&self, key: &str, access: Access) -> Turn {
        let lock = {
            let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
            // Forget the tables nobody writes or waits for.
            tables.retain(|_, lock| Arc::strong_count(lock) > 1);
            Arc::clone(
                tables
                    .entry(key.to_string())
                    .or_insert_with(|| Arc::new(RwLock::new(()))),
            )
        };
        match access {
            Access::Append => Turn::Shared(lock.read_owned().await),
            Access::Rewrite => Turn::Alone(lock.write_owned().await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn appends_share_and_a_rewrite_waits_for_them() {
        let order = Arc::new(WriteOrder::default());
        let first = order.enter("t", Access::Append).await;
        // A second append does not wait.
        let second = tokio::time::timeout(Duration::from_secs(1), order.enter("t", Access::Append))
            .await
            .expect("appends share the table");
        // A rewrite waits for both.
        let waiting = {
            let order = Arc::clone(&order);
            tokio::spawn(async move { order.enter("t", Access::Rewrite).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        // Other tables are not held up.
        drop(order.enter("u", Access::Rewrite).await);
        drop((first, second));
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("the rewrite runs once the appends end")
            .expect("task");
    }
}
