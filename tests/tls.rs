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

/// An HTTP/2 server (TLS, ALPN h2) that resets the first `refuse` streams with REFUSED_STREAM,
/// as a server does with a request it did not process (nginx past `keepalive_requests`), then
/// answers 200; the number of requests that reached it is in the counter.
fn start_h2_server(refuse: usize) -> (TlsServer, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (ca_pem, mut cfg) = common::lab_certificate(&["127.0.0.1"]);
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let (rt, listener) = common::listener_runtime();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, seen) = (acceptor.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut conn) = h2::server::handshake(tls).await else {
                    return;
                };
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    if seen.fetch_add(1, Ordering::SeqCst) < refuse {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    let resp = http::Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(())
                        .unwrap();
                    if let Ok(mut body) = respond.send_response(resp, false) {
                        let _ =
                            body.send_data(bytes::Bytes::from_static(br#"{"job_id":"1"}"#), true);
                    }
                }
            });
        }
    });
    (
        TlsServer {
            url,
            ca_pem,
            _rt: rt,
        },
        seen,
    )
}

/// A POST the server refused unprocessed (HTTP/2 REFUSED_STREAM) is sent again, up to 3 times,
/// and the step says so; refused 4 times, the step fails with the server's reason.
#[test]
fn an_http2_stream_refused_unprocessed_is_sent_again_even_a_post() {
    for (refuse, passes) in [(1, true), (3, true), (4, false)] {
        let (srv, seen) = start_h2_server(refuse);
        let p = Project::new(&srv.url);
        std::fs::write(p.path().join("lab-ca.pem"), &srv.ca_pem).unwrap();
        let cfg = format!(
            "scope: none.yaml\ndefault_target: lab\ntargets:\n  lab:\n    base_url: {}\n    timeout: 5s\n    tls: {{ca_file: lab-ca.pem}}\n",
            srv.url
        );
        std::fs::write(p.path().join("focusqa.yaml"), cfg).unwrap();
        p.spec(
            "post.yaml",
            "id: h2.refused\ntitle: a refused POST\nsteps:\n  - name: configure\n    http: {method: POST, path: /configure, json: {a: 1}}\n    expect: {status: 200}\n",
        );
        let out = p.run(&["run", "--quiet"]);
        let r = p.results();
        let step = &r["specs"][0]["cases"][0]["steps"][0];
        assert_eq!(
            seen.load(std::sync::atomic::Ordering::SeqCst),
            (refuse + 1).min(4),
            "every refusal sent again, 3 at most: {step}"
        );
        if passes {
            assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
            assert_eq!(step["response"]["version"], "HTTP/2", "{step}");
            let note = step["response"]["note"].as_str().unwrap_or_default();
            assert!(
                note.contains("the server refused") && note.contains("unprocessed"),
                "the retry shows: {step}"
            );
        } else {
            assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
            assert_eq!(step["status"], "error", "{step}");
            assert!(
                step["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("refused"),
                "{step}"
            );
        }
    }
}
