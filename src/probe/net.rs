//! Name resolution and time limits shared by both engines.
//!
//! **Absolute names.** A host name with a dot is looked up as written, never
//! through the resolver's search list. In a pod (`ndots:5`) the resolver
//! would otherwise try `db.example.com` as `db.example.com.<ns>.svc.cluster.local`
//! and the other search domains first: names that whoever may create a
//! namespace `com` or a Service `example` owns, so a login pinned to
//! `db.example.com` could reach their server (issue 18). So such a name is
//! asked for as `db.example.com.` (trailing dot: the search list is not
//! applied). The hosts file is read first, as the system resolver does
//! (`hosts: files dns`), because glibc does not match a trailing-dot name
//! against it and pods' `hostAliases` live there. IP literals need no
//! lookup, and a dotless name (`localhost`, a Service in the pod's own
//! namespace) keeps the search list, which is what its author relies on.
//! TLS still names the server as written, without the dot.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::Target;
use super::error::{ErrorKind, ProbeError, Stage};

/// Where the system resolver reads static names from.
const HOSTS_FILE: &str = "/etc/hosts";

/// How a host is looked up.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup<'a> {
    /// An IP literal or a dotless name: passed to the resolver as written.
    AsWritten(&'a str),
    /// A name with a dot: the hosts file's entry for `name`, else DNS for
    /// `absolute` (`name` with a trailing dot).
    Absolute { name: &'a str, absolute: String },
}

/// How `host` (as the instance spells it) is looked up.
pub(crate) fn lookup_for(host: &str) -> Lookup<'_> {
    if host.parse::<IpAddr>().is_ok() || !host.contains('.') {
        return Lookup::AsWritten(host);
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    Lookup::Absolute {
        name,
        absolute: format!("{name}."),
    }
}

/// The addresses a hosts file (`contents`) gives `name`, in file order:
/// names compare case-insensitively, a trailing dot ignored on either side.
pub(crate) fn hosts_file_addresses(contents: &str, name: &str) -> Vec<IpAddr> {
    let wanted = name.strip_suffix('.').unwrap_or(name);
    contents
        .lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            let address: IpAddr = fields.next()?.parse().ok()?;
            fields
                .any(|alias| alias.strip_suffix('.').unwrap_or(alias).eq_ignore_ascii_case(wanted))
                .then_some(address)
        })
        .collect()
}

/// `DnsFailure` for `host`, saying how it was looked up.
fn unresolved(host: &str, lookup: &Lookup<'_>, detail: &str) -> ProbeError {
    let asked = match lookup {
        Lookup::AsWritten(_) => String::new(),
        Lookup::Absolute { absolute, .. } => format!(" (looked up as the absolute name \"{absolute}\")"),
    };
    ProbeError::with_hint(
        ErrorKind::DnsFailure,
        Stage::Connect,
        format!("cannot resolve host name \"{host}\"{asked}: {detail}"),
    )
}

/// The addresses `target.host` resolves to, in the resolver's order. Done
/// here rather than in the drivers so that a DNS failure is told apart from
/// a refused connection, whatever the driver, and so that every engine
/// resolves names the same way (absolute, see the module's doc).
pub(crate) async fn resolve(target: &Target) -> Result<Vec<SocketAddr>, ProbeError> {
    let lookup = lookup_for(&target.host);
    let failed = |detail: String| unresolved(&target.host, &lookup, &detail);
    let addrs: Vec<SocketAddr> = match &lookup {
        Lookup::AsWritten(host) => tokio::net::lookup_host((*host, target.port))
            .await
            .map_err(|e| failed(e.to_string()))?
            .collect(),
        Lookup::Absolute { name, absolute } => {
            // An unreadable hosts file lists nothing; DNS still answers.
            let hosts = tokio::fs::read_to_string(HOSTS_FILE).await.unwrap_or_default();
            let listed = hosts_file_addresses(&hosts, name);
            if listed.is_empty() {
                tokio::net::lookup_host((absolute.as_str(), target.port))
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .collect()
            } else {
                listed.into_iter().map(|ip| SocketAddr::new(ip, target.port)).collect()
            }
        }
    };
    if addrs.is_empty() {
        return Err(failed("no address found".into()));
    }
    Ok(addrs)
}

