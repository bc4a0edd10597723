//! Kubernetes access of a target (kube crate; no kubectl).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

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
            .get_or_try_init(|| async {
                // Aggregated discovery (Kubernetes 1.26+): 2 requests, not one per API group
                // version (about 25 on v1.37), which a throttling API server answers one 429 at
                // a time. Servers without it (the simulator) get the classic walk.
                match Discovery::new(self.client.clone()).run_aggregated().await {
                    Ok(d) => Ok(d),
                    Err(_) => Discovery::new(self.client.clone()).run().await,
                }
            })
            .await
            .map_err(|e| match &e {
                kube::Error::Api(s) => {
                    refusal(s, &format!("API discovery at {}", self.cluster_url))
                }
                _ => format!(
                    "Kubernetes discovery failed at {}: {}",
                    self.cluster_url,
                    super::error_chain(&e)
                ),
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
        let client = client(cfg)?;
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
        Ok(KubeTarget::new(client(cfg)?, namespace, cluster_url))
    }
}

/// A client whose requests wait out the API server's 429s (and 503/504) within a bound:
/// [`Throttled`] instead of kube's own retry.
fn client(mut cfg: kube::Config) -> Result<kube::Client, String> {
    cfg.default_retry = false;
    let builder = kube::client::ClientBuilder::try_from(cfg).map_err(|e| e.to_string())?;
    // `Retry` clones the service it wraps for each attempt; a buffer makes kube's stack cloneable.
    Ok(builder
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&tower::retry::RetryLayer::new(Throttled::default()))
        .build())
}

/// How long one request keeps retrying a 429/503/504 before its error is the step's.
pub const RETRY_BUDGET: Duration = Duration::from_secs(60);
/// A Retry-After above this is taken as this (API Priority and Fairness raises its Retry-After
/// to at most 32 s while it keeps rejecting; a larger one would outlast the budget).
const RETRY_AFTER_CAP: Duration = Duration::from_secs(32);
const MAX_RETRIES: u32 = 30;

/// The retry of one request. kube's own policy (15 retries, exactly the Retry-After, no bound
/// on the total) took 6.5 minutes for a fan-out of 40 lists at a real API server's APF
/// priority level of one seat: every client came back in the same instant, was rejected again,
/// and APF doubled its Retry-After each round. Here each retry waits the Retry-After plus up to
/// half as much again at random (the burst spreads over a window instead of colliding at its
/// start), and gives up after [`RETRY_BUDGET`].
#[derive(Clone, Default)]
struct Throttled {
    first: Option<Instant>,
    retries: u32,
}

impl Throttled {
    /// The wait before the next attempt after `status` with `retry_after` (seconds), or `None`
    /// when it is not retried (another status, or the budget is spent).
    fn next_wait(
        &mut self,
        status: http::StatusCode,
        retry_after: Option<u64>,
    ) -> Option<Duration> {
        use http::StatusCode as S;
        if !matches!(
            status,
            S::TOO_MANY_REQUESTS | S::SERVICE_UNAVAILABLE | S::GATEWAY_TIMEOUT
        ) || self.retries >= MAX_RETRIES
        {
            return None;
        }
        let first = *self.first.get_or_insert_with(Instant::now);
        let base = match retry_after {
            Some(s) => Duration::from_secs(s).min(RETRY_AFTER_CAP),
            // no Retry-After: 100 ms, doubling to 4 s
            None => Duration::from_millis(100 << self.retries.min(5)),
        };
        let wait = base.mul_f64(1.0 + rand::random::<f64>() / 2.0);
        if first.elapsed() + wait > RETRY_BUDGET {
            return None;
        }
        self.retries += 1;
        Some(wait)
    }
}

impl<B> tower::retry::Policy<http::Request<kube::client::Body>, http::Response<B>, tower::BoxError>
    for Throttled
{
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _req: &mut http::Request<kube::client::Body>,
        result: &mut Result<http::Response<B>, tower::BoxError>,
    ) -> Option<Self::Future> {
        let res = result.as_ref().ok()?;
        let retry_after = res
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        self.next_wait(res.status(), retry_after)
            .map(tokio::time::sleep)
    }

    fn clone_request(
        &mut self,
        req: &http::Request<kube::client::Body>,
    ) -> Option<http::Request<kube::client::Body>> {
        let mut out = http::Request::new(req.body().try_clone()?);
        *out.method_mut() = req.method().clone();
        *out.uri_mut() = req.uri().clone();
        *out.version_mut() = req.version();
        *out.headers_mut() = req.headers().clone();
        *out.extensions_mut() = req.extensions().clone();
        Some(out)
    }
}

