//! The library's layering, checked on its source: the build pipeline sits above silver,
//! check, gold and dims, and nothing below it reaches back up (`lib.rs` names the layers).

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The `crate::…` modules a file refers to (its `use` lines and inline paths).
fn uses(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split("crate::")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Files of the module `name` (`name.rs` or `name/…`).
fn module_files(src: &Path, name: &str) -> Vec<PathBuf> {
    let file = src.join(format!("{name}.rs"));
    if file.exists() {
        return vec![file];
    }
    sources(&src.join(name))
}

#[test]
fn no_module_below_the_pipeline_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    // (module, modules it must not use)
    let above_pipeline = ["sync", "build", "status", "query", "plot", "ddl"];
    let rules: Vec<(&str, Vec<&str>)> = vec![
        (
            "check",
            vec![
                "silver", "gold", "dims", "delta", "session", "lake", "build", "sync",
            ],
        ),
        ("silver", above_pipeline.to_vec()),
        ("gold", [&above_pipeline[..], &["silver"]].concat()),
        ("dims", [&above_pipeline[..], &["silver"]].concat()),
        (
            "session",
            [&above_pipeline[..], &["silver", "gold", "dims", "check"]].concat(),
        ),
        (
            "catalog",
            [&above_pipeline[..], &["silver", "gold", "dims", "check"]].concat(),
        ),
        (
            "delta",
            [&above_pipeline[..], &["silver", "gold", "dims", "check"]].concat(),
        ),
        (
            "layout",
            [&above_pipeline[..], &["silver", "gold", "dims", "check"]].concat(),
        ),
        (
            "formats",
            [&above_pipeline[..], &["silver", "gold", "dims", "check"]].concat(),
        ),
        (
            "fetch",
            [&above_pipeline[..], &["silver", "gold", "dims", "check"]].concat(),
        ),
        (
            "discover",
            [&above_pipeline[..], &["silver", "gold", "dims", "check"]].concat(),
        ),
        ("build", vec!["sync", "status", "query", "plot", "ddl"]),
        (
            "query",
            vec!["sync", "build", "gold", "dims", "silver", "status", "plot"],
        ),
    ];
    let mut wrong = Vec::new();
    for (module, forbidden) in &rules {
        let files = module_files(&src, module);
        assert!(!files.is_empty(), "no module {module}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for used in uses(&text) {
                if forbidden.contains(&used.as_str()) {
                    wrong.push(format!("{} uses crate::{used}", file.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that run back up:\n{}",
        wrong.join("\n")
    );
}
