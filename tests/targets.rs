//! Choosing targets: `focusqa sim` served separately and reached as a configured target through
//! its kubeconfig, and the README's complete example run as written.

mod common;

use std::path::Path;
use std::process::Command;

use common::{focusqa, results_in, stderr, stdout, xmllint_validate, SeparateSim};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_readme_example_runs_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("### A complete example")
        .nth(1)
        .expect("README has the example");
    let yaml = section
        .split("```yaml")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a yaml block");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("example.yaml");
    std::fs::write(&spec, yaml).unwrap();
    let rd = dir.path().join("reports");
    let out = focusqa(&[
        "run",
        spec.to_str().unwrap(),
        "--report-dir",
        rd.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let r: serde_json::Value = results_in(&rd);
    let poll = &r["specs"][0]["cases"][0]["steps"][1]["poll"];
    assert_eq!(poll["satisfied"], true, "{poll}");
    assert!(r["specs"][0]["cases"][0]["steps"][1]["captures"]["ready_ms"].is_number());
}

#[test]
fn a_separate_simulator_is_a_target_with_kubernetes() {
    let sim = SeparateSim::start("0.01");
    let rd = sim.dir.path().join("reports");
    // The same shipped specs, unchanged: Kubernetes lifecycle, resources, failure fault, cleanup,
    // and the limits that read the simulator's capacity (asked of the simulator, not configured).
    let out = sim.focusqa(&[
        "run",
        "--quiet",
        "specs/k8s",
        "specs/errors/port-taken.yaml",
        "specs/limits/resource-constraints.yaml",
        "--report-dir",
        rd.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let r: serde_json::Value = results_in(&rd);
    assert_eq!(r["target"]["kind"], "simulator");
    assert_eq!(r["target"]["time_scale"], 0.01, "learnt from the simulator");
    assert_eq!(r["totals"]["failed"], 0, "{}", r["totals"]);
    assert_eq!(r["totals"]["errors"], 0, "{}", r["totals"]);
    xmllint_validate(&rd.join("junit.xml"));
    let mut child = sim;
    Command::new("kill")
        .args(["-INT", &child.child.id().to_string()])
        .status()
        .unwrap();
    assert!(
        child.child.wait().unwrap().success(),
        "focusqa sim stops cleanly on Ctrl-C"
    );
}
