//! The four SQS calls on the daemon's hot paths — SendMessageBatch (every `POST /v1/jobs`),
//! ReceiveMessage, DeleteMessageBatch and ChangeMessageVisibilityBatch (every item
//! drained) — spoken directly: SQS's JSON protocol over one pooled HTTP client, signed
//! with SigV4 by `aws-sigv4`, with credentials from the same standard AWS chain as the
//! SDK client and the endpoint the SDK's own resolver names.
//!
//! Why not the SDK for these: its orchestrator (the config bag and interceptor layers, the
//! stalled-stream wrappers, a per-call serializer) costs hundreds of microseconds of CPU
//! per call, and a 200-invoice job makes twenty SendMessageBatch calls: on the hot paths
//! that was most of the daemon's CPU (BENCHMARKS.md). Everything else (creating queues,
//! attributes, the dead-letter queue's listing and redrive) stays on the SDK.
//!
//! Like the SDK's standard retry mode, a call is tried up to three times when SQS
//! throttles, fails on its side (5xx) or cannot be reached, with full-jitter exponential
//! backoff, and a host clock more than four minutes off SQS's is corrected from the `Date`
//! of the refusal (the SDK's clock-skew rule); each attempt counts in
//! `erpsync_sqs_requests_total`. Credentials are cached
//! until a minute before they expire and never logged.

use crate::queue::QueueError;
use crate::telemetry;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sqs::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// Attempts per call (the SDK's standard retry mode: the first and two retries).
const MAX_ATTEMPTS: u32 = 3;
/// Full-jitter backoff before retry n: up to `BACKOFF_BASE` × 2ⁿ⁻¹, at most `BACKOFF_MAX`.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(20);
/// Credentials are refreshed this long before they expire (a signed request is good for
/// five minutes at most, and sent within seconds).
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(60);
/// Refusals that may mean our clock is off (the SDK's list): when the server's `Date`
/// differs from our clock by more than [`SKEW_THRESHOLD`], requests are signed on the
/// server's time from then on, and the refused one is sent again at once — as the SDK does.
const CLOCK_SKEW_CODES: [&str; 5] = [
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "AuthFailure",
    "RequestTimeTooSkewed",
    "AccessDeniedException",
];
const SKEW_THRESHOLD: Duration = Duration::from_secs(4 * 60);
/// Longest wait for an answer beyond a long poll's own wait.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A handle on SQS for the hot calls; cheap to clone.
#[derive(Clone)]
pub struct Wire(Arc<Inner>);

struct Inner {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    region: String,
    provider: SharedCredentialsProvider,
    credentials: RwLock<Option<Credentials>>,
    refresh: tokio::sync::Mutex<()>,
    /// SQS's clock minus ours, in ms, learnt from a refusal's `Date` (see [`CLOCK_SKEW_CODES`]).
    skew_ms: AtomicI64,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire").field("endpoint", &self.0.endpoint.as_str()).field("region", &self.0.region).finish()
    }
}

