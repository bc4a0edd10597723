//! Focus Server API of the embedded simulator: every validation rule, data availability,
//! capacity, ports, readiness, cancel, /jobs, faults and reset. Every response is also checked
//! against schemas/focus-server.openapi.yaml by the shared client.

use crate::sim_common;

use futures::future::join_all;
use serde_json::{json, Value};
use sim_common::*;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test]
async fn health_channels_live_metadata_and_unknown_routes() {
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    let (s, v) = f.get("/health").await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"status": "ok", "jobs": 0, "capacity": 200, "live_data": true})
    );
    assert_eq!(
        f.get("/channels").await,
        (200, json!({"min": 0, "max": 2499, "count": 2500}))
    );
    assert_eq!(
        f.get("/live_metadata").await,
        (
            200,
            json!({"prr": 1000, "nyquist": 500, "channels": {"min": 0, "max": 2499}, "live": true})
        )
    );
    assert_eq!(focusqa::sim::MAX_CHANNEL, 2499);

    // Undocumented routes still answer JSON {"detail"} (checked here without the OpenAPI helper).
    let r = f.http.get(format!("{}/nope", f.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let v: Value = r.json().await.unwrap();
    assert!(v["detail"].as_str().unwrap().contains("/nope"));
    let r = f
        .http
        .get(format!("{}/configure", f.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let v: Value = r.json().await.unwrap();
    assert!(v["detail"].as_str().unwrap().contains("Method Not Allowed"));
    sim.shutdown().await;
}

#[tokio::test]
async fn configure_422_types_and_required_fields() {
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    let got = f
        .raw("POST", "/configure", Some(b"{not json".to_vec()))
        .await;
    assert_error_names(&got, 422, &["not valid JSON"]);
    let got = f.raw("POST", "/configure", Some(Vec::new())).await;
    assert_error_names(&got, 422, &["JSON"]);
    let got = f.call("POST", "/configure", Some(&json!([1, 2]))).await;
    assert_error(&got, 422, "request body must be a JSON object");

    // Missing required fields.
    for (field, detail) in [
        (
            "displayTimeAxisDuration",
            "displayTimeAxisDuration is required",
        ),
        ("nfftSelection", "nfftSelection is required"),
        (
            "displayInfo",
            "displayInfo (or legacy canvasInfo) is required",
        ),
        ("channels", "channels (or legacy sensors) is required"),
        ("frequencyRange", "frequencyRange is required"),
        ("view_type", "view_type is required"),
    ] {
        let mut b = live_body();
        b.as_object_mut().unwrap().remove(field);
        assert_error(&f.configure(&b).await, 422, detail);
    }
    // Absent times mean live mode.
    let mut b = live_body();
    b.as_object_mut().unwrap().remove("start_time");
    b.as_object_mut().unwrap().remove("end_time");
    assert_eq!(f.configure(&b).await.0, 200);

    // Wrong JSON types.
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/displayTimeAxisDuration",
            json!("10"),
            "displayTimeAxisDuration must be a number",
        ),
        (
            "/nfftSelection",
            json!(1024.5),
            "nfftSelection must be an integer",
        ),
        (
            "/nfftSelection",
            json!("1024"),
            "nfftSelection must be an integer",
        ),
        ("/displayInfo", json!(1000), "displayInfo must be an object"),
        ("/displayInfo", json!({}), "displayInfo.height is required"),
        (
            "/displayInfo/height",
            json!("1000"),
            "displayInfo.height must be an integer",
        ),
        ("/channels", json!([0, 50]), "channels must be an object"),
        (
            "/channels/min",
            json!(1.5),
            "channels.min must be an integer",
        ),
        (
            "/channels/max",
            json!("50"),
            "channels.max must be an integer",
        ),
        (
            "/channels/max",
            Value::Null,
            "channels.max must be an integer",
        ),
        (
            "/frequencyRange",
            json!("0-500"),
            "frequencyRange must be an object",
        ),
        (
            "/frequencyRange/max",
            json!("500"),
            "frequencyRange.max must be a number",
        ),
        (
            "/view_type",
            json!("MULTICHANNEL"),
            "view_type must be an integer",
        ),
        (
            "/start_time",
            json!(251021120000u64),
            "start_time must be a string (yymmddHHMMSS) or null",
        ),
        (
            "/end_time",
            json!(true),
            "end_time must be a string (yymmddHHMMSS) or null",
        ),
    ];
    for (ptr, val, detail) in cases {
        let mut b = live_body();
        *b.pointer_mut(ptr).unwrap() = val;
        assert_error(&f.configure(&b).await, 422, detail);
    }
    // Missing nested keys.
    let mut b = live_body();
    b["channels"] = json!({"min": 0});
    assert_error(&f.configure(&b).await, 422, "channels.max is required");
    let mut b = live_body();
    b["frequencyRange"] = json!({"max": 10});
    assert_error(
        &f.configure(&b).await,
        422,
        "frequencyRange.min is required",
    );
    // Type errors win over range errors.
    let mut b = live_body();
    b["channels"] = json!({"min": 60, "max": 50});
    b["view_type"] = json!("x");
    assert_error(&f.configure(&b).await, 422, "view_type must be an integer");
    sim.shutdown().await;
}

#[tokio::test]
async fn configure_400_value_rules_in_order() {
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/channels", json!({"min": 60, "max": 50}), "channels: min (60) must not be greater than max (50)"),
        ("/channels", json!({"min": -1, "max": 50}), "channels: min (-1) must be >= 0"),
        ("/channels", json!({"min": 0, "max": 2500}), "channels: max (2500) must be <= 2499 (highest channel)"),
        ("/frequencyRange", json!({"min": 300, "max": 200}), "frequencyRange: min (300) must be less than max (200)"),
        ("/frequencyRange", json!({"min": 100, "max": 100}), "frequencyRange: min (100) must be less than max (100)"),
        ("/frequencyRange", json!({"min": -5, "max": 200}), "frequencyRange: min (-5) must be >= 0"),
        ("/frequencyRange", json!({"min": 0, "max": 600}), "frequencyRange: max (600) must be <= 500 (Nyquist frequency, PRR 1000 Hz)"),
        ("/nfftSelection", json!(1000), "nfftSelection: 1000 is not allowed; allowed values: 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536"),
        ("/nfftSelection", json!(0), "nfftSelection: 0 is not allowed; allowed values: 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536"),
        ("/displayTimeAxisDuration", json!(0), "displayTimeAxisDuration must be > 0 (got 0)"),
        ("/displayTimeAxisDuration", json!(-2.5), "displayTimeAxisDuration must be > 0 (got -2.5)"),
        ("/displayInfo/height", json!(0), "displayInfo.height must be > 0 (got 0)"),
        ("/view_type", json!(2), "view_type: 2 is not a valid view type; allowed: 0 (MULTICHANNEL), 1 (SINGLECHANNEL)"),
        ("/view_type", json!(-1), "view_type: -1 is not a valid view type; allowed: 0 (MULTICHANNEL), 1 (SINGLECHANNEL)"),
    ];
    for (ptr, val, detail) in cases {
        let mut b = live_body();
        *b.pointer_mut(ptr).unwrap() = val;
        assert_error(&f.configure(&b).await, 400, detail);
    }
    // Boundaries are accepted.
    let mut b = live_body();
    b["channels"] = json!({"min": 2499, "max": 2499});
    b["frequencyRange"] = json!({"min": 0, "max": 500});
    b["nfftSelection"] = json!(65536);
    b["view_type"] = json!(1);
    b["displayTimeAxisDuration"] = json!(0.5);
    assert_eq!(f.configure(&b).await.0, 200);
    for n in [128, 256, 512, 2048, 4096, 8192, 16384, 32768] {
        let mut b = live_body();
        b["nfftSelection"] = json!(n);
        assert_eq!(f.configure(&b).await.0, 200, "nfft {n}");
    }

    // Times: exactly one set, format, date, order.
    let start = focus_time(-3600);
    let end = focus_time(-3000);
    let one = "start_time and end_time must both be set (historic) or both be null (live)";
    assert_error(
        &f.configure(&historic_body(&start, "")).await,
        400,
        "end_time: '' is not a valid yymmddHHMMSS time (UTC)",
    );
    let mut b = live_body();
    b["start_time"] = json!(start);
    assert_error(&f.configure(&b).await, 400, one);
    let mut b = live_body();
    b["end_time"] = json!(end);
    assert_error(&f.configure(&b).await, 400, one);
    assert_error(
        &f.configure(&historic_body("2510211200", &end)).await,
        400,
        "start_time: '2510211200' is not a valid yymmddHHMMSS time (UTC)",
    );
    assert_error(
        &f.configure(&historic_body(&start, "251341120000")).await,
        400,
        "end_time: '251341120000' is not a valid yymmddHHMMSS time (UTC)",
    );
    assert_error(
        &f.configure(&historic_body("250230120000", &end)).await,
        400,
        "start_time: '250230120000' is not a valid yymmddHHMMSS time (UTC)",
    );
    assert_error(
        &f.configure(&historic_body(&end, &start)).await,
        400,
        "end_time must be after start_time",
    );
    assert_error(
        &f.configure(&historic_body(&start, &start)).await,
        400,
        "end_time must be after start_time",
    );

    // Order: channels before frequencyRange before nfft before duration before height before view_type before times.
    let mut b = live_body();
    b["channels"] = json!({"min": 60, "max": 50});
    b["frequencyRange"] = json!({"min": 300, "max": 200});
    b["nfftSelection"] = json!(1000);
    assert_error_names(&f.configure(&b).await, 400, &["channels:"]);
    b["channels"] = json!({"min": 0, "max": 50});
    assert_error_names(&f.configure(&b).await, 400, &["frequencyRange:"]);
    b["frequencyRange"] = json!({"min": 0, "max": 200});
    b["displayTimeAxisDuration"] = json!(0);
    assert_error_names(&f.configure(&b).await, 400, &["nfftSelection:"]);
    b["nfftSelection"] = json!(1024);
    b["displayInfo"] = json!({"height": -1});
    assert_error_names(&f.configure(&b).await, 400, &["displayTimeAxisDuration"]);
    b["displayTimeAxisDuration"] = json!(10);
    b["view_type"] = json!(7);
    assert_error_names(&f.configure(&b).await, 400, &["displayInfo.height"]);
    b["displayInfo"] = json!({"height": 1});
    b["start_time"] = json!(start);
    assert_error_names(&f.configure(&b).await, 400, &["view_type"]);
    b["view_type"] = json!(0);
    assert_error(&f.configure(&b).await, 400, one);
    // Validation errors come before data availability (live off).
    f.faults(json!({"live_data": false})).await;
    let mut b = live_body();
    b["nfftSelection"] = json!(3);
    assert_error_names(&f.configure(&b).await, 400, &["nfftSelection"]);
    // No job was opened by any failure above.
    let (_, jobs) = f.get("/jobs").await;
    assert_eq!(jobs["count"], 9);
    sim.shutdown().await;
}

