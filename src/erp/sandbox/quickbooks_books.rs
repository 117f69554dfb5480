//! One simulated QuickBooks company (realm): its seeded vendors, accounts and items, and the
//! Bills, PurchaseOrders, BillPayments and Attachables created in it, checked the way the
//! Accounting API checks them (references by entity `Id`, `DocNumber` at most 21
//! characters, a bill never paid beyond its balance).

use super::quickbooks_wire::FaultError;
use axum::http::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};

/// Vendors every simulated company starts with: (Id, DisplayName). QuickBooks ids are
/// numeric strings; `V-1042` is the id erpsync's sample documents carry, accepted so the
/// golden bodies go through unchanged.
pub const QBO_VENDORS: [(&str, &str); 4] = [
    ("56", "Müller & Söhne GmbH"),
    ("57", "Acme Office Supply"),
    ("58", "Northwind Freight"),
    ("V-1042", "Sample vendor"),
];
/// A vendor made inactive: references to it are refused (2500), for tests of rejections.
pub const QBO_INACTIVE_VENDOR: &str = "59";
/// Accounts: (Id, Name, AccountType). Expense accounts 6000–6200 in steps of 10 are seeded
/// too (the ids erpsync's sample lines use), as is `1400` from the sample documents.
pub const QBO_ACCOUNTS: [(&str, &str, &str); 4] = [
    ("33", "Accounts Payable (A/P)", "Accounts Payable"),
    ("35", "Checking", "Bank"),
    ("41", "Mastercard", "Credit Card"),
    ("1010", "Operating account", "Bank"),
];
/// Items for `ItemBasedExpenseLineDetail` lines: (Id, Name).
pub const QBO_ITEMS: [(&str, &str); 3] =
    [("1", "Services"), ("2", "Hardware"), ("ITEM-HP200", "Spare parts kit HP-200")];

/// What a create of `kind` answered, remembered for its `requestid`.
pub(super) type Answer = (StatusCode, Value);

