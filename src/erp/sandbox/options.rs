//! How the simulated ERP behaves, and what it reports it saw.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// What only the Xero dialect reads: its OAuth clients, tenants and limits.
    #[command(flatten)]
    pub xero: XeroOptions,
    /// What only the QuickBooks Online dialect reads: its OAuth clients, realms and limits.
    #[command(flatten)]
    pub quickbooks: super::quickbooks_options::QuickbooksOptions,
    /// What only the Business Central dialect reads: its Entra clients, company and limits.
    #[command(flatten)]
    pub business_central: super::bc_options::BusinessCentralOptions,
    /// What only the Sage Intacct dialect reads: its sender, company user, sessions and limit
    /// (boxed: the CLI's command enum stays small).
    #[command(flatten)]
    pub intacct: Box<super::intacct_options::IntacctOptions>,
    /// What only the NetSuite dialect reads: its account, TBA token and concurrency limit
    /// (boxed: the CLI's command enum stays small).
    #[command(flatten)]
    pub netsuite: Box<super::netsuite_options::NetsuiteOptions>,
}

/// An OAuth client the Xero dialect knows, with the refresh token it starts from.
pub type XeroClient = super::token_book::OAuthClient;

/// How the Xero dialect behaves. Its limits default to Xero's own (per tenant: 5 calls in
/// progress, 60 a minute, 5,000 a day; per app: 10,000 a minute); the generic
/// `--concurrency`, `--rate-per-min` and `--token` do not apply to it.
#[derive(Debug, Clone, clap::Args)]
pub struct XeroOptions {
    /// OAuth clients as CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN (repeatable); the refresh
    /// token is each client's first, rotated on every use.
    #[arg(long = "xero-client", default_value = "sandbox-client:sandbox-secret:sandbox-refresh-token")]
    pub clients: Vec<XeroClient>,
    /// Tenant ids accepted in `Xero-tenant-id` (repeatable).
    #[arg(long = "xero-tenant", default_value = XERO_SANDBOX_TENANT)]
    pub tenants: Vec<String>,
    /// Lifetime of an access token, in seconds (Xero: 1800).
    #[arg(long = "xero-access-token-secs", default_value_t = 1800)]
    pub access_token_secs: u64,
    /// How long a rotated refresh token still answers, in seconds (Xero: 30 minutes).
    #[arg(long = "xero-refresh-grace-secs", default_value_t = 1800)]
    pub refresh_grace_secs: u64,
    /// Calls in progress at once per tenant.
    #[arg(long = "xero-concurrent-limit", default_value_t = 5)]
    pub concurrent_limit: u64,
    /// Calls per minute per tenant.
    #[arg(long = "xero-minute-limit", default_value_t = 60)]
    pub minute_limit: u32,
    /// Calls per day per tenant.
    #[arg(long = "xero-day-limit", default_value_t = 5000)]
    pub day_limit: u32,
    /// Calls per minute across all tenants.
    #[arg(long = "xero-app-minute-limit", default_value_t = 10_000)]
    pub app_minute_limit: u32,
}

/// The tenant the Xero dialect serves unless told otherwise.
pub const XERO_SANDBOX_TENANT: &str = "6a5f8a3e-2b1c-4d6e-9f70-8a9b0c1d2e3f";

impl Default for XeroOptions {
    fn default() -> Self {
        XeroOptions {
            clients: vec![XeroClient {
                client_id: "sandbox-client".into(),
                client_secret: "sandbox-secret".into(),
                refresh_token: "sandbox-refresh-token".into(),
            }],
            tenants: vec![XERO_SANDBOX_TENANT.into()],
            access_token_secs: 1800,
            refresh_grace_secs: 1800,
            concurrent_limit: 5,
            minute_limit: 60,
            day_limit: 5000,
            app_minute_limit: 10_000,
        }
    }
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
            xero: XeroOptions::default(),
            quickbooks: Default::default(),
            business_central: Default::default(),
            intacct: Default::default(),
            netsuite: Default::default(),
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
    /// Attachments whose bytes a document already had under another file name: copies an
    /// exactly-once client must not make (a dialect that has attachment names).
    #[serde(default)]
    pub duplicate_attachments: u64,
    /// Refresh-token grants answered with new tokens.
    #[serde(default)]
    pub refreshes: u64,
    /// Throttled requests by the dialect's name for the limit hit (`minute`, `concurrent`…).
    #[serde(default)]
    pub throttled_by_kind: BTreeMap<String, u64>,
}
