//! The calibration service's HTTP API under `/api/v1`, and its `/sim` control endpoints.
//!
//! Every error is `{"detail", "status_code", "timestamp"}` with 400 (invalid parameters, a job
//! that has no result yet or can no longer be cancelled, `confirm=true` missing), 404 (unknown
//! job, batch or path), 405, 413/408 (bodies, see [`crate::serve`]) or 503 (a dependency is
//! down). Query parameters and bodies are read by hand so that every rejection keeps this format.

// Helpers return the finished error response as their `Err` (once per request, never stored).
#![allow(clippy::result_large_err)]

use super::state::{
    Request as CalRequest, State as CalState, Status, BATCH_MAX_SIZE, LOG_LEVELS, MAX_LOG_ENTRIES,
    MAX_TIMEOUT_MINUTES, STATUSES, STEP_NAMES, TOTAL_STEPS,
};
use super::Shared;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::sync::Arc;

type S = State<Arc<Shared>>;

/// The largest `page` of `GET /jobs` and `log_offset` of a job's status (the document's maximum).
pub const MAX_QUERY_INDEX: i64 = 1_000_000;
type Q = Result<Query<Vec<(String, String)>>, QueryRejection>;

fn reply(status: u16, body: Value) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(body)).into_response()
}

/// The documented error body.
pub fn error(status: u16, msg: impl Into<String>) -> Response {
    reply(
        status,
        json!({"detail": msg.into(), "status_code": status, "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}),
    )
}

/// For [`crate::serve::read_body`].
pub fn error_response(status: u16, msg: &str) -> Response {
    error(status, msg)
}

pub fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/calibrate/async", post(create))
        .route("/calibrate/batch", post(create_batch))
        .route("/calibrate/batch/{id}/status", get(batch_status))
        .route("/calibrate/{id}/status", get(status))
        .route("/calibrate/{id}/result", get(result))
        .route("/calibrate/{id}", delete(cancel))
        .route("/jobs", get(list_jobs))
        .route("/jobs/health", get(health))
        .route("/jobs/metrics", get(metrics))
        .route("/cache/stats", get(cache_stats))
        .route("/cache/clear", delete(cache_clear));
    let sim = Router::new()
        .route("/state", get(sim_state))
        .route(
            "/faults",
            get(get_faults).put(put_faults).delete(delete_faults),
        )
        .route("/reset", post(sim_reset));
    Router::new()
        .nest("/api/v1", api.nest("/sim", sim.clone()))
        .nest("/sim", sim)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

async fn not_found(method: Method, uri: Uri) -> Response {
    error(404, format!("Not Found: {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error(405, format!("Method Not Allowed: {method} {}", uri.path()))
}

// ------------------------------------------------------------------ helpers

impl Shared {
    /// Simulated seconds since the simulator started.
    fn now(&self) -> f64 {
        self.clock.start_instant.elapsed().as_secs_f64() / self.clock.scale.max(1e-12)
    }

    /// A simulated instant as an RFC 3339 timestamp (simulated time runs `1/scale` times faster).
    pub fn time(&self, s: f64) -> String {
        let ms = (s * 1000.0).clamp(0.0, 1.0e15) as i64;
        (self.base() + chrono::Duration::milliseconds(ms))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    fn parse_time(&self, text: &str) -> Option<f64> {
        let t = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
        Some((t - self.base()).num_milliseconds() as f64 / 1000.0)
    }

    /// The start, to the millisecond: shown timestamps read back to the instants they show.
    fn base(&self) -> DateTime<Utc> {
        use chrono::DurationRound;
        self.clock
            .start_wall
            .duration_trunc(chrono::Duration::milliseconds(1))
            .unwrap_or(self.clock.start_wall)
    }

    /// Runs `f` on the state brought up to now.
    fn with<R>(&self, f: impl FnOnce(&mut CalState, f64) -> R) -> R {
        let now = self.now();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.advance(now);
        f(&mut st, now)
    }

    fn redis_down(&self) -> bool {
        self.with(|st, _| st.faults.redis_down)
    }
}

fn redis_unavailable() -> Response {
    error(503, "Service unavailable: Redis is not reachable")
}

fn query(q: Q) -> Result<Vec<(String, String)>, Response> {
    q.map(|Query(v)| v)
        .map_err(|e| error(400, format!("invalid query string: {}", e.body_text())))
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// An integer query parameter in `lo..=hi` (the document states both bounds), or `default`.
fn int_param(
    q: &[(String, String)],
    name: &str,
    default: i64,
    lo: i64,
    hi: i64,
) -> Result<i64, Response> {
    match param(q, name) {
        None => Ok(default),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => Err(error(
                400,
                format!("{name} must be an integer between {lo} and {hi} (got '{v}')"),
            )),
        },
    }
}

fn json_body(body: &Bytes) -> Result<serde_json::Map<String, Value>, Response> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| error(400, format!("request body is not valid JSON: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(error(400, "request body must be a JSON object")),
    }
}

/// A JSON integer: `13` or `13.0` (JSON Schema's `integer` is any number with no fraction, as
/// the service's own validation reads it too).
fn json_int(v: &Value) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    (f.fract() == 0.0 && f.abs() <= 9.0e15).then_some(f as i64)
}

/// An optional integer field in `lo..=hi`: absent is `default`; `null` is refused (the document
/// does not allow it).
fn int_field(
    m: &serde_json::Map<String, Value>,
    at: &str,
    k: &str,
    default: i64,
    lo: i64,
    hi: i64,
) -> Result<i64, String> {
    match m.get(k) {
        None => Ok(default),
        Some(v) => match json_int(v) {
            Some(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => Err(format!(
                "{at}{k} must be an integer between {lo} and {hi} (got {v})"
            )),
        },
    }
}

/// An optional boolean field: absent is `default`; `null` is refused.
fn bool_field(
    m: &serde_json::Map<String, Value>,
    at: &str,
    k: &str,
    default: bool,
) -> Result<bool, String> {
    match m.get(k) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(format!("{at}{k} must be a boolean (got {v})")),
    }
}

/// Validates one calibration request (`at` names it in messages, e.g. `jobs[3].`). Optional
/// fields may be left out (their defaults apply) but not set to `null`, as the document says.
pub fn validate(m: &serde_json::Map<String, Value>, at: &str) -> Result<CalRequest, String> {
    let va = m.get("va_data").ok_or(format!("{at}va_data is required"))?;
    let ins = va
        .as_object()
        .and_then(|o| o.get("insilicova"))
        .ok_or(format!("{at}va_data must be an object with `insilicova`"))?;
    if ins != "use_example" && !ins.is_array() {
        return Err(format!(
            "{at}va_data.insilicova must be \"use_example\" or a list of records"
        ));
    }
    let age_group = match m.get("age_group").and_then(Value::as_str) {
        Some(a @ ("neonate" | "child")) => a.to_string(),
        Some(a) => {
            return Err(format!(
                "{at}age_group: '{a}' is not valid; allowed: neonate, child"
            ))
        }
        None => return Err(format!("{at}age_group is required (neonate or child)")),
    };
    let country = match m.get("country") {
        None => "Mozambique".to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(format!("{at}country must be a non-empty string")),
    };
    let mmat_type = match m.get("mmat_type") {
        None => "prior".to_string(),
        Some(Value::String(s)) if s == "prior" || s == "Nprior" => s.clone(),
        Some(v) => {
            return Err(format!(
                "{at}mmat_type: {v} is not valid; allowed: prior, Nprior"
            ))
        }
    };
    let ensemble = bool_field(m, at, "ensemble", true)?;
    let use_cache = bool_field(m, at, "use_cache", true)?;
    let priority = int_field(m, at, "priority", 5, 1, 10)? as u8;
    let timeout_minutes =
        int_field(m, at, "timeout_minutes", 30, 1, MAX_TIMEOUT_MINUTES as i64)? as u64;
    Ok(CalRequest {
        va_data: va.clone(),
        age_group,
        country,
        mmat_type,
        ensemble,
        priority,
        timeout_minutes,
        use_cache,
    })
}

// ------------------------------------------------------------------ jobs

async fn create(State(sh): S, body: Bytes) -> Response {
    if sh.redis_down() {
        return redis_unavailable();
    }
    let m = match json_body(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let req = match validate(&m, "") {
        Ok(r) => r,
        Err(e) => return error(400, e),
    };
    let r = sh.with(|st, now| {
        if st.faults.celery_down {
            return Err(error(
                503,
                "Service unavailable: no Celery worker is reachable",
            ));
        }
        Ok(st.create(req, None, now))
    });
    match r {
        Ok(id) => reply(200, json!({"job_id": id, "status": "created"})),
        Err(r) => r,
    }
}

async fn create_batch(State(sh): S, body: Bytes) -> Response {
    if sh.redis_down() {
        return redis_unavailable();
    }
    let m = match json_body(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(jobs) = m.get("jobs").and_then(Value::as_array) else {
        return error(400, "jobs is required: a list of calibration requests");
    };
    if jobs.is_empty() || jobs.len() > BATCH_MAX_SIZE {
        return error(
            400,
            format!(
                "jobs must hold 1 to {BATCH_MAX_SIZE} requests (got {})",
                jobs.len()
            ),
        );
    }
    let mut reqs = Vec::new();
    for (i, j) in jobs.iter().enumerate() {
        let Some(o) = j.as_object() else {
            return error(400, format!("jobs[{i}] must be an object"));
        };
        match validate(o, &format!("jobs[{i}].")) {
            Ok(r) => reqs.push(r),
            Err(e) => return error(400, e),
        }
    }
    let name = match m.get("batch_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return error(400, "batch_name must be a string"),
    };
    let parallel_limit = match int_field(&m, "", "parallel_limit", 5, 1, BATCH_MAX_SIZE as i64) {
        Ok(n) => n as usize,
        Err(e) => return error(400, e),
    };
    let fail_fast = match bool_field(&m, "", "fail_fast", false) {
        Ok(b) => b,
        Err(e) => return error(400, e),
    };
    let r = sh.with(|st, now| {
        if st.faults.celery_down {
            return Err(error(
                503,
                "Service unavailable: no Celery worker is reachable",
            ));
        }
        let bid = st.create_batch(reqs, name.clone(), parallel_limit, fail_fast, now);
        let b = &st.batches[&bid];
        Ok(json!({
            "batch_id": bid,
            "job_ids": b.job_ids,
            "batch_metadata": {
                "batch_id": bid,
                "batch_name": b.name,
                "total_jobs": b.job_ids.len(),
                "created_at": sh.time(b.created),
                "parallel_limit": b.parallel_limit,
                "fail_fast": b.fail_fast,
            },
        }))
    });
    match r {
        Ok(v) => reply(200, v),
        Err(r) => r,
    }
}

async fn batch_status(State(sh): S, Path(id): Path<String>) -> Response {
    if sh.redis_down() {
        return redis_unavailable();
    }
    sh.with(|st, _| {
        let Some(b) = st.batches.get(&id) else {
            return error(404, format!("Batch {id} not found"));
        };
        let count = |s: &[Status]| b.job_ids.iter().filter(|j| s.contains(&st.jobs[*j].status)).count();
        let (done, failed) = (count(&[Status::Success]), count(&[Status::Failed, Status::Timeout]));
        let (running, pending) = (count(&[Status::Running]), count(&[Status::Pending]));
        let cancelled = count(&[Status::Cancelled]);
        let batch_status = if pending == b.job_ids.len() {
            "pending"
        } else if running + pending > 0 {
            "running"
        } else if failed > 0 {
            "failed"
        } else if cancelled > 0 {
            "cancelled"
        } else {
            "completed"
        };
        reply(200, json!({
            "batch_id": id,
            "batch_name": b.name,
            "total_jobs": b.job_ids.len(),
            "completed_jobs": done,
            "failed_jobs": failed,
            "running_jobs": running,
            "pending_jobs": pending,
            "cancelled_jobs": cancelled,
            "batch_status": batch_status,
            "job_statuses": b.job_ids.iter().map(|j| json!({"job_id": j, "status": st.jobs[j].status.as_str()})).collect::<Vec<_>>(),
        }))
    })
}

fn metadata(sh: &Shared, j: &super::state::Job) -> Value {
    json!({
        "job_id": j.id,
        "job_type": if j.batch.is_some() { "batch_calibration" } else { "calibration" },
        "created_at": sh.time(j.created),
        "started_at": j.started.map(|s| sh.time(s)),
        "completed_at": j.finished.map(|s| sh.time(s)),
        "priority": j.req.priority,
        "batch_id": j.batch,
        "age_group": j.req.age_group,
        "country": j.req.country,
        "timeout_minutes": j.req.timeout_minutes,
    })
}

async fn status(State(sh): S, Path(id): Path<String>, q: Q) -> Response {
    let q = match query(q) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let level = param(&q, "log_level");
    let min_level = match level {
        None => 0,
        Some(l) => match LOG_LEVELS.iter().position(|x| *x == l) {
            Some(i) => i,
            None => {
                return error(
                    400,
                    format!(
                        "log_level: '{l}' is not valid; allowed: {}",
                        LOG_LEVELS.join(", ")
                    ),
                )
            }
        },
    };
    let limit = match int_param(&q, "log_limit", 100, 1, MAX_LOG_ENTRIES as i64) {
        Ok(n) => n as usize,
        Err(r) => return r,
    };
    let offset = match int_param(&q, "log_offset", 0, 0, MAX_QUERY_INDEX) {
        Ok(n) => n as usize,
        Err(r) => return r,
    };
    if sh.redis_down() {
        return redis_unavailable();
    }
    sh.with(|st, now| {
        let Some(j) = st.jobs.get(&id) else {
            return error(404, format!("Job {id} not found"));
        };
        let (step, pct) = j.progress(now);
        let logs: Vec<Value> = j
            .logs
            .iter()
            .filter(|l| l.at <= now)
            .filter(|l| LOG_LEVELS.iter().position(|x| *x == l.level).unwrap_or(0) >= min_level)
            .skip(offset)
            .take(limit)
            .map(|l| json!({"timestamp": sh.time(l.at), "level": l.level, "message": l.message, "component": l.component}))
            .collect();
        let step_name = match (j.status, step) {
            (Status::Pending, _) => "queued",
            (Status::Success, _) => "completed",
            (_, 0) => "queued",
            (_, n) => STEP_NAMES[(n - 1) as usize],
        };
        let eta = match (j.status, j.started) {
            (Status::Running, Some(s)) => Some(sh.time(s + j.duration)),
            _ => None,
        };
        reply(200, json!({
            "job_id": j.id,
            "status": j.status.as_str(),
            "progress": {
                "current_step": step,
                "total_steps": TOTAL_STEPS,
                "step_name": step_name,
                "progress_percentage": pct,
                "estimated_completion": eta,
            },
            "metadata": metadata(&sh, j),
            "logs": logs,
            "result_summary": j.result.as_ref().map(|r| json!({
                "age_group": r["age_group"], "country": r["country"],
                "calibrated_mean": r["calibrated"]["insilicova"]["mean"],
                "from_cache": j.cache_info.is_some(),
            })),
            "error_details": j.error,
        }))
    })
}

async fn result(State(sh): S, Path(id): Path<String>) -> Response {
    if sh.redis_down() {
        return redis_unavailable();
    }
    sh.with(|st, _| {
        let Some(j) = st.jobs.get(&id) else {
            return error(404, format!("Job {id} not found"));
        };
        let Some(r) = &j.result else {
            return error(
                400,
                format!(
                    "Job {id} has no result: its status is {}",
                    j.status.as_str()
                ),
            );
        };
        let mut r = r.clone();
        r["completed_at"] = json!(sh.time(r["completed_at"].as_f64().unwrap_or(0.0)));
        reply(
            200,
            json!({
                "job_id": j.id,
                "status": "success",
                "result": r,
                "metadata": metadata(&sh, j),
                "cache_info": j.cache_info.as_ref().map(|c| json!({
                    "cached_at": sh.time(c["cached_at"].as_f64().unwrap_or(0.0)),
                    "source_job_id": c["source_job_id"],
                })),
            }),
        )
    })
}

async fn cancel(State(sh): S, Path(id): Path<String>) -> Response {
    if sh.redis_down() {
        return redis_unavailable();
    }
    match sh.with(|st, now| st.cancel(&id, now)) {
        None => error(404, format!("Job {id} not found")),
        Some(Err(s)) => error(
            400,
            format!(
                "Job {id} cannot be cancelled: it has already finished ({})",
                s.as_str()
            ),
        ),
        Some(Ok(())) => reply(200, json!({"job_id": id, "status": "cancelled"})),
    }
}

async fn list_jobs(State(sh): S, q: Q) -> Response {
    let q = match query(q) {
        Ok(q) => q,
        Err(r) => return r,
    };
    for (k, _) in &q {
        if ![
            "status",
            "job_type",
            "age_group",
            "country",
            "created_after",
            "created_before",
            "page",
            "page_size",
        ]
        .contains(&k.as_str())
        {
            return error(400, format!("unknown query parameter `{k}`"));
        }
    }
    let status = param(&q, "status");
    if let Some(s) = status {
        if !STATUSES.contains(&s) {
            return error(
                400,
                format!(
                    "status: '{s}' is not valid; allowed: {}",
                    STATUSES.join(", ")
                ),
            );
        }
    }
    let job_type = param(&q, "job_type");
    if let Some(t) = job_type {
        if t != "calibration" && t != "batch_calibration" {
            return error(
                400,
                format!("job_type: '{t}' is not valid; allowed: calibration, batch_calibration"),
            );
        }
    }
    let age_group = param(&q, "age_group");
    if let Some(a) = age_group {
        if a != "neonate" && a != "child" {
            return error(
                400,
                format!("age_group: '{a}' is not valid; allowed: neonate, child"),
            );
        }
    }
    let country = param(&q, "country");
    let mut bounds = [None, None];
    for (i, k) in ["created_after", "created_before"].iter().enumerate() {
        if let Some(v) = param(&q, k) {
            match sh.parse_time(v) {
                Some(t) => bounds[i] = Some(t),
                None => {
                    return error(
                        400,
                        format!("{k}: '{v}' is not an ISO 8601 date-time with a time zone"),
                    )
                }
            }
        }
    }
    let page = match int_param(&q, "page", 1, 1, MAX_QUERY_INDEX) {
        Ok(n) => n as usize,
        Err(r) => return r,
    };
    let page_size = match int_param(&q, "page_size", 20, 1, 100) {
        Ok(n) => n as usize,
        Err(r) => return r,
    };
    if sh.redis_down() {
        return redis_unavailable();
    }
    sh.with(|st, _| {
        // Newest first; created_after/created_before are exclusive bounds.
        let all: Vec<&super::state::Job> = st
            .order
            .iter()
            .rev()
            .map(|id| &st.jobs[id])
            .filter(|j| status.is_none_or(|s| j.status.as_str() == s))
            .filter(|j| job_type.is_none_or(|t| (t == "batch_calibration") == j.batch.is_some()))
            .filter(|j| age_group.is_none_or(|a| j.req.age_group == a))
            .filter(|j| country.is_none_or(|c| j.req.country == c))
            // Compared at the millisecond precision of the timestamps the API shows.
            .filter(|j| bounds[0].is_none_or(|t| ms(j.created) > ms(t)))
            .filter(|j| bounds[1].is_none_or(|t| ms(j.created) < ms(t)))
            .collect();
        let total = all.len();
        let items: Vec<Value> = all
            .iter()
            .skip((page - 1).saturating_mul(page_size))
            .take(page_size)
            .map(|j| {
                json!({
                    "job_id": j.id,
                    "job_type": if j.batch.is_some() { "batch_calibration" } else { "calibration" },
                    "created_at": sh.time(j.created),
                    "priority": j.req.priority,
                    "status": j.status.as_str(),
                })
            })
            .collect();
        reply(
            200,
            json!({
                "jobs": items,
                "total_count": total,
                "page": page,
                "page_size": page_size,
                "has_next": page.saturating_mul(page_size) < total,
            }),
        )
    })
}

fn ms(s: f64) -> i64 {
    (s * 1000.0).clamp(0.0, 1.0e15) as i64
}

async fn health(State(sh): S) -> Response {
    let (redis, celery, pending, cached) = sh.with(|st, _| {
        (
            !st.faults.redis_down,
            !st.faults.celery_down,
            st.pending_count(),
            st.cache.len(),
        )
    });
    let word = |ok: bool| if ok { "healthy" } else { "unhealthy" };
    let body = json!({
        "status": word(redis && celery),
        "redis": word(redis),
        "celery": word(celery),
        "queue_stats": {"pending_jobs": pending, "cached_results": cached},
        "timestamp": sh.time(sh.now()),
    });
    reply(if redis && celery { 200 } else { 503 }, body)
}

async fn metrics(State(sh): S, q: Q) -> Response {
    let q = match query(q) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let range = param(&q, "time_range").unwrap_or("24h");
    let secs = match range {
        "1h" => 3600.0,
        "24h" => 86_400.0,
        "7d" => 604_800.0,
        "30d" => 2_592_000.0,
        other => {
            return error(
                400,
                format!("time_range: '{other}' is not valid; allowed: 1h, 24h, 7d, 30d"),
            )
        }
    };
    if sh.redis_down() {
        return redis_unavailable();
    }
    sh.with(|st, now| {
        let jobs: Vec<_> = st
            .jobs
            .values()
            .filter(|j| now - j.created <= secs)
            .collect();
        let finished: Vec<_> = jobs
            .iter()
            .filter(|j| j.status.finished() && j.status != Status::Cancelled)
            .collect();
        let ratio = |n: usize| {
            if finished.is_empty() {
                0.0
            } else {
                n as f64 / finished.len() as f64
            }
        };
        let ok = finished
            .iter()
            .filter(|j| j.status == Status::Success)
            .count();
        let durations: Vec<f64> = finished
            .iter()
            .filter_map(|j| Some(j.finished? - j.started?))
            .collect();
        let avg = if durations.is_empty() {
            0.0
        } else {
            durations.iter().sum::<f64>() / durations.len() as f64
        };
        reply(
            200,
            json!({
                "time_range": range,
                "total_jobs": jobs.len(),
                "success_rate": ratio(ok),
                "average_duration_seconds": (avg * 1000.0).round() / 1000.0,
                "cache_hit_rate": st.cache_hit_rate(),
                "error_rate": ratio(finished.len() - ok),
            }),
        )
    })
}

async fn cache_stats(State(sh): S) -> Response {
    if sh.redis_down() {
        return redis_unavailable();
    }
    sh.with(|st, _| {
        let times: Vec<f64> = st.cache.values().map(|e| e.cached_at).collect();
        let size: usize = st.cache.values().map(|e| e.result.to_string().len()).sum();
        reply(
            200,
            json!({
                "total_cached_results": st.cache.len(),
                "cache_hit_rate": st.cache_hit_rate(),
                "total_cache_size_mb": (size as f64 / 1_048_576.0 * 10_000.0).round() / 10_000.0,
                "oldest_cached_result": times.iter().copied().reduce(f64::min).map(|t| sh.time(t)),
                "newest_cached_result": times.iter().copied().reduce(f64::max).map(|t| sh.time(t)),
            }),
        )
    })
}

async fn cache_clear(State(sh): S, q: Q) -> Response {
    let q = match query(q) {
        Ok(q) => q,
        Err(r) => return r,
    };
    if param(&q, "confirm") != Some("true") {
        return error(400, "clearing the cache needs confirm=true");
    }
    let (a, c) = (param(&q, "age_group"), param(&q, "country"));
    if let Some(a) = a {
        if a != "neonate" && a != "child" {
            return error(
                400,
                format!("age_group: '{a}' is not valid; allowed: neonate, child"),
            );
        }
    }
    if sh.redis_down() {
        return redis_unavailable();
    }
    let n = sh.with(|st, _| st.clear_cache(a, c));
    reply(
        200,
        json!({"cleared_results": n, "message": format!("cleared {n} cached results")}),
    )
}

// ------------------------------------------------------------------ /sim

async fn sim_state(State(sh): S) -> Response {
    sh.with(|st, now| {
        reply(200, json!({
            "config": {"service": "calibration", "time_scale": sh.clock.scale, "seed": st.seed},
            "now": sh.time(now),
            "faults": st.faults.to_json(),
            "jobs": st.order.iter().map(|id| {
                let j = &st.jobs[id];
                json!({"job_id": id, "status": j.status.as_str(), "priority": j.req.priority, "batch_id": j.batch,
                       "created_at": sh.time(j.created), "started_at": j.started.map(|s| sh.time(s)),
                       "finished_at": j.finished.map(|s| sh.time(s)), "duration_s": j.duration})
            }).collect::<Vec<_>>(),
            "batches": st.batches.len(),
            "cached_results": st.cache.len(),
        }))
    })
}

async fn get_faults(State(sh): S) -> Response {
    reply(200, sh.with(|st, _| st.faults.to_json()))
}

async fn put_faults(State(sh): S, body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(400, format!("faults body is not valid JSON: {e}")),
    };
    let r = sh.with(|st, now| {
        let f = st.faults.merged(&v)?;
        st.set_faults(f, now);
        Ok::<Value, String>(st.faults.to_json())
    });
    match r {
        Ok(v) => reply(200, v),
        Err(m) => error(400, m),
    }
}

async fn delete_faults(State(sh): S) -> Response {
    reply(
        200,
        sh.with(|st, now| {
            st.set_faults(Default::default(), now);
            st.faults.to_json()
        }),
    )
}

async fn sim_reset(State(sh): S) -> Response {
    sh.with(|st, _| *st = CalState::new(st.seed));
    reply(200, json!({"reset": true}))
}
