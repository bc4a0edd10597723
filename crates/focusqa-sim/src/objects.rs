//! JSON templates for the Kubernetes objects the simulator creates, shaped like the real
//! API server writes them.

use serde_json::{json, Value};

pub const ANALYZER_APP: &str = "baby-analyzer";
pub const CLEANUP_APP: &str = "focus-cleanup";
pub const GPU_RESOURCE: &str = "nvidia.com/mig-1g.10gb";
pub const CPU_ANNOTATION: &str = "focus.sim/cpu-millicores";
pub const JOB_ID_LABEL: &str = "focus.job-id";
pub const RECORDINGS_PVC: &str = "focus-recordings";

pub struct Meta<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub created: &'a str,
}

fn labels(app: &str, job_id: &str) -> Value {
    json!({"app": app, JOB_ID_LABEL: job_id})
}

fn pod_labels(app: &str, job_id: &str, job_name: &str, job_uid: &str) -> Value {
    json!({
        "app": app,
        "batch.kubernetes.io/controller-uid": job_uid,
        "batch.kubernetes.io/job-name": job_name,
        "controller-uid": job_uid,
        JOB_ID_LABEL: job_id,
        "job-name": job_name,
    })
}

pub struct AnalyzerSpec<'a> {
    pub job_id: &'a str,
    pub port: u16,
}

fn analyzer_container(a: &AnalyzerSpec) -> Value {
    json!({
        "name": "baby-analyzer",
        "image": "focus/baby-analyzer:sim",
        "args": ["--job-id", a.job_id, "--grpc-port", a.port.to_string()],
        "env": [{"name": "JOB_ID", "value": a.job_id}],
        "ports": [{"containerPort": a.port, "name": "grpc-stream", "protocol": "TCP"}],
        "resources": {
            "limits": {"cpu": "2", "memory": "4Gi", GPU_RESOURCE: "1"},
            "requests": {"cpu": "2", "memory": "4Gi", GPU_RESOURCE: "1"}
        },
        "volumeMounts": [{"name": "recordings", "mountPath": "/recordings", "readOnly": true}],
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File"
    })
}

fn analyzer_volumes() -> Value {
    json!([{"name": "recordings", "persistentVolumeClaim": {"claimName": RECORDINGS_PVC, "readOnly": true}}])
}

fn cleanup_container(job_id: &str) -> Value {
    json!({
        "name": "cleanup",
        "image": "focus/cleanup-job:sim",
        "env": [
            {"name": "CPU_USAGE_THRESHOLD", "value": "4"},
            {"name": "ENABLE_CPU_USAGE_CHECK", "value": "true"},
            {"name": "MAX_CPU_USAGE_COUNT", "value": "5"},
            {"name": "JOB_ID", "value": job_id}
        ],
        "resources": {
            "limits": {"cpu": "100m", "memory": "128Mi"},
            "requests": {"cpu": "100m", "memory": "128Mi"}
        },
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File"
    })
}

fn job_object(
    m: &Meta,
    app: &str,
    job_id: &str,
    pod_spec: Value,
    extra_spec: &[(&str, Value)],
) -> Value {
    let mut spec = json!({
        "parallelism": 1,
        "completions": 1,
        "backoffLimit": 0,
        "completionMode": "NonIndexed",
        "manualSelector": false,
        "podReplacementPolicy": "TerminatingOrFailed",
        "suspend": false,
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": m.uid}},
        "template": {
            "metadata": {"labels": pod_labels(app, job_id, m.name, m.uid)},
            "spec": pod_spec
        }
    });
    if let Some(o) = spec.as_object_mut() {
        for (k, v) in extra_spec {
            o.insert((*k).to_string(), v.clone());
        }
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": m.name,
            "namespace": m.namespace,
            "uid": m.uid,
            "resourceVersion": "0",
            "generation": 1,
            "creationTimestamp": m.created,
            "labels": labels(app, job_id)
        },
        "spec": spec,
        "status": {
            "active": 1,
            "ready": 0,
            "startTime": m.created,
            "terminating": 0,
            "uncountedTerminatedPods": {}
        }
    })
}

