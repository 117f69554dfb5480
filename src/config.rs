//! Configuration: built-in defaults < TOML file < `ERPSYNC_*` environment (`__` between
//! levels). Unknown keys are errors, and `validate()` reports every problem with its key so
//! `erpsync check-config` can print them all at once.

use crate::domain::{ConnectionId, ErpKind};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `erpsync` looks for a config file when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config/erpsync.toml";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for state: the SQLite database lives here unless `database.url` says
    /// otherwise. Under systemd, `$STATE_DIRECTORY` is used when this is left unset.
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
    pub queue: QueueConfig,
    pub http: HttpConfig,
    pub retry: RetryConfig,
    pub shutdown: ShutdownConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub cluster: ClusterConfig,
    /// The built-in sandbox ERP, so a fresh machine sees the daemon work.
    pub sandbox: SandboxConfig,
    /// The ERP connections this daemon exports to.
    pub connections: Vec<ConnectionConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc` or `postgres://user@host/db`; defaults to
    /// `sqlite://<data_dir>/erpsync.db?mode=rwc`.
    pub url: Option<String>,
    /// Upper bound on pooled connections.
    pub max_connections: NonZeroU32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueBackend {
    /// A table in the same SQL database (`queue_messages`).
    Embedded,
    /// AWS SQS (or a compatible server at `endpoint_url`): the queue a fleet shares.
    Sqs,
}

impl QueueBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueBackend::Embedded => "embedded",
            QueueBackend::Sqs => "sqs",
        }
    }
}

/// The SQS queue name used when neither `queue.name` nor `queue.url` is set.
pub const DEFAULT_SQS_QUEUE_NAME: &str = "erpsync-jobs";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// `embedded` (the default: a table in the database) or `sqs`.
    pub backend: QueueBackend,
    /// How long a received message stays invisible to other receivers; in-flight
    /// messages are extended (heartbeat) every third of it.
    pub visibility_timeout_secs: NonZeroU32,
    /// After this many receives without a delete, a message moves to the dead-letter
    /// store. Default: 20 on the embedded queue; 100 on SQS, where a message returned
    /// because its connection was saturated also counts as a receive (real attempts are
    /// counted separately against `retry.max_attempts`).
    pub max_receives: Option<NonZeroU32>,
    /// Long-poll wait of one receive call (SQS allows at most 20).
    pub wait_time_secs: u32,
    /// How often the embedded queue re-checks the table while long-polling, for messages
    /// sent by other processes.
    pub poll_interval_ms: NonZeroU32,
    /// SQS: queue name; one ending in `.fifo` is a FIFO queue (per-connection order).
    /// Default `erpsync-jobs` unless `url` is set.
    pub name: Option<String>,
    /// SQS: queue URL, instead of looking `name` up.
    pub url: Option<String>,
    /// SQS: AWS region; default from the environment (`AWS_REGION`) or profile.
    pub region: Option<String>,
    /// SQS: endpoint of an SQS-compatible server (a local emulator), instead of AWS's.
    pub endpoint_url: Option<String>,
    /// SQS: dead-letter queue name; default `<name>-dlq` (`<name>-dlq.fifo` for FIFO).
    pub dlq_name: Option<String>,
    /// SQS: dead-letter queue URL, instead of looking `dlq_name` up.
    pub dlq_url: Option<String>,
    /// SQS: receive calls in flight at once when connectors have room for more than one
    /// batch of 10.
    pub receive_loops: NonZeroU32,
    /// SQS: SendMessageBatch calls in flight at once when enqueueing a large job (the
    /// default sends a 200-document job's twenty batches at once).
    pub send_concurrency: NonZeroU32,
    /// SQS: how long `POST /v1/jobs` waits for its messages to be sent once the job is
    /// recorded. What is not sent by then (SQS throttling or down) is answered as `unsent`
    /// and sent by the outbox, so the API still answers at once.
    pub send_timeout_ms: NonZeroU32,
    /// Embedded queue: keep each connection's order, as an SQS FIFO queue does (an SQS
    /// queue is FIFO when its name ends in `.fifo`).
    pub fifo: bool,
}

impl QueueConfig {
    /// `max_receives` in force for the configured backend.
    pub fn max_receives(&self) -> u32 {
        // Where messages go back to the queue without being worked on (SQS: for a saturated
        // connection; FIFO: behind one that goes back), each return is a receive too.
        self.max_receives.map(NonZeroU32::get).unwrap_or(match self.backend {
            QueueBackend::Embedded if !self.fifo => 20,
            QueueBackend::Embedded | QueueBackend::Sqs => 100,
        })
    }

