//! Shared simulator state: Focus jobs, faults, the timer schedule and the Kubernetes store.
//!
//! Everything is evaluated against a monotonic `Instant`. Every request first calls
//! [`State::advance`], which applies all scheduled transitions that are due, in order and with
//! their scheduled timestamps; a background task does the same at each deadline so that watches
//! see changes on time even without requests.

use super::clock::{self, Clock};
use super::objects::{self as obj, Meta};
use super::store::{Kind, Store};
use super::SimConfig;
use chrono::NaiveDateTime;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use tokio::time::Instant;

/// Highest channel index of the simulated fiber.
pub const MAX_CHANNEL: i64 = 2499;
/// Pulse repetition rate of the simulated fiber (Hz).
pub const PRR: u32 = 1000;
/// Nyquist frequency (Hz) = PRR / 2.
pub const NYQUIST: u32 = 500;
/// Accepted NFFT sizes.
pub const NFFT_ALLOWED: [i64; 10] = [128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];
/// Cleanup job: CPU reading period, idle threshold, consecutive idle readings.
pub const CLEANUP_PERIOD_SECS: f64 = 10.0;
pub const CLEANUP_THRESHOLD_MILLICORES: u32 = 4;
pub const CLEANUP_IDLE_COUNT: u32 = 5;
pub const CLEANUP_TTL_SECS: f64 = 10.0;
/// Names of the simulated GPU nodes.
pub const NODES: [&str; 2] = ["gpu-node-1", "gpu-node-2"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Live,
    Historic,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Historic => "historic",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Recording {
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
}

impl Recording {
    pub fn to_json(&self) -> Value {
        json!({"start_time": clock::format_focus_time(&self.start), "end_time": clock::format_focus_time(&self.end)})
    }
}

/// Injected faults (all changeable through `/sim/faults`).
#[derive(Clone, Debug)]
pub struct Faults {
    pub live_data: bool,
    /// `None` = the default recording.
    pub recordings: Option<Vec<Recording>>,
    pub occupied_ports: Vec<u16>,
    pub capacity: usize,
    pub fail_next_jobs: u64,
    pub consumer_never_ready: bool,
    pub slow_responses_ms: u64,
    /// Consumer readiness drawn uniformly from this range (real-world seconds) instead of the
    /// default distribution: e.g. `[20, 40]` makes readiness slower than the 30 s requirement.
    pub consumer_delay_s: Option<(f64, f64)>,
    /// The next `requests` Kubernetes API requests answer 429 with `Retry-After: retry_after_s`
    /// (real seconds: the header has whole-second resolution, so it is not time-scaled).
    pub kube_throttle: Option<KubeThrottle>,
    /// Focus API connections accepted while this is set are closed after sitting idle this long
    /// (real-world seconds, scaled), without a word, as a proxy's or server's keep-alive
    /// timeout does (nginx `keepalive_timeout` 75 s, cloud load balancers 60 s).
    pub idle_close_s: Option<f64>,
    /// The next N Focus API responses (not `/sim`) break off in the middle of their body: the
    /// head and half the body are sent, then the connection is closed.
    pub reset_responses: u64,
    /// `POST /configure` takes a time drawn uniformly from this range (real-world seconds)
    /// instead of the modelled ~0.2-0.35 s: e.g. `[2, 4]` makes `p95(configure) < 2s` fail.
    pub configure_delay_s: Option<(f64, f64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KubeThrottle {
    pub requests: u64,
    pub retry_after_s: u64,
}

pub const FAULT_KEYS: [&str; 12] = [
    "live_data",
    "recordings",
    "occupied_ports",
    "capacity",
    "fail_next_jobs",
    "consumer_never_ready",
    "slow_responses_ms",
    "consumer_delay_s",
    "kube_throttle",
    "idle_close_s",
    "reset_responses",
    "configure_delay_s",
];

/// A fault's `[min, max]` seconds (0 <= min <= max <= 3600), or `null` for none.
fn seconds_range(key: &str, v: &Value) -> Result<Option<(f64, f64)>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let bad = || format!("{key} must be [min, max] seconds with 0 <= min <= max <= 3600, or null");
    let arr = v.as_array().filter(|a| a.len() == 2).ok_or_else(bad)?;
    let lo = arr[0].as_f64().ok_or_else(bad)?;
    let hi = arr[1].as_f64().ok_or_else(bad)?;
    if !(0.0..=3600.0).contains(&lo) || !(lo..=3600.0).contains(&hi) {
        return Err(bad());
    }
    Ok(Some((lo, hi)))
}

impl Faults {
    pub fn defaults(cfg: &SimConfig) -> Self {
        Faults {
            live_data: true,
            recordings: None,
            occupied_ports: Vec::new(),
            capacity: cfg.capacity,
            fail_next_jobs: 0,
            consumer_never_ready: false,
            slow_responses_ms: 0,
            consumer_delay_s: None,
            kube_throttle: None,
            idle_close_s: None,
            reset_responses: 0,
            configure_delay_s: None,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "live_data": self.live_data,
            "recordings": self.recordings.as_ref().map(|r| r.iter().map(Recording::to_json).collect::<Vec<_>>()),
            "occupied_ports": self.occupied_ports,
            "capacity": self.capacity,
            "fail_next_jobs": self.fail_next_jobs,
            "consumer_never_ready": self.consumer_never_ready,
            "slow_responses_ms": self.slow_responses_ms,
            "consumer_delay_s": self.consumer_delay_s.map(|(lo, hi)| [lo, hi]),
            "kube_throttle": self.kube_throttle.map(|t| json!({"requests": t.requests, "retry_after_s": t.retry_after_s})),
            "idle_close_s": self.idle_close_s,
            "reset_responses": self.reset_responses,
            "configure_delay_s": self.configure_delay_s.map(|(lo, hi)| [lo, hi]),
        })
    }

    /// Merge a `/sim/faults` body into a copy of these faults. Errors name the offending key.
    pub fn merged(&self, body: &Value) -> Result<Faults, String> {
        let map = body
            .as_object()
            .ok_or_else(|| "faults body must be a JSON object".to_string())?;
        let mut f = self.clone();
        for (k, v) in map {
            match k.as_str() {
                "live_data" => f.live_data = v.as_bool().ok_or("live_data must be a boolean")?,
                "consumer_never_ready" => {
                    f.consumer_never_ready = v
                        .as_bool()
                        .ok_or("consumer_never_ready must be a boolean")?
                }
                "capacity" => {
                    f.capacity = v
                        .as_u64()
                        .ok_or("capacity must be a non-negative integer")?
                        as usize
                }
                "fail_next_jobs" => {
                    f.fail_next_jobs = v
                        .as_u64()
                        .ok_or("fail_next_jobs must be a non-negative integer")?
                }
                "slow_responses_ms" => {
                    let ms = v
                        .as_u64()
                        .ok_or("slow_responses_ms must be a non-negative integer")?;
                    if ms > 600_000 {
                        return Err("slow_responses_ms must be <= 600000".into());
                    }
                    f.slow_responses_ms = ms;
                }
                "consumer_delay_s" => f.consumer_delay_s = seconds_range(k, v)?,
                "configure_delay_s" => f.configure_delay_s = seconds_range(k, v)?,
                "idle_close_s" => {
                    let bad =
                        "idle_close_s must be a number of seconds with 0 < s <= 3600, or null";
                    f.idle_close_s = if v.is_null() {
                        None
                    } else {
                        let s = v.as_f64().ok_or(bad)?;
                        if !(s > 0.0 && s <= 3600.0) {
                            return Err(bad.into());
                        }
                        Some(s)
                    };
                }
                "reset_responses" => {
                    let n = v
                        .as_u64()
                        .ok_or("reset_responses must be a non-negative integer")?;
                    if n > 1_000_000 {
                        return Err("reset_responses must be <= 1000000".into());
                    }
                    f.reset_responses = n;
                }
                "kube_throttle" => {
                    f.kube_throttle = if v.is_null() {
                        None
                    } else {
                        let bad = "kube_throttle must be {requests: N, retry_after_s: S} with N <= 1000 and S <= 60, or null";
                        let o = v.as_object().ok_or(bad)?;
                        if o.keys().any(|k| k != "requests" && k != "retry_after_s") {
                            return Err(bad.into());
                        }
                        let requests = o.get("requests").and_then(Value::as_u64).ok_or(bad)?;
                        let retry_after_s = match o.get("retry_after_s") {
                            None => 1,
                            Some(s) => s.as_u64().ok_or(bad)?,
                        };
                        if requests > 1000 || retry_after_s > 60 {
                            return Err(bad.into());
                        }
                        Some(KubeThrottle {
                            requests,
                            retry_after_s,
                        })
                    };
                }
                "occupied_ports" => {
                    let arr = v
                        .as_array()
                        .ok_or("occupied_ports must be an array of ports")?;
                    let mut ports = Vec::new();
                    for p in arr {
                        match p.as_u64() {
                            Some(n) if (1..=65535).contains(&n) => ports.push(n as u16),
                            _ => {
                                return Err(format!(
                                    "occupied_ports: {p} is not a valid port (1-65535)"
                                ))
                            }
                        }
                    }
                    ports.sort_unstable();
                    ports.dedup();
                    f.occupied_ports = ports;
                }
                "recordings" => {
                    if v.is_null() {
                        f.recordings = None;
                    } else {
                        let arr = v.as_array().ok_or(
                            "recordings must be an array of {start_time, end_time} or null",
                        )?;
                        let mut recs = Vec::new();
                        for (i, r) in arr.iter().enumerate() {
                            let get = |field: &str| -> Result<NaiveDateTime, String> {
                                let s = r.get(field).and_then(Value::as_str).ok_or_else(|| {
                                    format!("recordings[{i}].{field} must be a yymmddHHMMSS string")
                                })?;
                                clock::parse_focus_time(s)
                                    .ok_or_else(|| format!("recordings[{i}].{field}: '{s}' is not a valid yymmddHHMMSS time"))
                            };
                            let start = get("start_time")?;
                            let end = get("end_time")?;
                            if end <= start {
                                return Err(format!(
                                    "recordings[{i}]: end_time must be after start_time"
                                ));
                            }
                            recs.push(Recording { start, end });
                        }
                        f.recordings = Some(recs);
                    }
                }
                other => {
                    return Err(format!(
                        "unknown fault key '{other}' (allowed: {})",
                        FAULT_KEYS.join(", ")
                    ));
                }
            }
        }
        Ok(f)
    }
}

/// A validated configuration, ready to open a job.
#[derive(Clone, Debug)]
pub struct ValidConfig {
    pub mode: Mode,
    pub start: Option<NaiveDateTime>,
    pub end: Option<NaiveDateTime>,
    /// The accepted configuration, with canonical field names.
    pub config: Value,
}

/// One Focus job (investigation).
#[derive(Debug)]
pub struct Job {
    pub id: String,
    pub seq: u64,
    pub mode: Mode,
    pub config: Value,
    pub port: u16,
    pub created: Instant,
    pub consumer_delay_ms: u64,
    pub consumer_ready_at: Option<Instant>,
    pub pod_start_at: Instant,
    pub cleanup_start_at: Instant,
    pub will_fail: bool,
    pub failed_at: Option<Instant>,
    pub cancelled_at: Option<Instant>,
    pub analyzer_lost_at: Option<Instant>,
    pub idle_since: Option<Instant>,
    pub cleanup_fire_at: Option<Instant>,
    pub analyzer_deleted_at: Option<Instant>,
    pub cleanup_completed_at: Option<Instant>,
    pub cleanup_deleted_at: Option<Instant>,
    pub busy_cpu: u32,
    pub idle_cpu: u32,
    pub node: usize,
    pub analyzer_job: String,
    pub analyzer_job_uid: String,
    pub analyzer_pod: String,
    pub cleanup_job: String,
    pub cleanup_job_uid: String,
    pub cleanup_pod: String,
    /// Whether the analyzer runs where it runs: always in the simulator's own cluster; on a real
    /// cluster (`SimConfig::kubernetes`) only once its pod was seen Running there
    /// ([`State::cluster_pod_running`]). The consumer is not ready before.
    pub analyzer_running: bool,
    rng: StdRng,
}

impl Job {
    pub fn is_open(&self) -> bool {
        self.cancelled_at.is_none()
    }

    pub fn status(&self, now: Instant) -> &'static str {
        if self.cancelled_at.is_some() {
            "cancelled"
        } else if self.failed_at.is_some_and(|t| t <= now) || self.analyzer_lost_at.is_some() {
            "failed"
        } else if self.consumer_ready_at.is_some_and(|t| t <= now) && self.analyzer_running {
            "running"
        } else {
            "configured"
        }
    }

    pub fn consumer_ready(&self, now: Instant) -> bool {
        self.status(now) == "running"
    }
}

