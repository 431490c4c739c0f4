//! A month's files as jobs that run at once, one per core: the map and totals first (the
//! head: small, and every other file is enriched by them), then one job per family — the
//! single-age male and female files apart — each with its own sinks and sums, put together
//! by [`finish`] in the order one thread would have read them, so the month's tables and
//! evidence are the same as if read one file after another.
//!
//! Two jobs read a month where one did, so a build works on one month at a time at every
//! scale (a monthly sync uses both cores; a long build holds one month's sums, not one per
//! core).

use std::sync::Arc;

use deltalake::kernel::Add;

use super::{
    Builder, FileRead, InputFile, Known, MonthBuilt, MonthContext, MonthError, StepError, Targets,
};
use crate::batch::{Batcher, Val};
use crate::catalog::{
    FACT_LSOA, FACT_ORG_SINGLE_AGE, FACT_QUINARY, FACT_SINGLE_AGE, FILES, TableDef,
};
use crate::formats::{Family, FileStats, Quarantined};
use crate::month::Month;

/// A month once its map and practice totals are read: the jobs to run, and what they are
/// put together with.
pub(crate) struct Head {
    builder: Builder,
}

/// Which of the month's families a job reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Quinary,
    SingleAge,
    Regions,
    Lsoa,
}

/// One job: some of a month's files, read on whichever month thread is free.
pub(crate) struct Job {
    kind: Kind,
    /// Where its first file is in the month's files: one thread reads them in that order.
    order: usize,
    inputs: Vec<InputFile>,
    builder: Builder,
    /// The tables it writes data files for.
    targets: Arc<Targets>,
}

/// What a job read: its data files (or why it could not), and its sums and records.
pub(crate) struct Part {
    kind: Kind,
    /// Where its first file is in the month's files ([`Job::order`]).
    order: usize,
    read: Result<Vec<(TableDef, Vec<Add>)>, StepError>,
    builder: Builder,
}

/// Reads the month's map and practice totals (the other files are enriched by them).
pub(crate) fn read_head(
    month: Month,
    inputs: &[InputFile],
    with: MonthContext,
) -> Result<Head, MonthError> {
    let mut b = Builder::new(month, with, Arc::default());
    for input in inputs.iter().filter(|i| i.family == Family::Map) {
        b.read_map(input)?;
    }
    for input in inputs.iter().filter(|i| i.family == Family::PracticeTotals) {
        b.read_totals(input)?;
    }
    b.known = Arc::new(Known {
        map: std::mem::take(&mut b.agg.map),
        info: std::mem::take(&mut b.info),
    });
    Ok(Head { builder: b })
}

impl Head {
    /// The month's jobs, the largest first so the last to finish is a small one. The two
    /// single-age files are read apart.
    pub(crate) fn jobs(&self, inputs: &[InputFile], targets: &Arc<Targets>) -> Vec<Job> {
        let mut jobs = Vec::new();
        let b = &self.builder;
        for kind in [Kind::Quinary, Kind::SingleAge, Kind::Regions, Kind::Lsoa] {
            let family = kind.files(inputs);
            if kind == Kind::SingleAge && is_male_and_female(&family) {
                jobs.extend(
                    family
                        .into_iter()
                        .map(|i| job(b, kind, vec![i], inputs, targets)),
                );
            } else {
                // A family without files is still a job: it records its sums as absent.
                jobs.push(job(b, kind, family, inputs, targets));
            }
        }
        jobs.sort_by_key(|j| std::cmp::Reverse(j.size()));
        jobs
    }
}

/// A job reading `files` (some of the month's `inputs`) with what the head `b` read.
fn job(
    b: &Builder,
    kind: Kind,
    files: Vec<InputFile>,
    inputs: &[InputFile],
    targets: &Arc<Targets>,
) -> Job {
    Job {
        kind,
        targets: Arc::clone(targets),
        order: order_of(&files, inputs),
        inputs: files,
        builder: Builder::new(b.month, b.with.clone(), Arc::clone(&b.known)),
    }
}

