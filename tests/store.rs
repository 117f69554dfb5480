//! The store's SQLite upkeep against a real SQLite file.

#[macro_use]
mod common;

use erpsync::domain::{ErrorKind, ItemId};
use erpsync::store::{Enqueuing, NewJob};
use sea_orm::ConnectionTrait;
use std::time::Duration;

/// Writes `transactions` blobs of 1 MiB to a fresh SQLite file, one per transaction, each
/// followed by a nudge (when `nudge` is given) and `pause`, while a checkpointer with
/// `every` and `restart_pages` runs; returns the largest the WAL file grew, in MiB.
async fn largest_wal_mib(
    transactions: usize,
    pause: Duration,
    nudge: Option<erpsync::store::WalNudge>,
    every: Duration,
    restart_pages: i64,
) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/wal.db?mode=rwc", dir.path().display());
    let db = erpsync::store::connect(&url, 4).await.unwrap();
    db.execute_unprepared("CREATE TABLE blobs (b BLOB)").await.unwrap();
    let checkpointer =
        erpsync::store::spawn_checkpointer_with(&db, nudge.clone().unwrap_or_default(), every, restart_pages)
            .expect("SQLite has a checkpointer");
    let wal = dir.path().join("wal.db-wal");
    let mut largest = 0;
    for _ in 0..transactions {
        db.execute_unprepared("INSERT INTO blobs VALUES (zeroblob(1048576))").await.unwrap();
        if let Some(n) = &nudge {
            n.committed();
        }
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        tokio::time::sleep(pause).await;
    }
    checkpointer.abort();
    largest / (1 << 20)
}

/// Under sustained writes SQLite's PASSIVE checkpoints may never let the WAL start over;
/// the checkpointer then RESTARTs it, so the WAL file stops growing. Here with a 20 ms
/// period and a 4 MiB threshold (the daemon uses 250 ms and 64 MiB), while 100 MiB are
/// written in 1 MiB transactions; without the checkpointer the WAL would hold all of it
/// (the automatic checkpoint is a 256 MiB backstop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_sustained_writes() {
    let mib = largest_wal_mib(100, Duration::from_millis(3), None, Duration::from_millis(20), 1024).await;
    assert!(mib < 40, "the WAL grew to {mib} MiB while 100 MiB were written");
}

/// A checkpoint started right after a commit copies that one transaction and is done
/// before the next commit, which then starts the WAL over: the WAL file stays about one
/// transaction long. Here the period is an hour, so only the nudges checkpoint; 50
/// transactions of 1 MiB, each followed by a nudge and a 20 ms pause (the gap a paced
/// client leaves). Without the nudges the WAL would hold all 50 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_nudged_after_each_commit_keeps_the_wal_about_one_transaction_long() {
    let nudge = Some(erpsync::store::WalNudge::default());
    let mib = largest_wal_mib(50, Duration::from_millis(20), nudge, Duration::from_secs(3600), i64::MAX).await;
    assert!(mib < 10, "the WAL grew to {mib} MiB while 50 transactions of 1 MiB were written");
}

/// A job is recorded whole or not at all. On SQLite its transaction goes to the database
/// as one text (`BEGIN IMMEDIATE; …; COMMIT`); when a statement inside fails, the job row
/// written before it must be rolled back, and the connection must not go back to the pool
/// with the transaction open (the next writer would wait on it for ever). One connection
/// in the pool, so the next writer would get the same one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_insert_fails_half_way_leaves_nothing_behind_and_the_store_writable() {
    let (_dir, db) = store_of_one_connection().await;
    let record = async |job: &NewJob| erpsync::store::insert_job(&db, job, Enqueuing::ByTheOutbox).await;
    a_failed_job_leaves_nothing_and_the_next_is_not_blocked(&db, record).await;
}

/// Records a job, then one that fails half way (the job row goes in, then the items
/// statement fails on a duplicate item id), then another, each with `record`: the failed
/// one leaves nothing behind, the next is not blocked by a transaction left open.
async fn a_failed_job_leaves_nothing_and_the_next_is_not_blocked(
    db: &sea_orm::DatabaseConnection,
    record: impl AsyncFn(&NewJob) -> Result<(), erpsync::store::StoreError>,
) {
    let taken = ItemId::new();
    let first = job_of(vec![taken]);
    record(&first).await.unwrap();
    let second = job_of(vec![ItemId::new(), taken]);
    let err = record(&second).await.expect_err("a duplicate item id is refused");
    assert!(err.to_string().to_lowercase().contains("unique"), "{err}");
    assert!(erpsync::store::job_summary(db, &second.id).await.unwrap().is_none(), "the failed job's row stayed");
    let third = job_of(vec![ItemId::new()]);
    tokio::time::timeout(Duration::from_secs(5), record(&third))
        .await
        .expect("the next job is not blocked by a transaction left open")
        .unwrap();
    for j in [&first, &third] {
        assert_eq!(erpsync::store::job_summary(db, &j.id).await.unwrap().unwrap().total_items, 1);
    }
}

