//! The instance list's index: one lightweight row per listable DbInstance,
//! in id order, kept current from the reflector's watch events (`store`).
//! A list request walks rows instead of cloning, parsing and sorting every
//! cached object; the rows share the reflector store's `Arc`s.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::views::updated_at;
use crate::crd::DbInstance;
use crate::ids::id_of;

/// What filtering and sorting need, computed once per watch event.
#[derive(Debug)]
pub struct Row {
    pub id: i64,
    pub instance: Arc<DbInstance>,
    pub recycled: bool,
    /// The phase and connection state as the contract names them.
    pub phase: &'static str,
    pub connection: &'static str,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    /// Name, host and description, lowercased here rather than per search.
    pub search: [String; 3],
}

impl Row {
    /// A row for an addressable (id-carrying), live instance.
    fn of(instance: Arc<DbInstance>) -> Option<Row> {
        if instance.metadata.deletion_timestamp.is_some() {
            return None;
        }
        Some(Row {
            id: id_of(&instance.metadata)?,
            recycled: instance.is_recycled(),
            phase: instance.phase().name(),
            connection: instance.connection_state().as_str(),
            created_at: instance.metadata.creation_timestamp.as_ref().map(|t| t.0),
            updated_at: updated_at(&instance.metadata),
            search: [
                instance.name_any().to_lowercase(),
                instance.spec.host.to_lowercase(),
                instance.spec.description.as_deref().unwrap_or_default().to_lowercase(),
            ],
            instance,
        })
    }

    pub fn name(&self) -> &str {
        self.instance.metadata.name.as_deref().unwrap_or_default()
    }
}

/// Rows keyed by (id, name): ids are unique in practice, but two objects
/// carrying the same id label must not hide each other.
#[derive(Debug, Default)]
pub struct InstanceIndex {
    /// Every cached instance (also those without id or being deleted), so
    /// read-your-writes can wait on the index itself.
    by_name: HashMap<String, Arc<DbInstance>>,
    rows: BTreeMap<(i64, String), Row>,
    /// Rows in the recycle bin, so an unfiltered list knows its total
    /// without walking every row.
    recycled: usize,
    /// Whether the first full list has been applied.
    synced: bool,
}

impl InstanceIndex {
    /// Adds or replaces the instance named like `instance`.
    pub fn upsert(&mut self, instance: Arc<DbInstance>) {
        let name = instance.name_any();
        self.remove(&name);
        if let Some(row) = Row::of(instance.clone()) {
            self.recycled += usize::from(row.recycled);
            self.rows.insert((row.id, name.clone()), row);
        }
        self.by_name.insert(name, instance);
    }

    pub fn remove(&mut self, name: &str) {
        if let Some(old) = self.by_name.remove(name)
            && let Some(id) = id_of(&old.metadata)
            && let Some(row) = self.rows.remove(&(id, name.to_string()))
        {
            self.recycled -= usize::from(row.recycled);
        }
    }

    /// Replaces everything with a full (re)list.
    pub fn rebuild(&mut self, instances: impl IntoIterator<Item = Arc<DbInstance>>) {
        self.by_name.clear();
        self.rows.clear();
        self.recycled = 0;
        for instance in instances {
            self.upsert(instance);
        }
        self.synced = true;
    }

    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// The cached instance named `name`, listable or not.
    pub fn get(&self, name: &str) -> Option<&Arc<DbInstance>> {
        self.by_name.get(name)
    }

    /// How many rows an unfiltered list shows.
    pub fn count(&self, include_recycled: bool) -> usize {
        if include_recycled {
            self.rows.len()
        } else {
            self.rows.len() - self.recycled
        }
    }

    /// The rows carrying `id` (several only when labels were copied).
    pub fn with_id(&self, id: i64) -> Vec<&Row> {
        let Some(next) = id.checked_add(1) else {
            return self.rows.range((id, String::new())..).map(|(_, row)| row).collect();
        };
        self.rows
            .range((id, String::new())..(next, String::new()))
            .map(|(_, row)| row)
            .collect()
    }

