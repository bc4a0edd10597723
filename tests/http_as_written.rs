//! End-to-end: requests go out as the step wrote them (issue 22), through the `focusqa` binary
//! against servers this test starts on 127.0.0.1: an explicit `Host` on both clients, URL
//! credentials as Basic auth (and secret), lists of content codings, what a redirect to another
//! origin drops, one timeout for a redirect chain, too many redirects as an expected error, and a
//! step's cookies beside the jar's.

use crate::common;

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as AxPath, Request};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use base64::Engine as _;
use common::{stderr, stdout, Project};
use serde_json::{json, Value};

/// The password of the URL-credentials test, as the step writes it (percent-encoded) and as it
/// is sent.
const URL_PASSWORD_WRITTEN: &str = "p%40ss-w0rd%21x";
const URL_PASSWORD: &str = "p@ss-w0rd!x";

fn headers_json(h: &HeaderMap) -> Value {
    let mut m = serde_json::Map::new();
    for k in h.keys() {
        let vals: Vec<Value> = h
            .get_all(k)
            .iter()
            .map(|v| json!(String::from_utf8_lossy(v.as_bytes())))
            .collect();
        m.insert(k.to_string(), Value::Array(vals));
    }
    Value::Object(m)
}

fn json_response(v: Value) -> Response {
    ([("content-type", "application/json")], v.to_string()).into_response()
}

/// Echoes the request's headers (name -> every value).
async fn echo(req: Request) -> Response {
    json_response(json!({"headers": headers_json(req.headers())}))
}

/// The Basic credentials received, decoded, under names that are not secret by name: only
/// redaction by value can hide the password in the reports.
async fn whoami(headers: HeaderMap) -> Response {
    let decoded = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let (user, word) = decoded.split_once(':').unwrap_or(("", ""));
    json_response(json!({"user": user, "word": word}))
}

fn redirect(to: &str) -> Response {
    Response::builder()
        .status(302)
        .header("location", to)
        .body(Body::empty())
        .unwrap()
}

/// A JSON body with each coding of `list` (`gzip,br`) applied in turn, the header saying so.
fn encoded(list: &str, repeat: usize) -> Response {
    let mut data = json!({"text": "hello ".repeat(repeat)})
        .to_string()
        .into_bytes();
    for coding in list.split(',') {
        data = match coding {
            "gzip" => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&data).unwrap();
                e.finish().unwrap()
            }
            "deflate" => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&data).unwrap();
                e.finish().unwrap()
            }
            "br" => {
                let mut out = Vec::new();
                {
                    let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                    w.write_all(&data).unwrap();
                }
                out
            }
            "zstd" => zstd::encode_all(&data[..], 3).unwrap(),
            _ => data, // identity
        };
    }
    (
        [
            ("content-type", "application/json".to_string()),
            ("content-encoding", list.replace(',', ", ")),
        ],
        data,
    )
        .into_response()
}

fn app() -> Router {
    Router::new()
        .route("/echo", any(echo))
        .route("/whoami", get(whoami))
        .route(
            "/enc/{list}",
            get(|AxPath(l): AxPath<String>| async move { encoded(&l, 200) }),
        )
        .route(
            "/enc-big/{list}",
            get(|AxPath(l): AxPath<String>| async move { encoded(&l, 100_000) }),
        )
        // A redirect to the same path on another port of 127.0.0.1: another origin.
        .route(
            "/to-port/{port}",
            get(|AxPath(p): AxPath<u16>| async move {
                redirect(&format!("http://127.0.0.1:{p}/echo"))
            }),
        )
        .route("/same-origin", get(|| async { redirect("/echo") }))
        .route(
            "/set-cookie",
            get(|| async {
                let mut r = json_response(json!({"ok": true}));
                r.headers_mut()
                    .append("set-cookie", "dup=from-jar; Path=/".parse().unwrap());
                r
            }),
        )
        // Each hop takes 150 ms: a chain of them outlasts a short timeout, not each hop.
        .route(
            "/slow-redirect/{n}",
            get(|AxPath(n): AxPath<u32>| async move {
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                redirect(&format!("/slow-redirect/{}", n + 1))
            }),
        )
        .route("/loop", get(|| async { redirect("/loop") }))
}

struct Server {
    url: String,
    port: u16,
    _rt: tokio::runtime::Runtime,
}

fn start_server() -> Server {
    let (rt, listener) = common::listener_runtime();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move { axum::serve(listener, app()).await.unwrap() });
    Server {
        url: format!("http://127.0.0.1:{port}"),
        port,
        _rt: rt,
    }
}