#[derive(Clone, Copy, Debug)]
enum Action {
    PodStart(u64),
    CleanupPodStart(u64),
    CleanupFire(u64),
    CleanupTtl(u64),
}

/// Errors the Focus API answers with (status, detail).
pub type ApiError = (u16, String);

pub struct State {
    pub cfg: SimConfig,
    pub clock: Clock,
    rng: StdRng,
    aux_rng: StdRng,
    /// Draws the modelled latency of each request; a stream of its own, so that latencies
    /// leave every other draw (delays, names, uids) as it was.
    latency_rng: StdRng,
    pub faults: Faults,
    next_seq: u64,
    jobs: BTreeMap<u64, Job>,
    open_ports: BTreeSet<u16>,
    open_count: usize,
    schedule: BTreeMap<(Instant, u64), Action>,
    sched_seq: u64,
    pub store: Store,
    default_recording: Recording,
    node_uids: Vec<String>,
    event_seq: u64,
    /// What the Kubernetes API was asked, for `/sim/state` (how many polls vs one watch).
    pub kube_api: KubeApiStats,
}

/// Kubernetes API requests seen by the simulator, by verb.
#[derive(Debug, Default)]
pub struct KubeApiStats {
    pub requests: u64,
    pub by_verb: BTreeMap<&'static str, u64>,
    pub throttled: u64,
    /// When the last 429 was answered; the next request's gap shows whether the client waited.
    last_throttled: Option<Instant>,
    /// The shortest time between a 429 and the next request (ms, real time).
    pub min_retry_gap_ms: Option<u64>,
}

impl KubeApiStats {
    /// Counts a request; with a throttle fault pending, answers `Some(retry_after_s)` (429).
    pub fn admit(&mut self, verb: &'static str, faults: &mut Faults, now: Instant) -> Option<u64> {
        self.requests += 1;
        *self.by_verb.entry(verb).or_default() += 1;
        if let Some(t) = self.last_throttled.take() {
            let gap = now.saturating_duration_since(t).as_millis() as u64;
            self.min_retry_gap_ms = Some(self.min_retry_gap_ms.map_or(gap, |m| m.min(gap)));
        }
        let th = faults.kube_throttle.as_mut()?;
        if th.requests == 0 {
            return None;
        }
        th.requests -= 1;
        let after = th.retry_after_s;
        if th.requests == 0 {
            faults.kube_throttle = None;
        }
        self.throttled += 1;
        self.last_throttled = Some(now);
        Some(after)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "by_verb": self.by_verb,
            "throttled": self.throttled,
            "min_retry_gap_ms": self.min_retry_gap_ms,
        })
    }
}

/// Mixed into the seed of the latency draws (any constant: a stream apart from the others).
const LATENCY_STREAM: u64 = 0x6c61_7465_6e63_7921;

/// Modelled time (real-world seconds, [min, max]) the Focus Server takes to answer, from the
/// stage timings of the sources: configure ~0.2 s plus the DB write ~0.1 s, disconnect ~0.1 s;
/// reads are answered from memory in milliseconds. The health probe answers at once: it does no
/// work, and it is what load balancers and the side-by-side benchmarks (`scripts/peers.sh`) hit.
pub fn focus_latency_range(method: &http::Method, path: &str) -> (f64, f64) {
    match (method.as_str(), path) {
        ("GET", "/health") => (0.0, 0.0),
        ("POST", "/configure") => (0.2, 0.35),
        ("DELETE", p) if p.starts_with("/job/") => (0.05, 0.12),
        _ => (0.003, 0.02),
    }
}

/// Modelled time a Kubernetes API server takes to answer a request (real-world seconds).
pub const KUBE_LATENCY: (f64, f64) = (0.002, 0.01);

impl State {
    /// The time this Focus API request takes (real-world, before time scaling): the modelled
    /// latency, or the `configure_delay_s` fault's range for `POST /configure`.
    pub fn focus_latency(&mut self, method: &http::Method, path: &str) -> f64 {
        let (lo, hi) = match self.faults.configure_delay_s {
            Some(r) if method == http::Method::POST && path == "/configure" => r,
            _ => focus_latency_range(method, path),
        };
        clock::uniform(&mut self.latency_rng, lo, hi)
    }

    /// The time a Kubernetes API request takes (real-world, before time scaling).
    pub fn kube_latency(&mut self) -> f64 {
        clock::uniform(&mut self.latency_rng, KUBE_LATENCY.0, KUBE_LATENCY.1)
    }

    pub fn new(cfg: SimConfig, clock: Clock, store: Store) -> Self {
        let cfg_seed = cfg.seed;
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let aux_rng = clock::child_rng(&mut rng);
        let start = clock.start_wall.naive_utc();
        let default_recording = Recording {
            start: start - chrono::Duration::days(30),
            end: start - chrono::Duration::seconds(60),
        };
        let faults = Faults::defaults(&cfg);
        let mut st = State {
            cfg,
            clock,
            rng,
            aux_rng,
            latency_rng: StdRng::seed_from_u64(cfg_seed ^ LATENCY_STREAM),
            faults,
            next_seq: 1,
            jobs: BTreeMap::new(),
            open_ports: BTreeSet::new(),
            open_count: 0,
            schedule: BTreeMap::new(),
            sched_seq: 0,
            store,
            default_recording,
            node_uids: Vec::new(),
            event_seq: 0,
            kube_api: KubeApiStats::default(),
        };
        st.create_cluster_objects();
        st
    }

    fn create_cluster_objects(&mut self) {
        let created_wall = (self.clock.start_wall - chrono::Duration::days(40))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let per_node = node_split(self.faults.capacity, NODES.len());
        for (i, name) in NODES.iter().enumerate() {
            let uid = clock::uuid(&mut self.aux_rng);
            self.node_uids.push(uid.clone());
            let ip = format!("10.20.0.{}", 11 + i);
            self.store.create(
                Kind::Node,
                obj::node(name, &uid, &created_wall, per_node[i], &ip),
            );
        }
        let mut namespaces = vec![
            "default".to_string(),
            "kube-system".to_string(),
            self.cfg.namespace.clone(),
        ];
        namespaces.sort();
        namespaces.dedup();
        for ns in namespaces {
            let uid = clock::uuid(&mut self.aux_rng);
            self.store
                .create(Kind::Namespace, obj::namespace(&ns, &uid, &created_wall));
        }
    }

