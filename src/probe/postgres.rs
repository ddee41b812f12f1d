//! PostgreSQL probes over tokio-postgres.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use futures_util::{StreamExt, stream};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_postgres::config::{ChannelBinding, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::FromSql;
use tokio_postgres::{Client, Config, NoTls, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::accounts::{Account, AccountKey, DatabaseGrant};
use super::auth_policy::{AuthPolicy, InsecureRequest, insecure_error, refusal_in};
use super::error::{ErrorKind, ProbeError, Stage, describe, transport_kind};
use super::hygiene::{Checked, Hygiene};
use super::net::{bounded, connect_any};
use super::pg_guard::{Guarded, GuardedTls, LoginWatch};
use super::replication::{Lag, MAX_REPLICAS_LISTED, Replication, Source};
use super::{Collect, DatabaseSize, KnownTables, LoggedIn, Probed, Target, tls};
use crate::crd::instance::TlsMode;

const DEFAULT_DATABASE: &str = "postgres";

/// Table counts need a connection per database; a few at a time keeps a
/// server with hundreds of databases quick without a burst of logins.
const TABLE_COUNT_CONCURRENCY: usize = 4;

/// How long a closing connection may take to say goodbye before its task is
/// dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

const VERSION_SQL: &str = "SELECT current_setting('server_version'), \
     COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)";

/// The role, the cluster's identity and, on a replica, its source and
/// delay. `pg_control_system()` is granted to `pg_monitor`; a login
/// without it gets no identifier rather than an error. The delay is read
/// only while WAL received is not replayed yet: once everything is, the
/// replica is not behind, however long ago the primary last wrote.
const REPLICATION_SQL: &str = "SELECT pg_is_in_recovery(), \
       CASE WHEN has_function_privilege('pg_control_system()', 'EXECUTE') \
         THEN (SELECT system_identifier FROM pg_control_system()) END, \
       pg_last_xact_replay_timestamp() IS NULL, \
       CASE WHEN pg_last_wal_receive_lsn() IS DISTINCT FROM pg_last_wal_replay_lsn() \
         THEN EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 ELSE 0 END, \
       r.status, r.sender_host, r.sender_port \
     FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver r ON true";

/// The replicas this server streams to (a base backup's sender is not
/// one), the first few by name and how many in all. Without
/// `pg_read_all_stats` (in `pg_monitor`) their address and state are null.
const REPLICAS_SQL: &str = "SELECT COALESCE(application_name, '') || '@' || COALESCE(host(client_addr), 'local'), \
       count(*) OVER () \
     FROM pg_stat_replication WHERE state IS DISTINCT FROM 'backup' ORDER BY 1 LIMIT $1";

/// Non-template databases; `pg_database_size` needs CONNECT on the database
/// or `pg_read_all_stats`.
const DATABASES_SQL: &str = "SELECT datname::text, pg_database_size(oid), datallowconn \
     FROM pg_database WHERE NOT datistemplate ORDER BY datname";

/// Ordinary and partitioned tables, not partitions, outside the system
/// schemas.
const TABLE_COUNT_SQL: &str = "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
     AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

/// Roles except the predefined `pg_*` ones, with their attributes and the
/// roles each is a member of (predefined ones included: `pg_read_all_data`
/// matters). `VALID UNTIL` comes as whole seconds since the epoch, or NULL
/// when unset or infinite.
const ACCOUNTS_SQL: &str = "SELECT r.rolname::text, r.rolsuper, r.rolcanlogin, \
       COALESCE(r.rolvaliduntil < now(), false), \
       CASE WHEN isfinite(r.rolvaliduntil) THEN floor(extract(epoch FROM r.rolvaliduntil))::int8 END, \
       r.rolbypassrls, r.rolcreatedb, r.rolcreaterole, r.rolreplication, \
       COALESCE((SELECT array_agg(g.rolname::text ORDER BY g.rolname) \
         FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid), '{}') \
     FROM pg_roles r WHERE r.rolname !~ '^pg_' ORDER BY r.rolname";

/// The login's own role: superuser, the attributes beyond login, and the
/// predefined roles whose privileges it has (`USAGE`: through inheritance
/// too), for `observe::login_check`.
const LOGIN_SQL: &str = "SELECT r.rolname::text, r.rolsuper, \
       r.rolbypassrls, r.rolcreatedb, r.rolcreaterole, r.rolreplication, \
       COALESCE((SELECT array_agg(g.rolname::text ORDER BY g.rolname) FROM pg_roles g \
         WHERE g.rolname ~ '^pg_' AND g.oid <> r.oid AND pg_has_role(r.oid, g.oid, 'USAGE')), '{}') \
     FROM pg_roles r WHERE r.rolname = current_user";

/// Per role and database: the database-level privileges granted to the role
/// itself (`datacl`, or the owner's defaults when it is NULL), whether any
/// is grantable, and whether the role owns the database. ACLs are expanded
/// once, not once per role; `PUBLIC` (grantee 0) joins no role.
const DATABASE_GRANTS_SQL: &str = "WITH entries AS ( \
       SELECT d.datname, a.grantee, a.privilege_type, a.is_grantable, false AS owner \
         FROM pg_database d, aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) a \
         WHERE NOT d.datistemplate \
       UNION ALL \
       SELECT d.datname, d.datdba, NULL, false, true FROM pg_database d WHERE NOT d.datistemplate) \
     SELECT r.rolname::text, e.datname::text, \
       COALESCE(array_agg(DISTINCT e.privilege_type::text) FILTER (WHERE e.privilege_type IS NOT NULL), '{}'), \
       bool_or(e.is_grantable), bool_or(e.owner) \
     FROM entries e JOIN pg_roles r ON r.oid = e.grantee \
     WHERE r.rolname !~ '^pg_' \
     GROUP BY r.rolname, e.datname";

/// What the hygiene findings need of the server: `password_encryption`,
/// and whether this login may read `pg_authid` (superusers only, unless
/// granted), where a password's hash is kept.
const HYGIENE_SQL: &str = "SELECT current_setting('password_encryption'), \
       has_table_privilege('pg_catalog.pg_authid', 'SELECT')";

/// Login roles whose password is stored as an MD5 hash: only the hash's
/// prefix is compared, on the server; the hash itself is never selected.
const MD5_ROLES_SQL: &str = "SELECT rolname::text FROM pg_catalog.pg_authid \
     WHERE rolcanlogin AND left(rolpassword, 3) = 'md5' AND rolname !~ '^pg_' ORDER BY 1";

/// Aborts the connection task if the session is dropped without `close`.
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Session {
    client: Client,
    driver: Driver,
    addr: SocketAddr,
}

impl Session {
    /// Sends Terminate and waits briefly for the server to close.
    async fn close(self) {
        let Session { client, mut driver, .. } = self;
        drop(client);
        let _ = tokio::time::timeout(CLOSE_GRACE, &mut driver.0).await;
    }

    fn query_error(&self, what: &str, err: &tokio_postgres::Error) -> ProbeError {
        ProbeError::with_hint(
            classify(err),
            Stage::Query,
            format!("PostgreSQL at {}: {what} failed: {}", self.addr, describe(err)),
        )
        .with_server_code(sqlstate(err))
    }
}

/// A column of `row`, or a `Protocol` error naming it (never a panic).
fn column<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, ProbeError> {
    row.try_get(index).map_err(|e| {
        ProbeError::with_hint(
            ErrorKind::Protocol,
            Stage::Query,
            format!("unexpected value in column {index}: {}", describe(&e)),
        )
    })
}

fn sqlstate(err: &tokio_postgres::Error) -> Option<String> {
    err.code().map(|c| c.code().to_owned())
}

fn classify(err: &tokio_postgres::Error) -> ErrorKind {
    if let Some(code) = err.code() {
        return match code {
            c if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
                ErrorKind::AuthenticationFailed
            }
            c if *c == SqlState::INSUFFICIENT_PRIVILEGE => ErrorKind::PermissionDenied,
            c if *c == SqlState::QUERY_CANCELED => ErrorKind::Timeout,
            _ => ErrorKind::ServerError,
        };
    }
    // tokio-postgres keeps its error kinds private; its Display names them.
    match err.to_string().as_str() {
        "error performing TLS handshake" => return ErrorKind::TlsError,
        "authentication error" => return ErrorKind::AuthenticationFailed,
        _ => {}
    }
    transport_kind(err).unwrap_or(ErrorKind::Protocol)
}

