//! Fleet-wide searches: where an account or a database exists, over the
//! instances the instance list would show (`GET /accounts`,
//! `GET /databases`). Answered from the instance index and the fleet
//! index ([`FleetIndex`]); the selection is pure.

use axum::extract::State;
use kube::ResourceExt;
use serde::Serialize;
use utoipa::ToSchema;

use super::rules::FlagFilter;
use super::views::AccountView;
use crate::api::envelope::{ApiError, ApiResult, Reply};
use crate::api::extract::{Authorized, Get, Instances, Inventories, View};
use crate::api::fleet_index::{FleetIndex, Section};
use crate::api::input::Query;
use crate::api::instance_index::{InstanceIndex, Row};
use crate::api::instances::InstanceFilter;
use crate::api::instances::query::{SortKey, parse_db_type};
use crate::api::pagination::{MAX_INSTANCE_LIMIT, PageRequest};
use crate::api::state::AppState;

/// The instance an answer was found on.
#[derive(Serialize, Clone, Debug, PartialEq, ToSchema)]
pub struct InstanceRef {
    pub id: i64,
    pub name: String,
    /// `mysql` or `postgresql`.
    pub db_type: &'static str,
    pub host: String,
    pub port: i32,
}

impl InstanceRef {
    pub(super) fn of(row: &Row) -> Self {
        InstanceRef {
            id: row.id,
            name: row.instance.name_any(),
            db_type: row.instance.spec.db_type.as_str(),
            host: row.instance.spec.host.clone(),
            port: row.instance.spec.port,
        }
    }
}

/// An account on one instance.
#[derive(Serialize, Clone, Debug, PartialEq, ToSchema)]
pub struct FleetAccount {
    pub instance: InstanceRef,
    pub account: AccountView,
}

/// A database on one instance.
#[derive(Serialize, Clone, Debug, PartialEq, ToSchema)]
pub struct FleetDatabase {
    pub instance: InstanceRef,
    pub name: String,
    pub size_bytes: u64,
    pub table_count: Option<u32>,
    /// The account that owns it (PostgreSQL); null on MySQL, or when the
    /// owner is not among the accounts the inventory holds.
    pub owner: Option<String>,
}

/// A page of a fleet-wide search, and where its answer may be incomplete.
#[derive(Serialize, Debug, ToSchema)]
pub struct FleetPage<T> {
    pub items: Vec<T>,
    /// Every match, over every page.
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub limit: usize,
    /// Instances searched: those the instance list shows, of `db_type`
    /// and `tags`.
    pub searched_instances: usize,
    /// Of those, how many have nothing collected yet for this search
    /// (accounts, or databases): a match there cannot be known.
    pub instances_not_collected: usize,
    /// Of those, how many had their list capped (`truncated` in their
    /// inventory): a match there may have been left out.
    pub instances_truncated: usize,
}

/// `name` (exact, as sent) and `search` (a case-insensitive substring).
#[derive(Clone, Debug, PartialEq)]
pub struct NameQuery {
    pub name: Option<String>,
    /// Lowercase.
    pub search: Option<String>,
}

impl NameQuery {
    fn from_query(query: &Query) -> Self {
        NameQuery {
            name: query.exact("name").map(str::to_owned),
            search: query.get("search").map(str::to_lowercase),
        }
    }
}

/// The instances a fleet-wide search looks at: those the instance list
/// shows (not recycled, addressable), of `db_type`, carrying any of
/// `tags`, in id order.
pub(super) fn instances_of(query: &Query) -> Result<InstanceFilter, ApiError> {
    let db_type = match query.get("db_type") {
        None => None,
        Some(t) => Some(
            parse_db_type(t)
                .ok_or_else(|| ApiError::field("db_type", format!("db_type must be mysql or postgresql, not {t:?}")))?,
        ),
    };
    Ok(InstanceFilter {
        search: None,
        db_type,
        status: None,
        tags: query.all("tags").into_iter().map(str::to_owned).collect(),
        include_deleted: false,
        sort: SortKey::Id,
        descending: false,
    })
}

/// What `GET /accounts` selects: one item per matching account per
/// instance, by instance id, then account name and host.
#[derive(Clone, Debug, PartialEq)]
pub struct FleetAccountQuery {
    pub names: NameQuery,
    pub flags: FlagFilter,
    pub instances: InstanceFilter,
}

