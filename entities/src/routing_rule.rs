//! `routing_rule`: the intelligent (time-based) routing rules of interface 61
//! (`IntelligentRoutingRule`), and the pure logic that reads them: which rule applies to a
//! number at a given local time ([`rule_active`], [`active_rule`]) and what it does
//! ([`RuleAction`]). No database access here; the queries are in
//! [`crate::repo::routing_rules`].
//!
//! The fields and their JSON names are the manual's (`telnum`, `offon`, `operationtype`,
//! `parameters`, `datetype`, `begintime`, `endtime`, `subbegintime`, `subendtime`). The
//! rules are managed through the manual's SOAP service (`IntelligentRoutingServiceImpl`) and
//! the admin REST API (`/api/v1/routing_rules`).
//!
//! # When a rule is active
//!
//! Times are the switch's **local** wall-clock time (a `NaiveDateTime`, e.g.
//! `chrono::Local::now().naive_local()`). Times of day and instants are half-open ranges:
//! the begin is included, the end is not. Days (weekdays, days of the month) are whole
//! units and both the first and the last day are included (`1`→`5` is Monday to Friday,
//! `1`→`31` the whole month; the manual's `1…28|30|31` are last days of months).
//!
//! | `datetype` | `begintime` / `endtime` | active |
//! |---|---|---|
//! | `DAY_TYPE` | `HH:mm:ss` | every day from `begintime` to `endtime`; `22:00:00`→`06:00:00` wraps past midnight; equal times = the whole day |
//! | `WEEK_TYPE` | weekday `0` (Sunday) … `6` (Saturday) | on the days `begintime`…`endtime` (`5`→`1` wraps: Friday to Monday), within `subbegintime`→`subendtime` (`HH:mm:ss`) of each such day; both empty or equal = the whole day |
//! | `MONTH_TYPE` | day of month `1`…`31` | on the days `begintime`…`endtime` of every month (`28`→`3` wraps: the 28th to the month's end, then the 1st to the 3rd) |
//! | `SPECIFIED_DAY` | `yyyy-MM-dd HH:mm:ss` | from `begintime` to `endtime` (`endtime` must be later) |
//!
//! `WEEK_TYPE` combines its two ranges per day: each day of the weekday range opens the
//! time window on that day. A window that wraps past midnight (`22:00:00`→`06:00:00`)
//! belongs to the day it **starts** on and runs into the next morning, so `1`→`5` with
//! `22:00:00`→`06:00:00` covers Monday 22:00 to Saturday 06:00 (not Monday 00:00–06:00).
//! A day of the month beyond the month's length never starts a span in that month (`31`→`31`
//! skips April); a span ending on `31` runs to the end of every month.
//! `subbegintime`/`subendtime` mean nothing for the other date types (the manual: "other
//! datetypes: no effect"); they are stored empty.
//!
//! # Which rule wins
//!
//! [`active_rule`] looks at the enabled (`offon`) rules of the called number that are active
//! at that time and picks the most specific: `SPECIFIED_DAY` over `MONTH_TYPE` over
//! `WEEK_TYPE` over `DAY_TYPE`; among equals the lowest `id` (the oldest rule). A stored row
//! whose schedule or action does not parse (written bypassing validation) is skipped.
//!
//! # `parameters` (D-48: undocumented in the manual; defined here)
//!
//! | `operationtype` | `parameters` | [`RuleAction`] |
//! |---|---|---|
//! | `IVR_SELECT` | IVR id: `3` or `ivr:3` | `IvrSelect(3)` |
//! | `BUSY_AND_REJECT` | empty | `BusyAndReject` |
//! | `PLAY_AND_HANGUP` | `tone:19` or `19` (voice file `tones/19.wav`, interface 44's ids), `file:prompts/x.wav` (below `storage.dir`, relative, no `..`, `.wav`), `tts:text` (at most 2000 characters) | `PlayAndHangup(RulePrompt)` |
//! | `TRANSFER_CALL` | number to forward to (1–32 digits) | `TransferCall(number)` |
//! | `VOICE_MAIL` | empty | `VoiceMail` |
//! | `ONANSWER_TO_VM` | seconds of ringing before voicemail (1–600), empty = 20 | `OnAnswerToVm { after_secs }` |
//! | `ONANSWER_TRANSFER` | `number` or `number,seconds` (1–600, default 20) | `OnAnswerTransfer { number, after_secs }` |
//! | `DIAL_HTTP_DOCKING` | the `http://` / `https://` URL to request | `DialHttpDocking(url)` |
//! | `CALLER_AREA_TRANSFER` | `prefix:number` pairs separated by commas, `*:number` = everyone else, e.g. `010:801,021:802,*:803` | `CallerAreaTransfer(AreaRoutes)` |
//! | `INCOMING_CALL_DELAY` | seconds to delay answering (1–120) | `IncomingCallDelay { secs }` |
//!
//! The `ONANSWER_*` types are read as "on **no** answer" (D-48). Surrounding blanks are
//! ignored; everything else is an [`Error::Invalid`] on `parameters` when the rule is
//! written.