fn ssl_mode(mode: TlsMode) -> SslMode {
    match mode {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        TlsMode::Require | TlsMode::VerifyFull => SslMode::Require,
    }
}

/// The driver's own channel-binding rule, a second line behind the guard's:
/// under `require` it refuses to answer without binding (unless the
/// credential opted in to MD5, which has none).
fn channel_binding(policy: AuthPolicy) -> ChannelBinding {
    if policy.channel_binding && !policy.md5_opted_in {
        ChannelBinding::Require
    } else {
        ChannelBinding::Prefer
    }
}

/// Logs in over `stream` and starts the connection's driver task.
async fn login<T>(
    config: &Config,
    stream: Guarded<TcpStream>,
    tls: T,
) -> Result<(Client, Driver), tokio_postgres::Error>
where
    T: TlsConnect<Guarded<TcpStream>>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect_raw(stream, tls).await?;
    let driver = tokio::spawn(async move {
        // Errors surface through the client; nothing to do with them here.
        let _ = connection.await;
    });
    Ok((client, Driver(driver)))
}

/// Connects to one address and logs in to `database`. The socket is opened
/// here rather than by tokio-postgres so that the login guard
/// (`pg_guard`) reads the server's authentication requests first.
async fn open_at(
    target: &Target,
    database: &str,
    addr: SocketAddr,
    tls_config: Option<rustls::ClientConfig>,
) -> Result<Session, ProbeError> {
    let failed = |kind: ErrorKind, detail: String| {
        ProbeError::with_hint(
            kind,
            Stage::Connect,
            format!(
                "cannot connect to PostgreSQL at {addr} (database \"{database}\", user \"{}\", tls {}): {detail}",
                target.user,
                tls::mode_name(target.tls.mode)
            ),
        )
    };
    let socket = TcpStream::connect(addr)
        .await
        .map_err(|e| failed(transport_kind(&e).unwrap_or(ErrorKind::Protocol), describe(&e)))?;
    // Small request/response messages: do not wait to fill a segment.
    let _ = socket.set_nodelay(true);
    let policy = AuthPolicy::new(&target.tls, target.md5_allowed);
    let stream = Guarded::new(socket, LoginWatch::new(policy, tls_config.is_some()));

    let mut config = Config::new();
    config
        .user(&target.user)
        .password(target.password.expose())
        .dbname(database)
        .application_name("dbfleet")
        .options(format!(
            "-c statement_timeout={}",
            target.timeouts.operation.as_millis()
        ))
        .ssl_mode(ssl_mode(target.tls.mode))
        .channel_binding(channel_binding(policy));
    let connected = match tls_config {
        Some(c) => {
            let connector =
                MakeTlsConnect::<Guarded<TcpStream>>::make_tls_connect(&mut MakeRustlsConnect::new(c), &target.host)
                    .map_err(|e| {
                        failed(
                            ErrorKind::TlsError,
                            format!("\"{}\" is not a valid TLS server name: {e}", target.host),
                        )
                    })?;
            login(
                &config,
                stream,
                GuardedTls {
                    inner: connector,
                    policy,
                },
            )
            .await
        }
        None => login(&config, stream, NoTls).await,
    };
    connected
        .map(|(client, driver)| Session { client, driver, addr })
        .map_err(|err| match refusal_in(&err) {
            Some(request) => insecure_error("PostgreSQL", addr, target.tls.mode, request),
            // The driver's own second line (see `channel_binding`): the
            // server offered -PLUS but its certificate gives no binding hash.
            None if describe(&err).contains("did not use channel binding") => insecure_error(
                "PostgreSQL",
                addr,
                target.tls.mode,
                InsecureRequest::PostgresNoChannelBinding {
                    offered:
                        "SCRAM-SHA-256-PLUS over a certificate whose signature algorithm has no channel-binding hash"
                            .into(),
                },
            ),
            None => failed(classify(&err), describe(&err)).with_server_code(sqlstate(&err)),
        })
}

