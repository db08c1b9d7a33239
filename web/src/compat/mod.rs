//! The reference manual's HTTP API: `/bridge/callctrl` and `/bridge/jsoncfg`.
//!
//! Both dispatch on `opt`: missing → `400`, unknown → `606` (spec D-2). An `opt` the manual
//! defines but this build does not serve yet answers `501`, so a CRM can tell "not yet"
//! from "wrong". Parameters come from the query string and, for POST, from an
//! `application/x-www-form-urlencoded` body with the same names (D-3); percent-encoding is
//! decoded as UTF-8. Codes are carried as CONTRACT.md says: the body is the code as plain
//! text, and the status line carries it when it is a final HTTP status (200–599).

mod extension_settings;
mod lists;
mod playback;
mod queues;

use actix_web::http::header::{ContentType, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/bridge/callctrl")
            .route(web::get().to(callctrl))
            .route(web::post().to(callctrl)),
    )
    .service(
        web::resource("/bridge/jsoncfg")
            .route(web::get().to(jsoncfg))
            .route(web::post().to(jsoncfg)),
    );
}

/// The request's parameters, query string first, then the form body.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn from_request(req: &HttpRequest, body: &[u8]) -> Params {
        let mut pairs: Vec<(String, String)> =
            form_urlencoded::parse(req.query_string().as_bytes())
                .into_owned()
                .collect();
        let is_form = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        if is_form && !body.is_empty() {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        Params(pairs)
    }

    /// The first value of `name` (names are case-sensitive, as the manual spells them).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A value that must be present and not blank, trimmed (callers answer 400 on `None`).
    pub fn required(&self, name: &str) -> Option<&str> {
        self.optional(name)
    }

    /// An optional value, trimmed; blank counts as absent.
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }
}

/// A manual response code: the body is the code; the status is the code when it is a final
/// HTTP status, else 200.
pub fn code(code: u16) -> HttpResponse {
    let status = match code {
        200..=599 => StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        _ => StatusCode::OK,
    };
    HttpResponse::build(status)
        .insert_header(ContentType(mime_text_utf8()))
        .body(code.to_string())
}

fn mime_text_utf8() -> actix_web::mime::Mime {
    "text/plain; charset=utf-8"
        .parse()
        .unwrap_or(actix_web::mime::TEXT_PLAIN_UTF_8)
}

/// Maps a repository error to the manual's codes: bad input 400, unknown target 404,
/// anything else 500 (logged, never shown).
pub fn repo_error(op: &str, e: entities::Error) -> HttpResponse {
    match e {
        entities::Error::Invalid { .. } | entities::Error::Conflict { .. } => code(400),
        entities::Error::NotFound => code(404),
        other => {
            tracing::error!(opt = op, "database error: {other}");
            code(500)
        }
    }
}

/// `opt` values of `/bridge/callctrl` that the manual defines and later work will serve.
const CALLCTRL_NOT_YET: &[&str] = &[
    "CLICK_TO_DIAL",
    "CLICK_TO_IP_DIAL",
    "CLICK_TO_HUNGUP",
    "CLICK_OUT_OUT",
    "CLICK_TO_IP_CAPTCHA",
    "CLICK_TO_FIXEDLINE_CAPTCHA",
    "GET_CAPTCHA_RESULT",
    "CLICK_TO_TRANSFER",
    "TALKING_CALLER_TO_IVR",
    "CONFERENCE_CREATE",
    "CONFERENCE_JOIN",
    "CALL_THIRD",
    "CALL_THIRD_RESUME",
    "CALL_THIRD_GET_THIRD_STATE",
    "CALL_THIRD_CONFERENCE",
    "KICK_OUT_OF_CONFERENCE",
    "CALL_THIRD_TRANSFER",
    "INVITE_TO_JUDGE",
    "CALL_MONITOR",
    "FORCE_PICKUP",
    "FORCE_HUNGUP",
    "IVR_TTS_CALL",
    "IVR_TTS_CALL_RESULT",
    "IVR_TTS_CALL_MONITOR",
    "CALL_LOG_QUERY",
    "CALL_LOG_COUNT",
    "CALL_LOG_GET_WITH_CALLID",
    "SEND_SMS",
    "PLAY_VOICE_IN_CALL",
    "STOP_VOICE_IN_CALL",
    "PLAY_VOICE",
    "START_VOICE_INPUT",
    "STOP_VOICE_INPUT",
    "STT_ON_TALKING_START",
    "STT_ON_TALKING_STOP",
];

/// `opt` values of `/bridge/jsoncfg` that the manual defines and later work will serve.
const JSONCFG_NOT_YET: &[&str] = &[
    "CALL_NOTE_ADD",
    "CALL_NOTE_GET",
    "EXTNUM_MONITOR",
    "BatchCallMonitor_GET_ALL_RUN_TASK_INFO",
    "BatchCallClear",
    "BatchCallStart",
    "BatchCallStop",
    "BatchCallMonitorInfo_GET",
    "Taskphone_GET_COUNT",
    "Taskphone_GET_CONDITION",
];

async fn callctrl(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let params = Params::from_request(&req, &body);
    let Some(opt) = params.get("opt").map(str::trim) else {
        return code(400);
    };
    match opt {
        "SET_WORKER_ID" => extension_settings::set_worker_id(&state, &params).await,
        "SET_EXT_OUT_CALL_DSPLAY" => {
            extension_settings::set_out_call_display(&state, &params).await
        }
        "SET_EXT_DIRECT_CALL_BACK" => {
            extension_settings::set_direct_callback(&state, &params).await
        }
        "SET_CALLS_POP_UP_URL" => extension_settings::set_pop_up_url(&state, &params).await,
        "PLAY_CALL_LOG_RECORD" => playback::play_call_log_record(&state, &params).await,
        // The manual's table misprints the name (D-14): both spellings work.
        "SET_EXT_PRESENCE_STATE" | "ET_EXT_PRESENCE_STATE" => {
            queues::set_presence(&state, &params).await
        }
        "QUEUE_INFO" => queues::queue_info(&state).await,
        "" => code(400),
        other if CALLCTRL_NOT_YET.contains(&other) => code(501),
        _ => code(606),
    }
}

async fn jsoncfg(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let params = Params::from_request(&req, &body);
    let Some(opt) = params.get("opt").map(str::trim) else {
        return code(400);
    };
    match opt {
        "BLACK_LIST_ADD" => lists::black_list_add(&state, &params).await,
        "BLACK_LIST_RMV" => lists::black_list_rmv(&state, &params).await,
        "BLACK_LIST_QUERY" => lists::black_list_query(&state, &params).await,
        "VIP_LIST_ADD" => lists::vip_list_add(&state, &params).await,
        "VIP_LIST_RMV" => lists::vip_list_rmv(&state, &params).await,
        "VIP_LIST_QUERY" => lists::vip_list_query(&state, &params).await,
        "" => code(400),
        other if JSONCFG_NOT_YET.contains(&other) => code(501),
        _ => code(606),
    }
}