use std::cmp::Reverse;
use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDateTime, NaiveTime, Timelike, Weekday};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{validate, Error};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "routing_rule")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The called number or access number the rule applies to (digits).
    pub telnum: String,
    /// `true`: enabled; `false`: disabled.
    pub offon: bool,
    /// One of [`OperationType`]'s names, e.g. `IVR_SELECT`.
    pub operationtype: String,
    /// The action's parameters; format per `operationtype` (see the module doc).
    #[sea_orm(column_type = "Text")]
    pub parameters: String,
    /// One of [`DateType`]'s names, e.g. `WEEK_TYPE`.
    pub datetype: String,
    /// Start of the span; format per `datetype` (stored in canonical form).
    pub begintime: String,
    /// End of the span; format per `datetype`.
    pub endtime: String,
    /// `WEEK_TYPE` only: start of the daily window, `HH:mm:ss`, or empty (whole day).
    pub subbegintime: String,
    /// `WEEK_TYPE` only: end of the daily window, `HH:mm:ss`, or empty (whole day).
    pub subendtime: String,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds.
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The parsed `operationtype`.
    pub fn operation(&self) -> Result<OperationType, Error> {
        parse_field("operationtype", &self.operationtype)
    }

    /// The parsed `datetype`.
    pub fn date_type(&self) -> Result<DateType, Error> {
        parse_field("datetype", &self.datetype)
    }

    /// When the rule applies (`datetype`, `begintime`, `endtime`, sub times).
    pub fn schedule(&self) -> Result<Schedule, Error> {
        Schedule::parse(
            &self.datetype,
            &self.begintime,
            &self.endtime,
            &self.subbegintime,
            &self.subendtime,
        )
    }

    /// What the rule does (`operationtype` + `parameters`).
    pub fn action(&self) -> Result<RuleAction, Error> {
        RuleAction::parse(&self.operationtype, &self.parameters)
    }
}

fn parse_field<T: FromStr<Err = String>>(field: &str, value: &str) -> Result<T, Error> {
    value.parse().map_err(|m| Error::invalid(field, m))
}

/// Whether `rule` is enabled and its schedule covers the local time `at` (see the module
/// doc). A rule whose schedule does not parse is never active.
pub fn rule_active(rule: &Model, at: NaiveDateTime) -> bool {
    rule.offon && rule.schedule().is_ok_and(|s| s.contains(at))
}

/// The rule that applies to calls to `telnum` at the local time `at`: among the enabled
/// rules of `telnum` active at `at` whose action parses, the most specific
/// (`SPECIFIED_DAY` > `MONTH_TYPE` > `WEEK_TYPE` > `DAY_TYPE`), then the lowest `id`. `None`:
/// no rule applies, route the call as usual. `rules` may hold rules of other numbers.
pub fn active_rule<'a>(rules: &'a [Model], telnum: &str, at: NaiveDateTime) -> Option<&'a Model> {
    rules
        .iter()
        .filter(|r| r.offon && r.telnum == telnum && r.action().is_ok())
        .filter_map(|r| Some((r, r.schedule().ok()?)))
        .filter(|(_, s)| s.contains(at))
        .min_by_key(|(r, s)| (Reverse(s.date_type().specificity()), r.id))
        .map(|(r, _)| r)
}

