//! Scope coverage: which catalog items the specs cover, and with what outcome.

use std::collections::{HashMap, HashSet};

use crate::results::{
    Coverage, CoverageArea, CoverageItem, CoverageOutcome, CoveringSpec, ExcludedItem, ItemStatus,
    SpecOutcome, SpecResult, Status, TargetInfo, TargetRef,
};
use crate::spec::scope::{Catalog, ScopeStatus};
use crate::spec::{Spec, Step};

/// Computes coverage of `catalog` by `specs` (all loaded specs) with outcomes from `results`
/// (a spec without a result counts as not run), established on `target` (the run's).
pub fn compute(
    catalog: &Catalog,
    specs: &[Spec],
    results: Option<&[SpecResult]>,
    target: Option<&TargetInfo>,
) -> Coverage {
    let mut cov = Coverage {
        catalog_title: catalog.title.clone(),
        ..Default::default()
    };
    for area in &catalog.areas {
        let mut ca = CoverageArea {
            id: area.id.clone(),
            title: area.title.clone(),
            items: Vec::new(),
        };
        for item in catalog.items.iter().filter(|i| i.area == area.id) {
            // How an item out of scope, or agreed for later, is listed apart.
            let apart = || ExcludedItem {
                id: item.id.clone(),
                title: item.title.clone(),
                area: area.title.clone(),
                reason: item.reason.clone().unwrap_or_default(),
            };
            let status = match item.status {
                ScopeStatus::Out => {
                    cov.excluded.push(apart());
                    continue;
                }
                ScopeStatus::Backlog => {
                    cov.backlog.push(apart());
                    ItemStatus::Backlog
                }
                ScopeStatus::In => ItemStatus::In,
            };
            let covering: Vec<CoveringSpec> = specs
                .iter()
                .filter(|s| s.covers.iter().any(|c| c == &item.id))
                .map(|s| {
                    let r = results.and_then(|rs| rs.iter().find(|r| r.id == s.id));
                    CoveringSpec {
                        via: None,
                        id: s.id.clone(),
                        title: s.title.clone(),
                        file: format!("{}:{}", s.source.display, s.source.pos.line),
                        outcome: match r {
                            None => SpecOutcome::NotRun,
                            Some(r) => r.status.into(),
                        },
                        cases: r.map(|r| r.cases.len()).unwrap_or(s.cases.len().max(1)),
                        cases_passed: r
                            .map(|r| {
                                r.cases
                                    .iter()
                                    .filter(|c| c.status == Status::Passed)
                                    .count()
                            })
                            .unwrap_or(0),
                    }
                })
                .chain(
                    specs
                        .iter()
                        .filter(|s| !s.covers.iter().any(|c| c == &item.id))
                        .filter_map(|s| {
                            let r = results.and_then(|rs| rs.iter().find(|r| r.id == s.id));
                            by_steps(s, r, &item.id)
                        }),
                )
                .collect();
            let outcome = outcome(&covering);
            ca.items.push(CoverageItem {
                id: item.id.clone(),
                title: item.title.clone(),
                status,
                hard_requirement: item.hard_requirement,
                target: target.filter(|_| outcome.ran()).map(TargetRef::of),
                outcome,
                specs: covering,
            });
        }
        // Areas holding only excluded items appear in `excluded`, not as empty matrices.
        if !ca.items.is_empty() {
            cov.areas.push(ca);
        }
    }
    tally(&mut cov);
    cov
}

/// An item's outcome from its covering specs: one failing spec makes it failing, else one
/// passing spec verifies it.
fn outcome(covering: &[CoveringSpec]) -> CoverageOutcome {
    let any = |o: CoverageOutcome| covering.iter().any(|c| says(&c.outcome) == o);
    if covering.is_empty() {
        CoverageOutcome::Gap
    } else if any(CoverageOutcome::Failing) {
        CoverageOutcome::Failing
    } else if any(CoverageOutcome::Verified) {
        CoverageOutcome::Verified
    } else if any(CoverageOutcome::Skipped) {
        CoverageOutcome::Skipped
    } else {
        CoverageOutcome::NotRun
    }
}

/// What one covering spec's outcome says of the item on its own.
fn says(o: &SpecOutcome) -> CoverageOutcome {
    match o {
        SpecOutcome::Failed | SpecOutcome::Error => CoverageOutcome::Failing,
        SpecOutcome::Passed => CoverageOutcome::Verified,
        SpecOutcome::Skipped => CoverageOutcome::Skipped,
        // Nothing ran to prove it (a word of another version proves nothing either).
        SpecOutcome::NotRun | SpecOutcome::NotReached | SpecOutcome::Other(_) => {
            CoverageOutcome::NotRun
        }
    }
}

