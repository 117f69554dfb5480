//! The versioned message body: `{"v":1,"job_id","item_id","connection_id","op","payload"|"payload_ref"}`.
//! Decoding names exactly what is wrong, because the reason ends up in the dead-letter store
//! for a person to read.

use crate::domain::{ConnectionId, ItemId, JobId, Op};
use serde::{Deserialize, Serialize};

pub const ENVELOPE_VERSION: u64 = 1;

/// Messages larger than this are refused (SQS's limit is 256 KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u64,
    pub job_id: JobId,
    pub item_id: ItemId,
    pub connection_id: ConnectionId,
    pub op: Op,
    /// The document itself…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    /// …or a reference to it: the item id whose stored payload to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_ref: Option<String>,
    /// The document's source id, as a hint: the consumer claims the document by it before
    /// reading the item, so that one statement reads the item and its ledger entry. The
    /// item's row stays the authority (a wrong hint costs a second read, nothing more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("message body is {0} bytes, over the {MAX_BODY_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("message body is not JSON: {0}")]
    NotJson(String),
    #[error("message body is not a JSON object")]
    NotAnObject,
    #[error("envelope has no version field \"v\"")]
    MissingVersion,
    #[error("unsupported envelope version {0} (this daemon reads version {ENVELOPE_VERSION})")]
    UnknownVersion(String),
    #[error("envelope field {field:?} is invalid: {message}")]
    BadField { field: String, message: String },
    #[error("envelope has neither \"payload\" nor \"payload_ref\"")]
    NoPayload,
}

impl EnvelopeError {
    pub fn kind(&self) -> &'static str {
        match self {
            EnvelopeError::TooLarge(_) => "too_large",
            EnvelopeError::NotJson(_) => "not_json",
            EnvelopeError::NotAnObject => "not_an_object",
            EnvelopeError::MissingVersion | EnvelopeError::UnknownVersion(_) => "bad_version",
            EnvelopeError::BadField { .. } => "bad_field",
            EnvelopeError::NoPayload => "no_payload",
        }
    }
}

impl Envelope {
    /// The envelope erpsync itself sends: the document by reference to its item. Every
    /// consumer reads the item's row anyway (state, attempts), and the row holds the
    /// document, so an inline copy only made each message about six times larger to
    /// write, send, receive and parse. Inline payloads from other producers are still read.
    pub fn by_ref(job_id: JobId, item_id: ItemId, connection_id: ConnectionId, op: Op, source_id: &str) -> Envelope {
        Envelope {
            v: ENVELOPE_VERSION,
            job_id,
            item_id,
            connection_id,
            op,
            payload: None,
            payload_ref: Some(item_id.to_string()),
            source_id: Some(source_id.to_owned()),
        }
    }

    /// The SQL expression that builds, from a `job_items` row, the text [`by_ref`](Self::by_ref)
    /// would encode for that item; `json_object` is the database's function making a JSON
    /// object of key/value pairs (`json_object` on SQLite, `json_build_object` on
    /// PostgreSQL, whose result is cast to text). Kept here, beside `by_ref`, so the two
    /// encodings of erpsync's own envelope change together.
    pub(crate) fn by_ref_from_item_row(json_object: &str, cast: &str) -> String {
        format!(
            "{json_object}('v', {ENVELOPE_VERSION}, 'job_id', job_id, 'item_id', id, 'connection_id', connection_id, \
             'op', op, 'payload_ref', id, 'source_id', source_id){cast}"
        )
    }

