//! NetSuite (REST record API): vendorBill, purchaseOrder and vendorPayment records, through
//! `netsuite_client` with token-based authentication (OAuth 1.0a, HMAC-SHA256, `oauth1` below).
//!
//! A connection's credentials are a JSON document of exactly these keys: `account_id`
//! (`1234567`, or `1234567_SB1` for a sandbox), `consumer_key`, `consumer_secret` (the
//! integration record's), `token_id`, `token_secret` (the user-role token's). The account id
//! is the signature's `realm` in upper case with `_` (`1234567_SB1`) and the REST host's name
//! in lower case with `-` (`https://1234567-sb1.suitetalk.api.netsuite.com`), as Oracle's
//! "REST Web Services Authorization Header" examples (section_158332610742.html) and the
//! account-specific domains show. A TBA token does not expire and is never refreshed, so
//! nothing is stored; a token NetSuite refuses (401 `INVALID_LOGIN`) parks the connection.
//!
//! NetSuite's REST record API takes no file: the bill's PDF is not attached
//! ([`netsuite_client::NOT_ATTACHED`]).

use super::module::{BatchCapacity, ClientContext, ErpModule, ErpProfile};
use super::netsuite_client::{self, NetsuiteClient};
use super::oauth1::TokenCredentials;
use super::{ErpClient, oauth, sandbox};
use crate::config::connection::ConnectionConfig;
use crate::domain::ErpKind;
use crate::pipeline::Document;
use crate::pipeline::serialize::{Payload, SerializeError, netsuite as serializer};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

/// The account-wide concurrency pool starts at 5 on the base tier (it grows by 10 per
/// SuiteCloud Plus licence: set `max_concurrency` to the account's figure); no per-minute
/// rate is documented; the REST record API creates one record per request.
const PROFILE: ErpProfile = ErpProfile {
    max_concurrency: 5,
    rate_limit_per_min: None,
    daily_limit: None,
    batch: BatchCapacity::ONE,
    accepts_purchase_orders: true,
};

/// The keys of a NetSuite credentials document, all required.
const KEYS: [&str; 5] = ["account_id", "consumer_key", "consumer_secret", "token_id", "token_secret"];

/// The REST record API root of an account.
pub fn api_root(account_id: &str) -> String {
    let host = account_id.trim().to_ascii_lowercase().replace('_', "-");
    format!("https://{host}.suitetalk.api.netsuite.com/services/rest/record/v1")
}

/// The `realm` of an account's signatures.
pub fn realm(account_id: &str) -> String {
    account_id.trim().to_ascii_uppercase().replace('-', "_")
}

/// Every problem of a credentials document, each naming its key and never quoting a value.
fn problems(doc: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    let mut out: Vec<String> = doc
        .keys()
        .filter(|k| !KEYS.contains(&k.as_str()))
        .map(|k| format!("has the key {k:?}, which NetSuite credentials do not"))
        .collect();
    for key in KEYS {
        match doc.get(key) {
            None => out.push(format!("lacks the key {key:?}")),
            Some(serde_json::Value::String(v)) if !v.trim().is_empty() => {}
            Some(_) => out.push(format!("has {key:?} empty or not a string")),
        }
    }
    let account = doc.get("account_id").and_then(|v| v.as_str()).unwrap_or("1");
    if !account.trim().chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        out.push("has an account_id that is not a NetSuite account id (letters, digits, _ or -)".into());
    }
    out
}

/// Reads a connection's credentials document; what is wrong with it, every problem joined.
pub fn credentials(text: Option<&SecretString>) -> Result<(String, TokenCredentials), String> {
    let shape =
        "a JSON document {\"account_id\", \"consumer_key\", \"consumer_secret\", \"token_id\", \"token_secret\"}";
    let text = text.ok_or_else(|| format!("is required: {shape}"))?;
    let doc: serde_json::Value =
        serde_json::from_str(text.expose_secret()).map_err(|_| format!("is not JSON: {shape}"))?;
    let Some(map) = doc.as_object() else { return Err(format!("is not a JSON object: {shape}")) };
    let wrong = problems(map);
    if !wrong.is_empty() {
        return Err(format!("{} ({shape})", wrong.join("; ")));
    }
    let value = |k: &str| map[k].as_str().unwrap_or_default().trim().to_owned();
    let account = value("account_id");
    let creds = TokenCredentials {
        realm: realm(&account),
        consumer_key: value("consumer_key"),
        consumer_secret: SecretString::from(value("consumer_secret")),
        token_id: value("token_id"),
        token_secret: SecretString::from(value("token_secret")),
    };
    Ok((account, creds))
}

