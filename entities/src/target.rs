//! [`Target`]: where an access number or a group overflow leads.

use std::fmt;
use std::str::FromStr;

/// A routing target, written `ivr:<id>`, `group:<number>`, `ext:<number>` or
/// `conference:<number>` in the database and the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// An IVR menu, by id.
    Ivr(i32),
    /// A group (queue), by number.
    Group(String),
    /// An extension, by number.
    Ext(String),
    /// A conference room, by number.
    Conference(String),
}

/// The accepted forms, for error messages.
pub const TARGET_FORMS: &str = "ivr:<id> | group:<number> | ext:<number> | conference:<number>";

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((kind, value)) = s.split_once(':') else {
            return Err(format!("{s:?} is not one of {TARGET_FORMS}"));
        };
        if kind == "ivr" {
            return match value.parse::<i32>() {
                Ok(id) if id >= 0 && value.bytes().all(|b| b.is_ascii_digit()) => {
                    Ok(Target::Ivr(id))
                }
                _ => Err(format!("{s:?}: the IVR id must be a non-negative integer")),
            };
        }
        if !crate::validate::is_number(value) {
            return Err(format!("{s:?}: the number must be 1-32 digits"));
        }
        match kind {
            "group" => Ok(Target::Group(value.to_owned())),
            "ext" => Ok(Target::Ext(value.to_owned())),
            "conference" => Ok(Target::Conference(value.to_owned())),
            _ => Err(format!("{s:?} is not one of {TARGET_FORMS}")),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ivr(id) => write!(f, "ivr:{id}"),
            Target::Group(n) => write!(f, "group:{n}"),
            Target::Ext(n) => write!(f, "ext:{n}"),
            Target::Conference(n) => write!(f, "conference:{n}"),
        }
    }
}
