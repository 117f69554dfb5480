//! The Intacct dialect's XML: requests read into an owned tree, answers written as the
//! gateway writes them (`sage_intacct.md` beside this file has the shapes and sources).

use std::fmt::Write as _;

/// An element, owned: its name, attributes, text and child elements.
#[derive(Debug, Clone, Default)]
pub(super) struct El {
    pub(super) name: String,
    pub(super) attrs: Vec<(String, String)>,
    pub(super) text: String,
    pub(super) children: Vec<El>,
}

impl El {
    pub(super) fn child(&self, name: &str) -> Option<&El> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The trimmed text of the child `name`, empty if there is none.
    pub(super) fn text_of(&self, name: &str) -> &str {
        self.child(name).map(|c| c.text.trim()).unwrap_or("")
    }

    pub(super) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn from_node(n: roxmltree::Node) -> El {
        El {
            name: n.tag_name().name().to_owned(),
            attrs: n.attributes().map(|a| (a.name().to_owned(), a.value().to_owned())).collect(),
            text: n.children().filter(|c| c.is_text()).filter_map(|c| c.text()).collect(),
            children: n.children().filter(|c| c.is_element()).map(El::from_node).collect(),
        }
    }
}

/// How a request's operation is authenticated.
pub(super) enum ReqAuth {
    Login { user_id: String, company_id: String, password: String, location_id: Option<String> },
    Session(String),
    Missing,
}

/// A gateway request.
pub(super) struct Req {
    pub(super) sender_id: String,
    pub(super) password: String,
    pub(super) control_id: String,
    /// `<uniqueid>`: Sage's page calls `true` the default; Sage's SDKs always send it.
    pub(super) unique: bool,
    pub(super) auth: ReqAuth,
    pub(super) functions: Vec<El>,
}

/// Reads a request; `Err` is the XML or schema error the gateway reports.
pub(super) fn request(body: &str) -> Result<Req, String> {
    let doc = roxmltree::Document::parse(body).map_err(|e| format!("XML Parse error: {e}"))?;
    let root = El::from_node(doc.root_element());
    if root.name != "request" {
        return Err(format!("XML Parse schema error: element {} is not request", root.name));
    }
    let control = root.child("control").ok_or("XML Parse schema error: control is missing")?;
    let op = root.child("operation").ok_or("XML Parse schema error: operation is missing")?;
    let auth = match op.child("authentication") {
        Some(a) => match (a.child("login"), a.child("sessionid")) {
            (Some(l), _) => ReqAuth::Login {
                user_id: l.text_of("userid").to_owned(),
                company_id: l.text_of("companyid").to_owned(),
                password: l.child("password").map(|p| p.text.clone()).unwrap_or_default(),
                location_id: l.child("locationid").map(|x| x.text.trim().to_owned()).filter(|x| !x.is_empty()),
            },
            (None, Some(s)) => ReqAuth::Session(s.text.trim().to_owned()),
            (None, None) => ReqAuth::Missing,
        },
        None => ReqAuth::Missing,
    };
    let functions = op.child("content").map(|c| c.children.clone()).unwrap_or_default();
    Ok(Req {
        sender_id: control.text_of("senderid").to_owned(),
        password: control.child("password").map(|p| p.text.clone()).unwrap_or_default(),
        control_id: control.text_of("controlid").to_owned(),
        unique: control.text_of("uniqueid") != "false",
        auth,
        functions,
    })
}

pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#039;"),
            c => out.push(c),
        }
    }
    out
}

/// One `<error>`: its errorno, description and description2.
pub(super) struct Error<'a>(pub(super) &'a str, pub(super) &'a str, pub(super) String);

fn errormessage(x: &mut String, errors: &[Error]) {
    x.push_str("<errormessage>");
    for Error(no, d, d2) in errors {
        let _ = write!(
            x,
            "<error><errorno>{}</errorno><description>{}</description><description2>{}</description2>\
             <correction></correction></error>",
            escape(no),
            escape(d),
            escape(d2)
        );
    }
    x.push_str("</errormessage>");
}

fn control(x: &mut String, status: &str, sender: &str, control_id: &str, unique: bool) {
    let _ = write!(
        x,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response><control><status>{status}</status><senderid>{}</senderid>\
         <controlid>{}</controlid><uniqueid>{unique}</uniqueid><dtdversion>3.0</dtdversion></control>",
        escape(sender),
        escape(control_id)
    );
}