impl Wire {
    /// From the loaded AWS configuration: its region, credential chain, and the endpoint
    /// the SDK would use (the configured `endpoint_url`, else the region's, FIPS and
    /// dual-stack settings included).
    pub async fn new(sdk: &aws_config::SdkConfig) -> Result<Wire, QueueError> {
        let setup = |m: String| QueueError::Setup(m);
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| setup("no AWS region: set queue.region or AWS_REGION".into()))?;
        let provider = sdk
            .credentials_provider()
            .ok_or_else(|| setup("no AWS credentials provider could be configured".into()))?;
        let params = Params::builder()
            .region(region.clone())
            .set_use_fips(sdk.use_fips())
            .set_use_dual_stack(sdk.use_dual_stack())
            .set_endpoint(sdk.endpoint_url().map(str::to_owned))
            .build()
            .map_err(|e| setup(format!("SQS endpoint parameters: {e}")))?;
        let resolved = DefaultResolver::new()
            .resolve_endpoint(&params)
            .await
            .map_err(|e| setup(format!("no SQS endpoint for region {region}: {e}")))?;
        let endpoint = reqwest::Url::parse(resolved.url())
            .map_err(|e| setup(format!("SQS endpoint {:?} is not a URL: {e}", resolved.url())))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .user_agent(concat!("erpsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| setup(format!("HTTP client for SQS: {e}")))?;
        Ok(Wire(Arc::new(Inner {
            http,
            endpoint,
            region,
            provider,
            credentials: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
            skew_ms: AtomicI64::new(0),
        })))
    }

    pub async fn send_message_batch(
        &self,
        queue_url: &str,
        entries: &[SendEntry<'_>],
    ) -> Result<BatchAnswer, QueueError> {
        let req = BatchRequest { queue_url, entries };
        self.call("SendMessageBatch", &req, ANSWER_TIMEOUT).await
    }

    pub async fn receive_message(&self, req: &ReceiveMessage<'_>) -> Result<Vec<WireMessage>, QueueError> {
        let timeout = Duration::from_secs(req.wait_time_seconds.max(0) as u64) + ANSWER_TIMEOUT;
        let answer: ReceiveAnswer = self.call("ReceiveMessage", req, timeout).await?;
        Ok(answer.messages)
    }

    pub async fn delete_message_batch(
        &self,
        queue_url: &str,
        entries: &[DeleteEntry<'_>],
    ) -> Result<BatchAnswer, QueueError> {
        let req = BatchRequest { queue_url, entries };
        self.call("DeleteMessageBatch", &req, ANSWER_TIMEOUT).await
    }

    pub async fn change_message_visibility_batch(
        &self,
        queue_url: &str,
        entries: &[VisibilityEntry<'_>],
    ) -> Result<BatchAnswer, QueueError> {
        let req = BatchRequest { queue_url, entries };
        self.call("ChangeMessageVisibilityBatch", &req, ANSWER_TIMEOUT).await
    }

    /// One API call, retried as the SDK's standard mode would.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        api: &'static str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, QueueError> {
        let body: bytes::Bytes =
            serde_json::to_vec(req).map_err(|e| QueueError::Service(format!("{api}: encoding: {e}")))?.into();
        let mut attempt = 1;
        loop {
            match self.attempt(api, &body, timeout).await {
                Ok(answer) => {
                    return serde_json::from_slice(&answer)
                        .map_err(|e| QueueError::Service(format!("{api}: unreadable answer: {e}")));
                }
                Err(failure) if failure.skew_corrected && attempt < MAX_ATTEMPTS => attempt += 1,
                Err(failure) if failure.retryable && attempt < MAX_ATTEMPTS => {
                    let cap = BACKOFF_BASE.saturating_mul(1 << (attempt - 1)).min(BACKOFF_MAX);
                    tokio::time::sleep(cap.mul_f64(rand::random::<f64>())).await;
                    attempt += 1;
                }
                Err(failure) => return Err(QueueError::Service(format!("{api}: {}", failure.message))),
            }
        }
    }

    async fn attempt(
        &self,
        api: &'static str,
        body: &bytes::Bytes,
        timeout: Duration,
    ) -> Result<bytes::Bytes, Failure> {
        let credentials = self.credentials().await.map_err(Failure::retry)?;
        let target = format!("AmazonSQS.{api}");
        let unsigned = [
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", target.as_str()),
            // SQS then names errors by their query-protocol codes too, as the SDK asks.
            ("x-amzn-query-mode", "true"),
        ];
        let identity: aws_smithy_runtime_api::client::identity::Identity = credentials.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.0.region)
            .name("sqs")
            .time(self.now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Failure::fatal(format!("signing: {e}")))?
            .into();
        let signable =
            SignableRequest::new("POST", self.0.endpoint.as_str(), unsigned.into_iter(), SignableBody::Bytes(body))
                .map_err(|e| Failure::fatal(format!("signing: {e}")))?;
        let (instructions, _) =
            sign(signable, &params).map_err(|e| Failure::fatal(format!("signing: {e}")))?.into_parts();
        let mut request = self.0.http.post(self.0.endpoint.clone()).timeout(timeout).body(body.clone());
        for (name, value) in unsigned.into_iter().chain(instructions.headers()) {
            request = request.header(name, value);
        }
        metrics::counter!(telemetry::SQS_REQUESTS, "api" => api).increment(1);
        let response = request.send().await.map_err(|e| {
            Failure::retry(format!("{}: {e}", if e.is_timeout() { "timed out" } else { "unreachable" }))
        })?;
        let status = response.status();
        let server_time = response
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok());
        let query_error = response
            .headers()
            .get("x-amzn-query-error")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::to_owned);
        let answer = response.bytes().await.map_err(|e| Failure::retry(format!("reading: {e}")))?;
        if status.is_success() {
            return Ok(answer);
        }
        let error: ErrorAnswer = serde_json::from_slice(&answer).unwrap_or_default();
        let code = query_error
            .or_else(|| error.kind.as_deref().map(|t| t.rsplit('#').next().unwrap_or(t).to_owned()))
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        // Not every refusal is in JSON (a proxy's, or an XML one): then its text, cut short.
        let message = error.message.or(error.message_upper).unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&answer);
            text.chars().take(300).collect()
        });
        let skew_corrected = CLOCK_SKEW_CODES.contains(&code.as_str())
            && server_time.is_some_and(|server| self.learn_skew(server.timestamp_millis()));
        let message = format!("{code}: {message}");
        Err(Failure { retryable: retryable(status, &code), skew_corrected, message })
    }

    /// Our clock, corrected by what SQS's told us of its own.
    fn now(&self) -> SystemTime {
        let skew = self.0.skew_ms.load(Ordering::Relaxed);
        let offset = Duration::from_millis(skew.unsigned_abs());
        if skew >= 0 { SystemTime::now() + offset } else { SystemTime::now() - offset }
    }

    /// Takes SQS's clock (ms since the epoch, from a refusal) as the one to sign with, if
    /// it is further from ours than [`SKEW_THRESHOLD`] and not already what we sign with;
    /// says whether it changed anything.
    fn learn_skew(&self, server_ms: i64) -> bool {
        let local_ms = crate::util::now_ms();
        let skew = server_ms - local_ms;
        let known = self.0.skew_ms.load(Ordering::Relaxed);
        let threshold = SKEW_THRESHOLD.as_millis() as i64;
        if (skew.abs() <= threshold && known == 0) || (skew - known).abs() <= 2_000 {
            return false;
        }
        tracing::warn!(skew_secs = skew / 1000, "SQS's clock differs from this host's; signing on SQS's time");
        self.0.skew_ms.store(if skew.abs() <= threshold { 0 } else { skew }, Ordering::Relaxed);
        true
    }

    /// The chain's credentials, fetched again when they are about to expire.
    async fn credentials(&self) -> Result<Credentials, String> {
        let fresh = |c: &Credentials| c.expiry().is_none_or(|at| at > SystemTime::now() + CREDENTIALS_MARGIN);
        if let Some(c) = self.0.credentials.read().expect("credentials lock").as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let _one_at_a_time = self.0.refresh.lock().await;
        if let Some(c) = self.0.credentials.read().expect("credentials lock").as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let c = self.0.provider.provide_credentials().await.map_err(|e| format!("no AWS credentials: {e}"))?;
        *self.0.credentials.write().expect("credentials lock") = Some(c.clone());
        Ok(c)
    }
}

