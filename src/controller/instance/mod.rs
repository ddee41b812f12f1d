//! The DbInstance controller (SPEC §2.1, §2.4): ids, credentials, tags, the
//! probe schedule, the recycle bin, and one status write per reconcile.
//!
//! A reconcile is a pure decision and a thin executor: [`decide`] says what
//! kind of reconcile this is and which probes are due, the executor here
//! does the I/O (ids, Secrets, probes, the DbInventory, the status), and
//! [`fold`] says what the results make of the status and which Events
//! follow. The decisions are tested on their own, without an API server.

mod decide;
mod first_tests;
mod fold;
mod history;
mod inventory;
#[cfg(test)]
mod requests_test;

use std::collections::HashMap;
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Context, Error, assign_id, instances_where, measured};
use crate::crd::keys::RECYCLED_AT_ANNOTATION;
use crate::crd::{DbInstance, DbTag};
use crate::ids::{self, IdKind};
use crate::observe::freshness::{self, ProbeKind};
use crate::observe::lifecycle_overrides::LifecycleOverrides;
use crate::observe::{self, ProbeRun, Requests, credentials, plan, status};
use history::record_history;
use inventory::{Sections, record_inventory};

const CONTROLLER: &str = "dbinstance";

/// The instance reconciler's context: what every controller shares, and
/// what this one keeps to itself.
struct Reconciler {
    shared: Arc<Context>,
    /// What it remembers per instance (by uid): the probe schedule, the
    /// newest volatile status values, what the DbInventory holds.
    memory: Mutex<HashMap<String, Memory>>,
    /// Which instances had their first run in this process.
    first_tests: first_tests::FirstTests,
    /// The end-of-life table in force per namespace (the site's ConfigMap
    /// over the built-in one).
    lifecycle: LifecycleOverrides,
}

impl Deref for Reconciler {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.shared
    }
}

impl Reconciler {
    fn memory_of(&self, uid: &str) -> Memory {
        self.memory
            .lock()
            .expect("memory lock")
            .get(uid)
            .cloned()
            .unwrap_or_default()
    }

    fn remember(&self, uid: String, memory: Memory) {
        self.memory.lock().expect("memory lock").insert(uid, memory);
    }

    fn forget(&self, uid: &str) {
        self.memory.lock().expect("memory lock").remove(uid);
        self.first_tests.forget(uid);
    }
}

/// What makes an instance reconcile, besides its schedule.
pub struct Triggers<I, S, T, W, D> {
    /// The instance itself changed.
    pub instances: I,
    /// A Secret changed: the instances using it.
    pub secrets: S,
    /// A DbTag changed: the instances naming it.
    pub tags: T,
    /// Deletions forwarded by the watches (a deleted Secret).
    pub woken: W,
    /// Uids of deleted instances, to forget.
    pub deleted: D,
}

pub fn controller<I, S, T, W, D>(
    shared: Arc<Context>,
    triggers: Triggers<I, S, T, W, D>,
    stop: CancellationToken,
) -> impl Future<Output = ()>
where
    I: Stream<Item = Arc<DbInstance>> + Send + 'static,
    S: Stream<Item = Arc<Secret>> + Send + 'static,
    T: Stream<Item = Arc<DbTag>> + Send + 'static,
    W: Stream<Item = ObjectRef<DbInstance>> + Send + 'static,
    D: Stream<Item = String> + Send + 'static,
{
    let lifecycle = LifecycleOverrides::new(shared.client.clone(), shared.config.version_lifecycle.clone());
    let ctx = Arc::new(Reconciler {
        shared,
        memory: Mutex::new(HashMap::new()),
        first_tests: first_tests::FirstTests::default(),
        lifecycle,
    });
    tokio::spawn(wake_held_collections(ctx.clone(), stop.clone()));
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let forgetting = (ctx.clone(), seen.clone());
    tokio::spawn(triggers.deleted.for_each(move |uid| {
        forgetting.0.forget(&uid);
        forgetting.1.lock().expect("seen lock").remove(&uid);
        async {}
    }));
    let instances = changes_that_matter(triggers.instances, seen);
    let by_secret = ctx.instances.clone();
    let by_tag = ctx.instances.clone();
    let config = kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency);
    Controller::for_shared_stream(instances, ctx.instances.clone())
        .with_config(config)
        .watches_shared_stream(triggers.secrets, move |secret: Arc<Secret>| {
            using_secret(&by_secret, &secret)
        })
        .watches_shared_stream(triggers.tags, move |tag: Arc<DbTag>| {
            let name = tag.name_any();
            instances_where(&by_tag, tag.namespace().as_deref(), |i| i.spec.tags.contains(&name))
        })
        .reconcile_on(triggers.woken)
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(
            reconcile,
            |instance, error, ctx: Arc<Reconciler>| super::error_policy(instance, error, ctx.shared.clone()),
            ctx,
        )
        .for_each(|_| async {})
}

