//! The event log and its Server-Sent Events API: every transition of a job in order,
//! resumable with `Last-Event-ID`, kept across a restart, seen from another daemon of the
//! fleet, scoped to the token's tenant; and, on PostgreSQL, no event skipped by a reader
//! however transactions interleave.

mod common;

use erpsync::cli::follow::{Frame, frames};
use erpsync::daemon::{Daemon, StartOptions};
use erpsync::rig::{Rig, RigSpec};
use erpsync::store::events::{EventCursor, EventFilter, read_after};
use erpsync::store::tokens::Scope;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

/// An open event stream.
struct Stream {
    resp: reqwest::Response,
    buffer: String,
    heartbeats: usize,
}

impl Stream {
    async fn open(base: &str, path: &str, token: &str, last: Option<&str>) -> Result<Stream, (u16, Value)> {
        let mut req = reqwest::Client::new().get(format!("{base}{path}")).bearer_auth(token);
        if let Some(id) = last {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.unwrap();
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            return Err((status, resp.json().await.unwrap_or_default()));
        }
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Ok(Stream { resp, buffer: String::new(), heartbeats: 0 })
    }

    /// The next frames, or None when the stream ended.
    async fn next(&mut self) -> Option<Vec<Frame>> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            assert!(Instant::now() < deadline, "no event came, only heartbeats");
            let chunk = tokio::time::timeout(DEADLINE, self.resp.chunk()).await.expect("the stream stalled");
            let bytes = chunk.unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&bytes).unwrap());
            self.heartbeats += self.buffer.matches(":\n\n").count();
            let got = frames(&mut self.buffer);
            if !got.is_empty() {
                return Some(got);
            }
        }
    }

    /// Every frame until the stream ends.
    async fn rest(mut self) -> Vec<Frame> {
        let mut all = Vec::new();
        while let Some(f) = self.next().await {
            all.extend(f);
        }
        all
    }

    /// The first `n` frames (the stream then dropped).
    async fn take(mut self, n: usize) -> Vec<Frame> {
        let mut all = Vec::new();
        while all.len() < n {
            all.extend(self.next().await.expect("more events"));
        }
        all.truncate(n);
        all
    }
}

fn base(d: &Daemon) -> String {
    format!("http://{}", d.http_addr())
}

async fn rig(db: Option<String>, paused: bool) -> Rig {
    let options = StartOptions::default();
    options.paused.store(paused, Ordering::Release);
    Rig::start(RigSpec {
        limits: vec![4, 4],
        tune: Box::new(|c| {
            c.connections[1].tenant = "globex".into();
            c.http.sse_heartbeat_ms = std::num::NonZeroU32::new(50).unwrap();
        }),
        database_url: db,
        options,
        ..Default::default()
    })
    .await
    .unwrap()
}

fn data(f: &Frame) -> Value {
    serde_json::from_str(&f.data).unwrap()
}

/// Every item of the job went in_progress → succeeded, in that order, each event once,
/// in cursor order, and the stream ended with the job's completion.
fn assert_whole_job(frames: &[Frame], items: usize) {
    let cursors: Vec<EventCursor> = frames.iter().map(|f| f.id.as_deref().unwrap().parse().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "in log order: {cursors:?}");
    let last = frames.last().unwrap();
    assert_eq!(last.event.as_deref(), Some("job.completed"), "{frames:?}");
    assert_eq!(data(last)["data"]["counts"]["succeeded"], items as u64);
    let mut per_item: HashMap<String, Vec<String>> = HashMap::new();
    for f in &frames[..frames.len() - 1] {
        let d = data(f);
        assert_eq!(d["type"], f.event.as_deref().unwrap());
        assert_eq!(d["id"], f.id.as_deref().unwrap());
        per_item.entry(d["item_id"].as_str().unwrap().to_owned()).or_default().push(f.event.clone().unwrap());
    }
    assert_eq!(per_item.len(), items);
    for (item, kinds) in per_item {
        assert_eq!(kinds, ["item.in_progress", "item.succeeded"], "{item}");
    }
}

async fn a_jobs_transitions_arrive_in_order_resume_exactly_and_survive_a_restart(db: Option<String>) {
    let mut rig = rig(db, false).await;
    let token = rig.token().await;
    let job = rig.submit(0, &erpsync::samples::invoices("ev", 5)).await.unwrap();
    let path = format!("/v1/jobs/{job}/events");
    let all = Stream::open(&base(rig.daemon()), &path, &token, None).await.unwrap().rest().await;
    assert_whole_job(&all, 5);

    // A client dropped after 3 events resumes with the id of the last it saw.
    let first = Stream::open(&base(rig.daemon()), &path, &token, None).await.unwrap().take(3).await;
    assert_eq!(first, all[..3]);
    let last = first[2].id.as_deref().unwrap();
    let rest = Stream::open(&base(rig.daemon()), &path, &token, Some(last)).await.unwrap().rest().await;
    assert_eq!(rest, all[3..], "exactly the rest");
    let after = format!("{path}?after={last}");
    assert_eq!(Stream::open(&base(rig.daemon()), &after, &token, None).await.unwrap().rest().await, all[3..]);

    // The log is the database's: a restarted daemon tells the same story.
    rig.daemon.take().unwrap().shutdown().await;
    rig.restart(StartOptions::default()).await.unwrap();
    let again = Stream::open(&base(rig.daemon()), &path, &token, None).await.unwrap().rest().await;
    assert_eq!(again, all);
    rig.shutdown().await;
}

