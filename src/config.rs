//! Configuration: a TOML file where every key has a default, overridden by
//! `CTISWITCH_<SECTION>_<KEY>` environment variables (see `shared/design/CONTRACT.md`).
//!
//! Loading goes file → TOML table → environment overrides merged into the table → typed
//! `Config` (with the failing key's path in any error) → semantic checks (addresses, ranges,
//! URLs), so a bad value always stops start-up with a message naming the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// Prefix of environment overrides: `CTISWITCH_SIP_LISTEN` sets `sip.listen`.
pub const ENV_PREFIX: &str = "CTISWITCH_";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub storage: StorageConfig,
    pub recording: RecordingConfig,
    pub tts: TtsConfig,
    pub callbacks: CallbacksConfig,
    pub log: LogConfig,
    pub extensions: Vec<entities::provision::ExtensionInput>,
    pub groups: Vec<entities::provision::GroupInput>,
    pub trunks: Vec<entities::provision::TrunkInput>,
    pub access_numbers: Vec<entities::provision::AccessNumberInput>,
    pub conferences: Vec<entities::provision::ConferenceInput>,
    pub ivrs: Vec<IvrEntry>,
    /// Directory of the config file; relative paths in it (IVR definitions) resolve here.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// UDP and TCP listen address.
    pub listen: String,
    /// Address written into Via, Contact and SDP.
    pub advertise: String,
    /// Digest-auth realm.
    pub realm: String,
    /// Seconds a called phone rings before the caller gets 408.
    pub ring_timeout: u64,
    /// Seconds between OPTIONS keep-alives to phones behind NAT.
    pub keepalive: u64,
    /// New calls admitted per second (a burst of one second's worth passes); the excess
    /// gets 503 with `Retry-After` at once. 0: no limit.
    pub max_calls_per_second: u32,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:5060".into(),
            advertise: "127.0.0.1".into(),
            realm: "ctiswitch".into(),
            ring_timeout: 60,
            keepalive: 30,
            max_calls_per_second: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// RTP port range `LOW-HIGH`, inclusive.
    pub rtp_ports: String,
    /// Seconds without RTP on an answered call before it is hung up.
    pub rtp_timeout: u64,
    /// What a party put on hold hears: `builtin` (a soft arpeggio), `off` (whatever the
    /// holding phone sends), or a WAV file (relative paths are below `storage.dir`).
    pub music_on_hold: String,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            rtp_ports: "20000-29999".into(),
            rtp_timeout: 60,
            music_on_hold: MUSIC_ON_HOLD_BUILTIN.into(),
        }
    }
}

/// `[media] music_on_hold` for the built-in music.
pub const MUSIC_ON_HOLD_BUILTIN: &str = "builtin";
/// `[media] music_on_hold` for no music (the holder's audio passes through).
pub const MUSIC_ON_HOLD_OFF: &str = "off";

/// `[tts]`: how prompts given as text are spoken.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtsConfig {
    /// `espeak-ng` (the local program), `http` (GET `url`) or `off`.
    pub engine: String,
    /// espeak-ng voice (e.g. `en-us`, `cmn`); empty for its default.
    pub voice: String,
    /// For `http`: a URL with `{text}` where the percent-encoded text goes; the answer
    /// is a WAV file.
    pub url: String,
    /// Seconds an engine may take for one text.
    pub timeout: u64,
}

