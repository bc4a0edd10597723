//! The coverage page's view model: in-scope items and their outcomes by area, the hard
//! requirements stated for a manager, gaps, backlog and excluded items.

use std::collections::HashMap;

use serde::Serialize;

use super::summary::fanout_summary;
use super::{fmt_ms, Anchors};
use crate::results::{Coverage, CoverageOutcome, RunReport, SpecOutcome};

#[derive(Serialize)]
pub(super) struct CoverageView {
    catalog_title: String,
    in_scope: usize,
    verified: usize,
    failing: usize,
    gaps: usize,
    skipped: usize,
    not_run: usize,
    headline: String,
    /// Where the outcomes were established, stated beside the headline: a simulator's verdict
    /// must not read as a real server's.
    target: Option<WhereView>,
    verdict: &'static str,
    /// Stacked bar of the in-scope outcomes (percent widths).
    bar: Vec<BarPart>,
    hard: Vec<HardView>,
    areas: Vec<AreaView>,
    gap_list: Vec<String>,
    backlog: Vec<ExcludedView>,
    excluded: Vec<ExcludedView>,
}

#[derive(Serialize)]
struct WhereView {
    /// `embedded`, `simulator`, `remote`, or `mixed` when the items were established on several.
    kind: String,
    kind_label: String,
    /// "the embedded simulator", "staging (a real server)".
    text: String,
    real: bool,
    /// What the outcomes do and do not show, for a reader who skims.
    note: String,
}

#[derive(Serialize)]
struct BarPart {
    outcome: CoverageOutcome,
    label: String,
    count: usize,
    percent: f64,
}

#[derive(Serialize)]
struct HardView {
    id: String,
    title: String,
    area: String,
    outcome: CoverageOutcome,
    /// With where: "Verified on the embedded simulator".
    outcome_label: String,
    /// A sentence for a manager: "Met on the embedded simulator: 200 of 200 succeeded".
    statement: String,
    /// For an outcome established on a simulator: what it does not show.
    simulated: Option<String>,
    /// Whether to show the outcome badge: not when the statement already says the outcome and
    /// where ("Met on the embedded simulator: ..."), which would say it twice.
    badge: bool,
    specs: Vec<HardSpec>,
}

#[derive(Serialize)]
struct HardSpec {
    id: String,
    title: String,
    outcome: SpecOutcome,
    outcome_label: &'static str,
    fanouts: Vec<String>,
    failed_thresholds: Vec<String>,
}

#[derive(Serialize)]
struct AreaView {
    id: String,
    title: String,
    anchor: String,
    counts: String,
    items: Vec<ItemView>,
}

#[derive(Serialize)]
struct ItemView {
    id: String,
    title: String,
    backlog: bool,
    hard_requirement: bool,
    outcome: CoverageOutcome,
    /// "Verified on the embedded simulator", "Failing on staging (a real server)", "Gap — no spec".
    outcome_label: String,
    specs: Vec<CoveringView>,
}

#[derive(Serialize)]
struct CoveringView {
    /// Anchor of the spec in summary.html, when it ran.
    anchor: Option<String>,
    id: String,
    title: String,
    file: String,
    outcome: SpecOutcome,
    outcome_label: &'static str,
    cases: String,
}

#[derive(Serialize)]
struct ExcludedView {
    id: String,
    title: String,
    area: String,
    reason: String,
}

