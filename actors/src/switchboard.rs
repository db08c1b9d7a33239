//! Starting and stopping the switching core: the numbering plan is read from the database,
//! one `Extension` actor is started per extension (and per registering gateway), then the
//! `SipRouter`, the `EventHub`, the `CallLogWriter` and the SIP endpoint on the given
//! sockets.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sea_orm::DatabaseConnection;
use tokio::net::{TcpListener, UdpSocket};

use crate::call_log_writer::{CallLogWriter, Flush};
use crate::conference::{Conference, Reconfigure};
use crate::event_hub::EventHub;
use crate::extension::{Extension, ExtensionKind, Retire, SetPassword};
use crate::media::engine::MediaEngine;
use crate::media::PortAllocator;
use crate::queue::{Queue, QueueConfig, QueueMember, ReconfigureQueue};
use crate::router::{Directory, HangupAll, SipInbound, SipRouter, TrunkRoute};
use crate::services::{RecordingOverrides, ServiceSet, Services, SwitchSettings};
use crate::sip::digest::DigestServer;
use crate::sip::endpoint::{self, EndpointConfig, EndpointHandle};
use crate::sip::transaction::LayerConfig;
use crate::Error;

#[derive(Debug, Clone)]
pub struct SwitchboardConfig {
    pub realm: String,
    /// Host written into Via and Contact.
    pub advertise: String,
    /// Address written into SDP.
    pub media_ip: IpAddr,
    /// Address the relay's sockets bind.
    pub media_bind: IpAddr,
    pub rtp_ports: RangeInclusive<u16>,
    pub rtp_timeout: Duration,
    pub ring_timeout: Duration,
    /// `[sip] max_calls_per_second` (0: no limit).
    pub max_calls_per_second: u32,
    pub keepalive_interval: Duration,
    /// Record answered calls.
    pub recording: bool,
    /// Where recordings go.
    pub records_dir: std::path::PathBuf,
    /// `storage.dir` (prompts and tone files below it).
    pub storage_dir: std::path::PathBuf,
    /// What a held party hears; `None` passes the holder's audio through.
    pub music_on_hold: Option<Arc<[i16]>>,
    /// Text-to-speech for prompts.
    pub tts: Option<Arc<crate::media::tts::TtsCache>>,
    /// Interface 11 routing query URL (`[callbacks] routing`).
    pub routing_url: Option<String>,
}

/// The running core.
pub struct Switchboard {
    pub router: Addr<SipRouter>,
    pub hub: Addr<EventHub>,
    pub call_log: Addr<CallLogWriter>,
    pub endpoint: EndpointHandle,
    pub media: MediaEngine,
}

/// Reads the numbering plan. Extensions already running in `current` keep their actor
/// (and so their registrations) and learn their new password; new ones get an actor.
pub async fn load_directory(
    db: &DatabaseConnection,
    services: &Services,
    current: &Directory,
) -> Result<Directory, Error> {
    use entities::repo;
    let mut directory = Directory::default();
    let actor_for = |number: &str, password: String, kind: ExtensionKind| match current
        .extensions
        .get(number)
    {
        Some(addr) => {
            addr.do_send(SetPassword(password));
            addr.clone()
        }
        None => Extension::new(number.to_string(), password, kind, services.clone()).start(),
    };
    for ext in repo::extensions::list(db).await? {
        let addr = match current.extensions.get(&ext.number) {
            Some(_) => actor_for(&ext.number, ext.password.clone(), ExtensionKind::Phone),
            None => Extension::new(
                ext.number.clone(),
                ext.password.clone(),
                ExtensionKind::Phone,
                services.clone(),
            )
            .with_presence(ext.presence, ext.presence_reason.clone())
            .start(),
        };
        directory.extensions.insert(ext.number, addr);
    }
    for trunk in repo::trunks::list(db).await? {
        if let Some(password) = trunk.password.clone().filter(|p| !p.is_empty()) {
            let addr = actor_for(&trunk.name, password, ExtensionKind::Gateway);
            directory.extensions.insert(trunk.name.clone(), addr);
        }
        directory.trunks.push(TrunkRoute {
            host: trunk.host.as_deref().and_then(trunk_host),
            name: trunk.name,
            is_default: trunk.is_default,
            allow_transit: trunk.allow_transit,
        });
    }
    for group in repo::groups::list(db).await? {
        let members: Vec<QueueMember> = repo::groups::members(db, group.id)
            .await?
            .into_iter()
            .filter_map(|m| {
                let ext = directory.extensions.get(&m.extension.number)?.clone();
                Some(QueueMember {
                    number: m.extension.number,
                    ext,
                    priority: m.priority,
                })
            })
            .collect();
        let config = QueueConfig {
            strategy: group.strategy,
            ring_timeout: Duration::from_secs(
                u64::try_from(group.ring_timeout.max(1)).unwrap_or(20),
            ),
            max_wait: Duration::from_secs(u64::try_from(group.max_wait.max(1)).unwrap_or(300)),
            wrap_up_seconds: u32::try_from(group.wrap_up.max(0)).unwrap_or(0),
            overflow: group.overflow.clone().filter(|o| !o.is_empty()),
        };
        let queue = match current.queues.get(&group.number) {
            Some(addr) => {
                addr.do_send(ReconfigureQueue { config, members });
                addr.clone()
            }
            None => Queue::new(group.number.clone(), config, members)
                .with_hub(services.hub.clone())
                .start(),
        };
        directory.queues.insert(group.number, queue);
    }
    for access in repo::access_numbers::list(db).await? {
        if let Some(target) = access.parsed_target() {
            directory.access_numbers.insert(access.number, target);
        }
    }
    for menu in repo::ivrs::list(db).await? {
        match repo::ivrs::parse(&menu) {
            Ok(definition) => {
                directory.ivrs.insert(menu.id, Arc::new(definition));
            }
            // Stored menus were validated when saved; a bad one is reported, not fatal.
            Err(e) => tracing::error!(ivr = menu.id, "IVR menu not loaded: {e}"),
        }
    }
    for room in repo::conferences::list(db).await? {
        let addr = match current.conferences.get(&room.number) {
            Some(addr) => {
                addr.do_send(Reconfigure {
                    pin: room.pin.clone(),
                });
                addr.clone()
            }
            None => {
                Conference::new(room.number.clone(), room.pin.clone(), services.clone()).start()
            }
        };
        directory.conferences.insert(room.number, addr);
    }
    let overrides = RecordingOverrides {
        extensions: repo::extensions::recording_overrides(db).await?,
        groups: repo::groups::recording_overrides(db).await?,
    };
    if let Ok(mut current) = services.recording_overrides.write() {
        *current = overrides;
    }
    // Extensions that were deleted stop (their registrations go with them).
    for (number, addr) in &current.extensions {
        if !directory.extensions.contains_key(number) {
            addr.do_send(Retire);
        }
    }
    Ok(directory)
}

