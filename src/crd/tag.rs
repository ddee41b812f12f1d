//! `DbTag`: a label for grouping instances (SPEC §1.2). Its
//! `metadata.name` is the tag's code.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::schema::{COLOR, MAX_COLOR_LEN, MAX_TAG_TEXT_LEN};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dbfleet.io",
    version = "v1alpha1",
    kind = "DbTag",
    plural = "dbtags",
    shortname = "dbtag",
    category = "dbfleet",
    namespaced,
    status = "DbTagStatus",
    derive = "PartialEq",
    doc = "A label for grouping DbInstances; its name is the tag's code.",
    validation = Rule::new("size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name (the tag code) must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"),
    printcolumn(name = "ID", type_ = "string", json_path = ".metadata.labels.dbfleet\\.io/id"),
    printcolumn(name = "Display Name", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "Category", type_ = "string", json_path = ".spec.category"),
    printcolumn(name = "Color", type_ = "string", json_path = ".spec.color"),
    printcolumn(name = "Active", type_ = "boolean", json_path = ".spec.isActive"),
    printcolumn(name = "Instances", type_ = "integer", json_path = ".status.instanceCount"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Used By",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"InUse\")].message",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
/// How the tag is shown and grouped; its code is `metadata.name`.
pub struct DbTagSpec {
    /// The name people see, 1 to 64 characters.
    #[schemars(length(min = 1, max = MAX_TAG_TEXT_LEN))]
    pub display_name: String,
    /// The group the tag belongs to (e.g. `environment`, `team`), 1 to 64
    /// characters.
    #[schemars(length(min = 1, max = MAX_TAG_TEXT_LEN))]
    pub category: String,
    /// A CSS colour name (`teal`) or `#rrggbb`, for user interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_COLOR_LEN), regex(pattern = COLOR))]
    pub color: Option<String>,
    /// Whether the tag is offered for new assignments. Default: true.
    #[serde(default = "super::default_true")]
    pub is_active: bool,
}

/// What dbfleet observed; written only by dbfleet, through the status
/// subresource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DbTagStatus {
    /// How many DbInstances reference this tag. Default: 0.
    #[serde(default)]
    pub instance_count: u32,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `InUse`: whether instances reference the tag, which keeps the
    /// `dbfleet.io/in-use-protection` finalizer on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
