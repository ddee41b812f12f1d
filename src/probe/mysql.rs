//! MySQL and MariaDB probes over mysql_async.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mysql_async::prelude::{FromValue, Queryable};
use mysql_async::{Conn, DriverError, Error as MyError, OptsBuilder, Row};

use super::accounts::{Account, AccountKey, DatabaseGrant};
use super::auth_policy::{AuthPolicy, insecure_error};
use super::error::{ErrorKind, ProbeError, Stage, describe, transport_kind};
use super::hygiene::{Checked, Hygiene, STRONG_PLUGINS};
use super::mysql_relay::{LoginOutcome, Relay, TlsPlan};
use super::net::{bounded, connect_any};
use super::replication::{Lag, MAX_REPLICAS_LISTED, Replication, Source};
use super::{Collect, DatabaseSize, LoggedIn, Probed, Target, tls};
use tokio::net::TcpStream;

use crate::crd::instance::TlsMode;

/// How long a closing connection may take to say goodbye.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

const SYSTEM_SCHEMAS: [&str; 4] = ["information_schema", "mysql", "performance_schema", "sys"];

/// Every schema with the data and index length of its tables and how many
/// base tables it holds (views and sequences are not tables). The
/// monitoring account sees every schema's tables through `SHOW VIEW` on
/// `*.*` (docs/probes.md).
const CAPACITY_SQL: &str = "SELECT s.SCHEMA_NAME, \
     CAST(COALESCE(SUM(t.DATA_LENGTH + COALESCE(t.INDEX_LENGTH, 0)), 0) AS UNSIGNED), \
     CAST(COALESCE(SUM(t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')), 0) AS UNSIGNED) \
     FROM information_schema.SCHEMATA s \
     LEFT JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = s.SCHEMA_NAME \
     GROUP BY s.SCHEMA_NAME ORDER BY s.SCHEMA_NAME";

/// Replication to this server, on every MySQL and MariaDB (MySQL 8.0.22
/// renamed it `SHOW REPLICA STATUS`, and 8.4 dropped the old name). Needs
/// `REPLICA MONITOR` on MariaDB 10.5 and later, `REPLICATION CLIENT` on
/// MySQL (docs/probes.md).
const REPLICA_STATUS_SQL: &str = "SHOW SLAVE STATUS";
const MYSQL_REPLICA_STATUS_SQL: &str = "SHOW REPLICA STATUS";

/// The replicas reading this server's binary log. Other logins' threads
/// are visible with `PROCESS` only; MariaDB also counts them in
/// `Slaves_connected`, which needs no privilege.
const BINLOG_READERS_SQL: &str =
    "SELECT HOST FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%' ORDER BY HOST";
const MARIADB_REPLICAS_CONNECTED_SQL: &str = "SHOW GLOBAL STATUS LIKE 'Slaves_connected'";

/// MySQL 8 caches table statistics for a day unless told otherwise.
const MYSQL8_FRESH_STATS_SQL: &str = "SET SESSION information_schema_stats_expiry = 0";

/// MariaDB (10.4+) keeps the lock state only in `mysql.global_priv`.
const MARIADB_ACCOUNTS_SQL: &str = "SELECT u.User, u.Host, u.Super_priv, u.is_role, u.password_expired, \
     IF(COALESCE(JSON_VALUE(g.Priv, '$.account_locked'), 'false') IN ('true', '1'), 'Y', 'N'), u.plugin \
     FROM mysql.user u LEFT JOIN mysql.global_priv g ON g.User = u.User AND g.Host = u.Host \
     ORDER BY u.User, u.Host";

/// MySQL (5.7.6+) has the flags as columns. Its roles are locked accounts.
const MYSQL_ACCOUNTS_SQL: &str = "SELECT User, Host, Super_priv, 'N', password_expired, account_locked, plugin \
     FROM mysql.user ORDER BY User, Host";

/// Privileges `ON *.*`, one row each, grantee as `'user'@'host'` (a
/// MariaDB role's host is empty). Every row is visible with `SELECT` on
/// `mysql.*`.
const GLOBAL_PRIVILEGES_SQL: &str =
    "SELECT GRANTEE, PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.USER_PRIVILEGES";

/// Privileges `ON db.*` (`mysql.db`), one row each; `TABLE_SCHEMA` is the
/// name or pattern as granted.
const SCHEMA_PRIVILEGES_SQL: &str =
    "SELECT GRANTEE, TABLE_SCHEMA, PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.SCHEMA_PRIVILEGES";

