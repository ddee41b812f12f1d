//! A tag's body and its rules (SPEC §1.2, §3.6, with the CRD's limits from
//! `crd::schema`), the list filter, and the arithmetic of tag lists: pure.

use std::collections::HashMap;
use std::sync::Arc;

use kube::ResourceExt;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::api::envelope::{ApiError, ApiResult, FieldError};
use crate::api::input::Query;
use crate::crd::schema::{MAX_LABEL_LEN, MAX_TAG_TEXT_LEN, is_color, is_dns1123_label};
use crate::crd::{DbInstance, DbTag, DbTagSpec};
use crate::ids::id_of;

#[derive(Deserialize, Clone, Debug, ToSchema)]
pub struct TagInput {
    /// The tag code (DbTag name): a DNS-1123 label. Cannot change on update.
    pub name: String,
    pub display_name: String,
    pub category: String,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub is_active: Option<bool>,
}

pub fn validate_tag(input: &TagInput) -> Result<DbTagSpec, Vec<FieldError>> {
    let mut errors = Vec::new();
    if !is_dns1123_label(&input.name) {
        errors.push(FieldError::new(
            "name",
            format!(
                "name must be a DNS-1123 label: at most {MAX_LABEL_LEN} lowercase letters, digits and '-', starting and ending with a letter or digit"
            ),
        ));
    }
    let display_name = input.display_name.trim();
    if display_name.is_empty() || display_name.chars().count() > MAX_TAG_TEXT_LEN {
        errors.push(FieldError::new(
            "display_name",
            format!("display_name must be 1 to {MAX_TAG_TEXT_LEN} characters"),
        ));
    }
    let category = input.category.trim();
    if category.is_empty() || category.chars().count() > MAX_TAG_TEXT_LEN {
        errors.push(FieldError::new(
            "category",
            format!("category must be 1 to {MAX_TAG_TEXT_LEN} characters"),
        ));
    }
    let color = input.color.as_deref().map(str::trim).filter(|c| !c.is_empty());
    if color.is_some_and(|c| !is_color(c)) {
        errors.push(FieldError::new("color", "color must be a CSS colour name or #rrggbb"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(DbTagSpec {
        display_name: display_name.into(),
        category: category.into(),
        color: color.map(str::to_owned),
        is_active: input.is_active.unwrap_or(true),
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct TagFilter {
    pub search: Option<String>,
    pub category: Option<String>,
    pub active: Option<bool>,
}

impl TagFilter {
    pub fn from_query(query: &Query) -> ApiResult<Self> {
        let active = match query.get("status").map(str::to_ascii_lowercase).as_deref() {
            None | Some("all") => None,
            Some("active") => Some(true),
            Some("inactive") => Some(false),
            Some(other) => {
                return Err(ApiError::field(
                    "status",
                    format!("status must be active, inactive or all, not {other:?}"),
                ));
            }
        };
        Ok(TagFilter {
            search: query.get("search").map(str::to_lowercase),
            category: query.get("category").map(str::to_owned),
            active,
        })
    }

    pub fn matches(&self, tag: &DbTag) -> bool {
        self.active.is_none_or(|a| a == tag.spec.is_active)
            && self.category.as_ref().is_none_or(|c| *c == tag.spec.category)
            && self.search.as_ref().is_none_or(|s| {
                tag.name_any().to_lowercase().contains(s) || tag.spec.display_name.to_lowercase().contains(s)
            })
    }
}

/// How many instances (recycled ones included: they still hold the tag)
/// reference each tag name.
pub fn usage(instances: &[Arc<DbInstance>]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for instance in instances {
        for tag in &instance.spec.tags {
            *counts.entry(tag.clone()).or_default() += 1;
        }
    }
    counts
}

/// `existing` plus `added` (kept in order, no repeats) and how many pairs
/// are new.
pub fn with_tags(existing: &[String], added: &[String]) -> (Vec<String>, usize) {
    let mut tags = existing.to_vec();
    let mut new_pairs = 0;
    for tag in added {
        if !tags.contains(tag) {
            tags.push(tag.clone());
            new_pairs += 1;
        }
    }
    (tags, new_pairs)
}

/// `existing` minus `removed` and how many pairs went.
pub fn without_tags(existing: &[String], removed: &[String]) -> (Vec<String>, usize) {
    let kept: Vec<String> = existing.iter().filter(|t| !removed.contains(t)).cloned().collect();
    let gone = existing.len() - kept.len();
    (kept, gone)
}

/// The instances (recycled ones included: they still hold the tag) that
/// reference `name`, as the `TAG_IN_USE` answer lists them.
pub fn users_of(instances: &[Arc<DbInstance>], name: &str) -> Vec<Value> {
    instances
        .iter()
        .filter(|i| i.spec.tags.iter().any(|t| t == name))
        .map(|i| json!({"id": id_of(&i.metadata), "name": i.name_any(), "recycled": i.is_recycled()}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::envelope::Code;

    fn input(name: &str, color: Option<&str>) -> TagInput {
        TagInput {
            name: name.into(),
            display_name: "Production".into(),
            category: "env".into(),
            color: color.map(str::to_owned),
            is_active: None,
        }
    }

    #[test]
    fn tag_codes_and_colours_are_checked() {
        assert!(validate_tag(&input("prod", Some("#00ff00"))).is_ok());
        assert!(validate_tag(&input("prod", Some("teal"))).is_ok());
        let errors = validate_tag(&input("Prod!", Some("#0f0"))).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "color"]);
        assert!(
            validate_tag(&TagInput {
                display_name: " ".into(),
                ..input("a", None)
            })
            .is_err()
        );
    }

    #[test]
    fn assigning_counts_only_new_pairs() {
        let existing = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            with_tags(&existing, &["b".into(), "c".into()]),
            (vec!["a".into(), "b".into(), "c".into()], 1)
        );
        assert_eq!(with_tags(&existing, &["a".into()]).1, 0);
    }

    #[test]
    fn removing_counts_only_pairs_that_existed() {
        let existing = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            without_tags(&existing, &["b".into(), "z".into()]),
            (vec!["a".into()], 1)
        );
        assert_eq!(without_tags(&existing, &["z".into()]).1, 0);
    }

    #[test]
    fn status_filter_accepts_all_and_rejects_nonsense() {
        assert_eq!(TagFilter::from_query(&Query::parse("status=all")).unwrap().active, None);
        assert_eq!(
            TagFilter::from_query(&Query::parse("status=inactive")).unwrap().active,
            Some(false)
        );
        assert_eq!(
            TagFilter::from_query(&Query::parse("status=maybe")).unwrap_err().code,
            Code::ValidationError
        );
    }
}
