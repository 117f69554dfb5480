//! Assembling and running one daemon: storage, queue, connectors, the actor tree and the
//! HTTP server; and taking it down, gracefully (drain) or abruptly (crash simulation).

use crate::actors::connection::Connection;
use crate::actors::connector;
use crate::actors::poller::QueuePoller;
use crate::actors::stages;
use crate::actors::status::StatusActor;
use crate::actors::supervisor::{ChildSpec, RestartPolicy, SpawnFn, Supervisor, SupervisorArgs, SupervisorMsg};
use crate::actors::{Ctx, status::StatusMsg};
use crate::config::Config;
use crate::erp::registry;
use crate::erp::sandbox::{Sandbox, SandboxOptions};
use crate::limits::lease::LeasePool;
use crate::queue::{Queue, QueueError};
use crate::{http, store, telemetry};
use ractor::{Actor, ActorRef};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("connection {id}: {message}")]
    Connection { id: String, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot start the sandbox ERP on {addr}: {source}")]
    Sandbox { addr: SocketAddr, source: std::io::Error },
    #[error("cannot start the actor tree: {0}")]
    Actors(String),
    #[error("cannot open the queue: {0}")]
    Queue(#[from] QueueError),
}

impl DaemonError {
    pub fn kind(&self) -> &'static str {
        match self {
            DaemonError::Store(e) => e.kind(),
            DaemonError::Connection { .. } => "connection",
            DaemonError::Listen { .. } => "listen",
            DaemonError::Sandbox { .. } => "sandbox",
            DaemonError::Actors(_) => "actors",
            DaemonError::Queue(e) => e.kind(),
        }
    }
}

/// What an in-process caller (a benchmark, a test) can set that a configuration cannot.
#[derive(Default)]
pub struct StartOptions {
    /// Holds receiving while set (see `Ctx::paused`): a benchmark fills the queue first.
    pub paused: Arc<std::sync::atomic::AtomicBool>,
    /// Panics to inject into the pipeline stages.
    #[cfg(any(test, feature = "testing"))]
    pub faults: crate::actors::faults::StageFaults,
}

