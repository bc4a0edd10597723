//! End-to-end: real-world HTTP (redirects, cookies, repeated headers, compression, bodies,
//! charsets, methods, auth, filters, expected errors, query, version, bounded bodies) against a
//! local server this test starts, through the `focusqa` binary, read back from results.json.
//! The specs are in tests/fixtures/http/: `specs/*.yaml` pass, `specs/fail.yaml` fails in every
//! step, `h2/` runs on a target with `http2: prior_knowledge` and `basic_auth`.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::body::{Body, Bytes};
use axum::extract::{Path as AxPath, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use base64::Engine as _;
use common::{stderr, stdout, Project};
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/http")
}

/// Echoes the request: method, query, headers (name -> every value), body as text and base64.
async fn echo(req: Request) -> Json {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    Json(json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query().unwrap_or(""),
        "headers": headers_json(&parts.headers),
        "body": String::from_utf8_lossy(&body),
        "body_b64": base64::engine::general_purpose::STANDARD.encode(&body),
    }))
}

struct Json(Value);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        ([("content-type", "application/json")], self.0.to_string()).into_response()
    }
}

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

fn redirect(status: u16, to: &str) -> Response {
    Response::builder()
        .status(status)
        .header("location", to)
        .body(Body::empty())
        .unwrap()
}

async fn redirect_n(AxPath(n): AxPath<u32>, req: Request) -> Response {
    if n == 0 {
        echo(req).await.into_response()
    } else {
        redirect(302, &format!("/redirect/{}", n - 1))
    }
}

/// Redirects to the same port on `localhost` (another host than 127.0.0.1).
async fn to_other_host(headers: HeaderMap) -> Response {
    let host = headers["host"].to_str().unwrap().to_string();
    let port = host.rsplit(':').next().unwrap();
    redirect(302, &format!("http://localhost:{port}/echo"))
}

async fn login() -> Response {
    let mut r = Json(json!({"ok": true})).into_response();
    let h = r.headers_mut();
    h.append(
        "set-cookie",
        HeaderValue::from_static("session=abc123xyz; Path=/; HttpOnly; SameSite=Lax"),
    );
    h.append(
        "set-cookie",
        HeaderValue::from_static("theme=dark; Max-Age=3600"),
    );
    r
}

async fn login_redirect() -> Response {
    let mut r = redirect(302, "/echo");
    r.headers_mut().append(
        "set-cookie",
        HeaderValue::from_static("via=redirected; Path=/"),
    );
    r
}

async fn multi(req: Request) -> Response {
    let mut r = echo(req).await.into_response();
    let h = r.headers_mut();
    for (k, v) in [
        ("x-multi", "a"),
        ("x-multi", "b"),
        ("link", "</a>; rel=\"next\""),
        ("link", "</b>; rel=\"prev\""),
        ("vary", "Accept"),
        ("vary", "Origin"),
    ] {
        h.append(k, HeaderValue::from_static(v));
    }
    r
}

fn encoded(encoding: &str) -> Response {
    let body = json!({"encoding": encoding, "text": "hello ".repeat(200)}).to_string();
    let data: Vec<u8> = match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(body.as_bytes()).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(body.as_bytes()).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(body.as_bytes()).unwrap();
            }
            out
        }
        "zstd" => zstd::encode_all(body.as_bytes(), 3).unwrap(),
        _ => body.into_bytes(),
    };
    (
        [
            ("content-type", "application/json".to_string()),
            ("content-encoding", encoding.to_string()),
        ],
        data,
    )
        .into_response()
}

fn charset(name: &str) -> Response {
    let text = match name {
        "gb2312" => "中文测试",
        "windows-1256" => "مرحبا بالعالم",
        _ => "café crème",
    };
    let enc = encoding_rs::Encoding::for_label(name.as_bytes()).unwrap();
    let (bytes, _, _) = enc.encode(text);
    (
        [("content-type", format!("text/plain; charset={name}"))],
        bytes.into_owned(),
    )
        .into_response()
}

