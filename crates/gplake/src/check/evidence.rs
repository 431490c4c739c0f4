//! The evidence a month's checks run on: sums per practice, sex and organisation, gathered
//! by silver while the rows stream past. Plain data: the rules in this module read it and
//! never reach back into how it was gathered.

use std::collections::{BTreeMap, HashMap};

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
    /// The organisation rows of the quinary files, keyed `LEVEL code` (e.g. `ICB QHM`).
    pub(crate) org_quinary: AgeAgg,
    /// The organisation single-age file's rows, keyed `LEVEL code`.
    pub(crate) org_single: AgeAgg,
    /// Published ALL/ALL rows of organisations: (file, level, code) → count.
    pub(crate) orgs: BTreeMap<(String, OrgLevel, String), u64>,
    /// Sub-ICB of each practice as the practice files give it (when there is no map).
    pub(crate) row_sub_icb: HashMap<String, String>,
    /// LSOA sums per practice × sex, and the ALL rows.
    /// LSOA sums per practice × sex × vintage.
    pub(crate) lsoa_leaf: HashMap<(String, SexKey, u16), u64>,
    /// LSOA rows repeated: (practice, LSOA, first line, repeated line).
    pub(crate) lsoa_dups: Vec<(String, String, u64, u64)>,
    /// Practices listed twice in the map or the practice totals file: (file, code, first
    /// line, repeated line).
    pub(crate) practice_dups: Vec<(String, String, u64, u64)>,
    pub(crate) file_stats: Vec<(String, Family, FileStats)>,
    pub(crate) missing: Vec<&'static str>,
}

/// Sums of one age file family (quinary or single-age), of its practice rows or (for
/// [`AgeAgg::for_orgs`]) of its organisation rows.
#[derive(Debug, Default)]
pub(crate) struct AgeAgg {
    pub(crate) present: bool,
    /// True when the sums are of organisation rows (keyed `LEVEL code`).
    pub(crate) orgs: bool,
    /// True when the files are the pre-2017 wide ones (their total columns are published).
    pub(crate) wide: bool,
    pub(crate) file: String,
    /// Σ leaf counts per practice × sex.
    pub(crate) leaf: HashMap<(String, SexKey), u64>,
    /// Published ALL rows per practice × sex (sex ALL = persons).
    pub(crate) all_rows: HashMap<(String, SexKey), u64>,
    /// Σ leaf counts per practice × sex × 5-year band (single years summed into bands), for
    /// the single-age = quinary gate. Practice rows only.
    pub(crate) bands: HashMap<(String, SexKey, u8), u64>,
    /// The first band of an open top band (`85+`), when the files use one.
    pub(crate) open_band: Option<u8>,
    /// Masked cells per practice × sex (pre-2017 wide files): their sums cannot be verified.
    pub(crate) suppressed: HashMap<(String, SexKey), u64>,
    /// Each key's line, to name both lines of a repeated key.
    keys: HashMap<(String, SexKey, AgeKey), u64>,
    /// Repeated keys: (file, practice, sex, age label, first line, repeated line).
    pub(crate) duplicates: Vec<(String, String, SexKey, String, u64, u64)>,
}

impl AgeAgg {
    /// Sums of organisation rows.
    pub(crate) fn for_orgs() -> AgeAgg {
        AgeAgg {
            orgs: true,
            ..AgeAgg::default()
        }
    }

    /// What a key names, for messages: `practice` or `organisation`.
    pub(crate) fn noun(&self) -> &'static str {
        if self.orgs {
            "organisation"
        } else {
            "practice"
        }
    }

    pub(crate) fn add(&mut self, row: &CountRow, file: &str) {
        let practice = row.level == OrgLevel::Practice;
        if practice == self.orgs {
            return;
        }
        let code = if self.orgs {
            format!("{} {}", row.level.label(), row.code)
        } else {
            row.code.clone()
        };
        let key = (code, row.sex, row.age);
        if let Some(first) = self.keys.insert(key.clone(), row.line) {
            let age = row.age.label();
            self.duplicates
                .push((file.to_string(), key.0, row.sex, age, first, row.line));
            return;
        }
        let (code, sex, age) = key;
        if row.suppressed {
            *self.suppressed.entry((code, sex)).or_default() += 1;
            return;
        }
        if sex != SexKey::All && age != AgeKey::All {
            if let (AgeKey::OpenBand(_), Some(b)) = (age, age.first_band()) {
                self.open_band = Some(self.open_band.map_or(b, |o| o.min(b)));
            }
            if let (false, Some(band)) = (self.orgs, age.first_band()) {
                *self.bands.entry((code.clone(), sex, band)).or_default() += row.count;
            }
            *self.leaf.entry((code, sex)).or_default() += row.count;
        } else if age == AgeKey::All {
            self.all_rows.insert((code, sex), row.count);
        }
    }

    /// Σ leaf counts of a practice, both sexes.
    pub(crate) fn practice_total(&self, code: &str) -> u64 {
        [SexKey::Male, SexKey::Female]
            .iter()
            .map(|s| self.leaf.get(&(code.to_string(), *s)).copied().unwrap_or(0))
            .sum()
    }

    /// Σ leaf counts of a practice for one sex, when the family was read.
    pub(crate) fn sex_total(&self, code: &str, sex: SexKey) -> Option<u64> {
        self.present.then(|| {
            self.leaf
                .get(&(code.to_string(), sex))
                .copied()
                .unwrap_or(0)
        })
    }

    /// Every practice with leaf rows.
    pub(crate) fn practices(&self) -> Vec<String> {
        let mut codes: Vec<String> = self.leaf.keys().map(|(c, _)| c.clone()).collect();
        codes.sort();
        codes.dedup();
        codes
    }
}

