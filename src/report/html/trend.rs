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

pub(super) fn trend_view(runs: &[RunRecord]) -> Option<TrendView> {
    if runs.is_empty() {
        return None;
    }
    let labels = runs
        .iter()
        .map(|r| r.started_at.format("%m-%d %H:%M").to_string())
        .collect();
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
