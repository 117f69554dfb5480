//! The subset of QuickBooks' query language the dialect answers: `select * from <Entity>
//! [where <Field> = '<value>' [and …]] [startposition N] [maxresults M]`, keywords and
//! field names case-insensitive, string literals with `\'` and `\\` escapes. A reference
//! field (`VendorRef`) compares its `value`; a path (`AttachableRef.EntityRef.value`)
//! matches if any element of an array on the way does.

use super::quickbooks_wire::FaultError;
use serde_json::Value;

/// The entities a query may name, as QuickBooks spells them in its answer.
const ENTITIES: [&str; 7] = ["Bill", "PurchaseOrder", "BillPayment", "Attachable", "Vendor", "Account", "Item"];

/// A parsed query.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Query {
    pub(super) entity: &'static str,
    pub(super) conditions: Vec<(String, String)>,
    /// 1-based, as QuickBooks counts.
    pub(super) start: usize,
    pub(super) max: usize,
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Eq,
    Star,
}

fn parse_error(detail: String) -> FaultError {
    FaultError {
        code: "4000",
        message: "Error parsing query",
        detail: format!("QueryParserError: {detail}"),
        element: "",
    }
}

fn tokens(q: &str) -> Result<Vec<Token>, FaultError> {
    let mut out = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '=' => {
                chars.next();
                out.push(Token::Eq);
            }
            '*' => {
                chars.next();
                out.push(Token::Star);
            }
            '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => s.push(chars.next().ok_or_else(|| parse_error("unterminated string".into()))?),
                        Some('\'') => break,
                        Some(c) => s.push(c),
                        None => return Err(parse_error("unterminated string".into())),
                    }
                }
                out.push(Token::Text(s));
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => {
                let mut w = String::new();
                while let Some(&c) = chars.peek().filter(|c| c.is_alphanumeric() || **c == '_' || **c == '.') {
                    w.push(c);
                    chars.next();
                }
                out.push(Token::Word(w));
            }
            other => return Err(parse_error(format!("Encountered \"{other}\""))),
        }
    }
    Ok(out)
}

fn keyword(t: Option<&Token>, k: &str) -> bool {
    matches!(t, Some(Token::Word(w)) if w.eq_ignore_ascii_case(k))
}

/// Parses a query, or answers the QueryParserError (4000) QuickBooks would.
pub(super) fn parse(q: &str) -> Result<Query, FaultError> {
    let t = tokens(q)?;
    let mut i = t.iter().peekable();
    let expected = |what: &str| parse_error(format!("Encountered something other than {what}"));
    if !keyword(i.next(), "select") || i.next() != Some(&Token::Star) || !keyword(i.next(), "from") {
        return Err(expected("select * from"));
    }
    let entity = match i.next() {
        Some(Token::Word(w)) => *ENTITIES
            .iter()
            .find(|e| e.eq_ignore_ascii_case(w))
            .ok_or_else(|| parse_error(format!("the entity {w} is not supported")))?,
        _ => return Err(expected("an entity")),
    };
    let mut query = Query { entity, conditions: Vec::new(), start: 1, max: 100 };
    if keyword(i.peek().copied(), "where") {
        i.next();
        loop {
            match (i.next(), i.next(), i.next()) {
                (Some(Token::Word(f)), Some(Token::Eq), Some(Token::Text(v))) => {
                    query.conditions.push((f.clone(), v.clone()))
                }
                _ => return Err(expected("<field> = '<value>'")),
            }
            if !keyword(i.peek().copied(), "and") {
                break;
            }
            i.next();
        }
    }
    while let Some(t) = i.next() {
        let n = match i.next() {
            Some(Token::Word(n)) => n.parse::<usize>().ok().filter(|n| *n > 0),
            _ => None,
        };
        match (t, n) {
            (Token::Word(w), Some(n)) if w.eq_ignore_ascii_case("startposition") => query.start = n,
            (Token::Word(w), Some(n)) if w.eq_ignore_ascii_case("maxresults") => query.max = n.min(1000),
            _ => return Err(expected("startposition N or maxresults N")),
        }
    }
    Ok(query)
}

/// Whether `v` at the dotted `path` (segments case-insensitive) equals `want`.
fn matches(v: &Value, path: &[&str], want: &str) -> bool {
    match (v, path.split_first()) {
        (Value::Array(items), _) => items.iter().any(|e| matches(e, path, want)),
        (Value::Object(o), Some((seg, rest))) => {
            o.iter().find(|(k, _)| k.eq_ignore_ascii_case(seg)).is_some_and(|(_, v)| matches(v, rest, want))
        }
        (Value::Object(o), None) => o.get("value").is_some_and(|v| matches(v, &[], want)),
        (Value::String(s), None) => s == want,
        (Value::Number(n), None) => n.to_string() == want,
        (Value::Bool(b), None) => b.to_string() == want,
        _ => false,
    }
}

impl Query {
    /// The rows of `all` the query selects, its page applied.
    pub(super) fn select(&self, all: Vec<Value>) -> Vec<Value> {
        all.into_iter()
            .filter(|row| {
                self.conditions.iter().all(|(field, want)| matches(row, &field.split('.').collect::<Vec<_>>(), want))
            })
            .skip(self.start - 1)
            .take(self.max)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn doc_number_and_vendor_conditions_select_rows() {
        let q = parse(r"SELECT * FROM bill WHERE DocNumber = 'O\'Brien-1' and VendorRef = '56'").unwrap();
        assert_eq!(q.entity, "Bill");
        assert_eq!(q.conditions, vec![("DocNumber".into(), "O'Brien-1".into()), ("VendorRef".into(), "56".into())]);
        let rows = vec![
            json!({"Id": "1", "DocNumber": "O'Brien-1", "VendorRef": {"value": "56"}}),
            json!({"Id": "2", "DocNumber": "O'Brien-1", "VendorRef": {"value": "57"}}),
        ];
        assert_eq!(q.select(rows), vec![json!({"Id": "1", "DocNumber": "O'Brien-1", "VendorRef": {"value": "56"}})]);
    }

    #[test]
    fn attachable_paths_look_into_arrays() {
        let q = parse("select * from Attachable where AttachableRef.EntityRef.Value = '146' maxresults 5").unwrap();
        assert_eq!(q.max, 5);
        let row = json!({"AttachableRef": [{"EntityRef": {"type": "Bill", "value": "146"}}]});
        assert_eq!(q.select(vec![row.clone(), json!({"AttachableRef": []})]), vec![row]);
    }

    #[test]
    fn junk_is_a_parser_error() {
        for q in [
            "",
            "select",
            "select * from Nope",
            "select * from Bill where DocNumber = 5",
            "select * from Bill where x = 'y",
            "delete Bill",
            "select * from Bill maxresults x",
        ] {
            assert_eq!(parse(q).unwrap_err().code, "4000", "{q}");
        }
    }
}
