//! Patterns shared by the CRD schemas. They are evaluated by the API server
//! (Go RE2) and read by OpenAPI tools (ECMA 262), so they use only the syntax
//! both agree on.

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

/// A tag's colour: `#rrggbb` or a CSS colour name.
pub const COLOR: &str = "^(#[0-9a-fA-F]{6}|[a-zA-Z]+)$";

// Lengths and ranges of the fields people write, shared by the CRD schemas
// (`kubectl apply`) and the façade's request schemas (the OpenAPI document),
// so each limit is written once. Lengths count characters (Unicode code
// points), as JSON Schema's `maxLength` does.

/// A Kubernetes object name (DNS-1123 subdomain) or a host name.
pub const MAX_NAME_LEN: usize = 253;
/// One DNS-1123 label (a tag's code).
pub const MAX_LABEL_LEN: usize = 63;
/// The TCP ports a server can listen on.
pub const MIN_PORT: i64 = 1;
pub const MAX_PORT: i64 = 65535;
/// `databaseName`: the longest identifier MySQL allows, and more than
/// PostgreSQL's 63 bytes.
pub const MAX_DATABASE_NAME_LEN: usize = 64;
/// An instance's `description`.
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// Tags on one instance.
pub const MAX_TAGS: usize = 64;
/// A tag's `displayName` and `category`.
pub const MAX_TAG_TEXT_LEN: usize = 64;
/// A tag's colour name.
pub const MAX_COLOR_LEN: usize = 32;
