//! The month rules, evaluated on the aggregates a build gathered (no file is read again).

use std::collections::BTreeMap;

use super::evidence::{AgeAgg, Aggregates};
use super::{QualityResult, Rule, Severity};
use crate::catalog::{FACT_LSOA, FACT_ORG_QUINARY, FACT_ORG_SINGLE_AGE};
use crate::formats::{Family, OrgLevel, SexKey};
use crate::month::Month;

/// Failures listed per rule before the rest are summarised.
const MAX_LISTED: usize = 20;
/// Practices below this are flagged (a warning).
const SMALL_PRACTICE: u64 = 100;
/// National totals outside this band are flagged once a month has real scale.
const NATIONAL_BAND: (u64, u64) = (50_000_000, 70_000_000);

/// Every month rule over `agg`.
pub(crate) fn month_rules(agg: &Aggregates, month: Month) -> Vec<QualityResult> {
    let mut out = Vec::new();
    out.extend(accounting(agg, month));
    for (name, a) in [("5-year", &agg.quinary), ("single-age", &agg.single)] {
        if a.present {
            out.extend(unique_keys(a, month, name));
            out.extend(leaves_sum_to_all(a, month, name));
            out.extend(male_plus_female(a, month, name));
        }
    }
    for (name, a, table) in [
        ("5-year", &agg.org_quinary, FACT_ORG_QUINARY.name),
        ("single-age", &agg.org_single, FACT_ORG_SINGLE_AGE.name),
    ] {
        if a.present && a.all_row_count() > 0 {
            let own = unique_keys(a, month, name)
                .into_iter()
                .chain(leaves_sum_to_all(a, month, name))
                .chain(male_plus_female(a, month, name));
            out.extend(own.map(|r| r.for_table(table)));
        }
    }
    out.extend(lsoa_unique(agg, month));
    out.extend(practices_unique(agg, month));
    out.extend(practice_totals(agg, month));
    out.extend(single_age_matches_quinary(agg, month));
    out.extend(org_totals(agg, month));
    out.extend(national_total(agg, month));
    out.extend(practices_in_map(agg, month));
    out.extend(lsoa_matches_practices(agg, month));
    out.extend(plausibility(agg, month));
    out.extend(unread_columns(agg, month));
    out.extend(text_encoding(agg, month));
    out
}

/// Files with text that was not UTF-8, once each: read as Windows-1252 (a note, since a
/// name could read differently from the publisher's intent).
fn text_encoding(agg: &Aggregates, month: Month) -> Vec<QualityResult> {
    agg.file_stats
        .iter()
        .filter_map(|(file, _, stats)| Some((file, stats.encoding.as_ref()?)))
        .map(|(file, note)| {
            QualityResult::fail(
                Some(month),
                Rule::TextEncoding,
                Severity::Warning,
                file,
                None,
                note.clone(),
            )
        })
        .collect()
}

/// Columns a file has that gplake does not know: set aside, never blocking (they cannot
/// change a figure gplake publishes; a required column that is missing blocks elsewhere).
fn unread_columns(agg: &Aggregates, month: Month) -> Vec<QualityResult> {
    agg.file_stats
        .iter()
        .flat_map(|(file, _, stats)| stats.warnings.iter().map(move |w| (file, w)))
        .map(|(file, warning)| {
            QualityResult::fail(
                Some(month),
                Rule::UnknownColumn,
                Severity::Warning,
                file,
                None,
                warning.clone(),
            )
        })
        .collect()
}

/// A hard rule that this release's files cannot support, recorded as skipped.
fn not_applicable(month: Month, rule: Rule, why: &str) -> Vec<QualityResult> {
    vec![QualityResult::skip(
        Some(month),
        rule,
        Severity::Error,
        format!("skipped: {why}"),
    )]
}

/// Collapses many failures of one rule into at most `MAX_LISTED` plus a summary, or a pass.
fn verdict(
    month: Month,
    rule: Rule,
    severity: Severity,
    mut fails: Vec<QualityResult>,
    checked: String,
) -> Vec<QualityResult> {
    if fails.is_empty() {
        return vec![QualityResult::pass(Some(month), rule, severity, checked)];
    }
    let more = fails.len().saturating_sub(MAX_LISTED);
    fails.truncate(MAX_LISTED);
    if more > 0 {
        fails.push(QualityResult::fail(
            Some(month),
            rule,
            severity,
            "…",
            None,
            format!("{more} more failures of {rule} not listed"),
        ));
    }
    fails
}

