//! End-to-end: the check operators (tests/fixtures/checks/) through the CLI, read back from
//! results.json. Every operator passes in `run/pass.yaml` and fails in `run/fail.yaml`.

use crate::common;

use std::path::{Path, PathBuf};

use common::{stderr, stdout, Project};
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checks")
}

/// Serves tests/fixtures/checks/document.json at `/doc`, byte for byte (so big integers
/// reach focusqa as written).
struct DocServer {
    url: String,
    _rt: tokio::runtime::Runtime,
}

impl DocServer {
    fn start() -> DocServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let body = std::fs::read_to_string(fixtures().join("document.json")).unwrap();
        let app = axum::Router::new().route(
            "/doc",
            axum::routing::get(move || {
                let body = body.clone();
                async move { ([("content-type", "application/json")], body) }
            }),
        );
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        DocServer { url, _rt: rt }
    }
}

/// A project with the fixture specs of `dir` (relative to tests/fixtures/checks).
fn project(url: &str, dir: &str) -> Project {
    let p = Project::new(url);
    for e in std::fs::read_dir(fixtures().join(dir)).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        p.spec(&name, &std::fs::read_to_string(e.path()).unwrap());
    }
    p
}

fn spec<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["specs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} missing from results.json"))
}

/// Every assertion of every step of a spec's first case.
fn assertions(spec: &Value) -> Vec<&Value> {
    spec["cases"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["assertions"].as_array().unwrap())
        .collect()
}

/// subject, op, expected, found (absent: nothing there), a note the message must contain.
type Expected = (
    &'static str,
    &'static str,
    Value,
    Option<Value>,
    Option<&'static str>,
);

