//! Running one step: execute its kind, check expectations, capture variables, poll with `until`.

use std::time::Duration;
use tokio::time::Instant;

use serde_json::{json, Value};

use super::expect::evaluate;
use super::{ms, resolve_dur, skipped_step, Ctx, ErrorKind, ExecError, Observation};
use crate::results::{Attachment, PollInfo, Status, StepKindName, StepResult};
use crate::spec::steps::each_kind;
use crate::spec::{Capability, Capture, CaptureFrom, Step, StepKind, Until};
use crate::template::Scope;

/// Smallest poll interval after time scaling (keeps a scaled 100 ms poll from spinning).
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// How long a step in flight may still finish after an interrupt (its answer may hold what
/// cleanup needs, such as a job id). A second interrupt aborts at once.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);

/// A poll's interval and timeout as written (the spec's time) and as waited (wall time).
struct Poll {
    interval: Duration,
    timeout: Duration,
    wall_interval: Duration,
    wall_timeout: Duration,
}

/// "1.2s", "350ms": a duration as people write them in specs.
pub fn fmt_dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.1}s")
    } else {
        format!("{:.0}ms", s * 1000.0)
    }
}

/// `max_elapsed` of a polled step bounds the whole poll (first attempt to success, in the spec's
/// time); each attempt evaluated it against one request, so it is re-judged here.
fn bound_whole_poll(
    asserts: &mut [crate::results::AssertionResult],
    spec_elapsed: Duration,
    step: &Step,
    scope: &Scope,
) {
    let Some(max) = step.expect.as_ref().and_then(|e| e.max_elapsed.as_ref()) else {
        return;
    };
    let Ok(max) = resolve_dur(max, scope) else {
        return;
    };
    for a in asserts.iter_mut().filter(|a| a.subject == "elapsed") {
        a.subject = "elapsed (whole poll)".into();
        a.actual = Some(json!(format!(
            "{:.1}ms",
            spec_elapsed.as_secs_f64() * 1000.0
        )));
        a.passed = spec_elapsed <= max;
    }
}

/// Runs steps in order; outside cleanup the first non-passing step stops the rest.
/// In cleanup every step runs whatever happened before (each one tries to release something).
pub async fn run_steps(
    steps: &[Step],
    scope: &mut Scope,
    ctx: &Ctx,
    cleanup: bool,
) -> (Vec<StepResult>, Status) {
    let mut out = Vec::with_capacity(steps.len());
    let mut status = Status::Passed;
    for step in steps {
        if !cleanup && ctx.cancel.is_cancelled() {
            out.push(skipped_step(
                step,
                &format!("not run: {}", super::INTERRUPTED),
            ));
            status = status.worst(Status::Error);
            break;
        }
        let r = step.run(scope, ctx, cleanup).await;
        let st = r.status;
        out.push(r);
        if st != Status::Skipped {
            status = status.worst(st);
        }
        if !cleanup && matches!(st, Status::Failed | Status::Error) {
            break;
        }
    }
    (out, status)
}

/// What the engine does with a step kind, implemented by the kind's type beside its executor
/// (`engine/http.rs` for `http` and `sim`, `kube.rs`, `fanout.rs`, `blocks.rs` for `foreach`,
/// `repeat` and `include`, `sleep.rs`, `assert.rs`). [`StepKind`]'s methods below delegate here.
pub(crate) trait Execute {
    /// The kind's name in the results.
    fn result_name(&self) -> StepKindName;

    /// Runs the step's action and reports what it observed: its `doc` is what `expect.json`
    /// and `capture` read. A kind that runs steps, or whose future is large and rarely runs,
    /// boxes it here (recursion; a plain request then allocates and moves nothing for it).
    async fn execute(
        &self,
        step: &Step,
        scope: &mut Scope,
        ctx: &Ctx,
        in_cleanup: bool,
    ) -> Result<Observation, ExecError>;

