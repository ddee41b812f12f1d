//! The trust boundary end to end (issue 9): which Secrets dbfleet reads as
//! logins, where a stored login may be sent, who may send it, and that a
//! password never goes in a recoverable form to a server nobody verified.
//! Each test runs against a real API server, with the façade and (where the
//! test needs them) the controllers in-process, scoped to its own namespace.
//!
//! "Nothing was sent" is checked with a [`tripwire::Tripwire`]: a plain TCP
//! listener on a loopback port that counts the connections it accepts. A
//! login that never reached a socket cannot have leaked, whatever protocol
//! it would have spoken. Fake PostgreSQL and MySQL servers
//! (`fake_servers`) ask for the password in cleartext and record what
//! arrives, for the authentication guards.

#[path = "../support/mod.rs"]
mod support;

#[path = "../api/harness.rs"]
#[allow(dead_code)] // the API suite uses all of it, this one a part
mod harness;

mod adhoc;
mod allowed_hosts;
mod cleartext;
mod common;
mod duplicate_ids;
mod fake_servers;
mod hostile_servers;
mod moving_logins;
mod secrets;
mod tripwire;
