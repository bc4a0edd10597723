//! Targets: where specs run. A target bundles the HTTP client for the Focus Server,
//! optional Kubernetes access, its capabilities, and (for `embedded`) the simulator it started.

pub mod h1;
pub mod kube;
pub mod watch;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::config::{Config, TargetConfig};
use crate::results::{Clock, TargetInfo, TargetKind};
use crate::sim::{SimConfig, SimHandle};
use crate::spec::{Capability, VarMap};
use crate::template::Scope;

/// An error with its causes ("client error (Connect): invalid peer certificate: UnknownIssuer"):
/// kube's and hyper's own messages stop at the outermost layer, which rarely says what to fix.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let msg = c.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = c.source();
    }
    out
}

/// Errors while preparing a target (before any spec runs).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target `{target}`: {message}")]
    Invalid { target: String, message: String },
    #[error("target `{target}`: cannot start the embedded simulator: {source}")]
    Simulator {
        target: String,
        source: std::io::Error,
    },
    #[error("target `{target}`: Kubernetes: {message}")]
    Kube { target: String, message: String },
}

pub use crate::config::DEFAULT_MAX_BODY;

/// The `User-Agent` sent unless a step or the target sets one.
pub const USER_AGENT: &str = concat!("focusqa/", env!("CARGO_PKG_VERSION"));
/// Redirects followed for one request unless the target says `max_redirects`.
pub const DEFAULT_MAX_REDIRECTS: u32 = 10;

/// Parsed URLs each thread remembers (the oldest goes first: URLs with ids in them pass through).
const URL_CACHE: usize = 64;

/// Overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct TargetOverrides {
    pub time_scale: Option<f64>,
    pub capacity: Option<usize>,
    pub seed: Option<u64>,
}

pub struct Target {
    pub name: String,
    pub info: TargetInfo,
    pub base_url: Option<String>,
    pub http: reqwest::Client,
    /// The lean client of plain `http://` requests; `None` when reqwest must carry them
    /// (`http2: prior_knowledge`, or a proxy set in the environment).
    pub h1: Option<h1::H1Client>,
    /// Default headers, rendered once (values may come from the environment).
    pub headers: Vec<(String, String)>,
    /// Every request's first headers, made on first use by the HTTP steps: `[0]` to the base
    /// URL (with `headers`), `[1]` to the simulator's control API.
    pub base_headers: [std::sync::OnceLock<Result<reqwest::header::HeaderMap, String>>; 2],
    pub timeout: Duration,
    /// Follow redirects unless a step says otherwise, at most `max_redirects` of them.
    pub follow_redirects: bool,
    pub max_redirects: u32,
    /// A cookie jar per case unless a spec says otherwise.
    pub cookies: bool,
    /// `(user, password)` for every request (rendered once; the password is a secret).
    pub basic_auth: Option<(String, String)>,
    /// Most response body bytes kept (the rest is counted and discarded).
    pub max_body: u64,
    /// Which files steps may read at run time (a templated `body_file`, multipart file or
    /// `schema` path is known only then): the project and `allow_paths` of the config, and
    /// files sent as bodies at most this target's `max_body`.
    pub access: crate::spec::Access,
    pub capabilities: BTreeSet<Capability>,
    /// Simulated delays are multiplied by this; the engine scales sleeps and poll intervals alike.
    pub time_scale: f64,
    /// Target variables (visible as `target.<name>` and as plain variables).
    pub vars: VarMap,
    /// Root URL of the simulator's control API (`<focus>/sim`), when this target is a simulator.
    pub sim_url: Option<String>,
    pub kube: Option<kube::KubeTarget>,
    /// The run's secret values, redacted from every report (shared: grows during the run with
    /// `env.*` values, sensitive headers, secret captures and variables).
    pub secrets: crate::results::Secrets,
    /// The origins of an embedded simulator, reached in memory on the run's virtual clock.
    /// Empty for other targets; when not, no request may leave for another origin.
    memory: Vec<url::Origin>,
    sim: Option<SimHandle>,
    calibration: Option<crate::sim::calibration::CalibrationHandle>,
}

