//! The `dbfleet.io/allowed-hosts` annotation: how a credential Secret's
//! owner pins the hosts (and, optionally, the ports) its login may be sent
//! to (issues 9 and 18).
//!
//! The annotation is a comma-separated list of entries:
//! - a hostname (`db1.example.com`), matched case-insensitively, a trailing
//!   dot ignored;
//! - a wildcard `*.example.com`, matching any name with at least one more
//!   label (`a.example.com`, `a.b.example.com`), never `example.com` itself;
//! - an IP address (`10.0.0.5`, `::1`, `[::1]`), matching that address;
//! - a CIDR (`10.0.0.0/8`, `fd00::/8`), matching IP-literal hosts inside it.
//!
//! Any of them may pin a port with `:port` (`db1.example.com:5432`,
//! `*.db.internal:3306`, `10.0.0.0/8:5432`). An IPv6 address or network
//! takes a port only inside brackets (`[2001:db8::1]:5432`,
//! `[2001:db8::/32]:5432`): without them every `:` belongs to the address,
//! so `2001:db8::/32` allows any port. An entry without a port allows every
//! port, as before ports could be pinned.
//!
//! Matching is lexical: a hostname is never resolved to decide, so a CIDR
//! never matches a hostname and a hostname entry never matches an IP
//! literal. An entry matches the name the instance's `host` spells, not
//! what it resolves to (the probe resolves it as an absolute name,
//! `probe::net`). An annotation with any entry that cannot be read allows
//! no host at all: a typo must fail closed, not open.
//!
//! Pure: the credential resolver (`credentials.rs`) calls it with the host
//! and port the login is about to be sent to.

use std::fmt;
use std::net::IpAddr;

/// The hosts one credential may be sent to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHosts {
    entries: Vec<Entry>,
}

/// One entry: which hosts, and on which port (`None`: any).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    hosts: Hosts,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Hosts {
    /// A lowercase hostname without trailing dot.
    Name(String),
    /// `*.suffix`: the lowercase suffix with its leading dot (`.example.com`).
    Wildcard(String),
    /// An address and a prefix length (a plain IP is a full-length prefix).
    Network(IpAddr, u8),
}

/// Why an annotation cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("it lists no host")]
    Empty,
    #[error(
        "entry {entry:?} is not a hostname, *.suffix wildcard, IP address or CIDR, \
         optionally with a :port: {why}"
    )]
    BadEntry { entry: String, why: &'static str },
}

impl AllowedHosts {
    /// Reads an annotation value. Empty items (`a,,b`, a trailing comma) are
    /// skipped; every other item must be valid.
    pub fn parse(text: &str) -> Result<AllowedHosts, ParseError> {
        let mut entries = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let entry = Entry::parse(item).map_err(|why| ParseError::BadEntry {
                entry: item.to_string(),
                why,
            })?;
            entries.push(entry);
        }
        if entries.is_empty() {
            return Err(ParseError::Empty);
        }
        Ok(AllowedHosts { entries })
    }

    /// Whether `host` (as it will be dialled: a hostname or an IP literal,
    /// IPv6 with or without brackets) on `port` is on the list.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let Some(host) = Host::of(host) else {
            return false;
        };
        self.entries
            .iter()
            .any(|e| e.port.is_none_or(|p| p == port) && e.hosts.contain(&host))
    }
}

/// `host:port` as a message shows it, an IPv6 literal in brackets.
pub fn address(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl fmt::Display for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let hosts = match &entry.hosts {
                Hosts::Name(name) => name.clone(),
                Hosts::Wildcard(suffix) => format!("*{suffix}"),
                Hosts::Network(ip, prefix) if *prefix == full_length(*ip) => ip.to_string(),
                Hosts::Network(ip, prefix) => format!("{ip}/{prefix}"),
            };
            match entry.port {
                None => f.write_str(&hosts)?,
                Some(port) if hosts.contains(':') => write!(f, "[{hosts}]:{port}")?,
                Some(port) => write!(f, "{hosts}:{port}")?,
            }
        }
        Ok(())
    }
}

impl Entry {
    fn parse(item: &str) -> Result<Entry, &'static str> {
        let (hosts, port) = split_port(item)?;
        Ok(Entry {
            hosts: Hosts::parse(hosts)?,
            port,
        })
    }
}

