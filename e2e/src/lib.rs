//! The sample platform started for real: PostgreSQL databases migrated by `plat migrate`, NATS,
//! and the three services as processes on loopback ports, for the end-to-end tests and the load
//! check (`scripts/bench/gateway-load`); and `plat` itself run on workspaces of the tests' own
//! ([`plat`]).

pub mod load;
pub mod nats;
pub mod plat;
pub mod platform;
pub mod token;

/// The platform's generated gRPC code (api-gateway's copy holds both packages).
#[path = "../../services/api-gateway/src/proto/mod.rs"]
#[allow(clippy::all, unused_qualifications)] // Generated code; the workspace lints are for ours.
pub mod proto;

pub use platform::{Platform, PlatformOptions};
