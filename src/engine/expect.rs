//! Evaluating expectations against an observation: status, headers, body, JSONPath checks,
//! partial-object matching (Chainsaw style), JSON Schema, elapsed time.

use std::path::Path;

use serde_json::{json, Value};
use serde_json_path::JsonPath;

use super::{ExecError, Observation};
use crate::results::{compact, AssertionResult};
use crate::spec::{
    Check, Comparison, Expect, HeaderExpect, JsonType, LengthCheck, SchemaRef, StatusExpect,
    TextCheck,
};
use crate::template::Scope;

/// Evaluates every expectation; template problems in expected values are spec errors.
pub fn evaluate(
    e: &Expect,
    obs: &Observation,
    scope: &Scope,
    spec_dir: &Path,
    line: u32,
) -> Result<Vec<AssertionResult>, ExecError> {
    let mut out = Vec::new();
    let fallback = line;
    let line = e.line_of("headers", fallback);
    if let Some(st) = &e.status {
        out.push(check_status(
            st,
            obs.status,
            scope,
            e.line_of("status", fallback),
        )?);
    }
    for (name, h) in &e.headers {
        let actual = obs
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone());
        let subject = format!("header `{name}`");
        match h {
            HeaderExpect::Exact(v) => {
                let want = scope.render_str(v).map_err(ExecError::spec)?;
                out.push(AssertionResult {
                    line,
                    subject,
                    op: "equals".into(),
                    passed: actual.as_deref() == Some(want.as_str()),
                    expected: Value::String(want),
                    actual: actual.map(Value::String),
                    message: None,
                });
            }
            HeaderExpect::Check(tc) => {
                out.extend(check_text(tc, actual.as_deref(), &subject, scope, line)?)
            }
        }
    }
    if let Some(b) = &e.body {
        out.extend(check_text(
            b,
            obs.body.as_deref(),
            "body",
            scope,
            e.line_of("body", fallback),
        )?);
    }
    for c in &e.json {
        out.extend(eval_check(c, &obs.doc, scope, fallback)?);
    }
    if let Some(expected) = &e.partial {
        let expected = scope.render_value(expected).map_err(ExecError::spec)?;
        let mut diffs = Vec::new();
        partial_match(&expected, &obs.doc, "$", &mut diffs);
        out.push(AssertionResult {
            line: e.line_of("match", fallback),
            subject: "document".into(),
            op: "matches (partial)".into(),
            expected,
            actual: None,
            passed: diffs.is_empty(),
            message: (!diffs.is_empty()).then(|| diffs.join("\n")),
        });
    }
    if let Some(schema) = &e.schema {
        out.push(check_schema(
            schema,
            &obs.doc,
            spec_dir,
            e.line_of("schema", fallback),
        )?);
    }
    if let Some(max) = &e.max_elapsed {
        let max = super::resolve_dur(max, scope)?;
        let ms = obs.elapsed.as_secs_f64() * 1000.0;
        out.push(AssertionResult {
            line: e.line_of("max_elapsed", fallback),
            subject: "elapsed".into(),
            op: "at most".into(),
            expected: json!(format!("{}ms", max.as_millis())),
            actual: Some(json!(format!("{ms:.1}ms"))),
            passed: obs.elapsed <= max,
            message: None,
        });
    }
    Ok(out)
}

