//! The in-cluster runner's manifests (docker and kubectl are not needed): they parse, the
//! Indexed Job feeds its completion index into `--shard`, the merge Job reads what the shards
//! wrote, and the runner's Role stays within get/list/watch/delete in the Focus namespace.

use std::path::Path;

use serde_json::Value;

fn docs(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy")
            .join(name),
    )
    .unwrap();
    // A spec holds one YAML document, and so does the parser focusqa reads specs with: the
    // manifests' documents are read one by one, split at their `---` lines.
    text.split("\n---\n")
        .map(|doc| focusqa::spec::yaml::from_str(doc).unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

#[test]
fn the_indexed_job_runs_one_shard_per_completion() {
    let job = &docs("job.yaml")[0];
    let spec = &job["spec"];
    assert_eq!(s(&spec["completionMode"]), "Indexed");
    let n = spec["completions"].as_u64().unwrap();
    assert_eq!(spec["parallelism"].as_u64(), Some(n));
    let pod = &spec["template"]["spec"];
    let c = &pod["containers"][0];
    let shards = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| s(&e["name"]) == "SHARDS")
        .unwrap();
    assert_eq!(
        s(&shards["value"]).parse::<u64>().unwrap(),
        n,
        "SHARDS = completions"
    );
    let cmd: Vec<&str> = c["command"]
        .as_array()
        .unwrap()
        .iter()
        .chain(c["args"].as_array().unwrap())
        .map(s)
        .collect();
    let line = cmd.join(" ");
    assert!(line.contains("focusqa run"), "{line}");
    assert!(
        line.contains(r#"--shard "$((JOB_COMPLETION_INDEX + 1))/${SHARDS}""#),
        "1-based shard from the 0-based completion index: {line}"
    );
    assert!(line.contains("--report-dir \"/results/shard-$((JOB_COMPLETION_INDEX + 1))\""));
    assert_eq!(s(&pod["restartPolicy"]), "Never");
    assert_eq!(s(&pod["serviceAccountName"]), "focusqa-runner");
    let claim = s(&pod["volumes"][0]["persistentVolumeClaim"]["claimName"]);
    assert_eq!(s(&docs("results-pvc.yaml")[0]["metadata"]["name"]), claim);

    let merge = &docs("merge-job.yaml")[0]["spec"]["template"]["spec"];
    let args: Vec<&str> = merge["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert_eq!(args[..2], ["merge", "/results"]);
    assert_eq!(
        s(&merge["volumes"][0]["persistentVolumeClaim"]["claimName"]),
        claim
    );
}

#[test]
fn the_runner_may_only_read_and_delete_jobs_pods_and_read_events_in_focus() {
    let rbac = docs("rbac.yaml");
    let kinds: Vec<&str> = rbac.iter().map(|d| s(&d["kind"])).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ClusterRole",
            "ClusterRoleBinding"
        ]
    );
    for d in &rbac[..3] {
        assert_eq!(s(&d["metadata"]["namespace"]), "focus");
    }
    // the one cluster-wide grant: reading nodes (`kube list Node`), nothing else
    let rules = rbac[3]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["resources"][0], "nodes");
    for v in rules[0]["verbs"].as_array().unwrap() {
        assert!(["get", "list", "watch"].contains(&s(v)), "{v:?}");
    }
    assert_eq!(s(&rbac[4]["subjects"][0]["name"]), "focusqa-runner");
    assert_eq!(
        s(&rbac[4]["roleRef"]["name"]),
        s(&rbac[3]["metadata"]["name"])
    );
    for rule in rbac[1]["rules"].as_array().unwrap() {
        let resources: Vec<&str> = rule["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(s)
            .collect();
        let verbs: Vec<&str> = rule["verbs"].as_array().unwrap().iter().map(s).collect();
        for r in &resources {
            assert!(["jobs", "pods", "events"].contains(r), "{r}");
        }
        for v in &verbs {
            assert!(["get", "list", "watch", "delete"].contains(v), "{v}");
            if *v == "delete" {
                assert!(!resources.contains(&"events"), "events are read-only");
            }
        }
    }
    assert_eq!(s(&rbac[2]["subjects"][0]["name"]), "focusqa-runner");
    assert_eq!(
        s(&rbac[2]["roleRef"]["name"]),
        s(&rbac[1]["metadata"]["name"])
    );
}

#[test]
fn the_in_cluster_config_is_a_valid_config() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/focusqa.in-cluster.yaml");
    let cfg = focusqa::config::Config::load(Some(&p)).unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(cfg.default_target, "cluster");
    let t = cfg.target("cluster").unwrap();
    assert!(t.kubernetes.as_ref().unwrap().in_cluster);
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/Dockerfile"))
            .unwrap();
    assert!(dockerfile
        .contains("COPY --from=build /src/deploy/focusqa.in-cluster.yaml /app/focusqa.yaml"));
    assert_eq!(
        dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")),
        2,
        "multi-stage"
    );
}