/// Declares a string-named enum with the manual's identifiers.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in the manual's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The manual's identifier.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = String;
            /// The manual's identifier, exactly (case-sensitive).
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    "" => Err(format!("is required ({})", Self::names())),
                    other => Err(format!("{other:?} is not a {} ({})", $what, Self::names())),
                }
            }
        }

        impl $name {
            fn names() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(" | ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// `operationtype`: what a rule does with the call.
    OperationType, "routing operation", {
        /// A time-based IVR menu.
        IvrSelect = "IVR_SELECT",
        /// Reject the call at once.
        BusyAndReject = "BUSY_AND_REJECT",
        /// Play a prompt, then reject.
        PlayAndHangup = "PLAY_AND_HANGUP",
        /// Forward unconditionally.
        TransferCall = "TRANSFER_CALL",
        /// To voicemail.
        VoiceMail = "VOICE_MAIL",
        /// To voicemail when nobody answers.
        OnAnswerToVm = "ONANSWER_TO_VM",
        /// Forward when nobody answers.
        OnAnswerTransfer = "ONANSWER_TRANSFER",
        /// Dialling the number sends an HTTP request.
        DialHttpDocking = "DIAL_HTTP_DOCKING",
        /// Forward by the caller's home area.
        CallerAreaTransfer = "CALLER_AREA_TRANSFER",
        /// Delay answering (so the carrier's colour ringback finishes first).
        IncomingCallDelay = "INCOMING_CALL_DELAY",
    }
);

named_enum!(
    /// `datetype`: how a rule's span repeats.
    DateType, "date type", {
        /// Every day, `HH:mm:ss` to `HH:mm:ss`.
        Day = "DAY_TYPE",
        /// Every week, weekday to weekday, within a daily window.
        Week = "WEEK_TYPE",
        /// Every month, day to day.
        Month = "MONTH_TYPE",
        /// One period, `yyyy-MM-dd HH:mm:ss` to `yyyy-MM-dd HH:mm:ss`.
        SpecifiedDay = "SPECIFIED_DAY",
    }
);

impl DateType {
    /// Higher wins when several rules are active: `SPECIFIED_DAY` 3, `MONTH_TYPE` 2,
    /// `WEEK_TYPE` 1, `DAY_TYPE` 0.
    pub fn specificity(self) -> u8 {
        match self {
            DateType::Day => 0,
            DateType::Week => 1,
            DateType::Month => 2,
            DateType::SpecifiedDay => 3,
        }
    }
}

/// A time-of-day window `[begin, end)`; it wraps past midnight when `begin > end` and is
/// the whole day when `begin == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub begin: NaiveTime,
    pub end: NaiveTime,
}

impl TimeWindow {
    /// The whole day.
    pub const ALL_DAY: TimeWindow = TimeWindow {
        begin: NaiveTime::MIN,
        end: NaiveTime::MIN,
    };

    /// Whether the window covers the whole day.
    pub fn is_all_day(&self) -> bool {
        self.begin == self.end
    }

    /// Whether the window runs past midnight.
    pub fn wraps(&self) -> bool {
        self.begin > self.end
    }

    /// Whether the time of day `t` is inside the window.
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.is_all_day() {
            true
        } else if self.wraps() {
            t >= self.begin || t < self.end
        } else {
            self.begin <= t && t < self.end
        }
    }
}

/// A parsed rule span (see the module doc for the semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// `DAY_TYPE`.
    Daily(TimeWindow),
    /// `WEEK_TYPE`: the days `first..=last` (wrapping Saturday → Sunday), each opening
    /// `window` on that day.
    Weekly {
        first: Weekday,
        last: Weekday,
        window: TimeWindow,
    },
    /// `MONTH_TYPE`: the days of the month `first..=last` (1–31, wrapping at the month's
    /// end).
    Monthly { first: u32, last: u32 },
    /// `SPECIFIED_DAY`: `[begin, end)`.
    Specified {
        begin: NaiveDateTime,
        end: NaiveDateTime,
    },
}