/// Databases (or patterns) named in table-, column- and routine-level
/// grants, which are not listed privilege by privilege.
const OBJECT_GRANTS_SQL: &str = "SELECT User, Host, Db FROM mysql.tables_priv \
     UNION SELECT User, Host, Db FROM mysql.columns_priv \
     UNION SELECT User, Host, Db FROM mysql.procs_priv";

/// The login's own global (schema NULL) and schema-level privileges, for
/// the grantee `{me}`: `information_schema` shows every account its own
/// rows whatever it holds.
const LOGIN_PRIVILEGES_SQL: &str = "SELECT NULL, PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.USER_PRIVILEGES \
       WHERE GRANTEE = {me} \
     UNION ALL SELECT TABLE_SCHEMA, PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.SCHEMA_PRIVILEGES \
       WHERE GRANTEE = {me}";

/// Per account, for the hygiene findings: whether its
/// `authentication_string` is empty and whether its password never
/// expires, both computed on the server (the string itself is never
/// selected). MariaDB keeps the lifetime in `mysql.global_priv`, -1 or
/// absent meaning the server default.
const MARIADB_HYGIENE_SQL: &str = "SELECT u.User, u.Host, u.authentication_string = '', \
       CASE WHEN COALESCE(JSON_VALUE(g.Priv, '$.password_lifetime'), -1) = -1 \
         THEN @@default_password_lifetime ELSE JSON_VALUE(g.Priv, '$.password_lifetime') END = 0 \
     FROM mysql.user u LEFT JOIN mysql.global_priv g ON g.User = u.User AND g.Host = u.Host";

/// MySQL: `password_lifetime` NULL is the server default.
const MYSQL_HYGIENE_SQL: &str = "SELECT User, Host, authentication_string = '', \
       COALESCE(password_lifetime, @@default_password_lifetime) = 0 FROM mysql.user";

/// Authentication plugins the server has loaded, readable by anyone.
const AUTH_PLUGINS_SQL: &str = "SELECT PLUGIN_NAME FROM information_schema.PLUGINS \
     WHERE PLUGIN_TYPE = 'AUTHENTICATION' AND PLUGIN_STATUS = 'ACTIVE'";

/// Roles granted to each account: MariaDB names roles alone.
const MARIADB_ROLES_SQL: &str = "SELECT User, Host, Role FROM mysql.roles_mapping";

/// MySQL 8 roles are accounts, named `role@host`.
const MYSQL_ROLES_SQL: &str = "SELECT TO_USER, TO_HOST, CONCAT(FROM_USER, '@', FROM_HOST) FROM mysql.role_edges";

struct Session {
    conn: Conn,
    addr: SocketAddr,
    tls: bool,
    /// Copies the session's bytes; ends with it.
    _relay: Relay,
}

impl Session {
    /// Sends COM_QUIT and closes the socket.
    async fn close(self) {
        let _ = tokio::time::timeout(CLOSE_GRACE, self.conn.disconnect()).await;
    }

    fn query_error(&self, what: &str, err: &MyError) -> ProbeError {
        ProbeError::with_hint(
            classify(err),
            Stage::Query,
            format!("MySQL at {}: {what} failed: {}", self.addr, describe(err)),
        )
        .with_server_code(server_code(err))
    }

    async fn rows(&mut self, what: &str, sql: &str) -> Result<Vec<Row>, ProbeError> {
        match self.conn.query::<Row, _>(sql).await {
            Ok(rows) => Ok(rows),
            Err(err) => Err(self.query_error(what, &err)),
        }
    }

    async fn server_version(&mut self) -> Result<String, ProbeError> {
        let rows = self.rows("reading the server version", "SELECT VERSION()").await?;
        match rows.first() {
            Some(row) => column(row, 0),
            None => Err(ProbeError::with_hint(
                ErrorKind::Protocol,
                Stage::Query,
                format!("MySQL at {}: SELECT VERSION() returned no row", self.addr),
            )),
        }
    }
}

