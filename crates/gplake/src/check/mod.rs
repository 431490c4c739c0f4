//! Quality and reconciliation: the rules each month must pass, and the results table.
//!
//! Hard rules (severity `error`) keep a month out of silver and make the command exit 3:
//! unreadable rows, duplicate keys, leaf sums that differ from the published ALL rows or
//! practice totals, organisation totals that differ from the sum of their practices, a
//! practice missing from the month's map. A failure that concerns one table's files only
//! (an LSOA or organisation file that cannot be read or does not reconcile) keeps only that
//! table's month out ([`QualityResult::table`]). Soft rules (`warning`) are reported only: the
//! national total outside a plausible band or unlike the published one, practices under 100
//! patients, large month-over-month jumps, missing months, what a reissue changed. A rule
//! whose inputs the release does not have is recorded as skipped, never failed or passed
//! silently.

pub(crate) mod evidence;
pub(crate) mod rules;
pub(crate) mod series;

use serde::Serialize;

use crate::month::Month;

/// A quality rule, by name (stored in `_meta/quality.rule` as its snake-case name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// `bands_sum_to_all`.
    BandsSumToAll,
    /// `families_present`.
    FamiliesPresent,
    /// `file_readable`.
    FileReadable,
    /// `lsoa_matches_practices`.
    LsoaMatchesPractices,
    /// `male_plus_female_is_all`.
    MalePlusFemaleIsAll,
    /// `missing_months`.
    MissingMonths,
    /// `month_over_month`.
    MonthOverMonth,
    /// `national_total`.
    NationalTotal,
    /// `national_total_band`.
    NationalTotalBand,
    /// `org_totals_match`.
    OrgTotalsMatch,
    /// `practice_in_map`.
    PracticeInMap,
    /// `practice_month_over_month`.
    PracticeMonthOverMonth,
    /// `practice_totals_match`.
    PracticeTotalsMatch,
    /// `reissue_changed`.
    ReissueChanged,
    /// `rows_readable`.
    RowsReadable,
    /// `source_set`.
    SourceSet,
    /// `single_age_matches_quinary`.
    SingleAgeMatchesQuinary,
    /// `small_practice`.
    SmallPractice,
    /// `text_encoding`.
    TextEncoding,
    /// `unique_keys`.
    UniqueKeys,
    /// `unknown_column`.
    UnknownColumn,
}

impl Rule {
    /// The name stored in `_meta/quality`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::BandsSumToAll => "bands_sum_to_all",
            Rule::FamiliesPresent => "families_present",
            Rule::FileReadable => "file_readable",
            Rule::LsoaMatchesPractices => "lsoa_matches_practices",
            Rule::MalePlusFemaleIsAll => "male_plus_female_is_all",
            Rule::MissingMonths => "missing_months",
            Rule::MonthOverMonth => "month_over_month",
            Rule::NationalTotal => "national_total",
            Rule::NationalTotalBand => "national_total_band",
            Rule::OrgTotalsMatch => "org_totals_match",
            Rule::PracticeInMap => "practice_in_map",
            Rule::PracticeMonthOverMonth => "practice_month_over_month",
            Rule::PracticeTotalsMatch => "practice_totals_match",
            Rule::ReissueChanged => "reissue_changed",
            Rule::RowsReadable => "rows_readable",
            Rule::SourceSet => "source_set",
            Rule::SingleAgeMatchesQuinary => "single_age_matches_quinary",
            Rule::SmallPractice => "small_practice",
            Rule::TextEncoding => "text_encoding",
            Rule::UniqueKeys => "unique_keys",
            Rule::UnknownColumn => "unknown_column",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much a failed rule matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Keeps the month out of silver; exit 3.
    Error,
    /// Reported only.
    Warning,
}

impl Severity {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One rule's outcome for one month (or the series).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QualityResult {
    /// The month, or `None` for series-wide rules.
    pub month: Option<Month>,
    /// Rule name.
    pub rule: Rule,
    /// Error or warning.
    pub severity: Severity,
    /// True when the rule held (also when it was skipped).
    pub passed: bool,
    /// True when the rule could not be made: a file family it needs is absent.
    pub skipped: bool,
    /// The one table a failed error keeps out for the month; `None`: the whole month.
    pub table: Option<&'static str>,
    /// Practice, organisation or file concerned.
    pub subject: Option<String>,
    /// Expected figure.
    pub expected: Option<i64>,
    /// Figure found.
    pub actual: Option<i64>,
    /// What was checked or found.
    pub message: String,
}

impl QualityResult {
    /// A passed rule.
    pub fn pass(
        month: Option<Month>,
        rule: Rule,
        severity: Severity,
        message: String,
    ) -> QualityResult {
        QualityResult {
            month,
            rule,
            severity,
            passed: true,
            skipped: false,
            table: None,
            subject: None,
            expected: None,
            actual: None,
            message,
        }
    }

    /// A failed rule about `subject`, with the expected and actual figures when there are.
    pub fn fail(
        month: Option<Month>,
        rule: Rule,
        severity: Severity,
        subject: &str,
        figures: Option<(u64, u64)>,
        message: String,
    ) -> QualityResult {
        QualityResult {
            month,
            rule,
            severity,
            passed: false,
            skipped: false,
            table: None,
            subject: Some(subject.to_string()),
            expected: figures.map(|f| f.0 as i64),
            actual: figures.map(|f| f.1 as i64),
            message,
        }
    }

    /// A rule that could not be made because the release lacks a family it needs.
    pub fn skip(
        month: Option<Month>,
        rule: Rule,
        severity: Severity,
        why: String,
    ) -> QualityResult {
        QualityResult {
            skipped: true,
            ..QualityResult::pass(month, rule, severity, why)
        }
    }

    /// The same result, keeping out only `table` when it is a failed error.
    pub fn for_table(self, table: &'static str) -> QualityResult {
        QualityResult {
            table: Some(table),
            ..self
        }
    }

    /// True for a failed hard rule.
    pub fn is_hard_failure(&self) -> bool {
        !self.passed && self.severity == Severity::Error
    }

    /// One line for people: `2024-05 unique_keys FAILED: …`.
    pub fn line(&self) -> String {
        let month = self
            .month
            .map(|m| m.to_string())
            .unwrap_or_else(|| "series".into());
        let verdict = match (self.passed, self.severity) {
            _ if self.skipped => "skipped",
            (true, _) => "ok",
            (false, Severity::Error) => "FAILED",
            (false, Severity::Warning) => "warning",
        };
        match self.table {
            Some(table) if !self.passed => {
                format!(
                    "{month} {} {verdict} ({table} kept out): {}",
                    self.rule, self.message
                )
            }
            _ => format!("{month} {} {verdict}: {}", self.rule, self.message),
        }
    }
}
