//! Rules over the whole series rather than one month: missing months, national
//! month-over-month moves, and practices whose list jumps. Pure functions over totals the
//! build reads from `practice_snapshot`; all warnings.

use super::{QualityResult, Rule, Severity};
use crate::month::Month;

/// The names of the series rules (their results are recorded apart from the month rules).
pub(crate) const SERIES_RULES: [Rule; 3] = [
    Rule::MissingMonths,
    Rule::MonthOverMonth,
    Rule::PracticeMonthOverMonth,
];

/// Practice jumps listed one by one before the rest are counted.
const LISTED: usize = 50;

/// One practice's list in two consecutive months.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Jump {
    pub(crate) month: Month,
    pub(crate) practice: String,
    pub(crate) before: i64,
    pub(crate) after: i64,
}

/// Missing months and national moves over `totals` (month, national total), by month.
pub(crate) fn over_series(totals: &[(Month, i64)]) -> Vec<QualityResult> {
    let mut out: Vec<QualityResult> = gaps(totals).into_iter().collect();
    for pair in totals.windows(2) {
        let ((m0, n0), (m1, n1)) = (pair[0], pair[1]);
        if m1 != m0.next() || n0 <= 0 {
            continue;
        }
        let change = (n1 - n0) as f64 / n0 as f64;
        if change.abs() > 0.02 {
            out.push(QualityResult::fail(
                Some(m1),
                Rule::MonthOverMonth,
                Severity::Warning,
                "England",
                Some((n0 as u64, n1 as u64)),
                format!(
                    "national total moved {:+.1}% from {m0} to {m1}",
                    change * 100.0
                ),
            ));
        }
    }
    out
}

fn gaps(totals: &[(Month, i64)]) -> Option<QualityResult> {
    let monthly_from = Month::new(2017, 5).expect("valid");
    let present: Vec<Month> = totals.iter().map(|t| t.0).collect();
    let first = present.iter().find(|m| **m >= monthly_from)?;
    let last = present.last()?;
    let missing: Vec<Month> = Month::range(*first, *last)
        .filter(|m| !present.contains(m))
        .collect();
    Some(if missing.is_empty() {
        QualityResult::pass(
            None,
            Rule::MissingMonths,
            Severity::Warning,
            format!("no monthly gaps from {first} to {last}"),
        )
    } else {
        let runs = crate::month::describe_runs(&missing);
        QualityResult::fail(
            None,
            Rule::MissingMonths,
            Severity::Warning,
            "series",
            None,
            format!("{} months missing from silver: {runs}", missing.len()),
        )
    })
}

/// A warning per practice jump (more than 20 % and 500 patients), the first 50 listed.
pub(crate) fn practice_jumps(jumps: &[Jump]) -> Vec<QualityResult> {
    let mut out: Vec<QualityResult> = jumps
        .iter()
        .take(LISTED)
        .map(|j| {
            let (x, y) = (j.before, j.after);
            let message = format!(
                "practice {} moved from {x} to {y} patients in {} ({:+.0}%)",
                j.practice,
                j.month,
                (y - x) as f64 * 100.0 / x.max(1) as f64
            );
            QualityResult::fail(
                Some(j.month),
                Rule::PracticeMonthOverMonth,
                Severity::Warning,
                &j.practice,
                Some((x as u64, y as u64)),
                message,
            )
        })
        .collect();
    if jumps.len() > LISTED {
        out.push(QualityResult::fail(
            None,
            Rule::PracticeMonthOverMonth,
            Severity::Warning,
            "…",
            None,
            format!("{} more practice jumps not listed", jumps.len() - LISTED),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(y: i32, n: u32) -> Month {
        Month::new(y, n).unwrap()
    }

    #[test]
    fn a_gap_and_a_national_jump_are_warned() {
        let results = over_series(&[(m(2024, 1), 1000), (m(2024, 2), 1100), (m(2024, 4), 1100)]);
        let gap = results
            .iter()
            .find(|r| r.rule == Rule::MissingMonths)
            .unwrap();
        assert!(
            !gap.passed && gap.message.contains("1 months missing"),
            "{}",
            gap.message
        );
        let jump = results
            .iter()
            .find(|r| r.rule == Rule::MonthOverMonth)
            .unwrap();
        assert_eq!(jump.month, Some(m(2024, 2)));
        assert!(jump.message.contains("+10.0%"), "{}", jump.message);
    }

    #[test]
    fn practice_jumps_past_fifty_are_counted() {
        let jumps: Vec<Jump> = (0..52)
            .map(|i| Jump {
                month: m(2024, 2),
                practice: format!("P{i:05}"),
                before: 1000,
                after: 2000,
            })
            .collect();
        let results = practice_jumps(&jumps);
        assert_eq!(results.len(), 51);
        assert_eq!(results[50].message, "2 more practice jumps not listed");
        assert!(results[0].message.contains("+100%"));
    }
}
