//! `erpsync preview`: exactly what an export would send for one document, as files, without
//! calling any ERP. Support staff use it to answer "what exactly did we send?".
//!
//! It runs the same steps as the daemon's stages — validation, payment matching, the ERP
//! kind's serializer, the PDF renderer, the CSV renderer — so the request body it writes
//! is byte for byte the one an export sends (the tests compare it with the golden files).
//! Everything here is pure but [`write`]; the CLI only parses flags and prints.

use crate::domain::{ErpKind, Invoice, Payment, PurchaseOrder, ValidationErrors, samples};
use crate::erp::registry;
use crate::pipeline::Document;
use crate::pipeline::matching::{self, MatchError, OpenBill};
use crate::pipeline::render::{RenderError, csv, pdf};
use crate::pipeline::serialize::{self, SerializeError};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Which document kind to preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DocKind {
    Invoice,
    PurchaseOrder,
    Payment,
}

impl DocKind {
    fn name(self) -> &'static str {
        match self {
            DocKind::Invoice => "invoice",
            DocKind::PurchaseOrder => "purchase order",
            DocKind::Payment => "payment",
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct PreviewArgs {
    /// ERP kind: quickbooks_online, xero, netsuite, business_central, sage_intacct, generic_rest.
    #[arg(long, value_parser = parse_erp)]
    pub erp: ErpKind,
    /// A JSON file holding one document, as the AP application sends it.
    #[arg(long, conflicts_with = "sample", required_unless_present = "sample")]
    pub file: Option<PathBuf>,
    /// Use the representative sample document (multi-line, taxed, EUR, non-ASCII vendor).
    #[arg(long)]
    pub sample: bool,
    /// The kind of document.
    #[arg(long, value_enum, default_value = "invoice")]
    pub doc: DocKind,
    /// Payments only: a JSON array of the vendor's open bills (`erp_id`, `number`,
    /// `balance`, `currency`, `due_date`), as the export would find them. Without it, every
    /// bill the remittance names counts as open for the amount applied, with a placeholder
    /// ERP id (`--sample`: the bills the sample payment pays).
    #[arg(long)]
    pub open_bills: Option<PathBuf>,
    /// Directory to write into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

fn parse_erp(s: &str) -> Result<ErpKind, String> {
    ErpKind::parse(s).ok_or_else(|| {
        let all: Vec<&str> = ErpKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("unknown ERP kind {s:?}; one of {}", all.join(", "))
    })
}

/// Where the document comes from.
pub enum Source {
    Sample,
    Json(serde_json::Value),
}

/// One file of a preview.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not JSON: {source}")]
    NotJson { path: PathBuf, source: serde_json::Error },
    #[error("the document is not a valid {kind}: {source}")]
    Parse { kind: &'static str, source: serde_json::Error },
    #[error("the open bills are not a JSON array of bills: {0}")]
    OpenBills(serde_json::Error),
    #[error("the document has {} problem(s)", .0.0.len())]
    Invalid(ValidationErrors),
    #[error("the payment cannot be matched to bills: {0}")]
    Match(#[from] MatchError),
    #[error("the ERP payload cannot be built: {0}")]
    Serialize(#[from] SerializeError),
    #[error("{0}")]
    Render(#[from] RenderError),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

impl PreviewError {
    /// Every problem on its own line (`field: message`), for the person fixing the document.
    pub fn problems(&self) -> Vec<String> {
        match self {
            PreviewError::Invalid(e) => e.0.iter().map(|f| format!("{}: {}", f.field, f.message)).collect(),
            PreviewError::Serialize(SerializeError::Invalid(e)) => {
                e.0.iter().map(|f| format!("{}: {}", f.field, f.message)).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Whether the document (rather than the machine) is at fault: the CLI exits 2 then.
    pub fn is_document_problem(&self) -> bool {
        !matches!(self, PreviewError::Read { .. } | PreviewError::Write { .. } | PreviewError::Render(_))
    }
}

/// The file that says why an ERP whose API takes no file gets no PDF.
pub const NOT_ATTACHED: &str = "not-attached.txt";

/// The files an export of the document would send to an ERP of kind `erp`:
/// `payload.json` (`payload.xml` for Sage Intacct), the PDF attachment of an invoice,
/// QuickBooks' attachment metadata, the CSV rows, and for a payment `matching.json` (which
/// bills it pays, and why).
pub fn preview(
    erp: ErpKind,
    kind: DocKind,
    source: Source,
    open_bills: Option<serde_json::Value>,
) -> Result<Vec<PreviewFile>, PreviewError> {
    let mut files = Vec::new();
    // The samples name the vendor the way this ERP does.
    let sample_vendor = matches!(source, Source::Sample).then(|| registry::module(erp).sample_vendor_id()).flatten();
    let doc = match kind {
        DocKind::Invoice => {
            let mut inv: Invoice = document(source, kind, samples::invoice)?;
            if let Some(id) = sample_vendor {
                inv.vendor.id = id.to_owned();
            }
            inv.validate().map_err(PreviewError::Invalid)?;
            match registry::module(erp).pdf_not_attached() {
                // The ERP never receives the PDF: say why instead of showing one.
                Some(reason) => files.push(file(NOT_ATTACHED.into(), format!("not attached: {reason}\n").into_bytes())),
                None => files.push(file(serialize::attachment_file_name(&inv), pdf::invoice_pdf(&inv)?)),
            }
            for (name, bytes) in registry::module(erp).attachment_files(&inv)? {
                files.push(file(name, bytes));
            }
            files.push(file("bills.csv".into(), csv::bills(std::slice::from_ref(&inv))?.into_bytes()));
            Document::Invoice(inv)
        }
        DocKind::PurchaseOrder => {
            let mut po: PurchaseOrder = document(source, kind, samples::purchase_order)?;
            if let Some(id) = sample_vendor {
                po.vendor.id = id.to_owned();
            }
            po.validate().map_err(PreviewError::Invalid)?;
            Document::PurchaseOrder(po)
        }
        DocKind::Payment => {
            let is_sample = matches!(source, Source::Sample);
            let payment: Payment = document(source, kind, samples::payment)?;
            payment.validate().map_err(PreviewError::Invalid)?;
            let open = match open_bills {
                Some(v) => serde_json::from_value(v).map_err(PreviewError::OpenBills)?,
                None if is_sample => crate::samples::sample_open_bills(),
                None => assumed_open_bills(&payment),
            };
            let outcome = matching::match_payment(&payment, &open)?;
            let explained = serde_json::to_vec_pretty(&outcome).expect("a match outcome serializes");
            files.push(file("matching.json".into(), explained));
            files.push(file("payments.csv".into(), csv::payment_batch(std::slice::from_ref(&payment))?.into_bytes()));
            Document::Payment(payment, outcome)
        }
    };
    let payload = registry::serialize(erp, &doc)?;
    let name = if payload.content_type == "application/xml" { "payload.xml" } else { "payload.json" };
    files.insert(0, file(name.into(), payload.body));
    Ok(files)
}

/// Bills as an export would find them if everything the remittance names was exported:
/// open for the amount applied, in the payment's currency, with a placeholder ERP id.
fn assumed_open_bills(payment: &Payment) -> Vec<OpenBill> {
    payment
        .applications
        .iter()
        .map(|a| OpenBill {
            erp_id: format!("<ERP id of {}>", a.invoice_number),
            number: a.invoice_number.clone(),
            balance: a.amount,
            currency: payment.currency.clone(),
            due_date: payment.date,
        })
        .collect()
}

fn document<T: DeserializeOwned>(source: Source, kind: DocKind, sample: fn() -> T) -> Result<T, PreviewError> {
    match source {
        Source::Sample => Ok(sample()),
        Source::Json(v) => {
            serde_json::from_value(v).map_err(|source| PreviewError::Parse { kind: kind.name(), source })
        }
    }
}

fn file(name: String, bytes: Vec<u8>) -> PreviewFile {
    PreviewFile { name, bytes }
}

fn read_json(path: &Path) -> Result<serde_json::Value, PreviewError> {
    let text = std::fs::read_to_string(path).map_err(|source| PreviewError::Read { path: path.into(), source })?;
    serde_json::from_str(&text).map_err(|source| PreviewError::NotJson { path: path.into(), source })
}

/// Writes `files` into `dir`, creating it; returns the paths written.
pub fn write(dir: &Path, files: &[PreviewFile]) -> Result<Vec<PathBuf>, PreviewError> {
    let fail = |path: &Path| {
        let path = path.to_owned();
        move |source| PreviewError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(fail(dir))?;
    let mut written = Vec::with_capacity(files.len());
    for f in files {
        let path = dir.join(&f.name);
        std::fs::write(&path, &f.bytes).map_err(fail(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// `erpsync preview`: reads the inputs, previews, writes the files.
pub fn run(args: &PreviewArgs) -> Result<Vec<PathBuf>, PreviewError> {
    let source = match &args.file {
        Some(path) => Source::Json(read_json(path)?),
        None => Source::Sample,
    };
    let open_bills = args.open_bills.as_deref().map(read_json).transpose()?;
    let files = preview(args.erp, args.doc, source, open_bills)?;
    write(&args.out, &files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(files: &[PreviewFile]) -> Vec<&str> {
        files.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn every_erp_previews_the_sample_invoice() {
        for erp in ErpKind::ALL {
            let files = preview(erp, DocKind::Invoice, Source::Sample, None).unwrap();
            let body = if erp == ErpKind::SageIntacct { "payload.xml" } else { "payload.json" };
            let pdf = if erp == ErpKind::Netsuite { NOT_ATTACHED } else { "RE-2026-000117.pdf" };
            let mut expected = vec![body, pdf, "bills.csv"];
            if erp == ErpKind::QuickbooksOnline {
                expected.insert(2, "attachable.json");
            }
            assert_eq!(names(&files), expected, "{}", erp.as_str());
            if erp == ErpKind::Netsuite {
                let why = String::from_utf8(files[1].bytes.clone()).unwrap();
                assert!(why.starts_with("not attached: NetSuite's REST record API has no file upload"), "{why}");
            } else {
                assert!(files[1].bytes.starts_with(b"%PDF-"));
            }
        }
    }

    #[test]
    fn a_payment_without_open_bills_assumes_the_remittance_was_exported() {
        let mut p = samples::payment();
        p.applications.truncate(1);
        p.amount = p.applications[0].amount;
        let src = Source::Json(serde_json::to_value(&p).unwrap());
        let files = preview(ErpKind::GenericRest, DocKind::Payment, src, None).unwrap();
        assert_eq!(names(&files), ["payload.json", "matching.json", "payments.csv"]);
        let body: serde_json::Value = serde_json::from_slice(&files[0].bytes).unwrap();
        assert_eq!(body["applied_to"][0]["bill_id"], "<ERP id of RE-2026-000117>");
    }

    #[test]
    fn every_problem_is_reported() {
        let mut inv = samples::invoice();
        inv.currency = "EURO".into();
        inv.lines[0].amount = rust_decimal::Decimal::ONE;
        let src = Source::Json(serde_json::to_value(&inv).unwrap());
        let e = preview(ErpKind::Xero, DocKind::Invoice, src, None).unwrap_err();
        assert!(e.is_document_problem());
        let problems = e.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("currency: unknown currency code"), "{problems:?}");
        assert!(problems[1].starts_with("lines[0].amount: "), "{problems:?}");
        assert!(problems[2].starts_with("total: "), "{problems:?}");
    }
}
