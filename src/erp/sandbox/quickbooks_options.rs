//! How the QuickBooks Online dialect behaves: its OAuth clients, companies (realms) and
//! limits. Its limits default to Intuit's own (per realm: 10 requests in progress, 500 a
//! minute); the generic `--concurrency`, `--rate-per-min` and `--token` do not apply to it.

/// The company the QuickBooks dialect serves unless told otherwise (realm ids are digits).
pub const QBO_SANDBOX_REALM: &str = "9130357992221046";

/// An OAuth client the QuickBooks dialect knows, with the refresh token it starts from.
pub type QuickbooksClient = super::token_book::OAuthClient;

/// How the QuickBooks Online dialect behaves.
#[derive(Debug, Clone, clap::Args)]
pub struct QuickbooksOptions {
    /// OAuth clients as CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN (repeatable); the refresh
    /// token is each client's first, rotated on every use.
    #[arg(id = "qbo_client", long = "qbo-client", default_value = "qbo-client:qbo-secret:qbo-refresh-token")]
    pub clients: Vec<QuickbooksClient>,
    /// Realm ids (companies) the tokens reach (repeatable); another realm answers 403.
    #[arg(id = "qbo_realm", long = "qbo-realm", default_value = QBO_SANDBOX_REALM)]
    pub realms: Vec<String>,
    /// Lifetime of an access token, in seconds (Intuit: 3600).
    #[arg(id = "qbo_access_token_secs", long = "qbo-access-token-secs", default_value_t = 3600)]
    pub access_token_secs: u64,
    /// How long a rotated refresh token still answers, in seconds. Intuit documents only
    /// "use the latest refresh_token"; 0 refuses the previous one at once.
    #[arg(id = "qbo_refresh_grace_secs", long = "qbo-refresh-grace-secs", default_value_t = 0)]
    pub refresh_grace_secs: u64,
    /// Requests in progress at once per realm (Intuit: 10).
    #[arg(id = "qbo_concurrent_limit", long = "qbo-concurrent-limit", default_value_t = 10)]
    pub concurrent_limit: u64,
    /// Requests per minute per realm (Intuit: 500).
    #[arg(id = "qbo_minute_limit", long = "qbo-minute-limit", default_value_t = 500)]
    pub minute_limit: u32,
    /// The company setting "warn if duplicate bill number is used": a second bill of a
    /// vendor with the same DocNumber is refused (6140) instead of created.
    #[arg(id = "qbo_warn_duplicate_doc_number", long = "qbo-warn-duplicate-doc-number")]
    pub warn_duplicate_doc_number: bool,
}

impl Default for QuickbooksOptions {
    fn default() -> Self {
        QuickbooksOptions {
            clients: vec![QuickbooksClient {
                client_id: "qbo-client".into(),
                client_secret: "qbo-secret".into(),
                refresh_token: "qbo-refresh-token".into(),
            }],
            realms: vec![QBO_SANDBOX_REALM.into()],
            access_token_secs: 3600,
            refresh_grace_secs: 0,
            concurrent_limit: 10,
            minute_limit: 500,
            warn_duplicate_doc_number: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::options::SandboxOptions;
    use super::*;
    use clap::{Args, FromArgMatches};

    #[test]
    fn the_flags_parse_beside_every_other_dialects() {
        let cmd = SandboxOptions::augment_args(clap::Command::new("sandbox-erp"));
        cmd.clone().debug_assert();
        let args = ["sandbox-erp", "--qbo-minute-limit", "3", "--qbo-warn-duplicate-doc-number"];
        let o = SandboxOptions::from_arg_matches(&cmd.try_get_matches_from(args).unwrap()).unwrap();
        assert_eq!(o.quickbooks.minute_limit, 3);
        assert!(o.quickbooks.warn_duplicate_doc_number);
        let defaults = QuickbooksOptions::default();
        assert_eq!((o.quickbooks.clients, o.quickbooks.realms), (defaults.clients, defaults.realms));
        assert_eq!(o.quickbooks.concurrent_limit, 10);
    }
}