/// MySQL server error numbers the probes tell apart.
mod code {
    pub const DBACCESS_DENIED: u16 = 1044;
    pub const ACCESS_DENIED: u16 = 1045;
    pub const HOST_NOT_PRIVILEGED: u16 = 1130;
    pub const TABLEACCESS_DENIED: u16 = 1142;
    pub const COLUMNACCESS_DENIED: u16 = 1143;
    pub const SPECIFIC_ACCESS_DENIED: u16 = 1227;
    pub const PROCACCESS_DENIED: u16 = 1370;
    pub const ACCESS_DENIED_NO_PASSWORD: u16 = 1698;
    pub const MUST_CHANGE_PASSWORD: u16 = 1820;
    pub const MUST_CHANGE_PASSWORD_LOGIN: u16 = 1862;
    pub const MYSQL_ACCOUNT_LOCKED: u16 = 3118;
    pub const MARIADB_ACCOUNT_LOCKED: u16 = 4151;
    pub const QUERY_INTERRUPTED: u16 = 1317;
    pub const STATEMENT_TIMEOUT: u16 = 1969;
}

fn classify(err: &MyError) -> ErrorKind {
    match err {
        MyError::Server(e) => match e.code {
            code::ACCESS_DENIED
            | code::ACCESS_DENIED_NO_PASSWORD
            | code::HOST_NOT_PRIVILEGED
            | code::MUST_CHANGE_PASSWORD
            | code::MUST_CHANGE_PASSWORD_LOGIN
            | code::MYSQL_ACCOUNT_LOCKED
            | code::MARIADB_ACCOUNT_LOCKED => ErrorKind::AuthenticationFailed,
            code::DBACCESS_DENIED
            | code::TABLEACCESS_DENIED
            | code::COLUMNACCESS_DENIED
            | code::SPECIFIC_ACCESS_DENIED
            | code::PROCACCESS_DENIED => ErrorKind::PermissionDenied,
            code::QUERY_INTERRUPTED | code::STATEMENT_TIMEOUT => ErrorKind::Timeout,
            _ => ErrorKind::ServerError,
        },
        // The driver is built without TLS (the relay does it), so only
        // this can come from the driver about TLS.
        MyError::Driver(DriverError::NoClientSslFlagFromServer) => ErrorKind::TlsError,
        other => transport_kind(other).unwrap_or(ErrorKind::Protocol),
    }
}

fn server_code(err: &MyError) -> Option<String> {
    match err {
        MyError::Server(e) => Some(e.code.to_string()),
        _ => None,
    }
}

/// A column of a text-protocol row, or a `Protocol` error naming it.
fn column<T: FromValue>(row: &Row, index: usize) -> Result<T, ProbeError> {
    match row.get_opt::<T, _>(index) {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(ProbeError::with_hint(
            ErrorKind::Protocol,
            Stage::Query,
            format!("unexpected value in column {index}: {e}"),
        )),
        None => Err(ProbeError::with_hint(
            ErrorKind::Protocol,
            Stage::Query,
            format!("missing column {index}"),
        )),
    }
}

fn flag(row: &Row, index: usize) -> Result<bool, ProbeError> {
    Ok(column::<Option<String>>(row, index)?.is_some_and(|v| v.eq_ignore_ascii_case("Y")))
}

/// Logs in through the relay at the Unix socket `relay` (see
/// `mysql_relay`), which owns the
/// connection to the server and its TLS. The login runs as a task of its
/// own: mysql_common panics on a malformed RSA key from the server, and a
/// lying server must make a failed probe, not a crashed controller.
async fn handshake(
    target: &Target,
    relay: &Path,
    policy: AuthPolicy,
) -> Result<Result<Conn, MyError>, tokio::task::JoinError> {
    let opts = OptsBuilder::default()
        .socket(Some(relay.to_string_lossy()))
        .user(Some(&target.user))
        .pass(Some(target.password.expose()))
        .db_name(target.database.as_deref())
        // Stay on the relay: never switch to the server's own Unix socket.
        .prefer_socket(false)
        .stmt_cache_size(0)
        // The relay refuses mysql_clear_password unless the server was
        // verified; the driver refuses it on its own as well then.
        .enable_cleartext_plugin(policy.recoverable_password())
        .ssl_opts(None::<mysql_async::SslOpts>);
    tokio::spawn(Conn::new(opts)).await
}

fn tls_plan(target: &Target) -> Result<TlsPlan, ProbeError> {
    let config = tls::client_config(&target.tls)?.map(Arc::new);
    Ok(match (target.tls.mode, config) {
        (TlsMode::Disable, _) | (_, None) => TlsPlan::Off,
        (TlsMode::Prefer, Some(config)) => TlsPlan::IfOffered(config),
        (TlsMode::Require | TlsMode::VerifyFull, Some(config)) => TlsPlan::Required(config),
    })
}

