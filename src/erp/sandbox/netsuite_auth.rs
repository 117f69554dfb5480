//! The NetSuite dialect's state and its admission of every REST call: the token-based
//! authentication signature, recomputed with the secrets the simulator knows (401
//! `INVALID_LOGIN` for a bad one, an unknown or revoked token, another realm, a stale
//! timestamp or a replayed nonce), the account's concurrency limit (429), then latency and
//! injected faults (503).

use super::admission::{InFlight, arrive, settle};
use super::netsuite_wire::{concurrency_exceeded, invalid_login, unavailable};
use super::sim::Sim;
use crate::erp::oauth1;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use reqwest::Url;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

pub(super) struct Netsuite {
    pub(super) sim: Arc<Sim>,
    /// The token was revoked (`/__sandbox/netsuite/revoke`): every call is refused.
    pub(super) revoked: AtomicBool,
    /// Nonces seen: OAuth 1.0a refuses a nonce used twice (RFC 5849 §3.3).
    nonces: std::sync::Mutex<Nonces>,
}

/// The nonces of the last two skew windows, in the order they arrived, so forgetting the
/// old ones costs only what is forgotten.
#[derive(Default)]
struct Nonces {
    seen: HashSet<String>,
    order: VecDeque<(u64, String)>,
}

impl Nonces {
    /// Records `nonce` seen at `now`; false if it was seen before.
    fn spend(&mut self, nonce: &str, now: u64, keep_secs: u64) -> bool {
        while self.order.front().is_some_and(|(at, _)| now.saturating_sub(*at) > keep_secs) {
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if !self.seen.insert(nonce.to_owned()) {
            return false;
        }
        self.order.push_back((now, nonce.to_owned()));
        true
    }
}

/// Why a signature was refused (NetSuite tells the client only `INVALID_LOGIN`; tests and
/// logs of the simulator may want more).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    NoOAuthHeader,
    WrongRealm,
    UnknownToken,
    Revoked,
    WrongMethod,
    StaleTimestamp,
    ReplayedNonce,
    BadSignature,
}

impl Netsuite {
    pub(super) fn new(sim: Arc<Sim>) -> Netsuite {
        Netsuite { sim, revoked: AtomicBool::new(false), nonces: Default::default() }
    }

    /// Admits a REST call, or answers it as NetSuite refuses it. The guard keeps the call
    /// counted against the account's limit until it is answered.
    pub(super) async fn admit<'a>(
        &'a self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<InFlight<'a>, Response> {
        let (guard, arrived, now) = arrive(&self.sim);
        if let Err(why) = self.verify(method, uri, headers) {
            tracing::debug!(?why, "netsuite sandbox refused a signature");
            return Err(invalid_login());
        }
        let limit = self.sim.opts.netsuite.concurrency_limit;
        if now > limit {
            self.sim.counters.throttled_as("concurrency");
            return Err(concurrency_exceeded(limit));
        }
        if settle(&self.sim, arrived).await.is_err() {
            return Err(unavailable());
        }
        Ok(guard)
    }

