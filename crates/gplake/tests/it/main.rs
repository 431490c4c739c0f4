//! gplake's integration tests: one binary, a module per topic.

mod faults;
mod gold;
mod golden;
mod lake_conformance;
mod reader;
mod silver;
mod source_dir;
mod support;
mod sync_mirror;
