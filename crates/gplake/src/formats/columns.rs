//! The one alias registry: every header the publisher has used, mapped to a canonical column.
//!
//! Columns are found by name, never by position. A header that is not in the registry stops
//! the file with an error naming the column and the era the header resembles; nothing is
//! NULL-filled silently.

use std::collections::HashMap;

use super::aliases::{Aliases, column_line};
use super::values::parse_age;
use super::{Family, FormatError};

/// The column a header name (any case) stands for in the built-in registry.
pub(crate) fn known_column(name: &str) -> Option<Col> {
    let lower = name.trim().to_ascii_lowercase();
    ALIASES.iter().find(|(a, _)| *a == lower).map(|(_, c)| *c)
}

/// The name the publisher uses today for `col` (its first entry in the registry).
pub(crate) fn canonical_column(col: Col) -> String {
    ALIASES
        .iter()
        .find(|(_, c)| *c == col)
        .map_or_else(|| format!("{col:?}"), |(a, _)| a.to_ascii_uppercase())
}

/// A canonical column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Col {
    /// PUBLICATION.
    Publication,
    /// EXTRACT_DATE.
    ExtractDate,
    /// TYPE / ORG_TYPE.
    OrgType,
    /// CODE / ORG_CODE / PRACTICE_CODE / GP_PRACTICE_CODE.
    Code,
    /// ONS_CODE (organisation rows).
    OnsCode,
    /// POSTCODE / PRACTICE_POSTCODE.
    Postcode,
    /// PRACTICE_NAME / ORG_NAME / NAME.
    PracticeName,
    /// CCG_CODE / SUB_ICB_LOC_CODE / SUB_ICB_LOCATION_CODE.
    SubIcbCode,
    /// Its ONS code.
    SubIcbOnsCode,
    /// Its name.
    SubIcbName,
    /// STP_CODE / ICB_CODE.
    IcbCode,
    /// Its ONS code.
    IcbOnsCode,
    /// Its name.
    IcbName,
    /// COMM_REGION_CODE / nhse_comm_region_code.
    RegionCode,
    /// ONS_COMM_REGION_CODE.
    RegionOnsCode,
    /// COMM_REGION_NAME.
    RegionName,
    /// PCN_CODE.
    PcnCode,
    /// PCN_NAME.
    PcnName,
    /// SUPPLIER_NAME (2026 maps).
    Supplier,
    /// SEX.
    Sex,
    /// AGE (single year).
    Age,
    /// AGE_GROUP_5.
    AgeBand,
    /// NUMBER_OF_PATIENTS / Number of Patients.
    Count,
    /// LSOA_CODE.
    Lsoa,
    /// Pre-2017 columns kept for reference only (area team, old region codes).
    LegacyOther,
    /// Pre-2017 TOTAL_ALL.
    TotalAll,
    /// Pre-2017 TOTAL_MALE.
    TotalMale,
    /// Pre-2017 TOTAL_FEMALE.
    TotalFemale,
    /// Tall LSOA `Male Patients`.
    MalePatients,
    /// Tall LSOA `Female Patients`.
    FemalePatients,
    /// Tall LSOA `All Patients`.
    AllPatients,
}

/// `(alias, column)`, aliases lower-case.
const ALIASES: &[(&str, Col)] = &[
    ("publication", Col::Publication),
    ("extract_date", Col::ExtractDate),
    ("type", Col::OrgType),
    ("org_type", Col::OrgType),
    ("code", Col::Code),
    ("org_code", Col::Code),
    ("practice_code", Col::Code),
    ("gp_practice_code", Col::Code),
    ("ons_code", Col::OnsCode),
    ("postcode", Col::Postcode),
    ("practice_postcode", Col::Postcode),
    ("practice_name", Col::PracticeName),
    ("org_name", Col::PracticeName),
    ("name", Col::PracticeName),
    ("ccg_code", Col::SubIcbCode),
    ("sub_icb_loc_code", Col::SubIcbCode),
    ("sub_icb_location_code", Col::SubIcbCode),
    ("ons_ccg_code", Col::SubIcbOnsCode),
    ("ons_sub_icb_loc_code", Col::SubIcbOnsCode),
    ("ons_sub_icb_location_code", Col::SubIcbOnsCode),
    ("ccg_name", Col::SubIcbName),
    ("sub_icb_loc_name", Col::SubIcbName),
    ("sub_icb_location_name", Col::SubIcbName),
    ("stp_code", Col::IcbCode),
    ("icb_code", Col::IcbCode),
    ("ons_stp_code", Col::IcbOnsCode),
    ("ons_icb_code", Col::IcbOnsCode),
    ("stp_name", Col::IcbName),
    ("icb_name", Col::IcbName),
    ("comm_region_code", Col::RegionCode),
    ("nhse_comm_region_code", Col::RegionCode),
    ("ons_comm_region_code", Col::RegionOnsCode),
    ("ons_comm_rgn_code", Col::RegionOnsCode),
    ("comm_region_name", Col::RegionName),
    ("pcn_code", Col::PcnCode),
    ("pcn_name", Col::PcnName),
    ("supplier_name", Col::Supplier),
    ("sex", Col::Sex),
    ("age", Col::Age),
    ("age_group_5", Col::AgeBand),
    ("number_of_patients", Col::Count),
    ("number of patients", Col::Count),
    ("lsoa_code", Col::Lsoa),
    ("nhse_area_team_code", Col::LegacyOther),
    ("nhse_region_code", Col::LegacyOther),
    ("ons_region_code", Col::LegacyOther),
    ("total_all", Col::TotalAll),
    ("total_male", Col::TotalMale),
    ("total_males", Col::TotalMale),
    ("total_female", Col::TotalFemale),
    ("total_females", Col::TotalFemale),
    ("male patients", Col::MalePatients),
    ("male_patients", Col::MalePatients),
    ("female patients", Col::FemalePatients),
    ("female_patients", Col::FemalePatients),
    ("all patients", Col::AllPatients),
    ("all_patients", Col::AllPatients),
];

