//! Retention on SQLite and PostgreSQL: which ended jobs go, in batches oldest first, what
//! goes with them, and what stays for good (the ledger, the exported bills payments are
//! matched with, what payments applied); and the bills exported before the bills table
//! existed are found in it after the migration.

#[macro_use]
mod common;

use erpsync::domain::{ConnectionId, ItemId, ItemState, JobId, Op};
use erpsync::store::exported_bills::{ExportedBill, vendor_bills};
use erpsync::store::retention::{Swept, sweep};
use erpsync::store::{BillApplication, Enqueuing, ItemUpdate, NewItem, NewJob};
use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, DatabaseConnection};

fn bill(source: &str) -> ExportedBill {
    ExportedBill {
        source_id: source.into(),
        erp_id: format!("erp-{source}"),
        vendor_id: "v-1".into(),
        number: format!("N-{source}"),
        total: Decimal::new(10_000, 2),
        currency: "USD".into(),
        due_date: chrono::NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
    }
}

fn update(item: ItemId, state: ItemState) -> ItemUpdate {
    ItemUpdate {
        item_id: item,
        state,
        attempt: Some(1),
        erp_id: None,
        error: None,
        ledger: vec![],
        applications: vec![],
        bills: vec![],
        connection_id: ConnectionId::new("acme"),
        detail: Some("a line of the timeline".into()),
    }
}

