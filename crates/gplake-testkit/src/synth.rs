//! Synthetic releases, faithful to each era's files: names, headers, EXTRACT_DATE spellings,
//! CRLF/LF, minimal quoting, ZIP containers, zero rows written or omitted, quarterly LSOA,
//! the April 2024 dual set and the May 2024 defect that was reissued.
//!
//! Where nhs-formats.md marks a fact as inferred, the generator picks one plausible answer
//! and says so here: the `all` file and single-age files exist from April 2017; the map and
//! the regions file from May 2019; zero cells are omitted from April 2024; the April 2024
//! NHAIS set uses the same file names as the PDS set, in other folders.

use std::io::Write;

use chrono::NaiveDate;

use crate::population::{AGES, Population, Practice, SEXES, Sex, Ym};

/// One file of a synthetic release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthFile {
    /// The published name.
    pub name: String,
    /// The bytes as served.
    pub bytes: Vec<u8>,
    /// The link text on the month page.
    pub link_text: String,
}

/// One month's synthetic release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthRelease {
    /// The snapshot month.
    pub month: Ym,
    /// The page's publication date.
    pub published: NaiveDate,
    /// The files, in page order.
    pub files: Vec<SynthFile>,
}

/// The months that have a release: quarterly from 2013-10 to 2017-01, monthly from 2017-04.
pub fn has_release(month: Ym) -> bool {
    match month {
        m if m < (2013, 10) => false,
        m if m < (2017, 4) => matches!(m.1, 1 | 4 | 7 | 10),
        _ => true,
    }
}

/// The release of `month`, or `None` when there was none.
pub fn release(pop: &Population, month: Ym) -> Option<SynthRelease> {
    build(pop, month, Variant::Published)
}

/// May 2024 as first published: the single-age files repeat the 95+ rows (nhs-formats §2.2).
pub fn release_with_duplicated_95(pop: &Population, month: Ym) -> Option<SynthRelease> {
    build(pop, month, Variant::Duplicated95)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Published,
    Duplicated95,
}

/// The counts one set of files is written from: the population's truth, or the NHAIS
/// variant of April 2024 (slightly different counts from the retiring system).
#[derive(Clone, Copy)]
struct Counts<'a> {
    pop: &'a Population,
    month: Ym,
    nhais: bool,
}

impl Counts<'_> {
    fn get(&self, p: &Practice, sex: Sex, age: u8) -> u64 {
        let truth = self.pop.count(p.index, self.month, sex, age);
        if self.nhais && truth > 0 && age.is_multiple_of(10) {
            truth + 1
        } else {
            truth
        }
    }

    fn total(&self, p: &Practice, sex: Option<Sex>) -> u64 {
        let sexes: Vec<Sex> = sex.map(|s| vec![s]).unwrap_or(SEXES.to_vec());
        sexes
            .iter()
            .flat_map(|&s| AGES.map(move |a| (s, a)))
            .map(|(s, a)| self.get(p, s, a))
            .sum()
    }
}

fn build(pop: &Population, month: Ym, variant: Variant) -> Option<SynthRelease> {
    if !has_release(month) {
        return None;
    }
    let published = NaiveDate::from_ymd_opt(month.0, month.1, 10).expect("valid date");
    let practices = pop.practices(month);
    let counts = Counts {
        pop,
        month,
        nhais: false,
    };
    let mut files = if month < (2017, 4) {
        legacy_files(&practices, counts)
    } else {
        long_files(&practices, counts, variant)
    };
    if month == (2024, 4) {
        let nhais = Counts {
            nhais: true,
            ..counts
        };
        for f in &mut files {
            f.link_text.push_str(" (PDS)");
        }
        let mut second = long_files(&practices, nhais, variant);
        for f in &mut second {
            f.link_text.push_str(" (NHAIS)");
        }
        files.extend(second);
    }
    Some(SynthRelease {
        month,
        published,
        files,
    })
}

