//! The Xero dialect's `Invoices` routes: create (`PUT`), create-or-update (`POST`), look up
//! by natural key or id, and the attachments of an invoice.

use super::sim::Counters;
use super::xero_books::{Attachment, Invoice, TenantBooks, build_invoice, lines, number, refused};
use super::xero_state::{Request, Xero, batch, summarize_errors};
use super::xero_wire::{api_exception, envelope, form, not_found, validation_body};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

/// `PUT /Invoices`: creates every invoice of the batch.
pub(super) async fn create(State(x): State<Arc<Xero>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    write_invoices(&x, "PUT", &uri, &headers, &body).await
}

/// `POST /Invoices`: updates the invoices that name an `InvoiceID` (or an existing ACCREC
/// `InvoiceNumber`), creates the others.
pub(super) async fn upsert(State(x): State<Arc<Xero>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    write_invoices(&x, "POST", &uri, &headers, &body).await
}

async fn write_invoices(x: &Xero, method: &str, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let adm = match x.admit(headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let summarize = summarize_errors(uri.query());
    let uri_text = uri.to_string();
    let req = Request { headers, method, uri: &uri_text, body };
    let c = &x.sim.counters;
    x.write(&adm, &req, |tb| {
        batch(tb, body, "Invoices", summarize, |tb, e, dry| match existing(tb, e, method) {
            Some(at) => update(tb, at, e, dry, c),
            None => create_one(tb, e, dry, c),
        })
    })
    .await
}

/// The invoice a `POST` element updates, if any.
fn existing(tb: &TenantBooks, e: &Value, method: &str) -> Option<Option<usize>> {
    if method != "POST" {
        return None;
    }
    if let Some(id) = e["InvoiceID"].as_str() {
        return Some(tb.by_id.get(&id.to_ascii_lowercase()).copied());
    }
    let number = e["InvoiceNumber"].as_str()?;
    let at = tb.invoices.iter().position(|i| i.doc["Type"] == "ACCREC" && i.doc["InvoiceNumber"] == number)?;
    (e["Type"] == "ACCREC").then_some(Some(at))
}

fn create_one(tb: &mut TenantBooks, e: &Value, dry: bool, c: &Counters) -> Result<Value, Value> {
    let mut errors = Vec::new();
    let (doc, total) = build_invoice(tb, e, &mut errors);
    if !errors.is_empty() {
        if !dry {
            c.rejected.fetch_add(1, SeqCst);
        }
        return Err(refused(e, "InvoiceID", errors));
    }
    if dry {
        return Ok(doc);
    }
    let id = doc["InvoiceID"].as_str().unwrap_or_default().to_owned();
    let contact = doc["Contact"]["ContactID"].as_str().unwrap_or_default().to_ascii_lowercase();
    let natural = (contact, doc["InvoiceNumber"].as_str().unwrap_or_default().to_owned(), total);
    if !natural.1.is_empty() && tb.natural.contains_key(&natural) {
        c.duplicate_creates.fetch_add(1, SeqCst);
    }
    tb.next_number += 1;
    let at = tb.invoices.len();
    tb.invoices.push(Invoice { doc: doc.clone(), total, paid: Decimal::ZERO, attachments: Vec::new() });
    tb.by_id.insert(id, at);
    tb.natural.entry(natural).or_insert(at);
    c.creates.fetch_add(1, SeqCst);
    Ok(doc)
}

/// Xero's documented status changes; anything else is refused.
fn may_become(from: &str, to: &str, paid: bool) -> bool {
    match from {
        "DRAFT" => matches!(to, "DRAFT" | "SUBMITTED" | "AUTHORISED" | "DELETED"),
        "SUBMITTED" => matches!(to, "SUBMITTED" | "AUTHORISED" | "DRAFT" | "DELETED"),
        "AUTHORISED" => to == "AUTHORISED" || (to == "VOIDED" && !paid),
        _ => false,
    }
}

fn update(tb: &mut TenantBooks, at: Option<usize>, e: &Value, dry: bool, c: &Counters) -> Result<Value, Value> {
    let reject = |errors: Vec<String>| {
        if !dry {
            c.rejected.fetch_add(1, SeqCst);
        }
        Err(refused(e, "InvoiceID", errors))
    };
    let Some(at) = at else { return reject(vec!["Invoice could not be found".into()]) };
    let inv = &tb.invoices[at];
    let from = inv.doc["Status"].as_str().unwrap_or("DRAFT").to_owned();
    let to = e["Status"].as_str().unwrap_or(&from).to_owned();
    if !may_become(&from, &to, inv.paid > Decimal::ZERO) {
        return reject(vec!["Invoice not of valid status for modification".into()]);
    }
    let mut doc = inv.doc.clone();
    for field in ["Reference", "InvoiceNumber", "DueDate", "Date", "Status", "LineItems", "LineAmountTypes"] {
        if let Some(v) = e.get(field) {
            doc[field] = v.clone();
        }
    }
    let mut errors = Vec::new();
    let mut total = inv.total;
    if e.get("LineItems").is_some() {
        let (l, sub, tax, t) = lines(&doc, &mut errors);
        (doc["LineItems"], doc["SubTotal"], doc["TotalTax"], doc["Total"]) =
            (Value::Array(l), number(sub), number(tax), number(t));
        doc["AmountDue"] = number(t - inv.paid);
        total = t;
    }
    if !errors.is_empty() {
        return reject(errors);
    }
    if !dry {
        let inv = &mut tb.invoices[at];
        (inv.doc, inv.total) = (doc.clone(), total);
    }
    Ok(doc)
}

/// One query parameter's comma-separated values, quotes and spaces trimmed.
fn list_param(q: &std::collections::HashMap<String, String>, name: &str) -> Option<Vec<String>> {
    let v = q.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?.1;
    Some(v.split(',').map(|s| s.trim().trim_matches('"').to_owned()).filter(|s| !s.is_empty()).collect())
}

/// A `where` filter as (field path, value) equalities joined by AND: `Type=="ACCPAY" AND
/// Contact.ContactID==Guid("…") AND InvoiceNumber=="…"`. `None` if it says more.
fn parse_where(w: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for clause in w.split("&&").flat_map(|p| p.split(" AND ")).flat_map(|p| p.split(" and ")) {
        let (field, value) = clause.split_once("==").or_else(|| clause.split_once('='))?;
        let value = value.trim();
        let value = value.strip_prefix("Guid(").and_then(|v| v.strip_suffix(')')).unwrap_or(value);
        let value = value.strip_prefix('"')?.strip_suffix('"')?;
        out.push((field.trim().to_owned(), value.to_owned()));
    }
    Some(out)
}

fn at_path<'a>(doc: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(doc, |v, p| &v[p])
}

