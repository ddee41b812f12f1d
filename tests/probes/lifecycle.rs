//! Probes close their connections: repeated and concurrent runs leave no
//! session behind on the server.

use std::time::{Duration, Instant};

use anyhow::Result;
use dbfleet::probe::{self, Target};
use futures_util::future::join_all;

use crate::fixtures::{Mysql, Postgres};

const ROUNDS: usize = 3;
const CONCURRENT: usize = 8;

/// Runs `ROUNDS` of `CONCURRENT` connection tests at once and an account
/// sync, one capacity collection (a connection per database), and one
/// probe the server turns down (a database that does not exist).
async fn exercise(target: &Target) -> Result<()> {
    for _ in 0..ROUNDS {
        let tests = join_all((0..CONCURRENT).map(|_| probe::test_connection(target))).await;
        for result in tests {
            result?;
        }
        probe::collect_accounts(target).await?;
    }
    probe::collect_capacity(target).await?;
    let missing = target.clone().with_database("dbft_no_such_database");
    assert!(probe::test_connection(&missing).await.is_err());
    Ok(())
}

/// Waits until `sessions` reports none (the server notices a goodbye a
/// moment after it is sent).
async fn until_no_sessions(mut sessions: impl AsyncFnMut() -> Result<u64>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let open = sessions().await?;
        if open == 0 {
            return Ok(());
        }
        assert!(Instant::now() < deadline, "{open} sessions still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn postgres_probes_leave_no_sessions_behind() -> Result<()> {
    Postgres::run(async |pg| {
        let monitor = pg.monitor().await?;
        exercise(&pg.target(&monitor)).await?;
        let sql = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = '{}'",
            monitor.user
        );
        until_no_sessions(async || Ok(pg.query_i64(&sql).await? as u64)).await
    })
    .await
}

#[tokio::test]
async fn mysql_probes_leave_no_sessions_behind() -> Result<()> {
    Mysql::run(async |my| {
        let monitor = my.monitor().await?;
        exercise(&my.target(&monitor)).await?;
        let sql = format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{}'",
            monitor.user
        );
        until_no_sessions(async || my.query_u64(&sql).await).await
    })
    .await
}