/// Connects to one address and logs in.
async fn open_at(target: &Target, addr: SocketAddr) -> Result<Session, ProbeError> {
    let failed = |kind: ErrorKind, detail: String| {
        ProbeError::with_hint(
            kind,
            Stage::Connect,
            format!(
                "cannot connect to MySQL at {addr} (user \"{}\", tls {}): {detail}",
                target.user,
                tls::mode_name(target.tls.mode)
            ),
        )
    };
    let io_failed = |e: std::io::Error| failed(transport_kind(&e).unwrap_or(ErrorKind::Protocol), describe(&e));
    let server = TcpStream::connect(addr).await.map_err(io_failed)?;
    let policy = AuthPolicy::new(&target.tls, false);
    let mut relay = Relay::start(server, &target.host, tls_plan(target)?, policy, target.timeouts.connect)
        .await
        .map_err(io_failed)?;
    let Ok(connected) = handshake(target, &relay.socket, policy).await else {
        let detail = "the driver gave up on the server's login answer (a malformed RSA public key?)";
        return Err(failed(ErrorKind::Protocol, detail.into()));
    };
    // The relay reports before the driver sees the login end, so the
    // outcome is there whenever the driver returns.
    let outcome = relay.outcome.try_recv().ok();
    match (connected, outcome) {
        (_, Some(LoginOutcome::Refused(request))) => Err(insecure_error("MySQL", addr, target.tls.mode, request)),
        // The driver saw only the connection close: the relay knows why.
        (Err(MyError::Io(_)) | Ok(_), Some(LoginOutcome::Failed { kind, detail })) => Err(failed(kind, detail)),
        (Ok(conn), Some(LoginOutcome::Relayed { tls })) => Ok(Session {
            conn,
            addr,
            tls,
            _relay: relay,
        }),
        (Ok(_), None) => Err(failed(
            ErrorKind::Protocol,
            "the login ended without the server's answer".into(),
        )),
        (Err(err), _) => Err(failed(classify(&err), describe(&err)).with_server_code(server_code(&err))),
    }
}

/// Connects and logs in, within the connect timeout.
async fn open(target: &Target) -> Result<Session, ProbeError> {
    if target.tls.mode == TlsMode::VerifyFull {
        tls::parse_ca_bundle(tls::required_ca(&target.tls)?)?;
    }
    bounded(
        target.timeouts.connect,
        Stage::Connect,
        || format!("connecting to MySQL at {}", target.address()),
        connect_any(target, |addr| open_at(target, addr)),
    )
    .await
}

/// Runs `work` within the operation timeout.
async fn within_timeout<T>(
    target: &Target,
    addr: SocketAddr,
    what: &'static str,
    work: impl Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    bounded(
        target.timeouts.operation,
        Stage::Query,
        || format!("{what} on MySQL at {addr}"),
        work,
    )
    .await
}

pub(super) async fn probe(target: &Target, collect: Collect<'_>) -> Probed {
    let started = Instant::now();
    let at = SystemTime::now();
    let mut session = match open(target).await {
        Ok(session) => session,
        Err(error) => return Probed::failed(error, collect, 1),
    };
    let addr = session.addr;
    let server_version =
        match within_timeout(target, addr, "reading the server version", session.server_version()).await {
            Ok(version) => version,
            Err(error) => {
                session.close().await;
                return Probed::failed(error, collect, 1);
            }
        };
    let connected = started.elapsed();
    let login = within_timeout(
        target,
        addr,
        "reading the login's privileges",
        own_privileges(&mut session),
    )
    .await;
    let run = LoggedIn {
        server_version,
        connected,
        at,
        login,
    };
    let replication = within_timeout(
        target,
        addr,
        "reading the replication state",
        replication(target, &mut session, &run.server_version),
    )
    .await;
    let connection = Ok(run.connection(session.tls, replication));
    let capacity = if collect.capacity {
        let began = Instant::now();
        let work = capacity(&mut session, &run.server_version);
        let result = within_timeout(target, addr, "collecting capacity", work).await;
        Some(result.map(|(databases, system_databases)| run.capacity(began, databases, system_databases)))
    } else {
        None
    };
    let accounts = if collect.accounts {
        let began = Instant::now();
        let work = accounts(&mut session, &run.server_version);
        let result = within_timeout(target, addr, "collecting accounts", work).await;
        Some(result.map(|accounts| run.accounts(began, accounts)))
    } else {
        None
    };
    session.close().await;
    Probed {
        connection,
        capacity,
        accounts,
        logins: 1,
    }
}

