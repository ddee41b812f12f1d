//! kube-score, the tool a platform team points at a chart, on the default
//! render and an HA render: every finding must be one the chart documents
//! as deliberate in `charts/dbfleet/kube-score-exceptions`, and every line
//! there must still match a finding, so the list cannot go stale.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::{helm, support};

/// The renders kube-score checks, by the name the exceptions file uses.
const RENDERS: [(&str, &[&str]); 2] = [
    ("default", &[]),
    (
        "ha",
        &[
            "controller.replicas=2",
            "api.replicas=3",
            "networkPolicy.enabled=true",
            "networkPolicy.egress.databases[0].cidr=10.20.0.0/16",
            "networkPolicy.egress.databases[0].ports={5432,3306}",
        ],
    ),
];

/// Objects are named `<release>-dbfleet-<name>`; findings and exceptions
/// name them `Kind/<name>`.
const RELEASE: &str = "ks";
const PREFIX: &str = "ks-dbfleet-";

/// One comment of one failed check on one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Finding {
    render: String,
    object: String,
    check: String,
    comment: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} | {} | {} | {}",
            self.render, self.object, self.check, self.comment
        )
    }
}

#[derive(Debug)]
struct Exception {
    line: usize,
    render: String,
    object: String,
    check: String,
    comment: String,
}

impl Exception {
    fn allows(&self, finding: &Finding) -> bool {
        let matches = |pattern: &str, value: &str| match pattern.strip_suffix('*') {
            Some(prefix) => value.starts_with(prefix),
            None => pattern == value,
        };
        matches(&self.render, &finding.render)
            && matches(&self.object, &finding.object)
            && self.check == finding.check
            && self.comment == finding.comment
    }
}

/// Parses the exceptions file; a line without its five fields, or without
/// a reason, is an error naming the line.
fn parse_exceptions(text: &str) -> Result<Vec<Exception>, String> {
    let mut exceptions = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.splitn(5, '|').map(str::trim).collect();
        let [render, object, check, comment, why] = fields[..] else {
            return Err(format!(
                "line {}: want `render | object | check | finding | why`: {line}",
                index + 1
            ));
        };
        if [render, object, check, comment, why].iter().any(|f| f.is_empty()) {
            return Err(format!("line {}: an empty field: {line}", index + 1));
        }
        if why.split_whitespace().count() < 5 {
            return Err(format!("line {}: say why, in a sentence: {line}", index + 1));
        }
        exceptions.push(Exception {
            line: index + 1,
            render: render.into(),
            object: object.into(),
            check: check.into(),
            comment: comment.into(),
        });
    }
    Ok(exceptions)
}

