//! PostgreSQL probes over tokio-postgres.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Config, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::accounts::Account;
use super::error::{ErrorKind, ProbeError, Stage, describe, transport_kind};
use super::net::{bounded, connect_any};
use super::{Accounts, Capacity, ConnectionInfo, DatabaseSize, Target, tls};
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

/// Roles except the predefined `pg_*` ones, with the databases each owns or
/// holds a database-level grant on.
const ACCOUNTS_SQL: &str = "SELECT r.rolname::text, r.rolsuper, r.rolcanlogin, \
     COALESCE(r.rolvaliduntil < now(), false), \
     ARRAY(SELECT d.datname::text FROM pg_database d WHERE NOT d.datistemplate \
           AND (d.datdba = r.oid OR EXISTS (SELECT 1 FROM aclexplode(d.datacl) a WHERE a.grantee = r.oid)) \
           ORDER BY d.datname) \
     FROM pg_roles r WHERE r.rolname !~ '^pg_' ORDER BY r.rolname";

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
    }
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

async fn handshake<T>(config: &Config, tls: T) -> Result<(Client, Driver), tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = config.connect(tls).await?;
    let driver = tokio::spawn(async move {
        // Errors surface through the client; nothing to do with them here.
        let _ = connection.await;
    });
    Ok((client, Driver(driver)))
}

/// Connects and logs in to `database`, within the connect timeout.
async fn open(target: &Target, database: &str) -> Result<Session, ProbeError> {
    let tls_config = tls::client_config(&target.tls)?;
    let connect = async {
        connect_any(target, |addr| {
            let tls_config = tls_config.clone();
            async move {
                let mut config = Config::new();
                config
                    .host(&target.host)
                    .hostaddr(addr.ip())
                    .port(addr.port())
                    .user(&target.user)
                    .password(target.password.expose())
                    .dbname(database)
                    .application_name("dbfleet")
                    .connect_timeout(target.timeouts.connect)
                    .options(format!(
                        "-c statement_timeout={}",
                        target.timeouts.operation.as_millis()
                    ))
                    .ssl_mode(ssl_mode(target.tls.mode));
                let connected = match tls_config {
                    Some(c) => handshake(&config, MakeRustlsConnect::new(c)).await,
                    None => handshake(&config, NoTls).await,
                };
                connected.map(|(client, driver)| Session { client, driver, addr }).map_err(|err| {
                    ProbeError::with_hint(
                        classify(&err),
                        Stage::Connect,
                        format!(
                            "cannot connect to PostgreSQL at {addr} (database \"{database}\", user \"{}\", tls {}): {}",
                            target.user,
                            tls::mode_name(target.tls.mode),
                            describe(&err)
                        ),
                    )
                })
            }
        })
        .await
    };
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

/// Runs `work` on a fresh session within the operation timeout, then closes
/// the session whatever happened.
async fn with_session<T>(
    target: &Target,
    what: &'static str,
    work: impl AsyncFnOnce(&Session) -> Result<T, ProbeError>,
) -> Result<T, ProbeError> {
    let session = open(target, default_database(target)).await?;
    let result = bounded(
        target.timeouts.operation,
        Stage::Query,
        || format!("{what} on PostgreSQL at {}", session.addr),
        work(&session),
    )
    .await;
    session.close().await;
    result
}

async fn server_version(session: &Session) -> Result<(String, bool), ProbeError> {
    let row = session
        .client
        .query_one(VERSION_SQL, &[])
        .await
        .map_err(|e| session.query_error("reading the server version", &e))?;
    Ok((row.get(0), row.get(1)))
}

pub(super) async fn test_connection(target: &Target) -> Result<ConnectionInfo, ProbeError> {
    let started = Instant::now();
    let (server_version, tls) = with_session(target, "reading the server version", server_version).await?;
    Ok(ConnectionInfo {
        server_version,
        latency: started.elapsed(),
        tls,
    })
}

pub(super) async fn collect_capacity(target: &Target) -> Result<Capacity, ProbeError> {
    let started = Instant::now();
    let collected_at = SystemTime::now();
    let (server_version, databases) = with_session(target, "collecting capacity", async |session| {
        let (version, _) = server_version(session).await?;
        let rows = session
            .client
            .query(DATABASES_SQL, &[])
            .await
            .map_err(|e| session.query_error("listing databases and their sizes", &e))?;
        let listed: Vec<(String, i64, bool)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
        let databases: Vec<Option<DatabaseSize>> = stream::iter(listed)
            .map(|(name, size, allow_conn)| async move {
                let table_count = if allow_conn {
                    table_count(target, &name).await?
                } else {
                    Some(None)
                };
                Ok::<_, ProbeError>(table_count.map(|table_count| DatabaseSize {
                    name,
                    size_bytes: u64::try_from(size).unwrap_or(0),
                    table_count,
                }))
            })
            .buffered(TABLE_COUNT_CONCURRENCY)
            .try_collect()
            .await?;
        Ok((version, databases.into_iter().flatten().collect()))
    })
    .await?;
    Ok(Capacity {
        server_version,
        databases,
        system_databases: Vec::new(),
        duration: started.elapsed(),
        collected_at,
    })
}

/// The table count of one database: `Some(None)` when the monitoring account
/// may not enter it, `None` when it was dropped since it was listed.
async fn table_count(target: &Target, database: &str) -> Result<Option<Option<u32>>, ProbeError> {
    let session = match open(target, database).await {
        Ok(session) => session,
        Err(err) if matches!(err.kind, ErrorKind::PermissionDenied | ErrorKind::AuthenticationFailed) => {
            return Ok(Some(None));
        }
        Err(err) if err.kind == ErrorKind::ServerError && err.message.contains("does not exist") => {
            return Ok(None);
        }
        Err(err) => return Err(err.at(Stage::Query)),
    };
    let counted = session.client.query_one(TABLE_COUNT_SQL, &[]).await;
    let result = match counted {
        Ok(row) => Ok(Some(Some(u32::try_from(row.get::<_, i64>(0)).unwrap_or(u32::MAX)))),
        Err(err) => Err(session.query_error(&format!("counting the tables of database \"{database}\""), &err)),
    };
    session.close().await;
    result
}

pub(super) async fn collect_accounts(target: &Target) -> Result<Accounts, ProbeError> {
    let started = Instant::now();
    let synced_at = SystemTime::now();
    let (server_version, accounts) = with_session(target, "collecting accounts", async |session| {
        let (version, _) = server_version(session).await?;
        let rows = session
            .client
            .query(ACCOUNTS_SQL, &[])
            .await
            .map_err(|e| session.query_error("listing roles", &e))?;
        let accounts = rows
            .iter()
            .map(|r| Account {
                name: r.get(0),
                host: None,
                superuser: r.get(1),
                can_login: r.get(2),
                locked: false,
                expired: r.get(3),
                databases: r.get(4),
            })
            .collect();
        Ok((version, accounts))
    })
    .await?;
    Ok(Accounts {
        server_version,
        accounts,
        duration: started.elapsed(),
        synced_at,
    })
}
