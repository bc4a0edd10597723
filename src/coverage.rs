//! Scope coverage: which catalog items the specs cover, and with what outcome.

use crate::results::{
    Coverage, CoverageArea, CoverageItem, CoveringSpec, ExcludedItem, SpecResult, Status,
};
use crate::spec::scope::{Catalog, ScopeStatus};
use crate::spec::Spec;

/// Computes coverage of `catalog` by `specs` (all loaded specs) with outcomes from `results`
/// (a spec without a result counts as not run).
pub fn compute(catalog: &Catalog, specs: &[Spec], results: Option<&[SpecResult]>) -> Coverage {
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
            match item.status {
                ScopeStatus::Out => {
                    cov.excluded.push(ExcludedItem {
                        id: item.id.clone(),
                        title: item.title.clone(),
                        area: area.title.clone(),
                        reason: item.reason.clone().unwrap_or_default(),
                    });
                    continue;
                }
                ScopeStatus::Backlog => cov.backlog.push(ExcludedItem {
                    id: item.id.clone(),
                    title: item.title.clone(),
                    area: area.title.clone(),
                    reason: item.reason.clone().unwrap_or_default(),
                }),
                ScopeStatus::In => cov.in_scope += 1,
            }
            let covering: Vec<CoveringSpec> = specs
                .iter()
                .filter(|s| s.covers.iter().any(|c| c == &item.id))
                .map(|s| {
                    let r = results.and_then(|rs| rs.iter().find(|r| r.id == s.id));
                    CoveringSpec {
                        id: s.id.clone(),
                        title: s.title.clone(),
                        file: format!("{}:{}", s.source.display, s.source.pos.line),
                        outcome: match r {
                            None => "not_run".into(),
                            Some(r) => r.status.as_str().into(),
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
                .collect();
            let outcome = if covering.is_empty() {
                "gap"
            } else if covering
                .iter()
                .any(|c| c.outcome == "failed" || c.outcome == "error")
            {
                "failing"
            } else if covering.iter().any(|c| c.outcome == "passed") {
                "verified"
            } else if covering.iter().any(|c| c.outcome == "skipped") {
                "skipped"
            } else {
                "not_run"
            };
            if item.status == ScopeStatus::In {
                match outcome {
                    "gap" => cov.gaps.push(format!("{} — {}", item.id, item.title)),
                    "failing" => cov.failing += 1,
                    "verified" => cov.verified += 1,
                    _ => {}
                }
            }
            ca.items.push(CoverageItem {
                id: item.id.clone(),
                title: item.title.clone(),
                status: if item.status == ScopeStatus::In {
                    "in".into()
                } else {
                    "backlog".into()
                },
                hard_requirement: item.hard_requirement,
                outcome: outcome.into(),
                specs: covering,
            });
        }
        // Areas holding only excluded items appear in `excluded`, not as empty matrices.
        if !ca.items.is_empty() {
            cov.areas.push(ca);
        }
    }
    cov
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, covers: &[&str]) -> Spec {
        serde_yaml::from_str(&format!(
            "id: {id}\ntitle: {id}\ncovers: {covers:?}\nsteps:\n  - sleep: 1ms\n"
        ))
        .unwrap()
    }

    #[test]
    fn outcomes_gaps_and_exclusions() {
        let cat: Catalog = serde_yaml::from_str(
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
        let cov = compute(&cat, &specs, Some(&[pass, fail, skip]));
        let outcome = |id: &str| {
            cov.areas[0]
                .items
                .iter()
                .find(|i| i.id == id)
                .unwrap()
                .outcome
                .clone()
        };
        assert_eq!(outcome("i.verified"), "verified");
        assert_eq!(
            outcome("i.failing"),
            "failing",
            "one failing spec makes the item failing"
        );
        assert_eq!(outcome("i.skipped"), "skipped");
        assert_eq!(outcome("i.notrun"), "not_run");
        assert_eq!(outcome("i.gap"), "gap");
        assert_eq!((cov.in_scope, cov.verified, cov.failing), (5, 1, 1));
        assert_eq!(cov.gaps, vec!["i.gap — G".to_string()]);
        assert_eq!(cov.backlog.len(), 1);
        assert_eq!(cov.excluded[0].id, "o.grpc");
        assert_eq!(cov.areas.len(), 1, "the all-excluded area is not a matrix");
    }
}
