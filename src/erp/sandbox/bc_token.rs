//! The Microsoft identity platform's token endpoint as the Business Central dialect serves
//! it: `POST /{tenant}/oauth2/v2.0/token` with the client credentials grant
//! (MicrosoftDocs/entra-docs `docs/identity-platform/v2-oauth2-client-creds-grant-flow.md`),
//! the access tokens it issued and their expiry, and the test hooks that expire every token
//! or revoke a client's secret.

use super::bc_options::BusinessCentralOptions;
use super::token_book::basic_auth;
use super::xero_wire::form;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// The only scope the dialect grants: every application permission on Business Central's APIs.
pub const BC_SCOPE: &str = "https://api.businesscentral.dynamics.com/.default";

struct Client {
    secret: String,
    /// The secret expired or was deleted: token requests fail with AADSTS7000222.
    revoked: bool,
}

/// Why a bearer token was refused.
pub(super) enum Refused {
    Unknown,
    Expired,
}

pub(super) struct TokenBook {
    tenant: String,
    clients: HashMap<String, Client>,
    /// Access token → (client id, expiry).
    access: HashMap<String, (String, Instant)>,
}

/// The identity platform's error body: `error`, `error_description` starting with the AADSTS
/// code, `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`.
fn sts_error(status: StatusCode, error: &str, code: u32, message: &str) -> Response {
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    let (trace, correlation) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {now}"),
        "error_codes": [code],
        "timestamp": now,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, axum::Json(body)).into_response()
}

impl TokenBook {
    pub(super) fn new(o: &BusinessCentralOptions) -> TokenBook {
        let clients = o
            .clients
            .iter()
            .map(|c| (c.client_id.clone(), Client { secret: c.client_secret.clone(), revoked: false }))
            .collect();
        TokenBook { tenant: o.tenant.clone(), clients, access: HashMap::new() }
    }

    /// The client a bearer token was issued to, or why it is refused.
    pub(super) fn check(&self, bearer: &str) -> Result<String, Refused> {
        match self.access.get(bearer) {
            None => Err(Refused::Unknown),
            Some((_, expires)) if Instant::now() >= *expires => Err(Refused::Expired),
            Some((client, _)) => Ok(client.clone()),
        }
    }

    /// Expires every access token issued so far; returns how many.
    pub(super) fn expire_all(&mut self) -> usize {
        let now = Instant::now();
        self.access.values_mut().for_each(|(_, e)| *e = now);
        self.access.len()
    }

    /// The client's secret stops working (as when it expires or is deleted in Entra);
    /// access tokens already issued live on until they expire, as the platform's do.
    pub(super) fn revoke_secret(&mut self, client_id: &str) -> bool {
        self.clients.get_mut(client_id).map(|c| c.revoked = true).is_some()
    }

    /// Answers a token request for `tenant`, and whether it issued a token.
    pub(super) fn grant(
        &mut self,
        tenant: &str,
        headers: &HeaderMap,
        body: &[u8],
        lifetime: Duration,
    ) -> (Response, bool) {
        let refuse = |r| (r, false);
        if !tenant.eq_ignore_ascii_case(&self.tenant) {
            let msg = format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            );
            return refuse(sts_error(StatusCode::BAD_REQUEST, "invalid_request", 90002, &msg));
        }
        let mut f = form(body);
        if f.get("grant_type").map(String::as_str) != Some("client_credentials") {
            let msg = "The app requested an unsupported grant type.";
            return refuse(sts_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", 70003, msg));
        }
        let creds = basic_auth(headers).or_else(|| Some((f.remove("client_id")?, f.remove("client_secret")?)));
        let Some((client_id, secret)) = creds else {
            let msg = "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.";
            return refuse(sts_error(StatusCode::UNAUTHORIZED, "invalid_client", 7000218, msg));
        };
        let Some(client) = self.clients.get(&client_id) else {
            let msg =
                format!("Application with identifier '{client_id}' was not found in the directory '{}'.", self.tenant);
            return refuse(sts_error(StatusCode::BAD_REQUEST, "unauthorized_client", 700016, &msg));
        };
        if client.revoked {
            let msg = format!(
                "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
            );
            return refuse(sts_error(StatusCode::UNAUTHORIZED, "invalid_client", 7000222, &msg));
        }
        if client.secret != secret {
            let msg = format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            );
            return refuse(sts_error(StatusCode::UNAUTHORIZED, "invalid_client", 7000215, &msg));
        }
        match f.get("scope").map(String::as_str) {
            Some(BC_SCOPE) => {}
            None => {
                let msg = "The request body must contain the following parameter: 'scope'.";
                return refuse(sts_error(StatusCode::BAD_REQUEST, "invalid_request", 900144, msg));
            }
            Some(other) => {
                let msg = format!(
                    "The provided value for the input parameter 'scope' is not valid. The scope {other} is not valid."
                );
                return refuse(sts_error(StatusCode::BAD_REQUEST, "invalid_scope", 70011, &msg));
            }
        }
        let token = format!("bc-at-{}", uuid::Uuid::new_v4().simple());
        self.access.insert(token.clone(), (client_id, Instant::now() + lifetime));
        let body = json!({"token_type": "Bearer", "expires_in": lifetime.as_secs(), "ext_expires_in": lifetime.as_secs(), "access_token": token});
        let mut r = axum::Json(body).into_response();
        r.headers_mut().insert("cache-control", HeaderValue::from_static("no-store, no-cache"));
        (r, true)
    }
}
