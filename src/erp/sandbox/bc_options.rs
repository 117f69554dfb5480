//! How the Business Central dialect behaves: its Entra application clients, the tenant,
//! environment and company it serves, and its limits. The limits default to Microsoft's own
//! (per user: 5 requests processed at once, 95 more queued, 6,000 in a sliding five-minute
//! window); the generic `--concurrency`, `--rate-per-min` and `--token` do not apply to it.

/// The Microsoft Entra tenant, environment and company the dialect serves unless told
/// otherwise.
pub const BC_SANDBOX_TENANT: &str = "7e3c1f0a-4b2d-4c8e-9a61-5d2f3e4a5b6c";
pub const BC_SANDBOX_ENVIRONMENT: &str = "production";
pub const BC_SANDBOX_COMPANY: &str = "b2a1c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d";

/// An Entra application registered in the simulated environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessCentralClient {
    pub client_id: String,
    pub client_secret: String,
}

impl std::str::FromStr for BusinessCentralClient {
    type Err = String;

    /// `CLIENT_ID:CLIENT_SECRET`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {
                Ok(BusinessCentralClient { client_id: id.into(), client_secret: secret.into() })
            }
            _ => Err("expected CLIENT_ID:CLIENT_SECRET".into()),
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct BusinessCentralOptions {
    /// Entra applications as CLIENT_ID:CLIENT_SECRET (repeatable); each is one API user
    /// with limits of its own.
    #[arg(id = "bc_client", long = "bc-client", default_value = "bc-client:bc-secret")]
    pub clients: Vec<BusinessCentralClient>,
    /// The Microsoft Entra tenant (directory) of the environment.
    #[arg(id = "bc_tenant", long = "bc-tenant", default_value = BC_SANDBOX_TENANT)]
    pub tenant: String,
    /// The environment's name.
    #[arg(id = "bc_environment", long = "bc-environment", default_value = BC_SANDBOX_ENVIRONMENT)]
    pub environment: String,
    /// The company's id.
    #[arg(id = "bc_company", long = "bc-company", default_value = BC_SANDBOX_COMPANY)]
    pub company: String,
    /// Lifetime of an access token, in seconds (the identity platform answers 3599).
    #[arg(id = "bc_access_token_secs", long = "bc-access-token-secs", default_value_t = 3599)]
    pub access_token_secs: u64,
    /// Requests processed at once per user; more wait in the queue.
    #[arg(id = "bc_concurrent_limit", long = "bc-concurrent-limit", default_value_t = 5)]
    pub concurrent_limit: u64,
    /// Requests that may wait for a processing slot per user; past them (and the
    /// concurrent ones) the dialect answers 429.
    #[arg(id = "bc_queue_limit", long = "bc-queue-limit", default_value_t = 95)]
    pub queue_limit: u64,
    /// Requests per user in a sliding five-minute window.
    #[arg(id = "bc_rate_per_5min", long = "bc-rate-per-5min", default_value_t = 6_000)]
    pub rate_per_5min: u32,
}

impl Default for BusinessCentralOptions {
    fn default() -> Self {
        BusinessCentralOptions {
            clients: vec![BusinessCentralClient { client_id: "bc-client".into(), client_secret: "bc-secret".into() }],
            tenant: BC_SANDBOX_TENANT.into(),
            environment: BC_SANDBOX_ENVIRONMENT.into(),
            company: BC_SANDBOX_COMPANY.into(),
            access_token_secs: 3599,
            concurrent_limit: 5,
            queue_limit: 95,
            rate_per_5min: 6_000,
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
        let args = ["sandbox-erp", "--bc-rate-per-5min", "7", "--bc-client", "a:b", "--bc-client", "c:d"];
        let o = SandboxOptions::from_arg_matches(&cmd.try_get_matches_from(args).unwrap()).unwrap();
        assert_eq!(o.business_central.rate_per_5min, 7);
        assert_eq!(o.business_central.clients.len(), 2);
        assert_eq!(o.business_central.concurrent_limit, 5);
        assert!("nocolon".parse::<BusinessCentralClient>().is_err());
    }
}
