//! The Intacct dialect's company: its vendors, bills, payments and supporting documents,
//! the control ids it executed under `uniqueid`, and the functions that read and write
//! them (`create` of APBILL and APPYMT, `readByQuery`, `create_supdoc`, `update` of a
//! bill's SUPDOCID).

use super::intacct_wire::{El, Error, data};
use super::sim::Counters;
use rust_decimal::Decimal;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering::SeqCst;

/// The vendors of the simulated company: (VENDORID, name, active).
pub const INTACCT_VENDORS: [(&str, &str, bool); 4] = [
    ("V-1042", "Hydraulik Nord GmbH", true),
    ("V-2001", "Acme Office Supplies", true),
    ("V-3300", "Northwind Freight", true),
    ("V-0999", "Closed Vendor Ltd", false),
];

/// The seeded vendor Intacct refuses bills for: it is inactive.
pub const INTACCT_INACTIVE_VENDOR: &str = INTACCT_VENDORS[3].0;

/// The errorno of a record Intacct could not create (the first error of a refused create).
pub(super) const COULD_NOT_CREATE: &str = "BL01001973";
/// Placeholder errorno for a function refused because its control id was executed
/// before; Sage documents the refusal, not its errorno (`sage_intacct.md`).
pub(super) const DUPLICATE_CONTROL_ID: &str = "DUPLICATE_CONTROL_ID";

pub(super) struct Bill {
    pub(super) recordno: u64,
    pub(super) recordid: String,
    pub(super) vendorid: String,
    pub(super) total: Decimal,
    pub(super) paid: Decimal,
    pub(super) supdocid: Option<String>,
}

pub(super) struct Payment {
    recordno: u64,
    vendorid: String,
    paymentdate: String,
    docnumber: String,
    description: String,
}

pub(super) struct Company {
    vendors: HashMap<String, bool>,
    pub(super) bills: Vec<Bill>,
    /// (VENDORID, RECORDID) → positions in `bills`.
    by_key: HashMap<(String, String), Vec<usize>>,
    /// SUPDOCID → a hash of its attachments' bytes.
    supdocs: HashMap<String, u64>,
    payments: Vec<Payment>,
    next_recordno: u64,
    /// (request control id, function control id) of functions completed under `uniqueid`.
    pub(super) executed: HashSet<(String, String)>,
}

impl Company {
    pub(super) fn seeded() -> Company {
        Company {
            vendors: INTACCT_VENDORS.iter().map(|(id, _, active)| ((*id).to_owned(), *active)).collect(),
            bills: Vec::new(),
            by_key: HashMap::new(),
            supdocs: HashMap::new(),
            payments: Vec::new(),
            next_recordno: 1000,
            executed: HashSet::new(),
        }
    }

    fn next(&mut self) -> u64 {
        self.next_recordno += 1;
        self.next_recordno
    }
}

type Outcome = Result<String, Vec<Error<'static>>>;

fn refuse(no: &'static str, d: &'static str, d2: String) -> Vec<Error<'static>> {
    vec![Error(no, d, d2)]
}

fn decimal(s: &str) -> Option<Decimal> {
    s.trim().parse::<Decimal>().ok()
}

/// Runs one function's operation (the element inside `<function>`): its `<data>`, or its
/// errors. Counts what it did.
pub(super) fn run(co: &mut Company, op: &El, c: &Counters) -> Outcome {
    match op.name.as_str() {
        "create" => match op.children.first() {
            Some(o) if o.name == "APBILL" => create_bill(co, o, c),
            Some(o) if o.name == "APPYMT" => create_payment(co, o, c),
            Some(o) => {
                Err(refuse("BL01001973", "Could not create record!", format!("object {} is not supported", o.name)))
            }
            None => Err(refuse("XL03000003", "XML Parse schema error", "create names no object".into())),
        },
        "readByQuery" => {
            c.lookups.fetch_add(1, SeqCst);
            read_by_query(co, op)
        }
        "create_supdoc" => create_supdoc(co, op, c),
        "update" => match op.child("APBILL") {
            Some(b) => attach(co, b, c),
            None => Err(refuse(
                "BL01001973",
                "Could not update record!",
                "only APBILL SUPDOCID updates are simulated".into(),
            )),
        },
        other => Err(refuse("XL03000003", "XML Parse schema error", format!("unknown function {other}"))),
    }
}

fn created(tag: &str, recordno: u64) -> String {
    data("objects", tag, &[vec![("RECORDNO", recordno.to_string())]], 1)
}