impl Aggregates {
    /// A practice's list size as published, and which file gave it: the practice totals file,
    /// else the wide files' total column, else the sum of its 5-year, else single-year rows.
    pub(crate) fn list_size(&self, code: &str) -> Option<(u64, &'static str)> {
        if let Some((count, _)) = self.totals.get(code) {
            return Some((*count, "practice_totals"));
        }
        let persons = (code.to_string(), SexKey::All);
        for (agg, from) in [(&self.quinary, "quinary"), (&self.single, "single_age")] {
            if agg.wide
                && let Some(count) = agg.all_rows.get(&persons)
            {
                return Some((*count, "wide_total"));
            }
            if agg.present && agg.has_practice(code) {
                return Some((agg.practice_total(code), from));
            }
        }
        None
    }

    /// True when the month has practice-level figures: age files or practice totals.
    pub(crate) fn has_practice_figures(&self) -> bool {
        self.has_totals || self.quinary.present || self.single.present
    }

    /// Every practice with a published figure, sorted.
    pub(crate) fn practices_with_figures(&self) -> Vec<String> {
        let mut codes = self.quinary.practices();
        codes.extend(self.single.practices());
        codes.extend(self.quinary.all_rows.keys().map(|k| k.0.clone()));
        codes.extend(self.totals.keys().cloned());
        codes.sort();
        codes.dedup();
        codes
    }

    /// Σ practice list sizes: the national figure from the practices.
    pub(crate) fn national_from_practices(&self) -> u64 {
        self.practices_with_figures()
            .iter()
            .filter_map(|c| self.list_size(c))
            .map(|s| s.0)
            .sum()
    }

    /// The published national figure: Σ the region ALL rows of one file (the organisation
    /// single-age file when the month has it), and that file.
    pub(crate) fn published_national(&self) -> Option<(u64, String)> {
        let mut by_file: BTreeMap<&str, u64> = BTreeMap::new();
        for ((file, level, _), count) in &self.orgs {
            if *level == OrgLevel::Region {
                *by_file.entry(file.as_str()).or_default() += count;
            }
        }
        let regions_file = self
            .file_stats
            .iter()
            .find(|(f, family, _)| {
                *family == Family::SingleAgeRegions && by_file.contains_key(f.as_str())
            })
            .map(|(f, _, _)| f.as_str());
        let file = regions_file.or_else(|| by_file.keys().next().copied())?;
        Some((by_file[file], file.to_string()))
    }

    /// A practice's male and female patients from its age rows (from the wide files' total
    /// columns before 2017), `None` when no age file gives them (never 0 for want of a file).
    pub(crate) fn by_sex(&self, code: &str) -> (Option<u64>, Option<u64>) {
        for agg in [&self.quinary, &self.single] {
            let total = |sex| agg.all_rows.get(&(code.to_string(), sex)).copied();
            if agg.wide && total(SexKey::Male).is_some() {
                return (total(SexKey::Male), total(SexKey::Female));
            }
            if agg.present && agg.has_practice(code) {
                return (
                    agg.sex_total(code, SexKey::Male),
                    agg.sex_total(code, SexKey::Female),
                );
            }
        }
        (None, None)
    }
}

impl AgeAgg {
    /// True when the files have rows (leaf or ALL) for the practice.
    pub(crate) fn has_practice(&self, code: &str) -> bool {
        [SexKey::Male, SexKey::Female, SexKey::All].iter().any(|s| {
            let key = (code.to_string(), *s);
            self.leaf.contains_key(&key) || self.all_rows.contains_key(&key)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(agg: &mut AgeAgg, code: &str, sex: SexKey, n: u64) {
        agg.present = true;
        agg.leaf.insert((code.to_string(), sex), n);
    }

    #[test]
    fn the_totals_file_wins_then_the_wide_total_then_the_age_rows() {
        let mut e = Aggregates::default();
        assert_eq!(e.list_size("A1"), None);
        assert_eq!(e.by_sex("A1"), (None, None));
        leaf(&mut e.single, "A1", SexKey::Male, 40);
        leaf(&mut e.single, "A1", SexKey::Female, 60);
        assert_eq!(e.list_size("A1"), Some((100, "single_age")));
        leaf(&mut e.quinary, "A1", SexKey::Male, 41);
        leaf(&mut e.quinary, "A1", SexKey::Female, 60);
        assert_eq!(e.list_size("A1"), Some((101, "quinary")));
        assert_eq!(e.by_sex("A1"), (Some(41), Some(60)));
        e.quinary.wide = true;
        e.quinary
            .all_rows
            .insert(("A1".to_string(), SexKey::All), 102);
        assert_eq!(e.list_size("A1"), Some((102, "wide_total")));
        e.totals.insert("A1".to_string(), (103, 2));
        assert_eq!(e.list_size("A1"), Some((103, "practice_totals")));
        assert_eq!(e.list_size("B2"), None, "a practice no file has");
    }
}
