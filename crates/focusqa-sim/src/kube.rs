//! Kubernetes API server subset (plain HTTP, no auth): discovery (also aggregated), list / get /
//! delete / deletecollection / watch for batch/v1 Jobs and v1 Pods, Nodes, Events, Namespaces,
//! label and field selectors, server-side Table output for kubectl, and pod logs.

use super::objects::CPU_ANNOTATION;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{Change, Kind};
use super::Shared;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;

const VERBS: [&str; 5] = ["delete", "deletecollection", "get", "list", "watch"];
const AGGREGATED_CT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const GIT_VERSION: &str = "v1.33.0-focusqa-sim";

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(dispatch).with_state(shared)
}

/// The Kubernetes API of a simulator that drives a real cluster: every request is told, as a
/// `Status` 503, to ask that cluster's API server instead (its objects are not here).
pub fn driving_a_cluster(server: &str) -> Router {
    let message = format!(
        "this focusqa simulator drives a real cluster (focusqa sim --kubernetes): its Jobs and Pods are at {server}; use that cluster's kubeconfig"
    );
    Router::new().fallback(move || {
        let message = message.clone();
        async move { status(503, "ServiceUnavailable", &message, None) }
    })
}

/// What a request asks of the API server, for the request counts in `/sim/state`.
fn verb_of(method: &Method, uri: &Uri) -> &'static str {
    let segs: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segs.as_slice() {
        ["api", "v1", rest @ ..] | ["apis", "batch", "v1", rest @ ..] if !rest.is_empty() => rest,
        _ => return "discovery",
    };
    let watch_query = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    match (method, parse_target(rest)) {
        (&Method::DELETE, Some((Target::List { .. }, _))) => "deletecollection",
        (&Method::DELETE, _) => "delete",
        (_, Some((_, true))) => "watch",
        (_, Some((Target::List { .. }, _))) if watch_query => "watch",
        (_, Some((Target::List { .. }, _))) => "list",
        (_, Some((Target::Log { .. }, _))) => "log",
        (_, Some((Target::Object { .. }, _))) => "get",
        (_, None) => "other",
    }
}

/// In front of every Kubernetes API request: counts it, checks the bearer token when one is
/// required (401 as the API server answers), and answers 429 + `Retry-After` while a
/// `kube_throttle` fault lasts.
pub async fn gate(
    State(shared): State<Arc<Shared>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let verb = verb_of(req.method(), req.uri());
    let bearer: Option<String> = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let verdict = shared.with(|st, now| {
        let authorized = match &st.cfg.kube_token {
            None => true,
            Some(t) => bearer.as_deref() == Some(t.as_str()),
        };
        if !authorized {
            return Err(None);
        }
        let faults = &mut st.faults;
        match st.kube_api.admit(verb, faults, now) {
            Some(after) => Err(Some(after)),
            None => {
                let secs = st.kube_latency();
                Ok(st.clock.scaled(secs))
            }
        }
    });
    match verdict {
        Ok(latency) => {
            // The modelled time an API server takes to answer (seeded, scaled).
            tokio::time::sleep(latency).await;
            next.run(req).await
        }
        Err(None) => status(401, "Unauthorized", "Unauthorized", None),
        Err(Some(after)) => {
            let mut r = status(
                429,
                "TooManyRequests",
                "the simulator is throttling Kubernetes API requests (fault kube_throttle)",
                Some(json!({"retryAfterSeconds": after})),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(after));
            r
        }
    }
}

fn json_response(code: u16, body: &Value) -> Response {
    json_response_ct(code, body, "application/json")
}

fn json_response_ct(code: u16, body: &Value, ct: &'static str) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, ct)], bytes).into_response()
}

/// A `Status` failure as the API server writes it.
fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Response {
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    json_response(code, &s)
}

fn not_found_path() -> Response {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

fn not_found(kind: Kind, name: &str) -> Response {
    let plural = kind.plural();
    let msg = if kind.group().is_empty() {
        format!("{plural} \"{name}\" not found")
    } else {
        format!("{plural}.{} \"{name}\" not found", kind.group())
    };
    let mut d = json!({"name": name, "kind": plural});
    if !kind.group().is_empty() {
        d["group"] = json!(kind.group());
    }
    status(404, "NotFound", &msg, Some(d))
}

/// A `Status` failure for a status code (for [`super::serve::read_body`]).
pub fn error_response(code: u16, msg: &str) -> Response {
    let reason = match code {
        400 => "BadRequest",
        408 => "Timeout",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        _ => "Unknown",
    };
    status(code, reason, msg, None)
}

fn bad_request(msg: &str) -> Response {
    status(400, "BadRequest", msg, None)
}

// ------------------------------------------------------------------ discovery

fn resource_entry(k: Kind) -> Value {
    json!({
        "name": k.plural(),
        "singularName": k.singular(),
        "namespaced": k.namespaced(),
        "kind": k.kind(),
        "verbs": VERBS,
        "shortNames": k.short_names(),
        "categories": if matches!(k, Kind::Pod | Kind::Job) { json!(["all"]) } else { json!([]) },
    })
}

fn core_resources() -> Value {
    let mut res: Vec<Value> = Kind::core_kinds()
        .iter()
        .map(|k| resource_entry(*k))
        .collect();
    res.push(json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}));
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": res})
}

fn batch_resources() -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "batch/v1", "resources": [resource_entry(Kind::Job)]})
}

fn batch_group() -> Value {
    let v = json!({"groupVersion": "batch/v1", "version": "v1"});
    json!({"name": "batch", "versions": [v.clone()], "preferredVersion": v})
}

