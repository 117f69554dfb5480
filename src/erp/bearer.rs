//! A request sent with a bearer access token that may lapse under it, as both OAuth flows
//! (rotating refresh tokens, `oauth`; client credentials, `client_credentials`) send one:
//! when the vendor says the token expired, one new token and one more send.

use super::ErpError;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

/// A vendor's answer other than 2xx.
pub struct Refused {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

/// Why a request got no answer: no access token, or the network.
pub enum Sent {
    Token(ErpError),
    Network(reqwest::Error),
}

/// Where a connection's access tokens come from.
pub(super) trait AccessTokens {
    /// A valid access token: the cached one, or a new one.
    async fn access_token(&self) -> Result<SecretString, ErpError>;
    /// The vendor refused `used` as expired: forget it (unless a newer one replaced it
    /// meanwhile), so the next [`AccessTokens::access_token`] gets a new one.
    async fn expired(&self, used: &SecretString);
}

/// Sends the request `build` makes with a valid access token; when the vendor says (as
/// `expired` reads its answer) that the token expired, gets a new one once and sends once
/// more. Answers other than 2xx come back as [`Refused`] for the vendor's classifier.
pub(super) async fn send(
    tokens: &impl AccessTokens,
    build: impl Fn(&str) -> reqwest::RequestBuilder,
    expired: impl Fn(&reqwest::header::HeaderMap, &str) -> bool,
) -> Result<Result<reqwest::Response, Refused>, Sent> {
    let mut renewed = false;
    loop {
        let token = tokens.access_token().await.map_err(Sent::Token)?;
        let resp = build(token.expose_secret()).send().await.map_err(Sent::Network)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(Ok(resp));
        }
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        if status == StatusCode::UNAUTHORIZED && !renewed && expired(&headers, &body) {
            tokens.expired(&token).await;
            renewed = true;
            continue;
        }
        return Ok(Err(Refused { status, headers, body }));
    }
}