fn check_status(
    st: &StatusExpect,
    actual: Option<u16>,
    scope: &Scope,
    line: u32,
) -> Result<AssertionResult, ExecError> {
    let (expected, ok): (Value, Box<dyn Fn(u16) -> bool>) = match st {
        StatusExpect::Code(c) => {
            let c = *c;
            (json!(c), Box::new(move |a| a == c))
        }
        StatusExpect::AnyOf(cs) => {
            let cs = cs.clone();
            (json!(cs), Box::new(move |a| cs.contains(&a)))
        }
        StatusExpect::Text(t) => {
            let rendered = scope
                .render_value(&Value::String(t.clone()))
                .map_err(ExecError::spec)?;
            match rendered {
                Value::Number(n) if n.as_u64().is_some() => {
                    let c = n.as_u64().unwrap_or_default() as u16;
                    (json!(c), Box::new(move |a| a == c))
                }
                Value::Array(items) => {
                    let cs: Vec<u16> = items
                        .iter()
                        .filter_map(|v| v.as_u64().map(|n| n as u16))
                        .collect();
                    (json!(cs), Box::new(move |a| cs.contains(&a)))
                }
                Value::String(s) => {
                    let s = s.trim().to_string();
                    if let Ok(c) = s.parse::<u16>() {
                        (json!(c), Box::new(move |a| a == c))
                    } else if s.len() == 3 && s.ends_with("xx") {
                        let class = s.as_bytes()[0] - b'0';
                        (json!(s), Box::new(move |a| a / 100 == class as u16))
                    } else {
                        return Err(ExecError::spec(format!(
                            "status `{s}` is not a code, a list of codes or a class like `2xx`"
                        )));
                    }
                }
                other => {
                    return Err(ExecError::spec(format!(
                        "status expectation rendered to {other}, not a code"
                    )))
                }
            }
        }
    };
    Ok(AssertionResult {
        line,
        subject: "status".into(),
        op: "is".into(),
        passed: actual.is_some_and(&ok),
        expected,
        actual: actual.map(|a| json!(a)),
        message: None,
    })
}

fn check_text(
    tc: &TextCheck,
    actual: Option<&str>,
    subject: &str,
    scope: &Scope,
    line: u32,
) -> Result<Vec<AssertionResult>, ExecError> {
    let mut out = Vec::new();
    let act = actual.map(|s| Value::String(s.to_string()));
    let mk = |op: &str, expected: Value, passed: bool| AssertionResult {
        line,
        subject: subject.to_string(),
        op: op.into(),
        expected,
        actual: act.clone(),
        passed,
        message: None,
    };
    if let Some(e) = tc.exists {
        out.push(mk("exists", json!(e), actual.is_some() == e));
    }
    if let Some(v) = &tc.equals {
        let v = scope.render_str(v).map_err(ExecError::spec)?;
        out.push(mk("equals", json!(v), actual == Some(v.as_str())));
    }
    if let Some(v) = &tc.contains {
        let v = scope.render_str(v).map_err(ExecError::spec)?;
        out.push(mk(
            "contains",
            json!(v),
            actual.is_some_and(|a| a.contains(&v)),
        ));
    }
    if let Some(re) = &tc.matches {
        let re_s = scope.render_str(re).map_err(ExecError::spec)?;
        let re = regex::Regex::new(&re_s)
            .map_err(|e| ExecError::spec(format!("bad regex `{re_s}`: {e}")))?;
        out.push(mk(
            "matches",
            json!(re_s),
            actual.is_some_and(|a| re.is_match(a)),
        ));
    }
    Ok(out)
}

/// Selects the subject of a JSONPath: one match = the value, several = the list, none = None.
pub fn select(path: &str, doc: &Value) -> Result<Option<Value>, ExecError> {
    let jp = JsonPath::parse(path)
        .map_err(|e| ExecError::spec(format!("bad JSONPath `{path}`: {e}")))?;
    let nodes = jp.query(doc).all();
    Ok(match nodes.len() {
        0 => None,
        1 => Some(nodes[0].clone()),
        _ => Some(Value::Array(nodes.into_iter().cloned().collect())),
    })
}