fn aggregated_resource(k: Kind) -> Value {
    let mut r = json!({
        "resource": k.plural(),
        "responseKind": {"group": k.group(), "version": "v1", "kind": k.kind()},
        "scope": if k.namespaced() { "Namespaced" } else { "Cluster" },
        "singularResource": k.singular(),
        "verbs": VERBS,
    });
    if !k.short_names().is_empty() {
        r["shortNames"] = json!(k.short_names());
    }
    if matches!(k, Kind::Pod | Kind::Job) {
        r["categories"] = json!(["all"]);
    }
    if k == Kind::Pod {
        r["subresources"] = json!([{"subresource": "log", "responseKind": {"group": "", "version": "v1", "kind": "Pod"}, "verbs": ["get"]}]);
    }
    r
}

fn aggregated(group: &str, kinds: &[Kind]) -> Value {
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": [{
            "metadata": {"name": group, "creationTimestamp": null},
            "versions": [{
                "version": "v1",
                "freshness": "Current",
                "resources": kinds.iter().map(|k| aggregated_resource(*k)).collect::<Vec<_>>()
            }]
        }]
    })
}

fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.contains("as=APIGroupDiscoveryList") && a.contains("apidiscovery.k8s.io;v=v2")
        })
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

// ------------------------------------------------------------------ routing

/// Where a request points.
enum Target {
    List {
        kind: Kind,
        ns: Option<String>,
    },
    Object {
        kind: Kind,
        ns: Option<String>,
        name: String,
    },
    Log {
        ns: String,
        name: String,
    },
}

fn parse_target(segs: &[&str]) -> Option<(Target, bool)> {
    // segs start after /api/v1 or /apis/batch/v1; a leading "watch" segment is the legacy watch path.
    let (segs, legacy_watch) = match segs.first() {
        Some(&"watch") => (&segs[1..], true),
        _ => (segs, false),
    };
    let kind_of = |p: &str| {
        if p == "jobs" {
            Some(Kind::Job)
        } else {
            Kind::from_core_plural(p)
        }
    };
    let t = match segs {
        [res] => Target::List {
            kind: kind_of(res)?,
            ns: None,
        },
        ["namespaces", ns] => Target::Object {
            kind: Kind::Namespace,
            ns: None,
            name: (*ns).to_string(),
        },
        [res, name] => {
            let kind = kind_of(res)?;
            if kind.namespaced() {
                return None;
            }
            Target::Object {
                kind,
                ns: None,
                name: (*name).to_string(),
            }
        }
        ["namespaces", ns, res] => {
            let kind = kind_of(res)?;
            if !kind.namespaced() {
                return None;
            }
            Target::List {
                kind,
                ns: Some((*ns).to_string()),
            }
        }
        ["namespaces", ns, res, name] => {
            let kind = kind_of(res)?;
            if !kind.namespaced() {
                return None;
            }
            Target::Object {
                kind,
                ns: Some((*ns).to_string()),
                name: (*name).to_string(),
            }
        }
        ["namespaces", ns, "pods", name, "log"] => Target::Log {
            ns: (*ns).to_string(),
            name: (*name).to_string(),
        },
        _ => return None,
    };
    Some((t, legacy_watch))
}

