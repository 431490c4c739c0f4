//! The evidence a month's checks run on: sums per practice, sex and organisation, gathered
//! by silver while the rows stream past. Plain data: the rules in this module read it and
//! never reach back into how it was gathered.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::formats::{AgeKey, CountRow, Family, FileStats, OrgLevel, PracticeAttrs, SexKey};

/// Sums per practice and organisation, gathered while building, for the checks.
#[derive(Debug, Default)]
pub(crate) struct Aggregates {
    /// Practice attributes from the map (empty when the release has none).
    pub(crate) map: HashMap<String, Arc<PracticeAttrs>>,
    pub(crate) has_map: bool,
    /// Practice totals file: code → (count, line).
    pub(crate) totals: HashMap<String, (u64, u64)>,
    pub(crate) has_totals: bool,
    pub(crate) quinary: AgeAgg,
    pub(crate) single: AgeAgg,
    /// The organisation rows of the quinary files, keyed `LEVEL code` (e.g. `ICB QHM`).
    pub(crate) org_quinary: AgeAgg,
    /// The organisation single-age file's rows, keyed `LEVEL code`.
    pub(crate) org_single: AgeAgg,
    /// Published ALL/ALL rows of organisations: (file, level, code) → count.
    pub(crate) orgs: BTreeMap<(String, OrgLevel, String), u64>,
    /// Sub-ICB of each practice as the practice files give it (when there is no map).
    pub(crate) row_sub_icb: HashMap<String, String>,
    /// LSOA sums per practice × sex, and the ALL rows.
    /// LSOA sums per practice × sex × vintage.
    pub(crate) lsoa_leaf: HashMap<(String, SexKey, u16), u64>,
    /// LSOA rows repeated: (practice, LSOA, first line, repeated line).
    pub(crate) lsoa_dups: Vec<(String, String, u64, u64)>,
    /// Practices listed twice in the map or the practice totals file: (file, code, first
    /// line, repeated line).
    pub(crate) practice_dups: Vec<(String, String, u64, u64)>,
    pub(crate) file_stats: Vec<(String, Family, FileStats)>,
    pub(crate) missing: Vec<&'static str>,
    /// Every practice with a published figure, sorted: worked out on first use, once the
    /// month's files are read (a dozen rules go through them).
    practices: std::sync::OnceLock<Vec<String>>,
}

/// Sums of one age file family (quinary or single-age), of its practice rows or (for
/// [`AgeAgg::for_orgs`]) of its organisation rows. Every sum is held by the small id its code
/// was given as rows streamed in ([`Codes`]) and read by code through the methods below:
/// rekeyed by code text once a family was read, the sums of the months in flight took a
/// sixth of a sync's heap at its peak.
#[derive(Debug, Default)]
pub(crate) struct AgeAgg {
    pub(crate) present: bool,
    /// True when the sums are of organisation rows (keyed `LEVEL code`).
    pub(crate) orgs: bool,
    /// True when the files are the pre-2017 wide ones (their total columns are published).
    pub(crate) wide: bool,
    pub(crate) file: String,
    /// The codes read, each with the id the sums below are indexed by.
    codes: Codes,
    /// The codes to size the id-indexed sums for at once ([`AgeAgg::expect_codes`]).
    expected: usize,
    /// Σ leaf counts per code × sex.
    leaf: BySex,
    /// Published ALL rows per code × sex (sex ALL = persons).
    all: BySex,
    /// Σ leaf counts per practice × sex × 5-year band (single years summed into bands), for
    /// the single-age = quinary gate. Practice rows only.
    band_table: BandTable,
    /// The first band of an open top band (`85+`), when the files use one.
    pub(crate) open_band: Option<u8>,
    /// Masked cells per code × sex (pre-2017 wide files): their sums cannot be verified.
    masked: BySex,
    /// Each key's first line while rows stream in, to name both lines of a repeated key;
    /// freed by [`AgeAgg::finish`].
    keys: KeyLines,
    /// Repeated keys: (file, practice, sex, age label, first line, repeated line).
    pub(crate) duplicates: Vec<(String, String, SexKey, String, u64, u64)>,
    /// The sexes rows were read for, one bit each ([`AgeAgg::absorb`] is exact when two
    /// aggregates share none).
    sexes: u8,
}

/// Counts per code × sex, indexed by code id, then by sex (`SexKey as usize`).
#[derive(Debug, Default)]
struct BySex {
    rows: Vec<[Option<u64>; 3]>,
    /// The keys with a count.
    len: usize,
}

/// Every sex, in the order of its slot in [`BySex`].
const SEXES: [SexKey; 3] = [SexKey::All, SexKey::Male, SexKey::Female];

impl BySex {
    fn get(&self, id: u32, sex: SexKey) -> Option<u64> {
        self.rows.get(id as usize)?[sex as usize]
    }

    /// The count of a key, made 0 when it has none yet.
    fn entry(&mut self, id: u32, sex: SexKey, expected: usize) -> &mut u64 {
        let slot = &mut by_id(&mut self.rows, id, expected)[sex as usize];
        if slot.is_none() {
            self.len += 1;
        }
        slot.get_or_insert(0)
    }

    /// True when code `id` has a count for some sex.
    fn has(&self, id: u32) -> bool {
        self.rows
            .get(id as usize)
            .is_some_and(|row| row.iter().any(Option::is_some))
    }

    /// Every key with a count, by code id, then sex.
    fn iter(&self) -> impl Iterator<Item = (u32, SexKey, u64)> + '_ {
        self.rows.iter().enumerate().flat_map(|(id, row)| {
            SEXES
                .into_iter()
                .zip(row)
                .filter_map(move |(sex, n)| Some((id as u32, sex, (*n)?)))
        })
    }
}