pub fn analyzer_job(m: &Meta, a: &AnalyzerSpec) -> Value {
    let pod_spec = json!({
        "containers": [analyzer_container(a)],
        "restartPolicy": "Never",
        "volumes": analyzer_volumes(),
        "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler",
        "serviceAccount": "focus-analyzer",
        "serviceAccountName": "focus-analyzer",
        "terminationGracePeriodSeconds": 30
    });
    job_object(m, ANALYZER_APP, a.job_id, pod_spec, &[])
}

pub fn cleanup_job(m: &Meta, job_id: &str) -> Value {
    let pod_spec = json!({
        "containers": [cleanup_container(job_id)],
        "restartPolicy": "Never",
        "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler",
        "serviceAccount": "focus-cleanup",
        "serviceAccountName": "focus-cleanup",
        "terminationGracePeriodSeconds": 30
    });
    job_object(
        m,
        CLEANUP_APP,
        job_id,
        pod_spec,
        &[("ttlSecondsAfterFinished", json!(10))],
    )
}

pub struct PodOwner<'a> {
    pub job_name: &'a str,
    pub job_uid: &'a str,
}

fn pod_object(
    m: &Meta,
    app: &str,
    job_id: &str,
    owner: &PodOwner,
    node: &str,
    host_ip: &str,
    spec_extra: Value,
) -> Value {
    let mut spec = json!({
        "restartPolicy": "Never",
        "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler",
        "nodeName": node,
        "terminationGracePeriodSeconds": 30,
        "preemptionPolicy": "PreemptLowerPriority",
        "priority": 0,
        "enableServiceLinks": true,
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ]
    });
    if let (Some(o), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
        for (k, v) in extra {
            o.insert(k.clone(), v.clone());
        }
    }
    let mut annotations = serde_json::Map::new();
    if app == ANALYZER_APP {
        annotations.insert(CPU_ANNOTATION.into(), json!("0"));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": m.name,
            "generateName": format!("{}-", owner.job_name),
            "namespace": m.namespace,
            "uid": m.uid,
            "resourceVersion": "0",
            "generation": 1,
            "creationTimestamp": m.created,
            // The job controller's: it counts the pod, then removes it (pod_terminated).
            "finalizers": [JOB_TRACKING_FINALIZER],
            "labels": pod_labels(app, job_id, owner.job_name, owner.job_uid),
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": owner.job_name,
                "uid": owner.job_uid,
                "controller": true,
                "blockOwnerDeletion": true
            }]
        },
        "spec": spec,
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "False", "lastProbeTime": null, "lastTransitionTime": m.created},
                {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": m.created},
                {"type": "Ready", "status": "False", "lastProbeTime": null, "lastTransitionTime": m.created, "reason": "ContainersNotReady", "message": "containers with unready status: [container]"},
                {"type": "ContainersReady", "status": "False", "lastProbeTime": null, "lastTransitionTime": m.created, "reason": "ContainersNotReady", "message": "containers with unready status: [container]"},
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": m.created}
            ],
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "startTime": m.created,
            "qosClass": "Guaranteed",
            "containerStatuses": []
        }
    })
}

pub const JOB_TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// What the ServiceAccount admission plugin adds to every pod: `spec.serviceAccount` (the old
/// name of `serviceAccountName`) and the projected token volume, mounted in each container. The
/// volume's suffix is random in a real cluster; here it comes from the pod's uid, so that it
/// draws nothing from the seeded RNG.
fn admit_service_account(pod: &mut Value, uid: &str) {
    let suffix: String = uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(5)
        .collect();
    let volume = format!("kube-api-access-{suffix}");
    let spec = &mut pod["spec"];
    spec["serviceAccount"] = spec["serviceAccountName"].clone();
    let projected = json!({"name": volume, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}}
    ]}});
    match spec["volumes"].as_array_mut() {
        Some(v) => v.push(projected),
        None => spec["volumes"] = json!([projected]),
    }
    if let Some(cs) = spec["containers"].as_array_mut() {
        for c in cs {
            let mount = json!({"name": volume, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true});
            match c["volumeMounts"].as_array_mut() {
                Some(v) => v.push(mount),
                None => c["volumeMounts"] = json!([mount]),
            }
        }
    }
}

