//! Who is calling `/v1`: the bearer token is looked up by its hash, checked for
//! revocation and scope, and held to its rate limit; the handlers get the caller as a
//! [`Principal`] and answer only with its tenant's data.
//!
//! Lookups are cached for [`CACHE_TTL`], so a busy client costs no database read per
//! request; a revoked token therefore keeps working for at most that long on a daemon
//! that saw it just before. Unknown tokens are not cached, so a token created a moment
//! ago works at once.

use super::{AppState, error};
use crate::limits::rate::RateLimiter;
use crate::store::tokens::{self, Scope, TokenRecord};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a looked-up token is trusted without asking the database again: the longest
/// a revoked token keeps working.
pub const CACHE_TTL: Duration = Duration::from_secs(5);

/// Cached tokens beyond which expired entries are swept out.
const CACHE_SWEEP_AT: usize = 10_000;

/// The caller of a `/v1` request, as the handlers see it.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: String,
    pub tenant: String,
    pub scope: Scope,
}

/// The token cache and each token's rate limiter.
pub struct Auth {
    per_min: u32,
    cache: Mutex<HashMap<String, (TokenRecord, Instant)>>,
    limiters: Mutex<HashMap<String, Arc<RateLimiter>>>,
}

impl Auth {
    pub fn new(requests_per_min: u32) -> Auth {
        Auth { per_min: requests_per_min, cache: Default::default(), limiters: Default::default() }
    }

    async fn lookup(&self, db: &sea_orm::DatabaseConnection, token: &str) -> Result<Option<TokenRecord>, String> {
        let hash = tokens::hash(token);
        if let Some((record, at)) = self.cache.lock().unwrap().get(&hash)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(Some(record.clone()));
        }
        let found = tokens::by_hash(db, &hash).await.map_err(|e| e.to_string())?;
        if let Some(record) = &found {
            let mut cache = self.cache.lock().unwrap();
            if cache.len() >= CACHE_SWEEP_AT {
                cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            }
            cache.insert(hash, (record.clone(), Instant::now()));
        }
        Ok(found)
    }

    fn limiter(&self, token_id: &str) -> Arc<RateLimiter> {
        let mut limiters = self.limiters.lock().unwrap();
        limiters.entry(token_id.to_owned()).or_insert_with(|| Arc::new(RateLimiter::per_minute(self.per_min))).clone()
    }
}

/// The scope a request needs: reading for `GET`, writing for anything else.
fn needed_scope(method: &Method) -> Scope {
    if method == Method::GET || method == Method::HEAD { Scope::Read } else { Scope::Write }
}

fn unauthorized(code: &str, message: &str) -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, code, message);
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"erpsync\""));
    r
}

/// The token of an `Authorization: Bearer …` header, or the code and message of the 401
/// to answer.
fn bearer(req: &Request) -> Result<&str, (&'static str, &'static str)> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(("missing_token", "send an API token as `Authorization: Bearer erps_…`"));
    };
    let malformed = ("malformed_token", "the Authorization header is not `Bearer erps_` and 64 hex digits");
    let value = value.to_str().map_err(|_| malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || !tokens::well_formed(token) {
        return Err(malformed);
    }
    Ok(token)
}

/// The `/v1` middleware: authenticates, limits the rate, checks the scope, and hands the
/// request on with its [`Principal`].
pub async fn authenticate(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let token = match bearer(&req) {
        Ok(t) => t,
        Err((code, message)) => return unauthorized(code, message),
    };
    let record = match s.auth.lookup(&s.ctx.db, token).await {
        Ok(Some(r)) => r,
        Ok(None) => return unauthorized("unknown_token", "the API token is not known"),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, "store", format!("cannot check the token: {e}")),
    };
    if record.revoked_at_ms.is_some() {
        return unauthorized("revoked_token", "the API token was revoked");
    }
    if let Err(wait) = s.auth.limiter(&record.id).try_acquire().await {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("more than {} requests a minute with this token; retry in {secs} s", s.auth.per_min),
        );
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    let needed = needed_scope(req.method());
    if !record.scope.allows(needed) {
        return error(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("this needs a token of scope {} (this one is {})", needed.as_str(), record.scope.as_str()),
        );
    }
    req.extensions_mut().insert(Principal { token_id: record.id, tenant: record.tenant, scope: record.scope });
    next.run(req).await
}
