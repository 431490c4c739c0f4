//! Property tests of the value, date and header parsers: whatever the input, a parser either
//! gives back exactly what was written or refuses it — it never guesses.

use chrono::{Datelike, NaiveDate};
use gplake::formats::parse_extract_date;
use gplake::formats::values::{AgeKey, band_label, parse_count, year_label};
use proptest::prelude::*;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// An age as the label writes it: leading zeros dropped (`07` is 7), anything else as it is.
fn canonical(text: &str) -> String {
    match text.trim_start_matches('0') {
        "" if !text.is_empty() => "0".into(),
        t if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => t.into(),
        _ => text.into(),
    }
}

fn dates() -> impl Strategy<Value = NaiveDate> {
    (2013i32..2040, 1u32..=12, 1u32..=31).prop_filter_map("a calendar date", |(y, m, d)| {
        NaiveDate::from_ymd_opt(y, m, d)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn counts_round_trip_and_anything_else_is_refused(n in any::<u64>(), junk in "[^0-9\\s]{1,3}") {
        prop_assert_eq!(parse_count(&n.to_string()), Some(n));
        prop_assert_eq!(parse_count(&format!(" {n} ")), Some(n));
        prop_assert_eq!(parse_count(&format!("{n}{junk}")), None);
        prop_assert_eq!(parse_count(&format!("-{n}")), None);
    }

    #[test]
    fn ages_and_bands_round_trip_through_their_labels(age in 0u8..=95, band in 0u8..20) {
        prop_assert_eq!(AgeKey::parse_year(year_label(age)), Some(AgeKey::Year(age)));
        prop_assert_eq!(AgeKey::parse_band(band_label(band)), Some(AgeKey::Band(band)));
        prop_assert_eq!(AgeKey::parse_band(&band_label(band).replace('-', "_")), Some(AgeKey::Band(band)));
        prop_assert_eq!(AgeKey::band_of_year(age), (age / 5).min(19));
    }

    #[test]
    fn no_other_age_text_is_an_age(text in "\\PC{0,6}") {
        if let Some(AgeKey::Year(a)) = AgeKey::parse_year(&text) {
            prop_assert_eq!(year_label(a), canonical(text.trim()));
        }
        if let Some(AgeKey::Band(b)) = AgeKey::parse_band(&text) {
            let (from, to) = text.trim().split_once(['_', '-']).unwrap_or((text.trim(), ""));
            let text = if to.is_empty() { canonical(from) } else { format!("{}-{}", canonical(from), canonical(to)) };
            prop_assert_eq!(band_label(b), text);
        }
    }

    #[test]
    fn every_extract_date_spelling_gives_back_its_date(date in dates()) {
        let (d, m, y) = (date.day(), date.month0() as usize, date.year());
        let name = MONTHS[m];
        let short = &name[..3];
        for text in [
            format!("{d:02}-{short}-{:02}", y % 100),
            format!("{d:02}{}{y}", short.to_ascii_uppercase()),
            format!("{d:02}{short}{y}"),
            format!("{y}-{:02}-{d:02}", m + 1),
            format!("{d:02}-{name}-{y}"),
        ] {
            prop_assert_eq!(parse_extract_date(&text), Some(date), "{}", text);
        }
    }

    #[test]
    fn an_extract_date_that_parses_is_a_real_date_of_its_text(text in "[0-9A-Za-z -]{0,12}") {
        if let Some(date) = parse_extract_date(&text) {
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            prop_assert!(digits.contains(&format!("{:02}", date.day())), "{} -> {}", text, date);
        }
    }
}

/// Found by the property above: `str::parse` takes a sign, so `+5` was read as age 5.
#[test]
fn a_signed_age_is_not_an_age_and_a_zero_padded_one_is_its_number() {
    for text in ["+5", "+0", "+0_+4", "-1"] {
        assert_eq!(AgeKey::parse_year(text), None, "{text}");
        assert_eq!(AgeKey::parse_band(text), None, "{text}");
    }
    assert_eq!(AgeKey::parse_year("07"), Some(AgeKey::Year(7)));
    assert_eq!(AgeKey::parse_band("05_09"), Some(AgeKey::Band(1)));
}
