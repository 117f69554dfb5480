//! The gateway's answers as Sage's SDK tests show them, parsed; and the parser fed
//! arbitrary bytes and mutated real answers: never a panic.

use super::*;
use proptest::prelude::*;

/// A session answer (intacct/intacct-sdk-php `test/Intacct/SessionProviderTest.php`).
pub(super) const SESSION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<response>
      <control>
            <status>success</status>
            <senderid>testsenderid</senderid>
            <controlid>sessionProvider</controlid>
            <uniqueid>false</uniqueid>
            <dtdversion>3.0</dtdversion>
      </control>
      <operation>
            <authentication>
                  <status>success</status>
                  <userid>testuser</userid>
                  <companyid>testcompany</companyid>
                  <locationid></locationid>
                  <sessiontimestamp>2015-12-06T15:57:08-08:00</sessiontimestamp>
                  <sessiontimeout>2015-12-07T15:57:08-08:00</sessiontimeout>
            </authentication>
            <result>
                  <status>success</status>
                  <function>getAPISession</function>
                  <controlid>func1UnitTest</controlid>
                  <data>
                        <api>
                              <sessionid>fAkESesSiOnId..</sessionid>
                              <endpoint>https://unittest.intacct.com/ia/xml/xmlgw.phtml</endpoint>
                              <locationid></locationid>
                        </api>
                  </data>
            </result>
      </operation>
</response>"#;

/// A refused sign-in (`test/Intacct/Xml/OnlineResponseTest.php`).
pub(super) const SIGN_IN_REFUSED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<response>
      <control><status>success</status><senderid>testsenderid</senderid><controlid>ControlIdHere</controlid>
            <uniqueid>false</uniqueid><dtdversion>3.0</dtdversion></control>
      <operation>
            <authentication><status>failure</status><userid>fakeuser</userid><companyid>fakecompany</companyid>
                  <locationid></locationid></authentication>
            <errormessage><error><errorno>XL03000006</errorno><description></description>
                  <description2>Sign-in information is incorrect</description2><correction></correction></error>
            </errormessage>
      </operation>
</response>"#;

/// A gateway error (Sage's "Error Handling" page).
pub(super) const GATEWAY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<response><control><status>failure</status></control>
<errormessage><error><errorno>GW-0010</errorno><description>Rate limit exceeded</description></error></errormessage>
</response>"#;

/// A refused function in a rolled-back transaction (`test/Intacct/Xml/Response/ResultTest.php`).
pub(super) const ABORTED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<response><control><status>success</status><senderid>s</senderid><controlid>c</controlid><uniqueid>false</uniqueid>
<dtdversion>3.0</dtdversion></control><operation><authentication><status>success</status><userid>u</userid>
<companyid>c</companyid><locationid></locationid><sessiontimestamp>2015-10-25T10:08:34-07:00</sessiontimestamp>
<sessiontimeout>2015-10-26T10:08:34-07:00</sessiontimeout></authentication>
<result><status>aborted</status><function>readByQuery</function><controlid>testFunctionId</controlid>
<errormessage><error><errorno>Query Failed</errorno><description></description>
<description2>Object definition VENDOR9 not found</description2><correction></correction></error>
<error><errorno>XL03000009</errorno><description></description>
<description2>The entire transaction in this operation has been rolled back due to an error.</description2>
<correction></correction></error></errormessage></result></operation></response>"#;

/// A created bill, in the shape of Sage's generic `create` answers.
pub(super) const CREATED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<response><control><status>success</status><senderid>s</senderid><controlid>c</controlid><uniqueid>true</uniqueid>
<dtdversion>3.0</dtdversion></control><operation><authentication><status>success</status><userid>u</userid>
<companyid>c</companyid><locationid></locationid><sessiontimestamp>2026-12-04T10:00:00+00:00</sessiontimestamp>
<sessiontimeout>2026-12-04T11:00:00+00:00</sessiontimeout></authentication>
<result><status>success</status><function>create</function><controlid>bill-1</controlid>
<data listtype="objects" count="1"><apbill><RECORDNO>1187</RECORDNO></apbill></data></result></operation></response>"#;

