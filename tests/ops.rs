//! Operating the real binary: the systemd notify protocol without systemd, and logs that
//! carry item context but never a credential.

mod common;
use common::*;

use sea_orm::ConnectionTrait;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn http(method: &str, base: &str, path: &str, body: Option<&str>) -> Option<(u16, String)> {
    request(method, base, path, body, None)
}

/// `http` with an API token, for `/v1`.
fn http_as(token: &str, method: &str, base: &str, path: &str, body: Option<&str>) -> Option<(u16, String)> {
    request(method, base, path, body, Some(token))
}

fn request(method: &str, base: &str, path: &str, body: Option<&str>, token: Option<&str>) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{}Content-Length: {}\r\n\r\n{body}",
        token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default(),
        body.len()
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

fn config(dir: &std::path::Path, api: u16, extra: &str) -> std::path::PathBuf {
    let path = dir.join("erpsync.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{api}\"\n[queue]\npoll_interval_ms = 50\n{extra}",
            dir.join("state").display()
        ),
    )
    .unwrap();
    path
}

fn job_body(connection: &str, tag: &str, n: usize) -> String {
    let docs: Vec<_> = erpsync::samples::invoices(tag, n).iter().map(|i| serde_json::to_value(i).unwrap()).collect();
    serde_json::json!({"connection_id": connection, "op": "export_invoice", "documents": docs}).to_string()
}