/// An HTTPS server (a throwaway CA's certificate) that answers each request with the request's
/// head as text: what reqwest really wrote.
fn start_tls_echo() -> (String, String, tokio::runtime::Runtime) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (ca_pem, cfg) = common::lab_certificate(&["127.0.0.1"]);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let (rt, listener) = common::listener_runtime();
    let url = format!("https://{}", listener.local_addr().unwrap());
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&got).into_owned();
                let resp = format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (url, ca_pem, rt)
}

/// A project whose target `local` is `base`, with more target lines if given.
fn project(base: &str, more_targets: &str) -> Project {
    let p = Project::new(base);
    let cfg = format!(
        "default_target: local\nscope: none.yaml\ntargets:\n  local:\n    base_url: {base}\n    timeout: 5s\n{more_targets}"
    );
    std::fs::write(p.path().join("focusqa.yaml"), cfg).unwrap();
    p
}

/// Runs `focusqa run ARGS` and returns the results.json, after checking the exit code.
fn run(p: &Project, args: &[&str], code: i32) -> Value {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    let out = p.run(&all);
    assert_eq!(
        out.status.code(),
        Some(code),
        "focusqa {all:?}\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    p.results()
}

/// The steps of a spec's first case, by name.
fn step<'a>(results: &'a Value, spec: &str, name: &str) -> &'a Value {
    results["specs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == spec)
        .unwrap_or_else(|| panic!("{spec} missing: {results}"))["cases"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["name"] == name)
        .unwrap_or_else(|| panic!("step `{name}` missing"))
}

#[track_caller]
fn assert_passed(st: &Value) {
    assert_eq!(
        st["status"],
        "passed",
        "{}",
        serde_json::to_string_pretty(st).unwrap()
    );
}

#[test]
fn an_explicit_host_header_is_sent_as_written_by_both_clients() {
    let srv = start_server();
    let (tls_url, ca_pem, _tls_rt) = start_tls_echo();
    let p = project(
        &srv.url,
        &format!(
            "  vhost:\n    base_url: {u}\n    headers: {{Host: target.example}}\n  tls:\n    base_url: {tls_url}\n    tls: {{ca_file: lab-ca.pem}}\n    timeout: 5s\n",
            u = srv.url
        ),
    );
    std::fs::write(p.path().join("lab-ca.pem"), ca_pem).unwrap();
    p.spec(
        "lean.yaml",
        "id: host.lean\ntitle: Host through the lean client\nsteps:\n  - name: step Host\n    http: {path: /echo, headers: {Host: virtual.example}}\n    expect: {json: [{path: $.headers.host, equals: [virtual.example]}]}\n",
    );
    p.spec(
        "target.yaml",
        "id: host.target\ntitle: Host of the target\nsteps:\n  - name: target Host\n    http: {path: /echo}\n    expect: {json: [{path: $.headers.host, equals: [target.example]}]}\n",
    );
    p.spec(
        "tls.yaml",
        "id: host.tls\ntitle: Host through reqwest\nsteps:\n  - name: step Host over https\n    http: {path: /echo, headers: {Host: virtual.example}}\n    expect: {body: {matches: '(?im)^host: virtual\\.example\\r?$'}}\n",
    );
    let r = run(&p, &["specs/lean.yaml"], 0);
    assert_passed(step(&r, "host.lean", "step Host"));
    let r = run(&p, &["--target", "vhost", "specs/target.yaml"], 0);
    assert_passed(step(&r, "host.target", "target Host"));
    let r = run(&p, &["--target", "tls", "specs/tls.yaml"], 0);
    let st = step(&r, "host.tls", "step Host over https");
    assert_passed(st);
    // Sent once, not beside a Host of the URL's.
    let head = st["response"]["body"]
        .as_str()
        .unwrap()
        .to_ascii_lowercase();
    assert_eq!(head.matches("\nhost:").count(), 1, "{head}");
}