impl Schedule {
    /// Parse the schedule fields of a rule; the error names the bad field. Blanks around
    /// values are ignored.
    pub fn parse(
        datetype: &str,
        begintime: &str,
        endtime: &str,
        subbegintime: &str,
        subendtime: &str,
    ) -> Result<Schedule, Error> {
        let date_type: DateType = parse_field("datetype", datetype.trim())?;
        let (begintime, endtime) = (begintime.trim(), endtime.trim());
        Ok(match date_type {
            DateType::Day => Schedule::Daily(TimeWindow {
                begin: parse_time("begintime", begintime, date_type)?,
                end: parse_time("endtime", endtime, date_type)?,
            }),
            DateType::Week => {
                let first = parse_weekday("begintime", begintime)?;
                let last = parse_weekday("endtime", endtime)?;
                let window = match (subbegintime.trim(), subendtime.trim()) {
                    ("", "") => TimeWindow::ALL_DAY,
                    ("", _) => {
                        return Err(Error::invalid(
                            "subbegintime",
                            "is required when subendtime is set (HH:mm:ss)",
                        ))
                    }
                    (_, "") => {
                        return Err(Error::invalid(
                            "subendtime",
                            "is required when subbegintime is set (HH:mm:ss)",
                        ))
                    }
                    (b, e) => TimeWindow {
                        begin: parse_time("subbegintime", b, date_type)?,
                        end: parse_time("subendtime", e, date_type)?,
                    },
                };
                Schedule::Weekly {
                    first,
                    last,
                    window,
                }
            }
            DateType::Month => Schedule::Monthly {
                first: parse_month_day("begintime", begintime)?,
                last: parse_month_day("endtime", endtime)?,
            },
            DateType::SpecifiedDay => {
                let begin = parse_datetime("begintime", begintime)?;
                let end = parse_datetime("endtime", endtime)?;
                if end <= begin {
                    return Err(Error::invalid(
                        "endtime",
                        format!("{endtime:?} must be later than begintime {begintime:?}"),
                    ));
                }
                Schedule::Specified { begin, end }
            }
        })
    }

    /// The `datetype` this schedule has.
    pub fn date_type(&self) -> DateType {
        match self {
            Schedule::Daily(_) => DateType::Day,
            Schedule::Weekly { .. } => DateType::Week,
            Schedule::Monthly { .. } => DateType::Month,
            Schedule::Specified { .. } => DateType::SpecifiedDay,
        }
    }

    /// Whether the local time `at` is inside the schedule.
    pub fn contains(&self, at: NaiveDateTime) -> bool {
        match *self {
            Schedule::Daily(window) => window.contains(at.time()),
            Schedule::Weekly {
                first,
                last,
                window,
            } => {
                let in_days = |d: Weekday| {
                    day_in_range(
                        d.num_days_from_sunday(),
                        first.num_days_from_sunday(),
                        last.num_days_from_sunday(),
                    )
                };
                let (day, t) = (at.weekday(), at.time());
                if window.is_all_day() {
                    in_days(day)
                } else if window.wraps() {
                    // The night belongs to the day it starts on.
                    (in_days(day) && t >= window.begin) || (in_days(day.pred()) && t < window.end)
                } else {
                    in_days(day) && window.contains(t)
                }
            }
            Schedule::Monthly { first, last } => day_in_range(at.day(), first, last),
            Schedule::Specified { begin, end } => begin <= at && at < end,
        }
    }

