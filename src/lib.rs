//! focusqa: declarative YAML test scenarios for the Focus Server API and Kubernetes.
//!
//! Layers, from the inside out: `spec` (model + loading, no I/O clients), `template`,
//! `engine` (steps, assertions, polling, fan-out), `target` (HTTP + Kubernetes clients),
//! `results` (the model reporters read), `report` (console, JSON, JUnit, HTML),
//! `coverage`, `shard` (split runs and their merge), `history` (run records and trends), `sim`
//! (the embedded simulator), and `cli`.

pub mod cli;
pub mod config;
pub mod coverage;
pub mod engine;
pub mod filters;
pub mod history;
pub mod report;
pub mod results;
pub mod shard;
pub mod sim;
pub mod spec;
pub mod targets;
pub mod template;
