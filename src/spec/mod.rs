//! The spec model: what a QA engineer writes in YAML, as Rust types.
//!
//! This module knows nothing about HTTP or Kubernetes clients: it only describes
//! what to do. The engine interprets it; the loader fills in source positions. A step and its
//! kinds are in [`steps`], each kind's model in a file of its own.

pub mod access;
pub mod diag;
pub mod position;
pub mod scope;
pub mod steps;
pub mod structure;
pub mod threshold;
pub mod yaml;

use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use access::{Access, AccessError, ACCESS_HINT};
pub use diag::Diagnostic;
pub use steps::{
    parse_rate, Assert, BasicAuth, Fanout, Foreach, HeaderValues, HttpRequest, Include, KindModel,
    KubeOp, KubeVerb, Method, MultipartPart, Query, RawStep, Repeat, Sim, Sleep, Stage, Step,
    StepKind, GRPC_OUT_OF_SCOPE,
};

/// A position in a spec file (1-based line and column; 0 = unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

/// True when a string contains template syntax.
pub fn is_template(s: &str) -> bool {
    // A byte scan: asked of every templatable string of every step, where two substring
    // searches cost more to set up than the (short) strings take to read.
    let b = s.as_bytes();
    b.iter()
        .enumerate()
        .any(|(i, &c)| c == b'{' && matches!(b.get(i + 1), Some(b'{' | b'%')))
}

/// Variables as written in YAML (any JSON-compatible value; strings may be templates).
pub type VarMap = IndexMap<String, Value>;

/// Capabilities a target may offer and a spec may require.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// An HTTP base URL (every target with `base_url`).
    Http,
    /// A Kubernetes API the target can reach.
    Kubernetes,
    /// The target is a focusqa simulator (fault injection via `sim` steps).
    Simulator,
}

impl Capability {
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Http => "http",
            Capability::Kubernetes => "kubernetes",
            Capability::Simulator => "simulator",
        }
    }
}

/// One spec file: a scenario with optional table-driven cases.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "focusqa spec",
    description = "A focusqa test scenario: steps and assertions in YAML."
)]
pub struct Spec {
    /// Unique identifier, e.g. `api.configure.live`.
    pub id: String,
    /// One-line title a manager can read.
    pub title: String,
    /// What the spec proves and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Scope catalog item ids this spec covers (see specs/scope.yaml).
    #[serde(default)]
    pub covers: Vec<String>,
    /// Free-form tags for filtering (`--tag`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Capabilities the target must offer; otherwise the spec is skipped with the reason.
    #[serde(default)]
    pub requires: Vec<Capability>,
    /// Run this spec alone (no other spec in parallel), e.g. when it fills the job capacity.
    #[serde(default)]
    pub exclusive: bool,
    /// Runs of a failed case again, for known-flaky infrastructure (overrides `--retries`).
    /// A case that passes only on a later attempt is reported flaky, with its failures kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Spec-level variables (rendered in order; later ones may use earlier ones).
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Value>")]
    pub vars: VarMap,
    /// A YAML file of shared variables (a mapping), relative to the spec: read before `vars`,
    /// which may use and override them (`vars_file: fragments/vars.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vars_file: Option<String>,
    /// Names of variables whose values are secrets, redacted from every report: spec or case
    /// `vars`, target `vars` and captures of these names (`secrets: [password, token]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Keep a cookie jar per case (default: the target's `cookies`, itself default true):
    /// cookies set by responses are sent with later requests of the same case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookies: Option<bool>,
    /// Table-driven cases: each case runs all steps with its own variables and is one JUnit testcase.
    #[serde(default)]
    pub cases: Vec<Case>,
    /// Steps, run in order; the first failure stops the case (cleanup still runs).
    pub steps: Vec<Step>,
    /// Steps that always run after `steps`, also after a failure or an interruption.
    #[serde(default)]
    pub cleanup: Vec<Step>,
    /// Where the spec came from (filled by the loader).
    #[serde(skip)]
    #[schemars(skip)]
    pub source: Source,
}

