//! Quality and reconciliation: the rules each month must pass, and the results table.
//!
//! Hard rules (severity `error`) keep a month out of silver and make the command exit 3:
//! unreadable rows, duplicate keys, leaf sums that differ from the published ALL rows or
//! practice totals, organisation totals that differ from the sum of their practices, a
//! practice missing from the month's map. Soft rules (`warning`) are reported only: the
//! national total outside a plausible band, practices under 100 patients, large
//! month-over-month jumps, missing months.

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
    /// `rows_readable`.
    RowsReadable,
    /// `small_practice`.
    SmallPractice,
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
            Rule::NationalTotalBand => "national_total_band",
            Rule::OrgTotalsMatch => "org_totals_match",
            Rule::PracticeInMap => "practice_in_map",
            Rule::PracticeMonthOverMonth => "practice_month_over_month",
            Rule::PracticeTotalsMatch => "practice_totals_match",
            Rule::RowsReadable => "rows_readable",
            Rule::SmallPractice => "small_practice",
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
    /// True when the rule held.
    pub passed: bool,
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
            subject: Some(subject.to_string()),
            expected: figures.map(|f| f.0 as i64),
            actual: figures.map(|f| f.1 as i64),
            message,
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
            (true, _) => "ok",
            (false, Severity::Error) => "FAILED",
            (false, Severity::Warning) => "warning",
        };
        format!("{month} {} {verdict}: {}", self.rule, self.message)
    }
}