pub(super) fn coverage_view(
    c: &Coverage,
    r: &RunReport,
    spec_anchor: &HashMap<String, String>,
    anchors: &mut Anchors,
) -> CoverageView {
    let mut counts: HashMap<&CoverageOutcome, usize> = HashMap::new();
    let mut hard = Vec::new();
    let mut areas = Vec::new();
    for area in &c.areas {
        let mut area_counts: HashMap<&CoverageOutcome, usize> = HashMap::new();
        let mut items = Vec::new();
        for item in &area.items {
            if item.status.in_scope() {
                *counts.entry(&item.outcome).or_default() += 1;
                *area_counts.entry(&item.outcome).or_default() += 1;
            }
            let specs: Vec<CoveringView> = item
                .specs
                .iter()
                .map(|s| CoveringView {
                    anchor: spec_anchor.get(&s.id).cloned(),
                    id: s.id.clone(),
                    title: s.title.clone(),
                    file: s.file.clone(),
                    outcome: s.outcome.clone(),
                    outcome_label: s.outcome.label(),
                    cases: match s.outcome {
                        // Not run: no cases to count.
                        SpecOutcome::NotRun => String::new(),
                        SpecOutcome::Passed
                        | SpecOutcome::Failed
                        | SpecOutcome::Error
                        | SpecOutcome::Skipped
                        | SpecOutcome::NotReached
                        | SpecOutcome::Other(_) => {
                            format!("{}/{} cases passed", s.cases_passed, s.cases)
                        }
                    },
                })
                .collect();
            if item.hard_requirement {
                hard.push(hard_view(item, &area.title, r));
            }
            items.push(ItemView {
                id: item.id.clone(),
                title: item.title.clone(),
                backlog: !item.status.in_scope(),
                hard_requirement: item.hard_requirement,
                outcome: item.outcome.clone(),
                outcome_label: item.outcome_where(),
                specs,
            });
        }
        let in_area: usize = area_counts.values().sum();
        areas.push(AreaView {
            id: area.id.clone(),
            title: area.title.clone(),
            anchor: anchors.make("area", &area.id),
            counts: format!(
                "{} of {} verified",
                area_counts
                    .get(&CoverageOutcome::Verified)
                    .copied()
                    .unwrap_or(0),
                in_area
            ),
            items,
        });
    }
    let target = where_view(c, r);
    let n = |k: &CoverageOutcome| counts.get(k).copied().unwrap_or(0);
    let total: usize = counts.values().sum::<usize>().max(1);
    let bar = [
        CoverageOutcome::Verified,
        CoverageOutcome::Failing,
        CoverageOutcome::Skipped,
        CoverageOutcome::NotRun,
        CoverageOutcome::Gap,
    ]
    .into_iter()
    .filter(|k| n(k) > 0)
    .map(|k| BarPart {
        // The key says where too: "Verified on the embedded simulator 29".
        label: match (&target, &k) {
            (Some(t), CoverageOutcome::Verified | CoverageOutcome::Failing) => {
                format!("{} on {}", k.label(), t.text)
            }
            _ => k.label().to_string(),
        },
        count: n(&k),
        percent: (n(&k) as f64 * 1000.0 / total as f64).round() / 10.0,
        outcome: k,
    })
    .collect();
    let verdict = if c.failing > 0 || n(&CoverageOutcome::Failing) > 0 {
        "failing"
    } else if !c.gaps.is_empty() || n(&CoverageOutcome::Skipped) + n(&CoverageOutcome::NotRun) > 0 {
        "incomplete"
    } else {
        "verified"
    };
    CoverageView {
        catalog_title: c.catalog_title.clone(),
        in_scope: c.in_scope,
        verified: c.verified,
        failing: c.failing,
        gaps: c.gaps.len(),
        skipped: n(&CoverageOutcome::Skipped),
        not_run: n(&CoverageOutcome::NotRun),
        headline: format!(
            "{} of {} in-scope items verified{}",
            c.verified,
            c.in_scope,
            target
                .as_ref()
                .map(|t| format!(" on {}", t.text))
                .unwrap_or_default()
        ),
        target,
        verdict,
        bar,
        hard,
        areas,
        gap_list: c.gaps.clone(),
        backlog: c.backlog.iter().map(excluded_view).collect(),
        excluded: c.excluded.iter().map(excluded_view).collect(),
    }
}

