//! No secret in any report: a spec runs through the CLI against a server that echoes the token
//! back everywhere (response headers, JSON bodies, error messages, links), with the token in
//! `env`, in a header, in a capture, in a URL path and query, in a request body, in a case
//! variable and in failing assertions; then every output (results.json, junit.xml, both HTML
//! views, stdout and stderr of the run, and what `focusqa report` re-renders) is searched for the
//! token, the other secrets and their base64 and URL-encoded forms.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use common::{stderr, stdout, Project};

/// From the environment (`env.FOCUSQA_TEST_TOKEN`): the target's `Authorization: Bearer ...`.
const TOKEN: &str = "Tk9-s3cr3t/v@lue+x=y";
/// Handed out by the server, captured with `secret: true`.
const SESSION: &str = "sess-7f3a9c1e55d0";
/// A literal spec variable listed under `secrets:`.
const API_KEY: &str = "literal-api-key-0042";

/// Everything the server saw (to prove the secrets really went out).
type Seen = Arc<Mutex<Vec<String>>>;

/// Echoes every request back: in the body, in headers (plain, base64, percent-encoded in a
/// link), as a cookie; `/fail...` answers 500 with the same material in an error message.
async fn echo(
    State(seen): State<Seen>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let token = auth.strip_prefix("Bearer ").unwrap_or("").to_string();
    seen.lock()
        .unwrap()
        .push(format!("{method} {uri} {auth} {body}"));
    let all: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
        .collect();
    let doc = json!({
        "access": token,
        "session": SESSION,
        "uri": uri.to_string(),
        "headers": all,
        "body": body,
        "b64": STANDARD.encode(&auth),
        "token_b64": URL_SAFE_NO_PAD.encode(&token),
    });
    let status = if uri.path().starts_with("/fail") {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let doc = if status.is_success() {
        doc
    } else {
        json!({"detail": format!("invalid credentials {auth} for {uri}: {body}")})
    };
    (
        status,
        [
            ("content-type", "application/json".to_string()),
            ("x-echo", auth.clone()),
            ("x-echo-b64", STANDARD.encode(&auth)),
            (
                "link",
                format!(
                    "</next?t={}>; rel=next",
                    utf8_percent_encode(&token, NON_ALPHANUMERIC)
                ),
            ),
            ("set-cookie", format!("sid={SESSION}; Path=/; HttpOnly")),
        ],
        doc.to_string(),
    )
}

struct EchoServer {
    url: String,
    seen: Seen,
    _rt: tokio::runtime::Runtime,
}

fn start() -> EchoServer {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let seen: Seen = Arc::default();
    let app = Router::new().fallback(echo).with_state(seen.clone());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    EchoServer { url, seen, _rt: rt }
}

/// The spec: secrets in every place a spec can put them.
const SPEC: &str = include_str!("fixtures/secrets/echo.yaml");

fn focusqa(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_focusqa"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("FOCUSQA_TEST_TOKEN", TOKEN)
        .output()
        .unwrap()
}

/// A secret as it may appear: itself, base64 (standard and URL-safe, with and without padding),
/// percent-encoded (every non-alphanumeric byte, and as a form/query value).
fn forms(secret: &str) -> Vec<String> {
    let form: String = url_form(secret);
    let mut out = vec![
        secret.to_string(),
        STANDARD.encode(secret),
        STANDARD_NO_PAD.encode(secret),
        URL_SAFE.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
        utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
        form,
        STANDARD.encode(format!("Bearer {secret}")),
    ];
    out.sort();
    out.dedup();
    out
}

/// application/x-www-form-urlencoded, as reqwest encodes query values.
fn url_form(s: &str) -> String {
    const FORM: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'*')
        .remove(b'-')
        .remove(b'.')
        .remove(b'_');
    utf8_percent_encode(s, FORM).to_string().replace("%20", "+")
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [TOKEN, SESSION, API_KEY] {
        for f in forms(secret) {
            if let Some(at) = text.find(&f) {
                let from = text[..at]
                    .char_indices()
                    .rev()
                    .nth(150)
                    .map_or(0, |(i, _)| i);
                panic!(
                    "{what}: `{f}` (a form of `{secret}`) leaked:\n…{}…",
                    &text[from..(at + f.len() + 100).min(text.len())]
                );
            }
        }
    }
}

