//! `GET /health`: 200 with a small JSON body once ready, 503 before (and while stopping).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health));
}

async fn health(state: web::Data<AppState>) -> HttpResponse {
    let backend = format!("{:?}", state.db.get_database_backend()).to_lowercase();
    if !state.is_ready() {
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "starting",
            "version": env!("CARGO_PKG_VERSION"),
        }));
    }
    // What the switching core holds (calls, transactions, media ports): leaks show here.
    let core = match &state.router {
        Some(router) => router
            .send(actors::router::GetRouterStats)
            // Readiness must answer even when the router is busy: the counters are extra.
            .timeout(std::time::Duration::from_secs(1))
            .await
            .ok()
            .map(|stats| json!(stats)),
        None => None,
    };
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "database": backend,
        "sip": state.sip_addr.to_string(),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "core": core,
    }))
}
