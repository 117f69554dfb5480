//! OAuth 2.0 access tokens from a rotating refresh token (RFC 6749 §6), as QuickBooks and
//! Xero issue them: the access token is cached until shortly before it expires; a refresh
//! spends the refresh token and the vendor answers with the next one, which is stored
//! (sealed) before anything else happens, so a restart or another daemon refreshes with the
//! newest. Refreshes of one connection are serialised: in this process by the cache's lock,
//! across the fleet by the store's refresh lock.

use super::ErpError;
use super::bearer::{self, AccessTokens};
pub use super::bearer::{Refused, Sent};
use super::credentials_doc;
use super::module::ClientContext;
use crate::config::connection::ConnectionConfig;
use crate::secrets::SecretKey;
use crate::store::erp_tokens::{self, StoredToken};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// An access token is refreshed this long before the vendor says it expires, so a call
/// made with it does not arrive after it has lapsed.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// The secrets of an OAuth connection (QuickBooks, Xero): exactly these keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    client_id: String,
    client_secret: String,
    refresh_token: String,
}

/// The keys of its credentials document, all required.
const KEYS: [&str; 3] = ["client_id", "client_secret", "refresh_token"];

/// Reads a connection's credentials document, naming what is wrong without quoting it.
pub fn credentials(conn: &ConnectionConfig, text: Option<&SecretString>) -> Result<Credentials, String> {
    credentials_doc::read(conn, text, &KEYS)
}

/// The connection's credentials problem, if its reference reads but its document is not
/// the kind's (an unreadable reference is reported by the connection's own checks).
pub fn credentials_problem(conn: &ConnectionConfig) -> Option<(&'static str, String)> {
    credentials_doc::problem::<Credentials>(conn, &KEYS)
}

