//! Refusing a store that ignores conditional writes, once, before gplake writes to it.
//!
//! Delta commits are create-only PUTs (`If-None-Match: *`) and month leases and manifests are
//! replaced only at the version last read (`If-Match`). Some S3-compatible stores accept
//! those headers and ignore them: two writers would then both "win", and a commit would be
//! lost without a word. The probe makes sure one small object exists (written the first time
//! only), then asks for both kinds of conditional write that must fail on it; a store that
//! lets either through is refused.

use bytes::Bytes;
use object_store::path::Path;
use object_store::{PutMode, UpdateVersion};

use super::{Lake, LakeError};

/// The probe's object, beside the lake's data.
pub const PROBE_PATH: &str = "_gplake/conditional-write-probe";

impl Lake {
    /// Checks (once per opened lake) that the store honours conditional writes. A local
    /// folder is serialised by OS locks instead, and the in-memory store honours them.
    pub async fn ensure_conditional_writes(&self) -> Result<(), LakeError> {
        if self.multipart.is_none() || self.root_url.scheme() == "memory" {
            return Ok(());
        }
        self.probed
            .get_or_try_init(|| self.probe())
            .await
            .map(|_| ())
    }

    async fn probe(&self) -> Result<(), LakeError> {
        let path = Path::from(PROBE_PATH);
        // Written once per lake: later probes only make the writes that must fail.
        self.put_if_absent(&path, Bytes::from_static(b"probe"))
            .await?;
        let stale = UpdateVersion {
            e_tag: Some("\"gplake-probe-stale-etag\"".into()),
            version: None,
        };
        for (mode, header) in [
            (PutMode::Create, "If-None-Match"),
            (PutMode::Update(stale), "If-Match"),
        ] {
            let attempt = self
                .store
                .put_opts(&path, Bytes::from_static(b"lost").into(), mode.into())
                .await;
            match attempt {
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => {}
                Ok(_)
                | Err(object_store::Error::NotImplemented { .. })
                | Err(object_store::Error::NotSupported { .. }) => {
                    return Err(LakeError::Unconditional {
                        endpoint: self.endpoint.clone(),
                        header,
                    });
                }
                Err(e) => return Err(LakeError::from_store("conditional put probe", &path, e)),
            }
        }
        tracing::debug!(endpoint = %self.endpoint, "the store honours conditional writes");
        Ok(())
    }
}
