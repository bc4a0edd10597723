//! Every end-to-end test in one binary: the tests link the library, the simulator and their
//! dependencies once instead of once per file (about 2 GB and a minute less for a clean
//! `cargo test`). Each module is one of the files beside this one; `cargo test --test all <module>`
//! runs one of them.

mod common;
mod sim_common;

mod architecture;
mod behind_nginx;
mod bounds_props;
mod calibration;
mod checks;
mod cli_run;
mod coverage_where;
mod deploy;
mod docs_book;
mod fanout;
mod fanout_verdicts;
mod html_report;
mod http_as_written;
mod http_features;
mod in_cluster;
mod input_bounds;
mod interrupts;
mod kube_scale;
mod readable_reports;
mod real_kube;
mod real_kube_apf;
mod real_kube_conformance;
mod real_kube_rbac;
mod real_kube_sim;
mod real_kube_watch;
mod real_timing;
mod scale;
mod schemas;
mod secrets;
mod selectors_and_queries;
mod shipped_suite;
mod sim_calibration;
mod sim_focus;
mod sim_hardening;
mod sim_kube;
mod sim_kubectl;
mod sim_openapi;
mod sim_schemathesis;
mod sim_throughput;
mod targets;
mod tls;
mod validate;
mod verdicts;
mod virtual_time;
