//! Sage Intacct's XML gateway on the wire, without HTTP: the request envelope
//! (`<request><control>…<operation><authentication>…<content>`), the functions the client
//! adds to the serializer's (`getAPISession`, `readByQuery`, `create_supdoc`, `update`),
//! and the parser of every answer into owned values.
//!
//! Shapes from Sage's "XML Requests" and "Error Handling" pages (developer.intacct.com/
//! web-services/requests, …/error-handling) and the answers in Sage's own SDK tests
//! (intacct/intacct-sdk-php `test/Intacct/Xml/OnlineResponseTest.php`,
//! `SessionProviderTest.php`, `Xml/Request/ControlBlockTest.php`): a failure is reported
//! at the level it happened — the control block (sender credentials, gateway limits: no
//! operation ran), the authentication block (no function ran), or a function's own
//! `<result>` (only that function failed) — each with `<errormessage><error><errorno>`,
//! `<description>`, `<description2>`, `<correction>`.

use chrono::{DateTime, FixedOffset};
use std::fmt::Write as _;

/// One `<error>` of an `<errormessage>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GwError {
    pub errorno: String,
    /// `description`, `description2` and `correction`, the non-empty ones joined.
    pub message: String,
}

/// A record of a function's `<data>` (or its `<api>` element): its leaf fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub tag: String,
    pub fields: Vec<(String, String)>,
}

impl Record {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A function's `<result>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FnResult {
    /// `success`, `failure` or `aborted` (a transaction rolled back).
    pub status: String,
    pub function: String,
    pub controlid: String,
    pub errors: Vec<GwError>,
    pub records: Vec<Record>,
}

impl FnResult {
    pub fn ok(&self) -> bool {
        self.status == "success"
    }
}

/// What the gateway answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The control block failed: no operation ran.
    Control(Vec<GwError>),
    /// The authentication block failed: no function ran.
    Authentication(Vec<GwError>),
    /// Every function's result, in order; the session's lifetime from the authentication
    /// block (`sessiontimeout` less `sessiontimestamp`: both Intacct's clock, so ours
    /// being off does not matter).
    Results { session_lifetime: Option<std::time::Duration>, results: Vec<FnResult> },
}

/// Parses a gateway answer. `Err` says why it is no answer at all (not XML, no
/// `<response>`, no status): never a panic, whatever the bytes.
pub fn parse(body: &str) -> Result<Answer, String> {
    let doc = roxmltree::Document::parse(body).map_err(|e| format!("not XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "response" {
        return Err(format!("<{}> is not a gateway <response>", root.tag_name().name()));
    }
    let control = child(root, "control").ok_or("the answer has no <control>")?;
    let control_status = text_of(control, "status");
    if control_status != "success" {
        if control_status == "failure" {
            return Ok(Answer::Control(errors(root)));
        }
        return Err(format!("control status {control_status:?}"));
    }
    let op = child(root, "operation").ok_or("the answer has no <operation>")?;
    let auth = child(op, "authentication").ok_or("the answer has no <authentication>")?;
    match text_of(auth, "status").as_str() {
        "success" => {}
        "failure" => {
            // Sage's answers put the errormessage beside the authentication block, some
            // inside it.
            let mut errs = errors(op);
            errs.extend(errors(auth));
            return Ok(Answer::Authentication(errs));
        }
        other => return Err(format!("authentication status {other:?}")),
    }
    let at = |tag: &str| DateTime::<FixedOffset>::parse_from_rfc3339(text_of(auth, tag).trim()).ok();
    let session_lifetime = match (at("sessiontimestamp"), at("sessiontimeout")) {
        (Some(from), Some(to)) => (to - from).to_std().ok(),
        _ => None,
    };
    let results = op.children().filter(|n| n.has_tag_name("result")).map(result).collect::<Vec<_>>();
    if results.is_empty() {
        return Err("the operation holds no <result>".into());
    }
    Ok(Answer::Results { session_lifetime, results })
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(name))
}

fn text_of(n: roxmltree::Node, name: &str) -> String {
    child(n, name).map(|c| c.text().unwrap_or("").trim().to_owned()).unwrap_or_default()
}

/// The `<error>`s of `n`'s `<errormessage>` children.
fn errors(n: roxmltree::Node) -> Vec<GwError> {
    n.children()
        .filter(|c| c.has_tag_name("errormessage"))
        .flat_map(|m| m.children().filter(|e| e.has_tag_name("error")))
        .map(|e| {
            let parts: Vec<String> = ["description", "description2", "correction"]
                .into_iter()
                .map(|p| text_of(e, p))
                .filter(|t| !t.is_empty())
                .collect();
            GwError { errorno: text_of(e, "errorno"), message: parts.join(" ") }
        })
        .collect()
}

fn result(n: roxmltree::Node) -> FnResult {
    let mut records = Vec::new();
    if let Some(data) = child(n, "data") {
        for rec in data.children().filter(|c| c.is_element()) {
            let fields = rec
                .children()
                .filter(|f| f.is_element())
                .map(|f| (f.tag_name().name().to_owned(), f.text().unwrap_or("").trim().to_owned()))
                .collect();
            records.push(Record { tag: rec.tag_name().name().to_owned(), fields });
        }
    }
    FnResult {
        status: text_of(n, "status"),
        function: text_of(n, "function"),
        controlid: text_of(n, "controlid"),
        errors: errors(n),
        records,
    }
}

