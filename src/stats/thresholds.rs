//! Thresholds (k6 style) judged against a fan-out's statistics: `succeeded == count`,
//! `p95(configure) < 2s`, `error_rate < 1%`, `unique(port)`. They are parsed with the spec
//! model ([`crate::spec::threshold`]); evaluated here, each into an assertion of the step and a
//! [`ThresholdResult`] of its statistics.

use std::collections::HashSet;

use serde_json::json;

use super::Measure;
use crate::results::{AssertOp, AssertionResult, FanoutStats, LatencyStats, ThresholdResult};
use crate::spec::threshold::{Metric, Op, Rhs, Threshold};
use crate::spec::Pos;

/// A threshold to judge the fan-out by: as written, or implicit (none was written).
struct Judged {
    src: String,
    th: Threshold,
    implicit: bool,
}

/// Why an implicit threshold applies (shown beside it when it is not met).
const IMPLICIT_NOTE: &str = "no `thresholds:` written, so every iteration must succeed; \
     write them to tolerate failures, e.g. `error_rate < 1%`";

/// The thresholds of one fan-out, ready to judge its statistics.
pub struct Thresholds(Vec<Judged>);

impl Thresholds {
    /// The thresholds as written (their templates rendered). Without any, a failing iteration
    /// fails the fan-out (`failed == 0`), and in an open loop a dropped start too
    /// (`dropped == 0`): a load that tolerates errors says how many (`error_rate < 1%`).
    pub fn new(written: Vec<String>, open_loop: bool) -> Result<Thresholds, String> {
        let mut judged = written
            .into_iter()
            .map(|src| {
                Threshold::parse(&src).map(|th| Judged {
                    src,
                    th,
                    implicit: false,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if judged.is_empty() {
            let implicit = if open_loop {
                &["failed == 0", "dropped == 0"][..]
            } else {
                &["failed == 0"][..]
            };
            for src in implicit {
                judged.push(Judged {
                    src: (*src).into(),
                    th: Threshold::parse(src).expect("a valid built-in threshold"),
                    implicit: true,
                });
            }
        }
        Ok(Thresholds(judged))
    }

    /// Judges `stats` (of the step at `at`; its cleanup steps start at `cleanup_at`): one
    /// assertion per threshold, recorded in `stats.thresholds` too, and one more when a cleanup
    /// failed, which may have left jobs open: never a pass, threshold or not.
    pub fn judge(&self, stats: &mut FanoutStats, at: Pos, cleanup_at: Pos) -> Vec<AssertionResult> {
        let mut assertions = self.check(stats, at);
        stats.thresholds = self
            .0
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
        if stats.cleanup_failures > 0 {
            assertions.push(AssertionResult {
                line: cleanup_at.line,
                col: cleanup_at.col,
                subject: "fan-out cleanup".into(),
                subject_template: None,
                op: AssertOp::ReleasedEveryIteration,
                expected: json!(0),
                actual: Some(json!(format!(
                    "{} of {} iterations' cleanup failed (what they opened may still be open): {}",
                    stats.cleanup_failures,
                    stats.count,
                    crate::results::reasons_text(&stats.cleanup_by_reason)
                ))),
                passed: false,
                message: None,
            });
        }
        assertions
    }

    /// One assertion per threshold.
    fn check(&self, stats: &FanoutStats, at: Pos) -> Vec<AssertionResult> {
        let mut out = Vec::new();
        for Judged { src, th, implicit } in &self.0 {
            let (value, passed, detail) = evaluate(th, stats);
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
                line: at.line,
                col: at.col,
                subject,
                subject_template: None,
                op: AssertOp::Holds,
                expected: json!(src),
                actual: Some(json!(value)),
                passed,
                message: detail,
            });
        }
        out
    }
}

/// Whether `a op b` holds (`==` and `!=` up to 1e-9, as figures are computed).
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
                .filter(|l| l.measure == Some(Measure::RequestLatency))
        }),
        None => stats.steps.get(name),
    }
}

