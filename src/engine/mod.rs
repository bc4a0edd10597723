//! The engine: runs specs against a target and produces the results model.
//!
//! Specs run in parallel up to `--jobs`; `exclusive` specs run alone. Each case runs its steps
//! in order, stops at the first failure, and always runs its cleanup steps (also on Ctrl-C).
//! Progress goes out as [`Event`]s; reporters never see engine internals. Each step kind's
//! executor is a file of its own (`http.rs`, `sleep.rs`, `assert.rs`, `kube.rs`, `fanout.rs`,
//! `blocks.rs`): the kind's `Execute` impl (see `step.rs`), which `StepKind` delegates to.

mod assert;
pub mod blocks;
mod cancel;
pub mod expect;
pub mod fanout;
pub mod http;
pub mod kube;
mod sleep;
pub mod step;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use chrono::Utc;
use serde_json::{json, Value};
use tokio::sync::{mpsc, RwLock, Semaphore};

pub use cancel::Cancel;

use crate::results::{
    location as location_of, AssertionResult, Attachment, AttemptResult, CaseResult, FanoutStats,
    RequestExcerpt, ResponseExcerpt, RunReport, SpecResult, Status, StepResult, TargetInfo, Totals,
};
use crate::spec::{Capability, Case, Dur, Spec, Step, VarMap};
use crate::targets::Target;
use crate::template::{Scope, TemplateError};

/// What a step kind observed: the material expectations and captures work on.
#[derive(Debug, Default, Clone)]
pub struct Observation {
    pub status: Option<u16>,
    pub headers: Headers,
    pub body: Option<String>,
    /// The JSON document `path` checks and captures look into ([`Observation::doc`]): set by
    /// the kind, or parsed from `body` on first use.
    pub doc: std::sync::OnceLock<Value>,
    pub elapsed: Duration,
    pub request: Option<RequestExcerpt>,
    pub response: Option<ResponseExcerpt>,
    /// Checks the kind evaluated itself (assert steps, fan-out thresholds).
    pub assertions: Vec<AssertionResult>,
    pub fanout: Option<Box<FanoutStats>>,
    pub attachments: Vec<Attachment>,
    /// What only an HTTP step has (final URL, redirects, cookies, body bytes, version).
    pub http: Option<Box<http::HttpObs>>,
    /// Results of the steps a block kind ran (foreach items, repeat runs, included steps).
    pub children: Vec<StepResult>,
    /// A `kube wait` by selector: the matching objects, each of which the step's `expect` must
    /// hold for (the document is `{count, items}`).
    pub each: Option<Vec<Value>>,
}

/// A response's headers as received, and as `(name, value)` text made on first use: most
/// requests of a load never look at theirs (making them was 9 allocations per request).
#[derive(Debug, Clone, Default)]
pub struct Headers {
    map: reqwest::header::HeaderMap,
    pairs: std::sync::OnceLock<Vec<(String, String)>>,
}

impl Headers {
    pub fn new(map: reqwest::header::HeaderMap) -> Headers {
        Headers {
            map,
            pairs: Default::default(),
        }
    }

    /// Every header in the order received, a repeated one once per value.
    pub fn pairs(&self) -> &[(String, String)] {
        self.pairs.get_or_init(|| http::pairs_of(&self.map))
    }

    pub fn map(&self) -> &reqwest::header::HeaderMap {
        &self.map
    }
}

impl Observation {
    /// The JSON document: what the kind set, else the body parsed as JSON (`null` when it is
    /// not JSON). Parsed on first use: most requests of a load are only checked for their status.
    pub fn doc(&self) -> &Value {
        self.doc.get_or_init(|| {
            self.body
                .as_deref()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or(Value::Null)
        })
    }
}

/// Why a step could not be carried out.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ExecError {
    pub kind: ErrorKind,
    pub message: String,
    pub request: Option<Box<RequestExcerpt>>,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Infrastructure: connection refused, timeout, API error. Retried while polling.
    Infra,
    /// The spec itself is wrong at run time (undefined variable, bad template). Never retried.
    Spec,
    /// Ctrl-C.
    Interrupted,
}

/// What an interrupted step or spec says: every signal that stops a run (cli.rs listens for all
/// three).
pub const INTERRUPTED: &str = "interrupted (Ctrl-C, SIGTERM or SIGHUP)";