/// Evaluates one check (`path`, `value` or `expr`) into one result per operator.
pub fn eval_check(
    c: &Check,
    doc: &Value,
    scope: &Scope,
    default_line: u32,
) -> Result<Vec<AssertionResult>, ExecError> {
    let line = if c.pos.line > 0 {
        c.pos.line
    } else {
        default_line
    };
    let mut out = Vec::new();
    if let Some(expr) = &c.expr {
        let v = scope.eval(expr).map_err(ExecError::spec)?;
        out.push(AssertionResult {
            line,
            subject: expr.clone(),
            op: "is".into(),
            expected: json!(true),
            passed: truthy(&v),
            actual: Some(v),
            message: c.message.clone(),
        });
        return Ok(out);
    }
    let (subject, actual) = if let Some(p) = &c.path {
        let p = scope.render_str(p).map_err(ExecError::spec)?;
        let v = select(&p, doc)?;
        (p, v)
    } else {
        let raw = c.value.clone().unwrap_or(Value::Null);
        let label = match &raw {
            Value::String(s) => s.clone(),
            other => compact(other),
        };
        (
            label,
            Some(scope.render_value(&raw).map_err(ExecError::spec)?),
        )
    };
    let mut push = |op: &str, expected: Value, passed: bool| {
        out.push(AssertionResult {
            line,
            subject: subject.clone(),
            op: op.to_string(),
            expected,
            actual: actual.clone(),
            passed,
            message: c.message.clone(),
        })
    };
    let render = |v: &Value| scope.render_value(v).map_err(ExecError::spec);
    if let Some(e) = c.exists {
        push("exists", json!(e), actual.is_some() == e);
    }
    if let Some(v) = &c.equals {
        let v = render(v)?;
        let ok = actual.as_ref().is_some_and(|a| json_eq(a, &v));
        push("equals", v, ok);
    }
    if let Some(v) = &c.not_equals {
        let v = render(v)?;
        let ok = actual.as_ref().is_some_and(|a| !json_eq(a, &v));
        push("not equals", v, ok);
    }
    if let Some(re) = &c.matches {
        let re_s = scope.render_str(re).map_err(ExecError::spec)?;
        let rx = regex::Regex::new(&re_s)
            .map_err(|e| ExecError::spec(format!("bad regex `{re_s}`: {e}")))?;
        let ok = actual.as_ref().is_some_and(|a| rx.is_match(&as_text(a)));
        push("matches", json!(re_s), ok);
    }
    if let Some(v) = &c.contains {
        let v = render(v)?;
        let ok = actual.as_ref().is_some_and(|a| contains(a, &v));
        push("contains", v, ok);
    }
    if let Some(t) = c.type_ {
        let ok = actual.as_ref().is_some_and(|a| has_type(a, t));
        push("has type", json!(t), ok);
    }
    if let Some(l) = &c.length {
        let len = actual.as_ref().and_then(length);
        let cmp = match l {
            LengthCheck::Exact(v) => Comparison {
                equals: Some(v.clone()),
                ..Default::default()
            },
            LengthCheck::Compare(c) => (**c).clone(),
        };
        for (op, bound) in comparisons(&cmp) {
            let b = render(bound)?;
            let ok = match (len, b.as_f64()) {
                (Some(n), Some(b)) => compare(op, n as f64, b),
                _ => false,
            };
            out.push(AssertionResult {
                line,
                subject: format!("length of {subject}"),
                op: op_word(op).into(),
                expected: b,
                actual: len.map(|n| json!(n)),
                passed: ok,
                message: c.message.clone(),
            });
        }
    }
    for (op, bound) in [
        ("gt", &c.gt),
        ("gte", &c.gte),
        ("lt", &c.lt),
        ("lte", &c.lte),
    ] {
        if let Some(b) = bound {
            let b = render(b)?;
            let ok = match (actual.as_ref().and_then(number), number(&b)) {
                (Some(a), Some(b)) => compare(op, a, b),
                _ => false,
            };
            out.push(AssertionResult {
                line,
                subject: subject.clone(),
                op: op_word(op).into(),
                expected: b,
                actual: actual.clone(),
                passed: ok,
                message: c.message.clone(),
            });
        }
    }
    if let Some(opts) = &c.one_of {
        let opts = render(&Value::Array(opts.clone()))?;
        let ok = actual.as_ref().is_some_and(|a| {
            opts.as_array()
                .is_some_and(|o| o.iter().any(|x| json_eq(a, x)))
        });
        out.push(AssertionResult {
            line,
            subject: subject.clone(),
            op: "is one of".into(),
            expected: opts,
            actual: actual.clone(),
            passed: ok,
            message: c.message.clone(),
        });
    }
    Ok(out)
}

