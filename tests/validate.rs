//! `focusqa validate` finds everything that can be known before sending, at file:line:col, and
//! its contract: a spec that passes `validate` never ends a run with a spec error.
//! Corpus: `tests/fixtures/broken/` (files named `valid-*` must pass, every other must be rejected).
//! Also property tests: random and mutated specs and templates never panic the loader or renderer.

use crate::common;

use std::path::{Path, PathBuf};

use common::{focusqa, results_in, stderr, stdout, Project};
use proptest::prelude::*;
use serde_json::Value;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken")
}

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Every broken file, with the diagnostics it must produce: (line, col, part of the message).
/// (line, column, part of the message)
type Expected = (u32, u32, &'static str);

const REJECTED: &[(&str, &[Expected])] = &[
    (
        "typos.yaml",
        &[
            (2, 1, "missing field `title`"),
            (3, 1, "unknown field `titel`"),
            (5, 5, "unknown field `nme`"),
            (6, 12, "unknown field `methd`"),
            (7, 5, "unknown field `expct`"),
            (9, 14, "unknown field `stauts`"),
            (10, 5, "unknown field `captur`"),
            (12, 13, "unknown field `intervl`"),
            (15, 12, "unknown field `pth`"),
            (16, 5, "unknown field `slep`"),
            (18, 27, "unknown field `heders`"),
        ],
    ),
    (
        "unknown-filter.yaml",
        &[(5, 18, "unknown filter `slugify`")],
    ),
    ("unknown-test.yaml", &[(5, 11, "unknown test `is definde`")]),
    ("method-call.yaml", &[(6, 16, "unknown method `.split()`")]),
    (
        "unknown-function.yaml",
        &[(4, 18, "unknown function `focus_tme`")],
    ),
    (
        "later-capture.yaml",
        &[(4, 18, "`job_id` is not defined yet")],
    ),
    ("own-capture.yaml", &[(8, 36, "captured by this very step")]),
    (
        "case-var-capture.yaml",
        &[(5, 18, "case vars are set before any step runs")],
    ),
    (
        "spec-var-order.yaml",
        &[(4, 8, "spec vars are set in order")],
    ),
    (
        "case-var-some.yaml",
        &[(8, 22, "only some cases define it (not case `two`)")],
    ),
    (
        "index-outside.yaml",
        &[(4, 18, "undefined variable `index`")],
    ),
    (
        "count-lots.yaml",
        &[
            (5, 14, "fanout `count` must be a whole number"),
            (6, 20, "fanout `concurrency` must be a whole number"),
            (11, 42, "`length` must be a whole number"),
        ],
    ),
    ("count-huge.yaml", &[(5, 14, "at most 10000000")]),
    (
        "templated-count.yaml",
        &[(6, 14, "at most 10000000"), (7, 20, "not a whole number")],
    ),
    (
        "thresholds.yaml",
        &[
            (10, 20, "no step named `confgure`"),
            (10, 40, "no step of this fan-out captures `port`"),
        ],
    ),
    (
        "durations.yaml",
        &[
            (4, 12, "at most 365 days"),
            (5, 36, "at most 365 days"),
            (6, 23, "at most 365 days"),
            (8, 12, "unknown time unit \"parsecs\""),
            (9, 12, "is negative"),
            (10, 12, "invalid duration `.nan`"),
        ],
    ),
    ("templated-duration.yaml", &[(5, 12, "at most 365 days")]),
    (
        "bad-time-format.yaml",
        &[
            (4, 18, "invalid time format `%Q`"),
            (5, 18, "at most 100 years"),
        ],
    ),
    ("runaway-loop.yaml", &[(4, 18, "fuel")]),
    ("deep-merge.yaml", &[(7, 13, "nested deeper than")]),
    ("duplicate-key.yaml", &[(6, 5, "duplicate key `expect`")]),
    ("multi-doc.yaml", &[(5, 1, "one YAML document")]),
    ("only-comment.yaml", &[(1, 1, "a spec is a mapping")]),
    ("alias-bomb.yaml", &[(5, 10, "repetition limit")]),
    ("invalid-utf8.yaml", &[(2, 12, "not valid UTF-8")]),
    (
        "wrong-types.yaml",
        &[
            (3, 9, "covers"),
            (5, 18, "steps[0].http.path"),
            (5, 30, "FE TCH"),
            (7, 18, "steps[1].capture.a"),
            (8, 13, "steps[2].assert"),
        ],
    ),
];

fn validate(file: &Path) -> std::process::Output {
    focusqa(&["validate", file.to_str().unwrap()])
}

/// Every `-->` location of the output has a line and a column.
fn assert_all_located(e: &str) {
    for l in e.lines().filter(|l| l.trim_start().starts_with("-->")) {
        let loc = l.trim_start().trim_start_matches("-->").trim();
        let parts: Vec<&str> = loc.rsplitn(3, ':').collect();
        assert!(
            parts.len() == 3
                && parts[0].parse::<u32>().is_ok_and(|c| c > 0)
                && parts[1].parse::<u32>().is_ok_and(|l| l > 0),
            "diagnostic without file:line:col: {l}\n{e}"
        );
    }
}

#[test]
fn every_broken_spec_is_rejected_at_its_position() {
    for (name, expected) in REJECTED {
        let file = corpus_dir().join(name);
        let out = validate(&file);
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name} passed validate:\n{e}");
        assert!(!e.contains("panicked"), "{name}: {e}");
        assert_all_located(&e);
        for (line, col, text) in *expected {
            let loc = format!("broken/{name}:{line}:{col}");
            // The message and its location belong to the same diagnostic.
            let found = e
                .split("error: ")
                .any(|d| d.contains(&loc) && d.contains(text));
            assert!(found, "{name}: expected `{text}` at {loc}:\n{e}");
        }
        let count = e.matches("\n  --> ").count() + e.starts_with("  --> ") as usize;
        assert_eq!(
            count,
            expected.len(),
            "{name}: every problem is expected exactly once:\n{e}"
        );
    }
}

