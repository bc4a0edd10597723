//! Shared helpers for end-to-end tests: a small Focus-like HTTP server on 127.0.0.1,
//! a temp project directory, and running the `focusqa` binary.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

pub mod real_kube;

use axum::extract::{Path as AxPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Default)]
pub struct ServerState {
    pub next: u32,
    /// job id -> metadata requests seen so far
    pub jobs: HashMap<String, u32>,
    pub cancelled: Vec<String>,
    /// metadata answers 200 after this many 404s
    pub ready_after: u32,
    /// `/work` requests in flight now, and the most seen at once
    pub in_flight: u32,
    pub max_in_flight: u32,
}

pub type Shared = Arc<Mutex<ServerState>>;

pub struct TestServer {
    pub url: String,
    pub state: Shared,
    _rt: tokio::runtime::Runtime,
}

async fn configure(State(s): State<Shared>, body: String) -> impl IntoResponse {
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"detail": "body is not JSON"})),
        );
    };
    let min = v
        .pointer("/channels/min")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let max = v
        .pointer("/channels/max")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if min > max {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"detail": format!("channels: min ({min}) must not be greater than max ({max})")}),
            ),
        );
    }
    let mut st = s.lock().unwrap();
    st.next += 1;
    let id = format!("18-{}", st.next);
    st.jobs.insert(id.clone(), 0);
    let port = 50050 + st.next;
    (
        StatusCode::OK,
        Json(
            json!({"job_id": id, "status": "configured", "stream_url": "10.10.10.100", "stream_port": port}),
        ),
    )
}

async fn metadata(State(s): State<Shared>, AxPath(id): AxPath<String>) -> impl IntoResponse {
    let mut st = s.lock().unwrap();
    let ready_after = st.ready_after;
    match st.jobs.get_mut(&id) {
        Some(seen) if *seen >= ready_after => (
            StatusCode::OK,
            Json(json!({"job_id": id, "status": "running", "stream_port": 50051})),
        ),
        Some(seen) => {
            *seen += 1;
            (
                StatusCode::NOT_FOUND,
                Json(json!({"detail": "Invalid job_id"})),
            )
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"detail": "Invalid job_id"})),
        ),
    }
}

async fn cancel(State(s): State<Shared>, AxPath(id): AxPath<String>) -> impl IntoResponse {
    let mut st = s.lock().unwrap();
    if st.jobs.remove(&id).is_some() {
        st.cancelled.push(id.clone());
        (
            StatusCode::OK,
            Json(json!({"job_id": id, "status": "cancelled"})),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"detail": format!("Unknown job_id {id}")})),
        )
    }
}

async fn hostile() -> impl IntoResponse {
    (
        StatusCode::OK,
        [("content-type", "text/html"), ("x-trace", "abc-123")],
        "<script>alert(1)</script>",
    )
}

async fn slow() -> impl IntoResponse {
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    Json(json!({"slow": true}))
}

async fn work(State(s): State<Shared>) -> impl IntoResponse {
    {
        let mut st = s.lock().unwrap();
        st.in_flight += 1;
        st.max_in_flight = st.max_in_flight.max(st.in_flight);
    }
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    s.lock().unwrap().in_flight -= 1;
    Json(json!({"ok": true}))
}

async fn echo_headers(headers: axum::http::HeaderMap) -> impl IntoResponse {
    let m: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
        .collect();
    Json(Value::Object(m))
}