#[test]
fn no_secret_in_any_report() {
    let srv = start();
    let p = Project::new(&srv.url);
    p.spec("echo.yaml", SPEC);
    let out = focusqa(p.path(), &["run"]);
    let console = format!("{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{console}");

    // The secrets really went out (and came back).
    let seen = srv.seen.lock().unwrap().join("\n");
    assert!(seen.contains(&format!("Bearer {TOKEN}")), "{seen}");
    assert!(seen.contains(API_KEY) && seen.contains(SESSION), "{seen}");

    let reports = p.path().join("reports");
    if let Some(keep) = std::env::var_os("FOCUSQA_KEEP_SECRETS_RUN") {
        let _ = std::fs::remove_dir_all(&keep);
        std::fs::create_dir_all(&keep).unwrap();
        for f in ["results.json", "junit.xml", "summary.html"] {
            std::fs::copy(reports.join(f), Path::new(&keep).join(f)).unwrap();
        }
        std::fs::write(Path::new(&keep).join("console.txt"), &console).unwrap();
    }
    let read = |name: &str| std::fs::read_to_string(reports.join(name)).unwrap();
    assert_no_secret("console of `focusqa run`", &console);
    for f in ["results.json", "junit.xml", "summary.html", "coverage.html"] {
        assert_no_secret(f, &read(f));
    }

    // The evidence is still there, with the secrets replaced.
    let r: Value = serde_json::from_str(&read("results.json")).unwrap();
    let case = &r["specs"][0]["cases"][0];
    let login = &case["steps"][0];
    assert_eq!(login["status"], "passed", "{login}");
    assert_eq!(login["captures"]["session"], "[redacted]");
    assert_eq!(login["captures"]["echoed"], "[redacted]");
    let headers = login["response"]["headers"].to_string();
    assert!(headers.contains(r#"["x-echo","[redacted]"]"#), "{headers}");
    assert!(headers.contains(r#"["content-type","application/json"]"#));
    assert_eq!(case["vars"]["pw"], "[redacted]");
    let checks = &case["steps"][1]["assertions"];
    let actual: Vec<&Value> = checks
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["subject"] == "$.access" || a["subject"] == "$.session")
        .map(|a| &a["actual"])
        .collect();
    assert_eq!(
        actual,
        [&json!("[redacted]"), &json!("[redacted]")],
        "{checks}"
    );
    assert!(case["message"].as_str().unwrap().contains("[redacted]"));
    let fanout = &case["cleanup"][3]["fanout"];
    assert_eq!(
        fanout["captures"]["tok"],
        json!(["[redacted]", "[redacted]", "[redacted]"]),
        "{fanout}"
    );
    assert_eq!(fanout["failed"], 3, "{fanout}");

    // Re-rendered from results.json, into another directory and in place.
    let again = p.path().join("again");
    let out = focusqa(
        p.path(),
        &[
            "report",
            "reports/results.json",
            "--report-dir",
            again.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_no_secret(
        "console of `focusqa report`",
        &format!("{}\n{}", stdout(&out), stderr(&out)),
    );
    for f in ["results.json", "junit.xml", "summary.html", "coverage.html"] {
        let text = std::fs::read_to_string(again.join(f)).unwrap();
        assert_no_secret(&format!("re-rendered {f}"), &text);
    }
    let out = focusqa(p.path(), &["report", "reports/results.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_no_secret("console of `focusqa report` in place", &stdout(&out));
    for f in ["junit.xml", "summary.html", "coverage.html"] {
        assert_no_secret(&format!("re-rendered {f} in place"), &read(f));
    }
}

#[test]
fn secrets_names_unknown_variables_are_spec_errors() {
    let p = Project::new("http://127.0.0.1:9");
    p.spec(
        "bad.yaml",
        "id: bad\ntitle: bad\nsecrets: [tokn]\nvars: {token: x}\nsteps:\n  - sleep: 1ms\n",
    );
    let out = focusqa(p.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("`secrets` names `tokn`") && text.contains("did you mean `token`"),
        "{text}"
    );
}

#[test]
fn a_secret_learnt_in_a_later_spec_leaves_earlier_specs_too() {
    let srv = start();
    let p = Project::new(&srv.url);
    // `a` sees the session without knowing it is secret; `b`, run after it, marks it secret.
    p.spec(
        "a.yaml",
        "id: a\ntitle: a\nsteps:\n  - http: {path: /echo}\n    capture: {s: $.session}\n",
    );
    p.spec(
        "b.yaml",
        "id: b\ntitle: b\nsteps:\n  - http: {path: /echo}\n    capture: {s: {path: $.session, secret: true}}\n",
    );
    let out = focusqa(p.path(), &["run", "--jobs", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // `a` finished first (before the session was known to be secret).
    let console = stdout(&out);
    let first = console.lines().find(|l| l.starts_with("[1/2]")).unwrap();
    assert!(first.contains(" a ("), "{console}");
    let text = std::fs::read_to_string(p.path().join("reports/results.json")).unwrap();
    let r: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["specs"][0]["id"], "a");
    assert_eq!(
        r["specs"][0]["cases"][0]["steps"][0]["captures"]["s"],
        "[redacted]"
    );
    assert!(!text.contains(SESSION), "{text}");
    assert!(
        !std::fs::read_to_string(p.path().join("reports/summary.html"))
            .unwrap()
            .contains(SESSION)
    );
}

/// Read only inside a fan-out (its iterations and its cleanup), never by the case itself.
const FANOUT_ENV: &str = "fan-0ut-env-s3cret";

#[test]
fn env_values_read_inside_a_fanout_are_the_runs_secrets() {
    let srv = start();
    let p = Project::new(&srv.url);
    // The iterations' scopes and their cleanup scopes report to the run's secrets like the
    // case's scope: the value, echoed back in bodies, names and captures, is hidden everywhere.
    p.spec(
        "fan.yaml",
        r#"id: fan
title: env read by iterations
steps:
  - fanout:
      count: 3
      concurrency: 2
      steps:
        - name: "send {{ env.FOCUSQA_FANOUT_ENV }}"
          http: {method: POST, path: "/echo?v={{ env.FOCUSQA_FANOUT_ENV }}", json: {v: "{{ env.FOCUSQA_FANOUT_ENV }}"}}
          capture: {got: $.uri}
      cleanup:
        - http: {path: "/fail/{{ env.FOCUSQA_FANOUT_ENV }}"}
"#,
    );
    let out = Command::new(env!("CARGO_BIN_EXE_focusqa"))
        .args(["run"])
        .current_dir(p.path())
        .env("NO_COLOR", "1")
        .env("FOCUSQA_TEST_TOKEN", TOKEN)
        .env("FOCUSQA_FANOUT_ENV", FANOUT_ENV)
        .output()
        .unwrap();
    // The value really went out (in the body and the cleanup's path), and came back in what
    // the results keep (the captured URI).
    let seen = srv.seen.lock().unwrap().join("\n");
    assert!(seen.contains(FANOUT_ENV), "{seen}");
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(p.path().join("reports/results.json")).unwrap(),
    )
    .unwrap();
    let fanout = &r["specs"][0]["cases"][0]["steps"][0]["fanout"];
    assert!(
        fanout["captures"]["got"].to_string().contains("[redacted]"),
        "{fanout}"
    );
    for f in ["results.json", "junit.xml", "summary.html"] {
        let text = std::fs::read_to_string(p.path().join("reports").join(f)).unwrap();
        assert_no_secret(f, &text);
        for form in forms(FANOUT_ENV) {
            assert!(!text.contains(&form), "{f} holds {form:?}:\n{text}");
        }
    }
    let console = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!console.contains(FANOUT_ENV), "{console}");
}