/// The instance events a reconcile has to see: a new instance, or a change
/// of what it decides from (generation, labels, annotations, finalizers,
/// deletion). Status-only events — this controller's own writes coming
/// back — are dropped: each would queue a reconcile that finds nothing to
/// do. `seen` holds the last fingerprint per uid.
fn changes_that_matter<S>(
    instances: S,
    seen: Arc<Mutex<HashMap<String, u64>>>,
) -> impl Stream<Item = Arc<DbInstance>> + Send + 'static
where
    S: Stream<Item = Arc<DbInstance>> + Send + 'static,
{
    instances.filter(move |instance| {
        let now = what_a_reconcile_reads(instance);
        let before = seen.lock().expect("seen lock").insert(uid_of(instance), now);
        std::future::ready(before != Some(now))
    })
}

/// A fingerprint of everything but the status and the bookkeeping fields.
fn what_a_reconcile_reads(instance: &DbInstance) -> u64 {
    use std::hash::{Hash, Hasher};
    let meta = &instance.metadata;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    hasher.finish()
}

/// How often the held collections look whether the first tests are done.
const HELD_RELEASE_CHECK: Duration = Duration::from_millis(500);

/// Wakes the instances whose collections waited for the first tests, once
/// they are done: one reconcile each, instead of one a second each while
/// the fleet's first tests run.
async fn wake_held_collections(ctx: Arc<Reconciler>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(HELD_RELEASE_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for instance in ctx.first_tests.release(&ctx.instances, |uid| ctx.leases.owns(uid)) {
            let _ = ctx.wake_instances.send(instance);
        }
    }
}

fn uid_of(instance: &DbInstance) -> String {
    instance.metadata.uid.clone().unwrap_or_else(|| instance.name_any())
}

/// Reconciles every instance of `shard` now: this replica just took it
/// over, and their last reconcile here did nothing.
pub(super) fn wake_shard(ctx: &Context, shard: u32) {
    let shards = ctx.leases.shards();
    for instance in ctx.instances.state() {
        if super::leases::shard_of(&uid_of(&instance), shards) == shard {
            let _ = ctx.wake_instances.send(ObjectRef::from(instance.as_ref()));
        }
    }
}

/// The instances whose credentials or CA live in `secret`.
pub fn using_secret(store: &Store<DbInstance>, secret: &Secret) -> Vec<ObjectRef<DbInstance>> {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    instances_where(store, secret.metadata.namespace.as_deref(), |i| {
        credentials::referenced_secrets(&i.spec).contains(&name)
    })
}

async fn reconcile(instance: Arc<DbInstance>, ctx: Arc<Reconciler>) -> Result<Action, Error> {
    // Another replica holds this instance's shard (`wake_shard` brings it
    // back here if this one takes the shard over). Ids are the leader's
    // job whoever holds the shard: one allocator, no compare-and-swap races
    // between replicas.
    let owned = ctx.leases.owns(&uid_of(&instance));
    if !decide::concerns_this_replica(&instance, owned, ctx.leases.leads()) {
        return Ok(Action::await_change());
    }
    let result = measured(
        &ctx,
        CONTROLLER,
        instance.as_ref(),
        reconcile_instance(&instance, &ctx, owned),
    )
    .await;
    if result.is_err() {
        // Retried with backoff: a failing instance must not hold back
        // everyone's collections meanwhile.
        ctx.first_tests.tested(&uid_of(&instance));
    }
    result
}