impl ExecError {
    pub fn infra(message: impl Into<String>) -> Self {
        ExecError {
            kind: ErrorKind::Infra,
            message: message.into(),
            request: None,
            attachments: Vec::new(),
        }
    }
    pub fn spec(message: impl std::fmt::Display) -> Self {
        ExecError {
            kind: ErrorKind::Spec,
            message: message.to_string(),
            request: None,
            attachments: Vec::new(),
        }
    }
    pub fn interrupted() -> Self {
        ExecError {
            kind: ErrorKind::Interrupted,
            message: INTERRUPTED.into(),
            request: None,
            attachments: Vec::new(),
        }
    }
}

impl From<TemplateError> for ExecError {
    fn from(e: TemplateError) -> Self {
        ExecError::spec(e.message)
    }
}

/// Renders and parses a duration.
pub fn resolve_dur(d: &Dur, scope: &Scope) -> Result<Duration, ExecError> {
    if d.is_templated() {
        let s = scope.render_str(&d.0)?;
        crate::spec::parse_duration(&s).map_err(ExecError::spec)
    } else {
        d.parse().map_err(ExecError::spec)
    }
}

/// Progress events for reporters: part of the results model, which reporters read.
pub use crate::results::Event;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub jobs: usize,
    pub fail_fast: bool,
    /// Runs of a failed case again (`--retries`); a spec's `retries:` overrides it.
    pub retries: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: 4,
            fail_fast: false,
            retries: 0,
        }
    }
}

/// Context shared by the steps of one case.
pub struct Ctx {
    pub target: Arc<Target>,
    pub cancel: Cancel,
    pub events: Option<mpsc::UnboundedSender<Event>>,
    pub spec_id: String,
    pub spec_file: String,
    pub spec_dir: PathBuf,
    /// The spec's `secrets:`: variables (and captures) whose values are secrets.
    pub secret_vars: Vec<String>,
    /// When progress was last reported (starts at the spec's start). Wall time: progress is
    /// for the person watching, whatever clock the run is on.
    pub last_progress: Arc<std::sync::Mutex<std::time::Instant>>,
    /// The case's cookie jar (emptied when a case starts; shared by a fan-out's iterations).
    pub cookies: Arc<http::CookieJar>,
    /// Step results feed a fan-out's statistics and are then dropped: excerpts keep only what a
    /// failure reason reads (status, body, message), not the headers.
    pub summarized: bool,
}

/// Long steps report progress at most this often, and only once a spec has run this long
/// (wall time).
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

impl Ctx {
    /// The same context, owned: for a fan-out's iterations, which run as tasks of their own.
    /// Progress throttling and the cookie jar stay shared with the case.
    pub fn fork(&self) -> Ctx {
        Ctx {
            target: self.target.clone(),
            cancel: self.cancel.clone(),
            events: self.events.clone(),
            spec_id: self.spec_id.clone(),
            spec_file: self.spec_file.clone(),
            spec_dir: self.spec_dir.clone(),
            secret_vars: self.secret_vars.clone(),
            last_progress: self.last_progress.clone(),
            cookies: self.cookies.clone(),
            summarized: self.summarized,
        }
    }

    /// Reports progress of a long step (throttled: quiet specs print nothing extra).
    pub fn progress(&self, message: String) {
        let Some(tx) = &self.events else { return };
        let now = std::time::Instant::now();
        let mut last = self.last_progress.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(*last) < PROGRESS_EVERY {
            return;
        }
        *last = now;
        let _ = tx.send(Event::Progress {
            spec_id: self.spec_id.clone(),
            message: self.target.secrets.redact_str(&message),
        });
    }

    /// Adds the values of captures marked `secret: true` (or named in the spec's `secrets:`) to
    /// the run's secrets, so reports redact them wherever they appear.
    pub fn note_secret_captures(
        &self,
        captures: &indexmap::IndexMap<String, crate::spec::Capture>,
        values: &indexmap::IndexMap<String, Value>,
    ) {
        for (name, cap) in captures {
            if cap.is_secret() || self.secret_vars.contains(name) {
                if let Some(v) = values.get(name) {
                    self.target.secrets.add_value(v);
                }
            }
        }
    }
}

