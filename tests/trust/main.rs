//! The trust boundary end to end: a stored login reaches only a host that
//! someone allowed to use it chose, and never in a recoverable form a server
//! nobody verified. Fake servers on loopback record what clients send them.

#[path = "../support/mod.rs"]
mod support;

mod cleartext;
mod fake_servers;
