//! The second pure step of a reconcile: what the probe results (or their
//! absence) make of the status, whether that is worth a write, and which
//! Events they call for (SPEC §2.1).

use std::time::Duration;

use kube::runtime::events::{Event, EventType};

use crate::crd::{DbInstanceStatus, bounds};
use crate::observe::login_check::LOGIN_PRIVILEGES;
use crate::observe::{ProbeRun, status, topology};
use crate::versions::VERSION_SUPPORTED;

/// The status a reconcile settles on.
#[derive(Debug, PartialEq)]
pub(super) struct Settled {
    pub status: DbInstanceStatus,
    /// Whether it is worth a write: something meaningful changed, or the
    /// report interval passed.
    pub write: bool,
}

/// Folds `observation` into `previous`. What changes on every probe
/// (check times, durations) is written only with something else or once
/// per `report_interval`: `volatile` holds the newest values meanwhile and
/// is updated here.
pub(super) fn settle(
    stored: Option<&DbInstanceStatus>,
    previous: &DbInstanceStatus,
    observation: &status::Observation,
    volatile: &mut status::Volatile,
    report_interval: Duration,
) -> Settled {
    let mut next = status::observed(previous, observation);
    if let Some(freshness) = next.freshness.as_mut() {
        // Readers judge staleness with it (`observe::freshness`).
        freshness.report_interval_seconds = report_interval.as_secs().max(1);
    }
    volatile.merge_newer(status::Volatile::of(&next));
    volatile.apply(&mut next);
    let write = status::needs_write(stored, &next, report_interval);
    Settled { status: next, write }
}