// ---------------------------------------------------------------------------------------
// 2017-04 onwards: long files

fn long_files(practices: &[Practice], c: Counts, variant: Variant) -> Vec<SynthFile> {
    let m = c.month;
    let mut files = vec![
        file(
            &name(m, "all", zip_from(m, (2026, 1))),
            "Totals (GP practice-all persons)",
            crlf(all_csv(practices, c)),
        ),
        file(
            &name(m, "quin-age", zip_from(m, (2023, 6))),
            "Five-year age groups (all levels)",
            crlf(quinary_csv(practices, c)),
        ),
    ];
    for sex in [Sex::Male, Sex::Female] {
        let family = format!("sing-age-{}", sex.label().to_lowercase());
        let csv = crlf(single_age_csv(practices, c, sex, variant));
        files.push(file(
            &name(m, &family, zip_from(m, (2024, 1))),
            "Single year of age (GP practice)",
            csv,
        ));
    }
    if m >= (2019, 5) {
        files.push(file(
            &name(m, "sing-age-regions", zip_from(m, (2024, 1))),
            "Single year of age (commissioning regions, ICB, sub-ICB)",
            crlf(regions_csv(practices, c)),
        ));
        let map_name = match m {
            (2020, 4) => "gp-reg-pat-prac-map_v2".to_string(),
            (2026, 5) => "gp-reg-pat-prac-map_V2".to_string(),
            _ => "gp-reg-pat-prac-map".to_string(),
        };
        let map = map_csv(practices, m);
        let map = if m >= (2023, 1) { crlf(map) } else { map };
        let map_name = format!(
            "{map_name}.{}",
            if zip_from(m, (2025, 8)) { "zip" } else { "csv" }
        );
        files.push(file(
            &map_name,
            "Mapping (GP practice to PCN, sub-ICB, ICB, region)",
            map,
        ));
    }
    if m.1 % 3 == 1 {
        files.extend(lsoa_files(practices, c));
    }
    files.into_iter().map(zip_if_named).collect()
}

/// Published name of a family in month `m`: month-suffixed 2017-04 → 2019-04, plain after.
fn name(m: Ym, family: &str, zipped: bool) -> String {
    let ext = if zipped { "zip" } else { "csv" };
    if m <= (2019, 4) {
        format!(
            "gp-reg-pat-prac-{family}-{}-{:02}.{ext}",
            &month_name(m.1)[..3],
            m.0 % 100
        )
    } else {
        format!("gp-reg-pat-prac-{family}.{ext}")
    }
}

fn zip_from(m: Ym, from: Ym) -> bool {
    m >= from
}

/// The commissioner columns of the era: CCG, the transitional SUB_ICB_LOC, SUB_ICB_LOCATION.
fn commissioner(m: Ym) -> (&'static str, &'static str) {
    match m {
        m if m < (2022, 7) => ("CCG_CODE", "ONS_CCG_CODE"),
        m if m < (2023, 1) => ("SUB_ICB_LOC_CODE", "ONS_SUB_ICB_LOC_CODE"),
        _ => ("SUB_ICB_LOCATION_CODE", "ONS_SUB_ICB_LOCATION_CODE"),
    }
}

/// EXTRACT_DATE as spelled in month `m` (maps have their own spelling).
pub fn extract_date(m: Ym, map: bool) -> String {
    let mon = &month_name(m.1)[..3];
    match () {
        _ if map => format!("01{}{}{}", mon[..1].to_uppercase(), &mon[1..], m.0),
        _ if m == (2017, 4) => format!(
            "01-{}{}-{:02}",
            mon[..1].to_uppercase(),
            &mon[1..],
            m.0 % 100
        ),
        _ if m >= (2026, 1) => format!("{}-{:02}-01", m.0, m.1),
        _ => format!("01{}{}", mon.to_uppercase(), m.0),
    }
}

fn zeros_written(m: Ym) -> bool {
    m < (2024, 4)
}

