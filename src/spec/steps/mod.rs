//! Steps: the common part of a step ([`Step`]), its YAML form ([`RawStep`]), and the kinds of
//! action ([`StepKind`]). Each kind's model is in a file of its own here, with its
//! [`KindModel`] impl (name, label, the blocks it runs); its executor is in `engine/`.

mod assert;
mod blocks;
mod fanout;
mod http;
mod kube;
mod sleep;

pub use assert::Assert;
pub use blocks::{Foreach, Include, Repeat};
pub use fanout::{parse_rate, Fanout, Stage};
pub use http::{BasicAuth, HeaderValues, HttpRequest, Method, MultipartPart, Query, Sim};
pub use kube::{KubeOp, KubeVerb};
pub use sleep::Sleep;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::spec::{Capture, Check, Dur, Expect, Pos, Until};

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

/// The action of a step: one variant per kind, holding the kind's own type (its model, in a
/// file of its own). The HTTP request, the hot path of a fan-out, is inline; the large, rarer
/// kinds are boxed. What a kind does is a method of its type: [`KindModel`] here, the executor
/// in the engine; a question asked of a `StepKind` delegates through `each_kind!`.
#[derive(Debug, Clone)]
pub enum StepKind {
    Http(HttpRequest),
    Sleep(Sleep),
    Assert(Assert),
    Sim(Sim),
    Kube(Box<KubeOp>),
    Fanout(Box<Fanout>),
    Foreach(Box<Foreach>),
    Repeat(Box<Repeat>),
    Include(Box<Include>),
}

/// `each_kind!(kind, k => expr)`: `expr` with `k` bound to the kind's own value (`&HttpRequest`,
/// `&Box<Fanout>`, ...; methods reach through the box). The one list of the variants besides
/// the enum and its YAML form: a kind added to the enum fails to compile here until listed,
/// and then every delegation (model and engine) reaches its type's methods.
macro_rules! each_kind {
    ($kind:expr, $k:ident => $e:expr) => {
        match $kind {
            $crate::spec::StepKind::Http($k) => $e,
            $crate::spec::StepKind::Sleep($k) => $e,
            $crate::spec::StepKind::Assert($k) => $e,
            $crate::spec::StepKind::Sim($k) => $e,
            $crate::spec::StepKind::Kube($k) => $e,
            $crate::spec::StepKind::Fanout($k) => $e,
            $crate::spec::StepKind::Foreach($k) => $e,
            $crate::spec::StepKind::Repeat($k) => $e,
            $crate::spec::StepKind::Include($k) => $e,
        }
    };
}
pub(crate) use each_kind;

/// What the spec model knows of a step kind, implemented by each kind's type beside it.
pub trait KindModel {
    /// The kind's key in YAML (`http`, `kube`, ...).
    fn name(&self) -> &'static str;

    /// A short summary, the label of a step without a name (`GET /health`, `sleep 2s`).
    fn label(&self) -> String;

    /// The step lists this kind runs inside itself, with their YAML path below the step
    /// (`fanout.steps`, `foreach.steps`, ...). An include's steps live in another file: none.
    fn blocks(&self) -> Vec<(&'static str, &[Step])> {
        Vec::new()
    }

    /// [`KindModel::blocks`], to change (the loader positions and expands them).
    fn blocks_mut(&mut self) -> Vec<(&'static str, &mut Vec<Step>)> {
        Vec::new()
    }

    /// Every step this kind runs inside itself: its blocks', and an include's fragment's.
    fn nested(&self) -> Vec<&[Step]> {
        self.blocks().into_iter().map(|(_, steps)| steps).collect()
    }

    /// Its time is spent waiting on the system (measured in the spec's time, which is simulated
    /// time on a scaled simulator), as opposed to one request's latency.
    fn waits(&self) -> bool {
        false
    }

    /// The HTTP request it sends, if it sends one (`http`, `sim`).
    fn request(&self) -> Option<&HttpRequest> {
        None
    }
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        each_kind!(self, k => k.name())
    }

    /// See [`KindModel::label`].
    pub fn label(&self) -> String {
        each_kind!(self, k => k.label())
    }

    /// See [`KindModel::blocks`].
    pub fn blocks(&self) -> Vec<(&'static str, &[Step])> {
        each_kind!(self, k => k.blocks())
    }

    /// See [`KindModel::blocks_mut`].
    pub fn blocks_mut(&mut self) -> Vec<(&'static str, &mut Vec<Step>)> {
        each_kind!(self, k => k.blocks_mut())
    }

    /// See [`KindModel::nested`].
    pub fn nested(&self) -> Vec<&[Step]> {
        each_kind!(self, k => k.nested())
    }

    /// See [`KindModel::waits`].
    pub fn waits(&self) -> bool {
        each_kind!(self, k => k.waits())
    }

    /// See [`KindModel::request`].
    pub fn request(&self) -> Option<&HttpRequest> {
        each_kind!(self, k => k.request())
    }
}

impl Step {
    /// A readable label: the step's name, or its kind and a short summary.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => self.kind.label(),
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
            kinds.push(StepKind::Sleep(Sleep(s)));
        }
        if let Some(a) = r.assert {
            kinds.push(StepKind::Assert(Assert(a)));
        }
        if let Some(s) = r.sim {
            kinds.push(StepKind::Sim(Sim(s)));
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
            StepKind::Sleep(d) => r.sleep = Some(d.0),
            StepKind::Assert(a) => r.assert = Some(a.0),
            StepKind::Sim(h) => r.sim = Some(h.0),
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
