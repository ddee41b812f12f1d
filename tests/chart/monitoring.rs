//! The chart's alerts and dashboard (`monitoring.*`): rendered by helm,
//! every PromQL expression parsed (the `promql-parser` crate, which
//! follows Prometheus' own grammar), every metric an expression names
//! exported by dbfleet, the rules shaped as Prometheus loads them, and the
//! dashboard shaped as Grafana loads it.

use std::collections::BTreeSet;
use std::time::Duration;

use dbfleet::crd::findings::{CodeCount, FindingCounts};
use dbfleet::crd::instance::CapacityGrowth;
use dbfleet::metrics::Metrics;
use dbfleet::observe::freshness::ProbeKind;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use promql_parser::parser::{self, Expr};
use serde_json::Value;

use crate::{documents, of_kind, render};

const RULE_API: &str = "monitoring.coreos.com/v1/PrometheusRule";

fn rendered(values: &[&str]) -> Vec<Value> {
    let output = crate::helm(
        &[
            "template",
            "mon",
            "charts/dbfleet",
            "--namespace",
            "dbfleet",
            "--api-versions",
            RULE_API,
        ],
        values,
    );
    assert!(
        output.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    documents(&String::from_utf8(output.stdout).unwrap())
}

pub(crate) fn enabled() -> Vec<Value> {
    rendered(&[
        "monitoring.prometheusRule.enabled=true",
        "monitoring.dashboard.enabled=true",
    ])
}

/// A `Metrics` with a sample in every family (instance `ns/db`).
pub(crate) fn sampled() -> Metrics {
    let m = Metrics::default();
    m.reconciled("dbinstance", "success", Duration::from_millis(3));
    m.probed("connection", "postgresql", true, Duration::from_millis(3));
    m.waited_for_probe_slot(Duration::from_millis(1));
    m.instance("ns", "db", Some(true), Some(1024), Some(3));
    m.last_success("ns", "db", ProbeKind::Connection, 1_800_000_000);
    m.replication_lag("ns", "db", Some(Duration::from_secs(2)));
    m.capacity_growth(
        "ns",
        "db",
        Some(&CapacityGrowth {
            samples: 9,
            last_sample_at: Time(Timestamp::UNIX_EPOCH),
            last_total_bytes: 1 << 40,
            bytes_per_day: Some(1 << 30),
            r_squared: Some(0.98),
            reason: None,
            limit_bytes: Some(2 << 40),
            days_until_full: Some(12.5),
            full_at: None,
        }),
    );
    m.served("GET", 200, Duration::from_millis(1));
    m.status_written();
    m.logged_in("postgresql", 1);
    m.inventory_written("accounts");
    m.token_reviewed("authenticated");
    m.instance_judgements(
        "ns",
        "db",
        Some("supported"),
        Some(1_900_000_000),
        Some("least_privilege"),
    );
    m.instance_findings(
        "ns",
        "db",
        Some(&FindingCounts {
            high: 1,
            by_code: vec![CodeCount {
                code: "empty_password".into(),
                count: 1,
            }],
            ..FindingCounts::default()
        }),
    );
    m.instance_accounts_and_release("ns", "db", Some(1), Some(("postgresql", "15")));
    m
}

/// Every metric name dbfleet exports: [`sampled`], encoded. Each family
/// must have a sample, so a family added without one there fails this
/// test rather than escaping the check.
fn exported() -> BTreeSet<String> {
    let text = sampled().encode();

    let samples: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect();
    for family in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = family.split(' ').next().unwrap();
        assert!(
            samples.iter().any(|s| s.starts_with(name)),
            "no sample of {name}: record one in exported()\n{text}"
        );
    }
    samples
}

