//! Embedded Focus Server + Kubernetes API simulator.
//!
//! [`start`] binds two loopback ports: the Focus Server HTTP API (plus `/sim` control
//! endpoints) and a plain-HTTP Kubernetes API server subset; [`start_in_memory`] serves the same
//! two APIs without a socket, for a runner in the same process on a virtual clock (the
//! embedded target). Both share one state
//! ([`state::State`]): the Focus API opens and cancels jobs, the Kubernetes API exposes the
//! analyzer / cleanup Jobs and Pods they create (and supports delete and watch).
//!
//! All simulated delays are real-world figures multiplied by [`SimConfig::time_scale`], on the
//! clock of the tokio runtime the simulator runs on (a paused one, for the embedded target);
//! random delays come from a RNG seeded with [`SimConfig::seed`] (same seed + same request order
//! = same delays, pod names and uids). Every answer takes a modelled latency
//! ([`state::focus_latency_range`], [`state::KUBE_LATENCY`]) drawn from a stream of its own.
//!
//! # Focus API behaviour (the contract specs are written against)
//! Errors are JSON `{"detail": "..."}`; the schema is `schemas/focus-server.openapi.yaml`.
//! Every request body is read within [`SimConfig::body_read_timeout`] (else 408 and the connection
//! is closed) and up to 2 MiB (else 413); a request head must arrive within
//! [`SimConfig::header_read_timeout`] (else the connection is closed). See [`serve`].
//! `POST /configure` checks, first failure answers:
//! 0. 415: a `Content-Type` that is not JSON (`application/json`, `application/<x>+json`); no
//!    `Content-Type` at all is read as JSON (as FastAPI does).
//! 1. 422: body not JSON / not an object, a required field missing or of the wrong JSON type
//!    (`"channels.min must be an integer"`, `"displayInfo (or legacy canvasInfo) is required"`).
//! 2. 400, in this order: channels (`"channels: min (60) must not be greater than max (50)"`,
//!    `"channels: min (-1) must be >= 0"`, `"channels: max (2500) must be <= 2499 (highest channel)"`),
//!    frequencyRange (`"frequencyRange: min (300) must be less than max (200)"`, `... must be >= 0`,
//!    `"frequencyRange: max (600) must be <= 500 (Nyquist frequency, PRR 1000 Hz)"`), nfftSelection
//!    (`"nfftSelection: 1000 is not allowed; allowed values: 128, ..., 65536"`),
//!    `"displayTimeAxisDuration must be > 0 (got 0)"`, `"displayInfo.height must be > 0 (got 0)"`,
//!    `"view_type: 2 is not a valid view type; allowed: 0 (MULTICHANNEL), 1 (SINGLECHANNEL)"`,
//!    `"start_time and end_time must both be set (historic) or both be null (live)"`,
//!    `"start_time: 'x' is not a valid yymmddHHMMSS time (UTC)"`, `"end_time must be after start_time"`.
//!    Legacy names (`sensors`, `canvasInfo`) are accepted and named as sent in messages (when both
//!    names are sent, both are validated). Integers may be written as integral numbers (`1024.0`).
//! 3. 404: `"No live data: the live stream is not available"` /
//!    `"No historic data: no recordings cover <start>..<end>"`.
//! 4. 503: `"Capacity reached: <capacity> concurrent jobs are open"`, then
//!    `"No free stream port in <lo>-<hi>"`.
//!
//! `DELETE /job/{id}` means "the client disconnected": the job stops counting as open (capacity,
//! port) at once; its analyzer Job/Pod stay until the cleanup job deletes them (~40-50 s later,
//! after 5 idle CPU readings 10 s apart), and the cleanup Job is deleted 10 s after completing.
//! A job whose analyzer failed (`fail_next_jobs`) or was deleted through the Kubernetes API has
//! status `"failed"`, never becomes ready (`/metadata` stays 404) and stays open until cancelled.
//!
//! `/sim/faults` keys ([`FAULT_KEYS`]): `live_data`, `recordings`, `occupied_ports`, `capacity`,
//! `fail_next_jobs`, `consumer_never_ready`, `slow_responses_ms`, `consumer_delay_s`,
//! `kube_throttle`, `idle_close_s` (keep-alive connections closed after that long idle),
//! `reset_responses` (the next N responses break off mid-body).
//!
//! A second service, the async calibration job API, lives in [`calibration`] (`focusqa sim
//! --service calibration`, or `embedded: {service: calibration}`); [`Service`] picks one.

pub mod calibration;
pub mod clock;
pub mod cluster;
pub mod focus;
pub mod kube;
pub mod objects;
pub mod selectors;
pub mod serve;
pub mod state;
pub mod store;

