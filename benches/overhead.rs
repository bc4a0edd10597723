//! `cargo bench`: the runner's own cost, measured so it never shows in load numbers.
//!
//! Each scenario runs in a child process (this binary re-executed), so CPU time (utime+stime from
//! /proc/self/stat) and peak memory (VmHWM) belong to that scenario alone; the no-op HTTP server
//! runs in yet another process so its CPU is not counted as the runner's.
//!
//! Scenarios:
//! - `steps`: N HTTP steps (a fan-out, 64 in flight) against a local no-op endpoint:
//!   requests/s, CPU per step, peak memory.
//! - `fanout200`: 200 iterations all at once (barrier) of configure + metadata against a no-op
//!   endpoint: peak memory.
//! - `suite200`: the shipped `specs/limits/concurrent-200.yaml` end to end against the embedded
//!   simulator (time scale 0.01): wall time and CPU.
//! - `million`: 1,000,000 iterations (`BENCH_MILLION`), 64 in flight, against the no-op endpoint:
//!   peak memory stays flat however long a load runs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

// The allocator of the shipped binary (src/main.rs), so figures are the binary's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use focusqa::config::{Config, TargetConfig};
use focusqa::engine::{Engine, RunOptions};
use focusqa::targets::{Target, TargetOverrides};

fn proc_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based) = indices 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn noop_server() {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route("/noop", get(|| async { "{}" }))
        .route("/configure", post(|| async { axum::Json(serde_json::json!({"job_id": "1-1", "status": "configured", "stream_url": "10.10.10.100", "stream_port": 50051})) }))
        .route("/metadata/{id}", get(|| async { axum::Json(serde_json::json!({"status": "running"})) }));
    let listener = focusqa::sim::listen(0).unwrap();
    println!("{}", listener.local_addr().unwrap());
    axum::serve(listener, app).await.unwrap();
}

async fn run_spec(yaml: &str, base_url: Option<&str>) -> focusqa::results::RunReport {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bench.yaml");
    std::fs::write(&p, yaml).unwrap();
    run_file(&p, base_url).await
}

async fn run_file(p: &Path, base_url: Option<&str>) -> focusqa::results::RunReport {
    let config = Config::default();
    let spec = focusqa::loading::load_file(p, None, &config.known_target_vars())
        .unwrap_or_else(|d| panic!("{d:?}"));
    let (name, tcfg) = match base_url {
        Some(u) => (
            "bench",
            TargetConfig {
                base_url: Some(u.to_string()),
                ..Default::default()
            },
        ),
        None => ("embedded", config.target("embedded").unwrap()),
    };
    let target = Arc::new(
        Target::connect(
            name,
            &tcfg,
            &config,
            &TargetOverrides::default(),
            &focusqa::results::Secrets::new(),
        )
        .await
        .unwrap(),
    );
    let engine = Engine::new(target.clone(), RunOptions::default());
    let report = engine.run(vec![spec]).await;
    drop(engine);
    if let Ok(t) = Arc::try_unwrap(target) {
        t.shutdown().await;
    }
    report
}