#[test]
fn a_session_answer_names_its_id_endpoint_and_timeout() {
    let Answer::Results { session_lifetime, results } = parse(SESSION).unwrap() else { panic!("not results") };
    assert_eq!(session_lifetime, Some(std::time::Duration::from_secs(86_400)));
    let api = &results[0].records[0];
    assert_eq!((api.tag.as_str(), api.get("sessionid")), ("api", Some("fAkESesSiOnId..")));
    assert_eq!(api.get("endpoint"), Some("https://unittest.intacct.com/ia/xml/xmlgw.phtml"));
    assert!(results[0].ok());
}

#[test]
fn failures_are_told_apart_by_the_level_they_happened_at() {
    let Answer::Authentication(e) = parse(SIGN_IN_REFUSED).unwrap() else { panic!("not an auth failure") };
    assert_eq!(e, [GwError { errorno: "XL03000006".into(), message: "Sign-in information is incorrect".into() }]);
    let Answer::Control(e) = parse(GATEWAY).unwrap() else { panic!("not a control failure") };
    assert_eq!(e[0].errorno, "GW-0010");
    let Answer::Results { results, .. } = parse(ABORTED).unwrap() else { panic!("not results") };
    assert_eq!((results[0].status.as_str(), results[0].errors.len()), ("aborted", 2));
    assert_eq!(results[0].errors[0].message, "Object definition VENDOR9 not found");
    let Answer::Results { results, .. } = parse(CREATED).unwrap() else { panic!("not results") };
    assert_eq!(results[0].records[0].get("RECORDNO"), Some("1187"));
    for no in ["", "<a/>", "<response/>", "<response><control><status>odd</status></control></response>"] {
        assert!(parse(no).is_err(), "{no}");
    }
}

#[test]
fn a_request_carries_the_control_block_login_and_functions() {
    let control = Control { sender_id: "s&1", sender_password: "p<", control_id: "k-1", unique: true };
    let auth = Auth::Login { user_id: "u", company_id: "c", password: "pw", entity_id: Some("E1") };
    let f = get_api_session("f1", Some("E1"));
    let body =
        request(&control, &auth, &["<?xml version=\"1.0\"?>\n<function controlid=\"x\"><a/></function>", &f], true);
    let doc = roxmltree::Document::parse(&body).unwrap();
    let text = |tag: &str| doc.descendants().find(|n| n.has_tag_name(tag)).and_then(|n| n.text()).unwrap_or("");
    assert_eq!((text("senderid"), text("password"), text("uniqueid")), ("s&1", "p<", "true"));
    assert_eq!((text("controlid"), text("dtdversion"), text("locationid")), ("k-1", "3.0", "E1"));
    let op = doc.descendants().find(|n| n.has_tag_name("operation")).unwrap();
    assert_eq!(op.attribute("transaction"), Some("true"));
    assert_eq!(doc.descendants().filter(|n| n.has_tag_name("function")).count(), 2);
    let session = request(&control, &Auth::Session("abc.."), &[], false);
    assert!(session.contains("<sessionid>abc..</sessionid>") && !session.contains("<login>"), "{session}");
}

#[test]
fn base64_matches_rfc_4648() {
    for (raw, enc) in
        [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")]
    {
        assert_eq!(base64(raw.as_bytes()), enc);
    }
    assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    assert_eq!(query_literal("O'Brien\\"), "O\\'Brien\\\\");
}

/// The real answers, each cut, spliced or with bytes replaced.
fn mutated() -> impl Strategy<Value = String> {
    let real = prop::sample::select(vec![SESSION, SIGN_IN_REFUSED, GATEWAY, ABORTED, CREATED]);
    (real, any::<usize>(), any::<usize>(), ".{0,12}").prop_map(|(r, a, b, junk)| {
        let bytes = r.as_bytes();
        let (a, b) = (a % bytes.len(), b % bytes.len());
        let (lo, hi) = (a.min(b), a.max(b));
        let mut out = bytes[..lo].to_vec();
        out.extend_from_slice(junk.as_bytes());
        out.extend_from_slice(&bytes[hi..]);
        String::from_utf8_lossy(&out).into_owned()
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_parser(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_answers_never_panic_the_parser(text in mutated()) {
        if let Ok(Answer::Results { results, .. }) = parse(&text) {
            prop_assert!(!results.is_empty());
        }
    }
}