/// `host:port` of a trunk, resolved once at start.
fn trunk_host(host: &str) -> Option<SocketAddr> {
    host.parse()
        .ok()
        .or_else(|| host.to_socket_addrs().ok().and_then(|mut a| a.next()))
}

impl Switchboard {
    /// Must be called inside the actix system.
    pub async fn start(
        db: &DatabaseConnection,
        config: SwitchboardConfig,
        udp: UdpSocket,
        tcp: TcpListener,
    ) -> Result<Switchboard, Error> {
        let hub = EventHub::default().start();
        let call_log = CallLogWriter::new(db.clone()).start();
        // The router's mailbox exists before it runs, so the endpoint can deliver into it
        // from the first datagram on.
        let router_ctx = Context::<SipRouter>::new();
        let router = router_ctx.address();
        let deliver_to = router.clone();
        let endpoint = endpoint::spawn(
            udp,
            tcp,
            &config.advertise,
            EndpointConfig {
                layer: LayerConfig::default(),
                max_calls_per_second: config.max_calls_per_second,
            },
            Arc::new(move |inbound| deliver_to.do_send(SipInbound(inbound))),
        )?;
        let media = MediaEngine::start()?;
        let secret: String = (0..32)
            .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
            .collect();
        let services = Services::new(ServiceSet {
            endpoint: endpoint.clone(),
            router: router.clone(),
            hub: hub.clone(),
            call_log: call_log.clone(),
            ports: Arc::new(PortAllocator::new(
                config.media_bind,
                config.rtp_ports.clone(),
            )?),
            media: media.clone(),
            recording_overrides: Arc::default(),
            db: db.clone(),
            lists: Arc::new(crate::routing_lists::RoutingLists::load(db).await?),
            http: reqwest::Client::new(),
            tts: config.tts.clone(),
            digest: Arc::new(DigestServer::new(config.realm.clone(), secret)),
            settings: Arc::new(SwitchSettings {
                media_ip: config.media_ip,
                rtp_timeout: config.rtp_timeout,
                ring_timeout: config.ring_timeout,
                keepalive_interval: config.keepalive_interval,
                recording: config.recording,
                records_dir: config.records_dir.clone(),
                storage_dir: config.storage_dir.clone(),
                music_on_hold: config.music_on_hold.clone(),
                routing_url: config.routing_url.clone(),
                ..SwitchSettings::default()
            }),
        });

        let directory = load_directory(db, &services, &Directory::default()).await?;
        router_ctx.run(SipRouter::new(directory, services, db.clone()));
        Ok(Switchboard {
            router,
            hub,
            call_log,
            endpoint,
            media,
        })
    }

    /// Ends every call (BYE), writes every call-log row, closes the SIP sockets.
    pub async fn stop(&self) {
        match self.router.send(HangupAll).await {
            Ok(0) => {}
            Ok(left) => tracing::warn!("{left} calls still up at shutdown"),
            Err(e) => tracing::warn!("router gone at shutdown: {e}"),
        }
        // Let the final BYEs leave before the socket closes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        match self.call_log.send(Flush).await {
            Ok(Ok(n)) => tracing::debug!("call log flushed ({n} rows)"),
            Ok(Err(e)) => tracing::error!("call log flush failed: {e}"),
            Err(e) => tracing::error!("call-log writer gone: {e}"),
        }
        self.endpoint.shutdown();
        // Finishes the recordings of calls that just ended and closes every RTP socket.
        let media = self.media.clone();
        let _ = tokio::task::spawn_blocking(move || media.shutdown()).await;
    }
}
