//! A Parquet column chunk of text written from its dictionary and the rows' indices into it,
//! either as runs of equal values or as one index per row. A practice's name, codes and
//! source file repeat over its hundreds of rows, and a row's sex and age are one of a few
//! dozen labels: the general writer hashes and compares every row's text to find its
//! dictionary entry, which was a quarter of a month's build. The chunk is the same Parquet
//! any writer would produce (a PLAIN dictionary page, then a data page of RLE_DICTIONARY
//! indices), readable by every engine.

use std::collections::hash_map::Entry;

use deltalake::parquet::basic::{Compression, Encoding, ZstdLevel};
use deltalake::parquet::column::page::{CompressedPage, Page, PageWriter};
use deltalake::parquet::column::writer::ColumnCloseResult;
use deltalake::parquet::data_type::ByteArray;
use deltalake::parquet::errors::{ParquetError, Result};
use deltalake::parquet::file::metadata::ColumnChunkMetaData;
use deltalake::parquet::file::page_index::offset_index::{OffsetIndexMetaData, PageLocation};
use deltalake::parquet::file::statistics::Statistics;
use deltalake::parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use deltalake::parquet::schema::types::ColumnDescPtr;

use crate::check::evidence::FastMap;

/// One run: `rows` rows holding `value` (`None` is NULL).
pub(crate) type Run<'a> = (Option<&'a str>, u32);

/// How a chunk is written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkOptions {
    pub(crate) zstd: ZstdLevel,
    /// Whether the chunk records its minimum, maximum and NULL count.
    pub(crate) statistics: bool,
}

/// The chunk of `runs` (its bytes start at offset 0) and what the file writer needs to
/// append it to a row group.
pub(crate) fn encode_runs<'a>(
    column: ColumnDescPtr,
    runs: impl IntoIterator<Item = Run<'a>>,
    options: ChunkOptions,
) -> Result<(bytes::Bytes, ColumnCloseResult)> {
    encode(column, Dictionary::of(runs), options)
}

/// The chunk of a required column whose rows are `ids`, each an index into `values` (every
/// one of which is used).
pub(crate) fn encode_ids(
    column: ColumnDescPtr,
    values: Vec<&str>,
    ids: Vec<u8>,
    options: ChunkOptions,
) -> Result<(bytes::Bytes, ColumnCloseResult)> {
    let dictionary = Dictionary {
        values,
        rows: ids.len() as u64,
        indices: Indices::Each(ids),
        nulls: 0,
    };
    encode(column, dictionary, options)
}

fn encode(
    column: ColumnDescPtr,
    dictionary: Dictionary<'_>,
    options: ChunkOptions,
) -> Result<(bytes::Bytes, ColumnCloseResult)> {
    let nullable = column.max_def_level() > 0;
    if !nullable && dictionary.nulls > 0 {
        return Err(ParquetError::General(format!(
            "column {} is required but {} of its values are NULL",
            column.path(),
            dictionary.nulls
        )));
    }
    let mut out = TrackedWrite::new(Vec::new());
    let (dict_page, data_page) = {
        let mut pages = SerializedPageWriter::new(&mut out);
        let dict_page = pages.write_page(dictionary.page(options.zstd)?)?;
        let data_page = pages.write_page(dictionary.data_page(nullable, options.zstd)?)?;
        pages.close()?;
        (dict_page, data_page)
    };
    let mut metadata = ColumnChunkMetaData::builder(column)
        .set_compression(Compression::ZSTD(options.zstd))
        .set_encodings(vec![
            Encoding::PLAIN,
            Encoding::RLE,
            Encoding::RLE_DICTIONARY,
        ])
        .set_num_values(dictionary.rows as i64)
        .set_total_compressed_size((dict_page.compressed_size + data_page.compressed_size) as i64)
        .set_total_uncompressed_size(
            (dict_page.uncompressed_size + data_page.uncompressed_size) as i64,
        )
        .set_dictionary_page_offset(Some(dict_page.offset as i64))
        .set_data_page_offset(data_page.offset as i64);
    if options.statistics {
        metadata = metadata.set_statistics(dictionary.statistics());
    }
    let bytes = out.into_inner()?;
    let close = ColumnCloseResult {
        bytes_written: bytes.len() as u64,
        rows_written: dictionary.rows,
        metadata: metadata.build()?,
        bloom_filter: None,
        column_index: None,
        // Readers that seek by page find the one data page here: every chunk of a file
        // has an offset index, or none does.
        offset_index: Some(OffsetIndexMetaData {
            page_locations: vec![PageLocation {
                offset: data_page.offset as i64,
                compressed_page_size: data_page.compressed_size as i32,
                first_row_index: 0,
            }],
            unencoded_byte_array_data_bytes: None,
        }),
    };
    Ok((bytes.into(), close))
}

