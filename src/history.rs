//! Run history (`run --history DIR`): one small JSON record per run (date, target, git commit,
//! totals, per-item coverage outcomes, spec outcomes, p95 of fan-out steps), bounded to the
//! last N runs, so the HTML reports can show trends: coverage and pass rate over the last runs,
//! new failures since the previous run, and specs that flip between pass and fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::results::{RunReport, Status, TargetRef};

/// How many runs a history keeps unless told otherwise.
pub const DEFAULT_KEEP: usize = 30;

/// The record itself is part of the results model (a report carries the history it was
/// rendered with); reading, writing and pruning records is this module's.
pub use crate::results::RunRecord;

impl RunRecord {
    pub fn of(report: &RunReport, commit: Option<String>) -> RunRecord {
        let mut p95 = BTreeMap::new();
        for s in &report.specs {
            for c in &s.cases {
                for st in c.steps.iter().chain(&c.cleanup) {
                    if let Some(f) = &st.fanout {
                        for (name, l) in &f.steps {
                            p95.insert(format!("{} / {name}", s.id), l.p95);
                        }
                    }
                }
            }
        }
        let cov = report.coverage.as_ref();
        RunRecord {
            started_at: report.started_at,
            target: report.target.name.clone(),
            target_kind: Some(report.target.kind.clone()),
            commit,
            shard: report.shard,
            totals: report.totals,
            verified: cov.map(|c| c.verified).unwrap_or(0),
            in_scope: cov.map(|c| c.in_scope).unwrap_or(0),
            coverage: cov
                .map(|c| {
                    c.areas
                        .iter()
                        .flat_map(|a| &a.items)
                        .filter(|i| i.status.in_scope())
                        .map(|i| (i.id.clone(), i.outcome.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            specs: report
                .specs
                .iter()
                .map(|s| (s.id.clone(), s.status))
                .collect(),
            p95,
        }
    }

    /// The target and its kind for people: `embedded simulator`, `staging (real server)`, or
    /// `staging (kind not recorded)` for a record written before kinds were.
    pub fn target_label(&self) -> String {
        TargetRef {
            name: self.target.clone(),
            kind: self.target_kind.clone().unwrap_or_default(),
        }
        .label()
    }

    /// Executed cases that passed, in percent (100 when nothing ran).
    pub fn pass_rate(&self) -> f64 {
        let t = &self.totals;
        let ran = t.passed + t.failed + t.errors;
        if ran == 0 {
            100.0
        } else {
            t.passed as f64 * 100.0 / ran as f64
        }
    }

    /// In-scope items verified, in percent (0 without a catalog).
    pub fn coverage_rate(&self) -> f64 {
        if self.in_scope == 0 {
            0.0
        } else {
            self.verified as f64 * 100.0 / self.in_scope as f64
        }
    }
}

/// The commit checked out in the working directory, best-effort.
pub fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// A record's file name as [`save`] writes it: `run-20260101T100000.123Z.json`, with
/// `-shard2of4` before `.json` for a shard. Only those count toward `keep` and are pruned: a
/// user's own `run-notes.json` in the folder is neither counted nor deleted.
fn is_record_name(n: &str) -> bool {
    let Some(rest) = n.strip_prefix("run-").and_then(|r| r.strip_suffix(".json")) else {
        return false;
    };
    // `20260101T100000.123Z`: 20 ASCII characters.
    if !rest.is_ascii() || rest.len() < 20 {
        return false;
    }
    let (stamp, shard) = rest.split_at(20);
    let stamp_ok = stamp.ends_with('Z')
        && chrono::NaiveDateTime::parse_from_str(&stamp[..19], "%Y%m%dT%H%M%S%.3f").is_ok();
    let shard_ok = shard.is_empty()
        || shard
            .strip_prefix("-shard")
            .and_then(|s| s.split_once("of"))
            .is_some_and(|(k, n)| {
                !k.is_empty()
                    && !n.is_empty()
                    && k.bytes().chain(n.bytes()).all(|c| c.is_ascii_digit())
            });
    stamp_ok && shard_ok
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(is_record_name)
                })
                .collect()
        })
        .unwrap_or_default();
    // Names are run-<UTC timestamp>.json: name order is time order.
    v.sort();
    v
}

