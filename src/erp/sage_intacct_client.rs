//! The Sage Intacct XML gateway over HTTP: a session opened with `getAPISession` and the
//! company user's login, then every request authenticated by that session's id and sent
//! to the endpoint the session answer names; bills and payments created under a
//! deterministic request control id with `<uniqueid>true</uniqueid>`; bills looked up by
//! `readByQuery` on APBILL; PDFs attached as supporting documents (`create_supdoc`, then
//! the bill's `SUPDOCID`).
//!
//! Sources: Sage's developer pages "XML Requests" (control block, `uniqueid`), "Error
//! Handling" (failure levels, `GW-0010` as 429, mid-process failures as HTTP 500 without
//! XML); Sage's SDK intacct/intacct-sdk-php (`test/Intacct/SessionProviderTest.php`: the
//! `getAPISession` answer, its endpoint, `sessiontimestamp` and `sessiontimeout`;
//! `Xml/Request/ControlBlock.php`: control ids of 1 to 256 characters; `RequestConfig.php`:
//! 524 is "CDN cut connection but system still processing request", never retried
//! blindly; `Functions/Company/AttachmentsCreate.php`).
//!
//! Classes: a function's failure is `Rejected` with Intacct's first `errorno` and every
//! description; `GW-0010` (HTTP 429) is `Throttled`; an invalid session is re-opened once;
//! a login or sender Intacct refuses (`XL03000006`) is `Revoked`; 502/503 are
//! `Transient`; a create whose answer is lost (timeout, reset, 500, 504, 524, unreadable
//! XML) is `Ambiguous`.

use super::sage_intacct_wire::{self as wire, Answer, Auth, Control, FnResult, GwError};
use crate::domain::Op;
use crate::erp::{Attachment, Created, ErpClient, ErpError, retry_after};
use crate::pipeline::serialize::Payload;
use async_trait::async_trait;
use reqwest::{StatusCode, Url, header};
use secrecy::{ExposeSecret, SecretString};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The Web Services sender and the company user a connection signs in with.
pub struct Login {
    pub sender_id: String,
    pub sender_password: SecretString,
    pub company_id: String,
    pub user_id: String,
    pub user_password: SecretString,
    pub entity_id: Option<String>,
}

/// The supporting document of a bill: one per bill, named after it.
pub fn supdoc_id(bill_recordno: &str) -> String {
    format!("ES{bill_recordno}")
}

/// The folder supporting documents are filed in (it must exist in the company).
pub const SUPDOC_FOLDER: &str = "erpsync";

/// A session is given up this long before Intacct says it times out.
const SESSION_MARGIN: Duration = Duration::from_secs(60);
/// How long a session is kept when the answer names no timeout.
const SESSION_FALLBACK: Duration = Duration::from_secs(600);

/// The errorno Intacct gives every refused sign-in: a sender not authorised or with the
/// wrong password, a wrong user password, a locked or disabled user.
pub const SIGN_IN_REFUSED: &str = "XL03000006";
/// The gateway's rate and concurrency limit.
pub const GATEWAY_LIMIT: &str = "GW-0010";

struct Session {
    id: SecretString,
    endpoint: Url,
    expires: Instant,
    /// Which session this is, so a request refused with it drops only it.
    generation: u64,
}

pub struct IntacctClient {
    http: reqwest::Client,
    gateway: Url,
    login: Login,
    session: Mutex<Option<Session>>,
    generation: std::sync::atomic::AtomicU64,
}

/// Whether a request creates something: its lost answer is then ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
}

impl IntacctClient {
    pub fn new(http: reqwest::Client, gateway: &str, login: Login) -> Result<Self, String> {
        let gateway = Url::parse(gateway).map_err(|e| format!("{gateway:?}: {e}"))?;
        Ok(IntacctClient { http, gateway, login, session: Mutex::new(None), generation: Default::default() })
    }

