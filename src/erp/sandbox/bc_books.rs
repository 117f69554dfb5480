//! A Business Central company's records in the simulator: vendors, G/L accounts and items it
//! starts with, the purchase invoices, purchase orders, vendor payment journal lines and
//! document attachments created through the API, and the validation Business Central applies
//! when they are created (properties of the API page, vendor blocking, related records,
//! field lengths).

use super::bc_wire::{Refusal, no_such_property, too_long};
use axum::http::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::HashSet;

/// Vendors every company starts with: (id, number, name, blocked). The last one is blocked
/// for all transactions, which Business Central refuses on new documents.
pub const BC_VENDORS: [(&str, &str, &str, &str); 4] = [
    ("5f1c2a3b-0001-4c8e-9a10-2b3c4d5e6f70", "10000", "Fabrikam, Inc.", " "),
    ("5f1c2a3b-0002-4c8e-9a10-2b3c4d5e6f70", "20000", "First Up Consultants", " "),
    ("5f1c2a3b-0003-4c8e-9a10-2b3c4d5e6f70", "30000", "Graphic Design Institute", " "),
    ("5f1c2a3b-0004-4c8e-9a10-2b3c4d5e6f70", "40000", "Wide World Importers", "All"),
];

/// G/L accounts lines may post to: (number, name).
pub const BC_ACCOUNTS: [(&str, &str); 6] = [
    ("6000", "Purchases, Retail"),
    ("6010", "Purchases, Retail - EU"),
    ("6020", "Purchases, Retail - Export"),
    ("6100", "Purchases, Raw Materials"),
    ("6200", "Travel"),
    ("8640", "Office Supplies"),
];

/// Items lines may buy: (number, description).
pub const BC_ITEMS: [(&str, &str); 2] = [("1896-S", "ATHENS Desk"), ("ITEM-HP200", "Spare parts kit HP-200")];

/// Writable properties of the API pages, as the v2.0 reference lists them.
const INVOICE_PROPS: &[&str] = &[
    "number",
    "postingDate",
    "invoiceDate",
    "dueDate",
    "vendorInvoiceNumber",
    "vendorId",
    "vendorNumber",
    "payToVendorId",
    "payToVendorNumber",
    "shipToName",
    "shipToContact",
    "buyFromAddressLine1",
    "buyFromAddressLine2",
    "buyFromCity",
    "buyFromCountry",
    "buyFromState",
    "buyFromPostCode",
    "shipToAddressLine1",
    "shipToAddressLine2",
    "shipToCity",
    "shipToCountry",
    "shipToState",
    "shipToPostCode",
    "payToAddressLine1",
    "payToAddressLine2",
    "payToCity",
    "payToCountry",
    "payToState",
    "payToPostCode",
    "shortcutDimension1Code",
    "shortcutDimension2Code",
    "currencyId",
    "currencyCode",
    "purchaser",
    "discountAmount",
    "discountAppliedBeforeTax",
    "purchaseInvoiceLines",
];
const ORDER_PROPS: &[&str] = &[
    "number",
    "orderDate",
    "postingDate",
    "vendorId",
    "vendorNumber",
    "payToVendorId",
    "payToVendorNumber",
    "shortcutDimension1Code",
    "shortcutDimension2Code",
    "currencyId",
    "currencyCode",
    "purchaser",
    "requestedReceiptDate",
    "discountAmount",
    "purchaseOrderLines",
];
const COMMON_LINE_PROPS: &[&str] = &[
    "sequence",
    "itemId",
    "accountId",
    "lineType",
    "lineObjectNumber",
    "description",
    "unitOfMeasureId",
    "unitOfMeasureCode",
    "quantity",
    "discountAmount",
    "discountPercent",
    "taxCode",
    "expectedReceiptDate",
    "itemVariantId",
    "locationId",
];
const PAYMENT_PROPS: &[&str] = &[
    "lineNumber",
    "vendorId",
    "vendorNumber",
    "postingDate",
    "documentNumber",
    "externalDocumentNumber",
    "amount",
    "appliesToInvoiceId",
    "appliesToInvoiceNumber",
    "description",
    "comment",
];
const LINE_TYPES: &[&str] = &["Comment", "Account", "Item", "Resource", "Fixed Asset", "Charge"];

pub(super) struct Attachment {
    pub(super) props: Value,
    pub(super) parent: String,
    pub(super) bytes: Option<Vec<u8>>,
    pub(super) version: u64,
}