fn accounting(agg: &Aggregates, month: Month) -> Vec<QualityResult> {
    let mut fails = Vec::new();
    for (file, _, s) in &agg.file_stats {
        for q in s.quarantined.iter().take(3) {
            fails.push(QualityResult::fail(
                Some(month),
                Rule::RowsReadable,
                Severity::Error,
                file,
                None,
                format!(
                    "{file} line {}: {} (row quarantined: {})",
                    q.line, q.reason, q.raw
                ),
            ));
        }
        if !s.balances() {
            fails.push(QualityResult::fail(
                Some(month),
                Rule::RowsReadable,
                Severity::Error,
                file,
                Some((
                    s.rows_read,
                    s.rows_leaf + s.rows_zero + s.rows_subtotal + s.rows_quarantined,
                )),
                format!("{file}: rows read do not add up"),
            ));
        }
    }
    let files = agg.file_stats.len();
    verdict(
        month,
        Rule::RowsReadable,
        Severity::Error,
        fails,
        format!("every row of {files} files read and accounted for"),
    )
}

fn unique_keys(a: &AgeAgg, month: Month, name: &str) -> Vec<QualityResult> {
    let fails = a
        .duplicates
        .iter()
        .map(|(file, code, sex, age, first, line)| {
            let message = format!(
                "{file} line {line}: {} {code} {} age {age} appears more than once (first at line {first})",
                a.noun(),
                sex.label()
            );
            QualityResult::fail(
                Some(month),
                Rule::UniqueKeys,
                Severity::Error,
                code,
                None,
                message,
            )
        })
        .collect();
    verdict(
        month,
        Rule::UniqueKeys,
        Severity::Error,
        fails,
        format!("{name} rows unique per {} × sex × age", a.noun()),
    )
}

fn leaves_sum_to_all(a: &AgeAgg, month: Month, name: &str) -> Vec<QualityResult> {
    let mut fails = Vec::new();
    let rows = a
        .all_rows()
        .filter(|&(code, sex, _)| sex != SexKey::All && !a.is_masked(code, sex));
    for (code, sex, published) in rows {
        let sum = a.leaf_sum(code, sex).unwrap_or(0);
        if sum != published {
            fails.push(QualityResult::fail(
                Some(month),
                Rule::BandsSumToAll,
                Severity::Error,
                code,
                Some((published, sum)),
                format!(
                    "{name} {} {code} {}: ages sum to {sum}, the ALL row says {published}",
                    a.noun(),
                    sex.label()
                ),
            ));
        }
    }
    verdict(
        month,
        Rule::BandsSumToAll,
        Severity::Error,
        fails,
        format!(
            "{name}: Σ ages = ALL row for {} {} × sex{}",
            a.all_row_count(),
            a.noun(),
            match a.masked_cells() {
                (0, _) => String::new(),
                (n, cells) => format!("; {n} not verifiable ({cells} suppressed cells)"),
            }
        ),
    )
}

fn male_plus_female(a: &AgeAgg, month: Month, name: &str) -> Vec<QualityResult> {
    let mut fails = Vec::new();
    for (code, _, persons) in a.all_rows().filter(|&(_, sex, _)| sex == SexKey::All) {
        let get = |sex| a.all_row(code, sex);
        if let (Some(m), Some(f)) = (get(SexKey::Male), get(SexKey::Female))
            && m + f != persons
        {
            fails.push(QualityResult::fail(
                Some(month),
                Rule::MalePlusFemaleIsAll,
                Severity::Error,
                code,
                Some((persons, m + f)),
                format!(
                    "{name} {} {code}: MALE {m} + FEMALE {f} ≠ ALL {persons}",
                    a.noun()
                ),
            ));
        }
    }
    verdict(
        month,
        Rule::MalePlusFemaleIsAll,
        Severity::Error,
        fails,
        format!("{name} {}: MALE + FEMALE = ALL", a.noun()),
    )
}

