//! One bucket: an object store plus the URL prefix it is rooted at.

use std::path::Path as FsPath;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use super::{Result, StorageError};
use crate::config::S3Settings;

/// Where a bucket's objects live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BucketKind {
    /// A folder on the local file system (`file://`).
    Local,
    /// An S3 or S3-compatible bucket (`s3://`).
    S3,
}

impl BucketKind {
    /// Lower-case name used in `system.buckets`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::S3 => "s3",
        }
    }
}

/// A named location in object storage.
///
/// `store` is rooted at the URL's authority (the whole file system for `file://`, the
/// S3 bucket for `s3://`), and `prefix` is the bucket's folder inside it. That is the
/// shape Delta Lake and DataFusion expect: a table URL maps to a store path 1:1.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    name: String,
    url: Url,
    kind: BucketKind,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// The object-store options that reach it from another process (S3's endpoint,
    /// region, keys), as `object_store` names them.
    options: Vec<(String, String)>,
}

impl Bucket {
    /// Opens (and for local buckets creates) the bucket at `url`.
    pub(crate) fn open(name: &str, url: &str, s3: &S3Settings) -> Result<Self> {
        let invalid = |message: String| StorageError::InvalidUrl {
            url: redact_url(url),
            message,
        };
        let mut url = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        let prefix = Path::from_url_path(url.path()).map_err(|e| invalid(e.to_string()))?;
        let mut options = Vec::new();
        let (kind, store): (BucketKind, Arc<dyn ObjectStore>) = match url.scheme() {
            "file" => {
                let dir = url
                    .to_file_path()
                    .map_err(|()| invalid("not an absolute local path".into()))?;
                std::fs::create_dir_all(&dir).map_err(|source| StorageError::Io {
                    context: format!("creating bucket folder {}", dir.display()),
                    source,
                })?;
                (BucketKind::Local, Arc::new(LocalFileSystem::new()))
            }
            "s3" | "s3a" => {
                let bucket = url
                    .host_str()
                    .ok_or_else(|| invalid("missing S3 bucket name".into()))?;
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(region) = &s3.region {
                    builder = builder.with_region(region);
                }
                if let Some(key) = &s3.access_key_id {
                    builder = builder.with_access_key_id(key);
                }
                if let Some(secret) = &s3.secret_access_key {
                    builder = builder.with_secret_access_key(secret);
                }
                if s3.allow_http {
                    builder = builder.with_allow_http(true);
                }
                let named = [
                    ("aws_endpoint", &s3.endpoint),
                    ("aws_region", &s3.region),
                    ("aws_access_key_id", &s3.access_key_id),
                    ("aws_secret_access_key", &s3.secret_access_key),
                ];
                for (key, value) in named {
                    if let Some(value) = value {
                        options.push((key.to_string(), value.clone()));
                    }
                }
                if s3.allow_http {
                    options.push(("allow_http".into(), "true".into()));
                }
                let store = builder.build().map_err(|e| invalid(e.to_string()))?;
                (BucketKind::S3, Arc::new(store))
            }
            other => {
                return Err(invalid(format!(
                    "unsupported scheme {other:?}; use file:// or s3://"
                )));
            }
        };
        Ok(Self {
            name: name.to_string(),
            url,
            kind,
            store,
            prefix,
            options,
        })
    }

