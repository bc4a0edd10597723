//! Conformance of the simulator's Kubernetes objects with a real cluster's (issue 27).
//!
//! The same lifecycle runs on both sides at once: on a `focusqa sim` serving its own Kubernetes
//! API, and on a `focusqa sim --kubernetes` whose Jobs are real (Kubernetes' own controllers and
//! scheduler, kwok's nodes). A job is opened and runs; a second one fails
//! (`fail_next_jobs`); the first is cancelled and its cleanup job completes. At each point the
//! Job and Pod objects of both sides are compared field by field (which fields exist, and the
//! values of those that mean something: conditions, phases, owner references, label keys, counts,
//! exit codes, reasons), and the Event reasons by kind. Values that differ by nature (uids,
//! times, names with random suffixes, IPs) are compared by presence only.
//!
//! Every difference found must be listed in `docs/src/conformance.md` (generated:
//! `UPDATE_CONFORMANCE=1 cargo test --test all real_kube_conformance` rewrites it), and every
//! listed one must still be found: the list is what the simulator is known not to model.

use crate::common;

use common::real_kube::RealKube;
use common::{http_json, SeparateSim};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PAGE: &str = "docs/src/conformance.md";
const UPDATE: &str = "UPDATE_CONFORMANCE=1 cargo test --test all real_kube_conformance";

const PAYLOAD: &str = r#"{"displayTimeAxisDuration": 10, "nfftSelection": 1024, "displayInfo": {"height": 1000}, "channels": {"min": 0, "max": 50}, "frequencyRange": {"min": 0, "max": 500}, "start_time": null, "end_time": null, "view_type": 0}"#;

/// One side: a simulator, and kubectl pointed at the Kubernetes API its Jobs are in.
struct Side<'a> {
    focus: &'a str,
    kubectl: &'a Path,
    kubeconfig: &'a Path,
}

impl Side<'_> {
    fn get(&self, args: &[&str]) -> Option<Value> {
        let out = std::process::Command::new(self.kubectl)
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(["-n", "focus", "-o", "json", "get"])
            .args(args)
            .env(
                "KUBECACHEDIR",
                self.kubeconfig.with_file_name("kubectl-cache"),
            )
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    fn pod_of(&self, job: &str) -> Option<Value> {
        let list = self.get(&["pods", "-l", &format!("job-name={job}")])?;
        list["items"].as_array()?.first().cloned()
    }

    /// Polls `f` every 100 ms for up to 120 s.
    fn until<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let end = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(t) = f() {
                return t;
            }
            assert!(
                Instant::now() < end,
                "{}: {what} not seen within 120 s",
                self.focus
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn configure(&self) -> String {
        let payload: Value = serde_json::from_str(PAYLOAD).unwrap();
        let (code, v) = http_json(self.focus, "POST", "/configure", Some(&payload));
        assert_eq!(code, 200, "{v}");
        v["job_id"].as_str().unwrap().to_string()
    }

    /// The lifecycle; returns the objects at each point, and the events.
    fn lifecycle(&self) -> BTreeMap<&'static str, Value> {
        let mut seen = BTreeMap::new();
        let (code, _) = http_json(
            self.focus,
            "PUT",
            "/sim/faults",
            Some(&json!({"fail_next_jobs": 1})),
        );
        assert_eq!(code, 200);
        let failing = self.configure();
        let ok = self.configure();
        let (aj, cj, fj) = (
            format!("baby-analyzer-{ok}"),
            format!("cleanup-job-{ok}"),
            format!("baby-analyzer-{failing}"),
        );
        // Running: both pods Running and the consumer ready.
        self.until("the analyzer running", || {
            let (c, _) = http_json(self.focus, "GET", &format!("/metadata/{ok}"), None);
            let running = |p: &Value| p["status"]["phase"] == "Running";
            let pods = (self.pod_of(&aj)?, self.pod_of(&cj)?);
            let job = self.get(&["job", &aj])?;
            (c == 200 && running(&pods.0) && running(&pods.1) && job["status"]["ready"] == 1)
                .then_some(())
        });
        seen.insert("analyzer Job, running", self.get(&["job", &aj]).unwrap());
        seen.insert("analyzer Pod, running", self.pod_of(&aj).unwrap());
        seen.insert("cleanup Job, running", self.get(&["job", &cj]).unwrap());
        seen.insert("cleanup Pod, running", self.pod_of(&cj).unwrap());
        // Failed.
        let failed = self.until("the failing analyzer Job failed", || {
            let j = self.get(&["job", &fj])?;
            let conds = j["status"]["conditions"].as_array()?;
            conds
                .iter()
                .any(|c| c["type"] == "Failed" && c["status"] == "True")
                .then_some(j)
        });
        seen.insert("failed analyzer Job", failed);
        seen.insert(
            "failed analyzer Pod",
            self.until("the failed pod", || {
                self.pod_of(&fj)
                    .filter(|p| p["status"]["phase"] == "Failed")
            }),
        );
        // Cancelled: the cleanup job deletes the analyzer, then completes.
        let (code, _) = http_json(self.focus, "DELETE", &format!("/job/{ok}"), None);
        assert_eq!(code, 200);
        let complete = self.until("the cleanup Job complete", || {
            let j = self.get(&["job", &cj])?;
            let conds = j["status"]["conditions"].as_array()?;
            conds
                .iter()
                .any(|c| c["type"] == "Complete" && c["status"] == "True")
                .then_some(j)
        });
        seen.insert("completed cleanup Job", complete);
        if let Some(p) = self.pod_of(&cj) {
            seen.insert("completed cleanup Pod", p);
        }
        assert!(
            self.get(&["job", &aj]).is_none(),
            "the analyzer Job is deleted before the cleanup completes"
        );
        let events = self.get(&["events"]).unwrap();
        let mut reasons = BTreeSet::new();
        for e in events["items"].as_array().unwrap() {
            reasons.insert(format!(
                "{} {} ({})",
                e["involvedObject"]["kind"].as_str().unwrap_or(""),
                e["reason"].as_str().unwrap_or(""),
                e["type"].as_str().unwrap_or("")
            ));
        }
        seen.insert("events", json!(reasons));
        http_json(self.focus, "DELETE", &format!("/job/{failing}"), None);
        seen
    }
}