/// One practice's leaf counts summed by sex and 5-year band, and which of those keys rows
/// were read for (a key read with a zero count is still compared). Leaf rows have a sex:
/// males, then females.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct BandSums {
    sums: [[u64; BANDS]; 2],
    /// One bit per band, per sex.
    read: [u32; 2],
}

const BANDS: usize = crate::formats::values::BANDS as usize;

/// The sexes band sums are kept for, in their order in [`BandSums`].
const LEAF_SEXES: [SexKey; 2] = [SexKey::Male, SexKey::Female];

/// Where a sex's sums sit in [`BandSums`]; `None` for persons (ALL rows are subtotals).
fn leaf_sex(sex: SexKey) -> Option<usize> {
    LEAF_SEXES.iter().position(|&s| s == sex)
}

/// The sex and band slots a leaf key is summed in (an open top band in the last); `None`
/// for persons.
fn slot(sex: SexKey, band: u8) -> Option<(usize, usize)> {
    Some((leaf_sex(sex)?, usize::from(band).min(BANDS - 1)))
}

impl BandSums {
    fn add(&mut self, sex: SexKey, band: u8, count: u64) {
        let Some((sex, band)) = slot(sex, band) else {
            return;
        };
        self.sums[sex][band] += count;
        self.read[sex] |= 1 << band;
    }

    fn is_empty(&self) -> bool {
        self.read == [0; 2]
    }

    /// The sum of a key, when a row was read for it.
    pub(crate) fn get(&self, sex: SexKey, band: u8) -> Option<u64> {
        let (sex, band) = (leaf_sex(sex)?, usize::from(band));
        (band < BANDS && self.read[sex] & (1 << band) != 0).then(|| self.sums[sex][band])
    }

    /// The keys read, in (sex, band) order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = (SexKey, u8)> + '_ {
        self.keys_with(&BandSums::EMPTY)
    }

    /// The keys read here or in `other`, each once, in (sex, band) order.
    pub(crate) fn keys_with<'a>(
        &'a self,
        other: &'a BandSums,
    ) -> impl Iterator<Item = (SexKey, u8)> + 'a {
        LEAF_SEXES
            .into_iter()
            .enumerate()
            .flat_map(move |(at, sex)| {
                let read = self.read[at] | other.read[at];
                (0..BANDS as u8)
                    .filter(move |band| read & (1 << band) != 0)
                    .map(move |band| (sex, band))
            })
    }

    /// No key read.
    pub(crate) const EMPTY: BandSums = BandSums {
        sums: [[0; BANDS]; 2],
        read: [0; 2],
    };

    /// Bands from `top` on summed into `top`: an open top band (`85+`) against single years.
    pub(crate) fn folded(&self, top: u8) -> BandSums {
        let mut out = BandSums::default();
        for (sex, band) in self.keys() {
            let n = self.get(sex, band).unwrap_or(0);
            out.add(sex, band.min(top), n);
        }
        out
    }
}

/// Band sums indexed by code id, one table per sex, each made at its sex's first row and
/// sized once for the codes expected. A single-age file is of one sex, so it pays for one
/// table: 80 bytes a practice, where one table of every sex's sums took 496, grown by
/// doubling (a third of a 3-month sync's heap at its peak). A band's sum is held in 32 bits
/// (a practice's patients of one sex and band are far fewer); a sum past that is held
/// whole in `wide`, so every sum stays exact. With 64-bit sums, the eight tables of two
/// months in flight took 8 MB of a 36-month sync's peak.
#[derive(Debug, Default, Clone)]
struct BandTable {
    sums: [Vec<[u32; BANDS]>; 2],
    read: [Vec<u32>; 2],
    /// Sums from `u32::MAX` on, by (code id, sex slot, band); their slot holds `u32::MAX`.
    wide: FastMap<(u32, u8, u8), u64>,
}

impl BandTable {
    fn add(&mut self, id: u32, sex: SexKey, band: u8, count: u64, expected: usize) {
        let Some((sex, band)) = slot(sex, band) else {
            return;
        };
        self.add_at(id, sex, band, count, expected);
    }

    fn add_at(&mut self, id: u32, sex: usize, band: usize, count: u64, expected: usize) {
        *by_id(&mut self.read[sex], id, expected) |= 1 << band;
        let narrow = &mut by_id(&mut self.sums[sex], id, expected)[band];
        let sum = match *narrow {
            u32::MAX => wide_sum(&self.wide, id, sex, band),
            held => u64::from(held),
        } + count;
        match u32::try_from(sum) {
            Ok(fits) if fits < u32::MAX => *narrow = fits,
            _ => {
                *narrow = u32::MAX;
                self.wide.insert((id, sex as u8, band as u8), sum);
            }
        }
    }

    /// The sums of code `id`.
    fn get(&self, id: u32) -> BandSums {
        let (mut out, i) = (BandSums::EMPTY, id as usize);
        for sex in 0..LEAF_SEXES.len() {
            if let (Some(sums), Some(read)) = (self.sums[sex].get(i), self.read[sex].get(i)) {
                for (band, (out, &narrow)) in out.sums[sex].iter_mut().zip(sums).enumerate() {
                    *out = match narrow {
                        u32::MAX => wide_sum(&self.wide, id, sex, band),
                        _ => u64::from(narrow),
                    };
                }
                out.read[sex] = *read;
            }
        }
        out
    }

    fn merge(&mut self, id: u32, other: &BandSums, expected: usize) {
        for sex in (0..LEAF_SEXES.len()).filter(|&sex| other.read[sex] != 0) {
            for band in (0..BANDS).filter(|band| other.read[sex] & (1 << band) != 0) {
                self.add_at(id, sex, band, other.sums[sex][band], expected);
            }
        }
    }

    /// One more than the greatest id with a slot in some table.
    fn ids(&self) -> usize {
        self.read.iter().map(Vec::len).max().unwrap_or(0)
    }
}

