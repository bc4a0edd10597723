//! A real reverse proxy in the test tier (issue 22): a private nginx, configured as a lab ingress
//! would be (a short `keepalive_timeout`, gzip for JSON, TLS with HTTP/2, kept-alive connections
//! to the upstream), between focusqa and a `focusqa sim`'s Focus API; the Kubernetes API stays
//! direct. The shipped suite passes through it over https/HTTP-2 (reqwest) and over plain http
//! (the lean HTTP/1.1 client), and a spec that idles past nginx's keep-alive timeout shows that a
//! connection nginx closed is never waited on.
//!
//! Needs nginx (`NGINX=/path/to/nginx`, else on PATH or in /usr/sbin); without it the tests print
//! a notice and pass, except with `CI` set (`.ci/run` installs it).

use crate::common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{http_json, required_tool, results_in, SeparateSim};
use serde_json::Value;

/// The runner under test (a scratch build of an older commit can be put here by hand).
const FOCUSQA: &str = env!("CARGO_BIN_EXE_focusqa");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Slow enough that a busy 2-core machine stays far from the specs' simulated deadlines, fast
/// enough for the whole suite in about 40 s; `sleep: 60s` in a spec is 6 s of wall time.
const TIME_SCALE: &str = "0.1";
/// A run that takes longer has hung (the suite takes about 40 s, the idle spec about 20 s).
const RUN_DEADLINE: Duration = Duration::from_secs(240);

fn nginx_bin() -> Option<PathBuf> {
    required_tool(
        "nginx",
        "NGINX",
        &["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"],
        "apt-get install nginx",
        "the tests behind a real reverse proxy",
    )
}

/// The ingress. `$connection` (nginx's serial number of the client connection) in the access
/// logs shows when the runner had to open a new one.
const NGINX_CONF: &str = r#"
error_log DIR/error.log notice;
pid DIR/nginx.pid;
events { worker_connections 4096; }
http {
    log_format probe '$connection $connection_requests $server_protocol "$request" $status $gzip_ratio';
    client_body_temp_path DIR/tmp/body;
    proxy_temp_path DIR/tmp/proxy;
    fastcgi_temp_path DIR/tmp/fastcgi;
    uwsgi_temp_path DIR/tmp/uwsgi;
    scgi_temp_path DIR/tmp/scgi;

    # Short, so the runner's idle connections are closed under it (HTTP/2 too, since 1.19.7).
    keepalive_timeout 3s;
    # Fewer than the default 1000, so connections also end under load, mid-fan-out: `Connection:
    # close` on HTTP/1.1, GOAWAY on HTTP/2 (which nginx 1.19.7+ also bounds with this).
    keepalive_requests 100;
    gzip on;
    gzip_types application/json;

    upstream focus {
        server UPSTREAM;
        keepalive 32;
        # Below the simulator's 10 s idle limit: nginx never sends on a connection it is closing.
        keepalive_timeout 5s;
    }

    server {
        listen 127.0.0.1:HTTPS_PORT ssl http2;
        ssl_certificate DIR/leaf.pem;
        ssl_certificate_key DIR/leaf.key;
        access_log DIR/access-https.log probe;
        location / { include DIR/proxy.conf; }
    }
    server {
        listen 127.0.0.1:HTTP_PORT;
        access_log DIR/access-http.log probe;
        location / { include DIR/proxy.conf; }
    }
}
"#;

const PROXY_CONF: &str = r#"
proxy_pass http://focus;
# HTTP/1.1 without `Connection: close` upstream, so the upstream connections are kept alive.
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_set_header Host $host;
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header X-Forwarded-Proto $scheme;
"#;

/// A private nginx in the foreground, one process, everything (pid, logs, temp files) in its own
/// temp dir. Killed when dropped, also when the test fails.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    https_port: u16,
    http_port: u16,
}

