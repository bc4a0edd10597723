//! Structural checks of a spec: the YAML (as JSON) against the JSON Schema generated from the
//! model, then typed deserialization step by step. Every problem of a file is found in one go
//! (serde alone stops at the first) and located at the offending key or value.

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::{Location, LocationSegment};
use jsonschema::{ValidationError, Validator};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::diag::did_you_mean;
use super::diag::Problem;
use super::position::PositionIndex;
use super::{Spec, Step};

struct SpecSchema {
    schema: Value,
    validator: Validator,
    /// Every property name the schema knows (fallback for "did you mean").
    fields: Vec<String>,
}

fn spec_schema() -> Option<&'static SpecSchema> {
    static S: OnceLock<Option<SpecSchema>> = OnceLock::new();
    S.get_or_init(|| {
        let schema = serde_json::to_value(schemars::schema_for!(Spec)).ok()?;
        let validator = jsonschema::validator_for(&schema).ok()?;
        let mut fields = Vec::new();
        collect_fields(&schema, &mut fields);
        fields.sort();
        fields.dedup();
        Some(SpecSchema {
            schema,
            validator,
            fields,
        })
    })
    .as_ref()
}

fn collect_fields(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = m.get("properties") {
                out.extend(props.keys().cloned());
            }
            m.values().for_each(|x| collect_fields(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_fields(x, out)),
        _ => {}
    }
}

