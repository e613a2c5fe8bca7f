//! The set of buckets, persisted in `<data-dir>/buckets.json`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::{Bucket, BucketKind, Result, StorageError};
use crate::config::{S3Settings, Settings};

/// Name of the bucket that holds the catalog and, by default, every table.
pub(crate) const PRIMARY: &str = "primary";
/// Name of the bucket kept for recovery copies; it always exists.
pub(crate) const RESCUE: &str = "rescue";

#[derive(Debug, Serialize, Deserialize)]
struct PersistedBucket {
    name: String,
    url: String,
}

/// Registered buckets by name.
#[derive(Debug)]
pub(crate) struct BucketRegistry {
    file: PathBuf,
    buckets: RwLock<BTreeMap<String, Arc<Bucket>>>,
    /// S3 settings of buckets added at run time.
    s3: S3Settings,
    /// Folders local buckets added at run time must lie in (canonical paths).
    local_roots: Vec<PathBuf>,
    /// One add or remove at a time (each checks, then persists).
    changing: tokio::sync::Mutex<()>,
}

impl BucketRegistry {
    /// Loads the registry from the data directory, creating `primary` and `rescue`
    /// (local folders under `<data-dir>/buckets/` unless configured otherwise).
    pub(crate) fn open(settings: &Settings) -> Result<Self> {
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
        let mut local_roots = Vec::new();
        for root in &settings.local_bucket_roots {
            std::fs::create_dir_all(root).map_err(|source| StorageError::Io {
                context: format!("creating local bucket root {}", root.display()),
                source,
            })?;
            local_roots.push(
                std::fs::canonicalize(root).map_err(|source| StorageError::Io {
                    context: format!("resolving local bucket root {}", root.display()),
                    source,
                })?,
            );
        }
        if local_roots.is_empty() {
            local_roots.push(std::fs::canonicalize(data_dir).map_err(|source| {
                StorageError::Io {
                    context: format!("resolving {}", data_dir.display()),
                    source,
                }
            })?);
        }
        let registry = Self {
            file,
            buckets: RwLock::new(buckets),
            s3: settings.s3.clone(),
            local_roots,
            changing: tokio::sync::Mutex::new(()),
        };
        registry.persist(&registry.read())?;
        Ok(registry)
    }

    /// Whether `name` is `primary` or `rescue`, which always exist.
    pub(crate) fn is_builtin(name: &str) -> bool {
        name == PRIMARY || name == RESCUE
    }

    /// Registers the bucket `name` at `url` (`file://`, `s3://`, or an absolute local
    /// path) and persists the registry. A local folder must lie under one of the
    /// local roots and is created; an S3 location must answer a listing.
    pub(crate) async fn add(&self, name: &str, url: &str) -> Result<Arc<Bucket>> {
        let url = if url.starts_with('/') {
            let path = PathBuf::from(url);
            url::Url::from_directory_path(&path)
                .map_err(|()| StorageError::InvalidUrl {
                    url: url.to_string(),
                    message: "not an absolute path".into(),
                })?
                .to_string()
        } else {
            url.to_string()
        };
        let _changing = self.changing.lock().await;
        if self.read().contains_key(name) {
            return Err(StorageError::BucketExists(format!(
                "bucket {name:?} exists already"
            )));
        }
        if let Ok(parsed) = url::Url::parse(&url)
            && parsed.scheme() == "file"
        {
            self.check_local(&parsed)?;
        }
        let mut folder = url.clone();
        if !folder.ends_with('/') {
            folder.push('/');
        }
        if let Some(other) = self.read().values().find(|b| {
            let existing = b.url().as_str();
            existing.starts_with(&folder) || folder.starts_with(existing)
        }) {
            return Err(StorageError::BucketExists(format!(
                "{folder} overlaps bucket {:?} at {}: buckets may not share objects",
                other.name(),
                other.url()
            )));
        }
        let bucket = Bucket::open(name, &url, &self.s3)?;
        if bucket.kind() == BucketKind::Local
            && let Some(dir) = bucket.local_file("")
        {
            // The folder exists now: check where it really is (a symbolic link may
            // point outside the roots).
            let real = std::fs::canonicalize(&dir).map_err(|source| StorageError::Io {
                context: format!("resolving {}", dir.display()),
                source,
            })?;
            self.check_root(&real)?;
        }
        // Reachable and allowed: one listing (an S3 bucket that does not exist or
        // refuses the credentials fails here, not on the first write).
        bucket.any_object().await?;
        let bucket = Arc::new(bucket);
        let mut next = self.read().clone();
        next.insert(name.to_string(), Arc::clone(&bucket));
        self.persist(&next)?;
        *self.write() = next;
        Ok(bucket)
    }

