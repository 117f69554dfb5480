//! Scratch databases for tests and benchmarks: a fresh PostgreSQL database per caller, so
//! parallel tests never see each other's rows.

use sea_orm::{ConnectionTrait, Database};

/// The server to create scratch databases on. `scripts/test.sh` starts PostgreSQL and sets
/// this; the default is the local server with trust auth.
pub fn admin_url() -> String {
    std::env::var("ERPSYNC_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty database and returns its URL. Panics with instructions when no
/// PostgreSQL server answers: a test that needs one must not pass without it.
pub async fn fresh_postgres() -> String {
    fresh_postgres_on(&admin_url()).await
}

/// Like [`fresh_postgres`], on the server at `admin`.
pub async fn fresh_postgres_on(admin: &str) -> String {
    let admin = admin.to_owned();
    let db = Database::connect(&admin).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is needed at {admin} ({e}). Start it with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
             or run the suite through scripts/test.sh, which does; ERPSYNC_TEST_PG_URL overrides the URL"
        )
    });
    let name = format!("erpsync_t_{}", uuid::Uuid::new_v4().simple());
    db.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("CREATE DATABASE");
    let mut url = reqwest::Url::parse(&admin).expect("ERPSYNC_TEST_PG_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}
