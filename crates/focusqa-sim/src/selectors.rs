//! Kubernetes label and field selectors (the subset `kubectl` and `kube` send).

use super::store::Kind;
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed label selector; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector(Vec<LabelReq>);

/// Split on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?` of at most `max` characters.
fn valid_name(n: &str, max: usize) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A DNS-1123 subdomain: lowercase labels joined by dots, at most 253 characters.
fn valid_subdomain(p: &str) -> bool {
    p.len() <= 253
        && p.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// A label key: `[prefix/]name`, prefix a DNS subdomain, name at most 63 characters.
fn valid_key(k: &str) -> bool {
    match k.split('/').collect::<Vec<_>>().as_slice() {
        [name] => valid_name(name, 63),
        [prefix, name] => valid_subdomain(prefix) && valid_name(name, 63),
        _ => false,
    }
}

/// A label value: empty or a name of at most 63 characters.
fn valid_value(v: &str) -> bool {
    v.is_empty() || valid_name(v, 63)
}

fn parse_int(key: &str, v: &str) -> Result<i64, String> {
    v.trim().parse::<i64>().map_err(|_| {
        format!(
            "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer (key '{key}', value '{}')",
            v.trim()
        )
    })
}

fn parse_set(key: &str, rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            format!("unable to parse requirement: set for '{key}' must be in parentheses")
        })?;
    let vals: Vec<String> = inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if vals.is_empty() {
        return Err(format!("unable to parse requirement: for 'in', 'notin' operators, values set can't be empty (key '{key}')"));
    }
    for v in &vals {
        if !valid_value(v) {
            return Err(format!("invalid label value: '{v}'"));
        }
    }
    Ok(vals)
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let req = if let Some(k) = part.strip_prefix('!') {
                LabelReq::NotExists(k.trim().to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                LabelReq::NotEq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once("==") {
                LabelReq::Eq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once('=') {
                LabelReq::Eq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once('>') {
                LabelReq::Gt(k.trim().to_string(), parse_int(k.trim(), v)?)
            } else if let Some((k, v)) = part.split_once('<') {
                LabelReq::Lt(k.trim().to_string(), parse_int(k.trim(), v)?)
            } else if let Some(idx) = part.find(" notin ").or_else(|| part.find(" notin(")) {
                let k = part[..idx].trim().to_string();
                let vals = parse_set(&k, &part[idx + 6..])?;
                LabelReq::NotIn(k, vals)
            } else if let Some(idx) = part.find(" in ").or_else(|| part.find(" in(")) {
                let k = part[..idx].trim().to_string();
                let vals = parse_set(&k, &part[idx + 3..])?;
                LabelReq::In(k, vals)
            } else {
                LabelReq::Exists(part.trim().to_string())
            };
            let (key, value) = match &req {
                LabelReq::Eq(k, v) | LabelReq::NotEq(k, v) => (k, Some(v)),
                LabelReq::In(k, _)
                | LabelReq::NotIn(k, _)
                | LabelReq::Exists(k)
                | LabelReq::NotExists(k)
                | LabelReq::Gt(k, _)
                | LabelReq::Lt(k, _) => (k, None),
            };
            if !valid_key(key) {
                return Err(format!(
                    "unable to parse requirement: invalid label key \"{key}\""
                ));
            }
            if let Some(v) = value {
                if !valid_value(v) {
                    return Err(format!(
                        "unable to parse requirement: invalid label value: \"{v}\""
                    ));
                }
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

/// Field selectors each kind supports, as the real API server (any other field answers 400
/// `field label not supported: <field>`).
pub fn supported_fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Pod => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        Kind::Job => &["metadata.name", "metadata.namespace", "status.successful"],
        Kind::Event => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        Kind::Node => &["metadata.name", "spec.unschedulable"],
        Kind::Namespace => &["metadata.name", "status.phase"],
    }
}

/// The string a field selector compares for `field` of `obj` (unset = "", as the server's
/// field sets; booleans and counters default to "false" / "0").
fn field_value(obj: &Value, field: &str) -> String {
    let (path, default) = match field {
        "status.successful" => ("status.succeeded", "0"),
        "source" => ("source.component", ""),
        "spec.hostNetwork" | "spec.unschedulable" => (field, "false"),
        _ => (field, ""),
    };
    let mut cur = Some(obj);
    for seg in path.split('.') {
        cur = cur.and_then(|c| c.get(seg));
    }
    match cur {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => default.to_string(),
        Some(v) => v.to_string(),
    }
}

/// A parsed field selector (`path=value`, `path==value`, `path!=value`); empty matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Syntax only; see [`FieldSelector::parse_for`] for the fields a kind supports.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (path, eq, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                ));
            };
            let path = path.trim();
            if path.is_empty() || !path.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
                return Err(format!("field label not supported: {path}"));
            }
            reqs.push((path.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    /// Parse, then reject fields `kind` does not support (as the API server: 400).
    pub fn parse_for(kind: Kind, s: &str) -> Result<Self, String> {
        let sel = Self::parse(s)?;
        let ok = supported_fields(kind);
        if let Some((path, _, _)) = sel.0.iter().find(|(p, _, _)| !ok.contains(&p.as_str())) {
            return Err(format!("field label not supported: {path}"));
        }
        Ok(sel)
    }

    /// The value required for `path` by an equality requirement, if any.
    pub fn required(&self, path: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(p, eq, _)| *eq && p == path)
            .map(|(_, _, v)| v.as_str())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0
            .iter()
            .all(|(path, eq, want)| (field_value(obj, path) == *want) == *eq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let o = json!({"metadata": {"labels": {"app": "baby-analyzer", "focus.job-id": "18-3"}}});
        for (sel, want) in [
            ("", true),
            ("app=baby-analyzer", true),
            ("app==baby-analyzer,focus.job-id=18-3", true),
            ("app!=baby-analyzer", false),
            ("app in (x, baby-analyzer)", true),
            ("app notin (x,y)", true),
            ("focus.job-id in (18-4)", false),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("missing notin (a)", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&o),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("app in x").is_err());
        assert!(LabelSelector::parse("a b=c").is_err());
        let n = json!({"metadata": {"labels": {"rank": "3", "app": "x"}}});
        for (sel, want) in [
            ("rank>2", true),
            ("rank>3", false),
            ("rank<4", true),
            ("app>1", false),
            ("missing<9", false),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&n),
                want,
                "{sel}"
            );
        }
        for ok in [
            "focus.example.com/job-id=a",
            "app=",
            "a.b_c-d=e.f_g-h",
            "x in (a, b)",
        ] {
            assert!(LabelSelector::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "-a=b",
            "a-=b",
            "a=-b",
            "a=b_",
            "a/b/c",
            "/a",
            "Example.com/a",
            "a>b",
            "x<",
            "=b",
            "!",
            "a in ()",
            "a in (b",
            "a in (-b)",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
        assert!(LabelSelector::parse(&format!("{}=x", "k".repeat(63))).is_ok());
        assert!(LabelSelector::parse(&format!("{}=x", "k".repeat(64))).is_err());
        assert!(LabelSelector::parse(&format!("k={}", "v".repeat(64))).is_err());
    }

    #[test]
    fn field_selectors_per_kind() {
        for kind in [
            Kind::Pod,
            Kind::Job,
            Kind::Event,
            Kind::Node,
            Kind::Namespace,
        ] {
            for f in supported_fields(kind) {
                assert!(FieldSelector::parse_for(kind, &format!("{f}=x")).is_ok());
            }
            let e = FieldSelector::parse_for(kind, "spec.foo=x").unwrap_err();
            assert_eq!(e, "field label not supported: spec.foo");
        }
        assert!(FieldSelector::parse_for(Kind::Job, "status.phase=Running").is_err());
        assert!(FieldSelector::parse_for(Kind::Node, "metadata.namespace=x").is_err());
        // Mapped and defaulted fields.
        let job = json!({"status": {"succeeded": 1}});
        let sel = |k, s| FieldSelector::parse_for(k, s).unwrap();
        assert!(sel(Kind::Job, "status.successful=1").matches(&job));
        assert!(sel(Kind::Job, "status.successful=0").matches(&json!({"status": {}})));
        let ev = json!({"source": {"component": "kubelet"}});
        assert!(sel(Kind::Event, "source=kubelet").matches(&ev));
        assert!(sel(Kind::Pod, "spec.hostNetwork=false").matches(&json!({"spec": {}})));
    }

    #[test]
    fn field_selectors() {
        let o = json!({"metadata": {"name": "p"}, "status": {"phase": "Running"}, "involvedObject": {"name": "j"}});
        assert!(FieldSelector::parse("metadata.name=p,status.phase=Running")
            .unwrap()
            .matches(&o));
        assert!(!FieldSelector::parse("status.phase!=Running")
            .unwrap()
            .matches(&o));
        assert!(FieldSelector::parse("involvedObject.name==j")
            .unwrap()
            .matches(&o));
        assert!(FieldSelector::parse("spec.nodeName=").unwrap().matches(&o));
        assert!(FieldSelector::parse("bad").is_err());
    }
}
