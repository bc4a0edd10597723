//! The spec model: what a QA engineer writes in YAML, as Rust types.
//!
//! This module knows nothing about HTTP or Kubernetes clients: it only describes
//! what to do. The engine interprets it; the loader fills in source positions.

pub mod access;
pub mod diag;
pub mod position;
pub mod scope;
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

/// A step: one action plus what to expect of it, what to capture, and how to poll.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "RawStep", into = "RawStep")]
pub struct Step {
    pub name: Option<String>,
    pub kind: StepKind,
    pub when: Option<String>,
    pub expect: Option<Box<Expect>>,
    pub capture: IndexMap<String, Capture>,
    pub until: Option<Until>,
    /// Scope items this step alone proves (its outcome, not the whole spec's, decides them).
    pub covers: Vec<String>,
    pub pos: Pos,
}

/// The action of a step. Adding a kind = a variant here, a field in [`RawStep`], and an executor.
#[derive(Debug, Clone)]
pub enum StepKind {
    Http(HttpRequest),
    Sleep(Dur),
    Assert(Vec<Check>),
    Sim(HttpRequest),
    Kube(Box<KubeOp>),
    Fanout(Box<Fanout>),
    Foreach(Box<Foreach>),
    Repeat(Box<Repeat>),
    Include(Box<Include>),
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Http(_) => "http",
            StepKind::Sleep(_) => "sleep",
            StepKind::Assert(_) => "assert",
            StepKind::Sim(_) => "sim",
            StepKind::Kube(_) => "kube",
            StepKind::Fanout(_) => "fanout",
            StepKind::Foreach(_) => "foreach",
            StepKind::Repeat(_) => "repeat",
            StepKind::Include(_) => "include",
        }
    }

    /// The step lists this kind runs inside itself, with their YAML path below the step
    /// (`fanout.steps`, `foreach.steps`, ...). An include's steps live in another file: `None`.
    pub fn blocks(&self) -> Vec<(&'static str, &[Step])> {
        match self {
            StepKind::Fanout(f) => vec![("fanout.steps", &f.steps), ("fanout.cleanup", &f.cleanup)],
            StepKind::Foreach(f) => vec![("foreach.steps", &f.steps)],
            StepKind::Repeat(r) => vec![("repeat.steps", &r.steps)],
            _ => Vec::new(),
        }
    }

    /// Kinds whose time is spent waiting on the system (measured in the spec's time, which is
    /// simulated time on a scaled simulator), as opposed to one request's latency.
    pub fn waits(&self) -> bool {
        match self {
            StepKind::Sleep(_)
            | StepKind::Fanout(_)
            | StepKind::Foreach(_)
            | StepKind::Repeat(_)
            | StepKind::Include(_) => true,
            StepKind::Kube(k) => matches!(k.op, KubeVerb::Wait | KubeVerb::Absent),
            _ => false,
        }
    }
}

impl Step {
    /// A readable label: the step's name, or its kind and a short summary.
    pub fn label(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match &self.kind {
            StepKind::Http(r) => format!("{} {}", r.method.as_str(), r.path),
            StepKind::Sim(r) => format!("sim {} {}", r.method.as_str(), r.path),
            StepKind::Sleep(d) => format!("sleep {}", d.0),
            StepKind::Assert(c) => format!("assert ({} checks)", c.len()),
            StepKind::Kube(k) => format!("kube {} {}", k.op.as_str(), k.kind),
            StepKind::Fanout(f) => match (&f.count, &f.duration) {
                (Some(c), _) => format!("fanout x{c}"),
                (None, Some(d)) => format!("fanout for {}", d.0),
                (None, None) => "fanout".into(),
            },
            StepKind::Foreach(f) => format!("foreach {} in {}", f.as_, compact_value(&f.items)),
            StepKind::Repeat(r) => format!("repeat while {}", r.while_),
            StepKind::Include(i) => format!("include {}", i.path),
        }
    }
}

