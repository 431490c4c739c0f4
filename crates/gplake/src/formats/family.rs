//! File families and naming eras, recognised from a file's name alone.
//!
//! Every name listed in nhs-formats.md §1 classifies to a known family; anything else that
//! looks like data (CSV, ZIP, spreadsheet) is [`Family::Unknown`] — still fetched into bronze
//! and reported, never dropped. Classification is pure and case-insensitive.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::formats::extract_date::month_number;
use crate::month::Month;

/// What a file holds, whatever its era.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// `gp-reg-pat-prac-all`: one row per practice, all persons.
    PracticeTotals,
    /// `gp-reg-pat-prac-map`: practice → PCN → sub-ICB → ICB → region lookup.
    Map,
    /// `gp-reg-pat-prac-quin-age`: all org levels × 5-year band × sex.
    Quinary,
    /// `gp-reg-pat-prac-sing-age-male`: practice × single year, males.
    SingleAgeMale,
    /// `gp-reg-pat-prac-sing-age-female`: practice × single year, females.
    SingleAgeFemale,
    /// `gp-reg-pat-prac-sing-age-all`: practice × single year, persons.
    SingleAgeAll,
    /// `gp-reg-pat-prac-sing-age-regions`: organisations above practice × single year.
    SingleAgeRegions,
    /// `gp-reg-pat-prac-lsoa-*`: practice × LSOA × sex (quarterly ZIPs).
    Lsoa,
    /// Pre-2017 wide 5-year file: `gp-reg-patients-MM-YYYY`, `gp-reg-patients-prac-quin-age`.
    LegacyQuinary,
    /// Pre-2017 wide single-year file: `gp_syoa*`, `gp-reg-patients-prac-sing-year-age`.
    LegacySingleAge,
    /// Pre-2017 tall LSOA file: `gp-reg-patients-*lsoa*`, `lsoa-alt-format-tall`.
    LegacyLsoa,
    /// A data file whose name matches no known family.
    Unknown,
}

impl Family {
    /// True for files whose figures are practice rows (a file of them without one is wrong).
    pub fn is_practice_level(self) -> bool {
        matches!(
            self,
            Family::PracticeTotals
                | Family::Quinary
                | Family::SingleAgeMale
                | Family::SingleAgeFemale
        )
    }
}

/// How the publisher named files at the time: tells the era a file comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamingEra {
    /// 2013-10 → 2017-01: `gp-reg-patients-*`, `gp_syoa*` wide files.
    Legacy,
    /// 2017-04 → 2019-04: a month suffix such as `-sep-17`.
    Suffixed,
    /// 2019-05 → today: plain family names (CSV, later ZIP).
    Plain,
}

/// The container of a file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Container {
    /// A CSV file.
    Csv,
    /// A ZIP holding one or more CSV members.
    Zip,
    /// A spreadsheet or anything else kept as is.
    Other,
}

/// Everything a file name says about the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileKind {
    /// The family.
    pub family: Family,
    /// The naming era.
    pub era: NamingEra,
    /// CSV, ZIP or other.
    pub container: Container,
    /// 2011 or 2021 for LSOA files that name their vintage.
    pub lsoa_vintage: Option<u16>,
    /// The reissue number (`_v2`, `-v2`; `(revised)` counts as 2), when present.
    pub version: Option<u32>,
}

static SUFFIX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"-([a-z]{3,9})-(\d{2}|\d{4})$").expect("valid regex"));
/// A reissue marker at the end of a name: `_v2`, `-v2`, ` (revised)`, `-revised`. The lower
/// case stem is matched; a marker without a number counts as version 2.
static VERSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:[_-]v(\d+)|[\s_-]*\(?revised\)?)$").expect("valid regex"));
static LEGACY_MONTH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[-_])(\d{2})[-_](\d{4})(?:[-_.]|$)").expect("valid regex"));
static LSOA_VINTAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"lsoa-(2011|2021)-").expect("valid regex"));

/// True when a link's file name looks like data worth keeping (CSV, ZIP or spreadsheet).
pub fn is_data_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".csv", ".zip", ".xlsx", ".xls"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