    /// The schedule's fields in canonical text form: (`begintime`, `endtime`,
    /// `subbegintime`, `subendtime`). Sub times are empty except for `WEEK_TYPE` with a
    /// window.
    pub fn to_fields(&self) -> (String, String, String, String) {
        let time = |t: NaiveTime| t.format("%H:%M:%S").to_string();
        match *self {
            Schedule::Daily(w) => (time(w.begin), time(w.end), String::new(), String::new()),
            Schedule::Weekly {
                first,
                last,
                window,
            } => {
                let (sb, se) = if window == TimeWindow::ALL_DAY {
                    (String::new(), String::new())
                } else {
                    (time(window.begin), time(window.end))
                };
                (
                    first.num_days_from_sunday().to_string(),
                    last.num_days_from_sunday().to_string(),
                    sb,
                    se,
                )
            }
            Schedule::Monthly { first, last } => (
                first.to_string(),
                last.to_string(),
                String::new(),
                String::new(),
            ),
            Schedule::Specified { begin, end } => (
                begin.format(DATETIME_FORMAT).to_string(),
                end.format(DATETIME_FORMAT).to_string(),
                String::new(),
                String::new(),
            ),
        }
    }
}

/// `day` within `first..=last`, wrapping when `first > last`.
fn day_in_range(day: u32, first: u32, last: u32) -> bool {
    if first <= last {
        first <= day && day <= last
    } else {
        day >= first || day <= last
    }
}

const DATETIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

fn digits(s: &str, min: usize, max: usize) -> Option<u32> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `HH:mm:ss` (a one-digit hour is accepted), 00:00:00–23:59:59.
fn parse_time(field: &str, value: &str, date_type: DateType) -> Result<NaiveTime, Error> {
    fn hms(value: &str) -> Option<NaiveTime> {
        let mut parts = value.split(':');
        let h = digits(parts.next()?, 1, 2)?;
        let m = digits(parts.next()?, 2, 2)?;
        let s = digits(parts.next()?, 2, 2)?;
        if parts.next().is_some() {
            return None;
        }
        NaiveTime::from_hms_opt(h, m, s)
    }
    hms(value).ok_or_else(|| {
        let what = format!("a time of day HH:mm:ss (00:00:00-23:59:59) with datetype {date_type}");
        if value.is_empty() {
            Error::invalid(field, format!("is required: {what}"))
        } else {
            Error::invalid(field, format!("{value:?} is not {what}"))
        }
    })
}

/// `0` (Sunday) … `6` (Saturday).
fn parse_weekday(field: &str, value: &str) -> Result<Weekday, Error> {
    const DAYS: [Weekday; 7] = [
        Weekday::Sun,
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
    ];
    match digits(value, 1, 1) {
        Some(d) if d <= 6 => Ok(DAYS[d as usize]),
        _ => {
            let what = "a weekday 0 (Sunday), 1 (Monday) … 6 (Saturday) with datetype WEEK_TYPE";
            Err(if value.is_empty() {
                Error::invalid(field, format!("is required: {what}"))
            } else {
                Error::invalid(field, format!("{value:?} is not {what}"))
            })
        }
    }
}

/// A day of the month `1`…`31`.
fn parse_month_day(field: &str, value: &str) -> Result<u32, Error> {
    match digits(value, 1, 2) {
        Some(d) if (1..=31).contains(&d) => Ok(d),
        _ => {
            let what = "a day of the month 1-31 with datetype MONTH_TYPE";
            Err(if value.is_empty() {
                Error::invalid(field, format!("is required: {what}"))
            } else {
                Error::invalid(field, format!("{value:?} is not {what}"))
            })
        }
    }
}

/// `yyyy-MM-dd HH:mm:ss` (a `T` is accepted as the separator).
fn parse_datetime(field: &str, value: &str) -> Result<NaiveDateTime, Error> {
    let ok_shape = value.len() == 19
        && value.is_char_boundary(10)
        && matches!(value.as_bytes()[10], b' ' | b'T');
    let parsed = ok_shape
        .then(|| {
            let v = format!("{} {}", &value[..10], &value[11..]);
            NaiveDateTime::parse_from_str(&v, DATETIME_FORMAT).ok()
        })
        .flatten()
        .filter(|t| t.nanosecond() == 0);
    parsed.ok_or_else(|| {
        let what = "a date and time yyyy-MM-dd HH:mm:ss with datetype SPECIFIED_DAY";
        if value.is_empty() {
            Error::invalid(field, format!("is required: {what}"))
        } else {
            Error::invalid(field, format!("{value:?} is not {what}"))
        }
    })
}

