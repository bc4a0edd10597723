//! Focus Server HTTP API and the `/sim` control endpoints.

use super::clock;
use super::state::{Faults, Mode, ValidConfig, MAX_CHANNEL, NFFT_ALLOWED, NYQUIST, PRR};
use super::Shared;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

type S = State<Arc<Shared>>;

pub fn reply(status: u16, body: Value) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(body)).into_response()
}

pub fn detail(status: u16, msg: impl Into<String>) -> Response {
    reply(status, json!({"detail": msg.into()}))
}

/// `{"detail": ...}` error (for [`super::serve::read_body`]).
pub fn error_response(status: u16, msg: &str) -> Response {
    detail(status, msg)
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/configure", post(configure))
        .route("/metadata/{job_id}", get(metadata))
        .route("/job/{job_id}", delete(cancel))
        .route("/jobs", get(list_jobs))
        .route("/channels", get(channels))
        .route("/live_metadata", get(live_metadata))
        .route("/recordings", get(recordings))
        .route("/sim/state", get(sim_state))
        .route(
            "/sim/faults",
            put(put_faults).delete(delete_faults).get(get_faults),
        )
        .route("/sim/reset", post(sim_reset))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            response_faults,
        ))
        .with_state(shared)
}

/// The response faults: `slow_responses_ms` (answer late) and `reset_responses` (break off in
/// the middle of the body), on the Focus API only, never on `/sim`.
async fn response_faults(State(shared): S, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/sim") {
        return next.run(req).await;
    }
    // The modelled time the server takes (seeded draws, scaled like every simulated delay),
    // then the `slow_responses_ms` fault on top.
    let (latency, ms) = shared.with(|st, _| {
        let secs = st.focus_latency(req.method(), req.uri().path());
        (st.clock.scaled(secs), st.faults.slow_responses_ms)
    });
    tokio::time::sleep(latency + Duration::from_millis(ms)).await;
    let resp = next.run(req).await;
    let reset = shared.with(|st, _| {
        let f = &mut st.faults;
        let take = f.reset_responses > 0;
        f.reset_responses -= u64::from(take);
        take
    });
    if !reset {
        return resp;
    }
    // The head (with its Content-Length) and half the body go out; then the body fails, and
    // hyper closes the connection, as a server that crashes or a proxy that resets mid-answer.
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    // The failure comes a moment later, so the part before it has left (hyper drops what it
    // still buffers when a body fails).
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(half) }).chain(
        futures::stream::once(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset_responses fault",
            ))
        }),
    );
    let mut cut = Response::from_parts(parts, axum::body::Body::from_stream(stream));
    cut.headers_mut().insert(
        axum::http::header::CONTENT_LENGTH,
        axum::http::HeaderValue::from(bytes.len()),
    );
    cut
}

async fn not_found(method: Method, uri: Uri) -> Response {
    detail(404, format!("Not Found: {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    detail(405, format!("Method Not Allowed: {method} {}", uri.path()))
}

async fn health(State(shared): S) -> Response {
    let body = shared.with(|st, _| {
        json!({
            "status": "ok",
            "jobs": st.open_count(),
            "capacity": st.faults.capacity,
            "live_data": st.faults.live_data,
        })
    });
    reply(200, body)
}

// ------------------------------------------------------------------ validation

/// An integer, also written as an integral number (`1024.0`, `1e3`), as JSON Schema and
/// pydantic read it; beyond i128 it saturates (still "an integer" for the range checks).
fn as_int(v: &Value) -> Option<i128> {
    v.as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.is_finite() && f.fract() == 0.0)
                .map(|f| f as i128)
        })
}

