//! A site's end-of-life dates (`versions::Overrides`), read from the
//! ConfigMap `--version-lifecycle-configmap` in each namespace the
//! controller serves: one GET of that name, cached for
//! `LifecycleSettings::refresh`, so the controller needs only `get` on
//! that one ConfigMap and no watch (the chart grants exactly that).
//!
//! A ConfigMap that does not parse leaves the built-in table in force and
//! is reported once per content (a warning log, and a Warning Event on the
//! ConfigMap), not on every read.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::{Api, Client, Resource};
use tokio::sync::Mutex;
use tracing::warn;

use crate::versions::{LifecycleSettings, LifecycleTable, Overrides};

/// The table in force in one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableInForce {
    pub table: Arc<LifecycleTable>,
    /// Why the site's ConfigMap is not applied, if it exists and is bad.
    pub problem: Option<String>,
}

/// The table `configmap` makes (`None`: there is none): the built-in one
/// with the site's dates, or, when they do not parse, the built-in one and
/// why.
pub fn table_from(configmap: Option<&ConfigMap>) -> TableInForce {
    let built_in = LifecycleTable::built_in();
    let Some(configmap) = configmap else {
        return TableInForce {
            table: Arc::new(built_in.clone()),
            problem: None,
        };
    };
    let data = configmap.data.clone().unwrap_or_default();
    let binary = configmap.binary_data.as_ref().is_some_and(|b| !b.is_empty());
    match Overrides::from_data(&data) {
        Ok(_) if binary => TableInForce {
            table: Arc::new(built_in.clone()),
            problem: Some("binaryData is not read: put each release line under data".into()),
        },
        Ok(overrides) => TableInForce {
            table: Arc::new(built_in.with_overrides(&overrides)),
            problem: None,
        },
        Err(problem) => TableInForce {
            table: Arc::new(built_in.clone()),
            problem: Some(problem),
        },
    }
}

/// A problem seen for the first time, to announce.
#[derive(Clone, Debug)]
pub struct NewProblem {
    /// The ConfigMap, for a Warning Event.
    pub object: ObjectReference,
    pub message: String,
}

struct Read {
    at: Instant,
    resource_version: Option<String>,
    in_force: TableInForce,
}

/// The table in force per namespace, read at most once per refresh.
pub struct LifecycleOverrides {
    client: Client,
    pub settings: LifecycleSettings,
    reads: Mutex<HashMap<String, Read>>,
}

impl LifecycleOverrides {
    pub fn new(client: Client, settings: LifecycleSettings) -> Self {
        LifecycleOverrides {
            client,
            settings,
            reads: Mutex::new(HashMap::new()),
        }
    }

    /// The table in force in `namespace`, and a problem to announce if this
    /// read found a new one. Reconciles that ask meanwhile wait for the one
    /// read instead of each making their own.
    pub async fn table(&self, namespace: &str) -> (Arc<LifecycleTable>, Option<NewProblem>) {
        let mut reads = self.reads.lock().await;
        if let Some(read) = reads.get(namespace)
            && read.at.elapsed() < self.settings.refresh
        {
            return (read.in_force.table.clone(), None);
        }
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let previous = reads.remove(namespace);
        let (read, new_problem) = match api.get_opt(&self.settings.configmap).await {
            Ok(found) => {
                let version = found.as_ref().and_then(|c| c.metadata.resource_version.clone());
                let in_force = match &previous {
                    // Unchanged: no need to parse again, nor to warn again.
                    Some(p) if version.is_some() && p.resource_version == version => p.in_force.clone(),
                    _ => table_from(found.as_ref()),
                };
                let repeated = previous
                    .as_ref()
                    .is_some_and(|p| p.resource_version == version && p.in_force.problem == in_force.problem);
                let new_problem = match (&in_force.problem, found.as_ref()) {
                    (Some(message), Some(configmap)) if !repeated => Some(NewProblem {
                        object: configmap.object_ref(&()),
                        message: format!(
                            "ConfigMap {namespace}/{} is not applied, dbfleet's own end-of-life table stays in \
                             force: {message}",
                            self.settings.configmap
                        ),
                    }),
                    _ => None,
                };
                (
                    Read {
                        at: Instant::now(),
                        resource_version: version,
                        in_force,
                    },
                    new_problem,
                )
            }
            Err(error) => {
                // Keep what was read last (or the built-in table), look
                // again after the refresh interval.
                let first = previous.is_none();
                let in_force = previous.map_or_else(|| table_from(None), |p| p.in_force);
                if first {
                    warn!(%namespace, configmap = %self.settings.configmap, %error,
                        "cannot read the version lifecycle ConfigMap; using the table in force");
                }
                (
                    Read {
                        at: Instant::now(),
                        resource_version: None,
                        in_force,
                    },
                    None,
                )
            }
        };
        if let Some(problem) = &new_problem {
            warn!(%namespace, configmap = %self.settings.configmap, problem = %problem.message,
                "version lifecycle ConfigMap refused");
        }
        let table = read.in_force.table.clone();
        reads.insert(namespace.to_string(), read);
        (table, new_problem)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::versions::{Origin, Product, Release};

    fn configmap(data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            data: Some(data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn no_configmap_means_the_built_in_table() {
        let in_force = table_from(None);
        assert_eq!(*in_force.table, *LifecycleTable::built_in());
        assert_eq!(in_force.problem, None);
    }

    #[test]
    fn a_good_configmap_is_merged_over_the_built_in_table() {
        let in_force = table_from(Some(&configmap(&[("postgresql-15", "2020-01-01")])));
        assert_eq!(in_force.problem, None);
        let date = in_force.table.end_of_life(&Release::new(Product::Postgresql, "15"));
        assert_eq!(date, Some(("2020-01-01".parse().unwrap(), Origin::Site)));
    }

    #[test]
    fn a_bad_configmap_leaves_the_built_in_table_and_says_why() {
        let in_force = table_from(Some(&configmap(&[("postgresql-15", "2020-01-01"), ("pg-16", "soon")])));
        assert_eq!(*in_force.table, *LifecycleTable::built_in(), "nothing half-applied");
        assert!(in_force.problem.unwrap().contains("\"pg-16\" is not a release line"));
        let mut binary = configmap(&[]);
        binary.binary_data = Some(BTreeMap::from([(
            "postgresql-15".to_string(),
            k8s_openapi::ByteString(b"2020-01-01".to_vec()),
        )]));
        assert!(table_from(Some(&binary)).problem.unwrap().contains("binaryData"));
    }
}
