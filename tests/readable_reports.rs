//! Reports read as written for people (issue 23): step names and check subjects rendered with
//! the values they ran with (the template kept beside them) in results.json, JUnit, the console
//! and summary.html, and redacted like everything else; thresholds in plain words; trend labels
//! unique, inside the chart and explained by a legend.

use std::collections::HashSet;

use serde_json::Value;

use crate::common;

use common::{assert_exit, stdout, Project, TestServer};

/// The steps of the first case of spec `id`.
fn steps_of<'a>(r: &'a Value, id: &str) -> &'a Vec<Value> {
    let spec = r["specs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("spec {id} in {r}"));
    spec["cases"][0]["steps"].as_array().unwrap()
}

#[test]
fn templated_step_names_and_check_subjects_show_rendered_in_every_report() {
    let p = Project::new("http://127.0.0.1:9");
    p.spec(
        "rendered.yaml",
        r#"
id: names.rendered
title: names and subjects rendered
vars:
  n: 3
  open_before: 2
  jobs: [{id: "18-1"}, {id: "18-2"}, {id: "18-3"}]
  job_id: null
steps:
  - name: configure job {{ n }}
    assert:
      - path: "$.jobs[{{ n - 1 }}].id"
        equals: "18-3"
  - name: check job {{ n }}
    assert:
      - value: "{{ open_before }}"
        gte: 5
cleanup:
  - name: cancel job {{ job_id }}
    when: job_id
    assert: [{expr: "true"}]
"#,
    );
    let out = p.run(&["run"]);
    assert_exit(&out, 1);

    // results.json: `name`/`subject` as run, the template beside them only where it differs.
    let r = p.results();
    let steps = steps_of(&r, "names.rendered");
    assert_eq!(steps[0]["name"], "configure job 3");
    assert_eq!(steps[0]["name_template"], "configure job {{ n }}");
    let a = &steps[0]["assertions"][0];
    assert_eq!(a["subject"], "$.jobs[2].id");
    assert_eq!(a["subject_template"], "$.jobs[{{ n - 1 }}].id");
    assert_eq!(steps[1]["name"], "check job 3");
    let a = &steps[1]["assertions"][0];
    assert_eq!(a["subject"], "2");
    assert_eq!(a["subject_template"], "{{ open_before }}");
    assert_eq!(a["passed"], false);
    // A skipped step keeps its name as written: it ran with no values.
    let spec = &r["specs"][0];
    let cleanup = &spec["cases"][0]["cleanup"][0];
    assert_eq!(cleanup["status"], "skipped");
    assert_eq!(cleanup["name"], "cancel job {{ job_id }}");
    assert!(cleanup.get("name_template").is_none(), "{cleanup}");
    let text = serde_json::to_string(&r).unwrap();
    assert!(!text.contains("\"name\":\"configure job {{"), "{text}");

    // JUnit: the failure names the rendered step and check, with the template as written.
    let xml = p.junit();
    common::xmllint_validate(&p.path().join("reports/junit.xml"));
    let report = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    let case = &report.test_suites[0].test_cases[0];
    let quick_junit::TestCaseStatus::NonSuccess {
        message,
        description,
        ..
    } = &case.status
    else {
        panic!("a failed case: {xml}");
    };
    let message = message.as_ref().unwrap().as_str();
    assert_eq!(
        message, "specs/rendered.yaml:16:9: 2 >= 5: found 2 (as written: `{{ open_before }}`)",
        "{xml}"
    );
    let description = description.as_ref().unwrap().as_str();
    assert!(
        description.contains("step `check job 3` (line 14, as written `check job {{ n }}`)"),
        "{description}"
    );
    let system_out = case.system_out.as_ref().unwrap().as_str();
    assert!(
        system_out.contains("[passed] configure job 3 (line 10"),
        "{system_out}"
    );

    // Console: the failure names the step as it ran.
    let console = stdout(&out);
    assert!(
        console.contains("in step `check job 3` (as written `check job {{ n }}`)"),
        "{console}"
    );

    // summary.html: rendered, the template on a secondary line.
    let html = std::fs::read_to_string(p.path().join("reports/summary.html")).unwrap();
    assert!(html.contains(">configure job 3<"), "{html}");
    assert!(html.contains(
        r#"<span class="as-written muted">as written: <code>configure job {{ n }}</code></span>"#
    ));
    assert!(html.contains("<code>2</code>"));
    assert!(html.contains("as written: <code>{{ open_before }}</code>"));
}

