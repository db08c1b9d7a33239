//! Field validators shared by the input structs. Each returns [`Error::Invalid`] naming
//! the field.

use std::net::{IpAddr, SocketAddr};

use crate::Error;

/// Longest number (extension, group, access number, conference): 32 digits.
pub const NUMBER_MAX: usize = 32;

/// 1-32 ASCII digits.
pub fn is_number(s: &str) -> bool {
    !s.is_empty() && s.len() <= NUMBER_MAX && s.bytes().all(|b| b.is_ascii_digit())
}

/// `value` must be 1-32 digits.
pub fn number(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "is required (1-32 digits)"));
    }
    if !is_number(value) {
        return Err(Error::invalid(
            field,
            format!("{value:?} must be 1-32 digits"),
        ));
    }
    Ok(())
}

/// At most `max` characters and no control characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<(), Error> {
    if value.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "contains control characters"));
    }
    Ok(())
}

/// Like [`text`], and not empty.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<(), Error> {
    if value.trim().is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    text(field, value, max)
}

/// A secret: 1..=max printable characters without spaces.
pub fn password(field: &str, value: &str, max: usize) -> Result<(), Error> {
    if value.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::invalid(
            field,
            "must not contain spaces or control characters",
        ));
    }
    Ok(())
}

/// Empty, or an `http://` / `https://` URL of at most 1024 characters.
pub fn url(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Ok(());
    }
    text(field, value, 1024)?;
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !value.contains(' ') => Ok(()),
        _ => Err(Error::invalid(
            field,
            format!("{value:?} is not an http:// or https:// URL"),
        )),
    }
}

/// `ip:port`, `[ipv6]:port` or `host:port` with a port in 1..=65535.
pub fn host_port(field: &str, value: &str) -> Result<(), Error> {
    let bad = || Error::invalid(field, format!("{value:?} is not ip:port or host:port"));
    if value.parse::<SocketAddr>().is_ok() {
        return if value.ends_with(":0") {
            Err(bad())
        } else {
            Ok(())
        };
    }
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => {}
        _ => return Err(bad()),
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let hostname_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if hostname_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Empty, or `H:mm-H:mm` ranges separated by commas (interface 35), e.g.
/// `9:00-12:30,14:00-18:30`. Hours 0-24 (24 only as `24:00`), minutes 00-59.
pub fn office_hours(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Ok(());
    }
    fn minutes(t: &str) -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return None;
        }
        if !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
        if m > 59 || h > 24 || (h == 24 && m != 0) {
            return None;
        }
        Some(h * 60 + m)
    }
    for range in value.split(',') {
        let ok = range
            .split_once('-')
            .and_then(|(a, b)| Some((minutes(a)?, minutes(b)?)))
            .is_some_and(|(a, b)| a < b);
        if !ok {
            return Err(Error::invalid(
                field,
                format!("{range:?} is not a H:mm-H:mm range (e.g. 9:00-12:30,14:00-18:30)"),
            ));
        }
    }
    Ok(())
}

/// An integer within `min..=max`.
pub fn range(field: &str, value: i32, min: i32, max: i32) -> Result<(), Error> {
    if value < min || value > max {
        return Err(Error::invalid(
            field,
            format!("{value} is outside {min}..={max}"),
        ));
    }
    Ok(())
}

/// A routing target (`ivr:<id>` | `group:<n>` | `ext:<n>` | `conference:<n>`).
pub fn target(field: &str, value: &str) -> Result<(), Error> {
    value
        .parse::<crate::Target>()
        .map(|_| ())
        .map_err(|m| Error::invalid(field, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        for ok in [
            "127.0.0.1:5080",
            "[::1]:5060",
            "gw.example.com:5060",
            "gateway:5060",
        ] {
            assert!(host_port("host", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "127.0.0.1",
            "127.0.0.1:0",
            "127.0.0.1:70000",
            ":5060",
            "a b:5060",
            "host:",
            "-bad-.com:5060",
            "::1:5060x",
        ] {
            assert!(host_port("host", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn office_hours_forms() {
        for ok in [
            "",
            "09:00-18:00",
            "9:00-12:30,14:00-18:30,19:00-20:30",
            "0:00-24:00",
        ] {
            assert!(office_hours("office_hours", ok).is_ok(), "{ok}");
        }
        for bad in [
            "9-18",
            "18:00-09:00",
            "9:00-12:60",
            "25:00-26:00",
            "9:00-12:30,",
            "x",
        ] {
            assert!(office_hours("office_hours", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_and_targets() {
        assert!(is_number("801"));
        assert!(!is_number(""));
        assert!(!is_number("80a"));
        assert!(!is_number(&"1".repeat(33)));
        for ok in ["ivr:1", "group:3003", "ext:801", "conference:9000"] {
            assert!(target("target", ok).is_ok(), "{ok}");
        }
        for bad in [
            "ivr:", "ivr:x", "queue:1", "group:", "ext:80a", "3003", "ivr:-1",
        ] {
            assert!(target("target", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        assert!(url("u", "").is_ok());
        assert!(url("u", "http://crm.local/pop?x=1").is_ok());
        assert!(url("u", "https://crm").is_ok());
        assert!(url("u", "ftp://crm").is_err());
        assert!(url("u", "http://").is_err());
    }
}
