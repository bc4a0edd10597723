//! The statistics of a fan-out, kept as its iterations finish (bounded memory whatever the
//! count), one [`Aggregate`] per lane, merged at the end into the results' `FanoutStats`.

use std::collections::HashSet;
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::Value;

use super::latency::{StepAgg, MAX_HELD_SAMPLES};
use super::reasons::{bounded, count_reason, MAX_SAMPLE_CHARS, MAX_SAMPLE_FAILURES};
use super::{IterationOutcome, Measure, Sample};
use crate::results::{ms, FanoutStats, Status};
use crate::spec::threshold::Threshold;

/// Up to this many iterations, every captured value is kept in the statistics (reports show
/// them); beyond, only the captures a threshold or the fan-out's own capture/expect uses.
const KEEP_ALL_CAPTURES_UP_TO: usize = 10_000;

/// Which captured values the statistics keep.
#[derive(Debug)]
pub enum KeepCaptures {
    All,
    Only(HashSet<String>),
}

impl KeepCaptures {
    /// For a load of `count` iterations: all of them when few, or when `reads_captures` (the
    /// fan-out's own capture or checks read `$.captures`); else those a `unique(name)` among
    /// `thresholds` (as written) judges.
    pub fn for_load(count: usize, reads_captures: bool, thresholds: &[String]) -> KeepCaptures {
        if count <= KEEP_ALL_CAPTURES_UP_TO || reads_captures {
            return KeepCaptures::All;
        }
        KeepCaptures::Only(
            thresholds
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

/// A step's statistics, added on its first sample. Found by comparing names: a fan-out has a
/// few steps, and hashing the name of every sample cost more than reading the list.
fn step_agg<'a>(
    steps: &'a mut IndexMap<String, StepAgg>,
    name: &str,
    measure: &Measure,
) -> &'a mut StepAgg {
    let i = match steps.iter().position(|(k, _)| k == name) {
        Some(i) => i,
        None => {
            let agg = StepAgg::new(measure.clone());
            steps.insert_full(name.to_string(), agg).0
        }
    };
    &mut steps[i]
}

/// Everything the report needs from the iterations, kept as they finish (bounded memory).
#[derive(Default)]
pub struct Aggregate {
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
    /// Open loop: scheduled starts dropped (`max_in_flight` iterations were running).
    dropped: usize,
    finished: usize,
}

impl Aggregate {
    /// "load: 12000 iterations, 198.7/s, 3 failed, 0 dropped, p95(configure) 41ms", `elapsed`
    /// in the spec's time.
    pub fn live_line(&self, label: &str, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(1e-9);
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
    pub fn merge_counts(&mut self, other: &Aggregate) {
        self.finished += other.finished;
        self.succeeded += other.succeeded;
        self.dropped += other.dropped;
        if let Some((name, a)) = other.steps.first() {
            match self.steps.get_mut(name) {
                Some(mine) => {
                    let _ = mine.hist.add(&a.hist);
                }
                None => {
                    let mut copy = StepAgg::new(a.measure.clone());
                    let _ = copy.hist.add(&a.hist);
                    self.steps.insert(name.clone(), copy);
                }
            }
        }
    }

    /// Takes in another lane's statistics.
    pub fn merge(&mut self, other: Aggregate) {
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
    pub fn add(&mut self, mut o: IterationOutcome, keep: &KeepCaptures) -> Vec<Sample> {
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
                step_agg(&mut self.last_request, &sm.step, &Measure::RequestLatency).record(req);
            }
            let agg = step_agg(&mut self.steps, &sm.step, &sm.measure);
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

    /// Counts a scheduled start of an open loop that was dropped (`max_in_flight` running).
    pub fn start_dropped(&mut self) {
        self.dropped += 1;
    }

    /// Counts iteration `i`'s failed cleanup by its reason, keeping a few as samples.
    pub fn cleanup_failed(&mut self, i: usize, reason: String) {
        self.cleanup_failures += 1;
        if self.cleanup_sample_failures.len() < MAX_SAMPLE_FAILURES {
            self.cleanup_sample_failures.push(format!(
                "iteration {i}: {}",
                bounded(&reason, MAX_SAMPLE_CHARS)
            ));
        }
        count_reason(&mut self.cleanup_by_reason, reason, 1);
    }

    /// The results value of a fan-out of `count` iterations (the scheduled ones, for a load
    /// that ran for a time) that took `duration`; its thresholds are judged next
    /// ([`super::Thresholds::judge`]).
    pub fn finish(mut self, count: usize, concurrency: usize, duration: Duration) -> FanoutStats {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcome(index: usize, ms: f64, failed: bool) -> IterationOutcome {
        IterationOutcome {
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
        }
    }

    #[test]
    fn lanes_merge_into_the_statistics_of_one() {
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
    fn throughput_counts_successes_per_second_of_the_run() {
        let mut agg = Aggregate::default();
        for i in 0..30 {
            agg.add(outcome(i, 5.0, i % 3 == 0), &KeepCaptures::All);
        }
        (0..4).for_each(|_| agg.start_dropped());
        let s = agg.finish(34, 2, Duration::from_millis(2500));
        assert_eq!((s.succeeded, s.failed, s.dropped), (20, 14, 4));
        assert_eq!(s.throughput_per_s, 8.0, "20 successes in 2.5 s");
        assert_eq!(s.duration_ms, 2500.0);
        assert_eq!(
            s.summary(),
            "20/34 succeeded, 10 x 503 capacity reached, 4 dropped"
        );
        // Rounded to hundredths; a run measured as taking no time divides by almost nothing.
        let mut agg = Aggregate::default();
        agg.add(outcome(0, 5.0, false), &KeepCaptures::All);
        assert_eq!(
            agg.finish(1, 1, Duration::from_secs(3)).throughput_per_s,
            0.33
        );
        let mut agg = Aggregate::default();
        agg.add(outcome(0, 5.0, false), &KeepCaptures::All);
        assert!(agg
            .finish(1, 1, Duration::ZERO)
            .throughput_per_s
            .is_finite());
    }

    #[test]
    fn a_live_line_reads_the_counts_of_every_lane() {
        let (mut a, mut b) = (Aggregate::default(), Aggregate::default());
        for i in 0..40 {
            let lane = if i % 2 == 0 { &mut a } else { &mut b };
            lane.add(outcome(i, 40.0, i == 7), &KeepCaptures::All);
        }
        b.start_dropped();
        b.start_dropped();
        let mut view = Aggregate::default();
        view.merge_counts(&a);
        view.merge_counts(&b);
        assert_eq!(
            view.live_line("load", Duration::from_secs(2)),
            "load: 40 iterations, 20.0/s, 1 failed, 2 dropped, p95(configure) 40ms"
        );
    }

    #[test]
    fn a_large_load_keeps_only_the_captures_it_judges() {
        let ths = ["unique(port)".to_string(), "failed == 0".to_string()];
        assert!(matches!(
            KeepCaptures::for_load(100, false, &ths),
            KeepCaptures::All
        ));
        assert!(matches!(
            KeepCaptures::for_load(1_000_000, true, &ths),
            KeepCaptures::All
        ));
        let keep = KeepCaptures::for_load(1_000_000, false, &ths);
        assert!(keep.keeps("port") && !keep.keeps("job_id"));
        let mut agg = Aggregate::default();
        let mut o = outcome(0, 1.0, false);
        o.captures.insert("job_id".into(), json!("1-1"));
        agg.add(o, &keep);
        let s = agg.finish(1, 1, Duration::from_secs(1));
        assert_eq!(s.captures.keys().collect::<Vec<_>>(), ["port"]);
    }

    #[test]
    fn cleanup_failures_are_counted_by_reason_with_a_bounded_sample() {
        let outcome = |index: usize, reason: Option<&str>| IterationOutcome {
            cleanup_reason: reason.map(str::to_string),
            ..IterationOutcome::new(index, Vec::new())
        };
        let (mut a, mut b) = (Aggregate::default(), Aggregate::default());
        for i in 0..20 {
            let reason = match i % 4 {
                0 => None,
                3 => Some("error: timeout"),
                _ => Some("404 unknown job_id"),
            };
            let lane = if i % 2 == 0 { &mut a } else { &mut b };
            let mut o = outcome(i, reason);
            o.started = true;
            lane.add(o, &KeepCaptures::All);
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
    fn errors_keep_their_whole_text_in_the_samples() {
        let full = "error: request to https://127.0.0.1:36285/configure: error sending request: connection closed before message completed";
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
    }

    #[test]
    fn a_polled_step_keeps_its_last_request_and_the_times_it_held() {
        let mut agg = Aggregate::default();
        for (i, held) in [true, false, true].into_iter().enumerate() {
            let mut o = IterationOutcome::new(i, Vec::new());
            o.started = true;
            o.latencies.push(Sample {
                step: "ready".into(),
                time: 1000.0 * (i + 1) as f64,
                measure: Measure::TimeUntilHeld,
                last_request: Some(3.0),
                held,
            });
            agg.add(o, &KeepCaptures::All);
        }
        let s = agg.finish(3, 1, Duration::from_secs(1));
        assert_eq!(s.steps["ready"].held_samples, [1000.0, 3000.0]);
        assert_eq!(s.steps["ready"].measure, Some(Measure::TimeUntilHeld));
        assert_eq!(s.request_latency["ready"].count, 3);
        assert_eq!(
            s.request_latency["ready"].measure,
            Some(Measure::RequestLatency)
        );
    }
}
