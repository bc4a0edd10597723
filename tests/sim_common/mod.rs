//! Helpers shared by the simulator tests: start a simulator, call the Focus API, and check
//! every Focus response against `schemas/focus-server.openapi.yaml`.
#![allow(dead_code)]

use focusqa::sim::{self, SimConfig, SimHandle};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

pub async fn start(time_scale: f64) -> SimHandle {
    start_with(SimConfig {
        time_scale,
        ..SimConfig::default()
    })
    .await
}

pub async fn start_with(cfg: SimConfig) -> SimHandle {
    sim::start(cfg, 0, 0).await.expect("simulator starts")
}

/// A valid live configuration.
pub fn live_body() -> Value {
    json!({
        "displayTimeAxisDuration": 10,
        "nfftSelection": 1024,
        "displayInfo": {"height": 1000},
        "channels": {"min": 0, "max": 50},
        "frequencyRange": {"min": 0, "max": 500},
        "start_time": null,
        "end_time": null,
        "view_type": 0
    })
}

/// A valid historic configuration for [start, end] (yymmddHHMMSS).
pub fn historic_body(start: &str, end: &str) -> Value {
    let mut b = live_body();
    b["start_time"] = json!(start);
    b["end_time"] = json!(end);
    b
}

/// yymmddHHMMSS of now + offset seconds (UTC).
pub fn focus_time(offset_secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(offset_secs))
        .format("%y%m%d%H%M%S")
        .to_string()
}

// ------------------------------------------------------------------ OpenAPI conformance

pub struct OpenApi {
    doc: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
    pub checked: AtomicUsize,
}

pub fn openapi() -> &'static OpenApi {
    static API: OnceLock<OpenApi> = OnceLock::new();
    API.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/focus-server.openapi.yaml"
        );
        let text = std::fs::read_to_string(path).expect("openapi document readable");
        let doc: Value = focusqa::spec::yaml::from_str(&text).expect("openapi document is YAML");
        OpenApi {
            doc,
            validators: Mutex::new(HashMap::new()),
            checked: AtomicUsize::new(0),
        }
    })
}

/// Concrete path -> OpenAPI path template.
pub fn template(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    for prefix in ["/metadata/", "/job/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            if !rest.is_empty() && !rest.contains('/') {
                return format!("{prefix}{{job_id}}");
            }
        }
    }
    path.to_string()
}

impl OpenApi {
    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// The response schema for (method, path template, status), or None when undocumented.
    pub fn response_schema(&self, method: &str, tmpl: &str, status: u16) -> Option<Value> {
        let op = self
            .doc
            .get("paths")?
            .get(tmpl)?
            .get(method.to_ascii_lowercase())?;
        let responses = op.get("responses")?;
        let mut resp = responses
            .get(status.to_string())
            .or_else(|| responses.get("default"))?;
        // A shared response: `$ref: '#/components/responses/X'`.
        if let Some(r) = resp.get("$ref").and_then(Value::as_str) {
            resp = self.doc.pointer(r.strip_prefix('#')?)?;
        }
        resp.pointer("/content/application~1json/schema").cloned()
    }

    fn validator(&self, key: &str, schema: Value) -> Arc<jsonschema::Validator> {
        let mut cache = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = cache.get(key) {
            return v.clone();
        }
        // A root document holding the components, so '#/components/schemas/X' resolves.
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"].clone(),
            "allOf": [schema],
        });
        let v = Arc::new(
            jsonschema::validator_for(&root)
                .unwrap_or_else(|e| panic!("schema for {key} compiles: {e}")),
        );
        cache.insert(key.to_string(), v.clone());
        v
    }

    /// Panics when the response is not documented or does not match its schema.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &Value) {
        let tmpl = template(path);
        let schema = self
            .response_schema(method, &tmpl, status)
            .unwrap_or_else(|| {
                panic!("OpenAPI documents no {status} response for {method} {tmpl}")
            });
        let key = format!("{method} {tmpl} {status}");
        let v = self.validator(&key, schema);
        let errors: Vec<String> = v
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{key}: response does not match the OpenAPI schema: {errors:?}\nbody: {body}"
        );
        self.checked.fetch_add(1, Ordering::Relaxed);
    }

    /// Validate a value against a named component schema.
    pub fn check_component(&self, name: &str, value: &Value) -> Vec<String> {
        let key = format!("component {name}");
        let v = self.validator(
            &key,
            json!({"$ref": format!("#/components/schemas/{name}")}),
        );
        v.iter_errors(value).map(|e| e.to_string()).collect()
    }
}

