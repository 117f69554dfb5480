//! API tokens: minting, and the statements on `api_tokens`. A token is `erps_` and 64 hex
//! digits (32 random bytes); only its SHA-256 is stored, so a copy of the database lets
//! no one call the API.

use crate::util::now_ms;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement, Value};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// What every token starts with, so a leaked one is recognisable (secret scanners, logs).
pub const PREFIX: &str = "erps_";

/// What a token allows, each scope including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Reading: every `GET`.
    Read,
    /// Reading and submitting work (`POST /v1/jobs`).
    Write,
    /// Everything, managing connections and tokens included.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// Whether a token of this scope may do what `needed` allows.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Scope, String> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            other => Err(format!("{other:?} is not a scope (read, write or admin)")),
        }
    }
}

/// A token's row, as `list` shows it and the API checks it.
#[derive(Debug, Clone, Serialize)]
pub struct TokenRecord {
    pub id: String,
    pub tenant: String,
    pub scope: Scope,
    pub name: String,
    /// The token's last four characters, to tell tokens apart without showing them.
    pub last_four: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// A token just created: its text (shown once, never stored) and its row.
#[derive(Debug, Clone)]
pub struct Minted {
    pub token: String,
    pub record: TokenRecord,
}

/// The SHA-256 of a token's text, in hex: what the table keeps and is searched by.
pub fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest.iter() {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// Whether `token` has the shape of one of ours (it may still be unknown).
pub fn well_formed(token: &str) -> bool {
    token
        .strip_prefix(PREFIX)
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

fn stmt(db: &DatabaseConnection, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(db.get_database_backend(), sql, values)
}

const COLUMNS: &str = "id, tenant, scope, name, last_four, created_at_ms, revoked_at_ms";

fn record(r: &sea_orm::QueryResult) -> Result<TokenRecord, DbErr> {
    let scope: String = r.try_get_by_index(2)?;
    Ok(TokenRecord {
        id: r.try_get_by_index(0)?,
        tenant: r.try_get_by_index(1)?,
        scope: scope.parse().map_err(DbErr::Custom)?,
        name: r.try_get_by_index(3)?,
        last_four: r.try_get_by_index(4)?,
        created_at_ms: r.try_get_by_index(5)?,
        revoked_at_ms: r.try_get_by_index(6)?,
    })
}

/// Creates a token for `tenant` with `scope`; the caller shows its text once.
pub async fn create(db: &DatabaseConnection, tenant: &str, scope: Scope, name: &str) -> Result<Minted, DbErr> {
    // The thread RNG is a CSPRNG seeded from the OS.
    let secret: [u8; 32] = rand::random();
    let mut token = String::with_capacity(PREFIX.len() + 64);
    token.push_str(PREFIX);
    for b in secret {
        let _ = write!(token, "{b:02x}");
    }
    let record = TokenRecord {
        id: uuid::Uuid::now_v7().to_string(),
        tenant: tenant.to_owned(),
        scope,
        name: name.to_owned(),
        last_four: token[token.len() - 4..].to_owned(),
        created_at_ms: now_ms(),
        revoked_at_ms: None,
    };
    db.execute_raw(stmt(
        db,
        "INSERT INTO api_tokens (id, token_hash, tenant, scope, name, last_four, created_at_ms, revoked_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        vec![
            record.id.clone().into(),
            hash(&token).into(),
            record.tenant.clone().into(),
            scope.as_str().into(),
            record.name.clone().into(),
            record.last_four.clone().into(),
            record.created_at_ms.into(),
        ],
    ))
    .await?;
    Ok(Minted { token, record })
}

/// Every token, revoked ones included, oldest first.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<TokenRecord>, DbErr> {
    let rows = db
        .query_all_raw(stmt(db, &format!("SELECT {COLUMNS} FROM api_tokens ORDER BY created_at_ms, id"), vec![]))
        .await?;
    rows.iter().map(record).collect()
}

/// The token whose text hashes to `token_hash`, revoked or not.
///
/// Looked up by the hash, not compared: an attacker timing the answer learns at most
/// how much of a SHA-256 they chose matched a stored one, which tells nothing about any
/// token's text, so no constant-time comparison is needed.
pub async fn by_hash(db: &DatabaseConnection, token_hash: &str) -> Result<Option<TokenRecord>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            db,
            &format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1"),
            vec![token_hash.to_owned().into()],
        ))
        .await?;
    row.as_ref().map(record).transpose()
}

/// Revokes token `id`; false if there is no such token or it was revoked already.
pub async fn revoke(db: &DatabaseConnection, id: &str) -> Result<bool, DbErr> {
    let done = db
        .execute_raw(stmt(
            db,
            "UPDATE api_tokens SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
            vec![now_ms().into(), id.to_owned().into()],
        ))
        .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_include_the_lesser_ones() {
        assert!(Scope::Admin.allows(Scope::Write) && Scope::Write.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Write) && !Scope::Write.allows(Scope::Admin));
        assert_eq!("write".parse::<Scope>(), Ok(Scope::Write));
        assert!("root".parse::<Scope>().is_err());
    }

    #[test]
    fn only_our_shape_is_well_formed() {
        let good = format!("{PREFIX}{}", "ab".repeat(32));
        assert!(well_formed(&good));
        assert!(!well_formed(&good[..good.len() - 1]));
        assert!(!well_formed(&good.replace("erps_", "erpx_")));
        assert!(!well_formed(&good.to_uppercase()));
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
