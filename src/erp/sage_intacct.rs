//! Sage Intacct (XML gateway): APBILL and APPYMT objects created through
//! `sage_intacct_client`, in a session opened with the company user's login; purchase
//! orders are refused.
//!
//! A connection's credentials are a JSON document of exactly `{"sender_id",
//! "sender_password", "company_id", "user_id", "user_password"}`: the Web Services sender
//! (authorised by the company) and the Web Services user. `entity_id` scopes the session
//! to an entity of a multi-entity company (`locationid`). `base_url` is the gateway, by
//! default Sage's `https://api.intacct.com/ia/xml/xmlgw.phtml`; later requests go to the
//! endpoint the session answer names. The wire contract the simulator follows, with its
//! sources: `sandbox/sage_intacct.md`.

use super::module::{BatchCapacity, ClientContext, ErpModule, ErpProfile};
use super::sage_intacct_client as client;
use super::{ErpClient, sandbox};
use crate::config::connection::ConnectionConfig;
use crate::domain::ErpKind;
use crate::pipeline::Document;
use crate::pipeline::serialize::{Payload, SerializeError, sage_intacct as serializer};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

pub use client::{DUPLICATE_CONTROL_ID, GATEWAY_LIMIT, SIGN_IN_REFUSED, SUPDOC_FOLDER};

/// Sage's XML gateway, unless a connection names another (a simulator).
pub const GATEWAY: &str = "https://api.intacct.com/ia/xml/xmlgw.phtml";

/// The keys of the credentials document, all required, no others.
pub const CREDENTIAL_KEYS: [&str; 5] = ["sender_id", "sender_password", "company_id", "user_id", "user_password"];

/// 6 concurrent requests on the lowest performance tier; volume is billed monthly, not
/// throttled. A request may carry several functions, but its documented maximum is not
/// verified, so documents go one per request.
const PROFILE: ErpProfile = ErpProfile {
    max_concurrency: 6,
    rate_limit_per_min: None,
    daily_limit: None,
    batch: BatchCapacity::ONE,
    accepts_purchase_orders: false,
};

pub struct SageIntacct;

/// Reads the credentials document, naming a missing, unknown or empty key, never a value.
fn credentials(text: Option<&SecretString>, entity_id: Option<&str>) -> Result<client::Login, String> {
    let shape = "a JSON document {\"sender_id\", \"sender_password\", \"company_id\", \"user_id\", \"user_password\"}";
    let text = text.ok_or_else(|| format!("is required: {shape}"))?;
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text.expose_secret()) else {
        return Err(format!("is not {shape}"));
    };
    if let Some(extra) = map.keys().find(|k| !CREDENTIAL_KEYS.contains(&k.as_str())) {
        return Err(format!("has a key sage_intacct does not take: {extra:?}"));
    }
    let mut values = Vec::new();
    for key in CREDENTIAL_KEYS {
        match map.get(key) {
            None => return Err(format!("lacks the key {key:?}")),
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => values.push(s.clone()),
            Some(_) => return Err(format!("the credentials' {key} must be a non-empty string")),
        }
    }
    let mut v = values.into_iter();
    let mut next = || v.next().unwrap_or_default();
    Ok(client::Login {
        sender_id: next(),
        sender_password: SecretString::from(next()),
        company_id: next(),
        user_id: next(),
        user_password: SecretString::from(next()),
        entity_id: entity_id.map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned),
    })
}

impl ErpModule for SageIntacct {
    fn kind(&self) -> ErpKind {
        ErpKind::SageIntacct
    }

    fn profile(&self) -> &'static ErpProfile {
        &PROFILE
    }

    fn serialize(&self, doc: &Document) -> Result<Payload, SerializeError> {
        serializer::serialize(doc)
    }

    fn check(&self, conn: &ConnectionConfig) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !conn.base_url.is_empty() && reqwest::Url::parse(&conn.base_url).is_err() {
            problems.push(("base_url", format!("{:?} is not a URL", conn.base_url)));
        }
        // An unreadable reference is reported by the connection's own checks.
        if let Ok(text) = conn.resolve_token()
            && let Err(e) = credentials(text.as_ref(), conn.entity_id.as_deref())
        {
            problems.push(("credentials", e));
        }
        problems
    }

    fn client(
        &self,
        conn: &ConnectionConfig,
        text: Option<SecretString>,
        cx: &ClientContext,
    ) -> Result<Arc<dyn ErpClient>, String> {
        let login = credentials(text.as_ref(), conn.entity_id.as_deref())?;
        let http = super::oauth::http_client(conn, cx)?;
        let gateway = if conn.base_url.is_empty() { GATEWAY } else { &conn.base_url };
        Ok(Arc::new(client::IntacctClient::new(http, gateway, login)?))
    }

    fn sandbox(&self) -> Option<&'static sandbox::Dialect> {
        Some(&sandbox::SAGE_INTACCT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn credentials_name_the_wrong_key_and_never_a_value() {
        let full = r#"{"sender_id":"s","sender_password":"sp-SECRET","company_id":"c","user_id":"u","user_password":"up-SECRET"}"#;
        let l = credentials(Some(&secret(full)), Some(" E1 ")).unwrap();
        assert_eq!((l.sender_id.as_str(), l.company_id.as_str(), l.entity_id.as_deref()), ("s", "c", Some("E1")));
        let missing = r#"{"sender_id":"s","sender_password":"sp-SECRET","company_id":"c","user_id":"u"}"#;
        assert_eq!(credentials(Some(&secret(missing)), None).err().unwrap(), "lacks the key \"user_password\"");
        let extra = full.replace("}", r#","refresh_token":"rt-SECRET"}"#);
        let e = credentials(Some(&secret(&extra)), None).err().unwrap();
        assert_eq!(e, "has a key sage_intacct does not take: \"refresh_token\"");
        let empty = full.replace("up-SECRET", " ");
        assert!(credentials(Some(&secret(&empty)), None).err().unwrap().contains("user_password"));
        let number = full.replace("\"sp-SECRET\"", "12345");
        for bad in [number.as_str(), "not json sp-SECRET", "[]"] {
            let e = credentials(Some(&secret(bad)), None).err().unwrap();
            assert!(!e.contains("SECRET") && !e.contains("12345"), "{e}");
        }
        assert!(credentials(None, None).err().unwrap().starts_with("is required"));
    }

    #[test]
    fn a_connection_with_good_credentials_has_no_problems() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(
            &path,
            r#"{"sender_id":"s","sender_password":"p","company_id":"c","user_id":"u","user_password":"q"}"#,
        )
        .unwrap();
        let mut c = ConnectionConfig::new("a", ErpKind::SageIntacct, "");
        c.credentials = Some(format!("file:{}", path.display()));
        assert!(SageIntacct.check(&c).is_empty(), "{:?}", SageIntacct.check(&c));
        std::fs::write(&path, r#"{"sender_id":"s"}"#).unwrap();
        assert_eq!(SageIntacct.check(&c)[0].0, "credentials");
    }
}