async fn dispatch(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return bad_request(&format!(
                "request body could not be read: {}",
                e.body_text()
            ))
        }
    };
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return bad_request(&format!("invalid query string: {e}")),
    };
    let path = uri.path().trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let is_get = method == Method::GET || method == Method::HEAD;

    // Discovery and health.
    match (segs.as_slice(), is_get) {
        (["version"], true) => {
            return json_response(
                200,
                &json!({
                    "major": "1", "minor": "33", "emulationMajor": "1", "emulationMinor": "33",
                    "minCompatibilityMajor": "1", "minCompatibilityMinor": "32",
                    "gitVersion": GIT_VERSION, "gitCommit": "0000000000000000000000000000000000000000",
                    "gitTreeState": "clean", "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2",
                    "compiler": "gc", "platform": "linux/amd64"
                }),
            )
        }
        (["healthz"] | ["readyz"] | ["livez"], true) => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "ok",
            )
                .into_response()
        }
        (["api"], true) => {
            if wants_aggregated(&headers) {
                return json_response_ct(200, &aggregated("", Kind::core_kinds()), AGGREGATED_CT);
            }
            let addr = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1")
                .to_string();
            return json_response(
                200,
                &json!({
                    "kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]
                }),
            );
        }
        (["apis"], true) => {
            if wants_aggregated(&headers) {
                return json_response_ct(200, &aggregated("batch", &[Kind::Job]), AGGREGATED_CT);
            }
            return json_response(
                200,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [batch_group()]}),
            );
        }
        (["apis", "batch"], true) => {
            let mut g = batch_group();
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            return json_response(200, &g);
        }
        (["api", "v1"], true) => return json_response(200, &core_resources()),
        (["apis", "batch", "v1"], true) => return json_response(200, &batch_resources()),
        _ => {}
    }

    let rest: &[&str] = match segs.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => rest,
        ["apis", "batch", "v1", rest @ ..] if !rest.is_empty() => rest,
        _ => return not_found_path(),
    };
    let in_batch = segs[0] == "apis";
    let Some((target, legacy_watch)) = parse_target(rest) else {
        return not_found_path();
    };
    // Jobs only under batch/v1; the rest only under v1.
    let kind_ok = |k: Kind| (k == Kind::Job) == in_batch;
    match &target {
        Target::List { kind, .. } | Target::Object { kind, .. } if !kind_ok(*kind) => {
            return not_found_path()
        }
        Target::Log { .. } if in_batch => return not_found_path(),
        _ => {}
    }

    let table = wants_table(&headers);
    match (method.clone(), target) {
        (m, Target::List { kind, ns }) if m == Method::GET || m == Method::HEAD => {
            let watch = legacy_watch || q.get("watch").is_some_and(|w| w == "true" || w == "1");
            let (labels, fields) = match selectors(&q, kind) {
                Ok(s) => s,
                Err(r) => return r,
            };
            let timeout = match timeout_seconds(&q) {
                Ok(t) => t,
                Err(r) => return r,
            };
            if watch {
                return watch_response(shared, kind, ns, labels, fields, timeout, &q);
            }
            list(&shared, kind, ns.as_deref(), &labels, &fields, table)
        }
        (m, Target::Object { kind, ns, name }) if m == Method::GET || m == Method::HEAD => {
            if legacy_watch {
                let timeout = match timeout_seconds(&q) {
                    Ok(t) => t,
                    Err(r) => return r,
                };
                let fields =
                    FieldSelector::parse(&format!("metadata.name={name}")).unwrap_or_default();
                return watch_response(
                    shared,
                    kind,
                    ns,
                    LabelSelector::default(),
                    fields,
                    timeout,
                    &q,
                );
            }
            get_one(&shared, kind, ns.as_deref().unwrap_or(""), &name, table)
        }
        (m, Target::Log { ns, name }) if m == Method::GET => pod_log(&shared, &ns, &name),
        (m, Target::Object { kind, ns, name }) if m == Method::DELETE => {
            if kind == Kind::Namespace || kind == Kind::Node {
                return status(
                    405,
                    "MethodNotAllowed",
                    "the simulator does not delete nodes or namespaces",
                    None,
                );
            }
            let opts = match DeleteOpts::from(&q, &body) {
                Ok(o) => o,
                Err(r) => return r,
            };
            let ns = ns.unwrap_or_default();
            let deleted = shared.with(|st, now| {
                if opts.dry_run {
                    st.store.get(kind, &ns, &name).cloned()
                } else {
                    st.kube_delete(kind, &ns, &name, opts.propagation.as_deref(), now)
                }
            });
            match deleted {
                Some(obj) => json_response(200, &obj),
                None => not_found(kind, &name),
            }
        }
        (m, Target::List { kind, ns }) if m == Method::DELETE => {
            if !kind.namespaced() {
                return status(
                    405,
                    "MethodNotAllowed",
                    "the simulator does not delete nodes or namespaces",
                    None,
                );
            }
            let (labels, fields) = match selectors(&q, kind) {
                Ok(s) => s,
                Err(r) => return r,
            };
            let opts = match DeleteOpts::from(&q, &body) {
                Ok(o) => o,
                Err(r) => return r,
            };
            let items = shared.with(|st, now| {
                let names: Vec<(String, String)> = st
                    .store
                    .list(kind, ns.as_deref())
                    .into_iter()
                    .filter(|o| labels.matches(o) && fields.matches(o))
                    .map(|o| (meta(o, "namespace"), meta(o, "name")))
                    .collect();
                let mut out = Vec::new();
                for (n, name) in names {
                    let got = if opts.dry_run {
                        st.store.get(kind, &n, &name).cloned()
                    } else {
                        st.kube_delete(kind, &n, &name, opts.propagation.as_deref(), now)
                    };
                    out.extend(got);
                }
                (out, st.store.resource_version())
            });
            json_response(200, &list_body(kind, items.0, items.1))
        }
        (m, _) => status(
            405,
            "MethodNotAllowed",
            &format!("the server does not allow this method on the requested resource ({m})"),
            None,
        ),
    }
}