/// Connects and logs in to `database`, within the connect timeout.
async fn open(target: &Target, database: &str) -> Result<Session, ProbeError> {
    let tls_config = tls::client_config(&target.tls)?;
    let connect = connect_any(target, |addr| open_at(target, database, addr, tls_config.clone()));
    bounded(
        target.timeouts.connect,
        Stage::Connect,
        || format!("connecting to PostgreSQL at {}", target.address()),
        connect,
    )
    .await
}

fn default_database(target: &Target) -> &str {
    target.database.as_deref().unwrap_or(DEFAULT_DATABASE)
}

async fn server_version(session: &Session) -> Result<(String, bool), ProbeError> {
    let row = session
        .client
        .query_one(VERSION_SQL, &[])
        .await
        .map_err(|e| session.query_error("reading the server version", &e))?;
    Ok((column(&row, 0)?, column(&row, 1)?))
}

/// Runs `work` on `session` within the operation timeout.
async fn within_timeout<T>(
    target: &Target,
    session: &Session,
    what: &'static str,
    work: impl Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    bounded(
        target.timeouts.operation,
        Stage::Query,
        || format!("{what} on PostgreSQL at {}", session.addr),
        work,
    )
    .await
}

pub(super) async fn probe(target: &Target, collect: Collect<'_>) -> Probed {
    let started = Instant::now();
    let at = SystemTime::now();
    let database = default_database(target);
    let session = match open(target, database).await {
        Ok(session) => session,
        Err(error) => return Probed::failed(error, collect, 1),
    };
    let version = within_timeout(target, &session, "reading the server version", server_version(&session)).await;
    let (server_version, tls) = match version {
        Ok(version) => version,
        Err(error) => {
            session.close().await;
            return Probed::failed(error, collect, 1);
        }
    };
    let connected = started.elapsed();
    let login = within_timeout(
        target,
        &session,
        "reading the login's privileges",
        own_privileges(&session),
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
        &session,
        "reading the replication state",
        replication(target, &session),
    )
    .await;
    let connection = Ok(run.connection(tls, replication));
    let mut logins = 1;
    let capacity = if collect.capacity {
        let began = Instant::now();
        let work = databases(target, &session, database, collect.known_tables);
        let result = within_timeout(target, &session, "collecting capacity", work).await;
        Some(result.map(|(databases, table_logins)| {
            logins += table_logins;
            run.capacity(began, databases, Vec::new())
        }))
    } else {
        None
    };
    let accounts = if collect.accounts {
        let began = Instant::now();
        let result = within_timeout(target, &session, "collecting accounts", accounts(&session)).await;
        Some(result.map(|accounts| run.accounts(began, accounts)))
    } else {
        None
    };
    session.close().await;
    Probed {
        connection,
        capacity,
        accounts,
        logins,
    }
}

