//! `erpsync connections`: each configured connection with its state, and what an operator
//! does to one — give it new credentials, park it, resume it. They act on the database, so
//! every daemon sharing it follows within a second, without a restart.

use super::open_db;
use crate::config::{Config, ConnectionConfig, DEFAULT_TENANT};
use crate::secrets::SecretKey;
use crate::store::parks::{self, ParkReason};
use crate::store::{connection_credentials, erp_tokens};
use anyhow::{Context, Result, bail};
use secrecy::SecretString;

fn find<'a>(cfg: &'a Config, id: &str) -> Result<&'a ConnectionConfig> {
    cfg.connections.iter().find(|c| c.id.as_str() == id).with_context(|| {
        let known: Vec<&str> = cfg.connections.iter().map(|c| c.id.as_str()).collect();
        format!("no connection {id:?} is configured (configured: {})", known.join(", "))
    })
}

fn secrets_key(cfg: &Config) -> Result<Option<SecretKey>> {
    cfg.secrets.key.as_deref().map(|r| SecretKey::load(r).context("secrets.key")).transpose()
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339()).unwrap_or_default()
}

/// One connection as `erpsync connections` shows it: never a secret, only where the
/// secrets come from and when they last changed.
#[derive(serde::Serialize)]
struct Row {
    id: String,
    erp: &'static str,
    tenant: String,
    /// `active` or `parked`.
    state: &'static str,
    parked: Option<parks::Park>,
    /// `stored` (set with `set-credentials`), `configured` (the configuration's reference)
    /// or `none`.
    credentials: &'static str,
    credentials_updated_at_ms: Option<i64>,
    /// When a rotated refresh token was last stored, for the OAuth kinds.
    refresh_token_updated_at_ms: Option<i64>,
}

/// `erpsync connections [list]`.
pub async fn list(cfg: &Config, json: bool) -> Result<()> {
    let db = open_db(cfg).await?;
    let parked = parks::all(&db).await?;
    let versions: std::collections::HashMap<String, i64> =
        connection_credentials::versions(&db).await?.into_iter().collect();
    let mut rows = Vec::new();
    for c in &cfg.connections {
        let park = parked.iter().find(|p| p.connection_id == c.id.as_str()).cloned();
        let stored = versions.get(c.id.as_str()).copied();
        rows.push(Row {
            id: c.id.to_string(),
            erp: c.erp.as_str(),
            tenant: c.tenant.clone(),
            state: if park.is_some() { "parked" } else { "active" },
            parked: park,
            credentials: match (stored, &c.credentials) {
                (Some(_), _) => "stored",
                (None, Some(_)) => "configured",
                (None, None) => "none",
            },
            credentials_updated_at_ms: stored,
            refresh_token_updated_at_ms: erp_tokens::updated_at(&db, c.id.as_str()).await?,
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    for r in rows {
        let state = match &r.parked {
            Some(p) => format!("parked: {} since {} — {}", p.reason.as_str(), time(p.parked_at_ms), p.detail),
            None => "active".to_owned(),
        };
        let creds = match r.credentials_updated_at_ms {
            Some(ms) => format!("credentials stored {}", time(ms)),
            None => format!("credentials {}", r.credentials),
        };
        println!("{:<20} {:<18} tenant {:<12} {creds:<44} {state}", r.id, r.erp, r.tenant);
    }
    Ok(())
}

/// `erpsync connections set-credentials ID --file creds.json`: stored sealed, once a
/// client can be built with them; running daemons use them within a second.
pub async fn set_credentials(cfg: &Config, id: &str, file: &std::path::Path) -> Result<()> {
    let conn = find(cfg, id)?;
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let text = SecretString::from(text.trim().to_owned());
    let key = secrets_key(cfg)?;
    let db = open_db(cfg).await?;
    let version = crate::connections::set_credentials(&db, key.as_ref(), conn, text)
        .await
        .map_err(|e| anyhow::anyhow!("connection {id}: credentials: {e}"))?;
    println!("credentials of {id} stored ({})", time(version));
    if parks::of(&db, id).await?.is_some() {
        println!("{id} is still parked: `erpsync connections resume {id}` resumes it");
    }
    Ok(())
}

/// `erpsync connections park ID`: its items wait, unattempted, until it is resumed.
pub async fn park(cfg: &Config, id: &str, detail: &str) -> Result<()> {
    find(cfg, id)?;
    let db = open_db(cfg).await?;
    let detail = if detail.is_empty() { "parked by an operator" } else { detail };
    if !parks::park(&db, cfg.tenant_of(id).unwrap_or(DEFAULT_TENANT), id, ParkReason::Operator, detail).await? {
        bail!("{id} is parked already");
    }
    println!("{id} parked");
    Ok(())
}

/// `erpsync connections resume ID`: its waiting items are sent again.
pub async fn resume(cfg: &Config, id: &str) -> Result<()> {
    find(cfg, id)?;
    if !parks::resume(&open_db(cfg).await?, cfg.tenant_of(id).unwrap_or(DEFAULT_TENANT), id).await? {
        bail!("{id} is not parked");
    }
    println!("{id} resumed: its waiting items are sent again");
    Ok(())
}
