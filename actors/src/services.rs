//! What every switching actor needs to reach: the SIP endpoint, the router, the event hub,
//! the call-log writer, media ports and the switch's settings. Cloned into each actor.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;

use crate::call_log_writer::CallLogWriter;
use crate::event_hub::EventHub;
use crate::media::engine::MediaEngine;
use crate::media::tts::TtsCache;
use crate::media::PortAllocator;
use crate::router::SipRouter;
use crate::sip::digest::DigestServer;
use crate::sip::endpoint::EndpointHandle;

/// Settings of the switching core (from the `[sip]` and `[media]` configuration).
#[derive(Debug, Clone)]
pub struct SwitchSettings {
    /// Address written into SDP (the relay's address as phones see it).
    pub media_ip: IpAddr,
    /// Seconds without RTP on an answered call before it is hung up.
    pub rtp_timeout: Duration,
    /// How long an extension rings before the caller gets 408.
    pub ring_timeout: Duration,
    /// `User-Agent` / `Server` header value.
    pub user_agent: String,
    /// OPTIONS keep-alive period for phones behind NAT.
    pub keepalive_interval: Duration,
    /// Interface 11: asked where a call from a trunk goes (`GET url?caller=…`).
    pub routing_url: Option<String>,
    /// Record answered calls (`[recording] enabled`).
    pub recording: bool,
    /// Where recordings go (one folder per day below it).
    pub records_dir: PathBuf,
    /// `storage.dir`: prompts (`prompts/…`) and tone files (`tones/<id>.wav`) live below it.
    pub storage_dir: PathBuf,
    /// What a party put on hold hears; `None` passes the holder's audio through.
    pub music_on_hold: Option<Arc<[i16]>>,
}

impl Default for SwitchSettings {
    fn default() -> Self {
        Self {
            media_ip: IpAddr::from([127, 0, 0, 1]),
            rtp_timeout: Duration::from_secs(60),
            ring_timeout: Duration::from_secs(60),
            user_agent: format!("ctiswitch/{}", env!("CARGO_PKG_VERSION")),
            keepalive_interval: crate::extension::KEEPALIVE_INTERVAL,
            routing_url: None,
            recording: false,
            records_dir: PathBuf::from("data/records"),
            storage_dir: PathBuf::from("data"),
            music_on_hold: None,
        }
    }
}

/// Per-extension and per-group recording settings (`recording = true|false`), over the
/// global `[recording] enabled`. Replaced whenever the directory is reloaded.
#[derive(Debug, Clone, Default)]
pub struct RecordingOverrides {
    pub extensions: std::collections::HashMap<String, bool>,
    pub groups: std::collections::HashMap<String, bool>,
}

impl RecordingOverrides {
    /// Whether a call between `extensions` (callee first, then caller), through `group`,
    /// is recorded: the first extension with a setting decides, then the group's
    /// setting, then `global`.
    pub fn decide(&self, extensions: &[&str], group: Option<&str>, global: bool) -> bool {
        extensions
            .iter()
            .find_map(|e| self.extensions.get(*e).copied())
            .or_else(|| group.and_then(|g| self.groups.get(g).copied()))
            .unwrap_or(global)
    }
}

/// What every actor of the switch reaches: cloned into each call, leg and extension, so
/// one shared block (a clone is one reference count, where the fields' own clones were a
/// dozen, three of them allocations: each `Addr` clone allocates its sender task).
#[derive(Clone)]
pub struct Services(Arc<ServiceSet>);

impl Services {
    pub fn new(set: ServiceSet) -> Self {
        Self(Arc::new(set))
    }
}

impl std::ops::Deref for Services {
    type Target = ServiceSet;
    fn deref(&self) -> &ServiceSet {
        &self.0
    }
}

pub struct ServiceSet {
    pub endpoint: EndpointHandle,
    pub router: Addr<SipRouter>,
    pub hub: Addr<EventHub>,
    pub call_log: Addr<CallLogWriter>,
    pub ports: Arc<PortAllocator>,
    pub media: MediaEngine,
    pub recording_overrides: Arc<std::sync::RwLock<RecordingOverrides>>,
    /// The database, for the few lookups a call makes (direct callback); state lives in
    /// actors.
    pub db: sea_orm::DatabaseConnection,
    /// Blacklist, VIP levels, routing rules and access numbers, read by every call.
    pub lists: Arc<crate::routing_lists::RoutingLists>,
    /// For the HTTP callbacks a call makes itself (interface 11 routing query).
    pub http: reqwest::Client,
    /// Text-to-speech for prompts; `None` when `[tts] engine = "off"`.
    pub tts: Option<Arc<TtsCache>>,
    pub digest: Arc<DigestServer>,
    pub settings: Arc<SwitchSettings>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_narrowest_setting_decides() {
        let o = RecordingOverrides {
            extensions: [("801".to_string(), false), ("802".to_string(), true)].into(),
            groups: [("3003".to_string(), false)].into(),
        };
        assert!(!o.decide(&["801", "802"], None, true), "callee 801 says no");
        assert!(
            o.decide(&["802", "801"], Some("3003"), false),
            "callee 802 says yes"
        );
        assert!(
            !o.decide(&["803"], Some("3003"), true),
            "no extension setting: the group"
        );
        assert!(
            o.decide(&["803"], Some("4000"), true),
            "nothing set: global"
        );
        assert!(!o.decide(&[], None, false));
    }
}
