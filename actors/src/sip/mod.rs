//! SIP plumbing: plain Rust and tokio, no actix.

pub mod admission;
pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod headers;
pub mod message;
pub mod sdp;
pub mod transaction;
pub mod uri;