/// `read_only`, `server_id` (and MySQL's `server_uuid`), the source this
/// server replicates from, and the replicas reading its binary log.
async fn replication(target: &Target, session: &mut Session, version: &str) -> Result<Replication, ProbeError> {
    let mariadb = is_mariadb(version);
    let identity_sql = if mariadb {
        "SELECT @@global.read_only, @@global.server_id, NULL"
    } else {
        "SELECT @@global.read_only, @@global.server_id, @@global.server_uuid"
    };
    let identity = session.rows("reading read_only and server_id", identity_sql).await?;
    let identity = identity.first().ok_or_else(|| {
        ProbeError::with_hint(ErrorKind::Protocol, Stage::Query, "SELECT @@server_id returned no row")
    })?;
    let status_sql = if !mariadb && session.conn.server_version() >= (8, 0, 22) {
        MYSQL_REPLICA_STATUS_SQL
    } else {
        REPLICA_STATUS_SQL
    };
    let status = match session.rows("reading the replica status", status_sql).await {
        Ok(rows) => rows,
        Err(mut err) if err.kind == ErrorKind::PermissionDenied => {
            let grant = if mariadb {
                "REPLICA MONITOR"
            } else {
                "REPLICATION CLIENT"
            };
            err.message = format!("{} (the replication state needs GRANT {grant} ON *.*)", err.message);
            return Err(err);
        }
        Err(err) => return Err(err),
    };
    let source = match status.first() {
        Some(row) => replica_source(row)?,
        None => None,
    };
    let lag = match (&source, status.first()) {
        (Some(source), Some(row)) if source.receiving && source.applying => {
            match named::<u64>(row, &["Seconds_Behind_Source", "Seconds_Behind_Master"])? {
                Some(seconds) => Lag::Behind(Duration::from_secs(seconds)),
                None => Lag::Stopped,
            }
        }
        (Some(_), _) => Lag::Stopped,
        (None, _) => Lag::NotReplica,
    };
    let readers = session.rows("listing the replicas", BINLOG_READERS_SQL).await?;
    let mut replicas = readers
        .iter()
        .map(|row| column::<Option<String>>(row, 0).map(Option::unwrap_or_default))
        .collect::<Result<Vec<String>, _>>()?;
    let mut replica_count = u32::try_from(replicas.len()).unwrap_or(u32::MAX);
    if mariadb {
        let connected = session
            .rows("counting the replicas", MARIADB_REPLICAS_CONNECTED_SQL)
            .await?;
        if let Some(row) = connected.first() {
            replica_count = replica_count.max(column::<Option<u32>>(row, 1)?.unwrap_or(0));
        }
    }
    replicas.truncate(MAX_REPLICAS_LISTED);
    Ok(Replication {
        replica: source.is_some(),
        read_only: flag_on(identity, 0)?,
        system_identifier: None,
        server_id: column(identity, 1)?,
        server_uuid: column::<Option<String>>(identity, 2)?.filter(|u| !u.is_empty()),
        source,
        lag,
        replicas,
        replica_count,
        ..Replication::standalone(target.db_type, &target.host, target.port)
    })
}

/// The source of a replica status row; `None` when replication is not
/// configured (a row left by `RESET SLAVE` names no host).
fn replica_source(row: &Row) -> Result<Option<Source>, ProbeError> {
    let Some(host) = named::<String>(row, &["Source_Host", "Master_Host"])?.filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let running = |names: &[&str]| -> Result<bool, ProbeError> {
        Ok(named::<String>(row, names)?.is_some_and(|v| v.eq_ignore_ascii_case("Yes")))
    };
    Ok(Some(Source {
        host: Some(host),
        port: named(row, &["Source_Port", "Master_Port"])?,
        server_id: named(row, &["Source_Server_Id", "Master_Server_Id"])?,
        server_uuid: named::<String>(row, &["Source_UUID", "Master_UUID"])?.filter(|u| !u.is_empty()),
        receiving: running(&["Replica_IO_Running", "Slave_IO_Running"])?,
        applying: running(&["Replica_SQL_Running", "Slave_SQL_Running"])?,
    }))
}

