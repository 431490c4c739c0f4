//! The lake: one object store chosen from a URL, and the paths of the bronze layout.
//!
//! `./lake`, `/abs/path` or `file:///abs/path` is a local folder; `s3://bucket/prefix` is S3
//! (or any S3-compatible server) configured from the standard `AWS_*` environment;
//! `az://container/prefix` or `abfss://container@account.dfs.core.windows.net/prefix` is
//! Azure Blob Storage (or ADLS Gen2) configured from the standard `AZURE_*` environment;
//! `memory://` is an in-memory store for unit tests. Every write goes through
//! [`Lake::put_bytes`] or [`Lake::upload_file`], which are atomic on every backend: a reader
//! sees the old object or the new one, never part of one.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, UpdateVersion};

mod hashed;
mod probe;
mod upload;

pub use hashed::{FileStamp, Hashed};
pub use probe::PROBE_PATH;
pub use upload::UPLOADS_DIR;

use crate::month::Month;

/// The URL schemes of Azure Blob Storage lakes (object_store's spellings).
pub const AZURE_SCHEMES: [&str; 5] = ["az", "abfs", "abfss", "azure", "adl"];

/// The bronze prefix of this dataset.
pub const BRONZE_ROOT: &str = "bronze/gp_registered_patients";
/// Upload part size: above S3's 5 MiB minimum, small enough to keep memory flat.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Small objects read at once where one is read per month of history (manifests, month
/// states): a round trip each, one after another, grew with the history.
pub(crate) const READS_AT_ONCE: usize = 16;

/// A storage failure, naming the lake path involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LakeError {
    /// The lake URL cannot be used.
    #[error("cannot open lake '{url}': {reason}")]
    Config {
        /// The URL given.
        url: String,
        /// Why.
        reason: String,
    },
    /// A command that only reads was pointed at a local folder that does not exist.
    #[error("no lake at {url}: `gplake --lake {url} sync` creates one")]
    Missing {
        /// The location given.
        url: String,
    },
    /// The store refused for lack of permission or credentials.
    #[error(
        "permission denied on {path} ({op}: {reason}); check the credentials and bucket policy (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, or the instance or container role)"
    )]
    PermissionDenied {
        /// What was attempted.
        op: &'static str,
        /// The lake path.
        path: String,
        /// The store's answer, in brief.
        reason: String,
        /// The store's error.
        source: Box<object_store::Error>,
    },
    /// Any other storage failure.
    #[error("storage error on {path} ({op}): {reason}")]
    Storage {
        /// What was attempted.
        op: &'static str,
        /// The lake path.
        path: String,
        /// The store's answer, in brief.
        reason: String,
        /// The store's error.
        source: Box<object_store::Error>,
    },
    /// The store accepts conditional writes and ignores them: commits could be lost.
    #[error(
        "the store at {endpoint} ignores conditional writes ({header}): two writers could both commit and one commit would be lost, so gplake writes nothing there; use a store that honours them (AWS S3, MinIO, Cloudflare R2…)"
    )]
    Unconditional {
        /// The store's endpoint.
        endpoint: String,
        /// The request header it ignored.
        header: &'static str,
    },
    /// A local file (being uploaded, or read in place) could not be read.
    #[error("cannot read local file {file}: {source}")]
    LocalIo {
        /// The local file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl LakeError {
    fn from_store(op: &'static str, path: &Path, source: object_store::Error) -> LakeError {
        let path = path.to_string();
        let reason = brief(&source);
        // A listing's refusal arrives as a generic error: its S3 code says what it is.
        let refused = [
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
        ]
        .iter()
        .any(|code| reason.starts_with(code));
        match source {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => LakeError::PermissionDenied {
                op,
                path,
                reason,
                source: Box::new(source),
            },
            source if refused => LakeError::PermissionDenied {
                op,
                path,
                reason,
                source: Box::new(source),
            },
            source => LakeError::Storage {
                op,
                path,
                reason,
                source: Box::new(source),
            },
        }
    }
}

/// The outcome of a conditional write.
#[derive(Debug, Clone)]
pub enum Written {
    /// Written; the object's new version.
    Done(UpdateVersion),
    /// Another writer changed (or created) the object first; nothing written.
    Conflict,
}

/// The outcome of a copy made only if its target is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copied {
    /// The store made the copy, atomically refusing an existing target.
    Created,
    /// The target already existed; nothing copied.
    Existed,
    /// The target was absent a moment before and was copied without a guard.
    Unguarded,
}