pub(super) struct Document {
    pub(super) props: Value,
    pub(super) version: u64,
}

/// What kind of purchase document a create makes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Invoice,
    Order,
}

pub(super) struct CompanyBooks {
    pub(super) journal_id: String,
    pub(super) invoices: Vec<Document>,
    pub(super) orders: Vec<Document>,
    pub(super) payments: Vec<Document>,
    pub(super) attachments: Vec<Attachment>,
    /// (vendor number, vendorInvoiceNumber) of every invoice: a second invoice for the same
    /// pair is what an exactly-once client must never cause (`duplicate_creates`).
    pub(super) natural: HashSet<(String, String)>,
    /// (comment, appliesToInvoiceId, amount) of every payment line, for the same reason.
    pub(super) paid: HashSet<(String, String, String)>,
    pub(super) next_number: u64,
    pub(super) version: u64,
}

impl CompanyBooks {
    pub(super) fn seeded() -> CompanyBooks {
        CompanyBooks {
            journal_id: "9a8b7c6d-0001-4e5f-8a9b-0c1d2e3f4a5b".into(),
            invoices: Vec::new(),
            orders: Vec::new(),
            payments: Vec::new(),
            attachments: Vec::new(),
            natural: HashSet::new(),
            paid: HashSet::new(),
            next_number: 1,
            version: 0,
        }
    }

    pub(super) fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    pub(super) fn invoice(&self, id: &str) -> Option<&Document> {
        self.invoices.iter().find(|d| d.props["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id)))
    }
}

fn unknown_props(v: &Value, allowed: &[&[&str]], entity_type: &str) -> Result<(), Refusal> {
    let Some(obj) = v.as_object() else {
        return Err((StatusCode::BAD_REQUEST, "BadRequest", "Invalid Request Body".into()));
    };
    match obj.keys().find(|k| !allowed.iter().any(|set| set.contains(&k.as_str()))) {
        Some(k) => Err(no_such_property(k, entity_type)),
        None => Ok(()),
    }
}

/// The vendor a document names (by `vendorId` or `vendorNumber`), refusing an unknown or
/// blocked one as Business Central does.
pub(super) fn vendor(
    doc: &Value,
    blocked_for_payments: bool,
) -> Result<(&'static str, &'static str, &'static str), Refusal> {
    let found = match (doc["vendorId"].as_str(), doc["vendorNumber"].as_str()) {
        (Some(id), _) => BC_VENDORS.iter().find(|v| v.0.eq_ignore_ascii_case(id)).ok_or_else(|| {
            (StatusCode::BAD_REQUEST, "Internal_RecordNotFound", format!("The vendor with id {id} does not exist."))
        }),
        (None, Some(n)) => BC_VENDORS.iter().find(|v| v.1 == n).ok_or_else(|| {
            (
                StatusCode::BAD_REQUEST,
                "Internal_RecordNotFound",
                format!("The Vendor does not exist. Identification fields and values: No.='{n}'"),
            )
        }),
        (None, None) => Err((
            StatusCode::BAD_REQUEST,
            "Application_DialogException",
            "A vendorNumber or a vendorId must be provided.".into(),
        )),
    }?;
    if found.3 == "All" || (blocked_for_payments && found.3 == "Payment") {
        return Err((
            StatusCode::BAD_REQUEST,
            "Application_DialogException",
            format!("You cannot create this type of document when Vendor {} is blocked with type {}", found.1, found.3),
        ));
    }
    Ok((found.0, found.1, found.2))
}

fn text<'a>(v: &'a Value, field: &str, max: usize) -> Result<Option<&'a str>, Refusal> {
    match &v[field] {
        Value::Null => Ok(None),
        Value::String(s) if s.chars().count() > max => Err(too_long(s, max)),
        Value::String(s) => Ok(Some(s)),
        other => Err((StatusCode::BAD_REQUEST, "BadRequest", format!("Cannot convert {other} to Edm.String."))),
    }
}

fn date(v: &Value, field: &str) -> Result<Option<String>, Refusal> {
    match &v[field] {
        Value::Null => Ok(None),
        Value::String(s) if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() => Ok(Some(s.clone())),
        other => Err((
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Cannot convert the literal '{}' to the expected type 'Edm.Date'.", other.as_str().unwrap_or("")),
        )),
    }
}