/// Where a spec was loaded from.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub file: PathBuf,
    /// Path of the file as shown to users (relative to the working directory where possible).
    pub display: String,
    pub pos: Pos,
}

/// One row of a table-driven spec.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Case name, shown as the JUnit testcase name.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Variables for this case (override spec vars), typically inputs and the expected outcome.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Value>")]
    pub vars: VarMap,
    /// Skip this case with the given reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<String>,
    #[serde(skip)]
    #[schemars(skip)]
    pub pos: Pos,
}

/// A duration such as `100ms`, `30s`, `2m`, a number of seconds, or a template rendering to one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(with = "DurSchema")]
pub struct Dur(pub String);

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged)]
enum DurSchema {
    /// e.g. `100ms`, `30s`, `2m`, or a template
    Text(String),
    /// seconds
    Seconds(f64),
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(f64),
            S(String),
        }
        let raw = Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a duration such as `500ms`, `30s` or `2m`")
        })?;
        let s = match raw {
            Raw::N(n) => format!("{n}s"),
            Raw::S(s) => s,
        };
        let dur = Dur(s);
        if !dur.is_templated() {
            dur.parse().map_err(serde::de::Error::custom)?;
        }
        Ok(dur)
    }
}

impl Dur {
    pub fn is_templated(&self) -> bool {
        self.0.contains("{{")
    }
    /// Parses a literal duration (`100ms`, `1.5s`, `2m`, `30`).
    pub fn parse(&self) -> Result<Duration, String> {
        parse_duration(&self.0)
    }
}

/// The longest duration a spec may ask for (a `sleep`, a timeout, a poll interval, ...).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The largest fan-out `count` (and `concurrency`): beyond that the iterations' bookkeeping
/// alone would exhaust memory.
pub const MAX_FANOUT: u64 = 10_000_000;

/// Parses `100ms`, `1.5s`, `2m 30s`, or a bare number of seconds, up to [`MAX_DURATION`].
/// Never panics: huge, negative, NaN or malformed values are errors.
///
/// ```
/// use std::time::Duration;
/// use focusqa::spec::parse_duration;
/// assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("2m 30s"), Ok(Duration::from_secs(150)));
/// assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
/// assert!(parse_duration("soon").unwrap_err().contains("write e.g. `500ms`"));
/// assert!(parse_duration("1e20").unwrap_err().contains("at most 365 days"));
/// assert!(parse_duration("1e300s").is_err());
/// assert!(parse_duration("18446744073709551615").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_duration_max(s, MAX_DURATION)
}

/// [`parse_duration`] with another upper bound (e.g. for time offsets).
pub fn parse_duration_max(s: &str, max: Duration) -> Result<Duration, String> {
    let d = parse_duration_unbounded(s)?;
    if d > max {
        return Err(format!(
            "duration `{}` is too long: at most {} days",
            s.trim(),
            max.as_secs() / 86_400
        ));
    }
    Ok(d)
}

fn secs(s: &str, n: f64) -> Result<Duration, String> {
    if n < 0.0 {
        return Err(format!("duration `{s}` is negative"));
    }
    Duration::try_from_secs_f64(n).map_err(|_| {
        format!(
            "duration `{s}` is too long: at most {} days",
            MAX_DURATION.as_secs() / 86_400
        )
    })
}

fn parse_duration_unbounded(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<f64>() {
        if n.is_nan() {
            return Err(format!("duration `{t}` is not a number"));
        }
        return secs(t, n);
    }
    // humantime has no fractions: handle `1.5s` style ourselves.
    if let Some(num) = t.strip_suffix('s').filter(|n| {
        !n.ends_with('m') && !n.ends_with('n') && !n.ends_with('u') && !n.ends_with('µ')
    }) {
        if let Ok(n) = num.trim().parse::<f64>() {
            if !n.is_nan() {
                return secs(t, n);
            }
        }
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("invalid duration `{s}`: {e} (write e.g. `500ms`, `30s`, `2m`)"))
}

