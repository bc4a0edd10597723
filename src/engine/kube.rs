//! `kube` steps: operations on any Kubernetes resource kind.

use serde_json::Value;

use super::{Ctx, ExecError, Observation};
use crate::spec::{KubeOp, Step};
use crate::template::Scope;

pub async fn execute(op: &KubeOp, _step: &Step, _scope: &mut Scope, ctx: &Ctx) -> Result<Observation, ExecError> {
    let _ = ctx.target.kube.as_ref().ok_or_else(|| ExecError::infra("no Kubernetes access on this target"))?;
    Err(ExecError::infra(format!("kube `{}` is not available yet", op.op.as_str())).with_doc(Value::Null))
}

impl ExecError {
    fn with_doc(self, _v: Value) -> Self {
        self
    }
}