    /// Why the step cannot run on this target at all (it is then skipped).
    fn unavailable(&self, _ctx: &Ctx) -> Option<String> {
        None
    }

    /// It runs steps of its own, which handle an interrupt themselves: it gets no grace period.
    fn runs_steps(&self) -> bool {
        false
    }

    /// What it needs of the target: a spec with it is skipped on targets without.
    fn needs(&self) -> Option<Capability> {
        None
    }

    /// The poll it makes when the step has no `until` (a `kube wait`).
    fn own_poll(&self) -> Option<Until> {
        None
    }

    /// It may run on a fan-out's lanes on their own threads: it starts nothing (a shared
    /// watch, a connection task) bound to the lane's runtime, which ends with the lane.
    fn on_lane_threads(&self, _ctx: &Ctx) -> bool {
        false
    }

    /// Extra material for a failed step (Kubernetes objects, events, container statuses).
    async fn diagnose(&self, _obs: &Observation, _scope: &Scope, _ctx: &Ctx) -> Vec<Attachment> {
        Vec::new()
    }
}

impl StepKind {
    /// Runs the step's action: see `Execute::execute`.
    pub async fn execute(
        &self,
        step: &Step,
        scope: &mut Scope,
        ctx: &Ctx,
        in_cleanup: bool,
    ) -> Result<Observation, ExecError> {
        each_kind!(self, k => k.execute(step, scope, ctx, in_cleanup).await)
    }

    /// Extra material for a failed step: see `Execute::diagnose`.
    pub async fn diagnose(&self, obs: &Observation, scope: &Scope, ctx: &Ctx) -> Vec<Attachment> {
        each_kind!(self, k => k.diagnose(obs, scope, ctx).await)
    }

    /// See [`Execute::result_name`].
    pub(crate) fn result_name(&self) -> StepKindName {
        each_kind!(self, k => k.result_name())
    }

    /// See [`Execute::unavailable`].
    pub(crate) fn unavailable(&self, ctx: &Ctx) -> Option<String> {
        each_kind!(self, k => k.unavailable(ctx))
    }

    /// See [`Execute::runs_steps`].
    pub(crate) fn runs_steps(&self) -> bool {
        each_kind!(self, k => k.runs_steps())
    }

    /// See [`Execute::needs`].
    pub(crate) fn needs(&self) -> Option<Capability> {
        each_kind!(self, k => k.needs())
    }

    /// See [`Execute::own_poll`].
    pub(crate) fn own_poll(&self) -> Option<Until> {
        each_kind!(self, k => k.own_poll())
    }

    /// See [`Execute::on_lane_threads`].
    pub(crate) fn on_lane_threads(&self, ctx: &Ctx) -> bool {
        each_kind!(self, k => k.on_lane_threads(ctx))
    }
}

/// The step's label with its templates rendered, when that changes it. A template that cannot
/// be rendered yet (a variable the step itself captures) leaves the label as written: a name
/// never fails a step.
fn rendered_label(step: &Step, scope: &Scope) -> Option<String> {
    let label = step.label();
    if !crate::template::is_template(&label) {
        return None;
    }
    scope.render_str(&label).ok().filter(|r| *r != label)
}