    /// A valid session: the cached one, else a new one (one sign-in at a time).
    async fn session(&self, stale: Option<u64>) -> Result<(SecretString, Url, u64), ErpError> {
        let mut cached = self.session.lock().await;
        if let Some(s) = cached.as_ref()
            && s.expires > Instant::now()
            && Some(s.generation) != stale
        {
            return Ok((s.id.clone(), s.endpoint.clone(), s.generation));
        }
        *cached = None;
        let s = self.open_session().await?;
        let out = (s.id.clone(), s.endpoint.clone(), s.generation);
        *cached = Some(s);
        Ok(out)
    }

    async fn open_session(&self) -> Result<Session, ErpError> {
        let l = &self.login;
        let control_id = format!("erpsync-session-{}", uuid::Uuid::new_v4());
        let control = Control {
            sender_id: &l.sender_id,
            sender_password: l.sender_password.expose_secret(),
            control_id: &control_id,
            unique: false,
        };
        let auth = Auth::Login {
            user_id: &l.user_id,
            company_id: &l.company_id,
            password: l.user_password.expose_secret(),
            entity_id: l.entity_id.as_deref(),
        };
        let function = wire::get_api_session("getAPISession", l.entity_id.as_deref());
        let body = wire::request(&control, &auth, &[&function], false);
        let text = self.post(self.gateway.clone(), body, Kind::Read).await?;
        let (lifetime, results) = match wire::parse(&text) {
            Ok(Answer::Results { session_lifetime, results }) => (session_lifetime, results),
            Ok(Answer::Control(errs)) => return Err(control_failure(&errs)),
            // A sign-in refused at the authentication level is the user's password, a
            // locked or disabled user: no retry can succeed.
            Ok(Answer::Authentication(errs)) => return Err(revoked("Intacct refused the sign-in", &errs)),
            Err(e) => return Err(ErpError::Transient(format!("unreadable Intacct session answer: {e}"))),
        };
        let r = &results[0];
        if !r.ok() {
            return Err(ErpError::Auth { status: 200, message: describe("getAPISession failed", &r.errors) });
        }
        let api = r.records.iter().find(|rec| rec.tag == "api");
        let id = api.and_then(|a| a.get("sessionid")).filter(|s| !s.is_empty());
        let Some(id) = id else {
            return Err(ErpError::Transient("Intacct's session answer holds no sessionid".into()));
        };
        // Later requests go where the session answer says (a company's own data centre).
        let endpoint = api
            .and_then(|a| a.get("endpoint"))
            .filter(|e| !e.is_empty())
            .and_then(|e| Url::parse(e).ok())
            .unwrap_or_else(|| self.gateway.clone());
        let lifetime = lifetime.unwrap_or(SESSION_FALLBACK);
        let margin = SESSION_MARGIN.min(lifetime / 2);
        Ok(Session {
            id: SecretString::from(id.to_owned()),
            endpoint,
            expires: Instant::now() + lifetime - margin,
            generation: self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1,
        })
    }

    /// Sends `functions` in one request under a session, re-opened once if Intacct says
    /// it is no longer valid; the functions' results.
    async fn call(&self, functions: &[&str], control_id: &str, kind: Kind) -> Result<Vec<FnResult>, ErpError> {
        let mut stale = None;
        loop {
            let (id, endpoint, generation) = self.session(stale).await?;
            let control = Control {
                sender_id: &self.login.sender_id,
                sender_password: self.login.sender_password.expose_secret(),
                control_id,
                unique: kind == Kind::Write,
            };
            let body = wire::request(&control, &Auth::Session(id.expose_secret()), functions, false);
            let text = self.post(endpoint, body, kind).await?;
            match outcome(&text, kind) {
                Outcome::Results(results) => return Ok(results),
                Outcome::Failed(e) => return Err(e),
                // No function ran: the request may be sent again with a new session.
                Outcome::SessionRefused(errs) => {
                    if stale.is_some() {
                        return Err(ErpError::Auth {
                            status: 200,
                            message: describe("Intacct refused a new session", &errs),
                        });
                    }
                    tracing::info!("intacct session no longer valid, signing in again");
                    stale = Some(generation);
                }
            }
        }
    }