/// Classifies a file by its name (the last path segment of its URL).
pub fn classify(name: &str) -> FileKind {
    let (stem, container) = split_extension(name);
    let (stem, version) = strip_version(&stem);
    let family = family_of(&stem);
    // LSOA files always carry a month token, so it says nothing about their era.
    let suffixed = SUFFIX.is_match(&stem) && family != Family::Lsoa && family != Family::Unknown;
    let era = match family {
        Family::LegacyQuinary | Family::LegacySingleAge | Family::LegacyLsoa => NamingEra::Legacy,
        _ if suffixed => NamingEra::Suffixed,
        _ => NamingEra::Plain,
    };
    let lsoa_vintage = LSOA_VINTAGE.captures(&stem).and_then(|c| c[1].parse().ok());
    FileKind {
        family,
        era,
        container,
        lsoa_vintage,
        version,
    }
}

/// The month a file name carries, if any: `-sep-17`, `-July-2022`, `-oct-22.`, `-01-2014`.
pub fn month_from_name(name: &str) -> Option<Month> {
    let (stem, _) = split_extension(name);
    let (stem, _) = strip_version(&stem);
    if let Some(c) = SUFFIX.captures(&stem) {
        let month = month_number(&c[1])?;
        let year: i32 = c[2].parse().ok()?;
        return Month::new(if year < 100 { 2000 + year } else { year }, month);
    }
    let c = LEGACY_MONTH.captures(&stem)?;
    Month::new(c[2].parse().ok()?, c[1].parse().ok()?)
}

/// Lower-cases, trims the extension (tolerating the published `..zip`), names the container.
fn split_extension(name: &str) -> (String, Container) {
    let lower = name.to_ascii_lowercase();
    let (stem, ext) = lower.rsplit_once('.').unwrap_or((&lower, ""));
    let container = match ext {
        "csv" => Container::Csv,
        "zip" => Container::Zip,
        _ => Container::Other,
    };
    (stem.trim_end_matches('.').to_string(), container)
}

fn strip_version(stem: &str) -> (String, Option<u32>) {
    match VERSION.captures(stem) {
        Some(c) => (
            stem[..c.get(0).expect("whole match").start()].to_string(),
            c.get(1).map_or(Some(2), |n| n.as_str().parse().ok()),
        ),
        None => (stem.to_string(), None),
    }
}

fn family_of(stem: &str) -> Family {
    if let Some(rest) = stem.strip_prefix("gp-reg-pat-prac-") {
        return current_family(rest);
    }
    if stem.contains("lsoa") && (stem.starts_with("gp-reg-patients") || stem.contains("alt")) {
        return Family::LegacyLsoa;
    }
    if stem.starts_with("gp_syoa") || stem.starts_with("gp-reg-patients-prac-sing-year-age") {
        return Family::LegacySingleAge;
    }
    if stem.starts_with("gp-reg-patients") {
        return Family::LegacyQuinary;
    }
    Family::Unknown
}

