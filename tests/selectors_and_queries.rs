//! `kube wait` by selector (every match meets the condition; the count is checked) and `query`
//! as one templated map (issue 23), end to end on the embedded simulator.

use serde_json::Value;

use crate::common;

use common::{assert_exit, stdout, Project};

/// A project whose default target is the embedded simulator (slower than the shipped default,
/// so that a busy machine stays far from the specs' simulated timeouts).
fn embedded_project() -> Project {
    let p = Project::new("http://127.0.0.1:9");
    std::fs::write(
        p.path().join("focusqa.yaml"),
        "default_target: embedded\nscope: none.yaml\ntargets:\n  embedded:\n    embedded: {seed: 7}\n",
    )
    .unwrap();
    p
}

const THREE_JOBS: &str = r#"
vars:
  payload: {displayTimeAxisDuration: 10, nfftSelection: 1024, displayInfo: {height: 1000}, channels: {min: 0, max: 50}, frequencyRange: {min: 0, max: 500}, start_time: null, end_time: null, view_type: 0}
steps:
  - name: open three jobs
    foreach:
      items: [1, 2, 3]
      as: n
      steps:
        - http: {method: POST, path: /configure, json: "{{ payload }}"}
          expect: {status: 200}
          capture: {job_ids: {path: $.job_id, append: true}}
"#;

fn step<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["specs"][0]["cases"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("step {name} in {r}"))
}

/// Runs "open three jobs" then `more` (steps) on a fresh embedded simulator; the results.
fn after_three_jobs(more: &str) -> Value {
    let p = embedded_project();
    p.spec(
        "wait.yaml",
        &format!("id: kube.wait-selector\ntitle: three analyzers run{THREE_JOBS}{more}"),
    );
    let out = p.run(&["run", "--quiet"]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stdout(&out));
    p.results()
}

#[test]
fn a_wait_by_selector_holds_for_every_match_and_counts_them() {
    let r = after_three_jobs(
        r#"
  - name: all three analyzer pods run
    kube: {op: wait, kind: Pod, labels: app=baby-analyzer, count: 3, timeout: 60s, interval: 500ms}
    expect:
      match: {status: {phase: Running}}
  - name: a fourth never appears
    kube: {op: wait, kind: Pod, labels: app=baby-analyzer, count: "{{ job_ids | length + 1 }}", timeout: 3s}
"#,
    );
    let ok = step(&r, "all three analyzer pods run");
    assert_eq!(ok["status"], "passed", "{ok}");
    let a = ok["assertions"].as_array().unwrap();
    assert!(
        a.iter()
            .any(|x| x["op"] == "matches" && x["actual"] == 3 && x["passed"] == true),
        "the count is a check: {ok}"
    );
    assert!(
        a.iter()
            .any(|x| x["subject"].as_str().unwrap().contains("(all 3 matches)")),
        "the expectation held for each: {ok}"
    );

    let four = step(&r, "a fourth never appears");
    assert_eq!(four["status"], "failed", "{four}");
    let c = &four["assertions"].as_array().unwrap()[0];
    assert_eq!(
        (c["expected"].clone(), c["actual"].clone()),
        (4.into(), 3.into()),
        "{four}"
    );
}

#[test]
fn a_wait_by_selector_fails_when_one_match_does_not_meet_the_condition() {
    let r = after_three_jobs(
        r#"
  - name: none of them has succeeded
    kube: {op: wait, kind: Pod, labels: app=baby-analyzer, timeout: 3s}
    expect:
      match: {status: {phase: Succeeded}}
"#,
    );
    let none = step(&r, "none of them has succeeded");
    assert_eq!(none["status"], "failed", "{none}");
    let failed: Vec<&Value> = none["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["passed"] == false)
        .collect();
    assert!(!failed.is_empty(), "{none}");
    let msg = failed[0]["message"].as_str().unwrap_or_default();
    assert!(msg.starts_with("3 of 3 matches fail"), "{none}");
    assert!(
        failed[0]["subject"]
            .as_str()
            .unwrap()
            .contains("(of baby-analyzer-"),
        "names the object: {none}"
    );
}

#[test]
fn count_belongs_to_a_wait_by_selector_and_get_needs_a_name() {
    let p = embedded_project();
    let spec = p.spec(
        "bad.yaml",
        r#"id: kube.bad-wait
title: misused
steps:
  - name: count on a named wait
    kube: {op: wait, kind: Job, name: x, count: 2}
  - name: count on a list
    kube: {op: list, kind: Pod, labels: app=x, count: 2}
  - name: get by selector
    kube: {op: get, kind: Pod, labels: app=x}
  - name: wait on nothing
    kube: {op: wait, kind: Pod}
"#,
    );
    let out = p.run(&["validate", spec.to_str().unwrap()]);
    assert_exit(&out, 2);
    let text = format!("{}{}", stdout(&out), common::stderr(&out));
    for (needle, line) in [
        (
            "`count` applies to `op: wait` by selector, not to `op: wait` by name",
            ":5:",
        ),
        (
            "`count` applies to `op: wait` by selector, not to `op: list`",
            ":7:",
        ),
        ("kube `get` needs a `name`", ":9:"),
        ("kube `wait` needs a `name` or a selector", ":11:"),
    ] {
        let at = text
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} in:\n{text}"));
        assert!(
            text[at..].lines().take(3).any(|l| l.contains(line)),
            "{needle:?} at line {line}:\n{text}"
        );
    }
}

#[test]
fn query_as_one_template_varies_which_keys_are_sent() {
    let p = embedded_project();
    p.spec(
        "query.yaml",
        r#"id: http.query-template
title: a table of cases varies the query's keys
cases:
  - {name: by status, vars: {q: {status: running}}}
  - {name: by two ids, vars: {q: {id: [3, 4], empty: null}}}
  - {name: not a map, vars: {q: [1, 2]}}
steps:
  - name: list
    http: {path: /jobs, query: "{{ q }}"}
"#,
    );
    let out = p.run(&["run", "--quiet"]);
    assert_exit(&out, 1);
    let r = p.results();
    let cases = r["specs"][0]["cases"].as_array().unwrap();
    let url = |i: usize| {
        cases[i]["steps"][0]["request"]["url"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", cases[i]))
            .to_string()
    };
    assert!(url(0).ends_with("/jobs?status=running"), "{}", url(0));
    // The keys in the order the rendered map gives them (a map from `vars` is sorted by key).
    assert!(url(1).ends_with("/jobs?empty=&id=3&id=4"), "{}", url(1));
    let bad = &cases[2]["steps"][0];
    assert_eq!(bad["status"], "error", "{bad}");
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .contains("not a map of parameters"),
        "{bad}"
    );
}
