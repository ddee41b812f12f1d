//! Instances for the pure parts' tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;
use serde_json::{Value, json};

use crate::api::instance_index::InstanceIndex;
use crate::crd::DbInstance;
use crate::crd::keys::{ID_LABEL, RECYCLED_LABEL};

pub fn instance(name: &str, id: i64, spec: Value) -> Arc<DbInstance> {
    let mut i = DbInstance::new(name, serde_json::from_value(spec).unwrap());
    i.metadata.labels = Some(BTreeMap::from([(ID_LABEL.to_string(), id.to_string())]));
    Arc::new(i)
}

pub fn fleet() -> Vec<Arc<DbInstance>> {
    let mut recycled = (*instance(
        "old",
        4,
        json!({"dbType": "mysql", "host": "old.example", "port": 3306}),
    ))
    .clone();
    recycled.labels_mut().insert(RECYCLED_LABEL.into(), "true".into());
    vec![
        instance(
            "orders",
            1,
            json!({"dbType": "postgresql", "host": "pg1.example", "port": 5432, "tags": ["prod"]}),
        ),
        instance(
            "billing",
            2,
            json!({"dbType": "mysql", "host": "my1.example", "port": 3306, "description": "Invoices DB", "tags": ["prod", "eu"]}),
        ),
        instance(
            "scratch",
            3,
            json!({"dbType": "postgresql", "host": "pg2.example", "port": 5433, "isActive": false}),
        ),
        Arc::new(recycled),
        // Created with kubectl, not yet given an id: not addressable.
        Arc::new(DbInstance::new(
            "new",
            serde_json::from_value(json!({"dbType": "mysql", "host": "n", "port": 1})).unwrap(),
        )),
    ]
}

pub fn indexed(instances: Vec<Arc<DbInstance>>) -> InstanceIndex {
    let mut index = InstanceIndex::default();
    index.rebuild(instances);
    index
}
