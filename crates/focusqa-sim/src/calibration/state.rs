//! The calibration service's state machine, in simulated seconds.
//!
//! Pure and synchronous: every function takes `now`, the simulated seconds since the simulator
//! started (wall time / time scale), so the unit tests drive it without waiting. [`State::advance`]
//! replays every event up to `now` in time order: a free worker slot takes the pending job of
//! highest priority (10 first; ties in creation order) whose batch is below its `parallel_limit`;
//! a running job walks 5 steps and ends `success`, `failed` (a `fail_next_jobs` fault, at step 3)
//! or `timeout` (when its duration passes `timeout_minutes`). A failed batch job with `fail_fast`
//! cancels the rest of its batch. Successful results are cached for [`CACHE_TTL_S`] by request.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const TOTAL_STEPS: u32 = 5;
pub const STEP_NAMES: [&str; 5] = [
    "validating_input",
    "loading_va_data",
    "running_calibration",
    "computing_intervals",
    "saving_results",
];
pub const BATCH_MAX_SIZE: usize = 50;
pub const CACHE_TTL_S: f64 = 3600.0;
pub const MAX_LOG_ENTRIES: usize = 1000;
pub const MAX_TIMEOUT_MINUTES: u64 = 120;
pub const DEFAULT_WORKER_SLOTS: u64 = 4;
pub const LOG_LEVELS: [&str; 5] = ["debug", "info", "warning", "error", "critical"];
pub const STATUSES: [&str; 6] = [
    "pending",
    "running",
    "success",
    "failed",
    "cancelled",
    "timeout",
];
/// `/sim/faults` keys of this service.
pub const FAULT_KEYS: &[&str] = &[
    "redis_down",
    "celery_down",
    "fail_next_jobs",
    "worker_slots",
    "job_duration_s",
];

/// A validated calibration request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub va_data: Value,
    pub age_group: String,
    pub country: String,
    pub mmat_type: String,
    pub ensemble: bool,
    pub priority: u8,
    pub timeout_minutes: u64,
    pub use_cache: bool,
}

impl Request {
    /// What identifies a result: the data, the population and the calibration settings.
    pub fn cache_key(&self) -> String {
        json!([
            self.va_data,
            self.age_group,
            self.country,
            self.mmat_type,
            self.ensemble
        ])
        .to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Running,
    Success,
    Failed,
    Cancelled,
    Timeout,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        STATUSES[self as usize]
    }
    pub fn finished(self) -> bool {
        !matches!(self, Status::Pending | Status::Running)
    }
}

#[derive(Debug, Clone)]
pub struct Log {
    pub at: f64,
    pub level: &'static str,
    pub message: String,
    pub component: &'static str,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub seq: u64,
    pub req: Request,
    pub batch: Option<String>,
    pub status: Status,
    pub created: f64,
    pub started: Option<f64>,
    pub finished: Option<f64>,
    /// Simulated seconds the calibration takes once started.
    pub duration: f64,
    /// This job fails at step 3 (a `fail_next_jobs` fault when it was created).
    pub will_fail: bool,
    pub result: Option<Value>,
    pub cache_info: Option<Value>,
    pub error: Option<Value>,
    pub logs: Vec<Log>,
}

impl Job {
    fn log(&mut self, at: f64, level: &'static str, component: &'static str, msg: String) {
        if self.logs.len() < MAX_LOG_ENTRIES {
            self.logs.push(Log {
                at,
                level,
                message: msg,
                component,
            });
        }
    }

    /// When a running job ends, and how.
    fn end(&self) -> Option<(f64, Status)> {
        let s = self.started?;
        let limit = self.req.timeout_minutes as f64 * 60.0;
        let natural = if self.will_fail {
            self.duration * 0.6
        } else {
            self.duration
        };
        Some(if natural > limit {
            (s + limit, Status::Timeout)
        } else if self.will_fail {
            (s + natural, Status::Failed)
        } else {
            (s + natural, Status::Success)
        })
    }