/// The in-scope counts and the gap list, from the items' outcomes.
fn tally(cov: &mut Coverage) {
    cov.in_scope = 0;
    cov.verified = 0;
    cov.failing = 0;
    cov.gaps.clear();
    for item in cov.areas.iter().flat_map(|a| &a.items) {
        if !item.status.in_scope() {
            continue;
        }
        cov.in_scope += 1;
        match item.outcome {
            CoverageOutcome::Gap => cov.gaps.push(format!("{} — {}", item.id, item.title)),
            CoverageOutcome::Failing => cov.failing += 1,
            CoverageOutcome::Verified => cov.verified += 1,
            CoverageOutcome::Skipped | CoverageOutcome::NotRun | CoverageOutcome::Other(_) => {}
        }
    }
}

/// One shard's recorded coverage and the ids of the specs that shard ran.
pub struct ShardCoverage<'a> {
    pub file: &'a str,
    pub coverage: &'a Coverage,
    pub ran: HashSet<&'a str>,
}

/// The coverage of a merged run, from what each shard recorded (not from a rescan of the
/// project's specs, which would miss specs run from elsewhere): per item, each covering spec's
/// entry comes from the shard that ran it, else (no shard ran it) from the first shard; the
/// outcomes and counts are then derived as in a single run. Shards of different catalogs are
/// an error: their union would describe no scope.
pub fn merge(shards: &[ShardCoverage]) -> Result<Coverage, String> {
    let Some(first) = shards.first() else {
        return Err("no shard recorded coverage".into());
    };
    let items = |c: &Coverage| -> Vec<String> {
        c.areas
            .iter()
            .flat_map(|a| a.items.iter().map(|i| format!("{}/{}", a.id, i.id)))
            .collect()
    };
    let scope = items(first.coverage);
    for sh in &shards[1..] {
        if sh.coverage.catalog_title != first.coverage.catalog_title || items(sh.coverage) != scope
        {
            return Err(format!(
                "{} and {} recorded coverage of different scope catalogs (`{}`, `{}`): shards of one run share the catalog",
                first.file, sh.file, first.coverage.catalog_title, sh.coverage.catalog_title
            ));
        }
    }
    let mut cov = first.coverage.clone();
    for (ai, area) in cov.areas.iter_mut().enumerate() {
        for (ii, item) in area.items.iter_mut().enumerate() {
            let mut order: Vec<String> = Vec::new();
            let mut chosen: HashMap<String, (CoveringSpec, bool)> = HashMap::new();
            let mut target = None;
            for sh in shards {
                let theirs = &sh.coverage.areas[ai].items[ii];
                for cs in &theirs.specs {
                    let ran_here = sh.ran.contains(cs.id.as_str());
                    if ran_here && target.is_none() {
                        target = theirs.target.clone();
                    }
                    match chosen.get(&cs.id) {
                        Some((_, true)) => {}
                        Some((_, false)) if !ran_here => {}
                        prev => {
                            if prev.is_none() {
                                order.push(cs.id.clone());
                            }
                            chosen.insert(cs.id.clone(), (cs.clone(), ran_here));
                        }
                    }
                }
            }
            item.specs = order
                .iter()
                .filter_map(|id| chosen.remove(id).map(|(cs, _)| cs))
                .collect();
            item.outcome = outcome(&item.specs);
            item.target = target.filter(|_| item.outcome.ran());
        }
    }
    tally(&mut cov);
    Ok(cov)
}

/// Steps of `steps` (fan-out blocks included) whose own `covers` name `item`.
fn covering_steps<'a>(steps: &'a [Step], item: &str, out: &mut Vec<&'a Step>) {
    for st in steps {
        if st.covers.iter().any(|c| c == item) {
            out.push(st);
        }
        for block in st.kind.nested() {
            covering_steps(block, item, out);
        }
    }
}

