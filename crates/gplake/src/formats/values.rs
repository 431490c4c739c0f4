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
        const NAMES: [(&str, OrgLevel); 11] = [
            ("GP", OrgLevel::Practice),
            ("PCN", OrgLevel::Pcn),
            ("CCG", OrgLevel::SubIcb),
            ("SUB_ICB_LOCATION", OrgLevel::SubIcb),
            ("SUB_ICB_LOCATION_CODE", OrgLevel::SubIcb),
            ("SUB_ICB_LOC", OrgLevel::SubIcb),
            ("ICB", OrgLevel::Icb),
            ("STP", OrgLevel::Icb),
            ("COMM REGION", OrgLevel::Region),
            ("COMM_REGION", OrgLevel::Region),
            ("REGION", OrgLevel::Region),
        ];
        spelling(&NAMES, text)
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

/// The value whose spelling `text` is, trimmed and case-blind, matched in place: this runs
/// on every row, so it never allocates.
fn spelling<T: Copy>(names: &[(&str, T)], text: &str) -> Option<T> {
    let text = text.trim();
    names
        .iter()
        .find(|(name, _)| text.eq_ignore_ascii_case(name))
        .map(|(_, value)| *value)
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
        const NAMES: [(&str, SexKey); 6] = [
            ("ALL", SexKey::All),
            ("PERSONS", SexKey::All),
            ("MALE", SexKey::Male),
            ("MALES", SexKey::Male),
            ("FEMALE", SexKey::Female),
            ("FEMALES", SexKey::Female),
        ];
        spelling(&NAMES, text)
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
            t => parse_age(t).filter(|a| *a < 95).map(AgeKey::Year),
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
        AgeKey::band_from_to(parse_age(from)?, parse_age(to)?)
    }

    /// The 5-year band `from`…`to`, when it is one (`90`…`94` the last; `95+` is apart).
    fn band_from_to(from: u8, to: u8) -> Option<AgeKey> {
        (from.is_multiple_of(5) && to == from + 4 && from < 95).then_some(AgeKey::Band(from / 5))
    }

    /// The label stored in silver: `ALL`, `0`…`94`, `95+`, `0-4`…`90-94`, `85+`.
    pub fn label(self) -> String {
        match self {
            AgeKey::All => "ALL".into(),
            AgeKey::Year(a) => year_label(a).to_string(),
            AgeKey::Band(b) => band_label(b).to_string(),
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

    /// [`AgeKey::parse_year`] of a plain year, `0`…`94`, read from its bytes; `None` for
    /// every other field, which the full parser then reads.
    pub(crate) fn plain_year(bytes: &[u8]) -> Option<AgeKey> {
        small_number(bytes).filter(|a| *a < 95).map(AgeKey::Year)
    }

    /// [`AgeKey::parse_band`] of a plain band, `0_4`…`90_94` (or `0-4`), read from its
    /// bytes; `None` for every other field, which the full parser then reads.
    pub(crate) fn plain_band(bytes: &[u8]) -> Option<AgeKey> {
        let at = bytes.iter().position(|b| matches!(b, b'_' | b'-'))?;
        AgeKey::band_from_to(small_number(&bytes[..at])?, small_number(&bytes[at + 1..])?)
    }
}

/// A number of one or two digits.
fn small_number(bytes: &[u8]) -> Option<u8> {
    let digit = |b: u8| b.is_ascii_digit().then(|| b - b'0');
    match *bytes {
        [d] => digit(d),
        [tens, units] => Some(digit(tens)? * 10 + digit(units)?),
        _ => None,
    }
}

/// [`parse_count`] of a field of digits only, read from its bytes; `None` for every other
/// field (a blank, a space, a sign, past `u64`), which [`parse_count`] then reads.
pub(crate) fn plain_count(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

/// An age in whole years: digits only (a zero-padded age is its number).
pub(crate) fn parse_age(text: &str) -> Option<u8> {
    digits(text)
}

/// The label of a 5-year band: `0-4` … `90-94`, `95+`.
pub fn band_label(band: u8) -> &'static str {
    // Static, because a label is written with every fact row.
    const LABELS: [&str; 20] = [
        "0-4", "5-9", "10-14", "15-19", "20-24", "25-29", "30-34", "35-39", "40-44", "45-49",
        "50-54", "55-59", "60-64", "65-69", "70-74", "75-79", "80-84", "85-89", "90-94", "95+",
    ];
    LABELS[usize::from(band.min(19))]
}

/// The label of a single year: `0` … `94`, `95+`.
pub fn year_label(age: u8) -> &'static str {
    const LABELS: [&str; 96] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
        "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31",
        "32", "33", "34", "35", "36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46",
        "47", "48", "49", "50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61",
        "62", "63", "64", "65", "66", "67", "68", "69", "70", "71", "72", "73", "74", "75", "76",
        "77", "78", "79", "80", "81", "82", "83", "84", "85", "86", "87", "88", "89", "90", "91",
        "92", "93", "94", "95+",
    ];
    LABELS[usize::from(age.min(95))]
}

/// A count: a non-negative whole number without separators.
pub fn parse_count(text: &str) -> Option<u64> {
    digits(text.trim())
}

/// `text` as a number when it is digits only: `str::parse` alone would also take a sign
/// (`+5`), which no published figure carries.
fn digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_readings_agree_with_the_full_parsers() {
        let mut fields: Vec<String> = (0..=120).map(|n| n.to_string()).collect();
        fields.extend((0..=120).map(|n| format!("{n:02}")));
        for from in 0..=100 {
            for to in [from + 3, from + 4, from + 5] {
                fields.push(format!("{from}_{to}"));
                fields.push(format!("{from}-{to}"));
            }
        }
        let odd = [
            "",
            " ",
            "ALL",
            "all",
            "95+",
            "85+",
            "+5",
            "-5",
            "5_",
            "_9",
            "0__4",
            "0_4 ",
            " 7",
            "007",
            "1e3",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "12,5",
            "½",
        ];
        fields.extend(odd.iter().map(|f| f.to_string()));
        for field in &fields {
            let bytes = field.as_bytes();
            if let Some(plain) = AgeKey::plain_year(bytes) {
                assert_eq!(AgeKey::parse_year(field), Some(plain), "{field:?}");
            }
            if let Some(plain) = AgeKey::plain_band(bytes) {
                assert_eq!(AgeKey::parse_band(field), Some(plain), "{field:?}");
            }
            if let Some(plain) = plain_count(bytes) {
                assert_eq!(parse_count(field), Some(plain), "{field:?}");
            }
        }
        // The plain readings cover the spellings the publisher writes.
        assert_eq!(AgeKey::plain_year(b"94"), Some(AgeKey::Year(94)));
        assert_eq!(AgeKey::plain_band(b"90_94"), Some(AgeKey::Band(18)));
        assert_eq!(AgeKey::plain_band(b"0-4"), Some(AgeKey::Band(0)));
        assert_eq!(plain_count(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(plain_count(b"18446744073709551616"), None);
    }

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