/// 200 MiB in 64 KiB chunks.
fn huge() -> Response {
    let chunk = Bytes::from(vec![b'y'; 64 * 1024]);
    let stream =
        futures::stream::iter((0..3200).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    Body::from_stream(stream).into_response()
}

/// Chunks of "tick\n" forever.
fn endless() -> Response {
    let stream = futures::stream::unfold((), |_| async {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        Some((
            Ok::<_, std::io::Error>(Bytes::from("tick\n".repeat(1000))),
            (),
        ))
    });
    Body::from_stream(stream).into_response()
}

fn app() -> Router {
    Router::new()
        .route("/echo", any(echo))
        .route("/redirect/{n}", any(redirect_n))
        .route("/see-other", any(|| async { redirect(303, "/echo") }))
        .route("/temporary", any(|| async { redirect(307, "/echo") }))
        .route("/to-other-host", get(to_other_host))
        .route("/login", get(login))
        .route("/login-redirect", get(login_redirect))
        .route("/multi", get(multi))
        .route(
            "/enc/{e}",
            get(|AxPath(e): AxPath<String>| async move { encoded(&e) }),
        )
        .route(
            "/charset/{c}",
            get(|AxPath(c): AxPath<String>| async move { charset(&c) }),
        )
        .route(
            "/bytes",
            get(|| async { vec![0u8, 1, 2, 0x80, 0xff].into_response() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route("/endless", get(|| async { endless() }))
        .route(
            "/big",
            get(|| async { vec![b'x'; 1 << 20].into_response() }),
        )
        .route("/huge", get(|| async { huge() }))
        .route(
            "/date",
            get(|| async {
                (
                    [
                        ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
                        ("x-id", "id-77"),
                    ],
                    "dated",
                )
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such route") })
}

struct Server {
    url: String,
    _rt: tokio::runtime::Runtime,
}

fn start_server() -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app()).await.unwrap() });
    Server { url, _rt: rt }
}

/// One run of every fixture spec (shared by the tests below).
struct Run {
    _server: Server,
    _project: Project,
    results: Value,
    h2: Value,
    /// Peak RSS (KiB) of the h2 run, the one with a 200 MiB body.
    h2_peak_kib: u64,
}

fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let server = start_server();
        let p = Project::new(&server.url);
        let cfg = format!(
            "default_target: local\nscope: none.yaml\ntargets:\n  local:\n    base_url: {u}\n    timeout: 5s\n    max_body: 64KiB\n    headers: {{X-Default: from-target}}\n  h2:\n    base_url: {u}\n    http2: prior_knowledge\n    basic_auth: {{user: target-user, password: target-password}}\n",
            u = server.url
        );
        std::fs::write(p.path().join("focusqa.yaml"), cfg).unwrap();
        copy_dir(&fixtures().join("specs"), &p.path().join("specs"));
        copy_dir(&fixtures().join("h2"), &p.path().join("h2"));
        let out = p.run(&["run", "specs"]);
        assert!(
            out.status.code() == Some(1),
            "the fail spec fails, the run exits 1:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        let results = p.results();
        let (out, h2_peak_kib) = p.run_with_peak_rss(&["run", "--target", "h2", "h2"]);
        let h2 = p.results();
        assert!(
            out.status.code() == Some(1),
            "the h2 spec's HTTP/1.1 check fails:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        Run {
            _server: server,
            _project: p,
            results,
            h2,
            h2_peak_kib,
        }
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn spec<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["specs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} missing from results.json"))
}

/// A passing spec: every step of every case passed (and says what failed otherwise).
fn passed(id: &str) -> &'static Value {
    let s = spec(&run().results, id);
    for c in s["cases"].as_array().unwrap() {
        for st in c["steps"].as_array().unwrap() {
            assert_eq!(
                st["status"],
                "passed",
                "{id} / {}: {}\n{}",
                st["name"],
                st["message"],
                serde_json::to_string_pretty(st).unwrap()
            );
        }
    }
    assert_eq!(s["status"], "passed", "{id}");
    s
}

fn step<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["cases"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .chain(s["cases"][0]["cleanup"].as_array().unwrap())
        .find(|st| st["name"] == name)
        .unwrap_or_else(|| panic!("step `{name}` missing"))
}

/// A step of the fail spec: its status, and its failed assertions as `subject op`.
fn failing(name: &str) -> (String, Vec<String>, String) {
    let st = step(spec(&run().results, "http.fail"), name);
    let fails = st["assertions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|a| a["passed"] == false)
        .map(|a| {
            format!(
                "{} {}",
                a["subject"].as_str().unwrap_or_default(),
                a["op"].as_str().unwrap_or_default()
            )
        })
        .collect();
    (
        st["status"]
            .as_str()
            .unwrap_or_else(|| panic!("{st}"))
            .to_string(),
        fails,
        st["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn redirects_followed_or_not_and_authorization_stays_on_its_host() {
    let s = passed("http.redirects");
    let followed = step(s, "followed");
    assert_eq!(followed["captures"]["chain"].as_array().unwrap().len(), 2);
    assert!(followed["response"]["url"]
        .as_str()
        .unwrap()
        .ends_with("/redirect/0"));
    // The excerpt shows the first request as sent, the final URL is in the response.
    assert!(followed["request"]["url"]
        .as_str()
        .unwrap()
        .ends_with("/redirect/2"));

    let (st, fails, _) = failing("status of a redirect not followed");
    assert_eq!(
        (st.as_str(), fails),
        ("failed", vec!["status is".to_string()])
    );
    let (_, fails, _) = failing("final url");
    assert_eq!(fails, ["final URL contains"]);
    let (_, fails, _) = failing("redirect chain");
    assert_eq!(fails, ["redirects length of $ =="]);
    let (st, _, msg) = failing("too many redirects");
    assert_eq!(st, "error");
    assert!(msg.contains("too many redirects: more than 1"), "{msg}");
}

#[test]
fn cookie_jar_per_case_request_cookies_and_attribute_checks() {
    let s = passed("http.cookies");
    let login = step(s, "login");
    // Every cookie check is its own result.
    let subjects: Vec<&str> = login["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["subject"].as_str().unwrap())
        .collect();
    for want in [
        "cookie `session`",
        "cookie `session` http_only",
        "cookie `theme` max_age",
    ] {
        assert!(subjects.contains(&want), "{want} in {subjects:?}");
    }
    // What was sent shows the jar's cookie header.
    let sent = step(s, "the jar sends them, with the request's own");
    let cookie = sent["request"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "cookie")
        .expect("a cookie header in the request excerpt");
    // Cookie headers are secrets (crate::results::secrets): sent, but shown redacted.
    assert_eq!(cookie[1], "[redacted]");
    passed("http.cookies-per-case");
    assert_eq!(
        spec(&run().results, "http.cookies-per-case")["cases"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    passed("http.cookies-off");

    let (_, fails, _) = failing("cookie attributes");
    assert_eq!(
        fails,
        [
            "cookie `session` value equals",
            "cookie `session` secure equals",
            "cookie `nope` exists"
        ]
    );
}

#[test]
fn repeated_headers_are_all_visible() {
    let s = passed("http.headers");
    let st = &s["cases"][0]["steps"][0];
    let first = st["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["subject"] == "header `x-multi`")
        .unwrap();
    assert!(
        first["message"].as_str().unwrap().contains("came 2 times"),
        "{first}"
    );
    assert_eq!(st["captures"]["links"].as_array().unwrap().len(), 2);
    // The request excerpt has both values of X-A and the default headers as sent.
    let sent: Vec<(String, String)> =
        serde_json::from_value(st["request"]["headers"].clone()).unwrap();
    let xa: Vec<&str> = sent
        .iter()
        .filter(|(k, _)| k == "x-a")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(xa, ["1", "2"]);
    for h in ["user-agent", "accept-encoding", "x-default"] {
        assert!(sent.iter().any(|(k, _)| k == h), "{h} in {sent:?}");
    }

    let (_, fails, _) = failing("repeated header, first value");
    assert_eq!(fails, ["header `x-multi` equals"]);
    let (_, fails, _) = failing("repeated header, all values");
    assert_eq!(fails, ["header `link` values count"]);
}

#[test]
fn compressed_bodies_are_decoded_and_their_wire_size_kept() {
    let s = passed("http.compression");
    for enc in ["gzip", "deflate", "br", "zstd"] {
        let r = &step(s, enc)["response"];
        let raw = r["raw_bytes"].as_u64().unwrap();
        assert!(raw > 0 && raw < 600, "{enc}: {raw} bytes on the wire");
        assert!(r["body"].as_str().unwrap().contains("hello hello"), "{enc}");
        assert!(r["note"]
            .as_str()
            .unwrap()
            .contains(&format!("{enc}-encoded")));
    }
    let (_, fails, _) = failing("compressed body");
    assert_eq!(fails, ["$.encoding equals"]);
}

#[test]
fn request_bodies_form_multipart_base64_file() {
    let s = passed("http.bodies");
    let st = step(s, "an explicit Content-Type replaces json's");
    let sent: Vec<(String, String)> =
        serde_json::from_value(st["request"]["headers"].clone()).unwrap();
    assert_eq!(
        sent.iter().filter(|(k, _)| k == "content-type").count(),
        1,
        "{sent:?}"
    );
}

#[test]
fn charsets_and_byte_checks() {
    passed("http.charsets");
    let (_, fails, _) = failing("charset");
    assert_eq!(fails, ["body equals"]);
    let (_, fails, _) = failing("digest");
    assert_eq!(
        fails,
        ["body bytes sha256", "body bytes md5", "body bytes length"]
    );
}

#[test]
fn any_method_token() {
    passed("http.methods");
    let (_, fails, _) = failing("method");
    assert_eq!(fails, ["$.method equals"]);
    // An invalid token is a spec error with its position.
    let p = Project::new("http://127.0.0.1:9");
    p.spec(
        "bad.yaml",
        "id: bad\ntitle: bad\nsteps:\n  - http: {method: \"GE T\", path: /}\n",
    );
    let out = p.run(&["validate"]);
    assert_ne!(out.status.code(), Some(0));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("method") && text.contains("bad.yaml:4:20"),
        "{text}"
    );
}

#[test]
fn basic_auth_query_filters_and_the_password_is_redacted() {
    passed("http.auth-filters");
    let text = serde_json::to_string(&run().results).unwrap();
    for secret in [
        "wonder-land-42",
        "hunter2-secret",
        "YWxpY2U6d29uZGVyLWxhbmQtNDI",
    ] {
        assert!(!text.contains(secret), "{secret} leaked into results.json");
    }
}

#[test]
fn expected_errors_version_and_bounded_bodies() {
    let s = passed("http.errors");
    assert_eq!(step(s, "version")["captures"]["v"], "HTTP/1.1");
    let endless = step(s, "an endless stream ends the step at its timeout, bounded");
    let r = &endless["response"];
    assert_eq!(r["truncated"], true);
    let note = r["note"].as_str().unwrap();
    assert!(note.contains("max_body (65536 bytes)"), "{note}");
    assert!(note.contains("reading stopped"), "{note}");
    let big = &step(s, "a body over max_body is counted, its start kept")["response"];
    assert_eq!(big["truncated"], true);
    assert!(big["note"]
        .as_str()
        .unwrap()
        .contains("983040 more were counted and discarded"));

    let (st, fails, _) = failing("a response instead of the expected error");
    assert_eq!(
        (st.as_str(), fails),
        ("failed", vec!["request fails with".to_string()])
    );
    let (st, fails, _) = failing("another failure than the expected one");
    assert_eq!(
        (st.as_str(), fails),
        ("failed", vec!["request fails with".to_string()])
    );
    let (st, _, msg) = failing("an unexpected timeout");
    assert_eq!(st, "error");
    assert!(msg.starts_with("timeout"), "{msg}");
    let (_, fails, _) = failing("version");
    assert_eq!(fails, ["HTTP version equals"]);
}

/// A 200 MiB body on a target with the default `max_body` (16 MiB): counted, its start kept, and
/// the runner's peak memory stays far below the body's size.
#[test]
fn a_200_mib_body_costs_bounded_memory() {
    let r = run();
    let s = spec(&r.h2, "http.h2");
    let st = &s["cases"][0]["steps"][1];
    assert_eq!(st["status"], "passed", "{st}");
    let note = st["response"]["note"].as_str().unwrap();
    assert!(note.contains("max_body (16777216 bytes)"), "{note}");
    let peak_mib = r.h2_peak_kib / 1024;
    eprintln!("peak RSS of the h2 run: {peak_mib} MiB");
    assert!(peak_mib < 150, "peak RSS {peak_mib} MiB for a 200 MiB body");
}

#[test]
fn invalid_templated_header_is_named() {
    let (st, _, msg) = failing("invalid templated header");
    assert_eq!(st, "error");
    assert!(msg.contains("header `X-Bad`"), "{msg}");
}

#[test]
fn http2_prior_knowledge_and_target_basic_auth() {
    let s = spec(&run().h2, "http.h2");
    let steps = s["cases"][0]["steps"].as_array().unwrap();
    assert_eq!(steps[0]["status"], "passed", "{}", steps[0]);
    assert_eq!(steps[0]["response"]["version"], "HTTP/2");
    assert_eq!(steps[2]["status"], "failed");
    let text = serde_json::to_string(&run().h2).unwrap();
    assert!(!text.contains("target-password"));
}
