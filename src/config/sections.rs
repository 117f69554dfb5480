//! The smaller sections: `[database]`, `[http]`, `[retry]`, `[shutdown]`, `[log]`,
//! `[metrics]`, `[cluster]`, `[sandbox]`, `[secrets]` and `[webhooks]`.

use super::problem::{Problems, nz};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc` or `postgres://user@host/db`; defaults to
    /// `sqlite://<data_dir>/erpsync.db?mode=rwc`.
    pub url: Option<String>,
    /// Upper bound on pooled connections.
    pub max_connections: NonZeroU32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address of the API, /metrics and health endpoints. Loopback by default: put a
    /// reverse proxy in front to expose it.
    pub listen: SocketAddr,
    /// A second address for `/metrics`, `/healthz` and `/readyz` (no token needed there),
    /// so the scraper can reach them on a private network. When set, `/metrics` is served
    /// only there; the health endpoints stay on `listen` too, for load balancers.
    pub metrics_listen: Option<SocketAddr>,
    /// Largest request body accepted; a larger one is answered 413. The default holds a
    /// job of the most documents a job may have (10,000) at about 6.5 KiB each, ten times
    /// a typical invoice.
    pub max_body_bytes: NonZeroU64,
    /// Requests a minute one API token may make (bursts up to a tenth of it); past it the
    /// API answers 429 with `Retry-After`. Counted by each daemon on its own.
    pub requests_per_min_per_token: NonZeroU32,
    /// How often an event stream (`/v1/events`, `/v1/jobs/{id}/events`) sends a comment
    /// line while no event comes, so proxies and clients keep the connection open.
    pub sse_heartbeat_ms: NonZeroU32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// First backoff after a transient failure; doubles each attempt, with full jitter.
    pub base_delay_ms: NonZeroU32,
    /// Backoff cap.
    pub max_delay_secs: NonZeroU32,
    /// Attempts before a transiently failing item is dead-lettered. Attempts the ERP
    /// throttled (429) do not count; such an item is bounded by `queue.max_receives`.
    pub max_attempts: NonZeroU32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// On SIGTERM, how long in-flight items may take to finish before their messages are
    /// left to reappear on the queue.
    pub drain_timeout_secs: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for terminals, `json` for journald and log shippers.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `erpsync=debug,sea_orm=warn`.
    pub level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Hold per-connection concurrency slots in the database, so every daemon sharing it
    /// together stays within each connection's limit. Unset means: on with PostgreSQL.
    pub leases: Option<bool>,
    /// A slot not renewed for this long is free again (a dead daemon's slots come back).
    pub lease_ttl_secs: NonZeroU32,
    /// How long an item waits for a slot before going back to the queue with a delay.
    pub slot_wait_secs: NonZeroU32,
    /// This daemon's name in the slot table; default `<hostname>:<pid>:<random>`.
    pub instance_id: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig { leases: None, lease_ttl_secs: nz(30), slot_wait_secs: nz(30), instance_id: None }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Connections (in config order) that get their own `connection` label; the rest are
    /// summed under `other`, which bounds the series count.
    pub per_connection_max: u32,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { per_connection_max: 100 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Start an in-process sandbox ERP and a `sandbox` connection to it. Unset means: on
    /// when no connections are configured.
    pub enabled: Option<bool>,
    pub listen: SocketAddr,
    /// The sandbox's concurrency limit (it answers 429 past it).
    pub concurrency: NonZeroU32,
    /// Simulated processing time of each ERP call.
    pub latency_ms: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { url: None, max_connections: nz(8) }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: None,
            max_body_bytes: NonZeroU64::new(64 << 20).expect("non-zero"),
            requests_per_min_per_token: nz(6_000),
            sse_heartbeat_ms: nz(15_000),
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { base_delay_ms: nz(1_000), max_delay_secs: nz(600), max_attempts: nz(12) }
    }
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig { drain_timeout_secs: 30 }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Text, level: "info".into() }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            enabled: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8089)),
            concurrency: nz(4),
            latency_ms: 50,
        }
    }
}

impl HttpConfig {
    pub fn validate(&self, p: &mut Problems) {
        if self.metrics_listen.is_some_and(|m| m == self.listen && m.port() != 0) {
            p.add("http.metrics_listen", "must differ from http.listen (leave it unset to serve both there)");
        }
    }
}

impl LogConfig {
    pub fn validate(&self, p: &mut Problems) {
        if tracing_subscriber::EnvFilter::try_new(&self.level).is_err() {
            p.add("log.level", format!("{:?} is not a valid filter", self.level));
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// The key that encrypts secrets erpsync stores (the refresh tokens OAuth vendors
    /// rotate): `env:VAR`, `file:/path` or `credential:NAME` naming 32 random bytes in hex
    /// (`openssl rand -hex 32`). Required once a connection stores secrets.
    pub key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Send webhooks to hosts that resolve to loopback, link-local, private (RFC 1918,
    /// unique-local), unspecified or multicast addresses. Off, a tenant cannot point the
    /// daemon at services on its own network; checked when subscribing and on every delivery.
    pub allow_private: bool,
    /// Deliveries one daemon sends at once, over every subscription.
    pub concurrency: NonZeroU32,
    /// How long a receiver has to answer one delivery before the attempt counts as failed.
    pub timeout_secs: NonZeroU32,
    /// The wait before the first retry; it doubles with each attempt, with jitter.
    pub retry_base_delay_ms: NonZeroU32,
    /// The longest wait between two attempts.
    pub retry_max_delay_secs: NonZeroU32,
    /// How long a delivery is retried before it is given up as `failed`.
    pub retry_window_secs: NonZeroU32,
    /// How long a rotated-out secret keeps signing deliveries beside the new one.
    pub secret_overlap_secs: NonZeroU32,
    /// How often the delivery worker and the fan-out look for work that no event of this
    /// daemon announced (another daemon's events, retries coming due).
    pub poll_interval_ms: NonZeroU32,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            allow_private: false,
            concurrency: nz(16),
            timeout_secs: nz(10),
            retry_base_delay_ms: nz(5_000),
            retry_max_delay_secs: nz(3_600),
            retry_window_secs: nz(86_400),
            secret_overlap_secs: nz(86_400),
            poll_interval_ms: nz(500),
        }
    }
}

impl WebhooksConfig {
    pub fn validate(&self, p: &mut Problems) {
        if u64::from(self.retry_base_delay_ms.get()) > u64::from(self.retry_max_delay_secs.get()) * 1000 {
            p.add("webhooks.retry_base_delay_ms", "must not exceed webhooks.retry_max_delay_secs");
        }
        if self.timeout_secs.get() > 300 {
            p.add("webhooks.timeout_secs", "at most 300: a receiver should answer within seconds");
        }
    }
}
