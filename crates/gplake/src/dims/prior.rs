//! The dims' current versions read back as the practice-months and organisation-months
//! they stand for, so that later months extend them instead of every month being grouped
//! again.
//!
//! A version stands for its first month and, when it is the last of its practice or
//! organisation, its last month too: that is all the SCD2 rule reads of the months before
//! (a later version's start closes the one before it, and the last month seen decides
//! whether the last version is current). Whether a practice was ever mapped comes from the
//! snapshot itself, in one narrow query. Sound only when no month up to `through` changed
//! since the versions were derived, which the caller proves from the Delta log.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDate;
use deltalake::arrow::array::Array;
use deltalake::arrow::record_batch::RecordBatch;

use super::{ATTRS, Extend, Named, OrgMonth, Seen, Text};
use crate::catalog::{DIM_ORGANISATION, DIM_PRACTICE, PRACTICE_SNAPSHOT};
use crate::delta::DeltaError;
use crate::lake::Lake;
use crate::month::Month;
use crate::session::{self, Session};

/// The dims' current versions, as columns of text and months.
pub(super) struct Prior {
    /// The latest month they describe.
    pub(super) through: Month,
    /// `dim_practice`: the code, the attributes, `valid_from` (as months), `valid_to`.
    practices: Vec<Versions>,
    /// `dim_organisation`: level, code, name, ONS code, parent, `valid_from`, `valid_to`.
    organisations: Vec<Versions>,
    /// Practices with no month from a map up to `through`.
    never_mapped: HashSet<String>,
}

/// One batch of versions, ordered by their key and `valid_from`: the text columns, and
/// each version's first month and the month after its last (`None` while current).
struct Versions {
    text: Vec<Text>,
    from: Vec<Option<Month>>,
    to: Vec<Option<NaiveDate>>,
}

impl Versions {
    /// A batch whose first `keys` columns are text, then `valid_from` and `valid_to`.
    fn of(batch: &RecordBatch, texts: usize) -> Versions {
        let dates = |i: usize| super::dates_of(batch.column(i));
        let to = dates(texts + 1);
        Versions {
            text: (0..texts).map(|i| Text::of(batch, i)).collect(),
            from: super::months_of(&dates(texts)),
            to: (0..to.len())
                .map(|r| (!to.is_null(r)).then(|| to.value_as_date(r)).flatten())
                .collect(),
        }
    }

    /// Every row as (key text, first month, month after the last): rows whose key or first
    /// month is missing, which the dims never hold, are left out.
    fn rows(&self, key: usize) -> impl Iterator<Item = (usize, Month, Option<NaiveDate>)> + '_ {
        (0..self.from.len()).filter_map(move |r| {
            let present = (0..key).all(|k| self.text[k].get(r).is_some());
            Some((r, self.from[r].filter(|_| present)?, self.to[r]))
        })
    }
}

/// Reads the dims at the versions `extend` names, and which practices were never mapped up
/// to its month (as recorded, else from the snapshot); pins the dims in the session at
/// those versions.
pub(super) async fn read(
    lake: &Lake,
    session: &Session,
    extend: &Extend,
) -> Result<Prior, DeltaError> {
    for def in [DIM_PRACTICE, DIM_ORGANISATION] {
        let version = extend.versions.get(def.name).copied();
        session.pin(lake, &def, version).await?;
    }
    let practices = format!(
        "SELECT practice_code, {}, valid_from, valid_to FROM dim_practice ORDER BY practice_code, valid_from",
        ATTRS.join(", ")
    );
    let organisations = "SELECT org_type, org_code, org_name, ons_code, parent_code, valid_from, valid_to FROM dim_organisation ORDER BY org_type, org_code, valid_from";
    // Queries, not table opens: run at once, none holds a thread of the blocking pool while
    // it waits (see `BLOCKING_THREADS`).
    let (practices, organisations, never_mapped) = futures::try_join!(
        session::collect(session, Some(&DIM_PRACTICE), &practices),
        session::collect(session, Some(&DIM_ORGANISATION), organisations),
        never_mapped(session, extend),
    )?;
    Ok(Prior::new(
        Month::of(extend.through),
        &practices,
        &organisations,
        never_mapped,
    ))
}