/// What a simulator says about itself (`GET /sim/state`).
struct SimFacts {
    time_scale: f64,
    vars: VarMap,
}

/// Variables every simulator target offers, embedded or separate: what the simulator answers.
fn facts_vars(stream_ip: &str, ports: (u16, u16), capacity: usize) -> VarMap {
    let mut v = VarMap::new();
    v.insert("stream_ip".into(), serde_json::json!(stream_ip));
    v.insert("port_min".into(), serde_json::json!(ports.0));
    v.insert("port_max".into(), serde_json::json!(ports.1));
    v.insert("capacity".into(), serde_json::json!(capacity));
    v
}

async fn sim_facts(http: &reqwest::Client, sim_url: &str) -> Result<SimFacts, String> {
    let url = format!("{sim_url}/state");
    let unreachable = |e: String| {
        format!("`simulator: true`, but {url} did not answer as a focusqa simulator ({e}); start one with `focusqa sim` or fix base_url")
    };
    let v: serde_json::Value = http
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| unreachable(e.to_string()))?
        .json()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let c = &v["config"];
    let time_scale = c["time_scale"]
        .as_f64()
        .filter(|t| *t > 0.0 && t.is_finite())
        .ok_or_else(|| unreachable("no positive config.time_scale".into()))?;
    let port = |i: usize| c["port_range"][i].as_u64().unwrap_or(0) as u16;
    // A capacity fault in force is what the simulator answers now; the configured one otherwise.
    let capacity = v["faults"]["capacity"]
        .as_u64()
        .or(c["capacity"].as_u64())
        .unwrap_or(0) as usize;
    Ok(SimFacts {
        time_scale,
        vars: facts_vars(
            c["stream_ip"].as_str().unwrap_or_default(),
            (port(0), port(1)),
            capacity,
        ),
    })
}

impl Target {
    /// Wall time to wait for a duration written in a spec (simulated time on a scaled simulator).
    pub fn wall(&self, spec_time: Duration) -> Duration {
        scale_duration(spec_time, self.time_scale)
    }

    /// The simulated time that a measured wall duration stands for.
    pub fn simulated(&self, wall: Duration) -> Duration {
        scale_duration(wall, 1.0 / self.time_scale)
    }

    /// Is a time scale in effect (reports then show simulated time beside wall time)?
    pub fn is_scaled(&self) -> bool {
        self.time_scale != 1.0
    }

    /// Does this target run on the virtual clock of an embedded simulator?
    pub fn is_virtual(&self) -> bool {
        !self.memory.is_empty()
    }

    /// Why a request to `url` may not be sent from this target, if it may not: on the virtual
    /// clock, only the embedded simulator is reachable (a real network answer takes wall time,
    /// which the clock would skip over: a request elsewhere would time out at once, or be
    /// measured as taking no time).
    pub fn refuses(&self, url: &url::Url) -> Option<String> {
        if self.memory.is_empty() || self.memory.contains(&url.origin()) {
            return None;
        }
        Some(format!(
            "`{}` is outside the embedded simulator: the embedded target runs on a virtual clock, which only the simulator inside focusqa follows. \
             Write a path under the base URL ({}), or run this spec on a target that reaches that host (a remote target, or `focusqa sim` with `simulator: true`)",
            crate::results::secrets::redact_url(url.as_str()),
            self.base_url.as_deref().unwrap_or_default()
        ))
    }

    pub fn has(&self, c: Capability) -> bool {
        self.capabilities.contains(&c)
    }

