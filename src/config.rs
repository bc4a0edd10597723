//! `focusqa.yaml`: named targets and project defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::spec::diag::{did_you_mean, Diagnostic};
use crate::spec::{Dur, Pos, VarMap};

/// Name of the built-in target that runs the embedded simulator.
pub const EMBEDDED: &str = "embedded";
/// Variables the embedded simulator target always provides (from its own settings).
pub const EMBEDDED_VARS: &[&str] = &["stream_ip", "port_min", "port_max", "capacity"];
/// Default config file name.
pub const CONFIG_FILE: &str = "focusqa.yaml";

/// Response bodies are kept up to this many bytes unless the target says `max_body`.
pub const DEFAULT_MAX_BODY: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "focusqa configuration")]
pub struct Config {
    /// Target used when `--target` is not given (default `embedded`).
    #[serde(default = "default_target")]
    pub default_target: String,
    /// Spec files/directories used when none are given on the command line.
    #[serde(default = "default_specs")]
    pub specs: Vec<PathBuf>,
    /// The scope catalog (coverage and `covers` checks).
    #[serde(default = "default_scope")]
    pub scope: PathBuf,
    /// Where reports go unless `--report-dir` is given.
    #[serde(default = "default_report_dir")]
    pub report_dir: PathBuf,
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
    /// Keep a record of every run in this folder and show the trend in the HTML reports (as
    /// `run --history DIR`, which overrides it; `--no-history` skips it for one run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<PathBuf>,
    /// How many runs the history keeps (default 30; `--history-keep` overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub history_keep: Option<usize>,
    /// Files and folders outside the project (this file's folder) that specs may read with
    /// `include`, `vars_file`, `body_file`, multipart `file` and `schema`; relative to this file.
    /// Anything else outside the project is refused by `validate`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_paths: Vec<PathBuf>,
    /// Directory this config was read from (paths inside are relative to it).
    #[serde(skip)]
    #[schemars(skip)]
    pub base_dir: PathBuf,
}

fn default_target() -> String {
    EMBEDDED.into()
}
fn default_specs() -> Vec<PathBuf> {
    vec![PathBuf::from("specs")]
}
fn default_scope() -> PathBuf {
    PathBuf::from("specs/scope.yaml")
}
fn default_report_dir() -> PathBuf {
    PathBuf::from("reports")
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_target: default_target(),
            specs: default_specs(),
            scope: default_scope(),
            report_dir: default_report_dir(),
            targets: BTreeMap::new(),
            history: None,
            history_keep: None,
            allow_paths: Vec::new(),
            base_dir: PathBuf::from("."),
        }
    }
}

/// One target: where the Focus Server and its cluster are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// What this target is, for readers of the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Base URL of the Focus Server API, e.g. `https://lab-host/focus-server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Run the embedded simulator for this target (the `embedded` target has it by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<EmbeddedConfig>,
    /// The base URL is a focusqa simulator (`focusqa sim`): enables `sim` steps.
    #[serde(default)]
    pub simulator: bool,
    /// Time scale of a simulator target (sleeps and poll intervals are multiplied by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_scale: Option<f64>,
    #[serde(default)]
    pub tls: TlsConfig,
    /// Headers sent with every request; values are templates (`Bearer {{ env.FOCUS_TOKEN }}`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// Default request timeout (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Follow redirects (default true); a step's `follow_redirects` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<bool>,
    /// Most redirects followed for one request (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_redirects: Option<u32>,
    /// A cookie jar per case (default true): cookies set by responses go with later requests of
    /// the same case. A spec's `cookies: false|true` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookies: Option<bool>,
    /// HTTP basic authentication for every request (templates: `{{ env.LAB_PASSWORD }}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<crate::spec::BasicAuth>,
    /// `prior_knowledge`: speak HTTP/2 without negotiation (h2c on plain http); `http1`: HTTP/1.1
    /// only. Default: HTTP/2 when TLS negotiates it, else HTTP/1.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2: Option<Http2Mode>,
    /// Most response body bytes kept (default `16MiB`); the rest is counted and discarded and
    /// the step's response says so. A number of bytes or `64KiB`, `16MiB`, `1GB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<ByteSize>,
    /// Kubernetes access for `kube` steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubeTargetConfig>,
    /// Variables visible to every spec as `target.<name>` and as plain variables
    /// (e.g. the expected `stream_ip`, the `port_min`/`port_max` of the stream port range).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "IndexMap<String, serde_json::Value>")]
    pub vars: VarMap,
}

