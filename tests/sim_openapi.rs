//! schemas/focus-server.openapi.yaml: well-formed, every `$ref` resolves, the validators really
//! reject bad bodies, and every documented operation of the simulator answers as documented.
//! (Every response in sim_focus.rs and here goes through the same schema check.)

use crate::sim_common;

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

/// The `FocusTime` pattern states exactly what the simulator parses: same answer for every
/// month/day of leap and common years, both centuries, and edge times.
#[test]
fn focus_time_pattern_agrees_with_the_parser() {
    let doc = openapi().doc();
    let pattern = doc
        .pointer("/components/schemas/FocusTime/pattern")
        .and_then(Value::as_str)
        .expect("FocusTime pattern");
    let re = regex::Regex::new(pattern).expect("pattern compiles");
    let mut checked = 0;
    for yy in ["00", "23", "24", "68", "69", "96", "99", "01", "72"] {
        for mm in 0..=13 {
            for dd in 0..=32 {
                for hms in ["000000", "235959", "240000", "006000", "000060", "120000"] {
                    let s = format!("{yy}{mm:02}{dd:02}{hms}");
                    let parsed = focusqa::sim::clock::parse_focus_time(&s).is_some();
                    assert_eq!(re.is_match(&s), parsed, "{s}: pattern vs parser");
                    checked += 1;
                }
            }
        }
    }
    for s in [
        "",
        "2510211200",
        "25102112000000",
        "25102112000a",
        " 51021120000",
    ] {
        assert!(!re.is_match(s) && focusqa::sim::clock::parse_focus_time(s).is_none());
    }
    assert!(checked > 10_000);
}

/// Schema-valid requests schemathesis once saw rejected, and the rules JSON Schema cannot
/// state: each answer is the documented one.
#[tokio::test]
async fn schema_and_validation_agree() {
    let api = openapi();
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    // "000000000000" is not a FocusTime (month 00): schema-invalid, and 400 as documented.
    let mut b = live_body();
    b["start_time"] = json!("000000000000");
    b["end_time"] = json!("000000000000");
    assert!(!api.check_component("ConfigureRequest", &b).is_empty());
    assert_error_names(&f.configure(&b).await, 400, &["start_time"]);
    let got = f
        .get("/recordings?start_time=000000000000&end_time=000000000000")
        .await;
    assert_error_names(&got, 400, &["start_time"]);
    // frequencyRange min == max: no band; schema-valid per field, 400 as the description says.
    let mut b = live_body();
    b["frequencyRange"] = json!({"min": 0, "max": 0});
    assert!(
        !api.check_component("ConfigureRequest", &b).is_empty(),
        "max > 0"
    );
    let mut b = live_body();
    b["frequencyRange"] = json!({"min": 100, "max": 100});
    assert!(api.check_component("ConfigureRequest", &b).is_empty());
    assert_error(
        &f.configure(&b).await,
        400,
        "frequencyRange: min (100) must be less than max (100)",
    );
    let desc = api.doc()["components"]["schemas"]["FrequencyRange"]["description"]
        .as_str()
        .unwrap();
    assert!(desc.contains("min must be strictly less"), "{desc}");
    // channels min == max is one channel: accepted.
    let mut b = live_body();
    b["channels"] = json!({"min": 7, "max": 7});
    assert_eq!(f.configure(&b).await.0, 200);
    // Bounds the schema states are the sim's bounds.
    for (field, value) in [
        ("channels", json!({"min": 0, "max": 2500})),
        ("frequencyRange", json!({"min": 0, "max": 500.5})),
        ("frequencyRange", json!({"min": -1, "max": 10})),
    ] {
        let mut b = live_body();
        b[field] = value;
        assert!(!api.check_component("ConfigureRequest", &b).is_empty());
        assert_eq!(f.configure(&b).await.0, 400);
    }
    // Half-historic: schema-invalid (oneOf live/historic) and 400.
    let mut b = live_body();
    b["start_time"] = json!("251021120000");
    assert!(!api.check_component("ConfigureRequest", &b).is_empty());
    assert_eq!(f.configure(&b).await.0, 400);
    // Integral numbers are integers for the schema and for the sim.
    let mut b = live_body();
    b["nfftSelection"] = json!(1024.0);
    b["displayInfo"]["height"] = json!(1e20);
    b["channels"] = json!({"min": 0.0, "max": 5.0});
    assert!(api.check_component("ConfigureRequest", &b).is_empty());
    assert_eq!(f.configure(&b).await.0, 200);
    b["nfftSelection"] = json!(1024.5);
    assert!(!api.check_component("ConfigureRequest", &b).is_empty());
    assert_eq!(f.configure(&b).await.0, 422);
    // Both names sent: both validated.
    let mut b = live_body();
    b["sensors"] = json!({"min": 0, "max": 9999});
    assert!(!api.check_component("ConfigureRequest", &b).is_empty());
    assert_error_names(&f.configure(&b).await, 400, &["sensors: max (9999)"]);
    let mut b = live_body();
    b["canvasInfo"] = json!({"height": "x"});
    assert!(!api.check_component("ConfigureRequest", &b).is_empty());
    assert_error_names(&f.configure(&b).await, 422, &["canvasInfo.height"]);
    sim.shutdown().await;
}

/// Every status code the Focus API can answer for an operation is documented for it.
#[test]
fn every_operation_documents_body_errors() {
    let doc = openapi().doc();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for code in [408, 413] {
                assert!(
                    openapi().response_schema(method, path, code).is_some(),
                    "{method} {path} {code}"
                );
            }
            let has_body = op.get("requestBody").is_some();
            assert_eq!(
                openapi().response_schema(method, path, 415).is_some(),
                has_body,
                "{method} {path}: 415 documented exactly where a JSON body is read"
            );
        }
    }
}