/// Adds a run to the history and deletes the oldest records beyond `keep`.
pub fn save(dir: &Path, rec: &RunRecord, keep: usize) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create history directory {}: {e}", dir.display()))?;
    let mut name = format!("run-{}", rec.started_at.format("%Y%m%dT%H%M%S%.3fZ"));
    if let Some(s) = rec.shard {
        name.push_str(&format!("-shard{}of{}", s.index, s.total));
    }
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(rec).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let all = files(dir);
    let excess = all.len().saturating_sub(keep.max(1));
    for old in &all[..excess] {
        let _ = std::fs::remove_file(old);
    }
    Ok(path)
}

/// Largest history record read (a record is a few KiB; a bigger file is not one of ours).
const MAX_RECORD_BYTES: u64 = 16 * 1024 * 1024;

/// The records of a history, oldest first, and a warning naming each record left out: not a
/// regular file (a symlink, a FIFO), unreadable, not a record, or with a number out of range.
pub fn load(dir: &Path) -> (Vec<RunRecord>, Vec<String>) {
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    for p in files(dir) {
        match read_record(&p) {
            Ok(r) => records.push(r),
            Err(e) => warnings.push(format!(
                "history record {} left out: {e} (delete or repair it)",
                p.display()
            )),
        }
    }
    (records, warnings)
}

