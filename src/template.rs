//! Templating with minijinja: every string in a spec may use `{{ ... }}`.
//!
//! Undefined variables are errors (strict mode) that name the variable; a string that is
//! exactly one `{{ expr }}` keeps the expression's type (so `"{{ index }}"` is a number).

use std::collections::HashMap;
use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

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
];

/// minijinja's filters as built here (features `builtins` and `json`; `urlencode` is ours), and
/// the HTTP filters of [`crate::filters`].
pub const BUILTIN_FILTERS: &[&str] = &[
    "urlencode",
    "b64encode",
    "b64decode",
    "sha256",
    "md5",
    "regex_capture",
    "http_date",
    "safe",
    "escape",
    "e",
    "lower",
    "upper",
    "title",
    "capitalize",
    "replace",
    "length",
    "count",
    "dictsort",
    "items",
    "reverse",
    "trim",
    "join",
    "split",
    "lines",
    "default",
    "d",
    "round",
    "abs",
    "int",
    "float",
    "attr",
    "first",
    "last",
    "min",
    "max",
    "sort",
    "list",
    "string",
    "bool",
    "batch",
    "slice",
    "sum",
    "indent",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "map",
    "groupby",
    "unique",
    "chain",
    "zip",
    "pprint",
    "format",
    "tojson",
];

/// minijinja's tests (`x is defined`).
pub const BUILTIN_TESTS: &[&str] = &[
    "undefined",
    "defined",
    "none",
    "safe",
    "escaped",
    "boolean",
    "odd",
    "even",
    "divisibleby",
    "number",
    "integer",
    "int",
    "float",
    "string",
    "sequence",
    "iterable",
    "mapping",
    "startingwith",
    "endingwith",
    "lower",
    "upper",
    "sameas",
    "eq",
    "equalto",
    "==",
    "ne",
    "!=",
    "lt",
    "lessthan",
    "<",
    "le",
    "<=",
    "gt",
    "greaterthan",
    ">",
    "ge",
    ">=",
    "in",
    "true",
    "false",
    "filter",
    "test",
];

/// Methods values have at run time (only `loop.changed()`/`loop.cycle()`: no Python methods).
const BUILTIN_METHODS: &[&str] = &["changed", "cycle"];

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

/// Where a scope's templates report the environment values they read: the run's secrets
/// (`results::Secrets::env_sink`), so reports redact them. A scope made without one (loading,
/// a test) records nothing; every scope a run makes has its run's.
#[derive(Clone, Default)]
pub struct EnvSink(Option<Arc<Record>>);

/// What an [`EnvSink`] does with a value read.
type Record = dyn Fn(&str) + Send + Sync;

impl EnvSink {
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        EnvSink(Some(Arc::new(f)))
    }
}

impl std::fmt::Debug for EnvSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values: only whether they are recorded.
        f.write_str(if self.0.is_some() {
            "EnvSink(recording)"
        } else {
            "EnvSink(none)"
        })
    }
}

/// `env.NAME` reads environment variables lazily; a missing one is undefined (an error).
/// Every value read goes to the scope's [`EnvSink`].
#[derive(Debug)]
struct EnvObject(EnvSink);

