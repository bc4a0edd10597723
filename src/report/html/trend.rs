//! The trend section of both pages (`--history DIR`): coverage and pass rate over the last runs,
//! new failures since the previous run, and specs that flip between pass and fail.

use serde::Serialize;

use super::charts::{line_chart, LineChart};
use crate::history::{flaky, new_failures, RunRecord};

#[derive(Serialize)]
pub(super) struct TrendView {
    runs: usize,
    chart: LineChart,
    rows: Vec<TrendRow>,
    /// Failing now, passed in the previous run.
    new_failures: Vec<String>,
    /// Flipped between pass and fail at least twice over the runs: listed apart.
    flaky: Vec<FlakyView>,
    has_previous: bool,
}

#[derive(Serialize)]
struct TrendRow {
    date: String,
    target: String,
    commit: Option<String>,
    pass_rate: String,
    coverage: String,
    cases: String,
}

#[derive(Serialize)]
struct FlakyView {
    id: String,
    flips: usize,
}

/// One label per run, never two alike: the time above the date, with seconds when two runs
/// share a minute, and the run's number in the history when they share a second too.
fn run_labels(runs: &[RunRecord]) -> Vec<String> {
    let format = |f: &str| -> Vec<String> {
        runs.iter()
            .map(|r| r.started_at.format(f).to_string())
            .collect()
    };
    let distinct = |l: &[String]| l.iter().collect::<std::collections::HashSet<_>>().len() == l.len();
    let minutes = format("%H:%M\n%m-%d");
    if distinct(&minutes) {
        return minutes;
    }
    let seconds = format("%H:%M:%S\n%m-%d");
    if distinct(&seconds) {
        return seconds;
    }
    seconds
        .into_iter()
        .enumerate()
        .map(|(i, l)| format!("run {}\n{}", i + 1, l.replacen('\n', " ", 1)))
        .collect()
}

pub(super) fn trend_view(runs: &[RunRecord]) -> Option<TrendView> {
    if runs.is_empty() {
        return None;
    }
    let labels = run_labels(runs);
    let mut series = vec![(
        "pass rate".to_string(),
        "pass",
        runs.iter().map(RunRecord::pass_rate).collect(),
    )];
    if runs.iter().any(|r| r.in_scope > 0) {
        series.push((
            "scope coverage (verified)".to_string(),
            "coverage",
            runs.iter().map(RunRecord::coverage_rate).collect(),
        ));
    }
    let chart = line_chart(
        &format!(
            "Pass rate and scope coverage over the last {} runs",
            runs.len()
        ),
        labels,
        series,
        100.0,
        "%",
    );
    let rows = runs
        .iter()
        .rev()
        .map(|r| TrendRow {
            date: r.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            target: r.target.clone(),
            commit: r.commit.as_ref().map(|c| c.chars().take(10).collect()),
            pass_rate: format!("{:.1}%", r.pass_rate()),
            coverage: if r.in_scope > 0 {
                format!("{} of {}", r.verified, r.in_scope)
            } else {
                "—".into()
            },
            cases: format!(
                "{} passed, {} failed, {} errors, {} skipped",
                r.totals.passed, r.totals.failed, r.totals.errors, r.totals.skipped
            ),
        })
        .collect();
    Some(TrendView {
        runs: runs.len(),
        chart,
        rows,
        new_failures: new_failures(runs),
        flaky: flaky(runs)
            .into_iter()
            .map(|(id, flips)| FlakyView { id, flips })
            .collect(),
        has_previous: runs.len() > 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    // Read from JSON, as from a history file: fields added to the record later keep defaults.
    fn at(h: u32, m: u32, s: u32) -> RunRecord {
        let t = Utc.with_ymd_and_hms(2026, 12, 4, h, m, s).unwrap();
        serde_json::from_value(serde_json::json!({
            "started_at": t, "target": "sim",
            "totals": {"specs": 1, "cases": 1, "passed": 1, "failed": 0, "errors": 0, "skipped": 0}
        }))
        .unwrap()
    }

    #[test]
    fn labels_are_unique_with_the_precision_they_need() {
        assert_eq!(
            run_labels(&[at(9, 1, 0), at(9, 2, 0)]),
            ["09:01\n12-04", "09:02\n12-04"]
        );
        // Two runs in one minute: seconds for all.
        assert_eq!(
            run_labels(&[at(9, 1, 5), at(9, 1, 40), at(9, 3, 0)]),
            ["09:01:05\n12-04", "09:01:40\n12-04", "09:03:00\n12-04"]
        );
        // Two runs in one second: numbered.
        assert_eq!(
            run_labels(&[at(9, 1, 5), at(9, 1, 5)]),
            ["run 1\n09:01:05 12-04", "run 2\n09:01:05 12-04"]
        );
    }
}
