//! The status that follows from what was observed: pure functions from the
//! previous status and this reconcile's findings to the next status.

use std::time::SystemTime;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::ProbeRun;
use super::credentials::CredentialsError;
use super::plan::Requests;
use crate::crd::DbInstanceStatus;
use crate::crd::bounds::{self, ListCaps};
use crate::crd::instance::{
    AccountChanges, AccountItem, AccountsStatus, CapacityStatus, ConnectionStatus, Phase, ProbeRecord, ProbeSchedule,
};
use crate::probe::{self, Accounts, ConnectionInfo, ProbeError};

pub const READY: &str = "Ready";
pub const CONNECTED: &str = "Connected";
pub const CREDENTIALS_RESOLVED: &str = "CredentialsResolved";
pub const TAGS_RESOLVED: &str = "TagsResolved";
pub const CAPACITY_SYNCED: &str = "CapacitySynced";
pub const ACCOUNTS_SYNCED: &str = "AccountsSynced";

/// What one reconcile of an active, not recycled instance found.
pub struct Observation<'a> {
    pub now: SystemTime,
    pub generation: Option<i64>,
    pub credentials: Result<(), &'a CredentialsError>,
    /// Tags in the spec that no DbTag in the namespace has.
    pub missing_tags: &'a [String],
    /// The probes that ran now, if any.
    pub run: Option<&'a ProbeRun>,
    pub requests: &'a Requests,
    /// Fingerprint of the inputs the run used.
    pub inputs: &'a str,
    /// How long the lists in status may grow.
    pub caps: ListCaps,
}

pub fn observed(previous: &DbInstanceStatus, o: &Observation) -> DbInstanceStatus {
    let mut status = previous.clone();
    status.observed_generation = o.generation;
    status.recycled_at = None;
    status.retained_until = None;
    let now = time(o.now);
    let conditions = &mut status.conditions;

    match o.credentials {
        Ok(()) => set(
            conditions,
            CREDENTIALS_RESOLVED,
            "True",
            "Resolved",
            "login read from the credentials Secret",
            o.stamp(),
        ),
        Err(e) => set(
            conditions,
            CREDENTIALS_RESOLVED,
            "False",
            e.reason(),
            &e.to_string(),
            o.stamp(),
        ),
    }
    if o.missing_tags.is_empty() {
        set(
            conditions,
            TAGS_RESOLVED,
            "True",
            "Resolved",
            "every tag exists",
            o.stamp(),
        );
    } else {
        let message = format!("no DbTag named {}", o.missing_tags.join(", "));
        set(conditions, TAGS_RESOLVED, "False", "TagNotFound", &message, o.stamp());
    }

    if let Some(run) = o.run {
        let schedule = status.probes.get_or_insert_with(ProbeSchedule::default);
        schedule.inputs = Some(o.inputs.to_string());
        let mark = |record: &mut ProbeRecord, request: &Option<String>| {
            record.attempted_at = Some(now.clone());
            record.handled_request = request.clone();
        };
        if run.connection.is_some() {
            mark(&mut schedule.connection, &o.requests.connection);
        }
        if run.capacity.is_some() {
            mark(&mut schedule.capacity, &o.requests.capacity);
        }
        if run.accounts.is_some() {
            mark(&mut schedule.accounts, &o.requests.accounts);
        }
        record_run(&mut status, run, o);
    }

    let conditions = &mut status.conditions;
    if o.credentials.is_err() {
        set(
            conditions,
            CONNECTED,
            "Unknown",
            "CredentialsUnresolved",
            "not tested: the login could not be resolved",
            o.stamp(),
        );
    } else if find(conditions, CONNECTED).is_none() {
        set(
            conditions,
            CONNECTED,
            "Unknown",
            "NotTested",
            "the connection has not been tested yet",
            o.stamp(),
        );
    }
    let connected = find(conditions, CONNECTED).map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()));
    let (ready, reason, message, phase) = match (&o.credentials, connected) {
        (Err(e), _) => ("False", e.reason().to_string(), e.to_string(), Phase::Failed),
        (Ok(()), Some((s, _, _))) if s == "True" && !o.missing_tags.is_empty() => (
            "False",
            "TagNotFound".into(),
            format!("no DbTag named {}", o.missing_tags.join(", ")),
            Phase::Ready,
        ),
        (Ok(()), Some((s, _, message))) if s == "True" => ("True", READY.into(), message, Phase::Ready),
        (Ok(()), Some((s, reason, message))) if s == "False" => ("False", reason, message, Phase::Failed),
        (Ok(()), _) => (
            "False",
            "NotTested".into(),
            "the connection has not been tested yet".into(),
            Phase::Pending,
        ),
    };
    set(conditions, READY, ready, &reason, &message, o.stamp());
    status.phase = Some(phase);
    status
}

