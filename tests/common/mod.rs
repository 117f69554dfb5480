//! Helpers shared by the integration tests: the services they need (a scratch PostgreSQL
//! database, SQS-compatible servers), which fail the test saying how to start them rather
//! than skip it, and the `erpsync` binary run as a process.
#![allow(dead_code)]

pub mod vendor;

/// Each named `async fn(url: &str)` as a test on a scratch SQLite file and on a fresh
/// PostgreSQL database (`#[macro_use] mod common;` to use it).
#[allow(unused_macros)]
macro_rules! on_sqlite_and_postgres {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$name(&format!("sqlite://{}/store.db?mode=rwc", dir.path().display())).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&crate::common::fresh_postgres().await).await;
                }
            )*
        }
    };
}

use std::net::TcpListener;
use std::process::Child;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_erpsync");

/// A free loopback port (bound, then released for the process under test to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed and reaped when the test ends, pass or fail.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh, empty PostgreSQL database; panics with instructions when no server answers: a
/// test that needs one must not pass without it.
pub async fn fresh_postgres() -> String {
    erpsync::bench::scratch_db::fresh_postgres_on(&erpsync::bench::scratch_db::admin_url()).await.unwrap_or_else(|e| {
        panic!(
            "{e}. Start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
             or run the suite through scripts/test.sh, which does; ERPSYNC_TEST_PG_URL overrides the URL"
        )
    })
}

/// The endpoint of an SQS-compatible server for tests, from environment variable `var`
/// (`scripts/test.sh` starts the servers and sets it). Panics, saying how to start one,
/// when it is unset or nothing listens there: a test that needs a server never skips.
pub fn emulator_endpoint(var: &str, how_to_start: &str) -> String {
    let fail = |why: String| -> ! {
        panic!(
            "{why}. These tests need a real SQS-compatible server: run `scripts/test.sh`, which installs and \
             starts fauxqs and moto_server, or start it yourself ({how_to_start}) and export {var}=http://127.0.0.1:PORT \
             (and dummy AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
        )
    };
    let Ok(url) = std::env::var(var) else { fail(format!("{var} is not set")) };
    let Ok(parsed) = reqwest::Url::parse(&url) else { fail(format!("{var}={url:?} is not a URL")) };
    let addr = format!("{}:{}", parsed.host_str().unwrap_or("127.0.0.1"), parsed.port_or_known_default().unwrap_or(80));
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&addr)
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    if !reachable {
        fail(format!("nothing answers at {url} ({var})"));
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        fail("AWS_ACCESS_KEY_ID is not set".into());
    }
    url
}

/// fauxqs's endpoint for tests (`FAUXQS_URL`), see [`emulator_endpoint`].
pub fn fauxqs_endpoint() -> String {
    emulator_endpoint("FAUXQS_URL", "FAUXQS_PORT=4566 npx fauxqs@2.4.1, on Node >= 22.5")
}

/// moto_server's endpoint for tests (`MOTO_URL`), see [`emulator_endpoint`].
pub fn moto_endpoint() -> String {
    emulator_endpoint("MOTO_URL", "pip install 'moto[server]' && moto_server -p 5000")
}

/// A moto_server that checks signatures (`MOTO_AUTH_URL`: started with
/// `INITIAL_NO_AUTH_ACTION_COUNT=4`, fresh for each run), see [`emulator_endpoint`].
pub fn moto_auth_endpoint() -> String {
    emulator_endpoint("MOTO_AUTH_URL", "INITIAL_NO_AUTH_ACTION_COUNT=4 moto_server -p 5001 (a fresh one)")
}

/// A fresh write token for tenant `default`, made by `erpsync tokens create` on the
/// database of the config file `config` (which it migrates first, so a daemon need not
/// have run).
pub fn cli_token(config: &std::path::Path) -> String {
    let out = std::process::Command::new(BIN)
        .args(["tokens", "create", "--tenant", "default", "--scope", "write", "--config", config.to_str().unwrap()])
        .env_remove("ERPSYNC_CONFIG")
        .output()
        .expect("erpsync runs");
    assert!(out.status.success(), "tokens create: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A fresh write token for tenant `default` in the database at `url` (migrated first).
pub async fn db_token(url: &str) -> String {
    let db = erpsync::store::connect(url, 1).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    let scope = erpsync::store::tokens::Scope::Write;
    erpsync::store::tokens::create(&db, "default", scope, "test").await.unwrap().token
}

/// An HTTP client that sends `token` as its bearer token with every request.
pub fn authed_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}
