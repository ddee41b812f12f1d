//! The chart's values: `values.yaml`, `values.schema.json` and the table in
//! the chart's README name the same keys with the same defaults, the schema
//! refuses what is not a value, and `helm lint --strict` passes.
//!
//! Adding a value is an entry in each of the three files; the failures
//! below name the key and the file that lacks it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn chart() -> PathBuf {
    crate::support::repo_root().join("charts/dbfleet")
}

fn helm(args: &[&str]) -> Output {
    let helm = std::env::var("DBFLEET_HELM").expect("DBFLEET_HELM is set by scripts/test-env.sh");
    Command::new(helm)
        .args(args)
        .current_dir(crate::support::repo_root())
        .output()
        .expect("run helm")
}

fn values() -> Value {
    let text = std::fs::read_to_string(chart().join("values.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn schema() -> Value {
    serde_json::from_str(&std::fs::read_to_string(chart().join("values.schema.json")).unwrap()).unwrap()
}

/// Every value the schema declares, by dotted key, with its schema. A
/// value is a property the schema does not break down further: a scalar, a
/// list, or a map passed on to Kubernetes as it is (`resources`, `affinity`).
fn schema_values(prefix: &str, schema: &Value, found: &mut BTreeMap<String, Value>) {
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        let key = format!("{prefix}{name}");
        if property.get("properties").is_some() {
            schema_values(&format!("{key}."), property, found);
        } else {
            found.insert(key, property.clone());
        }
    }
}

/// The defaults in `values.yaml` for the keys the schema declares as
/// values, and any key the schema does not know.
fn defaults(
    prefix: &str,
    values: &Value,
    schema: &Value,
    found: &mut BTreeMap<String, Value>,
    unknown: &mut Vec<String>,
) {
    for (name, value) in values.as_object().into_iter().flatten() {
        let key = format!("{prefix}{name}");
        match schema["properties"].get(name) {
            None => unknown.push(key),
            Some(property) if property.get("properties").is_some() => {
                defaults(&format!("{key}."), value, property, found, unknown)
            }
            Some(_) => {
                found.insert(key, value.clone());
            }
        }
    }
}

/// The README's values table: key → the Default cell, without backticks.
fn readme_rows() -> BTreeMap<String, String> {
    let readme = std::fs::read_to_string(chart().join("README.md")).unwrap();
    readme
        .lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix('|')?.split('|').map(str::trim);
            let key = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let default = cells.next()?;
            Some((key.to_string(), default.replace('`', "")))
        })
        .collect()
}

/// How the README shows a default: scalars and empty collections as
/// written in `values.yaml`, anything bigger as a pointer to it.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) if s.is_empty() => "\"\"".into(),
        Value::String(s) => s.clone(),
        Value::Object(map) if !map.is_empty() => "see values.yaml".into(),
        Value::Array(list) if !list.is_empty() => "see values.yaml".into(),
        other => other.to_string(),
    }
}

#[test]
fn values_yaml_the_schema_and_the_readme_name_the_same_values() {
    let schema = schema();
    let mut declared = BTreeMap::new();
    schema_values("", &schema, &mut declared);
    let (mut given, mut unknown) = (BTreeMap::new(), Vec::new());
    defaults("", &values(), &schema, &mut given, &mut unknown);
    let documented = readme_rows();

    let mut problems: Vec<String> = unknown
        .iter()
        .map(|k| format!("{k}: in values.yaml, not in values.schema.json"))
        .collect();
    for key in declared.keys() {
        if !given.contains_key(key) {
            problems.push(format!("{key}: in values.schema.json, not in values.yaml"));
        }
    }
    for (key, default) in &given {
        match documented.get(key) {
            None => problems.push(format!("{key}: in values.yaml, not in the README's table")),
            Some(cell) if *cell != shown(default) => problems.push(format!(
                "{key}: the README says the default is `{cell}`, values.yaml has `{}`",
                shown(default)
            )),
            Some(_) => {}
        }
    }
    for key in documented.keys() {
        if !given.contains_key(key) {
            problems.push(format!("{key}: in the README's table, not in values.yaml"));
        }
    }
    assert!(
        problems.is_empty(),
        "the chart's values drifted:\n{}",
        problems.join("\n")
    );
    assert!(
        declared.len() >= 30,
        "only {} values found; is the table parsed?",
        declared.len()
    );
}

/// So that a typo fails instead of being ignored, and `helm show values`
/// readers learn what each value is.
#[test]
fn the_schema_closes_every_map_and_describes_every_value() {
    fn check(path: &str, schema: &Value, problems: &mut Vec<String>) {
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            if schema.get("additionalProperties") != Some(&Value::Bool(false)) {
                problems.push(format!("{path}: additionalProperties is not false"));
            }
            for (name, property) in properties {
                let path = format!("{path}.{name}");
                if property["description"].as_str().is_none_or(str::is_empty) {
                    problems.push(format!("{path}: no description"));
                }
                check(&path, property, problems);
            }
        }
    }
    let mut problems = Vec::new();
    check("values", &schema(), &mut problems);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn helm_lint_strict_passes() {
    let out = helm(&["lint", "--strict", "charts/dbfleet"]);
    assert!(
        out.status.success(),
        "helm lint --strict failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_typo_or_a_wrong_type_fails_at_install() {
    for (set, complaint) in [
        ("controler.concurrency=8", "controler"),
        ("controller.concurency=8", "concurency"),
        ("scope=galaxy", "scope"),
        ("replicaCount=0", "replicaCount"),
        ("controller.retention=forever", "retention"),
        ("api.port=70000", "port"),
    ] {
        let out = helm(&["template", "t", "charts/dbfleet", "--set", set]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--set {set} was accepted");
        assert!(
            stderr.contains(complaint),
            "--set {set}: the error does not name it: {stderr}"
        );
    }
    let out = helm(&["template", "t", "charts/dbfleet", "--set", "controller.concurrency=8"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_drift_check_finds_what_it_looks_for() {
    let schema = serde_json::json!({"properties": {
        "a": {"type": "integer"},
        "m": {"properties": {"x": {"type": "string"}, "free": {"type": "object"}}},
    }});
    let values = serde_json::json!({"a": 1, "m": {"x": "", "free": {"k": "v"}, "typo": 1}, "b": true});
    let (mut given, mut unknown) = (BTreeMap::new(), Vec::new());
    defaults("", &values, &schema, &mut given, &mut unknown);
    assert_eq!(unknown, ["b", "m.typo"]);
    assert_eq!(given.keys().collect::<Vec<_>>(), ["a", "m.free", "m.x"]);
    let mut declared = BTreeMap::new();
    schema_values("", &schema, &mut declared);
    assert_eq!(declared.keys().collect::<Vec<_>>(), ["a", "m.free", "m.x"]);
    assert_eq!(shown(&given["m.x"]), "\"\"");
    assert_eq!(shown(&given["m.free"]), "see values.yaml");
    assert_eq!(shown(&given["a"]), "1");
}
