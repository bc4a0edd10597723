//! Simulator hardening (issue 11): slow clients are dropped, no query value panics a handler,
//! the Kubernetes API rejects bad selectors as a real API server does (400 `Status`), and the
//! Focus API answers 415 for bodies that are not JSON.

use crate::sim_common;

use focusqa::sim::{SimConfig, SimHandle};
use serde_json::Value;
use sim_common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

async fn short_timeouts() -> SimHandle {
    start_with(SimConfig {
        time_scale: 0.01,
        header_read_timeout: Duration::from_millis(300),
        body_read_timeout: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await
}

/// Reads until the server closes the connection (EOF or reset); panics if it is still open
/// after 10 s. Returns what was received.
async fn read_until_closed(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => panic!(
                "server kept the connection open; received so far: {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn kube_http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn kube_get(sim: &SimHandle, path_and_query: &str) -> (u16, Value) {
    let r = kube_http()
        .get(format!("{}{}", sim.kube_url(), path_and_query))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path_and_query}: {e}"));
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

/// A Kubernetes `Status` failure with `code` and `reason`; returns its message.
fn assert_status(got: &(u16, Value), code: u16, reason: &str) -> String {
    assert_eq!(got.0, code, "{:?}", got.1);
    let v = &got.1;
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["apiVersion"], "v1", "{v}");
    assert_eq!(v["status"], "Failure", "{v}");
    assert_eq!(v["reason"], reason, "{v}");
    assert_eq!(v["code"], code, "{v}");
    let msg = v["message"].as_str().unwrap_or("").to_string();
    assert!(!msg.is_empty(), "{v}");
    msg
}

// ------------------------------------------------------------------ slow clients

#[test]
fn default_timeouts_are_reasonable() {
    let c = SimConfig::default();
    assert_eq!(c.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.body_read_timeout, Duration::from_secs(30));
}

#[tokio::test]
async fn zero_timeouts_are_rejected() {
    for cfg in [
        SimConfig {
            header_read_timeout: Duration::ZERO,
            ..SimConfig::default()
        },
        SimConfig {
            body_read_timeout: Duration::ZERO,
            ..SimConfig::default()
        },
    ] {
        let err = focusqa::sim::start(cfg, 0, 0).await.err().expect("error");
        assert!(err.to_string().contains("timeout"), "{err}");
    }
}

#[tokio::test]
async fn half_sent_request_head_is_dropped() {
    let sim = short_timeouts().await;
    for url in [sim.focus_url(), sim.kube_url()] {
        // Request line and one header, never the blank line.
        let mut s = TcpStream::connect(addr(&url)).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: sim\r\n")
            .await
            .unwrap();
        read_until_closed(&mut s).await;
        // A client that connects and sends nothing.
        let mut s = TcpStream::connect(addr(&url)).await.unwrap();
        read_until_closed(&mut s).await;
    }
    // The timeout is for the whole head: a byte every 50 ms does not keep it alive.
    let mut s = TcpStream::connect(addr(&sim.focus_url())).await.unwrap();
    let head = b"GET /health HTTP/1.1\r\nHost: sim\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed = false;
    for b in head {
        if s.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        // A closed connection reads EOF at once; an open one times out.
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => panic!("answered a request whose head was never finished"),
            Err(_) => {}
        }
    }
    assert!(closed, "a trickling request head kept the connection open");
    // Well-behaved clients are still served.
    let f = Focus::new(&sim);
    assert_eq!(f.get("/health").await.0, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn half_sent_body_is_answered_408_and_dropped() {
    let sim = short_timeouts().await;
    // Focus API: the detail format; the connection is closed after the answer.
    let mut s = TcpStream::connect(addr(&sim.focus_url())).await.unwrap();
    s.write_all(
        b"POST /configure HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"displayTimeAxisDuration\": 10,",
    )
    .await
    .unwrap();
    let got = read_until_closed(&mut s).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(
        got.to_ascii_lowercase().contains("connection: close"),
        "{got}"
    );
    let body = got.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {got}"));
    assert!(
        v["detail"].as_str().unwrap().contains("not received"),
        "{v}"
    );
    openapi().check("POST", "/configure", 408, &v);
    // No job was opened.
    let f = Focus::new(&sim);
    assert_eq!(f.get("/jobs").await.1["count"], 0);

    // Chunked, trickled: the deadline is for the whole body, not per chunk.
    let mut s = TcpStream::connect(addr(&sim.focus_url())).await.unwrap();
    s.write_all(b"PUT /sim/faults HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let mut answered = String::new();
    for _ in 0..200 {
        if s.write_all(b"1\r\n \r\n").await.is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                answered.push_str(&String::from_utf8_lossy(&buf[..n]));
                answered.push_str(&read_until_closed(&mut s).await);
                break;
            }
            Err(_) => {}
        }
    }
    assert!(answered.starts_with("HTTP/1.1 408"), "{answered}");

    // Kubernetes API: a Status object.
    let mut s = TcpStream::connect(addr(&sim.kube_url())).await.unwrap();
    s.write_all(
        b"DELETE /apis/batch/v1/namespaces/focus/jobs/x HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"propagationPolicy\":",
    )
    .await
    .unwrap();
    let got = read_until_closed(&mut s).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    let body = got.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {got}"));
    assert_status(&(408, v), 408, "Timeout");
    sim.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_are_413_in_each_api_format() {
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    let big = vec![b' '; 3 * 1024 * 1024];
    let got = f.raw("PUT", "/sim/faults", Some(big.clone())).await;
    assert_eq!(got.0, 413, "{:?}", got.1);
    let r = kube_http()
        .delete(format!(
            "{}/apis/batch/v1/namespaces/focus/jobs/x",
            sim.kube_url()
        ))
        .body(big)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_status(&(code, v), 413, "RequestEntityTooLarge");
    sim.shutdown().await;
}

// ------------------------------------------------------------------ query values

#[tokio::test]
async fn watch_timeout_seconds_is_capped_and_validated() {
    let sim = start(0.01).await;
    let base = sim.kube_url();
    // Huge values are capped (the watch opens); they must not panic the handler.
    for t in [
        "18446744073709551615",
        "9223372036854775807",
        "99999999999999999999999999999999999999999999",
        "0",
        "3600",
    ] {
        for path in [
            format!("/api/v1/namespaces/focus/pods?watch=true&timeoutSeconds={t}"),
            format!("/apis/batch/v1/watch/namespaces/focus/jobs?timeoutSeconds={t}"),
            format!("/api/v1/watch/namespaces/focus/pods/p?timeoutSeconds={t}"),
            format!("/api/v1/namespaces/focus/pods?timeoutSeconds={t}"),
        ] {
            let r = kube_http()
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(r.status().as_u16(), 200, "{path}");
            drop(r); // leave the watch
        }
    }
    // Anything but a non-negative integer: 400 Status.
    for t in [
        "-1",
        "abc",
        "1.5",
        "",
        "%FF",
        "-99999999999999999999999999999999999999999",
    ] {
        let got = kube_get(
            &sim,
            &format!("/api/v1/namespaces/focus/pods?watch=1&timeoutSeconds={t}"),
        )
        .await;
        let msg = assert_status(&got, 400, "BadRequest");
        assert!(msg.contains("timeoutSeconds"), "{msg}");
    }
    // A short timeout ends the watch (real seconds, not time-scaled).
    let r = kube_http()
        .get(format!(
            "{base}/api/v1/namespaces/focus/pods?watch=true&timeoutSeconds=1"
        ))
        .send()
        .await
        .unwrap();
    let body = tokio::time::timeout(Duration::from_secs(10), r.text()).await;
    assert!(body.is_ok(), "a 1 s watch is still open after 10 s");
    assert_eq!(Focus::new(&sim).get("/health").await.0, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn hostile_query_values_never_yield_5xx() {
    let sim = start(0.01).await;
    let values = [
        "",
        "-1",
        "0",
        "18446744073709551616",
        "1e400",
        "NaN",
        "%00",
        "%FF%FE",
        "a%2Cb",
        "((((",
        "!",
        "=",
        "==",
        "!=",
        "in",
        "x%20in%20()",
        &"a".repeat(10_000),
    ];
    let params = [
        "timeoutSeconds",
        "resourceVersion",
        "labelSelector",
        "fieldSelector",
        "watch",
        "limit",
        "propagationPolicy",
        "allowWatchBookmarks",
        "sendInitialEvents",
    ];
    let paths = [
        "/api/v1/namespaces/focus/pods",
        "/apis/batch/v1/namespaces/focus/jobs",
        "/api/v1/events",
        "/api/v1/nodes",
        "/api/v1/namespaces",
    ];
    for path in paths {
        for p in params {
            for v in values {
                let url = format!("{}{path}?{p}={v}&timeoutSeconds=1", sim.kube_url());
                let r = kube_http()
                    .get(&url)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{url}: {e}"));
                let code = r.status().as_u16();
                assert!(code < 500, "{url} answered {code}");
            }
        }
    }
    let f = Focus::new(&sim);
    for v in values {
        for q in [
            format!("/recordings?start_time={v}&end_time={v}"),
            format!("/jobs?x={v}"),
            format!("/health?{v}"),
        ] {
            let (s, _) = f.get(&q).await;
            assert!(s < 500, "{q} answered {s}");
        }
    }
    sim.shutdown().await;
}

// ------------------------------------------------------------------ selectors

#[tokio::test]
async fn unsupported_field_selectors_are_400_status() {
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    f.open(&live_body()).await;
    for (path, sel) in [
        ("/api/v1/namespaces/focus/pods", "spec.foo=bar"),
        ("/api/v1/namespaces/focus/pods", "metadata.labels=x"),
        (
            "/api/v1/namespaces/focus/pods",
            "status.phase=Running,spec.containers=x",
        ),
        (
            "/apis/batch/v1/namespaces/focus/jobs",
            "status.phase=Running",
        ),
        ("/apis/batch/v1/namespaces/focus/jobs", "spec.nodeName=x"),
        ("/api/v1/namespaces/focus/events", "status.phase=x"),
        ("/api/v1/nodes", "metadata.namespace=focus"),
        ("/api/v1/namespaces", "spec.finalizers=x"),
    ] {
        for watch in ["", "&watch=true"] {
            let got = kube_get(&sim, &format!("{path}?fieldSelector={sel}{watch}")).await;
            let msg = assert_status(&got, 400, "BadRequest");
            assert!(msg.starts_with("field label not supported: "), "{msg}");
        }
    }
    // Supported ones answer 200 and filter (once both pods and the first events exist).
    let count = |v: &Value| v["items"].as_array().map(Vec::len).unwrap_or(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pods = kube_get(&sim, "/api/v1/namespaces/focus/pods").await;
        let events = kube_get(&sim, "/api/v1/namespaces/focus/events").await;
        if count(&pods.1) == 2 && count(&events.1) > 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no pods/events");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (path, sel, want) in [
        (
            "/api/v1/namespaces/focus/pods",
            "spec.restartPolicy=Never",
            Some(2),
        ),
        (
            "/api/v1/namespaces/focus/pods",
            "spec.nodeName!=nowhere",
            Some(2),
        ),
        (
            "/api/v1/namespaces/focus/pods",
            "spec.hostNetwork=false",
            Some(2),
        ),
        (
            "/api/v1/namespaces/focus/pods",
            "status.nominatedNodeName=",
            Some(2),
        ),
        (
            "/api/v1/namespaces/focus/pods",
            "spec.schedulerName=x",
            Some(0),
        ),
        (
            "/apis/batch/v1/namespaces/focus/jobs",
            "status.successful=0",
            Some(2),
        ),
        (
            "/apis/batch/v1/namespaces/focus/jobs",
            "status.successful=1",
            Some(0),
        ),
        (
            "/apis/batch/v1/namespaces/focus/jobs",
            "metadata.namespace=focus",
            Some(2),
        ),
        (
            "/api/v1/namespaces/focus/events",
            "involvedObject.kind=Job,type=Normal",
            None,
        ),
        (
            "/api/v1/namespaces/focus/events",
            "source=job-controller",
            None,
        ),
        ("/api/v1/nodes", "spec.unschedulable=false", None),
        ("/api/v1/namespaces", "status.phase=Active", None),
    ] {
        let got = kube_get(&sim, &format!("{path}?fieldSelector={sel}")).await;
        assert_eq!(got.0, 200, "{path} {sel}: {}", got.1);
        if let Some(n) = want {
            assert_eq!(count(&got.1), n, "{path} {sel}");
        } else {
            assert!(count(&got.1) > 0, "{path} {sel}: {}", got.1);
        }
    }
    // The kube client sees a 400 API error.
    let c = kube::Client::try_from(kube::Config::new(sim.kube_url().parse().unwrap())).unwrap();
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(c, "focus");
    match pods
        .list(&kube::api::ListParams::default().fields("spec.foo=bar"))
        .await
    {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 400);
            assert_eq!(s.reason, "BadRequest");
        }
        other => panic!("expected a 400 API error, got {other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_selectors_are_400_status() {
    let sim = start(0.01).await;
    for label in [
        "app%20in%20(",
        "app%20in%20()",
        "app%20in%20x",
        "a%20b=c",
        "-bad=x",
        "bad-=x",
        "app=-x",
        "app=x_",
        "a/b/c=d",
        "Example.COM/app=x",
        "/app=x",
        "=x",
        "!",
        "x>abc",
        "x<",
        &format!("{}=x", "k".repeat(64)),
        &format!("app={}", "v".repeat(64)),
    ] {
        for watch in ["", "&watch=true"] {
            let got = kube_get(
                &sim,
                &format!("/api/v1/namespaces/focus/pods?labelSelector={label}{watch}"),
            )
            .await;
            assert_status(&got, 400, "BadRequest");
        }
    }
    for field in [
        "bad",
        "metadata.name",
        "=x",
        "metadata..name=x",
        "meta_data=x",
    ] {
        let got = kube_get(
            &sim,
            &format!("/api/v1/namespaces/focus/pods?fieldSelector={field}"),
        )
        .await;
        assert_status(&got, 400, "BadRequest");
    }
    // Well-formed ones (qualified keys, empty values, set and numeric operators) are fine.
    for label in [
        "focus.example.com/job-id=x",
        "app=",
        "app%20in%20(a,b),!missing",
        "x>1",
        "x<5",
        "app%20notin%20(baby-analyzer)",
    ] {
        let got = kube_get(
            &sim,
            &format!("/api/v1/namespaces/focus/pods?labelSelector={label}"),
        )
        .await;
        assert_eq!(got.0, 200, "{label}: {}", got.1);
    }
    // An unknown propagationPolicy (query or DeleteOptions body): 422 Invalid, nothing deleted.
    for (query, body) in [
        ("?propagationPolicy=Sideways", String::new()),
        ("", r#"{"propagationPolicy":"background"}"#.to_string()),
        ("?propagationPolicy=%00", String::new()),
    ] {
        for path in [
            "/apis/batch/v1/namespaces/focus/jobs/x",
            "/apis/batch/v1/namespaces/focus/jobs",
        ] {
            let r = kube_http()
                .delete(format!("{}{path}{query}", sim.kube_url()))
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let code = r.status().as_u16();
            let msg = assert_status(&(code, r.json().await.unwrap()), 422, "Invalid");
            assert!(
                msg.contains("propagationPolicy: Unsupported value"),
                "{msg}"
            );
        }
    }
    // DELETE collection validates the same way (nothing deleted).
    let r = kube_http()
        .delete(format!(
            "{}/api/v1/namespaces/focus/pods?fieldSelector=spec.foo=x",
            sim.kube_url()
        ))
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    assert_status(&(code, r.json().await.unwrap()), 400, "BadRequest");
    sim.shutdown().await;
}

// ------------------------------------------------------------------ 415

#[tokio::test]
async fn non_json_content_types_are_415() {
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    let body = serde_json::to_vec(&live_body()).unwrap();
    for ct in [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonx",
        "json",
        "",
    ] {
        let got = f
            .send("POST", "/configure", Some(body.clone()), Some(ct))
            .await;
        assert_error_names(&got, 415, &["Unsupported Media Type", "application/json"]);
        let got = f
            .send("PUT", "/sim/faults", Some(b"{}".to_vec()), Some(ct))
            .await;
        assert_eq!(got.0, 415, "{ct}: {:?}", got.1);
    }
    assert_eq!(f.get("/jobs").await.1["count"], 0, "no job opened by a 415");
    // JSON types (any parameters, +json suffixes, any case) and no Content-Type at all are JSON.
    for ct in [
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("Application/JSON"),
        Some("application/vnd.focus+json"),
        None,
    ] {
        let got = f.send("POST", "/configure", Some(body.clone()), ct).await;
        assert_eq!(got.0, 200, "{ct:?}: {:?}", got.1);
    }
    assert_eq!(f.get("/jobs").await.1["count"], 5);
    // Without a content type, the body is still validated as JSON.
    let got = f
        .send("POST", "/configure", Some(b"a=1".to_vec()), None)
        .await;
    assert_eq!(got.0, 422);
    sim.shutdown().await;
}
