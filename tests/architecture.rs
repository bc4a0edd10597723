//! Imports run one way (issue 26): a module may import only modules of a lower layer. The
//! layers, from the inside out: the spec model; templates; the config and the loading of spec
//! files (which checks their templates); the
//! results model; the fan-out statistics (samples in, the results' figures and threshold
//! verdicts out); targets (clients); the engine; what reads results (coverage, shards,
//! history); the reporters; the CLI. Reporters never import the engine, and the statistics
//! neither the engine that feeds them nor the clients. The simulators are a
//! crate of their own (crates/focusqa-sim), which the compiler keeps from importing the runner.
//!
//! The imports against the direction that the code still has are listed in `KNOWN`: a new one
//! fails this test, and so does one that is gone (remove it from the list, so it cannot return).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Layer of each top-level module of `src/` (a module may import lower layers and its own).
const LAYERS: &[(&str, u8)] = &[
    ("spec", 0),
    ("template", 1),
    ("filters", 1),
    ("config", 2),
    ("loading", 2),
    ("results", 3),
    ("stats", 4),
    ("targets", 5),
    ("engine", 6),
    ("coverage", 7),
    ("shard", 7),
    ("history", 7),
    ("report", 8),
    ("cli", 9),
];

/// Imports that are forbidden whatever the layers say.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "report",
        "engine",
        "reporters read the results model and events, never the engine",
    ),
    (
        "stats",
        "engine",
        "the engine sends samples to the statistics and asks them for the result, never the reverse",
    ),
    (
        "stats",
        "targets",
        "the statistics work on samples, whatever target produced them",
    ),
    (
        "report",
        "stats",
        "reporters read the figures and verdicts in the results model, not how they are made",
    ),
];

/// The imports against the direction the code has today (issue 26 removed the last one: the
/// loader, which checks templates, moved out of the spec model into `loading`). Keep it empty.
const KNOWN: &[(&str, &str)] = &[];

/// `from -> to -> first place (file:line)` for every `crate::<top>` reference in `src/`.
fn imports(src: &Path) -> BTreeMap<(String, String), String> {
    let tops: BTreeSet<&str> = LAYERS.iter().map(|(m, _)| *m).collect();
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let from = first.trim_end_matches(".rs").to_string();
            if !tops.contains(from.as_str()) {
                continue; // lib.rs, main.rs
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for (i, _) in code.match_indices("crate::") {
                    let to: String = code[i + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if to != from && tops.contains(to.as_str()) {
                        out.entry((from.clone(), to))
                            .or_insert_with(|| format!("src/{}:{}", rel.display(), n + 1));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn imports_run_one_way() {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = imports(&src);
    let mut against = BTreeSet::new();
    let mut problems = Vec::new();
    for ((from, to), place) in &found {
        let why = FORBIDDEN
            .iter()
            .find(|(f, t, _)| f == from && t == to)
            .map(|(.., why)| why.to_string())
            .or_else(|| {
                (layer[to.as_str()] > layer[from.as_str()]).then(|| {
                    format!(
                        "`{to}` is layer {}, above `{from}` (layer {})",
                        layer[to.as_str()],
                        layer[from.as_str()]
                    )
                })
            });
        let Some(why) = why else { continue };
        against.insert((from.as_str(), to.as_str()));
        if !KNOWN.contains(&(from.as_str(), to.as_str())) {
            problems.push(format!(
                "{place}: `{from}` imports `{to}` against the direction: {why}. Move what is shared down a layer, or pass it in"
            ));
        }
    }
    for (from, to) in KNOWN {
        if !against.contains(&(*from, *to)) {
            problems.push(format!(
                "`{from}` no longer imports `{to}`: remove the pair from KNOWN in tests/architecture.rs so it cannot come back"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_sees_an_import_against_the_direction() {
    // The scan itself: a fake tree where the spec model imports the engine.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("spec")).unwrap();
    std::fs::write(
        dir.path().join("spec/mod.rs"),
        "// crate::cli in a comment does not count\nuse crate::engine::Engine;\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("engine.rs"), "use crate::spec::Spec;\n").unwrap();
    let found = imports(dir.path());
    assert_eq!(
        found.keys().cloned().collect::<Vec<_>>(),
        vec![
            ("engine".to_string(), "spec".to_string()),
            ("spec".to_string(), "engine".to_string())
        ]
    );
    assert_eq!(
        found[&("spec".into(), "engine".into())],
        "src/spec/mod.rs:2"
    );
}
