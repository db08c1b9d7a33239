//! The IVR definition format: parsing and validation live in the data layer
//! (`entities::repo::ivrs::definition`), which rejects a bad document before storing it;
//! this module re-exports them for the interpreter and the `Ivr` actor.
//!
//! - [`IvrDefinition::parse`]: structure, attributes, targets, prompts, variables.
//! - [`IvrDefinition::load`]: the same, then every prompt and tone file checked below the
//!   storage directory (`storage.dir`): what the switch does with a stored menu before it
//!   runs it.

pub use entities::repo::ivrs::definition::*;