/// How a target speaks HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Http2Mode {
    /// HTTP/2 from the first byte, without negotiation (also `h2c` on plain http).
    PriorKnowledge,
    /// HTTP/1.1 only.
    Http1,
}

/// A size in bytes: a number, or a text such as `64KiB`, `16MiB`, `1GB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(with = "ByteSizeSchema")]
pub struct ByteSize(pub u64);

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged)]
enum ByteSizeSchema {
    Bytes(u64),
    /// e.g. `64KiB`, `16MiB`, `1GB`
    Text(#[schemars(pattern(r"^\s*\d+(\.\d+)?\s*([kKmMgG]i?[bB]?|[bB])?\s*$"))] String),
}

impl ByteSize {
    /// Parses `1024`, `64KiB`, `16MiB`, `1.5GB`, `10kb`.
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a size (write e.g. `65536`, `64KiB`, `16MiB`)"))?;
        let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "k" | "kb" => 1e3,
            "ki" | "kib" => 1024.0,
            "m" | "mb" => 1e6,
            "mi" | "mib" => 1024.0 * 1024.0,
            "g" | "gb" => 1e9,
            "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
            _ => {
                return Err(format!(
                    "`{s}`: unknown size unit `{unit}` (B, KB, KiB, MB, MiB, GB, GiB)"
                ))
            }
        };
        Ok(ByteSize((n * mult) as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) if n.as_u64().is_some() => {
                Ok(ByteSize(n.as_u64().unwrap_or_default()))
            }
            serde_json::Value::String(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!(
                "{other} is not a size (write e.g. `65536`, `64KiB`, `16MiB`)"
            ))),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Accept any certificate (lab servers with self-signed certificates). Off by default.
    #[serde(default)]
    pub insecure: bool,
    /// PEM file with an extra CA to trust (relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// The simulated system: `focus` (default: Focus Server + Kubernetes) or `calibration`
    /// (the async calibration job API; the target's base URL is then its `/api/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<crate::sim::Service>,
    /// Ignored (with a warning): an embedded simulator runs on a virtual clock. Kept so that
    /// older configs still load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_scale: Option<f64>,
    /// Concurrent job capacity (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<usize>,
    /// Seed for simulated random delays (default 42).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeTargetConfig {
    /// kubeconfig file (default: `$KUBECONFIG` or `~/.kube/config`, as kubectl does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig (default: its current context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Namespace of the Focus jobs (default `focus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Use the in-cluster service account (when focusqa itself runs in a pod): the API server
    /// from `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT`, the token and CA from
    /// `service_account_dir`.
    #[serde(default)]
    pub in_cluster: bool,
    /// Where the pod's service account is mounted (default
    /// `/var/run/secrets/kubernetes.io/serviceaccount`); holds `token` and `ca.crt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_dir: Option<PathBuf>,
}

