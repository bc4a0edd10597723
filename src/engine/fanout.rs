//! `fanout`: run a block of steps `count` times with at most `concurrency` in flight,
//! aggregate latencies and failures, and check k6-style thresholds.
//!
//! Latency of an HTTP step is the time from handing the built request to the client until the
//! whole response body arrived (monotonic clock); waiting for a concurrency slot, the barrier,
//! templating and JSON parsing are outside it. Other steps count their own duration.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use indexmap::IndexMap;
use serde_json::{json, Value};
use tokio::sync::{Barrier, Semaphore};

use super::step::run_steps;
use super::{ms, resolve_dur, Ctx, ExecError, Observation};
use crate::results::{
    AssertionResult, Bucket, FanoutStats, LatencyStats, Status, StepResult, ThresholdResult,
};
use crate::spec::threshold::{Metric, Op, Rhs, Threshold};
use crate::spec::{Count, Fanout, Step};
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

/// Percentile by nearest rank over sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn latency_stats(mut v: Vec<f64>) -> LatencyStats {
    if v.is_empty() {
        return LatencyStats::default();
    }
    v.sort_by(f64::total_cmp);
    let mut histogram: Vec<Bucket> = BUCKETS_MS
        .iter()
        .map(|b| Bucket {
            le_ms: *b,
            count: 0,
        })
        .collect();
    for x in &v {
        if let Some(b) = histogram.iter_mut().find(|b| *x <= b.le_ms) {
            b.count += 1;
        }
    }
    // Trim empty buckets at both ends so charts show the interesting range.
    while histogram.len() > 1 && histogram.last().is_some_and(|b| b.count == 0) {
        histogram.pop();
    }
    while histogram.len() > 1 && histogram[0].count == 0 {
        histogram.remove(0);
    }
    for b in &mut histogram {
        if b.le_ms.is_infinite() {
            b.le_ms = f64::MAX;
        }
    }
    LatencyStats {
        count: v.len(),
        min: v[0],
        mean: v.iter().sum::<f64>() / v.len() as f64,
        p50: percentile(&v, 50.0),
        p90: percentile(&v, 90.0),
        p95: percentile(&v, 95.0),
        p99: percentile(&v, 99.0),
        max: v[v.len() - 1],
        histogram,
        measure: String::new(),
        held_samples: Vec::new(),
    }
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
    cleanup_failed: bool,
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
        let m = bad.message.clone().unwrap_or_default();
        let word = m.split(':').next().unwrap_or("error").trim().to_string();
        return format!(
            "error: {}",
            if word.len() > 40 {
                "request failed".into()
            } else {
                word
            }
        );
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

