//! One month from bronze files to uncommitted silver data files, plus the aggregates the
//! checks need — computed while the rows stream past, never by reading a file twice.
//!
//! Files are read in dependency order: the map and practice totals first (small, kept in
//! memory to enrich and to check), then the big age files streamed row by row into Arrow
//! batches and on into Parquet data files. Nothing becomes visible until the build pipeline commits.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use deltalake::kernel::Add;
use tokio::runtime::Handle;

use super::runs::{FactRow, RunValues};
use super::sink::Sink;
use crate::batch::Val;
use crate::catalog::{
    FACT_LSOA, FACT_ORG_QUINARY, FACT_ORG_SINGLE_AGE, FACT_QUINARY, PRACTICE_SNAPSHOT, TableDef,
};
use crate::check::evidence::{AgeAgg, Aggregates, FastMap};
use crate::check::{QualityResult, Rule, Severity};
use crate::delta::DeltaError;
use crate::formats::reader::{Records, each_csv};
use crate::formats::{
    AgeKey, Aliases, CountRow, Family, FileContext, FileStats, FormatError, OrgLevel,
    PracticeAttrs, Quarantined, SexKey,
};
use crate::month::Month;

/// A bronze file chosen for the month, open to read (its bytes proved to be the manifest's).
#[derive(Debug, Clone)]
pub(crate) struct InputFile {
    pub(crate) name: String,
    pub(crate) family: Family,
    pub(crate) sha256: String,
    pub(crate) file: Arc<std::fs::File>,
    pub(crate) lsoa_vintage: Option<u16>,
    pub(crate) limits: crate::formats::reader::InputLimits,
}

mod jobs;
mod lsoa;

pub(crate) use jobs::{Part, finish, read_head};

/// What building a month produced: data files (not yet committed) and the evidence.
pub(crate) struct MonthBuilt {
    pub(crate) adds: Vec<(TableDef, Vec<Add>)>,
    /// Data files written and then not used (a family read in pieces that had to be read
    /// again whole): never to be committed, to be deleted.
    pub(crate) discarded: Vec<(TableDef, Vec<Add>)>,
    pub(crate) aggregates: Aggregates,
    pub(crate) files: deltalake::arrow::record_batch::RecordBatch,
    pub(crate) quarantine: Vec<Quarantined>,
    /// Files that could not be read and keep only their own table's month out.
    pub(crate) table_failures: Vec<QualityResult>,
}

/// A practice's attributes for enrichment: from the map, else the totals file, else the rows.
#[derive(Debug, Default, Clone)]
struct Info {
    /// Shared with the month's map when the practice is in it: a month's map is read once
    /// and every practice's fifteen attributes are held once (a copy for each practice of
    /// the totals file was 5.4 MB of a month in flight).
    attrs: Arc<PracticeAttrs>,
    from: AttributesFrom,
}

impl Info {
    /// A practice's attributes as the month's map gives them.
    fn mapped(attrs: Arc<PracticeAttrs>) -> Info {
        Info {
            attrs,
            from: AttributesFrom::Map,
        }
    }
}

/// Which file gave a practice's name and organisations (`practice_snapshot.attributes_from`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum AttributesFrom {
    /// The month's map: names and every organisation.
    Map,
    /// The practice totals file: the code, postcode and sub-ICB only.
    PracticeTotals,
    /// An age file: the code and what its columns give.
    #[default]
    AgeFile,
}

impl AttributesFrom {
    /// The value stored in silver.
    fn label(self) -> &'static str {
        match self {
            AttributesFrom::Map => "map",
            AttributesFrom::PracticeTotals => "practice_totals",
            AttributesFrom::AgeFile => "age_file",
        }
    }
}