/// A lake: where bronze, silver and metadata live.
#[derive(Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    url: String,
    /// The same storage unprefixed, and the lake's own URL on it: what Delta tables need.
    root: Arc<dyn ObjectStore>,
    root_url: url::Url,
    /// Multipart uploads by id, on the unprefixed store (S3 and memory).
    multipart: Option<Arc<dyn MultipartStore>>,
    /// Where the store is, for messages (never with credentials).
    endpoint: String,
    /// Whether the store was found to honour conditional writes.
    probed: Arc<tokio::sync::OnceCell<()>>,
    /// What other modules keep for as long as the lake is open, by key (the Delta tables
    /// already read, so that opening one again reads only the commits since).
    kept: Arc<Kept>,
}

/// Values kept for a lake's lifetime, one per key, shared by the lake's clones. Typed by
/// the module that keeps them, so the lake knows nothing of what they are.
#[derive(Default)]
struct Kept(std::sync::Mutex<std::collections::HashMap<String, Box<dyn std::any::Any + Send>>>);

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// An opened store, before it is prefixed.
struct Opened {
    root: Arc<dyn ObjectStore>,
    root_url: url::Url,
    multipart: Option<Arc<dyn MultipartStore>>,
    endpoint: String,
}

impl Lake {
    /// Opens the lake at `location` (a path, `file://`, `s3://`, `az://`, `abfss://` or
    /// `memory://` URL).
    pub fn open(location: &str) -> Result<Lake, LakeError> {
        Lake::open_with(location, std::iter::empty::<(String, String)>())
    }