/// A job of `states.len()` invoices on `acme`, each moved to its state, every row dated `at_ms`.
async fn job_at(db: &DatabaseConnection, at_ms: i64, states: &[ItemState]) -> (JobId, Vec<ItemId>) {
    let id = JobId::new();
    let items: Vec<NewItem> = states
        .iter()
        .map(|_| {
            let item = ItemId::new();
            NewItem { id: item, source_id: format!("inv-{item}"), payload: r#"{"some":"document"}"#.into() }
        })
        .collect();
    let ids: Vec<ItemId> = items.iter().map(|i| i.id).collect();
    let job = NewJob { id, connection_id: ConnectionId::new("acme"), op: Op::ExportInvoice, items };
    erpsync::store::insert_job(db, &job, Enqueuing::ByTheOutbox).await.unwrap();
    let updates: Vec<ItemUpdate> = ids
        .iter()
        .zip(states)
        .map(|(&item, &state)| {
            let mut u = update(item, state);
            if state == ItemState::Succeeded {
                let source = format!("inv-{item}");
                u.erp_id = Some(format!("erp-{source}"));
                u.ledger = vec![("bill".into(), source.clone(), format!("erp-{source}"))];
                u.bills = vec![bill(&source)];
            }
            u
        })
        .collect();
    erpsync::store::apply_updates(db, &updates).await.unwrap();
    for sql in [
        format!("UPDATE jobs SET created_at_ms = {at_ms} WHERE id = '{id}'"),
        format!("UPDATE job_items SET created_at_ms = {at_ms}, updated_at_ms = {at_ms} WHERE job_id = '{id}'"),
    ] {
        db.execute_unprepared(&sql).await.unwrap();
    }
    (id, ids)
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    row.unwrap().try_get_by_index::<i64>(0).unwrap()
}

/// Old ended jobs go, oldest first, a batch of items at a time (a larger job over
/// several), with their items, documents and timelines; a recent one, one with an item still open, and one with an item updated
/// since the cutoff stay; the ledger, the exported bills and the payment applications
/// stay for good, so a later payment still matches.
async fn old_ended_jobs_go_in_batches_and_the_facts_payments_need_stay(url: &str) {
    use ItemState::*;
    let db = erpsync::store::connect(url, 4).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    let cutoff = 1_000_000;
    let (oldest, oldest_items) = job_at(&db, 10, &[Succeeded, Failed]).await;
    let (old, _) = job_at(&db, 20, &[DeadLettered, Cancelled, Succeeded]).await;
    let (open, _) = job_at(&db, 30, &[Succeeded, Retrying]).await;
    let (recent, _) = job_at(&db, cutoff + 5, &[Succeeded]).await;
    let (touched, touched_items) = job_at(&db, 40, &[Failed]).await;
    let late = format!("UPDATE job_items SET updated_at_ms = {} WHERE id = '{}'", cutoff + 1, touched_items[0]);
    db.execute_unprepared(&late).await.unwrap();
    let applied = BillApplication {
        payment_source_id: "pay-1".into(),
        bill_erp_id: format!("erp-inv-{}", oldest_items[0]),
        amount: Decimal::new(2_500, 2),
    };
    let payment = ItemUpdate { applications: vec![applied], ..update(ItemId::new(), Succeeded) };
    erpsync::store::apply_updates(&db, &[payment]).await.unwrap();
    let bills_before = vendor_bills(&db, &ConnectionId::new("acme"), "v-1", "").await.unwrap();
    assert_eq!(bills_before.len(), 4, "one bill per succeeded invoice: {bills_before:?}");

    let first = sweep(&db, cutoff, 2).await.unwrap();
    assert_eq!(first, Swept { jobs: 1, items: 2, idempotency_keys: 0 }, "a batch of two items: the oldest job");
    assert!(erpsync::store::job_summary(&db, &oldest).await.unwrap().is_none());
    assert!(erpsync::store::job_summary(&db, &old).await.unwrap().is_some(), "the next batch's");
    let second = sweep(&db, cutoff, 2).await.unwrap();
    assert_eq!(second, Swept { jobs: 0, items: 2, idempotency_keys: 0 }, "a larger job goes over batches");
    assert!(erpsync::store::job_summary(&db, &old).await.unwrap().is_some(), "until its last item goes");
    let third = sweep(&db, cutoff, 2).await.unwrap();
    assert_eq!(third, Swept { jobs: 1, items: 1, idempotency_keys: 0 });
    assert_eq!(sweep(&db, cutoff, 10).await.unwrap(), Swept::default(), "nothing more is old and ended");
    for kept in [&open, &recent, &touched] {
        assert!(erpsync::store::job_summary(&db, kept).await.unwrap().is_some(), "job {kept} is kept");
    }
    let item = &oldest_items[0];
    assert_eq!(count(&db, &format!("SELECT COUNT(*) FROM item_events WHERE item_id = '{item}'")).await, 0);
    assert_eq!(count(&db, &format!("SELECT COUNT(*) FROM item_documents WHERE item_id = '{item}'")).await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM erp_refs").await, 4, "the ledger keeps every entry");
    let bills_after = vendor_bills(&db, &ConnectionId::new("acme"), "v-1", "").await.unwrap();
    assert_eq!(bills_after, bills_before, "every bill is still there, with what was paid");
    let paid: Decimal = bills_after.iter().map(|b| b.paid).sum();
    assert_eq!(paid, Decimal::new(2_500, 2));
}

/// The bills of invoices exported before `m0015_exported_bills` are copied into the table
/// by the migration; a document that is not an invoice is left out, as matching left it.
async fn bills_exported_before_the_migration_are_found_after_it(url: &str) {
    use erpsync::store::migration::Migrator;
    use sea_orm_migration::MigratorTrait;
    let db = erpsync::store::connect(url, 4).await.unwrap();
    Migrator::up(&db, Some(12)).await.unwrap();
    let mut invoice = erpsync::samples::invoices("old", 1).remove(0);
    invoice.vendor.id = "v-9".into();
    let document = serde_json::to_string(&invoice).unwrap().replace('\'', "''");
    // As a daemon of that release recorded them: the document in the item row.
    let job = JobId::new();
    let items = [(invoice.source_id.clone(), document), ("not-an-invoice".to_owned(), r#"{"n":1}"#.to_owned())];
    let mut sql = vec![format!(
        "INSERT INTO jobs (id, connection_id, op, total_items, created_at_ms) VALUES ('{job}', 'acme', 'export_invoice', 2, 1)"
    )];
    for (i, (source, document)) in items.iter().enumerate() {
        sql.push(format!(
            "INSERT INTO job_items (id, job_id, connection_id, op, source_id, payload, state, attempts, erp_id, enqueued, \
             created_at_ms, updated_at_ms) \
             VALUES ('{}', '{job}', 'acme', 'export_invoice', '{source}', '{document}', 'succeeded', 1, 'erp-{i}', TRUE, 1, 1)",
            ItemId::new()
        ));
    }
    for s in sql {
        db.execute_unprepared(&s).await.unwrap();
    }
    Migrator::up(&db, None).await.unwrap();
    let found = vendor_bills(&db, &ConnectionId::new("acme"), "v-9", "").await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let want = ExportedBill {
        source_id: invoice.source_id.clone(),
        erp_id: "erp-0".into(),
        vendor_id: "v-9".into(),
        number: invoice.number.clone(),
        total: invoice.total,
        currency: invoice.currency.clone(),
        due_date: invoice.due_date,
    };
    assert_eq!(found[0].bill, want);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM exported_bills").await, 1, "the other document is left out");
}

/// Idempotency keys older than the cutoff go (their jobs may be gone); newer ones stay.
async fn old_idempotency_keys_go(url: &str) {
    let db = erpsync::store::connect(url, 4).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    for (key, at) in [("old-1", 5), ("old-2", 6), ("new", 2_000)] {
        let sql = format!(
            "INSERT INTO job_idempotency (tenant, idempotency_key, body_sha256, status, response, created_at_ms) \
             VALUES ('t', '{key}', '{}', 202, '{{}}', {at})",
            "0".repeat(64)
        );
        db.execute_unprepared(&sql).await.unwrap();
    }
    assert_eq!(sweep(&db, 1_000, 1).await.unwrap().idempotency_keys, 1, "a batch at a time");
    assert_eq!(sweep(&db, 1_000, 10).await.unwrap().idempotency_keys, 1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM job_idempotency").await, 1, "the new key stays");
}

on_sqlite_and_postgres!(
    old_ended_jobs_go_in_batches_and_the_facts_payments_need_stay,
    bills_exported_before_the_migration_are_found_after_it,
    old_idempotency_keys_go,
);
