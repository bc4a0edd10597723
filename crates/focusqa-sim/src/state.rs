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
        } else if self.consumer_ready_at.is_some_and(|t| t <= now) {
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
/// reads are answered from memory in milliseconds.
pub fn focus_latency_range(method: &http::Method, path: &str) -> (f64, f64) {
    match (method.as_str(), path) {
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
