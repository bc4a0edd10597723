//! In-memory Kubernetes object store: objects as JSON, a global resourceVersion counter,
//! a bounded event history for watches that resume from a resourceVersion, and a broadcast
//! channel feeding live watches.

use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Resource kinds served by the simulated API server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Job,
    Pod,
    Node,
    Event,
    Namespace,
}

impl Kind {
    pub fn kind(self) -> &'static str {
        match self {
            Kind::Job => "Job",
            Kind::Pod => "Pod",
            Kind::Node => "Node",
            Kind::Event => "Event",
            Kind::Namespace => "Namespace",
        }
    }
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Job => "jobs",
            Kind::Pod => "pods",
            Kind::Node => "nodes",
            Kind::Event => "events",
            Kind::Namespace => "namespaces",
        }
    }
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Job => "job",
            Kind::Pod => "pod",
            Kind::Node => "node",
            Kind::Event => "event",
            Kind::Namespace => "namespace",
        }
    }
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Job => "batch/v1",
            _ => "v1",
        }
    }
    pub fn group(self) -> &'static str {
        match self {
            Kind::Job => "batch",
            _ => "",
        }
    }
    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Node | Kind::Namespace)
    }
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::Job => &[],
            Kind::Pod => &["po"],
            Kind::Node => &["no"],
            Kind::Event => &["ev"],
            Kind::Namespace => &["ns"],
        }
    }
    pub fn core_kinds() -> &'static [Kind] {
        &[Kind::Pod, Kind::Node, Kind::Event, Kind::Namespace]
    }
    pub fn from_core_plural(p: &str) -> Option<Kind> {
        Kind::core_kinds().iter().copied().find(|k| k.plural() == p)
    }
}

/// One change, as sent on a watch.
#[derive(Debug)]
pub struct Change {
    pub kind: Kind,
    pub etype: &'static str,
    pub rv: u64,
    pub namespace: String,
    pub object: Arc<Value>,
}

type Key = (Kind, String, String);

pub struct Store {
    objects: BTreeMap<Key, Arc<Value>>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    history_cap: usize,
    tx: broadcast::Sender<Arc<Change>>,
    event_order: VecDeque<(String, String)>,
    event_cap: usize,
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl Store {
    pub fn new(tx: broadcast::Sender<Arc<Change>>) -> Self {
        Store {
            objects: BTreeMap::new(),
            rv: 1000,
            history: VecDeque::new(),
            history_cap: 20_000,
            tx,
            event_order: VecDeque::new(),
            event_cap: 10_000,
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// Oldest resourceVersion from which a watch can be resumed without loss.
    pub fn oldest_resumable(&self) -> u64 {
        match self.history.front() {
            Some(c) if self.history.len() >= self.history_cap => c.rv,
            _ => 0,
        }
    }

    /// Changes with rv > `after`, in order.
    pub fn history_after(&self, after: u64) -> impl Iterator<Item = &Arc<Change>> {
        self.history.iter().filter(move |c| c.rv > after)
    }

    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn publish(&mut self, kind: Kind, etype: &'static str, rv: u64, object: Arc<Value>) {
        let namespace = meta_str(&object, "namespace").to_string();
        let change = Arc::new(Change {
            kind,
            etype,
            rv,
            namespace,
            object,
        });
        if self.history.len() >= self.history_cap {
            self.history.pop_front();
        }
        self.history.push_back(change.clone());
        // No receivers is fine.
        let _ = self.tx.send(change);
    }

    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(kind, ns.to_string(), name.to_string()))
            .map(|v| v.as_ref())
    }

    pub fn contains(&self, kind: Kind, ns: &str, name: &str) -> bool {
        self.get(kind, ns, name).is_some()
    }

    /// All objects of a kind, optionally in one namespace, in name order.
    pub fn list(&self, kind: Kind, ns: Option<&str>) -> Vec<&Value> {
        self.objects
            .range((kind, String::new(), String::new())..)
            .take_while(|((k, _, _), _)| *k == kind)
            .filter(|((_, n, _), _)| ns.is_none_or(|want| want == n))
            .map(|(_, v)| v.as_ref())
            .collect()
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.list(kind, None).len()
    }

    /// Insert a new object (metadata.resourceVersion is set here). Emits ADDED.
    pub fn create(&mut self, kind: Kind, mut obj: Value) {
        let rv = self.bump();
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        let key = (
            kind,
            meta_str(&obj, "namespace").to_string(),
            meta_str(&obj, "name").to_string(),
        );
        if kind == Kind::Event {
            self.event_order.push_back((key.1.clone(), key.2.clone()));
        }
        let obj = Arc::new(obj);
        self.objects.insert(key, obj.clone());
        self.publish(kind, "ADDED", rv, obj);
        if kind == Kind::Event {
            while self.event_order.len() > self.event_cap {
                if let Some((ns, name)) = self.event_order.pop_front() {
                    self.delete(Kind::Event, &ns, &name);
                }
            }
        }
    }

    /// Modify an object in place; emits MODIFIED. Returns false when absent.
    pub fn modify(&mut self, kind: Kind, ns: &str, name: &str, f: impl FnOnce(&mut Value)) -> bool {
        let key = (kind, ns.to_string(), name.to_string());
        if !self.objects.contains_key(&key) {
            return false;
        }
        let rv = self.bump();
        let snapshot = match self.objects.get_mut(&key) {
            Some(entry) => {
                let obj = Arc::make_mut(entry);
                f(obj);
                if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("resourceVersion".into(), json!(rv.to_string()));
                }
                entry.clone()
            }
            None => return false,
        };
        self.publish(kind, "MODIFIED", rv, snapshot);
        true
    }

    /// Remove an object; emits DELETED with a fresh resourceVersion and returns it.
    pub fn delete(&mut self, kind: Kind, ns: &str, name: &str) -> Option<Arc<Value>> {
        let key = (kind, ns.to_string(), name.to_string());
        let mut obj = self.objects.remove(&key)?;
        let rv = self.bump();
        if let Some(m) = Arc::make_mut(&mut obj)
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
        {
            m.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        self.publish(kind, "DELETED", rv, obj.clone());
        Some(obj)
    }

    /// Delete every object of the given kinds (used by reset).
    pub fn delete_all(&mut self, kinds: &[Kind]) {
        let keys: Vec<Key> = self
            .objects
            .keys()
            .filter(|(k, _, _)| kinds.contains(k))
            .cloned()
            .collect();
        for (k, ns, name) in keys {
            self.delete(k, &ns, &name);
        }
        if kinds.contains(&Kind::Event) {
            self.event_order.clear();
        }
    }
}
