//! The classifier: every answer the gateway can give, and any bytes at all, end in one
//! error class.

use super::*;
use proptest::prelude::*;

fn errs(no: &str, msg: &str) -> Vec<GwError> {
    vec![GwError { errorno: no.into(), message: msg.into() }]
}

fn answer(result: &str) -> String {
    format!(
        "<response><control><status>success</status></control><operation><authentication><status>success</status>\
         </authentication>{result}</operation></response>"
    )
}

#[test]
fn control_failures_are_throttles_revocations_or_refusals() {
    assert!(matches!(control_failure(&errs("GW-0010", "Rate limit")), ErpError::Throttled { retry_after: None }));
    let ErpError::Revoked { message } =
        control_failure(&errs("XL03000006", "Incorrect Intacct XML Partner ID or password."))
    else {
        panic!("a refused sender is revoked")
    };
    assert!(message.contains("XL03000006: Incorrect Intacct XML Partner ID"), "{message}");
    assert!(matches!(control_failure(&errs("GW-0011", "Invalid Request")), ErpError::Transient(_)));
    let ErpError::Rejected { code, .. } = control_failure(&errs("PL04000055", "demo company expired")) else {
        panic!("other control failures are rejections")
    };
    assert_eq!(code, "PL04000055");
}

#[test]
fn http_statuses_are_classified_by_what_may_have_happened() {
    let h = header::HeaderMap::new();
    let w = Kind::Write;
    assert!(matches!(classify_status(w, StatusCode::TOO_MANY_REQUESTS, &h, ""), ErpError::Throttled { .. }));
    let gw = "<response><control><status>failure</status></control><errormessage><error><errorno>GW-0010</errorno>\
              </error></errormessage></response>";
    assert!(matches!(classify_status(w, StatusCode::SERVICE_UNAVAILABLE, &h, gw), ErpError::Throttled { .. }));
    for s in [500, 504, 524] {
        let s = StatusCode::from_u16(s).unwrap();
        assert!(matches!(classify_status(w, s, &h, ""), ErpError::Ambiguous(_)), "{s}");
        assert!(matches!(classify_status(Kind::Read, s, &h, ""), ErpError::Transient(_)), "{s}");
    }
    assert!(matches!(classify_status(w, StatusCode::BAD_GATEWAY, &h, ""), ErpError::Transient(_)));
    assert!(matches!(classify_status(w, StatusCode::SERVICE_UNAVAILABLE, &h, ""), ErpError::Transient(_)));
    assert!(matches!(classify_status(w, StatusCode::UNAUTHORIZED, &h, ""), ErpError::Auth { status: 401, .. }));
    assert!(matches!(classify_status(w, StatusCode::NOT_FOUND, &h, ""), ErpError::Rejected { status: 404, .. }));
}

#[test]
fn a_refused_function_keeps_intaccts_errorno_and_descriptions() {
    let text = answer(
        "<result><status>failure</status><function>create</function><controlid>bill-1</controlid><errormessage>\
         <error><errorno>BL01001973</errorno><description>Could not create APBILL record!</description>\
         <description2>Vendor 'V-0999' is inactive.</description2></error></errormessage></result>",
    );
    let Outcome::Results(results) = outcome(&text, Kind::Write) else { panic!("results") };
    assert!(!is_replay(&results[0]));
    let ErpError::Rejected { status, code, message } = rejected(&results[0]) else { panic!("a rejection") };
    assert_eq!((status, code.as_str()), (200, "BL01001973"));
    assert_eq!(message, "Could not create APBILL record! Vendor 'V-0999' is inactive.");
}

#[test]
fn a_replayed_control_id_is_told_from_other_refusals() {
    let r = FnResult {
        status: "failure".into(),
        errors: errs(DUPLICATE_CONTROL_ID, "A request with control ID k was already executed and completed."),
        ..Default::default()
    };
    assert!(is_replay(&r) && is_existing_supdoc(&r));
    let r = FnResult { errors: errs("BL01001973", "Attachment ES1 already exists."), ..Default::default() };
    assert!(!is_replay(&r) && is_existing_supdoc(&r));
}

#[test]
fn a_create_answer_without_a_recordno_is_ambiguous() {
    let r = FnResult { status: "success".into(), function: "create".into(), ..Default::default() };
    assert!(matches!(created_recordno(&r), Err(ErpError::Ambiguous(_))));
}

#[test]
fn session_refusals_and_unreadable_answers_are_classified() {
    let refused = "<response><control><status>success</status></control><operation><authentication>\
                   <status>failure</status></authentication><errormessage><error><errorno>XL03000006</errorno>\
                   <description2>Invalid session</description2></error></errormessage></operation></response>";
    assert!(matches!(outcome(refused, Kind::Write), Outcome::SessionRefused(e) if e[0].errorno == "XL03000006"));
    assert!(matches!(outcome("<html>502</html>", Kind::Write), Outcome::Failed(ErpError::Ambiguous(_))));
    assert!(matches!(outcome("", Kind::Read), Outcome::Failed(ErpError::Transient(_))));
}

#[test]
fn the_document_key_is_read_back_from_the_serializers_function() {
    let inv = crate::domain::samples::invoice();
    let payload =
        crate::pipeline::serialize::sage_intacct::serialize(&crate::pipeline::Document::Invoice(inv)).unwrap();
    let key = document_key(&payload).unwrap();
    assert_eq!((key.get("RECORDID"), key.get("VENDORID")), (Some("RE-2026-000117"), Some("V-1042")));
    assert_eq!(key.source.as_deref(), Some("ap-inv-7f3a9c"));
}

proptest! {
    #[test]
    fn any_bytes_end_in_a_class(bytes in prop::collection::vec(any::<u8>(), 0..400), write in any::<bool>()) {
        let kind = if write { Kind::Write } else { Kind::Read };
        let text = String::from_utf8_lossy(&bytes);
        match outcome(&text, kind) {
            Outcome::Failed(ErpError::Ambiguous(_)) => prop_assert!(write),
            Outcome::Failed(ErpError::Transient(_)) | Outcome::Failed(_) => {}
            Outcome::Results(r) => prop_assert!(!r.is_empty()),
            Outcome::SessionRefused(_) => {}
        }
    }

    #[test]
    fn mutated_results_end_in_a_class(cut in 0usize..600, junk in ".{0,8}") {
        let text = answer("<result><status>success</status><function>create</function><controlid>b</controlid>\
                           <data listtype=\"objects\" count=\"1\"><apbill><RECORDNO>7</RECORDNO></apbill></data></result>");
        let cut = cut.min(text.len());
        let mutated = format!("{}{junk}{}", &text[..cut], &text[cut..]);
        if let Outcome::Results(r) = outcome(&mutated, Kind::Write) {
            let _ = r[0].ok().then(|| created_recordno(&r[0]));
        }
    }
}
