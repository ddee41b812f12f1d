//! What a list (or export, or options) request selects and in which
//! order (SPEC §3.5), over the instance index: pure.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::api::envelope::ApiError;
use crate::api::input::{Query, flag};
use crate::api::instance_index::{InstanceIndex, Row};
use crate::api::pagination::{PageRequest, Paged};
use crate::crd::DbInstance;
use crate::crd::instance::DbType;
use crate::observe::freshness;
use k8s_openapi::jiff::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    Active,
    Inactive,
    Connected,
    Failed,
    Unknown,
    /// In the recycle bin (listed without `include_deleted`).
    Recycled,
    /// A probe's last success is overdue at this time (`observe::freshness`).
    Stale(Timestamp),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Id,
    Name,
    DbType,
    Host,
    Port,
    CreatedAt,
    UpdatedAt,
    Status,
    /// `status.capacityGrowth.bytesPerDay`; no rate sorts lowest.
    Growth,
    /// `status.capacityGrowth.daysUntilFull`; never full sorts last.
    DaysUntilFull,
}

/// What a list (or export) request selects.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceFilter {
    pub search: Option<String>,
    pub db_type: Option<DbType>,
    pub status: Option<StatusFilter>,
    pub tags: Vec<String>,
    pub include_deleted: bool,
    pub sort: SortKey,
    pub descending: bool,
}

impl InstanceFilter {
    pub fn from_query(query: &Query) -> Result<Self, ApiError> {
        let db_type = match query.get("db_type") {
            None => None,
            Some(t) => Some(parse_db_type(t).ok_or_else(|| {
                ApiError::field("db_type", format!("db_type must be mysql or postgresql, not {t:?}"))
            })?),
        };
        let status = match query.get("status").map(str::to_ascii_lowercase).as_deref() {
            None => None,
            Some("active") => Some(StatusFilter::Active),
            Some("inactive") => Some(StatusFilter::Inactive),
            Some("connected") => Some(StatusFilter::Connected),
            Some("failed") => Some(StatusFilter::Failed),
            Some("unknown") => Some(StatusFilter::Unknown),
            Some("recycled") => Some(StatusFilter::Recycled),
            Some("stale") => Some(StatusFilter::Stale(Timestamp::now())),
            Some(other) => {
                return Err(ApiError::field(
                    "status",
                    format!(
                        "status must be one of active, inactive, connected, failed, unknown, recycled, stale, not {other:?}"
                    ),
                ));
            }
        };
        let sort = match query.get("sort").unwrap_or("id") {
            "name" => SortKey::Name,
            "db_type" => SortKey::DbType,
            "host" => SortKey::Host,
            "port" => SortKey::Port,
            "created_at" => SortKey::CreatedAt,
            "updated_at" => SortKey::UpdatedAt,
            "status" => SortKey::Status,
            "growth" => SortKey::Growth,
            "days_until_full" => SortKey::DaysUntilFull,
            _ => SortKey::Id,
        };
        Ok(InstanceFilter {
            search: query.get("search").map(str::to_lowercase),
            db_type,
            status,
            tags: query.all("tags").into_iter().map(str::to_owned).collect(),
            include_deleted: query.get("include_deleted").and_then(flag).unwrap_or(false),
            sort,
            descending: !query.get("order").is_some_and(|o| o.eq_ignore_ascii_case("asc")),
        })
    }

    /// Whether a listable row passes the filters.
    pub fn matches(&self, row: &Row) -> bool {
        let spec = &row.instance.spec;
        let wants_recycled = self.status == Some(StatusFilter::Recycled);
        if !self.include_deleted && !wants_recycled && row.recycled {
            return false;
        }
        if self.db_type.is_some_and(|t| t != spec.db_type) {
            return false;
        }
        let status_ok = match self.status {
            None => true,
            Some(StatusFilter::Active) => spec.is_active,
            Some(StatusFilter::Inactive) => !spec.is_active,
            Some(StatusFilter::Connected) => row.connection == "connected",
            Some(StatusFilter::Failed) => row.connection == "failed",
            Some(StatusFilter::Unknown) => row.connection == "unknown",
            Some(StatusFilter::Recycled) => row.recycled,
            Some(StatusFilter::Stale(now)) => freshness::is_stale(&row.instance, now),
        };
        if !status_ok {
            return false;
        }
        if !self.tags.is_empty() && !spec.tags.iter().any(|t| self.tags.contains(t)) {
            return false;
        }
        // Both sides are lowercase already (`Row::search`, `from_query`).
        self.search
            .as_deref()
            .is_none_or(|needle| row.search.iter().any(|text| text.contains(needle)))
    }