#[test]
fn the_corpus_is_fully_described() {
    for f in corpus() {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with("valid-") || REJECTED.iter().any(|(n, _)| *n == name),
            "{name}: add its expected diagnostics to REJECTED, or name it valid-*.yaml"
        );
    }
}

/// Messages only a spec error (the spec's fault, found at run time) produces.
const SPEC_ERROR_SIGNS: &[&str] = &[
    "undefined variable",
    "template `",
    "expression `",
    "invalid duration",
    "bad JSONPath",
    "bad regex",
    "not a whole number",
    "is too long",
    "is too large",
    "unknown filter",
    "unknown test",
    "unknown method",
    "has no method",
    "var `",
    "time format",
    "time offset",
];

fn spec_errors(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let status = m.get("status").and_then(Value::as_str);
            let msg = m.get("message").and_then(Value::as_str).unwrap_or("");
            if status == Some("error")
                && !msg.contains("connection")
                && !msg.contains("timed out")
                && !msg.contains("interrupted")
            {
                out.push(format!("{path}: error: {msg}"));
            }
            for (k, x) in m {
                spec_errors(x, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                spec_errors(x, &format!("{path}[{i}]"), out);
            }
        }
        Value::String(s) => {
            if let Some(sign) = SPEC_ERROR_SIGNS.iter().find(|g| s.contains(**g)) {
                out.push(format!("{path}: `{sign}` in {s}"));
            }
        }
        _ => {}
    }
}

