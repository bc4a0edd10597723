//! `deploy/` against a real API server (issue 27): focusqa in in-cluster mode with a real
//! service-account token (TokenRequest, `kubectl create token`) of `deploy/rbac.yaml`'s
//! `focusqa-runner`, the pod's files faked in a temp dir as in tests/in_cluster.rs; and the
//! Indexed Job of `deploy/job.yaml` as the real job controller makes its pods.

use crate::common;

use common::real_kube::RealKube;
use common::stdout;
use serde_json::Value;
use std::path::Path;

/// The kube steps the shipped specs use: wait, get, list (namespaced and Node), delete, absent.
const SPEC: &str = r#"id: realkube.rbac
title: the runner's own identity is enough for the shipped kube steps
steps:
  - name: the analyzer job runs
    kube: {op: wait, kind: Job, name: baby-analyzer-real, timeout: 60s}
    expect: {json: [{path: $.status.active, equals: 1}]}
  - name: its pod, by label
    kube: {op: list, kind: Pod, labels: "job-name=baby-analyzer-real"}
    expect: {json: [{path: $.count, equals: 1}]}
  - name: the GPU nodes
    kube: {op: list, kind: Node}
    expect: {json: [{path: $.count, equals: 2}]}
  - name: the job by name
    kube: {op: get, kind: Job, name: baby-analyzer-real}
  - name: delete the job
    kube: {op: delete, kind: Job, name: baby-analyzer-real}
  - name: gone
    kube: {op: absent, kind: Job, name: baby-analyzer-real, timeout: 30s}
"#;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn deploy(name: &str) -> String {
    std::fs::read_to_string(root().join("deploy").join(name)).unwrap()
}

/// focusqa as in a pod of the runner's service account: `sa` holds the mounted files.
fn run_in_pod(kube: &RealKube, sa: &Path) -> std::process::Output {
    let p = kube.project(&format!(
        "{{in_cluster: true, service_account_dir: {}, namespace: focus}}",
        sa.display()
    ));
    p.spec("rbac.yaml", SPEC);
    p.command(&["run", "--report-dir", "reports"])
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", kube.port.to_string())
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

/// The `focus` namespace with the runner's identity of `deploy/rbac.yaml`.
fn runner(kube: &RealKube) {
    kube.kubectl(&["create", "namespace", "focus"], None);
    kube.kubectl(&["apply", "-f", "-"], Some(&deploy("rbac.yaml")));
}

fn can_i(kube: &RealKube, verb: &str, resource: &str) -> bool {
    let out = kube.kubectl_output(
        &[
            "auth",
            "can-i",
            verb,
            resource,
            "-n",
            "focus",
            "--as=system:serviceaccount:focus:focusqa-runner",
        ],
        None,
    );
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

#[test]
fn the_runner_rbac_is_enough_and_each_grant_less_fails_naming_it() {
    let Some(kube) = RealKube::up() else { return };
    let t0 = std::time::Instant::now();
    runner(&kube);
    let token = kube.kubectl(
        &[
            "create",
            "token",
            "focusqa-runner",
            "-n",
            "focus",
            "--duration=1h",
        ],
        None,
    );
    let sa = tempfile::tempdir().unwrap();
    std::fs::write(sa.path().join("token"), token.trim()).unwrap();
    std::fs::write(sa.path().join("ca.crt"), kube.ca_pem()).unwrap();
    std::fs::write(sa.path().join("namespace"), "focus").unwrap();

    kube.kubectl(&["apply", "-f", "-"], Some(crate::real_kube::ANALYZER_JOB));
    let out = run_in_pod(&kube, sa.path());
    common::assert_exit(&out, 0);

    // The Role alone (no ClusterRoleBinding): Nodes are cluster-scoped, `list Node` fails.
    kube.kubectl(
        &["delete", "clusterrolebinding", "focusqa-runner-nodes"],
        None,
    );
    kube.wait_for("the nodes grant gone", 10, || {
        !can_i(&kube, "list", "nodes")
    });
    kube.kubectl(&["apply", "-f", "-"], Some(crate::real_kube::ANALYZER_JOB));
    let out = run_in_pod(&kube, sa.path());
    let text = stdout(&out);
    assert!(
        out.status.code() != Some(0)
            && text
                .contains(r#"cannot list resource "nodes" in API group "" at the cluster scope"#),
        "{text}"
    );
    kube.kubectl(&["apply", "-f", "-"], Some(&deploy("rbac.yaml")));

    // The Role without `list` on pods: the list step fails, naming the 403, verb and resource.
    let role = deploy("rbac.yaml");
    let role = role.split("\n---\n").nth(1).unwrap().replace(
        "resources: [\"pods\"]\n    verbs: [\"get\", \"list\", \"watch\", \"delete\"]",
        "resources: [\"pods\"]\n    verbs: [\"get\", \"watch\", \"delete\"]",
    );
    kube.kubectl(&["apply", "-f", "-"], Some(&role));
    kube.wait_for("the Role without list on pods in force", 10, || {
        !can_i(&kube, "list", "pods")
    });
    kube.kubectl(&["apply", "-f", "-"], Some(crate::real_kube::ANALYZER_JOB));
    let out = run_in_pod(&kube, sa.path());
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Kubernetes API refused list Pod with labels job-name=baby-analyzer-real: 403 Forbidden")
            && text.contains(r#"cannot list resource "pods" in API group "" in the namespace "focus""#)
            && text.contains("add the verb and resource to its Role"),
        "{text}"
    );
    eprintln!("real_kube_rbac: {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn the_indexed_job_of_deploy_is_accepted_and_its_pods_get_their_completion_index() {
    let Some(kube) = RealKube::up() else { return };
    let t0 = std::time::Instant::now();
    runner(&kube);
    kube.kubectl(&["apply", "-f", "-"], Some(&deploy("results-pvc.yaml")));
    let job = deploy("job.yaml");
    let dry = kube.kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&job));
    assert!(
        dry.contains("job.batch/focusqa-shards created (server dry run)"),
        "{dry}"
    );
    kube.kubectl(&["apply", "-f", "-"], Some(&job));
    let pods = || -> Vec<Value> {
        let list: Value = serde_json::from_str(&kube.kubectl(
            &[
                "-n",
                "focus",
                "get",
                "pods",
                "-l",
                "job-name=focusqa-shards",
                "-o",
                "json",
            ],
            None,
        ))
        .unwrap();
        list["items"].as_array().cloned().unwrap_or_default()
    };
    kube.wait_for("the job controller's 4 pods", 30, || pods().len() == 4);
    let mut indexes: Vec<String> = Vec::new();
    for p in pods() {
        let index = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // The controller puts JOB_COMPLETION_INDEX into the container's env from the pod's
        // index label (v1.37; the annotation carries the same index).
        let env = &p["spec"]["containers"][0]["env"];
        let from = env
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "JOB_COMPLETION_INDEX")
            .unwrap_or_else(|| panic!("JOB_COMPLETION_INDEX in {env}"));
        assert_eq!(
            from["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.labels['batch.kubernetes.io/job-completion-index']",
            "{from}"
        );
        assert_eq!(
            p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"],
            index.as_str()
        );
        assert_eq!(p["spec"]["serviceAccountName"], "focusqa-runner");
        indexes.push(index);
    }
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2", "3"]);
    eprintln!("real_kube_rbac (job): {:.1} s", t0.elapsed().as_secs_f64());
}