async fn another_tenant_sees_nothing_and_bad_input_is_refused(db: Option<String>) {
    let rig = rig(db, false).await;
    let url = base(rig.daemon());
    let acme = rig.token().await;
    let globex = rig.token_for("globex", Scope::Read).await;
    let job = rig.submit(0, &erpsync::samples::invoices("ten", 2)).await.unwrap();
    let path = format!("/v1/jobs/{job}/events");
    let mine = Stream::open(&url, &path, &acme, None).await.unwrap().rest().await;
    assert_whole_job(&mine, 2);

    let (status, body) = Stream::open(&url, &path, &globex, None).await.err().expect("another tenant's job");
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    // Globex's whole stream holds nothing of acme's: heartbeats only.
    let mut theirs = Stream::open(&url, "/v1/events", &globex, None).await.unwrap();
    let deadline = Instant::now() + DEADLINE;
    while theirs.heartbeats < 3 {
        assert!(Instant::now() < deadline, "heartbeats come");
        let chunk = tokio::time::timeout(DEADLINE, theirs.resp.chunk()).await.unwrap().unwrap().unwrap();
        theirs.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        theirs.heartbeats += theirs.buffer.matches(":\n\n").count();
        assert!(frames(&mut theirs.buffer).is_empty(), "no event of another tenant");
    }
    let (status, _) = Stream::open(&url, &format!("/v1/events?connection={}", rig.erps[0].connection), &globex, None)
        .await
        .err()
        .expect("another tenant's connection");
    assert_eq!(status, 404);

    // Acme's tenant stream, filtered by type, comma-separated or repeated.
    let mut stream =
        Stream::open(&url, "/v1/events?type=job.completed,item.failed&type=item.dead_lettered", &acme, None)
            .await
            .unwrap();
    let got = stream.next().await.unwrap();
    assert_eq!(got[0].event.as_deref(), Some("job.completed"));
    assert_eq!(data(&got[0])["job_id"], job.to_string());

    for (path, last, status, fragment) in [
        ("/v1/events", Some("not-ours"), 400, "Last-Event-ID"),
        ("/v1/events", Some("1-2-3"), 400, "Last-Event-ID"),
        ("/v1/events?after=x", None, 400, "after"),
        ("/v1/events?type=item.bogus", None, 422, "type"),
        ("/v1/events?bogus=1", None, 400, "bogus"),
        (&path, Some("-1"), 400, "Last-Event-ID"),
    ] {
        let (got, body) = Stream::open(&url, path, &acme, last).await.err().expect("refused");
        assert_eq!(got, status, "{path} {last:?}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(fragment), "{body}");
    }
    rig.shutdown().await;
}

macro_rules! on_sqlite_and_postgres {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(None).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(Some(crate::common::fresh_postgres().await)).await;
                }
            )*
        }
    };
}

on_sqlite_and_postgres!(
    a_jobs_transitions_arrive_in_order_resume_exactly_and_survive_a_restart,
    another_tenant_sees_nothing_and_bad_input_is_refused,
);

/// Two daemons on one PostgreSQL: a client of the second, which works on nothing, sees
/// every event the first commits, to the job's completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_another_daemon_of_the_fleet_sees_the_events() {
    let rig = rig(Some(common::fresh_postgres().await), false).await;
    let idle = StartOptions::default();
    idle.paused.store(true, Ordering::Release);
    let second = Daemon::start_with(rig.config.clone(), idle).await.unwrap();
    let token = rig.token().await;
    let job = rig.submit(0, &erpsync::samples::invoices("fleet", 4)).await.unwrap();
    let all = Stream::open(&base(&second), &format!("/v1/jobs/{job}/events"), &token, None).await.unwrap().rest().await;
    assert_whole_job(&all, 4);
    second.shutdown().await;
    rig.shutdown().await;
}

/// The events after `cursor` once `n` are visible: other transactions on the server (of
/// other tests) may hold readers back a while.
async fn settled(
    db: &sea_orm::DatabaseConnection,
    cursor: Option<&EventCursor>,
    n: usize,
) -> Vec<erpsync::store::events::Event> {
    let deadline = Instant::now() + DEADLINE;
    let mut waiter = erpsync::store::events::Waiter::new();
    loop {
        let seen = read_after(db, cursor, &EventFilter::default(), 100).await.unwrap();
        if seen.len() >= n {
            return seen;
        }
        assert!(Instant::now() < deadline, "only {seen:?} became visible");
        waiter.wait().await;
    }
}