/// A count that may be a template (`"{{ n }}"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Count {
    N(u64),
    Template(String),
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Count::N(n) => write!(f, "{n}"),
            Count::Template(t) => write!(f, "{t}"),
        }
    }
}

/// Expectations on a step's outcome. All listed checks must hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Status code, a list of accepted codes, a class like `2xx`, or a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusExpect>,
    /// Response headers: `name: exact value` or `name: {matches|contains|equals|exists}`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, HeaderExpect>,
    /// Checks on the body: its text (decoded by its charset) and its bytes (`sha256`, `md5`,
    /// `bytes_length`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Box<BodyCheck>>,
    /// Cookies set by the response (and by the redirects followed on the way), by name:
    /// `session: {exists: true, http_only: true}` or `session: exact-value`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub cookies: IndexMap<String, CookieExpect>,
    /// The HTTP version of the response: `HTTP/1.1`, `HTTP/2`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The final URL (after redirects): exact, or `{equals|contains|matches}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Box<TextExpect>>,
    /// Checks on the redirect chain followed, a list of `{status, url, location}`
    /// (`{path: $, length: 1}`, `{path: "$[0].status", equals: 302}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirects: Vec<Check>,
    /// The request must fail this way (`timeout`, `connect`, `too_many_redirects`, or `any`):
    /// the step passes when it does, and fails when a response arrives instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ExpectedError>,
    /// JSONPath checks on the JSON document of the outcome (response body, Kubernetes object, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json: Vec<Check>,
    /// Partial match: the document must contain these fields with these values (lists match by content).
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub partial: Option<Box<Value>>,
    /// Validate the JSON document against a JSON Schema (inline, or a file path relative to the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Box<SchemaRef>>,
    /// Upper bound on the step's elapsed time (e.g. `2s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_elapsed: Option<Dur>,
    #[serde(skip)]
    #[schemars(skip)]
    pub pos: Pos,
    /// Where each expectation key is (`status`, `headers`, ...), for failure locations. A few
    /// fixed keys, read at every check: a list, not a hashed map.
    #[serde(skip)]
    #[schemars(skip)]
    pub lines: Vec<(&'static str, Pos)>,
}

impl Expect {
    /// Where an expectation key is written, or `expect:` itself (or `fallback`, the step).
    pub fn at_key(&self, key: &str, fallback: Pos) -> Pos {
        self.lines
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, p)| *p)
            .filter(|p| p.line > 0)
            .unwrap_or(if self.pos.line > 0 {
                self.pos
            } else {
                fallback
            })
    }
}

/// Expected status.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StatusExpect {
    Code(u16),
    AnyOf(Vec<u16>),
    /// `2xx`, `4xx`, ..., or a template rendering to a code or a list.
    Text(String),
}

/// A header expectation.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum HeaderExpect {
    Exact(String),
    Check(HeaderCheck),
}

/// Checks on a header. Without `all` the subject is the header's first value (the result says
/// so when there were several); with `all: true` it is the list of all its values.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderCheck {
    /// The value; with `all: true` the list of values (a text = a list of one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Value>")]
    pub equals: Option<Value>,
    /// A substring of the value (with `all`: of some value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// A regex (Rust syntax) matching the value somewhere (with `all`: some value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// The number of values the header has (repeated headers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// Check every value of a repeated header (Set-Cookie, Link, Vary, ...) as a list.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

/// A text: exact, or checks.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TextExpect {
    Exact(String),
    Check(TextCheck),
}

/// Checks on the response body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BodyCheck {
    /// The body text (decoded by its declared charset) equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// Regular expression (Rust regex syntax) that must match somewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// SHA-256 of the body bytes (after content decoding), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// MD5 of the body bytes (after content decoding), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// Number of body bytes (after content decoding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<LengthSchema>")]
    pub bytes_length: Option<Value>,
}