fn current_family(rest: &str) -> Family {
    let starts = |p: &str| rest == p || rest.starts_with(&format!("{p}-"));
    match () {
        _ if starts("all") => Family::PracticeTotals,
        _ if starts("map") => Family::Map,
        _ if starts("quin-age") => Family::Quinary,
        _ if starts("sing-age-male") => Family::SingleAgeMale,
        _ if starts("sing-age-female") => Family::SingleAgeFemale,
        _ if starts("sing-age-regions") => Family::SingleAgeRegions,
        _ if starts("sing-age-all") => Family::SingleAgeAll,
        _ if starts("lsoa") => Family::Lsoa,
        _ => Family::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fam(name: &str) -> Family {
        classify(name).family
    }

    #[test]
    fn every_published_name_has_its_family() {
        let cases = [
            ("gp-reg-pat-prac-all.csv", Family::PracticeTotals),
            ("gp-reg-pat-prac-all.zip", Family::PracticeTotals),
            ("gp-reg-pat-prac-all-jan-18.csv", Family::PracticeTotals),
            ("gp-reg-pat-prac-map.csv", Family::Map),
            ("gp-reg-pat-prac-map_v2.csv", Family::Map),
            ("gp-reg-pat-prac-map_V2.zip", Family::Map),
            ("gp-reg-pat-prac-quin-age-sep-17.csv", Family::Quinary),
            ("gp-reg-pat-prac-quin-age.zip", Family::Quinary),
            ("gp-reg-pat-prac-sing-age-male.csv", Family::SingleAgeMale),
            (
                "gp-reg-pat-prac-sing-age-female.zip",
                Family::SingleAgeFemale,
            ),
            (
                "gp-reg-pat-prac-sing-age-regions.zip",
                Family::SingleAgeRegions,
            ),
            ("gp-reg-pat-prac-sing-age-all.csv", Family::SingleAgeAll),
            ("gp-reg-pat-prac-lsoa-all-females-males.zip", Family::Lsoa),
            ("gp-reg-pat-prac-lsoa-male-female-apr-19.zip", Family::Lsoa),
            ("gp-reg-pat-prac-lsoa-male-female-oct-22..zip", Family::Lsoa),
            (
                "gp-reg-pat-prac-lsoa-2021-male-female-July-25.zip",
                Family::Lsoa,
            ),
            ("gp-reg-patients-01-2014.csv", Family::LegacyQuinary),
            ("gp-reg-patients-prac-quin-age.csv", Family::LegacyQuinary),
            (
                "gp-reg-patients-prac-sing-year-age.csv",
                Family::LegacySingleAge,
            ),
            ("gp_syoa_2015.csv", Family::LegacySingleAge),
            (
                "gp-reg-patients-04-2014-totals-lsoa-alt.csv",
                Family::LegacyLsoa,
            ),
            ("gp-reg-patients-lsoa-alt-tall.csv", Family::LegacyLsoa),
            ("lsoa-alt-format-tall.csv", Family::LegacyLsoa),
            ("gp-reg-pat-prac-something-new.csv", Family::Unknown),
            ("Pre-Release Access List.xlsx", Family::Unknown),
        ];
        for (name, family) in cases {
            assert_eq!(fam(name), family, "{name}");
        }
    }

    #[test]
    fn reissue_markers_give_a_version() {
        for (name, version) in [
            ("gp-reg-pat-prac-map.csv", None),
            ("gp-reg-pat-prac-map_v2.csv", Some(2)),
            ("gp-reg-pat-prac-map-v3.csv", Some(3)),
            ("gp-reg-pat-prac-all (revised).csv", Some(2)),
            ("gp-reg-pat-prac-all-revised.csv", Some(2)),
        ] {
            let kind = classify(name);
            assert_eq!(kind.version, version, "{name}");
            assert_ne!(kind.family, Family::Unknown, "{name}");
        }
    }

    #[test]
    fn eras_containers_versions_vintages() {
        let k = classify("gp-reg-pat-prac-quin-age-sep-17.csv");
        assert_eq!((k.era, k.container), (NamingEra::Suffixed, Container::Csv));
        let k = classify("gp-reg-pat-prac-lsoa-male-female-oct-22..zip");
        assert_eq!((k.era, k.container), (NamingEra::Plain, Container::Zip));
        let k = classify("gp-reg-pat-prac-map_V2.zip");
        assert_eq!((k.era, k.version), (NamingEra::Plain, Some(2)));
        assert_eq!(
            classify("gp-reg-pat-prac-lsoa-2011-male-female-July-25.zip").lsoa_vintage,
            Some(2011)
        );
        assert_eq!(classify("gp_syoa_2015.csv").era, NamingEra::Legacy);
        assert!(is_data_file("a..zip") && !is_data_file("Pre-Release Access List.pdf"));
    }

    #[test]
    fn months_in_names() {
        let m = |s: &str| month_from_name(s).map(|m| m.to_string());
        assert_eq!(
            m("gp-reg-pat-prac-quin-age-sep-17.csv").as_deref(),
            Some("2017-09")
        );
        assert_eq!(
            m("gp-reg-pat-prac-lsoa-male-female-July-2022.zip").as_deref(),
            Some("2022-07")
        );
        assert_eq!(
            m("gp-reg-pat-prac-lsoa-male-female-oct-22..zip").as_deref(),
            Some("2022-10")
        );
        assert_eq!(
            m("gp-reg-pat-prac-lsoa-male-female-october-21.zip").as_deref(),
            Some("2021-10")
        );
        assert_eq!(m("gp-reg-patients-01-2014.csv").as_deref(), Some("2014-01"));
        assert_eq!(
            m("gp-reg-patients-04-2014-totals-lsoa-alt.csv").as_deref(),
            Some("2014-04")
        );
        assert_eq!(m("gp-reg-pat-prac-all.csv"), None);
    }
}
