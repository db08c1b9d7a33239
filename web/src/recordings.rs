//! Interface 33: recording download, `GET /Oms/FileDownServlet`, by one of
//! `base64file` (Base64 of a call log's `recordVoice`), `logId` (call-log id), `callid`
//! (the call's id) or `allcallid` (every recording of the call; with `backpath=true` the
//! server path instead of the file, as `{"msg": path, "success": true}`).
//!
//! Only files below the switch's recordings folder are served, whatever path a
//! `base64file` names: `..`, symlinks out of it and other files are 404, like a missing
//! recording. Files are streamed with ranges (`Range:` requests work, for audio players).
//! Errors (the manual leaves them open, D-34): 400 with a message when no parameter is
//! usable, 404 when there is no such recording.

use std::path::{Path, PathBuf};

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use entities::repo;
use serde_json::json;

use crate::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/Oms/FileDownServlet").route(web::get().to(download)));
}

fn text(status: u16, body: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(body.to_string())
}

/// The recording at `path` if it lies inside `root` (both resolved on disk).
pub fn confined(root: &Path, path: &Path) -> Option<PathBuf> {
    let root = root.canonicalize().ok()?;
    let file = path.canonicalize().ok()?;
    (file.starts_with(&root) && file.is_file()).then_some(file)
}

async fn download(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let query: Vec<(String, String)> = form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if param("type").is_some() {
        return text(404, "no video is recorded by this switch");
    }
    let stored = if let Some(b64) = param("base64file") {
        // Base64 in a query string often arrives with '+' decoded to ' '.
        let b64 = b64.replace(' ', "+");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(b64.as_bytes()));
        match decoded.ok().and_then(|b| String::from_utf8(b).ok()) {
            Some(path) => Some(path),
            None => return text(400, "base64file is not Base64 of a path"),
        }
    } else if let Some(id) = param("logId") {
        let Ok(id) = id.parse::<i64>() else {
            return text(400, "logId must be a number");
        };
        match repo::calllog::get(&state.db, id).await {
            Ok(row) => row.map(|r| r.record_voice),
            Err(e) => {
                tracing::error!("call log lookup failed: {e}");
                return text(500, "database error");
            }
        }
    } else if let Some(callid) = param("callid").or_else(|| param("allcallid")) {
        match repo::calllog::by_callid(&state.db, &callid).await {
            Ok(row) => row.map(|r| r.record_voice),
            Err(e) => {
                tracing::error!("call log lookup failed: {e}");
                return text(500, "database error");
            }
        }
    } else {
        return text(
            400,
            "one of base64file, logId, callid, allcallid is required",
        );
    };
    let Some(root) = state.records_dir.as_deref() else {
        return text(404, "no recording");
    };
    let Some(file) = stored
        .filter(|p| !p.is_empty())
        .and_then(|p| confined(root, Path::new(&p)))
    else {
        return text(404, "no recording");
    };
    if param("allcallid").is_some() && param("backpath").as_deref() == Some("true") {
        return HttpResponse::Ok()
            .json(json!({"msg": file.display().to_string(), "success": true}));
    }
    match actix_files::NamedFile::open_async(&file).await {
        // The type comes from the extension: audio/wav.
        Ok(named) => named.into_response(&req),
        Err(_) => text(404, "no recording"),
    }
}
