//! The `erpsync` binary as an operator uses it: real processes, real ports, a real SQLite
//! file, the built-in sandbox ERP.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_erpsync");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

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

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
    let child = Command::new(BIN).args(["run", "--config", cfg]).stderr(Stdio::piped()).spawn().unwrap();
    let mut daemon = Daemon(child);
    let url = format!("http://127.0.0.1:{api}");
    wait_ready(&url);

    let out = erpsync(&[
        "enqueue",
        "export-invoices",
        "--connection",
        "sandbox",
        "--sample",
        "25",
        "--wait",
        "--config",
        cfg,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let job_id = stdout.lines().next().unwrap().trim().to_owned();
    assert!(stdout.contains("succeeded"), "{stdout}");

    let out = erpsync(&["status", &job_id, "--json", "--config", cfg]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "succeeded");
    assert_eq!(v["counts"]["succeeded"], 25);

    let out = erpsync(&["enqueue", "export-invoices", "--connection", "nope", "--sample", "1", "--config", cfg]);
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
