//! The Xero dialect's `Payments` and `PurchaseOrders` routes: bill payments that may not
//! exceed what a bill has outstanding, and purchase orders with unique numbers.

use super::sim::Counters;
use super::xero_books::{TenantBooks, date, lines, money, number, refused};
use super::xero_state::{Request, Xero, batch, summarize_errors};
use super::xero_wire::{envelope, ms_date, not_found};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

/// `PUT /Payments`.
pub(super) async fn create_payments(State(x): State<Arc<Xero>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    write(&x, "Payments", &uri, &headers, &body, payment).await
}

/// `PUT /PurchaseOrders`.
pub(super) async fn create_pos(State(x): State<Arc<Xero>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    write(&x, "PurchaseOrders", &uri, &headers, &body, purchase_order).await
}

type Apply = fn(&mut TenantBooks, &Value, bool, &Counters) -> Result<Value, Value>;

/// `GET /PurchaseOrders/{PurchaseOrderID or PurchaseOrderNumber}` (Xero's
/// `getPurchaseOrder` and `getPurchaseOrderByNumber`): the order, or 404.
pub(super) async fn one_po(State(x): State<Arc<Xero>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let adm = match x.admit(&headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let books = x.books.lock().await;
    let found = books[&adm.tenant].purchase_orders.iter().find(|p| {
        p["PurchaseOrderID"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(&id))
            || p["PurchaseOrderNumber"] == id.as_str()
    });
    let r = match found {
        Some(po) => axum::Json(envelope("PurchaseOrders", vec![po.clone()])).into_response(),
        None => not_found(),
    };
    adm.remaining.apply(r)
}

async fn write(x: &Xero, collection: &str, uri: &Uri, headers: &HeaderMap, body: &[u8], apply: Apply) -> Response {
    let adm = match x.admit(headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let summarize = summarize_errors(uri.query());
    let uri_text = uri.to_string();
    let req = Request { headers, method: "PUT", uri: &uri_text, body };
    let c = &x.sim.counters;
    x.write(&adm, &req, |tb| batch(tb, body, collection, summarize, |tb, e, dry| apply(tb, e, dry, c))).await
}

fn reject(e: &Value, id_field: &str, errors: Vec<String>, dry: bool, c: &Counters) -> Result<Value, Value> {
    if !dry {
        c.rejected.fetch_add(1, SeqCst);
    }
    Err(refused(e, id_field, errors))
}

/// A payment against an AUTHORISED invoice, from an account named by `Code` or
/// `AccountID`, of no more than the invoice has outstanding.
fn payment(tb: &mut TenantBooks, e: &Value, dry: bool, c: &Counters) -> Result<Value, Value> {
    let mut errors = Vec::new();
    let invoice_id = e["Invoice"]["InvoiceID"].as_str().unwrap_or("").to_ascii_lowercase();
    let at = tb.by_id.get(&invoice_id).copied();
    let amount = money(&e["Amount"]);
    if e["Account"]["Code"].as_str().unwrap_or("").is_empty()
        && e["Account"]["AccountID"].as_str().unwrap_or("").is_empty()
    {
        errors.push("You must specify either an AccountID or an Account Code".into());
    }
    let paid_date = date(&e["Date"], "Date", &mut errors);
    match (at, amount) {
        (None, _) => errors.push("Invoice could not be found".into()),
        (_, None) => errors.push("Payment amount must be specified".into()),
        (Some(at), Some(amount)) => {
            let inv = &tb.invoices[at];
            if inv.doc["Status"] != "AUTHORISED" {
                errors.push("Payments can only be made against Authorised documents".into());
            } else if amount <= rust_decimal::Decimal::ZERO {
                errors.push("Payment amount must be greater than zero".into());
            } else if inv.paid + amount > inv.total {
                errors.push("Payment amount exceeds the amount outstanding on this document".into());
            }
        }
    }
    let (Some(at), Some(amount), true) = (at, amount, errors.is_empty()) else {
        return reject(e, "PaymentID", errors, dry, c);
    };
    let inv = &tb.invoices[at];
    let payment_type = if inv.doc["Type"] == "ACCPAY" { "ACCPAYPAYMENT" } else { "ACCRECPAYMENT" };
    let mut doc = json!({
        "PaymentID": uuid::Uuid::new_v4().to_string(),
        "Date": paid_date.map(|(ms, _)| ms),
        "Amount": number(amount),
        "BankAmount": number(amount),
        "CurrencyRate": 1.0,
        "PaymentType": payment_type,
        "Status": "AUTHORISED",
        "Reference": e.get("Reference").cloned().unwrap_or(Value::String(String::new())),
        "IsReconciled": false,
        "HasAccount": true,
        "Account": e["Account"].clone(),
        "HasValidationErrors": false,
        "UpdatedDateUTC": ms_date(chrono::Utc::now(), true),
    });
    if dry {
        return Ok(doc);
    }
    let duplicate = tb.payments.iter().any(|p| {
        p["Invoice"]["InvoiceID"] == invoice_id.as_str() && p["Amount"] == doc["Amount"] && p["Date"] == doc["Date"]
    });
    if duplicate {
        c.duplicate_creates.fetch_add(1, SeqCst);
    }
    let inv = &mut tb.invoices[at];
    inv.paid += amount;
    let due = inv.total - inv.paid;
    inv.doc["AmountPaid"] = number(inv.paid);
    inv.doc["AmountDue"] = number(due);
    if due.is_zero() {
        inv.doc["Status"] = Value::String("PAID".into());
    }
    let summary = json!({"PaymentID": doc["PaymentID"], "Date": doc["Date"], "Amount": doc["Amount"]});
    if let Some(p) = inv.doc["Payments"].as_array_mut() {
        p.push(summary);
    }
    doc["Invoice"] = inv.doc.clone();
    let mut stored = doc.clone();
    stored["Invoice"] = json!({"InvoiceID": invoice_id});
    tb.payments.push(stored);
    c.creates.fetch_add(1, SeqCst);
    Ok(doc)
}

/// A purchase order for an existing, active contact; `PurchaseOrderNumber` is generated
/// when missing and must be unique.
fn purchase_order(tb: &mut TenantBooks, e: &Value, dry: bool, c: &Counters) -> Result<Value, Value> {
    let mut errors = Vec::new();
    let contact = tb.contact(e, &mut errors);
    let status = e["Status"].as_str().unwrap_or("DRAFT");
    if !matches!(status, "DRAFT" | "SUBMITTED" | "AUTHORISED" | "BILLED") {
        errors.push(format!("Purchase order Status '{status}' is not valid for a new purchase order"));
    }
    let mut po_number = e["PurchaseOrderNumber"].as_str().unwrap_or("").to_owned();
    if po_number.is_empty() {
        po_number = format!("PO-{:04}", tb.purchase_orders.len() + 1);
    }
    if tb.purchase_orders.iter().any(|p| p["PurchaseOrderNumber"] == po_number.as_str()) {
        errors.push("Order number must be unique".into());
    }
    let (l, sub, tax, total) = lines(e, &mut errors);
    let mut doc = e.clone();
    for (field, string_field) in [("Date", "DateString"), ("DeliveryDate", "DeliveryDateString")] {
        if let Some((ms, text)) = date(&e[field], field, &mut errors) {
            doc[field] = Value::String(ms);
            doc[string_field] = Value::String(text);
        }
    }
    if !errors.is_empty() {
        return reject(e, "PurchaseOrderID", errors, dry, c);
    }
    doc["PurchaseOrderID"] = Value::String(uuid::Uuid::new_v4().to_string());
    doc["PurchaseOrderNumber"] = Value::String(po_number);
    doc["Type"] = Value::String("PURCHASEORDER".into());
    doc["Contact"] = contact;
    doc["Status"] = Value::String(status.into());
    doc["LineAmountTypes"] = e.get("LineAmountTypes").cloned().unwrap_or(Value::String("Exclusive".into()));
    doc["LineItems"] = Value::Array(l);
    doc["SubTotal"] = number(sub);
    doc["TotalTax"] = number(tax);
    doc["Total"] = number(total);
    doc["CurrencyCode"] = e.get("CurrencyCode").cloned().unwrap_or(Value::String("USD".into()));
    doc["HasErrors"] = Value::Bool(false);
    doc["UpdatedDateUTC"] = Value::String(ms_date(chrono::Utc::now(), true));
    doc["StatusAttributeString"] = Value::String("OK".into());
    if !dry {
        tb.purchase_orders.push(doc.clone());
        c.creates.fetch_add(1, SeqCst);
    }
    Ok(doc)
}
