//! Choosing targets: `focusqa sim` served separately and reached as a configured target through
//! its kubeconfig, and the README's complete example run as written.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{focusqa, results_in, stderr, stdout, xmllint_validate};

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
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    let mut sim = Command::new(env!("CARGO_BIN_EXE_focusqa"))
        .args([
            "sim",
            "--port",
            "0",
            "--kube-port",
            "0",
            "--time-scale",
            "0.01",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sim.stdout.take().unwrap()).lines();
    let mut focus_url = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(u) = line.trim().strip_prefix("Focus Server API:") {
            focus_url = u.trim().to_string();
        }
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    assert!(
        focus_url.starts_with("http://127.0.0.1:"),
        "printed the Focus URL"
    );
    assert!(kubeconfig.exists(), "wrote the kubeconfig");
    let cfg = format!(
        "default_target: mysim\ntargets:\n  mysim:\n    base_url: {focus_url}\n    simulator: true\n    time_scale: 0.01\n    kubernetes:\n      kubeconfig: {}\n      namespace: focus\n    vars: {{stream_ip: 10.10.10.100, port_min: 50051, port_max: 50350, capacity: 200}}\n",
        kubeconfig.display()
    );
    let cfg_path = dir.path().join("focusqa.yaml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let rd = dir.path().join("reports");
    // The same shipped specs, unchanged: Kubernetes lifecycle, resources, failure fault, cleanup.
    let out = focusqa(&[
        "--config",
        cfg_path.to_str().unwrap(),
        "run",
        "--quiet",
        "specs/k8s",
        "specs/errors/port-taken.yaml",
        "--report-dir",
        rd.to_str().unwrap(),
    ]);
    std::process::Command::new("kill")
        .args(["-INT", &sim.id().to_string()])
        .status()
        .unwrap();
    let status = sim.wait().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let r: serde_json::Value = results_in(&rd);
    assert_eq!(r["target"]["kind"], "simulator");
    assert_eq!(r["totals"]["passed"], 5, "{}", r["totals"]);
    xmllint_validate(&rd.join("junit.xml"));
    assert!(status.success(), "focusqa sim stops cleanly on Ctrl-C");
}
