//! The shared watch of `kube wait`/`absent` steps (src/targets/watch.rs) against a real API
//! server that is killed and started again while the steps wait (issue 27). The restarted
//! server's watch cache starts from a fresh list, so a watch resumed from the resourceVersion
//! focusqa last saw gets 410 Gone ("too old resource version": k8s.io/apiserver's
//! watchCacheHistory.GetIntervalLocked refuses anything older than the list it started from,
//! once any write moved etcd's revision past it). Then again with `--watch-cache=false`, where
//! watches are etcd's and the resourceVersion expires because etcd was compacted past it. The
//! verdicts must be the cluster's state after the restart, not the watch's cache from before it.

use crate::common;

use common::real_kube::RealKube;
use serde_json::Value;
use std::path::Path;

const AUDIT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  namespaces: [focus]
  resources: [{group: "", resources: [configmaps]}]
- level: None
"#;

const SPEC: &str = r#"id: realkube.watch
title: waits on a shared watch across an API server restart
steps:
  - name: gate-a becomes ready after the restart
    kube: {op: wait, kind: ConfigMap, name: gate-a, timeout: 45s, interval: 200ms}
    expect: {json: [{path: $.data.state, equals: ready}]}
  - name: doomed, deleted after the restart, is gone
    kube: {op: absent, kind: ConfigMap, name: doomed, timeout: 20s, interval: 200ms}
  - name: gate-b, ready before the restart and revoked after it, is not ready
    kube: {op: wait, kind: ConfigMap, name: gate-b, timeout: 3s, interval: 200ms}
    expect: {json: [{path: $.data.state, equals: ready}]}
"#;

/// focusqa's requests on ConfigMaps in `focus` that the audit log recorded (kubectl's are
/// left out: both use the admin identity), as (verb, stage) pairs.
fn focusqa_requests(audit: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            !e["userAgent"]
                .as_str()
                .unwrap_or_default()
                .starts_with("kubectl")
        })
        .map(|e| {
            (
                e["verb"].as_str().unwrap_or_default().to_string(),
                e["stage"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn count(reqs: &[(String, String)], verb: &str, stage: &str) -> usize {
    reqs.iter().filter(|(v, s)| v == verb && s == stage).count()
}

fn collection_rv(kube: &RealKube) -> String {
    let list: Value = serde_json::from_str(&kube.kubectl(
        &["get", "--raw", "/api/v1/namespaces/focus/configmaps"],
        None,
    ))
    .unwrap();
    list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The objects the spec waits on, as they are before the restart.
const GATES: &str = r#"apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: gate-a, namespace: focus}, data: {state: pending}}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: gate-b, namespace: focus}, data: {state: ready}}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: doomed, namespace: focus}, data: {state: here}}
"#;

fn patch_state(kube: &RealKube, name: &str, state: &str) {
    let patch = format!(r#"{{"data":{{"state":"{state}"}}}}"#);
    kube.kubectl(
        &["-n", "focus", "patch", "configmap", name, "-p", &patch],
        None,
    );
}

/// One run of the spec across a restart with `flags`; `compact`: etcd is compacted before it.
/// `expired` is what a watch resumed from before the restart is told after it.
fn across_a_restart(
    kube: &RealKube,
    p: &common::Project,
    audit: &Path,
    flags: &[&str],
    compact: bool,
    expired: &str,
) {
    kube.kubectl(&["apply", "-f", "-"], Some(GATES));
    let watches = count(&focusqa_requests(audit), "watch", "ResponseStarted");
    let (mut child, out, err) =
        common::spawn_drained(&mut p.command(&["run", "--report-dir", "reports"]));
    // The shared watch is open (its first list done) when the audit log has its watch.
    kube.wait_for("focusqa's watch of ConfigMaps", 30, || {
        count(&focusqa_requests(audit), "watch", "ResponseStarted") > watches
    });
    let before = focusqa_requests(audit);
    // Writes elsewhere move etcd's revision past every resourceVersion focusqa has seen: a
    // restarted watch cache starts after them, and a compaction drops them. Two: etcd keeps the
    // revision it compacted at, and a watch from `rv` starts at `rv + 1`.
    let rv = collection_rv(kube);
    let churn = format!("churn-{rv}");
    kube.kubectl(&["-n", "default", "create", "configmap", &churn], None);
    kube.kubectl(
        &["-n", "default", "label", "configmap", &churn, "n=1"],
        None,
    );
    if compact {
        kube.script(&["etcd-compact"]);
    }
    kube.restart_apiserver(flags);
    // The changes the waits must see, in this order: b revoked, doomed deleted, then a ready
    // (a wait that saw a ready has b's revocation in its past).
    patch_state(kube, "gate-b", "revoked");
    kube.kubectl(&["-n", "focus", "delete", "configmap", "doomed"], None);
    patch_state(kube, "gate-a", "ready");
    // What a watch resumed from before the restart gets now: 410 Gone.
    let resumed = kube.kubectl(
        &[
            "get",
            "--raw",
            &format!(
                "/api/v1/namespaces/focus/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1"
            ),
        ],
        None,
    );
    assert!(
        resumed.contains(r#""code":410"#) && resumed.contains(expired),
        "a watch from resourceVersion {rv} (before the restart) is expired: {resumed}"
    );
    let status = child.wait().unwrap();
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err)
    );
    assert_eq!(status.code(), Some(1), "{text}");
    let res = p.results();
    let steps = &res["specs"][0]["cases"][0]["steps"];
    let st = |i: usize| steps[i]["status"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        (st(0), st(1), st(2)),
        ("passed".into(), "passed".into(), "failed".into()),
        "{text}"
    );
    let msg = steps[2]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("revoked"),
        "the wait failed on the state after the restart: {msg}"
    );
    // The watch did not resume on its pre-restart cache: it listed again.
    let after = focusqa_requests(audit);
    assert!(
        count(&after, "list", "ResponseComplete") > count(&before, "list", "ResponseComplete"),
        "focusqa's watch listed again after the restart: before {before:?}, after {after:?}"
    );
}

#[test]
fn waits_reach_the_clusters_verdict_across_an_api_server_restart_and_a_410() {
    let Some(kube) = RealKube::up() else { return };
    let t0 = std::time::Instant::now();
    let policy = kube.state.path().join("audit-policy.yaml");
    let audit = kube.state.path().join("audit.log");
    std::fs::write(&policy, AUDIT_POLICY).unwrap();
    let audit_flags = [
        format!("--audit-policy-file={}", policy.display()),
        format!("--audit-log-path={}", audit.display()),
    ];
    let mut flags: Vec<&str> = audit_flags.iter().map(String::as_str).collect();
    kube.restart_apiserver(&flags);
    kube.kubectl(&["create", "namespace", "focus"], None);
    let p = kube.project(&format!(
        "{{kubeconfig: {}, namespace: focus}}",
        kube.kubeconfig.display()
    ));
    p.spec("watch.yaml", SPEC);
    // With the watch cache: the restarted cache starts from a list after the write.
    across_a_restart(&kube, &p, &audit, &flags, false, "too old resource version");
    eprintln!(
        "real_kube_watch: watch cache: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    // Without it, watches are etcd's: the resourceVersion expires when etcd compacts past it.
    let t1 = std::time::Instant::now();
    flags.push("--watch-cache=false");
    kube.restart_apiserver(&flags);
    across_a_restart(
        &kube,
        &p,
        &audit,
        &flags,
        true,
        "The resourceVersion for the provided watch is too old.",
    );
    eprintln!(
        "real_kube_watch: etcd compaction: {:.1} s",
        t1.elapsed().as_secs_f64()
    );
}
