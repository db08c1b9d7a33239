//! The switch: actors and the protocol plumbing they stand on.
//!
//! # Layout
//! - `sip/`   — SIP without actix: message parsing and normalisation (`message`), digest
//!   authentication (`digest`), SDP (`sdp`), the RFC 3261 transaction layer (`transaction`).
//!   Sans-IO where possible; unit-tested without sockets.
//! - `media/` — RTP without actix: port allocation and the relay task (`relay`).
//! - one file per actor kind at the top level (added as the switch grows).

pub mod media;
pub mod sip;
