//! A second simulated system under test: the async "VA-Calibration" job API (FastAPI + Redis +
//! Celery in real life), served under `/api/v1` as `schemas/calibration.openapi.yaml` documents.
//!
//! It exists so that the runner is proven on an API it was not written for: specs for it are
//! YAML only (`examples/calibration/`). Same conventions as the Focus simulator: every
//! simulated delay is real-world time x [`CalibrationConfig::time_scale`], randomness comes from
//! [`CalibrationConfig::seed`], faults are set through `/sim/faults` (also reachable as
//! `/api/v1/sim/...`, so a target whose `base_url` ends in `/api/v1` finds them), `/sim/state`
//! shows everything and `/sim/reset` empties it.
//!
//! # Behaviour (the contract the example specs are written against)
//! - `POST /calibrate/async` answers `{job_id: "job_<12>", status: "created"}`; the job is then
//!   `pending` until a worker slot is free (`worker_slots` fault, default 4), `running` through 5
//!   steps of 2-4 s each, and ends `success`, `failed` (`fail_next_jobs`: at step 3) or `timeout`
//!   (a job longer than its `timeout_minutes`; the `job_duration_s` fault makes jobs that long).
//! - The queue is served by priority, 10 first, ties in creation order; a batch never runs more
//!   than its `parallel_limit` jobs at once; with `fail_fast` the first failed job cancels the
//!   batch's pending and running jobs.
//! - A `success` result is cached for 3600 s (simulated) under its request (va_data, age_group,
//!   country, mmat_type, ensemble); a request with `use_cache` (default true) that finds it is
//!   `success` at once with `cache_info: {cached_at, source_job_id}` (`null` for a computed result).
//!   `use_cache: false` neither reads nor writes the cache.
//! - `DELETE /calibrate/{id}` cancels a pending or running job; a finished job (success, failed,
//!   timeout, cancelled) answers **400** "cannot be cancelled: it has already finished (<status>)",
//!   an unknown one 404. `GET /calibrate/{id}/result` of a job without a result is 400.
//! - `redis_down`: every endpoint but `/jobs/health` answers 503; `celery_down`: creating jobs
//!   answers 503 and no pending job starts. `/jobs/health` then answers 503 with the same body,
//!   naming the unhealthy dependency.
//! - Timestamps are simulated time (the clock runs `1/time_scale` times faster than the wall),
//!   so TTLs, `estimated_completion` and `created_after` filters agree with each other.

pub mod api;
pub mod state;

use super::clock::Clock;
use super::serve;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use state::FAULT_KEYS;

/// Settings of the calibration simulator.
#[derive(Clone, Debug)]
pub struct CalibrationConfig {
    pub time_scale: f64,
    pub seed: u64,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        CalibrationConfig {
            time_scale: 1.0,
            seed: 42,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

/// State shared by the handlers.
pub struct Shared {
    state: Mutex<state::State>,
    clock: Clock,
}

/// A running calibration simulator.
pub struct CalibrationHandle {
    config: CalibrationConfig,
    /// `None` in memory ([`start_in_memory`]): reached through `dialer` only.
    addr: Option<SocketAddr>,
    dialer: Option<serve::Dialer>,
    shutdown_tx: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl CalibrationHandle {
    /// The server's root, e.g. `http://127.0.0.1:41234` (the API is under `/api/v1`);
    /// [`MEMORY_URL`] in memory.
    pub fn url(&self) -> String {
        match self.addr {
            Some(a) => format!("http://{a}"),
            None => MEMORY_URL.into(),
        }
    }

    /// Opens in-memory connections, on a simulator started in memory.
    pub fn dialer(&self) -> Option<serve::Dialer> {
        self.dialer.clone()
    }

    /// The API's base URL: `<root>/api/v1`.
    pub fn api_url(&self) -> String {
        format!("{}/api/v1", self.url())
    }

    pub fn config(&self) -> &CalibrationConfig {
        &self.config
    }

    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(t) = self.task.take() {
            let abort = t.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for CalibrationHandle {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
    }
}

/// The root URL of a calibration simulator in memory: a name no resolver knows.
pub const MEMORY_URL: &str = "http://calibration.embedded";

/// Binds 127.0.0.1:port (0 = any free port) and serves until shutdown.
pub async fn start(config: CalibrationConfig, port: u16) -> std::io::Result<CalibrationHandle> {
    check(&config)?;
    let listener = super::listen(port)?;
    let addr = listener.local_addr()?;
    Ok(launch(config, listener.into(), Some(addr), None))
}

/// A calibration simulator with no socket, served over in-memory connections
/// ([`CalibrationHandle::dialer`]), for a runner on a virtual clock in the same process.
pub fn start_in_memory(config: CalibrationConfig) -> std::io::Result<CalibrationHandle> {
    check(&config)?;
    let (listener, dialer) = serve::Dialer::pair();
    Ok(launch(config, listener, None, Some(dialer)))
}

fn check(config: &CalibrationConfig) -> std::io::Result<()> {
    if !config.time_scale.is_finite() || config.time_scale <= 0.0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "time_scale must be a finite number > 0",
        ));
    }
    Ok(())
}

fn launch(
    config: CalibrationConfig,
    listener: serve::Listener,
    addr: Option<SocketAddr>,
    dialer: Option<serve::Dialer>,
) -> CalibrationHandle {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        state: Mutex::new(state::State::new(config.seed)),
        clock: Clock::new(config.time_scale),
    });
    let app = api::router(shared).layer(axum::middleware::from_fn_with_state(
        serve::BodyRead {
            timeout: config.body_read_timeout,
            limit: serve::BODY_LIMIT,
            error: api::error_response,
        },
        serve::read_body,
    ));
    let task = tokio::spawn(serve::serve(
        listener,
        app,
        {
            let t = config.header_read_timeout;
            move || t
        },
        shutdown_rx,
    ));
    CalibrationHandle {
        config,
        addr,
        dialer,
        shutdown_tx,
        task: Some(task),
    }
}
