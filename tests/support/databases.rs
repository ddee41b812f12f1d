//! The local PostgreSQL and MariaDB of scripts/test-env.sh, for tests that
//! set up databases and accounts on them.

use dbfleet_testenv::DatabaseServer;
use tracing::instrument::WithSubscriber;
use tracing::subscriber::NoSubscriber;

pub fn postgres() -> DatabaseServer {
    DatabaseServer::postgres().expect("run through scripts/test.sh")
}

pub fn mysql() -> DatabaseServer {
    DatabaseServer::mysql().expect("run through scripts/test.sh")
}

/// The streaming replica of [`postgres`] (scripts/replicas.sh).
pub fn postgres_replica() -> DatabaseServer {
    DatabaseServer::postgres_replica().expect("run through scripts/test.sh")
}

/// The GTID replica of [`mysql`] (scripts/replicas.sh).
pub fn mysql_replica() -> DatabaseServer {
    DatabaseServer::mysql_replica().expect("run through scripts/test.sh")
}

/// A short random suffix for names that must not collide across tests.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos % 100_000
    )
}

/// Runs statements on the local PostgreSQL as the admin. The drivers log
/// statements at debug level, and these set passwords, so they run outside
/// the log capture (which is for what dbfleet logs).
pub async fn postgres_exec(sql: &str) {
    postgres_exec_unlogged(sql)
        .with_subscriber(NoSubscriber::default())
        .await
}

async fn postgres_exec_unlogged(sql: &str) {
    let db = postgres();
    let config = format!(
        "host={} port={} user={} password={} dbname=postgres",
        db.host, db.port, db.user, db.password
    );
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    let task = tokio::spawn(connection.with_subscriber(NoSubscriber::default()));
    client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(client);
    let _ = task.await;
}

/// Runs statements on the local MariaDB as the admin, outside the log
/// capture (see [`postgres_exec`]).
pub async fn mysql_exec(sql: &str) {
    mysql_exec_unlogged(sql).with_subscriber(NoSubscriber::default()).await
}

async fn mysql_exec_unlogged(sql: &str) {
    use mysql_async::prelude::Queryable;
    let db = mysql();
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(db.host.clone())
        .tcp_port(db.port)
        .user(Some(db.user.clone()))
        .pass(Some(db.password.clone()));
    let mut conn = mysql_async::Conn::new(opts).await.expect("connect to MariaDB");
    conn.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.disconnect().await.expect("disconnect");
}