/// A repeated LSOA key: which of its rows is right is unknown. Only the LSOA file says it,
/// so only the LSOA table's month is kept out; every other table is proved apart.
fn lsoa_unique(agg: &Aggregates, month: Month) -> Vec<QualityResult> {
    let results = repeated(
        month,
        agg.lsoa_dups.iter().map(|(code, lsoa, first, line)| {
            let message = format!(
                "LSOA line {line}: practice {code} LSOA {lsoa} appears more than once (first at line {first})"
            );
            (code.as_str(), message)
        }),
    );
    results
        .into_iter()
        .map(|r| r.for_table(FACT_LSOA.name))
        .collect()
}

/// A practice listed twice in the map or the totals file: which row is right is unknown.
fn practices_unique(agg: &Aggregates, month: Month) -> Vec<QualityResult> {
    repeated(
        month,
        agg.practice_dups.iter().map(|(file, code, first, line)| {
            let message = format!(
                "{file} line {line}: practice {code} appears more than once (first at line {first})"
            );
            (code.as_str(), message)
        }),
    )
}

/// `unique_keys` failures, one per repeated key `(subject, message)`; nothing when none.
fn repeated<'a>(month: Month, keys: impl Iterator<Item = (&'a str, String)>) -> Vec<QualityResult> {
    let fails: Vec<QualityResult> = keys
        .map(|(subject, message)| {
            QualityResult::fail(
                Some(month),
                Rule::UniqueKeys,
                Severity::Error,
                subject,
                None,
                message,
            )
        })
        .collect();
    if fails.is_empty() {
        return fails;
    }
    verdict(
        month,
        Rule::UniqueKeys,
        Severity::Error,
        fails,
        String::new(),
    )
}

/// Σ practice leaf rows (5-year and single-age) = the practice totals file.
fn practice_totals(agg: &Aggregates, month: Month) -> Vec<QualityResult> {
    if !agg.has_totals {
        return not_applicable(
            month,
            Rule::PracticeTotalsMatch,
            "the release has no practice totals file",
        );
    }
    if !agg.quinary.present && !agg.single.present {
        let why = "the release has no age files to compare with its practice totals";
        return not_applicable(month, Rule::PracticeTotalsMatch, why);
    }
    let mut fails = Vec::new();
    for (name, a) in [("5-year", &agg.quinary), ("single-age", &agg.single)]
        .iter()
        .filter(|(_, a)| a.present)
    {
        let mut codes = a.practices();
        codes.extend(agg.totals.keys().cloned());
        codes.sort();
        codes.dedup();
        for code in codes {
            let published = agg.totals.get(&code).map(|t| t.0).unwrap_or(0);
            let sum = a.practice_total(&code);
            if sum != published {
                fails.push(QualityResult::fail(Some(month), Rule::PracticeTotalsMatch, Severity::Error, &code, Some((published, sum)), format!("practice {code}: {name} rows sum to {sum}, the practice totals file says {published}")));
            }
        }
    }
    verdict(
        month,
        Rule::PracticeTotalsMatch,
        Severity::Error,
        fails,
        format!(
            "Σ age rows = practice totals for {} practices",
            agg.totals.len()
        ),
    )
}

