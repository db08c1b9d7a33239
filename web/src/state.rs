use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sea_orm::DatabaseConnection;

/// Shared by every handler (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    ready: Arc<AtomicBool>,
    pub sip_addr: SocketAddr,
    pub started: Instant,
}

impl AppState {
    pub fn new(db: DatabaseConnection, ready: Arc<AtomicBool>, sip_addr: SocketAddr) -> Self {
        Self {
            db,
            ready,
            sip_addr,
            started: Instant::now(),
        }
    }

    /// True once the database is migrated and every listener is bound.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}