    /// Opens a lake that must already exist, for commands that only read it: a local folder
    /// that is not there is [`LakeError::Missing`] instead of being created, so a typo in
    /// `--lake` never leaves an empty lake behind. (An S3 prefix has no folder to check.)
    pub fn open_existing_with<I, K, V>(location: &str, options: I) -> Result<Lake, LakeError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let local = match location.split_once("://") {
            None => Some(location),
            Some(("file", path)) => Some(path),
            Some(_) => None,
        };
        if local.is_some_and(|path| !std::path::Path::new(path).is_dir()) {
            return Err(LakeError::Missing {
                url: location.to_string(),
            });
        }
        Lake::open_with(location, options)
    }

    /// Opens the lake with store options that override the environment (for S3:
    /// `aws_endpoint`, `aws_access_key_id`, `aws_allow_http`, …).
    pub fn open_with<I, K, V>(location: &str, options: I) -> Result<Lake, LakeError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let config = |reason: String| LakeError::Config {
            url: location.to_string(),
            reason,
        };
        let opened = match location.split_once("://") {
            Some(("s3" | "s3a", rest)) => {
                open_s3(rest, options).map_err(|e| config(e.to_string()))?
            }
            Some((scheme, _)) if AZURE_SCHEMES.contains(&scheme) => {
                open_azure(location, options).map_err(|e| config(e.to_string()))?
            }
            Some(("memory", _)) => {
                let store = Arc::new(InMemory::new());
                Opened {
                    root: store.clone(),
                    root_url: url::Url::parse("memory:///lake").expect("valid URL"),
                    multipart: Some(store),
                    endpoint: "memory".into(),
                }
            }
            Some(("file", path)) => open_local(path).map_err(config)?,
            Some((scheme, _)) => {
                return Err(config(format!(
                    "unsupported scheme '{scheme}' (use a path, file://, s3://, az://, abfss:// or memory://)"
                )));
            }
            None => open_local(location).map_err(config)?,
        };
        let prefix = opened.root_url.path().trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            opened.root.clone()
        } else {
            Arc::new(PrefixStore::new(opened.root.clone(), prefix))
        };
        Ok(Lake {
            store,
            url: location.to_string(),
            root: opened.root,
            root_url: opened.root_url,
            multipart: opened.multipart,
            endpoint: opened.endpoint,
            probed: Arc::new(tokio::sync::OnceCell::new()),
            kept: Arc::default(),
        })
    }

    /// A clone of the value kept under `key`, if one of type `T` is.
    pub(crate) fn kept<T: Clone + 'static>(&self, key: &str) -> Option<T> {
        let kept = self.kept.0.lock().unwrap_or_else(|e| e.into_inner());
        kept.get(key)?.downcast_ref::<T>().cloned()
    }

    /// Keeps `value` under `key` for the lake's lifetime, in place of what was there.
    pub(crate) fn keep<T: Send + 'static>(&self, key: &str, value: T) {
        let mut kept = self.kept.0.lock().unwrap_or_else(|e| e.into_inner());
        kept.insert(key.to_string(), Box::new(value));
    }

    /// The URL the lake was opened from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The lake's root as engines address it: `s3://bucket/prefix` or an absolute local path.
    pub fn root_location(&self) -> String {
        match self.root_url.scheme() {
            "file" => self
                .root_url
                .to_file_path()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| self.root_url.to_string()),
            _ => self.root_url.to_string(),
        }
        .trim_end_matches('/')
        .to_string()
    }

    /// The underlying store, rooted at the lake.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The unprefixed store and the URL of `relative` (a folder of the lake) on it: how a
    /// Delta table is opened on the same storage as everything else.
    pub fn table_location(&self, relative: &str) -> (Arc<dyn ObjectStore>, url::Url) {
        let mut url = self.root_url.clone();
        let path = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            relative.trim_matches('/')
        );
        url.set_path(&path);
        (self.root.clone(), url)
    }

    /// `bronze/gp_registered_patients/snapshot_year=YYYY/snapshot_month=MM`.
    pub fn bronze_month_dir(month: Month) -> Path {
        Path::from(format!(
            "{BRONZE_ROOT}/snapshot_year={:04}/snapshot_month={:02}",
            month.year(),
            month.month()
        ))
    }

    /// The object's bytes, or `None` when it does not exist.
    pub async fn get_bytes(&self, path: &Path) -> Result<Option<Bytes>, LakeError> {
        Ok(self.get_versioned(path).await?.map(|(bytes, _)| bytes))
    }

    /// The object's metadata, or `None` when it does not exist.
    pub async fn head(&self, path: &Path) -> Result<Option<ObjectMeta>, LakeError> {
        match self.store.head(path).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(LakeError::from_store("head", path, e)),
        }
    }

    /// Writes a small object in one atomic PUT.
    pub async fn put_bytes(&self, path: &Path, bytes: Bytes) -> Result<(), LakeError> {
        self.store
            .put(path, bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| LakeError::from_store("put", path, e))
    }

    /// Creates an object only if none exists; `false` when one already did.
    pub async fn put_if_absent(&self, path: &Path, bytes: Bytes) -> Result<bool, LakeError> {
        let written = self.put_versioned(path, bytes, None).await?;
        Ok(matches!(written, Written::Done(_)))
    }

    /// The object's bytes and the version to make a conditional write against, or `None`
    /// when it does not exist.
    pub async fn get_versioned(
        &self,
        path: &Path,
    ) -> Result<Option<(Bytes, UpdateVersion)>, LakeError> {
        let result = match self.store.get(path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(LakeError::from_store("get", path, e)),
        };
        let version = UpdateVersion {
            e_tag: result.meta.e_tag.clone(),
            version: result.meta.version.clone(),
        };
        let bytes = result
            .bytes()
            .await
            .map_err(|e| LakeError::from_store("get", path, e))?;
        Ok(Some((bytes, version)))
    }

    /// Writes `bytes` only if the object is still at `expected` (or, with `None`, still
    /// absent): the new version, or [`Written::Conflict`] when another writer got there
    /// first. A local folder has no conditional update; callers serialise its writers with an
    /// OS lock and [`Lake::is_local`] tells them so.
    pub async fn put_versioned(
        &self,
        path: &Path,
        bytes: Bytes,
        expected: Option<&UpdateVersion>,
    ) -> Result<Written, LakeError> {
        let mode = match expected {
            None => PutMode::Create,
            Some(_) if self.is_local() => PutMode::Overwrite,
            Some(v) => PutMode::Update(v.clone()),
        };
        match self.store.put_opts(path, bytes.into(), mode.into()).await {
            Ok(r) => Ok(Written::Done(UpdateVersion {
                e_tag: r.e_tag,
                version: r.version,
            })),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(Written::Conflict),
            Err(e) => Err(LakeError::from_store("conditional put", path, e)),
        }
    }

    /// Copies `from` to `to` only if `to` does not exist yet. Where the store cannot make a
    /// copy conditional (plain S3), the copy is made when `to` is absent and reported as
    /// [`Copied::Unguarded`], so the caller verifies what landed.
    pub async fn copy_if_absent(&self, from: &Path, to: &Path) -> Result<Copied, LakeError> {
        match self.store.copy_if_not_exists(from, to).await {
            Ok(()) => return Ok(Copied::Created),
            Err(object_store::Error::AlreadyExists { .. }) => return Ok(Copied::Existed),
            Err(object_store::Error::NotImplemented { .. })
            | Err(object_store::Error::NotSupported { .. }) => {}
            Err(e) => return Err(LakeError::from_store("copy", from, e)),
        }
        if self.head(to).await?.is_some() {
            return Ok(Copied::Existed);
        }
        self.copy(from, to).await?;
        Ok(Copied::Unguarded)
    }

    /// The hex SHA-256 of an object, streamed (an absent object hashes as empty).
    pub async fn sha256_of(&self, path: &Path) -> Result<String, LakeError> {
        use futures::StreamExt;
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        let mut stream = match self.store.get(path).await {
            Ok(r) => r.into_stream(),
            Err(object_store::Error::NotFound { .. }) => return Ok(hex::encode(hasher.finalize())),
            Err(e) => return Err(LakeError::from_store("get", path, e)),
        };
        while let Some(chunk) = stream.next().await {
            hasher.update(chunk.map_err(|e| LakeError::from_store("get", path, e))?);
        }
        Ok(hex::encode(hasher.finalize()))
    }

    /// True for a lake in a local folder (where writers are serialised by OS file locks).
    pub fn is_local(&self) -> bool {
        self.root_url.scheme() == "file"
    }

    /// The local file behind `path`, for a lake in a local folder (`None` for other lakes).
    pub fn local_file(&self, path: &Path) -> Option<std::path::PathBuf> {
        if !self.is_local() {
            return None;
        }
        let root = self.root_url.to_file_path().ok()?;
        Some(path.parts().fold(root, |p, part| p.join(part.as_ref())))
    }

    /// Opens an object to read as a local file, with the hex SHA-256 of the bytes that file
    /// holds, so a reader can prove they are the bytes a manifest records. On a local lake
    /// this is the lake's own file, read in place: gplake replaces objects by rename, never
    /// in place, so the open file keeps the bytes that were hashed, and `known` (what an
    /// earlier open returned) stands for them while the file's stamp is unchanged. Elsewhere
    /// the object is streamed into a copy at `copy_to` and hashed.
    pub async fn open_hashed(
        &self,
        path: &Path,
        copy_to: &std::path::Path,
        known: Option<&Hashed>,
    ) -> Result<(std::fs::File, Hashed), LakeError> {
        let (local, known, copied) = match self.local_file(path) {
            Some(file) => (file, known.cloned(), false),
            None => {
                self.download_to(path, copy_to).await?;
                (copy_to.to_path_buf(), None, true)
            }
        };
        let opened = local.clone();
        tokio::task::spawn_blocking(move || hashed::open_and_hash(&opened, known.as_ref()))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r)
            .map(|(file, mut hashed)| {
                if copied {
                    // A temporary copy's stamp says nothing about the object.
                    hashed.stamp = None;
                }
                (file, hashed)
            })
            .map_err(|source| LakeError::LocalIo {
                file: local.display().to_string(),
                source,
            })
    }

    /// Streams an object to a local file.
    async fn download_to(&self, path: &Path, local: &std::path::Path) -> Result<(), LakeError> {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let local_err = |source| LakeError::LocalIo {
            file: local.display().to_string(),
            source,
        };
        let result = self
            .store
            .get(path)
            .await
            .map_err(|e| LakeError::from_store("get", path, e))?;
        let file = tokio::fs::File::create(local).await.map_err(local_err)?;
        // Each write of a tokio file is a trip to a blocking thread: write in large pieces.
        let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| LakeError::from_store("get", path, e))?;
            file.write_all(&chunk).await.map_err(local_err)?;
        }
        file.flush().await.map_err(local_err)
    }

    /// `path` on the unprefixed store.
    fn root_path(&self, path: &Path) -> Path {
        let prefix = self.root_url.path().trim_matches('/');
        match prefix {
            "" => path.clone(),
            prefix => Path::from(format!("{prefix}/{path}")),
        }
    }

    /// Moves an object within the lake: an atomic rename on a local folder, a server-side
    /// copy and delete on S3 (readers see the target whole or not at all).
    pub async fn rename(&self, from: &Path, to: &Path) -> Result<(), LakeError> {
        self.store
            .rename(from, to)
            .await
            .map_err(|e| LakeError::from_store("rename", from, e))
    }

    /// Copies an object within the lake (server-side on S3).
    pub async fn copy(&self, from: &Path, to: &Path) -> Result<(), LakeError> {
        self.store
            .copy(from, to)
            .await
            .map_err(|e| LakeError::from_store("copy", from, e))
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub async fn delete(&self, path: &Path) -> Result<(), LakeError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(LakeError::from_store("delete", path, e)),
        }
    }

    /// The names of the folders directly under `prefix`.
    pub async fn folders(&self, prefix: &Path) -> Result<Vec<String>, LakeError> {
        let listed = self
            .store
            .list_with_delimiter(Some(prefix))
            .await
            .map_err(|e| LakeError::from_store("list", prefix, e))?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    /// Every object under `prefix`, in no particular order.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>, LakeError> {
        self.store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| LakeError::from_store("list", prefix, e))
    }
}

