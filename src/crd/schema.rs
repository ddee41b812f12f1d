//! Patterns and limits shared by the CRD schemas and by the façade's input
//! rules (`api::instances::rules`, `api::tags::rules`), so a limit is written
//! once. The patterns are evaluated by the API server (Go RE2) and read by
//! OpenAPI tools (ECMA 262), so they use only the syntax both agree on.

/// A Kubernetes DNS-1123 label: lowercase alphanumerics and `-`.
pub const DNS1123_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A Kubernetes DNS-1123 subdomain: dot-separated labels.
pub const DNS1123_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A key in a Secret's `data`.
pub const SECRET_KEY: &str = "^[-._a-zA-Z0-9]+$";

/// A host name (RFC 1123, case-insensitive, `_` tolerated as real fleets
/// have it), an IPv4 address, or an IPv6 address (it contains a colon).
pub const HOSTNAME_OR_IP: &str = r"^([A-Za-z0-9]([-A-Za-z0-9_]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9_]*[A-Za-z0-9])?)*\.?|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)$";

/// A Go duration such as `90s`, `15m` or `1h30m` (what `metav1.Duration` and
/// CEL's `duration()` accept), without a sign.
pub const GO_DURATION: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$";

/// A CSS colour name (`teal`) or `#rrggbb`.
pub const COLOR: &str = "^(#[0-9a-fA-F]{6}|[a-zA-Z]+)$";

/// Longest DNS-1123 subdomain (a DbInstance's name, a Secret's name).
pub const MAX_SUBDOMAIN_LEN: usize = 253;
/// Longest DNS-1123 label (a DbTag's name, the tag code).
pub const MAX_LABEL_LEN: usize = 63;
/// Longest host name (DNS's limit).
pub const MAX_HOST_LEN: usize = 253;
/// TCP ports.
pub const MIN_PORT: i32 = 1;
pub const MAX_PORT: i32 = 65535;
/// Longest database name: PostgreSQL's limit is 63 bytes, MySQL's 64
/// characters.
pub const MAX_DATABASE_NAME_LEN: usize = 64;
/// Longest instance description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// Most tags on one instance.
pub const MAX_TAGS_PER_INSTANCE: usize = 64;
/// Longest tag display name or category, in characters.
pub const MAX_TAG_TEXT_LEN: usize = 64;
/// Longest colour (the longest CSS colour name has 20 letters).
pub const MAX_COLOR_LEN: usize = 32;

/// Matches [`DNS1123_LABEL`] within [`MAX_LABEL_LEN`], for code that checks
/// a name before the API server does (the façade's 400s).
pub fn is_dns1123_label(name: &str) -> bool {
    name.len() <= MAX_LABEL_LEN && is_label(name, |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Matches [`DNS1123_SUBDOMAIN`] within [`MAX_SUBDOMAIN_LEN`].
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= MAX_SUBDOMAIN_LEN
        && name
            .split('.')
            .all(|label| is_label(label, |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
}

/// An IP address, or a host name within [`MAX_HOST_LEN`] whose labels
/// (at most 63 characters each) are letters, digits, `-` and `_`, starting
/// and ending with a letter, digit or `_`: what [`HOSTNAME_OR_IP`] accepts,
/// without the trailing dot.
pub fn is_hostname_or_ip(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
        || (host.len() <= MAX_HOST_LEN
            && host.split('.').all(|label| {
                label.len() <= MAX_LABEL_LEN && is_label(label, |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }))
}

/// Matches [`COLOR`] within [`MAX_COLOR_LEN`].
pub fn is_color(color: &str) -> bool {
    match color.strip_prefix('#') {
        Some(hex) => hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => color.len() <= MAX_COLOR_LEN && color.bytes().all(|b| b.is_ascii_alphabetic()),
    }
}

/// A non-empty label of `allowed` bytes that neither starts nor ends with
/// `-`.
fn is_label(label: &str, allowed: impl Fn(u8) -> bool) -> bool {
    !label.is_empty() && label.bytes().all(allowed) && !label.starts_with('-') && !label.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        assert!(is_dns1123_label("prod-1"));
        assert!(is_dns1123_label(&"a".repeat(MAX_LABEL_LEN)));
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(MAX_LABEL_LEN + 1)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
        assert!(is_dns1123_subdomain("db-1.eu"));
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a..b",
            "a_b",
            "a.",
            &"a".repeat(MAX_SUBDOMAIN_LEN + 1),
        ] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn hosts_are_names_or_addresses() {
        for good in ["db1.example.com", "10.0.0.1", "::1", "my_host", "Host-77.Example"] {
            assert!(is_hostname_or_ip(good), "{good}");
        }
        for bad in ["", "a..b", "-a.example", "a b", "db.", &"a".repeat(MAX_LABEL_LEN + 1)] {
            assert!(!is_hostname_or_ip(bad), "{bad}");
        }
    }

    #[test]
    fn colours_are_names_or_six_hex_digits() {
        for good in ["teal", "#00ff00", "#ABCDEF"] {
            assert!(is_color(good), "{good}");
        }
        for bad in ["#0f0", "#00ff0g", "light blue", &"a".repeat(MAX_COLOR_LEN + 1)] {
            assert!(!is_color(bad), "{bad}");
        }
    }
}
