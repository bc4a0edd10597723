//! Kubernetes at scale: 200 concurrent `kube wait` steps share one watch instead of polling the
//! API server 200 times each, and the API server's 429 + Retry-After is waited out.
//! The simulator counts the Kubernetes API requests it answers (`/sim/state` → `kube_api`).

use crate::common;

use common::SeparateSim;
use serde_json::{json, Value};

fn kube_api(sim: &SeparateSim) -> Value {
    sim.request("GET", "/sim/state", None).1["kube_api"].clone()
}

fn count(v: &Value, verb: &str) -> u64 {
    v["by_verb"][verb].as_u64().unwrap_or(0)
}

#[test]
fn two_hundred_concurrent_waits_share_one_watch() {
    // Time scale 0.1, not 0.01: the simulator spends 0.15-0.4 s of CPU on the burst of 200
    // configures (a debug build), and the shared watch's first list waits behind it. At 0.01
    // that was 15-40 s of the analyzer wait's 60 s, and on a busy machine more than all of it
    // (the "1 x error: timeout" of issue 22). At 0.1 the same stall is 1.5-4 s.
    let sim = SeparateSim::start("0.1");
    let before = kube_api(&sim);
    let out = sim.focusqa(&[
        "run",
        "--id",
        "limits.concurrent-200",
        "--report-dir",
        sim.dir.path().join("r").to_str().unwrap(),
    ]);
    common::assert_exit(&out, 0);
    let after = kube_api(&sim);
    let requests = after["requests"].as_u64().unwrap() - before["requests"].as_u64().unwrap();
    let gets = count(&after, "get") - count(&before, "get");
    let watches = count(&after, "watch") - count(&before, "watch");
    // Discovery (a handful), one list and one watch of Jobs in `focus`; polling would be
    // at least one GET per job (200) and one per poll.
    assert_eq!(gets, 0, "no per-job GETs: {after}");
    assert!(watches >= 1, "the waits read a watch: {after}");
    assert!(
        requests <= 20,
        "O(kinds) requests, not O(jobs x polls): {requests} ({after})"
    );
}

#[test]
fn retry_after_from_the_api_server_is_waited_out() {
    let sim = SeparateSim::start("0.01");
    let dir = sim.dir.path();
    std::fs::create_dir_all(dir.join("k")).unwrap();
    std::fs::write(
        dir.join("k/list.yaml"),
        "id: kube.list\ntitle: list jobs through a throttling API server\nsteps:\n  - name: jobs\n    kube: {op: list, kind: Job}\n",
    )
    .unwrap();
    let cfg = std::fs::read_to_string(sim.config()).unwrap();
    let cfg = cfg
        .lines()
        .map(|l| {
            if l.starts_with("specs:") {
                format!("specs: [{}]", dir.join("k").display())
            } else if l.starts_with("scope:") {
                "scope: none".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("throttled.yaml"), cfg).unwrap();
    let (code, _) = sim.request(
        "PUT",
        "/sim/faults",
        Some(&json!({"kube_throttle": {"requests": 2, "retry_after_s": 1}})),
    );
    assert_eq!(code, 200);
    let out = common::focusqa(&[
        "--config",
        dir.join("throttled.yaml").to_str().unwrap(),
        "run",
        "--report-dir",
        dir.join("r").to_str().unwrap(),
    ]);
    common::assert_exit(&out, 0);
    let api = kube_api(&sim);
    assert_eq!(api["throttled"], 2, "{api}");
    // A client that ignored Retry-After would come back within milliseconds.
    let gap = api["min_retry_gap_ms"].as_u64().unwrap();
    assert!(
        gap >= 950,
        "waited the 1 s Retry-After before retrying: {gap} ms ({api})"
    );
}