/// A month build failure that stops the month (the files are named inside).
#[derive(Debug, thiserror::Error)]
pub(crate) enum MonthError {
    /// A file cannot be read as its family.
    #[error("month {month}: {source}")]
    Format {
        /// The month.
        month: Month,
        /// What is wrong with the file.
        source: FormatError,
    },
    /// A bronze file is not the bytes its manifest records (a writer that lost its lease
    /// replaced it, or the store was changed by hand): nothing of the month is built from it.
    #[error(
        "month {month}, file {file}: bronze holds other bytes than its manifest records (sha256 {expected}, found {found}); `gplake fetch --month {month} --verify` restores them from the source"
    )]
    BronzeAltered {
        /// The month.
        month: Month,
        /// The file's name in bronze.
        file: String,
        /// The SHA-256 the manifest records.
        expected: String,
        /// The SHA-256 of the bytes found.
        found: String,
    },
    /// Writing data files failed.
    #[error("month {month}: {source}")]
    Delta {
        /// The month.
        month: Month,
        /// The Delta failure.
        source: DeltaError,
    },
}

/// The open tables a month writes to.
pub(crate) struct Targets {
    pub(crate) quinary: deltalake::DeltaTable,
    pub(crate) single: deltalake::DeltaTable,
    pub(crate) lsoa: deltalake::DeltaTable,
    pub(crate) practices: deltalake::DeltaTable,
    pub(crate) org_quinary: deltalake::DeltaTable,
    pub(crate) org_single: deltalake::DeltaTable,
}

/// One job's reading of some of a month's files: its own sinks, sums and records, put
/// together with the other jobs' by [`finish`] in the files' dependency order.
struct Builder {
    month: Month,
    date: NaiveDate,
    with: MonthContext,
    /// What the map and totals files said, shared by every job of the month.
    known: Arc<Known>,
    agg: Aggregates,
    /// Practices this job noted that `known` did not hold. Looked up once per practice of
    /// each file: a fast hasher (see [`FastMap`]).
    info: FastMap<String, Arc<Info>>,
    /// The practice of the last fact row: a file's rows come grouped by practice, so this
    /// spares a lookup per row.
    current: Arc<Info>,
    /// The files read, in order, for the `files` table and the quarantine.
    files: Vec<FileRead>,
    table_failures: Vec<QualityResult>,
}

/// The practices the map and the practice totals file named: read first, then shared by
/// every job of the month.
#[derive(Debug, Default, Clone)]
struct Known {
    map: HashMap<String, Arc<PracticeAttrs>>,
    info: FastMap<String, Arc<Info>>,
}

/// A file read (or kept unused), as the `files` table records it.
struct FileRead {
    label: String,
    family: Family,
    sha: String,
    used: bool,
    stats: FileStats,
}

/// What a month is built with besides its files; each of its jobs takes a copy.
#[derive(Clone)]
pub(crate) struct MonthContext {
    pub(crate) handle: Handle,
    pub(crate) built_at: DateTime<Utc>,
    /// The user's aliases, with an empty record of use.
    pub(crate) aliases: Aliases,
}

impl Builder {
    fn new(month: Month, with: MonthContext, known: Arc<Known>) -> Builder {
        Builder {
            month,
            date: month.first_day(),
            with,
            known,
            agg: Aggregates::default(),
            info: FastMap::default(),
            current: Arc::default(),
            files: Vec::new(),
            table_failures: Vec::new(),
        }
    }

    /// The practice's attributes noted so far, by this job or before the jobs began.
    fn known_info(&self, code: &str) -> Option<&Arc<Info>> {
        self.info.get(code).or_else(|| self.known.info.get(code))
    }

    /// The practice's attributes in the month's map.
    fn mapped(&self, code: &str) -> Option<&Arc<PracticeAttrs>> {
        self.agg.map.get(code).or_else(|| self.known.map.get(code))
    }

    /// Takes in a later job's reading (see [`Aggregates::absorb`]).
    fn absorb(&mut self, part: Builder) {
        self.agg.absorb(part.agg);
        for (code, info) in part.info {
            self.info.entry(code).or_insert(info);
        }
        self.files.extend(part.files);
        self.table_failures.extend(part.table_failures);
    }
}

/// A failure inside a reading step: a format error or a Delta error.
enum StepError {
    Format(FormatError),
    Delta(DeltaError),
}