impl Object for EnvObject {
    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        let v = key.as_str().and_then(|k| std::env::var(k).ok())?;
        if let Some(sink) = &self.0 .0 {
            sink(&v);
        }
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

/// The largest time offset `now()`/`focus_time()` accept.
const MAX_OFFSET: std::time::Duration = std::time::Duration::from_secs(100 * 366 * 24 * 3600);

fn offset(spec: Option<String>) -> Result<ChronoDuration, MjError> {
    let Some(s) = spec else {
        return Ok(ChronoDuration::zero());
    };
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let d = crate::spec::parse_duration_max(body, MAX_OFFSET).map_err(|e| {
        MjError::new(
            ErrorKind::InvalidOperation,
            format!("time offset: {e}").replace("at most 36600 days", "at most 100 years"),
        )
    })?;
    let d = ChronoDuration::from_std(d)
        .map_err(|e| MjError::new(ErrorKind::InvalidOperation, e.to_string()))?;
    Ok(if neg { -d } else { d })
}

/// Now plus an offset, without overflowing chrono's range.
fn now_plus(off: Option<String>) -> Result<chrono::DateTime<Utc>, MjError> {
    let o = offset(off)?;
    Utc::now().checked_add_signed(o).ok_or_else(|| {
        MjError::new(
            ErrorKind::InvalidOperation,
            "time offset leaves the representable range of dates",
        )
    })
}

/// Checks a strftime format before it is used (chrono panics when displaying a bad one).
pub fn check_time_format(fmt: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(fmt).any(|i| matches!(i, Item::Error)) {
        return Err(format!(
            "invalid time format `{fmt}` (strftime specifiers such as %Y-%m-%dT%H:%M:%SZ)"
        ));
    }
    Ok(())
}

/// Template limits: instructions per render, nesting depth, merge depth.
pub const TEMPLATE_FUEL: u64 = 5_000_000;
pub const TEMPLATE_RECURSION: usize = 100;
pub const MAX_MERGE_DEPTH: usize = 64;

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Bounded rendering: a runaway loop runs out of fuel, deep nesting hits the limit.
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_recursion_limit(TEMPLATE_RECURSION);
        crate::filters::register(&mut env);
        // now(fmt="%Y-%m-%dT%H:%M:%SZ", offset="-10m")
        env.add_function(
            "now",
            |fmt: Option<String>, off: Option<String>| -> Result<String, MjError> {
                let fmt = fmt.as_deref().unwrap_or("%Y-%m-%dT%H:%M:%SZ");
                check_time_format(fmt).map_err(|e| MjError::new(ErrorKind::InvalidOperation, e))?;
                let t = now_plus(off)?;
                let mut out = String::new();
                use std::fmt::Write;
                write!(out, "{}", t.format(fmt)).map_err(|_| {
                    MjError::new(
                        ErrorKind::InvalidOperation,
                        format!("invalid time format `{fmt}`"),
                    )
                })?;
                Ok(out)
            },
        );
        // focus_time("-10m") -> "251021120000" (UTC, yymmddHHMMSS)
        env.add_function(
            "focus_time",
            |off: Option<String>| -> Result<String, MjError> { Ok(focus_format(now_plus(off)?)) },
        );
        env.add_function("uuid", || uuid::Uuid::new_v4().to_string());
        // merge(base, patch): deep merge of maps (patch wins), for table-driven payloads.
        env.add_function(
            "merge",
            |a: MjValue, b: MjValue| -> Result<MjValue, MjError> {
                let (a, b) = (to_json(&a)?, to_json(&b)?);
                Ok(MjValue::from_serialize(deep_merge(a, b, 0)?))
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
    if too_deep(v, 0) {
        return Err(MjError::new(
            ErrorKind::InvalidOperation,
            format!("value is nested deeper than {MAX_MERGE_DEPTH} levels"),
        ));
    }
    serde_json::to_value(v).map_err(|e| MjError::new(ErrorKind::InvalidOperation, e.to_string()))
}

/// True when a value nests deeper than [`MAX_MERGE_DEPTH`] (checked without deep recursion).
fn too_deep(v: &MjValue, depth: usize) -> bool {
    use minijinja::value::ValueKind;
    if depth > MAX_MERGE_DEPTH {
        return true;
    }
    match v.kind() {
        ValueKind::Seq | ValueKind::Iterable => v
            .try_iter()
            .map(|mut it| it.any(|x| too_deep(&x, depth + 1)))
            .unwrap_or(false),
        ValueKind::Map => v
            .try_iter()
            .map(|mut it| {
                it.any(|k| {
                    v.get_item(&k)
                        .map(|x| too_deep(&x, depth + 1))
                        .unwrap_or(false)
                })
            })
            .unwrap_or(false),
        _ => false,
    }
}

fn deep_merge(a: Value, b: Value, depth: usize) -> Result<Value, MjError> {
    if depth > MAX_MERGE_DEPTH {
        return Err(MjError::new(
            ErrorKind::InvalidOperation,
            format!("merge: the maps are nested deeper than {MAX_MERGE_DEPTH} levels"),
        ));
    }
    Ok(match (a, b) {
        (Value::Object(mut a), Value::Object(b)) => {
            for (k, v) in b {
                let merged = match a.remove(&k) {
                    Some(old) => deep_merge(old, v, depth + 1)?,
                    None => v,
                };
                a.insert(k, merged);
            }
            Value::Object(a)
        }
        (_, b) => b,
    })
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

pub use crate::spec::is_template;

/// Whole-string single expression `{{ expr }}` (keeps its type when rendered).
fn single_expression(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    // `}}` may close a dict literal inside; another `{{` or a tag means it is a real template.
    if inner.contains("{{") || inner.contains("{%") {
        return None;
    }
    let inner = inner.trim();
    compile_expression(environment(), inner)
        .is_ok()
        .then_some(inner)
}

/// minijinja's expression lexer panics on a stray `}}` or `%}` ("empty lexer stack"): such
/// an expression is refused before it reaches the lexer.
fn expression_guard(src: &str) -> Result<(), MjError> {
    let mut quote: Option<char> = None;
    let mut prev = '\0';
    let mut depth = 0usize;
    for c in src.chars() {
        match quote {
            Some(q) if c == q && prev != '\\' => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '(' | '[' | '{' => depth += 1,
                ')' | ']' => depth = depth.saturating_sub(1),
                '}' if depth == 0 && matches!(prev, '}' | '%' | '#') => {
                    return Err(MjError::new(
                        ErrorKind::SyntaxError,
                        format!("unexpected `{prev}}}` in an expression"),
                    ))
                }
                '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        prev = c;
    }
    Ok(())
}

/// Compiles an expression; never panics.
fn compile_expression<'e, 's>(
    env: &'e Environment<'static>,
    src: &'s str,
) -> Result<minijinja::Expression<'e, 's>, MjError> {
    guarded_compile(src, || env.compile_expression(src))
}

/// Runs an expression compiler on `src` behind the guard against inputs that make the parser
/// panic or recurse too deep.
fn guarded_compile<T>(
    src: &str,
    compile: impl FnOnce() -> Result<T, MjError>,
) -> Result<T, MjError> {
    expression_guard(src)?;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(compile)).unwrap_or_else(|_| {
        Err(MjError::new(
            ErrorKind::SyntaxError,
            "the expression cannot be parsed",
        ))
    })
}

/// Compiled templates and expressions kept by source text: a step run a million times compiles
/// its templates once. Sources come from specs, so there are few; past this many, a source is
/// compiled at each use (bounded memory whatever renders what).
const COMPILED_MAX: usize = 1024;

type Compiled<T> = std::sync::LazyLock<Mutex<HashMap<String, T>>>;
static TEMPLATES: Compiled<minijinja::Template<'static, 'static>> =
    std::sync::LazyLock::new(Default::default);
static EXPRESSIONS: Compiled<Arc<minijinja::Expression<'static, 'static>>> =
    std::sync::LazyLock::new(Default::default);

/// The compiled template of `src` from the cache, compiling and keeping it on first use; `None`
/// when the cache is full (the caller compiles it for this use only).
fn cached_template(src: &str) -> Result<Option<minijinja::Template<'static, 'static>>, MjError> {
    let mut c = TEMPLATES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = c.get(src) {
        return Ok(Some(t.clone()));
    }
    if c.len() >= COMPILED_MAX {
        return Ok(None);
    }
    // Checked on the caller's text first: only a template that compiles gets a copy that lives
    // as long as the process (at most COMPILED_MAX of them).
    environment().template_from_str(src)?;
    let t = environment().template_from_str(Box::leak(src.to_string().into_boxed_str()))?;
    c.insert(src.to_string(), t.clone());
    Ok(Some(t))
}

/// A compiled expression (it owns its source: nothing to leak), kept while the cache has room.
fn expression(src: &str) -> Result<Arc<minijinja::Expression<'static, 'static>>, MjError> {
    if let Some(e) = EXPRESSIONS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(src)
    {
        return Ok(e.clone());
    }
    let e = guarded_compile(src, || {
        environment().compile_expression_owned(src.to_string())
    })
    .map(Arc::new)?;
    let mut c = EXPRESSIONS.lock().unwrap_or_else(|e| e.into_inner());
    if c.len() < COMPILED_MAX {
        c.insert(src.to_string(), e.clone());
    }
    Ok(e)
}

/// The variables as templates see them: looked up, and converted, only when a template reads
/// one (building a context of every variable was most of a small template's cost).
#[derive(Debug)]
struct Vars {
    own: Arc<VarMap>,
    shared: Option<Arc<VarMap>>,
    env: EnvSink,
}

impl Object for Vars {
    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        let k = key.as_str()?;
        if k == "env" {
            return Some(MjValue::from_object(EnvObject(self.env.clone())));
        }
        self.own
            .get(k)
            .or_else(|| self.shared.as_ref()?.get(k))
            .map(MjValue::from_serialize)
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        let mut keys: Vec<MjValue> = self
            .shared
            .iter()
            .flat_map(|s| s.keys())
            .filter(|k| !self.own.contains_key(*k))
            .chain(self.own.keys())
            .map(|k| MjValue::from(k.as_str()))
            .collect();
        keys.push(MjValue::from("env"));
        minijinja::value::Enumerator::Values(keys)
    }
}

/// Variables visible to a template: its own, over an optional layer shared read-only with other
/// scopes (a fan-out's variables under each iteration's own, so an iteration does not copy them).
/// Both are shared on clone and copied on the first `set` after (templates hold them while they
/// render, without copying).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    vars: Arc<VarMap>,
    shared: Option<Arc<VarMap>>,
    /// Kept by `restart` and clones: an iteration's scope reports to its run like the case's.
    env: EnvSink,
}

impl Scope {
    pub fn new(vars: VarMap) -> Self {
        Scope {
            vars: Arc::new(vars),
            shared: None,
            env: EnvSink::default(),
        }
    }

