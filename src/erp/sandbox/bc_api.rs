//! The Business Central dialect's API routes under `/v2.0/{tenant}/{environment}/api/v2.0/`:
//! `companies({id})/purchaseInvoices`, `purchaseOrders`, `vendorPaymentJournals({id})/
//! vendorPayments`, `documentAttachments` and `$batch`, each admitted by `bc_state`.

use super::bc_books::{Attachment, CompanyBooks, Document, Kind, build, build_attachment, build_payment};
use super::bc_state::Bc;
use super::bc_wire::{collection, created, entity, etag, matches, odata_error, parse_filter, refusal};
use super::xero_wire::form;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

/// Operations one `$batch` may carry.
const MAX_BATCH: usize = 100;

/// A path segment: its name and the key in parentheses, if any (`companies(…)`).
fn segment(s: &str) -> (&str, Option<&str>) {
    match s.find('(') {
        Some(i) if s.ends_with(')') => (&s[..i], Some(s[i + 1..s.len() - 1].trim_matches('\''))),
        _ => (s, None),
    }
}

fn not_found(what: &str) -> Response {
    odata_error(StatusCode::NOT_FOUND, "BadRequest_NotFound", &format!("Resource not found for the segment '{what}'."))
}

fn bad_body() -> Response {
    odata_error(StatusCode::BAD_REQUEST, "BadRequest", "Invalid Request Body")
}

fn header_only(props: &Value, lines_field: &str) -> Value {
    let mut v = props.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove(lines_field);
    }
    v
}

