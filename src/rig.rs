//! A self-contained rig: sandbox ERPs over HTTP plus a daemon on a scratch database, all
//! in this process. `erpsync demo` and `erpsync bench` run on it (and so do the
//! integration tests), so what they show is the real daemon against a real HTTP ERP.

use crate::config::{Config, ConnectionConfig, QueueBackend};
use crate::daemon::{Daemon, DaemonError, StartOptions};
use crate::domain::{ConnectionId, ErpKind, Invoice, ItemState, JobId, Op};
use crate::erp::sandbox::{Sandbox, SandboxOptions, SandboxStats};
use crate::jobs::{self, JobRequest};
use crate::store;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Which queue the rig's daemon uses.
#[derive(Debug, Clone, Default)]
pub enum RigQueue {
    /// The embedded queue in the rig's database.
    #[default]
    Embedded,
    /// The embedded queue keeping each connection's order (`queue.fifo`).
    EmbeddedFifo,
    /// A fresh SQS queue (and dead-letter queue) on an SQS-compatible server, deleted at
    /// shutdown. Credentials come from the standard chain (tests set dummy ones).
    Sqs { endpoint_url: String, fifo: bool },
}

pub struct RigSpec {
    /// Which queue backend to run on.
    pub queue: RigQueue,
    /// One sandbox ERP and one connection per limit.
    pub limits: Vec<u32>,
    /// Sandbox behaviour (its concurrency is set from `limits`).
    pub sandbox: SandboxOptions,
    /// Database URL; default: a fresh SQLite file in a scratch directory.
    pub database_url: Option<String>,
    /// Last word on the daemon's config.
    pub tune: Box<dyn Fn(&mut Config) + Send>,
    pub options: StartOptions,
    /// Where the sandbox ERPs run: by default on the caller's runtime; benchmarks give
    /// them a runtime of their own so their CPU can be told apart from the daemon's.
    pub sandbox_runtime: Option<tokio::runtime::Handle>,
}

impl Default for RigSpec {
    fn default() -> Self {
        RigSpec {
            queue: RigQueue::Embedded,
            limits: vec![4],
            sandbox: SandboxOptions::default(),
            database_url: None,
            tune: Box::new(|_| {}),
            options: StartOptions::default(),
            sandbox_runtime: None,
        }
    }
}

pub struct RigErp {
    pub connection: ConnectionId,
    pub limit: u32,
    pub sandbox: Sandbox,
}

pub struct Rig {
    pub daemon: Option<Daemon>,
    pub erps: Vec<RigErp>,
    pub config: Config,
    scratch: Option<PathBuf>,
    /// The SQS queues this rig created: (client, queue URL, dead-letter queue URL).
    sqs: Option<(aws_sdk_sqs::Client, String, String)>,
}

/// A fresh scratch directory under the system temp dir; its user removes it (a rig does
/// when dropped).
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("erpsync-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    dir
}

