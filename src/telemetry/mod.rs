//! Every metric name in one place, the Prometheus recorder, and tracing set-up.
//!
//! Label values are bounded: ERP kinds, ops, stages, outcomes, error kinds, actor kinds and
//! configured connection ids — never document ids or error text.

pub mod events;

use crate::config::{LogConfig, LogFormat};
use crate::domain::ErrorKind;
use events::{QueueOp, ReturnReason};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

pub const BUILD_INFO: &str = "erpsync_build_info";
pub const ITEMS: &str = "erpsync_items_total";
pub const RETRIES: &str = "erpsync_retries_total";
pub const THROTTLED: &str = "erpsync_erp_throttled_total";
pub const ERP_REQUEST_SECONDS: &str = "erpsync_erp_request_duration_seconds";
pub const STAGE_SECONDS: &str = "erpsync_stage_duration_seconds";
pub const QUEUE_RECEIVED: &str = "erpsync_queue_messages_received_total";
pub const QUEUE_DELETED: &str = "erpsync_queue_messages_deleted_total";
pub const QUEUE_DEAD_LETTERED: &str = "erpsync_queue_messages_dead_lettered_total";
pub const QUEUE_RETURNED: &str = "erpsync_queue_messages_returned_total";
pub const QUEUE_ERRORS: &str = "erpsync_queue_errors_total";
pub const QUEUE_UNSENT: &str = "erpsync_queue_messages_unsent_total";
pub const SQS_REQUESTS: &str = "erpsync_sqs_requests_total";
pub const QUEUE_DEPTH: &str = "erpsync_queue_depth_messages";
pub const QUEUE_OLDEST_AGE: &str = "erpsync_queue_oldest_message_age_seconds";
pub const CONNECTION_IN_FLIGHT: &str = "erpsync_connection_in_flight_calls";
pub const CONNECTION_LIMIT: &str = "erpsync_connection_concurrency_limit";
pub const CONNECTION_PARKED: &str = "erpsync_connection_parked";
pub const ACTOR_RESTARTS: &str = "erpsync_actor_restarts_total";
pub const STATUS_BATCH_SIZE: &str = "erpsync_status_write_batch_size";
pub const STATUS_WRITE_SECONDS: &str = "erpsync_status_write_duration_seconds";
pub const JOBS_CREATED: &str = "erpsync_jobs_created_total";
pub const SQLITE_BUSY_WAITS: &str = "erpsync_sqlite_busy_waits_total";
pub const CONNECTION_ITEMS: &str = "erpsync_connection_items_total";
pub const CONNECTION_RETRIES: &str = "erpsync_connection_retries_total";
pub const CONNECTION_ERP_SECONDS: &str = "erpsync_connection_erp_request_duration_seconds";
pub const LEASES_HELD: &str = "erpsync_connection_leases_held";
pub const LEASE_WAIT_SECONDS: &str = "erpsync_connection_lease_wait_seconds";
pub const RETENTION_DELETED: &str = "erpsync_retention_deleted_total";
pub const RETENTION_BATCH_SECONDS: &str = "erpsync_retention_batch_duration_seconds";

/// The closed sets of label values, so every series known at start-up exists from the start.
pub const OUTCOMES: [&str; 4] = ["succeeded", "failed", "dead_lettered", "cancelled"];
pub const ACTOR_KINDS: [&str; 6] = ["status", "supervisor", "serializer", "renderer", "matcher", "connector"];
pub const DEAD_LETTER_REASONS: [&str; 9] = [
    "item",
    "max_receives",
    "unknown_connection",
    "not_json",
    "not_an_object",
    "bad_version",
    "bad_field",
    "no_payload",
    "too_large",
];
/// The SQS APIs the daemon calls while running: `erpsync_sqs_requests_total`'s `api`
/// label (any other API, such as those of `erpsync queue create`, counts as `other`).
pub const SQS_APIS: [&str; 6] = [
    "ReceiveMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibilityBatch",
    "SendMessageBatch",
    "SendMessage",
    "GetQueueAttributes",
];
/// Connections past this many (in config order) share the label value `other`.
pub const OTHER_CONNECTIONS: &str = "other";