    /// The SQS queue name (from `name`, else the last segment of `url`, else the default).
    pub fn sqs_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match &self.url {
            Some(u) => u.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned(),
            None => DEFAULT_SQS_QUEUE_NAME.to_owned(),
        }
    }

    /// Whether the SQS queue is FIFO.
    pub fn sqs_fifo(&self) -> bool {
        self.sqs_name().ends_with(".fifo")
    }

    /// The dead-letter queue name: `dlq_name`, else derived from the queue name.
    pub fn sqs_dlq_name(&self) -> String {
        if let Some(n) = &self.dlq_name {
            return n.clone();
        }
        if let Some(u) = &self.dlq_url {
            return u.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned();
        }
        let name = self.sqs_name();
        match name.strip_suffix(".fifo") {
            Some(base) => format!("{base}-dlq.fifo"),
            None => format!("{name}-dlq"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address of the API, /metrics and health endpoints. Loopback by default: put a
    /// reverse proxy in front to expose it.
    pub listen: SocketAddr,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// Stable id; work items name their connection by it.
    pub id: ConnectionId,
    pub erp: ErpKind,
    /// Base URL of the ERP API (for `generic_rest`: the protocol root).
    pub base_url: String,
    /// Where the API token comes from: `env:VAR`, `file:/path`, or `credential:NAME`
    /// (systemd `LoadCredential=`, read from `$CREDENTIALS_DIRECTORY`).
    #[serde(default)]
    pub credentials: Option<String>,
    /// Most ERP calls in flight at once; defaults to the ERP kind's documented limit.
    #[serde(default)]
    pub max_concurrency: Option<NonZeroU32>,
    /// Requests per minute; defaults to the ERP kind's documented rate, if any.
    #[serde(default)]
    pub rate_limit_per_min: Option<NonZeroU32>,
    /// Timeout of one ERP request.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: NonZeroU32,
    /// Timeout of establishing a connection to the ERP.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: NonZeroU32,
    /// Items held ready beyond the concurrency limit, so a freed slot is refilled at once
    /// (default: the limit, at least 10).
    #[serde(default)]
    pub prefetch: Option<u32>,
    /// Attach the rendered invoice PDF to each exported bill.
    #[serde(default = "default_true")]
    pub attach_pdf: bool,
}

fn default_true() -> bool {
    true
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero literal")
}
fn default_request_timeout_ms() -> NonZeroU32 {
    nz(30_000)
}
fn default_connect_timeout_ms() -> NonZeroU32 {
    nz(5_000)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("var"),
            database: DatabaseConfig::default(),
            queue: QueueConfig::default(),
            http: HttpConfig::default(),
            retry: RetryConfig::default(),
            shutdown: ShutdownConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            cluster: ClusterConfig::default(),
            sandbox: SandboxConfig::default(),
            connections: Vec::new(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { url: None, max_connections: nz(8) }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            backend: QueueBackend::Embedded,
            visibility_timeout_secs: nz(60),
            max_receives: None,
            wait_time_secs: 5,
            poll_interval_ms: nz(200),
            name: None,
            url: None,
            region: None,
            endpoint_url: None,
            dlq_name: None,
            dlq_url: None,
            receive_loops: nz(4),
            send_concurrency: nz(20),
            send_timeout_ms: nz(2000),
            fifo: false,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: SocketAddr::from(([127, 0, 0, 1], 8080)) }
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

/// One problem in the configuration, with the key it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<Problem>);

impl ConnectionConfig {
    /// A connection with the defaults of its ERP kind.
    pub fn new(id: &str, erp: ErpKind, base_url: &str) -> Self {
        ConnectionConfig {
            id: ConnectionId::new(id),
            erp,
            base_url: base_url.to_owned(),
            credentials: None,
            max_concurrency: None,
            rate_limit_per_min: None,
            request_timeout_ms: default_request_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            prefetch: None,
            attach_pdf: true,
        }
    }

    /// The concurrency limit in force: configured, else the ERP kind's documented limit.
    pub fn max_concurrency(&self) -> u32 {
        self.max_concurrency.map(NonZeroU32::get).unwrap_or(match self.erp {
            ErpKind::GenericRest => 4,
            ErpKind::QuickbooksOnline => 10,
            ErpKind::Xero => 5,
            ErpKind::Netsuite => 5,
            ErpKind::BusinessCentral => 5,
            ErpKind::SageIntacct => 6,
        })
    }

    /// Requests per minute in force, if any.
    pub fn rate_limit_per_min(&self) -> Option<u32> {
        self.rate_limit_per_min.map(NonZeroU32::get).or(match self.erp {
            ErpKind::QuickbooksOnline => Some(500),
            ErpKind::Xero => Some(60),
            ErpKind::BusinessCentral => Some(1_200),
            _ => None,
        })
    }

    /// Items held ready beyond the limit (defaults to the limit itself).
    pub fn prefetch(&self) -> u32 {
        // At least one receive batch, so a small limit still has work ready when a call ends.
        self.prefetch.unwrap_or_else(|| self.max_concurrency().max(10))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.get().into())
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.get().into())
    }

    /// Resolves the credentials reference to the secret token.
    pub fn resolve_token(&self) -> Result<Option<SecretString>, String> {
        let Some(reference) = &self.credentials else { return Ok(None) };
        let (scheme, rest) = reference.split_once(':').ok_or_else(|| {
            format!("{reference:?} is not a credentials reference (env:VAR, file:/path or credential:NAME)")
        })?;
        let read_file = |path: &Path| {
            std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let token = match scheme {
            "env" => std::env::var(rest).map_err(|_| format!("environment variable {rest} is not set"))?,
            "file" => read_file(Path::new(rest))?,
            "credential" => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
                    .ok_or("CREDENTIALS_DIRECTORY is not set (is LoadCredential= configured?)")?;
                read_file(&Path::new(&dir).join(rest))?
            }
            other => return Err(format!("unknown credentials scheme {other:?} (use env:, file: or credential:)")),
        };
        Ok(Some(SecretString::from(token)))
    }
}

impl Config {
    /// Loads defaults < file < environment. `path` is `--config`; without it the default
    /// path is used when it exists.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match path {
            Some(p) if !p.exists() => {
                return Err(ConfigError(vec![Problem {
                    key: "--config".into(),
                    message: format!("{} does not exist", p.display()),
                }]));
            }
            Some(p) => fig = fig.merge(Toml::file_exact(p)),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => fig = fig.merge(Toml::file_exact(DEFAULT_CONFIG_PATH)),
            None => {}
        }
        // Only ERPSYNC_<SECTION>__<KEY> and top-level keys are configuration: other
        // ERPSYNC_* variables (ERPSYNC_CONFIG, tokens referenced as env:ERPSYNC_…) are not.
        let env = Env::prefixed("ERPSYNC_")
            .filter(|k| k.as_str().contains("__") || k.as_str().eq_ignore_ascii_case("data_dir"))
            .split("__");
        fig = fig.merge(env);
        Self::from_figment(fig)
    }

    /// Parses a TOML document on top of the defaults (tests, `check-config` of a string).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::from_figment(Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(text)))
    }

    fn from_figment(fig: Figment) -> Result<Config, ConfigError> {
        let mut config: Config = fig.extract().map_err(|e| {
            ConfigError(
                e.into_iter()
                    .map(|e| Problem {
                        key: if e.path.is_empty() { "(root)".into() } else { e.path.join(".") },
                        message: e.kind.to_string(),
                    })
                    .collect(),
            )
        })?;
        if config.data_dir == Path::new("var")
            && let Some(dir) = std::env::var_os("STATE_DIRECTORY")
        {
            config.data_dir = PathBuf::from(dir);
        }
        config.add_sandbox_connection();
        let problems = config.validate();
        if problems.is_empty() { Ok(config) } else { Err(ConfigError(problems)) }
    }

    /// Whether the built-in sandbox ERP runs.
    pub fn sandbox_enabled(&self) -> bool {
        self.sandbox.enabled.unwrap_or(self.connections.is_empty())
    }

    fn add_sandbox_connection(&mut self) {
        // Resolve "auto" first: once the sandbox connection is added, there are connections.
        self.sandbox.enabled = Some(self.sandbox_enabled());
        if self.sandbox_enabled() && !self.connections.iter().any(|c| c.id.as_str() == "sandbox") {
            let mut c =
                ConnectionConfig::new("sandbox", ErpKind::GenericRest, &format!("http://{}", self.sandbox.listen));
            c.max_concurrency = Some(self.sandbox.concurrency);
            self.connections.push(c);
        }
    }

    pub fn database_url(&self) -> String {
        self.database.url.clone().unwrap_or_else(|| format!("sqlite://{}/erpsync.db?mode=rwc", self.data_dir.display()))
    }

    /// Whether cluster-wide slots are in force.
    pub fn leases_enabled(&self) -> bool {
        self.cluster.leases.unwrap_or_else(|| self.database_url().starts_with("postgres"))
    }

    pub fn connection(&self, id: &ConnectionId) -> Option<&ConnectionConfig> {
        self.connections.iter().find(|c| &c.id == id)
    }

    fn validate_sqs(&self, add: &mut impl FnMut(String, String)) {
        let q = &self.queue;
        let valid_name = |n: &str| {
            let base = n.strip_suffix(".fifo").unwrap_or(n);
            !base.is_empty() && n.len() <= 80 && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        for (key, name) in [("queue.name", &q.name), ("queue.dlq_name", &q.dlq_name)] {
            if let Some(n) = name
                && !valid_name(n)
            {
                add(key.into(), format!("{n:?} is not an SQS queue name (letters, digits, - and _, at most 80)"));
            }
        }
        for (key, url) in
            [("queue.url", &q.url), ("queue.dlq_url", &q.dlq_url), ("queue.endpoint_url", &q.endpoint_url)]
        {
            if let Some(u) = url {
                match reqwest::Url::parse(u) {
                    Ok(p) if p.scheme() == "http" || p.scheme() == "https" => {}
                    _ => add(key.into(), format!("{u:?} is not an http(s) URL")),
                }
            }
        }
        if q.sqs_fifo() != q.sqs_dlq_name().ends_with(".fifo") {
            add(
                "queue.dlq_name".into(),
                "the dead-letter queue of a FIFO queue must be FIFO (.fifo), and only then".into(),
            );
        }
        let region_from_env = ["AWS_REGION", "AWS_DEFAULT_REGION"].iter().any(|v| std::env::var_os(v).is_some());
        let profile = std::env::var_os("AWS_CONFIG_FILE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws/config")));
        if q.region.is_none() && !region_from_env && !profile.is_some_and(|p| p.exists()) {
            add("queue.region".into(), "is required for sqs (or set AWS_REGION)".into());
        }
        if q.max_receives() <= self.retry.max_attempts.get() {
            add(
                "queue.max_receives".into(),
                format!(
                    "must exceed retry.max_attempts ({}): on SQS a message returned for a saturated connection \
                     also counts as a receive",
                    self.retry.max_attempts
                ),
            );
        }
        if q.fifo && q.backend == QueueBackend::Sqs {
            add(
                "queue.fifo".into(),
                "is for the embedded queue; an SQS queue is FIFO when its name ends in \".fifo\"".into(),
            );
        }
        if q.receive_loops.get() > 32 {
            add("queue.receive_loops".into(), "must be at most 32".into());
        }
        if q.send_concurrency.get() > 64 {
            add("queue.send_concurrency".into(), "must be at most 64".into());
        }
    }

    /// Every problem, each with its key.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let mut add = |key: String, message: String| p.push(Problem { key, message });
        let url = self.database_url();
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            add("database.url".into(), format!("{url:?} is neither sqlite: nor postgres://"));
        }
        if self.queue.wait_time_secs > 20 {
            add("queue.wait_time_secs".into(), "must be at most 20 (the SQS maximum)".into());
        }
        if self.queue.visibility_timeout_secs.get() < 2 {
            add("queue.visibility_timeout_secs".into(), "must be at least 2 so heartbeats can extend it".into());
        }
        if self.queue.visibility_timeout_secs.get() > 43_200 {
            add("queue.visibility_timeout_secs".into(), "must be at most 43200 (12 hours, the SQS maximum)".into());
        }
        if self.queue.backend == QueueBackend::Sqs {
            self.validate_sqs(&mut add);
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            add("log.level".into(), format!("{:?} is not a valid filter", self.log.level));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.connections.iter().enumerate() {
            let key = |field: &str| format!("connections[{i}].{field}");
            if c.id.as_str().is_empty()
                || !c.id.as_str().chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
            {
                add(key("id"), format!("{:?} must be non-empty and use only letters, digits, - _ .", c.id.as_str()));
            }
            if !seen.insert(c.id.clone()) {
                add(key("id"), format!("{:?} is declared twice", c.id.as_str()));
            }
            match reqwest::Url::parse(&c.base_url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                Ok(u) => add(key("base_url"), format!("scheme {:?} is not http or https", u.scheme())),
                Err(e) => add(key("base_url"), format!("{:?} is not a URL: {e}", c.base_url)),
            }
            if c.erp != ErpKind::GenericRest {
                add(key("erp"), format!("{} connections are not supported by this build yet", c.erp.as_str()));
            }
            if c.max_concurrency() > 100 {
                add(key("max_concurrency"), "must be at most 100".into());
            }
            if let Err(e) = c.resolve_token() {
                add(key("credentials"), e);
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_shape_parses() {
        let c = Config::from_toml(
            r#"
            [database]
            url = "sqlite://var/erpsync.db?mode=rwc"
            [queue]
            backend = "embedded"
            [http]
            listen = "127.0.0.1:8080"
            [[connections]]
            id = "acme-books"
            erp = "generic_rest"
            base_url = "http://127.0.0.1:8089"
            max_concurrency = 4
            "#,
        )
        .unwrap();
        assert_eq!(c.connections.len(), 1, "no sandbox connection when connections are configured");
        assert_eq!(c.connections[0].max_concurrency(), 4);
    }

    #[test]
    // figment's own test helper returns its large error type.
    #[allow(clippy::result_large_err)]
    fn environment_overrides_only_configuration_variables() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ERPSYNC_HTTP__LISTEN", "127.0.0.1:9999");
            jail.set_env("ERPSYNC_QUEUE__MAX_RECEIVES", "7");
            jail.set_env("ERPSYNC_SOME_TOKEN", "not config");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.http.listen.port(), 9999);
            assert_eq!(c.queue.max_receives(), 7);
            jail.set_env("ERPSYNC_HTTTP__LISTEN", "127.0.0.1:1");
            let err = Config::load(None).unwrap_err();
            assert!(err.to_string().contains("htttp"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_documented_sqs_shape_parses() {
        let c = Config::from_toml(
            r#"
            [queue]
            backend = "sqs"
            name = "erpsync-jobs"
            region = "us-east-1"
            endpoint_url = "http://127.0.0.1:4566"
            "#,
        )
        .unwrap();
        assert_eq!(c.queue.backend, QueueBackend::Sqs);
        assert_eq!(c.queue.sqs_dlq_name(), "erpsync-jobs-dlq");
        assert_eq!(c.queue.max_receives(), 100);
        assert!(!c.queue.sqs_fifo());
        let c =
            Config::from_toml("[queue]\nbackend = \"sqs\"\nregion = \"eu-west-1\"\nname = \"jobs.fifo\"\n").unwrap();
        assert!(c.queue.sqs_fifo());
        assert_eq!(c.queue.sqs_dlq_name(), "jobs-dlq.fifo");
    }

    #[test]
    fn sqs_problems_are_reported_with_their_keys() {
        let err = Config::from_toml(
            r#"
            [queue]
            backend = "sqs"
            name = "bad name!"
            region = "us-east-1"
            endpoint_url = "localhost:4566"
            max_receives = 5
            "#,
        )
        .unwrap_err();
        let keys: Vec<_> = err.0.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["queue.name", "queue.endpoint_url", "queue.max_receives"], "{err}");
    }

    #[test]
    fn no_config_runs_the_sandbox() {
        let c = Config::from_toml("").unwrap();
        assert!(c.sandbox_enabled());
        assert_eq!(c.connections[0].id.as_str(), "sandbox");
        assert!(c.database_url().starts_with("sqlite://"));
    }

    #[test]
    fn unknown_keys_are_errors_with_their_key() {
        let err = Config::from_toml("[queue]\nvisibility_timeout = 3\n").unwrap_err();
        assert_eq!(err.0[0].key, "queue.visibility_timeout");
        assert!(err.0[0].message.contains("visibility_timeout"), "{}", err);
    }

    #[test]
    fn every_problem_is_reported() {
        let err = Config::from_toml(
            r#"
            [queue]
            wait_time_secs = 30
            [[connections]]
            id = "a"
            erp = "generic_rest"
            base_url = "ftp://x"
            credentials = "env:ERPSYNC_TEST_SURELY_UNSET"
            [[connections]]
            id = "a"
            erp = "generic_rest"
            base_url = "not a url"
            "#,
        )
        .unwrap_err();
        let keys: Vec<_> = err.0.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "queue.wait_time_secs",
                "connections[0].base_url",
                "connections[0].credentials",
                "connections[1].id",
                "connections[1].base_url"
            ]
        );
    }
}
