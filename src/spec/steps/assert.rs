//! The `assert` step: checks on the variables, no request.

use super::KindModel;
use crate::spec::Check;

/// `assert: [checks]`.
#[derive(Debug, Clone)]
pub struct Assert(pub Vec<Check>);

impl KindModel for Assert {
    fn name(&self) -> &'static str {
        "assert"
    }
    fn label(&self) -> String {
        format!("assert ({} checks)", self.0.len())
    }
}
