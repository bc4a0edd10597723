//! One step's figures: what a step counts ([`step_time`]), and their streaming statistics (an
//! HDR histogram, percentiles, buckets for the reports).

use hdrhistogram::Histogram;

use super::Measure;
use crate::results::{Bucket, LatencyStats, StepResult};

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

/// Times of successful polls kept per step for the readiness distribution (bounded).
pub(super) const MAX_HELD_SAMPLES: usize = 10_000;

/// The figure a step contributes to the fan-out's statistics and thresholds.
pub fn step_time(r: &StepResult) -> (f64, Measure) {
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

/// Streaming statistics of one step: an HDR histogram (3 significant digits) in microseconds.
pub(super) struct StepAgg {
    pub(super) hist: Histogram<u64>,
    sum_ms: f64,
    pub(super) measure: Measure,
    pub(super) held: Vec<f64>,
}

impl StepAgg {
    pub(super) fn new(measure: Measure) -> StepAgg {
        StepAgg {
            hist: Histogram::new(3).expect("3 significant digits is a valid precision"),
            sum_ms: 0.0,
            measure,
            held: Vec::new(),
        }
    }

    /// Takes in the same step's statistics from another lane.
    pub(super) fn merge(&mut self, other: StepAgg) {
        // Auto-resizing histograms take any other's values.
        let _ = self.hist.add(&other.hist);
        self.sum_ms += other.sum_ms;
        let room = MAX_HELD_SAMPLES.saturating_sub(self.held.len());
        self.held.extend(other.held.into_iter().take(room));
    }

    pub(super) fn record(&mut self, v_ms: f64) {
        let us = (v_ms.max(0.0) * 1000.0).round() as u64;
        // Auto-resizing histograms only refuse values beyond u64 range: nothing to lose here.
        let _ = self.hist.record(us.max(1));
        self.sum_ms += v_ms;
    }

    /// The step's figures as the results keep them: percentiles to 3 significant digits (never
    /// above the largest value), an exact mean, and the non-empty span of the buckets.
    pub(super) fn stats(&self) -> LatencyStats {
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
            measure: Some(self.measure.clone()),
            held_samples: self.held.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{PollInfo, ResponseExcerpt, StepResult};

    #[test]
    fn streaming_percentiles_keep_three_significant_digits() {
        let mut a = StepAgg::new(Measure::RequestLatency);
        for v in 1..=100 {
            a.record(f64::from(v));
        }
        let s = a.stats();
        let close = |x: f64, want: f64| (x - want).abs() <= want * 0.001;
        assert!(close(s.p50, 50.0), "{}", s.p50);
        assert!(close(s.p90, 90.0), "{}", s.p90);
        assert!(close(s.p95, 95.0), "{}", s.p95);
        assert!(close(s.p99, 99.0), "{}", s.p99);
        assert!(close(s.max, 100.0) && close(s.min, 1.0));
        assert_eq!(s.count, 100);
        assert!((s.mean - 50.5).abs() < 1e-9, "the mean is exact");
        assert_eq!(s.histogram.iter().map(|b| b.count).sum::<usize>(), 100);
        assert_eq!(s.measure, Some(Measure::RequestLatency));
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
    fn one_value_is_every_percentile_and_nothing_is_no_figures() {
        let mut a = StepAgg::new(Measure::Duration);
        a.record(41.7);
        let s = a.stats();
        let close = |x: f64| (x - 41.7).abs() <= 41.7 * 0.001;
        assert!(
            [s.min, s.p50, s.p90, s.p95, s.p99, s.max]
                .into_iter()
                .all(close),
            "{s:?}"
        );
        assert_eq!(s.count, 1);
        assert_eq!(s.histogram.len(), 1, "only the bucket that holds it");
        assert_eq!((s.histogram[0].le_ms, s.histogram[0].count), (50.0, 1));
        let empty = StepAgg::new(Measure::Duration).stats();
        assert_eq!((empty.count, empty.p95, empty.measure), (0, 0.0, None));
    }

    #[test]
    fn buckets_count_each_value_once_up_to_an_open_last_one() {
        let mut a = StepAgg::new(Measure::RequestLatency);
        for v in [0.5, 3.0, 3.0, 40.0, 60_000.0] {
            a.record(v);
        }
        let s = a.stats();
        let b: Vec<(f64, usize)> = s.histogram.iter().map(|b| (b.le_ms, b.count)).collect();
        assert_eq!(b.first(), Some(&(1.0, 1)));
        assert_eq!(
            b.last(),
            Some(&(f64::MAX, 1)),
            "beyond 30 s: the open bucket"
        );
        assert_eq!(b.iter().find(|x| x.0 == 5.0), Some(&(5.0, 2)));
        assert_eq!(b.iter().find(|x| x.0 == 50.0), Some(&(50.0, 1)));
        assert_eq!(b.iter().map(|x| x.1).sum::<usize>(), 5);
    }

    #[test]
    fn lanes_merge_into_one_histogram() {
        let (mut a, mut b, mut one) = (
            StepAgg::new(Measure::RequestLatency),
            StepAgg::new(Measure::RequestLatency),
            StepAgg::new(Measure::RequestLatency),
        );
        for v in 1..=1000 {
            let lane = if v % 3 == 0 { &mut a } else { &mut b };
            lane.record(f64::from(v));
            one.record(f64::from(v));
        }
        a.merge(b);
        let (m, s) = (a.stats(), one.stats());
        assert_eq!(
            (m.count, m.p50, m.p99, m.max),
            (s.count, s.p50, s.p99, s.max)
        );
    }

    #[test]
    fn a_step_counts_its_request_its_wait_or_its_duration() {
        let step =
            |response: Option<f64>, poll: Option<(bool, f64)>, simulated: Option<f64>| StepResult {
                duration_ms: 120.0,
                simulated_ms: simulated,
                response: response.map(|elapsed_ms| ResponseExcerpt {
                    status: 200,
                    headers: Vec::new(),
                    body: None,
                    truncated: false,
                    elapsed_ms,
                    raw_bytes: None,
                    version: None,
                    url: None,
                    note: None,
                }),
                poll: poll.map(|(satisfied, timeout_ms)| PollInfo {
                    attempts: 3,
                    elapsed_ms: 100.0,
                    interval_ms: 10.0,
                    timeout_ms,
                    satisfied,
                    simulated_elapsed_ms: None,
                    last_mismatch: None,
                }),
                ..Default::default()
            };
        assert_eq!(
            step_time(&step(Some(7.5), None, None)),
            (7.5, Measure::RequestLatency)
        );
        assert_eq!(
            step_time(&step(None, None, None)),
            (120.0, Measure::Duration)
        );
        assert_eq!(
            step_time(&step(None, None, Some(3000.0))),
            (3000.0, Measure::Duration),
            "a waiting step on a scaled simulator: its simulated time"
        );
        assert_eq!(
            step_time(&step(Some(7.5), Some((true, 500.0)), None)),
            (120.0, Measure::TimeUntilHeld)
        );
        assert_eq!(
            step_time(&step(Some(7.5), Some((false, 500.0)), None)),
            (500.0, Measure::TimeUntilHeld),
            "a poll that gave up counts at least its timeout"
        );
        let s = super::super::Sample::of_step(step(Some(7.5), Some((true, 500.0)), None), 2.0);
        assert_eq!((s.time, s.last_request, s.held), (122.0, Some(7.5), true));
    }
}
