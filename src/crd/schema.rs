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