/// Registers every series whose labels are known from the config at 0, so dashboards and
/// alerts see them before the first event.
pub fn zero_init(config: &crate::config::Config) {
    use metrics::counter;
    let mut erps: Vec<&str> = config.connections.iter().map(|c| c.erp.as_str()).collect();
    erps.sort();
    erps.dedup();
    for erp in &erps {
        for op in crate::domain::Op::ALL {
            for outcome in OUTCOMES {
                counter!(ITEMS, "erp" => *erp, "op" => op.as_str(), "outcome" => outcome).absolute(0);
            }
        }
        for kind in ErrorKind::retried() {
            counter!(RETRIES, "erp" => *erp, "error_kind" => kind.as_str()).absolute(0);
        }
        counter!(THROTTLED, "erp" => *erp).absolute(0);
    }
    for (i, c) in config.connections.iter().enumerate() {
        let label = connection_label(config, i, c.id.as_str());
        for outcome in OUTCOMES {
            counter!(CONNECTION_ITEMS, "connection" => label.clone(), "outcome" => outcome).absolute(0);
        }
        for kind in ErrorKind::retried() {
            counter!(CONNECTION_RETRIES, "connection" => label.clone(), "error_kind" => kind.as_str()).absolute(0);
        }
    }
    for actor in ACTOR_KINDS {
        counter!(ACTOR_RESTARTS, "actor" => actor).absolute(0);
    }
    for reason in DEAD_LETTER_REASONS {
        counter!(QUEUE_DEAD_LETTERED, "reason" => reason).absolute(0);
    }
    for reason in ReturnReason::ALL {
        counter!(QUEUE_RETURNED, "reason" => reason.as_str()).absolute(0);
    }
    for op in QueueOp::ALL {
        counter!(QUEUE_ERRORS, "op" => op.as_str(), "error_kind" => "service").absolute(0);
    }
    counter!(QUEUE_RECEIVED).absolute(0);
    counter!(QUEUE_DELETED).absolute(0);
    // At 0 on the embedded queue too, so the dashboard's panel shows "none" rather than
    // "no data".
    for api in SQS_APIS.into_iter().chain(["other"]) {
        counter!(SQS_REQUESTS, "api" => api).absolute(0);
    }
    counter!(JOBS_CREATED).absolute(0);
    counter!(SQLITE_BUSY_WAITS).absolute(0);
    for what in ["jobs", "items"] {
        counter!(RETENTION_DELETED, "what" => what).absolute(0);
    }
}

/// The `connection` label of the `index`-th configured connection: its id for the first
/// `metrics.per_connection_max`, `other` beyond, so thousands of connections cannot
/// explode the series count.
pub fn connection_label(config: &crate::config::Config, index: usize, id: &str) -> String {
    if index < config.metrics.per_connection_max as usize { id.to_owned() } else { OTHER_CONNECTIONS.to_owned() }
}

