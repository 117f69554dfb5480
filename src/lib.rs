//! erpsync: asynchronous accounts-payable ↔ ERP synchronization.
//!
//! `main.rs` only parses the command line; everything lives here so tests, the demo and the
//! benchmarks can run the daemon in-process.

pub mod actors;
pub mod bench;
pub mod cli;
pub mod config;
pub mod connections;
pub mod daemon;
pub mod demo;
pub mod domain;
pub mod erp;
pub mod http;
pub mod jobs;
pub mod limits;
pub mod pipeline;
pub mod preview;
pub mod queue;
pub mod redrive;
pub mod retention;
pub mod rig;
pub mod samples;
pub mod secrets;
pub mod store;
pub mod systemd;
pub mod telemetry;
pub mod util;
