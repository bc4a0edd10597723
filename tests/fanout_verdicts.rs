//! End-to-end fan-out verdicts: failing iterations fail a fan-out without thresholds (issue 23),
//! stages without a starting rate ramp from 0 (issue 23), a load ends at its duration plus
//! `graceful_stop` (issue 22), and every cleanup failure carries its reason (issue 22).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common;

use common::{fanout_of, run_expecting, stdout, Project, TestServer};

fn status_of(r: &Value, id: &str) -> String {
    r["specs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .map(|s| s["status"].as_str().unwrap().to_string())
        .unwrap()
}

#[test]
fn failing_iterations_fail_a_fanout_without_thresholds() {
    let srv = TestServer::start(0);
    let p = Project::new(&srv.url);
    // 20 iterations that all answer 404 where 200 is expected: this passed before.
    p.spec(
        "closed.yaml",
        r#"
id: fan.no-thresholds
title: every iteration fails, no thresholds written
steps:
  - name: twenty lookups
    fanout:
      count: 20
      concurrency: 5
      steps:
        - name: lookup
          http: {path: /metadata/no-such-job}
          expect: {status: 200}
"#,
    );
    // An open loop whose every request times out: this passed before too.
    p.spec(
        "open.yaml",
        r#"
id: fan.open-no-thresholds
title: every request of an open loop times out
steps:
  - name: slow load
    fanout:
      rate: 20/s
      duration: 250ms
      steps:
        - name: slow
          http: {path: /slow, timeout: 100ms}
          expect: {status: 200}
"#,
    );
    // Written thresholds replace the implicit ones: this load says it tolerates errors.
    p.spec(
        "tolerant.yaml",
        r#"
id: fan.tolerant
title: a load that tolerates errors says so
steps:
  - name: twenty lookups
    fanout:
      count: 20
      steps:
        - name: lookup
          http: {path: /metadata/no-such-job}
          expect: {status: 200}
      thresholds: [error_rate <= 100%]
"#,
    );
    let out = p.run(&["run"]);
    let console = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{console}");
    let r = p.results();
    assert_eq!(status_of(&r, "fan.no-thresholds"), "failed", "{r}");
    assert_eq!(status_of(&r, "fan.open-no-thresholds"), "failed", "{r}");
    assert_eq!(status_of(&r, "fan.tolerant"), "passed", "{r}");

    let f = fanout_of(&r, "fan.no-thresholds");
    assert_eq!(f["failed"], 20, "{f}");
    let th = f["thresholds"].as_array().unwrap();
    assert_eq!(th.len(), 1, "{f}");
    assert_eq!(th[0]["expr"], "failed == 0");
    assert_eq!(th[0]["implicit"], true);
    assert_eq!(th[0]["passed"], false);

    let f = fanout_of(&r, "fan.open-no-thresholds");
    let th: Vec<(&str, bool, bool)> = f["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["expr"].as_str().unwrap(),
                t["implicit"] == true,
                t["passed"] == true,
            )
        })
        .collect();
    assert_eq!(
        th,
        [("failed == 0", true, false), ("dropped == 0", true, true)],
        "{f}"
    );
    assert!(
        f["by_reason"]["error: timeout"].as_u64().unwrap() >= 1,
        "{f}"
    );

    let f = fanout_of(&r, "fan.tolerant");
    assert_eq!(f["failed"], 20, "{f}");
    assert_eq!(f["thresholds"].as_array().unwrap().len(), 1, "{f}");
    assert!(f["thresholds"][0].get("implicit").is_none(), "{f}");

    // Every report says the threshold is implicit.
    assert!(
        console.contains(
            "implicit threshold `failed == 0` not met: 0/20 succeeded, 20 x 404 invalid job_id"
        ),
        "{console}"
    );
    let junit = p.junit();
    assert!(
        junit.contains("implicit threshold `failed == 0` not met"),
        "{junit}"
    );
    assert!(
        junit.contains("`failed == 0` (implicit) not met"),
        "{junit}"
    );
    common::xmllint_validate(&p.path().join("reports/junit.xml"));
    let html = std::fs::read_to_string(p.path().join("reports/summary.html")).unwrap();
    assert!(
        html.contains("<code>failed == 0</code> <span class=\"muted\">implicit"),
        "the HTML thresholds table marks it implicit"
    );
}

