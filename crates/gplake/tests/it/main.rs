//! gplake's integration tests: one binary, a module per topic.

mod build;
mod faults;
mod gold;
mod golden;
mod lake_conformance;
mod layering;
mod leases;
mod net_limits;
mod partial;
mod properties;
mod reader;
mod silver;
mod source_dir;
mod support;
mod sync_mirror;
mod vacuum;