impl Kind {
    /// The month's files of this kind's families, in the month's order.
    fn files(self, inputs: &[InputFile]) -> Vec<InputFile> {
        inputs
            .iter()
            .filter(|i| self.families().contains(&i.family))
            .cloned()
            .collect()
    }

    fn families(self) -> &'static [Family] {
        match self {
            Kind::Quinary => &[Family::Quinary, Family::LegacyQuinary],
            Kind::SingleAge => &[
                Family::SingleAgeMale,
                Family::SingleAgeFemale,
                Family::LegacySingleAge,
            ],
            Kind::Regions => &[Family::SingleAgeRegions],
            Kind::Lsoa => &[Family::Lsoa, Family::LegacyLsoa],
        }
    }
}

/// Where the first of `files` is among the month's `inputs`.
fn order_of(files: &[InputFile], inputs: &[InputFile]) -> usize {
    let first = files.first().map(|f| &f.name);
    inputs
        .iter()
        .position(|i| Some(&i.name) == first)
        .unwrap_or(usize::MAX)
}

/// One male and one female single-age file, nothing else: the pair read apart.
fn is_male_and_female(family: &[InputFile]) -> bool {
    let has = |f: Family| family.iter().any(|i| i.family == f);
    family.len() == 2 && has(Family::SingleAgeMale) && has(Family::SingleAgeFemale)
}

impl Job {
    /// Bytes to read (as stored in the month's working copy).
    fn size(&self) -> u64 {
        self.inputs
            .iter()
            .map(|i| i.file.metadata().map_or(0, |m| m.len()))
            .sum()
    }

    /// Reads the job's files into its own sinks and sums.
    pub(crate) fn run(self) -> Part {
        let Job {
            kind,
            order,
            inputs,
            mut builder,
            targets,
        } = self;
        let inputs: Vec<&InputFile> = inputs.iter().collect();
        let read = match kind {
            Kind::Quinary => builder.read_ages(
                &inputs,
                FACT_QUINARY,
                &targets.quinary,
                Some(&targets.org_quinary),
            ),
            Kind::SingleAge => builder.read_ages(&inputs, FACT_SINGLE_AGE, &targets.single, None),
            Kind::Regions => builder
                .read_regions(&inputs, &targets.org_single)
                .map(|adds| vec![adds]),
            Kind::Lsoa => builder
                .read_lsoa(&inputs, &targets.lsoa)
                .map(|adds| vec![adds]),
        };
        Part {
            kind,
            order,
            read,
            builder,
        }
    }
}

/// Puts the month's parts together, in the order one thread would have read them, writes
/// the practice snapshot and returns what the month built. The first failure in that order
/// stops the month, as it would have read alone.
pub(crate) fn finish(
    head: Head,
    parts: Vec<Part>,
    unused: &[(String, Family, String)],
    inputs: &[InputFile],
    targets: &Arc<Targets>,
) -> Result<MonthBuilt, MonthError> {
    let Head { builder: mut b } = head;
    let month = b.month;
    let mut discarded = Vec::new();
    let parts = single_age_whole(parts, &b, targets, inputs, &mut discarded);
    let mut adds = Vec::new();
    for part in parts {
        match part.kind {
            Kind::Quinary | Kind::SingleAge => adds.extend(part.read.map_err(|e| e.at(month))?),
            Kind::Regions => {
                let read = part.read.map(one);
                adds.push(b.own_table(FACT_ORG_SINGLE_AGE, read, month)?);
            }
            Kind::Lsoa => adds.push(b.own_table(FACT_LSOA, part.read.map(one), month)?),
        }
        b.absorb(part.builder);
    }
    let known = Arc::unwrap_or_clone(std::mem::take(&mut b.known));
    b.agg.map = known.map;
    b.info.extend(known.info);
    let practices = b.write_practices(&targets.practices);
    adds.push(practices.map_err(|source| MonthError::Delta { month, source })?);
    for (name, family, sha) in unused {
        b.record_file(name, *family, sha, false, &FileStats::default());
    }
    b.note_missing(inputs);
    let (files, quarantine) = file_records(&mut b);
    Ok(MonthBuilt {
        adds,
        discarded,
        aggregates: b.agg,
        files,
        quarantine,
        table_failures: b.table_failures,
    })
}

