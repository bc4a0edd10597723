//! Property-based conformance of the simulators to their OpenAPI documents with schemathesis
//! (all checks, bounded examples, fixed seed): the Focus API to
//! `schemas/focus-server.openapi.yaml` and the calibration job API to
//! `schemas/calibration.openapi.yaml`. Each simulator runs in-process on a free port. For Focus
//! the `/sim` control operations are left out (they change the faults under the run);
//! `tests/schemathesis/hooks.py` excuses only the 400s for the cross-field rules JSON Schema
//! cannot state, and `tests/schemathesis/calibration_hooks.py` only the calibration API's
//! documented 400s that depend on a job's state (cancelling a finished job, the result of a job
//! that has none).
//!
//! Needs `schemathesis` (or `st`) on PATH, or `SCHEMATHESIS=/path/to/schemathesis`; without it
//! the tests print a notice and pass, except with `CI` set (`.ci/run` installs it).

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

/// Runs schemathesis against `doc` served at `url` with `hooks`; `None` when it is not installed
/// (outside CI). Returns its stdout after asserting it succeeded.
async fn run_schemathesis(url: &str, doc: &str, hooks: &str, extra: &[&str]) -> Option<String> {
    let Some(bin) = schemathesis() else {
        if std::env::var_os("CI").is_some() {
            panic!("schemathesis is not installed (pip install schemathesis); CI must run the OpenAPI conformance check");
        }
        eprintln!("NOTICE: schemathesis not found on PATH; skipping the OpenAPI property-based check (pip install schemathesis)");
        return None;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.current_dir(work.path())
        .env("SCHEMATHESIS_HOOKS", root.join(hooks))
        .env("NO_COLOR", "1")
        .args(["run", "--url", url])
        .arg(root.join(doc))
        .args([
            "--checks",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
            "--workers",
            "1",
            "--request-timeout",
            "10",
        ])
        .args(extra)
        .kill_on_drop(true);
    let out = match tokio::time::timeout(Duration::from_secs(600), cmd.output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => panic!("cannot run {}: {e}", bin.display()),
        Err(_) => panic!("schemathesis did not finish within 10 minutes"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found failures ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(!stdout.contains("FAILURES"), "{stdout}");
    Some(stdout)
}

#[tokio::test]
async fn schemathesis_finds_no_failures_in_the_focus_api() {
    if schemathesis().is_none() && std::env::var_os("CI").is_none() {
        eprintln!("NOTICE: schemathesis not found on PATH; skipping the OpenAPI property-based check (pip install schemathesis)");
        return;
    }
    // Room for every job the run opens: no 503 for capacity or ports.
    let sim = start_with(SimConfig {
        time_scale: 0.01,
        capacity: 1_000_000,
        port_range: (1024, 65535),
        ..SimConfig::default()
    })
    .await;
    let Some(stdout) = run_schemathesis(
        &sim.focus_url(),
        "schemas/focus-server.openapi.yaml",
        "tests/schemathesis/hooks.py",
        &["--exclude-tag", "simulator"],
    )
    .await
    else {
        return;
    };
    // It really tested the Focus operations (8 of 13; the 5 /sim ones are excluded).
    assert!(
        stdout.contains("8 selected / 13 total"),
        "unexpected selection:\n{stdout}"
    );
    sim.shutdown().await;
}

/// The calibration simulator (issue 24 found 10 failures in 4,652 cases: `use_cache: null`
/// and `fail_fast: null` accepted, `timeout_minutes: 13.0` and large `page` / `log_offset`
/// values rejected, ...). Every operation of the document is tested, stateful links included;
/// the simulator's control API is not in the document.
#[tokio::test]
async fn schemathesis_finds_no_failures_in_the_calibration_api() {
    if schemathesis().is_none() && std::env::var_os("CI").is_none() {
        eprintln!("NOTICE: schemathesis not found on PATH; skipping the OpenAPI property-based check (pip install schemathesis)");
        return;
    }
    let sim = focusqa::sim::calibration::start(
        focusqa::sim::calibration::CalibrationConfig {
            time_scale: 0.01,
            ..Default::default()
        },
        0,
    )
    .await
    .unwrap();
    let Some(stdout) = run_schemathesis(
        &sim.api_url(),
        "schemas/calibration.openapi.yaml",
        "tests/schemathesis/calibration_hooks.py",
        &[],
    )
    .await
    else {
        return;
    };
    assert!(
        stdout.contains("11 selected / 11 total"),
        "unexpected selection:\n{stdout}"
    );
    sim.shutdown().await;
}
