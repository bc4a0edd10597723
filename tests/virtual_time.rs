//! The embedded target runs on a virtual clock (issue 25): simulated time advances only when
//! every task of the run waits on a timer, so machine load changes how long a run takes, never
//! what it measures. Same config and seed, same run: quiet or with every core busy.

use crate::common;

use common::{fanout_of, focusqa, results_in, stderr, stdout, threshold, Project};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A busy loop pinned on each core until dropped, or for `BUSY_FOR_AT_MOST` (bounded: a test
/// that panics between start and drop still frees the machine).
struct BusyCores {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

const BUSY_FOR_AT_MOST: Duration = Duration::from_secs(600);

impl BusyCores {
    fn start() -> BusyCores {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..cores)
            .map(|core| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    // Pinned, as a CI neighbour on that core would be.
                    unsafe {
                        let mut set: libc::cpu_set_t = std::mem::zeroed();
                        libc::CPU_SET(core, &mut set);
                        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                    }
                    let t0 = Instant::now();
                    let mut spins = 0u64;
                    while !stop.load(Ordering::Relaxed) && t0.elapsed() < BUSY_FOR_AT_MOST {
                        spins = std::hint::black_box(spins.wrapping_add(1));
                    }
                    spins
                })
            })
            .collect();
        BusyCores { stop, threads }
    }
}

impl Drop for BusyCores {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What a run measured and decided, without what the wall clock or the calendar adds: every
/// status and message, every duration and statistic (all simulated time), every capture.
/// Wall-clock timestamps (report times, Kubernetes and Focus times in bodies) are masked.
fn projection(r: &Value) -> Value {
    fn walk(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "started_at" | "finished_at"))
                    .map(|(k, v)| (k.clone(), walk(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(walk).collect()),
            Value::String(s) => Value::String(mask_times(s)),
            other => other.clone(),
        }
    }
    let mut p = walk(r);
    // The run's own wall-clock figures.
    if let Some(m) = p.as_object_mut() {
        m.remove("history");
    }
    p
}

/// Masks RFC 3339 times (also percent-encoded, in URLs) and Focus `yymmddHHMMSS` times: both
/// follow the calendar, which a replay does not.
fn mask_times(s: &str) -> String {
    let rfc3339 = regex::Regex::new(
        r"\d{4}-\d{2}-\d{2}T\d{2}(:|%3A)\d{2}(:|%3A)\d{2}(\.\d+)?(Z|[+-]\d{2}(:|%3A)\d{2})",
    )
    .unwrap();
    let focus = regex::Regex::new(r"\b\d{12}\b").unwrap();
    let http_date =
        regex::Regex::new(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")
            .unwrap();
    let s = rfc3339.replace_all(s, "<time>");
    let s = focus.replace_all(&s, "<focus-time>");
    http_date.replace_all(&s, "<date>").into_owned()
}

/// The first difference between two JSON values, as a path and both sides.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                let p = format!("{path}.{k}");
                match y.get(k) {
                    None => return Some(format!("{p}: only in the first")),
                    Some(w) => {
                        if let Some(d) = first_difference(v, w, &p) {
                            return Some(d);
                        }
                    }
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{path}.{k}: only in the second"))
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!(
            "{path}: {} vs {}",
            shorten(&a.to_string()),
            shorten(&b.to_string())
        )),
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s.to_string()
    }
}