/// The first of `names` that `row` has as a column, NULL as `None`.
fn named<T: FromValue>(row: &Row, names: &[&str]) -> Result<Option<T>, ProbeError> {
    let index = row
        .columns_ref()
        .iter()
        .position(|c| names.iter().any(|n| c.name_str().eq_ignore_ascii_case(n)));
    match index {
        Some(index) => column::<Option<T>>(row, index),
        None => Ok(None),
    }
}

/// A system variable that reads `1`/`0` (or `ON`/`OFF`).
fn flag_on(row: &Row, index: usize) -> Result<bool, ProbeError> {
    Ok(column::<Option<String>>(row, index)?.is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("ON")))
}

fn is_mariadb(version: &str) -> bool {
    version.to_ascii_lowercase().contains("mariadb")
}

/// User schemas and system schemas, each with size and table count.
async fn capacity(session: &mut Session, version: &str) -> Result<(Vec<DatabaseSize>, Vec<DatabaseSize>), ProbeError> {
    if !is_mariadb(version) && session.conn.server_version() >= (8, 0, 0) {
        session
            .rows("asking for fresh table statistics", MYSQL8_FRESH_STATS_SQL)
            .await?;
    }
    let rows = session.rows("listing schemas and their sizes", CAPACITY_SQL).await?;
    let (mut databases, mut system_databases) = (Vec::new(), Vec::new());
    for row in &rows {
        let name: String = column(row, 0)?;
        let db = DatabaseSize {
            size_bytes: column(row, 1)?,
            table_count: Some(u32::try_from(column::<u64>(row, 2)?).unwrap_or(u32::MAX)),
            name,
        };
        if SYSTEM_SCHEMAS.contains(&db.name.to_ascii_lowercase().as_str()) {
            system_databases.push(db);
        } else {
            databases.push(db);
        }
    }
    Ok((databases, system_databases))
}

async fn accounts(session: &mut Session, version: &str) -> Result<(Vec<Account>, Hygiene), ProbeError> {
    let (users_sql, roles_sql) = if is_mariadb(version) {
        (MARIADB_ACCOUNTS_SQL, Some(MARIADB_ROLES_SQL))
    } else if has_mysql_roles(version) {
        (MYSQL_ACCOUNTS_SQL, Some(MYSQL_ROLES_SQL))
    } else {
        (MYSQL_ACCOUNTS_SQL, None)
    };
    let users = session.rows("listing accounts in mysql.user", users_sql).await?;
    let global = session.rows("listing global privileges", GLOBAL_PRIVILEGES_SQL).await?;
    let schema = session.rows("listing schema privileges", SCHEMA_PRIVILEGES_SQL).await?;
    let objects = session.rows("listing object grants", OBJECT_GRANTS_SQL).await?;
    let memberships = match roles_sql {
        Some(sql) => session.rows("listing granted roles", sql).await?,
        None => Vec::new(),
    };

    let mut grants = Grants::default();
    for row in &global {
        grants.global(column(row, 0)?, column(row, 1)?, flag_yes(row, 2)?);
    }
    for row in &schema {
        grants.schema(column(row, 0)?, column(row, 1)?, column(row, 2)?, flag_yes(row, 3)?);
    }
    for row in &objects {
        grants.objects(
            grantee(&column::<String>(row, 0)?, &column::<String>(row, 1)?),
            column(row, 2)?,
        );
    }
    for row in &memberships {
        grants.role(
            grantee(&column::<String>(row, 0)?, &column::<String>(row, 1)?),
            column(row, 2)?,
        );
    }

    let mut accounts = Vec::with_capacity(users.len());
    for row in &users {
        let name: String = column(row, 0)?;
        let host: String = column(row, 1)?;
        let is_role = flag(row, 3)?;
        let plugin: Option<String> = column(row, 6)?;
        let held = grants.take(&grantee(&name, &host));
        accounts.push(Account {
            superuser: flag(row, 2)?,
            can_login: !is_role,
            locked: flag(row, 5)?,
            expired: flag(row, 4)?,
            roles: held.roles.into_iter().collect(),
            global_privileges: held.global.into_iter().collect(),
            global_grant_option: held.global_grant_option,
            auth_plugin: plugin.filter(|p| !p.is_empty()),
            databases: held.databases.into_values().collect(),
            // MariaDB roles have an empty host and cannot log in from any.
            host: if is_role && host.is_empty() { None } else { Some(host) },
            name,
            ..Default::default()
        });
    }
    accounts.sort_by(|a, b| (&a.name, &a.host).cmp(&(&b.name, &b.host)));
    let hygiene = hygiene(session, version).await?;
    Ok((accounts, hygiene))
}

