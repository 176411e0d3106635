//! Where the Parquet files go: a local directory by default, or an
//! S3-compatible bucket or an Azure container (the `object_store` crate), so
//! that any engine can read them without the LRS. The server's scheduled
//! Datatheek delivery writes its workbooks to a location of the same kind.

use crate::error::AnalyticsError;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use std::sync::Arc;
use url::Url;

/// An analytics location: the object store, the prefix inside it under which
/// `statements/`, `voids/` and `checkpoint.json` live, and the URL of that
/// prefix as engines name it (`file:///...`, `s3://bucket/prefix`).
#[derive(Clone)]
pub struct Target {
    pub store: Arc<dyn ObjectStore>,
    pub root: Path,
    /// The URL of `root`, ending in `/`.
    pub url: Url,
    /// The URL of the store itself (scheme and bucket), which DataFusion
    /// registers the store under.
    pub store_url: Url,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.url)
    }
}

impl Target {
    /// `s3://bucket/prefix` (endpoint, region, keys from the `AWS_*`
    /// environment variables: `AWS_ENDPOINT`, `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`;
    /// path-style requests unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`),
    /// `az://container/prefix` (`AZURE_STORAGE_ACCOUNT_NAME`,
    /// `AZURE_STORAGE_ACCOUNT_KEY`, ...), or a local directory (created).
    pub fn open(location: &str) -> Result<Self, AnalyticsError> {
        let bad = |e: &dyn std::fmt::Display| {
            AnalyticsError::Config(format!("analytics location {location:?}: {e}"))
        };
        if let Some(scheme) = ["s3://", "az://", "azure://", "abfs://", "abfss://"]
            .iter()
            .find(|s| location.starts_with(**s))
        {
            let url = Url::parse(location).map_err(|e| bad(&e))?;
            let store: Arc<dyn ObjectStore> = if *scheme == "s3://" {
                Arc::new(
                    AmazonS3Builder::from_env()
                        .with_url(location)
                        .build()
                        .map_err(|e| bad(&e))?,
                )
            } else {
                Arc::new(
                    MicrosoftAzureBuilder::from_env()
                        .with_url(location)
                        .build()
                        .map_err(|e| bad(&e))?,
                )
            };
            let host = url.host_str().unwrap_or_default();
            let store_url =
                Url::parse(&format!("{}://{}", url.scheme(), host)).map_err(|e| bad(&e))?;
            let root = Path::from_url_path(url.path()).map_err(|e| bad(&e))?;
            let url = dir_url(&store_url, &root)?;
            return Ok(Self {
                store,
                root,
                url,
                store_url,
            });
        }
        let dir = std::path::Path::new(location.strip_prefix("file://").unwrap_or(location));
        std::fs::create_dir_all(dir).map_err(|e| bad(&e))?;
        let dir = std::fs::canonicalize(dir).map_err(|e| bad(&e))?;
        let root = Path::from_filesystem_path(&dir).map_err(|e| bad(&e))?;
        let store_url = Url::parse("file:///").expect("a url");
        Ok(Self {
            store: Arc::new(LocalFileSystem::new()),
            url: dir_url(&store_url, &root)?,
            root,
            store_url,
        })
    }

    /// A path below the root.
    pub fn path(&self, relative: &str) -> Path {
        relative
            .split('/')
            .filter(|part| !part.is_empty())
            .fold(self.root.clone(), |path, part| path.join(part))
    }

    /// The URL of a directory below the root, ending in `/`.
    pub fn dir_url(&self, relative: &str) -> Result<Url, AnalyticsError> {
        dir_url(&self.store_url, &self.path(relative))
    }

    /// Writes a whole object at `relative` below the root (replacing one
    /// there; a local directory gets it through a temporary file and a
    /// rename, so a reader never sees half of it).
    pub async fn put_bytes(&self, relative: &str, bytes: Vec<u8>) -> Result<(), AnalyticsError> {
        let payload = object_store::PutPayload::from(bytes::Bytes::from(bytes));
        self.store.put(&self.path(relative), payload).await?;
        Ok(())
    }

    /// The object at `relative` below the root, or `None` if there is none.
    pub async fn get_bytes(&self, relative: &str) -> Result<Option<Vec<u8>>, AnalyticsError> {
        match self.store.get(&self.path(relative)).await {
            Ok(found) => Ok(Some(found.bytes().await?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The local directory, when the target is one (for messages).
    pub fn local_dir(&self) -> Option<std::path::PathBuf> {
        (self.store_url.scheme() == "file")
            .then(|| std::path::PathBuf::from(format!("/{}", self.root.as_ref())))
    }
}

fn dir_url(store_url: &Url, path: &Path) -> Result<Url, AnalyticsError> {
    let mut text = store_url.as_str().trim_end_matches('/').to_owned();
    text.push('/');
    if !path.as_ref().is_empty() {
        text.push_str(path.as_ref());
        text.push('/');
    }
    Url::parse(&text).map_err(|e| AnalyticsError::Config(format!("{text}: {e}")))
}