/// Expectation on a response cookie: its exact value, or checks on it and its attributes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CookieExpect {
    Value(String),
    Check(Box<CookieCheck>),
}

/// Checks on a cookie set by the response (`Set-Cookie`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CookieCheck {
    /// The response sets it (`false`: it does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<TextExpect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_only: Option<bool>,
    /// `Strict`, `Lax` or `None` (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<String>,
    /// The `Expires` attribute as sent (exact, or `{exists|matches|...}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<TextExpect>,
    /// The `Max-Age` attribute, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
}

/// A failure a step may expect instead of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExpectedError {
    /// No answer in time (the request's `timeout`).
    Timeout,
    /// No connection (refused, unreachable, DNS, TLS).
    Connect,
    /// A redirect chain longer than `max_redirects`.
    #[serde(rename = "too_many_redirects")]
    TooManyRedirects,
    /// Any of these.
    Any,
}

impl ExpectedError {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectedError::Timeout => "timeout",
            ExpectedError::Connect => "connect",
            ExpectedError::TooManyRedirects => "too_many_redirects",
            ExpectedError::Any => "any",
        }
    }
}

/// Checks on a text.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TextCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// Regular expression (Rust regex syntax) that must match somewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
}

/// JSON Schema for the document: inline object or a path relative to the spec file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SchemaRef {
    File(String),
    Inline(serde_json::Map<String, Value>),
}

/// JSON value types for `type:` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    String,
    Number,
    Integer,
    Boolean,
    Array,
    Object,
    Null,
}

/// One check. Its subject is exactly one of `path` (JSONPath into the outcome's document),
/// `value` (a templated value) or `expr` (an expression that must be true).
/// Every operand may be a template (`"{{ expected }}"` alone keeps the expression's type).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// JSONPath (RFC 9535) into the document. A singular path (names and indexes only, e.g.
    /// `$.items[0].status`) gives a value or nothing; any other path (wildcards, slices, filters,
    /// `..`, unions) gives the list of its matches, even of 0 or 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A value to check, usually a template such as `"{{ job_id }}"`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Value")]
    pub value: Option<Value>,
    /// An expression that must be true, e.g. `stream_port >= 50051`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    /// What the check is about, in words (shown on failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The subject equals this (numbers by value, integers exactly; `null` compares with null).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Value")]
    pub equals: Option<Value>,
    /// The subject exists and differs from this (`null` compares with null).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Value")]
    pub not_equals: Option<Value>,
    /// Regex (Rust syntax) a text must match somewhere (numbers and booleans as their JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    /// Regex a text must not match anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_matches: Option<String>,
    /// Substring (of a text), element (of a list, partial match) or key (of an object) that must be present.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Value")]
    pub contains: Option<Value>,
    /// Substring, element or key that must not be present (the subject must exist).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Value")]
    pub not_contains: Option<Value>,
    /// `true`: the path must match something; `false`: it must match nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<OrTemplate<bool>>,
    /// The JSON type of the subject (`type: null` unquoted means the null type too).
    #[serde(
        default,
        rename = "type",
        deserialize_with = "type_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub type_: Option<OrTemplate<JsonType>>,
    /// Length of a text, list or object: a number or comparisons (`{gte: 1}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<LengthCheck>,
    /// Greater than: numbers numerically, two strings as strings (code-point order).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Bound")]
    pub gt: Option<Value>,
    /// Greater than or equal (numbers, or two strings).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Bound")]
    pub gte: Option<Value>,
    /// Less than (numbers, or two strings).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Bound")]
    pub lt: Option<Value>,
    /// Less than or equal (numbers, or two strings).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Bound")]
    pub lte: Option<Value>,
    /// The value must equal one of these: a list, or a template rendering to one.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "OneOfSchema")]
    pub one_of: Option<Value>,
    #[serde(skip)]
    #[schemars(skip)]
    pub pos: Pos,
}

