//! Templating with minijinja: every string in a spec may use `{{ ... }}`.
//!
//! Undefined variables are errors (strict mode) that name the variable; a string that is
//! exactly one `{{ expr }}` keeps the expression's type (so `"{{ index }}"` is a number).

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, OnceLock};

use chrono::{Duration as ChronoDuration, Utc};
use minijinja::value::{Object, Value as MjValue};
use minijinja::{Environment, Error as MjError, ErrorKind, UndefinedBehavior};
use serde_json::Value;

use crate::spec::VarMap;

/// Variable names every template can use besides the spec's own.
pub const BUILTIN_VARS: &[&str] = &["env", "target", "index", "iteration", "spec", "case"];
/// Functions registered in the environment (and minijinja's own globals).
pub const BUILTIN_FUNCS: &[&str] = &[
    "now",
    "focus_time",
    "uuid",
    "random_int",
    "merge",
    "omit",
    "range",
    "dict",
    "debug",
    "namespace",
    "lipsum",
    "cycler",
    "joiner",
];

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
}

fn terr(message: impl Into<String>) -> TemplateError {
    TemplateError {
        message: message.into(),
    }
}

/// `env.NAME` reads environment variables lazily; a missing one is undefined (an error).
/// Every value read is a secret: it is recorded so that reports redact it.
#[derive(Debug)]
struct EnvObject;

impl Object for EnvObject {
    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        let v = key.as_str().and_then(|k| std::env::var(k).ok())?;
        crate::results::secrets::note_env_value(&v);
        Some(MjValue::from(v))
    }
}

/// Formats a time as the Focus Server's `yymmddHHMMSS`.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// let t = Utc.with_ymd_and_hms(2025, 10, 21, 12, 0, 0).unwrap();
/// assert_eq!(focusqa::template::focus_format(t), "251021120000");
/// ```
pub fn focus_format(t: chrono::DateTime<Utc>) -> String {
    t.format("%y%m%d%H%M%S").to_string()
}

fn offset(spec: Option<String>) -> Result<ChronoDuration, MjError> {
    let Some(s) = spec else {
        return Ok(ChronoDuration::zero());
    };
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let d = crate::spec::parse_duration(body)
        .map_err(|e| MjError::new(ErrorKind::InvalidOperation, e))?;
    let d = ChronoDuration::from_std(d)
        .map_err(|e| MjError::new(ErrorKind::InvalidOperation, e.to_string()))?;
    Ok(if neg { -d } else { d })
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        crate::filters::register(&mut env);
        // now(fmt="%Y-%m-%dT%H:%M:%SZ", offset="-10m")
        env.add_function(
            "now",
            |fmt: Option<String>, off: Option<String>| -> Result<String, MjError> {
                let t = Utc::now() + offset(off)?;
                Ok(t.format(fmt.as_deref().unwrap_or("%Y-%m-%dT%H:%M:%SZ"))
                    .to_string())
            },
        );
        // focus_time("-10m") -> "251021120000" (UTC, yymmddHHMMSS)
        env.add_function(
            "focus_time",
            |off: Option<String>| -> Result<String, MjError> {
                Ok(focus_format(Utc::now() + offset(off)?))
            },
        );
        env.add_function("uuid", || uuid::Uuid::new_v4().to_string());
        // merge(base, patch): deep merge of maps (patch wins), for table-driven payloads.
        env.add_function(
            "merge",
            |a: MjValue, b: MjValue| -> Result<MjValue, MjError> {
                let (a, b) = (to_json(&a)?, to_json(&b)?);
                Ok(MjValue::from_serialize(deep_merge(a, b)))
            },
        );
        // omit(map, "key", "nested.key", ...): a copy without those keys.
        // Keys may be given one by one or as lists: omit(payload, "a", ["b", "c.d"]).
        env.add_function(
            "omit",
            |a: MjValue, keys: minijinja::value::Rest<MjValue>| -> Result<MjValue, MjError> {
                let mut v = to_json(&a)?;
                for k in keys.iter() {
                    match to_json(k)? {
                        Value::String(s) => remove_path(&mut v, &s),
                        Value::Array(items) => items
                            .iter()
                            .filter_map(Value::as_str)
                            .for_each(|s| remove_path(&mut v, s)),
                        other => {
                            return Err(MjError::new(
                                ErrorKind::InvalidOperation,
                                format!("omit: {other} is not a key"),
                            ))
                        }
                    }
                }
                Ok(MjValue::from_serialize(v))
            },
        );
        env.add_function("random_int", |lo: i64, hi: i64| -> Result<i64, MjError> {
            if lo > hi {
                return Err(MjError::new(
                    ErrorKind::InvalidOperation,
                    format!("random_int({lo}, {hi}): low is above high"),
                ));
            }
            Ok(rand::random_range(lo..=hi))
        });
        env
    })
}

