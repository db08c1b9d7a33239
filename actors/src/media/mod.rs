//! Media plumbing: plain Rust and tokio, no actix.

pub mod relay;