    /// Builds the target; starts the embedded simulator when the target asks for it. `secrets`
    /// is the run's set: the target adds what it finds (its headers' values, `env.*` values its
    /// templates read) and its requests and answers add theirs.
    pub async fn connect(
        name: &str,
        cfg: &TargetConfig,
        config: &Config,
        ov: &TargetOverrides,
        secrets: &crate::results::Secrets,
    ) -> Result<Target, TargetError> {
        let invalid = |message: String| TargetError::Invalid {
            target: name.to_string(),
            message,
        };
        let timeout = match &cfg.timeout {
            Some(d) => d.parse().map_err(invalid)?,
            None => Duration::from_secs(30),
        };
        let mut capabilities = BTreeSet::new();
        let mut sim = None;
        let mut calibration = None;
        let mut kube = None;
        let mut time_scale = cfg.time_scale.unwrap_or(1.0);
        let mut kind = TargetKind::Remote;
        // The embedded simulator's seed, and the origins reached in memory (its own).
        let mut seed = None;
        let mut memory: Vec<(url::Url, crate::sim::serve::Dialer)> = Vec::new();
        let mut sim_vars;
        let base_url;
        if let Some(emb) = &cfg.embedded {
            // Either embedded simulator runs on the run's virtual clock: no scale.
            ignored_time_scale(name, ov.time_scale.or(emb.time_scale));
            time_scale = 1.0;
        }
        if let Some(emb) = cfg
            .embedded
            .as_ref()
            .filter(|e| e.service == Some(crate::sim::Service::Calibration))
        {
            // The calibration job API: no Kubernetes, no stream facts; its base URL is `/api/v1`.
            let cc = crate::sim::calibration::CalibrationConfig {
                time_scale,
                seed: ov.seed.or(emb.seed).unwrap_or(42),
                ..Default::default()
            };
            seed = Some(cc.seed);
            let handle = crate::sim::calibration::start_in_memory(cc).map_err(|source| {
                TargetError::Simulator {
                    target: name.into(),
                    source,
                }
            })?;
            base_url = Some(handle.api_url());
            if let (Ok(u), Some(d)) = (url::Url::parse(&handle.url()), handle.dialer()) {
                memory.push((u, d));
            }
            sim_vars = VarMap::new();
            capabilities.insert(Capability::Simulator);
            calibration = Some(handle);
            kind = TargetKind::Embedded;
        } else if let Some(emb) = &cfg.embedded {
            let defaults = SimConfig::default();
            let sc = SimConfig {
                time_scale,
                capacity: ov.capacity.or(emb.capacity).unwrap_or(defaults.capacity),
                seed: ov.seed.or(emb.seed).unwrap_or(defaults.seed),
                namespace: emb.namespace.clone().unwrap_or(defaults.namespace.clone()),
                ..defaults
            };
            // The simulator's own facts are target variables; configured `vars` override them.
            sim_vars = facts_vars(&sc.stream_ip, sc.port_range, sc.capacity);
            seed = Some(sc.seed);
            let handle =
                crate::sim::start_in_memory(sc).map_err(|source| TargetError::Simulator {
                    target: name.into(),
                    source,
                })?;
            base_url = Some(handle.focus_url());
            if let (Ok(u), Some(d)) = (url::Url::parse(&handle.focus_url()), handle.dialer()) {
                memory.push((u, d));
            }
            kube = Some(
                kube::KubeTarget::for_simulator(&handle)
                    .await
                    .map_err(|message| TargetError::Kube {
                        target: name.into(),
                        message,
                    })?,
            );
            capabilities.insert(Capability::Simulator);
            sim = Some(handle);
            kind = TargetKind::Embedded;
        } else {
            sim_vars = VarMap::new();
            base_url = cfg
                .base_url
                .clone()
                .map(|u| u.trim_end_matches('/').to_string());
            if cfg.simulator {
                capabilities.insert(Capability::Simulator);
                kind = TargetKind::Simulator;
                if let Some(ts) = ov.time_scale {
                    time_scale = ts;
                }
            }
        }
        if let Some(kc) = &cfg.kubernetes {
            kube = Some(
                kube::KubeTarget::from_config(kc, config)
                    .await
                    .map_err(|message| TargetError::Kube {
                        target: name.into(),
                        message: format!(
                            "{message}. Fix the target's `kubernetes:` section (kubeconfig, context, in_cluster), \
                             or remove it to run without Kubernetes (kube specs are then skipped with the reason)"
                        ),
                    })?,
            );
        }
        if base_url.is_some() {
            capabilities.insert(Capability::Http);
        }
        if kube.is_some() {
            capabilities.insert(Capability::Kubernetes);
        }

        // Default headers are templates over the environment (tokens): the values of templated
        // or sensitive headers are secrets (`env.*` values are secrets anyway).
        let scope = Scope::recording(secrets.env_sink());
        let mut headers = Vec::new();
        let secrets = secrets.clone();
        for (k, v) in &cfg.headers {
            let value = scope
                .render_str(v)
                .map_err(|e| invalid(format!("header `{k}`: {e}")))?;
            if crate::template::is_template(v) {
                secrets.add(&value);
            }
            secrets.add_header(k, &value);
            headers.push((k.clone(), value));
        }
        let basic_auth = match &cfg.basic_auth {
            None => None,
            Some(b) => {
                let user = scope
                    .render_str(&b.user)
                    .map_err(|e| invalid(format!("basic_auth.user: {e}")))?;
                let password = scope
                    .render_str(&b.password)
                    .map_err(|e| invalid(format!("basic_auth.password: {e}")))?;
                secrets.add_basic_auth(&user, &password);
                Some((user, password))
            }
        };
        if let Some(u) = &base_url {
            // A password in the base URL (`https://user:pw@host`) is a secret too.
            secrets.add_url(u);
        }
        let http = build_http_client(cfg, config, timeout).map_err(invalid)?;
        let sim_url = if capabilities.contains(&Capability::Simulator) {
            base_url.as_ref().map(|b| format!("{b}/sim"))
        } else {
            None
        };
        // A separately started simulator knows its own clock and facts: ask it, so durations are
        // converted with the scale it really runs at and specs see the same variables as embedded.
        if kind == TargetKind::Simulator {
            if let Some(url) = &sim_url {
                let facts = sim_facts(&http, url).await.map_err(invalid)?;
                if (facts.time_scale - time_scale).abs() > f64::EPSILON * 4.0
                    && cfg.time_scale.is_some()
                {
                    eprintln!(
                        "warning: target `{name}` says time_scale {time_scale}, but the simulator runs at {}; using the simulator's",
                        facts.time_scale
                    );
                }
                time_scale = facts.time_scale;
                sim_vars = facts.vars;
            }
        }
        let info = TargetInfo {
            name: name.to_string(),
            kind: kind.clone(),
            base_url: base_url.as_deref().map(crate::results::secrets::redact_url),
            capabilities: capabilities
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
            time_scale: (kind != TargetKind::Remote).then_some(time_scale),
            kube_namespace: kube.as_ref().map(|k| k.namespace.clone()),
            clock: Some(if kind == TargetKind::Embedded {
                Clock::Virtual
            } else {
                Clock::Wall
            }),
            seed,
        };
        // In memory, every request goes through the lean client (a proxy in the environment
        // has nothing to do with a simulator inside this process).
        let h1 = if memory.is_empty() {
            lean_http1(cfg).then(|| h1::H1Client::new(connect_timeout(timeout)))
        } else {
            let mut c = h1::H1Client::new(connect_timeout(timeout));
            for (u, d) in &memory {
                c = c.with_memory_origin(u, d.clone());
            }
            Some(c)
        };
        let memory = memory.into_iter().map(|(u, _)| u.origin()).collect();
        Ok(Target {
            name: name.to_string(),
            info,
            base_url,
            http,
            h1,
            memory,
            headers,
            base_headers: Default::default(),
            timeout,
            follow_redirects: cfg.follow_redirects.unwrap_or(true),
            max_redirects: cfg.max_redirects.unwrap_or(DEFAULT_MAX_REDIRECTS),
            cookies: cfg.cookies.unwrap_or(true),
            basic_auth,
            max_body: cfg.max_body.map_or(DEFAULT_MAX_BODY, |b| b.0),
            access: crate::spec::Access {
                max_body: Some(cfg.max_body.map_or(DEFAULT_MAX_BODY, |b| b.0)),
                ..config.access()
            },
            capabilities,
            time_scale,
            vars: {
                let mut v = sim_vars;
                v.extend(cfg.vars.clone());
                v
            },
            sim_url,
            kube,
            secrets,
            sim,
            calibration,
        })
    }

