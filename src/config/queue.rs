//! `[queue]`: which queue backend, and how messages are received, extended and retired.

use super::problem::{Problems, nz};
use super::sections::RetryConfig;
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;
use std::path::PathBuf;

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

impl QueueConfig {
    /// Every problem of this section; `retry` bounds `max_receives`.
    pub fn validate(&self, retry: &RetryConfig, p: &mut Problems) {
        if self.wait_time_secs > 20 {
            p.add("queue.wait_time_secs", "must be at most 20 (the SQS maximum)");
        }
        if self.visibility_timeout_secs.get() < 2 {
            p.add("queue.visibility_timeout_secs", "must be at least 2 so heartbeats can extend it");
        }
        if self.visibility_timeout_secs.get() > 43_200 {
            p.add("queue.visibility_timeout_secs", "must be at most 43200 (12 hours, the SQS maximum)");
        }
        if self.backend == QueueBackend::Sqs {
            self.validate_sqs(retry, p);
        }
    }

    fn validate_sqs(&self, retry: &RetryConfig, p: &mut Problems) {
        let q = self;
        let valid_name = |n: &str| {
            let base = n.strip_suffix(".fifo").unwrap_or(n);
            !base.is_empty() && n.len() <= 80 && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        for (key, name) in [("queue.name", &q.name), ("queue.dlq_name", &q.dlq_name)] {
            if let Some(n) = name
                && !valid_name(n)
            {
                p.add(key, format!("{n:?} is not an SQS queue name (letters, digits, - and _, at most 80)"));
            }
        }
        for (key, url) in
            [("queue.url", &q.url), ("queue.dlq_url", &q.dlq_url), ("queue.endpoint_url", &q.endpoint_url)]
        {
            if let Some(u) = url {
                match reqwest::Url::parse(u) {
                    Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                    _ => p.add(key, format!("{u:?} is not an http(s) URL")),
                }
            }
        }
        if q.sqs_fifo() != q.sqs_dlq_name().ends_with(".fifo") {
            p.add("queue.dlq_name", "the dead-letter queue of a FIFO queue must be FIFO (.fifo), and only then");
        }
        let region_from_env = ["AWS_REGION", "AWS_DEFAULT_REGION"].iter().any(|v| std::env::var_os(v).is_some());
        let profile = std::env::var_os("AWS_CONFIG_FILE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws/config")));
        if q.region.is_none() && !region_from_env && !profile.is_some_and(|p| p.exists()) {
            p.add("queue.region", "is required for sqs (or set AWS_REGION)");
        }
        if q.max_receives() <= retry.max_attempts.get() {
            p.add(
                "queue.max_receives",
                format!(
                    "must exceed retry.max_attempts ({}): on SQS a message returned for a saturated connection \
                     also counts as a receive",
                    retry.max_attempts
                ),
            );
        }
        if q.fifo && q.backend == QueueBackend::Sqs {
            p.add("queue.fifo", "is for the embedded queue; an SQS queue is FIFO when its name ends in \".fifo\"");
        }
        if q.receive_loops.get() > 32 {
            p.add("queue.receive_loops", "must be at most 32");
        }
        if q.send_concurrency.get() > 64 {
            p.add("queue.send_concurrency", "must be at most 64");
        }
    }
}
