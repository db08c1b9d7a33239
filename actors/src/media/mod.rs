//! Media plumbing: plain Rust and tokio, no actix.
//!
//! - [`ports`]: RTP/RTCP port pairs from a configured range, bound on the media address.
//! - [`engine`]: the media engine thread owning every RTP socket: forwarding between
//!   bridged legs, playback, recording, conference mixing, DTMF (see its docs).
//! - [`poller`]: the level-triggered epoll set and waker under the engine.
//!
//! Sans-IO building blocks of the media engine (issue 4), all on the 8 kHz / 20 ms grid
//! of [`frame`]:
//! - [`g711`]: µ-law and A-law coding.
//! - [`rtp_out`]: RTP header parsing and the outgoing stream ([`rtp_out::RtpSender`]) that
//!   keeps SSRC, sequence and timestamp coherent across source switches.
//! - [`jitter`]: the adaptive jitter buffer for audio the switch consumes.
//! - [`dtmf`]: RFC 4733 receive and send, in-band (Goertzel) detection, SIP INFO bodies.
//! - [`wav`]: prompt loading (with resampling) and incremental stereo recording.
//! - [`tone`]: ringback, busy, beep and DTMF generators.
//! - [`playback`]: prompts, music on hold, playlists, tones as frame sources; playbacks
//!   with stop-on-DTMF and a once-only finished event.
//! - [`mixer`]: the conference mixer (talk, listen-only, whisper, muted).
//! - [`moh`]: the built-in music on hold.
//! - [`tts`]: text-to-speech engines (espeak-ng, HTTP) behind a trait, with a cache.
//! - [`say`]: numbers as words from a fixed vocabulary (queue positions).

pub mod dtmf;
pub mod engine;
pub mod frame;
pub mod g711;
pub mod jitter;
pub mod mixer;
pub mod moh;
pub mod playback;
pub mod poller;
pub mod ports;
pub mod rtp_out;
pub mod say;
pub mod tone;
pub mod tts;
pub mod wav;

pub use ports::{PortAllocator, PortError, PortPair};
