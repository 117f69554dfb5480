//! Helpers for the statements built by hand: bind markers, scripts of statements sent as
//! one, padded multi-row statements, and the SQL fragments the item writes share.

use super::sqlite::JobWriter;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};

/// Bind-parameter markers for statements built by hand: `$1, $2, …` on PostgreSQL, and
/// anonymous `?` on SQLite. sqlx looks the name of every named SQLite parameter up in a
/// list that SQLite scans linearly, which is quadratic in the parameter count: a
/// statement of a thousand parameters would spend more time binding than writing. Values must be pushed in
/// the order their markers appear in the text.
pub(crate) struct Marks {
    pg: bool,
    n: usize,
}

impl Marks {
    pub(crate) fn new(backend: sea_orm::DbBackend) -> Marks {
        Marks { pg: backend == sea_orm::DbBackend::Postgres, n: 0 }
    }

    pub(crate) fn next(&mut self) -> String {
        self.n += 1;
        if self.pg { format!("${}", self.n) } else { "?".to_owned() }
    }

    /// `m, m, …` with `k` markers, for one row of a multi-row VALUES list.
    pub(crate) fn row(&mut self, k: usize) -> String {
        let marks: Vec<String> = (0..k).map(|_| self.next()).collect();
        marks.join(", ")
    }
}

/// Statements sent to the database as one: on SQLite, a single call whose text holds them
/// all (sqlx runs each in turn, binding the anonymous markers in order), so the worker
/// thread that runs SQLite is woken once rather than once per statement; on PostgreSQL,
/// one call each (its extended protocol takes one statement per call). Build each
/// statement's markers with its own [`Marks`].
pub(crate) struct Script {
    backend: sea_orm::DbBackend,
    sql: String,
    values: Vec<sea_orm::Value>,
    statements: Vec<sea_orm::Statement>,
}

impl Script {
    pub(crate) fn new(backend: sea_orm::DbBackend) -> Script {
        Script { backend, sql: String::new(), values: Vec::new(), statements: Vec::new() }
    }

    pub(crate) fn backend(&self) -> sea_orm::DbBackend {
        self.backend
    }

    pub(crate) fn push(&mut self, sql: &str, values: Vec<sea_orm::Value>) {
        if self.backend == sea_orm::DbBackend::Sqlite {
            if !self.sql.is_empty() {
                self.sql.push_str(";\n");
            }
            self.sql.push_str(sql);
            self.values.extend(values);
        } else {
            self.statements.push(sea_orm::Statement::from_sql_and_values(self.backend, sql, values));
        }
    }

    /// Runs the script as one transaction: on SQLite one call (see `run_sqlite`), on
    /// PostgreSQL a call per statement.
    pub(crate) async fn run_in_transaction(self, db: &DatabaseConnection) -> Result<(), DbErr> {
        if self.backend != sea_orm::DbBackend::Sqlite {
            let txn = db.begin().await?;
            self.run(&txn).await?;
            return txn.commit().await;
        }
        if self.sql.is_empty() {
            return Ok(());
        }
        let mut conn = db.get_sqlite_connection_pool().acquire().await.map_err(sqlx_failure)?;
        let result = self.run_sqlite(&mut conn).await;
        if result.is_err() {
            // Rather than back to the pool with a transaction perhaps still open.
            conn.close_on_drop();
        }
        result
    }

    /// [`run_in_transaction`](Self::run_in_transaction) on `writer`'s connection on SQLite
    /// (see [`JobWriter`]), on a pooled one otherwise.
    pub(crate) async fn run_in_transaction_on(self, writer: &JobWriter, db: &DatabaseConnection) -> Result<(), DbErr> {
        if self.backend != sea_orm::DbBackend::Sqlite || self.sql.is_empty() {
            return self.run_in_transaction(db).await;
        }
        let mut kept = writer.0.lock().await;
        let conn = match kept.as_mut() {
            Some(conn) => conn,
            None => {
                let pooled = db.get_sqlite_connection_pool().acquire().await.map_err(sqlx_failure)?;
                kept.insert(pooled.detach())
            }
        };
        let result = self.run_sqlite(conn).await;
        if result.is_err() {
            // Closed on drop; the next job takes a fresh connection.
            *kept = None;
        }
        result
    }

