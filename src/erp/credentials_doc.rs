//! A connection's credentials document of exactly the keys its kind takes, read so that a
//! problem names the key (missing, unknown or empty) and never quotes a secret. The OAuth
//! kinds (`oauth`: refresh tokens; `client_credentials`) read theirs with it.

use crate::config::connection::ConnectionConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

/// Reads `text` as the document `T` (which denies unknown fields) whose `keys` must all be
/// non-empty.
pub fn read<T: DeserializeOwned>(
    conn: &ConnectionConfig,
    text: Option<&SecretString>,
    keys: &[&str],
) -> Result<T, String> {
    let shape = keys.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ");
    let text = text.ok_or_else(|| format!("is required: a JSON document {{{shape}}}"))?;
    let doc: T = serde_json::from_str(text.expose_secret()).map_err(|e| {
        // serde's message names the key (missing or unknown); the secret's text never goes into it.
        let what = e.to_string();
        let what = what.split(" at line").next().unwrap_or(&what).to_owned();
        format!(
            "{:?} is not {} credentials ({what})",
            conn.credentials.as_deref().unwrap_or_default(),
            conn.erp.as_str()
        )
    })?;
    let values: serde_json::Value = serde_json::from_str(text.expose_secret()).unwrap_or_default();
    if let Some(key) = keys.iter().find(|k| values[**k].as_str().is_none_or(|v| v.trim().is_empty())) {
        return Err(format!("the credentials' {key} is empty"));
    }
    Ok(doc)
}

/// The connection's credentials problem, if its reference reads but its document is not
/// the kind's (an unreadable reference is reported by the connection's own checks).
pub fn problem<T: DeserializeOwned>(conn: &ConnectionConfig, keys: &[&str]) -> Option<(&'static str, String)> {
    let text = conn.resolve_token().ok()?;
    read::<T>(conn, text.as_ref(), keys).err().map(|e| ("credentials", e))
}