/// A band's sum held whole in [`BandTable`]'s `wide`, its slot holding `u32::MAX`.
fn wide_sum(wide: &FastMap<(u32, u8, u8), u64>, id: u32, sex: usize, band: usize) -> u64 {
    let key = (id, sex as u8, band as u8);
    wide.get(&key).copied().unwrap_or(u64::from(u32::MAX))
}

/// An aggregate's band sums read by practice code: its table with the codes its ids stand
/// for, or a table folded from it ([`Bands::folded`]) under the same ids.
#[derive(Debug)]
pub(crate) struct Bands<'a> {
    codes: &'a Codes,
    table: Cow<'a, BandTable>,
}

impl<'a> Bands<'a> {
    /// The sums of a practice, when a leaf row of it was read.
    pub(crate) fn get(&self, code: &str) -> Option<BandSums> {
        let id = self.codes.get(code)?;
        Some(self.table.get(id)).filter(|sums| !sums.is_empty())
    }

    /// Every practice with sums, with its sums.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'a str, BandSums)> + '_ {
        let codes: &'a Codes = self.codes;
        (0..self.table.ids())
            .zip(codes.names())
            .map(|(id, code)| (code, self.table.get(id as u32)))
            .filter(|(_, sums)| !sums.is_empty())
    }

    /// True when no practice has sums.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Bands from `top` on summed into `top`: an open top band (`85+`) against single years.
    pub(crate) fn folded(&self, top: u8) -> Bands<'a> {
        let (mut table, ids) = (BandTable::default(), self.table.ids());
        for id in (0..ids as u32).filter(|&id| !self.table.get(id).is_empty()) {
            table.merge(id, &self.table.get(id).folded(top), ids);
        }
        Bands {
            codes: self.codes,
            table: Cow::Owned(table),
        }
    }
}

/// The entry of code `id` in a table indexed by code id, grown to hold it: at first to the
/// `expected` codes at once, since grown by doubling the old and the new table are held
/// at once while copying, and up to half the new one is never used.
fn by_id<T: Default + Clone>(table: &mut Vec<T>, id: u32, expected: usize) -> &mut T {
    let i = id as usize;
    if table.len() <= i {
        table.reserve_exact(expected.saturating_sub(table.len()));
        table.resize(i + 1, T::default());
    }
    &mut table[i]
}

/// A map with a fast, fixed hasher: keys are small ids and enums from files gplake reads,
/// not input an attacker shapes to collide (and a file is capped in size anyway).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// The codes one aggregate has seen, each given a small id the first time. Each code's
/// text is held once, in one buffer, and found by its hash: a map from `String` to id
/// beside a list of `String`s held every code twice, about 100 bytes a code (5 MB for the
/// LSOA codes of the bench's LSOA month).
#[derive(Debug, Default)]
pub(crate) struct Codes {
    /// Every code's text, one after another: code `id` ends at `ends[id]`.
    text: String,
    ends: Vec<usize>,
    /// The ids, hashed by their code's text.
    ids: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::FixedState,
    /// `LEVEL code` of the organisation row being looked up, reused between rows.
    scratch: String,
    /// The id the last row looked up.
    last: Option<u32>,
}

impl Codes {
    /// The id of `code`, given the first time it is seen.
    pub(crate) fn id(&mut self, code: &str) -> u32 {
        // Files come grouped by practice: most rows are the last row's code again.
        if let Some(last) = self.last.filter(|&id| self.name(id) == code) {
            return last;
        }
        let id = self.lookup(code);
        self.last = Some(id);
        id
    }

    /// The id of `code`, when it was seen.
    pub(crate) fn get(&self, code: &str) -> Option<u32> {
        self.find(self.hasher.hash_one(code), code)
    }

    fn find(&self, hash: u64, code: &str) -> Option<u32> {
        self.ids.find(hash, |&id| self.name(id) == code).copied()
    }

    fn lookup(&mut self, code: &str) -> u32 {
        let hash = self.hasher.hash_one(code);
        if let Some(id) = self.find(hash, code) {
            return id;
        }
        let id = u32::try_from(self.ends.len()).expect("fewer than 4 billion codes");
        self.text.push_str(code);
        self.ends.push(self.text.len());
        let Codes {
            text,
            ends,
            ids,
            hasher,
            ..
        } = self;
        let name = |id: &u32| code_text(text, ends, *id);
        ids.insert_unique(hash, id, |id| hasher.hash_one(name(id)));
        id
    }

    /// The id of an organisation, keyed `LEVEL code` (e.g. `ICB QHM`).
    fn org_id(&mut self, level: OrgLevel, code: &str) -> u32 {
        let mut key = std::mem::take(&mut self.scratch);
        key.clear();
        key.push_str(level.label());
        key.push(' ');
        key.push_str(code);
        let id = self.id(&key);
        self.scratch = key;
        id
    }

    fn name(&self, id: u32) -> &str {
        code_text(&self.text, &self.ends, id)
    }

    /// How many codes were seen.
    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Every code, by id.
    fn names(&self) -> impl Iterator<Item = &str> {
        (0..self.len() as u32).map(|id| self.name(id))
    }
}

/// The text of code `id` in [`Codes`]' buffer. Inlined: every row compares its code with
/// the last row's through it.
#[inline]
fn code_text<'a>(text: &'a str, ends: &[usize], id: u32) -> &'a str {
    let id = id as usize;
    let start = id.checked_sub(1).map_or(0, |before| ends[before]);
    &text[start..ends[id]]
}