    fn update_node_capacity(&mut self) {
        let per_node = node_split(self.faults.capacity, NODES.len());
        for (i, name) in NODES.iter().enumerate() {
            let want = per_node[i].to_string();
            let current = self
                .store
                .get(Kind::Node, "", name)
                .and_then(|n| n.pointer("/status/allocatable"))
                .and_then(|a| a.get(obj::GPU_RESOURCE))
                .and_then(Value::as_str)
                .map(str::to_string);
            if current.as_deref() != Some(want.as_str()) {
                self.store.modify(Kind::Node, "", name, |n| {
                    n["status"]["capacity"][obj::GPU_RESOURCE] = json!(want);
                    n["status"]["allocatable"][obj::GPU_RESOURCE] = json!(want);
                });
            }
        }
    }

    pub fn open_count(&self) -> usize {
        self.open_count
    }

    pub fn recordings(&self) -> Vec<Recording> {
        match &self.faults.recordings {
            None => vec![self.default_recording.clone()],
            Some(r) => r.clone(),
        }
    }

    /// Whether the union of recordings fully covers [start, end].
    pub fn covered(&self, start: NaiveDateTime, end: NaiveDateTime) -> bool {
        let mut recs = self.recordings();
        recs.sort_by_key(|r| r.start);
        let mut reach = start;
        for r in recs {
            if r.start > reach {
                break;
            }
            if r.end > reach {
                reach = r.end;
            }
            if reach >= end {
                return true;
            }
        }
        reach >= end
    }

    /// Recordings overlapping [start, end], clipped to it.
    pub fn overlap(&self, start: NaiveDateTime, end: NaiveDateTime) -> Vec<Recording> {
        let mut recs: Vec<Recording> = self
            .recordings()
            .into_iter()
            .filter(|r| r.start < end && r.end > start)
            .map(|r| Recording {
                start: r.start.max(start),
                end: r.end.min(end),
            })
            .collect();
        recs.sort_by_key(|r| r.start);
        recs
    }

    pub fn set_faults(&mut self, f: Faults) {
        self.faults = f;
        self.update_node_capacity();
    }

    // ---------------------------------------------------------------- jobs