/// The API server's refusal of `what` (`list Pod with labels ...`), with what to do about it.
pub fn refusal(s: &kube::core::Status, what: &str) -> String {
    // A plain-text body (APF's 429) comes back as a Status whose reason is kube's parse note.
    let reason = match s.reason.as_str() {
        "" | "Failed to parse error data" => http::StatusCode::from_u16(s.code)
            .ok()
            .and_then(|c| c.canonical_reason())
            .unwrap_or("")
            .to_string(),
        r => r.to_string(),
    };
    let message = s.message.trim();
    let hint = match s.code {
        401 | 403 if message.contains("system:anonymous") => " (the API server did not accept focusqa's credentials and took it for an anonymous user: check the token or client certificate of the kubeconfig or service account)".to_string(),
        403 => " (focusqa's identity lacks this permission: add the verb and resource to its Role, as deploy/rbac.yaml does, or bind it to a role that has them)".to_string(),
        429 => format!(
            " (the API server kept throttling focusqa through {}s of retries that honored its Retry-After: API Priority and Fairness gives focusqa's identity too little concurrency for this fan-out; lower the fan-out or match focusqa's user with a FlowSchema of a larger priority level)",
            RETRY_BUDGET.as_secs()
        ),
        _ => String::new(),
    };
    format!(
        "Kubernetes API refused {what}: {} {reason}: {message}{hint}",
        s.code
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode as S;

    #[tokio::test(start_paused = true)]
    async fn a_throttled_request_waits_out_retry_after_with_jitter_and_gives_up_in_budget() {
        let mut p = Throttled::default();
        assert_eq!(p.next_wait(S::NOT_FOUND, None), None, "only 429/503/504");
        assert_eq!(p.next_wait(S::FORBIDDEN, Some(1)), None);
        let w = p.next_wait(S::TOO_MANY_REQUESTS, Some(1)).unwrap();
        assert!(
            w >= Duration::from_secs(1) && w < Duration::from_millis(1500),
            "{w:?}"
        );
        // an absurd Retry-After is capped
        let w = p.next_wait(S::SERVICE_UNAVAILABLE, Some(3600)).unwrap();
        assert!(w >= RETRY_AFTER_CAP && w < RETRY_AFTER_CAP * 2, "{w:?}");
        // a persistent 429: retried until the budget is spent, then the 429 is the answer
        let mut total = Duration::ZERO;
        let mut p = Throttled::default();
        let w = p.next_wait(S::TOO_MANY_REQUESTS, None).unwrap();
        assert!(
            w >= Duration::from_millis(100) && w < Duration::from_millis(150),
            "{w:?}"
        );
        while let Some(w) = p.next_wait(S::TOO_MANY_REQUESTS, Some(5)) {
            tokio::time::advance(w).await;
            total += w;
        }
        assert!(
            total <= RETRY_BUDGET && total > RETRY_BUDGET / 2,
            "{total:?}"
        );
    }

    #[test]
    fn refusals_name_the_status_and_what_to_do() {
        let forbidden = kube::core::Status::failure(
            r#"pods is forbidden: User "system:serviceaccount:focus:focusqa-runner" cannot list resource "pods" in API group "" in the namespace "focus""#,
            "Forbidden",
        )
        .with_code(403);
        let m = refusal(&forbidden, "list Pod with labels app=x");
        assert!(m.starts_with("Kubernetes API refused list Pod with labels app=x: 403 Forbidden: pods is forbidden"), "{m}");
        assert!(
            m.contains("cannot list resource \"pods\"") && m.contains("Role"),
            "{m}"
        );
        let throttled = kube::core::Status::failure(
            "Too many requests, please try again later.\n",
            "Failed to parse error data",
        )
        .with_code(429);
        let m = refusal(&throttled, "list ConfigMap");
        assert!(m.starts_with("Kubernetes API refused list ConfigMap: 429 Too Many Requests: Too many requests, please try again later. (the API server kept throttling"), "{m}");
    }
}
