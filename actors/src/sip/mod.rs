//! SIP plumbing: plain Rust and tokio, no actix.

pub mod digest;
pub mod message;
pub mod sdp;
pub mod transaction;
