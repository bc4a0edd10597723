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
    Ok(report)
}

/// Fields holding values of the system under test (any number is legitimate there).
const USER_DATA: &[&str] = &[
    "captures",
    "vars",
    "expected",
    "actual",
    "request",
    "response",
    "attachments",
];

/// The largest time a results.json may state, in milliseconds (about 31 years): sums, time
/// shifts and date arithmetic over such values stay finite and in range.
pub const MAX_MS: f64 = 1e12;
/// The largest magnitude of any other number (counts, statistics).
pub const MAX_NUMBER: f64 = 1e15;

/// Every number of a results.json is in range before anything computes with it: a time
/// (`*_ms`) is 0 to [`MAX_MS`], any other number (a seed aside) at most [`MAX_NUMBER`] in
/// magnitude. (The JSON parser refuses what is not finite.) The error names the field by its
/// path, says what was expected, found, and what to do.
pub fn check_numbers(v: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value;
    // The parser nests at most 128 levels: a recursion bounded by a constant.
    fn walk(v: &Value, key: &str, path: &mut Vec<String>) -> Result<(), String> {
        match v {
            Value::Number(n) => {
                if key == "seed" {
                    return Ok(());
                }
                let x = n.as_f64().unwrap_or(f64::INFINITY);
                // A histogram's open-ended last bucket is written as the largest float.
                if key == "le_ms" && x == f64::MAX {
                    return Ok(());
                }
                let time = key.ends_with("_ms");
                let ok = if time {
                    (0.0..=MAX_MS).contains(&x)
                } else {
                    x.abs() <= MAX_NUMBER
                };
                if !ok {
                    let field = path.concat();
                    return Err(format!(
                        "field `{field}` is {n}, expected {}; the file was edited or damaged: run again, or fix the field",
                        if time {
                            format!("a time of 0 to {MAX_MS:e} ms")
                        } else {
                            format!("a number of magnitude at most {MAX_NUMBER:e}")
                        }
                    ));
                }
                Ok(())
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    path.push(format!("[{i}]"));
                    walk(x, key, path)?;
                    path.pop();
                }
                Ok(())
            }
            Value::Object(m) => {
                for (k, x) in m {
                    // What a spec captured, sent, expected or saw is the system's data, not ours.
                    if USER_DATA.contains(&k.as_str()) {
                        continue;
                    }
                    path.push(if path.is_empty() {
                        k.clone()
                    } else {
                        format!(".{k}")
                    });
                    walk(x, k, path)?;
                    path.pop();
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    walk(v, "", &mut Vec::new())
}

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
        // A captured value is the system's data.
        assert!(check_numbers(&json!({"captures": {"late_ms": -1e300}})).is_ok());
        // The open-ended last bucket of a histogram, as the engine writes it; nothing else.
        let hist = |le: f64| json!({"histogram": [{"le_ms": 10.0, "count": 1}, {"le_ms": le, "count": 2}]});
        assert!(check_numbers(&hist(f64::MAX)).is_ok());
        assert!(check_numbers(&hist(1e300)).is_err());
    }
}
