//! The library's public error: one variant per stage, each carrying the stage's detailed
//! error (with its month, file, URL or path), plus [`ErrorKind`] for callers that branch.

use crate::discover::DiscoverError;
use crate::fetch::FetchError;
use crate::lake::LakeError;

/// Any gplake failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening or using the lake failed.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// Discovery failed.
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    /// Fetching into bronze failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Building silver failed (storage or Delta; file problems are quality results).
    #[error(transparent)]
    Build(#[from] crate::silver::BuildError),
}

/// What kind of failure, for exit codes and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The source could not be reached at all.
    SourceUnreachable,
    /// Upstream misbehaved (HTTP status, truncated body, foreign host).
    Http,
    /// The lake refused or failed.
    Storage,
    /// Input files or folders are not what they should be.
    BadInput,
    /// Another gplake holds the month.
    Busy,
}

impl Error {
    /// The kind of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Lake(_) => ErrorKind::Storage,
            Error::Discover(DiscoverError::SourceUnreachable { .. }) => {
                ErrorKind::SourceUnreachable
            }
            Error::Discover(DiscoverError::Local(_)) => ErrorKind::BadInput,
            Error::Discover(_) => ErrorKind::Http,
            Error::Fetch(FetchError::Http { .. }) => ErrorKind::Http,
            Error::Fetch(FetchError::LocalIo { .. }) => ErrorKind::BadInput,
            Error::Fetch(FetchError::Lock(crate::fetch::LockError::Busy { .. })) => ErrorKind::Busy,
            Error::Fetch(_) => ErrorKind::Storage,
            Error::Build(_) => ErrorKind::Storage,
        }
    }
}
