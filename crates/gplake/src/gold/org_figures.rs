//! The rows of `org_population_monthly`, made a month at a time: the publisher's figures
//! summed from that month's organisation facts, and its practices summed by organisation
//! as published and restated to the latest geography. What is held follows one month's
//! practices and organisations (about 6,500 and 1,250), not the history's: the figures were
//! selected by SQL a span of months at a time, whose joins and groupings held 5.5 of a
//! 36-month derivation's 19.5 MB live at its peak, and each query cost about 25 ms to plan.
//! Their definition in SQL stands in the tests, which the rows must equal column by column.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;
use deltalake::arrow::array::{Array, ArrayRef, Date32Array, Int64Array, StringArray};
use deltalake::arrow::record_batch::RecordBatch;
use futures::Stream;

use crate::batch::days;
use crate::catalog::{FACT_ORG_QUINARY, FACT_ORG_SINGLE_AGE, ORG_POPULATION, PRACTICE_SNAPSHOT};
use crate::delta::{DeltaError, MonthFiles, int_named as int, text_named as text};
use crate::lake::Lake;
use crate::session::{self, Session};

/// The organisation levels a practice is summed under, with the columns of
/// `practice_snapshot` and `dim_practice` that give its code at each.
const LEVELS: [(&str, &str); 4] = [
    ("PCN", "pcn_code"),
    ("SUB_ICB", "sub_icb_code"),
    ("ICB", "icb_code"),
    ("REGION", "region_code"),
];

/// A practice's organisation codes, by [`LEVELS`].
type Orgs = [Option<Box<str>>; 4];

/// An organisation: its type and code.
type OrgKey = (Box<str>, Box<str>);

/// The tables the figures are made of, at the versions the derivation reads.
pub(crate) struct Sources {
    snapshot: MonthFiles,
    quinary: MonthFiles,
    single_age: MonthFiles,
}

impl Sources {
    /// The three tables at `versions` (by table name; a table missing there has no month).
    pub(crate) async fn open(
        lake: &Lake,
        versions: &BTreeMap<String, u64>,
    ) -> Result<Sources, DeltaError> {
        let at = |name: &str| versions.get(name).copied();
        Ok(Sources {
            snapshot: MonthFiles::open(lake, &PRACTICE_SNAPSHOT, at(PRACTICE_SNAPSHOT.name))
                .await?,
            quinary: MonthFiles::open(lake, &FACT_ORG_QUINARY, at(FACT_ORG_QUINARY.name)).await?,
            single_age: MonthFiles::open(lake, &FACT_ORG_SINGLE_AGE, at(FACT_ORG_SINGLE_AGE.name))
                .await?,
        })
    }

    /// Every month any of them holds.
    pub(crate) fn months(&self) -> BTreeSet<NaiveDate> {
        let mut months: BTreeSet<NaiveDate> = self.snapshot.months().collect();
        months.extend(self.quinary.months());
        months.extend(self.single_age.months());
        months
    }

    /// The publisher's figures of `month`: Σ the leaf rows of its organisation single-age
    /// file, else of its quinary files' organisation rows (a month has one grain, never
    /// both), by organisation; male and female are the rows of each sex.
    async fn published(&self, month: NaiveDate) -> Result<BTreeMap<OrgKey, Sum>, DeltaError> {
        let facts = match self.single_age.months().any(|m| m == month) {
            true => &self.single_age,
            false => &self.quinary,
        };
        // Read a batch at a time: a month with single-age rows for every PCN holds 237,000
        // of them, about 9 MB decoded, which set a 1-month sync's peak.
        let columns = ["org_type", "org_code", "sex", "registered_population"];
        let mut sums: BTreeMap<OrgKey, Sum> = BTreeMap::new();
        facts
            .for_each(month, &columns, |batch| add_published(&mut sums, batch))
            .await?;
        Ok(sums)
    }

