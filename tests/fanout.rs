//! End-to-end fan-out: concurrency limits, the barrier, per-iteration isolation, thresholds,
//! failure reasons, and cleanup of every iteration (also after Ctrl-C).

use crate::common;

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
        - p99(configure) < 0ms
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

#[test]
fn deadline_stops_the_block_and_cleanup_still_runs() {
    let srv = TestServer::start(0);
    let p = Project::new(&srv.url);
    p.spec(
        "deadline.yaml",
        r#"
id: fan.deadline
title: A block that cannot finish before its deadline
steps:
  - fanout:
      count: 6
      concurrency: 2
      deadline: 400ms
      steps:
        - http: {method: POST, path: /configure, json: {channels: {min: 0, max: 1}}}
          capture: {job_id: $.job_id}
        - sleep: 1s
      cleanup:
        - when: job_id is defined
          http: {method: DELETE, path: "/job/{{ job_id }}"}
          expect: {status: 200}
      thresholds: [succeeded == count]
"#,
    );
    let t0 = std::time::Instant::now();
    let out = p.run(&["run"]);
    assert!(
        t0.elapsed().as_secs_f64() < 5.0,
        "the deadline cut the block short"
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let r = p.results();
    let f = &r["specs"][0]["cases"][0]["steps"][0]["fanout"];
    assert_eq!(f["succeeded"], 0, "{f}");
    assert_eq!(f["started"], 2, "only the first two started: {f}");
    assert_eq!(f["by_reason"]["not started: deadline passed"], 4, "{f}");
    assert_eq!(f["by_reason"]["error: deadline passed"], 2, "{f}");
    let st = srv.state.lock().unwrap();
    assert_eq!(st.cancelled.len(), 2, "the two opened jobs were cancelled");
    assert!(st.jobs.is_empty());
}

#[test]
fn ramp_up_spreads_the_starts() {
    let srv = TestServer::start(0);
    let p = Project::new(&srv.url);
    p.spec(
        "ramp.yaml",
        "id: fan.ramp\ntitle: ramp\nsteps:\n  - fanout:\n      count: 5\n      ramp_up: 1s\n      steps:\n        - {name: work, http: {path: /work}, expect: {status: 200}}\n      thresholds: [succeeded == count]\n",
    );
    let t0 = std::time::Instant::now();
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // starts at 0, 0.2, 0.4, 0.6, 0.8 s: never more than one 60 ms request in flight
    assert!(t0.elapsed().as_secs_f64() >= 0.8);
    assert_eq!(srv.state.lock().unwrap().max_in_flight, 1);
}

#[test]
fn exclusive_specs_run_alone() {
    let srv = TestServer::start(0);
    let p = Project::new(&srv.url);
    for name in ["a", "b", "c", "d"] {
        p.spec(
            &format!("{name}.yaml"),
            &format!("id: par.{name}\ntitle: {name}\nsteps:\n  - http: {{path: /work}}\n  - sleep: 300ms\n"),
        );
    }
    p.spec("x.yaml", "id: par.x-exclusive\ntitle: alone\nexclusive: true\nsteps:\n  - http: {path: /work}\n  - sleep: 300ms\n");
    let out = p.run(&["run", "--jobs", "4"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let r = p.results();
    // Offsets are on the monotonic clock, so spans of different specs compare exactly.
    let span = |s: &serde_json::Value| {
        let start = s["start_offset_ms"].as_f64().unwrap();
        (start, start + s["duration_ms"].as_f64().unwrap())
    };
    let specs = r["specs"].as_array().unwrap();
    let (xs, xe) = span(specs.iter().find(|s| s["id"] == "par.x-exclusive").unwrap());
    let mut overlapping_others = 0;
    for s in specs.iter().filter(|s| s["id"] != "par.x-exclusive") {
        let (s0, e0) = span(s);
        assert!(
            e0 <= xs || s0 >= xe,
            "{} [{s0}, {e0}] overlapped the exclusive spec [{xs}, {xe}]",
            s["id"]
        );
        for o in specs
            .iter()
            .filter(|o| o["id"] != s["id"] && o["id"] != "par.x-exclusive")
        {
            let (o0, oe) = span(o);
            if o0 < e0 && s0 < oe {
                overlapping_others += 1;
            }
        }
    }
    assert!(
        overlapping_others > 0,
        "the other specs did run in parallel with each other"
    );
}

#[test]
fn open_loop_starts_on_schedule_and_drops_past_max_in_flight() {
    let srv = TestServer::start(0);
    let p = Project::new(&srv.url);
    // 200/s for 0.5 s = ~100 scheduled starts; each takes 60 ms and at most 3 may run at once,
    // so most starts are dropped (never delayed: an open loop keeps its schedule).
    p.spec(
        "open.yaml",
        r#"
id: fan.open-loop
title: Arrival rate with a bound on iterations in flight
steps:
  - fanout:
      rate: 200/s
      duration: 500ms
      max_in_flight: 3
      steps:
        - name: work
          http: {path: /work}
          expect: {status: 200}
      thresholds: [dropped == 0]
"#,
    );
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let r = p.results();
    let step = &r["specs"][0]["cases"][0]["steps"][0];
    let f = &step["fanout"];
    let (count, started, dropped) = (
        f["count"].as_u64().unwrap(),
        f["started"].as_u64().unwrap(),
        f["dropped"].as_u64().unwrap(),
    );
    assert!((80..=110).contains(&count), "about 100 scheduled: {f}");
    assert_eq!(started + dropped, count, "{f}");
    assert!(dropped >= count / 2, "most were dropped: {f}");
    assert!(
        srv.state.lock().unwrap().max_in_flight <= 3,
        "never more than 3 in flight"
    );
    assert_eq!(
        f["thresholds"][0]["passed"], false,
        "`dropped == 0` can fail: {f}"
    );
}

#[test]
fn a_closed_loop_can_run_for_a_duration() {
    let srv = TestServer::start(0);
    let p = Project::new(&srv.url);
    p.spec(
        "closed.yaml",
        r#"
id: fan.closed-duration
title: Two workers for 0.4 s
steps:
  - fanout:
      duration: 400ms
      concurrency: 2
      steps:
        - name: work
          http: {path: /work}
          expect: {status: 200}
      thresholds: [succeeded == count, count >= 6, dropped == 0]
"#,
    );
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let f = &p.results()["specs"][0]["cases"][0]["steps"][0]["fanout"];
    let n = f["count"].as_u64().unwrap();
    // 2 workers x 400 ms / 60 ms per iteration, plus the ones started just before the end.
    assert!((6..=20).contains(&n), "{f}");
    assert_eq!(srv.state.lock().unwrap().max_in_flight, 2);
}

/// With two workers a fan-out of plain requests runs one lane per thread, each with a runtime
/// and idle connections of its own: the concurrency holds across lanes, every iteration counts
/// once, and a step after the fan-out reaches the target through the shared pool again.
#[test]
fn lanes_on_threads_of_their_own_split_the_concurrency_and_hand_back_the_target() {
    let srv = TestServer::start(0);
    let p = Project::new(&srv.url);
    p.spec(
        "lanes.yaml",
        r#"
id: fan.lanes
title: two lanes, then one more request
steps:
  - name: load
    fanout:
      count: 24
      concurrency: 6
      steps:
        - name: work
          http: {path: /work}
          expect: {status: 200}
      thresholds: [succeeded == count]
  - name: after
    http: {path: /work}
    expect: {status: 200, json: [{path: $.ok, equals: true}]}
"#,
    );
    let out = p.run(&["run", "--workers", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        srv.state.lock().unwrap().max_in_flight,
        6,
        "3 in flight on each lane"
    );
    let r = p.results();
    let steps = &r["specs"][0]["cases"][0]["steps"];
    assert_eq!(steps[0]["fanout"]["succeeded"], 24);
    assert_eq!(steps[0]["fanout"]["steps"]["work"]["count"], 24);
    assert_eq!(steps[1]["status"], "passed", "{}", steps[1]);
}
