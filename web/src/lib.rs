//! The HTTP face of ctiswitch (actix-web).
//!
//! # Layout
//! - `state.rs`   — [`AppState`], what every handler may reach.
//! - `health.rs`  — `GET /health` (readiness).
//! - `compat/`    — the reference manual's API: `/bridge/callctrl` and `/bridge/jsoncfg`
//!   dispatch by `opt` (`mod.rs`: parameters, codes, dispatch table), one file per group of
//!   operations.
//! - `admin.rs`   — the admin REST API under `/api/v1/` (JSON CRUD).
//! - `conferences.rs` — live meet-me rooms: members, their modes, kicks.
//! - `recordings.rs` — interface 33, recording download (`/Oms/FileDownServlet`).
//! - `soap/`      — the manual's SOAP web services under `/bridge/services/` (`mod.rs`: SOAP
//!   1.1 envelope reading/writing and faults; `routing.rs`: interface 61).
//! - `openapi.rs` — the OpenAPI document of the admin API, `/api/v1/openapi.json`.
//!
//! Handlers never build queries: they call `entities::repo`.

pub mod admin;
pub mod compat;
pub mod conferences;
pub mod health;
pub mod openapi;
pub mod recordings;
pub mod soap;
mod state;

pub use state::AppState;

/// Registers every route on an actix `App`.
pub fn configure(state: AppState) -> impl FnOnce(&mut actix_web::web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(actix_web::web::Data::new(state))
            .app_data(admin::json_config())
            .configure(health::routes)
            .configure(compat::routes)
            .configure(soap::routes)
            .configure(admin::routes)
            .configure(conferences::routes)
            .configure(recordings::routes)
            .configure(openapi::routes);
    }
}
