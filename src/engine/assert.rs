//! Running an `assert` step: its checks on the variables.

use super::expect::eval_check;
use super::step::{vars_doc, Execute};
use super::{Ctx, ExecError, Observation};
use crate::results::StepKindName;
use crate::spec::{Assert, Step};
use crate::template::Scope;

impl Execute for Assert {
    fn result_name(&self) -> StepKindName {
        StepKindName::Assert
    }

    async fn execute(
        &self,
        step: &Step,
        scope: &mut Scope,
        _ctx: &Ctx,
        _in_cleanup: bool,
    ) -> Result<Observation, ExecError> {
        let doc = vars_doc(scope);
        let mut assertions = Vec::new();
        for c in &self.0 {
            assertions.extend(eval_check(c, &doc, scope, step.pos)?);
        }
        Ok(Observation {
            doc: doc.into(),
            assertions,
            ..Default::default()
        })
    }

    fn on_lane_threads(&self, _ctx: &Ctx) -> bool {
        true
    }
}
