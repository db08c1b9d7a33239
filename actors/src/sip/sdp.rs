//! SDP (RFC 4566) and offer/answer (RFC 3264) for a B2BUA that anchors media.
//!
//! The switch terminates SDP on each leg: it answers offers with its own relay address
//! (choosing one G.711 codec plus telephone-event, so the relay can forward bytes without
//! transcoding), makes its own offers, and can pass a peer's SDP through with its own
//! address and origin (re-INVITE pass-through).
//!
//! Parsing keeps every line it does not interpret (in order), so a pass-through loses
//! nothing. Sans-IO; takes and returns strings.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use compact_str::{CompactString, ToCompactString};

/// SDP line terminator on output (RFC 4566 §5); input may use CRLF or LF.
pub const CRLF: &str = "\r\n";
/// Packetisation time the switch sends and asks for, in ms (G.711 20 ms frames).
pub const DEFAULT_PTIME: u32 = 20;
/// G.711 sample rate.
pub const G711_CLOCK: u32 = 8000;
/// Payload type of telephone-event in the switch's own offers.
pub const TELEPHONE_EVENT_PT: u8 = 101;
/// Encoding name of RFC 4733 events.
pub const TELEPHONE_EVENT: &str = "telephone-event";
/// Events the switch offers: DTMF 0-9, *, #, A-D and flash (RFC 4733 §3.2).
pub const TELEPHONE_EVENT_RANGE: &str = "0-16";
/// `o=` username and `s=` of SDP the switch generates.
pub const SWITCH_SDP_NAME: &str = "ctiswitch";
/// Payload types at or above this are dynamic and need an rtpmap (RFC 3551 §6).
pub const FIRST_DYNAMIC_PT: u8 = 96;
/// Transport profiles the relay can carry (plain RTP; it forwards bytes as they are).
pub const RTP_PROFILES: [&str; 2] = ["RTP/AVP", "RTP/AVPF"];
/// Attributes dropped when passing a peer's SDP through: they describe the peer's own
/// transport (ICE candidates, RTCP port/mux), which the relay replaces.
pub const TRANSPORT_ATTRIBUTES: [&str; 9] = [
    "candidate",
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "end-of-candidates",
    "remote-candidates",
    "rtcp",
    "rtcp-mux",
];

/// A codec the switch can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    /// Static payload type used in the switch's own offers.
    pub pt: u8,
    pub name: &'static str,
    pub clock: u32,
}

pub const PCMU: Codec = Codec {
    pt: 0,
    name: "PCMU",
    clock: G711_CLOCK,
};
pub const PCMA: Codec = Codec {
    pt: 8,
    name: "PCMA",
    clock: G711_CLOCK,
};
/// The switch's codecs, in its order of preference.
pub const SWITCH_CODECS: [Codec; 2] = [PCMU, PCMA];

/// Errors from parsing or negotiating SDP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("empty SDP body")]
    Empty,
    #[error("SDP line {line}: {reason}")]
    Syntax { line: usize, reason: &'static str },
    #[error("SDP has no {0}= line")]
    Missing(char),
    /// No usable audio stream shares a codec with the switch: answer 488.
    #[error("no common codec")]
    NoCommonCodec,
}

/// Media direction attribute (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    pub fn from_attr(name: &str) -> Option<Self> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    fn from_flags(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction the other party answers with (sendonly ↔ recvonly).
    pub fn reverse(self) -> Self {
        Self::from_flags(self.receives(), self.sends())
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    // Inline strings (all short): an SDP is parsed, cloned and stamped several times a call.
    pub username: CompactString,
    /// Kept as text: only compared, and some UAs send more digits than fit a u64.
    pub session_id: CompactString,
    pub session_version: u64,
    pub net_type: CompactString,
    pub addr_type: CompactString,
    pub address: CompactString,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {}",
            self.username,
            self.session_id,
            self.session_version,
            self.net_type,
            self.addr_type,
            self.address
        )
    }
}

/// `c=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub net_type: CompactString,
    pub addr_type: CompactString,
    /// May carry `/ttl` for multicast or be a host name; see [`Connection::ip`].
    pub address: CompactString,
}

impl Connection {
    pub fn new(ip: IpAddr) -> Self {
        Self {
            net_type: "IN".into(),
            addr_type: addr_type(ip).into(),
            address: ip.to_compact_string(),
        }
    }

    pub fn ip(&self) -> Option<IpAddr> {
        let addr = self.address.split('/').next().unwrap_or_default();
        addr.parse().ok()
    }

    /// RFC 2543 hold: `c=0.0.0.0` (or `::`), meaning "do not send to me".
    pub fn is_hold(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.net_type, self.addr_type, self.address)
    }
}

/// `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub pt: u8,
    pub encoding: String,
    pub clock: u32,
    pub channels: Option<String>,
}

/// `a=fmtp:<format> <parameters>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    pub format: String,
    pub params: String,
}

/// An `a=` line; the ones the switch acts on are typed, the rest kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    Rtpmap(RtpMap),
    Fmtp(Fmtp),
    Direction(Direction),
    Ptime(u32),
    Other { name: String, value: Option<String> },
}

impl Attribute {
    fn parse(value: &str) -> Self {
        let (name, val) = match value.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (value, None),
        };
        let typed = match (name, val) {
            (_, None) => Direction::from_attr(name).map(Attribute::Direction),
            ("rtpmap", Some(v)) => parse_rtpmap(v).map(Attribute::Rtpmap),
            ("fmtp", Some(v)) => v.split_once(' ').map(|(fmt, params)| {
                Attribute::Fmtp(Fmtp {
                    format: fmt.to_owned(),
                    params: params.trim().to_owned(),
                })
            }),
            ("ptime", Some(v)) => v.trim().parse().ok().map(Attribute::Ptime),
            _ => None,
        };
        // Malformed known attributes are kept as text rather than failing the whole body.
        typed.unwrap_or_else(|| Attribute::Other {
            name: name.to_owned(),
            value: val.map(str::to_owned),
        })
    }

    fn name(&self) -> &str {
        match self {
            Attribute::Rtpmap(_) => "rtpmap",
            Attribute::Fmtp(_) => "fmtp",
            Attribute::Direction(d) => d.as_str(),
            Attribute::Ptime(_) => "ptime",
            Attribute::Other { name, .. } => name,
        }
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attribute::Rtpmap(m) => {
                write!(f, "rtpmap:{} {}/{}", m.pt, m.encoding, m.clock)?;
                match &m.channels {
                    Some(ch) => write!(f, "/{ch}"),
                    None => Ok(()),
                }
            }
            Attribute::Fmtp(p) => write!(f, "fmtp:{} {}", p.format, p.params),
            Attribute::Direction(d) => f.write_str(d.as_str()),
            Attribute::Ptime(p) => write!(f, "ptime:{p}"),
            Attribute::Other { name, value: None } => f.write_str(name),
            Attribute::Other {
                name,
                value: Some(v),
            } => write!(f, "{name}:{v}"),
        }
    }
}