fn record_run(status: &mut DbInstanceStatus, run: &ProbeRun, o: &Observation) {
    // A capacity or account sync that could not connect says as much about
    // the connection as a connection test does.
    let connect_failure = [
        run.capacity.as_ref().and_then(|r| r.as_ref().err()),
        run.accounts.as_ref().and_then(|r| r.as_ref().err()),
    ]
    .into_iter()
    .flatten()
    .find(|e| e.is_connect());
    match (&run.connection, connect_failure) {
        (Some(result), _) => {
            status.connection = Some(connection_status(result, run.at));
            match result {
                Ok(info) => {
                    let message = format!("{} in {} ms", info.server_version, info.latency.as_millis());
                    set(
                        &mut status.conditions,
                        CONNECTED,
                        "True",
                        "Connected",
                        &message,
                        o.stamp(),
                    );
                }
                Err(e) => failed(&mut status.conditions, CONNECTED, e, o.stamp()),
            }
        }
        (None, Some(e)) => {
            status.connection = Some(connection_status(&Err(e.clone()), run.at));
            failed(&mut status.conditions, CONNECTED, e, o.stamp());
        }
        (None, None) => {}
    }

    match &run.capacity {
        Some(Ok(capacity)) => {
            let summary = CapacityStatus::from(capacity).capped(o.caps.database_items);
            let message = format!(
                "{} databases, {} bytes",
                summary.database_count, summary.total_size_bytes
            );
            status.capacity = Some(summary);
            set(
                &mut status.conditions,
                CAPACITY_SYNCED,
                "True",
                "Synced",
                &message,
                o.stamp(),
            );
        }
        Some(Err(e)) => failed(&mut status.conditions, CAPACITY_SYNCED, e, o.stamp()),
        None => {}
    }

    match &run.accounts {
        Some(Ok(accounts)) => {
            let changes = account_changes(status.accounts.as_ref(), accounts, o.caps);
            let summary = accounts
                .to_status(changes, o.caps.account_items)
                .with_capped_databases(o.caps.account_databases);
            let message = format!("{} accounts, {} superusers", summary.count, summary.superuser_count);
            status.accounts = Some(summary);
            set(
                &mut status.conditions,
                ACCOUNTS_SYNCED,
                "True",
                "Synced",
                &message,
                o.stamp(),
            );
        }
        Some(Err(e)) => failed(&mut status.conditions, ACCOUNTS_SYNCED, e, o.stamp()),
        None => {}
    }
}

/// `status.connection` after a connection test, its message and the
/// server's version string bounded like every message in status.
fn connection_status(result: &Result<ConnectionInfo, ProbeError>, at: SystemTime) -> ConnectionStatus {
    let mut connection = probe::connection_status(result, at);
    connection.message = connection.message.as_deref().map(bounds::message);
    connection.server_version = connection.server_version.as_deref().map(bounds::message);
    connection
}

/// How `current` differs from the sync recorded in `previous`, compared the
/// way the status keeps accounts (database lists capped alike), so a list
/// that was cut short is not a change. Unknown (all zero) when `previous`
/// listed only some accounts.
fn account_changes(previous: Option<&AccountsStatus>, current: &Accounts, caps: ListCaps) -> AccountChanges {
    match previous {
        None => AccountChanges {
            added: u32::try_from(current.accounts.len()).unwrap_or(u32::MAX),
            ..Default::default()
        },
        Some(previous) if previous.truncated => AccountChanges::default(),
        Some(previous) => {
            let items: Vec<AccountItem> = current
                .accounts
                .iter()
                .map(|account| {
                    let mut item = AccountItem::from(account);
                    item.cap_databases(caps.account_databases);
                    item
                })
                .collect();
            AccountChanges::from(&probe::diff_accounts(&previous.items, &items))
        }
    }
}

