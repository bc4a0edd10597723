//! Reporters: console (live events), results.json, junit.xml, HTML. All read the results model.

pub mod console;
pub mod html;
pub mod json;
pub mod junit;

use std::path::{Path, PathBuf};

use crate::results::{CaseResult, RunReport};
use crate::spec::{Diagnostic, Pos};

/// Files written for a run.
#[derive(Debug, Clone)]
pub struct Written {
    pub files: Vec<PathBuf>,
}

/// Writes every file report into `dir` (results.json, junit.xml, HTML views).
pub fn write_all(
    report: &RunReport,
    dir: &Path,
    templates: Option<&Path>,
) -> Result<Written, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create report directory {}: {e}", dir.display()))?;
    let p = dir.join("results.json");
    json::write(report, &p)?;
    let mut files = vec![p];
    files.extend(write_views(report, dir, templates)?);
    Ok(Written { files })
}

/// Writes what is rendered from the results (junit.xml and the HTML views) into `dir`.
pub fn write_views(
    report: &RunReport,
    dir: &Path,
    templates: Option<&Path>,
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create report directory {}: {e}", dir.display()))?;
    let p = dir.join("junit.xml");
    junit::write(report, &p)?;
    let mut files = vec![p];
    files.extend(html::write(report, dir, templates)?);
    Ok(files)
}

/// Where a failed case failed, as a load diagnostic shows it: `--> file:line:col`, the source
/// line and a caret under the column. None without a location (or with an old `file:line` one
/// and no source line).
pub fn failure_snippet(case: &CaseResult) -> Option<String> {
    let loc = case.location.as_deref()?;
    let source = case.source_line.as_deref()?;
    let mut parts = loc.rsplitn(3, ':');
    let col: u32 = parts.next()?.parse().ok()?;
    let line: u32 = parts.next()?.parse().ok()?;
    let file = parts.next()?;
    let mut d = Diagnostic::new(file, Pos { line, col }, "");
    d.source_line = Some(source.to_string());
    Some(d.snippet())
}
