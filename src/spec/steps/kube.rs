//! The `kube` step: one operation on a Kubernetes resource.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::KindModel;
use crate::spec::{Count, Dur};

/// Kubernetes operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KubeVerb {
    /// Get one object by name.
    Get,
    /// List objects (document = `{items: [...], count: n}`).
    List,
    /// Delete one object by name (or all matching a selector).
    Delete,
    /// Wait until the object exists and matches the expectations (get + polling); by selector,
    /// until the matches (at least one, or `count`) all meet the expectations.
    Wait,
    /// The object (or every object matching the selector) must be gone.
    Absent,
}

impl KubeVerb {
    pub fn as_str(self) -> &'static str {
        match self {
            KubeVerb::Get => "get",
            KubeVerb::List => "list",
            KubeVerb::Delete => "delete",
            KubeVerb::Wait => "wait",
            KubeVerb::Absent => "absent",
        }
    }
}

/// A Kubernetes operation on any resource kind.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeOp {
    /// get, list, delete, wait, absent.
    pub op: KubeVerb,
    /// Resource kind (`Job`, `Pod`, `Node`, `Event`, ...), resolved by discovery.
    pub kind: String,
    /// `group/version` when the kind is ambiguous (e.g. `batch/v1`).
    #[serde(
        default,
        rename = "apiVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace (default: the target's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Label selector, e.g. `focus.job-id={{ job_id }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// Field selector, e.g. `status.phase=Running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<String>,
    /// For `wait` by selector: how many objects must match (default: at least one). The step's
    /// `expect` must then hold for every match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Count>,
    /// For `wait`/`absent`: how long to keep checking (default 30s); polls every `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Dur>,
}

impl KindModel for KubeOp {
    fn name(&self) -> &'static str {
        "kube"
    }
    fn label(&self) -> String {
        format!("kube {} {}", self.op.as_str(), self.kind)
    }
    fn waits(&self) -> bool {
        matches!(self.op, KubeVerb::Wait | KubeVerb::Absent)
    }
}
