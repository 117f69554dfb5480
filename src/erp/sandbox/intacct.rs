//! The Sage Intacct dialect: the XML gateway (`POST /ia/xml/xmlgw.phtml`) answering as
//! Sage documents — the sender checked in the control block, a login or a session in the
//! authentication block, `getAPISession`, per-function results, `uniqueid` control ids,
//! the company's concurrency limit (429 `GW-0010`) — plus test hooks that expire every
//! session and disable the Web Services user. This file holds the routes and admission;
//! `intacct_books` the company and its functions; `intacct_wire` the XML. The wire
//! contract and its sources: `sage_intacct.md`.

use super::admission::{arrive, settle};
use super::intacct_books::{self as books, Company, DUPLICATE_CONTROL_ID};
use super::intacct_wire::{self as wire, Error, Req, ReqAuth, Signed};
use super::sim::{Dialect, Sim};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

pub use super::intacct_books::{INTACCT_INACTIVE_VENDOR, INTACCT_VENDORS};

/// Sage Intacct's XML gateway.
pub static SAGE_INTACCT: Dialect = Dialect { name: "sage_intacct", routes };

/// The gateway's path, as in Sage's endpoint `https://api.intacct.com/ia/xml/xmlgw.phtml`.
pub const GATEWAY_PATH: &str = "/ia/xml/xmlgw.phtml";

struct Session {
    expires: chrono::DateTime<chrono::Utc>,
    started: chrono::DateTime<chrono::Utc>,
    location: String,
}

#[derive(Default)]
struct Users {
    sessions: HashMap<String, Session>,
    disabled: bool,
}

struct Intacct {
    sim: Arc<Sim>,
    company: tokio::sync::Mutex<Company>,
    users: std::sync::Mutex<Users>,
    in_flight: AtomicU64,
}

fn routes(sim: Arc<Sim>) -> Router {
    let x = Arc::new(Intacct {
        sim,
        company: tokio::sync::Mutex::new(Company::seeded()),
        users: Default::default(),
        in_flight: AtomicU64::new(0),
    });
    Router::new()
        .route("/__sandbox/stats", get(|State(x): State<Arc<Intacct>>| async move { axum::Json(x.sim.stats()) }))
        .route("/__sandbox/intacct/expire-sessions", post(expire_sessions))
        .route("/__sandbox/intacct/disable-user", post(disable_user))
        .route(GATEWAY_PATH, post(gateway))
        .with_state(x)
}

/// `POST /__sandbox/intacct/expire-sessions`: every session issued so far times out now.
async fn expire_sessions(State(x): State<Arc<Intacct>>) -> Response {
    let mut u = x.users.lock().unwrap_or_else(|e| e.into_inner());
    let n = u.sessions.len();
    u.sessions.clear();
    axum::Json(json!({"expired": n})).into_response()
}

/// `POST /__sandbox/intacct/disable-user`: the Web Services user is set inactive, its
/// sessions end, and every sign-in is refused from then on.
async fn disable_user(State(x): State<Arc<Intacct>>) -> Response {
    let mut u = x.users.lock().unwrap_or_else(|e| e.into_inner());
    u.disabled = true;
    u.sessions.clear();
    axum::Json(json!({"disabled": true})).into_response()
}

fn xml(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert("content-type", HeaderValue::from_static("text/xml; encoding=\"UTF-8\""));
    r
}

struct Held<'a>(&'a AtomicU64);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

const SIGN_IN: &str = "XL03000006";

/// The gateway: the company's concurrency limit, the request's XML, the sender, latency
/// and faults, the authentication, then every function in order.
async fn gateway(State(x): State<Arc<Intacct>>, headers: HeaderMap, body: Bytes) -> Response {
    let (_guard, arrived, _) = arrive(&x.sim);
    let o = &x.sim.opts.intacct;
    let _held = Held(&x.in_flight);
    if x.in_flight.fetch_add(1, SeqCst) + 1 > o.concurrent_limit {
        x.sim.counters.throttled_as("concurrent");
        let why = "Rate limit exceeded: too many concurrent requests for this company".to_owned();
        return xml(StatusCode::TOO_MANY_REQUESTS, wire::control_failure(None, &[Error("GW-0010", "", why)]));
    }
    let req = match std::str::from_utf8(&body).map_err(|e| e.to_string()).and_then(wire::request) {
        Ok(r) => r,
        Err(e) => return xml(StatusCode::OK, wire::control_failure(None, &[Error("XL03000003", "", e)])),
    };
    if req.sender_id != o.sender_id || req.password != o.sender_password {
        let why = "Incorrect Intacct XML Partner ID or password.".to_owned();
        return xml(StatusCode::OK, wire::control_failure(Some(&req), &[Error(SIGN_IN, "", why)]));
    }
    if settle(&x.sim, arrived).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
    }
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_owned();
    let (signed, new_session) = match x.authenticate(&req) {
        Ok(s) => s,
        Err(refused) => return xml(StatusCode::OK, refused),
    };
    let (answer, wrote) = x.run(&req, &signed, new_session.as_deref(), &host).await;
    if wrote && o_timeout(&x.sim) {
        x.sim.counters.stalls.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_millis(x.sim.opts.stall_ms)).await;
    }
    xml(StatusCode::OK, answer)
}