impl Default for TtsConfig {
    fn default() -> Self {
        Self {
            engine: "espeak-ng".into(),
            voice: String::new(),
            url: String::new(),
            timeout: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:12121".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/ctiswitch.db?mode=rwc".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Recordings, tone files and exports live below it.
    pub dir: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { dir: "data".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    pub enabled: bool,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// CRM URLs the switch calls; empty means "not configured".
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbacksConfig {
    pub screen_pop: String,
    pub call_log_push: String,
    pub hangup: String,
    pub routing: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `debug`, `ctiswitch=debug,actors=trace`, …
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

/// `[[ivrs]]`: a menu whose definition document is read from a file at start-up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IvrEntry {
    pub id: i32,
    #[serde(default)]
    pub name: String,
    /// Path relative to the config file.
    pub definition: String,
}

/// Inclusive RTP port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl Config {
    /// Reads `path` (if given) and the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, Error> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::Config(format!("cannot read config file {}: {e}", path.display()))
                })?;
                let base = path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("."));
                Self::from_parts(&text, &env, base)
                    .map_err(|e| Error::Config(format!("{}: {e}", path.display())))
            }
            None => Self::from_parts("", &env, PathBuf::from("."))
                .map_err(|e| Error::Config(e.to_string())),
        }
    }

    /// The pure part of loading: file text plus environment overrides.
    pub fn from_parts(
        text: &str,
        env: &BTreeMap<String, String>,
        base_dir: PathBuf,
    ) -> Result<Config, Error> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| Error::Config(format!("invalid TOML: {e}")))?;
        apply_env(&mut table, env)?;
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let path = e.path().to_string();
                Error::Config(format!("key `{path}`: {}", e.into_inner()))
            })?;
        config.base_dir = base_dir;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), Error> {
        parse_addr("sip.listen", &self.sip.listen)?;
        parse_addr("http.listen", &self.http.listen)?;
        if self.sip.advertise.trim().is_empty() {
            return Err(bad("sip.advertise", "must not be empty"));
        }
        if self.sip.keepalive == 0 {
            return Err(bad("sip.keepalive", "must be at least 1 second"));
        }
        if self.sip.ring_timeout == 0 {
            return Err(bad("sip.ring_timeout", "must be at least 1 second"));
        }
        if self
            .sip
            .advertise
            .trim()
            .parse::<std::net::IpAddr>()
            .is_err()
        {
            return Err(bad(
                "sip.advertise",
                &format!("`{}` is not an IP address", self.sip.advertise),
            ));
        }
        if self.sip.realm.trim().is_empty() {
            return Err(bad("sip.realm", "must not be empty"));
        }
        self.rtp_port_range()?;
        if self.media.rtp_timeout == 0 {
            return Err(bad("media.rtp_timeout", "must be at least 1 second"));
        }
        match self.tts.engine.trim() {
            "espeak-ng" | "off" => {}
            "http" if self.tts.url.contains("{text}") => {}
            "http" => {
                return Err(bad(
                    "tts.url",
                    "must contain {text} when tts.engine = \"http\"",
                ))
            }
            other => {
                return Err(bad(
                    "tts.engine",
                    &format!("`{other}` is not one of espeak-ng, http, off"),
                ))
            }
        }
        if self.tts.timeout == 0 {
            return Err(bad("tts.timeout", "must be at least 1 second"));
        }
        let url = self.database.url.as_str();
        if !["sqlite:", "postgres:", "postgresql:", "mysql:"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            return Err(bad(
                "database.url",
                &format!("`{url}` is not a sqlite:, postgres: or mysql: URL"),
            ));
        }
        if self.storage.dir.trim().is_empty() {
            return Err(bad("storage.dir", "must not be empty"));
        }
        for (key, value) in [
            ("callbacks.screen_pop", &self.callbacks.screen_pop),
            ("callbacks.call_log_push", &self.callbacks.call_log_push),
            ("callbacks.hangup", &self.callbacks.hangup),
            ("callbacks.routing", &self.callbacks.routing),
        ] {
            if !(value.is_empty() || value.starts_with("http://") || value.starts_with("https://"))
            {
                return Err(bad(key, &format!("`{value}` is not an http(s) URL")));
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| bad("log.level", &format!("`{}`: {e}", self.log.level)))?;
        let mut ids = std::collections::HashSet::new();
        for (i, ivr) in self.ivrs.iter().enumerate() {
            if !ids.insert(ivr.id) {
                return Err(bad(&format!("ivrs[{i}].id"), "duplicate IVR id"));
            }
        }
        Ok(())
    }

    pub fn sip_listen(&self) -> SocketAddr {
        // validate() has checked it; the fallback is never used on a loaded config.
        parse_addr("sip.listen", &self.sip.listen).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 5060)))
    }

    pub fn http_listen(&self) -> SocketAddr {
        parse_addr("http.listen", &self.http.listen)
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 12121)))
    }

    pub fn rtp_port_range(&self) -> Result<PortRange, Error> {
        let key = "media.rtp_ports";
        let value = &self.media.rtp_ports;
        let (low, high) = value
            .split_once('-')
            .ok_or_else(|| bad(key, &format!("`{value}` is not LOW-HIGH")))?;
        let low: u16 = low
            .trim()
            .parse()
            .map_err(|_| bad(key, &format!("`{value}`: bad low port")))?;
        let high: u16 = high
            .trim()
            .parse()
            .map_err(|_| bad(key, &format!("`{value}`: bad high port")))?;
        if low == 0 || high < low.saturating_add(3) {
            return Err(bad(
                key,
                &format!("`{value}`: need 1 <= LOW and room for at least two RTP/RTCP pairs"),
            ));
        }
        Ok(PortRange { low, high })
    }

    /// The provisioning entries, with IVR documents read from disk.
    pub fn provisioning(&self) -> Result<entities::provision::Provisioning, Error> {
        let mut ivrs = Vec::with_capacity(self.ivrs.len());
        for (i, entry) in self.ivrs.iter().enumerate() {
            let path = self.base_dir.join(&entry.definition);
            let definition = std::fs::read_to_string(&path).map_err(|e| {
                bad(
                    &format!("ivrs[{i}].definition"),
                    &format!("cannot read {}: {e}", path.display()),
                )
            })?;
            ivrs.push(entities::provision::IvrInput {
                id: entry.id,
                name: entry.name.clone(),
                definition,
                source_path: Some(path.display().to_string()),
            });
        }
        Ok(entities::provision::Provisioning {
            extensions: self.extensions.clone(),
            groups: self.groups.clone(),
            trunks: self.trunks.clone(),
            access_numbers: self.access_numbers.clone(),
            conferences: self.conferences.clone(),
            ivrs,
        })
    }
}