/// The YAML form of a step: exactly one action key plus common keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "Step",
    description = "Exactly one of http, sleep, assert, sim, kube, fanout, foreach, repeat, include."
)]
pub struct RawStep {
    /// Step name shown in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Run the step only if this expression is true (e.g. `job_id is not none`); otherwise it is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Send an HTTP request to the target's base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpRequest>,
    /// Wait (e.g. `2s`, `500ms`); scaled by the target's time scale on the simulator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep: Option<Dur>,
    /// Pure checks on variables (no request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assert: Option<Vec<Check>>,
    /// Drive the simulator's control API (`/sim/...`); skipped on targets that are not simulators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim: Option<HttpRequest>,
    /// A Kubernetes operation (get, list, delete, wait, absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube: Option<KubeOp>,
    /// Run a block of steps many times concurrently, with aggregate thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fanout: Option<Fanout>,
    /// Run a block of steps once per item of a list (`as` names the item inside the block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreach: Option<Foreach>,
    /// Run a block of steps again while a condition holds (checked after each run), up to `max` times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Repeat>,
    /// Run the steps of another file (a YAML list of steps, relative to this file) here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
    /// Rejected: gRPC streaming is out of the agreed scope. Accepted by the parser only to say so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub grpc: Option<Value>,
    /// Expectations on the step's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    /// Variables to capture from the outcome: `name: $.json.path` or a detailed form.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub capture: IndexMap<String, Capture>,
    /// Retry the step until its expectations hold or the timeout passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Until>,
    /// Scope catalog ids this step proves on its own: coverage takes this step's outcome for them
    /// (so a failure elsewhere in the spec does not mark them failing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub covers: Vec<String>,
}

/// Message shown wherever a gRPC construct appears in a spec.
pub const GRPC_OUT_OF_SCOPE: &str = "gRPC streaming is out of the agreed test scope (\"remove all of gRPC from the tests\"): \
checks stop at \"the job opened in Kubernetes, the port was allocated, the stream URL was returned\"";

impl TryFrom<RawStep> for Step {
    type Error = String;
    fn try_from(r: RawStep) -> Result<Self, String> {
        if r.grpc.is_some() {
            return Err(format!(
                "a `grpc` step is not allowed: {GRPC_OUT_OF_SCOPE}. Remove the step; assert on `stream_url`/`stream_port` of the configure answer instead"
            ));
        }
        let mut kinds: Vec<StepKind> = Vec::new();
        if let Some(h) = r.http {
            kinds.push(StepKind::Http(h));
        }
        if let Some(s) = r.sleep {
            kinds.push(StepKind::Sleep(s));
        }
        if let Some(a) = r.assert {
            kinds.push(StepKind::Assert(a));
        }
        if let Some(s) = r.sim {
            kinds.push(StepKind::Sim(s));
        }
        if let Some(k) = r.kube {
            kinds.push(StepKind::Kube(Box::new(k)));
        }
        if let Some(f) = r.fanout {
            kinds.push(StepKind::Fanout(Box::new(f)));
        }
        if let Some(f) = r.foreach {
            kinds.push(StepKind::Foreach(Box::new(f)));
        }
        if let Some(x) = r.repeat {
            kinds.push(StepKind::Repeat(Box::new(x)));
        }
        if let Some(path) = r.include {
            kinds.push(StepKind::Include(Box::new(Include {
                path,
                ..Default::default()
            })));
        }
        if kinds.len() != 1 {
            let found: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            return Err(format!(
                "a step needs exactly one action (http, sleep, assert, sim, kube, fanout, foreach, repeat or include), found {}",
                if found.is_empty() { "none".to_string() } else { found.join(" + ") }
            ));
        }
        Ok(Step {
            name: r.name,
            when: r.when,
            kind: kinds.remove(0),
            expect: r.expect.map(Box::new),
            capture: r.capture,
            until: r.until,
            covers: r.covers,
            pos: Pos::default(),
        })
    }
}

impl From<Step> for RawStep {
    fn from(s: Step) -> Self {
        let mut r = RawStep {
            name: s.name,
            when: s.when,
            expect: s.expect.map(|e| *e),
            capture: s.capture,
            until: s.until,
            covers: s.covers,
            ..Default::default()
        };
        match s.kind {
            StepKind::Http(h) => r.http = Some(h),
            StepKind::Sleep(d) => r.sleep = Some(d),
            StepKind::Assert(a) => r.assert = Some(a),
            StepKind::Sim(h) => r.sim = Some(h),
            StepKind::Kube(k) => r.kube = Some(*k),
            StepKind::Fanout(f) => r.fanout = Some(*f),
            StepKind::Foreach(f) => r.foreach = Some(*f),
            StepKind::Repeat(x) => r.repeat = Some(*x),
            StepKind::Include(i) => r.include = Some(i.path),
        }
        r
    }
}