fn kube_score_version() -> String {
    let kube_score = std::env::var("DBFLEET_KUBE_SCORE").expect("DBFLEET_KUBE_SCORE is set by scripts/test-env.sh");
    let output = Command::new(kube_score)
        .arg("version")
        .output()
        .expect("run kube-score");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// kube-score's findings (grade below OK, not skipped) on the chart
/// rendered with `values`, and how many objects it scored.
fn kube_score(render: &str, values: &[&str]) -> (Vec<Finding>, usize) {
    // Hooks included: the `helm test` pod is scored too. No CRDs: they are
    // not workloads, and kube-score does not score them.
    let output = helm(
        &["template", RELEASE, "charts/dbfleet", "--namespace", "dbfleet"],
        values,
    );
    assert!(
        output.status.success(),
        "{render}: helm template: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let kube_score = std::env::var("DBFLEET_KUBE_SCORE").expect("DBFLEET_KUBE_SCORE is set by scripts/test-env.sh");
    let mut child = Command::new(kube_score)
        .args([
            "score",
            "--output-format=json",
            // The oldest Kubernetes the chart supports (its admission policy).
            "--kubernetes-version=v1.30",
            "--enable-optional-test=container-seccomp-profile",
            "--enable-optional-test=container-ports-check",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .current_dir(support::repo_root())
        .spawn()
        .expect("run kube-score");
    child.stdin.take().unwrap().write_all(&output.stdout).unwrap();
    let scored = child.wait_with_output().unwrap();
    // kube-score exits 1 when it finds anything; its JSON says what.
    let objects: Vec<Value> = serde_json::from_slice(&scored.stdout).unwrap_or_else(|e| {
        panic!(
            "{render}: kube-score's JSON ({e}): {}",
            String::from_utf8_lossy(&scored.stderr)
        )
    });
    let mut findings = Vec::new();
    for object in &objects {
        let kind = object["type_meta"]["kind"].as_str().unwrap_or_default();
        let name = object["object_meta"]["name"].as_str().unwrap_or_default();
        let short = name.strip_prefix(PREFIX).unwrap_or(name);
        for check in object["checks"].as_array().into_iter().flatten() {
            if check["skipped"] == true || check["grade"].as_u64() == Some(10) {
                continue;
            }
            for comment in check["comments"].as_array().into_iter().flatten() {
                findings.push(Finding {
                    render: render.into(),
                    object: format!("{kind}/{short}"),
                    check: check["check"]["id"].as_str().unwrap_or_default().into(),
                    comment: comment["summary"].as_str().unwrap_or_default().into(),
                });
            }
        }
    }
    findings.sort();
    findings.dedup();
    (findings, objects.len())
}

#[test]
fn kube_score_finds_only_the_documented_exceptions() {
    assert!(kube_score_version().contains("v1.20.0"), "{}", kube_score_version());
    let path = support::repo_root().join("charts/dbfleet/kube-score-exceptions");
    let exceptions = parse_exceptions(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let mut used = vec![false; exceptions.len()];
    let mut unexpected = Vec::new();
    for (render, values) in RENDERS {
        let (findings, objects) = kube_score(render, values);
        // Both Deployments, both Services, the test pod (and, in ha, the
        // PDBs and NetworkPolicies): kube-score saw the chart.
        assert!(objects >= 5, "{render}: kube-score scored only {objects} objects");
        for finding in findings {
            let mut allowed = false;
            for (exception, used) in exceptions.iter().zip(used.iter_mut()) {
                if exception.allows(&finding) {
                    *used = true;
                    allowed = true;
                }
            }
            if !allowed {
                unexpected.push(finding.to_string());
            }
        }
    }
    let stale: Vec<String> = exceptions
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(e, _)| {
            format!(
                "line {}: {} | {} | {} | {}",
                e.line, e.render, e.object, e.check, e.comment
            )
        })
        .collect();
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "kube-score findings not in {}:\n{}\n\nexceptions that match no finding (remove them):\n{}",
        path.display(),
        unexpected.join("\n"),
        stale.join("\n")
    );
}

/// The comparison above is only as good as the findings it is given: a
/// weakened securityContext must come out as a finding no exception
/// covers.
#[test]
fn kube_score_reports_what_the_exceptions_do_not_cover() {
    let path = support::repo_root().join("charts/dbfleet/kube-score-exceptions");
    let exceptions = parse_exceptions(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (findings, _) = kube_score(
        "default",
        &[
            "securityContext.readOnlyRootFilesystem=false",
            "podSecurityContext.runAsUser=1000",
        ],
    );
    let uncovered: Vec<_> = findings
        .iter()
        .filter(|f| !exceptions.iter().any(|e| e.allows(f)))
        .map(|f| (f.object.as_str(), f.check.as_str()))
        .collect();
    for object in ["Deployment/controller", "Deployment/api", "Pod/test"] {
        for check in [
            "container-security-context-readonlyrootfilesystem",
            "container-security-context-user-group-id",
        ] {
            assert!(uncovered.contains(&(object, check)), "{object} {check}: {uncovered:?}");
        }
    }
}

#[test]
fn a_malformed_exception_is_refused() {
    assert!(parse_exceptions("# only comments\n\n").unwrap().is_empty());
    let one = parse_exceptions(
        "* | Deployment/* | container-resources | CPU limit is not set | Throttling hurts more than it saves.",
    )
    .unwrap();
    let finding = |object: &str, comment: &str| Finding {
        render: "ha".into(),
        object: object.into(),
        check: "container-resources".into(),
        comment: comment.into(),
    };
    assert!(one[0].allows(&finding("Deployment/api", "CPU limit is not set")));
    assert!(!one[0].allows(&finding("Pod/test", "CPU limit is not set")));
    assert!(!one[0].allows(&finding("Deployment/api", "Memory limit is not set")));
    for (text, complaint) in [
        ("* | * | container-resources | CPU limit is not set", "want"),
        ("* | * | container-resources | CPU limit is not set | ", "empty field"),
        (
            "* | * | container-resources | CPU limit is not set | deliberate",
            "say why",
        ),
    ] {
        let error = parse_exceptions(text).unwrap_err();
        assert!(error.contains(complaint) && error.contains("line 1"), "{text}: {error}");
    }
}
