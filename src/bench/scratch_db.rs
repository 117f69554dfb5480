//! Scratch databases for benchmarks (and the tests, through `tests/common`): a fresh
//! PostgreSQL database per caller, so parallel runs never see each other's rows.

use sea_orm::{ConnectionTrait, Database};

/// The server to create scratch databases on: `ERPSYNC_TEST_PG_URL` (`scripts/test.sh`
/// starts PostgreSQL and sets it), else the local server with trust auth.
pub fn admin_url() -> String {
    std::env::var("ERPSYNC_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty database on the server at `admin` and returns its URL.
pub async fn fresh_postgres_on(admin: &str) -> Result<String, String> {
    let db = Database::connect(admin).await.map_err(|e| format!("PostgreSQL is needed at {admin} ({e})"))?;
    let name = format!("erpsync_t_{}", uuid::Uuid::new_v4().simple());
    db.execute_unprepared(&format!("CREATE DATABASE {name}")).await.map_err(|e| format!("CREATE DATABASE: {e}"))?;
    let mut url = reqwest::Url::parse(admin).map_err(|e| format!("{admin:?} is not a URL: {e}"))?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}