pub struct Netsuite;

impl ErpModule for Netsuite {
    fn kind(&self) -> ErpKind {
        ErpKind::Netsuite
    }

    fn profile(&self) -> &'static ErpProfile {
        &PROFILE
    }

    fn serialize(&self, doc: &Document) -> Result<Payload, SerializeError> {
        serializer::serialize(doc)
    }

    fn check(&self, conn: &ConnectionConfig) -> Vec<(&'static str, String)> {
        // An unreadable reference is reported by the connection's own checks.
        let Ok(text) = conn.resolve_token() else { return Vec::new() };
        match credentials(text.as_ref()) {
            Ok(_) => Vec::new(),
            Err(e) => vec![("credentials", e)],
        }
    }

    fn client(
        &self,
        conn: &ConnectionConfig,
        text: Option<SecretString>,
        cx: &ClientContext,
    ) -> Result<Arc<dyn ErpClient>, String> {
        let (account, creds) = credentials(text.as_ref()).map_err(|e| format!("credentials {e}"))?;
        let http = oauth::http_client(conn, cx)?;
        let base = if conn.base_url.is_empty() { api_root(&account) } else { conn.base_url.clone() };
        Ok(Arc::new(NetsuiteClient::new(http, &base, creds)?))
    }

    fn sandbox(&self) -> Option<&'static sandbox::Dialect> {
        Some(&sandbox::NETSUITE)
    }

    fn pdf_not_attached(&self) -> Option<&'static str> {
        Some(netsuite_client::NOT_ATTACHED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Option<SecretString> {
        Some(SecretString::from(s.to_owned()))
    }

    const GOOD: &str = r#"{"account_id":"1234567_SB1","consumer_key":"ck","consumer_secret":"cs-SECRET",
        "token_id":"tk","token_secret":"ts-SECRET"}"#;

    #[test]
    fn the_account_id_maps_into_the_host_and_the_realm() {
        assert_eq!(api_root("1234567_SB1"), "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/record/v1");
        assert_eq!(realm("1234567-sb1"), "1234567_SB1");
        let (account, creds) = credentials(secret(GOOD).as_ref()).unwrap();
        assert_eq!((account.as_str(), creds.realm.as_str()), ("1234567_SB1", "1234567_SB1"));
    }

    #[test]
    fn credentials_problems_name_the_key_and_never_a_secret() {
        let missing = credentials(secret(&GOOD.replace(r#""token_id":"tk","#, "")).as_ref()).unwrap_err();
        assert!(missing.contains("\"token_id\""), "{missing}");
        let extra = credentials(secret(&GOOD.replace("{", r#"{"refresh_token":"rt-SECRET","#)).as_ref()).unwrap_err();
        assert!(extra.contains("\"refresh_token\"") && !extra.contains("rt-SECRET"), "{extra}");
        let both = GOOD.replace(r#""token_id":"tk","#, r#""refresh_token":"rt-SECRET","#);
        let both = credentials(secret(&both).as_ref()).unwrap_err();
        assert!(
            both.contains("\"refresh_token\"") && both.contains("lacks the key \"token_id\""),
            "all at once: {both}"
        );
        let wrong = credentials(secret(&GOOD.replace(r#""ts-SECRET""#, "5")).as_ref()).unwrap_err();
        assert!(wrong.contains("\"token_secret\""), "{wrong}");
        for e in [missing, extra, both, wrong, credentials(secret("{").as_ref()).unwrap_err()] {
            assert!(!e.contains("SECRET"), "{e}");
        }
        assert!(credentials(None).unwrap_err().contains("is required"));
    }
}
