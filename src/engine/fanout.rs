//! `fanout`: run a block of steps `count` times with at most `concurrency` in flight,
//! aggregate latencies and failures, and check k6-style thresholds.
//!
//! Latency of an HTTP step is the time from handing the built request to the client until the
//! whole response body arrived (monotonic clock); waiting for a concurrency slot, the barrier,
//! templating and JSON parsing are outside it. Other steps count their own duration.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use futures::stream::StreamExt;
use hdrhistogram::Histogram;
use indexmap::IndexMap;
use serde_json::{json, Value};
use tokio::sync::Barrier;

use super::step::run_steps;
use super::{ms, resolve_dur, Ctx, ExecError, Observation};
use crate::results::{
    AssertionResult, Bucket, FanoutStats, LatencyStats, Status, StepResult, ThresholdResult,
};
use crate::spec::threshold::{Metric, Op, Rhs, Threshold};
use crate::spec::{Count, Fanout, Step, StepKind, VarMap};
use crate::template::Scope;

/// Histogram bucket upper bounds, in milliseconds.
const BUCKETS_MS: &[f64] = &[
    1.0,
    2.0,
    5.0,
    10.0,
    20.0,
    50.0,
    100.0,
    200.0,
    500.0,
    1000.0,
    2000.0,
    5000.0,
    10000.0,
    30000.0,
    f64::INFINITY,
];

fn op_holds(op: Op, a: f64, b: f64) -> bool {
    match op {
        Op::Lt => a < b,
        Op::Le => a <= b,
        Op::Gt => a > b,
        Op::Ge => a >= b,
        Op::Eq => (a - b).abs() < 1e-9,
        Op::Ne => (a - b).abs() >= 1e-9,
    }
}

pub(super) fn resolve_count(c: &Count, scope: &Scope, what: &str) -> Result<usize, ExecError> {
    let n = match c {
        Count::N(n) => *n,
        Count::Template(t) => {
            let v = scope.render_value(&Value::String(t.clone()))?;
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| {
                    ExecError::spec(format!(
                        "fanout {what} `{t}` rendered to {v}, not a whole number"
                    ))
                })?
        }
    };
    if n > crate::spec::MAX_FANOUT {
        return Err(ExecError::spec(format!(
            "fanout {what} {n} is too large: at most {}",
            crate::spec::MAX_FANOUT
        )));
    }
    usize::try_from(n).map_err(|_| ExecError::spec(format!("fanout {what} {n} is too large")))
}

/// What a step's figure in the fan-out statistics measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    /// One request's round trip (real time on every target: no simulator models network time).
    RequestLatency,
    /// A polled or waiting step: first attempt until its condition held (or the poll gave up),
    /// in the spec's time, i.e. simulated time on a scaled simulator.
    TimeUntilHeld,
    /// Any other step's whole duration.
    Duration,
}

impl Measure {
    fn label(self) -> &'static str {
        match self {
            Measure::RequestLatency => "request latency",
            Measure::TimeUntilHeld => "time until the condition held",
            Measure::Duration => "step duration",
        }
    }
}

/// The figure a step contributes to the fan-out's statistics and thresholds.
fn step_time(r: &StepResult) -> (f64, Measure) {
    if r.poll.is_some() || r.simulated_ms.is_some() {
        let mut t = r.simulated_ms.unwrap_or(r.duration_ms);
        // A poll that gave up did not hold within its timeout: it counts at least that long
        // (its last attempt may have started one interval before the timeout).
        if let Some(p) = r.poll.as_ref().filter(|p| !p.satisfied) {
            t = t.max(p.timeout_ms);
        }
        let m = if r.poll.is_some() {
            Measure::TimeUntilHeld
        } else {
            Measure::Duration
        };
        (t, m)
    } else if let Some(resp) = &r.response {
        (resp.elapsed_ms, Measure::RequestLatency)
    } else {
        (r.duration_ms, Measure::Duration)
    }
}

/// One step's figure in one iteration.
struct Sample {
    step: String,
    time: f64,
    measure: Measure,
    last_request: Option<f64>,
    /// A poll whose condition held (its time is a readiness sample for the reports).
    held: bool,
}

/// Times of successful polls kept per step for the readiness distribution (bounded).
const MAX_HELD_SAMPLES: usize = 10_000;

/// What one iteration left behind.
struct IterationOutcome {
    index: usize,
    started: bool,
    status: Status,
    reason: Option<String>,
    /// Per step: its time (see [`step_time`]) and, for polled requests, the last request's latency.
    latencies: Vec<Sample>,
    captures: IndexMap<String, Value>,
    /// Why its own cleanup failed (loads that release each iteration as it ends).
    cleanup_reason: Option<String>,
}

/// How long iterations still running at the end of a load's `duration` may go on, by default:
/// k6's `gracefulStop` default, so a load moved from k6 ends the same way.
const DEFAULT_GRACEFUL_STOP: Duration = Duration::from_secs(30);

/// Why an iteration still running after the load's `duration` and `graceful_stop` failed.
const CUT_REASON: &str = "cut: still running at the end of the load's duration + graceful_stop";

/// A threshold to judge the fan-out by: as written, or implicit (none was written).
struct Judged {
    src: String,
    th: Threshold,
    implicit: bool,
}

/// Why an implicit threshold applies (shown beside it when it is not met).
const IMPLICIT_NOTE: &str = "no `thresholds:` written, so every iteration must succeed; \
     write them to tolerate failures, e.g. `error_rate < 1%`";

/// Kinds of failure counted apart; the kinds beyond are counted together. A reason may hold an
/// id from an answer (`404 unknown job_id 18-3`): a long load must not keep one per iteration.
const MAX_REASONS: usize = 50;
const OTHER_REASONS: &str = "other reasons (more than 50 kinds)";

/// The kind of a failure: its reason with the numbers inside names and ids written `N`
/// (`Job/baby-analyzer-18-58 exists` -> `Job/baby-analyzer-N-N exists`), so that 200 jobs failing
/// alike count as one reason, not as 200. A number standing alone (a status, a count, a time)
/// is kept. The sample keeps the failures as they were.
fn reason_kind(reason: &str) -> std::borrow::Cow<'_, str> {
    let b = reason.as_bytes();
    let joins = |c: u8| c == b'-' || c == b'_' || c == b'/' || c.is_ascii_alphabetic();
    let mut out = String::new();
    let mut last = 0;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let before = start.checked_sub(1).map(|j| b[j]);
        let after = b.get(i).copied();
        if before.is_some_and(joins) || after.is_some_and(|c| c == b'-' || c == b'_') {
            out.push_str(&reason[last..start]);
            out.push('N');
            last = i;
        }
    }
    if last == 0 {
        return std::borrow::Cow::Borrowed(reason);
    }
    out.push_str(&reason[last..]);
    std::borrow::Cow::Owned(out)
}

/// Longest failure text a sample keeps.
const MAX_SAMPLE_CHARS: usize = 300;

/// `s` cut to at most `max` bytes at a character boundary, with `...` when cut.
fn bounded(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}...", &s[..end]))
}

/// What an error counts as: its kind when the message starts with one (`timeout: ...`,
/// `connect: ...`), else its root cause, the last part of the chain (`request to https://...:
/// error sending request: connection closed` counts as `connection closed`). Other reasons
/// (`503 capacity reached`, `assertion: ...`) are kinds already.
fn short_reason(full: &str) -> std::borrow::Cow<'_, str> {
    let Some(rest) = full.strip_prefix("error: ") else {
        return std::borrow::Cow::Borrowed(full);
    };
    let first = rest.split(':').next().unwrap_or("").trim();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    if !first.is_empty() && first.len() <= 40 && first.bytes().all(word) {
        return std::borrow::Cow::Owned(format!("error: {first}"));
    }
    let cause = rest.rsplit(": ").next().unwrap_or(rest).trim();
    std::borrow::Cow::Owned(format!("error: {}", bounded(cause, 80)))
}

/// Counts `n` failures of `reason` (as a sample shows it) under its kind ([`short_reason`],
/// [`reason_kind`]), a new kind only while there are fewer than [`MAX_REASONS`].
fn count_reason(by_reason: &mut IndexMap<String, usize>, reason: String, n: usize) {
    let short = short_reason(&reason);
    let reason = match reason_kind(&short) {
        std::borrow::Cow::Borrowed(_) => short.into_owned(),
        std::borrow::Cow::Owned(k) => k,
    };
    if let Some(c) = by_reason.get_mut(reason.as_str()) {
        *c += n;
        return;
    }
    let key = if by_reason.len() >= MAX_REASONS {
        OTHER_REASONS.to_string()
    } else {
        reason
    };
    *by_reason.entry(key).or_default() += n;
}