pub use state::{FAULT_KEYS, MAX_CHANNEL, NFFT_ALLOWED, NYQUIST, PRR};

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Which simulated system a simulator serves.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// The Focus Server API and the Kubernetes API it drives.
    #[default]
    Focus,
    /// The async calibration job API (`/api/v1`).
    Calibration,
}

/// Simulator settings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Multiplies every simulated delay; 1.0 = real timings.
    pub time_scale: f64,
    /// Max concurrent jobs (default 200).
    pub capacity: usize,
    /// Seeds every random delay (default 42).
    pub seed: u64,
    /// Kubernetes namespace of the jobs (default "focus").
    pub namespace: String,
    /// Stream IP returned by /configure (default "10.10.10.100").
    pub stream_ip: String,
    /// Inclusive stream port range (default 50051-50350).
    pub port_range: (u16, u16),
    /// First part of job ids "<instance>-<seq>" (default 18).
    pub instance: u32,
    /// Real time a client gets to send a request head (request line + headers), also the
    /// longest a kept-alive connection may sit idle (default 10 s). Not time-scaled.
    pub header_read_timeout: Duration,
    /// Real time a client gets to send a whole request body (default 30 s); then 408 and the
    /// connection is closed. Not time-scaled.
    pub body_read_timeout: Duration,
    /// When set, the Kubernetes API answers 401 unless `Authorization: Bearer <token>` is sent
    /// (as an API server does for a service account); `None` = no authentication.
    pub kube_token: Option<String>,
    /// A real cluster to drive (`focusqa sim --kubernetes KUBECONFIG`): the analyzer and
    /// cleanup Jobs become real Jobs there, and their state is read back ([`cluster`]). `None`:
    /// the simulator's own Kubernetes API. Needs `time_scale` 1: a real cluster keeps real time.
    pub kubernetes: Option<std::path::PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            time_scale: 1.0,
            capacity: 200,
            seed: 42,
            namespace: "focus".into(),
            stream_ip: "10.10.10.100".into(),
            port_range: (50051, 50350),
            instance: 18,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            kube_token: None,
            kubernetes: None,
        }
    }
}

/// State shared by both servers and the timer task.
pub struct Shared {
    state: Mutex<state::State>,
    notify: Notify,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, state::State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on the state after applying every due transition; wakes the timer task when
    /// `f` scheduled something earlier than its current deadline.
    pub fn with<R>(&self, f: impl FnOnce(&mut state::State, Instant) -> R) -> R {
        let now = Instant::now();
        let mut st = self.lock();
        st.advance(now);
        let before = st.next_deadline();
        let r = f(&mut st, now);
        let after = st.next_deadline();
        drop(st);
        if let Some(a) = after {
            if before.is_none_or(|b| a < b) {
                self.notify.notify_one();
            }
        }
        r
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

/// The Focus API's URL of a simulator in memory ([`start_in_memory`]): a name no resolver
/// knows, so nothing reaches it but the [`serve::Dialer`].
pub const MEMORY_FOCUS_URL: &str = "http://focus.embedded";
/// The Kubernetes API's URL of a simulator in memory (served by [`SimHandle::kube_service`]).
pub const MEMORY_KUBE_URL: &str = "http://kubernetes.embedded";

/// How the two APIs are reached: sockets, or in memory.
enum Reach {
    Tcp {
        focus: SocketAddr,
        kube: SocketAddr,
    },
    Memory {
        dialer: serve::Dialer,
        kube: axum::Router,
    },
}

/// A running simulator.
pub struct SimHandle {
    config: SimConfig,
    reach: Reach,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Driving a real cluster: ends after deleting the Jobs it made there.
    cluster_task: Option<JoinHandle<()>>,
    cluster_server: Option<String>,
    shared: Arc<Shared>,
}

impl SimHandle {
    /// e.g. "http://127.0.0.1:41234" (no trailing slash); [`MEMORY_FOCUS_URL`] in memory.
    pub fn focus_url(&self) -> String {
        match &self.reach {
            Reach::Tcp { focus, .. } => format!("http://{focus}"),
            Reach::Memory { .. } => MEMORY_FOCUS_URL.into(),
        }
    }

    /// e.g. "http://127.0.0.1:41235"; [`MEMORY_KUBE_URL`] in memory.
    pub fn kube_url(&self) -> String {
        match &self.reach {
            Reach::Tcp { kube, .. } => format!("http://{kube}"),
            Reach::Memory { .. } => MEMORY_KUBE_URL.into(),
        }
    }

    /// Opens in-memory connections to the Focus API, on a simulator started in memory.
    pub fn dialer(&self) -> Option<serve::Dialer> {
        match &self.reach {
            Reach::Memory { dialer, .. } => Some(dialer.clone()),
            Reach::Tcp { .. } => None,
        }
    }

    /// The Kubernetes API as a service called in-process (a `tower::Service` of HTTP requests,
    /// as `kube::Client::new` takes), on a simulator started in memory.
    pub fn kube_service(&self) -> Option<axum::Router> {
        match &self.reach {
            Reach::Memory { kube, .. } => Some(kube.clone()),
            Reach::Tcp { .. } => None,
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The API server of the real cluster this simulator drives (`SimConfig::kubernetes`).
    pub fn cluster_server(&self) -> Option<String> {
        self.cluster_server.clone()
    }

    /// Writes a kubeconfig (server = kube_url, context "focusqa-sim", namespace = config.namespace,
    /// the bearer token when one is required) to `path`.
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> std::io::Result<()> {
        let user = match &self.config.kube_token {
            Some(t) => format!("{{token: {}}}", serde_json::Value::String(t.clone())),
            None => "{}".into(),
        };
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: focusqa-sim\n  cluster:\n    server: {server}\ncontexts:\n- name: focusqa-sim\n  context:\n    cluster: focusqa-sim\n    namespace: {ns}\n    user: focusqa-sim\ncurrent-context: focusqa-sim\npreferences: {{}}\nusers:\n- name: focusqa-sim\n  user: {user}\n",
            server = self.kube_url(),
            ns = serde_json::Value::String(self.config.namespace.clone()),
        );
        std::fs::write(path, yaml)
    }

    /// Graceful stop of both servers and the timer task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        self.shared.notify.notify_one();
        for t in std::mem::take(&mut self.tasks) {
            join_within(t, Duration::from_secs(5)).await;
        }
        if let Some(t) = self.cluster_task.take() {
            join_within(t, cluster::SHUTDOWN_WAIT + Duration::from_secs(10)).await;
        }
    }
}

/// Waits up to `limit` for a task to end, then aborts it.
async fn join_within(t: JoinHandle<()>, limit: Duration) {
    let abort = t.abort_handle();
    if tokio::time::timeout(limit, t).await.is_err() {
        abort.abort();
    }
}

impl Drop for SimHandle {
    /// Dropping the handle without `shutdown()` still stops the servers and the timer task
    /// (without waiting for them).
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        self.shared.notify.notify_one();
    }
}

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg.to_string())
}

