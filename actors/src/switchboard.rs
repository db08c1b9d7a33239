//! Starting and stopping the switching core: the numbering plan is read from the database,
//! one `Extension` actor is started per extension (and per registering gateway), then the
//! `SipRouter`, the `EventHub`, the `CallLogWriter` and the SIP endpoint on the given
//! sockets.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sea_orm::DatabaseConnection;
use tokio::net::{TcpListener, UdpSocket};

use crate::call_log_writer::{CallLogWriter, Flush};
use crate::event_hub::EventHub;
use crate::extension::{Extension, ExtensionKind};
use crate::media::PortAllocator;
use crate::router::{Directory, HangupAll, SipInbound, SipRouter, TrunkRoute};
use crate::services::{Services, SwitchSettings};
use crate::sip::digest::DigestServer;
use crate::sip::endpoint::{self, EndpointHandle};
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
}

/// The running core.
pub struct Switchboard {
    pub router: Addr<SipRouter>,
    pub hub: Addr<EventHub>,
    pub call_log: Addr<CallLogWriter>,
    pub endpoint: EndpointHandle,
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
        use entities::repo;
        let extensions = repo::extensions::list(db).await?;
        let groups = repo::groups::list(db).await?;
        let trunks = repo::trunks::list(db).await?;
        let access_numbers = repo::access_numbers::list(db).await?;
        let conferences = repo::conferences::list(db).await?;
        let mut group_members = HashMap::new();
        for group in &groups {
            let members = repo::groups::members(db, group.id).await?;
            group_members.insert(
                group.number.clone(),
                members
                    .into_iter()
                    .map(|m| m.extension.number)
                    .collect::<Vec<_>>(),
            );
        }

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
            LayerConfig::default(),
            Arc::new(move |inbound| deliver_to.do_send(SipInbound(inbound))),
        )?;
        let secret: String = (0..32)
            .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
            .collect();
        let services = Services {
            endpoint: endpoint.clone(),
            router: router.clone(),
            hub: hub.clone(),
            call_log: call_log.clone(),
            ports: Arc::new(PortAllocator::new(
                config.media_bind,
                config.rtp_ports.clone(),
            )?),
            digest: Arc::new(DigestServer::new(config.realm.clone(), secret)),
            settings: Arc::new(SwitchSettings {
                media_ip: config.media_ip,
                rtp_timeout: config.rtp_timeout,
                ring_timeout: config.ring_timeout,
                ..SwitchSettings::default()
            }),
        };

        let mut directory = Directory::default();
        for ext in extensions {
            let actor = Extension::new(
                ext.number.clone(),
                ext.password.clone(),
                ExtensionKind::Phone,
                services.clone(),
            );
            directory.extensions.insert(ext.number, actor.start());
        }
        for trunk in trunks {
            if let Some(password) = trunk.password.clone().filter(|p| !p.is_empty()) {
                let actor = Extension::new(
                    trunk.name.clone(),
                    password,
                    ExtensionKind::Gateway,
                    services.clone(),
                );
                directory
                    .extensions
                    .insert(trunk.name.clone(), actor.start());
            }
            directory.trunks.push(TrunkRoute {
                host: trunk.host.as_deref().and_then(trunk_host),
                name: trunk.name,
                is_default: trunk.is_default,
                allow_transit: trunk.allow_transit,
            });
        }
        directory.groups = group_members;
        for access in access_numbers {
            if let Some(target) = access.parsed_target() {
                directory.access_numbers.insert(access.number, target);
            }
        }
        directory.conferences = conferences.into_iter().map(|c| c.number).collect();
        router_ctx.run(SipRouter::new(directory, services));
        Ok(Switchboard {
            router,
            hub,
            call_log,
            endpoint,
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
    }
}