struct Failure {
    retryable: bool,
    /// Refused for our clock, which is now corrected: worth sending again at once.
    skew_corrected: bool,
    message: String,
}

impl Failure {
    fn retry(message: String) -> Failure {
        Failure { retryable: true, skew_corrected: false, message }
    }

    fn fatal(message: String) -> Failure {
        Failure { retryable: false, skew_corrected: false, message }
    }
}

/// Whether SQS's answer is worth another attempt: throttling, and failures on its side.
fn retryable(status: reqwest::StatusCode, code: &str) -> bool {
    status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || code.contains("Throttl")
        || matches!(code, "RequestThrottled" | "ServiceUnavailable" | "InternalError" | "InternalFailure")
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchRequest<'a, E> {
    queue_url: &'a str,
    entries: &'a [E],
}

#[derive(Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendEntry<'a> {
    pub id: String,
    pub message_body: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_group_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_deduplication_id: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteEntry<'a> {
    pub id: String,
    pub receipt_handle: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VisibilityEntry<'a> {
    pub id: String,
    pub receipt_handle: &'a str,
    pub visibility_timeout: i32,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReceiveMessage<'a> {
    pub queue_url: &'a str,
    pub max_number_of_messages: i32,
    pub wait_time_seconds: i32,
    pub visibility_timeout: i32,
    pub message_system_attribute_names: &'a [&'a str],
    pub message_attribute_names: &'a [&'a str],
}