/// A chunk's distinct values, and its rows as indices into them.
struct Dictionary<'a> {
    values: Vec<&'a str>,
    indices: Indices,
    rows: u64,
    nulls: u64,
}

/// The rows' indices into a dictionary.
enum Indices {
    /// Runs, adjacent runs of the same value merged; `None` is NULL.
    Runs(Vec<(Option<u32>, u32)>),
    /// One per row, none NULL.
    Each(Vec<u8>),
}

impl<'a> Dictionary<'a> {
    fn of(runs: impl IntoIterator<Item = Run<'a>>) -> Dictionary<'a> {
        let mut ids: FastMap<&'a str, u32> = FastMap::default();
        let (mut values, mut merged) = (Vec::new(), Vec::new());
        let (mut total, mut nulls) = (0, 0);
        for (value, rows) in runs.into_iter().filter(|(_, rows)| *rows > 0) {
            let id = value.map(|v| match ids.entry(v) {
                Entry::Occupied(e) => *e.get(),
                Entry::Vacant(e) => {
                    values.push(v);
                    *e.insert(values.len() as u32 - 1)
                }
            });
            total += u64::from(rows);
            if id.is_none() {
                nulls += u64::from(rows);
            }
            match merged.last_mut() {
                Some((last, n)) if *last == id => *n += rows,
                _ => merged.push((id, rows)),
            }
        }
        Dictionary {
            values,
            indices: Indices::Runs(merged),
            rows: total,
            nulls,
        }
    }

    /// The dictionary page: each value PLAIN (its length, then its bytes).
    fn page(&self, zstd: ZstdLevel) -> Result<CompressedPage> {
        let size = self.values.iter().map(|v| 4 + v.len()).sum();
        let mut plain = Vec::with_capacity(size);
        for v in &self.values {
            plain.extend_from_slice(&(v.len() as u32).to_le_bytes());
            plain.extend_from_slice(v.as_bytes());
        }
        let page = Page::DictionaryPage {
            buf: compress(&plain, zstd)?,
            num_values: self.values.len() as u32,
            encoding: Encoding::PLAIN,
            is_sorted: false,
        };
        Ok(CompressedPage::new(page, plain.len()))
    }

    /// The data page: definition levels (for a nullable column), then the bit width and the
    /// runs of dictionary indices of the values that are not NULL.
    fn data_page(&self, nullable: bool, zstd: ZstdLevel) -> Result<CompressedPage> {
        let mut data = Vec::new();
        let width = bit_width(self.values.len());
        match &self.indices {
            Indices::Runs(runs) => {
                if nullable {
                    let mut levels = Vec::new();
                    for &(id, rows) in runs {
                        put_run(&mut levels, u32::from(id.is_some()), rows, 1);
                    }
                    data.extend_from_slice(&(levels.len() as u32).to_le_bytes());
                    data.extend_from_slice(&levels);
                }
                data.push(width);
                for &(id, rows) in runs {
                    if let Some(id) = id {
                        put_run(&mut data, id, rows, width);
                    }
                }
            }
            Indices::Each(ids) => {
                data.push(width);
                put_packed(&mut data, ids, width);
            }
        }
        let page = Page::DataPage {
            buf: compress(&data, zstd)?,
            num_values: u32::try_from(self.rows)
                .map_err(|_| ParquetError::General("a row group of over 4 G rows".into()))?,
            encoding: Encoding::RLE_DICTIONARY,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        Ok(CompressedPage::new(page, data.len()))
    }

    /// The least and greatest value (byte order, as Parquet compares text) and the NULLs.
    fn statistics(&self) -> Statistics {
        let min = self.values.iter().min().map(|v| ByteArray::from(*v));
        let max = self.values.iter().max().map(|v| ByteArray::from(*v));
        Statistics::byte_array(min, max, None, Some(self.nulls), false)
    }
}

/// Bits needed for the indices of `values` dictionary entries.
fn bit_width(values: usize) -> u8 {
    (usize::BITS - values.saturating_sub(1).leading_zeros()) as u8
}

/// One run of the RLE/bit-packed hybrid encoding: a ULEB128 header of the count shifted
/// left once (the low bit 0 marks a run), then the value in whole little-endian bytes.
fn put_run(out: &mut Vec<u8>, value: u32, rows: u32, width: u8) {
    put_header(out, u64::from(rows) << 1);
    let bytes = usize::from(width).div_ceil(8);
    out.extend_from_slice(&value.to_le_bytes()[..bytes]);
}

/// `ids` as one bit-packed group of the hybrid encoding: a ULEB128 header of the number of
/// 8-value groups shifted left once with the low bit 1, then the values `width` bits each,
/// least significant first, zero-padded to a whole group (readers stop at the page's value
/// count). A width of 0 (a one-value dictionary) is one run instead.
fn put_packed(out: &mut Vec<u8>, ids: &[u8], width: u8) {
    if width == 0 {
        return put_run(out, 0, ids.len() as u32, 0);
    }
    let groups = ids.len().div_ceil(8);
    put_header(out, ((groups as u64) << 1) | 1);
    let (mut bits, mut held) = (0u64, 0u8);
    let padding = std::iter::repeat_n(&0, groups * 8 - ids.len());
    for &id in ids.iter().chain(padding) {
        bits |= u64::from(id) << held;
        held += width;
        while held >= 8 {
            out.push(bits as u8);
            bits >>= 8;
            held -= 8;
        }
    }
}

fn put_header(out: &mut Vec<u8>, mut header: u64) {
    loop {
        let byte = (header & 0x7f) as u8;
        header >>= 7;
        if header == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
}

/// Compresses a page with this thread's compressor: a compressor made per page allocated and
/// cleared its tables each time (a fresh megabyte or more, faulted in page by page).
fn compress(data: &[u8], level: ZstdLevel) -> Result<bytes::Bytes> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
            const { std::cell::RefCell::new(None) };
    }
    let level = level.compression_level();
    let external = |e: std::io::Error| ParquetError::External(Box::new(e));
    COMPRESSOR.with_borrow_mut(|kept| {
        if kept.as_ref().is_none_or(|(made_at, _)| *made_at != level) {
            *kept = Some((level, zstd::bulk::Compressor::new(level).map_err(external)?));
        }
        let (_, compressor) = kept.as_mut().expect("made above");
        compressor
            .compress(data)
            .map(bytes::Bytes::from)
            .map_err(external)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_its_count_shifted_then_its_value_in_whole_bytes() {
        let mut out = Vec::new();
        put_run(&mut out, 5, 3, 3);
        assert_eq!(out, [6, 5]);
        out.clear();
        put_run(&mut out, 300, 200, 9);
        // 400 = 0b1_1001_0000: ULEB128 0x90 0x03, then 300 in two bytes.
        assert_eq!(out, [0x90, 0x03, 0x2c, 0x01]);
        out.clear();
        put_run(&mut out, 0, 7, 0);
        assert_eq!(out, [14], "a one-value dictionary has indices of no bits");
    }

    #[test]
    fn indices_are_packed_least_significant_bit_first_in_whole_groups_of_eight() {
        let mut out = Vec::new();
        put_packed(&mut out, &[1, 2, 3, 0, 1, 2, 3, 0, 3], 2);
        // Two groups: header (2 << 1) | 1 = 5; 1,2,3,0 -> 0b00_11_10_01 twice; then 3 padded.
        assert_eq!(out, [5, 0b0011_1001, 0b0011_1001, 0b11, 0]);
        out.clear();
        put_packed(&mut out, &[0, 0, 0], 0);
        assert_eq!(out, [6], "a one-value dictionary is a run");
    }

    #[test]
    fn the_bit_width_fits_the_greatest_index() {
        let widths: Vec<u8> = [0, 1, 2, 3, 4, 5, 256, 257].map(bit_width).to_vec();
        assert_eq!(widths, [0, 0, 1, 2, 2, 3, 8, 9]);
    }

    #[test]
    fn equal_neighbouring_runs_merge_and_values_are_listed_once() {
        let d = Dictionary::of([
            (Some("b"), 2),
            (Some("b"), 3),
            (None, 1),
            (Some("a"), 0),
            (Some("a"), 4),
            (Some("b"), 1),
        ]);
        assert_eq!(d.values, ["b", "a"]);
        let Indices::Runs(runs) = d.indices else {
            panic!("runs")
        };
        assert_eq!(runs, [(Some(0), 5), (None, 1), (Some(1), 4), (Some(0), 1)]);
        assert_eq!((d.rows, d.nulls), (11, 1));
    }
}
