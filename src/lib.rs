//! focusqa: declarative YAML test scenarios for the Focus Server API and Kubernetes.
//!
//! Layers, from the inside out: `spec` (model + loading, no I/O clients), `template`,
//! `engine` (steps, assertions, polling, fan-out scheduling), `stats` (the fan-out's samples,
//! aggregation and thresholds), `target` (HTTP + Kubernetes clients),
//! `results` (the model reporters read), `report` (console, JSON, JUnit, HTML),
//! `coverage`, `shard` (split runs and their merge), `history` (run records and trends), and
//! `cli`. The simulators are the crate `focusqa-sim` (crates/focusqa-sim), re-exported as `sim`:
//! they depend on nothing of the runner.

pub mod cli;
pub mod config;
pub mod coverage;
pub mod engine;
pub mod filters;
pub mod history;
pub mod loading;
pub mod report;
pub mod results;
pub mod shard;
pub use focusqa_sim as sim;
pub mod spec;
pub mod stats;
pub mod targets;
pub mod template;
