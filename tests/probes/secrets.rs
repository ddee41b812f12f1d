//! The password shows up in no error message, Display or Debug output.

use std::time::Duration;

use anyhow::Result;
use dbfleet::crd::instance::{DbType, TlsMode};
use dbfleet::probe::{self, Password, Target, Timeouts, TlsSettings};
use tokio::net::TcpListener;

use crate::fixtures::{self, Mysql, Postgres};

/// Everything a probe against `target` produces, as text.
async fn outputs(target: &Target) -> Vec<String> {
    let mut out = vec![format!("{target:?}"), format!("{target:#?}")];
    let connection = probe::test_connection(target).await;
    out.push(format!("{connection:?}"));
    if let Err(err) = &connection {
        out.extend([err.to_string(), err.message.clone(), format!("{err:#?}")]);
        out.push(format!(
            "{:?}",
            dbfleet::observe::status::connection_status(None, &connection, std::time::SystemTime::now())
        ));
    }
    out.push(format!("{:?}", probe::collect_capacity(target).await));
    out.push(format!("{:?}", probe::collect_accounts(target).await));
    out
}

fn assert_absent(secret: &str, outputs: &[String]) {
    assert!(!secret.is_empty());
    for text in outputs {
        assert!(!text.contains(secret), "the password leaked into: {text}");
    }
}

#[tokio::test]
async fn passwords_never_appear_in_results_or_errors() -> Result<()> {
    // Successful probes with the monitoring accounts' own passwords.
    Postgres::run(async |pg| {
        let monitor = pg.monitor().await?;
        assert_absent(&monitor.password, &outputs(&pg.target(&monitor)).await);
        Ok(())
    })
    .await?;
    Mysql::run(async |my| {
        let monitor = my.monitor().await?;
        assert_absent(&monitor.password, &outputs(&my.target(&monitor)).await);
        Ok(())
    })
    .await?;

    // Failures of every kind, with a password no server knows.
    let secret = fixtures::password();
    let silent = TcpListener::bind("127.0.0.1:0").await?;
    let silent_port = silent.local_addr()?.port();
    let refused_port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
    let pg = dbfleet_testenv::DatabaseServer::postgres()?;
    let my = dbfleet_testenv::DatabaseServer::mysql()?;
    let quick = Timeouts {
        connect: Duration::from_millis(300),
        operation: Duration::from_secs(5),
    };
    let targets = [
        Target::new(DbType::Postgresql, &pg.host, pg.port, &pg.user, Password::new(&secret)),
        Target::new(DbType::Mysql, &my.host, my.port, &my.user, Password::new(&secret)),
        Target::new(DbType::Mysql, &my.host, my.port, &my.user, Password::new(&secret))
            .with_tls(TlsSettings::new(TlsMode::Require)),
        Target::new(
            DbType::Postgresql,
            "127.0.0.1",
            refused_port,
            "u",
            Password::new(&secret),
        ),
        Target::new(DbType::Mysql, "127.0.0.1", silent_port, "u", Password::new(&secret)).with_timeouts(quick),
        Target::new(
            DbType::Postgresql,
            "127.0.0.1",
            silent_port,
            "u",
            Password::new(&secret),
        )
        .with_timeouts(quick),
    ];
    for target in &targets {
        let texts = outputs(target).await;
        assert!(texts.iter().any(|t| t.contains("Err(")), "{target:?} should fail");
        assert_absent(&secret, &texts);
    }
    drop(silent);
    Ok(())
}
