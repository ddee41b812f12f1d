//! What an inventory request selects, in which order, and what follows
//! from the accounts (root status, one account by name): pure.

use std::cmp::Ordering;

use serde::Serialize;
use utoipa::ToSchema;

use crate::api::envelope::ApiError;
use crate::api::input::Query;
use crate::crd::inventory::{InventoryAccount, InventoryAccounts, InventoryDatabase};

/// The MySQL host that means "any host".
pub const ANY_HOST: &str = "%";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseSort {
    Name,
    Size,
}

/// What `GET /instances/{id}/databases` selects, in which order.
#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseQuery {
    /// Lowercase.
    pub search: Option<String>,
    pub sort: DatabaseSort,
    pub descending: bool,
}

impl DatabaseQuery {
    pub fn from_query(query: &Query) -> Result<Self, ApiError> {
        let sort = query
            .choice("sort", &[("name", DatabaseSort::Name), ("size", DatabaseSort::Size)])?
            .unwrap_or(DatabaseSort::Name);
        // Names read A to Z; sizes largest first.
        let descending = query
            .choice("order", &[("asc", false), ("desc", true)])?
            .unwrap_or(sort == DatabaseSort::Size);
        Ok(DatabaseQuery {
            search: search_of(query),
            sort,
            descending,
        })
    }

    /// The matching databases, in order; ties by name, so pages are stable.
    pub fn select<'a>(&self, databases: &'a [InventoryDatabase]) -> Vec<&'a InventoryDatabase> {
        let mut selected: Vec<&InventoryDatabase> = databases
            .iter()
            .filter(|d| {
                self.search
                    .as_deref()
                    .is_none_or(|s| contains_ignoring_case(&d.name, s))
            })
            .collect();
        selected.sort_by(|a, b| {
            let ordering = match self.sort {
                DatabaseSort::Name => Ordering::Equal,
                DatabaseSort::Size => a.size_bytes.cmp(&b.size_bytes),
            }
            .then_with(|| a.name.cmp(&b.name));
            if self.descending { ordering.reverse() } else { ordering }
        });
        selected
    }
}

/// The account flags a request may filter on; `None` is no filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlagFilter {
    pub superuser: Option<bool>,
    pub can_login: Option<bool>,
    pub locked: Option<bool>,
}

impl FlagFilter {
    pub fn from_query(query: &Query) -> Result<Self, ApiError> {
        Ok(FlagFilter {
            superuser: query.boolean("superuser")?,
            can_login: query.boolean("can_login")?,
            locked: query.boolean("locked")?,
        })
    }

    pub fn matches(&self, superuser: bool, can_login: bool, locked: bool) -> bool {
        self.superuser.is_none_or(|want| want == superuser)
            && self.can_login.is_none_or(|want| want == can_login)
            && self.locked.is_none_or(|want| want == locked)
    }
}

/// What `GET /instances/{id}/accounts` selects (in the inventory's order:
/// name, then host).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccountFilter {
    /// Lowercase; a substring of the account's name.
    pub search: Option<String>,
    pub flags: FlagFilter,
}

impl AccountFilter {
    pub fn from_query(query: &Query) -> Result<Self, ApiError> {
        Ok(AccountFilter {
            search: search_of(query),
            flags: FlagFilter::from_query(query)?,
        })
    }

    pub fn matches(&self, account: &InventoryAccount) -> bool {
        self.flags.matches(account.superuser, account.can_login, account.locked)
            && self
                .search
                .as_deref()
                .is_none_or(|s| contains_ignoring_case(&account.name, s))
    }
}

fn search_of(query: &Query) -> Option<String> {
    query.get("search").map(str::to_lowercase)
}

/// Whether `text` contains `needle_lowercase` (already lowercase), case
/// aside. ASCII text is compared in place; only other text is lowercased,
/// so a fleet-wide scan allocates for none of the usual names.
pub fn contains_ignoring_case(text: &str, needle_lowercase: &str) -> bool {
    if needle_lowercase.is_empty() {
        return true;
    }
    if text.is_ascii() && needle_lowercase.is_ascii() {
        let (text, needle) = (text.as_bytes(), needle_lowercase.as_bytes());
        return text.len() >= needle.len()
            && text
                .windows(needle.len())
                .any(|window| window.iter().zip(needle).all(|(a, b)| a.to_ascii_lowercase() == *b));
    }
    text.to_lowercase().contains(needle_lowercase)
}

/// Why no single account answers a name.
#[derive(Debug, PartialEq, Eq)]
pub enum AccountLookup {
    NotFound,
    /// The name exists on these hosts and no host was given.
    Ambiguous(Vec<String>),
}

/// The account `name` (at `host`, when given): MySQL accounts are
/// `user@host`, so a name alone names several when it exists on several
/// hosts.
pub fn find_account<'a>(
    accounts: &'a [InventoryAccount],
    name: &str,
    host: Option<&str>,
) -> Result<&'a InventoryAccount, AccountLookup> {
    let named: Vec<&InventoryAccount> = accounts
        .iter()
        .filter(|a| a.name == name && host.is_none_or(|h| a.host.as_deref() == Some(h)))
        .collect();
    match named.as_slice() {
        [] => Err(AccountLookup::NotFound),
        [one] => Ok(one),
        many => Err(AccountLookup::Ambiguous(
            many.iter().map(|a| a.host.clone().unwrap_or_default()).collect(),
        )),
    }
}

