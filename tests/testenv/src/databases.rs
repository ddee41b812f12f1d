//! The PostgreSQL and MariaDB servers of the test environment.
//!
//! `scripts/test-env.sh` starts them and exports where they listen and the
//! admin login the tests use.

use anyhow::{Context, Result};

/// An admin login on one local database server.
#[derive(Clone)]
pub struct DatabaseServer {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for DatabaseServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl DatabaseServer {
    /// The local PostgreSQL (`DBFLEET_TEST_POSTGRES_*`).
    pub fn postgres() -> Result<Self> {
        Self::from_env("POSTGRES")
    }

    /// The local MariaDB (`DBFLEET_TEST_MYSQL_*`).
    pub fn mysql() -> Result<Self> {
        Self::from_env("MYSQL")
    }

    /// The streaming replica of the local PostgreSQL (scripts/replicas.sh):
    /// the same host and admin login, port `DBFLEET_TEST_POSTGRES_REPLICA_PORT`.
    pub fn postgres_replica() -> Result<Self> {
        Self::replica_of(Self::postgres()?, "POSTGRES")
    }

    /// The GTID replica of the local MariaDB (scripts/replicas.sh), port
    /// `DBFLEET_TEST_MYSQL_REPLICA_PORT`.
    pub fn mysql_replica() -> Result<Self> {
        Self::replica_of(Self::mysql()?, "MYSQL")
    }

    fn replica_of(primary: Self, engine: &str) -> Result<Self> {
        let name = format!("DBFLEET_TEST_{engine}_REPLICA_PORT");
        let port = std::env::var(&name).with_context(|| {
            format!("{name} is not set: run the tests through scripts/test.sh, which starts the replicas")
        })?;
        Ok(DatabaseServer {
            port: port.parse().context("port is not a number")?,
            ..primary
        })
    }

    /// The CA that signs the local PostgreSQL's server certificate (for
    /// `localhost` and `127.0.0.1`), as PEM: `DBFLEET_TEST_POSTGRES_CA`.
    pub fn postgres_ca() -> Result<Vec<u8>> {
        let path = std::env::var("DBFLEET_TEST_POSTGRES_CA").context(
            "DBFLEET_TEST_POSTGRES_CA is not set: run the tests through scripts/test.sh, which makes the CA",
        )?;
        std::fs::read(&path).with_context(|| format!("read {path}"))
    }

    fn from_env(engine: &str) -> Result<Self> {
        let var = |field: &str| {
            let name = format!("DBFLEET_TEST_{engine}_{field}");
            std::env::var(&name).with_context(|| {
                format!("{name} is not set: run the tests through scripts/test.sh, which starts the databases")
            })
        };
        Ok(DatabaseServer {
            host: var("HOST")?,
            port: var("PORT")?.parse().context("port is not a number")?,
            user: var("USER")?,
            password: var("PASSWORD")?,
        })
    }
}
