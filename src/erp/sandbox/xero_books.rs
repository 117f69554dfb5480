//! A Xero tenant's records in the simulator: contacts, invoices (bills), their attachments,
//! payments, purchase orders and remembered idempotency keys, and the validation Xero
//! applies when a document is created.

use super::xero_wire::ms_date;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Value, json};
use std::collections::HashMap;
use tokio::time::Instant;

/// Contacts every tenant starts with: (ContactID, Name, ContactStatus). The last one is
/// archived, which Xero refuses on new transactions.
pub const XERO_CONTACTS: [(&str, &str, &str); 4] = [
    ("3f6c2a1e-7b4d-4c8e-9a10-2b3c4d5e6f70", "Acme Supplies", "ACTIVE"),
    ("8d1e4b27-3c5a-4f69-8b02-7c8d9e0f1a2b", "Northwind Traders", "ACTIVE"),
    ("c2a7e9f4-6b18-4d3c-a5e0-9f1b2c3d4e5f", "Globex Corporation", "ACTIVE"),
    ("e5b0d3c6-9a2f-4e71-b8c4-1d2e3f4a5b6c", "Initech (archived)", "ARCHIVED"),
];

/// What a failed element carries as its id: Xero answers the empty GUID.
pub(super) const EMPTY_ID: &str = "00000000-0000-0000-0000-000000000000";

pub(super) struct Attachment {
    pub(super) id: String,
    pub(super) file_name: String,
    pub(super) mime_type: String,
    pub(super) bytes: axum::body::Bytes,
}

pub(super) struct Invoice {
    /// The invoice as the API shows it.
    pub(super) doc: Value,
    pub(super) total: Decimal,
    pub(super) paid: Decimal,
    pub(super) attachments: Vec<Attachment>,
}

/// An answer remembered under an idempotency key, with what the request was.
pub(super) struct Remembered {
    pub(super) request: (String, String, u64),
    pub(super) status: u16,
    pub(super) body: Value,
    pub(super) at: Instant,
}

#[derive(Default)]
pub(super) struct TenantBooks {
    /// ContactID → (Name, ContactStatus).
    pub(super) contacts: HashMap<String, (String, String)>,
    pub(super) invoices: Vec<Invoice>,
    pub(super) by_id: HashMap<String, usize>,
    /// (ContactID, InvoiceNumber, Total) of every created invoice: a second create for the
    /// same triple is what an exactly-once client must never cause (`duplicate_creates`).
    pub(super) natural: HashMap<(String, String, Decimal), usize>,
    pub(super) payments: Vec<Value>,
    pub(super) purchase_orders: Vec<Value>,
    pub(super) keys: HashMap<String, Remembered>,
    pub(super) next_number: u64,
}

impl TenantBooks {
    pub(super) fn seeded() -> TenantBooks {
        let contacts =
            XERO_CONTACTS.iter().map(|(id, name, st)| ((*id).into(), ((*name).into(), (*st).into()))).collect();
        TenantBooks { contacts, ..Default::default() }
    }

    pub(super) fn invoice(&self, id_or_number: &str) -> Option<usize> {
        self.by_id
            .get(id_or_number)
            .copied()
            .or_else(|| self.invoices.iter().position(|i| i.doc["InvoiceNumber"].as_str() == Some(id_or_number)))
    }

    /// The contact a document names, as `{ContactID, Name, ContactStatus}`, or the
    /// validation message refusing it. Contacts must already exist and be ACTIVE.
    pub(super) fn contact(&self, doc: &Value, errors: &mut Vec<String>) -> Value {
        let id = doc["Contact"]["ContactID"].as_str().unwrap_or("");
        if id.is_empty() {
            errors.push("A Contact must be specified for this type of transaction".into());
            return doc["Contact"].clone();
        }
        match self.contacts.get(&id.to_ascii_lowercase()) {
            None => {
                errors.push(format!("The contact with ContactID {id} could not be found"));
                doc["Contact"].clone()
            }
            Some((name, status)) => {
                if status != "ACTIVE" {
                    errors.push(format!("The contact {name} is archived. Restore it to use it on transactions"));
                }
                json!({"ContactID": id, "Name": name, "ContactStatus": status})
            }
        }
    }
}

