//! Per-extension settings of the manual: work number and office hours (35), outbound
//! display number (36), direct callback (37), screen-pop URL (9).

use actix_web::HttpResponse;
use entities::repo::extensions;

use super::{code, repo_error, Params};
use crate::AppState;

/// Interface 35, `SET_WORKER_ID`: `extnum`, `workerid` required; `department` (the employee
/// name, so named for historical reasons), `uname`, `officehours` optional.
pub async fn set_worker_id(state: &AppState, params: &Params) -> HttpResponse {
    let (extnum, workerid) = match (params.required("extnum"), params.required("workerid")) {
        (Some(e), Some(w)) => (e, w),
        _ => return code(400),
    };
    let office_hours = params.optional("officehours");
    if let Some(hours) = office_hours {
        if parse_office_hours(hours).is_none() {
            return code(400);
        }
    }
    let info = extensions::WorkerInfo {
        worker_id: workerid.to_string(),
        department: params.optional("department").map(str::to_string),
        uname: params.optional("uname").map(str::to_string),
        office_hours: office_hours.map(str::to_string),
    };
    match extensions::set_worker_info(&state.db, extnum, info).await {
        Ok(()) => code(200),
        Err(e) => repo_error("SET_WORKER_ID", e),
    }
}

/// Interface 36, `SET_EXT_OUT_CALL_DSPLAY`: `extnum`, `channel`, `dspnum`, all required.
pub async fn set_out_call_display(state: &AppState, params: &Params) -> HttpResponse {
    let (extnum, channel, dspnum) = match (
        params.required("extnum"),
        params.required("channel"),
        params.required("dspnum"),
    ) {
        (Some(e), Some(c), Some(d)) => (e, c, d),
        _ => return code(400),
    };
    if !is_phone_number(dspnum) {
        return code(400);
    }
    match extensions::set_out_call_display(&state.db, extnum, channel, dspnum).await {
        Ok(()) => code(200),
        Err(e) => repo_error("SET_EXT_OUT_CALL_DSPLAY", e),
    }
}

/// Interface 37, `SET_EXT_DIRECT_CALL_BACK`: `extnum`, `offon` = `true` | `false`.
pub async fn set_direct_callback(state: &AppState, params: &Params) -> HttpResponse {
    let Some(extnum) = params.required("extnum") else {
        return code(400);
    };
    let on = match params
        .required("offon")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("true") => true,
        Some("false") => false,
        _ => return code(400),
    };
    match extensions::set_direct_callback(&state.db, extnum, on).await {
        Ok(()) => code(200),
        Err(e) => repo_error("SET_EXT_DIRECT_CALL_BACK", e),
    }
}

/// Interface 9, `SET_CALLS_POP_UP_URL`: with `urltype`, `domain`, `path` (and optional `port`,
/// `extend`) sets the URL of an extension or group; with `extnum` alone deletes it (D-19).
pub async fn set_pop_up_url(state: &AppState, params: &Params) -> HttpResponse {
    let Some(extnum) = params.required("extnum") else {
        return code(400);
    };
    let setting = ["urltype", "domain", "path", "port", "extend"]
        .iter()
        .any(|name| params.optional(name).is_some());
    let url = if setting {
        match pop_up_url(params) {
            Some(url) => Some(url),
            None => return code(400),
        }
    } else {
        None
    };
    match extensions::set_screen_pop_url(&state.db, extnum, url.as_deref()).await {
        Ok(()) => code(200),
        Err(e) => repo_error("SET_CALLS_POP_UP_URL", e),
    }
}

/// `{urltype}://{domain}:{port}/{path}` with `extend=<value>` kept as a query parameter.
fn pop_up_url(params: &Params) -> Option<String> {
    let scheme = params.required("urltype")?.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let domain = params.required("domain")?;
    if domain.contains(['/', ' ', '?', '#', '@']) {
        return None;
    }
    let port: u16 = match params.optional("port") {
        Some(p) => p.parse().ok().filter(|p| *p != 0)?,
        None => 80,
    };
    let path = params.required("path")?.trim_start_matches('/');
    let mut url = format!("{scheme}://{domain}:{port}/{path}");
    if let Some(extend) = params.optional("extend") {
        let sep = if url.contains('?') { '&' } else { '?' };
        let encoded: String = form_urlencoded::byte_serialize(extend.as_bytes()).collect();
        url.push(sep);
        url.push_str("extend=");
        url.push_str(&encoded);
    }
    Some(url)
}

/// `H:mm-H:mm[,H:mm-H:mm…]` as minutes since midnight.
fn parse_office_hours(text: &str) -> Option<Vec<(u16, u16)>> {
    fn minutes(t: &str) -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
    }
    text.split(',')
        .map(|range| {
            let (from, to) = range.split_once('-')?;
            let (from, to) = (minutes(from)?, minutes(to)?);
            (from < to).then_some((from, to))
        })
        .collect()
}

fn is_phone_number(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    !digits.is_empty() && digits.len() <= 32 && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn office_hours() {
        assert_eq!(
            parse_office_hours("9:00-12:30,14:00-18:30"),
            Some(vec![(540, 750), (840, 1110)])
        );
        assert!(parse_office_hours("9:00").is_none());
        assert!(parse_office_hours("18:00-9:00").is_none());
        assert!(parse_office_hours("25:00-26:00").is_none());
        assert!(parse_office_hours("9:60-10:00").is_none());
    }

    #[test]
    fn phone_numbers() {
        assert!(is_phone_number("02887654321"));
        assert!(is_phone_number("+8613800000000"));
        assert!(!is_phone_number("12a"));
        assert!(!is_phone_number(""));
    }
}
