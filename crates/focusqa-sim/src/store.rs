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

    /// Oldest resourceVersion from which a watch can be resumed without loss: a watch from v
    /// needs the changes after v, so one from just before the oldest kept change loses nothing.
    pub fn oldest_resumable(&self) -> u64 {
        match self.history.front() {
            Some(c) if self.history.len() >= self.history_cap => c.rv - 1,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::new(broadcast::channel(16).0)
    }

    fn pod(ns: &str, name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": ns}})
    }

    fn rv_of(o: &Value) -> u64 {
        o["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn every_write_bumps_the_resource_version_and_is_recorded_in_order() {
        let mut s = store();
        let rv0 = s.resource_version();
        s.create(Kind::Pod, pod("focus", "a"));
        assert_eq!(rv_of(s.get(Kind::Pod, "focus", "a").unwrap()), rv0 + 1);
        assert!(s.modify(Kind::Pod, "focus", "a", |p| p["x"] = json!(1)));
        assert_eq!(rv_of(s.get(Kind::Pod, "focus", "a").unwrap()), rv0 + 2);
        // Absent objects: no write, no new resourceVersion.
        assert!(!s.modify(Kind::Pod, "focus", "b", |_| {}));
        assert!(!s.modify(Kind::Job, "focus", "a", |_| {}));
        assert!(s.delete(Kind::Pod, "other", "a").is_none());
        assert_eq!(s.resource_version(), rv0 + 2);
        let gone = s.delete(Kind::Pod, "focus", "a").unwrap();
        assert_eq!((rv_of(&gone), gone["x"].clone()), (rv0 + 3, json!(1)));
        let h: Vec<_> = s.history_after(rv0).map(|c| (c.etype, c.rv)).collect();
        assert_eq!(
            h,
            [
                ("ADDED", rv0 + 1),
                ("MODIFIED", rv0 + 2),
                ("DELETED", rv0 + 3)
            ]
        );
        assert_eq!(s.history_after(rv0 + 2).count(), 1);
    }

    #[test]
    fn live_subscribers_receive_each_change_with_its_namespace() {
        let mut s = store();
        let mut rx = s.subscribe();
        s.create(Kind::Pod, pod("focus", "a"));
        s.delete(Kind::Pod, "focus", "a");
        let (a, d) = (rx.try_recv().unwrap(), rx.try_recv().unwrap());
        assert_eq!(
            (a.etype, a.namespace.as_str(), d.etype),
            ("ADDED", "focus", "DELETED")
        );
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn list_is_by_kind_and_namespace_in_name_order_and_delete_all_keeps_other_kinds() {
        let mut s = store();
        for (ns, n) in [("focus", "c"), ("default", "b"), ("focus", "a")] {
            s.create(Kind::Pod, pod(ns, n));
        }
        s.create(Kind::Job, pod("focus", "j"));
        s.create(Kind::Node, pod("", "n"));
        let names = |v: Vec<&Value>| {
            v.iter()
                .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(s.list(Kind::Pod, Some("focus"))), ["a", "c"]);
        assert_eq!(names(s.list(Kind::Pod, None)), ["b", "a", "c"]);
        assert_eq!(s.list(Kind::Pod, Some("nope")).len(), 0);
        s.delete_all(&[Kind::Pod, Kind::Job]);
        assert_eq!(
            (s.count(Kind::Pod), s.count(Kind::Job), s.count(Kind::Node)),
            (0, 0, 1)
        );
    }

    #[test]
    fn events_beyond_the_cap_are_evicted_oldest_first() {
        let mut s = store();
        s.event_cap = 2;
        for n in ["e1", "e2", "e3"] {
            s.create(Kind::Event, pod("focus", n));
        }
        assert!(!s.contains(Kind::Event, "focus", "e1"));
        assert!(s.contains(Kind::Event, "focus", "e2") && s.contains(Kind::Event, "focus", "e3"));
        assert_eq!(s.history.back().map(|c| c.etype), Some("DELETED"));
    }

    #[test]
    fn history_is_bounded_and_the_oldest_resumable_version_moves_once_it_is_full() {
        let mut s = store();
        s.history_cap = 3;
        let rv0 = s.resource_version();
        s.create(Kind::Pod, pod("focus", "a"));
        assert_eq!(s.oldest_resumable(), 0, "not full yet: any version resumes");
        for i in 0..4 {
            s.modify(Kind::Pod, "focus", "a", |p| p["i"] = json!(i));
        }
        // rv0+1 ..= rv0+5 written; the last 3 kept.
        assert_eq!(s.history.len(), 3);
        assert_eq!(
            s.history_after(0).map(|c| c.rv).collect::<Vec<_>>(),
            [rv0 + 3, rv0 + 4, rv0 + 5]
        );
        assert_eq!(s.oldest_resumable(), rv0 + 2);
    }

    /// A watch from version v needs the changes after v. With the history holding rv0+3..,
    /// resuming from rv0+2 loses nothing: no 410 Expired (the API server's watch cache refuses
    /// only below oldest-1); from rv0+1 it would lose rv0+2.
    #[test]
    fn a_watch_from_just_before_the_oldest_kept_change_is_still_resumable() {
        let mut s = store();
        s.history_cap = 3;
        let rv0 = s.resource_version();
        s.create(Kind::Pod, pod("focus", "a"));
        for i in 0..4 {
            s.modify(Kind::Pod, "focus", "a", |p| p["i"] = json!(i));
        }
        let from = rv0 + 2;
        assert_eq!(
            s.history_after(from).count(),
            3,
            "every change after it is kept"
        );
        assert!(
            from >= s.oldest_resumable(),
            "so kube::watch_response must not expire it"
        );
        assert!(
            rv0 + 1 < s.oldest_resumable(),
            "one earlier would lose rv0+2"
        );
    }
}
