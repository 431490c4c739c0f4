//! gplake's test kit: synthetic releases of every era, a local mirror with faults, and the
//! real published samples as fixtures.
//!
//! # Layout
//! - [`population`]: practices and organisations month by month, and the true counts.
//! - [`synth`]: the files of a month's release, era by era.
//! - [`mirror`]: the series and month pages and files, served on 127.0.0.1.
//! - [`s3`]: a real S3-compatible server on 127.0.0.1; [`proxy`]: a double of a store that
//!   ignores conditional writes, in front of it.
//! - [`fixtures`]: the real samples (Open Government Licence v3.0, NHS England).

pub mod azure;
pub mod fixtures;
pub mod mirror;
pub mod population;
pub mod proxy;
pub mod s3;
pub mod synth;

pub use mirror::{Fault, Mirror};
pub use population::{Population, Sex, Ym};
pub use synth::{SynthFile, SynthRelease, release, release_with_duplicated_95};

/// Every release of months `from..=to` for `pop`.
pub fn releases(pop: &Population, from: Ym, to: Ym) -> Vec<SynthRelease> {
    months(from, to).filter_map(|m| release(pop, m)).collect()
}

/// Months `from..=to`.
pub fn months(from: Ym, to: Ym) -> impl Iterator<Item = Ym> {
    std::iter::successors(Some(from), |&(y, m)| {
        Some(if m == 12 { (y + 1, 1) } else { (y, m + 1) })
    })
    .take_while(move |m| *m <= to)
}

/// Writes releases into `dir` as a user downloading by hand would: a folder per month.
pub fn write_releases(dir: &std::path::Path, releases: &[SynthRelease]) -> std::io::Result<()> {
    for r in releases {
        let folder = dir.join(format!("{}-{:02}", r.month.0, r.month.1));
        std::fs::create_dir_all(&folder)?;
        for (i, f) in r.files.iter().enumerate() {
            let name = if r.files[..i].iter().any(|g| g.name == f.name) {
                format!("nhais/{}", f.name)
            } else {
                f.name.clone()
            };
            let path = folder.join(name);
            std::fs::create_dir_all(path.parent().expect("has a parent"))?;
            std::fs::write(path, &f.bytes)?;
        }
    }
    Ok(())
}
