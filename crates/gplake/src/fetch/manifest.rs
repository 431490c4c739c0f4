//! The bronze manifest: one JSON document per month naming every file, its bytes and history.
//!
//! Invariant: every path a manifest names holds exactly the bytes (size, SHA-256) it records.
//! The commit protocol in `commit.rs` keeps that true at every instant, even mid-revision.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use object_store::UpdateVersion;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::formats::FileKind;
use crate::lake::{Lake, LakeError, Written};
use crate::month::Month;

/// The manifest's file name in each month folder.
pub const MANIFEST_NAME: &str = "_manifest.json";
/// The folder, in each month folder, that keeps replaced bytes.
pub const REVISIONS_DIR: &str = "_revisions";
const FORMAT_VERSION: u32 = 1;

/// A month's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version of this document.
    pub format: u32,
    /// The snapshot month.
    pub month: Month,
    /// The month page the files were found on (or the folder, for hand-downloaded files).
    pub page_url: String,
    /// The page's latest "Published" date.
    pub published: Option<NaiveDate>,
    /// When this manifest was last written.
    pub updated_at: DateTime<Utc>,
    /// Every file of the month.
    pub files: Vec<ManifestFile>,
}

/// One file of a month, with its current bytes and the ones it replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// The name in bronze.
    pub name: String,
    /// The name as published.
    pub original_name: String,
    /// What the name says about the file.
    #[serde(flatten)]
    pub kind: FileKind,
    /// The link's text on the month page (it may name the data source of a set).
    #[serde(default)]
    pub link_text: String,
    /// The current bytes.
    pub current: FileRevision,
    /// Earlier bytes, oldest first, each kept under `_revisions/`.
    pub revisions: Vec<FileRevision>,
    /// When its month page (read cleanly, still linking other files) stopped linking it:
    /// kept in bronze, not used by builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<DateTime<Utc>>,
}

/// One version of a file's bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRevision {
    /// Revision number, 1 for the first bytes seen.
    pub revision: u32,
    /// Where the bytes are, relative to the month folder.
    pub path: String,
    /// Where they came from.
    pub source_url: String,
    /// The month page linking them.
    pub page_url: String,
    /// The page's "Published" date when fetched.
    pub published: Option<NaiveDate>,
    /// The server's ETag.
    pub etag: Option<String>,
    /// The server's Last-Modified.
    pub last_modified: Option<String>,
    /// Byte count.
    pub size: u64,
    /// Hex SHA-256.
    pub sha256: String,
    /// When they were fetched.
    pub fetched_at: DateTime<Utc>,
    /// When newer bytes replaced them (`None` for the current revision).
    pub replaced_at: Option<DateTime<Utc>>,
}

impl Manifest {
    /// An empty manifest for `month`.
    pub fn new(month: Month, page_url: &str, at: DateTime<Utc>) -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            month,
            page_url: page_url.to_string(),
            published: None,
            updated_at: at,
            files: Vec::new(),
        }
    }

    /// The entry named `name`.
    pub fn file(&self, name: &str) -> Option<&ManifestFile> {
        self.files.iter().find(|f| f.name == name)
    }

    /// The entry named `name`, to change it.
    pub fn file_mut(&mut self, name: &str) -> Option<&mut ManifestFile> {
        self.files.iter_mut().find(|f| f.name == name)
    }

    /// Path of the manifest of `month`.
    pub fn path(month: Month) -> Path {
        Lake::bronze_month_dir(month).join(MANIFEST_NAME)
    }

    /// Reads the manifest of `month`; `None` when the month has none yet.
    pub async fn read(lake: &Lake, month: Month) -> Result<Option<Manifest>, ManifestError> {
        let path = Manifest::path(month);
        let Some(bytes) = lake.get_bytes(&path).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| ManifestError::Corrupt {
                path: path.to_string(),
                source,
            })
    }

    /// Reads the manifest of `month` with the version a conditional write needs.
    pub(crate) async fn read_versioned(
        lake: &Lake,
        month: Month,
    ) -> Result<Option<(Manifest, UpdateVersion)>, ManifestError> {
        let path = Manifest::path(month);
        let Some((bytes, version)) = lake.get_versioned(&path).await? else {
            return Ok(None);
        };
        let manifest = serde_json::from_slice(&bytes).map_err(|source| ManifestError::Corrupt {
            path: path.to_string(),
            source,
        })?;
        Ok(Some((manifest, version)))
    }

    /// Writes the manifest only if it is still at `expected` (absent, for `None`): its new
    /// version, or `None` when another writer changed it first.
    pub(crate) async fn write_versioned(
        &self,
        lake: &Lake,
        expected: Option<&UpdateVersion>,
    ) -> Result<Option<UpdateVersion>, ManifestError> {
        let json = serde_json::to_vec_pretty(self).expect("manifests always serialise");
        match lake
            .put_versioned(&Manifest::path(self.month), Bytes::from(json), expected)
            .await?
        {
            Written::Done(v) => Ok(Some(v)),
            Written::Conflict => Ok(None),
        }
    }

    /// Writes the manifest in one atomic PUT.
    pub async fn write(&self, lake: &Lake) -> Result<(), ManifestError> {
        let json = serde_json::to_vec_pretty(self).expect("manifests always serialise");
        lake.put_bytes(&Manifest::path(self.month), Bytes::from(json))
            .await
            .map_err(ManifestError::from)
    }
}

/// A manifest that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The store failed.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// The JSON is not a manifest.
    #[error(
        "manifest {path} is corrupt ({source}); restore it from the store's versioning or delete it and run `gplake fetch` again"
    )]
    Corrupt {
        /// The manifest's path.
        path: String,
        /// The parse error.
        source: serde_json::Error,
    },
}