#[test]
fn stages_without_a_rate_ramp_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("ramp.yaml");
    // k6's ramping arrival rate from 0 to 10/s over 20 s (simulated: 0.2 s of wall time on the
    // embedded simulator) starts the area under the ramp: 100 iterations. Before, 2 did (the
    // first step), and stages without `duration` or `count` were refused (the second).
    std::fs::write(
        &spec,
        r#"id: fan.stages-from-zero
title: stages without a rate ramp from 0
steps:
  - name: ramp for a duration
    fanout:
      duration: 20s
      stages:
        - {duration: 20s, rate: 10/s}
      steps:
        - name: health
          http: {path: /health}
          expect: {status: 200}
      thresholds: [succeeded == count]
  - name: ramp that ends with its stages
    fanout:
      stages:
        - {duration: 20s, rate: 10/s}
      steps:
        - name: health
          http: {path: /health}
          expect: {status: 200}
"#,
    )
    .unwrap();
    let run = run_expecting(0, &["run", spec.to_str().unwrap()]);
    let steps = &run.results["specs"][0]["cases"][0]["steps"];
    for step in steps.as_array().unwrap() {
        let f = &step["fanout"];
        let n = f["count"].as_u64().unwrap();
        assert!((99..=101).contains(&n), "about 100 starts: {f}");
        assert_eq!(f["succeeded"].as_u64().unwrap(), n, "{f}");
    }
}

/// A local server that never answers a request to `/hang` (it holds the connection open) and
/// answers any other with 200 `{}`, counting those.
struct HangingServer {
    url: String,
    answered: Arc<AtomicUsize>,
    _rt: tokio::runtime::Runtime,
}

fn hanging_server() -> HangingServer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (rt, listener) = common::listener_runtime();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = answered.clone();
    rt.spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // Requests here have no body: a head ends each.
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        let path = head.split_whitespace().nth(1).unwrap_or("");
                        if path.ends_with("/hang") {
                            std::future::pending::<()>().await;
                        }
                        counter.fetch_add(1, Ordering::SeqCst);
                        let resp = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                        if sock.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    HangingServer {
        url,
        answered,
        _rt: rt,
    }
}

#[test]
fn an_open_loop_ends_at_its_duration_against_a_target_that_never_answers() {
    let srv = hanging_server();
    let p = Project::new(&srv.url);
    // The target's request timeout is 5 s: before, the run waited for it (and more).
    p.spec(
        "hang.yaml",
        r#"
id: fan.hanging-target
title: an open loop against a target that never answers
steps:
  - name: load
    fanout:
      rate: 10/s
      duration: 300ms
      graceful_stop: 400ms
      steps:
        - name: hang
          http: {path: /hang}
          expect: {status: 200}
      cleanup:
        - name: release
          http: {method: DELETE, path: /release}
          expect: {status: 200}
"#,
    );
    // A closed loop for a duration ends the same way.
    p.spec(
        "hang-closed.yaml",
        r#"
id: fan.hanging-target-closed
title: two workers for a time against a target that never answers
steps:
  - name: load
    fanout:
      duration: 300ms
      concurrency: 2
      graceful_stop: 400ms
      steps:
        - name: hang
          http: {path: /hang}
          expect: {status: 200}
      cleanup:
        - name: release
          http: {method: DELETE, path: /release}
          expect: {status: 200}
"#,
    );
    let t0 = Instant::now();
    let out = p.run(&["run"]);
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        took < Duration::from_secs(3),
        "ended at duration + graceful_stop (0.7 s), not at the 5 s request timeout: {took:?}"
    );
    let r = p.results();
    let f = fanout_of(&r, "fan.hanging-target");
    assert_eq!(f["count"], 3, "starts at 0, 0.1 and 0.2 s: {f}");
    assert_eq!(f["started"], 3, "{f}");
    assert_eq!(f["failed"], 3, "{f}");
    assert_eq!(
        f["by_reason"]["cut: still running at the end of the load's duration + graceful_stop"], 3,
        "{f}"
    );
    assert_eq!(f["cleanup_failures"], 0, "{f}");
    let fd = f["duration_ms"].as_f64().unwrap();
    assert!((650.0..2500.0).contains(&fd), "{fd} ms: {f}");
    let f = fanout_of(&r, "fan.hanging-target-closed");
    assert_eq!(f["count"], 2, "the two workers' first iterations: {f}");
    assert_eq!(
        f["by_reason"]["cut: still running at the end of the load's duration + graceful_stop"], 2,
        "{f}"
    );
    assert_eq!(
        srv.answered.load(Ordering::SeqCst),
        3 + 2,
        "the cut iterations' cleanup still ran"
    );
}

