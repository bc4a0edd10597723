//! Beyond one machine and one run: shards and their merge against the embedded simulator,
//! compared with a single run; retries that make a flaky case visible in every report.

use crate::common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::{extract::State, http::StatusCode, routing::get, Router};
use common::{focusqa, results_in, stderr, stdout, Project};
use serde_json::Value;

/// id -> (status, cases) of every spec; item id -> outcome of every coverage item.
fn shape(r: &Value) -> (BTreeMap<String, (String, usize)>, BTreeMap<String, String>) {
    let specs = r["specs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                (
                    s["status"].as_str().unwrap().to_string(),
                    s["cases"].as_array().unwrap().len(),
                ),
            )
        })
        .collect();
    let items = r["coverage"]["areas"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["items"].as_array().unwrap())
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_string(),
                i["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (specs, items)
}

fn run_ok(args: &[&str]) {
    let out = focusqa(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn two_shards_merged_are_the_single_run() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |s: &str| tmp.path().join(s).to_str().unwrap().to_string();
    run_ok(&["run", "specs/api", "--quiet", "--report-dir", &p("single")]);
    for k in ["1/2", "2/2"] {
        let dir = p(&format!("shards/{}", &k[..1]));
        run_ok(&[
            "run",
            "specs/api",
            "--quiet",
            "--shard",
            k,
            "--report-dir",
            &dir,
        ]);
    }
    let s1 = results_in(&tmp.path().join("shards/1"));
    let s2 = results_in(&tmp.path().join("shards/2"));
    assert_eq!(s1["shard"], serde_json::json!({"index": 1, "total": 2}));
    assert_eq!(s2["shard"]["index"], 2);
    let (a, cov1) = shape(&s1);
    let (b, _) = shape(&s2);
    assert!(!a.is_empty() && !b.is_empty(), "both shards have work");
    assert!(a.keys().all(|id| !b.contains_key(id)), "disjoint shards");
    // A shard's coverage: the other shard's items are "not run in this run", never gaps
    // (its gaps are the project's own: items no spec covers).
    let single = results_in(&tmp.path().join("single"));
    let gaps = |c: &BTreeMap<String, String>| {
        c.iter()
            .filter(|(_, o)| *o == "gap")
            .map(|(i, _)| i.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(gaps(&cov1), gaps(&shape(&single).1), "{cov1:?}");
    assert!(cov1.values().any(|o| o == "not_run"));

    run_ok(&["merge", &p("shards"), "--report-dir", &p("merged")]);
    let merged = results_in(&tmp.path().join("merged"));
    assert_eq!(shape(&merged), shape(&single));
    assert_eq!(merged["totals"], single["totals"]);
    assert_eq!(merged["target"]["name"], single["target"]["name"]);
    assert!(merged.get("shard").is_none());
    for f in ["junit.xml", "summary.html", "coverage.html"] {
        assert!(tmp.path().join("merged").join(f).is_file(), "{f}");
    }
    common::xmllint_validate(&tmp.path().join("merged/junit.xml"));
    let junit = quick_junit::Report::deserialize_from_str(
        &std::fs::read_to_string(tmp.path().join("merged/junit.xml")).unwrap(),
    )
    .unwrap();
    assert_eq!(junit.test_suites.len(), a.len() + b.len());

    // The same shard twice: a spec in two shards is an error (exit 2), nothing written.
    let out = focusqa(&[
        "merge",
        &p("shards/1/results.json"),
        &p("shards/1/results.json"),
        "--report-dir",
        &p("bad"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("given twice") || stderr(&out).contains("two shards"));
    assert!(!tmp.path().join("bad/results.json").exists());
}

#[test]
fn shard_by_duration_uses_a_previous_run() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |s: &str| tmp.path().join(s).to_str().unwrap().to_string();
    run_ok(&["run", "specs/api", "--quiet", "--report-dir", &p("prev")]);
    let mut seen = Vec::new();
    for k in ["1/3", "2/3", "3/3"] {
        let dir = p(&format!("s{}", &k[..1]));
        run_ok(&[
            "run",
            "specs/api",
            "--quiet",
            "--shard",
            k,
            "--shard-by",
            "duration",
            "--durations",
            &p("prev/results.json"),
            "--report-dir",
            &dir,
        ]);
        let (ids, _) = shape(&results_in(std::path::Path::new(&dir)));
        seen.extend(ids.into_keys());
    }
    let (all, _) = shape(&results_in(&tmp.path().join("prev")));
    seen.sort();
    assert_eq!(
        seen,
        all.into_keys().collect::<Vec<_>>(),
        "every spec in exactly one shard"
    );
    let out = focusqa(&["run", "specs/api", "--shard", "4/3"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A server whose `/flaky` answers 500 once then 200, `/broken` always 500, and `/cleanup`
/// counts its calls.
fn flaky_server() -> (String, Arc<[AtomicU32; 3]>, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let counts: Arc<[AtomicU32; 3]> = Arc::new(Default::default());
    let app = Router::new()
        .route(
            "/flaky",
            get(|State(c): State<Arc<[AtomicU32; 3]>>| async move {
                if c[0].fetch_add(1, Ordering::SeqCst) == 0 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }),
        )
        .route(
            "/broken",
            get(|State(c): State<Arc<[AtomicU32; 3]>>| async move {
                c[1].fetch_add(1, Ordering::SeqCst);
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .route(
            "/cleanup",
            get(|State(c): State<Arc<[AtomicU32; 3]>>| async move {
                c[2].fetch_add(1, Ordering::SeqCst);
                StatusCode::OK
            }),
        )
        .with_state(counts.clone());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, counts, rt)
}

#[test]
fn a_case_that_passes_on_retry_is_reported_flaky_everywhere() {
    let (url, counts, _rt) = flaky_server();
    let p = Project::new(&url);
    p.spec(
        "flaky.yaml",
        "id: infra.flaky\ntitle: Fails once then passes\nretries: 2\nsteps:\n  - name: flaky endpoint\n    http: {path: /flaky}\n    expect: {status: 200}\ncleanup:\n  - name: release\n    http: {path: /cleanup}\n    expect: {status: 200}\n",
    );
    p.spec(
        "broken.yaml",
        "id: infra.broken\ntitle: Always fails\nsteps:\n  - name: broken endpoint\n    http: {path: /broken}\n    expect: {status: 200}\n",
    );
    let out = p.run(&["run", "--quiet", "--retries", "1", "-j", "1"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("Flaky, passed on a retry (1):\n  infra.flaky / Fails once then passes: attempt 2 passed"),
        "{}",
        stdout(&out)
    );
    // Cleanup after each attempt of the flaky case.
    assert_eq!(counts[0].load(Ordering::SeqCst), 2);
    assert_eq!(
        counts[1].load(Ordering::SeqCst),
        2,
        "--retries 1: two attempts"
    );
    assert_eq!(counts[2].load(Ordering::SeqCst), 2);

    let r = p.results();
    let case = |id: &str| {
        r["specs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()["cases"][0]
            .clone()
    };
    let flaky = case("infra.flaky");
    assert_eq!(flaky["status"], "passed");
    assert_eq!(flaky["flaky"], true);
    let attempts = flaky["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["status"], "failed");
    assert!(attempts[0]["message"].as_str().unwrap().contains("500"));
    assert_eq!(attempts[0]["cleanup"][0]["status"], "passed");
    let broken = case("infra.broken");
    assert_eq!(broken["status"], "failed");
    assert!(broken.get("flaky").is_none());
    assert_eq!(broken["attempts"].as_array().unwrap().len(), 1);

    let junit = quick_junit::Report::deserialize_from_str(&p.junit()).unwrap();
    let tc = |suite: &str| {
        junit
            .test_suites
            .iter()
            .find(|s| s.name.as_str() == suite)
            .unwrap()
            .test_cases[0]
            .clone()
    };
    // Within the Jenkins schema CI consumers validate against: a flaky case keeps its pass,
    // says status="flaky" and lists the failed attempt; an always-failing case says so.
    let flaky_tc = tc("infra.flaky");
    assert!(
        matches!(
            &flaky_tc.status,
            quick_junit::TestCaseStatus::Success { .. }
        ),
        "{:?}",
        flaky_tc.status
    );
    assert!(p.junit().contains(r#"status="flaky""#), "{}", p.junit());
    let out = flaky_tc
        .system_out
        .as_ref()
        .map(|x| x.as_str().to_string())
        .unwrap_or_default();
    assert!(
        out.starts_with("FLAKY: passed on attempt 2 after 1 failed attempt(s)"),
        "{out}"
    );
    assert!(out.contains("attempt 1 failed:"), "{out}");
    match &tc("infra.broken").status {
        quick_junit::TestCaseStatus::NonSuccess { message, .. } => {
            let m = message.as_ref().map(|m| m.as_str()).unwrap_or_default();
            assert!(m.starts_with("failed on all 2 attempts"), "{m}");
        }
        other => panic!("broken case: {other:?}"),
    }
    assert!(!p.junit().contains("<flakyFailure") && !p.junit().contains("<rerunFailure"));
    common::xmllint_validate(&p.path().join("reports/junit.xml"));

    let html = std::fs::read_to_string(p.path().join("reports/summary.html")).unwrap();
    assert!(html.contains(r#"<span class="badge s-flaky">Flaky</span>"#));
    assert!(html.contains("Flaky: passed on attempt 2 after 1 failed attempt(s)"));
    assert!(html.contains("Failed on all 2 attempts"));
}

#[test]
fn history_keeps_the_last_runs_and_the_reports_show_the_trend() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |s: &str| tmp.path().join(s).to_str().unwrap().to_string();
    for _ in 0..3 {
        run_ok(&[
            "run",
            "specs/api/nfft.yaml",
            "--quiet",
            "--report-dir",
            &p("reports"),
            "--history",
            &p("history"),
            "--history-keep",
            "2",
        ]);
    }
    let records: Vec<_> = std::fs::read_dir(tmp.path().join("history"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(records.len(), 2, "bounded to the last 2 runs: {records:?}");
    let rec: Value = serde_json::from_str(&std::fs::read_to_string(&records[0]).unwrap()).unwrap();
    assert_eq!(rec["target"], "embedded");
    assert!(rec["coverage"].as_object().unwrap().len() > 5);
    assert_eq!(rec["specs"].as_object().unwrap().len(), 1);
    for page in ["summary.html", "coverage.html"] {
        let html = std::fs::read_to_string(tmp.path().join("reports").join(page)).unwrap();
        assert!(html.contains(r#"<section class="trend""#), "{page}");
        assert!(html.contains("Trend over the last 2 run(s)"), "{page}");
        assert_eq!(html.matches(r#"<circle class="trend-dot pass""#).count(), 2);
        assert!(html.contains("New failures since the previous run"));
    }
    // `report --history` re-renders with it; without, no trend section.
    let out = tmp.path().join("again");
    run_ok(&[
        "report",
        &p("reports/results.json"),
        "--report-dir",
        out.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(out.join("summary.html")).unwrap();
    assert!(!html.contains(r#"<section class="trend""#));
    run_ok(&[
        "report",
        &p("reports/results.json"),
        "--report-dir",
        out.to_str().unwrap(),
        "--history",
        &p("history"),
    ]);
    let html = std::fs::read_to_string(out.join("summary.html")).unwrap();
    assert!(html.contains("Trend over the last 2 run(s)"));
}

#[test]
fn the_config_names_the_history_and_a_run_can_skip_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let cfg = tmp.path().join("focusqa.yaml");
    std::fs::write(
        &cfg,
        format!("specs: [{root}/specs]\nscope: {root}/specs/scope.yaml\nhistory: runs\nhistory_keep: 2\n"),
    )
    .unwrap();
    let count = || {
        std::fs::read_dir(tmp.path().join("runs"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--config",
            cfg.to_str().unwrap(),
            "run",
            "--id",
            "api.validation.nfft",
            "--quiet",
            "--report-dir",
        ];
        let reports = tmp.path().join("reports");
        let reports = reports.to_str().unwrap().to_string();
        args.push(&reports);
        args.extend_from_slice(extra);
        run_ok(&args);
    };
    run(&[]);
    // The folder is relative to the config file, not to where focusqa runs.
    assert_eq!(count(), 1, "the config's `history:` recorded the run");
    run(&[]);
    run(&[]);
    assert_eq!(count(), 2, "bounded by the config's `history_keep: 2`");
    let html = std::fs::read_to_string(tmp.path().join("reports/summary.html")).unwrap();
    assert!(html.contains("Trend over the last 2 run(s)"));

    let before: Vec<_> = std::fs::read_dir(tmp.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    run(&["--no-history"]);
    let after: Vec<_> = std::fs::read_dir(tmp.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "--no-history leaves the history alone");
    let html = std::fs::read_to_string(tmp.path().join("reports/summary.html")).unwrap();
    assert!(!html.contains(r#"<section class="trend""#));
}

/// A project with its own small catalog whose specs are run from a folder outside its `specs:`
/// (as when a second suite lives elsewhere), against a local server.
fn outside_project() -> (common::TestServer, Project, tempfile::TempDir) {
    let srv = common::TestServer::start(0);
    let p = Project::new(&srv.url);
    p.with_scope(
        "title: Outside scope\nareas: [{id: a, title: Area}]\nitems:\n  - {id: x.a, area: a, status: in, title: A}\n  - {id: x.b, area: a, status: in, title: B}\n  - {id: x.c, area: a, status: in, title: C}\n  - {id: x.d, area: a, status: in, title: D}\n  - {id: x.gap, area: a, status: in, title: Gap}\n",
        "specs: [specs]",
    );
    // The project's own spec of x.a, not run here: "not run" beside the outside one, as in a
    // single run.
    p.spec(
        "own.yaml",
        "id: own.a\ntitle: Own A\ncovers: [x.a]\nsteps:\n  - sleep: 1ms\n",
    );
    let out = tempfile::tempdir().unwrap();
    let w = |n: &str, t: &str| std::fs::write(out.path().join(n), t).unwrap();
    w(
        "a.yaml",
        "id: ext.a\ntitle: Ext A\ncovers: [x.a]\nsteps:\n  - sleep: 1ms\n",
    );
    w("b.yaml", "id: ext.b\ntitle: Ext B\ncovers: [x.b]\nsteps:\n  - http: {path: /work}\n    expect: {status: 200}\n");
    // Step-level covers: the first step proves x.c, the second fails and x.d with it.
    w("c.yaml", "id: ext.c\ntitle: Ext C\nsteps:\n  - http: {path: /work}\n    expect: {status: 200}\n    covers: [x.c]\n  - http: {path: /work}\n    expect: {status: 418}\n    covers: [x.d]\n");
    (srv, p, out)
}

#[test]
fn merge_of_specs_outside_the_config_folders_equals_the_single_run() {
    let (_srv, p, outside) = outside_project();
    let ext = outside.path().to_str().unwrap();
    let run = |args: &[&str], code: i32| {
        let out = p.run(args);
        common::assert_exit(&out, code);
        out
    };
    run(&["run", ext, "--quiet", "--report-dir", "single"], 1);
    let single = results_in(&p.path().join("single"));
    for k in ["1/2", "2/2"] {
        let dir = format!("shards/{}", &k[..1]);
        // Shard 1 holds ext.a and ext.c (the failing one), shard 2 ext.b.
        let code = if k == "1/2" { 1 } else { 0 };
        run(
            &["run", ext, "--quiet", "--shard", k, "--report-dir", &dir],
            code,
        );
    }
    let out = run(&["merge", "shards", "--report-dir", "merged"], 1);
    let merged = results_in(&p.path().join("merged"));
    let outcomes = |r: &Value| shape(r).1;
    assert_eq!(
        outcomes(&single),
        [
            ("x.a", "verified"),
            ("x.b", "verified"),
            ("x.c", "verified"),
            ("x.d", "failing"),
            ("x.gap", "gap")
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect::<BTreeMap<_, _>>()
    );
    // The whole coverage part: outcomes, counts, each covering spec's verdict and cases.
    assert_eq!(
        merged["coverage"],
        single["coverage"],
        "merged:\n{}\nsingle:\n{}",
        serde_json::to_string_pretty(&merged["coverage"]).unwrap(),
        serde_json::to_string_pretty(&single["coverage"]).unwrap()
    );
    // Where each item was established survives the merge (the equality above includes it).
    assert_eq!(
        merged["coverage"]["areas"][0]["items"][1]["target"],
        serde_json::json!({"name": "local", "kind": "remote"})
    );
    assert!(
        stdout(&out).contains("3 of 5 in-scope items verified on local (a real server)"),
        "{}",
        stdout(&out)
    );
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}