impl JsonSchema for Step {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Step".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        RawStep::json_schema(g)
    }
}

/// An HTTP method: any valid token (RFC 9110), case-insensitive, sent upper-cased
/// (`GET`, `post`, `PURGE`, `PROPFIND`, `LOCK`, a custom one). Default `GET`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(with = "MethodSchema")]
pub struct Method(String);

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "HttpMethod")]
enum MethodSchema {
    /// A common method
    Known(KnownMethod),
    /// Any other method: an HTTP token (letters, digits, ``!#$%&'*+-.^_`|~``)
    Token(#[schemars(pattern(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"))] String),
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
enum KnownMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
    Trace,
    Connect,
    Purge,
    Propfind,
    Proppatch,
    Mkcol,
    Copy,
    Move,
    Lock,
    Unlock,
}

impl Default for Method {
    fn default() -> Self {
        Method("GET".into())
    }
}

impl Method {
    /// A method from a token (upper-cased); an error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Method, String> {
        let t = s.trim();
        let ok = !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if ok {
            Ok(Method(t.to_ascii_uppercase()))
        } else {
            Err(format!(
                "`{s}` is not an HTTP method: a method is a token of letters, digits and !#$%&'*+-.^_`|~ (e.g. GET, POST, PURGE, PROPFIND)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Method::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The value(s) of a request header: a text (or number, boolean), or a list to send the header
/// once per element (`X-A: [1, 2]`). Values are templates.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(with = "HeaderValuesSchema")]
pub struct HeaderValues(pub Vec<String>);

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "HeaderValues")]
enum HeaderValuesSchema {
    /// One value (a template)
    One(HeaderScalar),
    /// The header is sent once per element
    Many(Vec<HeaderScalar>),
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged)]
enum HeaderScalar {
    Text(String),
    Number(f64),
    Bool(bool),
}

impl<'de> Deserialize<'de> for HeaderValues {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fn scalar(v: &Value) -> Option<String> {
            match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        }
        let v = Value::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom("a header value is a text, a number, a boolean, or a list of them (the header is then sent once per element)")
        };
        match &v {
            Value::Array(items) => items
                .iter()
                .map(|i| scalar(i).ok_or_else(bad))
                .collect::<Result<Vec<_>, _>>()
                .map(HeaderValues),
            other => scalar(other).map(|s| HeaderValues(vec![s])).ok_or_else(bad),
        }
    }
}

impl Serialize for HeaderValues {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.len() == 1 {
            self.0[0].serialize(s)
        } else {
            self.0.serialize(s)
        }
    }
}

impl From<&str> for HeaderValues {
    fn from(s: &str) -> Self {
        HeaderValues(vec![s.to_string()])
    }
}

/// HTTP basic authentication (`Authorization: Basic ...`); both are templates. The password
/// (and `user:password`) is a secret, redacted from every report.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub user: String,
    pub password: String,
}

/// One part of a `multipart/form-data` body: a text field (`name`, `value`) or a file
/// (`name`, `file` relative to the spec file, optional `filename` and `content_type`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MultipartPart {
    /// The field name.
    pub name: String,
    /// A text value (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A file to send, relative to the spec file (sent byte for byte).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The file name announced (default: the file's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// The part's Content-Type (default for files: `application/octet-stream`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// A request's query parameters: written as a map, or one template rendered to a map at run
/// time, so a table of cases can vary which keys are sent.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Query {
    Map(#[schemars(with = "IndexMap<String, Value>")] VarMap),
    /// A template whose value is a map (`"{{ q }}"`).
    Template(String),
}

impl Default for Query {
    fn default() -> Self {
        Query::Map(VarMap::new())
    }
}

impl Query {
    pub fn is_empty(&self) -> bool {
        matches!(self, Query::Map(m) if m.is_empty())
    }
}

