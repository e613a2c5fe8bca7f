//! The set of buckets, persisted in `<data-dir>/buckets.json`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::{Bucket, Result, StorageError};
use crate::config::Settings;

/// Name of the bucket that holds the catalog and, by default, every table.
pub const PRIMARY: &str = "primary";
/// Name of the bucket kept for recovery copies; it always exists.
pub const RESCUE: &str = "rescue";

#[derive(Debug, Serialize, Deserialize)]
struct PersistedBucket {
    name: String,
    url: String,
}

/// Registered buckets by name.
#[derive(Debug)]
pub struct BucketRegistry {
    file: PathBuf,
    buckets: RwLock<BTreeMap<String, Arc<Bucket>>>,
}

impl BucketRegistry {
    /// Loads the registry from the data directory, creating `primary` and `rescue`
    /// (local folders under `<data-dir>/buckets/` unless configured otherwise).
    pub fn open(settings: &Settings) -> Result<Self> {
        let data_dir = &settings.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|source| StorageError::Io {
            context: format!("creating data directory {}", data_dir.display()),
            source,
        })?;
        let file = data_dir.join("buckets.json");
        let mut buckets = BTreeMap::new();
        for entry in read_persisted(&file)? {
            if entry.name != PRIMARY && entry.name != RESCUE {
                let bucket = Bucket::open(&entry.name, &entry.url, &settings.s3)?;
                buckets.insert(entry.name, Arc::new(bucket));
            }
        }
        for (name, configured) in [
            (PRIMARY, &settings.primary_url),
            (RESCUE, &settings.rescue_url),
        ] {
            let bucket = match configured {
                Some(url) => Bucket::open(name, url, &settings.s3)?,
                None => Bucket::local(name, &data_dir.join("buckets").join(name), &settings.s3)?,
            };
            buckets.insert(name.to_string(), Arc::new(bucket));
        }
        let registry = Self {
            file,
            buckets: RwLock::new(buckets),
        };
        registry.persist()?;
        Ok(registry)
    }

    /// The bucket called `name`.
    pub fn get(&self, name: &str) -> Result<Arc<Bucket>> {
        self.read()
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::UnknownBucket(name.to_string()))
    }

    /// The primary bucket.
    pub fn primary(&self) -> Result<Arc<Bucket>> {
        self.get(PRIMARY)
    }

    /// All buckets, ordered by name.
    pub fn list(&self) -> Vec<Arc<Bucket>> {
        self.read().values().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Bucket>>> {
        // A poisoned lock only means a panic elsewhere; the map itself is always consistent.
        self.buckets
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn persist(&self) -> Result<()> {
        let entries: Vec<PersistedBucket> = self
            .list()
            .iter()
            .map(|b| PersistedBucket {
                name: b.name().to_string(),
                url: b.url().to_string(),
            })
            .collect();
        let json =
            serde_json::to_vec_pretty(&entries).map_err(|e| StorageError::CorruptRegistry {
                path: self.file.display().to_string(),
                message: e.to_string(),
            })?;
        write_atomically(&self.file, &json)
    }
}

fn read_persisted(file: &Path) -> Result<Vec<PersistedBucket>> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StorageError::CorruptRegistry {
            path: file.display().to_string(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(StorageError::Io {
            context: format!("reading {}", file.display()),
            source,
        }),
    }
}

/// Writes `bytes` to `path` so that readers see the old or the new content, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |context: String| move |source| StorageError::Io { context, source };
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut file =
        std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    file.write_all(bytes)
        .map_err(io(format!("writing {}", tmp.display())))?;
    file.sync_all()
        .map_err(io(format!("syncing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("renaming {} into place", tmp.display())))
}
