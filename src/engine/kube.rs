//! `kube` steps: get, list, delete, wait and absent on any resource kind, resolved by discovery.
//! The observed document is the object (get/wait), `{items, count}` (list), or what was deleted.
//! On failure the step attaches the object's YAML, its recent Events and container statuses.

use tokio::time::Instant;

use k8s_openapi::api::core::v1::{Event as KEvent, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::discovery::Scope as KScope;
use serde_json::{json, Value};

use super::{Ctx, ExecError, Observation};
use crate::results::{AssertOp, AssertionResult, Attachment};
use crate::spec::{KubeOp, KubeVerb, Step};
use crate::template::Scope;

/// Rendered operation parameters.
struct Resolved {
    kind: String,
    name: Option<String>,
    namespace: String,
    labels: Option<String>,
    fields: Option<String>,
}

fn resolve(op: &KubeOp, scope: &Scope, default_ns: &str) -> Result<Resolved, ExecError> {
    let opt = |s: &Option<String>| s.as_ref().map(|v| scope.render_str(v)).transpose();
    Ok(Resolved {
        kind: scope.render_str(&op.kind)?,
        name: opt(&op.name)?,
        namespace: opt(&op.namespace)?.unwrap_or_else(|| default_ns.to_string()),
        labels: opt(&op.labels)?,
        fields: opt(&op.fields)?,
    })
}

fn kube_err(e: kube::Error, what: &str) -> ExecError {
    let msg = match &e {
        kube::Error::Api(s) => crate::targets::kube::refusal(s, what),
        other => format!(
            "Kubernetes API unreachable for {what}: {} (check the target's kubernetes settings)",
            crate::targets::error_chain(other)
        ),
    };
    ExecError::infra(msg)
}

/// Drops noise from objects shown to people.
fn tidy(mut v: Value) -> Value {
    if let Some(m) = v.pointer_mut("/metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    v
}

fn subject(r: &Resolved) -> String {
    match (&r.name, &r.labels, &r.fields) {
        (Some(n), _, _) => format!("{}/{n}", r.kind),
        (None, Some(l), _) => format!("{} with labels {l}", r.kind),
        (None, None, Some(f)) => format!("{} with fields {f}", r.kind),
        _ => r.kind.clone(),
    }
}

fn object_name(o: &Value) -> Option<String> {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// One object by name, as shown to people; `None` when it does not exist.
async fn get_one(
    api: &Api<DynamicObject>,
    name: &str,
    what: &str,
) -> Result<Option<Value>, ExecError> {
    let found = api
        .get_opt(name)
        .await
        .map_err(|e| kube_err(e, &format!("get {what}")))?;
    Ok(found.map(|o| tidy(serde_json::to_value(o).unwrap_or(Value::Null))))
}

/// Every object matching the step's selectors, as shown to people.
async fn list_all(
    api: &Api<DynamicObject>,
    r: &Resolved,
    what: &str,
) -> Result<Vec<Value>, ExecError> {
    let list = api
        .list(&list_params(r))
        .await
        .map_err(|e| kube_err(e, &format!("list {what}")))?;
    Ok(list
        .items
        .into_iter()
        .map(|o| tidy(serde_json::to_value(o).unwrap_or(Value::Null)))
        .collect())
}

fn list_params(r: &Resolved) -> ListParams {
    let mut lp = ListParams::default();
    if let Some(l) = &r.labels {
        lp = lp.labels(l);
    }
    if let Some(f) = &r.fields {
        lp = lp.fields(f);
    }
    lp
}

impl super::step::Execute for KubeOp {
    fn result_name(&self) -> crate::results::StepKindName {
        crate::results::StepKindName::Kube
    }

    async fn execute(
        &self,
        step: &Step,
        scope: &mut Scope,
        ctx: &Ctx,
        _in_cleanup: bool,
    ) -> Result<Observation, ExecError> {
        // Boxed: a large future that rarely runs stays out of every step's future.
        Box::pin(execute(self, step, scope, ctx)).await
    }

    fn needs(&self) -> Option<crate::spec::Capability> {
        Some(crate::spec::Capability::Kubernetes)
    }

    /// `wait` and `absent` poll on their own (30s, every 1s) when the step has no `until`.
    fn own_poll(&self) -> Option<crate::spec::Until> {
        use crate::spec::Dur;
        matches!(self.op, KubeVerb::Wait | KubeVerb::Absent).then(|| crate::spec::Until {
            interval: self.interval.clone().unwrap_or_else(|| Dur("1s".into())),
            timeout: self.timeout.clone().unwrap_or_else(|| Dur("30s".into())),
        })
    }

    async fn diagnose(&self, obs: &Observation, scope: &Scope, ctx: &Ctx) -> Vec<Attachment> {
        diagnose(self, obs, scope, ctx).await
    }
}

async fn execute(
    op: &KubeOp,
    step: &Step,
    scope: &mut Scope,
    ctx: &Ctx,
) -> Result<Observation, ExecError> {
    let kt = ctx.target.kube.as_ref().ok_or_else(|| {
        ExecError::infra(format!(
            "target `{}` has no Kubernetes access",
            ctx.target.name
        ))
    })?;
    let r = resolve(op, scope, &kt.namespace)?;
    let (ar, caps) = kt
        .resolve_kind(&r.kind, op.api_version.as_deref())
        .await
        .map_err(ExecError::infra)?;
    let api: Api<DynamicObject> = if caps.scope == KScope::Namespaced {
        Api::namespaced_with(kt.client.clone(), &r.namespace, &ar)
    } else {
        Api::all_with(kt.client.clone(), &ar)
    };
    let at = step.pos;
    let t0 = Instant::now();
    let what = subject(&r);
    let mut obs = Observation::default();
    let assertion =
        |op: AssertOp, expected: Value, actual: Option<Value>, passed: bool| AssertionResult {
            line: at.line,
            col: at.col,
            subject: what.clone(),
            subject_template: None,
            op,
            expected,
            actual,
            passed,
            message: None,
        };
    // `wait` and `absent` poll: they read a watch shared by every step on the same kind,
    // namespace and selectors, or the API server when no live watch can answer.
    let watched = match op.op {
        KubeVerb::Wait | KubeVerb::Absent => {
            let q = crate::targets::watch::Query {
                resource: &ar,
                namespace: (caps.scope == KScope::Namespaced).then_some(r.namespace.as_str()),
                name: r.name.as_deref(),
                labels: r.labels.as_deref(),
                fields: r.fields.as_deref(),
            };
            kt.watches
                .objects(&kt.client, &q)
                .await
                .map(|objs| objs.into_iter().map(tidy).collect::<Vec<_>>())
        }
        _ => None,
    };
    match op.op {
        KubeVerb::Wait if r.name.is_none() => {
            // By selector: every match must meet the expectations (checked by the step, on each
            // of `obs.each`); how many must match is the check made here.
            let items = match watched {
                Some(objs) => objs,
                None => list_all(&api, &r, &what).await?,
            };
            let n = items.len();
            let (op_text, expected, passed) = match &op.count {
                Some(c) => {
                    let want = super::fanout::resolve_count(c, scope, "kube wait `count`")?;
                    (AssertOp::Matches, json!(want), n == want)
                }
                None => (AssertOp::MatchesAtLeast, json!(1), n >= 1),
            };
            obs.assertions
                .push(assertion(op_text, expected, Some(json!(n)), passed));
            obs.doc = json!({"count": n, "items": items.clone()}).into();
            obs.each = Some(items);
        }
        KubeVerb::Get | KubeVerb::Wait => {
            let doc = match watched {
                Some(objs) => objs.into_iter().next(),
                None => get_one(&api, r.name.as_deref().unwrap_or_default(), &what).await?,
            };
            obs.assertions.push(assertion(
                AssertOp::Exists,
                json!(true),
                doc.as_ref().map(|_| json!("found")),
                doc.is_some(),
            ));
            obs.doc = doc.unwrap_or(Value::Null).into();
        }
        KubeVerb::List => {
            let items = list_all(&api, &r, &what).await?;
            obs.doc = json!({"count": items.len(), "items": items}).into();
        }
        KubeVerb::Delete => {
            let names: Vec<String> = match &r.name {
                Some(n) => vec![n.clone()],
                None => list_all(&api, &r, &what)
                    .await?
                    .iter()
                    .filter_map(object_name)
                    .collect(),
            };
            let mut deleted = Vec::new();
            for n in &names {
                match api.delete(n, &DeleteParams::background()).await {
                    Ok(_) => deleted.push(n.clone()),
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(kube_err(e, &format!("delete {}/{n}", r.kind))),
                }
            }
            if r.name.is_some() {
                let done = !deleted.is_empty();
                obs.assertions.push(assertion(
                    AssertOp::Deleted,
                    json!(true),
                    Some(json!(done)),
                    done,
                ));
            }
            obs.doc = json!({"count": deleted.len(), "deleted": deleted}).into();
        }
        KubeVerb::Absent => {
            // A watch can lag by an event's delivery: "gone" is confirmed by the API server
            // (one request per verdict, not per poll); "still there" just polls again.
            let remaining: Vec<Value> = match (watched, &r.name) {
                (Some(objs), _) if !objs.is_empty() => objs,
                (_, Some(n)) => get_one(&api, n, &what).await?.into_iter().collect(),
                (_, None) => list_all(&api, &r, &what).await?,
            };
            let names: Vec<String> = remaining.iter().filter_map(object_name).collect();
            let actual = if names.is_empty() {
                json!("gone")
            } else {
                json!(names)
            };
            obs.assertions.push(assertion(
                AssertOp::IsAbsent,
                json!(true),
                Some(actual),
                remaining.is_empty(),
            ));
            obs.doc = if r.name.is_some() {
                remaining.into_iter().next().unwrap_or(Value::Null)
            } else {
                json!({"count": remaining.len(), "items": remaining})
            }
            .into();
        }
    }
    obs.elapsed = t0.elapsed();
    Ok(obs)
}

/// Material for a failed `kube` step: the object(s) as YAML, their recent Events, container statuses.
async fn diagnose(op: &KubeOp, obs: &Observation, scope: &Scope, ctx: &Ctx) -> Vec<Attachment> {
    let mut out = Vec::new();
    let Some(kt) = ctx.target.kube.as_ref() else {
        return out;
    };
    let objects: Vec<&Value> = match obs.doc().get("items").and_then(Value::as_array) {
        Some(items) => items.iter().take(3).collect(),
        None if obs.doc().is_object() && obs.doc().get("metadata").is_some() => vec![obs.doc()],
        None => Vec::new(),
    };
    for o in &objects {
        let kind = o.get("kind").and_then(Value::as_str).unwrap_or(&op.kind);
        let name = o
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        out.push(Attachment {
            title: format!("{kind}/{name} (last observed)"),
            body: crate::spec::yaml::to_string(o),
        });
    }
    let ns = op
        .namespace
        .as_ref()
        .and_then(|n| scope.render_str(n).ok())
        .unwrap_or_else(|| kt.namespace.clone());
    // Events of each object; for a Job also of its pods.
    let mut names: Vec<String> = objects
        .iter()
        .filter_map(|o| {
            o.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    if names.is_empty() {
        if let Some(n) = op.name.as_ref().and_then(|n| scope.render_str(n).ok()) {
            names.push(n);
        }
    }
    let pods: Api<Pod> = Api::namespaced(kt.client.clone(), &ns);
    let mut pod_values: Vec<Value> = objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("Pod"))
        .map(|o| (*o).clone())
        .collect();
    for o in &objects {
        if o.get("kind").and_then(Value::as_str) == Some("Job") {
            let jn = o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Ok(list) = pods
                .list(&ListParams::default().labels(&format!("job-name={jn}")))
                .await
            {
                for p in list.items {
                    if let Some(n) = &p.metadata.name {
                        names.push(n.clone());
                    }
                    pod_values.push(serde_json::to_value(p).unwrap_or(Value::Null));
                }
            }
        }
    }
    let events: Api<KEvent> = Api::namespaced(kt.client.clone(), &ns);
    let mut lines = Vec::new();
    for n in names.iter().take(6) {
        if let Ok(list) = events
            .list(&ListParams::default().fields(&format!("involvedObject.name={n}")))
            .await
        {
            for e in list.items.iter().rev().take(10) {
                lines.push(format!(
                    "{} {} {}/{}: {} (x{})",
                    e.type_.as_deref().unwrap_or("-"),
                    e.reason.as_deref().unwrap_or("-"),
                    e.involved_object.kind.as_deref().unwrap_or("-"),
                    n,
                    e.message.as_deref().unwrap_or(""),
                    e.count.unwrap_or(1)
                ));
            }
        }
    }
    if !lines.is_empty() {
        out.push(Attachment {
            title: "recent Events".into(),
            body: lines.join("\n"),
        });
    }
    let mut statuses = Vec::new();
    for p in &pod_values {
        let pn = p
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let phase = p
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("?");
        statuses.push(format!("pod {pn}: phase {phase}"));
        for c in p
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            statuses.push(format!(
                "  container {}: ready={} restarts={} state={}",
                c.get("name").and_then(Value::as_str).unwrap_or("?"),
                c.get("ready").and_then(Value::as_bool).unwrap_or(false),
                c.get("restartCount").and_then(Value::as_i64).unwrap_or(0),
                c.get("state").map(|s| s.to_string()).unwrap_or_default()
            ));
        }
    }
    if !statuses.is_empty() {
        out.push(Attachment {
            title: "container statuses".into(),
            body: statuses.join("\n"),
        });
    }
    out
}
