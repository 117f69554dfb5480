//! Xero's identity server as the dialect serves it: `POST /connect/token` with the
//! refresh-token grant, rotating refresh tokens, access-token expiry, and the test
//! endpoints that revoke a client's connection or expire its access tokens.
//!
//! Rotation follows Xero's documented rule: every refresh answers a new refresh token and
//! the old one stops working, except that for a grace period (30 minutes) the old token
//! may be used again in case the answer was lost. The grace answer re-issues the *same*
//! successor refresh token (with a new access token), and only while that successor has
//! not been used itself: a client that lost an answer recovers, and two refreshers racing
//! on one token end up holding the same newest token instead of invalidating each other.

use super::options::XeroClient;
use super::options::XeroOptions;
use super::xero_wire::{form, problem};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// The scopes every token is granted.
const SCOPE: &str =
    "openid profile email accounting.transactions accounting.attachments accounting.contacts offline_access";

struct Refresh {
    client_id: String,
    revoked: bool,
    /// The token this one was exchanged for, and when.
    successor: Option<(String, Instant)>,
}

struct Access {
    client_id: String,
    expires: Instant,
    expires_utc: chrono::DateTime<chrono::Utc>,
}

/// Why a bearer token was refused.
pub(super) enum Refused {
    Unknown,
    Expired(chrono::DateTime<chrono::Utc>),
}

impl IntoResponse for Refused {
    /// 401 AuthenticationUnsuccessful for an unknown token; 401 TokenExpired, with
    /// `WWW-Authenticate` saying so, for an expired one.
    fn into_response(self) -> Response {
        match self {
            Refused::Unknown => {
                let mut r = problem(StatusCode::UNAUTHORIZED, "Unauthorized", "AuthenticationUnsuccessful");
                r.headers_mut().insert("www-authenticate", HeaderValue::from_static("Bearer error=\"invalid_token\""));
                r
            }
            Refused::Expired(at) => {
                let at = at.format("%m/%d/%Y %H:%M:%S");
                let detail = format!("TokenExpired: token expired at {at}");
                let mut r = problem(StatusCode::UNAUTHORIZED, "Unauthorized", &detail);
                let header =
                    format!("Bearer error=\"invalid_token\", error_description=\"The token expired at '{at}'\"");
                r.headers_mut().insert("www-authenticate", HeaderValue::from_str(&header).expect("ascii header"));
                r
            }
        }
    }
}

/// Clients, refresh tokens and access tokens.
pub(super) struct Tokens {
    secrets: HashMap<String, String>,
    refresh: HashMap<String, Refresh>,
    access: HashMap<String, Access>,
}

impl Tokens {
    pub(super) fn new(clients: &[XeroClient]) -> Tokens {
        let secrets = clients.iter().map(|c| (c.client_id.clone(), c.client_secret.clone())).collect();
        let refresh = clients
            .iter()
            .map(|c| {
                (c.refresh_token.clone(), Refresh { client_id: c.client_id.clone(), revoked: false, successor: None })
            })
            .collect();
        Tokens { secrets, refresh, access: HashMap::new() }
    }

    /// Checks a bearer token: unknown, or known and expired.
    pub(super) fn check_access(&self, bearer: &str) -> Result<(), Refused> {
        match self.access.get(bearer) {
            None => Err(Refused::Unknown),
            Some(a) if Instant::now() >= a.expires => Err(Refused::Expired(a.expires_utc)),
            Some(_) => Ok(()),
        }
    }

    fn issue_access(&mut self, client_id: &str, lifetime: Duration) -> String {
        let token = format!("xero-at-{}", uuid::Uuid::new_v4().simple());
        let expires_utc = chrono::Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or_default();
        self.access.insert(
            token.clone(),
            Access { client_id: client_id.to_owned(), expires: Instant::now() + lifetime, expires_utc },
        );
        token
    }

    /// Exchanges a refresh token: (new access token, refresh token to use next), or the
    /// OAuth error code.
    fn exchange(
        &mut self,
        client_id: &str,
        token: &str,
        grace: Duration,
        lifetime: Duration,
    ) -> Result<(String, String), &'static str> {
        let Some(r) = self.refresh.get(token) else { return Err("invalid_grant") };
        if r.revoked || r.client_id != client_id {
            return Err("invalid_grant");
        }
        let next = match &r.successor {
            None => {
                let next = format!("xero-rt-{}", uuid::Uuid::new_v4().simple());
                self.refresh
                    .insert(next.clone(), Refresh { client_id: client_id.to_owned(), revoked: false, successor: None });
                self.refresh.get_mut(token).expect("checked above").successor = Some((next.clone(), Instant::now()));
                next
            }
            Some((next, at)) => {
                let successor_unused = self.refresh.get(next).is_some_and(|n| n.successor.is_none() && !n.revoked);
                if at.elapsed() >= grace || !successor_unused {
                    return Err("invalid_grant");
                }
                next.clone()
            }
        };
        Ok((self.issue_access(client_id, lifetime), next))
    }
}

/// Standard base64, as HTTP Basic auth carries `client_id:client_secret`.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn oauth_error(status: StatusCode, code: &str) -> Response {
    (status, axum::Json(json!({"error": code}))).into_response()
}

/// `client_id:client_secret` from HTTP Basic auth.
fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get("authorization")?.to_str().ok()?.strip_prefix("Basic ")?;
    let raw = base64_decode(v.trim())?;
    let (id, secret) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

impl Tokens {
    /// Answers `POST /connect/token` (form-encoded, the client authenticated by HTTP Basic
    /// or, as OAuth allows, `client_id`/`client_secret` in the form), and whether it
    /// refreshed.
    pub(super) fn grant(&mut self, headers: &HeaderMap, body: &[u8], o: &XeroOptions) -> (Response, bool) {
        let mut f = form(body);
        let creds = basic_auth(headers).or_else(|| Some((f.remove("client_id")?, f.remove("client_secret")?)));
        let Some((client_id, _)) = creds.filter(|(id, s)| self.secrets.get(id) == Some(s)) else {
            return (oauth_error(StatusCode::BAD_REQUEST, "invalid_client"), false);
        };
        if f.get("grant_type").map(String::as_str) != Some("refresh_token") {
            return (oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"), false);
        }
        let Some(refresh) = f.remove("refresh_token").filter(|t| !t.is_empty()) else {
            return (oauth_error(StatusCode::BAD_REQUEST, "invalid_request"), false);
        };
        let grace = Duration::from_secs(o.refresh_grace_secs);
        let lifetime = Duration::from_secs(o.access_token_secs);
        match self.exchange(&client_id, &refresh, grace, lifetime) {
            Ok((access, next)) => {
                let body = json!({
                    "access_token": access,
                    "expires_in": o.access_token_secs,
                    "token_type": "Bearer",
                    "refresh_token": next,
                    "scope": SCOPE,
                });
                let mut r = axum::Json(body).into_response();
                r.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
                (r, true)
            }
            Err(code) => (oauth_error(StatusCode::BAD_REQUEST, code), false),
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
        let (now, utc) = (Instant::now(), chrono::Utc::now());
        for a in self.access.values_mut() {
            a.expires = now;
            a.expires_utc = utc;
        }
        self.access.len()
    }
}

/// What `POST /__sandbox/xero/revoke` names: a client or one refresh token.
#[derive(Deserialize)]
pub(super) struct Revoke {
    client_id: Option<String>,
    refresh_token: Option<String>,
}
