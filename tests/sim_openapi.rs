//! schemas/focus-server.openapi.yaml: well-formed, every `$ref` resolves, the validators really
//! reject bad bodies, and every documented operation of the simulator answers as documented.
//! (Every response in sim_focus.rs and here goes through the same schema check.)

mod sim_common;

use serde_json::{json, Value};
use sim_common::*;
use std::sync::atomic::Ordering;

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    if let Some(s) = x.as_str() {
                        out.push(s.to_string());
                    }
                }
                collect_refs(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

#[test]
fn document_is_openapi_31_and_refs_resolve() {
    let doc = openapi().doc();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut refs = Vec::new();
    collect_refs(doc, &mut refs);
    assert!(refs.len() > 20);
    for r in refs {
        let ptr = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external ref {r}"));
        assert!(doc.pointer(ptr).is_some(), "unresolved $ref {r}");
    }
    // Every operation documents JSON responses with schemas that compile.
    let mut ops = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops += 1;
            for (status, _) in op["responses"].as_object().unwrap() {
                let code: u16 = status.parse().unwrap();
                let schema = openapi()
                    .response_schema(method, path, code)
                    .unwrap_or_else(|| panic!("{method} {path} {status}"));
                assert!(schema.is_object());
                // Compiles (errors are collected, not panics, for a dummy instance).
                openapi().check_component("Error", &json!({"detail": "x"}));
            }
        }
    }
    assert_eq!(ops, 13);
}

#[test]
fn validators_reject_non_conforming_bodies() {
    let api = openapi();
    assert!(api
        .check_component("ConfigureRequest", &live_body())
        .is_empty());
    let mut legacy = live_body();
    let o = legacy.as_object_mut().unwrap();
    let ch = o.remove("channels").unwrap();
    o.insert("sensors".into(), ch);
    assert!(api.check_component("ConfigureRequest", &legacy).is_empty());
    let mut bad = live_body();
    bad["nfftSelection"] = json!(1000);
    assert!(!api.check_component("ConfigureRequest", &bad).is_empty());
    bad = live_body();
    bad.as_object_mut().unwrap().remove("channels");
    assert!(!api.check_component("ConfigureRequest", &bad).is_empty());
    assert!(!api
        .check_component(
            "ConfigureResponse",
            &json!({"status": "configured", "stream_url": "x", "stream_port": 1})
        )
        .is_empty());
    assert!(!api
        .check_component(
            "ConfigureResponse",
            &json!({"job_id": "abc", "status": "configured", "stream_url": "x", "stream_port": 1})
        )
        .is_empty());
    assert!(!api
        .check_component("Error", &json!({"message": "x"}))
        .is_empty());
    assert!(!api
        .check_component("Faults", &json!({"live_data": true}))
        .is_empty());
    assert!(api.check_component("ConfigureResponse", &json!({"job_id": "18-3", "status": "configured", "stream_url": "10.10.10.100", "stream_port": 50053})).is_empty());
    let r =
        std::panic::catch_unwind(|| api.check("POST", "/configure", 200, &json!({"job_id": 5})));
    assert!(r.is_err(), "check panics on a non-conforming response");
    let r = std::panic::catch_unwind(|| api.check("GET", "/health", 418, &json!({})));
    assert!(r.is_err(), "check panics on an undocumented status");
}

#[tokio::test]
async fn every_documented_operation_answers_as_documented() {
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    let before = openapi().checked.load(Ordering::Relaxed);
    f.get("/health").await;
    f.get("/channels").await;
    f.get("/live_metadata").await;
    f.get("/jobs").await;
    let (id, _) = f.open(&live_body()).await;
    f.get(&format!("/metadata/{id}")).await;
    f.wait_ready(&id, std::time::Duration::from_secs(2))
        .await
        .expect("ready");
    f.get("/jobs").await;
    f.get(&format!(
        "/recordings?start_time={}&end_time={}",
        focus_time(-7200),
        focus_time(-3600)
    ))
    .await;
    f.get("/recordings?start_time=1").await;
    f.get("/sim/state").await;
    f.get("/sim/faults").await;
    f.faults(json!({"fail_next_jobs": 1, "recordings": [{"start_time": "251021120000", "end_time": "251021130000"}]})).await;
    f.faults(json!({"nope": 1})).await;
    f.open(&live_body()).await;
    f.get("/sim/state").await;
    f.call("DELETE", "/sim/faults", None).await;
    f.cancel(&id).await;
    f.cancel(&id).await;
    f.faults(json!({"live_data": false})).await;
    f.get("/live_metadata").await;
    f.configure(&live_body()).await;
    f.faults(json!({"capacity": 0})).await;
    f.configure(&historic_body(&focus_time(-7200), &focus_time(-3600)))
        .await;
    f.raw("POST", "/configure", Some(b"x".to_vec())).await;
    f.call("POST", "/sim/reset", None).await;
    f.get("/sim/state").await;
    assert!(openapi().checked.load(Ordering::Relaxed) - before >= 27);
    sim.shutdown().await;
}