/// The contract: over the shipped specs and the corpus, a spec either is rejected by `validate`
/// with file:line:col, or running it (embedded simulator) ends without a spec error.
#[test]
fn a_spec_that_passes_validate_never_ends_with_a_spec_error() {
    let mut accepted: Vec<String> = Vec::new();
    for f in corpus() {
        let out = validate(&f);
        let e = stderr(&out);
        assert!(!e.contains("panicked"), "{}: {e}", f.display());
        match out.status.code() {
            Some(0) => accepted.push(f.to_str().unwrap().to_string()),
            Some(2) => {
                assert!(e.contains("  --> "), "{}: {e}", f.display());
                assert_all_located(&e);
            }
            other => panic!("{}: validate exited {other:?}: {e}", f.display()),
        }
    }
    let valid: Vec<&String> = accepted.iter().filter(|f| f.contains("/valid-")).collect();
    assert_eq!(
        valid.len(),
        accepted.len(),
        "only valid-* corpus files may pass validate: {accepted:?}"
    );
    assert!(valid.len() >= 2);
    // The shipped specs pass validate...
    let out = focusqa(&["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // ...and with the accepted corpus files they run without a spec error.
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "run".to_string(),
        "--quiet".into(),
        "--report-dir".into(),
        dir.path().to_str().unwrap().into(),
        "specs".into(),
    ];
    args.extend(accepted);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = focusqa(&args);
    let results = results_in(dir.path());
    let mut errors = Vec::new();
    spec_errors(&results["specs"], "specs", &mut errors);
    assert!(
        errors.is_empty(),
        "spec errors in a validated run:\n{}\n{}",
        errors.join("\n"),
        stdout(&out)
    );
    // What this test holds is "no spec error", not the shipped specs' timing verdicts: the
    // embedded default (time scale 0.01) can still lose a poll to a busy host (issue 25), and
    // the 200-job spec is held at real timing and behind nginx elsewhere. A run that could not
    // start or was misused (exit 2, 3, ...) still fails here.
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stdout(&out));
}