    /// POSTs a request; the body of a 2xx answer, else the error it is.
    async fn post(&self, url: Url, body: String, kind: Kind) -> Result<String, ErpError> {
        let resp = self
            .http
            .post(url)
            .header(header::CONTENT_TYPE, "application/xml")
            .header(header::ACCEPT, "application/xml")
            .body(body)
            .send()
            .await
            .map_err(|e| send_error(kind, e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| match kind {
            Kind::Write => ErpError::Ambiguous(format!("Intacct's answer was cut off: {e}")),
            Kind::Read => ErpError::Transient(format!("Intacct's answer was cut off: {e}")),
        })?;
        if status.is_success() {
            return Ok(text);
        }
        Err(classify_status(kind, status, &headers, &text))
    }

    /// The payment an earlier attempt created: the vendor's APPYMTs of that date, the one
    /// whose DESCRIPTION the serializer began with the document's source id.
    async fn find_payment(&self, vendor: &str, date: &str, source: &str) -> Result<Option<String>, ErpError> {
        let query =
            format!("VENDORID = '{}' AND PAYMENTDATE = '{}'", wire::query_literal(vendor), wire::query_literal(date));
        let f = wire::read_by_query("lookup", "APPYMT", "RECORDNO,DESCRIPTION", &query, 2000);
        let control_id = format!("erpsync-lookup-{}", uuid::Uuid::new_v4());
        let results = self.call(&[&f], &control_id, Kind::Read).await?;
        let r = &results[0];
        if !r.ok() {
            return Err(ErpError::Transient(describe("Intacct's payment lookup failed", &r.errors)));
        }
        let prefix = format!("{source}:");
        let ours = r.records.iter().find(|p| p.get("DESCRIPTION").is_some_and(|d| d.starts_with(&prefix)));
        Ok(ours.and_then(|p| p.get("RECORDNO")).filter(|n| !n.is_empty()).map(str::to_owned))
    }

    /// The record an earlier attempt created of the document `payload` creates.
    async fn find(&self, op: Op, payload: &Payload) -> Result<Option<String>, ErpError> {
        match (op, document_key(payload)) {
            (Op::ExportInvoice, Some(k)) => match (k.get("RECORDID"), k.get("VENDORID")) {
                (Some(number), Some(vendor)) => self.find_bill(number, vendor).await,
                _ => Ok(None),
            },
            (Op::ExportPayment, Some(k)) => match (k.get("VENDORID"), k.get("PAYMENTDATE"), k.source.as_deref()) {
                (Some(vendor), Some(date), Some(source)) => self.find_payment(vendor, date, source).await,
                _ => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// The bill an earlier attempt created: APBILL by number and vendor.
    async fn find_bill(&self, number: &str, vendor: &str) -> Result<Option<String>, ErpError> {
        let query =
            format!("RECORDID = '{}' AND VENDORID = '{}'", wire::query_literal(number), wire::query_literal(vendor));
        let f = wire::read_by_query("lookup", "APBILL", "RECORDNO,RECORDID,VENDORID,STATE", &query, 10);
        let control_id = format!("erpsync-lookup-{}", uuid::Uuid::new_v4());
        let results = self.call(&[&f], &control_id, Kind::Read).await?;
        let r = &results[0];
        if !r.ok() {
            return Err(ErpError::Transient(describe("Intacct's bill lookup failed", &r.errors)));
        }
        let live = r.records.iter().find(|b| !matches!(b.get("STATE"), Some("Reversed" | "Reversal")));
        Ok(live.and_then(|b| b.get("RECORDNO")).filter(|n| !n.is_empty()).map(str::to_owned))
    }
}

/// What a 2xx answer to a request under a session means.
#[derive(Debug)]
enum Outcome {
    Results(Vec<FnResult>),
    /// The authentication block failed: no function ran.
    SessionRefused(Vec<GwError>),
    Failed(ErpError),
}

fn outcome(text: &str, kind: Kind) -> Outcome {
    match wire::parse(text) {
        Ok(Answer::Results { results, .. }) => Outcome::Results(results),
        Ok(Answer::Control(errs)) => Outcome::Failed(control_failure(&errs)),
        Ok(Answer::Authentication(errs)) => Outcome::SessionRefused(errs),
        Err(e) => {
            let why = format!("unreadable Intacct answer: {e}");
            Outcome::Failed(if kind == Kind::Write { ErpError::Ambiguous(why) } else { ErpError::Transient(why) })
        }
    }
}

fn send_error(kind: Kind, e: reqwest::Error) -> ErpError {
    if e.is_connect() || kind == Kind::Read {
        ErpError::Transient(format!("cannot reach Intacct: {e}"))
    } else {
        ErpError::Ambiguous(if e.is_timeout() { "Intacct did not answer in time".to_owned() } else { e.to_string() })
    }
}

/// A non-2xx answer. A 500 is Sage's documented mid-process failure (processing stopped
/// somewhere, no XML), and 504/524 are a proxy giving up while Intacct may still be
/// processing: for a create, all three leave the outcome unknown.
fn classify_status(kind: Kind, status: StatusCode, headers: &header::HeaderMap, body: &str) -> ErpError {
    let short: String = body.chars().take(300).collect();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return ErpError::Throttled { retry_after: retry_after(headers) };
    }
    // Some refusals come with a non-2xx status and an XML body: its errors decide.
    if let Ok(Answer::Control(errs)) = wire::parse(body) {
        return control_failure(&errs);
    }
    match status.as_u16() {
        500 | 504 | 524 if kind == Kind::Write => ErpError::Ambiguous(format!("Intacct answered {status}")),
        401 | 403 => ErpError::Auth { status: status.as_u16(), message: short },
        s if s >= 500 || s == 408 => ErpError::Transient(format!("Intacct answered {status}: {short}")),
        s => ErpError::Rejected { status: s, code: s.to_string(), message: short },
    }
}

/// A failed control block: nothing ran.
fn control_failure(errs: &[GwError]) -> ErpError {
    let first = errs.first().map(|e| e.errorno.as_str()).unwrap_or("");
    match first {
        GATEWAY_LIMIT => ErpError::Throttled { retry_after: None },
        SIGN_IN_REFUSED => revoked("Intacct refused the Web Services sender", errs),
        f if f.starts_with("GW-") => ErpError::Transient(describe("Intacct's gateway refused the request", errs)),
        _ => ErpError::Rejected {
            status: 200,
            code: if first.is_empty() { "control".into() } else { first.to_owned() },
            message: describe("Intacct refused the request", errs),
        },
    }
}

fn revoked(what: &str, errs: &[GwError]) -> ErpError {
    ErpError::Revoked { message: describe(what, errs) }
}

/// `what`, then each error as `errorno: message`.
fn describe(what: &str, errs: &[GwError]) -> String {
    let details: Vec<String> = errs.iter().map(|e| format!("{}: {}", e.errorno, e.message)).collect();
    if details.is_empty() { what.to_owned() } else { format!("{what}: {}", details.join("; ")) }
}

/// A function Intacct refused, with its first errorno and every description.
fn rejected(r: &FnResult) -> ErpError {
    let code = r.errors.iter().map(|e| e.errorno.as_str()).find(|n| !n.is_empty()).unwrap_or("failure");
    let message: Vec<&str> = r.errors.iter().map(|e| e.message.as_str()).filter(|m| !m.is_empty()).collect();
    ErpError::Rejected {
        status: 200,
        code: code.to_owned(),
        message: if message.is_empty() { format!("Intacct's {} failed", r.function) } else { message.join(" ") },
    }
}

/// The refusal of a function that an earlier request under the same unique control id
/// already executed and completed.
pub const DUPLICATE_CONTROL_ID: &str = "DUPLICATE_CONTROL_ID";

fn is_replay(r: &FnResult) -> bool {
    r.errors.iter().any(|e| {
        let m = e.message.to_ascii_lowercase();
        e.errorno == DUPLICATE_CONTROL_ID
            || (m.contains("control") && (m.contains("already") || m.contains("duplicate")))
    })
}

/// A supporting document that exists already (an earlier attempt created it).
fn is_existing_supdoc(r: &FnResult) -> bool {
    is_replay(r) || r.errors.iter().any(|e| e.message.to_ascii_lowercase().contains("already exists"))
}

/// The RECORDNO of a create's answer.
fn created_recordno(r: &FnResult) -> Result<String, ErpError> {
    r.records
        .iter()
        .find_map(|rec| rec.get("RECORDNO").filter(|n| !n.is_empty()))
        .map(str::to_owned)
        .ok_or_else(|| ErpError::Ambiguous(format!("Intacct's {} answer names no RECORDNO", r.function)))
}

/// What identifies a document, read back from the serializer's `<function>`: its
/// object's fields, and the source id its controlid attribute ends with.
struct DocumentKey {
    fields: Vec<(String, String)>,
    source: Option<String>,
}

impl DocumentKey {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }
}

fn document_key(payload: &Payload) -> Option<DocumentKey> {
    let text = std::str::from_utf8(&payload.body).ok()?;
    let doc = roxmltree::Document::parse(text).ok()?;
    let function = doc.root_element();
    let object = function.descendants().find(|n| n.has_tag_name("APBILL") || n.has_tag_name("APPYMT"))?;
    let fields = object
        .children()
        .filter(|c| c.is_element())
        .map(|c| (c.tag_name().name().to_owned(), c.text().unwrap_or("").trim().to_owned()))
        .collect();
    let source = function.attribute("controlid").and_then(|c| c.split_once('-')).map(|(_, s)| s.to_owned());
    Some(DocumentKey { fields, source })
}

#[async_trait]
impl ErpClient for IntacctClient {
    async fn create(&self, op: Op, payload: &Payload, idempotency_key: &str) -> Result<Created, ErpError> {
        let function = std::str::from_utf8(&payload.body).map_err(|e| ErpError::Transient(e.to_string()))?;
        let results = self.call(&[function], idempotency_key, Kind::Write).await?;
        let r = &results[0];
        if r.ok() {
            return Ok(Created { erp_id: created_recordno(r)?, replayed: false });
        }
        if !is_replay(r) {
            return Err(rejected(r));
        }
        // Intacct executed this control id before: the record exists; find it.
        match self.find(op, payload).await? {
            Some(id) => Ok(Created { erp_id: id, replayed: true }),
            None => Err(ErpError::Ambiguous(
                "Intacct says this document's request was executed before, but no record was found yet".into(),
            )),
        }
    }

    async fn find_existing(&self, op: Op, _source_id: &str, payload: &Payload) -> Result<Option<String>, ErpError> {
        self.find(op, payload).await
    }

    async fn attach_pdf(&self, a: Attachment<'_>) -> Result<String, ErpError> {
        // One supporting document per bill, named after the bill: a second attempt finds it
        // already there instead of filing a copy.
        let supdocid = supdoc_id(a.bill_id);
        let create = wire::create_supdoc("supdoc", &supdocid, a.file_name, SUPDOC_FOLDER, a.file_name, &a.pdf);
        let link = wire::attach_supdoc("link", a.bill_id, &supdocid);
        let results = self.call(&[&create, &link], a.idempotency_key, Kind::Write).await?;
        let (Some(made), Some(linked)) = (results.first(), results.get(1)) else {
            return Err(ErpError::Ambiguous("Intacct answered fewer results than functions sent".into()));
        };
        if !made.ok() && !is_existing_supdoc(made) {
            return Err(rejected(made));
        }
        if !linked.ok() && !is_replay(linked) {
            return Err(rejected(linked));
        }
        Ok(supdocid)
    }
}

#[cfg(test)]
mod tests;