/// A bound of `gt`/`gte`/`lt`/`lte`: a number, a string (compared with strings only), or a template.
#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "OrderBound")]
enum Bound {
    Number(f64),
    /// A string (compared as text with a string subject) or a template
    Text(String),
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "OneOf")]
enum OneOfSchema {
    List(Vec<Value>),
    Template(TemplateSchema),
}

/// A template such as `"{{ expected }}"` (rendered when the check runs).
#[allow(dead_code)]
#[derive(JsonSchema)]
#[schemars(transparent, rename = "Template")]
struct TemplateSchema(#[schemars(pattern(r"\{\{"))] String);

/// A literal operand, or a template (a string with `{{ ... }}`) rendered when the check runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrTemplate<T> {
    Literal(T),
    Template(String),
}

/// Deserialized in place (not through a buffered value), so errors keep the operand's position.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for OrTemplate<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{value, Error, MapAccess, SeqAccess, Visitor};
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OrTemplate<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a value or a template (`{{ ... }}`)")
            }
            fn visit_str<E: Error>(self, s: &str) -> Result<Self::Value, E> {
                if s.contains("{{") {
                    return Ok(OrTemplate::Template(s.to_string()));
                }
                T::deserialize(value::StrDeserializer::<E>::new(s)).map(OrTemplate::Literal)
            }
            fn visit_bool<E: Error>(self, b: bool) -> Result<Self::Value, E> {
                T::deserialize(value::BoolDeserializer::<E>::new(b)).map(OrTemplate::Literal)
            }
            fn visit_i64<E: Error>(self, n: i64) -> Result<Self::Value, E> {
                T::deserialize(value::I64Deserializer::<E>::new(n)).map(OrTemplate::Literal)
            }
            fn visit_u64<E: Error>(self, n: u64) -> Result<Self::Value, E> {
                T::deserialize(value::U64Deserializer::<E>::new(n)).map(OrTemplate::Literal)
            }
            fn visit_f64<E: Error>(self, n: f64) -> Result<Self::Value, E> {
                T::deserialize(value::F64Deserializer::<E>::new(n)).map(OrTemplate::Literal)
            }
            fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
                T::deserialize(value::UnitDeserializer::<E>::new()).map(OrTemplate::Literal)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                T::deserialize(value::SeqAccessDeserializer::new(a)).map(OrTemplate::Literal)
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                T::deserialize(value::MapAccessDeserializer::new(a)).map(OrTemplate::Literal)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<T: Serialize> Serialize for OrTemplate<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            OrTemplate::Literal(t) => t.serialize(s),
            OrTemplate::Template(t) => t.serialize(s),
        }
    }
}

impl<T: JsonSchema> JsonSchema for OrTemplate<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("{}OrTemplate", T::schema_name()).into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [g.subschema_for::<T>(), g.subschema_for::<TemplateSchema>()]
        })
    }
}

/// Length expectation.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum LengthCheck {
    /// `{gte: 1, lt: 10}` (tried first: an exact length is any other value)
    Compare(Box<Comparison>),
    /// An exact length, or a template rendering to one
    Exact(#[schemars(with = "LengthSchema")] Value),
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "Length")]
enum LengthSchema {
    N(u64),
    Template(TemplateSchema),
}

/// Length comparisons: numbers or templates.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<LengthSchema>")]
    pub equals: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<LengthSchema>")]
    pub gt: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<LengthSchema>")]
    pub gte: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<LengthSchema>")]
    pub lt: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<LengthSchema>")]
    pub lte: Option<Value>,
}

/// What to capture into a variable.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Capture {
    /// A JSONPath into the outcome's document (first match).
    Path(String),
    Detailed(CaptureSpec),
}

