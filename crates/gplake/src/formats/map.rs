//! The map file (`gp-reg-pat-prac-map`): practice → PCN → sub-ICB → ICB → region, with names.
//! CCG/STP-era and ICB-era headers resolve to the same columns; `SUPPLIER_NAME` (2026) is kept.

use super::columns::{Col, Header};
use super::reader::{Record, Records, raw_text};
use super::{FileContext, FileStats, FormatError, PracticeAttrs, Quarantined};

/// Reads every practice of a map file.
pub(crate) fn parse_map(
    records: &mut Records<'_>,
    ctx: &FileContext,
) -> Result<(Vec<PracticeAttrs>, FileStats), FormatError> {
    let file = records.label.clone();
    let header = Header::resolve(&records.header, &ctx.aliases)?;
    let code = header.require(Col::Code, ctx.family, &file)?;
    let name = header.require(Col::PracticeName, ctx.family, &file)?;
    let width = records.header.len();
    let mut dates = super::DateCheck::new(ctx.month);
    let mut out = Vec::new();
    let mut stats = FileStats::for_header(records, ctx);
    let mut record = Record::new();
    while let Some(line) = records.next(&mut record)? {
        stats.rows_read += 1;
        if let Some(reason) = super::reader::width_problem(&record, width) {
            stats.quarantine(Quarantined {
                file: file.clone(),
                line,
                raw: raw_text(&record),
                reason,
            });
            continue;
        }
        let field = |c: Option<usize>| {
            c.and_then(|i| record.get(i))
                .map(|v| super::reader::text(v).into_owned())
                .filter(|v| !v.is_empty())
        };
        if let Some(d) = header.get(Col::ExtractDate) {
            dates.check(&field(Some(d)).unwrap_or_default(), &file, line)?;
        }
        stats.rows_leaf += 1;
        out.push(PracticeAttrs {
            code: field(Some(code)).unwrap_or_default(),
            name: field(Some(name)),
            postcode: field(header.get(Col::Postcode)),
            pcn_code: field(header.get(Col::PcnCode)),
            pcn_name: field(header.get(Col::PcnName)),
            sub_icb_code: field(header.get(Col::SubIcbCode)),
            sub_icb_ons_code: field(header.get(Col::SubIcbOnsCode)),
            sub_icb_name: field(header.get(Col::SubIcbName)),
            icb_code: field(header.get(Col::IcbCode)),
            icb_ons_code: field(header.get(Col::IcbOnsCode)),
            icb_name: field(header.get(Col::IcbName)),
            region_code: field(header.get(Col::RegionCode)),
            region_ons_code: field(header.get(Col::RegionOnsCode)),
            region_name: field(header.get(Col::RegionName)),
            supplier: field(header.get(Col::Supplier)),
            line,
        });
    }
    stats.encoding = records.encoding_note();
    Ok((out, stats))
}