/// The executor: gathers the facts, carries out what `decide` says, and
/// writes what `fold` makes of the results.
async fn reconcile_instance(instance: &DbInstance, ctx: &Reconciler, owned: bool) -> Result<Action, Error> {
    let namespace = instance.namespace().ok_or(Error::NotNamespaced)?;
    let name = instance.name_any();
    let api: Api<DbInstance> = Api::namespaced(ctx.client.clone(), &namespace);
    let uid = uid_of(instance);
    let mut memory = ctx.memory_of(&uid);
    let now = SystemTime::now();

    let facts = |instance| decide::Facts {
        instance,
        owned,
        leads: ctx.leases.leads(),
        written_version: memory.written_version.as_deref(),
        now,
        retention: ctx.config.retention,
    };
    let mut step = decide::step(&facts(instance));
    let labelled;
    let instance = if step == decide::Step::AssignId {
        match assign_id(ctx, instance, IdKind::Instance).await? {
            Some(stored) => {
                labelled = stored;
                step = decide::step(&facts(&labelled));
                &labelled
            }
            // Changed meanwhile: the watch brings the new version.
            None => return Ok(Action::await_change()),
        }
    } else {
        instance
    };
    match step {
        decide::Step::AwaitChange | decide::Step::AssignId => return Ok(Action::await_change()),
        decide::Step::CacheBehind => return Ok(Action::requeue(decide::CACHE_BEHIND_RECHECK)),
        decide::Step::Probe => warn_on_shared_id(ctx, instance),
        decide::Step::StampRecycledAt => {
            warn_on_shared_id(ctx, instance);
            let stamp = serde_json::json!({"metadata": {"annotations": {RECYCLED_AT_ANNOTATION: Timestamp::now().to_string()}}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&stamp)).await?;
            return Ok(Action::await_change());
        }
        decide::Step::DeleteForGood => {
            warn_on_shared_id(ctx, instance);
            info!(instance = %name, "retention ended; deleting for good");
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            return Ok(Action::await_change());
        }
        decide::Step::Settle { status, requeue } => {
            warn_on_shared_id(ctx, instance);
            if instance.status.as_ref() != Some(&*status) {
                observe::write_status(&api, &name, &status).await?;
            }
            ctx.metrics.instance(&namespace, &name, None, None, None);
            ctx.metrics.replication_lag(&namespace, &name, None);
            return Ok(requeue.map_or_else(Action::await_change, Action::requeue));
        }
    }

    let mut previous = instance.status.clone().unwrap_or_default();
    let missing_tags = observe::missing_tags(instance, |tag| {
        ctx.tags.get(&ObjectRef::new(tag).within(&namespace)).is_some()
    });
    let requests = Requests::from_annotations(instance.metadata.annotations.as_ref());
    let resolved = resolve_credentials(ctx, instance, &namespace).await?;
    let settings = &ctx.config.probes;
    let probes = decide::probes(decide::ProbeFacts {
        instance,
        uid: &uid,
        credentials: resolved.as_ref(),
        schedule: memory.schedule.clone(),
        requests: &requests,
        now,
        first_tests_waiting: resolved.is_ok()
            && ctx.first_tests.waiting(&ctx.instances, |uid| ctx.leases.owns(uid)) > 0,
    });
    let (run, requeue, sections) = match probes {
        decide::Probes::NoLogin { requeue } => {
            // Nothing to test: it holds no one's collections back.
            ctx.first_tests.tested(&uid);
            let requeue = requeue.map_or_else(Action::await_change, Action::requeue);
            (None, requeue, Sections::default())
        }
        decide::Probes::Due(due) => {
            let run = match resolved.as_ref() {
                Ok(credentials) if due.ops.any() => {
                    Some(run_probes(ctx, instance, credentials, &due, &mut memory, now).await)
                }
                _ => None,
            };
            ctx.first_tests.tested(&uid);
            if due.held.any() {
                ctx.first_tests.hold(ObjectRef::from(instance));
            }
            let sections = match &run {
                Some(run) => record_inventory(ctx, instance, &previous, run, &mut memory).await?,
                None => Sections::default(),
            };
            if let Some(run) = &run {
                let recorded = record_history(ctx, instance, run, &sections.account_entries, &mut memory).await?;
                if let Some(growth) = recorded.growth {
                    previous.capacity_growth = Some(growth);
                }
            }
            let fleet_size = ctx.instances.len();
            let (schedule, requeue) = due.next(run.as_ref().map(decide::Ran::of), fleet_size, SystemTime::now());
            memory.schedule = Some(schedule);
            (run, Action::requeue(requeue), sections)
        }
    };

    // The forecast follows the newest fit and the limit in force now.
    observe::growth::apply(
        &mut previous.capacity_growth,
        &mut previous.conditions,
        instance.spec.capacity.as_ref().and_then(|c| c.limit_bytes),
        ctx.config.history.full_soon,
        status::Stamp {
            now,
            generation: instance.metadata.generation,
        },
    );
    let table = lifecycle_table(ctx, &namespace).await;
    let observation = status::Observation {
        now: run.as_ref().map_or(now, |r| r.at),
        generation: instance.metadata.generation,
        credentials: resolved.as_ref().map(|_| ()),
        missing_tags: &missing_tags,
        run: run.as_ref(),
        requests: &requests,
        capacity: sections.capacity.as_ref(),
        accounts: sections.accounts.as_ref(),
        account_changes: sections
            .account_changes
            .or_else(|| previous.accounts.as_ref().map(|a| a.changes))
            .unwrap_or_default(),
        findings: sections.findings.as_ref().map(|f| &f.counts),
        inventory: memory.inventory_written.then_some(name.as_str()),
        judging: Some(status::Judging {
            db_type: instance.spec.db_type,
            table: &table,
            settings: &ctx.lifecycle.settings,
        }),
    };
    let settled = fold::settle(
        instance.status.as_ref(),
        &previous,
        &observation,
        &mut memory.volatile,
        settings.report_interval,
    );
    if settled.write {
        let written = observe::write_status(&api, &name, &settled.status).await?;
        memory.written_version = written.metadata.resource_version;
        ctx.metrics.status_written();
    }
    ctx.remember(uid, memory);
    let events = fold::events(&previous, &settled.status, run.as_ref());
    ctx.events.publish(instance.object_ref(&()), events);
    ctx.metrics.instance(
        &namespace,
        &name,
        status::is_connected(Some(&settled.status)),
        settled.status.capacity.as_ref().map(|c| c.total_size_bytes),
        settled.status.accounts.as_ref().map(|a| a.count),
    );
    for kind in ProbeKind::ALL {
        if let Some(at) = freshness::last_success(&settled.status, kind) {
            ctx.metrics.last_success(&namespace, &name, kind, at.as_second());
        }
    }
    record_judgement_metrics(ctx, &namespace, &name, &settled.status);
    ctx.metrics
        .instance_findings(&namespace, &name, settled.status.findings.as_ref());
    ctx.metrics
        .capacity_growth(&namespace, &name, settled.status.capacity_growth.as_ref());
    ctx.metrics.instance_accounts_and_release(
        &namespace,
        &name,
        settled.status.accounts.as_ref().map(|a| a.superuser_count),
        settled
            .status
            .release
            .as_ref()
            .map(|r| (instance.spec.db_type.as_str(), r.line.as_str())),
    );
    Ok(requeue)
}

