//! The invoice PDF attached to a bill, so the ERP user sees the document that was
//! approved: a header with vendor and numbers on every page, a table of lines with
//! wrapped descriptions, tax and total, the memo, and "page i of n". Drawn with printpdf
//! and embedded, subset fonts (see `fonts`), because the base PDF fonts cannot show a
//! vendor called "Ōsaka 株式会社".

mod fonts;
#[cfg(test)]
mod tests;

use super::RenderError;
use crate::domain::Invoice;
use fonts::{Face, Fonts};
use printpdf::{
    FontId, Line, LinePoint, Mm, Op, PdfDocument, PdfFont, PdfFontHandle, PdfPage, PdfSaveOptions, Point, Pt, TextItem,
    TextMatrix,
};
use rust_decimal::Decimal;
use std::collections::BTreeSet;

// A4 in points, and the layout grid.
const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const LEFT: f32 = 50.0;
const RIGHT: f32 = PAGE_W - 50.0;
const TABLE_TOP: f32 = PAGE_H - 118.0;
const BOTTOM: f32 = 70.0;
const BODY: f32 = 9.0;
const LEADING: f32 = 11.5;
const DESC_WIDTH: f32 = 230.0;
/// Right edges of the numeric columns: quantity, unit price, amount, tax.
const COLS: [f32; 4] = [330.0, 405.0, 475.0, RIGHT];

/// Renders `inv` as a PDF document.
pub fn invoice_pdf(inv: &Invoice) -> Result<Vec<u8>, RenderError> {
    let fonts = fonts::get().map_err(RenderError::Pdf)?;
    let doc = PdfDocument::new(&format!("Invoice {}", inv.number));
    let mut w = Writer {
        fonts,
        doc,
        ids: [FontId::new(), FontId::new()],
        used: [BTreeSet::new(), BTreeSet::new()],
        pages: Vec::new(),
        ops: Vec::new(),
        y: 0.0,
    };
    w.new_page(inv);
    for line in &inv.lines {
        let desc = fonts.wrap(&line.description, BODY, DESC_WIDTH);
        let height = desc.len() as f32 * LEADING + 3.0;
        if w.y - height < BOTTOM {
            w.new_page(inv);
        }
        let y = w.y;
        let cells = [line.quantity, line.unit_price, line.amount, line.tax_amount];
        for (right, value) in COLS.iter().zip(cells) {
            w.text_right(*right, y, BODY, &value.to_string());
        }
        for (i, d) in desc.iter().enumerate() {
            w.text(LEFT, y - i as f32 * LEADING, BODY, d);
        }
        w.y -= height;
    }
    w.totals(inv);
    if let Some(memo) = &inv.memo {
        w.memo(inv, memo);
    }
    w.finish(inv)
}

struct Writer {
    fonts: &'static Fonts,
    doc: PdfDocument,
    /// Font ids of the primary and fallback faces; the fonts are added once the
    /// characters each draws are known, as subsets.
    ids: [FontId; 2],
    used: [BTreeSet<char>; 2],
    pages: Vec<Vec<Op>>,
    ops: Vec<Op>,
    /// Baseline of the next row.
    y: f32,
}

impl Writer {
    fn text(&mut self, x: f32, y: f32, size: f32, s: &str) {
        let mut cx = x;
        self.ops.push(Op::StartTextSection);
        for (face, run) in self.fonts.runs(s) {
            let slot = face as usize;
            self.used[slot].extend(run.chars());
            let id = self.ids[slot].clone();
            self.ops.push(Op::SetFont { font: PdfFontHandle::External(id), size: Pt(size) });
            self.ops.push(Op::SetTextMatrix { matrix: TextMatrix::Translate(Pt(cx), Pt(y)) });
            self.ops.push(Op::ShowText { items: vec![TextItem::Text(run.to_owned())] });
            cx += self.fonts.width(run, size);
        }
        self.ops.push(Op::EndTextSection);
    }

    fn text_right(&mut self, right: f32, y: f32, size: f32, s: &str) {
        let width = self.fonts.width(s, size);
        self.text(right - width, y, size, s);
    }

    fn rule(&mut self, y: f32) {
        let point = |x| LinePoint { p: Point { x: Pt(x), y: Pt(y) }, bezier: false };
        self.ops.push(Op::SetOutlineThickness { pt: Pt(0.5) });
        self.ops.push(Op::DrawLine { line: Line { points: vec![point(LEFT), point(RIGHT)], is_closed: false } });
    }

