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

/// Where a failure happened, as far as the error knows: for machine-readable reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ErrorContext {
    /// The month.
    pub month: Option<crate::Month>,
    /// The file (in bronze, on local disk, or an aliases file).
    pub file: Option<String>,
    /// The URL (a page or file upstream, or the lake).
    pub url: Option<String>,
}

impl ErrorKind {
    /// The kind's stable name in machine-readable output (`source_unreachable`, …).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::SourceUnreachable => "source_unreachable",
            ErrorKind::Http => "http",
            ErrorKind::Storage => "storage",
            ErrorKind::BadInput => "bad_input",
            ErrorKind::Busy => "busy",
            ErrorKind::Refused => "refused",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Internal => "internal",
        }
    }
}

impl Error {
    /// The month, file and URL this failure names, where it names them.
    pub fn context(&self) -> ErrorContext {
        match self {
            Error::Lake(e) | Error::Vacuum(crate::vacuum::VacuumError::Lake(e)) => lake_context(e),
            Error::Discover(e) => discover_context(e),
            Error::Fetch(e) => fetch_context(e),
            Error::Build(e) => build_context(e),
            Error::Http(e) => ErrorContext {
                url: e.url().map(str::to_string),
                ..ErrorContext::default()
            },
            _ => ErrorContext::default(),
        }
    }

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
        FetchError::Cancelled { .. } => ErrorKind::Cancelled,
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

fn lake_context(e: &LakeError) -> ErrorContext {
    let (file, url) = match e {
        LakeError::Config { url, .. } | LakeError::Missing { url } => (None, Some(url)),
        LakeError::PermissionDenied { path, .. } | LakeError::Storage { path, .. } => {
            (Some(path), None)
        }
        LakeError::Unconditional { endpoint, .. } => (None, Some(endpoint)),
        LakeError::LocalIo { file, .. } => (Some(file), None),
    };
    ErrorContext {
        month: None,
        file: file.cloned(),
        url: url.cloned(),
    }
}

fn discover_context(e: &DiscoverError) -> ErrorContext {
    match e {
        DiscoverError::SourceUnreachable { url, .. } | DiscoverError::EmptySeriesPage { url } => {
            ErrorContext {
                url: Some(url.clone()),
                ..ErrorContext::default()
            }
        }
        DiscoverError::MonthPage { month, source } => ErrorContext {
            month: Some(*month),
            url: source.url().map(str::to_string),
            file: None,
        },
        DiscoverError::SeriesPage(source) => ErrorContext {
            url: source.url().map(str::to_string),
            ..ErrorContext::default()
        },
        _ => ErrorContext::default(),
    }
}

fn fetch_context(e: &FetchError) -> ErrorContext {
    use crate::fetch::LockError;
    let month_only = |month: &crate::Month| ErrorContext {
        month: Some(*month),
        ..ErrorContext::default()
    };
    match e {
        FetchError::Http {
            month,
            file,
            source,
        } => ErrorContext {
            month: Some(*month),
            file: Some(file.clone()),
            url: source.url().map(str::to_string),
        },
        FetchError::LocalIo { month, file, .. } => ErrorContext {
            month: Some(*month),
            file: Some(file.clone()),
            url: None,
        },
        FetchError::Lake { month, source } => ErrorContext {
            month: Some(*month),
            ..lake_context(source)
        },
        FetchError::Manifest { month, .. }
        | FetchError::Lock(LockError::Busy { month, .. } | LockError::Lost { month, .. }) => {
            month_only(month)
        }
        FetchError::Lock(LockError::LocalIo { month, file, .. }) => ErrorContext {
            month: Some(*month),
            file: Some(file.clone()),
            url: None,
        },
        FetchError::Lock(LockError::Lake(e)) => lake_context(e),
        FetchError::Cancelled { .. } => ErrorContext::default(),
    }
}

fn build_context(e: &BuildError) -> ErrorContext {
    match e {
        BuildError::Lake(e) => lake_context(e),
        BuildError::Manifest { month, .. }
        | BuildError::ManifestMissing { month }
        | BuildError::Worker { month, .. } => ErrorContext {
            month: Some(*month),
            ..ErrorContext::default()
        },
        BuildError::Aliases(
            crate::formats::AliasesError::Syntax { file, .. }
            | crate::formats::AliasesError::Unreadable { file, .. }
            | crate::formats::AliasesError::UnknownTarget { file, .. },
        ) => ErrorContext {
            file: Some(file.clone()),
            ..ErrorContext::default()
        },
        _ => ErrorContext::default(),
    }
}