/// Ringing before an `ONANSWER_*` action takes over when `parameters` gives none.
pub const NO_ANSWER_DEFAULT_SECS: u32 = 20;
/// Longest ringing before an `ONANSWER_*` action.
pub const NO_ANSWER_MAX_SECS: u32 = 600;
/// Longest `INCOMING_CALL_DELAY`.
pub const DELAY_MAX_SECS: u32 = 120;
/// Longest `parameters` text.
pub const PARAMETERS_MAX: usize = 2048;
/// Longest TTS text of `PLAY_AND_HANGUP`.
pub const TTS_MAX: usize = 2000;

/// What a rule does, parsed from `operationtype` + `parameters` (formats in the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleAction {
    /// Run IVR menu `id` (`ivr_menu.id`).
    IvrSelect(i32),
    /// Reject the call (busy).
    BusyAndReject,
    /// Play the prompt, then hang up.
    PlayAndHangup(RulePrompt),
    /// Forward to this number at once.
    TransferCall(String),
    /// Straight to voicemail.
    VoiceMail,
    /// Ring as usual; after `after_secs` without an answer, to voicemail.
    OnAnswerToVm { after_secs: u32 },
    /// Ring as usual; after `after_secs` without an answer, forward to `number`.
    OnAnswerTransfer { number: String, after_secs: u32 },
    /// Send an HTTP request to this URL (the call's data as the router defines it).
    DialHttpDocking(String),
    /// Forward by the caller number's prefix.
    CallerAreaTransfer(AreaRoutes),
    /// Wait `secs` before answering / routing the call.
    IncomingCallDelay { secs: u32 },
}

impl RuleAction {
    /// Parse `parameters` for `operationtype`. Errors name `operationtype` or `parameters`.
    pub fn parse(operationtype: &str, parameters: &str) -> Result<RuleAction, Error> {
        let op: OperationType = parse_field("operationtype", operationtype.trim())?;
        let p = parameters.trim();
        validate::text("parameters", p, PARAMETERS_MAX)?;
        let bad = |expected: &str| {
            let message = if p.is_empty() {
                format!("is required with {op}: {expected}")
            } else {
                format!("{p:?} is not valid for {op}: expected {expected}")
            };
            Error::invalid("parameters", message)
        };
        let empty = || {
            if p.is_empty() {
                Ok(())
            } else {
                Err(Error::invalid(
                    "parameters",
                    format!("must be empty with {op} (got {p:?})"),
                ))
            }
        };
        let seconds =
            |s: &str, min: u32, max: u32| digits(s, 1, 4).filter(|n| (min..=max).contains(n));
        Ok(match op {
            OperationType::IvrSelect => {
                const WHAT: &str = "an IVR id, `3` or `ivr:3`";
                let id = p.strip_prefix("ivr:").unwrap_or(p);
                let id = digits(id, 1, 10)
                    .and_then(|n| i32::try_from(n).ok())
                    .ok_or_else(|| bad(WHAT))?;
                RuleAction::IvrSelect(id)
            }
            OperationType::BusyAndReject => {
                empty()?;
                RuleAction::BusyAndReject
            }
            OperationType::PlayAndHangup => {
                RuleAction::PlayAndHangup(RulePrompt::parse(p).map_err(|m| {
                    if p.is_empty() {
                        bad(RulePrompt::FORMS)
                    } else {
                        Error::invalid("parameters", format!("{m} (with {op})"))
                    }
                })?)
            }
            OperationType::TransferCall => {
                if !validate::is_number(p) {
                    return Err(bad("the number to forward to (1-32 digits)"));
                }
                RuleAction::TransferCall(p.to_owned())
            }
            OperationType::VoiceMail => {
                empty()?;
                RuleAction::VoiceMail
            }
            OperationType::OnAnswerToVm => {
                let after_secs = if p.is_empty() {
                    NO_ANSWER_DEFAULT_SECS
                } else {
                    seconds(p, 1, NO_ANSWER_MAX_SECS).ok_or_else(|| {
                        bad("seconds of ringing before voicemail, 1-600 (empty: 20)")
                    })?
                };
                RuleAction::OnAnswerToVm { after_secs }
            }
            OperationType::OnAnswerTransfer => {
                const WHAT: &str = "`number` or `number,seconds` (1-32 digits; 1-600 seconds of ringing, default 20)";
                let (number, secs) = match p.split_once(',') {
                    Some((n, s)) => (n.trim(), Some(s.trim())),
                    None => (p, None),
                };
                if !validate::is_number(number) {
                    return Err(bad(WHAT));
                }
                let after_secs = match secs {
                    None => NO_ANSWER_DEFAULT_SECS,
                    Some(s) => seconds(s, 1, NO_ANSWER_MAX_SECS).ok_or_else(|| bad(WHAT))?,
                };
                RuleAction::OnAnswerTransfer {
                    number: number.to_owned(),
                    after_secs,
                }
            }
            OperationType::DialHttpDocking => {
                const WHAT: &str = "an http:// or https:// URL";
                if p.is_empty() || validate::url("parameters", p).is_err() {
                    return Err(bad(WHAT));
                }
                RuleAction::DialHttpDocking(p.to_owned())
            }
            OperationType::CallerAreaTransfer => {
                RuleAction::CallerAreaTransfer(AreaRoutes::parse(p).map_err(|m| {
                    if p.is_empty() {
                        bad(AreaRoutes::FORM)
                    } else {
                        Error::invalid("parameters", format!("{m} (with {op})"))
                    }
                })?)
            }
            OperationType::IncomingCallDelay => RuleAction::IncomingCallDelay {
                secs: seconds(p, 1, DELAY_MAX_SECS)
                    .ok_or_else(|| bad("seconds to delay answering, 1-120"))?,
            },
        })
    }