pub struct Daemon {
    ctx: Arc<Ctx>,
    root: ActorRef<SupervisorMsg>,
    root_done: tokio::task::JoinHandle<()>,
    http_addr: SocketAddr,
    /// Where `/metrics` and the health endpoints are served besides, if configured.
    metrics_addr: Option<SocketAddr>,
    http_stop: CancellationToken,
    http_task: tokio::task::JoinHandle<()>,
    sandbox: Option<Sandbox>,
    /// Lease renewal and release notifications; aborted when the daemon stops.
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Daemon {
    pub async fn start(config: Config) -> Result<Daemon, DaemonError> {
        Self::start_with(config, StartOptions::default()).await
    }

    pub async fn start_with(config: Config, options: StartOptions) -> Result<Daemon, DaemonError> {
        let metrics = telemetry::metrics_handle();
        let url = config.database_url();
        let db = store::connect(&url, config.database.max_connections.get()).await?;
        store::migrate(&db).await?;
        let sandbox = if config.sandbox_enabled() {
            let opts = SandboxOptions {
                concurrency: config.sandbox.concurrency.get().into(),
                latency_ms: config.sandbox.latency_ms.into(),
                jitter_ms: u64::from(config.sandbox.latency_ms) / 2,
                ..SandboxOptions::default()
            };
            let addr = config.sandbox.listen;
            let dialect =
                registry::module(crate::config::SANDBOX_ERP).sandbox().expect("the sandbox ERP has a dialect");
            let sb = Sandbox::start_speaking(dialect, addr, opts)
                .await
                .map_err(|source| DaemonError::Sandbox { addr, source })?;
            tracing::info!(addr = %sb.addr, "sandbox ERP listening");
            Some(sb)
        } else {
            None
        };
        let queue: Arc<dyn Queue> = crate::queue::open(&config, db.clone()).await?;
        telemetry::zero_init(&config);
        let instance = config.cluster.instance_id.clone().unwrap_or_else(default_instance_id);
        let leases = config.leases_enabled();
        let secrets = match config.secrets.key.as_deref() {
            Some(reference) => Some(
                crate::secrets::SecretKey::load(reference)
                    .map_err(|e| DaemonError::Connection { id: "secrets.key".into(), message: e.to_string() })?,
            ),
            None => None,
        };
        let mut pools = Vec::new();
        let mut connectors = HashMap::new();
        for (i, c) in config.connections.iter().enumerate() {
            let err = |message: String| DaemonError::Connection { id: c.id.to_string(), message };
            let (token, version) = crate::connections::credentials(&db, secrets.as_ref(), c).await.map_err(err)?;
            let limits = registry::limits(c);
            let client = crate::connections::client(&db, secrets.as_ref(), c, token).map_err(err)?;
            let label = telemetry::connection_label(&config, i, c.id.as_str());
            let pool = if leases {
                let ttl = Duration::from_secs(config.cluster.lease_ttl_secs.get().into());
                let pool = Arc::new(LeasePool::new(
                    db.clone(),
                    c.id.as_str(),
                    label.clone(),
                    limits.max_concurrency,
                    &instance,
                    ttl,
                ));
                pool.ensure_slots().await.map_err(|e| DaemonError::Store(store::StoreError::Db(e)))?;
                pools.push(pool.clone());
                Some(pool)
            } else {
                None
            };
            let wait = Duration::from_secs(config.cluster.slot_wait_secs.get().into());
            connectors
                .insert(c.id.clone(), Arc::new(Connection::new(c.clone(), limits, client, version, label, pool, wait)));
        }
        let ctx = Arc::new(Ctx {
            prefix: format!("erpsync-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            config: Arc::new(config),
            db,
            wal: Default::default(),
            job_writer: Default::default(),
            queue,
            secrets,
            connectors,
            capacity: tokio::sync::Notify::new(),
            in_flight: Default::default(),
            tasks: TaskTracker::new(),
            receivers: TaskTracker::new(),
            receive_reserved: std::sync::Mutex::new(0),
            shutdown: CancellationToken::new(),
            abandon: CancellationToken::new(),
            #[cfg(any(test, feature = "testing"))]
            faults: options.faults,
            paused: options.paused,
            started: Instant::now(),
            poller_progress: Default::default(),
            status_progress: Default::default(),
        });
        let mut background = lease_tasks(&ctx.db, pools).await;
        background.extend(store::spawn_checkpointer(&ctx.db, ctx.wal.clone()));
        // Parked connections stay parked across a restart: known before anything is received.
        crate::actors::parking::sync(&ctx).await;
        background.push(tokio::spawn(crate::actors::parking::watch(ctx.clone())));
        background.push(tokio::spawn(crate::retention::run(ctx.clone())));
        let (root, root_done) = start_tree(&ctx).await?;
        let addr = ctx.config.http.listen;
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| DaemonError::Listen { addr, source })?;
        let http_addr = listener.local_addr().map_err(|source| DaemonError::Listen { addr, source })?;
        let metrics_listener = match ctx.config.http.metrics_listen {
            Some(addr) => {
                Some(tokio::net::TcpListener::bind(addr).await.map_err(|source| DaemonError::Listen { addr, source })?)
            }
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let http_stop = CancellationToken::new();
        let state = http::AppState::new(ctx.clone(), metrics);
        let serve = |listener: tokio::net::TcpListener, app: axum::Router| {
            let stop = http_stop.clone();
            async move {
                if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await {
                    tracing::error!(error = %e, "http server failed");
                }
            }
        };
        let api = serve(listener, http::router(state.clone()));
        let ops = metrics_listener.map(|l| serve(l, http::metrics_router(state)));
        let http_task = tokio::spawn(async move {
            match ops {
                Some(ops) => {
                    tokio::join!(api, ops);
                }
                None => api.await,
            }
        });
        tracing::info!(%http_addr, ?metrics_addr, connections = ctx.connectors.len(), "erpsync running");
        Ok(Daemon { ctx, root, root_done, http_addr, metrics_addr, http_stop, http_task, sandbox, background })
    }

    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The address of `http.metrics_listen`, once bound.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.sandbox.as_ref()
    }

    /// Resolves when the actor tree has died on its own (restart intensity exhausted).
    pub async fn failed(&mut self) {
        let _ = (&mut self.root_done).await;
    }

    /// Graceful stop: no new receives, in-flight items finish within the drain timeout,
    /// whatever is left goes back to the queue at once, then everything stops.
    pub async fn shutdown(self) {
        let drain = Duration::from_secs(self.ctx.config.shutdown.drain_timeout_secs.into());
        tracing::info!(in_flight = self.ctx.in_flight.lock().unwrap().len(), "draining");
        self.ctx.shutdown.cancel();
        // Stop receiving first, so nothing arrives after the in-flight set is taken: a
        // receive in progress completes (at most one long poll) and what it brings is
        // returned to the queue at once by the poller.
        if let Some(poller) = self.ctx.lookup::<crate::actors::poller::PollerMsg>("poller") {
            let _ = poller.stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(10))).await;
        }
        self.ctx.receivers.close();
        let long_poll = Duration::from_secs(u64::from(self.ctx.config.queue.wait_time_secs) + 5);
        if tokio::time::timeout(long_poll, self.ctx.receivers.wait()).await.is_err() {
            tracing::warn!("a receive did not finish; its messages reappear after the visibility timeout");
        }
        self.ctx.tasks.close();
        if tokio::time::timeout(drain, self.ctx.tasks.wait()).await.is_err() {
            let left: Vec<_> = self.ctx.in_flight.lock().unwrap().keys().map(|r| (r.clone(), Duration::ZERO)).collect();
            tracing::warn!(items = left.len(), "drain timeout; returning unfinished messages to the queue");
            self.ctx.abandon.cancel();
            // The abandoned tasks end at their next await; a return with a delay that one
            // of them had asked for may still be on its way to the queue. Releasing only
            // after it lands keeps it from hiding a released message again.
            if tokio::time::timeout(Duration::from_secs(5), self.ctx.tasks.wait()).await.is_err() {
                tracing::warn!("abandoned items did not stop within 5 s");
            }
            self.ctx.queue.settle().await;
            let _ = self.ctx.queue.change_visibility(&left).await;
        }
        if let Some(status) = self.ctx.lookup::<StatusMsg>("status") {
            let _ = status.call(StatusMsg::Sync, Some(Duration::from_secs(10))).await;
        }
        self.stop_tree().await;
        tracing::info!("stopped");
    }

    /// Abrupt stop, as if the process died: nothing is drained or returned; messages in
    /// flight reappear when their visibility times out.
    pub async fn kill(self) {
        for t in &self.background {
            t.abort();
        }
        self.ctx.shutdown.cancel();
        self.ctx.abandon.cancel();
        self.root.kill();
        let _ = self.root_done.await;
        self.http_stop.cancel();
        self.http_task.abort();
    }

    async fn stop_tree(self) {
        for t in &self.background {
            t.abort();
        }
        // Killing the root takes the whole tree down; the StatusActor flushes in post_stop.
        let _ = self.root.stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(10))).await;
        self.root.kill();
        let _ = self.root_done.await;
        self.http_stop.cancel();
        let _ = self.http_task.await;
        if let Some(sb) = self.sandbox {
            sb.stop().await;
        }
    }
}

