//! `[[connections]]`: one ERP connection, its settings and where its credentials come from.
//!
//! What depends on the connection's ERP kind (default limits, kind-specific checks) is
//! asked of the kind's module (`erp::registry`), not decided here.

use super::problem::{Problems, nz};
use crate::domain::{ConnectionId, ErpKind};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::num::NonZeroU32;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// Stable id; work items name their connection by it.
    pub id: ConnectionId,
    pub erp: ErpKind,
    /// Base URL of the ERP API (for `generic_rest`: the protocol root, required); empty
    /// means the vendor's production API root.
    #[serde(default)]
    pub base_url: String,
    /// OAuth kinds: the vendor's token endpoint (default: the vendor's own), so a
    /// connection can point at a simulator.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Xero: the organisation's tenant id, sent as `Xero-tenant-id`. Business Central:
    /// the Microsoft Entra tenant (directory) the environment belongs to. (`tenant` is
    /// erpsync's own tenant, the AP customer the connection belongs to.)
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Business Central: the environment's name (`production`, `sandbox`, …).
    #[serde(default)]
    pub environment: Option<String>,
    /// Business Central: the company's id (a GUID) in the environment.
    #[serde(default)]
    pub company_id: Option<String>,
    /// Sage Intacct: the entity (location) of a multi-entity company to work in; none
    /// means the top level.
    #[serde(default)]
    pub entity_id: Option<String>,
    /// QuickBooks Online: the company's realm id (API paths are under
    /// `{base_url}/v3/company/{realm_id}/`).
    #[serde(default)]
    pub realm_id: Option<String>,
    /// Where the API token comes from: `env:VAR`, `file:/path`, or `credential:NAME`
    /// (systemd `LoadCredential=`, read from `$CREDENTIALS_DIRECTORY`).
    #[serde(default)]
    pub credentials: Option<String>,
    /// Most ERP calls in flight at once; defaults to the ERP kind's documented limit.
    #[serde(default)]
    pub max_concurrency: Option<NonZeroU32>,
    /// Requests per minute; defaults to the ERP kind's documented rate, if any.
    #[serde(default)]
    pub rate_limit_per_min: Option<NonZeroU32>,
    /// Timeout of one ERP request.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: NonZeroU32,
    /// Timeout of establishing a connection to the ERP.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: NonZeroU32,
    /// Items held ready beyond the concurrency limit, so a freed slot is refilled at once
    /// (default: the limit, at least 10).
    #[serde(default)]
    pub prefetch: Option<u32>,
    /// Attach the rendered invoice PDF to each exported bill.
    #[serde(default = "default_true")]
    pub attach_pdf: bool,
    /// The tenant the connection belongs to: only that tenant's API tokens see it, its
    /// jobs, items and dead letters. Letters, digits, - _ .
    #[serde(default = "default_tenant")]
    pub tenant: String,
}

/// The tenant of a connection that names none (and of the built-in `sandbox`).
pub const DEFAULT_TENANT: &str = "default";

fn default_tenant() -> String {
    DEFAULT_TENANT.to_owned()
}

/// Whether `s` is a valid tenant (or other) id: non-empty, only letters, digits, - _ .
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
}

fn default_true() -> bool {
    true
}

fn default_request_timeout_ms() -> NonZeroU32 {
    nz(30_000)
}
fn default_connect_timeout_ms() -> NonZeroU32 {
    nz(5_000)
}

impl ConnectionConfig {
    /// A connection with the defaults of its ERP kind.
    pub fn new(id: &str, erp: ErpKind, base_url: &str) -> Self {
        ConnectionConfig {
            id: ConnectionId::new(id),
            erp,
            base_url: base_url.to_owned(),
            token_url: None,
            tenant_id: None,
            environment: None,
            company_id: None,
            entity_id: None,
            realm_id: None,
            credentials: None,
            max_concurrency: None,
            rate_limit_per_min: None,
            request_timeout_ms: default_request_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            prefetch: None,
            attach_pdf: true,
            tenant: default_tenant(),
        }
    }

    /// The most concurrent calls a connection may be configured for (every kind's
    /// documented default is within it).
    pub const MAX_CONCURRENCY: u32 = 100;

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.get().into())
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.get().into())
    }

    /// Resolves the credentials reference to the secret (a token, or the JSON document of
    /// the kind's secrets).
    pub fn resolve_token(&self) -> Result<Option<SecretString>, String> {
        self.credentials.as_deref().map(super::reference::resolve).transpose()
    }

    /// Every problem of the connection that does not depend on its ERP kind; `index` is its
    /// place in `connections`, `seen` the ids of those before it.
    pub fn validate(&self, index: usize, seen: &mut HashSet<ConnectionId>, p: &mut Problems) {
        let key = |field: &str| format!("connections[{index}].{field}");
        if self.id.as_str().is_empty()
            || !self.id.as_str().chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
        {
            p.add(key("id"), format!("{:?} must be non-empty and use only letters, digits, - _ .", self.id.as_str()));
        }
        if !seen.insert(self.id.clone()) {
            p.add(key("id"), format!("{:?} is declared twice", self.id.as_str()));
        }
        let urls = [
            ("base_url", Some(self.base_url.as_str()).filter(|u| !u.is_empty())),
            ("token_url", self.token_url.as_deref()),
        ];
        for (field, url) in urls {
            let Some(url) = url else { continue };
            match reqwest::Url::parse(url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                Ok(u) => p.add(key(field), format!("scheme {:?} is not http or https", u.scheme())),
                Err(e) => p.add(key(field), format!("{url:?} is not a URL: {e}")),
            }
        }
        if self.max_concurrency.is_some_and(|n| n.get() > Self::MAX_CONCURRENCY) {
            p.add(key("max_concurrency"), format!("must be at most {}", Self::MAX_CONCURRENCY));
        }
        if let Err(e) = self.resolve_token() {
            p.add(key("credentials"), e);
        }
        if !is_valid_id(&self.tenant) {
            p.add(key("tenant"), format!("{:?} must be non-empty and use only letters, digits, - _ .", self.tenant));
        }
    }
}