async fn replication(target: &Target, session: &Session) -> Result<Replication, ProbeError> {
    let row = session
        .client
        .query_one(REPLICATION_SQL, &[])
        .await
        .map_err(|e| session.query_error("reading the replication state", &e))?;
    let in_recovery: bool = column(&row, 0)?;
    let never_replayed: bool = column(&row, 2)?;
    let behind: Option<f64> = column(&row, 3)?;
    let receiver: Option<String> = column(&row, 4)?;
    let streaming = receiver.as_deref() == Some("streaming");
    let source = in_recovery.then(|| -> Result<Source, ProbeError> {
        Ok(Source {
            host: column(&row, 5)?,
            port: column::<Option<i32>>(&row, 6)?.and_then(|p| u16::try_from(p).ok()),
            receiving: streaming,
            applying: true,
            ..Source::default()
        })
    });
    let lag = match (in_recovery, streaming, never_replayed, behind) {
        (false, ..) => Lag::NotReplica,
        (true, false, ..) => Lag::Stopped,
        (true, true, true, _) => Lag::Idle,
        (true, true, false, seconds) => Lag::Behind(Duration::from_secs_f64(seconds.unwrap_or(0.0).max(0.0))),
    };
    let listed = i64::try_from(MAX_REPLICAS_LISTED).unwrap_or(i64::MAX);
    let rows = session
        .client
        .query(REPLICAS_SQL, &[&listed])
        .await
        .map_err(|e| session.query_error("listing replicas", &e))?;
    let replica_count = match rows.first() {
        Some(row) => u32::try_from(column::<i64>(row, 1)?).unwrap_or(u32::MAX),
        None => 0,
    };
    Ok(Replication {
        replica: in_recovery,
        read_only: in_recovery,
        system_identifier: column(&row, 1)?,
        source: source.transpose()?,
        lag,
        replicas: rows.iter().map(|r| column(r, 0)).collect::<Result<_, _>>()?,
        replica_count,
        ..Replication::standalone(target.db_type, &target.host, target.port)
    })
}

