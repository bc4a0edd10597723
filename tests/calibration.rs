//! A second system under test, in YAML only: `examples/calibration/` runs against the embedded
//! calibration simulator with full coverage; failures inside `repeat`, `foreach` and included
//! fragments point at their own file and line; `validate` knows the new constructs.

use crate::common;

use common::{focusqa, run_expecting, stderr};
use serde_json::Value;

const CONFIG: &str = "examples/calibration/focusqa.yaml";

/// The first case of spec `spec` in results.json.
fn case<'a>(r: &'a Value, spec: &str) -> &'a Value {
    let s = r["specs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == spec)
        .unwrap_or_else(|| panic!("spec {spec} in results"));
    &s["cases"][0]
}

#[test]
fn the_calibration_project_passes_with_full_coverage_and_its_own_reports() {
    let run = run_expecting(0, &["run", "--config", CONFIG, "--quiet"]);
    let r = &run.results;
    assert_eq!(r["target"]["name"], "embedded");
    assert_eq!(r["target"]["kind"], "embedded");
    assert!(r["target"]["base_url"]
        .as_str()
        .unwrap()
        .ends_with("/api/v1"));
    assert_eq!(r["totals"]["failed"], 0);
    assert_eq!(r["totals"]["errors"], 0);
    assert!(r["totals"]["specs"].as_u64().unwrap() >= 10);
    let cov = &r["coverage"];
    assert_eq!(cov["gaps"].as_array().unwrap().len(), 0, "{cov}");
    assert_eq!(cov["verified"], cov["in_scope"], "{cov}");
    assert!(cov["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == "internals.accuracy"));
    for f in ["junit.xml", "summary.html", "coverage.html"] {
        assert!(run.dir.path().join(f).is_file(), "{f} written");
    }
    // The page walk ran page after page and collected every job id (repeat + append).
    let listing = case(r, "calibration.listing");
    let walk = listing["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "repeat")
        .expect("the repeat step");
    assert_eq!(
        walk["steps"].as_array().unwrap().len(),
        4,
        "4 pages of 2 for 7 jobs"
    );
    assert_eq!(walk["steps"][0]["name"], "run 1");
    // A foreach reports one result per item; included steps name their file.
    let batch = case(r, "calibration.batch");
    let each = batch["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "foreach")
        .unwrap();
    assert_eq!(each["steps"].as_array().unwrap().len(), 5);
    let lifecycle = case(r, "calibration.lifecycle");
    let inc = &lifecycle["steps"][0];
    assert_eq!(inc["kind"], "include");
    assert!(inc["steps"][0]["file"]
        .as_str()
        .unwrap()
        .ends_with("fragments/create-job.yaml"));
}

#[test]
fn failures_inside_loops_and_fragments_point_at_their_file_and_line() {
    let run = run_expecting(
        1,
        &[
            "run",
            "--config",
            CONFIG,
            "--quiet",
            "tests/fixtures/calibration/failing",
        ],
    );
    let r = &run.results;
    assert_eq!(r["totals"]["failed"], 3, "{}", run.stdout);
    let walk = case(r, "fixture.page-walk");
    assert_eq!(
        walk["location"],
        "tests/fixtures/calibration/failing/page-walk.yaml:20:18"
    );
    assert_eq!(walk["message"], "run 3: $.page <= 2: found 3");
    let items = case(r, "fixture.batch-items");
    assert_eq!(
        items["location"],
        "tests/fixtures/calibration/failing/batch-items.yaml:18:18"
    );
    assert!(
        items["message"]
            .as_str()
            .unwrap()
            .starts_with("item 2 (id = job_"),
        "{items}"
    );
    let frag = case(r, "fixture.fragment");
    assert_eq!(
        frag["location"],
        "tests/fixtures/calibration/fragments/wrong-status.yaml:10:10"
    );
    let inner = &frag["steps"][0]["steps"][1];
    assert_eq!(
        inner["file"],
        "tests/fixtures/calibration/fragments/wrong-status.yaml"
    );
    assert_eq!(inner["line"], 6);
    assert_eq!(inner["status"], "failed");
    // The JUnit failure carries the same location.
    let junit = std::fs::read_to_string(run.dir.path().join("junit.xml")).unwrap();
    assert!(junit.contains("tests/fixtures/calibration/fragments/wrong-status.yaml:10:10"));
    // ... with the source line and a caret under the column, as a load diagnostic shows them
    // (and so does the console's list of failures).
    assert!(
        run.stdout.contains("     --> tests/fixtures/calibration/fragments/wrong-status.yaml:10:10\n      |\n   10 |       - {path: $.status, equals: success}\n      |          ^^^^\n"),
        "{}",
        run.stdout
    );
    assert!(
        junit.contains("10 |       - {path: $.status, equals: success}\n   |          ^^^^\n"),
        "{junit}"
    );
    // ... and its step log shows the included steps, indented, at their own file:line.
    assert!(junit.contains("  [failed] wrongly expects success at once (tests/fixtures/calibration/fragments/wrong-status.yaml:6"), "{junit}");
}

/// `validate` on one broken fixture: exit 2 and the diagnostics (stderr).
fn broken(name: &str) -> String {
    let out = focusqa(&[
        "validate",
        "--config",
        CONFIG,
        &format!("tests/fixtures/calibration/broken/{name}"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
    stderr(&out)
}

#[test]
fn validate_knows_loops_includes_and_appends() {
    // The passing side: the example project, which uses every construct, is valid.
    let ok = focusqa(&["validate", "--config", CONFIG]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));

    let e = broken("cycle.yaml");
    assert!(e.contains("include cycle: tests/fixtures/calibration/fragments/cycle-a.yaml -> tests/fixtures/calibration/fragments/cycle-b.yaml -> tests/fixtures/calibration/fragments/cycle-a.yaml"), "{e}");
    assert!(
        e.contains("--> tests/fixtures/calibration/fragments/cycle-b.yaml:1:12"),
        "{e}"
    );

    let e = broken("missing.yaml");
    assert!(
        e.contains("included file `../fragments/nowhere.yaml` not found"),
        "{e}"
    );
    assert!(
        e.contains("--> tests/fixtures/calibration/broken/missing.yaml:4:14"),
        "{e}"
    );

    let e = broken("bad-fragment.yaml");
    assert!(e.contains("unknown field `expct`"), "{e}");
    assert!(
        e.contains("--> tests/fixtures/calibration/fragments/not-steps.yaml:3"),
        "{e}"
    );

    let e = broken("loops.yaml");
    assert!(
        e.contains("20000 is greater than the maximum of 10000"),
        "{e}"
    );
    assert!(
        e.contains("--> tests/fixtures/calibration/broken/loops.yaml:6:12"),
        "{e}"
    );

    // Inside a repeat, a capture of the previous run may be used guarded (the page walk of
    // tests/fixtures/calibration/failing does); unguarded, the first run has none.
    let e = broken("repeat-unguarded.yaml");
    assert!(e.contains("`page` may be undefined in `{{ page + 1 }}`: `page` is captured inside this `repeat` and missing in its first run"), "{e}");
    assert!(
        e.contains("--> tests/fixtures/calibration/broken/repeat-unguarded.yaml:7:45"),
        "{e}"
    );

    let e = broken("loop-vars.yaml");
    assert!(
        e.contains("capture `collected` appends to a list, but the variable `collected` is 3"),
        "{e}"
    );
    assert!(e.contains("undefined variable `n` in `{{ n }}`"), "{e}");
    assert!(
        e.contains("--> tests/fixtures/calibration/broken/loop-vars.yaml:12:22"),
        "{e}"
    );

    // A fragment's variables are checked where it is included: before the spec captures
    // `job_id` it is an error (at the fragment's line, naming the include), after it is not;
    // the optional `detail | default(...)` is never one.
    let e = broken("fragment-vars.yaml");
    assert!(e.contains("`job_id` is not defined yet in `/calibrate/{{ job_id }}/status`: it is captured later, by `steps[1]` (create a job) (included at tests/fixtures/calibration/broken/fragment-vars.yaml:4)"), "{e}");
    assert!(
        e.contains("--> tests/fixtures/calibration/fragments/job-status.yaml:4:11"),
        "{e}"
    );
    assert!(e.contains("1 problem(s)"), "{e}");
}