#[test]
fn every_cleanup_failure_carries_its_reason_in_every_report() {
    let dir = tempfile::tempdir().unwrap();
    // Against the embedded simulator: releasing a job that does not exist answers 404. A counted
    // block (cleanups after every iteration) and a timed load (each as it ends), in specs apart
    // (a case stops at its first failed step).
    let block = |id: &str, load: &str| {
        format!(
            r#"id: {id}
title: a fan-out whose cleanup fails
steps:
  - name: leaky
    fanout:
{load}
      steps:
        - name: health
          http: {{path: /health}}
          expect: {{status: 200}}
        - sleep: 500ms
      cleanup:
        - name: release a job that is not there
          http: {{method: DELETE, path: /job/no-such-job}}
          expect: {{status: 200}}
      thresholds: [succeeded == count]
"#
        )
    };
    let (counted, timed) = (
        dir.path().join("counted.yaml"),
        dir.path().join("timed.yaml"),
    );
    std::fs::write(&counted, block("fan.cleanup-counted", "      count: 7")).unwrap();
    std::fs::write(
        &timed,
        block(
            "fan.cleanup-timed",
            "      duration: 2s\n      concurrency: 1",
        ),
    )
    .unwrap();
    let run = run_expecting(
        1,
        &["run", counted.to_str().unwrap(), timed.to_str().unwrap()],
    );
    let reason = "404 unknown job_id no-such-job";
    let r = &run.results;
    for id in ["fan.cleanup-counted", "fan.cleanup-timed"] {
        let f = fanout_of(r, id);
        let n = f["cleanup_failures"].as_u64().unwrap();
        assert!(n >= 1, "{f}");
        assert_eq!(f["cleanup_by_reason"][reason], n, "{id}: {f}");
        let samples = f["cleanup_sample_failures"].as_array().unwrap();
        assert_eq!(samples.len() as u64, n.min(5), "bounded: {f}");
        assert!(
            samples[0]
                .as_str()
                .unwrap()
                .ends_with(&format!(": {reason}")),
            "{f}"
        );
        assert_eq!(f["thresholds"][0]["passed"], true, "{f}");
    }
    assert_eq!(fanout_of(r, "fan.cleanup-counted")["cleanup_failures"], 7);
    let counted_step = &r["specs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "fan.cleanup-counted")
        .unwrap()["cases"][0]["steps"][0];
    let message = counted_step["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "7 of 7 iterations' cleanup failed (what they opened may still be open): 7 x {reason}"
        )),
        "{message}"
    );
    // The console, JUnit and HTML say why.
    assert!(
        run.stdout
            .contains(&format!("7 cleanup failures (7 x {reason})")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("       e.g. iteration ")
            && run.stdout.contains(&format!(
                "7 cleanup failures (7 x {reason})\n       e.g. iteration "
            )),
        "a sample follows: {}",
        run.stdout
    );
    let junit = std::fs::read_to_string(run.dir.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains(&format!("7 cleanup failures (7 x {reason})")),
        "{junit}"
    );
    assert!(junit.contains("failed cleanups, e.g.:"), "{junit}");
    common::xmllint_validate(&run.dir.path().join("junit.xml"));
    let html = std::fs::read_to_string(run.dir.path().join("summary.html")).unwrap();
    assert!(
        html.contains(&format!(
            "<th scope=\"row\">{reason}</th><td class=\"num\">7</td>"
        )),
        "the HTML lists the cleanup failures by reason"
    );
    assert!(html.contains("Sample cleanup failures"));
}

#[test]
fn validate_takes_stages_alone_and_refuses_graceful_stop_without_an_end() {
    let dir = tempfile::tempdir().unwrap();
    let spec = |name: &str, fanout: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!(
                "id: fan.{}\ntitle: t\nsteps:\n  - fanout:\n{fanout}\n      steps:\n        - http: {{path: /health}}\n",
                name.trim_end_matches(".yaml")
            ),
        )
        .unwrap();
        p
    };
    let stages = spec("stages.yaml", "      stages: [{duration: 1s, rate: 5/s}]");
    let out = common::focusqa(&["validate", stages.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let grace = spec("grace.yaml", "      count: 3\n      graceful_stop: 5s");
    let out = common::focusqa(&["validate", grace.to_str().unwrap()]);
    let e = common::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(
        e.contains("`graceful_stop` bounds what still runs when a load's `duration`")
            && e.contains("grace.yaml:6:7"),
        "{e}"
    );
}