impl FleetAccountQuery {
    pub fn from_query(query: &Query) -> Result<Self, ApiError> {
        Ok(FleetAccountQuery {
            names: NameQuery::from_query(query),
            flags: FlagFilter::from_query(query)?,
            instances: instances_of(query)?,
        })
    }

    /// One page of the matches; every match is counted, only the page's
    /// are built.
    pub fn page(&self, instances: &InstanceIndex, fleet: &FleetIndex, page: PageRequest) -> FleetPage<FleetAccount> {
        let matcher = fleet.account_matcher(self.names.name.as_deref(), self.names.search.as_deref(), self.flags);
        page_of(
            instances,
            &self.instances,
            page,
            |row| fleet.sections(row.name()).0,
            |row| matcher.iter().flat_map(|m| fleet.matching_accounts(row.name(), m)),
            |row, position| {
                Some(FleetAccount {
                    instance: InstanceRef::of(row),
                    account: fleet.account(row.name(), position)?,
                })
            },
        )
    }
}

/// One page of what `positions` finds on each instance `filter` selects,
/// in instance order; every match is counted, only the page's are `built`.
/// Every instance searched is counted by what `section` says is known.
fn page_of<'a, T, P: Iterator<Item = usize>>(
    instances: &'a InstanceIndex,
    filter: &InstanceFilter,
    page: PageRequest,
    section: impl Fn(&'a Row) -> Section,
    positions: impl Fn(&'a Row) -> P,
    build: impl Fn(&'a Row, usize) -> Option<T>,
) -> FleetPage<T> {
    let (start, end) = page.range();
    let (mut total, mut items) = (0, Vec::new());
    let (mut searched, mut not_collected, mut truncated) = (0, 0, 0);
    for row in instances.rows().filter(|r| filter.matches(r)) {
        searched += 1;
        match section(row) {
            Section::Missing => not_collected += 1,
            Section::Truncated => truncated += 1,
            Section::Complete => {}
        }
        for position in positions(row) {
            if (start..end).contains(&total)
                && let Some(item) = build(row, position)
            {
                items.push(item);
            }
            total += 1;
        }
    }
    let paged = page.paged(items, total);
    FleetPage {
        items: paged.items,
        total,
        page: paged.page,
        pages: paged.pages,
        limit: paged.limit,
        searched_instances: searched,
        instances_not_collected: not_collected,
        instances_truncated: truncated,
    }
}

/// What `GET /databases` selects: one item per matching database per
/// instance, by instance id, then database name.
#[derive(Clone, Debug, PartialEq)]
pub struct FleetDatabaseQuery {
    pub names: NameQuery,
    pub instances: InstanceFilter,
}

impl FleetDatabaseQuery {
    pub fn from_query(query: &Query) -> Result<Self, ApiError> {
        Ok(FleetDatabaseQuery {
            names: NameQuery::from_query(query),
            instances: instances_of(query)?,
        })
    }

    pub fn page(&self, instances: &InstanceIndex, fleet: &FleetIndex, page: PageRequest) -> FleetPage<FleetDatabase> {
        let matcher = fleet.database_matcher(self.names.name.as_deref(), self.names.search.as_deref());
        page_of(
            instances,
            &self.instances,
            page,
            |row| fleet.sections(row.name()).1,
            |row| matcher.iter().flat_map(|m| fleet.matching_databases(row.name(), m)),
            |row, position| {
                let found = fleet.database(row.name(), position)?;
                Some(FleetDatabase {
                    instance: InstanceRef::of(row),
                    name: found.name,
                    size_bytes: found.size_bytes,
                    table_count: found.table_count,
                    owner: found.owner,
                })
            },
        )
    }
}

/// Where accounts exist across the fleet, with their privileges there.
#[utoipa::path(get, path = "/api/v1/accounts", tag = "inventory", operation_id = "fleet_accounts",
    params(("name" = Option<String>, Query), ("search" = Option<String>, Query), ("superuser" = Option<String>, Query),
        ("can_login" = Option<String>, Query), ("locked" = Option<String>, Query), ("db_type" = Option<String>, Query),
        ("tags" = Option<Vec<String>>, Query), ("page" = Option<String>, Query), ("limit" = Option<String>, Query)),
    responses((status = 200, body = FleetPage<FleetAccount>), (status = 400), (status = 401), (status = 403)))]