/// The line each (code id, sex, age) key was first read on: per kind of age (ALL, single
/// year, 5-year band) and sex, a dense table with a slot per age of that kind for each code,
/// as code ids are small and consecutive. A table is made at its first row, so a family
/// pays only for the keys its files can have. A slot holds the key's line as a byte, its
/// distance from its code's first line in the table: a file lists a practice's rows
/// together, so a single-age file's 96 years take 96 bytes a code and sex (0.6 MB for
/// 6,500 practices, where a 4-byte line a slot took 2.5 MB, held for each single-age file
/// being read). One 128-slot table per sex, whatever the ages, took 10 MB for a quinary
/// file; a hashed index of a month's 1.2 million single-age keys took about 36 MB and 5 % of
/// a build's time. Open bands, years past 95, lines past `u32` and lines too far from their
/// code's first (a file in another order) go to a map: exact, at the map's cost.
#[derive(Debug, Default)]
struct KeyLines {
    /// Per kind of age ([`KeyLines::slot`]), then sex, per code: the line + 1 of its first
    /// key in the table; 0 before it.
    firsts: [[Vec<u32>; 3]; 3],
    /// Per kind of age, then sex, per slot: the key's line less its code's first + 1; 0
    /// where the key has not been read.
    lines: [[Vec<u8>; 3]; 3],
    /// The codes to size each table for at its first row.
    codes: usize,
    other: FastMap<(u32, SexKey, AgeKey), u64>,
}

/// Slots a code takes in the tables of each kind of age: ALL, the years 0–95, the bands.
const AGE_SLOTS: [usize; 3] = [1, 96, crate::formats::values::BANDS as usize];

impl KeyLines {
    /// Records `line` for the key and returns `None` the first time; afterwards, the line
    /// the key was first read on.
    fn first_line(&mut self, id: u32, sex: SexKey, age: AgeKey, line: u64) -> Option<u64> {
        let key = (id, sex, age);
        let Some((kind, at)) = KeyLines::slot(age) else {
            return self.other_first_line(key, line);
        };
        let (width, codes) = (AGE_SLOTS[kind], self.codes);
        let first = by_id(&mut self.firsts[kind][sex as usize], id, codes);
        if *first == 0 {
            *first = u32::try_from(line + 1).unwrap_or(0);
        }
        let first = u64::from(*first);
        let lines = &mut self.lines[kind][sex as usize];
        let slot = id as usize * width + at;
        if lines.len() <= slot {
            // Sized once for the codes expected: grown by doubling, the old and the new
            // table would be held at once.
            lines.reserve_exact((codes * width).saturating_sub(lines.len()));
            lines.resize((id as usize + 1) * width, 0);
        }
        let near = (line + 1)
            .checked_sub(first)
            .and_then(|apart| u8::try_from(apart + 1).ok())
            .filter(|_| first != 0);
        match (lines[slot], near) {
            (0, Some(near)) if self.other.is_empty() || !self.other.contains_key(&key) => {
                lines[slot] = near;
                None
            }
            (0, _) => self.other_first_line(key, line),
            (seen, _) => Some(first - 1 + u64::from(seen - 1)),
        }
    }

    fn other_first_line(&mut self, key: (u32, SexKey, AgeKey), line: u64) -> Option<u64> {
        match self.other.entry(key) {
            std::collections::hash_map::Entry::Occupied(first) => Some(*first.get()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(line);
                None
            }
        }
    }

    /// The key's kind of age (the index of its tables) and its slot among a code's slots
    /// of that kind.
    fn slot(age: AgeKey) -> Option<(usize, usize)> {
        match age {
            AgeKey::All => Some((0, 0)),
            AgeKey::Year(year) if year <= 95 => Some((1, usize::from(year))),
            AgeKey::Band(band) if band < crate::formats::values::BANDS => {
                Some((2, usize::from(band)))
            }
            _ => None,
        }
    }
}

impl AgeAgg {
    /// Sums of organisation rows.
    pub(crate) fn for_orgs() -> AgeAgg {
        AgeAgg {
            orgs: true,
            ..AgeAgg::default()
        }
    }

