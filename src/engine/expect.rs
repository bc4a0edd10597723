//! Evaluating expectations against an observation: status, headers, body, JSONPath checks,
//! partial-object matching (Chainsaw style), JSON Schema, elapsed time.

use std::path::Path;

use std::cmp::Ordering;

use serde_json::{json, Number, Value};
use serde_json_path::JsonPath;

use super::{ExecError, Observation};
use crate::results::{compact, AssertOp, AssertionResult};
use crate::spec::{
    BodyCheck, Check, Comparison, CookieExpect, Expect, ExpectedError, HeaderExpect, JsonType,
    LengthCheck, OrTemplate, Pos, SchemaRef, StatusExpect, TextCheck, TextExpect,
};
use crate::template::{Scope, BUILTIN_FUNCS};

/// Evaluates every expectation; template problems in expected values are spec errors.
pub fn evaluate(
    e: &Expect,
    obs: &Observation,
    scope: &Scope,
    spec_dir: &Path,
    access: &crate::spec::Access,
    at: Pos,
) -> Result<Vec<AssertionResult>, ExecError> {
    let mut out = Vec::new();
    let fallback = at;
    if let Some(st) = &e.status {
        out.push(check_status(
            st,
            obs.status,
            scope,
            e.at_key("status", fallback),
        )?);
    }
    if let Some(want) = e.error {
        out.push(check_error(want, obs, e.at_key("error", fallback)));
    }
    if !e.headers.is_empty() {
        let at = e.at_key("headers", fallback);
        for (name, h) in &e.headers {
            out.extend(check_header(name, h, obs.headers.pairs(), scope, at)?);
        }
    }
    if let Some(b) = &e.body {
        out.extend(check_body(b, obs, scope, e.at_key("body", fallback))?);
    }
    let http = obs.http.as_deref();
    if !e.cookies.is_empty() {
        let at = e.at_key("cookies", fallback);
        for (name, c) in &e.cookies {
            let cookie = http.and_then(|h| h.cookies.get(name));
            out.extend(check_cookie(name, c, cookie, scope, at)?);
        }
    }
    if let Some(v) = &e.version {
        let want = scope.render_str(v).map_err(ExecError::spec)?;
        let found = http
            .map(|h| h.version.to_string())
            .filter(|v| !v.is_empty());
        let norm = |s: &str| {
            let s = s.trim().to_ascii_uppercase();
            match s.as_str() {
                "HTTP/2.0" | "2" | "H2" => "HTTP/2".to_string(),
                "HTTP/3.0" | "3" | "H3" => "HTTP/3".to_string(),
                "1.1" => "HTTP/1.1".to_string(),
                _ => s,
            }
        };
        out.push(AssertionResult {
            line: e.at_key("version", fallback).line,
            col: e.at_key("version", fallback).col,
            subject: "HTTP version".into(),
            subject_template: None,
            op: AssertOp::Equals,
            passed: found.as_deref().is_some_and(|f| norm(f) == norm(&want)),
            expected: json!(want),
            actual: found.map(Value::String),
            message: None,
        });
    }
    if let Some(u) = &e.url {
        let found = http.map(|h| h.url.clone()).filter(|u| !u.is_empty());
        out.extend(check_text_expect(
            u,
            found.as_deref(),
            "final URL",
            scope,
            e.at_key("url", fallback),
        )?);
    }
    if !e.redirects.is_empty() {
        let chain = json!(http.map(|h| h.redirects.clone()).unwrap_or_default());
        for c in &e.redirects {
            let mut r = eval_check(c, &chain, scope, e.at_key("redirects", fallback))?;
            for a in &mut r {
                a.subject = format!("redirects {}", a.subject);
            }
            out.extend(r);
        }
    }
    for c in &e.json {
        out.extend(eval_check(c, obs.doc(), scope, fallback)?);
    }
    if let Some(expected) = &e.partial {
        let expected = scope.render_value(expected).map_err(ExecError::spec)?;
        let mut diffs = Vec::new();
        partial_match(&expected, obs.doc(), "$", &mut diffs);
        out.push(AssertionResult {
            line: e.at_key("match", fallback).line,
            col: e.at_key("match", fallback).col,
            subject: "document".into(),
            subject_template: None,
            op: AssertOp::MatchesPartial,
            expected,
            actual: None,
            passed: diffs.is_empty(),
            message: (!diffs.is_empty()).then(|| diffs.join("\n")),
        });
    }
    if let Some(schema) = &e.schema {
        out.push(check_schema(
            schema,
            obs.doc(),
            (spec_dir, access),
            scope,
            e.at_key("schema", fallback),
        )?);
    }
    if let Some(max) = &e.max_elapsed {
        let max = super::resolve_dur(max, scope)?;
        let ms = obs.elapsed.as_secs_f64() * 1000.0;
        out.push(AssertionResult {
            line: e.at_key("max_elapsed", fallback).line,
            col: e.at_key("max_elapsed", fallback).col,
            subject: "elapsed".into(),
            subject_template: None,
            op: AssertOp::AtMost,
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
    at: Pos,
) -> Result<AssertionResult, ExecError> {
    // What the step accepts: one code, a list, or a class (`2xx`). Checked once per step,
    // every request of a load: no allocation beyond the expected value's own.
    enum Want {
        Code(u16),
        AnyOf(Vec<u16>),
        Class(u16),
    }
    let (expected, want) = match st {
        StatusExpect::Code(c) => (json!(c), Want::Code(*c)),
        StatusExpect::AnyOf(cs) => (json!(cs), Want::AnyOf(cs.clone())),
        StatusExpect::Text(t) => {
            let rendered = scope
                .render_value(&Value::String(t.clone()))
                .map_err(ExecError::spec)?;
            match rendered {
                Value::Number(n) if n.as_u64().is_some() => {
                    let c = n.as_u64().unwrap_or_default() as u16;
                    (json!(c), Want::Code(c))
                }
                Value::Array(items) => {
                    let cs: Vec<u16> = items
                        .iter()
                        .filter_map(|v| v.as_u64().map(|n| n as u16))
                        .collect();
                    (json!(cs), Want::AnyOf(cs))
                }
                Value::String(s) => {
                    let s = s.trim().to_string();
                    if let Ok(c) = s.parse::<u16>() {
                        (json!(c), Want::Code(c))
                    } else if s.len() == 3 && s.ends_with("xx") {
                        let class = u16::from(s.as_bytes()[0].wrapping_sub(b'0'));
                        (json!(s), Want::Class(class))
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
    let ok = |a: u16| match &want {
        Want::Code(c) => a == *c,
        Want::AnyOf(cs) => cs.contains(&a),
        Want::Class(class) => a / 100 == *class,
    };
    Ok(AssertionResult {
        line: at.line,
        col: at.col,
        subject: "status".into(),
        subject_template: None,
        op: AssertOp::Is,
        passed: actual.is_some_and(&ok),
        expected,
        actual: actual.map(|a| json!(a)),
        message: None,
    })
}

/// `expect: {error: timeout|connect|too_many_redirects|any}`: the failure happened, and no
/// response came instead.
fn check_error(want: ExpectedError, obs: &Observation, at: Pos) -> AssertionResult {
    let http = obs.http.as_deref();
    let happened = http.and_then(|h| h.error);
    let passed = match (want, happened) {
        (_, None) => false,
        (ExpectedError::Any, Some(_)) => true,
        (w, Some(k)) => w.as_str() == k,
    };
    let actual = match (happened, obs.status) {
        (Some(k), _) => Some(json!(k)),
        (None, Some(s)) => Some(json!(format!("a response ({s})"))),
        (None, None) => None,
    };
    AssertionResult {
        line: at.line,
        col: at.col,
        subject: "request".into(),
        subject_template: None,
        op: AssertOp::FailsWith,
        expected: json!(want.as_str()),
        actual,
        passed,
        message: http.and_then(|h| h.error_message.clone()).or_else(|| {
            obs.status
                .map(|_| "a response arrived instead of the expected error".to_string())
        }),
    }
}

/// A header check. Its subject is the first value (the result says so when the header came
/// several times), or with `all: true` the list of every value.
fn check_header(
    name: &str,
    h: &HeaderExpect,
    headers: &[(String, String)],
    scope: &Scope,
    at: Pos,
) -> Result<Vec<AssertionResult>, ExecError> {
    let values: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    let first = values.first().copied();
    let several = (values.len() > 1).then(|| {
        format!(
            "the header came {} times: the first value was checked (`all: true` checks them all)",
            values.len()
        )
    });
    let subject = format!("header `{name}`");
    let mut out = Vec::new();
    match h {
        HeaderExpect::Exact(v) => {
            let want = scope.render_str(v).map_err(ExecError::spec)?;
            out.push(AssertionResult {
                line: at.line,
                col: at.col,
                subject,
                subject_template: None,
                op: AssertOp::Equals,
                passed: first == Some(want.as_str()),
                expected: Value::String(want),
                actual: first.map(|a| Value::String(a.to_string())),
                message: several,
            });
        }
        HeaderExpect::Check(c) if !c.all => {
            let tc = TextCheck {
                equals: match &c.equals {
                    None => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(other) => {
                        return Err(ExecError::spec(format!(
                            "header `{name}`: `equals: {other}` needs `all: true` to compare a list of values"
                        )))
                    }
                },
                contains: c.contains.clone(),
                matches: c.matches.clone(),
                exists: c.exists,
            };
            let mut r = check_text(&tc, first, &subject, scope, at)?;
            if let Some(n) = &several {
                r.iter_mut().for_each(|a| a.message = Some(n.clone()));
            }
            out.extend(r);
            if let Some(n) = c.count {
                out.push(count_result(&subject, n, values.len(), at));
            }
        }
        HeaderExpect::Check(c) => {
            let found = (!values.is_empty()).then(|| json!(values));
            let mk = |op: AssertOp, expected: Value, passed: bool| AssertionResult {
                line: at.line,
                col: at.col,
                subject: format!("{subject} (all values)"),
                subject_template: None,
                op,
                expected,
                actual: found.clone(),
                passed,
                message: None,
            };
            if let Some(e) = c.exists {
                out.push(mk(AssertOp::Exists, json!(e), values.is_empty() != e));
            }
            if let Some(v) = &c.equals {
                let want = match scope.render_value(v).map_err(ExecError::spec)? {
                    Value::Array(a) => a,
                    other => vec![other],
                };
                let want: Vec<String> = want
                    .iter()
                    .map(|w| match w {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                let passed = want.iter().map(String::as_str).eq(values.iter().copied());
                out.push(mk(AssertOp::Equals, json!(want), passed));
            }
            if let Some(v) = &c.contains {
                let v = scope.render_str(v).map_err(ExecError::spec)?;
                let passed = values.iter().any(|x| x.contains(&v));
                out.push(mk(AssertOp::ContainsInSomeValue, json!(v), passed));
            }
            if let Some(re) = &c.matches {
                let re_s = scope.render_str(re).map_err(ExecError::spec)?;
                let rx = regex::Regex::new(&re_s)
                    .map_err(|e| ExecError::spec(format!("bad regex `{re_s}`: {e}")))?;
                let passed = values.iter().any(|x| rx.is_match(x));
                out.push(mk(AssertOp::MatchesSomeValue, json!(re_s), passed));
            }
            if let Some(n) = c.count {
                out.push(count_result(&subject, n, values.len(), at));
            }
        }
    }
    Ok(out)
}

fn count_result(subject: &str, want: usize, found: usize, at: Pos) -> AssertionResult {
    AssertionResult {
        line: at.line,
        col: at.col,
        subject: format!("{subject} values"),
        subject_template: None,
        op: AssertOp::Count,
        expected: json!(want),
        actual: Some(json!(found)),
        passed: want == found,
        message: None,
    }
}

/// Body checks: on the text (decoded by its charset) and on the bytes (digests, length).
fn check_body(
    b: &BodyCheck,
    obs: &Observation,
    scope: &Scope,
    at: Pos,
) -> Result<Vec<AssertionResult>, ExecError> {
    let tc = TextCheck {
        equals: b.equals.clone(),
        contains: b.contains.clone(),
        matches: b.matches.clone(),
        exists: b.exists,
    };
    let mut out = check_text(&tc, obs.body.as_deref(), "body", scope, at)?;
    // The bytes: an HTTP step's decoded body; other steps' body text.
    let bytes: Option<&[u8]> = match obs.http.as_deref() {
        Some(h) if h.error.is_none() => Some(&h.bytes),
        Some(_) => None,
        None => obs.body.as_deref().map(str::as_bytes),
    };
    let over = obs.http.as_deref().is_some_and(|h| h.over_limit);
    let note = over.then(|| {
        "the body was over the target's max_body: only its kept start was checked".to_string()
    });
    let mut digest =
        |op: AssertOp, want: &Option<String>, f: fn(&[u8]) -> String| -> Result<(), ExecError> {
            if let Some(w) = want {
                let w = scope.render_str(w).map_err(ExecError::spec)?;
                let found = bytes.map(f);
                out.push(AssertionResult {
                    line: at.line,
                    col: at.col,
                    subject: "body bytes".into(),
                    subject_template: None,
                    op,
                    passed: found
                        .as_deref()
                        .is_some_and(|h| h.eq_ignore_ascii_case(w.trim())),
                    expected: json!(w),
                    actual: found.map(Value::String),
                    message: note.clone(),
                });
            }
            Ok(())
        };
    digest(AssertOp::Sha256, &b.sha256, |x| {
        use sha2::Digest;
        crate::filters::hex(&sha2::Sha256::digest(x))
    })?;
    digest(AssertOp::Md5, &b.md5, |x| {
        use md5::Digest;
        crate::filters::hex(&md5::Md5::digest(x))
    })?;
    if let Some(n) = &b.bytes_length {
        let want = scope.render_value(n).map_err(ExecError::spec)?;
        let found = match obs.http.as_deref() {
            Some(h) if h.error.is_none() => Some(h.total_bytes),
            Some(_) => None,
            None => bytes.map(|b| b.len() as u64),
        };
        out.push(AssertionResult {
            line: at.line,
            col: at.col,
            subject: "body bytes".into(),
            subject_template: None,
            op: AssertOp::Length,
            passed: found.is_some_and(|f| want.as_u64() == Some(f)),
            expected: want,
            actual: found.map(|f| json!(f)),
            message: None,
        });
    }
    Ok(out)
}

/// Checks on a cookie the response set (`cookie` is its parsed `Set-Cookie`).
fn check_cookie(
    name: &str,
    c: &CookieExpect,
    cookie: Option<&Value>,
    scope: &Scope,
    at: Pos,
) -> Result<Vec<AssertionResult>, ExecError> {
    let subject = |attr: &str| {
        if attr.is_empty() {
            format!("cookie `{name}`")
        } else {
            format!("cookie `{name}` {attr}")
        }
    };
    let value = cookie.and_then(|c| c["value"].as_str());
    let c = match c {
        CookieExpect::Value(v) => {
            return check_text_expect(
                &TextExpect::Exact(v.clone()),
                value,
                &subject(""),
                scope,
                at,
            )
        }
        CookieExpect::Check(c) => c,
    };
    let mut out = Vec::new();
    if let Some(e) = c.exists {
        out.push(AssertionResult {
            line: at.line,
            col: at.col,
            subject: subject(""),
            subject_template: None,
            op: AssertOp::Exists,
            expected: json!(e),
            actual: cookie.cloned(),
            passed: cookie.is_some() == e,
            message: None,
        });
    }
    if let Some(v) = &c.value {
        out.extend(check_text_expect(v, value, &subject("value"), scope, at)?);
    }
    if let Some(v) = &c.expires {
        let found = cookie.and_then(|c| c["expires"].as_str());
        out.extend(check_text_expect(v, found, &subject("expires"), scope, at)?);
    }
    let mut attr = |key: &str, want: Value, eq: &dyn Fn(&Value, &Value) -> bool| {
        let found = cookie.map(|c| c[key].clone());
        out.push(AssertionResult {
            line: at.line,
            col: at.col,
            subject: subject(key),
            subject_template: None,
            op: AssertOp::Equals,
            passed: found.as_ref().is_some_and(|f| eq(f, &want)),
            expected: want,
            actual: found,
            message: None,
        });
    };
    let text_eq = |f: &Value, w: &Value| match (f.as_str(), w.as_str()) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b.trim_start_matches('.')),
        _ => false,
    };
    if let Some(d) = &c.domain {
        attr(
            "domain",
            json!(scope.render_str(d).map_err(ExecError::spec)?),
            &text_eq,
        );
    }
    if let Some(p) = &c.path {
        attr(
            "path",
            json!(scope.render_str(p).map_err(ExecError::spec)?),
            &|f, w| f == w,
        );
    }
    if let Some(s) = &c.same_site {
        attr(
            "same_site",
            json!(scope.render_str(s).map_err(ExecError::spec)?),
            &text_eq,
        );
    }
    if let Some(b) = c.secure {
        attr("secure", json!(b), &|f, w| f == w);
    }
    if let Some(b) = c.http_only {
        attr("http_only", json!(b), &|f, w| f == w);
    }
    if let Some(n) = c.max_age {
        attr("max_age", json!(n), &|f, w| f == w);
    }
    Ok(out)
}

fn check_text_expect(
    t: &TextExpect,
    actual: Option<&str>,
    subject: &str,
    scope: &Scope,
    at: Pos,
) -> Result<Vec<AssertionResult>, ExecError> {
    match t {
        TextExpect::Exact(v) => {
            let want = scope.render_str(v).map_err(ExecError::spec)?;
            Ok(vec![AssertionResult {
                line: at.line,
                col: at.col,
                subject: subject.into(),
                subject_template: None,
                op: AssertOp::Equals,
                passed: actual == Some(want.as_str()),
                expected: json!(want),
                actual: actual.map(|a| json!(a)),
                message: None,
            }])
        }
        TextExpect::Check(tc) => check_text(tc, actual, subject, scope, at),
    }
}

fn check_text(
    tc: &TextCheck,
    actual: Option<&str>,
    subject: &str,
    scope: &Scope,
    at: Pos,
) -> Result<Vec<AssertionResult>, ExecError> {
    let mut out = Vec::new();
    let act = actual.map(|s| Value::String(s.to_string()));
    let mk = |op: AssertOp, expected: Value, passed: bool| AssertionResult {
        line: at.line,
        col: at.col,
        subject: subject.to_string(),
        subject_template: None,
        op,
        expected,
        actual: act.clone(),
        passed,
        message: None,
    };
    if let Some(e) = tc.exists {
        out.push(mk(AssertOp::Exists, json!(e), actual.is_some() == e));
    }
    if let Some(v) = &tc.equals {
        let v = scope.render_str(v).map_err(ExecError::spec)?;
        out.push(mk(AssertOp::Equals, json!(v), actual == Some(v.as_str())));
    }
    if let Some(v) = &tc.contains {
        let v = scope.render_str(v).map_err(ExecError::spec)?;
        out.push(mk(
            AssertOp::Contains,
            json!(v),
            actual.is_some_and(|a| a.contains(&v)),
        ));
    }
    if let Some(re) = &tc.matches {
        let re_s = scope.render_str(re).map_err(ExecError::spec)?;
        let re = regex::Regex::new(&re_s)
            .map_err(|e| ExecError::spec(format!("bad regex `{re_s}`: {e}")))?;
        out.push(mk(
            AssertOp::Matches,
            json!(re_s),
            actual.is_some_and(|a| re.is_match(a)),
        ));
    }
    Ok(out)
}

/// What a JSONPath selected: its value (`None`: nothing there) and how many nodes matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub value: Option<Value>,
    pub matches: usize,
}

/// True for an RFC 9535 singular query (only name and index selectors, no `..`).
///
/// serde_json_path keeps its own `is_singular` private, so this asks its parser: the operands
/// of a comparison in a filter must be singular queries, so `$[?<path> == null]` parses exactly
/// when `<path>` is singular.
pub fn is_singular(path: &str) -> bool {
    path.starts_with('$') && JsonPath::parse(&format!("$[?{path} == null]")).is_ok()
}

/// Selects the subject of a JSONPath (RFC 9535): a singular path gives its value or nothing;
/// any other path (wildcards, slices, filters, descendants, unions) gives the list of its
/// matches, even of 0 or 1, so a check means the same whatever the number of matches.
pub fn select(path: &str, doc: &Value) -> Result<Selection, ExecError> {
    let jp = JsonPath::parse(path)
        .map_err(|e| ExecError::spec(format!("bad JSONPath `{path}`: {e}")))?;
    let nodes = jp.query(doc).all();
    let matches = nodes.len();
    let value = if is_singular(path) {
        nodes.first().map(|v| (*v).clone())
    } else {
        Some(Value::Array(nodes.into_iter().cloned().collect()))
    };
    Ok(Selection { value, matches })
}

/// The verdict of one operator: passed, and why when that is not obvious from expected vs found.
struct Verdict {
    passed: bool,
    note: Option<String>,
}

impl Verdict {
    fn of(passed: bool) -> Verdict {
        Verdict { passed, note: None }
    }
    /// The operator does not apply to these operands: a failure that says why.
    fn invalid(why: String) -> Verdict {
        Verdict {
            passed: false,
            note: Some(why),
        }
    }
    /// `f` on the subject when there is one; nothing there fails (shown as "found nothing").
    fn on(actual: Option<&Value>, f: impl FnOnce(&Value) -> Verdict) -> Verdict {
        actual.map(f).unwrap_or(Verdict::of(false))
    }
}

/// An applicable operator's result, or why it does not apply.
fn verdict(r: Result<bool, String>, negate: bool) -> Verdict {
    match r {
        Ok(b) => Verdict::of(b != negate),
        Err(why) => Verdict::invalid(why),
    }
}

/// Evaluates one check (`path`, `value` or `expr`) into one result per operator.
pub fn eval_check(
    c: &Check,
    doc: &Value,
    scope: &Scope,
    default_at: Pos,
) -> Result<Vec<AssertionResult>, ExecError> {
    let at = if c.pos.line > 0 { c.pos } else { default_at };
    let mut out = Vec::new();
    let with_note = |note: Option<String>| -> Option<String> {
        match (c.message.clone(), note) {
            (Some(m), Some(n)) => Some(format!("{m}; {n}")),
            (m, n) => m.or(n),
        }
    };
    if let Some(expr) = &c.expr {
        let v = scope.eval(expr).map_err(ExecError::spec)?;
        let passed = truthy(&v);
        out.push(AssertionResult {
            line: at.line,
            col: at.col,
            subject: expr.clone(),
            subject_template: None,
            op: AssertOp::Is,
            expected: json!(true),
            passed,
            actual: Some(v),
            message: with_note(if passed {
                None
            } else {
                expr_values(expr, scope)
            }),
        });
        return Ok(out);
    }
    // The subject as checked (templates rendered), and as written when that differs.
    let (subject, template, actual, found) = if let Some(p) = &c.path {
        let rendered = scope.render_str(p).map_err(ExecError::spec)?;
        let sel = select(&rendered, doc)?;
        let template = (rendered != *p).then(|| p.clone());
        (rendered, template, sel.value, sel.matches > 0)
    } else {
        let raw = c.value.clone().unwrap_or(Value::Null);
        let value = scope.render_value(&raw).map_err(ExecError::spec)?;
        let (label, template) = match &raw {
            Value::String(s) if crate::template::is_template(s) => {
                let rendered = match &value {
                    Value::String(r) => r.clone(),
                    other => compact(other),
                };
                (rendered, Some(s.clone()))
            }
            Value::String(s) => (s.clone(), None),
            other => (compact(other), None),
        };
        (label, template, Some(value), true)
    };
    let actual = actual.as_ref();
    let mut push =
        |subject: &str, op: AssertOp, expected: Value, found: Option<Value>, v: Verdict| {
            out.push(AssertionResult {
                line: at.line,
                col: at.col,
                subject: subject.to_string(),
                subject_template: None,
                op,
                expected,
                actual: found,
                passed: v.passed,
                message: with_note(v.note),
            })
        };
    let render = |v: &Value| scope.render_value(v).map_err(ExecError::spec);
    let regex = |re: &str| -> Result<(String, regex::Regex), ExecError> {
        let re_s = scope.render_str(re).map_err(ExecError::spec)?;
        let rx = regex::Regex::new(&re_s)
            .map_err(|e| ExecError::spec(format!("bad regex `{re_s}`: {e}")))?;
        Ok((re_s, rx))
    };
    let found_value = actual.cloned();

    if let Some(e) = &c.exists {
        let want: bool = literal(e, "exists", scope)?;
        push(
            &subject,
            AssertOp::Exists,
            json!(want),
            found_value.clone(),
            Verdict::of(found == want),
        );
    }
    for (op, operand, negate) in [
        (AssertOp::Equals, &c.equals, false),
        (AssertOp::NotEquals, &c.not_equals, true),
    ] {
        if let Some(v) = operand {
            let v = render(v)?;
            let verdict = Verdict::on(actual, |a| Verdict::of(json_eq(a, &v) != negate));
            push(&subject, op, v, found_value.clone(), verdict);
        }
    }
    for (op, operand, negate) in [
        (AssertOp::Matches, &c.matches, false),
        (AssertOp::DoesNotMatch, &c.not_matches, true),
    ] {
        if let Some(re) = operand {
            let (re_s, rx) = regex(re)?;
            let verdict = Verdict::on(actual, |a| {
                verdict(text_of(a, op.as_str()).map(|t| rx.is_match(&t)), negate)
            });
            push(&subject, op, json!(re_s), found_value.clone(), verdict);
        }
    }
    for (op, operand, negate) in [
        (AssertOp::Contains, &c.contains, false),
        (AssertOp::DoesNotContain, &c.not_contains, true),
    ] {
        if let Some(v) = operand {
            let v = render(v)?;
            let verdict = Verdict::on(actual, |a| verdict(contains(a, &v, op.as_str()), negate));
            push(&subject, op, v, found_value.clone(), verdict);
        }
    }
    if let Some(t) = &c.type_ {
        let t: JsonType = literal(t, "type", scope)?;
        let verdict = Verdict::on(actual, |a| Verdict::of(has_type(a, t)));
        push(
            &subject,
            AssertOp::HasType,
            json!(t),
            found_value.clone(),
            verdict,
        );
    }
    if let Some(l) = &c.length {
        let label = format!("length of {subject}");
        let len = actual.map(length);
        // Found: the length, or the value itself when it has none.
        let shown = match (&len, actual) {
            (Some(Ok(n)), _) => Some(json!(n)),
            (_, a) => a.cloned(),
        };
        let cmp = match l {
            LengthCheck::Exact(v) => Comparison {
                equals: Some(v.clone()),
                ..Default::default()
            },
            LengthCheck::Compare(c) => (**c).clone(),
        };
        for (op, bound) in comparisons(&cmp) {
            let b = render(bound)?;
            let Some(want) = b.as_u64() else {
                return Err(ExecError::spec(format!(
                    "length {} {}: a length bound must be a whole number >= 0",
                    op_word(op),
                    compact(&b)
                )));
            };
            let verdict = match &len {
                None => Verdict::of(false),
                Some(Err(why)) => Verdict::invalid(why.clone()),
                Some(Ok(n)) => Verdict::of(holds(op, (*n as u64).cmp(&want))),
            };
            push(&label, op_word(op), b, shown.clone(), verdict);
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
            let verdict = Verdict::on(actual, |a| match ordered(a, &b) {
                Ok((ord, as_strings)) => Verdict {
                    passed: holds(op, ord),
                    note: as_strings.then(|| "compared as strings".to_string()),
                },
                Err(why) => Verdict::invalid(why),
            });
            push(&subject, op_word(op), b, found_value.clone(), verdict);
        }
    }
    if let Some(opts) = &c.one_of {
        let opts = render(opts)?;
        let Some(list) = opts.as_array() else {
            return Err(ExecError::spec(format!(
                "one_of needs a list, got {}",
                compact(&opts)
            )));
        };
        let verdict = Verdict::on(actual, |a| Verdict::of(list.iter().any(|x| json_eq(a, x))));
        push(
            &subject,
            AssertOp::IsOneOf,
            opts.clone(),
            found_value.clone(),
            verdict,
        );
    }
    // Every result of the check names the same subject (`length of $.jobs[3]` too).
    if let Some(t) = template {
        for a in &mut out {
            a.subject_template = Some(a.subject.replacen(&subject, &t, 1));
        }
    }
    Ok(out)
}

/// A literal operand, or its template rendered and read as a `T` (a spec error otherwise).
fn literal<T: Clone + serde::de::DeserializeOwned>(
    v: &OrTemplate<T>,
    key: &str,
    scope: &Scope,
) -> Result<T, ExecError> {
    match v {
        OrTemplate::Literal(t) => Ok(t.clone()),
        OrTemplate::Template(s) => {
            let rendered = scope
                .render_value(&Value::String(s.clone()))
                .map_err(ExecError::spec)?;
            serde_json::from_value(rendered.clone()).map_err(|e| {
                ExecError::spec(format!(
                    "`{key}: {s}` rendered to {}: {e}",
                    compact(&rendered)
                ))
            })
        }
    }
}

/// The values of the variables an expression uses, for a failed `expr`
/// (`stream_port = 50000, port_min = 50051`). Environment variables are never shown.
fn expr_values(expr: &str, scope: &Scope) -> Option<String> {
    let env = minijinja::Environment::new();
    let compiled = env.compile_expression(expr).ok()?;
    let mut names: Vec<String> = compiled
        .undeclared_variables(true)
        .into_iter()
        .filter(|n| {
            let top = n.split('.').next().unwrap_or(n);
            top != "env" && !BUILTIN_FUNCS.contains(&top) && scope.get(top).is_some()
        })
        .collect();
    names.sort_by_key(|n| (expr.find(n.as_str()).unwrap_or(usize::MAX), n.clone()));
    let parts: Vec<String> = names
        .iter()
        .filter_map(|n| {
            let v = scope.eval(n).ok()?;
            let mut s = serde_json::to_string(&v).ok()?;
            if s.chars().count() > 80 {
                s = format!("{}…", s.chars().take(80).collect::<String>());
            }
            Some(format!("{n} = {s}"))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
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

fn op_word(op: &str) -> AssertOp {
    match op {
        "gt" => AssertOp::Gt,
        "gte" => AssertOp::Ge,
        "lt" => AssertOp::Lt,
        "lte" => AssertOp::Le,
        _ => AssertOp::Eq,
    }
}

/// Does `subject <op> bound` hold, given how the subject orders against the bound?
fn holds(op: &str, ord: Ordering) -> bool {
    match op {
        "gt" => ord == Ordering::Greater,
        "gte" => ord != Ordering::Less,
        "lt" => ord == Ordering::Less,
        "lte" => ord != Ordering::Greater,
        _ => ord == Ordering::Equal,
    }
}

/// How `a` orders against `b`: numbers numerically (integers exactly), two strings as strings
/// (Unicode code points; the flag says so); any other pair cannot be ordered, and the error says why.
pub fn ordered(a: &Value, b: &Value) -> Result<(Ordering, bool), String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y)
            .map(|o| (o, false))
            .ok_or_else(|| format!("{x} and {y} cannot be compared")),
        (Value::String(x), Value::String(y)) => Ok((x.as_str().cmp(y.as_str()), true)),
        _ => {
            let numeric_text =
                |v: &Value| v.as_str().is_some_and(|s| s.trim().parse::<f64>().is_ok());
            let hint = if (a.is_number() && numeric_text(b)) || (b.is_number() && numeric_text(a)) {
                " (a string is never a number here: convert it in a template, e.g. `{{ x | int }}`)"
            } else {
                ""
            };
            Err(format!(
                "cannot compare {} with {}: only two numbers or two strings can be ordered{hint}",
                kind(a),
                kind(b)
            ))
        }
    }
}

/// "a string", "a number", ... for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// An integer number as i128 (every i64 and u64 fits), `None` for floats.
fn int_of(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// Compares two JSON numbers exactly: integers as integers (no rounding through f64, so
/// `10000000000000000365` is not `10000000000000000000`), an integer and a float exactly,
/// two floats as floats.
pub fn num_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    match (int_of(a), int_of(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        (Some(x), None) => int_float_cmp(x, b.as_f64()?),
        (None, Some(y)) => int_float_cmp(y, a.as_f64()?).map(Ordering::reverse),
        (None, None) => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// `i` against `f`, exactly: compare `i` with the integer part of `f`, then its fraction.
fn int_float_cmp(i: i128, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    let whole = f.floor();
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0; // 2^127
    if whole >= LIMIT {
        return Some(Ordering::Less);
    }
    if whole < -LIMIT {
        return Some(Ordering::Greater);
    }
    Some(match i.cmp(&(whole as i128)) {
        Ordering::Equal if f > whole => Ordering::Less,
        o => o,
    })
}

/// Numbers compare by value (1 == 1.0, integers exactly); everything else structurally.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(Ordering::Equal),
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

/// The text a regex looks at: a string, or a number's or boolean's JSON text.
fn text_of(v: &Value, op: &str) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(_) | Value::Bool(_) => Ok(v.to_string()),
        other => Err(format!(
            "`{op}` looks at a text, a number or a boolean, not {}",
            kind(other)
        )),
    }
}

/// Length of a text (characters), list or object.
fn length(v: &Value) -> Result<usize, String> {
    match v {
        Value::String(s) => Ok(s.chars().count()),
        Value::Array(a) => Ok(a.len()),
        Value::Object(o) => Ok(o.len()),
        other => Err(format!(
            "only a text, a list or an object has a length, not {}",
            kind(other)
        )),
    }
}

/// Substring of a text, element of a list (partial match), key of an object.
fn contains(hay: &Value, needle: &Value, op: &str) -> Result<bool, String> {
    match (hay, needle) {
        (Value::String(s), Value::String(n)) => Ok(s.contains(n.as_str())),
        (Value::String(s), Value::Number(_) | Value::Bool(_)) => {
            Ok(s.contains(&needle.to_string()))
        }
        (Value::String(_), other) => Err(format!(
            "a text can only contain a text, not {}",
            kind(other)
        )),
        (Value::Array(items), _) => Ok(items.iter().any(|i| {
            let mut d = Vec::new();
            partial_match(needle, i, "$", &mut d);
            d.is_empty()
        })),
        (Value::Object(o), Value::String(k)) => Ok(o.contains_key(k)),
        (Value::Object(_), other) => Err(format!(
            "an object contains keys (texts), not {}",
            kind(other)
        )),
        (other, _) => Err(format!(
            "`{op}` looks into a text, a list or an object, not {}",
            kind(other)
        )),
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
    (spec_dir, access): (&Path, &crate::spec::Access),
    scope: &Scope,
    at: Pos,
) -> Result<AssertionResult, ExecError> {
    let (schema, label) = match s {
        SchemaRef::Inline(m) => (Value::Object(m.clone()), "inline schema".to_string()),
        SchemaRef::File(f) => {
            // A templated path is known only now: the rules `validate` applies to written-out
            // ones (inside the project or `allow_paths`, a regular file) are applied here. A
            // refused file is not read, so never quoted.
            let f = &scope.render_str(f)?;
            let p = access
                .check(&spec_dir.join(f), "schema file")
                .map_err(|e| ExecError::spec(e.with_fix()))?;
            let text = std::fs::read_to_string(&p)
                .map_err(|e| ExecError::spec(format!("schema file {}: {e}", p.display())))?;
            let v: Value = if f.ends_with(".json") {
                serde_json::from_str(&text)
                    .map_err(|e| ExecError::spec(format!("schema file {}: {e}", p.display())))?
            } else {
                crate::spec::yaml::from_str(&text)
                    .map_err(|e| ExecError::spec(format!("schema file {}:{e}", p.display())))?
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
        line: at.line,
        col: at.col,
        subject: "document".into(),
        subject_template: None,
        op: AssertOp::ConformsTo,
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
        crate::spec::yaml::from_str(yaml).unwrap()
    }

    fn run(c: &str, doc: Value) -> Vec<AssertionResult> {
        let mut s = Scope::default();
        s.set("expected_port", json!(50051));
        eval_check(&check(c), &doc, &s, Pos { line: 1, col: 1 }).unwrap()
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

    fn doc() -> Value {
        json!({
            "job_id": "18-3", "stream_port": 50051, "n": 1.0, "nothing": null, "zero": 0,
            "items": [{"a": 1, "s": "x"}, {"a": 2, "s": "y"}],
            "one": [{"a": 7}],
            "big": 10000000000000000365u64, "neg": -3, "half": 2.5,
            "name": "beta", "flag": true, "obj": {"k": 1}
        })
    }

    fn scope() -> Scope {
        let mut s = Scope::default();
        s.set("expected_port", json!(50051));
        s.set("port_min", json!(50051));
        s.set("stream_port", json!(50000));
        s.set("allowed", json!(["18-3", "18-4"]));
        s.set("want_type", json!("string"));
        s.set("should_exist", json!(false));
        s.set("two", json!(2));
        s.set("target", json!({"name": "local", "port_max": 50350}));
        s
    }

    /// Every result of a check: (passed, describe()).
    fn results(c: &str) -> Vec<(bool, String)> {
        eval_check(&check(c), &doc(), &scope(), Pos { line: 1, col: 1 })
            .unwrap()
            .into_iter()
            .map(|r| (r.passed, r.describe()))
            .collect()
    }

    fn passes(c: &str) -> bool {
        let r = results(c);
        assert!(!r.is_empty(), "{c}: no result");
        r.iter().all(|(p, _)| *p)
    }

    /// The single result of a check, which must fail; its description.
    fn fails(c: &str) -> String {
        let r = results(c);
        assert_eq!(r.len(), 1, "{c}: {r:?}");
        assert!(!r[0].0, "{c} should fail: {}", r[0].1);
        r[0].1.clone()
    }

    #[test]
    fn singular_paths_are_recognised() {
        for p in [
            "$",
            "$.a",
            "$.a.b",
            "$['a']",
            "$.items[0].a",
            "$[0]",
            "$.a[-1]",
        ] {
            assert!(is_singular(p), "{p} is singular");
        }
        for p in [
            "$.*",
            "$.items[*].a",
            "$.items[0:1]",
            "$..a",
            "$['a','b']",
            "$.items[?@.a == 1]",
            "$.items[0,1]",
        ] {
            assert!(!is_singular(p), "{p} is not singular");
        }
    }

    #[test]
    fn non_singular_paths_give_lists_whatever_the_count() {
        let sel = |p: &str| select(p, &doc()).unwrap();
        assert_eq!(sel("$.items[*].a").value, Some(json!([1, 2])));
        assert_eq!(
            sel("$.one[*].a").value,
            Some(json!([7])),
            "one match: still a list"
        );
        assert_eq!(
            sel("$.items[?@.a == 9].a").value,
            Some(json!([])),
            "no match: []"
        );
        assert_eq!(sel("$.items[?@.a == 9].a").matches, 0);
        assert_eq!(sel("$.stream_port").value, Some(json!(50051)));
        assert_eq!(sel("$.missing").value, None);
        assert_eq!(sel("$.nothing").value, Some(Value::Null), "null is a value");
        // the same operators mean the same for 0, 1 or 2 matches
        assert!(passes(
            "{path: '$.one[*].a', equals: [7], length: 1, contains: 7}"
        ));
        assert!(passes(
            "{path: '$.items[*].a', equals: [1, 2], length: 2, contains: 2}"
        ));
        assert!(passes(
            "{path: '$.items[?@.a == 9].a', equals: [], length: 0, not_contains: 9}"
        ));
        assert!(passes("{path: '$.items[?@.a == 9]', exists: false}"));
        assert!(passes("{path: '$..a', length: 3}"));
        assert!(passes("{path: \"$['job_id','n']\", equals: ['18-3', 1]}"));
        assert!(fails("{path: '$.one[*].a', equals: 7}").contains("found [7]"));
        assert!(fails("{path: '$.items[?@.a == 9].a', exists: true}").contains("found []"));
        assert!(fails("{path: '$.items[*].a', length: 0}")
            .contains("length of $.items[*].a == 0: found 2"));
        // a singular path that matches nothing has no length
        assert!(fails("{path: $.missing, length: 0}").contains("found nothing"));
    }

    #[test]
    fn null_is_a_value_to_compare_with() {
        let c = check("{path: $.x, equals: null}");
        assert_eq!(c.equals, Some(Value::Null));
        assert_eq!(check("{path: $.x, exists: true}").equals, None);
        assert!(passes("{path: $.nothing, equals: null}"));
        assert!(fails("{path: $.missing, equals: null}").contains("equals null: found nothing"));
        assert!(fails("{path: $.zero, equals: null}").contains("found 0"));
        assert!(passes("{path: $.zero, not_equals: null}"));
        assert!(
            fails("{path: $.nothing, not_equals: null}").contains("not equals null: found null")
        );
        assert!(passes("{path: $.nothing, type: 'null', exists: true}"));
        assert!(
            passes("{path: $.nothing, type: null}"),
            "unquoted null is the null type"
        );
        assert!(fails("{path: $.zero, type: null}").contains("has type \"null\": found 0"));
        assert!(passes("{value: null, equals: null}"));
    }

    #[test]
    fn negations() {
        assert!(passes("{path: $.job_id, not_contains: '-9'}"));
        assert!(fails("{path: $.job_id, not_contains: '-3'}")
            .contains("$.job_id does not contain \"-3\": found \"18-3\""));
        assert!(passes("{path: '$.items[*].s', not_contains: z}"));
        assert!(fails("{path: '$.items[*].s', not_contains: y}").contains("found [\"x\",\"y\"]"));
        assert!(passes("{path: $.obj, not_contains: j}"));
        assert!(fails("{path: $.obj, not_contains: k}").contains("does not contain \"k\""));
        assert!(passes("{path: $.job_id, not_matches: '^x'}"));
        assert!(fails("{path: $.job_id, not_matches: '^\\d+-'}")
            .contains("$.job_id does not match \"^\\\\d+-\": found \"18-3\""));
        assert!(passes("{path: $.missing, exists: false}"));
        assert!(fails("{path: $.job_id, exists: false}")
            .contains("$.job_id exists false: found \"18-3\""));
        // nothing there is not a pass for a negation (use `exists: false`)
        assert!(fails("{path: $.missing, not_contains: x}").contains("found nothing"));
        assert!(fails("{path: $.missing, not_matches: x}").contains("found nothing"));
        assert!(fails("{path: $.missing, not_equals: 1}").contains("found nothing"));
        // an operator that does not apply fails with the reason, negated or not
        let m = fails("{path: $.stream_port, not_contains: 5}");
        assert!(
            m.contains("looks into a text, a list or an object, not a number"),
            "{m}"
        );
        let m = fails("{path: $.obj, not_matches: x}");
        assert!(m.contains("not an object"), "{m}");
        let m = fails("{path: $.obj, contains: 1}");
        assert!(
            m.contains("an object contains keys (texts), not a number"),
            "{m}"
        );
    }

    #[test]
    fn ordering_numbers_strings_and_mixes() {
        assert!(passes(
            "{path: $.stream_port, gt: 50050, gte: 50051, lt: 50052, lte: 50051}"
        ));
        assert!(fails("{path: $.stream_port, gt: 50051}")
            .contains("$.stream_port > 50051: found 50051"));
        assert!(fails("{path: $.stream_port, gte: 50052}").contains(">= 50052"));
        assert!(fails("{path: $.stream_port, lt: 50051}").contains("< 50051"));
        assert!(fails("{path: $.stream_port, lte: 50050}").contains("<= 50050"));
        assert!(passes("{path: $.half, gt: 2, lt: 3}"));
        assert!(passes("{path: $.neg, lt: -2.5}"));
        // two strings: code-point order, and the message says so
        let r = results("{path: $.name, gt: alpha, lt: gamma}");
        assert!(
            r.iter()
                .all(|(p, d)| *p && d.contains("(compared as strings)")),
            "{r:?}"
        );
        let m = fails("{path: $.name, gt: zeta}");
        assert!(
            m.contains("$.name > \"zeta\": found \"beta\" (compared as strings)"),
            "{m}"
        );
        assert!(
            passes("{value: 'B', lt: a}"),
            "upper case sorts before lower case"
        );
        assert!(passes("{value: 'é', gt: z}"), "code points, not locale");
        // mixes fail and say why: never a silent false
        let m = fails("{path: $.job_id, gt: 5}");
        assert!(m.contains("cannot compare a string with a number"), "{m}");
        let m = fails("{value: '50051', gte: 50000}");
        assert!(
            m.contains("cannot compare a string with a number") && m.contains("| int"),
            "{m}"
        );
        let m = fails("{path: $.flag, lt: 1}");
        assert!(m.contains("cannot compare a boolean with a number"), "{m}");
        let m = fails("{path: $.items, gt: 1}");
        assert!(m.contains("cannot compare a list with a number"), "{m}");
        let m = fails("{path: $.stream_port, gt: '{{ target }}'}");
        assert!(m.contains("cannot compare a number with an object"), "{m}");
        // the author's message comes first
        let m = fails("{path: $.name, gt: zeta, message: names sort}");
        assert!(m.ends_with("(names sort; compared as strings)"), "{m}");
    }

    #[test]
    fn big_integers_compare_exactly() {
        assert!(fails("{path: $.big, equals: 10000000000000000000}")
            .contains("found 10000000000000000365"));
        assert!(passes("{path: $.big, equals: 10000000000000000365}"));
        assert!(passes(
            "{path: $.big, gt: 10000000000000000364, lt: 10000000000000000366}"
        ));
        assert!(fails("{path: $.big, lte: 10000000000000000364}").contains("<="));
        assert!(passes(
            "{path: $.big, not_equals: 10000000000000000000, one_of: [1, 10000000000000000365]}"
        ));
        assert!(passes("{path: $.n, equals: 1}"), "1.0 == 1");
        assert!(passes("{path: $.stream_port, equals: 50051.0}"));
        let n = |v: Value| match v {
            Value::Number(n) => n,
            _ => unreachable!(),
        };
        assert_eq!(
            num_cmp(&n(json!(i64::MIN)), &n(json!(u64::MAX))),
            Some(Ordering::Less)
        );
        assert_eq!(
            num_cmp(
                &n(json!(9007199254740993u64)),
                &n(json!(9007199254740992.0))
            ),
            Some(Ordering::Greater)
        );
        assert_eq!(
            num_cmp(&n(json!(3)), &n(json!(2.5))),
            Some(Ordering::Greater)
        );
        assert_eq!(
            num_cmp(&n(json!(-3)), &n(json!(-2.5))),
            Some(Ordering::Less)
        );
        assert_eq!(num_cmp(&n(json!(2)), &n(json!(2.0))), Some(Ordering::Equal));
        assert_eq!(
            num_cmp(&n(json!(1e300)), &n(json!(u64::MAX))),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn failed_expr_shows_its_variables() {
        let r = eval_check(
            &check("{expr: 'stream_port >= port_min'}"),
            &doc(),
            &scope(),
            Pos { line: 1, col: 1 },
        )
        .unwrap();
        assert!(!r[0].passed);
        assert_eq!(
            r[0].describe(),
            "stream_port >= port_min is true: found false (stream_port = 50000, port_min = 50051)"
        );
        let r = eval_check(
            &check(
                "{expr: 'stream_port < target.port_max and env.HOME is defined', message: ports}",
            ),
            &doc(),
            &scope(),
            Pos { line: 1, col: 1 },
        )
        .unwrap();
        assert!(r[0].passed);
        assert_eq!(
            r[0].message.as_deref(),
            Some("ports"),
            "values only on failure"
        );
        let r = eval_check(
            &check("{expr: 'stream_port > target.port_max and range(3) | length > 0 and env.HOME is defined'}"),
            &doc(),
            &scope(),
            Pos { line: 1, col: 1 },
        )
        .unwrap();
        assert_eq!(
            r[0].message.as_deref(),
            Some("stream_port = 50000, target.port_max = 50350"),
            "nested names, no functions, never the environment"
        );
    }

    #[test]
    fn every_operand_may_be_a_template() {
        assert!(passes("{path: $.job_id, one_of: '{{ allowed }}'}"));
        assert!(fails("{path: $.stream_port, one_of: '{{ allowed }}'}")
            .contains("is one of [\"18-3\",\"18-4\"]: found 50051"));
        assert!(passes("{path: $.job_id, type: '{{ want_type }}'}"));
        assert!(fails("{path: $.stream_port, type: '{{ want_type }}'}")
            .contains("has type \"string\": found 50051"));
        assert!(passes("{path: $.missing, exists: '{{ should_exist }}'}"));
        assert!(fails("{path: $.job_id, exists: '{{ should_exist }}'}").contains("exists false"));
        assert!(passes("{path: $.items, length: '{{ two }}'}"));
        assert!(passes(
            "{path: $.items, length: {gte: '{{ two }}', lt: '{{ two + 1 }}'}}"
        ));
        assert!(passes(
            "{path: $.stream_port, gte: '{{ port_min }}', equals: '{{ expected_port }}'}"
        ));
        assert!(passes(
            "{path: $.job_id, contains: '{{ \"18\" }}', not_contains: '{{ \"19\" }}'}"
        ));
        assert!(passes(
            "{path: $.job_id, matches: '^{{ 18 }}-', not_matches: '^{{ 19 }}'}"
        ));
        let err = |c: &str| {
            eval_check(&check(c), &doc(), &scope(), Pos { line: 1, col: 1 })
                .unwrap_err()
                .message
        };
        assert!(err("{path: $.job_id, one_of: '{{ two }}'}").contains("one_of needs a list"));
        assert!(
            err("{path: $.job_id, type: '{{ two }}'}").contains("`type: {{ two }}` rendered to 2")
        );
        assert!(err("{path: $.items, length: '{{ \"x\" }}'}").contains("whole number"));
    }

    #[test]
    fn every_operator_fails_with_expected_and_found() {
        // one result per operator, each with its own expected value
        let r = eval_check(
            &check("{path: $.job_id, equals: a, not_equals: '18-3', matches: '^z', not_matches: '^1', contains: q, not_contains: '8', exists: false, type: number, length: 1, gt: z, gte: z, lt: '0', lte: '0', one_of: [b]}"),
            &doc(),
            &scope(),
            Pos { line: 1, col: 1 },
        )
        .unwrap();
        let ops: Vec<&str> = r.iter().map(|r| r.op.as_str()).collect();
        assert_eq!(
            ops,
            [
                "exists",
                "equals",
                "not equals",
                "matches",
                "does not match",
                "contains",
                "does not contain",
                "has type",
                "==",
                ">",
                ">=",
                "<",
                "<=",
                "is one of"
            ]
        );
        assert!(r.iter().all(|r| !r.passed), "{r:?}");
        assert!(r.iter().all(|r| r.actual.is_some()));
        assert_eq!(r[8].subject, "length of $.job_id");
        assert_eq!(r[8].actual, Some(json!(4)));
        assert_eq!(r[1].expected, json!("a"));
        let m = fails("{path: $.stream_port, length: 3}");
        assert!(m.contains("length of $.stream_port == 3: found 50051 (only a text, a list or an object has a length, not a number)"), "{m}");
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
