//! Kubernetes API of the embedded simulator, driven with the real `kube` client.

use crate::sim_common;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::discovery::{Discovery, Scope};
use kube::{Client, ResourceExt};
use serde_json::json;
use sim_common::*;
use std::time::{Duration, Instant};

fn client(sim: &focusqa::sim::SimHandle) -> Client {
    let mut cfg = kube::Config::new(sim.kube_url().parse().expect("url"));
    cfg.default_namespace = sim.config().namespace.clone();
    Client::try_from(cfg).expect("client")
}

async fn wait_for<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn cpu_millicores(p: &Pod) -> u32 {
    p.annotations()
        .get("focus.sim/cpu-millicores")
        .and_then(|c| c.parse().ok())
        .expect("cpu annotation")
}

#[tokio::test]
async fn discovery_finds_jobs_pods_nodes_events() {
    let sim = start(0.01).await;
    let c = client(&sim);
    let v = c.apiserver_version().await.unwrap();
    assert_eq!(v.git_version, "v1.33.0-focusqa-sim");
    for aggregated in [false, true] {
        let d = if aggregated {
            Discovery::new(c.clone()).run_aggregated().await
        } else {
            Discovery::new(c.clone()).run().await
        };
        let d = d.unwrap_or_else(|e| panic!("discovery (aggregated={aggregated}): {e}"));
        let mut found = Vec::new();
        for g in d.groups() {
            for (ar, caps) in g.recommended_resources() {
                assert!(
                    caps.supports_operation("list")
                        && caps.supports_operation("watch")
                        && caps.supports_operation("delete")
                );
                found.push((ar.plural.clone(), caps.scope == Scope::Namespaced));
            }
        }
        for want in [
            ("jobs", true),
            ("pods", true),
            ("nodes", false),
            ("events", true),
        ] {
            assert!(
                found.contains(&(want.0.to_string(), want.1)),
                "aggregated={aggregated}: {want:?} in {found:?}"
            );
        }
        // The discovered resource works with a dynamic Api.
        let (ar, _) = d
            .resolve_gvk(&kube::api::GroupVersionKind::gvk("", "v1", "Node"))
            .expect("Node discovered");
        let nodes: Api<DynamicObject> = Api::all_with(c.clone(), &ar);
        assert_eq!(
            nodes
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .len(),
            2
        );
    }
    // Unknown groups and resources: 404 Status.
    let r = reqwest::get(format!("{}/apis/apps/v1", sim.kube_url()))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "NotFound");
    sim.shutdown().await;
}

