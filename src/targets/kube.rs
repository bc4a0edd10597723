//! Kubernetes access of a target (kube crate; no kubectl).

use std::sync::Arc;

use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery};
use tokio::sync::OnceCell;

use crate::config::{Config, KubeTargetConfig};
use crate::sim::SimHandle;

/// Where Kubernetes mounts a pod's service account.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A pod's own access, as client-go's `rest.InClusterConfig` builds it: the API server from
/// `KUBERNETES_SERVICE_HOST`/`_PORT`, the CA and the token (re-read as it rotates) from the
/// mounted service account. `dir` is configurable so the same code runs outside a pod in tests.
async fn in_cluster(dir: &std::path::Path) -> Result<kube::Config, String> {
    let not_in_pod = "focusqa is not running in a pod (or the pod's service account is not \
                      mounted: check `automountServiceAccountToken`); drop `in_cluster: true` \
                      to use a kubeconfig";
    let env = |name: &str| {
        std::env::var(name).map_err(|_| format!("in_cluster: ${name} is not set: {not_in_pod}"))
    };
    let host = env("KUBERNETES_SERVICE_HOST")?;
    let port: u16 = env("KUBERNETES_SERVICE_PORT")?
        .parse()
        .map_err(|_| "in_cluster: $KUBERNETES_SERVICE_PORT is not a port number".to_string())?;
    let host = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => host,
    };
    let (token, ca) = (dir.join("token"), dir.join("ca.crt"));
    for f in [&token, &ca] {
        if !f.is_file() {
            return Err(format!(
                "in_cluster: {} not found: {not_in_pod}",
                f.display()
            ));
        }
    }
    let path = |p: &std::path::Path| serde_json::Value::String(p.display().to_string());
    // A kubeconfig in memory: kube then reads the CA and keeps the token file fresh itself.
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: in-cluster\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\ncontexts:\n- name: in-cluster\n  context: {{cluster: in-cluster, user: service-account}}\ncurrent-context: in-cluster\nusers:\n- name: service-account\n  user:\n    tokenFile: {token}\n",
        server = serde_json::Value::String(format!("https://{host}:{port}")),
        ca = path(&ca),
        token = path(&token),
    );
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).map_err(|e| format!("in_cluster: {e}"))?;
    kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| format!("in_cluster: {e} (is {} a PEM certificate?)", ca.display()))
}

/// A connected Kubernetes client and the namespace of the Focus jobs.
#[derive(Clone)]
pub struct KubeTarget {
    pub client: kube::Client,
    pub namespace: String,
    /// Where it points, for reports.
    pub cluster_url: String,
    /// API discovery, done once per run on first use.
    discovery: Arc<OnceCell<Discovery>>,
    /// Shared watches that `wait` and `absent` steps read.
    pub watches: super::watch::Watches,
}

impl KubeTarget {
    fn new(client: kube::Client, namespace: String, cluster_url: String) -> Self {
        KubeTarget {
            client,
            namespace,
            cluster_url,
            discovery: Arc::new(OnceCell::new()),
            watches: Default::default(),
        }
    }

    /// Resolves a kind (`Job`, `pods`, `Pod`) and optional `group/version` through discovery.
    pub async fn resolve_kind(
        &self,
        kind: &str,
        api_version: Option<&str>,
    ) -> Result<(ApiResource, ApiCapabilities), String> {
        let disc = self
            .discovery
            .get_or_try_init(|| async { Discovery::new(self.client.clone()).run().await })
            .await
            .map_err(|e| {
                format!(
                    "Kubernetes discovery failed at {}: {}",
                    self.cluster_url,
                    super::error_chain(&e)
                )
            })?;
        if let Some(av) = api_version {
            let (group, version) = match av.split_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (String::new(), av.to_string()),
            };
            let gvk = GroupVersionKind {
                group,
                version,
                kind: kind.to_string(),
            };
            return disc
                .resolve_gvk(&gvk)
                .ok_or_else(|| format!("the cluster serves no kind `{kind}` in `{av}`"));
        }
        let mut found = Vec::new();
        let mut known = Vec::new();
        for g in disc.groups() {
            for (ar, caps) in g.recommended_resources() {
                known.push(ar.kind.clone());
                if ar.kind.eq_ignore_ascii_case(kind) || ar.plural.eq_ignore_ascii_case(kind) {
                    found.push((ar, caps));
                }
            }
        }
        match found.len() {
            0 => {
                known.sort();
                known.dedup();
                Err(format!(
                    "the cluster serves no kind `{kind}`{}",
                    crate::spec::diag::did_you_mean(kind, known.iter().map(String::as_str))
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default()
                ))
            }
            // Prefer the core group when a kind exists in several (Event: v1 and events.k8s.io).
            _ => Ok(found
                .iter()
                .find(|(ar, _)| ar.group.is_empty())
                .cloned()
                .unwrap_or_else(|| found.remove(0))),
        }
    }

    /// The embedded simulator's Kubernetes API: called in-process when the simulator runs in
    /// memory (kube's client takes any service of HTTP requests), else over its socket.
    pub async fn for_simulator(sim: &SimHandle) -> Result<Self, String> {
        if let Some(service) = sim.kube_service() {
            let ns = sim.config().namespace.clone();
            return Ok(KubeTarget::new(
                kube::Client::new(service, ns.clone()),
                ns,
                sim.kube_url(),
            ));
        }
        let url: http::Uri = sim
            .kube_url()
            .parse()
            .map_err(|e| format!("bad simulator URL: {e}"))?;
        let mut cfg = kube::Config::new(url);
        cfg.default_namespace = sim.config().namespace.clone();
        let client = kube::Client::try_from(cfg).map_err(|e| e.to_string())?;
        Ok(KubeTarget::new(
            client,
            sim.config().namespace.clone(),
            sim.kube_url(),
        ))
    }

    /// From the target's `kubernetes:` section, with kubectl's rules by default
    /// (`$KUBECONFIG`, `~/.kube/config`, in-cluster service account).
    pub async fn from_config(kc: &KubeTargetConfig, config: &Config) -> Result<Self, String> {
        let opts = kube::config::KubeConfigOptions {
            context: kc.context.clone(),
            ..Default::default()
        };
        let cfg = if kc.in_cluster {
            let dir = kc
                .service_account_dir
                .as_ref()
                .map(|d| config.resolve(d))
                .unwrap_or_else(|| std::path::PathBuf::from(SERVICE_ACCOUNT_DIR));
            in_cluster(&dir).await?
        } else if let Some(path) = &kc.kubeconfig {
            let path = config.resolve(path);
            let file = kube::config::Kubeconfig::read_from(&path)
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &opts)
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
        } else if kc.context.is_some() {
            kube::Config::from_kubeconfig(&opts)
                .await
                .map_err(|e| format!("kubeconfig: {e}"))?
        } else {
            kube::Config::infer().await.map_err(|e| format!("no Kubernetes configuration found ({e}); set `kubernetes.kubeconfig` or `in_cluster: true`"))?
        };
        let namespace = kc.namespace.clone().unwrap_or_else(|| "focus".to_string());
        let cluster_url = cfg.cluster_url.to_string();
        let mut cfg = cfg;
        cfg.default_namespace = namespace.clone();
        let client = kube::Client::try_from(cfg).map_err(|e| e.to_string())?;
        Ok(KubeTarget::new(client, namespace, cluster_url))
    }
}
