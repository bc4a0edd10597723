//! focusqa library: spec model, engine, targets, reports, simulator.
pub mod sim;
