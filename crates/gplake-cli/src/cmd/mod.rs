//! One file per subcommand: each calls the library and prints its report.

pub(crate) mod discover;
pub(crate) mod fetch;
pub(crate) mod plot;
pub(crate) mod query;
pub(crate) mod silver;