/// The active plugins stronger than `mysql_native_password`, and which
/// accounts have an empty password or one that never expires. Without the
/// grant to read `mysql.user` those questions are `NotChecked`.
async fn hygiene(session: &mut Session, version: &str) -> Result<Hygiene, ProbeError> {
    let plugins = session.rows("listing authentication plugins", AUTH_PLUGINS_SQL).await?;
    let mut strong_plugins = Vec::new();
    for row in &plugins {
        let name: String = column(row, 0)?;
        if STRONG_PLUGINS.contains(&name.to_ascii_lowercase().as_str()) {
            strong_plugins.push(name.to_ascii_lowercase());
        }
    }
    strong_plugins.sort();
    strong_plugins.dedup();
    let sql = if is_mariadb(version) {
        MARIADB_HYGIENE_SQL
    } else {
        MYSQL_HYGIENE_SQL
    };
    let rows = match session.rows("reading password facts in mysql.user", sql).await {
        Ok(rows) => rows,
        Err(err) if err.kind == ErrorKind::PermissionDenied => {
            return Ok(Hygiene {
                strong_plugins,
                empty_password: Checked::NotChecked(
                    "the login may not read mysql.user (GRANT SELECT ON mysql.* is missing)".into(),
                ),
                ..Hygiene::default()
            });
        }
        Err(err) => return Err(err),
    };
    let (mut empty, mut never_expires) = (Vec::new(), Vec::new());
    for row in &rows {
        let key = AccountKey {
            name: column(row, 0)?,
            host: Some(column(row, 1)?),
        };
        if flag_on(row, 2)? {
            empty.push(key.clone());
        }
        if flag_on(row, 3)? {
            never_expires.push(key);
        }
    }
    empty.sort();
    never_expires.sort();
    Ok(Hygiene {
        strong_plugins,
        empty_password: Checked::Accounts(empty),
        password_never_expires: never_expires,
        ..Hygiene::default()
    })
}

/// What the session's own account may do, from its global and schema-level
/// grants (privileges it holds only through a role are not seen).
async fn own_privileges(session: &mut Session) -> Result<Account, ProbeError> {
    let me = session
        .rows("reading the login's account", "SELECT CURRENT_USER()")
        .await?;
    let current: String = match me.first() {
        Some(row) => column(row, 0)?,
        None => {
            return Err(ProbeError::with_hint(
                ErrorKind::Protocol,
                Stage::Query,
                format!("MySQL at {}: CURRENT_USER() returned no row", session.addr),
            ));
        }
    };
    // `user@host`; a host has no `@`, a user name may.
    let (name, host) = current.rsplit_once('@').unwrap_or((current.as_str(), "%"));
    let me = grantee(name, host);
    let sql = LOGIN_PRIVILEGES_SQL.replace("{me}", &sql_string(&me));
    let rows = session.rows("reading the login's privileges", &sql).await?;
    let mut grants = Grants::default();
    for row in &rows {
        let privilege: String = column(row, 1)?;
        let grantable = flag_yes(row, 2)?;
        match column::<Option<String>>(row, 0)? {
            None => grants.global(me.clone(), privilege, grantable),
            Some(schema) => grants.schema(me.clone(), schema, privilege, grantable),
        }
    }
    let held = grants.take(&me);
    Ok(Account {
        name: name.to_string(),
        host: Some(host.to_string()),
        superuser: held.global.contains("SUPER"),
        can_login: true,
        global_privileges: held.global.into_iter().collect(),
        global_grant_option: held.global_grant_option,
        databases: held.databases.into_values().collect(),
        ..Default::default()
    })
}

/// `text` as a quoted SQL string literal: quotes doubled, backslashes
/// escaped, so nothing breaks out of it. (Under `NO_BACKSLASH_ESCAPES` a
/// name with a backslash then matches no row and reads as holding nothing.)
fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// MySQL has roles from 8.0 on (MariaDB's are told apart by name).
fn has_mysql_roles(version: &str) -> bool {
    version
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok())
        .is_some_and(|major| major >= 8)
}

/// An account as `information_schema` names it: `'user'@'host'`.
fn grantee(user: &str, host: &str) -> String {
    format!("'{user}'@'{host}'")
}