    /// The URL of a request to `path` (absolute, or under `base`), remembered by both texts: a
    /// fan-out sends the same few URLs again and again, and building and parsing each was 7 %
    /// of a plain request's CPU. The memory is per thread (the last [`URL_CACHE`] URLs), so
    /// lanes on two cores share no lock.
    /// A templated path (`/job/{{ job_id }}`) is rarely sent twice: `remember: false` parses it
    /// without filling the memory.
    pub fn request_url(
        &self,
        base: Option<&str>,
        path: &str,
        remember: bool,
    ) -> Result<url::Url, String> {
        thread_local! {
            static URLS: std::cell::RefCell<std::collections::VecDeque<(Option<String>, String, url::Url)>> =
                Default::default();
        }
        let remembered = || {
            URLS.with_borrow(|urls| {
                urls.iter()
                    .rev()
                    .find(|(b, p, _)| b.as_deref() == base && p == path)
                    .map(|(.., u)| u.clone())
            })
        };
        let hit = if remember { remembered() } else { None };
        if let Some(u) = hit {
            return Ok(u);
        }
        let text = match base {
            Some(base) if !is_absolute(path) => std::borrow::Cow::Owned(join_url(base, path)),
            _ => std::borrow::Cow::Borrowed(path),
        };
        let u = url::Url::parse(&text).map_err(|e| format!("`{text}` is not a valid URL: {e}"))?;
        if !remember {
            return Ok(u);
        }
        URLS.with_borrow_mut(|urls| {
            if urls.len() >= URL_CACHE {
                urls.pop_front();
            }
            urls.push_back((base.map(str::to_string), path.to_string(), u.clone()));
        });
        Ok(u)
    }

