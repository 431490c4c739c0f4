//! The user's vocabulary: an aliases file that maps a new column name, `ORG_TYPE` label or
//! age spelling onto one gplake knows, so a renamed header or label is read without a new
//! release of gplake. Kept in the lake (`_meta/aliases.toml`) once added.
//!
//! ```toml
//! [columns]      # a new header name = a header name gplake knows
//! PATIENT_COUNT = "NUMBER_OF_PATIENTS"
//! [org_types]    # a new ORG_TYPE label = a label gplake knows
//! PRACTICE = "GP"
//! [ages]         # a new age spelling = one gplake knows (0 … 94, 95+, ALL, 0_4 … 90_94)
//! "95 AND OVER" = "95+"
//! ```
//!
//! Every target is checked against the built-in registry when the file is read, so a typo
//! is an error naming the entry, never a silently unread column. Each month's build records
//! the entries it used, so changing one rebuilds the months that read it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use super::columns::{Col, canonical_column};
use super::values::{AgeKey, OrgLevel};

/// Where the aliases live in the lake.
pub const LAKE_PATH: &str = "_meta/aliases.toml";

/// A problem with an aliases file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AliasesError {
    /// Not TOML, or not the three known tables of strings.
    #[error(
        "aliases file {file}: {reason} (expected tables [columns], [org_types], [ages] of \"new\" = \"known\" lines)"
    )]
    Syntax {
        /// The file.
        file: String,
        /// The parser's reason.
        reason: String,
    },
    /// The file cannot be read.
    #[error("aliases file {file}: {source}")]
    Unreadable {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An entry maps onto something gplake does not know.
    #[error("aliases file {file}: [{table}] \"{name}\" = \"{target}\": '{target}' is not {what}")]
    UnknownTarget {
        /// The file.
        file: String,
        /// The table.
        table: &'static str,
        /// The new name.
        name: String,
        /// The target given.
        target: String,
        /// What the target should be.
        what: &'static str,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasesFile {
    #[serde(default)]
    columns: BTreeMap<String, String>,
    #[serde(default)]
    org_types: BTreeMap<String, String>,
    #[serde(default)]
    ages: BTreeMap<String, String>,
}

/// The aliases in force, and the entries one month's build used.
#[derive(Debug, Clone, Default)]
pub struct Aliases {
    columns: Arc<BTreeMap<String, (Col, String)>>,
    org_types: Arc<BTreeMap<String, (OrgLevel, String)>>,
    ages: Arc<BTreeMap<String, String>>,
    used: Arc<Mutex<BTreeSet<String>>>,
}

impl Aliases {
    /// Reads and checks an aliases file's text (`file` names it in errors).
    pub fn parse(text: &str, file: &str) -> Result<Aliases, AliasesError> {
        let parsed: AliasesFile = toml::from_str(text).map_err(|e| AliasesError::Syntax {
            file: file.to_string(),
            reason: e.message().to_string(),
        })?;
        let unknown = |table, name: &str, target: &str, what| AliasesError::UnknownTarget {
            file: file.to_string(),
            table,
            name: name.to_string(),
            target: target.to_string(),
            what,
        };
        let mut columns = BTreeMap::new();
        for (name, target) in &parsed.columns {
            let col = super::columns::known_column(target)
                .ok_or_else(|| unknown("columns", name, target, "a column gplake knows"))?;
            columns.insert(key(name), (col, format!("columns.{name}={target}")));
        }
        let mut org_types = BTreeMap::new();
        for (name, target) in &parsed.org_types {
            let level = OrgLevel::parse(target)
                .ok_or_else(|| unknown("org_types", name, target, "an ORG_TYPE gplake knows"))?;
            org_types.insert(key(name), (level, format!("org_types.{name}={target}")));
        }
        let mut ages = BTreeMap::new();
        for (name, target) in &parsed.ages {
            if AgeKey::parse_year(target).is_none() && AgeKey::parse_band(target).is_none() {
                return Err(unknown("ages", name, target, "an age or band gplake knows"));
            }
            ages.insert(key(name), target.clone());
        }
        Ok(Aliases {
            columns: Arc::new(columns),
            org_types: Arc::new(org_types),
            ages: Arc::new(ages),
            used: Arc::default(),
        })
    }

    /// The same aliases with an empty record of use (one per month built).
    pub fn fresh(&self) -> Aliases {
        Aliases {
            used: Arc::default(),
            ..self.clone()
        }
    }

    /// Every entry in force, as `table.name=target`.
    pub fn entries(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.columns.values().map(|c| c.1.clone()).collect();
        out.extend(self.org_types.values().map(|o| o.1.clone()));
        out.extend(self.ages.iter().map(|(k, v)| format!("ages.{k}={v}")));
        out
    }

    /// The entries used since [`Aliases::fresh`].
    pub fn used(&self) -> Vec<String> {
        self.used
            .lock()
            .map(|u| u.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn note(&self, entry: &str) {
        if let Ok(mut used) = self.used.lock() {
            used.insert(entry.to_string());
        }
    }

    /// The canonical column a header name is aliased to.
    pub(crate) fn column(&self, name: &str) -> Option<Col> {
        let (col, entry) = self.columns.get(&key(name))?;
        self.note(entry);
        Some(*col)
    }

    /// An `ORG_TYPE` label: built in, else aliased.
    pub(crate) fn org_level(&self, label: &str) -> Option<OrgLevel> {
        OrgLevel::parse(label).or_else(|| {
            let (level, entry) = self.org_types.get(&key(label))?;
            self.note(entry);
            Some(*level)
        })
    }

    /// A single-year age: built in, else aliased.
    pub(crate) fn year(&self, text: &str) -> Option<AgeKey> {
        AgeKey::parse_year(text).or_else(|| AgeKey::parse_year(self.age(text)?))
    }

    /// A 5-year band: built in, else aliased.
    pub(crate) fn band(&self, text: &str) -> Option<AgeKey> {
        AgeKey::parse_band(text).or_else(|| AgeKey::parse_band(self.age(text)?))
    }

    fn age(&self, text: &str) -> Option<&str> {
        let (name, target) = self.ages.get_key_value(&key(text))?;
        self.note(&format!("ages.{name}={target}"));
        Some(target)
    }
}

/// Names are matched trimmed and case-blind, as the built-in registry matches them.
fn key(name: &str) -> String {
    name.trim().to_ascii_uppercase()
}

/// The line to add to an aliases file so that `column` is read as `col`.
pub(crate) fn column_line(column: &str, col: Col) -> String {
    format!("[columns] \"{column}\" = \"{}\"", canonical_column(col))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_map_onto_the_registry_and_are_recorded_when_used() {
        let text = "[columns]\nPATIENT_COUNT = \"NUMBER_OF_PATIENTS\"\n[org_types]\nPRACTICE = \"GP\"\n[ages]\n\"95 and over\" = \"95+\"\n";
        let aliases = Aliases::parse(text, "a.toml").unwrap().fresh();
        assert_eq!(aliases.column("patient_count"), Some(Col::Count));
        assert_eq!(aliases.org_level("Practice"), Some(OrgLevel::Practice));
        assert_eq!(aliases.org_level("GP"), Some(OrgLevel::Practice));
        assert_eq!(aliases.year("95 AND OVER"), Some(AgeKey::Year(95)));
        assert_eq!(aliases.year("96"), None);
        assert_eq!(
            aliases.used(),
            [
                "ages.95 AND OVER=95+",
                "columns.PATIENT_COUNT=NUMBER_OF_PATIENTS",
                "org_types.PRACTICE=GP"
            ]
        );
        assert!(aliases.fresh().used().is_empty());
    }

    #[test]
    fn a_target_gplake_does_not_know_is_named() {
        let err = Aliases::parse("[columns]\nX = \"NUMBER_OF_PEOPLE\"\n", "a.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "aliases file a.toml: [columns] \"X\" = \"NUMBER_OF_PEOPLE\": 'NUMBER_OF_PEOPLE' is not a column gplake knows"
        );
        let err = Aliases::parse("[colums]\nX = \"Y\"\n", "a.toml").unwrap_err();
        assert!(err.to_string().contains("aliases file a.toml:"), "{err}");
    }
}
