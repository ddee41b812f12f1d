//! Admin sessions on the local servers that create (and drop) the databases
//! and accounts a test needs, each under a unique name so tests run
//! concurrently and can be re-run.

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use dbfleet::crd::instance::DbType;
use dbfleet::probe::{Password, Target, Timeouts};
use dbfleet_testenv::DatabaseServer;
use futures_util::FutureExt;
use mysql_async::prelude::Queryable;

/// A fresh lowercase identifier starting with `dbft_`.
pub fn unique(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!(
        "dbft_{tag}_{:x}{:05x}_{}",
        std::process::id(),
        nanos & 0xfffff,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A password that only this test run uses.
pub fn password() -> String {
    format!("Pw-{}", unique("secret"))
}

/// Generous limits: tests run in parallel on a small, busy machine, and a
/// server may hold the benchmark's 200 databases. The tests about time
/// limits set their own.
const TEST_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(30),
    operation: Duration::from_secs(300),
};

/// A target for `server` logging in as `user`.
pub fn target(db_type: DbType, server: &DatabaseServer, user: &str, password: &str) -> Target {
    Target::new(db_type, server.host.clone(), server.port, user, Password::new(password)).with_timeouts(TEST_TIMEOUTS)
}

/// A login on the local PostgreSQL.
pub struct Login {
    pub user: String,
    pub password: String,
}

pub struct Postgres {
    pub server: DatabaseServer,
    admin: tokio_postgres::Client,
    databases: Mutex<Vec<String>>,
    roles: Mutex<Vec<String>>,
}

impl Postgres {
    pub async fn connect() -> Result<Self> {
        let server = DatabaseServer::postgres()?;
        let admin = Self::session(&server, "postgres").await?;
        Ok(Postgres {
            server,
            admin,
            databases: Mutex::default(),
            roles: Mutex::default(),
        })
    }

    /// Runs `body` with a fresh fixture and drops what it created, whether
    /// `body` passed, failed or panicked.
    pub async fn run(body: impl AsyncFnOnce(&Postgres) -> Result<()>) -> Result<()> {
        let pg = Postgres::connect().await?;
        let result = AssertUnwindSafe(body(&pg)).catch_unwind().await;
        pg.cleanup().await;
        result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    async fn session(server: &DatabaseServer, database: &str) -> Result<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::Config::new()
            .host(&server.host)
            .port(server.port)
            .user(&server.user)
            .password(&server.password)
            .dbname(database)
            .connect(tokio_postgres::NoTls)
            .await
            .with_context(|| format!("admin login to PostgreSQL database {database}"))?;
        tokio::spawn(connection);
        Ok(client)
    }

    pub fn admin_target(&self) -> Target {
        target(
            DbType::Postgresql,
            &self.server,
            &self.server.user,
            &self.server.password,
        )
    }

    pub fn target(&self, login: &Login) -> Target {
        target(DbType::Postgresql, &self.server, &login.user, &login.password)
    }

    pub async fn exec(&self, sql: &str) -> Result<()> {
        self.admin.batch_execute(sql).await.with_context(|| sql.to_owned())
    }

    /// Runs `sql` inside `database`.
    pub async fn exec_in(&self, database: &str, sql: &str) -> Result<()> {
        let client = Self::session(&self.server, database).await?;
        client.batch_execute(sql).await.with_context(|| sql.to_owned())
    }

    pub async fn query_i64(&self, sql: &str) -> Result<i64> {
        Ok(self
            .admin
            .query_one(sql, &[])
            .await
            .with_context(|| sql.to_owned())?
            .get(0))
    }

    pub async fn query_string(&self, sql: &str) -> Result<String> {
        Ok(self
            .admin
            .query_one(sql, &[])
            .await
            .with_context(|| sql.to_owned())?
            .get(0))
    }

    pub async fn create_database(&self) -> Result<String> {
        let name = unique("db");
        self.exec(&format!("CREATE DATABASE {name}")).await?;
        self.databases.lock().unwrap().push(name.clone());
        Ok(name)
    }

    /// A role created with `options` (e.g. `LOGIN SUPERUSER`), and its
    /// password.
    pub async fn create_role(&self, options: &str) -> Result<Login> {
        let login = Login {
            user: unique("role"),
            password: password(),
        };
        self.exec(&format!(
            "CREATE ROLE {} {options} PASSWORD '{}'",
            login.user, login.password
        ))
        .await?;
        self.roles.lock().unwrap().push(login.user.clone());
        Ok(login)
    }

    /// The monitoring account with exactly the grants docs/probes.md lists.
    pub async fn monitor(&self) -> Result<Login> {
        let login = self.create_role("LOGIN").await?;
        self.exec(&format!("GRANT pg_monitor TO {}", login.user)).await?;
        Ok(login)
    }

    /// Drops what this fixture created.
    pub async fn cleanup(&self) {
        let databases = std::mem::take(&mut *self.databases.lock().unwrap());
        for db in databases {
            let _ = self.exec(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
        }
        let roles = std::mem::take(&mut *self.roles.lock().unwrap());
        for role in roles {
            let _ = self.exec(&format!("DROP ROLE IF EXISTS {role}")).await;
        }
    }
}

/// A MySQL account: `user@host`.
pub struct Account {
    pub user: String,
    pub host: String,
    pub password: String,
}

impl Account {
    pub fn sql(&self) -> String {
        format!("'{}'@'{}'", self.user, self.host)
    }
}

pub struct Mysql {
    pub server: DatabaseServer,
    admin: tokio::sync::Mutex<mysql_async::Conn>,
    databases: Mutex<Vec<String>>,
    /// `DROP USER` / `DROP ROLE` statements for what was created.
    drops: Mutex<Vec<String>>,
}

impl Mysql {
    pub async fn connect() -> Result<Self> {
        let server = DatabaseServer::mysql()?;
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(server.host.clone())
            .tcp_port(server.port)
            .user(Some(server.user.clone()))
            .pass(Some(server.password.clone()))
            .prefer_socket(false);
        let admin = mysql_async::Conn::new(opts).await.context("admin login to MariaDB")?;
        Ok(Mysql {
            server,
            admin: tokio::sync::Mutex::new(admin),
            databases: Mutex::default(),
            drops: Mutex::default(),
        })
    }

    /// Runs `body` with a fresh fixture and drops what it created, whether
    /// `body` passed, failed or panicked.
    pub async fn run(body: impl AsyncFnOnce(&Mysql) -> Result<()>) -> Result<()> {
        let mysql = Mysql::connect().await?;
        let result = AssertUnwindSafe(body(&mysql)).catch_unwind().await;
        mysql.cleanup().await;
        result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    pub fn admin_target(&self) -> Target {
        target(DbType::Mysql, &self.server, &self.server.user, &self.server.password)
    }

    pub fn target(&self, account: &Account) -> Target {
        target(DbType::Mysql, &self.server, &account.user, &account.password)
    }

    pub async fn exec(&self, sql: &str) -> Result<()> {
        self.admin
            .lock()
            .await
            .query_drop(sql)
            .await
            .with_context(|| sql.to_owned())
    }

    pub async fn query_u64(&self, sql: &str) -> Result<u64> {
        let value: Option<u64> = self
            .admin
            .lock()
            .await
            .query_first(sql)
            .await
            .with_context(|| sql.to_owned())?;
        value.with_context(|| format!("no row from {sql}"))
    }

    pub async fn create_database(&self) -> Result<String> {
        let name = unique("db");
        self.exec(&format!("CREATE DATABASE {name}")).await?;
        self.databases.lock().unwrap().push(name.clone());
        Ok(name)
    }

    /// An account on 127.0.0.1 created with `CREATE USER ... <options>`.
    pub async fn create_account(&self, options: &str) -> Result<Account> {
        self.create_account_at("127.0.0.1", options).await
    }

    /// An account on `host` (`%` is any) created with `CREATE USER ...
    /// <options>`.
    pub async fn create_account_at(&self, host: &str, options: &str) -> Result<Account> {
        let account = Account {
            user: unique("user"),
            host: host.into(),
            password: password(),
        };
        self.exec(&format!(
            "CREATE USER {} IDENTIFIED BY '{}' {options}",
            account.sql(),
            account.password
        ))
        .await?;
        self.drops
            .lock()
            .unwrap()
            .push(format!("DROP USER IF EXISTS {}", account.sql()));
        Ok(account)
    }

    /// An anonymous account (`''@host`) on a unique host no client comes
    /// from, so it never shadows another test's login; returns the host.
    pub async fn create_anonymous(&self) -> Result<String> {
        let host = format!("{}.invalid", unique("anon").replace('_', "-"));
        self.exec(&format!("CREATE USER ''@'{host}'")).await?;
        self.drops
            .lock()
            .unwrap()
            .push(format!("DROP USER IF EXISTS ''@'{host}'"));
        Ok(host)
    }

    /// A MariaDB role.
    pub async fn create_role(&self) -> Result<String> {
        let name = unique("role");
        self.exec(&format!("CREATE ROLE {name}")).await?;
        self.drops.lock().unwrap().push(format!("DROP ROLE IF EXISTS {name}"));
        Ok(name)
    }

    /// The monitoring account with exactly the grants docs/probes.md lists.
    pub async fn monitor(&self) -> Result<Account> {
        let account = self.create_account("").await?;
        self.exec(&format!("GRANT SHOW VIEW ON *.* TO {}", account.sql()))
            .await?;
        self.exec(&format!("GRANT SELECT ON mysql.* TO {}", account.sql()))
            .await?;
        Ok(account)
    }

    /// Drops what this fixture created.
    pub async fn cleanup(&self) {
        let databases = std::mem::take(&mut *self.databases.lock().unwrap());
        for db in databases {
            let _ = self.exec(&format!("DROP DATABASE IF EXISTS {db}")).await;
        }
        let drops = std::mem::take(&mut *self.drops.lock().unwrap());
        for drop in drops {
            let _ = self.exec(&drop).await;
        }
    }
}
