//! A minimal XML writer for the Sage Intacct payloads. Intacct needs elements and text,
//! nothing else, so escaping is done here rather than by pulling in an XML crate; the
//! golden tests parse the output with a strict parser to prove it is well-formed.

use std::fmt::Write as _;

pub(super) struct XmlWriter {
    out: String,
    open: Vec<&'static str>,
}

impl XmlWriter {
    pub(super) fn new() -> Self {
        Self { out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"), open: Vec::new() }
    }

    fn indent(&mut self) {
        for _ in 0..self.open.len() {
            self.out.push_str("  ");
        }
    }

    pub(super) fn open(&mut self, name: &'static str, attrs: &[(&str, &str)]) -> &mut Self {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            let _ = write!(self.out, " {k}=\"{}\"", escape(v));
        }
        self.out.push_str(">\n");
        self.open.push(name);
        self
    }

    pub(super) fn close(&mut self) -> &mut Self {
        let name = self.open.pop().expect("close() matches an open()");
        self.indent();
        let _ = writeln!(self.out, "</{name}>");
        self
    }

    /// `<name>text</name>`, text escaped.
    pub(super) fn leaf(&mut self, name: &str, text: impl std::fmt::Display) -> &mut Self {
        self.indent();
        let _ = writeln!(self.out, "<{name}>{}</{name}>", escape(&text.to_string()));
        self
    }

    pub(super) fn leaf_opt(&mut self, name: &str, text: Option<&str>) -> &mut Self {
        if let Some(t) = text {
            self.leaf(name, t);
        }
        self
    }

    pub(super) fn finish(self) -> String {
        assert!(self.open.is_empty(), "unclosed elements: {:?}", self.open);
        self.out
    }
}

/// Escapes markup characters and drops characters XML 1.0 cannot carry at all (control
/// characters other than tab/newline/carriage return, U+FFFE, U+FFFF), which would make
/// the whole request unparseable.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_illegal_characters() {
        assert_eq!(escape("a<b>&\"c\"'d'\u{1}\u{FFFF}株"), "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;  株");
        let mut w = XmlWriter::new();
        w.open("a", &[("id", "x&\"y")]).leaf("b", "</a>").close();
        let xml = w.finish();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let b = doc.root_element().first_element_child().unwrap();
        assert_eq!(b.text(), Some("</a>"));
        assert_eq!(doc.root_element().attribute("id"), Some("x&\"y"));
    }
}
