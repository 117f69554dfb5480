//! Idempotent job submission: `POST /v1/jobs` with an `Idempotency-Key` header. The same
//! key and the same body (byte for byte) are answered as the first request was, plus
//! `Idempotent-Replayed: true`; the same key with another body is a 422. Keys are the
//! tenant's and kept `store::idempotency::KEPT`.
//!
//! Only an accepted job is remembered: a refused request records nothing, so once fixed
//! it may be sent again under the same key. A key whose request is still being submitted
//! answers 409 to a concurrent repeat; if the daemon died between recording the job and
//! recording its answer, the key answers 409 until it expires.

use super::api::{Submitted, answer};
use super::auth::Principal;
use super::{AppState, error, internal};
use crate::store::idempotency::{self, MAX_KEY_LEN, Reservation};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::fmt::Write;

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";

/// The request's key, if it sent one; a malformed one is a 400 naming the header.
pub fn key(headers: &HeaderMap) -> Result<Option<&str>, Box<Response>> {
    let Some(value) = headers.get(HEADER) else { return Ok(None) };
    match value.to_str() {
        Ok(k) if idempotency::valid_key(k) => Ok(Some(k)),
        _ => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "bad_idempotency_key",
            format!("the Idempotency-Key header must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
        ))),
    }
}

fn sha256_hex(body: &[u8]) -> String {
    let mut hex = String::with_capacity(64);
    for b in Sha256::digest(body).iter() {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// Runs `submit` at most once per (tenant, key, body), answering repeats as the first.
pub async fn submit_once(
    s: &AppState,
    p: &Principal,
    key: &str,
    body: &[u8],
    submit: impl Future<Output = Submitted>,
) -> Response {
    let db = &s.ctx.db;
    match idempotency::reserve(db, &p.tenant, key, &sha256_hex(body)).await {
        Err(e) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "store", format!("cannot check the Idempotency-Key: {e}"));
        }
        Ok(Reservation::Reserved) => {}
        Ok(Reservation::Replay { status, response }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED);
            let mut r = (status, [(axum::http::header::CONTENT_TYPE, "application/json")], response).into_response();
            r.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
            return r;
        }
        Ok(Reservation::InProgress) => {
            return error(
                StatusCode::CONFLICT,
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is still being processed; retry shortly",
            );
        }
        Ok(Reservation::Mismatch) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "the Idempotency-Key header was used before with a different request body",
            );
        }
    }
    match submit.await {
        Ok((status, value)) => {
            let text = value.to_string();
            if let Err(e) = idempotency::complete(db, &p.tenant, key, status.as_u16(), &text).await {
                // The job is recorded: answer it; a repeat then finds the key in use.
                tracing::warn!(error = %e, "could not record the answer of an idempotent job submission");
            }
            answer(Ok((status, value)))
        }
        Err(r) => {
            if let Err(e) = idempotency::release(db, &p.tenant, key).await {
                return internal(e);
            }
            r
        }
    }
}