/// Events on connection state changes, new credential problems, failed
/// collections and replication role changes.
pub(super) fn events(previous: &DbInstanceStatus, next: &DbInstanceStatus, run: Option<&ProbeRun>) -> Vec<Event> {
    let mut events = Vec::new();
    let condition = |status: &DbInstanceStatus, type_: &str| {
        status::find(&status.conditions, type_).map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let (before, after) = (
        condition(previous, status::CONNECTED),
        condition(next, status::CONNECTED),
    );
    if let Some((state, reason, message)) = &after
        && before.as_ref().map(|b| &b.0) != Some(state)
    {
        match state.as_str() {
            "True" => events.push((EventType::Normal, "Connected".to_string(), message.clone())),
            "False" => events.push((EventType::Warning, reason.clone(), message.clone())),
            _ => {}
        }
    }
    let (before, after) = (
        condition(previous, status::CREDENTIALS_RESOLVED),
        condition(next, status::CREDENTIALS_RESOLVED),
    );
    if let Some((state, reason, message)) = &after
        && state == "False"
        && before.as_ref().map(|b| &b.1) != Some(reason)
    {
        events.push((EventType::Warning, reason.clone(), message.clone()));
    }
    if let Some((before, after)) = topology::role_change(previous.replication.as_ref(), next.replication.as_ref()) {
        events.push((
            EventType::Normal,
            "RoleChanged".into(),
            format!(
                "replication role changed from {} to {}",
                before.as_str(),
                after.as_str()
            ),
        ));
    }
    if let Some(run) = run {
        // A sync that failed only because the connection did is covered by
        // the connection event.
        let connection_failed = matches!(run.connection, Some(Err(_)));
        if let Some(Err(e)) = &run.capacity
            && !connection_failed
        {
            events.push((
                EventType::Warning,
                "CapacitySyncFailed".into(),
                bounds::message(&e.message),
            ));
        }
        if let Some(Err(e)) = &run.accounts
            && !connection_failed
        {
            events.push((
                EventType::Warning,
                "AccountsSyncFailed".into(),
                bounds::message(&e.message),
            ));
        }
    }
    events.extend(judgement_events(previous, next));
    events
        .into_iter()
        .map(|(type_, reason, note)| Event {
            type_,
            reason,
            note: Some(note),
            action: "Probe".into(),
            secondary: None,
        })
        .collect()
}

/// A warning when the server's release starts ending or has ended, and
/// when dbfleet's own login turns out to hold too much or too little:
/// once per change of reason, never on every probe.
fn judgement_events(previous: &DbInstanceStatus, next: &DbInstanceStatus) -> Vec<(EventType, String, String)> {
    let reason = |status: &DbInstanceStatus, type_: &str| {
        status::find(&status.conditions, type_).map(|c| (c.reason.clone(), c.message.clone()))
    };
    let warned = [
        (VERSION_SUPPORTED, "EndingSoon", "VersionEndingSoon"),
        (VERSION_SUPPORTED, "EndOfLife", "VersionEndOfLife"),
        (LOGIN_PRIVILEGES, "Superuser", "LoginSuperuser"),
        (LOGIN_PRIVILEGES, "Insufficient", "LoginInsufficient"),
        (LOGIN_PRIVILEGES, "ExcessPrivileges", "LoginExcessPrivileges"),
    ];
    let mut events = Vec::new();
    for (type_, condition_reason, event_reason) in warned {
        let before = reason(previous, type_).map(|(r, _)| r);
        if let Some((now, message)) = reason(next, type_)
            && now == condition_reason
            && before.as_deref() != Some(condition_reason)
        {
            events.push((EventType::Warning, event_reason.to_string(), message));
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::crd::instance::AccountChanges;
    use crate::observe::Requests;
    use crate::observe::credentials::CredentialsError;
    use crate::probe::{ConnectionInfo, ErrorKind, ProbeError, Stage};

    const REPORT: Duration = Duration::from_secs(600);

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    fn connection_run(seconds: u64, result: Result<(), ErrorKind>) -> ProbeRun {
        ProbeRun {
            at: at(seconds),
            connection: Some(
                result
                    .map(|()| ConnectionInfo {
                        server_version: "16.4".into(),
                        latency: Duration::from_millis(5),
                        tls: true,
                        replication: Ok(crate::probe::Replication::standalone(
                            crate::crd::instance::DbType::Postgresql,
                            "db",
                            5432,
                        )),
                        login: Ok(crate::probe::Account::default()),
                    })
                    .map_err(|kind| ProbeError::new(kind, Stage::Connect, "password authentication failed")),
            ),
            capacity: None,
            accounts: None,
            logins: 1,
        }
    }

    fn settle_at(
        stored: Option<&DbInstanceStatus>,
        run: Option<&ProbeRun>,
        credentials: Result<(), &CredentialsError>,
        seconds: u64,
        volatile: &mut status::Volatile,
    ) -> Settled {
        let previous = stored.cloned().unwrap_or_default();
        let requests = Requests::default();
        let observation = status::Observation {
            now: at(seconds),
            generation: Some(1),
            credentials,
            missing_tags: &[],
            run,
            requests: &requests,
            capacity: None,
            accounts: None,
            account_changes: AccountChanges::default(),
            findings: None,
            inventory: None,
            judging: None,
        };
        settle(stored, &previous, &observation, volatile, REPORT)
    }

    fn reasons(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.reason.as_str()).collect()
    }

    #[test]
    fn a_first_connection_is_written_and_announced() {
        let run = connection_run(0, Ok(()));
        let settled = settle_at(None, Some(&run), Ok(()), 0, &mut Default::default());
        assert!(settled.write);
        let previous = DbInstanceStatus::default();
        assert_eq!(reasons(&events(&previous, &settled.status, Some(&run))), ["Connected"]);
    }

    #[test]
    fn a_repeated_check_waits_for_the_report_interval() {
        let mut volatile = status::Volatile::default();
        let first = connection_run(0, Ok(()));
        let stored = settle_at(None, Some(&first), Ok(()), 0, &mut volatile).status;
        let again = connection_run(60, Ok(()));
        let quiet = settle_at(Some(&stored), Some(&again), Ok(()), 60, &mut volatile);
        assert!(!quiet.write, "only the check time moved");
        assert!(events(&stored, &quiet.status, Some(&again)).is_empty());
        let later = connection_run(600, Ok(()));
        assert!(settle_at(Some(&stored), Some(&later), Ok(()), 600, &mut volatile).write);
    }

    #[test]
    fn a_failing_probe_is_written_at_once_with_its_reason() {
        let mut volatile = status::Volatile::default();
        let healthy = connection_run(0, Ok(()));
        let stored = settle_at(None, Some(&healthy), Ok(()), 0, &mut volatile).status;
        let failing = connection_run(30, Err(ErrorKind::AuthenticationFailed));
        let settled = settle_at(Some(&stored), Some(&failing), Ok(()), 30, &mut volatile);
        assert!(settled.write);
        let connected = status::find(&settled.status.conditions, status::CONNECTED).unwrap();
        assert_eq!(
            (connected.status.as_str(), connected.reason.as_str()),
            ("False", "AuthenticationFailed")
        );
        let events = events(&stored, &settled.status, Some(&failing));
        assert_eq!(reasons(&events), ["AuthenticationFailed"]);
        assert_eq!(events[0].type_, EventType::Warning);
    }

    #[test]
    fn a_failed_collection_is_announced_unless_the_connection_failed_too() {
        let error = || {
            ProbeError::new(
                ErrorKind::PermissionDenied,
                Stage::Query,
                "permission denied for pg_database",
            )
        };
        let mut run = connection_run(0, Ok(()));
        run.capacity = Some(Err(error()));
        let previous = DbInstanceStatus::default();
        let next = settle_at(None, Some(&run), Ok(()), 0, &mut Default::default()).status;
        assert_eq!(
            reasons(&events(&previous, &next, Some(&run))),
            ["Connected", "CapacitySyncFailed"]
        );
        let mut down = connection_run(0, Err(ErrorKind::ConnectionRefused));
        down.capacity = Some(Err(error()));
        let next = settle_at(None, Some(&down), Ok(()), 0, &mut Default::default()).status;
        assert_eq!(reasons(&events(&previous, &next, Some(&down))), ["ConnectionRefused"]);
    }

    #[test]
    fn a_credentials_problem_is_announced_once() {
        let error = CredentialsError::SecretNotFound("login".into());
        let previous = DbInstanceStatus::default();
        let first = settle_at(None, None, Err(&error), 0, &mut Default::default()).status;
        assert_eq!(reasons(&events(&previous, &first, None)), ["SecretNotFound"]);
        let again = settle_at(Some(&first), None, Err(&error), 60, &mut Default::default()).status;
        assert!(events(&first, &again, None).is_empty());
    }

    /// A connection test at `seconds` that found the server a replica
    /// `lag` behind (`None`: a primary with one replica).
    fn replication_run(seconds: u64, lag: Option<crate::probe::Lag>) -> ProbeRun {
        let mut run = connection_run(seconds, Ok(()));
        if let Some(Ok(info)) = run.connection.as_mut() {
            let facts = info.replication.as_mut().unwrap();
            facts.system_identifier = Some(42);
            match lag {
                Some(lag) => {
                    facts.replica = true;
                    facts.lag = lag;
                }
                None => facts.replica_count = 1,
            }
        }
        run
    }

    #[test]
    fn a_lag_that_moves_on_every_probe_waits_for_the_report_interval() {
        use crate::probe::Lag;
        let mut volatile = status::Volatile::default();
        let behind = |s| Some(Lag::Behind(Duration::from_secs(s)));
        let first = replication_run(0, behind(3));
        let stored = settle_at(None, Some(&first), Ok(()), 0, &mut volatile).status;
        let replication = stored.replication.clone().unwrap();
        assert_eq!(replication.lag_seconds, Some(3));
        assert_eq!(replication.cluster_id.as_deref(), Some("postgresql:42"));
        let moved = replication_run(60, behind(41));
        let quiet = settle_at(Some(&stored), Some(&moved), Ok(()), 60, &mut volatile);
        assert!(!quiet.write, "only the lag and the check time moved");
        assert_eq!(
            quiet.status.replication.as_ref().unwrap().lag_seconds,
            Some(41),
            "the newest lag waits in memory for the next write"
        );
        let later = settle_at(
            Some(&stored),
            Some(&replication_run(600, behind(7))),
            Ok(()),
            600,
            &mut volatile,
        );
        assert!(later.write, "the report interval passed");
        assert_eq!(later.status.replication.unwrap().lag_seconds, Some(7));
        let stopped = settle_at(
            Some(&stored),
            Some(&replication_run(61, Some(Lag::Stopped))),
            Ok(()),
            61,
            &mut volatile,
        );
        assert!(stopped.write, "a replica that stops is written at once");
        assert_eq!(stopped.status.replication.unwrap().lag_seconds, None);
    }

    #[test]
    fn a_role_change_is_announced_once() {
        let replica = replication_run(0, Some(crate::probe::Lag::Idle));
        let stored = settle_at(None, Some(&replica), Ok(()), 0, &mut Default::default()).status;
        assert_eq!(
            reasons(&events(&DbInstanceStatus::default(), &stored, Some(&replica))),
            ["Connected"],
            "a first reading is no change"
        );
        let promoted = replication_run(60, None);
        let settled = settle_at(Some(&stored), Some(&promoted), Ok(()), 60, &mut Default::default());
        assert!(settled.write);
        let announced = events(&stored, &settled.status, Some(&promoted));
        assert_eq!(reasons(&announced), ["RoleChanged"]);
        assert_eq!(
            announced[0].note.as_deref(),
            Some("replication role changed from replica to primary")
        );
        let again = settle_at(
            Some(&settled.status),
            Some(&replication_run(120, None)),
            Ok(()),
            120,
            &mut Default::default(),
        );
        assert!(events(&settled.status, &again.status, None).is_empty());
    }

    #[test]
    fn an_ended_release_and_a_superuser_login_are_announced_once() {
        use crate::versions::{LifecycleSettings, LifecycleTable};
        let settings = LifecycleSettings::default();
        let table = LifecycleTable::built_in();
        let mut run = connection_run(0, Ok(()));
        if let Some(Ok(info)) = run.connection.as_mut() {
            info.server_version = "12.22".into();
            info.login = Ok(crate::probe::Account {
                name: "admin".into(),
                superuser: true,
                ..Default::default()
            });
        }
        let settle_judged = |stored: Option<&DbInstanceStatus>, seconds| {
            let previous = stored.cloned().unwrap_or_default();
            let requests = Requests::default();
            let observation = status::Observation {
                now: at(seconds),
                generation: Some(1),
                credentials: Ok(()),
                missing_tags: &[],
                run: Some(&run),
                requests: &requests,
                capacity: None,
                accounts: None,
                account_changes: AccountChanges::default(),
                findings: None,
                inventory: None,
                judging: Some(status::Judging {
                    db_type: crate::crd::instance::DbType::Postgresql,
                    table,
                    settings: &settings,
                }),
            };
            settle(stored, &previous, &observation, &mut Default::default(), REPORT)
        };
        let first = settle_judged(None, 0);
        let previous = DbInstanceStatus::default();
        assert_eq!(
            reasons(&events(&previous, &first.status, Some(&run))),
            ["Connected", "VersionEndOfLife", "LoginSuperuser"]
        );
        let again = settle_judged(Some(&first.status), 60);
        assert!(!again.write, "the same verdicts the next minute are no write");
        assert!(events(&first.status, &again.status, Some(&run)).is_empty());
    }
}