pub async fn accounts(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    _: Authorized<Get, Inventories>,
    query: Query,
) -> ApiResult<Reply<FleetPage<FleetAccount>>> {
    let selection = FleetAccountQuery::from_query(&query)?;
    let page = PageRequest::from_query(&query, MAX_INSTANCE_LIMIT);
    let instances = state.caches.instance_index();
    let fleet = state.caches.fleet_index();
    Ok(Reply::ok(selection.page(&instances, &fleet, page)))
}

/// Where databases exist across the fleet, with their size and owner.
#[utoipa::path(get, path = "/api/v1/databases", tag = "inventory", operation_id = "fleet_databases",
    params(("name" = Option<String>, Query), ("search" = Option<String>, Query), ("db_type" = Option<String>, Query),
        ("tags" = Option<Vec<String>>, Query), ("page" = Option<String>, Query), ("limit" = Option<String>, Query)),
    responses((status = 200, body = FleetPage<FleetDatabase>), (status = 400), (status = 401), (status = 403)))]
pub async fn databases(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    _: Authorized<Get, Inventories>,
    query: Query,
) -> ApiResult<Reply<FleetPage<FleetDatabase>>> {
    let selection = FleetDatabaseQuery::from_query(&query)?;
    let page = PageRequest::from_query(&query, MAX_INSTANCE_LIMIT);
    let instances = state.caches.instance_index();
    let fleet = state.caches.fleet_index();
    Ok(Reply::ok(selection.page(&instances, &fleet, page)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;
    use crate::api::fleet_index::tests::inventory;
    use crate::crd::DbInstance;
    use crate::crd::keys::{ID_LABEL, RECYCLED_LABEL};

    fn instance(name: &str, id: Option<i64>, db_type: &str, tags: &[&str], recycled: bool) -> Arc<DbInstance> {
        let mut i = DbInstance::new(
            name,
            serde_json::from_value(
                json!({"dbType": db_type, "host": format!("{name}.example"), "port": 5432, "tags": tags}),
            )
            .unwrap(),
        );
        let mut labels = BTreeMap::new();
        if let Some(id) = id {
            labels.insert(ID_LABEL.to_string(), id.to_string());
        }
        if recycled {
            labels.insert(RECYCLED_LABEL.to_string(), "true".to_string());
        }
        i.metadata.labels = Some(labels);
        Arc::new(i)
    }

    fn accounts(names: &[(&str, bool)]) -> Value {
        Value::Array(
            names
                .iter()
                .map(|(n, superuser)| {
                    json!({"name": n, "superuser": superuser, "canLogin": true, "locked": false,
                        "databases": [{"name": "orders", "privileges": ["SELECT"], "owner": *n == "boss"}]})
                })
                .collect(),
        )
    }

    /// Five instances: two live PostgreSQL (one tagged), a live MySQL, a
    /// recycled one and one without an id, every one with an `app`.
    fn fleet() -> (InstanceIndex, FleetIndex) {
        let mut instances = InstanceIndex::default();
        instances.rebuild([
            instance("pg-a", Some(1), "postgresql", &["prod"], false),
            instance("my-b", Some(2), "mysql", &[], false),
            instance("pg-c", Some(3), "postgresql", &[], false),
            instance("gone", Some(4), "mysql", &["prod"], true),
            instance("no-id", None, "mysql", &["prod"], false),
        ]);
        let mut fleet = FleetIndex::default();
        let databases = json!([{"name": "orders", "sizeBytes": 7}]);
        fleet.upsert(&inventory(
            "pg-a",
            accounts(&[("app", false), ("boss", true)]),
            databases.clone(),
        ));
        fleet.upsert(&inventory(
            "my-b",
            accounts(&[("app", false), ("root", true)]),
            Value::Null,
        ));
        fleet.upsert(&inventory("pg-c", accounts(&[("app_ro", false)]), databases));
        for hidden in ["gone", "no-id"] {
            fleet.upsert(&inventory(hidden, accounts(&[("app", true)]), Value::Null));
        }
        (instances, fleet)
    }

    fn search(query: &str) -> Vec<(i64, String)> {
        let (instances, fleet) = fleet();
        FleetAccountQuery::from_query(&Query::parse(query))
            .unwrap()
            .page(&instances, &fleet, PageRequest { page: 1, limit: 100 })
            .items
            .into_iter()
            .map(|f| (f.instance.id, f.account.name))
            .collect()
    }

    #[test]
    fn accounts_are_found_on_the_instances_the_list_shows_only() {
        assert_eq!(search("name=app"), [(1, "app".into()), (2, "app".into())]);
        assert_eq!(
            search("search=APP"),
            [(1, "app".into()), (2, "app".into()), (3, "app_ro".into())]
        );
        assert_eq!(search("name=app&db_type=mysql"), [(2, "app".into())]);
        assert_eq!(search("search=app&tags=prod"), [(1, "app".into())]);
        assert_eq!(search("superuser=true"), [(1, "boss".into()), (2, "root".into())]);
        assert_eq!(search("superuser=true&db_type=postgresql"), [(1, "boss".into())]);
        assert!(search("name=nobody").is_empty());
        assert!(search("name=app&search=ro").is_empty());
    }

    #[test]
    fn a_search_is_paged_in_instance_order_and_counts_every_match() {
        let (instances, fleet) = fleet();
        let query = FleetAccountQuery::from_query(&Query::parse("search=a")).unwrap();
        let first = query.page(&instances, &fleet, PageRequest { page: 1, limit: 2 });
        let second = query.page(&instances, &fleet, PageRequest { page: 2, limit: 2 });
        assert_eq!((first.total, first.pages, second.items.len()), (3, 2, 1));
        assert_eq!(
            [&first.items[..], &second.items[..]]
                .concat()
                .iter()
                .map(|f| f.instance.id)
                .collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(first.items[0].account.databases[0].privileges, ["SELECT"]);
        assert_eq!(first.items[0].instance.host, "pg-a.example");
    }

    #[test]
    fn a_search_says_where_its_answer_may_be_incomplete() {
        let (mut instances, mut fleet) = fleet();
        instances.upsert(instance("new", Some(9), "mysql", &[], false));
        let mut capped = inventory("pg-c", accounts(&[("app_ro", false)]), Value::Null);
        capped.spec.accounts.as_mut().unwrap().truncated = true;
        fleet.upsert(&capped);
        let page = FleetAccountQuery::from_query(&Query::parse("name=nobody"))
            .unwrap()
            .page(&instances, &fleet, PageRequest { page: 1, limit: 20 });
        assert_eq!(
            (
                page.total,
                page.searched_instances,
                page.instances_not_collected,
                page.instances_truncated
            ),
            (0, 4, 1, 1)
        );
        let mysql = FleetAccountQuery::from_query(&Query::parse("db_type=mysql"))
            .unwrap()
            .page(&instances, &fleet, PageRequest { page: 1, limit: 20 });
        assert_eq!((mysql.searched_instances, mysql.instances_not_collected), (2, 1));
    }

    #[test]
    fn bad_filters_are_400s_naming_the_field() {
        for (query, field) in [
            ("db_type=oracle", "db_type"),
            ("superuser=maybe", "superuser"),
            ("locked=1", "locked"),
        ] {
            let e = FleetAccountQuery::from_query(&Query::parse(query)).unwrap_err();
            assert_eq!(e.data["errors"][0]["field"], field, "{query}");
        }
        assert!(FleetDatabaseQuery::from_query(&Query::parse("db_type=sqlite")).is_err());
    }

    #[test]
    fn databases_are_found_with_size_and_owner() {
        let (instances, fleet) = fleet();
        let found = FleetDatabaseQuery::from_query(&Query::parse("name=orders"))
            .unwrap()
            .page(&instances, &fleet, PageRequest { page: 1, limit: 20 });
        let items: Vec<(i64, u64, Option<&str>)> = found
            .items
            .iter()
            .map(|d| (d.instance.id, d.size_bytes, d.owner.as_deref()))
            .collect();
        assert_eq!(items, [(1, 7, Some("boss")), (3, 7, None)]);
        // my-b has accounts but no databases collected.
        assert_eq!(
            (
                found.searched_instances,
                found.instances_not_collected,
                found.instances_truncated
            ),
            (3, 1, 0)
        );
        let none = FleetDatabaseQuery::from_query(&Query::parse("search=zzz"))
            .unwrap()
            .page(&instances, &fleet, PageRequest { page: 1, limit: 20 });
        assert_eq!(none.total, 0);
    }
}
