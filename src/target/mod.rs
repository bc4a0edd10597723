//! Targets: where specs run. A target bundles the HTTP client for the Focus Server,
//! optional Kubernetes access, its capabilities, and (for `embedded`) the simulator it started.

pub mod kube;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::config::{Config, TargetConfig, DEFAULT_EMBEDDED_TIME_SCALE};
use crate::results::TargetInfo;
use crate::sim::{SimConfig, SimHandle};
use crate::spec::{Capability, VarMap};
use crate::template::Scope;

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
    /// Default headers, rendered once (values may come from the environment).
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
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
    sim: Option<SimHandle>,
}

impl Target {
    pub fn has(&self, c: Capability) -> bool {
        self.capabilities.contains(&c)
    }

    /// Builds the target; starts the embedded simulator when the target asks for it.
    pub async fn connect(
        name: &str,
        cfg: &TargetConfig,
        config: &Config,
        ov: &TargetOverrides,
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
        let mut kube = None;
        let mut time_scale = cfg.time_scale.unwrap_or(1.0);
        let mut kind = "remote";
        let mut sim_vars = VarMap::new();
        let base_url;
        if let Some(emb) = &cfg.embedded {
            time_scale = ov
                .time_scale
                .or(emb.time_scale)
                .unwrap_or(DEFAULT_EMBEDDED_TIME_SCALE);
            let defaults = SimConfig::default();
            let sc = SimConfig {
                time_scale,
                capacity: ov.capacity.or(emb.capacity).unwrap_or(defaults.capacity),
                seed: ov.seed.or(emb.seed).unwrap_or(defaults.seed),
                namespace: emb.namespace.clone().unwrap_or(defaults.namespace.clone()),
                ..defaults
            };
            // The simulator's own facts are target variables; configured `vars` override them.
            sim_vars.insert("stream_ip".into(), serde_json::json!(sc.stream_ip));
            sim_vars.insert("port_min".into(), serde_json::json!(sc.port_range.0));
            sim_vars.insert("port_max".into(), serde_json::json!(sc.port_range.1));
            sim_vars.insert("capacity".into(), serde_json::json!(sc.capacity));
            let handle =
                crate::sim::start(sc, 0, 0)
                    .await
                    .map_err(|source| TargetError::Simulator {
                        target: name.into(),
                        source,
                    })?;
            base_url = Some(handle.focus_url());
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
            kind = "embedded";
        } else {
            base_url = cfg
                .base_url
                .clone()
                .map(|u| u.trim_end_matches('/').to_string());
            if cfg.simulator {
                capabilities.insert(Capability::Simulator);
                kind = "simulator";
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
        let scope = Scope::default();
        let mut headers = Vec::new();
        let secrets = crate::results::Secrets::new();
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
        let info = TargetInfo {
            name: name.to_string(),
            kind: kind.into(),
            base_url: base_url.as_deref().map(crate::results::secrets::redact_url),
            capabilities: capabilities
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
            time_scale: (kind != "remote").then_some(time_scale),
            kube_namespace: kube.as_ref().map(|k| k.namespace.clone()),
        };
        Ok(Target {
            name: name.to_string(),
            info,
            base_url,
            http,
            headers,
            timeout,
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
        })
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
    }
}

fn build_http_client(
    cfg: &TargetConfig,
    config: &Config,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .pool_max_idle_per_host(256)
        .user_agent(concat!("focusqa/", env!("CARGO_PKG_VERSION")));
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