    /// The simulator this target started, if any.
    pub fn simulator(&self) -> Option<&SimHandle> {
        self.sim.as_ref()
    }

    /// Stops what the target started.
    pub async fn shutdown(mut self) {
        if let Some(sim) = self.sim.take() {
            sim.shutdown().await;
        }
        if let Some(c) = self.calibration.take() {
            c.shutdown().await;
        }
    }
}

/// Warns that a time scale was given for an embedded target, where it no longer applies.
fn ignored_time_scale(target: &str, ts: Option<f64>) {
    if let Some(ts) = ts {
        eprintln!(
            "warning: target `{target}`: time_scale {ts} is ignored: the embedded simulator runs on a virtual clock \
             (simulated time passes only while every task waits; a 50 s cleanup costs no wall time). \
             Remove it; for a simulator on the wall clock use `focusqa sim --time-scale` and a `simulator: true` target"
        );
    }
}

/// `d * factor`, saturating instead of panicking on huge or odd values.
/// `path` is a whole URL (`http://…`, `https://…`), not a path under a base URL.
pub fn is_absolute(path: &str) -> bool {
    path.starts_with("http://") || path.starts_with("https://")
}

fn join_url(base: &str, path: &str) -> String {
    match (base.ends_with('/'), path.starts_with('/')) {
        (true, true) => format!("{}{}", base, &path[1..]),
        (false, false) if !path.is_empty() => format!("{base}/{path}"),
        _ => format!("{base}{path}"),
    }
}

fn scale_duration(d: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).unwrap_or(if factor > 0.0 {
        Duration::MAX
    } else {
        Duration::ZERO
    })
}

/// How long a connection may take to open: 10 s, or the request timeout when shorter.
fn connect_timeout(timeout: Duration) -> Duration {
    Duration::from_secs(10).min(timeout)
}