/// Single years summed into 5-year bands = the quinary file, per practice × sex × band,
/// wherever both families are in the release (they are two views of one extract).
fn single_age_matches_quinary(agg: &Aggregates, month: Month) -> Vec<QualityResult> {
    let rule = Rule::SingleAgeMatchesQuinary;
    if !agg.quinary.present || !agg.single.present {
        return not_applicable(
            month,
            rule,
            "the release does not have both the 5-year and the single-age files",
        );
    }
    // An open top band (`85+`) is compared with the single years it spans.
    let top = agg.quinary.open_band.or(agg.single.open_band);
    let (q, s) = match top {
        None => (agg.quinary.bands(), agg.single.bands()),
        Some(top) => (
            agg.quinary.bands().folded(top),
            agg.single.bands().folded(top),
        ),
    };
    let masked = |code: &str, sex: SexKey| {
        agg.quinary.is_masked(code, sex) || agg.single.is_masked(code, sex)
    };
    // Every practice of either side once, then every key either side read.
    let codes = q
        .iter()
        .chain(s.iter().filter(|(code, _)| q.get(code).is_none()))
        .map(|(code, _)| code);
    let mut compared = 0usize;
    let mut differ = Vec::new();
    for code in codes {
        let (qb, sb) = (
            q.get(code).unwrap_or_default(),
            s.get(code).unwrap_or_default(),
        );
        for (sex, band) in qb.keys_with(&sb).filter(|(sex, _)| !masked(code, *sex)) {
            compared += 1;
            let quinary = qb.get(sex, band).unwrap_or(0);
            let single = sb.get(sex, band).unwrap_or(0);
            if quinary != single {
                differ.push(((code, sex, band), quinary, single));
            }
        }
    }
    differ.sort_unstable();
    let fails = differ
        .into_iter()
        .map(|((code, sex, band), quinary, single)| {
            let label = match top {
                Some(t) if band == t => format!("{}+", t * 5),
                _ => crate::formats::values::band_label(band).to_string(),
            };
            QualityResult::fail(Some(month), rule, Severity::Error, code, Some((quinary, single)), format!("practice {code} {} {label}: single years sum to {single}, the 5-year file says {quinary}", sex.label()))
        })
        .collect();
    verdict(
        month,
        rule,
        Severity::Error,
        fails,
        format!("Σ single years = 5-year band for {compared} practice × sex × band"),
    )
}

/// Σ practices = each published organisation row (sub-ICB, ICB, region, PCN). A mismatch
/// keeps out the organisation table the row came from: the practice figures are checked
/// against their own published totals by the rules above.
fn org_totals(agg: &Aggregates, month: Month) -> Vec<QualityResult> {
    if agg.orgs.is_empty() {
        return not_applicable(
            month,
            Rule::OrgTotalsMatch,
            "the release has no organisation rows",
        );
    }
    if !agg.has_practice_figures() {
        return not_applicable(
            month,
            Rule::OrgTotalsMatch,
            "the release has no practice-level files (no age files, no practice totals) to sum",
        );
    }
    let mut fails = Vec::new();
    let mut checked = 0;
    let mut skipped = Vec::new();
    // Each level's practice sums once, not once per published row.
    let mut by_level: BTreeMap<OrgLevel, Option<BTreeMap<String, u64>>> = BTreeMap::new();
    for ((file, level, code), published) in &agg.orgs {
        let sums = by_level
            .entry(*level)
            .or_insert_with(|| practice_sums_by(agg, *level));
        let Some(sums) = sums else {
            skipped.push(level.label());
            continue;
        };
        checked += 1;
        let sum = sums.get(code).copied().unwrap_or(0);
        if sum != *published {
            let table = org_table(agg, file);
            fails.push(QualityResult::fail(Some(month), Rule::OrgTotalsMatch, Severity::Error, code, Some((*published, sum)), format!("{} {code} in {file}: its practices sum to {sum}, the published row says {published}", level.label())).for_table(table));
        }
    }
    skipped.sort();
    skipped.dedup();
    let note = if skipped.is_empty() {
        String::new()
    } else {
        format!("; not checkable without a map: {}", skipped.join(", "))
    };
    verdict(
        month,
        Rule::OrgTotalsMatch,
        Severity::Error,
        fails,
        format!("Σ practices = {checked} published organisation rows{note}"),
    )
}

/// The organisation table a file's rows go to.
fn org_table(agg: &Aggregates, file: &str) -> &'static str {
    let regions = agg
        .file_stats
        .iter()
        .any(|(f, family, _)| f == file && *family == Family::SingleAgeRegions);
    if regions {
        FACT_ORG_SINGLE_AGE.name
    } else {
        FACT_ORG_QUINARY.name
    }
}