    /// An empty scope whose templates report the environment values they read to `env`.
    pub fn recording(env: EnvSink) -> Self {
        Scope {
            env,
            ..Default::default()
        }
    }

    /// The sink of this scope, for the scopes made from it.
    pub fn env_sink(&self) -> EnvSink {
        self.env.clone()
    }

    /// A scope whose variables start as `shared`'s (which stay untouched by `set`).
    pub fn layered(shared: Arc<VarMap>) -> Self {
        Scope {
            vars: Default::default(),
            shared: Some(shared),
            env: EnvSink::default(),
        }
    }

    /// All variables in one map (for sharing as a layer).
    pub fn flatten(&self) -> VarMap {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Starts over: `shared` underneath and `own` as the only variables of this scope. The
    /// map is reused when nothing else holds it, names and all: a fan-out worker restarts its
    /// scope for every iteration without allocating.
    pub fn restart(&mut self, shared: &Arc<VarMap>, own: &[(&str, Value)]) {
        if !self.shared.as_ref().is_some_and(|s| Arc::ptr_eq(s, shared)) {
            self.shared = Some(shared.clone());
        }
        let vars = Arc::make_mut(&mut self.vars);
        let same_names =
            vars.len() >= own.len() && vars.keys().zip(own).all(|(k, (name, _))| k == name);
        if same_names {
            vars.truncate(own.len());
            for (slot, (_, v)) in vars.values_mut().zip(own) {
                slot.clone_from(v);
            }
        } else {
            vars.clear();
            for (name, v) in own {
                vars.insert((*name).to_string(), v.clone());
            }
        }
    }

    pub fn set(&mut self, name: impl Into<String>, value: Value) {
        Arc::make_mut(&mut self.vars).insert(name.into(), value);
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.vars
            .get(name)
            .or_else(|| self.shared.as_ref().and_then(|s| s.get(name)))
    }

    /// Forgets a variable this scope set (a shared one shows through again).
    pub fn remove(&mut self, name: &str) {
        Arc::make_mut(&mut self.vars).shift_remove(name);
    }

    /// Every visible variable once: the shared ones first (unless set here), then this scope's.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.shared
            .iter()
            .flat_map(|s| s.iter())
            .filter(|(k, _)| !self.vars.contains_key(*k))
            .chain(self.vars.iter())
    }