/// Whether this answer is one lost after commit.
fn o_timeout(sim: &Sim) -> bool {
    sim.opts.timeout_rate > 0.0 && rand::random::<f64>() < sim.opts.timeout_rate
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

impl Intacct {
    /// The operation's authentication: who is signed in, and the session a login opens
    /// (a login opens one for `getAPISession` to hand out).
    /// `Err` is the authentication failure's answer.
    fn authenticate(&self, req: &Req) -> Result<(Signed, Option<String>), String> {
        let o = &self.sim.opts.intacct;
        let (user, company) = (o.user_id.clone(), o.company_id.clone());
        let refuse = |why: &str| {
            let e = [Error(SIGN_IN, "", why.to_owned())];
            Err(wire::auth_failure(req, &o.user_id, &o.company_id, &e))
        };
        let mut u = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let now = chrono::Utc::now();
        match &req.auth {
            ReqAuth::Login { user_id, company_id, password, location_id } => {
                if user_id != &o.user_id || company_id != &o.company_id || password != &o.user_password {
                    return refuse("Sign-in information is incorrect");
                }
                if u.disabled {
                    return refuse("The user is inactive. Contact your company administrator.");
                }
                let id = format!("{}..", uuid::Uuid::new_v4().simple());
                let expires = now + chrono::Duration::seconds(o.session_secs as i64);
                let location = location_id.clone().unwrap_or_default();
                let signed = Signed {
                    user,
                    company,
                    location: location.clone(),
                    timestamp: rfc3339(now),
                    timeout: rfc3339(expires),
                };
                u.sessions.insert(id.clone(), Session { expires, started: now, location });
                Ok((signed, Some(id)))
            }
            ReqAuth::Session(id) => match u.sessions.get(id) {
                Some(s) if s.expires > now && !u.disabled => Ok((
                    Signed {
                        user,
                        company,
                        location: s.location.clone(),
                        timestamp: rfc3339(s.started),
                        timeout: rfc3339(s.expires),
                    },
                    None,
                )),
                _ => refuse("Invalid session"),
            },
            ReqAuth::Missing => refuse("Authentication is missing"),
        }
    }

    /// Runs the functions; the answer, and whether any write succeeded.
    async fn run(&self, req: &Req, signed: &Signed, session: Option<&str>, host: &str) -> (String, bool) {
        let c = &self.sim.counters;
        let mut co = self.company.lock().await;
        let mut out = Vec::new();
        let mut wrote = false;
        for f in &req.functions {
            let fid = f.attr("controlid").unwrap_or("").to_owned();
            let Some(op) = f.children.first() else {
                let e = [Error("XL03000003", "XML Parse schema error", "function holds no operation".into())];
                out.push(wire::result_failed("failure", "", &fid, &e));
                continue;
            };
            let key = (req.control_id.clone(), fid.clone());
            if op.name == "getAPISession" {
                out.push(self.api_session(req, signed, session, host, &fid));
                continue;
            }
            if req.unique && co.executed.contains(&key) {
                let why = format!(
                    "A request with control ID {} was already executed and completed for function {fid}.",
                    req.control_id
                );
                out.push(wire::result_failed("failure", &op.name, &fid, &[Error(DUPLICATE_CONTROL_ID, "", why)]));
                c.replays.fetch_add(1, SeqCst);
                continue;
            }
            match books::run(&mut co, op, c) {
                Ok(data) => {
                    if op.name != "readByQuery" {
                        wrote = true;
                        if req.unique {
                            co.executed.insert(key);
                        }
                    }
                    out.push(wire::result_ok(&op.name, &fid, &data));
                }
                Err(errs) => out.push(wire::result_failed("failure", &op.name, &fid, &errs)),
            }
        }
        (wire::results(req, signed, &out), wrote)
    }

    /// `getAPISession`: the session a login opened (counted as one opened), or the one the
    /// request came with, and the endpoint to send later requests to.
    fn api_session(&self, req: &Req, signed: &Signed, session: Option<&str>, host: &str, fid: &str) -> String {
        let id = match (session, &req.auth) {
            (Some(id), _) => {
                self.sim.counters.refreshes.fetch_add(1, SeqCst);
                id.to_owned()
            }
            (None, ReqAuth::Session(id)) => id.clone(),
            _ => String::new(),
        };
        let endpoint = format!("http://{host}{GATEWAY_PATH}");
        let data = format!(
            "<data><api><sessionid>{}</sessionid><endpoint>{}</endpoint><locationid>{}</locationid></api></data>",
            wire::escape(&id),
            wire::escape(&endpoint),
            wire::escape(&signed.location)
        );
        wire::result_ok("getAPISession", fid, &data)
    }
}