/// The end-of-life table in force in `namespace`; a site ConfigMap found
/// bad for the first time gets a Warning Event (the log has it too).
async fn lifecycle_table(ctx: &Reconciler, namespace: &str) -> Arc<crate::versions::LifecycleTable> {
    let (table, problem) = ctx.lifecycle.table(namespace).await;
    if let Some(problem) = problem {
        let event = Event {
            type_: EventType::Warning,
            reason: "VersionLifecycleRefused".into(),
            note: Some(crate::crd::bounds::message(&problem.message)),
            action: "ReadVersionLifecycle".into(),
            secondary: None,
        };
        ctx.events.publish(problem.object, vec![event]);
    }
    table
}

/// The `VersionSupported` and `LoginPrivileges` states as gauges.
fn record_judgement_metrics(ctx: &Context, namespace: &str, name: &str, status: &crate::crd::DbInstanceStatus) {
    let reason = |type_: &str| status::find(&status.conditions, type_).map(|c| c.reason.as_str());
    let version = reason(crate::versions::VERSION_SUPPORTED).map(crate::versions::state_of);
    let end_of_life = status
        .release
        .as_ref()
        .and_then(|r| r.end_of_life.as_deref())
        .and_then(|d| d.parse::<k8s_openapi::jiff::civil::Date>().ok())
        .and_then(|d| d.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp().as_second());
    let login = reason(observe::login_check::LOGIN_PRIVILEGES).map(observe::login_check::state_of);
    ctx.metrics
        .instance_judgements(namespace, name, version, end_of_life, login);
}

