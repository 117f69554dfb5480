//! The embedded fonts and text measurement.
//!
//! DejaVu Sans covers Latin, Greek, Cyrillic and most symbols; Droid Sans Fallback covers
//! CJK. Each character is drawn with the first font that has it, so "Ōsaka 株式会社"
//! comes out right instead of as empty boxes. Fonts are parsed once per process.
//! Licences: see `../fonts/README.md`.
//!
//! Building a subset costs a few milliseconds, several times the rest of an invoice PDF,
//! so nearly every PDF shares one subset built once per process: DejaVu's glyphs for
//! Latin, Latin-1, Latin Extended-A, general punctuation and currency symbols ([`common`]),
//! kept both parsed and deflated. Only a document with characters outside it (Greek,
//! Cyrillic, CJK…) gets subsets of its own.

use printpdf::ParsedFont;
use std::collections::BTreeSet;
use std::sync::OnceLock;

static PRIMARY_TTF: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
static FALLBACK_TTF: &[u8] = include_bytes!("../fonts/DroidSansFallback.ttf");

/// Which embedded font draws a run of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    Primary = 0,
    Fallback = 1,
}

pub struct Fonts {
    pub primary: ParsedFont,
    pub fallback: ParsedFont,
}

/// The parsed fonts, or why they could not be parsed (which would be a build defect).
pub fn get() -> Result<&'static Fonts, String> {
    static FONTS: OnceLock<Result<Fonts, String>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let parse = |bytes: &[u8], name: &str| {
                ParsedFont::from_bytes(bytes, 0, &mut Vec::new())
                    .ok_or_else(|| format!("cannot parse embedded font {name}"))
            };
            Ok(Fonts {
                primary: parse(PRIMARY_TTF, "DejaVuSans")?,
                fallback: parse(FALLBACK_TTF, "DroidSansFallback")?,
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The ranges of the shared subset: what the invoices of a European or American AP
/// department are written in.
const COMMON_RANGES: [(char, char); 4] = [
    // Basic Latin and Latin-1 printable characters.
    (' ', '~'),
    // Latin-1 Supplement and Latin Extended-A (ß, é, Ø, Ō, ł, Œ…).
    ('\u{a0}', '\u{17f}'),
    // General punctuation: dashes, quotes, bullets, ellipsis, per mille.
    ('\u{2010}', '\u{205e}'),
    // Currency symbols (€, ₹, ₺…).
    ('\u{20a0}', '\u{20c0}'),
];

/// The primary face's shared subset, ready to embed.
pub struct CommonSubset {
    /// The subset, parsed: what printpdf needs to encode text and write widths.
    pub font: ParsedFont,
    /// The subset's bytes deflated (zlib), as the PDF's font stream carries them.
    pub deflated: Vec<u8>,
}

impl CommonSubset {
    /// Whether every one of `chars` is drawn from this subset (characters the primary
    /// face has no glyph for are drawn as .notdef from any subset alike).
    pub fn covers(&self, fonts: &Fonts, chars: &BTreeSet<char>) -> bool {
        chars.iter().all(|&c| {
            self.font.lookup_glyph_index(c as u32).is_some() || fonts.primary.lookup_glyph_index(c as u32).is_none()
        })
    }
}

/// The shared subset, built on first use.
pub fn common() -> Result<&'static CommonSubset, String> {
    static COMMON: OnceLock<Result<CommonSubset, String>> = OnceLock::new();
    COMMON
        .get_or_init(|| {
            let fonts = get()?;
            let chars: BTreeSet<char> = COMMON_RANGES.iter().flat_map(|&(a, b)| a..=b).collect();
            let font = fonts.subset(Face::Primary, &chars)?;
            let deflated = deflate(&font.original_bytes).map_err(|e| format!("cannot deflate the font subset: {e}"))?;
            Ok(CommonSubset { font, deflated })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// zlib at the best level, as lopdf deflates every other stream of the PDF.
fn deflate(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(bytes)?;
    z.finish()
}

impl Fonts {
    /// A font holding only the glyphs for `chars`, to embed in one document.
    ///
    /// printpdf subsets fonts only with its heavy `text_layout` feature and otherwise
    /// embeds (and deflates) the whole font file on every save, megabytes and hundreds of
    /// milliseconds per PDF with the CJK font. Subsetting here keeps a PDF at tens of
    /// kilobytes and a few milliseconds.
    pub fn subset(&self, face: Face, chars: &BTreeSet<char>) -> Result<ParsedFont, String> {
        use allsorts::binary::read::ReadScope;
        use allsorts::font_data::FontData;
        use allsorts::subset::{CmapTarget, SubsetProfile, subset};
        let (bytes, font) = match face {
            Face::Primary => (PRIMARY_TTF, &self.primary),
            Face::Fallback => (FALLBACK_TTF, &self.fallback),
        };
        // Glyph 0 (.notdef) must come first; the rest sorted and unique.
        let glyphs: BTreeSet<u16> = chars.iter().filter_map(|&c| font.lookup_glyph_index(c as u32)).collect();
        let ids: Vec<u16> = std::iter::once(0).chain(glyphs.into_iter().filter(|&g| g != 0)).collect();
        let data = ReadScope::new(bytes).read::<FontData<'_>>().map_err(|e| e.to_string())?;
        let provider = data.table_provider(0).map_err(|e| e.to_string())?;
        let sub = subset(&provider, &ids, &SubsetProfile::Pdf, CmapTarget::Unicode).map_err(|e| e.to_string())?;
        ParsedFont::from_bytes(&sub, 0, &mut Vec::new()).ok_or_else(|| "cannot parse the font subset".to_owned())
    }

    pub fn font(&self, face: Face) -> &ParsedFont {
        match face {
            Face::Primary => &self.primary,
            Face::Fallback => &self.fallback,
        }
    }

    /// The face that draws `c`: the primary one when it has the glyph.
    pub fn face_for(&self, c: char) -> Face {
        if c.is_ascii() || self.primary.lookup_glyph_index(c as u32).is_some() { Face::Primary } else { Face::Fallback }
    }

    /// Advance width of `c` in points at `size`; characters no font has count as a space.
    pub fn char_width(&self, c: char, size: f32) -> f32 {
        let font = self.font(self.face_for(c));
        let units = font
            .lookup_glyph_index(c as u32)
            .and_then(|gid| font.get_glyph_width(gid))
            .or_else(|| self.primary.lookup_glyph_index(' ' as u32).and_then(|g| self.primary.get_glyph_width(g)))
            .unwrap_or(0);
        f32::from(units) * size / f32::from(font.units_per_em.max(1))
    }

    pub fn width(&self, text: &str, size: f32) -> f32 {
        text.chars().map(|c| self.char_width(c, size)).sum()
    }

    /// Splits `text` into runs drawn by one face each.
    pub fn runs<'t>(&self, text: &'t str) -> Vec<(Face, &'t str)> {
        let mut out: Vec<(Face, &'t str)> = Vec::new();
        let mut start = 0;
        let mut current: Option<Face> = None;
        for (i, c) in text.char_indices() {
            let face = self.face_for(c);
            if current.is_some_and(|f| f != face) {
                out.push((current.unwrap_or(Face::Primary), &text[start..i]));
                start = i;
            }
            current = Some(face);
        }
        if let Some(face) = current {
            out.push((face, &text[start..]));
        }
        out
    }

    /// Breaks `text` into lines no wider than `max` points, at spaces where possible.
    pub fn wrap(&self, text: &str, size: f32, max: f32) -> Vec<String> {
        let mut lines = Vec::new();
        let mut line = String::new();
        let mut width = 0.0;
        let space = self.char_width(' ', size);
        for word in text.split_whitespace() {
            let w = self.width(word, size);
            if !line.is_empty() && width + space + w <= max {
                line.push(' ');
                line.push_str(word);
                width += space + w;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            // A word wider than the column is cut where it overflows (CJK has no spaces).
            width = 0.0;
            for c in word.chars() {
                let cw = self.char_width(c, size);
                if width + cw > max && !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                    width = 0.0;
                }
                line.push(c);
                width += cw;
            }
        }
        if !line.is_empty() || lines.is_empty() {
            lines.push(line);
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjk_falls_back_and_latin_stays_primary() {
        let f = get().unwrap();
        let runs = f.runs("Ōsaka 株式会社!");
        assert_eq!(runs, [(Face::Primary, "Ōsaka "), (Face::Fallback, "株式会社"), (Face::Primary, "!")]);
        assert!(f.width("MMMM", 10.0) > f.width("iiii", 10.0));
    }

    #[test]
    fn wraps_to_the_width() {
        let f = get().unwrap();
        let long = "word ".repeat(60);
        let lines = f.wrap(&long, 9.0, 100.0);
        assert!(lines.len() > 5);
        assert!(lines.iter().all(|l| f.width(l, 9.0) <= 100.0));
        let cjk = f.wrap(&"株".repeat(50), 9.0, 100.0);
        assert!(cjk.len() > 2 && cjk.iter().all(|l| f.width(l, 9.0) <= 100.0));
    }
}
