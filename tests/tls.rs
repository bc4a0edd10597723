//! Lab servers with self-signed certificates: verification is on by default (a clear TLS error),
//! `tls.insecure: true` accepts any certificate, `tls.ca_file` trusts the lab CA.

use crate::common;

use std::sync::Arc;

use common::{stdout, Project};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct TlsServer {
    url: String,
    ca_pem: String,
    _rt: tokio::runtime::Runtime,
}

/// An HTTPS server with a certificate from a throwaway CA; answers every request with JSON.
fn start_tls_server() -> TlsServer {
    let (ca_pem, cfg) = common::lab_certificate(&["127.0.0.1", "localhost"]);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let (rt, listener) = common::listener_runtime();
    let url = format!("https://{}", listener.local_addr().unwrap());
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"status":"ok"}"#;
                let resp = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    TlsServer {
        url,
        ca_pem,
        _rt: rt,
    }
}

#[test]
fn verification_insecure_and_ca_file() {
    let srv = start_tls_server();
    let p = Project::new("http://127.0.0.1:9");
    std::fs::write(p.path().join("lab-ca.pem"), &srv.ca_pem).unwrap();
    let cfg = format!(
        "scope: none.yaml\ntargets:\n  strict:\n    base_url: {u}\n    timeout: 5s\n  insecure:\n    base_url: {u}\n    tls: {{insecure: true}}\n  lab-ca:\n    base_url: {u}\n    tls: {{ca_file: lab-ca.pem}}\n",
        u = srv.url
    );
    std::fs::write(p.path().join("focusqa.yaml"), cfg).unwrap();
    p.spec("health.yaml", "id: tls.health\ntitle: health over TLS\nsteps:\n  - http: {path: /health}\n    expect:\n      status: 200\n      json: [{path: $.status, equals: ok}]\n");

    let out = p.run(&["run", "--target", "strict"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let junit = p.junit();
    assert!(
        junit.contains("<error") && junit.contains("tls.insecure"),
        "a TLS error with the fix: {junit}"
    );

    let out = p.run(&["run", "--target", "insecure"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let out = p.run(&["run", "--target", "lab-ca"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // a ca_file that is not a certificate is a target error (exit 3), not a crash
    std::fs::write(p.path().join("lab-ca.pem"), "not a pem").unwrap();
    let out = p.run(&["run", "--target", "lab-ca"]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
}