fn parse_rtpmap(v: &str) -> Option<RtpMap> {
    let (pt, rest) = v.trim().split_once(' ')?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next()?.to_owned();
    let clock = parts.next()?.parse().ok()?;
    Some(RtpMap {
        pt: pt.parse().ok()?,
        encoding,
        clock,
        channels: parts.next().map(str::to_owned),
    })
}

/// A line the switch does not interpret (`i=`, `b=`, `k=`, `r=`, `z=`, unknown types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub kind: char,
    pub value: String,
}

/// An `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: String,
    /// 0 means the stream is rejected/disabled.
    pub port: u16,
    pub port_count: Option<u16>,
    pub proto: String,
    /// Payload types for RTP profiles; other profiles use other tokens.
    pub formats: Vec<String>,
    pub connection: Option<Connection>,
    pub attributes: Vec<Attribute>,
    pub lines: Vec<Line>,
}

impl Media {
    fn new(kind: &str, port: u16, proto: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            port,
            port_count: None,
            proto: proto.to_owned(),
            formats: Vec::new(),
            connection: None,
            attributes: Vec::new(),
            lines: Vec::new(),
        }
    }

    /// The formats that are RTP payload types, in offer order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| f.parse().ok())
    }

    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Rtpmap(m) if m.pt == pt => Some(m),
            _ => None,
        })
    }

    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Fmtp(p) if p.format.parse() == Ok(pt) => Some(p.params.as_str()),
            _ => None,
        })
    }

    /// The media-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        find_direction(&self.attributes)
    }

    pub fn set_direction(&mut self, d: Direction) {
        set_direction(&mut self.attributes, d);
    }

    pub fn ptime(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Ptime(p) => Some(*p),
            _ => None,
        })
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name() == name)
    }

    fn is_rtp(&self) -> bool {
        RTP_PROFILES
            .iter()
            .any(|p| self.proto.eq_ignore_ascii_case(p))
    }
}

/// A parsed SDP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    pub origin: Origin,
    pub session_name: String,
    pub connection: Option<Connection>,
    /// `t=` values; `0 0` is written when empty.
    pub timing: Vec<String>,
    pub attributes: Vec<Attribute>,
    pub lines: Vec<Line>,
    pub media: Vec<Media>,
}

impl Sdp {
    /// Parses a body; CRLF or LF line ends, unknown line types and attributes kept.
    pub fn parse(body: &str) -> Result<Self, SdpError> {
        let mut lines = body
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i + 1, l));
        let Some((first_no, first)) = lines.next() else {
            return Err(SdpError::Empty);
        };
        if split_line(first_no, first)?.0 != 'v' {
            return Err(SdpError::Syntax {
                line: first_no,
                reason: "SDP must start with v=",
            });
        }
        let mut origin = None;
        let mut session_name = None;
        let mut connection = None;
        let mut timing = Vec::new();
        let mut attributes = Vec::new();
        let mut extra = Vec::new();
        let mut media: Vec<Media> = Vec::new();
        for (no, line) in lines {
            let (kind, value) = split_line(no, line)?;
            let syntax = |reason| SdpError::Syntax { line: no, reason };
            if kind == 'm' {
                media.push(parse_media(value).ok_or_else(|| syntax("bad m= line"))?);
                continue;
            }
            if let Some(m) = media.last_mut() {
                match kind {
                    'c' => {
                        m.connection =
                            Some(parse_connection(value).ok_or_else(|| syntax("bad c= line"))?)
                    }
                    'a' => m.attributes.push(Attribute::parse(value)),
                    _ => m.lines.push(Line {
                        kind,
                        value: value.to_owned(),
                    }),
                }
                continue;
            }
            match kind {
                'v' => return Err(syntax("duplicate v= line")),
                'o' => origin = Some(parse_origin(value).ok_or_else(|| syntax("bad o= line"))?),
                's' => session_name = Some(value.to_owned()),
                'c' => {
                    connection = Some(parse_connection(value).ok_or_else(|| syntax("bad c= line"))?)
                }
                't' => timing.push(value.to_owned()),
                'a' => attributes.push(Attribute::parse(value)),
                _ => extra.push(Line {
                    kind,
                    value: value.to_owned(),
                }),
            }
        }
        Ok(Self {
            origin: origin.ok_or(SdpError::Missing('o'))?,
            // Some UAs omit s=; RFC 4566 allows "-" for "no name".
            session_name: session_name.unwrap_or_else(|| "-".to_owned()),
            connection,
            timing,
            attributes,
            lines: extra,
            media,
        })
    }

    /// Renders with CRLF line ends, lines in RFC 4566 order.
    pub fn render(&self) -> String {
        self.to_string()
    }

    /// The session-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        find_direction(&self.attributes)
    }

    /// The direction in force for media section `index` (media, then session, then
    /// sendrecv), as declared by this SDP's author.
    pub fn media_direction(&self, index: usize) -> Direction {
        self.media
            .get(index)
            .and_then(Media::direction)
            .or_else(|| self.direction())
            .unwrap_or_default()
    }

    /// The connection in force for media section `index`.
    pub fn media_connection(&self, index: usize) -> Option<&Connection> {
        self.media
            .get(index)
            .and_then(|m| m.connection.as_ref())
            .or(self.connection.as_ref())
    }

    /// Where to send RTP for media section `index`: `None` if disabled (port 0), on hold
    /// (`0.0.0.0`) or the address is not an IP literal.
    pub fn media_addr(&self, index: usize) -> Option<SocketAddr> {
        let m = self.media.get(index)?;
        let ip = self.media_connection(index)?.ip()?;
        (m.port != 0 && !ip.is_unspecified()).then_some(SocketAddr::new(ip, m.port))
    }

    /// Index of the first enabled RTP audio section.
    pub fn first_audio(&self) -> Option<usize> {
        self.media
            .iter()
            .position(|m| m.kind.eq_ignore_ascii_case("audio") && m.port != 0 && m.is_rtp())
    }
}

