//! `kubectl` against the simulator's Kubernetes API (skipped when kubectl is not installed).

use crate::sim_common;

use sim_common::*;
use std::process::Command;

fn kubectl_works() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn kubectl(kc: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kc.display()))
        .args(args)
        .env("KUBECACHEDIR", kc.with_file_name("cache"))
        .output()
        .expect("kubectl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Manual playground: `cargo test --test sim_kubectl -- --ignored serve --nocapture`.
#[tokio::test]
#[ignore]
async fn serve_for_manual_kubectl() {
    let sim = start(0.05).await;
    let f = Focus::new(&sim);
    f.open(&live_body()).await;
    let (id, _) = f.open(&live_body()).await;
    f.cancel(&id).await;
    sim.write_kubeconfig(std::path::Path::new("/tmp/focusqa-sim.kubeconfig"))
        .unwrap();
    println!("focus {} kube {}", sim.focus_url(), sim.kube_url());
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_describe_logs_delete() {
    if !kubectl_works() {
        eprintln!("kubectl not installed: skipped");
        return;
    }
    let sim = start(0.02).await;
    let f = Focus::new(&sim);
    let (id, port) = f.open(&live_body()).await;
    tokio::time::sleep(std::time::Duration::from_millis(150)).await; // pods Running (<= 5 s * 0.02)
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kc).unwrap();
    let id2 = id.clone();
    tokio::task::spawn_blocking(move || {
        let id = id2;
        let (ok, out, err) = kubectl(&kc, &["get", "pods", "-l", &format!("focus.job-id={id}")]);
        assert!(ok, "{err}");
        assert!(
            out.contains(&format!("baby-analyzer-{id}-"))
                && out.contains("Running")
                && out.contains("1/1"),
            "{out}"
        );
        let (ok, out, err) = kubectl(&kc, &["get", "jobs", "-o", "json"]);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["items"].as_array().unwrap().len(), 2);
        let (ok, out, err) = kubectl(
            &kc,
            &[
                "get",
                "pods",
                "-l",
                "app=baby-analyzer",
                "-o",
                "jsonpath={.items[0].spec.containers[0].ports[0].containerPort}",
            ],
        );
        assert!(ok, "{err}");
        assert_eq!(out, port.to_string());
        let (ok, out, err) = kubectl(&kc, &["describe", "pod", "-l", "app=baby-analyzer"]);
        assert!(ok, "{err}");
        for want in [
            "nvidia.com/mig-1g.10gb:  1",
            "memory:                  4Gi",
            "focus-recordings",
            "Scheduled",
            "Started",
            "Controlled By:  Job/baby-analyzer-",
        ] {
            assert!(out.contains(want), "describe lacks '{want}':\n{out}");
        }
        let (ok, out, err) = kubectl(&kc, &["get", "nodes"]);
        assert!(
            ok && out.contains("gpu-node-1") && out.contains("Ready"),
            "{out}{err}"
        );
        let (ok, out, err) = kubectl(
            &kc,
            &[
                "get",
                "events",
                "--field-selector",
                &format!("involvedObject.name=baby-analyzer-{id}"),
            ],
        );
        assert!(ok && out.contains("SuccessfulCreate"), "{out}{err}");
        let (ok, out, err) = kubectl(&kc, &["logs", "-l", "app=baby-analyzer"]);
        assert!(ok && out.contains(&format!(":{port}")), "{out}{err}");
        let (ok, out, err) = kubectl(&kc, &["delete", "job", &format!("baby-analyzer-{id}")]);
        assert!(ok && out.contains("deleted"), "{out}{err}");
        let (ok, out, err) = kubectl(&kc, &["get", "pods", "-l", "app=baby-analyzer"]);
        assert!(
            ok && !out.contains("baby-analyzer"),
            "kubectl delete cascades in the background: {out}{err}"
        );
        let (ok, _, err) = kubectl(&kc, &["get", "job", "nope"]);
        assert!(!ok && err.contains("NotFound"), "{err}");
    })
    .await
    .unwrap();
    sim.shutdown().await;
}
