//! The `fanout` step: a block of steps run many times concurrently, closed or open loop.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{KindModel, Step};
use crate::spec::{Count, Dur};

/// Run a block of steps `count` times with at most `concurrency` in flight.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fanout {
    /// Number of iterations (with `duration` or `stages`: at most this many; one of them is
    /// needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Count>,
    /// Keep starting iterations for this long (simulated time on a scaled simulator): closed loop
    /// with `concurrency` workers, or open loop at `rate`. Each iteration's cleanup then runs right
    /// after it, so memory stays flat however long the load runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Dur>,
    /// Open loop (k6's arrival rate): start iterations at this rate whatever the response times,
    /// e.g. `50/s`, `600/m`. Latency counts from the scheduled start (no coordinated omission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// Open loop (k6's ramping arrival rate): rates to ramp to, each reached linearly over its
    /// duration, starting from `rate` (or 0 without it). After the last stage its rate holds
    /// until `duration`, if that is longer; without `duration` the stages' end ends the load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// Open loop: at most this many iterations in flight; a start that finds it reached is
    /// dropped and counted (`dropped`), never delayed. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<Count>,
    /// Iterations in flight at once (default = count: all start together behind a barrier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Count>,
    /// Spread iteration starts over this time instead of a barrier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_up: Option<Dur>,
    /// Stop starting iterations and fail after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Dur>,
    /// A load with `duration` (or `stages`): how long iterations still running when it ends may
    /// go on (k6's `gracefulStop`, default 30s). Then they are cut, counted as failed, and their
    /// cleanup runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_stop: Option<Dur>,
    /// Steps of one iteration (`index` = 0..count-1 is set; captures stay per iteration).
    pub steps: Vec<Step>,
    /// Per-iteration cleanup, with that iteration's variables. It runs once every iteration has
    /// finished its steps (so what the block opened is open together), always: after failures,
    /// past the deadline and on Ctrl-C.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cleanup: Vec<Step>,
    /// Aggregate thresholds, e.g. `succeeded == count`, `p95(configure) < 2s`, `unique(stream_port)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<String>,
}

/// One stage of an open-loop ramp: reach `rate` linearly over `duration`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub duration: Dur,
    /// Target rate at the end of the stage, e.g. `50/s`.
    pub rate: String,
}

/// Parses an arrival rate (`50/s`, `600/m`, `3600/h`, or a plain number per second) into
/// iterations per second.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (n, per) = match t.split_once('/') {
        Some((n, u)) => (
            n.trim(),
            match u.trim() {
                "s" | "sec" | "second" => 1.0,
                "m" | "min" | "minute" => 60.0,
                "h" | "hour" => 3600.0,
                other => {
                    return Err(format!(
                        "rate `{s}`: unknown unit `{other}` (write e.g. `50/s`, `600/m`)"
                    ))
                }
            },
        ),
        None => (t, 1.0),
    };
    let n: f64 = n
        .parse()
        .map_err(|_| format!("rate `{s}` is not a number per time unit (write e.g. `50/s`)"))?;
    let r = n / per;
    if !(r.is_finite() && (0.0..=1_000_000.0).contains(&r)) {
        return Err(format!(
            "rate `{s}` must be between 0 and 1,000,000 per second"
        ));
    }
    Ok(r)
}

impl KindModel for Fanout {
    fn name(&self) -> &'static str {
        "fanout"
    }
    fn label(&self) -> String {
        match (&self.count, &self.duration) {
            (Some(c), _) => format!("fanout x{c}"),
            (None, Some(d)) => format!("fanout for {}", d.0),
            (None, None) => "fanout".into(),
        }
    }
    fn blocks(&self) -> Vec<(&'static str, &[Step])> {
        vec![
            ("fanout.steps", &self.steps),
            ("fanout.cleanup", &self.cleanup),
        ]
    }
    fn blocks_mut(&mut self) -> Vec<(&'static str, &mut Vec<Step>)> {
        vec![
            ("fanout.steps", &mut self.steps),
            ("fanout.cleanup", &mut self.cleanup),
        ]
    }
    fn waits(&self) -> bool {
        true
    }
}