/// The practices without a month from a map up to `extend`'s month: as recorded with the
/// dims, or (for dims recorded without them) from every month of the snapshot.
async fn never_mapped(session: &Session, extend: &Extend) -> Result<HashSet<String>, DeltaError> {
    if let Some(recorded) = &extend.never_mapped {
        return Ok(recorded.iter().cloned().collect());
    }
    let sql = format!(
        "SELECT practice_code FROM practice_snapshot WHERE snapshot_date <= DATE '{}' GROUP BY practice_code HAVING MAX(CASE WHEN attributes_from = 'map' THEN 1 ELSE 0 END) = 0",
        extend.through
    );
    let batches = session::collect(session, Some(&PRACTICE_SNAPSHOT), &sql).await?;
    let codes = batches.iter().flat_map(|b| {
        let codes = Text::of(b, 0);
        (0..b.num_rows()).filter_map(move |r| codes.get(r).map(str::to_string))
    });
    Ok(codes.collect())
}

/// The practices never mapped up to the end of `seen` (later than `prior`): those of
/// `prior` still without a month from a map, and those first seen in `seen` without one.
pub(super) fn never_mapped_after(prior: Option<&Prior>, seen: &[Seen]) -> HashSet<String> {
    let mut mapped: HashMap<&str, bool> = HashMap::new();
    for s in seen {
        *mapped.entry(&s.code).or_default() |= s.from_map;
    }
    let Some(prior) = prior else {
        let never = mapped.into_iter().filter(|(_, m)| !m);
        return never.map(|(code, _)| code.to_string()).collect();
    };
    let mut never: HashSet<String> = prior
        .never_mapped
        .iter()
        .filter(|code| !mapped.get(code.as_str()).copied().unwrap_or(false))
        .cloned()
        .collect();
    let known = prior.codes();
    for (code, m) in mapped {
        if !m && !known.contains(code) {
            never.insert(code.to_string());
        }
    }
    never
}

impl Prior {
    /// The practices never mapped up to `through`, in order.
    pub(super) fn into_never_mapped(self) -> std::collections::BTreeSet<String> {
        self.never_mapped.into_iter().collect()
    }

    /// The practices with versions.
    fn codes(&self) -> HashSet<&str> {
        let rows = self
            .practices
            .iter()
            .flat_map(|v| v.rows(1).map(move |r| (v, r.0)));
        rows.filter_map(|(v, r)| v.text[0].get(r)).collect()
    }

    /// The versions in `practices` and `organisations` (each ordered by key and
    /// `valid_from`), which describe the months up to `through`.
    pub(super) fn new(
        through: Month,
        practices: &[RecordBatch],
        organisations: &[RecordBatch],
        never_mapped: HashSet<String>,
    ) -> Prior {
        Prior {
            through,
            practices: practices
                .iter()
                .map(|b| Versions::of(b, 1 + ATTRS.len()))
                .collect(),
            organisations: organisations.iter().map(|b| Versions::of(b, 5)).collect(),
            never_mapped,
        }
    }

    /// The practice-months the versions stand for followed, practice by practice, by
    /// `seen` (which must be later): in practice and month order.
    pub(super) fn with_practice_months(&self, seen: &[Seen]) -> Vec<Seen> {
        let mut out = self.practice_months();
        out.extend(seen.iter().cloned());
        // Stable: each practice's prior months stay before its later ones.
        out.sort_by(|a, b| a.code.cmp(&b.code));
        out
    }

