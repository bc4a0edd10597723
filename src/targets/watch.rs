//! Shared Kubernetes watches: every `kube wait`/`absent` step on the same kind, namespace and
//! selectors reads one reflector (one list, then one watch) instead of polling the API server
//! itself. 200 concurrent waits cost O(kinds) API requests, not O(jobs × polls).
//!
//! A watch only answers while it is live: until its first list completed, after a watch error
//! (any error, a 410 Gone after an API server restart among them, ends the watcher; a new one
//! lists again with backoff and the store is live from that list's end) or when it cannot start
//! at all (no `watch` permission), the steps read the API directly, so a verdict never comes
//! from a stale cache (`tests/real_kube_watch.rs` restarts a real API server under the waits).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// More distinct watches than this (a spec waiting on many different selectors) and further
/// keys are polled directly: every watch is an open connection and a cache.
const MAX_WATCHES: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    group: String,
    version: String,
    plural: String,
    namespace: Option<String>,
    labels: Option<String>,
    fields: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum Health {
    Starting,
    Live,
    /// A watch error after the first list: a new watcher lists again (with backoff).
    Lagging,
    /// The watch could not start (it is retried with backoff); steps poll the API directly.
    Failed,
}

struct Shared {
    store: Store<DynamicObject>,
    health: watch::Receiver<Health>,
    task: JoinHandle<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The watches of one Kubernetes target, started on first use and ended with the target.
#[derive(Clone, Default)]
pub struct Watches {
    map: Arc<Mutex<HashMap<Key, Arc<Shared>>>>,
}

/// What a step asks of a watch.
pub struct Query<'a> {
    pub resource: &'a ApiResource,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub labels: Option<&'a str>,
    pub fields: Option<&'a str>,
}

impl Watches {
    /// The objects matching `q` from a live shared watch, or `None` when no live watch can
    /// answer (the caller then asks the API server directly).
    pub async fn objects(&self, client: &kube::Client, q: &Query<'_>) -> Option<Vec<Value>> {
        let shared = self.get_or_start(client, q)?;
        let mut health = shared.health.clone();
        // Wait for the first list (the step's poll deadline bounds this wait).
        let live = loop {
            match &*health.borrow_and_update() {
                Health::Live => break true,
                Health::Failed | Health::Lagging => break false,
                Health::Starting => {}
            }
            if health.changed().await.is_err() {
                break false;
            }
        };
        if !live {
            return None;
        }
        let objs: Vec<Arc<DynamicObject>> = match q.name {
            Some(name) => {
                let mut r = ObjectRef::new_with(name, q.resource.clone());
                if let Some(ns) = q.namespace {
                    r = r.within(ns);
                }
                shared.store.get(&r).into_iter().collect()
            }
            None => shared.store.state(),
        };
        let mut out: Vec<Value> = objs
            .iter()
            .map(|o| serde_json::to_value(&**o).unwrap_or(Value::Null))
            .collect();
        // The store is a hash map: keep the API server's order (by name).
        out.sort_by(|a, b| object_name(a).cmp(&object_name(b)));
        Some(out)
    }

    fn get_or_start(&self, client: &kube::Client, q: &Query<'_>) -> Option<Arc<Shared>> {
        let key = Key {
            group: q.resource.group.clone(),
            version: q.resource.version.clone(),
            plural: q.resource.plural.clone(),
            namespace: q.namespace.map(str::to_owned),
            labels: q.labels.map(str::to_owned),
            fields: q.fields.map(str::to_owned),
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get(&key) {
            return Some(s.clone());
        }
        if map.len() >= MAX_WATCHES {
            return None;
        }
        let shared = Arc::new(start(client.clone(), &key, q.resource));
        map.insert(key, shared.clone());
        Some(shared)
    }
}

fn object_name(v: &Value) -> Option<&str> {
    v.pointer("/metadata/name").and_then(Value::as_str)
}

fn start(client: kube::Client, key: &Key, ar: &ApiResource) -> Shared {
    let api: Api<DynamicObject> = match &key.namespace {
        Some(ns) => Api::namespaced_with(client, ns, ar),
        None => Api::all_with(client, ar),
    };
    let mut cfg = watcher::Config::default();
    if let Some(l) = &key.labels {
        cfg = cfg.labels(l);
    }
    if let Some(f) = &key.fields {
        cfg = cfg.fields(f);
    }
    let mut writer = reflector::store::Writer::new(ar.clone());
    let store = writer.as_reader();
    let (tx, rx) = watch::channel(Health::Starting);
    let task = tokio::spawn(async move {
        let mut live_once = false;
        let mut delay = RETRY_MIN;
        loop {
            // A new watcher each time: a list, then a watch from the list's resourceVersion.
            let mut stream = std::pin::pin!(watcher(api.clone(), cfg.clone()));
            while let Some(ev) = stream.next().await {
                let Ok(ev) = ev else { break };
                writer.apply_watcher_event(&ev);
                if let Some(h) = health_after(&ev, live_once) {
                    if h == Health::Live {
                        live_once = true;
                        delay = RETRY_MIN;
                    }
                    tx.send_if_modified(|cur| std::mem::replace(cur, h.clone()) != h);
                }
            }
            // Any error ends this watcher. kube's watcher would resume from its last
            // resourceVersion and, on 410 Gone, re-list into a buffer while the store still
            // holds the state from before the gap; a step must not read that as current. So
            // the store is not live again until a fresh list completed (InitDone).
            let _ = tx.send(if live_once {
                Health::Lagging
            } else {
                Health::Failed
            });
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_MAX);
        }
    });
    Shared {
        store,
        health: rx,
        task,
    }
}

/// The first retry of a failed watch after this, doubling up to [`RETRY_MAX`]; meanwhile the
/// steps read the API directly.
const RETRY_MIN: std::time::Duration = std::time::Duration::from_millis(250);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(8);

/// Live only once a list completed: `Init` starts a re-list into a buffer (the store keeps the
/// old state until `InitDone` swaps it in), so from `Init` to `InitDone` the store is stale.
/// `None`: no change.
fn health_after<K>(ev: &watcher::Event<K>, live_once: bool) -> Option<Health> {
    match ev {
        watcher::Event::InitDone => Some(Health::Live),
        watcher::Event::Init if live_once => Some(Health::Lagging),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;

    #[test]
    fn a_re_list_is_not_live_until_it_completed() {
        let obj = || {
            DynamicObject::new(
                "x",
                &ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
            )
        };
        // first list: Starting until InitDone
        assert_eq!(health_after(&Event::<DynamicObject>::Init, false), None);
        assert_eq!(health_after(&Event::InitApply(obj()), false), None);
        assert_eq!(
            health_after(&Event::<DynamicObject>::InitDone, false),
            Some(Health::Live)
        );
        // live: events keep it live
        assert_eq!(health_after(&Event::Apply(obj()), true), None);
        assert_eq!(health_after(&Event::Delete(obj()), true), None);
        // a re-list (after 410 Gone): the store still holds the old state until InitDone
        assert_eq!(
            health_after(&Event::<DynamicObject>::Init, true),
            Some(Health::Lagging)
        );
        assert_eq!(health_after(&Event::InitApply(obj()), true), None);
        assert_eq!(
            health_after(&Event::<DynamicObject>::InitDone, true),
            Some(Health::Live)
        );
    }
}