    /// `month`'s practices with a known list size.
    async fn practices(&self, month: NaiveDate) -> Result<Vec<Practice>, DeltaError> {
        let columns = [
            "practice_code",
            "pcn_code",
            "sub_icb_code",
            "icb_code",
            "region_code",
            "registered_population",
            "male",
            "female",
        ];
        let mut practices = Vec::new();
        for batch in self.snapshot.read(month, &columns).await? {
            let codes = text(&batch, "practice_code");
            let levels = LEVELS.map(|(_, column)| text(&batch, column));
            let [sizes, males, females] =
                ["registered_population", "male", "female"].map(|c| int(&batch, c));
            let value = |a: &Int64Array, i: usize| a.is_valid(i).then(|| a.value(i));
            for i in (0..batch.num_rows()).filter(|&i| codes.is_valid(i) && sizes.is_valid(i)) {
                practices.push(Practice {
                    code: codes.value(i).into(),
                    orgs: std::array::from_fn(|l| value_text(&levels[l], i)),
                    size: sizes.value(i),
                    male: value(&males, i),
                    female: value(&females, i),
                });
            }
        }
        Ok(practices)
    }
}

/// The publisher's rows of `batch` added to `sums`, by organisation. The files list an
/// organisation's rows together, so each run of one organisation's rows is summed before it
/// is looked up, and its key made once (rows in any other order are summed all the same).
fn add_published(sums: &mut BTreeMap<OrgKey, Sum>, batch: &RecordBatch) {
    let [types, codes, sexes] = ["org_type", "org_code", "sex"].map(|c| text(batch, c));
    let counts = int(batch, "registered_population");
    let key = |i: usize| (types.value(i), codes.value(i));
    let mut run: Option<((&str, &str), Sum)> = None;
    for i in (0..batch.num_rows()).filter(|&i| types.is_valid(i) && codes.is_valid(i)) {
        if run.as_ref().is_some_and(|(k, _)| *k != key(i)) {
            absorb(sums, run.take());
        }
        let (_, sum) = run.get_or_insert_with(|| (key(i), Sum::published()));
        let count = counts.is_valid(i).then(|| counts.value(i));
        sum.add_row(count, sexes.is_valid(i).then(|| sexes.value(i)));
    }
    absorb(sums, run);
}

/// A run's sum added to its organisation's in `sums`.
fn absorb(sums: &mut BTreeMap<OrgKey, Sum>, run: Option<((&str, &str), Sum)>) {
    let Some(((org_type, code), run)) = run else {
        return;
    };
    sums.entry((org_type.into(), code.into()))
        .or_insert_with(Sum::published)
        .add_rows(&run);
}

/// A practice-month with a known list size, as `practice_snapshot` gives it.
struct Practice {
    code: Box<str>,
    orgs: Orgs,
    size: i64,
    male: Option<i64>,
    female: Option<i64>,
}

/// An organisation's figures being summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sum {
    /// All patients (`None` while no row gave a count).
    population: Option<i64>,
    /// Male and female patients; `None` once a practice summed gave no split.
    male: Option<i64>,
    female: Option<i64>,
}

impl Sum {
    /// A publisher's figure: no row yet, no patient of either sex.
    fn published() -> Sum {
        Sum {
            population: None,
            male: Some(0),
            female: Some(0),
        }
    }

    /// A sum of practices: none yet, each sex known until a practice lacks it.
    fn practices() -> Sum {
        Sum {
            population: Some(0),
            male: Some(0),
            female: Some(0),
        }
    }

    /// A row of the publisher's figures: `count` patients of `sex`.
    fn add_row(&mut self, count: Option<i64>, sex: Option<&str>) {
        let Some(count) = count else { return };
        self.population = Some(self.population.unwrap_or(0) + count);
        match sex {
            Some("MALE") => self.male = self.male.map(|m| m + count),
            Some("FEMALE") => self.female = self.female.map(|f| f + count),
            _ => {}
        }
    }

    /// Another sum of the publisher's rows of the same organisation, as if its rows were
    /// added here.
    fn add_rows(&mut self, rows: &Sum) {
        self.population = match (self.population, rows.population) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.male = self.male.zip(rows.male).map(|(a, b)| a + b);
        self.female = self.female.zip(rows.female).map(|(a, b)| a + b);
    }