    /// What a key names, for messages: `practice` or `organisation`.
    pub(crate) fn noun(&self) -> &'static str {
        if self.orgs {
            "organisation"
        } else {
            "practice"
        }
    }

    /// Adds one row, summed under its code's small id: a row costs no string allocation.
    pub(crate) fn add(&mut self, row: &CountRow<'_>, file: &str) {
        let practice = row.level == OrgLevel::Practice;
        if practice == self.orgs {
            return;
        }
        self.sexes |= 1 << row.sex as u8;
        let id = if self.orgs {
            self.codes.org_id(row.level, &row.code)
        } else {
            self.codes.id(&row.code)
        };
        let (sex, age, expected) = (row.sex, row.age, self.expected);
        if let Some(first) = self.keys.first_line(id, sex, age, row.line) {
            let code = self.codes.name(id).to_string();
            self.duplicates
                .push((file.to_string(), code, sex, age.label(), first, row.line));
            return;
        }
        if row.suppressed {
            *self.masked.entry(id, sex, expected) += 1;
            return;
        }
        if sex != SexKey::All && age != AgeKey::All {
            if let (AgeKey::OpenBand(_), Some(b)) = (age, age.first_band()) {
                self.open_band = Some(self.open_band.map_or(b, |o| o.min(b)));
            }
            if let (false, Some(band)) = (self.orgs, age.first_band()) {
                self.band_table.add(id, sex, band, row.count, expected);
            }
            *self.leaf.entry(id, sex, expected) += row.count;
        } else if age == AgeKey::All {
            *self.all.entry(id, sex, expected) = row.count;
        }
    }

    /// Sizes the key index and the id-indexed sums for `codes` practices at once: grown a
    /// code at a time, they doubled to twice their size and held the old and the new table
    /// while copying.
    pub(crate) fn expect_codes(&mut self, codes: usize) {
        self.expected = codes;
        self.keys.codes = codes;
    }

    /// Frees the per-row key index. Called once every file of the family has been read:
    /// the sums stay as they were summed, by code id.
    pub(crate) fn finish(&mut self) {
        self.keys = KeyLines::default();
        self.codes.scratch = String::new();
    }

    /// True when this and `other` read rows of a common sex: a key could then be in both,
    /// and only reading them as one would find it repeated.
    pub(crate) fn shares_a_sex(&self, other: &AgeAgg) -> bool {
        self.sexes & other.sexes != 0
    }

    /// Takes in the finished sums of the family's next file, read apart (a single-age male
    /// file beside the female one), as if read after this one's. Exact when the two share no
    /// sex ([`AgeAgg::shares_a_sex`]): no key is then in both, and every sum is of distinct
    /// keys.
    pub(crate) fn absorb(&mut self, other: AgeAgg) {
        self.present |= other.present;
        self.wide = other.wide;
        self.file = other.file;
        self.sexes |= other.sexes;
        self.open_band = match (self.open_band, other.open_band) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.duplicates.extend(other.duplicates);
        if self.codes.len() == 0 {
            self.codes = other.codes;
            self.leaf = other.leaf;
            self.all = other.all;
            self.masked = other.masked;
            self.band_table = other.band_table;
            return;
        }
        let expected = self.codes.len().max(other.codes.len());
        for (theirs, code) in (0u32..).zip(other.codes.names()) {
            let id = self.codes.lookup(code);
            for sex in SEXES {
                if let Some(n) = other.leaf.get(theirs, sex) {
                    *self.leaf.entry(id, sex, expected) += n;
                }
                if let Some(n) = other.all.get(theirs, sex) {
                    *self.all.entry(id, sex, expected) = n;
                }
                if let Some(n) = other.masked.get(theirs, sex) {
                    *self.masked.entry(id, sex, expected) += n;
                }
            }
            let sums = other.band_table.get(theirs);
            if !sums.is_empty() {
                self.band_table.merge(id, &sums, expected);
            }
        }
    }

    fn id(&self, code: &str) -> Option<u32> {
        self.codes.get(code)
    }

    /// Σ leaf counts of a code for one sex, when a leaf row of it was read.
    pub(crate) fn leaf_sum(&self, code: &str, sex: SexKey) -> Option<u64> {
        self.leaf.get(self.id(code)?, sex)
    }

    /// The published ALL row of a code for one sex (ALL: persons).
    pub(crate) fn all_row(&self, code: &str, sex: SexKey) -> Option<u64> {
        self.all.get(self.id(code)?, sex)
    }

    /// Every published ALL row: code, sex, count.
    pub(crate) fn all_rows(&self) -> impl Iterator<Item = (&str, SexKey, u64)> {
        self.all
            .iter()
            .map(|(id, sex, n)| (self.codes.name(id), sex, n))
    }

    /// How many ALL rows were read (one per code × sex).
    pub(crate) fn all_row_count(&self) -> usize {
        self.all.len
    }

    /// True when the code has masked cells for the sex: its sums cannot be verified.
    pub(crate) fn is_masked(&self, code: &str, sex: SexKey) -> bool {
        self.masked.len > 0
            && self
                .id(code)
                .is_some_and(|id| self.masked.get(id, sex).is_some())
    }

    /// The code × sex keys with masked cells, and how many cells.
    pub(crate) fn masked_cells(&self) -> (usize, u64) {
        (self.masked.len, self.masked.iter().map(|(_, _, n)| n).sum())
    }

    /// The band sums, by practice code.
    pub(crate) fn bands(&self) -> Bands<'_> {
        Bands {
            codes: &self.codes,
            table: Cow::Borrowed(&self.band_table),
        }
    }

    /// Σ leaf counts of a practice, both sexes.
    pub(crate) fn practice_total(&self, code: &str) -> u64 {
        [SexKey::Male, SexKey::Female]
            .into_iter()
            .map(|sex| self.leaf_sum(code, sex).unwrap_or(0))
            .sum()
    }

    /// Σ leaf counts of a practice for one sex, when the family was read.
    pub(crate) fn sex_total(&self, code: &str, sex: SexKey) -> Option<u64> {
        self.present.then(|| self.leaf_sum(code, sex).unwrap_or(0))
    }

    /// Every practice with leaf rows, sorted.
    pub(crate) fn practices(&self) -> Vec<String> {
        let ids = (0..self.leaf.rows.len() as u32).filter(|&id| self.leaf.has(id));
        let mut codes: Vec<String> = ids.map(|id| self.codes.name(id).to_string()).collect();
        codes.sort();
        codes
    }
}

impl Aggregates {
    /// Takes in what one job of the month read: each family is read by one job (a family
    /// read in pieces is put together first, [`AgeAgg::absorb`]), so a family's sums are
    /// taken whole; the rest is added in the jobs' order, the first practice's sub-ICB kept.
    pub(crate) fn absorb(&mut self, part: Aggregates) {
        let take = |mine: &mut AgeAgg, theirs: AgeAgg| {
            if theirs.present {
                *mine = theirs;
            }
        };
        take(&mut self.quinary, part.quinary);
        take(&mut self.single, part.single);
        take(&mut self.org_quinary, part.org_quinary);
        take(&mut self.org_single, part.org_single);
        self.orgs.extend(part.orgs);
        for (code, sub_icb) in part.row_sub_icb {
            self.row_sub_icb.entry(code).or_insert(sub_icb);
        }
        self.lsoa_leaf.extend(part.lsoa_leaf);
        self.lsoa_dups.extend(part.lsoa_dups);
        self.practice_dups.extend(part.practice_dups);
    }