/// A store error in one line: the S3 error code and message when the body has them.
fn brief(err: &object_store::Error) -> String {
    let text = err.to_string();
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find("</")? + start;
        Some(text[start..end].to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => {
            let line = text.lines().next().unwrap_or_default();
            line.chars().take(300).collect()
        }
    }
}

fn open_local(path: &str) -> Result<Opened, String> {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create folder: {e}"))?;
    let absolute = std::fs::canonicalize(path).map_err(|e| e.to_string())?;
    let url =
        url::Url::from_directory_path(&absolute).map_err(|_| "not an absolute path".to_string())?;
    Ok(Opened {
        root: Arc::new(LocalFileSystem::new()),
        endpoint: url.to_string(),
        root_url: url,
        multipart: None,
    })
}

/// `bucket/prefix` from the standard AWS environment (credentials chain, region, endpoint).
/// An Azure lake: the container and account from the URL, credentials and endpoint from the
/// `AZURE_*` environment and `options` (commits are conditional PUTs, which Azure honours).
fn open_azure<I, K, V>(location: &str, options: I) -> Result<Opened, object_store::Error>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: Into<String>,
{
    let generic = |e: url::ParseError| object_store::Error::Generic {
        store: "MicrosoftAzure",
        source: Box::new(e),
    };
    let mut url = url::Url::parse(location).map_err(generic)?;
    let mut builder = MicrosoftAzureBuilder::from_env().with_url(location);
    for (key, value) in options {
        let key = key.as_ref().parse().map_err(|e: object_store::Error| e)?;
        builder = builder.with_config(key, value);
    }
    let container = match url.username() {
        "" => url.host_str().unwrap_or_default().to_string(),
        user => user.to_string(),
    };
    let endpoint = builder
        .get_config_value(&AzureConfigKey::Endpoint)
        .or_else(|| {
            url.host_str()
                .filter(|h| h.contains('.'))
                .map(str::to_string)
        })
        .or_else(|| {
            let account = builder.get_config_value(&AzureConfigKey::AccountName)?;
            Some(format!("https://{account}.blob.core.windows.net"))
        })
        .unwrap_or_else(|| "Azure".into());
    let store = Arc::new(builder.build()?);
    let prefix = url.path().trim_matches('/').to_string();
    url.set_path(&prefix);
    Ok(Opened {
        root: store.clone(),
        root_url: url,
        multipart: Some(store),
        endpoint: format!("{endpoint} (container {container})"),
    })
}

fn open_s3<I, K, V>(rest: &str, options: I) -> Result<Opened, object_store::Error>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: Into<String>,
{
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let mut builder = AmazonS3Builder::from_env();
    for (key, value) in options {
        let key = key.as_ref().parse().map_err(|e: object_store::Error| e)?;
        builder = builder.with_config(key, value);
    }
    let endpoint = builder
        .get_config_value(&AmazonS3ConfigKey::Endpoint)
        .or_else(|| {
            let region = builder.get_config_value(&AmazonS3ConfigKey::Region)?;
            Some(format!("https://s3.{region}.amazonaws.com"))
        })
        .unwrap_or_else(|| "AWS S3".into());
    let store = Arc::new(builder.with_bucket_name(bucket).build()?);
    let url =
        url::Url::parse(&format!("s3://{bucket}/{}", prefix.trim_matches('/'))).map_err(|e| {
            object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            }
        })?;
    Ok(Opened {
        root: store.clone(),
        root_url: url,
        multipart: Some(store),
        endpoint: format!("{endpoint} (bucket {bucket})"),
    })
}