#[test]
fn one_broken_file_hides_no_diagnostic_of_the_batch() {
    // A duration that used to panic `validate` sits among other broken files.
    let out = focusqa(&["validate", corpus_dir().to_str().unwrap()]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    for (name, expected) in REJECTED {
        for (line, col, _) in *expected {
            assert!(
                e.contains(&format!("broken/{name}:{line}:{col}")),
                "{name}:{line}:{col} missing:\n{e}"
            );
        }
    }
}

#[test]
fn good_inputs_pass_validate() {
    let p = Project::new("http://127.0.0.1:9");
    p.spec(
        "good.yaml",
        r#"id: good
title: every rule, satisfied
vars: {a: 1, b: "{{ a + 1 }}", csv: "x,y"}
cases:
  - {name: one, vars: {c: "{{ b }}"}}
steps:
  - http: {path: "/x/{{ c }}?q={{ csv | split(',') | join('+') }}", timeout: 365 days}
    capture: {id: $.id}
    expect:
      json:
        - {path: $.items, length: {gte: 1}}
        - {path: $.items, length: 2}
  - sleep: "{{ a }}ms"
    when: a is defined and id is defined
    capture: {slept: {from: elapsed_ms}}
  - when: slept is defined
    assert: [{value: "{{ slept }}", gte: 0}]
  - fanout:
      count: 10000000
      concurrency: "{{ a }}"
      steps:
        - name: call
          http: {path: "/y/{{ id }}/{{ index }}"}
          capture: {port: $.port}
      thresholds: [p95(call) < 1s, unique(port)]
cleanup:
  - when: id is defined
    http: {method: DELETE, path: "/x/{{ id }}"}
"#,
    );
    let out = p.run(&["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn list_and_coverage_show_the_valid_specs_and_name_the_broken_file() {
    let p = Project::new("http://127.0.0.1:9");
    p.spec(
        "good.yaml",
        "id: good.one\ntitle: fine\nsteps:\n  - sleep: 1ms\n",
    );
    p.spec(
        "bad.yaml",
        "id: bad.one\ntitle: broken\nsteps:\n  - sleep: 1e20\n",
    );
    let out = p.run(&["list"]);
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(o.contains("good.one"), "{o}");
    assert!(!o.contains("bad.one"), "{o}");
    assert!(e.contains("specs/bad.yaml:4:12"), "{e}");
    assert!(e.contains("left out: specs/bad.yaml"), "{e}");
    assert_eq!(out.status.code(), Some(2));

    p.with_scope("title: t\nareas: [{id: a, title: A}]\nitems:\n  - {id: a.one, area: a, status: in, title: One}\n", "");
    p.spec(
        "good.yaml",
        "id: good.one\ntitle: fine\ncovers: [a.one]\nsteps:\n  - sleep: 1ms\n",
    );
    let out = p.run(&["coverage"]);
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(o.contains("good.one"), "{o}\n{e}");
    assert!(e.contains("left out: specs/bad.yaml"), "{e}");
    assert_eq!(out.status.code(), Some(2));
}

// ---- property tests: no input panics the loader or the renderer ----
// A few seconds in `cargo test`; `FOCUSQA_PROPTEST_CASES=20000` for a longer run (or `fuzz/`).

fn cases(default: u32) -> u32 {
    std::env::var("FOCUSQA_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const SHIPPED: &[&str] = &[
    "specs/limits/concurrent-200.yaml",
    "specs/api/channels.yaml",
    "specs/k8s/lifecycle.yaml",
    "specs/system/long-running.yaml",
];

fn shipped_texts() -> Vec<String> {
    SHIPPED
        .iter()
        .map(|p| std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(p)).unwrap())
        .collect()
}

const YAML_BITS: &[&str] = &[
    "\n",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "&a ",
    "*a",
    "---\n",
    "'",
    "\"",
    "{{ ",
    " }}",
    "{% ",
    " %}",
    "1e300",
    "-1",
    ".nan",
    "18446744073709551615",
    "steps:",
    "fanout:",
    "count: ",
    "sleep: ",
    "until: {interval: 1e300, timeout: x}",
    "expect:",
    "capture:",
    "json:",
    "when: ",
    "x is definde",
    "now('%Q')",
    "focus_time('1000000y')",
    "range(100000)",
    "merge(",
    "\t",
    "  ",
    "#",
    "\u{0}",
    "é",
    "id: x",
    "title: y",
    "? ",
    "!!binary ",
    "<<: *a",
    "length: many",
    "thresholds: [p95(x) < 1s]",
];

/// The diagnostic shows `file:line:col` (line and column from 1).
fn located(d: &focusqa::spec::Diagnostic) -> bool {
    !d.file.is_empty() && d.pos.line > 0 && d.pos.col > 0
}

fn mutate(text: &str, ops: &[(usize, usize, usize)]) -> String {
    let mut s: Vec<char> = text.chars().collect();
    for (kind, at, arg) in ops {
        if s.is_empty() {
            break;
        }
        let at = at % s.len();
        match kind % 4 {
            0 => {
                let end = (at + arg % 40).min(s.len());
                s.drain(at..end);
            }
            1 => {
                let bit = YAML_BITS[arg % YAML_BITS.len()];
                s.splice(at..at, bit.chars());
            }
            2 => {
                let end = (at + arg % 80).min(s.len());
                let dup: Vec<char> = s[at..end].to_vec();
                s.splice(at..at, dup);
            }
            _ => s[at] = char::from_u32((*arg % 128) as u32).unwrap_or(' '),
        }
    }
    s.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(120)))]

    #[test]
    fn mutated_specs_never_panic_the_loader(
        which in 0usize..SHIPPED.len(),
        ops in proptest::collection::vec((0usize..4, any::<usize>(), any::<usize>()), 1..8),
    ) {
        let text = mutate(&shipped_texts()[which], &ops);
        if let Err(diags) = focusqa::loading::load_text("mutated.yaml", &text, None, &[]) {
            prop_assert!(!diags.is_empty());
            for d in diags {
                prop_assert!(located(&d), "a diagnostic without file:line:col: {d}\n{text}");
            }
        }
    }

    #[test]
    fn random_yaml_never_panics_the_loader(
        bits in proptest::collection::vec(0usize..YAML_BITS.len(), 0..40),
    ) {
        let text: String = bits.iter().map(|i| YAML_BITS[*i]).collect();
        let text = format!("id: r\ntitle: r\nsteps:\n  - {text}");
        if let Err(diags) = focusqa::loading::load_text("random.yaml", &text, None, &[]) {
            for d in diags {
                prop_assert!(located(&d), "a diagnostic without file:line:col: {d}\n{text}");
            }
        }
    }

    #[test]
    fn durations_never_panic(s in "\\PC{0,30}", n in any::<f64>()) {
        let _ = focusqa::spec::parse_duration(&s);
        let _ = focusqa::spec::parse_duration(&format!("{n}"));
        let _ = focusqa::spec::parse_duration(&format!("{n}s"));
    }
}