/// `GET /Invoices?IDs=&InvoiceNumbers=&ContactIDs=&Statuses=&where=&page=`.
pub(super) async fn list(State(x): State<Arc<Xero>>, uri: Uri, headers: HeaderMap) -> Response {
    let adm = match x.admit(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let q = form(uri.query().unwrap_or("").as_bytes());
    let mut filters: Vec<(String, Vec<String>)> = Vec::new();
    for (param, path) in [
        ("IDs", "InvoiceID"),
        ("InvoiceNumbers", "InvoiceNumber"),
        ("ContactIDs", "Contact.ContactID"),
        ("Statuses", "Status"),
    ] {
        if let Some(values) = list_param(&q, param) {
            filters.push((path.to_owned(), values));
        }
    }
    if let Some(w) = q.iter().find(|(k, _)| k.eq_ignore_ascii_case("where")).map(|(_, v)| v) {
        let Some(clauses) = parse_where(w) else {
            let msg = format!("The where clause '{w}' could not be parsed");
            return adm.remaining.apply(api_exception(16, "QueryParseException", &msg, Vec::new()));
        };
        filters.extend(clauses.into_iter().map(|(f, v)| (f, vec![v])));
    }
    if !filters.is_empty() {
        x.sim.counters.lookups.fetch_add(1, SeqCst);
    }
    let books = x.books.lock().await;
    let tb = &books[&adm.tenant];
    let matches = |doc: &Value| {
        filters.iter().all(|(path, values)| {
            let have = at_path(doc, path).as_str().unwrap_or("");
            values.iter().any(|v| v.eq_ignore_ascii_case(have))
        })
    };
    let all: Vec<Value> = tb.invoices.iter().map(|i| &i.doc).filter(|d| matches(d)).cloned().collect();
    let page: Option<usize> = q.get("page").and_then(|p| p.parse().ok());
    const PAGE: usize = 100;
    let mut body = match page {
        Some(p) => envelope("Invoices", all.iter().skip(p.saturating_sub(1) * PAGE).take(PAGE).cloned().collect()),
        None => envelope("Invoices", all.clone()),
    };
    if page.is_some() {
        let n = all.len();
        body["pagination"] = json!({"page": page, "pageSize": PAGE, "pageCount": n.div_ceil(PAGE), "itemCount": n});
    }
    adm.remaining.apply(axum::Json(body).into_response())
}

/// `GET /Invoices/{InvoiceID}` (an InvoiceNumber also finds it, as in Xero).
pub(super) async fn one(State(x): State<Arc<Xero>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let adm = match x.admit(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let books = x.books.lock().await;
    let tb = &books[&adm.tenant];
    let r = match tb.invoice(&id.to_ascii_lowercase()).or_else(|| tb.invoice(&id)) {
        Some(at) => {
            let inv = &tb.invoices[at];
            let mut doc = inv.doc.clone();
            doc["Attachments"] = inv.attachments.iter().map(|a| attachment_json(&headers, &doc, a)).collect();
            axum::Json(envelope("Invoices", vec![doc])).into_response()
        }
        None => not_found(),
    };
    adm.remaining.apply(r)
}

fn attachment_json(headers: &HeaderMap, doc: &Value, a: &Attachment) -> Value {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let id = doc["InvoiceID"].as_str().unwrap_or_default();
    json!({
        "AttachmentID": a.id,
        "FileName": a.file_name,
        "Url": format!("http://{host}/api.xro/2.0/Invoices/{id}/Attachments/{}", a.file_name),
        "MimeType": a.mime_type,
        "ContentLength": a.bytes.len(),
    })
}

/// `GET /Invoices/{InvoiceID}/Attachments`.
pub(super) async fn attachments(State(x): State<Arc<Xero>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let adm = match x.admit(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let books = x.books.lock().await;
    let tb = &books[&adm.tenant];
    let r = match tb.by_id.get(&id.to_ascii_lowercase()) {
        Some(&at) => {
            let inv = &tb.invoices[at];
            let list = inv.attachments.iter().map(|a| attachment_json(&headers, &inv.doc, a)).collect();
            axum::Json(envelope("Attachments", list)).into_response()
        }
        None => not_found(),
    };
    adm.remaining.apply(r)
}

/// `GET /Invoices/{InvoiceID}/Attachments/{FileName}`: the file's bytes.
pub(super) async fn attachment_bytes(
    State(x): State<Arc<Xero>>,
    Path((id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let adm = match x.admit(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let books = x.books.lock().await;
    let tb = &books[&adm.tenant];
    let found = tb
        .by_id
        .get(&id.to_ascii_lowercase())
        .and_then(|&at| tb.invoices[at].attachments.iter().find(|a| a.file_name.eq_ignore_ascii_case(&file)));
    let r = match found {
        Some(a) => {
            let mut r = a.bytes.clone().into_response();
            let mime =
                HeaderValue::from_str(&a.mime_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
            r.headers_mut().insert("content-type", mime);
            r
        }
        None => not_found(),
    };
    adm.remaining.apply(r)
}

/// Characters Xero refuses in an attachment's file name.
const BAD_FILE_CHARS: &[char] = &['<', '>', ':', '"', '/', '\\', '|', '?', '*', '+', '\0'];
/// Attachments one document may have.
const MAX_ATTACHMENTS: usize = 10;

/// `PUT` or `POST /Invoices/{InvoiceID}/Attachments/{FileName}`, the raw bytes as the body:
/// the same file name on the same invoice overwrites that attachment.
pub(super) async fn attach(
    State(x): State<Arc<Xero>>,
    Path((id, file)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let adm = match x.admit(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if file.is_empty() || file.contains(BAD_FILE_CHARS) {
        let msg = format!("The file name '{file}' is not valid");
        return adm.remaining.apply(api_exception(400, "BadRequest", &msg, Vec::new()));
    }
    let mime =
        headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("application/octet-stream").to_owned();
    let uri_text = uri.to_string();
    let req = Request { headers: &headers, method: "PUT", uri: &uri_text, body: &body };
    let c = &x.sim.counters;
    let found = {
        let books = x.books.lock().await;
        books[&adm.tenant].by_id.contains_key(&id.to_ascii_lowercase())
    };
    if !found {
        return adm.remaining.apply(not_found());
    }
    x.write(&adm, &req, |tb| {
        let Some(&at) = tb.by_id.get(&id.to_ascii_lowercase()) else {
            return (StatusCode::NOT_FOUND, Value::Null);
        };
        let inv = &mut tb.invoices[at];
        let same_name = inv.attachments.iter().position(|a| a.file_name.eq_ignore_ascii_case(&file));
        let at_pos = match same_name {
            Some(p) => {
                (inv.attachments[p].bytes, inv.attachments[p].mime_type) = (body.clone(), mime.clone());
                p
            }
            None => {
                if inv.attachments.len() >= MAX_ATTACHMENTS {
                    let msg = format!("A document can have at most {MAX_ATTACHMENTS} attachments");
                    return (
                        StatusCode::BAD_REQUEST,
                        validation_body(vec![json!({"ValidationErrors": [{"Message": msg}]})]),
                    );
                }
                if inv.attachments.iter().any(|a| a.bytes == body) {
                    c.duplicate_attachments.fetch_add(1, SeqCst);
                }
                let id = uuid::Uuid::new_v4().to_string();
                inv.attachments.push(Attachment {
                    id,
                    file_name: file.clone(),
                    mime_type: mime.clone(),
                    bytes: body.clone(),
                });
                c.attachments.fetch_add(1, SeqCst);
                inv.attachments.len() - 1
            }
        };
        inv.doc["HasAttachments"] = Value::Bool(true);
        let a = attachment_json(&headers, &inv.doc, &inv.attachments[at_pos]);
        (StatusCode::OK, envelope("Attachments", vec![a]))
    })
    .await
}
