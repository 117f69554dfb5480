//! How the NetSuite dialect behaves: the account it simulates, the one TBA token it knows
//! (consumer key and secret of an integration record, token id and secret of a user-role
//! token) and the account's concurrency limit. The generic `--concurrency`,
//! `--rate-per-min` and `--token` do not apply to it.

/// The account the NetSuite dialect serves unless told otherwise: a sandbox account, so
/// the `_SB1` → `-sb1` mapping of realm and host is exercised.
pub const NETSUITE_SANDBOX_ACCOUNT: &str = "1234567_SB1";

/// How the NetSuite dialect behaves.
#[derive(Debug, Clone, clap::Args)]
pub struct NetsuiteOptions {
    /// The account id, which every signature's `realm` must name.
    #[arg(id = "ns_account", long = "ns-account", default_value = NETSUITE_SANDBOX_ACCOUNT)]
    pub account: String,
    /// The integration record's consumer key.
    #[arg(id = "ns_consumer_key", long = "ns-consumer-key", default_value = "ns-consumer-key")]
    pub consumer_key: String,
    /// The integration record's consumer secret.
    #[arg(id = "ns_consumer_secret", long = "ns-consumer-secret", default_value = "ns-consumer-secret")]
    pub consumer_secret: String,
    /// The access token's id.
    #[arg(id = "ns_token_id", long = "ns-token-id", default_value = "ns-token-id")]
    pub token_id: String,
    /// The access token's secret.
    #[arg(id = "ns_token_secret", long = "ns-token-secret", default_value = "ns-token-secret")]
    pub token_secret: String,
    /// Requests in progress at once for the account (NetSuite's base tier: 5; each
    /// SuiteCloud Plus licence adds 10).
    #[arg(id = "ns_concurrency_limit", long = "ns-concurrency-limit", default_value_t = 5)]
    pub concurrency_limit: u64,
    /// How far a signature's `oauth_timestamp` may be from the simulator's clock, in seconds.
    #[arg(id = "ns_timestamp_skew_secs", long = "ns-timestamp-skew-secs", default_value_t = 300)]
    pub timestamp_skew_secs: u64,
}

impl Default for NetsuiteOptions {
    fn default() -> Self {
        NetsuiteOptions {
            account: NETSUITE_SANDBOX_ACCOUNT.into(),
            consumer_key: "ns-consumer-key".into(),
            consumer_secret: "ns-consumer-secret".into(),
            token_id: "ns-token-id".into(),
            token_secret: "ns-token-secret".into(),
            concurrency_limit: 5,
            timestamp_skew_secs: 300,
        }
    }
}