/// How many failures (or sample failures) of each kind are kept for the reader.
const MAX_SAMPLE_FAILURES: usize = 5;

/// An open-loop schedule: iterations per simulated second, constant or ramped by stages.
struct OpenLoop {
    /// Rate before the first stage (or throughout, without stages).
    base: f64,
    /// (end of the stage in spec seconds, rate at that end).
    stages: Vec<(f64, f64)>,
    max_in_flight: usize,
}

impl OpenLoop {
    fn resolve(f: &Fanout, scope: &Scope) -> Result<Option<OpenLoop>, ExecError> {
        if f.rate.is_none() && f.stages.is_empty() {
            return Ok(None);
        }
        let rate = |r: &str| -> Result<f64, ExecError> {
            crate::spec::parse_rate(&scope.render_str(r)?).map_err(ExecError::spec)
        };
        let base = f.rate.as_deref().map(rate).transpose()?.unwrap_or(0.0);
        let mut stages = Vec::new();
        let mut t = 0.0;
        for st in &f.stages {
            t += resolve_dur(&st.duration, scope)?.as_secs_f64();
            stages.push((t, rate(&st.rate)?));
        }
        let max_in_flight = match &f.max_in_flight {
            Some(c) => resolve_count(c, scope, "max_in_flight")?.max(1),
            None => 1000,
        };
        Ok(Some(OpenLoop {
            base,
            stages,
            max_in_flight,
        }))
    }

    /// When the stages end (spec seconds); a plain rate runs until `duration`/`count`.
    fn stages_end(&self) -> f64 {
        self.stages.last().map(|s| s.0).unwrap_or(f64::INFINITY)
    }

    /// When start `k` (0-based) is due, in spec seconds, or never. The rate is linear within
    /// each stage (from the previous stage's rate, the first from `base`) and holds after the
    /// last; start `k` is due when the arrivals so far, the area under the rate, reach `k`, so a
    /// load runs as many iterations as that area whatever the shape (k6's ramping arrival rate).
    /// The first start is due as soon as the rate is above 0.
    fn start_of(&self, k: usize) -> Option<f64> {
        let k = k as f64;
        let (mut t0, mut r0, mut n0) = (0.0, self.base, 0.0);
        for &(t1, r1) in &self.stages {
            let span = t1 - t0;
            let n1 = n0 + (r0 + r1) / 2.0 * span;
            let due_here = if k == 0.0 {
                r0 > 0.0 || r1 > 0.0
            } else {
                n1 >= k
            };
            if due_here && span > 0.0 {
                // n0 + r0·x + a·x²/2 = k, solved in a form without cancellation for either sign
                // of the slope `a` (x = 2d / (r0 + sqrt(r0² + 2ad))).
                let (d, a) = ((k - n0).max(0.0), (r1 - r0) / span);
                let root = (r0 * r0 + 2.0 * a * d).max(0.0).sqrt();
                let x = if d == 0.0 { 0.0 } else { 2.0 * d / (r0 + root) };
                return Some(t0 + x.clamp(0.0, span));
            }
            (t0, r0, n0) = (t1, r1, n1);
        }
        if r0 > 0.0 {
            Some(t0 + (k - n0).max(0.0) / r0)
        } else {
            None
        }
    }
}

/// A short, groupable reason: `503 capacity reached`, `error: timeout`, `assertion: $.status equals`.
fn failure_reason(steps: &[StepResult]) -> String {
    let Some(bad) = steps
        .iter()
        .find(|s| matches!(s.status, Status::Failed | Status::Error))
    else {
        return "unknown".into();
    };
    if bad.status == Status::Error {
        // In full (its first line, bounded): the samples show it; the count groups it by kind.
        let m = bad.message.as_deref().unwrap_or("error");
        let line = m.lines().next().unwrap_or("error").trim();
        return format!("error: {}", bounded(line, MAX_SAMPLE_CHARS));
    }
    if let Some(r) = &bad.response {
        if r.status >= 400 {
            let detail = r
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
                .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_string))
                .map(|d| d.split(':').next().unwrap_or("").trim().to_lowercase())
                .filter(|d| !d.is_empty() && d.len() <= 40);
            return match detail {
                Some(d) => format!("{} {d}", r.status),
                None => format!("status {}", r.status),
            };
        }
    }
    match bad.assertions.iter().find(|a| !a.passed) {
        Some(a) => format!("assertion: {} {}", a.subject, a.op),
        None => bad.message.clone().unwrap_or_else(|| "failed".into()),
    }
}

/// Runs the fan-out. Boxed, as a `dyn` future: its iterations' steps may hold fan-outs, and
/// only a named type ends that cycle (for the compiler's `Send` check too).
pub fn execute<'a>(
    f: &'a Fanout,
    step: &'a Step,
    scope: &'a mut Scope,
    ctx: &'a Ctx,
) -> futures::future::BoxFuture<'a, Result<Observation, ExecError>> {
    Box::pin(run_fanout(f, step, scope, ctx))
}