/// Runs the due probes on a slot of the process-wide probe budget, and
/// keeps the table counts a later capacity run may reuse.
async fn run_probes(
    ctx: &Context,
    instance: &DbInstance,
    credentials: &credentials::Credentials,
    due: &decide::DueProbes,
    memory: &mut Memory,
    now: SystemTime,
) -> ProbeRun {
    let settings = &ctx.config.probes;
    // Waits for a slot in the process-wide probe budget; the reconcile's
    // own concurrency bound keeps the queue short.
    let waiting = Instant::now();
    let permit = settings.budget.acquire().await;
    ctx.metrics.waited_for_probe_slot(waiting.elapsed());
    let known = observe::TableCounts::reusable(memory.tables.as_ref(), now, &due.inputs);
    let target = observe::target(instance, credentials, settings);
    let run = observe::run_probes(&target, due.ops, known, permit).await;
    if let Some(Ok(capacity)) = &run.capacity {
        let reused = known.is_some();
        memory.tables = Some(observe::TableCounts::after(
            memory.tables.as_ref(),
            reused,
            &due.inputs,
            run.at,
            capacity,
        ));
    }
    record_probe_metrics(ctx, instance, &run);
    run
}

/// What the controller remembers of one instance between reconciles; lost
/// on restart, and rebuilt from the status and the DbInventory.
#[derive(Clone, Debug, Default)]
struct Memory {
    pub schedule: Option<plan::Schedule>,
    pub volatile: status::Volatile,
    /// The stored DbInventory was read (once per process) to learn what was
    /// written before.
    pub inventory_seen: bool,
    pub inventory_written: bool,
    pub capacity: Option<observe::inventory::WrittenCapacity>,
    pub accounts: Option<observe::inventory::WrittenAccounts>,
    /// The resourceVersion of this controller's last status write.
    pub written_version: Option<String>,
    /// Table counts to reuse while a database's size stays the same.
    pub tables: Option<observe::TableCounts>,
    /// The stored DbHistory was read (once per process) to learn when the
    /// newest capacity sample was taken.
    pub history_seen: bool,
    pub last_sample_at: Option<SystemTime>,
    /// The content hash of the hygiene findings last written.
    pub findings_hash: Option<String>,
}

/// Resolves the instance's login from the labelled-Secret caches. A
/// referenced Secret missing from them is read once directly, metadata
/// first (`observe::read_secret`), to tell a missing Secret from one without
/// the label: at most one or two requests, only for such instances.
async fn resolve_credentials(
    ctx: &Context,
    instance: &DbInstance,
    namespace: &str,
) -> Result<Result<credentials::Credentials, credentials::CredentialsError>, Error> {
    let cached = |name: &str| {
        let key = ObjectRef::new(name).within(namespace);
        ctx.secrets.get(&key).or_else(|| ctx.ca_secrets.get(&key))
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let mut unwatched = Vec::new();
    for name in credentials::referenced_secrets(&instance.spec) {
        if cached(name).is_none()
            && let Some(secret) = observe::read_secret(&api, name).await?
        {
            unwatched.push(Arc::new(secret));
        }
    }
    Ok(credentials::resolve(&instance.spec, |name| {
        cached(name).or_else(|| {
            unwatched
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(name))
                .cloned()
        })
    }))
}