    /// The requested order; ties are broken by id, then name, so pages are
    /// stable.
    fn order(&self, a: &Row, b: &Row) -> Ordering {
        let ordering = compare(self.sort, a, b)
            .then(a.id.cmp(&b.id))
            .then_with(|| a.name().cmp(b.name()));
        if self.descending { ordering.reverse() } else { ordering }
    }

    /// Whether only the recycle bin is filtered out (or not): the index
    /// then knows the total.
    fn is_unfiltered(&self) -> bool {
        self.search.is_none() && self.db_type.is_none() && self.status.is_none() && self.tags.is_empty()
    }

    /// One page of the matching instances. The index is in id order, so the
    /// default order sorts nothing and, unfiltered, touches only the page;
    /// other orders sort only the rows up to the page's end.
    pub fn page(&self, index: &InstanceIndex, page: PageRequest) -> Paged<(i64, Arc<DbInstance>)> {
        let (start, end) = page.range();
        let matching = || index.rows().filter(|r| self.matches(r));
        let known_total = self.is_unfiltered().then(|| index.count(self.include_deleted));
        let (total, rows) = match (self.sort, self.descending) {
            (SortKey::Id, false) => cut(matching(), start, end, known_total),
            (SortKey::Id, true) => cut(matching().rev(), start, end, known_total),
            _ => {
                let mut rows: Vec<&Row> = matching().collect();
                let total = rows.len();
                if end < total {
                    rows.select_nth_unstable_by(end, |a, b| self.order(a, b));
                    rows.truncate(end);
                }
                rows.sort_unstable_by(|a, b| self.order(a, b));
                (total, rows.into_iter().skip(start).collect())
            }
        };
        page.paged(rows.into_iter().map(|r| (r.id, r.instance.clone())).collect(), total)
    }

    /// Every matching instance, in order (exports, options).
    pub fn select(&self, index: &InstanceIndex) -> Vec<(i64, Arc<DbInstance>)> {
        self.page(
            index,
            PageRequest {
                page: 1,
                limit: usize::MAX,
            },
        )
        .items
    }
}

/// Keeps the `rows` at positions `start..end`, counting them all unless
/// their total is known.
fn cut<'a>(
    rows: impl Iterator<Item = &'a Row>,
    start: usize,
    end: usize,
    known_total: Option<usize>,
) -> (usize, Vec<&'a Row>) {
    if let Some(total) = known_total {
        return (total, rows.skip(start).take(end - start).collect());
    }
    let mut total = 0;
    let mut kept = Vec::new();
    for row in rows {
        if (start..end).contains(&total) {
            kept.push(row);
        }
        total += 1;
    }
    (total, kept)
}

pub fn parse_db_type(text: &str) -> Option<DbType> {
    match text.to_ascii_lowercase().as_str() {
        "mysql" => Some(DbType::Mysql),
        "postgresql" => Some(DbType::Postgresql),
        _ => None,
    }
}