fn bad(key: &str, problem: &str) -> Error {
    Error::Config(format!("key `{key}`: {problem}"))
}

fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, Error> {
    value
        .parse()
        .map_err(|_| bad(key, &format!("`{value}` is not an IP:PORT address")))
}

/// Sections that take environment overrides. Any other `CTISWITCH_*` variable (test
/// harness settings, for instance) is not configuration and is left alone.
const ENV_SECTIONS: &[&str] = &[
    "sip",
    "media",
    "http",
    "database",
    "storage",
    "recording",
    "tts",
    "callbacks",
    "log",
];

/// Merges `CTISWITCH_<SECTION>_<KEY>` variables into the table. The value's TOML type is
/// taken from the key's default, so `CTISWITCH_RECORDING_ENABLED=false` is a boolean.
fn apply_env(table: &mut toml::Table, env: &BTreeMap<String, String>) -> Result<(), Error> {
    let defaults = toml::Table::try_from(Config::default())
        .map_err(|e| Error::Config(format!("internal: defaults do not serialize: {e}")))?;
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let Some((section, key)) = ENV_SECTIONS.iter().find_map(|section| {
            rest.strip_prefix(section)
                .and_then(|r| r.strip_prefix('_'))
                .map(|key| (*section, key.to_string()))
        }) else {
            continue;
        };
        let Some(default) = defaults
            .get(section)
            .and_then(|s| s.as_table())
            .and_then(|s| s.get(&key))
        else {
            return Err(Error::Config(format!(
                "environment variable {name}: `{section}` has no key `{key}`"
            )));
        };
        let value = match default {
            toml::Value::Boolean(_) => match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
                "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
                _ => {
                    return Err(Error::Config(format!(
                        "environment variable {name} (key `{section}.{key}`): `{raw}` is not a boolean"
                    )))
                }
            },
            toml::Value::Integer(_) => {
                toml::Value::Integer(raw.trim().parse().map_err(|_| {
                    Error::Config(format!(
                        "environment variable {name} (key `{section}.{key}`): `{raw}` is not an integer"
                    ))
                })?)
            }
            _ => toml::Value::String(raw.clone()),
        };
        let section_table = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match section_table.as_table_mut() {
            Some(t) => {
                t.insert(key, value);
            }
            None => {
                return Err(bad(section, "must be a table"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, Error> {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_parts(text, &env, PathBuf::from("."))
    }

    fn message(result: Result<Config, Error>) -> String {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.sip.listen, "0.0.0.0:5060");
        assert_eq!(c.sip.advertise, "127.0.0.1");
        assert_eq!(c.sip.realm, "ctiswitch");
        assert_eq!(c.media.rtp_ports, "20000-29999");
        assert_eq!(c.http.listen, "0.0.0.0:12121");
        assert_eq!(c.database.url, "sqlite://data/ctiswitch.db?mode=rwc");
        assert_eq!(c.storage.dir, "data");
        assert!(c.recording.enabled);
        assert_eq!(c.callbacks.screen_pop, "");
        assert_eq!(
            c.rtp_port_range().unwrap(),
            PortRange {
                low: 20000,
                high: 29999
            }
        );
        assert!(c.extensions.is_empty());
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        let text = r#"
            [sip]
            listen = "127.0.0.1:5070"
            realm = "acme"
            [recording]
            enabled = true
        "#;
        let c = load(
            text,
            &[
                ("CTISWITCH_SIP_LISTEN", "127.0.0.1:15060"),
                ("CTISWITCH_RECORDING_ENABLED", "false"),
                (
                    "CTISWITCH_CALLBACKS_CALL_LOG_PUSH",
                    "http://127.0.0.1:9/push",
                ),
                ("CTISWITCH_TEST_POSTGRES_URL", "not configuration"),
            ],
        )
        .unwrap();
        assert_eq!(c.sip.listen, "127.0.0.1:15060", "env wins over file");
        assert_eq!(c.sip.realm, "acme", "file wins over default");
        assert!(!c.recording.enabled);
        assert_eq!(c.callbacks.call_log_push, "http://127.0.0.1:9/push");
        assert_eq!(c.http.listen, "0.0.0.0:12121", "untouched default");
    }

    #[test]
    fn provisioning_sections_parse() {
        let text = r#"
            [[extensions]]
            number = "801"
            password = "1234"
            name = "Alice"
            groups = ["3003"]
            supervisor = true

            [[groups]]
            number = "3003"
            name = "Sales"
            strategy = "longest-idle"
            ring_timeout = 20
            max_wait = 300

            [[trunks]]
            name = "2001"
            host = "127.0.0.1:5080"
            default = true

            [[access_numbers]]
            number = "1000"
            target = "group:3003"

            [[conferences]]
            number = "9000"
        "#;
        let c = load(text, &[]).unwrap();
        assert_eq!(c.extensions.len(), 1);
        assert_eq!(c.extensions[0].number, "801");
        assert_eq!(c.groups[0].number, "3003");
        assert_eq!(c.trunks[0].name, "2001");
        assert_eq!(c.access_numbers[0].target, "group:3003");
        assert_eq!(c.conferences[0].number, "9000");
    }

    #[test]
    fn bad_values_name_the_key() {
        let m = message(load("[sip]\nlisten = \"nowhere\"\n", &[]));
        assert!(m.contains("sip.listen"), "{m}");
        let m = message(load("[recording]\nenabled = \"maybe\"\n", &[]));
        assert!(m.contains("recording.enabled"), "{m}");
        let m = message(load("[media]\nrtp_ports = \"3000-2000\"\n", &[]));
        assert!(m.contains("media.rtp_ports"), "{m}");
        let m = message(load("[database]\nurl = \"oracle://x\"\n", &[]));
        assert!(m.contains("database.url"), "{m}");
        let m = message(load("[sip]\nlisten_typo = \"x\"\n", &[]));
        assert!(m.contains("listen_typo"), "{m}");
        let m = message(load(
            "[[extensions]]\nnumber = \"801\"\npasword = \"x\"\n",
            &[],
        ));
        assert!(m.contains("extensions") && m.contains("pasword"), "{m}");
        let m = message(load("[callbacks]\nhangup = \"ftp://x\"\n", &[]));
        assert!(m.contains("callbacks.hangup"), "{m}");
        let m = message(load("this is = = not toml", &[]));
        assert!(m.contains("invalid TOML"), "{m}");
    }

    #[test]
    fn bad_environment_values_name_the_variable_and_key() {
        let m = message(load("", &[("CTISWITCH_RECORDING_ENABLED", "perhaps")]));
        assert!(m.contains("CTISWITCH_RECORDING_ENABLED") && m.contains("recording.enabled"));
        let m = message(load("", &[("CTISWITCH_SIP_NOPE", "1")]));
        assert!(m.contains("CTISWITCH_SIP_NOPE"), "{m}");
        let m = message(load("", &[("CTISWITCH_HTTP_LISTEN", "12121")]));
        assert!(m.contains("http.listen"), "{m}");
    }
}
