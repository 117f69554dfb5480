//! OAuth 2.0 client credentials grant (RFC 6749 §4.4) as the Microsoft identity platform
//! serves it (MicrosoftDocs/entra-docs `docs/identity-platform/v2-oauth2-client-creds-grant-flow.md`):
//! `POST {token_url}` form-encoded `grant_type=client_credentials&client_id&client_secret&scope`,
//! answered `{"token_type":"Bearer","expires_in","access_token"}`, or an error
//! `{"error","error_description":"AADSTS…","error_codes":[…]}`.
//!
//! Nothing is stored: there is no refresh token, a new access token is asked for with the
//! same credentials whenever the cached one is about to lapse or the API says it expired.
//! The identity platform's refusal of the client itself (`invalid_client`, e.g. AADSTS7000215
//! wrong secret, AADSTS7000222 expired secret; `unauthorized_client`, e.g. AADSTS700016 no
//! such application) does not heal: it is [`ErpError::Revoked`].

use crate::config::connection::ConnectionConfig;
use crate::erp::bearer::{self, AccessTokens, Refused, Sent};
use crate::erp::{ErpError, credentials_doc};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// A token is replaced this long before the identity platform says it expires, so a call
/// made with it does not arrive after it has lapsed.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// The secrets of a client credentials connection: exactly these keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    client_id: String,
    client_secret: String,
}

/// The keys of its credentials document, all required.
const KEYS: [&str; 2] = ["client_id", "client_secret"];

/// Reads a connection's credentials document, naming what is wrong without quoting it.
pub fn credentials(conn: &ConnectionConfig, text: Option<&SecretString>) -> Result<Credentials, String> {
    credentials_doc::read(conn, text, &KEYS)
}

/// The connection's credentials problem, if its reference reads but its document is not
/// `{"client_id","client_secret"}` (an unreadable reference is reported by the
/// connection's own checks).
pub fn credentials_problem(conn: &ConnectionConfig) -> Option<(&'static str, String)> {
    credentials_doc::problem::<Credentials>(conn, &KEYS)
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Access tokens of one connection from its client id and secret.
pub struct ClientCredentialsFlow {
    token_url: Url,
    client_id: String,
    client_secret: SecretString,
    scope: String,
    http: reqwest::Client,
    cached: Mutex<Option<(SecretString, Instant)>>,
    issued: AtomicU64,
}

impl AccessTokens for ClientCredentialsFlow {
    async fn access_token(&self) -> Result<SecretString, ErpError> {
        ClientCredentialsFlow::access_token(self).await
    }

    async fn expired(&self, used: &SecretString) {
        ClientCredentialsFlow::expired(self, used).await
    }
}

impl ClientCredentialsFlow {
    pub fn new(creds: Credentials, token_url: Url, scope: &str, http: reqwest::Client) -> Self {
        ClientCredentialsFlow {
            token_url,
            client_id: creds.client_id,
            client_secret: SecretString::from(creds.client_secret),
            scope: scope.to_owned(),
            http,
            cached: Mutex::new(None),
            issued: AtomicU64::new(0),
        }
    }

    /// How many tokens this flow obtained.
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::SeqCst)
    }

    /// A valid access token: the cached one, or a new one. Calls needing a new one at once
    /// wait for a single request.
    pub async fn access_token(&self) -> Result<SecretString, ErpError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = &*cached
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let answer = self.exchange().await?;
        self.issued.fetch_add(1, Ordering::SeqCst);
        let lifetime = Duration::from_secs(answer.expires_in).saturating_sub(EXPIRY_MARGIN);
        let token = SecretString::from(answer.access_token);
        *cached = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    /// The API refused `used` as expired: forget it (unless a newer one replaced it meanwhile).
    pub async fn expired(&self, used: &SecretString) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|(t, _)| t.expose_secret() == used.expose_secret()) {
            *cached = None;
        }
    }

    /// Sends the request `build` makes with a valid access token, renewed once when the API
    /// says (as `expired` reads its answer) that it expired (see [`bearer::send`]).
    pub async fn send(
        &self,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
        expired: impl Fn(&reqwest::header::HeaderMap, &str) -> bool,
    ) -> Result<Result<reqwest::Response, Refused>, Sent> {
        bearer::send(self, build, expired).await
    }

    async fn exchange(&self) -> Result<TokenAnswer, ErpError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
            ("scope", self.scope.as_str()),
        ];
        let resp = self
            .http
            .post(self.token_url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| ErpError::Transient(format!("token endpoint unreachable: {}", e.without_url())))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_str(&text)
                .map_err(|e| ErpError::Transient(format!("unreadable token endpoint answer: {e}")));
        }
        Err(classify_token_error(status, &text))
    }
}

/// The identity platform's refusal, classified. Its `error_description` names the AADSTS
/// code and never carries the secret.
pub(crate) fn classify_token_error(status: StatusCode, text: &str) -> ErpError {
    let refused = serde_json::from_str::<TokenError>(text).ok();
    let what = refused
        .as_ref()
        .map(|e| {
            let first_line = e.error_description.as_deref().and_then(|d| d.lines().next()).unwrap_or("");
            if first_line.is_empty() { e.error.clone() } else { format!("{}: {first_line}", e.error) }
        })
        .unwrap_or_else(|| text.chars().take(200).collect());
    match (status, refused.as_ref().map(|e| e.error.as_str())) {
        (_, Some("invalid_client" | "unauthorized_client")) => ErpError::Revoked {
            message: format!("the client credentials were refused ({what}): give the connection new credentials"),
        },
        (StatusCode::TOO_MANY_REQUESTS, _) => ErpError::Throttled { retry_after: None },
        (s, _) if s.is_server_error() => ErpError::Transient(format!("token endpoint answered {s}: {what}")),
        (s, _) => ErpError::Auth { status: s.as_u16(), message: format!("token endpoint answered {s}: {what}") },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_identity_platforms_refusals_are_classified() {
        let expired = r#"{"error":"invalid_client","error_description":"AADSTS7000222: The provided client secret keys for app 'x' are expired.\r\nTrace ID: 1","error_codes":[7000222]}"#;
        let ErpError::Revoked { message } = classify_token_error(StatusCode::UNAUTHORIZED, expired) else {
            panic!("an expired secret is revoked")
        };
        assert!(message.contains("AADSTS7000222") && !message.contains("Trace ID"), "{message}");
        let unknown_app =
            r#"{"error":"unauthorized_client","error_description":"AADSTS700016: Application not found"}"#;
        assert!(matches!(classify_token_error(StatusCode::BAD_REQUEST, unknown_app), ErpError::Revoked { .. }));
        let scope = r#"{"error":"invalid_scope","error_description":"AADSTS70011: The provided value for the input parameter 'scope' is not valid."}"#;
        assert!(matches!(classify_token_error(StatusCode::BAD_REQUEST, scope), ErpError::Auth { status: 400, .. }));
        assert!(matches!(classify_token_error(StatusCode::SERVICE_UNAVAILABLE, "<html>"), ErpError::Transient(_)));
        assert!(matches!(classify_token_error(StatusCode::TOO_MANY_REQUESTS, ""), ErpError::Throttled { .. }));
    }

    proptest! {
        #[test]
        fn any_token_endpoint_answer_is_classified(body in proptest::collection::vec(any::<u8>(), 0..300), status in 400u16..600) {
            let text = String::from_utf8_lossy(&body);
            let _ = classify_token_error(StatusCode::from_u16(status).unwrap(), &text);
        }
    }
}