/// The CLI's follower (`enqueue --wait`, `status --follow`) resumes a stream dropped by a
/// daemon restart and ends at the job's completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_follower_resumes_across_a_daemon_restart() {
    let port = common::free_port();
    let options = StartOptions::default();
    options.paused.store(true, Ordering::Release);
    let mut rig = Rig::start(RigSpec {
        limits: vec![4],
        tune: Box::new(move |c| c.http.listen = ([127, 0, 0, 1], port).into()),
        options,
        ..Default::default()
    })
    .await
    .unwrap();
    let token = rig.token().await;
    let job = rig.submit(0, &erpsync::samples::invoices("cli", 3)).await.unwrap();
    let api = erpsync::cli::Api::new(format!("http://127.0.0.1:{port}"), Some(token));
    let id = job.to_string();
    let following = tokio::spawn(async move { erpsync::cli::follow::follow_job(&api, &id, 3).await });
    rig.daemon.take().unwrap().shutdown().await;
    assert!(!following.is_finished(), "the job has not completed: the follower waits for the daemon");
    rig.restart(StartOptions::default()).await.unwrap();
    tokio::time::timeout(DEADLINE, following).await.expect("the follower sees the completion").unwrap().unwrap();
    let summary = erpsync::store::job_summary(&rig.daemon().ctx().db, &job).await.unwrap().unwrap();
    assert_eq!(summary.state, erpsync::domain::JobState::Succeeded);
    rig.shutdown().await;
}

/// Two writers on PostgreSQL, the one that began first committing last, and a reader
/// between the commits: the reader skips nothing, though the later writer's row has the
/// larger id and committed first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_skips_no_event_of_a_transaction_that_commits_late() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let url = common::fresh_postgres().await;
    let db = erpsync::store::connect(&url, 4).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    let insert = |kind: &str| {
        format!(
            "INSERT INTO events (xid, tenant, kind, data, at_ms) \
             VALUES (pg_current_xact_id()::text::bigint, 'default', '{kind}', '{{}}', 0)"
        )
    };
    let early = db.begin().await.unwrap();
    early.execute_unprepared(&insert("item.in_progress")).await.unwrap();
    let late = db.begin().await.unwrap();
    late.execute_unprepared(&insert("item.succeeded")).await.unwrap();
    late.commit().await.unwrap();
    let filter = EventFilter::default();
    let seen = read_after(&db, None, &filter, 100).await.unwrap();
    assert!(seen.is_empty(), "held back while the earlier transaction runs: {seen:?}");
    early.commit().await.unwrap();
    let seen = settled(&db, None, 2).await;
    let kinds: Vec<&str> = seen.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["item.in_progress", "item.succeeded"], "both, in transaction order");
    assert!(read_after(&db, Some(&seen[1].cursor), &filter, 100).await.unwrap().is_empty());

    // A reader whose cursor passed the late transaction's row still gets the early one's:
    // it could not have passed it, as it never saw the late row before the early one.
    let early = db.begin().await.unwrap();
    early.execute_unprepared(&insert("item.retrying")).await.unwrap();
    let late = db.begin().await.unwrap();
    late.execute_unprepared(&insert("item.failed")).await.unwrap();
    late.commit().await.unwrap();
    let cursor = seen[1].cursor;
    assert!(read_after(&db, Some(&cursor), &filter, 100).await.unwrap().is_empty());
    early.commit().await.unwrap();
    let kinds: Vec<String> = settled(&db, Some(&cursor), 2).await.into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["item.retrying", "item.failed"]);
}

/// A notification from another process's commit (here a bare connection's, which pokes no
/// one in this process) wakes this process's waiters, well before the poll would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_elsewhere_in_the_fleet_wakes_the_waiters() {
    use sea_orm::ConnectionTrait;
    let url = common::fresh_postgres().await;
    let db = erpsync::store::connect(&url, 2).await.unwrap();
    erpsync::store::migrate(&db).await.unwrap();
    let mut waiter = erpsync::store::events::Waiter::new();
    let listening = erpsync::store::events::listen(&db).expect("PostgreSQL listens");
    // The listener pokes once it listens.
    let deadline = Instant::now() + DEADLINE;
    while !waiter.wait().await {
        assert!(Instant::now() < deadline, "the listener starts");
    }
    let other = erpsync::store::connect(&url, 1).await.unwrap();
    other.execute_unprepared("SELECT pg_notify('erpsync_events', '')").await.unwrap();
    let started = Instant::now();
    assert!(waiter.wait().await, "woken by the notification");
    assert!(started.elapsed() < erpsync::store::events::POLL);
    listening.abort();
}