/// An HTTP request (also used by `sim`, where `path` is relative to the simulator's `/sim`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    /// Any HTTP method, case-insensitive: GET (default), POST, PUT, PATCH, DELETE, HEAD,
    /// OPTIONS, TRACE, PURGE, PROPFIND, LOCK, or any other token.
    #[serde(default)]
    pub method: Method,
    /// Path relative to the target's base URL (e.g. `/configure`), or an absolute URL.
    pub path: String,
    /// Query parameters: `null` sends `key=`, a list repeats the key (`b=1&b=2`); or one
    /// template that renders to such a map (`query: "{{ q }}"`, e.g. from a case's `vars`).
    #[serde(default, skip_serializing_if = "Query::is_empty")]
    pub query: Query,
    /// Request headers (added to the target's default headers, replacing those of the same
    /// name); a list sends the header once per element.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, HeaderValues>,
    /// Cookies sent with this request only (besides the case's cookie jar): `{name: value}`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub cookies: IndexMap<String, String>,
    /// JSON body (strings inside are templates; `"{{ expr }}"` alone keeps the expression's
    /// type). Content-Type `application/json` unless a `Content-Type` header says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    /// Raw body text, sent as written (UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Body bytes given in base64 (binary bodies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// Body read from a file relative to the spec file, sent byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_file: Option<String>,
    /// An `application/x-www-form-urlencoded` body: `{k: v}` (a list repeats the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<IndexMap<String, Value>>")]
    pub form: Option<VarMap>,
    /// A `multipart/form-data` body: text fields and files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart: Option<Vec<MultipartPart>>,
    /// HTTP basic authentication for this request (overrides the target's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// Follow redirects (default: the target's `follow_redirects`, itself default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<bool>,
    /// At most this many redirects are followed (default: the target's, itself default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_redirects: Option<u32>,
    /// Per-request timeout (default: the target's request timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

impl HttpRequest {
    /// The body keys given (at most one is allowed).
    pub fn body_kinds(&self) -> Vec<&'static str> {
        let mut k = Vec::new();
        if self.json.is_some() {
            k.push("json");
        }
        if self.body.is_some() {
            k.push("body");
        }
        if self.body_base64.is_some() {
            k.push("body_base64");
        }
        if self.body_file.is_some() {
            k.push("body_file");
        }
        if self.form.is_some() {
            k.push("form");
        }
        if self.multipart.is_some() {
            k.push("multipart");
        }
        k
    }
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

/// One stage of an open-loop ramp: reach `rate` linearly over `duration`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub duration: Dur,
    /// Target rate at the end of the stage, e.g. `50/s`.
    pub rate: String,
}

/// Parses an arrival rate (`50/s`, `600/m`, `3600/h`, or a plain number per second) into
/// iterations per second.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (n, per) = match t.split_once('/') {
        Some((n, u)) => (
            n.trim(),
            match u.trim() {
                "s" | "sec" | "second" => 1.0,
                "m" | "min" | "minute" => 60.0,
                "h" | "hour" => 3600.0,
                other => {
                    return Err(format!(
                        "rate `{s}`: unknown unit `{other}` (write e.g. `50/s`, `600/m`)"
                    ))
                }
            },
        ),
        None => (t, 1.0),
    };
    let n: f64 = n
        .parse()
        .map_err(|_| format!("rate `{s}` is not a number per time unit (write e.g. `50/s`)"))?;
    let r = n / per;
    if !(r.is_finite() && (0.0..=1_000_000.0).contains(&r)) {
        return Err(format!(
            "rate `{s}` must be between 0 and 1,000,000 per second"
        ));
    }
    Ok(r)
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

/// Kubernetes operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KubeVerb {
    /// Get one object by name.
    Get,
    /// List objects (document = `{items: [...], count: n}`).
    List,
    /// Delete one object by name (or all matching a selector).
    Delete,
    /// Wait until the object exists and matches the expectations (get + polling); by selector,
    /// until the matches (at least one, or `count`) all meet the expectations.
    Wait,
    /// The object (or every object matching the selector) must be gone.
    Absent,
}

impl KubeVerb {
    pub fn as_str(self) -> &'static str {
        match self {
            KubeVerb::Get => "get",
            KubeVerb::List => "list",
            KubeVerb::Delete => "delete",
            KubeVerb::Wait => "wait",
            KubeVerb::Absent => "absent",
        }
    }
}

