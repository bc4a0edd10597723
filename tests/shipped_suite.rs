//! The shipped specs against the embedded simulator: the main job passes, coverage has no gaps,
//! the 200-job spec fails visibly when capacity is lowered, kube failures carry diagnostics.

use crate::common;

use common::{focusqa, results_in as results, stderr, stdout, xmllint_validate};

#[test]
fn the_main_job_passes_with_full_coverage() {
    let dir = tempfile::tempdir().unwrap();
    let out = focusqa(&[
        "run",
        "--quiet",
        "--report-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let r = results(dir.path());
    assert_eq!(r["target"]["name"], "embedded");
    assert_eq!(r["totals"]["failed"], 0);
    assert_eq!(r["totals"]["errors"], 0);
    assert!(r["totals"]["specs"].as_u64().unwrap() >= 20);
    let cov = &r["coverage"];
    assert_eq!(cov["gaps"].as_array().unwrap().len(), 0, "{cov}");
    assert_eq!(
        cov["verified"], cov["in_scope"],
        "every in-scope item verified: {cov}"
    );
    assert!(cov["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == "out.grpc-streaming"));
    // the 200 concurrent jobs, measured
    let f = common::fanout_of(&r, "limits.concurrent-200");
    assert_eq!(f["succeeded"], 200, "{f}");
    assert_eq!(f["captures"]["stream_port"].as_array().unwrap().len(), 200);
    assert!(f["steps"]["configure"]["p95"].as_f64().unwrap() > 0.0);
    assert!(
        stdout(&out).contains("Scope coverage: 29 of 29 in-scope items verified"),
        "{}",
        stdout(&out)
    );
    xmllint_validate(&dir.path().join("junit.xml"));
    let junit = quick_junit::Report::deserialize_from_str(
        &std::fs::read_to_string(dir.path().join("junit.xml")).unwrap(),
    )
    .unwrap();
    assert_eq!(junit.failures + junit.errors, 0);
}

#[test]
fn lowering_capacity_fails_the_hard_requirement_visibly() {
    let dir = tempfile::tempdir().unwrap();
    let out = focusqa(&[
        "run",
        "--quiet",
        "--capacity",
        "150",
        "--id",
        "^limits\\.concurrent-200$",
        "--report-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let s = stdout(&out);
    assert!(
        s.contains("150/200 succeeded, 50 x 503 capacity reached"),
        "{s}"
    );
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains("<failure")
            && junit.contains("150/200 succeeded, 50 x 503 capacity reached"),
        "{junit}"
    );
    let r = results(dir.path());
    let item = r["coverage"]["areas"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["items"].as_array().unwrap().iter())
        .find(|i| i["id"] == "k8s.limits.concurrent-200")
        .unwrap()
        .clone();
    assert_eq!(item["outcome"], "failing");
    assert_eq!(item["hard_requirement"], true);
    xmllint_validate(&dir.path().join("junit.xml"));
}

#[test]
fn coverage_without_running() {
    let out = focusqa(&["coverage"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = stdout(&out);
    assert!(
        s.contains("29 of 29 in-scope items covered by specs; 0 gaps; 5 excluded"),
        "{s}"
    );
    assert!(
        s.contains("out.grpc-streaming") && s.contains("remove all of gRPC"),
        "{s}"
    );
}

#[test]
fn covers_must_name_in_scope_catalog_items() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = dir.path().join("unknown.yaml");
    std::fs::write(
        &unknown,
        "id: x.unknown\ntitle: t\ncovers: [api.validation.chanels]\nsteps:\n  - sleep: 1ms\n",
    )
    .unwrap();
    let out_item = dir.path().join("out.yaml");
    std::fs::write(
        &out_item,
        "id: x.out\ntitle: t\ncovers: [out.grpc-streaming]\nsteps:\n  - sleep: 1ms\n",
    )
    .unwrap();
    let out = focusqa(&[
        "validate",
        unknown.to_str().unwrap(),
        out_item.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("`api.validation.chanels` is not an item of the scope catalog")
            && e.contains("did you mean `api.validation.channels`?"),
        "{e}"
    );
    assert!(
        e.contains("`out.grpc-streaming` is out of the agreed scope")
            && e.contains("excluded by decision"),
        "{e}"
    );
}

#[test]
fn a_wrong_kubernetes_expectation_fails_with_a_diff_and_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("wrong-memory.yaml");
    std::fs::write(
        &spec,
        r#"
id: x.wrong-memory
title: Expects 8Gi where the analyzer gets 4Gi
steps:
  - http: {method: POST, path: /configure, json: {displayTimeAxisDuration: 10, nfftSelection: 1024, displayInfo: {height: 1000}, channels: {min: 0, max: 50}, frequencyRange: {min: 0, max: 500}, view_type: 0}}
    expect: {status: 200}
    capture: {job_id: $.job_id}
  - name: analyzer memory
    kube: {op: wait, kind: Job, name: "baby-analyzer-{{ job_id }}", timeout: 20s}
    expect:
      match:
        spec: {template: {spec: {containers: [{name: baby-analyzer, resources: {limits: {memory: 8Gi}}}]}}}
cleanup:
  - http: {method: DELETE, path: "/job/{{ job_id }}"}
"#,
    )
    .unwrap();
    let rd = dir.path().join("reports");
    let out = focusqa(&[
        "run",
        spec.to_str().unwrap(),
        "--report-dir",
        rd.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let r = results(&rd);
    let step = &r["specs"][0]["cases"][0]["steps"][1];
    let msg = step["message"].as_str().unwrap();
    assert!(
        msg.contains(r#"memory: expected "8Gi", found "4Gi""#),
        "{msg}"
    );
    assert!(
        step["poll"]["attempts"].as_u64().unwrap() > 1,
        "wait polled: {step}"
    );
    let titles: Vec<&str> = step["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    assert!(
        titles.iter().any(|t| t.starts_with("Job/baby-analyzer-")),
        "{titles:?}"
    );
    assert!(
        titles.contains(&"recent Events") && titles.contains(&"container statuses"),
        "{titles:?}"
    );
    let junit = std::fs::read_to_string(rd.join("junit.xml")).unwrap();
    assert!(
        junit.contains("<system-out>") && junit.contains("recent Events"),
        "{junit}"
    );
    xmllint_validate(&rd.join("junit.xml"));
}