/// A threshold against the statistics: what was measured (in words), whether it holds, and a
/// hint when it cannot be judged.
fn evaluate(th: &Threshold, stats: &FanoutStats) -> (String, bool, Option<String>) {
    match th {
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
                Rhs::Count => stats.count as f64,
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
                                l.count,
                                l.measure.as_ref().map_or("", Measure::as_str)
                            ),
                        )
                    }
                },
            };
            (shown, actual.is_some_and(|a| op_holds(*op, a, bound)), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32) -> Pos {
        Pos { line, col: 5 }
    }
    use crate::results::{FanoutStats, LatencyStats};
    use indexmap::IndexMap;

    /// 200 iterations, 150 succeeded, 50 failed alike; `configure` took p95 40 ms.
    fn stats() -> FanoutStats {
        let mut s = FanoutStats {
            count: 200,
            started: 200,
            succeeded: 150,
            failed: 50,
            duration_ms: 2000.0,
            throughput_per_s: 75.0,
            ..Default::default()
        };
        s.by_reason.insert("503 capacity reached".into(), 50);
        s.steps.insert(
            "configure".into(),
            LatencyStats {
                count: 200,
                min: 5.0,
                mean: 20.0,
                p50: 18.0,
                p90: 30.0,
                p95: 40.0,
                p99: 90.0,
                max: 120.0,
                measure: Some(Measure::RequestLatency),
                ..Default::default()
            },
        );
        s.steps.insert(
            "ready".into(),
            LatencyStats {
                count: 200,
                p95: 3000.0,
                max: 4000.0,
                measure: Some(Measure::TimeUntilHeld),
                ..Default::default()
            },
        );
        s.request_latency.insert(
            "ready".into(),
            LatencyStats {
                count: 600,
                p95: 4.0,
                measure: Some(Measure::RequestLatency),
                ..Default::default()
            },
        );
        s
    }

    /// Judges `src` (as written) against `s`: whether it holds, and what it measured.
    fn judge(src: &str, s: &FanoutStats) -> (bool, String) {
        let ths = Thresholds::new(vec![src.into()], false).unwrap();
        let mut s = s.clone();
        let a = ths.judge(&mut s, pos(7), pos(9));
        // One assertion, and one more for a failed cleanup.
        assert_eq!(a.len(), 1 + usize::from(s.cleanup_failures > 0), "{src}");
        assert_eq!(a[0].subject, format!("threshold `{src}`"));
        assert_eq!(s.thresholds.len(), 1);
        assert_eq!(s.thresholds[0].passed, a[0].passed, "{src}");
        (a[0].passed, s.thresholds[0].value.clone())
    }

    #[test]
    fn every_operator_holds_or_fails() {
        let s = stats();
        for (src, holds) in [
            ("succeeded == 150", true),
            ("succeeded == 151", false),
            ("succeeded != 151", true),
            ("succeeded != 150", false),
            ("failed < 51", true),
            ("failed < 50", false),
            ("failed <= 50", true),
            ("failed <= 49", false),
            ("started > 199", true),
            ("started > 200", false),
            ("started >= 200", true),
            ("started >= 201", false),
            ("count == count", true),
            ("succeeded == count", false),
            ("started >= count", true),
        ] {
            assert_eq!(judge(src, &s).0, holds, "{src}");
        }
    }

    #[test]
    fn rates_are_shares_of_the_count() {
        let s = stats();
        assert_eq!(
            judge("success_rate >= 75%", &s),
            (
                true,
                "75.0% (150/200 succeeded, 50 x 503 capacity reached)".into()
            )
        );
        assert!(!judge("success_rate >= 99%", &s).0, "75% of them succeeded");
        assert!(judge("error_rate <= 25%", &s).0);
        let (held, value) = judge("error_rate < 1%", &s);
        assert!(!held, "a quarter of them failed");
        assert_eq!(
            value,
            "25.0% (150/200 succeeded, 50 x 503 capacity reached)"
        );
        assert!(judge("throughput >= 75", &s).0);
        assert!(!judge("throughput > 75", &s).0);
        // A fan-out of nothing: rates of 0, not of NaN.
        let none = FanoutStats::default();
        assert!(judge("error_rate == 0", &none).0);
        assert!(!judge("success_rate > 0", &none).0);
    }

    #[test]
    fn durations_and_drops_are_judged_in_their_units() {
        let mut s = stats();
        assert_eq!(judge("duration < 3s", &s), (true, "2000ms".into()));
        assert!(!judge("duration < 1s", &s).0);
        // On a time-scaled simulator, the duration is the simulated one.
        s.simulated_duration_ms = Some(200_000.0);
        assert!(!judge("duration < 3s", &s).0);
        s.dropped = 3;
        let (held, value) = judge("dropped == 0", &s);
        assert!(!held);
        assert_eq!(
            value,
            "3 of 200 scheduled starts dropped (`max_in_flight` running)"
        );
        assert!(judge("cleanup_failures == 0", &s).0);
        s.cleanup_failures = 1;
        assert!(!judge("cleanup_failures == 0", &s).0);
    }

    #[test]
    fn latency_thresholds_read_a_steps_percentiles() {
        let s = stats();
        let (held, value) = judge("p95(configure) < 50ms", &s);
        assert!(held);
        assert_eq!(
            value,
            "p95(configure) = 40.0ms over 200 samples (request latency)"
        );
        assert!(!judge("p95(configure) < 40ms", &s).0, "40 is not below 40");
        assert!(judge("p95(configure) <= 40ms", &s).0);
        assert!(!judge("p99(configure) < 50ms", &s).0, "the tail is slower");
        for (stat, v) in [
            ("min", 5.0),
            ("mean", 20.0),
            ("p50", 18.0),
            ("p90", 30.0),
            ("max", 120.0),
        ] {
            assert!(judge(&format!("{stat}(configure) == {v}"), &s).0, "{stat}");
            assert!(!judge(&format!("{stat}(configure) > {v}"), &s).0, "{stat}");
        }
        // A polled step: its time until it held, or its last request's latency.
        assert!(!judge("p95(ready) < 2s", &s).0);
        assert!(judge("p95(latency(ready)) < 5ms", &s).0);
        // `latency(x)` of a plain request is the step's own figure; of a wait there is none.
        assert!(judge("p95(latency(configure)) < 50ms", &s).0);
        let mut waits = stats();
        waits.request_latency.clear();
        assert!(!judge("p95(latency(ready)) < 5s", &waits).0);
    }

    #[test]
    fn a_step_that_did_not_run_fails_its_threshold_and_names_those_that_did() {
        let (held, value) = judge("p95(configur) < 2s", &stats());
        assert!(!held);
        assert_eq!(
            value,
            "no step named `configur` ran (steps: configure, ready, latency(ready))"
        );
    }

    #[test]
    fn unique_fails_on_a_duplicate_a_null_or_nothing_captured() {
        let mut s = stats();
        s.captures = IndexMap::from_iter([
            (
                "port".to_string(),
                vec![json!(50001), json!(50002), json!(50003)],
            ),
            (
                "dup".to_string(),
                vec![json!(1), json!(2), json!(1), json!(1)],
            ),
            ("holes".to_string(), vec![json!(1), serde_json::Value::Null]),
        ]);
        assert_eq!(
            judge("unique(port)", &s),
            (true, "3 distinct values".into())
        );
        assert_eq!(
            judge("unique(dup)", &s),
            (false, "2 duplicates among 4 values: 1, 1".into())
        );
        assert!(
            !judge("unique(holes)", &s).0,
            "a missing value is not distinct"
        );
        let ths = Thresholds::new(vec!["unique(job_id)".into()], false).unwrap();
        let a = ths.judge(&mut s, pos(7), pos(9));
        assert!(!a[0].passed);
        assert_eq!(
            a[0].describe(),
            "threshold `unique(job_id)` not met: no values captured as `job_id` (capture `job_id` in the fan-out's steps)"
        );
    }

    #[test]
    fn without_written_thresholds_failed_and_dropped_are_judged_implicitly() {
        let mut stats = FanoutStats {
            count: 10,
            succeeded: 7,
            failed: 3,
            dropped: 2,
            ..Default::default()
        };
        let a = Thresholds::new(Vec::new(), true)
            .unwrap()
            .judge(&mut stats, pos(4), pos(4));
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].subject, "implicit threshold `failed == 0`");
        assert!(!a[0].passed);
        assert!(
            a[0].describe().starts_with(
                "implicit threshold `failed == 0` not met: 7/10 succeeded, 2 dropped (no `thresholds:` written"
            ),
            "{}",
            a[0].describe()
        );
        assert_eq!(a[1].subject, "implicit threshold `dropped == 0`");
        assert!(!a[1].passed);
        assert!(stats.thresholds.iter().all(|t| t.implicit && !t.passed));
        assert_eq!(
            stats.thresholds_verdict().as_deref(),
            Some("2 of 2 implicit thresholds not met")
        );
        // A closed loop is held to `failed == 0` alone; written thresholds replace it.
        let mut ok = FanoutStats {
            count: 10,
            succeeded: 10,
            ..Default::default()
        };
        let a = Thresholds::new(Vec::new(), false)
            .unwrap()
            .judge(&mut ok, pos(4), pos(4));
        assert_eq!((a.len(), a[0].passed), (1, true));
        let a = Thresholds::new(vec!["error_rate < 50%".into()], false)
            .unwrap()
            .judge(&mut stats, pos(4), pos(4));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].subject, "threshold `error_rate < 50%`");
        assert!(a[0].passed, "30% of the iterations failed");
        assert_eq!(a[0].message, None);
        assert!(!stats.thresholds[0].implicit);
    }

    #[test]
    fn a_failed_cleanup_fails_the_fan_out_whatever_its_thresholds() {
        let mut s = stats();
        s.cleanup_failures = 2;
        s.cleanup_by_reason.insert("status 404".into(), 2);
        let a = Thresholds::new(vec!["error_rate < 50%".into()], false)
            .unwrap()
            .judge(&mut s, pos(7), pos(12));
        assert_eq!(a.len(), 2);
        assert!(a[0].passed);
        assert_eq!((a[1].line, a[1].passed), (12, false));
        assert_eq!(
            a[1].describe(),
            "fan-out cleanup released every iteration 0: found \"2 of 200 iterations' cleanup failed (what they opened may still be open): 2 x status 404\""
        );
        assert_eq!(s.thresholds.len(), 1, "the cleanup is no threshold");
    }

    #[test]
    fn a_threshold_that_does_not_parse_is_refused() {
        let e = Thresholds::new(vec!["succeded == 1".into()], false)
            .err()
            .unwrap();
        assert!(e.contains("did you mean `succeeded`"), "{e}");
    }

    #[test]
    fn equality_allows_for_rounding_only() {
        assert!(op_holds(Op::Eq, 0.1 + 0.2, 0.3));
        assert!(!op_holds(Op::Ne, 0.1 + 0.2, 0.3));
        assert!(!op_holds(Op::Eq, 1.0, 1.0001));
        assert!(op_holds(Op::Ne, 1.0, 1.0001));
    }
}