/// Type/required checks (422), then range checks (400), in the documented order.
pub fn validate(body: &[u8]) -> Result<ValidConfig, (u16, String)> {
    let e422 = |m: String| (422u16, m);
    let root: Value = serde_json::from_slice(body)
        .map_err(|e| e422(format!("request body is not valid JSON: {e}")))?;
    let obj = root
        .as_object()
        .ok_or_else(|| e422("request body must be a JSON object".into()))?;

    // --- 422: presence and JSON types
    let dtad = obj
        .get("displayTimeAxisDuration")
        .ok_or_else(|| e422("displayTimeAxisDuration is required".into()))?;
    let dtad = dtad
        .as_f64()
        .ok_or_else(|| e422("displayTimeAxisDuration must be a number".into()))?;
    let nfft = obj
        .get("nfftSelection")
        .ok_or_else(|| e422("nfftSelection is required".into()))?;
    let nfft = as_int(nfft).ok_or_else(|| e422("nfftSelection must be an integer".into()))?;

    // Both the current and the legacy name are validated when both are sent; the current
    // one is used.
    let displays = present(obj, "displayInfo", "canvasInfo");
    if displays.is_empty() {
        return Err(e422(
            "displayInfo (or legacy canvasInfo) is required".into(),
        ));
    }
    let mut heights = Vec::new();
    for (name, di) in displays {
        let di = di
            .as_object()
            .ok_or_else(|| e422(format!("{name} must be an object")))?;
        let height = di
            .get("height")
            .ok_or_else(|| e422(format!("{name}.height is required")))?;
        let height =
            as_int(height).ok_or_else(|| e422(format!("{name}.height must be an integer")))?;
        heights.push((name, height));
    }
    let (di_name, height) = heights[0];

    let channel_sets = present(obj, "channels", "sensors");
    if channel_sets.is_empty() {
        return Err(e422("channels (or legacy sensors) is required".into()));
    }
    let mut channels = Vec::new();
    for (name, ch) in channel_sets {
        let ch = ch
            .as_object()
            .ok_or_else(|| e422(format!("{name} must be an object")))?;
        let mut vals = [0i128; 2];
        for (i, k) in ["min", "max"].iter().enumerate() {
            let v = ch
                .get(*k)
                .ok_or_else(|| e422(format!("{name}.{k} is required")))?;
            vals[i] = as_int(v).ok_or_else(|| e422(format!("{name}.{k} must be an integer")))?;
        }
        channels.push((name, vals));
    }

    let fr = obj
        .get("frequencyRange")
        .ok_or_else(|| e422("frequencyRange is required".into()))?;
    let fr = fr
        .as_object()
        .ok_or_else(|| e422("frequencyRange must be an object".into()))?;
    let mut fr_vals = [(0f64, Value::Null), (0f64, Value::Null)];
    for (i, k) in ["min", "max"].iter().enumerate() {
        let v = fr
            .get(*k)
            .ok_or_else(|| e422(format!("frequencyRange.{k} is required")))?;
        let n = v
            .as_f64()
            .ok_or_else(|| e422(format!("frequencyRange.{k} must be a number")))?;
        fr_vals[i] = (n, v.clone());
    }

    let vt = obj
        .get("view_type")
        .ok_or_else(|| e422("view_type is required".into()))?;
    let vt = as_int(vt).ok_or_else(|| e422("view_type must be an integer".into()))?;

    let mut times: [Option<String>; 2] = [None, None];
    for (i, k) in ["start_time", "end_time"].iter().enumerate() {
        match obj.get(*k) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => times[i] = Some(s.clone()),
            Some(_) => return Err(e422(format!("{k} must be a string (yymmddHHMMSS) or null"))),
        }
    }

    // --- 400: values
    let e400 = |m: String| (400u16, m);
    for (ch_name, [cmin, cmax]) in &channels {
        if *cmin < 0 {
            return Err(e400(format!("{ch_name}: min ({cmin}) must be >= 0")));
        }
        if *cmax > i128::from(MAX_CHANNEL) {
            return Err(e400(format!(
                "{ch_name}: max ({cmax}) must be <= {MAX_CHANNEL} (highest channel)"
            )));
        }
        if cmin > cmax {
            return Err(e400(format!(
                "{ch_name}: min ({cmin}) must not be greater than max ({cmax})"
            )));
        }
    }
    let [cmin, cmax] = channels[0].1;
    let ((fmin, fmin_v), (fmax, fmax_v)) = (&fr_vals[0], &fr_vals[1]);
    if *fmin < 0.0 {
        return Err(e400(format!("frequencyRange: min ({fmin_v}) must be >= 0")));
    }
    if *fmax > f64::from(NYQUIST) {
        return Err(e400(format!(
            "frequencyRange: max ({fmax_v}) must be <= {NYQUIST} (Nyquist frequency, PRR {PRR} Hz)"
        )));
    }
    if fmin >= fmax {
        return Err(e400(format!(
            "frequencyRange: min ({fmin_v}) must be less than max ({fmax_v})"
        )));
    }
    if !NFFT_ALLOWED.iter().any(|n| i128::from(*n) == nfft) {
        let allowed: Vec<String> = NFFT_ALLOWED.iter().map(|n| n.to_string()).collect();
        return Err(e400(format!(
            "nfftSelection: {nfft} is not allowed; allowed values: {}",
            allowed.join(", ")
        )));
    }
    if dtad <= 0.0 {
        return Err(e400(format!(
            "displayTimeAxisDuration must be > 0 (got {dtad})"
        )));
    }
    for (name, height) in &heights {
        if *height <= 0 {
            return Err(e400(format!("{name}.height must be > 0 (got {height})")));
        }
    }
    if vt != 0 && vt != 1 {
        return Err(e400(format!("view_type: {vt} is not a valid view type; allowed: 0 (MULTICHANNEL), 1 (SINGLECHANNEL)")));
    }
    let (mode, start, end) = match (&times[0], &times[1]) {
        (None, None) => (Mode::Live, None, None),
        (Some(s), Some(e)) => {
            let st = clock::parse_focus_time(s).ok_or_else(|| {
                e400(format!(
                    "start_time: '{s}' is not a valid yymmddHHMMSS time (UTC)"
                ))
            })?;
            let et = clock::parse_focus_time(e).ok_or_else(|| {
                e400(format!(
                    "end_time: '{e}' is not a valid yymmddHHMMSS time (UTC)"
                ))
            })?;
            if et <= st {
                return Err(e400("end_time must be after start_time".into()));
            }
            (Mode::Historic, Some(st), Some(et))
        }
        _ => {
            return Err(e400(
                "start_time and end_time must both be set (historic) or both be null (live)".into(),
            ));
        }
    };

    let num = |v: &Value| v.clone();
    let config = json!({
        "displayTimeAxisDuration": num(&obj["displayTimeAxisDuration"]),
        "nfftSelection": nfft as i64,
        "displayInfo": {"height": u64::try_from(height).map(Value::from).unwrap_or_else(|_| num(&obj[di_name]["height"]))},
        "channels": {"min": cmin as i64, "max": cmax as i64},
        "frequencyRange": {"min": fmin_v, "max": fmax_v},
        "start_time": times[0],
        "end_time": times[1],
        "view_type": vt as i64,
    });
    Ok(ValidConfig {
        mode,
        start,
        end,
        config,
    })
}

