//! The value registry: organisation levels, sexes, ages and bands as published, normalised.
//!
//! An unknown value stops the file (the caller names file, line and column); it is never
//! mapped to NULL or guessed.

use serde::Serialize;

/// An organisation level (`ORG_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum OrgLevel {
    /// A GP practice.
    Practice,
    /// A primary care network.
    Pcn,
    /// A sub-ICB location (a CCG before July 2022).
    SubIcb,
    /// An ICB (an STP before July 2022).
    Icb,
    /// An NHS England commissioning region.
    Region,
}

impl OrgLevel {
    /// Every `ORG_TYPE` spelling seen (nhs-formats §2.4, §3).
    pub fn parse(text: &str) -> Option<OrgLevel> {
        match text.trim().to_ascii_uppercase().as_str() {
            "GP" => Some(OrgLevel::Practice),
            "PCN" => Some(OrgLevel::Pcn),
            "CCG" | "SUB_ICB_LOCATION" | "SUB_ICB_LOCATION_CODE" | "SUB_ICB_LOC" => {
                Some(OrgLevel::SubIcb)
            }
            "ICB" | "STP" => Some(OrgLevel::Icb),
            "COMM REGION" | "COMM_REGION" | "REGION" => Some(OrgLevel::Region),
            _ => None,
        }
    }

    /// The label stored in silver.
    pub fn label(self) -> &'static str {
        match self {
            OrgLevel::Practice => "PRACTICE",
            OrgLevel::Pcn => "PCN",
            OrgLevel::SubIcb => "SUB_ICB",
            OrgLevel::Icb => "ICB",
            OrgLevel::Region => "REGION",
        }
    }
}

/// A sex as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SexKey {
    /// Persons (a subtotal).
    All,
    /// Males.
    Male,
    /// Females.
    Female,
}

impl SexKey {
    /// `ALL`, `MALE`, `FEMALE` (any case).
    pub fn parse(text: &str) -> Option<SexKey> {
        match text.trim().to_ascii_uppercase().as_str() {
            "ALL" | "PERSONS" => Some(SexKey::All),
            "MALE" | "MALES" => Some(SexKey::Male),
            "FEMALE" | "FEMALES" => Some(SexKey::Female),
            _ => None,
        }
    }

    /// The label stored in silver.
    pub fn label(self) -> &'static str {
        match self {
            SexKey::All => "ALL",
            SexKey::Male => "MALE",
            SexKey::Female => "FEMALE",
        }
    }
}

/// An age as published: a subtotal, a single year (95 = 95+), or a 5-year band (19 = 95+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AgeKey {
    /// All ages (a subtotal).
    All,
    /// A single year, 0–94, or 95 for 95+.
    Year(u8),
    /// A 5-year band by index: 0 = 0–4 … 18 = 90–94, 19 = 95+.
    Band(u8),
    /// An open top band other than 95+, by its first age (`85+` in some pre-2017 files):
    /// stored as published, never split into the bands it spans.
    OpenBand(u8),
}

/// Number of 5-year bands (0–4 … 90–94, 95+).
pub const BANDS: u8 = 20;

impl AgeKey {
    /// `ALL`, `0`…`94`, `95+`.
    pub fn parse_year(text: &str) -> Option<AgeKey> {
        match text.trim() {
            t if t.eq_ignore_ascii_case("ALL") => Some(AgeKey::All),
            "95+" => Some(AgeKey::Year(95)),
            t => t.parse::<u8>().ok().filter(|a| *a < 95).map(AgeKey::Year),
        }
    }

    /// `ALL`, `0_4`…`90_94` (or `0-4`), `95+`.
    pub fn parse_band(text: &str) -> Option<AgeKey> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("ALL") {
            return Some(AgeKey::All);
        }
        if t == "95+" {
            return Some(AgeKey::Band(19));
        }
        let (from, to) = t.split_once(['_', '-'])?;
        let (from, to): (u8, u8) = (from.parse().ok()?, to.parse().ok()?);
        (from % 5 == 0 && to == from + 4 && from < 95).then_some(AgeKey::Band(from / 5))
    }

    /// The label stored in silver: `ALL`, `0`…`94`, `95+`, `0-4`…`90-94`, `85+`.
    pub fn label(self) -> String {
        match self {
            AgeKey::All => "ALL".into(),
            AgeKey::Year(a) => year_label(a),
            AgeKey::Band(b) => band_label(b),
            AgeKey::OpenBand(from) => format!("{from}+"),
        }
    }

    /// The 5-year band index the age or band starts in (`None` for ALL).
    pub fn first_band(self) -> Option<u8> {
        match self {
            AgeKey::All => None,
            AgeKey::Year(a) => Some(AgeKey::band_of_year(a)),
            AgeKey::Band(b) => Some(b),
            AgeKey::OpenBand(from) => Some(AgeKey::band_of_year(from)),
        }
    }

    /// The band a single year falls in.
    pub fn band_of_year(age: u8) -> u8 {
        (age / 5).min(19)
    }
}

/// The label of a 5-year band: `0-4` … `90-94`, `95+`.
pub fn band_label(band: u8) -> String {
    if band >= 19 {
        "95+".into()
    } else {
        format!("{}-{}", band * 5, band * 5 + 4)
    }
}

/// The label of a single year: `0` … `94`, `95+`.
pub fn year_label(age: u8) -> String {
    if age >= 95 {
        "95+".into()
    } else {
        age.to_string()
    }
}

/// A count: a non-negative whole number without separators.
pub fn parse_count(text: &str) -> Option<u64> {
    let t = text.trim();
    (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .then(|| t.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_as_published() {
        assert_eq!(OrgLevel::parse("Comm Region"), Some(OrgLevel::Region));
        assert_eq!(
            OrgLevel::parse("SUB_ICB_LOCATION_CODE"),
            Some(OrgLevel::SubIcb)
        );
        assert_eq!(OrgLevel::parse("NATIONAL"), None);
        assert_eq!(AgeKey::parse_band("90_94"), Some(AgeKey::Band(18)));
        assert_eq!(AgeKey::parse_band("3_7"), None);
        assert_eq!(AgeKey::parse_year("95+"), Some(AgeKey::Year(95)));
        assert_eq!(AgeKey::parse_year("95"), None);
        assert_eq!(parse_count("12"), Some(12));
        assert_eq!(parse_count("-3"), None);
        assert_eq!(parse_count("1,234"), None);
        assert_eq!(band_label(0), "0-4");
        assert_eq!(band_label(19), "95+");
    }
}
