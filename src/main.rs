//! The `erpsync` command line: parse, load config, call into the library.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use erpsync::config::Config;
use std::path::PathBuf;

/// mimalloc rather than glibc's malloc: the daemon allocates many small, short-lived
/// buffers (JSON, SQL values, HTTP bodies), and glibc's allocator took about an eighth of
/// the CPU of an enqueue in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "erpsync", version, about = "Asynchronous accounts-payable <-> ERP synchronization daemon")]
struct Cli {
    /// Config file (default: config/erpsync.toml when present).
    #[arg(long, global = true, env = "ERPSYNC_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run,
    /// Record a job through the daemon's API.
    Enqueue {
        #[command(subcommand)]
        what: Enqueue,
    },
    /// Show a job's progress and per-item outcomes.
    Status {
        job_id: String,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
        /// Show the job's events as they happen (a progress bar on a terminal) until it
        /// completes, then the summary.
        #[arg(long)]
        follow: bool,
        /// Daemon API base URL (default: from config http.listen).
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        token: TokenArg,
    },
    /// Create, list and revoke API tokens (on the database directly, so the first token
    /// needs no running daemon).
    Tokens {
        #[command(subcommand)]
        what: Tokens,
    },
    /// List the connections with their state (active, or parked and why); give one new
    /// credentials, park it or resume it. Running daemons follow within a second.
    Connections {
        #[command(subcommand)]
        what: Option<Connections>,
    },
    /// Inspect the dead-letter store, or move dead letters back to the queue.
    Dlq {
        #[command(subcommand)]
        what: Dlq,
    },
    /// Manage the queue itself.
    Queue {
        #[command(subcommand)]
        what: QueueCmd,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration, print every problem, exit non-zero if any.
    CheckConfig,
    /// Run a simulated ERP speaking the generic REST protocol or a vendor's dialect.
    SandboxErp {
        #[arg(long, default_value = "127.0.0.1:8089")]
        listen: std::net::SocketAddr,
        /// The protocol it speaks: generic_rest, xero, quickbooks_online, business_central,
        /// sage_intacct or netsuite.
        #[arg(long, default_value = "generic_rest", value_parser = ["generic_rest", "xero", "quickbooks_online", "business_central", "sage_intacct", "netsuite"])]
        dialect: String,
        /// Boxed: every dialect's options together are far larger than any other command.
        #[command(flatten)]
        options: Box<erpsync::erp::sandbox::SandboxOptions>,
    },
    /// One connection of each ERP dialect against its simulator, and the daemon, in one
    /// process, exporting sample invoices with live progress.
    Demo {
        /// Invoices per connection (Xero's 60 calls a minute make more than 25 take minutes).
        #[arg(long, default_value_t = 25)]
        invoices: usize,
    },
    /// Write exactly what an export would send for one document (request body, PDF
    /// attachment, CSV rows) into a directory, without calling any ERP.
    Preview(erpsync::preview::PreviewArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
}

#[derive(Subcommand)]
enum Enqueue {
    /// Export invoices (vendor bills) to a connection.
    ExportInvoices {
        #[arg(long)]
        connection: String,
        /// A JSON file holding an array of invoices.
        #[arg(long, conflicts_with = "sample", required_unless_present = "sample")]
        file: Option<PathBuf>,
        /// Generate N sample invoices instead.
        #[arg(long)]
        sample: Option<usize>,
        /// Show progress until the job is done, then a summary.
        #[arg(long)]
        wait: bool,
        /// Daemon API base URL (default: from config http.listen).
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        token: TokenArg,
    },
}

#[derive(clap::Args)]
struct TokenArg {
    /// API token (`erpsync tokens create` makes one).
    #[arg(long = "token", env = "ERPSYNC_TOKEN", hide_env_values = true)]
    value: Option<String>,
}

#[derive(Subcommand)]
enum Tokens {
    /// Create a token and print it; it is shown this once, only its hash is kept.
    Create {
        /// The tenant whose connections the token sees.
        #[arg(long)]
        tenant: String,
        /// read (GETs), write (read and submitting jobs) or admin (everything).
        #[arg(long, default_value = "read")]
        scope: erpsync::store::tokens::Scope,
        /// What the token is for, shown by `list`.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List every token (never the token itself: its last four characters).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (from `list`); the API refuses it within seconds.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum Connections {
    /// Each connection: its ERP, tenant, state, and where its credentials come from
    /// (never the secrets themselves).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Replace a connection's secrets with a JSON document of its kind (stored sealed with
    /// secrets.key; it takes precedence over the configuration's `credentials`).
    SetCredentials {
        id: String,
        #[arg(long)]
        file: std::path::PathBuf,
    },
    /// Park a connection: its items wait, unattempted, until it is resumed.
    Park {
        id: String,
        /// Why, shown in the job status.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Resume a parked connection: its waiting items are sent again.
    Resume { id: String },
}

#[derive(Subcommand)]
enum Dlq {
    /// List dead-lettered messages, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[arg(long)]
        json: bool,
    },
    /// Move dead letters back to the queue (their items are queued again).
    Redrive {
        /// Only messages for this connection.
        #[arg(long)]
        connection: Option<String>,
        /// At most this many messages.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
}

#[derive(Subcommand)]
enum QueueCmd {
    /// Create the SQS queue and its dead-letter queue with a redrive policy (idempotent).
    Create,
}

#[derive(Subcommand)]
enum Bench {
    /// Drain time against the ideal over connections with different concurrency limits.
    Slots(erpsync::bench::SlotsArgs),
    /// A vendor connector against its simulator at the vendor's documented limits.
    Connectors(erpsync::bench::ConnectorsArgs),
    /// Noisy neighbour: one connection's backlog against another's single item.
    Fairness(erpsync::bench::FairnessArgs),
    /// Item status writes per second through the StatusActor.
    Store(erpsync::bench::StoreArgs),
    /// Delivery latency of the SSE event stream with 1,000 events/s flowing.
    Events(erpsync::bench::EventsArgs),
    /// Drain time of 1, 2, 3… daemon processes sharing one PostgreSQL, against the ideal.
    Fleet(erpsync::bench::FleetArgs),
    /// Invoices per second through serialize + PDF + CSV, per ERP kind, one core and all cores.
    Render(erpsync::bench::RenderArgs),
    /// `POST /v1/jobs` latency (p50/p99) with the embedded or the SQS queue.
    Enqueue(erpsync::bench::queue::EnqueueArgs),
    /// End-to-end drain throughput with the embedded or the SQS queue.
    Drain(erpsync::bench::queue::DrainArgs),
    /// The least CPU per item a consumer keeping erpsync's promises could spend on SQS.
    Floor(erpsync::bench::floor::FloorArgs),
}

fn load(path: &Option<PathBuf>) -> Result<Config> {
    Config::load(path.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))
}

fn api_url(cfg: &Config, url: Option<String>) -> String {
    url.unwrap_or_else(|| format!("http://{}", cfg.http.listen))
}

fn main() -> Result<()> {
    erpsync::util::no_transparent_huge_pages();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        match cli.command {
            Command::CheckConfig => match Config::load(cli.config.as_deref()) {
                Ok(c) => {
                    println!("configuration is valid ({} connection(s))", c.connections.len());
                    Ok(())
                }
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(2);
                }
            },
            Command::Run => {
                let cfg = load(&cli.config)?;
                erpsync::telemetry::init_tracing(&cfg.log);
                erpsync::cli::run(cfg).await
            }
            Command::Migrate => {
                let cfg = load(&cli.config)?;
                let url = cfg.database_url();
                let db = erpsync::store::connect(&url, 1).await?;
                erpsync::store::migrate(&db).await?;
                println!("migrations applied to {}", erpsync::store::redact_url(&url));
                Ok(())
            }
            Command::Enqueue { what: Enqueue::ExportInvoices { connection, file, sample, wait, url, token } } => {
                let cfg = load(&cli.config)?;
                let docs = match (file, sample) {
                    (Some(f), _) => {
                        let text =
                            std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?;
                        let v: serde_json::Value =
                            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", f.display()))?;
                        match v {
                            serde_json::Value::Array(a) => a,
                            _ => bail!("{} must hold a JSON array of invoices", f.display()),
                        }
                    }
                    (None, Some(n)) => {
                        let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
                        erpsync::samples::invoices(&tag, n).iter().map(|i| serde_json::to_value(i).unwrap()).collect()
                    }
                    (None, None) => bail!("give --file or --sample"),
                };
                let api = erpsync::cli::Api::new(api_url(&cfg, url), token.value);
                erpsync::cli::enqueue(&api, &connection, docs, wait).await
            }
            Command::Status { job_id, json, follow, url, token } => {
                let cfg = load(&cli.config)?;
                erpsync::cli::status(&erpsync::cli::Api::new(api_url(&cfg, url), token.value), &job_id, json, follow)
                    .await
            }
            Command::Tokens { what } => {
                let cfg = load(&cli.config)?;
                match what {
                    Tokens::Create { tenant, scope, name } => {
                        erpsync::cli::tokens_create(&cfg, &tenant, scope, &name).await
                    }
                    Tokens::List { json } => erpsync::cli::tokens_list(&cfg, json).await,
                    Tokens::Revoke { id } => erpsync::cli::tokens_revoke(&cfg, &id).await,
                }
            }
            Command::Connections { what } => {
                let cfg = load(&cli.config)?;
                use erpsync::cli::connections as c;
                match what.unwrap_or(Connections::List { json: false }) {
                    Connections::List { json } => c::list(&cfg, json).await,
                    Connections::SetCredentials { id, file } => c::set_credentials(&cfg, &id, &file).await,
                    Connections::Park { id, reason } => c::park(&cfg, &id, &reason).await,
                    Connections::Resume { id } => c::resume(&cfg, &id).await,
                }
            }
            Command::Dlq { what: Dlq::List { limit, json } } => {
                let cfg = load(&cli.config)?;
                erpsync::cli::dlq_list(&cfg, limit, json).await
            }
            Command::Dlq { what: Dlq::Redrive { connection, limit } } => {
                let cfg = load(&cli.config)?;
                erpsync::cli::dlq_redrive(&cfg, connection.as_deref(), limit).await
            }
            Command::Queue { what: QueueCmd::Create } => {
                let cfg = load(&cli.config)?;
                erpsync::cli::queue_create(&cfg).await
            }
            Command::SandboxErp { listen, dialect, options } => {
                erpsync::telemetry::init_tracing(&Default::default());
                let dialect = match dialect.as_str() {
                    "xero" => &erpsync::erp::sandbox::XERO,
                    "quickbooks_online" => &erpsync::erp::sandbox::QUICKBOOKS_ONLINE,
                    "business_central" => &erpsync::erp::sandbox::BUSINESS_CENTRAL,
                    "sage_intacct" => &erpsync::erp::sandbox::SAGE_INTACCT,
                    "netsuite" => &erpsync::erp::sandbox::NETSUITE,
                    _ => &erpsync::erp::sandbox::GENERIC_REST,
                };
                let sb = erpsync::erp::sandbox::Sandbox::start_speaking(dialect, listen, *options)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                println!("sandbox ERP listening on {}", sb.base_url());
                tokio::signal::ctrl_c().await?;
                sb.stop().await;
                Ok(())
            }
            Command::Preview(args) => match erpsync::preview::run(&args) {
                Ok(written) => {
                    for path in written {
                        println!("{}", path.display());
                    }
                    Ok(())
                }
                Err(e) => {
                    eprintln!("{e}");
                    for problem in e.problems() {
                        eprintln!("  {problem}");
                    }
                    std::process::exit(if e.is_document_problem() { 2 } else { 1 });
                }
            },
            Command::Demo { invoices } => erpsync::demo::run(invoices).await,
            Command::Bench { what: Bench::Slots(args) } => erpsync::bench::slots(args).await,
            Command::Bench { what: Bench::Connectors(args) } => erpsync::bench::connectors(args).await,
            Command::Bench { what: Bench::Fairness(args) } => erpsync::bench::fairness(args).await,
            Command::Bench { what: Bench::Store(args) } => erpsync::bench::store(args).await,
            Command::Bench { what: Bench::Events(args) } => erpsync::bench::events(args).await,
            Command::Bench { what: Bench::Fleet(args) } => erpsync::bench::fleet(args).await,
            // CPU-bound and multi-threaded itself: off the runtime's threads.
            Command::Bench { what: Bench::Render(args) } => {
                tokio::task::spawn_blocking(move || erpsync::bench::render(args)).await?
            }
            Command::Bench { what: Bench::Enqueue(args) } => erpsync::bench::queue::enqueue(args).await,
            Command::Bench { what: Bench::Drain(args) } => erpsync::bench::queue::drain(args).await,
            Command::Bench { what: Bench::Floor(args) } => erpsync::bench::floor::floor(args).await,
        }
    })
}