/// Leaves whose values differ by nature (`key` is the leaf's own key): compared by presence.
fn volatile(path: &str, key: &str) -> bool {
    key.ends_with("Time")
        || key.ends_with("Timestamp")
        || key.ends_with("At")
        || key.ends_with("controller-uid")
        || matches!(
            key,
            "uid"
                | "resourceVersion"
                | "name"
                | "containerID"
                | "imageID"
                | "ip"
                | "podIP"
                | "hostIP"
                | "nodeName"
                | "generation"
                | "observedGeneration"
                | "message"
                | "job-name"
                | "batch.kubernetes.io/job-name"
                | "focus.job-id"
                | "expirationSeconds"
                | "defaultMode"
                | "terminatingReplicas"
        )
        || path.contains(".args[")
        || path.contains(".env[name=JOB_ID]")
        || path.contains(".ports[")
}

/// Set by driving the cluster, not a difference of the simulator's objects.
fn ours(path: &str) -> bool {
    path.contains("focusqa.io/simulator") || path.contains("focusqa.kwok/exit")
}

/// A name with a random suffix (the token volume's), made comparable.
fn element_key(k: &str, s: &str) -> String {
    match s.strip_prefix("kube-api-access-") {
        Some(_) => format!("{k}=kube-api-access-*"),
        None => format!("{k}={s}"),
    }
}

/// Every leaf of `v`: path -> value (or `~` for a volatile one). Arrays of objects are keyed by
/// their `type`, `name` or `kind`, so order does not matter.
fn leaves(v: &Value, path: &str, key: &str, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                leaves(x, &p, k, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let el = ["type", "name", "kind"]
                    .iter()
                    .find_map(|k| x.get(*k).and_then(Value::as_str).map(|s| element_key(k, s)))
                    .unwrap_or_else(|| i.to_string());
                leaves(x, &format!("{path}[{el}]"), key, out);
            }
            if a.is_empty() {
                out.insert(format!("{path}[]"), "[]".into());
            }
        }
        _ => {
            if ours(path) {
                return;
            }
            let shown = if volatile(path, key) {
                "~".into()
            } else {
                v.to_string()
            };
            out.insert(path.to_string(), shown);
        }
    }
}