/// Coverage of `item` by some steps of `spec`: their outcome decides, not the spec's.
/// A step inside a fan-out counts through the fan-out step that ran it.
fn by_steps(spec: &Spec, result: Option<&SpecResult>, item: &str) -> Option<CoveringSpec> {
    let mut covering = Vec::new();
    // Lines of the top-level steps whose results decide: the covering step, or its fan-out.
    let mut lines = Vec::new();
    for st in spec.steps.iter().chain(&spec.cleanup) {
        let before = covering.len();
        covering_steps(std::slice::from_ref(st), item, &mut covering);
        if covering.len() > before {
            lines.push(st.pos.line);
        }
    }
    if covering.is_empty() {
        return None;
    }
    let names: Vec<String> = covering
        .iter()
        .map(|s| format!("\"{}\" (line {})", s.label(), s.pos.line))
        .collect();
    let mut cs = CoveringSpec {
        id: spec.id.clone(),
        title: spec.title.clone(),
        file: format!("{}:{}", spec.source.display, covering[0].pos.line),
        outcome: SpecOutcome::NotRun,
        cases: spec.cases.len().max(1),
        cases_passed: 0,
        via: Some(format!(
            "{} {}",
            if names.len() == 1 { "step" } else { "steps" },
            names.join(", ")
        )),
    };
    let Some(r) = result else { return Some(cs) };
    cs.cases = r.cases.len();
    // Per case, the worst outcome of the deciding steps; a step not reached proves nothing.
    let mut worst = None::<Status>;
    let mut reached = false;
    for case in r.cases.iter().filter(|c| c.status != Status::Skipped) {
        let ran: Vec<Status> = case
            .steps
            .iter()
            .chain(&case.cleanup)
            .filter(|s| lines.contains(&s.line) && s.status != Status::Skipped)
            .map(|s| s.status)
            .collect();
        if ran.len() < lines.len() && !ran.iter().any(|s| *s != Status::Passed) {
            continue;
        }
        reached = true;
        let st = ran.iter().fold(Status::Passed, |a, b| a.worst(*b));
        if st == Status::Passed {
            cs.cases_passed += 1;
        }
        worst = Some(worst.map_or(st, |w| w.worst(st)));
    }
    cs.outcome = match worst {
        _ if r.status == Status::Skipped => SpecOutcome::Skipped,
        Some(st) if reached => st.into(),
        // The spec ran but never reached the covering steps (an earlier step failed).
        _ => SpecOutcome::NotReached,
    };
    Some(cs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, covers: &[&str]) -> Spec {
        crate::spec::yaml::from_str(&format!(
            "id: {id}\ntitle: {id}\ncovers: {covers:?}\nsteps:\n  - sleep: 1ms\n"
        ))
        .unwrap()
    }

    #[test]
    fn outcomes_gaps_and_exclusions() {
        let cat: Catalog = crate::spec::yaml::from_str(
            r#"
title: t
areas: [{id: a, title: Area A}, {id: x, title: Excluded area}]
items:
  - {id: i.verified, area: a, status: in, title: V}
  - {id: i.failing, area: a, status: in, title: F}
  - {id: i.skipped, area: a, status: in, title: S}
  - {id: i.notrun, area: a, status: in, title: N}
  - {id: i.gap, area: a, status: in, title: G}
  - {id: i.later, area: a, status: backlog, title: L, reason: later}
  - {id: o.grpc, area: x, status: out, title: gRPC, reason: decision}
"#,
        )
        .unwrap();
        let specs = vec![
            spec("s.pass", &["i.verified", "i.failing"]),
            spec("s.fail", &["i.failing"]),
            spec("s.skip", &["i.skipped"]),
            spec("s.unrun", &["i.notrun"]),
        ];
        let mut pass = crate::engine::not_run_result(&specs[0], "x");
        pass.status = Status::Passed;
        let mut fail = crate::engine::not_run_result(&specs[1], "x");
        fail.status = Status::Failed;
        let skip = crate::engine::not_run_result(&specs[2], "requires kubernetes");
        let cov = compute(&cat, &specs, Some(&[pass, fail, skip]), None);
        let outcome = |id: &str| {
            cov.areas[0]
                .items
                .iter()
                .find(|i| i.id == id)
                .unwrap()
                .outcome
                .clone()
        };
        assert_eq!(outcome("i.verified"), CoverageOutcome::Verified);
        assert_eq!(
            outcome("i.failing"),
            CoverageOutcome::Failing,
            "one failing spec makes the item failing"
        );
        assert_eq!(outcome("i.skipped"), CoverageOutcome::Skipped);
        assert_eq!(outcome("i.notrun"), CoverageOutcome::NotRun);
        assert_eq!(outcome("i.gap"), CoverageOutcome::Gap);
        assert_eq!((cov.in_scope, cov.verified, cov.failing), (5, 1, 1));
        assert_eq!(cov.gaps, vec!["i.gap — G".to_string()]);
        assert_eq!(cov.backlog.len(), 1);
        let status = |id: &str| {
            &cov.areas[0]
                .items
                .iter()
                .find(|i| i.id == id)
                .unwrap()
                .status
        };
        assert_eq!(status("i.gap"), &ItemStatus::In);
        assert_eq!(
            status("i.later"),
            &ItemStatus::Backlog,
            "listed, not counted"
        );
        assert_eq!(cov.excluded[0].id, "o.grpc");
        assert_eq!(cov.areas.len(), 1, "the all-excluded area is not a matrix");
    }
}