/// What the session's own role may do.
async fn own_privileges(session: &Session) -> Result<Account, ProbeError> {
    let row = session
        .client
        .query_one(LOGIN_SQL, &[])
        .await
        .map_err(|e| session.query_error("reading the login's privileges", &e))?;
    Ok(Account {
        name: column(&row, 0)?,
        superuser: column(&row, 1)?,
        can_login: true,
        attributes: role_attributes([column(&row, 2)?, column(&row, 3)?, column(&row, 4)?, column(&row, 5)?]),
        roles: column(&row, 6)?,
        ..Default::default()
    })
}

/// Every database with its size and table count, and the logins it took.
/// The database `session` is in is counted on it; each other one needs a
/// login of its own, unless `known` has its count at its current size.
async fn databases(
    target: &Target,
    session: &Session,
    connected_to: &str,
    known: Option<&KnownTables>,
) -> Result<(Vec<DatabaseSize>, u32), ProbeError> {
    let rows = list_databases(session).await?;
    // A NULL size is a database dropped since the listing began.
    let mut listed: Vec<(String, i64, bool)> = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(size) = column::<Option<i64>>(row, 1)? {
            listed.push((column(row, 0)?, size, column(row, 2)?));
        }
    }
    let known = |name: &str, size: i64| known?.get(name, u64::try_from(size).ok()?);
    let mut logins = listed
        .iter()
        .filter(|(name, size, allow_conn)| *allow_conn && name != connected_to && known(name, *size).is_none())
        .count() as u32;
    let mut counted: Vec<(String, i64, Counted)> = stream::iter(listed)
        .map(|(name, size, allow_conn)| async move {
            let counted = match (allow_conn, known(&name, size), name == connected_to) {
                (false, _, _) => Counted::NotAllowed,
                (true, Some(count), _) => Counted::Tables(count),
                (true, None, true) => count_tables(session, &name).await,
                (true, None, false) => table_count(target, &name).await,
            };
            (name, size, counted)
        })
        .buffered(TABLE_COUNT_CONCURRENCY)
        .collect()
        .await;
    // One more try for failed counts: connecting to a database that is
    // being dropped waits for the drop to finish, so the check below then
    // sees it gone.
    for (name, _, result) in &mut counted {
        if matches!(result, Counted::Failed(_)) {
            logins += 1;
            *result = table_count(target, name).await;
        }
    }
    let gone = dropped_meanwhile(session, &counted).await?;
    let mut databases = Vec::with_capacity(counted.len());
    for (name, size, counted) in counted {
        let table_count = match counted {
            Counted::Tables(n) => Some(n),
            Counted::NotAllowed => None,
            Counted::Failed(_) if gone.contains(&name) => continue,
            Counted::Failed(err) => return Err(err),
        };
        databases.push(DatabaseSize {
            name,
            size_bytes: u64::try_from(size).unwrap_or(0),
            table_count,
        });
    }
    Ok((databases, logins))
}

