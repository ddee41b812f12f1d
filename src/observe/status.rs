//! The status that follows from what was observed: pure functions from the
//! previous status and this reconcile's findings to the next status, and
//! whether the difference is worth a write.
//!
//! The status is a summary. What changes on every probe (when it ran, how
//! long it took) is *volatile*: it is written when something meaningful
//! changed, or once per report interval to show the data is fresh, never
//! on its own ([`needs_write`]).

use std::time::{Duration, SystemTime};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::ProbeRun;
use super::credentials::CredentialsError;
use super::login_check;
use super::plan::{Ops, Requests};
use super::request::handled_value;
use super::topology;
use crate::crd::DbInstanceStatus;
use crate::crd::bounds;
use crate::crd::instance::{
    AccountChanges, AccountsStatus, CapacityStatus, ConnectionState, ConnectionStatus, DbType, Freshness, Phase,
    ProbeTimes, ReleaseStatus,
};
use crate::crd::inventory::{InventoryAccounts, InventoryCapacity};
use crate::probe::{ConnectionInfo, ProbeError};
use crate::versions::{self, LifecycleSettings, LifecycleTable};

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
    /// The request annotations; the probes that ran answered theirs.
    pub requests: &'a Requests,
    /// The inventory sections that follow from the run (sizes as written,
    /// within the threshold), for the totals.
    pub capacity: Option<&'a InventoryCapacity>,
    pub accounts: Option<&'a InventoryAccounts>,
    /// How the account set changed, when accounts were synced.
    pub account_changes: AccountChanges,
    /// The hygiene findings of an account sync that ran now.
    pub findings: Option<&'a crate::crd::findings::FindingCounts>,
    /// The DbInventory's name, once it exists.
    pub inventory: Option<&'a str>,
    /// What the server's version and dbfleet's own login are judged
    /// against; `None` leaves those conditions as they were.
    pub judging: Option<Judging<'a>>,
}

/// The engine and the end-of-life table in force, for the
/// `VersionSupported` and `LoginPrivileges` conditions.
#[derive(Clone, Copy)]
pub struct Judging<'a> {
    pub db_type: DbType,
    pub table: &'a LifecycleTable,
    pub settings: &'a LifecycleSettings,
}

