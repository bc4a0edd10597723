//! Real timing and real connections (issue 22): the hard-requirement spec at time scale 1, a
//! server that closes idle keep-alive connections, a response that breaks off, and interrupts
//! during the cleanup at real-life timing. Nothing may be left open.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{results_in, wait_until_catching_stop_signals, SeparateSim};
use serde_json::{json, Value};

fn open_jobs(sim: &SeparateSim) -> Value {
    sim.request("GET", "/jobs", None).1["count"].clone()
}

fn fault(sim: &SeparateSim, body: Value) {
    let (code, v) = sim.request("PUT", "/sim/faults", Some(&body));
    assert_eq!(code, 200, "{v}");
}

/// Every case of a run passed (read from its results.json), with the first failure shown.
fn assert_all_passed(dir: &std::path::Path, out: &std::process::Output) {
    let r = results_in(dir);
    for spec in r["specs"].as_array().unwrap() {
        for case in spec["cases"].as_array().unwrap() {
            assert_eq!(
                case["status"],
                "passed",
                "{} / {}: {}\n{}",
                spec["id"],
                case["name"],
                case["message"],
                common::stdout(out)
            );
        }
    }
}

/// A server whose keep-alive timeout closes connections under the runner: the 200 cleanup
/// DELETEs go out after the readiness polls, on connections idle longer than that. Before the
/// fix each waited for the 30 s request timeout and the jobs stayed open.
#[test]
fn a_server_closing_idle_connections_leaves_no_job_open() {
    let sim = SeparateSim::start("0.1");
    // 3 s of simulated idle = 0.3 s of wall time: shorter than most iterations' wait for their
    // consumer (1-25 s simulated), so most cleanups find their connection closed.
    fault(&sim, json!({"idle_close_s": 3}));
    let rd = sim.dir.path().join("r");
    let t0 = Instant::now();
    let out = sim.focusqa(&[
        "run",
        "--quiet",
        "specs/limits/concurrent-200.yaml",
        "--report-dir",
        rd.to_str().unwrap(),
    ]);
    common::assert_exit(&out, 0);
    assert_all_passed(&rd, &out);
    assert_eq!(open_jobs(&sim), 0, "every job was cancelled");
    // No request waited for its timeout (30 s of wall time).
    assert!(t0.elapsed() < Duration::from_secs(25), "{:?}", t0.elapsed());
}

/// A response that breaks off in the middle of its body is an error naming what happened, and it
/// is not sent again: part of its answer had arrived.
#[test]
fn a_response_cut_in_the_middle_is_an_error_and_not_sent_again() {
    let sim = SeparateSim::start("0.1");
    let dir = sim.dir.path();
    std::fs::write(
        dir.join("cut.yaml"),
        "id: faults.cut\ntitle: a response that breaks off\nsteps:\n  - name: jobs\n    http: {path: /jobs}\n    expect: {status: 200}\n  - name: jobs again\n    http: {path: /jobs}\n    expect: {status: 200}\n",
    )
    .unwrap();
    fault(&sim, json!({"reset_responses": 1}));
    let rd = dir.join("r");
    let out = sim.focusqa(&[
        "run",
        dir.join("cut.yaml").to_str().unwrap(),
        "--report-dir",
        rd.to_str().unwrap(),
    ]);
    common::assert_exit(&out, 1);
    let r = results_in(&rd);
    let case = &r["specs"][0]["cases"][0];
    assert_eq!(case["status"], "error", "an infrastructure error: {case}");
    let step = &case["steps"][0];
    let msg = step["message"].as_str().unwrap_or_default();
    assert!(msg.contains("reading the response"), "{step}");
    // The fault was used up by the first answer: nothing sent it again.
    assert_eq!(
        sim.request("GET", "/sim/faults", None).1["reset_responses"],
        0
    );
}

/// The hard requirement at real-life timing: 200 concurrent jobs and the cleanup spec against a
/// simulator at time scale 1 pass, and nothing is left open (issue 22: 191 were).
#[test]
fn the_hard_requirement_at_time_scale_1_passes_and_leaves_nothing_open() {
    let sim = SeparateSim::start("1");
    let rd = sim.dir.path().join("r");
    let out = sim.focusqa(&[
        "run",
        "--quiet",
        "specs/limits/concurrent-200.yaml",
        "specs/k8s/cleanup.yaml",
        "--report-dir",
        rd.to_str().unwrap(),
    ]);
    common::assert_exit(&out, 0);
    assert_all_passed(&rd, &out);
    let r = results_in(&rd);
    let spec = r["specs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "limits.concurrent-200")
        .expect("the 200-job spec ran");
    let fanout = &spec["cases"][0]["steps"][0]["fanout"];
    assert_eq!(fanout["succeeded"], 200, "{fanout}");
    assert_eq!(fanout["cleanup_failures"], 0, "{fanout}");
    assert_eq!(open_jobs(&sim), 0);
}

fn spawn_run(sim: &SeparateSim, report_dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_focusqa"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--config")
        .arg(sim.config())
        .args(["run", "--quiet", "specs/limits/concurrent-200.yaml"])
        .arg("--report-dir")
        .arg(report_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// SIGINT and SIGTERM while the 200-job spec cleans up at time scale 1 (iterations release
/// their job as each finishes; the signal comes once the first have): every job still closes.
#[test]
fn an_interrupt_during_the_cleanup_at_time_scale_1_leaves_no_job_open() {
    let sim = SeparateSim::start("1");
    for sig in [libc::SIGINT, libc::SIGTERM] {
        assert_eq!(sim.request("POST", "/sim/reset", None).0, 200);
        let dir = tempfile::tempdir().unwrap();
        let mut child = spawn_run(&sim, dir.path());
        wait_until_catching_stop_signals(child.id());
        // Wait for all 200 to be open, then for the first releases.
        let t0 = Instant::now();
        let mut peak = 0;
        loop {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the cleanup did not start within 60 s (peak {peak})"
            );
            let n = open_jobs(&sim).as_u64().unwrap_or(0);
            peak = peak.max(n);
            if peak == 200 && n < 200 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe { libc::kill(child.id() as i32, sig) };
        let code = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st.code().unwrap_or(-1);
            }
            if t0.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                panic!("the interrupted run did not end");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(code == 130 || code == 0, "signal {sig}: exit {code}");
        assert!(dir.path().join("junit.xml").exists());
        assert_eq!(
            open_jobs(&sim),
            0,
            "signal {sig} left jobs open (exit {code})"
        );
    }
}