impl FromStr for Sdp {
    type Err = SdpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=0{CRLF}o={}{CRLF}", self.origin)?;
        let name = if self.session_name.is_empty() {
            "-"
        } else {
            &self.session_name
        };
        write!(f, "s={name}{CRLF}")?;
        write_lines(f, &self.lines, |k| session_rank(k) < SESSION_RANK_C)?;
        if let Some(c) = &self.connection {
            write!(f, "c={c}{CRLF}")?;
        }
        write_lines(f, &self.lines, |k| {
            (SESSION_RANK_C..SESSION_RANK_T).contains(&session_rank(k))
        })?;
        if self.timing.is_empty() {
            write!(f, "t=0 0{CRLF}")?;
        }
        for t in &self.timing {
            write!(f, "t={t}{CRLF}")?;
        }
        write_lines(f, &self.lines, |k| session_rank(k) > SESSION_RANK_T)?;
        for a in &self.attributes {
            write!(f, "a={a}{CRLF}")?;
        }
        for m in &self.media {
            write!(f, "m={} {}", m.kind, m.port)?;
            if let Some(n) = m.port_count {
                write!(f, "/{n}")?;
            }
            write!(f, " {}", m.proto)?;
            for fmt_ in &m.formats {
                write!(f, " {fmt_}")?;
            }
            f.write_str(CRLF)?;
            write_lines(f, &m.lines, |k| k == 'i')?;
            if let Some(c) = &m.connection {
                write!(f, "c={c}{CRLF}")?;
            }
            write_lines(f, &m.lines, |k| k != 'i')?;
            for a in &m.attributes {
                write!(f, "a={a}{CRLF}")?;
            }
        }
        Ok(())
    }
}

/// Position of the session-level `c=` / `t=` among other line types (RFC 4566 §5).
const SESSION_RANK_C: u8 = 5;
const SESSION_RANK_T: u8 = 7;

fn session_rank(kind: char) -> u8 {
    match kind {
        'i' => 1,
        'u' => 2,
        'e' => 3,
        'p' => 4,
        'b' => 6,
        'r' => 8,
        'z' => 9,
        'k' => 10,
        _ => 11,
    }
}

fn write_lines(
    f: &mut fmt::Formatter<'_>,
    lines: &[Line],
    keep: impl Fn(char) -> bool,
) -> fmt::Result {
    for l in lines.iter().filter(|l| keep(l.kind)) {
        write!(f, "{}={}{CRLF}", l.kind, l.value)?;
    }
    Ok(())
}

fn split_line(no: usize, line: &str) -> Result<(char, &str), SdpError> {
    let b = line.as_bytes();
    if b.len() < 2 || !b[0].is_ascii_alphabetic() || b[1] != b'=' {
        return Err(SdpError::Syntax {
            line: no,
            reason: "expected <type>=<value>",
        });
    }
    Ok((char::from(b[0]), line[2..].trim_end()))
}

fn parse_origin(v: &str) -> Option<Origin> {
    let f: Vec<&str> = v.split_ascii_whitespace().collect();
    let [username, id, version, net, addr_type, address] = f.as_slice() else {
        return None;
    };
    Some(Origin {
        username: (*username).into(),
        session_id: (*id).into(),
        session_version: version.parse().ok()?,
        net_type: (*net).into(),
        addr_type: (*addr_type).into(),
        address: (*address).into(),
    })
}

fn parse_connection(v: &str) -> Option<Connection> {
    let f: Vec<&str> = v.split_ascii_whitespace().collect();
    let [net, addr_type, address] = f.as_slice() else {
        return None;
    };
    Some(Connection {
        net_type: (*net).into(),
        addr_type: (*addr_type).into(),
        address: (*address).into(),
    })
}

fn parse_media(v: &str) -> Option<Media> {
    let mut f = v.split_ascii_whitespace();
    let kind = f.next()?;
    let port_field = f.next()?;
    let proto = f.next()?;
    let (port, count) = match port_field.split_once('/') {
        Some((p, n)) => (p.parse().ok()?, Some(n.parse().ok()?)),
        None => (port_field.parse().ok()?, None),
    };
    let mut m = Media::new(kind, port, proto);
    m.port_count = count;
    m.formats = f.map(str::to_owned).collect();
    Some(m)
}

fn find_direction(attrs: &[Attribute]) -> Option<Direction> {
    attrs.iter().find_map(|a| match a {
        Attribute::Direction(d) => Some(*d),
        _ => None,
    })
}

fn set_direction(attrs: &mut Vec<Attribute>, d: Direction) {
    match attrs
        .iter_mut()
        .find(|a| matches!(a, Attribute::Direction(_)))
    {
        Some(a) => *a = Attribute::Direction(d),
        None => attrs.push(Attribute::Direction(d)),
    }
}

fn addr_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

/// What an offer/answer exchange settled on for the relayed audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedCodec {
    /// Payload type as the peer numbers it (the answer reuses the offer's numbers).
    pub pt: u8,
    pub name: String,
    pub clock: u32,
    /// The peer's telephone-event payload type, if it does RFC 4733.
    pub telephone_event_pt: Option<u8>,
    /// The switch's direction towards this peer (what it may do), after hold rules.
    pub direction: Direction,
    /// Where to send RTP; `None` while the peer is on hold with `0.0.0.0` or port 0.
    pub remote: Option<SocketAddr>,
}

/// The switch's side of one SDP session (one call leg): its origin and relay address.
///
/// Keeps the last SDP it produced so the origin version goes up exactly when the
/// content changes (RFC 3264 §8), across answers, re-offers and pass-throughs.
#[derive(Debug, Clone)]
pub struct SdpSession {
    origin: Origin,
    local_addr: IpAddr,
    local_port: u16,
    last: Option<Sdp>,
}

impl SdpSession {
    pub fn new(local_addr: IpAddr, local_port: u16) -> Self {
        // Positive i64 range: some parsers read the id as a signed number.
        let id = rand::random::<u64>() >> 1;
        Self {
            origin: Origin {
                username: SWITCH_SDP_NAME.into(),
                session_id: id.to_compact_string(),
                session_version: id,
                net_type: "IN".into(),
                addr_type: addr_type(local_addr).into(),
                address: local_addr.to_compact_string(),
            },
            local_addr,
            local_port,
            last: None,
        }
    }