fn run_fixtures() -> (Project, Value) {
    let srv = DocServer::start();
    let p = project(&srv.url, "run");
    let out = p.run(&["run", "--jobs", "2"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "checks.fail fails, so the run does\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let r = p.results();
    (p, r)
}

#[test]
fn every_operator_passes_and_fails_as_it_should() {
    let (_p, r) = run_fixtures();

    // checks.pass: every assertion passed, and every operator was exercised.
    let pass = spec(&r, "checks.pass");
    assert_eq!(pass["status"], "passed", "{pass:#}");
    let passed = assertions(pass);
    assert!(passed.iter().all(|a| a["passed"] == true), "{passed:#?}");
    let ops: std::collections::BTreeSet<&str> =
        passed.iter().map(|a| a["op"].as_str().unwrap()).collect();
    for op in [
        "equals",
        "not equals",
        "matches",
        "does not match",
        "contains",
        "does not contain",
        "exists",
        "has type",
        "==",
        ">",
        ">=",
        "<",
        "<=",
        "is one of",
        "is",
    ] {
        assert!(
            ops.contains(op),
            "`{op}` passes somewhere in checks.pass: {ops:?}"
        );
    }
    // lists of 0 and 1 matches are lists; null is a value; strings say how they compared
    let find = |subject: &str, op: &str| -> &Value {
        passed
            .iter()
            .find(|a| a["subject"] == subject && a["op"] == op)
            .unwrap_or_else(|| panic!("{subject} {op} missing"))
    };
    assert_eq!(find("$.single[*].id", "equals")["actual"], json!(["18-9"]));
    assert_eq!(
        find("$.jobs[?@.status == 'lost'].id", "equals")["actual"],
        json!([])
    );
    assert_eq!(
        find("length of $.jobs[?@.status == 'lost'].id", "==")["actual"],
        0
    );
    assert_eq!(find("$.nothing", "equals")["actual"], Value::Null);
    assert_eq!(find("$.nothing", "equals")["expected"], Value::Null);
    assert_eq!(find("$.name", ">")["message"], "compared as strings");
    assert_eq!(
        find("$.big", "equals")["expected"],
        json!(10000000000000000365u64)
    );

    // checks.fail: each check failed, with expected, found and (where needed) why.
    let fail = spec(&r, "checks.fail");
    assert_eq!(fail["status"], "failed");
    let failed = assertions(fail);
    let expected: &[Expected] = &[
        (
            "$.status",
            "equals",
            json!("running"),
            Some(json!("configured")),
            None,
        ),
        (
            "$.status",
            "not equals",
            json!("configured"),
            Some(json!("configured")),
            None,
        ),
        ("$.missing", "equals", Value::Null, None, None),
        (
            "$.nothing",
            "not equals",
            Value::Null,
            Some(Value::Null),
            None,
        ),
        (
            "$.job_id",
            "matches",
            json!("^x"),
            Some(json!("18-3")),
            None,
        ),
        (
            "$.job_id",
            "does not match",
            json!("^18-"),
            Some(json!("18-3")),
            None,
        ),
        (
            "$.job_id",
            "contains",
            json!("-9"),
            Some(json!("18-3")),
            None,
        ),
        (
            "$.job_id",
            "does not contain",
            json!("-3"),
            Some(json!("18-3")),
            None,
        ),
        (
            "$.jobs[*].status",
            "contains",
            json!("lost"),
            Some(json!(["running", "failed"])),
            None,
        ),
        (
            "$.jobs[*].status",
            "does not contain",
            json!("failed"),
            Some(json!(["running", "failed"])),
            None,
        ),
        (
            "$.stream_port",
            "does not contain",
            json!(5),
            Some(json!(50051)),
            Some("not a number"),
        ),
        (
            "$.job_id",
            "exists",
            json!(false),
            Some(json!("18-3")),
            None,
        ),
        ("$.missing", "exists", json!(true), None, None),
        (
            "$.job_id",
            "has type",
            json!("integer"),
            Some(json!("18-3")),
            None,
        ),
        (
            "$.single[*].id",
            "equals",
            json!("18-9"),
            Some(json!(["18-9"])),
            None,
        ),
        (
            "length of $.jobs[?@.status == 'lost']",
            "==",
            json!(1),
            Some(json!(0)),
            None,
        ),
        ("length of $.jobs", ">", json!(2), Some(json!(2)), None),
        ("$.stream_port", ">", json!(50051), Some(json!(50051)), None),
        (
            "$.stream_port",
            ">=",
            json!(50052),
            Some(json!(50051)),
            None,
        ),
        ("$.stream_port", "<", json!(50051), Some(json!(50051)), None),
        (
            "$.stream_port",
            "<=",
            json!(50050),
            Some(json!(50051)),
            None,
        ),
        (
            "$.name",
            ">",
            json!("zeta"),
            Some(json!("beta")),
            Some("compared as strings"),
        ),
        (
            "$.job_id",
            ">",
            json!(5),
            Some(json!("18-3")),
            Some("cannot compare a string with a number"),
        ),
        (
            "$.ready",
            "<",
            json!(1),
            Some(json!(true)),
            Some("cannot compare a boolean with a number"),
        ),
        (
            "$.big",
            "equals",
            json!(10000000000000000000u64),
            Some(json!(10000000000000000365u64)),
            None,
        ),
        (
            "$.big",
            "<=",
            json!(10000000000000000364u64),
            Some(json!(10000000000000000365u64)),
            None,
        ),
        (
            "$.status",
            "is one of",
            json!(["running", "failed"]),
            Some(json!("configured")),
            None,
        ),
        (
            "$.status",
            "is one of",
            json!(["running", "failed"]),
            Some(json!("configured")),
            None,
        ),
        (
            "$.status",
            "has type",
            json!("integer"),
            Some(json!("configured")),
            None,
        ),
        ("$.missing", "exists", json!(true), None, None),
    ];
    assert_eq!(
        failed.len(),
        expected.len(),
        "one result per check: {failed:#?}"
    );
    for (a, (subject, op, want, found, note)) in failed.iter().zip(expected) {
        let ctx = format!("{subject} {op}: {a:#}");
        assert_eq!(a["passed"], false, "{ctx}");
        assert_eq!(a["subject"], *subject, "{ctx}");
        assert_eq!(a["op"], *op, "{ctx}");
        assert_eq!(&a["expected"], want, "{ctx}");
        assert_eq!(a.get("actual"), found.as_ref(), "{ctx}");
        match note {
            Some(n) => assert!(a["message"].as_str().unwrap_or("").contains(n), "{ctx}"),
            None => assert!(a.get("message").is_none(), "{ctx}"),
        }
    }
    // every failing assertion carries its spec line
    let lines: Vec<u64> = failed.iter().map(|a| a["line"].as_u64().unwrap()).collect();
    assert_eq!(lines.first(), Some(&15));
    assert!(lines.windows(2).all(|w| w[1] == w[0] + 1), "{lines:?}");
}

#[test]
fn a_failed_expression_shows_its_variables() {
    let (_p, r) = run_fixtures();
    let s = spec(&r, "checks.fail-expr");
    assert_eq!(s["status"], "failed");
    let a = assertions(s);
    assert_eq!(a[0]["subject"], "stream_port >= port_min");
    assert_eq!(a[0]["expected"], true);
    assert_eq!(a[0]["actual"], false);
    assert_eq!(
        a[0]["message"],
        "the port is in the range; stream_port = 50000, port_min = 50051"
    );
    assert_eq!(a[1]["op"], ">=");
    assert_eq!(
        (&a[1]["expected"], &a[1]["actual"]),
        (&json!(50051), &json!(50000))
    );
    let msg = s["cases"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("stream_port >= port_min is true: found false (the port is in the range; stream_port = 50000, port_min = 50051)"),
        "{msg}"
    );
}

#[test]
fn operands_that_can_never_compare_are_rejected_with_their_position() {
    let p = project("http://127.0.0.1:9", "invalid");
    let out = p.run(&["validate"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{}\n{err}", stdout(&out));
    for (pos, text) in [
        (":7:33", "`gt: true` can never be compared"),
        (":8:33", "`lte: {\"max\":3}` can never be compared"),
        (":9:33", "`gte: null` can never be compared"),
        (
            ":10:34",
            "`length` must be a whole number or a template, not -1",
        ),
        (
            ":11:40",
            "`length` must be a whole number or a template, not \"many\"",
        ),
        (":12:28", "`one_of` needs a list"),
        (":13:41", "bad regular expression `(`"),
    ] {
        let pos = format!("never-comparable.yaml{pos}");
        let at = err
            .find(text)
            .unwrap_or_else(|| panic!("`{text}` missing:\n{err}"));
        let location = err[at..]
            .lines()
            .find(|l| l.trim_start().starts_with("-->"))
            .unwrap_or_default();
        assert!(
            location.contains(&format!("specs/{pos}")),
            "{text} at {pos}: {location}\n{err}"
        );
    }
    // a literal operand (not a template) is read as its type, with the position and a hint
    let at = err
        .find("unknown variant `strin`")
        .unwrap_or_else(|| panic!("{err}"));
    let rest = &err[at..];
    assert!(
        rest.contains("--> specs/type-typo.yaml:5:26") && rest.contains("did you mean `string`?"),
        "{err}"
    );
}

#[test]
fn the_fixtures_match_the_json_schema() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/spec.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let doc = |f: &str| -> Value {
        focusqa::spec::yaml::from_str(&std::fs::read_to_string(fixtures().join(f)).unwrap())
            .unwrap()
    };
    for f in ["run/pass.yaml", "run/fail.yaml", "run/fail-expr.yaml"] {
        let errors: Vec<String> = v.iter_errors(&doc(f)).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{f}: {errors:?}");
    }
    // editors flag what validate rejects: each check of the invalid fixture against `Check`
    let check_schema = json!({"$defs": schema["$defs"], "$ref": "#/$defs/Check"});
    let check = jsonschema::validator_for(&check_schema).unwrap();
    let invalid = doc("invalid/never-comparable.yaml");
    let checks = invalid["steps"][0]["expect"]["json"].as_array().unwrap();
    let rejected: Vec<bool> = checks.iter().map(|c| !check.is_valid(c)).collect();
    // gt: true, lte: {..}, gte: null, length: -1, length: {gte: many}, one_of: running;
    // a bad regex is only found by `validate`
    assert_eq!(rejected, [true, true, true, true, true, true, false]);
    assert!(check.is_valid(
        &json!({"path": "$.a", "gte": "{{ port_min }}", "one_of": "{{ allowed }}",
        "exists": "{{ flag }}", "type": "{{ t }}", "length": "{{ n }}", "equals": null})
    ));
    assert!(!check.is_valid(&json!({"path": "$.a", "type": "strin"})));
}
