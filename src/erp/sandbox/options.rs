//! How the simulated ERP behaves, and what it reports it saw.

use serde::{Deserialize, Serialize};

/// How the simulated ERP behaves.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxOptions {
    /// Requests processed at once; past it the sandbox answers 429.
    #[arg(long, default_value_t = 4)]
    pub concurrency: u64,
    /// Requests per minute; past it the sandbox answers 429 with Retry-After.
    #[arg(long)]
    pub rate_per_min: Option<u32>,
    /// Processing time of each request.
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
    /// Random extra latency, uniformly 0..=jitter.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// Share of requests failing with 503 before doing anything (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Share of creates that commit and then stall for --stall-ms before answering (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub timeout_rate: f64,
    /// How long a "timeout after commit" stalls.
    #[arg(long, default_value_t = 35_000)]
    pub stall_ms: u64,
    /// Bearer token required on every call (none: no auth).
    #[arg(long)]
    pub token: Option<String>,
    /// How long idempotency keys are remembered, in seconds (0: not at all).
    #[arg(long, default_value_t = 360)]
    pub idempotency_ttl_secs: u64,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            concurrency: 4,
            rate_per_min: None,
            latency_ms: 20,
            jitter_ms: 0,
            fault_rate: 0.0,
            timeout_rate: 0.0,
            stall_ms: 35_000,
            token: None,
            idempotency_ttl_secs: 360,
        }
    }
}

/// What the sandbox saw. `max_concurrent_seen` counts every request in flight, including
/// those it refused, so a client exceeding the limit always shows here.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SandboxStats {
    pub requests: u64,
    pub max_concurrent_seen: u64,
    pub creates: u64,
    pub duplicate_creates: u64,
    pub idempotent_replays: u64,
    pub throttled: u64,
    pub faults: u64,
    pub stalls: u64,
    pub rejected: u64,
    pub lookups: u64,
    pub attachments: u64,
}