#[tokio::test]
async fn analyzer_and_cleanup_objects_with_resources() {
    // Pod start is 1-5 s: 200-1000 ms at this scale, so the first look sees Pending.
    let sim = start(0.2).await;
    let f = Focus::new(&sim);
    let c = client(&sim);
    let (id, port) = f.open(&live_body()).await;
    let jobs: Api<Job> = Api::default_namespaced(c.clone());
    let pods: Api<Pod> = Api::default_namespaced(c.clone());

    let listed = jobs
        .list(&ListParams::default().labels(&format!("focus.job-id={id}")))
        .await
        .unwrap();
    let mut names: Vec<String> = listed.items.iter().map(|j| j.name_any()).collect();
    names.sort();
    assert_eq!(
        names,
        vec![format!("baby-analyzer-{id}"), format!("cleanup-job-{id}")]
    );
    assert!(listed.metadata.resource_version.is_some());

    let aj = jobs.get(&format!("baby-analyzer-{id}")).await.unwrap();
    assert_eq!(
        aj.labels().get("app").map(String::as_str),
        Some("baby-analyzer")
    );
    assert_eq!(aj.metadata.namespace.as_deref(), Some("focus"));
    assert!(
        aj.metadata.uid.is_some()
            && aj.metadata.creation_timestamp.is_some()
            && aj.metadata.generation == Some(1)
    );
    let st = aj.status.clone().unwrap();
    assert_eq!(st.active, Some(1));
    assert!(st.start_time.is_some());

    let cj = jobs.get(&format!("cleanup-job-{id}")).await.unwrap();
    assert_eq!(
        cj.labels().get("app").map(String::as_str),
        Some("focus-cleanup")
    );
    let spec = cj.spec.clone().unwrap();
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(spec.ttl_seconds_after_finished, Some(10));
    let env: Vec<(String, String)> = spec.template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    for (k, v) in [
        ("CPU_USAGE_THRESHOLD", "4"),
        ("ENABLE_CPU_USAGE_CHECK", "true"),
        ("MAX_CPU_USAGE_COUNT", "5"),
        ("JOB_ID", id.as_str()),
    ] {
        assert!(
            env.contains(&(k.to_string(), v.to_string())),
            "{k}={v} in {env:?}"
        );
    }

    let lp = ListParams::default().labels(&format!("app=baby-analyzer,focus.job-id={id}"));
    let plist = pods.list(&lp).await.unwrap();
    assert_eq!(plist.items.len(), 1);
    let pod = &plist.items[0];
    let name = pod.name_any();
    assert!(name.starts_with(&format!("baby-analyzer-{id}-")));
    let suffix = name.rsplit('-').next().unwrap();
    assert!(
        suffix.len() == 5 && suffix.chars().all(|c| c.is_ascii_lowercase()),
        "{name}"
    );
    assert_eq!(
        pod.labels().get("job-name"),
        Some(&format!("baby-analyzer-{id}"))
    );
    let owner = &pod.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Job", format!("baby-analyzer-{id}").as_str())
    );
    assert_eq!(Some(owner.uid.clone()), aj.metadata.uid);
    let spec = pod.spec.clone().unwrap();
    let ctr = &spec.containers[0];
    assert_eq!(ctr.name, "baby-analyzer");
    let res = ctr.resources.clone().unwrap();
    for q in [res.requests.unwrap(), res.limits.unwrap()] {
        assert_eq!(q["memory"].0, "4Gi");
        assert_eq!(q["cpu"].0, "2");
        assert_eq!(q["nvidia.com/mig-1g.10gb"].0, "1");
    }
    let p = &ctr.ports.clone().unwrap()[0];
    assert_eq!(p.container_port, i32::from(port));
    assert_eq!(p.name.as_deref(), Some("grpc-stream"));
    assert_eq!(p.protocol.as_deref(), Some("TCP"));
    let m = &ctr.volume_mounts.clone().unwrap()[0];
    assert_eq!(
        (m.name.as_str(), m.mount_path.as_str(), m.read_only),
        ("recordings", "/recordings", Some(true))
    );
    let vol = &spec.volumes.unwrap()[0];
    assert_eq!(vol.name, "recordings");
    assert_eq!(
        vol.persistent_volume_claim.as_ref().unwrap().claim_name,
        "focus-recordings"
    );

    // Pending (scheduled) -> Running within 5 s scaled.
    let status = pod.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert!(status
        .conditions
        .unwrap()
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.status == "True"));
    let running = wait_for(Duration::from_secs(4), || {
        let pods = pods.clone();
        let name = name.clone();
        async move {
            let p = pods.get(&name).await.ok()?;
            (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(p)
        }
    })
    .await
    .expect("pod Running");
    let cs = &running.status.clone().unwrap().container_statuses.unwrap()[0];
    assert!(cs.ready && cs.started == Some(true) && cs.restart_count == 0);
    assert!(cs.state.as_ref().unwrap().running.is_some());
    assert!(cpu_millicores(&running) >= 100, "busy analyzer");
    let aj = jobs.get(&format!("baby-analyzer-{id}")).await.unwrap();
    assert_eq!(aj.status.unwrap().ready, Some(1));

    // Field selectors and events.
    let by_phase = pods
        .list(
            &ListParams::default()
                .fields("status.phase=Running")
                .labels(&format!("focus.job-id={id}")),
        )
        .await
        .unwrap();
    assert!(by_phase.items.iter().any(|p| p.name_any() == name));
    let by_name = pods
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    let events: Api<Event> = Api::default_namespaced(c.clone());
    let evs = events
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .unwrap();
    let reasons: Vec<String> = evs.items.iter().filter_map(|e| e.reason.clone()).collect();
    for r in ["Scheduled", "Started"] {
        assert!(reasons.contains(&r.to_string()), "{r} in {reasons:?}");
    }
    let e = &evs.items[0];
    assert_eq!(e.involved_object.kind.as_deref(), Some("Pod"));
    assert_eq!(e.type_.as_deref(), Some("Normal"));
    assert!(e.first_timestamp.is_some() && e.last_timestamp.is_some() && e.count == Some(1));
    let evs = events
        .list(&ListParams::default().fields(&format!(
            "involvedObject.name=baby-analyzer-{id},involvedObject.kind=Job"
        )))
        .await
        .unwrap();
    assert_eq!(evs.items[0].reason.as_deref(), Some("SuccessfulCreate"));

    // All-namespaces list and other namespaces.
    let all: Api<Pod> = Api::all(c.clone());
    assert_eq!(
        all.list(&ListParams::default().labels(&format!("focus.job-id={id}")))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let other: Api<Pod> = Api::namespaced(c.clone(), "default");
    assert!(other
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    let ns: Api<Namespace> = Api::all(c.clone());
    assert!(ns.get("focus").await.is_ok());
    // Selector operators.
    let n = |sel: &str| {
        let pods = pods.clone();
        let sel = sel.to_string();
        async move {
            pods.list(&ListParams::default().labels(&sel))
                .await
                .unwrap()
                .items
                .len()
        }
    };
    assert_eq!(n(&format!("focus.job-id in ({id},x)")).await, 2);
    assert_eq!(n(&format!("focus.job-id={id},app!=baby-analyzer")).await, 1);
    assert_eq!(n("app notin (baby-analyzer,focus-cleanup)").await, 0);
    assert_eq!(n("job-name").await, 2);
    assert_eq!(n("!job-name").await, 0);
    let bad = pods
        .list(&ListParams::default().labels("app in x"))
        .await
        .unwrap_err();
    assert!(
        matches!(bad, kube::Error::Api(ref s) if s.code == 400),
        "{bad:?}"
    );
    f.cancel(&id).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn failure_fault_makes_pod_and_job_fail() {
    let sim = start(0.05).await;
    let f = Focus::new(&sim);
    let c = client(&sim);
    f.faults(json!({"fail_next_jobs": 1})).await;
    let (id, _) = f.open(&live_body()).await;
    let jobs: Api<Job> = Api::default_namespaced(c.clone());
    let failed = wait_for(Duration::from_secs(2), || {
        let jobs = jobs.clone();
        let id = id.clone();
        async move {
            let j = jobs.get(&format!("baby-analyzer-{id}")).await.ok()?;
            (j.status.as_ref()?.failed == Some(1)).then_some(j)
        }
    })
    .await
    .expect("job failed");
    let conds = failed.status.unwrap().conditions.unwrap();
    assert!(conds.iter().any(|c| c.type_ == "Failed"
        && c.status == "True"
        && c.reason.as_deref() == Some("BackoffLimitExceeded")));
    let pods: Api<Pod> = Api::default_namespaced(c.clone());
    let p = pods
        .list(&ListParams::default().labels(&format!("app=baby-analyzer,focus.job-id={id}")))
        .await
        .unwrap()
        .items
        .remove(0);
    let st = p.status.unwrap();
    assert_eq!(st.phase.as_deref(), Some("Failed"));
    let term = st.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(term.exit_code, 1);
    assert_eq!(term.reason.as_deref(), Some("Error"));
    assert_eq!(f.get("/jobs").await.1["jobs"][0]["status"], "failed");
    let events: Api<Event> = Api::default_namespaced(c.clone());
    let evs = events
        .list(&ListParams::default().fields(&format!("involvedObject.name=baby-analyzer-{id}")))
        .await
        .unwrap();
    assert!(evs
        .items
        .iter()
        .any(|e| e.reason.as_deref() == Some("BackoffLimitExceeded")
            && e.type_.as_deref() == Some("Warning")));
    // The next job is healthy.
    let (id2, _) = f.open(&live_body()).await;
    assert!(f.wait_ready(&id2, Duration::from_secs(3)).await.is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn cleanup_deletes_analyzer_after_five_idle_readings_then_ttl() {
    let scale = 0.02; // 10 s reading period -> 200 ms; ~50 s after cancel -> ~1 s
    let sim = start(scale).await;
    let f = Focus::new(&sim);
    let c = client(&sim);
    let (id, _) = f.open(&live_body()).await;
    let jobs: Api<Job> = Api::default_namespaced(c.clone());
    let pods: Api<Pod> = Api::default_namespaced(c.clone());
    let analyzer = format!("baby-analyzer-{id}");
    let cleanup = format!("cleanup-job-{id}");
    // A connected client keeps the analyzer busy: nothing is deleted (100 s simulated).
    tokio::time::sleep(Duration::from_secs_f64(100.0 * scale)).await;
    assert!(jobs.get(&analyzer).await.is_ok());
    let lp = ListParams::default().labels(&format!("app=baby-analyzer,focus.job-id={id}"));
    let p = pods.list(&lp).await.unwrap().items.remove(0);
    assert!(cpu_millicores(&p) >= 100);

    let t0 = Instant::now();
    assert_eq!(f.cancel(&id).await.0, 200);
    let p = pods.list(&lp).await.unwrap().items.remove(0);
    assert!(cpu_millicores(&p) <= 4, "idle after cancel");
    assert!(
        jobs.get(&analyzer).await.is_ok(),
        "analyzer lingers after cancel"
    );

    let gone = wait_for(Duration::from_secs(3), || {
        let jobs = jobs.clone();
        let analyzer = analyzer.clone();
        async move { jobs.get(&analyzer).await.is_err().then_some(()) }
    })
    .await;
    let took = t0.elapsed().as_secs_f64() / scale;
    assert!(gone.is_some(), "analyzer deleted");
    assert!(
        (39.0..=150.0).contains(&took),
        "deleted ~40-50 s (simulated) after cancel, took {took:.1} s"
    );
    assert!(
        pods.list(&lp).await.unwrap().items.is_empty(),
        "analyzer pod deleted with its job"
    );
    let err = jobs.get(&analyzer).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404 && s.reason == "NotFound"),
        "{err:?}"
    );

    // The cleanup job completed and is deleted 10 s (simulated) later with its pod.
    if let Ok(cj) = jobs.get(&cleanup).await {
        let st = cj.status.unwrap();
        assert_eq!(st.succeeded, Some(1));
        assert!(st
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True"));
    }
    let ttl_gone = wait_for(Duration::from_secs(3), || {
        let jobs = jobs.clone();
        let cleanup = cleanup.clone();
        async move { jobs.get(&cleanup).await.is_err().then_some(()) }
    })
    .await;
    assert!(ttl_gone.is_some(), "cleanup job removed after its TTL");
    assert!(pods
        .list(&ListParams::default().labels(&format!("focus.job-id={id}")))
        .await
        .unwrap()
        .items
        .is_empty());
    let events: Api<Event> = Api::default_namespaced(c.clone());
    let evs = events
        .list(&ListParams::default().fields(&format!("involvedObject.name={analyzer}")))
        .await
        .unwrap();
    assert!(evs
        .items
        .iter()
        .any(|e| e.reason.as_deref() == Some("SuccessfulDelete")));
    let (_, st) = f.get("/sim/state").await;
    assert!(st["jobs"][0]["analyzer_deleted_at"].is_string());
    assert!(st["jobs"][0]["cleanup_deleted_at"].is_string());
    sim.shutdown().await;
}

#[tokio::test]
async fn watch_sees_added_modified_deleted() {
    let scale = 0.01;
    let sim = start(scale).await;
    let f = Focus::new(&sim);
    let c = client(&sim);
    let jobs: Api<Job> = Api::default_namespaced(c.clone());
    let (id, _) = f.open(&live_body()).await;
    let wp = WatchParams::default()
        .labels(&format!("app=baby-analyzer,focus.job-id={id}"))
        .timeout(20);
    let mut stream = jobs.watch(&wp, "0").await.unwrap().boxed();
    let pods: Api<Pod> = Api::default_namespaced(c.clone());
    let list = pods.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.clone().unwrap();
    let mut pod_stream = pods
        .watch(
            &WatchParams::default()
                .labels(&format!("focus.job-id={id}"))
                .timeout(20),
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    f.cancel(&id).await;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), stream.try_next()).await {
            Ok(Ok(Some(ev))) => {
                let t = match ev {
                    WatchEvent::Added(j) => ("ADDED", j.name_any()),
                    WatchEvent::Modified(j) => ("MODIFIED", j.name_any()),
                    WatchEvent::Deleted(j) => ("DELETED", j.name_any()),
                    WatchEvent::Bookmark(_) => continue,
                    WatchEvent::Error(e) => panic!("watch error {e:?}"),
                };
                let done = t.0 == "DELETED";
                seen.push(t);
                if done {
                    break;
                }
            }
            other => panic!("watch ended early: {other:?} after {seen:?}"),
        }
    }
    let analyzer = format!("baby-analyzer-{id}");
    assert_eq!(seen.first(), Some(&("ADDED", analyzer.clone())));
    assert_eq!(seen.last(), Some(&("DELETED", analyzer.clone())));
    // The pod watch resumed from a list resourceVersion: no synthetic ADDED, but DELETED events.
    let mut pod_types = Vec::new();
    while let Ok(Ok(Some(ev))) =
        tokio::time::timeout(Duration::from_secs(2), pod_stream.try_next()).await
    {
        match ev {
            WatchEvent::Added(p) => pod_types.push(format!("ADDED {}", p.name_any())),
            WatchEvent::Modified(_) => pod_types.push("MODIFIED".into()),
            WatchEvent::Deleted(p) => pod_types.push(format!("DELETED {}", p.name_any())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
        if pod_types
            .iter()
            .filter(|t| t.starts_with("DELETED"))
            .count()
            == 2
        {
            break;
        }
    }
    assert!(
        !pod_types.iter().any(|t| t.starts_with("ADDED")),
        "{pod_types:?}"
    );
    assert_eq!(
        pod_types
            .iter()
            .filter(|t| t.starts_with("DELETED"))
            .count(),
        2,
        "{pod_types:?}"
    );

    // A too-old resourceVersion is not an error for the initial request; the runtime watcher
    // (list+watch and streaming lists) works.
    for streaming in [false, true] {
        let (id, _) = f.open(&live_body()).await;
        let mut cfg =
            kube::runtime::watcher::Config::default().labels(&format!("focus.job-id={id}"));
        if streaming {
            cfg = cfg.streaming_lists();
        }
        let w = kube::runtime::watcher(jobs.clone(), cfg);
        let mut w = Box::pin(w);
        let mut names = Vec::new();
        while let Ok(Some(Ok(ev))) = tokio::time::timeout(Duration::from_secs(3), w.next()).await {
            match ev {
                kube::runtime::watcher::Event::InitApply(j)
                | kube::runtime::watcher::Event::Apply(j) => names.push(j.name_any()),
                kube::runtime::watcher::Event::InitDone => break,
                _ => {}
            }
        }
        names.sort();
        assert_eq!(
            names,
            vec![format!("baby-analyzer-{id}"), format!("cleanup-job-{id}")],
            "streaming={streaming}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn delete_through_the_api() {
    let sim = start(0.05).await;
    let f = Focus::new(&sim);
    let c = client(&sim);
    let jobs: Api<Job> = Api::default_namespaced(c.clone());
    let pods: Api<Pod> = Api::default_namespaced(c.clone());
    let (id, _) = f.open(&live_body()).await;
    let res = jobs
        .delete(&format!("baby-analyzer-{id}"), &DeleteParams::background())
        .await
        .unwrap();
    assert!(res.is_left(), "the deleted Job is returned");
    assert!(pods
        .list(&ListParams::default().labels(&format!("app=baby-analyzer,focus.job-id={id}")))
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(
        f.get("/jobs").await.1["jobs"][0]["status"],
        "failed",
        "analyzer lost"
    );
    let err = jobs
        .delete(&format!("baby-analyzer-{id}"), &DeleteParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404 && s.reason == "NotFound"),
        "{err:?}"
    );
    // Default propagation for Jobs orphans the pods.
    let cleanup = format!("cleanup-job-{id}");
    jobs.delete(&cleanup, &DeleteParams::default())
        .await
        .unwrap();
    let left = pods
        .list(&ListParams::default().labels(&format!("app=focus-cleanup,focus.job-id={id}")))
        .await
        .unwrap();
    assert_eq!(left.items.len(), 1);
    assert!(left.items[0].owner_references().is_empty());
    pods.delete(&left.items[0].name_any(), &DeleteParams::default())
        .await
        .unwrap();
    assert!(pods
        .list(&ListParams::default().labels(&format!("focus.job-id={id}")))
        .await
        .unwrap()
        .items
        .is_empty());
    // deletecollection
    let (id2, _) = f.open(&live_body()).await;
    jobs.delete_collection(
        &DeleteParams::foreground(),
        &ListParams::default().labels(&format!("focus.job-id={id2}")),
    )
    .await
    .unwrap();
    assert!(pods
        .list(&ListParams::default().labels(&format!("focus.job-id={id2}")))
        .await
        .unwrap()
        .items
        .is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn nodes_follow_capacity() {
    let sim = start(0.01).await;
    let f = Focus::new(&sim);
    let c = client(&sim);
    let nodes: Api<Node> = Api::all(c.clone());
    let gpus = |n: &Node| {
        n.status.as_ref().unwrap().allocatable.as_ref().unwrap()["nvidia.com/mig-1g.10gb"]
            .0
            .parse::<usize>()
            .unwrap()
    };
    let list = nodes.list(&ListParams::default()).await.unwrap();
    let names: Vec<String> = list.items.iter().map(|n| n.name_any()).collect();
    assert_eq!(names, vec!["gpu-node-1", "gpu-node-2"]);
    assert_eq!(
        list.items.iter().map(gpus).collect::<Vec<_>>(),
        vec![100, 100]
    );
    for n in &list.items {
        let st = n.status.as_ref().unwrap();
        assert!(st
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"));
        assert!(
            st.capacity.as_ref().unwrap().contains_key("cpu")
                && st.capacity.as_ref().unwrap().contains_key("memory")
        );
    }
    f.faults(json!({"capacity": 51})).await;
    let list = nodes.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.iter().map(gpus).sum::<usize>(), 51);
    assert!(nodes.get("gpu-node-1").await.is_ok());
    let err = nodes.get("gpu-node-9").await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 404));
    sim.shutdown().await;
}

#[tokio::test]
async fn kubeconfig_loads_and_connects() {
    let sim = start(0.01).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&path).unwrap();
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    assert_eq!(kc.current_context.as_deref(), Some("focusqa-sim"));
    assert_eq!(
        kc.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
        Some(sim.kube_url().as_str())
    );
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    assert_eq!(cfg.default_namespace, "focus");
    let c = Client::try_from(cfg).unwrap();
    let pods: Api<Pod> = Api::default_namespaced(c);
    assert!(pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    sim.shutdown().await;
}
