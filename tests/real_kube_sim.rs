//! `focusqa sim --kubernetes KUBECONFIG` against a real control plane (issue 27): the simulated
//! Focus Server's analyzer and cleanup Jobs are real Jobs there (the real job controller makes
//! their pods, the real scheduler places them on kwok's GPU nodes), and the simulator reads their
//! state back. The shipped `specs/k8s` and `specs/limits` pass against it and leave no Job
//! behind; the same simulator fails a job whose pod cannot be scheduled there, and a job whose
//! analyzer Job is deleted there.

use crate::common;

use common::real_kube::RealKube;
use common::{stderr, stdout, SeparateSim};
use serde_json::Value;
use std::path::Path;

const PAYLOAD: &str = "{displayTimeAxisDuration: 10, nfftSelection: 1024, displayInfo: {height: 1000}, channels: {min: 0, max: 50}, frequencyRange: {min: 0, max: 500}, start_time: null, end_time: null, view_type: 0}";

/// A spec that opens a job, waits up to `timeout` for its consumer, then runs `more` steps
/// (YAML, indented as list items of `steps`); the job is cancelled at the end.
fn spec(id: &str, timeout: &str, more: &str) -> String {
    format!(
        r#"id: realkube.{id}
title: {id}
vars:
  payload: {PAYLOAD}
steps:
  - name: configure
    http: {{method: POST, path: /configure, json: "{{{{ payload }}}}"}}
    expect: {{status: 200}}
    capture: {{job_id: $.job_id}}
  - name: the consumer is ready
    http: {{path: "/metadata/{{{{ job_id }}}}"}}
    until: {{interval: 200ms, timeout: {timeout}}}
    expect: {{status: 200}}
{more}cleanup:
  - when: job_id is defined
    http: {{method: DELETE, path: "/job/{{{{ job_id }}}}"}}
"#
    )
}

/// The analyzer's consumer is ready within `timeout`.
fn ready_spec(timeout: &str) -> String {
    spec("ready", timeout, "")
}

/// An analyzer Job deleted in the cluster by someone else: the Focus API lists its job failed.
fn lost_spec() -> String {
    spec(
        "lost",
        // generous: on a loaded machine the real controllers can take this long to run a pod
        "60s",
        r#"  - name: someone deletes the analyzer Job in the cluster
    kube: {op: delete, kind: Job, name: "baby-analyzer-{{ job_id }}"}
  - name: the API lists the job as failed
    http: {path: /jobs}
    until: {interval: 200ms, timeout: 15s}
    expect:
      match:
        jobs: [{job_id: "{{ job_id }}", status: failed}]
"#,
    )
}

fn run(sim: &SeparateSim, reports: &Path, what: &[&str]) -> std::process::Output {
    let dir = reports.to_str().unwrap();
    let mut args = vec!["run", "--report-dir", dir];
    args.extend_from_slice(what);
    sim.focusqa(&args)
}

fn json(kube: &RealKube, args: &[&str]) -> Value {
    serde_json::from_str(&kube.kubectl(args, None)).unwrap()
}

/// The pods in the Focus namespace, as `name phase node` lines.
fn pod_lines(kube: &RealKube) -> Vec<String> {
    json(kube, &["get", "pods", "-n", "focus", "-o", "json"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let at = |ptr: &str| p.pointer(ptr).and_then(Value::as_str).unwrap_or("-");
            format!(
                "{} {} {}",
                at("/metadata/name"),
                at("/status/phase"),
                at("/spec/nodeName")
            )
        })
        .collect()
}

/// `run`'s exit code is `code`; if not, the cluster's pods are shown before the failure.
fn assert_run(kube: &RealKube, out: &std::process::Output, code: i32) {
    if out.status.code() != Some(code) {
        eprintln!("pods in the cluster:\n{}", pod_lines(kube).join("\n"));
    }
    common::assert_exit(out, code);
}