fn one(adds: Vec<(TableDef, Vec<Add>)>) -> (TableDef, Vec<Add>) {
    adds.into_iter()
        .next()
        .expect("a job of one table returns its files")
}

/// The parts in reading order, the single-age pair made one: its sums put together when
/// the two files share no sex, else (or when either failed) the pair read again as one, so
/// a key repeated across them, or the first failure, is found as reading them in turn
/// finds it. The pair's files are then `discarded`.
fn single_age_whole(
    mut parts: Vec<Part>,
    head: &Builder,
    targets: &Arc<Targets>,
    inputs: &[InputFile],
    discarded: &mut Vec<(TableDef, Vec<Add>)>,
) -> Vec<Part> {
    parts.sort_by_key(|p| (p.kind, p.order));
    let pair: Vec<usize> = (0..parts.len())
        .filter(|&i| parts[i].kind == Kind::SingleAge)
        .collect();
    let [one, other] = pair[..] else {
        return parts;
    };
    let apart = parts[one].read.is_ok()
        && parts[other].read.is_ok()
        && !(parts[one].builder.agg.single).shares_a_sex(&parts[other].builder.agg.single);
    let second = parts.remove(other);
    let first = &mut parts[one];
    if apart {
        join_pair(first, second);
        return parts;
    }
    for part in [
        std::mem::replace(first, again(head, inputs, targets)),
        second,
    ] {
        discarded.extend(part.read.unwrap_or_default());
    }
    parts
}

/// The second file's part taken into the first's: one part of the family.
fn join_pair(first: &mut Part, second: Part) {
    let Part {
        read, mut builder, ..
    } = second;
    let sums = std::mem::take(&mut builder.agg.single);
    first.builder.agg.single.absorb(sums);
    first.builder.absorb(builder);
    if let (Ok(adds), Ok(more)) = (&mut first.read, read) {
        for (def, files) in more {
            match adds.iter_mut().find(|(d, _)| d.name == def.name) {
                Some((_, mine)) => mine.extend(files),
                None => adds.push((def, files)),
            }
        }
    }
}

/// The single-age files read again, one after the other, by one job.
fn again(head: &Builder, inputs: &[InputFile], targets: &Arc<Targets>) -> Part {
    let files = Kind::SingleAge.files(inputs);
    job(head, Kind::SingleAge, files, inputs, targets).run()
}

/// The `files` table's rows for the month and the rows quarantined, in reading order; the
/// files' statistics into the evidence.
fn file_records(
    b: &mut Builder,
) -> (
    deltalake::arrow::record_batch::RecordBatch,
    Vec<Quarantined>,
) {
    let mut batch = Batcher::new(FILES);
    let mut quarantine = Vec::new();
    for file in std::mem::take(&mut b.files) {
        let FileRead {
            label,
            family,
            sha,
            used,
            stats,
        } = file;
        quarantine.extend(stats.quarantined.iter().cloned());
        let family_name = serde_json::to_value(family)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        batch.push(&[
            Val::Ts(b.with.built_at),
            Val::Date(b.date),
            Val::Text(Some(&label)),
            Val::Text(Some(&sha)),
            Val::Text(Some(&family_name)),
            Val::Bool(used),
            Val::Int(stats.rows_read as i64),
            Val::Int(stats.rows_leaf as i64),
            Val::Int(stats.rows_zero as i64),
            Val::Int(stats.rows_subtotal as i64),
            Val::Int(stats.rows_quarantined as i64),
        ]);
        b.agg.file_stats.push((label, family, stats));
    }
    (batch.finish(), quarantine)
}
