//! The real samples from `shared/samples/`, checked in under `fixtures/` (tiny, byte-exact).

use std::path::PathBuf;

/// The folder of real samples.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// `(month, published file name, bytes)` of every real sample.
pub fn samples() -> Vec<((i32, u32), String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir()).expect("fixtures folder") {
        let path = entry.expect("fixture entry").path();
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let Some((month, name)) = file.split_once('_') else {
            continue;
        };
        let Some((y, m)) = month.split_once('-') else {
            continue;
        };
        let (Ok(y), Ok(m)) = (y.parse(), m.parse()) else {
            continue;
        };
        out.push((
            (y, m),
            name.to_string(),
            std::fs::read(&path).expect("fixture bytes"),
        ));
    }
    out.sort();
    out
}