fn decimal(v: &Value, field: &str) -> Result<Decimal, Refusal> {
    match &v[field] {
        Value::Null => Ok(Decimal::ZERO),
        Value::Number(n) => {
            let t = n.to_string();
            t.parse()
                .or_else(|_| Decimal::from_scientific(&t))
                .map_err(|_| (StatusCode::BAD_REQUEST, "BadRequest", format!("Cannot convert {t} to Edm.Decimal.")))
        }
        other => Err((StatusCode::BAD_REQUEST, "BadRequest", format!("Cannot convert {other} to Edm.Decimal."))),
    }
}

pub(super) fn number(d: Decimal) -> Value {
    serde_json::from_str(&d.round_dp(5).normalize().to_string()).unwrap_or(Value::Null)
}

/// One line of a deep insert, as the API answers it, and its amount.
fn line(l: &Value, kind: Kind, doc_id: &str, sequence: usize) -> Result<(Value, Decimal), Refusal> {
    let (price_field, entity_type) = match kind {
        Kind::Invoice => ("unitCost", "purchaseInvoiceLine"),
        Kind::Order => ("directUnitCost", "purchaseOrderLine"),
    };
    unknown_props(l, &[COMMON_LINE_PROPS, &[price_field]], entity_type)?;
    let line_type = l["lineType"].as_str().unwrap_or("Comment");
    if !LINE_TYPES.contains(&line_type) {
        let msg = format!("'{line_type}' is not an option. The existing options are: {}", LINE_TYPES.join(","));
        return Err((StatusCode::BAD_REQUEST, "BadRequest", msg));
    }
    let description = text(l, "description", 100)?.unwrap_or("");
    let object = text(l, "lineObjectNumber", 20)?.unwrap_or("");
    let known = match line_type {
        "Account" => BC_ACCOUNTS.iter().any(|a| a.0 == object).then_some(()).ok_or("G/L Account"),
        "Item" => BC_ITEMS.iter().any(|i| i.0 == object).then_some(()).ok_or("Item"),
        _ => Ok(()),
    };
    if let Err(table) = known {
        let msg = format!("The {table} does not exist. Identification fields and values: No.='{object}'");
        return Err((StatusCode::BAD_REQUEST, "Internal_RecordNotFound", msg));
    }
    let quantity = decimal(l, "quantity")?;
    let price = decimal(l, price_field)?;
    let amount = quantity * price;
    let out = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "documentId": doc_id,
        "sequence": (sequence + 1) * 10_000,
        "lineType": line_type,
        "lineObjectNumber": object,
        "description": description,
        "quantity": number(quantity),
        price_field: number(price),
        "taxCode": l["taxCode"].as_str().unwrap_or(""),
        "amountExcludingTax": number(amount),
    });
    Ok((out, amount))
}

/// Validates a purchase invoice or order (header and deep-inserted lines) and builds it as the
/// API answers it.
pub(super) fn build(books: &mut CompanyBooks, doc: &Value, kind: Kind) -> Result<Value, Refusal> {
    let (props, lines_field, entity_type) = match kind {
        Kind::Invoice => (INVOICE_PROPS, "purchaseInvoiceLines", "purchaseInvoice"),
        Kind::Order => (ORDER_PROPS, "purchaseOrderLines", "purchaseOrder"),
    };
    unknown_props(doc, &[props], entity_type)?;
    let (vendor_id, vendor_number, vendor_name) = vendor(doc, false)?;
    let id = uuid::Uuid::new_v4().to_string();
    let mut lines = Vec::new();
    let mut total = Decimal::ZERO;
    for (i, l) in doc[lines_field].as_array().map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
        let (l, amount) = line(l, kind, &id, i)?;
        lines.push(l);
        total += amount;
    }
    let doc_number = match (kind, text(doc, "number", 20)?) {
        (Kind::Order, Some(n)) => {
            if books.orders.iter().any(|o| o.props["number"] == n) {
                let msg = format!(
                    "The Purchase Header already exists. Identification fields and values: Document Type='Order',No.='{n}'"
                );
                return Err((StatusCode::BAD_REQUEST, "Internal_EntityWithSameKeyExists", msg));
            }
            n.to_owned()
        }
        (Kind::Invoice, Some(_)) => {
            let msg = "You may not enter numbers manually. If you want to enter numbers manually, please activate Manual Nos. in No. Series P-INV.";
            return Err((StatusCode::BAD_REQUEST, "Application_DialogException", msg.into()));
        }
        (_, None) => {
            books.next_number += 1;
            format!("{}{:04}", if kind == Kind::Invoice { "PI10" } else { "PO10" }, books.next_number)
        }
    };
    let posting = date(doc, "postingDate")?;
    let mut out = json!({
        "id": id,
        "number": doc_number,
        "postingDate": posting,
        "vendorId": vendor_id,
        "vendorNumber": vendor_number,
        "vendorName": vendor_name,
        "payToVendorId": vendor_id,
        "payToVendorNumber": vendor_number,
        "currencyCode": text(doc, "currencyCode", 10)?.unwrap_or(""),
        "pricesIncludeTax": false,
        "discountAmount": 0,
        "totalAmountExcludingTax": number(total),
        "totalTaxAmount": 0,
        "totalAmountIncludingTax": number(total),
        "status": "Draft",
        "lastModifiedDateTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    match kind {
        Kind::Invoice => {
            out["invoiceDate"] = json!(date(doc, "invoiceDate")?.or_else(|| posting.clone()));
            out["dueDate"] = json!(date(doc, "dueDate")?);
            out["vendorInvoiceNumber"] = json!(text(doc, "vendorInvoiceNumber", 35)?.unwrap_or(""));
        }
        Kind::Order => out["orderDate"] = json!(date(doc, "orderDate")?.or_else(|| posting.clone())),
    }
    out[lines_field] = Value::Array(lines);
    Ok(out)
}