impl Rig {
    pub async fn start(spec: RigSpec) -> Result<Rig, DaemonError> {
        let mut erps = Vec::new();
        for (i, &limit) in spec.limits.iter().enumerate() {
            let opts = SandboxOptions { concurrency: limit.into(), ..spec.sandbox.clone() };
            let addr = "127.0.0.1:0".parse().unwrap();
            let started = match &spec.sandbox_runtime {
                Some(rt) => rt.spawn(Sandbox::start(addr, opts)).await.expect("the sandbox runtime runs"),
                None => Sandbox::start(addr, opts).await,
            };
            let sandbox = started.map_err(|source| DaemonError::Sandbox { addr, source })?;
            erps.push(RigErp { connection: ConnectionId::new(format!("erp{i}-limit{limit}")), limit, sandbox });
        }
        let scratch = spec.database_url.is_none().then(scratch_dir);
        let mut config = Config::default();
        config.sandbox.enabled = Some(false);
        config.http.listen = "127.0.0.1:0".parse().unwrap();
        config.database.url = Some(match (&spec.database_url, &scratch) {
            (Some(url), _) => url.clone(),
            (None, Some(dir)) => format!("sqlite://{}/erpsync.db?mode=rwc", dir.display()),
            (None, None) => unreachable!(),
        });
        config.queue.poll_interval_ms = NonZeroU32::new(50).unwrap();
        config.retry.base_delay_ms = NonZeroU32::new(100).unwrap();
        config.retry.max_delay_secs = NonZeroU32::new(2).unwrap();
        config.connections = erps
            .iter()
            .map(|e| {
                let mut c = ConnectionConfig::new(e.connection.as_str(), ErpKind::GenericRest, &e.sandbox.base_url());
                c.max_concurrency = NonZeroU32::new(e.limit);
                c
            })
            .collect();
        let sqs_fifo = match &spec.queue {
            RigQueue::Embedded => None,
            RigQueue::EmbeddedFifo => {
                config.queue.fifo = true;
                None
            }
            RigQueue::Sqs { endpoint_url, fifo } => {
                let suffix = if *fifo { ".fifo" } else { "" };
                config.queue.backend = QueueBackend::Sqs;
                config.queue.name =
                    Some(format!("erpsync-rig-{}{suffix}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
                config.queue.region = Some("us-east-1".into());
                config.queue.endpoint_url = Some(endpoint_url.clone());
                config.queue.wait_time_secs = 2;
                Some(*fifo)
            }
        };
        (spec.tune)(&mut config);
        let sqs = match sqs_fifo {
            None => None,
            Some(_) => {
                let client = crate::queue::sqs::admin::client(&config.queue).await;
                let (url, dlq) = crate::queue::sqs::admin::create_queues(&client, &config.queue).await?;
                Some((client, url, dlq))
            }
        };
        let daemon = Daemon::start_with(config.clone(), spec.options).await?;
        Ok(Rig { daemon: Some(daemon), erps, config, scratch, sqs })
    }

    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("the rig's daemon is running")
    }

    /// Starts a new daemon on the same database and ERPs (after `kill` or `shutdown`).
    pub async fn restart(&mut self, options: StartOptions) -> Result<(), DaemonError> {
        self.daemon = Some(Daemon::start_with(self.config.clone(), options).await?);
        Ok(())
    }

    /// Submits a job exporting `invoices` to ERP `erp`.
    /// A job of `invoices` for ERP `erp`, as `POST /v1/jobs` would record it, for tests
    /// that put it in the store themselves.
    pub fn invoice_job(&self, erp: usize, invoices: &[Invoice]) -> store::NewJob {
        let items = invoices
            .iter()
            .map(|d| store::NewItem {
                id: crate::domain::ItemId::new(),
                source_id: d.source_id.clone(),
                payload: serde_json::to_string(d).expect("invoices serialize"),
            })
            .collect();
        store::NewJob {
            id: JobId::new(),
            connection_id: self.erps[erp].connection.clone(),
            op: Op::ExportInvoice,
            items,
        }
    }

    pub async fn submit(&self, erp: usize, invoices: &[Invoice]) -> Result<JobId, jobs::SubmitError> {
        self.submit_op(erp, Op::ExportInvoice, invoices).await
    }

    /// Submits a job of any `op` (invoices, purchase orders, payments) to ERP `erp`.
    pub async fn submit_op<T: serde::Serialize>(
        &self,
        erp: usize,
        op: Op,
        documents: &[T],
    ) -> Result<JobId, jobs::SubmitError> {
        let req = JobRequest {
            connection_id: self.erps[erp].connection.clone(),
            op,
            documents: documents
                .iter()
                .map(|d| serde_json::value::to_raw_value(d).expect("documents serialize"))
                .collect(),
        };
        Ok(jobs::submit(self.daemon().ctx(), req).await?.job_id)
    }

    /// A fresh API token of `scope` for tenant `tenant`, for calling the rig's API.
    pub async fn token_for(&self, tenant: &str, scope: store::tokens::Scope) -> String {
        store::tokens::create(&self.daemon().ctx().db, tenant, scope, "rig")
            .await
            .expect("the rig's database takes tokens")
            .token
    }

    /// A fresh write token for the rig's connections (all of the default tenant).
    pub async fn token(&self) -> String {
        self.token_for(crate::config::DEFAULT_TENANT, store::tokens::Scope::Write).await
    }

    /// Item counts by state, over every job.
    pub async fn counts(&self) -> Vec<(ItemState, u64)> {
        store::state_counts(&self.daemon().ctx().db).await.unwrap_or_default()
    }

    /// Waits until every item is terminal; returns the counts, or the last counts seen if
    /// the deadline passes first.
    pub async fn wait_terminal(&self, deadline: Duration) -> Result<Vec<(ItemState, u64)>, Vec<(ItemState, u64)>> {
        let until = Instant::now() + deadline;
        loop {
            let counts = self.counts().await;
            if counts.iter().all(|(s, n)| s.is_terminal() || *n == 0) && counts.iter().any(|(_, n)| *n > 0) {
                return Ok(counts);
            }
            if Instant::now() > until {
                return Err(counts);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn stats(&self) -> Vec<SandboxStats> {
        self.erps.iter().map(|e| e.sandbox.stats()).collect()
    }

    pub async fn shutdown(mut self) {
        if let Some(d) = self.daemon.take() {
            d.shutdown().await;
        }
        if let Some((client, url, dlq)) = self.sqs.take() {
            crate::queue::sqs::admin::delete_queues(&client, &[&url, &dlq]).await;
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Count of items in `state`.
pub fn count(counts: &[(ItemState, u64)], state: ItemState) -> u64 {
    counts.iter().filter(|(s, _)| *s == state).map(|(_, n)| n).sum()
}

/// A connection `id` of kind `erp` to a simulator, with `client` (the simulator's default
/// OAuth client) as its credentials and a secrets key, both written to files under `dir`;
/// `config` gets the key.
fn oauth_connection(
    config: &mut Config,
    id: &str,
    erp: ErpKind,
    base_url: &str,
    client: &crate::erp::sandbox::OAuthClient,
    dir: &std::path::Path,
) -> ConnectionConfig {
    let creds = dir.join(format!("{id}.{}.json", erp.as_str()));
    let document = serde_json::json!({
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "refresh_token": client.refresh_token,
    });
    std::fs::write(&creds, document.to_string()).expect("the scratch directory is writable");
    let key = dir.join("secrets.key");
    std::fs::write(&key, "5e".repeat(32)).expect("the scratch directory is writable");
    config.secrets.key = Some(format!("file:{}", key.display()));
    let mut c = ConnectionConfig::new(id, erp, base_url);
    c.credentials = Some(format!("file:{}", creds.display()));
    c
}

/// A Xero connection `id` to a Xero simulator at `sim_url` (`erp::sandbox::XERO`), see
/// [`oauth_connection`].
pub fn xero_connection(config: &mut Config, id: &str, sim_url: &str, dir: &std::path::Path) -> ConnectionConfig {
    let client = &crate::erp::sandbox::XeroOptions::default().clients[0];
    let mut c = oauth_connection(config, id, ErpKind::Xero, &format!("{sim_url}/api.xro/2.0"), client, dir);
    c.token_url = Some(format!("{sim_url}/connect/token"));
    c.tenant_id = Some(crate::erp::sandbox::XERO_SANDBOX_TENANT.to_owned());
    c
}

/// `n` sample invoices whose vendors are contacts of the Xero simulator's organisation and
/// whose lines all post to an account.
pub fn xero_invoices(prefix: &str, n: usize) -> Vec<Invoice> {
    let mut all = crate::samples::invoices(prefix, n);
    for (i, inv) in all.iter_mut().enumerate() {
        inv.vendor.id = crate::erp::sandbox::XERO_CONTACTS[i % 3].0.to_owned();
        for line in &mut inv.lines {
            line.gl_account.get_or_insert_with(|| "6100".to_owned());
        }
    }
    all
}

/// A QuickBooks Online connection `id` to a QuickBooks simulator at `sim_url`
/// (`erp::sandbox::QUICKBOOKS_ONLINE`), see [`oauth_connection`].
pub fn quickbooks_connection(config: &mut Config, id: &str, sim_url: &str, dir: &std::path::Path) -> ConnectionConfig {
    let client = &crate::erp::sandbox::QuickbooksOptions::default().clients[0];
    let mut c = oauth_connection(config, id, ErpKind::QuickbooksOnline, sim_url, client, dir);
    c.token_url = Some(format!("{sim_url}/oauth2/v1/tokens/bearer"));
    c.realm_id = Some(crate::erp::sandbox::QBO_SANDBOX_REALM.to_owned());
    c
}

/// `n` sample invoices whose vendors are vendors of the QuickBooks simulator's company.
pub fn quickbooks_invoices(prefix: &str, n: usize) -> Vec<Invoice> {
    let mut all = crate::samples::invoices(prefix, n);
    for (i, inv) in all.iter_mut().enumerate() {
        inv.vendor.id = crate::erp::sandbox::QBO_VENDORS[i % 3].0.to_owned();
    }
    all
}

/// A Business Central connection `id` to a Business Central simulator at `sim_url`
/// (`erp::sandbox::BUSINESS_CENTRAL`): the simulator's tenant, environment and company, and
/// its default Entra client as the credentials, written to a file under `dir`.
pub fn business_central_connection(
    _config: &mut Config,
    id: &str,
    sim_url: &str,
    dir: &std::path::Path,
) -> ConnectionConfig {
    use crate::erp::sandbox::{BC_SANDBOX_COMPANY, BC_SANDBOX_ENVIRONMENT, BC_SANDBOX_TENANT, BusinessCentralOptions};
    let client = &BusinessCentralOptions::default().clients[0];
    let creds = dir.join(format!("{id}.business_central.json"));
    let document = serde_json::json!({"client_id": client.client_id, "client_secret": client.client_secret});
    std::fs::write(&creds, document.to_string()).expect("the scratch directory is writable");
    let base = format!("{sim_url}/v2.0/{BC_SANDBOX_TENANT}/{BC_SANDBOX_ENVIRONMENT}/api/v2.0");
    let mut c = ConnectionConfig::new(id, ErpKind::BusinessCentral, &base);
    c.credentials = Some(format!("file:{}", creds.display()));
    c.token_url = Some(format!("{sim_url}/{BC_SANDBOX_TENANT}/oauth2/v2.0/token"));
    c.tenant_id = Some(BC_SANDBOX_TENANT.to_owned());
    c.environment = Some(BC_SANDBOX_ENVIRONMENT.to_owned());
    c.company_id = Some(BC_SANDBOX_COMPANY.to_owned());
    c
}

/// `n` sample invoices whose vendors are vendors of the Business Central simulator's
/// company (by number) and whose lines post to its G/L accounts.
pub fn business_central_invoices(prefix: &str, n: usize) -> Vec<Invoice> {
    let mut all = crate::samples::invoices(prefix, n);
    for (i, inv) in all.iter_mut().enumerate() {
        inv.vendor.id = crate::erp::sandbox::BC_VENDORS[i % 3].1.to_owned();
        for line in &mut inv.lines {
            line.gl_account.get_or_insert_with(|| "6000".to_owned());
        }
    }
    all
}

/// A Sage Intacct connection `id` to an Intacct simulator at `sim_url`
/// (`erp::sandbox::SAGE_INTACCT`), with the simulator's default sender and user as its
/// credentials, written to a file under `dir`.
pub fn sage_intacct_connection(
    _config: &mut Config,
    id: &str,
    sim_url: &str,
    dir: &std::path::Path,
) -> ConnectionConfig {
    let o = crate::erp::sandbox::IntacctOptions::default();
    let creds = dir.join(format!("{id}.sage_intacct.json"));
    let document = serde_json::json!({
        "sender_id": o.sender_id,
        "sender_password": o.sender_password,
        "company_id": o.company_id,
        "user_id": o.user_id,
        "user_password": o.user_password,
    });
    std::fs::write(&creds, document.to_string()).expect("the scratch directory is writable");
    let mut c = ConnectionConfig::new(id, ErpKind::SageIntacct, &format!("{sim_url}/ia/xml/xmlgw.phtml"));
    c.credentials = Some(format!("file:{}", creds.display()));
    c
}

/// `n` sample invoices whose vendors are active vendors of the Intacct simulator's company
/// and whose lines all post to an account; a taxed line names its tax detail.
pub fn sage_intacct_invoices(prefix: &str, n: usize) -> Vec<Invoice> {
    let mut all = crate::samples::invoices(prefix, n);
    for (i, inv) in all.iter_mut().enumerate() {
        inv.vendor.id = crate::erp::sandbox::INTACCT_VENDORS[i % 3].0.to_owned();
        for line in &mut inv.lines {
            line.gl_account.get_or_insert_with(|| "6100".to_owned());
            line.tax_code.get_or_insert_with(|| "VAT19".to_owned());
        }
    }
    all
}

/// A NetSuite connection `id` to a NetSuite simulator at `sim_url` (`erp::sandbox::NETSUITE`):
/// its REST root, and the simulator's own account and token as the credentials document,
/// written to a file under `dir`. TBA tokens are never refreshed, so no secrets key is needed.
pub fn netsuite_connection(_config: &mut Config, id: &str, sim_url: &str, dir: &std::path::Path) -> ConnectionConfig {
    let o = crate::erp::sandbox::NetsuiteOptions::default();
    let creds = dir.join(format!("{id}.netsuite.json"));
    let document = serde_json::json!({
        "account_id": o.account,
        "consumer_key": o.consumer_key,
        "consumer_secret": o.consumer_secret,
        "token_id": o.token_id,
        "token_secret": o.token_secret,
    });
    std::fs::write(&creds, document.to_string()).expect("the scratch directory is writable");
    let mut c = ConnectionConfig::new(id, ErpKind::Netsuite, &format!("{sim_url}/services/rest/record/v1"));
    c.credentials = Some(format!("file:{}", creds.display()));
    c
}

/// `n` sample invoices whose vendors and expense accounts are records of the NetSuite
/// simulator's account.
pub fn netsuite_invoices(prefix: &str, n: usize) -> Vec<Invoice> {
    let mut all = crate::samples::invoices(prefix, n);
    for (i, inv) in all.iter_mut().enumerate() {
        inv.vendor.id = crate::erp::sandbox::NETSUITE_VENDORS[i % 3].0.to_owned();
        for (l, line) in inv.lines.iter_mut().enumerate() {
            line.gl_account = Some(crate::erp::sandbox::NETSUITE_ACCOUNTS[l % 3].0.to_owned());
        }
    }
    all
}