    /// (current_step, progress_percentage) at `now`.
    pub fn progress(&self, now: f64) -> (u32, f64) {
        match (self.status, self.started) {
            (Status::Success, _) => (TOTAL_STEPS, 100.0),
            (_, None) => (0, 0.0),
            (_, Some(s)) => {
                let until = self.finished.unwrap_or(now);
                let frac = ((until - s) / self.duration.max(1e-9)).clamp(0.0, 0.99);
                let step = ((frac * TOTAL_STEPS as f64) as u32 + 1).min(TOTAL_STEPS);
                (step, (frac * 1000.0).floor() / 10.0)
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Batch {
    pub id: String,
    pub name: Option<String>,
    pub job_ids: Vec<String>,
    pub created: f64,
    pub parallel_limit: usize,
    pub fail_fast: bool,
}

#[derive(Debug, Clone)]
pub struct CacheEntry {
    pub result: Value,
    pub cached_at: f64,
    pub source_job_id: String,
    pub age_group: String,
    pub country: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    pub redis_down: bool,
    pub celery_down: bool,
    pub fail_next_jobs: u64,
    pub worker_slots: u64,
    /// Every new job takes this long (real-world seconds) instead of 5 steps of 2-4 s.
    pub job_duration_s: Option<f64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            redis_down: false,
            celery_down: false,
            fail_next_jobs: 0,
            worker_slots: DEFAULT_WORKER_SLOTS,
            job_duration_s: None,
        }
    }
}

impl Faults {
    pub fn to_json(&self) -> Value {
        json!({
            "redis_down": self.redis_down,
            "celery_down": self.celery_down,
            "fail_next_jobs": self.fail_next_jobs,
            "worker_slots": self.worker_slots,
            "job_duration_s": self.job_duration_s,
        })
    }

    /// These faults with the keys of `patch` applied (unknown keys and bad values are errors).
    pub fn merged(&self, patch: &Value) -> Result<Faults, String> {
        let obj = patch.as_object().ok_or("faults must be a JSON object")?;
        let mut f = self.clone();
        for (k, v) in obj {
            let bad = || format!("fault `{k}`: unexpected value {v}");
            match k.as_str() {
                "redis_down" => f.redis_down = v.as_bool().ok_or_else(bad)?,
                "celery_down" => f.celery_down = v.as_bool().ok_or_else(bad)?,
                "fail_next_jobs" => f.fail_next_jobs = v.as_u64().ok_or_else(bad)?,
                "worker_slots" => {
                    f.worker_slots = v
                        .as_u64()
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or_else(bad)?
                }
                "job_duration_s" => {
                    f.job_duration_s = if v.is_null() {
                        None
                    } else {
                        Some(
                            v.as_f64()
                                .filter(|d| d.is_finite() && *d > 0.0 && *d <= 86_400.0)
                                .ok_or_else(bad)?,
                        )
                    }
                }
                _ => {
                    return Err(format!(
                        "unknown fault `{k}`; known: {}",
                        FAULT_KEYS.join(", ")
                    ))
                }
            }
        }
        Ok(f)
    }
}

pub struct State {
    pub seed: u64,
    rng: StdRng,
    seq: u64,
    pub jobs: BTreeMap<String, Job>,
    /// Job ids in creation order.
    pub order: Vec<String>,
    pub batches: BTreeMap<String, Batch>,
    pub cache: BTreeMap<String, CacheEntry>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub faults: Faults,
}

impl State {
    pub fn new(seed: u64) -> Self {
        State {
            seed,
            rng: StdRng::seed_from_u64(seed),
            seq: 0,
            jobs: BTreeMap::new(),
            order: Vec::new(),
            batches: BTreeMap::new(),
            cache: BTreeMap::new(),
            cache_hits: 0,
            cache_misses: 0,
            faults: Faults::default(),
        }
    }

    fn new_id(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let s: String = (0..12)
            .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        format!("{prefix}_{s}")
    }

    /// Applies every transition due by `now` (simulated seconds), in time order.
    pub fn advance(&mut self, now: f64) {
        self.cache.retain(|_, e| now - e.cached_at < CACHE_TTL_S);
        let mut t = f64::NEG_INFINITY;
        loop {
            self.schedule(t.max(self.last_event()));
            let next = self
                .jobs
                .values()
                .filter(|j| j.status == Status::Running)
                .filter_map(|j| j.end().map(|(at, st)| (at, j.seq, j.id.clone(), st)))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            match next {
                Some((at, _, id, st)) if at <= now => {
                    t = at;
                    self.finish(&id, at, st);
                }
                _ => break,
            }
        }
        self.schedule(now);
    }

    /// The time of the latest start or end (scheduling never goes back before it).
    fn last_event(&self) -> f64 {
        self.jobs
            .values()
            .flat_map(|j| [j.started, j.finished, Some(j.created)])
            .flatten()
            .fold(0.0, f64::max)
    }

    /// Starts pending jobs while worker slots are free.
    fn schedule(&mut self, now: f64) {
        if self.faults.celery_down {
            return;
        }
        loop {
            let running = self
                .jobs
                .values()
                .filter(|j| j.status == Status::Running)
                .count() as u64;
            if running >= self.faults.worker_slots {
                return;
            }
            let next = self
                .jobs
                .values()
                .filter(|j| j.status == Status::Pending && j.created <= now)
                .filter(|j| match &j.batch {
                    None => true,
                    Some(b) => {
                        let limit = self.batches.get(b).map_or(usize::MAX, |b| b.parallel_limit);
                        let busy = self
                            .jobs
                            .values()
                            .filter(|o| o.batch.as_ref() == Some(b) && o.status == Status::Running)
                            .count();
                        busy < limit
                    }
                })
                .max_by(|a, b| a.req.priority.cmp(&b.req.priority).then(b.seq.cmp(&a.seq)))
                .map(|j| j.id.clone());
            let Some(id) = next else { return };
            let job = self.jobs.get_mut(&id).expect("listed");
            job.status = Status::Running;
            job.started = Some(now);
            job.log(now, "info", "worker", format!("worker picked up job {id}"));
            for (i, name) in STEP_NAMES.iter().enumerate() {
                let at = now + job.duration * i as f64 / TOTAL_STEPS as f64;
                job.log(
                    at,
                    "info",
                    "calibration",
                    format!("step {}/{}: {name}", i + 1, TOTAL_STEPS),
                );
                if job.will_fail && i == 2 {
                    break;
                }
            }
        }
    }

    fn finish(&mut self, id: &str, at: f64, st: Status) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        job.status = st;
        job.finished = Some(at);
        // Logs of steps not reached by `at` are dropped.
        job.logs.retain(|l| l.at <= at);
        match st {
            Status::Success => {
                let result = result_for(&job.req, self.seed, at);
                job.result = Some(result.clone());
                job.log(
                    at,
                    "info",
                    "worker",
                    "calibration finished successfully".into(),
                );
                if job.req.use_cache {
                    let e = CacheEntry {
                        result,
                        cached_at: at,
                        source_job_id: id.to_string(),
                        age_group: job.req.age_group.clone(),
                        country: job.req.country.clone(),
                    };
                    self.cache.insert(job.req.cache_key(), e);
                }
            }
            Status::Failed => {
                job.error = Some(json!({
                    "error_type": "CalibrationError",
                    "message": "calibration did not converge at step 3 (running_calibration)",
                    "step": 3,
                }));
                job.log(
                    at,
                    "error",
                    "calibration",
                    "calibration did not converge".into(),
                );
            }
            Status::Timeout => {
                let m = job.req.timeout_minutes;
                job.error = Some(json!({
                    "error_type": "TimeoutError",
                    "message": format!("job exceeded its timeout of {m} minutes"),
                    "timeout_minutes": m,
                }));
                job.log(
                    at,
                    "critical",
                    "worker",
                    format!("job exceeded timeout_minutes={m}"),
                );
            }
            _ => {}
        }
        // fail_fast: the rest of the batch is cancelled.
        let batch = job.batch.clone();
        if matches!(st, Status::Failed | Status::Timeout) {
            if let Some(b) = batch.and_then(|b| self.batches.get(&b).cloned()) {
                if b.fail_fast {
                    for other in &b.job_ids {
                        if let Some(o) = self.jobs.get_mut(other) {
                            if !o.status.finished() {
                                o.status = Status::Cancelled;
                                o.finished = Some(at);
                                o.logs.retain(|l| l.at <= at);
                                o.log(
                                    at,
                                    "warning",
                                    "batch",
                                    format!(
                                        "cancelled: job {id} of batch {} failed (fail_fast)",
                                        b.id
                                    ),
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// Creates a job at `now` (after [`State::advance`]); a cache hit is `success` at once.
    pub fn create(&mut self, req: Request, batch: Option<String>, now: f64) -> String {
        let id = self.new_id("job");
        self.seq += 1;
        let duration = match self.faults.job_duration_s {
            Some(d) => d,
            None => (0..TOTAL_STEPS)
                .map(|_| self.rng.random_range(2.0..=4.0))
                .sum(),
        };
        let mut job = Job {
            id: id.clone(),
            seq: self.seq,
            req,
            batch,
            status: Status::Pending,
            created: now,
            started: None,
            finished: None,
            duration,
            will_fail: false,
            result: None,
            cache_info: None,
            error: None,
            logs: Vec::new(),
        };
        job.log(
            now,
            "info",
            "api",
            format!("job {id} created (priority {})", job.req.priority),
        );
        let hit = if job.req.use_cache {
            let key = job.req.cache_key();
            match self
                .cache
                .get(&key)
                .filter(|e| now - e.cached_at < CACHE_TTL_S)
            {
                Some(e) => {
                    self.cache_hits += 1;
                    Some(e.clone())
                }
                None => {
                    self.cache_misses += 1;
                    None
                }
            }
        } else {
            None
        };
        if let Some(e) = hit {
            let mut result = e.result.clone();
            result["completed_at"] = json!(now);
            job.status = Status::Success;
            job.started = Some(now);
            job.finished = Some(now);
            job.result = Some(result);
            job.cache_info =
                Some(json!({"cached_at": e.cached_at, "source_job_id": e.source_job_id}));
            job.log(
                now,
                "info",
                "cache",
                format!("result served from the cache (job {})", e.source_job_id),
            );
        } else {
            if self.faults.fail_next_jobs > 0 {
                self.faults.fail_next_jobs -= 1;
                job.will_fail = true;
            }
            job.log(now, "debug", "scheduler", "queued".into());
        }
        self.order.push(id.clone());
        self.jobs.insert(id.clone(), job);
        self.schedule(now);
        id
    }

    pub fn create_batch(
        &mut self,
        reqs: Vec<Request>,
        name: Option<String>,
        parallel_limit: usize,
        fail_fast: bool,
        now: f64,
    ) -> String {
        let bid = self.new_id("batch");
        self.batches.insert(
            bid.clone(),
            Batch {
                id: bid.clone(),
                name,
                job_ids: Vec::new(),
                created: now,
                parallel_limit,
                fail_fast,
            },
        );
        let mut ids = Vec::new();
        for r in reqs {
            ids.push(self.create(r, Some(bid.clone()), now));
        }
        if let Some(b) = self.batches.get_mut(&bid) {
            b.job_ids = ids;
        }
        self.schedule(now);
        bid
    }

    /// Cancels a pending or running job: `Err(status)` when it had already finished.
    pub fn cancel(&mut self, id: &str, now: f64) -> Option<Result<(), Status>> {
        let job = self.jobs.get_mut(id)?;
        if job.status.finished() {
            return Some(Err(job.status));
        }
        job.status = Status::Cancelled;
        job.finished = Some(now);
        job.logs.retain(|l| l.at <= now);
        job.log(now, "warning", "api", "job cancelled by request".into());
        self.schedule(now);
        Some(Ok(()))
    }

    /// Removes cached results (all, or those of one age group / country); returns how many.
    pub fn clear_cache(&mut self, age_group: Option<&str>, country: Option<&str>) -> usize {
        let before = self.cache.len();
        self.cache.retain(|_, e| {
            !(age_group.is_none_or(|a| a == e.age_group) && country.is_none_or(|c| c == e.country))
        });
        before - self.cache.len()
    }

    pub fn cache_hit_rate(&self) -> f64 {
        let n = self.cache_hits + self.cache_misses;
        if n == 0 {
            0.0
        } else {
            self.cache_hits as f64 / n as f64
        }
    }

    pub fn pending_count(&self) -> usize {
        self.jobs
            .values()
            .filter(|j| j.status == Status::Pending)
            .count()
    }

    pub fn set_faults(&mut self, f: Faults, now: f64) {
        self.faults = f;
        self.schedule(now);
    }
}

/// A deterministic calibration result for a request (same request + seed = same numbers).
pub fn result_for(req: &Request, seed: u64, completed_at: f64) -> Value {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    req.cache_key().hash(&mut h);
    seed.hash(&mut h);
    let mut rng = StdRng::seed_from_u64(h.finish());
    let raw: Vec<f64> = (0..6).map(|_| rng.random_range(0.05..1.0)).collect();
    let sum: f64 = raw.iter().sum();
    let round = |x: f64| (x * 10_000.0).round() / 10_000.0;
    let uncal: Vec<f64> = raw.iter().map(|x| round(x / sum)).collect();
    let mean: Vec<f64> = uncal
        .iter()
        .map(|x| round(x * rng.random_range(0.9..1.1)))
        .collect();
    let lower: Vec<f64> = mean.iter().map(|x| round(x * 0.8)).collect();
    let upper: Vec<f64> = mean.iter().map(|x| round((x * 1.2).min(1.0))).collect();
    json!({
        "status": "success",
        "uncalibrated": {"insilicova": uncal},
        "calibrated": {"insilicova": {"mean": mean, "lower_ci": lower, "upper_ci": upper}},
        "age_group": req.age_group,
        "country": req.country,
        "completed_at": completed_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(priority: u8) -> Request {
        Request {
            va_data: json!({"insilicova": "use_example"}),
            age_group: "neonate".into(),
            country: "Mozambique".into(),
            mmat_type: "prior".into(),
            ensemble: true,
            priority,
            timeout_minutes: 30,
            use_cache: false,
        }
    }

    fn st() -> State {
        let mut s = State::new(42);
        s.faults.job_duration_s = Some(10.0);
        s
    }

    #[test]
    fn higher_priority_runs_first_ties_in_creation_order() {
        let mut s = st();
        s.faults.worker_slots = 1;
        let first = s.create(req(1), None, 0.0); // takes the only slot at once
        let low = s.create(req(2), None, 0.0);
        let high = s.create(req(9), None, 0.0);
        let high2 = s.create(req(9), None, 0.0);
        s.advance(10.0);
        assert_eq!(s.jobs[&first].status, Status::Success);
        assert_eq!(s.jobs[&high].status, Status::Running);
        assert_eq!(s.jobs[&low].status, Status::Pending);
        s.advance(20.0);
        assert_eq!(
            s.jobs[&high2].status,
            Status::Running,
            "ties in creation order"
        );
        s.advance(30.0);
        assert_eq!(
            s.jobs[&low].status,
            Status::Running,
            "the lowest priority comes last"
        );
        assert_eq!(s.jobs[&low].started, Some(30.0));
        // Without priorities the order would differ: the check is not vacuous.
        assert!(s.jobs[&low].seq < s.jobs[&high].seq);
    }

    #[test]
    fn a_batch_never_runs_more_than_parallel_limit_jobs() {
        let mut s = st();
        s.faults.worker_slots = 10;
        let b = s.create_batch(vec![req(5); 5], None, 2, false, 0.0);
        let running = |s: &State| {
            s.jobs
                .values()
                .filter(|j| j.status == Status::Running)
                .count()
        };
        assert_eq!(running(&s), 2);
        s.advance(10.0);
        assert_eq!(running(&s), 2);
        s.advance(30.0);
        assert!(s.batches[&b]
            .job_ids
            .iter()
            .all(|j| s.jobs[j].status == Status::Success));
        // The last job started after two rounds of two: 2 at a time, never more.
        let last = &s.jobs[&s.batches[&b].job_ids[4]];
        assert_eq!(last.started, Some(20.0));
        // A larger limit runs them together (so the limit, not the slots, held them back).
        let mut s2 = st();
        s2.faults.worker_slots = 10;
        s2.create_batch(vec![req(5); 5], None, 5, false, 0.0);
        assert_eq!(running(&s2), 5);
    }

    #[test]
    fn fail_fast_cancels_the_rest_of_the_batch_and_without_it_they_run_on() {
        for fail_fast in [true, false] {
            let mut s = st();
            s.faults.fail_next_jobs = 1;
            let b = s.create_batch(vec![req(5); 4], None, 1, fail_fast, 0.0);
            s.advance(100.0);
            let statuses: Vec<Status> = s.batches[&b]
                .job_ids
                .iter()
                .map(|j| s.jobs[j].status)
                .collect();
            assert_eq!(statuses[0], Status::Failed);
            let rest = if fail_fast {
                Status::Cancelled
            } else {
                Status::Success
            };
            assert!(
                statuses[1..].iter().all(|x| *x == rest),
                "{fail_fast}: {statuses:?}"
            );
        }
    }

    #[test]
    fn cache_hits_within_the_ttl_and_expires_after_it() {
        let mut s = st();
        let mut r = req(5);
        r.use_cache = true;
        let first = s.create(r.clone(), None, 0.0);
        s.advance(10.0);
        assert_eq!(s.jobs[&first].status, Status::Success);
        let hit = s.create(r.clone(), None, 100.0);
        assert_eq!(s.jobs[&hit].status, Status::Success);
        assert_eq!(
            s.jobs[&hit].cache_info.as_ref().unwrap()["source_job_id"],
            json!(first)
        );
        // cached at 10 s: still there at 3609 s, gone at 3610 s.
        s.advance(3609.0);
        assert_eq!(s.cache.len(), 1);
        s.advance(3610.0);
        assert_eq!(s.cache.len(), 0);
        let miss = s.create(r, None, 3610.0);
        assert_eq!(s.jobs[&miss].status, Status::Running);
        assert_eq!(s.cache_hits, 1);
        assert_eq!(s.cache_misses, 2);
    }

    #[test]
    fn a_job_longer_than_its_timeout_ends_in_timeout() {
        let mut s = st();
        s.faults.job_duration_s = Some(200.0);
        let mut r = req(5);
        r.timeout_minutes = 1;
        let id = s.create(r, None, 0.0);
        s.advance(59.0);
        assert_eq!(s.jobs[&id].status, Status::Running);
        s.advance(60.0);
        assert_eq!(s.jobs[&id].status, Status::Timeout);
    }
}
