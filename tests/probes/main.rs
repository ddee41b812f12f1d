//! The database probes (`dbfleet::probe`) against the real PostgreSQL and
//! MariaDB that `scripts/test-env.sh` starts. Every test creates its own
//! databases and accounts under unique names, probes as a monitoring account
//! holding exactly the grants in docs/probes.md, and drops what it created.

mod failures;
mod findings;
mod fixtures;
mod lifecycle;
mod logins;
mod mysql;
mod postgres;
mod secrets;

/// A CA certificate that signed none of the local servers' certificates.
fn unrelated_ca() -> Vec<u8> {
    UNRELATED_CA.as_bytes().to_vec()
}

const UNRELATED_CA: &str = include_str!("../fixtures/unrelated-ca.pem");