/// A superuser-class account, as the root status names it.
#[derive(Serialize, Clone, Debug, PartialEq, ToSchema)]
pub struct Superuser {
    pub name: String,
    pub host: Option<String>,
    pub can_login: bool,
    pub locked: bool,
    pub expired: bool,
    /// A MySQL account at host `%` that can log in, is not locked and has
    /// not expired.
    pub from_anywhere: bool,
}

/// Trove's "root enabled", answered from the inventory.
#[derive(Serialize, Clone, Debug, PartialEq, ToSchema)]
pub struct RootStatus {
    /// Whether the accounts have been synced yet; when not, nothing below
    /// is known and `root_enabled` is null.
    pub collected: bool,
    pub collected_at: Option<String>,
    /// Whether superuser-class accounts exist (PostgreSQL `SUPERUSER`,
    /// MySQL `SUPER`), counting any the inventory left out.
    pub root_enabled: Option<bool>,
    /// How many exist on the server, including any left out of the list.
    pub superuser_count: u32,
    /// Those the inventory holds, sorted by name, then host.
    pub superusers: Vec<Superuser>,
    /// Whether any of them can log in from anywhere (MySQL host `%`). A
    /// PostgreSQL role's reach is set in `pg_hba.conf`, which the inventory
    /// does not read: always false there.
    pub login_from_anywhere: bool,
    /// The account list was capped, so `superusers` may not name them all.
    pub truncated: bool,
}