/// Binds 127.0.0.1:focus_port and 127.0.0.1:kube_port (0 = ephemeral) and serves both until shutdown.
pub async fn start(
    config: SimConfig,
    focus_port: u16,
    kube_port: u16,
) -> std::io::Result<SimHandle> {
    check(&config)?;
    let focus_listener = listen(focus_port)?;
    let kube_listener = listen(kube_port)?;
    let reach = Reach::Tcp {
        focus: focus_listener.local_addr()?,
        kube: kube_listener.local_addr()?,
    };
    let cluster = match &config.kubernetes {
        Some(path) => Some(
            cluster::connect(path, &config.namespace)
                .await
                .map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::ConnectionRefused, e.to_string())
                })?,
        ),
        None => None,
    };
    Ok(launch(
        config,
        reach,
        focus_listener.into(),
        Some(kube_listener),
        cluster,
    ))
}

/// A simulator with no socket, for a runner in the same process: the Focus API is served over
/// in-memory connections ([`SimHandle::dialer`]), the Kubernetes API is called as a service
/// ([`SimHandle::kube_service`]). With no real I/O, a paused tokio clock (the embedded
/// target's virtual time) only jumps when every task of the process waits on a timer.
pub fn start_in_memory(config: SimConfig) -> std::io::Result<SimHandle> {
    check(&config)?;
    if config.kubernetes.is_some() {
        return Err(invalid(
            "a simulator in memory drives no real cluster: start it on sockets (focusqa sim --kubernetes)",
        ));
    }
    let (listener, dialer) = serve::Dialer::pair();
    let reach = Reach::Memory {
        dialer,
        kube: axum::Router::new(),
    };
    Ok(launch(config, reach, listener, None, None))
}

fn check(config: &SimConfig) -> std::io::Result<()> {
    if !config.time_scale.is_finite() || config.time_scale < 0.0 {
        return Err(invalid("time_scale must be a finite number >= 0"));
    }
    if config.port_range.0 > config.port_range.1 {
        return Err(invalid(
            "port_range: first port must not be greater than the last",
        ));
    }
    if config.kubernetes.is_some() && config.time_scale != 1.0 {
        return Err(invalid(
            "a simulator driving a real cluster runs at time scale 1: the cluster's controllers keep real time",
        ));
    }
    if config.header_read_timeout.is_zero() || config.body_read_timeout.is_zero() {
        return Err(invalid(
            "header_read_timeout and body_read_timeout must be greater than zero",
        ));
    }
    Ok(())
}