    /// A practice's list size and its split by sex (lost for the whole organisation when
    /// the practice gives none).
    fn add_practice(&mut self, p: &Practice) {
        self.population = self.population.map(|s| s + p.size);
        self.male = self.male.zip(p.male).map(|(s, m)| s + m);
        self.female = self.female.zip(p.female).map(|(s, f)| s + f);
    }
}

/// What restates and names the figures: each practice's organisations and each
/// organisation's name in their latest versions in the dims.
pub(crate) struct Geography {
    latest: HashMap<Box<str>, Orgs>,
    names: HashMap<OrgKey, Box<str>>,
}

impl Geography {
    /// Reads both from the dims the session pins (`current` and `names` select them).
    pub(crate) async fn read(
        session: &Session,
        current: &str,
        names: &str,
    ) -> Result<Geography, DeltaError> {
        let def = Some(&ORG_POPULATION);
        let mut latest = HashMap::new();
        let sql = format!("WITH {current} SELECT * FROM cur");
        for batch in session::collect(session, def, &sql).await? {
            let codes = text(&batch, "practice_code");
            let levels = LEVELS.map(|(_, column)| text(&batch, column));
            for i in (0..batch.num_rows()).filter(|&i| codes.is_valid(i)) {
                let orgs = std::array::from_fn(|l| value_text(&levels[l], i));
                latest.insert(codes.value(i).into(), orgs);
            }
        }
        let mut named = HashMap::new();
        let sql = format!("WITH {names} SELECT * FROM names");
        for batch in session::collect(session, def, &sql).await? {
            let [types, codes, names] =
                ["org_type", "org_code", "org_name"].map(|c| text(&batch, c));
            for i in (0..batch.num_rows()).filter(|&i| types.is_valid(i) && codes.is_valid(i)) {
                if let Some(name) = value_text(&names, i) {
                    named.insert((types.value(i).into(), codes.value(i).into()), name);
                }
            }
        }
        Ok(Geography {
            latest,
            names: named,
        })
    }
}

/// The figures of the months of `span`, a batch a month in month order.
pub(crate) fn figures<'a>(
    sources: &'a Sources,
    geography: &'a Geography,
    span: BTreeSet<NaiveDate>,
) -> impl Stream<Item = Result<RecordBatch, DeltaError>> + use<'a> {
    futures::stream::try_unfold(span.into_iter(), move |mut months| async move {
        let Some(month) = months.next() else {
            return Ok(None);
        };
        let batch = month_figures(sources, geography, month).await?;
        Ok(Some((batch, months)))
    })
}

/// One month's figures on every basis.
async fn month_figures(
    sources: &Sources,
    geography: &Geography,
    month: NaiveDate,
) -> Result<RecordBatch, DeltaError> {
    let published = sources.published(month).await?;
    let practices = sources.practices(month).await?;
    let as_published = sum_practices(practices.iter().map(|p| (&p.orgs, p)));
    let restated = practices
        .iter()
        .filter_map(|p| Some((geography.latest.get(&p.code)?, p)));
    let restated = sum_practices(restated);
    let mut rows = Rows::default();
    for (key, sum) in &published {
        rows.push(geography, "published", key, sum, None);
    }
    for (key, sum) in &as_published {
        let difference = published
            .get(key)
            .and_then(|p| Some(sum.population? - p.population?));
        rows.push(geography, "as_published", key, sum, difference);
    }
    for (key, sum) in &restated {
        rows.push(geography, "latest_geography", key, sum, None);
    }
    rows.batch(month)
        .map_err(|a| session::delta_err(Some(&ORG_POPULATION), a.into()))
}

/// Practices summed under the organisations each is paired with, at every level where it
/// has one.
fn sum_practices<'p>(
    practices: impl Iterator<Item = (&'p Orgs, &'p Practice)>,
) -> BTreeMap<OrgKey, Sum> {
    let mut sums: BTreeMap<OrgKey, Sum> = BTreeMap::new();
    for (orgs, practice) in practices {
        for ((level, _), code) in LEVELS.iter().zip(orgs) {
            let Some(code) = code else { continue };
            sums.entry(((*level).into(), code.clone()))
                .or_insert_with(Sum::practices)
                .add_practice(practice);
        }
    }
    sums
}