/// `expect` checked on each object a `kube wait` by selector matched: one result per check,
/// passed when it holds for every match, else the first failing match's result naming the
/// object and how many fail.
fn evaluate_each(
    e: &crate::spec::Expect,
    items: &[Value],
    scope: &Scope,
    spec_dir: &std::path::Path,
    access: &crate::spec::Access,
    at: crate::spec::Pos,
) -> Result<Vec<crate::results::AssertionResult>, ExecError> {
    let mut per_item = Vec::with_capacity(items.len());
    for item in items {
        let obs = Observation {
            doc: item.clone().into(),
            ..Default::default()
        };
        per_item.push(evaluate(e, &obs, scope, spec_dir, access, at)?);
    }
    let Some(first) = per_item.first() else {
        return Ok(Vec::new());
    };
    let name = |i: usize| {
        items[i]
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    // Checks expand alike on every object unless a check's subject differs in shape (a
    // wildcard path); then every failing result is kept, each naming its object.
    if per_item.iter().any(|r| r.len() != first.len()) {
        let mut out = Vec::new();
        for (i, results) in per_item.into_iter().enumerate() {
            for mut a in results.into_iter().filter(|a| !a.passed) {
                a.subject = format!("{} (of {})", a.subject, name(i));
                out.push(a);
            }
        }
        return Ok(out);
    }
    let mut out = Vec::with_capacity(first.len());
    // `k` is a column: the same check across every match's row of `per_item`.
    #[allow(clippy::needless_range_loop)]
    for k in 0..first.len() {
        let failing: Vec<usize> = (0..items.len())
            .filter(|&i| !per_item[i][k].passed)
            .collect();
        let mut a = per_item[failing.first().copied().unwrap_or(0)][k].clone();
        if let Some(&i) = failing.first() {
            a.subject = format!("{} (of {})", a.subject, name(i));
            let also = failing.len() - 1;
            a.message = Some(format!(
                "{} of {} matches fail this check{}",
                failing.len(),
                items.len(),
                if also > 0 {
                    format!(
                        ": {}",
                        failing
                            .iter()
                            .take(5)
                            .map(|&i| name(i))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                } else {
                    String::new()
                }
            ));
        } else {
            a.subject = format!("{} (all {} matches)", a.subject, items.len());
        }
        out.push(a);
    }
    Ok(out)
}

/// The variables as a JSON document (subject of `path` checks in `assert` steps).
pub(super) fn vars_doc(scope: &Scope) -> Value {
    Value::Object(scope.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// One attempt's observation and its checks' results, or why it could not be made.
type Attempt = Result<(Observation, Vec<crate::results::AssertionResult>), ExecError>;

/// What a step's attempts came to: the attempt that gives the verdict, how many ran, and why the
/// last one fell short (a poll that ran out).
struct Attempts {
    outcome: Attempt,
    count: u32,
    last_mismatch: Option<String>,
}

impl Step {
    /// Runs the step (with polling when `until` is set). Never panics; errors become results.
    ///
    /// Only what every step needs lives in this future; a poll's loop and a failure's diagnosis
    /// are boxed apart, so a plain step (every request of a fan-out) allocates and moves little.
    pub async fn run(&self, scope: &mut Scope, ctx: &Ctx, in_cleanup: bool) -> StepResult {
        // Named from the scope the step starts in: the values it ran with. A fan-out's
        // iterations keep the name as written: their statistics are grouped by it.
        let named = if ctx.summarized {
            None
        } else {
            rendered_label(self, scope)
        };
        let mut res = self.run_unnamed(scope, ctx, in_cleanup).await;
        // A skipped step ran with no values: `DELETE /job/{{ job_id }}` skipped because no job
        // opened would read `DELETE /job/None`.
        if let Some(name) = named.filter(|_| res.status != Status::Skipped) {
            res.name_template = Some(std::mem::replace(&mut res.name, name));
        }
        res
    }

    async fn run_unnamed(&self, scope: &mut Scope, ctx: &Ctx, in_cleanup: bool) -> StepResult {
        let t0 = Instant::now();
        if let Some(cond) = &self.when {
            match scope.eval(cond) {
                Ok(v) if super::expect::truthy(&v) => {}
                Ok(_) => return skipped_step(self, &format!("`when: {cond}` is false")),
                Err(e) => return finish_error(self.new_result(), ExecError::from(e), t0),
            }
        }
        if let Some(why) = self.kind.unavailable(ctx) {
            return skipped_step(self, &why);
        }
        let poll = match self.poll_plan(scope, ctx) {
            Ok(p) => p,
            Err(e) => return finish_error(self.new_result(), e, t0),
        };
        let attempts = match &poll {
            None => Attempts {
                outcome: self.attempt(scope, ctx, in_cleanup).await,
                count: 1,
                last_mismatch: None,
            },
            Some(p) => Box::pin(self.poll(p, t0, scope, ctx, in_cleanup)).await,
        };
        let (mut res, failed) = self.conclude(attempts, poll.as_ref(), t0, scope, ctx);
        if let Some(obs) = failed {
            res = Box::pin(async move {
                res.attachments
                    .extend(self.kind.diagnose(&obs, scope, ctx).await);
                res
            })
            .await;
        }
        res.duration_ms = ms(t0.elapsed());
        res
    }

    /// A result with the step's identity and nothing else yet.
    fn new_result(&self) -> StepResult {
        StepResult {
            name: self.label(),
            kind: self.kind.result_name(),
            line: self.pos.line,
            col: self.pos.col,
            covers: self.covers.clone(),
            ..Default::default()
        }
    }

    /// The step's poll, if it polls: `until`, or the own timeout/interval (30s/1s) of a
    /// `kube wait`/`absent`.
    fn poll_plan(&self, scope: &Scope, ctx: &Ctx) -> Result<Option<Poll>, ExecError> {
        let implicit = if self.until.is_none() {
            self.kind.own_poll()
        } else {
            None
        };
        let Some(u) = self.until.as_ref().or(implicit.as_ref()) else {
            return Ok(None);
        };
        let interval = resolve_dur(&u.interval, scope)?;
        let timeout = resolve_dur(&u.timeout, scope)?;
        Ok(Some(Poll {
            interval,
            timeout,
            wall_interval: ctx.target.wall(interval).max(MIN_INTERVAL),
            wall_timeout: ctx.target.wall(timeout),
        }))
    }

    /// Attempts until the checks pass or the poll's timeout passes (which also bounds a request
    /// in flight).
    async fn poll(
        &self,
        p: &Poll,
        t0: Instant,
        scope: &mut Scope,
        ctx: &Ctx,
        in_cleanup: bool,
    ) -> Attempts {
        let deadline = t0 + p.wall_timeout;
        let mut count = 0u32;
        let mut last_mismatch: Option<String> = None;
        // The last completed attempt: when the deadline cuts a request in flight, the poll's
        // verdict is that attempt's (the condition did not hold), not the cut one's.
        let mut previous = None;
        let outcome = loop {
            count += 1;
            let attempt = match tokio::time::timeout_at(
                deadline,
                self.attempt(scope, ctx, in_cleanup),
            )
            .await
            {
                Ok(a) => a,
                Err(_) => match previous.take() {
                    Some(prev) => {
                        count -= 1;
                        break prev;
                    }
                    None => Err(ExecError::infra(format!(
                        "timeout: the poll's timeout ({}) passed while its first attempt was still waiting for an answer",
                        fmt_dur(p.timeout)
                    ))),
                },
            };
            let done = match &attempt {
                Ok((_, asserts)) => asserts.iter().all(|a| a.passed),
                Err(e) => e.kind != ErrorKind::Infra,
            };
            if done {
                break attempt;
            }
            last_mismatch = Some(match &attempt {
                Ok((obs, asserts)) => mismatch_text(obs, asserts),
                Err(e) => e.message.clone(),
            });
            if t0.elapsed() + p.wall_interval > p.wall_timeout {
                break attempt;
            }
            previous = Some(attempt);
            if count % 20 == 0 {
                ctx.progress(format!(
                    "{}: still polling after {} attempts ({})",
                    self.label(),
                    count,
                    fmt_dur(ctx.target.simulated(t0.elapsed()))
                ));
            }
            tokio::select! {
                biased; // one outcome when both are ready at once (same seed, same run)
                _ = ctx.cancel.cancelled(), if !in_cleanup => break Err(ExecError::interrupted()),
                _ = tokio::time::sleep(p.wall_interval) => {}
            }
        };
        Attempts {
            outcome,
            count,
            last_mismatch,
        }
    }

    /// The step's result from its attempts: checks, captures, status and message. A failed
    /// step's observation comes back too, for its diagnosis.
    fn conclude(
        &self,
        attempts: Attempts,
        poll: Option<&Poll>,
        t0: Instant,
        scope: &mut Scope,
        ctx: &Ctx,
    ) -> (StepResult, Option<Observation>) {
        let Attempts {
            outcome,
            count: attempts,
            last_mismatch,
        } = attempts;
        let mut res = self.new_result();
        let elapsed = t0.elapsed();
        // What the spec's durations mean: simulated time on a scaled simulator.
        let spec_elapsed = ctx.target.simulated(elapsed);
        let satisfied = matches!(&outcome, Ok((_, a)) if a.iter().all(|x| x.passed));
        if let Some(p) = poll {
            res.poll = Some(PollInfo {
                attempts,
                elapsed_ms: ms(elapsed),
                interval_ms: ms(p.interval),
                timeout_ms: ms(p.timeout),
                satisfied,
                simulated_elapsed_ms: ctx.target.is_scaled().then(|| ms(spec_elapsed)),
                last_mismatch: if satisfied { None } else { last_mismatch },
            });
        }
        if ctx.target.is_scaled() && (poll.is_some() || self.kind.waits()) {
            res.simulated_ms = Some(ms(spec_elapsed));
        }
        let (mut obs, assertions) = match outcome {
            Err(e) => return (finish_error(res, e, t0), None),
            Ok(o) => o,
        };
        // Moved, not copied: the observation is only read again by captures and diagnosis,
        // which need neither the excerpts nor the children.
        res.request = obs.request.take();
        res.response = obs.response.take();
        res.fanout = obs.fanout.take();
        res.attachments = std::mem::take(&mut obs.attachments);
        res.steps = std::mem::take(&mut obs.children);
        res.assertions = assertions;
        // A polled step's time is the whole poll (in the spec's time), not one request.
        if poll.is_some() {
            bound_whole_poll(&mut res.assertions, spec_elapsed, self, scope);
        }
        // Capture even after a failed expectation: cleanup may need the job id.
        let cap_errors = self.capture_into(&obs, scope, &mut res, attempts, spec_elapsed);
        ctx.note_secret_captures(&self.capture, &res.captures);
        res.status = if res.assertions.iter().all(|a| a.passed) && cap_errors.is_empty() {
            Status::Passed
        } else {
            Status::Failed
        };
        // A block whose inner step errored (not an assertion) is an error too.
        if res.status == Status::Failed
            && matches!(
                res.steps
                    .iter()
                    .find(|c| matches!(c.status, Status::Failed | Status::Error))
                    .map(|c| c.failing_leaf().0.status),
                Some(Status::Error)
            )
        {
            res.status = Status::Error;
        }
        // A fan-out iteration's response has no excerpt yet: only a failure's reason reads it.
        if ctx.summarized && res.status != Status::Passed {
            if let (Some(r), Some(text)) = (res.response.as_mut(), obs.body.as_deref()) {
                if r.body.is_none() && !text.is_empty() {
                    r.body = Some(super::http::excerpt(text).0);
                }
            }
        }
        if let Some(a) = res.assertions.iter().find(|a| !a.passed) {
            let timed_out = if satisfied || poll.is_none() {
                String::new()
            } else {
                format!(
                    " (still not met after {attempts} attempts in {})",
                    fmt_dur(spec_elapsed)
                )
            };
            let details = a.details().map(|d| format!("\n{d}")).unwrap_or_default();
            res.message = Some(format!("{}{timed_out}{details}", a.describe()));
            // A block says which item or run failed, and how: "run 3: $.page <= 2: found 3".
            if a.op == crate::results::AssertOp::EveryStepPasses {
                res.message = a.message.clone().or(res.message.take());
            }
        } else if let Some(e) = cap_errors.first() {
            res.message = Some(e.clone());
        }
        let failed = res.status == Status::Failed;
        (res, failed.then_some(obs))
    }

    async fn attempt(
        &self,
        scope: &mut Scope,
        ctx: &Ctx,
        in_cleanup: bool,
    ) -> Result<(Observation, Vec<crate::results::AssertionResult>), ExecError> {
        // A fan-out handles interrupts itself: its iterations stop and their cleanup still runs.
        // Cleanup is never cut short. Other kinds get a short grace: a request in flight when the
        // interrupt came may be creating a job, and its answer (the job id) is what lets cleanup
        // release it.
        // Blocks (foreach, repeat, include) handle interrupts through the steps they run.
        let mut obs = if in_cleanup || self.kind.runs_steps() {
            self.kind.execute(self, scope, ctx, in_cleanup).await?
        } else {
            let fut = self.kind.execute(self, scope, ctx, in_cleanup);
            tokio::pin!(fut);
            match ctx.cancel.with_grace(fut, INTERRUPT_GRACE).await {
                Some(r) => r?,
                None => return Err(ExecError::interrupted()),
            }
        };
        let mut assertions = std::mem::take(&mut obs.assertions);
        if let Some(e) = &self.expect {
            let access = &ctx.target.access;
            let checked = match &obs.each {
                Some(items) => evaluate_each(e, items, scope, &ctx.spec_dir, access, self.pos)?,
                None => evaluate(e, &obs, scope, &ctx.spec_dir, access, self.pos)?,
            };
            if assertions.is_empty() {
                assertions = checked;
            } else {
                assertions.extend(checked);
            }
        }
        Ok((obs, assertions))
    }

    /// Evaluates captures; returns the problems (a missing value without `default`).
    fn capture_into(
        &self,
        obs: &Observation,
        scope: &mut Scope,
        res: &mut StepResult,
        attempts: u32,
        elapsed: Duration,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        for (name, cap) in &self.capture {
            let detailed;
            let d = match cap {
                Capture::Path(p) => {
                    detailed = crate::spec::CaptureSpec {
                        path: Some(p.clone()),
                        ..Default::default()
                    };
                    &detailed
                }
                Capture::Detailed(d) => d,
            };
            let (value, default, what) = {
                {
                    let rendered = d
                        .path
                        .as_ref()
                        .map(|p| scope.render_str(p).unwrap_or_else(|_| p.clone()));
                    let http = obs.http.as_deref();
                    let v = if let Some(p) = &rendered {
                        let nodes = serde_json_path::JsonPath::parse(p).map(|jp| {
                            jp.query(obs.doc())
                                .all()
                                .into_iter()
                                .cloned()
                                .collect::<Vec<_>>()
                        });
                        match nodes {
                            Ok(n) if d.all => Some(Value::Array(n)),
                            Ok(n) => n.into_iter().next(),
                            Err(_) => None,
                        }
                    } else if let Some(h) = &d.header {
                        // A repeated header: the first value, or all of them with `all: true`.
                        let values: Vec<Value> = obs
                            .headers
                            .pairs()
                            .iter()
                            .filter(|(k, _)| k.eq_ignore_ascii_case(h))
                            .map(|(_, v)| json!(v))
                            .collect();
                        if d.all {
                            (!values.is_empty()).then_some(Value::Array(values))
                        } else {
                            values.into_iter().next()
                        }
                    } else if let Some(c) = &d.cookie {
                        http.and_then(|h| h.cookies.get(c))
                            .map(|c| c["value"].clone())
                    } else {
                        match d.from {
                            Some(CaptureFrom::Status) => obs.status.map(|s| json!(s)),
                            Some(CaptureFrom::Body) => obs.body.clone().map(Value::String),
                            Some(CaptureFrom::ElapsedMs) => Some(json!(ms(obs.elapsed))),
                            Some(CaptureFrom::PollMs) => Some(json!(ms(elapsed))),
                            Some(CaptureFrom::Attempts) => Some(json!(attempts)),
                            Some(CaptureFrom::Url) => http.map(|h| json!(h.url)),
                            Some(CaptureFrom::Redirects) => http.map(|h| json!(h.redirects)),
                            Some(CaptureFrom::Version) => http
                                .filter(|h| !h.version.is_empty())
                                .map(|h| json!(h.version)),
                            Some(CaptureFrom::Cookies) => http.map(|h| json!(h.cookies)),
                            None => None,
                        }
                    };
                    // `regex`: its first group (or whole match) in the captured text.
                    let v = match (&d.regex, v) {
                        (Some(re), Some(v)) => {
                            let text = match &v {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            match scope
                                .render_str(re)
                                .map_err(|e| e.message)
                                .and_then(|r| regex::Regex::new(&r).map_err(|e| e.to_string()))
                            {
                                Ok(rx) => rx
                                    .captures(&text)
                                    .and_then(|c| c.get(1).or(c.get(0)).map(|m| json!(m.as_str()))),
                                Err(e) => {
                                    errors.push(format!("capture `{name}`: bad regex: {e}"));
                                    continue;
                                }
                            }
                        }
                        (_, v) => v,
                    };
                    let what = d
                        .path
                        .clone()
                        .or(d.header.clone().map(|h| format!("header {h}")))
                        .or(d.cookie.clone().map(|c| format!("cookie {c}")))
                        .unwrap_or_else(|| match d.from {
                            Some(f) => serde_json::to_value(f)
                                .ok()
                                .and_then(|v| v.as_str().map(|s| format!("`from: {s}`")))
                                .unwrap_or_default(),
                            None => "nothing".into(),
                        });
                    let what = match &d.regex {
                        Some(re) => format!("{what} with regex `{re}`"),
                        None => what,
                    };
                    (v, d.default.clone(), what)
                }
            };
            match value.or(default) {
                Some(v) if cap.appends() => {
                    // A list variable that grows: a captured list is appended item by item.
                    let mut list = match scope.get(name) {
                        Some(Value::Array(a)) => a.clone(),
                        _ => Vec::new(),
                    };
                    match v {
                        Value::Array(items) => list.extend(items),
                        other => list.push(other),
                    }
                    res.captures
                        .insert(name.clone(), Value::Array(list.clone()));
                    scope.set(name.clone(), Value::Array(list));
                }
                Some(v) => {
                    res.captures.insert(name.clone(), v.clone());
                    scope.set(name.clone(), v);
                }
                None => errors.push(format!(
                    "capture `{name}`: {what} matched nothing in the response"
                )),
            }
        }
        errors
    }
}

fn mismatch_text(obs: &Observation, asserts: &[crate::results::AssertionResult]) -> String {
    let fails: Vec<String> = asserts
        .iter()
        .filter(|a| !a.passed)
        .map(|a| a.describe())
        .collect();
    let mut s = fails.join("; ");
    if let Some(r) = &obs.response {
        if let Some(b) = &r.body {
            // `…` marks the cut (redaction also hides a secret cut there).
            let mut b: String = b.chars().take(300).collect();
            if b.len() < r.body.as_ref().map_or(0, String::len) {
                b.push('…');
            }
            s.push_str(&format!(" [last response {}: {}]", r.status, b));
        }
    }
    s
}

fn finish_error(mut res: StepResult, e: ExecError, t0: Instant) -> StepResult {
    res.status = Status::Error;
    res.message = Some(e.message.clone());
    res.request = e.request.map(|r| *r);
    res.attachments = e.attachments;
    res.duration_ms = ms(t0.elapsed());
    res
}
