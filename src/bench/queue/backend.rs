//! Which queue backend a queue benchmark runs on, and the flags it shares.

use super::cpu::emulator_pid;
use crate::rig::RigQueue;
use anyhow::{Result, bail};

#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// `embedded` or `sqs`.
    #[arg(long, default_value = "embedded")]
    pub backend: String,
    /// SQS-compatible endpoint for `--backend sqs` (a fresh queue is created there).
    #[arg(long, env = "BENCH_SQS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Use a FIFO queue (SQS only).
    #[arg(long)]
    pub fifo: bool,
    /// Process id of the queue server, for its CPU figure (default: found by its port).
    #[arg(long)]
    pub emulator_pid: Option<u32>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl BackendArgs {
    pub(super) fn queue(&self) -> Result<RigQueue> {
        match (self.backend.as_str(), &self.endpoint_url) {
            ("embedded", _) => Ok(RigQueue::Embedded),
            ("sqs", Some(url)) => Ok(RigQueue::Sqs { endpoint_url: url.clone(), fifo: self.fifo }),
            ("sqs", None) => bail!("--backend sqs needs --endpoint-url (or BENCH_SQS_ENDPOINT_URL)"),
            (other, _) => bail!("--backend must be embedded or sqs, not {other:?}"),
        }
    }

    pub(super) fn emulator_pid(&self) -> Option<u32> {
        if self.backend != "sqs" {
            return None;
        }
        emulator_pid(self.emulator_pid, self.endpoint_url.as_deref()?)
    }
}