/// `/steps/0/expect` -> `steps[0].expect` (the paths of [`PositionIndex`]).
pub fn location_path(loc: &Location) -> String {
    let mut out = String::new();
    for seg in loc.iter() {
        match seg {
            LocationSegment::Property(p) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&p);
            }
            LocationSegment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else if key.is_empty() {
        base.to_string()
    } else if key.starts_with('[') {
        format!("{base}{key}")
    } else {
        format!("{base}.{key}")
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}

/// The properties the schema allows where an `additionalProperties` error was raised.
fn allowed_fields(root: &Value, schema_path: &Location) -> Option<Vec<String>> {
    let ptr = schema_path.as_str();
    let parent = ptr.strip_suffix("/additionalProperties")?;
    let node = root.pointer(parent)?;
    let props = node.get("properties")?.as_object()?;
    Some(props.keys().cloned().collect())
}

/// Every structural problem of the document, each at its own position.
pub fn schema_problems(value: &Value, index: &PositionIndex) -> Vec<Problem> {
    let Some(s) = spec_schema() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in s.validator.iter_errors(value) {
        convert(&e, s, index, &mut out, 0);
    }
    for list in ["steps", "cleanup"] {
        duration_problems(value.get(list), list, index, &mut out);
    }
    out.sort_by_key(|p| (p.0.line, p.0.col));
    out.dedup();
    out
}

/// Every literal duration of every step (serde would stop at the first bad one of a step).
fn duration_problems(
    steps: Option<&Value>,
    base: &str,
    index: &PositionIndex,
    out: &mut Vec<Problem>,
) {
    let Some(Value::Array(items)) = steps else {
        return;
    };
    for (i, step) in items.iter().enumerate() {
        let p = format!("{base}[{i}]");
        let fields: [(&str, &[&str]); 7] = [
            ("sleep", &[]),
            ("http", &["timeout"]),
            ("sim", &["timeout"]),
            ("until", &["interval", "timeout"]),
            ("kube", &["interval", "timeout"]),
            ("expect", &["max_elapsed"]),
            (
                "fanout",
                &["ramp_up", "deadline", "duration", "graceful_stop"],
            ),
        ];
        for (key, subs) in fields {
            let Some(v) = step.get(key) else { continue };
            let targets: Vec<(String, &Value)> = if subs.is_empty() {
                vec![(format!("{p}.{key}"), v)]
            } else {
                subs.iter()
                    .filter_map(|k| v.get(*k).map(|x| (format!("{p}.{key}.{k}"), x)))
                    .collect()
            };
            for (path, d) in targets {
                let text = match d {
                    Value::Number(n) => format!("{n}s"),
                    Value::String(s) if !s.contains("{{") => s.clone(),
                    // `.nan` and `.inf` have no JSON form: they arrive as null.
                    Value::Null => match index.scalars.iter().find(|x| x.path == path) {
                        Some(x)
                            if !matches!(x.value.as_str(), "null" | "~" | "Null" | "NULL" | "") =>
                        {
                            x.value.clone()
                        }
                        _ => continue,
                    },
                    _ => continue,
                };
                if let Err(e) = super::parse_duration(&text) {
                    out.push((index.get(&path), format!("{path}: {e}"), None));
                }
            }
        }
        if let Some(f) = step.get("fanout") {
            duration_problems(f.get("steps"), &format!("{p}.fanout.steps"), index, out);
            duration_problems(f.get("cleanup"), &format!("{p}.fanout.cleanup"), index, out);
        }
    }
}

fn convert(
    e: &ValidationError<'_>,
    s: &SpecSchema,
    index: &PositionIndex,
    out: &mut Vec<Problem>,
    depth: usize,
) {
    let path = location_path(e.instance_path());
    if defers_to_typed_checks(&path) {
        return;
    }
    match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = allowed_fields(&s.schema, e.schema_path());
            for k in unexpected {
                let pos = index.key(&join(&path, k));
                if k == "grpc" {
                    out.push((
                        pos,
                        format!(
                            "{}a `grpc` step is not allowed: {}",
                            at(&path),
                            super::GRPC_OUT_OF_SCOPE
                        ),
                        Some("remove the step; assert on `stream_url`/`stream_port` of the configure answer instead".into()),
                    ));
                    continue;
                }
                let cands: Vec<&str> = match &allowed {
                    Some(a) => a.iter().map(String::as_str).collect(),
                    None => s.fields.iter().map(String::as_str).collect(),
                };
                let expected = allowed
                    .as_ref()
                    .map(|a| {
                        format!(
                            ", expected one of {}",
                            a.iter()
                                .map(|x| format!("`{x}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
                    .unwrap_or_default();
                out.push((
                    pos,
                    format!("{}unknown field `{k}`{expected}", at(&path)),
                    did_you_mean(k, cands.iter().copied()),
                ));
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| property.to_string());
            out.push((
                index.get(&path),
                format!("{}missing field `{name}`", at(&path)),
                None,
            ));
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            // An untagged choice (e.g. a capture is a JSONPath or a mapping): when only one
            // alternative has the right type, its own errors are the helpful ones.
            let viable: Vec<&Vec<ValidationError<'static>>> = context
                .iter()
                .filter(|branch| {
                    !branch.iter().any(|b| {
                        b.instance_path() == e.instance_path()
                            && matches!(b.kind(), ValidationErrorKind::Type { .. })
                    })
                })
                .collect();
            if viable.len() == 1 && !viable[0].is_empty() && depth < 16 {
                for b in viable[0] {
                    convert(b, s, index, out, depth + 1);
                }
            } else {
                out.push((
                    index.get(&path),
                    format!(
                        "{}{} has the wrong shape for `{}`",
                        at(&path),
                        short(e.instance()),
                        path.rsplit('.').next().unwrap_or(&path)
                    ),
                    None,
                ));
            }
        }
        ValidationErrorKind::Type { .. } => {
            out.push((
                index.get(&path),
                format!("{}wrong type: {e}", at(&path)),
                None,
            ));
        }
        _ => out.push((index.get(&path), format!("{}{e}", at(&path)), None)),
    }
}

/// Check operands and fan-out counts have checks of their own after the typed reading, with
/// messages that say what would work (`length` must be a whole number, `gt` orders numbers or
/// strings); the schema's "does not match \{\{" for them would only hide those.
fn defers_to_typed_checks(path: &str) -> bool {
    const OPERANDS: [&str; 10] = [
        "gt",
        "gte",
        "lt",
        "lte",
        "length",
        "one_of",
        "count",
        "concurrency",
        "type",
        "exists",
    ];
    let mut segs = path.rsplit('.');
    let last = segs.next().unwrap_or_default();
    let parent = segs.next().unwrap_or_default();
    OPERANDS.contains(&last)
        || (parent == "length" && ["equals", "gt", "gte", "lt", "lte"].contains(&last))
}

/// Deserializes one value, reporting a failure at the position of the offending node.
fn typed<T: DeserializeOwned>(
    v: &Value,
    base: impl FnOnce() -> String,
    index: &PositionIndex,
    out: &mut Vec<Problem>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            let rel = e.path().to_string();
            let rel = if rel == "." { String::new() } else { rel };
            let full = join(&base(), &rel);
            let msg = e.inner().to_string();
            let msg = msg.replace(
                "data did not match any variant of untagged enum",
                "value has the wrong shape for",
            );
            let hint = unknown_variant_hint(&msg);
            out.push((index.get(&full), format!("{}{msg}", at(&full)), hint));
            None
        }
    }
}

/// "did you mean `string`?" for serde's "unknown variant `strin`, expected one of `string`, ...".
fn unknown_variant_hint(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown variant `")?;
    let (bad, rest) = rest.split_once('`')?;
    let names: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    did_you_mean(bad, names.iter().copied())
}

/// Steps one by one (and the steps of fan-outs before their fan-out), so one bad step does
/// not hide the problems of the others. Every item yields a step, a broken one as far as it
/// could be read ([`recover_step`]), so the later checks see every step at its own index.
///
/// With `consume`, each step's value is dropped once it is read (the caller needs them no more).
pub(crate) fn typed_steps(
    v: Option<&mut Value>,
    base: &str,
    consume: bool,
    index: &PositionIndex,
    out: &mut Vec<Problem>,
) -> Vec<Step> {
    let Some(Value::Array(items)) = v else {
        return Vec::new();
    };
    let mut steps = Vec::with_capacity(items.len());
    for (i, item) in items.iter_mut().enumerate() {
        // Spelt only where needed: a block's inner steps, a problem.
        let p = || format!("{base}[{i}]");
        let before = out.len();
        // A block's inner steps, for their problems (the block reads them itself below).
        if let Some(f) = item.get_mut("fanout") {
            let (a, b) = (
                format!("{}.fanout.steps", p()),
                format!("{}.fanout.cleanup", p()),
            );
            typed_steps(f.get_mut("steps"), &a, false, index, out);
            typed_steps(f.get_mut("cleanup"), &b, false, index, out);
        }
        for block in ["foreach", "repeat"] {
            if let Some(b) = item.get_mut(block) {
                let at = format!("{}.{block}.steps", p());
                typed_steps(b.get_mut("steps"), &at, false, index, out);
            }
        }
        let read = if out.len() > before {
            None
        } else {
            typed::<Step>(item, p, index, out)
        };
        steps.push(read.unwrap_or_else(|| recover_step(item)));
        if consume {
            *item = Value::Null;
        }
    }
    steps
}

/// The typed spec, every deserialization problem reported. A spec with problems is still read
/// as far as it can be ([`recover`]: the broken parts left out), so that the checks after the
/// structure (regexes, operands, includes, variables, ...) report their problems in the same
/// run; `None` only when even that fails.
///
/// The steps' values are dropped as they are read (`value` keeps its other keys).
pub fn typed_spec(value: &mut Value, index: &PositionIndex) -> (Option<Spec>, Vec<Problem>) {
    let mut out = Vec::new();
    let steps = typed_steps(value.get_mut("steps"), "steps", true, index, &mut out);
    let cleanup = typed_steps(value.get_mut("cleanup"), "cleanup", true, index, &mut out);
    // The spec without its steps (read above): a copy of the few keys beside them.
    let top = match value {
        Value::Object(m) => {
            let mut top: serde_json::Map<String, Value> = m
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "steps" | "cleanup"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            // Missing steps are the schema's to report (once).
            top.insert("steps".into(), Value::Array(Vec::new()));
            Value::Object(top)
        }
        other => other.clone(),
    };
    let spec =
        typed::<Spec>(&top, String::new, index, &mut out).or_else(|| recover::<Spec>(&top, false));
    out.sort_by_key(|p| (p.0.line, p.0.col));
    let spec = spec.map(|mut spec| {
        spec.steps = steps;
        spec.cleanup = cleanup;
        spec
    });
    (spec, out)
}

/// Keys whose value is a [`super::Dur`]: a bad one is replaced by a good one when recovering
/// (it was reported; leaving the key out could make its step lose its action).
const DUR_KEYS: &[&str] = &[
    "sleep",
    "timeout",
    "interval",
    "ramp_up",
    "deadline",
    "duration",
    "graceful_stop",
    "max_elapsed",
];

/// The keys that make a step's action.
const ACTIONS: &[&str] = &[
    "http", "sleep", "assert", "sim", "kube", "fanout", "foreach", "repeat", "include", "grpc",
];

/// A step that does not deserialize, read as far as it can be: the problems were reported, this
/// only keeps what the later checks need (its captures, `when`, `expect`, inner steps). At
/// worst a `sleep: 0s` with the step's other keys, or a bare `sleep: 0s`.
pub(crate) fn recover_step(item: &Value) -> Step {
    recover::<Step>(item, true).unwrap_or_else(|| {
        serde_json::from_value(serde_json::json!({"sleep": "0s"}))
            .expect("a bare sleep step deserializes")
    })
}

/// Deserializes `v` after leaving out (or, for durations and captures, replacing) each part
/// serde refuses, one at a time. Silent: the caller reported the problems; what this meets
/// after the first are consequences of its own repairs ("missing field" once a broken field
/// is gone). `root_is_step`: `v` is a step (a broken action becomes `sleep: 0s`).
fn recover<T: DeserializeOwned>(v: &Value, root_is_step: bool) -> Option<T> {
    let mut v = v.clone();
    // Each repair removes or replaces a node, so a spec runs out of them; the bound is for safety.
    for _ in 0..256 {
        match serde_path_to_error::deserialize::<_, T>(v.clone()) {
            Ok(t) => return Some(t),
            Err(e) => {
                let segs: Vec<serde_path_to_error::Segment> = e.path().iter().cloned().collect();
                if !repair(&mut v, &segs, &e.inner().to_string(), root_is_step) {
                    return None;
                }
            }
        }
    }
    None
}

fn node_mut<'v>(v: &'v mut Value, segs: &[serde_path_to_error::Segment]) -> Option<&'v mut Value> {
    use serde_path_to_error::Segment;
    let mut cur = v;
    for s in segs {
        cur = match s {
            Segment::Map { key } => cur.get_mut(key.as_str())?,
            Segment::Seq { index } => cur.get_mut(*index)?,
            Segment::Enum { variant } => match cur.get(variant.as_str()) {
                Some(_) => cur.get_mut(variant.as_str())?,
                None => cur,
            },
            Segment::Unknown => return None,
        };
    }
    Some(cur)
}