#[test]
fn url_credentials_are_sent_as_basic_auth_and_the_password_is_redacted() {
    let srv = start_server();
    // The target's own Authorization is replaced by the URL's credentials.
    let p = project(
        &srv.url,
        "    headers: {Authorization: \"Bearer target-token-123\"}\n",
    );
    let base = srv.url.replace(
        "http://",
        &format!("http://qa%20user:{URL_PASSWORD_WRITTEN}@"),
    );
    p.spec(
        "creds.yaml",
        &format!(
            "id: creds\ntitle: URL credentials\nsteps:\n  - name: decoded and sent\n    http: {{path: \"{base}/whoami\"}}\n    expect:\n      json:\n        - {{path: $.user, equals: qa user}}\n        - {{path: $.word, length: {len}}}\n  - name: a failing step shows the response\n    http: {{path: \"{base}/whoami\"}}\n    expect: {{json: [{{path: $.word, equals: not-it}}]}}\n",
            len = URL_PASSWORD.len()
        ),
    );
    let out = p.run(&["run"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let r = p.results();
    assert_passed(step(&r, "creds", "decoded and sent"));
    let failed = step(&r, "creds", "a failing step shows the response");
    assert_eq!(failed["status"], "failed", "{failed}");
    // The server got the decoded password; the reports show it nowhere.
    let body = failed["response"]["body"].as_str().unwrap();
    assert!(body.contains("[redacted]"), "{body}");
    let token = base64::engine::general_purpose::STANDARD.encode(format!("qa user:{URL_PASSWORD}"));
    let console = stdout(&out);
    let files = [
        serde_json::to_string(&r).unwrap(),
        p.junit(),
        console.clone(),
    ];
    for text in files {
        for secret in [URL_PASSWORD, URL_PASSWORD_WRITTEN, token.as_str()] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
}

#[test]
fn every_content_coding_in_a_list_is_undone_in_reverse_order() {
    let srv = start_server();
    let p = project(
        &srv.url,
        &format!("  small:\n    base_url: {}\n    max_body: 4KiB\n", srv.url),
    );
    let mut steps = String::new();
    for list in [
        "br,identity",
        "gzip,gzip",
        "deflate,br",
        "gzip,zstd",
        "identity,gzip",
    ] {
        steps.push_str(&format!(
            "  - name: \"{list}\"\n    http: {{path: \"/enc/{list}\"}}\n    expect: {{json: [{{path: $.text, contains: hello hello}}]}}\n"
        ));
    }
    p.spec(
        "codings.yaml",
        &format!("id: codings\ntitle: codings\nsteps:\n{steps}"),
    );
    let r = run(&p, &["specs/codings.yaml"], 0);
    let note = |name: &str| {
        let st = step(&r, "codings", name);
        assert_passed(st);
        st["response"]["note"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(note("br,identity").contains("br-encoded"));
    let n = note("deflate,br");
    assert!(n.contains("deflate, then br"), "{n}");
    note("gzip,gzip");
    note("gzip,zstd");
    note("identity,gzip");

    // Decoded output stays bounded by max_body: 600 KB of text, 4 KiB kept, all counted.
    p.spec(
        "big.yaml",
        "id: codings.big\ntitle: big\nsteps:\n  - name: bounded\n    http: {path: \"/enc-big/gzip,gzip\"}\n    expect: {body: {contains: hello hello, bytes_length: 600011}}\n",
    );
    let r = run(&p, &["--target", "small", "specs/big.yaml"], 0);
    let st = step(&r, "codings.big", "bounded");
    assert_passed(st);
    assert_eq!(st["response"]["truncated"], true, "{st}");
    let n = st["response"]["note"].as_str().unwrap();
    assert!(n.contains("max_body (4096 bytes)"), "{n}");
}

#[test]
fn a_redirect_to_another_origin_drops_sensitive_headers_and_the_steps_cookies() {
    let a = start_server();
    let b = start_server();
    let p = project(&a.url, "");
    let sensitive = "{X-Api-Key: key-1234567, X-Auth-Token: tok-1234567, Authorization: Bearer abc-1234567, X-Session-Id: sess-1234567, Proxy-Authorization: Basic cHJveHk6cHc=, Cookie: written=in-header, Host: virtual.example, X-Keep: kept}";
    p.spec(
        "cross.yaml",
        &format!(
            "id: cross\ntitle: cross-origin redirects\nsteps:\n  - name: the jar gets a cookie\n    http: {{path: /set-cookie}}\n  - name: another port\n    http:\n      path: /to-port/{port}\n      headers: {sensitive}\n      cookies: {{mine: from-step}}\n    expect:\n      url: {{contains: \":{port}/echo\"}}\n      json:\n        - {{path: \"$.headers['x-api-key']\", exists: false}}\n        - {{path: \"$.headers['x-auth-token']\", exists: false}}\n        - {{path: \"$.headers['x-session-id']\", exists: false}}\n        - {{path: $.headers.authorization, exists: false}}\n        - {{path: \"$.headers['proxy-authorization']\", exists: false}}\n        - {{path: \"$.headers['x-keep']\", equals: [kept]}}\n        - {{path: $.headers.host, equals: [\"127.0.0.1:{port}\"]}}\n        # RFC 6265: a cookie of 127.0.0.1 goes to each of its ports; the step's own do not.\n        - {{path: $.headers.cookie, equals: [dup=from-jar]}}\n  - name: the same origin keeps them\n    http:\n      path: /same-origin\n      headers: {sensitive}\n      cookies: {{mine: from-step}}\n    expect:\n      json:\n        - {{path: \"$.headers['x-api-key']\", equals: [key-1234567]}}\n        - {{path: \"$.headers['x-auth-token']\", equals: [tok-1234567]}}\n        - {{path: $.headers.authorization, length: 1}}\n        - {{path: $.headers.host, equals: [virtual.example]}}\n        - {{path: \"$.headers.cookie[0]\", contains: mine=from-step}}\n",
            port = b.port
        ),
    );
    let r = run(&p, &[], 0);
    assert_passed(step(&r, "cross", "another port"));
    assert_passed(step(&r, "cross", "the same origin keeps them"));
}

/// Writes one spec of one step per `(name, step)`: a step that fails or errors ends its case,
/// so each goes in a spec of its own. The spec's id is the step's name.
fn one_step_specs(p: &Project, steps: &[(&str, &str)]) {
    for (name, body) in steps {
        p.spec(
            &format!("{name}.yaml"),
            &format!("id: {name}\ntitle: {name}\nsteps:\n  - name: {name}\n{body}"),
        );
    }
}

#[test]
fn the_steps_timeout_bounds_the_whole_redirect_chain() {
    let srv = start_server();
    let p = project(&srv.url, "");
    let chain = "    http: {path: /slow-redirect/0, timeout: 1s, max_redirects: 40}\n";
    one_step_specs(
        &p,
        &[
            ("error", chain),
            (
                "expected",
                &format!("{chain}    expect: {{error: timeout}}\n"),
            ),
        ],
    );
    let t0 = std::time::Instant::now();
    let r = run(&p, &[], 1);
    // 40 hops of 150 ms each would be 6 s a step: one deadline ends each chain at 1 s.
    let took = t0.elapsed();
    assert!(took.as_secs_f64() < 5.0, "took {took:?}");
    let st = step(&r, "error", "error");
    assert_eq!(st["status"], "error", "{st}");
    let msg = st["message"].as_str().unwrap();
    assert!(msg.starts_with("timeout"), "{msg}");
    assert!(msg.contains("timeout of 1.0s"), "{msg}");
    assert!(msg.contains("redirects followed"), "{msg}");
    assert_passed(step(&r, "expected", "expected"));
}

#[test]
fn too_many_redirects_is_an_error_a_step_can_expect() {
    let srv = start_server();
    let p = project(&srv.url, "");
    let looped = "    http: {path: /loop, max_redirects: 3}\n";
    one_step_specs(
        &p,
        &[
            ("any", &format!("{looped}    expect: {{error: any}}\n")),
            (
                "by-kind",
                &format!("{looped}    expect: {{error: too_many_redirects}}\n"),
            ),
            (
                "other-kind",
                &format!("{looped}    expect: {{error: timeout}}\n"),
            ),
            ("not-expected", looped),
        ],
    );
    let r = run(&p, &[], 1);
    assert_passed(step(&r, "any", "any"));
    assert_passed(step(&r, "by-kind", "by-kind"));
    let other = step(&r, "other-kind", "other-kind");
    assert_eq!(other["status"], "failed", "{other}");
    let a = &other["assertions"][0];
    assert_eq!(a["actual"], "too_many_redirects", "{a}");
    let not = step(&r, "not-expected", "not-expected");
    assert_eq!(not["status"], "error", "{not}");
    let msg = not["message"].as_str().unwrap();
    assert!(msg.contains("too many redirects: more than 3"), "{msg}");
}

#[test]
fn a_steps_cookie_goes_beside_the_jars_cookie_of_the_same_name() {
    let srv = start_server();
    let p = project(&srv.url, "");
    p.spec(
        "dup.yaml",
        "id: dup\ntitle: a step cookie and a jar cookie of one name\nsteps:\n  - name: the jar gets dup\n    http: {path: /set-cookie}\n  - name: both are sent\n    http: {path: /echo, cookies: {dup: from-step}}\n    expect:\n      json:\n        - {path: $.headers.cookie, equals: [\"dup=from-jar; dup=from-step\"]}\n",
    );
    let r = run(&p, &[], 0);
    assert_passed(step(&r, "dup", "both are sent"));
}
