//! Beyond one machine: splitting a run into shards (`run --shard K/N`) and merging the shards'
//! results back into one report (`merge`).
//!
//! Splitting is deterministic: every machine given the same specs picks the same share, with no
//! coordination. By count, specs sorted by id are dealt round-robin, exclusive specs first so
//! they spread evenly too. By duration, a previous results.json gives each spec a weight and
//! the heaviest go first to the lightest shard (greedy longest-processing-time), again exclusive
//! specs first since they run alone. Merging checks what would make the union a lie (a spec in
//! two shards, shards from different targets) and recomputes the totals; coverage is merged by
//! the caller from what each shard recorded (`coverage::merge`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::results::{RunReport, ShardInfo, TargetKind, Totals};
use crate::spec::Spec;

/// Most shards a run may be split into. A merge keeps a slot per shard, and a CI matrix of
/// more machines than this is no longer a test run; fewer specs than shards stays allowed
/// (a shard with no spec writes empty reports, so a fixed matrix keeps working).
pub const MAX_SHARDS: usize = 1000;

/// Parses `K/N` (1-based): `2/4` is the second of four shards.
pub fn parse(s: &str) -> Result<ShardInfo, String> {
    let bad =
        || format!("--shard expects K/N with 1 <= K <= N <= {MAX_SHARDS} (e.g. 2/4), got `{s}`");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let index: usize = k.trim().parse().map_err(|_| bad())?;
    let total: usize = n.trim().parse().map_err(|_| bad())?;
    check(ShardInfo { index, total }).map_err(|_| bad())
}

/// A shard number as a run or a results.json states it: 1 <= K <= N <= [`MAX_SHARDS`].
pub fn check(s: ShardInfo) -> Result<ShardInfo, String> {
    if s.total == 0 || s.total > MAX_SHARDS {
        return Err(format!(
            "shard {}/{}: the number of shards must be 1 to {MAX_SHARDS}",
            s.index, s.total
        ));
    }
    if s.index == 0 || s.index > s.total {
        return Err(format!(
            "shard {}/{}: a shard number is 1 to the number of shards ({})",
            s.index, s.total, s.total
        ));
    }
    Ok(s)
}

/// Spec durations (ms) by id from a previous results.json, for `--shard-by duration`.
pub fn durations(report: &RunReport) -> HashMap<String, f64> {
    report
        .specs
        .iter()
        .map(|s| (s.id.clone(), s.duration_ms))
        .collect()
}

/// The specs of shard `shard`, in their original order. `weights` (spec id -> duration)
/// balances by time; without it, by count.
pub fn select(
    specs: Vec<Spec>,
    shard: ShardInfo,
    weights: Option<&HashMap<String, f64>>,
) -> Vec<Spec> {
    let ids: Vec<(String, bool)> = specs.iter().map(|s| (s.id.clone(), s.exclusive)).collect();
    let assigned = assign(&ids, shard.total, weights);
    specs
        .into_iter()
        .filter(|s| assigned.get(&s.id) == Some(&(shard.index - 1)))
        .collect()
}

/// Shard (0-based) of every spec id. `specs`: id and whether it is exclusive.
pub fn assign(
    specs: &[(String, bool)],
    total: usize,
    weights: Option<&HashMap<String, f64>>,
) -> HashMap<String, usize> {
    let total = total.max(1);
    let mut sorted: Vec<&(String, bool)> = specs.iter().collect();
    // Exclusive specs first (they run alone, so they are the ones to spread), then by id.
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut out = HashMap::new();
    match weights {
        None => {
            for (i, (id, _)) in sorted.iter().map(|x| (x.0.clone(), x.1)).enumerate() {
                out.insert(id, i % total);
            }
        }
        Some(w) => {
            // Specs the previous run did not have weigh as much as an average one.
            let known: Vec<f64> = specs
                .iter()
                .filter_map(|(id, _)| w.get(id).copied())
                .collect();
            let default = if known.is_empty() {
                1.0
            } else {
                known.iter().sum::<f64>() / known.len() as f64
            };
            let weight = |id: &str| w.get(id).copied().unwrap_or(default).max(0.0);
            let mut load = vec![0.0f64; total];
            for exclusive in [true, false] {
                let mut group: Vec<&(String, bool)> = sorted
                    .iter()
                    .copied()
                    .filter(|s| s.1 == exclusive)
                    .collect();
                // Longest first; ties by id, so every machine computes the same split.
                group.sort_by(|a, b| {
                    weight(&b.0)
                        .total_cmp(&weight(&a.0))
                        .then_with(|| a.0.cmp(&b.0))
                });
                for (id, _) in group {
                    let (k, _) = load
                        .iter()
                        .enumerate()
                        .min_by(|a, b| a.1.total_cmp(b.1).then_with(|| a.0.cmp(&b.0)))
                        .expect("at least one shard");
                    load[k] += weight(id);
                    out.insert(id.clone(), k);
                }
            }
        }
    }
    out
}