const TEMPLATE_BITS: &[&str] = &[
    "{{ ",
    " }}",
    "{% ",
    " %}",
    "for i in ",
    "range(",
    "100000",
    ")",
    "endfor",
    "if ",
    "endif",
    "now(",
    "'%Q'",
    "'%Y'",
    "focus_time(",
    "'1000000y'",
    "'-10m'",
    "merge(",
    "omit(",
    "m",
    ", ",
    "xs",
    "[",
    "]",
    ":",
    "-1",
    "|",
    " length",
    " join",
    " urlencode",
    "is defined",
    "is definde",
    "x",
    ".split()",
    "'a'",
    " * ",
    "999999999",
    "random_int(",
    "5",
    "1",
    "uuid()",
    "namespace(",
    "set ns = ",
    "ns.v",
    " = ",
    "{'a': ",
    "}",
    "~",
    "+",
    "(",
    "dict(",
    "debug()",
    "e300",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(200)))]

    #[test]
    fn random_templates_never_panic_the_renderer(
        bits in proptest::collection::vec(0usize..TEMPLATE_BITS.len(), 0..24),
    ) {
        let src: String = bits.iter().map(|i| TEMPLATE_BITS[*i]).collect();
        let mut scope = focusqa::template::Scope::default();
        scope.set("x", serde_json::json!("a,b"));
        scope.set("xs", serde_json::json!([1, 2, 3]));
        scope.set("m", serde_json::json!({"a": {"b": 1}}));
        let _ = scope.render_str(&src);
        let _ = scope.eval(&src);
        let _ = scope.render_value(&Value::String(src.clone()));
        let _ = focusqa::template::lint(&src, false);
        let _ = focusqa::template::lint(&src, true);
    }
}

// ---- one run reports every problem of every file (issue 23) ----

/// The diagnostics of a `validate` output: (`file:line:col`, message), in order. Every one must
/// be located.
fn diagnostics(e: &str) -> Vec<(String, String)> {
    assert_all_located(e);
    let mut out = Vec::new();
    let mut message: Option<String> = None;
    for l in e.lines() {
        if let Some(m) = l.strip_prefix("error: ") {
            // A message may span lines (a regex error has its own `error: ` line).
            message = Some(match message.take() {
                Some(first) => format!("{first}\n{m}"),
                None => m.to_string(),
            });
        } else if let Some(loc) = l.trim_start().strip_prefix("--> ") {
            let m = message
                .take()
                .unwrap_or_else(|| panic!("`{l}` without a message:\n{e}"));
            out.push((loc.trim().to_string(), m));
        }
    }
    assert!(message.is_none(), "a diagnostic without a location:\n{e}");
    out
}

/// Each expected (`file:line:col`, part of the message) is one diagnostic, and nothing else is.
fn assert_exactly(e: &str, expected: &[(&str, &str)]) {
    let found = diagnostics(e);
    for (loc, text) in expected {
        assert!(
            found.iter().any(|(l, m)| l == loc && m.contains(text)),
            "expected `{text}` at {loc}:\n{e}"
        );
    }
    assert_eq!(
        found.len(),
        expected.len(),
        "every problem once, and nothing else:\n{found:#?}"
    );
}

