//! The simulator driving a real cluster (`focusqa sim --kubernetes KUBECONFIG`).
//!
//! The Focus API's timeline stays the simulator's (when a job opens, when the cleanup job's
//! fifth idle reading deletes the analyzer, when the cleanup job finishes), but the Jobs are
//! real: each analyzer and cleanup Job is created in the cluster, where the real job controller
//! makes its pod, the real scheduler places it (memory, CPU, the GPU slice, the recordings
//! claim) and the node agent (kwok in the test tier) runs it. The cluster's state is read back:
//! a job is not `running` before its analyzer pod runs there, a Job that fails there fails the
//! job, and a Job deleted there by someone else is a lost analyzer.
//!
//! It works like a Kubernetes controller, by level rather than by event: each round compares
//! the simulator's Jobs with the cluster's and acts on the difference, so a request that fails
//! (a 429 from API Priority and Fairness, a restarting API server) is simply retried by the next
//! round. Rounds run when either side changes, and at least every second.
//!
//! What the cluster needs, made when missing: the namespace, the service accounts the pods run
//! as (`focus-analyzer`, `focus-cleanup`), and the `focus-recordings` claim, bound to a
//! read-only volume of its own. Only Jobs annotated [`MANAGED_ANNOTATION`] are ever deleted:
//! leftovers of an earlier simulator at start, every Job it made at shutdown.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job as KubeJob;
use k8s_openapi::api::core::v1::{
    Namespace, PersistentVolume, PersistentVolumeClaim, Pod, ServiceAccount,
};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch, Notify};

use crate::objects as obj;
use crate::store::Kind;
use crate::Shared;

/// Marks the Jobs a simulator made; nothing without it is ever deleted.
pub const MANAGED_ANNOTATION: &str = "focusqa.io/simulator";
/// The label kwok's stages (kube-lab/kwok/stages.yaml) end a pod by: "0" Succeeded, else
/// Failed with exit code 1. On a cluster with real nodes nothing reads it and pods end as
/// their containers do.
pub const EXIT_LABEL: &str = "focusqa.kwok/exit";
/// Requests in flight at once in a round (creates, deletes, labels).
const IN_FLIGHT: usize = 16;
/// How long shutdown waits for the cluster to confirm its Jobs are gone.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(20);

/// A connected cluster, prepared for the simulator's Jobs.
pub struct Cluster {
    client: Client,
    namespace: String,
    /// The API server's URL, for messages.
    pub server: String,
}

/// Why a cluster cannot be driven; the message says what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClusterError(String);

fn api_err(what: &str, server: &str, e: kube::Error) -> ClusterError {
    let hint = match &e {
        kube::Error::Api(s) if s.code == 401 => " (the kubeconfig's credentials were refused)",
        kube::Error::Api(s) if s.code == 403 => {
            " (the kubeconfig's user may not do this: the simulator needs to manage namespaces, service accounts, persistent volumes and claims, jobs and pods)"
        }
        kube::Error::Api(_) => "",
        _ => " (is the API server up, and is the kubeconfig's server address right?)",
    };
    ClusterError(format!("{what} at {server}: {e}{hint}"))
}

/// Reads the kubeconfig, checks the API server answers, and makes what the Focus Server's Jobs
/// need in `namespace`; deletes Jobs a simulator left there earlier (their names would clash).
pub async fn connect(kubeconfig: &Path, namespace: &str) -> Result<Cluster, ClusterError> {
    let file = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| {
        ClusterError(format!(
            "cannot read the kubeconfig {}: {e}",
            kubeconfig.display()
        ))
    })?;
    let cfg = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .map_err(|e| {
            ClusterError(format!(
                "the kubeconfig {} has no usable context: {e}",
                kubeconfig.display()
            ))
        })?;
    let server = cfg.cluster_url.to_string();
    let client = Client::try_from(cfg)
        .map_err(|e| ClusterError(format!("cannot make a client for {server}: {e}")))?;
    let c = Cluster {
        client,
        namespace: namespace.to_string(),
        server,
    };
    c.prepare().await?;
    c.clear(Duration::from_secs(30)).await?;
    Ok(c)
}