/// The HTTP client of one connection: its timeouts, one idle connection per concurrent call.
pub fn http_client(conn: &ConnectionConfig, cx: &ClientContext) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(conn.request_timeout())
        .connect_timeout(conn.connect_timeout())
        .pool_max_idle_per_host(cx.max_concurrency as usize)
        .user_agent(concat!("erpsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// The refresh flow of one connection, its token endpoint `token_url` unless the
/// connection names another.
pub fn flow(
    conn: &ConnectionConfig,
    text: Option<&SecretString>,
    token_url: &str,
    http: reqwest::Client,
    cx: &ClientContext,
) -> Result<RefreshFlow, String> {
    let creds = credentials(conn, text)?;
    let key = cx
        .secrets
        .clone()
        .ok_or_else(|| format!("secrets.key is required to store {}'s rotating refresh tokens", conn.erp.as_str()))?;
    let token_url = conn.token_url.as_deref().unwrap_or(token_url);
    let token_url = Url::parse(token_url).map_err(|e| format!("token_url {token_url:?}: {e}"))?;
    let client = OAuthClient {
        connection: conn.id.to_string(),
        token_url,
        client_id: creds.client_id,
        client_secret: SecretString::from(creds.client_secret),
        seed_refresh_token: SecretString::from(creds.refresh_token),
    };
    Ok(RefreshFlow::new(client, http, cx.db.clone(), key))
}

/// A connection's OAuth client: who it is and the refresh token its credentials began with.
pub struct OAuthClient {
    pub connection: String,
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: SecretString,
    pub seed_refresh_token: SecretString,
}

pub struct RefreshFlow {
    client: OAuthClient,
    http: reqwest::Client,
    db: sea_orm::DatabaseConnection,
    key: SecretKey,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    access: Option<(SecretString, Instant)>,
    /// A refresh token the vendor issued that could not be stored: used for the next
    /// refresh in preference to the stored (already spent) one.
    unstored: Option<SecretString>,
    refreshes: u64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl AccessTokens for RefreshFlow {
    async fn access_token(&self) -> Result<SecretString, ErpError> {
        RefreshFlow::access_token(self).await
    }

    async fn expired(&self, used: &SecretString) {
        RefreshFlow::expired(self, used).await
    }
}

impl RefreshFlow {
    pub fn new(client: OAuthClient, http: reqwest::Client, db: sea_orm::DatabaseConnection, key: SecretKey) -> Self {
        RefreshFlow { client, http, db, key, state: Mutex::new(State::default()) }
    }

    /// A valid access token: the cached one, or a fresh one from a refresh.
    pub async fn access_token(&self) -> Result<SecretString, ErpError> {
        let mut state = self.state.lock().await;
        if let Some((token, until)) = &state.access
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        self.refresh(&mut state).await
    }

    /// The vendor refused `used` as expired: forget it (unless a newer one replaced it
    /// meanwhile), so the next [`RefreshFlow::access_token`] refreshes.
    pub async fn expired(&self, used: &SecretString) {
        let mut state = self.state.lock().await;
        if state.access.as_ref().is_some_and(|(t, _)| t.expose_secret() == used.expose_secret()) {
            state.access = None;
        }
    }

    /// Sends the request `build` makes with a valid access token, refreshed once when the
    /// vendor says (as `expired` reads its answer) that it expired (see [`bearer::send`]).
    pub async fn send(
        &self,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
        expired: impl Fn(&reqwest::header::HeaderMap, &str) -> bool,
    ) -> Result<Result<reqwest::Response, Refused>, Sent> {
        bearer::send(self, build, expired).await
    }

    /// How many refreshes this process made.
    pub async fn refreshes(&self) -> u64 {
        self.state.lock().await.refreshes
    }

    async fn refresh(&self, state: &mut State) -> Result<SecretString, ErpError> {
        let store_err =
            |e: sea_orm::DbErr| ErpError::Transient(format!("cannot read or lock the stored refresh token: {e}"));
        let (lock, stored) = erp_tokens::lock(&self.db, &self.client.connection).await.map_err(store_err)?;
        let current = match (state.unstored.clone(), stored) {
            (Some(t), _) => t,
            (None, Some(stored)) if self.opens_to_seed(&stored) => self
                .key
                .open(&self.client.connection, &stored.sealed)
                .map_err(|e| ErpError::Auth { status: 0, message: format!("the stored refresh token: {e}") })?,
            // Nothing stored yet, or the operator gave new credentials since.
            _ => self.client.seed_refresh_token.clone(),
        };
        let answer = self.exchange(&current).await?;
        state.refreshes += 1;
        let next = SecretString::from(answer.refresh_token.unwrap_or_else(|| current.expose_secret().to_owned()));
        let row = StoredToken {
            sealed: self.key.seal(&self.client.connection, &next),
            seed: self.key.seal(&self.client.connection, &self.client.seed_refresh_token),
        };
        match lock.store(&row).await {
            Ok(()) => state.unstored = None,
            Err(e) => {
                tracing::error!(
                    connection = %self.client.connection,
                    error = %e,
                    "the rotated refresh token could not be stored; this process keeps it and stores it at the next refresh"
                );
                state.unstored = Some(next);
            }
        }
        let lifetime = Duration::from_secs(answer.expires_in).saturating_sub(EXPIRY_MARGIN);
        let access = SecretString::from(answer.access_token);
        state.access = Some((access.clone(), Instant::now() + lifetime));
        Ok(access)
    }

    fn opens_to_seed(&self, stored: &StoredToken) -> bool {
        self.key
            .open(&self.client.connection, &stored.seed)
            .is_ok_and(|seed| seed.expose_secret() == self.client.seed_refresh_token.expose_secret())
    }

    /// One `grant_type=refresh_token` request, client credentials in HTTP Basic auth.
    async fn exchange(&self, refresh_token: &SecretString) -> Result<TokenAnswer, ErpError> {
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())];
        let resp = self
            .http
            .post(self.client.token_url.clone())
            .basic_auth(&self.client.client_id, Some(self.client.client_secret.expose_secret()))
            .form(&form)
            .send()
            .await
            .map_err(|e| ErpError::Transient(format!("token endpoint unreachable: {e}")))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_str(&text)
                .map_err(|e| ErpError::Transient(format!("unreadable token endpoint answer: {e}")));
        }
        let refused = serde_json::from_str::<TokenError>(&text).ok();
        let what = refused
            .as_ref()
            .map(|e| {
                format!("{}{}", e.error, e.error_description.as_ref().map(|d| format!(": {d}")).unwrap_or_default())
            })
            .unwrap_or_else(|| text.chars().take(200).collect());
        Err(match (status, refused.as_ref().map(|e| e.error.as_str())) {
            (_, Some("invalid_grant")) => ErpError::Revoked {
                message: format!("the refresh token was refused ({what}): give the connection new credentials"),
            },
            // A client secret the vendor no longer accepts does not heal either.
            (_, Some("invalid_client" | "unauthorized_client")) => ErpError::Revoked {
                message: format!("the client credentials were refused ({what}): give the connection new credentials"),
            },
            (StatusCode::TOO_MANY_REQUESTS, _) => ErpError::Throttled { retry_after: None },
            (s, _) if s.is_server_error() => ErpError::Transient(format!("token endpoint answered {s}: {what}")),
            (s, _) => ErpError::Auth { status: s.as_u16(), message: format!("token endpoint answered {s}: {what}") },
        })
    }
}
