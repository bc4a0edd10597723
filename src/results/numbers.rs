//! The ranges of the numbers a results.json or a history record may state, checked before
//! anything computes with them (a file from elsewhere is input like any other).

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
                let time = key.ends_with("_ms");
                let ok = if time {
                    // The last histogram bucket (`≤ ∞`) is written as f64::MAX: JSON has no ∞.
                    (0.0..=MAX_MS).contains(&x) || (key == "le_ms" && x == f64::MAX)
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