fn flag_yes(row: &Row, index: usize) -> Result<bool, ProbeError> {
    Ok(column::<Option<String>>(row, index)?.is_some_and(|v| v.eq_ignore_ascii_case("YES")))
}

/// What the grant tables give each grantee, gathered before the accounts
/// are built.
#[derive(Default)]
struct Grants {
    by_grantee: HashMap<String, Held>,
}

#[derive(Default)]
struct Held {
    global: BTreeSet<String>,
    global_grant_option: bool,
    roles: BTreeSet<String>,
    databases: BTreeMap<String, DatabaseGrant>,
}

impl Grants {
    fn held(&mut self, grantee: String) -> &mut Held {
        self.by_grantee.entry(grantee).or_default()
    }

    fn database(&mut self, grantee: String, database: String) -> &mut DatabaseGrant {
        self.held(grantee)
            .databases
            .entry(database.clone())
            .or_insert_with(|| DatabaseGrant::named(database))
    }

    /// `USAGE` means no privilege at all, so it is left out.
    fn global(&mut self, grantee: String, privilege: String, grantable: bool) {
        let held = self.held(grantee);
        held.global_grant_option |= grantable;
        if privilege != "USAGE" {
            held.global.insert(privilege);
        }
    }

    fn schema(&mut self, grantee: String, database: String, privilege: String, grantable: bool) {
        let grant = self.database(grantee, database);
        grant.grant_option |= grantable;
        if let Err(at) = grant.privileges.binary_search(&privilege) {
            grant.privileges.insert(at, privilege);
        }
    }

    fn objects(&mut self, grantee: String, database: String) {
        self.database(grantee, database).object_grants = true;
    }

    fn role(&mut self, grantee: String, role: String) {
        self.held(grantee).roles.insert(role);
    }

    fn take(&mut self, grantee: &str) -> Held {
        self.by_grantee.remove(grantee).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_gather_per_grantee_without_usage() {
        let mut grants = Grants::default();
        let app = grantee("app", "%");
        grants.global(app.clone(), "USAGE".into(), false);
        grants.schema(app.clone(), "shop".into(), "SELECT".into(), true);
        grants.schema(app.clone(), "shop".into(), "DELETE".into(), true);
        grants.objects(app.clone(), "audit".into());
        grants.role(app.clone(), "reader".into());
        grants.global(grantee("ops", "%"), "RELOAD".into(), false);

        let held = grants.take(&app);
        assert!(held.global.is_empty() && !held.global_grant_option);
        assert_eq!(held.roles.into_iter().collect::<Vec<_>>(), ["reader"]);
        let databases: Vec<DatabaseGrant> = held.databases.into_values().collect();
        assert_eq!(
            databases,
            [
                DatabaseGrant {
                    object_grants: true,
                    ..DatabaseGrant::named("audit")
                },
                DatabaseGrant {
                    privileges: vec!["DELETE".into(), "SELECT".into()],
                    grant_option: true,
                    ..DatabaseGrant::named("shop")
                },
            ]
        );
        assert!(grants.take(&app).databases.is_empty(), "taken once");
        assert_eq!(
            grants.take("'ops'@'%'").global.into_iter().collect::<Vec<_>>(),
            ["RELOAD"]
        );
    }

    #[test]
    fn mysql_roles_exist_from_version_8() {
        assert!(!has_mysql_roles("5.7.44-log"));
        assert!(has_mysql_roles("8.0.36"));
    }

    #[test]
    fn mariadb_is_recognised_by_its_version_string() {
        assert!(is_mariadb("10.11.19-MariaDB-0+deb12u1"));
        assert!(!is_mariadb("8.0.36"));
    }

    #[test]
    fn server_errors_are_classified_by_number() {
        let server = |code| {
            MyError::Server(mysql_async::ServerError {
                code,
                message: "m".into(),
                state: "HY000".into(),
            })
        };
        assert_eq!(classify(&server(1045)), ErrorKind::AuthenticationFailed);
        assert_eq!(classify(&server(4151)), ErrorKind::AuthenticationFailed);
        assert_eq!(classify(&server(1142)), ErrorKind::PermissionDenied);
        assert_eq!(classify(&server(1040)), ErrorKind::ServerError);
        assert_eq!(
            classify(&MyError::Driver(DriverError::NoClientSslFlagFromServer)),
            ErrorKind::TlsError
        );
        let refused = MyError::Io(mysql_async::IoError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(classify(&refused), ErrorKind::ConnectionRefused);
    }
}