fn all_csv(practices: &[Practice], c: Counts) -> String {
    let (cc, ons) = commissioner(c.month);
    let mut out = format!(
        "PUBLICATION,EXTRACT_DATE,TYPE,{cc},{ons},CODE,POSTCODE,SEX,AGE,NUMBER_OF_PATIENTS\n"
    );
    let date = extract_date(c.month, false);
    let mut sorted: Vec<&Practice> = practices.iter().collect();
    sorted.sort_by(|a, b| (&a.sub_icb_code, &a.code).cmp(&(&b.sub_icb_code, &b.code)));
    for p in sorted {
        let total = c.total(p, None);
        if total > 0 {
            row(
                &mut out,
                &[
                    "GP_PRAC_PAT_LIST",
                    &date,
                    "GP",
                    &p.sub_icb_code,
                    &p.sub_icb_ons,
                    &p.code,
                    &p.postcode,
                    "ALL",
                    "ALL",
                    &total.to_string(),
                ],
            );
        }
    }
    out
}

fn single_age_csv(practices: &[Practice], c: Counts, sex: Sex, variant: Variant) -> String {
    let (cc, ons) = commissioner(c.month);
    let date = extract_date(c.month, false);
    let april_2017 = c.month == (2017, 4);
    let mut out = if april_2017 {
        "PUBLICATION,EXTRACT_DATE,ORG_TYPE,ORG_CODE,POSTCODE,SEX,AGE,NUMBER_OF_PATIENTS\n"
            .to_string()
    } else {
        format!("EXTRACT_DATE,{cc},{ons},ORG_CODE,POSTCODE,SEX,AGE,NUMBER_OF_PATIENTS\n")
    };
    for p in practices {
        let mut ages: Vec<(String, u64)> = vec![("ALL".into(), c.total(p, Some(sex)))];
        ages.extend(AGES.map(|a| (age_label(a), c.get(p, sex, a))));
        if variant == Variant::Duplicated95 {
            ages.push(("95+".into(), c.get(p, sex, 95)));
        }
        for (age, n) in ages {
            if n == 0 && !zeros_written(c.month) {
                continue;
            }
            let n = n.to_string();
            if april_2017 {
                row(
                    &mut out,
                    &[
                        "GP_PRAC_PAT_LIST",
                        &date,
                        "GP",
                        &p.code,
                        &p.postcode,
                        sex.label(),
                        &age,
                        &n,
                    ],
                );
            } else {
                row(
                    &mut out,
                    &[
                        &date,
                        &p.sub_icb_code,
                        &p.sub_icb_ons,
                        &p.code,
                        &p.postcode,
                        sex.label(),
                        &age,
                        &n,
                    ],
                );
            }
        }
    }
    out
}

fn age_label(age: u8) -> String {
    if age == 95 {
        "95+".into()
    } else {
        age.to_string()
    }
}

/// 5-year bands `0_4` … `90_94`, `95+`, each with the single ages it covers.
fn bands() -> Vec<(String, std::ops::RangeInclusive<u8>)> {
    let mut bands: Vec<_> = (0..19u8)
        .map(|b| (format!("{}_{}", b * 5, b * 5 + 4), b * 5..=b * 5 + 4))
        .collect();
    bands.push(("95+".into(), 95..=95));
    bands
}

/// An organisation level above practices, as labelled in `ORG_TYPE` of the month.
struct OrgLevel {
    label: &'static str,
    key: fn(&Practice) -> (String, String),
}

