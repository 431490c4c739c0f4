//! What is known of the publisher's files: families, naming eras, EXTRACT_DATE spellings.
//!
//! One file per concern; a new era or family is a new entry here, little editing elsewhere.

pub mod extract_date;
pub mod family;
pub mod sniff;

pub use extract_date::parse_extract_date;
pub use family::{Container, Family, FileKind, NamingEra, classify, is_data_file, month_from_name};