async fn run_fanout(
    f: &Fanout,
    step: &Step,
    scope: &mut Scope,
    ctx: &Ctx,
) -> Result<Observation, ExecError> {
    // Without `count`, a `duration` bounds the run (validate requires one of them).
    let count = match &f.count {
        Some(c) => resolve_count(c, scope, "count")?,
        None => usize::MAX,
    };
    let run_for = f
        .duration
        .as_ref()
        .map(|d| resolve_dur(d, scope))
        .transpose()?;
    let open_loop = OpenLoop::resolve(f, scope)?;
    let concurrency = match &f.concurrency {
        Some(c) => resolve_count(c, scope, "concurrency")?.max(1),
        None if count == usize::MAX => 1,
        None => count.max(1),
    };
    // A load that runs for a time releases each iteration as soon as it is done (bounded memory);
    // a counted block keeps what it opened open together until every iteration finished.
    let cleanup_each = run_for.is_some() || open_loop.is_some();
    // Spec durations are the simulated system's time: wait their wall equivalent.
    let ramp_up = f
        .ramp_up
        .as_ref()
        .map(|d| resolve_dur(d, scope).map(|d| ctx.target.wall(d)))
        .transpose()?;
    let deadline = f
        .deadline
        .as_ref()
        .map(|d| resolve_dur(d, scope).map(|d| ctx.target.wall(d)))
        .transpose()?;
    let mut thresholds: Vec<Judged> = f
        .thresholds
        .iter()
        .map(|t| {
            let r = scope.render_str(t)?;
            Threshold::parse(&r)
                .map(|th| Judged {
                    src: r,
                    th,
                    implicit: false,
                })
                .map_err(ExecError::spec)
        })
        .collect::<Result<_, _>>()?;
    // Without written thresholds, a failing iteration (or a dropped start) fails the fan-out:
    // a load that tolerates errors says how many (`error_rate < 1%`).
    if thresholds.is_empty() {
        let implicit = match open_loop {
            Some(_) => &["failed == 0", "dropped == 0"][..],
            None => &["failed == 0"][..],
        };
        for src in implicit {
            thresholds.push(Judged {
                src: (*src).into(),
                th: Threshold::parse(src).expect("a valid built-in threshold"),
                implicit: true,
            });
        }
    }
    // A load that runs for a time ends there: what still runs then gets `graceful_stop` more,
    // then is cut (and its cleanup runs). Spec time, like `duration`; on a time-scaled simulator
    // at least the lesser of itself and 1 s of wall time, as requests take real time there.
    let load_end = run_for.map(|d| d.as_secs_f64()).or_else(|| {
        open_loop
            .as_ref()
            .map(OpenLoop::stages_end)
            .filter(|e| e.is_finite())
    });
    let grace = match &f.graceful_stop {
        Some(g) => resolve_dur(g, scope)?,
        None => DEFAULT_GRACEFUL_STOP,
    };
    let grace = ctx
        .target
        .wall(grace)
        .max(grace.min(Duration::from_secs(1)));

    // Workers start iterations as they finish the last one, and fold each into streaming
    // statistics, so memory does not grow with `count` (beyond what cleanup needs to remember).
    // With every iteration in flight at once, a barrier makes "200 at once" really simultaneous.
    let barrier = (concurrency >= count
        && ramp_up.is_none()
        && count > 1
        && run_for.is_none()
        && open_loop.is_none())
    .then(|| Arc::new(Barrier::new(count)));
    let t0 = Instant::now();
    let end = deadline.map(|d| t0 + d);
    let cut = load_end.map(|h| t0 + ctx.target.wall(Duration::from_secs_f64(h)) + grace);
    let stop_starting_at = run_for.map(|d| t0 + ctx.target.wall(d));
    let keep = KeepCaptures::for_step(f, step, count);
    let mut capture_names: Vec<String> = Vec::new();
    for st in &f.steps {
        for k in st.capture.keys() {
            if !capture_names.contains(k) {
                capture_names.push(k.clone());
            }
        }
    }
    // Iterations run as tasks of their own on every worker thread (each drives its own
    // connection, see crate::targets::h1): what they need is owned, not borrowed.
    let plan = Arc::new(Plan {
        steps: f.steps.clone(),
        cleanup: if cleanup_each {
            f.cleanup.clone()
        } else {
            Vec::new()
        },
        base: Arc::new(scope.flatten()),
        ctx: Ctx {
            summarized: true,
            ..ctx.fork()
        },
        capture_names,
        barrier,
        ramp_up,
        t0,
        count,
        end,
        cut,
    });
    // Lanes share the iteration numbers and split the concurrency; one per worker thread. Each
    // tallies its own iterations (no lock shared between cores), merged when all are done.
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    let lanes = match open_loop {
        None => workers.clamp(1, concurrency),
        Some(_) => 1,
    };
    let tally = Arc::new(Tally {
        label: step.label(),
        count,
        live: count == usize::MAX || open_loop.is_some(),
        step_tick: (count / 10).max(1),
        keep,
        keep_for_cleanup: !cleanup_each && !f.cleanup.is_empty(),
        t0,
        finished: AtomicUsize::new(0),
        next_live_ms: std::sync::atomic::AtomicU64::new(0),
        lanes: (0..lanes).map(|_| Default::default()).collect(),
    });
    let scheduled_count = match &open_loop {
        None => {
            let next = Arc::new(AtomicUsize::new(0));
            // Stops the lanes if this fan-out is dropped while lanes run on threads of their own
            // (a task is aborted with its JoinSet; a thread has to be told).
            let lanes_stop = plan.ctx.cancel.child();
            let lane = |lane: usize, width: usize| {
                let (plan, tally, next) = (plan.clone(), tally.clone(), next.clone());
                let cancel = lanes_stop.child();
                async move {
                    // The lane's own stop signal: its steps' waits share no lock with another
                    // lane's (see super::cancel).
                    let ctx = Ctx {
                        cancel,
                        ..plan.ctx.fork()
                    };
                    let next_number = || {
                        if stop_starting_at.is_some_and(|e| Instant::now() >= e) {
                            return None;
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        (i < count).then_some(i)
                    };
                    // `width` workers, each running iterations one after another: an iteration
                    // is not a new future to allocate and queue, just the next loop round.
                    let worker = || async {
                        // Reused from iteration to iteration: its scope and its list of samples.
                        let (mut scope, mut spare) = (Scope::default(), Vec::new());
                        while let Some(i) = next_number() {
                            let o = run_iteration(&plan, &ctx, &mut scope, i, None, spare).await;
                            spare = tally.take(lane, o, &ctx);
                        }
                    };
                    let mut workers: futures::stream::FuturesUnordered<_> =
                        (0..width).map(|_| worker()).collect();
                    while workers.next().await.is_some() {}
                }
            };
            if lanes == 1 {
                // One lane (sequential, or one worker): run it here, without a task hand-over.
                lane(0, concurrency).await;
            } else {
                let widths =
                    (0..lanes).map(|l| concurrency / lanes + usize::from(l < concurrency % lanes));
                if lanes_on_own_threads(f, ctx) {
                    let stop = StopOnDrop(Some(lanes_stop.clone()));
                    let lanes = widths.enumerate().map(|(l, w)| lane(l, w)).collect();
                    run_on_own_threads(lanes).await;
                    stop.disarm();
                } else {
                    let mut set = tokio::task::JoinSet::new();
                    for (l, w) in widths.enumerate() {
                        set.spawn(lane(l, w));
                    }
                    join_all(set).await;
                }
            }
            tally.finished()
        }
        Some(ol) => {
            // Starts follow the schedule whatever the answers; a start that finds
            // `max_in_flight` iterations running is dropped, never delayed.
            let mut inflight = tokio::task::JoinSet::new();
            let mut i = 0usize;
            let horizon = run_for.map(|d| d.as_secs_f64()).unwrap_or(ol.stages_end());
            let collect = |r: Result<IterationOutcome, tokio::task::JoinError>| match r {
                Ok(o) => {
                    tally.take(0, o, ctx);
                }
                Err(e) => resume(e),
            };
            while let Some(at_spec) = ol
                .start_of(i)
                .filter(|t| i < count && *t < horizon && !ctx.cancel.is_cancelled())
            {
                let at = t0 + ctx.target.wall(Duration::from_secs_f64(at_spec));
                if end.is_some_and(|e| at >= e) {
                    break;
                }
                loop {
                    // Biased, so that what is ready at the same instant (on the virtual clock, a
                    // finished iteration and the next start) is taken in one order, run after run.
                    tokio::select! {
                        biased;
                        _ = ctx.cancel.cancelled() => break,
                        Some(r) = inflight.join_next(), if !inflight.is_empty() => collect(r),
                        _ = tokio::time::sleep_until(at) => break,
                    }
                }
                if ctx.cancel.is_cancelled() {
                    break;
                }
                if inflight.len() >= ol.max_in_flight {
                    tally.lock(0).agg.dropped += 1;
                } else {
                    let plan = plan.clone();
                    inflight.spawn(async move {
                        let mut scope = Scope::default();
                        run_iteration(&plan, &plan.ctx, &mut scope, i, Some(at), Vec::new()).await
                    });
                }
                i += 1;
            }
            while let Some(r) = inflight.join_next().await {
                collect(r);
            }
            i
        }
    };
    let (mut agg, pending_cleanup) = tally.merged();
    let count = if count == usize::MAX || open_loop.is_some() {
        scheduled_count
    } else {
        count
    };
    let duration = t0.elapsed();
    // Cleanup phase: every iteration's cleanup, with its own variables, after all steps finished
    // (what the block opened was open together). Runs after failures, deadlines and Ctrl-C too.
    if !f.cleanup.is_empty() && !cleanup_each {
        let base = &plan.base;
        let mut cleanups = futures::stream::iter(pending_cleanup)
            .map(|(i, caps)| async move {
                let mut it_scope = iteration_scope(base, i, &caps);
                let (res, cst) = run_steps(&f.cleanup, &mut it_scope, ctx, true).await;
                matches!(cst, Status::Failed | Status::Error).then(|| (i, failure_reason(&res)))
            })
            .buffer_unordered(concurrency);
        while let Some(failed) = cleanups.next().await {
            if let Some((i, reason)) = failed {
                agg.cleanup_failed(i, reason);
            }
        }
    }
    let mut stats = agg.finish(count, concurrency, duration);
    if ctx.target.is_scaled() {
        stats.simulated_duration_ms = Some(ms(ctx.target.simulated(duration)));
    }
    let mut assertions = check_thresholds(&thresholds, &stats, count, step.pos.line);
    // A cleanup that failed may have left jobs open: never a pass, threshold or not.
    if stats.cleanup_failures > 0 {
        assertions.push(AssertionResult {
            line: f
                .cleanup
                .first()
                .map(|c| c.pos.line)
                .unwrap_or(step.pos.line),
            subject: "fan-out cleanup".into(),
            subject_template: None,
            op: "released every iteration".into(),
            expected: json!(0),
            actual: Some(json!(format!(
                "{} of {} iterations' cleanup failed (what they opened may still be open): {}",
                stats.cleanup_failures,
                count,
                crate::results::reasons_text(&stats.cleanup_by_reason)
            ))),
            passed: false,
            message: None,
        });
    }
    stats.thresholds = thresholds
        .iter()
        .zip(&assertions)
        .map(|(t, a)| ThresholdResult {
            expr: t.src.clone(),
            implicit: t.implicit,
            value: a
                .actual
                .as_ref()
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            passed: a.passed,
        })
        .collect();
    let doc = serde_json::to_value(&stats).unwrap_or(Value::Null);
    Ok(Observation {
        doc: doc.into(),
        elapsed: duration,
        assertions,
        fanout: Some(Box::new(stats)),
        ..Default::default()
    })
}

/// What every iteration of one fan-out needs, owned (iterations are tasks of their own).
struct Plan {
    steps: Vec<Step>,
    /// Each iteration's own cleanup (loads that release each iteration as it ends), else empty.
    cleanup: Vec<Step>,
    /// The fan-out's variables, under each iteration's own.
    base: Arc<VarMap>,
    ctx: Ctx,
    capture_names: Vec<String>,
    barrier: Option<Arc<Barrier>>,
    ramp_up: Option<Duration>,
    t0: Instant,
    count: usize,
    end: Option<Instant>,
    /// When iterations still running past the load's `duration` and `graceful_stop` are cut.
    cut: Option<Instant>,
}

/// Runs iteration `i` (scheduled at `scheduled` in an open loop).
async fn run_iteration(
    plan: &Plan,
    ctx: &Ctx,
    it_scope: &mut Scope,
    i: usize,
    scheduled: Option<Instant>,
    mut latencies: Vec<Sample>,
) -> IterationOutcome {
    latencies.clear();
    let mut out = IterationOutcome {
        index: i,
        started: false,
        status: Status::Passed,
        reason: None,
        latencies,
        captures: IndexMap::new(),
        cleanup_reason: None,
    };
    if let Some(r) = plan.ramp_up {
        let at = plan.t0 + r.mul_f64(i as f64 / plan.count.max(1) as f64);
        tokio::time::sleep_until(at).await;
    }
    if let Some(b) = &plan.barrier {
        b.wait().await;
    }
    if ctx.cancel.is_cancelled() || plan.end.is_some_and(|e| Instant::now() >= e) {
        out.status = Status::Error;
        out.reason = Some(
            if ctx.cancel.is_cancelled() {
                "not started: interrupted"
            } else {
                "not started: deadline passed"
            }
            .into(),
        );
        return out;
    }
    out.started = true;
    // Open loop: the time between the scheduled and the real start counts (no
    // coordinated omission); it is added to the first step's figure below.
    let mut lag_ms = scheduled.map(|at| ms(Instant::now().saturating_duration_since(at)));
    restart_iteration(it_scope, &plan.base, i);
    // The steps' future is made where it is awaited: held in a local first, it took room in
    // this future beside the awaited copy, and was moved once more per iteration.
    let stop = match (plan.end, plan.cut) {
        (Some(e), Some(c)) => Some(e.min(c)),
        (e, c) => e.or(c),
    };
    let (results, status) = match stop {
        Some(e) => {
            match tokio::time::timeout_at(e, run_steps(&plan.steps, it_scope, ctx, false)).await {
                Ok(r) => r,
                Err(_) => (Vec::new(), Status::Error),
            }
        }
        None => run_steps(&plan.steps, it_scope, ctx, false).await,
    };
    // Captured so far, also by a run the deadline cut short: cleanup needs the job id.
    for name in &plan.capture_names {
        if let Some(v) = it_scope.get(name) {
            out.captures.insert(name.clone(), v.clone());
        }
    }
    out.status = status;
    if matches!(status, Status::Failed | Status::Error) {
        let failed_step = results
            .iter()
            .any(|r| matches!(r.status, Status::Failed | Status::Error));
        out.reason = Some(if failed_step {
            failure_reason(&results)
        } else if ctx.cancel.is_cancelled() {
            // Stopped between steps (or in a sleep) by a signal: no step failed.
            format!("error: {}", super::INTERRUPTED)
        } else if !results.is_empty() {
            failure_reason(&results)
        } else if stop.is_some() && stop == plan.cut {
            CUT_REASON.into()
        } else {
            "error: deadline passed".into()
        });
    }
    for r in results {
        if r.status == Status::Skipped {
            continue;
        }
        let (mut time, measure) = step_time(&r);
        time += lag_ms.take().unwrap_or(0.0);
        let last_request = r
            .poll
            .as_ref()
            .and(r.response.as_ref())
            .map(|x| x.elapsed_ms);
        out.latencies.push(Sample {
            step: r.name,
            time,
            measure,
            last_request,
            held: r.poll.as_ref().is_some_and(|p| p.satisfied),
        });
    }
    if !plan.cleanup.is_empty() {
        let (res, cst) = run_steps(&plan.cleanup, it_scope, ctx, true).await;
        if matches!(cst, Status::Failed | Status::Error) {
            out.cleanup_reason = Some(failure_reason(&res));
        }
    }
    out
}

/// Where iterations report as they finish: the statistics, and what cleanup needs later.
struct Tally {
    label: String,
    count: usize,
    /// A load that runs for a time: a live line every few seconds rather than a tenth-count.
    live: bool,
    step_tick: usize,
    keep: KeepCaptures,
    /// Remember each started iteration's captures for the cleanup phase.
    keep_for_cleanup: bool,
    t0: Instant,
    /// Iterations finished, in all lanes.
    finished: AtomicUsize,
    /// When the next live line is due (ms since `t0`).
    next_live_ms: std::sync::atomic::AtomicU64,
    /// Each lane's own statistics: a lane's workers run in one task, so its lock is never
    /// contended, and no cache line travels between cores per iteration.
    lanes: Vec<std::sync::Mutex<TallyState>>,
}

#[derive(Default)]
struct TallyState {
    agg: Aggregate,
    pending_cleanup: PendingCleanup,
}

/// What each started iteration's cleanup needs: its number and captures (its scope is rebuilt
/// from them).
type PendingCleanup = Vec<(usize, IndexMap<String, Value>)>;

/// How often a load that runs for a time says where it is.
const LIVE_EVERY_MS: u64 = 2000;

impl Tally {
    fn lock(&self, lane: usize) -> std::sync::MutexGuard<'_, TallyState> {
        self.lanes[lane].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finished(&self) -> usize {
        self.finished.load(Ordering::Relaxed)
    }

    /// Takes in one iteration; gives back its emptied list of samples, for the next one.
    fn take(&self, lane: usize, o: IterationOutcome, ctx: &Ctx) -> Vec<Sample> {
        let spare = {
            let mut st = self.lock(lane);
            if self.keep_for_cleanup && o.started {
                st.pending_cleanup.push((o.index, o.captures.clone()));
            }
            st.agg.add(o, &self.keep)
        };
        let finished = self.finished.fetch_add(1, Ordering::Relaxed) + 1;
        if self.live {
            // Long loads: a live line every few seconds, made only when one is due.
            let now_ms = self.t0.elapsed().as_millis() as u64;
            let due = self.next_live_ms.load(Ordering::Relaxed);
            if now_ms >= due
                && self
                    .next_live_ms
                    .compare_exchange(
                        due,
                        now_ms + LIVE_EVERY_MS,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                let line = self.live_line(ctx);
                ctx.progress(line);
            }
        } else if finished % self.step_tick == 0 && finished < self.count {
            ctx.progress(format!(
                "{}: {}/{} iterations done",
                self.label, finished, self.count
            ));
        }
        spare
    }

    /// "load: 12000 iterations, 198.7/s, 3 failed, 0 dropped, p95(configure) 41ms", over all lanes.
    fn live_line(&self, ctx: &Ctx) -> String {
        let mut view = Aggregate::default();
        for lane in 0..self.lanes.len() {
            view.merge_counts(&self.lock(lane).agg);
        }
        view.live_line(&self.label, self.t0.elapsed(), ctx)
    }

    /// Every lane's statistics and pending cleanups, in one.
    fn merged(&self) -> (Aggregate, PendingCleanup) {
        let mut agg = Aggregate::default();
        let mut pending = Vec::new();
        for lane in 0..self.lanes.len() {
            let mut st = self.lock(lane);
            agg.merge(std::mem::take(&mut st.agg));
            pending.append(&mut st.pending_cleanup);
        }
        (agg, pending)
    }
}

/// A step's statistics, added on its first sample. Found by comparing names: a fan-out has a
/// few steps, and hashing the name of every sample cost more than reading the list.
fn step_agg<'a>(
    steps: &'a mut IndexMap<String, StepAgg>,
    name: &str,
    measure: Measure,
) -> &'a mut StepAgg {
    let i = match steps.iter().position(|(k, _)| k == name) {
        Some(i) => i,
        None => steps.insert_full(name.to_string(), StepAgg::new(measure)).0,
    };
    &mut steps[i]
}