fn org_levels(m: Ym, with_pcn: bool) -> Vec<OrgLevel> {
    let sub_label = match m {
        m if m < (2022, 7) => "CCG",
        m if m < (2024, 1) => "SUB_ICB_LOCATION",
        _ => "SUB_ICB_LOCATION_CODE",
    };
    let mut levels = vec![OrgLevel {
        label: "Comm Region",
        key: |p| (p.region_code.clone(), p.region_ons.clone()),
    }];
    if m >= (2022, 7) {
        levels.push(OrgLevel {
            label: "ICB",
            key: |p| (p.icb_code.clone(), p.icb_ons.clone()),
        });
    }
    levels.push(OrgLevel {
        label: sub_label,
        key: |p| (p.sub_icb_code.clone(), p.sub_icb_ons.clone()),
    });
    if with_pcn && m >= (2026, 1) {
        levels.push(OrgLevel {
            label: "PCN",
            key: |p| (p.pcn_code.clone(), String::new()),
        });
    }
    levels
}

/// Sums of `value(practice)` per organisation of a level, in code order.
fn by_org<'a>(
    practices: &'a [Practice],
    level: &OrgLevel,
) -> Vec<((String, String), Vec<&'a Practice>)> {
    let mut groups: std::collections::BTreeMap<(String, String), Vec<&Practice>> =
        Default::default();
    for p in practices {
        groups.entry((level.key)(p)).or_default().push(p);
    }
    groups.into_iter().collect()
}

fn quinary_csv(practices: &[Practice], c: Counts) -> String {
    let mut out = "PUBLICATION,EXTRACT_DATE,ORG_TYPE,ORG_CODE,ONS_CODE,POSTCODE,SEX,AGE_GROUP_5,NUMBER_OF_PATIENTS\n".to_string();
    let date = extract_date(c.month, false);
    let bands = bands();
    let write_org = |out: &mut String,
                     org_type: &str,
                     code: &str,
                     ons: &str,
                     postcode: &str,
                     members: &[&Practice]| {
        let sum = |sex: Sex, ages: &std::ops::RangeInclusive<u8>| -> u64 {
            members
                .iter()
                .flat_map(|p| ages.clone().map(move |a| (p, a)))
                .map(|(p, a)| c.get(p, sex, a))
                .sum()
        };
        let all: u64 = SEXES.iter().map(|&s| sum(s, &AGES)).sum();
        let mut line = |sex: &str, band: &str, n: u64| {
            if n > 0 || zeros_written(c.month) {
                row(
                    out,
                    &[
                        "GP_PRAC_PAT_LIST",
                        &date,
                        org_type,
                        code,
                        ons,
                        postcode,
                        sex,
                        band,
                        &n.to_string(),
                    ],
                );
            }
        };
        line("ALL", "ALL", all);
        for sex in SEXES {
            for (band, ages) in &bands {
                line(sex.label(), band, sum(sex, ages));
            }
            line(sex.label(), "ALL", sum(sex, &AGES));
        }
    };
    for p in practices {
        write_org(&mut out, "GP", &p.code, "", &p.postcode, &[p]);
    }
    for level in org_levels(c.month, true) {
        for ((code, ons), members) in by_org(practices, &level) {
            write_org(&mut out, level.label, &code, &ons, "", &members);
        }
    }
    out
}

fn regions_csv(practices: &[Practice], c: Counts) -> String {
    let mut out =
        "PUBLICATION,EXTRACT_DATE,ORG_TYPE,ORG_CODE,ONS_CODE,SEX,AGE,NUMBER_OF_PATIENTS\n"
            .to_string();
    let date = extract_date(c.month, false);
    for level in org_levels(c.month, true) {
        for ((code, ons), members) in by_org(practices, &level) {
            let sum = |sex: Sex, age: Option<u8>| -> u64 {
                members
                    .iter()
                    .map(|p| {
                        age.map(|a| c.get(p, sex, a))
                            .unwrap_or_else(|| c.total(p, Some(sex)))
                    })
                    .sum()
            };
            let mut line = |sex: &str, age: &str, n: u64| {
                if n > 0 || zeros_written(c.month) {
                    row(
                        &mut out,
                        &[
                            "GP_PRAC_PAT_LIST",
                            &date,
                            level.label,
                            &code,
                            &ons,
                            sex,
                            age,
                            &n.to_string(),
                        ],
                    );
                }
            };
            line("ALL", "ALL", sum(Sex::Male, None) + sum(Sex::Female, None));
            for sex in SEXES {
                for age in AGES {
                    line(sex.label(), &age_label(age), sum(sex, Some(age)));
                }
                line(sex.label(), "ALL", sum(sex, None));
            }
        }
    }
    out
}