#[test]
fn a_bad_duration_hides_no_regex_operand_or_append() {
    let p = Project::new("http://127.0.0.1:9");
    p.spec(
        "many.yaml",
        r#"id: many
title: four problems in one file
vars: {seen: 5}
steps:
  - http: {path: /health, timeout: 5 parsecs}
    expect:
      body: {matches: "ok("}
  - assert:
      - {value: "{{ seen }}", gt: true}
  - http: {path: /jobs}
    capture:
      seen: {path: "$.jobs[*].id", all: true, append: true}
"#,
    );
    let out = p.run(&["validate"]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert_exactly(
        &e,
        &[
            ("specs/many.yaml:5:36", "unknown time unit \"parsecs\""),
            ("specs/many.yaml:7:23", "bad regular expression `ok(`"),
            ("specs/many.yaml:9:31", "`gt: true` can never be compared"),
            (
                "specs/many.yaml:12:14",
                "appends to a list, but the variable `seen` is 5",
            ),
        ],
    );
}

#[test]
fn a_grpc_step_hides_no_missing_include_nor_undefined_variable() {
    let p = Project::new("http://127.0.0.1:9");
    p.spec(
        "grpc.yaml",
        r#"id: grpc
title: three problems in one file
steps:
  - http: {path: "/jobs/{{ job_idd }}"}
  - grpc: {service: Stream, method: Open}
  - include: _missing.yaml
  - http: {path: "/after/{{ from_missing }}"}
"#,
    );
    let out = p.run(&["validate"]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    // `from_missing` is read after the include that could not be read: it might define it, so
    // it is not reported (it is once the include is fixed and does not).
    assert_exactly(
        &e,
        &[
            ("specs/grpc.yaml:4:18", "undefined variable `job_idd`"),
            ("specs/grpc.yaml:5:5", "a `grpc` step is not allowed"),
            (
                "specs/grpc.yaml:6:14",
                "included file `_missing.yaml` not found",
            ),
        ],
    );

    // Once the include exists the name is checked: a fragment that does not define it.
    p.spec("_missing.yaml", "- http: {path: /ok}\n");
    let e = stderr(&p.run(&["validate"]));
    assert_exactly(
        &e,
        &[
            ("specs/grpc.yaml:4:18", "undefined variable `job_idd`"),
            ("specs/grpc.yaml:5:5", "a `grpc` step is not allowed"),
            ("specs/grpc.yaml:7:18", "undefined variable `from_missing`"),
        ],
    );
}

#[test]
fn a_broken_fragment_still_defines_its_captures_and_every_file_is_reported() {
    let p = Project::new("http://127.0.0.1:9");
    // The fragment has a problem of its own; what it captures is still known to the spec.
    p.spec(
        "_frag.yaml",
        "- http: {path: /jobs, timeout: 1 fortnight}\n  capture: {job_id: $.id}\n  expect: {body: {matches: \"[\"}}\n",
    );
    p.spec(
        "uses.yaml",
        "id: uses\ntitle: t\nsteps:\n  - include: _frag.yaml\n  - http: {path: \"/jobs/{{ job_id }}\", timeout: 1e20}\n  - http: {path: \"/x/{{ nope }}\"}\n",
    );
    // Another file, with the same id as a broken one.
    p.spec("twin.yaml", "id: uses\ntitle: t\nsteps:\n  - sleep: 1ms\n");
    let out = p.run(&["validate"]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert_exactly(
        &e,
        &[
            ("specs/_frag.yaml:1:32", "unknown time unit \"fortnight\""),
            ("specs/_frag.yaml:3:28", "bad regular expression `[`"),
            ("specs/uses.yaml:5:49", "at most 365 days"),
            ("specs/uses.yaml:6:18", "undefined variable `nope`"),
            ("specs/uses.yaml:1:5", "duplicate spec id `uses`"),
        ],
    );
}

#[test]
fn a_broken_catalog_hides_no_problem_of_the_specs() {
    let p = Project::new("http://127.0.0.1:9");
    p.with_scope("title: t\nareas: [\n", "");
    p.spec(
        "bad.yaml",
        "id: bad\ntitle: t\nsteps:\n  - sleep: 2 fortnights\n",
    );
    let out = p.run(&["validate"]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    let found = diagnostics(&e);
    assert!(
        found.iter().any(|(l, _)| l.starts_with("scope.yaml:")),
        "{e}"
    );
    assert!(
        found
            .iter()
            .any(|(l, m)| l == "specs/bad.yaml:4:12" && m.contains("unknown time unit")),
        "{e}"
    );
}

#[test]
fn what_a_refused_key_would_define_is_no_undefined_variable() {
    let p = Project::new("http://127.0.0.1:9");
    p.spec(
        "lost.yaml",
        r#"id: lost
title: names under misspelt keys
varz: {base: /v1}
steps:
  - http: {path: /jobs}
    captur: {job_id: $.id}
  - http: {path: "{{ base }}/jobs/{{ job_id }}/{{ typo }}"}
"#,
    );
    let e = stderr(&p.run(&["validate"]));
    assert_exactly(
        &e,
        &[
            ("specs/lost.yaml:3:1", "unknown field `varz`"),
            ("specs/lost.yaml:6:5", "unknown field `captur`"),
            ("specs/lost.yaml:7:18", "undefined variable `typo`"),
        ],
    );
}