    /// The `operationtype` of this action.
    pub fn operation_type(&self) -> OperationType {
        match self {
            RuleAction::IvrSelect(_) => OperationType::IvrSelect,
            RuleAction::BusyAndReject => OperationType::BusyAndReject,
            RuleAction::PlayAndHangup(_) => OperationType::PlayAndHangup,
            RuleAction::TransferCall(_) => OperationType::TransferCall,
            RuleAction::VoiceMail => OperationType::VoiceMail,
            RuleAction::OnAnswerToVm { .. } => OperationType::OnAnswerToVm,
            RuleAction::OnAnswerTransfer { .. } => OperationType::OnAnswerTransfer,
            RuleAction::DialHttpDocking(_) => OperationType::DialHttpDocking,
            RuleAction::CallerAreaTransfer(_) => OperationType::CallerAreaTransfer,
            RuleAction::IncomingCallDelay { .. } => OperationType::IncomingCallDelay,
        }
    }
}

/// The prompt of `PLAY_AND_HANGUP` (the prompt forms of the IVR definitions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulePrompt {
    /// Voice (tone) file `id`: `tones/<id>.wav` below `storage.dir`.
    Tone(u32),
    /// A WAV file relative to `storage.dir`.
    File(String),
    /// Text for the TTS engine.
    Tts(String),
}

impl RulePrompt {
    const FORMS: &'static str = "`tone:19` (or `19`), `file:prompts/x.wav` or `tts:text`";

