//! `results.json`: the complete results model.

use std::path::Path;

use crate::results::RunReport;

pub fn write(report: &RunReport, path: &Path) -> Result<(), String> {
    let text = serde_json::to_string_pretty(report)
        .map_err(|e| format!("cannot serialise results: {e}"))?;
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Reads a results file. Its secrets were redacted when it was written; the rules by name
/// (sensitive headers, URL parameters, JSON fields) run again, for files from elsewhere.
pub fn read(path: &Path) -> Result<RunReport, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut report: RunReport = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a focusqa results.json: {e}", path.display()))?;
    report.redact(&crate::results::Secrets::new());
    Ok(report)
}
