//! The probes against the local MariaDB, run as the monitoring account.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use dbfleet::crd::instance::TlsMode;
use dbfleet::crd::inventory::InventoryAccount;
use dbfleet::observe::inventory::capacity_section;
use dbfleet::probe::{self, Account, AccountKey, DatabaseGrant, ErrorKind, Stage, Timeouts, TlsSettings};

use crate::fixtures::Mysql;
use crate::unrelated_ca;

#[tokio::test]
async fn connection_test_reads_the_version() -> Result<()> {
    Mysql::run(async |my| {
        let monitor = my.monitor().await?;
        // Debian's MariaDB has no TLS configured, so `prefer` falls back to
        // plain TCP.
        for mode in [TlsMode::Prefer, TlsMode::Disable] {
            let target = my.target(&monitor).with_tls(TlsSettings::new(mode));
            let info = probe::test_connection(&target)
                .await
                .with_context(|| format!("{mode:?}"))?;
            assert!(info.server_version.contains("MariaDB"), "{info:?}");
            assert!(!info.tls);
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
async fn tls_is_refused_when_the_server_offers_none() -> Result<()> {
    Mysql::run(async |my| {
        let monitor = my.monitor().await?;
        for tls in [
            TlsSettings::new(TlsMode::Require),
            TlsSettings::verify_full(unrelated_ca()),
        ] {
            let err = probe::test_connection(&my.target(&monitor).with_tls(tls))
                .await
                .unwrap_err();
            assert_eq!((err.kind, err.stage), (ErrorKind::TlsError, Stage::Connect), "{err}");
            assert!(err.message.contains("does not offer TLS"), "{err}");
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn capacity_reports_sizes_and_table_counts() -> Result<()> {
    Mysql::run(async |my| {
        let monitor = my.monitor().await?;
        let full = my.create_database().await?;
        let empty = my.create_database().await?;
        for sql in [
            format!("CREATE TABLE {full}.t1 (id INT PRIMARY KEY, payload VARCHAR(1000), KEY (payload(100)))"),
            format!("CREATE TABLE {full}.t2 (id INT) ENGINE=Aria"),
            format!("CREATE TABLE {full}.t3 (id INT)"),
            format!("CREATE VIEW {full}.v AS SELECT id FROM {full}.t3"),
            format!("CREATE SEQUENCE {full}.seq"),
            format!("INSERT INTO {full}.t1 SELECT seq, REPEAT('x', 1000) FROM {full}.seq_1_to_2000"),
            format!("ANALYZE TABLE {full}.t1, {full}.t2, {full}.t3"),
        ] {
            my.exec(&sql).await?;
        }

        let capacity = probe::collect_capacity(&my.target(&monitor)).await?;
        let by_name: BTreeMap<_, _> = capacity.databases.iter().map(|d| (d.name.as_str(), d)).collect();
        let full_db = by_name.get(full.as_str()).context("the full schema is listed")?;
        let empty_db = by_name.get(empty.as_str()).context("the empty schema is listed")?;

        assert_eq!(
            full_db.table_count,
            Some(3),
            "t1, t2 and t3; not the view or the sequence"
        );
        assert_eq!(empty_db, &&probe_size(&empty, 0, 0));
        let reported = my
            .query_u64(&format!(
                "SELECT CAST(SUM(DATA_LENGTH + INDEX_LENGTH) AS UNSIGNED) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = '{full}'"
            ))
            .await?;
        assert_eq!(full_db.size_bytes, reported);
        assert!(full_db.size_bytes > 1_500_000, "2000 rows of 1000 bytes: {full_db:?}");

        let system: Vec<&str> = capacity.system_databases.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(system, ["information_schema", "mysql", "performance_schema", "sys"]);
        assert!(!by_name.contains_key("mysql"));
        let mysql_schema = &capacity.system_databases[1];
        assert!(
            mysql_schema.table_count.unwrap() > 10 && mysql_schema.size_bytes > 0,
            "{mysql_schema:?}"
        );

        let status = capacity_section("db", &capacity, None, &Default::default()).section;
        assert_eq!(status.database_count as usize, capacity.databases.len());
        assert_eq!(status.total_size_bytes, capacity.total_size_bytes());
        assert!(status.databases.iter().all(|d| d.name != "mysql"));
        Ok(())
    })
    .await
}

fn probe_size(name: &str, size_bytes: u64, tables: u32) -> probe::DatabaseSize {
    probe::DatabaseSize {
        name: name.into(),
        size_bytes,
        table_count: Some(tables),
    }
}

fn find<'a>(accounts: &'a [Account], name: &str) -> &'a Account {
    accounts
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("{name} not reported"))
}

#[tokio::test]
async fn accounts_report_flags_grants_and_changes() -> Result<()> {
    Mysql::run(async |my| {
        let monitor = my.monitor().await?;
        let a = my.create_database().await?;
        let b = my.create_database().await?;
        let c = my.create_database().await?;
        my.exec(&format!("CREATE TABLE {c}.t (id INT)")).await?;
        let superuser = my.create_account("").await?;
        let app = my.create_account("").await?;
        let anywhere = my.create_account_at("%", "").await?;
        let locked = my.create_account("ACCOUNT LOCK").await?;
        let expired = my.create_account("PASSWORD EXPIRE").await?;
        let role = my.create_role().await?;
        for sql in [
            format!("GRANT ALL PRIVILEGES ON *.* TO {} WITH GRANT OPTION", superuser.sql()),
            format!("GRANT SELECT ON {a}.* TO {}", app.sql()),
            format!("GRANT ALL PRIVILEGES ON {b}.* TO {} WITH GRANT OPTION", app.sql()),
            format!("GRANT {role} TO {}", app.sql()),
            format!("GRANT RELOAD, PROCESS ON *.* TO {}", anywhere.sql()),
            format!("GRANT SELECT ON {c}.t TO {}", anywhere.sql()),
            format!("GRANT SELECT ON {a}.* TO {role}"),
        ] {
            my.exec(&sql).await?;
        }

        let target = my.target(&monitor);
        let first = probe::collect_accounts(&target).await?;
        let local = Some("127.0.0.1".to_string());
        let user = |name: &str| Account {
            name: name.into(),
            host: local.clone(),
            can_login: true,
            auth_plugin: Some("mysql_native_password".into()),
            ..Default::default()
        };
        let select_on = |database: &str| DatabaseGrant {
            privileges: vec!["SELECT".into()],
            ..DatabaseGrant::named(database)
        };

        let su = &superuser.user;
        let found = find(&first.accounts, su);
        assert_eq!(
            (found.superuser, found.global_grant_option, &found.databases),
            (true, true, &vec![]),
            "{found:?}"
        );
        for privilege in ["RELOAD", "SELECT", "SHUTDOWN", "SUPER"] {
            assert!(
                found.global_privileges.iter().any(|p| p == privilege),
                "{privilege} in {found:?}"
            );
        }

        let found = find(&first.accounts, &app.user);
        assert_eq!(found.roles, [role.clone()]);
        assert!(
            found.global_privileges.is_empty() && !found.global_grant_option,
            "{found:?}"
        );
        let mut expected = [select_on(&a), DatabaseGrant::named(&b)];
        expected.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(
            found.databases.iter().map(|d| &d.name).collect::<Vec<_>>(),
            expected.iter().map(|d| &d.name).collect::<Vec<_>>()
        );
        let on_a = found.databases.iter().find(|d| d.name == a).unwrap();
        assert_eq!(on_a, &select_on(&a));
        let on_b = found.databases.iter().find(|d| d.name == b).unwrap();
        assert!(on_b.grant_option && !on_b.object_grants, "{on_b:?}");
        for privilege in [
            "ALTER", "CREATE", "DELETE", "DROP", "EXECUTE", "INDEX", "INSERT", "SELECT", "UPDATE",
        ] {
            assert!(
                on_b.privileges.iter().any(|p| p == privilege),
                "{privilege} in {on_b:?}"
            );
        }
        assert!(on_b.privileges.windows(2).all(|w| w[0] < w[1]), "sorted: {on_b:?}");

        assert_eq!(
            find(&first.accounts, &anywhere.user),
            &Account {
                host: Some("%".into()),
                global_privileges: vec!["PROCESS".into(), "RELOAD".into()],
                databases: vec![DatabaseGrant {
                    object_grants: true,
                    ..DatabaseGrant::named(&c)
                }],
                ..user(&anywhere.user)
            }
        );
        let l = &locked.user;
        assert_eq!(
            find(&first.accounts, l),
            &Account {
                locked: true,
                ..user(l)
            }
        );
        let e = &expired.user;
        assert_eq!(
            find(&first.accounts, e),
            &Account {
                expired: true,
                ..user(e)
            }
        );
        assert_eq!(
            find(&first.accounts, &role),
            &Account {
                name: role.clone(),
                databases: vec![select_on(&a)],
                ..Default::default()
            }
        );
        let m = &monitor.user;
        assert_eq!(
            find(&first.accounts, m),
            &Account {
                global_privileges: vec!["SHOW VIEW".into()],
                databases: vec![select_on("mysql")],
                ..user(m)
            }
        );
        assert!(first.superuser_count() >= 2, "the admin and our superuser");

        // The monitoring account sees what an admin sees.
        let as_admin = probe::collect_accounts(&my.admin_target()).await?;
        let mine = |all: &[Account]| -> Vec<Account> {
            let names = [su, &app.user, l, e, &role];
            all.iter().filter(|a| names.contains(&&a.name)).cloned().collect()
        };
        assert_eq!(mine(&as_admin.accounts), mine(&first.accounts));

        let added = my.create_account("").await?;
        my.exec(&format!("DROP USER {}", expired.sql())).await?;
        my.exec(&format!("ALTER USER {} ACCOUNT UNLOCK", locked.sql())).await?;
        let second = probe::collect_accounts(&target).await?;

        let names = [su, &app.user, l, e, &role, &added.user];
        let ours =
            |all: &[Account]| -> Vec<Account> { all.iter().filter(|a| names.contains(&&a.name)).cloned().collect() };
        let diff = probe::diff_accounts(&ours(&first.accounts), &ours(&second.accounts));
        let key = |name: &str| AccountKey {
            name: name.into(),
            host: local.clone(),
        };
        assert_eq!(diff.added, vec![key(&added.user)]);
        assert_eq!(diff.removed, vec![key(e)]);
        assert_eq!(diff.modified, vec![key(l)]);

        // The same comparison on the fields the DbInventory keeps.
        let items =
            |all: &[Account]| -> Vec<InventoryAccount> { ours(all).iter().map(InventoryAccount::from).collect() };
        let item_diff = probe::diff_accounts(&items(&first.accounts), &items(&second.accounts));
        assert_eq!(item_diff, diff);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_stalled_query_times_out_at_the_query_stage() -> Result<()> {
    Mysql::run(async |my| {
        let monitor = my.monitor().await?;
        let limit = Duration::from_millis(800);
        let target = my.target(&monitor).with_timeouts(Timeouts {
            connect: Timeouts::DEFAULT_CONNECT,
            operation: limit,
        });
        // The account sync reads mysql.tables_priv, which this admin session
        // holds.
        my.exec("LOCK TABLES mysql.tables_priv WRITE").await?;
        let started = std::time::Instant::now();
        let result = probe::collect_accounts(&target).await;
        let elapsed = started.elapsed();
        my.exec("UNLOCK TABLES").await?;

        let err = result.unwrap_err();
        assert_eq!((err.kind, err.stage), (ErrorKind::Timeout, Stage::Query), "{err}");
        assert!(!err.is_connect());
        assert!(
            elapsed >= limit && elapsed < limit + Duration::from_secs(3),
            "{elapsed:?}"
        );
        Ok(())
    })
    .await
}
