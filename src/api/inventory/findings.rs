//! `GET /api/v1/findings`: the hygiene findings of the fleet (issue 21),
//! over the instances the instance list would show, filtered by code,
//! severity, instance and tag. Answered from the fleet index, which keeps
//! each DbInventory's `findings`; the selection is pure.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::fleet::{InstanceRef, instances_of};
use crate::api::envelope::{ApiError, ApiResult, Reply};
use crate::api::extract::{Authorized, Get, Instances, Inventories, View};
use crate::api::fleet_index::{FleetIndex, Section};
use crate::api::input::Query;
use crate::api::instance_index::InstanceIndex;
use crate::api::instances::InstanceFilter;
use crate::api::pagination::{MAX_INSTANCE_LIMIT, PageRequest};
use crate::api::state::AppState;
use crate::observe::findings::{Code, Severity};

/// One finding on one instance.
#[derive(Serialize, Clone, Debug, PartialEq, ToSchema)]
pub struct FleetFinding {
    pub instance: InstanceRef,
    /// Stable code (docs/probes.md, "Hygiene findings").
    pub code: &'static str,
    /// `high`, `medium` or `low`.
    pub severity: &'static str,
    /// The account it concerns; null for a server setting.
    pub account: Option<String>,
    /// The host part of a MySQL account.
    pub host: Option<String>,
    /// What the code means, in a line.
    pub summary: &'static str,
}

/// How many of the searched instances could not run a check.
#[derive(Serialize, Clone, Debug, PartialEq, ToSchema)]
pub struct NotCheckedCount {
    pub code: &'static str,
    pub instances: usize,
}

/// Every match counted by severity.
#[derive(Serialize, Clone, Debug, Default, PartialEq, ToSchema)]
pub struct SeverityCounts {
    pub high: usize,
    pub medium: usize,
    pub low: usize,
}

/// A page of the fleet's findings.
#[derive(Serialize, Debug, ToSchema)]
pub struct FindingsPage {
    pub items: Vec<FleetFinding>,
    /// Every match, over every page.
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub limit: usize,
    /// Every match by severity.
    pub by_severity: SeverityCounts,
    /// Instances searched: those the instance list shows, of `db_type`,
    /// `tags` and `instance`/`instance_id`.
    pub searched_instances: usize,
    /// Of those, how many have no account sync with findings yet.
    pub instances_not_collected: usize,
    /// Of those, how many listed only their most severe findings (the
    /// rest are counted in the instance's DbInventory).
    pub instances_truncated: usize,
    /// Checks the instances' logins could not make (no finding of that
    /// code there is no evidence there is none), by code.
    pub not_checked: Vec<NotCheckedCount>,
}

/// What `GET /findings` selects: one item per matching finding, by
/// instance id, then as each instance lists them (most severe first).
#[derive(Clone, Debug, PartialEq)]
pub struct FindingQuery {
    /// Codes to keep; empty keeps all.
    pub codes: Vec<Code>,
    /// Severities to keep; empty keeps all.
    pub severities: Vec<Severity>,
    /// The instance's name.
    pub instance: Option<String>,
    /// The instance's id.
    pub instance_id: Option<i64>,
    pub instances: InstanceFilter,
}

impl FindingQuery {
    pub fn from_query(query: &Query) -> Result<Self, ApiError> {
        let codes = query
            .all("code")
            .into_iter()
            .map(|c| {
                Code::parse(c).ok_or_else(|| {
                    let known: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
                    ApiError::field("code", format!("code must be one of {}, not {c:?}", known.join(", ")))
                })
            })
            .collect::<Result<_, _>>()?;
        let severities = query
            .all("severity")
            .into_iter()
            .map(|s| {
                Severity::parse(s).ok_or_else(|| {
                    ApiError::field("severity", format!("severity must be high, medium or low, not {s:?}"))
                })
            })
            .collect::<Result<_, _>>()?;
        // Digits exactly as the document's pattern allows: at most 18, so
        // every value it admits is an id.
        let instance_id = match query.exact("instance_id") {
            None => None,
            Some(raw) => Some(
                Some(raw)
                    .filter(|r| r.len() <= 18 && !r.starts_with('0') && r.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|r| r.parse::<i64>().ok())
                    .ok_or_else(|| ApiError::field("instance_id", "instance_id must be a positive integer"))?,
            ),
        };
        Ok(FindingQuery {
            codes,
            severities,
            instance: query.get("instance").map(str::to_owned),
            instance_id,
            instances: instances_of(query)?,
        })
    }

