//! The snapshot month: the one calendar key every stage shares.
//!
//! A [`Month`] is always a valid year and month (1–12); it prints as `YYYY-MM`, the spelling
//! of the CLI, the bronze layout and the manifests, and knows the NHS Digital page slug.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};

/// Full lower-case month names, as NHS Digital spells them in page slugs.
pub(crate) const MONTH_NAMES: [&str; 12] = [
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
];

/// A calendar month, the grain of a release and of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

/// A month that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{text}' is not a month: expected YYYY-MM, e.g. 2024-05")]
pub struct MonthParseError {
    text: String,
}

impl Month {
    /// The first month of the series (the first quarterly release, October 2013).
    pub const FIRST: Month = Month {
        year: 2013,
        month: 10,
    };

    /// A month from its parts; `None` unless `month` is 1–12 and the year has four digits.
    pub fn new(year: i32, month: u32) -> Option<Month> {
        ((1..=12).contains(&month) && (1000..=9999).contains(&year))
            .then_some(Month { year, month })
    }

    /// The month a date falls in.
    pub fn of(date: NaiveDate) -> Month {
        Month {
            year: date.year(),
            month: date.month(),
        }
    }

    /// The calendar year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// The month number, 1–12.
    pub fn month(self) -> u32 {
        self.month
    }

    /// The snapshot date: the first day of the month.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("valid by construction")
    }

    /// The lower-case full month name (`may`).
    pub fn name(self) -> &'static str {
        MONTH_NAMES[self.month as usize - 1]
    }

    /// The month page slug on NHS Digital: `may-2024`.
    pub fn slug(self) -> String {
        format!("{}-{}", self.name(), self.year)
    }

    /// The month after this one.
    pub fn next(self) -> Month {
        match self.month {
            12 => Month {
                year: self.year + 1,
                month: 1,
            },
            m => Month {
                year: self.year,
                month: m + 1,
            },
        }
    }

    /// The month before this one.
    pub fn prev(self) -> Month {
        match self.month {
            1 => Month {
                year: self.year - 1,
                month: 12,
            },
            m => Month {
                year: self.year,
                month: m - 1,
            },
        }
    }

    /// Every month from `from` to `to`, both included (empty when `from > to`).
    pub fn range(from: Month, to: Month) -> impl Iterator<Item = Month> {
        std::iter::successors(Some(from), |m| Some(m.next())).take_while(move |m| *m <= to)
    }

    /// True for the quarterly months (January, April, July, October).
    pub fn is_quarter_month(self) -> bool {
        matches!(self.month, 1 | 4 | 7 | 10)
    }
}

/// Months as compact runs: `2018-04…2021-02 (35 months), 2021-04`.
pub fn describe_runs(months: &[Month]) -> String {
    let mut runs: Vec<(Month, Month)> = Vec::new();
    for &m in months {
        match runs.last_mut() {
            Some((_, end)) if end.next() == m => *end = m,
            _ => runs.push((m, m)),
        }
    }
    runs.iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                let n = Month::range(*a, *b).count();
                format!("{a}…{b} ({n} months)")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Month {
    type Err = MonthParseError;

    fn from_str(text: &str) -> Result<Month, MonthParseError> {
        let err = || MonthParseError {
            text: text.to_string(),
        };
        let (y, m) = text.trim().split_once('-').ok_or_else(err)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(err());
        }
        let year = y.parse().map_err(|_| err())?;
        let month = m.parse().map_err(|_| err())?;
        Month::new(year, month).ok_or_else(err)
    }
}

impl serde::Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Month {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Month, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let m: Month = "2024-05".parse().unwrap();
        assert_eq!(m.to_string(), "2024-05");
        assert_eq!(m.slug(), "may-2024");
        assert!("2024-13".parse::<Month>().is_err());
        assert!("24-05".parse::<Month>().is_err());
        assert!("2024-5".parse::<Month>().is_err());
    }

    #[test]
    fn ranges_cross_years() {
        let from = "2023-11".parse().unwrap();
        let to = "2024-02".parse().unwrap();
        let months: Vec<String> = Month::range(from, to).map(|m| m.to_string()).collect();
        assert_eq!(months, ["2023-11", "2023-12", "2024-01", "2024-02"]);
        assert_eq!(Month::range(to, from).count(), 0);
        assert_eq!(from.prev().to_string(), "2023-10");
    }
}