/// Two instances carrying the same `dbfleet.io/id` (labels copied with
/// kubectl): the façade refuses to act on either; say so where the owner
/// looks, in the log and as an Event on each of them.
fn warn_on_shared_id(ctx: &Context, instance: &DbInstance) {
    let Some(id) = ids::id_of(&instance.metadata) else {
        return;
    };
    let name = instance.name_any();
    let namespace = instance.namespace().unwrap_or_default();
    let others: Vec<String> = {
        let index = ctx.instance_ids.lock().expect("instance ids lock");
        index
            .names(&namespace, id)
            .into_iter()
            .filter(|other| *other != name)
            .map(str::to_owned)
            .collect()
    };
    if others.is_empty() {
        return;
    }
    let note = shared_id_note(id, &others);
    warn!(instance = %name, %namespace, id, others = ?others, "two DbInstances carry the same id");
    let event = Event {
        type_: EventType::Warning,
        reason: "DuplicateId".into(),
        note: Some(note),
        action: "AssignId".into(),
        secondary: None,
    };
    ctx.events.publish(instance.object_ref(&()), vec![event]);
}

fn shared_id_note(id: i64, others: &[String]) -> String {
    format!(
        "{} {id} is also carried by DbInstance {}: the REST API answers 409 CONFLICT for id {id} until \
         all but one of them lose the label (the controller then gives them new ids)",
        crate::crd::keys::ID_LABEL,
        others.join(", ")
    )
}

fn record_probe_metrics(ctx: &Context, instance: &DbInstance, run: &ProbeRun) {
    let db_type = instance.spec.db_type.as_str();
    let elapsed = run.at.elapsed().unwrap_or_default();
    ctx.metrics.logged_in(db_type, run.logins);
    if let Some(Ok(info)) = &run.connection
        && let Ok(replication) = &info.replication
    {
        let lag = match replication.lag {
            crate::probe::Lag::Behind(lag) => Some(lag),
            _ => None,
        };
        let (namespace, name) = (instance.namespace().unwrap_or_default(), instance.name_any());
        ctx.metrics.replication_lag(&namespace, &name, lag);
    }
    if let Some(result) = &run.connection {
        ctx.metrics.probed(
            "connection",
            db_type,
            result.is_ok(),
            result.as_ref().map_or(elapsed, |i| i.latency),
        );
    }
    if let Some(result) = &run.capacity {
        ctx.metrics.probed(
            "capacity",
            db_type,
            result.is_ok(),
            result.as_ref().map_or(elapsed, |c| c.duration),
        );
    }
    if let Some(result) = &run.accounts {
        ctx.metrics.probed(
            "accounts",
            db_type,
            result.is_ok(),
            result.as_ref().map_or(elapsed, |a| a.duration),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn status_only_events_do_not_wake_the_reconcile() {
        let base: DbInstance = serde_json::from_value(serde_json::json!({
            "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
            "metadata": {"name": "a", "namespace": "ns", "uid": "u-a", "generation": 1},
            "spec": {"dbType": "postgresql", "host": "db.internal", "port": 5432},
        }))
        .unwrap();
        let mut status_written = base.clone();
        status_written.status = Some(Default::default());
        status_written.metadata.resource_version = Some("12".into());
        let mut requested = status_written.clone();
        requested.metadata.annotations =
            Some([("dbfleet.io/test-connection-requested-at".to_string(), "1".to_string())].into());
        let mut respecced = requested.clone();
        respecced.metadata.generation = Some(2);
        let events = [&base, &status_written, &requested, &requested, &respecced].map(|i| Arc::new(i.clone()));
        let passed: Vec<_> = changes_that_matter(futures_util::stream::iter(events), Arc::default())
            .collect()
            .await;
        let generations: Vec<_> = passed
            .iter()
            .map(|i| (i.metadata.generation, i.metadata.annotations.is_some()))
            .collect();
        // New, then the request annotation, then the new generation.
        assert_eq!(generations, [(Some(1), false), (Some(1), true), (Some(2), true)]);
    }
}