/// A wide pre-2017 count column: `MALE_0-4` (band), `male_0_1` (year 0), `male_95+`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WideColumn {
    /// Index in the record.
    pub(crate) index: usize,
    /// True for male, false for female.
    pub(crate) male: bool,
    /// First age covered (95 for 95+).
    pub(crate) from: u8,
    /// Last age covered (95 for 95+).
    pub(crate) to: u8,
}

/// A resolved header: where each canonical column is.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    positions: HashMap<Col, usize>,
    /// Wide count columns, in header order (pre-2017 files only).
    pub(crate) wide: Vec<WideColumn>,
    /// The raw names, for messages.
    pub(crate) names: Vec<String>,
    /// Columns not in the alias registry: not read (a warning), unless a required column is
    /// missing, when the first of them is most likely its new name (an error).
    pub(crate) unknown: Vec<String>,
}

impl Header {
    /// Resolves `names` through the registry, then the user's `aliases`; unknown names are
    /// set aside in `unknown`.
    pub(crate) fn resolve(names: &[String], aliases: &Aliases) -> Result<Header, FormatError> {
        let mut header = Header {
            positions: HashMap::new(),
            wide: Vec::new(),
            names: names.to_vec(),
            unknown: Vec::new(),
        };
        for (index, raw) in names.iter().enumerate() {
            let name = raw.trim().trim_start_matches('\u{feff}');
            let lower = name.to_ascii_lowercase();
            let known = ALIASES.iter().find(|(a, _)| *a == lower).map(|(_, c)| *c);
            if let Some(col) = known.or_else(|| aliases.column(name)) {
                header.positions.entry(col).or_insert(index);
            } else if let Some(w) = wide_column(&lower, index) {
                header.wide.push(w);
            } else {
                header.unknown.push(name.to_string());
            }
        }
        Ok(header)
    }

    /// Position of `col`, if the header has it.
    pub(crate) fn get(&self, col: Col) -> Option<usize> {
        self.positions.get(&col).copied()
    }

    /// Position of `col`, or an error naming the missing column — or the unknown column
    /// that most likely replaced it.
    pub(crate) fn require(
        &self,
        col: Col,
        family: Family,
        file: &str,
    ) -> Result<usize, FormatError> {
        self.get(col).ok_or_else(|| match self.unknown.first() {
            Some(column) => FormatError::UnknownColumn {
                file: file.to_string(),
                column: column.clone(),
                family,
                era: resembles(&self.names),
                alias_line: column_line(column, col),
            },
            None => FormatError::MissingColumn {
                file: file.to_string(),
                column: format!("{col:?}"),
                family,
                era: resembles(&self.names),
            },
        })
    }

    /// Warnings for the columns set aside (line 1 of `file`).
    pub(crate) fn unknown_warnings(&self, file: &str) -> Vec<String> {
        self.unknown
            .iter()
            .map(|c| format!("{file} line 1: column '{c}' is not known to gplake and was not read (an aliases entry makes it readable)"))
            .collect()
    }
}

fn wide_column(lower: &str, index: usize) -> Option<WideColumn> {
    let (sex, rest) = lower.split_once('_')?;
    let male = match sex {
        "male" => true,
        "female" => false,
        _ => return None,
    };
    if let Some(from) = rest.strip_suffix('+') {
        let from = parse_age(from)?;
        return Some(WideColumn {
            index,
            male,
            from,
            to: 95,
        });
    }
    let parts: Vec<&str> = rest.split(['-', '_']).collect();
    let from = parse_age(parts.first()?)?;
    let to = match parts.as_slice() {
        [_] => from,
        // `male_0_1` is age 0 (a one-year range), `MALE_0-4` is the band 0–4.
        [_, to] if rest.contains('_') => parse_age(to)?.checked_sub(1)?,
        [_, to] => parse_age(to)?,
        _ => return None,
    };
    (from <= to && to < 95).then_some(WideColumn {
        index,
        male,
        from,
        to,
    })
}