/// The present ones of (current name, legacy name), the current first.
fn present<'a>(
    obj: &'a Map<String, Value>,
    name: &'static str,
    legacy: &'static str,
) -> Vec<(&'static str, &'a Value)> {
    [name, legacy]
        .into_iter()
        .filter_map(|n| obj.get(n).map(|v| (n, v)))
        .collect()
}

/// JSON bodies need a JSON content type: `application/json` or `application/<x>+json`, any
/// parameters (charset). No `Content-Type` at all is read as JSON, as FastAPI does; any other
/// type answers 415.
#[allow(clippy::result_large_err)]
pub fn check_json_content_type(headers: &HeaderMap) -> Result<(), Response> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let shown = String::from_utf8_lossy(ct.as_bytes()).into_owned();
    let essence = shown
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = match essence.split_once('/') {
        Some(("application", sub)) => sub == "json" || sub.ends_with("+json"),
        _ => false,
    };
    if json {
        Ok(())
    } else {
        Err(detail(
            415,
            format!(
                "Unsupported Media Type: Content-Type '{shown}'; the body must be application/json"
            ),
        ))
    }
}

async fn configure(
    State(shared): S,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(r) = check_json_content_type(&headers) {
        return r;
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return detail(
                e.status().as_u16().clamp(400, 499),
                format!("request body could not be read: {}", e.body_text()),
            )
        }
    };
    let valid = match validate(&body) {
        Ok(v) => v,
        Err((code, msg)) => return detail(code, msg),
    };
    match shared.with(|st, now| st.configure(valid, now)) {
        Ok(v) => reply(200, v),
        Err((code, msg)) => detail(code, msg),
    }
}

async fn metadata(State(shared): S, id: Result<Path<String>, PathRejection>) -> Response {
    let Ok(Path(id)) = id else {
        return detail(404, "Invalid job_id");
    };
    let out = shared.with(|st, now| {
        let job = st.job(&id)?;
        if !job.is_open() || !job.consumer_ready(now) {
            return None;
        }
        Some(json!({
            "job_id": job.id,
            "status": job.status(now),
            "mode": job.mode.as_str(),
            "stream_url": st.cfg.stream_ip,
            "stream_port": job.port,
            "config": job.config,
            "consumer_ready_after_ms": job.consumer_delay_ms,
        }))
    });
    match out {
        Some(v) => reply(200, v),
        None => detail(404, "Invalid job_id"),
    }
}