/// Tries each address until one is not refused, so `localhost` resolving to
/// both `::1` and `127.0.0.1` works whichever the server listens on.
pub(crate) async fn connect_any<T, F, Fut>(target: &Target, mut connect: F) -> Result<T, ProbeError>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = Result<T, ProbeError>>,
{
    let mut last = None;
    for addr in resolve(target).await? {
        match connect(addr).await {
            Err(err) if err.kind == ErrorKind::ConnectionRefused => last = Some(err),
            other => return other,
        }
    }
    Err(last.expect("resolve returns at least one address"))
}

/// Runs `work`, failing with `Timeout` if it takes longer than `limit`.
/// Dropping the unfinished future closes its socket.
pub(crate) async fn bounded<T>(
    limit: Duration,
    stage: Stage,
    what: impl FnOnce() -> String,
    work: impl Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::with_hint(
            ErrorKind::Timeout,
            stage,
            format!("{} took longer than {}", what(), seconds(limit)),
        )),
    }
}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_a_dot_are_looked_up_as_absolute_names() {
        let absolute = |name: &'static str, as_asked: &str| Lookup::Absolute {
            name,
            absolute: as_asked.to_string(),
        };
        assert_eq!(
            lookup_for("db.example.com"),
            absolute("db.example.com", "db.example.com.")
        );
        assert_eq!(lookup_for("pg.svc"), absolute("pg.svc", "pg.svc."));
        // Already absolute: asked for once, not with two dots.
        assert_eq!(
            lookup_for("db.example.com."),
            absolute("db.example.com", "db.example.com.")
        );
        // IP literals need no resolver; dotless names keep the search list.
        for as_written in ["127.0.0.1", "::1", "fd00::5", "localhost", "postgres"] {
            assert_eq!(lookup_for(as_written), Lookup::AsWritten(as_written), "{as_written}");
        }
    }

    #[test]
    fn the_hosts_file_is_read_like_the_system_resolver_reads_it() {
        let hosts = "127.0.0.1\tlocalhost\n\
                     # 10.9.9.9 db.example.com (commented out)\n\
                     10.0.0.7 db.example.com db # an alias too\n\
                     fd00::7  DB.Example.COM.\n\
                     not-an-ip db.example.com\n\
                     10.0.0.8 x.db.example.com\n";
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            hosts_file_addresses(hosts, "db.example.com"),
            [ip("10.0.0.7"), ip("fd00::7")]
        );
        assert_eq!(
            hosts_file_addresses(hosts, "DB.example.com."),
            [ip("10.0.0.7"), ip("fd00::7")]
        );
        assert_eq!(hosts_file_addresses(hosts, "example.com"), Vec::<IpAddr>::new());
        assert_eq!(hosts_file_addresses("", "db.example.com"), Vec::<IpAddr>::new());
    }

    #[test]
    fn a_name_that_does_not_resolve_says_how_it_was_asked() {
        let host = "db.example.com";
        let error = unresolved(host, &lookup_for(host), "no address found");
        assert_eq!(error.kind, ErrorKind::DnsFailure);
        assert!(
            error.message.starts_with(
                "cannot resolve host name \"db.example.com\" (looked up as the absolute name \"db.example.com.\"): \
                 no address found;"
            ),
            "{}",
            error.message
        );
        let plain = unresolved("postgres", &lookup_for("postgres"), "no address found");
        assert!(
            plain
                .message
                .starts_with("cannot resolve host name \"postgres\": no address found;"),
            "{}",
            plain.message
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(seconds(Duration::from_secs(5)), "5s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.500s");
    }
}