    fn context(&self) -> MjValue {
        MjValue::from_object(Vars {
            own: self.vars.clone(),
            shared: self.shared.clone(),
            env: self.env.clone(),
        })
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
            if self.get(top).is_none() && !BUILTIN_FUNCS.contains(&top) {
                out.insert(top.to_string());
            }
        }
        out.into_iter().collect()
    }

    fn explain(&self, src: &str, e: MjError, undeclared: HashSet<String>) -> TemplateError {
        let missing = self.missing(undeclared);
        if e.kind() == ErrorKind::UndefinedError && !missing.is_empty() {
            let mut known: Vec<&str> = self.iter().map(|(k, _)| k.as_str()).collect();
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

    /// Renders a template string to text, borrowing a string that is not a template.
    pub fn render_cow<'s>(&self, src: &'s str) -> Result<std::borrow::Cow<'s, str>, TemplateError> {
        if is_template(src) {
            self.render_str(src).map(std::borrow::Cow::Owned)
        } else {
            Ok(std::borrow::Cow::Borrowed(src))
        }
    }

    /// Renders a template string to text.
    pub fn render_str(&self, src: &str) -> Result<String, TemplateError> {
        if !is_template(src) {
            return Ok(src.to_string());
        }
        let compile_error = |e: MjError| terr(format!("template `{src}`: {}", describe(&e)));
        let render = |tmpl: &minijinja::Template| {
            tmpl.render(self.context())
                .map_err(|e| self.explain(src, e, tmpl.undeclared_variables(true)))
        };
        match cached_template(src).map_err(compile_error)? {
            Some(tmpl) => render(&tmpl),
            None => render(
                &environment()
                    .template_from_str(src)
                    .map_err(compile_error)?,
            ),
        }
    }