    /// Moves the session to another relay address/port (e.g. media moved to a new relay).
    pub fn set_local(&mut self, addr: IpAddr, port: u16) {
        self.local_addr = addr;
        self.local_port = port;
        self.origin.addr_type = addr_type(addr).into();
        self.origin.address = addr.to_compact_string();
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The switch's offer: `codecs` plus telephone-event on the relay port.
    pub fn offer(&mut self, codecs: &[Codec], direction: Direction) -> Sdp {
        self.offer_with_events(codecs, TELEPHONE_EVENT_PT, direction)
    }

    /// The switch's offer with telephone-event on payload type `events_pt`: a B2BUA that
    /// relays RTP unchanged offers the callee the number the caller uses.
    pub fn offer_with_events(
        &mut self,
        codecs: &[Codec],
        events_pt: u8,
        direction: Direction,
    ) -> Sdp {
        let mut m = Media::new("audio", self.local_port, RTP_PROFILES[0]);
        for c in codecs {
            m.formats.push(c.pt.to_string());
            m.attributes.push(rtpmap(c.pt, c.name, c.clock));
        }
        m.formats.push(events_pt.to_string());
        m.attributes
            .push(rtpmap(events_pt, TELEPHONE_EVENT, G711_CLOCK));
        m.attributes.push(Attribute::Fmtp(Fmtp {
            format: events_pt.to_string(),
            params: TELEPHONE_EVENT_RANGE.to_owned(),
        }));
        m.attributes.push(Attribute::Ptime(DEFAULT_PTIME));
        m.attributes.push(Attribute::Direction(direction));
        let sdp = self.skeleton(vec![m]);
        self.stamp(sdp)
    }

    /// Answers `offer`: the first offered codec in `supported`, the offerer's
    /// telephone-event number, the mirrored direction; other streams rejected (port 0).
    pub fn answer(
        &mut self,
        offer: &Sdp,
        supported: &[Codec],
    ) -> Result<(Sdp, NegotiatedCodec), SdpError> {
        let relayed = offer.first_audio();
        let mut chosen = None;
        let mut media = Vec::with_capacity(offer.media.len());
        for (i, m) in offer.media.iter().enumerate() {
            if Some(i) == relayed {
                if let Some(neg) = negotiate(offer, i, supported) {
                    media.push(self.answer_media(m, &neg));
                    chosen = Some(neg);
                    continue;
                }
            }
            // RFC 3264 §6: every offered stream gets a line; port 0 rejects it.
            let mut rejected = Media::new(&m.kind, 0, &m.proto);
            rejected.formats = m.formats.iter().take(1).cloned().collect();
            media.push(rejected);
        }
        let neg = chosen.ok_or(SdpError::NoCommonCodec)?;
        let sdp = self.skeleton(media);
        Ok((self.stamp(sdp), neg))
    }

    /// `peer`'s SDP with the switch's origin, relay address and port (see [`rewrite`]).
    pub fn rewrite(&mut self, peer: &Sdp) -> Sdp {
        let mut sdp = rewrite(peer, self.local_addr, self.local_port);
        sdp.origin = self.origin.clone();
        self.stamp(sdp)
    }

    fn answer_media(&self, offered: &Media, neg: &NegotiatedCodec) -> Media {
        let mut m = Media::new("audio", self.local_port, &offered.proto);
        m.formats.push(neg.pt.to_string());
        m.attributes.push(rtpmap(neg.pt, &neg.name, neg.clock));
        if let Some(te) = neg.telephone_event_pt {
            m.formats.push(te.to_string());
            m.attributes.push(rtpmap(te, TELEPHONE_EVENT, neg.clock));
            // Echo the offerer's event list: the relay reports whichever digits arrive.
            let events = offered.fmtp(te).unwrap_or(TELEPHONE_EVENT_RANGE);
            m.attributes.push(Attribute::Fmtp(Fmtp {
                format: te.to_string(),
                params: events.to_owned(),
            }));
        }
        m.attributes.push(Attribute::Ptime(DEFAULT_PTIME));
        m.attributes.push(Attribute::Direction(neg.direction));
        m
    }

    fn skeleton(&self, media: Vec<Media>) -> Sdp {
        Sdp {
            origin: self.origin.clone(),
            session_name: SWITCH_SDP_NAME.to_owned(),
            connection: Some(Connection::new(self.local_addr)),
            timing: vec!["0 0".to_owned()],
            attributes: Vec::new(),
            lines: Vec::new(),
            media,
        }
    }

    /// Sets the origin, bumping the version if the content differs from the last SDP.
    fn stamp(&mut self, mut sdp: Sdp) -> Sdp {
        sdp.origin = self.origin.clone();
        if let Some(last) = &self.last {
            if *last != sdp {
                self.origin.session_version = self.origin.session_version.wrapping_add(1);
                sdp.origin.session_version = self.origin.session_version;
            }
        }
        self.last = Some(sdp.clone());
        sdp
    }
}

/// Port of the [`assumed_offer`]: the discard port, a placeholder nobody is sent to.
const ASSUMED_OFFER_PORT: u16 = 9;

/// What the switch takes the caller of an offer-less INVITE to accept (RFC 3261 §13.2.1
/// "delayed offer": the offer goes in our 2xx, the answer comes back in the ACK): every
/// codec the switch relays and telephone-event, sendrecv. It is addressed to `addr` port 9
/// and never sent to: the caller's real address is the one its answer gives. (Not
/// 0.0.0.0, which would read as an RFC 2543 hold and make our offer `recvonly`.)
pub fn assumed_offer(addr: IpAddr) -> Sdp {
    SdpSession::new(addr, ASSUMED_OFFER_PORT).offer(&SWITCH_CODECS, Direction::SendRecv)
}

/// Answers `offer` from a fresh session (see [`SdpSession::answer`]).
pub fn answer(
    offer: &Sdp,
    local_addr: IpAddr,
    local_port: u16,
    supported: &[Codec],
) -> Result<(Sdp, NegotiatedCodec), SdpError> {
    SdpSession::new(local_addr, local_port).answer(offer, supported)
}

/// The codecs of `offer`'s first audio stream that are in `supported`, in the offerer's
/// order, and the offerer's telephone-event payload type.
pub fn offered_codecs(offer: &Sdp, supported: &[Codec]) -> (Vec<Codec>, Option<u8>) {
    let Some(m) = offer.first_audio().and_then(|i| offer.media.get(i)) else {
        return (Vec::new(), None);
    };
    let mut codecs = Vec::new();
    for pt in m.payload_types() {
        let found = match m.rtpmap(pt) {
            Some(map) => supported
                .iter()
                .find(|c| map.encoding.eq_ignore_ascii_case(c.name) && map.clock == c.clock),
            None if pt < FIRST_DYNAMIC_PT => supported.iter().find(|c| c.pt == pt),
            None => None,
        };
        if let Some(c) = found {
            if !codecs.contains(c) {
                codecs.push(*c);
            }
        }
    }
    // Only the 8 kHz telephone-event goes with G.711 (pjsua also offers 16 and 32 kHz).
    let events = m.payload_types().find(|&te| {
        m.rtpmap(te).is_some_and(|map| {
            map.encoding.eq_ignore_ascii_case(TELEPHONE_EVENT) && map.clock == G711_CLOCK
        })
    });
    (codecs, events)
}

/// Narrows `sdp`'s first audio stream to the formats in `supported` plus the 8 kHz
/// telephone-event (their rtpmap/fmtp lines with them): a re-offer passed through the switch
/// offers only what it relays, as its first offer did. False if no codec is left.
pub fn retain_codecs(sdp: &mut Sdp, supported: &[Codec]) -> bool {
    let Some(m) = sdp.first_audio().and_then(|i| sdp.media.get_mut(i)) else {
        return false;
    };
    let is_codec = |m: &Media, pt: u8| match m.rtpmap(pt) {
        Some(map) => supported
            .iter()
            .any(|c| map.encoding.eq_ignore_ascii_case(c.name) && map.clock == c.clock),
        None => pt < FIRST_DYNAMIC_PT && supported.iter().any(|c| c.pt == pt),
    };
    let is_events = |m: &Media, pt: u8| {
        m.rtpmap(pt).is_some_and(|map| {
            map.encoding.eq_ignore_ascii_case(TELEPHONE_EVENT) && map.clock == G711_CLOCK
        })
    };
    let keep: Vec<u8> = m
        .payload_types()
        .filter(|&pt| is_codec(m, pt) || is_events(m, pt))
        .collect();
    if !keep.iter().any(|&pt| is_codec(m, pt)) {
        return false;
    }
    m.formats
        .retain(|f| f.parse::<u8>().is_ok_and(|pt| keep.contains(&pt)));
    m.attributes.retain(|a| match a {
        Attribute::Rtpmap(r) => keep.contains(&r.pt),
        Attribute::Fmtp(p) => p.format.parse::<u8>().is_ok_and(|pt| keep.contains(&pt)),
        _ => true,
    });
    true
}

/// A SIP message body as SDP (`None`: not UTF-8, or not SDP).
pub fn from_body(body: &[u8]) -> Option<Sdp> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|text| Sdp::parse(text).ok())
}