    fn keeps(&self, code: Code) -> bool {
        (self.codes.is_empty() || self.codes.contains(&code))
            && (self.severities.is_empty() || self.severities.contains(&code.severity()))
    }

    /// One page of the matches; every match is counted, only the page's
    /// are built.
    pub fn page(&self, instances: &InstanceIndex, fleet: &FleetIndex, page: PageRequest) -> FindingsPage {
        let (start, end) = page.range();
        let (mut total, mut items) = (0, Vec::new());
        let mut by_severity = SeverityCounts::default();
        let (mut searched, mut not_collected, mut truncated) = (0, 0, 0);
        let mut not_checked = [0usize; Code::ALL.len()];
        let rows = instances.rows().filter(|r| {
            self.instances.matches(r)
                && self.instance.as_deref().is_none_or(|name| r.name() == name)
                && self.instance_id.is_none_or(|id| r.id == id)
        });
        for row in rows {
            searched += 1;
            let found = fleet.findings_of(row.name());
            match found.section() {
                Section::Missing => not_collected += 1,
                Section::Truncated => truncated += 1,
                Section::Complete => {}
            }
            for (at, _) in found.not_checked().filter(|(_, code)| self.keeps(*code)) {
                not_checked[at] += 1;
            }
            for (position, code) in found.codes().filter(|(_, code)| self.keeps(*code)) {
                match code.severity() {
                    Severity::High => by_severity.high += 1,
                    Severity::Medium => by_severity.medium += 1,
                    Severity::Low => by_severity.low += 1,
                }
                // Every match is counted; only the page's are built.
                if (start..end).contains(&total)
                    && let Some(finding) = found.get(position)
                {
                    items.push(FleetFinding {
                        instance: InstanceRef::of(row),
                        code: finding.code.as_str(),
                        severity: code.severity().as_str(),
                        account: finding.account,
                        host: finding.host,
                        summary: code.summary(),
                    });
                }
                total += 1;
            }
        }
        let paged = page.paged(items, total);
        FindingsPage {
            items: paged.items,
            total,
            page: paged.page,
            pages: paged.pages,
            limit: paged.limit,
            by_severity,
            searched_instances: searched,
            instances_not_collected: not_collected,
            instances_truncated: truncated,
            not_checked: Code::ALL
                .iter()
                .zip(not_checked)
                .filter(|(_, n)| *n > 0)
                .map(|(code, instances)| NotCheckedCount {
                    code: code.as_str(),
                    instances,
                })
                .collect(),
        }
    }
}

/// The hygiene findings of the fleet.
#[utoipa::path(get, path = "/api/v1/findings", tag = "inventory", operation_id = "fleet_findings",
    params(("code" = Option<Vec<String>>, Query, description = "finding codes to keep (repeatable); docs/probes.md lists them"),
        ("severity" = Option<Vec<String>>, Query, description = "high, medium or low (repeatable)"),
        ("instance" = Option<String>, Query, description = "an instance's name"),
        ("instance_id" = Option<i64>, Query, description = "an instance's id"),
        ("db_type" = Option<String>, Query), ("tags" = Option<Vec<String>>, Query),
        ("page" = Option<String>, Query), ("limit" = Option<String>, Query)),
    responses((status = 200, body = FindingsPage), (status = 400), (status = 401), (status = 403)))]
