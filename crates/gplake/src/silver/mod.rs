//! Silver: bronze files of every era become Delta Lake data files, month by month.
//!
//! This stage reads: it chooses a month's files ([`plan`]), parses them as they stream into
//! new, uncommitted data files ([`month`], through one [`sink`] per table; the practice fact
//! tables' files written in runs of a practice's rows, [`runs`]) and gathers the evidence the
//! checks need. It never commits: the build pipeline (the `build` module) gates
//! and commits what it returns, so a month that fails leaves silver exactly as it was.

mod chunk;
pub(crate) mod month;
pub(crate) mod plan;
pub(crate) mod runs;
pub(crate) mod sink;

use crate::fetch::Manifest;
use crate::lake::{BRONZE_ROOT, Hashed, Lake, LakeError};
use crate::month::Month;
use month::{InputFile, MonthError};

/// The digest of a month's bronze that decides whether silver is current.
pub(crate) fn plan_fingerprint(manifest: &Manifest) -> String {
    plan::fingerprint(manifest)
}

/// Every month that has a bronze manifest.
pub(crate) async fn bronze_months(lake: &Lake) -> Result<Vec<Month>, LakeError> {
    let objects = lake
        .list(&object_store::path::Path::from(BRONZE_ROOT))
        .await?;
    let mut months: Vec<Month> = objects
        .iter()
        .filter(|o| o.location.filename() == Some(crate::fetch::manifest::MANIFEST_NAME))
        .filter_map(|o| {
            let text = o.location.to_string();
            let year = text
                .split("snapshot_year=")
                .nth(1)?
                .get(..4)?
                .parse()
                .ok()?;
            let month = text
                .split("snapshot_month=")
                .nth(1)?
                .get(..2)?
                .parse()
                .ok()?;
            Month::new(year, month)
        })
        .collect();
    months.sort();
    months.dedup();
    Ok(months)
}

/// A bronze file a build read, and what proved its bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BronzeRead {
    /// Its path in the month's bronze folder.
    pub path: String,
    /// Its hash, and the stamp of the local file hashed.
    #[serde(flatten)]
    pub hashed: Hashed,
}

/// Opens the chosen bronze files of `month` to parse (in place on a local lake, else copied
/// into `dir`), each proved to be the bytes its manifest records
/// (`Err(MonthError::BronzeAltered)` names the first that is not). A file whose stamp is the
/// one in `known` (the month's last build) is proved by the hash recorded with it.
pub(crate) async fn open_bronze(
    lake: &Lake,
    month: Month,
    used: &[plan::Chosen],
    dir: &std::path::Path,
    limits: crate::formats::reader::InputLimits,
    known: &[BronzeRead],
) -> Result<Result<(Vec<InputFile>, Vec<BronzeRead>), MonthError>, LakeError> {
    let mut inputs = Vec::new();
    let mut reads = Vec::new();
    for (i, chosen) in used.iter().enumerate() {
        let path = chosen
            .path
            .split('/')
            .fold(Lake::bronze_month_dir(month), |p, part| p.join(part));
        let known = known.iter().find(|k| k.path == chosen.path);
        let copy_to = dir.join(format!("{i}"));
        let (file, hashed) = lake
            .open_hashed(&path, &copy_to, known.map(|k| &k.hashed))
            .await?;
        if hashed.sha256 != chosen.sha256 {
            return Ok(Err(MonthError::BronzeAltered {
                month,
                file: chosen.name.clone(),
                expected: chosen.sha256.clone(),
                found: hashed.sha256,
            }));
        }
        reads.push(BronzeRead {
            path: chosen.path.clone(),
            hashed,
        });
        inputs.push(InputFile {
            name: chosen.name.clone(),
            family: chosen.family,
            sha256: chosen.sha256.clone(),
            file: std::sync::Arc::new(file),
            lsoa_vintage: chosen.lsoa_vintage,
            limits,
        });
    }
    Ok(Ok((inputs, reads)))
}
