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
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a focusqa results.json: {e}", path.display()))?;
    check_numbers(&value).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut report: RunReport = serde_json::from_value(value)
        .map_err(|e| format!("{} is not a focusqa results.json: {e}", path.display()))?;
    report.redact(&crate::results::Secrets::new());
    let target = report.target.clone();
    if let Some(c) = &mut report.coverage {
        c.fill_target(&target);
    }
    Ok(report)
}

pub use crate::results::numbers::{check_numbers, MAX_MS, MAX_NUMBER};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_out_of_range_are_named_by_their_field() {
        let ok = json!({"duration_ms": 12.5, "seed": u64::MAX, "specs": [{"duration_ms": 0}]});
        assert!(check_numbers(&ok).is_ok());
        let e =
            check_numbers(&json!({"specs": [{"cases": [{"duration_ms": 1e308}]}]})).unwrap_err();
        assert!(
            e.contains("field `specs[0].cases[0].duration_ms` is 1e+308"),
            "{e}"
        );
        assert!(check_numbers(&json!({"duration_ms": -1.0})).is_err());
        assert!(check_numbers(&json!({"totals": {"passed": 1e300}})).is_err());
        assert!(check_numbers(&json!({"p95_ms": f64::MAX})).is_err());
        // A captured value is the system's data.
        assert!(check_numbers(&json!({"captures": {"late_ms": -1e300}})).is_ok());
        // The open-ended last bucket of a histogram, as the engine writes it; nothing else.
        let hist = |le: f64| json!({"histogram": [{"le_ms": 10.0, "count": 1}, {"le_ms": le, "count": 2}]});
        assert!(check_numbers(&hist(f64::MAX)).is_ok());
        assert!(check_numbers(&hist(1e300)).is_err());
    }
}