/// Whether a fan-out's lanes may each run on a thread and runtime of their own, as load tools
/// do (oha's default): each lane's requests, timers and connections then stay on one core, with
/// no hand-over between threads. Measured on a 100,000-request fan-out against the simulator:
/// 14 % less user CPU and 8 % less wall time than lanes as tasks of the shared runtime.
///
/// Only for plain requests to the target's own `http://` base, sleeps and checks: what else a
/// step starts (a Kubernetes watch shared by later steps, a reqwest connection task) would be
/// bound to the lane's runtime and end with it.
fn lanes_on_own_threads(f: &Fanout, ctx: &Ctx) -> bool {
    let target = &ctx.target;
    // On the virtual clock every task must be on the one runtime whose clock it is: time
    // would jump while a lane on another thread works.
    if target.is_virtual() {
        return false;
    }
    let plain_http = |base: Option<&str>| {
        target.h1.is_some()
            && base
                .and_then(|b| url::Url::parse(b).ok())
                .is_some_and(|u| crate::targets::h1::H1Client::handles(&u))
    };
    f.steps.iter().chain(&f.cleanup).all(|st| match &st.kind {
        StepKind::Http(r) => r.path.starts_with('/') && plain_http(target.base_url.as_deref()),
        StepKind::Sim(r) => r.path.starts_with('/') && plain_http(target.sim_url.as_deref()),
        StepKind::Sleep(_) | StepKind::Assert(_) => true,
        _ => false,
    })
}

