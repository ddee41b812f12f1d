//! A probe logs in once for everything it collects: a counting TCP relay in
//! front of the real server sees exactly the logins the probe reports, one
//! for MySQL and, for PostgreSQL, one more per other database whose tables
//! it counts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Result;
use dbfleet::probe::{self, Collect, KnownTables, Target};
use tokio::net::{TcpListener, TcpStream};

use crate::fixtures::{Mysql, Postgres};

/// Forwards every connection on a loopback port to `server` and counts them.
struct CountingRelay {
    addr: SocketAddr,
    accepted: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingRelay {
    async fn start(server: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicU32::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut upstream) = TcpStream::connect(server).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        Ok(CountingRelay { addr, accepted, task })
    }

    fn target(&self, mut target: Target) -> Target {
        target.host = self.addr.ip().to_string();
        target.port = self.addr.port();
        target
    }

    fn accepted(&self) -> u32 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for CountingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const EVERYTHING: Collect<'static> = Collect {
    capacity: true,
    accounts: true,
    known_tables: None,
};

async fn server_addr(host: &str, port: u16) -> Result<SocketAddr> {
    Ok(tokio::net::lookup_host((host, port)).await?.next().expect("an address"))
}

#[tokio::test]
async fn mysql_runs_every_probe_on_one_login() -> Result<()> {
    Mysql::run(async |my| {
        let monitor = my.monitor().await?;
        let relay = CountingRelay::start(server_addr(&my.server.host, my.server.port).await?).await?;
        let probed = probe::probe(&relay.target(my.target(&monitor)), EVERYTHING).await;
        probed.connection?;
        probed.capacity.expect("asked for")?;
        assert!(!probed.accounts.expect("asked for")?.accounts.is_empty());
        assert_eq!(probed.logins, 1);
        assert_eq!(relay.accepted(), 1);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn postgres_needs_one_more_login_per_other_database_only() -> Result<()> {
    Postgres::run(async |pg| {
        let monitor = pg.monitor().await?;
        let database = pg.create_database().await?;
        // A database nobody writes to: its count must be reused.
        let untouched = pg.create_database().await?;
        let relay = CountingRelay::start(server_addr(&pg.server.host, pg.server.port).await?).await?;
        let target = relay.target(pg.target(&monitor));

        let accounts_only = Collect {
            accounts: true,
            ..Collect::default()
        };
        let probed = probe::probe(&target, accounts_only).await;
        probed.connection?;
        probed.accounts.expect("asked for")?;
        assert_eq!((probed.logins, relay.accepted()), (1, 1));

        let probed = probe::probe(&target, EVERYTHING).await;
        probed.connection?;
        probed.accounts.expect("asked for")?;
        let capacity = probed.capacity.expect("asked for")?;
        let counted = |name: &str| {
            capacity
                .databases
                .iter()
                .any(|d| d.name == name && d.table_count.is_some())
        };
        assert!(counted("postgres") && counted(&database), "{capacity:?}");
        // Other tests create and drop databases meanwhile, so the exact
        // number varies; the relay and the probe must agree.
        let others = capacity
            .databases
            .iter()
            .filter(|d| d.table_count.is_some() && d.name != "postgres")
            .count() as u32;
        assert_eq!(
            relay.accepted() - 1,
            probed.logins,
            "the relay saw what the probe reports"
        );
        assert!(
            probed.logins > others,
            "{} logins for {others} other databases",
            probed.logins
        );

        // Counts are reused for every database whose size did not move, and
        // taken again where it did: a new table in ours changes its size.
        // A database's first login writes its relation cache file, which
        // counts in its size: the counts to reuse are those of a later run.
        let settled = probe::probe(&target, EVERYTHING).await.capacity.expect("asked for")?;
        let known = KnownTables::of(&settled.databases);
        pg.exec_in(&database, "CREATE TABLE grown (id int PRIMARY KEY)").await?;
        let before = relay.accepted();
        let again = Collect {
            known_tables: Some(&known),
            ..EVERYTHING
        };
        let probed = probe::probe(&target, again).await;
        let recount = probed.capacity.expect("asked for")?;
        assert_eq!(
            relay.accepted() - before,
            probed.logins,
            "the relay saw what the probe reports"
        );
        let ours = recount
            .databases
            .iter()
            .find(|d| d.name == database)
            .expect("our database");
        assert_eq!(ours.table_count, Some(1), "{ours:?}");
        let moved = recount
            .databases
            .iter()
            .filter(|d| d.table_count.is_some() && d.name != "postgres" && known.get(&d.name, d.size_bytes).is_none())
            .count() as u32;
        assert!(moved >= 1, "our database grew");
        let still = recount
            .databases
            .iter()
            .find(|d| d.name == untouched)
            .expect("the untouched database");
        assert_eq!(
            known.get(&still.name, still.size_bytes),
            Some(0),
            "{still:?} kept its size and count"
        );
        // A database other tests drop between the listing and its count
        // costs a login (and a retry) without being reported.
        let vanished = settled
            .databases
            .iter()
            .filter(|d| !recount.databases.iter().any(|r| r.name == d.name))
            .count() as u32;
        assert!(
            (1 + moved..=1 + moved + 2 * vanished).contains(&probed.logins),
            "{} logins: one, plus one per database whose size moved ({moved}; {vanished} vanished)",
            probed.logins
        );
        Ok(())
    })
    .await
}