/// The paths of `one` not in `other`, each reported at the shortest prefix of which `other`
/// has nothing (a whole volume once, not each of its twelve leaves).
fn one_sided(one: &BTreeMap<String, String>, other: &BTreeMap<String, String>) -> Vec<String> {
    let under = |prefix: &str, p: &str| {
        p == prefix
            || p.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    };
    let mut out: Vec<String> = Vec::new();
    for (p, v) in one {
        if other.contains_key(p) {
            continue;
        }
        // Cut points: before each `.` or `[` outside brackets.
        let mut cuts = Vec::new();
        let mut depth = 0;
        for (i, ch) in p.char_indices() {
            match ch {
                '[' => {
                    if depth == 0 {
                        cuts.push(i);
                    }
                    depth += 1;
                }
                ']' => depth -= 1,
                '.' if depth == 0 => cuts.push(i),
                _ => {}
            }
        }
        cuts.push(p.len());
        let root = cuts
            .iter()
            .map(|&i| &p[..i])
            .find(|prefix| !other.keys().any(|q| under(prefix, q)))
            .unwrap_or(p);
        let line = if root == p {
            format!("`{p}` ({v})")
        } else {
            format!("`{root}`")
        };
        if !out.contains(&line) {
            out.push(line);
        }
    }
    out
}

fn differences(
    sim: &BTreeMap<&'static str, Value>,
    real: &BTreeMap<&'static str, Value>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (what, r) in real {
        let Some(s) = sim.get(what) else {
            out.push(format!("{what}: only in the cluster"));
            continue;
        };
        if *what == "events" {
            let (s, r): (BTreeSet<&str>, BTreeSet<&str>) = (
                s.as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_str)
                    .collect(),
                r.as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_str)
                    .collect(),
            );
            for e in r.difference(&s) {
                out.push(format!("events: only the cluster records `{e}`"));
            }
            for e in s.difference(&r) {
                out.push(format!("events: only the simulator records `{e}`"));
            }
            continue;
        }
        let (mut sl, mut rl) = (BTreeMap::new(), BTreeMap::new());
        leaves(s, "", "", &mut sl);
        leaves(r, "", "", &mut rl);
        for (p, v) in &rl {
            match sl.get(p) {
                Some(sv) if sv != v => out.push(format!(
                    "{what}: `{p}` is {sv} in the simulator, {v} in the cluster"
                )),
                _ => {}
            }
        }
        for l in one_sided(&rl, &sl) {
            out.push(format!("{what}: only the cluster has {l}"));
        }
        for l in one_sided(&sl, &rl) {
            out.push(format!("{what}: only the simulator has {l}"));
        }
    }
    for what in sim.keys() {
        if !real.contains_key(what) {
            out.push(format!("{what}: only in the simulator"));
        }
    }
    out
}

const KUBELET: &str =
    "kwok stands in for the kubelet and does not do this; the simulator models a kubelet";
const CONDITIONS_AFTER_EXIT: &str = "kwok leaves Ready and ContainersReady True after the container ended; a kubelet sets them False with reason PodCompleted or PodFailed, as the simulator does";

/// Why each known difference is there (matched by a part of its line). A difference without a
/// note fails the test: it is either fixed in the simulator or explained here.
const NOTES: &[(&str, &str)] = &[
    ("PodReadyToStartContainers", KUBELET),
    ("containerID", KUBELET),
    (".started`", KUBELET),
    ("Ready].status", CONDITIONS_AFTER_EXIT),
    ("Ready].reason", CONDITIONS_AFTER_EXIT),
    (
        "has `metadata.annotations`",
        "the simulator's model of the analyzer's CPU use (`focus.sim/cpu-millicores`), which its cleanup job samples; a cluster has metrics instead",
    ),
    (
        "Job SuccessfulDelete",
        "the simulator records the cleanup job deleting the analyzer (component focus-cleanup); a simulator driving a cluster deletes the Job itself, and records nothing",
    ),
    ("Pod Created", KUBELET),
    ("Pod Pulled", KUBELET),
    ("Pod Started", KUBELET),
    (
        "Pod Failed",
        "kwok records no kubelet events; whether a kubelet records `Failed` for a container that exits 1 (it does for one that cannot start) is not checked here",
    ),
];

