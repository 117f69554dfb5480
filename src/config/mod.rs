//! Configuration: built-in defaults < TOML file < `ERPSYNC_*` environment (`__` between
//! levels). Unknown keys are errors, and `validate()` reports every problem with its key so
//! `erpsync check-config` can print them all at once. Each section validates itself; what
//! depends on a connection's ERP kind is asked of the kind's module.

pub mod connection;
mod problem;
pub mod queue;
pub mod reference;
pub mod retention;
pub mod sections;
mod unknown_kinds;

pub use connection::{ConnectionConfig, DEFAULT_TENANT};
pub use problem::{ConfigError, Problem, Problems};
pub use queue::{DEFAULT_SQS_QUEUE_NAME, QueueBackend, QueueConfig};
pub use retention::RetentionConfig;
pub use sections::{
    ClusterConfig, DatabaseConfig, HttpConfig, LogConfig, LogFormat, MetricsConfig, RetryConfig, SandboxConfig,
    SecretsConfig, ShutdownConfig,
};

use crate::domain::{ConnectionId, ErpKind};
use crate::erp::registry;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    /// The key erpsync encrypts the secrets it stores with.
    pub secrets: SecretsConfig,
    /// How long ended jobs are kept.
    pub retention: RetentionConfig,
    /// The ERP connections this daemon exports to.
    pub connections: Vec<ConnectionConfig>,
}

/// The kind of ERP the built-in sandbox simulates.
pub const SANDBOX_ERP: ErpKind = ErpKind::GenericRest;

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
            secrets: SecretsConfig::default(),
            retention: RetentionConfig::default(),
            connections: Vec::new(),
        }
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
            let problems: Vec<Problem> = e
                .into_iter()
                .map(|e| Problem {
                    key: if e.path.is_empty() { "(root)".into() } else { e.path.join(".") },
                    message: e.kind.to_string(),
                })
                .collect();
            ConfigError(unknown_kinds::with_the_rest(&fig, problems))
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
            let mut c = ConnectionConfig::new("sandbox", SANDBOX_ERP, &format!("http://{}", self.sandbox.listen));
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

    /// The tenant of connection `id`; None if no such connection is configured.
    pub fn tenant_of(&self, id: &str) -> Option<&str> {
        self.connections.iter().find(|c| c.id.as_str() == id).map(|c| c.tenant.as_str())
    }

    /// Every problem, each with its key.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Problems::default();
        let url = self.database_url();
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            p.add("database.url", format!("{url:?} is neither sqlite: nor postgres://"));
        }
        self.queue.validate(&self.retry, &mut p);
        self.http.validate(&mut p);
        self.log.validate(&mut p);
        self.retention.validate(&mut p);
        let key = self.secrets.key.as_deref().map(crate::secrets::SecretKey::load);
        if let Some(Err(e)) = &key {
            p.add("secrets.key", e.to_string());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.connections.iter().enumerate() {
            c.validate(i, &mut seen, &mut p);
            let module = registry::module(c.erp);
            for (field, message) in module.check(c) {
                p.add(format!("connections[{i}].{field}"), message);
            }
            if module.stores_secrets() && key.is_none() {
                p.add(
                    "secrets.key",
                    format!(
                        "is required for {} connections such as {:?}: the refresh tokens they rotate are stored \
                         encrypted with it",
                        c.erp.as_str(),
                        c.id.as_str()
                    ),
                );
            }
        }
        p.0
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
        assert_eq!(registry::limits(&c.connections[0]).max_concurrency, 4);
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
    fn connections_belong_to_the_default_tenant_unless_they_name_one() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.tenant_of("sandbox"), Some(DEFAULT_TENANT));
        let toml =
            "[[connections]]\nid = \"a\"\nerp = \"generic_rest\"\nbase_url = \"http://x\"\ntenant = \"globex\"\n";
        assert_eq!(Config::from_toml(toml).unwrap().tenant_of("a"), Some("globex"));
        let err = Config::from_toml(&toml.replace("globex", "glo bex")).unwrap_err();
        assert_eq!(err.0[0].key, "connections[0].tenant", "{err}");
        let err =
            Config::from_toml("[http]\nlisten = \"127.0.0.1:9\"\nmetrics_listen = \"127.0.0.1:9\"\n").unwrap_err();
        assert_eq!(err.0[0].key, "http.metrics_listen", "{err}");
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

    #[test]
    fn a_xero_connection_names_every_missing_piece() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra.json");
        std::fs::write(&extra, r#"{"client_id":"c","client_secret":"s","refresh_token":"r","scope":"x"}"#).unwrap();
        let toml = format!(
            "[[connections]]\nid = \"books\"\nerp = \"xero\"\ncredentials = \"file:{}\"\n\
             [[connections]]\nid = \"books2\"\nerp = \"xero\"\ntenant_id = \"not-a-uuid\"\n",
            extra.display()
        );
        let err = Config::from_toml(&toml).unwrap_err();
        let found: Vec<(&str, &str)> = err.0.iter().map(|p| (p.key.as_str(), p.message.as_str())).collect();
        let keys: Vec<&str> = found.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "connections[0].tenant_id",
                "connections[0].credentials",
                "secrets.key",
                "connections[1].tenant_id",
                "connections[1].credentials",
                "secrets.key"
            ],
            "{err}"
        );
        assert!(found[1].1.contains("unknown field `scope`"), "{err}");
        assert!(!err.to_string().contains("\"r\""), "no secret in the message: {err}");
        assert!(found[4].1.contains("is required"), "{err}");
    }

    #[test]
    fn a_complete_xero_connection_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("xero.json");
        std::fs::write(&creds, r#"{"client_id":"c","client_secret":"s","refresh_token":"r"}"#).unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "ab".repeat(32)).unwrap();
        let toml = format!(
            "[secrets]\nkey = \"file:{}\"\n[[connections]]\nid = \"books\"\nerp = \"xero\"\n\
             tenant_id = \"0d3c1a52-8f5e-4f0e-9b55-7d1f7f3b1a11\"\ncredentials = \"file:{}\"\n",
            key.display(),
            creds.display()
        );
        let c = Config::from_toml(&toml).unwrap();
        assert_eq!(registry::limits(&c.connections[0]).max_concurrency, 5);
    }

    #[test]
    fn a_quickbooks_connection_needs_its_realm_and_credentials() {
        let err = Config::from_toml("[[connections]]\nid = \"qb\"\nerp = \"quickbooks_online\"\nrealm_id = \"abc\"\n")
            .unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["connections[0].realm_id", "connections[0].credentials", "secrets.key"], "{err}");
    }
}