/// Σ practice list sizes per organisation code of `level`, when the month says which
/// practice belongs where.
fn practice_sums_by(agg: &Aggregates, level: OrgLevel) -> Option<BTreeMap<String, u64>> {
    let mut sums = BTreeMap::new();
    for code in agg.practices_with_figures() {
        let attrs = agg.map.get(code);
        let org = match level {
            OrgLevel::SubIcb => attrs
                .and_then(|a| a.sub_icb_code.clone())
                .or_else(|| agg.row_sub_icb.get(code).cloned()),
            OrgLevel::Icb => attrs.and_then(|a| a.icb_code.clone()),
            OrgLevel::Region => attrs.and_then(|a| a.region_code.clone()),
            OrgLevel::Pcn => attrs.and_then(|a| a.pcn_code.clone()),
            OrgLevel::Practice => Some(code.clone()),
        }?;
        let size = agg.list_size(code).map_or(0, |s| s.0);
        *sums.entry(org).or_insert(0) += size;
    }
    Some(sums)
}

/// The published national figure (the regions' ALL rows) beside the sum of the practices.
/// A warning: a difference is already an `org_totals_match` failure at region level.
fn national_total(agg: &Aggregates, month: Month) -> Vec<QualityResult> {
    let Some((published, file)) = agg.published_national() else {
        return vec![QualityResult::skip(
            Some(month),
            Rule::NationalTotal,
            Severity::Warning,
            "skipped: the release publishes no region rows".into(),
        )];
    };
    if !agg.has_practice_figures() {
        let why = format!(
            "skipped: published national total {published} ({file}); the release has no practice-level files to sum"
        );
        return vec![QualityResult::skip(
            Some(month),
            Rule::NationalTotal,
            Severity::Warning,
            why,
        )];
    }
    let practices = agg.national_from_practices();
    let difference = practices as i64 - published as i64;
    let message = format!(
        "national: published {published} (Σ regions in {file}), practices sum to {practices}, difference {difference:+}"
    );
    let result = if difference == 0 {
        QualityResult::pass(Some(month), Rule::NationalTotal, Severity::Warning, message)
    } else {
        QualityResult::fail(
            Some(month),
            Rule::NationalTotal,
            Severity::Warning,
            "England",
            Some((published, practices)),
            message,
        )
    };
    let mut result = result;
    result.expected = Some(published as i64);
    result.actual = Some(practices as i64);
    vec![result]
}

fn practices_in_map(agg: &Aggregates, month: Month) -> Vec<QualityResult> {
    if !agg.has_map {
        return not_applicable(
            month,
            Rule::PracticeInMap,
            "the release has no map file; names and organisations are NULL",
        );
    }
    let mut codes = agg.quinary.practices();
    codes.extend(agg.single.practices());
    codes.sort();
    codes.dedup();
    let fails = codes
        .iter()
        .filter(|c| !agg.map.contains_key(*c))
        .map(|c| {
            QualityResult::fail(
                Some(month),
                Rule::PracticeInMap,
                Severity::Error,
                c,
                None,
                format!("practice {c} has patients but is not in the month's map file"),
            )
        })
        .collect();
    verdict(
        month,
        Rule::PracticeInMap,
        Severity::Error,
        fails,
        format!("all {} practices with patients are in the map", codes.len()),
    )
}

fn plausibility(agg: &Aggregates, month: Month) -> Vec<QualityResult> {
    let practices = agg.practices_with_figures();
    let national = agg.national_from_practices();
    let mut out = Vec::new();
    let band = if practices.len() < 1000 {
        QualityResult::pass(
            Some(month),
            Rule::NationalTotalBand,
            Severity::Warning,
            format!(
                "national total {national} from {} practices (band applies from 1,000 practices)",
                practices.len()
            ),
        )
    } else if (NATIONAL_BAND.0..=NATIONAL_BAND.1).contains(&national) {
        QualityResult::pass(
            Some(month),
            Rule::NationalTotalBand,
            Severity::Warning,
            format!(
                "national total {national} within {}–{}",
                NATIONAL_BAND.0, NATIONAL_BAND.1
            ),
        )
    } else {
        QualityResult::fail(
            Some(month),
            Rule::NationalTotalBand,
            Severity::Warning,
            "England",
            Some((NATIONAL_BAND.0, national)),
            format!(
                "national total {national} outside {}–{}",
                NATIONAL_BAND.0, NATIONAL_BAND.1
            ),
        )
    };
    out.push(band);
    let small = practices
        .iter()
        .filter_map(|c| {
            let total = agg.list_size(c).map_or(0, |s| s.0);
            (total < SMALL_PRACTICE).then(|| {
                QualityResult::fail(
                    Some(month),
                    Rule::SmallPractice,
                    Severity::Warning,
                    c,
                    Some((SMALL_PRACTICE, total)),
                    format!("practice {c} has {total} patients (under {SMALL_PRACTICE})"),
                )
            })
        })
        .collect();
    out.extend(verdict(
        month,
        Rule::SmallPractice,
        Severity::Warning,
        small,
        format!("no practice under {SMALL_PRACTICE} patients"),
    ));
    if !agg.missing.is_empty() {
        out.push(QualityResult::fail(
            Some(month),
            Rule::FamiliesPresent,
            Severity::Warning,
            "release",
            None,
            format!(
                "the release has no {}: built what it has, missing attributes left NULL",
                agg.missing.join(", ")
            ),
        ));
    }
    out
}

