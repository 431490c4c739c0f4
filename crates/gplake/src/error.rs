//! The library's public error: one variant per stage, each carrying the stage's detailed
//! error (with its month, file, URL or path), plus [`ErrorKind`] for callers that branch
//! (the CLI maps kinds to exit codes in one `match`).

use crate::build::BuildError;
use crate::ddl::DdlError;
use crate::discover::DiscoverError;
use crate::fetch::FetchError;
use crate::lake::LakeError;
use crate::plot::PlotError;
use crate::query::QueryError;

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
    /// Building silver or the derived tables failed (storage or Delta; file problems are
    /// quality results).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A query failed or was refused.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Registration statements could not be made.
    #[error(transparent)]
    Ddl(#[from] DdlError),
    /// The lake was written by a newer gplake.
    #[error(transparent)]
    Layout(#[from] crate::layout::LayoutError),
    /// A chart could not be drawn.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// Delta maintenance failed.
    #[error(transparent)]
    Vacuum(#[from] crate::vacuum::VacuumError),
    /// The HTTP client could not be set up (a certificate file).
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
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
    /// The request is not allowed or not valid (a writing query, wrong SQL, unknown name).
    Refused,
    /// The caller cancelled the run.
    Cancelled,
    /// Something unexpected inside gplake.
    Internal,
}

impl Error {
    /// The kind of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Lake(
                crate::lake::LakeError::Config { .. } | crate::lake::LakeError::Missing { .. },
            ) => ErrorKind::Refused,
            Error::Lake(_) => ErrorKind::Storage,
            Error::Discover(e) => discover_kind(e),
            Error::Fetch(e) => fetch_kind(e),
            Error::Build(BuildError::Worker { .. }) => ErrorKind::Internal,
            Error::Build(BuildError::NewerLayout { .. }) => ErrorKind::Refused,
            Error::Build(BuildError::Cancelled) => ErrorKind::Cancelled,
            Error::Build(BuildError::Aliases(_)) => ErrorKind::BadInput,
            Error::Build(_) => ErrorKind::Storage,
            Error::Query(e) => query_kind(e),
            Error::Ddl(_) => ErrorKind::Refused,
            Error::Layout(crate::layout::LayoutError::Lake(_)) => ErrorKind::Storage,
            Error::Layout(_) => ErrorKind::Refused,
            Error::Plot(PlotError::Query(e)) => query_kind(e),
            Error::Plot(PlotError::NotFound { .. }) => ErrorKind::Refused,
            Error::Plot(_) => ErrorKind::BadInput,
            Error::Vacuum(crate::vacuum::VacuumError::RetentionTooShort { .. }) => {
                ErrorKind::Refused
            }
            Error::Vacuum(crate::vacuum::VacuumError::Lake(crate::lake::LakeError::Config {
                ..
            })) => ErrorKind::Refused,
            Error::Vacuum(_) => ErrorKind::Storage,
            Error::Http(crate::http::HttpError::BadCertificate { .. }) => ErrorKind::BadInput,
            Error::Http(_) => ErrorKind::Http,
        }
    }
}

fn discover_kind(e: &DiscoverError) -> ErrorKind {
    match e {
        DiscoverError::SourceUnreachable { .. } => ErrorKind::SourceUnreachable,
        DiscoverError::Local(_) => ErrorKind::BadInput,
        _ => ErrorKind::Http,
    }
}

fn fetch_kind(e: &FetchError) -> ErrorKind {
    match e {
        FetchError::Http { .. } => ErrorKind::Http,
        FetchError::LocalIo { .. } => ErrorKind::BadInput,
        FetchError::Lock(
            crate::fetch::LockError::Busy { .. } | crate::fetch::LockError::Lost { .. },
        ) => ErrorKind::Busy,
        _ => ErrorKind::Storage,
    }
}

fn query_kind(e: &QueryError) -> ErrorKind {
    match e {
        QueryError::Delta(_) => ErrorKind::Storage,
        QueryError::Layout(crate::layout::LayoutError::Lake(_)) => ErrorKind::Storage,
        QueryError::Output { .. } | QueryError::Extra { .. } => ErrorKind::BadInput,
        QueryError::TimedOut { .. } | QueryError::OutOfMemory { .. } => ErrorKind::Internal,
        _ => ErrorKind::Refused,
    }
}