/// `pg_database_size` fails for a database dropped after the statement's
/// snapshot listed it; listing again then succeeds.
async fn list_databases(session: &Session) -> Result<Vec<tokio_postgres::Row>, ProbeError> {
    const ATTEMPTS: usize = 3;
    let mut attempt = 1;
    loop {
        match session.client.query(DATABASES_SQL, &[]).await {
            Ok(rows) => return Ok(rows),
            Err(err) if attempt < ATTEMPTS && err.code() == Some(&SqlState::INVALID_CATALOG_NAME) => attempt += 1,
            Err(err) => return Err(session.query_error("listing databases and their sizes", &err)),
        }
    }
}

/// How counting the tables of one database went.
enum Counted {
    Tables(u32),
    /// The monitoring account may not enter it (`datallowconn` off, no
    /// CONNECT privilege, or no `pg_hba.conf` line for it).
    NotAllowed,
    /// Failed, possibly because the database was dropped meanwhile.
    Failed(ProbeError),
}

async fn table_count(target: &Target, database: &str) -> Counted {
    let session = match open(target, database).await {
        Ok(session) => session,
        Err(err) if matches!(err.kind, ErrorKind::PermissionDenied | ErrorKind::AuthenticationFailed) => {
            return Counted::NotAllowed;
        }
        Err(err) => return Counted::Failed(err.at(Stage::Query)),
    };
    let counted = count_tables(&session, database).await;
    session.close().await;
    counted
}

/// Counts the tables of `database`, the one `session` is in.
async fn count_tables(session: &Session, database: &str) -> Counted {
    match session.client.query_one(TABLE_COUNT_SQL, &[]).await {
        Ok(row) => match column::<i64>(&row, 0) {
            Ok(n) => Counted::Tables(u32::try_from(n).unwrap_or(u32::MAX)),
            Err(err) => Counted::Failed(err),
        },
        Err(err) => {
            Counted::Failed(session.query_error(&format!("counting the tables of database \"{database}\""), &err))
        }
    }
}

/// Which of the databases whose count failed no longer exist: a database
/// dropped while it is measured (`DROP DATABASE ... WITH (FORCE)` ends its
/// sessions) is left out rather than failing the whole collection.
async fn dropped_meanwhile(session: &Session, counted: &[(String, i64, Counted)]) -> Result<Vec<String>, ProbeError> {
    let failed: Vec<&str> = counted
        .iter()
        .filter(|(_, _, c)| matches!(c, Counted::Failed(_)))
        .map(|(name, _, _)| name.as_str())
        .collect();
    if failed.is_empty() {
        return Ok(Vec::new());
    }
    let rows = session
        .client
        .query(
            "SELECT datname::text FROM pg_database WHERE datname = ANY($1)",
            &[&failed],
        )
        .await
        .map_err(|e| session.query_error("checking which databases still exist", &e))?;
    let existing = rows
        .iter()
        .map(|r| column::<String>(r, 0))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(failed
        .into_iter()
        .filter(|name| !existing.iter().any(|e| e == name))
        .map(str::to_owned)
        .collect())
}