    /// Starts a page: the invoice header and the table's column titles.
    fn new_page(&mut self, inv: &Invoice) {
        if !self.ops.is_empty() || !self.pages.is_empty() {
            self.pages.push(std::mem::take(&mut self.ops));
        }
        let top = PAGE_H - 50.0;
        self.text(LEFT, top - 12.0, 16.0, &format!("Invoice {}", inv.number));
        self.text(LEFT, top - 32.0, 11.0, &format!("{} ({})", inv.vendor.name, inv.vendor.id));
        let mut facts = format!("Issued {}   Due {}   Currency {}", inv.issue_date, inv.due_date, inv.currency);
        if let Some(po) = &inv.purchase_order {
            facts.push_str(&format!("   PO {po}"));
        }
        self.text(LEFT, top - 48.0, BODY, &facts);
        let head = TABLE_TOP + 6.0;
        self.text(LEFT, head, BODY, "Description");
        for (right, title) in COLS.iter().zip(["Qty", "Unit price", "Amount", "Tax"]) {
            self.text_right(*right, head, BODY, title);
        }
        self.rule(head - 4.0);
        self.y = TABLE_TOP - 12.0;
    }

    fn totals(&mut self, inv: &Invoice) {
        if self.y - 4.0 * LEADING * 1.3 < BOTTOM {
            self.new_page(inv);
        }
        self.rule(self.y + LEADING - 4.0);
        let rows: [(&str, Decimal, f32); 3] =
            [("Subtotal", inv.subtotal(), BODY), ("Tax", inv.tax_total(), BODY), ("Total", inv.total, 11.0)];
        for (label, value, size) in rows {
            self.y -= 4.0;
            let y = self.y;
            self.text_right(COLS[1], y, size, label);
            self.text_right(RIGHT, y, size, &format!("{} {value}", inv.currency));
            self.y -= LEADING * 1.1;
        }
    }

    fn memo(&mut self, inv: &Invoice, memo: &str) {
        self.y -= LEADING;
        let lines = self.fonts.wrap(memo, BODY, RIGHT - LEFT);
        for (i, line) in std::iter::once("Memo:".to_owned()).chain(lines).enumerate() {
            if self.y < BOTTOM {
                self.new_page(inv);
            }
            let y = self.y;
            self.text(LEFT, y, BODY, &line);
            self.y -= if i == 0 { LEADING * 1.2 } else { LEADING };
        }
    }

    /// Adds "page i of n" to every page and writes the file.
    fn finish(mut self, inv: &Invoice) -> Result<Vec<u8>, RenderError> {
        self.pages.push(std::mem::take(&mut self.ops));
        let n = self.pages.len();
        let pages = std::mem::take(&mut self.pages);
        let mut out = Vec::with_capacity(n);
        for (i, ops) in pages.into_iter().enumerate() {
            self.ops = ops;
            let footer = format!("Invoice {} · {} · page {} of {n}", inv.number, inv.source_id, i + 1);
            self.text(LEFT, 40.0, 7.5, &footer);
            out.push(PdfPage::new(Mm(210.0), Mm(297.0), std::mem::take(&mut self.ops)));
        }
        // Most invoices never use the CJK face, and then it is not embedded at all.
        let mut shared = None;
        for face in [Face::Primary, Face::Fallback] {
            let slot = face as usize;
            if self.used[slot].is_empty() {
                continue;
            }
            let font = match face {
                Face::Primary => {
                    let common = fonts::common().map_err(RenderError::Pdf)?;
                    if common.covers(self.fonts, &self.used[slot]) {
                        shared = Some(common);
                        common.font.clone()
                    } else {
                        self.fonts.subset(face, &self.used[slot]).map_err(RenderError::Pdf)?
                    }
                }
                Face::Fallback => self.fonts.subset(face, &self.used[slot]).map_err(RenderError::Pdf)?,
            };
            self.doc.resources.fonts.map.insert(self.ids[slot].clone(), PdfFont::new(font));
        }
        let mut warnings = Vec::new();
        let opts = PdfSaveOptions { subset_fonts: true, ..Default::default() };
        let mut pdf = self.doc.with_pages(out).to_lopdf_document(&opts, &mut warnings);
        if let Some(common) = shared {
            embed_deflated(&mut pdf, common);
        }
        // What printpdf's `save` does: deflate every stream (the shared font is already),
        // then write.
        pdf.compress();
        let mut bytes = Vec::new();
        pdf.save_to(&mut bytes).map_err(|e| RenderError::Pdf(e.to_string()))?;
        if bytes.is_empty() {
            return Err(RenderError::Pdf(format!("printpdf produced no output: {warnings:?}")));
        }
        Ok(bytes)
    }
}

/// Swaps the shared subset's font stream for its deflated bytes, so the PDF does not
/// deflate the same 100 kB again on every save (lopdf skips a stream that has a filter).
fn embed_deflated(pdf: &mut lopdf::Document, common: &fonts::CommonSubset) {
    let program = &common.font.original_bytes;
    for object in pdf.objects.values_mut() {
        if let lopdf::Object::Stream(stream) = object
            && stream.content.len() == program.len()
            && stream.content == *program
        {
            stream.dict.set("Filter", "FlateDecode");
            stream.set_content(common.deflated.clone());
        }
    }
}
