//! ctiswitch: configuration loading and the wiring that starts a whole switch.
//!
//! # Layout
//! - `config.rs` — the TOML configuration, its defaults and `CTISWITCH_*` overrides.
//! - `lib.rs` — [`start`] / [`run`]: database → migrations → provisioning → actors → SIP →
//!   HTTP, and the orderly stop in reverse. Tests call [`start`] with port-0 addresses to
//!   run several switches side by side.
//! - `main.rs` — the command line, thin.

pub mod config;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use migration::MigratorTrait;
use sea_orm::DatabaseConnection;

pub use config::Config;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(#[from] entities::Error),
    #[error("migrations: {0}")]
    Migration(sea_orm::DbErr),
    #[error("provisioning: {0}")]
    Provision(entities::Error),
    #[error("switching core: {0}")]
    Core(actors::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Installs the global `tracing` subscriber with the configured filter.
pub fn init_tracing(level: &str) -> Result<(), Error> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| Error::Config(format!("key `log.level`: {e}")))?;
    // A second call (tests) keeps the first subscriber.
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    Ok(())
}

/// The actix system the switch runs in. `CTISWITCH_THREADS` (default 1) sets the tokio
/// worker threads under it: with 1, SIP, actors and media share one thread and no message
/// crosses threads (the cheapest per call); more spreads media and SIP I/O over cores.
pub fn build_system() -> actix_rt::SystemRunner {
    let threads: usize = std::env::var("CTISWITCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    if threads <= 1 {
        return actix_rt::System::new();
    }
    actix_rt::System::with_tokio_rt(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .thread_name("ctiswitch-worker")
            .build()
            .unwrap_or_else(|e| panic!("cannot build the tokio runtime: {e}"))
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        _ = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Loads `[media] music_on_hold` now, so a bad file stops the start with its name rather
/// than leaving a held caller in silence.
fn load_music_on_hold(config: &Config) -> Result<Option<Arc<[i16]>>, Error> {
    let setting = config.media.music_on_hold.trim();
    match setting {
        config::MUSIC_ON_HOLD_OFF => Ok(None),
        config::MUSIC_ON_HOLD_BUILTIN | "" => Ok(Some(actors::media::moh::builtin().into())),
        file => {
            let path = std::path::Path::new(&config.storage.dir).join(file);
            actors::media::wav::load_prompt_shared(&path)
                .map(Some)
                .map_err(|e| Error::Config(format!("key `media.music_on_hold`: {e}")))
        }
    }
}

/// The `[tts]` engine behind a cache, or `None` when it is off.
fn tts_engine(config: &Config) -> Result<Option<Arc<actors::media::tts::TtsCache>>, Error> {
    use actors::media::tts::{EspeakEngine, HttpEngine, TtsCache, TtsEngine};
    let timeout = std::time::Duration::from_secs(config.tts.timeout);
    let engine: Arc<dyn TtsEngine> = match config.tts.engine.trim() {
        "off" => return Ok(None),
        "http" => Arc::new(
            HttpEngine::new(config.tts.url.clone())
                .map_err(|e| Error::Config(format!("key `tts.url`: {e}")))?
                .with_timeout(timeout),
        ),
        _ => Arc::new(EspeakEngine {
            voice: Some(config.tts.voice.trim().to_string()).filter(|v| !v.is_empty()),
            timeout,
            ..EspeakEngine::default()
        }),
    };
    Ok(Some(Arc::new(TtsCache::new(engine))))
}

/// Connects to the configured database and applies pending migrations.
pub async fn open_database(config: &Config) -> Result<DatabaseConnection, Error> {
    let db = entities::db::connect(&config.database.url).await?;
    migration::Migrator::up(&db, None)
        .await
        .map_err(Error::Migration)?;
    Ok(db)
}

/// `ctiswitch migrate`: apply migrations and exit.
pub async fn migrate(config: &Config) -> Result<(), Error> {
    let db = open_database(config).await?;
    tracing::info!("migrations applied");
    db.close().await.map_err(|e| Error::Database(e.into()))?;
    Ok(())
}

/// A running switch. Dropping it without [`Switch::stop`] leaves its tasks running until
/// the actix system ends.
pub struct Switch {
    pub http_addr: SocketAddr,
    pub sip_addr: SocketAddr,
    pub db: DatabaseConnection,
    http: actix_web::dev::ServerHandle,
    http_task: tokio::task::JoinHandle<std::io::Result<()>>,
    ready: Arc<AtomicBool>,
    /// The switching core (SIP, calls, media).
    pub core: actors::Switchboard,
}

impl Switch {
    /// Stops in reverse order of start: no new HTTP requests (in-flight ones, and the
    /// database writes they make, finish); every call is hung up (BYE) and its call-log row
    /// written; the SIP sockets close; then the database pool is closed.
    pub async fn stop(self) -> Result<(), Error> {
        self.ready.store(false, Ordering::SeqCst);
        self.http.stop(true).await;
        match self.http_task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("HTTP server ended with an error: {e}"),
            Err(e) => tracing::warn!("HTTP server task failed: {e}"),
        }
        self.core.stop().await;
        self.db
            .close()
            .await
            .map_err(|e| Error::Database(e.into()))?;
        tracing::info!("switch stopped");
        Ok(())
    }
}

/// Starts a switch: database, migrations, provisioning, SIP listeners, then HTTP. Returns
/// once everything is bound and `/health` answers 200.
pub async fn start(config: Config) -> Result<Switch, Error> {
    let storage = std::path::Path::new(&config.storage.dir);
    std::fs::create_dir_all(storage).map_err(io_error(format!(
        "cannot create storage.dir {}",
        storage.display()
    )))?;
    let records_dir = std::path::absolute(storage.join("records"))
        .map_err(io_error("cannot resolve storage.dir"))?;
    let music_on_hold = load_music_on_hold(&config)?;
    let provisioning = config.provisioning()?;
    let db = open_database(&config).await?;
    let report = entities::provision::apply(&db, &provisioning)
        .await
        .map_err(Error::Provision)?;
    tracing::info!(?report, "provisioning applied");

    let sip_listen = config.sip_listen();
    let (udp, tcp, sip_addr) = bind_sip(sip_listen).await?;
    tracing::info!(%sip_addr, "SIP listening on UDP and TCP");
    let rtp = config.rtp_port_range()?;
    match actors::media::ports::raise_open_file_limit() {
        Ok(limit) => {
            tracing::info!(
                before = limit.before,
                after = limit.after,
                "open-file limit (four media sockets per relayed call)"
            );
            // One socket per port of the range, plus signalling, database, HTTP and files.
            let wanted = u64::from(rtp.high - rtp.low) + 1 + actors::media::ports::RESERVED_FDS;
            if limit.after < wanted {
                tracing::warn!(
                    limit = limit.after,
                    wanted,
                    "open-file limit below the media port range: calls will fail with EMFILE before the ports run out"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let media_ip = config
        .sip
        .advertise
        .trim()
        .parse()
        .map_err(|_| Error::Config("key `sip.advertise`: not an IP address".into()))?;
    let core = actors::Switchboard::start(
        &db,
        actors::SwitchboardConfig {
            realm: config.sip.realm.clone(),
            advertise: config.sip.advertise.trim().to_string(),
            media_ip,
            media_bind: sip_listen.ip(),
            rtp_ports: rtp.low..=rtp.high,
            rtp_timeout: std::time::Duration::from_secs(config.media.rtp_timeout),
            ring_timeout: std::time::Duration::from_secs(config.sip.ring_timeout),
            max_calls_per_second: config.sip.max_calls_per_second,
            keepalive_interval: std::time::Duration::from_secs(config.sip.keepalive),
            recording: config.recording.enabled,
            records_dir: records_dir.clone(),
            storage_dir: std::path::absolute(storage)
                .map_err(io_error("cannot resolve storage.dir"))?,
            music_on_hold,
            tts: tts_engine(&config)?,
            routing_url: Some(config.callbacks.routing.trim().to_string())
                .filter(|u| !u.is_empty()),
        },
        udp,
        tcp,
    )
    .await
    .map_err(Error::Core)?;

    let records_dir_for_http = records_dir;
    let ready = Arc::new(AtomicBool::new(false));
    let state = web::AppState::new(
        db.clone(),
        ready.clone(),
        sip_addr,
        Some(core.router.clone()),
    )
    .with_records_dir(records_dir_for_http);
    let http_listen = config.http_listen();
    let listener = std::net::TcpListener::bind(http_listen)
        .map_err(io_error(format!("cannot bind HTTP on {http_listen}")))?;
    let http_addr = listener.local_addr().map_err(io_error("HTTP address"))?;
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new().configure(web::configure(state.clone()))
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(10)
    .listen(listener)
    .map_err(io_error(format!("cannot listen for HTTP on {http_addr}")))?
    .run();
    let http = server.handle();
    let http_task = tokio::spawn(server);
    ready.store(true, Ordering::SeqCst);
    tracing::info!(%http_addr, "HTTP listening; ready");
    Ok(Switch {
        http_addr,
        sip_addr,
        db,
        http,
        http_task,
        ready,
        core,
    })
}

/// Tries for a port-0 configuration before giving up: the port the kernel picks for UDP
/// may already be taken for TCP.
const SIP_BIND_ATTEMPTS: usize = 20;

/// Binds SIP on UDP and TCP at one address. With port 0, UDP picks the port and TCP takes
/// the same one; if TCP finds it taken, both are tried again on a new port.
async fn bind_sip(
    listen: SocketAddr,
) -> Result<(tokio::net::UdpSocket, tokio::net::TcpListener, SocketAddr), Error> {
    let attempts = if listen.port() == 0 {
        SIP_BIND_ATTEMPTS
    } else {
        1
    };
    let mut last = None;
    for _ in 0..attempts {
        let udp = tokio::net::UdpSocket::bind(listen)
            .await
            .map_err(io_error(format!("cannot bind SIP UDP on {listen}")))?;
        let addr = udp.local_addr().map_err(io_error("SIP UDP address"))?;
        match tokio::net::TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp, addr)),
            Err(e) => last = Some((addr, e)),
        }
    }
    let (addr, source) = last.unwrap_or_else(|| {
        (
            listen,
            std::io::Error::new(std::io::ErrorKind::AddrInUse, "no attempt made"),
        )
    });
    Err(Error::Io {
        what: format!("cannot bind SIP TCP on {addr}"),
        source,
    })
}

/// Serves until `shutdown` resolves, then stops in order.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let switch = start(config).await?;
    shutdown.await;
    switch.stop().await
}