fn vendor_problem(co: &Company, vendor: &str, object: &'static str) -> Option<Vec<Error<'static>>> {
    let what = match co.vendors.get(vendor) {
        None => format!("Invalid Vendor '{vendor}' specified."),
        Some(false) => format!("Vendor '{vendor}' is inactive. Select an active vendor."),
        Some(true) => return None,
    };
    Some(refuse(COULD_NOT_CREATE, object, what))
}

fn create_bill(co: &mut Company, b: &El, c: &Counters) -> Outcome {
    let reject = |errs: Vec<Error<'static>>| {
        c.rejected.fetch_add(1, SeqCst);
        Err(errs)
    };
    let vendor = b.text_of("VENDORID").to_owned();
    if let Some(errs) = vendor_problem(co, &vendor, "Could not create APBILL record!") {
        return reject(errs);
    }
    let recordid = b.text_of("RECORDID").to_owned();
    let items = b.child("APBILLITEMS").map(|i| i.children.as_slice()).unwrap_or_default();
    if items.is_empty() {
        return reject(refuse(
            COULD_NOT_CREATE,
            "Could not create APBILL record!",
            "A bill needs at least one line.".into(),
        ));
    }
    let mut total = Decimal::ZERO;
    for (i, item) in items.iter().enumerate() {
        let amount = decimal(item.text_of("TRX_AMOUNT"));
        if item.text_of("ACCOUNTNO").is_empty() || amount.is_none() {
            let why = format!("Enter an account number and amount on line item {}, and try again.", i + 1);
            return reject(refuse(COULD_NOT_CREATE, "Could not create APBILL record!", why));
        }
        total += amount.unwrap_or_default();
        for tax in item.child("TAXENTRIES").map(|t| t.children.as_slice()).unwrap_or_default() {
            total += decimal(tax.text_of("TRX_TAX")).unwrap_or_default();
        }
    }
    let key = (vendor.clone(), recordid.clone());
    if !recordid.is_empty() && co.by_key.get(&key).is_some_and(|v| !v.is_empty()) {
        c.duplicate_creates.fetch_add(1, SeqCst);
    }
    let recordno = co.next();
    co.by_key.entry(key).or_default().push(co.bills.len());
    co.bills.push(Bill { recordno, recordid, vendorid: vendor, total, paid: Decimal::ZERO, supdocid: None });
    c.creates.fetch_add(1, SeqCst);
    Ok(created("apbill", recordno))
}

fn create_payment(co: &mut Company, p: &El, c: &Counters) -> Outcome {
    let reject = |why: String| {
        c.rejected.fetch_add(1, SeqCst);
        Err(refuse(COULD_NOT_CREATE, "Could not create APPYMT record!", why))
    };
    let vendor = p.text_of("VENDORID");
    if let Some(errs) = vendor_problem(co, vendor, "Could not create APPYMT record!") {
        c.rejected.fetch_add(1, SeqCst);
        return Err(errs);
    }
    if p.text_of("FINANCIALENTITY").is_empty() {
        return reject("Enter a bank account (FINANCIALENTITY).".into());
    }
    let mut owed: HashMap<usize, Decimal> = HashMap::new();
    for d in p.child("APPYMTDETAILS").map(|d| d.children.as_slice()).unwrap_or_default() {
        let key = d.text_of("RECORDKEY");
        let Some(at) = co.bills.iter().position(|b| b.recordno.to_string() == key && b.vendorid == vendor) else {
            return reject(format!("Bill {key} of vendor {vendor} does not exist."));
        };
        let Some(amount) = decimal(d.text_of("TRX_PAYMENTAMOUNT")) else {
            return reject(format!("The payment amount for bill {key} is not a number."));
        };
        let sum = owed.entry(at).or_insert(co.bills[at].paid);
        *sum += amount;
        if *sum > co.bills[at].total {
            return reject(format!("The payment amount exceeds the amount due on bill {key}."));
        }
    }
    if owed.is_empty() {
        return reject("A payment needs at least one bill to pay.".into());
    }
    for (at, paid) in owed {
        co.bills[at].paid = paid;
    }
    let description = p.text_of("DESCRIPTION");
    if !description.is_empty() && co.payments.iter().any(|x| x.vendorid == vendor && x.description == description) {
        c.duplicate_creates.fetch_add(1, SeqCst);
    }
    let recordno = co.next();
    co.payments.push(Payment {
        recordno,
        vendorid: vendor.to_owned(),
        paymentdate: p.text_of("PAYMENTDATE").to_owned(),
        docnumber: p.text_of("DOCNUMBER").to_owned(),
        description: p.text_of("DESCRIPTION").to_owned(),
    });
    c.creates.fetch_add(1, SeqCst);
    Ok(created("appymt", recordno))
}

/// `FIELD = 'value' [AND …]`, the only query form simulated; `\` escapes a quote.
fn conditions(query: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = query.trim();
    loop {
        let (field, after) = rest.split_once('=')?;
        let after = after.trim_start().strip_prefix('\'')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => value.push(chars.next()?.1),
                (i, '\'') => break i,
                (_, ch) => value.push(ch),
            }
        };
        out.push((field.trim().to_ascii_uppercase(), value));
        rest = after[end + 1..].trim_start();
        if rest.is_empty() {
            return Some(out);
        }
        rest = rest.strip_prefix("AND ").or_else(|| rest.strip_prefix("and "))?;
    }
}

