//! `erpsync bench …`: self-contained benchmarks whose figures go in the README.
//!
//! - `slots`: the daemon against sandbox ERPs, drain time against the ideal.
//! - `render`: the pipeline's CPU work per invoice (serialize + PDF + CSV).

pub mod render;
mod slots;

pub use render::{RenderArgs, render};
pub use slots::{SlotsArgs, SlotsReport, slots};
