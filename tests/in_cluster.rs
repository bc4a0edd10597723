//! `in_cluster: true`, as focusqa runs inside the Indexed Job of `deploy/`: the API server comes
//! from `KUBERNETES_SERVICE_HOST`/`_PORT`, the CA and the bearer token from the mounted service
//! account. Here the "pod" files are written to a temp dir and the API server is the simulator's
//! Kubernetes API requiring that token, behind TLS with a certificate from a throwaway CA.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use common::{stderr, stdout, SeparateSim};

const TOKEN: &str = "sa-token-7f3c9e1d2b4a";

/// A TLS front for the simulator's plain-HTTP Kubernetes API (what the API server's own TLS
/// listener is to a pod). Returns the port and the CA that signed its certificate.
struct TlsFront {
    port: u16,
    ca_pem: String,
    _rt: tokio::runtime::Runtime,
}

/// The names a real API server certificate carries for in-cluster clients.
fn ca_and_leaf() -> (String, rustls::ServerConfig) {
    let (ca_pem, mut cfg) = common::lab_certificate(&["127.0.0.1", "kubernetes.default.svc"]);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    (ca_pem, cfg)
}

fn tls_front(upstream: &str) -> TlsFront {
    let upstream = upstream.trim_start_matches("http://").to_string();
    let (ca_pem, cfg) = ca_and_leaf();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let (rt, listener) = common::listener_runtime();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    TlsFront {
        port,
        ca_pem,
        _rt: rt,
    }
}

/// The files Kubernetes mounts at /var/run/secrets/kubernetes.io/serviceaccount.
fn service_account(dir: &Path, token: &str, ca_pem: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("token"), token).unwrap();
    std::fs::write(dir.join("ca.crt"), ca_pem).unwrap();
    std::fs::write(dir.join("namespace"), "focus").unwrap();
}

const SPEC: &str = r#"id: incluster.smoke
title: a pod's own access reaches the API server
steps:
  - name: configure
    http: {method: POST, path: /configure, json: {displayTimeAxisDuration: 10, nfftSelection: 1024, displayInfo: {height: 1000}, channels: {min: 0, max: 50}, frequencyRange: {min: 0, max: 500}, start_time: null, end_time: null, view_type: 0}}
    expect: {status: 200}
    capture: {job_id: $.job_id}
  - name: analyzer job
    kube: {op: wait, kind: Job, name: "baby-analyzer-{{ job_id }}", timeout: 60s}
  - name: analyzer pod
    kube: {op: list, kind: Pod, labels: "job-name=baby-analyzer-{{ job_id }}"}
    expect: {json: [{path: $.count, equals: 1}]}
cleanup:
  - when: job_id is defined
    http: {method: DELETE, path: "/job/{{ job_id }}"}
    expect: {status: 200}
"#;

/// A project whose target reaches the simulator's Focus API directly and its Kubernetes API the
/// way a pod does; `sa_dir` is the service-account mount.
fn project(sim: &SeparateSim, sa_dir: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("specs")).unwrap();
    std::fs::write(dir.path().join("specs/smoke.yaml"), SPEC).unwrap();
    std::fs::write(
        dir.path().join("focusqa.yaml"),
        format!(
            "default_target: pod\nspecs: [specs]\nscope: none\ntargets:\n  pod:\n    base_url: {}\n    simulator: true\n    kubernetes:\n      in_cluster: true\n      service_account_dir: {}\n      namespace: focus\n",
            sim.focus_url,
            sa_dir.display()
        ),
    )
    .unwrap();
    dir
}

fn run_in_pod(project: &Path, api_port: u16) -> Output {
    Command::new(env!("CARGO_BIN_EXE_focusqa"))
        .current_dir(project)
        .args(["run", "--report-dir", "reports"])
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", api_port.to_string())
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

fn kube_requests(sim: &SeparateSim) -> u64 {
    sim.request("GET", "/sim/state", None).1["kube_api"]["requests"]
        .as_u64()
        .unwrap()
}

#[test]
fn in_cluster_uses_the_service_account_token_and_ca_over_tls() {
    let sim = SeparateSim::start_with("0.01", &["--kube-token", TOKEN]);
    let front = tls_front(&sim.kube_url);

    // The pod's files: the right token, the API server's CA.
    let sa = tempfile::tempdir().unwrap();
    service_account(sa.path(), TOKEN, &front.ca_pem);
    let p = project(&sim, sa.path());
    let before = kube_requests(&sim);
    let out = run_in_pod(p.path(), front.port);
    common::assert_exit(&out, 0);
    assert!(
        kube_requests(&sim) > before,
        "the Kubernetes steps reached the simulator through TLS"
    );
    let results = std::fs::read_to_string(p.path().join("reports/results.json")).unwrap();
    assert!(!results.contains(TOKEN), "the token never reaches a report");

    // The same pod with another service account's token: the API server refuses it.
    let wrong = tempfile::tempdir().unwrap();
    service_account(wrong.path(), "someone-elses-token", &front.ca_pem);
    let p = project(&sim, wrong.path());
    let out = run_in_pod(p.path(), front.port);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("401"),
        "says the API server answered 401: {text}"
    );

    // A CA that did not sign the API server's certificate: TLS verification fails.
    let other_ca = ca_and_leaf().0;
    let untrusted = tempfile::tempdir().unwrap();
    service_account(untrusted.path(), TOKEN, &other_ca);
    let p = project(&sim, untrusted.path());
    let out = run_in_pod(p.path(), front.port);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.to_lowercase().contains("certificate"),
        "names the certificate problem: {text}"
    );
}

#[test]
fn in_cluster_outside_a_pod_says_what_is_missing() {
    let sim = SeparateSim::start("0.01");
    let empty = tempfile::tempdir().unwrap();
    let p = project(&sim, empty.path());

    // No service account mounted.
    let out = run_in_pod(p.path(), 6443);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("token not found"), "{text}");
    assert!(
        text.contains("automountServiceAccountToken"),
        "says how to fix it: {text}"
    );

    // Not in a pod at all: no KUBERNETES_SERVICE_HOST.
    let out = Command::new(env!("CARGO_BIN_EXE_focusqa"))
        .current_dir(p.path())
        .args(["run", "--report-dir", "reports"])
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("KUBERNETES_SERVICE_HOST is not set"),
        "{text}"
    );
}