/// Splits `item` into its hosts and its port, if it pins one. A port
/// follows the last `:` of an entry that has one `:`, or the `]` of a
/// bracketed IPv6 address or network; an entry with more `:` and no
/// brackets is an IPv6 address or network without a port.
fn split_port(item: &str) -> Result<(&str, Option<u16>), &'static str> {
    if let Some(rest) = item.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or("a \"[\" without its \"]\"")?;
        if !inside.contains(':') {
            return Err("brackets only ever wrap an IPv6 address or network");
        }
        return match after {
            "" => Ok((inside, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((inside, Some(parse_port(port)?))),
                None => Err("only \":port\" may follow \"]\""),
            },
        };
    }
    match item.matches(':').count() {
        0 => Ok((item, None)),
        1 => {
            let (hosts, port) = item.split_once(':').expect("one colon");
            Ok((hosts, Some(parse_port(port)?)))
        }
        _ => Ok((item, None)),
    }
}

/// A TCP port, 1 to 65535, in plain decimal digits.
fn parse_port(text: &str) -> Result<u16, &'static str> {
    text.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse::<u16>().ok())
        .flatten()
        .filter(|p| *p != 0)
        .ok_or("the port is not a number from 1 to 65535")
}

impl Hosts {
    fn parse(item: &str) -> Result<Hosts, &'static str> {
        if let Some(suffix) = item.strip_prefix("*.") {
            let suffix = hostname(suffix).ok_or("the part after \"*.\" is not a hostname")?;
            return Ok(Hosts::Wildcard(format!(".{suffix}")));
        }
        if item.contains('*') {
            return Err("a wildcard must be a leading \"*.\" (remove the annotation to allow every host)");
        }
        if let Some((address, prefix)) = item.split_once('/') {
            let ip: IpAddr = address
                .parse()
                .map_err(|_| "the part before \"/\" is not an IP address")?;
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= full_length(ip))
                .ok_or("the prefix length is not a number within the address's size")?;
            if mask(ip, prefix) != ip {
                return Err("the address has bits set beyond the prefix length");
            }
            return Ok(Hosts::Network(ip, prefix));
        }
        if item.contains(':') && item.parse::<IpAddr>().is_err() {
            return Err("it is neither an IPv6 address nor a hostname with a port");
        }
        match Host::of(item) {
            Some(Host::Ip(ip)) => Ok(Hosts::Network(ip, full_length(ip))),
            Some(Host::Name(name)) => Ok(Hosts::Name(name)),
            None => Err("it is not a valid hostname"),
        }
    }

    fn contain(&self, host: &Host) -> bool {
        match (self, host) {
            (Hosts::Network(network, prefix), Host::Ip(ip)) => contains(*network, *prefix, *ip),
            (Hosts::Name(allowed), Host::Name(name)) => allowed == name,
            (Hosts::Wildcard(suffix), Host::Name(name)) => name.len() > suffix.len() && name.ends_with(suffix.as_str()),
            _ => false,
        }
    }
}

/// A host as it will be dialled, normalised for comparison.
enum Host {
    Ip(IpAddr),
    Name(String),
}

impl Host {
    fn of(text: &str) -> Option<Host> {
        let text = text.trim();
        let unbracketed = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
        if let Some(inner) = unbracketed {
            // Brackets only ever wrap an IPv6 literal.
            return match inner.parse::<IpAddr>() {
                Ok(IpAddr::V6(ip)) => Some(Host::Ip(IpAddr::V6(ip).to_canonical())),
                _ => None,
            };
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            // An IPv4-mapped IPv6 address reaches the IPv4 host.
            return Some(Host::Ip(ip.to_canonical()));
        }
        hostname(text).map(Host::Name)
    }
}

/// A DNS name, lowercased, without its trailing dot; `None` if it is not one
/// (letters, digits, `-` and `_` in labels of 1 to 63 characters, at most
/// 253 characters).
fn hostname(text: &str) -> Option<String> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then_some(name)
}

fn full_length(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `ip` with every bit past `prefix` cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = if prefix == 0 {
                0
            } else {
                bits & (u32::MAX << (32 - u32::from(prefix)))
            };
            IpAddr::V4(kept.into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = if prefix == 0 {
                0
            } else {
                bits & (u128::MAX << (128 - u32::from(prefix)))
            };
            IpAddr::V6(kept.into())
        }
    }
}