/// `focusqa ARGS --report-dir <temp>` in the repository root: the projection of its
/// results.json, the exit code and the console.
fn run_projected(args: &[&str]) -> (Value, i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut all = args.to_vec();
    all.extend(["--quiet", "--report-dir", dir.path().to_str().unwrap()]);
    let out = focusqa(&all);
    let code = out.status.code().unwrap_or(-1);
    let r = results_in(dir.path());
    (
        projection(&r),
        code,
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

/// Runs `args` once on a quiet machine and three times with a busy loop on every core: the
/// verdicts and every simulated statistic are the same each time.
fn same_quiet_and_loaded(args: &[&str]) -> Value {
    let (quiet, code, console) = run_projected(args);
    assert_eq!(code, 0, "{console}");
    for i in 1..=3 {
        let busy = BusyCores::start();
        let (loaded, code, console) = run_projected(args);
        drop(busy);
        assert_eq!(code, 0, "loaded run {i}: {console}");
        if let Some(d) = first_difference(&quiet, &loaded, "results") {
            panic!("loaded run {i} differs from the quiet run at {d}");
        }
    }
    quiet
}

#[test]
fn the_shipped_suite_measures_the_same_quiet_and_with_every_core_busy() {
    let p = same_quiet_and_loaded(&["run"]);
    assert_eq!(p["target"]["clock"], "virtual");
    assert_eq!(p["target"]["seed"], 42);
    // The 200-job spec's statistics are among what is compared: they exist and are simulated.
    let f = fanout_of(&p, "limits.concurrent-200");
    assert_eq!(f["succeeded"], 200, "{f}");
    // configure takes the modelled 0.2-0.35 s (simulated): not the microseconds of a socket.
    let configure = &f["steps"]["configure"];
    assert!(
        (200.0..=350.0).contains(&configure["p50"].as_f64().unwrap()),
        "{configure}"
    );
    assert!(f.get("simulated_duration_ms").is_none(), "one clock: {f}");
}

#[test]
fn the_calibration_example_measures_the_same_quiet_and_with_every_core_busy() {
    let p = same_quiet_and_loaded(&["run", "--config", "examples/calibration/focusqa.yaml"]);
    assert_eq!(p["target"]["clock"], "virtual");
}

/// A fan-out of configures under `p95(configure) < 2s`, with the configure latency fault
/// optionally set first (and cleared in the cleanup).
fn configure_latency_project(fault: Option<&str>) -> Project {
    let p = embedded_project();
    let set = fault
        .map(|f| {
            format!("  - sim: {{method: PUT, path: /faults, json: {{configure_delay_s: {f}}}}}\n")
        })
        .unwrap_or_default();
    p.spec(
        "latency.yaml",
        &format!(
            "id: virtual.configure-latency\ntitle: configure p95\nsteps:\n{set}  - name: twenty\n    fanout:\n      count: 20\n      concurrency: 5\n      steps:\n        - name: configure\n          CONFIGURE_HTTP\n          expect: {{status: 200}}\n          capture: {{job_id: $.job_id}}\n      cleanup:\n        - when: job_id is defined\n          http: {{method: DELETE, path: \"/job/{{{{ job_id }}}}\"}}\n      thresholds: [succeeded == count, p95(configure) < 2s]\ncleanup:\n  - sim: {{method: DELETE, path: /faults}}\n"
        )
        .replace("CONFIGURE_HTTP", CONFIGURE_HTTP),
    );
    p
}

/// The configure request of the fan-outs below (a live job), in place of `CONFIGURE_HTTP`.
const CONFIGURE_HTTP: &str = "http: {method: POST, path: /configure, json: {displayTimeAxisDuration: 10, nfftSelection: 1024, displayInfo: {height: 1000}, channels: {min: 0, max: 50}, frequencyRange: {min: 0, max: 500}, start_time: null, end_time: null, view_type: 0}}";

/// A project whose default target is the embedded simulator.
fn embedded_project() -> Project {
    let p = Project::new("http://127.0.0.1:9");
    std::fs::write(
        p.path().join("focusqa.yaml"),
        "default_target: embedded\nscope: none.yaml\ntargets:\n  embedded:\n    embedded: {seed: 42}\n",
    )
    .unwrap();
    p
}

#[test]
fn the_configure_latency_fault_fails_p95_configure_on_the_embedded_target() {
    // Modelled latency: ~0.2-0.35 s, under 2 s.
    let p = configure_latency_project(None);
    let out = p.run(&["run"]);
    common::assert_exit(&out, 0);
    let r = p.results();
    let t = threshold(
        fanout_of(&r, "virtual.configure-latency"),
        "p95(configure) < 2s",
    );
    assert_eq!(t["passed"], true, "{t}");
    // With the fault, configure takes 2.5-3 s and the check fails.
    let p = configure_latency_project(Some("[2.5, 3]"));
    let out = p.run(&["run"]);
    common::assert_exit(&out, 1);
    let r = p.results();
    let t = threshold(
        fanout_of(&r, "virtual.configure-latency"),
        "p95(configure) < 2s",
    );
    assert_eq!(t["passed"], false, "{t}");
    assert!(
        stdout(&out).contains("p95(configure) < 2s"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_readiness_threshold_fails_when_consumers_are_slow_on_the_embedded_target() {
    let p = embedded_project();
    p.spec(
        "slow.yaml",
        "id: virtual.slow-consumers\ntitle: slow consumers\nsteps:\n  - sim: {method: PUT, path: /faults, json: {consumer_delay_s: [20, 40]}}\n  - name: ten\n    fanout:\n      count: 10\n      steps:\n        - name: configure\n          CONFIGURE_HTTP\n          expect: {status: 200}\n          capture: {job_id: $.job_id}\n        - name: consumer ready\n          http: {path: \"/metadata/{{ job_id }}\"}\n          until: {interval: 100ms, timeout: 45s}\n          expect: {status: 200}\n      cleanup:\n        - when: job_id is defined\n          http: {method: DELETE, path: \"/job/{{ job_id }}\"}\n      thresholds: [max(consumer ready) < 30s]\ncleanup:\n  - sim: {method: DELETE, path: /faults}\n"
            .replace("CONFIGURE_HTTP", CONFIGURE_HTTP)
            .as_str(),
    );
    let out = p.run(&["run"]);
    common::assert_exit(&out, 1);
    let r = p.results();
    let t = threshold(
        fanout_of(&r, "virtual.slow-consumers"),
        "max(consumer ready) < 30s",
    );
    assert_eq!(t["passed"], false, "{t}");
    // Exactly the fault's range: no host stall adds to a virtual clock.
    let ready = &r["specs"][0]["cases"][0]["steps"][1]["fanout"]["steps"]["consumer ready"];
    let (min, max) = (
        ready["min"].as_f64().unwrap(),
        ready["max"].as_f64().unwrap(),
    );
    assert!(min >= 20_000.0 && max <= 40_500.0, "{ready}");
}

#[test]
fn the_seed_is_printed_stored_and_replays_the_run() {
    let args = ["run", "--id", "^data.consumer-readiness$", "--seed", "7"];
    let (a, code, console) = run_projected(&args);
    assert_eq!(code, 0, "{console}");
    assert!(console.contains("virtual clock, seed 7"), "{console}");
    assert_eq!(a["target"]["seed"], 7);
    let (b, _, _) = run_projected(&args);
    assert_eq!(
        first_difference(&a, &b, "results"),
        None,
        "same seed, same run"
    );
    // Another seed draws other delays: the readiness samples differ.
    let (c, code, console) =
        run_projected(&["run", "--id", "^data.consumer-readiness$", "--seed", "8"]);
    assert_eq!(code, 0, "{console}");
    let held = |p: &Value| {
        p["specs"][0]["cases"][0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|s| s.get("fanout"))
            .map(|f| f["steps"]["consumer ready"]["held_samples"].clone())
            .unwrap()
    };
    assert_ne!(held(&a), held(&c), "seed 8 draws other readiness delays");
    // JUnit keeps the seed and the clock too (a CI failure can be replayed from them).
    let dir = tempfile::tempdir().unwrap();
    let out = focusqa(&[
        "run",
        "--quiet",
        "--id",
        "^data.consumer-readiness$",
        "--seed",
        "7",
        "--report-dir",
        dir.path().to_str().unwrap(),
    ]);
    common::assert_exit(&out, 0);
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(junit.contains(r#"name="target.seed" value="7""#), "{junit}");
    assert!(
        junit.contains(r#"name="target.clock" value="virtual""#),
        "{junit}"
    );
    let html = std::fs::read_to_string(dir.path().join("summary.html")).unwrap();
    assert!(
        html.contains("virtual, seed 7"),
        "summary.html says the clock"
    );
}

#[test]
fn an_hour_of_simulated_time_costs_no_wall_time_and_is_measured_exactly() {
    let p = embedded_project();
    p.spec(
        "hour.yaml",
        "id: virtual.hour\ntitle: an hour\nsteps:\n  - name: wait an hour\n    sleep: 1h\n  - name: a poll that never holds\n    http: {path: /jobs}\n    until: {interval: 1s, timeout: 50s}\n    expect: {status: 201}\n",
    );
    let out = p.run(&["run"]);
    common::assert_exit(&out, 1);
    let r = p.results();
    let steps = &r["specs"][0]["cases"][0]["steps"];
    assert_eq!(steps[0]["duration_ms"], 3_600_000.0, "{}", steps[0]);
    assert!(steps[0].get("simulated_ms").is_none(), "one clock");
    let poll = &steps[1]["poll"];
    assert_eq!(poll["satisfied"], false, "{poll}");
    // 1 s apart for 50 s, each request taking the modelled few milliseconds: 50 attempts at most.
    let attempts = poll["attempts"].as_u64().unwrap();
    assert!((45..=50).contains(&attempts), "{poll}");
}

#[test]
fn an_open_loop_starts_every_iteration_on_its_simulated_schedule() {
    let p = embedded_project();
    p.spec(
        "rate.yaml",
        "id: virtual.rate\ntitle: open loop\nsteps:\n  - name: ten a second\n    fanout:\n      rate: 10/s\n      duration: 30s\n      steps:\n        - name: jobs\n          http: {path: /jobs}\n          expect: {status: 200}\n      thresholds: [succeeded == count]\n",
    );
    let busy = BusyCores::start();
    let out = p.run(&["run"]);
    drop(busy);
    common::assert_exit(&out, 0);
    let r = p.results();
    let f = &r["specs"][0]["cases"][0]["steps"][0]["fanout"];
    assert_eq!(f["started"], 300, "{f}");
    assert_eq!(f["succeeded"], 300, "{f}");
    assert_eq!(f["dropped"].as_u64().unwrap_or(0), 0, "{f}");
    let rate = f["throughput_per_s"].as_f64().unwrap();
    assert!((9.5..=10.5).contains(&rate), "simulated throughput: {f}");
}

#[test]
fn a_request_outside_the_simulator_is_refused_with_the_reason() {
    let p = embedded_project();
    p.spec(
        "outside.yaml",
        "id: virtual.outside\ntitle: outside\nsteps:\n  - name: elsewhere\n    http: {path: \"http://127.0.0.1:9/health\"}\n    expect: {status: 200}\n",
    );
    let out = p.run(&["run"]);
    common::assert_exit(&out, 1);
    let r = p.results();
    let step = &r["specs"][0]["cases"][0]["steps"][0];
    assert_eq!(step["status"], "error", "{step}");
    let msg = step["message"].as_str().unwrap();
    assert!(
        msg.contains("outside the embedded simulator") && msg.contains("virtual clock"),
        "{msg}"
    );
}

#[test]
fn a_time_scale_for_the_embedded_target_is_ignored_with_a_warning() {
    let (p, code, console) = run_projected(&["run", "specs/api/nfft.yaml", "--time-scale", "0.5"]);
    assert_eq!(code, 0, "{console}");
    assert!(
        console
            .contains("time_scale 0.5 is ignored: the embedded simulator runs on a virtual clock"),
        "{console}"
    );
    assert_eq!(p["target"]["time_scale"], 1.0);
    assert_eq!(p["target"]["clock"], "virtual");
}

/// SIGTERM in the middle of a long open loop on the virtual clock: the iterations in flight
/// count as interrupted (never as an unknown reason), every job is cancelled, the spec's own
/// cleanup sees none open, and the reports are written.
#[test]
fn sigterm_on_the_virtual_clock_cancels_every_job_and_names_the_reason() {
    let p = embedded_project();
    p.spec(
        "long.yaml",
        "id: virtual.long\ntitle: a long open loop\nsteps:\n  - name: many\n    fanout:\n      rate: 50/s\n      duration: 2h\n      steps:\n        - name: configure\n          CONFIGURE_HTTP\n          capture: {job_id: $.job_id}\n        - sleep: 5s\n      cleanup:\n        - when: job_id is defined\n          http: {method: DELETE, path: \"/job/{{ job_id }}\"}\ncleanup:\n  - name: nothing left open\n    http: {path: /jobs}\n    expect: {json: [{path: $.count, equals: 0}]}\n"
            .replace("CONFIGURE_HTTP", CONFIGURE_HTTP)
            .as_str(),
    );
    let child = p
        .command(&["run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_until_catching_stop_signals(child.id());
    // Two hours of simulated load take minutes of CPU: a second in, hundreds of jobs are open.
    std::thread::sleep(Duration::from_secs(1));
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    common::assert_exit(&out, 130);
    let r = p.results();
    assert_eq!(r["interrupted"], true);
    let case = &r["specs"][0]["cases"][0];
    let f = &case["steps"][0]["fanout"];
    let reasons = f["by_reason"].as_object().unwrap();
    assert!(!reasons.contains_key("unknown"), "{reasons:?}");
    assert!(
        reasons.keys().any(|k| k.starts_with("error: interrupted")),
        "{reasons:?}"
    );
    assert_eq!(f["cleanup_failures"], 0, "{f}");
    let cleanup = &case["cleanup"][0];
    assert_eq!(cleanup["status"], "passed", "nothing left open: {cleanup}");
}