fn map_csv(practices: &[Practice], m: Ym) -> String {
    let (sub, icb) = if m < (2022, 7) {
        ("CCG", "STP")
    } else {
        ("SUB_ICB_LOCATION", "ICB")
    };
    let supplier = m >= (2026, 1);
    let mut out = format!(
        "PUBLICATION,EXTRACT_DATE,PRACTICE_CODE,PRACTICE_NAME,PRACTICE_POSTCODE,PCN_CODE,PCN_NAME,ONS_{sub}_CODE,{sub}_CODE,{sub}_NAME,ONS_{icb}_CODE,{icb}_CODE,{icb}_NAME,ONS_COMM_REGION_CODE,COMM_REGION_CODE,COMM_REGION_NAME{}\n",
        if supplier { ",SUPPLIER_NAME" } else { "" }
    );
    let date = extract_date(m, true);
    for p in practices {
        let mut fields = vec![
            "GP_PRAC_PAT_LIST",
            &date,
            &p.code,
            &p.name,
            &p.postcode,
            &p.pcn_code,
            &p.pcn_name,
            &p.sub_icb_ons,
            &p.sub_icb_code,
            &p.sub_icb_name,
            &p.icb_ons,
            &p.icb_code,
            &p.icb_name,
            &p.region_ons,
            &p.region_code,
            &p.region_name,
        ];
        if supplier {
            fields.push(&p.supplier);
        }
        row(&mut out, &fields);
    }
    out
}

// ---------------------------------------------------------------------------------------
// LSOA (quarterly)

/// The LSOA ZIP(s) of a quarter month: one vintage, or both from July 2024 to July 2025.
fn lsoa_files(practices: &[Practice], c: Counts) -> Vec<SynthFile> {
    let m = c.month;
    let token = lsoa_token(m);
    let names: Vec<(String, u16)> =
        if m == (2017, 4) || (m.0 == 2018) || (m >= (2017, 7) && m.0 == 2017) {
            vec![("gp-reg-pat-prac-lsoa-all-females-males.zip".into(), 2011)]
        } else if ((2024, 7)..=(2025, 7)).contains(&m) {
            [2021u16, 2011]
                .iter()
                .map(|v| {
                    (
                        format!("gp-reg-pat-prac-lsoa-{v}-male-female-{token}.zip"),
                        *v,
                    )
                })
                .collect()
        } else {
            vec![(
                format!("gp-reg-pat-prac-lsoa-male-female-{token}.zip"),
                if m >= (2025, 10) { 2021 } else { 2011 },
            )]
        };
    names
        .into_iter()
        .map(|(name, vintage)| {
            let members = [None, Some(Sex::Male), Some(Sex::Female)]
                .iter()
                .map(|sex| {
                    let member = format!(
                        "gp-reg-pat-prac-lsoa-{}.csv",
                        sex.map(|s| s.label().to_lowercase())
                            .unwrap_or("all".into())
                    );
                    (
                        member,
                        crlf(lsoa_csv(practices, c, *sex, vintage)).into_bytes(),
                    )
                })
                .collect::<Vec<_>>();
            SynthFile {
                name,
                bytes: zip_members(&members),
                link_text: format!("LSOA ({vintage})"),
            }
        })
        .collect()
}

