//! The status that follows from what was observed: pure functions from the
//! previous status and this reconcile's findings to the next status.

use std::time::SystemTime;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::ProbeRun;
use super::credentials::CredentialsError;
use super::plan::Requests;
use crate::crd::DbInstanceStatus;
use crate::crd::instance::{AccountChanges, CapacityStatus, Phase, ProbeRecord, ProbeSchedule};
use crate::probe::{self, ProbeError};

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
    pub account_items_cap: usize,
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
    for_people(&mut status);
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
            status.connection = Some(probe::connection_status(result, run.at));
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
            status.connection = Some(probe::connection_status(&Err(e.clone()), run.at));
            failed(&mut status.conditions, CONNECTED, e, o.stamp());
        }
        (None, None) => {}
    }

    match &run.capacity {
        Some(Ok(capacity)) => {
            let summary = CapacityStatus::from(capacity);
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
            let changes = match &status.accounts {
                Some(previous) => probe::account_changes(previous, accounts).unwrap_or_default(),
                None => AccountChanges {
                    added: u32::try_from(accounts.accounts.len()).unwrap_or(u32::MAX),
                    ..Default::default()
                },
            };
            let summary = accounts.to_status(changes, o.account_items_cap);
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
    for_people(&mut status);
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
    for_people(&mut status);
    status
}

/// Fills the fields `kubectl get` shows beside the ones machines read: the
/// short version beside the banner, the size in binary units beside the
/// byte count. Derived only from the status itself, so applying it again
/// changes nothing.
fn for_people(status: &mut DbInstanceStatus) {
    if let Some(connection) = &mut status.connection {
        connection.version = connection.server_version.as_deref().map(short_version);
    }
    if let Some(capacity) = &mut status.capacity {
        capacity.total_size = Some(human_size(capacity.total_size_bytes));
    }
}

/// A version banner without what distributions append: PostgreSQL's
/// `15.18 (Debian 15.18-0+deb12u1)` is `15.18`, MariaDB's
/// `10.11.19-MariaDB-0+deb12u1` is `10.11.19-MariaDB` (the product name
/// stays: it tells MariaDB from MySQL), MySQL's `8.0.36-0ubuntu0.22.04.1`
/// is `8.0.36`. MariaDB's replication prefix `5.5.5-` goes too.
pub fn short_version(banner: &str) -> String {
    let first = banner.split_whitespace().next().unwrap_or_default();
    let first = match first.strip_prefix("5.5.5-") {
        Some(rest) if rest.contains("-MariaDB") => rest,
        _ => first,
    };
    if let Some(end) = first.find("-MariaDB") {
        return first[..end + "-MariaDB".len()].to_string();
    }
    match first.split_once('-') {
        Some((version, _)) if !version.is_empty() => version.to_string(),
        _ => first.to_string(),
    }
}

/// Bytes in binary units the way `df -h` rounds them: one decimal below 10
/// (`1.4 GiB`), whole numbers above (`15 GiB`, `512 MiB`), exact bytes below
/// 1 KiB.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // Move up while the value would print as 1024 or more after rounding.
    while unit + 1 < UNITS.len() && value >= 1023.5 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 9.95 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
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

/// Sets a condition; `lastTransitionTime` moves only when the status does.
fn set(conditions: &mut Vec<Condition>, type_: &str, status: &str, reason: &str, message: &str, at: Stamp) {
    let now = time(at.now);
    let condition = Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
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
                account_items_cap: 500,
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
    fn sizes_read_like_df_h_in_binary_units() {
        for (bytes, shown) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (10 * 1024 - 1, "10 KiB"),
            (512 * 1024 * 1024, "512 MiB"),
            (1_526_026_690, "1.4 GiB"),
            (1024 * 1024 * 1024 - 1, "1.0 GiB"),
            (15 * 1024 * 1024 * 1024 + 300 * 1024 * 1024, "15 GiB"),
            (3 * 1024u64.pow(4), "3.0 TiB"),
            (u64::MAX, "16 EiB"),
        ] {
            assert_eq!(human_size(bytes), shown, "{bytes}");
        }
    }

    #[test]
    fn versions_lose_the_distribution_suffix_but_keep_the_product() {
        for (banner, short) in [
            ("15.18 (Debian 15.18-0+deb12u1)", "15.18"),
            ("16.4", "16.4"),
            ("17beta2 (Ubuntu 17~beta2-1)", "17beta2"),
            ("10.11.19-MariaDB-0+deb12u1", "10.11.19-MariaDB"),
            ("11.4.2-MariaDB-ubu2404", "11.4.2-MariaDB"),
            ("5.5.5-10.6.18-MariaDB-log", "10.6.18-MariaDB"),
            ("10.6.18-MariaDB", "10.6.18-MariaDB"),
            ("8.0.36-0ubuntu0.22.04.1", "8.0.36"),
            ("8.0.36", "8.0.36"),
            ("5.7.44-log", "5.7.44"),
            ("", ""),
        ] {
            assert_eq!(short_version(banner), short, "{banner:?}");
        }
    }

    #[test]
    fn people_get_a_short_version_and_a_readable_size_beside_the_exact_values() {
        let mut run = healthy_run(T0);
        if let Some(Ok(info)) = &mut run.connection {
            info.server_version = "15.18 (Debian 15.18-0+deb12u1)".into();
        }
        if let Some(Ok(capacity)) = &mut run.capacity {
            capacity.databases[0].size_bytes = 1_526_026_690;
        }
        let status = observe(&DbInstanceStatus::default(), Some(&run), Ok(()), &[], T0);
        let connection = status.connection.as_ref().unwrap();
        assert_eq!(
            connection.server_version.as_deref(),
            Some("15.18 (Debian 15.18-0+deb12u1)")
        );
        assert_eq!(connection.version.as_deref(), Some("15.18"));
        let capacity = status.capacity.as_ref().unwrap();
        assert_eq!(capacity.total_size_bytes, 1_526_026_690);
        assert_eq!(capacity.total_size.as_deref(), Some("1.4 GiB"));

        // A status written before these fields existed gets them on its next
        // write, even when no probe ran.
        let mut old = status.clone();
        old.connection.as_mut().unwrap().version = None;
        old.capacity.as_mut().unwrap().total_size = None;
        assert_eq!(observe(&old, None, Ok(()), &[], T0 + 1), status);
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
