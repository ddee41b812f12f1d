//! The `dbfleet.io/allowed-hosts` annotation: how a credential Secret's
//! owner pins the hosts its login may be sent to (issue 9).
//!
//! The annotation is a comma-separated list of entries:
//! - a hostname (`db1.example.com`), matched case-insensitively, a trailing
//!   dot ignored;
//! - a wildcard `*.example.com`, matching any name with at least one more
//!   label (`a.example.com`, `a.b.example.com`), never `example.com` itself;
//! - an IP address (`10.0.0.5`, `::1`, `[::1]`), matching that address;
//! - a CIDR (`10.0.0.0/8`, `fd00::/8`), matching IP-literal hosts inside it.
//!
//! Matching is lexical: a hostname is never resolved to decide, so a CIDR
//! never matches a hostname and a hostname entry never matches an IP
//! literal. An annotation with any entry that cannot be read allows no host
//! at all: a typo must fail closed, not open.
//!
//! Pure: the credential resolver (`credentials.rs`) calls it with the host
//! the login is about to be sent to.

use std::fmt;
use std::net::IpAddr;

/// The hosts one credential may be sent to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHosts {
    entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
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
    #[error("entry {entry:?} is not a hostname, *.suffix wildcard, IP address or CIDR: {why}")]
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
    /// IPv6 with or without brackets) is on the list.
    pub fn allows(&self, host: &str) -> bool {
        match Host::of(host) {
            Some(Host::Ip(ip)) => self.entries.iter().any(|e| match e {
                Entry::Network(network, prefix) => contains(*network, *prefix, ip),
                Entry::Name(_) | Entry::Wildcard(_) => false,
            }),
            Some(Host::Name(name)) => self.entries.iter().any(|e| match e {
                Entry::Name(allowed) => *allowed == name,
                Entry::Wildcard(suffix) => name.len() > suffix.len() && name.ends_with(suffix.as_str()),
                Entry::Network(..) => false,
            }),
            None => false,
        }
    }
}

impl fmt::Display for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match entry {
                Entry::Name(name) => f.write_str(name)?,
                Entry::Wildcard(suffix) => write!(f, "*{suffix}")?,
                Entry::Network(ip, prefix) if *prefix == full_length(*ip) => write!(f, "{ip}")?,
                Entry::Network(ip, prefix) => write!(f, "{ip}/{prefix}")?,
            }
        }
        Ok(())
    }
}

impl Entry {
    fn parse(item: &str) -> Result<Entry, &'static str> {
        if let Some(suffix) = item.strip_prefix("*.") {
            let suffix = hostname(suffix).ok_or("the part after \"*.\" is not a hostname")?;
            return Ok(Entry::Wildcard(format!(".{suffix}")));
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
            return Ok(Entry::Network(ip, prefix));
        }
        match Host::of(item) {
            Some(Host::Ip(ip)) => Ok(Entry::Network(ip, full_length(ip))),
            Some(Host::Name(name)) => Ok(Entry::Name(name)),
            None => Err("it is not a valid hostname"),
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

    fn allows(list: &str, host: &str) -> bool {
        AllowedHosts::parse(list).unwrap().allows(host)
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
            "db.example.com:5432",
            "postgres://db",
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
    }
}