pub async fn findings(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    _: Authorized<Get, Inventories>,
    query: Query,
) -> ApiResult<Reply<FindingsPage>> {
    let selection = FindingQuery::from_query(&query)?;
    let page = PageRequest::from_query(&query, MAX_INSTANCE_LIMIT);
    let instances = state.caches.instance_index();
    let fleet = state.caches.fleet_index();
    Ok(Reply::ok(selection.page(&instances, &fleet, page)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::crd::DbInstance;
    use crate::crd::keys::ID_LABEL;

    fn instance(name: &str, id: i64, tags: &[&str]) -> Arc<DbInstance> {
        let mut i = DbInstance::new(
            name,
            serde_json::from_value(json!({"dbType": "mysql", "host": "h", "port": 3306, "tags": tags})).unwrap(),
        );
        i.metadata.labels = Some(BTreeMap::from([(ID_LABEL.to_string(), id.to_string())]));
        Arc::new(i)
    }

    fn inventory(name: &str, findings: serde_json::Value) -> crate::crd::DbInventory {
        let spec = json!({"dbType": "mysql", "findings": findings});
        crate::crd::DbInventory::new(name, serde_json::from_value(spec).unwrap())
    }

    fn fleet() -> (InstanceIndex, FleetIndex) {
        let mut instances = InstanceIndex::default();
        instances.rebuild([
            instance("a", 1, &["prod"]),
            instance("b", 2, &[]),
            instance("c", 3, &[]),
        ]);
        let mut fleet = FleetIndex::default();
        fleet.upsert(&inventory(
            "a",
            json!({"checkedAt": "2026-01-01T00:00:00Z", "counts": {"high": 1, "medium": 0, "low": 1},
                "items": [
                    {"code": "anonymous_account", "severity": "high", "account": "", "host": "x", "message": "m"},
                    {"code": "native_password", "severity": "low", "account": "app", "host": "%", "message": "m"},
                    {"code": "from_a_later_version", "severity": "low", "message": "m"}],
                "contentHash": "h"}),
        ));
        fleet.upsert(&inventory(
            "b",
            json!({"checkedAt": "2026-01-01T00:00:00Z", "counts": {"high": 0, "medium": 1, "low": 0, "notChecked": 1},
                "items": [{"code": "password_encryption_md5", "severity": "medium", "message": "m"}],
                "notChecked": [{"code": "md5_password", "reason": "pg_authid"}],
                "truncated": true, "omitted": 3, "contentHash": "h"}),
        ));
        (instances, fleet)
    }

    fn select(raw: &str) -> FindingsPage {
        let (instances, fleet) = fleet();
        let query = Query::parse(raw);
        let selection = FindingQuery::from_query(&query).unwrap();
        selection.page(&instances, &fleet, PageRequest::from_query(&query, MAX_INSTANCE_LIMIT))
    }

    fn listed(page: &FindingsPage) -> Vec<(String, &'static str, Option<String>)> {
        page.items
            .iter()
            .map(|f| (f.instance.name.clone(), f.code, f.account.clone()))
            .collect()
    }

    #[test]
    fn the_fleet_lists_every_known_finding_by_instance() {
        let page = select("");
        assert_eq!(
            listed(&page),
            [
                ("a".into(), "anonymous_account", Some(String::new())),
                ("a".into(), "native_password", Some("app".into())),
                ("b".into(), "password_encryption_md5", None),
            ]
        );
        assert_eq!(
            page.by_severity,
            SeverityCounts {
                high: 1,
                medium: 1,
                low: 1
            }
        );
        assert_eq!(
            (
                page.searched_instances,
                page.instances_not_collected,
                page.instances_truncated
            ),
            (3, 1, 1)
        );
        assert_eq!(
            page.not_checked,
            [NotCheckedCount {
                code: "md5_password",
                instances: 1
            }]
        );
        assert_eq!(page.items[0].host.as_deref(), Some("x"));
    }

    #[test]
    fn filters_by_code_severity_instance_and_tag() {
        assert_eq!(listed(&select("code=native_password")).len(), 1);
        assert_eq!(listed(&select("code=native_password&code=anonymous_account")).len(), 2);
        assert_eq!(listed(&select("severity=medium"))[0].1, "password_encryption_md5");
        assert_eq!(listed(&select("severity=high&severity=low")).len(), 2);
        assert_eq!(listed(&select("instance=b")).len(), 1);
        assert_eq!(listed(&select("instance_id=1")).len(), 2);
        assert_eq!(select("instance_id=1").searched_instances, 1);
        assert_eq!(listed(&select("tags=prod")).len(), 2);
        let page = select("code=empty_password");
        assert_eq!((page.total, page.not_checked.len()), (0, 0));
        assert_eq!(select("code=md5_password").not_checked.len(), 1);
    }

    #[test]
    fn pages_count_every_match() {
        let page = select("limit=1&page=2");
        assert_eq!((page.total, page.pages, page.items.len()), (3, 3, 1));
        assert_eq!(page.items[0].code, "native_password");
    }

    #[test]
    fn unknown_filters_are_refused_naming_the_field() {
        for (raw, field) in [
            ("code=nope", "code"),
            ("severity=critical", "severity"),
            ("instance_id=x", "instance_id"),
            ("instance_id=0", "instance_id"),
            ("db_type=oracle", "db_type"),
        ] {
            let err = FindingQuery::from_query(&Query::parse(raw)).unwrap_err();
            assert!(format!("{err:?}").contains(field), "{raw}: {err:?}");
        }
    }
}
