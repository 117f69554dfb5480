//! How the Sage Intacct dialect behaves: the Web Services sender and company user it
//! accepts, its session lifetime and its concurrency limit (Sage's lowest performance
//! tier: 6 requests at once per company). The generic `--concurrency`, `--rate-per-min`
//! and `--token` do not apply to it.

/// The company the Intacct dialect serves.
pub const INTACCT_SANDBOX_COMPANY: &str = "erpsync-sandbox";

/// How the Sage Intacct dialect behaves.
#[derive(Debug, Clone, clap::Args)]
pub struct IntacctOptions {
    /// The Web Services sender id the gateway accepts.
    #[arg(id = "intacct_sender_id", long = "intacct-sender-id", default_value = "erpsync-sender")]
    pub sender_id: String,
    /// The sender's password.
    #[arg(id = "intacct_sender_password", long = "intacct-sender-password", default_value = "sender-secret")]
    pub sender_password: String,
    /// The company id users sign in to.
    #[arg(id = "intacct_company_id", long = "intacct-company-id", default_value = INTACCT_SANDBOX_COMPANY)]
    pub company_id: String,
    /// The Web Services user.
    #[arg(id = "intacct_user_id", long = "intacct-user-id", default_value = "ws-erpsync")]
    pub user_id: String,
    /// The user's password.
    #[arg(id = "intacct_user_password", long = "intacct-user-password", default_value = "user-secret")]
    pub user_password: String,
    /// Lifetime of an API session, in seconds (a company setting in Intacct).
    #[arg(id = "intacct_session_secs", long = "intacct-session-secs", default_value_t = 3600)]
    pub session_secs: u64,
    /// Requests processed at once for the company; past it the gateway answers 429 GW-0010.
    #[arg(id = "intacct_concurrent_limit", long = "intacct-concurrent-limit", default_value_t = 6)]
    pub concurrent_limit: u64,
}

impl Default for IntacctOptions {
    fn default() -> Self {
        IntacctOptions {
            sender_id: "erpsync-sender".into(),
            sender_password: "sender-secret".into(),
            company_id: INTACCT_SANDBOX_COMPANY.into(),
            user_id: "ws-erpsync".into(),
            user_password: "user-secret".into(),
            session_secs: 3600,
            concurrent_limit: 6,
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
        let args = ["sandbox-erp", "--intacct-concurrent-limit", "8", "--intacct-session-secs", "30"];
        let o = SandboxOptions::from_arg_matches(&cmd.try_get_matches_from(args).unwrap()).unwrap();
        assert_eq!((o.intacct.concurrent_limit, o.intacct.session_secs), (8, 30));
        assert_eq!(o.intacct.user_id, IntacctOptions::default().user_id);
    }
}