/// Detailed capture: exactly one source.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureSpec {
    /// JSONPath into the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// With `path` or `header`: capture the list of all matches (values) instead of the first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// A response header (with `all: true`: the list of all its values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The value of a cookie set by the response (or by a redirect followed on the way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    /// A regex applied to the captured text: the value is its first group (or the whole match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// A property of the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<CaptureFrom>,
    /// Used when the source is missing (otherwise a missing source fails the step); may be `null`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub default: Option<Value>,
    /// Append to a list variable instead of replacing it (a list captured is appended item by
    /// item; the variable starts as an empty list): collects values across `repeat`/`foreach` runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub append: bool,
    /// The captured value is a secret: redacted from every report (in this and later steps and
    /// specs), wherever it shows up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

impl Capture {
    /// `append: true` (long form only): the variable is a list that grows.
    pub fn appends(&self) -> bool {
        matches!(self, Capture::Detailed(d) if d.append)
    }

    /// Marked `secret: true` (long form only).
    pub fn is_secret(&self) -> bool {
        matches!(self, Capture::Detailed(d) if d.secret)
    }
}

/// A key that is present is `Some`, even when its value is `null` (serde would say `None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// `type: null` (YAML null, unquoted) is the null type, not "no type check".
fn type_or_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<OrTemplate<JsonType>>, D::Error> {
    Option::<OrTemplate<JsonType>>::deserialize(d)
        .map(|t| Some(t.unwrap_or(OrTemplate::Literal(JsonType::Null))))
}

/// Outcome properties that can be captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaptureFrom {
    /// HTTP status code.
    Status,
    /// Raw body text.
    Body,
    /// Elapsed time of the (last) attempt, in milliseconds.
    ElapsedMs,
    /// Time from the first attempt to success, in milliseconds (polling).
    PollMs,
    /// Number of attempts (polling).
    Attempts,
    /// The final URL (after redirects).
    Url,
    /// The redirect chain followed: a list of `{status, url, location}`.
    Redirects,
    /// The response's HTTP version (`HTTP/1.1`, `HTTP/2`).
    Version,
    /// Every cookie the response set: `{name: {value, domain, path, secure, http_only, ...}}`.
    Cookies,
}

/// Polling: retry every `interval` until the expectations hold or `timeout` passes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Until {
    /// Time between attempts (default 1s); scaled by the simulator's time scale.
    #[serde(default = "default_interval")]
    pub interval: Dur,
    /// Give up after this long (measured from the first attempt) and report the last mismatch.
    pub timeout: Dur,
}

fn default_interval() -> Dur {
    Dur("1s".into())
}

/// Most iterations a `repeat` may run.
pub const MAX_REPEAT: u64 = 10_000;

/// How deep blocks (`foreach`, `repeat`, `fanout`) and includes may nest in a spec, includes of
/// includes counted. Loading and running walk the tree of steps recursively, and a results.json
/// nests two JSON levels per block (readers stop at 128): the bound keeps both far from a limit.
pub const MAX_NESTING: usize = 32;

/// Most runs the loops (`foreach` items, `repeat` runs) of a case's steps make in all, nested
/// loops multiplied; its cleanup has as many again. `validate` multiplies the sizes it knows
/// (written-out lists, `range(1500)` of constants); the run counts the rest.
pub const MAX_LOOP_RUNS: u64 = 1_000_000;

/// Most runs again of a failed case (`--retries`, a spec's `retries:`).
pub const MAX_RETRIES: u32 = 10;

/// Most redirects one request follows (`max_redirects` of a target or a step).
pub const MAX_REDIRECTS: u32 = 50;

/// Most steps of one spec once its includes are expanded (the steps inside blocks counted once
/// each, not once per iteration).
pub const MAX_STEPS: usize = 100_000;

/// Most objects a `kube wait` by selector may be asked to count (a GPU cluster's jobs are far
/// fewer; a larger number is a typo).
pub const MAX_WAIT_COUNT: u64 = 100_000;
