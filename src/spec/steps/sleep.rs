//! The `sleep` step: wait (scaled by the target's time scale on the simulator).

use super::KindModel;
use crate::spec::Dur;

/// `sleep: 2s`.
#[derive(Debug, Clone)]
pub struct Sleep(pub Dur);

impl KindModel for Sleep {
    fn name(&self) -> &'static str {
        "sleep"
    }
    fn label(&self) -> String {
        format!("sleep {}", self.0 .0)
    }
    fn waits(&self) -> bool {
        true
    }
}