pub async fn execute(
    f: &Fanout,
    step: &Step,
    scope: &mut Scope,
    ctx: &Ctx,
) -> Result<Observation, ExecError> {
    let count = resolve_count(&f.count, scope, "count")?;
    let concurrency = match &f.concurrency {
        Some(c) => resolve_count(c, scope, "concurrency")?.max(1),
        None => count.max(1),
    };
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
    let thresholds: Vec<(String, Threshold)> = f
        .thresholds
        .iter()
        .map(|t| {
            let r = scope.render_str(t)?;
            Threshold::parse(&r)
                .map(|th| (r, th))
                .map_err(ExecError::spec)
        })
        .collect::<Result<_, _>>()?;

    let sem = Arc::new(Semaphore::new(concurrency));
    // With every iteration in flight at once, a barrier makes "200 at once" really simultaneous.
    let barrier = (concurrency >= count && ramp_up.is_none() && count > 1)
        .then(|| Arc::new(Barrier::new(count)));
    let t0 = Instant::now();
    let end = deadline.map(|d| t0 + d);
    let mut futs = FuturesUnordered::new();
    for i in 0..count {
        let mut it_scope = scope.clone();
        it_scope.set("index", json!(i));
        it_scope.set("iteration", json!(i + 1));
        let (sem, barrier) = (sem.clone(), barrier.clone());
        let delay = ramp_up.map(|r| r.mul_f64(i as f64 / count.max(1) as f64));
        futs.push(async move {
            let mut out = IterationOutcome {
                index: i,
                started: false,
                status: Status::Passed,
                reason: None,
                latencies: Vec::new(),
                captures: IndexMap::new(),
                cleanup_failed: false,
            };
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            let _permit = sem.acquire().await;
            if let Some(b) = &barrier {
                b.wait().await;
            }
            if ctx.cancel.is_cancelled() || end.is_some_and(|e| Instant::now() >= e) {
                out.status = Status::Error;
                out.reason = Some(
                    if ctx.cancel.is_cancelled() {
                        "not started: interrupted"
                    } else {
                        "not started: deadline passed"
                    }
                    .into(),
                );
                return (out, it_scope);
            }
            out.started = true;
            let run = run_steps(&f.steps, &mut it_scope, ctx, false);
            let (results, status) = match end {
                Some(e) => match tokio::time::timeout_at(e.into(), run).await {
                    Ok(r) => r,
                    Err(_) => (Vec::new(), Status::Error),
                },
                None => run.await,
            };
            out.status = status;
            if matches!(status, Status::Failed | Status::Error) {
                out.reason = Some(if results.is_empty() {
                    "error: deadline passed".into()
                } else {
                    failure_reason(&results)
                });
            }
            for r in &results {
                if r.status == Status::Skipped {
                    continue;
                }
                let (time, measure) = step_time(r);
                out.latencies.push(Sample {
                    step: r.name.clone(),
                    time,
                    measure,
                    last_request: r
                        .poll
                        .as_ref()
                        .and(r.response.as_ref())
                        .map(|x| x.elapsed_ms),
                    held: r.poll.as_ref().is_some_and(|p| p.satisfied),
                });
                for (k, v) in &r.captures {
                    out.captures.insert(k.clone(), v.clone());
                }
            }
            (out, it_scope)
        });
    }
    let mut done = Vec::with_capacity(count);
    let step_tick = (count / 10).max(1);
    while let Some(o) = futs.next().await {
        done.push(o);
        if done.len() % step_tick == 0 && done.len() < count {
            ctx.progress(format!(
                "{}: {}/{} iterations done",
                step.label(),
                done.len(),
                count
            ));
        }
    }
    drop(futs);
    let duration = t0.elapsed();
    // Cleanup phase: every iteration's cleanup, with its own variables, after all steps finished
    // (what the block opened was open together). Runs after failures, deadlines and Ctrl-C too.
    let mut outcomes = Vec::with_capacity(count);
    if f.cleanup.is_empty() {
        outcomes.extend(done.into_iter().map(|(o, _)| o));
    } else {
        let csem = Arc::new(Semaphore::new(concurrency));
        let mut cleanups: FuturesUnordered<_> = done
            .into_iter()
            .map(|(mut o, mut it_scope)| {
                let csem = csem.clone();
                async move {
                    let _permit = csem.acquire().await;
                    let (_, cst) = run_steps(&f.cleanup, &mut it_scope, ctx, true).await;
                    o.cleanup_failed = matches!(cst, Status::Failed | Status::Error);
                    o
                }
            })
            .collect();
        while let Some(o) = cleanups.next().await {
            outcomes.push(o);
        }
    }
    outcomes.sort_by_key(|o| o.index);
    let mut stats = aggregate(&outcomes, count, concurrency, duration);
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
            op: "released every iteration".into(),
            expected: json!(0),
            actual: Some(json!(format!(
                "{} of {} iterations' cleanup failed (what they opened may still be open)",
                stats.cleanup_failures, count
            ))),
            passed: false,
            message: None,
        });
    }
    stats.thresholds = thresholds
        .iter()
        .zip(&assertions)
        .map(|((src, _), a)| ThresholdResult {
            expr: src.clone(),
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
        doc,
        elapsed: duration,
        assertions,
        fanout: Some(stats),
        ..Default::default()
    })
}

