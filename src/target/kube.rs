//! Kubernetes access of a target (kube crate; no kubectl).

use crate::config::{Config, KubeTargetConfig};
use crate::sim::SimHandle;

/// A connected Kubernetes client and the namespace of the Focus jobs.
#[derive(Clone)]
pub struct KubeTarget {
    pub client: kube::Client,
    pub namespace: String,
    /// Where it points, for reports.
    pub cluster_url: String,
}

impl KubeTarget {
    /// The embedded simulator's Kubernetes API.
    pub async fn for_simulator(sim: &SimHandle) -> Result<Self, String> {
        let url: http::Uri = sim.kube_url().parse().map_err(|e| format!("bad simulator URL: {e}"))?;
        let mut cfg = kube::Config::new(url);
        cfg.default_namespace = sim.config().namespace.clone();
        let client = kube::Client::try_from(cfg).map_err(|e| e.to_string())?;
        Ok(KubeTarget { client, namespace: sim.config().namespace.clone(), cluster_url: sim.kube_url() })
    }

    /// From the target's `kubernetes:` section, with kubectl's rules by default
    /// (`$KUBECONFIG`, `~/.kube/config`, in-cluster service account).
    pub async fn from_config(kc: &KubeTargetConfig, config: &Config) -> Result<Self, String> {
        let opts = kube::config::KubeConfigOptions { context: kc.context.clone(), ..Default::default() };
        let cfg = if kc.in_cluster {
            kube::Config::incluster().map_err(|e| format!("in-cluster config: {e}"))?
        } else if let Some(path) = &kc.kubeconfig {
            let path = config.resolve(path);
            let file = kube::config::Kubeconfig::read_from(&path).map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &opts).await.map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
        } else if kc.context.is_some() {
            kube::Config::from_kubeconfig(&opts).await.map_err(|e| format!("kubeconfig: {e}"))?
        } else {
            kube::Config::infer().await.map_err(|e| format!("no Kubernetes configuration found ({e}); set `kubernetes.kubeconfig` or `in_cluster: true`"))?
        };
        let namespace = kc.namespace.clone().unwrap_or_else(|| "focus".to_string());
        let cluster_url = cfg.cluster_url.to_string();
        let mut cfg = cfg;
        cfg.default_namespace = namespace.clone();
        let client = kube::Client::try_from(cfg).map_err(|e| e.to_string())?;
        Ok(KubeTarget { client, namespace, cluster_url })
    }
}
