//! What dbfleet's own login may do, judged against what the probes need
//! (docs/probes.md, "The monitoring account"): the `LoginPrivileges`
//! condition, with the exact GRANT or REVOKE that fixes it. Pure; the
//! facts are read by the connection test on its own session
//! (`probe::ConnectionInfo::login`).
//!
//! Reasons, in order of precedence:
//! - `Superuser` (True): PostgreSQL `rolsuper`, MySQL/MariaDB `SUPER`: the
//!   probes work, and a leaked password is the whole server.
//! - `Insufficient` (False): a grant the collections need is missing, so
//!   capacity or accounts are incomplete.
//! - `ExcessPrivileges` (True): the needed grants and more than reading
//!   needs (writes, grant option, role attributes, data or file access).
//! - `LeastPrivilege` (True): exactly the documented grants (read-only
//!   monitoring privileges beside them are fine).
//! - `CheckFailed` (Unknown): the privileges could not be read.

use crate::crd::instance::DbType;
use crate::probe::{Account, ProbeError};

pub const LOGIN_PRIVILEGES: &str = "LoginPrivileges";

/// The `LoginPrivileges` condition to set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginVerdict {
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl LoginVerdict {
    /// A bounded label for metrics and counts.
    pub fn state(&self) -> &'static str {
        state_of(self.reason)
    }
}

/// Every value [`state_of`] takes.
pub const STATES: [&str; 5] = ["least_privilege", "excess", "superuser", "insufficient", "unknown"];

/// The metric and statistics label of a `LoginPrivileges` reason.
pub fn state_of(reason: &str) -> &'static str {
    match reason {
        "Superuser" => "superuser",
        "Insufficient" => "insufficient",
        "ExcessPrivileges" => "excess",
        "LeastPrivilege" => "least_privilege",
        _ => "unknown",
    }
}

/// Judges the login from what the connection test read about it.
pub fn judge(db_type: DbType, login: &Result<Account, ProbeError>) -> LoginVerdict {
    let login = match login {
        Ok(login) => login,
        Err(error) => {
            return LoginVerdict {
                status: "Unknown",
                reason: "CheckFailed",
                message: format!("the login's privileges could not be read: {}", error.message),
            };
        }
    };
    let findings = match db_type {
        DbType::Postgresql => postgres(login),
        DbType::Mysql => mysql(login),
    };
    findings.verdict()
}

/// What is wrong with a login, as statements that fix it.
#[derive(Default)]
struct Findings {
    superuser: Option<String>,
    missing: Vec<(String, String)>,
    excess: Vec<(String, String)>,
}