fn meta(o: &Value, f: &str) -> String {
    o.pointer(&format!("/metadata/{f}"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

struct DeleteOpts {
    propagation: Option<String>,
    dry_run: bool,
}

impl DeleteOpts {
    /// From the query and the `DeleteOptions` body; an unknown `propagationPolicy` is a 422
    /// `Invalid`, as the API server's validation answers.
    #[allow(clippy::result_large_err)]
    fn from(q: &HashMap<String, String>, body: &[u8]) -> Result<Self, Response> {
        let b: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let propagation = q
            .get("propagationPolicy")
            .cloned()
            .or_else(|| {
                b.get("propagationPolicy")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .or_else(
                || match b.get("orphanDependents").and_then(Value::as_bool) {
                    Some(true) => Some("Orphan".into()),
                    Some(false) => Some("Background".into()),
                    None => None,
                },
            );
        let dry_run = q.get("dryRun").is_some_and(|d| d == "All")
            || b.get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x == "All"));
        if let Some(p) = propagation.as_deref() {
            if !matches!(p, "Foreground" | "Background" | "Orphan") {
                return Err(status(
                    422,
                    "Invalid",
                    &format!("DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: {}: supported values: \"Foreground\", \"Background\", \"Orphan\"", Value::String(p.to_string())),
                    Some(json!({"group": "meta.k8s.io", "kind": "DeleteOptions", "causes": [{"reason": "FieldValueNotSupported", "field": "propagationPolicy"}]})),
                ));
            }
        }
        Ok(DeleteOpts {
            propagation,
            dry_run,
        })
    }
}

#[allow(clippy::result_large_err)]
fn selectors(
    q: &HashMap<String, String>,
    kind: Kind,
) -> Result<(LabelSelector, FieldSelector), Response> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| bad_request(&e))?;
    let fields = FieldSelector::parse_for(
        kind,
        q.get("fieldSelector").map(String::as_str).unwrap_or(""),
    )
    .map_err(|e| bad_request(&e))?;
    Ok((labels, fields))
}

/// Longest watch the server keeps open, and the default (the API server's
/// `--min-request-timeout`).
pub const MAX_WATCH_SECS: u64 = 3600;
pub const DEFAULT_WATCH_SECS: u64 = 1800;

/// `timeoutSeconds`: absent or 0 = the default, capped at [`MAX_WATCH_SECS`]; anything but a
/// non-negative integer is a 400 (as the API server's parameter decoding).
#[allow(clippy::result_large_err)]
fn timeout_seconds(q: &HashMap<String, String>) -> Result<Duration, Response> {
    let Some(raw) = q.get("timeoutSeconds") else {
        return Ok(Duration::from_secs(DEFAULT_WATCH_SECS));
    };
    let secs: u64 = match raw.trim().parse::<i128>() {
        Ok(n) if n < 0 => {
            return Err(bad_request(&format!(
                "timeoutSeconds: Invalid value: {n}: must be greater than or equal to 0"
            )))
        }
        Ok(0) => DEFAULT_WATCH_SECS,
        Ok(n) => u64::try_from(n).unwrap_or(u64::MAX).min(MAX_WATCH_SECS),
        Err(_) if raw.trim().bytes().all(|b| b.is_ascii_digit()) && !raw.trim().is_empty() => {
            MAX_WATCH_SECS
        }
        Err(_) => {
            return Err(bad_request(&format!(
                "timeoutSeconds: Invalid value: \"{raw}\": must be an integer number of seconds"
            )))
        }
    };
    Ok(Duration::from_secs(secs))
}

fn list_body(kind: Kind, items: Vec<Value>, rv: u64) -> Value {
    json!({
        "kind": format!("{}List", kind.kind()),
        "apiVersion": kind.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items
    })
}

fn list(
    shared: &Shared,
    kind: Kind,
    ns: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
    table: bool,
) -> Response {
    let (items, rv, now_wall) = shared.with(|st, now| {
        let items: Vec<Value> = st
            .store
            .list(kind, ns)
            .into_iter()
            .filter(|o| labels.matches(o) && fields.matches(o))
            .cloned()
            .collect();
        (items, st.store.resource_version(), st.clock.wall(now))
    });
    if table {
        return json_response(200, &to_table(kind, &items, rv, now_wall));
    }
    json_response(200, &list_body(kind, items, rv))
}

fn get_one(shared: &Shared, kind: Kind, ns: &str, name: &str, table: bool) -> Response {
    let (obj, rv, now_wall) = shared.with(|st, now| {
        (
            st.store.get(kind, ns, name).cloned(),
            st.store.resource_version(),
            st.clock.wall(now),
        )
    });
    match obj {
        Some(o) if table => json_response(200, &to_table(kind, &[o], rv, now_wall)),
        Some(o) => json_response(200, &o),
        None => not_found(kind, name),
    }
}

fn pod_log(shared: &Shared, ns: &str, name: &str) -> Response {
    let pod = shared.with(|st, _| st.store.get(Kind::Pod, ns, name).cloned());
    let Some(pod) = pod else {
        return not_found(Kind::Pod, name);
    };
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if phase == "Pending" {
        return bad_request(&format!(
            "container \"{}\" in pod \"{name}\" is waiting to start: ContainerCreating",
            pod.pointer("/spec/containers/0/name")
                .and_then(Value::as_str)
                .unwrap_or("")
        ));
    }
    let app = pod
        .pointer("/metadata/labels/app")
        .and_then(Value::as_str)
        .unwrap_or("");
    let job_id = pod
        .pointer("/metadata/labels/focus.job-id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let started = pod
        .pointer("/status/startTime")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut text = String::new();
    if app == super::objects::ANALYZER_APP {
        let port = pod
            .pointer("/spec/containers/0/ports/0/containerPort")
            .cloned()
            .unwrap_or(Value::Null);
        text.push_str(&format!(
            "{started} INFO baby-analyzer job {job_id} starting, recordings at /recordings\n"
        ));
        text.push_str(&format!(
            "{started} INFO gRPC stream listening on 0.0.0.0:{port}\n"
        ));
        if phase == "Failed" {
            text.push_str(&format!("{started} ERROR failed to allocate GPU slice for job {job_id}; exiting with code 1\n"));
        } else {
            let cpu = pod
                .pointer(&format!(
                    "/metadata/annotations/{}",
                    CPU_ANNOTATION.replace('/', "~1")
                ))
                .and_then(Value::as_str)
                .unwrap_or("0");
            text.push_str(&format!("INFO processing, cpu {cpu}m\n"));
        }
    } else {
        text.push_str(&format!("{started} INFO cleanup job for {job_id}: threshold 4m, 5 consecutive readings, every 10s\n"));
        if phase == "Succeeded" {
            text.push_str(&format!(
                "INFO 5 consecutive idle readings: deleted baby-analyzer-{job_id}\n"
            ));
        }
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

// ------------------------------------------------------------------ tables (kubectl get)

fn age(now: chrono::DateTime<chrono::Utc>, ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) else {
        return "<unknown>".into();
    };
    let s = (now - t.with_timezone(&chrono::Utc)).num_seconds().max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=599 => format!("{}m{}s", s / 60, s % 60),
        600..=10799 => format!("{}m", s / 60),
        10800..=172799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn to_table(kind: Kind, items: &[Value], rv: u64, now: chrono::DateTime<chrono::Utc>) -> Value {
    let col = |name: &str, ty: &str, prio: u8| json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" }, "description": name, "priority": prio});
    let s = |o: &Value, p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let created = |o: &Value| {
        age(
            now,
            o.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str),
        )
    };
    let (cols, rows): (Vec<Value>, Vec<Vec<Value>>) = match kind {
        Kind::Pod => (
            vec![
                col("Name", "string", 0),
                col("Ready", "string", 0),
                col("Status", "string", 0),
                col("Restarts", "string", 0),
                col("Age", "string", 0),
                col("IP", "string", 1),
                col("Node", "string", 1),
            ],
            items
                .iter()
                .map(|o| {
                    let ready = o
                        .pointer("/status/containerStatuses/0/ready")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let mut phase = s(o, "/status/phase");
                    if let Some(r) = o
                        .pointer("/status/containerStatuses/0/state/waiting/reason")
                        .and_then(Value::as_str)
                    {
                        phase = r.to_string();
                    } else if let Some(r) = o
                        .pointer("/status/containerStatuses/0/state/terminated/reason")
                        .and_then(Value::as_str)
                    {
                        phase = r.to_string();
                    }
                    let ip = o
                        .pointer("/status/podIP")
                        .and_then(Value::as_str)
                        .unwrap_or("<none>")
                        .to_string();
                    vec![
                        json!(s(o, "/metadata/name")),
                        json!(format!("{}/1", u8::from(ready))),
                        json!(phase),
                        json!("0"),
                        json!(created(o)),
                        json!(ip),
                        json!(s(o, "/spec/nodeName")),
                    ]
                })
                .collect(),
        ),
        Kind::Job => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Completions", "string", 0),
                col("Duration", "string", 0),
                col("Age", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    let conds: Vec<String> = o
                        .pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .map(|c| c.iter().map(|c| s(c, "/type")).collect())
                        .unwrap_or_default();
                    let st = if conds.iter().any(|c| c == "Complete") {
                        "Complete"
                    } else if conds.iter().any(|c| c == "Failed") {
                        "Failed"
                    } else {
                        "Running"
                    };
                    let succ = o
                        .pointer("/status/succeeded")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    let start = o.pointer("/status/startTime").and_then(Value::as_str);
                    let duration = match (
                        start.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()),
                        o.pointer("/status/completionTime").and_then(Value::as_str),
                    ) {
                        (Some(_), Some(done)) => match chrono::DateTime::parse_from_rfc3339(done) {
                            Ok(d) => age(d.with_timezone(&chrono::Utc), start),
                            Err(_) => age(now, start),
                        },
                        _ => age(now, start),
                    };
                    vec![
                        json!(s(o, "/metadata/name")),
                        json!(st),
                        json!(format!("{succ}/1")),
                        json!(duration),
                        json!(created(o)),
                    ]
                })
                .collect(),
        ),
        Kind::Node => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Roles", "string", 0),
                col("Age", "string", 0),
                col("Version", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    vec![
                        json!(s(o, "/metadata/name")),
                        json!("Ready"),
                        json!("gpu"),
                        json!(created(o)),
                        json!(s(o, "/status/nodeInfo/kubeletVersion")),
                    ]
                })
                .collect(),
        ),
        Kind::Event => (
            vec![
                col("Last Seen", "string", 0),
                col("Type", "string", 0),
                col("Reason", "string", 0),
                col("Object", "string", 0),
                col("Message", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    vec![
                        json!(age(
                            now,
                            o.pointer("/lastTimestamp").and_then(Value::as_str)
                        )),
                        json!(s(o, "/type")),
                        json!(s(o, "/reason")),
                        json!(format!(
                            "{}/{}",
                            s(o, "/involvedObject/kind").to_lowercase(),
                            s(o, "/involvedObject/name")
                        )),
                        json!(s(o, "/message")),
                    ]
                })
                .collect(),
        ),
        Kind::Namespace => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Age", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    vec![
                        json!(s(o, "/metadata/name")),
                        json!(s(o, "/status/phase")),
                        json!(created(o)),
                    ]
                })
                .collect(),
        ),
    };
    let rows: Vec<Value> = rows
        .into_iter()
        .zip(items)
        .map(|(cells, o)| json!({
            "cells": cells,
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))}
        }))
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv.to_string()}, "columnDefinitions": cols, "rows": rows})
}

