//! The trend section of both pages (`--history DIR`): coverage and pass rate over the last runs,
//! new failures since the previous run, and specs that flip between pass and fail.

use serde::Serialize;

use super::charts::{line_chart, LineChart};
use crate::history::{flaky, new_failures, RunRecord};
use crate::results::TargetKind;

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
    /// What kinds of target the runs were on: one line, a warning when they differ (a trend
    /// across a simulator and a real server must say so).
    kinds: KindsView,
}

#[derive(Serialize)]
struct KindsView {
    mixed: bool,
    text: String,
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
    let distinct =
        |l: &[String]| l.iter().collect::<std::collections::HashSet<_>>().len() == l.len();
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
            target: r.target_label(),
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
        kinds: kinds_view(runs),
    })
}

/// The kinds of target of `runs`, with which runs (1-based, oldest first) ran on each when
/// they differ.
fn kinds_view(runs: &[RunRecord]) -> KindsView {
    let label = |r: &RunRecord| match &r.target_kind {
        Some(TargetKind::Embedded) => "the embedded simulator".to_string(),
        Some(TargetKind::Simulator) => "a simulator".to_string(),
        Some(TargetKind::Remote) => format!("{} (a real server)", r.target),
        _ => format!("{} (kind of target not recorded)", r.target),
    };
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let l = label(r);
        match groups.iter_mut().find(|(g, _)| *g == l) {
            Some((_, v)) => v.push(i + 1),
            None => groups.push((l, vec![i + 1])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(l, v)| format!("{l}: {}", runs_list(v)))
        .collect();
    let mut kinds: Vec<Option<&str>> = runs
        .iter()
        .map(|r| r.target_kind.as_ref().map(TargetKind::as_str))
        .collect();
    kinds.sort();
    kinds.dedup();
    if kinds.len() == 1 {
        let all = if runs.len() == 1 {
            "The run"
        } else {
            "All runs"
        };
        let text = match groups.as_slice() {
            [(only, _)] => format!("{all} on {only}."),
            // Several servers of one kind: same kind, still named.
            _ => format!("{all} on the same kind of target ({}).", parts.join("; ")),
        };
        return KindsView { mixed: false, text };
    }
    KindsView {
        mixed: true,
        text: format!(
            "These runs were on different kinds of target ({}): a change between them may come from the target, not from the system, and a simulator's pass rate or coverage says nothing about a real server's.",
            parts.join("; ")
        ),
    }
}

/// `run 3`, `runs 1-3`, `runs 1, 4-5` (1-based, oldest first).
fn runs_list(v: &[usize]) -> String {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for &n in v {
        match spans.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => spans.push((n, n)),
        }
    }
    let text: Vec<String> = spans
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    let word = if v.len() == 1 { "run" } else { "runs" };
    format!("{word} {}", text.join(", "))
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

    fn rec(target: &str, kind: Option<&str>) -> RunRecord {
        RunRecord {
            started_at: "2026-01-01T10:00:00Z".parse().unwrap(),
            target: target.into(),
            target_kind: kind.map(TargetKind::from_word),
            commit: None,
            shard: None,
            totals: Default::default(),
            verified: 0,
            in_scope: 0,
            coverage: Default::default(),
            specs: Default::default(),
            p95: Default::default(),
        }
    }

    #[test]
    fn a_trend_across_kinds_says_so() {
        let emb = || rec("embedded", Some("embedded"));
        let stg = || rec("staging", Some("remote"));
        let same = kinds_view(&[emb(), emb()]);
        assert!(!same.mixed);
        assert_eq!(same.text, "All runs on the embedded simulator.");
        let mixed = kinds_view(&[emb(), emb(), stg(), emb(), rec("old", None)]);
        assert!(mixed.mixed);
        let two = kinds_view(&[stg(), rec("prod", Some("remote"))]);
        assert!(!two.mixed);
        assert_eq!(
            two.text,
            "All runs on the same kind of target (staging (a real server): run 1; prod (a real server): run 2)."
        );
        assert!(
            mixed.text.starts_with("These runs were on different kinds of target (the embedded simulator: runs 1-2, 4; staging (a real server): run 3; old (kind of target not recorded): run 5)"),
            "{}",
            mixed.text
        );
    }
}
