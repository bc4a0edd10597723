//! The blocks: `foreach` (a block of steps once per item), `repeat` (a block again while a
//! condition holds) and `include` (the steps of another file, here).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{KindModel, Step};
use crate::spec::Count;

/// Run a block of steps once per item of a list.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Foreach {
    /// The list: a YAML list, or a template rendering to one (`"{{ job_ids }}"`).
    #[schemars(with = "Value")]
    pub items: Value,
    /// Name of the current item inside the block (defined there only); `index` (0-based) too.
    #[serde(rename = "as")]
    pub as_: String,
    /// Steps run for each item. With `concurrency` 1 (default) items run in order and share the
    /// variables (captures carry over, `append` collects); with more, each item keeps its own.
    pub steps: Vec<Step>,
    /// Items in flight at once (default 1: one after the other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Count>,
}

/// Run a block of steps, then again while `while` holds: at least once, at most `max` times.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    /// Expression checked after each run (`"{{ has_next }}"` or `has_next`): another run while true.
    #[serde(rename = "while")]
    pub while_: String,
    /// Most runs (default 100, at most 10,000); still true after `max` runs fails the step.
    #[serde(default = "default_repeat_max")]
    #[schemars(range(min = 1, max = 10000))]
    pub max: u64,
    /// Steps of one run (they share the variables: a capture of one run is seen by the next).
    pub steps: Vec<Step>,
}

fn default_repeat_max() -> u64 {
    100
}

fn compact_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `include: path`: the steps of another file, read when the spec is loaded.
#[derive(Debug, Clone, Default)]
pub struct Include {
    /// As written (relative to the including file).
    pub path: String,
    /// The file as read, and as shown in diagnostics and failure locations.
    pub file: PathBuf,
    pub display: String,
    /// The included steps, positioned in their own file.
    pub steps: Vec<Step>,
}

impl KindModel for Foreach {
    fn name(&self) -> &'static str {
        "foreach"
    }
    fn label(&self) -> String {
        format!("foreach {} in {}", self.as_, compact_value(&self.items))
    }
    fn blocks(&self) -> Vec<(&'static str, &[Step])> {
        vec![("foreach.steps", &self.steps)]
    }
    fn blocks_mut(&mut self) -> Vec<(&'static str, &mut Vec<Step>)> {
        vec![("foreach.steps", &mut self.steps)]
    }
    fn waits(&self) -> bool {
        true
    }
}

impl KindModel for Repeat {
    fn name(&self) -> &'static str {
        "repeat"
    }
    fn label(&self) -> String {
        format!("repeat while {}", self.while_)
    }
    fn blocks(&self) -> Vec<(&'static str, &[Step])> {
        vec![("repeat.steps", &self.steps)]
    }
    fn blocks_mut(&mut self) -> Vec<(&'static str, &mut Vec<Step>)> {
        vec![("repeat.steps", &mut self.steps)]
    }
    fn waits(&self) -> bool {
        true
    }
}

impl KindModel for Include {
    fn name(&self) -> &'static str {
        "include"
    }
    fn label(&self) -> String {
        format!("include {}", self.path)
    }
    // Its steps are another file's: no block of this one (`blocks` is empty), but run here.
    fn nested(&self) -> Vec<&[Step]> {
        vec![&self.steps]
    }
    fn waits(&self) -> bool {
        true
    }
}
