//! Live meet-me rooms under `/api/v1/conferences`: who is in each room, and per member
//! the mode (talk, listen-only, whisper to one member, muted) or a kick. Rooms themselves
//! are configured through `[[conferences]]` / the database; this is their running state.
//!
//! - `GET /api/v1/conferences` → `[{"number":"9000","members":[…]}]`
//! - `GET /api/v1/conferences/{number}/members` → `[{"number","call_id","mode","state","joined_at"}]`
//! - `PUT /api/v1/conferences/{number}/members/{member}` with `{"mode":"listen"}`,
//!   `{"mode":"whisper","to":"801"}`, `{"mode":"talk"}` or `{"mode":"muted"}` → the member
//! - `DELETE /api/v1/conferences/{number}/members/{member}` → 204, the member's call ends
//!
//! `{member}` is the member's number or its call id. Unknown room or member: 404;
//! a bad body: 400; no switching core: 503.

use actix::Addr;
use actix_web::{web, HttpResponse};
use actors::conference::{
    Conference, ConferenceError, Kick, ListMembers, MemberMode, SetMemberMode,
};
use actors::router::ListConferences;
use serde_json::json;

use crate::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/conferences").route(web::get().to(list)))
        .service(
            web::resource("/api/v1/conferences/{number}/members").route(web::get().to(members)),
        )
        .service(
            web::resource("/api/v1/conferences/{number}/members/{member}")
                .route(web::put().to(set_mode))
                .route(web::delete().to(kick)),
        );
}

fn error(status: u16, kind: &str, message: impl std::fmt::Display) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(json!({"error": kind, "message": message.to_string()}))
}

fn unavailable() -> HttpResponse {
    error(503, "unavailable", "the switching core is not running")
}

async fn rooms(state: &AppState) -> Option<Vec<(String, Addr<Conference>)>> {
    state.router.as_ref()?.send(ListConferences).await.ok()
}

async fn room(state: &AppState, number: &str) -> Result<Addr<Conference>, HttpResponse> {
    let rooms = rooms(state).await.ok_or_else(unavailable)?;
    rooms
        .into_iter()
        .find(|(n, _)| n == number)
        .map(|(_, addr)| addr)
        .ok_or_else(|| error(404, "not_found", format!("no conference room {number}")))
}

async fn list(state: web::Data<AppState>) -> HttpResponse {
    let Some(rooms) = rooms(&state).await else {
        return unavailable();
    };
    let mut out = Vec::with_capacity(rooms.len());
    for (number, addr) in rooms {
        let members = addr.send(ListMembers).await.unwrap_or_default();
        out.push(json!({"number": number, "members": members}));
    }
    HttpResponse::Ok().json(out)
}

async fn members(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let room = match room(&state, &path).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match room.send(ListMembers).await {
        Ok(members) => HttpResponse::Ok().json(members),
        Err(_) => unavailable(),
    }
}

fn conference_error(e: ConferenceError) -> HttpResponse {
    match e {
        ConferenceError::NoSuchMember(_) => error(404, "not_found", e),
        ConferenceError::WhisperToSelf => error(400, "invalid", e),
        ConferenceError::NoMedia => error(503, "unavailable", e),
    }
}

async fn set_mode(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (number, member) = path.into_inner();
    let mode: MemberMode = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return error(
                400,
                "invalid",
                format!("body must be {{\"mode\": \"talk|listen|muted|whisper\", \"to\": …}}: {e}"),
            )
        }
    };
    let room = match room(&state, &number).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match room.send(SetMemberMode { member, mode }).await {
        Ok(Ok(info)) => HttpResponse::Ok().json(info),
        Ok(Err(e)) => conference_error(e),
        Err(_) => unavailable(),
    }
}

async fn kick(state: web::Data<AppState>, path: web::Path<(String, String)>) -> HttpResponse {
    let (number, member) = path.into_inner();
    let room = match room(&state, &number).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match room.send(Kick { member }).await {
        Ok(Ok(())) => HttpResponse::NoContent().finish(),
        Ok(Err(e)) => conference_error(e),
        Err(_) => unavailable(),
    }
}