/// The answer to a batch call: entries by the ids they were sent with.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BatchAnswer {
    pub successful: Vec<Succeeded>,
    pub failed: Vec<FailedEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Succeeded {
    pub id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FailedEntry {
    pub id: String,
    pub sender_fault: bool,
    pub code: String,
    pub message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ReceiveAnswer {
    messages: Vec<WireMessage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WireMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// System attributes asked for (`ApproximateReceiveCount`, `MessageGroupId`).
    pub attributes: HashMap<String, String>,
    pub message_attributes: HashMap<String, AttributeValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AttributeValue {
    pub string_value: Option<String>,
}

/// An error answer: `{"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "…"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorAnswer {
    #[serde(rename = "__type")]
    kind: Option<String>,
    message: Option<String>,
    #[serde(rename = "Message")]
    message_upper: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_use_the_json_protocol_names() {
        let entries = [
            SendEntry {
                id: "0".into(),
                message_body: "{\"v\":1}",
                delay_seconds: None,
                message_group_id: Some("qbo-1".into()),
                message_deduplication_id: None,
            },
            SendEntry {
                id: "1".into(),
                message_body: "b",
                delay_seconds: Some(5),
                message_group_id: None,
                message_deduplication_id: Some("d".into()),
            },
        ];
        let json = serde_json::to_value(BatchRequest { queue_url: "http://q/1/jobs", entries: &entries }).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"QueueUrl": "http://q/1/jobs", "Entries": [
                {"Id": "0", "MessageBody": "{\"v\":1}", "MessageGroupId": "qbo-1"},
                {"Id": "1", "MessageBody": "b", "DelaySeconds": 5, "MessageDeduplicationId": "d"},
            ]})
        );
    }

    #[test]
    fn answers_and_errors_are_read() {
        let answer: BatchAnswer = serde_json::from_str(
            r#"{"Successful":[{"Id":"0","MessageId":"m"}],"Failed":[{"Id":"1","SenderFault":true,"Code":"InvalidParameterValue","Message":"too long"}]}"#,
        )
        .unwrap();
        assert_eq!(answer.successful[0].id, "0");
        assert_eq!((answer.failed[0].id.as_str(), answer.failed[0].sender_fault), ("1", true));
        let empty: ReceiveAnswer = serde_json::from_str("{}").unwrap();
        assert!(empty.messages.is_empty(), "an empty receive may omit Messages");
        let error: ErrorAnswer =
            serde_json::from_str(r#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"gone"}"#).unwrap();
        assert_eq!(error.kind.as_deref(), Some("com.amazonaws.sqs#QueueDoesNotExist"));
        assert!(retryable(reqwest::StatusCode::BAD_REQUEST, "RequestThrottled"));
        assert!(retryable(reqwest::StatusCode::SERVICE_UNAVAILABLE, "HTTP 503"));
        assert!(!retryable(reqwest::StatusCode::BAD_REQUEST, "AWS.SimpleQueueService.NonExistentQueue"));
    }

    /// A host clock ten minutes slow: the server (here one that refuses, as SQS does, a
    /// request signed more than five minutes off its own clock, and names its time in
    /// `Date`) refuses the first call; the wire learns the server's time from the refusal,
    /// sends the call again at once and succeeds, and signs the next call right first time.
    #[tokio::test]
    async fn a_clock_ten_minutes_off_is_corrected_from_the_servers_date() {
        use aws_credential_types::Credentials;
        use std::sync::atomic::AtomicUsize;
        let seen = Arc::new(AtomicUsize::new(0));
        let server_ahead = chrono::Duration::minutes(10);
        let counter = seen.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let server_now = chrono::Utc::now() + server_ahead;
                    let signed = headers.get("x-amz-date").and_then(|v| v.to_str().ok()).unwrap_or_default();
                    let signed = chrono::NaiveDateTime::parse_from_str(signed, "%Y%m%dT%H%M%SZ").unwrap().and_utc();
                    let date = server_now.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
                    if (server_now - signed).abs() > chrono::Duration::minutes(5) {
                        let body = r#"{"__type":"com.amazon.coral.service#InvalidSignatureException","message":"Signature expired"}"#;
                        (axum::http::StatusCode::BAD_REQUEST, [("date", date)], body)
                    } else {
                        (axum::http::StatusCode::OK, [("date", date)], r#"{"Successful":[{"Id":"0"}],"Failed":[]}"#)
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let config = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "AKID", "secret", None, None, "test",
            )))
            .build();
        let wire = Wire::new(&config).await.unwrap();
        let entries = [DeleteEntry { id: "0".into(), receipt_handle: "r" }];
        let answer = wire.delete_message_batch("http://q/1/jobs", &entries).await.expect("corrected and sent again");
        assert_eq!(answer.successful[0].id, "0");
        assert_eq!(seen.load(Ordering::SeqCst), 2, "refused once, then accepted");
        wire.delete_message_batch("http://q/1/jobs", &entries).await.expect("signed on the server's time");
        assert_eq!(seen.load(Ordering::SeqCst), 3, "the next call is right first time");
        let skew = wire.0.skew_ms.load(Ordering::Relaxed);
        assert!((skew - 600_000).abs() < 3_000, "learnt skew {skew} ms");
    }
}