pub fn observed(previous: &DbInstanceStatus, o: &Observation) -> DbInstanceStatus {
    let mut status = previous.clone();
    status.observed_generation = o.generation;
    status.recycled_at = None;
    status.retained_until = None;
    if let Some(name) = o.inventory {
        status.inventory = Some(name.to_string());
    }
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

    // A run answers the requests of its probes; unresolvable credentials
    // answer every request (nothing can run until they change).
    let answered = match (o.run, o.credentials) {
        (_, Err(_)) => Ops::ALL,
        (Some(run), Ok(())) => Ops {
            connection: run.connection.is_some(),
            capacity: run.capacity.is_some(),
            accounts: run.accounts.is_some(),
        },
        (None, Ok(())) => Ops::default(),
    };
    let handled = &mut status.handled_requests;
    for (ran, request, value) in [
        (answered.connection, &o.requests.connection, &mut handled.connection),
        (answered.capacity, &o.requests.capacity, &mut handled.capacity),
        (answered.accounts, &o.requests.accounts, &mut handled.accounts),
    ] {
        if ran && request.is_some() {
            *value = request.as_deref().map(handled_value);
        }
    }
    if let Some(run) = o.run {
        record_run(&mut status, run, o);
    }
    if let Some(judging) = &o.judging {
        judge_server(&mut status, judging, o);
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

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `status.connection` after a test at `at`; `last_changed_at` moves only
/// when the state, the reason or the server version does.
pub fn connection_status(
    previous: Option<&ConnectionStatus>,
    result: &Result<ConnectionInfo, ProbeError>,
    at: SystemTime,
) -> ConnectionStatus {
    let mut next = match result {
        Ok(info) => ConnectionStatus {
            status: ConnectionState::Connected,
            last_checked_at: Some(time(at)),
            last_changed_at: None,
            latency_ms: Some(millis(info.latency)),
            server_version: Some(bounds::message(&info.server_version)),
            version: None,
            reason: None,
            message: None,
        },
        Err(err) => ConnectionStatus {
            status: ConnectionState::Failed,
            last_checked_at: Some(time(at)),
            last_changed_at: None,
            latency_ms: None,
            // The version the server had when it last answered.
            server_version: previous.and_then(|p| p.server_version.clone()),
            version: None,
            reason: Some(err.kind.as_str().to_string()),
            message: Some(bounds::message(&err.message)),
        },
    };
    let same = previous
        .is_some_and(|p| p.status == next.status && p.reason == next.reason && p.server_version == next.server_version);
    next.last_changed_at = match previous {
        Some(p) if same => p.last_changed_at.clone().or_else(|| Some(time(at))),
        _ => Some(time(at)),
    };
    next
}

/// The last attempt and the last success of each probe kind that ran.
fn record_freshness(status: &mut DbInstanceStatus, run: &ProbeRun) {
    let at = Some(time(run.at));
    let freshness = status.freshness.get_or_insert_with(Freshness::default);
    let note = |times: &mut ProbeTimes, succeeded: Option<bool>| {
        if let Some(succeeded) = succeeded {
            times.last_attempt_at = at.clone();
            if succeeded {
                times.last_success_at = at.clone();
            }
        }
    };
    note(&mut freshness.connection, run.connected());
    note(&mut freshness.capacity, run.capacity.as_ref().map(Result::is_ok));
    note(&mut freshness.accounts, run.accounts.as_ref().map(Result::is_ok));
}

fn record_run(status: &mut DbInstanceStatus, run: &ProbeRun, o: &Observation) {
    record_freshness(status, run);
    // A capacity or account sync that could not connect says as much about
    // the connection as a connection test does.
    let connect_failure = [
        run.capacity.as_ref().and_then(|r| r.as_ref().err()),
        run.accounts.as_ref().and_then(|r| r.as_ref().err()),
    ]
    .into_iter()
    .flatten()
    .find(|e| e.is_connect());
    let connection = match (&run.connection, connect_failure) {
        (Some(result), _) => Some(result.clone()),
        (None, Some(e)) => Some(Err(e.clone())),
        (None, None) => None,
    };
    if let Some(result) = connection {
        status.connection = Some(connection_status(status.connection.as_ref(), &result, run.at));
        match &result {
            // No latency here: a message that changes on every test would
            // make every test a status write.
            Ok(info) => set(
                &mut status.conditions,
                CONNECTED,
                "True",
                "Connected",
                &format!("connected to server version {}", info.server_version),
                o.stamp(),
            ),
            Err(e) => failed(&mut status.conditions, CONNECTED, e, o.stamp()),
        }
        if let Ok(info) = &result {
            status.replication = Some(topology::replication_status(
                status.replication.as_ref(),
                &info.replication,
            ));
        }
    }

    match (&run.capacity, o.capacity) {
        (Some(Ok(capacity)), Some(section)) => {
            status.capacity = Some(CapacityStatus {
                total_size_bytes: section.total_size_bytes,
                total_size: None,
                database_count: section.database_count,
                collected_at: time(run.at),
                duration_ms: millis(capacity.duration),
            });
            let message = format!(
                "{} databases, {}",
                section.database_count,
                human_size(section.total_size_bytes)
            );
            set(
                &mut status.conditions,
                CAPACITY_SYNCED,
                "True",
                "Synced",
                &message,
                o.stamp(),
            );
        }
        (Some(Err(e)), _) => failed(&mut status.conditions, CAPACITY_SYNCED, e, o.stamp()),
        _ => {}
    }

    match (&run.accounts, o.accounts) {
        (Some(Ok(accounts)), Some(section)) => {
            status.accounts = Some(AccountsStatus {
                count: section.count,
                synced_at: time(run.at),
                duration_ms: millis(accounts.duration),
                superuser_count: section.superuser_count,
                changes: o.account_changes,
            });
            if let Some(findings) = o.findings {
                status.findings = Some(findings.clone());
            }
            let message = format!("{} accounts, {} superusers", section.count, section.superuser_count);
            set(
                &mut status.conditions,
                ACCOUNTS_SYNCED,
                "True",
                "Synced",
                &message,
                o.stamp(),
            );
        }
        (Some(Err(e)), _) => failed(&mut status.conditions, ACCOUNTS_SYNCED, e, o.stamp()),
        _ => {}
    }
}

/// `VersionSupported` from the version the status holds (the last one a
/// test read), and `LoginPrivileges` from a connection test that ran now.
/// Both change only with the facts (a message names dates, never days
/// left), so an unchanged server never makes a write.
fn judge_server(status: &mut DbInstanceStatus, judging: &Judging, o: &Observation) {
    let banner = status.connection.as_ref().and_then(|c| c.server_version.as_deref());
    let release = banner.and_then(|b| versions::release_of(judging.db_type, b));
    let support = versions::judge(
        banner,
        release,
        judging.table,
        versions::today(o.now),
        judging.settings.ending_soon,
    );
    status.release = support.release().map(|release| ReleaseStatus {
        line: release.to_string(),
        end_of_life: support.end_of_life().map(|d| d.to_string()),
    });
    let verdict = support.verdict(judging.table, &judging.settings.configmap);
    let conditions = &mut status.conditions;
    set(
        conditions,
        versions::VERSION_SUPPORTED,
        verdict.status,
        verdict.reason,
        &verdict.message,
        o.stamp(),
    );
    if let Some(Some(Ok(info))) = o.run.map(|r| &r.connection) {
        let verdict = login_check::judge(judging.db_type, &info.login);
        set(
            conditions,
            login_check::LOGIN_PRIVILEGES,
            verdict.status,
            verdict.reason,
            &verdict.message,
            o.stamp(),
        );
    }
}

/// The fields that change with every probe even when nothing else does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Volatile {
    pub connection_checked_at: Option<Time>,
    pub latency_ms: Option<u64>,
    pub capacity: Option<(Time, u64)>,
    pub accounts: Option<(Time, u64)>,
    /// `status.freshness`'s times.
    pub probe_times: [Option<Time>; 6],
    /// A replica's delay, measured with the connection test.
    pub replication_lag: Option<u64>,
}

/// `freshness`'s six times, in a fixed order.
fn probe_times(freshness: &Freshness) -> [Option<Time>; 6] {
    let (c, p, a) = (&freshness.connection, &freshness.capacity, &freshness.accounts);
    [
        c.last_attempt_at.clone(),
        c.last_success_at.clone(),
        p.last_attempt_at.clone(),
        p.last_success_at.clone(),
        a.last_attempt_at.clone(),
        a.last_success_at.clone(),
    ]
}

fn set_probe_times(freshness: &mut Freshness, times: [Option<Time>; 6]) {
    let [c_attempt, c_success, p_attempt, p_success, a_attempt, a_success] = times;
    freshness.connection = ProbeTimes {
        last_attempt_at: c_attempt,
        last_success_at: c_success,
    };
    freshness.capacity = ProbeTimes {
        last_attempt_at: p_attempt,
        last_success_at: p_success,
    };
    freshness.accounts = ProbeTimes {
        last_attempt_at: a_attempt,
        last_success_at: a_success,
    };
}

impl Volatile {
    pub fn of(status: &DbInstanceStatus) -> Volatile {
        Volatile {
            connection_checked_at: status.connection.as_ref().and_then(|c| c.last_checked_at.clone()),
            latency_ms: status.connection.as_ref().and_then(|c| c.latency_ms),
            capacity: status
                .capacity
                .as_ref()
                .map(|c| (c.collected_at.clone(), c.duration_ms)),
            accounts: status.accounts.as_ref().map(|a| (a.synced_at.clone(), a.duration_ms)),
            probe_times: status.freshness.as_ref().map(probe_times).unwrap_or_default(),
            replication_lag: status.replication.as_ref().and_then(|r| r.lag_seconds),
        }
    }

    /// Keeps, field by field, whichever of `self` and `other` is newer.
    pub fn merge_newer(&mut self, other: Volatile) {
        if other.connection_checked_at > self.connection_checked_at {
            self.connection_checked_at = other.connection_checked_at;
            self.latency_ms = other.latency_ms;
            self.replication_lag = other.replication_lag;
        }
        if other.capacity.as_ref().map(|c| &c.0) > self.capacity.as_ref().map(|c| &c.0) {
            self.capacity = other.capacity;
        }
        if other.accounts.as_ref().map(|a| &a.0) > self.accounts.as_ref().map(|a| &a.0) {
            self.accounts = other.accounts;
        }
        for (mine, theirs) in self.probe_times.iter_mut().zip(other.probe_times) {
            if theirs > *mine {
                *mine = theirs;
            }
        }
    }

    /// Writes these values into `status` where it has the section.
    pub fn apply(&self, status: &mut DbInstanceStatus) {
        if let Some(c) = status.connection.as_mut() {
            c.last_checked_at = self.connection_checked_at.clone();
            c.latency_ms = self.latency_ms;
        }
        // Only while the state says there is a delay to show.
        if let Some(r) = status.replication.as_mut()
            && r.lag_seconds.is_some()
        {
            r.lag_seconds = self.replication_lag.or(r.lag_seconds);
        }
        if let (Some(c), Some((at, ms))) = (status.capacity.as_mut(), &self.capacity) {
            c.collected_at = at.clone();
            c.duration_ms = *ms;
        }
        if let (Some(a), Some((at, ms))) = (status.accounts.as_mut(), &self.accounts) {
            a.synced_at = at.clone();
            a.duration_ms = *ms;
        }
        if let Some(freshness) = status.freshness.as_mut() {
            set_probe_times(freshness, self.probe_times.clone());
        }
    }
}

/// `status` without its volatile fields: what must change for a write.
fn meaningful(status: &DbInstanceStatus) -> DbInstanceStatus {
    let mut status = status.clone();
    if let Some(c) = status.connection.as_mut() {
        c.last_checked_at = None;
        c.latency_ms = None;
    }
    if let Some(r) = status.replication.as_mut() {
        r.lag_seconds = r.lag_seconds.map(|_| 0);
    }
    let epoch = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    if let Some(c) = status.capacity.as_mut() {
        c.collected_at = epoch.clone();
        c.duration_ms = 0;
    }
    if let Some(a) = status.accounts.as_mut() {
        a.synced_at = epoch;
        a.duration_ms = 0;
    }
    if let Some(freshness) = status.freshness.as_mut() {
        set_probe_times(freshness, Default::default());
    }
    status
}

/// Whether `next` should replace `stored`: something meaningful changed, or
/// a freshness timestamp moved on by at least `report_interval`.
pub fn needs_write(stored: Option<&DbInstanceStatus>, next: &DbInstanceStatus, report_interval: Duration) -> bool {
    let Some(stored) = stored else { return true };
    if meaningful(stored) != meaningful(next) {
        return true;
    }
    let (before, after) = (Volatile::of(stored), Volatile::of(next));
    let moved = |before: Option<&Time>, after: Option<&Time>| match (before, after) {
        (Some(b), Some(a)) => {
            let elapsed = a.0.duration_since(b.0);
            elapsed.is_positive() && elapsed.unsigned_abs() >= report_interval
        }
        (None, Some(_)) => true,
        _ => false,
    };
    moved(
        before.connection_checked_at.as_ref(),
        after.connection_checked_at.as_ref(),
    ) || moved(
        before.capacity.as_ref().map(|c| &c.0),
        after.capacity.as_ref().map(|c| &c.0),
    ) || moved(
        before.accounts.as_ref().map(|a| &a.0),
        after.accounts.as_ref().map(|a| &a.0),
    ) || before
        .probe_times
        .iter()
        .zip(&after.probe_times)
        .any(|(before, after)| moved(before.as_ref(), after.as_ref()))
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
pub struct Stamp {
    pub now: SystemTime,
    pub generation: Option<i64>,
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

/// Sets a condition, its message bounded ([`bounds::message`]);
/// `lastTransitionTime` moves only when the status does.
pub(crate) fn set(conditions: &mut Vec<Condition>, type_: &str, status: &str, reason: &str, message: &str, at: Stamp) {
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
    use crate::probe::{Account, Accounts, Capacity, ConnectionInfo, DatabaseSize, ErrorKind, Stage};

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
                replication: Ok(crate::probe::Replication::standalone(
                    crate::crd::instance::DbType::Postgresql,
                    "db",
                    5432,
                )),
                login: Ok(Account::default()),
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
                hygiene: Default::default(),
            })),
            logins: 1,
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
        use crate::observe::inventory::{InventoryLimits, accounts_section, capacity_section};
        let requests = Requests {
            accounts: Some("r1".into()),
            ..Requests::default()
        };
        let limits = InventoryLimits::default();
        let capacity = run
            .and_then(|r| r.capacity.as_ref())
            .and_then(|c| c.as_ref().ok())
            .map(|c| capacity_section("db", c, None, &limits).section);
        let accounts = run
            .and_then(|r| r.accounts.as_ref())
            .and_then(|a| a.as_ref().ok())
            .map(|a| accounts_section("db", a, None, &limits).section);
        observed(
            previous,
            &Observation {
                now: at(secs),
                generation: Some(2),
                credentials,
                missing_tags: missing,
                run,
                requests: &requests,
                capacity: capacity.as_ref(),
                accounts: accounts.as_ref(),
                account_changes: AccountChanges::default(),
                findings: None,
                inventory: Some("db"),
                judging: None,
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
        assert_eq!(status.handled_requests.accounts.as_deref(), Some("r1"));
        assert_eq!(status.inventory.as_deref(), Some("db"));
        let connection = status.connection.as_ref().unwrap();
        assert_eq!(connection.latency_ms, Some(7));
        assert_eq!(connection.last_changed_at, Some(time(at(T0))));
        let message = &find(&status.conditions, CONNECTED).unwrap().message;
        assert!(!message.contains("ms"), "no latency in messages: {message}");
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
            logins: 1,
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
        let connection = failed.connection.as_ref().unwrap();
        assert_eq!(connection.message.as_deref(), Some("nothing listens on db:5432"));
        assert_eq!(connection.reason.as_deref(), Some("ConnectionRefused"));
        assert_eq!(
            connection.server_version.as_deref(),
            Some("15.4"),
            "the last known version stays"
        );
        assert_eq!(connection.last_changed_at, Some(time(at(T0 + 60))));
    }

    #[test]
    fn a_sync_that_cannot_connect_updates_the_connection_too() {
        let healthy = observe(&DbInstanceStatus::default(), Some(&healthy_run(T0)), Ok(()), &[], T0);
        let run = ProbeRun {
            at: at(T0 + 5),
            connection: None,
            capacity: None,
            accounts: Some(Err(refused(Stage::Connect))),
            logins: 1,
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
            logins: 1,
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

    #[test]
    fn an_unchanged_probe_writes_nothing_until_the_report_interval() {
        let report = Duration::from_secs(600);
        let first = observe(&DbInstanceStatus::default(), Some(&healthy_run(T0)), Ok(()), &[], T0);
        assert!(needs_write(None, &first, report));
        // A minute later: same state, only when and how fast changed.
        let mut run = healthy_run(T0 + 60);
        if let Some(Ok(info)) = run.connection.as_mut() {
            info.latency = Duration::from_millis(44);
        }
        let again = observe(&first, Some(&run), Ok(()), &[], T0 + 60);
        assert_ne!(again, first);
        assert!(!needs_write(Some(&first), &again, report));
        // Ten minutes on, the freshness is worth a write.
        let later = observe(&first, Some(&healthy_run(T0 + 600)), Ok(()), &[], T0 + 600);
        assert!(needs_write(Some(&first), &later, report));
        // A failure is always written.
        let error = refused(Stage::Connect);
        let down = ProbeRun {
            at: at(T0 + 61),
            connection: Some(Err(error)),
            capacity: None,
            accounts: None,
            logins: 1,
        };
        let failed = observe(&first, Some(&down), Ok(()), &[], T0 + 61);
        assert!(needs_write(Some(&first), &failed, report));
    }

    #[test]
    fn volatile_values_keep_the_newest_of_memory_and_status() {
        let first = observe(&DbInstanceStatus::default(), Some(&healthy_run(T0)), Ok(()), &[], T0);
        let newer = observe(&first, Some(&healthy_run(T0 + 120)), Ok(()), &[], T0 + 120);
        let mut memory = Volatile::of(&newer);
        memory.merge_newer(Volatile::of(&first));
        assert_eq!(memory, Volatile::of(&newer));
        let mut stale = first.clone();
        memory.apply(&mut stale);
        assert_eq!(Volatile::of(&stale), Volatile::of(&newer));
    }

    #[test]
    fn messages_from_a_server_are_bounded_everywhere_in_status() {
        let huge = format!("FATAL: {}", "x".repeat(100_000));
        let error = ProbeError::new(ErrorKind::ServerError, Stage::Connect, huge);
        let run = ProbeRun {
            at: at(T0),
            connection: Some(Err(error.clone())),
            capacity: Some(Err(error)),
            accounts: None,
            logins: 1,
        };
        let status = observe(&DbInstanceStatus::default(), Some(&run), Ok(()), &[], T0);
        for condition in &status.conditions {
            assert!(
                condition.message.len() <= bounds::MAX_MESSAGE_BYTES,
                "{}",
                condition.type_
            );
        }
        let connected = find(&status.conditions, CONNECTED).unwrap();
        assert!(connected.message.starts_with("FATAL: xxx"));
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

    fn judged(previous: &DbInstanceStatus, run: Option<&ProbeRun>, secs: u64) -> DbInstanceStatus {
        let settings = crate::versions::LifecycleSettings::default();
        let requests = Requests::default();
        observed(
            previous,
            &Observation {
                now: at(secs),
                generation: Some(1),
                credentials: Ok(()),
                missing_tags: &[],
                run,
                requests: &requests,
                capacity: None,
                accounts: None,
                account_changes: AccountChanges::default(),
                findings: None,
                inventory: None,
                judging: Some(Judging {
                    db_type: DbType::Postgresql,
                    table: LifecycleTable::built_in(),
                    settings: &settings,
                }),
            },
        )
    }

    fn condition(status: &DbInstanceStatus, type_: &str) -> (String, String, String) {
        let c = find(&status.conditions, type_).unwrap_or_else(|| panic!("no {type_}"));
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }

    #[test]
    fn the_version_and_the_login_are_judged_and_kept_while_the_server_is_down() {
        const DEC_2026: u64 = 1_796_601_599; // 2026-12-06
        let mut run = healthy_run(DEC_2026);
        if let Some(Ok(info)) = run.connection.as_mut() {
            info.server_version = "15.18 (Debian 15.18-0+deb12u1)".into();
            info.login = Ok(Account {
                name: "monitor".into(),
                ..Account::default()
            });
        }
        let first = judged(&DbInstanceStatus::default(), Some(&run), DEC_2026);
        let (state, reason, message) = condition(&first, versions::VERSION_SUPPORTED);
        assert_eq!((state.as_str(), reason.as_str()), ("True", "Supported"));
        assert!(
            message.contains("PostgreSQL 15 is supported until 2027-11-11"),
            "{message}"
        );
        assert_eq!(
            first.release,
            Some(ReleaseStatus {
                line: "PostgreSQL 15".into(),
                end_of_life: Some("2027-11-11".into())
            })
        );
        let (state, reason, message) = condition(&first, login_check::LOGIN_PRIVILEGES);
        assert_eq!((state.as_str(), reason.as_str()), ("False", "Insufficient"));
        assert!(message.contains("GRANT pg_monitor TO \"monitor\";"), "{message}");

        // Down: the last known version is still judged, the login's
        // verdict stays as it was.
        let down = ProbeRun {
            at: at(DEC_2026 + 60),
            connection: Some(Err(refused(Stage::Connect))),
            capacity: None,
            accounts: None,
            logins: 1,
        };
        let failed = judged(&first, Some(&down), DEC_2026 + 60);
        assert_eq!(
            condition(&failed, versions::VERSION_SUPPORTED),
            condition(&first, versions::VERSION_SUPPORTED)
        );
        assert_eq!(
            condition(&failed, login_check::LOGIN_PRIVILEGES),
            condition(&first, login_check::LOGIN_PRIVILEGES)
        );

        // A year on, the same server is past its end of life.
        let later = judged(&first, None, DEC_2026 + 366 * 86_400);
        let (state, reason, _) = condition(&later, versions::VERSION_SUPPORTED);
        assert_eq!((state.as_str(), reason.as_str()), ("False", "EndOfLife"));
    }

    #[test]
    fn an_instance_never_tested_has_an_unknown_version() {
        let status = judged(&DbInstanceStatus::default(), None, T0);
        let (state, reason, _) = condition(&status, versions::VERSION_SUPPORTED);
        assert_eq!((state.as_str(), reason.as_str()), ("Unknown", "NotTested"));
        assert!(
            find(&status.conditions, login_check::LOGIN_PRIVILEGES).is_none(),
            "judged only after a test"
        );
        assert_eq!(status.release, None);
    }
}