#[test]
fn a_secret_in_a_step_name_is_redacted_wherever_the_name_shows() {
    let p = Project::new("http://127.0.0.1:9");
    p.spec(
        "secret-name.yaml",
        r#"
id: names.secret
title: a secret variable in a step name
vars:
  api_token: zq81-unguessable-value
secrets: [api_token]
steps:
  - name: log in with {{ api_token }}
    assert:
      - value: "{{ api_token }}"
        equals: nope
"#,
    );
    let out = p.run(&["run"]);
    assert_exit(&out, 1);
    let secret = "zq81-unguessable-value";
    for file in ["results.json", "junit.xml", "summary.html"] {
        let text = std::fs::read_to_string(p.path().join("reports").join(file)).unwrap();
        assert!(!text.contains(secret), "{file} leaks the secret: {text}");
    }
    assert!(!stdout(&out).contains(secret), "{}", stdout(&out));
    let r = p.results();
    let step = &steps_of(&r, "names.secret")[0];
    assert_eq!(step["name"], "log in with [redacted]");
    assert_eq!(step["name_template"], "log in with {{ api_token }}");
    assert_eq!(step["assertions"][0]["subject"], "[redacted]");
}

#[test]
fn thresholds_read_as_a_sentence() {
    let srv = TestServer::start(0);
    let p = Project::new(&srv.url);
    p.spec(
        "thresholds.yaml",
        r#"
id: th.words
title: thresholds in plain words
steps:
  - name: written
    fanout:
      count: 4
      concurrency: 2
      steps:
        - name: lookup
          http: {path: /headers}
          expect: {status: 200}
      thresholds:
        - failed == 0
        - error_rate < 1%
        - succeeded == 4
  - name: implicit
    fanout:
      count: 4
      concurrency: 2
      steps:
        - name: lookup
          http: {path: /headers}
          expect: {status: 200}
"#,
    );
    p.spec(
        "not-met.yaml",
        r#"
id: th.not-met
title: thresholds not met
steps:
  - name: missing jobs
    fanout:
      count: 4
      concurrency: 2
      steps:
        - name: lookup
          http: {path: /metadata/no-such-job}
          expect: {status: 200}
      thresholds:
        - failed == 0
        - error_rate < 50%
        - count == 4
"#,
    );
    let out = p.run(&["run"]);
    assert_exit(&out, 1);
    let html = std::fs::read_to_string(p.path().join("reports/summary.html")).unwrap();
    assert!(!html.contains("not met)</caption>"), "{html}");
    for caption in [
        "<caption>All 3 thresholds met</caption>",
        "<caption>The implicit threshold is met</caption>",
        "<caption>2 of 3 thresholds not met</caption>",
    ] {
        assert!(html.contains(caption), "{caption}");
    }
    let xml = p.junit();
    assert!(
        xml.contains("; all 3 thresholds met: `failed == 0` met"),
        "{xml}"
    );
    assert!(xml.contains("; the implicit threshold is met: `failed == 0` (implicit) met"));
    assert!(
        stdout(&out).contains("     2 of 3 thresholds not met\n"),
        "{}",
        stdout(&out)
    );
}

/// The x-axis labels of the trend chart: (text-anchor, lines) each.
fn trend_labels(html: &str) -> Vec<(String, String)> {
    let svg_at = html
        .find(r#"<section class="trend""#)
        .expect("a trend section");
    let svg = &html[svg_at..];
    let svg = &svg[..svg.find("</svg>").unwrap()];
    let re = regex::Regex::new(
        r#"(?s)<text class="tick" x="[^"]*" y="[^"]*" text-anchor="(\w+)">(.*?)</text>"#,
    )
    .unwrap();
    let tag = regex::Regex::new(r"<[^>]*>").unwrap();
    re.captures_iter(svg)
        .map(|c| {
            (
                c[1].to_string(),
                tag.replace_all(&c[2], " ").trim().to_string(),
            )
        })
        // The y axis's ticks are anchored at their end and read "50%".
        .filter(|(_, text)| !text.ends_with('%'))
        .collect()
}

#[test]
fn trend_labels_are_unique_inside_the_chart_and_explained() {
    let p = Project::new("http://127.0.0.1:9");
    p.spec(
        "quick.yaml",
        "id: trend.quick\ntitle: quick\nsteps:\n  - assert: [{expr: \"1 == 1\"}]\n",
    );
    // Runs within a minute (often within a second): their labels used to be alike.
    for _ in 0..4 {
        assert_exit(&p.run(&["run", "--quiet", "--history", "history"]), 0);
    }
    let html = std::fs::read_to_string(p.path().join("reports/summary.html")).unwrap();
    let labels = trend_labels(&html);
    assert_eq!(labels.len(), 4, "{labels:?}");
    let texts: HashSet<_> = labels.iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(texts.len(), 4, "labels alike: {labels:?}");
    // The last label ends at the plot's edge instead of running past the chart.
    assert_eq!(labels.last().unwrap().0, "end", "{labels:?}");
    assert!(
        html.contains(r#"<span class="legend"><span class="key"><svg class="key-line""#),
        "no legend"
    );
    assert!(html.contains(r#"<line class="trend-line pass""#));
    assert!(html.contains("</svg>pass rate</span>"));
}