impl Findings {
    fn verdict(self) -> LoginVerdict {
        let fix = |items: &[(String, String)]| items.iter().map(|(_, sql)| sql.as_str()).collect::<Vec<_>>().join(" ");
        let what = |items: &[(String, String)]| {
            items
                .iter()
                .map(|(what, _)| what.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        };
        if let Some(revoke) = self.superuser {
            let mut message = format!(
                "the login is a superuser: the probes need far less, and its password opens the whole server; run: {revoke}"
            );
            if !self.missing.is_empty() {
                message.push_str(&format!(" {}", fix(&self.missing)));
            }
            return LoginVerdict {
                status: "True",
                reason: "Superuser",
                message,
            };
        }
        if !self.missing.is_empty() {
            let mut message = format!("{}; run: {}", what(&self.missing), fix(&self.missing));
            if !self.excess.is_empty() {
                message.push_str(&format!(
                    " It also holds more than it needs ({}); run: {}",
                    what(&self.excess),
                    fix(&self.excess)
                ));
            }
            return LoginVerdict {
                status: "False",
                reason: "Insufficient",
                message,
            };
        }
        if !self.excess.is_empty() {
            return LoginVerdict {
                status: "True",
                reason: "ExcessPrivileges",
                message: format!(
                    "the login holds more than the probes need ({}); run: {}",
                    what(&self.excess),
                    fix(&self.excess)
                ),
            };
        }
        LoginVerdict {
            status: "True",
            reason: "LeastPrivilege",
            message: "the login holds exactly the grants docs/probes.md lists".into(),
        }
    }
}

/// Predefined PostgreSQL roles that write, read every table, touch the
/// server's files or programs, or act on other sessions: none is needed.
const PG_POWERFUL_ROLES: [&str; 9] = [
    "pg_checkpoint",
    "pg_create_subscription",
    "pg_execute_server_program",
    "pg_maintain",
    "pg_read_all_data",
    "pg_read_server_files",
    "pg_signal_backend",
    "pg_write_all_data",
    "pg_write_server_files",
];

fn postgres(login: &Account) -> Findings {
    let role = pg_ident(&login.name);
    let mut findings = Findings::default();
    if login.superuser {
        findings.superuser = Some(format!("ALTER ROLE {role} NOSUPERUSER; GRANT pg_monitor TO {role};"));
        return findings;
    }
    if !login.roles.iter().any(|r| r == "pg_monitor") {
        findings.missing.push((
            "without pg_monitor the login cannot read the size of databases it may not connect to, \
             nor other sessions' statistics"
                .into(),
            format!("GRANT pg_monitor TO {role};"),
        ));
    }
    if !login.attributes.is_empty() {
        let off: Vec<String> = login.attributes.iter().map(|a| format!("NO{a}")).collect();
        findings.excess.push((
            format!("role attributes {}", login.attributes.join(", ")),
            format!("ALTER ROLE {role} {};", off.join(" ")),
        ));
    }
    for powerful in login.roles.iter().filter(|r| PG_POWERFUL_ROLES.contains(&r.as_str())) {
        findings.excess.push((
            format!("member of {powerful}"),
            format!("REVOKE {powerful} FROM {role};"),
        ));
    }
    findings
}

/// Global privileges that only let the login look: the probes need `SHOW
/// VIEW`; the others show server state (replication status, sessions,
/// schema names) and change nothing.
const MYSQL_READ_ONLY_GLOBAL: [&str; 8] = [
    "BINLOG MONITOR",
    "PROCESS",
    "REPLICA MONITOR",
    "REPLICATION CLIENT",
    "SHOW DATABASES",
    "SHOW VIEW",
    "SLAVE MONITOR",
    "USAGE",
];

fn mysql(login: &Account) -> Findings {
    let account = mysql_account(&login.name, login.host.as_deref().unwrap_or("%"));
    let mut findings = Findings::default();
    let global = |privilege: &str| login.global_privileges.iter().any(|p| p == privilege);
    if global("SUPER") {
        findings.superuser = Some(format!(
            "REVOKE ALL PRIVILEGES, GRANT OPTION FROM {account}; GRANT SHOW VIEW ON *.* TO {account}; \
             GRANT SELECT ON mysql.* TO {account};"
        ));
        return findings;
    }
    if !global("SHOW VIEW") && !global("SELECT") {
        findings.missing.push((
            "without SHOW VIEW on *.* the login sees only the tables it holds a privilege on, so sizes \
             and table counts are incomplete"
                .into(),
            format!("GRANT SHOW VIEW ON *.* TO {account};"),
        ));
    }
    let on_mysql = login.databases.iter().find(|d| d.name == "mysql");
    let reads_mysql = global("SELECT") || on_mysql.is_some_and(|d| d.privileges.iter().any(|p| p == "SELECT"));
    if !reads_mysql {
        findings.missing.push((
            "without SELECT on mysql.* the login cannot list accounts and sees only its own grants".into(),
            format!("GRANT SELECT ON mysql.* TO {account};"),
        ));
    }
    let extra: Vec<&str> = login
        .global_privileges
        .iter()
        .map(String::as_str)
        .filter(|p| !MYSQL_READ_ONLY_GLOBAL.contains(p))
        .collect();
    if !extra.is_empty() {
        findings.excess.push((
            format!("{} on *.*", extra.join(", ")),
            format!("REVOKE {} ON *.* FROM {account};", extra.join(", ")),
        ));
    }
    if login.global_grant_option {
        findings.excess.push((
            "GRANT OPTION on *.*".into(),
            format!("REVOKE GRANT OPTION ON *.* FROM {account};"),
        ));
    }
    for database in &login.databases {
        // SELECT on mysql is the documented grant; SHOW VIEW anywhere only
        // shows definitions. Anything else writes or reads data.
        let extra: Vec<&str> = database
            .privileges
            .iter()
            .map(String::as_str)
            .filter(|p| *p != "SHOW VIEW" && !(database.name == "mysql" && *p == "SELECT"))
            .collect();
        let schema = mysql_schema(&database.name);
        if !extra.is_empty() {
            findings.excess.push((
                format!("{} on {schema}.*", extra.join(", ")),
                format!("REVOKE {} ON {schema}.* FROM {account};", extra.join(", ")),
            ));
        }
        if database.grant_option {
            findings.excess.push((
                format!("GRANT OPTION on {schema}.*"),
                format!("REVOKE GRANT OPTION ON {schema}.* FROM {account};"),
            ));
        }
    }
    findings
}

/// A PostgreSQL role name as an identifier: always quoted, so any name
/// reads back as itself.
fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn mysql_account(user: &str, host: &str) -> String {
    format!("'{}'@'{}'", user.replace('\'', "''"), host.replace('\'', "''"))
}

/// A schema name or pattern (`app\_%`) as MySQL's GRANT takes it.
fn mysql_schema(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{DatabaseGrant, ErrorKind, Stage};

    fn pg(roles: &[&str], attributes: &[&str], superuser: bool) -> Result<Account, ProbeError> {
        Ok(Account {
            name: "dbfleet_monitor".into(),
            superuser,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            attributes: attributes.iter().map(|a| a.to_string()).collect(),
            ..Account::default()
        })
    }

    fn my(global: &[&str], grant_option: bool, schemas: &[(&str, &[&str])]) -> Result<Account, ProbeError> {
        Ok(Account {
            name: "mon".into(),
            host: Some("%".into()),
            global_privileges: global.iter().map(|p| p.to_string()).collect(),
            global_grant_option: grant_option,
            databases: schemas
                .iter()
                .map(|(name, privileges)| DatabaseGrant {
                    privileges: privileges.iter().map(|p| p.to_string()).collect(),
                    ..DatabaseGrant::named(*name)
                })
                .collect(),
            ..Account::default()
        })
    }

    #[test]
    fn postgres_the_documented_login_is_least_privilege() {
        let monitor = [
            "pg_monitor",
            "pg_read_all_settings",
            "pg_read_all_stats",
            "pg_stat_scan_tables",
        ];
        let verdict = judge(DbType::Postgresql, &pg(&monitor, &[], false));
        assert_eq!((verdict.status, verdict.reason), ("True", "LeastPrivilege"));
        assert_eq!(verdict.state(), "least_privilege");
    }

    #[test]
    fn postgres_without_pg_monitor_is_insufficient_and_says_what_to_grant() {
        let verdict = judge(DbType::Postgresql, &pg(&[], &[], false));
        assert_eq!((verdict.status, verdict.reason), ("False", "Insufficient"));
        assert!(
            verdict.message.contains("GRANT pg_monitor TO \"dbfleet_monitor\";"),
            "{}",
            verdict.message
        );
        let both = judge(DbType::Postgresql, &pg(&["pg_read_all_data"], &["CREATEDB"], false));
        assert_eq!(both.reason, "Insufficient", "missing comes first");
        assert!(
            both.message
                .contains("REVOKE pg_read_all_data FROM \"dbfleet_monitor\";"),
            "{}",
            both.message
        );
        assert!(
            both.message.contains("ALTER ROLE \"dbfleet_monitor\" NOCREATEDB;"),
            "{}",
            both.message
        );
    }

    #[test]
    fn postgres_superusers_and_extra_powers_are_named_with_the_revoke() {
        let verdict = judge(DbType::Postgresql, &pg(&["pg_monitor"], &[], true));
        assert_eq!((verdict.status, verdict.reason), ("True", "Superuser"));
        assert!(
            verdict
                .message
                .contains("ALTER ROLE \"dbfleet_monitor\" NOSUPERUSER; GRANT pg_monitor TO \"dbfleet_monitor\";"),
            "{}",
            verdict.message
        );
        let extra = judge(
            DbType::Postgresql,
            &pg(
                &["pg_monitor", "pg_write_all_data"],
                &["CREATEROLE", "REPLICATION"],
                false,
            ),
        );
        assert_eq!((extra.status, extra.reason), ("True", "ExcessPrivileges"));
        assert!(
            extra
                .message
                .contains("ALTER ROLE \"dbfleet_monitor\" NOCREATEROLE NOREPLICATION;")
                && extra
                    .message
                    .contains("REVOKE pg_write_all_data FROM \"dbfleet_monitor\";"),
            "{}",
            extra.message
        );
    }

    #[test]
    fn mysql_the_documented_login_is_least_privilege_with_read_only_extras() {
        let documented = judge(DbType::Mysql, &my(&["SHOW VIEW"], false, &[("mysql", &["SELECT"])]));
        assert_eq!((documented.status, documented.reason), ("True", "LeastPrivilege"));
        let with_monitoring = judge(
            DbType::Mysql,
            &my(
                &["PROCESS", "SHOW VIEW", "SLAVE MONITOR"],
                false,
                &[("mysql", &["SELECT"])],
            ),
        );
        assert_eq!(with_monitoring.reason, "LeastPrivilege");
    }

    #[test]
    fn mysql_without_select_on_mysql_is_insufficient_and_says_what_to_grant() {
        let verdict = judge(DbType::Mysql, &my(&["SHOW VIEW"], false, &[]));
        assert_eq!((verdict.status, verdict.reason), ("False", "Insufficient"));
        assert!(
            verdict.message.contains("GRANT SELECT ON mysql.* TO 'mon'@'%';"),
            "{}",
            verdict.message
        );
        assert!(!verdict.message.contains("SHOW VIEW ON"), "{}", verdict.message);
        let bare = judge(DbType::Mysql, &my(&[], false, &[]));
        assert!(
            bare.message.contains("GRANT SHOW VIEW ON *.* TO 'mon'@'%';"),
            "{}",
            bare.message
        );
    }

    #[test]
    fn mysql_superusers_and_writes_are_named_with_the_revoke() {
        let admin = judge(DbType::Mysql, &my(&["SELECT", "INSERT", "SUPER"], true, &[]));
        assert_eq!((admin.status, admin.reason), ("True", "Superuser"));
        assert!(
            admin
                .message
                .contains("REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'mon'@'%';"),
            "{}",
            admin.message
        );
        let writer = judge(
            DbType::Mysql,
            &my(
                &["SHOW VIEW", "RELOAD"],
                false,
                &[("mysql", &["INSERT", "SELECT"]), ("app\\_%", &["SELECT", "SHOW VIEW"])],
            ),
        );
        assert_eq!((writer.status, writer.reason), ("True", "ExcessPrivileges"));
        for revoke in [
            "REVOKE RELOAD ON *.* FROM 'mon'@'%';",
            "REVOKE INSERT ON `mysql`.* FROM 'mon'@'%';",
            "REVOKE SELECT ON `app\\_%`.* FROM 'mon'@'%';",
        ] {
            assert!(writer.message.contains(revoke), "{revoke} in {}", writer.message);
        }
    }

    #[test]
    fn names_are_quoted_so_a_statement_cannot_be_broken_out_of() {
        let mut login = pg(&[], &[], false).unwrap();
        login.name = "we\"ird".into();
        let verdict = judge(DbType::Postgresql, &Ok(login));
        assert!(
            verdict.message.contains("GRANT pg_monitor TO \"we\"\"ird\";"),
            "{}",
            verdict.message
        );
        let mut login = my(&["SHOW VIEW"], false, &[]).unwrap();
        login.name = "o'brien".into();
        let verdict = judge(DbType::Mysql, &Ok(login));
        assert!(verdict.message.contains("TO 'o''brien'@'%';"), "{}", verdict.message);
    }

    #[test]
    fn unreadable_privileges_are_unknown() {
        let error = ProbeError::new(ErrorKind::PermissionDenied, Stage::Query, "denied");
        let verdict = judge(DbType::Mysql, &Err(error));
        assert_eq!(
            (verdict.status, verdict.reason, verdict.state()),
            ("Unknown", "CheckFailed", "unknown")
        );
    }
}