    /// A practice's list size as published, and which file gave it: the practice totals file,
    /// else the wide files' total column, else the sum of its 5-year, else single-year rows.
    pub(crate) fn list_size(&self, code: &str) -> Option<(u64, &'static str)> {
        if let Some((count, _)) = self.totals.get(code) {
            return Some((*count, "practice_totals"));
        }
        for (agg, from) in [(&self.quinary, "quinary"), (&self.single, "single_age")] {
            if agg.wide
                && let Some(count) = agg.all_row(code, SexKey::All)
            {
                return Some((count, "wide_total"));
            }
            if agg.present && agg.has_practice(code) {
                return Some((agg.practice_total(code), from));
            }
        }
        None
    }

    /// True when the month has practice-level figures: age files or practice totals.
    pub(crate) fn has_practice_figures(&self) -> bool {
        self.has_totals || self.quinary.present || self.single.present
    }

    /// Every practice with a published figure, sorted. Read only once every file of the
    /// month has been read: the first call settles it.
    pub(crate) fn practices_with_figures(&self) -> &[String] {
        self.practices.get_or_init(|| {
            let mut codes = self.quinary.practices();
            codes.extend(self.single.practices());
            codes.extend(self.quinary.all_rows().map(|(code, _, _)| code.to_string()));
            codes.extend(self.totals.keys().cloned());
            codes.sort();
            codes.dedup();
            codes
        })
    }

    /// Σ practice list sizes: the national figure from the practices.
    pub(crate) fn national_from_practices(&self) -> u64 {
        self.practices_with_figures()
            .iter()
            .filter_map(|c| self.list_size(c))
            .map(|s| s.0)
            .sum()
    }

    /// The published national figure: Σ the region ALL rows of one file (the organisation
    /// single-age file when the month has it), and that file.
    pub(crate) fn published_national(&self) -> Option<(u64, String)> {
        let mut by_file: BTreeMap<&str, u64> = BTreeMap::new();
        for ((file, level, _), count) in &self.orgs {
            if *level == OrgLevel::Region {
                *by_file.entry(file.as_str()).or_default() += count;
            }
        }
        let regions_file = self
            .file_stats
            .iter()
            .find(|(f, family, _)| {
                *family == Family::SingleAgeRegions && by_file.contains_key(f.as_str())
            })
            .map(|(f, _, _)| f.as_str());
        let file = regions_file.or_else(|| by_file.keys().next().copied())?;
        Some((by_file[file], file.to_string()))
    }

    /// A practice's male and female patients from its age rows (from the wide files' total
    /// columns before 2017), `None` when no age file gives them (never 0 for want of a file).
    pub(crate) fn by_sex(&self, code: &str) -> (Option<u64>, Option<u64>) {
        for agg in [&self.quinary, &self.single] {
            let total = |sex| agg.all_row(code, sex);
            if agg.wide && total(SexKey::Male).is_some() {
                return (total(SexKey::Male), total(SexKey::Female));
            }
            if agg.present && agg.has_practice(code) {
                return (
                    agg.sex_total(code, SexKey::Male),
                    agg.sex_total(code, SexKey::Female),
                );
            }
        }
        (None, None)
    }
}