    /// Each practice version's first month, and the last month of each practice's last
    /// version, in practice and month order.
    fn practice_months(&self) -> Vec<Seen> {
        let mut starts: Vec<(Seen, Option<NaiveDate>)> = Vec::new();
        for v in &self.practices {
            for (r, month, to) in v.rows(1) {
                let code = v.text[0].get(r).unwrap_or_default();
                let code = match starts.last() {
                    Some((s, _)) if &*s.code == code => Arc::clone(&s.code),
                    _ => Arc::from(code),
                };
                let attrs = (1..=ATTRS.len()).map(|i| v.text[i].get(r).map(str::to_string));
                let seen = Seen {
                    month,
                    from_map: !self.never_mapped.contains(&*code),
                    code,
                    attrs: Arc::new(attrs.collect()),
                };
                starts.push((seen, to));
            }
        }
        self.with_last_months(
            &starts,
            |s| Arc::clone(&s.code),
            |s, month| Seen { month, ..s.clone() },
        )
    }

    /// Each organisation version's first month, and the last month of each organisation's
    /// last version, with what they were named.
    pub(super) fn organisation_months(&self) -> Vec<OrgMonth<'_>> {
        let mut starts: Vec<(OrgMonth<'_>, Option<NaiveDate>)> = Vec::new();
        for v in &self.organisations {
            for (r, month, to) in v.rows(2) {
                let key = (
                    v.text[0].get(r).unwrap_or_default(),
                    v.text[1].get(r).unwrap_or_default(),
                );
                let named: Named<'_> = [v.text[2].get(r), v.text[3].get(r), v.text[4].get(r)];
                starts.push(((key, month, named), to));
            }
        }
        self.with_last_months(&starts, |o| o.0, |o, month| (o.0, month, o.2))
    }

    /// Each version (ordered by key) with, after the last version of each key, that
    /// version again at its last month.
    fn with_last_months<T: Clone, K: PartialEq>(
        &self,
        starts: &[(T, Option<NaiveDate>)],
        key: impl Fn(&T) -> K,
        at: impl Fn(&T, Month) -> T,
    ) -> Vec<T> {
        let mut out = Vec::with_capacity(starts.len() * 2);
        for (i, (version, to)) in starts.iter().enumerate() {
            out.push(version.clone());
            if starts
                .get(i + 1)
                .is_none_or(|(next, _)| key(next) != key(version))
            {
                out.push(at(version, self.last_month(*to)));
            }
        }
        out
    }