fn compare(key: SortKey, a: &Row, b: &Row) -> Ordering {
    let (x, y) = (&a.instance, &b.instance);
    match key {
        SortKey::Id => Ordering::Equal,
        SortKey::Name => a.name().cmp(b.name()),
        SortKey::DbType => x.spec.db_type.as_str().cmp(y.spec.db_type.as_str()),
        SortKey::Host => x.spec.host.cmp(&y.spec.host),
        SortKey::Port => x.spec.port.cmp(&y.spec.port),
        SortKey::CreatedAt => a.created_at.cmp(&b.created_at),
        SortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
        SortKey::Status => a.phase.cmp(b.phase),
        SortKey::Growth => super::growers::compare_growth(x, y),
        SortKey::DaysUntilFull => super::growers::compare_days_until_full(x, y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;
    use serde_json::json;

    use super::super::fixtures::{fleet, indexed, instance};
    use crate::api::envelope::Code;
    use crate::crd::keys::RECYCLED_LABEL;

    fn select_in(index: &InstanceIndex, query: &str) -> Vec<i64> {
        InstanceFilter::from_query(&Query::parse(query))
            .unwrap()
            .select(index)
            .iter()
            .map(|(id, _)| *id)
            .collect()
    }

    fn select(query: &str) -> Vec<i64> {
        select_in(&indexed(fleet()), query)
    }

    #[test]
    fn default_list_is_newest_id_first_without_the_recycle_bin() {
        assert_eq!(select(""), vec![3, 2, 1]);
        assert_eq!(select("include_deleted=yes&order=asc"), vec![1, 2, 3, 4]);
        assert_eq!(select("include_deleted=nonsense"), vec![3, 2, 1]);
    }

    #[test]
    fn filters_combine() {
        assert_eq!(select("search=INVOICE"), vec![2]);
        assert_eq!(select("search=pg"), vec![3, 1]);
        assert_eq!(select("db_type=postgresql&status=active"), vec![1]);
        assert_eq!(select("status=inactive"), vec![3]);
        assert_eq!(select("status=unknown&tags=eu"), vec![2]);
        assert_eq!(select("tags=eu&tags=prod&order=asc"), vec![1, 2]);
        assert_eq!(select("tags=nothing"), Vec::<i64>::new());
        assert_eq!(select("status=recycled"), vec![4]);
        assert_eq!(select("status=RECYCLED&include_deleted=true"), vec![4]);
        assert_eq!(select("status=recycled&db_type=postgresql"), Vec::<i64>::new());
    }

    #[test]
    fn sorting_by_any_key_and_unknown_keys_fall_back_to_id() {
        assert_eq!(select("sort=name&order=asc"), vec![2, 1, 3]);
        assert_eq!(select("sort=port"), vec![3, 1, 2]);
        assert_eq!(select("sort=bogus&order=asc"), vec![1, 2, 3]);
    }

    #[test]
    fn bad_status_and_db_type_are_400s() {
        for query in ["status=sleepy", "db_type=oracle"] {
            let e = InstanceFilter::from_query(&Query::parse(query)).unwrap_err();
            assert_eq!(e.code, Code::ValidationError, "{query}");
        }
    }

    #[test]
    fn search_is_case_insensitive_for_any_text_and_never_spans_fields() {
        let fleet = indexed(vec![
            instance("a", 1, json!({"dbType": "mysql", "host": "Host-77.Example", "port": 1})),
            instance(
                "b",
                2,
                json!({"dbType": "mysql", "host": "h", "port": 1, "description": "Ünïcode DB"}),
            ),
        ]);
        assert_eq!(select_in(&fleet, "search=HOST-77&order=asc"), vec![1]);
        assert_eq!(select_in(&fleet, "search=ÜNÏ"), vec![2]);
        assert_eq!(select_in(&fleet, "search=&order=asc"), vec![1, 2]);
        assert_eq!(select_in(&fleet, "search=ah"), Vec::<i64>::new());
        assert_eq!(select_in(&fleet, "search=example%0Aa"), Vec::<i64>::new());
    }

    /// Instances whose sort keys all tie in pairs, so every order needs
    /// the id tie-break.
    fn ties() -> Vec<Arc<DbInstance>> {
        let at = |s: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(s.parse().unwrap());
        (1..=6)
            .map(|id| {
                let pair = (id + 1) / 2;
                let mut i = (*instance(
                    &format!("db-{}", 7 - id),
                    id,
                    json!({"dbType": if pair == 2 { "mysql" } else { "postgresql" }, "host": format!("h{}", 4 - pair),
                        "port": 5000 + pair % 3}),
                ))
                .clone();
                i.metadata.creation_timestamp = Some(at(&format!("2026-01-0{pair}T00:00:00Z")));
                i.metadata.managed_fields = Some(vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry {
                        time: Some(at(&format!("2026-02-0{}T00:00:00Z", 4 - pair))),
                        ..Default::default()
                    },
                ]);
                if pair == 3 {
                    i.status = Some(serde_json::from_value(json!({"phase": "Ready"})).unwrap());
                }
                Arc::new(i)
            })
            .collect()
    }

    #[test]
    fn every_sort_key_orders_both_ways_with_ties_broken_by_id() {
        let fleet = indexed(ties());
        for (key, asc) in [
            ("id", vec![1, 2, 3, 4, 5, 6]),
            ("name", vec![6, 5, 4, 3, 2, 1]),
            ("db_type", vec![3, 4, 1, 2, 5, 6]),
            ("host", vec![5, 6, 3, 4, 1, 2]),
            ("port", vec![5, 6, 1, 2, 3, 4]),
            ("created_at", vec![1, 2, 3, 4, 5, 6]),
            ("updated_at", vec![5, 6, 3, 4, 1, 2]),
            ("status", vec![1, 2, 3, 4, 5, 6]),
        ] {
            assert_eq!(select_in(&fleet, &format!("sort={key}&order=asc")), asc, "{key} asc");
            let desc: Vec<i64> = asc.iter().rev().copied().collect();
            assert_eq!(select_in(&fleet, &format!("sort={key}&order=desc")), desc, "{key} desc");
            assert_eq!(
                select_in(&fleet, &format!("sort={key}")),
                desc,
                "{key} defaults to desc"
            );
        }
    }

    #[test]
    fn pages_are_slices_of_the_full_order() {
        let fleet = indexed(ties());
        for key in [
            "id",
            "name",
            "db_type",
            "host",
            "port",
            "created_at",
            "updated_at",
            "status",
            "growth",
            "days_until_full",
        ] {
            for order in ["asc", "desc"] {
                for query in [
                    format!("sort={key}&order={order}"),
                    format!("sort={key}&order={order}&db_type=postgresql"),
                ] {
                    let filter = InstanceFilter::from_query(&Query::parse(&query)).unwrap();
                    let all = select_in(&fleet, &query);
                    for limit in 1..=7 {
                        for page in 1..=8 {
                            let paged = filter.page(&fleet, PageRequest { page, limit });
                            let ids: Vec<i64> = paged.items.iter().map(|(id, _)| *id).collect();
                            let expected: Vec<i64> = all.iter().copied().skip((page - 1) * limit).take(limit).collect();
                            assert_eq!(ids, expected, "{query} page {page} limit {limit}");
                            assert_eq!((paged.total, paged.pages), (all.len(), all.len().div_ceil(limit)));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn watch_updates_and_deletes_show_in_the_next_list() {
        let mut fleet = indexed(fleet());
        fleet.upsert(instance(
            "scratch",
            3,
            json!({"dbType": "mysql", "host": "pg2.example", "port": 5433}),
        ));
        assert_eq!(select("db_type=mysql"), vec![2]);
        assert_eq!(select_in(&fleet, "db_type=mysql"), vec![3, 2]);
        let mut recycled = (*instance(
            "orders",
            1,
            json!({"dbType": "postgresql", "host": "pg1.example", "port": 5432}),
        ))
        .clone();
        recycled.labels_mut().insert(RECYCLED_LABEL.into(), "true".into());
        fleet.upsert(Arc::new(recycled));
        assert_eq!(select_in(&fleet, ""), vec![3, 2]);
        assert_eq!(select_in(&fleet, "include_deleted=true"), vec![4, 3, 2, 1]);
        fleet.remove("billing");
        assert_eq!(select_in(&fleet, "sort=name&order=asc"), vec![3]);
        let page = InstanceFilter::from_query(&Query::default())
            .unwrap()
            .page(&fleet, PageRequest { page: 1, limit: 20 });
        assert_eq!((page.total, page.items.len()), (1, 1));
    }
}