/// Whether plain `http://` requests take the lean HTTP/1.1 client: not when the target wants
/// HTTP/2 from the first byte, nor when the environment names a proxy (reqwest honours
/// `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`; the lean client does not know proxies).
fn lean_http1(cfg: &TargetConfig) -> bool {
    let proxied = ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    !proxied && !matches!(cfg.http2, Some(crate::config::Http2Mode::PriorKnowledge))
}

fn build_http_client(
    cfg: &TargetConfig,
    config: &Config,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(connect_timeout(timeout))
        .pool_max_idle_per_host(256)
        // Redirects are followed by the engine (crate::engine::http), hop by hop: the chain, the
        // cookies set on the way and the per-step setting need it.
        .redirect(reqwest::redirect::Policy::none())
        // Sending again is the engine's, once and said in the step's note (a stream the server
        // refused unprocessed, a kept-alive connection that dropped an idempotent request);
        // reqwest's own retries (up to 2, within a budget) would be silent.
        .retry(reqwest::retry::never())
        .user_agent(USER_AGENT);
    match cfg.http2 {
        Some(crate::config::Http2Mode::PriorKnowledge) => b = b.http2_prior_knowledge(),
        Some(crate::config::Http2Mode::Http1) => b = b.http1_only(),
        None => {}
    }
    if cfg.tls.insecure {
        b = b.danger_accept_invalid_certs(true);
    }
    if let Some(ca) = &cfg.tls.ca_file {
        let path = config.resolve(ca);
        let pem =
            std::fs::read(&path).map_err(|e| format!("tls.ca_file {}: {e}", path.display()))?;
        // A bundle may hold several CAs; a file with none is a mistake worth stopping for.
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("tls.ca_file {}: not a PEM certificate: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "tls.ca_file {}: no `-----BEGIN CERTIFICATE-----` block found",
                path.display()
            ));
        }
        for cert in certs {
            b = b.add_root_certificate(cert);
        }
    }
    b.build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_urls() {
        assert_eq!(
            join_url("http://h/focus-server", "/configure"),
            "http://h/focus-server/configure"
        );
        assert_eq!(
            join_url("http://h/focus-server/", "/configure"),
            "http://h/focus-server/configure"
        );
        assert_eq!(join_url("http://h", "jobs"), "http://h/jobs");
    }

    #[tokio::test]
    async fn request_urls_are_remembered_per_target_and_base() {
        let connect = |name: &'static str, url: &'static str| async move {
            let cfg = TargetConfig {
                base_url: Some(url.into()),
                ..Default::default()
            };
            Target::connect(
                name,
                &cfg,
                &Config::default(),
                &TargetOverrides::default(),
                &crate::results::Secrets::new(),
            )
            .await
            .unwrap()
        };
        let a = connect("a", "http://a.test/focus").await;
        let b = connect("b", "http://b.test").await;
        let url = |t: &Target, base: Option<&str>, path: &str| {
            t.request_url(base, path, true)
                .unwrap()
                .as_str()
                .to_string()
        };
        // The second round is answered from memory: the same answers.
        for _ in 0..2 {
            assert_eq!(
                url(&a, a.base_url.as_deref(), "/jobs"),
                "http://a.test/focus/jobs"
            );
            assert_eq!(
                url(&b, b.base_url.as_deref(), "/jobs"),
                "http://b.test/jobs"
            );
            assert_eq!(
                url(&a, Some("http://sim.test/sim"), "/jobs"),
                "http://sim.test/sim/jobs"
            );
            assert_eq!(
                url(&a, a.base_url.as_deref(), "http://c.test/x"),
                "http://c.test/x"
            );
            assert_eq!(url(&a, None, "https://c.test/y"), "https://c.test/y");
        }
        let once = a
            .request_url(a.base_url.as_deref(), "/job/18-3", false)
            .unwrap();
        assert_eq!(once.as_str(), "http://a.test/focus/job/18-3");
        let err = a.request_url(None, "http://[::1/jobs", true).unwrap_err();
        assert!(
            err.contains("`http://[::1/jobs` is not a valid URL"),
            "{err}"
        );
    }
}
