//! One file per subcommand: each calls the library and prints its report.

pub(crate) mod build;
pub(crate) mod check;
pub(crate) mod ddl;
pub(crate) mod discover;
pub(crate) mod docs;
pub(crate) mod plot;
pub(crate) mod query;
pub(crate) mod status;
pub(crate) mod sync;
pub(crate) mod unlock;
pub(crate) mod vacuum;
