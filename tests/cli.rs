//! The `erpsync` binary as an operator uses it: real processes, real ports, a real SQLite
//! file, the built-in sandbox ERP.

mod common;
use common::*;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn erpsync(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).env_remove("ERPSYNC_CONFIG").output().expect("erpsync runs")
}

#[test]
fn check_config_lists_every_problem_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
        [queue]
        wait_time_secs = 30
        [[connections]]
        id = "acme"
        erp = "generic_rest"
        base_url = "ftp://nowhere"
        credentials = "env:ERPSYNC_TEST_NOT_SET"
        "#,
    )
    .unwrap();
    let out = erpsync(&["check-config", "--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for key in ["queue.wait_time_secs", "connections[0].base_url", "connections[0].credentials"] {
        assert!(stderr.contains(key), "{key} missing from:\n{stderr}");
    }

    std::fs::write(&path, "[http]\nlisten = \"not an address\"\nbogus = 1\n").unwrap();
    let out = erpsync(&["check-config", "--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("http."), "{stderr}");

    let out = erpsync(&["check-config", "--config", "config/erpsync.toml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Every vendor kind's connection problems — missing keys, credentials documents with
/// missing or extra keys, an unreadable credentials file, an unknown kind — come back from
/// one `check-config`, each with its key, and no secret is quoted.
#[test]
fn check_config_names_every_problem_of_every_vendor_kind_at_once_without_quoting_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let oauth = write("oauth.json", r#"{"client_id": "c", "client_secret": "s3cr3t-oauth"}"#);
    let bc = write("bc.json", r#"{"client_id": "c", "client_secret": "s3cr3t-bc", "tenant": "x"}"#);
    let ns = write("ns.json", r#"{"account_id": "123", "consumer_key": "k", "consumer_secret": "s3cr3t-ns"}"#);
    let intacct = write("intacct.json", r#"{"sender_id": "s", "sender_password": "s3cr3t-intacct"}"#);
    let config = format!(
        r#"
        [[connections]]
        id = "qbo"
        erp = "quickbooks_online"
        credentials = "file:{oauth}"
        [[connections]]
        id = "xero"
        erp = "xero"
        tenant_id = "not-a-uuid"
        credentials = "file:{dir}/missing.json"
        [[connections]]
        id = "bc"
        erp = "business_central"
        credentials = "file:{bc}"
        [[connections]]
        id = "ns"
        erp = "netsuite"
        credentials = "file:{ns}"
        [[connections]]
        id = "intacct"
        erp = "sage_intacct"
        credentials = "file:{intacct}"
        [[connections]]
        id = "odoo"
        erp = "odoo"
        "#,
        dir = dir.path().display()
    );
    let path = write("erpsync.toml", &config);
    let out = erpsync(&["check-config", "--config", &path]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for (key, what) in [
        ("connections[5].erp", "\"odoo\""),
        ("connections[0].realm_id", ""),
        ("connections[0].credentials", "refresh_token"),
        ("connections[1].tenant_id", "not-a-uuid"),
        ("connections[1].credentials", "missing.json"),
        ("connections[2].tenant_id", ""),
        ("connections[2].environment", ""),
        ("connections[2].company_id", ""),
        ("connections[2].credentials", "tenant"),
        ("connections[3].credentials", "token_id"),
        ("connections[4].credentials", "company_id"),
    ] {
        let line = stderr.lines().find(|l| l.contains(key)).unwrap_or_else(|| panic!("{key} missing from:\n{stderr}"));
        assert!(line.contains(what), "{key} should name {what:?}: {line}");
    }
    assert!(!stderr.contains("s3cr3t"), "a secret was quoted: {stderr}");
}

/// A bare HTTP/1.1 GET, so the test needs no HTTP client binary.
fn http_get_status(base: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = http_get_status(url, "/readyz") == Some(200);
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "daemon not ready at {url}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn run_enqueue_wait_status_and_graceful_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (api, erp) = (free_port(), free_port());
    let config = dir.path().join("erpsync.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{api}\"\n[sandbox]\nlisten = \"127.0.0.1:{erp}\"\nlatency_ms = 5\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let token = cli_token(&config);
    // Its log goes nowhere: a pipe nobody reads would block a chatty daemon.
    let child = Command::new(BIN).args(["run", "--config", cfg]).stderr(Stdio::null()).spawn().unwrap();
    let mut daemon = Proc(child);
    let url = format!("http://127.0.0.1:{api}");
    wait_ready(&url);
    // The daemon keeps its heap off transparent huge pages (see util::no_transparent_huge_pages).
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.0.id())).unwrap();
    assert!(status.contains("THP_enabled:\t0"), "{status}");

    let out = erpsync(&[
        "enqueue",
        "export-invoices",
        "--connection",
        "sandbox",
        "--sample",
        "25",
        "--wait",
        "--token",
        &token,
        "--config",
        cfg,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let job_id = stdout.lines().next().unwrap().trim().to_owned();
    assert!(stdout.contains("succeeded"), "{stdout}");
    // Not a terminal: a line per event of the job's stream, then the summary.
    assert_eq!(stdout.lines().filter(|l| l.starts_with("item.succeeded item ")).count(), 25, "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("item.in_progress item ")).count(), 25, "{stdout}");
    let completed = stdout.lines().position(|l| l == "job.completed").expect("the completion event");
    let summary = stdout.lines().position(|l| l.starts_with("job ")).expect("the summary");
    assert!(completed < summary, "{stdout}");

    let out = erpsync(&["status", &job_id, "--follow", "--token", &token, "--config", cfg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": succeeded"), "a finished job: its summary");

    let out = erpsync(&["status", &job_id, "--json", "--token", &token, "--config", cfg]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "succeeded");
    assert_eq!(v["counts"]["succeeded"], 25);

    let out = erpsync(&[
        "enqueue",
        "export-invoices",
        "--connection",
        "nope",
        "--sample",
        "1",
        "--token",
        &token,
        "--config",
        cfg,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown connection \"nope\""));

    let out = erpsync(&["dlq", "list", "--config", cfg]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("empty"), "{}", String::from_utf8_lossy(&out.stdout));

    // SIGTERM: a clean, prompt exit.
    let pid = daemon.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn enqueue_without_a_daemon_says_how_to_fix_it() {
    let port = free_port();
    let out = erpsync(&[
        "enqueue",
        "export-invoices",
        "--connection",
        "sandbox",
        "--sample",
        "1",
        "--url",
        &format!("http://127.0.0.1:{port}"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `erpsync run` running?"));
}

/// `queue create`, `dlq list` and `dlq redrive --connection` against SQS (fauxqs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_create_and_dlq_redrive_on_sqs() {
    use erpsync::queue::{Envelope, Outgoing, Queue, ReceiveRequest};
    let endpoint = common::fauxqs_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sqs.toml");
    let name = format!("cli-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    std::fs::write(
        &path,
        format!(
            "data_dir = {:?}\n[queue]\nbackend = \"sqs\"\nname = \"{name}\"\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n",
            dir.path().display().to_string()
        ),
    )
    .unwrap();
    let cfg = path.to_str().unwrap();
    let first = erpsync(&["queue", "create", "--config", cfg]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let again = erpsync(&["queue", "create", "--config", cfg]);
    assert_eq!(String::from_utf8_lossy(&first.stdout), String::from_utf8_lossy(&again.stdout), "idempotent");
    assert!(String::from_utf8_lossy(&first.stdout).contains(&format!("{name}-dlq")));

    // Two dead letters, for two connections.
    let config = erpsync::config::Config::load(Some(&path)).unwrap();
    let q = erpsync::queue::sqs::SqsQueue::connect(&config.queue).await.unwrap();
    let body = |conn: &str| {
        serde_json::json!({"v": 1, "job_id": uuid::Uuid::now_v7(), "item_id": uuid::Uuid::now_v7(),
            "connection_id": conn, "op": "export_invoice", "payload": {"source_id": "x"}})
        .to_string()
    };
    q.send(vec![Outgoing::new(body("acme"), Some("acme".into())), Outgoing::new(body("other"), None)]).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let req = ReceiveRequest {
            max_messages: 10,
            wait: Duration::from_secs(2),
            visibility: Duration::from_secs(60),
            groups: erpsync::queue::GroupFilter::Any,
        };
        got.extend(q.receive(req).await.unwrap().messages);
    }
    for m in &got {
        assert!(q.dead_letter(m, "gave up after 12 attempts; last error: 503").await.unwrap());
    }

    let out = erpsync(&["dlq", "list", "--json", "--config", cfg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|d| d["reason"] == "gave up after 12 attempts; last error: 503"), "{listed:?}");

    let out = erpsync(&["dlq", "redrive", "--connection", "acme", "--config", cfg]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("redriven 1 message(s)"), "{stdout}");
    let left = q.dead_letters(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(Envelope::decode(&left[0].body).unwrap().connection_id.as_str(), "other");
    let back = q.depth().await.unwrap();
    assert_eq!((back.visible, back.dead_lettered), (1, 1), "{back:?}");
}

/// `tokens create` prints the token once and keeps only its hash; `list` never shows it;
/// `revoke` marks it, once.
#[test]
fn tokens_create_list_and_revoke_keep_only_a_hash() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("erpsync.toml");
    std::fs::write(&config, format!("data_dir = \"{}\"\n", dir.path().join("state").display())).unwrap();
    let cfg = config.to_str().unwrap();
    let out =
        erpsync(&["tokens", "create", "--tenant", "acme", "--scope", "admin", "--name", "ap app", "--config", cfg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("erps_") && token.len() == 69, "{token}");
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(note.contains("shown only now") && !note.contains(&token), "{note}");

    let out = erpsync(&["tokens", "list", "--json", "--config", cfg]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!stdout.contains(&token), "list shows no token: {stdout}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed.len(), 1);
    let t = &listed[0];
    assert_eq!(
        (t["tenant"].as_str(), t["scope"].as_str(), t["name"].as_str()),
        (Some("acme"), Some("admin"), Some("ap app"))
    );
    assert_eq!(t["last_four"].as_str().unwrap(), &token[token.len() - 4..]);
    assert!(t["revoked_at_ms"].is_null());
    let id = t["id"].as_str().unwrap().to_owned();

    // The table holds the token's SHA-256 and nothing from which it could be read back.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = format!("sqlite://{}/erpsync.db?mode=rwc", dir.path().join("state").display());
    let rows: Vec<Vec<String>> = rt.block_on(async {
        use sea_orm::ConnectionTrait;
        let db = erpsync::store::connect(&url, 1).await.unwrap();
        let sql = "SELECT id, token_hash, tenant, scope, name, last_four, CAST(created_at_ms AS TEXT) FROM api_tokens";
        let rows = db.query_all_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
        rows.iter().map(|r| (0..7).map(|i| r.try_get_by_index::<String>(i).unwrap()).collect()).collect()
    });
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][1], erpsync::store::tokens::hash(&token));
    assert!(rows[0].iter().all(|v| !v.contains(&token[5..15])), "{rows:?}");

    let out = erpsync(&["tokens", "revoke", &id, "--config", cfg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = erpsync(&["tokens", "list", "--config", cfg]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&id) && stdout.contains("revoked"), "{stdout}");
    let again = erpsync(&["tokens", "revoke", &id, "--config", cfg]);
    assert!(!again.status.success(), "revoked once");
    assert!(String::from_utf8_lossy(&again.stderr).contains("no active token"));

    let bad = erpsync(&["tokens", "create", "--tenant", "acme", "--scope", "root", "--config", cfg]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("not a scope"));
    let bad = erpsync(&["tokens", "create", "--tenant", "a b", "--config", cfg]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("letters, digits"));
}

/// `erpsync demo`: one connection of each ERP dialect against its simulator, through 5 %
/// faults: every invoice is exported once.
#[test]
fn the_demo_exports_to_every_dialect_once() {
    let out = Command::new(BIN)
        .args(["demo", "--invoices", "4"])
        .env_remove("ERPSYNC_CONFIG")
        .current_dir(tempfile::tempdir().unwrap().path())
        .output()
        .expect("erpsync runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for kind in ["generic_rest", "xero", "quickbooks_online", "business_central", "netsuite", "sage_intacct"] {
        let row = stdout.lines().rev().find(|l| l.starts_with(kind)).unwrap_or_else(|| panic!("{kind}: {stdout}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!((cols[1], cols[2], cols[4]), ("4", "0", "0"), "{kind}: 4 done, none failed, no duplicate: {row}");
    }
}
