//! Statistics of a fan-out (issue 26): what an iteration emits ([`Sample`]s in an
//! [`IterationOutcome`]), their aggregation ([`Aggregate`]: streaming per-step histograms and
//! percentiles, counts, rates, failures by reason), the thresholds judged against it
//! ([`Thresholds`]), and the [`FanoutStats`](crate::results::FanoutStats) results value.
//!
//! The fan-out executor (`engine::fanout`) only schedules iterations and sends what they
//! emitted here, one [`Aggregate`] per lane, merged at the end; reporters read the results
//! value, never this module nor the engine. Thresholds are parsed with the spec model
//! ([`crate::spec::threshold`], so `validate` checks them) and evaluated here.
//!
//! A step's figure: an HTTP step counts its request's latency, the time from handing the built
//! request to the client until the whole response body arrived (monotonic clock); a polled or
//! waiting step the time until its condition held, in the spec's time; any other step its own
//! duration ([`step_time`]).

mod aggregate;
mod latency;
mod reasons;
mod thresholds;

pub use aggregate::{Aggregate, KeepCaptures};
pub use latency::step_time;
pub use reasons::{bounded, failure_reason};
pub use thresholds::Thresholds;

use indexmap::IndexMap;
use serde_json::Value;

pub use crate::results::Measure;
use crate::results::{Status, StepResult};

/// One step's figure in one iteration.
#[derive(Debug)]
pub struct Sample {
    pub step: String,
    pub time: f64,
    pub measure: Measure,
    /// For a polled request: the last request's latency (`latency(step)` in thresholds).
    pub last_request: Option<f64>,
    /// A poll whose condition held (its time is a readiness sample for the reports).
    pub held: bool,
}

impl Sample {
    /// The sample of a step that ran (see [`step_time`]); `lag_ms` (an open loop's wait between
    /// the scheduled and the real start) is added to its time.
    #[inline]
    pub fn of_step(r: StepResult, lag_ms: f64) -> Sample {
        let (time, measure) = step_time(&r);
        let last_request = r
            .poll
            .as_ref()
            .and(r.response.as_ref())
            .map(|x| x.elapsed_ms);
        Sample {
            time: time + lag_ms,
            measure,
            last_request,
            held: r.poll.as_ref().is_some_and(|p| p.satisfied),
            step: r.name,
        }
    }
}

/// What one iteration left behind: what the executor sends to the statistics.
#[derive(Debug)]
pub struct IterationOutcome {
    pub index: usize,
    pub started: bool,
    pub status: Status,
    pub reason: Option<String>,
    /// Per step that ran: its sample.
    pub latencies: Vec<Sample>,
    pub captures: IndexMap<String, Value>,
    /// Why its own cleanup failed (loads that release each iteration as it ends).
    pub cleanup_reason: Option<String>,
}

impl IterationOutcome {
    /// Iteration `index`, not started yet; `latencies` is a list to reuse (emptied here).
    pub fn new(index: usize, mut latencies: Vec<Sample>) -> IterationOutcome {
        latencies.clear();
        IterationOutcome {
            index,
            started: false,
            status: Status::Passed,
            reason: None,
            latencies,
            captures: IndexMap::new(),
            cleanup_reason: None,
        }
    }
}