    /// The SQLite script as one call: `BEGIN IMMEDIATE`, the statements and `COMMIT` in one
    /// text, instead of three trips to the worker thread. Should a statement fail, the
    /// transaction is rolled back, and the caller must close the connection.
    async fn run_sqlite(self, conn: &mut sea_orm::sqlx::SqliteConnection) -> Result<(), DbErr> {
        let sql = format!("BEGIN IMMEDIATE;\n{};\nCOMMIT", self.sql);
        let query = sea_orm::sqlx::query_with(
            sea_orm::sqlx::AssertSqlSafe(sql),
            sea_query_sqlx::SqlxValues(sea_orm::Values(self.values)),
        );
        match query.execute(&mut *conn).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let _ = sea_orm::sqlx::query("ROLLBACK").execute(&mut *conn).await;
                Err(sqlx_failure(e))
            }
        }
    }

    pub(crate) async fn run(self, conn: &impl ConnectionTrait) -> Result<(), DbErr> {
        if !self.sql.is_empty() {
            conn.execute_raw(sea_orm::Statement::from_sql_and_values(self.backend, self.sql, self.values)).await?;
        }
        for statement in self.statements {
            conn.execute_raw(statement).await?;
        }
        Ok(())
    }
}

fn sqlx_failure(e: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e.into()))
}

/// Most rows in one multi-row statement.
pub(super) const ROWS_PER_STATEMENT: usize = 256;

/// The condition that an item row is not in a terminal state: terminal states are final.
pub(super) const NOT_TERMINAL: &str = "job_items.state NOT IN ('succeeded', 'failed', 'dead_lettered', 'cancelled')";

/// The updated item's id in the `RETURNING` of an `UPDATE job_items … FROM (VALUES …)`:
/// qualified on PostgreSQL, bare on SQLite, as each accepts it.
pub(super) fn returning_item_id(backend: sea_orm::DbBackend) -> &'static str {
    if backend == sea_orm::DbBackend::Postgres { "job_items.id" } else { "id" }
}

/// `rows` in statements of at most `max` rows (a power of two), each padded to a power of
/// two with `blank` rows, or without one by repeating its last row. So a handful of
/// statement texts serve every batch size, and each is prepared once per connection and
/// then reused: a new text is parsed anew, and parsing a VALUES list of hundreds of rows
/// costs more than running it.
pub(super) fn padded<'a, T: Clone>(
    rows: &'a [T],
    max: usize,
    blank: Option<&'a T>,
) -> impl Iterator<Item = Vec<T>> + 'a {
    rows.chunks(max).map(move |chunk| {
        let fill = blank.unwrap_or(&chunk[chunk.len() - 1]).clone();
        let mut chunk = chunk.to_vec();
        chunk.resize(chunk.len().next_power_of_two(), fill);
        chunk
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn statements_are_padded_to_a_few_sizes_and_keep_every_row() {
        let rows: Vec<u32> = (0..300).collect();
        let chunks: Vec<Vec<u32>> = super::padded(&rows, 256, None).collect();
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [256, 64]);
        assert_eq!(chunks[1][43..], [299; 21], "padding repeats the last row");
        let kept: Vec<u32> =
            chunks.concat().into_iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        assert_eq!(kept, rows);
        let blanks: Vec<Vec<Option<u32>>> = super::padded(&[Some(1), Some(2), Some(3)], 256, Some(&None)).collect();
        assert_eq!(blanks, [vec![Some(1), Some(2), Some(3), None]]);
        let sizes: std::collections::BTreeSet<usize> = (1..=1000)
            .flat_map(|n| super::padded(&rows.repeat(4)[..n], 256, None).map(|c| c.len()).collect::<Vec<_>>())
            .collect();
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [1, 2, 4, 8, 16, 32, 64, 128, 256]);
    }
}
