//! Queue-backend benchmarks, self-contained like `bench slots` (sandbox ERPs and the
//! daemon in this process, a scratch SQLite database); the SQS variant uses a fresh queue
//! on the SQS-compatible server at `--endpoint-url`.
//!
//! - `bench enqueue` (`enqueue.rs`): the API's 202 latency while messages are sent.
//! - `bench drain` (`drain.rs`): items per second end to end, and the CPU each side spends.

mod backend;
mod cpu;
mod drain;
mod enqueue;

pub use backend::BackendArgs;
pub(super) use cpu::{CpuSample, SANDBOX_THREADS, emulator_pid, fmt_cpu};
pub use drain::{DrainArgs, DrainReport, drain};
pub use enqueue::{EnqueueArgs, EnqueueReport, enqueue};