/// The metric names an expression selects.
fn metric_names(expr: &Expr, names: &mut BTreeSet<String>) {
    let mut selector = |vs: &parser::VectorSelector| {
        let by_matcher = vs
            .matchers
            .matchers
            .iter()
            .find(|m| m.name == "__name__")
            .map(|m| m.value.clone());
        names.insert(vs.name.clone().or(by_matcher).expect("a selector names its metric"));
    };
    match expr {
        Expr::VectorSelector(vs) => selector(vs),
        Expr::MatrixSelector(ms) => selector(&ms.vs),
        Expr::Aggregate(a) => {
            metric_names(&a.expr, names);
            if let Some(param) = &a.param {
                metric_names(param, names);
            }
        }
        Expr::Unary(u) => metric_names(&u.expr, names),
        Expr::Binary(b) => {
            metric_names(&b.lhs, names);
            metric_names(&b.rhs, names);
        }
        Expr::Paren(p) => metric_names(&p.expr, names),
        Expr::Subquery(s) => metric_names(&s.expr, names),
        Expr::Call(c) => c.args.args.iter().for_each(|a| metric_names(a, names)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Parses `expr` and checks that every metric it names is exported.
fn check_expr(what: &str, expr: &str, exported: &BTreeSet<String>) -> BTreeSet<String> {
    let ast = parser::parse(expr).unwrap_or_else(|e| panic!("{what}: {e}\n{expr}"));
    let mut names = BTreeSet::new();
    metric_names(&ast, &mut names);
    assert!(!names.is_empty(), "{what} names no metric: {expr}");
    for name in &names {
        assert!(exported.contains(name), "{what}: dbfleet exports no {name}\n{expr}");
    }
    names
}

/// A Prometheus duration (`5m`, `1h30m`).
fn is_duration(text: &str) -> bool {
    let units = ["ms", "s", "m", "h", "d", "w", "y"];
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) = units.iter().filter(|u| rest.starts_with(**u)).max_by_key(|u| u.len()) else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

#[test]
fn monitoring_is_opt_in_and_needs_the_rule_crd() {
    let defaults = documents(&render("mon", "dbfleet", &[]));
    assert_eq!(of_kind(&defaults, "PrometheusRule").count(), 0);
    assert!(
        of_kind(&defaults, "ConfigMap").all(|c| c["metadata"]["labels"]["grafana_dashboard"].is_null()),
        "no dashboard unless asked for"
    );

    let output = crate::helm(
        &["template", "mon", "charts/dbfleet"],
        &["monitoring.prometheusRule.enabled=true"],
    );
    assert!(!output.status.success(), "rendered without the PrometheusRule CRD");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--api-versions monitoring.coreos.com/v1/PrometheusRule"),
        "{stderr}"
    );
}

#[test]
fn the_alert_rules_parse_and_name_only_metrics_dbfleet_exports() {
    let exported = exported();
    let docs = enabled();
    let rules: Vec<&Value> = of_kind(&docs, "PrometheusRule").collect();
    assert_eq!(rules.len(), 1);
    let rule = rules[0];
    assert_eq!(rule["metadata"]["namespace"], "dbfleet");

    let mut alerts = BTreeSet::new();
    for group in rule["spec"]["groups"].as_array().unwrap() {
        assert!(group["name"].as_str().is_some_and(|n| !n.is_empty()));
        for r in group["rules"].as_array().unwrap() {
            let alert = r["alert"].as_str().expect("every rule is an alert").to_string();
            let expr = r["expr"].as_str().unwrap_or_else(|| panic!("{alert}: no expr"));
            check_expr(&alert, expr, &exported);
            if let Some(duration) = r.get("for") {
                assert!(duration.as_str().is_some_and(is_duration), "{alert}: for {duration}");
            }
            assert!(
                ["critical", "warning", "info"].contains(&r["labels"]["severity"].as_str().unwrap_or_default()),
                "{alert}: severity"
            );
            for key in ["summary", "description"] {
                let text = r["annotations"][key]
                    .as_str()
                    .unwrap_or_else(|| panic!("{alert}: {key}"));
                assert_eq!(
                    text.matches("{{").count(),
                    text.matches("}}").count(),
                    "{alert}: unbalanced template in {key}: {text}"
                );
                assert!(!text.contains("{{ ."), "{alert}: a Helm value left unrendered in {key}");
            }
            assert!(alerts.insert(alert.clone()), "{alert} twice");
        }
    }
    let expected = [
        "CapacityFullSoon",
        "HighSeverityFindings",
        "InstanceDown",
        "ProbeStale",
        "SuperuserAdded",
        "VersionEndOfLife",
        "VersionEndOfLifeSoon",
    ];
    assert_eq!(alerts.iter().map(String::as_str).collect::<Vec<_>>(), expected);

    // The values reach the rules.
    let tuned = rendered(&[
        "monitoring.prometheusRule.enabled=true",
        "monitoring.prometheusRule.instanceDownFor=7m",
        "monitoring.prometheusRule.capacityFullSoon.days=30",
        "monitoring.prometheusRule.labels.release=kps",
    ]);
    let rule = of_kind(&tuned, "PrometheusRule").next().unwrap();
    assert_eq!(rule["metadata"]["labels"]["release"], "kps");
    let text = rule["spec"].to_string();
    assert!(text.contains("\"for\":\"7m\""), "{text}");
    assert!(
        text.contains("dbfleet_instance_capacity_days_until_full) < 30"),
        "{text}"
    );
}

#[test]
fn the_rules_refuse_values_that_are_not_durations() {
    let output = crate::helm(
        &["template", "mon", "charts/dbfleet", "--api-versions", RULE_API],
        &[
            "monitoring.prometheusRule.enabled=true",
            "monitoring.prometheusRule.instanceDownFor=five minutes",
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("instanceDownFor"), "{stderr}");
}

#[test]
fn the_dashboard_is_a_grafana_dashboard_over_exported_metrics() {
    let exported = exported();
    let docs = enabled();
    let maps: Vec<&Value> = of_kind(&docs, "ConfigMap")
        .filter(|c| c["metadata"]["labels"]["grafana_dashboard"] == "1")
        .collect();
    assert_eq!(maps.len(), 1, "one ConfigMap with the sidecar's label");
    let map = maps[0];
    assert_eq!(map["metadata"]["name"], "mon-dbfleet-dashboard");
    let dashboard: Value = serde_json::from_str(map["data"]["dbfleet.json"].as_str().expect("the JSON")).unwrap();

    assert_eq!(dashboard["uid"], "dbfleet-overview");
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 30));
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["name"] == "datasource" && v["query"] == "prometheus"),
        "a Prometheus data source variable"
    );

    let panels = dashboard["panels"].as_array().unwrap();
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows,
        ["Fleet health", "Versions", "Capacity", "Accounts", "Hygiene findings"]
    );

    let mut ids = BTreeSet::new();
    let mut named = BTreeSet::new();
    let known_types = ["row", "stat", "timeseries", "piechart", "bargauge", "table"];
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "{panel}");
        assert!(
            ids.insert(panel["id"].as_u64().expect("a numeric id")),
            "{title}: id twice"
        );
        let kind = panel["type"].as_str().unwrap();
        assert!(known_types.contains(&kind), "{title}: type {kind}");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(x + w <= 24 && grid["h"].as_u64().unwrap() > 0, "{title}: {grid}");
        if kind == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        assert!(
            panel["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{title}: say what it shows"
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for target in targets {
            assert!(refs.insert(target["refId"].as_str().unwrap()), "{title}: refId twice");
            let expr = target["expr"].as_str().unwrap();
            named.extend(check_expr(title, expr, &exported));
        }
    }
    // What the dashboard is for: fleet health, versions, size and growth,
    // accounts, findings.
    for metric in [
        "dbfleet_instance_up",
        "dbfleet_instance_release",
        "dbfleet_instance_version_support",
        "dbfleet_instance_capacity_bytes",
        "dbfleet_instance_accounts",
        "dbfleet_instance_superusers",
        "dbfleet_instance_findings",
    ] {
        assert!(named.contains(metric), "the dashboard shows no {metric}");
    }
}

#[test]
fn the_service_monitor_keeps_the_instances_labels() {
    let output = crate::helm(
        &[
            "template",
            "mon",
            "charts/dbfleet",
            "--api-versions",
            "monitoring.coreos.com/v1/ServiceMonitor",
        ],
        &["serviceMonitor.enabled=true"],
    );
    assert!(output.status.success());
    let docs = documents(&String::from_utf8(output.stdout).unwrap());
    let monitor = of_kind(&docs, "ServiceMonitor").next().unwrap();
    let controller = &monitor["spec"]["endpoints"][0];
    assert_eq!(controller["port"], "metrics");
    assert_eq!(
        controller["honorLabels"], true,
        "namespace and name are the DbInstance's"
    );
}