/// Everything under the API root.
pub(super) async fn dispatch(
    State(bc): State<Arc<Bc>>,
    Path((tenant, environment, rest)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _adm = match bc.admit(&tenant, &environment, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let root = format!("/v2.0/{tenant}/{environment}/api/v2.0");
    if rest == "$batch" {
        return if method == Method::POST { batch(&bc, &headers, &body).await } else { not_allowed(&method) };
    }
    let segs: Vec<(&str, Option<&str>)> = rest.split('/').filter(|s| !s.is_empty()).map(segment).collect();
    let Some((&("companies", Some(company)), path)) = segs.split_first() else {
        return not_found(rest.split('/').next().unwrap_or(""));
    };
    if !company.eq_ignore_ascii_case(&bc.sim.opts.business_central.company) {
        return not_found(&format!("companies({company})"));
    }
    let context = format!(
        "{root}/$metadata#companies({company})/{}",
        segs[1..].iter().map(|s| s.0).collect::<Vec<_>>().join("/")
    );
    let q = form(uri.query().unwrap_or("").as_bytes());
    let filter = match q.get("$filter").map(|f| (f, parse_filter(f))) {
        None => None,
        Some((_, Some(f))) => {
            bc.sim.counters.lookups.fetch_add(1, SeqCst);
            Some(f)
        }
        Some((f, None)) => {
            let msg = format!("The filter '{f}' is not supported by this simulator (equalities joined by 'and').");
            return odata_error(StatusCode::BAD_REQUEST, "BadRequest", &msg);
        }
    };
    let filter = filter.unwrap_or_default();
    match (&method, path) {
        (&Method::GET, [("purchaseInvoices", None)]) => {
            let books = bc.books.lock().await;
            list(&context, &books.invoices, "purchaseInvoiceLines", &filter)
        }
        (&Method::POST, [("purchaseInvoices", None)]) => create(&bc, &context, &body, Kind::Invoice).await,
        (&Method::GET, [("purchaseInvoices", Some(id))]) => {
            let books = bc.books.lock().await;
            match books.invoice(id) {
                Some(d) => axum::Json(entity(&context, d.version, &header_only(&d.props, "purchaseInvoiceLines")))
                    .into_response(),
                None => not_found(&format!("purchaseInvoices({id})")),
            }
        }
        (&Method::GET, [("purchaseInvoices", Some(id)), ("documentAttachments", None)]) => {
            let books = bc.books.lock().await;
            if books.invoice(id).is_none() {
                return not_found(&format!("purchaseInvoices({id})"));
            }
            let id = id.to_ascii_lowercase();
            let items =
                books.attachments.iter().filter(|a| a.parent == id).map(|a| with_etag(a.version, &a.props)).collect();
            collection(&context, items)
        }
        (&Method::GET, [("purchaseOrders", None)]) => {
            let books = bc.books.lock().await;
            list(&context, &books.orders, "purchaseOrderLines", &filter)
        }
        (&Method::POST, [("purchaseOrders", None)]) => create(&bc, &context, &body, Kind::Order).await,
        (&Method::GET, [("vendorPaymentJournals", None)]) => {
            let books = bc.books.lock().await;
            let j = json!({"@odata.etag": etag(1), "id": books.journal_id, "code": "PAYMENT", "displayName": "Payment Journal", "balancingAccountId": "00000000-0000-0000-0000-000000000000", "balancingAccountNumber": ""});
            collection(&context, vec![j])
        }
        (&Method::GET, [("vendorPaymentJournals", Some(j)), ("vendorPayments", None)]) => {
            let books = bc.books.lock().await;
            if !j.eq_ignore_ascii_case(&books.journal_id) {
                return not_found(&format!("vendorPaymentJournals({j})"));
            }
            list(&context, &books.payments, "", &filter)
        }
        (&Method::POST, [("documentAttachments", None)]) => attach(&bc, &context, &body).await,
        (&Method::PATCH, [("documentAttachments", Some(id)), ("attachmentContent", None)]) => {
            upload(&bc, id, &headers, &body).await
        }
        (&Method::GET, [("documentAttachments", Some(id)), ("attachmentContent", None)]) => {
            let books = bc.books.lock().await;
            match books.attachments.iter().find(|a| a.props["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id)))
            {
                Some(a) => a.bytes.clone().unwrap_or_default().into_response(),
                None => not_found(&format!("documentAttachments({id})")),
            }
        }
        (_, [(name, _), ..])
            if ["purchaseInvoices", "purchaseOrders", "vendorPaymentJournals", "documentAttachments"]
                .contains(name) =>
        {
            not_allowed(&method)
        }
        (_, [(name, _), ..]) => not_found(name),
        (_, []) => not_found("companies"),
    }
}

fn not_allowed(method: &Method) -> Response {
    let msg = format!(
        "'{method}' requests for this resource are not allowed within Microsoft Dynamics 365 Business Central OData web services."
    );
    odata_error(StatusCode::METHOD_NOT_ALLOWED, "BadRequest_MethodNotAllowed", &msg)
}

fn with_etag(version: u64, props: &Value) -> Value {
    let mut v = json!({"@odata.etag": etag(version)});
    if let (Some(o), Some(p)) = (v.as_object_mut(), props.as_object()) {
        o.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    v
}

fn list(context: &str, docs: &[Document], lines_field: &str, filter: &[(String, Value)]) -> Response {
    let items = docs
        .iter()
        .filter(|d| matches(&d.props, filter))
        .map(|d| with_etag(d.version, &header_only(&d.props, lines_field)))
        .collect();
    collection(context, items)
}

/// `POST purchaseInvoices` / `purchaseOrders`: the header and its deep-inserted lines.
async fn create(bc: &Bc, context: &str, body: &[u8], kind: Kind) -> Response {
    let Ok(doc) = serde_json::from_slice::<Value>(body) else { return bad_body() };
    let c = &bc.sim.counters;
    let mut books = bc.books.lock().await;
    let props = match build(&mut books, &doc, kind) {
        Ok(p) => p,
        Err(r) => {
            c.rejected.fetch_add(1, SeqCst);
            return refusal(r);
        }
    };
    let lines_field = if kind == Kind::Invoice { "purchaseInvoiceLines" } else { "purchaseOrderLines" };
    if kind == Kind::Invoice {
        let number = props["vendorInvoiceNumber"].as_str().unwrap_or_default().to_owned();
        let vendor = props["vendorNumber"].as_str().unwrap_or_default().to_owned();
        if !number.is_empty() && !books.natural.insert((vendor, number)) {
            c.duplicate_creates.fetch_add(1, SeqCst);
        }
    }
    c.creates.fetch_add(1, SeqCst);
    let version = books.next_version();
    let answer = entity(context, version, &header_only(&props, lines_field));
    let id = props["id"].as_str().unwrap_or_default().to_owned();
    let docs = if kind == Kind::Invoice { &mut books.invoices } else { &mut books.orders };
    docs.push(Document { props, version });
    drop(books);
    bc.maybe_stall().await;
    created(&format!("{}({id})", context.split("$metadata#").last().unwrap_or("")), answer)
}

/// `POST documentAttachments`: the record, without content yet.
async fn attach(bc: &Bc, context: &str, body: &[u8]) -> Response {
    let Ok(doc) = serde_json::from_slice::<Value>(body) else { return bad_body() };
    let c = &bc.sim.counters;
    let mut books = bc.books.lock().await;
    let (props, parent) = match build_attachment(&books, &doc) {
        Ok(p) => p,
        Err(r) => {
            c.rejected.fetch_add(1, SeqCst);
            return refusal(r);
        }
    };
    if books.attachments.iter().any(|a| a.parent == parent && a.props["fileName"] == props["fileName"]) {
        c.duplicate_attachments.fetch_add(1, SeqCst);
    }
    c.attachments.fetch_add(1, SeqCst);
    let version = books.next_version();
    let answer = entity(context, version, &props);
    let id = props["id"].as_str().unwrap_or_default().to_owned();
    books.attachments.push(Attachment { props, parent, bytes: None, version });
    drop(books);
    bc.maybe_stall().await;
    created(&format!("documentAttachments({id})"), answer)
}

/// `PATCH documentAttachments({id})/attachmentContent` with `If-Match`: the file's bytes.
async fn upload(bc: &Bc, id: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    let c = &bc.sim.counters;
    let mut books = bc.books.lock().await;
    let CompanyBooks { attachments, .. } = &mut *books;
    let Some(at) = attachments.iter().position(|a| a.props["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id)))
    else {
        return not_found(&format!("documentAttachments({id})"));
    };
    let if_match = headers.get("if-match").and_then(|v| v.to_str().ok());
    match if_match {
        None => {
            let msg = "Could not validate the client concurrency token required by the service. Please provide a valid token in the client request.";
            return odata_error(StatusCode::BAD_REQUEST, "BadRequest_InvalidToken", msg);
        }
        Some(tag) if tag != "*" && tag != etag(attachments[at].version) => {
            return odata_error(
                StatusCode::CONFLICT,
                "Request_EntityChanged",
                "Another user has already changed the record.",
            );
        }
        Some(_) => {}
    }
    let parent = attachments[at].parent.clone();
    let copy = attachments
        .iter()
        .enumerate()
        .any(|(i, a)| i != at && a.parent == parent && a.bytes.as_deref() == Some(body.as_ref()));
    if copy {
        c.duplicate_attachments.fetch_add(1, SeqCst);
    }
    let a = &mut attachments[at];
    a.bytes = Some(body.to_vec());
    a.props["byteSize"] = json!(body.len());
    let version = books.next_version();
    books.attachments[at].version = version;
    drop(books);
    bc.maybe_stall().await;
    StatusCode::NO_CONTENT.into_response()
}

/// `POST $batch` (JSON batch): `vendorPayments` creates. With `Isolation: snapshot` the batch
/// is one transaction: any failing request and nothing of it is kept.
async fn batch(bc: &Bc, headers: &HeaderMap, body: &[u8]) -> Response {
    let Ok(doc) = serde_json::from_slice::<Value>(body) else { return bad_body() };
    let Some(requests) = doc["requests"].as_array() else { return bad_body() };
    if requests.len() > MAX_BATCH {
        let msg = format!("The batch request contains {} operations; at most {MAX_BATCH} are allowed.", requests.len());
        return odata_error(StatusCode::BAD_REQUEST, "BadRequest", &msg);
    }
    let snapshot =
        headers.get("isolation").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("snapshot"));
    let c = &bc.sim.counters;
    let company = bc.sim.opts.business_central.company.to_ascii_lowercase();
    let mut books = bc.books.lock().await;
    let mut staged: Vec<Value> = Vec::new();
    let mut responses = Vec::new();
    let mut failed = false;
    for r in requests {
        let id = r["id"].clone();
        let url = r["url"].as_str().unwrap_or("");
        let segs: Vec<(&str, Option<&str>)> = url.split('/').filter(|s| !s.is_empty()).map(segment).collect();
        let target = match segs.as_slice() {
            [("companies", Some(co)), ("vendorPaymentJournals", Some(j)), ("vendorPayments", None)]
                if co.eq_ignore_ascii_case(&company) && j.eq_ignore_ascii_case(&books.journal_id) =>
            {
                r["method"].as_str().is_some_and(|m| m.eq_ignore_ascii_case("POST"))
            }
            _ => false,
        };
        let line_number = books.payments.len() + staged.len() + 1;
        let result = if target {
            build_payment(&books, &r["body"], line_number)
        } else {
            Err((StatusCode::NOT_FOUND, "BadRequest_NotFound", format!("Resource not found for the segment '{url}'.")))
        };
        match result {
            Ok(line) => {
                let body = with_etag(books.version + staged.len() as u64 + 1, &line);
                responses.push(json!({"id": id, "status": 201, "headers": {"content-type": "application/json; odata.metadata=minimal", "odata-version": "4.0"}, "body": body}));
                staged.push(line);
            }
            Err((status, code, message)) => {
                failed = true;
                c.rejected.fetch_add(1, SeqCst);
                let message = format!("{message}  CorrelationId:  {}.", uuid::Uuid::new_v4());
                responses.push(json!({"id": id, "status": status.as_u16(), "headers": {"content-type": "application/json; odata.metadata=minimal", "odata-version": "4.0"}, "body": {"error": {"code": code, "message": message}}}));
            }
        }
    }
    let keep = !(snapshot && failed);
    if keep && !staged.is_empty() {
        for line in staged {
            let key = (
                line["comment"].as_str().unwrap_or_default().to_owned(),
                line["appliesToInvoiceId"].as_str().unwrap_or_default().to_owned(),
                line["amount"].to_string(),
            );
            if !books.paid.insert(key) {
                c.duplicate_creates.fetch_add(1, SeqCst);
            }
            c.creates.fetch_add(1, SeqCst);
            let version = books.next_version();
            books.payments.push(Document { props: line, version });
        }
        drop(books);
        bc.maybe_stall().await;
    }
    axum::Json(json!({"responses": responses})).into_response()
}
