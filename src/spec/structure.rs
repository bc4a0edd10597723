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
use super::load::Problem;
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
    base: &str,
    index: &PositionIndex,
    out: &mut Vec<Problem>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            let rel = e.path().to_string();
            let rel = if rel == "." { String::new() } else { rel };
            let full = join(base, &rel);
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
/// not hide the problems of the others.
pub(crate) fn typed_steps(
    v: Option<&Value>,
    base: &str,
    index: &PositionIndex,
    out: &mut Vec<Problem>,
) -> Vec<Step> {
    let Some(Value::Array(items)) = v else {
        return Vec::new();
    };
    let mut steps = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{base}[{i}]");
        let before = out.len();
        if let Some(f) = item.get("fanout") {
            typed_steps(f.get("steps"), &format!("{p}.fanout.steps"), index, out);
            typed_steps(f.get("cleanup"), &format!("{p}.fanout.cleanup"), index, out);
        }
        for block in ["foreach", "repeat"] {
            if let Some(b) = item.get(block) {
                typed_steps(b.get("steps"), &format!("{p}.{block}.steps"), index, out);
            }
        }
        if out.len() > before {
            continue;
        }
        if let Some(s) = typed::<Step>(item, &p, index, out) {
            steps.push(s);
        }
    }
    steps
}

/// The typed spec, every deserialization problem reported.
pub fn typed_spec(value: &Value, index: &PositionIndex) -> Result<Spec, Vec<Problem>> {
    let mut out = Vec::new();
    let steps = typed_steps(value.get("steps"), "steps", index, &mut out);
    let cleanup = typed_steps(value.get("cleanup"), "cleanup", index, &mut out);
    let mut top = value.clone();
    if let Some(m) = top.as_object_mut() {
        m.insert("steps".into(), Value::Array(Vec::new()));
        m.remove("cleanup");
    }
    let spec = typed::<Spec>(&top, "", index, &mut out);
    match spec {
        Some(mut spec) if out.is_empty() => {
            spec.steps = steps;
            spec.cleanup = cleanup;
            Ok(spec)
        }
        _ => {
            out.sort_by_key(|p| (p.0.line, p.0.col));
            Err(out)
        }
    }
}