    /// Unregisters the bucket `name` and persists the registry; its objects stay.
    /// `primary` and `rescue` are refused.
    pub(crate) async fn remove(&self, name: &str) -> Result<Arc<Bucket>> {
        if Self::is_builtin(name) {
            return Err(StorageError::Refused(format!(
                "bucket {name:?} is built in and cannot be removed"
            )));
        }
        let _changing = self.changing.lock().await;
        let mut next = self.read().clone();
        let removed = next
            .remove(name)
            .ok_or_else(|| StorageError::UnknownBucket(name.to_string()))?;
        self.persist(&next)?;
        *self.write() = next;
        Ok(removed)
    }

    /// A local bucket URL must name a path under a local root, without `..`.
    fn check_local(&self, url: &url::Url) -> Result<()> {
        if url
            .path()
            .split('/')
            .any(|part| part == ".." || part == "%2E%2E")
        {
            return Err(StorageError::Refused(format!(
                "local bucket {url}: '..' is not allowed in the path"
            )));
        }
        let path = url.to_file_path().map_err(|()| StorageError::InvalidUrl {
            url: url.to_string(),
            message: "not an absolute local path".into(),
        })?;
        self.check_root(&path)
    }

    fn check_root(&self, path: &Path) -> Result<()> {
        if self.local_roots.iter().any(|root| path.starts_with(root)) {
            return Ok(());
        }
        let roots: Vec<String> = self
            .local_roots
            .iter()
            .map(|r| r.display().to_string())
            .collect();
        Err(StorageError::Refused(format!(
            "local bucket folder {} is outside the allowed roots ({}); the server's \
             local_bucket_roots setting names them",
            path.display(),
            roots.join(", ")
        )))
    }

    /// The bucket called `name`.
    pub(crate) fn get(&self, name: &str) -> Result<Arc<Bucket>> {
        self.read()
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::UnknownBucket(name.to_string()))
    }

    /// The primary bucket.
    pub(crate) fn primary(&self) -> Result<Arc<Bucket>> {
        self.get(PRIMARY)
    }

    /// All buckets, ordered by name.
    pub(crate) fn list(&self) -> Vec<Arc<Bucket>> {
        self.read().values().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Bucket>>> {
        // A poisoned lock only means a panic elsewhere; the map itself is always consistent.
        self.buckets
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Bucket>>> {
        self.buckets
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn persist(&self, buckets: &BTreeMap<String, Arc<Bucket>>) -> Result<()> {
        let entries: Vec<PersistedBucket> = buckets
            .values()
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
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServeArgs;

    #[tokio::test]
    async fn buckets_are_added_under_the_roots_without_overlap_and_persist() {
        let dir =
            std::env::temp_dir().join(format!("lh-registry-{}", uuid::Uuid::new_v4().simple()));
        let settings = Settings::resolve(ServeArgs {
            data_dir: Some(dir.clone()),
            ..Default::default()
        })
        .unwrap();
        let registry = BucketRegistry::open(&settings).unwrap();
        let landing = dir.join("landing");
        let added = registry
            .add("landing", landing.to_str().unwrap())
            .await
            .unwrap();
        assert_eq!(added.kind(), BucketKind::Local);
        assert!(landing.is_dir());

        let refused = |e: StorageError| e.to_string();
        let exists = registry.add("landing", "/elsewhere").await.unwrap_err();
        assert!(matches!(exists, StorageError::BucketExists(_)), "{exists}");
        let nested = registry
            .add("nested", landing.join("sub").to_str().unwrap())
            .await
            .unwrap_err();
        assert!(refused(nested).contains("overlaps bucket \"landing\""));
        // The primary bucket's folder lies inside the data directory: overlapping.
        let over = registry
            .add("over", dir.to_str().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(over, StorageError::BucketExists(_)), "{over}");
        let outside = registry
            .add("outside", "/var/tmp/lh-outside")
            .await
            .unwrap_err();
        assert!(matches!(outside, StorageError::Refused(_)), "{outside}");
        assert!(!std::path::Path::new("/var/tmp/lh-outside").exists());
        for name in [PRIMARY, RESCUE] {
            let builtin = registry.remove(name).await.unwrap_err();
            assert!(matches!(builtin, StorageError::Refused(_)), "{builtin}");
        }

        // Reopened from buckets.json: the added bucket is back.
        drop(registry);
        let registry = BucketRegistry::open(&settings).unwrap();
        assert!(registry.get("landing").is_ok());
        registry.remove("landing").await.unwrap();
        let registry = BucketRegistry::open(&settings).unwrap();
        assert!(matches!(
            registry.get("landing").unwrap_err(),
            StorageError::UnknownBucket(_)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
