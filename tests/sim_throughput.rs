//! Throughput of the simulator's Focus API on this machine (ignored by default):
//! `cargo test --release --test sim_throughput -- --ignored --nocapture`
//! N concurrent clients hammer `GET /health` and `POST /configure` + `DELETE /job/{id}` for a
//! few seconds; the test prints requests per second and fails on any unexpected status.

use focusqa::sim::{self, SimConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn focus_api_throughput() {
    let health_only = std::env::var("SIM_HEALTH_ONLY").is_ok();
    let clients: usize = std::env::var("SIM_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let secs: u64 = std::env::var("SIM_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // Small time scale: cancelled jobs are cleaned up in ~50 ms, so the store stays small.
    let sim = sim::start(
        SimConfig {
            time_scale: std::env::var("SIM_SCALE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.001),
            ..Default::default()
        },
        0,
        0,
    )
    .await
    .unwrap();
    let base = sim.focus_url();
    let body = serde_json::to_vec(&serde_json::json!({
        "displayTimeAxisDuration": 10, "nfftSelection": 1024, "displayInfo": {"height": 1000},
        "channels": {"min": 0, "max": 50}, "frequencyRange": {"min": 0, "max": 500},
        "start_time": null, "end_time": null, "view_type": 0
    }))
    .unwrap();
    let health = Arc::new(AtomicU64::new(0));
    let configures = Arc::new(AtomicU64::new(0));
    let cancels = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (http, base, body) = (http.clone(), base.clone(), body.clone());
        let (health, configures, cancels, errors) = (
            health.clone(),
            configures.clone(),
            cancels.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                if health_only || i % 2 == 0 || n % 2 == 0 {
                    match http.get(format!("{base}/health")).send().await {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            health.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                } else {
                    let r = http
                        .post(format!("{base}/configure"))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    let id = match r {
                        Ok(r) if r.status() == 200 => {
                            configures.fetch_add(1, Ordering::Relaxed);
                            let v: serde_json::Value = r.json().await.unwrap_or_default();
                            v["job_id"].as_str().map(str::to_string)
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                    };
                    if let Some(id) = id {
                        match http.delete(format!("{base}/job/{id}")).send().await {
                            Ok(r) if r.status() == 200 => {
                                let _ = r.bytes().await;
                                cancels.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
        }));
    }
    let t0 = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (h, c, d, e) = (
        health.load(Ordering::Relaxed),
        configures.load(Ordering::Relaxed),
        cancels.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
    );
    let total = h + c + d;
    println!(
        "sim throughput: {clients} clients, {elapsed:.1} s: {:.0} requests/s ({h} health, {c} configure, {d} cancel, {e} errors)",
        total as f64 / elapsed
    );
    assert_eq!(e, 0, "no request may fail");
    assert_eq!(c, d);
    sim.shutdown().await;
}
