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