impl TestServer {
    pub fn start(ready_after: u32) -> TestServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state: Shared = Arc::new(Mutex::new(ServerState {
            ready_after,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/configure", post(configure))
            .route("/metadata/{id}", get(metadata))
            .route("/job/{id}", delete(cancel))
            .route("/hostile", get(hostile))
            .route("/slow", get(slow))
            .route("/headers", get(echo_headers))
            .route("/work", get(work))
            .with_state(state.clone());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestServer {
            url,
            state,
            _rt: rt,
        }
    }
}

/// A temp project: focusqa.yaml with targets, spec files, report dir.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(base_url: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let cfg = format!(
            "default_target: local\nscope: none.yaml\ntargets:\n  local:\n    base_url: {base_url}\n    timeout: 5s\n    headers:\n      Authorization: \"Bearer {{{{ env.FOCUSQA_TEST_TOKEN | default('s3cr3t-token') }}}}\"\n  closed:\n    base_url: http://127.0.0.1:9\n    timeout: 2s\n"
        );
        std::fs::write(dir.path().join("focusqa.yaml"), cfg).unwrap();
        std::fs::create_dir_all(dir.path().join("specs")).unwrap();
        Project { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Gives the project the scope catalog `yaml` (scope.yaml) in place of none, and
    /// `extra_config` lines after it (e.g. `specs: [specs]`).
    pub fn with_scope(&self, yaml: &str, extra_config: &str) {
        std::fs::write(self.path().join("scope.yaml"), yaml).unwrap();
        let cfg = std::fs::read_to_string(self.path().join("focusqa.yaml")).unwrap();
        let mut with = "scope: scope.yaml".to_string();
        for line in extra_config.lines() {
            with.push('\n');
            with.push_str(line);
        }
        std::fs::write(
            self.path().join("focusqa.yaml"),
            cfg.replace("scope: none.yaml", &with),
        )
        .unwrap();
    }

    pub fn spec(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join("specs").join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `focusqa ARGS` in the project's directory, without colours.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_focusqa"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Like [`Project::run`], with the peak resident memory of that one process in KiB. The
    /// tests share a process, so `getrusage(RUSAGE_CHILDREN)` would mix in other tests' runs:
    /// the child is reaped with `wait4`, which reports its own usage.
    pub fn run_with_peak_rss(&self, args: &[&str]) -> (Output, u64) {
        output_with_peak_rss(&mut self.command(args))
    }

    /// Runs `focusqa run`, waits until `ready()` holds (20 s at most), sends Ctrl-C (SIGINT)
    /// and returns the output.
    pub fn run_and_interrupt(&self, ready: impl Fn() -> bool) -> Output {
        let child = self
            .command(&["run"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        while !ready() {
            assert!(
                t0.elapsed().as_secs() < 20,
                "the run never reached the point to interrupt"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn results(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.path().join("reports/results.json"))
            .expect("results.json written");
        serde_json::from_str(&text).unwrap()
    }

    pub fn junit(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("reports/junit.xml"))
            .expect("junit.xml written")
    }
}

/// Runs `focusqa` in the repository root (its focusqa.yaml and shipped specs).
pub fn focusqa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_focusqa"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Runs `cmd` to its end, collecting its output, and returns with it the peak RSS (KiB) of that
/// process alone.
// The child is reaped by `wait4` below (which reports its peak RSS), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
pub fn output_with_peak_rss(cmd: &mut Command) -> (Output, u64) {
    use std::os::unix::process::ExitStatusExt;
    let (child, out, err) = spawn_drained(cmd);
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // Reaped here, so `child` is never waited on again.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    let output = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (output, usage.ru_maxrss as u64)
}

/// Output read as it comes, on a thread of its own (a full pipe would block the child).
pub type Drain = std::thread::JoinHandle<Vec<u8>>;

/// Starts `cmd` with its stdout and stderr piped and read into memory as they come.
pub fn spawn_drained(cmd: &mut Command) -> (std::process::Child, Drain, Drain) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    (child, out, err)
}

/// Waits (20 s at most) until process `pid` catches SIGINT and SIGTERM (`SigCgt` in
/// `/proc/PID/status`): before that, a signal ends it by the default action, before `main` has
/// had a chance to run, which no runner can answer.
pub fn wait_until_catching_stop_signals(pid: u32) {
    let wanted = (1u64 << (libc::SIGINT - 1)) | (1u64 << (libc::SIGTERM - 1));
    let t0 = std::time::Instant::now();
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .unwrap_or(0);
        if caught & wanted == wanted {
            return;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "process {pid} did not catch SIGINT and SIGTERM within 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Asserts a run's exit code, showing its output when it differs.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        stdout(out),
        stderr(out)
    );
}

/// The results.json in a report directory.
pub fn results_in(dir: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(dir.join("results.json")).expect("results.json written"),
    )
    .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An external program a check needs: `$env_var` when set, else `name` on PATH or in one of
/// `also_in` (e.g. /usr/sbin, which is not on a Debian user's PATH). When it is missing, the check
/// is required in CI (`CI` set: this panics, saying how to install it, since `.ci/run` installs it)
/// and skipped elsewhere (a notice on stderr and `None`, so a machine without it still passes).
pub fn required_tool(
    name: &str,
    env_var: &str,
    also_in: &[&str],
    install: &str,
    check: &str,
) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(also_in.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("{name} is not installed ({install}); CI must run {check}");
        }
        eprintln!("NOTICE: {name} not found (PATH, {env_var}); skipping {check} ({install})");
    }
    found
}

/// Validates JUnit XML against the Jenkins schema CI consumers use (needs xmllint).
pub fn xmllint_validate(xml_path: &Path) {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jenkins-junit.xsd");
    let Some(xmllint) = required_tool(
        "xmllint",
        "XMLLINT",
        &[],
        "apt-get install libxml2-utils",
        "the JUnit schema validation",
    ) else {
        return;
    };
    let out = Command::new(xmllint)
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(xml_path)
        .output()
        .expect("xmllint runs");
    assert!(
        out.status.success(),
        "junit.xml does not validate against the Jenkins XSD:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `focusqa sim` started as its own process on free ports (as a user would start one), with a
/// `focusqa.yaml` whose default target `sim` reaches it. Stopped (SIGINT) when dropped.
pub struct SeparateSim {
    pub child: std::process::Child,
    pub focus_url: String,
    pub kube_url: String,
    pub dir: tempfile::TempDir,
    /// Kept open: the simulator prints on shutdown and must not hit a closed pipe.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl SeparateSim {
    pub fn start(time_scale: &str) -> SeparateSim {
        Self::start_with(time_scale, &[])
    }

    /// Started with extra `focusqa sim` arguments (e.g. `--kube-token`).
    pub fn start_with(time_scale: &str, extra: &[&str]) -> SeparateSim {
        Self::launch(time_scale, extra, None)
    }

    /// `focusqa sim --kubernetes KUBECONFIG`: the simulator drives that (real) cluster, and the
    /// config's target reads Kubernetes from it.
    pub fn start_on_cluster(kubeconfig: &Path) -> SeparateSim {
        Self::launch("1", &[], Some(kubeconfig))
    }

    fn launch(time_scale: &str, extra: &[&str], cluster: Option<&Path>) -> SeparateSim {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().unwrap();
        let own_kubeconfig = dir.path().join("kubeconfig.yaml");
        let kubeconfig = cluster.map_or(own_kubeconfig.clone(), Path::to_path_buf);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_focusqa"));
        cmd.args([
            "sim",
            "--port",
            "0",
            "--kube-port",
            "0",
            "--time-scale",
            time_scale,
        ])
        .args(extra)
        .arg("--kubeconfig")
        .arg(&own_kubeconfig);
        if let Some(kc) = cluster {
            cmd.arg("--kubernetes").arg(kc);
        }
        let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
        let mut focus_url = String::new();
        let mut kube_url = String::new();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(u) = line.trim().strip_prefix("Focus Server API:") {
                focus_url = u.trim().to_string();
            }
            if let Some(u) = line.trim().strip_prefix("Kubernetes API:") {
                kube_url = u.trim().to_string();
            }
            if line.contains("Press Ctrl-C") {
                break;
            }
            line.clear();
        }
        assert!(
            focus_url.starts_with("http://127.0.0.1:"),
            "printed the Focus URL"
        );
        assert!(kubeconfig.exists(), "wrote the kubeconfig");
        // No time_scale nor capacity here: the run asks the simulator for its own.
        let cfg = format!(
            "default_target: sim\nspecs: [{root}/specs]\nscope: {root}/specs/scope.yaml\ntargets:\n  sim:\n    base_url: {focus_url}\n    simulator: true\n    kubernetes:\n      kubeconfig: {}\n      namespace: focus\n",
            kubeconfig.display(),
            root = env!("CARGO_MANIFEST_DIR"),
        );
        std::fs::write(dir.path().join("focusqa.yaml"), cfg).unwrap();
        SeparateSim {
            child,
            focus_url,
            kube_url,
            dir,
            _stdout: reader,
        }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("focusqa.yaml")
    }

    /// `focusqa --config <this sim's config> ARGS` in the repository root.
    pub fn focusqa(&self, args: &[&str]) -> Output {
        let config = self.config();
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        focusqa(&all)
    }

    /// A JSON request to the simulator (`curl`-free: a tiny blocking client over std).
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        http_json(&self.focus_url, method, path, body)
    }
}

impl Drop for SeparateSim {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Minimal blocking HTTP/1.1 JSON client for tests (no extra dependency).
pub fn http_json(base: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    use std::io::{Read, Write};
    let hostport = base.trim_start_matches("http://");
    let (host, prefix) = match hostport.find('/') {
        Some(i) => (&hostport[..i], &hostport[i..]),
        None => (hostport, ""),
    };
    let mut s = std::net::TcpStream::connect(host).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {prefix}{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status: u16 = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let text = resp.split("\r\n\r\n").nth(1).unwrap_or("");
    // Bodies may be chunked: take the JSON between the first `{` and the last `}`.
    let json = match (text.find('{'), text.rfind('}')) {
        (Some(a), Some(b)) if b >= a => serde_json::from_str(&text[a..=b]).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, json)
}

/// What [`run_expecting`] ran: the results.json, the report directory and the console output.
pub struct Run {
    pub results: Value,
    pub dir: tempfile::TempDir,
    pub stdout: String,
}

/// `focusqa ARGS --report-dir <temp dir>` in the repository root: asserts the exit code (showing
/// the output when it differs) and returns what the run wrote.
pub fn run_expecting(code: i32, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut all = args.to_vec();
    all.extend(["--report-dir", dir.path().to_str().unwrap()]);
    let out = focusqa(&all);
    assert_eq!(
        out.status.code(),
        Some(code),
        "focusqa {args:?}\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    Run {
        results: results_in(dir.path()),
        dir,
        stdout: stdout(&out),
    }
}

/// A throwaway CA and a server certificate it signed for `names` (IP addresses or DNS names):
/// the CA as PEM (what a client is told to trust) and a rustls server config presenting the leaf.
pub fn lab_certificate(names: &[&str]) -> (String, rustls::ServerConfig) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    (ca.pem(), cfg)
}

/// A one-thread runtime kept by the caller and a loopback listener bound on it, for test servers.
pub fn listener_runtime() -> (tokio::runtime::Runtime, tokio::net::TcpListener) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    (rt, listener)
}

/// The first fan-out among the steps of the first case of spec `id` in a results.json.
pub fn fanout_of<'a>(r: &'a Value, id: &str) -> &'a Value {
    let spec = r["specs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("spec {id} in results"));
    spec["cases"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|st| st.get("fanout"))
        .unwrap_or_else(|| panic!("a fan-out step in spec {id}"))
}

/// A fan-out's threshold result, by its expression.
pub fn threshold<'a>(f: &'a Value, expr: &str) -> &'a Value {
    f["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["expr"] == expr)
        .unwrap_or_else(|| panic!("threshold {expr} in {}", f["thresholds"]))
}