/// The month token of LSOA names, as inconsistent as the publisher's (nhs-formats §1.3).
fn lsoa_token(m: Ym) -> String {
    let full = month_name(m.1);
    let title3 = format!("{}{}", full[..1].to_uppercase(), &full[1..3]);
    let title_full = format!("{}{}", full[..1].to_uppercase(), &full[1..]);
    match m {
        (2019, _) => format!("{}-19", &full[..3]),
        (2021, 10) => format!("{full}-21"),
        (2022, 4) => format!("{title_full}-22"),
        (2022, 7) => format!("{title_full}-2022"),
        (2022, 10) => "oct-22.".into(),
        (_, 7) if m.0 >= 2023 => format!("{title_full}-{:02}", m.0 % 100),
        _ => format!("{title3}-{:02}", m.0 % 100),
    }
}

/// A practice's patients by LSOA: three LSOAs each, plus `NO2011` (2022–24) or `CLOSED` (2025+).
fn lsoa_split(p: &Practice, total: u64, m: Ym, vintage: u16) -> Vec<(String, u64)> {
    let special = match m {
        m if m >= (2025, 1) => Some("CLOSED"),
        m if m >= (2022, 1) && vintage == 2011 => Some("NO2011"),
        _ => None,
    };
    let base = if vintage == 2021 { 30_000 } else { 10_000 } + p.index * 3;
    let first = total / 2;
    let second = total / 3;
    let extra = if special.is_some() {
        (total - first - second).min(2)
    } else {
        0
    };
    let third = total - first - second - extra;
    let mut parts = vec![
        (format!("E01{base:06}"), first),
        (format!("E01{:06}", base + 1), second),
        (format!("W01{:06}", base + 2), third),
    ];
    if let Some(code) = special {
        parts.push((code.to_string(), extra));
    }
    parts.retain(|(_, n)| *n > 0);
    parts
}

