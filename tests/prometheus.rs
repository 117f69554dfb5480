//! The dashboards and alert rules against the real tools: a real Prometheus scrapes a real
//! `erpsync run` on loopback while a sandbox ERP takes a workload; every panel expression
//! and every alert expression is then evaluated through Prometheus's HTTP API and must be
//! valid and return data. promtool checks the rules and a scrape of /metrics.

mod common;
use common::*;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn tool(name: &str) -> Command {
    let found = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().unwrap();
    assert!(found.status.success(), "{name} is needed: apt-get install prometheus (scripts/test.sh does)");
    Command::new(name)
}

async fn wait_until<F: AsyncFnMut() -> bool>(what: &str, limit: Duration, mut f: F) {
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Makes every comparison against a number non-filtering (`> bool 5`), so an alert
/// expression returns a series whether or not it would fire.
fn non_filtering(expr: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let op_len = if ["==", "!=", ">=", "<="].contains(&two.as_str()) {
            2
        } else if matches!(chars[i], '>' | '<') {
            1
        } else {
            0
        };
        if op_len > 0 {
            let rest: String = chars[i + op_len..].iter().collect();
            let trimmed = rest.trim_start();
            if trimmed.starts_with(|c: char| c.is_ascii_digit()) {
                out.extend(&chars[i..i + op_len]);
                out.push_str(" bool ");
                i += op_len;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn dashboard_exprs(path: &Path) -> Vec<(String, String)> {
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    assert!(d.get("__inputs").is_none(), "{name}: no __inputs (provisioning, not import)");
    assert!(d["uid"].as_str().is_some_and(|u| u.starts_with("erpsync-")), "{name}: stable uid");
    assert!(d["title"].is_string() && d["schemaVersion"].is_number(), "{name}");
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(vars.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource"), "{name}: datasource variable");
    let mut exprs = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "{name}: a panel without a title");
        assert!(p["description"].as_str().is_some_and(|s| !s.is_empty()), "{name}/{title}: description");
        assert!(p["fieldConfig"]["defaults"]["unit"].as_str().is_some_and(|s| !s.is_empty()), "{name}/{title}: unit");
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{name}/{title}");
        assert!(p["gridPos"]["w"].is_number() && p["id"].is_number(), "{name}/{title}");
        for t in p["targets"].as_array().unwrap() {
            let e = t["expr"].as_str().unwrap().to_owned();
            if e.contains("rate(") || e.contains("increase(") {
                assert!(e.contains("[$__rate_interval]"), "{name}/{title}: rates use $__rate_interval: {e}");
            }
            exprs.push((format!("{name}/{title}"), e));
        }
    }
    exprs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_panel_and_alert_rule_returns_data_from_a_real_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let (api, erp, prom) = (free_port(), free_port(), free_port());
    let _sandbox = Proc(
        Command::new(BIN)
            .args(["sandbox-erp", "--listen", &format!("127.0.0.1:{erp}"), "--latency-ms", "5", "--jitter-ms", "5"])
            .args(["--concurrency", "3", "--fault-rate", "0.2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let cfg = dir.path().join("erpsync.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{api}\"\n[log]\nlevel = \"warn\"\n\
             [retry]\nbase_delay_ms = 20\nmax_delay_secs = 1\n\
             [[connections]]\nid = \"acme\"\nerp = \"generic_rest\"\nbase_url = \"http://127.0.0.1:{erp}\"\nmax_concurrency = 3\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let token = cli_token(&cfg);
    let _daemon =
        Proc(Command::new(BIN).args(["run", "--config", cfg.to_str().unwrap()]).stderr(Stdio::null()).spawn().unwrap());
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {ROOT}/dashboards/alerts.yml\n\
             scrape_configs:\n  - job_name: erpsync\n    static_configs:\n      - targets: ['127.0.0.1:{api}']\n"
        ),
    )
    .unwrap();
    let _prometheus = Proc(
        tool("prometheus")
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = authed_client(&token);
    let base = format!("http://127.0.0.1:{api}");
    wait_until("erpsync ready", Duration::from_secs(30), async || {
        http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;

    // A workload with successes, retries (injected 5xx) and permanent failures.
    let mut docs = erpsync::samples::invoices("prom", 60);
    for d in docs.iter_mut().step_by(10) {
        d.vendor.id = "V-INACTIVE".into();
    }
    let body = serde_json::json!({"connection_id": "acme", "op": "export_invoice", "documents": docs});
    let r = http.post(format!("{base}/v1/jobs")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let job_url = format!("{base}/v1/jobs/{}", job["job_id"].as_str().unwrap());
    wait_until("the job to finish", Duration::from_secs(60), async || {
        let s: Value = http.get(&job_url).send().await.unwrap().json().await.unwrap();
        s["state"] != "running"
    })
    .await;

    let query = async |q: &str| -> Value {
        let mut url = reqwest::Url::parse(&format!("http://127.0.0.1:{prom}/api/v1/query")).unwrap();
        url.query_pairs_mut().append_pair("query", q);
        let r = http.get(url).send().await.unwrap();
        r.json().await.unwrap()
    };
    // Enough scrapes after the workload for every rate window to hold samples.
    wait_until("prometheus to scrape the workload", Duration::from_secs(60), async || {
        let v = query("count_over_time(erpsync_items_total{outcome=\"failed\"}[1m])").await;
        v["data"]["result"][0]["value"][1].as_str().and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0) >= 5.0
    })
    .await;

    let mut exprs = Vec::new();
    for f in ["erpsync-overview.json", "erpsync-connection.json"] {
        exprs.extend(dashboard_exprs(&Path::new(ROOT).join("dashboards").join(f)));
    }
    let rules = std::fs::read_to_string(Path::new(ROOT).join("dashboards/alerts.yml")).unwrap();
    let alerts: Vec<String> =
        rules.lines().filter_map(|l| l.trim().strip_prefix("expr: ")).map(|e| e.to_owned()).collect();
    let named = rules.lines().filter(|l| l.trim().starts_with("- alert: ")).count();
    assert!(named >= 8, "the alert rules are all there: {named}");
    assert_eq!(alerts.len(), named, "every alert rule's expression found");
    exprs.extend(alerts.iter().map(|e| ("alerts.yml".to_owned(), non_filtering(e))));
    let mut empty = Vec::new();
    for (whence, expr) in &exprs {
        let q = expr.replace("$__rate_interval", "30s").replace("$connection", "acme");
        let v = query(&q).await;
        assert_eq!(v["status"], "success", "{whence}: {q} is not valid PromQL: {v}");
        if v["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
            empty.push(format!("{whence}: {q}"));
        }
    }
    assert!(empty.is_empty(), "expressions without data:\n{}", empty.join("\n"));

    // The rules as Prometheus loaded them: all healthy.
    let rules: Value =
        http.get(format!("http://127.0.0.1:{prom}/api/v1/rules")).send().await.unwrap().json().await.unwrap();
    let loaded = rules["data"]["groups"][0]["rules"].as_array().unwrap();
    assert_eq!(loaded.len(), named, "Prometheus loaded every rule");
    for r in loaded {
        assert_eq!(r["health"], "ok", "{r}");
    }

    let out = tool("promtool").args(["check", "rules", &format!("{ROOT}/dashboards/alerts.yml")]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !text.to_lowercase().contains("warn"), "{text}");
    let scrape = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let mut check = tool("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check.stdin.take().unwrap().write_all(scrape.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.trim().is_empty(), "promtool check metrics:\n{text}");
}

#[test]
fn comparisons_become_non_filtering() {
    assert_eq!(non_filtering("up{job=\"x\"} == 0"), "up{job=\"x\"} == bool  0");
    assert_eq!(non_filtering("a{o!=\"s\"} > 0.1"), "a{o!=\"s\"} > bool  0.1");
    assert_eq!(non_filtering("a > 1000 and b > 0"), "a > bool  1000 and b > bool  0");
}