fn to_json(v: &MjValue) -> Result<Value, MjError> {
    serde_json::to_value(v).map_err(|e| MjError::new(ErrorKind::InvalidOperation, e.to_string()))
}

fn deep_merge(a: Value, b: Value) -> Value {
    match (a, b) {
        (Value::Object(mut a), Value::Object(b)) => {
            for (k, v) in b {
                let merged = match a.remove(&k) {
                    Some(old) => deep_merge(old, v),
                    None => v,
                };
                a.insert(k, merged);
            }
            Value::Object(a)
        }
        (_, b) => b,
    }
}

fn remove_path(v: &mut Value, path: &str) {
    match path.split_once('.') {
        None => {
            if let Some(m) = v.as_object_mut() {
                m.remove(path);
            }
        }
        Some((head, rest)) => {
            if let Some(inner) = v.get_mut(head) {
                remove_path(inner, rest);
            }
        }
    }
}

/// True when a string contains template syntax.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// Whole-string single expression `{{ expr }}` (keeps its type when rendered).
fn single_expression(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    // `}}` may close a dict literal inside; another `{{` or a tag means it is a real template.
    if inner.contains("{{") || inner.contains("{%") {
        return None;
    }
    let inner = inner.trim();
    environment()
        .compile_expression(inner)
        .is_ok()
        .then_some(inner)
}

/// Variables visible to a template.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub vars: VarMap,
}

impl Scope {
    pub fn new(vars: VarMap) -> Self {
        Scope { vars }
    }

    pub fn set(&mut self, name: impl Into<String>, value: Value) {
        self.vars.insert(name.into(), value);
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.vars.get(name)
    }