fn wait_job(token: &str, base: &str, job: &str, deadline: Duration) -> serde_json::Value {
    let until = Instant::now() + deadline;
    loop {
        if let Some((200, body)) = http_as(token, "GET", base, &format!("/v1/jobs/{job}"), None) {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            if v["state"] != "running" {
                return v;
            }
        }
        assert!(Instant::now() < until, "job {job} did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn notify_protocol_ready_watchdog_stopping_and_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (api, erp) = (free_port(), free_port());
    let cfg = config(
        dir.path(),
        api,
        &format!("[sandbox]\nlisten = \"127.0.0.1:{erp}\"\nlatency_ms = 40\nconcurrency = 2\n"),
    );
    let base = format!("http://127.0.0.1:{api}");
    let token = cli_token(&cfg);
    let start = |watchdog: bool| {
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--config", cfg.to_str().unwrap()]).env("NOTIFY_SOCKET", &sock_path).stderr(Stdio::null());
        if watchdog {
            cmd.env("WATCHDOG_USEC", "400000");
        }
        Proc(cmd.spawn().unwrap())
    };
    let recv = || {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a notify message within 20 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut daemon = start(true);
    // STATUS lines come first; READY=1 only once the daemon serves requests.
    let ready = loop {
        let m = recv();
        if m.contains("READY=1") {
            break m;
        }
        assert!(m.starts_with("STATUS="), "{m}");
    };
    assert!(ready.contains("STATUS=running"), "{ready}");
    assert_eq!(http("GET", &base, "/readyz", None).map(|r| r.0), Some(200), "ready when READY=1 is sent");

    let started = Instant::now();
    let mut pings = 0;
    while pings < 4 {
        if recv() == "WATCHDOG=1" {
            pings += 1;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(3), "pings every 200 ms");

    let (status, body) = http_as(&token, "POST", &base, "/v1/jobs", Some(&job_body("sandbox", "notify", 40))).unwrap();
    assert_eq!(status, 202, "{body}");
    let job: serde_json::Value = serde_json::from_str(&body).unwrap();
    let job = job["job_id"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(300));

    let pid = daemon.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    loop {
        let m = recv();
        if m.contains("STOPPING=1") {
            assert!(m.contains("STATUS=draining"), "{m}");
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    let exit = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");

    // Whatever was not finished is still queued: a new daemon completes the job.
    let _again = start(false);
    let until = Instant::now() + Duration::from_secs(20);
    while http("GET", &base, "/readyz", None).map(|r| r.0) != Some(200) {
        assert!(Instant::now() < until, "restart not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let summary = wait_job(&token, &base, &job, Duration::from_secs(60));
    assert_eq!(summary["state"], "succeeded", "{summary}");
    assert_eq!(summary["counts"]["succeeded"], 40);
}

/// A daemon whose actor tree stops making progress withholds the watchdog ping, so systemd
/// kills and restarts it: here another process holds SQLite's write lock, the poller's
/// receive waits on it, and no `WATCHDOG=1` comes while it does. Once the lock is let go
/// the pings resume by themselves, and the daemon still takes and finishes a job.
#[test]
fn a_stalled_daemon_withholds_the_watchdog_ping_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let (api, erp) = (free_port(), free_port());
    let cfg = config(dir.path(), api, &format!("[sandbox]\nlisten = \"127.0.0.1:{erp}\"\nconcurrency = 2\n"));
    let base = format!("http://127.0.0.1:{api}");
    let token = cli_token(&cfg);
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--config", cfg.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stderr(Stdio::null());
    let _daemon = Proc(cmd.spawn().unwrap());
    // Notify messages until `until`: the watchdog pings among them.
    let pings_until = |until: Instant| {
        let mut pings = 0;
        let mut buf = [0u8; 4096];
        while let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
            sock.set_read_timeout(Some(left)).unwrap();
            if let Ok(n) = sock.recv(&mut buf) {
                pings += usize::from(&buf[..n] == b"WATCHDOG=1");
            }
        }
        pings
    };
    let ready = Instant::now() + Duration::from_secs(20);
    while http("GET", &base, "/readyz", None).map(|r| r.0) != Some(200) {
        assert!(Instant::now() < ready, "daemon not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(pings_until(Instant::now() + Duration::from_secs(1)) >= 3, "pings every 200 ms while healthy");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = format!("sqlite://{}/erpsync.db?mode=rwc", dir.path().join("state").display());
    let holder = rt.block_on(erpsync::store::connect(&url, 1)).unwrap();
    rt.block_on(holder.execute_unprepared("BEGIN IMMEDIATE")).unwrap();
    // A ping already decided may still arrive within the first interval or two.
    pings_until(Instant::now() + Duration::from_millis(800));
    let withheld = pings_until(Instant::now() + Duration::from_secs(2));
    rt.block_on(holder.execute_unprepared("COMMIT")).unwrap();
    assert_eq!(withheld, 0, "no ping while the poller cannot go round");

    assert!(pings_until(Instant::now() + Duration::from_secs(2)) >= 2, "the pings resume once the lock is let go");
    let (status, body) = http_as(&token, "POST", &base, "/v1/jobs", Some(&job_body("sandbox", "stall", 5))).unwrap();
    assert_eq!(status, 202, "{body}");
    let job: serde_json::Value = serde_json::from_str(&body).unwrap();
    let summary = wait_job(&token, &base, job["job_id"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(summary["state"], "succeeded", "{summary}");
}

#[test]
fn logs_carry_item_context_and_never_a_credential() {
    const SECRET: &str = "s3cr3t-t0ken-4f9b2c";
    let dir = tempfile::tempdir().unwrap();
    let (api, erp) = (free_port(), free_port());
    let _sandbox = Proc(
        Command::new(BIN)
            .args(["sandbox-erp", "--listen", &format!("127.0.0.1:{erp}"), "--token", SECRET, "--latency-ms", "2"])
            // Room for both connections' 4 calls: the test is about logs, not shared limits
            // (with room for only 4, the revoked connection's calls throttled the good one's
            // into dead-lettering now and then).
            .args(["--concurrency", "8", "--fault-rate", "0.3"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let extra = format!(
        "[log]\nformat = \"json\"\nlevel = \"debug,sea_orm=info,sqlx=info,hyper=info,reqwest=info\"\n\
         [retry]\nbase_delay_ms = 20\nmax_delay_secs = 1\n\
         [[connections]]\nid = \"good\"\nerp = \"generic_rest\"\nbase_url = \"http://127.0.0.1:{erp}\"\ncredentials = \"env:ERPSYNC_TEST_TOKEN\"\n\
         [[connections]]\nid = \"wrong\"\nerp = \"generic_rest\"\nbase_url = \"http://127.0.0.1:{erp}\"\ncredentials = \"env:ERPSYNC_TEST_WRONG\"\n"
    );
    let cfg = config(dir.path(), api, &extra);
    let mut daemon = Proc(
        Command::new(BIN)
            .args(["run", "--config", cfg.to_str().unwrap()])
            .env("ERPSYNC_TEST_TOKEN", SECRET)
            .env("ERPSYNC_TEST_WRONG", format!("{SECRET}-revoked"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = daemon.0.stderr.take().unwrap();
    let lines = std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<_>>());
    let base = format!("http://127.0.0.1:{api}");
    let until = Instant::now() + Duration::from_secs(20);
    while http("GET", &base, "/readyz", None).map(|r| r.0) != Some(200) {
        assert!(Instant::now() < until, "not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Minted in the daemon's database directly: the CLI would need the connections'
    // credentials in its environment to load this config.
    let url = format!("sqlite://{}/erpsync.db?mode=rwc", dir.path().join("state").display());
    let token = tokio::runtime::Runtime::new().unwrap().block_on(db_token(&url));
    let (_, body) = http_as(&token, "POST", &base, "/v1/jobs", Some(&job_body("good", "logs", 30))).unwrap();
    let good: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (_, body) = http_as(&token, "POST", &base, "/v1/jobs", Some(&job_body("wrong", "logs-wrong", 2))).unwrap();
    let wrong: serde_json::Value = serde_json::from_str(&body).unwrap();
    let summary = wait_job(&token, &base, good["job_id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(summary["state"], "succeeded", "{summary}");
    // The revoked token keeps failing with auth errors; give it a moment to log them.
    let until = Instant::now() + Duration::from_secs(10);
    let wrong_status = loop {
        let (_, body) =
            http_as(&token, "GET", &base, &format!("/v1/jobs/{}", wrong["job_id"].as_str().unwrap()), None).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["counts"]["retrying"].as_u64() == Some(2) || Instant::now() > until {
            break body;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(wrong_status.contains("auth"), "{wrong_status}");
    let (_, metrics) = http("GET", &base, "/metrics", None).unwrap();
    let pid = daemon.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let _ = daemon.0.wait();
    let lines = lines.join().unwrap();

    assert!(!lines.is_empty());
    for text in lines.iter().chain([&metrics, &summary.to_string(), &wrong_status]) {
        assert!(!text.contains(SECRET), "a credential leaked: {text}");
    }
    let mut with_item = 0;
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if let Some(span) = v.get("span").filter(|s| s["name"] == "item") {
            with_item += 1;
            for field in ["job_id", "item_id", "connection"] {
                assert!(span[field].is_string(), "{field} missing: {line}");
            }
        }
    }
    assert!(with_item > 5, "retries of items were logged with their context ({with_item} lines)");
}

fn systemd_analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze is needed for this test: apt-get install systemd (scripts/test.sh does)")
}

/// The unit as shipped, with ExecStart pointing at the binary under test.
fn unit_under_test(dir: &std::path::Path) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/erpsync.service")).unwrap();
    let path = dir.join("erpsync.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/erpsync", BIN)).unwrap();
    path
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_under_test(dir.path());
    let text = std::fs::read_to_string(&unit).unwrap();
    for line in
        ["Type=notify", "WatchdogSec=", "ExecStartPre=", "Restart=on-failure", "LoadCredential=", "DynamicUser=yes"]
    {
        assert!(text.contains(line), "{line} missing from the unit");
    }
    let out = systemd_analyze(&["verify", unit.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !report.contains("erpsync.service:"), "systemd-analyze verify:\n{report}");
    let out = systemd_analyze(&["security", "--offline=true", unit.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&out.stdout);
    let overall = report.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("{report}"));
    assert!(overall.contains(" OK") || overall.contains(" SAFE"), "{overall}");
}
