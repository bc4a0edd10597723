//! End-to-end fan-out: concurrency limits, the barrier, per-iteration isolation, thresholds,
//! failure reasons, and cleanup of every iteration (also after Ctrl-C).

mod common;

use common::{stdout, Project, TestServer};

#[test]
fn concurrency_limit_and_per_iteration_isolation() {
    let srv = TestServer::start(0);
    let p = Project::new(&srv.url);
    p.spec(
        "fan.yaml",
        r#"
id: fan.limit
title: 12 iterations, 3 at a time, each cleans up its own job
steps:
  - name: block
    fanout:
      count: 12
      concurrency: 3
      steps:
        - name: configure
          http: {method: POST, path: /configure, json: {channels: {min: 0, max: "{{ index }}"}}}
          expect: {status: 200}
          capture: {job_id: $.job_id, port: $.stream_port}
        - name: work
          http: {path: /work}
          expect: {status: 200}
      cleanup:
        - http: {method: DELETE, path: "/job/{{ job_id }}"}
          expect: {status: 200}
      thresholds:
        - succeeded == count
        - unique(job_id)
        - unique(port)
        - p95(work) < 5s
    capture:
      ids: $.captures.job_id
  - assert:
      - {expr: "ids | length == 12"}
"#,
    );
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let st = srv.state.lock().unwrap();
    assert_eq!(st.max_in_flight, 3, "at most 3 in flight");
    assert_eq!(
        st.cancelled.len(),
        12,
        "every iteration cancelled its own job"
    );
    let mut c = st.cancelled.clone();
    c.sort();
    c.dedup();
    assert_eq!(c.len(), 12, "no iteration cancelled another's job");
    drop(st);
    let r = p.results();
    let f = &r["specs"][0]["cases"][0]["steps"][0]["fanout"];
    assert_eq!(f["succeeded"], 12);
    assert_eq!(f["steps"]["work"]["count"], 12);
    assert!(f["steps"]["work"]["p50"].as_f64().unwrap() >= 55.0, "{f}");
    assert!(
        f["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["passed"] == true),
        "{f}"
    );
}

#[test]
fn all_at_once_behind_a_barrier() {
    let srv = TestServer::start(0);
    let p = Project::new(&srv.url);
    p.spec(
        "barrier.yaml",
        "id: fan.barrier\ntitle: 25 at once\nsteps:\n  - fanout:\n      count: 25\n      steps:\n        - {name: work, http: {path: /work}, expect: {status: 200}}\n      thresholds: [succeeded == 25]\n",
    );
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        srv.state.lock().unwrap().max_in_flight,
        25,
        "all 25 were in flight together"
    );
}

#[test]
fn breached_thresholds_name_metric_value_and_bound() {
    let srv = TestServer::start(0);
    let p = Project::new(&srv.url);
    p.spec(
        "thr.yaml",
        r#"
id: fan.thresholds
title: Half the iterations are refused
steps:
  - fanout:
      count: 10
      concurrency: 5
      steps:
        - name: configure
          http: {method: POST, path: /configure, json: {channels: {min: "{{ index % 2 }}", max: 0}}}
          expect: {status: 200}
          capture: {job_id: $.job_id}
      cleanup:
        - when: job_id is defined
          http: {method: DELETE, path: "/job/{{ job_id }}"}
      thresholds:
        - succeeded == count
        - p99(configure) < 1ms
"#,
    );
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let r = p.results();
    let step = &r["specs"][0]["cases"][0]["steps"][0];
    let msg = step["message"].as_str().unwrap();
    assert!(
        msg.contains("threshold `succeeded == count` not met: 5/10 succeeded, 5 x 400 channels"),
        "{msg}"
    );
    let th = step["fanout"]["thresholds"].as_array().unwrap();
    assert_eq!(th[1]["passed"], false);
    assert!(
        th[1]["value"]
            .as_str()
            .unwrap()
            .starts_with("p99(configure) = "),
        "{th:?}"
    );
    assert_eq!(step["fanout"]["by_reason"]["400 channels"], 5);
    // the 5 accepted jobs were cancelled; the refused iterations skipped their cleanup
    assert_eq!(srv.state.lock().unwrap().cancelled.len(), 5);
    assert!(srv.state.lock().unwrap().jobs.is_empty());
}

#[test]
fn interrupted_fanout_still_cleans_up_every_iteration() {
    let srv = TestServer::start(0);
    let p = Project::new(&srv.url);
    p.spec(
        "int.yaml",
        r#"
id: fan.interrupt
title: Ctrl-C in the middle of a fan-out
steps:
  - fanout:
      count: 8
      steps:
        - http: {method: POST, path: /configure, json: {channels: {min: 0, max: 1}}}
          capture: {job_id: $.job_id}
        - sleep: 30s
      cleanup:
        - when: job_id is defined
          http: {method: DELETE, path: "/job/{{ job_id }}"}
"#,
    );
    let out = p.run_and_interrupt(|| srv.state.lock().unwrap().jobs.len() >= 8);
    assert_eq!(out.status.code(), Some(130), "{}", stdout(&out));
    let st = srv.state.lock().unwrap();
    assert_eq!(st.cancelled.len(), 8, "every iteration's job was cancelled");
    assert!(st.jobs.is_empty(), "none leaked");
}
