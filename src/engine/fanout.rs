//! `fanout`: run a block of steps `count` times with at most `concurrency` in flight (closed
//! loops), or started at a rate (open loops), in lanes, until done, cut or cancelled.
//!
//! This module only schedules: each iteration's [`IterationOutcome`] (its samples, its reason,
//! its captures) goes to the statistics ([`crate::stats`]), which aggregate them, judge the
//! thresholds and make the results' `FanoutStats`. Waiting for a concurrency slot, the barrier,
//! templating and JSON parsing are outside every step's figure.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use futures::stream::StreamExt;
use indexmap::IndexMap;
use serde_json::{json, Value};
use tokio::sync::Barrier;

use super::step::run_steps;
use super::{ms, resolve_dur, Ctx, ExecError, Observation};
use crate::results::Status;
use crate::spec::{Count, Fanout, Step, VarMap};
use crate::stats::{failure_reason, Aggregate, IterationOutcome, KeepCaptures, Sample, Thresholds};
use crate::template::{EnvSink, Scope};

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

/// How long iterations still running at the end of a load's `duration` may go on, by default:
/// k6's `gracefulStop` default, so a load moved from k6 ends the same way.
const DEFAULT_GRACEFUL_STOP: Duration = Duration::from_secs(30);

/// Why an iteration still running after the load's `duration` and `graceful_stop` failed.
const CUT_REASON: &str = "cut: still running at the end of the load's duration + graceful_stop";

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
    let written = f
        .thresholds
        .iter()
        .map(|t| scope.render_str(t))
        .collect::<Result<Vec<_>, _>>()?;
    let thresholds = Thresholds::new(written, open_loop.is_some()).map_err(ExecError::spec)?;
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
    let keep = KeepCaptures::for_load(count, reads_captures(step), &f.thresholds);
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
        env: scope.env_sink(),
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
                        let (mut scope, mut spare) =
                            (Scope::recording(plan.env.clone()), Vec::new());
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
                    tally.lock(0).agg.start_dropped();
                } else {
                    let plan = plan.clone();
                    inflight.spawn(async move {
                        let mut scope = Scope::recording(plan.env.clone());
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
        let (base, env) = (&plan.base, &plan.env);
        let mut cleanups = futures::stream::iter(pending_cleanup)
            .map(|(i, caps)| async move {
                let mut it_scope = iteration_scope(base, env, i, &caps);
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
    let cleanup_at = f.cleanup.first().map_or(step.pos, |c| c.pos);
    let assertions = thresholds.judge(&mut stats, step.pos, cleanup_at);
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
    /// Where the iterations' templates report the `env.*` values they read (the run's secrets).
    env: EnvSink,
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
    latencies: Vec<Sample>,
) -> IterationOutcome {
    let mut out = IterationOutcome::new(i, latencies);
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
        out.latencies
            .push(Sample::of_step(r, lag_ms.take().unwrap_or(0.0)));
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
        view.live_line(&self.label, ctx.target.simulated(self.t0.elapsed()))
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

/// Whether a fan-out's lanes may each run on a thread and runtime of their own, as load tools
/// do (oha's default): each lane's requests, timers and connections then stay on one core, with
/// no hand-over between threads. Measured on a 100,000-request fan-out against the simulator:
/// 14 % less user CPU and 8 % less wall time than lanes as tasks of the shared runtime.
///
/// Only for plain requests to the target's own `http://` base, sleeps and checks: what else a
/// step starts (a Kubernetes watch shared by later steps, a reqwest connection task) would be
/// bound to the lane's runtime and end with it.
fn lanes_on_own_threads(f: &Fanout, ctx: &Ctx) -> bool {
    // On the virtual clock every task must be on the one runtime whose clock it is: time
    // would jump while a lane on another thread works.
    if ctx.target.is_virtual() {
        return false;
    }
    f.steps
        .iter()
        .chain(&f.cleanup)
        .all(|st| st.kind.on_lane_threads(ctx))
}

/// A request to `base` goes through the lean HTTP/1.1 client (`h1`), which starts no task.
pub(super) fn plain_http(ctx: &Ctx, base: Option<&str>) -> bool {
    ctx.target.h1.is_some()
        && base
            .and_then(|b| url::Url::parse(b).ok())
            .is_some_and(|u| crate::targets::h1::H1Client::handles(&u))
}

impl super::step::Execute for Fanout {
    fn result_name(&self) -> crate::results::StepKindName {
        crate::results::StepKindName::Fanout
    }

    async fn execute(
        &self,
        step: &Step,
        scope: &mut Scope,
        ctx: &Ctx,
        _in_cleanup: bool,
    ) -> Result<Observation, ExecError> {
        execute(self, step, scope, ctx).await
    }

    fn runs_steps(&self) -> bool {
        true
    }
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
fn iteration_scope(
    base: &Arc<VarMap>,
    env: &EnvSink,
    i: usize,
    captures: &IndexMap<String, Value>,
) -> Scope {
    let mut sc = Scope::recording(env.clone());
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

/// Whether the fan-out step's own capture or checks read every iteration's captures
/// (`capture: {ids: $.captures.job_id}`): then the statistics keep them all.
fn reads_captures(step: &Step) -> bool {
    let capture_paths = step.capture.values().filter_map(|c| match c {
        crate::spec::Capture::Path(p) => Some(p),
        crate::spec::Capture::Detailed(d) => d.path.as_ref(),
    });
    let check_paths = step
        .expect
        .iter()
        .flat_map(|e| e.json.iter().filter_map(|c| c.path.as_ref()));
    capture_paths
        .chain(check_paths)
        .any(|p| p.contains("captures"))
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
                let target = Target::connect(
                    "t",
                    &cfg,
                    &Config::default(),
                    &TargetOverrides::default(),
                    &crate::results::Secrets::new(),
                )
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
        let fanout = |yaml: &str| -> Fanout { crate::spec::yaml::from_str(yaml).unwrap() };
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
}
