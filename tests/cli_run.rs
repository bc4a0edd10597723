//! End-to-end: real specs through the CLI against a local HTTP server.

use crate::common;

use common::{stderr, stdout, xmllint_validate, Project, TestServer};

const LIFECYCLE: &str = r#"
id: demo.lifecycle
title: A configured job becomes ready and is cancelled
covers: []
tags: [smoke]
vars:
  payload:
    displayTimeAxisDuration: 10
    nfftSelection: 1024
    displayInfo: {height: 1000}
    channels: {min: 0, max: 50}
    frequencyRange: {min: 0, max: 500}
    start_time: null
    end_time: null
    view_type: 0
steps:
  - name: configure
    http:
      method: POST
      path: /configure
      json: "{{ payload }}"
    expect:
      status: 200
      json:
        - path: $.job_id
          matches: '^\d+-\d+$'
        - path: $.status
          equals: configured
        - path: $.stream_port
          type: integer
          gte: 1024
    capture:
      job_id: $.job_id
  - name: wait for the consumer
    http:
      path: /metadata/{{ job_id }}
    until:
      interval: 20ms
      timeout: 5s
    expect:
      status: 200
cleanup:
  - name: cancel
    http:
      method: DELETE
      path: /job/{{ job_id }}
    expect:
      status: 200
"#;