fn lsoa_csv(practices: &[Practice], c: Counts, sex: Option<Sex>, vintage: u16) -> String {
    let m = c.month;
    let count_col = if m < (2022, 1) {
        "Number of Patients"
    } else {
        "NUMBER_OF_PATIENTS"
    };
    let date = if m == (2021, 1) {
        "04JAN2021".to_string()
    } else {
        extract_date(m, false)
    };
    let mut out = if m == (2017, 4) {
        "EXTRACT_DATE,PRACTICE_CODE,PRACTICE_NAME,LSOA_CODE,SEX,NUMBER_OF_PATIENTS\n".to_string()
    } else {
        format!("PUBLICATION,EXTRACT_DATE,PRACTICE_CODE,PRACTICE_NAME,LSOA_CODE,SEX,{count_col}\n")
    };
    for p in practices {
        let sexes: Vec<Sex> = sex.map(|s| vec![s]).unwrap_or(SEXES.to_vec());
        let label = sex.map(Sex::label).unwrap_or("ALL");
        let total: u64 = sexes.iter().map(|&s| c.total(p, Some(s))).sum();
        for (lsoa, n) in lsoa_split(p, total, m, vintage) {
            let n = n.to_string();
            if m == (2017, 4) {
                row(&mut out, &[&date, &p.code, &p.name, &lsoa, label, &n]);
            } else {
                row(
                    &mut out,
                    &[
                        "GP_PRAC_PAT_LIST",
                        &date,
                        &p.code,
                        &p.name,
                        &lsoa,
                        label,
                        &n,
                    ],
                );
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Before April 2017: quarterly wide files

fn legacy_files(practices: &[Practice], c: Counts) -> Vec<SynthFile> {
    let m = c.month;
    // Practices with 100 or fewer patients were suppressed in this era (nhs-formats §1.4).
    let shown: Vec<Practice> = practices
        .iter()
        .filter(|p| c.total(p, None) > 100)
        .cloned()
        .collect();
    let mut files = vec![file(
        &format!("gp-reg-patients-{:02}-{}.csv", m.1, m.0),
        "GP practice, five-year age groups",
        legacy_quinary_csv(&shown, c),
    )];
    if m >= (2014, 10) {
        files.push(file(
            "gp-reg-patients-prac-sing-year-age.csv",
            "GP practice, single year of age",
            legacy_single_csv(&shown, c),
        ));
    }
    if m >= (2014, 1) {
        files.push(file(
            "gp-reg-patients-lsoa-alt-tall.csv",
            "LSOA (tall)",
            legacy_lsoa_csv(&shown, c),
        ));
    }
    files
}

fn legacy_quinary_csv(practices: &[Practice], c: Counts) -> String {
    let bands = bands();
    let mut header = "GP_PRACTICE_CODE,POSTCODE,CCG_CODE,NHSE_AREA_TEAM_CODE,NHSE_REGION_CODE,TOTAL_ALL,TOTAL_MALE,TOTAL_FEMALE".to_string();
    for sex in ["MALE", "FEMALE"] {
        for (band, _) in &bands {
            header.push_str(&format!(",{sex}_{}", band.replace('_', "-")));
        }
    }
    let mut out = header + "\n";
    for p in practices {
        let mut fields = vec![
            p.code.clone(),
            p.postcode.clone(),
            p.sub_icb_code.clone(),
            format!("Q{:02}", p.index % 30),
            p.region_code.clone(),
        ];
        fields
            .extend([None, Some(Sex::Male), Some(Sex::Female)].map(|s| c.total(p, s).to_string()));
        for sex in [Sex::Male, Sex::Female] {
            for (_, ages) in &bands {
                fields.push(
                    ages.clone()
                        .map(|a| c.get(p, sex, a))
                        .sum::<u64>()
                        .to_string(),
                );
            }
        }
        row(
            &mut out,
            &fields.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    out
}

fn legacy_single_csv(practices: &[Practice], c: Counts) -> String {
    let mut header = "practice_code,postcode,ccg_code,ons_ccg_code,nhse_region_code,ons_region_code,nhse_comm_region_code,ons_comm_region_code,total_all,total_male,total_female".to_string();
    for sex in ["male", "female"] {
        for age in AGES {
            header.push_str(&if age == 95 {
                format!(",{sex}_95+")
            } else {
                format!(",{sex}_{age}_{}", age + 1)
            });
        }
    }
    let mut out = header + "\n";
    for p in practices {
        let mut fields = vec![
            p.code.clone(),
            p.postcode.clone(),
            p.sub_icb_code.clone(),
            p.sub_icb_ons.clone(),
            format!("Q{:02}", p.index % 30),
            "E39000001".into(),
            p.region_code.clone(),
            p.region_ons.clone(),
        ];
        fields
            .extend([None, Some(Sex::Male), Some(Sex::Female)].map(|s| c.total(p, s).to_string()));
        for sex in [Sex::Male, Sex::Female] {
            fields.extend(AGES.map(|a| c.get(p, sex, a).to_string()));
        }
        row(
            &mut out,
            &fields.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    out
}

fn legacy_lsoa_csv(practices: &[Practice], c: Counts) -> String {
    let mut out =
        "PRACTICE_CODE,ORG_NAME,LSOA_CODE,Male Patients,Female Patients,All Patients\n".to_string();
    for p in practices {
        let male = lsoa_split(p, c.total(p, Some(Sex::Male)), c.month, 2011);
        let female = lsoa_split(p, c.total(p, Some(Sex::Female)), c.month, 2011);
        let mut lsoas: Vec<String> = male.iter().chain(&female).map(|(l, _)| l.clone()).collect();
        lsoas.sort();
        lsoas.dedup();
        for lsoa in lsoas {
            let get = |v: &[(String, u64)]| {
                v.iter()
                    .find(|(l, _)| *l == lsoa)
                    .map(|(_, n)| *n)
                    .unwrap_or(0)
            };
            let (m, f) = (get(&male), get(&female));
            row(
                &mut out,
                &[
                    &p.code,
                    &p.name,
                    &lsoa,
                    &m.to_string(),
                    &f.to_string(),
                    &(m + f).to_string(),
                ],
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Text and containers

fn file(name: &str, link_text: &str, csv: String) -> SynthFile {
    SynthFile {
        name: name.into(),
        bytes: csv.into_bytes(),
        link_text: link_text.into(),
    }
}

/// A `.zip` name holds a ZIP of one CSV with the same stem (nhs-formats §1.1).
fn zip_if_named(f: SynthFile) -> SynthFile {
    if !f.name.ends_with(".zip") || f.bytes.starts_with(b"PK") {
        return f;
    }
    let stem = f.name.trim_end_matches(".zip").trim_end_matches('.');
    let stem = stem
        .strip_suffix("_V2")
        .or_else(|| stem.strip_suffix("_v2"))
        .unwrap_or(stem);
    SynthFile {
        bytes: zip_members(&[(format!("{stem}.csv"), f.bytes)]),
        ..f
    }
}

/// A ZIP of the given members, deflated.
pub fn zip_members(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in members {
        writer
            .start_file(name.as_str(), options)
            .expect("zip entry");
        writer.write_all(bytes).expect("zip write");
    }
    writer.finish().expect("zip finish").into_inner()
}

/// Appends one CSV row, quoting only fields that need it (minimal RFC 4180).
fn row(out: &mut String, fields: &[&str]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\n']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push('\n');
}

fn crlf(text: String) -> String {
    text.replace('\n', "\r\n")
}

fn month_name(month: u32) -> &'static str {
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ][month as usize - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(month: Ym) -> Vec<String> {
        release(&Population::new(1, 8), month)
            .unwrap()
            .files
            .into_iter()
            .map(|f| f.name)
            .collect()
    }

    #[test]
    fn names_follow_the_eras() {
        assert_eq!(
            names((2016, 1)),
            [
                "gp-reg-patients-01-2016.csv",
                "gp-reg-patients-prac-sing-year-age.csv",
                "gp-reg-patients-lsoa-alt-tall.csv"
            ]
        );
        assert!(names((2018, 3)).contains(&"gp-reg-pat-prac-quin-age-mar-18.csv".to_string()));
        assert!(
            names((2022, 10)).contains(&"gp-reg-pat-prac-lsoa-male-female-oct-22..zip".to_string())
        );
        assert!(names((2026, 4)).contains(&"gp-reg-pat-prac-all.zip".to_string()));
        assert!(names((2026, 5)).contains(&"gp-reg-pat-prac-map_V2.zip".to_string()));
        assert_eq!(
            names((2024, 4))
                .iter()
                .filter(|n| *n == "gp-reg-pat-prac-all.csv")
                .count(),
            2
        );
        assert!(release(&Population::new(1, 8), (2017, 2)).is_none());
    }

    #[test]
    fn dates_and_headers() {
        assert_eq!(extract_date((2017, 4), false), "01-Apr-17");
        assert_eq!(extract_date((2021, 1), false), "01JAN2021");
        assert_eq!(extract_date((2022, 1), true), "01Jan2022");
        assert_eq!(extract_date((2026, 8), false), "2026-08-01");
        let r = release(&Population::new(1, 8), (2022, 9)).unwrap();
        let all = String::from_utf8(r.files[0].bytes.clone()).unwrap();
        assert!(
            all.starts_with(
                "PUBLICATION,EXTRACT_DATE,TYPE,SUB_ICB_LOC_CODE,ONS_SUB_ICB_LOC_CODE,CODE"
            ),
            "{all}"
        );
        assert!(all.contains("\r\n"));
    }

    #[test]
    fn defect_duplicates_95_plus() {
        let pop = Population::new(1, 8);
        let good = release(&pop, (2024, 5)).unwrap();
        let bad = release_with_duplicated_95(&pop, (2024, 5)).unwrap();
        let male = |r: &SynthRelease| {
            r.files
                .iter()
                .find(|f| f.name.contains("sing-age-male"))
                .unwrap()
                .bytes
                .clone()
        };
        assert_ne!(male(&good), male(&bad));
    }
}