/// The codec of `among` named `name` (as a negotiation reports it).
pub fn codec_named(name: &str, among: &[Codec]) -> Option<Codec> {
    among
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))
        .copied()
}

/// Reads the answer to an offer the switch made: the codec the peer chose and where to
/// send. Fails with [`SdpError::NoCommonCodec`] if the peer accepted nothing usable.
pub fn read_answer(answer: &Sdp, supported: &[Codec]) -> Result<NegotiatedCodec, SdpError> {
    let i = answer.first_audio().ok_or(SdpError::NoCommonCodec)?;
    negotiate(answer, i, supported).ok_or(SdpError::NoCommonCodec)
}

/// `sdp` with the switch's address and port in place of the peer's, for passing one
/// leg's SDP to the other. The first audio stream goes to `new_port`; other streams are
/// disabled (the relay carries one); transport attributes of the peer are dropped.
pub fn rewrite(sdp: &Sdp, new_addr: IpAddr, new_port: u16) -> Sdp {
    let mut out = sdp.clone();
    let relayed = sdp.first_audio();
    let hold = relayed
        .and_then(|i| sdp.media_connection(i))
        .is_some_and(Connection::is_hold);
    // Keep RFC 2543 hold visible to the other side rather than hiding it behind our IP.
    let shown = if hold {
        match new_addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        }
    } else {
        new_addr
    };
    out.origin.addr_type = addr_type(new_addr).into();
    out.origin.address = new_addr.to_compact_string();
    out.connection = Some(Connection::new(shown));
    out.attributes
        .retain(|a| !TRANSPORT_ATTRIBUTES.contains(&a.name()));
    for (i, m) in out.media.iter_mut().enumerate() {
        m.attributes
            .retain(|a| !TRANSPORT_ATTRIBUTES.contains(&a.name()));
        if Some(i) == relayed {
            m.port = new_port;
            m.port_count = None;
            if m.connection.is_some() {
                m.connection = Some(Connection::new(shown));
            }
        } else {
            m.port = 0;
            m.connection = None;
        }
    }
    out
}

fn rtpmap(pt: u8, name: &str, clock: u32) -> Attribute {
    Attribute::Rtpmap(RtpMap {
        pt,
        encoding: name.to_owned(),
        clock,
        channels: None,
    })
}