/// The name in "unknown field `x`" or "missing field `x`".
fn field_in<'m>(msg: &'m str, what: &str) -> Option<&'m str> {
    msg.split(what).nth(1)?.split('`').next()
}

/// One repair of the node serde refused at `segs`; false when there is nothing left to try.
fn repair(
    v: &mut Value,
    segs: &[serde_path_to_error::Segment],
    msg: &str,
    root_is_step: bool,
) -> bool {
    use serde_path_to_error::Segment;
    if let Some(k) = field_in(msg, "unknown field `") {
        if let Some(Value::Object(m)) = node_mut(v, segs) {
            if m.remove(k).is_some() {
                return true;
            }
        }
    }
    let Some((last, parent)) = segs.split_last() else {
        if root_is_step {
            return repair_step_root(v);
        }
        // The spec itself: a missing `id` or `title` becomes empty (it was reported).
        return match (field_in(msg, "missing field `"), v.as_object_mut()) {
            (Some(k), Some(m)) if !m.contains_key(k) && ["id", "title"].contains(&k) => {
                m.insert(k.to_string(), Value::String(String::new()));
                true
            }
            _ => false,
        };
    };
    let in_list = |name: &str| matches!(parent.last(), Some(Segment::Map { key }) if key == name);
    let capture = in_list("capture");
    let steps = in_list("steps") || in_list("cleanup");
    let Some(node) = node_mut(v, parent) else {
        return false;
    };
    match last {
        Segment::Seq { index } if steps => match node.get_mut(*index) {
            Some(step) => repair_step_root(step),
            None => false,
        },
        Segment::Map { key } => {
            let Some(m) = node.as_object_mut() else {
                return false;
            };
            // A broken capture keeps its name (later steps read it) with a path that parses.
            let stand_in = if capture {
                Some("$")
            } else if DUR_KEYS.contains(&key.as_str()) {
                Some("1s")
            } else {
                None
            };
            match stand_in {
                Some(s) if m.get(key.as_str()) != Some(&Value::String(s.into())) => {
                    m.insert(key.clone(), Value::String(s.into()));
                    true
                }
                _ => m.remove(key.as_str()).is_some(),
            }
        }
        // An element of another list (a check, a header): the list goes.
        _ => repair(v, parent, "", root_is_step),
    }
}