/// Validates one vendor payment journal line and builds it as the API answers it.
pub(super) fn build_payment(books: &CompanyBooks, doc: &Value, line_number: usize) -> Result<Value, Refusal> {
    unknown_props(doc, &[PAYMENT_PROPS], "vendorPayment")?;
    let (vendor_id, vendor_number, _) = vendor(doc, true)?;
    let amount = decimal(doc, "amount")?;
    let applies = doc["appliesToInvoiceId"].as_str();
    if let Some(inv) = applies
        && books.invoice(inv).is_none()
    {
        let msg = format!("The purchase invoice {inv} does not exist.");
        return Err((StatusCode::BAD_REQUEST, "Internal_RecordNotFound", msg));
    }
    Ok(json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "journalId": books.journal_id,
        "journalDisplayName": "PAYMENT",
        "lineNumber": line_number * 10_000,
        "vendorId": vendor_id,
        "vendorNumber": vendor_number,
        "postingDate": date(doc, "postingDate")?,
        "documentNumber": text(doc, "documentNumber", 20)?.map(str::to_owned).unwrap_or_else(|| format!("G{:05}", line_number)),
        "externalDocumentNumber": text(doc, "externalDocumentNumber", 35)?.unwrap_or(""),
        "amount": number(amount),
        "appliesToInvoiceId": applies.unwrap_or("00000000-0000-0000-0000-000000000000"),
        "appliesToInvoiceNumber": applies.and_then(|i| books.invoice(i)).map(|d| d.props["number"].clone()).unwrap_or(json!("")),
        "description": text(doc, "description", 100)?.unwrap_or(""),
        "comment": text(doc, "comment", 250)?.unwrap_or(""),
        "lastModifiedDateTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }))
}

/// Validates a document attachment record (`POST documentAttachments`).
pub(super) fn build_attachment(books: &CompanyBooks, doc: &Value) -> Result<(Value, String), Refusal> {
    unknown_props(
        doc,
        &[&["fileName", "parentType", "parentId", "lineNumber", "documentFlowSales", "documentFlowPurchase"]],
        "documentAttachment",
    )?;
    let file = text(doc, "fileName", 250)?.unwrap_or("");
    if file.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            "BadRequest_RequiredParamNotProvided",
            "Field 'fileName' must not be blank or empty.".into(),
        ));
    }
    if doc["parentType"].as_str() != Some("Purchase Invoice") {
        let msg = format!(
            "'{}' is not a parent type this simulator keeps attachments for.",
            doc["parentType"].as_str().unwrap_or("")
        );
        return Err((StatusCode::BAD_REQUEST, "BadRequest", msg));
    }
    let parent = doc["parentId"].as_str().unwrap_or("");
    if books.invoice(parent).is_none() {
        let msg = format!("The purchase invoice {parent} does not exist.");
        return Err((StatusCode::BAD_REQUEST, "Internal_RecordNotFound", msg));
    }
    let props = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "fileName": file,
        "byteSize": 0,
        "parentType": "Purchase Invoice",
        "parentId": parent.to_ascii_lowercase(),
        "lineNumber": 0,
        "documentFlowSales": false,
        "documentFlowPurchase": false,
        "lastModifiedDateTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    Ok((props, parent.to_ascii_lowercase()))
}
