//! Talking to SQS about queues rather than messages: building the client from config and
//! the standard AWS credential chain, finding the queue and its dead-letter queue, and
//! creating both (`erpsync queue create`, the test rigs).

use super::convert::service_err;
use super::wire::Wire;
use crate::config::QueueConfig;
use crate::queue::QueueError;
use crate::telemetry;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sqs::error::BoxError;
use aws_sdk_sqs::types::QueueAttributeName;
use std::time::Duration;

/// Receives past the daemon's own `max_receives` before SQS's redrive policy moves a
/// message by itself. The daemon dead-letters first, with a reason; the policy is the net
/// for messages nobody handles (a consumer that crashes on them, an old daemon).
pub const REDRIVE_MARGIN: u32 = 5;

/// The AWS configuration as set in `[queue]`: credentials from the standard chain
/// (environment, profile, web identity, ECS/instance role), never logged; region and
/// endpoint from config.
async fn aws_config(cfg: &QueueConfig) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                // A long poll takes up to 20 s; anything much longer is an outage.
                .operation_attempt_timeout(Duration::from_secs(u64::from(cfg.wait_time_secs.min(20)) + 10))
                .build(),
        );
    if let Some(region) = &cfg.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(endpoint) = &cfg.endpoint_url {
        loader = loader.endpoint_url(endpoint.clone());
    }
    loader.load().await
}

fn sdk_client(config: &aws_config::SdkConfig) -> Client {
    Client::from_conf(aws_sdk_sqs::config::Builder::from(config).interceptor(CountRequests).build())
}

/// The SDK's SQS client, for everything but the hot calls (see [`Clients`]).
pub async fn client(cfg: &QueueConfig) -> Client {
    sdk_client(&aws_config(cfg).await)
}

/// Both ways this daemon talks to SQS, from one configuration: the SDK for managing
/// queues and the dead-letter queue, [`Wire`] for the calls every item makes.
#[derive(Clone, Debug)]
pub struct Clients {
    pub sdk: Client,
    pub wire: Wire,
}

pub async fn clients(cfg: &QueueConfig) -> Result<Clients, QueueError> {
    clients_from(&aws_config(cfg).await).await
}

/// Both clients from an AWS configuration built elsewhere (explicit credentials, say).
pub async fn clients_from(config: &aws_config::SdkConfig) -> Result<Clients, QueueError> {
    Ok(Clients { sdk: sdk_client(config), wire: Wire::new(config).await? })
}

/// Counts every request the SDK sends to SQS, retries included (each is billed), by API:
/// `erpsync_sqs_requests_total` (the hot calls, sent without the SDK, count themselves in
/// `wire`).
#[derive(Debug)]
struct CountRequests;

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "erpsync::CountRequests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The JSON protocol names the API in `X-Amz-Target: AmazonSQS.ReceiveMessage`.
        let target = context.request().headers().get("x-amz-target").and_then(|t| t.rsplit('.').next());
        let api = telemetry::SQS_APIS.iter().find(|&&api| Some(api) == target).copied().unwrap_or("other");
        metrics::counter!(telemetry::SQS_REQUESTS, "api" => api).increment(1);
        Ok(())
    }
}

/// The URL of queue `name`, or a setup error saying how to create it.
pub async fn queue_url(client: &Client, name: &str) -> Result<String, QueueError> {
    match client.get_queue_url().queue_name(name).send().await {
        Ok(out) => out.queue_url().map(str::to_owned).ok_or_else(|| QueueError::Setup(format!("no URL for {name}"))),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_does_not_exist()) => {
            Err(QueueError::Setup(format!("SQS queue {name:?} does not exist; create it with `erpsync queue create`")))
        }
        Err(e) => Err(service_err("GetQueueUrl", e)),
    }
}

/// The URLs of the queue and its dead-letter queue, as configured.
pub async fn resolve(client: &Client, cfg: &QueueConfig) -> Result<(String, String), QueueError> {
    let main = match &cfg.url {
        Some(u) => u.clone(),
        None => queue_url(client, &cfg.sqs_name()).await?,
    };
    let dlq = match &cfg.dlq_url {
        Some(u) => u.clone(),
        None => queue_url(client, &cfg.sqs_dlq_name()).await?,
    };
    Ok((main, dlq))
}

async fn create_one(client: &Client, name: &str, fifo: bool) -> Result<String, QueueError> {
    let mut req = client.create_queue().queue_name(name);
    if fifo {
        req = req.attributes(QueueAttributeName::FifoQueue, "true");
    }
    let out = req.send().await.map_err(|e| service_err("CreateQueue", e))?;
    out.queue_url().map(str::to_owned).ok_or_else(|| QueueError::Setup(format!("CreateQueue {name}: no URL")))
}

/// Creates the dead-letter queue and the queue with a redrive policy to it, or updates
/// their attributes when they exist: running it twice changes nothing. Returns the URLs.
pub async fn create_queues(client: &Client, cfg: &QueueConfig) -> Result<(String, String), QueueError> {
    let fifo = cfg.sqs_fifo();
    let dlq = create_one(client, &cfg.sqs_dlq_name(), fifo).await?;
    let attrs = client
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| service_err("GetQueueAttributes", e))?;
    let arn = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| QueueError::Setup("the dead-letter queue has no ARN".into()))?;
    // Dead letters are kept for the longest SQS allows (14 days), for a person to look at.
    client
        .set_queue_attributes()
        .queue_url(&dlq)
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .map_err(|e| service_err("SetQueueAttributes", e))?;
    let main = create_one(client, &cfg.sqs_name(), fifo).await?;
    let policy = serde_json::json!({
        "deadLetterTargetArn": arn,
        "maxReceiveCount": (cfg.max_receives() + REDRIVE_MARGIN).to_string(),
    });
    client
        .set_queue_attributes()
        .queue_url(&main)
        .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
        .attributes(QueueAttributeName::VisibilityTimeout, cfg.visibility_timeout_secs.to_string())
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .map_err(|e| service_err("SetQueueAttributes", e))?;
    Ok((main, dlq))
}

/// Deletes both queues (test rigs clean up after themselves).
pub async fn delete_queues(client: &Client, urls: &[&str]) {
    for url in urls {
        if let Err(e) = client.delete_queue().queue_url(*url).send().await {
            tracing::debug!(error = %service_err("DeleteQueue", e), "could not delete a queue");
        }
    }
}
