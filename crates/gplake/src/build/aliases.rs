//! The aliases file in the lake (`_meta/aliases.toml`): installed from the user's file once
//! it is checked, then read by every build and by `status` (a month kept out by a name the
//! new aliases read is due for a rebuild).

use bytes::Bytes;
use object_store::path::Path;

use super::BuildError;
use crate::error::Error;
use crate::formats::Aliases;
use crate::formats::aliases::LAKE_PATH;
use crate::lake::Lake;

/// The aliases in force in `lake` (none when it has no aliases file).
pub async fn in_force(lake: &Lake) -> Result<Aliases, Error> {
    let Some(bytes) = lake.get_bytes(&Path::from(LAKE_PATH)).await? else {
        return Ok(Aliases::default());
    };
    let text = String::from_utf8_lossy(&bytes);
    let file = format!("{}/{LAKE_PATH}", lake.url().trim_end_matches('/'));
    Aliases::parse(&text, &file).map_err(|e| BuildError::Aliases(e).into())
}

/// Reads the user's aliases file at `path` and, when it is sound, makes it the lake's.
pub async fn install_file(lake: &Lake, path: &std::path::Path) -> Result<Aliases, Error> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| {
        BuildError::Aliases(crate::formats::AliasesError::Unreadable {
            file: file.clone(),
            source,
        })
    })?;
    install(lake, &text, &file).await
}

/// Checks the aliases file `text` (read from `file`) and, when it is sound, makes it the
/// lake's. Nothing is written when it is not.
pub async fn install(lake: &Lake, text: &str, file: &str) -> Result<Aliases, Error> {
    let aliases = Aliases::parse(text, file).map_err(BuildError::Aliases)?;
    lake.put_bytes(&Path::from(LAKE_PATH), Bytes::from(text.to_string()))
        .await?;
    Ok(aliases)
}