// ------------------------------------------------------------------ watch

struct Filter {
    kind: Kind,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, kind: Kind, ns: &str, obj: &Value) -> bool {
        kind == self.kind
            && self.ns.as_deref().is_none_or(|n| n == ns)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }
}

fn event_line(etype: &str, obj: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": etype, "object": obj})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn bookmark(kind: Kind, rv: u64, initial_end: bool) -> Bytes {
    let mut m = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        m["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        &json!({"kind": kind.kind(), "apiVersion": kind.api_version(), "metadata": m}),
    )
}

fn expired(rv: &str) -> Bytes {
    event_line(
        "ERROR",
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {rv}"), "reason": "Expired", "code": 410
        }),
    )
}

struct WatchState {
    pending: VecDeque<Bytes>,
    rx: Option<broadcast::Receiver<Arc<Change>>>,
    filter: Filter,
    last_rv: u64,
    deadline: Instant,
    bookmarks: bool,
    next_bookmark: Instant,
    shutdown: tokio::sync::watch::Receiver<bool>,
    done: bool,
}

const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

fn watch_response(
    shared: Arc<Shared>,
    kind: Kind,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    timeout: Duration,
    q: &HashMap<String, String>,
) -> Response {
    let filter = Filter {
        kind,
        ns,
        labels,
        fields,
    };
    let bookmarks = q
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true" || v == "1");
    let send_initial = q
        .get("sendInitialEvents")
        .is_some_and(|v| v == "true" || v == "1");
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let resume_from = if send_initial || rv_param.is_empty() || rv_param == "0" {
        None
    } else {
        match rv_param.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => return bad_request(&format!("invalid resource version: {rv_param}")),
        }
    };

    let mut pending = VecDeque::new();
    let (rx, last_rv) = shared.with(|st, _| {
        let current = st.store.resource_version();
        match resume_from {
            Some(from) if from < st.store.oldest_resumable() => {
                pending.push_back(expired(&rv_param));
                (None, current)
            }
            Some(from) => {
                for c in st.store.history_after(from) {
                    if filter.matches(c.kind, &c.namespace, &c.object) {
                        pending.push_back(event_line(c.etype, &c.object));
                    }
                }
                (Some(st.store.subscribe()), current)
            }
            None => {
                for o in st.store.list(filter.kind, filter.ns.as_deref()) {
                    if filter.labels.matches(o) && filter.fields.matches(o) {
                        pending.push_back(event_line("ADDED", o));
                    }
                }
                if send_initial && bookmarks {
                    pending.push_back(bookmark(filter.kind, current, true));
                }
                (Some(st.store.subscribe()), current)
            }
        }
    });
    let now = Instant::now();
    let state = WatchState {
        pending,
        done: rx.is_none(),
        rx,
        filter,
        last_rv,
        deadline: now
            .checked_add(timeout)
            .unwrap_or(now + Duration::from_secs(MAX_WATCH_SECS)),
        bookmarks,
        next_bookmark: now + BOOKMARK_EVERY,
        shutdown: shared.shutdown_signal(),
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(b) = s.pending.pop_front() {
                return Some((Ok::<Bytes, std::convert::Infallible>(b), s));
            }
            if s.done || *s.shutdown.borrow() {
                return None;
            }
            let rx = s.rx.as_mut()?;
            // Biased: events already sent go out before a bookmark or the deadline's end, in
            // one order whatever is ready at the same instant.
            tokio::select! {
                biased;
                r = rx.recv() => match r {
                    Ok(c) => {
                        s.last_rv = c.rv;
                        if s.filter.matches(c.kind, &c.namespace, &c.object) {
                            return Some((Ok(event_line(c.etype, &c.object)), s));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        s.done = true;
                        let rv = s.last_rv.to_string();
                        return Some((Ok(expired(&rv)), s));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = tokio::time::sleep_until(s.deadline) => return None,
                _ = tokio::time::sleep_until(s.next_bookmark), if s.bookmarks => {
                    s.next_bookmark = Instant::now() + BOOKMARK_EVERY;
                    return Some((Ok(bookmark(s.filter.kind, s.last_rv, false)), s));
                }
                _ = s.shutdown.changed() => return None,
            }
        }
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    //! The API server's handler called directly (no socket, no latency gate), on a state whose
    //! time scale (x1000) keeps every scheduled transition hours away from the test.
    use super::*;
    use crate::clock::Clock;
    use crate::state::State as SimState;
    use crate::store::Store;
    use futures::StreamExt;

    fn shared(broadcast_cap: usize) -> (Arc<Shared>, tokio::sync::watch::Sender<bool>) {
        let cfg = crate::SimConfig {
            time_scale: 1000.0,
            ..Default::default()
        };
        let st = SimState::new(
            cfg,
            Clock::new(1000.0),
            Store::new(broadcast::channel(broadcast_cap).0),
        );
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let sh = Shared {
            state: std::sync::Mutex::new(st),
            notify: tokio::sync::Notify::new(),
            shutdown,
        };
        (Arc::new(sh), stop)
    }

    fn open_jobs(sh: &Shared, n: usize) {
        let body = br#"{"displayTimeAxisDuration": 10, "nfftSelection": 1024, "displayInfo": {"height": 1000},
            "channels": {"min": 0, "max": 50}, "frequencyRange": {"min": 0, "max": 500}, "view_type": 0}"#;
        for _ in 0..n {
            let v = crate::focus::validate(body).unwrap();
            sh.with(|st, now| st.configure(v, now)).unwrap();
        }
    }

    async fn call(sh: &Arc<Shared>, method: Method, uri: &str) -> Response {
        let uri: Uri = uri.parse().unwrap();
        let q = Query::try_from_uri(&uri);
        dispatch(
            State(sh.clone()),
            method,
            uri,
            HeaderMap::new(),
            q,
            Ok(Bytes::new()),
        )
        .await
    }

    async fn json_of(r: Response) -> (u16, Value) {
        let code = r.status().as_u16();
        let b = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        (code, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    async fn get(sh: &Arc<Shared>, uri: &str) -> (u16, Value) {
        json_of(call(sh, Method::GET, uri).await).await
    }

    fn names(list: &Value) -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// The first `n` lines of a watch (with a guard, in case they never come).
    async fn watch_lines(r: Response, n: usize) -> Vec<Value> {
        assert_eq!(r.status(), StatusCode::OK);
        let mut s = r.into_body().into_data_stream();
        let mut out = Vec::new();
        while out.len() < n {
            let next = tokio::time::timeout(Duration::from_secs(10), s.next()).await;
            let Ok(Some(Ok(chunk))) = next else { break };
            for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                out.push(serde_json::from_slice(line).unwrap());
            }
        }
        out
    }

    #[test]
    fn requests_are_counted_as_list_watch_get_delete_deletecollection_or_log() {
        let v = |m: Method, u: &str| verb_of(&m, &u.parse().unwrap());
        assert_eq!(v(Method::GET, "/api/v1/namespaces/focus/pods"), "list");
        assert_eq!(
            v(Method::GET, "/api/v1/namespaces/focus/pods?watch=true"),
            "watch"
        );
        assert_eq!(
            v(Method::GET, "/api/v1/watch/namespaces/focus/pods"),
            "watch"
        );
        assert_eq!(
            v(Method::GET, "/apis/batch/v1/namespaces/focus/jobs/x"),
            "get"
        );
        assert_eq!(v(Method::GET, "/api/v1/namespaces/focus/pods/x/log"), "log");
        assert_eq!(
            v(Method::DELETE, "/apis/batch/v1/namespaces/focus/jobs/x"),
            "delete"
        );
        assert_eq!(
            v(Method::DELETE, "/apis/batch/v1/namespaces/focus/jobs"),
            "deletecollection"
        );
        assert_eq!(v(Method::GET, "/apis"), "discovery");
        assert_eq!(v(Method::GET, "/api/v1/namespaces/focus/secrets"), "other");
    }

    #[tokio::test]
    async fn a_label_selector_lists_only_the_matching_pods_and_a_malformed_one_is_400() {
        let (sh, _stop) = shared(1024);
        open_jobs(&sh, 2);
        let (code, l) = get(
            &sh,
            "/api/v1/namespaces/focus/pods?labelSelector=focus.job-id%3D18-2",
        )
        .await;
        assert_eq!((code, l["kind"].clone()), (200, json!("PodList")));
        let n = names(&l);
        assert_eq!(n.len(), 2);
        assert!(n.iter().all(|p| p.contains("-18-2-")), "{n:?}");
        let (_, l) = get(
            &sh,
            "/api/v1/namespaces/focus/pods?labelSelector=app%3Dbaby-analyzer",
        )
        .await;
        assert_eq!(names(&l).len(), 2);
        let (_, l) = get(&sh, "/api/v1/namespaces/default/pods").await;
        assert_eq!(names(&l).len(), 0);
        let (code, s) = get(
            &sh,
            "/api/v1/namespaces/focus/pods?labelSelector=app%20in%20x",
        )
        .await;
        assert_eq!((code, s["reason"].clone()), (400, json!("BadRequest")));
        let (code, _) = get(
            &sh,
            "/api/v1/namespaces/focus/pods?fieldSelector=spec.nope%3D1",
        )
        .await;
        assert_eq!(code, 400);
    }

    #[tokio::test]
    async fn jobs_live_only_under_batch_v1_and_an_unknown_job_is_a_404_status() {
        let (sh, _stop) = shared(1024);
        open_jobs(&sh, 1);
        let (code, j) = get(
            &sh,
            "/apis/batch/v1/namespaces/focus/jobs/baby-analyzer-18-1",
        )
        .await;
        assert_eq!(
            (code, j["metadata"]["labels"]["focus.job-id"].clone()),
            (200, json!("18-1"))
        );
        assert_eq!(get(&sh, "/api/v1/namespaces/focus/jobs").await.0, 404);
        assert_eq!(
            get(&sh, "/apis/batch/v1/namespaces/focus/pods").await.0,
            404
        );
        let (code, s) = get(&sh, "/apis/batch/v1/namespaces/focus/jobs/nope").await;
        assert_eq!(code, 404);
        assert_eq!(
            (s["kind"].clone(), s["reason"].clone()),
            (json!("Status"), json!("NotFound"))
        );
        assert_eq!(s["message"], "jobs.batch \"nope\" not found");
    }

    #[tokio::test]
    async fn deleting_a_job_with_background_propagation_removes_its_pods_and_dry_run_removes_nothing(
    ) {
        let (sh, _stop) = shared(1024);
        open_jobs(&sh, 1);
        let pods = "/api/v1/namespaces/focus/pods?labelSelector=job-name%3Dbaby-analyzer-18-1";
        let job = "/apis/batch/v1/namespaces/focus/jobs/baby-analyzer-18-1";
        let (code, _) =
            json_of(call(&sh, Method::DELETE, &format!("{job}?dryRun=All")).await).await;
        assert_eq!(code, 200);
        assert_eq!(get(&sh, job).await.0, 200);
        let (code, s) = json_of(
            call(
                &sh,
                Method::DELETE,
                &format!("{job}?propagationPolicy=Sideways"),
            )
            .await,
        )
        .await;
        assert_eq!((code, s["reason"].clone()), (422, json!("Invalid")));
        assert_eq!(names(&get(&sh, pods).await.1).len(), 1);
        let (code, d) = json_of(
            call(
                &sh,
                Method::DELETE,
                &format!("{job}?propagationPolicy=Background"),
            )
            .await,
        )
        .await;
        assert_eq!(code, 200);
        assert!(d["metadata"]["deletionTimestamp"].is_string());
        assert_eq!(get(&sh, job).await.0, 404);
        assert_eq!(names(&get(&sh, pods).await.1).len(), 0);
        // The Focus job lost its analyzer.
        assert_eq!(
            sh.with(|st, now| st.job("18-1").unwrap().status(now)),
            "failed"
        );
        assert_eq!(json_of(call(&sh, Method::DELETE, job).await).await.0, 404);
        let (code, _) = json_of(call(&sh, Method::DELETE, "/api/v1/nodes/gpu-node-1").await).await;
        assert_eq!(code, 405);
    }

    #[tokio::test]
    async fn deletecollection_deletes_only_what_the_selector_matches() {
        let (sh, _stop) = shared(1024);
        open_jobs(&sh, 2);
        let (code, l) = json_of(
            call(
                &sh,
                Method::DELETE,
                "/apis/batch/v1/namespaces/focus/jobs?labelSelector=app%3Dfocus-cleanup",
            )
            .await,
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(names(&l), ["cleanup-job-18-1", "cleanup-job-18-2"]);
        let (_, left) = get(&sh, "/apis/batch/v1/namespaces/focus/jobs").await;
        assert_eq!(names(&left), ["baby-analyzer-18-1", "baby-analyzer-18-2"]);
    }

    #[tokio::test]
    async fn a_pending_pod_has_no_log_yet() {
        let (sh, _stop) = shared(1024);
        open_jobs(&sh, 1);
        let pod = sh.with(|st, _| st.job("18-1").unwrap().analyzer_pod.clone());
        let (code, s) = get(&sh, &format!("/api/v1/namespaces/focus/pods/{pod}/log")).await;
        assert_eq!(code, 400);
        assert!(s["message"]
            .as_str()
            .unwrap()
            .ends_with("is waiting to start: ContainerCreating"));
        assert_eq!(
            get(&sh, "/api/v1/namespaces/focus/pods/nope/log").await.0,
            404
        );
    }

    #[tokio::test]
    async fn a_watch_from_a_resource_version_replays_only_later_matching_changes() {
        let (sh, _stop) = shared(1024);
        open_jobs(&sh, 1);
        let rv = sh.with(|st, _| st.store.resource_version());
        open_jobs(&sh, 1);
        let r = call(
            &sh,
            Method::GET,
            &format!("/api/v1/namespaces/focus/pods?watch=true&resourceVersion={rv}&labelSelector=focus.job-id"),
        )
        .await;
        // Then a change made after the watch started.
        let pod = sh.with(|st, _| st.job("18-1").unwrap().analyzer_pod.clone());
        let del = call(
            &sh,
            Method::DELETE,
            &format!("/api/v1/namespaces/focus/pods/{pod}"),
        )
        .await;
        assert_eq!(del.status(), StatusCode::OK);
        let lines = watch_lines(r, 3).await;
        let got: Vec<(String, String)> = lines
            .iter()
            .map(|l| {
                (
                    l["type"].as_str().unwrap().into(),
                    l["object"]["metadata"]["labels"]["focus.job-id"]
                        .as_str()
                        .unwrap()
                        .into(),
                )
            })
            .collect();
        let want = |t: &str, id: &str| (t.to_string(), id.to_string());
        assert_eq!(
            got,
            [
                want("ADDED", "18-2"),
                want("ADDED", "18-2"),
                want("DELETED", "18-1")
            ]
        );
        assert_eq!(
            get(&sh, "/api/v1/pods?watch=true&resourceVersion=abc")
                .await
                .0,
            400
        );
    }

    #[tokio::test]
    async fn a_watch_from_a_version_older_than_the_history_is_410_expired() {
        let (sh, _stop) = shared(16);
        sh.with(|st, _| {
            for i in 0..20_050 {
                st.store.modify(Kind::Namespace, "", "default", |n| {
                    n["metadata"]["generation"] = json!(i)
                });
            }
        });
        let r = call(
            &sh,
            Method::GET,
            "/api/v1/namespaces?watch=true&resourceVersion=1001",
        )
        .await;
        let lines = watch_lines(r, 2).await;
        assert_eq!(lines.len(), 1, "the error ends the watch: {lines:?}");
        assert_eq!(lines[0]["type"], "ERROR");
        assert_eq!(
            (
                lines[0]["object"]["code"].clone(),
                lines[0]["object"]["reason"].clone()
            ),
            (json!(410), json!("Expired"))
        );
        // A version still in the history resumes.
        let rv = sh.with(|st, _| st.store.resource_version());
        let r = call(
            &sh,
            Method::GET,
            &format!("/api/v1/namespaces?watch=true&resourceVersion={}", rv - 1),
        )
        .await;
        let lines = watch_lines(r, 1).await;
        assert_eq!(lines[0]["type"], "MODIFIED");
    }

    #[tokio::test]
    async fn a_watch_that_falls_behind_the_live_changes_ends_with_410_expired() {
        let (sh, _stop) = shared(2);
        let r = call(&sh, Method::GET, "/api/v1/namespaces?watch=true").await;
        sh.with(|st, _| {
            for i in 0..5 {
                st.store.modify(Kind::Namespace, "", "focus", |n| {
                    n["metadata"]["generation"] = json!(i)
                });
            }
        });
        let lines = watch_lines(r, 5).await;
        let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["ADDED", "ADDED", "ADDED", "ERROR"]);
        assert_eq!(lines[3]["object"]["code"], 410);
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn timeout_seconds_defaults_caps_at_an_hour_and_refuses_negatives_and_words() {
        let t = |v: &str| {
            timeout_seconds(&HashMap::from([(
                "timeoutSeconds".to_string(),
                v.to_string(),
            )]))
        };
        assert_eq!(
            timeout_seconds(&HashMap::new()).unwrap(),
            Duration::from_secs(DEFAULT_WATCH_SECS)
        );
        assert_eq!(t("0").unwrap(), Duration::from_secs(DEFAULT_WATCH_SECS));
        assert_eq!(t("5").unwrap(), Duration::from_secs(5));
        assert_eq!(
            t("99999999999999999999999999999999999999999").unwrap(),
            Duration::from_secs(MAX_WATCH_SECS)
        );
        for bad in ["-1", "1.5", "ten", ""] {
            assert_eq!(
                t(bad).unwrap_err().status(),
                StatusCode::BAD_REQUEST,
                "{bad:?}"
            );
        }
    }
}