/// A store on a fresh SQLite file with a pool of one connection.
async fn store_of_one_connection() -> (tempfile::TempDir, sea_orm::DatabaseConnection) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/jobs.db?mode=rwc", dir.path().display());
    let db = erpsync::store::connect(&url, 1).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    (dir, db)
}

/// A job of one empty invoice per item id.
fn job_of(items: Vec<ItemId>) -> erpsync::store::NewJob {
    erpsync::store::NewJob {
        id: erpsync::domain::JobId::new(),
        connection_id: erpsync::domain::ConnectionId::new("acme"),
        op: erpsync::domain::Op::ExportInvoice,
        items: items
            .into_iter()
            .map(|id| erpsync::store::NewItem { id, source_id: format!("inv-{id}"), payload: "{}".into() })
            .collect(),
    }
}

/// A statement that finds a lock taken by another connection retries in steps of 20 µs
/// (SQLite's own busy handler sleeps 1, 2, 5, 10… ms, and is not counted), and still
/// succeeds once the lock is free: here a write waits while another connection holds a
/// write transaction until `erpsync_sqlite_busy_waits_total` has counted 20 retries of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_statement_retries_in_short_steps_and_succeeds_once_the_lock_is_free() {
    use erpsync::telemetry::{SQLITE_BUSY_WAITS, sample};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/busy.db?mode=rwc", dir.path().display());
    let db = erpsync::store::connect(&url, 2).await.unwrap();
    db.execute_unprepared("CREATE TABLE t (n INTEGER)").await.unwrap();
    let mut holder = db.get_sqlite_connection_pool().acquire().await.unwrap();
    sea_orm::sqlx::query("BEGIN IMMEDIATE").execute(&mut *holder).await.unwrap();
    let before = sample(SQLITE_BUSY_WAITS);
    let blocked = tokio::spawn({
        let db = db.clone();
        async move { db.execute_unprepared("INSERT INTO t VALUES (1)").await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sample(SQLITE_BUSY_WAITS) - before < 20.0 {
        assert!(tokio::time::Instant::now() < deadline, "no 20 short retries within 5 s: not the short-step handler");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(!blocked.is_finished(), "the write went through while the lock was held");
    sea_orm::sqlx::query("COMMIT").execute(&mut *holder).await.unwrap();
    blocked.await.unwrap().expect("the blocked write succeeds once the lock is free");
}

/// New jobs are recorded on one connection kept for them (`JobWriter`), detached from the
/// pool: with a pool of one, the pool still serves everyone else; a job that fails half
/// way on the kept connection leaves nothing behind, and the next job is recorded (on a
/// fresh connection) without waiting on a transaction left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_kept_for_jobs_leaves_the_pool_whole_and_recovers_from_a_failed_job() {
    let (_dir, db) = store_of_one_connection().await;
    let writer = erpsync::store::JobWriter::default();
    let record = async |job: &NewJob| erpsync::store::insert_job_on(&writer, &db, job, Enqueuing::ByTheOutbox).await;
    // The writer takes (and detaches) the pool's only connection.
    let kept = job_of(vec![ItemId::new()]);
    record(&kept).await.unwrap();
    let pooled = job_of(vec![ItemId::new()]);
    tokio::time::timeout(Duration::from_secs(5), erpsync::store::insert_job(&db, &pooled, Enqueuing::ByTheOutbox))
        .await
        .expect("the pool serves others while the writer keeps its connection")
        .unwrap();
    a_failed_job_leaves_nothing_and_the_next_is_not_blocked(&db, record).await;
    for j in [&kept, &pooled] {
        assert_eq!(erpsync::store::job_summary(&db, &j.id).await.unwrap().unwrap().total_items, 1);
    }
}

/// A column added by another process (`erpsync migrate` of a newer release beside a
/// running daemon) must not break the reads every attempt starts with. SQLite re-prepares
/// a cached statement whose tables changed, and a `job_items.*` in it then yields a row
/// wider than the columns sqlx cached when it first prepared it: its worker thread
/// panicked reading the row (seen once in a test, where a pool connection had prepared
/// the read with the schema it held from before the last migration).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_reads_survive_a_column_added_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/jobs.db?mode=rwc", dir.path().display());
    let db = erpsync::store::connect(&url, 1).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    let item = ItemId::new();
    let job = job_of(vec![item]);
    erpsync::store::insert_job(&db, &job, Enqueuing::ByTheOutbox).await.unwrap();
    let reads = [(item, job.connection_id.clone(), "bill")];
    let read = async || erpsync::store::items_with_ledger(&db, &reads).await;
    assert!(read().await.unwrap()[0].is_some());
    let other = erpsync::store::connect(&url, 1).await.unwrap();
    other.execute_unprepared("ALTER TABLE job_items ADD COLUMN added_by_a_later_release TEXT").await.unwrap();
    let found = read().await.expect("the read survives the schema change")[0].clone().expect("the item is found");
    assert_eq!(found.item.source_id, job.items[0].source_id);
}

/// On the embedded queue a job's messages are written by the database from the item rows
/// of the same transaction. Each must be the reference envelope erpsync would encode for
/// its item — whatever the source id holds (quotes, backslashes, non-ASCII) — in the order
/// of the job's documents, grouped by connection.
async fn a_jobs_messages_are_its_items_reference_envelopes_in_order(url: &str) {
    use erpsync::domain::{ConnectionId, ItemId, JobId, Op};
    use erpsync::queue::embedded::EmbeddedQueue;
    use erpsync::queue::{Envelope, GroupFilter, Queue, ReceiveRequest};
    use erpsync::store::{JobWriter, NewItem, NewJob};
    let db = erpsync::store::connect(url, 4).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    let q = EmbeddedQueue::new(db, "jobs", 5, Duration::from_millis(20));
    let sources = ["inv-1", "O'Brien \"Q4\" \\ 2026", "Müller-Ōsaka-€", "inv-4", "inv-5"];
    let job = NewJob {
        id: JobId::new(),
        connection_id: ConnectionId::new("acme-books"),
        op: Op::ExportPurchaseOrder,
        items: sources
            .iter()
            .map(|s| NewItem { id: ItemId::new(), source_id: (*s).to_owned(), payload: "{}".into() })
            .collect(),
    };
    q.record_job(&JobWriter::default(), &job).await.unwrap();
    let req = ReceiveRequest {
        max_messages: 10,
        wait: Duration::ZERO,
        visibility: Duration::from_secs(30),
        groups: GroupFilter::Any,
    };
    let batch = q.receive(req).await.unwrap();
    let got: Vec<Envelope> = batch.messages.iter().map(|m| Envelope::decode(&m.body).unwrap()).collect();
    let want: Vec<Envelope> = job
        .items
        .iter()
        .map(|it| Envelope::by_ref(job.id, it.id, job.connection_id.clone(), job.op, &it.source_id))
        .collect();
    assert_eq!(got, want);
    assert!(batch.messages.iter().all(|m| m.group.as_deref() == Some("acme-books")), "grouped by connection");
}

/// The reads that start each attempt are batched into one statement: each read gets its
/// own item's row and the ledger entry of its own connection and document kind, whatever
/// else shares the statement — an unknown item, the same read twice, the same item read
/// for another connection, an entry recorded for another connection or kind — and an
/// entry recorded before the read is seen by it.
async fn one_statement_reads_each_item_with_its_own_ledger_entry(url: &str) {
    use erpsync::domain::{ConnectionId, ItemId, ItemState, JobId, Op};
    use erpsync::store::{ItemUpdate, NewItem, NewJob};
    let db = erpsync::store::connect(url, 4).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    let (acme, globex) = (ConnectionId::new("acme"), ConnectionId::new("globex"));
    let ids: Vec<ItemId> = (0..3).map(|_| ItemId::new()).collect();
    let items =
        ids.iter().enumerate().map(|(k, &id)| NewItem { id, source_id: format!("inv-{k}"), payload: "{}".into() });
    let job = NewJob { id: JobId::new(), connection_id: acme.clone(), op: Op::ExportInvoice, items: items.collect() };
    erpsync::store::insert_job(&db, &job, erpsync::store::Enqueuing::ByTheOutbox).await.unwrap();
    let entry = |item: ItemId, connection: &ConnectionId, kind: &str, source: &str, erp_id: &str| ItemUpdate {
        item_id: item,
        state: ItemState::Succeeded,
        attempt: Some(1),
        erp_id: Some(erp_id.into()),
        error: None,
        ledger: vec![(kind.into(), source.into(), erp_id.into())],
        applications: vec![],
        bills: vec![],
        connection_id: connection.clone(),
        detail: None,
    };
    erpsync::store::apply_updates(
        &db,
        &[
            entry(ids[0], &acme, "bill", "inv-0", "erp-acme-0"),
            // inv-1 was exported to globex and as another kind to acme, never as a bill to acme.
            entry(ids[1], &globex, "bill", "inv-1", "erp-globex-1"),
            entry(ids[1], &acme, "purchase_order", "inv-1", "erp-acme-po-1"),
        ],
    )
    .await
    .unwrap();
    let unknown = ItemId::new();
    let reads = [
        (ids[0], acme.clone(), "bill"),
        (ids[1], acme.clone(), "bill"),
        (unknown, acme.clone(), "bill"),
        (ids[0], acme.clone(), "bill"),
        (ids[1], globex.clone(), "bill"),
        (ids[2], acme.clone(), "bill"),
        (ids[1], acme.clone(), "purchase_order"),
    ];
    let found = erpsync::store::items_with_ledger(&db, &reads).await.unwrap();
    let got: Vec<Option<(String, Option<String>)>> =
        found.into_iter().map(|f| f.map(|f| (f.item.source_id, f.erp_id))).collect();
    let some = |source: &str, erp_id: Option<&str>| Some((source.to_owned(), erp_id.map(str::to_owned)));
    assert_eq!(
        got,
        vec![
            some("inv-0", Some("erp-acme-0")),
            some("inv-1", None),
            None,
            some("inv-0", Some("erp-acme-0")),
            some("inv-1", Some("erp-globex-1")),
            some("inv-2", None),
            some("inv-1", Some("erp-acme-po-1")),
        ]
    );
    // A ledger entry recorded after a read is seen by the next.
    erpsync::store::apply_updates(&db, &[entry(ids[2], &acme, "bill", "inv-2", "erp-acme-2")]).await.unwrap();
    let after = erpsync::store::items_with_ledger(&db, &[(ids[2], acme.clone(), "bill")]).await.unwrap();
    assert_eq!(after[0].as_ref().unwrap().erp_id.as_deref(), Some("erp-acme-2"));
}

/// An attempt begins in the status writer's transaction, after the updates beside it: it
/// is counted, marked `in_progress` (with a timeline entry) and read back with its
/// document's ledger entry. It does not begin for an unknown item, for a document other
/// than the one claimed, for an item an update of the same batch made terminal, for one
/// that has used up `max_attempts` (throttled attempts apart), nor twice in one batch.
async fn an_attempt_begins_counted_and_read_in_the_status_transaction(url: &str) {
    use erpsync::domain::ItemState::{InProgress, Retrying, Succeeded};
    use erpsync::store::{ItemError, ItemStart, ItemUpdate};
    let db = erpsync::store::connect(url, 4).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    let ids: Vec<ItemId> = (0..5).map(|_| ItemId::new()).collect();
    let job = job_of(ids.clone());
    erpsync::store::insert_job(&db, &job, Enqueuing::ByTheOutbox).await.unwrap();
    let acme = job.connection_id.clone();
    let update = |k: usize, state, attempt, kind: Option<ErrorKind>, ledger: bool| ItemUpdate {
        item_id: ids[k],
        state,
        attempt: Some(attempt),
        erp_id: None,
        error: kind.map(|k| ItemError::new(k, None, "from the test")),
        ledger: if ledger { vec![("bill".into(), format!("inv-{}", ids[k]), "erp-7".into())] } else { vec![] },
        applications: vec![],
        bills: vec![],
        connection_id: acme.clone(),
        detail: None,
    };
    let start = |item: ItemId, source: String, max_attempts: u32| ItemStart {
        item_id: item,
        connection_id: acme.clone(),
        doc_kind: "bill",
        source_id: source,
        max_attempts,
    };
    let own = |k: usize, max: u32| start(ids[k], format!("inv-{}", ids[k]), max);
    // Item 1 was attempted once and throttled, item 2 twice (rejected as ambiguous), item 3
    // ended once with its bill's ledger entry recorded.
    let earlier = [
        update(1, Retrying, 1, Some(ErrorKind::Throttled), false),
        update(2, Retrying, 2, Some(ErrorKind::Ambiguous), false),
        update(3, Retrying, 1, Some(ErrorKind::Ambiguous), false),
    ];
    erpsync::store::apply_updates(&db, &earlier).await.unwrap();
    let (applied, found) = erpsync::store::apply_batch(
        &db,
        &[update(3, Succeeded, 1, None, true)],
        &[
            own(0, 2),
            start(ItemId::new(), "inv-x".into(), 2),
            start(ids[4], "not-its-document".into(), 2),
            own(3, 2),
            own(1, 1),
            own(2, 2),
            own(0, 2),
        ],
    )
    .await
    .unwrap();
    assert_eq!(applied, [true]);
    // (begun, attempts, state, ledger entry)
    type Seen = Option<(bool, i32, String, Option<String>)>;
    let got: Vec<Seen> =
        found.into_iter().map(|f| f.map(|s| (s.begun, s.item.attempts, s.item.state, s.erp_id))).collect();
    let some = |begun, attempts, state: &str, erp_id: Option<&str>| {
        Some((begun, attempts, state.to_owned(), erp_id.map(str::to_owned)))
    };
    assert_eq!(
        got,
        vec![
            some(true, 1, "in_progress", None),
            None,
            some(false, 0, "queued", None),
            some(false, 1, "succeeded", Some("erp-7")),
            some(true, 2, "in_progress", None),
            some(false, 2, "retrying", None),
            some(false, 1, "in_progress", None),
        ],
        "item 0 begins once; the throttled attempt of item 1 does not count; item 2 has used up 2"
    );
    let timeline = erpsync::store::item_events(&db, &ids[1]).await.unwrap();
    let steps: Vec<(String, i32)> = timeline.into_iter().map(|e| (e.state, e.attempt)).collect();
    let step = |s: &str, a| (s.to_owned(), a);
    assert_eq!(steps, [step("queued", 0), step("retrying", 1), step("in_progress", 2)]);
    // The attempt is the fencing token: an update of the attempt before it no longer lands.
    assert_eq!(erpsync::store::apply_updates(&db, &[update(1, InProgress, 1, None, false)]).await.unwrap(), [false]);
}

/// A job sent after it committed (SQS) carries one outbox marker instead of an unsent flag
/// on each item. A sender that reports everything sent only removes the marker; one that
/// reports some items unsent flags just those; a marker nobody cleared (the daemon crashed
/// between the commit and the send) hands the job's items still `queued` to the outbox
/// sweep, once.
async fn an_unreported_job_goes_to_the_outbox_and_a_reported_one_does_not(url: &str) {
    use erpsync::domain::{ConnectionId, ItemId, ItemState, JobId, Op};
    use erpsync::store::{Enqueuing, ItemUpdate, NewItem, NewJob};
    let db = erpsync::store::connect(url, 4).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    let acme = ConnectionId::new("acme");
    let job = |n: usize| NewJob {
        id: JobId::new(),
        connection_id: acme.clone(),
        op: Op::ExportInvoice,
        items: (0..n)
            .map(|k| NewItem { id: ItemId::new(), source_id: format!("inv-{k}"), payload: "{}".into() })
            .collect(),
    };
    let (crashed, reported, partly) = (job(3), job(2), job(2));
    for j in [&crashed, &reported, &partly] {
        erpsync::store::insert_job(&db, j, Enqueuing::AfterCommit).await.unwrap();
    }
    let unsent = async || {
        let mut ids: Vec<String> =
            erpsync::store::unsent_items(&db, Duration::ZERO, 100).await.unwrap().into_iter().map(|it| it.id).collect();
        ids.sort();
        ids
    };
    assert!(unsent().await.is_empty(), "a marked job's items are not flagged one by one");
    erpsync::store::job_sent(&db, &reported.id, &[]).await.unwrap();
    erpsync::store::job_sent(&db, &partly.id, &[partly.items[1].id]).await.unwrap();
    assert_eq!(unsent().await, [partly.items[1].id.to_string()], "only the item reported unsent");
    // One of the crashed job's items was already done by the time the sweep looks.
    let done = ItemUpdate {
        item_id: crashed.items[0].id,
        state: ItemState::Succeeded,
        attempt: Some(1),
        erp_id: Some("erp-1".into()),
        error: None,
        ledger: vec![],
        applications: vec![],
        bills: vec![],
        connection_id: acme.clone(),
        detail: None,
    };
    erpsync::store::apply_updates(&db, &[done]).await.unwrap();
    assert_eq!(erpsync::store::expire_outbox_markers(&db, Duration::from_secs(3600), 100).await.unwrap(), 0);
    assert_eq!(erpsync::store::expire_outbox_markers(&db, Duration::ZERO, 100).await.unwrap(), 1, "the crashed job");
    let mut expected: Vec<String> =
        [crashed.items[1].id, crashed.items[2].id, partly.items[1].id].iter().map(ToString::to_string).collect();
    expected.sort();
    assert_eq!(unsent().await, expected);
    assert_eq!(erpsync::store::expire_outbox_markers(&db, Duration::ZERO, 100).await.unwrap(), 0, "expired once");
}

/// `sqlite::NAME` and `postgres::NAME`: the check `NAME(url)` on a fresh database of each.
/// A throttled attempt is counted apart; a redrive from the dead-letter queue gives the
/// item a fresh `retry.max_attempts` budget but its attempts keep counting, so the next
/// attempt looks the document up in the ERP before creating it, and an update from a
/// stale attempt made before the redrive is fenced off.
async fn a_redriven_item_keeps_its_attempts_and_gets_a_fresh_budget(url: &str) {
    use erpsync::domain::ItemState::{DeadLettered, Failed, InProgress, Retrying};
    use erpsync::store::{ItemError, ItemUpdate};
    let db = erpsync::store::connect(url, 4).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    let item = ItemId::new();
    let job = job_of(vec![item]);
    erpsync::store::insert_job(&db, &job, Enqueuing::ByTheOutbox).await.unwrap();
    let update = |state, attempt, kind: Option<ErrorKind>| ItemUpdate {
        item_id: item,
        state,
        attempt: Some(attempt),
        erp_id: None,
        error: kind.map(|k| ItemError::new(k, None, "from the test")),
        ledger: vec![],
        applications: vec![],
        bills: vec![],
        connection_id: job.connection_id.clone(),
        detail: None,
    };
    let history = [
        update(InProgress, 1, None),
        update(Retrying, 1, Some(ErrorKind::Throttled)),
        update(InProgress, 2, None),
        update(Retrying, 2, Some(ErrorKind::Ambiguous)),
        update(InProgress, 3, None),
        update(DeadLettered, 3, Some(ErrorKind::Ambiguous)),
    ];
    for u in history {
        assert_eq!(erpsync::store::apply_updates(&db, &[u]).await.unwrap(), [true]);
    }
    let row = || async { erpsync::store::item(&db, &item).await.unwrap().unwrap() };
    let r = row().await;
    assert_eq!((r.attempts, r.throttles, r.redriven_attempts), (3, 1, 0), "{r:?}");
    assert_eq!(erpsync::store::requeue_dead_lettered(&db, &[item]).await.unwrap(), 1);
    let r = row().await;
    assert_eq!(
        (r.state.as_str(), r.attempts, r.throttles, r.redriven_attempts),
        ("queued", 3, 1, 2),
        "attempts keep counting; the two that counted are set aside: {r:?}"
    );
    assert_eq!(
        erpsync::store::apply_updates(&db, &[update(Failed, 2, Some(ErrorKind::Rejected))]).await.unwrap(),
        [false],
        "an attempt from before the redrive is fenced off"
    );
    assert_eq!(row().await.state, "queued");
}

/// Records an item as a daemon of a release before `item_documents` did: the document in
/// the item row only.
async fn record_as_an_earlier_release(db: &sea_orm::DatabaseConnection, item: ItemId, document: &str) {
    let job = erpsync::domain::JobId::new();
    let sql = [
        format!(
            "INSERT INTO jobs (id, connection_id, op, total_items, created_at_ms) VALUES ('{job}', 'acme', 'export_invoice', 1, 1)"
        ),
        format!(
            "INSERT INTO job_items (id, job_id, connection_id, op, source_id, payload, state, attempts, enqueued, \
             created_at_ms, updated_at_ms) \
             VALUES ('{item}', '{job}', 'acme', 'export_invoice', 'inv-{item}', '{document}', 'queued', 0, TRUE, 1, 1)"
        ),
    ];
    for s in sql {
        db.execute_unprepared(&s).await.unwrap();
    }
}

/// Documents moved out of the item rows (`m0006_item_documents`), and nothing an attempt,
/// a payment or a job's export reads may lose one on the way: an item recorded before the
/// migration, one recorded since, and one an earlier daemon of the fleet recorded after it
/// (its document in the item row only) are each read with their own document. A new item
/// keeps a copy in its row on PostgreSQL only (where earlier daemons may still run), and
/// the migration's `down` gives SQLite's rows their documents back.
async fn documents_are_read_from_wherever_the_release_that_recorded_them_put_them(url: &str) {
    use erpsync::domain::ConnectionId;
    use erpsync::store::migration::Migrator;
    use erpsync::store::{NewItem, NewJob};
    use sea_orm_migration::MigratorTrait;
    let db = erpsync::store::connect(url, 4).await.unwrap();
    Migrator::up(&db, Some(5)).await.unwrap();
    let (before, since, beside) = (ItemId::new(), ItemId::new(), ItemId::new());
    record_as_an_earlier_release(&db, before, r#"{"n":"before"}"#).await;
    erpsync::store::migrate(&db).await.unwrap();
    let acme = ConnectionId::new("acme");
    let job = NewJob {
        id: erpsync::domain::JobId::new(),
        connection_id: acme.clone(),
        op: erpsync::domain::Op::ExportInvoice,
        items: vec![NewItem { id: since, source_id: format!("inv-{since}"), payload: r#"{"n":"since"}"#.into() }],
    };
    erpsync::store::insert_job(&db, &job, Enqueuing::ByTheOutbox).await.unwrap();
    record_as_an_earlier_release(&db, beside, r#"{"n":"beside"}"#).await;
    let ids = [before, since, beside];
    let want = [r#"{"n":"before"}"#, r#"{"n":"since"}"#, r#"{"n":"beside"}"#];

    let reads: Vec<_> = ids.iter().map(|&id| (id, acme.clone(), "bill")).collect();
    let found = erpsync::store::items_with_ledger(&db, &reads).await.unwrap();
    let got: Vec<String> = found.into_iter().map(|f| f.expect("each item is found").document).collect();
    assert_eq!(got, want, "an attempt reads each item's own document");
    assert_eq!(erpsync::store::job_payloads(&db, &job.id).await.unwrap(), [want[1]], "a job's export reads it");

    let row_copy = async || -> String {
        let sql = format!("SELECT payload FROM job_items WHERE id = '{since}'");
        let row = db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql)).await;
        row.unwrap().unwrap().try_get_by_index(0).unwrap()
    };
    let postgres = db.get_database_backend() == sea_orm::DbBackend::Postgres;
    assert_eq!(row_copy().await, if postgres { want[1] } else { "" }, "a copy in the row only on PostgreSQL");
    // Back to before `m0006_item_documents`.
    Migrator::down(&db, Some(Migrator::migrations().len() as u32 - 5)).await.unwrap();
    assert_eq!(row_copy().await, want[1], "rolled back, the row holds its document again");
}

/// What payments applied to a bill is kept with their outcomes and read back with the
/// bill: an application recorded twice (the outcome of a retry) counts once, even when
/// the item was already terminal; another payment's counts; and the payment asking is
/// left out, so its own retry sees the balances its first attempt saw.
async fn bill_applications_count_once_per_payment_and_bill(url: &str) {
    use erpsync::domain::{ConnectionId, ItemState};
    use erpsync::store::{BillApplication, ItemUpdate, NewItem, NewJob};
    use rust_decimal::Decimal;
    let db = erpsync::store::connect(url, 4).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    let acme = ConnectionId::new("acme");
    let (bill, p1, p2) = (ItemId::new(), ItemId::new(), ItemId::new());
    let job =
        |op, items: Vec<NewItem>| NewJob { id: erpsync::domain::JobId::new(), connection_id: acme.clone(), op, items };
    let item = |id: ItemId, source: &str| NewItem { id, source_id: source.into(), payload: "{}".into() };
    let bills = job(erpsync::domain::Op::ExportInvoice, vec![item(bill, "inv-1")]);
    let payments = job(erpsync::domain::Op::ExportPayment, vec![item(p1, "pay-1"), item(p2, "pay-2")]);
    for j in [&bills, &payments] {
        erpsync::store::insert_job(&db, j, Enqueuing::ByTheOutbox).await.unwrap();
    }
    let applied = |source: &str, cents: i64| BillApplication {
        payment_source_id: source.into(),
        bill_erp_id: "b-1".into(),
        amount: Decimal::new(cents, 2),
    };
    let succeeded = |item: ItemId, erp_id: &str, applications: Vec<BillApplication>| ItemUpdate {
        item_id: item,
        state: ItemState::Succeeded,
        attempt: None,
        erp_id: Some(erp_id.into()),
        error: None,
        ledger: vec![],
        applications,
        bills: vec![],
        connection_id: acme.clone(),
        detail: None,
    };
    let exported = erpsync::store::exported_bills::ExportedBill {
        source_id: "inv-1".into(),
        erp_id: "b-1".into(),
        vendor_id: "v-1".into(),
        number: "INV-1".into(),
        total: Decimal::new(5000, 2),
        currency: "USD".into(),
        due_date: chrono::NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
    };
    let bill_update = ItemUpdate { bills: vec![exported.clone()], ..succeeded(bill, "b-1", vec![]) };
    erpsync::store::apply_updates(
        &db,
        &[
            bill_update,
            succeeded(p1, "p-1", vec![applied("pay-1", 1000)]),
            succeeded(p2, "p-2", vec![applied("pay-2", 250)]),
        ],
    )
    .await
    .unwrap();
    // pay-1's outcome again (a retry whose first answer was lost): already terminal.
    let again = erpsync::store::apply_updates(&db, &[succeeded(p1, "p-1", vec![applied("pay-1", 1000)])]).await;
    assert_eq!(again.unwrap(), [false], "the item was already terminal");
    let vendor_bills = erpsync::store::exported_bills::vendor_bills;
    let paid = async |asking: &str| {
        let found = vendor_bills(&db, &acme, "v-1", asking).await.unwrap();
        assert_eq!(found.len(), 1, "only the exported invoice: {found:?}");
        assert_eq!(found[0].bill, exported);
        found[0].paid
    };
    assert_eq!(paid("pay-3").await, Decimal::new(1250, 2), "each payment counts once");
    assert_eq!(paid("pay-1").await, Decimal::new(250, 2), "the asking payment is left out");
    assert!(vendor_bills(&db, &acme, "v-2", "").await.unwrap().is_empty(), "another vendor's bills are not");
    assert!(vendor_bills(&db, &ConnectionId::new("globex"), "v-1", "").await.unwrap().is_empty());
}

on_sqlite_and_postgres!(
    a_jobs_messages_are_its_items_reference_envelopes_in_order,
    documents_are_read_from_wherever_the_release_that_recorded_them_put_them,
    bill_applications_count_once_per_payment_and_bill,
    one_statement_reads_each_item_with_its_own_ledger_entry,
    an_unreported_job_goes_to_the_outbox_and_a_reported_one_does_not,
    a_redriven_item_keeps_its_attempts_and_gets_a_fresh_budget,
    an_attempt_begins_counted_and_read_in_the_status_transaction,
);

/// On PostgreSQL the StatusActor writes two transactions at once: one held up (here by a
/// row lock another connection holds on its item) does not hold up the next batch, whose
/// callers get their answers meanwhile; the first commits once the lock goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_transaction_held_up_on_postgres_does_not_hold_up_the_next() {
    use erpsync::actors::status::StatusMsg;
    use erpsync::domain::{ConnectionId, ItemState, JobId, Op};
    use erpsync::rig::{Rig, RigSpec};
    use erpsync::store::{ItemUpdate, NewItem, NewJob};
    let url = common::fresh_postgres().await;
    let rig =
        Rig::start(RigSpec { limits: vec![1], database_url: Some(url.clone()), ..Default::default() }).await.unwrap();
    let ctx = rig.daemon().ctx().clone();
    let (held, free) = (ItemId::new(), ItemId::new());
    let conn = ConnectionId::new("acme");
    let items = [held, free].map(|id| NewItem { id, source_id: format!("inv-{id}"), payload: "{}".into() });
    let job = NewJob { id: JobId::new(), connection_id: conn.clone(), op: Op::ExportInvoice, items: items.into() };
    // Not queued (the outbox would send them only after 10 s): only these writes touch them.
    erpsync::store::insert_job(&ctx.db, &job, Enqueuing::ByTheOutbox).await.unwrap();
    let locker = erpsync::store::connect(&url, 1).await.unwrap();
    let lock = sea_orm::TransactionTrait::begin(&locker).await.unwrap();
    lock.execute_unprepared(&format!("SELECT 1 FROM job_items WHERE id = '{held}' FOR UPDATE")).await.unwrap();
    let status = ctx.lookup::<StatusMsg>("status").expect("the status actor runs");
    let update = |item| ItemUpdate {
        item_id: item,
        state: ItemState::Failed,
        attempt: None,
        erp_id: None,
        error: None,
        ledger: vec![],
        applications: vec![],
        bills: vec![],
        connection_id: conn.clone(),
        detail: None,
    };
    let ask = |item| {
        let (status, update) = (status.clone(), update(item));
        tokio::spawn(async move {
            match status.call(|r| StatusMsg::Update(update, Some(r)), Some(Duration::from_secs(30))).await {
                Ok(ractor::rpc::CallResult::Success(answer)) => answer,
                other => panic!("the status writer did not answer: {other:?}"),
            }
        })
    };
    let first = ask(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!first.is_finished(), "the held-up transaction waits for the row lock");
    let second = tokio::time::timeout(Duration::from_secs(5), ask(free))
        .await
        .expect("the next batch is written while the first waits")
        .unwrap();
    assert!(matches!(second, Ok(true)), "{second:?}");
    assert!(!first.is_finished(), "still held up");
    lock.commit().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), first).await.unwrap().unwrap();
    assert!(matches!(first, Ok(true)), "{first:?}");
    rig.shutdown().await;
}
