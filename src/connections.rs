//! A connection's client, built from its configuration and its credentials: those an
//! operator gave it at runtime (`erpsync connections set-credentials`, sealed in the
//! database with `[secrets] key`), else the configuration's `credentials` reference. The
//! daemon builds each client this way at start, and again when the stored credentials
//! change (see `actors::parking`).

use crate::config::ConnectionConfig;
use crate::erp::ErpClient;
use crate::erp::registry::{self, ClientContext};
use crate::secrets::SecretKey;
use crate::store::connection_credentials;
use sea_orm::DatabaseConnection;
use secrecy::SecretString;
use std::sync::Arc;

/// Credentials of the configuration's reference have version 0; stored ones the time
/// they were stored.
pub const CONFIGURED: i64 = 0;

/// What the sealed credentials of `connection` are bound to, so a sealed document cannot
/// be moved to another connection (or mistaken for a refresh token).
fn owner(connection: &str) -> String {
    format!("credentials:{connection}")
}

/// The credentials in force for `conn` and their version.
pub async fn credentials(
    db: &DatabaseConnection,
    secrets: Option<&SecretKey>,
    conn: &ConnectionConfig,
) -> Result<(Option<SecretString>, i64), String> {
    let stored = connection_credentials::get(db, conn.id.as_str())
        .await
        .map_err(|e| format!("cannot read its stored credentials: {e}"))?;
    match stored {
        Some((sealed, version)) => {
            let key = secrets.ok_or("its credentials are stored sealed, and secrets.key is not configured")?;
            let text = key
                .open(&owner(conn.id.as_str()), &sealed)
                .map_err(|e| format!("its stored credentials cannot be opened with secrets.key: {e}"))?;
            Ok((Some(text), version))
        }
        None => Ok((conn.resolve_token()?, CONFIGURED)),
    }
}

/// The client of `conn` with `credentials`.
pub fn client(
    db: &DatabaseConnection,
    secrets: Option<&SecretKey>,
    conn: &ConnectionConfig,
    credentials: Option<SecretString>,
) -> Result<Arc<dyn ErpClient>, String> {
    let limits = registry::limits(conn);
    let cx = ClientContext { db: db.clone(), max_concurrency: limits.max_concurrency, secrets: secrets.cloned() };
    registry::module(conn.erp).client(conn, credentials, &cx)
}

/// Stores `text` as `conn`'s credentials, once a client can be built with them (so a
/// document of the wrong shape is refused, naming what is wrong); returns their version.
pub async fn set_credentials(
    db: &DatabaseConnection,
    secrets: Option<&SecretKey>,
    conn: &ConnectionConfig,
    text: SecretString,
) -> Result<i64, String> {
    let key = secrets.ok_or("secrets.key must be configured to store credentials")?;
    client(db, Some(key), conn, Some(text.clone()))?;
    let sealed = key.seal(&owner(conn.id.as_str()), &text);
    connection_credentials::set(db, conn.id.as_str(), &sealed)
        .await
        .map_err(|e| format!("cannot store the credentials: {e}"))
}
