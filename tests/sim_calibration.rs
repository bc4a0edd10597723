//! The calibration simulator against `schemas/calibration.openapi.yaml`: every documented
//! operation is called (successes and errors, faults included) and every answer is checked
//! against the document; the checks are shown to reject bodies that do not conform.

use serde_json::{json, Value};

fn doc() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/calibration.openapi.yaml"
    ))
    .unwrap();
    focusqa::spec::yaml::from_str(&text).unwrap()
}

/// The schema of a documented response, with the components beside it so `$ref`s resolve.
fn response_schema(doc: &Value, method: &str, path: &str, status: u16) -> Value {
    let mut resp = doc["paths"][path][method]["responses"][status.to_string()].clone();
    assert!(
        !resp.is_null(),
        "no {status} documented for {method} {path}"
    );
    if let Some(r) = resp.get("$ref").and_then(Value::as_str) {
        resp = doc.pointer(r.strip_prefix('#').unwrap()).unwrap().clone();
    }
    let mut schema = resp["content"]["application/json"]["schema"].clone();
    schema["components"] = doc["components"].clone();
    schema
}

fn problems(doc: &Value, method: &str, path: &str, status: u16, body: &Value) -> Vec<String> {
    let v = jsonschema::validator_for(&response_schema(doc, method, path, status)).unwrap();
    v.iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

struct Client {
    http: reqwest::Client,
    root: String,
    doc: Value,
    checked: usize,
}

impl Client {
    /// Calls `method url` and checks the answer against `template`'s documented response.
    async fn call(
        &mut self,
        method: &str,
        template: &str,
        url: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut req = self.http.request(m, format!("{}/api/v1{url}", self.root));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap();
        let p = problems(&self.doc, method, template, status, &v);
        assert!(p.is_empty(), "{method} {url} -> {status} {v}: {p:?}");
        self.checked += 1;
        (status, v)
    }

    async fn faults(&self, f: Value) {
        let r = self
            .http
            .put(format!("{}/sim/faults", self.root))
            .json(&f)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
}

/// A request that is never served from the cache.
fn fresh() -> Value {
    let mut b = body();
    b["use_cache"] = json!(false);
    b
}

fn body() -> Value {
    json!({"va_data": {"insilicova": "use_example"}, "age_group": "neonate", "country": "Kenya"})
}

#[test]
fn the_checks_reject_non_conforming_bodies() {
    let d = doc();
    let err = json!({"detail": "Job job_x not found", "status_code": 404, "timestamp": "2026-01-01T00:00:00.000Z"});
    assert!(problems(&d, "get", "/calibrate/{job_id}/status", 404, &err).is_empty());
    // FastAPI's bare `{detail}` is not this service's format.
    assert!(!problems(
        &d,
        "get",
        "/calibrate/{job_id}/status",
        404,
        &json!({"detail": "x"})
    )
    .is_empty());
    assert!(!problems(
        &d,
        "post",
        "/calibrate/async",
        200,
        &json!({"job_id": "abc", "status": "created"})
    )
    .is_empty());
    assert!(!problems(
        &d,
        "get",
        "/jobs",
        200,
        &json!({"jobs": [], "total_count": 0, "page": 0, "page_size": 20, "has_next": false})
    )
    .is_empty());
}

#[tokio::test]
async fn every_documented_operation_answers_as_documented() {
    let h = focusqa::sim::calibration::start(
        focusqa::sim::calibration::CalibrationConfig {
            time_scale: 0.001,
            ..Default::default()
        },
        0,
    )
    .await
    .unwrap();
    let mut c = Client {
        http: reqwest::Client::new(),
        root: h.url(),
        doc: doc(),
        checked: 0,
    };
    let mut b = body();
    b["use_cache"] = json!(true);
    let (s, v) = c
        .call(
            "post",
            "/calibrate/async",
            "/calibrate/async",
            Some(b.clone()),
        )
        .await;
    assert_eq!(s, 200);
    let id = v["job_id"].as_str().unwrap().to_string();
    let (_, st) = c
        .call(
            "get",
            "/calibrate/{job_id}/status",
            &format!("/calibrate/{id}/status"),
            None,
        )
        .await;
    assert!(["pending", "running"].contains(&st["status"].as_str().unwrap()));
    let (s, _) = c
        .call(
            "get",
            "/calibrate/{job_id}/result",
            &format!("/calibrate/{id}/result"),
            None,
        )
        .await;
    assert_eq!(s, 400, "no result yet");
    // 30 s of simulated time pass in 30 ms.
    let mut done = json!(null);
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let (_, st) = c
            .call(
                "get",
                "/calibrate/{job_id}/status",
                &format!("/calibrate/{id}/status?log_level=debug&log_limit=1000"),
                None,
            )
            .await;
        if st["status"] == "success" {
            done = st;
            break;
        }
    }
    assert_eq!(done["progress"]["progress_percentage"], 100.0);
    let (s, r) = c
        .call(
            "get",
            "/calibrate/{job_id}/result",
            &format!("/calibrate/{id}/result"),
            None,
        )
        .await;
    assert_eq!((s, &r["cache_info"]), (200, &Value::Null));
    let (_, v) = c
        .call("post", "/calibrate/async", "/calibrate/async", Some(b))
        .await;
    let hit = v["job_id"].as_str().unwrap().to_string();
    let (_, r) = c
        .call(
            "get",
            "/calibrate/{job_id}/result",
            &format!("/calibrate/{hit}/result"),
            None,
        )
        .await;
    assert_eq!(r["cache_info"]["source_job_id"], json!(id));
    let (s, _) = c
        .call(
            "delete",
            "/calibrate/{job_id}",
            &format!("/calibrate/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 400, "a finished job cannot be cancelled");
    let (s, _) = c
        .call(
            "delete",
            "/calibrate/{job_id}",
            "/calibrate/job_aaaaaaaaaaaa",
            None,
        )
        .await;
    assert_eq!(s, 404);
    for bad in [
        json!({"age_group": "adult"}),
        json!({"priority": 11}),
        json!({"timeout_minutes": 121}),
    ] {
        let mut x = body();
        x.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let (s, _) = c
            .call("post", "/calibrate/async", "/calibrate/async", Some(x))
            .await;
        assert_eq!(s, 400);
    }
    let (s, _) = c
        .call(
            "get",
            "/calibrate/{job_id}/status",
            &format!("/calibrate/{id}/status?log_limit=1001"),
            None,
        )
        .await;
    assert_eq!(s, 400);
    // batches (of 10-minute jobs, so one is still running when looked at)
    c.faults(json!({"job_duration_s": 600})).await;
    let (s, v) = c
        .call(
            "post",
            "/calibrate/batch",
            "/calibrate/batch",
            Some(json!({"jobs": [fresh(), fresh()], "parallel_limit": 1, "batch_name": "two"})),
        )
        .await;
    assert_eq!(s, 200);
    let bid = v["batch_id"].as_str().unwrap().to_string();
    let (_, bs) = c
        .call(
            "get",
            "/calibrate/batch/{batch_id}/status",
            &format!("/calibrate/batch/{bid}/status"),
            None,
        )
        .await;
    assert_eq!(bs["running_jobs"], 1);
    let running = bs["job_statuses"][0]["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = c
        .call(
            "delete",
            "/calibrate/{job_id}",
            &format!("/calibrate/{running}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call(
            "get",
            "/calibrate/batch/{batch_id}/status",
            "/calibrate/batch/batch_nothere/status",
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = c
        .call(
            "post",
            "/calibrate/batch",
            "/calibrate/batch",
            Some(json!({"jobs": vec![body(); 51]})),
        )
        .await;
    assert_eq!(s, 400);
    // listing
    let (_, l) = c
        .call("get", "/jobs", "/jobs?page=1&page_size=2", None)
        .await;
    assert_eq!(
        (l["total_count"].as_u64(), l["has_next"].as_bool()),
        (Some(4), Some(true))
    );
    let (_, l) = c
        .call(
            "get",
            "/jobs",
            "/jobs?job_type=batch_calibration&country=Kenya&age_group=neonate&status=cancelled",
            None,
        )
        .await;
    assert_eq!(l["total_count"], 1);
    let (s, _) = c.call("get", "/jobs", "/jobs?page_size=101", None).await;
    assert_eq!(s, 400);
    let (s, _) = c
        .call("get", "/jobs", "/jobs?created_after=yesterday", None)
        .await;
    assert_eq!(s, 400);
    // cache, metrics, health
    let (_, cs) = c.call("get", "/cache/stats", "/cache/stats", None).await;
    assert_eq!(cs["total_cached_results"], 1);
    let (s, _) = c.call("delete", "/cache/clear", "/cache/clear", None).await;
    assert_eq!(s, 400);
    let (_, cl) = c
        .call("delete", "/cache/clear", "/cache/clear?confirm=true", None)
        .await;
    assert_eq!(cl["cleared_results"], 1);
    let (s, _) = c
        .call("get", "/jobs/metrics", "/jobs/metrics?time_range=7d", None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call("get", "/jobs/metrics", "/jobs/metrics?time_range=2w", None)
        .await;
    assert_eq!(s, 400);
    let (s, _) = c.call("get", "/jobs/health", "/jobs/health", None).await;
    assert_eq!(s, 200);
    c.faults(json!({"celery_down": true})).await;
    let (s, hv) = c.call("get", "/jobs/health", "/jobs/health", None).await;
    assert_eq!((s, hv["celery"].as_str()), (503, Some("unhealthy")));
    let (s, _) = c
        .call("post", "/calibrate/async", "/calibrate/async", Some(body()))
        .await;
    assert_eq!(s, 503);
    c.faults(json!({"celery_down": false, "redis_down": true}))
        .await;
    let (s, _) = c.call("get", "/jobs", "/jobs", None).await;
    assert_eq!(s, 503);
    let (s, _) = c.call("get", "/cache/stats", "/cache/stats", None).await;
    assert_eq!(s, 503);
    assert!(c.checked >= 30);
    h.shutdown().await;
}
