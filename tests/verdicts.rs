//! Verdicts mean what they say (issue 10): a polled step's time is the time until its condition
//! held, every spec duration is simulated time on a scaled simulator, and coverage neither calls
//! unselected items gaps nor blames items on steps that do not prove them.
//! Each check here is shown failing as well as passing.

use crate::common;

use common::{
    fanout_of, focusqa, results_in, run_expecting, stderr, stdout, threshold, SeparateSim,
};
use serde_json::{json, Value};

#[test]
fn the_readiness_threshold_holds_on_the_default_and_fails_when_consumers_are_slow() {
    // Passing: the embedded default, readiness 1-5 s with a tail below 30 s.
    let run = run_expecting(0, &["run", "--quiet", "--id", "^data.consumer-readiness$"]);
    let r = &run.results;
    let f = fanout_of(r, "data.consumer-readiness");
    let ready = &f["steps"]["consumer ready"];
    assert_eq!(ready["measure"], "time until the condition held");
    assert_eq!(ready["held_samples"].as_array().unwrap().len(), 10);
    // The time until ready, not one request: at least the simulator's 1 s minimum.
    assert!(ready["min"].as_f64().unwrap() >= 1000.0, "{ready}");
    assert_eq!(
        f["request_latency"]["consumer ready"]["measure"],
        "request latency"
    );
    assert_eq!(threshold(f, "max(consumer ready) < 30s")["passed"], true);
    // A run of this spec alone shows its readiness distribution (polls inside the fan-out).
    let html = std::fs::read_to_string(run.dir.path().join("summary.html")).unwrap();
    assert!(html.contains("Readiness timing"), "summary shows readiness");
    assert!(
        html.contains("over the 10 successful polls"),
        "all 10 polls charted"
    );

    // Failing: consumers take 20-40 s (simulated) on a separately started simulator (at 0.1,
    // where its 30 s poll is 3 s of wall time; the embedded target's twin is in virtual_time.rs).
    let sim = SeparateSim::start("0.1");
    let (st, v) = sim.request(
        "PUT",
        "/sim/faults",
        Some(&json!({"consumer_delay_s": [20, 40]})),
    );
    assert_eq!(st, 200, "{v}");
    let rd = sim.dir.path().join("reports");
    let out = sim.focusqa(&[
        "run",
        "--quiet",
        "--id",
        "^data.consumer-readiness$",
        "--report-dir",
        rd.to_str().unwrap(),
    ]);
    common::assert_exit(&out, 1);
    let r = results_in(&rd);
    let f = fanout_of(&r, "data.consumer-readiness");
    let t = threshold(f, "max(consumer ready) < 30s");
    assert_eq!(t["passed"], false, "{t}");
    assert!(
        f["steps"]["consumer ready"]["max"].as_f64().unwrap() >= 20_000.0,
        "{}",
        f["steps"]["consumer ready"]
    );
    // Nothing left open: the fan-out's cleanup cancelled every job.
    assert_eq!(sim.request("GET", "/jobs", None).1["count"], 0);
}