#[test]
fn passing_spec_polls_captures_and_cleans_up() {
    let srv = TestServer::start(3);
    let p = Project::new(&srv.url);
    p.spec("lifecycle.yaml", LIFECYCLE);
    let out = p.run(&["run"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("PASSED: 1 specs, 1 cases: 1 passed"),
        "{}",
        stdout(&out)
    );
    let r = p.results();
    let steps = &r["specs"][0]["cases"][0]["steps"];
    assert_eq!(steps[1]["poll"]["attempts"], 4, "3 x 404 then 200: {steps}");
    assert_eq!(steps[1]["poll"]["satisfied"], true);
    assert_eq!(steps[0]["captures"]["job_id"], "18-1");
    // the Authorization header is redacted in the report
    let hdrs = steps[0]["request"]["headers"].to_string();
    assert!(
        hdrs.contains("[redacted]") && !hdrs.contains("s3cr3t-token"),
        "{hdrs}"
    );
    assert_eq!(
        srv.state.lock().unwrap().cancelled,
        vec!["18-1".to_string()]
    );
    let junit = p.path().join("reports/junit.xml");
    xmllint_validate(&junit);
    let parsed = quick_junit::Report::deserialize_from_str(&p.junit()).expect("junit parses back");
    assert_eq!(parsed.tests, 1);
    assert_eq!(parsed.failures, 0);
    let suite = &parsed.test_suites[0];
    assert_eq!(suite.name.as_str(), "demo.lifecycle");
    assert!(suite
        .properties
        .iter()
        .any(|pr| pr.name.as_str() == "spec.id" && pr.value.as_str() == "demo.lifecycle"));

    // `focusqa report` re-renders every report from results.json alone
    let out = p.run(&["report", "reports/results.json", "--report-dir", "again"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for f in ["results.json", "junit.xml", "summary.html", "coverage.html"] {
        assert!(p.path().join("again").join(f).exists(), "{f} re-rendered");
    }
    let again = std::fs::read_to_string(p.path().join("again/junit.xml")).unwrap();
    assert_eq!(again, p.junit(), "the same results give the same JUnit");
}

#[test]
fn every_assertion_kind_fails_with_a_useful_message() {
    let srv = TestServer::start(0);
    let p = Project::new(&srv.url);
    p.spec(
        "assertions.yaml",
        r#"
id: demo.assertions
title: Each assertion kind can fail
cases:
  - {name: status, vars: {kind: status}}
  - {name: header, vars: {kind: header}}
  - {name: body, vars: {kind: body}}
  - {name: equals, vars: {kind: equals}}
  - {name: regex, vars: {kind: regex}}
  - {name: exists, vars: {kind: exists}}
  - {name: absent, vars: {kind: absent}}
  - {name: type, vars: {kind: type}}
  - {name: length, vars: {kind: length}}
  - {name: numeric, vars: {kind: numeric}}
  - {name: schema, vars: {kind: schema}}
  - {name: elapsed, vars: {kind: elapsed}}
  - {name: partial, vars: {kind: partial}}
steps:
  - name: configure
    http:
      method: POST
      path: /configure
      json: {channels: {min: 0, max: 10}}
    capture: {job_id: $.job_id}
  - name: check {{ kind }}
    http:
      path: "{{ '/slow' if kind == 'elapsed' else ('/hostile' if kind in ['header', 'body'] else '/metadata/' ~ job_id) }}"
    expect:
      status: "{{ 201 if kind == 'status' else 200 }}"
      headers: "{{ {'x-trace': 'nope'} if kind == 'header' else {} }}"
      body: "{{ {'contains': 'alert(2)'} if kind == 'body' else {} }}"
      json:
        - path: $.status
          equals: "{{ 'stopped' if kind == 'equals' else 'running' }}"
      max_elapsed: 500ms
cleanup:
  - http: {method: DELETE, path: "/job/{{ job_id }}"}
"#,
    );
    // Templated maps are not a feature; write the cases explicitly instead.
    std::fs::remove_file(p.path().join("specs/assertions.yaml")).unwrap();
    let kinds: &[(&str, &str, &str)] = &[
        ("status", "/metadata/{{ job_id }}", "status: 201"),
        ("header", "/hostile", "headers: {x-trace: nope}"),
        ("body", "/hostile", "body: {contains: 'alert(2)'}"),
        (
            "equals",
            "/metadata/{{ job_id }}",
            "json: [{path: $.status, equals: stopped}]",
        ),
        (
            "regex",
            "/metadata/{{ job_id }}",
            "json: [{path: $.job_id, matches: '^x'}]",
        ),
        (
            "exists",
            "/metadata/{{ job_id }}",
            "json: [{path: $.nothing, exists: true}]",
        ),
        (
            "absent",
            "/metadata/{{ job_id }}",
            "json: [{path: $.status, exists: false}]",
        ),
        (
            "type",
            "/metadata/{{ job_id }}",
            "json: [{path: $.status, type: integer}]",
        ),
        (
            "length",
            "/metadata/{{ job_id }}",
            "json: [{path: $.job_id, length: 10}]",
        ),
        (
            "numeric",
            "/metadata/{{ job_id }}",
            "json: [{path: $.stream_port, lt: 1024}]",
        ),
        (
            "schema",
            "/metadata/{{ job_id }}",
            "schema: {type: object, required: [consumer]}",
        ),
        ("elapsed", "/slow", "max_elapsed: 200ms"),
        (
            "partial",
            "/metadata/{{ job_id }}",
            "match: {status: stopped}",
        ),
    ];
    for (kind, path, expect) in kinds {
        p.spec(
            &format!("a_{kind}.yaml"),
            &format!(
                "id: assert.{kind}\ntitle: {kind} fails\nsteps:\n  - name: configure\n    http: {{method: POST, path: /configure, json: {{channels: {{min: 0, max: 1}}}}}}\n    capture: {{job_id: $.job_id}}\n  - name: check\n    http: {{path: \"{path}\"}}\n    expect:\n      {expect}\ncleanup:\n  - http: {{method: DELETE, path: \"/job/{{{{ job_id }}}}\"}}\n"
            ),
        );
    }
    let out = p.run(&["run", "--jobs", "4"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let r = p.results();
    let msg = |id: &str| -> String {
        let s = r["specs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(s["status"], "failed", "{id}: {s}");
        s["cases"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        msg("assert.status").contains("status is 201: found 200"),
        "{}",
        msg("assert.status")
    );
    assert!(
        msg("assert.header").contains("header `x-trace` equals \"nope\": found \"abc-123\""),
        "{}",
        msg("assert.header")
    );
    assert!(
        msg("assert.body").contains("body contains \"alert(2)\""),
        "{}",
        msg("assert.body")
    );
    assert!(
        msg("assert.equals").contains("$.status equals \"stopped\": found \"running\""),
        "{}",
        msg("assert.equals")
    );
    assert!(
        msg("assert.regex").contains("$.job_id matches \"^x\""),
        "{}",
        msg("assert.regex")
    );
    assert!(
        msg("assert.exists").contains("$.nothing exists true: found nothing"),
        "{}",
        msg("assert.exists")
    );
    assert!(
        msg("assert.absent").contains("$.status exists false"),
        "{}",
        msg("assert.absent")
    );
    assert!(
        msg("assert.type").contains("has type \"integer\""),
        "{}",
        msg("assert.type")
    );
    assert!(
        msg("assert.length").contains("length of $.job_id == 10: found "),
        "{}",
        msg("assert.length")
    );
    assert!(
        msg("assert.numeric").contains("$.stream_port < 1024: found 50051"),
        "{}",
        msg("assert.numeric")
    );
    assert!(
        msg("assert.schema").contains("conforms to") && msg("assert.schema").contains("consumer"),
        "{}",
        msg("assert.schema")
    );
    assert!(
        msg("assert.elapsed").contains("elapsed at most \"200ms\""),
        "{}",
        msg("assert.elapsed")
    );
    assert!(
        msg("assert.partial").contains("$.status: expected \"stopped\", found \"running\""),
        "{}",
        msg("assert.partial")
    );
    // every configured job was cancelled by cleanup despite the failures
    assert!(srv.state.lock().unwrap().jobs.is_empty());
    // failures carry the spec file, the line and column of the failing assertion, and the
    // source line there (the reports put a caret under the column)
    let st = r["specs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "assert.status")
        .unwrap();
    let loc = st["cases"][0]["location"].as_str().unwrap();
    let col: usize = loc
        .rsplit_once("a_status.yaml:10:")
        .and_then(|(_, c)| c.parse().ok())
        .unwrap_or_else(|| panic!("file:line:col expected, found {loc}"));
    let source = st["cases"][0]["source_line"].as_str().unwrap();
    assert!(
        source[col - 1..].starts_with("status"),
        "{col} in {source:?}"
    );
    xmllint_validate(&p.path().join("reports/junit.xml"));
    let junit = p.junit();
    assert_eq!(junit.matches("<failure").count(), kinds.len(), "{junit}");
    assert!(!junit.contains("<error"));
}

#[test]
fn polling_timeout_reports_the_last_mismatch() {
    let srv = TestServer::start(1000);
    let p = Project::new(&srv.url);
    p.spec(
        "poll.yaml",
        r#"
id: demo.poll-timeout
title: Consumer never becomes ready
steps:
  - http: {method: POST, path: /configure, json: {channels: {min: 0, max: 1}}}
    capture: {job_id: $.job_id}
  - name: metadata
    http: {path: "/metadata/{{ job_id }}"}
    until: {interval: 50ms, timeout: 400ms}
    expect: {status: 200}
cleanup:
  - http: {method: DELETE, path: "/job/{{ job_id }}"}
"#,
    );
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let r = p.results();
    let step = &r["specs"][0]["cases"][0]["steps"][1];
    let attempts = step["poll"]["attempts"].as_u64().unwrap();
    assert!(
        (2..=10).contains(&attempts),
        "polled several times within the timeout: {step}"
    );
    assert_eq!(step["poll"]["satisfied"], false);
    assert!(
        step["poll"]["last_mismatch"]
            .as_str()
            .unwrap()
            .contains("Invalid job_id"),
        "{step}"
    );
    assert!(
        step["message"]
            .as_str()
            .unwrap()
            .contains("still not met after"),
        "{step}"
    );
    let s = stdout(&out);
    assert!(s.contains("polled") && s.contains("last mismatch"), "{s}");
    assert_eq!(
        srv.state.lock().unwrap().cancelled.len(),
        1,
        "cleanup ran after the failure"
    );
}

#[test]
fn skipped_spec_and_infrastructure_error() {
    let srv = TestServer::start(0);
    let p = Project::new(&srv.url);
    p.spec(
        "k8s.yaml",
        "id: demo.needs-k8s\ntitle: Needs a cluster\nrequires: [kubernetes]\nsteps:\n  - sleep: 1ms\n",
    );
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let r = p.results();
    assert_eq!(r["specs"][0]["status"], "skipped");
    assert!(
        r["specs"][0]["skip_reason"]
            .as_str()
            .unwrap()
            .contains("requires kubernetes"),
        "{}",
        r["specs"][0]
    );
    assert!(p.junit().contains("<skipped"), "{}", p.junit());
    xmllint_validate(&p.path().join("reports/junit.xml"));

    // connection refused is an <error>, not a <failure>
    p.spec("conn.yaml", "id: demo.conn\ntitle: Server down\nsteps:\n  - http: {path: /health}\n    expect: {status: 200}\n");
    let out = p.run(&["run", "--target", "closed", "--id", "^demo\\.conn$"]);
    assert_eq!(out.status.code(), Some(1));
    let junit = p.junit();
    assert!(
        junit.contains("<error") && !junit.contains("<failure"),
        "{junit}"
    );
    assert!(
        junit.contains("cannot connect to http://127.0.0.1:9/health"),
        "{junit}"
    );
    xmllint_validate(&p.path().join("reports/junit.xml"));
}

#[test]
fn invalid_specs_are_all_reported_with_positions() {
    let p = Project::new("http://127.0.0.1:9");
    p.spec(
        "typo.yaml",
        "id: bad.typo\ntitle: t\nsteps:\n  - http: {path: /x}\n    expct: {status: 200}\n",
    );
    p.spec(
        "grpc.yaml",
        "id: bad.grpc\ntitle: t\nsteps:\n  - grpc: {service: Stream}\n",
    );
    p.spec("jsonpath.yaml", "id: bad.jp\ntitle: t\nsteps:\n  - http: {path: /x}\n    expect:\n      json:\n        - path: job_id\n          exists: true\n");
    p.spec("undef.yaml", "id: bad.undef\ntitle: t\nvars: {job_id: 1}\nsteps:\n  - http: {path: \"/metadata/{{ jobid }}\"}\n");
    p.spec(
        "syntax.yaml",
        "id: bad.syntax\ntitle: [unclosed\nsteps: []\n",
    );
    p.spec("dup1.yaml", "id: same\ntitle: t\nsteps:\n  - sleep: 1ms\n");
    p.spec("dup2.yaml", "id: same\ntitle: t\nsteps:\n  - sleep: 1ms\n");
    p.spec(
        "template.yaml",
        "id: bad.tmpl\ntitle: t\nsteps:\n  - http: {path: \"/x/{{ a + }}\"}\n",
    );
    let out = p.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("specs/typo.yaml:5:5")
            && e.contains("unknown field `expct`")
            && e.contains("did you mean `expect`?"),
        "{e}"
    );
    assert!(
        e.contains("specs/grpc.yaml:4:")
            && e.contains("gRPC streaming is out of the agreed test scope"),
        "{e}"
    );
    assert!(
        e.contains("specs/jsonpath.yaml:7:17")
            && e.contains("bad JSONPath `job_id`")
            && e.contains("did you mean `$.job_id`?"),
        "{e}"
    );
    assert!(
        e.contains("specs/undef.yaml:5:")
            && e.contains("undefined variable `jobid`")
            && e.contains("did you mean `job_id`?"),
        "{e}"
    );
    assert!(
        e.contains("specs/syntax.yaml:") && e.contains("YAML syntax error"),
        "{e}"
    );
    assert!(e.contains("duplicate spec id `same`"), "{e}");
    assert!(
        e.contains("specs/template.yaml:4:") && e.contains("bad template"),
        "{e}"
    );
    assert!(e.contains("7 problem(s) in 7 file(s)"), "{e}");
    // run refuses too, before sending anything
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!p.path().join("reports/results.json").exists());
}

#[test]
fn usage_errors_and_list() {
    let srv = TestServer::start(0);
    let p = Project::new(&srv.url);
    p.spec("lifecycle.yaml", LIFECYCLE);
    let out = p.run(&["run", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let out = p.run(&["run", "--target", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown target `nope`"),
        "{}",
        stderr(&out)
    );
    let out = p.run(&["run", "--workers", "0"]);
    assert_eq!(out.status.code(), Some(2), "at least one worker thread");
    assert!(stderr(&out).contains("--workers"), "{}", stderr(&out));
    // One worker thread runs the same spec to the same verdict.
    let out = p.run(&["run", "--workers", "1", "--quiet"]);
    common::assert_exit(&out, 0);
    let out = p.run(&["list", "--tag", "smoke"]);
    assert_eq!(out.status.code(), Some(0));
    let s = stdout(&out);
    assert!(
        s.contains("demo.lifecycle  A configured job becomes ready and is cancelled")
            && s.contains("tags:     smoke"),
        "{s}"
    );
    let out = p.run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("Exit codes:"));
}

#[test]
fn ctrl_c_runs_cleanup_and_writes_reports() {
    let srv = TestServer::start(0);
    let p = Project::new(&srv.url);
    p.spec(
        "long.yaml",
        r#"
id: demo.long
title: Interrupted in the middle
steps:
  - http: {method: POST, path: /configure, json: {channels: {min: 0, max: 1}}}
    capture: {job_id: $.job_id}
  - sleep: 30s
cleanup:
  - http: {method: DELETE, path: "/job/{{ job_id }}"}
    expect: {status: 200}
"#,
    );
    let out = p.run_and_interrupt(|| !srv.state.lock().unwrap().jobs.is_empty());
    assert_eq!(out.status.code(), Some(130), "{}", stdout(&out));
    assert_eq!(
        srv.state.lock().unwrap().cancelled,
        vec!["18-1".to_string()],
        "cleanup cancelled the job"
    );
    let r = p.results();
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["specs"][0]["cases"][0]["cleanup"][0]["status"], "passed");
    assert!(stdout(&out).contains("INTERRUPTED"), "{}", stdout(&out));
}