/// An instance with `isActive: false`: kept, never probed.
pub fn inactive(previous: &DbInstanceStatus, now: SystemTime, generation: Option<i64>) -> DbInstanceStatus {
    let mut status = previous.clone();
    status.observed_generation = generation;
    status.recycled_at = None;
    status.retained_until = None;
    status.phase = Some(Phase::Inactive);
    let at = Stamp { now, generation };
    set(
        &mut status.conditions,
        READY,
        "False",
        "Inactive",
        "spec.isActive is false: the instance is not probed",
        at,
    );
    status
}

/// An instance in the recycle bin: not probed, deleted for good at
/// `retained_until`.
pub fn recycled(
    previous: &DbInstanceStatus,
    now: SystemTime,
    generation: Option<i64>,
    recycled_at: SystemTime,
    retained_until: SystemTime,
) -> DbInstanceStatus {
    let mut status = previous.clone();
    status.observed_generation = generation;
    status.phase = Some(Phase::Recycled);
    status.recycled_at = Some(time(recycled_at));
    status.retained_until = Some(time(retained_until));
    let at = Stamp { now, generation };
    set(
        &mut status.conditions,
        READY,
        "False",
        "Recycled",
        "in the recycle bin: restore it to probe it again",
        at,
    );
    status
}

/// Whether the instance was connected according to `status`.
pub fn is_connected(status: Option<&DbInstanceStatus>) -> Option<bool> {
    let condition = find(&status?.conditions, CONNECTED)?;
    match condition.status.as_str() {
        "True" => Some(true),
        "False" => Some(false),
        _ => None,
    }
}

pub fn find<'c>(conditions: &'c [Condition], type_: &str) -> Option<&'c Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// When and for which generation a condition is set.
#[derive(Clone, Copy)]
struct Stamp {
    now: SystemTime,
    generation: Option<i64>,
}

impl Observation<'_> {
    fn stamp(&self) -> Stamp {
        Stamp {
            now: self.now,
            generation: self.generation,
        }
    }
}

fn failed(conditions: &mut Vec<Condition>, type_: &str, error: &ProbeError, at: Stamp) {
    set(conditions, type_, "False", error.kind.as_str(), &error.message, at);
}

/// Sets a condition, its message bounded; `lastTransitionTime` moves only
/// when the status does.
fn set(conditions: &mut Vec<Condition>, type_: &str, status: &str, reason: &str, message: &str, at: Stamp) {
    let now = time(at.now);
    let condition = Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: bounds::message(message),
        observed_generation: at.generation,
        last_transition_time: now,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            let transition = if existing.status == status {
                existing.last_transition_time.clone()
            } else {
                condition.last_transition_time.clone()
            };
            *existing = Condition {
                last_transition_time: transition,
                ..condition
            };
        }
        None => conditions.push(condition),
    }
}