// ------------------------------------------------------------------ Focus client

#[derive(Clone)]
pub struct Focus {
    pub base: String,
    pub http: reqwest::Client,
}

impl Focus {
    pub fn new(sim: &SimHandle) -> Self {
        Focus {
            base: sim.focus_url(),
            http: reqwest::Client::new(),
        }
    }

    /// Send a request with an optional raw body; returns (status, JSON body). Every response
    /// must be JSON and conform to the OpenAPI document.
    pub async fn raw(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> (u16, Value) {
        self.send(method, path, body, Some("application/json"))
            .await
    }

    /// As [`Focus::raw`] with a chosen `Content-Type` for the body (None = no header).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: Option<&str>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, format!("{}{}", self.base, path));
        if let Some(b) = body {
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            req = req.body(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp.text().await.expect("body");
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path} -> {status}: not JSON ({e}): {text}"));
        assert!(
            ct.starts_with("application/json"),
            "{method} {path}: content-type {ct}"
        );
        assert!(
            status < 500 || status == 503,
            "{method} {path} answered {status}: {v}"
        );
        if status >= 400 {
            assert!(
                v["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "error without detail: {v}"
            );
        }
        openapi().check(method, path, status, &v);
        (status, v)
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.raw(
            method,
            path,
            body.map(|b| serde_json::to_vec(b).expect("json")),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None).await
    }

    pub async fn configure(&self, body: &Value) -> (u16, Value) {
        self.call("POST", "/configure", Some(body)).await
    }

    /// Configure and expect success; returns (job_id, port).
    pub async fn open(&self, body: &Value) -> (String, u16) {
        let (s, v) = self.configure(body).await;
        assert_eq!(s, 200, "configure failed: {v}");
        (
            v["job_id"].as_str().expect("job_id").to_string(),
            v["stream_port"].as_u64().expect("port") as u16,
        )
    }

    pub async fn cancel(&self, id: &str) -> (u16, Value) {
        self.call("DELETE", &format!("/job/{id}"), None).await
    }

    pub async fn faults(&self, patch: Value) -> (u16, Value) {
        self.call("PUT", "/sim/faults", Some(&patch)).await
    }

    /// Poll /metadata every 10 ms until 200 or the timeout; returns the body.
    pub async fn wait_ready(&self, id: &str, timeout: std::time::Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (s, v) = self.get(&format!("/metadata/{id}")).await;
            if s == 200 {
                return Some(v);
            }
            assert_eq!(s, 404);
            assert_eq!(v["detail"], "Invalid job_id");
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// Assert an error answer: status and exact detail.
pub fn assert_error(got: &(u16, Value), status: u16, detail: &str) {
    assert_eq!(
        got.0, status,
        "expected {status} '{detail}', got {} {}",
        got.0, got.1
    );
    assert_eq!(
        got.1["detail"].as_str().unwrap_or(""),
        detail,
        "detail mismatch (status {})",
        got.0
    );
}

/// Assert an error answer whose detail contains every fragment.
pub fn assert_error_names(got: &(u16, Value), status: u16, fragments: &[&str]) {
    assert_eq!(
        got.0, status,
        "expected {status} naming {fragments:?}, got {} {}",
        got.0, got.1
    );
    let d = got.1["detail"].as_str().unwrap_or("");
    for f in fragments {
        assert!(d.contains(f), "detail '{d}' should contain '{f}'");
    }
}
