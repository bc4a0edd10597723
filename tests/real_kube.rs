//! focusqa's Kubernetes steps against a real control plane (issue 27): Kubernetes' own
//! kube-apiserver, controller-manager and scheduler on etcd, with kwok's fake GPU nodes, started
//! by `scripts/real-kube.sh up` from binaries built from source (`scripts/real-kube.sh build`,
//! about 27 minutes cold on 2 cores). It runs when `FOCUSQA_REAL_KUBE=1` is set and the binaries
//! are built; otherwise it prints a notice and passes: `.ci/run` does not build them yet (see
//! kube-lab/README.md).

use crate::common;

use common::{stderr, stdout};
use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/real-kube.sh")
}

/// The control plane of one test: its own state dir and ports; stopped when dropped.
struct RealKube {
    state: tempfile::TempDir,
    port: u16,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
}

impl RealKube {
    /// `None` (with a notice) when the binaries are not built here.
    fn up() -> Option<RealKube> {
        if std::env::var("FOCUSQA_REAL_KUBE").as_deref() != Ok("1") {
            eprintln!("notice: FOCUSQA_REAL_KUBE=1 runs focusqa's kube steps against a real control plane (scripts/real-kube.sh build first); skipped");
            return None;
        }
        let status = Command::new("bash")
            .arg(script())
            .arg("status")
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&status.stdout).to_string();
        if !status.status.success() || text.contains("not built") {
            eprintln!(
                "notice: the real control plane is not built here (scripts/real-kube.sh build); skipped\n{text}"
            );
            return None;
        }
        let kubectl = text
            .lines()
            .find_map(|l| l.strip_prefix("binary kubectl: "))
            .map(PathBuf::from)?;
        let state = tempfile::tempdir().unwrap();
        // Five ports from a base of our own (the script's default is 26443), below the kernel's
        // ephemeral range (32768 and up), where the other tests' connections take their ports.
        let port = 20_000 + (std::process::id() % 1_000) as u16 * 5;
        let out = Command::new("bash")
            .arg(script())
            .arg("up")
            .env("FOCUSQA_KUBE_STATE", state.path())
            .env("FOCUSQA_KUBE_PORT", port.to_string())
            .output()
            .unwrap();
        let kube = RealKube {
            kubeconfig: state.path().join("admin.kubeconfig"),
            state,
            port,
            kubectl,
        };
        if !out.status.success() {
            // The logs go with the state dir when `kube` is dropped: show their ends first.
            let mut logs = String::new();
            for n in [
                "etcd",
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kwok",
            ] {
                let text = std::fs::read_to_string(kube.state.path().join(format!("logs/{n}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(8).collect();
                logs.push_str(&format!("--- {n}.log (last lines)\n"));
                for l in tail.iter().rev() {
                    logs.push_str(l);
                    logs.push('\n');
                }
            }
            panic!(
                "scripts/real-kube.sh up failed:\n{}\n{logs}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let last = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(
            last,
            format!("KUBECONFIG={}", kube.kubeconfig.display()),
            "the last line names the kubeconfig"
        );
        Some(kube)
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) {
        use std::io::Write;
        let mut child = Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for RealKube {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("down")
            .env("FOCUSQA_KUBE_STATE", self.state.path())
            .env("FOCUSQA_KUBE_PORT", self.port.to_string())
            .output();
    }
}

const ANALYZER_JOB: &str = r#"apiVersion: batch/v1
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
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
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