fn note(d: &str) -> Option<&'static str> {
    NOTES.iter().find(|(k, _)| d.contains(k)).map(|(_, n)| *n)
}

fn page(diffs: &[String]) -> String {
    let mut s = String::from(
        "# Conformance with a real cluster\n\n\
         <!-- generated by tests/real_kube_conformance.rs: ",
    );
    s.push_str(UPDATE);
    s.push_str(
        " -->\n\n\
         The same lifecycle (a job opened and running, a second one failing, the first cancelled\n\
         until its cleanup job completes) runs on the simulator's own Kubernetes API and, through\n\
         `focusqa sim --kubernetes`, on a real control plane (Kubernetes v1.37 controllers and\n\
         scheduler, kwok nodes). The Job, Pod and Event objects are compared field by field:\n\
         which fields exist, and the values of conditions, phases, owner references, label keys,\n\
         counts, exit codes and reasons (uids, times, generated names, IPs and messages by\n\
         presence only). Each difference below is known: the test fails on one not listed here,\n\
         and on one listed here that is no longer found.\n\n\
         A spec that checks a field listed here as only in the simulator would pass on the\n\
         simulator and fail on a real cluster; write specs against the fields both have.\n\n",
    );
    if diffs.is_empty() {
        s.push_str("No difference.\n");
    }
    let mut current = "";
    for d in diffs {
        let (what, rest) = d.split_once(": ").unwrap_or(("", d));
        if what != current {
            s.push_str(&format!("\n## {what}\n\n"));
            current = what;
        }
        match note(d) {
            Some(n) => s.push_str(&format!("- {rest}: {n}\n")),
            None => s.push_str(&format!("- {rest}\n")),
        }
    }
    s
}

#[test]
fn the_simulators_jobs_pods_and_events_match_a_real_clusters_or_are_listed() {
    let Some(kube) = RealKube::up() else { return };
    let own = SeparateSim::start("1");
    let real = SeparateSim::start_on_cluster(&kube.kubeconfig);
    let own_kc: PathBuf = own.dir.path().join("kubeconfig.yaml");
    let (kubectl, kc) = (kube.kubectl.clone(), kube.kubeconfig.clone());
    let real_url = real.focus_url.clone();
    let real_side = std::thread::spawn(move || {
        Side {
            focus: &real_url,
            kubectl: &kubectl,
            kubeconfig: &kc,
        }
        .lifecycle()
    });
    let sim = Side {
        focus: &own.focus_url,
        kubectl: &kube.kubectl,
        kubeconfig: &own_kc,
    }
    .lifecycle();
    let real_seen = real_side.join().unwrap();
    let mut diffs = differences(&sim, &real_seen);
    diffs.sort();
    let unexplained: Vec<&String> = diffs.iter().filter(|d| note(d).is_none()).collect();
    assert!(
        unexplained.is_empty(),
        "differences from a real cluster with no note in NOTES: fix the simulator, or explain them\n{unexplained:#?}"
    );
    let want = page(&diffs);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(PAGE);
    if std::env::var_os("UPDATE_CONFORMANCE").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "the simulator's differences from a real cluster changed: {PAGE} lists them (rewrite it with {UPDATE} after checking each).\nfound now:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn a_difference_not_listed_fails_and_a_listed_one_no_longer_found_fails_too() {
    let obj = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}], "phase": "Failed"}, "metadata": {"uid": "a"}});
    let mut other = obj.clone();
    other["status"]["conditions"][0]["reason"] = json!("DeadlineExceeded");
    other["metadata"]["uid"] = json!("b");
    other["status"]["ready"] = json!(0);
    let sim = BTreeMap::from([("failed analyzer Job", obj.clone())]);
    let real = BTreeMap::from([("failed analyzer Job", other)]);
    let d = differences(&sim, &real);
    assert_eq!(
        d,
        [
            "failed analyzer Job: `status.conditions[type=Failed].reason` is \"BackoffLimitExceeded\" in the simulator, \"DeadlineExceeded\" in the cluster",
            "failed analyzer Job: only the cluster has `status.ready` (0)",
        ],
        "a uid differs by nature; a reason and a missing field do not"
    );
    assert_ne!(page(&d), page(&[]), "the page changes with the differences");
    let same = BTreeMap::from([("failed analyzer Job", obj)]);
    assert!(differences(&same, &same).is_empty());
}
