//! Property-based conformance of the simulator's Focus API to
//! `schemas/focus-server.openapi.yaml` with schemathesis (all checks, bounded examples, fixed
//! seed). The simulator runs in-process on a free port; the `/sim` control operations are left
//! out (they change the faults under the run). `tests/schemathesis/hooks.py` excuses only the 400s
//! for the cross-field rules JSON Schema cannot state.
//!
//! Needs `schemathesis` (or `st`) on PATH, or `SCHEMATHESIS=/path/to/schemathesis`; without it
//! the test prints a notice and passes, except with `CI` set (`.ci/run` installs it).

use crate::sim_common;

use focusqa::sim::SimConfig;
use sim_common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MAX_EXAMPLES: &str = "20";
const SEED: &str = "42";

fn schemathesis() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SCHEMATHESIS") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| [d.join("schemathesis"), d.join("st")])
        .find(|p| p.is_file())
}

#[tokio::test]
async fn schemathesis_finds_no_failures_in_the_focus_api() {
    let Some(bin) = schemathesis() else {
        if std::env::var_os("CI").is_some() {
            panic!("schemathesis is not installed (pip install schemathesis); CI must run the OpenAPI conformance check");
        }
        eprintln!("NOTICE: schemathesis not found on PATH; skipping the OpenAPI property-based check (pip install schemathesis)");
        return;
    };
    // Room for every job the run opens: no 503 for capacity or ports.
    let sim = start_with(SimConfig {
        time_scale: 0.01,
        capacity: 1_000_000,
        port_range: (1024, 65535),
        ..SimConfig::default()
    })
    .await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.current_dir(work.path())
        .env(
            "SCHEMATHESIS_HOOKS",
            root.join("tests/schemathesis/hooks.py"),
        )
        .env("NO_COLOR", "1")
        .args(["run", "--url", &sim.focus_url()])
        .arg(root.join("schemas/focus-server.openapi.yaml"))
        .args([
            "--checks",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
            "--exclude-tag",
            "simulator",
            "--workers",
            "1",
            "--request-timeout",
            "10",
        ])
        .kill_on_drop(true);
    let out = match tokio::time::timeout(Duration::from_secs(600), cmd.output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => panic!("cannot run {}: {e}", bin.display()),
        Err(_) => panic!("schemathesis did not finish within 10 minutes"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found failures ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // It really tested the Focus operations (8 of 13; the 5 /sim ones are excluded).
    assert!(
        stdout.contains("8 selected / 13 total"),
        "unexpected selection:\n{stdout}"
    );
    assert!(!stdout.contains("FAILURES"), "{stdout}");
    sim.shutdown().await;
}