/// Combines shard reports (with the file each came from) into one. Coverage is left to the
/// caller (`coverage::merge` over the shards' recorded coverage). Warnings (a missing shard) are
/// returned beside the report; what makes the union wrong is an error.
pub fn merge(reports: Vec<(String, RunReport)>) -> Result<(RunReport, Vec<String>), String> {
    let Some((first_file, first)) = reports.first() else {
        return Err("nothing to merge: no results.json given or found".into());
    };
    let mut warnings = Vec::new();
    let t0 = &first.target;
    for (file, r) in &reports[1..] {
        let t = &r.target;
        // Each shard on the embedded target starts its own simulator on free ports: there the
        // URL says nothing; elsewhere the shards must have talked to the same server.
        let same_url = t.kind == TargetKind::Embedded || t.base_url == t0.base_url;
        if t.name != t0.name || t.kind != t0.kind || !same_url {
            return Err(format!(
                "{file} ran against target `{}` ({}{}), {first_file} against `{}` ({}{}): shards of one run share a target",
                t.name,
                t.kind,
                t.base_url.as_deref().map(|u| format!(", {u}")).unwrap_or_default(),
                t0.name,
                t0.kind,
                t0.base_url.as_deref().map(|u| format!(", {u}")).unwrap_or_default(),
            ));
        }
    }
    for (file, r) in &reports {
        if let Some(sh) = r.shard {
            check(sh).map_err(|e| {
                format!(
                    "{file}: field `shard`: {e}; was the file edited, or written by another tool?"
                )
            })?;
        }
    }
    let totals: Vec<usize> = reports
        .iter()
        .filter_map(|(_, r)| r.shard.map(|s| s.total))
        .collect();
    if let Some(n) = totals.first() {
        if totals.iter().any(|t| t != n) {
            return Err(format!(
                "shards of different splits: totals {totals:?} (each shard says K/N; N must agree)"
            ));
        }
        let mut seen: HashMap<usize, &str> = HashMap::new();
        for (file, r) in &reports {
            if let Some(s) = r.shard {
                if let Some(other) = seen.insert(s.index, file) {
                    return Err(format!(
                        "shard {}/{} given twice: {other} and {file}",
                        s.index, s.total
                    ));
                }
            }
        }
        let missing: Vec<String> = (1..=*n)
            .filter(|k| !seen.contains_key(k))
            .map(|k| format!("{k}/{n}"))
            .collect();
        if !missing.is_empty() {
            warnings.push(format!(
                "shard(s) {} missing: their specs are reported as not run",
                missing.join(", ")
            ));
        }
    }
    let start: DateTime<Utc> = reports
        .iter()
        .map(|(_, r)| r.started_at)
        .min()
        .unwrap_or_else(Utc::now);
    let end = reports
        .iter()
        .map(|(_, r)| {
            r.started_at + chrono::Duration::microseconds((r.duration_ms * 1000.0) as i64)
        })
        .max()
        .unwrap_or(start);
    let mut from: HashMap<String, String> = HashMap::new();
    let mut specs = Vec::new();
    for (file, r) in &reports {
        let shift = (r.started_at - start).num_microseconds().unwrap_or(0) as f64 / 1000.0;
        for s in &r.specs {
            if let Some(other) = from.insert(s.id.clone(), file.clone()) {
                return Err(format!(
                    "spec `{}` is in two shards: {other} and {file} (were the shards split with different specs or --shard values?)",
                    s.id
                ));
            }
            let mut s = s.clone();
            s.start_offset_ms += shift;
            specs.push(s);
        }
    }
    // The order of a single run: by file, then position in it.
    specs.sort_by(|a, b| {
        a.file
            .cmp(&b.file)
            .then(a.line.cmp(&b.line))
            .then(a.id.cmp(&b.id))
    });
    let mut target = first.target.clone();
    if target.kind == TargetKind::Embedded {
        target.base_url = None;
    }
    let report = RunReport {
        tool: first.tool.clone(),
        version: first.version.clone(),
        target,
        started_at: start,
        duration_ms: (end - start).num_microseconds().unwrap_or(0) as f64 / 1000.0,
        interrupted: reports.iter().any(|(_, r)| r.interrupted),
        totals: Totals::from_specs(&specs),
        specs,
        coverage: None,
        shard: None,
        history: Vec::new(),
    };
    Ok((report, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize, exclusive: &[usize]) -> Vec<(String, bool)> {
        (0..n)
            .map(|i| (format!("spec.{i:02}"), exclusive.contains(&i)))
            .collect()
    }

    #[test]
    fn shard_syntax() {
        assert_eq!(parse("2/4").unwrap(), ShardInfo { index: 2, total: 4 });
        for bad in [
            "0/2",
            "3/2",
            "1/0",
            "2",
            "a/b",
            "",
            "1/18446744073709551615",
            "1/1001",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn by_count_every_spec_once_balanced_exclusive_spread() {
        let specs = ids(11, &[3, 7, 9]);
        let a = assign(&specs, 3, None);
        assert_eq!(a.len(), 11);
        let mut per = [0usize; 3];
        let mut excl = [0usize; 3];
        for (id, ex) in &specs {
            per[a[id]] += 1;
            if *ex {
                excl[a[id]] += 1;
            }
        }
        assert!(
            per.iter().max().unwrap() - per.iter().min().unwrap() <= 1,
            "{per:?}"
        );
        assert_eq!(excl, [1, 1, 1]);
        // Deterministic whatever the input order.
        let mut rev = specs.clone();
        rev.reverse();
        assert_eq!(assign(&rev, 3, None), a);
    }

    #[test]
    fn by_duration_longest_first_to_the_lightest_shard() {
        let specs = ids(5, &[]);
        let w: HashMap<String, f64> = [(0, 100.0), (1, 60.0), (2, 50.0), (3, 10.0)]
            .into_iter()
            .map(|(i, d)| (format!("spec.{i:02}"), d))
            .collect();
        let a = assign(&specs, 2, Some(&w));
        // Longest first to the lightest: 100 -> 0, 60 -> 1, the unknown (mean 55) -> 1,
        // 50 -> 0, 10 -> 1: 150 vs 125.
        assert_eq!(a["spec.00"], 0);
        assert_eq!(a["spec.01"], 1);
        assert_eq!(a["spec.04"], 1);
        assert_eq!(a["spec.02"], 0);
        assert_eq!(a["spec.03"], 1);
        let load = |k: usize| -> f64 {
            specs
                .iter()
                .filter(|(id, _)| a[id] == k)
                .map(|(id, _)| w.get(id).copied().unwrap_or(55.0))
                .sum()
        };
        assert!((load(0) - load(1)).abs() <= 60.0, "{} {}", load(0), load(1));
    }

    fn report(target: &str, url: &str, shard: (usize, usize), specs: &[&str]) -> RunReport {
        let specs: Vec<serde_json::Value> = specs
            .iter()
            .map(|id| {
                serde_json::json!({"id": id, "title": id, "file": format!("specs/{id}.yaml"), "line": 1,
                    "status": "passed", "started_at": "2026-01-01T10:00:00Z", "duration_ms": 5.0,
                    "cases": [{"name": id, "status": "passed", "duration_ms": 5.0, "steps": []}]})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "tool": "focusqa", "version": "0", "started_at": "2026-01-01T10:00:00Z", "duration_ms": 10.0,
            "target": {"name": target, "kind": "remote", "base_url": url},
            "totals": {"specs": 0, "cases": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0},
            "shard": {"index": shard.0, "total": shard.1}, "specs": specs
        }))
        .unwrap()
    }

    #[test]
    fn merge_checks_what_would_make_the_union_wrong() {
        let a = report("lab", "https://a", (1, 3), &["x", "y"]);
        let b = report("lab", "https://a", (2, 3), &["z"]);
        let (m, warnings) = merge(vec![("a".into(), a.clone()), ("b".into(), b.clone())]).unwrap();
        assert_eq!(m.totals.specs, 3);
        assert_eq!(m.totals.passed, 3);
        assert!(m.shard.is_none());
        assert_eq!(
            warnings,
            vec!["shard(s) 3/3 missing: their specs are reported as not run"]
        );
        let other = report("lab", "https://b", (2, 3), &["z"]);
        let e = merge(vec![("a".into(), a.clone()), ("o".into(), other)]).unwrap_err();
        assert!(e.contains("share a target"), "{e}");
        let dup = report("lab", "https://a", (2, 3), &["y"]);
        let e = merge(vec![("a".into(), a.clone()), ("d".into(), dup)]).unwrap_err();
        assert!(e.contains("spec `y` is in two shards"), "{e}");
        let split = report("lab", "https://a", (2, 4), &["z"]);
        assert!(merge(vec![("a".into(), a), ("s".into(), split)]).is_err());
        assert!(merge(Vec::new()).is_err());
        // "shard 5 of 2" is no shard of any split.
        let x = report("lab", "https://a", (1, 2), &["x"]);
        let odd = report("lab", "https://a", (5, 2), &["z"]);
        let e = merge(vec![("x".into(), x), ("odd".into(), odd)]).unwrap_err();
        assert!(e.contains("odd: field `shard`: shard 5/2"), "{e}");
    }
}