fn comparisons(c: &Comparison) -> Vec<(&'static str, &Value)> {
    let mut v = Vec::new();
    if let Some(x) = &c.equals {
        v.push(("eq", x));
    }
    for (op, b) in [
        ("gt", &c.gt),
        ("gte", &c.gte),
        ("lt", &c.lt),
        ("lte", &c.lte),
    ] {
        if let Some(x) = b {
            v.push((op, x));
        }
    }
    v
}

fn op_word(op: &str) -> &'static str {
    match op {
        "gt" => ">",
        "gte" => ">=",
        "lt" => "<",
        "lte" => "<=",
        _ => "==",
    }
}

fn compare(op: &str, a: f64, b: f64) -> bool {
    match op {
        "gt" => a > b,
        "gte" => a >= b,
        "lt" => a < b,
        "lte" => a <= b,
        _ => (a - b).abs() < f64::EPSILON,
    }
}

/// Numbers compare by value (1 == 1.0); everything else structurally.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A number, or a string holding one (Kubernetes quantities stay strings: compare those with equals).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn length(v: &Value) -> Option<usize> {
    match v {
        Value::String(s) => Some(s.chars().count()),
        Value::Array(a) => Some(a.len()),
        Value::Object(o) => Some(o.len()),
        _ => None,
    }
}

fn contains(hay: &Value, needle: &Value) -> bool {
    match hay {
        Value::String(s) => s.contains(&as_text(needle)),
        Value::Array(items) => items.iter().any(|i| {
            let mut d = Vec::new();
            partial_match(needle, i, "$", &mut d);
            d.is_empty()
        }),
        Value::Object(o) => needle.as_str().is_some_and(|k| o.contains_key(k)),
        _ => false,
    }
}

fn has_type(v: &Value, t: JsonType) -> bool {
    match t {
        JsonType::String => v.is_string(),
        JsonType::Number => v.is_number(),
        JsonType::Integer => v.is_i64() || v.is_u64(),
        JsonType::Boolean => v.is_boolean(),
        JsonType::Array => v.is_array(),
        JsonType::Object => v.is_object(),
        JsonType::Null => v.is_null(),
    }
}

/// Partial-object matching: every field in `expected` must be in `actual` with a matching value;
/// objects are compared key by key (extra actual keys are fine), lists by content (each expected
/// element must match a distinct actual element), scalars by value. Differences go to `diffs`.
pub fn partial_match(expected: &Value, actual: &Value, path: &str, diffs: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = format!("{path}.{k}");
                match a.get(k) {
                    Some(av) => partial_match(ev, av, &p, diffs),
                    None => diffs.push(format!(
                        "{p}: expected {}, but the field is missing",
                        compact(ev)
                    )),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            let mut used = vec![false; a.len()];
            for (i, ev) in e.iter().enumerate() {
                let mut best: Option<(usize, Vec<String>)> = None;
                for (j, av) in a.iter().enumerate() {
                    if used[j] {
                        continue;
                    }
                    let mut d = Vec::new();
                    partial_match(ev, av, &format!("{path}[{j}]"), &mut d);
                    if d.is_empty() {
                        best = Some((j, d));
                        break;
                    }
                    if best.as_ref().is_none_or(|(_, bd)| d.len() < bd.len()) {
                        best = Some((j, d));
                    }
                }
                match best {
                    Some((j, d)) if d.is_empty() => used[j] = true,
                    Some((_, d)) => {
                        diffs.push(format!(
                            "{path}: no element matches expected item #{i} {}; closest differs in:",
                            compact(ev)
                        ));
                        diffs.extend(d.into_iter().map(|l| format!("  {l}")));
                    }
                    None => diffs.push(format!(
                        "{path}: expected an element matching {}, but the list is empty",
                        compact(ev)
                    )),
                }
            }
        }
        (e, a) => {
            let same = json_eq(e, a)
                || (matches!(a, Value::Number(_)) && e.as_str() == Some(&a.to_string()));
            if !same {
                diffs.push(format!(
                    "{path}: expected {}, found {}",
                    compact(e),
                    compact(a)
                ));
            }
        }
    }
}