    /// Parse "<instance>-<seq>".
    fn seq_of(&self, id: &str) -> Option<u64> {
        let (inst, seq) = id.split_once('-')?;
        if inst != self.cfg.instance.to_string() {
            return None;
        }
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) || seq.starts_with('0') {
            return None;
        }
        seq.parse().ok()
    }

    pub fn job(&self, id: &str) -> Option<&Job> {
        self.jobs.get(&self.seq_of(id)?)
    }

    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    fn free_port(&self) -> Option<u16> {
        let (lo, hi) = self.cfg.port_range;
        (lo..=hi).find(|p| {
            !self.open_ports.contains(p) && self.faults.occupied_ports.binary_search(p).is_err()
        })
    }

    fn schedule(&mut self, at: Instant, action: Action) {
        self.sched_seq += 1;
        self.schedule.insert((at, self.sched_seq), action);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.schedule.keys().next().map(|(t, _)| *t)
    }

    /// Open a job: data availability, capacity and port checks, then the Kubernetes objects.
    pub fn configure(&mut self, v: ValidConfig, now: Instant) -> Result<Value, ApiError> {
        match v.mode {
            Mode::Live => {
                if !self.faults.live_data {
                    return Err((404, "No live data: the live stream is not available".into()));
                }
            }
            Mode::Historic => {
                if let (Some(s), Some(e)) = (v.start, v.end) {
                    if !self.covered(s, e) {
                        return Err((
                            404,
                            format!(
                                "No historic data: no recordings cover {}..{}",
                                clock::format_focus_time(&s),
                                clock::format_focus_time(&e)
                            ),
                        ));
                    }
                }
            }
        }
        if self.open_count >= self.faults.capacity {
            return Err((
                503,
                format!(
                    "Capacity reached: {} concurrent jobs are open",
                    self.faults.capacity
                ),
            ));
        }
        let port = self.free_port().ok_or_else(|| {
            (
                503,
                format!(
                    "No free stream port in {}-{}",
                    self.cfg.port_range.0, self.cfg.port_range.1
                ),
            )
        })?;

        let seq = self.next_seq;
        self.next_seq += 1;
        let id = format!("{}-{}", self.cfg.instance, seq);

        // Draws from the main RNG, in a fixed order.
        let mut consumer_secs = clock::consumer_delay_secs(&mut self.rng);
        if let Some((lo, hi)) = self.faults.consumer_delay_s {
            // The same draw, mapped onto the fault's range.
            consumer_secs =
                lo + (hi - lo) * (consumer_secs - 1.0) / (clock::CONSUMER_TAIL_MAX_SECS - 1.0);
        }
        let pod_secs = clock::uniform(&mut self.rng, 1.0, 5.0);
        let cleanup_secs = clock::uniform(&mut self.rng, 1.0, 5.0);
        let mut rng = clock::child_rng(&mut self.rng);

        let will_fail = self.faults.fail_next_jobs > 0;
        if will_fail {
            self.faults.fail_next_jobs -= 1;
        }
        let consumer_delay_ms = (consumer_secs * 1000.0).round() as u64;
        let consumer_ready_at = if will_fail || self.faults.consumer_never_ready {
            None
        } else {
            Some(now + self.clock.scaled(consumer_delay_ms as f64 / 1000.0))
        };
        let analyzer_job = format!("baby-analyzer-{id}");
        let cleanup_job = format!("cleanup-job-{id}");
        let job = Job {
            id: id.clone(),
            seq,
            mode: v.mode,
            config: v.config,
            port,
            created: now,
            consumer_delay_ms,
            consumer_ready_at,
            pod_start_at: now + self.clock.scaled(pod_secs),
            cleanup_start_at: now + self.clock.scaled(cleanup_secs),
            will_fail,
            failed_at: None,
            cancelled_at: None,
            analyzer_lost_at: None,
            idle_since: None,
            cleanup_fire_at: None,
            analyzer_deleted_at: None,
            cleanup_completed_at: None,
            cleanup_deleted_at: None,
            busy_cpu: rng.random_range(150..=900),
            idle_cpu: rng.random_range(0..=CLEANUP_THRESHOLD_MILLICORES),
            node: ((seq - 1) % NODES.len() as u64) as usize,
            analyzer_pod: format!("{analyzer_job}-{}", clock::k8s_suffix(&mut rng, 5)),
            analyzer_job_uid: clock::uuid(&mut rng),
            analyzer_job,
            cleanup_pod: format!("{cleanup_job}-{}", clock::k8s_suffix(&mut rng, 5)),
            cleanup_job_uid: clock::uuid(&mut rng),
            cleanup_job,
            analyzer_running: self.cfg.kubernetes.is_none(),
            rng,
        };
        let (pod_start_at, cleanup_start_at) = (job.pod_start_at, job.cleanup_start_at);
        self.open_ports.insert(port);
        self.open_count += 1;
        self.jobs.insert(seq, job);
        self.create_job_objects(seq, now);
        self.schedule(pod_start_at, Action::PodStart(seq));
        self.schedule(cleanup_start_at, Action::CleanupPodStart(seq));
        Ok(json!({
            "job_id": id,
            "status": "configured",
            "stream_url": self.cfg.stream_ip,
            "stream_port": port,
        }))
    }

    /// On a real cluster: the analyzer pod of job `id` was seen Running there.
    pub fn cluster_pod_running(&mut self, id: &str) {
        if let Some(job) = self.seq_of(id).and_then(|seq| self.jobs.get_mut(&seq)) {
            job.analyzer_running = true;
        }
    }

    /// On a real cluster: the analyzer Job of job `id` failed there (whether or not a
    /// `fail_next_jobs` fault planned it): the job is failed from now on, and idle.
    pub fn cluster_job_failed(&mut self, id: &str, now: Instant) {
        let Some(seq) = self.seq_of(id) else { return };
        let Some(job) = self.jobs.get_mut(&seq) else {
            return;
        };
        if job.is_open() && job.failed_at.is_none() {
            job.failed_at = Some(now);
            self.mark_idle(seq, now);
        }
    }

    /// Cancel (client disconnect). The job stops counting as open immediately.
    pub fn cancel(&mut self, id: &str, now: Instant) -> Result<Value, ApiError> {
        let unknown = || (404, format!("Unknown job_id {id}"));
        let seq = self.seq_of(id).ok_or_else(unknown)?;
        let job = self.jobs.get_mut(&seq).ok_or_else(unknown)?;
        if job.cancelled_at.is_some() {
            return Err(unknown());
        }
        job.cancelled_at = Some(now);
        let port = job.port;
        let (ns, pod, idle) = (
            self.cfg.namespace.clone(),
            job.analyzer_pod.clone(),
            job.idle_cpu,
        );
        self.open_ports.remove(&port);
        self.open_count = self.open_count.saturating_sub(1);
        // The analyzer's CPU drops once nobody consumes its stream.
        let running = self
            .store
            .get(Kind::Pod, &ns, &pod)
            .and_then(|p| p.pointer("/status/phase"))
            .is_some_and(|p| p == "Running");
        if running {
            self.store.modify(Kind::Pod, &ns, &pod, |p| {
                p["metadata"]["annotations"][obj::CPU_ANNOTATION] = json!(idle.to_string());
            });
        }
        self.mark_idle(seq, now);
        Ok(json!({"job_id": id, "status": "cancelled"}))
    }

    /// Clear all jobs and Kubernetes job objects, restore default faults. Sequence continues.
    pub fn reset(&mut self) {
        self.jobs.clear();
        self.open_ports.clear();
        self.open_count = 0;
        self.schedule.clear();
        self.store.delete_all(&[Kind::Job, Kind::Pod, Kind::Event]);
        self.faults = Faults::defaults(&self.cfg);
        // `kube_api` counts on: it measures the client, not the simulated world.
        self.update_node_capacity();
    }

    /// The analyzer became idle (cancel, failure, loss): schedule the cleanup's 5th idle reading.
    fn mark_idle(&mut self, seq: u64, t: Instant) {
        let period = self.clock.scaled(CLEANUP_PERIOD_SECS);
        let Some(job) = self.jobs.get_mut(&seq) else {
            return;
        };
        if job.idle_since.is_some() {
            return;
        }
        job.idle_since = Some(t);
        let cs = job.cleanup_start_at;
        let fire = if period.is_zero() {
            t.max(cs)
        } else {
            let p = period.as_secs_f64();
            let since = t.saturating_duration_since(cs).as_secs_f64();
            let k1 = (since / p).ceil().max(1.0);
            cs + period.mul_f64(k1 + f64::from(CLEANUP_IDLE_COUNT - 1))
        };
        job.cleanup_fire_at = Some(fire);
        self.schedule(fire, Action::CleanupFire(seq));
    }

    // ---------------------------------------------------------------- time

    /// Apply every scheduled transition due at or before `now`.
    pub fn advance(&mut self, now: Instant) {
        while let Some(entry) = self.schedule.first_entry() {
            let (at, _) = *entry.key();
            if at > now {
                break;
            }
            let action = entry.remove();
            self.apply(action, at);
        }
    }

    fn apply(&mut self, action: Action, at: Instant) {
        match action {
            Action::PodStart(seq) => self.on_pod_start(seq, at),
            Action::CleanupPodStart(seq) => self.on_cleanup_pod_start(seq, at),
            Action::CleanupFire(seq) => self.on_cleanup_fire(seq, at),
            Action::CleanupTtl(seq) => self.on_cleanup_ttl(seq, at),
        }
    }

    fn emit_event(&mut self, seq: u64, at: Instant, ev: EventArgs) {
        let ns = self.cfg.namespace.clone();
        let ts = self.clock.k8s_time(at);
        self.event_seq += 1;
        let nanos = self
            .clock
            .wall(at)
            .timestamp_nanos_opt()
            .unwrap_or(0)
            .max(0) as u64;
        let name = format!(
            "{}.{:x}",
            ev.involved_name,
            nanos.wrapping_add(self.event_seq)
        );
        let Some(job) = self.jobs.get_mut(&seq) else {
            return;
        };
        let uid = clock::uuid(&mut job.rng);
        let host = ev.host.map(|i| NODES[i % NODES.len()]);
        let e = obj::event(&obj::EventSpec {
            name: &name,
            namespace: &ns,
            uid: &uid,
            at: &ts,
            involved_kind: ev.kind,
            involved_api_version: if ev.kind == "Job" { "batch/v1" } else { "v1" },
            involved_name: &ev.involved_name,
            involved_uid: &ev.involved_uid,
            reason: ev.reason,
            message: &ev.message,
            warning: ev.warning,
            component: ev.component,
            host,
        });
        self.store.create(Kind::Event, e);
    }

    fn create_job_objects(&mut self, seq: u64, now: Instant) {
        let ns = self.cfg.namespace.clone();
        let ts = self.clock.k8s_time(now);
        let Some(job) = self.jobs.get_mut(&seq) else {
            return;
        };
        let a = obj::AnalyzerSpec {
            job_id: &job.id,
            port: job.port,
        };
        let node = NODES[job.node];
        let host_ip = format!("10.20.0.{}", 11 + job.node);
        let apod_uid = clock::uuid(&mut job.rng);
        let cpod_uid = clock::uuid(&mut job.rng);
        let ajob = obj::analyzer_job(
            &Meta {
                name: &job.analyzer_job,
                namespace: &ns,
                uid: &job.analyzer_job_uid,
                created: &ts,
            },
            &a,
        );
        let apod = obj::analyzer_pod(
            &Meta {
                name: &job.analyzer_pod,
                namespace: &ns,
                uid: &apod_uid,
                created: &ts,
            },
            &a,
            &obj::PodOwner {
                job_name: &job.analyzer_job,
                job_uid: &job.analyzer_job_uid,
            },
            node,
            &host_ip,
        );
        let cjob = obj::cleanup_job(
            &Meta {
                name: &job.cleanup_job,
                namespace: &ns,
                uid: &job.cleanup_job_uid,
                created: &ts,
            },
            &job.id,
        );
        let cpod = obj::cleanup_pod(
            &Meta {
                name: &job.cleanup_pod,
                namespace: &ns,
                uid: &cpod_uid,
                created: &ts,
            },
            &job.id,
            &obj::PodOwner {
                job_name: &job.cleanup_job,
                job_uid: &job.cleanup_job_uid,
            },
            node,
            &host_ip,
        );
        let (an, ap, cn, cp, ajuid, cjuid, nodei) = (
            job.analyzer_job.clone(),
            job.analyzer_pod.clone(),
            job.cleanup_job.clone(),
            job.cleanup_pod.clone(),
            job.analyzer_job_uid.clone(),
            job.cleanup_job_uid.clone(),
            job.node,
        );
        self.store.create(Kind::Job, ajob);
        self.store.create(Kind::Pod, apod);
        self.store.create(Kind::Job, cjob);
        self.store.create(Kind::Pod, cpod);
        for (jname, juid, pname, puid) in
            [(&an, &ajuid, &ap, &apod_uid), (&cn, &cjuid, &cp, &cpod_uid)]
        {
            self.emit_event(
                seq,
                now,
                EventArgs {
                    kind: "Job",
                    involved_name: jname.clone(),
                    involved_uid: juid.clone(),
                    reason: "SuccessfulCreate",
                    message: format!("Created pod: {pname}"),
                    warning: false,
                    component: "job-controller",
                    host: None,
                },
            );
            self.emit_event(
                seq,
                now,
                EventArgs {
                    kind: "Pod",
                    involved_name: pname.clone(),
                    involved_uid: puid.clone(),
                    reason: "Scheduled",
                    message: format!("Successfully assigned {ns}/{pname} to {}", NODES[nodei]),
                    warning: false,
                    component: "default-scheduler",
                    host: None,
                },
            );
        }
    }

    fn pod_uid(&self, pod: &str) -> String {
        self.store
            .get(Kind::Pod, &self.cfg.namespace, pod)
            .and_then(|p| p.pointer("/metadata/uid"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    fn container_started_events(
        &mut self,
        seq: u64,
        at: Instant,
        pod: &str,
        container: &str,
        image: &str,
        node: usize,
    ) {
        let uid = self.pod_uid(pod);
        for (reason, message) in [
            (
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            ),
            ("Created", format!("Created container: {container}")),
            ("Started", format!("Started container {container}")),
        ] {
            self.emit_event(
                seq,
                at,
                EventArgs {
                    kind: "Pod",
                    involved_name: pod.to_string(),
                    involved_uid: uid.clone(),
                    reason,
                    message,
                    warning: false,
                    component: "kubelet",
                    host: Some(node),
                },
            );
        }
    }

    fn on_pod_start(&mut self, seq: u64, at: Instant) {
        let ns = self.cfg.namespace.clone();
        let ts = self.clock.k8s_time(at);
        let Some(job) = self.jobs.get_mut(&seq) else {
            return;
        };
        let (pod, ajob, ajob_uid, node, will_fail) = (
            job.analyzer_pod.clone(),
            job.analyzer_job.clone(),
            job.analyzer_job_uid.clone(),
            job.node,
            job.will_fail,
        );
        let cpu = if job.cancelled_at.is_some() {
            job.idle_cpu
        } else {
            job.busy_cpu
        };
        let pod_ip = format!("10.244.{}.{}", job.node + 1, (seq % 250) + 2);
        let cid = clock::hex(&mut job.rng, 64);
        if !self.store.contains(Kind::Pod, &ns, &pod) {
            return;
        }
        self.container_started_events(
            seq,
            at,
            &pod,
            "baby-analyzer",
            "focus/baby-analyzer:sim",
            node,
        );
        if will_fail {
            if let Some(job) = self.jobs.get_mut(&seq) {
                job.failed_at = Some(at);
            }
            self.store.modify(Kind::Pod, &ns, &pod, |p| {
                obj::pod_running(p, &ts, &pod_ip, &cid);
                obj::pod_terminated(p, &ts, &ts, 1, &cid);
            });
            self.store
                .modify(Kind::Job, &ns, &ajob, |j| obj::job_failed(j, &ts));
            let puid = self.pod_uid(&pod);
            self.emit_event(
                seq,
                at,
                EventArgs {
                    kind: "Pod",
                    involved_name: pod.clone(),
                    involved_uid: puid,
                    reason: "Failed",
                    message: "Error: container baby-analyzer terminated with exit code 1".into(),
                    warning: true,
                    component: "kubelet",
                    host: Some(node),
                },
            );
            self.emit_event(
                seq,
                at,
                EventArgs {
                    kind: "Job",
                    involved_name: ajob.clone(),
                    involved_uid: ajob_uid,
                    reason: "BackoffLimitExceeded",
                    message: "Job has reached the specified backoff limit".into(),
                    warning: true,
                    component: "job-controller",
                    host: None,
                },
            );
            self.mark_idle(seq, at);
        } else {
            self.store.modify(Kind::Pod, &ns, &pod, |p| {
                obj::pod_running(p, &ts, &pod_ip, &cid);
                p["metadata"]["annotations"][obj::CPU_ANNOTATION] = json!(cpu.to_string());
            });
            self.store.modify(Kind::Job, &ns, &ajob, obj::job_ready);
        }
    }

    fn on_cleanup_pod_start(&mut self, seq: u64, at: Instant) {
        let ns = self.cfg.namespace.clone();
        let ts = self.clock.k8s_time(at);
        let Some(job) = self.jobs.get_mut(&seq) else {
            return;
        };
        let (pod, cjob, node) = (job.cleanup_pod.clone(), job.cleanup_job.clone(), job.node);
        let pod_ip = format!("10.244.{}.{}", job.node + 1, (seq % 250) + 3);
        let cid = clock::hex(&mut job.rng, 64);
        if !self.store.contains(Kind::Pod, &ns, &pod) {
            return;
        }
        self.container_started_events(seq, at, &pod, "cleanup", "focus/cleanup-job:sim", node);
        self.store.modify(Kind::Pod, &ns, &pod, |p| {
            obj::pod_running(p, &ts, &pod_ip, &cid)
        });
        self.store.modify(Kind::Job, &ns, &cjob, obj::job_ready);
    }

    fn on_cleanup_fire(&mut self, seq: u64, at: Instant) {
        let ns = self.cfg.namespace.clone();
        let ts = self.clock.k8s_time(at);
        let Some(job) = self.jobs.get(&seq) else {
            return;
        };
        let (apod, ajob, ajob_uid, cpod, cjob, cjob_uid) = (
            job.analyzer_pod.clone(),
            job.analyzer_job.clone(),
            job.analyzer_job_uid.clone(),
            job.cleanup_pod.clone(),
            job.cleanup_job.clone(),
            job.cleanup_job_uid.clone(),
        );
        if !self.store.contains(Kind::Job, &ns, &cjob) {
            return; // the cleanup job itself was deleted: nobody cleans up
        }
        let had_pod = self.store.delete(Kind::Pod, &ns, &apod).is_some();
        let had_job = self.store.delete(Kind::Job, &ns, &ajob).is_some();
        if had_job || had_pod {
            self.emit_event(seq, at, EventArgs {
                kind: "Job",
                involved_name: ajob.clone(),
                involved_uid: ajob_uid,
                reason: "SuccessfulDelete",
                message: format!(
                    "Deleted job {ajob} and pod {apod}: {CLEANUP_IDLE_COUNT} consecutive CPU readings <= {CLEANUP_THRESHOLD_MILLICORES}m"
                ),
                warning: false,
                component: "focus-cleanup",
                host: None,
            });
        }
        let started = self
            .store
            .get(Kind::Pod, &ns, &cpod)
            .and_then(|p| p.pointer("/status/containerStatuses/0/state/running/startedAt"))
            .and_then(Value::as_str)
            .unwrap_or(&ts)
            .to_string();
        let cid = match self.jobs.get_mut(&seq) {
            Some(job) => {
                job.analyzer_deleted_at = Some(at);
                job.cleanup_completed_at = Some(at);
                clock::hex(&mut job.rng, 64)
            }
            None => return,
        };
        self.store.modify(Kind::Pod, &ns, &cpod, |p| {
            obj::pod_terminated(p, &started, &ts, 0, &cid)
        });
        self.store
            .modify(Kind::Job, &ns, &cjob, |j| obj::job_complete(j, &ts));
        self.emit_event(
            seq,
            at,
            EventArgs {
                kind: "Job",
                involved_name: cjob.clone(),
                involved_uid: cjob_uid,
                reason: "Completed",
                message: "Job completed".into(),
                warning: false,
                component: "job-controller",
                host: None,
            },
        );
        let ttl = at + self.clock.scaled(CLEANUP_TTL_SECS);
        self.schedule(ttl, Action::CleanupTtl(seq));
    }

    fn on_cleanup_ttl(&mut self, seq: u64, at: Instant) {
        let ns = self.cfg.namespace.clone();
        let Some(job) = self.jobs.get_mut(&seq) else {
            return;
        };
        job.cleanup_deleted_at = Some(at);
        let (cpod, cjob) = (job.cleanup_pod.clone(), job.cleanup_job.clone());
        self.store.delete(Kind::Job, &ns, &cjob);
        self.store.delete(Kind::Pod, &ns, &cpod);
    }

    // ---------------------------------------------------------------- Kubernetes deletes

    /// Delete through the Kubernetes API. Jobs: `propagation` Background/Foreground also deletes
    /// their pods; Orphan (the default for batch/v1 Jobs) leaves them without owner.
    pub fn kube_delete(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        propagation: Option<&str>,
        now: Instant,
    ) -> Option<Value> {
        let removed = self.store.delete(kind, ns, name)?;
        let mut deleted = Value::clone(&removed);
        let ts = self.clock.k8s_time(now);
        if let Some(m) = deleted.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("deletionTimestamp".into(), json!(ts));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        if kind == Kind::Job {
            let uid = deleted
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let owned: Vec<String> = self
                .store
                .list(Kind::Pod, Some(ns))
                .into_iter()
                .filter(|p| {
                    p.pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid.as_str()))
                })
                .filter_map(|p| {
                    p.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .collect();
            let cascade = matches!(propagation, Some("Background") | Some("Foreground"));
            for pod in owned {
                if cascade {
                    self.store.delete(Kind::Pod, ns, &pod);
                } else {
                    self.store.modify(Kind::Pod, ns, &pod, |p| {
                        if let Some(m) = p.get_mut("metadata").and_then(Value::as_object_mut) {
                            m.remove("ownerReferences");
                        }
                    });
                }
            }
        }
        // Effect on the Focus job, if this object belongs to one.
        let app = deleted
            .pointer("/metadata/labels/app")
            .and_then(Value::as_str)
            .unwrap_or("");
        let job_id = deleted.pointer(&format!(
            "/metadata/labels/{}",
            obj::JOB_ID_LABEL.replace('/', "~1")
        ));
        let job_id = job_id.and_then(Value::as_str).map(str::to_string);
        if let (Some(id), true) = (job_id, ns == self.cfg.namespace) {
            if let Some(seq) = self.seq_of(&id) {
                if app == obj::ANALYZER_APP && matches!(kind, Kind::Job | Kind::Pod) {
                    if let Some(job) = self.jobs.get_mut(&seq) {
                        if job.is_open() && job.analyzer_lost_at.is_none() {
                            job.analyzer_lost_at = Some(now);
                        }
                    }
                    self.mark_idle(seq, now);
                }
            }
        }
        Some(deleted)
    }

    // ---------------------------------------------------------------- views

    pub fn job_summary(&self, j: &Job, now: Instant) -> Value {
        json!({
            "job_id": j.id,
            "status": j.status(now),
            "mode": j.mode.as_str(),
            "stream_port": j.port,
            "created_at": self.clock.api_time(j.created),
        })
    }

    pub fn job_detail(&self, j: &Job, now: Instant) -> Value {
        let t = |o: Option<Instant>| o.map(|t| self.clock.api_time(t));
        let mut m = Map::new();
        m.insert("job_id".into(), json!(j.id));
        m.insert("status".into(), json!(j.status(now)));
        m.insert("mode".into(), json!(j.mode.as_str()));
        m.insert("stream_port".into(), json!(j.port));
        m.insert("config".into(), j.config.clone());
        m.insert("will_fail".into(), json!(j.will_fail));
        m.insert(
            "consumer_ready_after_ms".into(),
            if j.consumer_ready_at.is_some() {
                json!(j.consumer_delay_ms)
            } else {
                Value::Null
            },
        );
        m.insert("analyzer_job".into(), json!(j.analyzer_job));
        m.insert("analyzer_pod".into(), json!(j.analyzer_pod));
        m.insert("cleanup_job".into(), json!(j.cleanup_job));
        m.insert("cleanup_pod".into(), json!(j.cleanup_pod));
        m.insert("created_at".into(), json!(self.clock.api_time(j.created)));
        m.insert("consumer_ready_at".into(), json!(t(j.consumer_ready_at)));
        m.insert("pod_start_at".into(), json!(t(Some(j.pod_start_at))));
        m.insert("failed_at".into(), json!(t(j.failed_at)));
        m.insert("cancelled_at".into(), json!(t(j.cancelled_at)));
        m.insert("analyzer_lost_at".into(), json!(t(j.analyzer_lost_at)));
        m.insert("cleanup_fires_at".into(), json!(t(j.cleanup_fire_at)));
        m.insert(
            "analyzer_deleted_at".into(),
            json!(t(j.analyzer_deleted_at)),
        );
        m.insert(
            "cleanup_completed_at".into(),
            json!(t(j.cleanup_completed_at)),
        );
        m.insert("cleanup_deleted_at".into(), json!(t(j.cleanup_deleted_at)));
        Value::Object(m)
    }
}

struct EventArgs {
    kind: &'static str,
    involved_name: String,
    involved_uid: String,
    reason: &'static str,
    message: String,
    warning: bool,
    component: &'static str,
    host: Option<usize>,
}

/// Split `total` GPU slices over `n` nodes (first nodes get the remainder).
pub fn node_split(total: usize, n: usize) -> Vec<usize> {
    let n = n.max(1);
    (0..n)
        .map(|i| total / n + usize::from(i < total % n))
        .collect()
}

#[cfg(test)]
mod tests {
    //! The Focus job state machine, driven with explicit instants (no runtime, no sleeping):
    //! `configure` / `cancel` / `reset` and `advance(t)` to apply what is due at `t`.
    use super::*;
    use std::time::Duration;

    const NS: &str = "focus";

    fn state_with(f: impl FnOnce(&mut SimConfig)) -> State {
        let mut cfg = SimConfig::default();
        f(&mut cfg);
        let (tx, _) = tokio::sync::broadcast::channel(16);
        State::new(cfg, Clock::new(1.0), Store::new(tx))
    }

    fn state() -> State {
        state_with(|_| {})
    }

    /// `secs` after the simulator's start.
    fn at(st: &State, secs: f64) -> Instant {
        st.clock.start_instant + Duration::from_secs_f64(secs)
    }

    fn body(start: Value, end: Value) -> Value {
        json!({"displayTimeAxisDuration": 10, "nfftSelection": 1024, "displayInfo": {"height": 1000},
               "channels": {"min": 0, "max": 50}, "frequencyRange": {"min": 0, "max": 500},
               "start_time": start, "end_time": end, "view_type": 0})
    }

    fn valid(b: &Value) -> Result<ValidConfig, ApiError> {
        crate::focus::validate(&serde_json::to_vec(b).unwrap())
    }

    fn live() -> ValidConfig {
        valid(&body(Value::Null, Value::Null)).unwrap()
    }

    fn historic(s: &str, e: &str) -> ValidConfig {
        valid(&body(json!(s), json!(e))).unwrap()
    }

    fn open(st: &mut State, t: Instant) -> Value {
        st.configure(live(), t).expect("configure")
    }

    fn set_faults(st: &mut State, body: Value) {
        let f = st.faults.merged(&body).expect("faults");
        st.set_faults(f);
    }

    fn phase(st: &State, kind: Kind, name: &str) -> Option<String> {
        let o = st.store.get(kind, NS, name)?;
        let p = match kind {
            Kind::Pod => o.pointer("/status/phase").and_then(Value::as_str),
            _ => o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.last())
                .and_then(|c| c["type"].as_str())
                .or(Some("Active")),
        };
        Some(p.unwrap_or("").to_string())
    }

    fn gpus(st: &State, node: &str) -> String {
        st.store
            .get(Kind::Node, "", node)
            .and_then(|n| n.pointer("/status/allocatable"))
            .and_then(|a| a[obj::GPU_RESOURCE].as_str())
            .unwrap_or("")
            .to_string()
    }

    #[test]
    fn configure_opens_job_18_1_on_the_first_free_port_with_its_kubernetes_objects() {
        let mut st = state();
        let t = at(&st, 0.0);
        let a = open(&mut st, t);
        assert_eq!(
            a,
            json!({"job_id": "18-1", "status": "configured", "stream_url": "10.10.10.100", "stream_port": 50051})
        );
        assert_eq!(open(&mut st, t)["job_id"], "18-2");
        assert_eq!(st.job("18-2").unwrap().port, 50052);
        assert_eq!(st.open_count(), 2);
        let job = st.job("18-1").unwrap();
        for (kind, name) in [
            (Kind::Job, "baby-analyzer-18-1"),
            (Kind::Job, "cleanup-job-18-1"),
            (Kind::Pod, job.analyzer_pod.as_str()),
            (Kind::Pod, job.cleanup_pod.as_str()),
        ] {
            assert!(st.store.contains(kind, NS, name), "{kind:?} {name}");
        }
        assert_eq!(st.store.count(Kind::Job), 4);
        assert!(job.analyzer_pod.starts_with("baby-analyzer-18-1-"));
    }

    #[test]
    fn analyzer_pod_requests_one_gpu_slice_memory_storage_and_the_stream_port_on_alternating_nodes()
    {
        let mut st = state();
        let t = at(&st, 0.0);
        open(&mut st, t);
        open(&mut st, t);
        let (j1, j2) = (st.job("18-1").unwrap(), st.job("18-2").unwrap());
        let pod = st.store.get(Kind::Pod, NS, &j1.analyzer_pod).unwrap();
        let c = &pod["spec"]["containers"][0];
        for k in ["limits", "requests"] {
            assert_eq!(c["resources"][k][obj::GPU_RESOURCE], "1");
            assert_eq!(c["resources"][k]["memory"], "4Gi");
        }
        assert_eq!(c["ports"][0]["containerPort"], 50051);
        assert_eq!(
            pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            obj::RECORDINGS_PVC
        );
        assert_eq!(pod["metadata"]["labels"]["app"], obj::ANALYZER_APP);
        assert_eq!(pod["metadata"]["labels"][obj::JOB_ID_LABEL], "18-1");
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "Job");
        assert_eq!(owner["name"], "baby-analyzer-18-1");
        assert_eq!(owner["uid"], j1.analyzer_job_uid.as_str());
        assert_eq!(pod["spec"]["nodeName"], "gpu-node-1");
        let pod2 = st.store.get(Kind::Pod, NS, &j2.analyzer_pod).unwrap();
        assert_eq!(pod2["spec"]["nodeName"], "gpu-node-2");
        // The cleanup job is the documented one.
        let cj = st.store.get(Kind::Job, NS, "cleanup-job-18-1").unwrap();
        assert_eq!(cj["spec"]["backoffLimit"], 0);
        assert_eq!(cj["spec"]["ttlSecondsAfterFinished"], 10);
        // 200 GPU slices over the two nodes.
        assert_eq!(
            (gpus(&st, "gpu-node-1"), gpus(&st, "gpu-node-2")),
            ("100".into(), "100".into())
        );
    }

    #[test]
    fn a_job_is_configured_until_its_consumer_is_ready_and_then_running() {
        let mut st = state();
        let t = at(&st, 0.0);
        open(&mut st, t);
        let job = st.job("18-1").unwrap();
        let ready = job.consumer_ready_at.expect("a consumer is scheduled");
        let delay = ready - t;
        assert!(
            delay >= Duration::from_secs(1) && delay <= Duration::from_secs(25),
            "{delay:?}"
        );
        assert_eq!(job.consumer_delay_ms, delay.as_millis() as u64);
        assert_eq!(job.status(ready - Duration::from_millis(1)), "configured");
        assert!(!job.consumer_ready(ready - Duration::from_millis(1)));
        assert_eq!(job.status(ready), "running");
        assert!(job.consumer_ready(ready));
    }

    #[test]
    fn analyzer_pod_is_pending_until_its_start_time_and_then_running_busy() {
        let mut st = state();
        let t = at(&st, 0.0);
        open(&mut st, t);
        let (pod, start) = {
            let j = st.job("18-1").unwrap();
            (j.analyzer_pod.clone(), j.pod_start_at)
        };
        assert!(st.next_deadline().is_some_and(|d| d <= start));
        st.advance(start - Duration::from_millis(1));
        assert_eq!(phase(&st, Kind::Pod, &pod).as_deref(), Some("Pending"));
        st.advance(start);
        assert_eq!(phase(&st, Kind::Pod, &pod).as_deref(), Some("Running"));
        let p = st.store.get(Kind::Pod, NS, &pod).unwrap();
        let cpu: u32 = p["metadata"]["annotations"][obj::CPU_ANNOTATION]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            cpu > CLEANUP_THRESHOLD_MILLICORES,
            "busy analyzer at {cpu}m"
        );
        let j = st.store.get(Kind::Job, NS, "baby-analyzer-18-1").unwrap();
        assert_eq!(j["status"]["ready"], 1);
    }

    #[test]
    fn cancel_frees_the_port_and_capacity_at_once_and_the_port_is_handed_out_again() {
        let mut st = state();
        let t = at(&st, 0.0);
        open(&mut st, t);
        open(&mut st, t);
        assert_eq!(
            st.cancel("18-1", at(&st, 1.0)).unwrap(),
            json!({"job_id": "18-1", "status": "cancelled"})
        );
        assert_eq!(st.open_count(), 1);
        assert_eq!(st.job("18-1").unwrap().status(at(&st, 1.0)), "cancelled");
        let t2 = at(&st, 2.0);
        let again = open(&mut st, t2);
        assert_eq!(
            (again["job_id"].clone(), again["stream_port"].clone()),
            (json!("18-3"), json!(50051))
        );
    }

    #[test]
    fn cancelling_twice_or_an_unknown_or_malformed_id_is_404() {
        let mut st = state();
        let t = at(&st, 0.0);
        open(&mut st, t);
        st.cancel("18-1", t).unwrap();
        assert_eq!(
            st.cancel("18-1", t),
            Err((404, "Unknown job_id 18-1".into()))
        );
        for id in ["18-2", "19-1", "18-01", "18-", "-1", "18", "x"] {
            assert_eq!(st.cancel(id, t).unwrap_err().0, 404, "{id}");
        }
        assert_eq!(st.open_count(), 0);
    }

    #[test]
    fn after_cancel_the_cleanup_job_deletes_the_analyzer_after_five_idle_readings_then_expires() {
        let mut st = state();
        let t0 = at(&st, 0.0);
        open(&mut st, t0);
        let cancel_at = at(&st, 30.0);
        st.advance(cancel_at);
        st.cancel("18-1", cancel_at).unwrap();
        let (apod, cpod, fire) = {
            let j = st.job("18-1").unwrap();
            (
                j.analyzer_pod.clone(),
                j.cleanup_pod.clone(),
                j.cleanup_fire_at.unwrap(),
            )
        };
        // Idle CPU after the client is gone.
        let cpu: u32 = st.store.get(Kind::Pod, NS, &apod).unwrap()["metadata"]["annotations"]
            [obj::CPU_ANNOTATION]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(cpu <= CLEANUP_THRESHOLD_MILLICORES);
        // Five readings, every 10 s, the first at or after the cancel.
        let waited = fire - cancel_at;
        assert!(
            waited >= Duration::from_secs(40) && waited < Duration::from_secs(50),
            "{waited:?}"
        );
        st.advance(fire - Duration::from_millis(1));
        assert!(st.store.contains(Kind::Job, NS, "baby-analyzer-18-1"));
        assert_eq!(
            phase(&st, Kind::Job, "cleanup-job-18-1").as_deref(),
            Some("Active")
        );
        st.advance(fire);
        assert!(!st.store.contains(Kind::Job, NS, "baby-analyzer-18-1"));
        assert!(!st.store.contains(Kind::Pod, NS, &apod));
        assert_eq!(
            phase(&st, Kind::Job, "cleanup-job-18-1").as_deref(),
            Some("Complete")
        );
        assert_eq!(phase(&st, Kind::Pod, &cpod).as_deref(), Some("Succeeded"));
        let ttl = fire + Duration::from_secs_f64(CLEANUP_TTL_SECS);
        st.advance(ttl - Duration::from_millis(1));
        assert!(st.store.contains(Kind::Job, NS, "cleanup-job-18-1"));
        st.advance(ttl);
        assert!(!st.store.contains(Kind::Job, NS, "cleanup-job-18-1"));
        assert!(!st.store.contains(Kind::Pod, NS, &cpod));
        assert_eq!(st.next_deadline(), None);
    }

    #[test]
    fn the_201st_concurrent_job_is_refused_with_503_until_one_is_cancelled() {
        let mut st = state();
        let t = at(&st, 0.0);
        for i in 1..=200 {
            assert_eq!(open(&mut st, t)["job_id"], format!("18-{i}"));
        }
        assert_eq!(
            st.configure(live(), t),
            Err((503, "Capacity reached: 200 concurrent jobs are open".into()))
        );
        assert_eq!(st.open_count(), 200);
        assert_eq!(st.jobs().count(), 200, "a refused configure creates no job");
        st.cancel("18-117", t).unwrap();
        let a = open(&mut st, t);
        assert_eq!(
            (a["job_id"].clone(), a["stream_port"].clone()),
            (json!("18-201"), json!(50051 + 116))
        );
        assert!(st.configure(live(), t).is_err());
    }

    #[test]
    fn port_exhaustion_refuses_with_503_below_capacity() {
        let mut st = state_with(|c| c.port_range = (50051, 50052));
        let t = at(&st, 0.0);
        open(&mut st, t);
        open(&mut st, t);
        assert_eq!(
            st.configure(live(), t),
            Err((503, "No free stream port in 50051-50052".into()))
        );
        assert_eq!(st.open_count(), 2);
        st.cancel("18-2", t).unwrap();
        assert_eq!(open(&mut st, t)["stream_port"], 50052);
    }

    #[test]
    fn occupied_ports_are_skipped_and_all_occupied_is_port_exhaustion() {
        let mut st = state_with(|c| c.port_range = (50051, 50054));
        let t = at(&st, 0.0);
        set_faults(&mut st, json!({"occupied_ports": [50053, 50051, 50051]}));
        assert_eq!(st.faults.occupied_ports, vec![50051, 50053]);
        assert_eq!(open(&mut st, t)["stream_port"], 50052);
        assert_eq!(open(&mut st, t)["stream_port"], 50054);
        assert_eq!(st.configure(live(), t).unwrap_err().0, 503);
    }

    #[test]
    fn capacity_fault_lowers_the_limit_and_resizes_the_nodes_gpu_slices() {
        let mut st = state();
        let t = at(&st, 0.0);
        set_faults(&mut st, json!({"capacity": 3}));
        assert_eq!(
            (gpus(&st, "gpu-node-1"), gpus(&st, "gpu-node-2")),
            ("2".into(), "1".into())
        );
        for _ in 0..3 {
            open(&mut st, t);
        }
        assert_eq!(
            st.configure(live(), t),
            Err((503, "Capacity reached: 3 concurrent jobs are open".into()))
        );
    }

    #[test]
    fn live_job_is_refused_404_when_there_is_no_live_data() {
        let mut st = state();
        let t = at(&st, 0.0);
        set_faults(&mut st, json!({"live_data": false}));
        assert_eq!(
            st.configure(live(), t),
            Err((404, "No live data: the live stream is not available".into()))
        );
        assert_eq!((st.open_count(), st.store.count(Kind::Job)), (0, 0));
    }

    #[test]
    fn historic_job_needs_recordings_covering_its_whole_range() {
        let mut st = state();
        let t = at(&st, 0.0);
        set_faults(
            &mut st,
            json!({"recordings": [
                {"start_time": "251021120000", "end_time": "251021120500"},
                {"start_time": "251021120500", "end_time": "251021121000"},
                {"start_time": "251021130000", "end_time": "251021131000"}]}),
        );
        let ok = st
            .configure(historic("251021120100", "251021120900"), t)
            .unwrap();
        assert_eq!(
            st.job(ok["job_id"].as_str().unwrap()).unwrap().mode,
            Mode::Historic
        );
        assert_eq!(
            st.configure(historic("251021120900", "251021130500"), t),
            Err((
                404,
                "No historic data: no recordings cover 251021120900..251021130500".into()
            ))
        );
        assert_eq!(st.open_count(), 1);
    }

    #[test]
    fn fail_next_jobs_fails_exactly_the_next_job_when_its_pod_starts() {
        let mut st = state();
        let t = at(&st, 0.0);
        set_faults(&mut st, json!({"fail_next_jobs": 1}));
        open(&mut st, t);
        open(&mut st, t);
        assert_eq!(st.faults.fail_next_jobs, 0);
        let (pod, start) = {
            let j = st.job("18-1").unwrap();
            assert!(j.will_fail && j.consumer_ready_at.is_none());
            (j.analyzer_pod.clone(), j.pod_start_at)
        };
        assert_eq!(st.job("18-1").unwrap().status(t), "configured");
        st.advance(start);
        assert_eq!(st.job("18-1").unwrap().status(start), "failed");
        assert_eq!(phase(&st, Kind::Pod, &pod).as_deref(), Some("Failed"));
        assert_eq!(
            phase(&st, Kind::Job, "baby-analyzer-18-1").as_deref(),
            Some("Failed")
        );
        // The failed analyzer is idle: the cleanup job is scheduled for it.
        assert!(st.job("18-1").unwrap().cleanup_fire_at.is_some());
        let j2 = st.job("18-2").unwrap();
        assert!(!j2.will_fail);
        assert_eq!(j2.status(at(&st, 3600.0)), "running");
    }

    #[test]
    fn consumer_never_ready_keeps_the_job_configured_forever() {
        let mut st = state();
        set_faults(&mut st, json!({"consumer_never_ready": true}));
        let t = at(&st, 0.0);
        open(&mut st, t);
        let late = at(&st, 24.0 * 3600.0);
        st.advance(late);
        let j = st.job("18-1").unwrap();
        assert_eq!((j.consumer_ready_at, j.status(late)), (None, "configured"));
    }

    #[test]
    fn consumer_delay_fault_moves_readiness_into_its_range() {
        let delays = |fault: Option<Value>| {
            let mut st = state();
            if let Some(f) = fault {
                set_faults(&mut st, json!({ "consumer_delay_s": f }));
            }
            let t = at(&st, 0.0);
            (0..40)
                .map(|_| {
                    open(&mut st, t);
                    st.jobs().last().unwrap().consumer_delay_ms
                })
                .collect::<Vec<_>>()
        };
        let default = delays(None);
        assert!(
            default.iter().all(|d| (1000..=25_000).contains(d)),
            "{default:?}"
        );
        let slow = delays(Some(json!([30, 40])));
        assert!(
            slow.iter().all(|d| (30_000..=40_000).contains(d)),
            "{slow:?}"
        );
        let t = at(&state(), 0.0);
        let mut st = state();
        set_faults(&mut st, json!({"consumer_delay_s": [30, 40]}));
        open(&mut st, t);
        assert_eq!(
            st.job("18-1").unwrap().status(t + Duration::from_secs(29)),
            "configured"
        );
    }

    #[test]
    fn configure_delay_fault_slows_only_post_configure() {
        let mut st = state();
        let post = http::Method::POST;
        let get = http::Method::GET;
        for _ in 0..50 {
            let s = st.focus_latency(&post, "/configure");
            assert!((0.2..=0.35).contains(&s), "{s}");
        }
        set_faults(&mut st, json!({"configure_delay_s": [2, 4]}));
        for _ in 0..50 {
            let s = st.focus_latency(&post, "/configure");
            assert!((2.0..=4.0).contains(&s), "{s}");
            let g = st.focus_latency(&get, "/jobs");
            assert!(g <= 0.02, "{g}");
        }
    }

    #[test]
    fn fault_merge_rejects_unknown_keys_and_bad_values_naming_the_key() {
        let st = state();
        for (body, msg) in [
            (json!({"nope": 1}), "unknown fault key 'nope'"),
            (
                json!({"consumer_delay_s": [5, 1]}),
                "consumer_delay_s must be [min, max]",
            ),
            (
                json!({"configure_delay_s": [1]}),
                "configure_delay_s must be [min, max]",
            ),
            (
                json!({"capacity": -1}),
                "capacity must be a non-negative integer",
            ),
            (
                json!({"occupied_ports": [0]}),
                "occupied_ports: 0 is not a valid port",
            ),
            (json!({"live_data": "no"}), "live_data must be a boolean"),
            (json!({"idle_close_s": 0}), "idle_close_s must be"),
            (
                json!({"kube_throttle": {"requests": 2000}}),
                "kube_throttle must be",
            ),
            (
                json!({"recordings": [{"start_time": "251021120000", "end_time": "251021120000"}]}),
                "recordings[0]: end_time must be after start_time",
            ),
            (json!([]), "faults body must be a JSON object"),
        ] {
            let err = st.faults.merged(&body).unwrap_err();
            assert!(err.starts_with(msg), "{body}: {err}");
        }
        // A body with one bad key changes nothing, even the good keys before it.
        assert!(st
            .faults
            .merged(&json!({"capacity": 5, "nope": 1}))
            .is_err());
        assert_eq!(st.faults.capacity, 200);
    }

    #[test]
    fn kube_throttle_answers_429_for_exactly_n_requests() {
        let mut st = state();
        let t = at(&st, 0.0);
        set_faults(
            &mut st,
            json!({"kube_throttle": {"requests": 2, "retry_after_s": 3}}),
        );
        let faults = &mut st.faults;
        assert_eq!(st.kube_api.admit("list", faults, t), Some(3));
        assert_eq!(
            st.kube_api
                .admit("list", faults, t + Duration::from_secs(3)),
            Some(3)
        );
        assert_eq!(
            st.kube_api
                .admit("watch", faults, t + Duration::from_secs(5)),
            None
        );
        assert!(faults.kube_throttle.is_none());
        assert_eq!((st.kube_api.requests, st.kube_api.throttled), (3, 2));
        assert_eq!(st.kube_api.min_retry_gap_ms, Some(2000));
    }

    #[test]
    fn reset_clears_jobs_objects_schedule_and_faults_but_ids_keep_counting() {
        let mut st = state();
        let t = at(&st, 0.0);
        set_faults(
            &mut st,
            json!({"capacity": 4, "live_data": true, "occupied_ports": [50051]}),
        );
        open(&mut st, t);
        open(&mut st, t);
        st.reset();
        assert_eq!(
            (st.open_count(), st.jobs().count(), st.next_deadline()),
            (0, 0, None)
        );
        for k in [Kind::Job, Kind::Pod, Kind::Event] {
            assert_eq!(st.store.count(k), 0, "{k:?}");
        }
        assert_eq!(
            (st.store.count(Kind::Node), st.store.count(Kind::Namespace)),
            (2, 3)
        );
        assert_eq!(
            (st.faults.capacity, st.faults.occupied_ports.len()),
            (200, 0)
        );
        assert_eq!(gpus(&st, "gpu-node-1"), "100");
        assert_eq!(st.job("18-1").map(|j| j.id.clone()), None);
        let a = open(&mut st, t);
        assert_eq!(
            (a["job_id"].clone(), a["stream_port"].clone()),
            (json!("18-3"), json!(50051))
        );
    }

    #[test]
    fn same_seed_gives_the_same_names_and_delays_another_seed_does_not() {
        let run = |seed: u64| {
            let mut st = state_with(|c| c.seed = seed);
            let t = at(&st, 0.0);
            open(&mut st, t);
            let j = st.job("18-1").unwrap();
            (
                j.analyzer_pod.clone(),
                j.analyzer_job_uid.clone(),
                j.consumer_delay_ms,
            )
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn deleting_the_analyzer_job_fails_the_open_job_and_orphans_its_pod_by_default() {
        let mut st = state();
        let t = at(&st, 0.0);
        open(&mut st, t);
        open(&mut st, t);
        let (pod1, pod2) = (
            st.job("18-1").unwrap().analyzer_pod.clone(),
            st.job("18-2").unwrap().analyzer_pod.clone(),
        );
        let del = st
            .kube_delete(Kind::Job, NS, "baby-analyzer-18-1", None, t)
            .unwrap();
        assert!(del.pointer("/metadata/deletionTimestamp").is_some());
        assert_eq!(st.job("18-1").unwrap().status(t), "failed");
        let p = st
            .store
            .get(Kind::Pod, NS, &pod1)
            .expect("orphaned, not deleted");
        assert!(p.pointer("/metadata/ownerReferences").is_none());
        // Background propagation takes the pods with the job.
        st.kube_delete(Kind::Job, NS, "baby-analyzer-18-2", Some("Background"), t)
            .unwrap();
        assert!(!st.store.contains(Kind::Pod, NS, &pod2));
        // Absent objects, or the right name in another namespace: nothing to delete.
        assert!(st
            .kube_delete(Kind::Job, NS, "baby-analyzer-18-2", None, t)
            .is_none());
        assert!(st
            .kube_delete(Kind::Job, "default", "cleanup-job-18-1", None, t)
            .is_none());
        // Deleting the cleanup job does not touch the Focus job's status.
        st.kube_delete(Kind::Job, NS, "cleanup-job-18-1", None, t)
            .unwrap();
        assert_eq!(st.job("18-1").unwrap().status(t), "failed");
    }

    #[test]
    fn without_its_cleanup_job_a_cancelled_job_s_analyzer_is_never_deleted() {
        let mut st = state();
        let t = at(&st, 0.0);
        open(&mut st, t);
        st.cancel("18-1", t).unwrap();
        st.kube_delete(Kind::Job, NS, "cleanup-job-18-1", Some("Background"), t)
            .unwrap();
        let fire = st.job("18-1").unwrap().cleanup_fire_at.unwrap();
        st.advance(fire + Duration::from_secs(3600));
        assert!(st.store.contains(Kind::Job, NS, "baby-analyzer-18-1"));
        assert!(st.job("18-1").unwrap().analyzer_deleted_at.is_none());
    }

    #[test]
    fn invalid_configurations_are_refused_422_for_types_and_400_for_values() {
        let cases: &[(&str, Option<Value>, u16, &str)] = &[
            ("/displayTimeAxisDuration", None, 422, "displayTimeAxisDuration is required"),
            ("/displayInfo", None, 422, "displayInfo (or legacy canvasInfo) is required"),
            ("/nfftSelection", Some(json!("1024")), 422, "nfftSelection must be an integer"),
            ("/channels/min", Some(json!("0")), 422, "channels.min must be an integer"),
            ("/start_time", Some(json!(5)), 422, "start_time must be a string (yymmddHHMMSS) or null"),
            ("/channels", Some(json!({"min": 60, "max": 50})), 400, "channels: min (60) must not be greater than max (50)"),
            ("/channels/min", Some(json!(-1)), 400, "channels: min (-1) must be >= 0"),
            ("/channels/max", Some(json!(2500)), 400, "channels: max (2500) must be <= 2499 (highest channel)"),
            ("/frequencyRange", Some(json!({"min": 300, "max": 200})), 400, "frequencyRange: min (300) must be less than max (200)"),
            ("/frequencyRange/max", Some(json!(600)), 400, "frequencyRange: max (600) must be <= 500 (Nyquist frequency, PRR 1000 Hz)"),
            ("/nfftSelection", Some(json!(1000)), 400, "nfftSelection: 1000 is not allowed; allowed values: 128, 256"),
            ("/displayTimeAxisDuration", Some(json!(0)), 400, "displayTimeAxisDuration must be > 0 (got 0)"),
            ("/displayInfo/height", Some(json!(0)), 400, "displayInfo.height must be > 0 (got 0)"),
            ("/view_type", Some(json!(2)), 400, "view_type: 2 is not a valid view type; allowed: 0 (MULTICHANNEL), 1 (SINGLECHANNEL)"),
            ("/start_time", Some(json!("251021120000")), 400, "start_time and end_time must both be set (historic) or both be null (live)"),
        ];
        for (path, v, code, msg) in cases {
            let mut b = body(Value::Null, Value::Null);
            match v {
                Some(v) => *b.pointer_mut(path).unwrap() = v.clone(),
                None => {
                    b.as_object_mut().unwrap().remove(&path[1..]);
                }
            }
            let (c, m) = valid(&b).unwrap_err();
            assert_eq!(c, *code, "{path}: {m}");
            assert!(m.starts_with(msg), "{path}: {m}");
        }
        for (s, e, msg) in [
            (
                "x",
                "251021120600",
                "start_time: 'x' is not a valid yymmddHHMMSS time (UTC)",
            ),
            (
                "251021120600",
                "251021120000",
                "end_time must be after start_time",
            ),
            (
                "251021120000",
                "251021120000",
                "end_time must be after start_time",
            ),
        ] {
            assert_eq!(
                valid(&body(json!(s), json!(e))).unwrap_err(),
                (400, msg.to_string())
            );
        }
        // Legacy field names are accepted and canonicalised.
        let legacy = json!({"displayTimeAxisDuration": 10, "nfftSelection": 1024, "canvasInfo": {"height": 1000},
                            "sensors": {"min": 3, "max": 7}, "frequencyRange": {"min": 0, "max": 500},
                            "start_time": null, "end_time": null, "view_type": 1});
        let v = valid(&legacy).unwrap();
        assert_eq!(
            (v.mode, v.config["channels"].clone()),
            (Mode::Live, json!({"min": 3, "max": 7}))
        );
    }
}