    /// The last month of a last version: the month before its end, or `through` while it
    /// is current.
    fn last_month(&self, to: Option<NaiveDate>) -> Month {
        to.map_or(self.through, |d| Month::of(d).prev())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use deltalake::arrow::array::{ArrayRef, Date32Array, StringArray};
    use proptest::prelude::*;

    use super::super::{ATTRS, dims_of, step};
    use super::*;

    /// What one practice published in one month: from a map, and which of a few names,
    /// PCNs and sub-ICBs (two practices naming one PCN differently in the same month
    /// exercise the first-in-code-order rule).
    type Published = (bool, u8, u8, u8);

    const PRACTICES: usize = 5;
    const MONTHS: usize = 8;

    fn month(i: usize) -> Month {
        Month::range(
            Month::new(2024, 1).expect("month"),
            Month::new(2026, 1).expect("month"),
        )
        .nth(i)
        .expect("in range")
    }

    /// A practice-month: month, practice, what it published.
    type Row = (usize, usize, Published);

    /// The snapshot query's rows for the practice-months in `months`, the last month and
    /// practice first.
    fn snapshot(history: &[Option<Published>], months: std::ops::Range<usize>) -> RecordBatch {
        let mut rows: Vec<Row> = Vec::new();
        for (i, p) in history.iter().enumerate() {
            let (m, practice) = (i / PRACTICES, i % PRACTICES);
            if let (true, Some(p)) = (months.contains(&m), p) {
                rows.push((m, practice, *p));
            }
        }
        rows.reverse();
        let text = |f: &dyn Fn(&Row) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from_iter(rows.iter().map(f)))
        };
        let days = rows
            .iter()
            .map(|r| crate::batch::days(month(r.0).first_day()));
        let mut columns: Vec<(String, ArrayRef)> = vec![
            (
                "snapshot_date".into(),
                Arc::new(Date32Array::from_iter_values(days)),
            ),
            ("practice_code".into(), text(&|r| Some(format!("P{}", r.1)))),
            (
                "attributes_from".into(),
                text(&|r| Some(if r.2.0 { "map" } else { "age_file" }.into())),
            ),
        ];
        for (i, name) in ATTRS.iter().enumerate() {
            let value = move |r: &Row| {
                let (map, n, pcn, sub) = r.2;
                match i {
                    0 => Some(["Alpha", "Beta"][usize::from(n)].to_string()),
                    2 if map && pcn > 0 => Some(format!("U{pcn}")),
                    3 if map && pcn > 0 => Some(format!("PCN {pcn} of {sub}")),
                    4 => Some(format!("S{sub}")),
                    6 => Some(format!("Sub {sub} {}", r.1 % 2)),
                    7 if map => Some("Q1".to_string()),
                    _ => None,
                }
            };
            columns.push((name.to_string(), text(&value)));
        }
        RecordBatch::try_from_iter(columns).expect("a batch")
    }

    fn never_mapped(history: &[Option<Published>], months: usize) -> HashSet<String> {
        let mut seen = BTreeSet::new();
        let mut mapped = BTreeSet::new();
        for (i, p) in history.iter().enumerate().take(months * PRACTICES) {
            if let Some((map, ..)) = p {
                seen.insert(i % PRACTICES);
                if *map {
                    mapped.insert(i % PRACTICES);
                }
            }
        }
        seen.difference(&mapped).map(|p| format!("P{p}")).collect()
    }

    proptest! {
        #[test]
        fn extending_the_dims_by_later_months_gives_what_deriving_every_month_gives(
            history in proptest::collection::vec(
                proptest::option::weighted(0.7, (any::<bool>(), 0u8..2, 0u8..3, 0u8..2)),
                PRACTICES * MONTHS,
            ),
            cut in 1..=MONTHS,
        ) {
            let whole = dims_of(&[snapshot(&history, 0..MONTHS)], None);
            let before = dims_of(&[snapshot(&history, 0..cut)], None);
            let Some(through) = before.through else {
                return Ok(());
            };
            let prior = Prior::new(
                through,
                &[before.practices],
                &[before.organisations],
                never_mapped(&history, cut),
            );
            let extended = dims_of(&[snapshot(&history, cut..MONTHS)], Some(&prior));
            prop_assert_eq!(extended.through, whole.through);
            prop_assert_eq!(&extended.practices, &whole.practices);
            prop_assert_eq!(&extended.organisations, &whole.organisations);
        }

        #[test]
        fn deriving_span_by_span_gives_what_deriving_every_month_at_once_gives(
            history in proptest::collection::vec(
                proptest::option::weighted(0.7, (any::<bool>(), 0u8..2, 0u8..3, 0u8..2)),
                PRACTICES * MONTHS,
            ),
            spans in proptest::collection::vec(1..=3usize, 1..=MONTHS),
        ) {
            let whole = dims_of(&[snapshot(&history, 0..MONTHS)], None);
            let (mut from, mut prior, mut last) = (0, None, None);
            for len in spans.into_iter().chain(std::iter::repeat(MONTHS)) {
                let to = (from + len).min(MONTHS);
                let (dims, next) = step(&[snapshot(&history, from..to)], prior);
                // A span without a practice-month leaves the dims as they were.
                if dims.through.is_some() {
                    last = Some(dims);
                }
                prior = next;
                from = to;
                if from == MONTHS {
                    break;
                }
            }
            let Some(last) = last else {
                return Ok(());
            };
            prop_assert_eq!(last.through, whole.through);
            prop_assert_eq!(&last.practices, &whole.practices);
            prop_assert_eq!(&last.organisations, &whole.organisations);
        }
    }
}