fn child(mode: &str, arg: &str) {
    // The embedded target runs on the virtual clock, as `focusqa run` runs it: one thread,
    // tokio's paused clock.
    let rt = if mode == "suite200" {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    rt.block_on(async {
        match mode {
            "server" => noop_server().await,
            "steps" => {
                let n: usize = std::env::var("BENCH_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
                let spec = format!(
                    "id: bench.steps\ntitle: steps\nsteps:\n  - fanout:\n      count: {n}\n      concurrency: 64\n      steps:\n        - name: noop\n          http: {{path: /noop}}\n          expect: {{status: 200}}\n      thresholds: [succeeded == count]\n"
                );
                // Warm up connections and allocator, then measure.
                let _ = run_spec(&spec.replace(&format!("count: {n}"), "count: 500"), Some(arg)).await;
                let (c0, t0) = (proc_cpu_seconds(), Instant::now());
                let r = run_spec(&spec, Some(arg)).await;
                let (cpu, wall) = (proc_cpu_seconds() - c0, t0.elapsed().as_secs_f64());
                assert_eq!(r.totals.passed, 1, "bench spec failed: {:?}", r.specs[0].cases[0].message);
                println!(
                    "RESULT steps n={n} wall_s={wall:.3} req_per_s={:.0} req_per_s_per_core={:.0} cpu_s={cpu:.3} cpu_us_per_step={:.1} cpu_ms_per_1000={:.1} peak_rss_mib={:.1}",
                    n as f64 / wall,
                    n as f64 / cpu.max(1e-9),
                    cpu * 1e6 / n as f64,
                    cpu * 1e6 / n as f64,
                    peak_rss_mib()
                );
            }
            "million" => {
                // Memory must not grow with the iteration count (issue 13): a long load run.
                let n: usize = std::env::var("BENCH_MILLION").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
                let spec = format!(
                    "id: bench.million\ntitle: million\nsteps:\n  - fanout:\n      count: {n}\n      concurrency: 64\n      steps:\n        - name: noop\n          http: {{path: /noop}}\n          expect: {{status: 200}}\n      thresholds: [succeeded == count, p99(noop) < 1s]\n"
                );
                let (c0, t0) = (proc_cpu_seconds(), Instant::now());
                let r = run_spec(&spec, Some(arg)).await;
                let (cpu, wall) = (proc_cpu_seconds() - c0, t0.elapsed().as_secs_f64());
                assert_eq!(r.totals.passed, 1, "bench spec failed: {:?}", r.specs[0].cases[0].message);
                println!(
                    "RESULT million n={n} wall_s={wall:.1} req_per_s={:.0} cpu_us_per_step={:.1} peak_rss_mib={:.1}",
                    n as f64 / wall,
                    cpu * 1e6 / n as f64,
                    peak_rss_mib()
                );
            }
            "fanout200" => {
                let spec = "id: bench.fanout200\ntitle: fanout\nsteps:\n  - fanout:\n      count: 200\n      steps:\n        - name: configure\n          http: {method: POST, path: /configure, json: {channels: {min: 0, max: 50}, index: \"{{ index }}\"}}\n          expect: {status: 200}\n          capture: {job_id: $.job_id, stream_port: $.stream_port}\n        - name: metadata\n          http: {path: \"/metadata/{{ job_id }}\"}\n          expect: {status: 200}\n      thresholds: [succeeded == count]\n";
                let t0 = Instant::now();
                let r = run_spec(spec, Some(arg)).await;
                assert_eq!(r.totals.passed, 1, "{:?}", r.specs[0].cases[0].message);
                println!("RESULT fanout200 wall_s={:.3} peak_rss_mib={:.1}", t0.elapsed().as_secs_f64(), peak_rss_mib());
            }
            "suite200" => {
                let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/limits/concurrent-200.yaml");
                let (c0, t0) = (proc_cpu_seconds(), Instant::now());
                let r = run_file(&p, None).await;
                let f = r.specs[0].cases[0].steps[0].fanout.clone().unwrap_or_default();
                let conf = f.steps.get("configure").cloned().unwrap_or_default();
                println!(
                    "RESULT suite200 status={} wall_s={:.3} cpu_s={:.3} succeeded={}/{} configure_p50_ms={:.1} configure_p95_ms={:.1} configure_max_ms={:.1} peak_rss_mib={:.1}",
                    r.specs[0].status.as_str(),
                    t0.elapsed().as_secs_f64(),
                    proc_cpu_seconds() - c0,
                    f.succeeded,
                    f.count,
                    conf.p50,
                    conf.p95,
                    conf.max,
                    peak_rss_mib()
                );
            }
            other => panic!("unknown bench mode {other}"),
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(
            &args[i + 1],
            args.get(i + 2).map(String::as_str).unwrap_or(""),
        );
        return;
    }
    // `cargo bench` passes `--bench`; filters are ignored.
    let exe = std::env::current_exe().unwrap();
    let mut server = Command::new(&exe)
        .args(["--child", "server"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = format!("http://{}", line.trim());
    println!(
        "focusqa runner overhead (release build, no-op server in a separate process at {url})"
    );
    for (mode, arg) in [
        ("steps", url.as_str()),
        ("fanout200", url.as_str()),
        ("suite200", ""),
        ("million", url.as_str()),
    ] {
        let out = Command::new(&exe)
            .args(["--child", mode, arg])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().find(|l| l.starts_with("RESULT")) {
            Some(l) => println!("{}", l.trim_start_matches("RESULT ")),
            None => println!(
                "{mode}: failed\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
    let _ = server.kill();
    let _ = server.wait();
}