/// The capabilities a spec needs: its `requires`, plus what its steps imply.
pub fn required_capabilities(spec: &Spec) -> Vec<Capability> {
    let mut caps: Vec<Capability> = spec.requires.clone();
    fn walk(steps: &[Step], caps: &mut Vec<Capability>) {
        for s in steps {
            caps.extend(s.kind.needs());
            for inner in s.kind.nested() {
                walk(inner, caps);
            }
        }
    }
    walk(&spec.steps, &mut caps);
    caps.sort();
    caps.dedup();
    caps
}

pub struct Engine {
    pub target: Arc<Target>,
    pub opts: RunOptions,
    pub cancel: Cancel,
    pub events: Option<mpsc::UnboundedSender<Event>>,
}

impl Engine {
    pub fn new(target: Arc<Target>, opts: RunOptions) -> Self {
        Engine {
            target,
            opts,
            cancel: Cancel::default(),
            events: None,
        }
    }

    fn emit(&self, e: Event) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    /// Runs all specs and returns the report (never panics on spec or target problems).
    pub async fn run(&self, specs: Vec<Spec>) -> RunReport {
        let started_at = Utc::now();
        let t0 = Instant::now();
        let cases: usize = specs.iter().map(|s| s.cases.len().max(1)).sum();
        self.emit(Event::RunStarted {
            specs: specs.len(),
            cases,
            target: self.target.info.clone(),
        });
        let sem = Arc::new(Semaphore::new(self.opts.jobs.max(1)));
        let exclusive = Arc::new(RwLock::new(()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for spec in specs {
            let spec = Arc::new(spec);
            let (sem, exclusive, stop) = (sem.clone(), exclusive.clone(), stop.clone());
            let target = self.target.clone();
            let cancel = self.cancel.clone();
            let events = self.events.clone();
            let fail_fast = self.opts.fail_fast;
            let retries = self.opts.retries;
            // Specs start in order: the slot is taken before the task is spawned (tasks racing
            // for it could start a later spec first, e.g. with `--jobs 1`).
            let permit = sem.acquire_owned().await;
            handles.push((
                spec.clone(),
                tokio::spawn(async move {
                    let _permit = permit;
                    let not_run = |why: &str| not_run_result(&spec, why);
                    if cancel.is_cancelled() {
                        return not_run(&format!("not run: the run was {INTERRUPTED}"));
                    }
                    if stop.load(Ordering::SeqCst) {
                        return not_run("not run: stopped after the first failure (--fail-fast)");
                    }
                    let _guard_r;
                    let _guard_w;
                    if spec.exclusive {
                        _guard_w = exclusive.write().await;
                    } else {
                        _guard_r = exclusive.read().await;
                    }
                    if cancel.is_cancelled() {
                        return not_run(&format!("not run: the run was {INTERRUPTED}"));
                    }
                    if let Some(tx) = &events {
                        let _ = tx.send(Event::SpecStarted {
                            id: spec.id.clone(),
                            title: spec.title.clone(),
                        });
                    }
                    let offset = ms(t0.elapsed());
                    let mut res =
                        run_spec(&spec, target.clone(), cancel, events.clone(), retries).await;
                    res.start_offset_ms = offset;
                    // Secrets leave the result before any reporter sees it.
                    res.redact(&target.secrets);
                    if fail_fast && matches!(res.status, Status::Failed | Status::Error) {
                        stop.store(true, Ordering::SeqCst);
                    }
                    if let Some(tx) = &events {
                        let _ = tx.send(Event::SpecFinished(Box::new(res.clone())));
                    }
                    res
                }),
            ));
        }
        let mut results = Vec::new();
        for (spec, h) in handles {
            results.push(match h.await {
                Ok(r) => r,
                // A panic in a spec task is a bug of ours: report it, keep the others.
                Err(e) => error_result(
                    &spec,
                    &format!("internal error while running this spec: {e}"),
                ),
            });
        }
        let interrupted = self.cancel.is_cancelled();
        let mut report = run_report(
            self.target.info.clone(),
            (started_at, t0),
            interrupted,
            results,
        );
        // Again over the whole report: a secret learnt late (a capture in a later spec) also
        // leaves the specs that finished before.
        report.redact(&self.target.secrets);
        report
    }
}

pub use crate::results::ms;

fn base_result(spec: &Spec, status: Status) -> SpecResult {
    SpecResult {
        id: spec.id.clone(),
        title: spec.title.clone(),
        description: spec.description.clone(),
        file: spec.source.display.clone(),
        line: spec.source.pos.line,
        covers: spec.covers.clone(),
        tags: spec.tags.clone(),
        requires: required_capabilities(spec)
            .iter()
            .map(|c| c.as_str().to_string())
            .collect(),
        status,
        skip_reason: None,
        started_at: Utc::now(),
        start_offset_ms: 0.0,
        duration_ms: 0.0,
        cases: Vec::new(),
    }
}

fn case_names(spec: &Spec) -> Vec<(String, Option<String>)> {
    if spec.cases.is_empty() {
        vec![(spec.title.clone(), None)]
    } else {
        spec.cases
            .iter()
            .map(|c| (c.name.clone(), c.description.clone()))
            .collect()
    }
}

fn empty_case(
    name: String,
    description: Option<String>,
    status: Status,
    message: &str,
) -> CaseResult {
    CaseResult {
        name,
        description,
        status,
        duration_ms: 0.0,
        message: Some(message.to_string()),
        location: None,
        source_line: None,
        vars: Default::default(),
        steps: Vec::new(),
        cleanup: Vec::new(),
        attempts: Vec::new(),
        flaky: false,
    }
}

/// A spec that did not run: every case skipped with the reason.
pub fn not_run_result(spec: &Spec, why: &str) -> SpecResult {
    let mut r = base_result(spec, Status::Skipped);
    r.skip_reason = Some(why.to_string());
    r.cases = case_names(spec)
        .into_iter()
        .map(|(n, d)| empty_case(n, d, Status::Skipped, why))
        .collect();
    r
}

/// The report of a run aborted by a second interrupt: what finished, and every other spec as an
/// error that says its cleanup may not have run.
pub fn aborted_report(
    target: TargetInfo,
    specs: &[Spec],
    finished: Vec<SpecResult>,
    started: (chrono::DateTime<Utc>, Instant),
) -> RunReport {
    let mut results = Vec::with_capacity(specs.len());
    for spec in specs {
        match finished.iter().find(|r| r.id == spec.id) {
            Some(r) => results.push(r.clone()),
            None => results.push(error_result(
                spec,
                "aborted by a second interrupt before this spec finished: its cleanup may not have run (check for jobs left open)",
            )),
        }
    }
    run_report(target, started, true, results)
}

/// A run's report from its spec results (coverage, shard and history are added by the caller).
fn run_report(
    target: TargetInfo,
    started: (chrono::DateTime<Utc>, Instant),
    interrupted: bool,
    results: Vec<SpecResult>,
) -> RunReport {
    RunReport {
        tool: "focusqa".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        target,
        started_at: started.0,
        duration_ms: ms(started.1.elapsed()),
        interrupted,
        totals: Totals::from_specs(&results),
        specs: results,
        coverage: None,
        shard: None,
        history: Vec::new(),
    }
}

fn error_result(spec: &Spec, why: &str) -> SpecResult {
    let mut r = base_result(spec, Status::Error);
    r.cases = case_names(spec)
        .into_iter()
        .map(|(n, d)| empty_case(n, d, Status::Error, why))
        .collect();
    r
}

async fn run_spec(
    spec: &Spec,
    target: Arc<Target>,
    cancel: Cancel,
    events: Option<mpsc::UnboundedSender<Event>>,
    retries: u32,
) -> SpecResult {
    let t0 = Instant::now();
    let missing: Vec<&str> = required_capabilities(spec)
        .into_iter()
        .filter(|c| !target.has(*c))
        .map(|c| c.as_str())
        .collect();
    if !missing.is_empty() {
        let why = format!(
            "requires {} which target `{}` does not offer{}",
            missing.join(" and "),
            target.name,
            if missing.contains(&"simulator") {
                " (fault injection works only on the simulator)"
            } else {
                ""
            }
        );
        return not_run_result(spec, &why);
    }
    let mut result = base_result(spec, Status::Passed);
    let ctx = Ctx {
        target: target.clone(),
        cancel: cancel.clone(),
        events,
        spec_id: spec.id.clone(),
        spec_file: spec.source.display.clone(),
        spec_dir: spec
            .source
            .file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        secret_vars: spec.secrets.clone(),
        last_progress: Arc::new(std::sync::Mutex::new(std::time::Instant::now())),
        cookies: Arc::new(http::CookieJar::new(spec.cookies.unwrap_or(target.cookies))),
        summarized: false,
    };
    let cases: Vec<Option<&Case>> = if spec.cases.is_empty() {
        vec![None]
    } else {
        spec.cases.iter().map(Some).collect()
    };
    let retries = spec.retries.unwrap_or(retries);
    for case in cases {
        let cr = run_case_with_retries(spec, case, &ctx, retries).await;
        result.status = result.status.worst(cr.status);
        result.cases.push(cr);
    }
    if result.cases.iter().all(|c| c.status == Status::Skipped) {
        result.status = Status::Skipped;
    } else if result.status == Status::Skipped {
        result.status = Status::Passed;
    }
    result.duration_ms = ms(t0.elapsed());
    result
}

/// Builds the variables of a case: target vars, spec vars, case vars (each may use the earlier).
fn case_scope(spec: &Spec, case: Option<&Case>, target: &Target) -> Result<Scope, ExecError> {
    let mut scope = Scope::recording(target.secrets.env_sink());
    let mut tv = serde_json::Map::new();
    for (k, v) in &target.vars {
        let v = scope.render_value(v)?;
        tv.insert(k.clone(), v.clone());
        scope.set(k.clone(), v);
    }
    tv.insert("name".into(), json!(target.name));
    tv.insert("base_url".into(), json!(target.base_url));
    tv.insert("kind".into(), json!(target.info.kind));
    tv.insert("time_scale".into(), json!(target.time_scale));
    if let Some(k) = &target.kube {
        tv.insert("namespace".into(), json!(k.namespace));
    }
    scope.set("target", Value::Object(tv));
    scope.set("spec", json!({"id": spec.id, "title": spec.title}));
    scope.set(
        "case",
        json!({"name": case.map(|c| c.name.clone()).unwrap_or_else(|| spec.title.clone())}),
    );
    let render_into = |scope: &mut Scope, vars: &VarMap, what: &str| -> Result<(), ExecError> {
        for (k, v) in vars {
            let v = scope
                .render_value(v)
                .map_err(|e| ExecError::spec(format!("{what} var `{k}`: {e}")))?;
            scope.set(k.clone(), v);
        }
        Ok(())
    };
    render_into(&mut scope, &spec.vars, "spec")?;
    if let Some(c) = case {
        render_into(&mut scope, &c.vars, "case")?;
    }
    Ok(scope)
}

/// Runs a case, and again while it fails, up to `retries` more times (for known-flaky
/// infrastructure). Each attempt is a whole case: its cleanup runs after it. The failed attempts
/// are kept; a pass after failures is `flaky`, never a silent pass.
async fn run_case_with_retries(
    spec: &Spec,
    case: Option<&Case>,
    ctx: &Ctx,
    retries: u32,
) -> CaseResult {
    let mut attempts = Vec::new();
    let mut cr = run_case(spec, case, ctx).await;
    while matches!(cr.status, Status::Failed | Status::Error)
        && attempts.len() < retries as usize
        && !ctx.cancel.is_cancelled()
    {
        attempts.push(AttemptResult {
            status: cr.status,
            duration_ms: cr.duration_ms,
            message: cr.message.take(),
            location: cr.location.take(),
            steps: std::mem::take(&mut cr.steps),
            cleanup: std::mem::take(&mut cr.cleanup),
        });
        cr = run_case(spec, case, ctx).await;
    }
    cr.flaky = !attempts.is_empty() && cr.status == Status::Passed;
    cr.duration_ms += attempts.iter().map(|a| a.duration_ms).sum::<f64>();
    cr.attempts = attempts;
    cr
}

async fn run_case(spec: &Spec, case: Option<&Case>, ctx: &Ctx) -> CaseResult {
    let t0 = Instant::now();
    let (name, description) = match case {
        Some(c) => (c.name.clone(), c.description.clone()),
        None => (spec.title.clone(), None),
    };
    let mut cr = CaseResult {
        name,
        description,
        status: Status::Passed,
        duration_ms: 0.0,
        message: None,
        location: None,
        source_line: None,
        vars: Default::default(),
        steps: Vec::new(),
        cleanup: Vec::new(),
        attempts: Vec::new(),
        flaky: false,
    };
    if let Some(reason) = case.and_then(|c| c.skip.clone()) {
        cr.status = Status::Skipped;
        cr.message = Some(reason);
        return cr;
    }
    let at = case.map_or(spec.source.pos, |c| c.pos);
    ctx.cookies.clear();
    let mut scope = match case_scope(spec, case, &ctx.target) {
        Ok(s) => s,
        Err(e) => {
            cr.status = Status::Error;
            cr.message = Some(e.message);
            cr.location = Some(location_of(&ctx.spec_file, at.line, at.col));
            cr.source_line = source_line(&ctx.spec_file, at.line);
            return cr;
        }
    };
    for name in &spec.secrets {
        if let Some(v) = scope.get(name) {
            ctx.target.secrets.add_value(v);
        }
    }
    if let Some(c) = case {
        // As used; redacted with the rest of the result when the spec finishes.
        cr.vars = c
            .vars
            .keys()
            .filter_map(|k| scope.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
    }
    // A panic is a bug of ours; caught here as a last resort so cleanup still runs and the
    // reports are still written.
    // The steps and the cleanup each have their budget of loop runs: steps that used theirs
    // up still leave cleanup the means to release what they took.
    let (steps, status) = contain_panic(blocks::budgeted(step::run_steps(
        &spec.steps,
        &mut scope,
        ctx,
        false,
    )))
    .await;
    cr.steps = steps;
    cr.status = status;
    // Cleanup always runs, also after a failure or Ctrl-C; its own failures are reported too.
    let (cleanup, cstatus) = contain_panic(blocks::budgeted(step::run_steps(
        &spec.cleanup,
        &mut scope,
        ctx,
        true,
    )))
    .await;
    cr.cleanup = cleanup;
    if cr.status == Status::Passed && cstatus != Status::Passed && cstatus != Status::Skipped {
        cr.status = cstatus;
    }
    if let Some(bad) = cr
        .steps
        .iter()
        .chain(cr.cleanup.iter())
        .find(|s| matches!(s.status, Status::Failed | Status::Error))
    {
        cr.message = bad.message.clone();
        // Inside a loop or an included fragment: the innermost failing step, in its own file.
        let (leaf, file) = bad.failing_leaf();
        let (line, col) = leaf
            .assertions
            .iter()
            .find(|a| !a.passed)
            .map_or((leaf.line, leaf.col), |a| (a.line, a.col));
        let file = file.unwrap_or(&ctx.spec_file);
        cr.location = Some(location_of(file, line, col));
        cr.source_line = source_line(file, line);
    }
    cr.duration_ms = ms(t0.elapsed());
    cr
}

/// Line `line` of a spec file, for a failure's caret (re-read: the spec model keeps no text).
/// None for a file gone, or larger than any spec a person reads.
fn source_line(file: &str, line: u32) -> Option<String> {
    const MAX_READ: u64 = 64 << 20;
    let size = std::fs::metadata(file).ok()?.len();
    if line == 0 || size > MAX_READ {
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    // A line too long to read beside a caret (generated YAML on one line) is left out.
    text.lines()
        .nth(line as usize - 1)
        .filter(|l| l.len() <= 400)
        .map(str::to_string)
}

/// Runs a step list; a panic inside becomes an error step instead of ending the spec.
async fn contain_panic(
    fut: impl std::future::Future<Output = (Vec<StepResult>, Status)>,
) -> (Vec<StepResult>, Status) {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let step = StepResult {
                name: "internal error".into(),
                kind: crate::results::StepKindName::Panic,
                status: Status::Error,
                message: Some(format!(
                    "internal error (a bug in focusqa, please report it): {what}"
                )),
                ..Default::default()
            };
            (vec![step], Status::Error)
        }
    }
}

/// Convenience for steps that produce a StepResult without running anything.
pub fn skipped_step(step: &Step, why: &str) -> StepResult {
    StepResult {
        name: step.label(),
        kind: step.kind.result_name(),
        line: step.pos.line,
        col: step.pos.col,
        status: Status::Skipped,
        message: Some(why.to_string()),
        covers: step.covers.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error_step_instead_of_ending_the_spec() {
        let (steps, status) = contain_panic(async {
            if std::hint::black_box(true) {
                panic!("boom in a step");
            }
            (Vec::new(), Status::Passed)
        })
        .await;
        assert_eq!(status, Status::Error);
        assert_eq!(steps[0].status, Status::Error);
        assert!(steps[0]
            .message
            .as_deref()
            .unwrap()
            .contains("boom in a step"));
        // Nothing was lost: an ordinary list passes through unchanged.
        let (steps, status) = contain_panic(async { (Vec::new(), Status::Passed) }).await;
        assert_eq!((steps.len(), status), (0, Status::Passed));
    }
}