impl StepError {
    fn at(self, month: Month) -> MonthError {
        match self {
            StepError::Format(source) => MonthError::Format { month, source },
            StepError::Delta(source) => MonthError::Delta { month, source },
        }
    }
}

impl From<DeltaError> for StepError {
    fn from(e: DeltaError) -> StepError {
        StepError::Delta(e)
    }
}

impl From<FormatError> for StepError {
    fn from(e: FormatError) -> StepError {
        StepError::Format(e)
    }
}

impl Builder {
    fn ctx(&self, family: Family) -> FileContext {
        FileContext {
            month: self.month,
            family,
            aliases: self.with.aliases.clone(),
        }
    }

    /// A sink for the month's rows of `def`, a table of `targets`.
    fn sink(&self, def: TableDef, table: &deltalake::DeltaTable) -> Result<Sink, DeltaError> {
        Sink::new(def, table, self.date, &self.with.handle)
    }

    fn fmt_err(&self, source: FormatError) -> MonthError {
        MonthError::Format {
            month: self.month,
            source,
        }
    }

    fn read_map(&mut self, input: &InputFile) -> Result<(), MonthError> {
        let ctx = self.ctx(input.family);
        let mut parsed = Vec::new();
        each_csv(&input.file, &input.name, &input.limits, |label, reader| {
            let mut records = Records::new(reader, label)?;
            let (rows, stats) = crate::formats::map::parse_map(&mut records, &ctx)?;
            parsed.push((label.to_string(), rows, stats));
            Ok(())
        })
        .map_err(|e| self.fmt_err(e))?;
        for (label, rows, stats) in parsed {
            self.agg.has_map = true;
            for attrs in rows {
                if let Some(first) = self.agg.map.get(&attrs.code) {
                    let dup = (label.clone(), attrs.code.clone(), first.line, attrs.line);
                    self.agg.practice_dups.push(dup);
                    continue;
                }
                self.agg.map.insert(attrs.code.clone(), Arc::new(attrs));
            }
            self.record_file(&label, input.family, &input.sha256, true, &stats);
        }
        Ok(())
    }

    fn read_totals(&mut self, input: &InputFile) -> Result<(), MonthError> {
        let ctx = self.ctx(input.family);
        let mut rows = Vec::new();
        let mut results = Vec::new();
        each_csv(&input.file, &input.name, &input.limits, |label, reader| {
            let mut records = Records::new(reader, label)?;
            let stats = crate::formats::long::parse_counts(&mut records, &ctx, &mut |row| {
                rows.push(row.clone().into_owned())
            })?;
            results.push((label.to_string(), stats));
            Ok(())
        })
        .map_err(|e| self.fmt_err(e))?;
        self.agg.has_totals = true;
        for row in rows.into_iter().filter(|r| r.level == OrgLevel::Practice) {
            if let Some((_, first)) = self.agg.totals.get(row.code.as_ref()) {
                let dup = (input.name.clone(), row.code.to_string(), *first, row.line);
                self.agg.practice_dups.push(dup);
                continue;
            }
            self.note_row_attrs(&row, AttributesFrom::PracticeTotals);
            self.agg
                .totals
                .insert(row.code.to_string(), (row.count, row.line));
        }
        for (label, stats) in results {
            self.record_file(&label, input.family, &input.sha256, true, &stats);
        }
        Ok(())
    }

    /// A table that only its own files feed (LSOA, organisation single-age): a file that
    /// cannot be read keeps that table's month out, not the month.
    fn own_table(
        &mut self,
        def: TableDef,
        read: Result<(TableDef, Vec<Add>), StepError>,
        month: Month,
    ) -> Result<(TableDef, Vec<Add>), MonthError> {
        match read {
            Ok(adds) => Ok(adds),
            Err(StepError::Format(e)) => {
                let failure = QualityResult::fail(
                    Some(month),
                    Rule::FileReadable,
                    Severity::Error,
                    "file",
                    None,
                    format!("month {month}: {e}"),
                );
                self.table_failures.push(failure.for_table(def.name));
                Ok((def, Vec::new()))
            }
            Err(e) => Err(e.at(month)),
        }
    }

