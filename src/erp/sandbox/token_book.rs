//! The OAuth 2.0 book every simulated vendor keeps (QuickBooks and Xero issue tokens the
//! same way): its clients, the refresh tokens it rotates, the access tokens it issued, and
//! the HTTP Basic client authentication of its token endpoint. What a dialect answers on
//! the wire (bodies, headers, error codes) is its own, in its `*_token.rs`.
//!
//! Every exchange issues a new refresh token and spends the old one. For a grace period
//! (a dialect's option) the old token may be used again in case the answer was lost: the
//! grace answer re-issues the *same* successor (with a new access token), and only while
//! that successor has not been used itself, so a client that lost an answer recovers and
//! two refreshers racing on one token end up holding the same newest one.

use axum::http::HeaderMap;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// An OAuth client a simulated vendor knows, with the refresh token it starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
}

impl std::str::FromStr for OAuthClient {
    type Err = String;

    /// `CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(secret), Some(refresh)) if !id.is_empty() && !secret.is_empty() && !refresh.is_empty() => {
                Ok(OAuthClient { client_id: id.into(), client_secret: secret.into(), refresh_token: refresh.into() })
            }
            _ => Err("expected CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN".into()),
        }
    }
}

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
    /// Never issued, or revoked.
    Unknown,
    /// Issued, and expired at this time.
    Expired(chrono::DateTime<chrono::Utc>),
}

/// What a `/__sandbox/<dialect>/revoke` hook names: a client (every token of it dies, as
/// when the user disconnects the app) or one refresh token.
#[derive(Deserialize)]
pub(super) struct Reconnect {
    pub(super) client_id: String,
}

#[derive(Deserialize)]
pub(super) struct Revoke {
    client_id: Option<String>,
    refresh_token: Option<String>,
}

pub(super) struct TokenBook {
    /// Prefixes the tokens it issues (`xero`, `qbo`), so a test can tell whose they are.
    prefix: &'static str,
    secrets: HashMap<String, String>,
    refresh: HashMap<String, Refresh>,
    access: HashMap<String, Access>,
}

impl TokenBook {
    pub(super) fn new(prefix: &'static str, clients: &[OAuthClient]) -> TokenBook {
        let secrets = clients.iter().map(|c| (c.client_id.clone(), c.client_secret.clone())).collect();
        let refresh = clients
            .iter()
            .map(|c| {
                (c.refresh_token.clone(), Refresh { client_id: c.client_id.clone(), revoked: false, successor: None })
            })
            .collect();
        TokenBook { prefix, secrets, refresh, access: HashMap::new() }
    }

    /// Whether `secret` is `client_id`'s.
    pub(super) fn authenticates(&self, client_id: &str, secret: &str) -> bool {
        self.secrets.get(client_id).is_some_and(|s| s == secret)
    }

    /// Checks a bearer token: unknown (or revoked), or known and expired.
    pub(super) fn check_access(&self, bearer: &str) -> Result<(), Refused> {
        match self.access.get(bearer) {
            None => Err(Refused::Unknown),
            Some(a) if Instant::now() >= a.expires => Err(Refused::Expired(a.expires_utc)),
            Some(_) => Ok(()),
        }
    }

    fn issue_access(&mut self, client_id: &str, lifetime: Duration) -> String {
        let token = format!("{}-at-{}", self.prefix, uuid::Uuid::new_v4().simple());
        let expires_utc = chrono::Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or_default();
        self.access.insert(
            token.clone(),
            Access { client_id: client_id.to_owned(), expires: Instant::now() + lifetime, expires_utc },
        );
        token
    }

    /// Exchanges `client_id`'s refresh token: (new access token, refresh token to use
    /// next), or None for `invalid_grant` (unknown, revoked, another client's, or spent
    /// beyond its grace).
    pub(super) fn exchange(
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
                let next = format!("{}-rt-{}", self.prefix, uuid::Uuid::new_v4().simple());
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

    /// Revokes what `r` names; returns how many refresh tokens died.
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

    /// A new refresh token for `client_id`, as the authorization-code flow issues one when
    /// the user connects the app again; None for an unknown client.
    pub(super) fn reconnect(&mut self, client_id: &str) -> Option<String> {
        if !self.secrets.contains_key(client_id) {
            return None;
        }
        let token = format!("{}-rt-{}", self.prefix, uuid::Uuid::new_v4().simple());
        self.refresh
            .insert(token.clone(), Refresh { client_id: client_id.to_owned(), revoked: false, successor: None });
        Some(token)
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

/// `client_id:client_secret` from HTTP Basic auth.
pub(super) fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get("authorization")?.to_str().ok()?.strip_prefix("Basic ")?;
    let raw = base64_decode(v.trim())?;
    let (id, secret) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_decodes_client_credentials() {
        let mut h = HeaderMap::new();
        // "qbo-client:qbo-secret"
        h.insert("authorization", "Basic cWJvLWNsaWVudDpxYm8tc2VjcmV0".parse().unwrap());
        assert_eq!(basic_auth(&h), Some(("qbo-client".into(), "qbo-secret".into())));
        h.insert("authorization", "Basic !!!".parse().unwrap());
        assert_eq!(basic_auth(&h), None);
    }
}