/// Picks the codec for media section `index` of `sdp` (an offer, or an answer to our
/// offer): the first of its payload types that is one of `supported`.
fn negotiate(sdp: &Sdp, index: usize, supported: &[Codec]) -> Option<NegotiatedCodec> {
    let m = sdp.media.get(index)?;
    let (pt, codec) = m.payload_types().find_map(|pt| {
        let found = match m.rtpmap(pt) {
            Some(map) => supported.iter().find(|c| {
                map.encoding.eq_ignore_ascii_case(c.name)
                    && map.clock == c.clock
                    && map.channels.as_deref().is_none_or(|ch| ch == "1")
            }),
            // Static payload types may come without rtpmap (RFC 3551 table 4).
            None if pt < FIRST_DYNAMIC_PT => supported.iter().find(|c| c.pt == pt),
            None => None,
        };
        found.map(|c| (pt, *c))
    })?;
    let telephone_event_pt = m.payload_types().find(|&te| {
        m.rtpmap(te).is_some_and(|map| {
            map.encoding.eq_ignore_ascii_case(TELEPHONE_EVENT) && map.clock == codec.clock
        })
    });
    // With c=0.0.0.0 the author asks not to be sent to, whatever its direction says.
    let hold = sdp.media_connection(index).is_some_and(Connection::is_hold);
    let theirs = sdp.media_direction(index);
    let theirs = Direction::from_flags(theirs.sends(), theirs.receives() && !hold);
    Some(NegotiatedCodec {
        pt,
        name: codec.name.to_owned(),
        clock: codec.clock,
        telephone_event_pt,
        direction: theirs.reverse(),
        remote: sdp.media_addr(index),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    const PORT: u16 = 20_000;

    const PJSUA: &str = "v=0\r\n\
o=- 3912345678 3912345678 IN IP4 127.0.0.1\r\n\
s=pjmedia\r\n\
b=AS:84\r\n\
t=0 0\r\n\
a=X-nat:0\r\n\
m=audio 4000 RTP/AVP 96 97 98 99 3 0 8 9 120 121 122\r\n\
c=IN IP4 127.0.0.1\r\n\
b=AS:64000\r\n\
a=rtpmap:96 speex/16000\r\n\
a=rtpmap:97 speex/8000\r\n\
a=rtpmap:98 speex/32000\r\n\
a=rtpmap:99 iLBC/8000\r\n\
a=fmtp:99 mode=30\r\n\
a=rtpmap:3 GSM/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:120 telephone-event/16000\r\n\
a=fmtp:120 0-16\r\n\
a=rtpmap:121 telephone-event/8000\r\n\
a=fmtp:121 0-16\r\n\
a=rtpmap:122 telephone-event/32000\r\n\
a=fmtp:122 0-16\r\n\
a=ssrc:1853251234 cname:6ec1a56e2f4e1c3a\r\n\
a=rtcp:4001 IN IP4 127.0.0.1\r\n\
a=sendrecv\r\n";

    // SIPp's uac_pcap scenario, LF line ends as SIPp's XML often yields.
    const SIPP: &str = "v=0\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\n\
s=-\n\
c=IN IP4 127.0.0.1\n\
t=0 0\n\
m=audio 6000 RTP/AVP 8 101\n\
a=rtpmap:8 PCMA/8000\n\
a=rtpmap:101 telephone-event/8000\n\
a=fmtp:101 0-11,16\n";

    const BARESIP: &str = "v=0\r\n\
o=- 1397474946 3573405530 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
a=tool:baresip 1.0.0\r\n\
m=audio 10774 RTP/AVP 96 9 0 8 101\r\n\
b=AS:128\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 stereo=1;sprop-stereo=1\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtcp-rsize\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
m=video 10776 RTP/AVP 100\r\n\
a=rtpmap:100 H264/90000\r\n\
a=sendrecv\r\n";

    fn parse(s: &str) -> Sdp {
        Sdp::parse(s).expect("parse")
    }

    #[test]
    fn parses_pjsua_offer() {
        let sdp = parse(PJSUA);
        assert_eq!(sdp.origin.session_version, 3_912_345_678);
        assert_eq!(sdp.session_name, "pjmedia");
        assert_eq!(sdp.media.len(), 1);
        let m = &sdp.media[0];
        assert_eq!(m.port, 4000);
        assert_eq!(m.payload_types().count(), 11);
        assert_eq!(
            m.rtpmap(121).map(|r| r.encoding.as_str()),
            Some("telephone-event")
        );
        assert_eq!(m.fmtp(99), Some("mode=30"));
        assert_eq!(m.direction(), Some(Direction::SendRecv));
        assert_eq!(
            sdp.media_addr(0),
            Some("127.0.0.1:4000".parse().expect("addr"))
        );
        assert!(matches!(
            m.attribute("ssrc"),
            Some(Attribute::Other { value: Some(v), .. }) if v.starts_with("1853251234")
        ));
        assert_eq!(
            sdp.lines[0],
            Line {
                kind: 'b',
                value: "AS:84".into()
            }
        );
    }

    #[test]
    fn answers_pjsua_with_pcmu_and_8k_telephone_event() {
        let (ans, neg) = answer(&parse(PJSUA), LOCAL, PORT, &SWITCH_CODECS).expect("answer");
        assert_eq!((neg.pt, neg.name.as_str(), neg.clock), (0, "PCMU", 8000));
        assert_eq!(neg.telephone_event_pt, Some(121));
        assert_eq!(neg.direction, Direction::SendRecv);
        assert_eq!(neg.remote, Some("127.0.0.1:4000".parse().expect("addr")));
        let text = ans.render();
        assert!(text.contains("m=audio 20000 RTP/AVP 0 121\r\n"), "{text}");
        assert!(text.contains("c=IN IP4 127.0.0.1\r\n"));
        assert!(text.contains("a=rtpmap:121 telephone-event/8000\r\n"));
        assert!(text.contains("a=fmtp:121 0-16\r\n"));
        assert!(text.contains("a=sendrecv\r\n"));
        assert_eq!(text.matches('\n').count(), text.matches("\r\n").count());
        // Round trip.
        assert_eq!(parse(&text), ans);
    }

    #[test]
    fn answers_sipp_pcma_only_with_pcma() {
        let (ans, neg) = answer(&parse(SIPP), LOCAL, PORT, &SWITCH_CODECS).expect("answer");
        assert_eq!((neg.pt, neg.name.as_str()), (8, "PCMA"));
        assert_eq!(neg.telephone_event_pt, Some(101));
        assert!(ans.render().contains("a=fmtp:101 0-11,16\r\n"));
        assert_eq!(ans.media[0].formats, vec!["8", "101"]);
    }

    #[test]
    fn sipp_static_pt_without_rtpmap() {
        let offer = "v=0\no=user1 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n\
                     m=audio 6000 RTP/AVP 0\n";
        let (_, neg) = answer(&parse(offer), LOCAL, PORT, &SWITCH_CODECS).expect("answer");
        assert_eq!((neg.pt, neg.telephone_event_pt), (0, None));
    }

    #[test]
    fn answers_baresip_rejecting_video() {
        let (ans, neg) = answer(&parse(BARESIP), LOCAL, PORT, &SWITCH_CODECS).expect("answer");
        assert_eq!((neg.pt, neg.telephone_event_pt), (0, Some(101)));
        assert_eq!(ans.media.len(), 2);
        assert_eq!(ans.media[1].kind, "video");
        assert_eq!(ans.media[1].port, 0);
        assert!(ans.render().contains("m=video 0 RTP/AVP 100\r\n"));
        assert!(ans.render().contains("a=fmtp:101 0-15\r\n"));
    }

    #[test]
    fn preference_follows_offer_and_supported_list() {
        let offer = parse(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
             m=audio 5000 RTP/AVP 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\n",
        );
        let (_, neg) = answer(&offer, LOCAL, PORT, &SWITCH_CODECS).expect("answer");
        assert_eq!((neg.pt, neg.telephone_event_pt), (8, Some(96)));
        let (_, neg) = answer(&offer, LOCAL, PORT, &[PCMU]).expect("answer");
        assert_eq!(neg.pt, 0);
    }

    #[test]
    fn dynamic_pt_g711_matched_by_name() {
        let offer = parse(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
             m=audio 5000 RTP/AVP 110\r\na=rtpmap:110 pcma/8000\r\n",
        );
        let (ans, neg) = answer(&offer, LOCAL, PORT, &SWITCH_CODECS).expect("answer");
        assert_eq!((neg.pt, neg.name.as_str()), (110, "PCMA"));
        assert_eq!(ans.media[0].formats, vec!["110"]);
    }

    #[test]
    fn no_common_codec_is_an_error() {
        let offer = parse(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
             m=audio 5000 RTP/AVP 9 18 101\r\na=rtpmap:9 G722/8000\r\n\
             a=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        );
        assert_eq!(
            answer(&offer, LOCAL, PORT, &SWITCH_CODECS).map(|_| ()),
            Err(SdpError::NoCommonCodec)
        );
        let video_only = parse(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
             m=video 5000 RTP/AVP 0\r\n",
        );
        assert_eq!(
            answer(&video_only, LOCAL, PORT, &SWITCH_CODECS).map(|_| ()),
            Err(SdpError::NoCommonCodec)
        );
        // PCMU disabled by configuration: a PCMU-only offer fails.
        let pcmu_only = parse(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
             m=audio 5000 RTP/AVP 0\r\n",
        );
        assert!(answer(&pcmu_only, LOCAL, PORT, &[PCMA]).is_err());
    }

    fn with_direction(dir: &str, conn: &str) -> Sdp {
        parse(&format!(
            "v=0\r\no=- 7 7 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 {conn}\r\nt=0 0\r\n\
             m=audio 5000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n{dir}"
        ))
    }

    #[test]
    fn hold_and_unhold_directions() {
        let mut session = SdpSession::new(LOCAL, PORT);
        let cases = [
            ("", "10.0.0.1", Direction::SendRecv),
            ("a=sendonly\r\n", "10.0.0.1", Direction::RecvOnly),
            ("a=recvonly\r\n", "10.0.0.1", Direction::SendOnly),
            ("a=inactive\r\n", "10.0.0.1", Direction::Inactive),
            // RFC 2543 hold: c=0.0.0.0, nothing to send to.
            ("", "0.0.0.0", Direction::RecvOnly),
            ("a=sendonly\r\n", "0.0.0.0", Direction::RecvOnly),
            ("a=recvonly\r\n", "0.0.0.0", Direction::Inactive),
            ("a=sendrecv\r\n", "10.0.0.1", Direction::SendRecv),
        ];
        for (dir, conn, want) in cases {
            let (ans, neg) = session
                .answer(&with_direction(dir, conn), &SWITCH_CODECS)
                .expect("answer");
            assert_eq!(neg.direction, want, "{dir} {conn}");
            assert_eq!(ans.media_direction(0), want);
            assert_eq!(neg.remote.is_none(), conn == "0.0.0.0");
        }
        // Session-level direction applies when the media has none.
        let s = parse(
            "v=0\r\no=- 7 7 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
             a=sendonly\r\nm=audio 5000 RTP/AVP 0\r\n",
        );
        assert_eq!(
            session
                .answer(&s, &SWITCH_CODECS)
                .expect("answer")
                .1
                .direction,
            Direction::RecvOnly
        );
    }

    #[test]
    fn origin_version_increments_only_on_change() {
        let mut session = SdpSession::new(LOCAL, PORT);
        let first = session.offer(&SWITCH_CODECS, Direction::SendRecv);
        let same = session.offer(&SWITCH_CODECS, Direction::SendRecv);
        assert_eq!(first.origin.session_version, same.origin.session_version);
        let hold = session.offer(&SWITCH_CODECS, Direction::SendOnly);
        assert_eq!(
            hold.origin.session_version,
            first.origin.session_version + 1
        );
        assert_eq!(hold.origin.session_id, first.origin.session_id);
        let unhold = session.offer(&SWITCH_CODECS, Direction::SendRecv);
        assert_eq!(
            unhold.origin.session_version,
            first.origin.session_version + 2
        );
        // Re-INVITE answered by the same session: version keeps climbing.
        let (ans, _) = session
            .answer(&parse(SIPP), &SWITCH_CODECS)
            .expect("answer");
        assert_eq!(ans.origin.session_version, first.origin.session_version + 3);
    }

    #[test]
    fn switch_offer_format() {
        let mut session = SdpSession::new(LOCAL, PORT);
        let text = session.offer(&SWITCH_CODECS, Direction::SendRecv).render();
        let id = &session.origin().session_id;
        let want = format!(
            "v=0\r\no=ctiswitch {id} {id} IN IP4 127.0.0.1\r\ns=ctiswitch\r\n\
             c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0 8 101\r\n\
             a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n\
             a=ptime:20\r\na=sendrecv\r\n"
        );
        assert_eq!(text, want);
        // And a peer answering it with PCMA at pt 8, telephone-event at 96.
        let ans = parse(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n\
             m=audio 7000 RTP/AVP 8 96\r\na=rtpmap:96 telephone-event/8000\r\na=recvonly\r\n",
        );
        let neg = read_answer(&ans, &SWITCH_CODECS).expect("read");
        assert_eq!((neg.pt, neg.telephone_event_pt), (8, Some(96)));
        assert_eq!(neg.direction, Direction::SendOnly);
        assert_eq!(neg.remote, Some("10.0.0.2:7000".parse().expect("addr")));
    }

    #[test]
    fn ipv6_offer() {
        let offer = parse(
            "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n",
        );
        let v6: IpAddr = "::1".parse().expect("ip");
        let (ans, neg) = answer(&offer, v6, PORT, &SWITCH_CODECS).expect("answer");
        assert_eq!(neg.remote, Some("[::1]:5000".parse().expect("addr")));
        assert!(ans.render().contains("c=IN IP6 ::1\r\n"));
    }

    #[test]
    fn rewrite_for_pass_through() {
        let relay: IpAddr = "192.0.2.10".parse().expect("ip");
        let out = rewrite(&parse(PJSUA), relay, 30_000);
        let text = out.render();
        assert!(text.contains("o=- 3912345678 3912345678 IN IP4 192.0.2.10\r\n"));
        assert!(text.contains("c=IN IP4 192.0.2.10\r\n"));
        assert!(!text.contains("127.0.0.1"), "{text}");
        assert!(text.contains("m=audio 30000 RTP/AVP 96 97 98 99 3 0 8 9 120 121 122\r\n"));
        assert!(!text.contains("a=rtcp:"));
        assert!(text.contains("a=ssrc:"));
        assert_eq!(
            out.media_addr(0),
            Some("192.0.2.10:30000".parse().expect("addr"))
        );

        // Video is disabled: the relay carries one stream.
        let out = rewrite(&parse(BARESIP), relay, 30_000);
        assert_eq!((out.media[0].port, out.media[1].port), (30_000, 0));

        // Hold with 0.0.0.0 stays hold.
        let held = rewrite(&with_direction("a=sendonly\r\n", "0.0.0.0"), relay, 30_000);
        assert!(held.render().contains("c=IN IP4 0.0.0.0\r\n"));
        assert_eq!(held.media_direction(0), Direction::SendOnly);

        // Through a session: our origin, version bumped on change.
        let mut session = SdpSession::new(relay, 30_000);
        let a = session.rewrite(&parse(SIPP));
        let b = session.rewrite(&with_direction("a=sendonly\r\n", "10.0.0.1"));
        assert_eq!(a.origin.username, SWITCH_SDP_NAME);
        assert_eq!(b.origin.session_version, a.origin.session_version + 1);
    }

    #[test]
    fn tolerant_of_unknown_lines_and_blank_lines() {
        let s = parse(
            "v=0\n\no=- 1 2 IN IP4 h.example\ni=info\nu=http://x\ne=a@b\nt=0 0\n\
             r=7d 1h 0 25h\nz=0 0\nk=prompt\ny=unknown\nm=audio 49170/2 RTP/AVP 0\ni=media info\n\
             a=rtpmap:bogus\na=ptime:x\na=fmtp:0\n\n",
        );
        assert_eq!(s.connection, None);
        assert_eq!(s.media[0].port_count, Some(2));
        assert_eq!(s.media_addr(0), None);
        assert_eq!(s.media[0].attributes.len(), 3);
        assert!(s.media[0]
            .attributes
            .iter()
            .all(|a| matches!(a, Attribute::Other { .. })));
        let text = s.render();
        assert!(text.starts_with(
            "v=0\r\no=- 1 2 IN IP4 h.example\r\ns=-\r\ni=info\r\nu=http://x\r\ne=a@b\r\nt=0 0\r\n"
        ), "{text}");
        assert!(text.contains("r=7d 1h 0 25h\r\nz=0 0\r\nk=prompt\r\ny=unknown\r\n"));
        assert!(text.contains("m=audio 49170/2 RTP/AVP 0\r\ni=media info\r\na=rtpmap:bogus\r\n"));
        assert_eq!(parse(&text), s);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(Sdp::parse(""), Err(SdpError::Empty));
        assert_eq!(Sdp::parse("\r\n \r\n"), Err(SdpError::Empty));
        assert!(matches!(
            Sdp::parse("<html>"),
            Err(SdpError::Syntax { line: 1, .. })
        ));
        assert!(matches!(
            Sdp::parse("o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n"),
            Err(SdpError::Syntax { line: 1, .. })
        ));
        assert_eq!(Sdp::parse("v=0\r\ns=-\r\n"), Err(SdpError::Missing('o')));
        assert!(matches!(
            Sdp::parse("v=0\r\no=- 1\r\n"),
            Err(SdpError::Syntax { line: 2, .. })
        ));
        assert!(matches!(
            Sdp::parse("v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 99999 RTP/AVP 0\r\n"),
            Err(SdpError::Syntax { line: 3, .. })
        ));
        assert!(matches!(
            Sdp::parse("v=0\r\no=- 1 1 IN IP4 a\r\nc=IN\r\n"),
            Err(SdpError::Syntax { line: 3, .. })
        ));
        assert!(Sdp::parse("v=0\r\no=- 1 1 IN IP4 a\r\nhello world\r\n").is_err());
        assert!(Sdp::parse("v=0\r\no=- 1 1 IN IP4 a\r\n=x\r\n").is_err());
        assert!(Sdp::parse("\u{1F600}=x").is_err());
        for junk in ["v", "v=", "v=0\r\no=", "m=", "\0\0\0", "v=0\na=\u{e9}"] {
            let _ = Sdp::parse(junk);
        }
    }

    #[test]
    fn parser_never_panics_on_noise() {
        use rand::{Rng, SeedableRng};
        const PIECES: [&str; 16] = [
            "v=0",
            "o=- 1 1 IN IP4 1.2.3.4",
            "m=audio 5000 RTP/AVP 0 8",
            "c=IN IP4 0.0.0.0",
            "a=rtpmap:",
            "a=fmtp:",
            "101",
            " ",
            "/",
            "\r\n",
            "\n",
            "a=sendonly",
            "=",
            "é",
            "m=audio 0/",
            "65535",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(4566);
        for _ in 0..5_000 {
            let n = rng.gen_range(0..16);
            let input: String = (0..n)
                .map(|_| PIECES[rng.gen_range(0..PIECES.len())])
                .collect();
            if let Ok(sdp) = Sdp::parse(&input) {
                // Whatever parses renders and re-parses, and negotiation never panics.
                assert!(Sdp::parse(&sdp.render()).is_ok(), "{input:?}");
                let _ = answer(&sdp, LOCAL, PORT, &SWITCH_CODECS);
                let _ = rewrite(&sdp, LOCAL, PORT);
            }
        }
    }

    #[test]
    fn offered_codecs_takes_the_8k_telephone_event() {
        let offer = Sdp::parse(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=pjmedia\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 8 0 120 121 122\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:120 telephone-event/16000\r\na=rtpmap:121 telephone-event/8000\r\n\
             a=rtpmap:122 telephone-event/32000\r\n",
        )
        .unwrap();
        let (codecs, events) = offered_codecs(&offer, &SWITCH_CODECS);
        assert_eq!(codecs, vec![PCMA, PCMU]);
        assert_eq!(events, Some(121));
    }

    #[test]
    fn the_assumed_offer_of_an_offerless_caller_is_every_relayed_codec() {
        let assumed = assumed_offer(LOCAL);
        let (codecs, events) = offered_codecs(&assumed, &SWITCH_CODECS);
        assert_eq!(codecs, SWITCH_CODECS.to_vec());
        assert_eq!(events, Some(TELEPHONE_EVENT_PT));
        // Our 2xx "answer" to it is a complete offer of the codec the callee chose.
        let (ours, neg) = answer(&assumed, LOCAL, PORT, &[PCMA]).unwrap();
        assert_eq!(neg.name, "PCMA");
        let text = ours.render();
        assert!(text.contains("m=audio 20000 RTP/AVP 8 101\r\n"), "{text}");
        assert!(text.contains("c=IN IP4 127.0.0.1\r\n"), "{text}");
        assert!(text.contains("a=sendrecv\r\n"), "{text}");
    }
}