fn check_schema(
    s: &SchemaRef,
    doc: &Value,
    spec_dir: &Path,
    line: u32,
) -> Result<AssertionResult, ExecError> {
    let (schema, label) = match s {
        SchemaRef::Inline(m) => (Value::Object(m.clone()), "inline schema".to_string()),
        SchemaRef::File(f) => {
            let p = spec_dir.join(f);
            let text = std::fs::read_to_string(&p)
                .map_err(|e| ExecError::spec(format!("schema file {}: {e}", p.display())))?;
            let v: Value = if f.ends_with(".json") {
                serde_json::from_str(&text)
                    .map_err(|e| ExecError::spec(format!("schema file {}: {e}", p.display())))?
            } else {
                serde_yaml::from_str(&text)
                    .map_err(|e| ExecError::spec(format!("schema file {}: {e}", p.display())))?
            };
            (v, f.clone())
        }
    };
    let validator = jsonschema::validator_for(&schema)
        .map_err(|e| ExecError::spec(format!("invalid JSON Schema {label}: {e}")))?;
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .take(10)
        .map(|e| format!("{}: {}", e.instance_path(), e))
        .collect();
    Ok(AssertionResult {
        line,
        subject: "document".into(),
        op: "conforms to".into(),
        expected: json!(label),
        actual: None,
        passed: errors.is_empty(),
        message: (!errors.is_empty()).then(|| errors.join("\n")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Check {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn run(c: &str, doc: Value) -> Vec<AssertionResult> {
        let mut s = Scope::default();
        s.set("expected_port", json!(50051));
        eval_check(&check(c), &doc, &s, 1).unwrap()
    }

    #[test]
    fn operators() {
        let doc = json!({"job_id": "18-3", "stream_port": 50051, "items": [{"a": 1}, {"a": 2}], "n": 1.0});
        assert!(run("{path: $.job_id, matches: '^\\d+-\\d+$'}", doc.clone())[0].passed);
        assert!(
            run(
                "{path: $.stream_port, equals: '{{ expected_port }}'}",
                doc.clone()
            )[0]
            .passed
        );
        assert!(run("{path: $.n, equals: 1}", doc.clone())[0].passed);
        assert!(
            run("{path: $.stream_port, gte: 50051, lt: 50351}", doc.clone())
                .iter()
                .all(|r| r.passed)
        );
        assert!(run("{path: $.items, length: 2}", doc.clone())[0].passed);
        assert!(run("{path: $.items, length: {gte: 3}}", doc.clone())
            .iter()
            .all(|r| !r.passed));
        assert!(run("{path: '$.items[*].a', contains: 2}", doc.clone())[0].passed);
        assert!(run("{path: $.nope, exists: false}", doc.clone())[0].passed);
        assert!(!run("{path: $.nope, exists: true}", doc.clone())[0].passed);
        assert!(run("{path: $.job_id, type: string}", doc.clone())[0].passed);
        assert!(!run("{path: $.job_id, type: integer}", doc.clone())[0].passed);
        assert!(run("{path: $.job_id, one_of: ['18-3', '18-4']}", doc.clone())[0].passed);
        assert!(run("{expr: 'expected_port > 50000'}", doc.clone())[0].passed);
        let r = &run("{path: $.job_id, equals: '18-4'}", doc)[0];
        assert!(!r.passed);
        assert_eq!(r.describe(), "$.job_id equals \"18-4\": found \"18-3\"");
    }

    #[test]
    fn partial_matching_reports_paths() {
        let actual = json!({"spec": {"containers": [{"name": "x", "ports": [{"containerPort": 50051}]},
                                                    {"name": "baby", "resources": {"limits": {"memory": "4Gi"}}}]}});
        let mut d = Vec::new();
        partial_match(
            &json!({"spec": {"containers": [{"name": "baby", "resources": {"limits": {"memory": "4Gi"}}}]}}),
            &actual,
            "$",
            &mut d,
        );
        assert!(d.is_empty(), "{d:?}");
        partial_match(
            &json!({"spec": {"containers": [{"name": "baby", "resources": {"limits": {"memory": "8Gi"}}}]}}),
            &actual,
            "$",
            &mut d,
        );
        assert!(
            d.iter()
                .any(|l| l.contains("memory: expected \"8Gi\", found \"4Gi\"")),
            "{d:?}"
        );
    }
}