    /// Opens a local bucket rooted at `dir`.
    pub(crate) fn local(name: &str, dir: &FsPath, s3: &S3Settings) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::Io {
            context: format!("creating bucket folder {}", dir.display()),
            source,
        })?;
        let abs = std::fs::canonicalize(dir).map_err(|source| StorageError::Io {
            context: format!("resolving {}", dir.display()),
            source,
        })?;
        let url = Url::from_directory_path(&abs).map_err(|()| StorageError::InvalidUrl {
            url: abs.display().to_string(),
            message: "not an absolute path".into(),
        })?;
        Self::open(name, url.as_str(), s3)
    }

    /// The bucket's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The bucket's base URL (always ends with `/`).
    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    /// The object-store options another process needs to reach this bucket (for
    /// S3: `aws_endpoint`, `aws_region`, `aws_access_key_id`,
    /// `aws_secret_access_key`, `allow_http` where configured; none for a folder).
    pub(crate) fn object_store_options(&self) -> Vec<(String, String)> {
        self.options.clone()
    }

    /// Local folder or S3.
    pub(crate) fn kind(&self) -> BucketKind {
        self.kind
    }

    /// The store, rooted at the URL's authority (see the type docs).
    pub(crate) fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// Store path of `relative` inside this bucket.
    pub(crate) fn path(&self, relative: &str) -> Path {
        relative
            .split('/')
            .filter(|part| !part.is_empty())
            .fold(self.prefix.clone(), |path, part| path.join(part))
    }

    /// URL of `relative` inside this bucket; a trailing `/` is kept.
    pub(crate) fn url_of(&self, relative: &str) -> Result<Url> {
        self.url
            .join(relative)
            .map_err(|e| StorageError::InvalidUrl {
                url: format!("{}{relative}", self.url),
                message: e.to_string(),
            })
    }

    /// Reads a whole object, `None` when it does not exist.
    pub(crate) async fn get_opt(&self, relative: &str) -> Result<Option<bytes::Bytes>> {
        match self.store.get(&self.path(relative)).await {
            Ok(result) => result
                .bytes()
                .await
                .map(Some)
                .map_err(|source| self.error(source)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(self.error(source)),
        }
    }

    /// Writes a whole object in one atomic put.
    pub(crate) async fn put(&self, relative: &str, data: bytes::Bytes) -> Result<()> {
        self.store
            .put(&self.path(relative), data.into())
            .await
            .map(|_| ())
            .map_err(|source| self.error(source))
    }

    /// Size of an object, `None` when it does not exist.
    pub(crate) async fn size(&self, relative: &str) -> Result<Option<u64>> {
        match self.store.head(&self.path(relative)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(self.error(source)),
        }
    }

    /// Objects under the folder `relative` (recursively) with their sizes, as
    /// paths relative to the bucket, sorted.
    pub(crate) async fn list_sizes(&self, relative: &str) -> Result<Vec<(String, u64)>> {
        use futures::TryStreamExt;
        let root = self.path(relative);
        let objects: Vec<_> = self
            .store
            .list(Some(&root))
            .try_collect()
            .await
            .map_err(|source| self.error(source))?;
        let mut found: Vec<(String, u64)> = objects
            .into_iter()
            .filter_map(|meta| {
                meta.location.prefix_match(&self.prefix).map(|parts| {
                    let name = parts
                        .map(|p| p.as_ref().to_string())
                        .collect::<Vec<_>>()
                        .join("/");
                    (name, meta.size)
                })
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// The local file of `relative`, for buckets in a local folder.
    pub(crate) fn local_file(&self, relative: &str) -> Option<std::path::PathBuf> {
        if self.kind != BucketKind::Local {
            return None;
        }
        self.url_of(relative).ok()?.to_file_path().ok()
    }

    /// Deletes one object; a missing one is not an error.
    pub(crate) async fn delete(&self, relative: &str) -> Result<()> {
        match self.store.delete(&self.path(relative)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(self.error(source)),
        }
    }

    /// Objects under the folder `relative` (recursively), as paths relative to that folder.
    pub(crate) async fn list(&self, relative: &str) -> Result<Vec<String>> {
        let folder: Vec<&str> = relative.split('/').filter(|p| !p.is_empty()).collect();
        let folder = if folder.is_empty() {
            String::new()
        } else {
            format!("{}/", folder.join("/"))
        };
        Ok(self
            .list_sizes(relative)
            .await?
            .into_iter()
            .filter_map(|(name, _)| name.strip_prefix(&folder).map(str::to_string))
            .collect())
    }

    /// Deletes every object under the folder `relative`; returns how many were deleted.
    pub(crate) async fn delete_folder(&self, relative: &str) -> Result<usize> {
        // Never the bucket itself: a table's folder is always a sub-folder.
        if relative.trim_matches('/').is_empty() || relative.split('/').any(|p| p == "..") {
            return Err(StorageError::InvalidUrl {
                url: format!("{}{relative}", self.url),
                message: "refusing to delete the bucket root or a path outside it".into(),
            });
        }
        use futures::{StreamExt, TryStreamExt};
        let root = self.path(relative);
        let locations = self
            .store
            .list(Some(&root))
            .map_ok(|meta| meta.location)
            .boxed();
        let deleted: Vec<Path> = self
            .store
            .delete_stream(locations)
            .try_collect()
            .await
            .map_err(|source| self.error(source))?;
        // A local store leaves the emptied folders behind; remove them too.
        if self.kind == BucketKind::Local
            && let Ok(dir) = self.url_of(relative).map(|url| url.to_file_path())
            && let Ok(dir) = dir
        {
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(StorageError::Io {
                        context: format!("removing folder {}", dir.display()),
                        source: e,
                    });
                }
                _ => {}
            }
        }
        Ok(deleted.len())
    }

    /// The sub-folders directly under the folder `relative` (names only, sorted).
    pub(crate) async fn folders(&self, relative: &str) -> Result<Vec<String>> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.path(relative)))
            .await
            .map_err(|source| self.error(source))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|prefix| prefix.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Some object of the bucket (relative path), `None` when it holds none; lists at
    /// most one page.
    pub(crate) async fn any_object(&self) -> Result<Option<String>> {
        use futures::StreamExt;
        let mut objects = self.store.list(Some(&self.prefix));
        match objects.next().await {
            None => Ok(None),
            Some(Err(source)) => Err(self.error(source)),
            Some(Ok(meta)) => Ok(Some(
                meta.location
                    .prefix_match(&self.prefix)
                    .map(|parts| {
                        parts
                            .map(|p| p.as_ref().to_string())
                            .collect::<Vec<_>>()
                            .join("/")
                    })
                    .unwrap_or_else(|| meta.location.to_string()),
            )),
        }
    }

    /// Copies the object `relative` to the same path in `target` (another bucket,
    /// possibly another store), streaming it in parts; returns the bytes copied.
    pub(crate) async fn copy_object(&self, relative: &str, target: &Bucket) -> Result<u64> {
        use futures::StreamExt;
        let source = self
            .store
            .get(&self.path(relative))
            .await
            .map_err(|source| self.error(source))?;
        let upload = target
            .store
            .put_multipart(&target.path(relative))
            .await
            .map_err(|source| target.error(source))?;
        let mut writer = object_store::WriteMultipart::new(upload);
        let mut chunks = source.into_stream();
        let mut copied = 0u64;
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(chunk) => {
                    copied += chunk.len() as u64;
                    writer.write(&chunk);
                }
                Err(source) => {
                    writer.abort().await.ok();
                    return Err(self.error(source));
                }
            }
        }
        writer
            .finish()
            .await
            .map_err(|source| target.error(source))?;
        Ok(copied)
    }

    fn error(&self, source: object_store::Error) -> StorageError {
        StorageError::ObjectStore {
            bucket: self.name.clone(),
            source,
        }
    }
}

/// Replaces the password in `scheme://user:pass@host/...` with `***`.
pub(super) fn redact_url(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_bucket_maps_relative_paths_under_its_folder() {
        let dir = std::env::temp_dir().join(format!("lh-bucket-{}", std::process::id()));
        let bucket = Bucket::local("primary", &dir, &S3Settings::default()).unwrap();
        assert_eq!(bucket.kind(), BucketKind::Local);
        assert!(bucket.url().as_str().ends_with('/'));
        let path = bucket.path("tables/public/t/");
        assert!(path.as_ref().ends_with("tables/public/t"), "{path}");
        let url = bucket.url_of("tables/public/t/").unwrap();
        assert_eq!(
            url.to_file_path().unwrap(),
            std::fs::canonicalize(&dir).unwrap().join("tables/public/t")
        );
    }

    #[test]
    fn rejects_unknown_schemes_and_redacts_passwords() {
        let err =
            Bucket::open("x", "ftp://user:secret@host/x", &S3Settings::default()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("unsupported scheme"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}