impl AgeAgg {
    /// True when the files have rows (leaf or ALL) for the practice.
    pub(crate) fn has_practice(&self, code: &str) -> bool {
        self.id(code)
            .is_some_and(|id| self.leaf.has(id) || self.all.has(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(agg: &mut AgeAgg, code: &str, sex: SexKey, n: u64) {
        agg.present = true;
        let id = agg.codes.lookup(code);
        *agg.leaf.entry(id, sex, 0) = n;
    }

    fn count(
        level: OrgLevel,
        code: &str,
        sex: SexKey,
        age: AgeKey,
        n: u64,
        line: u64,
    ) -> CountRow<'static> {
        CountRow {
            line,
            level,
            code: code.to_string().into(),
            ons: None,
            postcode: None,
            sub_icb: None,
            sub_icb_ons: None,
            sex,
            age,
            count: n,
            suppressed: false,
        }
    }

    #[test]
    fn rows_summed_by_code_id_reach_the_rules_by_code_and_repeats_name_both_lines() {
        let (m, p) = (SexKey::Male, OrgLevel::Practice);
        let mut agg = AgeAgg::default();
        agg.add(&count(p, "A1", m, AgeKey::Year(3), 10, 2), "f.csv");
        agg.add(&count(p, "A1", m, AgeKey::Year(7), 5, 3), "f.csv");
        agg.add(&count(p, "B2", m, AgeKey::Year(3), 1, 4), "f.csv");
        agg.add(&count(p, "A1", m, AgeKey::All, 15, 5), "f.csv");
        agg.add(&count(p, "A1", m, AgeKey::Year(7), 9, 6), "f.csv");
        agg.add(
            &count(OrgLevel::Icb, "QHM", m, AgeKey::Year(3), 4, 7),
            "f.csv",
        );
        agg.finish();
        assert_eq!(agg.leaf_sum("A1", m), Some(15), "the repeat is not summed");
        assert_eq!(agg.leaf_sum("B2", m), Some(1));
        let a1 = agg.bands().get("A1").expect("A1's bands");
        assert_eq!(a1.get(m, 0), Some(10));
        assert_eq!(a1.get(m, 1), Some(5));
        assert_eq!(a1.get(m, 2), None);
        assert_eq!(agg.all_row("A1", m), Some(15));
        assert_eq!(agg.all_rows().collect::<Vec<_>>(), [("A1", m, 15)]);
        assert_eq!(
            agg.duplicates,
            vec![(
                "f.csv".to_string(),
                "A1".to_string(),
                m,
                "7".to_string(),
                3,
                6
            )]
        );
        assert_eq!(agg.leaf.len, 2, "organisation rows are not a practice's");
        assert_eq!(agg.practices(), ["A1", "B2"]);

        let mut orgs = AgeAgg::for_orgs();
        orgs.add(
            &count(OrgLevel::Icb, "QHM", m, AgeKey::Year(3), 4, 7),
            "r.csv",
        );
        orgs.add(
            &count(OrgLevel::SubIcb, "QHM", m, AgeKey::Year(3), 6, 8),
            "r.csv",
        );
        orgs.add(&count(p, "A1", m, AgeKey::Year(3), 10, 9), "r.csv");
        orgs.finish();
        assert_eq!(orgs.leaf_sum("ICB QHM", m), Some(4));
        assert_eq!(orgs.leaf_sum("SUB_ICB QHM", m), Some(6));
        assert_eq!(orgs.leaf.len, 2);
        assert!(orgs.bands().is_empty(), "bands are kept for practices only");
    }

    #[test]
    fn band_sums_know_which_keys_were_read_and_fold_an_open_band() {
        use SexKey::{Female, Male};
        let mut a = BandSums::default();
        a.add(Male, 0, 3);
        a.add(Male, 0, 4);
        a.add(Female, 19, 0);
        a.add(Female, 18, 2);
        assert_eq!(a.get(Male, 0), Some(7));
        assert_eq!(a.get(Female, 19), Some(0), "a zero count is still read");
        assert_eq!(a.get(Male, 1), None);
        let mut b = BandSums::default();
        b.add(Male, 1, 5);
        b.add(Female, 18, 1);
        let keys: Vec<_> = a.keys_with(&b).collect();
        assert_eq!(keys, vec![(Male, 0), (Male, 1), (Female, 18), (Female, 19)]);
        let folded = a.folded(17);
        assert_eq!(folded.get(Female, 17), Some(2));
        assert_eq!(folded.get(Female, 18), None);
        assert_eq!(folded.get(Male, 0), Some(7));
        // Met in a table, under one code id and beside another code's.
        let mut table = BandTable::default();
        table.merge(1, &a, 4);
        table.merge(1, &b, 4);
        table.add(3, Male, 2, 6, 4);
        table.add(3, SexKey::All, 2, 9, 4);
        let met = table.get(1);
        assert_eq!(met.get(Female, 18), Some(3));
        assert_eq!(met.get(Male, 1), Some(5));
        assert_eq!(
            table.get(3).keys().collect::<Vec<_>>(),
            [(Male, 2)],
            "ALL is no leaf"
        );
        assert!(table.get(0).is_empty() && table.get(9).is_empty());
        assert_eq!(table.ids(), 4);
        assert!(!a.is_empty() && BandSums::EMPTY.is_empty());
    }

    #[test]
    fn codes_get_one_id_each_and_keep_their_text_through_the_tables_growth() {
        let mut codes = Codes::default();
        let text: Vec<String> = (0..5000).map(|i| format!("E{:08}", i * 7)).collect();
        for (want, code) in (0u32..).zip(&text) {
            assert_eq!(codes.id(code), want);
        }
        assert_eq!(codes.id(""), 5000, "an empty code is a code");
        assert_eq!(codes.id(&text[17]), 17);
        assert_eq!(codes.org_id(OrgLevel::Icb, "QHM"), 5001);
        assert_eq!(codes.get("ICB QHM"), Some(5001));
        assert_eq!(codes.get("E0000000"), None);
        assert_eq!(codes.len(), 5002);
        let names: Vec<&str> = codes.names().collect();
        assert_eq!(
            &names[..5000],
            &text.iter().map(String::as_str).collect::<Vec<_>>()[..]
        );
        assert_eq!(&names[5000..], ["", "ICB QHM"]);
    }

    #[test]
    fn band_sums_past_32_bits_stay_exact() {
        use SexKey::{Female, Male};
        let max = u64::from(u32::MAX);
        let mut table = BandTable::default();
        table.add(0, Male, 3, max - 1, 2);
        table.add(0, Male, 3, 1, 2);
        assert_eq!(
            table.get(0).get(Male, 3),
            Some(max),
            "exactly the narrow limit"
        );
        table.add(0, Male, 3, 0, 2);
        table.add(0, Male, 3, 5, 2);
        table.add(0, Male, 3, max, 2);
        assert_eq!(table.get(0).get(Male, 3), Some(2 * max + 5));
        table.add(1, Female, 0, 7, 2);
        let mut sums = BandSums::default();
        sums.add(Female, 0, max);
        sums.add(Male, 3, 1);
        table.merge(1, &sums, 2);
        table.merge(0, &sums, 2);
        assert_eq!(table.get(1).get(Female, 0), Some(max + 7));
        assert_eq!(table.get(1).get(Male, 3), Some(1));
        assert_eq!(table.get(0).get(Male, 3), Some(2 * max + 6));
        assert_eq!(table.get(0).get(Female, 0), Some(max));
        assert_eq!(table.get(0).get(Male, 4), None);
    }

    #[test]
    fn a_file_of_one_sex_makes_one_band_table_sized_once_for_the_codes_expected() {
        let (m, p) = (SexKey::Male, OrgLevel::Practice);
        let mut males = AgeAgg::default();
        males.expect_codes(1000);
        for (i, code) in ["A1", "B2", "C3"].into_iter().enumerate() {
            males.add(
                &count(p, code, m, AgeKey::Year(40), 7, i as u64 + 2),
                "m.csv",
            );
        }
        let bands = &males.band_table;
        assert!(bands.sums[0].capacity() >= 1000 && bands.sums[0].capacity() < 2000);
        assert_eq!(bands.read[0].len(), 3);
        assert_eq!(bands.sums[1].capacity(), 0, "no table for the sex not read");
        assert_eq!(bands.read[1].capacity(), 0);
        males.finish();
        assert_eq!(males.bands().get("B2").unwrap().get(m, 8), Some(7));
    }

    #[test]
    fn band_sums_of_files_read_apart_meet_by_code_whatever_order_their_codes_came_in() {
        let (m, f, p) = (SexKey::Male, SexKey::Female, OrgLevel::Practice);
        let mut males = AgeAgg::default();
        males.add(&count(p, "A1", m, AgeKey::Year(3), 10, 2), "m.csv");
        males.add(&count(p, "B2", m, AgeKey::Year(6), 4, 3), "m.csv");
        males.finish();
        // The female file gives its codes in the other order, and one the male file lacks:
        // its ids differ from the male file's.
        let mut females = AgeAgg::default();
        females.add(&count(p, "C3", f, AgeKey::Year(0), 1, 2), "f.csv");
        females.add(&count(p, "B2", f, AgeKey::Year(7), 5, 3), "f.csv");
        females.add(&count(p, "A1", f, AgeKey::All, 9, 4), "f.csv");
        females.finish();
        males.absorb(females);
        let bands = |code: &str| males.bands().get(code).unwrap_or_default();
        assert_eq!(bands("A1").get(m, 0), Some(10));
        assert_eq!(bands("A1").get(f, 0), None, "an ALL row is not a leaf");
        assert_eq!(bands("B2").get(m, 1), Some(4));
        assert_eq!(bands("B2").get(f, 1), Some(5));
        assert_eq!(bands("C3").get(f, 0), Some(1));
        let codes: Vec<&str> = males.bands().iter().map(|(code, _)| code).collect();
        assert_eq!(codes, ["A1", "B2", "C3"], "each code once");
        assert!(males.bands().get("D4").is_none());
        // The other sums meet by code too, each read through the one code index.
        assert_eq!(males.leaf_sum("B2", m), Some(4));
        assert_eq!(males.leaf_sum("B2", f), Some(5));
        assert_eq!(males.leaf_sum("C3", f), Some(1));
        assert_eq!(males.leaf_sum("C3", m), None);
        assert_eq!(males.all_row("A1", f), Some(9));
        assert!(males.has_practice("C3") && !males.has_practice("D4"));
        assert_eq!(males.practices(), ["A1", "B2", "C3"]);
        assert_eq!(males.practice_total("B2"), 9);
    }

    #[test]
    fn every_kind_of_key_is_seen_once_and_a_repeat_names_its_first_line() {
        use AgeKey::{Band, OpenBand, Year};
        use SexKey::{Female, Male};
        let mut keys = KeyLines::default();
        let ages = [
            AgeKey::All,
            Year(0),
            Year(95),
            Band(0),
            Band(19),
            OpenBand(85),
        ];
        for (id, line) in [(0, 10), (700, 20)] {
            for sex in [SexKey::All, Male, Female] {
                for age in ages {
                    assert_eq!(
                        keys.first_line(id, sex, age, line),
                        None,
                        "{id} {sex:?} {age:?}"
                    );
                }
            }
        }
        for sex in [SexKey::All, Male, Female] {
            for age in ages {
                assert_eq!(keys.first_line(700, sex, age, 30), Some(20));
                assert_eq!(
                    keys.first_line(700, sex, age, 31),
                    Some(20),
                    "the first stays"
                );
                assert_eq!(keys.first_line(0, sex, age, 32), Some(10));
            }
        }
        assert_eq!(
            keys.first_line(1, Male, Year(4), 1),
            None,
            "ids in between are free"
        );
        let far = u64::from(u32::MAX) + 7;
        assert_eq!(keys.first_line(2, Male, Year(4), far), None);
        assert_eq!(
            keys.first_line(2, Male, Year(4), 3),
            Some(far),
            "past u32, kept whole"
        );
        assert_eq!(keys.first_line(2, Female, Year(4), far + 1), None);
    }

    #[test]
    fn keys_far_from_their_codes_first_line_are_kept_whole() {
        use AgeKey::Year;
        use SexKey::Male;
        let mut keys = KeyLines::default();
        assert_eq!(keys.first_line(5, Male, Year(1), 100), None);
        assert_eq!(
            keys.first_line(5, Male, Year(3), 354),
            None,
            "254 apart: a byte"
        );
        assert_eq!(
            keys.first_line(5, Male, Year(2), 400),
            None,
            "300 apart: the map"
        );
        assert_eq!(
            keys.first_line(5, Male, Year(4), 90),
            None,
            "before the first"
        );
        assert_eq!(keys.first_line(5, Male, Year(2), 1000), Some(400));
        assert_eq!(keys.first_line(5, Male, Year(1), 1001), Some(100));
        assert_eq!(keys.first_line(5, Male, Year(3), 1002), Some(354));
        assert_eq!(keys.first_line(5, Male, Year(4), 1003), Some(90));
        assert_eq!(keys.other.len(), 2, "only the far keys in the map");
    }

    #[test]
    fn the_totals_file_wins_then_the_wide_total_then_the_age_rows() {
        let mut e = Aggregates::default();
        assert_eq!(e.list_size("A1"), None);
        assert_eq!(e.by_sex("A1"), (None, None));
        leaf(&mut e.single, "A1", SexKey::Male, 40);
        leaf(&mut e.single, "A1", SexKey::Female, 60);
        assert_eq!(e.list_size("A1"), Some((100, "single_age")));
        leaf(&mut e.quinary, "A1", SexKey::Male, 41);
        leaf(&mut e.quinary, "A1", SexKey::Female, 60);
        assert_eq!(e.list_size("A1"), Some((101, "quinary")));
        assert_eq!(e.by_sex("A1"), (Some(41), Some(60)));
        e.quinary.wide = true;
        let id = e.quinary.codes.lookup("A1");
        *e.quinary.all.entry(id, SexKey::All, 0) = 102;
        assert_eq!(e.list_size("A1"), Some((102, "wide_total")));
        e.totals.insert("A1".to_string(), (103, 2));
        assert_eq!(e.list_size("A1"), Some((103, "practice_totals")));
        assert_eq!(e.list_size("B2"), None, "a practice no file has");
    }
}
