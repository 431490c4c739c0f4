//! Uploads of local files into the lake, each completed atomically, and the aborting of
//! uploads that a killed run left open.
//!
//! On stores with multipart uploads by id (S3, memory), the id is recorded in
//! `_uploads/<owner tag>.json` as soon as the store issues it, and the record is removed
//! when the upload completes or is aborted. [`Lake::abort_abandoned_uploads`] aborts, by id,
//! the uploads of processes known to be gone on this host, or older than a day. S3 issues an
//! id only by starting the upload, so a kill in between leaves an upload with no data: the
//! bucket's lifecycle rule (README) ends those.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::{Lake, LakeError, PART_SIZE};
use crate::owner::Owner;

/// Where open uploads are recorded.
pub const UPLOADS_DIR: &str = "_uploads";

/// An upload older than this is abandoned whoever started it (no gplake upload runs a day).
const ABANDONED_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// An open multipart upload.
#[derive(Debug, Serialize, Deserialize)]
struct UploadRecord {
    /// The object's path on the unprefixed store.
    path: String,
    upload_id: String,
    owner: Owner,
    started_at: DateTime<Utc>,
}

impl Lake {
    /// Streams a local file into the lake as one object (multipart, completed atomically).
    pub async fn upload_file(&self, path: &Path, local: &std::path::Path) -> Result<(), LakeError> {
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(local_err(local))?;
        match self.multipart.clone() {
            Some(store) => {
                self.upload_recorded(store.as_ref(), path, local, &mut file)
                    .await
            }
            None => self.upload_streamed(path, local, &mut file).await,
        }
    }

    /// Aborts the uploads recorded by processes gone from this host, or started over a day
    /// ago, and removes their records: how many were aborted.
    pub async fn abort_abandoned_uploads(&self) -> Result<usize, LakeError> {
        let Some(store) = self.multipart.clone() else {
            return Ok(0);
        };
        let mut aborted = 0;
        for meta in self.list(&Path::from(UPLOADS_DIR)).await? {
            let Some(bytes) = self.get_bytes(&meta.location).await? else {
                continue;
            };
            let Ok(record) = serde_json::from_slice::<UploadRecord>(&bytes) else {
                tracing::warn!(record = %meta.location, "unreadable upload record: removed");
                self.delete(&meta.location).await?;
                continue;
            };
            if !record.owner.dead_here() && Utc::now() - record.started_at < ABANDONED_AFTER {
                continue;
            }
            let target = Path::from(record.path.as_str());
            match store.abort_multipart(&target, &record.upload_id).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(LakeError::from_store("abort upload", &target, e)),
            }
            tracing::info!(object = %target, pid = record.owner.pid, "aborted an upload a stopped run left open");
            self.delete(&meta.location).await?;
            aborted += 1;
        }
        Ok(aborted)
    }

    async fn upload_recorded(
        &self,
        store: &dyn MultipartStore,
        path: &Path,
        local: &std::path::Path,
        file: &mut tokio::fs::File,
    ) -> Result<(), LakeError> {
        let target = self.root_path(path);
        let store_err = |e| LakeError::from_store("upload", path, e);
        let upload_id = store.create_multipart(&target).await.map_err(store_err)?;
        let record = match self.record_upload(&target, &upload_id).await {
            Ok(record) => record,
            Err(e) => {
                let _ = store.abort_multipart(&target, &upload_id).await;
                return Err(e);
            }
        };
        let sent = send_parts(store, &target, &upload_id, local, file).await;
        let finished = match sent {
            Ok(parts) => store
                .complete_multipart(&target, &upload_id, parts)
                .await
                .map(|_| ())
                .map_err(store_err),
            Err(e) => {
                let _ = store.abort_multipart(&target, &upload_id).await;
                Err(e)
            }
        };
        finished?;
        self.delete(&record).await
    }

    /// Writes the record of an open upload; its path.
    async fn record_upload(&self, target: &Path, upload_id: &str) -> Result<Path, LakeError> {
        let owner = Owner::me();
        let record = UploadRecord {
            path: target.to_string(),
            upload_id: upload_id.to_string(),
            started_at: Utc::now(),
            owner: owner.clone(),
        };
        let at = Path::from(format!("{UPLOADS_DIR}/{}.json", owner.tag()));
        let body = serde_json::to_vec(&record).expect("serialisable");
        self.put_bytes(&at, Bytes::from(body)).await?;
        Ok(at)
    }

    /// A local folder's own multipart upload (a temporary file renamed into place).
    async fn upload_streamed(
        &self,
        path: &Path,
        local: &std::path::Path,
        file: &mut tokio::fs::File,
    ) -> Result<(), LakeError> {
        let upload = self
            .store
            .put_multipart(path)
            .await
            .map_err(|e| LakeError::from_store("upload", path, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(local_err(local)(e));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(2).await {
                let _ = writer.abort().await;
                return Err(LakeError::from_store("upload", path, e));
            }
            writer.write(&buf[..n]);
        }
        writer
            .finish()
            .await
            .map(|_| ())
            .map_err(|e| LakeError::from_store("upload", path, e))
    }
}

/// Sends the file in parts of [`PART_SIZE`] (at least one part, so an empty file uploads).
async fn send_parts(
    store: &dyn MultipartStore,
    target: &Path,
    upload_id: &str,
    local: &std::path::Path,
    file: &mut tokio::fs::File,
) -> Result<Vec<PartId>, LakeError> {
    let mut parts = Vec::new();
    loop {
        let chunk = read_part(file).await.map_err(local_err(local))?;
        if chunk.is_empty() && !parts.is_empty() {
            return Ok(parts);
        }
        let last = chunk.len() < PART_SIZE;
        let payload = PutPayload::from(chunk);
        let part = store
            .put_part(target, &upload_id.to_string(), parts.len(), payload)
            .await
            .map_err(|e| LakeError::from_store("upload", target, e))?;
        parts.push(part);
        crate::failpoint::point("upload-part");
        if last {
            return Ok(parts);
        }
    }
}

/// Up to one part's bytes (fewer only at the end of the file).
async fn read_part(file: &mut tokio::fs::File) -> std::io::Result<Vec<u8>> {
    let mut chunk = Vec::with_capacity(PART_SIZE);
    let mut limited = AsyncReadExt::take(&mut *file, PART_SIZE as u64);
    limited.read_to_end(&mut chunk).await?;
    Ok(chunk)
}

fn local_err(local: &std::path::Path) -> impl Fn(std::io::Error) -> LakeError + '_ {
    move |source| LakeError::LocalIo {
        file: local.display().to_string(),
        source,
    }
}