/// A port free now: bound on 127.0.0.1 and released (another process may take it before nginx
/// does; [`Nginx::start`] then tries again).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A throwaway CA and a leaf for 127.0.0.1 it signed, as PEM files in `dir`.
fn write_lab_pki(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("leaf.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("leaf.key"), leaf_key.serialize_pem()).unwrap();
}

impl Nginx {
    /// nginx proxying to `upstream` (`host:port`), listening for https and http on 127.0.0.1.
    fn start(bin: &Path, upstream: &str) -> Nginx {
        for attempt in 1..=3 {
            match Self::try_start(bin, upstream) {
                Ok(n) => return n,
                Err(log) if attempt < 3 && log.contains("Address already in use") => continue,
                Err(log) => panic!("nginx did not start:\n{log}"),
            }
        }
        unreachable!()
    }

    fn try_start(bin: &Path, upstream: &str) -> Result<Nginx, String> {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("tmp")).unwrap();
        write_lab_pki(d);
        let (https_port, http_port) = (free_port(), free_port());
        let conf = NGINX_CONF
            .replace("DIR", d.to_str().unwrap())
            .replace("UPSTREAM", upstream)
            .replace("HTTPS_PORT", &https_port.to_string())
            .replace("HTTP_PORT", &http_port.to_string());
        std::fs::write(d.join("nginx.conf"), conf).unwrap();
        std::fs::write(d.join("proxy.conf"), PROXY_CONF).unwrap();
        let stderr = std::fs::File::create(d.join("stderr.log")).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            // Before the configuration is read, errors go here (not to /var/log/nginx).
            .arg("-e")
            .arg(d.join("error.log"))
            .args(["-g", "daemon off; master_process off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("nginx starts");
        let mut nginx = Nginx {
            child,
            dir,
            https_port,
            http_port,
        };
        let t0 = Instant::now();
        loop {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                return Err(format!("nginx exited ({status}):\n{}", nginx.logs()));
            }
            let up = |p: u16| TcpStream::connect(("127.0.0.1", p)).is_ok();
            if up(https_port) && up(http_port) {
                return Ok(nginx);
            }
            if t0.elapsed() > Duration::from_secs(10) {
                return Err(format!("nginx not listening after 10 s:\n{}", nginx.logs()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!("{}{}", self.file("stderr.log"), self.file("error.log"))
    }

    /// The access log of one listener: `(connection serial, requests on it so far, protocol,
    /// request line, status)` per request.
    fn access(&self, scheme: &str) -> Vec<(u64, u64, String, String, u16)> {
        self.file(&format!("access-{scheme}.log"))
            .lines()
            .map(|l| {
                let (head, rest) = l.split_once(" \"").unwrap();
                let (request, tail) = rest.split_once("\" ").unwrap();
                let h: Vec<&str> = head.split(' ').collect();
                let status = tail.split(' ').next().unwrap().parse().unwrap();
                (
                    h[0].parse().unwrap(),
                    h[1].parse().unwrap(),
                    h[2].to_string(),
                    request.to_string(),
                    status,
                )
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A simulator with nginx in front of its Focus API, and a focusqa config with two targets
/// through nginx, `https` (lab CA, HTTP/2 by ALPN) and `http`; Kubernetes direct.
struct Lab {
    // Dropped in this order: the proxy, then the simulator.
    nginx: Nginx,
    sim: SeparateSim,
}

impl Lab {
    /// `None` when nginx is missing (and `CI` unset).
    fn start() -> Option<Lab> {
        let bin = nginx_bin()?;
        let sim = SeparateSim::start(TIME_SCALE);
        let nginx = Nginx::start(&bin, sim.focus_url.trim_start_matches("http://"));
        let kube = format!(
            "    simulator: true\n    kubernetes:\n      kubeconfig: {}\n      namespace: focus\n",
            sim.dir.path().join("kubeconfig.yaml").display()
        );
        let cfg = format!(
            "default_target: https\nspecs: [{ROOT}/specs]\nscope: {ROOT}/specs/scope.yaml\ntargets:\n  https:\n    base_url: https://127.0.0.1:{}\n    tls: {{ca_file: {}}}\n{kube}  http:\n    base_url: http://127.0.0.1:{}\n{kube}",
            nginx.https_port,
            nginx.dir.path().join("ca.pem").display(),
            nginx.http_port,
        );
        std::fs::write(sim.dir.path().join("behind-nginx.yaml"), cfg).unwrap();
        Some(Lab { nginx, sim })
    }

    /// `focusqa run --target TARGET PATHS` in the repository root; asserts exit 0 and that every
    /// case passed, and returns the results with the wall time.
    fn run_passing(&self, target: &str, paths: &[&str]) -> (Value, Duration) {
        let reports = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(FOCUSQA);
        cmd.arg("--config")
            .arg(self.sim.dir.path().join("behind-nginx.yaml"))
            .args(["run", "--quiet", "--target", target])
            .args(paths)
            .arg("--report-dir")
            .arg(reports.path())
            .current_dir(ROOT)
            .env("NO_COLOR", "1");
        let t0 = Instant::now();
        let out = output_within(&mut cmd, RUN_DEADLINE);
        let took = t0.elapsed();
        eprintln!("focusqa run --target {target} {paths:?}: {took:.1?}");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "through nginx ({target}):\n{}{}\nnginx:\n{}",
            text(&out.stdout),
            text(&out.stderr),
            self.nginx.logs()
        );
        let r = results_in(reports.path());
        let t = &r["totals"];
        assert!(
            t["cases"].as_u64().unwrap() > 0 && t["passed"] == t["cases"],
            "every case passed: {t}"
        );
        for spec in r["specs"].as_array().unwrap() {
            for case in spec["cases"].as_array().unwrap() {
                assert_eq!(case["status"], "passed", "{} {}", spec["id"], case["name"]);
            }
        }
        assert_eq!(r["target"]["kind"], "simulator");
        assert_eq!(
            r["target"]["time_scale"], 0.1,
            "asked of the simulator through nginx"
        );
        (r, took)
    }

    /// No job left open, asked of the simulator directly.
    fn assert_no_open_jobs(&self) {
        let (status, jobs) = http_json(&self.sim.focus_url, "GET", "/jobs", None);
        assert_eq!(status, 200);
        assert_eq!(jobs["count"], 0, "jobs left open: {jobs}");
    }
}

/// `cmd`'s output, or a panic with what it printed when it runs past `deadline` (then killed).
fn output_within(cmd: &mut Command, deadline: Duration) -> Output {
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
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running after {deadline:?}:\n{}{}",
                String::from_utf8_lossy(&out.join().unwrap()),
                String::from_utf8_lossy(&err.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Every HTTP step's response in the results (steps and cleanup, fan-outs excluded).
fn responses(r: &Value) -> Vec<&Value> {
    r["specs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["cases"].as_array().unwrap())
        .flat_map(|c| {
            let steps = c["steps"].as_array().unwrap().iter();
            steps.chain(c["cleanup"].as_array().into_iter().flatten())
        })
        .filter(|st| st["kind"] == "http")
        .filter_map(|st| st.get("response"))
        .collect()
}

fn header<'a>(resp: &'a Value, name: &str) -> Option<&'a str> {
    resp["headers"]
        .as_array()?
        .iter()
        .find(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .and_then(|h| h[1].as_str())
}

/// The whole shipped suite through nginx (the 200 concurrent jobs, the cleanup after a
/// disconnect, ...): everything passes, on the HTTP version expected, gzipped where nginx gzips,
/// and no job is left open.
fn shipped_suite_through_nginx(target: &str, version: &str, protocol: &str) {
    let Some(lab) = Lab::start() else { return };
    let (r, _) = lab.run_passing(target, &["specs"]);
    let ids: Vec<&str> = r["specs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    for id in ["limits.concurrent-200", "k8s.cleanup-after-disconnect"] {
        assert!(ids.contains(&id), "{id} ran: {ids:?}");
    }
    let resp = responses(&r);
    assert!(!resp.is_empty());
    for x in &resp {
        assert_eq!(x["version"], version, "{x}");
    }
    assert!(
        resp.iter()
            .any(|x| header(x, "content-encoding") == Some("gzip")),
        "nginx gzipped some JSON"
    );
    // Every request went through nginx, on the protocol expected; 200 at once for the limit.
    let log = lab.nginx.access(target);
    assert!(log.iter().all(|(_, _, p, _, _)| p == protocol), "{log:?}");
    let configures = log
        .iter()
        .filter(|(_, _, _, req, status)| req.starts_with("POST /configure ") && *status == 200)
        .count();
    assert!(
        configures >= 200,
        "{configures} jobs configured through nginx"
    );
    lab.assert_no_open_jobs();
}

#[test]
fn the_shipped_suite_passes_through_nginx_over_https_and_http2() {
    shipped_suite_through_nginx("https", "HTTP/2", "HTTP/2.0");
}

#[test]
fn the_shipped_suite_passes_through_nginx_over_plain_http() {
    shipped_suite_through_nginx("http", "HTTP/1.1", "HTTP/1.1");
}

/// Each request after 6 s of idling (nginx closes idle connections after 3 s) goes out and is
/// answered at once, on both client paths: a GET, a POST (never sent twice: two jobs, both
/// cancelled) and a DELETE. nginx's log shows the new connections.
#[test]
fn requests_after_nginx_closed_the_idle_connections_do_not_wait() {
    let Some(lab) = Lab::start() else { return };
    let spec = format!("{ROOT}/tests/fixtures/nginx/idle-keepalive.yaml");
    for target in ["https", "http"] {
        let (r, took) = lab.run_passing(target, &[&spec]);
        for st in r["specs"][0]["cases"][0]["steps"].as_array().unwrap() {
            if st["kind"] == "http" {
                assert!(
                    st["duration_ms"].as_f64().unwrap() < 5000.0,
                    "answered at once, not after a timeout: {st}"
                );
            }
        }
        // Three sleeps of 6 s, and about a second of work around them.
        assert!(took < Duration::from_secs(40), "{took:?}");
        // A connection before the first sleep and after each of the three, at least.
        let mut conns: Vec<u64> = lab.nginx.access(target).iter().map(|l| l.0).collect();
        conns.dedup();
        assert!(
            conns.len() >= 4,
            "new connections after nginx closed idle ones: {conns:?}"
        );
        lab.assert_no_open_jobs();
    }
}
