//! The evidence a month's checks run on: sums per practice, sex and organisation, gathered
//! by silver while the rows stream past. Plain data: the rules in this module read it and
//! never reach back into how it was gathered.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::formats::values::{band_label, year_label};
use crate::formats::{AgeKey, CountRow, Family, FileStats, OrgLevel, PracticeAttrs, SexKey};

/// Sums per practice and organisation, gathered while building, for the checks.
#[derive(Debug, Default)]
pub(crate) struct Aggregates {
    /// Practice attributes from the map (empty when the release has none).
    pub(crate) map: HashMap<String, PracticeAttrs>,
    pub(crate) has_map: bool,
    /// Practice totals file: code → (count, line).
    pub(crate) totals: HashMap<String, (u64, u64)>,
    pub(crate) has_totals: bool,
    pub(crate) quinary: AgeAgg,
    pub(crate) single: AgeAgg,
    /// Published ALL/ALL rows of organisations: (file, level, code) → count.
    pub(crate) orgs: BTreeMap<(String, OrgLevel, String), u64>,
    /// Sub-ICB of each practice as the practice files give it (when there is no map).
    pub(crate) row_sub_icb: HashMap<String, String>,
    /// LSOA sums per practice × sex, and the ALL rows.
    /// LSOA sums per practice × sex × vintage.
    pub(crate) lsoa_leaf: HashMap<(String, SexKey, u16), u64>,
    pub(crate) lsoa_dups: Vec<(String, String, u64)>,
    pub(crate) file_stats: Vec<(String, Family, FileStats)>,
    pub(crate) missing: Vec<&'static str>,
}

/// Sums of one age file family (quinary or single-age).
#[derive(Debug, Default)]
pub(crate) struct AgeAgg {
    pub(crate) present: bool,
    pub(crate) file: String,
    /// Σ leaf counts per practice × sex.
    pub(crate) leaf: HashMap<(String, SexKey), u64>,
    /// Published ALL rows per practice × sex (sex ALL = persons).
    pub(crate) all_rows: HashMap<(String, SexKey), u64>,
    keys: HashSet<(String, SexKey, AgeKey)>,
    /// Repeated keys: (file, practice, sex, age label, line).
    pub(crate) duplicates: Vec<(String, String, SexKey, String, u64)>,
}

impl AgeAgg {
    pub(crate) fn add(&mut self, row: &CountRow, file: &str) {
        if row.level != OrgLevel::Practice {
            return;
        }
        let key = (row.code.clone(), row.sex, row.age);
        if !self.keys.insert(key) {
            let age = match row.age {
                AgeKey::Year(a) => year_label(a),
                AgeKey::Band(b) => band_label(b),
                AgeKey::All => "ALL".into(),
            };
            self.duplicates
                .push((file.to_string(), row.code.clone(), row.sex, age, row.line));
            return;
        }
        if row.is_leaf() {
            *self.leaf.entry((row.code.clone(), row.sex)).or_default() += row.count;
        } else if row.age == AgeKey::All {
            self.all_rows.insert((row.code.clone(), row.sex), row.count);
        }
    }

    /// Σ leaf counts of a practice, both sexes.
    pub(crate) fn practice_total(&self, code: &str) -> u64 {
        [SexKey::Male, SexKey::Female]
            .iter()
            .map(|s| self.leaf.get(&(code.to_string(), *s)).copied().unwrap_or(0))
            .sum()
    }

    /// Every practice with leaf rows.
    pub(crate) fn practices(&self) -> Vec<String> {
        let mut codes: Vec<String> = self.leaf.keys().map(|(c, _)| c.clone()).collect();
        codes.sort();
        codes.dedup();
        codes
    }
}