/// `at` as a Kubernetes timestamp. Kubernetes keeps whole seconds; so do
/// we, so rewriting an unchanged status is a no-op.
pub fn time(at: SystemTime) -> Time {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let whole = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    Time(whole.try_into().unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::probe::{Accounts, Capacity, ConnectionInfo, DatabaseSize, ErrorKind, Stage};

    const T0: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn healthy_run(secs: u64) -> ProbeRun {
        ProbeRun {
            at: at(secs),
            connection: Some(Ok(ConnectionInfo {
                server_version: "15.4".into(),
                latency: Duration::from_millis(7),
                tls: false,
            })),
            capacity: Some(Ok(Capacity {
                server_version: "15.4".into(),
                databases: vec![DatabaseSize {
                    name: "app".into(),
                    size_bytes: 4096,
                    table_count: Some(3),
                }],
                system_databases: vec![],
                duration: Duration::from_millis(20),
                collected_at: at(secs),
            })),
            accounts: Some(Ok(Accounts {
                server_version: "15.4".into(),
                accounts: vec![],
                duration: Duration::from_millis(9),
                synced_at: at(secs),
            })),
        }
    }

    fn refused(stage: Stage) -> ProbeError {
        ProbeError::new(ErrorKind::ConnectionRefused, stage, "nothing listens on db:5432")
    }

    fn observe(
        previous: &DbInstanceStatus,
        run: Option<&ProbeRun>,
        credentials: Result<(), &CredentialsError>,
        missing: &[String],
        secs: u64,
    ) -> DbInstanceStatus {
        let requests = Requests {
            accounts: Some("r1".into()),
            ..Requests::default()
        };
        observed(
            previous,
            &Observation {
                now: at(secs),
                generation: Some(2),
                credentials,
                missing_tags: missing,
                run,
                requests: &requests,
                inputs: "g2/s1",
                caps: ListCaps::default(),
            },
        )
    }

    fn reason(status: &DbInstanceStatus, type_: &str) -> (String, String) {
        let c = find(&status.conditions, type_).unwrap_or_else(|| panic!("no {type_}"));
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn a_healthy_run_makes_everything_true_and_is_recorded() {
        let status = observe(&DbInstanceStatus::default(), Some(&healthy_run(T0)), Ok(()), &[], T0);
        assert_eq!(status.phase, Some(Phase::Ready));
        for type_ in [
            READY,
            CONNECTED,
            CREDENTIALS_RESOLVED,
            TAGS_RESOLVED,
            CAPACITY_SYNCED,
            ACCOUNTS_SYNCED,
        ] {
            assert_eq!(reason(&status, type_).0, "True", "{type_}");
        }
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(status.capacity.as_ref().unwrap().total_size_bytes, 4096);
        let probes = status.probes.as_ref().unwrap();
        assert_eq!(probes.inputs.as_deref(), Some("g2/s1"));
        assert_eq!(probes.accounts.handled_request.as_deref(), Some("r1"));
        assert!(probes.connection.attempted_at.is_some());
    }

    #[test]
    fn a_failed_connection_keeps_the_last_data_and_says_why() {
        let healthy = observe(&DbInstanceStatus::default(), Some(&healthy_run(T0)), Ok(()), &[], T0);
        let error = refused(Stage::Connect);
        let run = ProbeRun {
            at: at(T0 + 60),
            connection: Some(Err(error.clone())),
            capacity: Some(Err(error.clone())),
            accounts: None,
        };
        let failed = observe(&healthy, Some(&run), Ok(()), &[], T0 + 60);
        assert_eq!(failed.phase, Some(Phase::Failed));
        assert_eq!(reason(&failed, CONNECTED), ("False".into(), "ConnectionRefused".into()));
        assert_eq!(reason(&failed, READY), ("False".into(), "ConnectionRefused".into()));
        assert_eq!(
            reason(&failed, CAPACITY_SYNCED),
            ("False".into(), "ConnectionRefused".into())
        );
        assert_eq!(reason(&failed, ACCOUNTS_SYNCED).0, "True", "not run now, so unchanged");
        assert_eq!(failed.capacity, healthy.capacity, "the last collected capacity stays");
        assert_eq!(
            failed.connection.as_ref().unwrap().message.as_deref(),
            Some("nothing listens on db:5432")
        );
    }

    #[test]
    fn a_sync_that_cannot_connect_updates_the_connection_too() {
        let healthy = observe(&DbInstanceStatus::default(), Some(&healthy_run(T0)), Ok(()), &[], T0);
        let run = ProbeRun {
            at: at(T0 + 5),
            connection: None,
            capacity: None,
            accounts: Some(Err(refused(Stage::Connect))),
        };
        let status = observe(&healthy, Some(&run), Ok(()), &[], T0 + 5);
        assert_eq!(reason(&status, CONNECTED).1, "ConnectionRefused");
        assert_eq!(status.phase, Some(Phase::Failed));
    }

    #[test]
    fn unresolved_credentials_fail_without_a_test() {
        let error = CredentialsError::SecretNotFound("login".into());
        let status = observe(&DbInstanceStatus::default(), None, Err(&error), &[], T0);
        assert_eq!(status.phase, Some(Phase::Failed));
        assert_eq!(
            reason(&status, CREDENTIALS_RESOLVED),
            ("False".into(), "SecretNotFound".into())
        );
        assert_eq!(
            reason(&status, CONNECTED),
            ("Unknown".into(), "CredentialsUnresolved".into())
        );
        assert_eq!(reason(&status, READY), ("False".into(), "SecretNotFound".into()));
    }

    #[test]
    fn a_missing_tag_leaves_the_database_ready_but_not_the_instance() {
        let status = observe(
            &DbInstanceStatus::default(),
            Some(&healthy_run(T0)),
            Ok(()),
            &["gone".to_string()],
            T0,
        );
        assert_eq!(status.phase, Some(Phase::Ready));
        assert_eq!(reason(&status, TAGS_RESOLVED), ("False".into(), "TagNotFound".into()));
        assert_eq!(reason(&status, READY), ("False".into(), "TagNotFound".into()));
    }

    #[test]
    fn transition_times_move_only_on_change_and_unchanged_input_is_a_fixed_point() {
        let first = observe(&DbInstanceStatus::default(), Some(&healthy_run(T0)), Ok(()), &[], T0);
        let again = observe(&first, None, Ok(()), &[], T0 + 30);
        assert_eq!(
            again, first,
            "nothing ran: the status is identical, so nothing is written"
        );
        let error = refused(Stage::Connect);
        let run = ProbeRun {
            at: at(T0 + 60),
            connection: Some(Err(error)),
            capacity: None,
            accounts: None,
        };
        let failed = observe(&first, Some(&run), Ok(()), &[], T0 + 60);
        let time = |s: &DbInstanceStatus, t: &str| find(&s.conditions, t).unwrap().last_transition_time.clone();
        assert_ne!(time(&failed, CONNECTED), time(&first, CONNECTED));
        assert_eq!(time(&failed, CREDENTIALS_RESOLVED), time(&first, CREDENTIALS_RESOLVED));
    }

    #[test]
    fn messages_from_a_server_are_bounded_everywhere_in_status() {
        let huge = format!("FATAL: {}", "x".repeat(100_000));
        let error = ProbeError::new(ErrorKind::ServerError, Stage::Connect, huge.clone());
        let run = ProbeRun {
            at: at(T0),
            connection: Some(Err(error.clone())),
            capacity: Some(Err(error)),
            accounts: None,
        };
        let status = observe(&DbInstanceStatus::default(), Some(&run), Ok(()), &[], T0);
        for condition in &status.conditions {
            assert!(
                condition.message.len() <= bounds::MAX_MESSAGE_BYTES,
                "{}",
                condition.type_
            );
        }
        assert!(
            find(&status.conditions, CONNECTED)
                .unwrap()
                .message
                .starts_with("FATAL: xxx")
        );
        let message = status.connection.as_ref().unwrap().message.as_deref().unwrap();
        assert!(message.len() <= bounds::MAX_MESSAGE_BYTES && message.ends_with('…'));

        let mut long_version = healthy_run(T0);
        if let Some(Ok(info)) = &mut long_version.connection {
            info.server_version = "9".repeat(5_000);
        }
        let status = observe(&DbInstanceStatus::default(), Some(&long_version), Ok(()), &[], T0);
        let version = status.connection.unwrap().server_version.unwrap();
        assert!(version.len() <= bounds::MAX_MESSAGE_BYTES);
    }

    fn database(name: &str, size_bytes: u64) -> DatabaseSize {
        DatabaseSize {
            name: name.into(),
            size_bytes,
            table_count: None,
        }
    }

    fn caps(account_items: usize, account_databases: usize, database_items: usize) -> ListCaps {
        ListCaps {
            account_items,
            account_databases,
            database_items,
        }
    }

    fn observe_with(previous: &DbInstanceStatus, run: &ProbeRun, caps: ListCaps) -> DbInstanceStatus {
        observed(
            previous,
            &Observation {
                now: run.at,
                generation: Some(1),
                credentials: Ok(()),
                missing_tags: &[],
                run: Some(run),
                requests: &Requests::default(),
                inputs: "g1",
                caps,
            },
        )
    }

    #[test]
    fn the_largest_databases_are_listed_and_the_totals_cover_all() {
        let mut run = healthy_run(T0);
        if let Some(Ok(capacity)) = &mut run.capacity {
            capacity.databases = vec![
                database("a", 10),
                database("b", 300),
                database("c", 20),
                database("d", 300),
            ];
        }
        let status = observe_with(&DbInstanceStatus::default(), &run, caps(500, 16, 3));
        let capacity = status.capacity.unwrap();
        let listed: Vec<_> = capacity.databases.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(listed, ["b", "c", "d"], "the three largest, by name");
        assert!(capacity.truncated);
        assert_eq!((capacity.database_count, capacity.total_size_bytes), (4, 630));

        let status = observe_with(&DbInstanceStatus::default(), &run, caps(500, 16, 4));
        assert!(!status.capacity.unwrap().truncated);
    }

    fn account(name: &str, databases: &[&str]) -> crate::probe::Account {
        crate::probe::Account {
            name: name.into(),
            host: None,
            superuser: false,
            can_login: true,
            locked: false,
            expired: false,
            databases: databases.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn with_accounts(secs: u64, accounts: Vec<crate::probe::Account>) -> ProbeRun {
        let mut run = healthy_run(secs);
        if let Some(Ok(synced)) = &mut run.accounts {
            synced.accounts = accounts;
        }
        run
    }

    #[test]
    fn each_account_lists_a_bounded_number_of_databases() {
        let run = with_accounts(T0, vec![account("app", &["a", "b", "c"]), account("ro", &["a"])]);
        let status = observe_with(&DbInstanceStatus::default(), &run, caps(500, 2, 500));
        let items = &status.accounts.as_ref().unwrap().items;
        assert_eq!(items[0].databases, ["a", "b"]);
        assert!(items[0].databases_truncated);
        assert_eq!(items[1].databases, ["a"]);
        assert!(!items[1].databases_truncated);
        let json = serde_json::to_value(&items[1]).unwrap();
        assert!(json.get("databasesTruncated").is_none(), "false is left out: {json}");

        // The same accounts again: a list cut short is not a change, one
        // beyond the cap changing is not visible, one within it is.
        let again = with_accounts(T0 + 60, vec![account("app", &["a", "b", "d"]), account("ro", &["a"])]);
        let next = observe_with(&status, &again, caps(500, 2, 500));
        assert_eq!(next.accounts.unwrap().changes, AccountChanges::default());
        let changed = with_accounts(T0 + 120, vec![account("app", &["a", "c"]), account("ro", &["a"])]);
        let next = observe_with(&status, &changed, caps(500, 2, 500));
        assert_eq!(next.accounts.unwrap().changes.modified, 1);
    }

    #[test]
    fn inactive_and_recycled_instances_say_so() {
        let first = observe(&DbInstanceStatus::default(), Some(&healthy_run(T0)), Ok(()), &[], T0);
        let off = inactive(&first, at(T0 + 1), Some(3));
        assert_eq!(off.phase, Some(Phase::Inactive));
        assert_eq!(reason(&off, READY), ("False".into(), "Inactive".into()));
        let binned = recycled(&first, at(T0 + 2), Some(3), at(T0 + 2), at(T0 + 2 + 86_400));
        assert_eq!(binned.phase, Some(Phase::Recycled));
        assert_eq!(binned.retained_until, Some(time(at(T0 + 2 + 86_400))));
        let restored = observe(&binned, None, Ok(()), &[], T0 + 3);
        assert!(restored.recycled_at.is_none() && restored.retained_until.is_none());
        assert_eq!(restored.phase, Some(Phase::Ready));
    }
}