/// Cancels its signal when dropped, unless disarmed once the work it guards has ended.
struct StopOnDrop(Option<super::Cancel>);

impl StopOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.cancel();
        }
    }
}

/// Runs each future on a thread of its own with a single-threaded runtime and its own idle
/// connections ([`crate::targets::h1::with_lane_pool`]), and waits for all of them. A panic in
/// one comes back here, as a lane task's would. A lane whose thread cannot be started runs as
/// a task of the caller's runtime instead.
async fn run_on_own_threads<F>(lanes: Vec<F>)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    type Outcome = std::thread::Result<()>;
    let mut done: Vec<tokio::sync::oneshot::Receiver<Outcome>> = Vec::new();
    let mut fallback = tokio::task::JoinSet::new();
    for (i, lane) in lanes.into_iter().enumerate() {
        let (tx, rx) = tokio::sync::oneshot::channel::<Outcome>();
        // The lane travels in a slot, so that it can still run as a task if no thread starts.
        let slot = Arc::new(std::sync::Mutex::new(Some(lane)));
        let theirs = slot.clone();
        let started = std::thread::Builder::new()
            .name(format!("focusqa-lane-{i}"))
            .spawn(move || {
                let Some(lane) = theirs.lock().unwrap_or_else(|e| e.into_inner()).take() else {
                    return;
                };
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a lane's runtime (a thread, an epoll and a timer)");
                    crate::targets::h1::with_lane_pool(|| rt.block_on(lane));
                }));
                let _ = tx.send(outcome);
            });
        match started {
            Ok(_) => done.push(rx),
            Err(_) => {
                if let Some(lane) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    fallback.spawn(lane);
                }
            }
        }
    }
    for rx in done {
        if let Ok(Err(panic)) = rx.await {
            std::panic::resume_unwind(panic);
        }
    }
    join_all(fallback).await;
}

/// Waits for every task of a set; a task's panic goes on in this one (where it is contained
/// like any step's), and dropping the set on the way aborts the others.
async fn join_all<T: 'static>(mut set: tokio::task::JoinSet<T>) {
    while let Some(r) = set.join_next().await {
        if let Err(e) = r {
            resume(e);
        }
    }
}

