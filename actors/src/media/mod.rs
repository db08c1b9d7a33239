//! Media plumbing: plain Rust and tokio, no actix.
//!
//! - [`ports`]: RTP/RTCP port pairs from a configured range, bound on the media address.
//! - [`relay`]: the per-call RTP relay task and its control handle.

pub mod ports;
pub mod relay;

pub use ports::{PortAllocator, PortError, PortPair};
pub use relay::{
    Flow, Latching, RelayConfig, RelayError, RelayEvent, RelayHandle, RelayStatsSnapshot, Side,
};