/// The fields `readByQuery` can read of an object's records.
fn rows(co: &Company, object: &str) -> Option<Vec<Vec<(&'static str, String)>>> {
    Some(match object {
        "APBILL" => co
            .bills
            .iter()
            .map(|b| {
                vec![
                    ("RECORDNO", b.recordno.to_string()),
                    ("RECORDID", b.recordid.clone()),
                    ("VENDORID", b.vendorid.clone()),
                    ("STATE", if b.paid >= b.total { "Paid" } else { "Posted" }.to_owned()),
                    ("SUPDOCID", b.supdocid.clone().unwrap_or_default()),
                ]
            })
            .collect(),
        "APPYMT" => co
            .payments
            .iter()
            .map(|p| {
                vec![
                    ("RECORDNO", p.recordno.to_string()),
                    ("VENDORID", p.vendorid.clone()),
                    ("PAYMENTDATE", p.paymentdate.clone()),
                    ("DOCNUMBER", p.docnumber.clone()),
                    ("DESCRIPTION", p.description.clone()),
                ]
            })
            .collect(),
        _ => return None,
    })
}

fn read_by_query(co: &Company, op: &El) -> Outcome {
    let object = op.text_of("object");
    let Some(all) = rows(co, object) else {
        return Err(refuse("Query Failed", "", format!("Object definition {object} not found")));
    };
    let Some(conds) = conditions(op.text_of("query")) else {
        return Err(refuse("Query Failed", "", format!("Invalid query: {}", op.text_of("query"))));
    };
    let get = |r: &[(&'static str, String)], f: &str| r.iter().find(|(k, _)| *k == f).map(|(_, v)| v.clone());
    let fields: Vec<&str> = op.text_of("fields").split(',').map(str::trim).filter(|f| !f.is_empty()).collect();
    let matching: Vec<&Vec<(&'static str, String)>> =
        all.iter().filter(|r| conds.iter().all(|(f, v)| get(r, f).as_deref() == Some(v.as_str()))).collect();
    let size = op.text_of("pagesize").parse::<usize>().unwrap_or(100).clamp(1, 2000);
    let mut records = Vec::new();
    for row in matching.iter().take(size) {
        if fields.is_empty() || fields == ["*"] {
            records.push(row.iter().map(|(k, v)| (*k, v.clone())).collect());
            continue;
        }
        let mut r = Vec::new();
        for f in &fields {
            match get(row, f) {
                Some(v) => r.push((*f, v)),
                None => return Err(refuse("Query Failed", "", format!("Invalid field {f} for {object}"))),
            }
        }
        records.push(r);
    }
    let tag = object.to_ascii_lowercase();
    Ok(data(&tag, &tag, &records, matching.len()))
}

fn create_supdoc(co: &mut Company, op: &El, c: &Counters) -> Outcome {
    let id = op.text_of("supdocid").to_owned();
    if id.is_empty() || op.text_of("supdocfoldername").is_empty() {
        return Err(refuse(
            COULD_NOT_CREATE,
            "Could not create attachment record!",
            "supdocid and supdocfoldername are required".into(),
        ));
    }
    if co.supdocs.contains_key(&id) {
        return Err(refuse(
            COULD_NOT_CREATE,
            "Could not create attachment record!",
            format!("Attachment {id} already exists."),
        ));
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let files = op.child("attachments").map(|a| a.children.as_slice()).unwrap_or_default();
    for f in files {
        f.text_of("attachmentdata").hash(&mut h);
    }
    let hash = h.finish();
    if !files.is_empty() && co.supdocs.values().any(|&other| other == hash) {
        c.duplicate_attachments.fetch_add(1, SeqCst);
    }
    co.supdocs.insert(id, hash);
    c.attachments.fetch_add(files.len() as u64, SeqCst);
    Ok(String::new())
}

fn attach(co: &mut Company, b: &El, c: &Counters) -> Outcome {
    let recordno = b.text_of("RECORDNO");
    let supdoc = b.text_of("SUPDOCID").to_owned();
    let Some(bill) = co.bills.iter_mut().find(|x| x.recordno.to_string() == recordno) else {
        return Err(refuse(
            COULD_NOT_CREATE,
            "Could not update APBILL record!",
            format!("Bill {recordno} does not exist."),
        ));
    };
    let Some(&hash) = co.supdocs.get(&supdoc) else {
        return Err(refuse(
            COULD_NOT_CREATE,
            "Could not update APBILL record!",
            format!("Attachment {supdoc} does not exist."),
        ));
    };
    if let Some(old) = bill.supdocid.as_ref().filter(|o| **o != supdoc)
        && co.supdocs.get(old) == Some(&hash)
    {
        c.duplicate_attachments.fetch_add(1, SeqCst);
    }
    bill.supdocid = Some(supdoc);
    Ok(created("apbill", bill.recordno))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_read_quoted_values_with_escapes() {
        assert_eq!(
            conditions("RECORDID = 'A\\'1' AND VENDORID = 'V-1'").unwrap(),
            [("RECORDID".to_owned(), "A'1".to_owned()), ("VENDORID".to_owned(), "V-1".to_owned())]
        );
        assert!(conditions("RECORDID = 'open").is_none());
        assert!(conditions("RECORDID LIKE 'x%'").is_none());
    }
}
