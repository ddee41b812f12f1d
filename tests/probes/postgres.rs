//! The probes against the local PostgreSQL, run as the monitoring account.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use dbfleet::crd::instance::{DbType, TlsMode};
use dbfleet::observe::inventory::capacity_section;
use dbfleet::probe::{self, Account, AccountKey, DatabaseGrant, ErrorKind, Password, Stage, Target, TlsSettings};
use dbfleet_testenv::DatabaseServer;

use crate::fixtures::Postgres;
use crate::unrelated_ca;

#[tokio::test]
async fn connection_test_reads_the_version_in_every_tls_mode() -> Result<()> {
    Postgres::run(async |pg| {
        let monitor = pg.monitor().await?;
        let expected = pg.query_string("SHOW server_version").await?;
        // Debian's PostgreSQL runs with ssl = on.
        for (mode, encrypted) in [
            (TlsMode::Prefer, true),
            (TlsMode::Require, true),
            (TlsMode::Disable, false),
        ] {
            let target = pg.target(&monitor).with_tls(TlsSettings::new(mode));
            let info = probe::test_connection(&target)
                .await
                .with_context(|| format!("{mode:?}"))?;
            assert_eq!(info.server_version, expected, "{mode:?}");
            assert_eq!(info.tls, encrypted, "{mode:?}");
            assert!(
                info.latency > Duration::ZERO && info.latency < Duration::from_secs(5),
                "{info:?}"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn verify_full_checks_the_chain_and_the_host_name() -> Result<()> {
    Postgres::run(async |pg| {
        let monitor = pg.monitor().await?;
        // scripts/test-env.sh gives the server a certificate for localhost
        // and 127.0.0.1, signed by a throwaway CA of its own.
        let ca = DatabaseServer::postgres_ca()?;
        for host in ["localhost", "127.0.0.1"] {
            let mut target = pg.target(&monitor).with_tls(TlsSettings::verify_full(ca.clone()));
            target.host = host.into();
            let info = probe::test_connection(&target).await.with_context(|| host)?;
            assert!(info.tls, "{host}");
        }

        let other_ca = pg.target(&monitor).with_tls(TlsSettings::verify_full(unrelated_ca()));
        let err = probe::test_connection(&other_ca).await.unwrap_err();
        assert_eq!((err.kind, err.stage), (ErrorKind::TlsError, Stage::Connect), "{err}");
        assert!(err.message.contains("UnknownIssuer"), "{err}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_name() -> Result<()> {
    // The local server's certificate names every loopback name there is, so
    // the mismatch is tried on an endpoint of the test's own: it answers
    // PostgreSQL's SSLRequest and presents a certificate, from a CA the
    // probe trusts, for another host.
    let identity = dbfleet_testenv::server_identity(&["db.example.internal"])?;
    let port = tls_endpoint(&identity)?;
    let target = Target::new(
        DbType::Postgresql,
        "127.0.0.1",
        port,
        "nobody",
        Password::new("never-sent"),
    )
    .with_tls(TlsSettings::verify_full(identity.ca_pem.into_bytes()));
    let err = probe::test_connection(&target).await.unwrap_err();
    assert_eq!((err.kind, err.stage), (ErrorKind::TlsError, Stage::Connect), "{err}");
    assert!(err.message.contains("not valid for name"), "{err}");
    Ok(())
}

/// A loopback port that accepts one connection, answers PostgreSQL's
/// SSLRequest with `S` and runs a TLS handshake as `identity`.
fn tls_endpoint(identity: &dbfleet_testenv::ServerIdentity) -> Result<u16> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::{Read, Write};

    let cert = CertificateDer::from_pem_slice(identity.cert_pem.as_bytes())?;
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())?;
    let config =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || -> Result<()> {
        let (mut socket, _) = listener.accept()?;
        let mut ssl_request = [0u8; 8];
        socket.read_exact(&mut ssl_request)?;
        socket.write_all(b"S")?;
        let mut tls = rustls::ServerConnection::new(std::sync::Arc::new(config))?;
        // Ends when the client gives up on the certificate.
        while tls.complete_io(&mut socket).is_ok() && tls.is_handshaking() {}
        Ok(())
    });
    Ok(port)
}

#[tokio::test]
async fn capacity_reports_sizes_and_table_counts() -> Result<()> {
    Postgres::run(async |pg| {
        let monitor = pg.monitor().await?;
        let full = pg.create_database().await?;
        let empty = pg.create_database().await?;
        // Five tables: t1, t2, t3, s.t4 and the partitioned p (its
        // partitions and the view do not count).
        pg.exec_in(
            &full,
            "CREATE TABLE t1 (id int PRIMARY KEY, payload text);
             CREATE TABLE t2 (id int); CREATE TABLE t3 (id int);
             CREATE SCHEMA s; CREATE TABLE s.t4 (id int);
             CREATE TABLE p (id int) PARTITION BY RANGE (id);
             CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10);
             CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (10) TO (20);
             CREATE VIEW v AS SELECT id FROM t2;
             INSERT INTO t1 SELECT g, repeat('x', 1000) FROM generate_series(1, 2000) g;
             CHECKPOINT;",
        )
        .await?;

        let capacity = probe::collect_capacity(&pg.target(&monitor)).await?;
        let by_name: BTreeMap<_, _> = capacity.databases.iter().map(|d| (d.name.as_str(), d)).collect();

        let full_db = by_name.get(full.as_str()).context("the full database is listed")?;
        let empty_db = by_name.get(empty.as_str()).context("the empty database is listed")?;
        assert_eq!(full_db.table_count, Some(5));
        assert_eq!(empty_db.table_count, Some(0));
        for db in [full_db, empty_db] {
            let reported = pg.query_i64(&format!("SELECT pg_database_size('{}')", db.name)).await? as u64;
            assert!(
                db.size_bytes.abs_diff(reported) <= 256 * 1024,
                "{db:?} vs pg_database_size {reported}"
            );
        }
        assert!(
            full_db.size_bytes >= empty_db.size_bytes + 2_000_000,
            "{full_db:?} {empty_db:?}"
        );

        assert!(by_name.contains_key("postgres"));
        assert!(!by_name.contains_key("template0") && !by_name.contains_key("template1"));
        assert!(capacity.system_databases.is_empty());
        assert_eq!(capacity.server_version, pg.query_string("SHOW server_version").await?);
        assert!(capacity.duration > Duration::ZERO);

        let status = capacity_section("db", &capacity, None, &Default::default()).section;
        assert_eq!(status.database_count as usize, capacity.databases.len());
        assert_eq!(
            status.total_size_bytes,
            capacity.databases.iter().map(|d| d.size_bytes).sum::<u64>()
        );
        Ok(())
    })
    .await
}

/// The accounts among `all` that this test created.
fn ours(all: &[Account], names: &[&str]) -> Vec<Account> {
    all.iter()
        .filter(|a| names.contains(&a.name.as_str()))
        .cloned()
        .collect()
}

fn find<'a>(accounts: &'a [Account], name: &str) -> &'a Account {
    accounts
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("{name} not reported"))
}

#[tokio::test]
async fn accounts_report_flags_grants_and_changes() -> Result<()> {
    Postgres::run(async |pg| {
        let monitor = pg.monitor().await?;
        let a = pg.create_database().await?;
        let b = pg.create_database().await?;
        let superuser = pg.create_role("LOGIN SUPERUSER").await?;
        let app = pg.create_role("LOGIN").await?;
        let group = pg.create_role("NOLOGIN").await?;
        let expired = pg.create_role("LOGIN VALID UNTIL '2000-01-01 00:00:00+00'").await?;
        let owner = pg.create_role("LOGIN CREATEDB CREATEROLE").await?;
        pg.exec(&format!(
            "GRANT CONNECT ON DATABASE {a} TO {app}; GRANT CREATE, TEMPORARY ON DATABASE {b} TO {app} WITH GRANT OPTION;
             ALTER DATABASE {b} OWNER TO {owner}; GRANT {group} TO {app};",
            app = app.user,
            owner = owner.user,
            group = group.user,
        ))
        .await?;

        let target = pg.target(&monitor);
        let first = probe::collect_accounts(&target).await?;
        assert!(
            first.accounts.iter().all(|a| !a.name.starts_with("pg_")),
            "predefined roles are left out"
        );
        let sorted = first.accounts.windows(2).all(|w| w[0].name <= w[1].name);
        assert!(sorted, "accounts are sorted by name");

        let role = |name: &str, superuser, can_login| Account {
            name: name.into(),
            superuser,
            can_login,
            ..Default::default()
        };
        let on = |database: &str, privileges: &[&str]| DatabaseGrant {
            privileges: privileges.iter().map(|p| p.to_string()).collect(),
            ..DatabaseGrant::named(database)
        };
        let mut app_databases = vec![
            on(&a, &["CONNECT"]),
            DatabaseGrant {
                grant_option: true,
                ..on(&b, &["CREATE", "TEMPORARY"])
            },
        ];
        app_databases.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(
            find(&first.accounts, &superuser.user),
            &role(&superuser.user, true, true)
        );
        assert_eq!(
            find(&first.accounts, &app.user),
            &Account {
                roles: vec![group.user.clone()],
                databases: app_databases,
                ..role(&app.user, false, true)
            }
        );
        assert_eq!(find(&first.accounts, &group.user), &role(&group.user, false, false));
        assert_eq!(
            find(&first.accounts, &expired.user),
            &Account {
                expired: true,
                valid_until: Some(UNIX_EPOCH + Duration::from_secs(946_684_800)),
                ..role(&expired.user, false, true)
            }
        );
        assert_eq!(
            find(&first.accounts, &owner.user),
            &Account {
                attributes: vec!["CREATEDB".into(), "CREATEROLE".into()],
                // An owner's grant option is implicit, not in the ACL.
                databases: vec![DatabaseGrant {
                    owner: true,
                    ..on(&b, &["CONNECT", "CREATE", "TEMPORARY"])
                }],
                ..role(&owner.user, false, true)
            }
        );
        assert_eq!(
            find(&first.accounts, &monitor.user),
            &Account {
                roles: vec!["pg_monitor".into()],
                ..role(&monitor.user, false, true)
            }
        );
        assert!(first.superuser_count() >= 2, "the admin and our superuser");

        // The monitoring account sees what an admin sees.
        let names = [&superuser, &app, &group, &expired, &owner].map(|l| l.user.as_str());
        let as_admin = probe::collect_accounts(&pg.admin_target()).await?;
        assert_eq!(ours(&as_admin.accounts, &names), ours(&first.accounts, &names));

        let added = pg.create_role("NOLOGIN").await?;
        pg.exec(&format!(
            "DROP ROLE {}; REVOKE ALL ON DATABASE {b} FROM {};",
            group.user, app.user
        ))
        .await?;
        let second = probe::collect_accounts(&target).await?;

        let names = [&superuser, &app, &group, &expired, &owner, &added].map(|l| l.user.as_str());
        let diff = probe::diff_accounts(&ours(&first.accounts, &names), &ours(&second.accounts, &names));
        let key = |name: &str| AccountKey {
            name: name.into(),
            host: None,
        };
        assert_eq!(diff.added, vec![key(&added.user)]);
        assert_eq!(diff.removed, vec![key(&group.user)]);
        assert_eq!(diff.modified, vec![key(&app.user)]);
        assert_eq!(find(&second.accounts, &app.user).databases, [on(&a, &["CONNECT"])]);
        assert!(
            find(&second.accounts, &app.user).roles.is_empty(),
            "its group was dropped"
        );
        Ok(())
    })
    .await
}