fn managed_jobs(kube: &RealKube) -> usize {
    json(kube, &["get", "jobs", "-n", "focus", "-o", "json"])["items"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn the_simulator_drives_a_real_cluster_where_the_shipped_kubernetes_specs_pass() {
    // Room for 400 analyzers: 200 concurrent jobs need 200 GPU slices and 400 CPUs, and the
    // analyzers of jobs just cancelled keep theirs until the cleanup job deletes them (40-50 s
    // later), while the shipped limits specs open 200 right after 200 (see the book's chapter on
    // real clusters: with room for only 200, `limits.concurrent-200` fails there).
    let Some(kube) = RealKube::up_with(&[
        ("FOCUSQA_KUBE_GPUS_PER_NODE", "200"),
        ("FOCUSQA_KUBE_CPUS_PER_NODE", "512"),
    ]) else {
        return;
    };
    let reports = tempfile::tempdir().unwrap();
    let sim = SeparateSim::start_on_cluster(&kube.kubeconfig);
    let out = run(&sim, reports.path(), &["specs/k8s", "specs/limits"]);
    common::assert_exit(&out, 0);
    let results = common::results_in(reports.path());
    assert_eq!(results["totals"]["passed"], 7, "{}", results["totals"]);

    // The pods are the real controllers' work: made by the job controller (its uid label and
    // owner reference), placed by the scheduler on a kwok GPU node (the last 200 were opened a
    // moment ago: the scheduler may still be placing them).
    let placed = |p: &Value| {
        p.pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| n.starts_with("gpu-node-"))
    };
    let mut pods = Vec::new();
    for _ in 0..150 {
        let list = json(
            &kube,
            &[
                "get",
                "pods",
                "-n",
                "focus",
                "-l",
                "app=baby-analyzer",
                "-o",
                "json",
            ],
        );
        pods = list["items"].as_array().unwrap().clone();
        if !pods.is_empty() && pods.iter().all(placed) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        !pods.is_empty(),
        "analyzers of cancelled jobs await their cleanup"
    );
    for p in &pods {
        assert!(
            p.pointer("/metadata/labels/batch.kubernetes.io~1controller-uid")
                .is_some(),
            "{p}"
        );
        assert_eq!(
            p.pointer("/metadata/ownerReferences/0/kind").unwrap(),
            "Job"
        );
        assert!(placed(p), "{p}");
    }
    assert!(managed_jobs(&kube) > 0);
    drop(sim); // SIGINT: the simulator deletes every Job it made before it exits
    assert_eq!(managed_jobs(&kube), 0, "no Job left behind");
    // Their pods go with them (the cluster's garbage collector); until then they hold their
    // GPU slices, and the jobs below would wait for room instead of showing what they test.
    kube.wait_for("the deleted Jobs' pods are gone", 180, || {
        pod_lines(&kube).is_empty()
    });

    // Read back from the cluster: with the GPU nodes cordoned the analyzer pod cannot be
    // scheduled, so the consumer never gets ready (the simulator's own timeline alone would
    // have made it ready within seconds).
    let sim = SeparateSim::start_on_cluster(&kube.kubeconfig);
    let specs = tempfile::tempdir().unwrap();
    let ready = specs.path().join("ready.yaml");
    std::fs::write(&ready, ready_spec("8s")).unwrap();
    kube.kubectl(&["cordon", "gpu-node-1", "gpu-node-2"], None);
    let out = run(&sim, reports.path(), &[ready.to_str().unwrap()]);
    assert_run(&kube, &out, 1);
    assert!(
        stdout(&out).contains("the consumer is ready"),
        "{}",
        stdout(&out)
    );
    kube.kubectl(&["uncordon", "gpu-node-1", "gpu-node-2"], None);
    std::fs::write(&ready, ready_spec("60s")).unwrap();
    let out = run(&sim, reports.path(), &[ready.to_str().unwrap()]);
    assert_run(&kube, &out, 0);

    // An analyzer Job deleted in the cluster (through the real API server) fails its job.
    let lost = specs.path().join("lost.yaml");
    std::fs::write(&lost, lost_spec()).unwrap();
    let out = run(&sim, reports.path(), &[lost.to_str().unwrap()]);
    assert_run(&kube, &out, 0);
    drop(sim);
    assert_eq!(managed_jobs(&kube), 0, "no Job left behind");
}

#[test]
fn driving_a_cluster_needs_real_time_and_a_reachable_api_server() {
    let out = common::focusqa(&[
        "sim",
        "--kubernetes",
        "/nonexistent/kubeconfig",
        "--time-scale",
        "0.1",
    ]);
    common::assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("use --time-scale 1"),
        "{}",
        stderr(&out)
    );
    let out = common::focusqa(&[
        "sim",
        "--kubernetes",
        "/nonexistent/kubeconfig",
        "--port",
        "0",
        "--kube-port",
        "0",
    ]);
    common::assert_exit(&out, 3);
    assert!(
        stderr(&out).contains("cannot read the kubeconfig /nonexistent/kubeconfig"),
        "{}",
        stderr(&out)
    );
}