async fn accounts(session: &Session) -> Result<(Vec<Account>, Hygiene), ProbeError> {
    let query = |what: &'static str, sql: &'static str| async move {
        session
            .client
            .query(sql, &[])
            .await
            .map_err(|e| session.query_error(what, &e))
    };
    let roles = query("listing roles", ACCOUNTS_SQL).await?;
    let grants = query("listing database privileges", DATABASE_GRANTS_SQL).await?;

    let mut databases: BTreeMap<String, Vec<DatabaseGrant>> = BTreeMap::new();
    for row in &grants {
        let privileges: Vec<String> = column(row, 2)?;
        databases.entry(column(row, 0)?).or_default().push(DatabaseGrant {
            name: column(row, 1)?,
            privileges,
            grant_option: column::<Option<bool>>(row, 3)?.unwrap_or(false),
            owner: column::<Option<bool>>(row, 4)?.unwrap_or(false),
            object_grants: false,
        });
    }
    let accounts = roles
        .iter()
        .map(|r| {
            let name: String = column(r, 0)?;
            let mut granted = databases.remove(&name).unwrap_or_default();
            granted.sort_by(|a, b| a.name.cmp(&b.name));
            let valid_until: Option<i64> = column(r, 4)?;
            Ok(Account {
                host: None,
                superuser: column(r, 1)?,
                can_login: column(r, 2)?,
                locked: false,
                expired: column(r, 3)?,
                valid_until: valid_until.map(from_epoch_seconds),
                attributes: role_attributes([column(r, 5)?, column(r, 6)?, column(r, 7)?, column(r, 8)?]),
                roles: column(r, 9)?,
                databases: granted,
                name,
                ..Default::default()
            })
        })
        .collect::<Result<Vec<Account>, ProbeError>>()?;
    Ok((accounts, hygiene(session).await?))
}

/// `password_encryption`, and the roles with an MD5 password when this
/// login may read `pg_authid`; without that grant the question is left
/// `NotChecked`, saying why.
async fn hygiene(session: &Session) -> Result<Hygiene, ProbeError> {
    let row = session
        .client
        .query_one(HYGIENE_SQL, &[])
        .await
        .map_err(|e| session.query_error("reading password_encryption", &e))?;
    let readable: bool = column(&row, 1)?;
    let md5_password = if readable {
        let rows = session
            .client
            .query(MD5_ROLES_SQL, &[])
            .await
            .map_err(|e| session.query_error("listing roles with an MD5 password", &e))?;
        let mut keys = rows
            .iter()
            .map(|r| {
                Ok(AccountKey {
                    name: column(r, 0)?,
                    host: None,
                })
            })
            .collect::<Result<Vec<_>, ProbeError>>()?;
        keys.sort();
        Checked::Accounts(keys)
    } else {
        Checked::NotChecked(
            "the login may not read pg_authid (superusers only), where the password hashes are kept".into(),
        )
    };
    Ok(Hygiene {
        password_encryption: Some(column(&row, 0)?),
        md5_password,
        ..Hygiene::default()
    })
}

/// The names of the set flags among `[BYPASSRLS, CREATEDB, CREATEROLE,
/// REPLICATION]` (the column order of `ACCOUNTS_SQL`), sorted.
fn role_attributes(flags: [bool; 4]) -> Vec<String> {
    const NAMES: [&str; 4] = ["BYPASSRLS", "CREATEDB", "CREATEROLE", "REPLICATION"];
    NAMES
        .iter()
        .zip(flags)
        .filter(|(_, on)| *on)
        .map(|(name, _)| (*name).to_owned())
        .collect()
}

fn from_epoch_seconds(seconds: i64) -> SystemTime {
    let magnitude = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_attributes_name_the_set_flags_in_order() {
        assert_eq!(role_attributes([false; 4]), Vec::<String>::new());
        assert_eq!(
            role_attributes([true, false, true, true]),
            ["BYPASSRLS", "CREATEROLE", "REPLICATION"]
        );
    }

    #[test]
    fn epoch_seconds_either_side_of_1970() {
        assert_eq!(
            from_epoch_seconds(86_400),
            SystemTime::UNIX_EPOCH + Duration::from_secs(86_400)
        );
        assert_eq!(
            from_epoch_seconds(-60),
            SystemTime::UNIX_EPOCH - Duration::from_secs(60)
        );
    }
}
