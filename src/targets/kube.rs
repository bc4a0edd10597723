//! Kubernetes access of a target (kube crate; no kubectl).

use std::sync::Arc;

use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery};
use tokio::sync::OnceCell;

use crate::config::{Config, KubeTargetConfig};
use crate::sim::SimHandle;

/// A connected Kubernetes client and the namespace of the Focus jobs.
#[derive(Clone)]
pub struct KubeTarget {
    pub client: kube::Client,
    pub namespace: String,
    /// Where it points, for reports.
    pub cluster_url: String,
    /// API discovery, done once per run on first use.
    discovery: Arc<OnceCell<Discovery>>,
}

impl KubeTarget {
    fn new(client: kube::Client, namespace: String, cluster_url: String) -> Self {
        KubeTarget {
            client,
            namespace,
            cluster_url,
            discovery: Arc::new(OnceCell::new()),
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
            .map_err(|e| format!("Kubernetes discovery failed at {}: {e}", self.cluster_url))?;
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

    /// The embedded simulator's Kubernetes API.
    pub async fn for_simulator(sim: &SimHandle) -> Result<Self, String> {
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
            kube::Config::incluster().map_err(|e| format!("in-cluster config: {e}"))?
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