/// `<hostname>:<pid>:<random>`: unique per process, readable in the slot table.
fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "host".into());
    format!("{host}:{}:{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..6])
}

/// Renews each pool's slots every third of the TTL and, on PostgreSQL, wakes waiting pools
/// when another daemon releases a slot.
async fn lease_tasks(db: &sea_orm::DatabaseConnection, pools: Vec<Arc<LeasePool>>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for pool in &pools {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(pool.ttl() / 3);
            loop {
                tick.tick().await;
                if let Err(e) = pool.renew().await {
                    tracing::warn!(error = %e, "lease renewal failed");
                }
            }
        }));
    }
    if pools.is_empty() || db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return tasks;
    }
    let pg = db.get_postgres_connection_pool().clone();
    tasks.push(tokio::spawn(async move {
        use sea_orm::sqlx::postgres::PgListener;
        loop {
            let listener = async {
                let mut l = PgListener::connect_with(&pg).await?;
                l.listen(crate::limits::lease::NOTIFY_CHANNEL).await?;
                Ok::<_, sea_orm::sqlx::Error>(l)
            };
            match listener.await {
                Ok(mut l) => loop {
                    match l.recv().await {
                        Ok(n) => {
                            for p in pools.iter().filter(|p| p.connection() == n.payload()) {
                                p.wake.notify_waiters();
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "lease notification listener lost; reconnecting");
                            break;
                        }
                    }
                },
                Err(e) => tracing::warn!(error = %e, "cannot listen for lease releases; polling instead"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }));
    tasks
}

async fn start_tree(ctx: &Arc<Ctx>) -> Result<(ActorRef<SupervisorMsg>, tokio::task::JoinHandle<()>), DaemonError> {
    let policy = RestartPolicy::default();
    let single = |what: &'static str, spawn: SpawnFn| {
        let (c, name) = (ctx.clone(), ctx.name(what));
        let n = name.clone();
        ChildSpec { name, kind: what, start: Arc::new(move |p| spawn(c.clone(), n.clone(), p)) }
    };
    let children = vec![
        single("status", |c, n, p| {
            Box::pin(async move { Ok(Actor::spawn_linked(Some(n), StatusActor, c, p).await?.0.get_cell()) })
        }),
        Supervisor::spec(ctx.name("stages"), stages::specs(ctx), policy, ctx.shutdown.clone()),
        Supervisor::spec(ctx.name("connectors"), connector::specs(ctx), policy, ctx.shutdown.clone()),
        single("poller", |c, n, p| {
            Box::pin(async move { Ok(Actor::spawn_linked(Some(n), QueuePoller, c, p).await?.0.get_cell()) })
        }),
    ];
    let args = SupervisorArgs { children, policy, shutdown: ctx.shutdown.clone() };
    let (root, handle) =
        Actor::spawn(Some(ctx.name("root")), Supervisor, args).await.map_err(|e| DaemonError::Actors(e.to_string()))?;
    Ok((root, handle))
}