/// Starts the timer task and serves both APIs: the Focus API from `focus_listener`, the
/// Kubernetes API from `kube_listener` or, without one, as the service kept in `reach`.
fn launch(
    config: SimConfig,
    mut reach: Reach,
    focus_listener: serve::Listener,
    kube_listener: Option<tokio::net::TcpListener>,
    cluster: Option<cluster::Cluster>,
) -> SimHandle {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (tx, _) = broadcast::channel(65_536);
    let clock = clock::Clock::new(config.time_scale);
    let st = state::State::new(config.clone(), clock, store::Store::new(tx));
    let shared = Arc::new(Shared {
        state: Mutex::new(st),
        notify: Notify::new(),
        shutdown: shutdown_rx,
    });

    let mut tasks = Vec::new();
    let body_read = |error| serve::BodyRead {
        timeout: config.body_read_timeout,
        limit: serve::BODY_LIMIT,
        error,
    };
    let focus_app = focus::router(shared.clone()).layer(axum::middleware::from_fn_with_state(
        body_read(focus::error_response),
        serve::read_body,
    ));
    let kube_app = match &cluster {
        Some(c) => kube::driving_a_cluster(&c.server),
        None => kube::router(shared.clone()),
    }
    .layer(axum::middleware::from_fn_with_state(
        shared.clone(),
        kube::gate,
    ))
    .layer(axum::middleware::from_fn_with_state(
        body_read(kube::error_response),
        serve::read_body,
    ));
    let head = config.header_read_timeout;
    let (scale, faults) = (config.time_scale, shared.clone());
    // The `idle_close_s` fault shortens the Focus API's idle keep-alive (real-world seconds,
    // scaled like every simulated delay).
    let focus_head = move || {
        faults
            .with(|st, _| st.faults.idle_close_s)
            .and_then(|s| Duration::try_from_secs_f64(s * scale).ok())
            .map_or(head, |idle| idle.max(Duration::from_millis(1)).min(head))
    };
    tasks.push(tokio::spawn(serve::serve(
        focus_listener,
        focus_app,
        focus_head,
        shared.shutdown_signal(),
    )));
    match (kube_listener, &mut reach) {
        (Some(l), _) => tasks.push(tokio::spawn(serve::serve(
            l,
            kube_app,
            move || head,
            shared.shutdown_signal(),
        ))),
        (None, Reach::Memory { kube, .. }) => *kube = kube_app,
        (None, Reach::Tcp { .. }) => {
            unreachable!("a simulator on sockets has a Kubernetes listener")
        }
    }
    tasks.push(tokio::spawn(timer_task(shared.clone())));
    let cluster_server = cluster.as_ref().map(|c| c.server.clone());
    let cluster_task =
        cluster.map(|c| tokio::spawn(cluster::run(c, shared.clone(), shared.shutdown_signal())));

    SimHandle {
        config,
        reach,
        shutdown_tx,
        tasks,
        cluster_task,
        cluster_server,
        shared,
    }
}

/// Applies scheduled transitions at their deadlines, so watches see them without requests.
async fn timer_task(shared: Arc<Shared>) {
    let mut rx = shared.shutdown_signal();
    loop {
        if *rx.borrow() {
            return;
        }
        let next = {
            let mut st = shared.lock();
            st.advance(Instant::now());
            st.next_deadline()
        };
        // With nothing scheduled, no timer: on a virtual clock a far-off one would be where
        // time jumps to whenever the rest of the process waits on something else.
        let due = async {
            match next {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = rx.changed() => {}
            _ = shared.notify.notified() => {}
            _ = due => {}
        }
    }
}

/// Pending connections a simulator's listener queues before it accepts them. "200 jobs at once"
/// opens 200 connections in the same millisecond; the default queue (128) overflowed, and each
/// connection past it waited for the client's SYN retransmit: a second (the kernel still caps
/// this at `net.core.somaxconn`).
pub const LISTEN_BACKLOG: u32 = 1024;

/// A listener on 127.0.0.1:`port` (0: any free port) with a [`LISTEN_BACKLOG`] queue.
pub fn listen(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    // As tokio's own `bind`: a port of a simulator just stopped can be taken again at once.
    socket.set_reuseaddr(true)?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    /// 300 connections opened before the simulator accepts any: all are queued at once (with
    /// the default queue of 128, the rest would wait a second for the SYN to be sent again).
    #[tokio::test]
    async fn a_burst_of_connections_waits_in_the_listen_queue_not_for_retransmits() {
        let cap: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if cap < 300 {
            eprintln!("skipped: net.core.somaxconn is {cap}, the kernel caps the queue below 300");
            return;
        }
        let listener = super::listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let connects = (0..300).map(|_| {
            tokio::time::timeout(
                std::time::Duration::from_millis(500),
                tokio::net::TcpStream::connect(addr),
            )
        });
        let done = futures::future::join_all(connects).await;
        let queued = done.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
        assert_eq!(queued, 300, "connections queued without an accept");
        drop(listener);
    }
}
