//! EXTRACT_DATE in every spelling the publisher has used.
//!
//! Seen: `01-Apr-17`, `01SEP2017`, `01Jan2022`, `04JAN2021`, `2026-04-01` (nhs-formats.md §3).
//! Anything else is an error, never a guess: a date that parses is a real calendar date.

use chrono::NaiveDate;

use crate::month::MONTH_NAMES;

/// Parses one EXTRACT_DATE value; `None` when it matches no known spelling.
pub fn parse_extract_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim().trim_matches('"');
    parse_iso(text).or_else(|| parse_day_month_year(text))
}

fn parse_iso(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// `01-Apr-17`, `01SEP2017`, `01Jan2022`, `01-April-2017`: day, month name, 2- or 4-digit year.
fn parse_day_month_year(text: &str) -> Option<NaiveDate> {
    let compact: String = text.chars().filter(|c| *c != '-' && *c != ' ').collect();
    let day_len = compact.chars().take_while(char::is_ascii_digit).count();
    let name_len = compact[day_len..]
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .count();
    let (day, rest) = compact.split_at(day_len);
    let (name, year) = rest.split_at(name_len);
    if !(1..=2).contains(&day.len()) || name.len() < 3 || !year.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let month = month_number(name)?;
    let year: i32 = match year.len() {
        2 => 2000 + year.parse::<i32>().ok()?,
        4 => year.parse().ok()?,
        _ => return None,
    };
    NaiveDate::from_ymd_opt(year, month, day.parse().ok()?)
}

/// A month number from an English month name or its three-letter (or longer) prefix.
pub(crate) fn month_number(name: &str) -> Option<u32> {
    let lower = name.to_ascii_lowercase();
    if lower.len() < 3 {
        return None;
    }
    let index = MONTH_NAMES
        .iter()
        .position(|full| full.starts_with(&lower) || (lower == "sept" && *full == "september"))?;
    Some(index as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, d)
    }

    #[test]
    fn every_spelling_seen() {
        assert_eq!(parse_extract_date("01-Apr-17"), ymd(2017, 4, 1));
        assert_eq!(parse_extract_date("01SEP2017"), ymd(2017, 9, 1));
        assert_eq!(parse_extract_date("01Jan2022"), ymd(2022, 1, 1));
        assert_eq!(parse_extract_date("04JAN2021"), ymd(2021, 1, 4));
        assert_eq!(parse_extract_date("2026-04-01"), ymd(2026, 4, 1));
        assert_eq!(parse_extract_date("01-April-2020"), ymd(2020, 4, 1));
    }

    #[test]
    fn rejects_what_it_does_not_know() {
        for bad in [
            "",
            "01/04/2017",
            "31FEB2020",
            "2026-13-01",
            "1X2020",
            "01Foo2020",
            "01JAN20201",
        ] {
            assert_eq!(parse_extract_date(bad), None, "{bad}");
        }
    }
}