fn aggregate(
    outcomes: &[IterationOutcome],
    count: usize,
    concurrency: usize,
    duration: Duration,
) -> FanoutStats {
    let mut by_reason: IndexMap<String, usize> = IndexMap::new();
    let mut per_step: IndexMap<String, Vec<f64>> = IndexMap::new();
    let mut last_request: IndexMap<String, Vec<f64>> = IndexMap::new();
    let mut measures: IndexMap<String, Measure> = IndexMap::new();
    let mut held: IndexMap<String, Vec<f64>> = IndexMap::new();
    let mut captures: IndexMap<String, Vec<Value>> = IndexMap::new();
    let mut sample_failures = Vec::new();
    for o in outcomes {
        if let Some(r) = &o.reason {
            *by_reason.entry(r.clone()).or_default() += 1;
            if sample_failures.len() < 5 {
                sample_failures.push(format!("iteration {}: {r}", o.index));
            }
        }
        for sm in &o.latencies {
            per_step.entry(sm.step.clone()).or_default().push(sm.time);
            measures.insert(sm.step.clone(), sm.measure);
            if let Some(req) = sm.last_request {
                last_request.entry(sm.step.clone()).or_default().push(req);
            }
            if sm.held {
                let v = held.entry(sm.step.clone()).or_default();
                if v.len() < MAX_HELD_SAMPLES {
                    v.push(sm.time);
                }
            }
        }
        for (k, v) in &o.captures {
            captures.entry(k.clone()).or_default().push(v.clone());
        }
    }
    by_reason.sort_by(|_, a, _, b| b.cmp(a));
    let succeeded = outcomes
        .iter()
        .filter(|o| o.status == Status::Passed)
        .count();
    let secs = duration.as_secs_f64().max(1e-9);
    FanoutStats {
        count,
        concurrency,
        started: outcomes.iter().filter(|o| o.started).count(),
        succeeded,
        failed: count - succeeded,
        by_reason,
        duration_ms: ms(duration),
        simulated_duration_ms: None,
        throughput_per_s: (succeeded as f64 / secs * 100.0).round() / 100.0,
        steps: per_step
            .into_iter()
            .map(|(k, v)| {
                let measure = measures.get(&k).copied().unwrap_or(Measure::RequestLatency);
                let mut st = latency_stats(v);
                st.measure = measure.label().into();
                st.held_samples = held.shift_remove(&k).unwrap_or_default();
                (k, st)
            })
            .collect(),
        request_latency: last_request
            .into_iter()
            .map(|(k, v)| {
                let mut st = latency_stats(v);
                st.measure = Measure::RequestLatency.label().into();
                (k, st)
            })
            .collect(),
        captures,
        thresholds: Vec::new(),
        sample_failures,
        cleanup_failures: outcomes.iter().filter(|o| o.cleanup_failed).count(),
    }
}

/// "150/200 succeeded, 50 x 503 capacity reached"
pub fn summary(s: &FanoutStats) -> String {
    let mut out = format!("{}/{} succeeded", s.succeeded, s.count);
    for (reason, n) in &s.by_reason {
        out.push_str(&format!(", {n} x {reason}"));
    }
    out
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
    ths: &[(String, Threshold)],
    stats: &FanoutStats,
    count: usize,
    line: u32,
) -> Vec<AssertionResult> {
    let mut out = Vec::new();
    for (src, th) in ths {
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
                            "throughput" => stats.throughput_per_s,
                            "cleanup_failures" => stats.cleanup_failures as f64,
                            _ => stats.simulated_duration_ms.unwrap_or(stats.duration_ms),
                        };
                        let shown = match c.as_str() {
                            "succeeded" | "failed" | "started" => summary(stats),
                            "success_rate" => format!("{:.1}% ({})", v * 100.0, summary(stats)),
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
        out.push(AssertionResult {
            line,
            subject: format!("threshold `{src}`"),
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

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        let s = latency_stats(vec![3.0, 1.0, 2.0]);
        assert_eq!((s.min, s.p50, s.max, s.count), (1.0, 2.0, 3.0, 3));
        assert_eq!(s.histogram.iter().map(|b| b.count).sum::<usize>(), 3);
    }

    #[test]
    fn summary_reads_like_the_issue() {
        let mut s = FanoutStats {
            count: 200,
            succeeded: 150,
            ..Default::default()
        };
        s.by_reason.insert("503 capacity reached".into(), 50);
        assert_eq!(summary(&s), "150/200 succeeded, 50 x 503 capacity reached");
    }
}
