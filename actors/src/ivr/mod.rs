//! IVR menus without actix (sans-IO): the definition format and its interpreter.
//!
//! - [`definition`]: the XML format of `docs/ivr.md`, parsed and validated into an
//!   [`IvrDefinition`] (re-exported from `entities`, which validates a menu before storing
//!   it); [`IvrDefinition::load`] also checks the prompt files below `storage.dir`.
//! - [`machine`]: [`IvrMachine`], one menu running on one call: events in
//!   ([`IvrEvent`]: playback finished, keys, timers, HTTP answers, voicemail, hang-up),
//!   commands out ([`IvrCommand`]: play, stop, timers, HTTP query, transfer, voicemail,
//!   hang-up, warnings), and the call-log record ([`IvrRecord`]: `dtmfkey`, `ivrpoint`,
//!   `ivrAnwerTime`, `ivrAnwerDuration`, `ivrvoicemail`, `business`).
//!
//! The `Ivr` actor owns one machine per call in the IVR and does the I/O: the media engine
//! plays and records, a timer per `StartTimer`, an HTTP client per `HttpGet`.

pub mod definition;
pub mod machine;

pub use definition::{DefinitionError, ErrorKind, IvrDefinition};
pub use machine::{
    check_answer, encode_query_value, HttpReply, IvrBusiness, IvrCommand, IvrEvent, IvrFacts,
    IvrMachine, IvrOutcome, IvrRecord, PromptRef, TransferTarget,
};