/// Whether `ip` lies in `network/prefix` (same address family only).
fn contains(network: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    network.is_ipv4() == ip.is_ipv4() && mask(ip, prefix) == network
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `list` allows `host` on the port these tests dial unless
    /// they say otherwise.
    fn allows(list: &str, host: &str) -> bool {
        allows_on(list, host, 5432)
    }

    fn allows_on(list: &str, host: &str, port: u16) -> bool {
        AllowedHosts::parse(list).unwrap().allows(host, port)
    }

    #[test]
    fn hostnames_match_case_insensitively_and_ignore_a_trailing_dot() {
        assert!(allows("db1.example.com", "db1.example.com"));
        assert!(allows("DB1.Example.COM", "db1.example.com"));
        assert!(allows("db1.example.com", "Db1.EXAMPLE.com."));
        assert!(allows("db1.example.com.", "db1.example.com"));
        assert!(allows("localhost", "LOCALHOST"));
        assert!(!allows("db1.example.com", "db2.example.com"));
        assert!(!allows("db1.example.com", "db1.example.com.evil.org"));
        assert!(!allows("db1.example.com", "x.db1.example.com"));
        assert!(!allows("example.com", "badexample.com"));
    }

    #[test]
    fn wildcards_match_one_or_more_labels_but_not_the_suffix_itself() {
        let list = "*.example.com";
        assert!(allows(list, "a.example.com"));
        assert!(allows(list, "a.b.example.com"));
        assert!(allows(list, "A.Example.Com."));
        assert!(!allows(list, "example.com"));
        assert!(!allows(list, "example.com."));
        assert!(!allows(list, "badexample.com"));
        assert!(!allows(list, "a.example.com.evil.org"));
        assert!(!allows(list, "a.example.org"));
    }

    #[test]
    fn cidrs_match_only_ip_literals_of_their_family() {
        let list = "10.0.0.0/8, 192.168.1.7, fd00::/8";
        assert!(allows(list, "10.1.2.3"));
        assert!(allows(list, "10.255.255.255"));
        assert!(!allows(list, "11.0.0.1"));
        assert!(allows(list, "192.168.1.7"));
        assert!(!allows(list, "192.168.1.8"));
        assert!(allows(list, "fd12:3456::1"));
        assert!(allows(list, "[fd12:3456::1]"));
        assert!(allows(list, "FD12:3456::1"));
        assert!(!allows(list, "fe80::1"));
        // An IPv4-mapped IPv6 literal reaches the IPv4 address.
        assert!(allows(list, "::ffff:10.1.2.3"));
        assert!(!allows(list, "::ffff:11.1.2.3"));
        // Never resolved: a name is not checked against CIDRs.
        assert!(!allows("127.0.0.0/8", "localhost"));
        assert!(!allows("0.0.0.0/0", "db.example.com"));
        // A number that a resolver might read as an IPv4 address is neither.
        assert!(!allows("127.0.0.0/8", "2130706433"));
        assert!(!allows("127.0.0.0/8", "127.1"));
    }

    #[test]
    fn ipv6_literals_with_or_without_brackets() {
        for list in ["::1", "[::1]", "0:0:0:0:0:0:0:1", "::1/128"] {
            assert!(allows(list, "::1"), "{list}");
            assert!(allows(list, "[::1]"), "{list}");
            assert!(allows(list, "0:0::1"), "{list}");
            assert!(!allows(list, "::2"), "{list}");
            assert!(!allows(list, "127.0.0.1"), "{list}");
        }
        assert!(allows("::/0", "[2001:db8::5]"));
        assert!(!allows("::/0", "10.0.0.1"));
        assert!(allows("0.0.0.0/0", "10.0.0.1"));
    }

    #[test]
    fn names_and_addresses_never_cross() {
        assert!(!allows("*.example.com", "10.0.0.1"));
        assert!(!allows("*.1", "10.0.0.1"));
        assert!(!allows("10.0.0.1", "10.0.0.1.example.com"));
    }

    #[test]
    fn hosts_that_are_neither_never_match() {
        for host in [
            "",
            " ",
            "db:5432",
            "/var/run/postgresql",
            "[db.example.com]",
            "[10.0.0.1]",
            "a b",
        ] {
            assert!(!allows("*.example.com, 0.0.0.0/0, ::/0, db", host), "{host:?}");
        }
    }

    #[test]
    fn empty_items_are_skipped_but_an_empty_list_is_an_error() {
        assert!(allows(" a.example.com ,, b.example.com, ", "b.example.com"));
        assert_eq!(AllowedHosts::parse(""), Err(ParseError::Empty));
        assert_eq!(AllowedHosts::parse(" , ,"), Err(ParseError::Empty));
    }

    #[test]
    fn a_bad_entry_rejects_the_whole_list() {
        for bad in [
            "*",
            "*.",
            "*example.com",
            "a.*.example.com",
            "postgres://db",
            "db.example.com:",
            "db.example.com:0",
            "db.example.com:65536",
            "db.example.com:+5432",
            "db.example.com:54 32",
            "db.example.com:5432:1",
            "*.example.com:x",
            "10.0.0.0/8:",
            "[::1]5432",
            "[::1",
            "[::1]:",
            "[::1]:0",
            "[db.example.com]:5432",
            "[10.0.0.1]:5432",
            "::1::2",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.1/8",
            "10.0.0.0/x",
            "10.0.0/8",
            "-db.example.com",
            "db..example.com",
            "[db.example.com]",
            "[10.0.0.1]",
            "db example",
        ] {
            let list = format!("ok.example.com, {bad}");
            match AllowedHosts::parse(&list) {
                Err(ParseError::BadEntry { entry, .. }) => assert_eq!(entry, bad.trim()),
                other => panic!("{bad:?} was read as {other:?}"),
            }
        }
    }

    #[test]
    fn errors_name_the_entry_and_the_lists_print_normalised() {
        let error = AllowedHosts::parse("db, 10.0.0.1/8").unwrap_err();
        assert!(error.to_string().contains("\"10.0.0.1/8\""), "{error}");
        let list = AllowedHosts::parse("DB.Example.com., *.Example.org, 10.0.0.0/8, [::1]").unwrap();
        assert_eq!(list.to_string(), "db.example.com,*.example.org,10.0.0.0/8,::1");
        let pinned = AllowedHosts::parse(
            "DB.Example.com:5432, *.db.internal:3306, 10.0.0.0/8:5432, [2001:DB8::1]:5432, 2001:db8::/32",
        )
        .unwrap();
        assert_eq!(
            pinned.to_string(),
            "db.example.com:5432,*.db.internal:3306,10.0.0.0/8:5432,[2001:db8::1]:5432,2001:db8::/32"
        );
        let error = AllowedHosts::parse("db:0").unwrap_err();
        assert!(error.to_string().contains(":port"), "{error}");
    }

    #[test]
    fn an_entry_with_a_port_allows_only_that_port() {
        let list = "db.example.com:5432, *.db.internal:3306, 10.0.0.0/8:5432, [2001:db8::1]:5432, [fd00::/8]:3306";
        for (host, port) in [
            ("db.example.com", 5432),
            ("DB.example.com.", 5432),
            ("pg.db.internal", 3306),
            ("10.1.2.3", 5432),
            ("::ffff:10.1.2.3", 5432),
            ("2001:db8::1", 5432),
            ("[2001:db8::1]", 5432),
            ("fd00::7", 3306),
        ] {
            assert!(allows_on(list, host, port), "{host} on {port}");
        }
        for (host, port) in [
            ("db.example.com", 5433),
            ("db.example.com", 3306),
            ("pg.db.internal", 5432),
            ("10.1.2.3", 3306),
            ("2001:db8::1", 5433),
            ("fd00::7", 5432),
            ("11.0.0.1", 5432),
        ] {
            assert!(!allows_on(list, host, port), "{host} on {port}");
        }
    }

    #[test]
    fn an_entry_without_a_port_allows_every_port() {
        for port in [1, 3306, 5432, 65535] {
            assert!(allows_on("db.example.com", "db.example.com", port));
            assert!(allows_on("*.db.internal", "pg.db.internal", port));
            assert!(allows_on("10.0.0.0/8", "10.0.0.1", port));
            assert!(allows_on("[::1]", "::1", port));
        }
        // The same host with and without a port: the portless entry wins.
        assert!(allows_on("db.example.com:5432, db.example.com", "db.example.com", 1));
    }

    #[test]
    fn unbracketed_ipv6_never_carries_a_port() {
        // Every colon belongs to the address: this is 2001:db8::1:5432, on
        // any port, and not 2001:db8::1 on 5432.
        assert!(allows_on("2001:db8::1:5432", "2001:db8::1:5432", 1));
        assert!(!allows_on("2001:db8::1:5432", "2001:db8::1", 5432));
        assert!(allows_on("2001:db8::/32", "2001:db8:ffff::9", 3306));
        assert!(allows_on("[2001:db8::/32]:3306", "2001:db8:ffff::9", 3306));
        assert!(!allows_on("[2001:db8::/32]:3306", "2001:db8:ffff::9", 5432));
    }

    #[test]
    fn addresses_print_as_host_and_port() {
        assert_eq!(address("db.example.com", 5432), "db.example.com:5432");
        assert_eq!(address("10.0.0.1", 3306), "10.0.0.1:3306");
        assert_eq!(address("::1", 5432), "[::1]:5432");
        assert_eq!(address("[::1]", 5432), "[::1]:5432");
    }
}