    fn context(&self) -> MjValue {
        let mut map: std::collections::BTreeMap<String, MjValue> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), MjValue::from_serialize(v)))
            .collect();
        map.insert("env".into(), MjValue::from_object(EnvObject));
        MjValue::from(map)
    }

    /// Names the template uses that this scope does not define (for a clear error).
    fn missing(&self, names: HashSet<String>) -> Vec<String> {
        let mut out: BTreeSet<String> = BTreeSet::new();
        for n in names {
            let top = n.split('.').next().unwrap_or(&n);
            if top == "env" {
                if let Some(var) = n.strip_prefix("env.") {
                    if std::env::var(var).is_err() {
                        out.insert(format!("env.{var} (environment variable {var} is not set)"));
                    }
                }
                continue;
            }
            if !self.vars.contains_key(top) && !BUILTIN_FUNCS.contains(&top) {
                out.insert(top.to_string());
            }
        }
        out.into_iter().collect()
    }

    fn explain(&self, src: &str, e: MjError, undeclared: HashSet<String>) -> TemplateError {
        let missing = self.missing(undeclared);
        if e.kind() == ErrorKind::UndefinedError && !missing.is_empty() {
            let mut known: Vec<&str> = self.vars.keys().map(String::as_str).collect();
            known.sort();
            let hint = missing
                .first()
                .and_then(|m| crate::spec::diag::did_you_mean(m, known.iter().copied()))
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            return terr(format!(
                "undefined variable {} in `{src}`{hint}; defined here: {}",
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        terr(format!("template `{src}`: {}", describe(&e)))
    }

    /// Renders a template string to text.
    pub fn render_str(&self, src: &str) -> Result<String, TemplateError> {
        if !is_template(src) {
            return Ok(src.to_string());
        }
        let env = environment();
        let tmpl = env
            .template_from_str(src)
            .map_err(|e| terr(format!("template `{src}`: {}", describe(&e))))?;
        tmpl.render(self.context())
            .map_err(|e| self.explain(src, e, tmpl.undeclared_variables(true)))
    }

    /// Evaluates an expression (`stream_port >= 50051`).
    pub fn eval(&self, expr: &str) -> Result<Value, TemplateError> {
        let env = environment();
        let e = env
            .compile_expression(expr)
            .map_err(|e| terr(format!("expression `{expr}`: {}", describe(&e))))?;
        let v = e
            .eval(self.context())
            .map_err(|err| self.explain(expr, err, e.undeclared_variables(true)))?;
        if v.is_undefined() {
            return Err(self.explain(
                expr,
                MjError::new(ErrorKind::UndefinedError, "undefined"),
                e.undeclared_variables(true),
            ));
        }
        serde_json::to_value(&v).map_err(|e| {
            terr(format!(
                "expression `{expr}` gave a value that is not JSON: {e}"
            ))
        })
    }

    /// Renders every string inside a JSON value; a string that is a single `{{ expr }}` keeps its type.
    pub fn render_value(&self, v: &Value) -> Result<Value, TemplateError> {
        Ok(match v {
            Value::String(s) if is_template(s) => match single_expression(s) {
                Some(expr) => self.eval(expr)?,
                None => Value::String(self.render_str(s)?),
            },
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.render_value(i))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((self.render_str(k)?, self.render_value(v)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => other.clone(),
        })
    }
}

fn describe(e: &MjError) -> String {
    let mut s = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    if e.kind() == ErrorKind::SyntaxError {
        s = format!("syntax error: {s}");
    }
    s
}

/// Static checks for the loader: syntax, and the variables a template uses.
pub fn analyse(src: &str, expression: bool) -> Result<HashSet<String>, String> {
    let env = environment();
    if expression {
        env.compile_expression(src)
            .map(|e| e.undeclared_variables(false))
            .map_err(|e| describe(&e))
    } else {
        env.template_from_str(src)
            .map(|t| t.undeclared_variables(false))
            .map_err(|e| describe(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> Scope {
        let mut s = Scope::default();
        s.set("job_id", json!("18-3"));
        s.set("port", json!(50051));
        s
    }

    #[test]
    fn renders_and_keeps_types() {
        let s = scope();
        assert_eq!(
            s.render_str("/metadata/{{ job_id }}").unwrap(),
            "/metadata/18-3"
        );
        assert_eq!(
            s.render_value(&json!("{{ port + 1 }}")).unwrap(),
            json!(50052)
        );
        assert_eq!(
            s.render_value(&json!({"a": ["{{ job_id }}", 1]})).unwrap(),
            json!({"a": ["18-3", 1]})
        );
    }

    #[test]
    fn undefined_variable_is_named() {
        let err = scope()
            .render_str("/metadata/{{ job_idd }}")
            .unwrap_err()
            .message;
        assert!(err.contains("undefined variable `job_idd`"), "{err}");
        assert!(err.contains("did you mean `job_id`?"), "{err}");
        let err = scope().eval("missing_var > 3").unwrap_err().message;
        assert!(err.contains("`missing_var`"), "{err}");
    }

    #[test]
    fn missing_env_is_named() {
        let err = scope()
            .render_str("Bearer {{ env.FOCUSQA_SURELY_UNSET_VAR }}")
            .unwrap_err()
            .message;
        assert!(err.contains("FOCUSQA_SURELY_UNSET_VAR"), "{err}");
        assert_eq!(
            scope()
                .render_str("{{ env.FOCUSQA_SURELY_UNSET_VAR | default('x') }}")
                .unwrap(),
            "x"
        );
    }

    #[test]
    fn focus_time_format() {
        let t = scope().render_str("{{ focus_time('-1h') }}").unwrap();
        assert_eq!(t.len(), 12);
        assert!(t.chars().all(|c| c.is_ascii_digit()));
        let v = scope().eval("random_int(1, 3)").unwrap();
        assert!((1..=3).contains(&v.as_i64().unwrap()));
    }

    #[test]
    fn merge_and_omit() {
        let mut s = scope();
        s.set(
            "base",
            json!({"channels": {"min": 0, "max": 50}, "nfftSelection": 1024}),
        );
        let v = s
            .render_value(&json!("{{ merge(base, {'channels': {'min': 60}}) }}"))
            .unwrap();
        assert_eq!(
            v,
            json!({"channels": {"min": 60, "max": 50}, "nfftSelection": 1024})
        );
        let v = s
            .render_value(&json!(
                "{{ omit(base, 'nfftSelection', ['channels.max']) }}"
            ))
            .unwrap();
        assert_eq!(v, json!({"channels": {"min": 0}}));
    }

    #[test]
    fn analyse_reports_syntax_and_names() {
        assert!(analyse("{{ a + }}", false).is_err());
        let names = analyse("{{ a }} {{ b.c }}", false).unwrap();
        assert!(names.contains("a") && names.contains("b"));
    }
}