fn resume(e: tokio::task::JoinError) {
    if e.is_panic() {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// An iteration's variables: the fan-out's scope, its `index`/`iteration`, and its captures.
fn iteration_scope(base: &Arc<VarMap>, i: usize, captures: &IndexMap<String, Value>) -> Scope {
    let mut sc = Scope::default();
    restart_iteration(&mut sc, base, i);
    for (k, v) in captures {
        sc.set(k.clone(), v.clone());
    }
    sc
}

/// `scope` as iteration `i` starts: the fan-out's variables under its `index` and `iteration`.
fn restart_iteration(scope: &mut Scope, base: &Arc<VarMap>, i: usize) {
    scope.restart(base, &[("index", json!(i)), ("iteration", json!(i + 1))]);
}

/// Up to this many iterations, every captured value is kept in the statistics (reports show
/// them); beyond, only the captures a threshold or the fan-out's own capture/expect uses.
const KEEP_ALL_CAPTURES_UP_TO: usize = 10_000;

/// Which captured values the statistics keep.
enum KeepCaptures {
    All,
    Only(HashSet<String>),
}

impl KeepCaptures {
    fn for_step(f: &Fanout, step: &Step, count: usize) -> KeepCaptures {
        if count <= KEEP_ALL_CAPTURES_UP_TO {
            return KeepCaptures::All;
        }
        // `capture: {ids: $.captures.job_id}` or a check on `$.captures...` reads them all.
        let doc_paths = step
            .capture
            .values()
            .filter_map(|c| match c {
                crate::spec::Capture::Path(p) => Some(p.clone()),
                crate::spec::Capture::Detailed(d) => d.path.clone(),
            })
            .chain(
                step.expect
                    .iter()
                    .flat_map(|e| e.json.iter().filter_map(|c| c.path.clone())),
            );
        if doc_paths.into_iter().any(|p| p.contains("captures")) {
            return KeepCaptures::All;
        }
        KeepCaptures::Only(
            f.thresholds
                .iter()
                .filter_map(|t| Threshold::parse(t).ok())
                .filter_map(|t| match t {
                    Threshold::Unique(name) => Some(name),
                    _ => None,
                })
                .collect(),
        )
    }

    fn keeps(&self, name: &str) -> bool {
        match self {
            KeepCaptures::All => true,
            KeepCaptures::Only(names) => names.contains(name),
        }
    }
}

/// Streaming statistics of one step: an HDR histogram (3 significant digits) in microseconds.
struct StepAgg {
    hist: Histogram<u64>,
    sum_ms: f64,
    measure: Measure,
    held: Vec<f64>,
}

impl StepAgg {
    fn new(measure: Measure) -> StepAgg {
        StepAgg {
            hist: Histogram::new(3).expect("3 significant digits is a valid precision"),
            sum_ms: 0.0,
            measure,
            held: Vec::new(),
        }
    }

    /// Takes in the same step's statistics from another lane.
    fn merge(&mut self, other: StepAgg) {
        // Auto-resizing histograms take any other's values.
        let _ = self.hist.add(&other.hist);
        self.sum_ms += other.sum_ms;
        let room = MAX_HELD_SAMPLES.saturating_sub(self.held.len());
        self.held.extend(other.held.into_iter().take(room));
    }

    fn record(&mut self, v_ms: f64) {
        let us = (v_ms.max(0.0) * 1000.0).round() as u64;
        // Auto-resizing histograms only refuse values beyond u64 range: nothing to lose here.
        let _ = self.hist.record(us.max(1));
        self.sum_ms += v_ms;
    }

    fn stats(&self) -> LatencyStats {
        let h = &self.hist;
        let n = h.len() as usize;
        if n == 0 {
            return LatencyStats::default();
        }
        let ms_of = |us: u64| us as f64 / 1000.0;
        let q = |p: f64| ms_of(h.highest_equivalent(h.value_at_quantile(p)).min(h.max()));
        let mut histogram: Vec<Bucket> = Vec::new();
        let mut below = 0u64;
        for le in BUCKETS_MS {
            let upto = if le.is_infinite() {
                h.len()
            } else {
                h.iter_recorded()
                    .take_while(|v| ms_of(v.value_iterated_to()) <= *le)
                    .map(|v| v.count_at_value())
                    .sum()
            };
            histogram.push(Bucket {
                le_ms: if le.is_infinite() { f64::MAX } else { *le },
                count: (upto - below) as usize,
            });
            below = upto;
        }
        while histogram.len() > 1 && histogram.last().is_some_and(|b| b.count == 0) {
            histogram.pop();
        }
        while histogram.len() > 1 && histogram[0].count == 0 {
            histogram.remove(0);
        }
        LatencyStats {
            count: n,
            min: ms_of(h.min()),
            mean: self.sum_ms / n as f64,
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            max: ms_of(h.max()),
            histogram,
            measure: self.measure.label().into(),
            held_samples: self.held.clone(),
        }
    }
}

/// Everything the report needs from the iterations, kept as they finish (bounded memory).
#[derive(Default)]
struct Aggregate {
    started: usize,
    succeeded: usize,
    by_reason: IndexMap<String, usize>,
    sample_failures: Vec<String>,
    steps: IndexMap<String, StepAgg>,
    last_request: IndexMap<String, StepAgg>,
    captures: IndexMap<String, Vec<Value>>,
    cleanup_failures: usize,
    cleanup_by_reason: IndexMap<String, usize>,
    cleanup_sample_failures: Vec<String>,
    dropped: usize,
    finished: usize,
}

impl Aggregate {
    /// "load: 12000 iterations, 198.7/s, 3 failed, 0 dropped, p95(configure) 41ms".
    fn live_line(&self, label: &str, elapsed: Duration, ctx: &Ctx) -> String {
        let secs = ctx.target.simulated(elapsed).as_secs_f64().max(1e-9);
        let p95 = self
            .steps
            .first()
            .map(|(name, a)| {
                let v = a.hist.value_at_quantile(0.95) as f64 / 1000.0;
                format!(", p95({name}) {v:.0}ms")
            })
            .unwrap_or_default();
        format!(
            "{label}: {} iterations, {:.1}/s, {} failed, {} dropped{p95}",
            self.finished,
            self.finished as f64 / secs,
            self.finished - self.succeeded,
            self.dropped
        )
    }

    /// Adds another lane's counters and its first step's latencies (what a live line shows).
    fn merge_counts(&mut self, other: &Aggregate) {
        self.finished += other.finished;
        self.succeeded += other.succeeded;
        self.dropped += other.dropped;
        if let Some((name, a)) = other.steps.first() {
            match self.steps.get_mut(name) {
                Some(mine) => {
                    let _ = mine.hist.add(&a.hist);
                }
                None => {
                    let mut copy = StepAgg::new(a.measure);
                    let _ = copy.hist.add(&a.hist);
                    self.steps.insert(name.clone(), copy);
                }
            }
        }
    }

    /// Takes in another lane's statistics.
    fn merge(&mut self, other: Aggregate) {
        self.started += other.started;
        self.succeeded += other.succeeded;
        self.finished += other.finished;
        self.dropped += other.dropped;
        self.cleanup_failures += other.cleanup_failures;
        for (reason, n) in other.by_reason {
            count_reason(&mut self.by_reason, reason, n);
        }
        for (reason, n) in other.cleanup_by_reason {
            count_reason(&mut self.cleanup_by_reason, reason, n);
        }
        for f in other.sample_failures {
            if self.sample_failures.len() < MAX_SAMPLE_FAILURES {
                self.sample_failures.push(f);
            }
        }
        for f in other.cleanup_sample_failures {
            if self.cleanup_sample_failures.len() < MAX_SAMPLE_FAILURES {
                self.cleanup_sample_failures.push(f);
            }
        }
        for (name, a) in other.steps {
            match self.steps.get_mut(&name) {
                Some(mine) => mine.merge(a),
                None => {
                    self.steps.insert(name, a);
                }
            }
        }
        for (name, a) in other.last_request {
            match self.last_request.get_mut(&name) {
                Some(mine) => mine.merge(a),
                None => {
                    self.last_request.insert(name, a);
                }
            }
        }
        for (name, vals) in other.captures {
            self.captures.entry(name).or_default().extend(vals);
        }
    }

    /// Takes in one iteration; gives back its emptied list of samples, for the next one.
    fn add(&mut self, mut o: IterationOutcome, keep: &KeepCaptures) -> Vec<Sample> {
        self.finished += 1;
        self.started += usize::from(o.started);
        self.succeeded += usize::from(o.status == Status::Passed);
        if let Some(r) = o.reason {
            if self.sample_failures.len() < MAX_SAMPLE_FAILURES {
                self.sample_failures.push(format!(
                    "iteration {}: {}",
                    o.index,
                    bounded(&r, MAX_SAMPLE_CHARS)
                ));
            }
            count_reason(&mut self.by_reason, r, 1);
        }
        for sm in o.latencies.drain(..) {
            if let Some(req) = sm.last_request {
                step_agg(&mut self.last_request, &sm.step, Measure::RequestLatency).record(req);
            }
            let agg = step_agg(&mut self.steps, &sm.step, sm.measure);
            agg.record(sm.time);
            if sm.held && agg.held.len() < MAX_HELD_SAMPLES {
                agg.held.push(sm.time);
            }
        }
        for (k, v) in o.captures {
            if keep.keeps(&k) {
                self.captures.entry(k).or_default().push(v);
            }
        }
        if let Some(r) = o.cleanup_reason {
            self.cleanup_failed(o.index, r);
        }
        o.latencies
    }

    /// Counts iteration `i`'s failed cleanup by its reason, keeping a few as samples.
    fn cleanup_failed(&mut self, i: usize, reason: String) {
        self.cleanup_failures += 1;
        if self.cleanup_sample_failures.len() < MAX_SAMPLE_FAILURES {
            self.cleanup_sample_failures.push(format!(
                "iteration {i}: {}",
                bounded(&reason, MAX_SAMPLE_CHARS)
            ));
        }
        count_reason(&mut self.cleanup_by_reason, reason, 1);
    }

    fn finish(mut self, count: usize, concurrency: usize, duration: Duration) -> FanoutStats {
        self.by_reason.sort_by(|_, a, _, b| b.cmp(a));
        self.cleanup_by_reason.sort_by(|_, a, _, b| b.cmp(a));
        let secs = duration.as_secs_f64().max(1e-9);
        FanoutStats {
            count,
            concurrency,
            started: self.started,
            succeeded: self.succeeded,
            failed: count.saturating_sub(self.succeeded),
            dropped: self.dropped,
            by_reason: self.by_reason,
            duration_ms: ms(duration),
            simulated_duration_ms: None,
            throughput_per_s: (self.succeeded as f64 / secs * 100.0).round() / 100.0,
            steps: self
                .steps
                .iter()
                .map(|(k, a)| (k.clone(), a.stats()))
                .collect(),
            request_latency: self
                .last_request
                .iter()
                .map(|(k, a)| (k.clone(), a.stats()))
                .collect(),
            captures: self.captures,
            thresholds: Vec::new(),
            sample_failures: self.sample_failures,
            cleanup_failures: self.cleanup_failures,
            cleanup_by_reason: self.cleanup_by_reason,
            cleanup_sample_failures: self.cleanup_sample_failures,
        }
    }
}

/// The statistics a threshold names: `configure` (the step's time) or `latency(consumer ready)`
/// (the last request of a polled step).
fn series<'a>(stats: &'a FanoutStats, name: &str) -> Option<&'a LatencyStats> {
    match name
        .strip_prefix("latency(")
        .and_then(|n| n.strip_suffix(')'))
    {
        Some(inner) => stats.request_latency.get(inner.trim()).or_else(|| {
            stats
                .steps
                .get(inner.trim())
                .filter(|l| l.measure == Measure::RequestLatency.label())
        }),
        None => stats.steps.get(name),
    }
}