    /// Evaluates an expression (`stream_port >= 50051`).
    pub fn eval(&self, expr: &str) -> Result<Value, TemplateError> {
        let e =
            expression(expr).map_err(|e| terr(format!("expression `{expr}`: {}", describe(&e))))?;
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
    lint(src, expression).map(|u| u.names)
}

fn undeclared(src: &str, expression: bool) -> Result<HashSet<String>, String> {
    let env = environment();
    if expression {
        compile_expression(env, src)
            .map(|e| e.undeclared_variables(false))
            .map_err(|e| describe(&e))
    } else {
        env.template_from_str(src)
            .map(|t| t.undeclared_variables(false))
            .map_err(|e| describe(&e))
    }
}

/// What a template uses, found without rendering it.
#[derive(Debug, Default)]
pub struct Usage {
    /// Variables it reads that it does not define itself.
    pub names: HashSet<String>,
    /// Unknown filters, tests, methods and functions, as messages.
    pub problems: Vec<String>,
}

/// Static checks for the loader: syntax, the variables a template reads, and every filter,
/// test, method and function it calls against those that exist.
pub fn lint(src: &str, expression: bool) -> Result<Usage, String> {
    use minijinja::machinery::{
        ast, parse, parse_expr, CodeGenerator, Instruction, WhitespaceConfig,
    };
    let names = undeclared(src, expression)?;
    let mut usage = Usage {
        names,
        problems: Vec::new(),
    };
    // minijinja's own analysis misses names inside slices (`xs[-3:]`): add every name the
    // code looks up that the template does not store itself.
    let mut looked_up: HashSet<&str> = HashSet::new();
    let mut stored: HashSet<&str> = HashSet::new();
    let mut gen = CodeGenerator::new("<spec>", src);
    if expression {
        expression_guard(src).map_err(|e| describe(&e))?;
        let e: ast::Expr = parse_expr(src).map_err(|e| describe(&e))?;
        gen.compile_expr(&e);
    } else {
        let t = parse(
            src,
            "<spec>",
            minijinja::syntax::SyntaxConfig,
            WhitespaceConfig::default(),
        )
        .map_err(|e| describe(&e))?;
        gen.compile_stmt(&t);
    }
    let (instrs, blocks) = gen.finish();
    let mut seen = HashSet::new();
    for ins in std::iter::once(&instrs).chain(blocks.values()) {
        for i in 0..ins.len() {
            let Some(op) = ins.get(i as u32) else {
                continue;
            };
            match op {
                Instruction::Lookup(n) | Instruction::CallFunction(n, _) => {
                    looked_up.insert(n);
                }
                Instruction::StoreLocal(n) | Instruction::Enclose(n) => {
                    stored.insert(n);
                }
                _ => {}
            }
            let problem = match op {
                Instruction::ApplyFilter(name, ..) if !BUILTIN_FILTERS.contains(name) => {
                    Some(format!(
                        "unknown filter `{name}`{}",
                        hint(name, BUILTIN_FILTERS, "filters")
                    ))
                }
                Instruction::PerformTest(name, ..) if !BUILTIN_TESTS.contains(name) => {
                    Some(format!(
                        "unknown test `is {name}`{}",
                        hint(name, BUILTIN_TESTS, "tests")
                    ))
                }
                Instruction::CallMethod(name, ..) if !BUILTIN_METHODS.contains(name) => {
                    Some(format!(
                        "unknown method `.{name}()`: values have no methods here; use a filter{}",
                        if BUILTIN_FILTERS.contains(name) {
                            format!(", e.g. `x | {name}`")
                        } else {
                            format!(" ({})", BUILTIN_FILTERS.join(", "))
                        }
                    ))
                }
                _ => None,
            };
            if let Some(p) = problem {
                if seen.insert(p.clone()) {
                    usage.problems.push(p);
                }
            }
        }
    }
    for n in looked_up {
        if !stored.contains(n) && !["loop", "self", "caller", "varargs", "kwargs"].contains(&n) {
            usage.names.insert(n.to_string());
        }
    }
    Ok(usage)
}

fn hint(name: &str, known: &[&str], what: &str) -> String {
    match crate::spec::diag::did_you_mean(name, known.iter().copied()) {
        Some(h) => format!(" ({h})"),
        None => format!(" (known {what}: {})", known.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_go_to_the_scopes_sink_and_nowhere_else() {
        std::env::set_var("FOCUSQA_SINK_TEST", "sink-value-1");
        let got: Arc<Mutex<Vec<String>>> = Arc::default();
        let g = got.clone();
        let mut s = Scope::recording(EnvSink::new(move |v| g.lock().unwrap().push(v.into())));
        // Kept by clones and by a restart (a fan-out's iterations).
        let mut c = s.clone();
        c.restart(&Arc::new(VarMap::new()), &[("index", Value::from(0))]);
        assert_eq!(
            c.render_str("{{ env.FOCUSQA_SINK_TEST }}").unwrap(),
            "sink-value-1"
        );
        s.set("x", Value::from(1));
        s.eval("env.FOCUSQA_SINK_TEST == 'x'").unwrap();
        assert_eq!(*got.lock().unwrap(), ["sink-value-1", "sink-value-1"]);
        // A scope without a sink (loading) records nothing, anywhere.
        Scope::default()
            .render_str("{{ env.FOCUSQA_SINK_TEST }}")
            .unwrap();
        assert_eq!(got.lock().unwrap().len(), 2);
    }
    use serde_json::json;

    #[test]
    fn templates_are_told_from_plain_text() {
        for t in [
            "{{ x }}",
            "/jobs/{{job_id}}",
            "{% if a %}b{% endif %}",
            "a{{",
        ] {
            assert!(is_template(t), "{t}");
        }
        for t in ["", "/health", "{", "a{b}", "{ {x} }", "}}{", "%{"] {
            assert!(!is_template(t), "{t}");
        }
    }

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

    #[test]
    fn run_time_errors_instead_of_panics() {
        let s = scope();
        let e = s.render_str("{{ now('%Q') }}").unwrap_err().message;
        assert!(e.contains("invalid time format `%Q`"), "{e}");
        assert_eq!(s.render_str("{{ now('%Y') }}").unwrap().len(), 4);
        let e = s
            .render_str("{{ focus_time('1000000y') }}")
            .unwrap_err()
            .message;
        assert!(e.contains("at most 100 years"), "{e}");
        assert!(s.render_str("{{ focus_time('-99y') }}").is_ok());
        let e = s
            .render_str(
                "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            )
            .unwrap_err()
            .message;
        assert!(e.contains("fuel"), "{e}");
        let e = s
            .render_str("{{ range(1000000000) | list }}")
            .unwrap_err()
            .message;
        assert!(e.contains("range has too many elements"), "{e}");
        let deep = "{% set ns = namespace(v={}) %}{% for i in range(100) %}{% set ns.v = {'a': ns.v} %}{% endfor %}{{ merge(ns.v, ns.v) }}";
        let e = s.render_str(deep).unwrap_err().message;
        assert!(e.contains("nested deeper than"), "{e}");
        let nested = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
        assert!(s.render_str(&nested).is_err());
        assert!(lint(&nested, false).is_err());
        let ifs = format!(
            "{}x{}",
            "{% if true %}".repeat(300),
            "{% endif %}".repeat(300)
        );
        assert!(s.render_str(&ifs).is_err());
        assert!(s.eval("x }} y").is_err());
        assert!(s.eval("'}}' == '}}'").unwrap() == serde_json::json!(true));
    }

    #[test]
    fn a_layered_scope_reads_through_and_shadows_without_touching_the_shared_layer() {
        let shared = std::sync::Arc::new(VarMap::from_iter([
            ("job".to_string(), json!("18-3")),
            ("port".to_string(), json!(50051)),
        ]));
        let mut s = Scope::layered(shared.clone());
        s.set("port", json!(50052));
        s.set("index", json!(7));
        assert_eq!(
            s.render_str("{{ job }}:{{ port }}:{{ index }}").unwrap(),
            "18-3:50052:7"
        );
        let names: Vec<&str> = s.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["job", "port", "index"]);
        assert_eq!(s.flatten().len(), 3);
        s.remove("port");
        assert_eq!(s.get("port"), Some(&json!(50051)));
        assert_eq!(shared.get("port"), Some(&json!(50051)));
        let err = s.render_str("{{ nope }}").unwrap_err().message;
        assert!(err.contains("defined here: index, job, port"), "{err}");
    }

    #[test]
    fn a_restarted_scope_forgets_what_the_last_iteration_set() {
        let shared = std::sync::Arc::new(VarMap::from_iter([("job".to_string(), json!("18-3"))]));
        let mut s = Scope::default();
        for i in 0..3 {
            s.restart(&shared, &[("index", json!(i)), ("iteration", json!(i + 1))]);
            assert_eq!(
                s.get("job_id"),
                None,
                "iteration {i} starts without the last one's capture"
            );
            assert_eq!(
                s.render_str("{{ job }}/{{ index }}/{{ iteration }}")
                    .unwrap(),
                format!("18-3/{i}/{}", i + 1)
            );
            s.set("job_id", json!(format!("job-{i}")));
            s.set("index", json!("shadowed"));
        }
        // Other names: the old ones go, whatever their order.
        s.restart(&shared, &[("item", json!("a"))]);
        let names: Vec<&str> = s.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["job", "item"]);
        // A scope still held elsewhere (a template rendering) is copied, not changed under it.
        let held = s.clone();
        s.restart(&shared, &[("item", json!("b"))]);
        assert_eq!(held.get("item"), Some(&json!("a")));
        assert_eq!(s.get("item"), Some(&json!("b")));
    }

    #[test]
    fn compiled_templates_are_reused_bounded_and_never_hold_values() {
        let mut s = Scope::default();
        for i in 0..3 {
            s.set("n", json!(i));
            assert_eq!(s.render_str("n={{ n }}").unwrap(), format!("n={i}"));
            assert_eq!(s.eval("n * 2").unwrap(), json!(i * 2));
        }
        // A template that does not compile is an error every time (and is not kept).
        for _ in 0..2 {
            let e = s.render_str("{{ n + }}").unwrap_err().message;
            assert!(e.starts_with("template `{{ n + }}`"), "{e}");
        }
        // More distinct sources than the cache keeps: all still render, the cache stays bounded.
        for i in 0..COMPILED_MAX + 50 {
            assert_eq!(
                s.render_str(&format!("{i}:{{{{ n }}}}")).unwrap(),
                format!("{i}:2")
            );
        }
        assert!(TEMPLATES.lock().unwrap().len() <= COMPILED_MAX);
        assert!(!TEMPLATES.lock().unwrap().contains_key("{{ n + }}"));
    }

    #[test]
    fn lint_finds_unknown_filters_tests_methods() {
        let u = lint(
            "{{ x | slugify }}{% if y is definde %}{% endif %}{{ z.split(',') }}",
            false,
        )
        .unwrap();
        assert_eq!(u.problems.len(), 3, "{:?}", u.problems);
        assert!(u.problems[0].contains("unknown filter `slugify`"));
        assert!(u.problems[1].contains("did you mean `defined`?"));
        assert!(u.problems[2].contains("unknown method `.split()`"));
        let u = lint(
            "{% for i in xs[-3:] %}{{ loop.cycle('a', 'b') }}{{ i | tojson }}{% endfor %}",
            false,
        )
        .unwrap();
        assert!(u.problems.is_empty(), "{:?}", u.problems);
        assert!(
            u.names.contains("xs") && !u.names.contains("i"),
            "{:?}",
            u.names
        );
    }

    #[test]
    fn every_listed_filter_and_test_exists() {
        let env = environment();
        for f in BUILTIN_FILTERS {
            let e = env.render_str(&format!("{{{{ 1 | {f} }}}}"), ());
            if let Err(e) = e {
                assert_ne!(e.kind(), ErrorKind::UnknownFilter, "{f}");
            }
        }
        for t in BUILTIN_TESTS
            .iter()
            .filter(|t| t.chars().all(|c| c.is_ascii_alphabetic()))
        {
            let e = env.render_str(&format!("{{{{ 1 is {t} }}}}"), ());
            if let Err(e) = e {
                assert_ne!(e.kind(), ErrorKind::UnknownTest, "{t}");
            }
        }
    }
}
