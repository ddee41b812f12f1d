//! Failures every engine classifies the same way. Only loopback addresses.

use std::time::{Duration, Instant};

use anyhow::Result;
use dbfleet::crd::instance::DbType;
use dbfleet::probe::{self, ErrorKind, Password, ProbeError, Stage, Target, Timeouts};
use dbfleet_testenv::DatabaseServer;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const ENGINES: [DbType; 2] = [DbType::Postgresql, DbType::Mysql];

fn server(db_type: DbType) -> Result<DatabaseServer> {
    match db_type {
        DbType::Postgresql => DatabaseServer::postgres(),
        DbType::Mysql => DatabaseServer::mysql(),
    }
}

/// Every probe against `target` fails the same way.
async fn all_probes(target: &Target) -> Vec<ProbeError> {
    vec![
        probe::test_connection(target).await.unwrap_err(),
        probe::collect_capacity(target).await.unwrap_err(),
        probe::collect_accounts(target).await.unwrap_err(),
    ]
}

#[tokio::test]
async fn a_wrong_password_is_an_authentication_failure() -> Result<()> {
    for db_type in ENGINES {
        let server = server(db_type)?;
        let target = Target::new(
            db_type,
            &server.host,
            server.port,
            &server.user,
            Password::new("not-the-password"),
        );
        for err in all_probes(&target).await {
            assert_eq!(
                (err.kind, err.stage),
                (ErrorKind::AuthenticationFailed, Stage::Connect),
                "{err}"
            );
            assert!(err.is_connect());
            assert!(err.message.contains(&server.user), "names the user: {err}");
            let code = err.server_code.as_deref();
            assert_eq!(
                code,
                Some(if db_type == DbType::Postgresql { "28P01" } else { "1045" }),
                "{err}"
            );
        }
    }
    Ok(())
}

/// A loopback port nobody listens on.
async fn closed_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?.port())
}

#[tokio::test]
async fn nothing_listening_is_a_refused_connection() -> Result<()> {
    let port = closed_port().await?;
    for db_type in ENGINES {
        let target = Target::new(db_type, "127.0.0.1", port, "monitor", Password::new("pw"));
        for err in all_probes(&target).await {
            assert_eq!(
                (err.kind, err.stage),
                (ErrorKind::ConnectionRefused, Stage::Connect),
                "{err}"
            );
            assert!(
                err.message.contains(&format!("127.0.0.1:{port}")),
                "names the address: {err}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_within_the_bound() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    // Accepts every connection and never sends a byte; reports how long
    // each stayed open.
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel();
    let silent = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let closed_tx = closed_tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 512];
                while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                let _ = closed_tx.send(());
            });
        }
    });

    let limit = Duration::from_millis(500);
    for db_type in ENGINES {
        let target = Target::new(db_type, "127.0.0.1", port, "monitor", Password::new("pw")).with_timeouts(Timeouts {
            connect: limit,
            operation: Duration::from_secs(30),
        });
        for probe_fn in 0..3 {
            let started = Instant::now();
            let err = match probe_fn {
                0 => probe::test_connection(&target).await.unwrap_err(),
                1 => probe::collect_capacity(&target).await.unwrap_err(),
                _ => probe::collect_accounts(&target).await.unwrap_err(),
            };
            let elapsed = started.elapsed();
            assert_eq!((err.kind, err.stage), (ErrorKind::Timeout, Stage::Connect), "{err}");
            assert!(
                elapsed >= limit && elapsed < limit + Duration::from_secs(2),
                "{db_type:?}: {elapsed:?}"
            );
            // The probe hung up rather than leaving the socket open.
            let hung_up = tokio::time::timeout(Duration::from_secs(2), closed_rx.recv()).await;
            assert!(matches!(hung_up, Ok(Some(()))), "{db_type:?}: the socket stayed open");
        }
    }
    silent.abort();
    Ok(())
}
