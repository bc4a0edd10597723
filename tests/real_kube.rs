//! focusqa's Kubernetes steps against a real control plane (issue 27): Kubernetes' own
//! kube-apiserver, controller-manager and scheduler on etcd, with kwok's fake GPU nodes, started
//! by `scripts/real-kube.sh up` from binaries built from source (`scripts/real-kube.sh build`,
//! about 27 minutes cold on 2 cores). The harness is `common::real_kube`: required in CI, a
//! notice and a pass where the binaries are not built.

use crate::common;

use common::real_kube::RealKube;
use common::stdout;
use std::path::Path;
use std::process::Command;

pub const ANALYZER_JOB: &str = r#"apiVersion: batch/v1
kind: Job
metadata: {name: baby-analyzer-real, namespace: focus, labels: {app: baby-analyzer}}
spec:
  backoffLimit: 0
  template:
    metadata: {labels: {app: baby-analyzer}}
    spec:
      restartPolicy: Never
      containers:
      - name: analyzer
        image: focus/baby-analyzer:1
        resources:
          requests: {memory: 2Gi, cpu: "1", nvidia.com/mig-1g.10gb: "1"}
          limits: {memory: 2Gi, nvidia.com/mig-1g.10gb: "1"}
        ports: [{containerPort: 50051}]
"#;

const SPEC: &str = r#"id: realkube.steps
title: kube steps against a real API server
steps:
  - name: the analyzer job runs
    kube: {op: get, kind: Job, name: baby-analyzer-real}
    until: {interval: 500ms, timeout: 60s}
    expect: {json: [{path: $.status.active, equals: 1}]}
  - name: its pod is Running
    kube: {op: list, kind: Pod, labels: "job-name=baby-analyzer-real"}
    until: {interval: 500ms, timeout: 60s}
    expect: {json: [{path: "$.items[0].status.phase", equals: Running}]}
  - name: its pod, by label, scheduled on a GPU node and Running
    kube: {op: list, kind: Pod, labels: "job-name=baby-analyzer-real"}
    expect: {json: [{path: $.count, equals: 1}, {path: "$.items[0].status.phase", equals: Running}, {path: "$.items[0].spec.nodeName", matches: "^gpu-node-"}]}
  - name: the GPU nodes
    kube: {op: list, kind: Node, labels: "type=kwok"}
    expect: {json: [{path: $.count, equals: NODES}]}
  - name: delete the job
    kube: {op: delete, kind: Job, name: baby-analyzer-real}
  - name: gone
    kube: {op: absent, kind: Job, name: baby-analyzer-real, timeout: 30s}
"#;

/// A project whose target is the real cluster (its Focus API is not used here).
fn project(kube: &RealKube, nodes: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("specs")).unwrap();
    std::fs::write(
        dir.path().join("focusqa.yaml"),
        format!(
            "default_target: real\nscope: none\ntargets:\n  real:\n    base_url: http://127.0.0.1:9\n    kubernetes: {{kubeconfig: {}, namespace: focus}}\n",
            kube.kubeconfig.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("specs/real.yaml"),
        SPEC.replace("NODES", &nodes.to_string()),
    )
    .unwrap();
    dir
}

fn run(dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_focusqa"))
        .args(["run", "--report-dir", "reports"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn kube_steps_hold_against_a_real_api_server_and_can_fail_there() {
    let Some(kube) = RealKube::up() else { return };
    kube.kubectl(&["create", "namespace", "focus"], None);
    kube.kubectl(&["apply", "-f", "-"], Some(ANALYZER_JOB));
    let ok = project(&kube, 2);
    let out = run(ok.path());
    common::assert_exit(&out, 0);
    // The same checks fail where the cluster differs: 3 nodes expected, 2 there.
    kube.kubectl(&["apply", "-f", "-"], Some(ANALYZER_JOB));
    let bad = project(&kube, 3);
    let out = run(bad.path());
    common::assert_exit(&out, 1);
    assert!(
        stdout(&out).contains("$.count equals 3: found 2"),
        "{}",
        stdout(&out)
    );
}
