//! Choosing targets: `focusqa sim` served separately and reached as a configured target through
//! its kubeconfig, the complete example of the README (and the book) run as written, and plain
//! http through the proxy the environment names.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{focusqa, results_in, stderr, stdout, xmllint_validate, Project, SeparateSim};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The yaml block under "A complete example" in a Markdown file.
fn complete_example(doc: &str) -> String {
    let text = std::fs::read_to_string(root().join(doc)).unwrap();
    let section = text
        .split("A complete example\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{doc} has a section \"A complete example\""));
    section
        .split("```yaml")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap_or_else(|| panic!("{doc}: a yaml block under \"A complete example\""))
        .to_string()
}

#[test]
fn the_readme_example_runs_as_written() {
    // The README's tour shows the example the book's first chapter explains: one text, so
    // neither can go stale alone.
    let yaml = complete_example("README.md");
    assert_eq!(
        yaml,
        complete_example("docs/src/writing-specs.md"),
        "the complete example differs between README.md and docs/src/writing-specs.md"
    );
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
    // 0.1: the cleanup spec's ~50 s wait is 5 s of wall time, not a few hundred milliseconds
    // a busy neighbour could swallow (a separate simulator keeps the scaled wall clock).
    let sim = SeparateSim::start("0.1");
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
    assert_eq!(r["target"]["time_scale"], 0.1, "learnt from the simulator");
    assert_eq!(r["target"]["clock"], "wall");
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

/// A forward proxy stand-in: answers every request `200 {}` and records its request line.
fn recording_proxy() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            log.lock().unwrap().push(line.trim_end().to_string());
            // The rest of the head, then one answer and the end of the connection.
            let mut rest = String::new();
            while reader.read_line(&mut rest).is_ok_and(|n| n > 2) {
                rest.clear();
            }
            let mut s = stream;
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
            );
        }
    });
    (port, seen)
}

/// The lean HTTP/1.1 client knows no proxies: with `HTTP_PROXY` set, plain http goes through
/// reqwest, which sends it to the proxy. Without it, the same run finds nothing listening.
#[test]
fn plain_http_goes_through_the_proxy_the_environment_names() {
    let (port, seen) = recording_proxy();
    let p = Project::new("http://127.0.0.1:9");
    p.spec(
        "proxied.yaml",
        "id: proxied\ntitle: through the proxy\nsteps:\n  - http: {path: /health}\n    expect: {status: 200}\n",
    );
    let run = |proxy: Option<String>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_focusqa"));
        c.args(["run", "--quiet"])
            .current_dir(p.path())
            .env("NO_COLOR", "1");
        for v in [
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            c.env_remove(v);
        }
        if let Some(url) = proxy {
            c.env("HTTP_PROXY", url);
        }
        c.output().unwrap()
    };
    let out = run(Some(format!("http://127.0.0.1:{port}")));
    common::assert_exit(&out, 0);
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        ["GET http://127.0.0.1:9/health HTTP/1.1"],
        "the request went to the proxy, in absolute form"
    );
    let out = run(None);
    common::assert_exit(&out, 1);
    assert!(stdout(&out).contains("cannot connect"), "{}", stdout(&out));
}
