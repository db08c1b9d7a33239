//! The switch: actors and the protocol plumbing they stand on.
//!
//! # Layout
//! - `sip/` — SIP without actix: URIs and headers (`uri`, `headers`), messages and their
//!   parsing (`message`), the RFC 3261 transaction layer (`transaction`), dialogs
//!   (`dialog`), digest authentication (`digest`), SDP (`sdp`), and the socket task around
//!   the transaction layer (`endpoint`). Sans-IO where possible; tested without sockets.
//! - `media/` — RTP without actix: port allocation (`ports`), the media engine thread
//!   (`engine`: forwarding, playback, recording, mixing, DTMF) and its DSP parts.
//! - `ivr/` — IVR menus without actix: the XML definition format (`definition`) and the
//!   sans-IO interpreter (`machine`: events in, play/collect/HTTP/transfer commands out).
//! - One file per actor: `router` (`SipRouter`: SIP events to their actor, the numbering
//!   plan), `extension` (`Extension`: registrar, phone state), `call/` (`Call`: one call,
//!   its legs and relay, its call-log row; `mod.rs` has the actor, its phases and messages,
//!   the rest is by concern: `legs`, `routing`, `queue`, `ivr`, `media`, `log`), `leg`
//!   (`Leg`: one SIP dialog), `event_hub`
//!   (`EventHub`), `call_log_writer` (`CallLogWriter`: batched call-log rows),
//!   `conference` (`Conference`: a meet-me room, its members and their mix modes),
//!   `playout` (`Playout`: the switch calls an extension and plays something to it),
//!   `queue` (`Queue`: a group's waiting callers and its agents; the decisions are in
//!   `queue_policy`).
//! - `routing_lists` — the blacklist, VIP levels, routing rules and access numbers held in
//!   memory for the calls (reloaded with the directory).
//! - `services` — what the switching actors share; `switchboard` — starting and stopping
//!   all of it.

pub mod call;
pub mod call_log_writer;
pub mod conference;
pub mod event_hub;
pub mod extension;
pub mod ivr;
pub mod ivr_actor;
pub mod leg;
pub mod media;
pub mod playout;
pub mod queue;
pub mod queue_policy;
pub mod router;
pub mod routing_lists;
pub mod services;
pub mod sip;
pub mod switchboard;

pub use switchboard::{Switchboard, SwitchboardConfig};

/// The errors of the switching core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] entities::Error),
    #[error("SIP: {0}")]
    Sip(String),
    #[error("media: {0}")]
    Media(#[from] media::PortError),
    #[error("{0}")]
    MediaEngine(#[from] media::engine::EngineError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