    /// Listable rows in ascending (id, name) order.
    pub fn rows(&self) -> impl DoubleEndedIterator<Item = &Row> {
        self.rows.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::crd::keys::{ID_LABEL, RECYCLED_LABEL};

    fn instance(name: &str, id: Option<i64>, host: &str) -> Arc<DbInstance> {
        let mut i = DbInstance::new(
            name,
            serde_json::from_value(serde_json::json!({"dbType": "mysql", "host": host, "port": 3306})).unwrap(),
        );
        i.metadata.labels = id.map(|id| BTreeMap::from([(ID_LABEL.to_string(), id.to_string())]));
        Arc::new(i)
    }

    fn listed(index: &InstanceIndex) -> Vec<(i64, &str)> {
        index.rows().map(|r| (r.id, r.name())).collect()
    }

    #[test]
    fn rows_are_in_id_order_whatever_order_events_arrive_in() {
        let mut index = InstanceIndex::default();
        index.rebuild([
            instance("c", Some(30), "h"),
            instance("a", Some(10), "h"),
            instance("b", Some(20), "h"),
        ]);
        assert!(index.is_synced());
        index.upsert(instance("d", Some(15), "h"));
        assert_eq!(listed(&index), [(10, "a"), (15, "d"), (20, "b"), (30, "c")]);
        assert_eq!(index.rows().next_back().unwrap().id, 30);
    }

    #[test]
    fn updates_replace_the_row_even_when_the_id_changes() {
        let mut index = InstanceIndex::default();
        index.upsert(instance("a", Some(1), "Old.Example"));
        index.upsert(instance("a", Some(7), "New.Example"));
        assert_eq!(listed(&index), [(7, "a")]);
        assert_eq!(index.rows().next().unwrap().search[1], "new.example");
    }

    #[test]
    fn deletes_and_unlistable_objects_leave_no_row_but_stay_gettable() {
        let mut index = InstanceIndex::default();
        index.upsert(instance("a", Some(1), "h"));
        index.upsert(instance("kubectl-made", None, "h"));
        let mut deleting = (*instance("b", Some(2), "h")).clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()));
        index.upsert(Arc::new(deleting));
        assert_eq!(listed(&index), [(1, "a")]);
        assert!(index.get("kubectl-made").is_some() && index.get("b").is_some());

        index.remove("a");
        index.remove("never-seen");
        assert!(listed(&index).is_empty());
        assert!(index.get("a").is_none());
    }

    #[test]
    fn counts_follow_the_recycle_bin_through_updates_and_deletes() {
        let mut index = InstanceIndex::default();
        let recycled = |name: &str, id: i64| {
            let mut i = (*instance(name, Some(id), "h")).clone();
            i.labels_mut().insert(RECYCLED_LABEL.into(), "true".into());
            Arc::new(i)
        };
        index.rebuild([instance("a", Some(1), "h"), recycled("b", 2), instance("c", None, "h")]);
        assert_eq!((index.count(true), index.count(false)), (2, 1));
        index.upsert(recycled("a", 1));
        assert_eq!((index.count(true), index.count(false)), (2, 0));
        index.upsert(instance("b", Some(2), "h"));
        index.remove("a");
        index.remove("c");
        assert_eq!((index.count(true), index.count(false)), (1, 1));
    }

    #[test]
    fn a_shared_id_keeps_both_rows() {
        let mut index = InstanceIndex::default();
        index.upsert(instance("b", Some(1), "h"));
        index.upsert(instance("a", Some(1), "h"));
        assert_eq!(listed(&index), [(1, "a"), (1, "b")]);
        let names = |index: &InstanceIndex, id| {
            index
                .with_id(id)
                .iter()
                .map(|r| r.name().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&index, 1), ["a", "b"]);
        index.remove("a");
        assert_eq!(listed(&index), [(1, "b")]);
        assert_eq!(names(&index, 1), ["b"]);
        assert!(names(&index, 2).is_empty() && names(&index, 0).is_empty());
        index.upsert(instance("max", Some(i64::MAX), "h"));
        assert_eq!(names(&index, i64::MAX), ["max"]);
    }

    #[test]
    fn rebuild_forgets_what_the_relist_no_longer_has() {
        let mut index = InstanceIndex::default();
        index.upsert(instance("gone", Some(1), "h"));
        let mut recycled = (*instance("kept", Some(2), "h")).clone();
        recycled.labels_mut().insert(RECYCLED_LABEL.into(), "true".into());
        index.rebuild([Arc::new(recycled)]);
        assert_eq!(listed(&index), [(2, "kept")]);
        assert_eq!((index.count(true), index.count(false)), (1, 0));
        assert!(index.get("gone").is_none());
        let row = index.rows().next().unwrap();
        assert!(row.recycled);
        assert_eq!((row.phase, row.connection), ("recycled", "unknown"));
    }
}
