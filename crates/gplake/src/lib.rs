//! gplake: NHS England's monthly "Patients Registered at a GP Practice" in a data lake.
//!
//! # Words, used one way everywhere
//! - **release**: what NHS Digital publishes for one month: a page and its files.
//! - **snapshot** / **month**: the first day of the month the counts describe ([`Month`]).
//! - **family**: what a file holds (practice totals, map, quinary, single-age…);
//!   **era**: how the publisher named and shaped files at the time ([`formats`]).
//! - **bronze**: the raw files, byte for byte, with a **manifest** per month recording each
//!   file's source, size, SHA-256 and **revisions** (earlier bytes of the same name).
//! - **silver**: the clean Delta Lake tables built from bronze (later stage).
//!
//! # Layout
//! - [`month`]: the month key.
//! - [`lake`]: storage from a URL (local folder, S3, memory) and the bronze paths.
//! - [`http`]: retries, backoff, Retry-After, streaming hashed downloads, the host allow-list.
//! - [`formats`]: file families, naming eras, EXTRACT_DATE spellings.
//! - [`discover`]: releases upstream (series page, month pages) or in a hand-downloaded folder.
//! - [`fetch`]: bronze writes: manifests, revisions, month locks.
//! - [`silver`]: bronze to Delta tables, month by month, behind the quality gate ([`check`]).
//! - [`gold`]: analyst tables rebuilt from silver; [`query`]: SQL over every table.
//! - [`ddl`]: statements registering the tables in Athena, Spark or DuckDB.
//! - [`plot`]: trend and age–sex pyramid charts, SVG or PNG.
//! - [`status`]: what the lake holds.
//! - [`sync`]: the main job.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), gplake::Error> {
//! use gplake::{Lake, Source, SyncOptions, SystemClock, fetch::FetchContext, http::Http};
//! let lake = Lake::open("./lake")?;
//! let source = Source::parse("examples/releases");
//! let http = Http::new(Default::default(), source.host());
//! let ctx = FetchContext { lake: &lake, http: &http, clock: &SystemClock, progress: None };
//! let options = SyncOptions { source, from: None, to: None, fetch: Default::default(), build: true };
//! let report = gplake::sync::sync(&ctx, &options).await?;
//! println!("{}", report.summary());
//! # Ok(()) }
//! ```

pub mod check;
pub mod clock;
pub mod ddl;
pub mod discover;
mod error;
pub mod fetch;
pub mod formats;
pub mod gold;
pub mod http;
pub mod lake;
pub mod month;
pub mod plot;
pub mod query;
pub mod silver;
pub mod status;
pub mod sync;

pub use clock::{Clock, FixedClock, SystemClock};
pub use discover::Source;
pub use error::{Error, ErrorKind};
pub use lake::Lake;
pub use month::Month;
pub use sync::{SyncOptions, SyncReport};