    /// `tone:<id>` or `<id>`, `file:<relative .wav path>`, `tts:<text>`.
    pub fn parse(s: &str) -> Result<RulePrompt, String> {
        let s = s.trim();
        if let Some(id) = s
            .strip_prefix("tone:")
            .or(Some(s).filter(|s| digits(s, 1, 10).is_some()))
        {
            return id
                .trim()
                .parse()
                .map(RulePrompt::Tone)
                .map_err(|_| format!("{s:?}: a tone id must be a number"));
        }
        if let Some(path) = s.strip_prefix("file:") {
            let path = path.trim();
            let ok = !path.is_empty()
                && path.len() <= 1024
                && !path.starts_with('/')
                && !path.contains('\\')
                && !path.split('/').any(|c| c == ".." || c.is_empty())
                && path.to_ascii_lowercase().ends_with(".wav");
            return if ok {
                Ok(RulePrompt::File(path.to_owned()))
            } else {
                Err(format!(
                    "{s:?}: a prompt file must be a relative .wav path below storage.dir, without `..`"
                ))
            };
        }
        if let Some(text) = s.strip_prefix("tts:") {
            let text = text.trim();
            if text.is_empty() || text.chars().count() > TTS_MAX {
                return Err(format!("{s:?}: TTS text must be 1-{TTS_MAX} characters"));
            }
            return Ok(RulePrompt::Tts(text.to_owned()));
        }
        Err(format!("{s:?} is not a prompt: expected {}", Self::FORMS))
    }
}

impl fmt::Display for RulePrompt {
    /// The canonical `tone:`/`file:`/`tts:` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RulePrompt::Tone(id) => write!(f, "tone:{id}"),
            RulePrompt::File(p) => write!(f, "file:{p}"),
            RulePrompt::Tts(t) => write!(f, "tts:{t}"),
        }
    }
}

/// `CALLER_AREA_TRANSFER`: where to forward by the caller number's prefix (an area code such
/// as `010`, or a mobile number segment such as `1380013`), e.g. `010:801,021:802,*:803`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaRoutes {
    /// (prefix, number to forward to), as written.
    pub routes: Vec<(String, String)>,
    /// `*:number`: for callers no prefix matches.
    pub default: Option<String>,
}

impl AreaRoutes {
    const FORM: &'static str =
        "`prefix:number` pairs separated by commas, `*:number` for everyone else (e.g. `010:801,021:802,*:803`)";

    /// Parse `prefix:number[,prefix:number…][,*:number]`: prefixes are 1-32 digits (each
    /// at most once), numbers 1-32 digits.
    pub fn parse(s: &str) -> Result<AreaRoutes, String> {
        let mut routes: Vec<(String, String)> = Vec::new();
        let mut default = None;
        for pair in s.split(',') {
            let pair = pair.trim();
            let Some((prefix, number)) = pair.split_once(':') else {
                return Err(format!(
                    "{pair:?} is not `prefix:number`: expected {}",
                    Self::FORM
                ));
            };
            let (prefix, number) = (prefix.trim(), number.trim());
            if !validate::is_number(number) {
                return Err(format!("{pair:?}: {number:?} must be 1-32 digits"));
            }
            if prefix == "*" {
                if default.is_some() {
                    return Err(format!("{pair:?}: `*` is given twice"));
                }
                default = Some(number.to_owned());
            } else if !validate::is_number(prefix) {
                return Err(format!(
                    "{pair:?}: the prefix {prefix:?} must be 1-32 digits or `*`"
                ));
            } else if routes.iter().any(|(p, _)| p == prefix) {
                return Err(format!("{pair:?}: prefix {prefix} is given twice"));
            } else {
                routes.push((prefix.to_owned(), number.to_owned()));
            }
        }
        Ok(AreaRoutes { routes, default })
    }

    /// The number to forward a call from `caller` to: the longest matching prefix, else
    /// the default. `None`: no route (the call is routed as if there were no rule).
    pub fn target_for(&self, caller: &str) -> Option<&str> {
        self.routes
            .iter()
            .filter(|(p, _)| caller.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, n)| n.as_str())
            .or(self.default.as_deref())
    }
}

impl fmt::Display for AreaRoutes {
    /// The canonical `prefix:number,…,*:number` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let default = self.default.iter().map(|n| ("*", n.as_str()));
        for (p, n) in self
            .routes
            .iter()
            .map(|(p, n)| (p.as_str(), n.as_str()))
            .chain(default)
        {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{p}:{n}")?;
        }
        Ok(())
    }
}