#[test]
fn spec_durations_are_simulated_time() {
    let run = run_expecting(1, &["run", "tests/fixtures/verdicts/simulated-time.yaml"]);
    let r = &run.results;
    // The embedded target: one clock, virtual, on which every figure is simulated time.
    assert_eq!(r["target"]["clock"], "virtual");
    assert_eq!(r["target"]["time_scale"], 1.0);
    let steps = &r["specs"][0]["cases"][0]["steps"];
    // sleep: 10 s, to the timer's millisecond (no host stall reaches a virtual clock).
    let sleep = &steps[0];
    let ms = sleep["duration_ms"].as_f64().unwrap();
    assert!((10_000.0..10_002.0).contains(&ms), "{sleep}");
    assert!(sleep.get("simulated_ms").is_none(), "{sleep}");
    // The 30 s poll timeout: every 100 ms (plus each request's modelled few ms) until the next
    // attempt would pass 30 s.
    let poll = &steps[3];
    assert_eq!(poll["status"], "failed", "{poll}");
    let p = &poll["poll"];
    assert_eq!(p["satisfied"], false);
    assert_eq!(p["timeout_ms"], 30_000.0);
    assert_eq!(p["interval_ms"], 100.0);
    let elapsed = p["elapsed_ms"].as_f64().unwrap();
    assert!((29_800.0..=30_000.0).contains(&elapsed), "{p}");
    assert!(p.get("simulated_elapsed_ms").is_none(), "{p}");
    // The message says that time ("... attempts in 29.9s)").
    let msg = poll["message"].as_str().unwrap();
    let secs: f64 = msg
        .rsplit_once(" in ")
        .and_then(|(_, t)| t.strip_suffix("s)"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{msg}"));
    assert!((29.8..=30.0).contains(&secs), "{msg}");
    // The spec's cleanup still ran (faults cleared, job cancelled).
    let cleanup = r["specs"][0]["cases"][0]["cleanup"].as_array().unwrap();
    assert!(
        cleanup.iter().all(|c| c["status"] == "passed"),
        "{cleanup:?}"
    );
}

#[test]
fn max_elapsed_of_a_polled_step_bounds_the_whole_poll() {
    let run = run_expecting(1, &["run", "tests/fixtures/verdicts/max-elapsed.yaml"]);
    let r = &run.results;
    let step = &r["specs"][0]["cases"][0]["steps"][1];
    let a = step["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["subject"] == "elapsed (whole poll)")
        .unwrap_or_else(|| panic!("{step}"));
    // Each request answered in a few ms; the poll took the consumer's >= 1 s (simulated).
    assert_eq!(a["passed"], false, "{a}");
    assert_eq!(
        step["poll"]["satisfied"], true,
        "the condition held, too late"
    );
}

#[test]
fn a_partial_run_marks_unselected_items_not_run_never_gaps() {
    let run = run_expecting(0, &["run", "--quiet", "specs/api/nfft.yaml"]);
    let r = &run.results;
    assert!(run.stdout.contains("not run in this run"), "{}", run.stdout);
    let cov = &r["coverage"];
    assert_eq!(cov["gaps"], json!([]), "{}", cov["gaps"]);
    let items: Vec<&Value> = cov["areas"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["items"].as_array().unwrap())
        .collect();
    let hard = items
        .iter()
        .find(|i| i["hard_requirement"] == true)
        .expect("the hard requirement");
    assert_eq!(hard["outcome"], "not_run");
    assert!(items
        .iter()
        .any(|i| i["id"] == "api.validation.nfft" && i["outcome"] == "verified"));
    let html = std::fs::read_to_string(run.dir.path().join("coverage.html")).unwrap();
    assert!(
        html.contains("Not run in this run"),
        "coverage.html says it"
    );
    assert!(!html.contains("Not tested: no test covers"), "no false gap");
}

#[test]
fn step_covers_decide_their_items_alone() {
    let run = run_expecting(
        1,
        &["run", "--quiet", "tests/fixtures/verdicts/step-covers.yaml"],
    );
    let r = &run.results;
    let cov = &r["coverage"];
    let item = |id: &str| -> Value {
        cov["areas"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|a| a["items"].as_array().unwrap())
            .find(|i| i["id"] == id)
            .cloned()
            .unwrap()
    };
    let by_fixture = |id: &str| -> Value {
        item(id)["specs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "verdicts.step-covers")
            .cloned()
            .unwrap()
    };
    // The passing step proves its item although the spec failed.
    assert_eq!(by_fixture("data.live")["outcome"], "passed");
    assert_eq!(item("data.live")["outcome"], "verified");
    assert!(by_fixture("data.live")["via"]
        .as_str()
        .unwrap()
        .contains("proves live data"));
    // The failing step fails its own item only.
    assert_eq!(by_fixture("data.historic")["outcome"], "failed");
    assert_eq!(item("data.historic")["outcome"], "failing");
    // A step never reached proves nothing.
    assert_eq!(by_fixture("api.validation.nfft")["outcome"], "not_reached");
    assert_eq!(item("api.validation.nfft")["outcome"], "not_run");
}

#[test]
fn step_covers_are_checked_against_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.yaml");
    std::fs::write(
        &spec,
        "id: bad.covers\ntitle: t\nsteps:\n  - sleep: 1ms\n    covers: [data.livee]\n",
    )
    .unwrap();
    let out = focusqa(&["validate", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out) + &stdout(&out);
    assert!(
        err.contains("`data.livee` is not an item of the scope catalog"),
        "{err}"
    );
    assert!(err.contains("bad.yaml:5:"), "{err}");
}