fn check_thresholds(
    ths: &[Judged],
    stats: &FanoutStats,
    count: usize,
    line: u32,
) -> Vec<AssertionResult> {
    let mut out = Vec::new();
    for Judged { src, th, implicit } in ths {
        let (value, passed, detail): (String, bool, Option<String>) = match th {
            Threshold::Unique(name) => match stats.captures.get(name) {
                None => (
                    format!("no values captured as `{name}`"),
                    false,
                    Some(format!("capture `{name}` in the fan-out's steps")),
                ),
                Some(vals) => {
                    let mut seen = HashSet::new();
                    let dups: Vec<String> = vals
                        .iter()
                        .filter(|v| !seen.insert(v.to_string()))
                        .map(|v| v.to_string())
                        .collect();
                    let nulls = vals.iter().filter(|v| v.is_null()).count();
                    if dups.is_empty() && nulls == 0 {
                        (format!("{} distinct values", vals.len()), true, None)
                    } else {
                        (
                            format!(
                                "{} duplicates among {} values: {}",
                                dups.len(),
                                vals.len(),
                                dups.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                            ),
                            false,
                            None,
                        )
                    }
                }
            },
            Threshold::Compare { metric, op, rhs } => {
                let bound = match rhs {
                    Rhs::Count => count as f64,
                    Rhs::Number(n) => *n,
                };
                let (actual, shown) = match metric {
                    Metric::Counter(c) => {
                        let v = match c.as_str() {
                            "count" => stats.count as f64,
                            "started" => stats.started as f64,
                            "succeeded" => stats.succeeded as f64,
                            "failed" => stats.failed as f64,
                            "success_rate" => stats.succeeded as f64 / stats.count.max(1) as f64,
                            "error_rate" => stats.failed as f64 / stats.count.max(1) as f64,
                            "throughput" => stats.throughput_per_s,
                            "cleanup_failures" => stats.cleanup_failures as f64,
                            "dropped" => stats.dropped as f64,
                            _ => stats.simulated_duration_ms.unwrap_or(stats.duration_ms),
                        };
                        let shown = match c.as_str() {
                            "succeeded" | "failed" | "started" => stats.summary(),
                            "success_rate" | "error_rate" => {
                                format!("{:.1}% ({})", v * 100.0, stats.summary())
                            }
                            "dropped" => format!(
                                "{v} of {} scheduled starts dropped (`max_in_flight` running)",
                                stats.count
                            ),
                            "duration" => format!("{v:.0}ms"),
                            _ => format!("{v}"),
                        };
                        (Some(v), shown)
                    }
                    Metric::Latency { stat, step } => match series(stats, step) {
                        None => (
                            None,
                            format!(
                                "no step named `{step}` ran (steps: {}{})",
                                stats.steps.keys().cloned().collect::<Vec<_>>().join(", "),
                                stats
                                    .request_latency
                                    .keys()
                                    .map(|k| format!(", latency({k})"))
                                    .collect::<String>()
                            ),
                        ),
                        Some(l) => {
                            let v = match stat.as_str() {
                                "min" => l.min,
                                "mean" => l.mean,
                                "p50" => l.p50,
                                "p90" => l.p90,
                                "p95" => l.p95,
                                "p99" => l.p99,
                                _ => l.max,
                            };
                            (
                                Some(v),
                                format!(
                                    "{stat}({step}) = {v:.1}ms over {} samples ({})",
                                    l.count, l.measure
                                ),
                            )
                        }
                    },
                };
                (shown, actual.is_some_and(|a| op_holds(*op, a, bound)), None)
            }
        };
        // An implicit threshold says where it comes from, and how to write one instead.
        let (subject, detail) = if *implicit {
            (
                format!("implicit threshold `{src}`"),
                Some(IMPLICIT_NOTE.to_string()),
            )
        } else {
            (format!("threshold `{src}`"), detail)
        };
        out.push(AssertionResult {
            line,
            subject,
            subject_template: None,
            op: "holds".into(),
            expected: json!(src),
            actual: Some(json!(value)),
            passed,
            message: detail,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_plain_requests_to_an_http_base_run_on_lanes_of_their_own() {
        use crate::config::{Config, TargetConfig};
        use crate::targets::{Target, TargetOverrides};
        let ctx_for = |base: &str| {
            let cfg = TargetConfig {
                base_url: Some(base.into()),
                ..Default::default()
            };
            async move {
                let target =
                    Target::connect("t", &cfg, &Config::default(), &TargetOverrides::default())
                        .await
                        .unwrap();
                Ctx {
                    target: Arc::new(target),
                    cancel: super::super::Cancel::default(),
                    events: None,
                    spec_id: "s".into(),
                    spec_file: "s.yaml".into(),
                    spec_dir: Default::default(),
                    secret_vars: Vec::new(),
                    last_progress: Arc::new(std::sync::Mutex::new(std::time::Instant::now())),
                    cookies: Arc::new(super::super::http::CookieJar::new(true)),
                    summarized: false,
                }
            }
        };
        let fanout = |yaml: &str| -> Fanout { serde_yaml::from_str(yaml).unwrap() };
        let plain = fanout(
            "{count: 4, steps: [{http: {path: /health}}, {sleep: 1s}, {assert: [{expr: 'true'}]}], \
             cleanup: [{http: {method: DELETE, path: '/job/{{ index }}'}}]}",
        );
        let http = ctx_for("http://127.0.0.1:9/focus").await;
        let https = ctx_for("https://127.0.0.1:9").await;
        assert!(lanes_on_own_threads(&plain, &http));
        assert!(
            !lanes_on_own_threads(&plain, &https),
            "https goes through reqwest"
        );
        for other in [
            "{count: 4, steps: [{http: {path: 'http://elsewhere/x'}}]}",
            "{count: 4, steps: [{http: {path: '{{ url }}'}}]}",
            "{count: 4, steps: [{kube: {op: wait, kind: Job, name: j}}]}",
            "{count: 4, steps: [{http: {path: /x}}], cleanup: [{kube: {op: delete, kind: Job, name: j}}]}",
            "{count: 4, steps: [{repeat: {while: 'false', steps: [{http: {path: /x}}]}}]}",
        ] {
            assert!(!lanes_on_own_threads(&fanout(other), &http), "{other}");
        }
    }

    #[test]
    fn streaming_percentiles_keep_three_significant_digits() {
        let mut a = StepAgg::new(Measure::RequestLatency);
        for v in 1..=100 {
            a.record(f64::from(v));
        }
        let s = a.stats();
        let close = |x: f64, want: f64| (x - want).abs() <= want * 0.001;
        assert!(close(s.p50, 50.0), "{}", s.p50);
        assert!(close(s.p95, 95.0), "{}", s.p95);
        assert!(close(s.p99, 99.0), "{}", s.p99);
        assert!(close(s.max, 100.0) && close(s.min, 1.0));
        assert_eq!(s.count, 100);
        assert!((s.mean - 50.5).abs() < 1e-9, "the mean is exact");
        assert_eq!(s.histogram.iter().map(|b| b.count).sum::<usize>(), 100);
        assert_eq!(s.measure, "request latency");
        // A skewed sample: the tail shows in p99, not in p50.
        let mut a = StepAgg::new(Measure::TimeUntilHeld);
        for _ in 0..990 {
            a.record(2.0);
        }
        for _ in 0..10 {
            a.record(30_000.0);
        }
        let s = a.stats();
        assert!(close(s.p50, 2.0) && close(s.p99, 2.0) && close(s.max, 30_000.0));
    }

    #[test]
    fn lanes_merge_into_the_statistics_of_one() {
        let outcome = |index: usize, ms: f64, failed: bool| IterationOutcome {
            index,
            started: true,
            status: if failed {
                Status::Failed
            } else {
                Status::Passed
            },
            reason: failed.then(|| "503 capacity reached".to_string()),
            latencies: vec![Sample {
                step: "configure".into(),
                time: ms,
                measure: Measure::RequestLatency,
                last_request: None,
                held: false,
            }],
            captures: IndexMap::from_iter([("port".to_string(), json!(50000 + index))]),
            cleanup_reason: None,
        };
        let (mut one, mut a, mut b) = (
            Aggregate::default(),
            Aggregate::default(),
            Aggregate::default(),
        );
        for i in 0..100 {
            let o = || outcome(i, f64::from(i as u32 + 1), i % 10 == 0);
            one.add(o(), &KeepCaptures::All);
            let lane = if i % 2 == 0 { &mut a } else { &mut b };
            lane.add(o(), &KeepCaptures::All);
        }
        a.merge(b);
        let d = Duration::from_secs(1);
        let (merged, single) = (a.finish(100, 8, d), one.finish(100, 8, d));
        assert_eq!(
            (merged.succeeded, merged.failed, merged.started),
            (90, 10, 100)
        );
        assert_eq!(merged.by_reason, single.by_reason);
        let (m, s) = (&merged.steps["configure"], &single.steps["configure"]);
        assert_eq!(
            (m.count, m.p50, m.p95, m.max, m.min),
            (s.count, s.p50, s.p95, s.max, s.min)
        );
        assert!((m.mean - s.mean).abs() < 1e-9);
        let mut ports: Vec<_> = merged.captures["port"]
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        ports.sort_unstable();
        assert_eq!(
            ports,
            (50000..50100).collect::<Vec<_>>(),
            "every lane's captures"
        );
        assert_eq!(merged.sample_failures.len(), 5);
    }

    #[test]
    fn stages_start_as_many_iterations_as_the_area_under_the_rate() {
        let ol = |base: f64, stages: &[(f64, f64)]| OpenLoop {
            base,
            stages: stages.to_vec(),
            max_in_flight: 1,
        };
        let starts_before = |ol: &OpenLoop, horizon: f64| {
            (0..)
                .take_while(|&k| ol.start_of(k).is_some_and(|t| t < horizon))
                .count()
        };
        // k6's ramping arrival rate from 0 (no `rate`): 0 to 100/s over 10 s is 500 starts,
        // start k at sqrt(k / 5) s.
        let ramp = ol(0.0, &[(10.0, 100.0)]);
        assert_eq!(starts_before(&ramp, 10.0), 500);
        assert_eq!(ramp.start_of(0), Some(0.0));
        assert!((ramp.start_of(125).unwrap() - 5.0).abs() < 1e-9);
        // `rate` is the starting rate: 10/s ramped to 30/s over 10 s is 200.
        assert_eq!(starts_before(&ol(10.0, &[(10.0, 30.0)]), 10.0), 200);
        // A constant rate: 200/s for 0.5 s.
        assert_eq!(starts_before(&ol(200.0, &[]), 0.5), 100);
        // Up, hold, down to 0: 25 x 60 + 50 x 300 + 25 x 60.
        let shape = ol(0.0, &[(60.0, 50.0), (360.0, 50.0), (420.0, 0.0)]);
        let n = starts_before(&shape, 420.0);
        assert!((17_999..=18_001).contains(&n), "{n}");
        // The last stage's rate holds after it: 5 in the ramp, then 10/s for 2 s.
        assert_eq!(starts_before(&ol(0.0, &[(1.0, 10.0)]), 3.0), 25);
        // A stage at 0/s starts nothing; starts never go back in time.
        assert_eq!(ol(0.0, &[(5.0, 0.0)]).start_of(0), None);
        assert_eq!(starts_before(&ol(0.0, &[(5.0, 0.0), (6.0, 0.0)]), 6.0), 0);
        let mut last = 0.0;
        for k in 0..18_000 {
            let t = shape.start_of(k).unwrap();
            assert!(t >= last, "start {k} at {t} before {last}");
            last = t;
        }
    }

    #[test]
    fn cleanup_failures_are_counted_by_reason_with_a_bounded_sample() {
        let outcome = |index: usize, reason: Option<&str>| IterationOutcome {
            index,
            started: true,
            status: Status::Passed,
            reason: None,
            latencies: Vec::new(),
            captures: IndexMap::new(),
            cleanup_reason: reason.map(str::to_string),
        };
        let (mut a, mut b) = (Aggregate::default(), Aggregate::default());
        for i in 0..20 {
            let reason = match i % 4 {
                0 => None,
                3 => Some("error: timeout"),
                _ => Some("404 unknown job_id"),
            };
            let lane = if i % 2 == 0 { &mut a } else { &mut b };
            lane.add(outcome(i, reason), &KeepCaptures::All);
        }
        a.cleanup_failed(20, "404 unknown job_id".into());
        a.merge(b);
        let s = a.finish(21, 1, Duration::from_secs(1));
        assert_eq!(s.cleanup_failures, 16);
        assert_eq!(
            s.cleanup_by_reason.into_iter().collect::<Vec<_>>(),
            [
                ("404 unknown job_id".to_string(), 11),
                ("error: timeout".to_string(), 5)
            ],
            "most frequent first"
        );
        assert_eq!(s.cleanup_sample_failures.len(), MAX_SAMPLE_FAILURES);
        assert_eq!(
            s.cleanup_sample_failures[0],
            "iteration 2: 404 unknown job_id"
        );
        assert_eq!(
            s.succeeded, 20,
            "a failed cleanup leaves the iteration's own verdict"
        );
    }

    #[test]
    fn reasons_with_ids_in_them_count_as_one_kind() {
        let mut by_reason = IndexMap::new();
        for i in 0..1000 {
            count_reason(&mut by_reason, format!("404 unknown job_id 18-{i}"), 1);
        }
        count_reason(&mut by_reason, "404 unknown job_id 18-3".into(), 1);
        assert_eq!(by_reason.len(), 1, "{by_reason:?}");
        assert_eq!(by_reason["404 unknown job_id N-N"], 1001);
        let mut by_reason = IndexMap::new();
        for i in 0..200 {
            let r = format!("assertion: Job/baby-analyzer-18-{i} exists");
            count_reason(&mut by_reason, r, 1);
        }
        assert_eq!(by_reason["assertion: Job/baby-analyzer-N-N exists"], 200);
    }

    #[test]
    fn errors_count_by_kind_or_root_cause_and_samples_keep_them_whole() {
        let full = "error: request to https://127.0.0.1:36285/configure: error sending request: connection closed before message completed";
        assert_eq!(
            short_reason(full),
            "error: connection closed before message completed"
        );
        assert_eq!(
            short_reason("error: timeout: no answer in 30s"),
            "error: timeout"
        );
        assert_eq!(
            short_reason("error: deadline passed"),
            "error: deadline passed"
        );
        assert_eq!(short_reason("503 capacity reached"), "503 capacity reached");
        let mut agg = Aggregate::default();
        agg.cleanup_failed(3, full.into());
        assert_eq!(
            agg.cleanup_by_reason["error: connection closed before message completed"],
            1
        );
        assert_eq!(
            agg.cleanup_sample_failures[0],
            format!("iteration 3: {full}")
        );
        let long = format!("error: {}", "é".repeat(400));
        assert!(bounded(&long, MAX_SAMPLE_CHARS).len() <= MAX_SAMPLE_CHARS + 3);
    }

    #[test]
    fn numbers_standing_alone_keep_reasons_apart() {
        for (reason, kind) in [
            ("409 port taken", "409 port taken"),
            ("timeout after 30 s", "timeout after 30 s"),
            ("status 503, 2 attempts", "status 503, 2 attempts"),
            ("job_id 18-3 unknown", "job_id N-N unknown"),
            ("pod analyzer-7x2k", "pod analyzer-NxNk"),
            ("v2/jobs/12 gone", "vN/jobs/N gone"),
        ] {
            assert_eq!(reason_kind(reason), kind);
        }
    }

    #[test]
    fn reasons_of_many_kinds_are_bounded() {
        let mut by_reason = IndexMap::new();
        let word = |i: usize| -> String {
            let l = |k: usize| (b'a' + (k % 26) as u8) as char;
            format!("{}{}{}", l(i), l(i / 26), l(i / 676))
        };
        for i in 0..1000 {
            count_reason(&mut by_reason, format!("failure {}", word(i)), 1);
        }
        count_reason(&mut by_reason, format!("failure {}", word(3)), 1);
        assert_eq!(by_reason.len(), MAX_REASONS + 1);
        assert_eq!(
            by_reason[&format!("failure {}", word(3))],
            2,
            "a known reason still counts"
        );
        assert_eq!(by_reason[OTHER_REASONS], 1000 - MAX_REASONS);
    }

    #[test]
    fn without_written_thresholds_failed_and_dropped_are_judged_implicitly() {
        let stats = FanoutStats {
            count: 10,
            succeeded: 7,
            failed: 3,
            dropped: 2,
            ..Default::default()
        };
        let th = |src: &str, implicit| Judged {
            src: src.into(),
            th: Threshold::parse(src).unwrap(),
            implicit,
        };
        let a = check_thresholds(
            &[th("failed == 0", true), th("error_rate < 50%", false)],
            &stats,
            10,
            4,
        );
        assert_eq!(a[0].subject, "implicit threshold `failed == 0`");
        assert!(!a[0].passed);
        assert!(
            a[0].describe().starts_with(
                "implicit threshold `failed == 0` not met: 7/10 succeeded, 2 dropped (no `thresholds:` written"
            ),
            "{}",
            a[0].describe()
        );
        assert_eq!(a[1].subject, "threshold `error_rate < 50%`");
        assert!(a[1].passed, "30% of the iterations failed");
        assert_eq!(a[1].message, None);
    }

    #[test]
    fn summary_reads_like_the_issue() {
        let mut s = FanoutStats {
            count: 200,
            succeeded: 150,
            ..Default::default()
        };
        s.by_reason.insert("503 capacity reached".into(), 50);
        assert_eq!(s.summary(), "150/200 succeeded, 50 x 503 capacity reached");
    }
}
