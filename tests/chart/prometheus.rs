//! The chart's alerts and dashboard in a real Prometheus (Debian's, which
//! `scripts/test-env.sh` installs): `promtool check rules` on the rendered
//! rule groups (their expressions and annotation templates), then
//! Prometheus scraping dbfleet's own metrics encoding and evaluating the
//! rules and every dashboard query. Grafana itself is not run here: it is
//! AGPL-licensed and not packaged by Debian; the dashboard's JSON shape is
//! checked in `monitoring.rs`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::monitoring::{enabled, sampled};
use crate::{ctl, of_kind};

/// Serves `body` as `/metrics` on a loopback port until the process ends.
fn serve_metrics(body: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// A directory of its own under the temporary directory, removed after.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let path = std::env::temp_dir().join(format!("dbfleet-prometheus-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The rendered PrometheusRule's groups, as a Prometheus rule file.
fn rule_file(dir: &Path) -> std::path::PathBuf {
    let docs = enabled();
    let rule = of_kind(&docs, "PrometheusRule").next().expect("a PrometheusRule");
    let groups = serde_json::json!({"groups": rule["spec"]["groups"]});
    let path = dir.join("rules.yaml");
    std::fs::write(&path, serde_yaml::to_string(&groups).unwrap()).unwrap();
    path
}

/// Every dashboard query, with its panel's title, and the namespace
/// variable set to all namespaces (as the dashboard's default is).
fn dashboard_queries() -> Vec<(String, String)> {
    let docs = enabled();
    let map = of_kind(&docs, "ConfigMap")
        .find(|c| c["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("the dashboard ConfigMap");
    let dashboard: Value = serde_json::from_str(map["data"]["dbfleet.json"].as_str().unwrap()).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap().replace("$namespace", ".*");
            queries.push((panel["title"].as_str().unwrap().to_string(), expr));
        }
    }
    queries
}

/// Prometheus' answer to `expr` at now (an error while it starts).
async fn query(client: &reqwest::Client, port: u16, expr: &str) -> reqwest::Result<Value> {
    client
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await?
        .json()
        .await
}

#[tokio::test]
async fn prometheus_loads_the_rules_fires_them_on_dbfleets_series_and_answers_every_panel() {
    let dir = Scratch::new();
    let rules = rule_file(dir.path());
    let checked = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
        .expect("promtool (scripts/test-env.sh installs it)");
    assert!(
        checked.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // dbfleet's series: every family sampled for ns/db, plus an instance
    // down, one past its end of life, one full soon (ns/db's 12.5 days)
    // and one with a high-severity finding (ns/db's empty password).
    let metrics = sampled();
    metrics.instance("ns", "down", Some(false), None, None);
    metrics.instance_judgements("ns", "old", Some("end_of_life"), Some(1_700_000_000), None);
    let target = serve_metrics(metrics.encode());

    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [{rules:?}]\n\
             scrape_configs:\n  - job_name: dbfleet\n    honor_labels: true\n    static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n"
        ),
    )
    .unwrap();
    let _prometheus = Running(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (scripts/test-env.sh installs it)"),
    );
    let client = reqwest::Client::new();
    ctl::eventually(Duration::from_secs(60), "the first scrape", || async {
        let up = query(&client, port, "up{job=\"dbfleet\"} == 1").await;
        let scraped = up
            .as_ref()
            .ok()
            .and_then(|u| u["data"]["result"].as_array())
            .is_some_and(|r| !r.is_empty());
        (scraped.then_some(()), format!("{up:?}"))
    })
    .await;

    // The alerts fire (or wait out their `for`) on exactly what they are about.
    let expected = [
        ("CapacityFullSoon", "db"),
        ("HighSeverityFindings", "db"),
        ("InstanceDown", "down"),
        ("VersionEndOfLife", "old"),
    ];
    let want: Vec<(String, String)> = expected.iter().map(|(a, n)| (a.to_string(), n.to_string())).collect();
    ctl::eventually(Duration::from_secs(60), "the alerts", || async {
        let alerts = query(&client, port, "ALERTS").await;
        let mut seen: Vec<(String, String)> = alerts
            .as_ref()
            .ok()
            .and_then(|a| a["data"]["result"].as_array())
            .into_iter()
            .flatten()
            .map(|a| {
                let label = |k: &str| a["metric"][k].as_str().unwrap_or_default().to_string();
                (label("alertname"), label("name"))
            })
            .collect();
        seen.sort();
        ((seen == want).then_some(()), format!("{seen:?}"))
    })
    .await;

    // Every panel's query evaluates; those over the instances' gauges
    // answer with data from the one scrape.
    let mut empty = Vec::new();
    for (title, expr) in dashboard_queries() {
        let answer = query(&client, port, &expr).await.unwrap();
        assert_eq!(answer["status"], "success", "{title}: {expr}\n{answer}");
        if answer["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
            empty.push(title);
        }
    }
    // Differences over a day and rates need more than one scrape's history.
    let may_be_empty = [
        "Account changes (last 24 h)",
        "Instances down over time",
        "Connection test latency (p95)",
    ];
    let unexpected: Vec<&String> = empty.iter().filter(|t| !may_be_empty.contains(&t.as_str())).collect();
    assert!(unexpected.is_empty(), "panels without data: {unexpected:?}");
}