/// The control block failed: no operation ran. `req` is absent when the request could not
/// be read (the gateway then echoes nothing).
pub(super) fn control_failure(req: Option<&Req>, errors: &[Error]) -> String {
    let mut x = String::new();
    match req {
        Some(r) => control(&mut x, "failure", &r.sender_id, &r.control_id, r.unique),
        None => x.push_str(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response><control><status>failure</status></control>",
        ),
    }
    errormessage(&mut x, errors);
    x.push_str("</response>");
    x
}

/// The authentication block failed: no function ran.
pub(super) fn auth_failure(req: &Req, user: &str, company: &str, errors: &[Error]) -> String {
    let mut x = String::new();
    control(&mut x, "success", &req.sender_id, &req.control_id, req.unique);
    let _ = write!(
        x,
        "<operation><authentication><status>failure</status><userid>{}</userid><companyid>{}</companyid>\
         <locationid></locationid></authentication>",
        escape(user),
        escape(company)
    );
    errormessage(&mut x, errors);
    x.push_str("</operation></response>");
    x
}

/// Who is signed in, and the session's start and timeout (RFC 3339 with an offset).
pub(super) struct Signed {
    pub(super) user: String,
    pub(super) company: String,
    pub(super) location: String,
    pub(super) timestamp: String,
    pub(super) timeout: String,
}

/// A successful operation: the functions' `<result>`s.
pub(super) fn results(req: &Req, s: &Signed, results: &[String]) -> String {
    let mut x = String::new();
    control(&mut x, "success", &req.sender_id, &req.control_id, req.unique);
    let _ = write!(
        x,
        "<operation><authentication><status>success</status><userid>{}</userid><companyid>{}</companyid>\
         <locationid>{}</locationid><sessiontimestamp>{}</sessiontimestamp><sessiontimeout>{}</sessiontimeout>\
         </authentication>",
        escape(&s.user),
        escape(&s.company),
        escape(&s.location),
        s.timestamp,
        s.timeout
    );
    for r in results {
        x.push_str(r);
    }
    x.push_str("</operation></response>");
    x
}

/// A function's success, `data` its `<data>` element (or empty).
pub(super) fn result_ok(function: &str, controlid: &str, data: &str) -> String {
    format!(
        "<result><status>success</status><function>{}</function><controlid>{}</controlid>{data}</result>",
        escape(function),
        escape(controlid)
    )
}

/// A function's failure (`aborted` when its transaction was rolled back).
pub(super) fn result_failed(status: &str, function: &str, controlid: &str, errors: &[Error]) -> String {
    let mut x = format!(
        "<result><status>{status}</status><function>{}</function><controlid>{}</controlid>",
        escape(function),
        escape(controlid)
    );
    errormessage(&mut x, errors);
    x.push_str("</result>");
    x
}

/// `<data>` holding records of `tag`, each a list of fields.
pub(super) fn data(listtype: &str, tag: &str, records: &[Vec<(&str, String)>], total: usize) -> String {
    let mut x = format!(
        "<data listtype=\"{listtype}\" count=\"{}\" totalcount=\"{total}\" numremaining=\"{}\" resultId=\"\">",
        records.len(),
        total.saturating_sub(records.len())
    );
    for r in records {
        let _ = write!(x, "<{tag}>");
        for (k, v) in r {
            let _ = write!(x, "<{k}>{}</{k}>", escape(v));
        }
        let _ = write!(x, "</{tag}>");
    }
    x.push_str("</data>");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_request_is_read_with_its_control_block_and_functions() {
        let body = "<request><control><senderid>s</senderid><password> p </password><controlid>c</controlid>\
                    <uniqueid>true</uniqueid></control><operation><authentication><sessionid> x.. </sessionid>\
                    </authentication><content><function controlid=\"f\"><getAPISession/></function></content>\
                    </operation></request>";
        let r = request(body).unwrap();
        assert_eq!((r.sender_id.as_str(), r.password.as_str(), r.unique), ("s", " p ", true));
        assert!(matches!(r.auth, ReqAuth::Session(ref id) if id == "x.."));
        assert_eq!((r.functions.len(), r.functions[0].attr("controlid")), (1, Some("f")));
        assert!(request("<response/>").is_err() && request("<request/>").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_request_reader(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = request(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn cut_requests_never_panic_the_request_reader(cut in 0usize..400) {
            let body = "<request><control><senderid>s</senderid></control><operation><authentication><login>\
                        <userid>u</userid></login></authentication><content><function controlid=\"f\"><create>\
                        <APBILL/></create></function></content></operation></request>";
            let _ = request(&body[..cut.min(body.len())]);
        }
    }
}