async fn cancel(State(shared): S, id: Result<Path<String>, PathRejection>) -> Response {
    let Ok(Path(id)) = id else {
        return detail(404, "Unknown job_id");
    };
    match shared.with(|st, now| st.cancel(&id, now)) {
        Ok(v) => reply(200, v),
        Err((code, msg)) => detail(code, msg),
    }
}

async fn list_jobs(State(shared): S) -> Response {
    let body = shared.with(|st, now| {
        let jobs: Vec<Value> = st
            .jobs()
            .filter(|j| j.is_open())
            .map(|j| st.job_summary(j, now))
            .collect();
        json!({"count": jobs.len(), "jobs": jobs})
    });
    // keep "jobs" first in the document
    let count = body["count"].clone();
    reply(200, json!({"jobs": body["jobs"], "count": count}))
}

async fn channels() -> Response {
    reply(
        200,
        json!({"min": 0, "max": MAX_CHANNEL, "count": MAX_CHANNEL + 1}),
    )
}

async fn live_metadata(State(shared): S) -> Response {
    if !shared.with(|st, _| st.faults.live_data) {
        return detail(404, "No live data: the live stream is not available");
    }
    reply(
        200,
        json!({"prr": PRR, "nyquist": NYQUIST, "channels": {"min": 0, "max": MAX_CHANNEL}, "live": true}),
    )
}

async fn recordings(
    State(shared): S,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return detail(400, "query string could not be parsed");
    };
    let mut parsed = Vec::new();
    for k in ["start_time", "end_time"] {
        let Some(s) = q.get(k) else {
            return detail(
                400,
                format!("{k} query parameter is required (yymmddHHMMSS)"),
            );
        };
        match clock::parse_focus_time(s) {
            Some(t) => parsed.push(t),
            None => {
                return detail(
                    400,
                    format!("{k}: '{s}' is not a valid yymmddHHMMSS time (UTC)"),
                )
            }
        }
    }
    let (start, end) = (parsed[0], parsed[1]);
    if end <= start {
        return detail(400, "end_time must be after start_time");
    }
    let body = shared.with(|st, _| {
        let recs: Vec<Value> = st.overlap(start, end).iter().map(|r| r.to_json()).collect();
        json!({"recordings": recs, "covered": st.covered(start, end)})
    });
    reply(200, body)
}

// ------------------------------------------------------------------ /sim

async fn sim_state(State(shared): S) -> Response {
    let body = shared.with(|st, now| {
        let c = &st.cfg;
        json!({
            "config": {
                "time_scale": c.time_scale,
                "capacity": c.capacity,
                "seed": c.seed,
                "namespace": c.namespace,
                "stream_ip": c.stream_ip,
                "port_range": [c.port_range.0, c.port_range.1],
                "instance": c.instance,
            },
            "faults": st.faults.to_json(),
            "jobs": st.jobs().map(|j| st.job_detail(j, now)).collect::<Vec<_>>(),
            "open_jobs": st.open_count(),
            "kube": {
                "jobs": st.store.count(super::store::Kind::Job),
                "pods": st.store.count(super::store::Kind::Pod),
                "events": st.store.count(super::store::Kind::Event),
                "resource_version": st.store.resource_version().to_string(),
            },
            "kube_api": st.kube_api.to_json(),
        })
    });
    reply(200, body)
}

async fn get_faults(State(shared): S) -> Response {
    reply(200, shared.with(|st, _| st.faults.to_json()))
}

async fn put_faults(
    State(shared): S,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(r) = check_json_content_type(&headers) {
        return r;
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return detail(
                400,
                format!("faults body could not be read: {}", e.body_text()),
            )
        }
    };
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return detail(400, format!("faults body is not valid JSON: {e}")),
    };
    let res = shared.with(|st, _| {
        let f = st.faults.merged(&v)?;
        st.set_faults(f);
        Ok::<Value, String>(st.faults.to_json())
    });
    match res {
        Ok(v) => reply(200, v),
        Err(m) => detail(400, m),
    }
}

async fn delete_faults(State(shared): S) -> Response {
    let v = shared.with(|st, _| {
        let f = Faults::defaults(&st.cfg);
        st.set_faults(f);
        st.faults.to_json()
    });
    reply(200, v)
}

async fn sim_reset(State(shared): S) -> Response {
    shared.with(|st, _| st.reset());
    reply(200, json!({"status": "reset"}))
}