/// The root status that follows from the accounts section (`None`: not
/// synced yet).
pub fn root_status(accounts: Option<&InventoryAccounts>, collected_at: Option<String>) -> RootStatus {
    let Some(accounts) = accounts else {
        return RootStatus {
            collected: false,
            collected_at: None,
            root_enabled: None,
            superuser_count: 0,
            superusers: vec![],
            login_from_anywhere: false,
            truncated: false,
        };
    };
    let superusers: Vec<Superuser> = accounts
        .items
        .iter()
        .filter(|a| a.superuser)
        .map(|a| Superuser {
            name: a.name.clone(),
            host: a.host.clone(),
            can_login: a.can_login,
            locked: a.locked,
            expired: a.expired,
            from_anywhere: a.host.as_deref() == Some(ANY_HOST) && a.can_login && !a.locked && !a.expired,
        })
        .collect();
    // The count covers accounts left out of a capped list; the list may
    // hold superusers the count (from an older writer) does not.
    let superuser_count = accounts.superuser_count.max(superusers.len() as u32);
    RootStatus {
        collected: true,
        collected_at,
        root_enabled: Some(superuser_count > 0),
        superuser_count,
        login_from_anywhere: superusers.iter().any(|s| s.from_anywhere),
        superusers,
        truncated: accounts.truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::envelope::Code;
    use serde_json::json;

    fn databases() -> Vec<InventoryDatabase> {
        serde_json::from_value(json!([
            {"name": "billing", "sizeBytes": 300, "tableCount": 4},
            {"name": "Orders", "sizeBytes": 100},
            {"name": "orders_archive", "sizeBytes": 300, "tableCount": 1},
            {"name": "app", "sizeBytes": 50, "tableCount": 0},
        ]))
        .unwrap()
    }

    fn names(query: &str) -> Vec<String> {
        DatabaseQuery::from_query(&Query::parse(query))
            .unwrap()
            .select(&databases())
            .iter()
            .map(|d| d.name.clone())
            .collect()
    }

    #[test]
    fn databases_sort_by_name_or_size_with_ties_by_name() {
        assert_eq!(names(""), ["Orders", "app", "billing", "orders_archive"]);
        assert_eq!(names("order=desc"), ["orders_archive", "billing", "app", "Orders"]);
        assert_eq!(names("sort=size"), ["orders_archive", "billing", "Orders", "app"]);
        assert_eq!(
            names("sort=size&order=asc"),
            ["app", "Orders", "billing", "orders_archive"]
        );
        assert_eq!(names("search=ORDER"), ["Orders", "orders_archive"]);
        assert!(names("search=nothing").is_empty());
    }

    #[test]
    fn unknown_sort_order_and_flags_are_400s_naming_the_field() {
        for (query, field) in [
            ("sort=bytes", "sort"),
            ("sort=Name", "sort"),
            ("order=up", "order"),
            ("superuser=yes", "superuser"),
            ("can_login=1", "can_login"),
            ("locked=False", "locked"),
        ] {
            let q = Query::parse(query);
            let e = DatabaseQuery::from_query(&q)
                .and_then(|_| AccountFilter::from_query(&q).map(|_| ()))
                .unwrap_err();
            assert_eq!(
                (e.code, e.data["errors"][0]["field"].as_str()),
                (Code::ValidationError, Some(field)),
                "{query}"
            );
        }
    }

    fn account(value: serde_json::Value) -> InventoryAccount {
        let mut base = json!({"name": "x", "superuser": false, "canLogin": true, "locked": false});
        for (k, v) in value.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn accounts() -> Vec<InventoryAccount> {
        vec![
            account(json!({"name": "app", "host": "%"})),
            account(json!({"name": "app", "host": "10.0.0.%"})),
            account(json!({"name": "Backup", "host": "localhost", "locked": true})),
            account(json!({"name": "root", "host": "%", "superuser": true})),
            account(json!({"name": "root", "host": "localhost", "superuser": true})),
            account(json!({"name": "writer", "host": "%", "canLogin": false})),
        ]
    }

    fn filtered(query: &str) -> Vec<String> {
        let filter = AccountFilter::from_query(&Query::parse(query)).unwrap();
        accounts()
            .iter()
            .filter(|a| filter.matches(a))
            .map(|a| format!("{}@{}", a.name, a.host.as_deref().unwrap_or("")))
            .collect()
    }

    #[test]
    fn account_filters_combine() {
        assert_eq!(filtered("superuser=true"), ["root@%", "root@localhost"]);
        assert_eq!(filtered("locked=true"), ["Backup@localhost"]);
        assert_eq!(filtered("can_login=false"), ["writer@%"]);
        assert_eq!(filtered("search=BACK&locked=false"), Vec::<String>::new());
        assert_eq!(
            filtered("search=p&superuser=false&can_login=true&locked=false"),
            ["app@%", "app@10.0.0.%"]
        );
        assert_eq!(filtered("").len(), 6);
    }

    #[test]
    fn case_is_ignored_in_any_script() {
        assert!(contains_ignoring_case("App_Reader", "p_r"));
        assert!(contains_ignoring_case("ÜBER_user", "über"));
        assert!(!contains_ignoring_case("ab", "abc"));
        assert!(contains_ignoring_case("", ""));
    }

    #[test]
    fn a_name_on_several_hosts_needs_its_host() {
        let all = accounts();
        assert_eq!(
            find_account(&all, "app", None),
            Err(AccountLookup::Ambiguous(vec!["%".into(), "10.0.0.%".into()]))
        );
        assert_eq!(
            find_account(&all, "app", Some("10.0.0.%")).unwrap().host.as_deref(),
            Some("10.0.0.%")
        );
        assert_eq!(find_account(&all, "Backup", None).unwrap().name, "Backup");
        assert_eq!(find_account(&all, "backup", None), Err(AccountLookup::NotFound));
        assert_eq!(
            find_account(&all, "app", Some("elsewhere")),
            Err(AccountLookup::NotFound)
        );
    }

    fn section(items: Vec<InventoryAccount>, superuser_count: u32, truncated: bool) -> InventoryAccounts {
        InventoryAccounts {
            synced_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-01T00:00:00Z".parse().unwrap()),
            count: items.len() as u32,
            superuser_count,
            items,
            parts: vec![],
            truncated,
            omitted: 0,
            content_hash: String::new(),
        }
    }

    #[test]
    fn root_status_names_the_superusers_and_who_logs_in_from_anywhere() {
        let status = root_status(Some(&section(accounts(), 2, false)), Some("t".into()));
        assert_eq!(status.root_enabled, Some(true));
        assert_eq!(
            status
                .superusers
                .iter()
                .map(|s| (s.host.as_deref(), s.from_anywhere))
                .collect::<Vec<_>>(),
            [(Some("%"), true), (Some("localhost"), false)]
        );
        assert!(status.login_from_anywhere);

        // At `%`, but locked, expired or a role: not a way in.
        for blocked in [
            json!({"locked": true}),
            json!({"expired": true}),
            json!({"canLogin": false}),
        ] {
            let mut root = account(json!({"name": "root", "host": "%", "superuser": true}));
            let patch = account(blocked);
            root.locked = patch.locked;
            root.expired = patch.expired;
            root.can_login = patch.can_login;
            let status = root_status(Some(&section(vec![root], 1, false)), None);
            assert_eq!((status.root_enabled, status.login_from_anywhere), (Some(true), false));
        }

        // PostgreSQL: no host, so never "from anywhere".
        let postgres = account(json!({"name": "postgres", "superuser": true}));
        let status = root_status(Some(&section(vec![postgres], 1, false)), None);
        assert_eq!((status.root_enabled, status.login_from_anywhere), (Some(true), false));
    }

    #[test]
    fn root_status_counts_superusers_left_out_and_knows_nothing_before_a_sync() {
        let app = account(json!({"name": "app"}));
        let status = root_status(Some(&section(vec![app.clone()], 0, false)), None);
        assert_eq!((status.root_enabled, status.superuser_count), (Some(false), 0));
        let capped = root_status(Some(&section(vec![app], 3, true)), None);
        assert_eq!(
            (capped.root_enabled, capped.superuser_count, capped.truncated),
            (Some(true), 3, true)
        );
        assert!(capped.superusers.is_empty());
        let unknown = root_status(None, None);
        assert_eq!((unknown.collected, unknown.root_enabled), (false, None));
    }
}
