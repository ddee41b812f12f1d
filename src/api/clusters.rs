//! Replication clusters (`GET /api/v1/clusters`, issue 20): the instances
//! grouped by the `clusterId` their status carries, with each member's
//! role and delay. Served from the instance cache, grouped per request
//! ([`clusters_of`] is pure).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use kube::ResourceExt;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::envelope::{ApiResult, Reply};
use crate::api::extract::{Authorized, Instances, View};
use crate::api::input::Query;
use crate::api::pagination::{MAX_INSTANCE_LIMIT, PageRequest, Paged};
use crate::api::routes::Routes;
use crate::api::state::AppState;
use crate::crd::DbInstance;
use crate::crd::instance::Role;
use crate::ids;

pub fn routes() -> Routes {
    Routes::new().get("/clusters", list)
}

/// Instances that replicate together (or a server alone, a cluster of one).
#[derive(Serialize, ToSchema, Debug, PartialEq)]
pub struct ClusterView {
    /// `postgresql:<system identifier>`, `mysql:<server_uuid>` or
    /// `mariadb:<server_id>@<host>:<port>` (docs/facade.md).
    pub cluster_id: String,
    pub db_type: &'static str,
    /// The id of the member that is `primary`, when one is inventoried.
    pub primary_id: Option<i64>,
    pub member_count: usize,
    /// The largest delay among the members (streaming replicas), seconds.
    pub max_lag_seconds: Option<u64>,
    /// The primary first, then replicas, then standalone members, each by
    /// id.
    pub members: Vec<ClusterMember>,
}

#[derive(Serialize, ToSchema, Debug, PartialEq)]
pub struct ClusterMember {
    pub id: i64,
    pub name: String,
    pub host: String,
    pub port: i32,
    /// `primary`, `replica` or `standalone`.
    pub role: Option<&'static str>,
    /// A replica's source as it names it (`host:port`).
    pub source: Option<String>,
    /// A replica's state: `streaming`, `idle` (nothing replayed yet, no
    /// delay to measure) or `stopped`.
    pub lag_state: Option<&'static str>,
    /// A streaming replica's delay, whole seconds, as of the status's last
    /// write (at most one report interval old).
    pub lag_seconds: Option<u64>,
    /// The connection test's result: `connected`, `failed` or `unknown`.
    pub connection: &'static str,
}

/// Clusters of the instances that are not recycled, have an id and a
/// known cluster id, sorted by cluster id.
pub fn clusters_of(instances: &[Arc<DbInstance>]) -> Vec<ClusterView> {
    let mut clusters: BTreeMap<String, ClusterView> = BTreeMap::new();
    for instance in instances {
        if instance.is_recycled() {
            continue;
        }
        let Some(id) = ids::id_of(&instance.metadata) else {
            continue;
        };
        let Some(status) = instance.status.as_ref() else {
            continue;
        };
        let Some(replication) = status.replication.as_ref() else {
            continue;
        };
        let Some(cluster_id) = replication.cluster_id.clone() else {
            continue;
        };
        let cluster = clusters.entry(cluster_id.clone()).or_insert_with(|| ClusterView {
            cluster_id,
            db_type: instance.spec.db_type.as_str(),
            primary_id: None,
            member_count: 0,
            max_lag_seconds: None,
            members: Vec::new(),
        });
        let connection = status.connection.as_ref().map_or("unknown", |c| c.status.as_str());
        cluster.members.push(ClusterMember {
            id,
            name: instance.name_any(),
            host: instance.spec.host.clone(),
            port: instance.spec.port,
            role: replication.role.map(Role::as_str),
            source: replication.source.clone(),
            lag_state: replication.lag_state.map(|s| s.as_str()),
            lag_seconds: replication.lag_seconds,
            connection,
        });
    }
    clusters
        .into_values()
        .map(|mut cluster| {
            let rank = |role: Option<&str>| match role {
                Some("primary") => 0,
                Some("replica") => 1,
                _ => 2,
            };
            cluster.members.sort_by_key(|m| (rank(m.role), m.id));
            cluster.member_count = cluster.members.len();
            cluster.primary_id = cluster.members.iter().find(|m| m.role == Some("primary")).map(|m| m.id);
            cluster.max_lag_seconds = cluster.members.iter().filter_map(|m| m.lag_seconds).max();
            cluster
        })
        .collect()
}

/// Replication clusters with their members, roles and delays, paginated.
#[utoipa::path(get, path = "/api/v1/clusters", tag = "clusters",
    params(("page" = Option<String>, Query), ("limit" = Option<String>, Query)),
    responses((status = 200, body = Paged<ClusterView>), (status = 401), (status = 403)))]
pub async fn list(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    query: Query,
) -> ApiResult<Reply<Paged<ClusterView>>> {
    let page = PageRequest::from_query(&query, MAX_INSTANCE_LIMIT);
    Ok(Reply::ok(
        page.apply(clusters_of(&state.caches.live(&state.caches.instances))),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn member(name: &str, id: i64, replication: serde_json::Value) -> Arc<DbInstance> {
        let instance = json!({
            "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
            "metadata": {"name": name, "namespace": "ns", "labels": {"dbfleet.io/id": id.to_string()}},
            "spec": {"dbType": "postgresql", "host": format!("{name}.internal"), "port": 5432},
            "status": {"replication": replication, "connection": {"status": "connected"}},
        });
        Arc::new(serde_json::from_value(instance).unwrap())
    }

    #[test]
    fn instances_are_grouped_by_cluster_id_primary_first() {
        let fleet = [
            member(
                "replica-b",
                3,
                json!({"role": "replica", "clusterId": "postgresql:1", "lagState": "streaming", "lagSeconds": 4}),
            ),
            member("alone", 4, json!({"role": "standalone", "clusterId": "postgresql:2"})),
            member(
                "primary",
                5,
                json!({"role": "primary", "clusterId": "postgresql:1", "replicaCount": 2}),
            ),
            member(
                "replica-a",
                2,
                json!({"role": "replica", "clusterId": "postgresql:1", "lagState": "idle"}),
            ),
            member("unknown", 6, json!({"message": "could not read the replication state"})),
        ];
        let clusters = clusters_of(&fleet);
        let ids: Vec<&str> = clusters.iter().map(|c| c.cluster_id.as_str()).collect();
        assert_eq!(
            ids,
            ["postgresql:1", "postgresql:2"],
            "an instance without a cluster id is in none"
        );
        let replicated = &clusters[0];
        let members: Vec<(&str, Option<&str>)> = replicated.members.iter().map(|m| (m.name.as_str(), m.role)).collect();
        assert_eq!(
            members,
            [
                ("primary", Some("primary")),
                ("replica-a", Some("replica")),
                ("replica-b", Some("replica"))
            ]
        );
        assert_eq!((replicated.primary_id, replicated.member_count), (Some(5), 3));
        assert_eq!(replicated.max_lag_seconds, Some(4));
        assert_eq!(replicated.members[1].lag_state, Some("idle"));
        assert_eq!(clusters[1].primary_id, None);
    }
}