/// What a reissue changed against the list sizes silver `held`: one warning per practice
/// whose figure moved (all of them, never truncated: they are the record of the change), and
/// one for the national figure.
pub(crate) fn reissue_changes(
    held: &BTreeMap<String, u64>,
    agg: &Aggregates,
    month: Month,
) -> Vec<QualityResult> {
    let mut codes: Vec<String> = agg.practices_with_figures().to_vec();
    codes.extend(held.keys().cloned());
    codes.sort();
    codes.dedup();
    let mut out = Vec::new();
    for code in codes {
        let old = held.get(&code).copied().unwrap_or(0);
        let new = agg.list_size(&code).map_or(0, |s| s.0);
        if old != new {
            let change = new as i64 - old as i64;
            out.push(QualityResult::fail(
                Some(month),
                Rule::ReissueChanged,
                Severity::Warning,
                &code,
                Some((old, new)),
                format!("reissue: practice {code} was {old}, now {new} ({change:+})"),
            ));
        }
    }
    let old: u64 = held.values().sum();
    let new = agg.national_from_practices();
    let practices = out.len();
    let national = if old == new {
        QualityResult::pass(
            Some(month),
            Rule::ReissueChanged,
            Severity::Warning,
            format!(
                "reissue: {practices} practices changed; the national total is unchanged at {new}"
            ),
        )
    } else {
        let change = new as i64 - old as i64;
        QualityResult::fail(
            Some(month),
            Rule::ReissueChanged,
            Severity::Warning,
            "England",
            Some((old, new)),
            format!(
                "reissue: {practices} practices changed; the national total moved from {old} to {new} ({change:+})"
            ),
        )
    };
    out.push(national);
    out
}

/// Σ LSOA rows of each practice = its 5-year rows, per sex. A warning only: the LSOA extract
/// can be taken on another day of the month (`04JAN2021`).
fn lsoa_matches_practices(agg: &Aggregates, month: Month) -> Vec<QualityResult> {
    if agg.lsoa_leaf.is_empty() || !agg.quinary.present {
        return Vec::new();
    }
    let mut fails = Vec::new();
    let mut keys: Vec<&(String, SexKey, u16)> = agg.lsoa_leaf.keys().collect();
    keys.sort();
    for key in keys {
        let lsoa = agg.lsoa_leaf[key];
        let (code, sex, vintage) = key;
        let practice = agg.quinary.leaf_sum(code, *sex).unwrap_or(0);
        if lsoa != practice {
            let message = format!(
                "practice {code} {}: {vintage} LSOA rows sum to {lsoa}, its age rows to {practice}",
                sex.label()
            );
            fails.push(QualityResult::fail(
                Some(month),
                Rule::LsoaMatchesPractices,
                Severity::Warning,
                code,
                Some((practice, lsoa)),
                message,
            ));
        }
    }
    let checked = agg.lsoa_leaf.len();
    verdict(
        month,
        Rule::LsoaMatchesPractices,
        Severity::Warning,
        fails,
        format!("Σ LSOA = practice totals for {checked} practice × sex"),
    )
}