/// The era a header looks like, for error messages.
pub(crate) fn resembles(names: &[String]) -> &'static str {
    let has = |n: &str| names.iter().any(|h| h.trim().eq_ignore_ascii_case(n));
    match () {
        _ if has("total_all")
            || names
                .iter()
                .any(|h| h.to_ascii_lowercase().starts_with("male_")) =>
        {
            "pre-2017 wide files (2013–2017)"
        }
        _ if has("SUB_ICB_LOC_CODE") => "the 2022 transition (SUB_ICB_LOC_*)",
        _ if has("SUB_ICB_LOCATION_CODE") || has("ICB_CODE") => "the ICB era (2022 →)",
        _ if has("CCG_CODE") || has("STP_CODE") => "the CCG era (2017 – June 2022)",
        _ if has("NUMBER_OF_PATIENTS") || has("Number of Patients") => "the long format (2017 →)",
        _ => "no known era",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &str) -> Vec<String> {
        s.split(',').map(str::to_string).collect()
    }

    #[test]
    fn every_era_resolves_by_name() {
        for h in [
            "PUBLICATION,EXTRACT_DATE,TYPE,CCG_CODE,ONS_CCG_CODE,CODE,POSTCODE,SEX,AGE,NUMBER_OF_PATIENTS",
            "PUBLICATION,EXTRACT_DATE,TYPE,SUB_ICB_LOC_CODE,ONS_SUB_ICB_LOC_CODE,CODE,POSTCODE,SEX,AGE,NUMBER_OF_PATIENTS",
            "EXTRACT_DATE,SUB_ICB_LOCATION_CODE,ONS_SUB_ICB_LOCATION_CODE,ORG_CODE,POSTCODE,SEX,AGE,NUMBER_OF_PATIENTS",
            "PUBLICATION,EXTRACT_DATE,PRACTICE_CODE,PRACTICE_NAME,LSOA_CODE,SEX,Number of Patients",
        ] {
            let header = Header::resolve(&names(h), &Aliases::default()).unwrap();
            assert!(
                header.get(Col::Count).is_some() && header.get(Col::Code).is_some(),
                "{h}"
            );
        }
    }

    #[test]
    fn wide_columns() {
        let h = Header::resolve(
            &names("GP_PRACTICE_CODE,TOTAL_ALL,MALE_0-4,MALE_95+,female_0_1,female_94_95,male_4"),
            &Aliases::default(),
        )
        .unwrap();
        let spans: Vec<(bool, u8, u8)> = h.wide.iter().map(|w| (w.male, w.from, w.to)).collect();
        assert_eq!(
            spans,
            [
                (true, 0, 4),
                (true, 95, 95),
                (false, 0, 0),
                (false, 94, 94),
                (true, 4, 4)
            ]
        );
    }

    #[test]
    fn an_extra_column_is_set_aside_and_warned() {
        let h = Header::resolve(
            &names(
                "EXTRACT_DATE,SUB_ICB_LOCATION_CODE,ORG_CODE,SEX,AGE,NEW_THING,NUMBER_OF_PATIENTS",
            ),
            &Aliases::default(),
        )
        .unwrap();
        assert_eq!(h.unknown, vec!["NEW_THING".to_string()]);
        assert!(
            h.require(Col::Count, Family::SingleAgeMale, "m.csv")
                .is_ok()
        );
        let warnings = h.unknown_warnings("m.csv");
        assert!(
            warnings[0].starts_with("m.csv line 1: column 'NEW_THING' is not known"),
            "{warnings:?}"
        );
    }

    #[test]
    fn an_unknown_column_names_itself_and_the_era() {
        let h = Header::resolve(
            &names("EXTRACT_DATE,SUB_ICB_LOCATION_CODE,ORG_CODE,FOO,NUMBER_OF_PATIENTS"),
            &Aliases::default(),
        )
        .unwrap();
        let err = h
            .require(Col::Sex, Family::SingleAgeMale, "m.csv")
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("m.csv") && text.contains("'FOO'") && text.contains("ICB era"),
            "{text}"
        );
    }

    use proptest::prelude::*;

    proptest::proptest! {
        #[test]
        fn columns_are_found_by_name_in_any_order_and_case(
            order in proptest::sample::subsequence((0..9usize).collect::<Vec<_>>(), 9).prop_shuffle(),
            upper in proptest::collection::vec(proptest::bool::ANY, 9),
        ) {
            let published = [
                "PUBLICATION", "EXTRACT_DATE", "ORG_TYPE", "ORG_CODE", "ONS_CODE", "POSTCODE",
                "SEX", "AGE_GROUP_5", "NUMBER_OF_PATIENTS",
            ];
            let shuffled: Vec<String> = order
                .iter()
                .zip(&upper)
                .map(|(i, up)| if *up { published[*i].to_string() } else { published[*i].to_ascii_lowercase() })
                .collect();
            let h = Header::resolve(&shuffled, &Aliases::default()).unwrap();
            prop_assert!(h.unknown.is_empty());
            for (col, name) in [(Col::Code, "ORG_CODE"), (Col::Count, "NUMBER_OF_PATIENTS"), (Col::AgeBand, "AGE_GROUP_5"), (Col::Sex, "SEX")] {
                let at = h.get(col).unwrap();
                prop_assert_eq!(shuffled[at].to_ascii_uppercase(), name);
            }
        }
    }
}
