//! Which release line a server runs and whether its vendor still supports
//! it (issue 20, "End-of-life versions"). Pure: the banner is read by the
//! probes, the site's ConfigMap by `observe::lifecycle_overrides`.
//!
//! - [`release_of`]: a version banner to its release line, so patch
//!   releases and distribution suffixes never break the match;
//! - [`LifecycleTable`]: the dated table shipped in the binary
//!   (`lifecycle.yaml`), merged with a site's [`Overrides`];
//! - [`judge`]: supported, ending soon, end of life or unknown on a given
//!   day, and the `VersionSupported` condition that says so.

mod release;
mod support;
mod table;

use std::time::Duration;

pub use release::{Product, Release, release_of};
pub use support::{Support, Verdict, judge, state_of, today};
pub use table::{LifecycleTable, Origin, Overrides};

/// The condition this module decides.
pub const VERSION_SUPPORTED: &str = "VersionSupported";

/// How the controller finds a site's table and how far ahead it warns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecycleSettings {
    /// The ConfigMap, in each watched namespace, that adds to or corrects
    /// the built-in table.
    pub configmap: String,
    /// A release whose end of life is this close is `EndingSoon`.
    pub ending_soon: Duration,
    /// How long a read of the ConfigMap is used before it is read again.
    pub refresh: Duration,
}

impl LifecycleSettings {
    pub const DEFAULT_CONFIGMAP: &str = "dbfleet-version-lifecycle";
    /// Two quarters: time to plan and test an upgrade.
    pub const DEFAULT_ENDING_SOON: Duration = Duration::from_secs(180 * 86_400);
    /// A site's correction is seen within a minute; one GET a minute per
    /// namespace costs the API server nothing.
    pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        LifecycleSettings {
            configmap: Self::DEFAULT_CONFIGMAP.into(),
            ending_soon: Self::DEFAULT_ENDING_SOON,
            refresh: Self::DEFAULT_REFRESH,
        }
    }
}