/// A month's rows as they are made, by column.
#[derive(Default)]
struct Rows {
    basis: Vec<&'static str>,
    org_type: Vec<Box<str>>,
    org_code: Vec<Box<str>>,
    org_name: Vec<Option<Box<str>>>,
    population: Vec<Option<i64>>,
    male: Vec<Option<i64>>,
    female: Vec<Option<i64>>,
    difference: Vec<Option<i64>>,
}

impl Rows {
    fn push(
        &mut self,
        geography: &Geography,
        basis: &'static str,
        key: &OrgKey,
        sum: &Sum,
        difference: Option<i64>,
    ) {
        self.basis.push(basis);
        self.org_type.push(key.0.clone());
        self.org_code.push(key.1.clone());
        self.org_name.push(geography.names.get(key).cloned());
        self.population.push(sum.population);
        self.male.push(sum.male);
        self.female.push(sum.female);
        self.difference.push(difference);
    }

    /// The rows in `org_population_monthly`'s columns.
    fn batch(self, month: NaiveDate) -> Result<RecordBatch, deltalake::arrow::error::ArrowError> {
        let rows = self.basis.len();
        let texts = |v: Vec<Box<str>>| -> ArrayRef {
            Arc::new(v.iter().map(|s| Some(s.as_ref())).collect::<StringArray>())
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Date32Array::from(vec![days(month); rows])),
            Arc::new(StringArray::from(self.basis)),
            texts(self.org_type),
            texts(self.org_code),
            Arc::new(
                self.org_name
                    .iter()
                    .map(|n| n.as_deref())
                    .collect::<StringArray>(),
            ),
            Arc::new(Int64Array::from(self.population)),
            Arc::new(Int64Array::from(self.male)),
            Arc::new(Int64Array::from(self.female)),
            Arc::new(Int64Array::from(self.difference)),
        ];
        RecordBatch::try_new(ORG_POPULATION.arrow_schema(), columns)
    }
}

/// Row `i` of `texts`, owned (`None` when null).
fn value_text(texts: &StringArray, i: usize) -> Option<Box<str>> {
    texts.is_valid(i).then(|| texts.value(i).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(rows: &[(&'static str, &'static str, &'static str, i64)]) -> RecordBatch {
        let text = |column: usize| -> ArrayRef {
            let value = |r: &(&'static str, &'static str, &'static str, i64)| match column {
                0 => r.0,
                1 => r.1,
                _ => r.2,
            };
            Arc::new(rows.iter().map(|r| Some(value(r))).collect::<StringArray>())
        };
        RecordBatch::try_from_iter([
            ("org_type", text(0)),
            ("org_code", text(1)),
            ("sex", text(2)),
            (
                "registered_population",
                Arc::new(rows.iter().map(|r| r.3).collect::<Int64Array>()) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn published_figures_sum_every_row_of_an_organisation_wherever_its_rows_are() {
        let mut sums = BTreeMap::new();
        // PCN P1's rows split across two batches, and again after another organisation's.
        add_published(
            &mut sums,
            &batch(&[
                ("PCN", "P1", "MALE", 10),
                ("PCN", "P1", "FEMALE", 20),
                ("ICB", "I1", "MALE", 5),
                ("PCN", "P1", "MALE", 1),
            ]),
        );
        add_published(
            &mut sums,
            &batch(&[("PCN", "P1", "FEMALE", 2), ("ICB", "I1", "ALL", 7)]),
        );
        let get = |t: &str, c: &str| sums[&(Box::from(t), Box::from(c))];
        let p1 = get("PCN", "P1");
        assert_eq!(
            (p1.population, p1.male, p1.female),
            (Some(33), Some(11), Some(22))
        );
        let i1 = get("ICB", "I1");
        assert_eq!(
            (i1.population, i1.male, i1.female),
            (Some(12), Some(5), Some(0)),
            "a row of neither sex counts in the total alone"
        );
        assert_eq!(sums.len(), 2);
    }
}