/// A Kubernetes operation on any resource kind.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeOp {
    /// get, list, delete, wait, absent.
    pub op: KubeVerb,
    /// Resource kind (`Job`, `Pod`, `Node`, `Event`, ...), resolved by discovery.
    pub kind: String,
    /// `group/version` when the kind is ambiguous (e.g. `batch/v1`).
    #[serde(
        default,
        rename = "apiVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace (default: the target's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Label selector, e.g. `focus.job-id={{ job_id }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// Field selector, e.g. `status.phase=Running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<String>,
    /// For `wait` by selector: how many objects must match (default: at least one). The step's
    /// `expect` must then hold for every match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Count>,
    /// For `wait`/`absent`: how long to keep checking (default 30s); polls every `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Dur>,
}

/// Run a block of steps `count` times with at most `concurrency` in flight.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fanout {
    /// Number of iterations (with `duration` or `stages`: at most this many; one of them is
    /// needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Count>,
    /// Keep starting iterations for this long (simulated time on a scaled simulator): closed loop
    /// with `concurrency` workers, or open loop at `rate`. Each iteration's cleanup then runs right
    /// after it, so memory stays flat however long the load runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Dur>,
    /// Open loop (k6's arrival rate): start iterations at this rate whatever the response times,
    /// e.g. `50/s`, `600/m`. Latency counts from the scheduled start (no coordinated omission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// Open loop (k6's ramping arrival rate): rates to ramp to, each reached linearly over its
    /// duration, starting from `rate` (or 0 without it). After the last stage its rate holds
    /// until `duration`, if that is longer; without `duration` the stages' end ends the load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// Open loop: at most this many iterations in flight; a start that finds it reached is
    /// dropped and counted (`dropped`), never delayed. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<Count>,
    /// Iterations in flight at once (default = count: all start together behind a barrier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Count>,
    /// Spread iteration starts over this time instead of a barrier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_up: Option<Dur>,
    /// Stop starting iterations and fail after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Dur>,
    /// A load with `duration` (or `stages`): how long iterations still running when it ends may
    /// go on (k6's `gracefulStop`, default 30s). Then they are cut, counted as failed, and their
    /// cleanup runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_stop: Option<Dur>,
    /// Steps of one iteration (`index` = 0..count-1 is set; captures stay per iteration).
    pub steps: Vec<Step>,
    /// Per-iteration cleanup, with that iteration's variables. It runs once every iteration has
    /// finished its steps (so what the block opened is open together), always: after failures,
    /// past the deadline and on Ctrl-C.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cleanup: Vec<Step>,
    /// Aggregate thresholds, e.g. `succeeded == count`, `p95(configure) < 2s`, `unique(stream_port)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<String>,
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

fn compact_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Run a block of steps once per item of a list.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Foreach {
    /// The list: a YAML list, or a template rendering to one (`"{{ job_ids }}"`).
    #[schemars(with = "Value")]
    pub items: Value,
    /// Name of the current item inside the block (defined there only); `index` (0-based) too.
    #[serde(rename = "as")]
    pub as_: String,
    /// Steps run for each item. With `concurrency` 1 (default) items run in order and share the
    /// variables (captures carry over, `append` collects); with more, each item keeps its own.
    pub steps: Vec<Step>,
    /// Items in flight at once (default 1: one after the other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Count>,
}

/// Run a block of steps, then again while `while` holds: at least once, at most `max` times.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    /// Expression checked after each run (`"{{ has_next }}"` or `has_next`): another run while true.
    #[serde(rename = "while")]
    pub while_: String,
    /// Most runs (default 100, at most 10,000); still true after `max` runs fails the step.
    #[serde(default = "default_repeat_max")]
    #[schemars(range(min = 1, max = 10000))]
    pub max: u64,
    /// Steps of one run (they share the variables: a capture of one run is seen by the next).
    pub steps: Vec<Step>,
}

fn default_repeat_max() -> u64 {
    100
}

/// `include: path`: the steps of another file, read when the spec is loaded.
#[derive(Debug, Clone, Default)]
pub struct Include {
    /// As written (relative to the including file).
    pub path: String,
    /// The file as read, and as shown in diagnostics and failure locations.
    pub file: PathBuf,
    pub display: String,
    /// The included steps, positioned in their own file.
    pub steps: Vec<Step>,
}