/// ERP calls: 10 ms to 2 min.
const ERP_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
/// Pipeline stages are CPU work: 0.1 ms to 5 s.
const STAGE_BUCKETS: &[f64] = &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
const WRITE_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];
/// Waiting for a cluster slot: 1 ms to 1 min.
const LEASE_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle (rendering is done by
/// the daemon's own HTTP server, so the exporter's listener is never started).
pub fn metrics_handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(ERP_REQUEST_SECONDS.into()), ERP_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(STAGE_SECONDS.into()), STAGE_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(STATUS_WRITE_SECONDS.into()), WRITE_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(STATUS_BATCH_SIZE.into()), BATCH_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(CONNECTION_ERP_SECONDS.into()), ERP_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(LEASE_WAIT_SECONDS.into()), LEASE_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(RETENTION_BATCH_SECONDS.into()), WRITE_BUCKETS))
                .expect("bucket lists are non-empty")
                .install_recorder()
                .expect("the metrics recorder is installed once per process");
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(BUILD_INFO, "Build information; always 1.");
    describe_counter!(ITEMS, "Work items that reached a terminal state, by ERP kind, op and outcome.");
    describe_counter!(RETENTION_DELETED, "Ended jobs and their items deleted by retention, by what.");
    describe_histogram!(
        RETENTION_BATCH_SECONDS,
        Unit::Seconds,
        "Time of one retention batch transaction (the status writer may wait this long)."
    );
    describe_counter!(RETRIES, "Transient failures rescheduled with backoff, by ERP kind and error kind.");
    describe_counter!(THROTTLED, "ERP answers saying we were over its concurrency or rate limit.");
    describe_histogram!(ERP_REQUEST_SECONDS, Unit::Seconds, "ERP request latency by ERP kind and outcome.");
    describe_histogram!(STAGE_SECONDS, Unit::Seconds, "Pipeline stage duration by stage.");
    describe_counter!(QUEUE_RECEIVED, "Messages received from the queue.");
    describe_counter!(QUEUE_DELETED, "Messages deleted after their outcome was recorded.");
    describe_counter!(QUEUE_DEAD_LETTERED, "Messages moved to the dead-letter store, by reason kind.");
    describe_counter!(QUEUE_ERRORS, "Failed queue service calls, by op and error kind.");
    describe_counter!(
        SQS_REQUESTS,
        "Requests made to SQS, by API (each is billed; messages per batch call = the message counters over these)."
    );
    describe_counter!(
        SQLITE_BUSY_WAITS,
        "Waits of an SQLite statement for a lock another connection held (20 µs each at first, then 1 ms)."
    );
    describe_counter!(QUEUE_UNSENT, "Messages a send could not deliver to the queue (the outbox sends them later).");
    describe_gauge!(QUEUE_DEPTH, "Messages in the queue by state (visible, in_flight, delayed, dead_lettered).");
    describe_gauge!(QUEUE_OLDEST_AGE, Unit::Seconds, "Age of the oldest live message.");
    describe_gauge!(CONNECTION_IN_FLIGHT, "ERP calls in flight per connection.");
    describe_gauge!(CONNECTION_LIMIT, "Concurrency limit per connection.");
    describe_gauge!(
        CONNECTION_PARKED,
        "1 while a connection is parked (its items wait unattempted), by reason: auth_revoked, operator."
    );
    describe_counter!(ACTOR_RESTARTS, "Actor restarts by supervisors, by actor kind.");
    describe_histogram!(STATUS_BATCH_SIZE, "Item updates written per StatusActor transaction.");
    describe_histogram!(STATUS_WRITE_SECONDS, Unit::Seconds, "StatusActor transaction latency.");
    describe_counter!(JOBS_CREATED, "Jobs accepted by the API.");
    describe_counter!(QUEUE_RETURNED, "Messages returned to the queue with a delay, by reason.");
    describe_counter!(CONNECTION_ITEMS, "Terminal items per connection and outcome.");
    describe_counter!(CONNECTION_RETRIES, "Rescheduled attempts per connection and error kind.");
    describe_histogram!(CONNECTION_ERP_SECONDS, Unit::Seconds, "ERP request latency per connection.");
    describe_gauge!(LEASES_HELD, "Cluster-wide concurrency slots this daemon holds per connection.");
    describe_histogram!(LEASE_WAIT_SECONDS, Unit::Seconds, "Time waiting for a cluster-wide concurrency slot.");
}

/// The current value of one series of this process's metrics, by its rendered name and
/// labels (`erpsync_x_sum{connection="a"}`); 0 when absent. For benchmark reports.
pub fn sample(series: &str) -> f64 {
    metrics_handle()
        .render()
        .lines()
        .find(|l| l.rsplit_once(' ').is_some_and(|(name, _)| name == series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The sum of every series of metric `name`, whatever its labels (0 when none exists).
pub fn sample_total(name: &str) -> f64 {
    metrics_handle()
        .render()
        .lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Sets up tracing once per process; later calls are no-ops (tests start many daemons).
pub fn init_tracing(cfg: &LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::new(&cfg.level);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match cfg.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