/// A JSON number or numeric string as money.
pub(super) fn money(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => {
            let t = n.to_string();
            t.parse().ok().or_else(|| Decimal::from_scientific(&t).ok())
        }
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Money as Xero writes it: a JSON number.
pub(super) fn number(d: Decimal) -> Value {
    d.round_dp(2).to_f64().map(Value::from).unwrap_or(Value::Null)
}

/// A `YYYY-MM-DD` (or `YYYY-MM-DDTHH:MM:SS`) date as (`/Date(...)/`, `DateString`).
pub(super) fn date(v: &Value, field: &str, errors: &mut Vec<String>) -> Option<(String, String)> {
    let s = v.as_str()?;
    let day = s.get(..10).and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    match day {
        Some(d) => {
            let t = d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
            Some((ms_date(t, true), t.format("%Y-%m-%dT%H:%M:%S").to_string()))
        }
        None => {
            errors.push(format!("{field} '{s}' is not a valid date"));
            None
        }
    }
}

/// Line items with their amounts computed, and (SubTotal, TotalTax, Total) under the
/// document's `LineAmountTypes`.
pub(super) fn lines(doc: &Value, errors: &mut Vec<String>) -> (Vec<Value>, Decimal, Decimal, Decimal) {
    let mut out = Vec::new();
    let (mut sum, mut tax) = (Decimal::ZERO, Decimal::ZERO);
    for l in doc["LineItems"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let qty = money(&l["Quantity"]).unwrap_or(Decimal::ONE);
        let unit = money(&l["UnitAmount"]);
        let amount = match (money(&l["LineAmount"]), unit) {
            (Some(a), _) => a,
            (None, Some(u)) => (qty * u).round_dp(2),
            (None, None) => Decimal::ZERO,
        };
        let line_tax = money(&l["TaxAmount"]).unwrap_or(Decimal::ZERO);
        if let Some(u) = unit
            && l["LineAmount"].is_number()
            && (qty * u).round_dp(2) != amount
        {
            errors.push("The line total does not equal the quantity multiplied by the unit amount".into());
        }
        sum += amount;
        tax += line_tax;
        let mut line = l.clone();
        line["LineItemID"] = Value::String(uuid::Uuid::new_v4().to_string());
        line["Quantity"] = number(qty);
        line["UnitAmount"] = number(unit.unwrap_or(amount));
        line["LineAmount"] = number(amount);
        line["TaxAmount"] = number(line_tax);
        out.push(line);
    }
    let (sub, total) = match doc["LineAmountTypes"].as_str().unwrap_or("Exclusive") {
        "Inclusive" => (sum - tax, sum),
        "NoTax" => {
            tax = Decimal::ZERO;
            (sum, sum)
        }
        _ => (sum, sum + tax),
    };
    (out, sub, tax, total)
}

/// An element refused: what was sent, with Xero's error markers.
pub(super) fn refused(input: &Value, id_field: &str, errors: Vec<String>) -> Value {
    let mut v = if input.is_object() { input.clone() } else { json!({}) };
    v[id_field] = Value::String(EMPTY_ID.into());
    v["HasErrors"] = Value::Bool(true);
    v["StatusAttributeString"] = Value::String("ERROR".into());
    v["ValidationErrors"] = errors.into_iter().map(|m| json!({"Message": m})).collect();
    v
}

/// Validates a new invoice and shapes it as Xero shows it, with its Total. ACCREC numbers
/// are generated when missing and must be unique; ACCPAY numbers are the supplier's and
/// need not be.
pub(super) fn build_invoice(books: &TenantBooks, input: &Value, errors: &mut Vec<String>) -> (Value, Decimal) {
    let kind = input["Type"].as_str().unwrap_or("");
    if !matches!(kind, "ACCPAY" | "ACCREC") {
        errors.push("Invoice not of valid type for creation".into());
    }
    let contact = books.contact(input, errors);
    let status = input["Status"].as_str().unwrap_or("DRAFT");
    if !matches!(status, "DRAFT" | "SUBMITTED" | "AUTHORISED") {
        errors.push(format!("Invoice Status '{status}' is not valid for a new invoice"));
    }
    let mut invoice_number = input["InvoiceNumber"].as_str().unwrap_or("").to_owned();
    if kind == "ACCREC" {
        if invoice_number.is_empty() {
            invoice_number = format!("INV-{:04}", books.next_number + 1);
        } else if books
            .invoices
            .iter()
            .any(|i| i.doc["Type"] == "ACCREC" && i.doc["InvoiceNumber"] == invoice_number.as_str())
        {
            errors.push("Invoice # must be unique.".into());
        }
    }
    let (lines, sub, tax, total) = lines(input, errors);
    if status == "AUTHORISED" {
        if lines.is_empty() {
            errors.push("Invoices must have at least one line item to be approved".into());
        }
        for l in &lines {
            // A description-only line (Xero takes a line item with just a description, the
            // way users annotate a bill) posts no amount and needs no account.
            let posts = money(&l["LineAmount"]).is_some_and(|a| a != Decimal::ZERO);
            if posts && l["AccountCode"].as_str().unwrap_or("").is_empty() {
                errors.push("Account code '' is not a valid code for this document.".into());
            }
        }
    }
    if let Some(sent) = money(&input["Total"])
        && sent != total
    {
        errors.push("The document total does not equal the sum of the lines.".into());
    }
    let now = chrono::Utc::now();
    let mut doc = input.clone();
    doc["InvoiceID"] = Value::String(uuid::Uuid::new_v4().to_string());
    doc["InvoiceNumber"] = Value::String(invoice_number);
    doc["Reference"] = input.get("Reference").cloned().unwrap_or(Value::String(String::new()));
    doc["Contact"] = contact;
    doc["Status"] = Value::String(status.into());
    doc["LineAmountTypes"] = input.get("LineAmountTypes").cloned().unwrap_or(Value::String("Exclusive".into()));
    doc["LineItems"] = Value::Array(lines);
    doc["CurrencyCode"] = input.get("CurrencyCode").cloned().unwrap_or(Value::String("USD".into()));
    for (field, string_field) in [("Date", "DateString"), ("DueDate", "DueDateString")] {
        if let Some((ms, text)) = date(&input[field], field, errors) {
            doc[field] = Value::String(ms);
            doc[string_field] = Value::String(text);
        }
    }
    doc["SubTotal"] = number(sub);
    doc["TotalTax"] = number(tax);
    doc["Total"] = number(total);
    doc["AmountDue"] = number(total);
    doc["AmountPaid"] = number(Decimal::ZERO);
    doc["AmountCredited"] = number(Decimal::ZERO);
    doc["Payments"] = json!([]);
    doc["HasAttachments"] = Value::Bool(false);
    doc["HasErrors"] = Value::Bool(false);
    doc["IsDiscounted"] = Value::Bool(false);
    doc["UpdatedDateUTC"] = Value::String(ms_date(now, true));
    doc["StatusAttributeString"] = Value::String("OK".into());
    (doc, total)
}