impl Config {
    /// Reads `path`; a missing default file yields the built-in defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, Vec<Diagnostic>> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(CONFIG_FILE), false),
        };
        if !path.exists() {
            if explicit {
                return Err(vec![Diagnostic::new(
                    path.display().to_string(),
                    Pos::default(),
                    "config file not found",
                )
                .with_hint(Some("check the --config path".into()))]);
            }
            return Ok(Config::default());
        }
        let file = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            vec![Diagnostic::new(
                &file,
                Pos::default(),
                format!("cannot read config: {e}"),
            )]
        })?;
        let mut cfg: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            crate::spec::yaml::from_text(&file, &text)
                .map_err(|d| vec![d])?
                .0
        };
        cfg.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| ".".into());
        let mut diags = Vec::new();
        for (name, t) in &cfg.targets {
            if t.base_url.is_none() && t.embedded.is_none() && name != EMBEDDED {
                diags.push(
                    Diagnostic::new(&file, Pos::default(), format!("target `{name}` has neither `base_url` nor `embedded`"))
                        .with_hint(Some("add `base_url: https://host/focus-server`, or `embedded: {}` for the simulator".into())),
                );
            }
            if let Some(n) = t.max_redirects.filter(|n| *n > crate::spec::MAX_REDIRECTS) {
                diags.push(Diagnostic::new(
                    &file,
                    Pos::default(),
                    format!(
                        "target `{name}`: max_redirects {n} is too many: at most {} (a chain that long is a loop)",
                        crate::spec::MAX_REDIRECTS
                    ),
                ));
            }
            if let Some(ts) = t
                .time_scale
                .or(t.embedded.as_ref().and_then(|e| e.time_scale))
            {
                if !(ts > 0.0 && ts.is_finite()) {
                    diags.push(Diagnostic::new(
                        &file,
                        Pos::default(),
                        format!("target `{name}`: time_scale must be > 0, got {ts}"),
                    ));
                }
            }
        }
        if diags.is_empty() {
            Ok(cfg)
        } else {
            Err(diags)
        }
    }

    /// Resolves a path written in the config (relative to the config's directory).
    /// Where specs may read files: the project (this file's folder) and `allow_paths`
    /// (canonical; an allowed path that does not exist allows nothing), and the largest
    /// `max_body` of the targets for files sent as bodies.
    pub fn access(&self) -> crate::spec::Access {
        let mut roots: Vec<PathBuf> = std::iter::once(self.base_dir.clone())
            .chain(self.allow_paths.iter().map(|p| self.resolve(p)))
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect();
        if roots.is_empty() {
            // The project's folder always exists; unreadable, keep the rule rather than drop it.
            roots.push(self.base_dir.clone());
        }
        let max_body = self
            .targets
            .values()
            .map(|t| t.max_body.map_or(DEFAULT_MAX_BODY, |b| b.0))
            .max()
            .unwrap_or(DEFAULT_MAX_BODY);
        crate::spec::Access {
            roots,
            max_body: Some(max_body),
        }
    }

    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() || self.base_dir == Path::new(".") {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// Variable names some target defines (so `validate` accepts them in templates): every
    /// configured target's `vars` plus what the embedded simulator provides.
    pub fn known_target_vars(&self) -> Vec<String> {
        let mut v: Vec<String> = EMBEDDED_VARS.iter().map(|s| s.to_string()).collect();
        for t in self.targets.values() {
            v.extend(t.vars.keys().cloned());
        }
        v.sort();
        v.dedup();
        v
    }

    /// The named target; `embedded` exists even when not configured.
    pub fn target(&self, name: &str) -> Result<TargetConfig, Diagnostic> {
        if let Some(t) = self.targets.get(name) {
            let mut t = t.clone();
            if name == EMBEDDED && t.base_url.is_none() && t.embedded.is_none() {
                t.embedded = Some(EmbeddedConfig::default());
            }
            return Ok(t);
        }
        if name == EMBEDDED {
            return Ok(TargetConfig {
                description: Some("the embedded Focus Server + Kubernetes simulator".into()),
                embedded: Some(EmbeddedConfig::default()),
                ..Default::default()
            });
        }
        let mut names: Vec<&str> = self.targets.keys().map(String::as_str).collect();
        names.push(EMBEDDED);
        Err(Diagnostic::new(
            CONFIG_FILE,
            Pos::default(),
            format!("unknown target `{name}`"),
        )
        .with_hint(
            did_you_mean(name, names.iter().copied())
                .or_else(|| Some(format!("known targets: {}", names.join(", ")))),
        ))
    }
}