#[derive(Default)]
pub(super) struct Company {
    vendors: HashMap<String, (String, bool)>,
    accounts: HashMap<String, (String, String)>,
    items: HashMap<String, String>,
    next_id: u64,
    /// Entity name (`Bill`, …) → its records, oldest first.
    pub(super) records: HashMap<&'static str, Vec<Value>>,
    /// (entity, vendor, DocNumber) → the Id that first used the number.
    numbers: HashMap<(&'static str, String, String), String>,
    /// Bill Id → (vendor, total, paid so far).
    bills: HashMap<String, (String, Decimal, Decimal)>,
    /// `requestid` → the original answer.
    pub(super) requests: HashMap<String, Answer>,
    /// (bill Id, hash of the bytes) of every attachment, to count copies.
    attached: HashSet<(String, u64)>,
}

fn fault(code: &'static str, message: &'static str, detail: String, element: &'static str) -> FaultError {
    FaultError { code, message, detail, element }
}

fn invalid_ref(element: &'static str, entity: &str, id: &str) -> FaultError {
    let detail = format!("Invalid Reference Id : {entity} {id:?} does not exist or has been made inactive");
    fault("2500", "Invalid Reference Id", detail, element)
}

fn required(element: &'static str) -> FaultError {
    let detail = format!("Required parameter {element} is missing in the request");
    fault("2020", "Required param missing, need to supply the required value for the API", detail, element)
}

fn business(detail: String) -> FaultError {
    fault("6000", "A business validation error has occurred while processing your request", detail, "")
}

/// An amount as QuickBooks reads it: a JSON number (or a numeric string).
pub(super) fn amount(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => n.to_string().parse().ok(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn number(d: Decimal) -> Value {
    json!(d.to_string().parse::<f64>().unwrap_or_default())
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

pub(super) fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

impl Company {
    pub(super) fn seeded() -> Company {
        let mut c = Company { next_id: 145, ..Company::default() };
        for (id, name) in QBO_VENDORS {
            c.vendors.insert(id.into(), (name.into(), true));
        }
        c.vendors.insert(QBO_INACTIVE_VENDOR.into(), ("Closed Vendor Ltd (deleted)".into(), false));
        for (id, name, kind) in QBO_ACCOUNTS {
            c.accounts.insert(id.into(), (name.into(), kind.into()));
        }
        for n in (6000..=6200).step_by(10).chain([1400]) {
            c.accounts.insert(n.to_string(), (format!("Expense {n}"), "Expense".into()));
        }
        for (id, name) in QBO_ITEMS {
            c.items.insert(id.into(), name.into());
        }
        c
    }

    /// The seeded name lists, as `select * from Vendor|Account|Item` reads them.
    pub(super) fn lists(&self, entity: &str) -> Vec<Value> {
        let mut rows: Vec<Value> = match entity {
            "Vendor" => self
                .vendors
                .iter()
                .map(|(id, (name, active))| json!({"Id": id, "DisplayName": name, "Active": active, "SyncToken": "0"}))
                .collect(),
            "Account" => self
                .accounts
                .iter()
                .map(|(id, (name, kind))| json!({"Id": id, "Name": name, "AccountType": kind, "Active": true, "SyncToken": "0"}))
                .collect(),
            "Item" => self.items.iter().map(|(id, name)| json!({"Id": id, "Name": name, "SyncToken": "0"})).collect(),
            _ => return self.records.get(entity).cloned().unwrap_or_default(),
        };
        rows.sort_by(|a, b| text(&a["Id"]).cmp(text(&b["Id"])));
        rows
    }

    fn vendor(&self, doc: &Value) -> Result<(String, String), FaultError> {
        let id = text(&doc["VendorRef"]["value"]);
        if id.is_empty() {
            return Err(required("VendorRef"));
        }
        match self.vendors.get(id) {
            Some((name, true)) => Ok((id.to_owned(), name.clone())),
            _ => Err(invalid_ref("VendorRef", "Vendor", id)),
        }
    }

    fn account(&self, v: &Value, element: &'static str) -> Result<(), FaultError> {
        let id = text(&v["value"]);
        if id.is_empty() {
            return Err(required(element));
        }
        self.accounts.get(id).map(|_| ()).ok_or_else(|| invalid_ref(element, "Account", id))
    }

    /// The checks a Bill and a PurchaseOrder share: vendor, DocNumber, expense lines.
    /// Returns (vendor id, vendor name, DocNumber, sum of the lines).
    fn purchase(&self, doc: &Value) -> Result<(String, String, String, Decimal), FaultError> {
        let (vendor, name) = self.vendor(doc)?;
        let doc_number = text(&doc["DocNumber"]).to_owned();
        let len = doc_number.chars().count();
        if len > 21 {
            let detail = format!(
                "String length specified does not match the supported length. Min:0 Max:21 supplied length:{len}"
            );
            return Err(fault(
                "2050",
                "String length is either shorter or longer than supported by specification",
                detail,
                "DocNumber",
            ));
        }
        let lines = doc["Line"].as_array().filter(|l| !l.is_empty()).ok_or_else(|| required("Line"))?;
        let mut sum = Decimal::ZERO;
        for line in lines {
            sum += amount(&line["Amount"]).ok_or_else(|| required("Amount"))?;
            match text(&line["DetailType"]) {
                "AccountBasedExpenseLineDetail" => {
                    self.account(&line["AccountBasedExpenseLineDetail"]["AccountRef"], "AccountRef")?
                }
                "ItemBasedExpenseLineDetail" => {
                    let id = text(&line["ItemBasedExpenseLineDetail"]["ItemRef"]["value"]);
                    if !self.items.contains_key(id) {
                        return Err(invalid_ref("ItemRef", "Item", id));
                    }
                }
                other => {
                    let detail = format!("Invalid Enumeration : {other:?} is not a DetailType of an expense line");
                    return Err(fault("2170", "Invalid Enumeration", detail, "DetailType"));
                }
            }
        }
        Ok((vendor, name, doc_number, sum))
    }

    /// What a BillPayment applies: (bill Id, amount) per line, all checked before any is
    /// booked.
    fn applications(&self, doc: &Value, vendor: &str) -> Result<Vec<(String, Decimal)>, FaultError> {
        let total = amount(&doc["TotalAmt"]).ok_or_else(|| required("TotalAmt"))?;
        match text(&doc["PayType"]) {
            "Check" => self.account(&doc["CheckPayment"]["BankAccountRef"], "BankAccountRef")?,
            "CreditCard" => self.account(&doc["CreditCardPayment"]["CCAccountRef"], "CCAccountRef")?,
            other => {
                let detail = format!("Invalid Enumeration : {other:?} is not a PayType (Check, CreditCard)");
                return Err(fault("2170", "Invalid Enumeration", detail, "PayType"));
            }
        }
        let mut owed: HashMap<String, Decimal> = HashMap::new();
        let mut out = Vec::new();
        for line in doc["Line"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let applied = amount(&line["Amount"]).ok_or_else(|| required("Amount"))?;
            for link in line["LinkedTxn"].as_array().map(Vec::as_slice).unwrap_or_default() {
                let id = text(&link["TxnId"]);
                let Some((bill_vendor, bill_total, paid)) =
                    self.bills.get(id).filter(|_| text(&link["TxnType"]) == "Bill")
                else {
                    return Err(invalid_ref("LinkedTxn", "Bill", id));
                };
                if bill_vendor != vendor {
                    return Err(business(format!("Business Validation Error: Bill {id} belongs to another vendor")));
                }
                let sum = owed.entry(id.to_owned()).or_insert(*paid);
                let open = *bill_total - *sum;
                if applied > open {
                    return Err(business(format!(
                        "Business Validation Error: the payment applies {applied} to Bill {id}, which has {open} open"
                    )));
                }
                *sum += applied;
                out.push((id.to_owned(), applied));
            }
        }
        let applied: Decimal = out.iter().map(|(_, a)| *a).sum();
        if applied > total {
            return Err(business(format!(
                "Business Validation Error: the lines apply {applied}, more than TotalAmt {total}"
            )));
        }
        Ok(out)
    }

    fn stamp(&mut self, mut doc: Value) -> (String, Value) {
        self.next_id += 1;
        let id = self.next_id.to_string();
        let t = now();
        doc["Id"] = json!(id);
        doc["SyncToken"] = json!("0");
        doc["domain"] = json!("QBO");
        doc["sparse"] = json!(false);
        doc["MetaData"] = json!({"CreateTime": t, "LastUpdatedTime": t});
        (id, doc)
    }

    /// Creates an entity (`Bill`, `PurchaseOrder`, `BillPayment`): the record as QuickBooks
    /// answers it and whether the vendor already had one with this DocNumber, or the Error
    /// of the ValidationFault.
    pub(super) fn create(
        &mut self,
        entity: &'static str,
        doc: Value,
        warn_duplicates: bool,
    ) -> Result<(Value, bool), FaultError> {
        if !doc.is_object() {
            return Err(fault(
                "2010",
                "Request has invalid or unsupported property",
                "the body is not a JSON object".into(),
                "",
            ));
        }
        let (vendor, vendor_name, doc_number, total, applied) = match entity {
            "BillPayment" => {
                let (vendor, name) = self.vendor(&doc)?;
                let applied = self.applications(&doc, &vendor)?;
                let total = amount(&doc["TotalAmt"]).unwrap_or_default();
                (vendor, name, text(&doc["DocNumber"]).to_owned(), total, applied)
            }
            _ => {
                let (vendor, name, number, lines) = self.purchase(&doc)?;
                let tax = amount(&doc["TxnTaxDetail"]["TotalTax"]).unwrap_or_default();
                let inclusive = text(&doc["GlobalTaxCalculation"]) == "TaxInclusive";
                (vendor, name, number, if inclusive { lines } else { lines + tax }, Vec::new())
            }
        };
        let key = (entity, vendor.clone(), doc_number.clone());
        let earlier = self.numbers.get(&key).filter(|_| !doc_number.is_empty()).cloned();
        if let Some(earlier) = &earlier
            && warn_duplicates
            && entity == "Bill"
        {
            let detail = format!(
                "Duplicate Document Number Error : You must specify a different number. This number has already been used. DocNumber={doc_number} is assigned to TxnType=Bill with TxnId={earlier}"
            );
            return Err(fault("6140", "Duplicate Document Number Error", detail, ""));
        }
        let (id, mut doc) = self.stamp(doc);
        doc["VendorRef"] = json!({"value": vendor, "name": vendor_name});
        doc["TotalAmt"] = number(total);
        match entity {
            "Bill" => {
                doc["Balance"] = number(total);
                if doc["APAccountRef"].is_null() {
                    doc["APAccountRef"] = json!({"value": "33", "name": "Accounts Payable (A/P)"});
                }
                self.bills.insert(id.clone(), (vendor.clone(), total, Decimal::ZERO));
            }
            "PurchaseOrder" if doc["POStatus"].is_null() => doc["POStatus"] = json!("Open"),
            _ => {}
        }
        for (bill, paid) in applied {
            let Some((_, bill_total, so_far)) = self.bills.get_mut(&bill) else { continue };
            *so_far += paid;
            let balance = *bill_total - *so_far;
            if let Some(b) = self.records.get_mut("Bill").and_then(|r| r.iter_mut().find(|b| text(&b["Id"]) == bill)) {
                b["Balance"] = number(balance);
            }
        }
        self.numbers.entry(key).or_insert(id);
        self.records.entry(entity).or_default().push(doc.clone());
        Ok((doc, earlier.is_some()))
    }

    /// Attaches a file: the Attachable as QuickBooks answers it and whether this bill
    /// already had these bytes attached.
    pub(super) fn attach(
        &mut self,
        realm: &str,
        meta: Value,
        file_name: Option<String>,
        data: &[u8],
    ) -> Result<(Value, bool), FaultError> {
        let refs =
            meta["AttachableRef"].as_array().filter(|r| !r.is_empty()).ok_or_else(|| required("AttachableRef"))?;
        let mut bills = Vec::new();
        for r in refs {
            let (kind, id) = (text(&r["EntityRef"]["type"]), text(&r["EntityRef"]["value"]));
            if kind != "Bill" || !self.bills.contains_key(id) {
                return Err(invalid_ref("AttachableRef", if kind.is_empty() { "entity" } else { kind }, id));
            }
            bills.push(id.to_owned());
        }
        let name = meta["FileName"].as_str().map(str::to_owned).or(file_name).ok_or_else(|| required("FileName"))?;
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            data.hash(&mut h);
            h.finish()
        };
        let mut duplicate = false;
        for bill in &bills {
            duplicate |= !self.attached.insert((bill.clone(), hash));
        }
        let (id, mut doc) = self.stamp(meta);
        doc["FileName"] = json!(name);
        doc["Size"] = json!(data.len());
        doc["FileAccessUri"] = json!(format!("/v3/company/{realm}/download/{id}"));
        if doc["ContentType"].is_null() {
            doc["ContentType"] = json!("application/pdf");
        }
        self.records.entry("Attachable").or_default().push(doc.clone());
        Ok((doc, duplicate))
    }
}