    /// This envelope as a message: in its connection's group, deduplicated by item id.
    pub fn outgoing(&self) -> super::Outgoing {
        super::Outgoing {
            body: self.encode(),
            group: Some(self.connection_id.to_string()),
            dedup_id: Some(self.item_id.to_string()),
            delay: std::time::Duration::ZERO,
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("envelopes always serialize")
    }

    pub fn decode(body: &str) -> Result<Envelope, EnvelopeError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(EnvelopeError::TooLarge(body.len()));
        }
        let value: serde_json::Value = serde_json::from_str(body).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
        let obj = value.as_object().ok_or(EnvelopeError::NotAnObject)?;
        match obj.get("v") {
            None => return Err(EnvelopeError::MissingVersion),
            Some(v) if v.as_u64() == Some(ENVELOPE_VERSION) => {}
            Some(v) => return Err(EnvelopeError::UnknownVersion(v.to_string())),
        }
        for field in ["job_id", "item_id", "connection_id", "op"] {
            if !obj.contains_key(field) {
                return Err(EnvelopeError::BadField { field: field.into(), message: "is missing".into() });
            }
        }
        // Field by field, so the error names the field rather than a column number.
        let field = |name: &str| obj.get(name).cloned().unwrap_or(serde_json::Value::Null);
        let bad =
            |name: &str, e: serde_json::Error| EnvelopeError::BadField { field: name.into(), message: e.to_string() };
        let env = Envelope {
            v: ENVELOPE_VERSION,
            job_id: serde_json::from_value(field("job_id")).map_err(|e| bad("job_id", e))?,
            item_id: serde_json::from_value(field("item_id")).map_err(|e| bad("item_id", e))?,
            connection_id: serde_json::from_value(field("connection_id")).map_err(|e| bad("connection_id", e))?,
            op: serde_json::from_value(field("op")).map_err(|e| bad("op", e))?,
            payload: obj.get("payload").cloned().filter(|p| !p.is_null()),
            payload_ref: serde_json::from_value(field("payload_ref")).map_err(|e| bad("payload_ref", e))?,
            source_id: serde_json::from_value(field("source_id")).map_err(|e| bad("source_id", e))?,
        };
        if env.payload.is_none() && env.payload_ref.is_none() {
            return Err(EnvelopeError::NoPayload);
        }
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Envelope {
        Envelope {
            v: 1,
            job_id: JobId::new(),
            item_id: ItemId::new(),
            connection_id: ConnectionId::new("acme"),
            op: Op::ExportInvoice,
            payload: Some(serde_json::json!({"x": 1})),
            payload_ref: None,
            source_id: None,
        }
    }

    #[test]
    fn round_trips() {
        let e = good();
        assert_eq!(Envelope::decode(&e.encode()).unwrap(), e);
        let by_ref = Envelope::by_ref(e.job_id, e.item_id, e.connection_id.clone(), Op::ExportPayment, "PAY-2026-0042");
        let decoded = Envelope::decode(&by_ref.encode()).unwrap();
        assert_eq!((decoded.payload, decoded.payload_ref), (None, Some(e.item_id.to_string())));
        assert_eq!(decoded.source_id.as_deref(), Some("PAY-2026-0042"));
        assert!(by_ref.encode().len() < 256, "a reference envelope stays small: {}", by_ref.encode());
    }

    #[test]
    fn each_defect_is_named() {
        let mut v: serde_json::Value = serde_json::from_str(&good().encode()).unwrap();
        assert_eq!(Envelope::decode("{nope").unwrap_err().kind(), "not_json");
        assert_eq!(Envelope::decode("[1]").unwrap_err(), EnvelopeError::NotAnObject);
        v["v"] = 2.into();
        assert_eq!(Envelope::decode(&v.to_string()).unwrap_err(), EnvelopeError::UnknownVersion("2".into()));
        v["v"] = 1.into();
        v["op"] = "export_unicorn".into();
        let err = Envelope::decode(&v.to_string()).unwrap_err();
        assert!(matches!(&err, EnvelopeError::BadField { field, .. } if field == "op"), "{err}");
        v["op"] = "export_invoice".into();
        v.as_object_mut().unwrap().remove("item_id");
        assert!(
            Envelope::decode(&v.to_string()).unwrap_err().to_string().contains("\"item_id\" is invalid: is missing")
        );
    }
}
