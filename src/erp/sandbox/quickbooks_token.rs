//! Intuit's OAuth 2.0 token endpoint as the QuickBooks dialect serves it: `POST
//! /oauth2/v1/tokens/bearer` with `grant_type=refresh_token` and HTTP Basic client auth,
//! rotating refresh tokens, access-token expiry, and the test hooks that revoke a client's
//! connection or expire its access tokens.
//!
//! Every refresh answers a new refresh token. Intuit says to always use the latest one and
//! does not document how long the previous one keeps working, so by default the previous
//! one is refused at once (`invalid_grant`), the strictest reading: a client must store the
//! new token before it uses it. With `--qbo-refresh-grace-secs`, the previous token answers
//! for that long, re-issuing the *same* successor (with a new access token) while that
//! successor is unused, so a client that lost an answer recovers.

use super::quickbooks_options::{QuickbooksClient, QuickbooksOptions};
use super::quickbooks_wire::{basic_auth, oauth_error};
use super::xero_wire::form;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// What Intuit answers as the refresh token's remaining life (100 days), in seconds.
const REFRESH_TOKEN_SECS: u64 = 8_726_400;

struct Refresh {
    client_id: String,
    revoked: bool,
    /// The token this one was exchanged for, and when.
    successor: Option<(String, Instant)>,
}

struct Access {
    client_id: String,
    expires: Instant,
}

/// Why a bearer token was refused: its words go into the 401's `detail`.
pub(super) enum Refused {
    Unknown,
    Expired,
}

/// Clients, refresh tokens and access tokens.
pub(super) struct Tokens {
    secrets: HashMap<String, String>,
    refresh: HashMap<String, Refresh>,
    access: HashMap<String, Access>,
}

impl Tokens {
    pub(super) fn new(clients: &[QuickbooksClient]) -> Tokens {
        let secrets = clients.iter().map(|c| (c.client_id.clone(), c.client_secret.clone())).collect();
        let refresh = clients
            .iter()
            .map(|c| {
                (c.refresh_token.clone(), Refresh { client_id: c.client_id.clone(), revoked: false, successor: None })
            })
            .collect();
        Tokens { secrets, refresh, access: HashMap::new() }
    }

    /// Checks a bearer token: unknown (or revoked), or known and expired.
    pub(super) fn check_access(&self, bearer: &str) -> Result<(), Refused> {
        match self.access.get(bearer) {
            None => Err(Refused::Unknown),
            Some(a) if Instant::now() >= a.expires => Err(Refused::Expired),
            Some(_) => Ok(()),
        }
    }

    fn issue_access(&mut self, client_id: &str, lifetime: Duration) -> String {
        let token = format!("qbo-at-{}", uuid::Uuid::new_v4().simple());
        self.access
            .insert(token.clone(), Access { client_id: client_id.to_owned(), expires: Instant::now() + lifetime });
        token
    }

    /// Exchanges a refresh token: (new access token, refresh token to use next).
    fn exchange(
        &mut self,
        client_id: &str,
        token: &str,
        grace: Duration,
        lifetime: Duration,
    ) -> Option<(String, String)> {
        let r = self.refresh.get(token)?;
        if r.revoked || r.client_id != client_id {
            return None;
        }
        let next = match &r.successor {
            None => {
                let next = format!("qbo-rt-{}", uuid::Uuid::new_v4().simple());
                self.refresh
                    .insert(next.clone(), Refresh { client_id: client_id.to_owned(), revoked: false, successor: None });
                self.refresh.get_mut(token).expect("checked above").successor = Some((next.clone(), Instant::now()));
                next
            }
            Some((next, at)) => {
                let successor_unused = self.refresh.get(next).is_some_and(|n| n.successor.is_none() && !n.revoked);
                if at.elapsed() >= grace || !successor_unused {
                    return None;
                }
                next.clone()
            }
        };
        Some((self.issue_access(client_id, lifetime), next))
    }

    /// Answers `POST /oauth2/v1/tokens/bearer` (form-encoded, the client in HTTP Basic auth
    /// as Intuit requires), and whether it refreshed.
    pub(super) fn grant(&mut self, headers: &HeaderMap, body: &[u8], o: &QuickbooksOptions) -> (Response, bool) {
        let f = form(body);
        let Some((client_id, _)) = basic_auth(headers).filter(|(id, s)| self.secrets.get(id) == Some(s)) else {
            return (oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed"), false);
        };
        if f.get("grant_type").map(String::as_str) != Some("refresh_token") {
            return (oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Unsupported grant type"), false);
        }
        let Some(refresh) = f.get("refresh_token").filter(|t| !t.is_empty()) else {
            return (oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "refresh_token is required"), false);
        };
        let grace = Duration::from_secs(o.refresh_grace_secs);
        let lifetime = Duration::from_secs(o.access_token_secs);
        match self.exchange(&client_id, refresh, grace, lifetime) {
            Some((access, next)) => {
                let body = json!({
                    "token_type": "bearer",
                    "access_token": access,
                    "expires_in": o.access_token_secs,
                    "refresh_token": next,
                    "x_refresh_token_expires_in": REFRESH_TOKEN_SECS,
                });
                let mut r = axum::Json(body).into_response();
                r.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache, no-store"));
                (r, true)
            }
            None => {
                (oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Incorrect or invalid refresh token"), false)
            }
        }
    }

    /// Revokes every token of a client (the user disconnected the app) or one refresh
    /// token; returns how many refresh tokens died.
    pub(super) fn revoke(&mut self, r: &Revoke) -> usize {
        let mut revoked = 0;
        for (t, rt) in self.refresh.iter_mut() {
            if r.client_id.as_deref() == Some(rt.client_id.as_str()) || r.refresh_token.as_deref() == Some(t.as_str()) {
                rt.revoked = true;
                revoked += 1;
            }
        }
        if let Some(client) = &r.client_id {
            self.access.retain(|_, a| &a.client_id != client);
        }
        revoked
    }

    /// Expires every access token issued so far; returns how many.
    pub(super) fn expire_access(&mut self) -> usize {
        let now = Instant::now();
        for a in self.access.values_mut() {
            a.expires = now;
        }
        self.access.len()
    }
}

/// What `POST /__sandbox/quickbooks/revoke` names: a client or one refresh token.
#[derive(Deserialize)]
pub(super) struct Revoke {
    client_id: Option<String>,
    refresh_token: Option<String>,
}