pub fn analyzer_pod(
    m: &Meta,
    a: &AnalyzerSpec,
    owner: &PodOwner,
    node: &str,
    host_ip: &str,
) -> Value {
    let extra = json!({
        "containers": [analyzer_container(a)],
        "volumes": analyzer_volumes(),
        "serviceAccountName": "focus-analyzer"
    });
    let mut pod = pod_object(m, ANALYZER_APP, a.job_id, owner, node, host_ip, extra);
    admit_service_account(&mut pod, m.uid);
    set_waiting(&mut pod, "baby-analyzer", "focus/baby-analyzer:sim");
    pod
}

pub fn cleanup_pod(m: &Meta, job_id: &str, owner: &PodOwner, node: &str, host_ip: &str) -> Value {
    let extra = json!({
        "containers": [cleanup_container(job_id)],
        "serviceAccountName": "focus-cleanup"
    });
    let mut pod = pod_object(m, CLEANUP_APP, job_id, owner, node, host_ip, extra);
    admit_service_account(&mut pod, m.uid);
    if let Some(s) = pod.pointer_mut("/status/qosClass") {
        *s = json!("Guaranteed");
    }
    set_waiting(&mut pod, "cleanup", "focus/cleanup-job:sim");
    pod
}

fn fix_condition_messages(pod: &mut Value, container: &str) {
    if let Some(conds) = pod
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for c in conds {
            if c.get("message").is_some() {
                c["message"] = json!(format!("containers with unready status: [{container}]"));
            }
        }
    }
}

fn set_waiting(pod: &mut Value, container: &str, image: &str) {
    fix_condition_messages(pod, container);
    pod["status"]["containerStatuses"] = json!([{
        "name": container,
        "image": image,
        "imageID": "",
        "ready": false,
        "started": false,
        "restartCount": 0,
        "state": {"waiting": {"reason": "ContainerCreating"}},
        "lastState": {}
    }]);
}

fn set_condition(pod: &mut Value, ty: &str, status: &str, at: &str, reason: Option<&str>) {
    if let Some(conds) = pod
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for c in conds.iter_mut() {
            if c["type"] == ty {
                c["status"] = json!(status);
                c["lastTransitionTime"] = json!(at);
                if let Some(o) = c.as_object_mut() {
                    o.remove("message");
                    o.remove("reason");
                    if let Some(r) = reason {
                        o.insert("reason".into(), json!(r));
                    }
                }
            }
        }
    }
}

/// Pending -> Running.
pub fn pod_running(pod: &mut Value, at: &str, pod_ip: &str, container_id: &str) {
    pod["status"]["phase"] = json!("Running");
    pod["status"]["podIP"] = json!(pod_ip);
    pod["status"]["podIPs"] = json!([{"ip": pod_ip}]);
    for ty in ["PodReadyToStartContainers", "Ready", "ContainersReady"] {
        set_condition(pod, ty, "True", at, None);
    }
    if let Some(cs) = pod.pointer_mut("/status/containerStatuses/0") {
        cs["ready"] = json!(true);
        cs["started"] = json!(true);
        cs["containerID"] = json!(format!("containerd://{container_id}"));
        cs["imageID"] = json!(format!(
            "{}@sha256:{}",
            cs["image"].as_str().unwrap_or(""),
            container_id
        ));
        cs["state"] = json!({"running": {"startedAt": at}});
    }
}

/// Container terminated: phase Failed (exit 1, Error) or Succeeded (exit 0, Completed).
pub fn pod_terminated(
    pod: &mut Value,
    started: &str,
    at: &str,
    exit_code: i32,
    container_id: &str,
) {
    let (phase, reason, ready_reason) = if exit_code == 0 {
        ("Succeeded", "Completed", "PodCompleted")
    } else {
        ("Failed", "Error", "PodFailed")
    };
    pod["status"]["phase"] = json!(phase);
    if let Some(m) = pod["metadata"].as_object_mut() {
        m.remove("finalizers");
    }
    for ty in ["Ready", "ContainersReady"] {
        set_condition(pod, ty, "False", at, Some(ready_reason));
    }
    set_condition(pod, "PodReadyToStartContainers", "False", at, None);
    if let Some(cs) = pod.pointer_mut("/status/containerStatuses/0") {
        cs["ready"] = json!(false);
        cs["started"] = json!(false);
        cs["containerID"] = json!(format!("containerd://{container_id}"));
        cs["state"] = json!({"terminated": {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": started,
            "finishedAt": at,
            "containerID": format!("containerd://{container_id}")
        }});
    }
}

