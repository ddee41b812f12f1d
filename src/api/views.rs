//! How DbInstances and DbTags look in the REST contract (SPEC §3.5, §3.6):
//! pure mappings from the cached objects.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::ObjectMeta;
use serde::Serialize;
use utoipa::ToSchema;

use super::envelope::format_time;
use crate::crd::{DbInstance, DbTag};
use crate::ids::id_of;
use crate::observe::freshness::{self, ProbeKind};

/// A tag as embedded in an instance.
#[derive(Serialize, Clone, Debug, PartialEq, ToSchema)]
pub struct TagRef {
    pub id: Option<i64>,
    pub name: String,
    pub display_name: String,
    pub category: String,
    pub color: Option<String>,
}

#[derive(Serialize, Clone, Debug, ToSchema)]
pub struct TagView {
    pub id: i64,
    pub name: String,
    pub display_name: String,
    pub category: String,
    pub color: Option<String>,
    pub is_active: bool,
    pub instance_count: usize,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Serialize, Clone, Debug, ToSchema)]
pub struct ConnectionView {
    /// `connected`, `failed` or `unknown`.
    pub status: &'static str,
    pub last_checked_at: Option<String>,
    pub latency_ms: Option<u64>,
    pub version: Option<String>,
    pub message: Option<String>,
}

#[derive(Serialize, Clone, Debug, ToSchema)]
pub struct CapacityView {
    pub total_size_bytes: u64,
    pub database_count: u32,
    pub collected_at: String,
}

#[derive(Serialize, Clone, Debug, ToSchema)]
pub struct AccountsView {
    pub count: u32,
    pub synced_at: String,
}

#[derive(Serialize, Clone, Debug, ToSchema)]
pub struct InstanceView {
    pub id: i64,
    pub name: String,
    /// `mysql` or `postgresql`.
    pub db_type: &'static str,
    pub host: String,
    pub port: i32,
    pub database_name: Option<String>,
    pub credential_id: Option<i64>,
    pub description: Option<String>,
    pub is_active: bool,
    pub tags: Vec<TagRef>,
    /// The phase, lowercase: `pending`, `ready`, `failed`, `inactive`, `recycled`.
    pub status: &'static str,
    pub connection: ConnectionView,
    pub capacity: Option<CapacityView>,
    pub accounts: Option<AccountsView>,
    pub deleted_at: Option<String>,
    pub retained_until: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// `true` when a probe's last success is older than twice its interval
    /// plus the controller's report interval: the facts shown are old (the
    /// controller stopped or is overloaded, or the server stopped
    /// answering). Decided when the façade answers.
    pub stale: bool,
    /// The overdue probe kinds: `connection`, `capacity`, `accounts`.
    pub stale_probes: Vec<&'static str>,
}

/// What turning instances into views needs to know about other objects.
pub struct Lookup {
    tags: HashMap<String, TagRef>,
    credential_ids: HashMap<String, i64>,
    retention: SignedDuration,
    /// When the request is answered: what staleness is judged at.
    now: Timestamp,
}

impl Lookup {
    /// `credentials`: (Secret name, id), as `Caches::credentials` gives them.
    pub fn new(tags: &[Arc<DbTag>], credentials: Vec<(String, i64)>, retention: SignedDuration) -> Self {
        Lookup {
            tags: tags.iter().map(|t| (t.name_any(), tag_ref(t))).collect(),
            credential_ids: credentials.into_iter().collect(),
            retention,
            now: Timestamp::now(),
        }
    }

    pub fn tag(&self, name: &str) -> TagRef {
        self.tags.get(name).cloned().unwrap_or_else(|| TagRef {
            id: None,
            name: name.to_string(),
            display_name: name.to_string(),
            category: String::new(),
            color: None,
        })
    }

    pub fn instance(&self, instance: &DbInstance) -> Option<InstanceView> {
        let id = id_of(&instance.metadata)?;
        let spec = &instance.spec;
        let status = instance.status.as_ref();
        let connection = status.and_then(|s| s.connection.as_ref());
        let stale_probes: Vec<&'static str> = freshness::overdue(instance, self.now)
            .into_iter()
            .map(ProbeKind::as_str)
            .collect();
        Some(InstanceView {
            id,
            name: instance.name_any(),
            db_type: spec.db_type.as_str(),
            host: spec.host.clone(),
            port: spec.port,
            database_name: spec.database_name.clone(),
            credential_id: spec
                .credentials_secret_ref
                .as_ref()
                .and_then(|r| self.credential_ids.get(&r.name).copied()),
            description: spec.description.clone(),
            is_active: spec.is_active,
            tags: spec.tags.iter().map(|t| self.tag(t)).collect(),
            status: instance.phase().name(),
            connection: ConnectionView {
                status: instance.connection_state().as_str(),
                last_checked_at: connection
                    .and_then(|c| c.last_checked_at.as_ref())
                    .map(|t| format_time(t.0)),
                latency_ms: connection.and_then(|c| c.latency_ms),
                version: connection.and_then(|c| c.server_version.clone()),
                message: connection.and_then(|c| c.message.clone()),
            },
            capacity: status.and_then(|s| s.capacity.as_ref()).map(|c| CapacityView {
                total_size_bytes: c.total_size_bytes,
                database_count: c.database_count,
                collected_at: format_time(c.collected_at.0),
            }),
            accounts: status.and_then(|s| s.accounts.as_ref()).map(|a| AccountsView {
                count: a.count,
                synced_at: format_time(a.synced_at.0),
            }),
            deleted_at: instance.recycled_at().map(format_time),
            retained_until: instance.retained_until(self.retention).map(format_time),
            created_at: instance.metadata.creation_timestamp.as_ref().map(|t| format_time(t.0)),
            updated_at: updated_at(&instance.metadata).map(format_time),
            stale: !stale_probes.is_empty(),
            stale_probes,
        })
    }
}

pub fn tag_ref(tag: &DbTag) -> TagRef {
    TagRef {
        id: id_of(&tag.metadata),
        name: tag.name_any(),
        display_name: tag.spec.display_name.clone(),
        category: tag.spec.category.clone(),
        color: tag.spec.color.clone(),
    }
}

/// `instance_count` is counted from the cache rather than read from the
/// tag's status, so it is current right after an assignment.
pub fn tag_view(tag: &DbTag, instance_count: usize) -> Option<TagView> {
    Some(TagView {
        id: id_of(&tag.metadata)?,
        name: tag.name_any(),
        display_name: tag.spec.display_name.clone(),
        category: tag.spec.category.clone(),
        color: tag.spec.color.clone(),
        is_active: tag.spec.is_active,
        instance_count,
        created_at: tag.metadata.creation_timestamp.as_ref().map(|t| format_time(t.0)),
        updated_at: updated_at(&tag.metadata).map(format_time),
    })
}

/// When a user last changed the object (spec, labels, annotations), from
/// the managedFields the cache keeps (`store` drops all but the latest
/// non-status one).
pub fn updated_at(meta: &ObjectMeta) -> Option<Timestamp> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.time.as_ref().map(|t| t.0))
        .max()
}