/// A step refused as a whole (a `grpc` step, none or two actions): `grpc` goes first, then
/// the action becomes `sleep: 0s`; its name, `when`, captures and `expect` stay.
fn repair_step_root(step: &mut Value) -> bool {
    let Some(m) = step.as_object_mut() else {
        *step = serde_json::json!({"sleep": "0s"});
        return true;
    };
    if m.remove("grpc").is_some() {
        return true;
    }
    let bare = m.get("sleep") == Some(&Value::String("0s".into()))
        && ACTIONS.iter().filter(|a| m.contains_key(**a)).count() == 1;
    if bare {
        // Something else is refused: keep only what names the step and what it captures.
        let keep = ["name", "when", "capture"];
        let before = m.len();
        m.retain(|k, _| keep.contains(&k.as_str()) || k == "sleep");
        if m.len() < before {
            return true;
        }
        return m.remove("capture").is_some() || m.remove("when").is_some();
    }
    for a in ACTIONS {
        m.remove(*a);
    }
    m.insert("sleep".into(), Value::String("0s".into()));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::StepKind;
    use serde_json::json;

    #[test]
    fn a_bad_duration_stands_in_as_one_second_and_the_rest_of_the_step_stays() {
        let s = recover_step(&json!({
            "http": {"path": "/x", "timeout": "5 parsecs"},
            "expect": {"body": {"matches": "ok("}},
            "capture": {"a": 5, "b": "$.b"},
        }));
        let StepKind::Http(req) = &s.kind else {
            panic!("{s:?}")
        };
        assert_eq!(req.path, "/x");
        assert!(s.expect.is_some_and(|e| e.body.is_some()));
        // A broken capture keeps its name: later steps read it.
        assert_eq!(s.capture.keys().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn a_step_refused_as_a_whole_keeps_its_name_when_and_captures() {
        for item in [
            json!({"name": "g", "when": "x", "grpc": {"service": "S"}, "capture": {"c": "$.c"}}),
            json!({"name": "g", "when": "x", "http": {"path": "/a"}, "sleep": "1s", "capture": {"c": "$.c"}}),
            json!({"name": "g", "when": "x", "capture": {"c": "$.c"}}),
        ] {
            let s = recover_step(&item);
            assert_eq!(s.name.as_deref(), Some("g"), "{item}");
            assert_eq!(s.when.as_deref(), Some("x"), "{item}");
            assert!(s.capture.contains_key("c"), "{item}");
        }
        // Not even a mapping: a bare sleep.
        assert!(matches!(recover_step(&json!(42)).kind, StepKind::Sleep(_)));
    }

    #[test]
    fn inner_steps_keep_their_places() {
        let s = recover_step(&json!({"fanout": {"count": 2, "steps": [
            {"grpc": {}},
            {"http": {"path": "/b", "timeout": "x"}, "capture": {"d": "$.d"}},
        ]}}));
        let StepKind::Fanout(f) = &s.kind else {
            panic!("{s:?}")
        };
        assert_eq!(f.steps.len(), 2);
        assert!(f.steps[1].capture.contains_key("d"));
    }

    #[test]
    fn a_spec_without_title_is_still_read() {
        let (spec, problems) = typed_spec(
            &mut json!({"id": "a", "titel": "t", "steps": [{"sleep": "1 parsec"}]}),
            &PositionIndex::default(),
        );
        assert!(!problems.is_empty());
        let spec = spec.expect("read as far as it can be");
        assert_eq!(spec.id, "a");
        assert_eq!(spec.steps.len(), 1);
    }
}