pub fn job_ready(job: &mut Value) {
    job["status"]["ready"] = json!(1);
}

pub fn job_failed(job: &mut Value, at: &str) {
    let st = &mut job["status"];
    st["active"] = json!(0);
    st["ready"] = json!(0);
    st["failed"] = json!(1);
    st["conditions"] = json!([
        {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit", "lastProbeTime": at, "lastTransitionTime": at},
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit", "lastProbeTime": at, "lastTransitionTime": at}
    ]);
    if let Some(o) = st.as_object_mut() {
        o.remove("active");
    }
}

pub fn job_complete(job: &mut Value, at: &str) {
    let st = &mut job["status"];
    st["ready"] = json!(0);
    st["succeeded"] = json!(1);
    st["completionTime"] = json!(at);
    st["conditions"] = json!([
        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
         "message": "Reached expected number of succeeded pods", "lastProbeTime": at, "lastTransitionTime": at},
        {"type": "Complete", "status": "True", "reason": "CompletionsReached",
         "message": "Reached expected number of succeeded pods", "lastProbeTime": at, "lastTransitionTime": at}
    ]);
    if let Some(o) = st.as_object_mut() {
        o.remove("active");
    }
}

pub struct EventSpec<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub at: &'a str,
    pub involved_kind: &'a str,
    pub involved_api_version: &'a str,
    pub involved_name: &'a str,
    pub involved_uid: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
    pub warning: bool,
    pub component: &'a str,
    pub host: Option<&'a str>,
}

pub fn event(e: &EventSpec) -> Value {
    let mut source = json!({"component": e.component});
    if let Some(h) = e.host {
        source["host"] = json!(h);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": e.name,
            "namespace": e.namespace,
            "uid": e.uid,
            "resourceVersion": "0",
            "creationTimestamp": e.at
        },
        "involvedObject": {
            "apiVersion": e.involved_api_version,
            "kind": e.involved_kind,
            "name": e.involved_name,
            "namespace": e.namespace,
            "uid": e.involved_uid
        },
        "reason": e.reason,
        "message": e.message,
        "source": source,
        "firstTimestamp": e.at,
        "lastTimestamp": e.at,
        "count": 1,
        "type": if e.warning { "Warning" } else { "Normal" },
        "eventTime": null,
        "reportingComponent": e.component,
        "reportingInstance": e.host.unwrap_or("")
    })
}

pub fn node(name: &str, uid: &str, created: &str, gpus: usize, internal_ip: &str) -> Value {
    let res = json!({
        "cpu": "64",
        "memory": "527958676Ki",
        "ephemeral-storage": "1873933640Ki",
        "pods": "250",
        GPU_RESOURCE: gpus.to_string()
    });
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": uid,
            "resourceVersion": "0",
            "creationTimestamp": created,
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "nvidia.com/mig.config": "all-1g.10gb",
                "node-role.kubernetes.io/gpu": ""
            }
        },
        "spec": {"podCIDR": "10.244.0.0/24"},
        "status": {
            "capacity": res.clone(),
            "allocatable": res,
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                 "message": "kubelet has sufficient memory available", "lastHeartbeatTime": created, "lastTransitionTime": created},
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
                 "message": "kubelet has no disk pressure", "lastHeartbeatTime": created, "lastTransitionTime": created},
                {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID",
                 "message": "kubelet has sufficient PID available", "lastHeartbeatTime": created, "lastTransitionTime": created},
                {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "kubelet is posting ready status", "lastHeartbeatTime": created, "lastTransitionTime": created}
            ],
            "addresses": [
                {"type": "InternalIP", "address": internal_ip},
                {"type": "Hostname", "address": name}
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": uid,
                "containerRuntimeVersion": "containerd://1.7.27",
                "kernelVersion": "6.8.0-sim",
                "kubeProxyVersion": "",
                "kubeletVersion": "v1.33.0",
                "machineID": uid.replace('-', ""),
                "operatingSystem": "linux",
                "osImage": "Ubuntu 24.04 LTS (focusqa simulator)",
                "systemUUID": uid
            }
        }
    })
}

pub fn namespace(name: &str, uid: &str, created: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": uid,
            "resourceVersion": "0",
            "creationTimestamp": created,
            "labels": {"kubernetes.io/metadata.name": name}
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    })
}
