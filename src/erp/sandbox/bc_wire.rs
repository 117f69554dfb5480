//! Business Central's envelopes as the dialect answers them: the OData error body, the
//! `@odata.etag` and `@odata.context` annotations, collection answers, and the `$filter`
//! equalities the dialect evaluates.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An OData error: `{"error":{"code","message"}}`. Business Central ends its messages with
/// `  CorrelationId:  <guid>.`
pub(super) fn odata_error(status: StatusCode, code: &str, message: &str) -> Response {
    let message = format!("{message}  CorrelationId:  {}.", uuid::Uuid::new_v4());
    let mut r = (status, axum::Json(json!({"error": {"code": code, "message": message}}))).into_response();
    r.headers_mut().insert("odata-version", HeaderValue::from_static("4.0"));
    r
}

/// A refusal of the request: status, OData code, message.
pub(super) type Refusal = (StatusCode, &'static str, String);

pub(super) fn refusal(r: Refusal) -> Response {
    odata_error(r.0, r.1, &r.2)
}

/// The 400 for a property the entity type does not have.
pub(super) fn no_such_property(name: &str, entity_type: &str) -> Refusal {
    (
        StatusCode::BAD_REQUEST,
        "BadRequest",
        format!(
            "The property '{name}' does not exist on type 'Microsoft.NAV.{entity_type}'. Make sure to only use property names that are defined by the type."
        ),
    )
}

/// The 400 for a text longer than its field.
pub(super) fn too_long(value: &str, max: usize) -> Refusal {
    (
        StatusCode::BAD_REQUEST,
        "Application_StringExceededLength",
        format!(
            "The length of the string is {}, but it must be less than or equal to {max} characters. Value: {value}",
            value.chars().count()
        ),
    )
}

/// A weak ETag of an entity's version.
pub(super) fn etag(version: u64) -> String {
    format!("W/\"JzE5OzE{version}OzAwOyc=\"")
}

/// An entity as an answer: its `@odata.context`, `@odata.etag`, then its properties.
pub(super) fn entity(context: &str, version: u64, props: &Value) -> Value {
    let mut v = json!({"@odata.context": context, "@odata.etag": etag(version)});
    if let (Some(out), Some(p)) = (v.as_object_mut(), props.as_object()) {
        out.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    v
}

/// A collection answer: `{"@odata.context", "value":[…]}`.
pub(super) fn collection(context: &str, items: Vec<Value>) -> Response {
    let mut r = axum::Json(json!({"@odata.context": context, "value": items})).into_response();
    r.headers_mut().insert("odata-version", HeaderValue::from_static("4.0"));
    r
}

pub(super) fn created(location: &str, body: Value) -> Response {
    let mut r = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert("location", v);
    }
    r.headers_mut().insert("odata-version", HeaderValue::from_static("4.0"));
    r
}

/// A `$filter` of equalities joined by `and`: `vendorInvoiceNumber eq 'X' and vendorId eq
/// 0b5e…`. `None` if it says anything else (the dialect evaluates no more).
pub(super) fn parse_filter(f: &str) -> Option<Vec<(String, Value)>> {
    let mut out = Vec::new();
    let mut rest = f.trim();
    while !rest.is_empty() {
        let (field, after) = rest.split_once(" eq ")?;
        let field = field.trim();
        if field.is_empty() || !field.chars().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('\'') {
            // A string literal; '' is a quote inside it.
            let mut s = String::new();
            let mut chars = quoted.char_indices().peekable();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                        chars.next();
                        s.push('\'');
                        continue;
                    }
                    end = Some(i + 1);
                    break;
                }
                s.push(c);
            }
            (Value::String(s), &quoted[end?..])
        } else {
            let (token, tail) = after.split_once(' ').unwrap_or((after, ""));
            let v = token.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number);
            (v.unwrap_or_else(|| Value::String(token.to_owned())), tail)
        };
        out.push((field.to_owned(), value));
        rest = tail.trim_start();
        if rest.is_empty() {
            break;
        }
        rest = rest.strip_prefix("and ")?;
    }
    (!out.is_empty()).then_some(out)
}

/// Whether an entity's properties satisfy every equality (GUIDs and strings compared as
/// Business Central does, without regard to case).
pub(super) fn matches(doc: &Value, filter: &[(String, Value)]) -> bool {
    filter.iter().all(|(field, want)| match (&doc[field.as_str()], want) {
        (Value::String(have), Value::String(w)) => have.eq_ignore_ascii_case(w),
        (Value::Number(have), Value::Number(w)) => have.as_f64() == w.as_f64(),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_filter_text_parses_or_is_refused_without_panicking(f in ".{0,80}") {
            if let Some(eqs) = parse_filter(&f) {
                prop_assert!(!eqs.is_empty());
                let _ = matches(&json!({"a": "b"}), &eqs);
            }
        }
    }

    #[test]
    fn filters_of_equalities_parse() {
        let f = parse_filter(
            "vendorInvoiceNumber eq 'O''Brien and co' and vendorId eq 0b5e0b34-0000-4000-8000-000000000001",
        )
        .unwrap();
        assert_eq!(f[0], ("vendorInvoiceNumber".into(), json!("O'Brien and co")));
        assert_eq!(f[1], ("vendorId".into(), json!("0b5e0b34-0000-4000-8000-000000000001")));
        assert!(parse_filter("amount gt 5").is_none());
        assert!(parse_filter("a eq 'x' or b eq 'y'").is_none());
        assert!(parse_filter("a eq 'unterminated").is_none());
        assert!(matches(
            &json!({"vendorNumber": "v1", "amount": 5}),
            &parse_filter("vendorNumber eq 'V1' and amount eq 5").unwrap()
        ));
    }
}