    /// Checks the `Authorization: OAuth …` header of a request as NetSuite would.
    pub(super) fn verify(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let o = &self.sim.opts.netsuite;
        let header = headers.get("authorization").and_then(|v| v.to_str().ok()).ok_or(Refusal::NoOAuthHeader)?;
        let params = oauth1::parse_authorization(header).ok_or(Refusal::NoOAuthHeader)?;
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or("");
        if !get("realm").eq_ignore_ascii_case(&crate::erp::netsuite::realm(&o.account)) {
            return Err(Refusal::WrongRealm);
        }
        if get("oauth_consumer_key") != o.consumer_key || get("oauth_token") != o.token_id {
            return Err(Refusal::UnknownToken);
        }
        if self.revoked.load(SeqCst) {
            return Err(Refusal::Revoked);
        }
        if get("oauth_signature_method") != oauth1::SIGNATURE_METHOD || !matches!(get("oauth_version"), "" | "1.0") {
            return Err(Refusal::WrongMethod);
        }
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let ts: u64 = get("oauth_timestamp").parse().map_err(|_| Refusal::StaleTimestamp)?;
        if ts.abs_diff(now) > o.timestamp_skew_secs {
            return Err(Refusal::StaleTimestamp);
        }
        let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("localhost");
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let url = Url::parse(&format!("http://{host}{path}")).map_err(|_| Refusal::BadSignature)?;
        let protocol: Vec<(String, String)> =
            params.iter().filter(|(k, _)| k.starts_with("oauth_") && k != "oauth_signature").cloned().collect();
        let base = oauth1::base_string(method.as_str(), &url, &protocol, &[]);
        if oauth1::sign(&base, &o.consumer_secret, &o.token_secret) != get("oauth_signature") {
            return Err(Refusal::BadSignature);
        }
        // Only a request that is otherwise genuine spends its nonce.
        let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        if !nonces.spend(get("oauth_nonce"), now, 2 * o.timestamp_skew_secs) {
            return Err(Refusal::ReplayedNonce);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erp::oauth1::TokenCredentials;
    use crate::erp::sandbox::SandboxOptions;

    fn netsuite() -> Netsuite {
        let sim = Sim {
            opts: SandboxOptions::default(),
            timer_lead_us: Default::default(),
            counters: Default::default(),
            books: Default::default(),
        };
        Netsuite::new(Arc::new(sim))
    }

    fn signed(ns: &Netsuite, method: &str, url: &str, nonce: &str, secret: &str) -> HeaderMap {
        let o = &ns.sim.opts.netsuite;
        let creds = TokenCredentials {
            realm: crate::erp::netsuite::realm(&o.account),
            consumer_key: o.consumer_key.clone(),
            consumer_secret: o.consumer_secret.clone().into(),
            token_id: o.token_id.clone(),
            token_secret: secret.to_owned().into(),
        };
        let now = chrono::Utc::now().timestamp() as u64;
        let auth = oauth1::authorization(&creds, method, &Url::parse(url).unwrap(), nonce, now);
        let mut h = HeaderMap::new();
        h.insert("authorization", auth.parse().unwrap());
        h.insert("host", Url::parse(url).unwrap().authority().parse().unwrap());
        h
    }

    #[test]
    fn the_simulator_recomputes_the_signature_and_spends_each_nonce_once() {
        let ns = netsuite();
        let url = "http://127.0.0.1:9/services/rest/record/v1/vendorBill/eid:a-1?replace=expense,item";
        let uri: Uri = "/services/rest/record/v1/vendorBill/eid:a-1?replace=expense,item".parse().unwrap();
        let good = signed(&ns, "PUT", url, "n1", "ns-token-secret");
        assert_eq!(ns.verify(&Method::PUT, &uri, &good), Ok(()));
        assert_eq!(ns.verify(&Method::PUT, &uri, &good), Err(Refusal::ReplayedNonce));
        let other_method = signed(&ns, "POST", url, "n2", "ns-token-secret");
        assert_eq!(ns.verify(&Method::PUT, &uri, &other_method), Err(Refusal::BadSignature));
        let wrong_secret = signed(&ns, "PUT", url, "n3", "not-the-secret");
        assert_eq!(ns.verify(&Method::PUT, &uri, &wrong_secret), Err(Refusal::BadSignature));
        let other_query: Uri = "/services/rest/record/v1/vendorBill/eid:a-1?replace=expense".parse().unwrap();
        let fresh = signed(&ns, "PUT", url, "n4", "ns-token-secret");
        assert_eq!(ns.verify(&Method::PUT, &other_query, &fresh), Err(Refusal::BadSignature));
        ns.revoked.store(true, SeqCst);
        let after = signed(&ns, "PUT", url, "n5", "ns-token-secret");
        assert_eq!(ns.verify(&Method::PUT, &uri, &after), Err(Refusal::Revoked));
        assert_eq!(ns.verify(&Method::PUT, &uri, &HeaderMap::new()), Err(Refusal::NoOAuthHeader));
    }
}