impl Cluster {
    fn jobs(&self) -> Api<KubeJob> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Creates `value` unless an object of that name is there (409 counts as there).
    async fn ensure<K>(&self, api: Api<K>, value: Value) -> Result<(), ClusterError>
    where
        K: kube::Resource
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let obj: K = serde_json::from_value(value)
            .map_err(|e| ClusterError(format!("internal: a manifest does not parse: {e}")))?;
        let name = obj.meta().name.clone().unwrap_or_default();
        match api.get_opt(&name).await {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(e) => return Err(api_err(&format!("cannot read {name}"), &self.server, e)),
        }
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(api_err(&format!("cannot create {name}"), &self.server, e)),
        }
    }

    /// The namespace, the two service accounts, and the recordings claim bound to a volume.
    async fn prepare(&self) -> Result<(), ClusterError> {
        let ns = &self.namespace;
        self.ensure(
            Api::<Namespace>::all(self.client.clone()),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?;
        for sa in ["focus-analyzer", "focus-cleanup"] {
            self.ensure(
                Api::<ServiceAccount>::namespaced(self.client.clone(), ns),
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}}),
            )
            .await?;
        }
        // The recordings: a read-only volume of its own per namespace, pre-bound to the claim
        // (no storage class, no provisioner needed).
        let pv = format!("focusqa-sim-recordings-{ns}");
        self.ensure(
            Api::<PersistentVolume>::all(self.client.clone()),
            json!({"apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": pv, "annotations": {MANAGED_ANNOTATION: "recordings"}},
                "spec": {"capacity": {"storage": "1Ti"}, "accessModes": ["ReadOnlyMany"],
                    "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                    "hostPath": {"path": "/recordings"},
                    "claimRef": {"namespace": ns, "name": obj::RECORDINGS_PVC}}}),
        )
        .await?;
        self.ensure(
            Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), ns),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": obj::RECORDINGS_PVC, "namespace": ns},
                "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": pv,
                    "resources": {"requests": {"storage": "1Ti"}}}}),
        )
        .await
    }

    /// The names of the Jobs a simulator made here.
    async fn managed_jobs(&self) -> Result<Vec<String>, ClusterError> {
        let list = self
            .jobs()
            .list(&ListParams::default())
            .await
            .map_err(|e| api_err("cannot list Jobs", &self.server, e))?;
        Ok(list
            .items
            .iter()
            .filter(|j| j.annotations().contains_key(MANAGED_ANNOTATION))
            .map(|j| j.name_any())
            .collect())
    }

    /// Deletes every Job a simulator made here, then waits up to `limit` until the API server
    /// confirms they are gone (their names are free again).
    async fn clear(&self, limit: Duration) -> Result<(), ClusterError> {
        let api = self.jobs();
        futures::stream::iter(self.managed_jobs().await?)
            .map(|name| {
                let api = api.clone();
                async move {
                    match api.delete(&name, &DeleteParams::background()).await {
                        Ok(_) => Ok(()),
                        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                        Err(e) => Err(e),
                    }
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await
            .map_err(|e| api_err("cannot delete a Job", &self.server, e))?;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = self.managed_jobs().await?.len();
            if left == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError(format!(
                    "{left} Job(s) made by a simulator are still in namespace {} at {} after {}s",
                    self.namespace,
                    self.server,
                    limit.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The real Job for one of the simulator's: its name, labels and spec, less what the API server
/// sets itself (the selector and the controller's pod labels, which must match the uid it
/// assigns), and marked as the simulator's.
fn manifest(sim: &Value) -> Value {
    let meta = &sim["metadata"];
    let mut spec = sim["spec"].clone();
    if let Some(o) = spec.as_object_mut() {
        o.remove("selector");
        o.remove("manualSelector");
    }
    if let Some(labels) = spec
        .pointer_mut("/template/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        for k in [
            "controller-uid",
            "batch.kubernetes.io/controller-uid",
            "job-name",
            "batch.kubernetes.io/job-name",
        ] {
            labels.remove(k);
        }
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": meta["labels"],
            "annotations": {MANAGED_ANNOTATION: "true"},
        },
        "spec": spec,
    })
}

/// How the simulator's Job ended, as the exit code its pods are to end with.
fn exit_code(sim: &Value) -> Option<&'static str> {
    let conds = sim.pointer("/status/conditions")?.as_array()?;
    conds
        .iter()
        .find_map(|c| match (c["type"].as_str(), c["status"].as_str()) {
            (Some("Failed"), Some("True")) => Some("1"),
            (Some("Complete"), Some("True")) => Some("0"),
            _ => None,
        })
}

struct SimJob {
    name: String,
    exit: Option<&'static str>,
    /// Only for a Job not created yet.
    manifest: Option<Value>,
}

enum Op {
    Create(String, Value),
    Delete(String),
    Label(String, &'static str),
}

enum Done {
    Created(String),
    CreateFailed(String, String),
    Ok,
    Failed(String),
}

/// What the mirror remembers between rounds.
#[derive(Default)]
struct Mirror {
    /// Jobs created (or being created) in the cluster.
    created: HashSet<String>,
    /// Created Jobs the cluster has shown: one that vanishes was deleted there.
    seen: HashSet<String>,
    /// Jobs the mirror deletes itself (not a loss when they vanish).
    deleting: HashSet<String>,
    /// Pods given their exit label.
    labelled: HashSet<String>,
    /// Job ids told to the simulator: running, failed.
    told_running: HashSet<String>,
    told_failed: HashSet<String>,
    /// Create errors already printed (one line each, not one per round).
    reported: HashSet<String>,
}

fn job_id(labels: &std::collections::BTreeMap<String, String>) -> Option<&String> {
    labels.get(obj::JOB_ID_LABEL)
}

impl Mirror {
    async fn round(
        &mut self,
        cluster: &Cluster,
        shared: &Shared,
        jobs: &Store<KubeJob>,
        pods: &Store<Pod>,
    ) {
        let ns = cluster.namespace.clone();
        let created = &self.created;
        let mut sim: Vec<SimJob> = shared.with(|st, _| {
            st.store
                .list(Kind::Job, Some(&ns))
                .into_iter()
                .map(|j| {
                    let name = j["metadata"]["name"].as_str().unwrap_or("").to_string();
                    let manifest = (!created.contains(&name)).then(|| manifest(j));
                    SimJob {
                        name,
                        exit: exit_code(j),
                        manifest,
                    }
                })
                .collect()
        });
        let real: HashMap<String, Arc<KubeJob>> = jobs
            .state()
            .into_iter()
            .filter(|j| j.annotations().contains_key(MANAGED_ANNOTATION))
            .map(|j| (j.name_any(), j))
            .collect();

        // Jobs deleted in the cluster by someone else: the simulator deletes them too (an
        // analyzer lost while its job is open fails the job).
        let sim_names: HashSet<&str> = sim.iter().map(|j| j.name.as_str()).collect();
        let mut lost = Vec::new();
        for name in self.seen.iter() {
            if !real.contains_key(name)
                && sim_names.contains(name.as_str())
                && !self.deleting.contains(name)
            {
                lost.push(name.clone());
            }
        }
        self.seen.retain(|n| real.contains_key(n));
        self.deleting.retain(|n| real.contains_key(n));
        for name in real.keys() {
            if self.created.contains(name) {
                self.seen.insert(name.clone());
            }
        }
        if !lost.is_empty() {
            shared.with(|st, now| {
                for name in &lost {
                    st.kube_delete(Kind::Job, &ns, name, Some("Background"), now);
                }
            });
            sim.retain(|j| !lost.contains(&j.name));
            for name in &lost {
                self.created.remove(name);
            }
        }

        let mut ops = Vec::new();
        let sim_names: HashSet<&str> = sim.iter().map(|j| j.name.as_str()).collect();
        for name in real.keys() {
            if !sim_names.contains(name.as_str()) && self.deleting.insert(name.clone()) {
                ops.push(Op::Delete(name.clone()));
            }
        }
        for j in &mut sim {
            if let Some(m) = j.manifest.take() {
                self.created.insert(j.name.clone());
                ops.push(Op::Create(j.name.clone(), m));
            }
        }
        let ends: HashMap<&str, &'static str> = sim
            .iter()
            .filter_map(|j| j.exit.map(|e| (j.name.as_str(), e)))
            .collect();
        let mut running = Vec::new();
        let mut pod_names = HashSet::new();
        for p in pods.state() {
            let labels = p.labels();
            let name = p.name_any();
            pod_names.insert(name.clone());
            let owner = labels.get("job-name").map(String::as_str).unwrap_or("");
            if let Some(exit) = ends.get(owner) {
                if !labels.contains_key(EXIT_LABEL)
                    && p.metadata.deletion_timestamp.is_none()
                    && self.labelled.insert(name.clone())
                {
                    ops.push(Op::Label(name.clone(), exit));
                }
            }
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            if labels.get("app").map(String::as_str) == Some(obj::ANALYZER_APP)
                && phase == Some("Running")
            {
                if let Some(id) = job_id(labels) {
                    if self.told_running.insert(id.clone()) {
                        running.push(id.clone());
                    }
                }
            }
        }
        self.labelled.retain(|n| pod_names.contains(n));
        let mut failed = Vec::new();
        for j in real.values() {
            let labels = j.labels();
            let is_failed = j
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Failed" && c.status == "True"));
            if is_failed && labels.get("app").map(String::as_str) == Some(obj::ANALYZER_APP) {
                if let Some(id) = job_id(labels) {
                    if self.told_failed.insert(id.clone()) {
                        failed.push(id.clone());
                    }
                }
            }
        }
        if !running.is_empty() || !failed.is_empty() {
            shared.with(|st, now| {
                for id in &running {
                    st.cluster_pod_running(id);
                }
                for id in &failed {
                    st.cluster_job_failed(id, now);
                }
            });
        }

        let (japi, papi) = (cluster.jobs(), cluster.pods());
        let done: Vec<Done> = futures::stream::iter(ops)
            .map(|op| {
                let (japi, papi) = (japi.clone(), papi.clone());
                async move { apply(op, &japi, &papi).await }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        for d in done {
            match d {
                Done::Created(name) => {
                    self.reported.remove(&name);
                }
                Done::CreateFailed(name, why) => {
                    // Retried next round.
                    self.created.remove(&name);
                    if self.reported.insert(name.clone()) {
                        eprintln!(
                            "focusqa sim: cannot create Job {name} in {}: {why} (retrying)",
                            cluster.server
                        );
                    }
                }
                Done::Ok => {}
                Done::Failed(what) => {
                    // A delete or label that failed: forget it, the next round tries again.
                    self.deleting.remove(&what);
                    self.labelled.remove(&what);
                }
            }
        }
    }
}

async fn apply(op: Op, jobs: &Api<KubeJob>, pods: &Api<Pod>) -> Done {
    match op {
        Op::Create(name, m) => {
            let job: KubeJob = match serde_json::from_value(m) {
                Ok(j) => j,
                Err(e) => return Done::CreateFailed(name, format!("internal: {e}")),
            };
            match jobs.create(&PostParams::default(), &job).await {
                Ok(_) => Done::Created(name),
                Err(kube::Error::Api(s)) if s.code == 409 => Done::Created(name),
                Err(e) => Done::CreateFailed(name, e.to_string()),
            }
        }
        Op::Delete(name) => match jobs.delete(&name, &DeleteParams::background()).await {
            Ok(_) => Done::Ok,
            Err(kube::Error::Api(s)) if s.code == 404 => Done::Ok,
            Err(_) => Done::Failed(name),
        },
        Op::Label(pod, exit) => {
            let patch = json!({"metadata": {"labels": {EXIT_LABEL: exit}}});
            match pods
                .patch(&pod, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => Done::Ok,
                Err(kube::Error::Api(s)) if s.code == 404 => Done::Ok,
                Err(_) => Done::Failed(pod),
            }
        }
    }
}

/// A reflector of `api`'s objects carrying the job-id label; pokes `changed` on every event.
fn watch_into<K>(api: Api<K>, changed: Arc<Notify>) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let cfg = watcher::Config::default().labels(obj::JOB_ID_LABEL);
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(reflector::reflector(
            writer,
            watcher(api, cfg).default_backoff()
        ));
        while stream.next().await.is_some() {
            changed.notify_one();
        }
    });
    (reader, task)
}

/// Keeps the cluster in step with the simulator until shutdown, then deletes every Job it made.
pub(crate) async fn run(
    cluster: Cluster,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let changed = Arc::new(Notify::new());
    let (jobs, jobs_task) = watch_into(cluster.jobs(), changed.clone());
    let (pods, pods_task) = watch_into(cluster.pods(), changed.clone());
    let mut sim_changes = shared.with(|st, _| st.store.subscribe());
    let ready = async {
        let _ = jobs.wait_until_ready().await;
        let _ = pods.wait_until_ready().await;
    };
    let mut mirror = Mirror::default();
    let started = tokio::select! {
        _ = ready => true,
        _ = shutdown.changed() => false,
    };
    if started {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            mirror.round(&cluster, &shared, &jobs, &pods).await;
            tokio::select! {
                _ = shutdown.changed() => break,
                r = sim_changes.recv() => {
                    if matches!(r, Err(broadcast::error::RecvError::Closed)) {
                        break;
                    }
                }
                _ = changed.notified() => {}
                _ = tick.tick() => {}
            }
            if *shutdown.borrow() {
                break;
            }
            // Let a burst (200 jobs opened at once) gather into one round.
            tokio::time::sleep(Duration::from_millis(20)).await;
            while sim_changes.try_recv().is_ok() {}
        }
    }
    jobs_task.abort();
    pods_task.abort();
    // Nothing left behind: every Job this simulator made goes with it.
    if let Err(e) = cluster.clear(SHUTDOWN_WAIT).await {
        eprintln!("focusqa sim: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_leaves_to_the_api_server_what_it_sets_itself() {
        let sim = obj::analyzer_job(
            &obj::Meta {
                name: "baby-analyzer-18-1",
                namespace: "focus",
                uid: "u-1",
                created: "2026-01-01T00:00:00Z",
            },
            &obj::AnalyzerSpec {
                job_id: "18-1",
                port: 50051,
            },
        );
        let m = manifest(&sim);
        assert_eq!(m["metadata"]["annotations"][MANAGED_ANNOTATION], "true");
        assert!(m["metadata"].get("uid").is_none() && m.get("status").is_none());
        assert!(m["spec"].get("selector").is_none());
        let labels = m["spec"]["template"]["metadata"]["labels"]
            .as_object()
            .unwrap();
        assert_eq!(
            labels.keys().collect::<Vec<_>>(),
            ["app", obj::JOB_ID_LABEL],
            "only the simulator's own labels: the controller adds its uid and name"
        );
        // Parses as a Job (what the create sends).
        let job: KubeJob = serde_json::from_value(m).unwrap();
        let c = &job.spec.unwrap().template.spec.unwrap().containers[0];
        assert_eq!(
            c.resources.as_ref().unwrap().limits.as_ref().unwrap()[obj::GPU_RESOURCE].0,
            "1"
        );
    }

    #[test]
    fn a_finished_job_names_the_exit_its_pods_end_with() {
        let mut j = json!({"status": {}});
        assert_eq!(exit_code(&j), None);
        obj::job_failed(&mut j, "2026-01-01T00:00:00Z");
        assert_eq!(exit_code(&j), Some("1"));
        let mut j = json!({"status": {}});
        obj::job_complete(&mut j, "2026-01-01T00:00:00Z");
        assert_eq!(exit_code(&j), Some("0"));
    }
}
