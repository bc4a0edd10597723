//! Fan-out thresholds (k6 style): `succeeded == count`, `p95(configure) < 2s`, `unique(port)`.
//! Parsed here so `validate` can check them; evaluated by the engine's fan-out.

#[derive(Debug, Clone, PartialEq)]
pub enum Threshold {
    /// `succeeded == 200`, `p95(configure) < 2s`, `success_rate >= 99%`
    Compare { metric: Metric, op: Op, rhs: Rhs },
    /// `unique(stream_port)`: the captured values of all iterations are distinct.
    Unique(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// count, started, succeeded, failed, success_rate, error_rate, throughput, cleanup_failures,
    /// duration, dropped
    Counter(String),
    /// min/mean/p50/p90/p95/p99/max of a step's latency
    Latency { stat: String, step: String },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rhs {
    Number(f64),
    /// The fan-out's own `count`.
    Count,
}

const COUNTERS: &[&str] = &[
    "count",
    "started",
    "succeeded",
    "failed",
    "success_rate",
    "error_rate",
    "throughput",
    "cleanup_failures",
    "duration",
    "dropped",
];
const STATS: &[&str] = &["min", "mean", "p50", "p90", "p95", "p99", "max"];

impl Threshold {
    /// Parses a threshold; templates must be rendered first.
    pub fn parse(src: &str) -> Result<Threshold, String> {
        let s = src.trim();
        let help = "write e.g. `succeeded == count`, `failed == 0`, `success_rate >= 99%`, `p95(configure) < 2s`, `unique(stream_port)`";
        if let Some(inner) = s.strip_prefix("unique(").and_then(|r| r.strip_suffix(')')) {
            let name = inner.trim();
            if name.is_empty() {
                return Err(format!(
                    "threshold `{src}`: unique() needs a captured variable name"
                ));
            }
            return Ok(Threshold::Unique(name.to_string()));
        }
        let ops = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (i, op, len) = ops
            .iter()
            .filter_map(|(t, o)| s.find(t).map(|i| (i, *o, t.len())))
            .min_by_key(|(i, _, _)| *i)
            .ok_or_else(|| format!("threshold `{src}` has no comparison; {help}"))?;
        let (lhs, rhs) = (s[..i].trim(), s[i + len..].trim());
        let metric = if let Some(open) = lhs.find('(') {
            let stat = lhs[..open].trim();
            // `p95(latency(consumer ready))`: the inner parentheses belong to the step's series.
            let inner = &lhs[open + 1..];
            let step = inner.strip_suffix(')').unwrap_or(inner).trim();
            if !STATS.contains(&stat) {
                return Err(format!(
                    "threshold `{src}`: unknown statistic `{stat}` (one of {})",
                    STATS.join(", ")
                ));
            }
            Metric::Latency {
                stat: stat.into(),
                step: step.into(),
            }
        } else if COUNTERS.contains(&lhs) {
            Metric::Counter(lhs.into())
        } else {
            return Err(format!(
                "threshold `{src}`: unknown metric `{lhs}` (one of {}, or p95(step) etc.){}",
                COUNTERS.join(", "),
                crate::spec::diag::did_you_mean(lhs, COUNTERS.iter().copied())
                    .map(|h| format!("; {h}"))
                    .unwrap_or_default()
            ));
        };
        let rhs = if rhs == "count" {
            Rhs::Count
        } else if let Some(p) = rhs.strip_suffix('%') {
            Rhs::Number(
                p.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("threshold `{src}`: bad percentage `{rhs}`"))?
                    / 100.0,
            )
        } else if let Ok(n) = rhs.parse::<f64>() {
            Rhs::Number(n)
        } else {
            let d = crate::spec::parse_duration(rhs).map_err(|_| format!("threshold `{src}`: `{rhs}` is not a number, a percentage, a duration or `count`"))?;
            Rhs::Number(d.as_secs_f64() * 1000.0)
        };
        Ok(Threshold::Compare { metric, op, rhs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_thresholds() {
        assert_eq!(
            Threshold::parse("succeeded == count").unwrap(),
            Threshold::Compare {
                metric: Metric::Counter("succeeded".into()),
                op: Op::Eq,
                rhs: Rhs::Count
            }
        );
        assert_eq!(
            Threshold::parse("p95(configure) < 2s").unwrap(),
            Threshold::Compare {
                metric: Metric::Latency {
                    stat: "p95".into(),
                    step: "configure".into()
                },
                op: Op::Lt,
                rhs: Rhs::Number(2000.0)
            }
        );
        assert_eq!(
            Threshold::parse("success_rate >= 99%").unwrap(),
            Threshold::Compare {
                metric: Metric::Counter("success_rate".into()),
                op: Op::Ge,
                rhs: Rhs::Number(0.99)
            }
        );
        assert_eq!(
            Threshold::parse("unique(stream_port)").unwrap(),
            Threshold::Unique("stream_port".into())
        );
        // k6's way to tolerate errors: the share of failed iterations.
        assert_eq!(
            Threshold::parse("error_rate < 1%").unwrap(),
            Threshold::Compare {
                metric: Metric::Counter("error_rate".into()),
                op: Op::Lt,
                rhs: Rhs::Number(0.01)
            }
        );
        assert!(Threshold::parse("succeded == 1")
            .unwrap_err()
            .contains("did you mean `succeeded`"));
        assert!(Threshold::parse("p42(x) < 1").is_err());
        assert!(Threshold::parse("failed").is_err());
    }
}
