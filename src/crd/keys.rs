//! Labels, annotations and finalizers dbfleet owns on Kubernetes objects
//! (SPEC §1.1, §1.2, §3.2).

/// The API group of every dbfleet resource.
pub const GROUP: &str = "dbfleet.io";

/// Stable integer id the REST contract addresses objects by.
pub const ID_LABEL: &str = "dbfleet.io/id";

/// Marks a DbInstance as soft-deleted (value `"true"`).
pub const RECYCLED_LABEL: &str = "dbfleet.io/recycled";
/// When the DbInstance was soft-deleted (RFC 3339).
pub const RECYCLED_AT_ANNOTATION: &str = "dbfleet.io/recycled-at";

/// Setting any of these (to a fresh timestamp) asks the controller for an
/// immediate run, the way `kubectl rollout restart` does.
pub const SYNC_CAPACITY_REQUESTED_AT: &str = "dbfleet.io/sync-capacity-requested-at";
pub const SYNC_ACCOUNTS_REQUESTED_AT: &str = "dbfleet.io/sync-accounts-requested-at";
pub const TEST_CONNECTION_REQUESTED_AT: &str = "dbfleet.io/test-connection-requested-at";

/// A Secret carrying this label (value `"true"`) is a *credential* in the
/// REST contract, and the only kind of Secret dbfleet reads a login from.
pub const CREDENTIAL_LABEL: &str = "dbfleet.io/credential";

/// A Secret carrying this label (value `"true"`), or the credential label,
/// may be read as a CA bundle (`spec.tls.caSecretRef`).
pub const CA_LABEL: &str = "dbfleet.io/ca";

/// On a credential Secret: the hosts its login may be sent to
/// (`observe::allowed_hosts` has the syntax). Absent: any host.
pub const ALLOWED_HOSTS_ANNOTATION: &str = "dbfleet.io/allowed-hosts";

/// On a credential Secret, value `"true"`: its login may answer a PostgreSQL
/// MD5 challenge from a server whose identity was not verified. Weak (the
/// answer can be cracked offline); for servers that still store MD5 hashes.
pub const ALLOW_MD5_ANNOTATION: &str = "dbfleet.io/allow-md5";

/// Kept on every DbTag that an instance references, so deleting a used tag
/// waits until nothing uses it (like PVC protection).
pub const TAG_IN_USE_FINALIZER: &str = "dbfleet.io/in-use-protection";

/// On a DbInventory *part* (an overflow object of a big server's
/// inventory): the uid of the DbInstance it belongs to, so its parts are
/// found and deleted by a label selector, and never someone else's.
pub const INVENTORY_OWNER_LABEL: &str = "dbfleet.io/inventory-owner";
/// On a DbInventory part: `accounts` or `databases`.
pub const INVENTORY_SECTION_LABEL: &str = "dbfleet.io/inventory-section";