/// Escapes text for an element or attribute, dropping what XML 1.0 cannot carry.
pub fn escape(s: &str) -> String {
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

/// How the operation is authenticated.
pub enum Auth<'a> {
    /// The company user's login, with the entity (`locationid`) of a multi-entity company.
    Login {
        user_id: &'a str,
        company_id: &'a str,
        password: &'a str,
        entity_id: Option<&'a str>,
    },
    Session(&'a str),
}

/// The request's control block: the Web Services sender, and the request's control id,
/// which with `unique` Intacct refuses to execute twice.
pub struct Control<'a> {
    pub sender_id: &'a str,
    pub sender_password: &'a str,
    pub control_id: &'a str,
    pub unique: bool,
}

/// A whole request carrying `functions` (each a `<function>` element, an XML declaration
/// before it allowed). `transaction` makes the functions all-or-nothing.
pub fn request(control: &Control, auth: &Auth, functions: &[&str], transaction: bool) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<request>\n<control>");
    let _ = writeln!(
        x,
        "<senderid>{}</senderid><password>{}</password><controlid>{}</controlid><uniqueid>{}</uniqueid>\
         <dtdversion>3.0</dtdversion><includewhitespace>false</includewhitespace></control>",
        escape(control.sender_id),
        escape(control.sender_password),
        escape(control.control_id),
        control.unique,
    );
    let _ = write!(x, "<operation transaction=\"{transaction}\"><authentication>");
    match auth {
        Auth::Login { user_id, company_id, password, entity_id } => {
            let _ = write!(
                x,
                "<login><userid>{}</userid><companyid>{}</companyid><password>{}</password>",
                escape(user_id),
                escape(company_id),
                escape(password)
            );
            if let Some(e) = entity_id {
                let _ = write!(x, "<locationid>{}</locationid>", escape(e));
            }
            x.push_str("</login>");
        }
        Auth::Session(id) => {
            let _ = write!(x, "<sessionid>{}</sessionid>", escape(id));
        }
    }
    x.push_str("</authentication>\n<content>\n");
    for f in functions {
        x.push_str(strip_declaration(f));
        x.push('\n');
    }
    x.push_str("</content>\n</operation>\n</request>\n");
    x
}

fn strip_declaration(f: &str) -> &str {
    let f = f.trim_start();
    match f.strip_prefix("<?xml").and_then(|rest| rest.split_once("?>")) {
        Some((_, body)) => body.trim_start(),
        None => f,
    }
}

/// `getAPISession`, scoped to an entity when one is named.
pub fn get_api_session(controlid: &str, entity_id: Option<&str>) -> String {
    match entity_id {
        Some(e) => format!(
            "<function controlid=\"{}\"><getAPISession><locationid>{}</locationid></getAPISession></function>",
            escape(controlid),
            escape(e)
        ),
        None => format!("<function controlid=\"{}\"><getAPISession/></function>", escape(controlid)),
    }
}

/// A value inside a `readByQuery` query's single quotes. Sage documents the quotes, not
/// how a quote inside them is escaped; a backslash is assumed (see `sage_intacct.md`).
pub fn query_literal(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

/// `readByQuery` of `object` with `fields`, at most `pagesize` records.
pub fn read_by_query(controlid: &str, object: &str, fields: &str, query: &str, pagesize: u32) -> String {
    format!(
        "<function controlid=\"{}\"><readByQuery><object>{}</object><fields>{}</fields><query>{}</query>\
         <pagesize>{pagesize}</pagesize></readByQuery></function>",
        escape(controlid),
        escape(object),
        escape(fields),
        escape(query)
    )
}

/// `create_supdoc`: an attachments record holding one file, in `folder`.
pub fn create_supdoc(controlid: &str, supdocid: &str, name: &str, folder: &str, file: &str, pdf: &[u8]) -> String {
    let stem = file.strip_suffix(".pdf").unwrap_or(file);
    format!(
        "<function controlid=\"{}\"><create_supdoc><supdocid>{}</supdocid><supdocname>{}</supdocname>\
         <supdocfoldername>{}</supdocfoldername><attachments><attachment><attachmentname>{}</attachmentname>\
         <attachmenttype>pdf</attachmenttype><attachmentdata>{}</attachmentdata></attachment></attachments>\
         </create_supdoc></function>",
        escape(controlid),
        escape(supdocid),
        escape(name),
        escape(folder),
        escape(stem),
        base64(pdf)
    )
}

/// `update` of a bill's `SUPDOCID`.
pub fn attach_supdoc(controlid: &str, bill_recordno: &str, supdocid: &str) -> String {
    format!(
        "<function controlid=\"{}\"><update><APBILL><RECORDNO>{}</RECORDNO><SUPDOCID>{}</SUPDOCID></APBILL>\
         </update></function>",
        escape(controlid),
        escape(bill_recordno),
        escape(supdocid)
    )
}

/// Standard base64 (RFC 4648 §4, padded), as `attachmentdata` carries the file.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