#[tokio::test]
async fn legacy_field_names() {
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    let mut b = live_body();
    let o = b.as_object_mut().unwrap();
    let ch = o.remove("channels").unwrap();
    let di = o.remove("displayInfo").unwrap();
    o.insert("sensors".into(), ch);
    o.insert("canvasInfo".into(), di);
    let (id, _) = f.open(&b).await;
    let meta = f
        .wait_ready(&id, Duration::from_secs(5))
        .await
        .expect("ready");
    assert_eq!(meta["config"]["channels"], json!({"min": 0, "max": 50}));
    assert_eq!(meta["config"]["displayInfo"], json!({"height": 1000}));
    // Errors name the legacy field as sent.
    b["sensors"] = json!({"min": 60, "max": 50});
    assert_error(
        &f.configure(&b).await,
        400,
        "sensors: min (60) must not be greater than max (50)",
    );
    b["sensors"] = json!({"min": 0, "max": 50});
    b["canvasInfo"] = json!({"height": "x"});
    assert_error(
        &f.configure(&b).await,
        422,
        "canvasInfo.height must be an integer",
    );
    b["canvasInfo"] = json!({"height": 0});
    assert_error(
        &f.configure(&b).await,
        400,
        "canvasInfo.height must be > 0 (got 0)",
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn live_and_historic_success_and_metadata_readiness() {
    let scale = 0.05;
    let sim = start(scale).await;
    let f = Focus::new(&sim);
    let t0 = std::time::Instant::now();
    let (s, v) = f.configure(&live_body()).await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"job_id": "18-1", "status": "configured", "stream_url": "10.10.10.100", "stream_port": 50051})
    );
    // Not ready yet: the minimum consumer delay is 1 s (50 ms scaled). Only asserted when the
    // answer arrived before that, so a stalled machine cannot make the test flaky.
    let first = f.get("/metadata/18-1").await;
    if t0.elapsed() < Duration::from_millis(50) {
        assert_error(&first, 404, "Invalid job_id");
    }
    let meta = f
        .wait_ready("18-1", Duration::from_secs(3))
        .await
        .expect("consumer ready within 30 s scaled");
    let elapsed = t0.elapsed();
    let ms = meta["consumer_ready_after_ms"].as_u64().unwrap();
    assert!(elapsed >= Duration::from_millis(50));
    assert!((1000..=30000).contains(&ms), "{ms}");
    assert!(
        elapsed.as_secs_f64() >= ms as f64 / 1000.0 * scale * 0.9,
        "ready too early: {elapsed:?} vs {ms} ms"
    );
    assert_eq!(meta["job_id"], "18-1");
    assert_eq!(meta["status"], "running");
    assert_eq!(meta["mode"], "live");
    assert_eq!(meta["stream_url"], "10.10.10.100");
    assert_eq!(meta["stream_port"], 50051);
    assert_eq!(meta["config"], live_body());

    // Historic inside the default recording (sim start - 30 days .. sim start - 60 s).
    let (start, end) = (focus_time(-2 * 86400), focus_time(-2 * 86400 + 600));
    let (s, v) = f.configure(&historic_body(&start, &end)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["job_id"], "18-2");
    assert_eq!(v["stream_port"], 50052);
    let meta = f
        .wait_ready("18-2", Duration::from_secs(3))
        .await
        .expect("ready");
    assert_eq!(meta["mode"], "historic");
    assert_eq!(meta["config"]["start_time"], json!(start));

    // Unknown ids.
    for id in ["18-99", "17-1", "garbage", "18-01", "18-"] {
        assert_error(
            &f.get(&format!("/metadata/{id}")).await,
            404,
            "Invalid job_id",
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn no_live_data_no_recordings_and_future_ranges() {
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    let no_live = "No live data: the live stream is not available";
    let (s, faults) = f.faults(json!({"live_data": false})).await;
    assert_eq!(s, 200);
    assert_eq!(faults["live_data"], false);
    assert_error(&f.configure(&live_body()).await, 404, no_live);
    assert_error(&f.get("/live_metadata").await, 404, no_live);
    assert_eq!(f.get("/health").await.1["live_data"], false);
    // Historic still works without live data.
    let (start, end) = (focus_time(-86400), focus_time(-86400 + 360));
    assert_eq!(f.configure(&historic_body(&start, &end)).await.0, 200);
    f.faults(json!({"live_data": true})).await;
    assert_eq!(f.configure(&live_body()).await.0, 200);

    // Future range: default recordings end 60 s before the simulator started.
    let (fs, fe) = (focus_time(3600), focus_time(4000));
    assert_error(
        &f.configure(&historic_body(&fs, &fe)).await,
        404,
        &format!("No historic data: no recordings cover {fs}..{fe}"),
    );
    // Range ending just now is not covered either (last 60 s missing).
    let (ns, ne) = (focus_time(-600), focus_time(0));
    assert_error_names(
        &f.configure(&historic_body(&ns, &ne)).await,
        404,
        &["No historic data"],
    );
    // Older than 30 days: not covered.
    let (os, oe) = (focus_time(-40 * 86400), focus_time(-40 * 86400 + 60));
    assert_error_names(
        &f.configure(&historic_body(&os, &oe)).await,
        404,
        &["No historic data"],
    );

    // No recordings at all.
    f.faults(json!({"recordings": []})).await;
    assert_error(
        &f.configure(&historic_body(&start, &end)).await,
        404,
        &format!("No historic data: no recordings cover {start}..{end}"),
    );
    // The example from the QA notes.
    f.faults(json!({"recordings": [
        {"start_time": "251021115000", "end_time": "251021120300"},
        {"start_time": "251021120300", "end_time": "251021121000"}
    ]}))
    .await;
    assert_eq!(
        f.configure(&historic_body("251021120000", "251021120600"))
            .await
            .0,
        200,
        "adjacent recordings cover"
    );
    assert_error(
        &f.configure(&historic_body("251021120000", "251021121500"))
            .await,
        404,
        "No historic data: no recordings cover 251021120000..251021121500",
    );
    // A gap breaks coverage.
    f.faults(json!({"recordings": [
        {"start_time": "251021115000", "end_time": "251021120200"},
        {"start_time": "251021120300", "end_time": "251021121000"}
    ]}))
    .await;
    assert_error_names(
        &f.configure(&historic_body("251021120000", "251021120600"))
            .await,
        404,
        &["No historic data"],
    );
    let (s, v) = f
        .get("/recordings?start_time=251021120000&end_time=251021120600")
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"recordings": [
            {"start_time": "251021120000", "end_time": "251021120200"},
            {"start_time": "251021120300", "end_time": "251021120600"}
        ], "covered": false})
    );
    // Back to the default recording.
    f.faults(json!({"recordings": null})).await;
    assert_eq!(f.configure(&historic_body(&start, &end)).await.0, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn recordings_endpoint() {
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    let (start, end) = (focus_time(-86400), focus_time(-86400 + 600));
    let (s, v) = f
        .get(&format!("/recordings?start_time={start}&end_time={end}"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"recordings": [{"start_time": start, "end_time": end}], "covered": true})
    );
    let (fs, fe) = (focus_time(86400), focus_time(86400 + 60));
    assert_eq!(
        f.get(&format!("/recordings?start_time={fs}&end_time={fe}"))
            .await,
        (200, json!({"recordings": [], "covered": false}))
    );
    assert_error(
        &f.get("/recordings").await,
        400,
        "start_time query parameter is required (yymmddHHMMSS)",
    );
    assert_error(
        &f.get(&format!("/recordings?start_time={start}")).await,
        400,
        "end_time query parameter is required (yymmddHHMMSS)",
    );
    assert_error(
        &f.get(&format!("/recordings?start_time=abc&end_time={end}"))
            .await,
        400,
        "start_time: 'abc' is not a valid yymmddHHMMSS time (UTC)",
    );
    assert_error(
        &f.get(&format!("/recordings?start_time={end}&end_time={start}"))
            .await,
        400,
        "end_time must be after start_time",
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn two_hundred_concurrent_jobs_then_capacity_503() {
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    let results = join_all((0..200).map(|_| {
        let f = f.clone();
        async move { f.configure(&live_body()).await }
    }))
    .await;
    let mut ports = HashSet::new();
    let mut ids = HashSet::new();
    for (s, v) in &results {
        assert_eq!(*s, 200, "{v}");
        let port = v["stream_port"].as_u64().unwrap();
        assert!((50051..=50350).contains(&port));
        assert!(ports.insert(port), "port {port} shared");
        assert!(ids.insert(v["job_id"].as_str().unwrap().to_string()));
    }
    assert_eq!(ports.len(), 200);
    let full = "Capacity reached: 200 concurrent jobs are open";
    assert_error(&f.configure(&live_body()).await, 503, full);
    let (start, end) = (focus_time(-86400), focus_time(-86400 + 60));
    assert_error(&f.configure(&historic_body(&start, &end)).await, 503, full);

    // Existing jobs are unharmed.
    let (_, jobs) = f.get("/jobs").await;
    assert_eq!(jobs["count"], 200);
    let listed: HashSet<String> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ids);
    assert_eq!(f.get("/health").await.1["jobs"], 200);
    let some = ids.iter().next().unwrap().clone();
    assert!(f.wait_ready(&some, Duration::from_secs(3)).await.is_some());

    // Cancelling one frees capacity and its port at once; the lowest free port is reused.
    let victim = results
        .iter()
        .find(|(_, v)| v["stream_port"] == 50060)
        .unwrap()
        .1["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(f.cancel(&victim).await.0, 200);
    let (s, v) = f.configure(&live_body()).await;
    assert_eq!(s, 200);
    assert_eq!(v["stream_port"], 50060);
    assert_eq!(v["job_id"], "18-201");
    assert_error(&f.configure(&live_body()).await, 503, full);
    sim.shutdown().await;
}

#[tokio::test]
async fn ports_occupied_and_exhausted() {
    let sim = start_with(focusqa::sim::SimConfig {
        time_scale: 0.01,
        port_range: (50051, 50054),
        ..Default::default()
    })
    .await;
    let f = Focus::new(&sim);
    let (s, v) = f
        .faults(json!({"occupied_ports": [50052, 50051, 50052]}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["occupied_ports"], json!([50051, 50052]));
    assert_eq!(f.open(&live_body()).await.1, 50053);
    assert_eq!(f.open(&live_body()).await.1, 50054);
    let none = "No free stream port in 50051-50054";
    assert_error(&f.configure(&live_body()).await, 503, none);
    // Freeing a foreign port makes it available; existing jobs unharmed.
    f.faults(json!({"occupied_ports": [50052]})).await;
    assert_eq!(f.open(&live_body()).await.1, 50051);
    assert_error(&f.configure(&live_body()).await, 503, none);
    assert_eq!(f.get("/jobs").await.1["count"], 3);
    // Capacity is checked before ports.
    f.faults(json!({"capacity": 3})).await;
    assert_error(
        &f.configure(&live_body()).await,
        503,
        "Capacity reached: 3 concurrent jobs are open",
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn consumer_never_ready_fault() {
    let sim = start(0.005).await;
    let f = Focus::new(&sim);
    f.faults(json!({"consumer_never_ready": true})).await;
    let (id, _) = f.open(&live_body()).await;
    // 30 s scaled = 150 ms: still not ready well after that.
    assert!(f
        .wait_ready(&id, Duration::from_millis(400))
        .await
        .is_none());
    assert_eq!(f.get("/jobs").await.1["jobs"][0]["status"], "configured");
    // Jobs opened before the fault is cleared stay never-ready; new ones get ready.
    f.faults(json!({"consumer_never_ready": false})).await;
    let (id2, _) = f.open(&live_body()).await;
    assert!(f.wait_ready(&id2, Duration::from_secs(2)).await.is_some());
    assert!(f.wait_ready(&id, Duration::from_millis(10)).await.is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn cancel_jobs_and_list() {
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    // The first job's consumer never gets ready, so its status is deterministically "configured".
    f.faults(json!({"consumer_never_ready": true})).await;
    let (a, pa) = f.open(&live_body()).await;
    f.faults(json!({"consumer_never_ready": false})).await;
    let (b, _) = f.open(&live_body()).await;
    let (s, jobs) = f.get("/jobs").await;
    assert_eq!(s, 200);
    assert_eq!(jobs["count"], 2);
    let first = &jobs["jobs"][0];
    assert_eq!(first["job_id"], a.as_str());
    assert_eq!(first["status"], "configured");
    assert_eq!(first["mode"], "live");
    assert_eq!(first["stream_port"], pa);
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'));

    assert_eq!(
        f.cancel(&a).await,
        (200, json!({"job_id": a, "status": "cancelled"}))
    );
    assert_error(&f.cancel(&a).await, 404, &format!("Unknown job_id {a}"));
    assert_error(&f.cancel("18-999").await, 404, "Unknown job_id 18-999");
    assert_error(&f.cancel("bogus").await, 404, "Unknown job_id bogus");
    assert_error(
        &f.get(&format!("/metadata/{a}")).await,
        404,
        "Invalid job_id",
    );
    let (_, jobs) = f.get("/jobs").await;
    assert_eq!(jobs["count"], 1);
    assert_eq!(jobs["jobs"][0]["job_id"], b.as_str());
    // Eventually running.
    assert!(f.wait_ready(&b, Duration::from_secs(2)).await.is_some());
    assert_eq!(f.get("/jobs").await.1["jobs"][0]["status"], "running");
    // The cancelled port is free again.
    assert_eq!(f.open(&live_body()).await.1, pa);
    assert_eq!(f.get("/health").await.1["jobs"], 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_merge_validate_and_reset() {
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    let defaults = json!({
        "live_data": true, "recordings": null, "occupied_ports": [], "capacity": 200,
        "fail_next_jobs": 0, "consumer_never_ready": false, "slow_responses_ms": 0,
        "consumer_delay_s": null, "kube_throttle": null, "idle_close_s": null,
        "reset_responses": 0, "configure_delay_s": null
    });
    assert_eq!(f.get("/sim/faults").await, (200, defaults.clone()));
    let (s, v) = f.faults(json!({"capacity": 2, "fail_next_jobs": 1})).await;
    assert_eq!(s, 200);
    assert_eq!(v["capacity"], 2);
    assert_eq!(v["fail_next_jobs"], 1);
    let (_, v) = f.faults(json!({"live_data": false})).await;
    assert_eq!(v["capacity"], 2, "merge keeps other keys");
    assert_eq!(v["live_data"], false);
    assert_eq!(f.get("/health").await.1["capacity"], 2);

    assert_error(
        &f.faults(json!({"bogus": 1})).await,
        400,
        "unknown fault key 'bogus' (allowed: live_data, recordings, occupied_ports, capacity, fail_next_jobs, consumer_never_ready, slow_responses_ms, consumer_delay_s, kube_throttle, idle_close_s, reset_responses, configure_delay_s)",
    );
    let (s, v) = f.faults(json!({"consumer_delay_s": [20, 40]})).await;
    assert_eq!(
        (s, v["consumer_delay_s"].clone()),
        (200, json!([20.0, 40.0]))
    );
    for bad in [json!([40, 20]), json!([1]), json!([-1, 2]), json!("20s")] {
        assert_error(
            &f.faults(json!({"consumer_delay_s": bad})).await,
            400,
            "consumer_delay_s must be [min, max] seconds with 0 <= min <= max <= 3600, or null",
        );
    }
    assert_eq!(
        f.faults(json!({"consumer_delay_s": null})).await.1["consumer_delay_s"],
        json!(null)
    );
    let (s, v) = f.faults(json!({"kube_throttle": {"requests": 3}})).await;
    assert_eq!(
        (s, v["kube_throttle"].clone()),
        (200, json!({"requests": 3, "retry_after_s": 1})),
        "retry_after_s defaults to 1"
    );
    for bad in [
        json!({"requests": 1001}),
        json!({"requests": 1, "retry_after_s": 61}),
        json!({"retry_after_s": 1}),
        json!({"requests": 1, "every": 2}),
        json!(5),
    ] {
        assert_error(
            &f.faults(json!({"kube_throttle": bad})).await,
            400,
            "kube_throttle must be {requests: N, retry_after_s: S} with N <= 1000 and S <= 60, or null",
        );
    }
    assert_eq!(
        f.faults(json!({"kube_throttle": null})).await.1["kube_throttle"],
        json!(null)
    );
    assert_error(
        &f.faults(json!({"live_data": "no"})).await,
        400,
        "live_data must be a boolean",
    );
    assert_error(
        &f.faults(json!({"capacity": -1})).await,
        400,
        "capacity must be a non-negative integer",
    );
    assert_error(
        &f.faults(json!({"occupied_ports": [70000]})).await,
        400,
        "occupied_ports: 70000 is not a valid port (1-65535)",
    );
    assert_error(
        &f.faults(json!({"recordings": [{"start_time": "x", "end_time": "251021120000"}]}))
            .await,
        400,
        "recordings[0].start_time: 'x' is not a valid yymmddHHMMSS time",
    );
    assert_error_names(
        &f.faults(
            json!({"recordings": [{"start_time": "251021120000", "end_time": "251021110000"}]}),
        )
        .await,
        400,
        &["recordings[0]"],
    );
    assert_error_names(
        &f.faults(json!({"slow_responses_ms": "x"})).await,
        400,
        &["slow_responses_ms"],
    );
    assert_error_names(
        &f.faults(json!({"consumer_never_ready": 1})).await,
        400,
        &["consumer_never_ready"],
    );
    assert_error_names(
        &f.faults(json!({"fail_next_jobs": true})).await,
        400,
        &["fail_next_jobs"],
    );
    assert_error_names(
        &f.call("PUT", "/sim/faults", Some(&json!([1]))).await,
        400,
        &["JSON object"],
    );
    // A failed merge changes nothing (atomic).
    let (_, v) = f
        .call(
            "PUT",
            "/sim/faults",
            Some(&json!({"capacity": 5, "bogus": 1})),
        )
        .await
        .clone();
    assert!(v["detail"].as_str().unwrap().contains("bogus"));
    assert_eq!(f.get("/sim/faults").await.1["capacity"], 2);

    // Capacity fault in effect.
    f.faults(json!({"live_data": true})).await;
    f.open(&live_body()).await;
    f.open(&live_body()).await;
    assert_error(
        &f.configure(&live_body()).await,
        503,
        "Capacity reached: 2 concurrent jobs are open",
    );

    assert_eq!(
        f.call("DELETE", "/sim/faults", None).await,
        (200, defaults.clone())
    );
    assert_eq!(f.open(&live_body()).await.0, "18-3");

    // slow_responses_ms delays Focus responses (real ms, not scaled) but not /sim.
    f.faults(json!({"slow_responses_ms": 300})).await;
    let t = std::time::Instant::now();
    assert_eq!(f.get("/health").await.0, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    let t = std::time::Instant::now();
    f.get("/sim/state").await;
    assert!(
        t.elapsed() < Duration::from_millis(250),
        "/sim is not slowed"
    );
    f.call("DELETE", "/sim/faults", None).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn fail_next_jobs_marks_focus_jobs_failed() {
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    f.faults(json!({"fail_next_jobs": 2})).await;
    let (a, _) = f.open(&live_body()).await;
    let (b, _) = f.open(&live_body()).await;
    let (c, _) = f.open(&live_body()).await;
    assert_eq!(f.get("/sim/faults").await.1["fail_next_jobs"], 0);
    // Pod start is 1-5 s (50 ms scaled): then a and b are failed, c runs.
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(f.wait_ready(&c, Duration::from_secs(2)).await.is_some());
    let (_, jobs) = f.get("/jobs").await;
    let status = |id: &str| {
        jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["job_id"] == id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status(&a), "failed");
    assert_eq!(status(&b), "failed");
    assert_eq!(status(&c), "running");
    // Failed jobs never become ready; they stay open until cancelled.
    assert_error(
        &f.get(&format!("/metadata/{a}")).await,
        404,
        "Invalid job_id",
    );
    assert_eq!(f.get("/health").await.1["jobs"], 3);
    assert_eq!(f.cancel(&a).await.0, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn reset_clears_jobs_and_faults_but_not_ids() {
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    f.open(&live_body()).await;
    let (b, _) = f.open(&live_body()).await;
    f.cancel(&b).await;
    f.faults(json!({"capacity": 7, "live_data": false})).await;
    let (s, st) = f.get("/sim/state").await;
    assert_eq!(s, 200);
    assert_eq!(
        st["jobs"].as_array().unwrap().len(),
        2,
        "state lists cancelled jobs too"
    );
    assert_eq!(st["open_jobs"], 1);
    assert_eq!(st["config"]["port_range"], json!([50051, 50350]));
    assert_eq!(st["config"]["instance"], 18);
    assert_eq!(st["kube"]["jobs"], 4);
    assert!(st["jobs"][1]["cancelled_at"].is_string());

    assert_eq!(
        f.call("POST", "/sim/reset", None).await,
        (200, json!({"status": "reset"}))
    );
    let (_, st) = f.get("/sim/state").await;
    assert_eq!(st["jobs"], json!([]));
    assert_eq!(st["open_jobs"], 0);
    assert_eq!(st["kube"]["jobs"], 0);
    assert_eq!(st["kube"]["pods"], 0);
    assert_eq!(st["faults"]["capacity"], 200);
    assert_eq!(st["faults"]["live_data"], true);
    assert_eq!(f.get("/jobs").await.1, json!({"jobs": [], "count": 0}));
    let (id, port) = f.open(&live_body()).await;
    assert_eq!(id, "18-3", "ids are never reused");
    assert_eq!(port, 50051);
    sim.shutdown().await;
}

#[tokio::test]
async fn seeded_delays_are_deterministic_and_follow_the_distribution() {
    async fn delays(seed: u64, n: usize) -> Vec<u64> {
        let sim = start_with(focusqa::sim::SimConfig {
            time_scale: 0.01,
            seed,
            ..Default::default()
        })
        .await;
        let f = Focus::new(&sim);
        for _ in 0..n {
            f.open(&live_body()).await;
        }
        let (_, st) = f.get("/sim/state").await;
        sim.shutdown().await;
        st["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["consumer_ready_after_ms"].as_u64().unwrap())
            .collect()
    }
    let a = delays(42, 200).await;
    let b = delays(42, 200).await;
    let c = delays(7, 200).await;
    assert_eq!(a, b, "same seed, same order, same delays");
    assert_ne!(a, c);
    assert!(a.iter().all(|d| (1000..=30000).contains(d)));
    let fast = a.iter().filter(|d| **d <= 5000).count();
    assert!(
        (150..=190).contains(&fast),
        "about 85% within 1-5 s, got {fast}/200"
    );
    assert!(a.iter().any(|d| *d > 5000));
}

#[tokio::test]
async fn hostile_inputs_never_yield_5xx() {
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    // Huge body: 413 JSON.
    let big = vec![b' '; 3 * 1024 * 1024];
    let got = f.raw("POST", "/configure", Some(big)).await;
    assert_eq!(got.0, 413);
    // Huge numbers, deep nesting, odd unicode, and overflowing values.
    let mut b = live_body();
    b["displayInfo"]["height"] = json!(u64::MAX);
    b["channels"]["max"] = json!(u64::MAX);
    assert_error_names(
        &f.configure(&b).await,
        400,
        &["channels: max (18446744073709551615)"],
    );
    let mut b = live_body();
    b["displayInfo"]["height"] = json!(u64::MAX);
    let (s, _) = f.configure(&b).await;
    assert_eq!(s, 200, "a huge height is still a positive integer");
    let mut b = live_body();
    b["displayTimeAxisDuration"] = json!(1e308);
    b["frequencyRange"] = json!({"min": 1e-300, "max": 499.999});
    assert_eq!(f.configure(&b).await.0, 200);
    let mut b = live_body();
    b["start_time"] = json!("２５１０２１１２００００");
    b["end_time"] = json!("251021120600");
    assert_error_names(&f.configure(&b).await, 400, &["start_time"]);
    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    assert_eq!(
        f.raw("POST", "/configure", Some(nested.into_bytes()))
            .await
            .0,
        422
    );
    for path in [
        "/metadata/%FF%FE",
        "/metadata/18-99999999999999999999999",
        "/metadata/%2e%2e",
    ] {
        assert_eq!(f.get(path).await.0, 404);
    }
    assert_eq!(
        f.call("DELETE", "/job/18-18446744073709551616", None)
            .await
            .0,
        404
    );
    assert_eq!(f.get("/recordings?start_time=%FF&end_time=1").await.0, 400);
    assert_eq!(f.get("/health").await.0, 200);
    sim.shutdown().await;
}

#[test]
fn handle_and_start_future_are_send() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let fut = focusqa::sim::start(focusqa::sim::SimConfig::default(), 0, 0);
    send(&fut);
    drop(fut);
    fn handle_is_send_sync<T: Send + Sync>() {}
    handle_is_send_sync::<focusqa::sim::SimHandle>();
    send_sync(&focusqa::sim::SimConfig::default());
}

#[tokio::test]
async fn invalid_configs_and_fixed_ports() {
    use focusqa::sim::SimConfig;
    assert!(focusqa::sim::start(
        SimConfig {
            time_scale: -1.0,
            ..Default::default()
        },
        0,
        0
    )
    .await
    .is_err());
    assert!(focusqa::sim::start(
        SimConfig {
            time_scale: f64::NAN,
            ..Default::default()
        },
        0,
        0
    )
    .await
    .is_err());
    assert!(focusqa::sim::start(
        SimConfig {
            port_range: (2, 1),
            ..Default::default()
        },
        0,
        0
    )
    .await
    .is_err());
    // A port already in use is an io error, not a panic.
    let sim = start(0.0).await;
    let taken: u16 = sim.focus_url().rsplit(':').next().unwrap().parse().unwrap();
    assert!(focusqa::sim::start(SimConfig::default(), taken, 0)
        .await
        .is_err());
    // time_scale 0: everything is immediate.
    let f = Focus::new(&sim);
    let (id, _) = f.open(&live_body()).await;
    assert_eq!(f.get(&format!("/metadata/{id}")).await.0, 200);
    let cfg = sim.config().clone();
    assert_eq!(
        (
            cfg.capacity,
            cfg.seed,
            cfg.namespace.as_str(),
            cfg.stream_ip.as_str(),
            cfg.port_range,
            cfg.instance
        ),
        (200, 42, "focus", "10.10.10.100", (50051, 50350), 18)
    );
    assert!(sim.focus_url().starts_with("http://127.0.0.1:") && !sim.focus_url().ends_with('/'));
    assert!(sim.kube_url().starts_with("http://127.0.0.1:"));
    sim.shutdown().await;
}