fn read_record(p: &Path) -> Result<RunRecord, String> {
    let meta = std::fs::symlink_metadata(p).map_err(|e| e.to_string())?;
    if !meta.file_type().is_file() {
        return Err("not a regular file (focusqa writes records as plain files)".into());
    }
    if meta.len() > MAX_RECORD_BYTES {
        return Err(format!(
            "{} bytes, more than a record ever has ({MAX_RECORD_BYTES})",
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(p).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    crate::results::numbers::check_numbers(&v)?;
    let r: RunRecord = serde_json::from_value(v).map_err(|e| e.to_string())?;
    for (k, p95) in &r.p95 {
        if !(0.0..=crate::results::numbers::MAX_MS).contains(p95) {
            return Err(format!(
                "field `p95.{k}` is {p95}, expected a time of 0 to {:e} ms",
                crate::results::numbers::MAX_MS
            ));
        }
    }
    if let Some(sh) = r.shard {
        crate::shard::check(sh).map_err(|e| format!("field `shard`: {e}"))?;
    }
    Ok(r)
}

/// Specs failing in the last run that passed in the one before.
pub fn new_failures(runs: &[RunRecord]) -> Vec<String> {
    let [.., prev, last] = runs else {
        return Vec::new();
    };
    last.specs
        .iter()
        .filter(|(id, s)| {
            matches!(s, Status::Failed | Status::Error)
                && prev.specs.get(*id) == Some(&Status::Passed)
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// Specs that flipped between pass and fail over the runs, with the number of flips.
pub fn flaky(runs: &[RunRecord]) -> Vec<(String, usize)> {
    let mut seq: BTreeMap<&str, Vec<bool>> = BTreeMap::new();
    for r in runs {
        for (id, s) in &r.specs {
            match s {
                Status::Passed => seq.entry(id).or_default().push(true),
                Status::Failed | Status::Error => seq.entry(id).or_default().push(false),
                Status::Skipped => {}
            }
        }
    }
    seq.into_iter()
        .map(|(id, v)| {
            (
                id.to_string(),
                v.windows(2).filter(|w| w[0] != w[1]).count(),
            )
        })
        .filter(|(_, flips)| *flips >= 2)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Totals;

    fn rec(minute: u32, specs: &[(&str, Status)]) -> RunRecord {
        RunRecord {
            started_at: format!("2026-01-01T10:{minute:02}:00Z").parse().unwrap(),
            target: "embedded".into(),
            target_kind: Some(crate::results::TargetKind::Embedded),
            commit: None,
            shard: None,
            totals: Totals::default(),
            verified: 0,
            in_scope: 0,
            coverage: BTreeMap::new(),
            specs: specs.iter().map(|(i, s)| (i.to_string(), *s)).collect(),
            p95: BTreeMap::new(),
        }
    }

    #[test]
    fn new_failures_and_flips() {
        use Status::*;
        let runs = vec![
            rec(0, &[("a", Passed), ("b", Passed), ("c", Failed)]),
            rec(1, &[("a", Failed), ("b", Passed), ("c", Failed)]),
            rec(2, &[("a", Passed), ("b", Failed), ("c", Failed)]),
        ];
        assert_eq!(new_failures(&runs), vec!["b".to_string()]);
        // a: pass, fail, pass = flaky; b failed once (a new failure, not yet flaky); c steady.
        assert_eq!(flaky(&runs), vec![("a".to_string(), 2)]);
        assert!(new_failures(&runs[..1]).is_empty());
    }

    #[test]
    fn bounded_to_the_last_n_runs() {
        let dir = tempfile::tempdir().unwrap();
        for m in 0..5 {
            save(dir.path(), &rec(m, &[]), 3).unwrap();
        }
        let (kept, warnings) = load(dir.path());
        assert_eq!(kept.len(), 3);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            kept[0].started_at,
            rec(2, &[]).started_at,
            "the oldest went first"
        );
    }

    #[test]
    fn a_record_keeps_its_coverage_words() {
        // As records have always been written (outcomes were strings), a word of another
        // version among them: read, and written back unchanged.
        let text = r#"{
  "started_at": "2026-01-01T10:00:00Z",
  "target": "embedded",
  "totals": {"specs": 0, "cases": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0},
  "verified": 1,
  "in_scope": 6,
  "coverage": {"a": "verified", "b": "failing", "c": "gap", "d": "skipped", "e": "not_run", "f": "partial"},
  "specs": {},
  "p95": {}
}"#;
        let r: RunRecord = serde_json::from_str(text).unwrap();
        assert_eq!(r.coverage["a"], crate::results::CoverageOutcome::Verified);
        let back = serde_json::to_value(&r).unwrap();
        let before: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(back["coverage"], before["coverage"]);
    }

    #[test]
    fn only_our_records_count_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        // A user's own file, named almost like a record: neither counted nor deleted.
        let mine = dir.path().join("run-notes.json");
        std::fs::write(&mine, "{}").unwrap();
        for m in 0..4 {
            save(dir.path(), &rec(m, &[]), 3).unwrap();
        }
        assert!(mine.exists());
        let (kept, warnings) = load(dir.path());
        assert_eq!((kept.len(), warnings.len()), (3, 0));
        // A damaged record, a NUL-filled one and a symlink: each a warning naming it.
        let newest = files(dir.path()).pop().unwrap();
        std::fs::write(&newest, "{\"started_at\": 1e308}").unwrap();
        let nul = dir.path().join("run-20990101T000000.000Z.json");
        std::fs::write(&nul, [0u8; 64]).unwrap();
        let link = dir.path().join("run-20990101T000001.000Z.json");
        std::os::unix::fs::symlink(&mine, &link).unwrap();
        let (kept, warnings) = load(dir.path());
        assert_eq!(kept.len(), 2);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        for (w, p) in warnings.iter().zip([&newest, &nul, &link]) {
            assert!(w.contains(&p.display().to_string()), "{w}");
        }
        assert!(warnings[2].contains("not a regular file"), "{warnings:?}");
        assert!(is_record_name("run-20260101T100000.123Z-shard2of4.json"));
        assert!(!is_record_name("run-2026.json"));
    }
}
