//! Test support for dbfleet: a private Kubernetes control plane and the local
//! database servers, shared by the integration tests and the local stack
//! (`scripts/up.sh` runs this crate's binary).

mod certs;
mod control_plane;
mod databases;
mod process;

pub use certs::{ServerIdentity, server_identity};
pub use control_plane::{ControlPlane, Frozen, Options};
pub use databases::DatabaseServer;
pub use process::{Signal, signal};