/// Where the items' outcomes were established (nothing when nothing ran).
fn where_view(c: &Coverage, r: &RunReport) -> Option<WhereView> {
    let text = c.where_phrase()?;
    let targets = c.targets();
    let (kind, kind_label) = match targets.as_slice() {
        [t] => (t.kind.to_string(), t.kind_label().to_string()),
        _ => ("mixed".to_string(), "several targets".to_string()),
    };
    let real = c.all_real();
    let note = match targets.as_slice() {
        [t] if real => format!(
            "Established on {}{}.",
            t.describe(),
            r.target
                .base_url
                .as_deref()
                .filter(|_| r.target.name == t.name)
                .map(|u| format!(" at {u}"))
                .unwrap_or_default()
        ),
        [_] => "Not a real Focus Server: these outcomes show that the tests pass or fail against the simulator's model of the server, not whether a real server meets the scope.".to_string(),
        _ if real => "Each item says which server its outcome was established on.".to_string(),
        _ => "Not all of these outcomes come from a real Focus Server: each item says where its outcome was established, and a simulator's says nothing about a real server.".to_string(),
    };
    Some(WhereView {
        kind,
        kind_label,
        text,
        real,
        note,
    })
}

fn excluded_view(e: &crate::results::ExcludedItem) -> ExcludedView {
    ExcludedView {
        id: e.id.clone(),
        title: e.title.clone(),
        area: e.area.clone(),
        reason: e.reason.clone(),
    }
}

fn hard_view(item: &crate::results::CoverageItem, area: &str, r: &RunReport) -> HardView {
    let mut specs = Vec::new();
    let mut best: Option<String> = None;
    for cs in &item.specs {
        let mut fanouts = Vec::new();
        let mut failed_thresholds = Vec::new();
        if let Some(spec) = r.specs.iter().find(|s| s.id == cs.id) {
            for case in &spec.cases {
                for s in case.steps.iter().chain(&case.cleanup) {
                    let Some(f) = &s.fanout else { continue };
                    let mut line = fanout_summary(f);
                    if let Some((name, l)) = f.steps.first() {
                        line.push_str(&format!(", p95 {} ({name})", fmt_ms(l.p95)));
                    }
                    if f.cleanup_failures > 0 {
                        line.push_str(&format!(", {}", f.cleanup_text()));
                    }
                    if best.is_none() {
                        best = Some(format!("{} of {} succeeded", f.succeeded, f.count));
                    }
                    fanouts.push(line);
                    failed_thresholds.extend(f.thresholds.iter().filter(|t| !t.passed).map(|t| {
                        let implicit = if t.implicit { ", implicit" } else { "" };
                        format!("{} (was {}{implicit})", t.expr, t.value)
                    }));
                }
            }
        }
        specs.push(HardSpec {
            id: cs.id.clone(),
            title: cs.title.clone(),
            outcome: cs.outcome.clone(),
            outcome_label: cs.outcome.label(),
            fanouts,
            failed_thresholds,
        });
    }
    // "Met on the embedded simulator: ..." — never a bare "Met" that reads as the real server's.
    let on = item
        .target
        .as_ref()
        .map(|t| format!(" on {}", t.describe()))
        .unwrap_or_default();
    let statement = match (&item.outcome, &best) {
        (CoverageOutcome::Verified, Some(b)) => format!("Met{on}: {b}."),
        (CoverageOutcome::Verified, None) => format!("Met{on}."),
        (CoverageOutcome::Failing, Some(b)) => format!("Not met{on}: {b}."),
        (CoverageOutcome::Failing, None) => format!("Not met{on}: the covering test failed."),
        (CoverageOutcome::Gap, _) => "Not tested: no test covers this requirement.".to_string(),
        (CoverageOutcome::Skipped, _) => "Not tested in this run: the covering test was skipped.".to_string(),
        (CoverageOutcome::NotRun | CoverageOutcome::Other(_), _) => "Not run in this run: the covering test was not selected (or not reached); this is not a gap.".to_string(),
    };
    HardView {
        id: item.id.clone(),
        title: item.title.clone(),
        area: area.to_string(),
        outcome: item.outcome.clone(),
        outcome_label: item.outcome_where(),
        statement,
        // The statement already says where; the note says what that does not show.
        simulated: item
            .target
            .as_ref()
            .filter(|t| !t.is_real())
            .map(|_| "Not a real Focus Server: whether a real server meets this requirement is still to be shown.".to_string()),
        badge: item.target.is_none(),
        specs,
    }
}