    /// Streams quinary (or single-age) files into their fact table, and their organisation
    /// rows into `orgs` when given.
    fn read_ages(
        &mut self,
        inputs: &[&InputFile],
        def: TableDef,
        table: &deltalake::DeltaTable,
        orgs: Option<&deltalake::DeltaTable>,
    ) -> Result<Vec<(TableDef, Vec<Add>)>, StepError> {
        let banded = def.name == FACT_QUINARY.name;
        let mut sink = self.sink(def, table)?;
        let mut org_sink = orgs.map(|t| self.sink(FACT_ORG_QUINARY, t)).transpose()?;
        let mut agg = AgeAgg::default();
        agg.expect_codes(self.known.info.len().max(self.known.map.len()));
        let mut org_agg = AgeAgg::for_orgs();
        let mut org_totals = Vec::new();
        for input in inputs {
            agg.present = true;
            org_agg.present |= org_sink.is_some();
            agg.wide = matches!(
                input.family,
                Family::LegacyQuinary | Family::LegacySingleAge
            );
            agg.file = input.name.clone();
            let ctx = self.ctx(input.family);
            let mut failure: Option<DeltaError> = None;
            let mut stats_all = Vec::new();
            each_csv(&input.file, &input.name, &input.limits, |label, reader| {
                let mut records = Records::new(reader, label)?;
                // A file's first row starts a run even when its practice ended the last file.
                sink.end_run();
                let mut on_row = |row: &CountRow<'_>| {
                    if failure.is_some() {
                        return;
                    }
                    let written = if row.level == OrgLevel::Practice {
                        agg.add(row, label);
                        if !row.is_leaf() || (row.count == 0 && !row.suppressed) {
                            return;
                        }
                        self.write_fact(&mut sink, row, label, &input.sha256, banded)
                    } else {
                        org_agg.add(row, label);
                        if row.sex == SexKey::All && row.age == AgeKey::All {
                            org_totals.push((
                                label.to_string(),
                                row.level,
                                row.code.to_string(),
                                row.count,
                            ));
                        }
                        match org_sink.as_mut() {
                            Some(org_sink) if row.is_org_leaf() && row.count > 0 => {
                                self.write_org_fact(org_sink, row, label, &input.sha256)
                            }
                            _ => Ok(()),
                        }
                    };
                    if let Err(e) = written {
                        failure = Some(e);
                    }
                };
                let stats = match input.family {
                    Family::LegacyQuinary | Family::LegacySingleAge => {
                        crate::formats::legacy::parse_wide(&mut records, &ctx, &mut on_row)?
                    }
                    _ => crate::formats::long::parse_counts(&mut records, &ctx, &mut on_row)?,
                };
                stats_all.push((label.to_string(), stats));
                Ok(())
            })?;
            if let Some(e) = failure {
                return Err(e.into());
            }
            for (label, stats) in stats_all {
                self.record_file(&label, input.family, &input.sha256, true, &stats);
            }
        }
        for (label, level, code, count) in org_totals {
            self.agg.orgs.insert((label, level, code), count);
        }
        agg.finish();
        org_agg.finish();
        let mut adds = vec![sink.finish()?];
        if banded {
            self.agg.quinary = agg;
            self.agg.org_quinary = org_agg;
        } else {
            self.agg.single = agg;
        }
        if let Some(org_sink) = org_sink {
            adds.push(org_sink.finish()?);
        }
        Ok(adds)
    }

    /// One published organisation leaf row into its fact table.
    fn write_org_fact(
        &self,
        sink: &mut Sink,
        row: &CountRow<'_>,
        file: &str,
        sha: &str,
    ) -> Result<(), DeltaError> {
        let age = row.age.label();
        sink.push(&[
            Val::Date(self.date),
            Val::Text(Some(row.level.label())),
            Val::Text(Some(&row.code)),
            Val::Text(row.ons.as_deref()),
            Val::Text(Some(row.sex.label())),
            Val::Text(Some(&age)),
            Val::Int(row.count as i64),
            Val::Text(Some(file)),
            Val::Text(Some(sha)),
        ])
    }

    fn write_fact(
        &mut self,
        sink: &mut Sink,
        row: &CountRow<'_>,
        file: &str,
        sha: &str,
        banded: bool,
    ) -> Result<(), DeltaError> {
        let new_practice = self.current.attrs.code != row.code;
        if new_practice {
            self.note_row_attrs(row, AttributesFrom::AgeFile);
            self.current = self.known_info(&row.code).cloned().unwrap_or_default();
        }
        if new_practice || !sink.in_run() {
            sink.start_run(self.run_values(&row.code, file, sha));
        }
        // The quinary table holds a single-age file's rows by band (pre-2017 wide files).
        let age = match row.age {
            AgeKey::Year(y) if banded => AgeKey::Band(AgeKey::band_of_year(y)),
            AgeKey::All => unreachable!("leaf rows have an age"),
            age => age,
        };
        sink.push_in_run(FactRow {
            sex: row.sex,
            age,
            count: (!row.suppressed).then_some(row.count as i64),
            suppressed: row.suppressed,
        })
    }

    /// The practice fact columns of the current practice's rows from `file`, in
    /// [`super::runs::RUN_COLUMNS`] order.
    fn run_values(&self, code: &str, file: &str, sha: &str) -> RunValues {
        let a = &self.current.attrs;
        let text = |v: &Option<String>| v.clone();
        Arc::from(vec![
            Some(code.to_string()),
            text(&a.name),
            text(&a.postcode),
            text(&a.pcn_code),
            text(&a.sub_icb_code),
            text(&a.sub_icb_ons_code),
            text(&a.icb_code),
            text(&a.icb_ons_code),
            text(&a.region_code),
            text(&a.region_name),
            Some(file.to_string()),
            Some(sha.to_string()),
        ])
    }

    /// Remembers what a row says of its practice, unless the map already said it.
    fn note_row_attrs(&mut self, row: &CountRow<'_>, from: AttributesFrom) {
        if row.level != OrgLevel::Practice || self.known_info(&row.code).is_some() {
            return;
        }
        let mapped = self.mapped(&row.code).cloned();
        // The rules fall back on a row's sub-ICB only where the map gives none.
        if let Some(sub) = &row.sub_icb
            && mapped.as_ref().is_none_or(|a| a.sub_icb_code.is_none())
        {
            let code = row.code.to_string();
            self.agg.row_sub_icb.insert(code, sub.to_string());
        }
        let info = match mapped {
            Some(attrs) => Info::mapped(attrs),
            None => Info {
                attrs: Arc::new(PracticeAttrs {
                    code: row.code.to_string(),
                    postcode: row.postcode.as_deref().map(str::to_string),
                    sub_icb_code: row.sub_icb.as_deref().map(str::to_string),
                    sub_icb_ons_code: row.sub_icb_ons.as_deref().map(str::to_string),
                    ..PracticeAttrs::default()
                }),
                from,
            },
        };
        self.info.insert(row.code.to_string(), Arc::new(info));
    }

    /// Streams the organisation single-age files into their fact table, keeping their
    /// ALL rows for the reconciliation.
    fn read_regions(
        &mut self,
        inputs: &[&InputFile],
        table: &deltalake::DeltaTable,
    ) -> Result<(TableDef, Vec<Add>), StepError> {
        let mut sink = self.sink(FACT_ORG_SINGLE_AGE, table)?;
        let mut agg = AgeAgg::for_orgs();
        for input in inputs {
            agg.present = true;
            let ctx = self.ctx(input.family);
            let mut results = Vec::new();
            let mut totals = Vec::new();
            let mut failure: Option<DeltaError> = None;
            each_csv(&input.file, &input.name, &input.limits, |label, reader| {
                let mut records = Records::new(reader, label)?;
                let stats = crate::formats::long::parse_counts(&mut records, &ctx, &mut |row| {
                    agg.add(row, label);
                    if row.sex == SexKey::All && row.age == AgeKey::All {
                        totals.push((
                            (label.to_string(), row.level, row.code.to_string()),
                            row.count,
                        ));
                    }
                    if failure.is_none() && row.is_org_leaf() && row.count > 0 {
                        let written = self.write_org_fact(&mut sink, row, label, &input.sha256);
                        failure = written.err();
                    }
                })?;
                results.push((label.to_string(), stats));
                Ok(())
            })?;
            if let Some(e) = failure {
                return Err(e.into());
            }
            self.agg.orgs.extend(totals);
            for (label, stats) in results {
                self.record_file(&label, input.family, &input.sha256, true, &stats);
            }
        }
        agg.finish();
        self.agg.org_single = agg;
        Ok(sink.finish()?)
    }

    fn read_lsoa(
        &mut self,
        inputs: &[&InputFile],
        table: &deltalake::DeltaTable,
    ) -> Result<(TableDef, Vec<Add>), StepError> {
        let mut sink = self.sink(FACT_LSOA, table)?;
        let mut keys = lsoa::LsoaKeys::default();
        for input in inputs {
            let ctx = self.ctx(input.family);
            let vintage = input.lsoa_vintage.unwrap_or(
                if self.month >= Month::new(2025, 10).expect("valid") {
                    2021
                } else {
                    2011
                },
            );
            let mut results = Vec::new();
            let mut failed: Option<DeltaError> = None;
            let (agg, date) = (&mut self.agg, self.date);
            each_csv(&input.file, &input.name, &input.limits, |label, reader| {
                let mut records = Records::new(reader, label)?;
                let file = lsoa::LsoaFile {
                    date,
                    label,
                    sha256: &input.sha256,
                    vintage,
                };
                let stats = crate::formats::lsoa::parse_lsoa(&mut records, &ctx, &mut |row| {
                    if failed.is_none() {
                        failed = lsoa::take(row, &file, &mut keys, agg, &mut sink).err();
                    }
                })?;
                results.push((label.to_string(), stats));
                Ok(())
            })?;
            if let Some(e) = failed {
                return Err(e.into());
            }
            for (label, stats) in results {
                self.record_file(&label, input.family, &input.sha256, true, &stats);
            }
        }
        Ok(sink.finish()?)
    }

    /// One row per practice seen in the month, with its attributes and total.
    fn write_practices(
        &mut self,
        table: &deltalake::DeltaTable,
    ) -> Result<(TableDef, Vec<Add>), DeltaError> {
        let mut codes: Vec<String> = self.agg.map.keys().cloned().collect();
        codes.extend(self.info.keys().cloned());
        codes.sort();
        codes.dedup();
        let mut sink = self.sink(PRACTICE_SNAPSHOT, table)?;
        for code in codes {
            let info = match self.agg.map.get(&code) {
                Some(attrs) => Arc::new(Info::mapped(Arc::clone(attrs))),
                None => self.info.get(&code).cloned().unwrap_or_default(),
            };
            let a = &info.attrs;
            let (total, total_from) = self.agg.list_size(&code).unzip();
            let (male, female) = self.agg.by_sex(&code);
            let source = info.from.label();
            sink.push(&[
                Val::Date(self.date),
                Val::Text(Some(&code)),
                Val::Text(a.name.as_deref()),
                Val::Text(a.postcode.as_deref()),
                Val::Text(a.pcn_code.as_deref()),
                Val::Text(a.pcn_name.as_deref()),
                Val::Text(a.sub_icb_code.as_deref()),
                Val::Text(a.sub_icb_ons_code.as_deref()),
                Val::Text(a.sub_icb_name.as_deref()),
                Val::Text(a.icb_code.as_deref()),
                Val::Text(a.icb_ons_code.as_deref()),
                Val::Text(a.icb_name.as_deref()),
                Val::Text(a.region_code.as_deref()),
                Val::Text(a.region_ons_code.as_deref()),
                Val::Text(a.region_name.as_deref()),
                Val::Text(a.supplier.as_deref()),
                Val::Text(Some(source)),
                Val::OptInt(total.map(|n| n as i64)),
                Val::OptInt(male.map(|n| n as i64)),
                Val::OptInt(female.map(|n| n as i64)),
                Val::Text(total_from),
            ])?;
        }
        sink.finish()
    }

    fn record_file(
        &mut self,
        label: &str,
        family: Family,
        sha: &str,
        used: bool,
        stats: &FileStats,
    ) {
        self.files.push(FileRead {
            label: label.to_string(),
            family,
            sha: sha.to_string(),
            used,
            stats: stats.clone(),
        });
    }

    fn note_missing(&mut self, inputs: &[InputFile]) {
        let has = |f: &[Family]| inputs.iter().any(|i| f.contains(&i.family));
        for (families, name) in [
            (&[Family::Map][..], "map"),
            (&[Family::PracticeTotals][..], "practice totals"),
            (
                &[Family::Quinary, Family::LegacyQuinary][..],
                "5-year age file",
            ),
            (
                &[
                    Family::SingleAgeMale,
                    Family::SingleAgeFemale,
                    Family::LegacySingleAge,
                ][..],
                "single-age files",
            ),
        ] {
            if !has(families) {
                self.agg.missing.push(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "PUBLICATION,EXTRACT_DATE,PRACTICE_CODE,PRACTICE_NAME,PRACTICE_POSTCODE,PCN_CODE,PCN_NAME,ONS_SUB_ICB_LOCATION_CODE,SUB_ICB_LOCATION_CODE,SUB_ICB_LOCATION_NAME,ONS_ICB_CODE,ICB_CODE,ICB_NAME,ONS_COMM_REGION_CODE,COMM_REGION_CODE,COMM_REGION_NAME,SUPPLIER_NAME
GP_PRAC_PAT_LIST,01Apr2026,A81001,DENSHAM SURGERY,TS1 0HU,U10000,NORTH PCN,E38000100,M1J4Y,NHS North East - M1J4Y,E54000040,D7T5G,Cumbria and North East,E40000003,Y56,London,EMIS
";
    const TOTALS: &str = "PUBLICATION,EXTRACT_DATE,TYPE,SUB_ICB_LOCATION_CODE,ONS_SUB_ICB_LOCATION_CODE,CODE,POSTCODE,SEX,AGE,NUMBER_OF_PATIENTS
GP_PRAC_PAT_LIST,2026-04-01,GP,01A,E38000101,A81001,TS1 0HU,ALL,ALL,4814
GP_PRAC_PAT_LIST,2026-04-01,GP,01A,E38000101,Y02161,B5 4HU,ALL,ALL,3
";

    fn input(dir: &std::path::Path, name: &str, family: Family, text: &str) -> InputFile {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        InputFile {
            name: name.to_string(),
            family,
            sha256: "0".repeat(64),
            file: Arc::new(std::fs::File::open(&path).unwrap()),
            lsoa_vintage: None,
            limits: Default::default(),
        }
    }

    #[test]
    fn a_mapped_practice_shares_the_maps_attributes_and_only_an_unmapped_one_keeps_its_rows_sub_icb()
     {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let with = MonthContext {
            handle: runtime.handle().clone(),
            built_at: Utc::now(),
            aliases: Aliases::default(),
        };
        let mut b = Builder::new(Month::new(2026, 4).unwrap(), with, Arc::default());
        b.read_map(&input(dir.path(), "map.csv", Family::Map, MAP))
            .unwrap_or_else(|e| panic!("{e}"));
        let totals = input(dir.path(), "all.csv", Family::PracticeTotals, TOTALS);
        b.read_totals(&totals).unwrap_or_else(|e| panic!("{e}"));

        let mapped = &b.info["A81001"];
        assert!(Arc::ptr_eq(&mapped.attrs, &b.agg.map["A81001"]));
        assert_eq!(mapped.from, AttributesFrom::Map);
        assert_eq!(b.info["Y02161"].from, AttributesFrom::PracticeTotals);
        // The rules read a row's sub-ICB only where the map gives none.
        assert_eq!(b.agg.row_sub_icb.get("A81001"), None);
        assert_eq!(b.agg.row_sub_icb["Y02161"], "01A");
    }
}
