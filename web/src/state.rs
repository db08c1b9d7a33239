use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use actors::router::{ApplyListChange, ReloadDirectory, SipRouter};
use actors::routing_lists::ListChange;
use sea_orm::DatabaseConnection;

/// Shared by every handler (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    ready: Arc<AtomicBool>,
    pub sip_addr: SocketAddr,
    pub started: Instant,
    /// The switching core's router: told when configuration changes.
    pub router: Option<Addr<SipRouter>>,
    /// Where recordings are (served by interface 33 only from below it).
    pub records_dir: Option<std::path::PathBuf>,
}

impl AppState {
    pub fn new(
        db: DatabaseConnection,
        ready: Arc<AtomicBool>,
        sip_addr: SocketAddr,
        router: Option<Addr<SipRouter>>,
    ) -> Self {
        Self {
            db,
            ready,
            sip_addr,
            started: Instant::now(),
            router,
            records_dir: None,
        }
    }

    pub fn with_records_dir(mut self, dir: std::path::PathBuf) -> Self {
        self.records_dir = Some(dir);
        self
    }

    /// Tells the switching core that extensions, groups, trunks or access numbers changed,
    /// and waits until it has reloaded them (so the next call sees the change).
    pub async fn configuration_changed(&self) {
        if let Some(router) = &self.router {
            match router.send(ReloadDirectory).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!("switch did not reload its configuration: {e}"),
                Err(e) => tracing::error!("switch router unreachable: {e}"),
            }
        }
    }

    /// Tells the switching core that one blacklist or VIP entry changed (written to the
    /// database already), and waits until the calls see the change.
    pub async fn list_changed(&self, change: ListChange) {
        if let Some(router) = &self.router {
            if let Err(e) = router.send(ApplyListChange(change)).await {
                tracing::error!("switch router unreachable: {e}");
            }
        }
    }

    /// True once the database is migrated and every listener is bound.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}
