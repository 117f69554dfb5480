//! Document → ERP request body, one module per ERP.

pub mod generic_rest;

use super::Document;
use crate::domain::ErpKind;

/// A serialized request body and its media type.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SerializeError {
    #[error("{erp} has no serializer for {what}")]
    Unsupported { erp: &'static str, what: &'static str },
    #[error("could not encode the payload: {0}")]
    Encode(String),
}

impl SerializeError {
    pub fn kind(&self) -> &'static str {
        match self {
            SerializeError::Unsupported { .. } => "unsupported",
            SerializeError::Encode(_) => "encode",
        }
    }
}

/// Serializes `doc` for an ERP of kind `erp`.
pub fn serialize(erp: ErpKind, doc: &Document) -> Result<Payload, SerializeError> {
    match erp {
        ErpKind::GenericRest => generic_rest::serialize(doc),
        other => Err(SerializeError::Unsupported { erp: other.as_str(), what: "documents" }),
    }
}
