//! The NetSuite dialect's records: the seeded vendors, accounts, items and currencies, and
//! the vendorBill, purchaseOrder and vendorPayment records written by external id. A write
//! is checked as NetSuite checks references (an unknown or inactive one is refused with
//! `INVALID_CONTENT` and its `o:errorPath`); an upsert of an existing record overwrites its
//! body fields and, per sublist, replaces the lines when the request's `replace` names the
//! sublist and appends them otherwise.

use super::netsuite_wire::{invalid_content, invalid_reference};
use super::sim::{Books, Counters, Doc};
use axum::response::Response;
use serde_json::Value;
use std::sync::atomic::Ordering::SeqCst;

/// Vendors (internal id, name) of the simulated account, all active.
pub const NETSUITE_VENDORS: [(&str, &str); 3] =
    [("101", "Acme Office Supply"), ("102", "Müller & Söhne GmbH"), ("103", "Nordic Timber AB")];
/// An inactive vendor: a bill for it is refused as an invalid `entity` reference.
pub const NETSUITE_INACTIVE_VENDOR: (&str, &str) = ("104", "Defunct Supplies Ltd");
/// Expense accounts (internal id, name).
pub const NETSUITE_ACCOUNTS: [(&str, &str); 3] =
    [("58", "6000 Office Expenses"), ("59", "6010 Travel"), ("60", "6020 Maintenance")];
/// Bank accounts a vendor payment may be drawn on.
const BANK_ACCOUNTS: [&str; 1] = ["1"];
/// Items (internal id).
const ITEMS: [&str; 2] = ["200", "201"];
/// Currencies (internal id, symbol), in the order a US account's list usually starts.
pub(super) const CURRENCIES: [(&str, &str); 4] = [("1", "USD"), ("2", "GBP"), ("3", "CAD"), ("4", "EUR")];

/// The record types the dialect writes.
pub(super) fn record_type(name: &str) -> Option<&'static str> {
    ["vendorBill", "purchaseOrder", "vendorPayment"].into_iter().find(|r| *r == name)
}

/// The sublists a record has, whose lines are `{"items": [...]}`.
const SUBLISTS: [&str; 3] = ["expense", "item", "apply"];

fn id_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().fold(v, |v, k| &v[*k]).as_str()
}

fn lines<'a>(body: &'a Value, sublist: &str) -> &'a [Value] {
    body[sublist]["items"].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The refusal of a body that names a record NetSuite does not have (or has inactive).
pub(super) fn check(books: &Books, record: &str, body: &Value) -> Option<Response> {
    refusal(books, record, body).err()
}

#[allow(clippy::result_large_err)] // `?` reads best here; the error leaves at once as the answer
fn refusal(books: &Books, record: &str, body: &Value) -> Result<(), Response> {
    if !body.is_object() {
        return Err(invalid_content("The request body is not a valid JSON object.", None));
    }
    let entity = id_at(body, &["entity", "id"]).unwrap_or("");
    if !NETSUITE_VENDORS.iter().any(|(id, _)| *id == entity) {
        return Err(invalid_reference(entity, "entity", "entity"));
    }
    if let Some(c) = body.get("currency") {
        let id = c["id"].as_str().unwrap_or("");
        if !CURRENCIES.iter().any(|(cid, _)| *cid == id) {
            return Err(invalid_reference(id, "currency", "currency"));
        }
    }
    for (i, l) in lines(body, "expense").iter().enumerate() {
        let id = id_at(l, &["account", "id"]).unwrap_or("");
        if !NETSUITE_ACCOUNTS.iter().any(|(a, _)| *a == id) {
            return Err(invalid_reference(id, "account", &format!("expense.items[{i}].account")));
        }
    }
    for (i, l) in lines(body, "item").iter().enumerate() {
        let id = id_at(l, &["item", "id"]).unwrap_or("");
        if !ITEMS.contains(&id) {
            return Err(invalid_reference(id, "item", &format!("item.items[{i}].item")));
        }
    }
    if record == "vendorPayment" {
        let account = id_at(body, &["account", "id"]).unwrap_or("");
        if !BANK_ACCOUNTS.contains(&account) {
            return Err(invalid_reference(account, "account", "account"));
        }
        for (i, a) in lines(body, "apply").iter().enumerate() {
            let doc = id_at(a, &["doc", "id"]).unwrap_or("");
            let is_bill = books.docs.get("vendorBill").is_some_and(|d| d.iter().any(|b| b.id == doc));
            if !is_bill {
                return Err(invalid_reference(doc, "doc", &format!("apply.items[{i}].doc")));
            }
        }
    }
    Ok(())
}

/// The position of the record of type `record` with external id `eid`.
pub(super) fn find(books: &Books, record: &'static str, eid: &str) -> Option<usize> {
    books.by_ref.get(&(record, eid.to_owned())).and_then(|at| at.first().copied())
}

/// The position of the record of type `record` with internal id `id`.
pub(super) fn find_id(books: &Books, record: &'static str, id: &str) -> Option<usize> {
    books.docs.get(record)?.iter().position(|d| d.id == id)
}

/// Creates a record; returns its internal id. `duplicate` marks a create for an external
/// id that already has a record, which an exactly-once client never makes.
pub(super) fn create(books: &mut Books, record: &'static str, eid: &str, body: Value, c: &Counters) -> String {
    if !eid.is_empty() && find(books, record, eid).is_some() {
        c.duplicate_creates.fetch_add(1, SeqCst);
    }
    books.next_id += 1;
    let id = (1000 + books.next_id).to_string();
    let docs = books.docs.entry(record).or_default();
    docs.push(Doc { id: id.clone(), external_ref: eid.to_owned(), body });
    let at = docs.len() - 1;
    books.by_ref.entry((record, eid.to_owned())).or_default().push(at);
    books.ids.insert(id.clone());
    c.creates.fetch_add(1, SeqCst);
    id
}

/// Updates the record at `at` with `body`: body fields overwrite, a sublist named in
/// `replace` gets the body's lines instead of its own, another sublist gets them appended.
pub(super) fn update(books: &mut Books, record: &'static str, at: usize, body: &Value, replace: &[&str]) -> String {
    let doc = &mut books.docs.get_mut(record).expect("found records have a collection")[at];
    let Some(fields) = body.as_object() else { return doc.id.clone() };
    for (k, v) in fields {
        if SUBLISTS.contains(&k.as_str()) && !replace.contains(&k.as_str()) {
            let mut merged = doc.body[k.as_str()]["items"].as_array().cloned().unwrap_or_default();
            merged.extend(lines(body, k).iter().cloned());
            doc.body[k.as_str()] = serde_json::json!({ "items": merged });
        } else {
            doc.body[k.as_str()] = v.clone();
        }
    }
    doc.id.clone()
}
