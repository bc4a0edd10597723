//! Running a `sleep` step.

use tokio::time::Instant;

use super::step::{vars_doc, Execute};
use super::{resolve_dur, Ctx, ExecError, Observation};
use crate::results::StepKindName;
use crate::spec::{Sleep, Step};
use crate::template::Scope;

impl Execute for Sleep {
    fn result_name(&self) -> StepKindName {
        StepKindName::Sleep
    }

    async fn execute(
        &self,
        _step: &Step,
        scope: &mut Scope,
        ctx: &Ctx,
        in_cleanup: bool,
    ) -> Result<Observation, ExecError> {
        let d = ctx.target.wall(resolve_dur(&self.0, scope)?);
        let t0 = Instant::now();
        tokio::select! {
            biased; // one outcome when both are ready at once (same seed, same run)
            _ = ctx.cancel.cancelled(), if !in_cleanup => return Err(ExecError::interrupted()),
            _ = tokio::time::sleep(d) => {}
        }
        Ok(Observation {
            elapsed: t0.elapsed(),
            doc: vars_doc(scope).into(),
            ..Default::default()
        })
    }

    fn on_lane_threads(&self, _ctx: &Ctx) -> bool {
        true
    }
}
